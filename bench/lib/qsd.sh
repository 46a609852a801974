# qsd under load: one node with 3 simulated peers, a 4-node cluster, GetPayload,
# restart, and memory under overload.
# shellcheck shell=bash

RUN_SECONDS=${BENCH_RUN_SECONDS:-8}
QUOTA_MEM_BYTES=${BENCH_AUTHOR_MEM_BYTES:-67108864}
WRITE_BUFFER_BYTES=${BENCH_DB_WRITE_BUFFER_BYTES:-67108864}
BLOCK_CACHE_BYTES=${BENCH_DB_BLOCK_CACHE_BYTES:-33554432}
PAYLOAD_CACHE_BYTES=${BENCH_PAYLOAD_CACHE_BYTES:-268435456}
# The unmeasured first run of a node (warm_single: 3 s fill the cache at
# 64 KiB and most of it at 4 KiB; longer only adds table files that the
# paced runs after it then compact), and the longest the cluster may take to
# fill its payload caches before its proofs are counted.
WARM_SECONDS=${BENCH_WARM_SECONDS:-3}
WARM_MAX_SECONDS=${BENCH_WARM_MAX_SECONDS:-30}

# The memory keys the RSS bound is made of, written out so the bound is
# what the node was really configured with.
node_yaml() {
	cat <<YAML
max_batch_lifetime_ms: 600000
quotas:
  author_mem_bytes: $QUOTA_MEM_BYTES
  author_disk_batches: 10000000
storage:
  db_write_buffer_bytes: $WRITE_BUFFER_BYTES
  db_block_cache_bytes: $BLOCK_CACHE_BYTES
serving:
  payload_cache_bytes: $PAYLOAD_CACHE_BYTES
YAML
}

# single_node NAME: a 4-validator cluster with only v0 running; sets DIR.
single_node() {
	DIR=$(mk_cluster "$1" 4 "$(node_yaml)") || return 1
	start_node "$DIR" 0
	wait_rpc "$DIR" 0 20
}

# qsb_run OUT ARGS...: qsbench run against v0 of $DIR as v1..v3, JSON summary.
qsb_run() {
	local out=$1
	shift
	timeout $((RUN_SECONDS + 40)) "$B/qsbench" run -d "$DIR" -n 0 -V -q -j "$@" \
		>"$out" 2>"$out.err"
}

# record_run LABEL OFFERED_PER_S JSON: figures and a load point of one run.
record_run() {
	local label=$1 offered=$2 j=$3 acks
	acks=$(json_get "$j" .acks_per_s)
	[ -n "$acks" ] || return 1
	[ -n "$offered" ] || offered=$(json_get "$j" '.sent / .duration_s')
	fig "qsd.$label.offered_per_s" "$offered"
	fig "qsd.$label.acks_per_s" "$acks"
	fig "qsd.$label.mb_per_s" "$(json_get "$j" .mb_per_s)"
	fig "qsd.$label.p50_us" "$(json_get "$j" .latency_us.p50)"
	fig "qsd.$label.p99_us" "$(json_get "$j" .latency_us.p99)"
	fig "qsd.$label.p999_us" "$(json_get "$j" .latency_us.p999)"
	fig "qsd.$label.nacked" "$(json_get "$j" .nacked)"
	fig "qsd.$label.lost_inflight" "$(json_get "$j" .lost_inflight)"
	load_point "$label" "$offered" "$acks" "$(json_get "$j" .mb_per_s)" \
		"$(json_get "$j" .latency_us.p50)" "$(json_get "$j" .latency_us.p99)" \
		"$(json_get "$j" .latency_us.p999)"
}

perf_record() { # PID SECONDS OUT
	[ -n "${BENCH_PERF:-}" ] || return 0
	have perf || {
		log "BENCH_PERF set but perf is missing (apt-get install linux-perf)"
		return 0
	}
	(sleep 1 && perf record -F 499 -g -p "$1" -o "$3" -- sleep "$2" >/dev/null 2>&1) &
	PERF_PID=$!
}

perf_report() { # DATA OUT
	[ -n "${PERF_PID:-}" ] || return 0
	wait "$PERF_PID" || true
	PERF_PID=
	perf report -i "$1" --no-children --sort comm,dso,symbol --percent-limit 0.7 --stdio \
		-g none >"$2" 2>/dev/null || true
	perf report -i "$1" --no-children --sort comm --stdio -g none >"$2.threads" 2>/dev/null || true
	log "profile: $2, $2.threads"
}

FULL64=

# Closed loops keep the same bytes in flight per simulated validator at every
# batch size (as qsd's quotas count bytes): 32 batches of 64 KiB, 512 of 4 KiB.
INFLIGHT_BYTES=${BENCH_INFLIGHT_BYTES:-2097152}

# warm_single SIZE TXNS LABEL: the measured load, once first, unmeasured, so
# that the runs after it find the node as a running validator has it: the
# payload cache full (on a fresh node every cached payload lands on pages
# the kernel has to fault in and zero first), the heap and RocksDB's memtable
# arenas in use. Its rate is kept as LABEL.cold; the cache's fill after it as
# LABEL.warm_cache_bytes.
warm_single() {
	local j=$W/qsd.$3.cold.json
	qsb_run "$j" -p 1,2,3 -s "$1" -t "$2" -i $((INFLIGHT_BYTES / $1)) -D "$WARM_SECONDS" -g 3 ||
		return 1
	fig "qsd.$3.cold.acks_per_s" "$(json_get "$j" .acks_per_s)"
	fig "qsd.$3.cold.p99_us" "$(json_get "$j" .latency_us.p99)"
	fig "qsd.$3.warm_cache_bytes" "$(metric "$DIR" 0 qsd_payload_cache_bytes)"
}

phase_qsd_single() {
	local j frac rate
	single_node single || return 1
	warm_single 65536 16 64K || return 1
	j=$W/qsd.64K.full.json
	perf_record "$NODE_PID" $((RUN_SECONDS - 2)) "$W/perf.64K.full.data"
	qsb_run "$j" -p 1,2,3 -s 65536 -t 16 -i $((INFLIGHT_BYTES / 65536)) -D "$RUN_SECONDS" -g 3 || {
		cat "$j.err" >&2
		return 1
	}
	perf_report "$W/perf.64K.full.data" "$W/perf.64K.full.txt"
	record_run 64K.full "" "$j" || return 1
	FULL64=$(json_get "$j" '.acks_per_s | floor')
	fig qsd.64K.rss_bytes "$(vm_hwm "$NODE_PID")"
	# Offered load below the closed-loop rate: paced per validator.
	for frac in 25 50 75; do
		rate=$(((FULL64 * frac / 100 + 2) / 3))
		[ "$rate" -ge 1 ] || rate=1
		j=$W/qsd.64K.load$frac.json
		qsb_run "$j" -p 1,2,3 -s 65536 -t 16 -r "$rate" -D "$RUN_SECONDS" -g 3 || {
			cat "$j.err" >&2
			continue
		}
		record_run "64K.load$frac" $((rate * 3)) "$j" || true
	done
	stop_nodes

	single_node single4k || return 1
	warm_single 4096 4 4K || return 1
	j=$W/qsd.4K.full.json
	qsb_run "$j" -p 1,2,3 -s 4096 -t 4 -i $((INFLIGHT_BYTES / 4096)) -D "$RUN_SECONDS" -g 3 || {
		cat "$j.err" >&2
		return 1
	}
	record_run 4K.full "" "$j" || return 1
	# Beside it: 4 KiB with 32 in flight, the count the 64 KiB loop has
	# (groups of ~100 batches instead of ~1,500: latency, not throughput).
	j=$W/qsd.4K.inflight32.json
	qsb_run "$j" -p 1,2,3 -s 4096 -t 4 -i 32 -D "$RUN_SECONDS" -g 3 || {
		cat "$j.err" >&2
		return 0
	}
	record_run 4K.inflight32 "" "$j" || true
}

# 5x the closed-loop rate, offered by one qsbench process per simulated
# validator; the node's peak RSS against what it was configured to hold.
phase_qsd_overload() {
	local rate k pids=() j sum_acks=0 sent=0 hwm bound
	[ -n "$FULL64" ] || {
		skip qsd_overload "no full-rate figure to overload"
		return 0
	}
	single_node overload || return 1
	rate=$(((FULL64 * 5 + 2) / 3))
	for k in 1 2 3; do
		qsb_run "$W/qsd.overload.v$k.json" -p "$k" -s 65536 -t 16 -r "$rate" -i 1024 \
			-D "$RUN_SECONDS" -g 3 &
		pids+=($!)
	done
	for k in "${pids[@]}"; do
		wait "$k" || true
	done
	hwm=$(vm_hwm "$NODE_PID")
	for k in 1 2 3; do
		j=$W/qsd.overload.v$k.json
		sum_acks=$(awk -v a="$sum_acks" -v b="$(json_get "$j" .acks_per_s)" 'BEGIN { print a + b }')
		sent=$(awk -v a="$sent" -v b="$(json_get "$j" '.sent / .duration_s')" 'BEGIN { print a + b }')
		fig "qsd.overload.v$k.nacked" "$(json_get "$j" .nacked)"
		fig "qsd.overload.v$k.p99_us" "$(json_get "$j" .latency_us.p99)"
	done
	bound=$((QUOTA_MEM_BYTES * 4 + PAYLOAD_CACHE_BYTES + WRITE_BUFFER_BYTES + BLOCK_CACHE_BYTES + 67108864))
	fig qsd.overload.offered_per_s $((rate * 3))
	fig qsd.overload.sent_per_s "$sent"
	fig qsd.overload.acks_per_s "$sum_acks"
	fig qsd.overload.rss_peak_bytes "$hwm"
	fig qsd.overload.rss_bound_bytes "$bound"
	fig qsd.overload.bound.author_mem_bytes_x4 $((QUOTA_MEM_BYTES * 4))
	fig qsd.overload.bound.payload_cache_bytes "$PAYLOAD_CACHE_BYTES"
	fig qsd.overload.bound.db_write_buffer_bytes "$WRITE_BUFFER_BYTES"
	fig qsd.overload.bound.db_block_cache_bytes "$BLOCK_CACHE_BYTES"
	load_point overload5x $((rate * 3)) "$sum_acks" "" "" "" ""
}

# caches_full DIR N: every node 0..N-1 has its payload cache at least 90 %
# full.
caches_full() {
	local i v
	for ((i = 0; i < $2; i++)); do
		v=$(metric "$1" "$i" qsd_payload_cache_bytes)
		[ -n "$v" ] && awk -v v="$v" -v b="$PAYLOAD_CACHE_BYTES" 'BEGIN { exit !(v >= 0.9 * b) }' ||
			return 1
	done
}

# 4 nodes; each gets a closed loop of SubmitBatch from its own qsbench. The
# proofs are counted over 2 x RUN_SECONDS (the cluster's rate swings by half
# from one second to the next) once every node's payload cache is full (as
# warm_single, for the same reason; at most WARM_MAX_SECONDS of warm-up),
# then the generators are stopped (SIGINT: they drain and report).
phase_qsd_cluster() {
	local i pids=() before=() after t0 t1 tw sum=0 p50s=() p99s=() st
	DIR=$(mk_cluster cluster 4 "$(node_yaml)") || return 1
	for i in 0 1 2 3; do
		start_node "$DIR" "$i"
	done
	for i in 0 1 2 3; do
		wait_healthy "$DIR" "$i" 20 || {
			log "v$i of the cluster is not healthy"
			return 1
		}
	done
	tw=$(now_ms)
	for i in 0 1 2 3; do
		timeout $((WARM_MAX_SECONDS + RUN_SECONDS * 2 + 40)) "$B/qsbench" submit -d "$DIR" \
			-n "$i" -s 65536 -t 16 -D $((WARM_MAX_SECONDS + RUN_SECONDS * 2 + 5)) -g 3 -q -j \
			>"$W/cluster.v$i.json" 2>"$W/cluster.v$i.err" &
		pids+=($!)
	done
	while ! caches_full "$DIR" 4 && [ $(($(now_ms) - tw)) -lt $((WARM_MAX_SECONDS * 1000)) ]; do
		sleep 0.5
	done
	t0=$(now_ms)
	fig cluster.warmup_ms $((t0 - tw))
	for i in 0 1 2 3; do
		before[i]=$(metric "$DIR" "$i" qsd_proofs_formed_total)
	done
	sleep $((RUN_SECONDS * 2))
	for i in 0 1 2 3; do
		after=$(metric "$DIR" "$i" qsd_proofs_formed_total)
		sum=$((sum + ${after%.*} - ${before[i]%.*}))
	done
	t1=$(now_ms)
	kill -INT "${pids[@]}" 2>/dev/null || true
	for i in "${pids[@]}"; do
		wait "$i" || true
	done
	for i in 0 1 2 3; do
		st=$("$B/qsctl" -s "$DIR/v$i/rpc.sock" -t 2000 status -o json 2>/dev/null) || st='{}'
		p50s+=("$(jq -r '.submit_to_proof_p50_us // empty' <<<"$st")")
		p99s+=("$(jq -r '.submit_to_proof_p99_us // empty' <<<"$st")")
		fig "cluster.v$i.submit_ok_per_s" "$(json_get "$W/cluster.v$i.json" .ok_per_s)"
		fig "cluster.v$i.submit_p99_us" "$(json_get "$W/cluster.v$i.json" .latency_us.p99)"
	done
	fig cluster.proofs "$sum"
	fig cluster.proofs_per_s "$(awk -v n="$sum" -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", n * 1000 / ms }')"
	fig cluster.submit_to_proof_p50_us "$(printf '%s\n' "${p50s[@]}" | sort -n | awk 'NF { a[n++] = $1 } END { if (n) print a[int(n / 2)] }')"
	fig cluster.submit_to_proof_p99_us "$(printf '%s\n' "${p99s[@]}" | sort -n | tail -n 1)"
}

# 10,000 proofs from 20 authors, of batches of 100 transactions (16 KiB):
# the size quorum store batches have under load (a proposer's pull of 2,000
# transactions then takes 20 of them). The target figures are those of that
# pull, one client, one request in flight; the same queue is also asked for
# answers ten times larger (--max-txns 20000, about 200 proofs) and at 4 in
# flight, reported beside them.
# The one client that GetPayload's targets are measured with reads for up to
# this long without sleeping before it waits for an answer
# (qs_client_opts.spin_us), as a proposer asking for its payload would; the
# same client without it is measured beside it (getpayload.wait). The node
# polls as long after each answer (rpc.busy_poll_us) for the next request.
GETPAYLOAD_SPIN_US=${BENCH_GETPAYLOAD_SPIN_US:-200}
GETPAYLOAD_BUSY_POLL_US=${BENCH_GETPAYLOAD_BUSY_POLL_US:-200}

phase_getpayload() {
	local j
	if ! "$B/qsbench" proofs -h >/dev/null 2>&1 || ! "$B/qsbench" payload -h >/dev/null 2>&1; then
		skip getpayload "build/qsbench has no 'proofs' and 'payload' commands yet"
		return 0
	fi
	DIR=$(mk_cluster payload 21 "$(node_yaml)") || return 1
	sed -i "s/^rpc:\$/rpc:\n  busy_poll_us: $GETPAYLOAD_BUSY_POLL_US/" "$DIR/v0/qsd.yaml"
	fig getpayload.busy_poll_us "$GETPAYLOAD_BUSY_POLL_US"
	start_node "$DIR" 0
	wait_rpc "$DIR" 0 20 || return 1
	timeout 120 "$B/qsbench" proofs -d "$DIR" -n 0 -a 20 -c 10000 -t 100 -s 16384 -D 100 -q -j \
		>"$W/payload.fill.out" 2>"$W/payload.fill.err" || return 1
	fig getpayload.proofs_queued "$("$B/qsctl" -s "$DIR/v0/rpc.sock" status -o json | jq -r '.proof_queue_size // empty')"
	fig getpayload.fill_proofs_per_s "$(json_get "$W/payload.fill.out" .proofs_per_s)"
	settle_node "$DIR" 0 20
	fig getpayload.txns_per_batch 100
	fig getpayload.spin_us "$GETPAYLOAD_SPIN_US"
	payload_run getpayload "-S $GETPAYLOAD_SPIN_US" || return 1
	fig getpayload.request_bytes "$(json_get "$W/getpayload.json" .request_bytes)"
	fig getpayload.answer_bytes "$(json_get "$W/getpayload.json" .answer_bytes)"
	pingpong_run unix_pingpong "$GETPAYLOAD_SPIN_US" || true
	payload_run getpayload.wait "" || true
	pingpong_run unix_pingpong.wait 0 || true
	payload_run getpayload.large "--max-txns 20000 -S $GETPAYLOAD_SPIN_US" || true
	payload_run getpayload.inflight4 "-i 4" || true
}

# pingpong_run PREFIX SPIN_US: the machine's floor for GetPayload at one in
# flight, as fio is the disk's: a bare request and answer of the sizes just
# measured, over a Unix socket between two processes, no qsd in the way, the
# client spinning for SPIN_US before it sleeps as the measured one did.
pingpong_run() {
	local j=$W/$1.json
	timeout $((RUN_SECONDS + 30)) "$B/qsbench" pingpong -D 5 -j -S "$2" \
		-r "$(json_get "$W/getpayload.json" .request_bytes)" \
		-a "$(json_get "$W/getpayload.json" .answer_bytes)" >"$j" 2>"$j.err" || return 1
	fig "$1.requests_per_s" "$(json_get "$j" .requests_per_s)"
	fig "$1.p50_us" "$(json_get "$j" .latency_us.p50)"
	fig "$1.p99_us" "$(json_get "$j" .latency_us.p99)"
}

# payload_run PREFIX "ARGS": one qsbench payload run against v0 of $DIR.
payload_run() {
	local j=$W/$1.json
	# shellcheck disable=SC2086 # ARGS are words
	timeout $((RUN_SECONDS + 30)) "$B/qsbench" payload -d "$DIR" -n 0 -D 5 -j $2 >"$j" 2>"$j.err" ||
		return 1
	fig "$1.max_txns" "$(json_get "$j" .max_txns)"
	fig "$1.requests_per_s" "$(json_get "$j" .requests_per_s)"
	fig "$1.proofs_per_answer" "$(json_get "$j" .proofs_per_answer)"
	fig "$1.inline_per_answer" "$(json_get "$j" .inline_per_answer)"
	fig "$1.p50_us" "$(json_get "$j" .latency_us.p50)"
	fig "$1.p99_us" "$(json_get "$j" .latency_us.p99)"
	fig "$1.p999_us" "$(json_get "$j" .latency_us.p999)"
}

RESTART_BATCHES=${BENCH_RESTART_BATCHES:-100000}

phase_restart() {
	local per t0 t1 stored
	single_node restart || return 1
	per=$(((RESTART_BATCHES + 2) / 3))
	timeout 240 "$B/qsbench" run -d "$DIR" -n 0 -p 1,2,3 -s 1024 -t 4 -b 16 -i 512 -c "$per" \
		-D 200 -g 5 -q -j >"$W/restart.fill.json" 2>"$W/restart.fill.err" || return 1
	stored=$("$B/qsctl" -s "$DIR/v0/rpc.sock" status -o json | jq -r '.batches_stored // empty')
	fig restart.fill_acks_per_s "$(json_get "$W/restart.fill.json" .acks_per_s)"
	stop_nodes
	t0=$(now_ms)
	start_node "$DIR" 0
	wait_rpc "$DIR" 0 60 || return 1
	t1=$(now_ms)
	fig restart.batches_before "$stored"
	fig restart.batches_after "$("$B/qsctl" -s "$DIR/v0/rpc.sock" status -o json | jq -r '.batches_stored // empty')"
	fig restart.first_rpc_ms $((t1 - t0))
	fig restart.rss_bytes "$(vm_hwm "$NODE_PID")"
}
