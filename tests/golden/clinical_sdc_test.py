#!/usr/bin/python3
"""IEEE 11073 SDC capture (pcaps/clinical/sdc.pcap): WS-Discovery Hello/Probe/ProbeMatches/Bye
on UDP 3702 and DPWS metadata + a patient context over SOAP/HTTP give sdc events naming the
device (device_ip) with its endpoint, manufacturer, model and serial; a printer's WS-Discovery is
not taken for SDC; patient data leaves only as pseudonyms. On an HTTP connection kept alive, SOAP
is found behind other exchanges, also behind a chunked body that goes on into later segments. A
SOAP flow keeps nDPI's name of its HTTP and its risks."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pcap, pseudonym  # noqa: E402
from pcapwrite import write_pcap  # noqa: E402
from policy_demo_test import tcp_conversation, timed  # noqa: E402

EPR = "urn:uuid:6f1c2a5e-0000-4000-8000-00000000a001"


c = Checker("clinical_sdc")
ev = analyze(pcap("clinical", "sdc.pcap"), keep_as="clinical-sdc")
sdc = [e["sdc"] for e in of_type(ev, "sdc")]
c.eq("sdc actions", [(s["transport"], s.get("action")) for s in sdc],
     [("udp", "Hello"), ("udp", "Probe"), ("udp", "ProbeMatches"), ("http", "Get"), ("http", "GetResponse"),
      ("http", "GetContextStates"), ("http", "GetContextStatesResponse"), ("udp", "Bye")])
if len(sdc) == 8:
    hello = sdc[0]["participants"][0]
    c.eq("hello endpoint", hello.get("endpoint"), EPR)
    c.eq("hello types", hello.get("types"), ["dpws:Device", "mdpws:MedicalDevice"])
    # The path of a transport address may name a patient: written as the pseudonym http_path
    # gives requests to it.
    path = pseudonym("/0c6a7a2e")
    c.eq("hello xaddrs", hello.get("xaddrs"), ["http://10.20.0.15:6464/" + path, "https://10.20.0.15:6465/" + path])
    c.eq("the Get went to that path", sdc[3].get("http_path"), path)
    c.eq("hello metadata version", hello.get("metadata_version"), "3")
    c.true("hello location scope", any(s.startswith("sdc.ctxt.loc:") for s in hello.get("scopes", [])))
    c.eq("probe query", sdc[1].get("query_types"), ["mdpws:MedicalDevice"])
    c.eq("probe matches relate to the probe", sdc[2].get("relates_to"), "urn:uuid:00000000-0000-4000-8000-000000000002")
    dev = sdc[4].get("device", {})
    c.eq("metadata", {k: dev.get(k) for k in ("manufacturer", "model_name", "model_number", "friendly_name",
                                              "firmware_version", "serial_number", "endpoint")},
         {"manufacturer": "Acme Medical", "model_name": "VitalView 5", "model_number": "VV5-100",
          "friendly_name": "ICU bed 3 monitor", "firmware_version": "2.4.0", "serial_number": "VV5-000123", "endpoint": EPR})
    c.eq("http request", (sdc[3].get("http_method"), sdc[3].get("http_path")), ("POST", pseudonym("/0c6a7a2e")))
    c.eq("http status", sdc[4].get("http_status"), 200)
    c.eq("patient", sdc[6].get("patients"), [pseudonym("PAT-4242")])
    c.eq("patient phi", sdc[6].get("phi_fields"), ["sdc.patient.identification", "sdc.patient.givenname",
                                                   "sdc.patient.familyname", "sdc.patient.date_of_birth"])

c.eq("devices described", [(s["action"], s.get("device_ip")) for s in sdc if "device_ip" in s],
     [("Hello", "10.20.0.15"), ("ProbeMatches", "10.20.0.15"), ("GetResponse", "10.20.0.15")])
c.true("no asset event comes from the dissector (the inventory writes them)",
       all(e["asset"].get("source") != "sdc" for e in of_type(ev, "asset")))

# The monitor's identity in the inventory: its endpoint reference from discovery (Hello to the
# multicast group, ProbeMatches) and its DPWS metadata; the consumer and the printer state none.
assets = {}
for a in of_type(ev, "asset"):
    assets[a["asset"]["ip"]] = a["asset"]
c.eq("monitor identities", assets.get("10.20.0.15", {}).get("identities"),
     [{"source": "sdc discovery", "id": EPR},
      {"source": "sdc metadata", "id": EPR, "serial": "VV5-000123", "manufacturer": "Acme Medical",
       "model": "VitalView 5", "version": "2.4.0"}])
c.eq("consumer identities", assets.get("10.20.0.9", {}).get("identities"), None)
c.eq("printer identities", assets.get("10.20.5.50", {}).get("identities"), None)
c.true("the multicast group is not inventoried", "239.255.255.250" not in assets)

flows = of_type(ev, "flow")
apps = {(f["src_ip"], f["dst_ip"], f["dst_port"]): f.get("app") for f in flows}
c.eq("hello flow", apps.get(("10.20.0.15", "239.255.255.250", 3702)), "sdc")
c.eq("probe flow", apps.get(("10.20.0.9", "239.255.255.250", 3702)), "sdc")
c.eq("soap flow", apps.get(("10.20.0.9", "10.20.0.15", 6464)), "sdc")
# nDPI goes on reading the SOAP flow after the claim: it keeps nDPI's name of its HTTP and risks.
soap_ndpi = [f.get("ndpi") for f in flows if f["dst_port"] == 6464]
c.eq("soap flow keeps nDPI's HTTP", [(n or {}).get("protocol") for n in soap_ndpi], ["HTTP"])
c.eq("soap flow keeps nDPI's risks", [(n or {}).get("risks") for n in soap_ndpi],
     [["Known Protocol on Non Standard Port", "HTTP Numeric IP Address"]])
c.true("printer flow is not sdc", apps.get(("10.20.5.50", "239.255.255.250", 3702)) != "sdc")
c.eq("no anomalies", of_type(ev, "anomaly"), [])
raw = "\n".join(str(e) for e in ev)
for secret in ("PAT-4242", "Jane", "Doe", "1970-01-01"):
    c.true(f"PHI value {secret} never appears", secret not in raw)

# Made-up patient and order, over SOAP/HTTP on a port of no other protocol.
NS = (b'xmlns:s12="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing" '
      b'xmlns:pm="http://standards.ieee.org/downloads/11073/11073-10207-2017/participant" '
      b'xmlns:msg="http://standards.ieee.org/downloads/11073/11073-10207-2017/message" '
      b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')
CTX = b"http://standards.ieee.org/downloads/11073/11073-20701-2018/ContextService/"


def envelope(action, body):
    return (b'<?xml version="1.0" encoding="UTF-8"?><s12:Envelope ' + NS + b'><s12:Header><wsa:Action>' + CTX + action +
            b'</wsa:Action><wsa:MessageID>urn:uuid:11111111-2222-4333-8444-555555555555</wsa:MessageID></s12:Header>'
            b'<s12:Body>' + body + b'</s12:Body></s12:Envelope>')


def post(body):
    return (b"POST /ctx HTTP/1.1\r\nHost: x\r\nContent-Type: application/soap+xml\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n\r\n" + body)


def answer(body):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: " + str(len(body)).encode() +
            b"\r\n\r\n" + body)


GET = post(envelope(b"GetContextStates", b"<msg:GetContextStates/>"))
WORKFLOW = (b'<msg:ContextState xsi:type="pm:WorkflowContextState" Handle="wf1" ContextAssociation="Assoc">'
            b'<pm:Identification Root="1.2.3.4" Extension="ORDER-555"/><pm:WorkflowDetail><pm:Patient>'
            b'<pm:Identification Root="1.2.3" Extension="PAT-777"/><pm:Name><pm:Givenname>Alice</pm:Givenname>'
            b'<pm:Familyname>Zyx</pm:Familyname></pm:Name><pm:DateOfBirth>1950-01-02</pm:DateOfBirth></pm:Patient>'
            b'</pm:WorkflowDetail></msg:ContextState>')
ANSWER = answer(envelope(b"GetContextStatesResponse", b"<msg:GetContextStatesResponse>" + WORKFLOW +
                         b"</msg:GetContextStatesResponse>"))
tmp = tempfile.mkdtemp(prefix="medmon-sdc-")
try:
    # The patient a workflow context names (WorkflowDetail/Patient) is PHI, as a patient context is.
    wf_pcap = os.path.join(tmp, "workflow.pcap")
    write_pcap(wf_pcap, timed(tcp_conversation("10.20.0.9", "10.20.0.15", 40100, 6464, [(True, GET), (False, ANSWER)])))
    ev = analyze(wf_pcap)
    answers = [e["sdc"] for e in of_type(ev, "sdc") if e["sdc"].get("action") == "GetContextStatesResponse"]
    c.eq("workflow patient", [a.get("patients") for a in answers], [[pseudonym("PAT-777")]])
    c.eq("workflow patient phi", [a.get("phi_fields") for a in answers],
         [["sdc.patient.identification", "sdc.patient.givenname", "sdc.patient.familyname", "sdc.patient.date_of_birth"]])
    c.eq("workflow flow phi_cleartext", [f.get("phi_cleartext") for f in of_type(ev, "flow")],
         [["sdc.patient.identification", "sdc.patient.givenname", "sdc.patient.familyname", "sdc.patient.date_of_birth"]])
    raw = "\n".join(str(e) for e in ev)
    c.true("workflow patient never in clear", all(v not in raw for v in ("PAT-777", "Alice", "Zyx", "1950-01-02")))

    # A hole in the answer while the client sent more: message_lost is at the answer's offset
    # (its held start), not at the client's.
    frames = tcp_conversation("10.20.0.9", "10.20.0.15", 40101, 6464,
                              [(True, GET), (False, ANSWER[:200]), (True, GET), (False, ANSWER[200:500]),
                               (False, ANSWER[500:]), (False, ANSWER)])
    lost = [i for i, fr in enumerate(frames) if fr.endswith(ANSWER[200:500])]
    gap_pcap = os.path.join(tmp, "gap.pcap")
    write_pcap(gap_pcap, timed(fr for i, fr in enumerate(frames) if i not in lost))
    ev = analyze(gap_pcap)
    c.eq("message_lost offset in the direction that lost bytes",
         [(a["anomaly"]["name"], a["anomaly"].get("offset")) for a in of_type(ev, "anomaly") if a["anomaly"]["dissector"] == "sdc"],
         [("message_lost", 0)])

    # SOAP on a connection kept alive after a GET of the service's WSDL (not SOAP): the later
    # exchanges are read, also a POST pipelined behind the GET in one segment.
    WSDL_GET = b"GET /ctx?wsdl HTTP/1.1\r\nHost: x\r\n\r\n"
    WSDL = (b'<?xml version="1.0"?><wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"/>')
    WSDL_ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: " + str(len(WSDL)).encode() +
                   b"\r\n\r\n" + WSDL)
    ka_pcap = os.path.join(tmp, "keepalive.pcap")
    write_pcap(ka_pcap, timed(
        tcp_conversation("10.20.0.9", "10.20.0.15", 40102, 6464,
                         [(True, WSDL_GET), (False, WSDL_ANSWER), (True, GET), (False, ANSWER)]) +
        tcp_conversation("10.20.0.9", "10.20.0.15", 40103, 6464,
                         [(True, WSDL_GET), (False, WSDL_ANSWER), (True, WSDL_GET + GET), (False, WSDL_ANSWER + ANSWER)])))
    ev = analyze(ka_pcap)
    for port in (40102, 40103):
        mine = [e for e in of_type(ev, "sdc") if port in (e["src_port"], e["dst_port"])]
        c.eq(f"kept alive after a GET ({port}): SOAP read", [e["sdc"].get("action") for e in mine],
             ["GetContextStates", "GetContextStatesResponse"])
        c.eq(f"kept alive after a GET ({port}): patient", [e["sdc"].get("patients") for e in mine][1:],
             [[pseudonym("PAT-777")]])
    c.eq("kept alive after a GET: flows", [f.get("app") for f in of_type(ev, "flow")], ["sdc", "sdc"])
    c.eq("kept alive after a GET: no anomaly", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])

    # A SOAP request or response pipelined behind a chunked body (not SOAP) that goes on into
    # later segments is found where that body ends: segments cut inside a chunk's data
    # (40104, 40105) and inside a chunk's size line (40106); likewise behind a body of known
    # length (40107).
    def chunked(start, body, sizes):
        out = start + b"\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        i = 0
        for size in sizes + [len(body)]:
            piece = body[i:i + size]
            if piece:
                out += b"%x\r\n" % len(piece) + piece + b"\r\n"
            i += len(piece)
        return out + b"0\r\n\r\n"

    LOG = b"".join(b"trend export line %04d\n" % i for i in range(90))
    up = chunked(b"POST /log HTTP/1.1", LOG, [700, 900])
    down = chunked(b"HTTP/1.1 200 OK", LOG, [700, 900])
    OK0 = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    cut = up.index(b"\r\n384\r\n") + 3
    sized = (b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: " +
             str(len(LOG)).encode() + b"\r\n\r\n" + LOG)
    ck_pcap = os.path.join(tmp, "chunked.pcap")
    write_pcap(ck_pcap, timed(
        tcp_conversation("10.20.0.9", "10.20.0.15", 40104, 6464,
                         [(True, WSDL_GET), (False, WSDL_ANSWER), (True, up[:600]), (True, up[600:1400]),
                          (True, up[1400:] + GET), (False, OK0 + ANSWER)]) +
        tcp_conversation("10.20.0.9", "10.20.0.15", 40105, 6464,
                         [(True, WSDL_GET), (False, WSDL_ANSWER), (True, b"GET /log HTTP/1.1\r\nHost: x\r\n\r\n"),
                          (False, down[:700]), (False, down[700:] + ANSWER)]) +
        tcp_conversation("10.20.0.9", "10.20.0.15", 40106, 6464,
                         [(True, WSDL_GET), (False, WSDL_ANSWER), (True, up[:cut]), (True, up[cut:len(up) - 3]),
                          (True, up[len(up) - 3:] + GET), (False, OK0 + ANSWER)]) +
        tcp_conversation("10.20.0.9", "10.20.0.15", 40107, 6464,
                         [(True, WSDL_GET), (False, WSDL_ANSWER), (True, sized[:700]), (True, sized[700:] + GET),
                          (False, OK0 + ANSWER)])))
    ev = analyze(ck_pcap)
    for port, actions in ((40104, ["GetContextStates", "GetContextStatesResponse"]),
                          (40105, ["GetContextStatesResponse"]),
                          (40106, ["GetContextStates", "GetContextStatesResponse"]),
                          (40107, ["GetContextStates", "GetContextStatesResponse"])):
        mine = [e for e in of_type(ev, "sdc") if port in (e["src_port"], e["dst_port"])]
        c.eq(f"behind a chunked body ({port}): SOAP read", [e["sdc"].get("action") for e in mine], actions)
    c.eq("behind a chunked body: flows", [f.get("app") for f in of_type(ev, "flow")], ["sdc"] * 4)
    c.eq("behind a chunked body: no anomaly", [a["anomaly"]["name"] for a in of_type(ev, "anomaly")], [])

    # Basic credentials sent in clear to an SDC provider: the claimed flow keeps nDPI's risk.
    basic = GET.replace(b"Host: x\r\n", b"Host: x\r\nAuthorization: Basic bnVyc2U6c2VjcmV0\r\n")
    basic_pcap = os.path.join(tmp, "basic.pcap")
    write_pcap(basic_pcap, timed(tcp_conversation("10.20.0.9", "10.20.0.15", 40108, 6464, [(True, basic), (False, ANSWER)])))
    ev = analyze(basic_pcap)
    c.eq("basic credentials: flow", [(f.get("app"), f.get("ndpi", {}).get("protocol"),
                                      "Clear-Text Credentials" in f.get("ndpi", {}).get("risks", []))
                                     for f in of_type(ev, "flow")], [("sdc", "HTTP", True)])
finally:
    shutil.rmtree(tmp)
c.done()
