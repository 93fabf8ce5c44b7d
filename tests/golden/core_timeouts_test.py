#!/usr/bin/python3
"""Flow timeouts and periodic stats by packet time, on captures made here: frames that are not IP
(ARP, STP) move packet time on a quiet link; a flow's own packet after its idle timeout starts a
new flow whatever other traffic came between; flows that end together come out in the order of
their last packets, counted as timed out or closed."""
import json
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, of_type, run  # noqa: E402
from pcapwrite import ACK, FIN, PSH, SYN, addr, ether, ipv4, tcp, udp, write_pcap  # noqa: E402

c = Checker("core_timeouts")
TMP = tempfile.mkdtemp(prefix="medmon-timeouts-")
MAC_A, MAC_B = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
T0 = 1_700_000_000


def write(name, records):
    """records: (time in seconds after T0, frame)."""
    path = os.path.join(TMP, name)
    write_pcap(path, [(T0 + int(t), round((t - int(t)) * 1e6), f) for t, f in records])
    return path


def analyze(path, *extra):
    rc, out, err = run(["analyze", path, "--out", "-", "--quiet", *extra], check_rc=None)
    c.eq(f"{os.path.basename(path)} {extra}: exit code", rc, 0)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def eth_tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
    return ether(MAC_B, MAC_A, ipv4(src, dst, 6, tcp(src, dst, sport, dport, seq, ack, flags, payload)))


def eth_udp(src, dst, sport, dport, payload):
    return ether(MAC_B, MAC_A, ipv4(src, dst, 17, udp(src, dst, sport, dport, payload)))


def http(t, client, server, port, close=False):
    """An HTTP exchange from t on (handshake, request, answer; FIN both ways and the last ACK if close)."""
    recs = [(t, eth_tcp(client, server, port, 80, 1000, 0, SYN)),
            (t + 0.001, eth_tcp(server, client, 80, port, 5000, 1001, SYN | ACK)),
            (t + 0.002, eth_tcp(client, server, port, 80, 1001, 5001, ACK)),
            (t + 0.01, eth_tcp(client, server, port, 80, 1001, 5001, PSH | ACK, b"GET / HTTP/1.0\r\n\r\n")),
            (t + 0.02, eth_tcp(server, client, 80, port, 5001, 1019, PSH | ACK, b"HTTP/1.0 200 OK\r\n\r\n"))]
    if close:
        recs += [(t + 0.03, eth_tcp(client, server, port, 80, 1019, 5020, FIN | ACK)),
                 (t + 0.04, eth_tcp(server, client, 80, port, 5020, 1020, FIN | ACK)),
                 (t + 0.05, eth_tcp(client, server, port, 80, 1020, 5021, ACK))]
    return recs


def flows(ev):
    return [e["flow"] for e in of_type(ev, "flow")]


def counters(ev):
    return of_type(ev, "stats")[-1]["stats"]["counters"]


# ------------------------------------------------ a quiet link: one flow, then only ARP and STP
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_A + addr("10.0.0.1") + b"\0" * 6 + addr("10.0.0.9")
stp = b"\x01\x80\xc2\x00\x00\x00" + MAC_A + struct.pack("!H", 38) + b"\x42\x42\x03" + b"\0" * 35
recs = http(0, "10.0.0.1", "10.0.0.2", 40000)
for i in range(1, 3000, 2):
    recs += [(i, ether(b"\xff" * 6, MAC_A, arp, 0x0806)), (i + 1, stp)]
cfg = os.path.join(TMP, "stats60.yaml")
with open(cfg, "w") as f:
    f.write("output:\n  stats_interval: 60\n")
ev = analyze(write("quiet_link.pcap", recs), "--config", cfg)
fl = flows(ev)
c.eq("ARP and STP only after the flow: it ends idle after the TCP idle timeout (600 s)",
     [f["state"] for f in fl], ["idle_timeout"])
stats = of_type(ev, "stats")
c.true(f"ARP and STP only: a stats event every 60 s of their time ({len(stats)} for 3000 s)", 49 <= len(stats) <= 51)
# The flow event comes with the first frame after its timeout: before the stats of later minutes.
order = [e["event_type"] for e in ev if e["event_type"] in ("flow", "stats")]
c.eq("ARP and STP only: the flow ends between the 10th and 11th periodic stats", order.index("flow"), 10)

# ------------------------------------------------ a flow's own packet after its idle timeout
a = eth_udp("10.0.0.1", "10.0.0.2", 40000, 9999, b"a")
b = eth_udp("10.0.0.3", "10.0.0.4", 40001, 9999, b"b")
again = eth_udp("10.0.0.1", "10.0.0.2", 40000, 9999, b"c")
alone = analyze(write("udp_gap.pcap", [(0, a), (120.5, again)]))
busy = analyze(write("udp_gap_busy.pcap", [(0, a), (119.9, b), (120.5, again)]))
for name, ev in (("alone", alone), ("with another flow's packet at 119.9 s", busy)):
    mine = [f for f in of_type(ev, "flow") if f["src_ip"] == "10.0.0.1"]
    c.eq(f"UDP packets 120.5 s apart, {name}: two flows", [f["flow"]["state"] for f in mine],
         ["idle_timeout", "end_of_input"])
    c.eq(f"UDP packets 120.5 s apart, {name}: the first ends with its own packet",
         [f["flow"]["end"][:19] for f in mine], ["2023-11-14T22:13:20", "2023-11-14T22:15:20"])
c.eq("UDP packets 120.5 s apart: the same flows with or without other traffic",
     [f for f in of_type(busy, "flow") if f["src_ip"] == "10.0.0.1"],
     [f for f in of_type(alone, "flow") if f["src_ip"] == "10.0.0.1"])
# The flows due with the one whose packet ends it come out with it, in the order of their last
# packets (timeouts were last checked at 120 s, by the packet of a third flow).
other = eth_udp("10.0.0.5", "10.0.0.6", 40002, 9999, b"d")
ev = analyze(write("udp_gap_order.pcap", [(0, a), (0.5, b), (120, other), (120.6, again)]))
c.eq("a flow's own packet after its timeout: the flows due with it end with it, in time order",
     [(f["src_ip"], f["flow"]["state"]) for f in of_type(ev, "flow")],
     [("10.0.0.1", "idle_timeout"), ("10.0.0.3", "idle_timeout"), ("10.0.0.5", "end_of_input"),
      ("10.0.0.1", "end_of_input")])
c.eq("two flows ended by their timeout: flows.timed_out", counters(ev).get("flows.timed_out"), 2)

# ------------------------------------------------ flows ending together, of different timeouts
recs = http(0, "10.1.0.1", "10.1.0.2", 40001, close=True) + http(0.1, "10.1.0.3", "10.1.0.4", 40002)
recs.append((700, eth_udp("10.0.0.3", "10.0.0.4", 1, 2, b"z")))
ev = analyze(write("closed_and_idle.pcap", recs))
c.eq("a closed flow and a later idle one ending at the same packet: in the order of their last packets",
     [(f["src_ip"], f["flow"]["state"]) for f in of_type(ev, "flow")],
     [("10.1.0.1", "closed"), ("10.1.0.3", "idle_timeout"), ("10.0.0.3", "end_of_input")])
cn = counters(ev)
c.eq("flows.timed_out counts the idle flow only", cn.get("flows.timed_out"), 1)
c.eq("flows.closed counts the flow closed by FIN", cn.get("flows.closed"), 1)

c.done()
