#!/bin/bash
# qsbench's serving modes against real qsd processes on 127.0.0.1, briefly:
#   (a) consensus on a 4-validator cluster (all four running): submits,
#       proposes, executes and commits blocks; exit 0, blocks committed,
#       no miss, no digest mismatch, no error; the batches it recorded read
#       back intact with verify;
#   (b) proofs on a 5-validator cluster where only v0 runs: 200 proofs from
#       the 4 simulated validators, each signed by the 4 of them (a
#       quorum of 5), all queued; on a 3-validator cluster the 2 simulated
#       validators are no quorum (exit 2);
#   (c) payload against that v0: exit 0, JSON fields, proofs in every
#       answer, --max-txns honoured, pipelined with -i 8, a spinning client (-S);
#   (d) run -V against that v0: acks, none with a bad signature; -V with a
#       record file is a usage error;
#   (e) pingpong: a second of exchanges of the given sizes, waiting and
#       spinning, the answering process gone when it returns; a size of 0 is
#       a usage error.
# JSON output is read with jq.
#
# Environment: B (build directory), QS_KEEP_TMP (keep the cluster directories).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
command -v jq >/dev/null || fail "jq is missing (Debian package jq; tools/deps installs it)"
QSBENCH=$B/qsbench
[ -x "$QSBENCH" ] || fail "$QSBENCH is missing"

# json_check FILE FILTER WHAT: jq -e FILTER on FILE, or fail with WHAT.
json_check() {
	jq -e "$2" "$1" >/dev/null || fail "$3: $(cat "$1")"
}

# --- (a) consensus ---------------------------------------------------------
base=$(pick_base_port)
tools/mkcluster 4 "$T/c4" "$base" >/dev/null
for i in 0 1 2 3; do
	start_qsd "$T/c4/v$i/qsd.yaml" "$T/c4/v$i.log"
done
for i in 0 1 2 3; do
	wait_http "http://127.0.0.1:$((base + 100 + i))/healthz" 10 || fail "v$i did not start"
done
rc=0
"$QSBENCH" consensus -d "$T/c4" -n 0 -r 50 -D 4 -I 100 -w 10 -q -j -o "$T/crec" \
	>"$T/cons.json" 2>"$T/cons.err" || rc=$?
[ "$rc" = 0 ] || fail "consensus exited $rc: $(cat "$T/cons.err" "$T/cons.json")"
json_check "$T/cons.json" '.ok > 0 and .bad_responses == 0' "consensus: submitted nothing"
json_check "$T/cons.json" '.consensus | .payloads > 0 and .commits > 0 and
	.commits == .payloads and .misses == 0 and .digest_mismatches == 0 and .errors == 0' \
	"consensus: blocks not proposed and committed cleanly"
json_check "$T/cons.json" '.consensus | (.proofs + .inline_batches) > 0 and
	(.get_batch.memory + .get_batch.disk + .get_batch.peer) == .proofs and
	.proofs_removed > 0' "consensus: no batch executed or no proof removed"
json_check "$T/cons.json" '.consensus | .get_payload_latency_us.samples == .payloads and
	.get_payload_latency_us.p99 >= .get_payload_latency_us.p50 and
	(.get_batch_latency_us | has("p50") and has("p99"))' "consensus: latency fields"
"$QSBENCH" verify -d "$T/c4" -n 0 -f "$T/crec" >"$T/verify.out" 2>&1 ||
	fail "verify of the consensus record: $(cat "$T/verify.out")"
grep -q ' missing=0 altered=0 ' "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
for p in "${QS_PIDS[@]}"; do
	kill -TERM "$p" 2>/dev/null || true
done
for p in "${QS_PIDS[@]}"; do
	wait_exit "$p" 20
	[ "$WAIT_RC" = 0 ] || fail "qsd $p exited $WAIT_RC after SIGTERM"
done
QS_PIDS=()

# --- (b) proofs ------------------------------------------------------------
base5=$(pick_base_port)
while [ "$base5" = "$base" ]; do
	base5=$(pick_base_port)
done
tools/mkcluster 5 "$T/c5" "$base5" >/dev/null
printf 'max_batch_lifetime_ms: 600000\n' >>"$T/c5/v0/qsd.yaml"
start_qsd "$T/c5/v0/qsd.yaml" "$T/c5/v0.log"
wait_http "http://127.0.0.1:$((base5 + 100))/healthz" 10 || fail "v0 of c5 did not start"
rc=0
"$QSBENCH" proofs -d "$T/c5" -n 0 -a 4 -c 200 -q -j >"$T/proofs.json" 2>"$T/proofs.err" || rc=$?
[ "$rc" = 0 ] || fail "proofs exited $rc: $(cat "$T/proofs.err" "$T/proofs.json")"
json_check "$T/proofs.json" '.authors == 4 and .signers == 4 and .count == 200 and
	.acked == 200 and .proofs_sent == 200 and .queued == 200 and
	.proof_queue_size == .proof_queue_before + 200 and .bad_signatures == 0 and
	.protocol_errors == 0 and .proofs_per_s > 0' "proofs: not every proof queued"
"$QSCTL" -s "$T/c5/v0/rpc.sock" status -o json >"$T/status.json" || fail "qsctl status"
json_check "$T/status.json" '.proof_queue_size == 200' "qsctl status after proofs"

tools/mkcluster 3 "$T/c3" "$base" >/dev/null
rc=0
"$QSBENCH" proofs -d "$T/c3" -n 0 -c 10 -q -j >/dev/null 2>"$T/noquorum.err" || rc=$?
[ "$rc" = 2 ] || fail "proofs without a quorum of simulated validators exited $rc, not 2"
grep -q 'quorum' "$T/noquorum.err" || fail "proofs without a quorum: $(cat "$T/noquorum.err")"

# --- (c) payload -----------------------------------------------------------
rc=0
"$QSBENCH" payload -d "$T/c5" -n 0 -D 2 -q -j >"$T/payload1.json" 2>"$T/payload.err" || rc=$?
[ "$rc" = 0 ] || fail "payload exited $rc: $(cat "$T/payload.err" "$T/payload1.json")"
json_check "$T/payload1.json" '.inflight == 1 and .ok > 0 and .ok == .requests and
	.errors == 0 and .unanswered == 0 and .disconnected == false and .empty == 0 and
	.proofs_per_answer + .inline_per_answer > 0 and .requests_per_s > 0 and
	.latency_us.samples == .ok and .latency_us.p50 <= .latency_us.p99 and
	.latency_us.p99 <= .latency_us.p999 and .max_txns == 2000 and
	.max_inline_txns == 100 and .return_non_full == true and
	.request_bytes > 4 and .answer_bytes > 4' "payload -i 1"
rc=0
"$QSBENCH" payload -d "$T/c5" -n 0 -D 1 -i 8 --max-txns 16 --max-inline-txns 0 -q -j \
	>"$T/payload8.json" 2>"$T/payload.err" || rc=$?
[ "$rc" = 0 ] || fail "payload -i 8 exited $rc: $(cat "$T/payload.err" "$T/payload8.json")"
json_check "$T/payload8.json" '.inflight == 8 and .ok > 0 and .errors == 0 and
	.max_proofs == 2 and .inline_per_answer == 0 and .proofs_per_answer == 2' \
	"payload -i 8 --max-txns 16 (batches of 8 transactions)"
rc=0
"$QSBENCH" payload -d "$T/c5" -n 0 -D 1 -S 200 -q -j >"$T/payloads.json" 2>"$T/payload.err" ||
	rc=$?
[ "$rc" = 0 ] || fail "payload -S 200 exited $rc: $(cat "$T/payload.err" "$T/payloads.json")"
json_check "$T/payloads.json" '.spin_us == 200 and .ok > 0 and .ok == .requests and
	.errors == 0 and .disconnected == false' "payload -S 200 (a spinning client)"
rc=0
"$QSBENCH" payload -d "$T/c5" --max-txns x >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "payload --max-txns x exited $rc, not 2"
rc=0
"$QSBENCH" payload -d "$T/c5" -S 100001 >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "payload -S over the client's limit exited $rc, not 2"

# --- (d) run -V: acks counted as they come, signatures checked after --------
rc=0
"$QSBENCH" run -d "$T/c5" -n 0 -p 1 -s 4096 -t 4 -D 1 -g 2 -V -q -j >"$T/runv.json" \
	2>"$T/runv.err" || rc=$?
[ "$rc" = 0 ] || fail "run -V exited $rc: $(cat "$T/runv.err" "$T/runv.json")"
json_check "$T/runv.json" '.acked > 0 and .bad_signatures == 0 and .nacked == 0' "run -V"
rc=0
"$QSBENCH" run -d "$T/c5" -V -o "$T/runv.rec" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "run -V -o exited $rc, not 2"

# --- (e) pingpong: the bare socket floor bench/run sets beside GetPayload ---
rc=0
"$QSBENCH" pingpong -r 24 -a 40000 -D 1 -j >"$T/pp.json" 2>"$T/pp.err" || rc=$?
[ "$rc" = 0 ] || fail "pingpong exited $rc: $(cat "$T/pp.err" "$T/pp.json")"
json_check "$T/pp.json" '.request_bytes == 24 and .answer_bytes == 40000 and .requests > 0 and
	.requests_per_s > 0 and .latency_us.p50 <= .latency_us.p99 and .spin_us == 0' "pingpong"
rc=0
"$QSBENCH" pingpong -r 24 -a 40000 -D 1 -S 200 -j >"$T/pps.json" 2>"$T/pp.err" || rc=$?
[ "$rc" = 0 ] || fail "pingpong -S 200 exited $rc: $(cat "$T/pp.err" "$T/pps.json")"
json_check "$T/pps.json" '.spin_us == 200 and .requests > 0' "pingpong -S 200"
pgrep -f "qsbench pingpong" >/dev/null && fail "pingpong left its answering process running"
rc=0
"$QSBENCH" pingpong -a 0 >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "pingpong -a 0 exited $rc, not 2"
echo "PASS: qsbench consensus, proofs, payload, run -V, pingpong"
