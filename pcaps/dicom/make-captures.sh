#!/usr/bin/env bash
# Regenerates the DICOM test captures with real DCMTK peers: every scenario runs in a private
# network namespace (unshare -n) on loopback, captured with tcpdump. Needs root, dcmtk, tcpdump,
# openssl, python3. All patients are made up (make_objects.py).
# Usage: sudo pcaps/dicom/make-captures.sh [OUTDIR]   (default: this folder)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mkdir -p "${1:-$HERE}" && cd "${1:-$HERE}" && pwd)
if [ -z "${MEDMON_IN_NETNS:-}" ]; then
  exec unshare -n env MEDMON_IN_NETNS=1 bash "$0" "$OUT"
fi
ip link set lo up
# An Ethernet-sized MTU: realistic segmentation (loopback would use 64 KiB segments).
ip link set lo mtu 1500
ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true

W=$(mktemp -d)
SERVERS=()
cleanup() {
  for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# --- made-up objects
python3 "$HERE/make_objects.py" "$W/obj"
cd "$W/obj"
for f in ct1 ct2 mr1; do dump2dcm -q "$f.dump" "$f.dcm"; done
for f in wl1 wl2 wl3; do dump2dcm -q "$f.dump" "wlist/WLM1/$f.wl"; done
dcmconv -q +tb ct1.dcm ct1-be.dcm  # storescu sends a file in its own syntax when it can
cd "$W"

wait_port() { for _ in $(seq 100); do ss -ltn | grep -q ":$1 " && return 0; sleep 0.05; done; echo "port $1 not listening" >&2; return 1; }
server() { "$@" >"$W/server.log" 2>&1 & SERVERS+=($!); }
stop_servers() { for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; SERVERS=(); }
# cap NAME FILTER CMD...: captures CMD's traffic into OUT/NAME.pcap
cap() {
  local name=$1 filter=$2; shift 2
  for attempt in 1 2 3; do
    tcpdump -q -i lo -s 0 -U -w "$OUT/$name.pcap" "$filter" 2>/dev/null & local tp=$!
    sleep 1
    "$@" >"$W/client.log" 2>&1 || echo "($name: client exited $?, as expected for rejects)" >&2
    sleep 1
    kill "$tp"; wait "$tp" 2>/dev/null || true
    # tcpdump may start late on a loaded machine: retry until the handshake is in the file.
    [ "$(tcpdump -r "$OUT/$name.pcap" 2>/dev/null | wc -l)" -ge 3 ] && break
    echo "($name: capture empty, retrying)" >&2
  done
  echo "$name.pcap: $(stat -c %s "$OUT/$name.pcap") bytes"
}
O=$W/obj
mkdir -p "$W/in"

# 1. C-STORE, explicit VR LE preferred, standard port, default max PDU 16 KiB
server storescp -aet PACS1 -od "$W/in" 11112; wait_port 11112
cap store-explicit "tcp port 11112" storescu -aet CT_SCANNER1 -aec PACS1 127.0.0.1 11112 "$O/ct1.dcm" "$O/ct2.dcm" "$O/mr1.dcm"
# 2. C-ECHO, then an aborted C-ECHO association
cap echo "tcp port 11112" echoscu -aet MODALITY1 -aec PACS1 127.0.0.1 11112
cap echo-abort "tcp port 11112" echoscu --abort -aet MODALITY1 -aec PACS1 127.0.0.1 11112
# 3. user identity with a password (made up) in clear
cap store-user-password "tcp port 11112" storescu -aet CT_SCANNER1 -aec PACS1 --user techuser --password notasecret 127.0.0.1 11112 "$O/ct1.dcm"
stop_servers

# 4. implicit VR only on a non-standard port
server storescp +xi -aet PACS2 -od "$W/in" 4711; wait_port 4711
cap store-implicit-port4711 "tcp port 4711" storescu -xi -aet MR_CONSOLE -aec PACS2 127.0.0.1 4711 "$O/mr1.dcm"
stop_servers

# 5. max PDU 4 KiB and 128 KiB (DCMTK's range is 4096..131072)
server storescp -pdu 4096 -aet PACS1 -od "$W/in" 11112; wait_port 11112
cap store-pdu4k "tcp port 11112" storescu -pdu 4096 -aet CT_SCANNER1 -aec PACS1 127.0.0.1 11112 "$O/mr1.dcm"
stop_servers
server storescp -pdu 131072 -aet PACS1 -od "$W/in" 11112; wait_port 11112
cap store-pdu128k "tcp port 11112" storescu -pdu 131072 -aet CT_SCANNER1 -aec PACS1 127.0.0.1 11112 "$O/mr1.dcm" "$O/ct1.dcm"
stop_servers

# 6. explicit VR big endian, and deflated explicit VR LE
server storescp +xb -aet PACS1 -od "$W/in" 11112; wait_port 11112
cap store-bigendian "tcp port 11112" storescu -xb -aet CT_SCANNER1 -aec PACS1 127.0.0.1 11112 "$O/ct1-be.dcm"
stop_servers
server storescp +xd -aet PACS1 -od "$W/in" 11112; wait_port 11112
cap store-deflate "tcp port 11112" storescu -xd -aet CT_SCANNER1 -aec PACS1 127.0.0.1 11112 "$O/ct1.dcm"
stop_servers

# 7. refused association (storescp --refuse: permanent, service user, no reason)
server storescp --refuse -aet PACS1 11112; wait_port 11112
cap reject-refused "tcp port 11112" echoscu -aet MODALITY1 -aec PACS1 127.0.0.1 11112
stop_servers

# 8. modality worklist C-FIND
server wlmscpfs -dfp "$O/wlist" 11112; wait_port 11112
cap find-worklist "tcp port 11112" findscu -W -aet CT_SCANNER1 -aec WLM1 \
  -k "PatientName=" -k "PatientID=" -k "PatientBirthDate=" -k "AccessionNumber=" \
  -k "ScheduledProcedureStepSequence[0].Modality=" -k "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=" \
  127.0.0.1 11112
stop_servers

# 9. Q/R with dcmqrscp: study root C-FIND, C-MOVE to a listening movescu, C-GET, and an
#    association rejected because the calling AE title is not a configured peer.
mkdir -p "$W/db"
cat >"$W/dcmqrscp.cfg" <<CFG
NetworkTCPPort  = 11112
MaxPDUSize      = 16384
MaxAssociations = 16
HostTable BEGIN
viewer  = (VIEWER1, localhost, 11113)
scanner = (CT_SCANNER1, localhost, 11114)
known   = viewer, scanner
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
QRSCP  $W/db  RW (20, 64mb)  known
AETable END
CFG
server dcmqrscp -c "$W/dcmqrscp.cfg"; wait_port 11112
# Hosts are matched by name: the peers connect from "localhost".
storescu -aet CT_SCANNER1 -aec QRSCP 127.0.0.1 11112 "$O/ct1.dcm" "$O/ct2.dcm" "$O/mr1.dcm"
cap find-studyroot "tcp port 11112" findscu -S -aet VIEWER1 -aec QRSCP \
  -k QueryRetrieveLevel=STUDY -k "PatientName=" -k "PatientID=" -k "StudyInstanceUID=" -k "AccessionNumber=" \
  127.0.0.1 11112
mkdir -p "$W/moved" "$W/got"
cap move "tcp port 11112 or tcp port 11113" movescu -S -aet VIEWER1 -aec QRSCP -aem VIEWER1 +P 11113 -od "$W/moved" \
  -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=1.2.826.0.1.3680043.9.7133.1.1 127.0.0.1 11112
cap get "tcp port 11112" getscu -S -aet VIEWER1 -aec QRSCP -od "$W/got" \
  -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=1.2.826.0.1.3680043.9.7133.1.2 127.0.0.1 11112
cap reject-unknown-ae "tcp port 11112" echoscu -aet INTRUDER -aec QRSCP 127.0.0.1 11112
stop_servers

# 10. DICOM over TLS on 2762 (self-signed, made-up names)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/srv.key" -out "$W/srv.pem" -days 3650 -subj "/CN=pacs.test" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/cli.key" -out "$W/cli.pem" -days 3650 -subj "/CN=modality.test" 2>/dev/null
server storescp +tls "$W/srv.key" "$W/srv.pem" +cf "$W/cli.pem" -aet PACS1 -od "$W/in" 2762; wait_port 2762
cap tls "tcp port 2762" storescu +tls "$W/cli.key" "$W/cli.pem" +cf "$W/srv.pem" -aet CT_SCANNER1 -aec PACS1 127.0.0.1 2762 "$O/ct1.dcm"
stop_servers

# 11. hand-made captures: mid-stream start, gap inside P-DATA, hostile lengths
python3 "$HERE/make_handmade.py" "$OUT"
