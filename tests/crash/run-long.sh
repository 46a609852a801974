#!/bin/bash
# `make check-long`: the reliability suite at its full counts
# (docs/RELIABILITY.md). Each part runs even when one before failed; the
# figures of each go to $QS_LONG_SUMMARY (default build dir/reliability.txt)
# and stdout, and the exit status is non-zero if any part failed.
#   crash loop      QS_LONG_CYCLES (200) kill -9 cycles
#   lying disk      QS_LONG_LD_CYCLES (60) power cuts, then the run without
#                   the WAL's syncs, which must lose acked batches
#   faults at scale QS_LONG_FAULT_RUNS (60) EIO and full-disk runs
#   hostile peers   one run, QS_LONG_HOSTILE_S (30) seconds of attack
# Environment: B, QS_SAN_RT.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
export B QS_SAN_RT=${QS_SAN_RT:-}
SUMMARY=${QS_LONG_SUMMARY:-$B/reliability.txt}
: >"$SUMMARY"
failed=
part() { # NAME CMD...
	local name=$1 t0=$SECONDS
	shift
	echo "== $name"
	if timeout -k 10 14400 "$@"; then
		echo "$name: ok ($((SECONDS - t0)) s)" | tee -a "$SUMMARY"
	else
		echo "$name: FAILED ($((SECONDS - t0)) s)" | tee -a "$SUMMARY"
		failed="$failed $name"
	fi
}
part crash-loop env QS_CYCLES="${QS_LONG_CYCLES:-200}" QS_CRASH_SUMMARY="$SUMMARY" \
	bash tests/it-crash-loop.sh
part lying-disk env QS_LD_CYCLES="${QS_LONG_LD_CYCLES:-60}" QS_LD_NEG_CYCLES=5 \
	QS_CRASH_SUMMARY="$SUMMARY" bash tests/it-lying-disk.sh
part faults-at-scale env QS_FAULT_RUNS="${QS_LONG_FAULT_RUNS:-60}" QS_FAULT_SUMMARY="$SUMMARY" \
	bash tests/it-faults-at-scale.sh
part hostile-peers env QS_HOSTILE_S="${QS_LONG_HOSTILE_S:-30}" QS_HOSTILE_SUMMARY="$SUMMARY" \
	bash tests/crash/hostile-peers.sh
echo "-- figures ($SUMMARY)"
cat "$SUMMARY"
[ -z "$failed" ] || { echo "check-long: failed:$failed"; exit 1; }
echo "check-long: all passed"
