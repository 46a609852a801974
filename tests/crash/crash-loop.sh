#!/bin/bash
# Crash loop: v0 of a 7-validator cluster is crashed and restarted
# QS_CYCLES times while it is loaded, and after every restart everything it
# ever acked and has not expired is read back.
#
# The cluster (tools/mkcluster 7): v0..v3 are real qsd processes with voting
# power 10 each, v4..v6 are simulated by qsbench with power 1 each. 30 of 43
# is a quorum, so v0's own batches become proofs with v1..v3's signatures.
# Only v0 crashes. Each cycle:
#   1. start v0; one cycle in 8 is cut during recovery (0-400 ms after exec)
#   2. once it serves: qsbench verify of every record (below) not expired,
#      checked against what v0 holds: the proof check and own batch ids
#   3. load: qsbench run as v4,v5,v6 at full rate (closed loop), qsbench
#      submit on v0's RPC socket at full rate, qsbench submit on v1 (so that
#      v0 signs peer batches that become proofs)
#   4. one cycle in 4 waits for a GC run (qsd_gc_runs_total moving) and cuts
#      right after it; the others cut after a random 0.3-2.5 s
# Short lifetimes (batches 3-5 s, GC 1 s after expiry) make GC run all the
# time and keep what there is to verify small.
#
# QS_CRASH_MODE picks the cut:
#   kill   kill -9 (the page cache survives: tests ordering and recovery)
#   lying  tests/shim_lyingdisk.so under v0: a power cut that drops every
#          write not yet synced, by a cut file or, one cycle in 3, at a random
#          count of modelled calls once the load started (QS_LD_NOSYNC_SUFFIX is passed on, for the
#          run that must fail)
#
# Pass: every acked batch (qsbench run acks, SubmitBatch OK) that has not
# expired verifies (0 missing, 0 altered); no batch id of v0's own acked
# batches appears twice across cycles, nor twice among the batches v0 stores;
# every proof v0 holds whose bitmap has v0's bit is of a batch v0 stores
# (or one expired meanwhile); qsctl db check is clean at the end.
#
# Environment: B, QS_CYCLES (20), QS_CRASH_MODE (kill), QS_SAN_RT,
# QS_CRASH_SUMMARY (a file: one line of figures is appended), QS_KEEP_TMP.
# Exit status: 0 pass, 1 an invariant failed (the lines say LOSS:), 2 the
# test could not run.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

CYCLES=${QS_CYCLES:-20}
MODE=${QS_CRASH_MODE:-kill}
QSBENCH=$B/qsbench
SHIM=$(realpath -m "$B/tests/shim_lyingdisk.so")
QS_SAN_RT=${QS_SAN_RT:-}
[ -x "$QSBENCH" ] || fail "$QSBENCH is missing"
command -v jq >/dev/null || fail "jq is missing (tools/deps installs it)"
[ "$MODE" != lying ] || [ -f "$SHIM" ] || fail "$SHIM is missing"

N=7
base=$(pick_base_port)
C=$T/c
tools/mkcluster $N "$C" "$base" >/dev/null
# The data directories on a tmpfs where one can be mounted: the durability
# under test is RocksDB's ordering across kill -9 (the page cache survives)
# or the lying disk's model, not the device's, and a real fsync per group
# would make the cycles few.
mkdir -p "$T/disk"
if mount -t tmpfs -o size=1g tmpfs "$T/disk" 2>/dev/null; then
	trap 'for p in "${QS_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; sleep 0.2; umount -l "$T/disk" 2>/dev/null || true; cleanup' EXIT
	for ((i = 0; i < N; i++)); do
		mkdir -m 0700 "$T/disk/v$i"
		sed -i "s#^data_dir:.*#data_dir: \"$T/disk/v$i\"#" "$C/v$i/qsd.yaml"
	done
	DATA0=$T/disk/v0
else
	echo "note: no tmpfs (not root?): the data directories stay on $T's disk"
	DATA0=$C/v0/data
fi
for ((i = 0; i < N; i++)); do
	cfg=$C/v$i/qsd.yaml
	real_nodes "$cfg" 4 10
	cat >>"$cfg" <<-EOC
	max_batch_lifetime_ms: 6000
	max_clock_skew_ms: 1000
	proof_timeout_ms: 3000
	serving:
	  gc_buffer_ms: 0
	  gc_stall_buffer_ms: 1000
	storage:
	  free_space_watermark_bytes: 0
	  db_write_buffer_bytes: 1048576
	  db_max_wal_bytes: 4194304
	EOC
done

url() { echo "http://127.0.0.1:$((base + 100 + $1))"; }
ctl() { "$QSCTL" -s "$C/v0/rpc.sock" -t 10000 "$@"; }
metric() { # SERIES
	{ curl -s -m 2 "$(url 0)/metrics" || true; } | awk -v s="$1" '$1 == s { print $2; exit }'
}
loss() {
	echo "LOSS: $*" >&2
	LOSSES=$((LOSSES + 1))
}

peer_pids=()
for i in 1 2 3; do
	start_qsd "$C/v$i/qsd.yaml" "$T/v$i.log"
	peer_pids+=("$QS_PID")
done

V0=
cut_file=$T/cut
arm_file=$T/arm
grave=$(dirname "$DATA0")/ld-grave # the same file system, for link(2)
start_v0() { # CUT_AFTER (lying mode; 0: only by the cut file)
	rm -f "$cut_file" "$arm_file"
	if [ "$MODE" = lying ]; then
		rm -rf "$grave"
		mkdir -p "$grave"
		local -a env=(QS_LD_DIR="$DATA0" QS_LD_GRAVE="$grave" QS_LD_CUT_FILE="$cut_file"
			QS_LD_ARM_FILE="$arm_file" QS_LD_LOG="$T/cuts.log")
		[ "$1" = 0 ] || env+=(QS_LD_CUT_AFTER="$1")
		[ -z "${QS_LD_NOSYNC_SUFFIX+x}" ] || env+=(QS_LD_NOSYNC_SUFFIX="$QS_LD_NOSYNC_SUFFIX")
		env LD_PRELOAD="${QS_SAN_RT:+$QS_SAN_RT }$SHIM" "${env[@]}" \
			"$QSD" -c "$C/v0/qsd.yaml" 2>>"$T/v0.log" &
		V0=$!
		QS_PIDS+=("$V0")
	else
		start_qsd "$C/v0/qsd.yaml" "$T/v0.log"
		V0=$QS_PID
	fi
}

# The cut: kill -9, or the lying disk's power cut. Waits for v0 to be gone.
cut_v0() {
	if [ "$MODE" = lying ]; then
		touch "$cut_file"
		wait_exit "$V0" 20
		[ "$WAIT_RC" != timeout ] || { kill -9 "$V0"; wait "$V0" 2>/dev/null || true; }
	else
		kill -9 "$V0" 2>/dev/null || true
		wait "$V0" 2>/dev/null || true
	fi
	CUTS=$((CUTS + 1))
}

wait_v0() {
	local i
	for ((i = 0; i < 300; i++)); do
		curl -s -o /dev/null -m 1 "$(url 0)/healthz" && return 0
		kill -0 "$V0" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# verify_all: every record not expired, read back from v0 as v4, v5 and v6
# (a third each: qsd serves 1,000 requests/s per peer).
verify_all() {
	local out k v m a s all=$T/all.rec
	cat "$T"/rec/*.rec >"$all" 2>/dev/null || : >"$all"
	[ -s "$all" ] || return 0
	for k in 0 1 2; do
		awk -v k=$k 'NR % 3 == k' "$all" >"$T/part$k.rec"
		"$QSBENCH" verify -d "$C" -n 0 -p $((4 + k)) -r 950 -f "$T/part$k.rec" \
			>"$T/verify$k.out" 2>"$T/verify$k.err" &
		VP[k]=$!
	done
	for k in 0 1 2; do
		wait "${VP[k]}" || true
		out=$(cat "$T/verify$k.out")
		v=$(sed -n 's/.*verified=\([0-9]*\).*/\1/p' <<<"$out")
		m=$(sed -n 's/.*missing=\([0-9]*\).*/\1/p' <<<"$out")
		a=$(sed -n 's/.*altered=\([0-9]*\).*/\1/p' <<<"$out")
		s=$(sed -n 's/.*skipped_expired=\([0-9]*\).*/\1/p' <<<"$out")
		if [ -z "$v" ]; then
			loss "cycle $cycle: verify as v$((4 + k)) gave no answer: $(tail -3 "$T/verify$k.err")"
			continue
		fi
		VERIFIED=$((VERIFIED + v))
		SKIPPED=$((SKIPPED + s))
		MISSING=$((MISSING + m))
		ALTERED=$((ALTERED + a))
		if [ "$m" != 0 ] || [ "$a" != 0 ]; then
			loss "cycle $cycle: $m acked batches missing, $a altered (as v$((4 + k)): $out)"
		fi
		if grep -q unanswered "$T/verify$k.err"; then
			loss "cycle $cycle: verify requests unanswered: $(grep unanswered "$T/verify$k.err" | head -3)"
		fi
	done
	return 0
}

# check_held: v0's own batch ids are unique on disk; every proof v0 holds with
# its own signature (bit 0 of the bitmap) is of a batch v0 stores.
v0_key=$(cat "$C/v0/keys/signing.pub")
check_held() {
	local batches=$T/batches.json proofs=$T/proofs.json dup orphans
	ctl batches -o json >"$batches" || { loss "cycle $cycle: qsctl batches failed"; return 0; }
	ctl proofs -o json >"$proofs" || { loss "cycle $cycle: qsctl proofs failed"; return 0; }
	dup=$(jq -r --arg k "$v0_key" '[.batches[] | select(.author == $k) | .batch_id]
		| group_by(.) | map(select(length > 1) | .[0]) | .[]' "$batches")
	[ -z "$dup" ] || loss "cycle $cycle: own batch ids stored twice: $dup"
	PROOFS_SEEN=$((PROOFS_SEEN + $(jq '.proofs | length' "$proofs")))
	orphans=$(jq -r --slurpfile b "$batches" --arg now "$(($(date +%s%6N) + 500000))" '
		($b[0].batches | map({(.digest): 1}) | add // {}) as $have
		| .proofs[] | select((.signers | index(0)) != null)
		| select(($have[.info.digest] // 0) == 0)
		| select((.info.expiration_us | tonumber) > ($now | tonumber))
		| .info.digest' "$proofs")
	[ -z "$orphans" ] || loss "cycle $cycle: proofs signed by v0 of batches it does not store: $orphans"
	PROOFS_SIGNED=$((PROOFS_SIGNED + $(jq '[.proofs[] | select((.signers | index(0)) != null)] | length' "$proofs")))
}

mkdir -p "$T/rec"
LOSSES=0 CUTS=0 VERIFIED=0 SKIPPED=0 MISSING=0 ALTERED=0 PROOFS_SEEN=0 PROOFS_SIGNED=0
RECOVERY_CUTS=0 GC_CUTS=0 COUNT_CUTS=0 ACKED=0 SUBMITTED=0
t0=$SECONDS
for ((cycle = 1; cycle <= CYCLES; cycle++)); do
	kind=random
	after=0
	r=$((RANDOM % 8))
	if [ "$r" = 0 ]; then
		kind=recovery
	elif [ "$r" -le 2 ]; then
		kind=gc
	fi
	if [ "$MODE" = lying ] && [ "$kind" = random ] && [ $((RANDOM % 3)) = 0 ]; then
		kind=count
		after=$((100 + RANDOM % 3000))
	fi
	start_v0 "$after"
	if [ "$kind" = recovery ]; then
		sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", (r % 400) / 1000 }')"
		cut_v0
		RECOVERY_CUTS=$((RECOVERY_CUTS + 1))
		echo "cycle $cycle: cut during recovery"
		continue
	fi
	wait_v0 || {
		tail -20 "$T/v0.log" >&2
		if [ "$kind" = count ] && [ -s "$T/cuts.log" ]; then
			CUTS=$((CUTS + 1))
			continue
		fi
		echo "v0 did not start (cycle $cycle)" >&2
		exit 2
	}
	verify_all
	check_held
	touch "$arm_file"
	"$QSBENCH" run -d "$C" -n 0 -p 4,5,6 -s 16384 -t 8 -l 4 -D 30 -g 1 -q -j \
		-o "$T/rec/run$cycle.rec" >"$T/run$cycle.json" 2>"$T/run$cycle.err" &
	lp1=$!
	"$QSBENCH" submit -d "$C" -n 0 -s 16384 -t 8 -D 30 -g 1 -q -j \
		-o "$T/rec/sub$cycle.rec" >"$T/sub$cycle.json" 2>"$T/sub$cycle.err" &
	lp2=$!
	"$QSBENCH" submit -d "$C" -n 1 -s 4096 -t 4 -r 50 -D 30 -g 1 -q -j -B "$(date +%s%6N)" \
		>"$T/sub1.$cycle.json" 2>"$T/sub1.$cycle.err" &
	lp3=$!
	QS_PIDS+=("$lp1" "$lp2" "$lp3")
	case "$kind" in
	gc)
		g0=$(metric qsd_gc_runs_total)
		for ((w = 0; w < 600; w++)); do
			g=$(metric qsd_gc_runs_total)
			[ -n "$g" ] && [ "$g" != "$g0" ] && break
			sleep 0.01
		done
		if [ "${g:-}" != "$g0" ]; then
			GC_CUTS=$((GC_CUTS + 1))
		fi
		;;
	count)
		# Either the count is reached, or the random timer wins.
		sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.3 + (r % 220) / 100 }')"
		;;
	*)
		sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.3 + (r % 220) / 100 }')"
		;;
	esac
	if [ "$kind" = count ] && ! kill -0 "$V0" 2>/dev/null; then
		wait "$V0" 2>/dev/null || true
		CUTS=$((CUTS + 1))
		COUNT_CUTS=$((COUNT_CUTS + 1))
	else
		cut_v0
	fi
	kill -TERM "$lp3" 2>/dev/null || true
	wait "$lp1" "$lp2" "$lp3" 2>/dev/null || true
	a=$(jq '.acked // 0' "$T/run$cycle.json" 2>/dev/null || echo 0)
	s=$(jq '.ok // 0' "$T/sub$cycle.json" 2>/dev/null || echo 0)
	ACKED=$((ACKED + a))
	SUBMITTED=$((SUBMITTED + s))
	bad=$(jq '.bad_signatures // 0' "$T/run$cycle.json" 2>/dev/null || echo 0)
	[ "$bad" = 0 ] || loss "cycle $cycle: $bad bad signatures"
	echo "cycle $cycle: $kind cut; acked $a (peers) + $s (SubmitBatch)"
done

# A last start: verify everything, stop cleanly, check the database offline.
cycle=final
start_v0 0
wait_v0 || { tail -20 "$T/v0.log" >&2; echo "v0 did not start for the final check" >&2; exit 2; }
verify_all
check_held
kill -TERM "$V0" 2>/dev/null || true
wait_exit "$V0" 30
[ "$WAIT_RC" = 0 ] || loss "v0 exited $WAIT_RC on SIGTERM after the last cycle"
if ! "$QSCTL" db check "$DATA0" >"$T/dbcheck.out" 2>&1; then
	loss "qsctl db check: $(grep -vE ': 0$' "$T/dbcheck.out" | tail -5 | tr '\n' ' ')"
fi
# No acked own batch id twice, across every cycle's SubmitBatch records.
dup=$(cat "$T"/rec/sub*.rec 2>/dev/null | awk '{ print $3 }' | sort | uniq -d | head -5)
[ -z "$dup" ] || loss "own batch ids acked twice across cycles: $dup"
own=$(cat "$T"/rec/sub*.rec 2>/dev/null | wc -l)

cuts_log=
[ ! -s "$T/cuts.log" ] || cuts_log=" power_cuts=$(wc -l <"$T/cuts.log") bytes_lost=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^bytes_lost=/) { split($i, a, "="); s += a[2] } } END { print s + 0 }' "$T/cuts.log")"
line="mode=$MODE${QS_LD_NOSYNC_SUFFIX+ nosync_suffix=$QS_LD_NOSYNC_SUFFIX} cycles=$CYCLES cuts=$CUTS recovery_cuts=$RECOVERY_CUTS gc_cuts=$GC_CUTS count_cuts=$COUNT_CUTS"
line+=" acked_peer=$ACKED acked_submit=$SUBMITTED own_ids=$own verified=$VERIFIED skipped_expired=$SKIPPED"
line+=" missing=$MISSING altered=$ALTERED proofs_checked=$PROOFS_SEEN proofs_signed_by_v0=$PROOFS_SIGNED"
line+="$cuts_log losses=$LOSSES seconds=$((SECONDS - t0))"
echo "$line"
[ -z "${QS_CRASH_SUMMARY:-}" ] || echo "$line" >>"$QS_CRASH_SUMMARY"
for p in "${peer_pids[@]}"; do
	kill -TERM "$p" 2>/dev/null || true
done
[ "$LOSSES" = 0 ] || exit 1
