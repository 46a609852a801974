# Shared helpers of bench/run: figures, phases with a time budget, qsd nodes.
# shellcheck shell=bash

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

log() {
	printf 'bench: %s\n' "$*" >&2
}

# fig NAME VALUE: one figure of the run (numbers; empty values are dropped).
fig() {
	[ -n "${2:-}" ] && [ "$2" != null ] || return 0
	printf '%s\t%s\n' "$1" "$2" >>"$W/figures.tsv"
}

# skip PHASE REASON: a phase that could not be measured, and why.
skip() {
	printf '%s\t%s\n' "$1" "$2" >>"$W/skipped.tsv"
	log "SKIPPED $1: $2"
}

# load_point LABEL OFFERED_PER_S ACKS_PER_S MB_PER_S P50_US P99_US P999_US
load_point() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$W/loads.tsv"
}

remaining_s() {
	echo $((DEADLINE - $(date +%s)))
}

# phase NAME NEED_S FUNCTION: run FUNCTION unless fewer than NEED_S seconds
# of the budget are left; a failing phase is recorded as skipped.
phase() {
	local name=$1 need=$2 fn=$3 t0 rc=0
	if [ "$(remaining_s)" -lt "$need" ]; then
		skip "$name" "time budget: $(remaining_s) s left, phase needs about $need s"
		return 0
	fi
	log "phase $name (budget left $(remaining_s) s)"
	t0=$(now_ms)
	"$fn" || rc=$?
	if [ "$rc" -ne 0 ]; then
		skip "$name" "failed (exit $rc); see $W/$name.*"
	fi
	fig "phase_seconds.$name" "$(((($(now_ms) - t0) + 500) / 1000))"
	stop_nodes
	# The next phase starts on a quiet disk: what this one left to the
	# kernel (a stopped node's last flush, db_bench's files and their
	# deletion, which on a file system mounted with discard also means
	# TRIMs) is written back now, not during its run.
	sync
	return 0
}

have() {
	command -v "$1" >/dev/null 2>&1
}

json_get() { # FILE JQ_PATH
	jq -r "$2 // empty" "$1" 2>/dev/null | head -n 1
}

# A port range no listener uses: BASE..BASE+SPAN-1 and BASE+100.. +SPAN-1.
free_base_port() {
	local base=$1 span=$2 used p
	used=$(ss -Htlna 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
	while [ "$base" -lt 60000 ]; do
		local clash=0
		for ((p = base; p < base + span; p++)); do
			if grep -qx -e "$p" -e "$((p + 100))" <<<"$used"; then
				clash=1
				break
			fi
		done
		[ "$clash" -eq 0 ] && {
			echo "$base"
			return 0
		}
		base=$((base + 200))
	done
	return 1
}

# mk_cluster NAME N EXTRA_YAML: a fresh cluster under $W/NAME; prints its dir.
mk_cluster() {
	local dir=$W/$1 n=$2 extra=$3 base i
	rm -rf -- "$dir"
	base=$(free_base_port "$NEXT_PORT" "$n") || return 1
	NEXT_PORT=$((base + 200))
	QSCTL=$B/qsctl tools/mkcluster "$n" "$dir" "$base" >/dev/null || return 1
	for ((i = 0; i < n; i++)); do
		printf '%s\n' "$extra" >>"$dir/v$i/qsd.yaml"
	done
	echo "$dir"
}

NODE_PIDS=()

# start_node DIR I: start qsd for DIR/vI in the background; sets NODE_PID.
start_node() {
	"$B/qsd" -c "$1/v$2/qsd.yaml" 2>>"$1/v$2/qsd.log" &
	NODE_PID=$!
	NODE_PIDS+=("$NODE_PID")
}

# wait_rpc DIR I TIMEOUT_S: until the node answers GetStatus.
wait_rpc() {
	local end=$(($(now_ms) + $3 * 1000))
	while [ "$(now_ms)" -lt "$end" ]; do
		"$B/qsctl" -s "$1/v$2/rpc.sock" -t 500 status >/dev/null 2>&1 && return 0
		sleep 0.01
	done
	return 1
}

# wait_healthy DIR I TIMEOUT_S: until /healthz says 200 (peers connected).
wait_healthy() {
	local port end
	port=$(metrics_port "$1" "$2")
	end=$(($(now_ms) + $3 * 1000))
	while [ "$(now_ms)" -lt "$end" ]; do
		[ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ] &&
			return 0
		sleep 0.1
	done
	return 1
}

metrics_port() {
	awk '/^metrics:/ { m = 1; next } m && /listen:/ { gsub(/"/, ""); n = split($2, a, ":"); print a[n]; exit }' \
		"$1/v$2/qsd.yaml"
}

# metric DIR I SERIES: the value of SERIES (exact name with labels) on node I.
metric() {
	curl -s -m 2 "http://127.0.0.1:$(metrics_port "$1" "$2")/metrics" |
		awk -v n="$3" '$1 == n { print $2; exit }'
}

# settle_node DIR I TIMEOUT_S: write back the page cache, then wait until the
# node's RocksDB has no compaction left to do (and 1 s more), so a read
# benchmark does not share the cores with the flushes of its own setup.
settle_node() {
	local end=$(($(now_ms) + $3 * 1000)) v
	sync
	while [ "$(now_ms)" -lt "$end" ]; do
		v=$(metric "$1" "$2" qsd_rocksdb_pending_compaction_bytes)
		[ "${v%.*}" = 0 ] && break
		sleep 0.2
	done
	sleep 1
}

# vm_hwm PID: peak resident set (VmHWM) in bytes.
vm_hwm() {
	awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null
}

stop_nodes() {
	local p
	for p in "${NODE_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${NODE_PIDS[@]}"; do
		timeout 15 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	NODE_PIDS=()
}
