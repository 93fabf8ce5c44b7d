"""Minimal pcap writer for the clinical captures: Ethernet/IPv4 with TCP (handshake, in-order
segments with ACKs, FIN) and UDP, correct checksums, deterministic timestamps. Stdlib only;
the frames and the file format come from tests/golden/pcapwrite.py."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden"))
from pcapwrite import ACK, FIN, PSH, SYN, ether, ipv4, pcap_header, pcap_record, tcp, udp  # noqa: E402

EPOCH = 1704096000  # 2024-01-01T08:00:00Z


def mac_of(ip):
    a = [int(x) for x in ip.split(".")]
    if a[0] == 255 or ip == "255.255.255.255":
        return b"\xff" * 6
    if 224 <= a[0] <= 239:
        return bytes([0x01, 0x00, 0x5E, a[1] & 0x7F, a[2], a[3]])
    return bytes([0x02, 0x00] + a)  # locally administered, one per host


class Pcap:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(pcap_header())
        self.t = 0  # microseconds since EPOCH
        self.ip_id = 1

    def tick(self, usec=1000):
        self.t += usec

    def _frame(self, src, dst, proto, l4):
        pkt = ether(mac_of(dst), mac_of(src), ipv4(src, dst, proto, l4, ident=self.ip_id))
        self.ip_id += 1
        self.f.write(pcap_record(EPOCH + self.t // 1000000, self.t % 1000000, pkt))
        self.tick()

    def udp(self, src, sport, dst, dport, payload):
        self._frame(src, dst, 17, udp(src, dst, sport, dport, payload))

    def tcp_segment(self, src, sport, dst, dport, seq, ack, flags, payload=b""):
        self._frame(src, dst, 6, tcp(src, dst, sport, dport, seq, ack, flags, payload))

    def close(self):
        self.f.close()


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
