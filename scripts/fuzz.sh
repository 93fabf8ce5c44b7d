#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each one for a fixed time from
# seeds made from the repository's captures, policies and MDS2 data plus the regression inputs
# in tests/fuzz-regressions/<target>/. Any crash, sanitizer report, leak, timeout or OOM fails
# the run; the reproducer is left in <build>/fuzz-out/<target>/ (copy it into
# tests/fuzz-regressions/<target>/ once fixed).
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [-b BUILD_DIR] [TARGET...]
# Defaults: 30 s per target, 2 targets at a time, build-fuzz, every target.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=30 JOBS=2 BUILD=build-fuzz
while getopts "t:j:b:" o; do
  case $o in t) SECS=$OPTARG ;; j) JOBS=$OPTARG ;; b) BUILD=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
ALL=(decode pcapfile pipeline policy mds2_xlsx mds2_text mds2_pdf dicom hl7 signatures astm poct1 sdc dhcp)
TARGETS=("$@")
[ $# -gt 0 ] || TARGETS=("${ALL[@]}")

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DMEDMON_FUZZ=ON -DMEDMON_TESTS=OFF "${launcher[@]}" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]/#/fuzz_}"

SEEDS=$BUILD/fuzz-seeds OUT=$BUILD/fuzz-out
rm -rf "$SEEDS"
/usr/bin/python3 fuzz/make_seeds.py . "$SEEDS" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

run() {  # one target; its log is $OUT/<target>.log
  local t=$1
  mkdir -p "$OUT/$t" "$BUILD/fuzz-corpus/$t" "$SEEDS/$t"
  # New inputs go to the first directory (kept between local runs); the others are read only.
  local bin
  bin=$(find "$BUILD" -name "fuzz_$t" -type f -perm -u+x | head -1)
  "$bin" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$OUT/$t/" "$BUILD/fuzz-corpus/$t" "$SEEDS/$t" "tests/fuzz-regressions/$t" \
    >"$OUT/$t.log" 2>&1
}

mkdir -p "$OUT"
declare -A pid
failed=()
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run "$t" & pid[$t]=$!
done
for t in "${TARGETS[@]}"; do
  if wait "${pid[$t]}"; then r=ok; else r=FAILED; failed+=("$t"); fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log" | tail -1) || true
  cov=$(grep -o 'cov: [0-9]*' "$OUT/$t.log" | tail -1) || true
  printf '%-11s %-6s %s s  %s execs  %s\n' "$t" "$r" "$SECS" "${execs:-?}" "${cov:-cov: ?}"
done
if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do echo "=== $t ($OUT/$t.log)"; grep -A40 -m1 -E 'ERROR|runtime error|deadly signal|Timeout|out-of-memory' "$OUT/$t.log" || tail -40 "$OUT/$t.log"; done
  echo "fuzz: failed: ${failed[*]}; reproducers in $OUT/<target>/"
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets clean, $SECS s each"
