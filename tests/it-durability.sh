#!/bin/bash
# Durability across kill -9: qsbench sends from 3 peers while qsd is killed
# with SIGKILL at random moments and restarted; afterwards every batch that
# was acked (SignedBatchInfo with a valid signature) is served intact.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

KILLS=${QS_KILLS:-5}
base=$(pick_base_port)
tools/mkcluster 4 "$T/c" "$base" >/dev/null
cfg=$T/c/v0/qsd.yaml
mport=$((base + 100))
# Long-lived batches, so that everything acked must still be there at the end.
sed -i 's/^log_level:.*/log_level: notice\nmax_batch_lifetime_ms: 3600000/' "$cfg"

start_qsd "$cfg" "$T/qsd.log"
wait_http "http://127.0.0.1:$mport/healthz" 20 || { cat "$T/qsd.log"; fail "qsd did not start"; }

duration=$((KILLS * 3 + 4))
"$B/qsbench" run -d "$T/c" -n 0 -p 1,2,3 -s 16384 -t 8 -i 16 -l 3600 -D "$duration" -R -q -j \
	-o "$T/acked" >"$T/run.json" 2>"$T/run.err" &
bench=$!

for ((k = 1; k <= KILLS; k++)); do
	sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 1 + (r % 150) / 100 }')"
	kill -9 "$QS_PID"
	wait "$QS_PID" 2>/dev/null || true
	echo "kill $k: qsd killed with SIGKILL"
	start_qsd "$cfg" "$T/qsd.log"
	wait_http "http://127.0.0.1:$mport/healthz" 30 || { tail -20 "$T/qsd.log"; fail "no restart after kill $k"; }
done

wait "$bench" || { cat "$T/run.err"; fail "qsbench run failed"; }
acked=$(wc -l <"$T/acked")
echo "acked: $acked batches; summary: $(cat "$T/run.json")"
[ "$acked" -gt 50 ] || fail "too few acks ($acked) for the test to mean anything"

# One more hard kill right after the load, then verify on a fresh start.
kill -9 "$QS_PID"
wait "$QS_PID" 2>/dev/null || true
start_qsd "$cfg" "$T/qsd.log"
wait_http "http://127.0.0.1:$mport/healthz" 30 || fail "no restart for verify"
"$B/qsbench" verify -d "$T/c" -n 0 -p 1 -f "$T/acked" >"$T/verify.out" 2>&1 ||
	{ cat "$T/verify.out"; fail "acked batches missing or altered after kill -9"; }
cat "$T/verify.out"
grep -q "missing=0 altered=0" "$T/verify.out" || fail "verify output: $(cat "$T/verify.out")"
kill -TERM "$QS_PID"
wait_exit "$QS_PID" 20
[ "$WAIT_RC" = 0 ] || fail "SIGTERM exit $WAIT_RC"
echo "ok: durability across $((KILLS + 1)) kill -9"
