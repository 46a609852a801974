#!/bin/bash
# Operating qsd as systemd runs it, with a fake NOTIFY_SOCKET
# (tests/lib/notify_listen.py) in place of systemd:
#   1. start: EXTEND_TIMEOUT_USEC while recovering, READY=1 only once the peer,
#      RPC and HTTP listeners accept connections, with its STATUS line;
#      WATCHDOG=1 pings at half of WATCHDOG_USEC;
#   2. SIGHUP: RELOADING=1 then READY=1; a bad file is refused and the
#      running limits stay (event=reload_failed says why); a good one applies
#      a lower limits.batch_max_txns at once (qsctl submit over it is
#      refused) and names the changed restart-only key (event=reloaded);
#      a validator's new address is dialed at once;
#   3. SIGTERM under load: STOPPING=1, exit 0, and no acked batch lost;
#   4. socket activation: the RPC socket passed by systemd-socket-activate
#      under the name "rpc" is served, and left in place at exit.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

PY=/usr/bin/python3
base=$(pick_base_port)
tools/mkcluster 4 "$T/c" "$base" >/dev/null
cfg=$T/c/v0/qsd.yaml
cp "$cfg" "$T/qsd.yaml.orig"
mport=$((base + 100))
sock=$T/c/v0/rpc.sock
notes=$T/notify.txt
log=$T/qsd.log

# The datagrams received so far, one per line, without the timestamp.
messages() {
	sed 's/^[0-9]* //' "$notes" 2>/dev/null || true
}

# count FIELD: how many datagrams hold the line FIELD.
count() {
	messages | awk -v f="$1" -F'|' '{ for (i = 1; i <= NF; i++) if ($i == f) { n++; break } }
		END { print n + 0 }'
}

# wait_count FIELD N SECONDS: wait until N datagrams hold FIELD.
wait_count() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(count "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_log PATTERN SECONDS: wait until the log has a line matching PATTERN.
wait_log() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -Eq "$1" "$log" && return 0
		sleep 0.1
	done
	return 1
}

# submit N: qsctl submit of N 10-byte transactions; prints qsctl's exit code.
submit() {
	local rc=0
	"$QSCTL" -s "$sock" submit -n "$1" -b 10 >"$T/submit.out" 2>&1 || rc=$?
	echo "$rc"
}

"$PY" tests/lib/notify_listen.py "$T/notify.sock" "$notes" "tcp:127.0.0.1:$base" \
	"tcp:127.0.0.1:$mport" "unix:$sock" &
QS_PIDS+=("$!")
for ((i = 0; i < 50; i++)); do
	[ -S "$T/notify.sock" ] && break
	sleep 0.1
done
[ -S "$T/notify.sock" ] || fail "the fake NOTIFY_SOCKET did not start"

# ---- 1. start ----
# WATCHDOG_PID unset: the watchdog is meant for whichever process reads it.
export NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=2000000
start_qsd "$cfg" "$log"
unset NOTIFY_SOCKET WATCHDOG_USEC
qsd=$QS_PID
wait_count READY=1 1 30 || { cat "$log"; fail "no READY=1 within 30 s"; }
grep -q ' PROBE ' "$notes" || fail "the listener probed nothing at READY=1"
if grep ' PROBE ' "$notes" | grep -qv ' ok$'; then
	fail "READY=1 came before a listener accepted connections: $(grep ' PROBE ' "$notes")"
fi
ready=$(messages | grep -m1 -E '(^|\|)READY=1(\||$)')
grep -Eq '(^|\|)STATUS=epoch 1, peers [0-9]+/3, [0-9]+ batches, [0-9]+ proofs, storage ok(\||$)' \
	<<<"$ready" || fail "READY=1 without the status line (daemon.c: qs_notify_ready): $ready"
first=$(messages | head -1)
grep -q 'EXTEND_TIMEOUT_USEC=' <<<"$first" ||
	fail "the first datagram is not EXTEND_TIMEOUT_USEC (daemon.c: qs_notify_extend_begin before opening the database): $first"
before_ready=$(messages | sed -n '/READY=1/q;p')
if grep -q 'WATCHDOG=1' <<<"$before_ready"; then
	fail "WATCHDOG=1 before READY=1"
fi
# 2 s watchdog: a ping every second from READY on.
wait_count WATCHDOG=1 3 6 || fail "$(count WATCHDOG=1) WATCHDOG=1 in 6 s at WATCHDOG_USEC=2000000 (daemon.c: qs_notify_new with a healthy() callback)"
echo "ok: READY=1 after the listeners, status line, EXTEND_TIMEOUT_USEC, watchdog"

# ---- 2. SIGHUP ----
[ "$(submit 6)" = 0 ] || fail "submit of 6 transactions refused before any reload: $(cat "$T/submit.out")"
reloading=$(count RELOADING=1)
readies=$(count READY=1)
printf 'limits:\n  batch_max_txns: 0\n' >>"$cfg"
kill -HUP "$qsd"
wait_log 'event=reload_failed' 10 || fail "no event=reload_failed after SIGHUP with a bad file (daemon.c: SIGHUP handler)"
grep 'event=reload_failed' "$log" | grep -q 'qsd.yaml:[0-9]*:[0-9]*: limits.batch_max_txns' ||
	fail "reload_failed does not say why: $(grep 'event=reload_failed' "$log")"
kill -0 "$qsd" || fail "qsd died on a bad reload"
wait_count RELOADING=1 $((reloading + 1)) 5 || fail "no RELOADING=1 for the SIGHUP"
wait_count READY=1 $((readies + 1)) 5 || fail "no READY=1 after the refused reload"
[ "$(submit 6)" = 0 ] || fail "the refused file changed the limits: $(cat "$T/submit.out")"

cp "$T/qsd.yaml.orig" "$cfg"
printf 'limits:\n  batch_max_txns: 5\n' >>"$cfg"
sed -i "s/127.0.0.1:$mport/127.0.0.1:$((mport + 50))/" "$cfg"
kill -HUP "$qsd"
wait_log 'event=reloaded' 10 || fail "no event=reloaded after SIGHUP with a good file: $(tail -3 "$log")"
line=$(grep 'event=reloaded' "$log" | tail -1)
grep -q 'limits.batch_max_txns' <<<"$line" || fail "reloaded does not name the applied key: $line"
grep -q 'restart_needed=.*metrics.listen' <<<"$line" ||
	fail "reloaded does not name the restart-only key: $line"
wait_count READY=1 $((readies + 2)) 5 || fail "no READY=1 after the applied reload"
rc=$(submit 6)
[ "$rc" = 1 ] || fail "submit of 6 transactions over batch_max_txns 5 exited $rc: $(cat "$T/submit.out")"
[ "$(submit 5)" = 0 ] || fail "submit of 5 transactions refused: $(cat "$T/submit.out")"
curl -sf -o /dev/null "http://127.0.0.1:$mport/metrics" ||
	fail "metrics.listen moved without a restart"
echo "ok: SIGHUP refuses a bad file, applies new limits, names restart-only keys"

# Back to the original limits.
cp "$T/qsd.yaml.orig" "$cfg"
kill -HUP "$qsd"
wait_count READY=1 $((readies + 3)) 5 || fail "no READY=1 after restoring the file"
[ "$(submit 6)" = 0 ] || fail "the original limits did not come back: $(cat "$T/submit.out")"

# A validator that moved: v0 dials v1 (listed after it) at the new address
# as soon as a reload names it.
v1cfg=$T/c/v1/qsd.yaml
"$QSD" -c "$v1cfg" 2>"$T/v1.log" &
v1=$!
QS_PIDS+=("$v1")
wait_log "event=peer_connected peer=v1 direction=outbound addr=127.0.0.1:$((base + 1))" 20 ||
	fail "v0 did not connect to v1"
kill -TERM "$v1"
wait_exit "$v1" 20
moved=$((base + 61))
sed -i "s/^listen: .*/listen: \"127.0.0.1:$moved\"/" "$v1cfg"
"$QSD" -c "$v1cfg" 2>>"$T/v1.log" &
v1=$!
QS_PIDS+=("$v1")
sed -i "s/127.0.0.1:$((base + 1))\"/127.0.0.1:$moved\"/" "$cfg"
kill -HUP "$qsd"
wait_count READY=1 $((readies + 4)) 5 || fail "no READY=1 after the address reload"
wait_log "event=peer_address_changed peer=v1 old=127.0.0.1:$((base + 1)) new=127.0.0.1:$moved" 5 ||
	fail "no peer_address_changed for v1 (daemon.c: qs_peers_reload on QS_RELOAD_ADDRESSES)"
wait_log "event=peer_connected peer=v1 direction=outbound addr=127.0.0.1:$moved" 10 ||
	fail "v0 did not dial v1 at its new address: $(grep 'peer=v1' "$log" | tail -3)"
kill -TERM "$v1"
wait_exit "$v1" 20
[ "$WAIT_RC" = 0 ] || fail "v1: SIGTERM exit $WAIT_RC"
cp "$T/qsd.yaml.orig" "$cfg"
kill -HUP "$qsd"
wait_count READY=1 $((readies + 5)) 5 || fail "no READY=1 after restoring the file"
echo "ok: SIGHUP applies a validator's new address"

# ---- 3. SIGTERM under load ----
sed -i 's/^log_level:.*/log_level: notice\nmax_batch_lifetime_ms: 3600000/' "$cfg"
kill -HUP "$qsd"
wait_count READY=1 $((readies + 6)) 5 || fail "no READY=1 after the lifetime reload"
"$B/qsbench" run -d "$T/c" -n 0 -p 1,2,3 -s 16384 -t 8 -i 16 -l 3600 -D 8 -R -q -j \
	-o "$T/acked" >"$T/run.json" 2>"$T/run.err" &
bench=$!
sleep 3
kill -TERM "$qsd"
wait_exit "$qsd" 30
[ "$WAIT_RC" = 0 ] || { tail -20 "$log"; fail "SIGTERM under load: exit $WAIT_RC, want 0"; }
[ "$(count STOPPING=1)" -ge 1 ] || fail "no STOPPING=1"
after_stop=$(messages | sed -n '/STOPPING=1/,$p' | sed 1d)
if grep -Eq '(^|\|)READY=1(\||$)' <<<"$after_stop"; then
	fail "READY=1 after STOPPING=1"
fi
start_qsd "$cfg" "$log"
qsd=$QS_PID
wait_http "http://127.0.0.1:$mport/healthz" 30 || fail "no restart after SIGTERM"
wait "$bench" || { cat "$T/run.err"; fail "qsbench run failed"; }
acked=$(wc -l <"$T/acked")
[ "$acked" -gt 20 ] || fail "too few acks ($acked) for the test to mean anything"
"$B/qsbench" verify -d "$T/c" -n 0 -p 1 -f "$T/acked" >"$T/verify.out" 2>&1 ||
	{ cat "$T/verify.out"; fail "acked batches missing or altered after SIGTERM"; }
grep -q "missing=0 altered=0" "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
kill -TERM "$qsd"
wait_exit "$qsd" 20
[ "$WAIT_RC" = 0 ] || fail "SIGTERM exit $WAIT_RC"
echo "ok: SIGTERM under load: STOPPING=1, exit 0, $acked acked batches intact"

# ---- 4. socket activation ----
if ! command -v systemd-socket-activate >/dev/null; then
	echo "skip: socket activation (no systemd-socket-activate; Debian's systemd package has it)"
	echo "ok: operations"
	exit 0
fi
[ ! -e "$sock" ] || fail "qsd left its own RPC socket behind"
cp "$T/qsd.yaml.orig" "$cfg" # log_level info: the rpc_listening line
systemd-socket-activate -l "$sock" --fdname=rpc "$QSD" -c "$cfg" 2>>"$log" &
qsd=$!
QS_PIDS+=("$qsd")
for ((i = 0; i < 50; i++)); do
	[ -S "$sock" ] && break
	sleep 0.1
done
[ -S "$sock" ] || fail "systemd-socket-activate did not listen on $sock"
# The first connection starts qsd on the socket it inherits.
"$QSCTL" -s "$sock" -t 30000 status >"$T/status.out" 2>&1 ||
	{ tail -5 "$log"; fail "status over the activated socket: $(cat "$T/status.out")"; }
grep -q "event=rpc_listening path=\"$sock\" from=systemd" "$log" ||
	fail "qsd did not serve the socket systemd passed: $(grep rpc_listening "$log" | tail -2)"
kill -TERM "$qsd"
wait_exit "$qsd" 20
[ "$WAIT_RC" = 0 ] || fail "socket-activated qsd: SIGTERM exit $WAIT_RC"
[ -S "$sock" ] || fail "qsd removed the socket systemd owns"
echo "ok: socket activation"
echo "ok: operations"
