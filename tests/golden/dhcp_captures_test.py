#!/usr/bin/python3
"""DHCPv4 made by dnsmasq, ISC dhclient and busybox udhcpc (pcaps/dhcp/dhcp-dora.pcap, see its
README): one dhcp event per message with the values tshark reads, and the asset inventory names
each client's address by the host name, vendor class and option list its MAC gave."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pcap  # noqa: E402

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
c.done()
