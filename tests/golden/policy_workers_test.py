"""`medmon analyze --workers N` judges like one worker: every policy capture (pcaps/policy/, with
the rules site) and the demo capture (demo site) give the same alerts (rule, severity, device,
peer), the same verdict for every flow, one `new` asset event per device, the same policy, asset
and event counters in the stats event and the same exit code with 1 and 3 workers; the 3-worker
output is byte-identical from run to run. The scan, fan-out, reject-burst and AE captures spread
their flows over the workers, so the rules that count flows across the capture only fire when the
judges see the merged flows.
"""
import collections
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import SRC, Checker, pcap, run  # noqa: E402

RULES = os.path.join(SRC, "policies", "sites", "rules-hospital.yaml")
DEMO = os.path.join(SRC, "policies", "sites", "demo-site.yaml")


def analyze(path, site, workers):
    rc, out, _ = run(["analyze", path, "--site", site, "--fail-on", "high", "--out", "-", "-q", "--workers", str(workers)])
    return rc, out


def facts(out):
    ev = [json.loads(line) for line in out.splitlines() if line.strip()]
    alerts = collections.Counter(
        (e["alert"]["rule"], e["alert"]["severity"], e["alert"].get("device"), e["alert"].get("peer"))
        for e in ev if e["event_type"] == "alert")
    verdicts = {e["flow_id"]: (e.get("verdict"), e.get("verdict_rule"), tuple(e.get("mds2", [])))
                for e in ev if e["event_type"] == "flow"}
    new_assets = collections.Counter(e["asset"]["ip"] for e in ev
                                     if e["event_type"] == "asset" and "new" in e["asset"].get("changes", []))
    # The judges' counters in the stats event (the judges run on the merging thread).
    stats = [e["stats"]["counters"] for e in ev if e["event_type"] == "stats"]
    judged = {k: v for k, v in (stats[-1] if stats else {}).items() if k.startswith(("policy.", "assets.", "events."))}
    return alerts, verdicts, new_assets, judged


def main():
    c = Checker("policy_workers")
    cases = [(p, RULES) for p in sorted(glob.glob(pcap("policy", "*.pcap")))] + [(pcap("demo", "demo.pcap"), DEMO)]
    spread = 0
    for path, site in cases:
        name = os.path.basename(path)
        rc1, one = analyze(path, site, 1)
        rc3, three = analyze(path, site, 3)
        _, again = analyze(path, site, 3)
        a1, v1, n1, j1 = facts(one)
        a3, v3, n3, j3 = facts(three)
        c.eq(f"{name}: exit code with 3 workers", rc3, rc1)
        c.eq(f"{name}: alerts with 3 workers", sorted(a3.items()), sorted(a1.items()))
        c.eq(f"{name}: flow verdicts with 3 workers", v3, v1)
        c.eq(f"{name}: devices announced new with 3 workers", n3, n1)
        c.true(f"{name}: policy, asset and event counters in the stats", "assets.devices" in j1 and "events.flow" in j1)
        c.eq(f"{name}: policy, asset and event counters with 3 workers", j3, j1)
        c.true(f"{name}: each device is new once", all(v == 1 for v in n3.values()))
        c.true(f"{name}: 3-worker output the same on every run", three == again)
        if len(v1) >= 6:
            spread += 1
    # The cross-flow captures hold many flows each; without them the comparison says little.
    c.true(f"captures with six flows or more compared ({spread})", spread >= 4)
    for rule in ("lateral.port_scan", "lateral.fan_out", "dicom.reject_burst"):
        name = {"lateral.port_scan": "port-scan", "lateral.fan_out": "fan-out", "dicom.reject_burst": "reject-burst"}[rule]
        _, three = analyze(pcap("policy", name + ".pcap"), RULES, 3)
        a3, _, _, _ = facts(three)
        c.eq(f"{name}: {rule} once with 3 workers", sum(v for k, v in a3.items() if k[0] == rule), 1)
    c.done()


if __name__ == "__main__":
    main()
