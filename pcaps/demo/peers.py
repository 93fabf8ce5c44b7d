#!/usr/bin/python3
"""Network peers for the demo scenario (Debian python3 + python3-hl7, nothing else).

    peers.py hl7-server HOST PORT          RIS: MLLP listener, ACKs (AA) every message
    peers.py hl7-client HOST PORT          CT: sends ORU^R01 results for made-up patients
    peers.py ssh-responder HOST PORT       workstation: SSH banner + KEXINIT, then hangs up
    peers.py smb-server HOST PORT          workstation: answers an SMB2 NEGOTIATE
    peers.py smb-client HOST PORT          CT: NetBIOS session + SMB2 NEGOTIATE request
    peers.py dns-server HOST PORT          "8.8.8.8": answers A queries
    peers.py dns-client HOST PORT NAME...  CT: A queries over UDP
    peers.py syn-scan SRC DST PORT...      CT: raw TCP SYNs (needs root); the kernel RSTs SYN-ACKs
Servers run until killed (SIGTERM).
"""
import asyncio
import os
import socket
import struct
import sys
import time


# ------------------------------------------------------------------ HL7 over MLLP
def hl7_messages():
    """ORU^R01 results for two made-up patients (no real person)."""
    msgs = []
    pts = [("DEMO0001", "TESTPATIENT^ALPHA^A", "19700101", "F", "ACC1001"),
           ("DEMO0002", "TESTPATIENT^BRAVO^B", "19820615", "M", "ACC1002")]
    for i, (mrn, name, dob, sex, acc) in enumerate(pts, 1):
        segs = [
            "MSH|^~\\&|CT01|RADIOLOGY|RIS01|HOSPITAL|20240301120%d00||ORU^R01^ORU_R01|CT01MSG%04d|P|2.5.1" % (i, i),
            "PID|1||%s^^^HOSP^MR||%s||%s|%s|||1 TEST STREET^^TESTTOWN^TS^00000" % (mrn, name, dob, sex),
            "OBR|1|%s|%s|CTHEAD^CT HEAD WITHOUT CONTRAST^L|||20240301115500" % (acc, acc),
            "OBX|1|TX|CTHEAD^CT HEAD^L||Scan completed, 3 images sent to PACS01||||||F",
        ]
        msgs.append("\r".join(segs))
    return msgs


async def hl7_server(host, port):
    import hl7
    from hl7.mllp import start_hl7_server

    async def handle(reader, writer):
        try:
            while not writer.is_closing():
                msg = await reader.readmessage()
                writer.writemessage(msg.create_ack(ack_code="AA", message_id="RIS%s" % msg.segment("MSH")[10]))
                await writer.drain()
        except asyncio.IncompleteReadError:
            if not writer.is_closing():
                writer.close()
                await writer.wait_closed()

    server = await start_hl7_server(handle, host, port)
    async with server:
        await server.serve_forever()


async def hl7_client(host, port):
    import hl7
    from hl7.mllp import open_hl7_connection
    reader, writer = await open_hl7_connection(host, port)
    for m in hl7_messages():
        writer.writemessage(hl7.parse(m))
        await writer.drain()
        ack = await reader.readmessage()
        print("hl7: ACK", ack.segment("MSA")[1], file=sys.stderr)
    writer.close()
    await writer.wait_closed()


# ------------------------------------------------------------------ SSH responder
def ssh_responder(host, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(8)
    lists = [b"curve25519-sha256", b"ssh-ed25519", b"aes128-ctr", b"aes128-ctr", b"hmac-sha2-256",
             b"hmac-sha2-256", b"none", b"none", b"", b""]
    body = bytes([20]) + bytes(16) + b"".join(struct.pack("!I", len(x)) + x for x in lists) + b"\0" * 5
    pad = 8 - (len(body) + 5) % 8 + 8
    kexinit = struct.pack("!IB", len(body) + pad + 1, pad) + body + b"\0" * pad
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(3)
            c.sendall(b"SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n")
            if c.recv(4096):
                c.sendall(kexinit)
                c.recv(4096)
        except OSError:
            pass
        c.close()


# ------------------------------------------------------------------ SMB2
def smb2_header(command, status=0, flags=0, msg_id=0):
    return (b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, status, command, 1, flags, 0, msg_id, 0xFEFF, 0, 0)
            + bytes(16))


def netbios(payload):
    return struct.pack("!I", len(payload)) + payload


def smb_client(host, port):
    dialects = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311]
    neg = struct.pack("<HHHHI16sIHH", 36, len(dialects), 1, 0, 0x7F, b"CT01-CLIENT-GUID", 0, 0, 0)
    neg += b"".join(struct.pack("<H", d) for d in dialects)
    s = socket.create_connection((host, port), timeout=3)
    s.sendall(netbios(smb2_header(0) + neg))
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()


def smb_server(host, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(8)
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(3)
            if c.recv(4096):
                # NEGOTIATE response: SMB 3.0.2 chosen, no security blob
                body = struct.pack("<HHHH16sIIIIQQHHI", 65, 1, 0x0302, 0, b"WS-SERVER-GUID!!", 0x2F,
                                   8388608, 8388608, 8388608, 0, 0, 128, 0, 0)
                c.sendall(netbios(smb2_header(0, flags=1) + body))
                c.recv(4096)
        except OSError:
            pass
        c.close()


# ------------------------------------------------------------------ DNS
def qname(name):
    return b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"


def dns_server(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    while True:
        q, peer = s.recvfrom(512)
        if len(q) < 17:
            continue
        end = q.index(b"\0", 12) + 5
        ans = struct.pack("!HHHIH4s", 0xC00C, 1, 1, 300, 4, bytes([203, 0, 113, 77]))
        s.sendto(q[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + q[12:end] + ans, peer)


def dns_client(host, port, names):
    for i, n in enumerate(names):
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(2)
        c.sendto(struct.pack("!HHHHHH", 0x2A00 + i, 0x0100, 1, 0, 0, 0) + qname(n) + struct.pack("!HH", 1, 1), (host, port))
        try:
            c.recvfrom(512)
        except OSError:
            pass
        c.close()


# ------------------------------------------------------------------ SYN scan
def csum(b):
    if len(b) % 2:
        b += b"\0"
    x = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return ~x & 0xFFFF


def syn_scan(src, dst, ports):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    sport = 61000
    for i, p in enumerate(ports):
        h = struct.pack("!HHIIBBHHH", sport, p, 0x5EED0000 + i, 0, 5 << 4, 0x02, 1024, 0, 0)
        ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!xBH", 6, len(h))
        h = h[:16] + struct.pack("!H", csum(ph + h)) + h[18:]
        s.sendto(h, (dst, 0))
        time.sleep(0.02)
    time.sleep(0.3)


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "hl7-server":
        asyncio.run(hl7_server(a[0], int(a[1])))
    elif cmd == "hl7-client":
        asyncio.run(hl7_client(a[0], int(a[1])))
    elif cmd == "ssh-responder":
        ssh_responder(a[0], int(a[1]))
    elif cmd == "smb-server":
        smb_server(a[0], int(a[1]))
    elif cmd == "smb-client":
        smb_client(a[0], int(a[1]))
    elif cmd == "dns-server":
        dns_server(a[0], int(a[1]))
    elif cmd == "dns-client":
        dns_client(a[0], int(a[1]), a[2:])
    elif cmd == "syn-scan":
        syn_scan(a[0], a[1], [int(p) for p in a[2:]])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
