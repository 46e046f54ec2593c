#!/usr/bin/env bash
# Sets up this host, builds Atoll and runs the whole test suite:
#   1. install dependencies from Debian (root)
#   2. formatting check
#   3. build (RelWithDebInfo) and run every test: unit, kernel, vm
#   4. ASan+UBSan build of the unit tests, run
#   5. ThreadSanitizer build of the lock-free code's tests, run
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
stage() { echo; echo "=== $* ($(($(date +%s) - start)) s)"; }

stage "dependencies"
scripts/install-deps.sh

stage "format"
scripts/check-format.sh

stage "build"
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo

stage "tests: unit, kernel, vm"
status=0
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600 || status=1

stage "ASan+UBSan build of the unit tests"
ATOLL_TARGET=atoll_tests scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DATOLL_SANITIZE=ON \
  -DATOLL_TEST_LABELS=unit -DATOLL_BUILD_BENCH=OFF
stage "tests: unit under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -L unit || status=1

stage "ThreadSanitizer build of the lock-free tests"
ATOLL_TARGET=atoll_tests scripts/build.sh build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATOLL_TSAN=ON \
  -DATOLL_TEST_LABELS=tsan -DATOLL_BUILD_BENCH=OFF
stage "tests: lock-free code under ThreadSanitizer"
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -L tsan --no-tests=ignore || status=1

stage "done, status $status"
exit $status
