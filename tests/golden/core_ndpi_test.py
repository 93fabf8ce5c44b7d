#!/usr/bin/python3
"""Classification of real traffic in the flow events: nDPI for the protocols it knows (TLS + SNI,
SSH, HTTP, DNS, SMB), medmon's own dissectors (app) for DICOM and HL7, which take precedence."""
import os
import shutil
import subprocess
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
# The handshake facts in the flow events against Wireshark's reading of the same packets.
VERSIONS = {"0x0300": "SSLv3", "0x0301": "TLSv1", "0x0302": "TLSv1.1", "0x0303": "TLSv1.2", "0x0304": "TLSv1.3"}
CIPHERS = {"0x1301": "TLS_AES_128_GCM_SHA256", "0x1302": "TLS_AES_256_GCM_SHA384",
           "0xc030": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "0xc014": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
           "0xc02f": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "0xc013": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}


def tshark_handshakes(path):
    """{client port: facts} from tshark: ja3, ja3s, negotiated version and cipher, certificate CN and validity."""
    out = subprocess.run(["tshark", "-r", path, "-Y", "tls.handshake.type", "-T", "fields", "-E", "separator=|",
                          "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tls.handshake.type", "-e", "tls.handshake.ja3",
                          "-e", "tls.handshake.ja3s", "-e", "tls.handshake.ciphersuite", "-e", "tls.handshake.version",
                          "-e", "tls.handshake.extensions.supported_version", "-e", "x509sat.uTF8String",
                          "-e", "x509af.utcTime"], capture_output=True, text=True, check=True).stdout
    seen = {}
    for line in out.splitlines():
        sport, dport, types, ja3, ja3s, suites, version, supported, cn, times = line.split("|")
        types = types.split(",")
        if "1" in types:
            seen.setdefault(int(sport), {})["ja3"] = ja3
        if "2" in types:
            f = seen.setdefault(int(dport), {})
            f["ja3s"] = ja3s
            f["cipher"] = CIPHERS.get(suites.split(",")[0], "unlisted " + suites)
            f["version"] = VERSIONS.get(supported or version.split(",")[0], "unlisted " + version)
        if "11" in types and cn:
            f = seen.setdefault(int(dport), {})
            subject, issuer = cn.split(",")[:2]
            f["subject"], f["issuer"] = "CN=" + subject, "CN=" + issuer
            nb, na = [t.replace(" (UTC)", "").replace(" ", "T") + ".000000Z" for t in times.split(",")[:2]]
            f["not_before"], f["not_after"] = nb, na
    return seen


def check_handshakes(rel, events):
    want = tshark_handshakes(pcap(rel))
    got = {e["src_port"]: {k: v for k, v in (e.get("tls") or {}).items() if k not in ("sni", "alpn")}
           for e in events if (e.get("ndpi") or {}).get("protocol") == "TLS"}
    c.true(f"{rel}: tshark sees handshakes", len(want) > 0)
    c.eq(f"{rel}: TLS handshake facts as tshark reads them", got, want)


if shutil.which("tshark"):
    check_handshakes("core/real_tls.pcap", tls)
    check_handshakes("dicom/tls.pcap", flows("dicom/tls.pcap"))
    check_handshakes("policy/tls-obsolete-version.pcap", flows("policy/tls-obsolete-version.pcap"))
else:
    c.true("tshark is installed (scripts/install-deps.sh --test)", False)

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
