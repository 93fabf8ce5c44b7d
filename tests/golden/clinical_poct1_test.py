#!/usr/bin/python3
"""POCT1-A capture (pcaps/clinical/poct1.pcap): the HEL/DST/REQ/OBS/EOT/END exchange of a
point-of-care meter with its data manager gives one poct1 event per message, the device
identity from HEL, acknowledgements paired by control id, and patients only as pseudonyms."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import SRC, Checker, analyze, of_type, pcap, pseudonym  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "pcaps", "clinical"))
import pcapgen  # noqa: E402


c = Checker("clinical_poct1")
ev = analyze(pcap("clinical", "poct1.pcap"), keep_as="clinical-poct1")
msgs = [e["poct1"] for e in of_type(ev, "poct1")]
c.eq("message types", [(m["direction"][3:], m["message_type"]) for m in msgs],
     [("server", "HEL.R01"), ("client", "ACK.R01"), ("server", "DST.R01"), ("client", "ACK.R01"),
      ("client", "REQ.R01"), ("server", "ACK.R01"), ("server", "OBS.R01"), ("client", "ACK.R01"),
      ("server", "EOT.R01"), ("client", "ACK.R01"), ("client", "END.R01")])
flows = of_type(ev, "flow")
c.eq("flow app", [f["app"] for f in flows], ["poct1"])
if len(msgs) == 11:
    hel = msgs[0]
    c.eq("device", hel.get("device"), {"device_id": "00:1b:22:33:44:55", "vendor_id": "ACME", "model_id": "GlucoPoint 3",
                                       "serial_id": "GP3-0042", "manufacturer": "Acme Diagnostics", "hw_version": "B",
                                       "sw_version": "4.2.1", "device_name": "Ward 5 meter"})
    c.eq("HEL control id", hel.get("control_id"), "1001")
    c.eq("HEL version", hel.get("version"), "POCT1")
    c.eq("acks", [m["ack"]["control_id"] for m in msgs if "ack" in m], ["1001", "1002", "3", "1004", "1005"])
    c.eq("new observations", msgs[2].get("new_observations"), "2")
    c.eq("request", msgs[4].get("request"), "ROBS")
    obs = msgs[6]
    c.eq("observations", (obs.get("observations"), obs.get("observation_ids")), (2, ["GLU"]))
    c.eq("patients", obs.get("patients"), [pseudonym("PAT-9001"), pseudonym("PAT-9002")])
    c.eq("operators", obs.get("operators"), [pseudonym("NURSE17")])
    c.eq("phi fields", obs.get("phi_fields"), ["poct1.PT.patient_id", "poct1.PT.name"])
    c.eq("eot topic", msgs[8].get("eot_topic"), "OBS")
# The meter's DEV block is its identity in the inventory; the data manager states none.
assets = {}
for a in of_type(ev, "asset"):
    assets[a["asset"]["ip"]] = a["asset"]
c.eq("meter identities", assets.get("10.30.1.40", {}).get("identities"),
     [{"source": "poct1 DEV", "id": "00:1b:22:33:44:55", "serial": "GP3-0042", "manufacturer": "Acme Diagnostics",
       "model": "GlucoPoint 3", "version": "4.2.1"}])
c.true("meter asset event says identity",
       any("identity" in a["asset"]["changes"] for a in of_type(ev, "asset") if a["asset"]["ip"] == "10.30.1.40"))
c.eq("data manager identities", assets.get("10.30.1.5", {}).get("identities"), None)
c.eq("flow phi_cleartext", flows[0].get("phi_cleartext") if flows else None, ["poct1.PT.patient_id", "poct1.PT.name"])
c.eq("no anomalies", of_type(ev, "anomaly"), [])
raw = "\n".join(str(e) for e in ev)
for secret in ("PAT-9001", "PAT-9002", "DOE^JANE", "ROE", "NURSE17"):
    c.true(f"PHI value {secret} never appears", secret not in raw)


def crafted(name, client_sends):
    """Events of a capture of one meter-to-manager connection: client_sends is a list of
    (bytes, cuts) sent by the meter, each cut at the given offsets (None: MSS segments)."""
    path = os.path.join(tmp, name)
    p = pcapgen.Pcap(path)
    t = pcapgen.Tcp(p, "10.30.1.40", 50001, "10.30.1.5", 5010)
    for data, cuts in client_sends:
        t.send(0, data, cuts=cuts)
    t.close()
    p.close()
    return analyze(path)


def hdr(control):
    return '<HDR><HDR.control_id V="%d"/><HDR.version_id V="POCT1"/></HDR>' % control


tmp = tempfile.mkdtemp(prefix="medmon-poct1-")

# A self-closing root (a keep-alive <KPA.R01/>) is a whole message: the end tag of the next
# message of the same type does not make the two one, in one segment or two.
kpa = b"<KPA.R01/>" + ("<KPA.R01>%s</KPA.R01>" % hdr(7)).encode()
for label, cuts in (("one segment", None), ("two segments", [10])):
    got = [e["poct1"] for e in of_type(crafted("selfclose.pcap", [(kpa, cuts)]), "poct1")]
    c.eq(f"self-closing root, {label}", [(m["message_type"], m.get("control_id")) for m in got],
         [("KPA.R01", None), ("KPA.R01", "7")])

# A patient id written with a character reference (&#45; &#x2D;) is the same patient.
obs_of = '<OBS.R01>%s<SVC><PT><PT.patient_id V="%s"/></PT></SVC></OBS.R01>'
sends = [((obs_of % (hdr(i), pid)).encode(), None) for i, pid in enumerate(("PAT-9001", "PAT&#45;9001", "PAT&#x2D;9001"))]
got = [e["poct1"].get("patients") for e in of_type(crafted("charref.pcap", sends), "poct1")]
c.eq("character references: one pseudonym", got, [[pseudonym("PAT-9001")]] * 3)

# A message over the 1 MiB cap is reported, and the next message read, however the stream was
# segmented. Here the first one has no end, and the next starts 100 bytes before the cap is
# reached: it used to be dropped with the held bytes, its rest taken for junk.
start = "<OBS.R01>%s<NTE><NTE.text V=\"" % hdr(1)
over = (start + "x" * (1024 * 1024 - 100 - len(start))).encode()
nxt = ("<DST.R01>%s<DST><DST.new_observations_qty V=\"0\"/></DST></DST.R01>" % hdr(2)).encode()
for label, cuts in (("MSS segments", None), ("60000-byte segments", range(60000, len(over) + len(nxt), 60000))):
    ev = crafted("too_long.pcap", [(over + nxt, cuts)])
    c.eq(f"message too long, {label}: next message read", [e["poct1"]["control_id"] for e in of_type(ev, "poct1")], ["2"])
    c.eq(f"message too long, {label}: anomalies", [e["anomaly"]["name"] for e in of_type(ev, "anomaly")],
         ["message_too_long"])

shutil.rmtree(tmp)
c.done()
