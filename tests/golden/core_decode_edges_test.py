#!/usr/bin/python3
"""Decoding at its edges, on captures made here: IPv6 extension headers nDPI does not skip, packet
time that goes back, a flood of malformed packets, fragments split over files or cut by the snap
length, IP lengths of 0 (segmentation offload), and anomaly events before the transport header.

Under the sanitizers (MEDMON_SANITIZED=1, scripts/test.sh) a leak makes medmon's exit code non-zero:
every run here must end with 0.
"""
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, of_type, run  # noqa: E402
import json  # noqa: E402
from pcapwrite import ACK, PSH, SYN, addr, ether, ipv4, ipv6, pcap_header, tcp, udp  # noqa: E402

c = Checker("core_decode_edges")
TMP = tempfile.mkdtemp(prefix="medmon-decode-edges-")
MAC_A, MAC_B = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
T0 = 1_700_000_000


def write(name, records, snaplen=65535):
    """records: (time in seconds, frame[, wire length]); frames longer than snaplen are cut."""
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(pcap_header(snaplen))
        for r in records:
            t, frame = r[0], r[1]
            wire = r[2] if len(r) > 2 else len(frame)
            frame = frame[:snaplen]
            sec, usec = int(t), round((t - int(t)) * 1e6)
            f.write(struct.pack("<IIII", sec, usec, len(frame), wire) + frame)
    return path


def analyze(paths, *extra):
    if isinstance(paths, str):
        paths = [paths]
    rc, out, err = run(["analyze", *paths, "--out", "-", *extra], check_rc=None)
    c.eq(f"{[os.path.basename(p) for p in paths]} {extra}: exit code (a leak under ASan makes it non-zero)", rc, 0)
    c.true(f"{[os.path.basename(p) for p in paths]}: no LeakSanitizer report", "LeakSanitizer" not in err)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def counters(ev):
    st = of_type(ev, "stats")
    return st[-1]["stats"]["counters"] if st else {}


def eth4(src, dst, proto, l4, **kw):
    return ether(MAC_B, MAC_A, ipv4(src, dst, proto, l4, **kw))


def eth6(src, dst, nh, payload):
    return ether(MAC_B, MAC_A, ipv6(src, dst, nh, payload), 0x86DD)


# ------------------------------------------------ IPv6 AH in a TCP flow: nDPI gets the TCP packet
# Each flow: a TLS record header to :443, then a segment behind an authentication header. nDPI
# took the second for protocol 51 and kept its TLS buffer past the end of the flow (2 KiB a flow).
recs = []
for i in range(40):
    s6, d6 = "2001:db8::%x" % (i + 1), "2001:db8:1::2"
    t1 = tcp(s6, d6, 1024 + i, 443, 1, 0, PSH | ACK, b"\x16\x03\x01\x00\x20" + b"A" * 10)
    t2 = tcp(s6, d6, 1024 + i, 443, 16, 0, PSH | ACK, b"B" * 16)
    ah = bytes([6, 4]) + b"\0" * 22  # authentication header, 24 bytes, then TCP
    recs.append((T0 + i * 0.01, eth6(s6, d6, 6, t1)))
    recs.append((T0 + i * 0.01 + 0.001, eth6(s6, d6, 51, ah + t2)))
ev = analyze(write("ipv6_ah.pcap", recs))
fl = [f for f in of_type(ev, "flow") if f["proto"] == "tcp" and f["dst_port"] == 443]
c.eq("ipv6_ah: one TCP flow per connection", len(fl), 40)
c.true("ipv6_ah: both segments in each flow", fl and all(f["flow"]["pkts_toserver"] == 2 for f in fl))
c.eq("ipv6_ah: no anomaly", [e["anomaly"]["name"] for e in of_type(ev, "anomaly")], [])


def ext(nh, units=0):
    """An IPv6 extension header of 8 * (units + 1) bytes, next header nh."""
    return bytes([nh, units]) + b"\0" * (6 + 8 * units)


# The same second segment behind every other header medmon walks or leaves opaque: hop-by-hop,
# routing, destination options then AH, an atomic fragment, AH inside a fragmented datagram,
# mobility (not walked: the flow is not TCP), and an IPv4 AH (not walked either).
recs = []
for i in range(30):
    s6, d6, sp = "2001:db8::%x" % (i + 1), "2001:db8:1::2", 2000 + i
    t1 = tcp(s6, d6, sp, 443, 1, 0, PSH | ACK, b"\x16\x03\x01\x00\x20" + b"A" * 10)
    t2 = tcp(s6, d6, sp, 443, 16, 0, PSH | ACK, b"B" * 16)
    t0 = T0 + i * 0.01
    recs.append((t0, eth6(s6, d6, 6, t1)))
    k = i % 6
    if k == 0:
        recs.append((t0 + 0.001, eth6(s6, d6, 0, ext(6) + t2)))
    elif k == 1:
        recs.append((t0 + 0.001, eth6(s6, d6, 43, ext(6, 1) + t2)))
    elif k == 2:
        recs.append((t0 + 0.001, eth6(s6, d6, 60, ext(51) + bytes([6, 4]) + b"\0" * 22 + t2)))
    elif k == 3:
        recs.append((t0 + 0.001, eth6(s6, d6, 44, bytes([6, 0, 0, 0]) + struct.pack("!I", i) + t2)))
    elif k == 4:
        inner = bytes([6, 4]) + b"\0" * 22 + t2
        recs.append((t0 + 0.001, eth6(s6, d6, 44, bytes([51, 0, 0, 1]) + struct.pack("!I", i) + inner[:16])))
        recs.append((t0 + 0.002, eth6(s6, d6, 44, bytes([51, 0, 0, 16]) + struct.pack("!I", i) + inner[16:])))
    else:
        recs.append((t0 + 0.001, eth6(s6, d6, 135, ext(6) + t2)))
    s4, d4 = "10.1.%d.1" % i, "10.2.0.2"
    recs.append((t0 + 0.003, eth4(s4, d4, 6, tcp(s4, d4, sp, 443, 1, 0, PSH | ACK, b"\x16\x03\x01\x00\x20" + b"A" * 10))))
    recs.append((t0 + 0.004, eth4(s4, d4, 51, bytes([6, 4]) + b"\0" * 22 + tcp(s4, d4, sp, 443, 16, 0, PSH | ACK, b"B" * 16))))
ev = analyze(write("ipv6_extensions.pcap", recs))
fl = of_type(ev, "flow")
c.eq("extension headers: IPv6 TCP flows with both segments (all but behind a mobility header)",
     len([f for f in fl if ":" in f["src_ip"] and f["proto"] == "tcp" and f["flow"]["pkts_toserver"] == 2]), 25)
c.eq("extension headers: no anomaly", [e["anomaly"]["name"] for e in of_type(ev, "anomaly")], [])

# ------------------------------------------------ packet time that goes back
S, D = "10.0.0.1", "10.0.0.2"
late = write("late.pcap", [(T0 + 86400, eth4(S, "10.0.0.9", 17, udp(S, "10.0.0.9", 1, 2, b"z")))])
early_recs = [(T0 + i * 500, eth4(S, D, 17, udp(S, D, 5000, 6000, b"ping%d" % i))) for i in range(6)]
early = write("early.pcap", early_recs)
cfg = os.path.join(TMP, "stats.yaml")
with open(cfg, "w") as f:
    f.write("output:\n  stats_interval: 600\n")
os.chmod(cfg, 0o600)
alone = analyze(early, "--config", cfg)
ev = analyze([late, early], "--config", cfg)
udp_flows = [f for f in of_type(ev, "flow") if f["dst_port"] == 6000]
c.eq("late then early file: the early flow times out between its packets 500 s apart (UDP 120 s)",
     len(udp_flows), 6)
c.eq("late then early file: the late flow ends once early time passes its timeout too",
     [f["flow"]["state"] for f in of_type(ev, "flow") if f["dst_ip"] == "10.0.0.9"], ["idle_timeout"])
c.eq("late then early file: time.backwards", counters(ev).get("time.backwards"), 1)
c.eq("late then early file: periodic stats as for the early file alone",
     len(of_type(ev, "stats")), len(of_type(alone, "stats")))
c.eq("early file alone: time never went back", counters(alone).get("time.backwards", 0), 0)
# Packets a little out of order (a merged capture) are no jump back.
ev = analyze(write("jitter.pcap", [(T0 + 0.5, eth4(S, D, 17, udp(S, D, 5000, 6001, b"a"))),
                                   (T0 + 0.1, eth4(S, D, 17, udp(S, D, 5000, 6001, b"b")))]))
c.eq("reordered by 0.4 s: not counted", counters(ev).get("time.backwards", 0), 0)

# ------------------------------------------------ a flood of malformed packets
bad = tcp(S, D, 1000, 104, 1, 0, ACK)
bad = bad[:12] + bytes([2 << 4]) + bad[13:]  # data offset 2 (8 bytes): less than a TCP header
recs = [(T0 + i * 1e-4, eth4("10.6.6.6", D, 6, bad)) for i in range(1000)]
recs += [(T0 + 61 + i * 1e-4, eth4("10.6.6.6", D, 6, bad)) for i in range(150)]
ev = analyze(write("bad_offset_flood.pcap", recs))
an = [e for e in of_type(ev, "anomaly") if e["anomaly"]["name"] == "tcp.bad_data_offset"]
c.eq("1000 + 150 bad TCP offsets a minute apart: 100 anomaly events in each minute", len(an), 200)
cn = counters(ev)
c.eq("flood: every one counted by name", cn.get("anomaly.decode.tcp.bad_data_offset"), 1150)
c.eq("flood: the others counted as suppressed", cn.get("anomaly.decode.suppressed"), 950)
c.eq("flood: every one counted malformed", cn.get("decode.malformed"), 1150)

# ------------------------------------------------ fragments over two files, and left at the end
pay = udp(S, D, 7000, 2575, b"MSH|^~\\&|" + b"A" * 600)
fa = (T0, eth4(S, D, 17, pay[:304], ident=5, flags=0x2000))
fb = (T0 + 0.001, eth4(S, D, 17, pay[304:], ident=5, flags=304 // 8))
ev = analyze([write("frag_a.pcap", [fa]), write("frag_b.pcap", [fb])])
c.eq("a datagram split over two files is reassembled",
     [f["flow"]["payload_bytes_toserver"] for f in of_type(ev, "flow") if f["dst_port"] == 2575], [609])
ev = analyze(write("frag_a_only.pcap", [fa]))
c.eq("a datagram still waiting at the end of the input is counted", counters(ev).get("ip.fragments.incomplete"), 1)

# ------------------------------------------------ IP length 0: segmentation offload on the capturing host
syn4 = eth4(S, D, 6, tcp(S, D, 40001, 104, 1, 0, SYN))
syn4 = syn4[:16] + b"\0\0" + syn4[18:]  # total length 0
s6, d6 = "2001:db8::1", "2001:db8::2"
syn6 = eth6(s6, d6, 6, tcp(s6, d6, 40002, 104, 1, 0, SYN))
syn6 = syn6[:18] + b"\0\0" + syn6[20:]  # payload length 0
ev = analyze(write("zero_length.pcap", [(T0, syn4), (T0 + 0.001, syn6)]))
c.eq("IPv4 total length 0: the SYN makes its flow", len([f for f in of_type(ev, "flow") if f["src_port"] == 40001]), 1)
c.eq("IPv6 payload length 0: the SYN makes its flow", len([f for f in of_type(ev, "flow") if f["src_port"] == 40002]), 1)
c.eq("IP length 0: no anomaly", [e["anomaly"]["name"] for e in of_type(ev, "anomaly")], [])
cn = counters(ev)
c.eq("IP length 0: counted", (cn.get("ipv4.zero_total_length"), cn.get("ipv6.zero_payload_length")), (1, 1))

# ------------------------------------------------ fragments cut by the snap length: alike in IPv4 and IPv6
recs = []
pay4 = udp(S, D, 7000, 7001, b"Q" * 1200)
recs.append((T0 + 0.001, eth4(S, D, 17, pay4[:504], ident=9, flags=0x2000)))
recs.append((T0 + 0.002, eth4(S, D, 17, pay4[504:], ident=9, flags=504 // 8)))
u6 = udp(s6, d6, 7002, 7003, b"R" * 1200)
recs.append((T0 + 0.003, eth6(s6, d6, 44, bytes([17, 0]) + struct.pack("!HI", 1, 77) + u6[:504])))
recs.append((T0 + 0.004, eth6(s6, d6, 44, bytes([17, 0]) + struct.pack("!HI", 504, 77) + u6[504:])))
recs = [(t, fr, len(fr)) for t, fr in recs]
ev = analyze(write("snap_fragments.pcap", recs, snaplen=600))
c.eq("fragments cut by the snap length: no anomaly", [e["anomaly"]["name"] for e in of_type(ev, "anomaly")], [])
c.eq("fragments cut by the snap length: no datagram made of missing bytes",
     [f["dst_port"] for f in of_type(ev, "flow") if f["proto"] == "udp"], [])
cn = counters(ev)
c.eq("fragments cut by the snap length: counted, IPv4 and IPv6 alike", cn.get("ip.fragments.truncated"), 2)
c.eq("fragments cut by the snap length: not malformed", cn.get("decode.malformed", 0), 0)

# ------------------------------------------------ an anomaly before the transport header has no ports
lie = eth4(S, D, 6, tcp(S, D, 40000, 104, 1, 0, ACK))
lie = lie[:16] + struct.pack("!H", 200) + lie[18:]  # total length beyond the whole packet
ev = analyze(write("ip_anomaly.pcap", [(T0, lie), (T0 + 0.001, eth4(S, D, 6, bad))]))
an = {e["anomaly"]["name"]: e for e in of_type(ev, "anomaly")}
e = an.get("ipv4.total_length_beyond_packet")
c.true("IP-layer anomaly: reported", e is not None)
if e:
    c.eq("IP-layer anomaly: addresses and protocol, no ports",
         (e.get("src_ip"), e.get("dst_ip"), e.get("proto"), "src_port" in e, "dst_port" in e),
         (S, D, "tcp", False, False))
e = an.get("tcp.bad_data_offset")
if e:
    c.eq("TCP anomaly: ports as decoded", (e.get("src_port"), e.get("dst_port")), (1000, 104))

# ------------------------------------------------ QinQ: the inner tag is part of the flow
# Two customer VLANs behind one service tag, the same 5-tuple in both: two flows (they were one,
# with a false overlap conflict), each naming both tags; a single tag stays one `vlan` member.
def qinq(tags, frame_l3, tpids=(0x88A8, 0x8100)):
    b = MAC_B + MAC_A
    for tp, t in zip(tpids, tags):
        b += struct.pack("!HH", tp, t)
    return b + struct.pack("!H", 0x0800) + frame_l3


recs = []
for k, (seq, ack, fl, data) in enumerate([(100, 0, SYN, b""), (101, 0, ACK | PSH, None)]):
    for inner, text in ((10, b"AAAA"), (20, b"BBBBBBBB")):
        payload = b"" if data == b"" else text
        recs.append((T0 + k * 0.01 + inner * 0.0001,
                     qinq((100, inner), ipv4(S, D, 6, tcp(S, D, 40000, 104, seq, ack, fl, payload)))))
recs.append((T0 + 0.1, qinq((30,), ipv4(S, D, 17, udp(S, D, 5000, 6000, b"x")), tpids=(0x8100,))))
# A priority tag (VLAN id 0) over a customer tag: `vlan` 0 is written beside `vlan_inner`.
recs.append((T0 + 0.2, qinq((0, 40), ipv4(S, D, 17, udp(S, D, 5001, 6001, b"y")))))
ev = analyze(write("qinq_same_tuple.pcap", recs))
fl = of_type(ev, "flow")
c.eq("QinQ: the same 5-tuple behind two inner tags is two flows",
     sorted((f.get("vlan"), f.get("vlan_inner"), f["flow"]["payload_bytes_toserver"]) for f in fl if f["proto"] == "tcp"),
     [(100, 10, 4), (100, 20, 8)])
c.eq("QinQ: two flow ids", len({f["flow_id"] for f in fl if f["proto"] == "tcp"}), 2)
c.eq("QinQ: no overlap conflict", [e["anomaly"]["name"] for e in of_type(ev, "anomaly")], [])
c.eq("one tag: vlan only; a priority tag over an inner one: vlan 0 and vlan_inner",
     sorted((f.get("vlan", -1), f.get("vlan_inner", -1)) for f in fl if f["proto"] == "udp"), [(0, 40), (30, -1)])

# ------------------------------------------------ TCP headers cut by the snap length (68 over IPv6)
# 14 of the 20 TCP header bytes: ports, sequence numbers and flags make the flow; no anomaly.
from pcapwrite import FIN  # noqa: E402
recs = []
seqs = [(True, 100, 0, SYN, b""), (False, 500, 101, SYN | ACK, b""), (True, 101, 501, ACK, b""),
        (True, 101, 501, PSH | ACK, b"D" * 100), (False, 501, 201, ACK, b""),
        (True, 201, 501, FIN | ACK, b""), (False, 501, 202, FIN | ACK, b""), (True, 202, 502, ACK, b"")]
for k, (fwd, sq, ak, fl, data) in enumerate(seqs):
    a, b, pa, pb = (s6, d6, 40000, 104) if fwd else (d6, s6, 104, 40000)
    fr = eth6(a, b, 6, tcp(a, b, pa, pb, sq, ak, fl, data))
    recs.append((T0 + k * 0.001, fr, len(fr)))
ev = analyze(write("snap68_v6.pcap", recs, snaplen=68))
fl = of_type(ev, "flow")
c.eq("TCP header cut by the snap length: one closed flow from ports, sequence numbers and flags",
     [(f["src_port"], f["dst_port"], f["flow"]["state"], f["flow"]["pkts_toserver"], f["flow"]["pkts_toclient"]) for f in fl],
     [(40000, 104, "closed", 5, 3)])
c.eq("TCP header cut by the snap length: no anomaly", [e["anomaly"]["name"] for e in of_type(ev, "anomaly")], [])
cn = counters(ev)
c.eq("TCP header cut by the snap length: counted, not malformed",
     (cn.get("tcp.truncated_header"), cn.get("decode.malformed", 0)), (8, 0))

c.done()
