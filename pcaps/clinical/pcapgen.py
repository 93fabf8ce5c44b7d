"""Minimal pcap writer for the clinical captures: Ethernet/IPv4 with TCP (handshake, in-order
segments with ACKs, FIN) and UDP, correct checksums, deterministic timestamps. Stdlib only."""
import struct

EPOCH = 1704096000  # 2024-01-01T08:00:00Z


def mac_of(ip):
    a = [int(x) for x in ip.split(".")]
    if a[0] == 255 or ip == "255.255.255.255":
        return b"\xff" * 6
    if 224 <= a[0] <= 239:
        return bytes([0x01, 0x00, 0x5E, a[1] & 0x7F, a[2], a[3]])
    return bytes([0x02, 0x00] + a)  # locally administered, one per host


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(ip):
    return bytes(int(x) for x in ip.split("."))


class Pcap:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.t = 0  # microseconds since EPOCH
        self.ip_id = 1

    def tick(self, usec=1000):
        self.t += usec

    def _frame(self, src, dst, proto, l4):
        ih = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self.ip_id & 0xFFFF, 0x4000, 64, proto, 0, ip4(src), ip4(dst))
        self.ip_id += 1
        ih = ih[:10] + struct.pack("!H", csum(ih)) + ih[12:]
        eth = mac_of(dst) + mac_of(src) + b"\x08\x00"
        pkt = eth + ih + l4
        sec, usec = EPOCH + self.t // 1000000, self.t % 1000000
        self.f.write(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)) + pkt)
        self.tick()

    def udp(self, src, sport, dst, dport, payload):
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, len(l4))
        c = csum(pseudo + l4) or 0xFFFF
        self._frame(src, dst, 17, l4[:6] + struct.pack("!H", c) + l4[8:])

    def tcp_segment(self, src, sport, dst, dport, seq, ack, flags, payload=b""):
        hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
        pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
        c = csum(pseudo + hdr + payload)
        self._frame(src, dst, 6, hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload)

    def close(self):
        self.f.close()


FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16


class Tcp:
    """One TCP connection; send() splits payloads into segments (or at the given cut points)."""

    def __init__(self, pcap, cli, cport, srv, sport, isn=(1000, 5000)):
        self.p, self.ends = pcap, [(cli, cport), (srv, sport)]
        self.seq = [isn[0], isn[1]]
        p = pcap
        p.tcp_segment(cli, cport, srv, sport, self.seq[0], 0, SYN)
        p.tcp_segment(srv, sport, cli, cport, self.seq[1], self.seq[0] + 1, SYN | ACK)
        self.seq = [self.seq[0] + 1, self.seq[1] + 1]
        p.tcp_segment(cli, cport, srv, sport, self.seq[0], self.seq[1], ACK)

    def send(self, d, data, mss=1460, cuts=None):
        """d = 0 client->server, 1 server->client."""
        (s, sp), (r, rp) = self.ends[d], self.ends[1 - d]
        pieces = []
        if cuts:
            last = 0
            for c in list(cuts) + [len(data)]:
                if c > last:
                    pieces.append(data[last:c])
                last = c
        else:
            pieces = [data[i:i + mss] for i in range(0, len(data), mss)] or []
        for piece in pieces:
            self.p.tcp_segment(s, sp, r, rp, self.seq[d], self.seq[1 - d], PSH | ACK, piece)
            self.seq[d] += len(piece)
            self.p.tcp_segment(r, rp, s, sp, self.seq[1 - d], self.seq[d], ACK)

    def close(self):
        (c, cp), (s, sp) = self.ends
        self.p.tcp_segment(c, cp, s, sp, self.seq[0], self.seq[1], FIN | ACK)
        self.p.tcp_segment(s, sp, c, cp, self.seq[1], self.seq[0] + 1, FIN | ACK)
        self.p.tcp_segment(c, cp, s, sp, self.seq[0] + 1, self.seq[1] + 1, ACK)
