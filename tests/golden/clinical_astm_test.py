#!/usr/bin/python3
"""ASTM E1381/E1394 captures (pcaps/clinical/astm-lis.pcap, made by make_captures.py from the
LIS2-A2 framing rules): one astm event per transmission with sender, record counts, tests,
link-layer errors, and patient ids only as pseudonyms; and a link picked up mid-transmission,
written here."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pcap, pseudonym  # noqa: E402
from pcapwrite import ether, ipv4, tcp, write_pcap  # noqa: E402


c = Checker("clinical_astm")
ev = analyze(pcap("clinical", "astm-lis.pcap"), keep_as="clinical-astm")
astm = [e["astm"] for e in of_type(ev, "astm")]
c.eq("transmissions", len(astm), 3)
flows = of_type(ev, "flow")
c.eq("flow apps", sorted(f["app"] for f in flows), ["astm", "astm"])

if len(astm) == 3:
    up, query, second = astm
    c.eq("upload direction", up["direction"], "to_server")
    c.eq("upload sender", (up.get("sender"), up.get("sender_version"), up.get("sender_serial")), ("ACME-CHEM", "2.1", "SN4711"))
    c.eq("upload receiver", up.get("receiver"), "LIS01")
    c.eq("upload version", up.get("version"), "LIS2-A2")
    c.eq("upload records", up["records"], {"H": 1, "P": 2, "O": 2, "Q": 0, "R": 4, "C": 1, "L": 1, "M": 0, "S": 0})
    c.eq("upload tests", up.get("tests"), ["GLU", "NA", "K"])
    c.eq("upload patients", up.get("patients"), [pseudonym("PID0001"), pseudonym("PID0002")])
    c.eq("upload specimens", up.get("specimens"), [pseudonym("SPEC123"), pseudonym("SPEC124")])
    c.eq("upload checksum error", up.get("checksum_errors"), 1)
    c.eq("upload NAK", up.get("naks"), 1)
    c.eq("upload frames", up.get("frames"), 11)
    c.eq("upload complete", (up["complete"], up.get("termination_code")), (True, "N"))
    c.eq("upload phi", up.get("phi_fields"), ["astm.P.3", "astm.P.4", "astm.P.6", "astm.P.8", "astm.O.3"])
    c.eq("query direction", query["direction"], "to_client")
    c.eq("query records", (query["records"]["H"], query["records"]["Q"], query["records"]["L"]), (1, 1, 1))
    c.eq("query sender", query.get("sender"), "LIS01")
    c.eq("query phi", query.get("phi_fields"), ["astm.Q.3"])
    c.eq("second analyzer", (second.get("sender"), second.get("sender_serial")), ("HEMA-3000", "HX-0099"))
    c.eq("second analyzer records", (second["records"]["C"], second["records"]["R"]), (1, 1))
    c.true("second analyzer: the long comment took intermediate frames", second.get("frames", 0) > 6)
    c.eq("second analyzer patients", second.get("patients"), [pseudonym("PID0003")])

# Each H record sender in the inventory: both analyzers, and the LIS from its query header.
assets = {}
for a in of_type(ev, "asset"):
    assets[a["asset"]["ip"]] = a["asset"]
c.eq("analyzer identities", assets.get("10.30.0.21", {}).get("identities"),
     [{"source": "astm H", "id": "ACME-CHEM", "serial": "SN4711", "version": "2.1"}])
c.eq("second analyzer identities", assets.get("10.30.0.22", {}).get("identities"),
     [{"source": "astm H", "id": "HEMA-3000", "serial": "HX-0099", "version": "5.0.1"}])
c.eq("LIS identities", assets.get("10.30.0.5", {}).get("identities"), [{"source": "astm H", "id": "LIS01"}])

# the anomaly for the corrupted frame, and nothing else
names = [e["anomaly"]["name"] for e in of_type(ev, "anomaly")]
c.eq("anomalies", names, ["bad_checksum"])
for f in flows:
    c.true("flow lists PHI seen in clear", "astm.P.6" in f.get("phi_cleartext", []) or f["dst_port"] == 15200)
raw = "\n".join(str(e) for e in ev)
for secret in ("PID0001", "DOE", "ROE^RICHARD", "19700101", "SPEC123", "SMITH", "PID0003"):
    c.true(f"PHI value {secret} never appears", secret not in raw)

# A link picked up mid-transmission (no SYN): the analyzer's first bytes are frame 3, the LIS
# sends only ACKs. The flow is still ASTM's, the transmission under way is read from that frame
# (complete: false) and the next one whole, without anomalies.
def frame(fn, text):
    body = bytes([0x30 + fn]) + text + b"\x03"
    return b"\x02" + body + b"%02X" % (sum(body) & 0xFF) + b"\r\n"


tmp = tempfile.mkdtemp(prefix="medmon-astm-")
mid_pcap = os.path.join(tmp, "astm-mid.pcap")
cli, srv = ("10.30.0.31", 40112), ("10.30.0.5", 5000)
seq, recs = [100000, 900000], []


def send(d, data):
    (a, ap), (b, bp) = (cli, srv) if d == 0 else (srv, cli)
    seg = tcp(a, b, ap, bp, seq[d], seq[1 - d], 0x18, data)
    recs.append((1704100000, len(recs), ether(b"\x02" * 6, b"\x04" * 6, ipv4(a, b, 6, seg))))
    seq[d] += len(data)


send(0, frame(3, b"O|1|SPECM1||^^^GLU|R\r"))
send(1, b"\x06")
send(0, frame(4, b"L|1|N\r"))
send(1, b"\x06")
send(0, b"\x04")
send(0, b"\x05")
send(1, b"\x06")
for i, r in enumerate([b"H|\\^&|||ACME-CHEM^2.1^SN4711|||||LIS01||P|LIS2-A2", b"P|1|PIDM01|||DUCK^DAISY||19400101|F",
                       b"O|1|SPECM2||^^^GLU|R", b"R|1|^^^GLU|5.4|mmol/L", b"L|1|N"]):
    send(0, frame(i + 1, r + b"\r"))
    send(1, b"\x06")
send(0, b"\x04")
write_pcap(mid_pcap, recs)
mid = analyze(mid_pcap, keep_as="clinical-astm-midstream")
c.eq("mid-stream flow app", [f["app"] for f in of_type(mid, "flow")], ["astm"])
mid_astm = [e["astm"] for e in of_type(mid, "astm")]
c.eq("mid-stream transmissions", [(a["complete"], a.get("frames"), a["records"]["P"]) for a in mid_astm],
     [(False, 2, 0), (True, 5, 1)])
c.eq("mid-stream anomalies", of_type(mid, "anomaly"), [])
c.true("mid-stream flow lists PHI seen in clear",
       all("astm.P.6" in f.get("phi_cleartext", []) for f in of_type(mid, "flow")))
c.done()
