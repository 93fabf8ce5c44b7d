"""Golden test for the DICOM captures (pcaps/dicom, made by make-captures.sh): the `dicom`
events match what the generator did, and agree with tshark's DICOM dissector on the same file."""
import collections
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pcap, pseudonym  # noqa: E402

C = Checker("dicom_captures")
TSHARK = shutil.which("tshark")
SECRETS = ["notasecret", "techuser", "Testpatient", "Alpha", "MM0001", "MM0002", "M\u00fcller", "Worklist^",
           "19600101", "ACC1001", "SN-0042", "1 Imaginary Road", "ROOM1",
           # the made-up study's UID root: Study, Series and SOP Instance UIDs are PHI (linkable)
           "1.2.826.0.1.3680043.9.7133.1"]
PHI_TAGS = {"0010,0010": "PatientName", "0010,0020": "PatientID", "0010,0030": "PatientBirthDate",
            "0008,0050": "AccessionNumber"}


def schema_validator():
    try:
        import jsonschema
    except ImportError:
        return None
    with open(os.path.join(os.path.dirname(__file__), "../../docs/schema/dicom.json")) as f:
        return jsonschema.Draft202012Validator(json.load(f))


VALIDATOR = schema_validator()


def events_of(name):
    ev = analyze(pcap("dicom", name), keep_as="dicom-" + name.replace(".pcap", ""))
    text = json.dumps(ev, ensure_ascii=False)
    for s in SECRETS:
        C.true(f"{name}: no PHI or password in clear ({s!r})", s not in text)
    d = of_type(ev, "dicom")
    if VALIDATOR:
        for e in d:
            errs = [f"{'/'.join(map(str, x.path))}: {x.message}" for x in VALIDATOR.iter_errors(e)]
            C.true(f"{name}: dicom event valid against docs/schema/dicom.json {errs[:3]}", not errs)
    return ev, d


def tshark(name, ports):
    """What tshark's DICOM dissector sees: RQ AE titles, command fields, final statuses, PHI tags."""
    if not TSHARK:
        return None
    dec = []
    for p in ports:
        dec += ["-d", f"tcp.port=={p},dicom"]
    path = pcap("dicom", name)
    out = subprocess.run([TSHARK, "-r", path, *dec, "-o", "tcp.reassemble_out_of_order:TRUE", "-O", "dicom", "-V"],
                         capture_output=True, text=True, errors="replace").stdout
    res = {"rq_ae": [], "commands": collections.Counter(), "final": collections.Counter(), "phi": set(),
           "reject": [], "abort": []}
    for line in out.splitlines():
        m = re.match(r"\s+\((0000,0100)\)\s+\d+\s+Command Field\s+(\S+)", line)
        if m:
            res["commands"][m.group(2)] += 1
            continue
        m = re.match(r"\s+\(0000,0900\)\s+\d+\s+Status\s+.*\((0x[0-9a-fA-F]+)\)\s*$", line)
        if m:
            st = int(m.group(1), 16)
            if st not in (0xFF00, 0xFF01):
                res["final"][st] += 1
            continue
        m = re.match(r"\s+\(([0-9a-fA-F]{4},[0-9a-fA-F]{4})\)\s+(\d+)\s+.*?(\[..\] )?(.*)$", line)
        if m and m.group(1).lower() in PHI_TAGS and int(m.group(2)) > 0 and m.group(4).strip(" *?^") != "":
            res["phi"].add(PHI_TAGS[m.group(1).lower()])
    f = subprocess.run([TSHARK, "-r", path, *dec, "-Y", "dicom.pdu.type==1", "-T", "fields",
                        "-e", "dicom.assoc.ae.calling", "-e", "dicom.assoc.ae.called"],
                       capture_output=True, text=True).stdout
    for line in f.splitlines():
        if line.strip():
            calling, called = line.split("\t")[:2]
            res["rq_ae"].append((calling.strip(), called.strip()))
    for fld, key in (("dicom.assoc.reject.reason", "reject"), ("dicom.assoc.abort.source", "abort")):
        f = subprocess.run([TSHARK, "-r", path, *dec, "-T", "fields", "-e", fld], capture_output=True, text=True).stdout
        res[key] = [int(x, 0) for x in f.split() if x.strip()]
    return res


def agree_with_tshark(name, ports, dicom, dimse=True):
    t = tshark(name, ports)
    if t is None:
        print("tshark not found: comparison skipped")
        return
    ours_ae = sorted((d["dicom"]["calling_ae"], d["dicom"]["called_ae"]) for d in dicom if d["dicom"]["start_seen"])
    C.eq(f"{name}: AE titles vs tshark", ours_ae, sorted(t["rq_ae"]))
    cmds, final, phi = collections.Counter(), collections.Counter(), set()
    for d in dicom:
        for op in d["dicom"]["ops"]:
            if op["request_seen"]:
                cmds[op["command"] + "-RQ"] += 1
            if op["responses"]:
                cmds[op["command"] + "-RSP"] += op["responses"]
            if op.get("final") and "status" in op:
                final[op["status"]] += 1
            phi |= set(op.get("phi", []))
    if dimse:
        C.eq(f"{name}: DIMSE commands vs tshark", dict(cmds), dict(t["commands"]))
        C.eq(f"{name}: final statuses vs tshark", dict(final), dict(t["final"]))
    if t["phi"]:  # tshark decodes no deflated datasets: compare only where it saw some
        C.eq(f"{name}: PHI tags vs tshark", sorted(phi & set(PHI_TAGS.values())), sorted(t["phi"]))
    C.eq(f"{name}: reject reasons vs tshark", [d["dicom"]["reject"]["reason"] for d in dicom if "reject" in d["dicom"]],
         t["reject"])
    C.eq(f"{name}: abort sources vs tshark", [d["dicom"]["abort"]["source"] for d in dicom if "abort" in d["dicom"]],
         t["abort"])


def one(name, ports=(11112,), tshark_dimse=True):
    ev, d = events_of(name)
    C.eq(f"{name}: one dicom event", len(d), 1)
    agree_with_tshark(name, ports, d, tshark_dimse)
    return ev, (d[0]["dicom"] if d else {"ops": [], "contexts": []})


def op_ts(a, op):
    """Accepted transfer syntax of the presentation context an op used."""
    for c in a["contexts"]:
        if c["id"] == op.get("pc_id"):
            return c.get("ts")
    return None


def ops(a, cmd=None):
    return [o for o in a["ops"] if cmd is None or o["command"] == cmd]


# --- C-STORE, explicit VR LE, three images of two made-up patients
ev, a = one("store-explicit.pcap")
C.eq("store: AEs", (a.get("calling_ae"), a.get("called_ae")), ("CT_SCANNER1", "PACS1"))
C.eq("store: released", a.get("status"), "released")
C.eq("store: 3 C-STOREs", [o["command"] for o in a["ops"]], ["C-STORE"] * 3)
C.eq("store: all success", {o.get("status_class") for o in a["ops"]}, {"success"})
C.eq("store: modalities", [o.get("modality") for o in a["ops"]], ["CT", "CT", "MR"])
C.eq("store: SOP classes", [o.get("sop_class_name") for o in a["ops"]], ["CTImageStorage", "CTImageStorage", "MRImageStorage"])
C.eq("store: manufacturer", {o.get("manufacturer") for o in a["ops"]}, {"Medmon Test Imaging"})
C.eq("store: model", {o.get("model") for o in a["ops"]}, {"TestModality 64"})
C.eq("store: software", {o.get("software_versions") for o in a["ops"]}, {"1.0.3"})
C.eq("store: station pseudonym", {o.get("station_name") for o in a["ops"]}, {pseudonym("ROOM1")})
C.eq("store: serial pseudonym", {o.get("device_serial") for o in a["ops"]}, {pseudonym("SN-0042")})
C.eq("store: pixel data skipped", {o.get("pixel_data") for o in a["ops"]}, {True})
C.eq("store: patient id pseudonyms", [o.get("patient_ids") for o in a["ops"]],
     [[pseudonym("MM0001")], [pseudonym("MM0001")], [pseudonym("MM0002")]])
# ISO_IR 100 name decoded before pseudonymising: equals the pseudonym of the UTF-8 spelling.
C.eq("store: Latin-1 name decoded", a["ops"][2].get("patient_names") if len(a["ops"]) > 2 else None,
     [pseudonym("M\u00fcller^Zo\u00eb")])
C.true("store: tier 1 PHI", {"PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "PatientAddress",
                             "StudyID"} <= set(a.get("phi", [])))
C.true("store: tier 2 PHI", {"StudyDate", "InstitutionName", "ReferringPhysicianName", "DeviceSerialNumber",
                             "StationName", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"}
       <= set(a.get("phi_tier2", [])))
C.eq("store: explicit LE used", [op_ts(a, o) for o in a["ops"]], ["1.2.840.10008.1.2.1"] * 3)
C.eq("store: max PDU", (a.get("rq", {}).get("max_pdu"), a.get("ac", {}).get("max_pdu")), (16384, 16384))
C.eq("store: impl version", a.get("rq", {}).get("impl_version"), "OFFIS_DCMTK_367")
C.true("store: many contexts proposed", len(a["contexts"]) > 50)
flows = [e for e in of_type(ev, "flow")]
C.true("store: flow app dicom", any(f.get("app") == "dicom" for f in flows))
store_ops = a["ops"]

# --- C-ECHO, released and aborted
ev, a = one("echo.pcap")
C.eq("echo: op", [(o["command"], o.get("status")) for o in a["ops"]], [("C-ECHO", 0)])
C.eq("echo: calling", a.get("calling_ae"), "MODALITY1")
C.eq("echo: verification", a["contexts"][0].get("name") if a["contexts"] else None, "VerificationSOPClass")
ev, a = one("echo-abort.pcap")
C.eq("abort: status", a.get("status"), "aborted")
C.eq("abort: from client, service user", (a.get("abort", {}).get("from"), a.get("abort", {}).get("source_name")),
     ("client", "service_user"))
C.eq("abort: echo done first", [(o["command"], o.get("status")) for o in a["ops"]], [("C-ECHO", 0)])

# --- user identity with a password in clear
ev, a = one("store-user-password.pcap")
u = a.get("rq", {}).get("user_identity", {})
C.eq("user identity: type", u.get("type_name"), "username_passcode")
C.eq("user identity: password flagged", u.get("password_in_clear"), True)

# --- implicit VR on a non-standard port
ev, a = one("store-implicit-port4711.pcap", ports=(4711,))
C.eq("port 4711: dst port", of_type(ev, "dicom")[0].get("dst_port") if of_type(ev, "dicom") else None, 4711)
C.eq("port 4711: implicit accepted", {c.get("ts") for c in a["contexts"] if c.get("result") == 0}, {"1.2.840.10008.1.2"})
C.eq("port 4711: op", [(o["command"], o.get("modality"), o.get("status")) for o in a["ops"]], [("C-STORE", "MR", 0)])
C.eq("port 4711: AEs", (a.get("calling_ae"), a.get("called_ae")), ("MR_CONSOLE", "PACS2"))

# --- max PDU sizes
for name, pdu, n in (("store-pdu4k.pcap", 4096, 1), ("store-pdu128k.pcap", 131072, 2)):
    ev, a = one(name)
    C.eq(f"{name}: max PDU", (a.get("rq", {}).get("max_pdu"), a.get("ac", {}).get("max_pdu")), (pdu, pdu))
    C.eq(f"{name}: ops", [(o["command"], o.get("status"), o.get("pixel_data")) for o in a["ops"]], [("C-STORE", 0, True)] * n)
    C.true(f"{name}: no anomalies", not of_type(ev, "anomaly"))

# --- explicit VR big endian and deflated explicit VR LE datasets
# tshark does not inflate deflated datasets and loses the DIMSE messages after one.
for name, ts in (("store-bigendian.pcap", "1.2.840.10008.1.2.2"), ("store-deflate.pcap", "1.2.840.10008.1.2.1.99")):
    ev, a = one(name, tshark_dimse=not name.endswith("deflate.pcap"))
    o = a["ops"][0] if a["ops"] else {}
    C.eq(f"{name}: syntax of the op's context", op_ts(a, o), ts)
    C.eq(f"{name}: dataset walked", (o.get("modality"), o.get("patient_ids"), o.get("pixel_data")),
         ("CT", [pseudonym("MM0001")], True))
    C.true(f"{name}: no anomalies", not of_type(ev, "anomaly"))

# --- rejected associations
ev, a = one("reject-refused.pcap")
C.eq("refused: status", a.get("status"), "rejected")
C.eq("refused: reason", (a.get("reject", {}).get("result_name"), a.get("reject", {}).get("source_name"),
                         a.get("reject", {}).get("reason_name")), ("permanent", "service_user", "no_reason"))
ev, a = one("reject-unknown-ae.pcap")
C.eq("unknown AE: calling", a.get("calling_ae"), "INTRUDER")
C.eq("unknown AE: rejected (dcmqrscp answers 'called AE not recognised')", a.get("reject", {}).get("reason_name"),
     "called_ae_not_recognized")
# The title the server rejected is not its own: the inventory lists the caller's only.
C.eq("unknown AE: the rejected called AE is no AE title of the server",
     sorted({t for x in of_type(ev, "asset") for t in x["asset"].get("dicom", {}).get("ae_titles", [])}), ["INTRUDER"])

# --- worklist C-FIND: the day's schedule leaks in the responses
ev, a = one("find-worklist.pcap")
f = ops(a, "C-FIND")
C.eq("worklist: one C-FIND", len(f), 1)
if f:
    C.eq("worklist: SOP class", f[0].get("sop_class_name"), "FINDModalityWorklistInformationModel")
    C.eq("worklist: responses", (f[0].get("responses"), f[0].get("pending"), f[0].get("status_class")), (4, 3, "success"))
    C.eq("worklist: three patients", sorted(f[0].get("patient_ids", [])),
         sorted(pseudonym(x) for x in ("MM0101", "MM0102", "MM0103")))
    C.true("worklist: PHI in responses", {"PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"} <= set(f[0].get("phi", [])))

# --- study root C-FIND
ev, a = one("find-studyroot.pcap")
f = ops(a, "C-FIND")
C.eq("study root: SOP class", f[0].get("sop_class_name") if f else None, "FINDStudyRootQueryRetrieveInformationModel")
C.eq("study root: two studies", (f[0].get("pending"), f[0].get("status")) if f else None, (2, 0))

# --- C-MOVE: the request flow and the sub-operation flow back to the destination
ev, d = events_of("move.pcap")
agree_with_tshark("move.pcap", (11112, 11113), d)
C.eq("move: two associations", len(d), 2)
mv = [o for e in d for o in e["dicom"]["ops"] if o["command"] == "C-MOVE"]
st = [o for e in d for o in e["dicom"]["ops"] if o["command"] == "C-STORE"]
C.eq("move: destination", [o.get("move_destination") for o in mv], ["VIEWER1"])
C.eq("move: sub-operations", mv[0].get("sub_ops", {}).get("completed") if mv else None, 2)
C.eq("move: sub-op stores", [(o.get("move_originator"), o.get("status")) for o in st], [("VIEWER1", 0)] * 2)
C.eq("move: sub-op association AEs", sorted((e["dicom"]["calling_ae"], e["dicom"]["called_ae"]) for e in d),
     [("QRSCP", "VIEWER1"), ("VIEWER1", "QRSCP")])

# --- C-GET: stores come back on the same association, as requests from the server
ev, a = one("get.pcap")
g = ops(a, "C-GET")
s = ops(a, "C-STORE")
C.eq("get: one C-GET", [(o.get("status"), o.get("sub_ops", {}).get("completed")) for o in g], [(0, 1)])
C.eq("get: sub-op store to the client", [(o["dir"], o.get("modality"), o.get("status")) for o in s], [("to_client", "MR", 0)])
C.true("get: SCP role negotiated", any(r.get("scp") for r in a.get("rq", {}).get("roles", [])))

# --- DICOM over TLS: nothing to dissect, no dicom event
ev, d = events_of("tls.pcap")
C.eq("tls: no dicom event", len(d), 0)
fl = of_type(ev, "flow")
C.eq("tls: recorded as DICOM over TLS (port 2762)", [f.get("app") for f in fl], ["dicom-tls"])

# --- capture starting mid-association
ev, d = events_of("midstream.pcap")
C.eq("midstream: one association", len(d), 1)
if d:
    a = d[0]["dicom"]
    C.eq("midstream: start not seen", a["start_seen"], False)
    C.eq("midstream: released", a["status"], "released")
    by_id = sorted(a["ops"], key=lambda o: o["msg_id"])
    C.eq("midstream: ops", [(o["msg_id"], o["command"], o["request_seen"], o.get("status")) for o in by_id],
         [(1, "C-STORE", False, 0), (2, "C-STORE", True, 0), (3, "C-STORE", True, 0)])
    C.eq("midstream: later ops walked", [o.get("modality") for o in by_id[1:]], ["CT", "MR"])
C.true("midstream: no anomalies", not of_type(ev, "anomaly"))

# --- a segment lost inside P-DATA: the same ops as the full capture
ev, d = events_of("gap.pcap")
C.eq("gap: one association", len(d), 1)
if d:
    a = d[0]["dicom"]
    C.eq("gap: same ops as without the hole", [(o["command"], o.get("status"), o.get("patient_ids")) for o in a["ops"]],
         [(o["command"], o.get("status"), o.get("patient_ids")) for o in store_ops])
    C.eq("gap: released", a["status"], "released")

# --- hostile lengths: anomalies, no crash, each flow still reported
ev, d = events_of("hostile.pcap")
names = collections.Counter(e["anomaly"]["name"] for e in of_type(ev, "anomaly") if e["anomaly"]["dissector"] == "dicom")
for n in ("item_past_end", "pdv_past_pdu_end", "unknown_pdu_type", "bad_pdu_length", "missing_dataset"):
    C.true(f"hostile: anomaly {n} ({dict(names)})", names[n] >= 1)
C.eq("hostile: one dicom event per flow", len(d), 5)
C.true("hostile: echo after the bad PDV still decoded",
       any(o["command"] == "C-ECHO" and o["msg_id"] == 2 for e in d for o in e["dicom"]["ops"]))

C.done()
