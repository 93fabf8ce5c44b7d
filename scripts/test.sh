#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit, golden and fuzz-regression tests
# on the Release build, then all of them again on an ASan+UBSan build (where the peak-RSS bounds
# are not asserted: the sanitizer's shadow memory is in RSS), then every libFuzzer target for a
# short fixed time (docs/fuzzing.md; MEDMON_SKIP_FUZZ=1 skips it, MEDMON_FUZZ_SECONDS sets the
# time per target).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/build.sh build
(cd build && ctest --output-on-failure -j2 --timeout 1800)
if [ "${MEDMON_SKIP_SANITIZERS:-0}" != 1 ]; then
  scripts/build.sh build-asan -DMEDMON_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest --output-on-failure -j2 --timeout 3600 -L 'unit|fuzz-regression')
  # Every golden test; MEDMON_SANITIZED=1: ASan's shadow memory and quarantine make peak RSS
  # meaningless, so the two tests that bound it check everything else (bounds: Release pass).
  (cd build-asan && MEDMON_SANITIZED=1 ctest --output-on-failure -j2 --timeout 3600 -L golden)
fi
if [ "${MEDMON_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh -t "${MEDMON_FUZZ_SECONDS:-20}" -j 2
fi
