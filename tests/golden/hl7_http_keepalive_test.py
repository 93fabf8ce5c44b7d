#!/usr/bin/python3
"""HL7 v2 in HTTP on connections kept alive: a POST of HL7 that follows other exchanges (a GET,
a POST of JSON) on the same connection gives its hl7 event and its ACK pairs, whether its type
says HL7 or only its body does (head and body in separate segments), and so does a response
carrying HL7 after an earlier one that did not, also when it is pipelined behind another request
in the same segment. A connection that never carries HL7 is not claimed (its app stays nDPI's).
HTTP heads longer than the probe window (a long bearer token or cookie before Content-Type) are
judged in full, in one segment or several, on the first exchange or a later one. A message
pipelined behind one whose body goes on into the next segment (with a length, or in chunks) is
found there; a response whose body runs to the close carries no message behind it. A flow
claimed on its first segment keeps nDPI's name of its HTTP and its risks (Basic credentials)."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pseudonym  # noqa: E402
from pcapwrite import ether, ipv4, tcp, write_pcap  # noqa: E402

c = Checker("hl7_http_keepalive")
SRV = "10.0.0.2"
MAC_C, MAC_S = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
records = []
t = [1700000000.0]


def adt(cid):
    # A made-up patient.
    return (b"MSH|^~\\&|EHR|WARD|LAB|HOSP|20240101120000||ADT^A01|" + cid + b"|P|2.5\r"
            b"EVN|A01|20240101120000\rPID|1||MRN77^^^H^MR||QUILL^ZED||19800202|M\r")


def ack(cid):
    return b"MSH|^~\\&|LAB|HOSP|EHR|WARD|20240101120001||ACK^A01|A" + cid + b"|P|2.5\rMSA|AA|" + cid + b"\r"


def request(method, target, body=b"", ctype=None, extra=b""):
    head = method + b" " + target + b" HTTP/1.1\r\nHost: lab\r\nConnection: keep-alive\r\n" + extra
    if ctype:
        head += b"Content-Type: " + ctype + b"\r\n"
    if body or method in (b"POST", b"PUT"):
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return head + b"\r\n", body


def response(body, ctype):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Length: " + str(len(body)).encode() +
            b"\r\n\r\n" + body)


class Conn:
    def __init__(self, cli, sport):
        self.cli, self.sport = cli, sport
        self.seq = {"c": 1000, "s": 5000}
        for frm, flags in (("c", 0x02), ("s", 0x12), ("c", 0x10)):
            ackno = self.seq[self.other(frm)] + 1 if flags != 0x02 else 0
            self.packet(frm, flags, b"", ackno)
        self.seq["c"] += 1
        self.seq["s"] += 1

    @staticmethod
    def other(frm):
        return "s" if frm == "c" else "c"

    def packet(self, frm, flags, payload, ackno=None):
        src, dst, sp, dp, mc, ms = ((self.cli, SRV, self.sport, 8080, MAC_C, MAC_S) if frm == "c"
                                    else (SRV, self.cli, 8080, self.sport, MAC_S, MAC_C))
        if ackno is None:
            ackno = self.seq[self.other(frm)]
        seg = tcp(src, dst, sp, dp, self.seq[frm], ackno, flags, payload)
        records.append((int(t[0]), int(round((t[0] % 1) * 1e6)), ether(ms, mc, ipv4(src, dst, 6, seg))))
        self.seq[frm] += len(payload)
        t[0] += 0.001

    def send(self, frm, *pieces):
        for p in pieces:
            if p:
                self.packet(frm, 0x18, p)

    def close(self):
        self.packet("c", 0x11, b"")
        self.packet("s", 0x11, b"")
        self.seq["c"] += 1
        self.seq["s"] += 1
        self.packet("c", 0x10, b"")


JSON = b"application/json"
HL7 = b"x-application/hl7-v2+er7"

# 1: GET, then a typed HL7 POST (head and body in one segment), a GET, then an untyped one whose
# body comes in a segment of its own.
k = Conn("10.0.0.11", 41001)
k.send("c", b"".join(request(b"GET", b"/health")))
k.send("s", response(b'{"status":"ok"}', JSON))
k.send("c", b"".join(request(b"POST", b"/hl7", adt(b"KA1"), HL7)))
k.send("s", response(ack(b"KA1"), HL7))
k.send("c", b"".join(request(b"GET", b"/status")))
k.send("s", response(b'{"queue":0}', JSON))
k.send("c", *request(b"POST", b"/hl7", adt(b"KA2"), b"text/plain"))
k.send("s", response(ack(b"KA2"), b"text/plain"))
k.close()

# 2: a POST of JSON first, then one of HL7.
j = Conn("10.0.0.12", 41002)
j.send("c", b"".join(request(b"POST", b"/api/login", b'{"user":"lab"}', JSON)))
j.send("s", response(b'{"token":"x"}', JSON))
j.send("c", b"".join(request(b"POST", b"/hl7", adt(b"KA3"), HL7)))
j.send("s", response(ack(b"KA3"), HL7))
j.close()

# 3: a response carrying HL7 after one that did not (a query answered in HL7).
q = Conn("10.0.0.13", 41003)
q.send("c", b"".join(request(b"GET", b"/health")))
q.send("s", response(b'{"status":"ok"}', JSON))
q.send("c", b"".join(request(b"GET", b"/results/42")))
q.send("s", response(adt(b"KA4"), b"application/hl7-v2"))
q.close()

# 5: requests pipelined in one segment: a GET, then the HL7 POST behind it; the responses likewise.
pl = Conn("10.0.0.15", 41005)
pl.send("c", b"".join(request(b"GET", b"/health")))
pl.send("s", response(b'{"status":"ok"}', JSON))
pl.send("c", b"".join(request(b"GET", b"/status")) + b"".join(request(b"POST", b"/hl7", adt(b"KA5"), HL7)))
pl.send("s", response(b'{"queue":0}', JSON) + response(ack(b"KA5"), HL7))
pl.close()

# 6: in the first segment of the connection, behind a POST of JSON (a body with a length).
pf = Conn("10.0.0.16", 41006)
pf.send("c", b"".join(request(b"POST", b"/api/login", b'{"user":"lab"}', JSON)) +
        b"".join(request(b"POST", b"/hl7", adt(b"KA6"), HL7)))
pf.send("s", response(b'{"token":"x"}', JSON) + response(ack(b"KA6"), HL7))
pf.close()

# 7: heads over the 512-byte probe window: a bearer token before the request's Content-Type, a
# cookie before the response's.
TOKEN = b"eyJhbGciOiJSUzI1NiJ9." + b"A" * 900 + b".sig"


def long_post(body):
    return (b"POST /hl7 HTTP/1.1\r\nHost: lab\r\nAuthorization: Bearer " + TOKEN + b"\r\nContent-Type: " + HL7 +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def long_response(body):
    return (b"HTTP/1.1 200 OK\r\nSet-Cookie: session=" + b"C" * 700 + b"\r\nContent-Type: " + HL7 +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


lh = Conn("10.0.0.17", 41007)
for cid in (b"KA7", b"KA8"):
    lh.send("c", long_post(adt(cid)))
    lh.send("s", long_response(ack(cid)))
lh.close()

# 8: the same after a GET on the connection, each head in 300-byte segments.
ll = Conn("10.0.0.18", 41008)
ll.send("c", b"".join(request(b"GET", b"/health")))
ll.send("s", response(b'{"status":"ok"}', JSON))
for frm, m in (("c", long_post(adt(b"KA9"))), ("s", long_response(ack(b"KA9")))):
    ll.send(frm, *[m[i:i + 300] for i in range(0, len(m), 300)])
ll.close()

# 9: behind a POST of JSON whose body goes on into the next segment, where the HL7 POST follows
# it; the responses likewise (after a GET on the connection).
big = b'{"rows":[' + b'{"v":1},' * 250 + b'{"v":1}]}'
pb = Conn("10.0.0.19", 41009)
pb.send("c", b"".join(request(b"GET", b"/health")))
pb.send("s", response(b'{"status":"ok"}', JSON))
m = b"".join(request(b"POST", b"/api/batch", big, JSON))
pb.send("c", m[:600], m[600:1400], m[1400:] + b"".join(request(b"POST", b"/hl7", adt(b"KB1"), HL7)))
m = response(big, JSON)
pb.send("s", m[:700], m[700:] + response(ack(b"KB1"), HL7))
pb.close()

# 10: the same in the connection's first segments.
pc = Conn("10.0.0.20", 41010)
m = b"".join(request(b"POST", b"/api/batch", big, JSON))
pc.send("c", m[:600], m[600:] + b"".join(request(b"POST", b"/hl7", adt(b"KB2"), HL7)))
m = response(big, JSON)
pc.send("s", m[:700], m[700:] + response(ack(b"KB2"), HL7))
pc.close()

# 11: behind a POST of JSON whose chunked body goes on into the next segments, where the HL7 POST
# follows its last chunk; the responses likewise (after a GET on the connection).


def chunked(start, ctype, body, sizes):
    out = start + b"\r\nHost: lab\r\nContent-Type: " + ctype + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    i = 0
    for size in sizes + [len(body)]:
        piece = body[i:i + size]
        if piece:
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        i += len(piece)
    return out + b"0\r\n\r\n"


ck = Conn("10.0.0.21", 41011)
ck.send("c", b"".join(request(b"GET", b"/health")))
ck.send("s", response(b'{"status":"ok"}', JSON))
m = chunked(b"POST /api/batch HTTP/1.1", JSON, big, [700, 900])
ck.send("c", m[:600], m[600:1400], m[1400:] + b"".join(request(b"POST", b"/hl7", adt(b"KC1"), HL7)))
m = chunked(b"HTTP/1.1 200 OK", JSON, big, [700, 900])
ck.send("s", m[:700], m[700:] + response(ack(b"KC1"), HL7))
ck.close()

# 12: the same in the connection's first segments.
cf = Conn("10.0.0.22", 41012)
m = chunked(b"POST /api/batch HTTP/1.1", JSON, big, [700, 900])
cf.send("c", m[:600], m[600:] + b"".join(request(b"POST", b"/hl7", adt(b"KC2"), HL7)))
m = chunked(b"HTTP/1.1 200 OK", JSON, big, [700, 900])
cf.send("s", m[:700], m[700:] + response(ack(b"KC2"), HL7))
cf.close()

# 13: segments cut inside a chunk's size line and inside the last chunk; the HL7 POST follows in
# the last segment, and is answered without HL7 (204).
cc = Conn("10.0.0.23", 41013)
cc.send("c", b"".join(request(b"GET", b"/health")))
cc.send("s", response(b'{"status":"ok"}', JSON))
m = chunked(b"POST /api/batch HTTP/1.1", JSON, big, [700, 900])
i = m.index(b"\r\n384\r\n") + 3
cc.send("c", m[:i], m[i:len(m) - 3], m[len(m) - 3:] + b"".join(request(b"POST", b"/hl7", adt(b"KC3"), HL7)))
cc.send("s", b"HTTP/1.1 204 No Content\r\n\r\n")
cc.close()

# 14: a response without a length runs to the close: a later segment of its body that begins
# like an HL7 message is no message of the connection.
nl = Conn("10.0.0.24", 41014)
nl.send("c", b"".join(request(b"GET", b"/export.txt")))
nl.send("s", b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nexport of the interface log\n")
nl.send("s", adt(b"LOG1"), b"HTTP/1.1 200 OK\r\nContent-Type: " + HL7 + b"\r\nContent-Length: 0\r\n\r\n")
nl.close()

# 15: HL7 POSTed with Basic credentials, claimed on its first segment: nDPI still reads the HTTP.
ba = Conn("10.0.0.25", 41015)
ba.send("c", b"".join(request(b"POST", b"/hl7", adt(b"KD1"), HL7, b"Authorization: Basic bGFiOmxhYg==\r\n")))
ba.send("s", response(ack(b"KD1"), HL7))
ba.close()

# 4: never HL7: several exchanges kept alive.
n = Conn("10.0.0.14", 41004)
for i in range(4):
    n.send("c", b"".join(request(b"GET", b"/page/%d" % i)))
    n.send("s", response(b"<html><body>page</body></html>" * 20, b"text/html"))
n.close()

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "keepalive.pcap")
    write_pcap(path, records)
    ev = analyze(path, keep_as="hl7-http-keepalive")

hl7 = [e for e in of_type(ev, "hl7") if e["hl7"]["kind"] == "message"]
by_port = {}
for e in hl7:
    by_port.setdefault(e["src_port"], []).append(e["hl7"])


def summary(port):
    return [(m["direction"], m["transport"], m.get("control_id"), m.get("ack", {}).get("matched"))
            for m in by_port.get(port, [])]


c.eq("GET then POST: messages and ACKs", summary(41001),
     [("to_server", "http", "KA1", None), ("to_client", "http", "AKA1", True),
      ("to_server", "http", "KA2", None), ("to_client", "http", "AKA2", True)])
c.eq("GET then POST: patient pseudonymised", [m.get("patient", {}).get("id") for m in by_port.get(41001, [])][::2],
     [pseudonym("MRN77")] * 2)
c.eq("JSON POST then HL7 POST", summary(41002),
     [("to_server", "http", "KA3", None), ("to_client", "http", "AKA3", True)])
c.eq("HL7 in a later response", summary(41003), [("to_client", "http", "KA4", None)])
c.eq("never HL7: no hl7 event", summary(41004), [])
c.eq("POST pipelined behind a GET in one segment", summary(41005),
     [("to_server", "http", "KA5", None), ("to_client", "http", "AKA5", True)])
c.eq("POST pipelined behind a POST of JSON in the first segment", summary(41006),
     [("to_server", "http", "KA6", None), ("to_client", "http", "AKA6", True)])
c.eq("heads over the probe window", summary(41007),
     [("to_server", "http", "KA7", None), ("to_client", "http", "AKA7", True),
      ("to_server", "http", "KA8", None), ("to_client", "http", "AKA8", True)])
c.eq("heads over the probe window, in segments, after a GET", summary(41008),
     [("to_server", "http", "KA9", None), ("to_client", "http", "AKA9", True)])
c.eq("POST behind a body that goes on into the next segment", summary(41009),
     [("to_server", "http", "KB1", None), ("to_client", "http", "AKB1", True)])
c.eq("the same in the first segments", summary(41010),
     [("to_server", "http", "KB2", None), ("to_client", "http", "AKB2", True)])
c.eq("POST behind a chunked body that goes on into the next segments", summary(41011),
     [("to_server", "http", "KC1", None), ("to_client", "http", "AKC1", True)])
c.eq("the same in the first segments", summary(41012),
     [("to_server", "http", "KC2", None), ("to_client", "http", "AKC2", True)])
c.eq("POST behind chunks cut inside their lines", summary(41013), [("to_server", "http", "KC3", None)])
c.eq("no message inside a body that runs to the close", summary(41014), [])
c.eq("HL7 POST with Basic credentials", summary(41015),
     [("to_server", "http", "KD1", None), ("to_client", "http", "AKD1", True)])
flows = {f["src_port"]: f for f in of_type(ev, "flow")}
ports = (41001, 41002, 41003, 41005, 41006, 41007, 41008, 41009, 41010, 41011, 41012, 41013, 41015)
# A flow claimed on its first segment keeps nDPI's reading of its HTTP: protocol and risks.
ndpi = flows.get(41015, {}).get("ndpi", {})
c.eq("claimed at once: nDPI's protocol", ndpi.get("protocol"), "HTTP")
c.true("claimed at once: credentials in clear", "Clear-Text Credentials" in ndpi.get("risks", []))
c.true("claimed at once: not guessed", not ndpi.get("guessed"))
c.eq("apps", [flows.get(p, {}).get("app") for p in ports], ["hl7"] * len(ports))
c.true("never HL7: not claimed", flows.get(41004, {}).get("app") != "hl7")
c.true("body to the close: not claimed", flows.get(41014, {}).get("app") != "hl7")
c.eq("unacked: only the POST answered without HL7",
     [[u["control_id"] for u in e["hl7"]["unacked"]] for e in of_type(ev, "hl7") if e["hl7"]["kind"] == "unacked"],
     [["KC3"]])
c.eq("no anomalies", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])
stats = of_type(ev, "stats")[-1]["stats"]
c.eq("no hl7 gaps counted", stats.get("counters", {}).get("hl7.gaps", 0), 0)
c.done()
