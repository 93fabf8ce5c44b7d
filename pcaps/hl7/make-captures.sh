#!/usr/bin/env bash
# Regenerates the HL7 v2 test captures with real software: python3-hl7's mllp_send and an MLLP
# listener built on its hl7.mllp server (both under Debian's /usr/bin/python3), Python's
# http.server with python3-hl7 for HL7 over HTTP, and curl. Runs as root inside a private
# network namespace on loopback (MTU 1500, offloads off, so frames look like Ethernet).
#   make-captures.sh [OUTDIR]     default: the directory of this script
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
$PY "$HERE/gen/messages.py" "$W"

cap() { tcpdump -i lo -s 0 -U --immediate-mode -w "$OUT/$1" "$2" 2>>"$W/tcpdump.log" & CAP=$!; sleep 1; }
stop() { sleep 1; kill -INT $CAP; wait $CAP 2>/dev/null || true; }

$PY "$HERE/gen/listener.py" 2575 & L1=$!
$PY "$HERE/gen/listener.py" 6661 & L2=$!
$PY "$HERE/gen/http_server.py" 8080 & H=$!
sleep 1

# ADT^A01, ORM^O01, ORU^R01 (OBX, PRT), SIU^S12, escapes in PID-5, an ORM answered with AE:
# one connection, each message ACKed before the next.
cap mllp-mixed.pcap "tcp port 2575"
mllp_send -q -p 2575 -f "$W/mixed.msgs" 127.0.0.1
stop

# Segments ended with LF instead of CR (non-conforming but common).
cap mllp-lf.pcap "tcp port 2575"
mllp_send -q -p 2575 -f "$W/lf.msgs" 127.0.0.1
stop

# A batch file (FHS/BHS, two ORU^R01, BTS/FTS) in one frame.
cap mllp-batch.pcap "tcp port 2575"
mllp_send -q -p 2575 -f "$W/batch.msgs" 127.0.0.1
stop

# MLLP on a non-standard port (mllp_send's default 6661).
cap mllp-port6661.pcap "tcp port 6661"
mllp_send -q -f "$W/mixed.msgs" 127.0.0.1
stop

# One message cut into 16-byte TCP segments.
cap mllp-split.pcap "tcp port 2575"
$PY "$HERE/gen/split_send.py" 2575 "$W/oru.hl7"
stop

# HL7 v2 over HTTP POST (curl), ACK in the response; two requests on one connection.
cap http.pcap "tcp port 8080"
curl -sS -o /dev/null -H "Content-Type: x-application/hl7-v2+er7" --data-binary "@$W/adt.hl7" \
  http://127.0.0.1:8080/hl7 --next -sS -o /dev/null -H "Content-Type: x-application/hl7-v2+er7" \
  --data-binary "@$W/oru.hl7" http://127.0.0.1:8080/hl7
stop

# HL7 v2 POSTed compressed (curl): ADT^A01 with Content-Encoding gzip, the ACK answered gzip
# (--compressed); then ORU^R01 with Content-Encoding deflate in chunks, untyped (only its body says
# HL7). One connection.
gzip -n -c "$W/adt.hl7" >"$W/adt.hl7.gz"
$PY -c 'import sys, zlib; sys.stdout.buffer.write(zlib.compress(open(sys.argv[1], "rb").read()))' "$W/oru.hl7" >"$W/oru.hl7.z"
cap http-gzip.pcap "tcp port 8080"
curl -sS -o /dev/null --compressed -H "Content-Type: x-application/hl7-v2+er7" -H "Content-Encoding: gzip" \
  --data-binary "@$W/adt.hl7.gz" http://127.0.0.1:8080/hl7 --next -sS -o /dev/null \
  -H "Content-Type: application/octet-stream" -H "Content-Encoding: deflate" -H "Transfer-Encoding: chunked" \
  --data-binary "@$W/oru.hl7.z" http://127.0.0.1:8080/hl7
stop

# HL7 v2 over HTTP on TCP 3702 (the port of SDC's WS-Discovery, whose probe goes first there): a
# POST with an HL7 content type, then one whose body alone says HL7.
$PY "$HERE/gen/http_server.py" 3702 & H2=$!
sleep 1
cap http-port3702.pcap "tcp port 3702"
curl -sS -o /dev/null -H "Content-Type: x-application/hl7-v2+er7" --data-binary "@$W/adt.hl7" \
  http://127.0.0.1:3702/hl7 --next -sS -o /dev/null -H "Content-Type: text/plain" \
  --data-binary "@$W/oru.hl7" http://127.0.0.1:3702/hl7
stop

kill -TERM $L1 $L2 $H $H2 2>/dev/null || true
cat "$W/tcpdump.log" >&2
ls -l "$OUT"/*.pcap
