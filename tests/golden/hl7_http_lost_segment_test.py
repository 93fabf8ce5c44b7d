#!/usr/bin/python3
"""HL7 in HTTP on a long keep-alive connection with lost TCP segments: in the middle of a
request's body and of a response's head. Reading resumes at the next request (response) after
each loss: the exchanges after it give their hl7 events and ACK pairs; the lost ones are counted
(hl7.gaps) and give nothing false (no ACK paired with the wrong message). A start line longer
than a line of chunk syntax (a long query string) right after a loss, in several segments, is
found too."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type  # noqa: E402
from pcapwrite import ether, ipv4, tcp, write_pcap  # noqa: E402

c = Checker("hl7_http_lost_segment")
CLI, SRV = "10.0.0.21", "10.0.0.2"
MAC_C, MAC_S = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
HL7 = b"x-application/hl7-v2+er7"
records = []
t = [1700000000.0]
seq = {"c": 1000, "s": 5000}


def adt(cid):
    # A made-up patient.
    return (b"MSH|^~\\&|EHR|WARD|LAB|HOSP|20240101120000||ADT^A01|" + cid + b"|P|2.5\r"
            b"EVN|A01|20240101120000\rPID|1||MRN5^^^H^MR||VANE^OLA||19750505|F\r")


def ack(cid):
    return b"MSH|^~\\&|LAB|HOSP|EHR|WARD|20240101120001||ACK^A01|A" + cid + b"|P|2.5\rMSA|AA|" + cid + b"\r"


def post(body, target=b"/hl7"):
    return (b"POST " + target + b" HTTP/1.1\r\nHost: lab\r\nContent-Type: " + HL7 + b"\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n\r\n" + body)


def response(body):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + HL7 + b"\r\nContent-Length: " + str(len(body)).encode() +
            b"\r\n\r\n" + body)


def packet(frm, flags, payload=b"", skip=0):
    src, dst, sp, dp, mc, ms = (CLI, SRV, 42001, 8080, MAC_C, MAC_S) if frm == "c" else (SRV, CLI, 8080, 42001, MAC_S, MAC_C)
    other = "s" if frm == "c" else "c"
    seq[frm] += skip
    records.append((int(t[0]), int(round((t[0] % 1) * 1e6)),
                    ether(ms, mc, ipv4(src, dst, 6, tcp(src, dst, sp, dp, seq[frm], seq[other], flags, payload)))))
    seq[frm] += len(payload)
    t[0] += 0.001


def send(frm, m, lose=None, size=None):
    """Sends m in one segment (or in segments of `size` bytes), or in three with the middle one
    (bytes lose[0]..lose[1]) lost."""
    if lose is None:
        for i in range(0, len(m), size or len(m)):
            packet(frm, 0x18, m[i:i + (size or len(m))])
        return
    a, b = lose
    packet(frm, 0x18, m[:a])
    packet(frm, 0x18, m[b:], skip=b - a)


for frm, flags in (("c", 0x02), ("s", 0x12), ("c", 0x10)):
    packet(frm, flags)
    seq[frm] += 1 if flags != 0x10 else 0
seq["c"] = 1001
for i in range(1, 9):
    cid = b"LS%d" % i
    # The request right after the loss has a start line over 1 KiB (a long query), in segments.
    req = post(adt(cid), b"/hl7?token=" + b"T" * 1500 if i == 4 else b"/hl7")
    rsp = response(ack(cid))
    # Exchange 3 loses bytes of the request's body; exchange 6 of the response's head.
    send("c", req, (len(req) - 60, len(req) - 20) if i == 3 else None, 600 if i == 4 else None)
    send("s", rsp, (20, 50) if i == 6 else None)
packet("c", 0x11)
packet("s", 0x11)

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "http-lost.pcap")
    write_pcap(path, records)
    ev = analyze(path, keep_as="hl7-http-lost-segment")

msgs = [e["hl7"] for e in of_type(ev, "hl7") if e["hl7"]["kind"] == "message"]
c.eq("requests read", [m["control_id"] for m in msgs if m["direction"] == "to_server"],
     ["LS1", "LS2", "LS4", "LS5", "LS6", "LS7", "LS8"])
# The ACK of the message behind the hole waits for the reassembler to give up on it: it may come later.
c.eq("responses read", sorted(m["control_id"] for m in msgs if m["direction"] == "to_client"),
     ["ALS1", "ALS2", "ALS3", "ALS4", "ALS5", "ALS7", "ALS8"])
c.eq("ACKs paired with their message", sorted((m["ack"]["control_id"], m["ack"]["matched"]) for m in msgs if "ack" in m),
     [("LS1", True), ("LS2", True), ("LS3", False), ("LS4", True), ("LS5", True), ("LS7", True), ("LS8", True)])
stats = of_type(ev, "stats")[-1]["stats"]
c.eq("losses counted", stats.get("counters", {}).get("hl7.gaps", 0), 2)
c.done()
