#!/bin/bash
# A 4-validator cluster where v3's disk fails every fsync/fdatasync
# (tests/shim_sync.so). A node that cannot sync must never vouch for a batch:
#   - with every sync failing from its very start, v3 cannot even open its
#     database and exits at once (storage_open_failed), before any listener;
#   - started on a working disk and broken before any submission (the
#     shim's trigger file: every later sync fails), v3 fail-stops (exit 74)
#     at its first write, while submissions to v0..v2 still all form proofs
#     (3 of 4 is a quorum);
#   - no proof anywhere carries v3's signature: after the nodes stop, every
#     ProofOfStore in every node's `proofs` column family (read with
#     RocksDB's ldb) is decoded and its signer_bitmap must not have bit 3;
#     and on v0..v2 exactly two peer signatures per batch were ever added
#     (qsd_signatures_received_total), none arriving late: only v0..v2 signed.
#
# Environment: B (build directory), QS_SAN_RT (sanitizer runtime to preload
# before the shim, or empty), QS_SUBMIT_S (seconds of load, default 3).
# Needs ldb (rocksdb-tools) and /usr/bin/python3 (Debian's, standard library
# only) to decode the proofs.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

N=4
DUR=${QS_SUBMIT_S:-3}
RATE=50
QSBENCH=$B/qsbench
SHIM=$PWD/$B/tests/shim_sync.so
PY=/usr/bin/python3
QS_SAN_RT=${QS_SAN_RT:-}
[ -x "$QSBENCH" ] || fail "$QSBENCH is missing"
[ -x "$QSCTL" ] || fail "$QSCTL is missing"
[ -f "$SHIM" ] || fail "$SHIM is missing"
command -v ldb >/dev/null || fail "ldb is missing (Debian package rocksdb-tools)"
[ -x "$PY" ] || fail "$PY is missing (Debian package python3)"

base=$(pick_base_port)
tools/mkcluster $N "$T/c" "$base" >/dev/null
for ((i = 0; i < N; i++)); do
	printf 'proof_timeout_ms: 5000\nmax_batch_lifetime_ms: 600000\n' >>"$T/c/v$i/qsd.yaml"
done
V3DATA=$T/c/v3/data
TRIGGER=$T/fail-sync
COUNT=$T/injected
pid=()
OK=()
t_start=$SECONDS

url() { echo "http://127.0.0.1:$((base + 100 + $1))"; }

logs() {
	local i
	for ((i = 0; i < N; i++)); do
		echo "---- tail of v$i's log" >&2
		tail -n 15 "$T/v$i.log" >&2 || true
	done
}

die() {
	logs
	fail "$@"
}

metric() { # NODE SERIES
	local v
	v=$(curl -sf -m 5 "$(url "$1")/metrics" | awk -v s="$2" '$1 == s { print $2; exit }') || true
	[ -n "$v" ] || fail "v$1 does not export $2 (is it up?)"
	echo "$v"
}

metric_is() { # NODE SERIES WANT
	local v
	v=$(metric "$1" "$2") || return 1
	[ "$v" = "$3" ]
}

status() { "$QSCTL" -s "$T/c/v$1/rpc.sock" -t 10000 status -o json; }

jfield() { # JSON FIELD
	grep -o "\"$2\":[^,}]*" <<<"$1" | head -n 1 | cut -d: -f2 | tr -d '"'
}

until_ok() { # SECONDS CMD...
	local t=$1 i
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

connected_is() { # NODE WANT
	local s
	s=$(status "$1") || return 1
	[ "$(jfield "$s" peers_connected)" = "$2" ]
}

# v3 under the shim, every sync of a file in its data directory failing
# after the shim's env: QS_SHIM_SYNC_FAIL_AFTER=1 or QS_SHIM_FAIL_SYNC=FILE.
start_v3_faulty() {
	env LD_PRELOAD="${QS_SAN_RT:+$QS_SAN_RT }$SHIM" QS_SHIM_PATH="$V3DATA" \
		QS_SHIM_COUNT="$COUNT" "$@" "$QSD" -c "$T/c/v3/qsd.yaml" 2>>"$T/v3.log" &
	QS_PID=$!
	QS_PIDS+=("$QS_PID")
	pid[3]=$QS_PID
}

# 1. Every sync failing from the start: the database never opens.
start_v3_faulty QS_SHIM_SYNC_FAIL_AFTER=1
wait_exit "${pid[3]}" 60
[ "$WAIT_RC" = 74 ] || die "v3 with every sync failing: exit $WAIT_RC, want 74 at start"
grep -q '^<2>event=storage_open_failed .*Input/output error' "$T/v3.log" ||
	die "v3: no storage_open_failed line naming the I/O error"
[ -s "$COUNT" ] || die "v3: the shim injected no failure"
echo "ok: v3 with every sync failing from its start exits $WAIT_RC: $(grep -o 'error=.*' "$T/v3.log" | head -n 1)"
# Start it again on a fresh database whose disk breaks once it is up.
rm -rf "$V3DATA" "$COUNT"
mkdir -m 0700 "$V3DATA"

# 2. The cluster, v3's disk breaking before the first submission.
for i in 0 1 2; do
	start_qsd "$T/c/v$i/qsd.yaml" "$T/v$i.log"
	pid[i]=$QS_PID
done
start_v3_faulty QS_SHIM_FAIL_SYNC="$TRIGGER"
for ((i = 0; i < N; i++)); do
	wait_http "$(url "$i")/healthz" 60 || die "v$i did not start"
done
for ((i = 0; i < N; i++)); do
	until_ok 20 connected_is "$i" 3 || die "v$i: not connected to all: $(status "$i" || true)"
done
metric_is 3 qsd_batches_persisted_total 0 || die "v3 wrote batches before the test"
[ ! -e "$COUNT" ] || die "the shim failed a sync of v3 before it was armed"
touch "$TRIGGER"

for i in 0 1 2; do
	timeout -k 5 $((DUR + 60)) "$QSBENCH" submit -d "$T/c" -n "$i" -s 16384 -t 8 -r "$RATE" \
		-D "$DUR" -g 30 -q -j >"$T/sub.v$i.json" 2>"$T/sub.v$i.err" &
	bp[i]=$!
	QS_PIDS+=("${bp[i]}")
done
total=0
for i in 0 1 2; do
	rc=0
	wait "${bp[i]}" || rc=$?
	js=$(cat "$T/sub.v$i.json")
	[ "$rc" = 0 ] || die "qsbench submit to v$i exited $rc: $js $(cat "$T/sub.v$i.err")"
	[[ $js == *'"errors":{}'* ]] || die "v$i answered errors: $js"
	OK[i]=$(jfield "$js" ok)
	[ "${OK[i]}" -ge $((RATE * DUR / 2)) ] || die "v$i: only ${OK[i]} OK: $js"
	total=$((total + OK[i]))
done

# v3 fail-stopped by itself at its first write.
wait_exit "${pid[3]}" 30
[ "$WAIT_RC" = 74 ] || die "v3 exited $WAIT_RC, want 74 (fail-stop)"
[ -s "$COUNT" ] || die "the shim injected no failure into v3"
grep -q '^<2>event=persist_failed reason=io_error' "$T/v3.log" || die "v3: no persist_failed line"
grep -q '^<2>event=storage_state from=ok to=failed' "$T/v3.log" || die "v3: no storage_state line"
grep -q '^<2>event=fail_stop .*exit=74' "$T/v3.log" || die "v3: no fail_stop line"

# v0..v2: every OK batch became a proof from the three healthy signatures.
nacked=0
for i in 0 1 2; do
	until_ok 15 metric_is "$i" qsd_proofs_formed_total "${OK[i]}" ||
		die "v$i: $(metric "$i" qsd_proofs_formed_total) proofs formed, want ${OK[i]}"
	until_ok 15 metric_is "$i" 'qsd_proofs_received_total{result="ok"}' $((total - OK[i])) ||
		die "v$i: $(metric "$i" 'qsd_proofs_received_total{result="ok"}') proofs received, want $((total - OK[i]))"
	metric_is "$i" qsd_proofs_timed_out_total 0 || die "v$i: proofs timed out"
	# Exactly two peer signatures per own batch were ever added, and none
	# came after the quorum: with four nodes up a third one would (v3's).
	metric_is "$i" 'qsd_signatures_received_total{result="added"}' $((2 * OK[i])) ||
		die "v$i: $(metric "$i" 'qsd_signatures_received_total{result="added"}') signatures added, want $((2 * OK[i]))"
	for r in not_pending duplicate unknown_signer info_mismatch bad_signature malformed; do
		metric_is "$i" "qsd_signatures_received_total{result=\"$r\"}" 0 ||
			die "v$i: signatures $r: $(metric "$i" "qsd_signatures_received_total{result=\"$r\"}")"
	done
	s=$(status "$i") || die "v$i: qsctl status failed"
	[ "$(jfield "$s" proofs_formed)" = "${OK[i]}" ] || die "v$i: status: $s"
	[ "$(jfield "$s" own_batches_unproven)" = 0 ] || die "v$i: status: $s"
	n=$(metric "$i" qsd_own_batches_nacked_total)
	nacked=$((nacked + n))
done
# v3 said why it did not sign (IO_ERROR, then STORAGE_FAILED).
[ "$nacked" -ge 1 ] || die "no BatchNack from v3 reached v0..v2"
echo "ok: v3 fail-stopped with exit 74; v0..v2 formed ${OK[0]}, ${OK[1]}, ${OK[2]} proofs; $nacked NACKs from v3 ($((SECONDS - t_start)) s)"

for i in 0 1 2; do
	kill -TERM "${pid[i]}"
done
for i in 0 1 2; do
	wait_exit "${pid[i]}" 30
	[ "$WAIT_RC" = 0 ] || die "v$i: exit $WAIT_RC on SIGTERM"
done

# 3. Every stored proof, decoded: bit 3 of signer_bitmap never set.
for ((i = 0; i < N; i++)); do
	ldb --db="$T/c/v$i/data" --column_family=proofs scan --hex >"$T/proofs.v$i" 2>"$T/ldb.v$i.err" ||
		die "ldb scan of v$i's proofs failed: $(cat "$T/ldb.v$i.err")"
done
for i in 0 1 2; do
	keys[i]=$(tr -d '\n' <"$T/c/v$i/keys/signing.pub")
done
"$PY" - "$T" "$N" "$total" "${keys[@]}" <<'EOF' || die "decoding the proofs failed"
# Walk the protobuf wire format of each ProofOfStore by hand:
#   ProofOfStore { BatchInfo info = 1; bytes signer_bitmap = 2;
#                  repeated bytes signatures = 3; }
#   BatchInfo { bytes author = 1; uint64 batch_id = 2; uint64 epoch = 3;
#               uint64 expiration_us = 4; bytes digest = 5; ... }
# Bit i of the bitmap (byte i // 8, bit i % 8 LSB first) is validator i.
import sys

tdir, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
authors = {bytes.fromhex(k): i for i, k in enumerate(sys.argv[4:])}
errors = []


def varint(b, p):
    v = s = 0
    while True:
        if p >= len(b):
            raise ValueError("truncated varint")
        c = b[p]
        p += 1
        v |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return v, p


def fields(b):
    out, p = [], 0
    while p < len(b):
        key, p = varint(b, p)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, p = varint(b, p)
        elif wt == 2:
            ln, p = varint(b, p)
            if p + ln > len(b):
                raise ValueError("truncated field %d" % num)
            v, p = b[p:p + ln], p + ln
        elif wt == 1:
            v, p = b[p:p + 8], p + 8
        elif wt == 5:
            v, p = b[p:p + 4], p + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.append((num, v))
    return out


for node in range(n):
    count, per_author, bit3 = 0, {}, 0
    with open("%s/proofs.v%d" % (tdir, node)) as f:
        for line in f:
            line = line.strip()
            if " : " not in line:
                continue
            k, v = (x.strip() for x in line.split(" : ", 1))
            key, val = bytes.fromhex(k[2:]), bytes.fromhex(v[2:])
            top = fields(val)
            infos = [v for f, v in top if f == 1]
            bitmaps = [v for f, v in top if f == 2]
            sigs = [v for f, v in top if f == 3]
            if len(infos) != 1 or len(bitmaps) != 1:
                errors.append("v%d: a proof without one info and one bitmap" % node)
                continue
            info = dict(fields(infos[0]))
            bm = bitmaps[0]
            signers = [i for i in range(8 * len(bm)) if bm[i // 8] >> (i % 8) & 1]
            count += 1
            a = "v%s" % authors.get(info.get(1), "?")
            per_author[a] = per_author.get(a, 0) + 1
            if 3 in signers:
                bit3 += 1
            if any(s >= n for s in signers) or len(signers) < 3:
                errors.append("v%d: signers %s" % (node, signers))
            if len(sigs) != len(signers) or any(len(s) != 64 for s in sigs):
                errors.append("v%d: %d signatures for signers %s" % (node, len(sigs), signers))
            if (len(key) != 40 or key[8:] != info.get(5) or
                    int.from_bytes(key[:8], "big") != info.get(4)):
                errors.append("v%d: key %s does not match the proof's info" % (node, k))
    if bit3:
        errors.append("v%d: %d proofs carry a signature of v3" % (node, bit3))
    if node < 3 and count != total:
        errors.append("v%d holds %d proofs, want %d (every OK batch)" % (node, count, total))
    if node < 3 and sorted(per_author) != ["v0", "v1", "v2"]:
        errors.append("v%d: proofs by authors %s" % (node, per_author))
    print("v%d: %d proofs decoded (by author: %s), %d signed by v3" %
          (node, count, ", ".join("%s=%d" % kv for kv in sorted(per_author.items())), bit3))
for e in errors:
    print("FAIL: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
echo "ok: cluster with a faulty node: no proof signed by v3, in $((SECONDS - t_start)) s"
