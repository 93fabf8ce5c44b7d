#!/usr/bin/env bash
# Records the bundled demo capture: a small hospital network built from network namespaces on
# one bridge, with real software on each host, captured on the CT scanner's switch port (what a
# SPAN of that port would give).
#   make-demo.sh [OUT.pcap]      default: demo.pcap next to this script. Run as root.
# Hosts (all on 10.10.0.0/16, flat, which is the kind of network medmon is meant to watch):
#   CT scanner  10.10.1.10   AE CT01        (storescu, echoscu, HL7 client, the undesired flows)
#   PACS        10.10.2.20   AE PACS01      storescp on 11112
#   RIS         10.10.3.30                  HL7 MLLP listener on 2575 (python3-hl7), ACKs
#   workstation 10.10.1.50                  SSH responder on 22, SMB2 responder on 445
#   gateway     10.10.0.1    also holds 8.8.8.8 and answers DNS there (no internet in the lab)
# Needs (Debian): dcmtk python3-hl7 tcpdump iproute2 ethtool openssh-client.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE/demo.pcap}")
PY=/usr/bin/python3
P="mmd$$"   # namespace name prefix, unique per run
W=$(mktemp -d)
HOSTS=(ct pacs ris ws gw)
cleanup() {
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  for h in "${HOSTS[@]}" sw; do ip netns pids "$P-$h" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  sleep 0.2
  for h in "${HOSTS[@]}" sw; do ip netns del "$P-$h" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
on() { local h=$1; shift; ip netns exec "$P-$h" "$@"; }

# --- network: one bridge in "sw", one veth per host
ip netns add "$P-sw"
on sw ip link add br0 type bridge
on sw ip link set br0 up
on sw sysctl -qw net.ipv6.conf.all.disable_ipv6=1
declare -A ADDR=([ct]=10.10.1.10 [pacs]=10.10.2.20 [ris]=10.10.3.30 [ws]=10.10.1.50 [gw]=10.10.0.1)
declare -A MAC=([ct]=02:00:0a:0a:01:0a [pacs]=02:00:0a:0a:02:14 [ris]=02:00:0a:0a:03:1e [ws]=02:00:0a:0a:01:32 [gw]=02:00:0a:0a:00:01)
for h in "${HOSTS[@]}"; do
  ip netns add "$P-$h"
  on "$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  on "$h" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
  on sw ip link add "$h-p" type veth peer name eth0 netns "$P-$h"
  on sw ip link set "$h-p" master br0 up
  on "$h" ip link set eth0 address "${MAC[$h]}"
  on "$h" ip addr add "${ADDR[$h]}/16" dev eth0
  on "$h" ip link set eth0 up
  on "$h" ip link set lo up
  # offloads off: every frame on the wire is a real <= 1514-byte frame with a correct checksum
  on "$h" ethtool -K eth0 tx off tso off gso off gro off >/dev/null 2>&1 || true
  on sw ethtool -K "$h-p" tx off tso off gso off gro off >/dev/null 2>&1 || true
done
on ct ip route add default via 10.10.0.1
on gw ip addr add 8.8.8.8/32 dev lo
on gw sysctl -qw net.ipv4.ip_forward=0

# --- made-up CT images: 3 slices, 64x64 16-bit, patient TESTPATIENT^ALPHA
mkimg() { # index
  cat > "$W/ct$1.dump" <<DUMP
(0008,0008) CS [ORIGINAL\PRIMARY\AXIAL]
(0008,0016) UI =CTImageStorage
(0008,0018) UI [1.2.826.0.1.3680043.8.498.20240301.1.$1]
(0008,0020) DA [20240301]
(0008,0030) TM [115500]
(0008,0050) SH [ACC1001]
(0008,0060) CS [CT]
(0008,0070) LO [ACME MEDICAL]
(0008,0080) LO [TEST GENERAL HOSPITAL]
(0008,0090) PN [REFERRING^DOCTOR]
(0008,1010) SH [CT01]
(0008,1090) LO [ACME CT 9000]
(0010,0010) PN [TESTPATIENT^ALPHA^A]
(0010,0020) LO [DEMO0001]
(0010,0030) DA [19700101]
(0010,0040) CS [F]
(0018,0050) DS [5.0]
(0020,000d) UI [1.2.826.0.1.3680043.8.498.20240301.1]
(0020,000e) UI [1.2.826.0.1.3680043.8.498.20240301.1.1]
(0020,0010) SH [STUDY1]
(0020,0013) IS [$1]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US 64
(0028,0011) US 64
(0028,0100) US 16
(0028,0101) US 12
(0028,0102) US 11
(0028,0103) US 0
DUMP
  dump2dcm --write-xfer-little "$W/ct$1.dump" "$W/ct$1.hdr"
  $PY - "$W/ct$1.hdr" "$W/ct$1.dcm" "$1" <<'PY'
import struct, sys
hdr = open(sys.argv[1], 'rb').read(); k = int(sys.argv[3])
pix = b"".join(struct.pack('<H', ((x * x + y * y + 97 * k) >> 2) & 0x0FFF) for y in range(64) for x in range(64))
open(sys.argv[2], 'wb').write(hdr + struct.pack('<HH2sHI', 0x7fe0, 0x0010, b'OW', 0, len(pix)) + pix)
PY
}
for k in 1 2 3; do mkimg $k; done

# --- servers
mkdir -p "$W/pacs-in"
on pacs storescp -aet PACS01 -od "$W/pacs-in" 11112 &
on ris $PY "$HERE/peers.py" hl7-server 10.10.3.30 2575 &
on ws $PY "$HERE/peers.py" ssh-responder 10.10.1.50 22 &
on ws $PY "$HERE/peers.py" smb-server 10.10.1.50 445 &
on gw $PY "$HERE/peers.py" dns-server 8.8.8.8 53 &
sleep 1.5

# --- capture on the CT's switch port
ip netns exec "$P-sw" tcpdump -i ct-p -s 0 -U --immediate-mode -Z root -w "$W/demo.pcap" 2>"$W/tcpdump.log" &
CAP=$!
sleep 1

# legitimate: DICOM verification and storage, HL7 results to the RIS
on ct echoscu -aet CT01 -aec PACS01 10.10.2.20 11112
sleep 0.3
on ct storescu -aet CT01 -aec PACS01 10.10.2.20 11112 "$W/ct1.dcm" "$W/ct2.dcm" "$W/ct3.dcm"
sleep 0.3
on ct $PY "$HERE/peers.py" hl7-client 10.10.3.30 2575
sleep 0.3
# undesired: DNS to the internet, SSH and SMB to a workstation, a SYN scan
on ct $PY "$HERE/peers.py" dns-client 8.8.8.8 53 update.ct-vendor.example telemetry.ct-vendor.example
sleep 0.3
on ct timeout 5 ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o ConnectTimeout=3 service@10.10.1.50 true >/dev/null 2>&1 || true
sleep 0.3
on ct $PY "$HERE/peers.py" smb-client 10.10.1.50 445
sleep 0.3
on ct $PY "$HERE/peers.py" syn-scan 10.10.1.10 10.10.1.50 21 22 23 80 135 139 443 445 3389 5900
sleep 1

kill -INT $CAP; wait $CAP 2>/dev/null || true
grep -h captured "$W/tcpdump.log" >&2 || true
ls "$W/pacs-in" | sed 's/^/stored on PACS01: /' >&2
cp "$W/demo.pcap" "$OUT"
ls -l "$OUT"
