#!/usr/bin/python3
"""HL7 v2 captures (pcaps/hl7, made with python3-hl7, curl and tcpdump): every message appears
once with the right fields, ACKs pair with their messages, PHI leaves only as pseudonyms, and
every hl7 event validates against docs/schema/hl7.json."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pcap, SRC, pseudonym  # noqa: E402

try:
    import jsonschema
except ImportError:  # python3-jsonschema is in the test dependencies
    jsonschema = None


c = Checker("hl7_captures")
schema = json.load(open(os.path.join(SRC, "docs", "schema", "hl7.json")))
validator = jsonschema.Draft202012Validator(schema) if jsonschema else None


def hl7_events(name):
    ev = analyze(pcap("hl7", name), keep_as="hl7-" + name.replace(".pcap", ""))
    hl7 = of_type(ev, "hl7")
    for e in hl7:
        if validator:
            errs = sorted(validator.iter_errors(e), key=str)
            c.true(f"{name}: schema: {errs[0].message if errs else ''}", not errs)
    return ev, hl7


def messages(hl7, direction=None):
    return [e["hl7"] for e in hl7 if e["hl7"]["kind"] == "message"
            and (direction is None or e["hl7"]["direction"] == direction)]


# --- mixed: ADT^A01, ORM^O01, ORU^R01, SIU^S12, ADT^A08 with escapes, ORM^O01 answered AE
SENT = [("ADT0001", "ADT", "A01", "ADT_A01", "ADT1", "2.5.1"),
        ("ORM0002", "ORM", "O01", "ORM_O01", "RIS", "2.3"),
        ("ORU0003", "ORU", "R01", "ORU_R01", "MONITOR", "2.7"),
        ("SIU0004", "SIU", "S12", "SIU_S12", "SCHED", "2.5"),
        ("ADT0005", "ADT", "A08", "ADT_A01", "ADT1", "2.5.1"),
        ("ERR0006", "ORM", "O01", "ORM_O01", "RIS", "2.3")]
for name, port in (("mllp-mixed.pcap", 2575), ("mllp-port6661.pcap", 6661)):
    ev, hl7 = hl7_events(name)
    sent, acks = messages(hl7, "to_server"), messages(hl7, "to_client")
    c.eq(f"{name}: messages", [m.get("control_id") for m in sent], [s[0] for s in SENT])
    for m, (cid, typ, trig, struct, app, ver) in zip(sent, SENT):
        c.eq(f"{name} {cid} type", (m.get("message_type"), m.get("trigger_event"), m.get("message_structure")),
             (typ, trig, struct))
        c.eq(f"{name} {cid} sender", m.get("sending_application"), app)
        c.eq(f"{name} {cid} version", m.get("version"), ver)
        c.eq(f"{name} {cid} processing id", m.get("processing_id"), "P")
        c.eq(f"{name} {cid} transport", m.get("transport"), "mllp")
    c.eq(f"{name}: acks", [a["ack"]["control_id"] for a in acks], [s[0] for s in SENT])
    c.eq(f"{name}: ack codes", [a["ack"]["code"] for a in acks], ["AA"] * 5 + ["AE"])
    c.true(f"{name}: all acks matched", all(a["ack"]["matched"] for a in acks))
    c.true(f"{name}: latencies", all(a["ack"].get("latency_us", -1) >= 0 for a in acks))
    c.eq(f"{name}: acked types", [a["ack"].get("acked_type") for a in acks], [f"{s[1]}^{s[2]}" for s in SENT])
    c.true(f"{name}: port", all(e["dst_port"] == port for e in hl7))
    c.eq(f"{name}: no unacked", [e for e in hl7 if e["hl7"]["kind"] == "unacked"], [])
    c.eq(f"{name}: anomalies", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])
    by = {m["control_id"]: m for m in sent}
    adt = by.get("ADT0001", {})
    c.eq(f"{name}: ADT segments", adt.get("segments"), ["MSH", "EVN", "PID", "NK1", "PV1"])
    c.eq(f"{name}: ADT PHI", adt.get("phi_fields"),
         ["PID-3", "PID-5", "PID-7", "PID-11", "PID-13", "PID-18", "PID-19", "NK1-2", "NK1-5", "PV1-19", "EVN-2"])
    # Same HMAC as DICOM: PID-3.1 == a DICOM Patient ID, PID-5 == a DICOM PN.
    c.eq(f"{name}: patient id", adt.get("patient", {}).get("id"), pseudonym("PAT000123"))
    c.eq(f"{name}: patient name", adt.get("patient", {}).get("name"), pseudonym("DOE^JANE^Q"))
    c.eq(f"{name}: same patient in ORM", by.get("ORM0002", {}).get("patient", {}).get("id"), pseudonym("PAT000123"))
    c.eq(f"{name}: order", by.get("ORM0002", {}).get("order"), {"placer": pseudonym("PLC1001"), "filler": pseudonym("FIL2001")})
    c.eq(f"{name}: escaped name", by.get("ADT0005", {}).get("patient", {}).get("name"), pseudonym("O&BRIEN^JR^MARY|ANN"))
    oru = by.get("ORU0003", {})
    c.eq(f"{name}: devices", oru.get("devices"),
         [{"source": "OBX-18", "id": "MON-ICU-07"},
          {"source": "PRT", "udi": "(01)00812345678901(21)SN4711", "serial": "SN4711", "type": "MON"}])
    # ... and as the sender's identity in the asset inventory.
    ids = [i for a in of_type(ev, "asset") for i in a["asset"].get("identities", [])]
    c.eq(f"{name}: identities in asset events", ids,
         [{"source": "hl7 OBX-18", "id": "MON-ICU-07"},
          {"source": "hl7 PRT", "udi": "(01)00812345678901(21)SN4711", "serial": "SN4711", "type": "MON"}])
    raw = json.dumps(ev)
    for secret in ("DOE", "JANE", "PAT000123", "19700101", "MAIN ST", "555-0100", "123-45-6789", "BRIEN",
                   "NGUYEN", "PLC1001"):
        c.true(f"{name}: {secret} not in clear", secret not in raw)
    flows = [e for e in of_type(ev, "flow")]
    c.true(f"{name}: flow app", any(f.get("app") == "hl7" for f in flows))

# --- LF segment ends
ev, hl7 = hl7_events("mllp-lf.pcap")
sent = messages(hl7, "to_server")
c.eq("lf: messages", [m.get("control_id") for m in sent], ["LF0001", "LF0002"])
c.true("lf: flagged", all(m.get("lf_line_ends") for m in sent))
c.eq("lf: segments", [m.get("segments") for m in sent], [["MSH", "PID", "PV1"]] * 2)
c.eq("lf: patient", sent[0].get("patient", {}).get("id") if sent else None, pseudonym("PAT000128"))
c.eq("lf: acks", [a["ack"]["matched"] for a in messages(hl7, "to_client")], [True, True])

# --- batch file in one frame
ev, hl7 = hl7_events("mllp-batch.pcap")
sent = messages(hl7, "to_server")
c.eq("batch: messages", [(m.get("control_id"), m.get("batch")) for m in sent], [("B0001", True), ("B0002", True)])
c.eq("batch: anomalies", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])
c.eq("batch: no unacked report", [e for e in hl7 if e["hl7"]["kind"] == "unacked"], [])

# --- one message in 16-byte segments
ev, hl7 = hl7_events("mllp-split.pcap")
sent = messages(hl7, "to_server")
c.eq("split: one message", [m.get("control_id") for m in sent], ["ORU0003"])
c.eq("split: segments", sent[0].get("segments") if sent else None, ["MSH", "PID", "OBR", "OBX", "PRT"])
c.eq("split: acked", [a["ack"]["matched"] for a in messages(hl7, "to_client")], [True])

# --- HTTP POST with curl
ev, hl7 = hl7_events("http.pcap")
sent = messages(hl7, "to_server")
c.eq("http: messages", [(m.get("control_id"), m.get("transport")) for m in sent],
     [("ADT0001", "http"), ("ORU0003", "http")])
c.eq("http: acks", [(a["ack"]["control_id"], a["ack"]["matched"], a["transport"]) for a in messages(hl7, "to_client")],
     [("ADT0001", True, "http"), ("ORU0003", True, "http")])
c.eq("http: anomalies", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])

# --- compressed bodies (gzip, deflate in chunks, a gzip ACK) and HL7 over HTTP on TCP 3702
for name in ("http-gzip.pcap", "http-port3702.pcap"):
    ev, hl7 = hl7_events(name)
    sent = messages(hl7, "to_server")
    c.eq(f"{name}: messages", [(m.get("control_id"), m.get("transport")) for m in sent],
         [("ADT0001", "http"), ("ORU0003", "http")])
    c.eq(f"{name}: patients", [m.get("patient", {}).get("id") for m in sent],
         [pseudonym("PAT000123"), pseudonym("PAT000124")])
    c.eq(f"{name}: acks", [(a["ack"]["control_id"], a["ack"]["matched"]) for a in messages(hl7, "to_client")],
         [("ADT0001", True), ("ORU0003", True)])
    c.eq(f"{name}: app", [f.get("app") for f in of_type(ev, "flow")], ["hl7"])
    c.eq(f"{name}: anomalies", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])

c.done()
