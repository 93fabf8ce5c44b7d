#!/usr/bin/env bash
# Records the policy rule captures: one small pcap per scenario, each made by real software on a
# small hospital network of network namespaces joined by one Linux bridge, captured on the
# bridge (what a SPAN of the whole switch gives). Addresses match policies/sites/rules-hospital.yaml.
#   make-captures.sh [OUTDIR]      default: this folder. Run as root.
# Needs (Debian): dcmtk python3-hl7 tcpdump iproute2 ethtool openssl curl openssh-client
#                 openssh-server smbclient nmap
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE}")
mkdir -p "$OUT"
PY=/usr/bin/python3
PEERS="$HERE/../demo/peers.py"   # python3-hl7 MLLP listener, SMB2 responder
P="mmp$$"
W=$(mktemp -d)
HOSTS=(ct us pump svc rogue pacs ris ws ws2 office gw)
cleanup() {
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  for h in "${HOSTS[@]}" sw; do ip netns pids "$P-$h" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  sleep 0.3
  for h in "${HOSTS[@]}" sw; do ip netns del "$P-$h" 2>/dev/null || true; rm -rf "/etc/netns/$P-$h"; done
  rmdir /etc/netns 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
on() { local h=$1; shift; ip netns exec "$P-$h" "$@"; }

# --- network: one bridge in "sw", one veth per host, all in 10.10.0.0/16
declare -A ADDR=([ct]=10.10.1.10 [us]=10.10.1.20 [pump]=10.10.1.30 [svc]=10.10.1.90 [rogue]=10.10.1.77
                 [pacs]=10.10.2.20 [ris]=10.10.3.30 [ws]=10.10.4.40 [ws2]=10.10.4.41 [office]=10.10.5.50
                 [gw]=10.10.0.1)
ip netns add "$P-sw"
on sw ip link add br0 type bridge
on sw ip link set br0 up
on sw sysctl -qw net.ipv6.conf.all.disable_ipv6=1
i=0
for h in "${HOSTS[@]}"; do
  i=$((i + 1))
  ip netns add "$P-$h"
  # name lookups stay on the host's loopback, so no stray DNS reaches the captured bridge
  mkdir -p "/etc/netns/$P-$h"
  echo "nameserver 127.0.0.1" >"/etc/netns/$P-$h/resolv.conf"
  printf '127.0.0.1 localhost\n%s %s\n' "${ADDR[$h]}" "$h" >"/etc/netns/$P-$h/hosts"
  on "$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  on "$h" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
  on sw ip link add "$h-p" type veth peer name eth0 netns "$P-$h"
  on sw ip link set "$h-p" master br0 up
  on "$h" ip link set eth0 address "02:00:0a:0a:00:$(printf %02x $i)"
  on "$h" ip addr add "${ADDR[$h]}/16" dev eth0
  on "$h" ip link set eth0 up
  on "$h" ip link set lo up
  # offloads off: every frame is a real <= 1514-byte frame with a correct checksum
  on "$h" ethtool -K eth0 tx off tso off gso off gro off >/dev/null 2>&1 || true
  on sw ethtool -K "$h-p" tx off tso off gso off gro off >/dev/null 2>&1 || true
  on "$h" ip route add default via 10.10.0.1 2>/dev/null || true
done
# the gateway also holds an "internet" address (no real internet in the lab)
on gw ip addr add 203.0.113.10/32 dev lo
on gw ip addr add 198.51.100.7/32 dev lo   # the PACS vendor's remote-service host (role vendor_remote)
# twelve more hosts for the fan-out, answered by the rogue box
for n in $(seq 101 112); do on rogue ip addr add "10.10.1.$n/16" dev eth0; done

# --- made-up DICOM objects: a CT slice of an invented patient, an MR and a secondary capture
#     without any patient data
obj() { # NAME SOPCLASS MODALITY WITH_PATIENT INSTANCE
  {
    echo "(0008,0016) UI =$2"
    echo "(0008,0018) UI [1.2.826.0.1.3680043.9.7134.2.$5]"
    echo "(0008,0060) CS [$3]"
    if [ "$4" = yes ]; then
      echo "(0008,0050) SH [ACC7001]"
      echo "(0010,0010) PN [TESTPATIENT^RULES]"
      echo "(0010,0020) LO [RULES0001]"
      echo "(0010,0030) DA [19800101]"
    fi
    echo "(0020,000d) UI [1.2.826.0.1.3680043.9.7134.1]"
    echo "(0020,000e) UI [1.2.826.0.1.3680043.9.7134.1.1]"
    echo "(0028,0002) US 1"
    echo "(0028,0004) CS [MONOCHROME2]"
    echo "(0028,0010) US 16"
    echo "(0028,0011) US 16"
    echo "(0028,0100) US 8"
    echo "(0028,0101) US 8"
    echo "(0028,0102) US 7"
    echo "(0028,0103) US 0"
    echo "(7fe0,0010) OB $(seq 0 255 | awk '{printf "%s%02x", (NR > 1 ? "\\" : ""), $1}')"
  } >"$W/$1.dump"
  dump2dcm -q +te "$W/$1.dump" "$W/$1.dcm"
}
obj ct CTImageStorage CT yes 1
obj mr MRImageStorage MR no 2
obj sc SecondaryCaptureImageStorage OT no 3

# --- HL7 v2.5.1 messages (made-up patient), one file per scenario, messages separated by 0x1C
hl7() { # FILE MSH3 TYPE CONTROL_ID PROCESSING_ID
  printf 'MSH|^~\\&|%s|HOSP|ACMEPACS|RAD|20250101120000||%s|%s|%s|2.5.1\rPID|1||RULES0001^^^HOSP^MR||TESTPATIENT^RULES||19800101|O\rORC|NW|ORD7001\rOBR|1|ORD7001||CTHEAD^CT HEAD^L\r\x1c' \
    "$2" "$3" "$4" "$5" >"$W/$1"
}
hl7 orm.hl7 RIS "ORM^O01^ORM_O01" MSG0001 P
hl7 rogue.hl7 ROGUEAPP "ORM^O01^ORM_O01" MSG0002 P
hl7 oru.hl7 RIS "ORU^R01^ORU_R01" MSG0003 P
hl7 test.hl7 RIS "ADT^A08^ADT_A01" MSG0004 T
hl7 ext.hl7 CT01 "ORU^R01^ORU_R01" MSG0005 P

# --- TLS keys (self-signed, made-up names)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/srv.key" -out "$W/srv.pem" -days 3650 -subj "/CN=pacs.rules.test" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/cli.key" -out "$W/cli.pem" -days 3650 -subj "/CN=modality.rules.test" 2>/dev/null

# --- servers
mkdir -p "$W/db" "$W/in" "$W/www" "$W/sshd"
echo "service page" >"$W/www/index.html"
cat >"$W/dcmqrscp.cfg" <<CFG
NetworkTCPPort  = 11112
MaxPDUSize      = 16384
MaxAssociations = 16
HostTable BEGIN
ws01 = (WS01, 10.10.4.40, 11112)
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
PACS01  $W/db  RW (100, 64mb)  ANY
AETable END
CFG
on pacs dcmqrscp -dhl -c "$W/dcmqrscp.cfg" >"$W/dcmqrscp.log" 2>&1 &
on pacs storescp -dhl +tls "$W/srv.key" "$W/srv.pem" +cf "$W/cli.pem" -aet PACS01 -od "$W/in" 2762 >"$W/storescp-tls.log" 2>&1 &
on pacs $PY "$PEERS" hl7-server 10.10.2.20 2575 &
on ws storescp -dhl -aet WS01 -od "$W/in" 11112 &
on office storescp -dhl -aet OFFICEPC -od "$W/in" 104 &
on rogue storescp -dhl -aet STORE -od "$W/in" 104 &
ssh-keygen -q -t ed25519 -N '' -f "$W/sshd/host_ed25519"
mkdir -p /run/sshd
on svc /usr/sbin/sshd -D -e -f /dev/null -h "$W/sshd/host_ed25519" -o ListenAddress=10.10.1.90 \
  -o PidFile=none -o UsePAM=no 2>"$W/sshd.log" &
on svc $PY "$PEERS" smb-server 10.10.1.90 445 &
on svc $PY -m http.server -b 10.10.1.90 -d "$W/www" 8080 >/dev/null 2>&1 &
on ct $PY -m http.server -b 10.10.1.10 -d "$W/www" 8080 >/dev/null 2>&1 &
# The CT's service web UI still accepts TLS 1.0 (scenario 29): its server allows the old versions.
on ct openssl s_server -quiet -www -accept 10.10.1.10:8443 -key "$W/srv.key" -cert "$W/srv.pem" \
  -min_protocol TLSv1 -cipher 'DEFAULT:@SECLEVEL=0' >/dev/null 2>&1 &
on gw openssl s_server -quiet -www -accept 203.0.113.10:443 -key "$W/srv.key" -cert "$W/srv.pem" >/dev/null 2>&1 &
on gw $PY "$PEERS" hl7-server 203.0.113.10 2575 &
on gw openssl s_server -quiet -www -accept 198.51.100.7:443 -key "$W/srv.key" -cert "$W/srv.pem" >/dev/null 2>&1 &
sleep 2

# cap NAME: starts capturing on the bridge into OUT/NAME.pcap; endcap stops it.
cap() { NAME=$1; ip netns exec "$P-sw" tcpdump -i br0 -s 0 -U --immediate-mode -Z root -w "$OUT/$NAME.pcap" ip 2>"$W/tcpdump.log" & CAP=$!; sleep 1; }
endcap() {
  sleep 1; kill -INT $CAP; wait $CAP 2>/dev/null || true
  echo "$NAME.pcap: $(grep -ho '[0-9]* packets captured' "$W/tcpdump.log")" >&2
}
quiet() { "$@" >/dev/null 2>&1 || true; }   # rejected/failed clients are part of the scenario
CURL=(curl -sS -o /dev/null --max-time 5)
SSH=(ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3
     -o PubkeyAuthentication=no -o PasswordAuthentication=no)

# 1. clean: the CT stores to its PACS over DICOM TLS (2762)
cap clean-tls-store
on ct storescu +tls "$W/cli.key" "$W/cli.pem" +cf "$W/srv.pem" -aet CT01 -aec PACS01 10.10.2.20 2762 "$W/ct.dcm"
endcap

# 2. the same store in clear (the model requires TLS; PHI in the dataset)
cap cleartext-store
on ct storescu -aet CT01 -aec PACS01 10.10.2.20 11112 "$W/ct.dcm"
endcap

# 3. AE spoofing: a reading workstation calls the PACS with the CT's AE title
cap ae-spoofing
on ws echoscu -aet CT01 -aec PACS01 10.10.2.20 11112
endcap

# 4. an AE title the site does not bind, from one workstation and then from another
cap ae-new-ip
on ws echoscu -aet VIEWER9 -aec PACS01 10.10.2.20 11112
on ws2 echoscu -aet VIEWER9 -aec PACS01 10.10.2.20 11112
endcap

# 5. called AE title guessing: six associations rejected in a row
cap reject-burst
for ae in PACS ARCHIVE STORESCP ANY-SCP DCM4CHEE ORTHANC; do quiet on ws echoscu -aet WS01 -aec "$ae" 10.10.2.20 11112; done
endcap

# 6. C-MOVE to an AE title that is no declared destination
cap move-undeclared
quiet on ws movescu -S -aet WS01 -aec PACS01 -aem EXFIL01 -k QueryRetrieveLevel=STUDY \
  -k StudyInstanceUID=1.2.826.0.1.3680043.9.7134.1 10.10.2.20 11112
endcap

# 7. C-GET (the PACS declares no C-GET in its dimse_in)
cap c-get
quiet on ws getscu -S -aet WS01 -aec PACS01 -od "$W/in" -k QueryRetrieveLevel=STUDY \
  -k StudyInstanceUID=1.2.826.0.1.3680043.9.7134.9 10.10.2.20 11112
endcap

# 8. a SOP class the PACS model does not declare (MR; no patient data in the object)
cap sop-class-undeclared
on ws storescu -aet WS01 -aec PACS01 10.10.2.20 11112 "$W/mr.dcm"
endcap

# 9. user identity with a password: in clear on 11112, then over TLS on 2762 (no alert)
cap cleartext-password
on ws storescu -aet WS01 -aec PACS01 --user techuser --password notasecret 10.10.2.20 11112 "$W/sc.dcm"
on ws storescu +tls "$W/cli.key" "$W/cli.pem" +cf "$W/srv.pem" -aet WS01 -aec PACS01 --user techuser \
  --password notasecret 10.10.2.20 2762 "$W/sc.dcm"
endcap

# 10. HL7 to the PACS: a sending application the RIS role does not bind, and an unbound sender
cap hl7-sender-unbound
on ris mllp_send -q -p 2575 -f "$W/rogue.hl7" 10.10.2.20 >/dev/null
on ws mllp_send -q -p 2575 -f "$W/orm.hl7" 10.10.2.20 >/dev/null
endcap

# 11. HL7 message type the PACS does not declare (ORU^R01 inbound)
cap hl7-type-undeclared
on ris mllp_send -q -p 2575 -f "$W/oru.hl7" 10.10.2.20 >/dev/null
endcap

# 12. HL7 with MSH-11 = T on the production site
cap hl7-test-on-production
on ris mllp_send -q -p 2575 -f "$W/test.hl7" 10.10.2.20 >/dev/null
endcap

# 13. SSH from the CT to the service laptop (OpenSSH client and server; login refused)
cap ssh-from-modality
quiet on ct "${SSH[@]}" service@10.10.1.90 true
endcap

# 14. SMB from the CT (smbclient share listing; SMB2 NEGOTIATE answered)
cap smb-from-modality
quiet on ct timeout 10 smbclient -N -L //10.10.1.90 --option='client min protocol=SMB2'
endcap

# 15. TCP connect scan of twelve closed ports of the service laptop
cap port-scan
quiet on ct nmap -n -Pn -sT -p 1000-1011 10.10.1.90
endcap

# 16. fan-out: the CT connects to port 104 of twelve hosts
cap fan-out
quiet on ct nmap -n -Pn -sT -p 104 10.10.1.101-112
endcap

# 17. zone crossing: CT -> reading workstation (device involved) and RIS -> workstation (none)
cap zone-crossing
on ct echoscu -aet CT01 -aec WS01 10.10.4.40 11112
on ris echoscu -aet RIS01 -aec WS01 10.10.4.40 11112
endcap

# 18. zone the ultrasound's model never allows (office)
cap zone-forbidden
on us echoscu -aet US01 -aec OFFICEPC 10.10.5.50 104
endcap

# 19. new peer: the CT verifies an unknown DICOM node
cap new-peer
on ct echoscu -aet CT01 -aec STORE 10.10.1.77 104
endcap

# 20. undeclared flow: the CT fetches a web page from the service laptop
cap undeclared-flow
on ct "${CURL[@]}" http://10.10.1.90:8080/
endcap

# 21. external forbidden: the CT opens HTTPS to an internet address (CONN-4 = No)
cap external-forbidden
on ct "${CURL[@]}" -k https://203.0.113.10/
endcap

# 22. the service laptop reaches a web server on the CT's undeclared port 8080 (SAHD-8 = Yes)
cap unlisted-listening-port
on svc "${CURL[@]}" http://10.10.1.10:8080/
endcap

# 23. the service laptop opens the CT's service web UI (8443, shipped disabled)
cap disabled-by-default
on svc "${CURL[@]}" -k https://10.10.1.10:8443/
endcap

# 24. forbidden application: the ultrasound browses the web (forbidden_apps http, SAHD-10)
cap forbidden-app
on us "${CURL[@]}" http://10.10.1.90:8080/
endcap

# 25. internal forbidden: the pump gateway (CONN-3 = No) talks to the service laptop
cap internal-forbidden
on pump "${CURL[@]}" http://10.10.1.90:8080/
endcap

# 26. PHI in clear to an external address: HL7 results from the CT to the internet
cap phi-external
on ct mllp_send -q -p 2575 -f "$W/ext.hl7" 203.0.113.10 >/dev/null
endcap

# 27. the PACS's remote-service tunnel (declared: HTTPS to vendor_remote) first to the server its
#     model names (remote_service.endpoints), then to another name on the same address
cap remote-endpoint-undeclared
on pacs "${CURL[@]}" -k --resolve remote.acme-medical.example:443:198.51.100.7 https://remote.acme-medical.example/
on pacs "${CURL[@]}" -k --resolve files.exfil.example:443:198.51.100.7 https://files.exfil.example/
endcap

# 28. DICOM TLS from the ultrasound, whose MDS2 says it supports no TLS (CONN-7 = No)
cap tls-unexpected
quiet on us echoscu +tls "$W/cli.key" "$W/cli.pem" +cf "$W/srv.pem" -aet US01 -aec PACS01 10.10.2.20 2762
endcap

# 29. the service laptop opens the CT's service web UI with TLS 1.0 (retired by RFC 8996)
cap tls-obsolete-version
on svc "${CURL[@]}" -k --tlsv1.0 --tls-max 1.0 --ciphers 'DEFAULT:@SECLEVEL=0' https://10.10.1.10:8443/
endcap

ls -l "$OUT"/*.pcap | awk '{s += $5} END {print "total", s, "bytes"}' >&2
