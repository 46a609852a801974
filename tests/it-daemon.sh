#!/bin/bash
# qsd starts, serves /metrics and /healthz (503 "no quorum of peers" while
# it is alone), stops on SIGTERM with exit 0;
# -t and -V behave as documented.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

base=$(pick_base_port)
tools/mkcluster 4 "$T/c" "$base" >/dev/null
cfg=$T/c/v0/qsd.yaml
mport=$((base + 100))

# -V names qsd and every library.
out=$("$QSD" -V)
for lib in qsd rocksdb libevent openssl protobuf-c libyaml; do
	grep -q "^$lib [0-9]" <<<"$out" || fail "qsd -V lacks $lib: $out"
done

# -t: valid config exits 0; a bad one 78 with FILE:LINE:COLUMN.
"$QSD" -t -c "$cfg" >/dev/null || fail "qsd -t rejected a valid config"
sed 's/^epoch:.*/epoch: -1/' "$cfg" >"$T/bad.yaml"
set +e
msg=$("$QSD" -t -c "$T/bad.yaml" 2>&1)
rc=$?
set -e
[ "$rc" -eq 78 ] || fail "qsd -t on a bad config exited $rc, want 78"
grep -Eq "bad.yaml:[0-9]+:[0-9]+: epoch:" <<<"$msg" || fail "no FILE:LINE:COLUMN: KEY in: $msg"

# A key file readable by others is refused, with 78.
chmod 0644 "$T/c/v0/keys/signing.key"
set +e
msg=$("$QSD" -t -c "$cfg" 2>&1)
rc=$?
set -e
[ "$rc" -eq 78 ] || fail "world-readable key accepted (rc $rc)"
grep -q "signing" <<<"$msg" || fail "message does not name the key: $msg"
chmod 0600 "$T/c/v0/keys/signing.key"

# Another validator's signing key is not this node's identity.
sed "s#^signing_key:.*#signing_key: $T/c/v1/keys/signing.key#" "$cfg" >"$T/swap.yaml"
set +e
msg=$("$QSD" -t -c "$T/swap.yaml" 2>&1)
rc=$?
set -e
[ "$rc" -eq 78 ] || fail "mismatched keys accepted (rc $rc)"

# Start, scrape, stop.
start_qsd "$cfg" "$T/qsd.log"
wait_http "http://127.0.0.1:$mport/metrics" 10 || { cat "$T/qsd.log"; fail "no metrics endpoint"; }
curl -s "http://127.0.0.1:$mport/metrics" >"$T/m.txt"
grep -q '^# TYPE qsd_build_info gauge' "$T/m.txt" || fail "no qsd_build_info TYPE"
grep -q '^# HELP qsd_build_info ' "$T/m.txt" || fail "no qsd_build_info HELP"
grep -Eq '^qsd_build_info\{version="[^"]+",rocksdb="7\.' "$T/m.txt" || fail "bad build_info: $(grep build_info "$T/m.txt")"
grep -q '^qsd_storage_state{state="ok"} 1' "$T/m.txt" || fail "storage state not ok"
# One node of four up: storage is fine but no quorum could sign.
[ "$(curl -s -w '%{http_code}' -o "$T/h.txt" "http://127.0.0.1:$mport/healthz")" = 503 ] ||
	fail "healthz not 503 without a quorum of peers"
grep -qx 'no quorum of peers' "$T/h.txt" || fail "healthz body: $(cat "$T/h.txt")"
[ "$(curl -s -w '%{http_code}' -o /dev/null "http://127.0.0.1:$mport/nope")" = 404 ] || fail "unknown path not 404"
grep -q 'event=ready' "$T/qsd.log" || fail "no ready line in the log"
grep -q '^<[0-7]>event=' "$T/qsd.log" || fail "log lines lack priority prefixes"

kill -TERM "$QS_PID"
wait_exit "$QS_PID" 10
[ "$WAIT_RC" = 0 ] || { cat "$T/qsd.log"; fail "SIGTERM exit code $WAIT_RC, want 0"; }
grep -q 'event=stopped' "$T/qsd.log" || fail "no stopped line"

# kill -9 and restart: the database reopens.
start_qsd "$cfg" "$T/qsd2.log"
wait_http "http://127.0.0.1:$mport/healthz" 10 || fail "no restart"
kill -9 "$QS_PID"
wait "$QS_PID" 2>/dev/null || true
start_qsd "$cfg" "$T/qsd3.log"
wait_http "http://127.0.0.1:$mport/healthz" 10 || { cat "$T/qsd3.log"; fail "no start after kill -9"; }
kill -INT "$QS_PID"
wait_exit "$QS_PID" 10
[ "$WAIT_RC" = 0 ] || fail "SIGINT exit code $WAIT_RC, want 0"
echo "ok: daemon lifecycle"
