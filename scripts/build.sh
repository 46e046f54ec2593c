#!/usr/bin/env bash
# Configures and builds one build tree. Usage: scripts/build.sh DIR [cmake args...]
# ATOLL_TARGET limits the build to one target (e.g. atoll_tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: build.sh DIR [cmake args...]}
shift
jobs=${ATOLL_JOBS:-$(nproc)}
cmake -S "$root" -B "$dir" -G Ninja "$@"
cmake --build "$dir" -j "$jobs" ${ATOLL_TARGET:+--target "$ATOLL_TARGET"}
