#!/usr/bin/env bash
# run.sh [SCALE] : the whole benchmark. Builds the shared corpora at SCALE (default 1; 0.25 for a
# quick run) into bench/corpora/ (git-ignored; rebuilt only when missing or the scale changed),
# a capture of 200k short TCP flows, then runs the ladder on each and compare.sh (medmon against
# tcpdump, ndpiReader and tshark). Results go to bench/results/<date>.txt as well.
# Env: MEDMON (default build/sensor/cli/medmon), RUNS (default 3), FLOWS (default 200000),
#      TSHARK=0 to leave tshark out of the full-pipeline comparison.
# Needs root (network namespaces) and: dcmtk python3-hl7 tcpdump libndpi-bin tshark ethtool.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SCALE=${1:-1}
MEDMON=${MEDMON:-$ROOT/build/sensor/cli/medmon}
C=$HERE/corpora
[ -x "$MEDMON" ] || { echo "run.sh: $MEDMON not built (cmake --build build --target medmon)" >&2; exit 2; }
mkdir -p "$C" "$HERE/results"
if [ "$(cat "$C/.scale" 2>/dev/null)" != "$SCALE" ] || [ ! -f "$C/hl7-many.pcap" ]; then
  rm -f "$C"/*.pcap
  "$HERE/make-corpora.sh" "$C" "$SCALE"
  echo "$SCALE" > "$C/.scale"
fi
FLOWS=${FLOWS:-200000}
if [ "$(cat "$C/.flows" 2>/dev/null)" != "$FLOWS" ] || [ ! -f "$C/many-flows.pcap" ]; then
  /usr/bin/python3 "$HERE/make-many-flows.py" --flows "$FLOWS" "$C/many-flows.pcap"
  echo "$FLOWS" > "$C/.flows"
fi
# the policy step judges the corpora with a site binding their loopback peers, when there is one
SITE=$ROOT/policies/sites/bench-loopback.yaml
[ -f "$SITE" ] && export POLICY_ARGS="--site $SITE --fail-on none"
OUT=$HERE/results/$(date -u +%Y%m%dT%H%M%SZ).txt
{
  echo "# medmon $("$MEDMON" --version 2>/dev/null | head -1), scale $SCALE, $(nproc) CPUs, $(date -u)"
  echo "## ladder (one core)"
  "$HERE/ladder.sh" "$MEDMON" "$C"/dicom-large.pcap "$C"/dicom-large-ooo.pcap "$C"/dicom-many.pcap \
    "$C"/hl7-many.pcap "$C"/many-flows.pcap
  echo "## compare.sh, core path (--ladder ndpi: decode + flow + reassembly + nDPI)"
  TSHARK=0 MEDMON_ARGS="--ladder ndpi" "$HERE/compare.sh" "$C" "$MEDMON" "${RUNS:-3}"
  echo "## compare.sh, full pipeline (tshark included unless TSHARK=0)"
  "$HERE/compare.sh" "$C" "$MEDMON" "${RUNS:-3}"
} | tee "$OUT"
echo "results: $OUT"
