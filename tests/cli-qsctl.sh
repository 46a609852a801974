#!/bin/bash
# qsctl's operator commands against a real qsd: the only validator of a
# 1-validator cluster (tools/mkcluster 1), so every batch it stores is a
# proof of store at once. Batches are submitted with `qsctl submit`, then:
#   (a) db check, offline, on the stopped node's data directory: clean, with
#       the counts of what was submitted (exit 0); on copies damaged with
#       RocksDB's ldb, each damage named with its column family and key
#       (exit 1): a payload that does not hash to its digest, a payload
#       missing, a payload without its info, a proof that does not decode,
#       and more problems than the JSON report lists; no database (exit 2),
#       and the directory is left as it was;
#   (b) over RPC, qsd restarted: batches (every page, --limit, --author, text
#       and JSON; a key of no validator is INVALID_ARGUMENT), batch show (the transactions as submitted, checked against
#       the digest; an unknown digest is NOT_FOUND), proofs (signer 0 only),
#       payload (defaults, --exclude, --max-txns, inline limits), commit
#       (the committed proof leaves the proof queue and the payload);
#   (c) db check after the commit: still clean.
# JSON output is read with jq.
#
# Environment: B (build directory), QS_KEEP_TMP (keep the cluster directory).
# shellcheck disable=SC2016 # $names in single-quoted jq filters are jq's
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
command -v jq >/dev/null || fail "jq is missing (Debian package jq; tools/deps installs it)"
command -v ldb >/dev/null || fail "ldb is missing (Debian package rocksdb-tools; tools/deps installs it)"
[ -x "$QSCTL" ] || fail "$QSCTL is missing"

N=6 # batches submitted

base=$(pick_base_port)
tools/mkcluster 1 "$T/c" "$base" >/dev/null
cfg=$T/c/v0/qsd.yaml
sock=$T/c/v0/rpc.sock
data=$T/c/v0/data
url=http://127.0.0.1:$((base + 100))
# Batches outlive the test.
printf 'max_batch_lifetime_ms: 3600000\n' >>"$cfg"
me=$(cat "$T/c/v0/keys/signing.pub")

# run_q WANT ARGS...: run qsctl on the node's socket and require exit
# status WANT; its stdout is left in OUT.
OUT=
run_q() {
	local want=$1 rc=0
	shift
	OUT=$("$QSCTL" -s "$sock" -t 20000 "$@" 2>"$T/err") || rc=$?
	[ "$rc" = "$want" ] ||
		fail "qsctl $* exited $rc, want $want; stderr: $(cat "$T/err"); stdout: $(head -c 2000 <<<"$OUT")"
}

# jcheck JSON FILTER [JQ_ARGS...]: the jq boolean FILTER holds for JSON.
jcheck() {
	local json=$1 filter=$2
	shift 2
	jq -e "$@" "$filter" >/dev/null <<<"$json" ||
		fail "jq '$filter' does not hold for: $(head -c 3000 <<<"$json")"
}

hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

stop_node() {
	kill -TERM "$QS_PID"
	wait_exit "$QS_PID" 30
	[ "$WAIT_RC" = 0 ] || fail "qsd exited $WAIT_RC on SIGTERM: $(tail -n 20 "$T/qsd.log")"
}

start_node() {
	start_qsd "$cfg" "$T/qsd.log"
	wait_http "$url/healthz" 60 || fail "qsd did not start: $(tail -n 20 "$T/qsd.log")"
}

start_node

# Batch i has i + 1 transactions, one per line of its file.
digest=()
expiration=()
txn_bytes=0
for ((i = 0; i < N; i++)); do
	for ((j = 0; j <= i; j++)); do
		line="txn-$i-$j-$RANDOM$RANDOM"
		echo "$line"
		txn_bytes=$((txn_bytes + ${#line}))
	done >"$T/batch$i.txt"
	run_q 0 submit -f "$T/batch$i.txt" -o json
	jcheck "$OUT" '.duplicate == false and .info.author == $me and .info.num_txns == $n' \
		--arg me "$me" --argjson n $((i + 1))
	digest[i]=$(jq -r .info.digest <<<"$OUT")
	expiration[i]=$(jq -r .info.expiration_us <<<"$OUT")
	[[ ${digest[i]} =~ ^[0-9a-f]{64}$ ]] || fail "submit printed digest '${digest[i]}'"
done
all_digests=$(printf '%s\n' "${digest[@]}" | jq -R . | jq -s -c sort)
# key DIGEST_INDEX: its key in batches, infos and proofs (expiration, digest).
key() { printf '%016x%s' "${expiration[$1]}" "${digest[$1]}"; }
stop_node

# ---- (a) db check, offline ----

run_q 0 db check "$data" -o json
report=$OUT
jcheck "$report" '.clean == true and .problems == [] and .problem_count == 0 and
	.problems_truncated == 0 and .schema_version == 1 and .infos == $n and
	.batches == $n and .proofs == $n and .payload_bytes >= $bytes and .bad_payloads == 0 and
	.bad_infos == 0 and .missing_payloads == 0 and .orphan_payloads == 0 and .bad_proofs == 0' \
	--argjson n "$N" --argjson bytes "$txn_bytes"
[ "$(wc -l <<<"$report")" = 1 ] || fail "db check -o json printed more than one line"
run_q 0 db check "$data"
grep -qx "infos: $N" <<<"$OUT" || fail "db check text: no 'infos: $N': $OUT"
grep -qx 'clean: true' <<<"$OUT" || fail "db check text: not clean: $OUT"
! grep -q '^problem:' <<<"$OUT" || fail "db check text lists problems: $OUT"
echo "ok: db check: a clean database, $N batches, exit 0"

# damaged NAME: a copy of the stopped node's database to damage.
damaged() {
	cp -a "$data" "$T/$1"
	echo "$T/$1"
}

# ldb_on DIR CF ARGS...: RocksDB's ldb on column family CF of DIR, keys and
# values in hex.
ldb_on() {
	local dir=$1 cf=$2
	shift 2
	ldb --db="$dir" --column_family="$cf" --hex "$@" >"$T/ldb.out" 2>&1 ||
		fail "ldb $* failed: $(cat "$T/ldb.out")"
}

# expect_problem JSON COUNTER CF KEY: exit 1 was checked; COUNTER is 1 and
# one problem names CF and KEY.
expect_problem() {
	jcheck "$1" '.clean == false and .[$counter] == 1 and .problem_count >= 1 and
		any(.problems[]; .cf == $cf and .key == $key and (.what | length) > 0)' \
		--arg counter "$2" --arg cf "$3" --arg key "$4"
}

# A payload overwritten with a well-formed one ("evil") that does not hash
# to its digest.
dir=$(damaged bad-payload)
ldb_on "$dir" batches put "0x$(key 1)" 0x00000001000000046576696c
run_q 1 db check "$dir" -o json
expect_problem "$OUT" bad_payloads batches "$(key 1)"
jcheck "$OUT" '.problems[] | select(.key == $key) | .digest == $digest and
	.expiration_us == $exp' --arg key "$(key 1)" --arg digest "${digest[1]}" \
	--argjson exp "${expiration[1]}"
run_q 1 db check "$dir"
grep -q "^problem: cf=batches key=$(key 1) expiration_us=${expiration[1]} digest=${digest[1]} what=." \
	<<<"$OUT" || fail "db check text does not name the payload: $OUT"
grep -qx 'bad_payloads: 1' <<<"$OUT" || fail "db check text: $OUT"
grep -qx 'clean: false' <<<"$OUT" || fail "db check text: $OUT"

# A payload missing: its info has nothing to describe.
dir=$(damaged missing-payload)
ldb_on "$dir" batches delete "0x$(key 2)"
run_q 1 db check "$dir" -o json
jcheck "$OUT" '.missing_payloads == 1 and .batches == $n - 1 and
	any(.problems[]; .key == $key)' --argjson n "$N" --arg key "$(key 2)"

# A payload without its info (a well-formed one of one transaction "abc").
orphan=$(printf '%016x%064x' $((expiration[0] + 1)) 4242)
dir=$(damaged orphan-payload)
ldb_on "$dir" batches put "0x$orphan" 0x0000000100000003616263
run_q 1 db check "$dir" -o json
expect_problem "$OUT" orphan_payloads batches "$orphan"

# A proof that does not decode (a field cut short).
dir=$(damaged bad-proof)
ldb_on "$dir" proofs put "0x$(key 3)" 0x0a05
run_q 1 db check "$dir" -o json
expect_problem "$OUT" bad_proofs proofs "$(key 3)"

# More problems than the JSON report lists: 1100 orphan payloads.
dir=$(damaged many)
pairs=()
for ((i = 0; i < 1100; i++)); do
	pairs+=("0x$(printf '%016x%064x' $((expiration[0] + 1)) $((100000 + i)))" 0x0000000100000001ff)
done
ldb_on "$dir" batches batchput "${pairs[@]}"
run_q 1 db check "$dir" -o json
jcheck "$OUT" '.orphan_payloads == 1100 and .problem_count == 1100 and
	(.problems | length) == 1000 and .problems_truncated == 100'
run_q 1 db check "$dir"
[ "$(grep -c '^problem: cf=batches ' <<<"$OUT")" = 1100 ] || fail "db check text does not list all 1100 problems"
echo "ok: db check: a bad payload, a missing one, an orphan, a bad proof, 1100 problems: exit 1, each named"

# No database: exit 2, nothing created.
mkdir "$T/empty"
run_q 2 db check "$T/empty" -o json
[ -z "$OUT" ] || fail "db check of an empty directory printed: $OUT"
[ -z "$(ls -A "$T/empty")" ] || fail "db check created files in an empty directory: $(ls -A "$T/empty")"
run_q 2 db check "$T/nonexistent"
[ ! -e "$T/nonexistent" ] || fail "db check created $T/nonexistent"
echo x >"$T/file"
run_q 2 db check "$T/file"
run_q 64 db check
echo "ok: db check: no database is exit 2, and nothing is created"

# ---- (b) over RPC ----

start_node
run_q 0 status -o json
jcheck "$OUT" '.storage_state == "ok" and .proof_queue_size == $n' --argjson n "$N"

# batches: every page, --limit, --author.
run_q 0 batches -o json
jcheck "$OUT" '.count == $n and .more == false and ([.batches[].digest] | sort) == $all and
	all(.batches[]; .author == $me and .epoch == 1 and (.expiration | test("^20[0-9-]+T[0-9:.]+Z$")))' \
	--argjson n "$N" --argjson all "$all_digests" --arg me "$me"
for ((i = 0; i < N; i++)); do
	jcheck "$OUT" '.batches[] | select(.digest == $d) | .num_txns == $t and
		.expiration_us == $exp' --arg d "${digest[i]}" --argjson t $((i + 1)) \
		--argjson exp "${expiration[i]}"
done
run_q 0 batches --limit 2 -o json
jcheck "$OUT" '.count == 2 and .more == true and (.batches | length) == 2'
run_q 0 batches --author "$me" -o json
jcheck "$OUT" '.count == $n' --argjson n "$N"
# A key outside the validator set is refused, and qsctl says why.
run_q 1 batches --author "$(printf '%064x' 1)" -o json
[ -z "$OUT" ] || fail "a refused listing printed: $OUT"
grep -q '^qsctl: ListBatches: INVALID_ARGUMENT: .' "$T/err" ||
	fail "batches --author of no validator: $(cat "$T/err")"
run_q 0 batches
[ "$(wc -l <<<"$OUT")" = $((N + 2)) ] || fail "batches text: want a header, $N rows, a summary: $OUT"
grep -q "^$N batches, " <<<"$OUT" || fail "batches text: no summary: $OUT"
for d in "${digest[@]}"; do
	grep -q "^$d  ${me:0:16}  " <<<"$OUT" || fail "batches text: no row for $d: $OUT"
done
echo "ok: batches"

# batch show: the transactions as submitted.
run_q 0 batch show "${digest[2]}" --txns -o json
want_txns=$(while read -r line; do hex "$line"; echo; done <"$T/batch2.txt" | jq -R . | jq -s -c .)
jcheck "$OUT" '.info.digest == $d and .verified == true and (.source == "memory" or .source == "disk")
	and .txn_count == 3 and .transactions == $txns' --arg d "${digest[2]}" --argjson txns "$want_txns"
run_q 0 batch show "${digest[2]}"
grep -qx 'verified: true' <<<"$OUT" || fail "batch show text: $OUT"
grep -qx "digest: ${digest[2]}" <<<"$OUT" || fail "batch show text: $OUT"
run_q 1 batch show "$(printf '%064x' 7)"
grep -q 'GetBatch: NOT_FOUND' "$T/err" || fail "batch show of an unknown digest: $(cat "$T/err")"
echo "ok: batch show"

# proofs: one per batch, signed by validator 0 alone.
run_q 0 proofs -o json
jcheck "$OUT" '.count == $n and ([.proofs[].info.digest] | sort) == $all and
	all(.proofs[]; .signers == [0] and .signer_count == 1 and .signatures == 1)' \
	--argjson n "$N" --argjson all "$all_digests"
run_q 0 proofs
grep -q "^$N proofs, " <<<"$OUT" || fail "proofs text: $OUT"
echo "ok: proofs"

# payload: all of them under the defaults; --exclude; --max-txns; inline.
run_q 0 payload -o json
jcheck "$OUT" '.totals.proof_batches == $n and .totals.inline_batches == 0 and
	([.proofs[].info.digest] | sort) == $all' --argjson n "$N" --argjson all "$all_digests"
run_q 0 payload --exclude "${digest[0]}" --exclude "${digest[5]}" -o json
jcheck "$OUT" '.totals.batches == $n - 2 and
	all(.proofs[]; .info.digest != $a and .info.digest != $b)' \
	--argjson n "$N" --arg a "${digest[0]}" --arg b "${digest[5]}"
run_q 0 payload --max-txns 3 -o json
jcheck "$OUT" '.totals.num_txns <= 3 and .totals.batches >= 1'
run_q 0 payload --max-inline-txns 1000 --max-inline-bytes 1MiB -o json
jcheck "$OUT" '.totals.batches == $n and
	([.proofs[].info.digest, .inline_batches[].info.digest] | sort) == $all and
	all(.inline_batches[]; .txn_count == .info.num_txns and .txn_bytes == .info.num_bytes)' \
	--argjson n "$N" --argjson all "$all_digests"
run_q 0 payload
grep -q "^total: $N batches, " <<<"$OUT" || fail "payload text: $OUT"
echo "ok: payload"

# commit: the committed proof leaves the queue and the payload.
run_q 0 commit "${digest[4]}" -o json
jcheck "$OUT" '.proofs_removed == 1 and .digests == 1'
run_q 0 proofs -o json
jcheck "$OUT" '.count == $n - 1 and all(.proofs[]; .info.digest != $d)' \
	--argjson n "$N" --arg d "${digest[4]}"
run_q 0 payload -o json
jcheck "$OUT" '.totals.batches == $n - 1 and all(.proofs[]; .info.digest != $d)' \
	--argjson n "$N" --arg d "${digest[4]}"
run_q 0 commit "${digest[4]}"
grep -qx 'proofs_removed: 0' <<<"$OUT" || fail "a second commit removed a proof: $OUT"
echo "ok: commit"
stop_node

# ---- (c) db check after the commit ----
run_q 0 db check "$data" -o json
jcheck "$OUT" '.clean == true and .infos == $n and .batches == $n and .proofs >= $n - 1 and
	.proofs <= $n' --argjson n "$N"
run_q 2 batches
grep -q 'cannot connect to qsd' "$T/err" || fail "qsctl without qsd: $(cat "$T/err")"
echo "ok: qsctl: db check, batches, batch show, proofs, payload, commit"
