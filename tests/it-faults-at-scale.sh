#!/bin/bash
# Faults at scale: the I/O-error and full-disk faults of it-io-error.sh and
# it-full-disk.sh, each at a random point, over QS_FAULT_RUNS runs (default
# 4 in `make check`, 60 in `make check-long`), alternating:
#   eio   tests/shim_sync.so under qsd, one of: the Nth fsync/fdatasync of the
#         data directory fails (N random in 2..400), the Nth write fails
#         (N random in 2..3000), or the Nth sync of a table file fails (N
#         random in 1..4: a background flush or compaction)
#   full  the data directory is a tmpfs of a random size (24..72 MiB, watermark
#         0), filled by the load itself: whichever write meets ENOSPC (WAL
#         append, flush, compaction, MANIFEST) is the random point. The tmpfs
#         is then grown by 96 MiB (remount), and qsd must recover by itself.
# Load: qsbench run from 3 peers at full rate, and qsbench submit on the RPC
# socket. The invariant, checked after every run on a restart without the
# fault: every batch acked (SignedBatchInfo, SubmitBatch OK) is stored
# intact; no bad signature; an EIO that was injected ends in fail-stop (exit
# 74) with the failure NACKed (IO_ERROR / STORAGE_FAILED) when it hit a batch
# write, and counted (qsd_persist_failures_total, or the background-error
# journal line for a flush); a full disk NACKs STORAGE_FULL, counts
# qsd_persist_failures_total{reason="no_space"} or the watermark refusals, and
# comes back to ok once space returns.
#
# Environment: B, QS_FAULT_RUNS, QS_SAN_RT, QS_FAULT_SUMMARY (a file: one line
# of figures is appended), QS_KEEP_TMP.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

RUNS=${QS_FAULT_RUNS:-4}
QSBENCH=$B/qsbench
SHIM=$(realpath -m "$B/tests/shim_sync.so")
QS_SAN_RT=${QS_SAN_RT:-}
[ -x "$QSBENCH" ] || fail "$QSBENCH is missing"
[ -f "$SHIM" ] || fail "$SHIM is missing"
command -v jq >/dev/null || fail "jq is missing (tools/deps installs it)"

can_mount=1
mkdir -p "$T/probe"
if ! mount -t tmpfs -o size=1m tmpfs "$T/probe" 2>/dev/null; then
	can_mount=0
	echo "note: cannot mount a tmpfs here (not root?): the full-disk runs are skipped"
else
	umount "$T/probe"
fi
MOUNTS=()
unmount_all() {
	local p m
	for p in "${QS_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	sleep 0.2
	for m in "${MOUNTS[@]}"; do
		umount -l "$m" 2>/dev/null || true
	done
	cleanup
}
trap unmount_all EXIT

metric() { # URL SERIES
	{ curl -s -m 2 "$1/metrics" || true; } | awk -v s="$2" '$1 == s { print $2; exit }'
}
jnum() { # FILE FILTER
	jq "$2 // 0" "$1" 2>/dev/null || echo 0
}

RUN_EIO=0 RUN_FULL=0 INJECTED=0 NOT_REACHED=0 ACKED=0 VERIFIED=0 LOSSES=0
NACK_IO=0 NACK_FULL=0 RECOVERED=0 FAILSTOPS=0
loss() {
	echo "LOSS: $*" >&2
	LOSSES=$((LOSSES + 1))
}

# verify_run DIR URL WHAT: restart without the fault, read every record back.
verify_run() {
	local dir=$1 url=$2 what=$3 out f rc=0
	cat "$dir"/*.rec >"$dir/all.rec" 2>/dev/null || true
	start_qsd "$dir/v0/qsd.yaml" "$dir/qsd.log"
	wait_http "$url/healthz" 30 || { tail "$dir/qsd.log" >&2; loss "$what: qsd did not restart"; return 0; }
	if [ -s "$dir/all.rec" ]; then
		out=$("$QSBENCH" verify -d "$dir" -f "$dir/all.rec" -p 1 2>"$dir/verify.err") || rc=$?
		f=$(sed -n 's/.*verified=\([0-9]*\).*/\1/p' <<<"$out")
		VERIFIED=$((VERIFIED + ${f:-0}))
		if [ "$rc" != 0 ] || ! grep -q "missing=0 altered=0" <<<"$out"; then
			loss "$what: acked batches not intact after the fault: $out $(tail -2 "$dir/verify.err")"
		fi
	fi
	kill -TERM "$QS_PID"
	wait_exit "$QS_PID" 30
	[ "$WAIT_RC" = 0 ] || loss "$what: exit $WAIT_RC on SIGTERM after the restart"
}

start_load() { # DIR
	"$QSBENCH" run -d "$1" -p 1,2,3 -s 16384 -t 8 -D 20 -g 2 -q -j -o "$1/run.rec" \
		>"$1/run.json" 2>"$1/run.err" &
	LP1=$!
	"$QSBENCH" submit -d "$1" -s 16384 -t 8 -D 20 -g 2 -q -j -o "$1/sub.rec" \
		>"$1/sub.json" 2>"$1/sub.err" &
	LP2=$!
	QS_PIDS+=("$LP1" "$LP2")
}

load_figures() { # DIR WHAT
	local a s bad
	wait "$LP1" 2>/dev/null || true
	wait "$LP2" 2>/dev/null || true
	a=$(jnum "$1/run.json" .acked)
	s=$(jnum "$1/sub.json" .ok)
	ACKED=$((ACKED + a + s))
	bad=$(jnum "$1/run.json" .bad_signatures)
	[ "$bad" = 0 ] || loss "$2: $bad bad signatures"
	[ "$(jnum "$1/sub.json" .bad_responses)" = 0 ] || loss "$2: bad SubmitBatch responses"
	NACK_IO=$((NACK_IO + $(jnum "$1/run.json" .nacks.io_error) + $(jnum "$1/run.json" .nacks.storage_failed)))
	NACK_FULL=$((NACK_FULL + $(jnum "$1/run.json" .nacks.storage_full)))
}

run_eio() { # N
	local dir=$T/r$1 base url cfg kind n rc seen pf v i
	base=$(pick_base_port)
	url=http://127.0.0.1:$((base + 100))
	tools/mkcluster 4 "$dir" "$base" >/dev/null
	cfg=$dir/v0/qsd.yaml
	sed -i 's/^log_level:.*/log_level: notice/' "$cfg"
	printf 'max_batch_lifetime_ms: 3600000\nstorage:\n  db_write_buffer_bytes: 1048576\n' >>"$cfg"
	local -a env=(QS_SHIM_COUNT="$dir/injected" QS_SHIM_PATH="$dir/v0/data")
	case $((RANDOM % 3)) in
	0)
		n=$((2 + RANDOM % 399))
		kind="sync#$n"
		env+=("QS_SHIM_SYNC_FAIL_AFTER=$n")
		;;
	1)
		n=$((2 + RANDOM % 2999))
		kind="write#$n"
		env+=("QS_SHIM_WRITE_FAIL_AFTER=$n")
		;;
	*)
		n=$((1 + RANDOM % 4))
		kind="flush#$n"
		env+=("QS_SHIM_SYNC_FAIL_AFTER=$n" QS_SHIM_SUFFIX=.sst)
		;;
	esac
	env LD_PRELOAD="${QS_SAN_RT:+$QS_SAN_RT }$SHIM" "${env[@]}" "$QSD" -c "$cfg" 2>>"$dir/qsd.log" &
	QS_PID=$!
	QS_PIDS+=("$QS_PID")
	if ! wait_http "$url/healthz" 30; then
		# A fault early enough hits the open itself: fail-stop before serving.
		wait_exit "$QS_PID" 10
		if [ -s "$dir/injected" ] && [ "$WAIT_RC" != 0 ] && [ "$WAIT_RC" != timeout ]; then
			echo "run $1: eio $kind: hit while opening the database; exit $WAIT_RC"
			INJECTED=$((INJECTED + 1))
			RUN_EIO=$((RUN_EIO + 1))
			[ "$WAIT_RC" != 74 ] || FAILSTOPS=$((FAILSTOPS + 1))
			verify_run "$dir" "$url" "run $1 (eio $kind)"
			return 0
		fi
		tail "$dir/qsd.log" >&2
		fail "run $1: qsd did not start"
	fi
	start_load "$dir"
	pf=
	for ((i = 0; i < 600; i++)); do
		kill -0 "$QS_PID" 2>/dev/null || break
		if [ -s "$dir/injected" ]; then
			v=$(metric "$url" 'qsd_persist_failures_total{reason="io_error"}')
			[ -z "$v" ] || pf=$v
		fi
		sleep 0.05
	done
	if kill -0 "$QS_PID" 2>/dev/null; then
		kill -TERM "$QS_PID"
	fi
	wait_exit "$QS_PID" 30
	rc=$WAIT_RC
	load_figures "$dir" "run $1 (eio $kind)"
	RUN_EIO=$((RUN_EIO + 1))
	seen=$(wc -l <"$dir/injected" 2>/dev/null || echo 0)
	if [ "$seen" = 0 ]; then
		NOT_REACHED=$((NOT_REACHED + 1))
		[ "$rc" = 0 ] || loss "run $1 (eio $kind): no fault injected, yet exit $rc"
		echo "run $1: eio $kind: not reached by the load (exit $rc)"
	else
		INJECTED=$((INJECTED + 1))
		if [ "$rc" = 74 ]; then
			FAILSTOPS=$((FAILSTOPS + 1))
		elif [ "$rc" = 134 ] && grep -q Assertion "$dir/qsd.log"; then
			echo "run $1: eio $kind: RocksDB asserted (SIGABRT)"
		else
			tail -5 "$dir/qsd.log" >&2
			loss "run $1 (eio $kind): exit $rc after an injected EIO, want 74 (fail-stop)"
		fi
		grep -qE '^<2>event=(persist_failed|storage_background_error|storage_state from=ok to=failed|storage_open_failed)' \
			"$dir/qsd.log" || loss "run $1 (eio $kind): the failure left no LOG_CRIT line"
		if grep -q 'event=storage_state from=failed to=' "$dir/qsd.log"; then
			loss "run $1 (eio $kind): BUG failed-not-final: the storage state left \"failed\"" \
				"($(grep -m1 'event=storage_state from=failed to=' "$dir/qsd.log"))"
		fi
		echo "run $1: eio $kind: exit $rc, acked $(jnum "$dir/run.json" .acked)+$(jnum "$dir/sub.json" .ok)," \
			"NACKed io_error=$(jnum "$dir/run.json" .nacks.io_error)" \
			"storage_failed=$(jnum "$dir/run.json" .nacks.storage_failed)," \
			"qsd_persist_failures_total{io_error} last seen ${pf:-n/a}"
	fi
	verify_run "$dir" "$url" "run $1 (eio $kind)"
}

run_full() { # N
	local dir=$T/r$1 base url cfg disk size code i s1 s2 t1 t2 state
	base=$(pick_base_port)
	url=http://127.0.0.1:$((base + 100))
	tools/mkcluster 4 "$dir" "$base" >/dev/null
	cfg=$dir/v0/qsd.yaml
	disk=$dir/disk
	mkdir -p "$disk"
	size=$((24 + RANDOM % 49))
	mount -t tmpfs -o size=${size}m tmpfs "$disk"
	MOUNTS+=("$disk")
	sed -i "s#^data_dir:.*#data_dir: \"$disk/data\"#; s/^log_level:.*/log_level: notice/" "$cfg"
	cat >>"$cfg" <<-EOC
	max_batch_lifetime_ms: 3600000
	storage:
	  free_space_watermark_bytes: 0
	  db_write_buffer_bytes: 4194304
	  db_max_wal_bytes: 16777216
	EOC
	start_qsd "$cfg" "$dir/qsd.log"
	wait_http "$url/healthz" 30 || { tail "$dir/qsd.log" >&2; fail "run $1: qsd did not start"; }
	start_load "$dir"
	state=
	for ((i = 0; i < 400; i++)); do
		kill -0 "$QS_PID" 2>/dev/null || break
		[ "$(metric "$url" 'qsd_storage_state{state="full"}')" = 1 ] && { state=full; break; }
		sleep 0.05
	done
	RUN_FULL=$((RUN_FULL + 1))
	if [ "$state" != full ]; then
		wait "$LP1" "$LP2" 2>/dev/null || true
		if kill -0 "$QS_PID" 2>/dev/null; then
			NOT_REACHED=$((NOT_REACHED + 1))
			echo "run $1: full ${size} MiB: the load did not fill it"
			kill -TERM "$QS_PID"
			wait_exit "$QS_PID" 30
		else
			wait_exit "$QS_PID" 5
			INJECTED=$((INJECTED + 1))
			tail -5 "$dir/qsd.log" >&2
			loss "run $1 (full ${size} MiB): qsd exited $WAIT_RC on a full disk instead of refusing writes"
		fi
		load_figures "$dir" "run $1 (full)"
		verify_run "$dir" "$url" "run $1 (full)"
		umount -l "$disk" 2>/dev/null || true
		return 0
	fi
	INJECTED=$((INJECTED + 1))
	# Nothing signed while full, once what was accepted before is done. After
	# ENOSPC qsd reopens the database as soon as 16 MiB are free again, and a
	# reopen frees RocksDB's preallocated files: the state may flap, so only a
	# second spent wholly in "full" counts.
	for ((i = 0; i < 50; i++)); do
		[ "$(metric "$url" qsd_submit_queue_bytes)" = 0 ] && break
		sleep 0.1
	done
	s1=$(metric "$url" qsd_batches_signed_total)
	t1=$(grep -c 'from=full to=ok' "$dir/qsd.log" || true)
	sleep 1
	s2=$(metric "$url" qsd_batches_signed_total)
	t2=$(grep -c 'from=full to=ok' "$dir/qsd.log" || true)
	if [ "$t1" = "$t2" ] && [ "$(metric "$url" 'qsd_storage_state{state="full"}')" = 1 ] &&
		[ -n "$s1" ] && [ "$s1" != "$s2" ]; then
		loss "run $1 (full ${size} MiB): $((s2 - s1)) batches signed while full"
	fi
	# Space comes back: qsd recovers by itself (a reopen after ENOSPC).
	mount -o remount,size=$((size + 96))m "$disk"
	code=
	for ((i = 0; i < 150; i++)); do
		[ "$(metric "$url" 'qsd_storage_state{state="ok"}')" = 1 ] && { code=ok; break; }
		kill -0 "$QS_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ "$code" = ok ]; then
		RECOVERED=$((RECOVERED + 1))
	else
		tail -5 "$dir/qsd.log" >&2
		loss "run $1 (full ${size} MiB): storage not ok within 15 s of the space coming back"
	fi
	wait "$LP1" "$LP2" 2>/dev/null || true
	local nospace
	nospace=$(metric "$url" 'qsd_persist_failures_total{reason="no_space"}')
	load_figures "$dir" "run $1 (full)"
	[ "$(jnum "$dir/run.json" .nacks.storage_full)" -ge 1 ] ||
		grep -q 'event=storage_state from=ok to=full' "$dir/qsd.log" ||
		loss "run $1 (full ${size} MiB): no STORAGE_FULL NACK and no storage_state line"
	kill -TERM "$QS_PID" 2>/dev/null || true
	wait_exit "$QS_PID" 30
	if [ "$WAIT_RC" != 0 ] &&
		grep -q 'to=failed reason="storage I/O error: a RocksDB flush or compaction"' "$dir/qsd.log"; then
		loss "run $1 (full ${size} MiB): BUG full-disk-failstop: a flush or compaction failing on the" \
			"full disk was taken for an I/O error: fail-stop (exit $WAIT_RC) instead of storage full" \
			"($(grep 'storage_background_error' "$dir/qsd.log" | tail -1))"
	elif [ "$WAIT_RC" != 0 ]; then
		loss "run $1 (full ${size} MiB): exit $WAIT_RC on SIGTERM"
	fi
	if grep -q 'event=storage_state from=failed to=' "$dir/qsd.log"; then
		loss "run $1 (full ${size} MiB): BUG failed-not-final: the storage state left \"failed\"" \
			"($(grep -m1 'event=storage_state from=failed to=' "$dir/qsd.log"))"
	fi
	echo "run $1: full ${size} MiB: acked $(jnum "$dir/run.json" .acked)+$(jnum "$dir/sub.json" .ok)," \
		"NACKed storage_full=$(jnum "$dir/run.json" .nacks.storage_full)," \
		"qsd_persist_failures_total{no_space}=${nospace:-n/a}, recovered=${code:-no}"
	verify_run "$dir" "$url" "run $1 (full)"
	umount -l "$disk" 2>/dev/null || true
}

t0=$SECONDS
for ((r = 1; r <= RUNS; r++)); do
	if [ $((r % 2)) = 0 ] && [ "$can_mount" = 1 ]; then
		run_full "$r"
	else
		run_eio "$r"
	fi
done
line="runs=$RUNS eio_runs=$RUN_EIO full_runs=$RUN_FULL faults_injected=$INJECTED not_reached=$NOT_REACHED"
line+=" failstops=$FAILSTOPS full_recovered=$RECOVERED acked=$ACKED verified=$VERIFIED"
line+=" nacks_io=$NACK_IO nacks_full=$NACK_FULL losses=$LOSSES seconds=$((SECONDS - t0))"
echo "$line"
[ -z "${QS_FAULT_SUMMARY:-}" ] || echo "$line" >>"$QS_FAULT_SUMMARY"
[ "$LOSSES" = 0 ] || fail "faults at scale: $LOSSES invariant failures"
[ "$INJECTED" -ge 1 ] || fail "faults at scale: no fault was ever injected"
echo "ok: faults at scale"
