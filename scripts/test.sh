#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit, golden and fuzz-regression tests
# on the Release build, then the unit tests, the fuzz regression replays and every golden test
# but the two that measure peak RSS on an ASan+UBSan build, then every libFuzzer target for a
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
  # Every golden test but the two that assert peak RSS: ASan's shadow memory and quarantine
  # make RSS meaningless there (they run in the Release pass above).
  (cd build-asan && ctest --output-on-failure -j2 --timeout 3600 -L golden \
     -E 'golden_(core_flowcap|hostile_limits)_test')
fi
if [ "${MEDMON_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh -t "${MEDMON_FUZZ_SECONDS:-20}" -j 2
fi
