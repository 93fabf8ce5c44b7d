#!/usr/bin/python3
"""make-many-flows.py [--flows N] [--kind short|syn] [--gap-us US] OUT.pcap|-

Writes a pcap of many distinct TCP flows directly with struct (stdlib only, deterministic):
- short (default): complete 8-packet conversations (handshake, a 64-byte request, a 128-byte
  answer, FIN both ways), one after the other: per-flow cost of creation, nDPI, flow events.
- syn: one SYN per flow from a distinct client, never answered: every flow stays open until it
  times out or is evicted, which is what the flow-cap memory test needs.
Clients are 10.0.0.0/8 addresses (flow i -> 10.(i>>16).(i>>8).(i)), server 192.168.0.1:80; up to
2^24 flows. Packets are GAP_US microseconds apart. '-' writes to stdout (pipe it into
`medmon analyze -`), so 10 M flows need no disk space.
"""
import argparse
import struct
import sys

T0 = 1700000000


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b):
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


class Template:
    """An Ethernet/IPv4/TCP frame whose client address and port are patched per flow, with both
    checksums updated incrementally (one's complement sums are additive)."""

    def __init__(self, to_server, flags, seq, ack, payload):
        srv = bytes([192, 168, 0, 1])
        zero = bytes(4)
        src, dst = (zero, srv) if to_server else (srv, zero)
        sport, dport = (0, 80) if to_server else (80, 0)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
        macs = (bytes.fromhex("020000000001"), bytes.fromhex("020000000002"))
        eth = (macs[1] + macs[0] if to_server else macs[0] + macs[1]) + b"\x08\x00"
        self.frame = bytearray(eth + ip + tcp + (b"\0" if len(payload) % 2 else b""))[: 14 + 20 + len(tcp)]
        self.ip_sum = words(ip)
        pseudo = src + dst + struct.pack("!xBH", 6, len(tcp))
        self.tcp_sum = words(pseudo) + words(tcp + (b"\0" if len(tcp) % 2 else b""))
        self.to_server = to_server
        self.addr_off = 14 + (12 if to_server else 16)
        self.port_off = 34 + (0 if to_server else 2)

    def render(self, ip_hi, ip_lo, port, addr):
        f = self.frame
        f[self.addr_off:self.addr_off + 4] = addr
        struct.pack_into("!H", f, self.port_off, port)
        struct.pack_into("!H", f, 24, ~fold(self.ip_sum + ip_hi + ip_lo) & 0xFFFF)
        struct.pack_into("!H", f, 50, ~fold(self.tcp_sum + ip_hi + ip_lo + port) & 0xFFFF)
        return bytes(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=200000)
    ap.add_argument("--kind", choices=("short", "syn"), default="short")
    ap.add_argument("--gap-us", type=int, default=2)
    a = ap.parse_args()
    if not 0 < a.flows <= 1 << 24:
        sys.exit("--flows must be 1..16777216")
    req = b"GET / HTTP/1.1\r\nHost: many-flows.example\r\nUser-Agent: bench\r\n\r\n".ljust(64, b" ")
    resp = b"HTTP/1.1 204 No Content\r\nServer: bench\r\n\r\n".ljust(128, b" ")
    S, A, F, P = 0x02, 0x10, 0x01, 0x08
    if a.kind == "short":
        tpl = [Template(True, S, 1000, 0, b""), Template(False, S | A, 5000, 1001, b""),
               Template(True, A, 1001, 5001, b""), Template(True, P | A, 1001, 5001, req),
               Template(False, P | A, 5001, 1065, resp), Template(True, F | A, 1065, 5129, b""),
               Template(False, F | A, 5129, 1066, b""), Template(True, A, 1066, 5130, b"")]
    else:
        tpl = [Template(True, S, 1000, 0, b"")]
    out = sys.stdout.buffer if a.out == "-" else open(a.out, "wb")
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    buf = bytearray()
    t = T0 * 1_000_000
    rec = struct.Struct("<IIII")
    for i in range(a.flows):
        addr = bytes((10, (i >> 16) & 255, (i >> 8) & 255, i & 255))
        hi, lo = (10 << 8) | ((i >> 16) & 255), i & 0xFFFF
        port = 1024 + (i * 7919) % 64000
        for tp in tpl:
            fr = tp.render(hi, lo, port, addr)
            buf += rec.pack(t // 1_000_000, t % 1_000_000, len(fr), len(fr))
            buf += fr
            t += a.gap_us
        if len(buf) > 1 << 20:
            out.write(buf)
            buf.clear()
    out.write(buf)
    out.flush()
    if out is not sys.stdout.buffer:
        out.close()


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(1)
