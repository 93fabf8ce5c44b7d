#!/usr/bin/env bash
# Soak test: medmon live (AF_PACKET, site policy) on a veth pair in a private network namespace
# while tcpreplay loops the demo capture, with a SIGHUP (policy reload) every RELOAD_EVERY
# seconds. Samples RSS and open file descriptors every SAMPLE seconds and fails when either
# grows after the warm-up. Run as root; not part of CI (10 minutes).
#   bench/soak.sh [MEDMON]      env: DURATION=600 WARMUP=120 SAMPLE=5 MBPS=20 WORKERS=2 RELOAD_EVERY=60
# Prints the samples (t_s rss_kib fds events_mib) and a verdict; exits 1 on growth.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/veth-pair.sh"
SRC=$(cd "$HERE/.." && pwd)
MEDMON=$(realpath "${1:-$SRC/build/sensor/cli/medmon}")
DURATION=${DURATION:-600}
WARMUP=${WARMUP:-120}
SAMPLE=${SAMPLE:-5}
MBPS=${MBPS:-20}
WORKERS=${WORKERS:-2}
RELOAD_EVERY=${RELOAD_EVERY:-60}
[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root" >&2; exit 2; }

W=$(mktemp -d /tmp/medmon-soak.XXXXXX)
NS=mmsoak$$
cleanup() {
  [ -n "${RPID:-}" ] && kill "$RPID" 2>/dev/null || true
  [ -n "${MPID:-}" ] && kill "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null || true
  veth_pair_del $NS
  rm -rf "$W"
}
trap cleanup EXIT
veth_pair $NS

cat > "$W/medmon.yaml" <<YAML
capture:
  interface: vb
  workers: $WORKERS
  ring_size: 16777216
  block_size: 1048576
output:
  stats_interval: 10
policy:
  site: $SRC/policies/sites/demo-site.yaml
YAML
ip netns exec $NS "$MEDMON" live --config "$W/medmon.yaml" --out "$W/events.jsonl" --quiet 2> "$W/err.txt" &
MPID=$!
sleep 1
kill -0 $MPID || { cat "$W/err.txt" >&2; exit 1; }
ip netns exec $NS tcpreplay -q -i va --mbps "$MBPS" --loop 0 "$SRC/pcaps/demo/demo.pcap" > /dev/null 2>&1 &
RPID=$!

echo "t_s rss_kib fds events_mib"
start=$(date +%s)
next_reload=$RELOAD_EVERY
samples="$W/samples.txt"
while :; do
  now=$(( $(date +%s) - start ))
  [ "$now" -ge "$DURATION" ] && break
  rss=$(awk '/VmRSS/ {print $2}' /proc/$MPID/status)
  fds=$(ls /proc/$MPID/fd | wc -l)
  mib=$(( $(stat -c %s "$W/events.jsonl") >> 20 ))
  echo "$now $rss $fds $mib" | tee -a "$samples"
  if [ "$now" -ge "$next_reload" ]; then kill -HUP $MPID; next_reload=$(( next_reload + RELOAD_EVERY )); fi
  sleep "$SAMPLE"
done
kill $RPID; wait $RPID 2>/dev/null || true; RPID=
kill -TERM $MPID; rc=0; wait $MPID || rc=$?; MPID=
reloads=$(grep -c "in force" "$W/err.txt" || true)
echo "medmon exit status $rc; reloads applied: $reloads; stderr lines: $(wc -l < "$W/err.txt")"
/usr/bin/python3 - "$samples" "$WARMUP" "$W/events.jsonl" <<'PY'
import json, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
warm = int(sys.argv[2])
after = [r for r in rows if r[0] >= warm]
if len(after) < 4:
    print("soak: too few samples after warm-up"); sys.exit(1)
half = len(after) // 2
rss_a = max(r[1] for r in after[:half]); rss_b = max(r[1] for r in after[half:])
fd_a = {r[2] for r in after}
last = {}
pk = 0
for line in open(sys.argv[3]):
    e = json.loads(line)
    if e["event_type"] == "stats":
        last[e["stats"].get("worker", 0)] = e["stats"]
pk = sum(s["packets"] for s in last.values())
drop = sum(s["capture"]["dropped"] for s in last.values())
print(f"packets processed {pk}, kernel drops {drop}")
print(f"RSS after warm-up: first half max {rss_a} KiB, second half max {rss_b} KiB; "
      f"min {min(r[1] for r in after)} KiB; fds seen after warm-up: {sorted(fd_a)}")
grew = rss_b > rss_a * 1.05 + 1024 or len(fd_a) > 1
print("soak: " + ("GROWTH" if grew else "no growth after warm-up"))
sys.exit(1 if grew else 0)
PY
