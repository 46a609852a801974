#!/bin/bash
# The proof stage across a real 4-validator cluster (tools/mkcluster 4:
# voting power 1 each, so a quorum is 3), `qsbench submit` playing each
# node's consensus process over its RPC socket:
#   (a) all four up: every batch SubmitBatch acked becomes a proof of store
#       on its author (qsd_proofs_formed_total = the OK count) and reaches
#       the three others (qsd_proofs_received_total{result="ok"} = the sum of
#       the others' formed proofs), and each node recognises its own
#       signature in some of those (qsd_proof_own_signatures_recognised_total);
#   (b) v1 killed with SIGKILL: v0, v2, v3 still reach quorums;
#   (c) v3 killed too: batches are still stored and acked, none forms a
#       proof, and after proof_timeout_ms (2 s here) every one of them is
#       counted in qsd_proofs_timed_out_total;
#   (d) v1 and v3 restarted: once reconnected they are sent every proof the
#       others formed meanwhile, and new submissions form proofs everywhere.
# `qsctl status -o json` agrees with the metrics after each phase
# (proofs_formed, proofs_received, own_batches_unproven back to 0,
# proof_queue_size = formed + received, at least that on a restarted node).
#
# Environment: B (build directory), QS_SUBMIT_S (seconds of load per phase,
# default 3), QS_KEEP_TMP (keep the cluster directory).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

N=4
DUR=${QS_SUBMIT_S:-3}
RATE=50
TIMEOUT_MS=2000
QSBENCH=$B/qsbench
[ -x "$QSBENCH" ] || fail "$QSBENCH is missing"
[ -x "$QSCTL" ] || fail "$QSCTL is missing"

base=$(pick_base_port)
tools/mkcluster $N "$T/c" "$base" >/dev/null
for ((i = 0; i < N; i++)); do
	# Batches outlive the test, so that no proof expires while it counts.
	printf 'proof_timeout_ms: %d\nmax_batch_lifetime_ms: 600000\n' "$TIMEOUT_MS" \
		>>"$T/c/v$i/qsd.yaml"
done

pid=()
OK=()
F0=()
R0=()
TO0=()
SIG0=()
SUB0=()
t_start=$SECONDS

url() { echo "http://127.0.0.1:$((base + 100 + $1))"; }

start_node() {
	start_qsd "$T/c/v$1/qsd.yaml" "$T/v$1.log"
	pid[$1]=$QS_PID
}

logs() {
	local i
	for ((i = 0; i < N; i++)); do
		echo "---- tail of v$i's log" >&2
		tail -n 15 "$T/v$i.log" >&2 || true
	done
}

die() {
	logs
	fail "$@"
}

# metric NODE SERIES: the value of one series (name and labels exactly as
# exported).
metric() {
	local v
	v=$(curl -sf -m 5 "$(url "$1")/metrics" | awk -v s="$2" '$1 == s { print $2; exit }') || true
	[ -n "$v" ] || fail "v$1 does not export $2 (is it up?)"
	echo "$v"
}

status() { "$QSCTL" -s "$T/c/v$1/rpc.sock" -t 10000 status -o json; }

# jfield JSON FIELD: a scalar field of qsctl's or qsbench's one-line JSON.
jfield() {
	grep -o "\"$2\":[^,}]*" <<<"$1" | head -n 1 | cut -d: -f2 | tr -d '"'
}

# until_ok SECONDS CMD...: run CMD every 0.1 s until it succeeds.
until_ok() {
	local t=$1 i
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

metric_is() { # NODE SERIES WANT
	local v
	v=$(metric "$1" "$2") || return 1
	[ "$v" = "$3" ]
}

resent_is() { # NODE WANT: proofs received since start, new or duplicate
	local ok dup
	ok=$(metric "$1" 'qsd_proofs_received_total{result="ok"}') || return 1
	dup=$(metric "$1" 'qsd_proofs_received_total{result="duplicate"}') || return 1
	[ $((ok + dup)) = "$2" ]
}

connected_is() { # NODE WANT
	local s
	s=$(status "$1") || return 1
	[ "$(jfield "$s" peers_connected)" = "$2" ]
}

# wait_connected NODE...: every listed node is connected to all the others
# listed (redials back off up to 5 s, ±20 %).
wait_connected() {
	local i want=$(($# - 1))
	for i in "$@"; do
		until_ok 20 connected_is "$i" "$want" ||
			die "v$i: peers_connected is not $want: $(status "$i" || true)"
	done
}

# snap NODE...: counters before a phase.
snap() {
	local i
	for i in "$@"; do
		F0[i]=$(metric "$i" qsd_proofs_formed_total)
		R0[i]=$(metric "$i" 'qsd_proofs_received_total{result="ok"}')
		TO0[i]=$(metric "$i" qsd_proofs_timed_out_total)
		SIG0[i]=$(metric "$i" 'qsd_signatures_received_total{result="added"}')
		SUB0[i]=$(metric "$i" 'qsd_batches_submitted_total{result="ok"}')
	done
}

# submit_start PHASE NODE...: one qsbench submit per node, RATE batches/s of
# 16 KiB for DUR seconds; submit_wait collects them into OK[NODE].
BPID=()
submit_start() {
	local phase=$1 i
	shift
	for i in "$@"; do
		timeout -k 5 $((DUR + 60)) "$QSBENCH" submit -d "$T/c" -n "$i" -s 16384 -t 8 \
			-r "$RATE" -D "$DUR" -g 30 -q -j >"$T/$phase.v$i.json" 2>"$T/$phase.v$i.err" &
		BPID[i]=$!
		QS_PIDS+=("${BPID[i]}")
	done
}

submit_wait() {
	local phase=$1 i rc js
	shift
	for i in "$@"; do
		rc=0
		wait "${BPID[i]}" || rc=$?
		js=$(cat "$T/$phase.v$i.json")
		[ "$rc" = 0 ] || die "$phase: qsbench submit to v$i exited $rc: $js $(cat "$T/$phase.v$i.err")"
		[[ $js == *'"errors":{}'* ]] || die "$phase: v$i answered errors: $js"
		[ "$(jfield "$js" bad_responses)" = 0 ] || die "$phase: v$i: bad responses: $js"
		[ "$(jfield "$js" unanswered)" = 0 ] || die "$phase: v$i: unanswered: $js"
		OK[i]=$(jfield "$js" ok)
		[ "${OK[i]}" -ge $((RATE * DUR / 2)) ] || die "$phase: v$i: only ${OK[i]} OK: $js"
		# SubmitBatch answered OK exactly as often as qsd counted it stored.
		metric_is "$i" 'qsd_batches_submitted_total{result="ok"}' $((SUB0[i] + OK[i])) ||
			die "$phase: v$i: qsd_batches_submitted_total{result=\"ok\"} is" \
				"$(metric "$i" 'qsd_batches_submitted_total{result="ok"}'), want $((SUB0[i] + OK[i]))"
	done
}

# expect_formed NODE...: each listed node formed one proof per OK batch of
# this phase, and each received (ok) exactly the proofs the others formed.
expect_formed() {
	local i j sum
	for i in "$@"; do
		until_ok 15 metric_is "$i" qsd_proofs_formed_total $((F0[i] + OK[i])) ||
			die "v$i: qsd_proofs_formed_total went from ${F0[i]} to" \
				"$(metric "$i" qsd_proofs_formed_total), want +${OK[i]}"
	done
	for i in "$@"; do
		sum=0
		for j in "$@"; do
			[ "$j" = "$i" ] || sum=$((sum + OK[j]))
		done
		until_ok 15 metric_is "$i" 'qsd_proofs_received_total{result="ok"}' $((R0[i] + sum)) ||
			die "v$i: qsd_proofs_received_total{result=\"ok\"} went from ${R0[i]} to" \
				"$(metric "$i" 'qsd_proofs_received_total{result="ok"}'), want +$sum"
		metric_is "$i" qsd_proofs_timed_out_total "${TO0[i]}" ||
			die "v$i: proofs timed out: $(metric "$i" qsd_proofs_timed_out_total)"
	done
}

# check_status NODE PEERS: GetStatus agrees with the metrics, nothing waits
# for a quorum, every proof held is one formed or received. (A restarted
# node, RESTARTED[NODE]=1, may also hold proofs read back from its disk.)
RESTARTED=()
check_status() {
	local i=$1 s formed recv held
	s=$(status "$i") || die "v$i: qsctl status failed"
	formed=$(metric "$i" qsd_proofs_formed_total)
	recv=$(metric "$i" 'qsd_proofs_received_total{result="ok"}')
	[ "$(jfield "$s" storage_state)" = ok ] || die "v$i: status: $s"
	[ "$(jfield "$s" peers_connected)" = "$2" ] || die "v$i: peers_connected, want $2: $s"
	[ "$(jfield "$s" proofs_formed)" = "$formed" ] || die "v$i: proofs_formed, want $formed: $s"
	[ "$(jfield "$s" proofs_received)" = "$recv" ] || die "v$i: proofs_received, want $recv: $s"
	[ "$(jfield "$s" own_batches_unproven)" = 0 ] || die "v$i: own_batches_unproven: $s"
	[ "$(jfield "$s" back_pressure)" = false ] || die "v$i: back_pressure: $s"
	held=$(jfield "$s" proof_queue_size)
	if [ -n "${RESTARTED[i]:-}" ]; then
		[ "$held" -ge $((formed + recv)) ] || die "v$i: proof_queue_size, want >= $((formed + recv)): $s"
	else
		[ "$held" = $((formed + recv)) ] || die "v$i: proof_queue_size, want $((formed + recv)): $s"
	fi
	metric_is "$i" qsd_proof_queue_size "$held" || die "v$i: qsd_proof_queue_size"
	metric_is "$i" qsd_own_batches_unproven 0 || die "v$i: qsd_own_batches_unproven"
	if [ "$formed" -gt 0 ]; then
		[ "$(jfield "$s" submit_to_proof_p99_us)" -lt 10000000 ] ||
			die "v$i: submit_to_proof_p99_us: $s"
	fi
}

summary() { # PHASE NODE...
	local phase=$1 i line=""
	shift
	for i in "$@"; do
		line+=" v$i ok=${OK[i]} formed=$(metric "$i" qsd_proofs_formed_total)"
		line+=" received=$(metric "$i" 'qsd_proofs_received_total{result="ok"}')"
		line+=" timed_out=$(metric "$i" qsd_proofs_timed_out_total);"
	done
	echo "ok: $phase:$line $((SECONDS - t_start)) s"
}

for ((i = 0; i < N; i++)); do
	start_node "$i"
done
for ((i = 0; i < N; i++)); do
	wait_http "$(url "$i")/healthz" 60 || die "v$i did not start"
done
wait_connected 0 1 2 3

# (a) All four: every OK batch becomes a proof, every proof reaches all.
snap 0 1 2 3
submit_start a 0 1 2 3
submit_wait a 0 1 2 3
expect_formed 0 1 2 3
for i in 0 1 2 3; do
	check_status "$i" 3
	# Three peer signatures per batch: two make the quorum with ours, the
	# third comes too late to be needed.
	metric_is "$i" 'qsd_signatures_received_total{result="added"}' $((2 * OK[i])) ||
		die "v$i: signatures added: $(metric "$i" 'qsd_signatures_received_total{result="added"}')"
	# Of the proofs it received, those carrying its own signature had it
	# recognised (compared with the one it sent, not verified again).
	own=$(metric "$i" qsd_proof_own_signatures_recognised_total)
	recv=$(metric "$i" 'qsd_proofs_received_total{result="ok"}')
	if [ "${own:-0}" -le 0 ] || [ "$own" -gt "$recv" ]; then
		die "v$i: own signatures recognised: ${own:-none} of $recv proofs received"
	fi
done
summary a 0 1 2 3

# (b) v1 down: 3 of 4 is still a quorum.
KILLED_FORMED[1]=$(metric 1 qsd_proofs_formed_total)
kill -9 "${pid[1]}"
wait "${pid[1]}" 2>/dev/null || true
snap 0 2 3
submit_start b 0 2 3
submit_wait b 0 2 3
expect_formed 0 2 3
for i in 0 2 3; do
	check_status "$i" 2
	metric_is "$i" 'qsd_signatures_received_total{result="added"}' $((SIG0[i] + 2 * OK[i])) ||
		die "v$i: signatures added in (b)"
done
summary b 0 2 3

# (c) v3 down too: stored and acked, no quorum, timed out.
KILLED_FORMED[3]=$(metric 3 qsd_proofs_formed_total)
kill -9 "${pid[3]}"
wait "${pid[3]}" 2>/dev/null || true
snap 0 2
submit_start c 0 2
sleep "$(awk -v d="$DUR" 'BEGIN { print d / 2 }')"
for i in 0 2; do
	s=$(status "$i") || die "v$i: qsctl status failed"
	[ "$(jfield "$s" own_batches_unproven)" -gt 0 ] ||
		die "v$i: own_batches_unproven is 0 while no quorum is possible: $s"
done
submit_wait c 0 2
for i in 0 2; do
	until_ok $((TIMEOUT_MS / 1000 + 15)) metric_is "$i" qsd_proofs_timed_out_total \
		$((TO0[i] + OK[i])) ||
		die "v$i: qsd_proofs_timed_out_total went from ${TO0[i]} to" \
			"$(metric "$i" qsd_proofs_timed_out_total), want +${OK[i]}"
	metric_is "$i" qsd_proofs_formed_total "${F0[i]}" ||
		die "v$i: formed a proof without a quorum: $(metric "$i" qsd_proofs_formed_total)"
	metric_is "$i" 'qsd_proofs_received_total{result="ok"}' "${R0[i]}" ||
		die "v$i: received a proof without a quorum"
	# The one peer left signed every batch, in time.
	metric_is "$i" 'qsd_signatures_received_total{result="added"}' $((SIG0[i] + OK[i])) ||
		die "v$i: signatures added in (c): $(metric "$i" 'qsd_signatures_received_total{result="added"}')"
	check_status "$i" 1
done
grep -q 'event=proof_timed_out' "$T/v0.log" || die "v0: no proof_timed_out line"
summary c 0 2

# (d) v1 and v3 back: they get the proofs formed while they were away, and
# quorums form again everywhere. Every proof another node formed reaches a
# restarted node once more on reconnect: new to it (ok), or a duplicate of
# the copy it restored from disk. A restarted node restores its own proofs
# from disk too and sends them to the other restarted one.
start_node 1
start_node 3
RESTARTED[1]=1
RESTARTED[3]=1
for i in 1 3; do
	wait_http "$(url "$i")/healthz" 60 || die "v$i did not restart"
done
wait_connected 0 1 2 3
f0=$(metric 0 qsd_proofs_formed_total)
f2=$(metric 2 qsd_proofs_formed_total)
for i in 1 3; do
	other=$((4 - i))
	until_ok 15 resent_is "$i" $((f0 + f2 + KILLED_FORMED[other])) ||
		die "v$i: after its restart received $(metric "$i" 'qsd_proofs_received_total{result="ok"}') +" \
			"$(metric "$i" 'qsd_proofs_received_total{result="duplicate"}') duplicate proofs," \
			"want v0's $f0 + v2's $f2 + v$other's ${KILLED_FORMED[other]} restored"
done
snap 0 1 2 3
submit_start d 0 1 2 3
submit_wait d 0 1 2 3
expect_formed 0 1 2 3
for i in 0 1 2 3; do
	check_status "$i" 3
done
# The restarted nodes were sent every proof the others ever formed.
for i in 1 3; do
	sum=${KILLED_FORMED[4 - i]}
	for j in 0 1 2 3; do
		[ "$j" = "$i" ] || sum=$((sum + $(metric "$j" qsd_proofs_formed_total)))
	done
	resent_is "$i" "$sum" ||
		die "v$i: received $(metric "$i" 'qsd_proofs_received_total{result="ok"}') +" \
			"$(metric "$i" 'qsd_proofs_received_total{result="duplicate"}') duplicate proofs, want $sum"
done
summary d 0 1 2 3

for ((i = 0; i < N; i++)); do
	kill -TERM "${pid[i]}"
done
for ((i = 0; i < N; i++)); do
	wait_exit "${pid[i]}" 30
	[ "$WAIT_RC" = 0 ] || die "v$i: exit $WAIT_RC on SIGTERM"
done
echo "ok: cluster: proofs formed, received, timed out and formed again after restarts in $((SECONDS - t_start)) s"
