#!/bin/bash
# I/O errors under load are fail-stop. tests/shim_sync.so makes the disk fail
# with EIO in three ways, one run each:
#   trigger   every fsync/fdatasync fails once a trigger file exists
#   sync-nth  the Nth and later fsync/fdatasync fail
#   write-nth the Nth and later write/pwrite to the data directory fail
#   flush     the first sync of a table file fails: a RocksDB background
#             flush fails, seen only in rocksdb.background-errors
#   abort     sync_file_range fails, which Debian's RocksDB asserts never
#             happens: qsd dies of SIGABRT inside RocksDB (exit 134), and the
#             invariant holds all the same
# Each run: qsbench sends as v1 and v2; after the fault qsd signs nothing,
# NACKs with IO_ERROR / STORAGE_FAILED, says why in the journal at LOG_CRIT,
# and exits 74 (fail-stop) without waiting for a signal. Restarted without
# the fault, it serves every batch that was acked, byte for byte.
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

# json_int FILE KEY: an integer field of qsbench's one-line JSON summary.
json_int() {
	local v
	v=$(grep -o "\"$2\":[0-9]*" "$1" | head -n 1 | cut -d: -f2)
	if [ -n "$v" ]; then echo "$v"; else echo 0; fi
}

run_case() {
	local mode=$1 dir=$T/$1 base url cfg trigger count bench rc i code code_seen seen503=0
	base=$(pick_base_port)
	url=http://127.0.0.1:$((base + 100))
	tools/mkcluster 4 "$dir" "$base" >/dev/null
	cfg=$dir/v0/qsd.yaml
	printf 'max_batch_lifetime_ms: 3600000\n' >>"$cfg"
	trigger=$dir/fail-sync
	count=$dir/injected
	local -a env=(QS_SHIM_COUNT="$count" QS_SHIM_PATH="$dir/v0/data")
	case "$mode" in
	trigger) env+=(QS_SHIM_FAIL_SYNC="$trigger") ;;
	sync-nth) env+=(QS_SHIM_SYNC_FAIL_AFTER=150) ;;
	write-nth) env+=(QS_SHIM_WRITE_FAIL_AFTER=150) ;;
	flush)
		env+=(QS_SHIM_SYNC_FAIL_AFTER=1 QS_SHIM_SUFFIX=.sst)
		printf 'storage:\n  db_write_buffer_bytes: 1048576\n' >>"$cfg"
		;;
	abort)
		env+=(QS_SHIM_FAIL_RANGE="$trigger")
		printf 'storage:\n  db_write_buffer_bytes: 1048576\n' >>"$cfg"
		;;
	esac
	env LD_PRELOAD="${QS_SAN_RT:+$QS_SAN_RT }$SHIM" "${env[@]}" \
		"$QSD" -c "$cfg" 2>>"$dir/qsd.log" &
	QS_PID=$!
	QS_PIDS+=("$QS_PID")
	wait_http "$url/healthz" 30 || { tail "$dir/qsd.log"; fail "$mode: qsd did not start"; }

	timeout -k 5 90 "$QSBENCH" run -d "$dir" -p 1,2 -s 4096 -t 4 -i 8 -r 100 -D 8 -g 3 -q -j \
		-o "$dir/acked.rec" >"$dir/run.json" 2>"$dir/run.err" &
	bench=$!
	QS_PIDS+=("$bench")
	if [ "$mode" = trigger ] || [ "$mode" = abort ]; then
		sleep 1.5
		touch "$trigger"
	fi

	# /healthz turns 503 before qsd goes; qsd then exits by itself.
	for ((i = 0; i < 300; i++)); do
		code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "$url/healthz" || true)
		[ "$code" = 503 ] && seen503=1
		kill -0 "$QS_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait_exit "$QS_PID" 30
	code_seen=$WAIT_RC
	[ -s "$count" ] || fail "$mode: the shim injected no failure"
	if [ "$mode" = abort ]; then
		[ "$WAIT_RC" = 134 ] || { tail "$dir/qsd.log"; fail "abort: qsd exited $WAIT_RC, want 134 (SIGABRT)"; }
		grep -q "Assertion" "$dir/qsd.log" || fail "abort: no RocksDB assertion in the log"
	else
		[ "$WAIT_RC" = 74 ] || { tail "$dir/qsd.log"; fail "$mode: qsd exited $WAIT_RC, want 74 (fail-stop)"; }
		[ "$seen503" = 1 ] || echo "$mode: note: qsd exited before /healthz was polled at 503"
		grep -q '^<2>event=storage_state from=ok to=failed' "$dir/qsd.log" ||
			fail "$mode: no storage_state line"
		grep -q '^<2>event=fail_stop .*exit=74' "$dir/qsd.log" || fail "$mode: no fail_stop line"
	fi
	if [ "$mode" = abort ]; then
		:
	elif [ "$mode" = flush ]; then
		grep -q '^<2>event=storage_background_error count=1' "$dir/qsd.log" ||
			fail "$mode: no storage_background_error line at LOG_CRIT"
	else
		grep -q '^<2>event=persist_failed reason=io_error' "$dir/qsd.log" ||
			fail "$mode: no persist_failed line at LOG_CRIT"
	fi

	set +e
	wait "$bench"
	rc=$?
	set -e
	[ "$rc" -le 1 ] || fail "$mode: qsbench run exited $rc"
	local acked io summary
	summary=$(cat "$dir/run.json")
	acked=$(json_int "$dir/run.json" acked)
	io=$(json_int "$dir/run.json" io_error)
	[ "$(json_int "$dir/run.json" bad_signatures)" = 0 ] || fail "$mode: bad signatures: $summary"
	# A flush comes early with a 1 MiB write buffer; the others run longer.
	local min_acks=20
	[ "$mode" != flush ] || min_acks=1
	[ "$acked" -ge "$min_acks" ] || fail "$mode: only $acked acks before the fault: $summary"
	case "$mode" in flush | abort) ;; *) [ "$io" -ge 1 ] || fail "$mode: no IO_ERROR NACK: $summary" ;; esac
	[ "$(wc -l <"$dir/acked.rec")" = "$acked" ] || fail "$mode: the record does not list every ack"

	# Restart without the fault: recovery re-reads the disk, and every
	# acked batch is there, intact.
	start_qsd "$cfg" "$dir/qsd.log"
	wait_http "$url/healthz" 30 || fail "$mode: qsd did not restart"
	# Alone (no peer connected) it is not healthy, but its storage is.
	local body
	body=$(curl -s -m 5 "$url/healthz")
	[ "$body" = "no quorum of peers" ] || fail "$mode: /healthz after the restart: $body"
	local out
	out=$(timeout -k 5 120 "$QSBENCH" verify -d "$dir" -f "$dir/acked.rec" 2>"$dir/verify.err") ||
		fail "$mode: verify failed: $out"
	[ "$out" = "verified=$acked missing=0 altered=0 skipped_expired=0" ] ||
		fail "$mode: verify after restart: $out (acked $acked)"
	kill -TERM "$QS_PID"
	wait_exit "$QS_PID" 20
	[ "$WAIT_RC" = 0 ] || fail "$mode: exit $WAIT_RC on SIGTERM after the restart"
	echo "ok: $mode: $acked acked and served intact after restart, $io IO_ERROR NACKs, exit $code_seen"
}

for mode in ${QS_MODES:-trigger sync-nth write-nth flush abort}; do
	run_case "$mode"
done
