#!/usr/bin/python3
"""Writes the seed corpora of every fuzz target from the repository's own data: the captures in
pcaps/, the policies in policies/, the MDS2 workbook in tests/data (and its CSV/TSV/Markdown/PDF
copies made by policies/mds2/test/make_variants.py). Nothing large is committed: run this.
Usage: make_seeds.py SRC_DIR OUT_DIR        (writes OUT_DIR/<target>/...)"""
import os
import struct
import subprocess
import sys
import tempfile

src, out = sys.argv[1], sys.argv[2]
MAX_SEED = 64 * 1024
LINKS = [0, 1, 12, 14, 108, 113, 276, 228, 229, 101]  # fuzz_decode.cpp's kLinks, in order


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pcap_frames(path):
    """(linktype, [frames]) of a classic pcap file; None for anything else."""
    data = open(path, "rb").read()
    if len(data) < 24:
        return None
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None
    lt = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    pos, frames = 24, []
    while pos + 16 <= len(data):
        incl = struct.unpack(e + "I", data[pos + 8:pos + 12])[0]
        frames.append(data[pos + 16:pos + 16 + incl])
        pos += 16 + incl
    return lt, frames


def streams(path):
    """Payload of each TCP/UDP flow of an Ethernet (optionally 802.1Q) IPv4 capture, per
    direction in capture order: {(proto, lo_port, hi_port): [(dir, payload), ...]}."""
    r = pcap_frames(path)
    if not r or r[0] != 1:
        return {}
    res = {}
    for fr in r[1]:
        off, et = 14, fr[12:14]
        while et == b"\x81\x00" and len(fr) >= off + 4:
            et, off = fr[off + 2:off + 4], off + 4
        if et != b"\x08\x00" or len(fr) < off + 20:
            continue
        ip = fr[off:]
        ihl, proto = (ip[0] & 15) * 4, ip[9]
        total = struct.unpack(">H", ip[2:4])[0]
        l4 = ip[ihl:total]
        if proto == 6 and len(l4) >= 20:
            sp, dp = struct.unpack(">HH", l4[:4])
            pl = l4[(l4[12] >> 4) * 4:]
        elif proto == 17 and len(l4) >= 8:
            sp, dp = struct.unpack(">HH", l4[:4])
            pl = l4[8:]
        else:
            continue
        key = (proto, min(sp, dp), max(sp, dp))
        f = res.setdefault(key, {"client": sp, "parts": []})
        if pl:
            f["parts"].append((0 if sp == f["client"] else 1, pl))
    return {k: v["parts"] for k, v in res.items()}


def pcaps(*sets):
    for s in sets:
        d = os.path.join(src, "pcaps", s)
        for n in sorted(os.listdir(d)):
            if n.endswith(".pcap") or n.endswith(".pcapng"):
                yield s, n, os.path.join(d, n)


# Whole captures for the pipeline (the large DICOM ones cut short: a truncated capture is fine).
for s, n, p in pcaps("core", "clinical", "hl7", "demo", "dicom"):
    data = open(p, "rb").read()
    write("pipeline", f"{s}-{n}", data[:MAX_SEED])

# pcapfile: byte 0 is the mode (fuzz_pcapfile.cpp). A classic pcap whose header the target writes
# itself loses it (the mode says which header); any other file is kept whole (top bit). Each
# capture is cut at a record boundary near 8 KiB, then also in a record header and in a body.
PCAPFILE_LINKS = [1, 101, 228, 229, 113, 276, 0, 220]  # fuzz_pcapfile.cpp's kLinks, in order
PCAPFILE_SNAPLENS = [65535, 64, 0, 0xFFFFFFFF]          # and its kSnaplens
PCAPFILE_MAX = 8 * 1024


def pcapfile_header(mode):
    e = ">" if mode & 1 else "<"
    magic = 0xA1B23C4D if mode & 2 else 0xA1B2C3D4
    return struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, PCAPFILE_SNAPLENS[(mode >> 5) & 3],
                       PCAPFILE_LINKS[(mode >> 2) & 7])


def pcap_records(data):
    """(byte order, [(sec, frac, incl, orig, body)]) of a classic pcap file image; None else."""
    e = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
         b"\xa1\xb2\x3c\x4d": ">"}.get(data[:4])
    if e is None or len(data) < 24:
        return None
    pos, recs = 24, []
    while pos + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(e + "IIII", data[pos:pos + 16])
        recs.append((sec, frac, incl, orig, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return e, recs


def pcapfile_seeds(name, data):
    mode = next((m for m in range(0x80) if pcapfile_header(m) == data[:24]), None)
    image = bytes([0x80]) + data
    r = pcap_records(data)
    if r:  # whole records up to PCAPFILE_MAX
        ends, pos = [], 24
        for rec in r[1]:
            if pos + 16 + len(rec[4]) > PCAPFILE_MAX and ends:
                break
            pos += 16 + len(rec[4])
            ends.append(pos)
        data = data[:ends[-1]] if ends else data[:24]
        image = bytes([0x80]) + data
        if mode is not None:
            write("pcapfile", name + "-raw", image)
            image = bytes([mode]) + data[24:]
        write("pcapfile", name, image)
        if len(ends) >= 2:
            last = len(image) - (ends[-1] - ends[-2])  # where the last record starts
            write("pcapfile", name + "-cut-header", image[:last + 7])
            write("pcapfile", name + "-cut-body", image[:last + 16 + (ends[-1] - ends[-2] - 16) // 2])
    else:
        write("pcapfile", name, image[:PCAPFILE_MAX])


for s, n, p in pcaps("core", "clinical", "hl7", "demo", "dicom"):
    pcapfile_seeds(f"{s}-{n}", open(p, "rb").read())
# One capture in every byte order, precision and link type the header byte offers, and with a
# snapshot length below its packets' lengths.
_, recs = pcap_records(open(os.path.join(src, "pcaps/core/ethernet_basic.pcap"), "rb").read())
for mode in [m for m in range(32)] + [0x20, 0x23]:
    e = ">" if mode & 1 else "<"
    body = b"".join(struct.pack(e + "IIII", sec, frac * 1000 if mode & 2 else frac, incl, orig) + b
                    for sec, frac, incl, orig, b in recs[:12])
    write("pcapfile", f"ethernet_basic-mode-{mode:02x}", bytes([mode]) + body)

# The same packets as pcapng Enhanced Packet Blocks after the SHB and IDB the target writes
# (modes 0xc0-0xff, byte 1 the IDB): every byte order, link type and IDB option set, then a
# second IDB, a block of interface 1, statistics and a packet option mid-file.
def epb(e, iface, ts, body, opts=b""):
    data = struct.pack(e + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(body), len(body)) + body
    data += b"\0" * (-len(body) % 4) + opts
    return struct.pack(e + "II", 6, 12 + len(data)) + data + struct.pack(e + "I", 12 + len(data))


def block(e, kind, data):
    return struct.pack(e + "II", kind, 12 + len(data)) + data + struct.pack(e + "I", 12 + len(data))


for mode in range(0xC0, 0xD0):
    for idb in (0x00, 0x05, 0x09, 0x0D, 0x14, 0x38, 0x42, 0x88, 0x01):
        e = ">" if mode & 1 else "<"
        scale = 10**9 if (idb >> 2) & 3 == 2 else 2**20 if (idb >> 2) & 3 == 3 else 10**6
        body = b"".join(epb(e, 0, sec * scale + frac * scale // 10**6, b) for sec, frac, _, _, b in recs[:12])
        write("pcapfile", f"ethernet_basic-ng-{mode:02x}-{idb:02x}", bytes([mode, idb]) + body)
e = "<"
mixed = (b"".join(epb(e, 0, 10**6 * sec + frac, b) for sec, frac, _, _, b in recs[:4]) +
         block(e, 5, struct.pack("<III", 0, 0, 0)) + epb(e, 0, 5, recs[4][4], struct.pack("<HH", 1, 2) + b"hi\0\0") +
         block(e, 1, struct.pack("<HHI", 1, 0, 65535)) + epb(e, 1, 6, recs[5][4]) + epb(e, 0, 7, recs[6][4]))
write("pcapfile", "ethernet_basic-ng-mixed", bytes([0xC2, 0x00]) + mixed)

# Frames for the decoder, in its link-type framing.
for s, n, p in pcaps("core", "clinical", "hl7"):
    r = pcap_frames(p)
    if not r or r[0] not in LINKS:
        continue
    lt, frames = r
    seed = bytes([LINKS.index(lt), 0])
    for fr in frames[:64]:
        fr = fr[:65535]
        seed += struct.pack(">H", len(fr)) + fr
    write("decode", f"{s}-{n}", seed)

# Application streams for the dissector targets: byte 0 is the chunking/transport mode.
def stream_seeds(target, files, udp_mode=0x90, tcp_mode=0x10, both_dirs=True):
    for f in files:
        for i, (key, parts) in enumerate(sorted(streams(os.path.join(src, "pcaps", f)).items())):
            data = b"".join(pl for d, pl in parts if both_dirs or d == 0)
            if data:
                write(target, f"{os.path.basename(f)}-{i}", bytes([udp_mode if key[0] == 17 else tcp_mode]) + data[:MAX_SEED])


stream_seeds("hl7", [f"hl7/{n}" for n in sorted(os.listdir(os.path.join(src, "pcaps/hl7"))) if n.endswith(".pcap")],
             tcp_mode=0x41, both_dirs=False)
stream_seeds("astm", ["clinical/astm-lis.pcap"])
stream_seeds("poct1", ["clinical/poct1.pcap"])
stream_seeds("sdc", ["clinical/sdc.pcap"])
# DHCP: each input is one datagram.
for i, (key, parts) in enumerate(sorted(streams(os.path.join(src, "pcaps", "dhcp/dhcp-dora.pcap")).items())):
    for j, (d, pl) in enumerate(parts[:4]):
        write("dhcp", f"dhcp-dora.pcap-{i}-{j}", pl)



def udp6_payloads(path):
    """UDP payloads of an Ethernet IPv6 capture (no extension headers), in capture order."""
    r = pcap_frames(path)
    out = []
    for fr in (r[1] if r and r[0] == 1 else []):
        if fr[12:14] == b"\x86\xdd" and len(fr) >= 62 and fr[20] == 17:
            out.append(fr[62:])
    return out


# DHCPv6: every datagram of the captures (the second holds RENEW, REBIND, RELEASE, DECLINE and an
# IA_PD), and made-up ones for what they lack (IA_TA, IA_PD, a status inside an address, relay
# options, a deep relay chain, a cut option).
for cap in ("dhcpv6.pcap", "dhcpv6-renew.pcap"):
    for i, pl in enumerate(udp6_payloads(os.path.join(src, "pcaps", "dhcp", cap))):
        write("dhcp", f"{cap}-{i}", pl)


def opt6(code, v):
    return struct.pack(">HH", code, len(v)) + v


def relay6(typ, hops, inner, extra=b""):
    return bytes([typ, hops]) + bytes(15) + b"\x01" + b"\xfe\x80" + bytes(13) + b"\x01" + extra + opt6(9, inner)


duid_ll = struct.pack(">HH", 3, 1) + bytes.fromhex("00005e005301")
status = opt6(13, struct.pack(">H", 2) + b"none")
solicit6 = (b"\x01\x12\x34\x56" + opt6(1, duid_ll) + opt6(8, b"\x00\x00") + opt6(6, struct.pack(">HHH", 23, 24, 39)) +
            opt6(4, struct.pack(">I", 9) + opt6(5, bytes(15) + b"\x01" + struct.pack(">II", 0, 0) + status)) +
            opt6(25, struct.pack(">III", 7, 0, 0) + opt6(26, struct.pack(">IIB", 1, 2, 56) + bytes(16))) +
            opt6(15, struct.pack(">H", 4) + b"ward") + opt6(16, struct.pack(">IH", 32473, 5) + b"PUMPX") +
            opt6(39, b"\x00\x04pump\x07example\x00") + opt6(14, b""))
write("dhcp", "dhcpv6-solicit-ia", solicit6)
write("dhcp", "dhcpv6-relay", relay6(12, 0, solicit6, opt6(18, b"Gi1/0/7") + opt6(37, struct.pack(">I", 9) + b"sw1")))
deep = solicit6
for h in range(10):
    deep = relay6(12, h, deep)
write("dhcp", "dhcpv6-relay-deep", deep)
write("dhcp", "dhcpv6-cut-option", solicit6[:-3] + opt6(24, b"\x05ward3")[:-2])
sigdir = os.path.join(src, "dissectors/proprietary/signatures")
for y in sorted(os.listdir(sigdir)):
    yaml = open(os.path.join(sigdir, y), "rb").read()
    for cap in ("clinical/datex-s5.pcap", "clinical/intellivue.pcap"):
        for i, (key, parts) in enumerate(sorted(streams(os.path.join(src, "pcaps", cap)).items())):
            data = b"".join(pl for d, pl in parts)
            mode = 0x90 if key[0] == 17 else 0x10
            write("signatures", f"{y}-{os.path.basename(cap)}-{i}", bytes([mode]) + yaml + b"\0" + data[:MAX_SEED])

# DICOM: the dissector's own seed maker (delivery-script format).
subprocess.run([sys.executable, os.path.join(src, "dissectors/dicom/fuzz/make_seeds.py"),
                os.path.join(src, "pcaps/dicom"), os.path.join(out, "dicom")], check=True, stdout=subprocess.DEVNULL)

# Policy: site NUL model NUL sensor config NUL baseline.
CONFIG = b"""flows: {max_flows: 1000, tcp_idle_timeout: 600, tcp_closed_timeout: 10, udp_idle_timeout: 120, absolute_timeout: 3600}
reassembly: {max_queued_bytes_per_direction: 1048576, max_queued_segments_per_direction: 2048, memcap: 268435456, ack_gap_packets: 16, max_dissector_buffer: 2097152}
fragments: {max_datagrams: 4096, memcap: 67108864, timeout: 30}
ndpi: {max_packets: 24, max_flows_in_detection: 262144}
output:
  stats_interval: 60
"""
BASELINE = (b'{"event_type":"alert","rule":"flow.undeclared","device":"ct-1","peer":"10.10.4.40"}\n'
            b'- {rule: lateral.new_peer, device: pacs-1, peer: 10.10.1.10}\n')
sites = sorted(os.listdir(os.path.join(src, "policies/sites")))
models = sorted(os.listdir(os.path.join(src, "policies/devices")))
for s in sites:
    site = open(os.path.join(src, "policies/sites", s), "rb").read()
    for m in models:
        model = open(os.path.join(src, "policies/devices", m), "rb").read()
        write("policy", f"{s}-{m}", site + b"\0" + model + b"\0" + CONFIG)
    write("policy", f"{s}-baseline", site + b"\0\0\0" + BASELINE)

# MDS2: the workbook, and its text and PDF copies.
mds2 = os.path.join(src, "tests/data/mds2")
for n in sorted(os.listdir(mds2)):
    if n.endswith(".xlsx"):
        write("mds2_xlsx", n, open(os.path.join(mds2, n), "rb").read())
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, os.path.join(src, "policies/mds2/test/make_variants.py"),
                    os.path.join(mds2, "nema-example-mds2-2019.xlsx"), tmp], check=True, stdout=subprocess.DEVNULL)
    hints = {".csv": 1, ".tsv": 2, ".md": 3, ".txt": 4}
    for n in sorted(os.listdir(tmp)):
        data = open(os.path.join(tmp, n), "rb").read()
        ext = os.path.splitext(n)[1]
        if ext == ".pdf":
            # slow-layout.pdf exists to take poppler seconds (the import's time limit is tested on
            # it); the fuzz target calls the extraction without that limit.
            if n != "slow-layout.pdf":
                write("mds2_pdf", n, data)
        elif ext in hints:
            write("mds2_text", n, bytes([hints[ext]]) + data)
            write("mds2_text", n + "-sniffed", b"\0" + data)

for t in sorted(os.listdir(out)):
    print(f"{t}: {len(os.listdir(os.path.join(out, t)))} seeds")
