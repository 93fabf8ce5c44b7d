#!/usr/bin/python3
"""Tunnels are opened: the traffic a tunnel carries is analysed as if it were seen directly.

1. real_vxlan.pcap (the Linux kernel's VXLAN, recorded on the underlay by make-tunnels.sh) gives
   the DICOM associations, flows and device addresses of real_vxlan_inner.pcap (the same
   conversation recorded inside the tunnel); the devices keep their own MAC addresses; with
   --workers 2 the events are those of one worker.
2. A real DICOM capture wrapped here in GRE (IPv4 inside, and gretap), ERSPAN types I, II and III,
   Geneve, VXLAN and IPv4-in-IPv4, and behind two MPLS labels, with the packet times kept, gives the same dicom events byte
   for byte and the same flows. Wireshark, when present, reads the same TCP segments inside each
   wrapping, which checks the wrappers themselves.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import Checker, analyze, of_type, pcap, run  # noqa: E402
from pcapwrite import ether, ipv4, udp, write_pcap  # noqa: E402

c = Checker("core_tunnel")


def stats_counters(ev):
    s = of_type(ev, "stats")
    return s[-1]["stats"]["counters"] if s else {}


def association(d):
    """What a dicom event says of an association, without its times."""
    keep = ("status", "calling_ae", "called_ae", "commands", "presentation_contexts", "rq", "ac", "phi_fields")
    return json.dumps({k: d["dicom"].get(k) for k in keep}, sort_keys=True)


def flow_key(f):
    fl = f["flow"]
    return (f["src_ip"], f["dst_ip"], f["dst_port"], f["proto"], fl.get("app_proto"), fl.get("state"),
            fl["pkts_toserver"], fl["pkts_toclient"], fl["payload_bytes_toserver"], fl["payload_bytes_toclient"])


# ---------------------------------------------------------------- 1. VXLAN made by the kernel
outer = analyze(pcap("core", "real_vxlan.pcap"), keep_as="tunnel_real_vxlan")
inner = analyze(pcap("core", "real_vxlan_inner.pcap"), keep_as="tunnel_real_vxlan_inner")
od, idd = of_type(outer, "dicom"), of_type(inner, "dicom")
c.eq("VXLAN: dicom events", len(od), 2)
c.eq("VXLAN: the associations of the inner capture", [association(e) for e in od], [association(e) for e in idd])
c.eq("VXLAN: their endpoints", [(e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"]) for e in od],
     [(e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"]) for e in idd])
tcp_out = sorted(flow_key(f) for f in of_type(outer, "flow") if f["proto"] == "tcp")
tcp_in = sorted(flow_key(f) for f in of_type(inner, "flow") if f["proto"] == "tcp")
c.eq("VXLAN: the TCP flows of the inner capture", tcp_out, tcp_in)
c.true("VXLAN: no flow between the tunnel endpoints",
       not [f for f in of_type(outer, "flow") if f["src_ip"].startswith("192.0.2.")])


def macs(ev):
    return {a["asset"]["ip"]: a["asset"].get("mac") for a in of_type(ev, "asset") if a["asset"]["ip"].startswith("10.1.0.")}


c.eq("VXLAN: the devices' own MAC addresses", macs(outer), macs(inner))
c.eq("VXLAN: two devices with a MAC", len([m for m in macs(outer).values() if m]), 2)
sc = stats_counters(outer)
c.true("VXLAN: every frame opened (decode.tunnel.vxlan)", sc.get("decode.tunnel.vxlan", 0) >= 80)
c.eq("VXLAN: no decode anomaly", [a["anomaly"]["name"] for a in of_type(outer, "anomaly")], [])

rc, one, _ = run(["analyze", pcap("core", "real_vxlan.pcap"), "--out", "-", "--quiet"])
rc2, two, _ = run(["analyze", pcap("core", "real_vxlan.pcap"), "--out", "-", "--quiet", "--workers", "2"])


def without_stats(text):
    return sorted(l for l in text.splitlines() if '"event_type":"stats"' not in l)


c.eq("VXLAN: --workers 2 writes the events of one worker", without_stats(two), without_stats(one))

# ---------------------------------------------------------------- 2. wrappings of a real capture
SRC_PCAP = pcap("dicom", "store-explicit.pcap")  # DCMTK storescu -> storescp, Ethernet link type
OUT_MAC, IN_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
A, B = (192, 0, 2, 1), (192, 0, 2, 9)


def outer_frame(proto, payload, n):
    return ether(OUT_MAC, IN_MAC, ipv4(A, B, proto, payload, ident=n, flags=0))


def outer_frame_c(proto, payload, n):  # from a second tunnel source
    return ether(OUT_MAC, IN_MAC, ipv4((192, 0, 2, 77), B, proto, payload, ident=n, flags=0))


def to_server(frame):  # the DICOM client's packets (IPv4, TCP to 11112)
    ihl = (frame[14] & 15) * 4
    return struct.unpack("!H", frame[14 + ihl + 2:14 + ihl + 4])[0] == 11112


def tunnel_udp(dport, payload, n):  # VXLAN and Geneve senders leave the UDP checksum out
    return udp(A, B, 40000 + n % 7, dport, payload, with_checksum=False)


def gre(flags, ptype, payload, extra=b""):
    return struct.pack("!HH", flags, ptype) + extra + payload


WRAPS = {
    # name: (frame -> outer frame; n = packet number)
    "gre-ip": lambda f, n: outer_frame(47, gre(0x2000, 0x0800, f[14:], struct.pack("!I", 7)), n),
    "gretap": lambda f, n: outer_frame(47, gre(0x0000, 0x6558, f), n),
    "erspan1": lambda f, n: outer_frame(47, gre(0x0000, 0x88BE, f), n),
    "erspan2": lambda f, n: outer_frame(47, gre(0x1000, 0x88BE, struct.pack("!HHI", 0x1000, 0x0064, n) + f,
                                                struct.pack("!I", n)), n),
    "erspan3": lambda f, n: outer_frame(47, gre(0x1000, 0x22EB, struct.pack("!HHIHH", 0x2000, 0x0064, n, 0, 0x0001)
                                                + bytes(8) + f, struct.pack("!I", n)), n),
    "vxlan": lambda f, n: outer_frame(17, tunnel_udp(4789, struct.pack("!II", 0x08000000, 42 << 8) + f, n), n),
    "geneve": lambda f, n: outer_frame(17, tunnel_udp(6081, struct.pack("!HHI", 0x0000, 0x6558, 5 << 8) + f, n), n),
    "ipip": lambda f, n: outer_frame(4, f[14:], n),
    # each direction mirrored by its own switch (two ERSPAN sources), and requests tunnelled
    # while replies come direct: with workers, a flow's two directions must still meet
    "erspan2-two-switches": lambda f, n: (outer_frame if to_server(f) else outer_frame_c)(
        47, gre(0x1000, 0x88BE, struct.pack("!HHI", 0x1000, 0x0064, n) + f, struct.pack("!I", n)), n),
    "gre-one-way": lambda f, n: outer_frame(47, gre(0, 0x0800, f[14:]), n) if to_server(f) else f,
    # not a tunnel but a label stack in front of the IP packet
    "mpls": lambda f, n: f[:12] + b"\x88\x47" + struct.pack("!II", 18 << 12 | 64, 32 << 12 | 0x100 | 64) + f[14:],
}


def read_pcap(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic == 0xA1B2C3D4, "little-endian microsecond pcap expected"
    off, recs = 24, []
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        recs.append((sec, usec, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return recs


def tshark_segments(path):
    p = subprocess.run(["tshark", "-r", path, "-Y", "tcp.port == 11112", "-T", "fields", "-e", "tcp.seq_raw",
                        "-e", "tcp.len"], capture_output=True, text=True, timeout=300)
    return p.stdout.split("\n") if p.returncode == 0 else None


recs = read_pcap(SRC_PCAP)
base = analyze(SRC_PCAP, keep_as="tunnel_base")
base_dicom = [json.dumps(e, sort_keys=True) for e in of_type(base, "dicom")]
base_flows = sorted(flow_key(f) for f in of_type(base, "flow"))
c.true("wrapped: the source capture has dicom events", len(base_dicom) >= 1)
tshark = shutil.which("tshark")
base_segments = tshark_segments(SRC_PCAP) if tshark else None
work = tempfile.mkdtemp(prefix="medmon-tunnel-")
try:
    for name, wrap in WRAPS.items():
        path = os.path.join(work, name + ".pcap")
        write_pcap(path, [(s, u, wrap(f, n)) for n, (s, u, f) in enumerate(recs)], snaplen=65535 + 100)  # room for the outer headers
        ev = analyze(path, keep_as="tunnel_" + name)
        c.eq(f"{name}: the dicom events, byte for byte", [json.dumps(e, sort_keys=True) for e in of_type(ev, "dicom")],
             base_dicom)
        c.eq(f"{name}: the flows", sorted(flow_key(f) for f in of_type(ev, "flow")), base_flows)
        c.eq(f"{name}: no anomaly", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])
        _, w1, _ = run(["analyze", path, "--out", "-", "--quiet"])
        _, w3, _ = run(["analyze", path, "--out", "-", "--quiet", "--workers", "3"])
        c.eq(f"{name}: --workers 3 writes the events of one worker", without_stats(w3), without_stats(w1))
        if base_segments is not None:
            c.eq(f"{name}: Wireshark reads the same TCP segments inside", tshark_segments(path), base_segments)
finally:
    shutil.rmtree(work, ignore_errors=True)

c.done()
