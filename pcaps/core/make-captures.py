#!/usr/bin/python3
"""Writes the small synthetic captures in pcaps/core/ byte by byte (stdlib only).

    make-captures.py [OUTDIR]     default: the directory of this script

Every packet is built here with struct, checksums included, so each capture exercises exactly
one decoding or reassembly case. Output is deterministic: running it twice gives identical files.
The captures made with real software are made by make-real.sh.
"""
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
T0 = 1700000000  # 2023-11-14T22:13:20Z: fixed packet time base

# ---------------------------------------------------------------- link-layer type numbers
DLT_NULL, DLT_EN10MB, DLT_LOOP, DLT_RAW, DLT_LINUX_SLL = 0, 1, 108, 101, 113
DLT_IPV4, DLT_IPV6, DLT_LINUX_SLL2, DLT_USER0 = 228, 229, 276, 147


# ---------------------------------------------------------------- file writers
class Pcap:
    """Classic pcap. endian '<' or '>'; nsec selects the nanosecond magic."""

    def __init__(self, name, linktype, endian="<", nsec=False, snaplen=65535):
        self.path = os.path.join(OUT, name)
        self.f = open(self.path, "wb")
        self.e, self.nsec, self.snaplen = endian, nsec, snaplen
        magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
        self.f.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, t, frame, orig_len=None):
        """t: packet time in integer nanoseconds."""
        sec, frac = divmod(t, 10**9)
        if not self.nsec:
            frac //= 1000
        orig = len(frame) if orig_len is None else orig_len
        data = frame[: self.snaplen]
        self.f.write(struct.pack(self.e + "IIII", sec, frac, len(data), orig))
        self.f.write(data)

    def close(self):
        self.f.close()
        return self.path


class Pcapng:
    """pcapng with one Section Header Block; add interfaces, then Enhanced Packet Blocks."""

    def __init__(self, name):
        self.path = os.path.join(OUT, name)
        self.f = open(self.path, "wb")
        self.tsres = []
        self._block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + self._opts([(4, b"medmon make-captures.py")]))

    @staticmethod
    def _opts(opts):
        b = b""
        for code, val in opts:
            b += struct.pack("<HH", code, len(val)) + val + b"\0" * (-len(val) % 4)
        return b + struct.pack("<HH", 0, 0) if opts else b

    def _block(self, btype, body):
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        self.f.write(struct.pack("<II", btype, n) + body + struct.pack("<I", n))

    def interface(self, linktype, name, tsresol_exp=6, snaplen=65535):
        opts = [(2, name.encode())]
        if tsresol_exp != 6:
            opts.append((9, bytes([tsresol_exp])))
        self._block(1, struct.pack("<HHI", linktype, 0, snaplen) + self._opts(opts))
        self.tsres.append(10 ** tsresol_exp)
        return len(self.tsres) - 1

    def write(self, iface, t, frame, comment=None):
        ts = t * self.tsres[iface] // 10**9
        body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
        body += frame + b"\0" * (-len(frame) % 4)
        if comment:
            body += self._opts([(1, comment.encode())])
        self._block(6, body)

    def close(self):
        self.f.close()
        return self.path


# ---------------------------------------------------------------- packet builders
def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def ip6(a):
    """Minimal IPv6 text to bytes (handles one '::')."""
    if "::" in a:
        head, tail = a.split("::")
        h = [x for x in head.split(":") if x]
        t = [x for x in tail.split(":") if x]
        groups = h + ["0"] * (8 - len(h) - len(t)) + t
    else:
        groups = a.split(":")
    return b"".join(struct.pack("!H", int(g, 16)) for g in groups)


def is6(a):
    return ":" in a


def pseudo(src, dst, proto, length):
    if is6(src):
        return ip6(src) + ip6(dst) + struct.pack("!IxxxB", length, proto)
    return ip4(src) + ip4(dst) + struct.pack("!xBH", proto, length)


def tcp_seg(src, dst, sport, dport, seq, ack, flags, payload=b"", win=64240, doff=None, opts=b""):
    hl = 20 + len(opts)
    off = (doff if doff is not None else hl // 4) << 4
    fl = 0
    for ch, bit in zip("FSRPAU", (1, 2, 4, 8, 16, 32)):
        if ch in flags:
            fl |= bit
    h = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off, fl, win, 0, 0) + opts
    c = csum(pseudo(src, dst, 6, len(h) + len(payload)) + h + payload)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload


def udp_dgram(src, dst, sport, dport, payload, length=None):
    ln = 8 + len(payload) if length is None else length
    h = struct.pack("!HHHH", sport, dport, ln, 0)
    c = csum(pseudo(src, dst, 17, 8 + len(payload)) + h + payload) or 0xFFFF
    return h[:6] + struct.pack("!H", c) + payload


def icmp4(typ, code, rest, payload=b""):
    h = struct.pack("!BBH", typ, code, 0) + rest + payload
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]


def icmp6(src, dst, typ, code, rest, payload=b""):
    h = struct.pack("!BBH", typ, code, 0) + rest + payload
    c = csum(pseudo(src, dst, 58, len(h)) + h)
    return h[:2] + struct.pack("!H", c) + h[4:]


_ipid = [0x1000]


def ipv4(src, dst, proto, l4, ttl=64, ident=None, df=True, mf=False, frag_off=0, options=b"",
         ihl=None, total_len=None, version=4):
    if ident is None:
        _ipid[0] += 1
        ident = _ipid[0] & 0xFFFF
    options += b"\0" * (-len(options) % 4)
    hl = 20 + len(options)
    vihl = (version << 4) | (ihl if ihl is not None else hl // 4)
    tl = hl + len(l4) if total_len is None else total_len
    ff = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_off // 8)
    h = struct.pack("!BBHHHBBH4s4s", vihl, 0, tl, ident, ff, ttl, proto, 0, ip4(src), ip4(dst)) + options
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4


def ipv6(src, dst, nh, payload, hlim=64, plen=None):
    ln = len(payload) if plen is None else plen
    return struct.pack("!IHBB16s16s", 0x60000000, ln, nh, hlim, ip6(src), ip6(dst)) + payload


def ip_any(src, dst, proto, l4, **kw):
    return ipv6(src, dst, proto, l4) if is6(src) else ipv4(src, dst, proto, l4, **kw)


MAC_A = bytes.fromhex("020000000a01")
MAC_B = bytes.fromhex("020000000b02")


def eth(l3, src=MAC_A, dst=MAC_B, etype=None, vlans=()):
    """vlans: [(tpid, vid), ...] outermost first."""
    if etype is None:
        etype = 0x86DD if (l3[0] >> 4) == 6 else 0x0800
    # each tag is TPID + TCI; the next TPID is the following tag's or the real ethertype
    hdr = dst + src
    if vlans:
        parts = [struct.pack("!H", vlans[0][0])]
        for i, (_, vid) in enumerate(vlans):
            nxt = vlans[i + 1][0] if i + 1 < len(vlans) else etype
            parts.append(struct.pack("!HH", vid & 0x0FFF, nxt))
        return hdr + b"".join(parts) + l3
    return hdr + struct.pack("!H", etype) + l3


def sll(l3, pkttype=0, src=MAC_A):
    proto = 0x86DD if (l3[0] >> 4) == 6 else 0x0800
    return struct.pack("!HHH8sH", pkttype, 1, 6, src + b"\0\0", proto) + l3


def sll2(l3, pkttype=0, ifindex=2, src=MAC_A):
    proto = 0x86DD if (l3[0] >> 4) == 6 else 0x0800
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, pkttype, 6, src + b"\0\0") + l3


def null_hdr(l3, big_endian=False, af6=30):
    af = af6 if (l3[0] >> 4) == 6 else 2
    return struct.pack(">I" if big_endian else "<I", af) + l3


def pppoe(l3, session=0x1234):
    ppp = 0x0057 if (l3[0] >> 4) == 6 else 0x0021
    body = struct.pack("!H", ppp) + l3
    return struct.pack("!BBHH", 0x11, 0, session, len(body)) + body


# ---------------------------------------------------------------- conversations
class Clock:
    """Packet times in integer nanoseconds (floats cannot hold ns at this epoch)."""

    def __init__(self, start_ns=T0 * 10**9, step_ns=1_000_000):
        self.t, self.step = start_ns, step_ns

    def __call__(self):
        self.t += self.step
        return self.t


class Tcp:
    """A TCP conversation; each call returns the IP packet for one segment and advances seq."""

    def __init__(self, cli, cport, srv, sport, isn_c=1000, isn_s=5000, ipkw=None):
        self.cli, self.cport, self.srv, self.sport = cli, cport, srv, sport
        self.seq = {"c": isn_c, "s": isn_s}
        self.ipkw = ipkw or {}

    def seg(self, d, flags, payload=b"", seq=None, advance=True, ack=True):
        src, dst, sp, dp = (self.cli, self.srv, self.cport, self.sport) if d == "c" else (self.srv, self.cli, self.sport, self.cport)
        o = "s" if d == "c" else "c"
        s = self.seq[d] if seq is None else seq
        a = self.seq[o] if ack and "A" in flags else 0
        l4 = tcp_seg(src, dst, sp, dp, s, a, flags, payload)
        if advance and seq is None:
            self.seq[d] += len(payload) + (1 if ("S" in flags or "F" in flags) else 0)
        return ip_any(src, dst, 6, l4, **self.ipkw)

    def handshake(self):
        return [self.seg("c", "S"), self.seg("s", "SA"), self.seg("c", "A")]

    def close(self):
        return [self.seg("c", "FA"), self.seg("s", "FA"), self.seg("c", "A")]


def http_exchange(tcp, path="/index.html", body_len=1200):
    req = ("GET %s HTTP/1.1\r\nHost: intranet.example\r\nUser-Agent: medmon-test/1.0\r\n"
           "Accept: */*\r\n\r\n" % path).encode()
    body = bytes((i * 31) & 0x7F | 0x20 for i in range(body_len))
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % body_len + body
    pkts = tcp.handshake() + [tcp.seg("c", "PA", req), tcp.seg("s", "A")]
    for i in range(0, len(resp), 1000):
        pkts.append(tcp.seg("s", "PA", resp[i:i + 1000]))
    pkts.append(tcp.seg("c", "A"))
    return pkts + tcp.close()


def dns_query(name, qid=0x1234):
    q = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)


def dns_answer(name, addr, qid=0x1234):
    q = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
    return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q + struct.pack("!HH", 1, 1)
            + struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + ip4(addr))


def basic_mix(c, a4="192.168.10.5", b4="192.168.10.80", a6=None, b6=None, base_port=40000):
    """TCP (handshake, data both ways, FIN), UDP request/response, ICMP echo; optional IPv6 too."""
    out = []
    for p in http_exchange(Tcp(a4, base_port, b4, 80)):
        out.append((c(), p))
    out.append((c(), ipv4(a4, b4, 17, udp_dgram(a4, b4, base_port + 1, 53, dns_query("pacs.hospital.example")))))
    out.append((c(), ipv4(b4, a4, 17, udp_dgram(b4, a4, 53, base_port + 1, dns_answer("pacs.hospital.example", "10.10.2.20")))))
    out.append((c(), ipv4(a4, b4, 1, icmp4(8, 0, struct.pack("!HH", 0x77, 1), b"ping" * 8))))
    out.append((c(), ipv4(b4, a4, 1, icmp4(0, 0, struct.pack("!HH", 0x77, 1), b"ping" * 8))))
    if a6:
        for p in http_exchange(Tcp(a6, base_port + 2, b6, 8080, isn_c=77, isn_s=99), path="/v6"):
            out.append((c(), p))
        out.append((c(), ipv6(a6, b6, 17, udp_dgram(a6, b6, base_port + 3, 514, b"<13>medmon test syslog over v6"))))
        out.append((c(), ipv6(a6, b6, 58, icmp6(a6, b6, 128, 0, struct.pack("!HH", 9, 1), b"v6ping"))))
        out.append((c(), ipv6(b6, a6, 58, icmp6(b6, a6, 129, 0, struct.pack("!HH", 9, 1), b"v6ping"))))
    return out


def arp_request():
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_A, ip4("192.168.10.5"), b"\0" * 6, ip4("192.168.10.80"))
    return b"\xff" * 6 + MAC_A + struct.pack("!H", 0x0806) + body + b"\0" * 18


def write_all(w, pkts, wrap):
    for t, p in pkts:
        w.write(t, wrap(p))
    return w.close()


# ---------------------------------------------------------------- the captures
made = []


def ethernet_basic():
    c = Clock()
    w = Pcap("ethernet_basic.pcap", DLT_EN10MB)
    w.write(c(), arp_request())  # not IP: counted, no flow
    pkts = basic_mix(c, a6="2001:db8:10::5", b6="2001:db8:10::80")
    # a second TCP conversation that is reset by the server (port closed)
    t = Tcp("192.168.10.5", 40100, "192.168.10.80", 23)
    pkts += [(c(), t.seg("c", "S")), (c(), t.seg("s", "RA"))]
    made.append(write_all(w, pkts, eth))


def vlans():
    c = Clock()
    w = Pcap("vlan_8021q.pcap", DLT_EN10MB)
    made.append(write_all(w, basic_mix(c, "10.20.0.5", "10.20.0.9", "2001:db8:20::5", "2001:db8:20::9"),
                          lambda p: eth(p, vlans=[(0x8100, 20)])))
    c = Clock()
    w = Pcap("vlan_qinq.pcap", DLT_EN10MB)
    pkts = basic_mix(c, "10.30.0.5", "10.30.0.9")
    made.append(write_all(w, pkts, lambda p: eth(p, vlans=[(0x88A8, 100), (0x8100, 30)])))
    # the same 5-tuple on two VLANs: two distinct flows
    c = Clock()
    w = Pcap("vlan_same_tuple.pcap", DLT_EN10MB)
    for vid in (31, 32):
        t = Tcp("10.31.0.5", 40000, "10.31.0.9", 80)
        for p in http_exchange(t):
            w.write(c(), eth(p, vlans=[(0x8100, vid)]))
    made.append(w.close())


def pppoe_session():
    c = Clock()
    w = Pcap("pppoe_session.pcap", DLT_EN10MB)
    # PPPoE discovery (PADI) first: not IP, counted and skipped
    padi = struct.pack("!BBHH", 0x11, 0x09, 0, 4) + struct.pack("!HH", 0x0101, 0)
    w.write(c(), b"\xff" * 6 + MAC_A + struct.pack("!H", 0x8863) + padi)
    pkts = basic_mix(c, "100.64.1.5", "198.51.100.80", "2001:db8:64::5", "2001:db8:51::80")
    made.append(write_all(w, pkts, lambda p: eth(pppoe(p), etype=0x8864)))


def cooked():
    c = Clock()
    made.append(write_all(Pcap("linux_sll.pcap", DLT_LINUX_SLL),
                          basic_mix(c, "10.40.0.5", "10.40.0.9", "fd00:40::5", "fd00:40::9"), sll))
    c = Clock()
    made.append(write_all(Pcap("linux_sll2.pcap", DLT_LINUX_SLL2),
                          basic_mix(c, "10.41.0.5", "10.41.0.9", "fd00:41::5", "fd00:41::9"), sll2))


def loopback():
    c = Clock()
    # DLT_NULL: 4-byte address family in the capturing host's byte order (little endian here)
    made.append(write_all(Pcap("null_loopback.pcap", DLT_NULL),
                          basic_mix(c, "127.0.0.1", "127.0.0.1", "::1", "::1"), null_hdr))
    c = Clock()
    # DLT_LOOP (OpenBSD): address family in network byte order; AF_INET6 = 24
    made.append(write_all(Pcap("loop_openbsd.pcap", DLT_LOOP),
                          basic_mix(c, "127.0.0.1", "127.0.0.1", "::1", "::1", base_port=41000),
                          lambda p: null_hdr(p, big_endian=True, af6=24)))


def raw_ip():
    c = Clock()
    made.append(write_all(Pcap("raw_ip.pcap", DLT_RAW),
                          basic_mix(c, "10.50.0.5", "10.50.0.9", "2001:db8:50::5", "2001:db8:50::9"), lambda p: p))
    c = Clock()
    made.append(write_all(Pcap("raw_ipv4.pcap", DLT_IPV4), basic_mix(c, "10.51.0.5", "10.51.0.9"), lambda p: p))
    c = Clock()
    pkts = []
    for p in http_exchange(Tcp("2001:db8:52::5", 40000, "2001:db8:52::9", 443)):
        pkts.append((c(), p))
    s, d = "2001:db8:52::5", "2001:db8:52::9"
    pkts.append((c(), ipv6(s, d, 17, udp_dgram(s, d, 40001, 123, b"\x23" + b"\0" * 47))))
    pkts.append((c(), ipv6(d, s, 17, udp_dgram(d, s, 123, 40001, b"\x24" + b"\0" * 47))))
    made.append(write_all(Pcap("raw_ipv6.pcap", DLT_IPV6), pkts, lambda p: p))


def byte_orders():
    # big-endian file header and records with nanosecond timestamps
    c = Clock(step_ns=123457)
    made.append(write_all(Pcap("bigendian_nsec.pcap", DLT_EN10MB, endian=">", nsec=True),
                          basic_mix(c, "10.60.0.5", "10.60.0.9"), eth))


def ipv4_options():
    c = Clock()
    rr = bytes([7, 11, 4]) + b"\0" * 8       # record route, room for two addresses
    ra = bytes([148, 4, 0, 0])               # router alert
    ts = bytes([68, 12, 5, 0]) + b"\0" * 8   # timestamp option
    t = Tcp("10.70.0.5", 40000, "10.70.0.9", 80, ipkw={"options": rr + b"\x01"})
    pkts = [(c(), p) for p in http_exchange(t)]
    a, b = "10.70.0.5", "10.70.0.9"
    pkts.append((c(), ipv4(a, b, 17, udp_dgram(a, b, 40001, 5000, b"router alert"), options=ra)))
    pkts.append((c(), ipv4(b, a, 17, udp_dgram(b, a, 5000, 40001, b"ts option"), options=ts)))
    pkts.append((c(), ipv4(a, b, 17, udp_dgram(a, b, 40002, 5001, b"max options"), options=b"\x01" * 39 + b"\x00")))
    made.append(write_all(Pcap("ipv4_options.pcap", DLT_EN10MB), pkts, eth))


def frags4(src, dst, l4, proto, ident, sizes):
    """Splits the L4 bytes into IPv4 fragments of the given sizes (multiples of 8 except the last)."""
    out, off = [], 0
    for i, n in enumerate(sizes):
        part = l4[off:off + n]
        last = off + n >= len(l4)
        out.append(ipv4(src, dst, proto, part, ident=ident, df=False, mf=not last, frag_off=off))
        off += n
    return out


def ipv4_fragments():
    c = Clock()
    a, b = "10.80.0.5", "10.80.0.9"
    pkts = []
    payload = bytes(i & 0xFF for i in range(3000))
    # 1: in order
    f = frags4(a, b, udp_dgram(a, b, 40001, 7001, payload), 17, 0x0101, [1480, 1480, 1480])
    pkts += [(c(), p) for p in f]
    # 2: out of order (last fragment first, then the others reversed)
    f = frags4(a, b, udp_dgram(a, b, 40002, 7002, payload), 17, 0x0202, [1000, 1000, 1008])
    pkts += [(c(), p) for p in reversed(f)]
    # 3: overlapping fragments: the second repeats the tail of the first (first-wins data)
    l4 = udp_dgram(a, b, 40003, 7003, payload[:1600])
    pkts.append((c(), ipv4(a, b, 17, l4[:800], ident=0x0303, df=False, mf=True, frag_off=0)))
    pkts.append((c(), ipv4(a, b, 17, l4[800:1200], ident=0x0303, df=False, mf=True, frag_off=800)))
    pkts.append((c(), ipv4(a, b, 17, b"\xEE" * 400 + l4[1200:], ident=0x0303, df=False, mf=False, frag_off=800)))
    # 4: never completed: the middle fragment is missing
    f = frags4(a, b, udp_dgram(a, b, 40004, 7004, payload), 17, 0x0404, [1000, 1000, 1008])
    pkts += [(c(), f[0]), (c(), f[2])]
    # 5: a fragmented ICMP echo, in order
    f = frags4(a, b, icmp4(8, 0, struct.pack("!HH", 5, 1), payload[:2000]), 1, 0x0505, [1200, 808])
    pkts += [(c(), p) for p in f]
    # 6: TCP segment carried in two fragments, inside a normal conversation
    t = Tcp(a, 40006, b, 8080)
    pkts += [(c(), p) for p in t.handshake()]
    l4 = tcp_seg(a, b, 40006, 8080, t.seq["c"], t.seq["s"], "PA", payload[:2000])
    t.seq["c"] += 2000
    pkts += [(c(), p) for p in frags4(a, b, l4, 6, 0x0606, [1400, 620])]
    pkts += [(c(), t.seg("s", "A"))] + [(c(), p) for p in t.close()]
    made.append(write_all(Pcap("ipv4_fragments.pcap", DLT_EN10MB), pkts, eth))


def ipv6_ext():
    c = Clock()
    a, b = "2001:db8:90::5", "2001:db8:90::9"
    pkts = []
    pad4 = bytes([1, 2, 0, 0])  # PadN option filling an 8-byte header
    # hop-by-hop (router alert) then UDP
    hbh = bytes([17, 0]) + bytes([5, 2, 0, 0]) + bytes([1, 0])
    pkts.append((c(), ipv6(a, b, 0, hbh + udp_dgram(a, b, 40001, 7000, b"hop-by-hop"))))
    # destination options then routing (type 4, segments left 0) then TCP: a whole conversation
    t = Tcp(a, 40002, b, 80)
    for p in http_exchange(t):
        l4 = p[40:]
        rth = bytes([6, 2, 4, 0, 0, 0, 0, 0]) + ip6(b)      # routing header, one segment
        dst = bytes([43, 0]) + pad4 + bytes([1, 0])
        pkts.append((c(), ipv6(_addr6(p[8:24]), _addr6(p[24:40]), 60, dst + rth + l4)))
    # fragment header: a UDP datagram in two IPv6 fragments, then an atomic fragment
    u = udp_dgram(a, b, 40003, 7003, bytes(range(256)) * 8)
    n1 = 1232
    fh1 = struct.pack("!BBHI", 17, 0, (0 << 3) | 1, 0xABCD0001)
    fh2 = struct.pack("!BBHI", 17, 0, ((n1 // 8) << 3) | 0, 0xABCD0001)
    pkts.append((c(), ipv6(a, b, 44, fh1 + u[:n1])))
    pkts.append((c(), ipv6(a, b, 44, fh2 + u[n1:])))
    fa = struct.pack("!BBHI", 17, 0, 0, 0xABCD0002)
    pkts.append((c(), ipv6(b, a, 44, fa + udp_dgram(b, a, 7003, 40003, b"atomic fragment"))))
    # hop-by-hop + fragment header for ICMPv6 echo request, out of order
    e = icmp6(a, b, 128, 0, struct.pack("!HH", 7, 1), bytes(range(200)) * 8)
    hbh44 = bytes([44, 0]) + pad4 + bytes([1, 0])
    g1 = struct.pack("!BBHI", 58, 0, 1, 0xABCD0003)
    g2 = struct.pack("!BBHI", 58, 0, (1000 // 8) << 3, 0xABCD0003)
    pkts.append((c(), ipv6(a, b, 0, hbh44 + g2 + e[1000:])))
    pkts.append((c(), ipv6(a, b, 0, hbh44 + g1 + e[:1000])))
    made.append(write_all(Pcap("ipv6_ext_headers.pcap", DLT_EN10MB), pkts, eth))


def fragments_first_last():
    """Datagrams whose first fragment comes last, inside conversations answered unfragmented: the
    whole datagram's ports are only known when its last packet arrives."""
    c = Clock()
    a, b = "10.81.0.5", "10.81.0.9"
    pkts = []
    # 1: an HTTP POST whose request segment is in three fragments, sent last first
    t = Tcp(a, 40101, b, 8080)
    body = bytes((i * 7) & 0x3F | 0x40 for i in range(2400))
    req = b"POST /upload HTTP/1.1\r\nHost: intranet.example\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    pkts += [(c(), p) for p in t.handshake()]
    l4 = tcp_seg(a, b, 40101, 8080, t.seq["c"], t.seq["s"], "PA", req)
    t.seq["c"] += len(req)
    pkts += [(c(), p) for p in reversed(frags4(a, b, l4, 6, 0x0A01, [1000, 1000, 1000]))]
    pkts += [(c(), t.seg("s", "PA", b"HTTP/1.1 204 No Content\r\n\r\n")), (c(), t.seg("c", "A"))]
    pkts += [(c(), p) for p in t.close()]
    # 2: a UDP request in three fragments, last first, answered by one unfragmented datagram
    payload = bytes(i & 0xFF for i in range(3000))
    f = frags4(a, b, udp_dgram(a, b, 40102, 7010, payload), 17, 0x0A02, [1200, 1200, 608])
    pkts += [(c(), p) for p in reversed(f)]
    pkts.append((c(), ipv4(b, a, 17, udp_dgram(b, a, 7010, 40102, b"received"))))
    # 3: an ICMP echo request in two fragments, second first, and its unfragmented reply
    f = frags4(a, b, icmp4(8, 0, struct.pack("!HH", 0x0C03, 1), payload[:1800]), 1, 0x0A03, [1000, 808])
    pkts += [(c(), f[1]), (c(), f[0])]
    pkts.append((c(), ipv4(b, a, 1, icmp4(0, 0, struct.pack("!HH", 0x0C03, 1), b"short reply"))))
    # 4: IPv6: a TCP segment in two fragments (fragment header), second first
    a6, b6 = "2001:db8:91::5", "2001:db8:91::9"
    t = Tcp(a6, 40104, b6, 8080, isn_c=300, isn_s=700)
    pkts += [(c(), p) for p in t.handshake()]
    l4 = tcp_seg(a6, b6, 40104, 8080, t.seq["c"], t.seq["s"], "PA", req)
    t.seq["c"] += len(req)
    n1 = 1232
    fh1 = struct.pack("!BBHI", 6, 0, (0 << 3) | 1, 0x0A040001)
    fh2 = struct.pack("!BBHI", 6, 0, ((n1 // 8) << 3) | 0, 0x0A040001)
    pkts += [(c(), ipv6(a6, b6, 44, fh2 + l4[n1:])), (c(), ipv6(a6, b6, 44, fh1 + l4[:n1]))]
    pkts += [(c(), t.seg("s", "A"))] + [(c(), p) for p in t.close()]
    # 5: a datagram whose first fragment is never captured, then 31 s without fragments (beyond
    # the 30 s fragment timeout) before a DNS query and answer
    f = frags4(a, b, udp_dgram(a, b, 40105, 7011, payload), 17, 0x0A05, [1000, 1000, 1008])
    pkts += [(c(), f[2]), (c(), f[1])]
    c.t += 31 * 10**9
    pkts.append((c(), ipv4(a, b, 17, udp_dgram(a, b, 40106, 53, dns_query("pacs.hospital.example", 0x0A06)))))
    pkts.append((c(), ipv4(b, a, 17, udp_dgram(b, a, 53, 40106, dns_answer("pacs.hospital.example", "10.10.2.20", 0x0A06)))))
    # 6: the same at the very end: still waiting for its first fragment when the capture ends
    f = frags4(a, b, udp_dgram(a, b, 40107, 7012, payload), 17, 0x0A07, [1000, 1000, 1008])
    pkts += [(c(), f[2]), (c(), f[1])]
    made.append(write_all(Pcap("fragments_first_last.pcap", DLT_EN10MB), pkts, eth))


def _addr6(b):
    return ":".join("%x" % x for x in struct.unpack("!8H", b))


def tcp_cases():
    a, b = "10.100.0.5", "10.100.0.9"
    data = b"".join(b"line %04d of the request stream\n" % i for i in range(60))  # 1920 bytes
    chunks = [data[i:i + 400] for i in range(0, len(data), 400)]  # 5 segments

    def start(port):
        t = Tcp(a, port, b, 9000)
        return t, t.handshake()

    def send_chunks(t, order, isn):
        out = []
        for i in order:
            out.append(t.seg("c", "PA", chunks[i], seq=isn + i * 400))
        t.seq["c"] = isn + len(data)
        return out

    # out of order: segments 0,2,1,4,3
    c = Clock()
    t, p = start(41001)
    isn = t.seq["c"]
    p += send_chunks(t, [0, 2, 1, 4, 3], isn) + [t.seg("s", "A"), t.seg("s", "PA", b"ok\n")] + t.close()
    made.append(write_all(Pcap("tcp_out_of_order.pcap", DLT_EN10MB), [(c(), x) for x in p], eth))

    # retransmission: segments 1 and 3 sent twice with identical bytes
    c = Clock()
    t, p = start(41002)
    isn = t.seq["c"]
    p += send_chunks(t, [0, 1, 1, 2, 3, 3, 4], isn) + [t.seg("s", "A"), t.seg("s", "PA", b"ok\n")] + t.close()
    made.append(write_all(Pcap("tcp_retransmission.pcap", DLT_EN10MB), [(c(), x) for x in p], eth))

    # overlap: a later segment overlaps bytes already received with different content; the
    # first copy must win (the stream the server's application saw)
    c = Clock()
    t, p = start(41003)
    isn = t.seq["c"]
    p += [t.seg("c", "PA", data[0:600], seq=isn),
          t.seg("c", "PA", b"X" * 200 + data[600:1000], seq=isn + 400),   # 400..600 overlap, differs
          t.seg("c", "PA", data[1000:], seq=isn + 1000),
          t.seg("c", "PA", b"Y" * 300, seq=isn + 1200)]                   # fully inside received data
    t.seq["c"] = isn + len(data)
    p += [t.seg("s", "A"), t.seg("s", "PA", b"ok\n")] + t.close()
    made.append(write_all(Pcap("tcp_overlap.pcap", DLT_EN10MB), [(c(), x) for x in p], eth))

    # gap: segment 2 (bytes 800..1200) never appears in the capture
    c = Clock()
    t, p = start(41004)
    isn = t.seq["c"]
    p += send_chunks(t, [0, 1, 3, 4], isn) + [t.seg("s", "A"), t.seg("s", "PA", b"ok\n")] + t.close()
    made.append(write_all(Pcap("tcp_gap.pcap", DLT_EN10MB), [(c(), x) for x in p], eth))

    # mid-stream: the capture starts after the handshake (no SYN), data both ways, FIN
    c = Clock()
    t = Tcp(a, 41005, b, 9000, isn_c=700000, isn_s=900000)
    p = [t.seg("c", "PA", chunks[0]), t.seg("s", "A"), t.seg("c", "PA", chunks[1]),
         t.seg("s", "PA", b"ok\n"), t.seg("c", "A")] + t.close()
    made.append(write_all(Pcap("tcp_midstream.pcap", DLT_EN10MB), [(c(), x) for x in p], eth))

    # sequence number wrap: the client's ISN sits just below 2^32
    c = Clock()
    t = Tcp(a, 41006, b, 9000, isn_c=0xFFFFFF00)
    p = t.handshake()
    isn = t.seq["c"]
    p += send_chunks(t, [0, 1, 2, 3, 4], isn) + [t.seg("s", "A")] + t.close()
    made.append(write_all(Pcap("tcp_seq_wrap.pcap", DLT_EN10MB), [(c(), x) for x in p], eth))

    # port reuse: the same 4-tuple twice in a row, two flows (closed, then reset)
    c = Clock()
    t = Tcp(a, 41007, b, 9000)
    p = t.handshake() + [t.seg("c", "PA", chunks[0]), t.seg("s", "A")] + t.close()
    t2 = Tcp(a, 41007, b, 9000, isn_c=123456, isn_s=654321)
    p += t2.handshake() + [t2.seg("c", "PA", chunks[1]), t2.seg("s", "RA")]
    made.append(write_all(Pcap("tcp_port_reuse.pcap", DLT_EN10MB), [(c(), x) for x in p], eth))


def udp_icmp():
    c = Clock()
    a, b = "10.110.0.5", "10.110.0.53"
    pkts = []
    for i, name in enumerate(["pacs.hospital.example", "ris.hospital.example", "time.hospital.example"]):
        pkts.append((c(), ipv4(a, b, 17, udp_dgram(a, b, 50000 + i, 53, dns_query(name, 0x100 + i)))))
        pkts.append((c(), ipv4(b, a, 17, udp_dgram(b, a, 53, 50000 + i, dns_answer(name, "10.10.2.%d" % (20 + i), 0x100 + i)))))
    # NTP client/server
    pkts.append((c(), ipv4(a, "10.110.0.123", 17, udp_dgram(a, "10.110.0.123", 123, 123, b"\x23" + b"\0" * 47))))
    pkts.append((c(), ipv4("10.110.0.123", a, 17, udp_dgram("10.110.0.123", a, 123, 123, b"\x24" + b"\0" * 47))))
    # one-way syslog
    for i in range(3):
        pkts.append((c(), ipv4(a, "10.110.0.14", 17, udp_dgram(a, "10.110.0.14", 51514, 514, b"<14>ct01 test message %d" % i))))
    # ICMP: echo, then port unreachable quoting a UDP datagram
    pkts.append((c(), ipv4(a, b, 1, icmp4(8, 0, struct.pack("!HH", 1, 1), b"abcdefgh" * 4))))
    pkts.append((c(), ipv4(b, a, 1, icmp4(0, 0, struct.pack("!HH", 1, 1), b"abcdefgh" * 4))))
    quoted = ipv4(a, b, 17, udp_dgram(a, b, 50100, 9999, b"x" * 8))[:28]
    pkts.append((c(), ipv4(a, b, 17, udp_dgram(a, b, 50100, 9999, b"x" * 8))))
    pkts.append((c(), ipv4(b, a, 1, icmp4(3, 3, b"\0\0\0\0", quoted))))
    # ICMPv6: echo and neighbour solicitation
    s6, d6 = "fe80::5", "fe80::9"
    pkts.append((c(), ipv6(s6, d6, 58, icmp6(s6, d6, 128, 0, struct.pack("!HH", 3, 1), b"v6 echo"))))
    pkts.append((c(), ipv6(d6, s6, 58, icmp6(d6, s6, 129, 0, struct.pack("!HH", 3, 1), b"v6 echo"))))
    ns = "ff02::1:ff00:9"
    pkts.append((c(), ipv6(s6, ns, 58, icmp6(s6, ns, 135, 0, b"\0\0\0\0", ip6(d6)), hlim=255)))
    made.append(write_all(Pcap("udp_icmp.pcap", DLT_EN10MB), pkts, eth))


def pcapng_two_interfaces():
    w = Pcapng("two_interfaces.pcapng")
    i0 = w.interface(DLT_EN10MB, "eth0")
    i1 = w.interface(DLT_EN10MB, "eth1", tsresol_exp=9)
    c = Clock()
    a = basic_mix(c, "10.120.0.5", "10.120.0.9")
    c2 = Clock(start_ns=T0 * 10**9 + 500_000)
    b = basic_mix(c2, "10.121.0.5", "10.121.0.9", base_port=42000)
    merged = sorted([(t, 0, p) for t, p in a] + [(t, 1, p) for t, p in b], key=lambda x: (x[0], x[1]))
    for k, (t, i, p) in enumerate(merged):
        w.write(i0 if i == 0 else i1, t, eth(p), comment="first packet" if k == 0 else None)
    made.append(w.close())


def broken_files():
    # truncated: a valid capture cut in the middle of a record's data
    c = Clock()
    path = write_all(Pcap("truncated.pcap", DLT_EN10MB), basic_mix(c, "10.130.0.5", "10.130.0.9"), eth)
    with open(path, "rb") as f:
        data = f.read()
    # find the 8th record and cut 20 bytes into its data
    off = 24
    for _ in range(7):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        off += 16 + incl
    with open(path, "wb") as f:
        f.write(data[:off + 16 + 20])
    made.append(path)
    # not a pcap at all
    path = os.path.join(OUT, "not_a_pcap.pcap")
    with open(path, "wb") as f:
        f.write(b"This is a plain text file, not a packet capture.\n" * 4)
    made.append(path)
    # a valid pcap with a link type medmon does not decode (DLT_USER0)
    c = Clock()
    made.append(write_all(Pcap("unknown_linktype.pcap", DLT_USER0), basic_mix(c, "10.140.0.5", "10.140.0.9"), eth))


def malformed():
    c = Clock()
    w = Pcap("malformed.pcap", DLT_EN10MB)
    a, b = "10.150.0.5", "10.150.0.9"
    good_udp = udp_dgram(a, b, 40001, 7001, b"payload")
    tcp_ok = tcp_seg(a, b, 40002, 80, 1, 0, "S")
    cases = [
        ("truncated ethernet header", MAC_B + MAC_A[:4]),
        ("ipv4 header length 12 bytes", eth(ipv4(a, b, 17, good_udp, ihl=3))),
        ("ipv4 header length beyond packet", eth(ipv4(a, b, 17, good_udp, ihl=15)[:30])),
        ("ipv4 total length beyond packet", eth(ipv4(a, b, 17, good_udp, total_len=1400))),
        ("ipv4 total length below header", eth(ipv4(a, b, 17, good_udp, total_len=12))),
        ("ipv4 version 7 in an IPv4 frame", eth(ipv4(a, b, 17, good_udp, version=7), etype=0x0800)),
        ("truncated ipv4 header", eth(ipv4(a, b, 17, good_udp)[:12])),
        ("tcp data offset beyond packet", eth(ipv4(a, b, 6, tcp_seg(a, b, 40003, 80, 1, 0, "S", doff=15)))),
        ("tcp data offset below 5", eth(ipv4(a, b, 6, tcp_seg(a, b, 40004, 80, 1, 0, "S", doff=2)))),
        ("truncated tcp header", eth(ipv4(a, b, 6, tcp_ok[:10]))),
        ("truncated udp header", eth(ipv4(a, b, 17, good_udp[:5]))),
        ("udp length beyond packet", eth(ipv4(a, b, 17, udp_dgram(a, b, 40005, 7001, b"short", length=900)))),
        ("udp length below 8", eth(ipv4(a, b, 17, udp_dgram(a, b, 40006, 7001, b"short", length=3)))),
        ("truncated ipv6 header", eth(ipv6("2001:db8::5", "2001:db8::9", 17, good_udp)[:30], etype=0x86DD)),
        ("ipv6 payload length beyond packet", eth(ipv6("2001:db8::5", "2001:db8::9", 17,
                                                     udp_dgram("2001:db8::5", "2001:db8::9", 1, 2, b"x"), plen=4000))),
        ("ipv6 extension header beyond packet", eth(ipv6("2001:db8::5", "2001:db8::9", 0, bytes([17, 200]) + b"\0" * 6))),
        ("truncated vlan tag", MAC_B + MAC_A + b"\x81\x00\x00"),
        ("truncated pppoe header", MAC_B + MAC_A + b"\x88\x64\x11\x00\x12"),
        ("ipv4 fragment offset beyond 64 KiB", eth(ipv4(a, b, 17, b"z" * 16, ident=9, df=False, mf=False, frag_off=65528))),
    ]
    for _, frame in cases:
        w.write(c(), frame)
    # then a clean conversation: the run must go on after all of the above
    for p in http_exchange(Tcp(a, 40100, b, 80)):
        w.write(c(), eth(p))
    made.append(w.close())
    with open(os.path.join(OUT, "malformed.txt"), "w") as f:
        f.write("# frame number (1-based) and what is wrong with it; frames after these are a clean TCP conversation\n")
        for i, (what, _) in enumerate(cases, 1):
            f.write("%d\t%s\n" % (i, what))


def snaplen_cut():
    # captured with a 96-byte snap length: headers complete, payload cut; wire lengths kept
    c = Clock()
    w = Pcap("snaplen_96.pcap", DLT_EN10MB, snaplen=96)
    made.append(write_all(w, basic_mix(c, "10.160.0.5", "10.160.0.9"), eth))


def main():
    os.makedirs(OUT, exist_ok=True)
    # New captures go last: IPv4 identifications come from one counter, so the files made before
    # them stay byte-identical.
    for fn in (ethernet_basic, vlans, pppoe_session, cooked, loopback, raw_ip, byte_orders, ipv4_options,
               ipv4_fragments, ipv6_ext, tcp_cases, udp_icmp, pcapng_two_interfaces, broken_files,
               malformed, snaplen_cut, fragments_first_last):
        fn()
    for p in made:
        print("%8d  %s" % (os.path.getsize(p), os.path.basename(p)))


if __name__ == "__main__":
    main()
