#!/usr/bin/python3
"""The console summary of analyze names every device apart: an address is shown whole (IPv6
link-local addresses of one prefix, cut to the column, read alike), its column as wide as the
longest; the demo's summary keeps its layout."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, SRC, Checker, pcap  # noqa: E402

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
C.done()
