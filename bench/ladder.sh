#!/usr/bin/env bash
# ladder.sh MEDMON FILE... : the benchmark ladder. For each capture, runs
#   medmon analyze FILE --out /dev/null --ladder STEP
# for STEP in decode flow reassembly ndpi dissect policy (each one stage more of the pipeline)
# and prints wall seconds (median of RUNS, default 3), CPU seconds (user+sys, median; steadier
# than wall time on a shared machine), packets/s and Gbit/s of frame bytes (from the wall time)
# and max RSS. Packets and bytes come from the `stats` event of one extra run; times include
# start-up.
# Env: RUNS=3, STEPS="decode flow ...", CPU=0 (pin to one core; empty = no pinning), EXTRA (options
# for every step), POLICY_ARGS (options for the policy step only, e.g. "--site SITE.yaml": without
# a site the policy step has nothing to judge).
set -uo pipefail
MEDMON=${1:?usage: ladder.sh MEDMON FILE...}; shift
RUNS=${RUNS:-3}
STEPS=${STEPS:-decode flow reassembly ndpi dissect policy}
CPU=${CPU-0}
PIN=(); [ -n "$CPU" ] && command -v taskset >/dev/null && PIN=(taskset -c "$CPU")
TMP=$(mktemp); trap 'rm -f "$TMP"' EXIT
printf '%-24s %-11s %9s %9s %10s %9s %8s\n' capture step wall_s cpu_s Mpkt/s Gbit/s rss_MiB
for f in "$@"; do
  [ -f "$f" ] || { echo "ladder: $f: no such file" >&2; continue; }
  cat "$f" >/dev/null   # page cache
  read -r pkts bytes < <("$MEDMON" analyze "$f" --out - --ladder decode ${EXTRA:-} 2>/dev/null | /usr/bin/python3 -c '
import json, sys
s = [json.loads(l) for l in sys.stdin if "\"stats\"" in l][-1]["stats"]
print(s["packets"], s["bytes"])')
  for step in $STEPS; do
    walls=(); cpus=(); rss=0
    for _ in $(seq "$RUNS"); do
      a=$(date +%s.%N)
      /usr/bin/time -f '%M %x %U %S' -o "$TMP" "${PIN[@]}" "$MEDMON" analyze "$f" --out /dev/null --ladder "$step" ${EXTRA:-} \
        $([ "$step" = policy ] && echo "${POLICY_ARGS:-}") >/dev/null 2>&1
      b=$(date +%s.%N)
      read -r r rc us ss < <(tail -n 1 "$TMP")
      cpus+=("$(awk -v u="${us:-0}" -v s="${ss:-0}" 'BEGIN{printf "%.2f", u+s}')")
      [ "${rc:-1}" -le 1 ] 2>/dev/null || { echo "ladder: $step on $f exited ${rc:-?}" >&2; }
      walls+=("$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", b-a}')")
      [[ ${r:-0} =~ ^[0-9]+$ ]] && (( r > rss )) && rss=$r
    done
    w=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    awk -v f="$(basename "$f")" -v s="$step" -v w="$w" -v cpu="$cpu" -v p="$pkts" -v by="$bytes" -v r="$rss" 'BEGIN{
      printf "%-24s %-11s %9.3f %9.2f %10.2f %9.2f %8d\n", f, s, w, cpu, (w>0? p/w/1e6 : 0), (w>0? by*8/w/1e9 : 0), r/1024 }'
  done
done
