#!/usr/bin/python3
"""Generates the clinical-protocol captures of pcaps/clinical from the public specifications
(see README.md). Made-up patients, devices and addresses only. Deterministic: running it again
gives byte-identical files.

    /usr/bin/python3 pcaps/clinical/make_captures.py [OUTDIR]
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcapgen import Pcap, Tcp  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- ASTM E1381 / E1394 (LIS2-A2)
STX, ETX, EOT, ENQ, ACK, NAK, ETB, CR, LF = b"\x02", b"\x03", b"\x04", b"\x05", b"\x06", b"\x15", b"\x17", b"\r", b"\n"


def astm_frame(fn, text, last=True):
    body = str(fn).encode() + text + (ETX if last else ETB)
    return STX + body + b"%02X" % (sum(body) & 0xFF) + CR + LF


def astm_frames(records, max_text=240):
    """E1381: a record may be split into intermediate frames (ETB); each record ends with ETX."""
    frames, fn = [], 1
    for r in records:
        data = r + b"\r"
        while data:
            part, data = data[:max_text], data[max_text:]
            frames.append(astm_frame(fn, part, last=not data))
            fn = (fn + 1) % 8
    return frames


ASTM_RESULTS = [
    b"H|\\^&|||ACME-CHEM^2.1^SN4711|||||LIS01||P|LIS2-A2|20240101080000",
    b"P|1|PID0001|LAB0001||DOE^JANE^Q||19700101|F|||||DR^WHO",
    b"O|1|SPEC123||^^^GLU\\^^^NA\\^^^K|R|20240101075500|20240101075500||||N||||SERUM",
    b"R|1|^^^GLU|5.4|mmol/L|3.9-6.1|N||F||||20240101080000|ACME-CHEM",
    b"R|2|^^^NA|140|mmol/L|135-145|N||F||||20240101080000|ACME-CHEM",
    b"R|3|^^^K|4.1|mmol/L|3.5-5.1|N||F||||20240101080000|ACME-CHEM",
    b"C|1|I|Sample slightly hemolysed|G",
    b"P|2|PID0002|LAB0002||ROE^RICHARD||19800202|M",
    b"O|1|SPEC124||^^^GLU|R|20240101075600",
    b"R|1|^^^GLU|" + b"7.9" + b"|mmol/L|3.9-6.1|H||F",
    b"L|1|N",
]
ASTM_QUERY = [
    b"H|\\^&|||LIS01|||||ACME-CHEM||P|LIS2-A2|20240101080100",
    b"Q|1|^SPEC125||^^^ALL||||||||O",
    b"L|1|N",
]


def astm_transmission(conn, d, records, corrupt_frame=None):
    """ENQ / ACK, frames each ACKed (one NAKed and resent when asked), EOT."""
    conn.send(d, ENQ)
    conn.send(1 - d, ACK)
    for i, f in enumerate(astm_frames(records)):
        if i == corrupt_frame:
            bad = bytearray(f)
            bad[-4] = ord("0") if bad[-4] != ord("0") else ord("1")  # wrong checksum digit
            conn.send(d, bytes(bad))
            conn.send(1 - d, NAK)
        conn.send(d, f)
        conn.send(1 - d, ACK)
    conn.send(d, EOT)


def make_astm():
    p = Pcap(os.path.join(OUT, "astm-lis.pcap"))
    # Analyzer connects to the LIS, uploads results (one frame corrupted and resent), then the
    # LIS sends a query on the same link.
    c = Tcp(p, "10.30.0.21", 40112, "10.30.0.5", 5000)
    astm_transmission(c, 0, ASTM_RESULTS, corrupt_frame=3)
    astm_transmission(c, 1, ASTM_QUERY)
    c.close()
    # A second analyzer on an unusual port, with a record longer than one frame and every
    # frame split across TCP segments.
    long_comment = b"C|1|I|" + b"Reflex testing requested by laboratory protocol; " * 8 + b"|G"
    c = Tcp(p, "10.30.0.22", 40200, "10.30.0.5", 15200, isn=(7000, 9000))
    d = 0
    c.send(d, ENQ)
    c.send(1, ACK)
    recs = [b"H|\\^&|||HEMA-3000^5.0.1^HX-0099|||||LIS01||P|LIS2-A2|20240101081000",
            b"P|1|PID0003|||SMITH^ALEX||19900303|U", b"O|1|SPEC200||^^^WBC|R", long_comment,
            b"R|1|^^^WBC|6.2|10*9/L||N||F", b"L|1|N"]
    for f in astm_frames(recs):
        c.send(d, f, cuts=[1, 5, len(f) - 3])
        c.send(1, ACK)
    c.send(d, EOT)
    c.close()
    p.close()


# ---------------------------------------------------------------- POCT1-A2
def poct_hdr(cid):
    return ('<HDR><HDR.control_id V="%d"/><HDR.version_id V="POCT1"/>'
            '<HDR.creation_dttm V="2024-01-01T08:%02d:00+00:00"/></HDR>' % (cid, cid % 60))


def poct(topic, cid, body):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%s.R01>%s%s</%s.R01>\n' % (topic, poct_hdr(cid), body, topic)).encode()


def make_poct1():
    p = Pcap(os.path.join(OUT, "poct1.pcap"))
    c = Tcp(p, "10.30.1.40", 50001, "10.30.1.5", 5010)
    dev = ('<HEL><DEV><DEV.device_id V="00:1b:22:33:44:55"/><DEV.vendor_id V="ACME"/>'
           '<DEV.model_id V="GlucoPoint 3"/><DEV.serial_id V="GP3-0042"/><DEV.manufacturer_name V="Acme Diagnostics"/>'
           '<DEV.hw_version V="B"/><DEV.sw_version V="4.2.1"/><DEV.device_name V="Ward 5 meter"/></DEV>'
           '<DCP><DCP.application_timeout V="30"/></DCP>'
           '<DSC><DSC.connection_profile_cd V="SA"/><DSC.topics_supported_cd V="OBS"/></DSC></HEL>')

    def ack(cid, acked):
        return poct("ACK", cid, '<ACK><ACK.type_cd V="AA"/><ACK.ack_control_id V="%d"/></ACK>' % acked)

    c.send(0, poct("HEL", 1001, dev))
    c.send(1, ack(1, 1001))
    c.send(0, poct("DST", 1002, '<DST><DST.status_dttm V="2024-01-01T08:00:05+00:00"/>'
                                '<DST.new_observations_qty V="2"/></DST>'))
    c.send(1, ack(2, 1002))
    c.send(1, poct("REQ", 3, '<REQ><REQ.request_cd V="ROBS"/></REQ>'))
    c.send(0, ack(1003, 3))
    obs = ""
    for pid, name, glu in (("PAT-9001", "DOE^JANE", "5.4"), ("PAT-9002", "ROE^RICHARD", "8.1")):
        obs += ('<SVC><SVC.role_cd V="OBS"/><SVC.observation_dttm V="2024-01-01T07:58:00+00:00"/>'
                '<PT><PT.patient_id V="%s"/><PT.name V="%s"/>'
                '<OBS><OBS.observation_id V="GLU" SN="ACME"/><OBS.value V="%s" U="mmol/L"/></OBS></PT>'
                '<OPR><OPR.operator_id V="NURSE17"/></OPR></SVC>' % (pid, name, glu))
    c.send(0, poct("OBS", 1004, obs), mss=300)
    c.send(1, ack(4, 1004))
    c.send(0, poct("EOT", 1005, '<EOT><EOT.topic_cd V="OBS"/></EOT>'))
    c.send(1, ack(5, 1005))
    c.send(1, poct("END", 6, '<TRM><TRM.reason_cd V="NRM"/></TRM>'))
    c.close()
    p.close()


# ---------------------------------------------------------------- IEEE 11073 SDC (DPWS)
NS = ('xmlns:s12="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing" '
      'xmlns:wsd="http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01" '
      'xmlns:dpws="http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01" '
      'xmlns:mdpws="http://standards.ieee.org/downloads/11073/11073-20702-2016"')
WSD = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"
EPR = "urn:uuid:6f1c2a5e-0000-4000-8000-00000000a001"
SCOPES = ("sdc.mds.pkp:1.2.840.10004.20701.1.1 "
          "sdc.ctxt.loc:/sdc.ctxt.loc.detail/HOSP1%2F%2F%2FICU%2F12%2F3?fac=HOSP1&amp;poc=ICU&amp;rm=12&amp;bed=3")


def soap(action, body, msgid, extra_header=""):
    return ('<?xml version="1.0" encoding="UTF-8"?><s12:Envelope %s><s12:Header><wsa:Action>%s</wsa:Action>'
            '<wsa:MessageID>urn:uuid:00000000-0000-4000-8000-%012d</wsa:MessageID>%s</s12:Header>'
            '<s12:Body>%s</s12:Body></s12:Envelope>' % (NS, action, msgid, extra_header, body)).encode()


def endpoint_block():
    return ('<wsa:EndpointReference><wsa:Address>%s</wsa:Address></wsa:EndpointReference>'
            '<wsd:Types>dpws:Device mdpws:MedicalDevice</wsd:Types><wsd:Scopes>%s</wsd:Scopes>'
            '<wsd:XAddrs>http://10.20.0.15:6464/0c6a7a2e https://10.20.0.15:6465/0c6a7a2e</wsd:XAddrs>'
            '<wsd:MetadataVersion>3</wsd:MetadataVersion>' % (EPR, SCOPES))


def http(start, body, headers=""):
    return ("%s\r\nHost: 10.20.0.15:6464\r\nContent-Type: application/soap+xml; charset=utf-8\r\n%s"
            "Content-Length: %d\r\n\r\n" % (start, headers, len(body))).encode() + body


def make_sdc():
    p = Pcap(os.path.join(OUT, "sdc.pcap"))
    mc = "239.255.255.250"
    to_wsd = '<wsa:To>urn:docs-oasis-open-org:ws-dd:ns:discovery:2009:01</wsa:To>'
    # The monitor announces itself.
    p.udp("10.20.0.15", 3702, mc, 3702, soap(WSD + "/Hello", "<wsd:Hello>%s</wsd:Hello>" % endpoint_block(), 1,
                                               to_wsd + '<wsd:AppSequence InstanceId="1" MessageNumber="1"/>'))
    # A consumer probes for medical devices; the monitor answers unicast.
    p.udp("10.20.0.9", 50000, mc, 3702, soap(WSD + "/Probe", "<wsd:Probe><wsd:Types>mdpws:MedicalDevice</wsd:Types></wsd:Probe>", 2, to_wsd))
    p.udp("10.20.0.15", 3702, "10.20.0.9", 50000,
          soap(WSD + "/ProbeMatches", "<wsd:ProbeMatches><wsd:ProbeMatch>%s</wsd:ProbeMatch></wsd:ProbeMatches>" % endpoint_block(), 3,
               '<wsa:RelatesTo>urn:uuid:00000000-0000-4000-8000-000000000002</wsa:RelatesTo>'))
    # A printer's WS-Discovery (2005/04 namespace, no SDC content): not SDC.
    printer = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
               'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery">'
               '<soap:Header><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Hello</wsa:Action>'
               '<wsa:MessageID>urn:uuid:aaaaaaaa-0000-4000-8000-000000000001</wsa:MessageID></soap:Header><soap:Body><wsd:Hello>'
               '<wsa:EndpointReference><wsa:Address>urn:uuid:aaaaaaaa-1111-4000-8000-000000000001</wsa:Address></wsa:EndpointReference>'
               '<wsd:Types>wsdp:Device wprt:PrintDeviceType</wsd:Types><wsd:XAddrs>http://10.20.5.50:5357/x</wsd:XAddrs>'
               '<wsd:MetadataVersion>1</wsd:MetadataVersion></wsd:Hello></soap:Body></soap:Envelope>').encode()
    p.udp("10.20.5.50", 3702, mc, 3702, printer)
    # Metadata and a patient context over plain HTTP.
    c = Tcp(p, "10.20.0.9", 51000, "10.20.0.15", 6464)
    c.send(0, http("POST /0c6a7a2e HTTP/1.1", soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", "", 4,
                                                 "<wsa:To>http://10.20.0.15:6464/0c6a7a2e</wsa:To>")))
    meta = ('<mex:Metadata xmlns:mex="http://schemas.xmlsoap.org/ws/2004/09/mex"><mex:MetadataSection '
            'Dialect="http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01/ThisModel"><dpws:ThisModel>'
            '<dpws:Manufacturer>Acme Medical</dpws:Manufacturer><dpws:ManufacturerUrl>http://acme.example</dpws:ManufacturerUrl>'
            '<dpws:ModelName>VitalView 5</dpws:ModelName><dpws:ModelNumber>VV5-100</dpws:ModelNumber></dpws:ThisModel>'
            '</mex:MetadataSection><mex:MetadataSection Dialect="http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01/ThisDevice">'
            '<dpws:ThisDevice><dpws:FriendlyName>ICU bed 3 monitor</dpws:FriendlyName><dpws:FirmwareVersion>2.4.0</dpws:FirmwareVersion>'
            '<dpws:SerialNumber>VV5-000123</dpws:SerialNumber></dpws:ThisDevice></mex:MetadataSection>'
            '<mex:MetadataSection Dialect="http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01/Relationship"><dpws:Relationship '
            'Type="http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01/host"><dpws:Host><wsa:EndpointReference><wsa:Address>%s'
            '</wsa:Address></wsa:EndpointReference><dpws:Types>dpws:Device mdpws:MedicalDevice</dpws:Types></dpws:Host>'
            '</dpws:Relationship></mex:MetadataSection></mex:Metadata>' % EPR)
    c.send(1, http("HTTP/1.1 200 OK", soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse", meta, 5,
                                          '<wsa:RelatesTo>urn:uuid:00000000-0000-4000-8000-000000000004</wsa:RelatesTo>')))
    sdc_ns = "http://standards.ieee.org/downloads/11073/11073-20701-2018"
    c.send(0, http("POST /0c6a7a2e/ContextService HTTP/1.1",
                   soap(sdc_ns + "/ContextService/GetContextStates",
                        '<msg:GetContextStates xmlns:msg="http://standards.ieee.org/downloads/11073/11073-10207-2017/message"/>', 6)))
    ctx = ('<msg:GetContextStatesResponse xmlns:msg="http://standards.ieee.org/downloads/11073/11073-10207-2017/message" '
           'xmlns:pm="http://standards.ieee.org/downloads/11073/11073-10207-2017/participant" MdibVersion="12">'
           '<msg:ContextState xsi:type="pm:PatientContextState" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
           '</msg:ContextState><pm:PatientContextState Handle="pat1" DescriptorHandle="patdesc" ContextAssociation="Assoc">'
           '<pm:Identification Root="1.2.3.4.5" Extension="PAT-4242"/><pm:CoreData><pm:Givenname>Jane</pm:Givenname>'
           '<pm:Familyname>Doe</pm:Familyname><pm:DateOfBirth>1970-01-01</pm:DateOfBirth><pm:Sex>F</pm:Sex></pm:CoreData>'
           '</pm:PatientContextState></msg:GetContextStatesResponse>')
    c.send(1, http("HTTP/1.1 200 OK", soap(sdc_ns + "/ContextService/GetContextStatesResponse", ctx, 7)), mss=400)
    c.close()
    # The monitor leaves.
    p.udp("10.20.0.15", 3702, mc, 3702, soap(WSD + "/Bye", "<wsd:Bye><wsa:EndpointReference><wsa:Address>%s</wsa:Address>"
                                               "</wsa:EndpointReference></wsd:Bye>" % EPR, 8, to_wsd))
    p.close()


# ---------------------------------------------------------------- Philips IntelliVue Data Export
def be16(v):
    return struct.pack(">H", v)


def attr(aid, value):
    return be16(aid) + be16(len(value)) + value


def pstring(s):
    """IntelliVue String: u16 length (bytes) + UTF-16BE characters."""
    u = s.encode("utf-16-be")
    return be16(len(u)) + u


def variable_label(s):
    b = s.encode() + b"\0"
    if len(b) % 2:
        b += b"\0"
    return be16(len(b)) + b


def roiv_event(event_type, obj_class, args, command=0, invoke=0):
    """ROapdus(ROIV) + ROIVapdu + EventReportArgument."""
    era = be16(obj_class) + be16(0) + be16(0) + struct.pack(">I", 0) + be16(event_type) + be16(len(args)) + args
    roiv = be16(invoke) + be16(command) + be16(len(era)) + era
    return be16(1) + be16(len(roiv)) + roiv


def make_intellivue():
    p = Pcap(os.path.join(OUT, "intellivue.pcap"))
    mon, cli = "10.40.0.31", "10.40.0.9"
    # Connect indication (broadcast to 24005): system model and serial number of the monitor.
    model = attr(0x0928, variable_label("Philips") + variable_label("MX800"))
    serial = attr(0x092D, variable_label("DE00000042"))
    attrs = be16(2) + be16(len(model) + len(serial)) + model + serial
    p.udp(mon, 24005, "255.255.255.255", 24005, b"\x00\x00\x01\x00" + roiv_event(0x0D17, 0x0021, attrs))
    # Association request / result (session PDUs of the guide).
    sess = bytes.fromhex("050813010016010280001402000 2".replace(" ", ""))
    presentation = bytes.fromhex("c1dc3180a080800101000a280a0a28000000000000")
    req = b"\x0d" + bytes([len(sess) + len(presentation)]) + sess + presentation
    p.udp(cli, 50123, mon, 24105, req)
    p.udp(mon, 24105, cli, 50123, b"\x0e" + bytes([len(sess) + 6]) + sess + b"\x00" * 6)
    sp = b"\xe1\x00\x00\x02"
    # MDS Create event report (confirmed) and its result.
    p.udp(mon, 24105, cli, 50123, sp + roiv_event(0x0D06, 0x0021, model, command=1, invoke=1))
    p.udp(cli, 50123, mon, 24105, sp + be16(2) + be16(12) + be16(1) + be16(1) + be16(6) + b"\x00" * 6)
    # Poll for patient demographics (made-up patient) and the reply.
    poll = be16(1) + be16(0x0C16) + be16(6) + be16(0) + be16(0x002A) + be16(0)
    act = be16(0x0021) + be16(0) + be16(0) + struct.pack(">I", 0) + be16(0x0C16) + be16(len(poll)) + poll
    roiv = be16(2) + be16(7) + be16(len(act)) + act
    p.udp(cli, 50123, mon, 24105, sp + be16(1) + be16(len(roiv)) + roiv)
    demo = attr(0x095A, pstring("MRN0042")) + attr(0x095D, pstring("JANE")) + attr(0x095C, pstring("DOE"))
    reply = be16(2) + be16(0x0C16) + be16(len(demo)) + demo
    rors = be16(2) + be16(7) + be16(len(reply)) + reply
    p.udp(mon, 24105, cli, 50123, sp + be16(2) + be16(len(rors)) + rors)
    # Release request / result.
    p.udp(cli, 50123, mon, 24105, b"\x09\x18\xc1\x16\x61\x80\x30\x80\x02\x01\x01\xa0\x80\x62\x80\x80\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    p.udp(mon, 24105, cli, 50123, b"\x0a\x18\xc1\x16\x61\x80\x30\x80\x02\x01\x01\xa0\x80\x63\x80\x80\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    p.close()


# ---------------------------------------------------------------- Datex-Ohmeda S/5 Computer Interface
def datex_record(r_nbr, maintype, plug_id, t, body):
    """40-byte record header (little-endian) + body, HDLC-like framing: 0x7E, escaped data and
    checksum (0x7D, XOR 0x20), 0x7E."""
    descs = struct.pack("<hB", 0, 0) + struct.pack("<hB", -1, 0) * 7
    hdr = struct.pack("<hBBHIBBHH", 40 + len(body), r_nbr, 10, plug_id, t, 0, 0, 0, maintype) + descs
    rec = hdr + body
    rec += bytes([sum(rec) & 0xFF])
    esc = bytearray()
    for b in rec:
        if b in (0x7E, 0x7D):
            esc += bytes([0x7D, b ^ 0x20])
        else:
            esc.append(b)
    return b"\x7e" + bytes(esc) + b"\x7e"


def make_datex():
    p = Pcap(os.path.join(OUT, "datex-s5.pcap"))
    c = Tcp(p, "10.40.0.50", 50500, "10.40.0.60", 4001)
    # Host request: start displayed-values transfer every 10 s (PHDB request sub-record).
    c.send(0, datex_record(0, 0, 0, 0, struct.pack("<BHH", 0, 10, 1) + b"\0" * 11))
    for i in range(3):
        c.send(1, datex_record(1, 0, 0x0102, 1704096000 + 10 * i, bytes([0x7E if i == 1 else 0x11] * 8) + b"\x22" * 60))
    c.send(1, datex_record(2, 1, 0x0102, 1704096030, b"\x10" * 100))
    c.close()
    p.close()


# ---------------------------------------------------------------- Acme CT service (docs/protocols.md example)
def acme(msg_type, body):
    return b"AC\x01" + bytes([msg_type]) + be16(len(body)) + body


def make_acme():
    """The made-up vendor protocol of the signature example in docs/protocols.md: "AC", version
    1, message type, u16 big-endian body length, body (ASCII)."""
    p = Pcap(os.path.join(OUT, "acme-ct-service.pcap"))
    c = Tcp(p, "10.50.0.10", 41000, "10.50.0.20", 7700)
    c.send(0, acme(1, b"SN=CT000042;SW=3.1.4"))
    c.send(1, acme(2, b"OK"))
    c.send(0, acme(3, b"SN=CT000042;PAT=PAT0099;STUDY=HEAD") + acme(3, b"SN=CT000042;PAT=PAT0100;STUDY=CHEST"), cuts=[10, 40])
    c.send(1, acme(2, b"OK") + acme(2, b"OK"))
    c.close()
    p.close()


if __name__ == "__main__":
    make_astm()
    make_poct1()
    make_sdc()
    make_intellivue()
    make_datex()
    make_acme()
