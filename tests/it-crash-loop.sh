#!/bin/bash
# Crash loop (tests/crash/crash-loop.sh): QS_CYCLES (default 20) kill -9 of a
# loaded qsd at random moments, during recovery and right after GC runs, each
# followed by a restart and a read-back of everything acked that has not
# expired. `make check-long` runs 200 cycles.
set -euo pipefail
cd "$(dirname "$0")/.."
QS_CYCLES=${QS_CYCLES:-20} QS_CRASH_MODE=kill exec bash tests/crash/crash-loop.sh
