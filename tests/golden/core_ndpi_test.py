#!/usr/bin/python3
"""Classification of real traffic in the flow events: nDPI for the protocols it knows (TLS + SNI,
SSH, HTTP, DNS, SMB), medmon's own dissectors (app) for DICOM and HL7, which take precedence."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, analyze, of_type, pcap, run  # noqa: E402

c = Checker("core_ndpi")


def flows(rel):
    return [e for e in of_type(analyze(pcap(rel), keep_as="ndpi_" + os.path.basename(rel)), "flow")]


def ndpi(e):
    n = e.get("ndpi") or {}
    return n.get("protocol", ""), n.get("app", "")


tls = flows("core/real_tls.pcap")
c.eq("real_tls: two TLS flows", [ndpi(e)[0] for e in tls], ["TLS", "TLS"])
c.eq("real_tls: SNI of each connection", sorted((e.get("tls") or {}).get("sni") for e in tls),
     ["pacs.hospital.example", "ris.hospital.example"])
c.true("real_tls: risks are a list of names", all(isinstance(e["ndpi"]["risks"], list) for e in tls if e.get("ndpi")))
c.true("real_tls: the self-signed certificate is reported as nDPI reports it",
       any("Self-signed Certificate" in e["ndpi"]["risks"] for e in tls if e.get("ndpi")))
ssh = flows("core/real_ssh.pcap")
c.eq("real_ssh: SSH", [ndpi(e)[0] for e in ssh], ["SSH"])
http = flows("core/real_http.pcap")
c.eq("real_http: four HTTP flows", [ndpi(e)[0] for e in http], ["HTTP"] * 4)
c.true("real_http: one over IPv6", any(e["src_ip"] == "::1" for e in http))
dns = flows("core/real_dns.pcap")
c.eq("real_dns: four DNS flows", [ndpi(e)[0] for e in dns], ["DNS"] * 4)
c.true("real flows have no medmon app", all(e["app"] is None for e in tls + ssh + http + dns))

demo = flows("demo/demo.pcap")
by_port = {}
for e in demo:
    by_port.setdefault(e["dst_port"], []).append(e)
dicom = [e for e in by_port.get(11112, [])]
c.eq("demo: two DICOM associations claimed by the dicom dissector", [e["app"] for e in dicom], ["dicom", "dicom"])
c.eq("demo: HL7 claimed by the hl7 dissector", [e["app"] for e in by_port.get(2575, [])], ["hl7"])
ssh = [e for e in by_port.get(22, []) if e["flow"]["payload_bytes_toserver"] > 0]
c.eq("demo: SSH attempt to the workstation", [ndpi(e)[0] for e in ssh], ["SSH"])
smb = [e for e in by_port.get(445, []) if e["flow"]["payload_bytes_toserver"] > 0]
c.true("demo: SMB2 negotiate classified as SMB (%s)" % [ndpi(e) for e in smb],
       len(smb) == 1 and any("SMB" in x for x in ndpi(smb[0])))
c.eq("demo: DNS to 8.8.8.8", [ndpi(e)[0] for e in by_port.get(53, [])], ["DNS", "DNS"])
scan = [e for e in demo if e["src_port"] == 61000]
c.eq("demo: ten SYN-scan probes, one flow each", len(scan), 10)
c.true("demo: scan probes carry no payload", all(e["flow"]["payload_bytes_toserver"] == 0 for e in scan))

# The console summary counts a protocol nDPI only guessed from the port (ndpi.guessed) as Unknown,
# as the flow event marks it: the WS-Discovery datagram of sdc.pcap is guessed from port 3702.
sdc = flows("clinical/sdc.pcap")
c.eq("sdc: one flow whose protocol nDPI guessed", [ndpi(e)[0] for e in sdc if (e.get("ndpi") or {}).get("guessed")], ["WSD"])
_, _, err = run(["analyze", pcap("clinical", "sdc.pcap"), "--out", "-"])
by_proto = [l.split(":", 1)[1].split() for l in err.splitlines() if "flows by protocol:" in l]
c.eq("sdc summary: the guessed flow counts as Unknown", by_proto, [["sdc", "4", "Unknown", "1"]])
c.done()
