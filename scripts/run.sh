#!/usr/bin/env bash
# Sets up this host, builds Atoll and runs its main job in the foreground.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATOLL_BUILD_TESTS=OFF -DATOLL_BUILD_BENCH=OFF >/dev/null
echo "run: built $(build/tools/atoll --version)"
# Until the daemon lands, the main job is the host capability report.
exec build/tools/atoll check "$@"
