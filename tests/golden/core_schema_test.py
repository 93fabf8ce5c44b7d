#!/usr/bin/python3
"""Every event medmon writes for every capture in pcaps/ validates against docs/schema/<event_type>.json
(JSON Schema 2020-12, python3-jsonschema), and flow/anomaly/stats always have a schema."""
import glob
import json
import os
import sys
import tempfile

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import SRC, Checker, run  # noqa: E402

c = Checker("core_schema")
schemas = {}
for p in glob.glob(os.path.join(SRC, "docs", "schema", "*.json")):
    with open(p) as f:
        s = json.load(f)
    jsonschema.Draft202012Validator.check_schema(s)
    schemas[os.path.basename(p)[:-5]] = jsonschema.Draft202012Validator(s, format_checker=jsonschema.FormatChecker())
for t in ("flow", "anomaly", "stats"):
    c.true(f"docs/schema/{t}.json exists", t in schemas)
# A schema of events about a flow lists every top-level member (the header a site adds included):
# one the program writes but the schema does not name fails validation instead of passing unseen.
for t, v in sorted(schemas.items()):
    if "src_ip" in v.schema.get("properties", {}):
        c.eq(f"docs/schema/{t}.json: top-level additionalProperties", v.schema.get("additionalProperties"), False)

# the captures are found, not listed: a new capture is checked without touching this test
captures = sorted(p for p in glob.glob(os.path.join(SRC, "pcaps", "**", "*"), recursive=True)
                  if p.endswith((".pcap", ".pcapng")))
# Also with a site: the demo site plus a zone holding every other address, so that every event
# carries the device and zone members a site adds to the header.
tmp = tempfile.mkdtemp(prefix="mmschema-")
site = os.path.join(tmp, "site.yaml")
with open(os.path.join(SRC, "policies", "sites", "demo-site.yaml")) as f:
    text = f.read().replace("../devices/", os.path.join(SRC, "policies", "devices") + "/")
with open(site, "w") as f:
    f.write(text.replace("zones:\n", "zones:\n  - {name: elsewhere, cidrs: [0.0.0.0/0, \"::/0\"]}\n", 1))
seen = {}
for path, with_site in [(p, False) for p in captures] + [(p, True) for p in captures]:
    rel = os.path.relpath(path, SRC) + (" (site)" if with_site else "")
    # The site runs add the Community ID too: every optional header member is checked.
    rc, out, err = run(["analyze", path, "--out", "-"] +
                       (["--site", site, "--fail-on", "none", "--community-id"] if with_site else []), check_rc=None)
    c.true(f"{rel}: exit code {rc} is 0, 1 or 3 ({err.strip()[:200]})", rc in (0, 1, 3))
    for n, line in enumerate(out.splitlines(), 1):
        ev = json.loads(line)
        t = ev.get("event_type")
        seen[t] = seen.get(t, 0) + 1
        v = schemas.get(t)
        if v is None:
            continue
        errors = sorted(v.iter_errors(ev), key=lambda e: list(e.path))
        c.true(f"{rel} line {n} ({t}) validates: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:3]), not errors)
        # key order is part of the format: the header keys come first, in this order
        keys = list(ev)
        c.eq(f"{rel} line {n}: ts and event_type lead", keys[:2], ["ts", "event_type"])
        if "src_ip" in ev:
            i = keys.index("src_ip")
            # An anomaly met before the transport header has no ports.
            want = ["src_ip", "src_port", "dst_ip", "dst_port", "proto"] if "src_port" in ev else ["src_ip", "dst_ip", "proto"]
            c.eq(f"{rel} line {n}: endpoint keys in order", keys[i:i + len(want)], want)
os.remove(site)
os.rmdir(tmp)
print("events validated by type:", json.dumps(seen, sort_keys=True))
c.true("some flow, anomaly and stats events were checked", all(seen.get(t) for t in ("flow", "anomaly", "stats")))
c.done()
