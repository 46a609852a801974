#!/bin/bash
# Corruption is fail-stop and never served: a stored payload is overwritten
# behind qsd's back (RocksDB's ldb, qsd stopped), then a peer asks for it.
# qsd recomputes the digest of what the disk returned, refuses to serve it
# (not_found), counts qsd_persist_failures_total{reason="corruption"}, says
# why at LOG_CRIT and exits 74. The other batches are untouched.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
command -v ldb >/dev/null || fail "ldb is missing (Debian package rocksdb-tools; tools/deps installs it)"

base=$(pick_base_port)
url=http://127.0.0.1:$((base + 100))
tools/mkcluster 4 "$T/c" "$base" >/dev/null
cfg=$T/c/v0/qsd.yaml
printf 'max_batch_lifetime_ms: 3600000\n' >>"$cfg"

start_qsd "$cfg" "$T/qsd.log"
wait_http "$url/healthz" 30 || fail "qsd did not start"
"$B/qsbench" run -d "$T/c" -p 1 -s 4096 -t 4 -c 20 -D 20 -q -j -o "$T/acked" >"$T/run.json" 2>"$T/run.err" ||
	fail "load failed: $(cat "$T/run.err")"
kill -TERM "$QS_PID"
wait_exit "$QS_PID" 20
[ "$WAIT_RC" = 0 ] || fail "exit $WAIT_RC on SIGTERM"

# Overwrite the first acked batch's payload with a well-formed one (one
# transaction, "evil") that does not hash to its digest.
read -r digest _ _ expiration _ <"$T/acked"
key=$(printf '%016x%s' "$expiration" "$digest")
ldb --db="$T/c/v0/data" --column_family=batches --hex put "0x$key" 0x00000001000000046576696c \
	>"$T/ldb.out" 2>&1 || fail "ldb put failed: $(cat "$T/ldb.out")"
tail -n +2 "$T/acked" >"$T/others"
head -n 1 "$T/acked" >"$T/victim"

start_qsd "$cfg" "$T/qsd.log"
wait_http "$url/healthz" 30 || fail "qsd did not restart"
# The untouched batches are served.
out=$("$B/qsbench" verify -d "$T/c" -f "$T/others" 2>"$T/v1.err") || fail "verify of the others: $out"
# The overwritten one is not served, and qsd stops.
set +e
out=$("$B/qsbench" verify -d "$T/c" -f "$T/victim" 2>"$T/v2.err")
set -e
grep -q "verified=0" <<<"$out" || fail "a corrupt batch was served: $out"
grep -q "altered=0" <<<"$out" || fail "qsd served altered bytes: $out"
wait_exit "$QS_PID" 10
[ "$WAIT_RC" = 74 ] || fail "qsd exited $WAIT_RC after finding corruption, want 74"
grep -q "^<2>event=stored_batch_corrupt digest=$digest" "$T/qsd.log" || fail "no stored_batch_corrupt line"
grep -q '^<2>event=storage_state from=ok to=failed reason="storage corruption' "$T/qsd.log" ||
	fail "no storage_state line naming corruption"
echo "ok: corruption: a payload that does not match its digest is not served; exit 74"
