#!/usr/bin/env bash
# Captures real traffic made by real software, in a private network namespace on loopback
# (MTU 1500, offloads off, so segments look as they would on Ethernet):
#   real_tls.pcap   openssl s_server / s_client, TLS 1.3 and TLS 1.2 with SNI
#   real_http.pcap  python3 -m http.server + curl, over IPv4 and IPv6
#   real_dns.pcap   DNS over UDP: a small stdlib resolver answering queries from a stdlib client
#   real_ssh.pcap   OpenSSH client against a banner-only SSH responder (no sshd needed)
# Usage: make-real.sh [OUTDIR]   (default: this directory). Run as root (unshare -n).
# Needs (Debian): tcpdump openssl curl openssh-client python3 iproute2 ethtool.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE}")
if [ -z "${IN_NETNS:-}" ]; then
  IN_NETNS=1 exec unshare -n "$0" "$OUT"
fi
PY=/usr/bin/python3
W=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
ip link set lo up; ip link set lo mtu 1500
ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true

# tcpdump writes into the private temp dir (its AppArmor profile and privilege drop refuse
# most other places); stop() copies the finished capture out.
cap() { DEST=$1; tcpdump -i lo -s 0 -U --immediate-mode -Z root -w "$W/cap.pcap" "$2" 2>>"$W/tcpdump.log" & CAP=$!; sleep 1; }
stop() { sleep 0.5; kill -INT $CAP; wait $CAP 2>/dev/null || true; cp "$W/cap.pcap" "$DEST"; rm -f "$W/cap.pcap"; }

# --- TLS: self-signed certificate made on the fly (nothing secret is committed)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pacs.hospital.example" \
  -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
openssl s_server -accept 8443 -cert "$W/cert.pem" -key "$W/key.pem" -quiet -naccept 2 </dev/null >/dev/null 2>&1 &
sleep 1
cap "$OUT/real_tls.pcap" "tcp port 8443"
printf 'GET /wado?study=1 HTTP/1.0\r\n\r\n' | timeout 5 openssl s_client -connect 127.0.0.1:8443 \
  -servername pacs.hospital.example -tls1_3 -quiet >/dev/null 2>&1 || true
printf 'hello over tls 1.2\n' | timeout 5 openssl s_client -connect 127.0.0.1:8443 \
  -servername ris.hospital.example -tls1_2 -quiet >/dev/null 2>&1 || true
stop

# --- HTTP over IPv4 and IPv6
mkdir -p "$W/www"; head -c 20000 /dev/zero | tr '\0' 'a' > "$W/www/report.txt"
echo '<html><body>medmon test page</body></html>' > "$W/www/index.html"
(cd "$W/www" && exec $PY -m http.server 8080 --bind :: >/dev/null 2>&1) &
sleep 1
cap "$OUT/real_http.pcap" "tcp port 8080"
curl -s -o /dev/null http://127.0.0.1:8080/index.html
curl -s -o /dev/null http://127.0.0.1:8080/report.txt
curl -s -o /dev/null 'http://[::1]:8080/index.html'
curl -s -o /dev/null http://127.0.0.1:8080/missing
stop

# --- DNS over UDP
cat > "$W/dns.py" <<'PY'
import socket, struct, sys
def name(b, o):
    out = []
    while b[o]:
        out.append(b[o + 1:o + 1 + b[o]].decode()); o += 1 + b[o]
    return ".".join(out), o + 1
if sys.argv[1] == "server":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.53", 53))
    n = 0
    while n < int(sys.argv[2]):
        q, peer = s.recvfrom(512); n += 1
        qid, = struct.unpack("!H", q[:2]); qn, o = name(q, 12)
        known = qn.endswith("hospital.example")
        flags = 0x8180 if known else 0x8183
        a = struct.pack("!HHHIH4s", 0xC00C, 1, 1, 60, 4, bytes([10, 10, 2, 20])) if known else b""
        s.sendto(struct.pack("!HHHHHH", qid, flags, 1, 1 if known else 0, 0, 0) + q[12:o + 4] + a, peer)
else:
    names = sys.argv[2:]
    for i, qn in enumerate(names):
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(2)
        q = struct.pack("!HHHHHH", 0x4000 + i, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(x)]) + x.encode() for x in qn.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
        c.sendto(q, ("127.0.0.53", 53)); c.recvfrom(512); c.close()
PY
ip addr add 127.0.0.53/8 dev lo 2>/dev/null || true
NAMES=(pacs.hospital.example ris.hospital.example update.vendor.example time.hospital.example)
$PY "$W/dns.py" server ${#NAMES[@]} & sleep 1
cap "$OUT/real_dns.pcap" "udp port 53"
$PY "$W/dns.py" client "${NAMES[@]}"
stop

# --- SSH: the real OpenSSH client talks to a responder that only speaks the banner and KEXINIT
cat > "$W/sshd.py" <<'PY'
import socket, os, struct
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 2222)); s.listen(1)
c, _ = s.accept()
c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
c.recv(4096)
lists = [b"curve25519-sha256", b"ssh-ed25519", b"aes128-ctr", b"aes128-ctr", b"hmac-sha2-256", b"hmac-sha2-256", b"none", b"none", b"", b""]
body = bytes([20]) + os.urandom(16) + b"".join(struct.pack("!I", len(x)) + x for x in lists) + b"\0" + b"\0" * 4
pad = 8 - (len(body) + 5) % 8 + 8
pkt = struct.pack("!IB", len(body) + pad + 1, pad) + body + b"\0" * pad
c.sendall(pkt)
c.recv(4096)
c.close()
PY
$PY "$W/sshd.py" & sleep 1
cap "$OUT/real_ssh.pcap" "tcp port 2222"
timeout 5 ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -p 2222 service@127.0.0.1 true >/dev/null 2>&1 || true
stop
grep -h captured "$W/tcpdump.log" >&2; ls -l "$OUT"/real_*.pcap
