# The disk's own limits (fio) and RocksDB alone (db_bench), on $W's file system.
# shellcheck shell=bash

FIO_SECONDS=${BENCH_FIO_SECONDS:-5}
DBB_SECONDS=${BENCH_DBB_SECONDS:-4}

phase_fio() {
	local bs label out
	have fio || {
		skip fio "fio is not installed (tools/deps bench)"
		return 0
	}
	for bs in 4k 64k 2m; do
		label=${bs^^}
		out=$W/fio.$bs.json
		rm -f -- "$W/fio.data"
		timeout $((FIO_SECONDS + 30)) fio --name="seq-$bs" --filename="$W/fio.data" \
			--rw=write --bs="$bs" --size=4g --ioengine=sync --fdatasync=1 \
			--time_based --runtime="$FIO_SECONDS" --percentile_list=50:99:99.9 \
			--output-format=json >"$out" 2>"$W/fio.$bs.err" || {
			skip "fio_$bs" "fio failed: $(head -c 200 "$W/fio.$bs.err")"
			continue
		}
		fig "fio.$label.iops" "$(json_get "$out" '.jobs[0].write.iops | floor')"
		fig "fio.$label.mb_per_s" "$(json_get "$out" '.jobs[0].write.bw_bytes / 1e6 * 100 | floor / 100')"
		fig "fio.$label.sync_p50_us" "$(json_get "$out" '.jobs[0].sync.lat_ns.percentile["50.000000"] / 1000 | floor')"
		fig "fio.$label.sync_p99_us" "$(json_get "$out" '.jobs[0].sync.lat_ns.percentile["99.000000"] / 1000 | floor')"
		fig "fio.$label.write_p99_us" "$(json_get "$out" '.jobs[0].write.clat_ns.percentile["99.000000"] / 1000 | floor')"
	done
	rm -f -- "$W/fio.data"
}

# dbb_once OUT VALUE_SIZE SYNC BATCH NUM DURATION_S LIMIT_S: one fillrandom
# run; with DURATION_S 0 it writes NUM keys, else it stops after DURATION_S
# (NUM is then only the key space).
dbb_once() {
	rm -rf -- "$W/dbb"
	timeout "$7" db_bench --benchmarks=fillrandom --db="$W/dbb" --compression_type=none \
		--value_size="$2" --key_size=16 --sync="$3" --batch_size="$4" --num="$5" \
		--duration="$6" --threads=1 --histogram=1 --write_buffer_size=67108864 \
		--cache_size=33554432 >"$1" 2>&1
}

# ops/s (keys per second) from db_bench's fillrandom line.
dbb_ops() {
	awk '$1 == "fillrandom" { for (i = 1; i <= NF; i++) if ($i == "ops/sec") print $(i - 1) }' "$1" | head -n 1
}

phase_db_bench() {
	local size sync batch name ops num out
	have db_bench || {
		skip db_bench "db_bench is not installed (rocksdb-tools; tools/deps bench)"
		return 0
	}
	for size in 65536 4096; do
		for mode in "1 1" "1 32" "0 32"; do
			read -r sync batch <<<"$mode"
			name=db_bench.$((size / 1024))K.sync$sync.batch$batch
			out=$W/$name.out
			# A one-second run sizes --num for DBB_SECONDS.
			dbb_once "$out.cal" "$size" "$sync" "$batch" 100000000 1 30 || true
			ops=$(dbb_ops "$out.cal")
			if [ -z "$ops" ]; then
				skip "$name" "db_bench failed: $(tail -n 2 "$out.cal" | tr '\n' ' ')"
				continue
			fi
			num=$(((ops * DBB_SECONDS / batch + 1) * batch))
			dbb_once "$out" "$size" "$sync" "$batch" "$num" 0 $((DBB_SECONDS * 4 + 30)) || true
			ops=$(dbb_ops "$out")
			[ -n "$ops" ] || {
				skip "$name" "db_bench failed: $(tail -n 2 "$out" | tr '\n' ' ')"
				continue
			}
			fig "$name.ops_per_s" "$ops"
			fig "$name.num" "$num"
			fig "$name.mb_per_s" "$(awk -v o="$ops" -v s="$size" 'BEGIN { printf "%.2f", o * (s + 16) / 1e6 }')"
			fig "$name.p50_us" "$(awk '/^Percentiles:/ { print $3; exit }' "$out")"
			fig "$name.p99_us" "$(awk '/^Percentiles:/ { print $7; exit }' "$out")"
		done
	done
	rm -rf -- "$W/dbb"
}
