#!/usr/bin/python3
"""The Community ID of a flow (--community-id, output.community_id) is the one Wireshark computes
for the flow's packets (tshark's communityid post-dissector), with the default seed and with a
configured one; every event of a flow carries its flow's ID; ICMP flows carry none; without the
option no event has one."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, analyze, of_type, pcap  # noqa: E402

c = Checker("core_community_id")
CAPTURES = [pcap("core", n) for n in ("ethernet_basic.pcap", "vlan_8021q.pcap", "real_http.pcap", "real_dns.pcap",
                                      "real_tls.pcap", "ipv6_ext_headers.pcap", "tcp_port_reuse.pcap")] + \
           [pcap("dicom", "store-explicit.pcap"), pcap("hl7", "mllp-mixed.pcap"), pcap("hl7", "http.pcap")]


def tshark_ids(path, seed):
    """{(src, sport, dst, dport, proto): community id} for every TCP/UDP packet, both directions."""
    p = subprocess.run(["tshark", "--enable-protocol", "communityid", "-o", f"communityid.seed:{seed}", "-r", path,
                        "-T", "fields", "-E", "separator=|", "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst",
                        "-e", "ipv6.dst", "-e", "tcp.srcport", "-e", "udp.srcport", "-e", "tcp.dstport",
                        "-e", "udp.dstport", "-e", "communityid"], capture_output=True, text=True, timeout=300)
    out = {}
    for line in p.stdout.splitlines():
        f = line.split("|")
        if len(f) < 9 or not f[8]:
            continue
        src, dst = f[0] or f[1], f[2] or f[3]
        proto = "tcp" if f[4] else ("udp" if f[5] else None)
        if not proto or "," in src or "," in dst:  # tunnels or ICMP errors quoting a packet: skipped
            continue
        sport, dport = int(f[4] or f[5]), int(f[6] or f[7])
        out[(src, sport, dst, dport, proto)] = f[8].split(",")[-1]
    return out


if not shutil.which("tshark"):
    c.true("tshark is installed (scripts/install-deps.sh --test)", False)
    c.done()

tmp = tempfile.mkdtemp(prefix="medmon-cid-")
try:
    seeded = os.path.join(tmp, "seeded.yaml")
    with open(seeded, "w") as f:
        f.write("output:\n  community_id: true\n  community_id_seed: 7\n")
    os.chmod(seeded, 0o600)
    compared = 0
    for path in CAPTURES:
        name = os.path.basename(path)
        plain = analyze(path)
        c.eq(f"{name}: no community_id without the option", [e for e in plain if "community_id" in e], [])
        for seed, extra in ((0, ["--community-id"]), (7, ["--config", seeded])):
            ev = analyze(path, *extra)
            want = tshark_ids(path, seed)
            by_flow = {}
            for e in ev:
                if "flow_id" in e and "src_ip" in e:
                    by_flow.setdefault(e["flow_id"], set()).add(e.get("community_id"))
            for e in of_type(ev, "flow"):
                got = e.get("community_id")
                if e["proto"] in ("icmp", "icmp6"):
                    c.eq(f"{name}: ICMP flow {e['flow_id']} has no community_id", got, None)
                    continue
                key = (e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"], e["proto"])
                if key in want:
                    compared += 1
                    c.eq(f"{name} seed {seed}: {key} as Wireshark", got, want[key])
                c.eq(f"{name} seed {seed}: every event of flow {e['flow_id']} has its ID", by_flow.get(e["flow_id"]), {got})
    c.true(f"flows compared with Wireshark ({compared})", compared >= 30)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
c.done()
