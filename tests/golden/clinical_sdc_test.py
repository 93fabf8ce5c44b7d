#!/usr/bin/python3
"""IEEE 11073 SDC capture (pcaps/clinical/sdc.pcap): WS-Discovery Hello/Probe/ProbeMatches/Bye
on UDP 3702 and DPWS metadata + a patient context over SOAP/HTTP give sdc events naming the
device (device_ip) with its endpoint, manufacturer, model and serial; a printer's WS-Discovery is
not taken for SDC; patient data leaves only as pseudonyms."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, analyze, of_type, pcap, pseudonym  # noqa: E402

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
    c.eq("hello xaddrs", hello.get("xaddrs"), ["http://10.20.0.15:6464/0c6a7a2e", "https://10.20.0.15:6465/0c6a7a2e"])
    c.eq("hello metadata version", hello.get("metadata_version"), "3")
    c.true("hello location scope", any(s.startswith("sdc.ctxt.loc:") for s in hello.get("scopes", [])))
    c.eq("probe query", sdc[1].get("query_types"), ["mdpws:MedicalDevice"])
    c.eq("probe matches relate to the probe", sdc[2].get("relates_to"), "urn:uuid:00000000-0000-4000-8000-000000000002")
    dev = sdc[4].get("device", {})
    c.eq("metadata", {k: dev.get(k) for k in ("manufacturer", "model_name", "model_number", "friendly_name",
                                              "firmware_version", "serial_number", "endpoint")},
         {"manufacturer": "Acme Medical", "model_name": "VitalView 5", "model_number": "VV5-100",
          "friendly_name": "ICU bed 3 monitor", "firmware_version": "2.4.0", "serial_number": "VV5-000123", "endpoint": EPR})
    c.eq("http request", (sdc[3].get("http_method"), sdc[3].get("http_path")), ("POST", "/0c6a7a2e"))
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
c.true("printer flow is not sdc", apps.get(("10.20.5.50", "239.255.255.250", 3702)) != "sdc")
c.eq("no anomalies", of_type(ev, "anomaly"), [])
raw = "\n".join(str(e) for e in ev)
for secret in ("PAT-4242", "Jane", "Doe", "1970-01-01"):
    c.true(f"PHI value {secret} never appears", secret not in raw)
c.done()
