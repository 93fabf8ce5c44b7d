"""TCP flows picked up without their handshake are oriented by evidence, not by their first packet.

The captures are bundled ones cut so that the server speaks first, as when a SPAN capture starts in
the middle of a connection (MLLP connections stay open for days):
- DICOM to the PACS on 11112 (pcaps/policy/cleartext-store.pcap) from the PACS's A-ASSOCIATE-AC on:
  the CT stays the client, nothing is reported about the PACS using the CT's AE title, and the
  alerts are those of the whole capture;
- DICOM on ports no registry knows (pcaps/dicom/store-implicit-port4711.pcap) from the
  A-ASSOCIATE-AC on: the content turns the flow round before the dissector reads it; and from
  the acceptor's C-STORE-RSP on: the DIMSE response says which side is the server;
- HL7 to the RIS's 2575 (pcaps/policy/hl7-test-on-production.pcap) with the PACS's pure ACK of an
  earlier segment first: the port names the server; the alerts are the whole capture's;
- HL7 on 6661 (pcaps/hl7/mllp-port6661.pcap) from the listener's first acknowledgment on: the
  acknowledgment names its sender the server;
and the same orientation with three workers.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import OUT, SRC, Checker, analyze, of_type, pcap  # noqa: E402

SITE = os.path.join(SRC, "policies", "sites", "rules-hospital.yaml")
CT, PACS, RIS = "10.10.1.10", "10.10.2.20", "10.10.3.30"


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic == 0xA1B2C3D4, f"{path}: a little-endian microsecond pcap expected"
    records, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        records.append([sec, usec, orig, data[off + 16:off + 16 + incl]])
        off += 16 + incl
    return data[:24], records


def write_pcap(name, header, records):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(header)
        for sec, usec, orig, frame in records:
            f.write(struct.pack("<IIII", sec, usec, len(frame), orig) + frame)
    return path


def cut(src, name, frames, first=None):
    """The capture's frames numbered `frames` (1-based, as tshark counts), after a copy of frame
    `first` stamped 1 us before them (a pure ACK of an earlier segment)."""
    header, recs = read_pcap(src)
    out = [list(recs[n - 1]) for n in frames]
    if first is not None:
        r = list(recs[first - 1])
        t = out[0][0] * 1_000_000 + out[0][1] - 1
        r[0], r[1] = divmod(t, 1_000_000)
        out.insert(0, r)
    return write_pcap(name, header, out)


def alerts(events):
    return sorted((a["alert"]["rule"], a["alert"].get("device"), a["alert"].get("peer"), a["alert"]["severity"])
                  for a in of_type(events, "alert"))


def tcp_flow(events):
    fl = [e for e in of_type(events, "flow") if e["proto"] == "tcp"]
    return fl[0] if len(fl) == 1 else None


c = Checker("core_orientation")

# DICOM from the PACS's A-ASSOCIATE-AC on (frame 18; the RQ was frames 4-8 and 14-15).
whole = analyze(pcap("policy", "cleartext-store.pcap"), "--site", SITE)
src = pcap("policy", "cleartext-store.pcap")
mid = cut(src, "orient-dicom-ac-first.pcap", range(18, len(read_pcap(src)[1]) + 1))
ev = analyze(mid, "--site", SITE, keep_as="orient-dicom-ac-first")
f = tcp_flow(ev)
c.true("dicom ac first: one TCP flow", f is not None)
if f:
    c.eq("dicom ac first: the CT is the client", (f["src_ip"], f["dst_ip"], f["dst_port"]), (CT, PACS, 11112))
    c.eq("dicom ac first: oriented by the A-ASSOCIATE-AC", f["flow"]["initiator"], "content")
    c.eq("dicom ac first: declared", f.get("verdict"), "declared")
dc = of_type(ev, "dicom")
c.eq("dicom ac first: one association", len(dc), 1)
if dc:
    c.eq("dicom ac first: the association's client is the CT", (dc[0]["src_ip"], dc[0]["dicom"].get("calling_ae")), (CT, "CT01"))
c.eq("dicom ac first: no unexpected PDU", [a for a in of_type(ev, "anomaly") if a["anomaly"]["name"] == "unexpected_pdu"], [])
got = alerts(ev)
for rule in ("dicom.ae_spoofing", "dicom.ae_new_ip", "flow.undeclared", "lateral.port_scan", "lateral.zone_crossing"):
    c.eq(f"dicom ac first: no {rule}", [a for a in got if a[0] == rule], [])
c.eq("dicom ac first: the whole capture's alerts", got, alerts(whole))

# DICOM on 4711 from the A-ASSOCIATE-AC on (frame 10): neither port tells, the content does.
mid = cut(pcap("dicom", "store-implicit-port4711.pcap"), "orient-dicom-port4711.pcap",
          range(10, len(read_pcap(pcap("dicom", "store-implicit-port4711.pcap"))[1]) + 1))
ev = analyze(mid, keep_as="orient-dicom-port4711")
f = tcp_flow(ev)
if f:
    c.eq("dicom 4711: the acceptor is the server", (f["src_port"], f["dst_port"]), (33140, 4711))
    c.eq("dicom 4711: oriented by the A-ASSOCIATE-AC", f["flow"]["initiator"], "content")
    c.eq("dicom 4711: the store went to the server", f["flow"]["payload_bytes_toserver"] > f["flow"]["payload_bytes_toclient"], True)
dc = of_type(ev, "dicom")
c.eq("dicom 4711: one association, from the client", [(d["src_port"], d["flow_id"] == (f or {}).get("flow_id")) for d in dc], [(33140, True)])
if dc:
    ops = dc[0]["dicom"].get("ops", [])
    c.eq("dicom 4711: a C-STORE read", [o.get("command") for o in ops][:1], ["C-STORE"])
c.eq("dicom 4711: no unexpected PDU", [a for a in of_type(ev, "anomaly") if a["anomaly"]["name"] == "unexpected_pdu"], [])

# DICOM on 4711 from the acceptor's C-STORE-RSP on (frame 116: its PDU and PDV headers alone,
# the command in frame 118; the client's first bytes are its A-RELEASE-RQ): the response names
# its sender the server, not the first packet.
mid = cut(pcap("dicom", "store-implicit-port4711.pcap"), "orient-dicom-rsp-first.pcap",
          range(116, len(read_pcap(pcap("dicom", "store-implicit-port4711.pcap"))[1]) + 1))
ev = analyze(mid, keep_as="orient-dicom-rsp-first")
f = tcp_flow(ev)
c.true("dicom rsp first: one TCP flow", f is not None)
if f:
    c.eq("dicom rsp first: the acceptor is the server", (f["src_port"], f["dst_port"]), (33140, 4711))
    c.eq("dicom rsp first: oriented by the DIMSE response", f["flow"]["initiator"], "content")
dc = of_type(ev, "dicom")
c.eq("dicom rsp first: one association", len(dc), 1)
if dc:
    d = dc[0]["dicom"]
    c.eq("dicom rsp first: the C-STORE went to the server", [(o.get("command"), o.get("dir")) for o in d.get("ops", [])],
         [("C-STORE", "to_server")])
    c.eq("dicom rsp first: the client asked for the release", d.get("release"), {"requested_by": "client", "completed": True})

# HL7 RIS -> PACS:2575 with the PACS's pure ACK (frame 5) first, then the ORU (frame 4) on.
whole = analyze(pcap("policy", "hl7-test-on-production.pcap"), "--site", SITE)
mid = cut(pcap("policy", "hl7-test-on-production.pcap"), "orient-hl7-server-first.pcap", range(4, 11), first=5)
ev = analyze(mid, "--site", SITE, keep_as="orient-hl7-server-first")
f = tcp_flow(ev)
if f:
    c.eq("hl7 server first: the RIS is the client", (f["src_ip"], f["dst_ip"], f["dst_port"]), (RIS, PACS, 2575))
    c.eq("hl7 server first: oriented by the port", f["flow"]["initiator"], "port")
    c.eq("hl7 server first: the verdict of the whole capture", f.get("verdict"), tcp_flow(whole).get("verdict"))
hl = of_type(ev, "hl7")
c.eq("hl7 server first: message to the server, acknowledgment to the client",
     [(h["hl7"]["direction"], h["src_ip"]) for h in hl], [("to_server", RIS), ("to_client", RIS)])
c.eq("hl7 server first: the whole capture's alerts", alerts(ev), alerts(whole))
ev3 = analyze(mid, "--site", SITE, "--workers", "3")
c.eq("hl7 server first: three workers give the same events", ev3, ev)

# HL7 on 6661 from the listener's acknowledgment (frame 6) on.
src = pcap("hl7", "mllp-port6661.pcap")
mid = cut(src, "orient-hl7-port6661.pcap", range(6, len(read_pcap(src)[1]) + 1))
ev = analyze(mid, keep_as="orient-hl7-port6661")
f = tcp_flow(ev)
if f:
    c.eq("hl7 6661: the listener is the server", (f["src_port"], f["dst_port"]), (47096, 6661))
    c.eq("hl7 6661: oriented by the acknowledgment", f["flow"]["initiator"], "content")
hl = of_type(ev, "hl7")
c.true("hl7 6661: messages read", len(hl) >= 2)
if hl:
    c.eq("hl7 6661: the first event is the listener's acknowledgment, to the client",
         (hl[0]["hl7"]["direction"], hl[0]["hl7"].get("message_type", "")[:3]), ("to_client", "ACK"))
    c.true("hl7 6661: every message to the server, every acknowledgment to the client",
           all((h["hl7"]["direction"] == "to_client") == h["hl7"].get("message_type", "").startswith("ACK") for h in hl
               if h["hl7"].get("kind") == "message"))
c.done()
