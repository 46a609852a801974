#!/bin/bash
# A failed fsync under load (tests/shim_sync.so makes every sync fail once the
# trigger file exists): qsd NACKs the failed group with IO_ERROR and every
# later batch with STORAGE_FAILED, signs nothing after the failure, counts it
# in qsd_persist_failures_total{reason="io_error"}, answers /healthz with 503
# and a reason, and does not crash. After a restart without the fault, every
# batch that was acked is served intact (qsbench verify).
#
# Environment: B (build directory), QS_SAN_RT (sanitizer runtime to preload
# before the shim, or empty).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

QSBENCH=$B/qsbench
SHIM=$PWD/$B/tests/shim_sync.so
QS_SAN_RT=${QS_SAN_RT:-}
[ -x "$QSBENCH" ] || fail "$QSBENCH is missing"
[ -f "$SHIM" ] || fail "$SHIM is missing"

base=$(pick_base_port)
tools/mkcluster 4 "$T/c" "$base" >/dev/null
cfg=$T/c/v0/qsd.yaml
url=http://127.0.0.1:$((base + 100))
# Long lifetimes, so the acked batches are still live when verified.
printf 'max_batch_lifetime_ms: 3600000\n' >>"$cfg"
trigger=$T/fail-sync
count=$T/sync-failures

# metric SERIES: its value now (series exactly as exported, labels included).
metric() {
	local text
	text=$(curl -s -m 5 "$url/metrics") || fail "no answer from $url/metrics"
	awk -v s="$1" '$1 == s { v = $2 } END { if (v == "") exit 1; print v }' <<<"$text" ||
		fail "qsd does not export $1"
}

# sum_family NAME: the sum of every series of a counter family.
sum_family() {
	curl -s -m 5 "$url/metrics" |
		awk -v n="$1" 'index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}

# wait_metric SERIES MIN SECONDS: until SERIES >= MIN; fails after SECONDS.
wait_metric() {
	local i v
	for ((i = 0; i < $3 * 10; i++)); do
		v=$(metric "$1")
		[ "${v%.*}" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "$1 is $v after $3 s, want at least $2"
}

# json_int FILE KEY: an integer field of qsbench's one-line JSON summary.
json_int() {
	local v
	v=$(grep -o "\"$2\":[0-9]*" "$1" | head -n 1 | cut -d: -f2)
	[ -n "$v" ] && echo "$v" || echo 0
}

show_logs() {
	echo "---- qsd log" >&2
	tail -n 30 "$T/qsd.log" >&2 || true
	for f in "$T"/qsbench*.err; do
		[ -e "$f" ] || continue
		echo "---- $f" >&2
		tail -n 10 "$f" >&2
	done
}
trap 'rc=$?; [ $rc -eq 0 ] || show_logs; cleanup' EXIT

# qsd with the fault shim in place but not armed yet. The sanitizer runtime,
# when it is a shared library, must come first.
LD_PRELOAD="${QS_SAN_RT:+$QS_SAN_RT }$SHIM" QS_SHIM_FAIL_SYNC=$trigger QS_SHIM_COUNT=$count \
	"$QSD" -c "$cfg" 2>>"$T/qsd.log" &
QS_PID=$!
QS_PIDS+=("$QS_PID")
wait_http "$url/metrics" 30 || fail "qsd's metrics endpoint did not come up"

# Load as v1 and v2, paced, for longer than the rest of the test needs.
timeout -k 5 90 "$QSBENCH" run -d "$T/c" -p 1,2 -s 4096 -t 4 -i 8 -r 100 -D 8 -g 4 -q -j \
	-o "$T/acked.rec" >"$T/run.json" 2>"$T/qsbench-run.err" &
bench=$!
QS_PIDS+=("$bench")

# Acks flow, and nothing was refused, before the fault.
wait_metric qsd_batches_signed_total 50 30
[ "$(sum_family qsd_batches_rejected_total)" = 0 ] || fail "NACKs before the fault"

touch "$trigger"
# The storage state changes on the loop thread when the failed group's
# completions arrive, after every completion of the groups written before it
# (completions are delivered in order), so from here on the signed count is
# final.
wait_metric 'qsd_storage_state{state="failed"}' 1 30
signed=$(metric qsd_batches_signed_total)
persisted=$(metric qsd_batches_persisted_total)
sleep 2	# qsbench keeps sending meanwhile
[ "$(metric qsd_batches_signed_total)" = "$signed" ] ||
	fail "qsd signed batches after the failed fsync ($signed, then $(metric qsd_batches_signed_total))"
[ "$(metric qsd_batches_persisted_total)" = "$persisted" ] ||
	fail "qsd counted batches persisted after the failed fsync"
[ -s "$count" ] || fail "the shim injected no fsync failure"

# The failure is counted and reported.
[ "$(metric 'qsd_persist_failures_total{reason="io_error"}')" -ge 1 ] ||
	fail "qsd_persist_failures_total{reason=\"io_error\"} did not count the failure"
[ "$(metric 'qsd_batches_rejected_total{reason="IO_ERROR"}')" -ge 1 ] || fail "no IO_ERROR NACK"
[ "$(metric 'qsd_storage_state{state="ok"}')" = 0 ] || fail "storage state still ok"
code=$(curl -s -m 5 -o "$T/healthz" -w '%{http_code}' "$url/healthz")
[ "$code" = 503 ] || fail "/healthz answered $code after the failure, want 503"
reason=$(cat "$T/healthz")
if [ -z "$reason" ] || [ "$reason" = ok ]; then fail "/healthz 503 without a reason"; fi

# What qsd does now: it refuses and stays up (no crash, no exit). The full
# fail-stop policy (exit non-zero, systemd restarts) will change this check.
kill -0 "$QS_PID" 2>/dev/null || fail "qsd is gone after the failed fsync"

set +e
wait "$bench"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "qsbench run exited $rc: $(cat "$T/run.json")"
sent=$(json_int "$T/run.json" sent)
acked=$(json_int "$T/run.json" acked)
nacked=$(json_int "$T/run.json" nacked)
io=$(json_int "$T/run.json" io_error)
failed=$(json_int "$T/run.json" storage_failed)
summary=$(cat "$T/run.json")
[ "$acked" -ge 50 ] || fail "only $acked acks: $summary"
[ "$acked" = "$signed" ] || fail "qsbench saw $acked acks, qsd signed $signed: $summary"
[ "$(wc -l <"$T/acked.rec")" = "$acked" ] || fail "the record does not list every ack"
[ "$io" -ge 1 ] || fail "no io_error NACK: $summary"
[ $((io + failed)) = "$nacked" ] || fail "NACKs other than io_error/storage_failed: $summary"
[ $((acked + nacked)) = "$sent" ] || fail "batches without an answer: $summary"
for k in bad_signatures protocol_errors lost_inflight disconnects; do
	[ "$(json_int "$T/run.json" $k)" = 0 ] || fail "$k: $summary"
done

# After the failure every new batch is refused at once.
rejected=$(metric 'qsd_batches_rejected_total{reason="STORAGE_FAILED"}')
timeout -k 5 60 "$QSBENCH" run -d "$T/c" -p 3 -s 4096 -t 4 -c 20 -D 10 -g 3 -q -j \
	-o "$T/after.rec" >"$T/after.json" 2>"$T/qsbench-after.err" ||
	fail "qsbench run after the failure exited $?: $(cat "$T/after.json")"
[ "$(json_int "$T/after.json" acked)" = 0 ] || fail "acks after the failure: $(cat "$T/after.json")"
[ "$(json_int "$T/after.json" storage_failed)" = 20 ] ||
	fail "want 20 storage_failed NACKs: $(cat "$T/after.json")"
[ ! -s "$T/after.rec" ] || fail "acked batches recorded after the failure"
[ "$(metric 'qsd_batches_rejected_total{reason="STORAGE_FAILED"}')" = $((rejected + 20)) ] ||
	fail "STORAGE_FAILED NACKs not counted"
[ "$(metric qsd_batches_signed_total)" = "$signed" ] || fail "signed after the failure"
kill -0 "$QS_PID" 2>/dev/null || fail "qsd is gone after refusing batches"

# Stop it (what a supervisor would do to a failed node); it must not hang.
kill -TERM "$QS_PID"
wait_exit "$QS_PID" 20
[ "$WAIT_RC" != timeout ] || fail "qsd did not stop on SIGTERM with failed storage"
[ "$WAIT_RC" -lt 128 ] || fail "qsd died of signal $((WAIT_RC - 128)) on SIGTERM"
echo "qsd with failed storage exited $WAIT_RC on SIGTERM"

# Restart without the fault: every acked batch is on disk, intact.
rm -f "$trigger"
start_qsd "$cfg" "$T/qsd.log"
wait_http "$url/healthz" 30 || fail "qsd did not restart"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/healthz")
[ "$code" = 200 ] || fail "/healthz answered $code after the restart"
out=$(timeout -k 5 120 "$QSBENCH" verify -d "$T/c" -f "$T/acked.rec" 2>"$T/qsbench-verify.err") ||
	fail "qsbench verify failed: $out"
[ "$out" = "verified=$acked missing=0 altered=0 skipped_expired=0" ] ||
	fail "verify after restart: $out (acked $acked)"

kill -TERM "$QS_PID"
wait_exit "$QS_PID" 20
[ "$WAIT_RC" = 0 ] || fail "qsd exited $WAIT_RC on SIGTERM after the restart"
echo "ok: failed fsync: $acked acked and served intact, $io io_error and $failed storage_failed NACKs"
