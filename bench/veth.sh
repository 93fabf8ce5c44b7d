#!/usr/bin/env bash
# Live capture benchmark: medmon live (AF_PACKET) on one end of a veth pair in a private network
# namespace, tcpreplay of the bench corpora on the other end, with 1 and 2 workers, at
# --mbps 1000 and at --topspeed. Reports per run: packets offered (tcpreplay), received and
# dropped by the kernel, processed by medmon (its final `stats` events), the replay rate, the
# processing rate, medmon's CPU seconds, and the largest worker's share of the packets (flow
# hashing cannot split one flow: a corpus dominated by a few flows cannot use two workers fully).
# Run as root.
#   bench/veth.sh [CORPUS_DIR] [MEDMON]
#   CORPUS_DIR default /tmp/corpora or bench/corpora (bench/make-corpora.sh makes them);
#   env: CORPORA="dicom-large dicom-many hl7-many mixed", WORKERS="1 2",
#        MODES="mbps1000 topspeed" (and/or drain: medmon stopped while the corpus fills its rings,
#        then timed while it empties them, with DRAIN_RING_MB=3072 per worker to hold the corpus;
#        the corpus is replayed DRAIN_LOOPS=4 times with --unique-ip, new addresses each pass, so
#        that the drain lasts seconds rather than tenths and holds four times as many flows;
#        the corpora talk 127.0.0.1 to 127.0.0.1, which --unique-ip would rewrite into a different
#        pair of addresses for each direction, so the looped copy gets distinct client and
#        server addresses first, with tcpprep/tcprewrite),
#        RING_MB=256 (per worker), PIN=1 (worker i pinned to CPU i through capture.cpus),
#        EXTRA="--site policies/sites/bench-loopback.yaml" (more medmon args),
#        WORK_DIR=/tmp (where the events go; /dev/shm keeps disk writeback out of the timing),
#        STATS_DIR= (a directory: each run's final stats events are kept there)
# The `mixed` corpus (dicom-many + hl7-many + the first 150k packets of dicom-large, all
# starting together, merged by time) is made here with editcap/mergecap when missing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/veth-pair.sh"
DIR=${1:-}
if [ -z "$DIR" ]; then
  if [ -f /tmp/corpora/dicom-many.pcap ]; then DIR=/tmp/corpora; else DIR=$HERE/corpora; fi
fi
MEDMON=$(realpath "${2:-$HERE/../build/sensor/cli/medmon}")
CORPORA=${CORPORA:-"dicom-large dicom-many hl7-many mixed"}
WORKERS=${WORKERS:-"1 2"}
MODES=${MODES:-"mbps1000 topspeed"}
RING_MB=${RING_MB:-256}
DRAIN_RING_MB=${DRAIN_RING_MB:-3072}
DRAIN_LOOPS=${DRAIN_LOOPS:-4}
PIN=${PIN:-0}
EXTRA=${EXTRA:-}
[ "$(id -u)" = 0 ] || { echo "veth.sh: needs root (network namespace, AF_PACKET)" >&2; exit 2; }
for t in ip tcpreplay tcpprep tcprewrite editcap mergecap capinfos; do
  command -v $t >/dev/null || { echo "veth.sh: $t missing (scripts/install-deps.sh --test)" >&2; exit 2; }
done

W=$(mktemp -d "${WORK_DIR:-/tmp}/medmon-veth.XXXXXX")
NS=mmveth$$
cleanup() {
  [ -n "${MPID:-}" ] && kill "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null || true
  veth_pair_del $NS
  rm -rf "$W"
}
trap cleanup EXIT
CONFIG=()
if [ "$PIN" = 1 ]; then
  printf 'capture:\n  cpus: [0, 1]\n' > "$W/pin.yaml"; chmod 600 "$W/pin.yaml"
  CONFIG=(--config "$W/pin.yaml")
fi
# MTU 9000: the corpora were captured with offloads off, frames <= 1514.
veth_pair $NS 9000

if [[ " $CORPORA " == *" mixed "* ]] && [ ! -f "$DIR/mixed.pcap" ]; then
  echo "making $DIR/mixed.pcap" >&2
  start() { capinfos -a -S "$1" | awk '/First packet time/ {print $NF}'; }
  h=$(start "$DIR/hl7-many.pcap")
  editcap -r "$DIR/dicom-large.pcap" "$W/large-part.pcap" 1-150000
  sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a - b }'; }
  editcap -t "$(sub "$h" "$(start "$DIR/dicom-many.pcap")")" "$DIR/dicom-many.pcap" "$W/many.pcap"
  editcap -t "$(sub "$h" "$(start "$W/large-part.pcap")")" "$W/large-part.pcap" "$W/large.pcap"
  mergecap -F pcap -w "$DIR/mixed.pcap" "$DIR/hl7-many.pcap" "$W/many.pcap" "$W/large.pcap"
  rm -f "$W"/*.pcap
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "tid:ticks,..." for every thread of a process (utime + stime)
thread_ticks() { for t in /proc/"$1"/task/*; do printf '%s:%s,' "${t##*/}" "$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)"; done; }

# sent_mbps: what tcpreplay achieved; kpps_replay: processed packets per second of replay; kpps_done: per second until medmon had
# processed everything (its CPU time stopped moving, to a 10 ms tick); kpps_cpu: per CPU second of medmon
# from the start of the replay (ring set-up excluded). drain: replay_s is the time to fill the
# rings, kpps_done the rate of emptying them. busy: CPU time of each thread that used 0.05 s or
# more over that same time, as a share of it (a worker below 1.0 waited or was not scheduled).
printf '%-12s %-8s %2s %9s %8s %9s %8s %9s %8s %11s %9s %8s %7s %9s %s\n' corpus mode w offered sent_mbps received \
  dropped processed replay_s kpps_replay kpps_done kpps_cpu cpu_s max_share busy
# The corpus with client and server on addresses of their own (see DRAIN_LOOPS above): tcpprep
# tells the server side by its port (DICOM 104/11112, HL7 2575), tcprewrite moves each side.
two_endpoints() {
  local in=$1 out=$2
  [ -f "$out" ] && [ "$out" -nt "$in" ] && return 0
  printf 'dicom\t104/tcp\ndicom\t11112/tcp\nhl7\t2575/tcp\n' > "$W/services"
  tcpprep --port --services="$W/services" --pcap="$in" --cachefile="$W/sides.cache"
  tcprewrite --endpoints=10.1.1.10:10.2.2.20 --cachefile="$W/sides.cache" --infile="$in" --outfile="$out.tmp"
  mv "$out.tmp" "$out"
}

for corpus in $CORPORA; do
  f="$DIR/$corpus.pcap"
  [ -f "$f" ] || { echo "veth.sh: $f missing (bench/make-corpora.sh)" >&2; continue; }
  looped=$f
  if [[ " $MODES " == *" drain "* ]] && [ "$DRAIN_LOOPS" -gt 1 ]; then
    looped="$DIR/$corpus-endpoints.pcap"
    two_endpoints "$f" "$looped"
  fi
  for w in $WORKERS; do
    for mode in $MODES; do
      case $mode in
        mbps1000) rate=(--mbps 1000) ;;
        topspeed) rate=(--topspeed) ;;
        drain) rate=(--topspeed); [ "$DRAIN_LOOPS" -gt 1 ] && rate+=(--loop "$DRAIN_LOOPS" --unique-ip) ;;
        *) echo "veth.sh: unknown mode $mode" >&2; exit 2 ;;
      esac
      : > "$W/ev.jsonl"
      ring=$RING_MB; [ "$mode" = drain ] && ring=$DRAIN_RING_MB
      # shellcheck disable=SC2086
      ip netns exec $NS "$MEDMON" live -i vb --workers "$w" --buffer-mb "$ring" --out "$W/ev.jsonl" --quiet \
        "${CONFIG[@]}" $EXTRA 2> "$W/err.txt" &
      MPID=$!
      for _ in $(seq 100); do
        # every worker's socket is bound to vb (Iface column set)
        [ "$(nsx awk 'NR > 1 && $5 != 0' /proc/net/packet | wc -l)" -ge "$w" ] && break
        kill -0 $MPID 2>/dev/null || { cat "$W/err.txt" >&2; exit 1; }
        sleep 0.1
      done
      sleep 0.5
      # drain: medmon is stopped while the corpus fills its rings, then timed emptying them
      # (its processing rate without tcpreplay competing for the CPUs).
      [ "$mode" = drain ] && kill -STOP $MPID
      cpu0=$(cpu_ticks $MPID)   # after the rings are set up (locking them costs CPU too)
      th0=$(thread_ticks $MPID)  # (stopped in drain mode: the same as at SIGCONT)
      t0=$(date +%s.%N)
      input=$f; [ "$mode" = drain ] && input=$looped
      nsx tcpreplay -i va "${rate[@]}" "$input" > "$W/replay.txt" 2>&1
      t1=$(date +%s.%N)
      # Wait until medmon has emptied its rings: its CPU time has not moved for 0.5 s. A poller
      # reading /proc every 5 ms (no process per sample, so it barely competes with the workers)
      # gives the time of the last change to a tick (10 ms); in drain mode it also sends SIGCONT
      # itself, once it has started, and gives that time.
      read -r tc t2 < <(/usr/bin/python3 -S - "$MPID" "$mode" "$t0" <<'PY'
import os, signal, sys, time
pid, mode, t0 = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def ticks():
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])
tc = t0
if mode == "drain":
    os.kill(pid, signal.SIGCONT)
    tc = f"{time.time():.6f}"
prev, t2, still_since = ticks(), time.time(), time.time()
while time.time() - still_since < 0.5 and time.time() - t2 < 300:
    time.sleep(0.005)
    cur = ticks()
    if cur != prev:
        prev, t2, still_since = cur, time.time(), time.time()
print(tc, f"{t2:.6f}")
PY
)
      cpu=$(( $(cpu_ticks $MPID) - cpu0 ))
      th1=$(thread_ticks $MPID)
      kill -TERM $MPID
      wait $MPID || { echo "veth.sh: medmon exited $?" >&2; cat "$W/err.txt" >&2; }
      MPID=
      [ -n "${STATS_DIR:-}" ] && grep '"event_type":"stats"' "$W/ev.jsonl" > "$STATS_DIR/$corpus-$mode-$w-$(date +%H%M%S).jsonl"
      offered=$(awk '/Actual:/ {print $2; exit}' "$W/replay.txt")
      mbps=$(awk '/Rated:/ {print $4; exit}' "$W/replay.txt")
      [ -n "${VERBOSE:-}" ] && grep -E "Successful|Failed|Retried" "$W/replay.txt" >&2
      /usr/bin/python3 - "$W/ev.jsonl" "$corpus" "$mode" "$w" "$offered" "$mbps" "$t0" "$t1" "$tc" "$t2" "$cpu" \
        "$(getconf CLK_TCK)" "$th0" "$th1" <<'PY'
import json, sys
ev, corpus, mode, w, offered, mbps, t0, t1, tc, t2, cpu, hz, th0, th1 = sys.argv[1:]
last = {}
for line in open(ev):
    e = json.loads(line)
    if e["event_type"] == "stats":
        last[e["stats"].get("worker", 0)] = e["stats"]
recv = sum(s["capture"]["received"] for s in last.values())
drop = sum(s["capture"]["dropped"] for s in last.values())
proc = sum(s["packets"] for s in last.values())
replay = float(t1) - float(t0)
cpu_s = int(cpu) / int(hz)
def ticks(s):
    return {k: int(v) for k, v in (x.split(":") for x in s.split(",") if x)}
def busy(window):
    # CPU seconds of each busy thread over the timed window, as a share of it: below 1.0 a
    # thread waited (for packets, a lock, the output) or the machine did not run it.
    a, b = ticks(th0), ticks(th1)
    used = sorted(((b[t] - a.get(t, 0)) / int(hz) for t in b), reverse=True)
    return "/".join(f"{u / window:.2f}" for u in used if u >= 0.05) or "-"
# drain: from SIGCONT to the end of processing; else from the start of the replay.
done = max(float(t2) - float(tc), 1e-3) if mode == "drain" else max(float(t2) - float(t0), replay)
in_replay = "-" if mode == "drain" else f"{proc / replay / 1e3:.1f}"
print(f"{corpus:<12} {mode:<8} {w:>2} {int(offered):>9} {float(mbps):>8.0f} {recv:>9} {drop:>8} {proc:>9} {replay:>8.2f} "
      f"{in_replay:>11} {proc / done / 1e3:>9.1f} {proc / max(cpu_s, 1e-9) / 1e3:>8.1f} {cpu_s:>7.2f} "
      f"{max(s['packets'] for s in last.values()) / max(proc, 1):>9.2f} {busy(done)}")
PY
    done
  done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
