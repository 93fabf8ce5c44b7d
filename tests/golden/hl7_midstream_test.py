#!/usr/bin/python3
"""HL7 connections the capture picked up mid-stream (no handshake: an MLLP connection stays open
for days): the first bytes of each direction are the tail of a message the capture missed. The
whole messages after it are read, their PHI pseudonymised and their ACKs paired, whether the next
frame comes in a later segment (the connection is watched for it) or in the same one."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pseudonym  # noqa: E402
from pcapwrite import ether, ipv4, tcp, write_pcap  # noqa: E402

c = Checker("hl7_midstream")
SRV = "10.0.0.2"
MAC_C, MAC_S = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
records = []
t = [1700000000.0]


def adt(cid):
    # A made-up patient.
    return (b"MSH|^~\\&|SA|SF|RA|RF|20240101120000||ADT^A01|" + cid + b"|P|2.5\r"
            b"EVN|A01|20240101120000\rPID|1||MRN5^^^H^MR||ROE^ANN||19700101|F\r"
            b"NTE|1||" + b"free text " * 60 + b"\r")


def ack(cid):
    return b"MSH|^~\\&|RA|RF|SA|SF|20240101120001||ACK^A01|A" + cid + b"|P|2.5\rMSA|AA|" + cid + b"\r"


def mllp(m):
    return b"\x0b" + m + b"\x1c\r"


class Conn:
    """A connection already open when the capture began: no handshake."""

    def __init__(self, cli, sport):
        self.cli, self.sport = cli, sport
        self.seq = {"c": 70000, "s": 90000}

    def send(self, frm, payload):
        src, dst, sp, dp, mc, ms = ((self.cli, SRV, self.sport, 2575, MAC_C, MAC_S) if frm == "c"
                                    else (SRV, self.cli, 2575, self.sport, MAC_S, MAC_C))
        other = "s" if frm == "c" else "c"
        seg = tcp(src, dst, sp, dp, self.seq[frm], self.seq[other], 0x18, payload)
        records.append((int(t[0]), int(round((t[0] % 1) * 1e6)), ether(ms, mc, ipv4(src, dst, 6, seg))))
        self.seq[frm] += len(payload)
        t[0] += 0.001


# 1: the tails (longer than the probe window) in segments of their own, whole frames after them.
a = Conn("10.0.0.21", 45001)
a.send("c", mllp(adt(b"T0"))[40:])
a.send("s", mllp(ack(b"T0"))[30:])
for cid in (b"T1", b"T2"):
    a.send("c", mllp(adt(cid)))
    a.send("s", mllp(ack(cid)))

# 2: a short tail and the next frame in one segment, in each direction.
b = Conn("10.0.0.22", 45002)
b.send("c", mllp(adt(b"U0"))[-60:] + mllp(adt(b"U1")))
b.send("s", mllp(ack(b"U0"))[20:] + mllp(ack(b"U1")))

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "midstream.pcap")
    write_pcap(path, records)
    ev = analyze(path, keep_as="hl7-midstream")

msgs = {}
for e in of_type(ev, "hl7"):
    if e["hl7"]["kind"] == "message":
        msgs.setdefault(e["src_port"], []).append((e["hl7"]["direction"], e["hl7"].get("control_id"),
                                          e["hl7"].get("ack", {}).get("matched")))
c.eq("tails in their own segments: later messages read and paired", msgs.get(45001),
     [("to_server", "T1", None), ("to_client", "AT1", True), ("to_server", "T2", None), ("to_client", "AT2", True)])
c.eq("a short tail before a frame in one segment", msgs.get(45002),
     [("to_server", "U1", None), ("to_client", "AU1", True)])
c.eq("patient pseudonymised", sorted({e["hl7"]["patient"]["id"] for e in of_type(ev, "hl7") if "patient" in e["hl7"]}),
     [pseudonym("MRN5")])
c.eq("apps", sorted(str(f.get("app")) for f in of_type(ev, "flow")), ["hl7", "hl7"])
c.eq("no anomaly for the tails", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])
c.true("PHI never in clear", all("ROE" not in str(e) and "MRN5" not in str(e) for e in ev))
c.done()
