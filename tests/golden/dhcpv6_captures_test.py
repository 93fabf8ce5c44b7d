#!/usr/bin/python3
"""DHCPv6 made by dnsmasq (server and relay) and ISC dhclient -6 (pcaps/dhcp/dhcpv6.pcap, see its
README): one dhcp event per message, version 6, with the values tshark reads; relayed messages
carry their relay; the asset inventory names the address each REPLY gives, and each client's
link-local address, by the FQDN, vendor class and option list of the MAC in its DUID. A crafted
capture checks who gets a DUID MAC's names: an address another MAC took, one a relay message from
elsewhere names, and devices behind a router."""
import json
import os
import shutil
import socket
import struct
import sys
import tempfile

import jsonschema

sys.path.insert(0, os.path.dirname(__file__))
from golden import OUT, SRC, Checker, analyze, of_type, pcap, run  # noqa: E402
from pcapwrite import ETH_IPV6, ether, ipv6, tcp, udp, write_pcap  # noqa: E402

CT, PUMP, MON, XRAY = "00:00:5e:00:53:01", "00:00:5e:00:53:02", "00:00:5e:00:53:03", "00:00:5e:00:53:04"
SERVER_DUID = "00:02:00:00:7e:d9:4d:45:44:4d:4f:4e"  # DUID-EN, enterprise 32473, "MEDMON"
c = Checker("dhcpv6_captures")
ev = analyze(pcap("dhcp", "dhcpv6.pcap"), keep_as="dhcpv6")
msgs = [e["dhcp"] for e in of_type(ev, "dhcp")]

c.true("every event is DHCPv6", msgs and all(m.get("version") == 6 for m in msgs))
# Frames 1-18 of the README's table: type, the MAC of the client's DUID, and who sent it.
c.eq("messages", [(m.get("message_type"), m.get("client_mac"), m["op"]) for m in msgs],
     [("SOLICIT", CT, "request"), ("ADVERTISE", CT, "reply"), ("REQUEST", CT, "request"), ("REPLY", CT, "reply"),
      ("CONFIRM", CT, "request"), ("REPLY", CT, "reply"), ("RELEASE", CT, "request"), ("REPLY", CT, "reply"),
      ("SOLICIT", PUMP, "request"), ("REPLY", PUMP, "reply"), ("RELEASE", PUMP, "request"), ("REPLY", PUMP, "reply"),
      ("INFORMATION-REQUEST", MON, "request"), ("REPLY", MON, "reply"),
      ("SOLICIT", XRAY, "request"), ("ADVERTISE", XRAY, "reply"), ("REQUEST", XRAY, "request"), ("REPLY", XRAY, "reply")])
if len(msgs) == 18:
    c.eq("DUID types", [(m.get("client_duid_type"), m.get("server_duid")) for m in msgs[:3]] +
         [(msgs[i].get("client_duid_type"), None) for i in (8, 12, 14)],
         [("LLT", None), ("LLT", SERVER_DUID), ("LLT", SERVER_DUID), ("LL", None), ("LL", None), ("LLT", None)])
    c.eq("server DUID type", {m.get("server_duid_type") for m in msgs if m["op"] == "reply"}, {"EN"})
    c.eq("DUID-LL", msgs[8].get("client_duid"), "00:03:00:01:" + PUMP)
    c.eq("addresses given", [(i + 1, m.get("assigned_ip")) for i, m in enumerate(msgs) if "assigned_ip" in m],
         [(2, "fd77:3::101"), (4, "fd77:3::101"), (10, "fd77:3::102"), (16, "fd77:5::104"), (18, "fd77:5::104")])
    c.eq("the REQUEST's IA_NA", msgs[2]["ia"],
         [{"type": "na", "iaid": "0x5e005301", "t1": 3600, "t2": 5400,
           "addresses": [{"address": "fd77:3::101", "preferred_lifetime": 7200, "valid_lifetime": 7500}]}])
    c.eq("the REPLY's IA_NA", msgs[3]["ia"],
         [{"type": "na", "iaid": "0x5e005301", "t1": 1800, "t2": 3150,
           "addresses": [{"address": "fd77:3::101", "preferred_lifetime": 3600, "valid_lifetime": 3600}]}])
    c.eq("reply options", {k: msgs[3].get(k) for k in ("status", "dns_servers", "domain_search", "client_fqdn")},
         {"status": "Success", "dns_servers": ["fd77:3::53"], "domain_search": ["ward3.hospital.example"],
          "client_fqdn": "ct-room3"})
    c.eq("status messages", [msgs[i].get("status_message") for i in (5, 7, 11)],
         ["all addresses still on link", "release received", "release received"])
    c.eq("client names", [(m.get("client_fqdn"), m.get("vendor_enterprise"), m.get("vendor_class"))
                          for m in msgs if m["message_type"] in ("SOLICIT", "INFORMATION-REQUEST")],
         [("ct-room3.ward3.hospital.example", 32473, "ACME-CT-7"),
          ("infusion-pump-12.ward3.hospital.example", 32473, "PUMPCO-GW"),
          ("monitor-bed7.ward3.hospital.example", None, None),
          ("xray-mobile-2.ward3.hospital.example", 32473, "XRAYCO-M2")])
    c.eq("user class", msgs[0].get("user_class"), ["imaging"])
    c.true("every client asks for DNS servers, search list and FQDN",
           all(m.get("param_list") == [23, 24, 39] for m in msgs if m["op"] == "request"))
    c.eq("rapid commit", [i + 1 for i, m in enumerate(msgs) if m.get("rapid_commit")], [9, 10])
    c.eq("client addresses", sorted({m.get("client_ip") for m in msgs}),
         ["fe80::200:5eff:fe00:5301", "fe80::200:5eff:fe00:5302", "fe80::200:5eff:fe00:5303",
          "fe80::200:5eff:fe00:5304"])
    relay = [{"message_type": t, "hop_count": 0, "link_address": "fd77:5::1", "peer_address": "fe80::200:5eff:fe00:5304"}
             for t in ("RELAY-FORW", "RELAY-REPL")]
    c.eq("relays", [m.get("relays") for m in msgs[14:]], [[relay[0]], [relay[1]], [relay[0]], [relay[1]]])
    c.true("no relays on the link", all("relays" not in m for m in msgs[:14]))
    c.true("every transaction id is 0x and 6 hex digits",
           all(len(m["xid"]) == 8 and m["xid"].startswith("0x") for m in msgs))

flows = of_type(ev, "flow")
c.true("every flow is dhcp", flows and all(f.get("app") == "dhcp" for f in flows))
c.true("the server side is on 547", all(f["dst_port"] == 547 for f in flows))
c.eq("no anomalies", of_type(ev, "anomaly"), [])

last = {}
for a in of_type(ev, "asset"):
    last[a["asset"]["ip"]] = a["asset"]
ORO = {"fingerprint6": "23,24,39"}
c.eq("devices named by DHCPv6",
     {ip: (a.get("mac"), a.get("hostname"), a.get("dhcp")) for ip, a in last.items() if "hostname" in a},
     {"fe80::200:5eff:fe00:5301": (CT, "ct-room3", {"vendor_class": "ACME-CT-7", **ORO}),
      "fd77:3::101": (CT, "ct-room3", {"vendor_class": "ACME-CT-7", **ORO}),
      "fe80::200:5eff:fe00:5302": (PUMP, "infusion-pump-12", {"vendor_class": "PUMPCO-GW", **ORO}),
      "fd77:3::102": (PUMP, "infusion-pump-12", {"vendor_class": "PUMPCO-GW", **ORO}),
      "fe80::200:5eff:fe00:5303": (MON, "monitor-bed7", ORO),
      "fe80::200:5eff:fe00:5304": (XRAY, "xray-mobile-2", {"vendor_class": "XRAYCO-M2", **ORO}),
      "fd77:5::104": (XRAY, "xray-mobile-2", {"vendor_class": "XRAYCO-M2", **ORO})})
c.eq("the server offers dhcp on 547", [(s["service"], s["port"]) for s in last.get("fd77:3::1", {}).get("services_offered", [])],
     [("dhcp", 547)])
c.true("the relay is no named device", "hostname" not in last.get("fd77:3::2", {}))
c.true("asset events are not dated before the device's first sighting",
       all(a["ts"] >= a["asset"]["first_seen"] for a in of_type(ev, "asset")))

# What the capture lacks, made up: IA_TA and IA_PD with statuses inside, a server's unicast
# option, a DUID-EN client, a relay chain with interface and remote ids, one deeper than the hop
# limit, and a cut option. Every event validates against docs/schema/dhcp.json.
def opt6(code, v):
    return struct.pack(">HH", code, len(v)) + v


def relay6(typ, hops, peer, inner, extra=b""):
    return bytes([typ, hops]) + bytes(15) + b"\x01" + peer + extra + opt6(9, inner)


LL = bytes.fromhex("fe800000000000000200 5eff fe00 5305".replace(" ", ""))
duid_en = struct.pack(">HI", 2, 32473) + b"PUMP-7"
solicit = (b"\x01\x00\x00\x2a" + opt6(1, duid_en) + opt6(8, b"\x00\x64") + opt6(6, struct.pack(">HH", 23, 25)) +
           opt6(4, struct.pack(">I", 9)) + opt6(25, struct.pack(">III", 7, 0, 0)))
reply = (b"\x07\x00\x00\x2a" + opt6(1, duid_en) + opt6(2, duid_en) + opt6(12, bytes(15) + b"\x01") +
         opt6(4, struct.pack(">I", 9) + opt6(5, bytes.fromhex("fd770005" + "00" * 11 + "09") + struct.pack(">II", 0, 0) +
                                              opt6(13, struct.pack(">H", 2)))) +
         opt6(25, struct.pack(">III", 7, 900, 1400) + opt6(26, struct.pack(">IIB", 1800, 3600, 56) +
                                                           bytes.fromhex("20010db8770000000000000000000000"))) +
         opt6(13, struct.pack(">H", 6) + b"no prefixes left"))
chain = relay6(12, 1, b"\xfd\x77" + bytes(13) + b"\x02",
               relay6(12, 0, LL, solicit, opt6(18, b"Gi1/0/7") + opt6(37, struct.pack(">I", 9) + b"\x00\x01")))
deep = solicit
for h in range(10):
    deep = relay6(12, h, LL, deep)
cut = solicit + opt6(24, b"\x05ward3")[:-2]
CLIENT, SERVER, RELAY = "fe80::200:5eff:fe00:5305", "fe80::200:5eff:fe00:53fe", "fd77:3::2"
frames = [(CLIENT, "ff02::1:2", 546, 547, solicit), (SERVER, CLIENT, 547, 546, reply),
          (RELAY, "fd77:3::1", 547, 547, chain), (RELAY, "fd77:3::1", 547, 547, deep), (CLIENT, "ff02::1:2", 546, 547, cut)]
mac = bytes.fromhex("00005e005305")
tmp = tempfile.mkdtemp(prefix="mmdhcpv6-")
made = os.path.join(tmp, "made-up.pcap")
write_pcap(made, [(1700000000 + i, 0, ether(b"\x33\x33\x00\x01\x00\x02", mac, ipv6(src, dst, 17, udp(src, dst, sp, dp, pl)),
                                             ETH_IPV6)) for i, (src, dst, sp, dp, pl) in enumerate(frames)])
mev = analyze(made)
shutil.rmtree(tmp)
schema = json.load(open(os.path.join(SRC, "docs", "schema", "dhcp.json")))
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
made_msgs = of_type(mev, "dhcp")
c.eq("made-up messages", [e["dhcp"].get("message_type") for e in made_msgs],
     ["SOLICIT", "REPLY", "SOLICIT", "RELAY-FORW", "SOLICIT"])
c.eq("made-up events validate", [[x.message for x in validator.iter_errors(e)] for e in made_msgs], [[]] * len(made_msgs))
if len(made_msgs) == 5:
    r = made_msgs[1]["dhcp"]
    c.eq("IA_TA and IA_PD", r.get("ia"),
         [{"type": "ta", "iaid": "0x00000009", "addresses": [{"address": "fd77:5::9", "preferred_lifetime": 0,
                                                             "valid_lifetime": 0, "status": "NoAddrsAvail"}]},
          {"type": "pd", "iaid": "0x00000007", "t1": 900, "t2": 1400,
           "prefixes": [{"prefix": "2001:db8:7700::/56", "preferred_lifetime": 1800, "valid_lifetime": 3600}]}])
    c.eq("status and unicast", (r.get("status"), r.get("status_message"), r.get("unicast"), r.get("client_duid_type")),
         ("NoPrefixAvail", "no prefixes left", "::1", "EN"))
    c.true("a DUID-EN gives no MAC", "client_mac" not in r)
    c.eq("relay chain", made_msgs[2]["dhcp"].get("relays"),
         [{"message_type": "RELAY-FORW", "hop_count": 1, "link_address": "::1", "peer_address": "fd77::2"},
          {"message_type": "RELAY-FORW", "hop_count": 0, "link_address": "::1", "peer_address": CLIENT,
           "interface_id": "Gi1/0/7",
           "remote_id": "00:01"}])
    c.eq("the relayed client's address", made_msgs[2]["dhcp"].get("client_ip"), CLIENT)
    c.eq("elapsed", made_msgs[0]["dhcp"].get("elapsed_ms"), 1000)
c.eq("made-up anomalies", sorted(a["anomaly"]["name"] for a in of_type(mev, "anomaly")),
     ["relay_too_deep", "truncated_option"])
# Crafted: who gets a DUID MAC's names. The pump (A) is given fd77:3::50 and talks from it, then a
# laptop (B) is given fd77:3::50 and talks from it; a host (EVIL, fd77:3::66) sends a RELAY-FORW
# naming the PACS's address fd77:3::10 as its client's; the router (R) is given fd77:3::7 and a
# device behind it (fd77:9::5) is seen through R's MAC.
A, B, R, PACS, EVIL, SRV = ("02:00:00:00:6a:%02x" % i for i in (0x0a, 0x0b, 0x99, 0x0c, 0x0d, 0xfe))
SRV_IP = "fd77:3::1"
recs6, clock6 = [], [1700001000, 0]


def mac_bytes(text):
    return bytes.fromhex(text.replace(":", ""))


def link_local(mac):
    m = bytearray(mac_bytes(mac))
    m[0] ^= 2
    return socket.inet_ntop(socket.AF_INET6, bytes.fromhex("fe80000000000000") + bytes(m[:3]) + b"\xff\xfe" + bytes(m[3:]))


def frame6(src_mac, dst_mac, src, dst, l4, proto):
    clock6[1] += 10000
    recs6.append((clock6[0], clock6[1], ether(mac_bytes(dst_mac), mac_bytes(src_mac), ipv6(src, dst, proto, l4), ETH_IPV6)))


def duid_ll(mac):
    return struct.pack(">HH", 3, 1) + mac_bytes(mac)


def fqdn(host):
    return b"\x01" + bytes([len(host)]) + host + b"\x09ward3-lab\x00"


def client_msg(typ, mac, host, vendor):
    names = opt6(39, fqdn(host)) + (opt6(16, struct.pack(">IH", 32473, len(vendor)) + vendor) if vendor else b"")
    return bytes([typ]) + b"\x00\x00\x07" + opt6(1, duid_ll(mac)) + opt6(8, b"\x00\x00") + opt6(6, struct.pack(">HH", 23, 39)) + names


def exchange(mac, ip, host, vendor):
    ll = link_local(mac)
    frame6(mac, "33:33:00:01:00:02", ll, "ff02::1:2", udp(ll, "ff02::1:2", 546, 547, client_msg(3, mac, host, vendor)), 17)
    ia = opt6(3, struct.pack(">III", 1, 1800, 2880) + opt6(5, socket.inet_pton(socket.AF_INET6, ip) + struct.pack(">II", 3600, 3600)))
    rep = b"\x07\x00\x00\x07" + opt6(1, duid_ll(mac)) + opt6(2, duid_ll(SRV)) + ia
    frame6(SRV, mac, link_local(SRV), ll, udp(link_local(SRV), ll, 547, 546, rep), 17)


def talk6(mac, src, dst, sport):
    for seq, flags, by_client in ((1, 0x02, True), (1, 0x12, False), (2, 0x18, True), (2, 0x11, True), (2, 0x11, False)):
        s, d, sp, dp = (src, dst, sport, 8080) if by_client else (dst, src, 8080, sport)
        frame6(mac if by_client else SRV, SRV if by_client else mac, s, d,
               tcp(s, d, sp, dp, seq, 0, flags, b"x" if flags == 0x18 else b""), 6)


exchange(A, "fd77:3::50", b"infusion-pump-A", b"PUMPCO-GW")
talk6(A, "fd77:3::50", SRV_IP, 40000)
exchange(B, "fd77:3::50", b"laptop-B", None)
talk6(B, "fd77:3::50", SRV_IP, 40001)
talk6(PACS, "fd77:3::10", SRV_IP, 40002)
forged = relay6(12, 0, socket.inet_pton(socket.AF_INET6, "fd77:3::10"), client_msg(1, EVIL, b"evil-host", None))
frame6(EVIL, SRV, "fd77:3::66", SRV_IP, udp("fd77:3::66", SRV_IP, 547, 547, forged), 17)
exchange(R, "fd77:3::7", b"core-router", b"RouterOS")
talk6(R, "fd77:9::5", SRV_IP, 40003)
tmp = tempfile.mkdtemp(prefix="medmon-dhcpv6-")
crafted = os.path.join(tmp, "dhcpv6-names.pcap")
write_pcap(crafted, recs6)
cev = analyze(crafted, keep_as="dhcpv6-names")
os.remove(crafted)
os.rmdir(tmp)
c.eq("crafted messages", [(e["dhcp"].get("message_type"), e["dhcp"].get("client_mac")) for e in of_type(cev, "dhcp")],
     [("REQUEST", A), ("REPLY", A), ("REQUEST", B), ("REPLY", B), ("SOLICIT", EVIL), ("REQUEST", R), ("REPLY", R)])
rc, inv_out, _ = run(["assets", os.path.join(OUT, "dhcpv6-names.jsonl"), "--json"], check_rc=(0,))
named = {a["ip"]: (a.get("mac"), a.get("hostname"), a.get("dhcp")) for a in json.loads(inv_out)}
ORO6 = {"fingerprint6": "23,39"}
c.eq("the address another MAC took has that MAC's names only", named.get("fd77:3::50"), (B, "laptop-B", ORO6))
c.eq("each client's link-local address has its own MAC's names",
     (named.get(link_local(A)), named.get(link_local(B))),
     ((A, "infusion-pump-A", {"vendor_class": "PUMPCO-GW", **ORO6}), (B, "laptop-B", ORO6)))
c.eq("an address a relay message from elsewhere names gets no names", named.get("fd77:3::10"), (PACS, None, None))
c.true("nor the relaying host (the exchange tied it no address)", named.get("fd77:3::66", (None, None, None))[1] is None)
c.eq("the router's names stay with the router's addresses", (named.get(link_local(R)), named.get("fd77:9::5")),
     ((R, "core-router", {"vendor_class": "RouterOS", **ORO6}), (R, None, None)))
c.done()
