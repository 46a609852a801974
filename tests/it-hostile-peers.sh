#!/bin/bash
# Hostile peers (tests/crash/hostile-peers.sh), short: 12 s of concurrent
# attacks (slowloris must outlive the 10 s handshake timeout), v5's clean and
# attacked runs of 4 s, then the two peers that never read (14 s: one closed
# by the 64 MiB bound, one by the 10 s write stall). About 40 s. `make
# check-long` runs it with 30 s of attack.
set -euo pipefail
cd "$(dirname "$0")/.."
QS_HOSTILE_S=${QS_HOSTILE_S:-12} QS_HOSTILE_BENCH_S=${QS_HOSTILE_BENCH_S:-4} \
	exec bash tests/crash/hostile-peers.sh
