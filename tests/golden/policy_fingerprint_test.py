"""A device bound by `fingerprint:` alone, whose traffic is all declared (so no alert names it), is
recognised once its fingerprint bound its address: the flow events judged afterwards carry its
name and zone as an ip-bound device's do, its asset event names it and its model, and the report
gives it its own section (PASS). With 3 workers the flow events name it too, and the output is
the same on every run.
"""
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import SRC, Checker, run  # noqa: E402
from pcapwrite import ACK, FIN, PSH, SYN, ether, ipv4, tcp, udp, write_pcap  # noqa: E402

CT, RIS, NTP = "10.10.1.99", "10.10.3.30", "10.10.0.123"
MAC_CT, MAC_GW = b"\x02\x00\x00\x00\x01\x99", b"\x02\x00\x00\x00\x00\x01"

SITE = """schema: medmon.site/v1
site: {{name: fp-site, production: true}}
models:
  - {models}/acme-ct.yaml
  - {models}/acme-pacs.yaml
internal_networks: [10.0.0.0/8]
zones:
  - {{name: infra, cidrs: [10.10.0.0/24]}}
  - {{name: modality, cidrs: [10.10.1.0/24]}}
  - {{name: pacs, cidrs: [10.10.2.0/24]}}
  - {{name: his, cidrs: [10.10.3.0/24]}}
zone_matrix:
  - {{from: modality, to: pacs}}
  - {{from: modality, to: his}}
  - {{from: modality, to: infra}}
roles:
  - {{role: pacs, ips: [10.10.2.20], ae_titles: [PACS01], ports: [11112]}}
  - {{role: ris_mwl, ips: [10.10.3.30], ae_titles: [RIS01], ports: [104]}}
  - {{role: his_ris, ips: [10.10.3.30], ports: [2575], hl7_apps: [RIS]}}
  - {{role: reading_ws, ips: [10.10.4.40], ae_titles: [WS01]}}
  - {{role: ntp, ips: [10.10.0.123]}}
  - {{role: dns, ips: [10.10.0.53]}}
  - {{role: vendor_remote, ips: [198.51.100.7]}}
devices:
  - {{name: ct-1, model: acme-ct, fingerprint: {{hl7_msh3: [CTAPP]}}, zone: modality, roles: [modality]}}
  - {{name: pacs-1, model: acme-pacs, ip: 10.10.2.20, ae_title: PACS01, zone: pacs}}
"""


def frames():
    """An HL7 result without PHI from the CT (MSH-3 CTAPP) to the RIS and its ACK, then NTP."""
    out = []
    t = [1700000000, 0]

    def put(src, dst, l4, proto):
        t[1] += 1000
        smac, dmac = (MAC_CT, MAC_GW) if src == CT else (MAC_GW, MAC_CT)
        out.append((t[0], t[1], ether(dmac, smac, ipv4(src, dst, proto, l4))))

    def seg(src, dst, sp, dp, seq, ack, flags, data=b""):
        put(src, dst, tcp(src, dst, sp, dp, seq, ack, flags, data), 6)

    msg = b"\x0bMSH|^~\\&|CTAPP|RADIOLOGY|RIS|RAD|20240101080000||ORU^R01|MSG1|P|2.5.1\rOBR|1|||CT^Head\r\x1c\r"
    ack = b"\x0bMSH|^~\\&|RIS|RAD|CTAPP|RADIOLOGY|20240101||ACK|1|P|2.5.1\rMSA|AA|MSG1\r\x1c\r"
    c, s = 1000, 5000
    seg(CT, RIS, 40010, 2575, c, 0, SYN)
    seg(RIS, CT, 2575, 40010, s, c + 1, SYN | ACK)
    seg(CT, RIS, 40010, 2575, c + 1, s + 1, ACK)
    seg(CT, RIS, 40010, 2575, c + 1, s + 1, PSH | ACK, msg)
    seg(RIS, CT, 2575, 40010, s + 1, c + 1 + len(msg), PSH | ACK, ack)
    seg(CT, RIS, 40010, 2575, c + 1 + len(msg), s + 1 + len(ack), FIN | ACK)
    seg(RIS, CT, 2575, 40010, s + 1 + len(ack), c + 2 + len(msg), FIN | ACK)
    seg(CT, RIS, 40010, 2575, c + 2 + len(msg), s + 2 + len(ack), ACK)
    # A second result on a new connection 20 s later: the first has been judged by then (one
    # pipeline judges a closed connection once flows.tcp_closed_timeout, 10 s, has passed) and
    # has bound the CT's address.
    t[0] += 20
    msg2 = msg.replace(b"MSG1", b"MSG2")
    ack2 = ack.replace(b"MSG1", b"MSG2")
    seg(CT, RIS, 40011, 2575, c, 0, SYN)
    seg(RIS, CT, 2575, 40011, s, c + 1, SYN | ACK)
    seg(CT, RIS, 40011, 2575, c + 1, s + 1, ACK)
    seg(CT, RIS, 40011, 2575, c + 1, s + 1, PSH | ACK, msg2)
    seg(RIS, CT, 2575, 40011, s + 1, c + 1 + len(msg2), PSH | ACK, ack2)
    seg(CT, RIS, 40011, 2575, c + 1 + len(msg2), s + 1 + len(ack2), FIN | ACK)
    seg(RIS, CT, 2575, 40011, s + 1 + len(ack2), c + 2 + len(msg2), FIN | ACK)
    seg(CT, RIS, 40011, 2575, c + 2 + len(msg2), s + 2 + len(ack2), ACK)
    put(CT, NTP, udp(CT, NTP, 40123, 123, bytes([0x23]) + bytes(47)), 17)
    put(NTP, CT, udp(NTP, CT, 123, 40123, bytes([0x24]) + bytes(47)), 17)
    return out


def main():
    c = Checker("policy_fingerprint")
    with tempfile.TemporaryDirectory() as d:
        site = os.path.join(d, "fp-site.yaml")
        with open(site, "w") as f:
            f.write(SITE.format(models=os.path.join(SRC, "policies", "devices")))
        cap = os.path.join(d, "fp.pcap")
        write_pcap(cap, frames())
        html = os.path.join(d, "fp.html")
        _, out, err = run(["analyze", "-q", cap, "--site", site, "--out", "-", "--report", html])
        ev = [json.loads(x) for x in out.splitlines() if x.strip()]
        flows = [e for e in ev if e["event_type"] == "flow"]
        c.eq("flows", len(flows), 3)
        c.eq("alerts", [e["alert"]["rule"] for e in ev if e["event_type"] == "alert"], [])
        for fl in flows:
            name = f"{fl['dst_ip']}:{fl['dst_port']}"
            c.eq(f"{name}: verdict", fl.get("verdict"), "declared")
            c.eq(f"{name}: src_device", fl.get("src_device"), "ct-1")
            c.eq(f"{name}: src_zone", fl.get("src_zone"), "modality")
        assets = [e["asset"] for e in ev if e["event_type"] == "asset" and e["asset"]["ip"] == CT]
        c.true("an asset event for the CT", len(assets) > 0)
        if assets:
            c.eq("asset: device", assets[-1].get("device"), "ct-1")
            c.eq("asset: model", assets[-1].get("model"), "acme-ct")
        page = open(html, encoding="utf-8").read() if os.path.exists(html) else ""
        m = re.search(r'<section class="device" id="dev-ct-1"[^>]*data-verdict="([A-Z]+)"', page)
        c.true("report: ct-1 has a section", m is not None)
        c.eq("report: ct-1 passes", m.group(1) if m else None, "PASS")
        c.true("report: 10.10.1.99 is not listed as an unbound address", 'data-device="10.10.1.99"' not in page)

        args = ["analyze", "-q", cap, "--site", site, "--out", "-", "--workers", "3"]
        _, three, _ = run(args)
        _, again, _ = run(args)
        c.true("3 workers: output the same on every run", three == again)
        ev3 = [json.loads(x) for x in three.splitlines() if x.strip()]
        flows3 = [e for e in ev3 if e["event_type"] == "flow"]
        c.eq("3 workers: flows name the CT", sorted((e.get("src_device"), e.get("src_zone")) for e in flows3),
             [("ct-1", "modality")] * 3)
        # Protocol events: those of the connection that bound the address do not name the CT (it
        # was not bound yet), those of the later one do; with workers as with one.
        hl7 = [e for e in ev if e["event_type"] == "hl7"]
        c.eq("hl7 events name the CT once its address is bound",
             [(e["src_port"], e.get("src_device"), e.get("src_zone")) for e in hl7],
             [(40010, None, "modality")] * 2 + [(40011, "ct-1", "modality")] * 2)
        c.eq("3 workers: hl7 events as with one worker",
             [json.dumps(e, sort_keys=True) for e in ev3 if e["event_type"] == "hl7"],
             [json.dumps(e, sort_keys=True) for e in hl7])
        c.eq("3 workers: flow events as with one worker",
             sorted(json.dumps(e, sort_keys=True) for e in flows3),
             sorted(json.dumps(e, sort_keys=True) for e in flows))
    c.done()


if __name__ == "__main__":
    main()
