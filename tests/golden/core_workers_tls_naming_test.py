#!/usr/bin/python3
"""A TLS flow's name that comes from other flows does not depend on `analyze --workers N`: a TLS
flow to an https endpoint a WS-Discovery Hello announced is `sdc-tls`, one to a server seen
speaking HL7 in clear is `hl7-tls`, whichever worker read the Hello or the clear flow, and only
when that came before the TLS flow ended, as with one pipeline. The workers leave such a name to
the merge, which replays the announcements and the clear flows in output order.

The capture (written here): a TLS flow to each server before anything is known of it, then the
Hello and an HL7 message in clear, then 12 TLS flows to each server from other client ports, so
that they hash to every worker. The TLS handshakes are those of pcaps/core/real_tls.pcap."""
import json
import os
import re
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import SRC, Checker, pcap, run  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "pcaps", "clinical"))
from pcapgen import Pcap, Tcp  # noqa: E402

PER_WORKER_COUNTERS = re.compile(r'"(workers\.fragments\.[a-z_]+|[a-z0-9_.]*memory_peak)":\d+,?')


def tls_payloads(path):
    """The TCP payloads of the first connection of a classic pcap, as (direction, bytes)."""
    data = open(path, "rb").read()
    l2 = {1: 14, 0: 4, 113: 16, 101: 0}[struct.unpack("<I", data[20:24])[0]]
    off, out, client = 24, [], None
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        ip = data[off + 16 + l2:off + 16 + incl]
        off += 16 + incl
        tcp = ip[(ip[0] & 15) * 4:]
        sport, dport = struct.unpack("!HH", tcp[:4])
        client = sport if client is None else client
        if client not in (sport, dport):
            break
        if tcp[(tcp[12] >> 4) * 4:]:
            out.append((0 if sport == client else 1, tcp[(tcp[12] >> 4) * 4:]))
    return out


def tls_flow(p, cli, cport, srv, sport, payloads):
    c = Tcp(p, cli, cport, srv, sport)
    for d, data in payloads:
        c.send(d, data)
    c.close()


def write_capture(path):
    hs = tls_payloads(pcap("core", "real_tls.pcap"))
    ns = ('xmlns:s12="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing" '
          'xmlns:wsd="http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01" '
          'xmlns:dpws="http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01" '
          'xmlns:mdpws="http://standards.ieee.org/downloads/11073/11073-20702-2016"')
    hello = ('<?xml version="1.0" encoding="UTF-8"?><s12:Envelope %s><s12:Header><wsa:Action>'
             'http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Hello</wsa:Action>'
             '<wsa:MessageID>urn:uuid:00000000-0000-4000-8000-000000000001</wsa:MessageID>'
             '<wsa:To>urn:docs-oasis-open-org:ws-dd:ns:discovery:2009:01</wsa:To></s12:Header><s12:Body><wsd:Hello>'
             '<wsa:EndpointReference><wsa:Address>urn:uuid:6f1c2a5e-0000-4000-8000-00000000b001</wsa:Address>'
             '</wsa:EndpointReference><wsd:Types>dpws:Device mdpws:MedicalDevice</wsd:Types>'
             '<wsd:XAddrs>https://10.20.0.15:6465/monitor</wsd:XAddrs><wsd:MetadataVersion>1</wsd:MetadataVersion>'
             '</wsd:Hello></s12:Body></s12:Envelope>' % ns).encode()
    msg = (b"\x0bMSH|^~\\&|LAB|HOSP|LIS|HOSP|20240101080000||ORU^R01|MSG00001|P|2.5\r"
           b"PID|1||000000^^^HOSP||TEST^PATIENT\r\x1c\r")
    ack = b"\x0bMSH|^~\\&|LIS|HOSP|LAB|HOSP|20240101080001||ACK^R01|ACK00001|P|2.5\rMSA|AA|MSG00001\r\x1c\r"
    p = Pcap(path)
    tls_flow(p, "10.20.0.9", 40999, "10.20.0.15", 6465, hs)
    tls_flow(p, "10.30.0.9", 41999, "10.30.0.5", 7443, hs)
    p.tick(2_000_000)
    p.udp("10.20.0.15", 3702, "239.255.255.250", 3702, hello)
    c = Tcp(p, "10.30.0.9", 40000, "10.30.0.5", 2575)
    c.send(0, msg)
    c.send(1, ack)
    c.close()
    p.tick(2_000_000)
    for i in range(12):
        tls_flow(p, "10.20.0.9", 41000 + i, "10.20.0.15", 6465, hs)
        tls_flow(p, "10.30.0.9", 42000 + i, "10.30.0.5", 7443, hs)
    p.close()


def output(path, workers):
    args = ["analyze", path, "--out", "-", "-q", "--fail-on", "none"] + (["--workers", str(workers)] if workers else [])
    _, out, _ = run(args)
    return "\n".join(PER_WORKER_COUNTERS.sub("", line).replace(",}", "}") if '"event_type":"stats"' in line else line
                     for line in out.splitlines())


c = Checker("core_workers_tls_naming")
work = tempfile.mkdtemp(prefix="medmon-tls-naming-")
try:
    path = os.path.join(work, "tls-naming.pcap")
    write_capture(path)
    one = output(path, None)
    names = {}
    for line in one.splitlines():
        e = json.loads(line)
        if e["event_type"] == "flow" and e["src_port"] != 3702:
            names[e["src_port"]] = e["app"]
    # Ended by the closed timeout, after the Hello: named; the HL7 server's ended before the clear
    # flow did.
    c.eq("one pipeline: the TLS flows before", (names.get(40999), names.get(41999)), ("sdc-tls", None))
    c.eq("one pipeline: the TLS flows to the announced endpoint",
         [names.get(41000 + i) for i in range(12)], ["sdc-tls"] * 12)
    c.eq("one pipeline: the TLS flows to the HL7 server", [names.get(42000 + i) for i in range(12)], ["hl7-tls"] * 12)
    for n in (2, 3, 4):
        many = output(path, n)
        diff = [(a[:200], b[:200]) for a, b in zip(one.splitlines(), many.splitlines()) if a != b][:2]
        c.true(f"{n} workers write what one writes ({diff})", many == one)
finally:
    shutil.rmtree(work, ignore_errors=True)
c.done()
