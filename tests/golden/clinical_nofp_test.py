#!/usr/bin/python3
"""No false positives: the ASTM, POCT1-A, SDC and signature probes never claim a flow in any
capture outside pcaps/clinical (DICOM, HL7, HTTP, TLS, SSH, DNS, SMB, malformed input...), and
every clinical capture is claimed only by its own protocol."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import SRC, Checker, run  # noqa: E402

OURS = {"astm", "poct1", "sdc", "proprietary", "philips-intellivue-data-export", "datex-ohmeda-s5", "acme-ct-service"}
c = Checker("clinical_nofp")
captures = sorted(p for p in glob.glob(os.path.join(SRC, "pcaps", "**", "*"), recursive=True)
                  if p.endswith((".pcap", ".pcapng")))
clinical_dir = os.path.join(SRC, "pcaps", "clinical") + os.sep
others = [p for p in captures if not p.startswith(clinical_dir)]
c.true("there are other captures to check", len(others) > 10)
flows = 0
for path in others:
    rel = os.path.relpath(path, SRC)
    rc, out, err = run(["analyze", path, "--out", "-"], check_rc=None)
    for line in out.splitlines():
        e = json.loads(line)
        t = e.get("event_type")
        if t == "flow":
            flows += 1
            c.true(f"{rel}: flow {e.get('flow_id')} claimed by {e.get('app')}", e.get("app") not in OURS)
        c.true(f"{rel}: no {t} event", t not in ("astm", "poct1", "sdc", "proprietary"))
c.true(f"flows were checked ({flows})", flows > 50)

expected = {"astm-lis.pcap": {"astm"}, "poct1.pcap": {"poct1"}, "sdc.pcap": {"sdc", None},
            "intellivue.pcap": {"philips-intellivue-data-export"}, "datex-s5.pcap": {"datex-ohmeda-s5"},
            "acme-ct-service.pcap": {None}}
for name, apps in expected.items():
    rc, out, err = run(["analyze", os.path.join(SRC, "pcaps", "clinical", name), "--out", "-"], check_rc=None)
    got = {json.loads(l).get("app") for l in out.splitlines() if '"event_type":"flow"' in l}
    c.true(f"{name}: flow apps {sorted(map(str, got))} within {sorted(map(str, apps))}", got and got <= apps)
c.done()
