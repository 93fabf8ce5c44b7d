#!/usr/bin/python3
"""`medmon analyze --workers N` sends every IP fragment to the worker of its datagram's flow: on
the fragment captures (pcaps/core/README.md) 2 and 3 workers write the same events as one, stats
aside. Events with the same time may merge in another order, so the lines are compared sorted;
their content must be identical. The fragment counters of the workers add up to one pipeline's.

fragments_first_last.pcap sends first fragments last (TCP, UDP, ICMP echo, IPv6 TCP), so the
reader holds the others until the first comes; two datagrams never get their first fragment (one
past the fragment timeout, one at the end of the capture).

Captures written here: datagrams whose first fragment ends before the ports (IPv6 destination
options after the fragment header) join their flows; an IPv4 identification used again by another
flow of the same hosts, its later fragment first, goes to the new datagram's flow; a datagram open
while 5000 others are made whole keeps its route; fragments held across a merge epoch, or to the
end of the input, leave the output and the flows' timeouts as with one worker.

The workers make one sensor: the caps over all flows (flow table, reassembly memcap) hold for the
process, not per worker; time going back in the input is counted once; a worker's flows time out
with the input's packet time even when the later packets all go to other workers; periodic
`stats` are one event for all workers, as with one. These use captures written here.
"""
import json
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, pcap, run  # noqa: E402
from pcapwrite import ACK, PSH, SYN, ether, ipv4, ipv6, tcp, udp, write_pcap  # noqa: E402

c = Checker("core_workers")
CAPTURES = ("ipv4_fragments.pcap", "ipv6_ext_headers.pcap", "fragments_first_last.pcap")
FRAGMENT_COUNTERS = ("ip.fragments.seen", "ip.fragments.reassembled", "ip.fragments.timeout")


def analyze(name, workers):
    """(sorted non-stats lines, stats counters)."""
    _, out, _ = run(["analyze", pcap("core", name), "--out", "-", "-q", "--workers", str(workers)])
    lines = [line for line in out.splitlines() if line.strip()]
    stats = [json.loads(line)["stats"] for line in lines if '"event_type":"stats"' in line]
    c.eq(f"{name} with {workers} workers: one stats event", len(stats), 1)
    events = sorted(line for line in lines if '"event_type":"stats"' not in line)
    return events, (stats[0]["counters"] if stats else {})


results = {(name, n): analyze(name, n) for name in CAPTURES for n in (1, 2, 3)}
for name in CAPTURES:
    one, one_counters = results[name, 1]
    c.true(f"{name}: flows with one worker", any('"event_type":"flow"' in line for line in one))
    for n in (2, 3):
        many, counters = results[name, n]
        missing = [line for line in one if line not in many]
        extra = [line for line in many if line not in one]
        c.true(f"{name}: {n} workers write the events of one (missing {missing[:2]}, extra {extra[:2]})",
               many == one)
        for k in FRAGMENT_COUNTERS:
            c.eq(f"{name}: {k} with {n} workers", counters.get(k), one_counters.get(k))

# The held fragments: 2 + 2 + 1 + 1 wait for a first fragment that comes, 2 + 2 for one that does not.
events, counters = results["fragments_first_last.pcap", 2]
c.eq("fragments_first_last: fragments held", counters.get("workers.fragments.held"), 10)
c.eq("fragments_first_last: held fragments never matched", counters.get("workers.fragments.unmatched"), 4)
c.eq("fragments_first_last: the held one past the timeout timed out in its worker",
     counters.get("ip.fragments.timeout"), 1)

# The flows of the whole conversations, each with all its packets (a misrouted fragment makes a
# flow of its own and takes a packet from the real one).
flows = [json.loads(line) for line in events if '"event_type":"flow"' in line]
by_port = {(f["proto"], f["src_port"]): f for f in flows}
c.eq("fragments_first_last: flows", sorted(by_port),
     sorted([("tcp", 40101), ("udp", 40102), ("icmp", 0x0C03), ("tcp", 40104), ("udp", 40106)]))
for key, to_server, to_client in ((("tcp", 40101), 6, 3), (("udp", 40102), 1, 1), (("icmp", 0x0C03), 1, 1),
                                  (("tcp", 40104), 5, 3)):
    f = by_port.get(key, {}).get("flow", {})
    c.eq(f"fragments_first_last: {key} packets to the server", f.get("pkts_toserver"), to_server)
    c.eq(f"fragments_first_last: {key} packets to the client", f.get("pkts_toclient"), to_client)

tmp = tempfile.mkdtemp(prefix="medmon-workers-")
MAC_A, MAC_B = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"


def frame(src, dst, proto, l4):
    return ether(MAC_B, MAC_A, ipv4(src, dst, proto, l4))


def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload=b""):
    return frame(src, dst, 6, tcp(src, dst, sport, dport, seq, ack, flags, payload))


def udp_frame(src, dst, sport, dport, payload):
    return frame(src, dst, 17, udp(src, dst, sport, dport, payload))


def handshake(t, cli, srv, cport, sport):
    """(sec, usec, frame) of a TCP handshake at t seconds; the client's next sequence number is 1001."""
    usec = int(t * 1e6)
    return [(usec, tcp_frame(cli, srv, cport, sport, 1000, 0, SYN)),
            (usec + 1000, tcp_frame(srv, cli, sport, cport, 5000, 1001, SYN | ACK)),
            (usec + 2000, tcp_frame(cli, srv, cport, sport, 1001, 5001, ACK))]


def write(name, records, yaml=None):
    """Writes records ((usec, frame), any order given) and a config; returns their paths."""
    path = os.path.join(tmp, name + ".pcap")
    write_pcap(path, [(u // 1000000, u % 1000000, f) for u, f in records])
    if yaml is None:
        return path
    cfg = os.path.join(tmp, name + ".yaml")
    with open(cfg, "w") as f:
        f.write(yaml)
    return path, cfg


def events_of(files, workers, *extra):
    _, out, _ = run(["analyze", *files, "--out", "-", "-q", "--workers", str(workers), *extra])
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def final_counters(events):
    stats = [e["stats"] for e in events if e["event_type"] == "stats"]
    return stats[-1]["counters"] if stats else {}


# The reassembly memcap over all workers: 200 connections each queue 1000 bytes behind a hole.
records = []
for i in range(200):
    cli = "10.3.%d.1" % (i // 100)
    records += handshake(i * 0.01, cli, "10.3.0.2", 42000 + i, 8080)
    records.append((int((i * 0.01 + 0.005) * 1e6), tcp_frame(cli, "10.3.0.2", 42000 + i, 8080, 1101, 5001, PSH | ACK,
                                                             b"z" * 1000)))
memcap_pcap, memcap_cfg = write("memcap", records, "reassembly:\n  memcap: 65536\n")
for n in (1, 2, 4):
    counters = final_counters(events_of([memcap_pcap], n, "-c", memcap_cfg))
    c.true(f"memcap with {n} workers: the memory peak ({counters.get('tcp.reassembly.memory_peak')}) within 65536",
           0 < counters.get("tcp.reassembly.memory_peak", 0) <= 65536)
    c.true(f"memcap with {n} workers: the memcap was hit ({counters.get('tcp.reassembly.global_memcap_hits')})",
           counters.get("tcp.reassembly.global_memcap_hits", 0) > 0)

# The flow table over all workers: 20 SYNs from 20 sources, at most 5 flows at once.
records = [(int((10 + i * 0.01) * 1e6), tcp_frame("10.9.9.%d" % (i + 1), "10.2.0.2", 5000 + i, 80, i * 1000, 0, SYN))
           for i in range(20)]
flood_pcap, flood_cfg = write("max_flows", records, "flows:\n  max_flows: 5\n")
for n in (1, 2, 4):
    counters = final_counters(events_of([flood_pcap], n, "-c", flood_cfg))
    c.true(f"max_flows with {n} workers: peak_active {counters.get('flows.peak_active')} within 5",
           0 < counters.get("flows.peak_active", 0) <= 5)
    c.eq(f"max_flows with {n} workers: evicted", counters.get("flows.evicted", 0) >= 15, True)

# Time going back is a property of the input: counted once, whatever the number of workers.
# Two files given out of time order, each with 8 flows (spread over the workers).
later = write("later", [((100 + i) * 1000000, udp_frame("10.0.1.1", "10.0.1.2", 2000 + p, 53, b"q"))
                        for i in range(5) for p in range(8)])
earlier = write("earlier", [(i * 1000000, udp_frame("10.0.1.1", "10.0.1.2", 2000 + p, 53, b"q"))
                            for i in range(5) for p in range(8)])
backwards = {n: final_counters(events_of([later, earlier], n)).get("time.backwards") for n in (1, 2, 3)}
c.eq("time.backwards with one worker", backwards[1], 1)
c.eq("time.backwards counted once with 2 and 3 workers", [backwards[2], backwards[3]], [backwards[1]] * 2)

# A worker's flows time out with the input's time: an HTTP connection, then 1000 s later UDP
# packets of a flow that may hash to another worker. Over several ports one of them does.
for port in range(1000, 1006):
    cs = handshake(0, "10.0.0.1", "10.0.0.2", 40000, 80)
    cs.append((10000, tcp_frame("10.0.0.1", "10.0.0.2", 40000, 80, 1001, 5001, PSH | ACK, b"GET / HTTP/1.0\r\n\r\n")))
    cs.append((20000, tcp_frame("10.0.0.2", "10.0.0.1", 80, 40000, 5001, 1020, PSH | ACK, b"HTTP/1.0 200 OK\r\n\r\n")))
    cs += [((1000 + i) * 1000000, udp_frame("10.0.0.3", "10.0.0.4", port, 53, b"x" * 20)) for i in range(20)]
    path = write(f"idle_{port}", cs)
    for n in (1, 2):
        http = [e for e in events_of([path], n) if e["event_type"] == "flow" and e["dst_port"] == 80]
        c.eq(f"idle timeout, UDP port {port}, {n} workers: the HTTP flow's end",
             [e["flow"]["state"] for e in http], ["idle_timeout"])

# Periodic stats: one event for all workers, as one pipeline writes it (4 UDP flows, a packet of
# each every 10 s, stats every 60 s of packet time).
records = [(int((i + p / 10000) * 1e6), udp_frame("10.0.0.3", "10.0.0.4", p, 53, b"x" * 20))
           for i in range(0, 300, 10) for p in range(1000, 1004)]
st_pcap, st_cfg = write("stats_interval", records, "output:\n  stats_interval: 60\n")
periodic = {}
for n in (1, 2, 3):
    stats = [e for e in events_of([st_pcap], n, "-c", st_cfg) if e["event_type"] == "stats"]
    periodic[n] = [(e["ts"], e["stats"]["packets"], e["stats"]["flows"], e["stats"]["flows_active"],
                    "worker" in e["stats"]) for e in stats]
c.true(f"periodic stats with one worker ({periodic[1]})", len(periodic[1]) > 2)
for n in (2, 3):
    c.eq(f"periodic stats with {n} workers as with one", periodic[n], periodic[1])
# IPv6 fragments whose later fragment names another Next Header than the first (only the first's
# counts, RFC 8200 4.5; here "no next header", not a transport), the later one first: it waits for
# the first, and they make one datagram in one worker, as with one pipeline.
S6, D6 = "2001:db8::1", "2001:db8::2"
u6 = udp(S6, D6, 7777, 8888, b"B" * 64)


def frag6(next_header, off, more, data):
    fh = struct.pack("!BBHI", next_header, 0, off | (1 if more else 0), 4242)
    return ether(MAC_B, MAC_A, ipv6(S6, D6, 44, fh + data), 0x86DD)


nh_pcap = write("ipv6_nh", [(1000, frag6(59, 32, False, u6[32:])), (2000, frag6(17, 0, True, u6[:32]))])
for n in (1, 2, 3):
    flows = [(e["src_port"], e["dst_port"], e["proto"], e["flow"]["payload_bytes_toserver"])
             for e in events_of([nh_pcap], n) if e["event_type"] == "flow"]
    c.eq(f"IPv6 fragments of other Next Headers, {n} workers: one UDP datagram", flows, [(7777, 8888, "udp", 64)])


def same_as_one_worker(what, path):
    """The events of 2 and 3 workers are those of one (stats aside, sorted)."""
    def lines(n):
        _, out, _ = run(["analyze", path, "--out", "-", "-q", "--workers", str(n)])
        return sorted(line for line in out.splitlines() if line.strip() and '"event_type":"stats"' not in line)
    one = lines(1)
    c.true(f"{what}: flows with one worker", any('"event_type":"flow"' in line for line in one))
    for n in (2, 3):
        many = lines(n)
        missing = [line for line in one if line not in many]
        c.true(f"{what}: {n} workers write the events of one (missing {missing[:1]})", many == one)


def dstopts(next_header, length):
    """An IPv6 destination options header of `length` bytes (padding only)."""
    return bytes([next_header, length // 8 - 1, 1, length - 4]) + bytes(length - 4)


def v6_frame(src, dst, next_header, l4):
    return ether(MAC_B, MAC_A, ipv6(src, dst, next_header, l4), 0x86DD)


def v6_fragment(src, dst, ident, off, more, next_header, data):
    fh = struct.pack("!BBHI", next_header, 0, off | (1 if more else 0), ident)
    return ether(MAC_B, MAC_A, ipv6(src, dst, 44, fh + data), 0x86DD)


# Fragmented datagrams whose first fragment ends before the ports: destination options after the
# fragment header fill it, the UDP or TCP header is in the second. The reader makes the datagram
# whole before it sends it on: it joins its flow's other packets in one worker (8 flows: some hash
# away from their datagram's address pair).
records, t = [], 1000000
for i in range(8):
    cli, srv, cp, sp = "2001:db8::31", "2001:db8::32", 40000 + i, 7000 + i
    records += [(t, v6_frame(cli, srv, 17, udp(cli, srv, cp, sp, b"request"))),
                (t + 1000, v6_frame(srv, cli, 17, udp(srv, cli, sp, cp, b"response")))]
    body = dstopts(17, 48) + udp(cli, srv, cp, sp, b"B" * 200)
    records += [(t + 2000, v6_fragment(cli, srv, 100 + i, 0, True, 60, body[:48])),
                (t + 3000, v6_fragment(cli, srv, 100 + i, 48, False, 60, body[48:]))]
    cli, srv, cp, sp = "2001:db8::41", "2001:db8::42", 41000 + i, 8000 + i
    records += [(t + 4000, v6_frame(cli, srv, 6, tcp(cli, srv, cp, sp, 1000, 0, SYN))),
                (t + 5000, v6_frame(srv, cli, 6, tcp(srv, cli, sp, cp, 5000, 1001, SYN | ACK))),
                (t + 6000, v6_frame(cli, srv, 6, tcp(cli, srv, cp, sp, 1001, 5001, ACK)))]
    body = dstopts(6, 56) + tcp(cli, srv, cp, sp, 1001, 5001, PSH | ACK, b"x" * 300)
    # The second fragment first: it waits with the first until the datagram is whole.
    records += [(t + 7000, v6_fragment(cli, srv, 200 + i, 56, False, 60, body[56:])),
                (t + 8000, v6_fragment(cli, srv, 200 + i, 0, True, 60, body[:56])),
                (t + 9000, v6_frame(srv, cli, 6, tcp(srv, cli, sp, cp, 5001, 1301, ACK)))]
    t += 10000
same_as_one_worker("ports in the second fragment", write("ports_in_second", records))

# The same over VXLAN: the outer datagram's first fragment (48 bytes) ends inside the inner IPv4
# header, so only the whole datagram names the inner flow.
IN_A, IN_B = b"\x02\0\0\0\1\x01", b"\x02\0\0\0\1\x02"


def vxlan(inner_src, inner_dst, inner_sport, inner_dport, payload, outer_sport):
    inner = ether(IN_B, IN_A, ipv4(inner_src, inner_dst, 17, udp(inner_src, inner_dst, inner_sport, inner_dport, payload)))
    return udp("172.16.0.1", "172.16.0.2", outer_sport, 4789, struct.pack("!II", 0x08000000, 42 << 8) + inner)


records, t = [], 1000000
for i in range(8):
    cp, sp = 45000 + i, 9000 + i
    dg = vxlan("192.168.0.1", "192.168.0.2", cp, sp, b"P" * 300, 50200 + i)
    records += [(t, frame("172.16.0.1", "172.16.0.2", 17, vxlan("192.168.0.1", "192.168.0.2", cp, sp, b"q", 50000 + i))),
                (t + 1000, frame("172.16.0.2", "172.16.0.1", 17, vxlan("192.168.0.2", "192.168.0.1", sp, cp, b"r", 50100 + i))),
                (t + 2000, ether(MAC_B, MAC_A, ipv4("172.16.0.1", "172.16.0.2", 17, dg[:48], ident=300 + i, flags=0x2000))),
                (t + 3000, ether(MAC_B, MAC_A, ipv4("172.16.0.1", "172.16.0.2", 17, dg[48:], ident=300 + i, flags=6)))]
    t += 4000
same_as_one_worker("VXLAN inner headers in the second fragment", write("vxlan_inner_in_second", records))

# An IPv4 identification used again, within the fragment timeout, by another flow of the same
# hosts, whose later fragment comes first: it belongs to the new datagram, not to the flow of the
# one made whole before.
records, t = [], 1000000
for i in range(8):
    cp, sp = 30000 + i, 6000 + i
    dg = udp("10.1.0.1", "10.1.0.2", cp, sp, b"D" * 100)
    first = (ether(MAC_B, MAC_A, ipv4("10.1.0.1", "10.1.0.2", 17, dg[:64], ident=7, flags=0x2000)))
    last = (ether(MAC_B, MAC_A, ipv4("10.1.0.1", "10.1.0.2", 17, dg[64:], ident=7, flags=64 // 8)))
    records += [(t, udp_frame("10.1.0.1", "10.1.0.2", cp, sp, b"hello"))]
    records += [(t + 1000, first), (t + 2000, last)] if i % 2 == 0 else [(t + 1000, last), (t + 2000, first)]
    records += [(t + 3000, udp_frame("10.1.0.2", "10.1.0.1", sp, cp, b"ok"))]
    t += 4000
same_as_one_worker("identification used again", write("ident_reuse", records))

# A datagram that stays open while 5000 others are made whole: the reader keeps no route for a
# whole datagram, so the open one's route stays (its table holds 4096).
dg = udp("10.2.0.1", "10.2.0.2", 33333, 4444, b"A" * 100)
records = [(1000000, udp_frame("10.2.0.1", "10.2.0.2", 33333, 4444, b"start")),
           (1000100, ether(MAC_B, MAC_A, ipv4("10.2.0.1", "10.2.0.2", 17, dg[:64], ident=1, flags=0x2000)))]
for i in range(5000):
    cli = "10.3.%d.%d" % (i // 250, i % 250 + 1)
    d2 = udp(cli, "10.2.0.2", 20000 + i % 1000, 53, b"Q" * 40)
    records += [(1000200 + 200 * i, ether(MAC_B, MAC_A, ipv4(cli, "10.2.0.2", 17, d2[:24], ident=i, flags=0x2000))),
                (1000300 + 200 * i, ether(MAC_B, MAC_A, ipv4(cli, "10.2.0.2", 17, d2[24:], ident=i, flags=3)))]
records += [(3000000, ether(MAC_B, MAC_A, ipv4("10.2.0.1", "10.2.0.2", 17, dg[64:], ident=1, flags=8))),
            (3000100, udp_frame("10.2.0.2", "10.2.0.1", 4444, 33333, b"done"))]
same_as_one_worker("a datagram open while 5000 others complete", write("long_open", records))

# A fragment that ends past 64 KiB, its first fragment still to come after the next merge epoch
# (2^16 packets): its anomaly is in its place, before the flow a tick ended after it, as with one.
records = [(0, ether(MAC_B, MAC_A, ipv4("10.5.0.1", "10.5.0.2", 17, b"Z" * 16, ident=9, flags=0x2000 | 65528 // 8))),
           (100000, udp_frame("10.6.0.1", "10.6.0.2", 1000, 2000, b"a"))]
filler = udp_frame("10.7.0.1", "10.7.0.2", 3000, 4000, b"b")
records += [(3000000 + 10 * i, filler) for i in range(70000)]
first = udp("10.5.0.1", "10.5.0.2", 5000, 6000, b"F" * 40)[:24]
records.append((5000000, ether(MAC_B, MAC_A, ipv4("10.5.0.1", "10.5.0.2", 17, first, ident=9, flags=0x2000))))
beyond_pcap, beyond_cfg = write("beyond_64k", records, "flows:\n  udp_idle_timeout: 2\n")
in_order = {}
for n in (1, 2, 3):
    _, out, _ = run(["analyze", beyond_pcap, "-c", beyond_cfg, "--out", "-", "-q", "--workers", str(n)])
    in_order[n] = [line for line in out.splitlines() if line.strip() and '"event_type":"stats"' not in line]
c.true("beyond 64 KiB: the anomaly comes first with one worker",
       bool(in_order[1]) and '"event_type":"anomaly"' in in_order[1][0])
for n in (2, 3):
    c.true(f"beyond 64 KiB: {n} workers write the events of one in its order", in_order[n] == in_order[1])


def same_order_as_one_worker(what, path, cfg):
    def lines(n):
        _, out, _ = run(["analyze", path, "-c", cfg, "--out", "-", "-q", "--workers", str(n)])
        return [line for line in out.splitlines() if line.strip() and '"event_type":"stats"' not in line]
    one = lines(1)
    c.true(f"{what}: events with one worker", bool(one))
    for n in (2, 3):
        c.true(f"{what}: {n} workers write the events of one in its order", lines(n) == one)


# Two fragments with the same bytes' offsets and different contents, their first fragment after
# the merge epoch: the overlap's anomaly keeps its place.
records = [(0, ether(MAC_B, MAC_A, ipv4("10.5.0.1", "10.5.0.2", 17, b"Z" * 16, ident=9, flags=0x2000 | 3))),
           (10, ether(MAC_B, MAC_A, ipv4("10.5.0.1", "10.5.0.2", 17, b"Y" * 16, ident=9, flags=0x2000 | 3))),
           (100000, udp_frame("10.6.0.1", "10.6.0.2", 1000, 2000, b"a"))]
records += [(3000000 + 10 * i, filler) for i in range(70000)]
records.append((5000000, ether(MAC_B, MAC_A, ipv4("10.5.0.1", "10.5.0.2", 17, first, ident=9, flags=0x2000))))
same_order_as_one_worker("an overlap held over the merge epoch", write("overlap_epoch", records), beyond_cfg)

# A fragment whose first fragment never comes, held until the end of the input, while UDP flows
# of the same hosts go on for 3 s (idle timeout 2 s): handed on at the end, it does not take its
# worker's clock back, which made those flows end as idle_timeout instead of end_of_input.
records = [(0, ether(MAC_B, MAC_A, ipv4("10.5.0.1", "10.5.0.2", 17, b"Z" * 16, ident=9, flags=0x2000 | 3)))]
records += [(100000 + k * 100000 + p, udp_frame("10.5.0.1", "10.5.0.2", 7000 + p, 8000, b"x"))
            for k in range(31) for p in range(8)]
same_order_as_one_worker("a fragment held to the end", write("held_to_end", records), beyond_cfg)

# A fragment held at 1000 s, then the input's time goes back to 50 s, where its first fragment
# comes: handed on then, it does not move its worker's clock forward to 1000 s again, which ended
# the flows of that worker as idle_timeout instead of end_of_input.
dgram = udp("10.7.0.1", "10.7.0.2", 5000, 6000, b"x" * 64)
records = [(1000000000, udp_frame("10.7.1.%d" % (i + 1), "10.7.2.1", 1000 + i, 53, b"q")) for i in range(8)]
records.append((1000000500, ether(MAC_B, MAC_A, ipv4("10.7.0.1", "10.7.0.2", 17, dgram[32:], ident=77, flags=4))))
records += [(50000000, udp_frame("10.7.3.%d" % (i + 1), "10.7.2.1", 2000 + i, 53, b"q")) for i in range(8)]
records.append((51000000, ether(MAC_B, MAC_A, ipv4("10.7.0.1", "10.7.0.2", 17, dgram[:32], ident=77, flags=0x2000))))
records += [(52000000, udp_frame("10.7.3.%d" % (i + 1), "10.7.2.1", 2000 + i, 53, b"r")) for i in range(8)]
same_as_one_worker("a fragment held across time going back", write("held_time_back", records))
# Two held fragments whose overlap differs, then time going back before their first fragment:
# the overlap's anomaly keeps its own time.
records = [(1000000000, ether(MAC_B, MAC_A, ipv4("10.7.0.1", "10.7.0.2", 17, b"Z" * 16, ident=9, flags=0x2000 | 3))),
           (1000000010, ether(MAC_B, MAC_A, ipv4("10.7.0.1", "10.7.0.2", 17, b"Y" * 16, ident=9, flags=0x2000 | 3))),
           (50000000, udp_frame("10.7.3.1", "10.7.2.1", 1, 53, b"q")),
           (51000000, ether(MAC_B, MAC_A, ipv4("10.7.0.1", "10.7.0.2", 17, dgram[:24], ident=9, flags=0x2000)))]
same_as_one_worker("an overlap held across time going back", write("overlap_time_back", records))

def fragment_counters_as_one_worker(what, path):
    """The ip.fragments.* counters of 2 and 3 workers are those of one (and the events too)."""
    def counters(n):
        return {k: v for k, v in final_counters(events_of([path], n)).items() if k.startswith("ip.fragments.")}
    one = counters(1)
    c.true(f"{what}: datagrams timed out with one worker ({one})", one.get("ip.fragments.timeout", 0) > 0)
    for n in (2, 3):
        c.eq(f"{what}: ip.fragments counters with {n} workers", counters(n), one)
    same_as_one_worker(what, path)


# Datagrams whose middle fragment never comes (4 flows, spread over the workers), then packets of
# another flow every second (each a check of timeouts, at .5 s), and 30 s after the datagrams a
# fragment of one of the flows, between two checks, before the input ends. One pipeline's fragment
# table times its datagrams out whenever it takes a fragment: the three datagrams past their
# timeout by then are `ip.fragments.timeout`, the fourth `incomplete`. Each worker's table did so
# only with its own fragments, and called the others' datagrams incomplete.
for v6 in (False, True):
    records = []
    hosts = [("2001:db8::%x" % (i + 1), "2001:db8:1::1") if v6 else ("10.11.0.%d" % (i + 1), "10.12.0.1")
             for i in range(4)]
    for i, (src, dst) in enumerate(hosts):
        dg = udp(src, dst, 40000 + i, 5000 + i, b"M" * 200)
        t = 1000000 + i * 1000
        mk = (lambda d, o, m: v6_fragment(src, dst, 100 + i, o, m, 17, d)) if v6 else \
             (lambda d, o, m: ether(MAC_B, MAC_A, ipv4(src, dst, 17, d, ident=100 + i, flags=(0x2000 if m else 0) | o // 8)))
        records += [(t, (v6_frame(src, dst, 17, udp(src, dst, 40000 + i, 5000 + i, b"hello")) if v6 else
                         udp_frame(src, dst, 40000 + i, 5000 + i, b"hello"))),
                    (t + 100, mk(dg[:64], 0, True)), (t + 200, mk(dg[128:], 128, False))]
    for k in range(2, 31):
        records.append((k * 1000000 + 500000, udp_frame("10.13.0.1", "10.13.0.2", 999, 53, b"tick")))
    src, dst = hosts[0]
    dg = udp(src, dst, 40000, 5000, b"N" * 200)
    records.append((31003000, v6_fragment(src, dst, 200, 0, True, 17, dg[:64]) if v6 else
                    ether(MAC_B, MAC_A, ipv4(src, dst, 17, dg[:64], ident=200, flags=0x2000))))
    fragment_counters_as_one_worker(f"IPv{6 if v6 else 4} middle fragment lost, another worker's fragment later",
                                    write(f"middle_lost_{6 if v6 else 4}", records))

# A SPAN port's copy of a datagram's last fragment after the datagram was made whole: it waits in
# the reader for a first fragment, as one pipeline's table keeps it, until the fragment timeout.
# The route timed out at the packet that also brought a check of timeouts: its fragment reached
# the worker after that check, and the input ended before the next, so it was counted incomplete
# instead of timed out.
for v6 in (False, True):
    records = []
    for i in range(8):
        src, dst = ("2001:db8:7::%x" % (i + 1), "2001:db8:8::1") if v6 else ("10.14.0.%d" % (i + 1), "10.15.0.1")
        plain = (lambda pl: v6_frame(src, dst, 17, udp(src, dst, 40000 + i, 5000 + i, pl))) if v6 else \
                (lambda pl: udp_frame(src, dst, 40000 + i, 5000 + i, pl))
        mk = (lambda d, o, m: v6_fragment(src, dst, 100 + i, o, m, 17, d)) if v6 else \
             (lambda d, o, m: ether(MAC_B, MAC_A, ipv4(src, dst, 17, d, ident=100 + i, flags=(0x2000 if m else 0) | o // 8)))
        dg = udp(src, dst, 40000 + i, 5000 + i, b"M" * 200)
        t = 1000000 + i * 1000
        records += [(t, plain(b"hello")), (t + 100, mk(dg[:104], 0, True)), (t + 200, mk(dg[104:], 104, False)),
                    (t + 300, mk(dg[104:], 104, False))]
        records += [(t + k * 1000000, plain(b"x")) for k in range(1, 32)]
    fragment_counters_as_one_worker(f"IPv{6 if v6 else 4} last fragment twice", write(f"dup_last_{6 if v6 else 4}", records))


# Periodic stats due while fragments wait in the reader for their first fragment (last fragments
# first; one overlaps another with other bytes): the event counts them, and the overlap's anomaly,
# as one pipeline's does, and comes in its place. Only the reader's workers.fragments.* differ.
records = []
for i in range(8):
    src, dst = "10.16.0.%d" % (i + 1), "10.17.0.1"
    dg = udp(src, dst, 40000 + i, 5000 + i, b"M" * 200)
    t = 1000000 + i * 1000
    records += [(t, udp_frame(src, dst, 40000 + i, 5000 + i, b"hello")),
                (t + 100, ether(MAC_B, MAC_A, ipv4(src, dst, 17, dg[104:], ident=100 + i, flags=104 // 8))),
                (t + 12000000, ether(MAC_B, MAC_A, ipv4(src, dst, 17, dg[:104], ident=100 + i, flags=0x2000)))]
    if i == 3:
        records.append((t + 150, ether(MAC_B, MAC_A, ipv4(src, dst, 17, b"Z" * 16, ident=100 + i, flags=0x2000 | 104 // 8))))
    records += [(t + k * 1000000 + 500, udp_frame("10.18.0.1", "10.18.0.2", 1000 + i, 53, b"q")) for k in range(20)]
held_pcap, held_cfg = write("stats_while_held", sorted(records, key=lambda r: r[0]), "output:\n  stats_interval: 5\n")


def without_reader_counters(n):
    lines = []
    for e in events_of([held_pcap], n, "-c", held_cfg):
        if e["event_type"] == "stats":
            e["stats"]["counters"] = {k: v for k, v in e["stats"]["counters"].items() if not k.startswith("workers.")}
        lines.append(json.dumps(e, sort_keys=True))
    return lines


held_one = without_reader_counters(1)
c.true("periodic stats while fragments are held: several with one worker",
       sum('"event_type": "stats"' in line for line in held_one) > 2)
for n in (2, 3):
    held_many = without_reader_counters(n)
    diff = [(a, b) for a, b in zip(held_one, held_many) if a != b]
    c.true(f"periodic stats while fragments are held, {n} workers: the output of one ({diff[:1]})",
           held_many == held_one)


# A fragment that contradicts its datagram's length (a last fragment ending before bytes already
# received): the table drops the datagram, and the next fragment begins another, timed out 30 s
# from it. The reader timed its route out from the dropped datagram's start, and the last
# fragment, coming after that, waited for a first fragment in the reader and made a datagram of
# its own: two timeouts where one pipeline has one.
records = []
for i in range(4):
    src, dst = "10.19.0.%d" % (i + 1), "10.20.0.1"
    dg = udp(src, dst, 40000 + i, 5000 + i, b"M" * 200)
    t = 1000000 + i * 1000
    frag = lambda data, off, more: ether(MAC_B, MAC_A, ipv4(src, dst, 17, data, ident=100 + i,
                                                             flags=(0x2000 if more else 0) | off // 8))
    records += [(t, udp_frame(src, dst, 40000 + i, 5000 + i, b"hello")), (t + 100, frag(dg[:64], 0, True)),
                (t + 200, frag(dg[8:40], 8, False)), (t + 20000000, frag(dg[64:128], 64, True)),
                (t + 31500000, frag(dg[128:], 128, False))]
records += [(k * 1000000 + 500000, udp_frame("10.21.0.1", "10.21.0.2", 999, 53, b"tick")) for k in range(2, 70)]
fragment_counters_as_one_worker("a datagram dropped for its length, then fragments of another",
                                write("length_contradicted", sorted(records, key=lambda r: r[0])))


# Fragments held in the reader for a first fragment that never comes (one from each of 8 hosts),
# then first fragments of other datagrams whose rest never comes, 9 s later: at the next check of
# timeouts 39 s after the held ones, one pipeline times them out. Handed on at their timeout, they
# reached their worker's table after the later datagrams, which it times out oldest first: it
# stopped at a later datagram not yet due and called the held ones incomplete at the end.
records = []
for i in range(8):
    src, dst = "10.22.0.%d" % (i + 1), "10.24.0.1"
    dg = udp(src, dst, 41000 + i, 6000 + i, b"L" * 200)
    records.append((5000000 + i * 1000, ether(MAC_B, MAC_A, ipv4(src, dst, 17, dg[104:], ident=50 + i, flags=104 // 8))))
    src = "10.23.0.%d" % (i + 1)
    dg = udp(src, dst, 42000 + i, 7000 + i, b"F" * 200)
    records.append((14000000 + i * 1000, ether(MAC_B, MAC_A, ipv4(src, dst, 17, dg[:104], ident=60 + i, flags=0x2000))))
records.append((44000000, udp_frame("10.25.0.1", "10.25.0.2", 999, 53, b"tick")))
fragment_counters_as_one_worker("held fragments handed on after later datagrams", write("held_then_later", records))


# A datagram's later fragments first (held), its first fragment 27 s later and a copy of it, which
# routes the datagram afresh; 15 s later two more fragments: one pipeline's table timed the
# datagram out before them, and they begin another there. The reader, still following the bytes
# of the first one, took it for whole at the first of them and sent the second elsewhere: two
# datagrams incomplete where one pipeline has one.
records = []
for i in range(4):
    src, dst = "10.26.0.%d" % (i + 1), "10.27.0.1"
    dg = udp(src, dst, 43000 + i, 8000 + i, b"R" * 200)
    frag = lambda off, end, t: (t, ether(MAC_B, MAC_A, ipv4(src, dst, 17, dg[off:end], ident=70 + i,
                                                            flags=(0x2000 if end < len(dg) else 0) | off // 8)))
    t = 6000000 + i * 1000
    records += [(t - 1000, udp_frame(src, dst, 43000 + i, 8000 + i, b"hi")), frag(144, 184, t), frag(184, 208, t + 100), frag(0, 112, t + 27000000), frag(0, 112, t + 27000100),
                frag(112, 160, t + 42000000), frag(160, 208, t + 42000100)]
fragment_counters_as_one_worker("a datagram timed out, routed afresh by a copy of its first fragment",
                                write("afresh_after_timeout", sorted(records, key=lambda r: r[0])))

c.done()
