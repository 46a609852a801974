# shellcheck shell=bash
# Shared helpers for the shell integration tests. Source it; needs $B.
B=${B:-build}
QSD=$B/qsd
QSCTL=$B/qsctl
export QSCTL

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# A temporary directory removed at exit, with every process started by
# start_qsd killed.
T=$(mktemp -d /tmp/qsd-it-XXXXXX)
QS_PIDS=()
cleanup() {
	for p in "${QS_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	if [ -n "${QS_KEEP_TMP:-}" ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT

# A base port for a test cluster (mkcluster uses base..base+N-1 for peers and
# base+100.. for metrics) where nothing listens now, so that test runs in
# parallel rarely collide.
pick_base_port() {
	local base p busy try
	for ((try = 0; try < 50; try++)); do
		base=$((20000 + (RANDOM % 120) * 50)) # below the ephemeral range
		busy=0
		if command -v ss >/dev/null; then
			for p in $base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 100)) \
				$((base + 101)) $((base + 102)) $((base + 103)); do
				if [ -n "$(ss -Htln "sport = :$p")" ]; then
					busy=1
					break
				fi
			done
		fi
		[ "$busy" = 0 ] && break
	done
	echo "$base"
}

# real_nodes CFG COUNT POWER: a mkcluster config where v0..v(COUNT-1), the
# nodes a test runs as real qsd processes, carry voting power POWER (the
# simulated rest keep 1), and qsd logs at notice.
real_nodes() {
	local j
	sed -i 's/^log_level:.*/log_level: notice/' "$1"
	for ((j = 0; j < $2; j++)); do
		# The first voting_power line after v$j's name.
		sed -i "/^  - name: v$j\$/,/voting_power/ s/voting_power: 1\$/voting_power: $3/" "$1"
	done
}

# start_qsd CONFIG LOG: start qsd in the background; sets QS_PID.
start_qsd() {
	"$QSD" -c "$1" 2>>"$2" &
	QS_PID=$!
	QS_PIDS+=("$QS_PID")
}

# wait_http URL SECONDS: wait until URL answers (any status).
wait_http() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		curl -s -o /dev/null -m 1 "$1" && return 0
		sleep 0.1
	done
	return 1
}

# shellcheck disable=SC2034 # WAIT_RC is read by the tests that source this
# wait_exit PID SECONDS: wait for PID (a child of this shell) to exit; sets
# WAIT_RC to its exit code, or to "timeout".
wait_exit() {
	local i
	WAIT_RC=timeout
	for ((i = 0; i < $2 * 10; i++)); do
		if ! kill -0 "$1" 2>/dev/null; then
			WAIT_RC=0
			wait "$1" || WAIT_RC=$?
			return 0
		fi
		sleep 0.1
	done
}
