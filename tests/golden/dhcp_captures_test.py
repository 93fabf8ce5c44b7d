#!/usr/bin/python3
"""DHCPv4 made by dnsmasq, ISC dhclient and busybox udhcpc (pcaps/dhcp/dhcp-dora.pcap, see its
README): one dhcp event per message with the values tshark reads, and the asset inventory names
each client's address by the host name, vendor class and option list its MAC gave. A crafted
capture checks who gets a MAC's names: an address another MAC took, one claimed from elsewhere,
devices behind a router, and a long option list."""
import json
import os
import socket
import struct
import sys
import tempfile

import jsonschema

sys.path.insert(0, os.path.dirname(__file__))
from golden import OUT, SRC, Checker, analyze, of_type, pcap, run  # noqa: E402
from pcapwrite import ether, ipv4, tcp, udp, write_pcap  # noqa: E402

CT, PUMP, MON = "00:00:5e:00:53:01", "00:00:5e:00:53:02", "00:00:5e:00:53:03"
c = Checker("dhcp_captures")
ev = analyze(pcap("dhcp", "dhcp-dora.pcap"), keep_as="dhcp-dora")
msgs = [e["dhcp"] for e in of_type(ev, "dhcp")]

# Frames 1-20 of the README's table: type, chaddr, and who sent it.
c.eq("messages", [(m.get("message_type"), m.get("client_mac"), m["op"]) for m in msgs],
     [("DISCOVER", CT, "request"), ("OFFER", CT, "reply"), ("REQUEST", CT, "request"), ("ACK", CT, "reply"),
      ("REQUEST", CT, "request"), ("ACK", CT, "reply"), ("RELEASE", CT, "request"),
      ("DISCOVER", PUMP, "request"), ("OFFER", PUMP, "reply"), ("REQUEST", PUMP, "request"), ("ACK", PUMP, "reply"),
      ("REQUEST", PUMP, "request"), ("ACK", PUMP, "reply"), ("RELEASE", PUMP, "request"),
      ("REQUEST", MON, "request"), ("NAK", MON, "reply"),
      ("DISCOVER", MON, "request"), ("OFFER", MON, "reply"), ("REQUEST", MON, "request"), ("ACK", MON, "reply")])
if len(msgs) == 20:
    c.eq("client names", [(m.get("hostname"), m.get("vendor_class")) for m in msgs if m["op"] == "request"],
         [("ct-room3", "ACME-CT-7")] * 4 + [("infusion-pump-12", "PUMPCO-GW")] * 3 + [(None, None)] +
         [("monitor-bed7", None)] * 3)
    c.eq("addresses given", [m.get("assigned_ip") for m in msgs if m.get("message_type") == "ACK"],
         ["10.77.3.101", "10.77.3.101", "10.77.3.102", "10.77.3.102", "10.77.3.103"])
    c.eq("requested and held addresses", [(m.get("requested_ip"), m.get("client_ip")) for m in msgs if m["op"] == "request"],
         [(None, None), ("10.77.3.101", None), ("10.77.3.101", None), (None, "10.77.3.101"),
          (None, None), ("10.77.3.102", None), (None, "10.77.3.102"), (None, "10.77.3.102"),
          ("10.99.99.99", None), (None, None), ("10.77.3.103", None)])
    ack = msgs[3]
    c.eq("ack options", {k: ack.get(k) for k in ("server_id", "lease_time", "domain", "routers", "dns_servers")},
         {"server_id": "10.77.3.1", "lease_time": 3600, "domain": "ward3.hospital.example",
          "routers": ["10.77.3.1"], "dns_servers": ["10.77.3.53"]})
    c.eq("nak reason", (msgs[15].get("message"), msgs[15].get("broadcast")), ("wrong network", True))
    # dhclient sends the string given in its configuration (no type byte), udhcpc type 1 + MAC.
    c.eq("client ids", (msgs[0].get("client_id"), msgs[7].get("client_id")),
         (":".join("%02x" % b for b in b"ACME-CT7-SN0417"), "01:" + PUMP))
    c.eq("option lists", (msgs[0].get("param_list"), msgs[7].get("param_list")),
         ([1, 28, 3, 15, 6, 42], [1, 3, 6, 12, 15, 28, 42]))
    c.true("every transaction id is 0x and 8 hex digits",
           all(len(m["xid"]) == 10 and m["xid"].startswith("0x") for m in msgs))

flows = of_type(ev, "flow")
c.true("every flow is dhcp", flows and all(f.get("app") == "dhcp" for f in flows))
c.true("replies from 67 to 68 have the server on 67",
       all(f["dst_port"] == 67 for f in flows))
c.eq("no anomalies", of_type(ev, "anomaly"), [])

last = {}
for a in of_type(ev, "asset"):
    last[a["asset"]["ip"]] = a["asset"]
c.eq("devices named by DHCP",
     {ip: (a.get("mac"), a.get("hostname"), a.get("dhcp")) for ip, a in last.items() if "hostname" in a},
     {"10.77.3.101": (CT, "ct-room3", {"vendor_class": "ACME-CT-7", "fingerprint": "1,28,3,15,6,42"}),
      "10.77.3.102": (PUMP, "infusion-pump-12", {"vendor_class": "PUMPCO-GW", "fingerprint": "1,3,6,12,15,28,42"}),
      "10.77.3.103": (MON, "monitor-bed7", {"fingerprint": "1,28,2,3,15,6,12"})})
c.eq("the server offers dhcp on 67", [(s["service"], s["port"]) for s in last.get("10.77.3.1", {}).get("services_offered", [])],
     [("dhcp", 67)])
c.true("the offered address 10.99.99.99 of the NAK is no device", "10.99.99.99" not in last)
c.true("asset events are not dated before the device's first sighting",
       all(a["ts"] >= a["asset"]["first_seen"] for a in of_type(ev, "asset")))

# Crafted: who gets a MAC's DHCP names. The pump (A) leases .50, talks, then a laptop (B) leases
# .50 and talks; a host (.99) claims the PACS's address .10 from its own; the router (R) gets
# 10.10.0.1 by DHCP and a device behind it (10.10.5.5) is seen through R's MAC; a client asks for
# a long option list; a host (SPOOF) sends requests in the router's name (its chaddr, unrelayed)
# and the server gives that name another address.
A, B, R, PACS, EVIL, SRV, CLI, SPOOF = ("02:00:00:00:0a:%02x" % i for i in (0x0a, 0x0b, 0x99, 0x0c, 0x0d, 0xfe, 0x31, 0xee))
BCAST = "ff:ff:ff:ff:ff:ff"
recs, clock = [], [1700000000, 0]


def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


def frame(src_mac, dst_mac, src, dst, l4, proto):
    clock[1] += 10000
    recs.append((clock[0], clock[1], ether(mac_bytes(dst_mac), mac_bytes(src_mac), ipv4(src, dst, proto, l4))))


def bootp(op, chaddr, options, ciaddr="0.0.0.0", yiaddr="0.0.0.0", xid=7):
    b = struct.pack("!BBBBIHH4s4s4s4s", op, 1, 6, 0, xid, 0, 0, socket.inet_aton(ciaddr), socket.inet_aton(yiaddr),
                    bytes(4), bytes(4))
    return b + mac_bytes(chaddr).ljust(16, b"\0") + bytes(192) + bytes([99, 130, 83, 99]) + options + b"\xff"


def opt(code, value):
    return bytes([code, len(value)]) + value


def dora(mac, ip, host, vendor, prl):
    names = opt(12, host) + (opt(60, vendor) if vendor else b"") + opt(55, prl)
    for t in (1, 3):
        frame(mac, BCAST, "0.0.0.0", "255.255.255.255", udp("0.0.0.0", "255.255.255.255", 68, 67,
              bootp(1, mac, opt(53, bytes([t])) + names)), 17)
    frame(SRV, mac, "10.10.0.2", ip, udp("10.10.0.2", ip, 67, 68, bootp(2, mac, opt(53, b"\x05"), yiaddr=ip)), 17)


def talk(mac, src, dst, sport):
    for seq, flags, by_client in ((1, 0x02, True), (1, 0x12, False), (2, 0x18, True), (2, 0x11, True), (2, 0x11, False)):
        s, d, sp, dp = (src, dst, sport, 8080) if by_client else (dst, src, 8080, sport)
        frame(mac if by_client else SRV, SRV if by_client else mac, s, d, tcp(s, d, sp, dp, seq, 0, flags, b"x" if flags == 0x18 else b""), 6)


dora(A, "10.10.0.50", b"infusion-pump-A", b"PUMPCO-GW", b"\x01\x03\x06")
talk(A, "10.10.0.50", "10.10.0.2", 40000)
dora(B, "10.10.0.50", b"laptop-B", None, b"\x01\x0f")
talk(B, "10.10.0.50", "10.10.0.2", 40001)
talk(PACS, "10.10.0.10", "10.10.0.2", 40002)
frame(EVIL, PACS, "10.10.0.99", "10.10.0.10", udp("10.10.0.99", "10.10.0.10", 5555, 9999,
      bootp(1, EVIL, opt(53, b"\x03") + opt(12, b"evil-host"), ciaddr="10.10.0.10")), 17)
dora(R, "10.10.0.1", b"core-router", b"RouterOS", b"\x01\x03")
talk(R, "10.10.5.5", "10.10.0.2", 40003)
for t in (1, 3):
    frame(SPOOF, BCAST, "0.0.0.0", "255.255.255.255", udp("0.0.0.0", "255.255.255.255", 68, 67,
          bootp(1, R, opt(53, bytes([t])) + opt(12, b"evil-router") + opt(55, b"\x01"), xid=9)), 17)
frame(SRV, R, "10.10.0.2", "10.10.0.66", udp("10.10.0.2", "10.10.0.66", 67, 68,
      bootp(2, R, opt(53, b"\x05"), yiaddr="10.10.0.66", xid=9)), 17)
talk(SPOOF, "10.10.0.66", "10.10.0.2", 40004)
long_list = bytes([1, 3]) + bytes(range(100, 150))
# Option 55 in five pieces of 255 codes (RFC 3396): 1024 codes after the 1 KiB bound.
joined_list = b"".join(opt(55, bytes(i % 254 + 1 for i in range(255))) for _ in range(5))
frame(CLI, BCAST, "0.0.0.0", "255.255.255.255", udp("0.0.0.0", "255.255.255.255", 68, 67,
      bootp(1, CLI, opt(53, b"\x01") + joined_list, xid=11)), 17)
frame(CLI, SRV, "10.10.0.31", "10.10.0.2", udp("10.10.0.31", "10.10.0.2", 68, 67,
      bootp(1, CLI, opt(53, b"\x08") + opt(55, long_list), ciaddr="10.10.0.31")), 17)
tmp = tempfile.mkdtemp(prefix="medmon-dhcp-")
crafted = os.path.join(tmp, "dhcp-names.pcap")
write_pcap(crafted, recs)
crafted_ev = analyze(crafted, keep_as="dhcp-names")
joined = [e for e in of_type(crafted_ev, "dhcp") if e["dhcp"].get("xid") == "0x0000000b"]
c.eq("a joined option 55 is read up to 1024 codes", [len(e["dhcp"].get("param_list", [])) for e in joined], [1024])
schema = json.load(open(os.path.join(SRC, "docs", "schema", "dhcp.json")))
c.eq("and its event is valid", [next((x.message[:80] for x in jsonschema.Draft202012Validator(schema).iter_errors(e)), None)
                                for e in joined], [None])
spoofed = [e["dhcp"] for e in of_type(crafted_ev, "dhcp") if e["dhcp"].get("xid") == "0x00000009"]
c.eq("a request in another MAC's name says which MAC sent it",
     [(m["client_mac"], m.get("sender_mac")) for m in spoofed], [(R, SPOOF), (R, SPOOF), (R, None)])
c.eq("and counts an anomaly", [a["anomaly"]["name"] for a in of_type(crafted_ev, "anomaly")],
     ["chaddr_mismatch"] * 2)
rc, inv_out, _ = run(["assets", os.path.join(OUT, "dhcp-names.jsonl"), "--json"], check_rc=(0,))
named = {a["ip"]: (a.get("mac"), a.get("hostname"), a.get("dhcp")) for a in json.loads(inv_out)}
c.eq("the address another MAC took has that MAC's names only", named.get("10.10.0.50"),
     (B, "laptop-B", {"fingerprint": "1,15"}))
c.eq("an address claimed from another address gets no names", named.get("10.10.0.10"), (PACS, None, None))
c.eq("the router's names stay with the router's address", (named.get("10.10.0.1"), named.get("10.10.5.5")),
     ((R, "core-router", {"vendor_class": "RouterOS", "fingerprint": "1,3"}), (R, None, None)))
c.eq("a request in the router's name renames nothing of it, and moves nothing",
     (named.get("10.10.0.1"), named.get("10.10.0.66")),
     ((R, "core-router", {"vendor_class": "RouterOS", "fingerprint": "1,3"}), (SPOOF, None, None)))
c.eq("the option list is kept whole", named.get("10.10.0.31"),
     (CLI, None, {"fingerprint": ",".join(str(b) for b in long_list)}))
os.remove(crafted)
os.rmdir(tmp)
c.done()
