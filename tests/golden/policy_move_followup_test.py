"""A C-MOVE's objects go out on an association the SCP opens to the destination AE's address: the
policy pairs that follow-up with the C-MOVE (by the SCP's address, the called AE and time), so the
alert on an undeclared destination names the address that received the objects, and a follow-up to
an address the site does not bind to the destination AE is dicom.move_address_undeclared, with one
pipeline and with workers alike. Crafted capture on policies/sites/rules-hospital.yaml; no patient
data in it.
"""
import json
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import SRC, Checker, of_type, run  # noqa: E402
from pcapwrite import ACK, FIN, PSH, SYN, ether, ipv4, tcp, udp, write_pcap  # noqa: E402

SITE = os.path.join(SRC, "policies", "sites", "rules-hospital.yaml")
WS, PACS, EXFIL, OFFICE, NTP = "10.10.4.40", "10.10.2.20", "10.10.9.9", "10.10.5.50", "10.10.0.123"
MOVE_SOP, CT_SOP, IMPLICIT = b"1.2.840.10008.5.1.4.1.2.2.2", b"1.2.840.10008.5.1.4.1.1.2", b"1.2.840.10008.1.2"


def item(t, v):
    return struct.pack("!BBH", t, 0, len(v)) + v


def pdu(t, body):
    return struct.pack("!BBI", t, 0, len(body)) + body


def uid(u):
    return u + b"\0" if len(u) % 2 else u


def assoc(kind, calling, called, sop):
    body = struct.pack("!HH", 1, 0) + called.ljust(16) + calling.ljust(16) + b"\0" * 32 + item(0x10, b"1.2.840.10008.3.1.1.1")
    if kind == "rq":
        body += item(0x20, bytes([1, 0, 0, 0]) + item(0x30, sop) + item(0x40, IMPLICIT))
    else:
        body += item(0x21, bytes([1, 0, 0, 0]) + item(0x40, IMPLICIT))
    body += item(0x50, item(0x51, struct.pack("!I", 16384)) + item(0x52, b"1.2.276.0.7230010.3.0.3.6.7") +
                 item(0x55, b"OFFIS_DCMTK_367"))
    return pdu(1 if kind == "rq" else 2, body)


def elem(tag, v):
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(v)) + v


def command(fields):
    body = b"".join(elem(t, v) for t, v in fields)
    return elem(0x00000000, struct.pack("<I", len(body))) + body


def pdata(cmd, dataset=None):
    out = pdu(4, struct.pack("!IBB", len(cmd) + 2, 1, 3) + cmd)
    if dataset is not None:
        out += pdu(4, struct.pack("!IBB", len(dataset) + 2, 1, 2) + dataset)
    return out


def move_rq(dest):
    cmd = command([(0x00000002, uid(MOVE_SOP)), (0x00000100, struct.pack("<H", 0x0021)),
                   (0x00000110, struct.pack("<H", 1)), (0x00000600, dest.ljust(16)),
                   (0x00000700, struct.pack("<H", 0)), (0x00000800, struct.pack("<H", 0))])
    ident = elem(0x00080052, b"STUDY ") + elem(0x0020000D, uid(b"1.2.826.0.1.3680043.8.498.1"))
    return pdata(cmd, ident)


def move_rsp():
    return pdata(command([(0x00000002, uid(MOVE_SOP)), (0x00000100, struct.pack("<H", 0x8021)),
                          (0x00000120, struct.pack("<H", 1)), (0x00000800, struct.pack("<H", 0x0101)),
                          (0x00000900, struct.pack("<H", 0))]))


def store_rq():
    inst = uid(b"1.2.826.0.1.3680043.8.498.2")
    cmd = command([(0x00000002, uid(CT_SOP)), (0x00000100, struct.pack("<H", 0x0001)),
                   (0x00000110, struct.pack("<H", 1)), (0x00000700, struct.pack("<H", 0)),
                   (0x00000800, struct.pack("<H", 0)), (0x00001000, inst),
                   (0x00001030, b"WS01".ljust(16)), (0x00001031, struct.pack("<H", 1))])
    return pdata(cmd, elem(0x00080016, uid(CT_SOP)) + elem(0x00080018, inst))


def store_rsp():
    return pdata(command([(0x00000002, uid(CT_SOP)), (0x00000100, struct.pack("<H", 0x8001)),
                          (0x00000120, struct.pack("<H", 1)), (0x00000800, struct.pack("<H", 0x0101)),
                          (0x00000900, struct.pack("<H", 0))]))


class Conn:
    """One TCP connection's segments, each put at the time given (seconds after T0)."""

    def __init__(self, out, src, sport, dst, dport):
        self.out, self.a, self.b, self.ap, self.bp = out, src, dst, sport, dport
        self.seq = {0: 1000, 1: 5000}

    def seg(self, at, d, flags, data=b""):
        a, b = (self.a, self.b) if d == 0 else (self.b, self.a)
        ap, bp = (self.ap, self.bp) if d == 0 else (self.bp, self.ap)
        ack = self.seq[1 - d] if flags != SYN else 0
        frame = ether(b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01", ipv4(a, b, 6, tcp(a, b, ap, bp, self.seq[d], ack, flags, data)))
        self.out.append((1700000000 + int(at), int(round((at % 1) * 1e6)), frame))
        self.seq[d] += len(data) + (1 if flags & (SYN | FIN) else 0)

    def open(self, at):
        self.seg(at, 0, SYN)
        self.seg(at + 0.0001, 1, SYN | ACK)
        self.seg(at + 0.0002, 0, ACK)

    def close(self, at):
        self.seg(at, 0, FIN | ACK)
        self.seg(at + 0.0001, 1, FIN | ACK)
        self.seg(at + 0.0002, 0, ACK)


def scenario(out, t0, sport, dest, receiver):
    """WS01 asks PACS01 to move a study to `dest`; the PACS stores it to `receiver` meanwhile."""
    mv = Conn(out, WS, sport, PACS, 11112)
    mv.open(t0)
    mv.seg(t0 + 0.001, 0, PSH | ACK, assoc("rq", b"WS01", b"PACS01", MOVE_SOP))
    mv.seg(t0 + 0.002, 1, PSH | ACK, assoc("ac", b"WS01", b"PACS01", MOVE_SOP))
    mv.seg(t0 + 0.003, 0, PSH | ACK, move_rq(dest))
    st = Conn(out, PACS, sport + 1000, receiver, 104)
    st.open(t0 + 0.010)
    st.seg(t0 + 0.011, 0, PSH | ACK, assoc("rq", b"PACS01", dest, CT_SOP))
    st.seg(t0 + 0.012, 1, PSH | ACK, assoc("ac", b"PACS01", dest, CT_SOP))
    st.seg(t0 + 0.013, 0, PSH | ACK, store_rq())
    st.seg(t0 + 0.014, 1, PSH | ACK, store_rsp())
    st.seg(t0 + 0.015, 0, PSH | ACK, pdu(5, b"\0" * 4))
    st.seg(t0 + 0.016, 1, PSH | ACK, pdu(6, b"\0" * 4))
    st.close(t0 + 0.017)
    mv.seg(t0 + 0.5, 1, PSH | ACK, move_rsp())
    mv.seg(t0 + 0.501, 0, PSH | ACK, pdu(5, b"\0" * 4))
    mv.seg(t0 + 0.502, 1, PSH | ACK, pdu(6, b"\0" * 4))
    mv.close(t0 + 0.503)


def frames():
    out = []
    scenario(out, 0, 40001, b"EXFIL01", EXFIL)   # an undeclared destination, sent to an unknown host
    scenario(out, 30, 40002, b"WS01", OFFICE)    # a declared destination, sent to the office PC
    scenario(out, 60, 40003, b"WS01", WS)        # a declared destination at its own address
    # Time moves on past the closed connections' timeout: every flow is judged as it would be live.
    out.append((1700000100, 0, ether(b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01",
                                      ipv4(PACS, NTP, 17, udp(PACS, NTP, 40123, 123, bytes([0x23]) + bytes(47))))))
    out.sort(key=lambda r: (r[0], r[1]))
    return out


def main():
    c = Checker("policy_move_followup")
    with tempfile.TemporaryDirectory() as d:
        cap = os.path.join(d, "move-followup.pcap")
        write_pcap(cap, frames())
        _, one, _ = run(["analyze", "-q", cap, "--site", SITE, "--out", "-"])
        ev = [json.loads(x) for x in one.splitlines() if x.strip()]
        dicom = of_type(ev, "dicom")
        c.eq("six associations", len(dicom), 6)
        alerts = [e["alert"] for e in of_type(ev, "alert")]
        mv = [a for a in alerts if a["rule"] == "dicom.move_destination_undeclared"]
        c.eq("undeclared destination: the address that received the objects",
             [(a["evidence"].get("move_destination"), a["evidence"].get("move_destination_ip")) for a in mv],
             [("EXFIL01", EXFIL)])
        ad = [a for a in alerts if a["rule"] == "dicom.move_address_undeclared"]
        c.eq("follow-ups to addresses the site does not bind to the destination AE",
             sorted((a["device"], a["peer"], a["severity"], a["evidence"].get("requestor_ip"),
                     [m["id"] for m in a["mds2"]]) for a in ad),
             [("pacs-1", "EXFIL01@" + EXFIL, "high", WS, ["TXCF-3"]),
              ("pacs-1", "WS01@" + OFFICE, "high", WS, ["TXCF-3"])])
        flow_ids = {f["flow_id"]: (f["src_ip"], f["dst_ip"]) for f in of_type(ev, "flow")}
        for a in ad:
            c.eq(a["peer"] + ": the C-MOVE and its follow-up",
                 (flow_ids.get(a["evidence"].get("move_flow_id")), flow_ids.get(a["evidence"].get("followup_flow_id"))),
                 ((WS, PACS), (PACS, a["evidence"]["move_destination_ip"])))
        _, two, _ = run(["analyze", "-q", cap, "--site", SITE, "--out", "-", "--workers", "2"])
        c.eq("2 workers: the same alerts", [l for l in two.splitlines() if '"alert"' in l],
             [l for l in one.splitlines() if '"alert"' in l])
    c.done()


if __name__ == "__main__":
    main()
