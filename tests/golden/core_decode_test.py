#!/usr/bin/python3
"""Decoding and reassembly facts of the core captures (pcaps/core/README.md says how each was made).

VLAN ids kept, IPv6 and every link type decoded, IPv4/IPv6 fragments reassembled, TCP cases
(gap, mid-stream, port reuse, RST, sequence wrap) in the flow record, malformed frames reported
as anomalies at their own packet time while the run goes on.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, analyze, of_type, pcap, run  # noqa: E402

c = Checker("core_decode")
T0 = "2023-11-14T22:13:20"  # make-captures.py's time base


def flows(name, *extra):
    ev = analyze(pcap("core", name), *extra, keep_as="decode_" + name)
    return ev, of_type(ev, "flow")


def find(fl, **kw):
    return [f for f in fl if all(f.get(k) == v for k, v in kw.items())]


def one(name, fl, **kw):
    got = find(fl, **kw)
    c.eq(f"{name}: flows matching {kw}", len(got), 1)
    return got[0] if got else None


# ---------------------------------------------------------------- link types carrying the same mix
# basic_mix: HTTP over TCP (client -> :80, 11 frames), DNS over UDP, ICMP echo; v6 TCP to :8080
MIXES = {
    "ethernet_basic.pcap": ("192.168.10.5", "2001:db8:10::5"),
    "vlan_8021q.pcap": ("10.20.0.5", "2001:db8:20::5"),
    "vlan_qinq.pcap": ("10.30.0.5", None),
    "pppoe_session.pcap": ("100.64.1.5", "2001:db8:64::5"),
    "linux_sll.pcap": ("10.40.0.5", "fd00:40::5"),
    "linux_sll2.pcap": ("10.41.0.5", "fd00:41::5"),
    "null_loopback.pcap": ("127.0.0.1", "::1"),
    "loop_openbsd.pcap": ("127.0.0.1", "::1"),
    "raw_ip.pcap": ("10.50.0.5", "2001:db8:50::5"),
    "raw_ipv4.pcap": ("10.51.0.5", None),
    "bigendian_nsec.pcap": ("10.60.0.5", None),
}
for name, (v4, v6) in MIXES.items():
    ev, fl = flows(name)
    http = [f for f in find(fl, proto="tcp", src_ip=v4) if f["dst_port"] == 80]
    c.eq(f"{name}: one IPv4 HTTP flow", len(http), 1)
    for f in http:
        c.eq(f"{name}: HTTP flow state", f["flow"]["state"], "closed")
        c.eq(f"{name}: HTTP flow initiator", f["flow"]["initiator"], "syn")
        c.eq(f"{name}: HTTP flow packets to server", f["flow"]["pkts_toserver"], 6)
        c.eq(f"{name}: HTTP flow packets to client", f["flow"]["pkts_toclient"], 5)
        c.eq(f"{name}: HTTP flow payload to server", f["flow"]["payload_bytes_toserver"], 94)
        c.eq(f"{name}: HTTP flow payload to client", f["flow"]["payload_bytes_toclient"], 1267)
        c.eq(f"{name}: HTTP flow flags to server", f["flow"]["tcp_flags_toserver"], "SAFP")
        c.eq(f"{name}: HTTP flow gaps", (f["flow"].get("gaps_toserver"), f["flow"].get("gaps_toclient")), (0, 0))
    c.eq(f"{name}: one DNS flow", len([f for f in find(fl, proto="udp", dst_port=53)]), 1)
    c.eq(f"{name}: one ICMP flow", len(find(fl, proto="icmp")), 1)
    if v6:
        f6 = [f for f in find(fl, proto="tcp", src_ip=v6) if f["dst_port"] == 8080]
        c.eq(f"{name}: one IPv6 TCP flow from {v6}", len(f6), 1)
        c.eq(f"{name}: one ICMPv6 flow", len(find(fl, proto="icmp6")), 1)
    st = of_type(ev, "stats")
    c.eq(f"{name}: one stats event", len(st), 1)
    with open(pcap("core", name), "rb") as f:
        data = f.read()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, n, total = 24, 0, 0
    while off + 16 <= len(data):
        incl, orig = struct.unpack(endian + "II", data[off + 8:off + 16])
        n, total, off = n + 1, total + orig, off + 16 + incl
    if st:
        c.eq(f"{name}: stats packets = records in the file", st[0]["stats"]["packets"], n)
        c.eq(f"{name}: stats bytes = sum of wire lengths", st[0]["stats"]["bytes"], total)
    c.eq(f"{name}: no anomalies in a clean capture", [e["anomaly"]["name"] for e in of_type(ev, "anomaly")], [])

# ---------------------------------------------------------------- VLANs
_, fl = flows("vlan_8021q.pcap")
c.true("vlan_8021q: every flow carries vlan 20", fl and all(f.get("vlan") == 20 for f in fl))
_, fl = flows("vlan_qinq.pcap")
c.true("vlan_qinq: every flow carries both tags of the stack (vlan 100 outer, vlan_inner 30)",
       fl and all((f.get("vlan"), f.get("vlan_inner")) == (100, 30) for f in fl))
_, fl = flows("vlan_same_tuple.pcap")
tcp = find(fl, proto="tcp")
c.eq("vlan_same_tuple: the same 5-tuple on two VLANs is two flows", sorted(f.get("vlan") for f in tcp), [31, 32])
c.true("vlan_same_tuple: the two flows have different flow ids", len({f["flow_id"] for f in tcp}) == len(tcp))
_, fl = flows("ethernet_basic.pcap")
c.true("ethernet_basic: untagged flows have no vlan key", fl and all("vlan" not in f for f in fl))
rst = one("ethernet_basic", fl, proto="tcp", dst_port=23)
if rst:
    c.eq("ethernet_basic: SYN answered by RST ends as reset", rst["flow"]["state"], "reset")
    c.eq("ethernet_basic: RST flow flags to client", rst["flow"]["tcp_flags_toclient"], "AR")

# ---------------------------------------------------------------- timestamps
ev, fl = flows("bigendian_nsec.pcap")
c.eq("bigendian_nsec: first flow starts at the first packet (ns truncated to us)",
     min(f["flow"]["start"] for f in fl) if fl else None, T0 + ".000123Z")
ev, fl = flows("two_interfaces.pcapng")
c.true("two_interfaces: flows from both interfaces",
       find(fl, src_ip="10.120.0.5", dst_port=80) and find(fl, src_ip="10.121.0.5", dst_port=80))
v1 = find(fl, src_ip="10.121.0.5", dst_port=80)
if v1:
    c.eq("two_interfaces: ns-resolution interface timestamps", v1[0]["flow"]["start"], T0 + ".001500Z")

# ---------------------------------------------------------------- IPv6 and raw IPv6
_, fl = flows("raw_ipv6.pcap")
f = one("raw_ipv6", fl, proto="tcp", src_ip="2001:db8:52::5")
if f:
    c.eq("raw_ipv6: TCP state", f["flow"]["state"], "closed")
one("raw_ipv6", fl, proto="udp", dst_port=123)

# ---------------------------------------------------------------- IPv4 options and fragments
_, fl = flows("ipv4_options.pcap")
f = one("ipv4_options", fl, proto="tcp", dst_port=80)
if f:
    c.eq("ipv4_options: TCP payload to client behind 12-byte IP options", f["flow"]["payload_bytes_toclient"], 1267)
c.eq("ipv4_options: two UDP flows (the timestamp-option datagram answers the router-alert one)",
     len(find(fl, proto="udp")), 2)
f = one("ipv4_options", fl, proto="udp", src_port=40001)
if f:
    c.eq("ipv4_options: request and answer with different options in one flow",
         (f["flow"]["pkts_toserver"], f["flow"]["pkts_toclient"]), (1, 1))
one("ipv4_options", fl, proto="udp", src_port=40002, dst_port=5001)

ev, fl = flows("ipv4_fragments.pcap")
for sport, what in ((40001, "in order"), (40002, "out of order"), (40003, "overlapping")):
    f = one("ipv4_fragments", fl, proto="udp", src_port=sport)
    if f:
        want = 1600 if sport == 40003 else 3000
        c.eq(f"ipv4_fragments: {what} datagram reassembled, payload", f["flow"]["payload_bytes_toserver"], want)
        c.eq(f"ipv4_fragments: {what} datagram is one packet to the server", f["flow"]["pkts_toserver"], 1)
c.eq("ipv4_fragments: a never-completed datagram makes no UDP flow", find(fl, proto="udp", src_port=40004), [])
c.eq("ipv4_fragments: fragmented ICMP echo reassembled", len(find(fl, proto="icmp")), 1)
f = one("ipv4_fragments", fl, proto="tcp", src_port=40006)
if f:
    c.eq("ipv4_fragments: TCP segment in two fragments", f["flow"]["payload_bytes_toserver"], 2000)
    c.eq("ipv4_fragments: no gap after the fragmented segment", f["flow"].get("gaps_toserver"), 0)
    c.eq("ipv4_fragments: TCP flow closed", f["flow"]["state"], "closed")

ev, fl = flows("ipv6_ext_headers.pcap")
one("ipv6_ext_headers", fl, proto="udp", src_port=40001, dst_port=7000)
f = one("ipv6_ext_headers", fl, proto="tcp", src_port=40002)
if f:
    c.eq("ipv6_ext_headers: TCP behind destination options + routing header, payload to client",
         f["flow"]["payload_bytes_toclient"], 1267)
    c.eq("ipv6_ext_headers: TCP flow closed", f["flow"]["state"], "closed")
f = one("ipv6_ext_headers", fl, proto="udp", src_port=40003)
if f:
    c.eq("ipv6_ext_headers: fragmented UDP reassembled", f["flow"]["payload_bytes_toserver"], 2048)
    c.eq("ipv6_ext_headers: atomic fragment answer in the same flow", f["flow"]["pkts_toclient"], 1)
c.eq("ipv6_ext_headers: fragmented ICMPv6 echo reassembled", len(find(fl, proto="icmp6")), 1)

# ---------------------------------------------------------------- TCP reassembly cases
DATA = 1920  # 60 lines of 32 bytes
for name in ("tcp_out_of_order.pcap", "tcp_retransmission.pcap", "tcp_overlap.pcap", "tcp_seq_wrap.pcap"):
    _, fl = flows(name)
    f = one(name, fl, proto="tcp")
    if f:
        c.eq(f"{name}: state", f["flow"]["state"], "closed")
        c.eq(f"{name}: no gap to the server", (f["flow"].get("gaps_toserver"), f["flow"].get("gap_bytes_toserver")), (0, 0))
        c.eq(f"{name}: initiator", f["flow"]["initiator"], "syn")
_, fl = flows("tcp_gap.pcap")
f = one("tcp_gap", fl, proto="tcp")
if f:
    c.eq("tcp_gap: one gap to the server", f["flow"].get("gaps_toserver"), 1)
    c.eq("tcp_gap: 400 missing bytes to the server", f["flow"].get("gap_bytes_toserver"), 400)
    c.eq("tcp_gap: no gap to the client", f["flow"].get("gaps_toclient"), 0)
    c.eq("tcp_gap: payload seen to the server", f["flow"]["payload_bytes_toserver"], DATA - 400)
_, fl = flows("tcp_midstream.pcap")
f = one("tcp_midstream", fl, proto="tcp")
if f:
    # No handshake: 9000 (a POCT1 port) against an ephemeral port names the server.
    c.eq("tcp_midstream: initiator", f["flow"]["initiator"], "port")
    c.eq("tcp_midstream: the client is on the ephemeral port", (f["src_ip"], f["src_port"]), ("10.100.0.5", 41005))
    c.eq("tcp_midstream: marked mid-stream", f["flow"].get("midstream"), True)
    c.eq("tcp_midstream: closed by FIN", f["flow"]["state"], "closed")
    c.eq("tcp_midstream: no gaps", (f["flow"].get("gaps_toserver"), f["flow"].get("gaps_toclient")), (0, 0))
_, fl = flows("tcp_port_reuse.pcap")
tcp = sorted(find(fl, proto="tcp"), key=lambda e: e["flow"]["start"])
c.eq("tcp_port_reuse: two flows for one 4-tuple", len(tcp), 2)
if len(tcp) == 2:
    c.eq("tcp_port_reuse: first closed, second reset", [t["flow"]["state"] for t in tcp], ["closed", "reset"])
    c.true("tcp_port_reuse: distinct flow ids", tcp[0]["flow_id"] != tcp[1]["flow_id"])

# ---------------------------------------------------------------- UDP / ICMP
_, fl = flows("udp_icmp.pcap")
c.eq("udp_icmp: three DNS flows", len(find(fl, proto="udp", dst_port=53)), 3)
f = one("udp_icmp", fl, proto="udp", dst_port=514)
if f:
    c.eq("udp_icmp: one-way syslog", (f["flow"]["pkts_toserver"], f["flow"]["pkts_toclient"]), (3, 0))
f = one("udp_icmp", fl, proto="udp", dst_port=9999)
if f:
    c.eq("udp_icmp: the ICMP error is not counted in the UDP flow", f["flow"]["pkts_toclient"], 0)
c.true("udp_icmp: ICMPv6 flows", len(find(fl, proto="icmp6")) >= 1)

# ---------------------------------------------------------------- malformed frames
rc, _, _ = run(["analyze", pcap("core/malformed.pcap"), "--out", "/dev/null"], check_rc=None)
c.eq("malformed: exit code", rc, 0)
ev, fl = flows("malformed.pcap")
with open(pcap("core/malformed.txt")) as f:
    cases = [l.rstrip("\n").split("\t") for l in f if l[0].isdigit()]
an = of_type(ev, "anomaly")
by_ts = {}
for a in an:
    by_ts.setdefault(a["ts"], []).append(a)
for num, what in cases:
    ts = "%s.%03d000Z" % (T0, int(num))  # frame k is at T0 + k ms
    got = by_ts.get(ts, [])
    c.true(f"malformed: frame {num} ({what}) is reported as an anomaly", len(got) >= 1)
    for a in got:
        c.true(f"malformed: frame {num} anomaly has a name and dissector", a["anomaly"].get("name") and a["anomaly"].get("dissector"))
names = {a["anomaly"]["name"] for a in an}
c.true(f"malformed: several distinct anomaly names ({sorted(names)})", len(names) >= 8)
f = one("malformed", fl, proto="tcp", src_port=40100)
if f:
    c.eq("malformed: the clean conversation after the broken frames is decoded", f["flow"]["state"], "closed")
st = of_type(ev, "stats")
if st:
    ctr = st[0]["stats"]["counters"]
    c.true("malformed: a malformed counter in stats", any("malformed" in k and v > 0 for k, v in ctr.items()))

c.done()
