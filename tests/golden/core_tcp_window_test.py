#!/usr/bin/python3
"""TCP packets that would move a connection if taken as they came, on captures made here:

- ACKs "from the server" for bytes 256 MiB past anything the client sent (a forged ACK would make
  the client's later messages look delivered already): ignored, counted, an anomaly; all messages
  reported. A capture that lost a message but saw it acknowledged still gives a gap there, and
  the HL7 dissector resyncs on the next message.
- An RST 1 GiB away from where its sender is: ignored (the flow goes on and closes), counted, an
  anomaly. An RST in the window resets the flow; the RST refusing a SYN too (nothing to check
  it against).
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, of_type, run  # noqa: E402
from pcapwrite import ACK, FIN, PSH, RST, SYN, ether, ipv4, tcp, write_pcap  # noqa: E402

c = Checker("core_tcp_window")
TMP = tempfile.mkdtemp(prefix="medmon-tcp-window-")
MAC_C, MAC_S = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
T0 = 1_700_000_000
CLIENT, SERVER = ("10.1.0.1", 40001), ("10.1.0.2", 2575)


def msg(ctrl):
    return (b"\x0bMSH|^~\\&|SND|FAC|RCV|FAC|20240101120000||ADT^A01|" + ctrl.encode() +
            b"|P|2.5\rPID|1||12345\r\x1c\r")


def ack(ctrl):
    return (b"\x0bMSH|^~\\&|RCV|FAC|SND|FAC|20240101120000||ACK|A" + ctrl.encode() +
            b"|P|2.5\rMSA|AA|" + ctrl.encode() + b"\r\x1c\r")


class Conn:
    """One TCP connection; each call gives a (sec, usec, frame) record and moves the sequence numbers."""

    def __init__(self):
        self.seq = {True: 1000, False: 5000}  # by "from the client"
        self.records = []

    def send(self, t, from_client, flags, data=b"", seq=None, ack=None, keep=True):
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        s = self.seq[from_client] if seq is None else seq
        a = self.seq[not from_client] if ack is None else ack
        seg = tcp(src[0], dst[0], src[1], dst[1], s, a, flags, data)
        frame = ether(MAC_S if from_client else MAC_C, MAC_C if from_client else MAC_S,
                      ipv4(src[0], dst[0], 6, seg))
        if seq is None:
            self.seq[from_client] += len(data) + (1 if flags & (SYN | FIN) else 0)
        if keep:  # else the capture lost it
            sec = T0 + int(t)
            self.records.append((sec, round((t - int(t)) * 1e6), frame))

    def handshake(self):
        self.send(0, True, SYN, ack=0)
        self.send(0.001, False, SYN | ACK)
        self.send(0.002, True, ACK)

    def exchange(self, t, ctrl, keep_message=True):
        self.send(t, True, PSH | ACK, msg(ctrl), keep=keep_message)
        self.send(t + 0.01, False, PSH | ACK, ack(ctrl))

    def close(self, t):
        self.send(t, True, FIN | ACK)
        self.send(t + 0.01, False, FIN | ACK)
        self.send(t + 0.02, True, ACK)

    def write(self, name):
        path = os.path.join(TMP, name)
        write_pcap(path, self.records)
        return path


def analyze(path):
    rc, out, err = run(["analyze", path, "--out", "-"], check_rc=None)
    c.eq(f"{os.path.basename(path)}: exit code", rc, 0)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def counters(ev):
    st = of_type(ev, "stats")
    return st[-1]["stats"]["counters"] if st else {}


def controls(ev):
    return sorted(e["hl7"]["control_id"] for e in of_type(ev, "hl7") if e["hl7"]["kind"] == "message")


def anomalies(ev, name):
    return [e for e in of_type(ev, "anomaly") if e["anomaly"]["dissector"] == "tcp" and e["anomaly"]["name"] == name]


ALL = ["AMSG00001", "AMSG00002", "AMSG00003", "AMSG00004", "MSG00001", "MSG00002", "MSG00003", "MSG00004"]

# Forged ACKs 256 MiB past what the client sent.
conn = Conn()
conn.handshake()
conn.exchange(0.01, "MSG00001")
for i in range(16):
    conn.send(0.03 + i * 0.001, False, ACK, ack=conn.seq[True] + 0x10000000)
for k in range(2, 5):
    conn.exchange(0.1 * k, "MSG0000%d" % k)
conn.close(1)
ev = analyze(conn.write("spoofed_ack.pcap"))
flows = of_type(ev, "flow")
c.eq("forged ACKs: every message and acknowledgment reported", controls(ev), ALL)
c.eq("forged ACKs: one flow", len(flows), 1)
if flows:
    c.eq("forged ACKs: no gap", flows[0]["flow"].get("gaps_toserver"), 0)
    c.eq("forged ACKs: the flow closed", flows[0]["flow"]["state"], "closed")
c.eq("forged ACKs: counted", counters(ev).get("tcp.ack_out_of_window"), 16)
c.eq("forged ACKs: no gap counted", counters(ev).get("tcp.gaps"), None)
an = anomalies(ev, "ack_out_of_window")
c.eq("forged ACKs: an anomaly each (within the rate limit)", len(an), 16)
if an:
    c.eq("forged ACKs: the anomaly names the direction of the ACK", an[0]["anomaly"].get("detail"), "to_client")
    c.eq("forged ACKs: the anomaly is the flow's", an[0].get("flow_id"), flows[0]["flow_id"] if flows else None)

# The capture lost MSG00002 but saw it acknowledged: a gap, and the dissector goes on.
conn = Conn()
conn.handshake()
conn.exchange(0.01, "MSG00001")
conn.exchange(0.2, "MSG00002", keep_message=False)
for k in range(3, 5):
    conn.exchange(0.1 * k, "MSG0000%d" % k)
for i in range(16):  # keepalive-like ACKs, so the grace for lost bytes runs out
    conn.send(0.5 + i * 0.001, False, ACK)
conn.close(1)
ev = analyze(conn.write("lost_data.pcap"))
flows = of_type(ev, "flow")
c.eq("lost message: the others reported", controls(ev), [x for x in ALL if x != "MSG00002"])
if flows:
    c.eq("lost message: one gap to the server", flows[0]["flow"].get("gaps_toserver"), 1)
    c.eq("lost message: as long as the message", flows[0]["flow"].get("gap_bytes_toserver"), len(msg("MSG00002")))
c.eq("lost message: no ACK out of window", counters(ev).get("tcp.ack_out_of_window"), None)

# An RST 1 GiB away from the server's sequence numbers, between two messages.
conn = Conn()
conn.handshake()
conn.exchange(0.01, "MSG00001")
conn.send(0.5, False, RST, seq=conn.seq[False] + 0x40000000, ack=0)
for k in range(2, 5):
    conn.exchange(30 * k, "MSG0000%d" % k)
conn.close(200)
ev = analyze(conn.write("rst_far.pcap"))
flows = of_type(ev, "flow")
c.eq("far RST: one flow", len(flows), 1)
if flows:
    c.eq("far RST: the flow closed, not reset", flows[0]["flow"]["state"], "closed")
    c.true("far RST: not picked up mid-stream", not flows[0]["flow"].get("midstream"))
    c.eq("far RST: the RST is no flag of the flow", flows[0]["flow"]["tcp_flags_toclient"], "SAFP")
c.eq("far RST: every message reported", controls(ev), ALL)
c.eq("far RST: counted", counters(ev).get("tcp.rst_out_of_window"), 1)
an = anomalies(ev, "rst_out_of_window")
c.eq("far RST: an anomaly", len(an), 1)
if an:
    c.eq("far RST: the anomaly's offset is the RST's sequence number", an[0]["anomaly"]["offset"], 5000 + 1 + len(ack("MSG00001")) + 0x40000000)

# An RST where the server is: the connection is reset.
conn = Conn()
conn.handshake()
conn.exchange(0.01, "MSG00001")
conn.send(0.5, False, RST | ACK)
ev = analyze(conn.write("rst_in_window.pcap"))
flows = of_type(ev, "flow")
c.eq("RST in the window: one flow, reset", [f["flow"]["state"] for f in flows], ["reset"])
c.eq("RST in the window: not counted", counters(ev).get("tcp.rst_out_of_window"), None)

# A SYN refused: nothing seen of the server yet, the RST is taken as it comes.
conn = Conn()
conn.send(0, True, SYN, ack=0)
conn.send(0.001, False, RST | ACK, seq=0)
ev = analyze(conn.write("refused.pcap"))
c.eq("refused SYN: one flow, reset", [f["flow"]["state"] for f in of_type(ev, "flow")], ["reset"])
c.eq("refused SYN: not counted", counters(ev).get("tcp.rst_out_of_window"), None)

# A lost last message: the server's ACK (and the client's FIN) prove its bytes were sent. They are
# a gap at the end of the flow, whether the flow closes or the input ends after the ACK; a FIN
# from far beyond the window proves nothing.
for name, closes in (("lost_tail_fin.pcap", True), ("lost_tail_eoi.pcap", False)):
    conn = Conn()
    conn.handshake()
    conn.send(0.01, True, PSH | ACK, msg("MSG00009"), keep=False)
    conn.send(0.02, False, ACK)
    if closes:
        conn.close(0.1)
    flows = of_type(analyze(conn.write(name)), "flow")
    c.eq(f"{name}: the lost message is a gap of its bytes",
         [(f["flow"].get("gaps_toserver"), f["flow"].get("gap_bytes_toserver")) for f in flows],
         [(1, len(msg("MSG00009")))])
conn = Conn()
conn.handshake()
conn.exchange(0.01, "MSG00001")
conn.send(0.1, True, FIN | ACK, seq=conn.seq[True] + 0x10000000)
flows = of_type(analyze(conn.write("far_fin.pcap")), "flow")
c.eq("FIN far beyond the window: no gap", [f["flow"].get("gap_bytes_toserver") for f in flows], [0])

c.done()
