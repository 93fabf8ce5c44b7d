"""Policy evaluation end to end: `medmon analyze --site policies/sites/demo-site.yaml`.

- Clean scenario, generated here: the CT (10.10.1.10) stores to its PACS (10.10.2.20:11112) over
  TLS, and syncs time with the site NTP server: zero alerts, verdict `declared`.
- The demo capture (pcaps/demo/demo.pcap, real DCMTK/OpenSSH/SMB peers): cleartext DICOM with
  PHI where the model requires TLS and TXCF-2 = Yes, DNS to 8.8.8.8 (CONN-4 = No), SSH and SMB to
  a workstation (RMOT-1 = No, SAHD-7), a port scan: each rule fires, citing its MDS2 ids with the
  form's mapping.
- CI mode: --fail-on sets the exit code; --baseline suppresses accepted alerts.
"""
import json
import os
import jsonschema
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import OUT, SRC, Checker, analyze, of_type, pcap, run  # noqa: E402
from pcapwrite import ACK, FIN, PSH, SYN, ether, ipv4, tcp, udp, write_pcap  # noqa: E402

SITE = os.path.join(SRC, "policies", "sites", "demo-site.yaml")
CT, PACS, NTP = "10.10.1.10", "10.10.2.20", "10.10.0.123"
MAC_CT, MAC_PACS = bytes.fromhex("02000a0a010a"), bytes.fromhex("02000a0a0214")


def frame(src, dst, sport, dport, proto, payload, seq=0, ack=0, flags=PSH | ACK, smac=MAC_CT, dmac=MAC_PACS):
    l4 = (tcp(src, dst, sport, dport, seq, ack, flags, payload, window=64240) if proto == 6
          else udp(src, dst, sport, dport, payload))
    return ether(dmac, smac, ipv4(src, dst, proto, l4))


def tls_client_hello(sni):
    name = sni.encode()
    sni_ext = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    groups = struct.pack("!HHH", 0x000A, 4, 2) + b"\x00\x17"
    sigs = struct.pack("!HHH", 0x000D, 4, 2) + b"\x04\x01"
    exts = sni_ext + groups + sigs
    body = b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", 4) + b"\xc0\x2f\xc0\x30" + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def tls_server_hello():
    body = b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + b"\xc0\x2f" + b"\x00" + struct.pack("!H", 0)
    hs = b"\x02" + struct.pack("!I", len(body))[1:] + body
    done = b"\x0e\x00\x00\x00"
    return b"\x16\x03\x03" + struct.pack("!H", len(hs) + len(done)) + hs + done


def timed(frames):
    """(sec, usec, frame) records, a millisecond apart."""
    t = 1714550400.0
    for fr in frames:
        t += 0.001
        yield int(t), int((t % 1) * 1e6), fr


def tcp_conversation(c, s, cport, sport, exchanges, smac=MAC_CT, dmac=MAC_PACS):
    """Handshake, the given (to_server, bytes) payloads, FIN/ACK teardown."""
    out = []
    cseq, sseq = 1000, 5000
    out.append(frame(c, s, cport, sport, 6, b"", cseq, 0, SYN, smac, dmac))
    out.append(frame(s, c, sport, cport, 6, b"", sseq, cseq + 1, SYN | ACK, dmac, smac))
    cseq += 1
    sseq += 1
    out.append(frame(c, s, cport, sport, 6, b"", cseq, sseq, ACK, smac, dmac))
    for to_server, data in exchanges:
        if to_server:
            out.append(frame(c, s, cport, sport, 6, data, cseq, sseq, PSH | ACK, smac, dmac))
            cseq += len(data)
            out.append(frame(s, c, sport, cport, 6, b"", sseq, cseq, ACK, dmac, smac))
        else:
            out.append(frame(s, c, sport, cport, 6, data, sseq, cseq, PSH | ACK, dmac, smac))
            sseq += len(data)
            out.append(frame(c, s, cport, sport, 6, b"", cseq, sseq, ACK, smac, dmac))
    out.append(frame(c, s, cport, sport, 6, b"", cseq, sseq, FIN | ACK, smac, dmac))
    out.append(frame(s, c, sport, cport, 6, b"", sseq, cseq + 1, FIN | ACK, dmac, smac))
    out.append(frame(c, s, cport, sport, 6, b"", cseq + 1, sseq + 1, ACK, smac, dmac))
    return out


def clean_capture(path):
    appdata = b"\x17\x03\x03" + struct.pack("!H", 64) + bytes(64)
    frames = tcp_conversation(CT, PACS, 40001, 11112, [
        (True, tls_client_hello("pacs01.demo-hospital.example")), (False, tls_server_hello()),
        (True, b"\x14\x03\x03\x00\x01\x01" + appdata), (False, b"\x14\x03\x03\x00\x01\x01" + appdata),
        (True, appdata * 4), (False, appdata)])
    ntp_req = bytes([0x23]) + bytes(47)
    ntp_resp = bytes([0x24, 2, 6, 0xEC]) + bytes(44)
    frames.append(frame(CT, NTP, 123, 123, 17, ntp_req))
    frames.append(frame(NTP, CT, 123, 123, 17, ntp_resp, smac=bytes.fromhex("02000a0a007b"), dmac=MAC_CT))
    write_pcap(path, timed(frames))


def alerts_by_rule(events):
    out = {}
    for a in of_type(events, "alert"):
        out.setdefault(a["alert"]["rule"], []).append(a)
    return out


def cites(alert, qid):
    return [m for m in alert["alert"]["mds2"] if m["id"] == qid]


def main():
    c = Checker("policy_demo")
    work = os.path.join(OUT, "policy_demo")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    # 1. Clean: declared modality -> declared PACS over TLS, NTP to the site server.
    clean = os.path.join(work, "clean-tls-store.pcap")
    clean_capture(clean)
    ev = analyze(clean, "--site", SITE, "--fail-on", "info", keep_as="policy_clean")
    flows = of_type(ev, "flow")
    c.eq("clean: alerts", [a["alert"]["rule"] for a in of_type(ev, "alert")], [])
    store = [f for f in flows if f.get("dst_port") == 11112]
    c.eq("clean: one store flow", len(store), 1)
    if store:
        c.eq("clean: store verdict", store[0].get("verdict"), "declared")
        c.eq("clean: src_device", store[0].get("src_device"), "ct-1")
        c.eq("clean: dst_device", store[0].get("dst_device"), "pacs-1")
        c.eq("clean: dst_zone", store[0].get("dst_zone"), "pacs")
    rc, _, _ = run(["analyze", clean, "--site", SITE, "--fail-on", "info", "--out", os.path.join(work, "clean.jsonl"), "-q"],
                   check_rc=None)
    c.eq("clean: --fail-on info exit code", rc, 0)

    # 2. The demo capture: every deviation it contains is reported.
    demo = pcap("demo", "demo.pcap")
    ev = analyze(demo, "--site", SITE, keep_as="policy_demo")
    by = alerts_by_rule(ev)
    schema = json.load(open(os.path.join(SRC, "docs", "schema", "alert.json")))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    flow_ids = {f["flow_id"] for f in of_type(ev, "flow")}
    for a in of_type(ev, "alert"):
        errors = [e.message for e in validator.iter_errors(a)]
        c.eq(f"alert validates against docs/schema/alert.json: {a['alert']['rule']}", errors, [])
        c.true(f"alert evidence names a flow of the run: {a['alert']['rule']}",
               all(fid in flow_ids for fid in a["alert"]["evidence"]["flow_ids"]))
    c.true("tls.required_cleartext on the cleartext C-STORE", any(a["dst_port"] == 11112 for a in by.get("tls.required_cleartext", [])))
    phi = [a for a in by.get("phi.cleartext", []) if a["alert"]["device"] == "ct-1" and a["dst_port"] == 11112]
    c.true("phi.cleartext on the C-STORE", len(phi) == 1)
    if phi:
        c.eq("phi.cleartext severity", phi[0]["alert"]["severity"], "high")
        t = cites(phi[0], "TXCF-2")
        c.true("phi.cleartext cites TXCF-2", len(t) == 1)
        if t:
            c.eq("TXCF-2 answer", t[0]["answer"], "yes")
            c.eq("TXCF-2 IEC TR 80001-2-2", t[0]["iec_tr_80001_2_2"], "Section 5.18, TXCF")
            c.eq("TXCF-2 NIST 800-53", t[0]["nist_800_53"], "CM-7")
            c.eq("TXCF-2 ISO 27002", t[0]["iso_27002"], "A.12.5.1")
        fields = phi[0]["alert"]["evidence"].get("phi_fields", [])
        c.true("PHI field names only, no values", "PatientName" in fields and not any("TESTPATIENT" in json.dumps(x) for x in phi))
    ext = by.get("flow.external_forbidden", [])
    c.true("DNS to 8.8.8.8 is forbidden by CONN-4", any(a["dst_ip"] == "8.8.8.8" and cites(a, "CONN-4") for a in ext))
    lat = by.get("lateral.admin_protocol", [])
    c.true("SSH from the CT (RMOT-1)", any(a["dst_port"] == 22 and cites(a, "RMOT-1") for a in lat))
    c.true("SMB from the CT (SAHD-7)", any(a["dst_port"] == 445 and cites(a, "SAHD-7") for a in lat))
    c.eq("port scan of the workstation", [a["alert"]["peer"] for a in by.get("lateral.port_scan", [])], ["10.10.1.50"])
    c.true("unknown workstation is a new peer", any(a["alert"]["peer"] == "10.10.1.50" for a in by.get("lateral.new_peer", [])))
    verdicts = {(f["dst_ip"], f["dst_port"]): f.get("verdict") for f in of_type(ev, "flow") if f.get("proto") in ("tcp", "udp")}
    c.eq("C-STORE verdict", verdicts.get((PACS, 11112)), "declared")
    c.eq("DNS to 8.8.8.8 verdict", verdicts.get(("8.8.8.8", 53)), "forbidden")
    no_phi_leak = not any("TESTPATIENT" in json.dumps(a) or "DEMO0001" in json.dumps(a) for a in of_type(ev, "alert"))
    c.true("no PHI value in any alert", no_phi_leak)

    # 3. CI mode.
    rc, _, _ = run(["analyze", demo, "--site", SITE, "--fail-on", "high", "--out", os.path.join(work, "demo.jsonl"), "-q"],
                   check_rc=None)
    c.eq("demo: --fail-on high exit code", rc, 1)
    baseline = os.path.join(work, "baseline.jsonl")
    with open(baseline, "w") as f:
        for e in of_type(ev, "alert"):
            f.write(json.dumps(e) + "\n")
    rc, out, _ = run(["analyze", demo, "--site", SITE, "--fail-on", "low", "--baseline", baseline, "--out", "-", "-q"],
                     check_rc=None)
    left = [json.loads(l) for l in out.splitlines() if l.strip() and '"event_type":"alert"' in l]
    c.eq("baseline: every accepted alert suppressed", left, [])
    c.eq("baseline: exit code", rc, 0)

    # 4. A broken site never runs silently: exit 2.
    bad = os.path.join(work, "bad-site.yaml")
    open(bad, "w").write("schema: medmon.site/v1\ninternal_networks: [10.0.0.0/99]\n")
    rc, _, err = run(["analyze", clean, "--site", bad, "--out", os.path.join(work, "bad.jsonl"), "-q"], check_rc=None)
    c.eq("bad site: exit code", rc, 2)
    c.true("bad site: located message", "bad-site.yaml:2:21:" in err)
    c.done()


if __name__ == "__main__":
    main()
