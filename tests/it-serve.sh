#!/bin/bash
# Serving consensus across a real 4-validator cluster (tools/mkcluster 4, a
# quorum is 3), with qsctl as the consensus process:
#   (a) proofs of three authors reach v3; GetPayload on v3 draws them round
#       robin over the authors, oldest batch id first per author, honours
#       --exclude and --max-txns;
#   (b) v3 down while v0 submits: the proofs form without it, and after its
#       restart v3 is sent them but never the batches. GetBatch on v3 fetches
#       each from its signers (source peer, digest verified), persists it and
#       serves it again from memory; only then may GetPayload inline it;
#   (c) a batch nobody has: NOT_FOUND within the deadline, counted as
#       qsd_batch_fetch_total{source="peer",result="miss"} and logged;
#   (d) NotifyCommit on v3 removes the committed proofs from its queue, also
#       after a restart.
# Environment: B (build directory), QS_KEEP_TMP (keep the cluster directory).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

N=4
PER_AUTHOR=4
command -v jq >/dev/null || fail "jq is missing (tools/deps installs it)"
[ -x "$QSCTL" ] || fail "$QSCTL is missing"

base=$(pick_base_port)
tools/mkcluster $N "$T/c" "$base" >/dev/null
for ((i = 0; i < N; i++)); do
	printf 'max_batch_lifetime_ms: 600000\nserving:\n  fetch_timeout_ms: 200\n' \
		>>"$T/c/v$i/qsd.yaml"
done

pid=()
url() { echo "http://127.0.0.1:$((base + 100 + $1))"; }
ctl() { # NODE ARGS...
	local n=$1
	shift
	"$QSCTL" -s "$T/c/v$n/rpc.sock" -t 10000 "$@"
}
start_node() {
	start_qsd "$T/c/v$1/qsd.yaml" "$T/v$1.log"
	pid[$1]=$QS_PID
	wait_http "$(url "$1")/healthz" 60 || die "v$1 did not start"
}
die() {
	local i
	for ((i = 0; i < N; i++)); do
		echo "---- tail of v$i's log" >&2
		tail -n 15 "$T/v$i.log" >&2 || true
	done
	fail "$@"
}
metric() { # NODE SERIES: its value, or nothing (a failed scrape is the caller's to report)
	curl -sf -m 10 "$(url "$1")/metrics" | awk -v s="$2" '$1 == s { print $2; exit }' || true
}
until_ok() { # SECONDS CMD...
	local t=$1 i
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
proofs_on() { # NODE WANT: the proof queue of NODE holds WANT proofs
	[ "$(ctl "$1" proofs -o json | jq '.count')" = "$2" ]
}
connected_to() { # NODE WANT
	[ "$(ctl "$1" status -o json | jq '.peers_connected')" = "$2" ]
}
submit() { # NODE: one batch of 2 transactions; prints its digest
	ctl "$1" submit -n 2 -b 100 -o json | jq -r '.info.digest'
}
key_of() { # NODE: its signing key, as qsctl prints authors
	ctl "$1" batches -o json >/dev/null
	awk '/signing_key:/ { print $2 }' "$T/c/v$1/qsd.yaml" | head -n 1
}

for ((i = 0; i < N; i++)); do
	start_node "$i"
done
for ((i = 0; i < N; i++)); do
	until_ok 30 connected_to "$i" 3 || die "v$i did not connect to all peers"
done

# (a) Fairness: v0, v1 and v2 author PER_AUTHOR batches each.
for ((k = 0; k < PER_AUTHOR; k++)); do
	for i in 0 1 2; do
		submit "$i" >/dev/null || die "submit on v$i failed"
	done
done
until_ok 30 proofs_on 3 $((3 * PER_AUTHOR)) ||
	die "v3 holds $(ctl 3 proofs -o json | jq '.count') proofs, want $((3 * PER_AUTHOR))"
P=$(ctl 3 payload -o json)
[ "$(jq '.proofs | length' <<<"$P")" = $((3 * PER_AUTHOR)) ] || die "payload: $P"
# Every round of three holds each author once.
for ((r = 0; r < PER_AUTHOR; r++)); do
	n=$(jq "[.proofs[$((3 * r)):$((3 * r + 3))][].info.author] | unique | length" <<<"$P")
	[ "$n" = 3 ] || die "round $r of the payload is not one proof per author: $P"
done
# Per author, batch ids ascend.
bad=$(jq '[.proofs | group_by(.info.author)[] | map(.info.batch_id) | . != sort] | any' <<<"$P")
[ "$bad" = false ] || die "batch ids do not ascend per author: $P"
first=$(jq -r '.proofs[0].info.digest' <<<"$P")
P2=$(ctl 3 payload --exclude "$first" -o json)
[ "$(jq --arg d "$first" '[.proofs[].info.digest] | index($d)' <<<"$P2")" = null ] ||
	die "an excluded digest came back"
[ "$(jq '.proofs | length' <<<"$P2")" = $((3 * PER_AUTHOR - 1)) ] || die "exclude: $P2"
# Two transactions per batch: at most 5 transactions means 2 proofs.
P3=$(ctl 3 payload --max-txns 5 -o json)
[ "$(jq '.totals.num_txns' <<<"$P3")" = 4 ] || die "max-txns 5: $P3"
echo "ok: (a) $((3 * PER_AUTHOR)) proofs of 3 authors, round robin, exclude and limits"

# (b) Fetch from the signers.
kill -9 "${pid[3]}"
wait "${pid[3]}" 2>/dev/null || true
missing=()
for ((k = 0; k < 3; k++)); do
	missing+=("$(submit 0)")
done
until_ok 30 proofs_on 0 $((3 * PER_AUTHOR + 3)) || die "v0 formed no proofs without v3"
start_node 3
until_ok 30 proofs_on 3 $((3 * PER_AUTHOR + 3)) ||
	die "v3 was not sent the proofs formed while it was down"
for d in "${missing[@]}"; do
	[ "$(ctl 3 batches -o json | jq --arg d "$d" '[.batches[].digest] | index($d)')" = null ] ||
		die "v3 holds $d, which it should never have received"
done
# Before the fetch, those batches are not inlined: v3 does not hold them.
P=$(ctl 3 payload --max-inline-txns 1000 --max-inline-bytes 1MiB -o json)
for d in "${missing[@]}"; do
	[ "$(jq --arg d "$d" '[.inline_batches[].info.digest] | index($d)' <<<"$P")" = null ] ||
		die "v3 inlined $d, which it does not hold"
done
ok0=$(metric 3 'qsd_batch_fetch_total{source="peer",result="ok"}')
[ -n "$ok0" ] || die "v3 does not export qsd_batch_fetch_total"
for d in "${missing[@]}"; do
	S=$(ctl 3 batch show "$d" -o json) || die "batch show $d on v3 failed"
	[ "$(jq -r '.source' <<<"$S")" = peer ] || die "first read of $d: $S"
	[ "$(jq -r '.verified' <<<"$S")" = true ] || die "fetched batch $d does not verify: $S"
	S=$(ctl 3 batch show "$d" -o json) || die "second batch show $d on v3 failed"
	[ "$(jq -r '.source' <<<"$S")" = memory ] || die "second read of $d: $S"
done
[ "$(metric 3 'qsd_batch_fetch_total{source="peer",result="ok"}')" = $((ok0 + 3)) ] ||
	die "qsd_batch_fetch_total{peer,ok} did not move by 3"
# Persisted before served: now on v3's disk, and inlined when asked.
for d in "${missing[@]}"; do
	[ "$(ctl 3 batches -o json | jq --arg d "$d" '[.batches[].digest] | index($d)')" != null ] ||
		die "v3 served $d without storing it"
done
P=$(ctl 3 payload --max-inline-txns 1000 --max-inline-bytes 1MiB -o json)
for d in "${missing[@]}"; do
	[ "$(jq --arg d "$d" '[.inline_batches[].info.digest] | index($d)' <<<"$P")" != null ] ||
		die "v3 did not inline $d after storing it: $P"
done
echo "ok: (b) 3 batches fetched from their signers, stored, served from memory, inlined"

# (c) A batch nobody has.
miss0=$(metric 3 'qsd_batch_fetch_total{source="peer",result="miss"}')
[ -n "$miss0" ] || die "v3 does not export qsd_batch_fetch_total"
nobody=$(printf '%064d' 7)
t0=$SECONDS
if out=$(ctl 3 batch show "$nobody" 2>&1); then
	die "a batch nobody has was served: $out"
fi
grep -q NOT_FOUND <<<"$out" || die "want NOT_FOUND, got: $out"
[ $((SECONDS - t0)) -le 10 ] || die "the miss took $((SECONDS - t0)) s"
[ "$(metric 3 'qsd_batch_fetch_total{source="peer",result="miss"}')" = $((miss0 + 1)) ] ||
	die "the miss was not counted"
grep -q "event=batch_fetch_missed digest=$nobody" "$T/v3.log" || die "the miss was not logged"
echo "ok: (c) NOT_FOUND for a batch nobody has, counted and logged"

# (d) Commit on v3: the proofs leave its queue, also across a restart.
C=$(ctl 3 commit -o json "${missing[@]}")
[ "$(jq '.proofs_removed' <<<"$C")" = 3 ] || die "commit: $C"
proofs_on 3 $((3 * PER_AUTHOR)) || die "the committed proofs are still queued"
kill "${pid[3]}"
wait "${pid[3]}" 2>/dev/null || true
start_node 3
until_ok 30 connected_to 3 3 || die "v3 did not reconnect"
Q=$(ctl 3 proofs -o json)
for d in "${missing[@]}"; do
	[ "$(jq --arg d "$d" '[.proofs[].info.digest] | index($d)' <<<"$Q")" = null ] ||
		die "committed proof $d came back after a restart"
done
[ "$(jq '.count' <<<"$Q")" -ge $((3 * PER_AUTHOR)) ] || die "proofs lost across a restart: $Q"
echo "ok: (d) committed proofs removed, also after a restart"
