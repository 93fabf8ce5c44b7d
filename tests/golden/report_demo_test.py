"""Acceptance report on the demo capture: medmon writes the HTML (analyze --report and
`medmon report`), headless Chromium renders it without console messages, and what the page
shows (devices, verdicts, alert and flow counts) matches the JSONL events. Also: the asset
inventory (`medmon assets`), the asset event schema, and the PDF. The screenshot is kept in
MEDMON_TEST_OUT for a person to look at."""
import json
import os
import shutil
import sys
from collections import Counter
from html.parser import HTMLParser

import jsonschema

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "report"))
import chromium  # noqa: E402
from golden import OUT, SRC, Checker, pcap, run  # noqa: E402

c = Checker("report_demo")
os.makedirs(OUT, exist_ok=True)
demo = pcap("demo", "demo.pcap")
site = os.path.join(SRC, "policies", "sites", "demo-site.yaml")
events_path = os.path.join(OUT, "report-demo.jsonl")
html_path = os.path.join(OUT, "report-demo.html")
if not os.path.exists(demo):
    print("report_demo: pcaps/demo/demo.pcap missing")
    sys.exit(1)

rc, out, err = run(["analyze", demo, "--site", site, "--out", events_path, "--report", html_path, "-q"])
c.true("analyze wrote the report", os.path.exists(html_path))
events = [json.loads(l) for l in open(events_path) if l.strip()]
by_type = Counter(e["event_type"] for e in events)
flows = [e for e in events if e["event_type"] == "flow"]
alerts = [e for e in events if e["event_type"] == "alert"]
assets = [e for e in events if e["event_type"] == "asset"]
c.true("the demo raised alerts", len(alerts) > 0)
c.true("the demo has asset events", len(assets) > 0)


class Dom(HTMLParser):
    """Collects element ids with their text, and the attributes of rows and sections."""

    def __init__(self):
        super().__init__()
        self.ids, self.rows, self.stack, self.resources = {}, [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href"):
            if k in a and a[k] and not a[k].startswith("#"):
                self.resources.append(a[k])
        if tag == "link":
            self.resources.append(a.get("href", "link"))
        self.rows.append((tag, a))
        self.stack.append(a.get("id"))

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        for i in self.stack:
            if i:
                self.ids[i] = self.ids.get(i, "") + data

    def with_class(self, cls):
        return [a for t, a in self.rows if cls in (a.get("class") or "").split()]


def own_verdict(f, name):
    """The flow's verdict for the device `name`: its side's when the event states the sides'."""
    if "src_verdict" not in f and "dst_verdict" not in f:
        return f.get("verdict")
    return f.get("src_verdict" if f.get("src_device") == name else "dst_verdict")


def check_page(label, path, flows=flows, alerts=alerts):
    dom_text, console = chromium.render(path)
    c.true(f"{label}: Chromium rendered the page", "<html" in dom_text and "</html>" in dom_text)
    c.eq(f"{label}: console messages", console, [])
    d = Dom()
    d.feed(dom_text)
    c.eq(f"{label}: external resources", d.resources, [])
    num = lambda i: int(d.ids.get(i, "-1").strip() or -1)
    c.eq(f"{label}: flows shown", num("count-flows"), len(flows))
    c.eq(f"{label}: alerts shown", num("count-alerts"), len(alerts))
    sev = Counter(a["alert"]["severity"] for a in alerts)
    for s in ("critical", "high", "medium", "low", "info"):
        c.eq(f"{label}: {s} alerts shown", num("count-alerts-" + s), sev.get(s, 0))
    verdicts = Counter(f.get("verdict") for f in flows if f.get("verdict"))
    for v in ("declared", "undeclared", "forbidden"):
        c.eq(f"{label}: {v} flows shown", num("count-verdict-" + v), verdicts.get(v, 0))
    c.eq(f"{label}: alert rows", len(d.with_class("alert-row")), len(alerts))
    c.eq(f"{label}: alert rules", Counter(a["data-rule"] for a in d.with_class("alert-row")),
         Counter(a["alert"]["rule"] for a in alerts))
    # Every device the events name is in the report, with the verdict its events imply.
    names = {e.get(k) for e in flows + alerts for k in ("src_device", "dst_device") if e.get(k)}
    sections = {a["data-device"]: a for a in d.with_class("device")}
    c.eq(f"{label}: devices", set(sections), names)
    c.eq(f"{label}: device count", num("count-devices"), len(names))
    for name in names:
        s = sections.get(name)
        if not s:
            continue
        dev_flows = [f for f in flows if name in (f.get("src_device"), f.get("dst_device"))]
        dev_alerts = [a for a in alerts if a["alert"].get("device") == name]
        c.eq(f"{label}: {name} flows", int(s["data-flows"]), len(dev_flows))
        c.eq(f"{label}: {name} alerts", int(s["data-alerts"]), len(dev_alerts))
        worst = max([{"critical": 2, "high": 2, "medium": 1}.get(a["alert"]["severity"], 0) for a in dev_alerts] +
                    [{"forbidden": 2, "undeclared": 1}.get(own_verdict(f, name), 0) for f in dev_flows] + [0])
        judged = bool(dev_alerts) or any(own_verdict(f, name) for f in dev_flows)
        want = ["PASS", "REVIEW", "FAIL"][worst] if judged else "NOT JUDGED"
        c.eq(f"{label}: {name} verdict", s["data-verdict"], want)
    overall = d.ids.get("overall-verdict", "").strip()
    c.eq(f"{label}: overall verdict", overall, "FAIL")
    c.true(f"{label}: every MDS2 citation of the alerts is shown",
           all(m["id"] in dom_text for a in alerts for m in a["alert"].get("mds2", [])))
    c.true(f"{label}: peer diagram and charts", all(x in dom_text for x in ("peer-diagram", "chart-time", "chart-peers")))
    return d


d = check_page("analyze --report", html_path)
# With the --out file rotating, the page still covers the whole run: the same page.
rot_dir = os.path.join(OUT, "report-rotated")
shutil.rmtree(rot_dir, ignore_errors=True)
os.makedirs(rot_dir)
rot_html = os.path.join(rot_dir, "report.html")
run(["analyze", demo, "--site", site, "--out", os.path.join(rot_dir, "events.jsonl"), "--rotate-size", "20K",
     "--report", rot_html, "-q"])
c.true("the events file rotated", os.path.exists(os.path.join(rot_dir, "events.jsonl.1")))
def page_body(path):
    """The page without the header and footer lines that name where the events were read from."""
    return [l for l in open(path) if "events read (" not in l and 'class="sub"' not in l]


c.true("the report of a rotated --out file is the report of the whole run", page_body(rot_html) == page_body(html_path))
# The demo is built so that the CT talks to the PACS as declared, and then does what it must not.
sections = {a["data-device"]: a for a in d.with_class("device")}
c.eq("ct-1 fails", sections.get("ct-1", {}).get("data-verdict"), "FAIL")
statuses = Counter(a["data-status"] for a in d.with_class("flow-group"))
c.true("declared flows seen", statuses.get("declared", 0) > 0)
c.true("forbidden flows shown", statuses.get("forbidden", 0) > 0)
c.true("declared flows not seen are listed (site policy given)", statuses.get("declared-not-seen", 0) > 0)
c.true("PHI in clear is reported", len(d.with_class("phi-row")) > 0)
c.true("lateral movement is reported", len(d.with_class("lateral-row")) > 0)
try:
    import yaml
    site_devices = {x["name"] for x in yaml.safe_load(open(site))["devices"]}
    seen = {a["data-device"] for a in d.with_class("device")}
    c.eq("site devices never seen are named", {a["data-device"] for a in d.with_class("unseen-device")},
         site_devices - seen)
except ImportError:
    c.true("python3-yaml installed", False)

# Each device is judged by its own side of a flow: the CT's store to the PACS cites the CT's rule
# for the CT and the PACS's rule for the PACS, which is then not "declared, not seen".
store = [f for f in flows if f.get("src_device") == "ct-1" and f.get("dst_device") == "pacs-1"
         and f.get("app") == "dicom"]
c.true("the CT stores to the PACS", len(store) > 0)
c.eq("store: the CT's rule", {(f.get("src_verdict"), f.get("src_verdict_rule")) for f in store},
     {("declared", "dicom-store")})
c.eq("store: the PACS's rule", {(f.get("dst_verdict"), f.get("dst_verdict_rule")) for f in store},
     {("declared", "dicom-store-in")})
html = open(html_path).read()
pacs = html[html.find('id="dev-pacs-1"'):]
pacs = pacs[:pacs.find("</section>")]
c.true("pacs-1 shows dicom-store-in seen", '<code>dicom-store-in</code>' in pacs and
       "declared, not seen</span></td><td></td><td>from modality" not in pacs)
c.true("pacs-1 does not cite the CT's rule", "<code>dicom-store</code>" not in pacs)


def variant(name, edits):
    """The demo analysed with a copy of the policies where edits {relative path: [(old, new)]} are made."""
    import shutil
    root = os.path.join(OUT, "report-demo-" + name)
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("sites", "devices"):
        shutil.copytree(os.path.join(SRC, "policies", sub), os.path.join(root, sub))
    for rel, pairs in edits.items():
        path = os.path.join(root, rel)
        text = open(path).read()
        for old, new in pairs:
            c.true(f"{name}: edit of {rel} applies", old in text)
            text = text.replace(old, new)
        open(path, "w").write(text)
    ev, page = os.path.join(root, "events.jsonl"), os.path.join(root, "report.html")
    _, summary, _ = run(["analyze", demo, "--site", os.path.join(root, "sites", "demo-site.yaml"), "--out", ev, "--report", page])
    evs = [json.loads(l) for l in open(ev) if l.strip()]
    return evs, page, summary  # the summary goes to stdout when the events go to a file


# The CT's model without its store: undeclared for the CT, still declared for the PACS (its model
# declares the traffic), so the PACS passes and the summary counts no undeclared flow for it.
store_rule = open(os.path.join(SRC, "policies", "devices", "acme-ct.yaml")).read()
store_rule = store_rule[store_rule.find("  - id: dicom-store\n"):]
store_rule = store_rule[:store_rule.find("\n  - id:", 1) + 1]
ud, ud_page, ud_summary = variant("undeclared", {"devices/acme-ct.yaml": [(store_rule, "")]})
ud_flows = [e for e in ud if e["event_type"] == "flow"]
ud_alerts = [e for e in ud if e["event_type"] == "alert"]
d_ud = check_page("CT model without its store", ud_page, ud_flows, ud_alerts)
c.eq("undeclared store: pacs-1 passes",
     {a["data-device"]: a["data-verdict"] for a in d_ud.with_class("device")}.get("pacs-1"), "PASS")
pacs_row = [l for l in ud_summary.splitlines() if l.strip().startswith("pacs-1 ")]
c.eq("undeclared store: summary counts no undeclared flow for pacs-1",
     [l.split()[4:7] for l in pacs_row], [["2", "0", "0"]])

# The CT bound by its MAC instead of its address: the same report as bound by address.
mac, mac_page, _ = variant("mac", {"sites/demo-site.yaml": [("ip: 10.10.1.10, ae_title: CT01",
                                                             'mac: "02:00:0a:0a:01:0a", ae_title: CT01')]})
mac_flows = [e for e in mac if e["event_type"] == "flow"]
mac_alerts = [e for e in mac if e["event_type"] == "alert"]
d_mac = check_page("CT bound by MAC", mac_page, mac_flows, mac_alerts)
c.eq("bound by MAC: device verdicts", {a["data-device"]: a["data-verdict"] for a in d_mac.with_class("device")},
     {a["data-device"]: a["data-verdict"] for a in d.with_class("device")})
c.eq("bound by MAC: headers name the CT", sum(1 for f in mac_flows if "ct-1" in (f.get("src_device"), f.get("dst_device"))),
     sum(1 for f in flows if "ct-1" in (f.get("src_device"), f.get("dst_device"))))
c.eq("bound by MAC: the CT's asset is named", {e["asset"].get("device") for e in mac if e["event_type"] == "asset"
                                              and e["asset"]["ip"] == "10.10.1.10"}, {"ct-1"})

# The CT bound by its calling AE (fingerprint): the flow events judged once its first association
# bound it name it (those before do not), its alerts and the flows the policy judged for it are its
# own, and the PACS keeps its own verdict.
fp, fp_page, _ = variant("fingerprint", {"sites/demo-site.yaml": [("ip: 10.10.1.10, ae_title: CT01",
                                                                    "fingerprint: {dicom_calling_ae: [CT01]}, ae_title: CT01")]})
fp_alerts = [e for e in fp if e["event_type"] == "alert"]
fp_flows = [e for e in fp if e["event_type"] == "flow"]
d_fp = Dom()
d_fp.feed(open(fp_page).read())
fp_sections = {a["data-device"]: a for a in d_fp.with_class("device")}
c.true("fingerprint: the CT has alerts", any(a["alert"]["device"] == "ct-1" for a in fp_alerts))
fp_named = [f["flow_id"] for f in fp_flows if "ct-1" in (f.get("src_device"), f.get("dst_device"))]
fp_ct_flows = [f["flow_id"] for f in fp_flows if "10.10.1.10" in (f["src_ip"], f["dst_ip"])]
c.true("fingerprint: flow headers name the CT", len(fp_named) > 0)
c.eq("fingerprint: once named, every later flow of the CT is", fp_named, fp_ct_flows[len(fp_ct_flows) - len(fp_named):])
c.true("fingerprint: the CT is not unseen", "ct-1" not in [a["data-device"] for a in d_fp.with_class("unseen-device")])
c.eq("fingerprint: the CT's alerts", int(fp_sections.get("ct-1", {}).get("data-alerts", -1)),
     sum(1 for a in fp_alerts if a["alert"]["device"] == "ct-1"))
c.eq("fingerprint: the CT fails", fp_sections.get("ct-1", {}).get("data-verdict"), "FAIL")
c.eq("fingerprint: the CT's judged flows", int(fp_sections.get("ct-1", {}).get("data-flows", -1)),
     sum(1 for f in fp_flows if (f["src_ip"] == "10.10.1.10" and "src_verdict" in f) or
         (f["dst_ip"] == "10.10.1.10" and "dst_verdict" in f)))
for name in ("pacs-1",):
    c.eq(f"fingerprint: {name} as when the CT is bound by address",
         (fp_sections.get(name, {}).get("data-verdict"), fp_sections.get(name, {}).get("data-alerts")),
         (sections.get(name, {}).get("data-verdict"), sections.get(name, {}).get("data-alerts")))
rc, fp_inv, _ = run(["assets", os.path.join(OUT, "report-demo-fingerprint", "events.jsonl"), "--json"], check_rc=(0,))
fp_ct = {a["ip"]: a for a in json.loads(fp_inv)}.get("10.10.1.10", {})
c.eq("fingerprint: the inventory names the CT", (fp_ct.get("device"), fp_ct.get("alerts")),
     ("ct-1", sum(1 for a in fp_alerts if a["alert"]["device"] == "ct-1")))

# `medmon report` on the same events gives the same page (but for the source line).
cli_html = os.path.join(OUT, "report-demo-cli.html")
run(["report", events_path, "-o", cli_html, "--site", site], check_rc=(0,))
check_page("medmon report", cli_html)

png = os.path.join(OUT, "report-demo.png")
c.true("screenshot saved", chromium.screenshot(html_path, png) and os.path.getsize(png) > 20000)

pdf = os.path.join(OUT, "report-demo.pdf")
run(["report", events_path, "-o", pdf], check_rc=(0,))
c.true("PDF printed", os.path.exists(pdf) and open(pdf, "rb").read(5) == b"%PDF-")

# Chromium's profile directory is a fresh private one (not a name another user could guess and
# prepare), removed afterwards.
import subprocess
import tempfile
fake = os.path.join(OUT, "report-demo-fake-chromium.sh")
seen = os.path.join(OUT, "report-demo-fake-chromium.txt")
with open(fake, "w") as f:
    f.write('#!/bin/sh\nfor a; do case "$a" in --user-data-dir=*) d="${a#--user-data-dir=}";; '
            '--print-to-pdf=*) p="${a#--print-to-pdf=}";; esac; done\n'
            f'stat -c "%a %F" "$d" > {seen}; echo "$d" >> {seen}; printf "%%PDF-fake" > "$p"\n')
os.chmod(fake, 0o755)
tmp = tempfile.mkdtemp(prefix="medmon-report-test-")
p = subprocess.run([os.environ.get("MEDMON") or os.path.join(os.path.dirname(__file__), "../../build/sensor/cli/medmon"),
                    "report", events_path, "-o", os.path.join(OUT, "report-demo-fake.pdf")],
                   env=dict(os.environ, MEDMON_CHROMIUM=fake, TMPDIR=tmp), capture_output=True, text=True)
c.eq("fake Chromium: exit", p.returncode, 0)
mode, profile = (open(seen).read().splitlines() + ["", ""])[:2]
c.eq("profile directory is private", mode, "700 directory")
name = os.path.basename(profile)
c.true("profile directory name is random, not the pid", name.startswith("medmon-chromium-") and
       not name[len("medmon-chromium-"):].isdigit() and os.path.dirname(profile) == tmp)
c.true("profile directory removed", not os.path.exists(profile))
os.rmdir(tmp)

# Inventory: every address of an asset event, with its identity.
rc, inv_out, _ = run(["assets", events_path, "--json"], check_rc=(0,))
inv = {a["ip"]: a for a in json.loads(inv_out)}
c.eq("inventory addresses", set(inv), {e["asset"]["ip"] for e in assets})
ct = inv.get("10.10.1.10", {})
c.eq("CT bound model", ct.get("model"), "acme-ct")
c.eq("CT device name", ct.get("device"), "ct-1")
c.eq("CT AE title", ct.get("dicom", {}).get("ae_titles"), ["CT01"])
c.eq("CT DICOM product", ct.get("dicom", {}).get("product"), "DCMTK")
c.eq("CT manufacturer", ct.get("dicom", {}).get("manufacturer"), "ACME MEDICAL")
c.eq("CT model name", ct.get("dicom", {}).get("model_name"), "ACME CT 9000")
c.true("CT HL7 sender", any(h.get("app") == "CT01" for h in ct.get("hl7_apps", [])))
# The RIS answers the CT's messages: its application is MSH-3/4 of the ACKs it sends.
c.eq("RIS HL7 application", [(h.get("app"), h.get("facility")) for h in inv.get("10.10.3.30", {}).get("hl7_apps", [])],
     [("RIS01", "HOSPITAL")])
c.eq("PACS offers DICOM", [(s["service"], s["proto"], s["port"]) for s in inv.get("10.10.2.20", {}).get("services_offered", [])],
     [("dicom", "tcp", 11112)])
# The asset event's shapes: each inventory entry validates against the asset schema's `asset`.
asset_schema = json.load(open(os.path.join(SRC, "docs", "schema", "asset.json")))
entry = dict(asset_schema["properties"]["asset"], **{"$defs": asset_schema.get("$defs", {})})
entry["required"] = [k for k in entry.get("required", []) if k != "changes"]
entry["properties"] = dict(entry["properties"], alerts={"type": "integer", "minimum": 0})
for ip, a in sorted(inv.items()):
    errs = [e.message for e in jsonschema.Draft202012Validator(entry).iter_errors(a)]
    c.eq(f"assets --json {ip}: the asset event's shape", errs, [])
rc, table, _ = run(["assets", events_path], check_rc=(0,))
c.true("table lists every device", all(ip in table for ip in inv))

# A damaged event file: the lines that are not events are skipped, and the first one is located.
damaged = os.path.join(OUT, "report-demo-damaged.jsonl")
lines = open(events_path).read().splitlines()
with open(damaged, "w") as f:
    f.write("\n".join(lines[:3] + ['{"ts":"2026-', "\x00garbage"] + lines[3:]) + "\n")
damaged_html = os.path.join(OUT, "report-demo-damaged.html")
for cmd, want_rc in ((["assets", damaged, "--json"], 0), (["report", damaged, "-o", damaged_html], 3)):
    rc, out, err = run(cmd, check_rc=None)
    c.eq(f"{cmd[0]}: exit", rc, want_rc)
    c.true(f"{cmd[0]}: first bad line located",
           f"{damaged}:4: not a JSON object, skipped (2 such lines in the file)" in err)
rc, out, _ = run(["assets", damaged, "--json"], check_rc=(0,))
c.eq("damaged file: same inventory", set(a["ip"] for a in json.loads(out)), set(inv))
# A damaged file gives no verdict: any lost line could have been a high alert.
page = open(damaged_html).read()
c.true("damaged file: overall INCOMPLETE", 'id="overall-verdict" class="verdict big incomplete">INCOMPLETE<' in page)
c.true("damaged file: the notice says how many lines", "2 lines could not be read (the first is line 4)" in page)

def flow_app(f):
    """The service name the inventory gives a flow: medmon's app, else nDPI's unless guessed."""
    app = f.get("app") or ("" if f.get("ndpi", {}).get("guessed") else f.get("ndpi", {}).get("protocol", ""))
    if app == "NetBIOS" and f.get("ndpi", {}).get("app"):
        app = f["ndpi"]["app"]  # NetBIOS.SMBv23: the application the session service carried
    return "unknown" if app in ("", "Unknown") else app.lower()


# The inventory is as of the last flow, not of the device's last asset event: last_seen is the end
# of its last flow, each service counts its flows, and a port that answered a SYN with RST is
# closed, not offered (the demo probes ten ports of the workstation 10.10.1.50).
for ip, a in sorted(inv.items()):
    mine = [f for f in flows if ip in (f["src_ip"], f["dst_ip"])]
    if not mine:
        continue
    c.eq(f"inventory {ip}: last_seen", a["last_seen"], max(f["flow"]["end"] for f in mine))
    c.eq(f"inventory {ip}: first_seen", a["first_seen"], min(f["flow"]["start"] for f in mine))
    for svc in a.get("services_offered", []):
        answered = [f for f in mine if f["dst_ip"] == ip and f["dst_port"] == svc["port"] and f["proto"] == svc["proto"]
                    and flow_app(f) == svc["service"]
                    and ("S" in f["flow"].get("tcp_flags_toclient", "") or f["flow"]["payload_bytes_toclient"] > 0)]
        c.eq(f"inventory {ip}: flows of {svc['service']}/{svc['port']}", svc["flows"], len(answered))
closed = {f["dst_port"] for f in flows if f["dst_ip"] == "10.10.1.50" and f["proto"] == "tcp"
          and "R" in f["flow"]["tcp_flags_toclient"] and "S" not in f["flow"]["tcp_flags_toclient"]
          and f["flow"]["payload_bytes_toclient"] == 0}
c.true("the demo probes closed ports of 10.10.1.50", len(closed) >= 5)
c.eq("closed ports are not services offered",
     sorted(s["port"] for s in inv.get("10.10.1.50", {}).get("services_offered", []) if s["port"] in closed), [])

# The same events reported with the site, but analysed without it: nothing judged, no site device
# called unseen while its address is on the page.
nosite_events = os.path.join(OUT, "report-demo-nosite.jsonl")
nosite_html = os.path.join(OUT, "report-demo-nosite.html")
run(["analyze", demo, "--out", nosite_events, "-q"])
run(["report", nosite_events, "--site", site, "-o", nosite_html], check_rc=(0,))
page = open(nosite_html).read()
c.true("no site at analysis: not judged", 'class="verdict big none">NOT JUDGED<' in page)
c.true("no site at analysis: no device unseen", "unseen-device" not in page)
c.true("no site at analysis: the site was not applied", 'id="site-not-applied"' in page)

# Asset events follow their schema.
try:
    import jsonschema
    schema = json.load(open(os.path.join(SRC, "docs", "schema", "asset.json")))
    bad = []
    for e in assets:
        try:
            jsonschema.validate(e, schema, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError as ex:
            bad.append(ex.message)
    c.eq("asset events valid", bad[:3], [])
except ImportError:
    c.true("python3-jsonschema installed", False)

c.done()
