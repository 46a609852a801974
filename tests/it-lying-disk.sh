#!/bin/bash
# The lying disk (tests/shim_lyingdisk.so): qsd's data directory behaves as
# a disk losing power, everything not yet fsynced (file data, directory
# entries) thrown away at the cut. Two parts:
#   1. QS_LD_CYCLES (default 4) crash cycles on it (tests/crash/crash-loop.sh
#      in lying mode): nothing acked may be lost.
#   2. The same with the write-ahead log's syncs made no-ops by the shim
#      (QS_LD_NOSYNC_SUFFIX=.log), a writer missing its sync: acked batches
#      must go missing and the crash loop must say so. If that run passes,
#      the lying disk catches nothing and this test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
export B
[ -f "$B/tests/shim_lyingdisk.so" ] || { echo "FAIL: $B/tests/shim_lyingdisk.so is missing" >&2; exit 1; }

echo "-- lying disk, syncs honoured: nothing acked may be lost"
QS_CYCLES=${QS_LD_CYCLES:-4} QS_CRASH_MODE=lying bash tests/crash/crash-loop.sh ||
	{ echo "FAIL: acked batches lost on the lying disk" >&2; exit 1; }

echo "-- lying disk, the WAL's fsync/fdatasync skipped: the loss must be seen"
out=$(mktemp /tmp/qsd-ld-neg-XXXXXX)
trap 'rm -f "$out"' EXIT
rc=0
QS_CYCLES=${QS_LD_NEG_CYCLES:-3} QS_CRASH_MODE=lying QS_LD_NOSYNC_SUFFIX=.log \
	bash tests/crash/crash-loop.sh >"$out" 2>&1 || rc=$?
grep '^LOSS:' "$out" | head -6
grep '^mode=' "$out" || true
if [ "$rc" = 0 ]; then
	echo "FAIL: with the WAL unsynced nothing acked was lost: the lying disk catches no missing sync" >&2
	exit 1
fi
if [ "$rc" != 1 ] || ! grep -q '^LOSS: .* acked batches missing' "$out"; then
	tail -20 "$out" >&2
	echo "FAIL: the run without WAL syncs failed ($rc), but not by missing acked batches" >&2
	exit 1
fi
echo "ok: lying disk: no loss with syncs, loss detected without the WAL's syncs"
