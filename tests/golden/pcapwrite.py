"""Builds Ethernet, IPv4, IPv6, TCP and UDP with correct checksums and writes classic pcap files.
Addresses are dotted strings ("10.0.0.1", "2001:db8::1") or their octets (bytes, tuples)."""
import socket
import struct

FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD


def addr(a):
    """The octets of an IPv4 or IPv6 address."""
    if isinstance(a, str):
        return socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a)
    return bytes(a)


def checksum(data):
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _l4_checksum(src, dst, proto, l4):
    """The TCP/UDP checksum of l4 over the IPv4 or IPv6 pseudo header (by the address size)."""
    s, d = addr(src), addr(dst)
    pseudo = struct.pack("!BBH", 0, proto, len(l4)) if len(s) == 4 else struct.pack("!I3xB", len(l4), proto)
    return checksum(s + d + pseudo + l4)


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", window=65535):
    """A TCP segment (20-byte header, no options) from src to dst."""
    h = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, window, 0, 0)
    return h[:16] + struct.pack("!H", _l4_checksum(src, dst, 6, h + payload)) + h[18:] + payload


def udp(src, dst, sport, dport, payload, with_checksum=True):
    """A UDP datagram from src to dst; with_checksum=False leaves the field 0 (RFC 768: no checksum)."""
    h = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    c = (_l4_checksum(src, dst, 17, h + payload) or 0xFFFF) if with_checksum else 0
    return h[:6] + struct.pack("!H", c) + payload


def ipv4(src, dst, proto, payload, ident=1, flags=0x4000, ttl=64):
    """An IPv4 packet (20-byte header with its checksum; flags holds DF/MF and the fragment offset)."""
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, flags, ttl, proto, 0,
                    addr(src), addr(dst))
    return h[:10] + struct.pack("!H", checksum(h)) + h[12:] + payload


def ipv6(src, dst, next_header, payload, hop_limit=64):
    """An IPv6 packet (fixed header, no extension headers)."""
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop_limit, addr(src), addr(dst)) + payload


def ether(dst_mac, src_mac, payload, ethertype=ETH_IPV4):
    """An Ethernet II frame."""
    return bytes(dst_mac) + bytes(src_mac) + struct.pack("!H", ethertype) + payload


def pcap_header(snaplen=65535, linktype=1):
    """The header of a classic pcap file (little-endian, microseconds; linktype 1 is Ethernet)."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(sec, usec, frame):
    """One pcap record holding the whole frame."""
    return struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame


def write_pcap(path, records, snaplen=65535):
    """Writes (sec, usec, frame) records to a classic pcap file of Ethernet frames."""
    with open(path, "wb") as f:
        f.write(pcap_header(snaplen))
        for sec, usec, frame in records:
            f.write(pcap_record(sec, usec, frame))
