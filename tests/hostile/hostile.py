#!/usr/bin/python3
"""Hostile traffic generators: each case writes a pcap (Ethernet) to a file or a pipe, with a
normal flow (a real DICOM C-STORE from pcaps/dicom/ and HL7 v2 over MLLP from pcaps/hl7/,
re-addressed) interleaved with the attack. Nothing is written to the repository.

Usage: hostile.py CASE [-n N] [-o FILE|-]      (N: the case's size knob, see CASES)
       hostile.py --list
"""
import argparse
import os
import random
import struct
import sys

SRC = os.environ.get("MEDMON_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))

# Addresses of the normal flows (documented in tests/hostile/README.md).
DICOM_CLIENT, DICOM_SERVER = "10.10.0.5", "10.10.0.104"
HL7_CLIENT, HL7_SERVER = "10.10.1.5", "10.10.1.25"
T0 = 1_700_000_000  # packet time of the first packet (seconds)


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


ETH = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"


def ipv4(src, dst, proto, payload, ident=0, flags_frag=0x4000, ttl=64):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, flags_frag, ttl, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return ETH + h + payload


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", ident=0):
    # TCP checksum left 0: medmon, like other passive monitors, does not verify it (offload).
    t = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    return ipv4(src, dst, 6, t + payload, ident)


FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16


class PcapWriter:
    """pcap (microsecond) writer; every packet gets the next timestamp (1 us apart), so the
    output is deterministic and timeouts never fire inside a run."""

    def __init__(self, f, step_us=1):
        self.f = f
        self.step = step_us
        self.us = 0
        self.buf = []
        self.size = 0
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def write(self, frame):
        sec, usec = divmod(self.us, 1_000_000)
        self.us += self.step
        self.buf.append(struct.pack("<IIII", T0 + sec, usec, len(frame), len(frame)))
        self.buf.append(frame)
        self.size += len(frame) + 16
        if self.size >= 1 << 20:
            self.flush()

    def raw(self, records):
        """Appends ready-made pcap records (their timestamps taken from self.us by the caller)."""
        self.buf.append(records)
        self.size += len(records)
        if self.size >= 1 << 20:
            self.flush()

    def flush(self):
        self.f.write(b"".join(self.buf))
        self.buf.clear()
        self.size = 0


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos, out = 24, []
    while pos + 16 <= len(data):
        incl = struct.unpack(e + "I", data[pos + 8:pos + 12])[0]
        out.append(data[pos + 16:pos + 16 + incl])
        pos += 16 + incl
    return out


def readdress(path, client, server):
    """Frames of a loopback capture (one TCP connection) with the client and server addresses
    replaced; the client is the side that sent the first SYN."""
    frames = read_pcap(path)
    cport = None
    out = []
    for fr in frames:
        if len(fr) < 34 or fr[12:14] != b"\x08\x00":
            continue
        ihl = (fr[14] & 15) * 4
        sport = struct.unpack("!H", fr[14 + ihl:16 + ihl])[0]
        flags = fr[14 + ihl + 13]
        if cport is None and flags & SYN and not flags & ACK:
            cport = sport
        src, dst = (client, server) if sport == cport else (server, client)
        ip = bytearray(fr[14:])
        ip[12:16], ip[16:20] = ip4(src), ip4(dst)
        ip[10:12] = b"\0\0"
        ip[10:12] = struct.pack("!H", csum(bytes(ip[:ihl])))
        out.append(ETH + bytes(ip))
    return out


def normal_frames():
    """The normal flows interleaved with every attack: a DICOM association with 3 C-STOREs and
    an HL7 v2 MLLP conversation (several messages and their ACKs)."""
    d = readdress(os.path.join(SRC, "pcaps/dicom/store-explicit.pcap"), DICOM_CLIENT, DICOM_SERVER)
    h = readdress(os.path.join(SRC, "pcaps/hl7/mllp-mixed.pcap"), HL7_CLIENT, HL7_SERVER)
    # Alternate the two so both are spread over the attack.
    out = []
    for i in range(max(len(d), len(h))):
        if i < len(d):
            out.append(d[i])
        if i < len(h):
            out.append(h[i])
    return out


class Conn:
    """A TCP connection built packet by packet (handshake, data in MSS pieces, FIN)."""

    def __init__(self, client, cport, server, sport, isn_c=1000, isn_s=5000):
        self.c, self.s = ip4(client), ip4(server)
        self.cp, self.sp = cport, sport
        self.seq = [isn_c + 1, isn_s + 1]

    def handshake(self):
        return [tcp(self.c, self.s, self.cp, self.sp, self.seq[0] - 1, 0, SYN),
                tcp(self.s, self.c, self.sp, self.cp, self.seq[1] - 1, self.seq[0], SYN | ACK),
                tcp(self.c, self.s, self.cp, self.sp, self.seq[0], self.seq[1], ACK)]

    def send(self, d, data, mss=1460):
        """Frames carrying data from the client (d=0) or the server (d=1)."""
        out = []
        for i in range(0, len(data), mss):
            out.append(self.segment(d, self.seq[d], data[i:i + mss]))
            self.seq[d] += len(data[i:i + mss])
        return out

    def segment(self, d, seq, data, flags=ACK | PSH):
        a, b = (self.c, self.s) if d == 0 else (self.s, self.c)
        pa, pb = (self.cp, self.sp) if d == 0 else (self.sp, self.cp)
        return tcp(a, b, pa, pb, seq, self.seq[1 - d], flags, data)

    def close(self):
        out = [self.segment(0, self.seq[0], b"", FIN | ACK)]
        self.seq[0] += 1
        out.append(self.segment(1, self.seq[1], b"", FIN | ACK))
        self.seq[1] += 1
        out.append(self.segment(0, self.seq[0], b"", ACK))
        return out


def interleave(w, attack, normal, every):
    """Writes the attack frames with one normal frame after every `every` attack frames; the
    normal frames left at the end follow the attack."""
    normal = list(normal)
    i = k = 0
    for fr in attack:
        w.write(fr)
        i += 1
        if i % every == 0 and k < len(normal):
            w.write(normal[k])
            k += 1
    for fr in normal[k:]:
        w.write(fr)


# --- DICOM building blocks -------------------------------------------------------------------

def pdu(t, body):
    return struct.pack("!BBI", t, 0, len(body)) + body


def item(t, body):
    return struct.pack("!BBH", t, 0, len(body)) + body


def uid(s):
    return s.encode() + (b"\0" if len(s) % 2 else b"")


VERIFICATION = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"


def assoc_rq(contexts, calling=b"ATTACKER", called=b"PACS1", max_pdu=16384):
    """A-ASSOCIATE-RQ with the given [(pc_id, abstract_syntax)] (explicit VR LE offered)."""
    parts = [struct.pack("!HH", 1, 0) + called.ljust(16) + calling.ljust(16) + b"\0" * 32, item(0x10, uid(APP_CONTEXT))]
    for pc_id, abstract in contexts:
        parts.append(item(0x20, struct.pack("!BBBB", pc_id, 0, 0, 0) + item(0x30, uid(abstract)) + item(0x40, uid(EXPLICIT_LE))))
    parts.append(item(0x50, item(0x51, struct.pack("!I", max_pdu)) + item(0x52, uid("1.2.3.4.5"))))
    return pdu(0x01, b"".join(parts))


def assoc_ac(pc_id=1, calling=b"ATTACKER", called=b"PACS1"):
    body = struct.pack("!HH", 1, 0) + called.ljust(16) + calling.ljust(16) + b"\0" * 32
    body += item(0x10, uid(APP_CONTEXT))
    body += item(0x21, struct.pack("!BBBB", pc_id, 0, 0, 0) + item(0x40, uid(EXPLICIT_LE)))
    body += item(0x50, item(0x51, struct.pack("!I", 16384)) + item(0x52, uid("1.2.3.4.6")))
    return pdu(0x02, body)


def elem_implicit(group, elem, value):
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, elem, len(value)) + value


def command_store(msg_id=1, sop_class=CT_STORAGE, sop_inst="1.2.3.4.5.6.7"):
    """C-STORE-RQ command set (implicit VR LE, as PS3.7 requires) with group length."""
    body = (elem_implicit(0x0000, 0x0002, uid(sop_class)) + elem_implicit(0x0000, 0x0100, struct.pack("<H", 1)) +
            elem_implicit(0x0000, 0x0110, struct.pack("<H", msg_id)) + elem_implicit(0x0000, 0x0700, struct.pack("<H", 0)) +
            elem_implicit(0x0000, 0x0800, struct.pack("<H", 0)) + elem_implicit(0x0000, 0x1000, uid(sop_inst)))
    return elem_implicit(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def command_store_rsp(msg_id=1, sop_class=CT_STORAGE, sop_inst="1.2.3.4.5.6.7"):
    body = (elem_implicit(0x0000, 0x0002, uid(sop_class)) + elem_implicit(0x0000, 0x0100, struct.pack("<H", 0x8001)) +
            elem_implicit(0x0000, 0x0120, struct.pack("<H", msg_id)) + elem_implicit(0x0000, 0x0800, struct.pack("<H", 0x0101)) +
            elem_implicit(0x0000, 0x0900, struct.pack("<H", 0)) + elem_implicit(0x0000, 0x1000, uid(sop_inst)))
    return elem_implicit(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def pdata(pc_id, mch, data):
    """P-DATA-TF PDUs carrying `data` in PDVs of at most 16 KiB (last one flagged)."""
    out = b""
    step = 16372
    for i in range(0, max(len(data), 1), step):
        last = i + step >= len(data)
        out += pdu(0x04, struct.pack("!IBB", len(data[i:i + step]) + 2, pc_id, mch | (2 if last else 0)) + data[i:i + step])
    return out


def nested_dataset(depth, undefined):
    """Explicit VR LE dataset: patient name, then `depth` nested sequences (0040,A730 Content
    Sequence), each with one item; undefined or defined lengths."""
    inner = b"\x08\x00\x00\x01SH\x04\x00CODE"  # (0008,0100) at the bottom
    for _ in range(depth):
        if undefined:
            itm = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + inner + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
            inner = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + itm + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
        else:
            itm = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner
            inner = b"\x40\x00\x30\xa7SQ\x00\x00" + struct.pack("<I", len(itm)) + itm
    head = b"\x08\x00\x16\x00UI" + struct.pack("<H", len(uid(CT_STORAGE))) + uid(CT_STORAGE)
    head += b"\x10\x00\x10\x00PN\x0c\x00Doe^Hostile "
    return head + inner


def dicom_conv(conn, client_pdus, server_pdus):
    """Frames of an association: the client's PDUs, then the server's."""
    out = conn.handshake()
    for c, s in zip(client_pdus, server_pdus):
        if c:
            out += conn.send(0, c)
        if s:
            out += conn.send(1, s)
    return out


# --- the cases -------------------------------------------------------------------------------

def case_syn_flood(w, n, src_bits=20):
    """n SYNs from random sources (172.16.0.0/12) to random ports of 10.20.0.1, each a new flow.
    Records are packed in batches (10 M SYNs take about a minute)."""
    rng = random.Random(1)
    src_mask = (1 << src_bits) - 1
    tmpl = tcp(b"\xac\x10\0\0", ip4("10.20.0.1"), 1, 1, 0, 0, SYN)
    words = struct.unpack("!10H", tmpl[14:34])
    ip_sum = sum(words) - words[5] - words[6] - words[7]  # without checksum and source
    rec = struct.pack("<IIII", 0, 0, len(tmpl), len(tmpl)) + tmpl
    ts_fmt, ip_fmt, tcp_fmt = struct.Struct("<II"), struct.Struct("!HHH"), struct.Struct("!HHI")
    normal = normal_frames()
    every = max(1, n // (len(normal) + 1))
    k = 0
    done = 0
    while done < n:
        b = min(4096, n - done)
        buf = bytearray(rec * b)
        us = w.us
        for j in range(b):
            r = rng.getrandbits(64)
            lo = r & src_mask
            src_hi, src_lo = 0xAC10 | lo >> 16, lo & 0xFFFF
            c = ip_sum + src_hi + src_lo
            c = (c & 0xFFFF) + (c >> 16)
            c = (c & 0xFFFF) + (c >> 16)
            o = j * len(rec)
            ts_fmt.pack_into(buf, o, T0 + us // 1_000_000, us % 1_000_000)
            ip_fmt.pack_into(buf, o + 16 + 24, ~c & 0xFFFF, src_hi, src_lo)  # checksum, source
            tcp_fmt.pack_into(buf, o + 16 + 34, (r >> 20) & 0xFFFF | 1024, (r >> 36) & 0xFFFF, done + j)
            us += w.step
        w.us = us
        w.raw(bytes(buf))
        done += b
        while k < len(normal) and (k + 1) * every <= done:
            w.write(normal[k])
            k += 1
    for fr in normal[k:]:
        w.write(fr)


def case_syn_scan(w, n):
    """As syn_flood from only 65 536 sources (172.16.0.0/16): every source is an inventoried
    device and soon tries many ports, so per-device state keyed by port fills early."""
    case_syn_flood(w, n, src_bits=16)


def case_tiny_ooo(w, n):
    """n concurrent flows to port 104, each sending 2500 one-byte segments in reverse order
    after a hole at the start, so everything is queued out of order."""
    normal = normal_frames()
    segs = 2500
    conns = []
    for f in range(n):
        c = Conn("172.17.%d.%d" % (f // 250, f % 250 + 1), 40000 + f % 20000, "10.20.0.2", 104, isn_c=f * 7919)
        conns.append(c)
    total = n * segs
    every = max(1, total // (len(normal) + 1))

    def attack():
        for c in conns:
            yield from c.handshake()
        for k in range(segs, 0, -1):  # byte offsets segs..1 (offset 0 never sent)
            for c in conns:
                yield c.segment(0, c.seq[0] + k, b"x")
    interleave(w, attack(), normal, every)


def case_overlap(w, n):
    """n flows carrying an HL7 message where a segment is sent twice with different data:
    out of order (both copies queued) and in order (the second copy is a retransmission)."""
    normal = normal_frames()
    msg = (b"\x0bMSH|^~\\&|EVIL|HOSP|LIS|LAB|20240101120000||ORU^R01|MSG%05d|P|2.5\r"
           b"PID|1||MRN123||Doe^John\rOBX|1|NM|GLU||105|mg/dL\r\x1c\r")
    frames = []
    for f in range(n):
        c = Conn("172.18.0.%d" % (f % 250 + 1), 30000 + f, "10.20.0.3", 2575)
        m = msg.replace(b"%05d", b"%05d" % f)
        frames += c.handshake()
        base = c.seq[0]
        a, b, rest = m[:40], m[40:80], m[80:]
        if f % 2 == 0:
            # Out of order: the middle part twice (different bytes), then the start.
            frames.append(c.segment(0, base + 40, b))
            frames.append(c.segment(0, base + 40, b.replace(b"ORU", b"ADT")))
            frames.append(c.segment(0, base, a))
        else:
            # In order: the middle part, then a "retransmission" with different bytes.
            frames.append(c.segment(0, base, a))
            frames.append(c.segment(0, base + 40, b))
            frames.append(c.segment(0, base + 40, b.replace(b"ORU", b"ADT")))
        frames.append(c.segment(0, base + 80, rest))
        c.seq[0] += len(m)
        frames += c.close()
    interleave(w, frames, normal, max(1, len(frames) // (len(normal) + 1)))


def case_dicom_4g(w, n):
    """A DICOM association whose P-DATA-TF announces 0xFFFFFFFF bytes, followed by n MiB of
    data (random, with fake PDU headers sprinkled in to keep the resync scanner busy)."""
    normal = normal_frames()
    c = Conn("172.19.0.1", 33333, "10.20.0.4", 104)
    frames = dicom_conv(c, [assoc_rq([(1, CT_STORAGE)])], [assoc_ac(1)])
    frames += c.send(0, struct.pack("!BBI", 0x04, 0, 0xFFFFFFFF) + b"\0" * 10)
    rng = random.Random(4)
    chunk = bytearray(rng.getrandbits(8) for _ in range(1 << 16))
    for i in range(0, len(chunk) - 6, 4093):  # plausible-looking headers of huge PDUs
        chunk[i:i + 6] = struct.pack("!BBI", 0x04, 0, 0xFFFFFFF0)
    chunk = bytes(chunk)

    def attack():
        yield from frames
        for _ in range(n * 16):
            yield from c.send(0, chunk)
    total = len(frames) + n * 16 * (len(chunk) // 1460 + 1)
    interleave(w, attack(), normal, max(1, total // (len(normal) + 1)))


def case_mllp_endless(w, n):
    """An MLLP frame that never ends: a start block, an MSH, then n MiB without 0x1C."""
    normal = normal_frames()
    c = Conn("172.20.0.1", 34444, "10.20.0.5", 2575)
    head = b"\x0bMSH|^~\\&|EVIL|HOSP|LIS|LAB|20240101120000||ORU^R01|ENDLESS|P|2.5\rOBX|1|ED|PDF||"
    body = (b"A" * 1000 + b"\r") * 64

    def attack():
        yield from c.handshake()
        yield from c.send(0, head)
        for _ in range(n * 16):
            yield from c.send(0, body)
    total = n * 16 * (len(body) // 1460 + 1)
    interleave(w, attack(), normal, max(1, total // (len(normal) + 1)))


def case_many_contexts(w, n):
    """n presentation contexts offered: A-ASSOCIATE-RQs of the largest size medmon accepts
    (256 KiB) each packed with contexts, and one RQ holding all n contexts (a ~6 MB PDU)."""
    normal = normal_frames()
    frames = []
    k = 0
    conn_no = 0
    while k < n:
        ctxs, size = [], 200
        while k < n:
            ab = "1.2.840.10008.5.1.4.1.1.%d" % k
            cost = 4 + 4 + 4 + len(uid(ab)) + 4 + len(uid(EXPLICIT_LE))
            if size + cost > 256 * 1024 - 6:
                break
            ctxs.append((1 + 2 * (len(ctxs) % 128), ab))
            size += cost
            k += 1
        rq = assoc_rq(ctxs)
        c = Conn("172.21.%d.%d" % (conn_no // 250, conn_no % 250 + 1), 35000 + conn_no, "10.20.0.6", 104)
        conn_no += 1
        frames += dicom_conv(c, [rq], [assoc_ac(1)]) + c.close()
    ctxs = [(1 + 2 * (i % 128), "1.2.840.10008.5.1.4.1.1.%d" % i) for i in range(n)]
    c = Conn("172.21.255.1", 36000, "10.20.0.6", 104)
    frames += dicom_conv(c, [assoc_rq(ctxs)], [assoc_ac(1)]) + c.close()
    interleave(w, frames, normal, max(1, len(frames) // (len(normal) + 1)))


def case_nested(w, n):
    """C-STOREs whose datasets nest sequences n levels deep (defined and undefined lengths)."""
    normal = normal_frames()
    frames = []
    for j, undefined in enumerate((True, False)):
        c = Conn("172.22.0.%d" % (j + 1), 37000 + j, "10.20.0.7", 104)
        frames += dicom_conv(c, [assoc_rq([(1, CT_STORAGE)]), pdata(1, 1, command_store()) + pdata(1, 0, nested_dataset(n, undefined))],
                             [assoc_ac(1), pdata(1, 1, command_store_rsp())])
        frames += c.send(0, pdu(0x05, b"\0" * 4))
        frames += c.send(1, pdu(0x06, b"\0" * 4))
        frames += c.close()
    interleave(w, frames, normal, max(1, len(frames) // (len(normal) + 1)))


def case_frag_flood(w, n):
    """n IPv4 datagrams (UDP, 1480-byte first fragment each; every 4th also a fragment at the
    top of the 64 KiB range) that are never completed."""
    normal = normal_frames()
    rng = random.Random(8)
    udp = struct.pack("!HHHH", 5353, 9999, 8 + 3000, 0) + bytes(1472)

    def attack():
        for i in range(n):
            src = struct.pack("!I", 0xAC170000 | (i >> 16 & 0xFF) << 8 | rng.getrandbits(8))
            yield ipv4(src, ip4("10.20.0.8"), 17, udp, ident=i, flags_frag=0x2000)
            if i % 4 == 0:
                yield ipv4(src, ip4("10.20.0.8"), 17, bytes(1480), ident=i, flags_frag=0x2000 | (64000 // 8))
    interleave(w, attack(), normal, max(1, n // (len(normal) + 1)))


def case_normal(w, n):
    """Only the normal flows (the baseline every case is compared with)."""
    for fr in normal_frames():
        w.write(fr)


CASES = {
    "normal": (case_normal, 0, "no attack"),
    "syn_flood": (case_syn_flood, 200_000, "N SYNs"),
    "syn_scan": (case_syn_scan, 400_000, "N SYNs from 65 536 sources"),
    "tiny_ooo": (case_tiny_ooo, 200, "N flows x 2500 one-byte out-of-order segments"),
    "overlap": (case_overlap, 20, "N flows with conflicting overlaps"),
    "dicom_4g": (case_dicom_4g, 64, "MiB after a 4 GiB P-DATA length"),
    "mllp_endless": (case_mllp_endless, 64, "MiB in one unterminated MLLP frame"),
    "many_contexts": (case_many_contexts, 100_000, "presentation contexts"),
    "nested": (case_nested, 5000, "sequence nesting levels"),
    "frag_flood": (case_frag_flood, 100_000, "incomplete IPv4 datagrams"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", nargs="?")
    ap.add_argument("-n", type=int)
    ap.add_argument("-o", default="-")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list or not a.case:
        for k, (_, n, what) in CASES.items():
            print(f"{k:14} default N={n} ({what})")
        return 0
    fn, n, _ = CASES[a.case]
    f = sys.stdout.buffer if a.o == "-" else open(a.o, "wb")
    w = PcapWriter(f)
    try:
        fn(w, a.n if a.n is not None else n)
        w.flush()
        f.flush()
    except BrokenPipeError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
