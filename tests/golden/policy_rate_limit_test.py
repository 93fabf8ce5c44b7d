"""Alerts of one rule for one device are limited per window of packet time: SYNs to the CT from
300 spoofed sources (rules site) write 100 `flow.undeclared` and 100 `lateral.new_peer` alerts and
one `policy.rate_limited` alert for each rule, count the other 400 in `policy.alerts_rate_limited`,
and keep every flow's verdict. Sources a window later are written again, the first saying how
many were held back; `thresholds.alert_limit: 0` writes them all.
"""
import collections
import json
import os
import sys
import tempfile

import jsonschema

sys.path.insert(0, os.path.dirname(__file__))
from golden import SRC, Checker, run  # noqa: E402
from pcapwrite import SYN, ether, ipv4, tcp, write_pcap  # noqa: E402

CT = "10.10.1.10"
RULES = os.path.join(SRC, "policies", "sites", "rules-hospital.yaml")
MAC_A, MAC_B = b"\x02\x00\x00\x00\x00\x0a", b"\x02\x00\x00\x00\x00\x0b"


def syns(first, count, sec):
    out = []
    for i in range(first, first + count):
        src = "10.20.%d.%d" % (i // 250, i % 250 + 1)
        out.append((sec, (i - first) * 1000, ether(MAC_B, MAC_A, ipv4(src, CT, 6, tcp(src, CT, 40000, 104, 1, 0, SYN)))))
    return out


def main():
    c = Checker("policy_rate_limit")
    with tempfile.TemporaryDirectory() as d:
        cap = os.path.join(d, "spoof.pcap")
        write_pcap(cap, syns(0, 300, 1700000000) + syns(300, 3, 1700000100))

        def analyze(site):
            _, out, _ = run(["analyze", "-q", cap, "--site", site, "--out", "-"])
            return [json.loads(x) for x in out.splitlines() if x.strip()]

        ev = analyze(RULES)
        alerts = [e["alert"] for e in ev if e["event_type"] == "alert"]
        per_rule = collections.Counter(a["rule"] for a in alerts)
        c.eq("flow.undeclared written", per_rule["flow.undeclared"], 103)
        c.eq("lateral.new_peer written", per_rule["lateral.new_peer"], 103)
        limited = sorted((a["device"], a["peer"]) for a in alerts if a["rule"] == "policy.rate_limited")
        c.eq("one policy.rate_limited per rule", limited, [("ct-1", "flow.undeclared"), ("ct-1", "lateral.new_peer")])
        schema = json.load(open(os.path.join(SRC, "docs", "schema", "alert.json")))
        validator = jsonschema.Draft202012Validator(schema)
        for e in ev:
            if e["event_type"] == "alert" and e["alert"]["rule"] == "policy.rate_limited":
                c.eq("policy.rate_limited validates against docs/schema/alert.json",
                     [x.message for x in validator.iter_errors(e)], [])
        stats = [e["stats"]["counters"] for e in ev if e["event_type"] == "stats"]
        c.eq("policy.alerts_rate_limited", stats[-1].get("policy.alerts_rate_limited") if stats else None, 400)
        before = [a["evidence"].get("rate_limited_before") for a in alerts
                  if a["rule"] == "flow.undeclared" and "rate_limited_before" in a["evidence"]]
        c.eq("next window's first alert says how many were held back", before, ["200"])
        flows = [e for e in ev if e["event_type"] == "flow"]
        c.eq("flows", len(flows), 303)
        c.eq("every flow keeps its verdict", collections.Counter(f.get("verdict") for f in flows), {"undeclared": 303})

        site = os.path.join(d, "nolimit.yaml")
        with open(RULES) as f:
            text = f.read().replace("../devices/", os.path.join(SRC, "policies", "devices") + "/")
        with open(site, "w") as f:
            f.write(text.replace("thresholds:\n", "thresholds:\n  alert_limit: 0\n", 1))
        per_rule = collections.Counter(e["alert"]["rule"] for e in analyze(site) if e["event_type"] == "alert")
        c.eq("alert_limit 0: every flow.undeclared", per_rule["flow.undeclared"], 303)
        c.eq("alert_limit 0: no policy.rate_limited", per_rule["policy.rate_limited"], 0)
    c.done()


if __name__ == "__main__":
    main()
