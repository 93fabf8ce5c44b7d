"""How flows are judged, end to end through the sensor (nDPI and the dissectors), on the rules
hospital site (policies/sites/rules-hospital.yaml) and variants of it:

- SMB from the pump gateway, whose model says CONN-3 = No and CONN-4 = No but nothing that
  forbids SMB itself: forbidden by CONN-3 (to the service laptop) and by CONN-4 (to the internet),
  with the lateral.admin_protocol alert beside;
- bytes nothing recognises on the RIS's worklist port: undeclared, not the worklist;
- a CT bound by MAC at an address in no zone: in its own zone;
- DICOM the sensor recognised behind TLS, to a rule that forbids TLS: undeclared.

The captures are written here (pcapwrite.py) or rewritten from pcaps/policy; patients made up.
"""
import os
import random
import re
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import pcapwrite as pw  # noqa: E402
from golden import SRC, Checker, analyze, of_type, pcap  # noqa: E402

SITE = os.path.join(SRC, "policies", "sites", "rules-hospital.yaml")
CT, PUMP, SVC, RIS, WS, NET = "10.10.1.10", "10.10.1.30", "10.10.1.90", "10.10.3.30", "10.10.4.40", "203.0.113.10"
CT_MAC = bytes.fromhex("02000a0a010a")
T0 = 1767225600


def mac_of(ip):
    return bytes([0x02, 0x00]) + pw.addr(ip)


def readdress(src_path, dst_path, mapping):
    """Copies an Ethernet/IPv4 capture with addresses replaced (checksums recomputed)."""
    data = open(src_path, "rb").read()
    out, off = [data[:24]], 24
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        frame = bytearray(data[off + 16:off + 16 + incl])
        off += 16 + incl
        if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
            ihl = (frame[14] & 0x0F) * 4
            src, dst = pw.socket.inet_ntoa(bytes(frame[26:30])), pw.socket.inet_ntoa(bytes(frame[30:34]))
            src, dst = mapping.get(src, src), mapping.get(dst, dst)
            total = struct.unpack("!H", frame[16:18])[0]
            proto = frame[23]
            l4 = bytes(frame[14 + ihl:14 + total])
            if proto == 6 and len(l4) >= 20:
                l4 = l4[:16] + b"\0\0" + l4[18:]
                l4 = l4[:16] + struct.pack("!H", pw._l4_checksum(src, dst, 6, l4)) + l4[18:]
            ip = pw.ipv4(src, dst, proto, l4, ident=struct.unpack("!H", frame[18:20])[0],
                         flags=struct.unpack("!H", frame[20:22])[0], ttl=frame[22])
            frame = bytearray(mac_of(dst) + mac_of(src) + b"\x08\x00" + ip + bytes(frame[14 + total:]))
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + bytes(frame))
    open(dst_path, "wb").write(b"".join(out))


def session(records, t, src, sport, dst, dport, payloads, src_mac=None):
    """A TCP session: handshake, payloads as (0 client / 1 server, bytes), FIN both ways."""
    cmac, smac = src_mac or mac_of(src), mac_of(dst)
    seq = {0: 1000, 1: 5000}

    def seg(d, flags, data=b""):
        a, b = (src, dst) if d == 0 else (dst, src)
        ap, bp = (sport, dport) if d == 0 else (dport, sport)
        am, bm = (cmac, smac) if d == 0 else (smac, cmac)
        frame = pw.ether(bm, am, pw.ipv4(a, b, 6, pw.tcp(a, b, ap, bp, seq[d], seq[1 - d], flags, data)))
        records.append((T0 + t[0] // 1000000, t[0] % 1000000, frame))
        t[0] += 1000
        seq[d] += len(data) + (1 if flags & (pw.SYN | pw.FIN) else 0)

    seg(0, pw.SYN)
    seg(1, pw.SYN | pw.ACK)
    seg(0, pw.ACK)
    for d, data in payloads:
        seg(d, pw.PSH | pw.ACK, data)
    seg(0, pw.FIN | pw.ACK)
    seg(1, pw.FIN | pw.ACK)
    seg(0, pw.ACK)


def site_variant(tmp, name, edits, models=None):
    """rules-hospital.yaml with text edits; its models read from the repository (or `models`)."""
    text = open(SITE).read()
    for a, b in edits:
        assert a in text, a
        text = text.replace(a, b)
    text = text.replace("../devices/", os.path.join(SRC, "policies", "devices") + "/")
    for old, new in (models or {}).items():
        text = text.replace(os.path.join(SRC, "policies", "devices", old), new)
    path = os.path.join(tmp, name)
    open(path, "w").write(text)
    return path


def flows(ev, dport):
    return [f for f in of_type(ev, "flow") if f.get("dst_port") == dport]


def rules(ev):
    return sorted((a["alert"]["rule"], a["alert"]["device"], a["alert"]["peer"]) for a in of_type(ev, "alert"))


def cited(ev, rule):
    return sorted(m["id"] for a in of_type(ev, "alert") if a["alert"]["rule"] == rule for m in a["alert"]["mds2"])


def main():
    c = Checker("policy_judging")
    tmp = tempfile.mkdtemp(prefix="medmon-policy-judging-")

    # SMB from the pump gateway: nothing forbids SMB for it, but CONN-3 and CONN-4 forbid the peer.
    for name, peer, rule, qs in (("pump-smb", SVC, "flow.internal_forbidden", ["CONN-3"]),
                                 ("pump-smb-ext", NET, "flow.external_forbidden", ["CONN-4", "CONN-6"])):
        p = os.path.join(tmp, name + ".pcap")
        readdress(pcap("policy", "smb-from-modality.pcap"), p, {CT: PUMP, SVC: peer})
        ev = analyze(p, "--site", SITE, "--fail-on", "none", keep_as="policy_judging_" + name)
        f = flows(ev, 445)
        c.eq(name + ": one SMB flow", len(f), 1)
        if f:
            c.eq(name + ": verdict", (f[0].get("verdict"), f[0].get("verdict_rule")), ("forbidden", rule))
        got = rules(ev)
        c.true(name + ": lateral.admin_protocol", ("lateral.admin_protocol", "pump-gw-1", peer) in got)
        c.true(name + ": " + rule, (rule, "pump-gw-1", peer) in got)
        c.eq(name + ": " + rule + " cites", cited(ev, rule), qs)

    # 3 KB of bytes nothing recognises, from the CT to the RIS's worklist port (104).
    rnd = random.Random(7)
    records, t = [], [0]
    session(records, t, CT, 40020, RIS, 104, [(0, bytes(rnd.randrange(256) for _ in range(3000))), (1, b"\x99" * 500)])
    # The same port with nothing sent (the handshake alone) still matches the worklist rule.
    session(records, t, CT, 40021, RIS, 104, [])
    p = os.path.join(tmp, "unknown-on-worklist.pcap")
    pw.write_pcap(p, records)
    ev = analyze(p, "--site", SITE, "--fail-on", "none", keep_as="policy_judging_unknown")
    f = {x["src_port"]: x for x in flows(ev, 104)}
    c.eq("unknown content: flows", sorted(f), [40020, 40021])
    if 40020 in f:
        c.eq("unknown content: verdict", (f[40020].get("verdict"), f[40020].get("verdict_rule")), ("undeclared", "flow.undeclared"))
    if 40021 in f:
        c.eq("no content: verdict", (f[40021].get("verdict"), f[40021].get("verdict_rule")), ("declared", "dicom-mwl"))
    und = [a["alert"] for a in of_type(ev, "alert") if a["alert"]["rule"] == "flow.undeclared"]
    c.eq("unknown content: one flow.undeclared", len(und), 1)
    if und:
        c.eq("unknown content: port_rule", und[0]["evidence"].get("port_rule"), "dicom-mwl")

    # The CT bound by MAC, at 10.20.0.5 (no zone's cidrs hold it), opens a connection to a reading
    # workstation: modality -> reading is not in the matrix.
    mac_site = site_variant(tmp, "mac.yaml", [("{name: ct-1, model: acme-ct, ip: 10.10.1.10,",
                                               "{name: ct-1, model: acme-ct, mac: \"02:00:0a:0a:01:0a\",")])
    records, t = [], [0]
    session(records, t, "10.20.0.5", 40001, WS, 2575, [], src_mac=CT_MAC)
    p = os.path.join(tmp, "mac-zone.pcap")
    pw.write_pcap(p, records)
    ev = analyze(p, "--site", mac_site, "--fail-on", "none", keep_as="policy_judging_mac_zone")
    f = flows(ev, 2575)
    c.eq("mac zone: one flow", len(f), 1)
    if f:
        c.eq("mac zone: header", (f[0].get("src_device"), f[0].get("src_zone"), f[0].get("dst_zone")), ("ct-1", "modality", "reading"))
    c.true("mac zone: lateral.zone_crossing", ("lateral.zone_crossing", "ct-1", WS) in rules(ev))

    # DICOM over TLS where the CT's model forbids TLS on dicom-store.
    model = open(os.path.join(SRC, "policies", "devices", "acme-ct.yaml")).read()
    model, n = re.subn(r"(- id: dicom-store\n(?:    .*\n)*?    )tls: required", r"\1tls: forbidden", model)
    c.eq("tls forbidden: model edited", n, 1)
    os.makedirs(os.path.join(tmp, "devices"), exist_ok=True)
    open(os.path.join(tmp, "devices", "acme-ct.yaml"), "w").write(model)
    notls = site_variant(tmp, "notls.yaml", [], {"acme-ct.yaml": os.path.join(tmp, "devices", "acme-ct.yaml")})
    ev = analyze(pcap("policy", "clean-tls-store.pcap"), "--site", notls, "--fail-on", "none", keep_as="policy_judging_notls")
    f = flows(ev, 2762)
    c.eq("tls forbidden: one store flow", len(f), 1)
    if f:
        c.eq("tls forbidden: app", f[0].get("app"), "dicom-tls")
        c.eq("tls forbidden: CT's verdict", (f[0].get("src_verdict"), f[0].get("src_verdict_rule")), ("undeclared", "flow.undeclared"))
    c.true("tls forbidden: flow.undeclared", ("flow.undeclared", "ct-1", "pacs-1") in rules(ev))

    # The modality zone declared narrower (/25) than its /24 subnet: the CT's NetBIOS query framed
    # to ff:ff:ff:ff:ff:ff goes to the subnet's broadcast (no new peer); its syslog to 10.10.1.127,
    # the /25's last address, framed to that host's MAC, goes to a host (a new peer).
    narrow = site_variant(tmp, "narrow.yaml", [("{name: modality, cidrs: [10.10.1.0/24]}", "{name: modality, cidrs: [10.10.1.0/25]}")])
    frame = lambda dst_mac, dst, sport, dport, data: pw.ether(dst_mac, CT_MAC, pw.ipv4(CT, dst, 17, pw.udp(CT, dst, sport, dport, data)))
    p = os.path.join(tmp, "narrow-zone.pcap")
    pw.write_pcap(p, [(T0, 0, frame(b"\xff" * 6, "10.10.1.255", 137, 137, b"\0" * 50)),
                      (T0 + 1, 0, frame(mac_of("10.10.1.127"), "10.10.1.127", 40000, 514, b"<14>up"))])
    ev = analyze(p, "--site", narrow, "--fail-on", "none", keep_as="policy_judging_narrow_zone")
    got = rules(ev)
    c.true("narrow zone: the broadcast is no new peer", ("lateral.new_peer", "ct-1", "10.10.1.255") not in got)
    c.true("narrow zone: the host at its last address is one", ("lateral.new_peer", "ct-1", "10.10.1.127") in got)

    # Linux cooked captures (SLL, SLL2) have no destination MAC but a packet type: "broadcast" (1)
    # marks the same frame as ff:ff:ff:ff:ff:ff does. The site declares no subnets, so only the
    # packet type tells the directed broadcast to 10.10.1.255 from a host; 10.10.1.127, sent to a
    # host (packet type 0), stays a new peer.
    udp_ip = lambda dst, sport, dport, data: pw.ipv4(CT, dst, 17, pw.udp(CT, dst, sport, dport, data))
    sll = lambda ptype, l3: struct.pack("!HHH", ptype, 1, 6) + CT_MAC + b"\0\0" + struct.pack("!H", 0x0800) + l3
    sll2 = lambda ptype, l3: struct.pack("!HHIHBB", 0x0800, 0, 2, 1, ptype, 6) + CT_MAC + b"\0\0" + l3
    for name, linktype, cooked in (("sll", 113, sll), ("sll2", 276, sll2)):
        p = os.path.join(tmp, name + "-broadcast.pcap")
        with open(p, "wb") as out:
            out.write(pw.pcap_header(linktype=linktype))
            out.write(pw.pcap_record(T0, 0, cooked(1, udp_ip("10.10.1.255", 137, 137, b"\0" * 50))))
            out.write(pw.pcap_record(T0 + 1, 0, cooked(0, udp_ip("10.10.1.127", 40000, 514, b"<14>up"))))
        got = rules(analyze(p, "--site", SITE, "--fail-on", "none", keep_as="policy_judging_" + name + "_broadcast"))
        c.true(name + ": the broadcast is no new peer", ("lateral.new_peer", "ct-1", "10.10.1.255") not in got)
        c.true(name + ": the host is one", ("lateral.new_peer", "ct-1", "10.10.1.127") in got)
    shutil.rmtree(tmp, ignore_errors=True)
    c.done()


if __name__ == "__main__":
    main()
