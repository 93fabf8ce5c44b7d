#!/usr/bin/python3
"""DHCPv6 renewal, rebinding, release, decline and prefix delegation made by ISC dhcpd -6 and ISC
dhclient -6 (pcaps/dhcp/dhcpv6-renew.pcap, see its README): one dhcp event per message with the
values tshark reads, the IA_PD prefix next to the IA_NA address, and the asset inventory names
the address each REPLY gives by the FQDN and option list of the MAC in the client's DUID, until
the client declines it."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pcap  # noqa: E402

VENT, PUMP = "00:00:5e:00:53:05", "00:00:5e:00:53:06"
SERVER_DUID = "00:02:00:00:7e:d9:4d:45:44:4d:4f:4e"  # DUID-EN, enterprise 32473, "MEDMON"
c = Checker("dhcpv6_renew_capture")
ev = analyze(pcap("dhcp", "dhcpv6-renew.pcap"), keep_as="dhcpv6-renew")
msgs = [e["dhcp"] for e in of_type(ev, "dhcp")]

# Frames 1-19 of the README's table.
c.eq("messages", [(m.get("message_type"), m.get("client_mac"), m["op"]) for m in msgs],
     [("SOLICIT", VENT, "request"), ("ADVERTISE", VENT, "reply"), ("REQUEST", VENT, "request"), ("REPLY", VENT, "reply"),
      ("RENEW", VENT, "request"), ("REPLY", VENT, "reply"), ("RENEW", VENT, "request"),
      ("REBIND", VENT, "request"), ("REPLY", VENT, "reply"), ("RELEASE", VENT, "request"), ("REPLY", VENT, "reply"),
      ("SOLICIT", PUMP, "request"), ("ADVERTISE", PUMP, "reply"), ("REQUEST", PUMP, "request"), ("REPLY", PUMP, "reply"),
      ("DECLINE", PUMP, "request"), ("REPLY", PUMP, "reply"), ("SOLICIT", PUMP, "request"), ("ADVERTISE", PUMP, "reply")])
c.true("every event is DHCPv6 from a DUID-LL", all(m.get("version") == 6 and m.get("client_duid_type") == "LL" for m in msgs))
if len(msgs) == 19:
    c.eq("server DUID in every reply", {m.get("server_duid") for m in msgs if m["op"] == "reply"}, {SERVER_DUID})
    c.eq("the server's id in the client's messages after an ADVERTISE, none in REBIND (RFC 8415 18.2.5)",
         [(m["message_type"], "server_duid" in m) for m in msgs[2:11] if m["op"] == "request"],
         [("REQUEST", True), ("RENEW", True), ("RENEW", True), ("REBIND", False), ("RELEASE", True)])
    c.eq("addresses given", [(i + 1, m.get("assigned_ip")) for i, m in enumerate(msgs) if "assigned_ip" in m],
         [(2, "fd77:3::105"), (4, "fd77:3::105"), (6, "fd77:3::105"), (9, "fd77:3::105"),
          (13, "fd77:3::106"), (15, "fd77:3::106"), (19, "fd77:3::106")])
    c.eq("what each of ventilator-4's messages holds: IA types, addresses, prefixes",
         [[(ia["type"], [a.get("address") or a.get("prefix") for a in ia.get("addresses", ia.get("prefixes", []))])
           for ia in m.get("ia", [])] for m in msgs[:11]],
         [[("na", []), ("pd", [])]] +
         [[("na", ["fd77:3::105"]), ("pd", ["fd77:60:500::/56"])]] * 9 + [[]])
    # The server's T1/T2 (6 s, 12 s) and lifetimes (40 s, 60 s) in every IA it gives; the
    # client asks for its own (3600/5400, 7200/7500).
    c.eq("T1, T2 and lifetimes of the server's IAs",
         {(ia["type"], ia["t1"], ia["t2"], l["preferred_lifetime"], l["valid_lifetime"])
          for i in (1, 3, 5, 8) for ia in msgs[i]["ia"] for l in ia.get("addresses", ia.get("prefixes", []))},
         {("na", 6, 12, 40, 60), ("pd", 6, 12, 40, 60)})
    c.eq("the client's wishes", {(ia["t1"], ia["t2"]) for i in (2, 4, 6, 7) for ia in msgs[i]["ia"]}, {(3600, 5400)})
    c.eq("the first REPLY's prefix", msgs[3]["ia"][1],
         {"type": "pd", "iaid": "0x5e005305", "t1": 6, "t2": 12,
          "prefixes": [{"prefix": "fd77:60:500::/56", "preferred_lifetime": 40, "valid_lifetime": 60}]})
    c.eq("RELEASE and DECLINE give their IA back with lifetimes 0",
         [[(ia["t1"], ia["t2"], [(a["preferred_lifetime"], a["valid_lifetime"]) for a in ia.get("addresses", ia.get("prefixes", []))])
           for ia in msgs[i]["ia"]] for i in (9, 15)],
         [[(0, 0, [(0, 0)]), (0, 0, [(0, 0)])], [(0, 0, [(0, 0)])]])
    c.eq("the REPLYs to RELEASE and DECLINE: a status, no address",
         [(m.get("status"), m.get("status_message"), "assigned_ip" in m, "ia" in m) for m in (msgs[10], msgs[16])],
         [("Success", "Release received.", False, False), ("Success", "Decline received.", False, False)])
    c.eq("client FQDNs", {m["client_mac"]: m.get("client_fqdn") for m in msgs if m["message_type"] == "SOLICIT"},
         {VENT: "ventilator-4.ward3.hospital.example", PUMP: "infusion-pump-13.ward3.hospital.example"})
    c.eq("the client's address: its link-local, both ways",
         {m["client_mac"]: {x.get("client_ip") for x in msgs if x["client_mac"] == m["client_mac"]} for m in msgs},
         {VENT: {"fe80::200:5eff:fe00:5305"}, PUMP: {"fe80::200:5eff:fe00:5306"}})
c.eq("no anomalies", of_type(ev, "anomaly"), [])

last = {}
for a in of_type(ev, "asset"):
    last[a["asset"]["ip"]] = a["asset"]
c.eq("devices named by DHCPv6",
     {ip: (a.get("mac"), a.get("hostname"), a.get("dhcp")) for ip, a in last.items() if "hostname" in a},
     {"fe80::200:5eff:fe00:5305": (VENT, "ventilator-4", {"fingerprint6": "23,24"}),
      "fd77:3::105": (VENT, "ventilator-4", {"fingerprint6": "23,24"}),
      "fe80::200:5eff:fe00:5306": (PUMP, "infusion-pump-13", {"fingerprint6": "23,24"})})
# The address infusion-pump-13 declined (another node's, as far as it knows) had its names and
# MAC from the REPLY only, until the DECLINE: no frame or flow of it was seen, so it is no device
# and gets no asset event.
c.eq("the declined address is no device",
     [a["asset"] for a in of_type(ev, "asset") if a["asset"]["ip"] == "fd77:3::106"], [])
c.done()
