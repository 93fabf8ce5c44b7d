#!/usr/bin/env python3
"""Hand-made DICOM captures (run by make-captures.sh after the DCMTK ones):
  midstream.pcap  store-explicit.pcap cut so the capture starts inside the first C-STORE's dataset
  gap.pcap        store-explicit.pcap with one client segment inside a P-DATA PDU removed
  hostile.pcap    synthetic flows on port 104 with hostile lengths and PDU types
Usage: make_handmade.py DIR (reads and writes captures there)."""
import os
import struct
import sys

DIR = sys.argv[1]


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    hdr, pos, recs = data[:24], 24, []
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    while pos + 16 <= len(data):
        ts, tus, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
        recs.append((data[pos:pos + 16], data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return hdr, recs


def write_pcap(path, hdr, recs):
    with open(path, "wb") as f:
        f.write(hdr)
        for h, d in recs:
            f.write(h)
            f.write(d)


def tcp_of(frame):
    """(src_port, dst_port, payload) of an Ethernet/IPv4/TCP frame, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 15) * 4
    if frame[23] != 6:
        return None
    t = 14 + ihl
    sp, dp = struct.unpack(">HH", frame[t:t + 4])
    off = (frame[t + 12] >> 4) * 4
    total = struct.unpack(">H", frame[16:18])[0]
    return sp, dp, frame[t + off:14 + total]


def derive(src, dst, server_port, keep):
    hdr, recs = read_pcap(os.path.join(DIR, src))
    out, sent = [], 0
    for i, (h, d) in enumerate(recs):
        t = tcp_of(d)
        up = t is not None and t[1] == server_port and len(t[2]) > 0
        if keep(i, up, sent, len(t[2]) if up else 0):
            out.append((h, d))
        if up:
            sent += len(t[2])
    write_pcap(os.path.join(DIR, dst), hdr, out)


# Start 20000 bytes into the client's stream: inside ct1's dataset (16 KiB PDUs).
start = {}
def mid_keep(i, up, sent, n):
    if "i" not in start and up and sent >= 20000:
        start["i"] = i
    return "i" in start
derive("store-explicit.pcap", "midstream.pcap", 11112, mid_keep)

# Drop the one client segment that carries stream offset ~100000 (inside mr1's pixel data).
dropped = {}
def gap_keep(i, up, sent, n):
    if up and not dropped and sent <= 100000 < sent + n:
        dropped["i"] = i
        return False
    return True
derive("store-explicit.pcap", "gap.pcap", 11112, gap_keep)


# --- synthetic flows
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Flow:
    def __init__(self, recs, cport, sport=104, t0=1700000000):
        self.recs, self.cport, self.sport, self.t = recs, cport, sport, t0 * 1000000
        self.seq = {0: 1000, 1: 5000}
        self.emit(0, b"", 0x02)
        self.seq[0] += 1
        self.emit(1, b"", 0x12)
        self.seq[1] += 1
        self.emit(0, b"", 0x10)

    def emit(self, d, payload, flags=0x18):
        src, dst = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02") if d == 0 else (b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x01")
        sp, dp = (self.cport, self.sport) if d == 0 else (self.sport, self.cport)
        ack = self.seq[1 - d] if flags != 0x02 else 0
        tcp = struct.pack("!HHIIBBHHH", sp, dp, self.seq[d], ack, 5 << 4, flags, 65535, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        c = csum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = b"\0" * 12 + b"\x08\x00" + ip + tcp + payload
        self.t += 1000
        self.recs.append((struct.pack("<IIII", self.t // 1000000, self.t % 1000000, len(frame), len(frame)), frame))
        self.seq[d] += len(payload)

    def send(self, d, payload, mss=1460):
        for o in range(0, len(payload), mss):
            self.emit(d, payload[o:o + mss])

    def close(self):
        self.emit(0, b"", 0x11)
        self.seq[0] += 1
        self.emit(1, b"", 0x11)
        self.seq[1] += 1
        self.emit(0, b"", 0x10)


def item(t, v):
    return struct.pack("!BBH", t, 0, len(v)) + v


def pdu(t, body):
    return struct.pack("!BBI", t, 0, len(body)) + body


def assoc(ac, calling=b"HOSTILE", called=b"PACS1", bad_item=False):
    body = struct.pack("!HH", 1, 0) + called.ljust(16) + calling.ljust(16) + b"\0" * 32
    body += item(0x10, b"1.2.840.10008.3.1.1.1")
    pc = bytes([1, 0, 0 if ac else 0xFF, 0])
    if ac:
        pc += item(0x40, b"1.2.840.10008.1.2")
    else:
        pc += item(0x30, b"1.2.840.10008.1.1") + item(0x40, b"1.2.840.10008.1.2")
    body += item(0x21 if ac else 0x20, pc)
    ui = item(0x51, struct.pack("!I", 16384)) + item(0x52, b"1.2.3.4.5") + item(0x55, b"HOSTILE_1")
    if bad_item:
        ui += struct.pack("!BBH", 0x52, 0, 0xFFFF)  # item length past the PDU end
    body += item(0x50, ui)
    return pdu(2 if ac else 1, body)


def echo_rq(msg_id=1):
    def el(e, v):
        return struct.pack("<HHI", 0, e, len(v)) + v
    b = el(0x0002, b"1.2.840.10008.1.1\0") + el(0x0100, struct.pack("<H", 0x30)) + el(0x0110, struct.pack("<H", msg_id))
    b += el(0x0800, struct.pack("<H", 0x0101))
    return el(0x0000, struct.pack("<I", len(b))) + b


def pdv(pc, mch, frag, length=None):
    n = len(frag) + 2 if length is None else length
    return struct.pack("!IBB", n, pc, mch) + frag


recs = []
# 1. association RQ with an item length past the PDU end
f = Flow(recs, 40001)
f.send(0, assoc(False, bad_item=True))
f.send(1, assoc(True))
f.send(0, pdu(5, b"\0" * 4))
f.send(1, pdu(6, b"\0" * 4))
f.close()
# 2. PDV longer than its PDU, then a valid echo
f = Flow(recs, 40002)
f.send(0, assoc(False))
f.send(1, assoc(True))
f.send(0, pdu(4, pdv(1, 3, echo_rq(1), length=5000)))
f.send(0, pdu(4, pdv(1, 3, echo_rq(2))))
f.close()
# 3. unknown PDU type after the association
f = Flow(recs, 40003)
f.send(0, assoc(False))
f.send(1, assoc(True))
f.send(0, pdu(9, b"\0" * 4))
f.close()
# 4. P-DATA-TF claiming 4 GiB
f = Flow(recs, 40004)
f.send(0, assoc(False))
f.send(1, assoc(True))
f.send(0, struct.pack("!BBI", 4, 0, 0xFFFFFFF0) + pdv(1, 3, echo_rq(1)))
f.close()
# 5. command announcing a dataset that never comes, then release
f = Flow(recs, 40005)
f.send(0, assoc(False))
f.send(1, assoc(True))
c = bytearray(echo_rq(1))
c[-2:] = struct.pack("<H", 0x0001)  # CommandDataSetType: a dataset follows
f.send(0, pdu(4, pdv(1, 3, bytes(c))))
f.send(0, pdu(4, pdv(1, 3, echo_rq(2))))
f.send(0, pdu(5, b"\0" * 4))
f.send(1, pdu(6, b"\0" * 4))
f.close()

ghdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
write_pcap(os.path.join(DIR, "hostile.pcap"), ghdr, recs)
for n in ("midstream.pcap", "gap.pcap", "hostile.pcap"):
    print(f"{n}: {os.path.getsize(os.path.join(DIR, n))} bytes")
