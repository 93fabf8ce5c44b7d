#!/usr/bin/python3
"""medmon's `flow` events against tshark's conversations on the same captures.

For every TCP/UDP conversation tshark reports there must be exactly one medmon flow with the same
endpoints and the same frames and frame bytes in each direction, and no other TCP/UDP flow.
Two views of tshark are used: `-z conv,tcp` / `-z conv,udp` (what a user would run; it prints
large byte counts with units, so bytes are compared within its rounding), and a per-frame dump
grouped by tcp.stream / udp.stream (exact bytes). Skips (exit 0 with a note) when tshark is absent;
scripts/install-deps.sh --test installs it.
"""
import ipaddress
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, analyze, of_type, pcap  # noqa: E402

CAPTURES = [
    "core/ethernet_basic.pcap", "core/vlan_8021q.pcap", "core/vlan_qinq.pcap", "core/pppoe_session.pcap",
    "core/linux_sll.pcap", "core/linux_sll2.pcap", "core/null_loopback.pcap", "core/loop_openbsd.pcap",
    "core/raw_ip.pcap", "core/raw_ipv4.pcap", "core/raw_ipv6.pcap", "core/bigendian_nsec.pcap",
    "core/ipv4_options.pcap", "core/tcp_out_of_order.pcap", "core/tcp_retransmission.pcap",
    "core/tcp_overlap.pcap", "core/tcp_gap.pcap", "core/tcp_midstream.pcap", "core/tcp_seq_wrap.pcap",
    "core/tcp_port_reuse.pcap", "core/udp_icmp.pcap", "core/two_interfaces.pcapng", "core/snaplen_96.pcap",
    "core/real_tls.pcap", "core/real_http.pcap", "core/real_dns.pcap", "core/real_ssh.pcap",
    "demo/demo.pcap",
]
# Shared corpora or other captures can be added at run time: MEDMON_CONV_EXTRA="a.pcap b.pcap".
EXTRA = os.environ.get("MEDMON_CONV_EXTRA", "").split()


def norm(a):
    return ipaddress.ip_address(a).compressed


def tshark(*args):
    p = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("tshark %s: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout


def tshark_streams(path):
    """Exact per-direction frames/bytes of every TCP and UDP stream, from a per-frame dump.
    Returns {(proto, stream): {"first": (ip, port), "ends": frozenset, "t0": float, "dir": {(ip,port): [frames, bytes]}}}."""
    out = tshark("-r", path, "-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch", "-e", "frame.len",
                 "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport",
                 "-e", "udp.stream", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "ip.dst", "-e", "ipv6.dst",
                 "-e", "icmp.type", "-e", "icmpv6.type")
    streams = {}
    for line in out.splitlines():
        f = line.split("|")
        if len(f) < 14 or f[12] or f[13]:
            continue  # ICMP errors quote TCP/UDP headers; they are not part of the conversation
        t, flen = float(f[0]), int(f[1])
        src = (f[2] or f[3]).split(",")[0]
        dst = (f[10] or f[11]).split(",")[0]
        for proto, s, sp, dp in (("tcp", f[4], f[5], f[6]), ("udp", f[7], f[8], f[9])):
            if not s:
                continue
            a, b = (norm(src), int(sp.split(",")[0])), (norm(dst), int(dp.split(",")[0]))
            st = streams.setdefault((proto, int(s.split(",")[0])), {"first": a, "ends": frozenset((a, b)), "t0": t,
                                                                    "dir": {a: [0, 0], b: [0, 0]}})
            st["dir"].setdefault(a, [0, 0])
            st["dir"][a][0] += 1
            st["dir"][a][1] += flen
            break
    return streams


UNITS = {"bytes": 1, "kB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}


def conv_table(path, proto):
    """Rows of `tshark -q -z conv,PROTO`: (endA, endB, frames_BtoA, bytes_BtoA, frames_AtoB, bytes_AtoB, unit_BtoA, unit_AtoB)."""
    out = tshark("-r", path, "-q", "-z", "conv," + proto)
    rows = []
    pat = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+([\d.,]+)\s+(bytes|kB|MB|GB)\s+(\d+)\s+([\d.,]+)\s+(bytes|kB|MB|GB)\s+")
    for line in out.splitlines():
        m = pat.match(line)
        if not m:
            continue

        def ep(s):
            host, port = s.rsplit(":", 1)
            return (norm(host), int(port))
        rows.append((ep(m.group(1)), ep(m.group(2)), int(m.group(3)), float(m.group(4).replace(",", "")),
                     int(m.group(6)), float(m.group(7).replace(",", "")), m.group(5), m.group(8)))
    return rows


def close(shown, unit, exact):
    """tshark prints '39 kB' for 39xxx bytes: accept the exact value within the printed precision."""
    if unit == "bytes":
        return shown == exact
    scale = UNITS[unit]
    return abs(exact / scale - shown) <= 1.0


def main():
    c = Checker("core_conv")
    if not shutil.which("tshark"):
        print("core_conv: tshark not installed (scripts/install-deps.sh --test); skipped")
        sys.exit(0)
    for rel in CAPTURES + EXTRA:
        path = rel if os.path.isabs(rel) else pcap(rel)
        name = os.path.basename(path)
        events = analyze(path, keep_as="conv_" + name)
        flows = [e for e in of_type(events, "flow") if e["proto"] in ("tcp", "udp")]
        # medmon flows grouped by (proto, endpoints), each list in start order
        mine = {}
        for e in flows:
            k = (e["proto"], frozenset(((norm(e["src_ip"]), e["src_port"]), (norm(e["dst_ip"]), e["dst_port"]))))
            mine.setdefault(k, []).append(e)
        for v in mine.values():
            v.sort(key=lambda e: e["flow"]["start"])
        streams = tshark_streams(path)
        theirs = {}
        for (proto, _), st in sorted(streams.items(), key=lambda kv: kv[1]["t0"]):
            theirs.setdefault((proto, st["ends"]), []).append(st)
        c.eq(f"{name}: number of TCP+UDP conversations", len(flows), len(streams))
        for k, sts in theirs.items():
            got = mine.get(k, [])
            c.eq(f"{name}: flows for {k[0]} {sorted(k[1])}", len(got), len(sts))
            for st, e in zip(sts, got):
                cli = (norm(e["src_ip"]), e["src_port"])  # the flow's client: its packets go to the server
                cli_dir = st["dir"].get(cli, [0, 0])
                other = [d for ep, d in st["dir"].items() if ep != cli]
                srv_dir = other[0] if other else [0, 0]
                f = e["flow"]
                what = f"{name}: {e['proto']} {e['src_ip']}:{e['src_port']} -> {e['dst_ip']}:{e['dst_port']}"
                c.eq(what + " pkts_toserver", f["pkts_toserver"], cli_dir[0])
                c.eq(what + " bytes_toserver", f["bytes_toserver"], cli_dir[1])
                c.eq(what + " pkts_toclient", f["pkts_toclient"], srv_dir[0])
                c.eq(what + " bytes_toclient", f["bytes_toclient"], srv_dir[1])
        for k in mine:
            c.true(f"{name}: medmon flow {k[0]} {sorted(k[1])} has no tshark conversation", k in theirs)
        # the table a user reads: same conversations, frames exact, bytes within printed precision
        for proto in ("tcp", "udp"):
            rows = conv_table(path, proto)
            c.eq(f"{name}: conv,{proto} rows", len(rows), sum(1 for e in flows if e["proto"] == proto))
            for a, b, fba, bba, fab, bab, uba, uab in rows:
                cands = mine.get((proto, frozenset((a, b))), [])
                ok = False
                for e in cands:
                    f = e["flow"]
                    fwd = (norm(e["src_ip"]), e["src_port"]) == a
                    ab = (f["pkts_toserver"], f["bytes_toserver"]) if fwd else (f["pkts_toclient"], f["bytes_toclient"])
                    ba = (f["pkts_toclient"], f["bytes_toclient"]) if fwd else (f["pkts_toserver"], f["bytes_toserver"])
                    if ab[0] == fab and ba[0] == fba and close(bab, uab, ab[1]) and close(bba, uba, ba[1]):
                        ok = True
                c.true(f"{name}: conv,{proto} row {a} <-> {b} ({fab} frames ->, {fba} <-) matches a medmon flow", ok)
    c.done()


if __name__ == "__main__":
    main()
