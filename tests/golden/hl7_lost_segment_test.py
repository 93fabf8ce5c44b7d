#!/usr/bin/python3
"""HL7 over MLLP with one lost TCP segment early in the client's stream: the server's ACKs come
while the client's messages wait behind the hole. Once the reassembler gives up on it, the
messages pair with their ACKs (no false unmatched ACK, no false unacked message), and each
message carries the time of the packet that brought it, not the time it was released."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type  # noqa: E402
from pcapwrite import ether, ipv4, tcp, write_pcap  # noqa: E402

c = Checker("hl7_lost_segment")
CLI, SRV = "10.0.0.1", "10.0.0.2"
MAC_C, MAC_S = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"


def adt(cid):
    # A made-up patient.
    return (b"MSH|^~\\&|SA|SF|RA|RF|20240101120000||ADT^A01|" + cid + b"|P|2.5\r"
            b"EVN|A01|20240101120000\rPID|1||MRN1^^^H^MR||ROE^ANN||19700101|F\r")


def ack(cid):
    return b"MSH|^~\\&|RA|RF|SA|SF|20240101120001||ACK^A01|A" + cid + b"|P|2.5\rMSA|AA|" + cid + b"\r"


def mllp(m):
    return b"\x0b" + m + b"\x1c\r"


records = []
t = [1700000000.0]
seq = {"c": 1000, "s": 5000}


def send(frm, payload, skip=0):
    src, dst, sp, dp, mc, ms = (CLI, SRV, 40000, 2575, MAC_C, MAC_S) if frm == "c" else (SRV, CLI, 2575, 40000, MAC_S, MAC_C)
    other = "s" if frm == "c" else "c"
    seq[frm] += skip
    seg = tcp(src, dst, sp, dp, seq[frm], seq[other], 0x18, payload)
    records.append((int(t[0]), int(round((t[0] % 1) * 1e6)), ether(ms, mc, ipv4(src, dst, 6, seg))))
    seq[frm] += len(payload)
    t[0] += 0.001


def handshake():
    for frm, flags in (("c", 0x02), ("s", 0x12), ("c", 0x10)):
        src, dst, sp, dp, mc, ms = (CLI, SRV, 40000, 2575, MAC_C, MAC_S) if frm == "c" else (SRV, CLI, 2575, 40000, MAC_S, MAC_C)
        other = "s" if frm == "c" else "c"
        ackno = seq[other] + 1 if flags != 0x02 else 0
        records.append((int(t[0]), 0, ether(ms, mc, ipv4(src, dst, 6, tcp(src, dst, sp, dp, seq[frm], ackno, flags)))))
        t[0] += 0.001
    seq["c"] += 1
    seq["s"] += 1


handshake()
first = mllp(adt(b"GA0"))
send("c", first[:60])
send("c", first[90:], skip=30)  # 30 bytes never captured
N = 40
send_times = {}
for i in range(1, N + 1):
    t[0] = 1700000001.0 + i
    cid = b"GB%d" % i
    send_times[cid.decode()] = t[0]
    send("c", mllp(adt(cid)))
    send("s", mllp(ack(cid)))

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "lost-segment.pcap")
    write_pcap(path, records)
    ev = analyze(path)

hl7 = [e for e in of_type(ev, "hl7")]
msgs = [e for e in hl7 if e["hl7"]["kind"] == "message" and e["hl7"]["direction"] == "to_server"]
acks = [e for e in hl7 if e["hl7"]["kind"] == "message" and "ack" in e["hl7"]]
c.eq("messages", sorted(e["hl7"]["control_id"] for e in msgs), sorted(send_times))
c.eq("acks", len(acks), N)
c.eq("unmatched acks", [e["hl7"]["ack"]["control_id"] for e in acks if not e["hl7"]["ack"]["matched"]], [])
c.eq("unacked", [e for e in hl7 if e["hl7"]["kind"] == "unacked"], [])
c.true("latencies are those of the exchange",
       all(0 <= e["hl7"]["ack"].get("latency_us", -1) < 10000 for e in acks))


def secs(ts):  # "2023-11-14T22:13:21.006999Z" -> seconds since the epoch
    import datetime
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


late = [e for e in msgs if abs(secs(e["ts"]) - send_times[e["hl7"]["control_id"]]) > 0.01]
c.eq("messages at their packet time", [e["hl7"]["control_id"] for e in late], [])
c.done()
