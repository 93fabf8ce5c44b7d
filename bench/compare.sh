#!/usr/bin/env bash
# compare.sh CORPUSDIR MEDMON [runs]: times medmon against the floor (tcpdump read) and the
# tools a user would pick instead (ndpiReader, tshark) on the same files, in one run, and prints
# wall seconds (median of runs), max RSS and medmon's ratio to each. tshark is timed once (slow).
# Needs: tcpdump libndpi-bin tshark (Debian). Reads files from page cache: the first run warms it.
# MEDMON_ARGS adds options to medmon (e.g. "--ladder ndpi" times the core path only).
# TSHARK=0 skips tshark (it needs ~15 min on the out-of-order corpus). The HL7 fields are ones
# tshark 4.0 has (hl7.msh.message_control_id does not exist there and made tshark exit at once).
set -uo pipefail
DIR=${1:?usage: compare.sh CORPUSDIR MEDMON [runs]}; MEDMON=${2:?medmon binary}; RUNS=${3:-3}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
t() { # runs command N times, prints "median_wall_s max_rss_kb"
  local n=$1; shift; local walls=() rss=0 a b r
  for _ in $(seq "$n"); do
    a=$(date +%s.%N)
    /usr/bin/time -f '%M' -o /tmp/.cmp.$$ "$@" >/dev/null 2>&1
    b=$(date +%s.%N)
    walls+=("$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", b-a}')")
    r=$(tail -n 1 /tmp/.cmp.$$); [[ $r =~ ^[0-9]+$ ]] && (( r > rss )) && rss=$r
  done
  printf '%s %s\n' "$(printf '%s\n' "${walls[@]}" | median)" "$rss"
}
printf '%-22s %-10s %9s %9s %10s\n' corpus tool wall_s rss_MiB medmon_x
for f in dicom-large dicom-large-ooo dicom-many hl7-many; do
  p=$DIR/$f.pcap; [ -f "$p" ] || continue
  cat "$p" >/dev/null
  case $f in hl7*) dis=(-d tcp.port==2575,hl7 -T fields -e hl7.message.type -e hl7.event.type -e hl7.segment);;
             *) dis=(-d tcp.port==11112,dicom -o tcp.reassemble_out_of_order:TRUE -Y dicom -T fields -e dicom.assoc.ae.calling -e dicom.assoc.ae.called -e dicom.tag.value.str);; esac
  read -r mw mr < <(t "$RUNS" "$MEDMON" analyze "$p" --out /dev/null ${MEDMON_ARGS:-})
  read -r fw fr < <(t "$RUNS" tcpdump -r "$p" -w /dev/null)
  read -r nw nr < <(t "$RUNS" ndpiReader -i "$p")
  if [ "${TSHARK:-1}" = 1 ]; then read -r sw sr < <(t 1 tshark -r "$p" "${dis[@]}"); else sw=0; sr=0; fi
  rows=("medmon $mw $mr" "floor $fw $fr" "ndpiReader $nw $nr"); [ "${TSHARK:-1}" = 1 ] && rows+=("tshark $sw $sr")
  for row in "${rows[@]}"; do
    set -- $row
    printf '%-22s %-10s %9s %9d %10s\n' "$f" "$1" "$2" $(( $3 / 1024 )) "$(awk -v a="$2" -v b="$mw" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')"
  done
done
rm -f /tmp/.cmp.$$
