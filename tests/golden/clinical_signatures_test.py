#!/usr/bin/python3
"""Signature-declared protocols: the shipped Philips IntelliVue Data Export and Datex-Ohmeda S/5
signatures recognise their generated captures, and a signature written here from the format
described in docs/protocols.md is picked up through MEDMON_SIGNATURES_DIR without rebuilding;
a broken one is reported with file:line:column."""
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pcap, run, pseudonym  # noqa: E402
from pcapwrite import write_pcap  # noqa: E402
from policy_demo_test import frame, tcp_conversation, timed  # noqa: E402
from pcapwrite import ACK, PSH  # noqa: E402


c = Checker("clinical_signatures")
IV = "philips-intellivue-data-export"

# --- Philips IntelliVue Data Export (UDP)
ev = analyze(pcap("clinical", "intellivue.pcap"), keep_as="clinical-intellivue")
flows = of_type(ev, "flow")
c.eq("intellivue flows", sorted(f.get("app") for f in flows), [IV, IV])
summaries = {(e["src_port"], e["dst_port"]): e["proprietary"] for e in of_type(ev, "proprietary")}
ci = summaries.get((24005, 24005), {})
c.eq("connect indication signature", ci.get("signature"), IV)
c.eq("connect indication model", (ci.get("fields", {}).get("manufacturer"), ci.get("fields", {}).get("model")),
     (["Philips"], ["MX800"]))
da = summaries.get((50123, 24105), {})
c.eq("data export messages", (da.get("messages_toserver"), da.get("messages_toclient")), (4, 4))
c.eq("data export identity", da.get("fields", {}).get("manufacturer"), ["Philips"])
c.eq("data export ro types", sorted(da.get("fields", {}).get("ro_type", [])), [1, 2])
pid = da.get("fields", {}).get("patient_id", [])
# UTF-16BE on the wire, decoded before the HMAC: the pseudonym an HL7 PID-3 or a DICOM Patient ID
# of the same value gets.
c.eq("patient id pseudonym, as from HL7 or DICOM", pid, [pseudonym("MRN0042")])
c.eq("patient name pseudonyms", (da.get("fields", {}).get("patient_given_name"), da.get("fields", {}).get("patient_family_name")),
     ([pseudonym("JANE")], [pseudonym("DOE")]))
# The monitor's system model is its identity in the asset inventory (once, from both flows).
monitor = [a["asset"] for a in of_type(ev, "asset") if a["asset"]["ip"] == "10.40.0.31"]
c.eq("monitor identity", monitor[-1].get("identities") if monitor else None,
     [{"source": IV, "manufacturer": "Philips", "model": "MX800"}])
c.eq("data export phi", da.get("phi_fields"), [IV + ".patient_id", IV + ".patient_given_name", IV + ".patient_family_name"])
main = [f for f in flows if f["dst_port"] == 24105]
c.eq("flow phi_cleartext", main[0].get("phi_cleartext") if main else None,
     [IV + ".patient_id", IV + ".patient_given_name", IV + ".patient_family_name"])
raw = "\n".join(str(e) for e in ev)
c.true("no patient name in clear", "J\\x00A" not in raw and "JANE" not in raw and "MRN0042" not in raw)

# --- Datex-Ohmeda S/5 computer interface over TCP (7E framing)
ev = analyze(pcap("clinical", "datex-s5.pcap"), keep_as="clinical-datex")
flows = of_type(ev, "flow")
c.eq("datex flow", [f.get("app") for f in flows], ["datex-ohmeda-s5"])
s = [e["proprietary"] for e in of_type(ev, "proprietary")]
c.eq("datex summary count", len(s), 1)
if s:
    c.eq("datex records", (s[0].get("messages_toserver"), s[0].get("messages_toclient")), (1, 4))
    c.eq("datex main types", sorted(s[0]["fields"]["main_type"]), [0, 1])
    c.eq("datex framing errors", s[0].get("framing_errors"), None)

# --- a site's own protocol, declared by a YAML written here
ACME = """# Acme CT service link, as described in docs/protocols.md
name: acme-ct-service
vendor: Acme
description: CT service and log upload
transport: tcp
ports: [7700]
probe:
  bytes:
    - {offset: 0, hex: "41 43 01"}
framing:
  length: {offset: 4, size: 2, endian: big, adjust: 6}
  max_message: 65536
fields:
  - {name: type, offset: 3, type: u8}
  - {name: serial, regex: "SN=([A-Z0-9]+)"}
  - {name: patient, regex: "PAT=([A-Z0-9]+)", phi: true}
report: messages
"""
tmp = tempfile.mkdtemp(prefix="medmon-sig-")
try:
    acme_pcap = pcap("clinical", "acme-ct-service.pcap")
    ev = analyze(acme_pcap)
    c.true("without the signature the flow is not recognised",
           all(f.get("app") != "acme-ct-service" for f in of_type(ev, "flow")))
    with open(os.path.join(tmp, "acme.yaml"), "w") as f:
        f.write(ACME)
    os.environ["MEDMON_SIGNATURES_DIR"] = tmp
    ev = analyze(acme_pcap, keep_as="clinical-acme")
    flows = of_type(ev, "flow")
    c.eq("acme flow app", [f.get("app") for f in flows], ["acme-ct-service"])
    msgs = [e["proprietary"] for e in of_type(ev, "proprietary") if not e["proprietary"].get("summary")]
    c.eq("acme messages", [(m["direction"], m["fields"].get("type")) for m in msgs],
         [("to_server", 1), ("to_client", 2), ("to_server", 3), ("to_server", 3), ("to_client", 2), ("to_client", 2)])
    c.eq("acme patients", [m["fields"].get("patient") for m in msgs if "patient" in m["fields"]], [pseudonym("PAT0099"), pseudonym("PAT0100")])
    c.eq("acme serial", msgs[0]["fields"].get("serial") if msgs else None, "CT000042")
    c.eq("acme phi in flow", flows[0].get("phi_cleartext") if flows else None, ["acme-ct-service.patient"])
    c.true("PAT0099 never in clear", "PAT0099" not in "\n".join(str(e) for e in ev))

    # a broken file: precise error on stderr, the good one still works
    with open(os.path.join(tmp, "broken.yaml"), "w") as f:
        f.write("name: broken\ntransport: tcp\nprobe:\n  bytes:\n    - {offset: 0, hex: 'zz'}\n")
    rc, out, err = run(["analyze", acme_pcap, "--out", "-"])
    c.true(f"broken signature reported with file:line:column ({err.strip()})",
           os.path.join(tmp, "broken.yaml") + ":5:" in err and "not hex" in err)
    c.true("the good signature still applies", '"app":"acme-ct-service"' in out)
    os.remove(os.path.join(tmp, "broken.yaml"))

    # Regexes that backtrack exponentially (minutes on a 56-byte payload, a probe on every flow's
    # first bytes) are refused when loaded, with file:line:column; a --signatures one exits 2.
    redos_dir = os.path.join(tmp, "redos")
    os.makedirs(redos_dir)
    with open(os.path.join(redos_dir, "words.yaml"), "w") as f:
        f.write("name: acme-words\ntransport: udp\nprobe: {bytes: [{offset: 0, hex: \"41 43 4d 45\"}]}\n"
                "fields:\n  - {name: words, regex: 'ACME ((\\w+\\s?)*)$', group: 1}\n")
    with open(os.path.join(redos_dir, "banner.yaml"), "w") as f:
        f.write("name: acme-banner\ntransport: tcp\nprobe: {regex: '^(\\w+\\s?)*:ACME'}\n")
    rc, out, err = run(["analyze", acme_pcap, "--out", "-", "--signatures", redos_dir], check_rc=None)
    c.eq("nested quantifiers: exit 2", rc, 2)
    c.true(f"nested quantifiers reported with file:line:column ({err.strip()})",
           os.path.join(redos_dir, "words.yaml") + ":5:" in err and os.path.join(redos_dir, "banner.yaml") + ":3:" in err
           and "exponential" in err)

    # A signature that knows the server's answer only: the client's first request, 3000 bytes in
    # three segments sent before the server spoke, is read whole (it was cut at the probe window).
    with open(os.path.join(tmp, "answer-first.yaml"), "w") as f:
        f.write("name: answer-first\ntransport: tcp\nprobe:\n  direction: to_client\n  bytes:\n"
                "    - {offset: 0, hex: \"5A 51 02\"}\nframing:\n  length: {offset: 4, size: 2, endian: big, adjust: 6}\n"
                "fields:\n  - {name: type, offset: 3, type: u8}\nreport: messages\n")

    def msg(magic, kind, body):
        return b"ZQ" + bytes([magic, kind]) + struct.pack("!H", len(body)) + body

    request = msg(1, 1, b"q" * 2994)
    conv = tcp_conversation("10.10.1.10", "10.10.2.20", 40001, 7701,
                            [(True, request[:1000]), (True, request[1000:2000]), (True, request[2000:]),
                             (False, msg(2, 2, b"answer")), (True, msg(1, 3, b"next"))])
    first_pcap = os.path.join(tmp, "answer-first.pcap")
    write_pcap(first_pcap, timed(conv))

    def answer_first(*extra):
        ev = analyze(first_pcap, *extra)
        msgs = [e["proprietary"] for e in of_type(ev, "proprietary") if not e["proprietary"].get("summary")]
        stats = of_type(ev, "stats")
        return ([(m["direction"], m["fields"].get("type")) for m in msgs],
                stats[-1]["stats"].get("counters", {}).get("stream.probe_hold_memcap_hits") if stats else None)

    c.eq("server-first claim: the client's long first request is read whole", answer_first(),
         ([("to_server", 1), ("to_client", 2), ("to_server", 3)], None))
    with open(os.path.join(tmp, "nohold.yaml"), "w") as f:
        f.write("reassembly:\n  probe_hold_memcap: 0\n")
    c.eq("without the hold budget the request is a gap (the framing reads nothing more of it), counted", answer_first("--config", os.path.join(tmp, "nohold.yaml")),
         ([("to_client", 2)], 1))

    # A signature's ports: on them it is probed before the built-in dissectors (an HL7-looking
    # feed on 7001 is the vendor's, not hl7), elsewhere after them; and they name the server of a
    # flow picked up mid-connection, as the built-in dissectors' ports do.
    ports_dir = os.path.join(tmp, "ports")
    os.makedirs(ports_dir)
    # Loaded first, many signatures without ports: the slots go to those that name ports.
    for i in range(64):
        with open(os.path.join(ports_dir, "a%02d.yaml" % i), "w") as f:
            f.write("name: acme-portless-%02d\ntransport: tcp\nprobe:\n  bytes: [{offset: 0, hex: \"ff fe %02x\"}]\n" % (i, i))
    with open(os.path.join(ports_dir, "feed.yaml"), "w") as f:
        f.write("name: acme-monitor-feed\ntransport: tcp\nports: [7001]\nprobe:\n  bytes: [{offset: 0, hex: \"4d 53 48 7c\"}]\n")
    with open(os.path.join(ports_dir, "vitals.yaml"), "w") as f:
        f.write("name: acme-vitals\ntransport: tcp\nports: [7003]\nprobe:\n  bytes: [{offset: 0, hex: \"56 49 54 01\"}]\n")
    oru = b"MSH|^~\\&|ACMEMON|WARD5|CIS|HOSP|20240101080000||ORU^R01|1|P|2.5\rPID|1||PAT01||DOE^JOHN\rOBX|1|NM|HR||72\r"
    ack = b"MSH|^~\\&|CIS|HOSP|ACMEMON|WARD5|20240101080001||ACK|2|P|2.5\rMSA|AA|1\r"
    frames = []
    for port in (7001, 7002):
        frames += tcp_conversation("10.50.0.10", "10.50.0.20", 41000 + port % 10, port, [(True, oru), (False, ack)])
    # No handshake: the server's record is the first packet seen.
    frames += [frame("10.50.0.20", "10.50.0.10", 7003, 41003, 6, b"VIT\x01" + b"v" * 20, 9000, 3000, PSH | ACK),
               frame("10.50.0.10", "10.50.0.20", 41003, 7003, 6, b"", 3000, 9024, ACK)]
    ports_pcap = os.path.join(tmp, "ports.pcap")
    write_pcap(ports_pcap, timed(frames))
    ev = analyze(ports_pcap, "--signatures", ports_dir)
    c.eq("signature ports: its own port first, the built-in dissectors first elsewhere",
         sorted((f["dst_port"], f.get("app")) for f in of_type(ev, "flow")),
         [(7001, "acme-monitor-feed"), (7002, "hl7"), (7003, "acme-vitals")])
    mid = [f for f in of_type(ev, "flow") if 7003 in (f["src_port"], f["dst_port"])]
    c.eq("signature ports name the server of a flow picked up mid-connection",
         [(f["src_port"], f["dst_port"]) for f in mid], [(41003, 7003)])
    stats = of_type(ev, "stats")
    counters = stats[-1]["stats"].get("counters", {}) if stats else {}
    c.eq("the flows count as the proprietary entry's", (counters.get("app.proprietary.flows"),
         counters.get("proprietary.acme-monitor-feed.flows"), counters.get("app.acme-monitor-feed.flows")), (2, 1, None))
finally:
    os.environ.pop("MEDMON_SIGNATURES_DIR", None)
    shutil.rmtree(tmp)
c.done()
