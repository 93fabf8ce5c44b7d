#!/usr/bin/python3
"""HL7 over MLLP through a SPAN port that reorders the two directions: an ACK, whose TCP
acknowledgment covers its message, is captured before that message. The ACK waits for it and
pairs (latency 0), and the message is not reported unacked."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type  # noqa: E402
from pcapwrite import ether, ipv4, tcp, write_pcap  # noqa: E402

c = Checker("hl7_reordered_ack")
CLI, SRV = "10.0.0.1", "10.0.0.2"
MAC_C, MAC_S = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
records = []
t = [1700000000.0]
seq = {"c": 1000, "s": 5000}


def adt(cid):
    # A made-up patient.
    return (b"MSH|^~\\&|SA|SF|RA|RF|20240101120000||ADT^A01|" + cid + b"|P|2.5\r"
            b"PID|1||MRN1^^^H^MR||ROE^ANN||19700101|F\r")


def ack(cid):
    return b"MSH|^~\\&|RA|RF|SA|SF|20240101120001||ACK^A01|A" + cid + b"|P|2.5\rMSA|AA|" + cid + b"\r"


def mllp(m):
    return b"\x0b" + m + b"\x1c\r"


def packet(frm, flags, payload=b"", ackno=None, dt=0.001):
    src, dst, sp, dp, mc, ms = (CLI, SRV, 40000, 2575, MAC_C, MAC_S) if frm == "c" else (SRV, CLI, 2575, 40000, MAC_S, MAC_C)
    other = "s" if frm == "c" else "c"
    seg = tcp(src, dst, sp, dp, seq[frm], seq[other] if ackno is None else ackno, flags, payload)
    records.append((int(t[0]), int(round((t[0] % 1) * 1e6)), ether(ms, mc, ipv4(src, dst, 6, seg))))
    seq[frm] += len(payload)
    t[0] += dt


packet("c", 0x02, ackno=0)
seq["c"] += 1
packet("s", 0x12)
seq["s"] += 1
packet("c", 0x10)
for i in range(3):
    cid = b"R%d" % i
    m, k = mllp(adt(cid)), mllp(ack(cid))
    if i == 1:
        packet("s", 0x18, k, ackno=seq["c"] + len(m), dt=0.0001)  # captured first
        packet("c", 0x18, m)
    else:
        packet("c", 0x18, m)
        packet("s", 0x18, k)
packet("c", 0x11)
packet("s", 0x11)

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "reordered.pcap")
    write_pcap(path, records)
    ev = analyze(path, keep_as="hl7-reordered-ack")

acks = [e["hl7"]["ack"] for e in of_type(ev, "hl7") if e["hl7"]["kind"] == "message" and "ack" in e["hl7"]]
c.eq("acks", [(a["control_id"], a["matched"]) for a in acks], [("R0", True), ("R1", True), ("R2", True)])
c.true("latencies not negative", all(a.get("latency_us", -1) >= 0 for a in acks))
c.eq("no unacked", [e for e in of_type(ev, "hl7") if e["hl7"]["kind"] == "unacked"], [])
c.eq("no anomalies", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])
c.done()
