#!/usr/bin/env bash
# Records DICOM carried in a VXLAN overlay made by the Linux kernel: two private network
# namespaces joined by a veth pair (the underlay, 192.0.2.0/24, MTU 1500), a VXLAN device on
# each side (VNI 42, UDP port 4789, overlay 10.1.0.0/24, MTU 1450), DCMTK storescp on the far
# side and storescu sending a made-up CT (pcaps/dicom/make_objects.py) and a C-ECHO.
#   real_vxlan.pcap        the underlay: every frame in its VXLAN/UDP/IPv4 envelope
#   real_vxlan_inner.pcap  the same conversation captured on the overlay device, as a
#                          sensor inside the tunnel would see it
# Usage: make-tunnels.sh [OUTDIR]   (default: this directory). Run as root.
# Needs (Debian): iproute2 (a kernel with vxlan), util-linux, tcpdump, dcmtk, ethtool, python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mkdir -p "${1:-$HERE}" && cd "${1:-$HERE}" && pwd)
if [ -z "${IN_NETNS:-}" ]; then
  IN_NETNS=1 exec unshare -n "$0" "$OUT"
fi
W=$(mktemp -d)
FAR=
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ -n "$FAR" ] && kill "$FAR" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# The far side: a namespace held open by a sleeping process.
unshare -n sleep 600 & FAR=$!
sleep 0.2
far() { nsenter -t "$FAR" -n "$@"; }

ip link set lo up
far ip link set lo up
ip link add ul0 type veth peer name ul1
ip link set ul1 netns "$FAR"
ip addr add 192.0.2.1/24 dev ul0; ip link set ul0 up
far ip addr add 192.0.2.2/24 dev ul1; far ip link set ul1 up
ip link add vx0 type vxlan id 42 local 192.0.2.1 remote 192.0.2.2 dstport 4789 dev ul0
far ip link add vx0 type vxlan id 42 local 192.0.2.2 remote 192.0.2.1 dstport 4789 dev ul1
ip addr add 10.1.0.10/24 dev vx0; ip link set vx0 mtu 1450 up
far ip addr add 10.1.0.20/24 dev vx0; far ip link set vx0 mtu 1450 up
# Segments as a NIC would send them, not 64 KiB super-segments.
for dev in ul0 vx0; do ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 || true; done
for dev in ul1 vx0; do far ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 || true; done

/usr/bin/python3 "$HERE/../dicom/make_objects.py" "$W/obj" >/dev/null
(cd "$W/obj" && dump2dcm -q ct1.dump ct1.dcm)
mkdir -p "$W/in"
far storescp -aet PACS1 -od "$W/in" 11112 >"$W/storescp.log" 2>&1 &
for _ in $(seq 100); do far ss -ltn | grep -q ":11112 " && break; sleep 0.05; done

# tcpdump writes into the private temp dir (its AppArmor profile and privilege drop refuse
# most other places); the finished captures are copied out.
tcpdump -q -i ul0 -s 0 -U -Z root -w "$W/outer.pcap" "udp port 4789" 2>>"$W/tcpdump.log" & T1=$!
tcpdump -q -i vx0 -s 0 -U -Z root -w "$W/inner.pcap" "tcp port 11112" 2>>"$W/tcpdump.log" & T2=$!
sleep 1
echoscu -aet CT_SCANNER1 -aec PACS1 10.1.0.20 11112
storescu -aet CT_SCANNER1 -aec PACS1 10.1.0.20 11112 "$W/obj/ct1.dcm"
sleep 1
kill -INT "$T1" "$T2"; wait "$T1" "$T2" 2>/dev/null || true
cp "$W/outer.pcap" "$OUT/real_vxlan.pcap"
cp "$W/inner.pcap" "$OUT/real_vxlan_inner.pcap"
echo "real_vxlan.pcap: $(tcpdump -r "$OUT/real_vxlan.pcap" 2>/dev/null | wc -l) frames;" \
     "real_vxlan_inner.pcap: $(tcpdump -r "$OUT/real_vxlan_inner.pcap" 2>/dev/null | wc -l) frames"
