#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit and golden tests on the Release
# build, then the same suite on an ASan+UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/build.sh build
(cd build && ctest --output-on-failure -j2 --timeout 1200)
if [ "${MEDMON_SKIP_SANITIZERS:-0}" != 1 ]; then
  scripts/build.sh build-asan -DMEDMON_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j2 --timeout 1800)
fi
