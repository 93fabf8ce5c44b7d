#!/usr/bin/python3
"""The console summary of analyze names every device apart: an address is shown whole (IPv6
link-local addresses of one prefix, cut to the column, read alike), its column as wide as the
longest; the demo's summary keeps its layout."""
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, SRC, Checker, pcap  # noqa: E402
from pcapwrite import ether, ipv4, tcp, udp, write_pcap  # noqa: E402

C = Checker("cli_summary")


def summary(*args):
    p = subprocess.run([MEDMON, "analyze", *args, "-o", os.devnull, "--fail-on", "none"], capture_output=True,
                       text=True, timeout=300)
    C.eq(f"analyze {' '.join(args)}: exit 0 ({p.stderr.strip()})", p.returncode, 0)
    lines = p.stdout.splitlines()
    at = next((i for i, l in enumerate(lines) if l.startswith("  devices ")), None)
    rows = [l.split() for l in lines[at + 2:] if l.startswith("    ") and not l.startswith("    ...")] if at is not None else []
    return lines, rows


lines, rows = summary(pcap("dhcp", "dhcpv6.pcap"))
link_local = [r[0] for r in rows if r[0].startswith("fe80:")]
C.true(f"dhcpv6: link-local devices listed ({link_local})", len(link_local) >= 2)
C.eq("dhcpv6: each device's name is its own address", len(set(link_local)), len(link_local))
C.true(f"dhcpv6: addresses whole ({link_local})", all(a.count(":") >= 5 for a in link_local))
C.true("dhcpv6: device and IP columns agree for unnamed devices", all(r[0] == r[1] for r in rows))

lines, rows = summary(pcap("demo", "demo.pcap"), "--site", os.path.join(SRC, "policies", "sites", "demo-site.yaml"))
head = next((l for l in lines if l.lstrip().startswith("DEVICE")), "")
C.true(f"demo: the header keeps its columns ({head})", head.startswith("    DEVICE             IP               MODEL "))


def declined_capture(path):
    """A DHCP ACK gives 10.20.30.50 to a client, an unrelated flow ends (the inventory writes the
    address with the client's MAC), then the client declines the address: nothing ever came from it."""
    def mac(s):
        return bytes(int(x, 16) for x in s.split(":"))
    client, server, other, bcast = mac("02:00:5e:10:00:07"), mac("02:00:00:00:00:01"), mac("02:00:00:00:00:33"), b"\xff" * 6

    def bootp(op, msg_type, yiaddr=b"\0" * 4, more=b""):
        m = struct.pack("!BBBBIHH4s4s4s4s", op, 1, 6, 0, 1, 0, 0, b"\0" * 4, yiaddr, b"\0" * 4, b"\0" * 4)
        m += client.ljust(16, b"\0") + b"\0" * 192 + b"\x63\x82\x53\x63" + bytes([53, 1, msg_type]) + more + b"\xff"
        return m

    def dhcp(src_mac, src, sport, dport, payload):
        return ether(bcast, src_mac, ipv4(src, "255.255.255.255", 17, udp(src, "255.255.255.255", sport, dport, payload)))
    asked = bytes([50, 4, 10, 20, 30, 50])
    t = 1700000000
    write_pcap(path, [
        (t, 0, dhcp(client, "0.0.0.0", 68, 67, bootp(1, 3, more=asked))),
        (t, 1000, dhcp(server, "10.20.30.1", 67, 68, bootp(2, 5, yiaddr=bytes([10, 20, 30, 50])))),
        (t, 100000, ether(server, other, ipv4("10.20.30.33", "10.20.30.1", 6, tcp("10.20.30.33", "10.20.30.1", 40000, 80, 1, 0, 0x02)))),
        (t, 100100, ether(other, server, ipv4("10.20.30.1", "10.20.30.33", 6, tcp("10.20.30.1", "10.20.30.33", 80, 40000, 0, 2, 0x14)))),
        (t + 900, 0, dhcp(client, "0.0.0.0", 68, 67, bootp(1, 4, more=asked))),
    ])


def summary_apart(tag, args, stdout=subprocess.PIPE):
    """Events on standard output: every line of it is an event, the summary is on stderr."""
    p = subprocess.run([MEDMON, "analyze", pcap("demo", "demo.pcap"), "--fail-on", "none", *args], stdout=stdout,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    C.eq(f"{tag}: exit 0 ({p.stderr.strip()})", p.returncode, 0)
    return p


with tempfile.TemporaryDirectory() as tmp:
    # --out - and every other name of standard output keep the stream JSON Lines: the summary goes
    # to stderr (docs/sinks.md).
    for args in (["--out", "-"], ["--out", "/dev/stdout"], ["--out", "/dev/fd/1"], ["--out", os.devnull, "--sink", "stdout"],
                 ["--out", os.devnull, "--sink", "file=/dev/stdout"]):
        tag = " ".join(args) + " | reader"
        p = summary_apart(tag, args)
        out = p.stdout.splitlines()
        C.true(f"{tag}: events on stdout", len(out) > 10)
        C.true(f"{tag}: nothing but events on stdout ({[l for l in out if not l.startswith('{')][:2]})",
               all(l.startswith('{"ts":') for l in out))
        C.true(f"{tag}: the summary on stderr", "  devices " in p.stderr)
    # Standard output is the --out file itself (`--out ev.jsonl > ev.jsonl`, `--out /dev/stdout >> ev.jsonl`).
    for args in (["--out", os.path.join(tmp, "ev.jsonl")], ["--out", "/dev/stdout"]):
        ev = os.path.join(tmp, "ev.jsonl")
        with open(ev, "w") as f:
            p = summary_apart(f"{args[1]} > ev.jsonl", args, stdout=f)
        lines = open(ev).read().splitlines()
        C.true(f"{args[1]} > ev.jsonl: nothing but events in the file ({[l for l in lines if not l.startswith('{')][:2]})",
               len(lines) > 10 and all(l.startswith('{"ts":') for l in lines))
        C.true(f"{args[1]} > ev.jsonl: the summary on stderr", "  devices " in p.stderr)
    # An events file that is not standard output leaves the summary on stdout.
    p = summary_apart("--out FILE", ["--out", os.path.join(tmp, "ev.jsonl")])
    C.true("--out FILE: the summary on stdout", "  devices " in p.stdout and "  devices " not in p.stderr)

with tempfile.TemporaryDirectory() as tmp:
    declined_capture(os.path.join(tmp, "declined.pcap"))
    lines, rows = summary(os.path.join(tmp, "declined.pcap"))
    C.eq("declined: an address only a declined DHCP exchange named is no device",
         sorted(r[1] for r in rows), ["10.20.30.1", "10.20.30.33"])
C.done()
