#!/usr/bin/python3
"""`medmon analyze --workers N` sends every IP fragment to the worker of its datagram's flow: on
the fragment captures (pcaps/core/README.md) 2 and 3 workers write the same events as one, stats
aside. Events with the same time may merge in another order, so the lines are compared sorted;
their content must be identical. The fragment counters of the workers add up to one pipeline's.

fragments_first_last.pcap sends first fragments last (TCP, UDP, ICMP echo, IPv6 TCP), so the
reader holds the others until the first comes; two datagrams never get their first fragment (one
past the fragment timeout, one at the end of the capture).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, pcap, run  # noqa: E402

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
c.done()
