#!/usr/bin/python3
"""Plain BOOTP (RFC 951, no DHCP magic cookie) in a crafted capture: read on UDP port 67 only,
its reply's yiaddr gives the client's MAC an address in the inventory, and the same datagrams
between other ports are no BOOTP."""
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type  # noqa: E402
from pcapwrite import ether, ipv4, udp, write_pcap  # noqa: E402

CLIENT, SERVER, BCAST = bytes.fromhex("02005e100007"), bytes.fromhex("020000000001"), b"\xff" * 6


def bootp(op, chaddr, yiaddr=b"\0" * 4, sname=b"", file=b""):
    m = struct.pack("!BBBBIHH4s4s4s4s", op, 1, 6, 0, 0x1234, 0, 0, b"\0" * 4, yiaddr, b"\0" * 4, b"\0" * 4)
    return m + chaddr.ljust(16, b"\0") + sname.ljust(64, b"\0") + file.ljust(128, b"\0") + b"\0" * 64


def frame(src_mac, src, dst, sport, dport, payload):
    return ether(BCAST, src_mac, ipv4(src, dst, 17, udp(src, dst, sport, dport, payload)))


t = 1700000000
records = [
    (t, 0, frame(CLIENT, "0.0.0.0", "255.255.255.255", 68, 67, bootp(1, CLIENT))),
    (t, 1000, frame(SERVER, "10.20.30.1", "255.255.255.255", 67, 68,
                    bootp(2, CLIENT, bytes([10, 20, 30, 44]), b"bootsrv", b"/tftpboot/pump.bin"))),
    # The same reply between two other ports is no BOOTP: nothing marks it but the port.
    (t, 2000, frame(SERVER, "10.20.30.1", "10.20.30.45", 4000, 4001,
                    bootp(2, bytes.fromhex("02005e100008"), bytes([10, 20, 30, 45])))),
]
c = Checker("dhcp_bootp")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "bootp.pcap")
    write_pcap(path, records)
    ev = analyze(path)
msgs = [e["dhcp"] for e in of_type(ev, "dhcp")]
c.eq("request and reply, as BOOTP",
     [(m["op"], m.get("bootp"), m.get("message_type"), m["client_mac"], m.get("assigned_ip")) for m in msgs],
     [("request", True, None, "02:00:5e:10:00:07", None), ("reply", True, None, "02:00:5e:10:00:07", "10.20.30.44")])
reply = msgs[-1] if msgs else {}
c.eq("the reply's sname and file", (reply.get("server_name"), reply.get("boot_file")),
     ("bootsrv", "/tftpboot/pump.bin"))
c.eq("the flows are dhcp's",
     sorted((e["dst_port"], e.get("app")) for e in of_type(ev, "flow")), [(67, "dhcp"), (67, "dhcp"), (4001, None)])
assets = {e["asset"]["ip"]: e["asset"] for e in of_type(ev, "asset")}
c.eq("the reply's address has the client's MAC", assets.get("10.20.30.44", {}).get("mac"), "02:00:5e:10:00:07")
c.eq("no MAC from the datagram between other ports", assets.get("10.20.30.45", {}).get("mac"), None)
c.done()
