"""PHI never leaves medmon in clear: runs `medmon analyze` (with the inventory and the report) on
every capture under pcaps/, then scans every output (events, inventory table and JSON, HTML
report, the terminal output) and every text file other tests left in MEDMON_TEST_OUT for the
made-up patient names, IDs and birth dates the capture generators use (tests/data/phi-values.txt).
A positive control runs the demo with --phi raw and expects the scan to find them there."""
import glob
import html
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden import OUT, SRC, Checker, run  # noqa: E402

c = Checker("phi_scan")
TEXT_EXT = (".jsonl", ".json", ".html", ".txt", ".csv", ".log", ".yaml", ".yml", ".md", ".out", ".err")


def phi_values():
    vals = []
    for line in open(os.path.join(SRC, "tests", "data", "phi-values.txt"), encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#"):
            vals.append(line.lower())
    return vals


VALUES = phi_values()


def variants(text, name):
    """The text as written, plus JSON strings decoded (\\u00fc -> ü) and HTML entities resolved."""
    yield text
    if name.endswith(".jsonl") or name.endswith(".json"):
        decoded = []
        for line in text.splitlines():
            try:
                decoded.append(json.dumps(json.loads(line), ensure_ascii=False))
            except ValueError:
                pass
        if not decoded:
            try:
                decoded.append(json.dumps(json.loads(text), ensure_ascii=False))
            except ValueError:
                pass
        yield "\n".join(decoded)
    if name.endswith(".html"):
        yield html.unescape(text)


# medmon's own timestamps (packet time, 1970-01-01T00:00:00Z for an empty input) are not birth dates.
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def leaks(text, name):
    found = set()
    for t in variants(text, name):
        low = TIMESTAMP.sub("<ts>", t).lower()
        found.update(v for v in VALUES if v in low)
    return sorted(found)


def read_text(path):
    with open(path, "rb") as f:
        data = f.read()
    # Latin-1 keeps every byte: a raw ISO_IR 100 name written out unconverted is still found.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


out_dir = os.path.join(OUT, "phi-scan")
os.makedirs(out_dir, exist_ok=True)
site = os.path.join(SRC, "policies", "sites", "demo-site.yaml")
captures = sorted(glob.glob(os.path.join(SRC, "pcaps", "**", "*.pcap"), recursive=True) +
                  glob.glob(os.path.join(SRC, "pcaps", "**", "*.pcapng"), recursive=True))
c.true("captures found", len(captures) > 10)

scanned = 0
for cap in captures:
    rel = os.path.relpath(cap, os.path.join(SRC, "pcaps"))
    stem = rel.replace(os.sep, "__").rsplit(".", 1)[0]
    events = os.path.join(out_dir, stem + ".jsonl")
    report = os.path.join(out_dir, stem + ".html")
    extra = ["--site", site] if rel.startswith("demo" + os.sep) else []
    rc, out, err = run(["analyze", cap, "--out", events, "--report", report, *extra], check_rc=None)
    c.true(f"{rel}: analyze exit code {rc} (stderr: {err[-300:]})", rc in (0, 1, 3))
    for label, text in (("stdout", out), ("stderr", err)):
        bad = leaks(text, label)
        c.eq(f"{rel}: PHI in analyze {label}", bad, [])
    if rc == 3:
        continue  # not a readable capture: nothing else was written
    for args, suffix in ((["assets", events], ".assets.txt"), (["assets", events, "--json"], ".assets.json")):
        rc2, out2, err2 = run(args, check_rc=(0,))
        with open(os.path.join(out_dir, stem + suffix), "w") as f:
            f.write(out2)

# Every text output of this test and of the other golden tests.
files = [p for p in glob.glob(os.path.join(OUT, "**", "*"), recursive=True)
         if os.path.isfile(p) and p.endswith(TEXT_EXT) and "phi-raw-control" not in p]
for path in files:
    bad = leaks(read_text(path), path)
    scanned += 1
    c.eq(f"PHI in {os.path.relpath(path, OUT)}", bad, [])
c.true(f"scanned the outputs ({scanned} files)", scanned >= len(captures))

# Positive control: with --phi raw the same scan must find the demo's patients.
demo = os.path.join(SRC, "pcaps", "demo", "demo.pcap")
if os.path.exists(demo):
    ctl = os.path.join(OUT, "phi-raw-control")
    os.makedirs(ctl, exist_ok=True)
    rc, out, err = run(["analyze", demo, "--phi", "raw", "--out", os.path.join(ctl, "demo-raw.jsonl"), "-q",
                        "--report", os.path.join(ctl, "demo-raw.html")])
    c.true("--phi raw warns", "warning" in err and "raw" in err)
    found = leaks(read_text(os.path.join(ctl, "demo-raw.jsonl")), "demo-raw.jsonl")
    c.true(f"--phi raw output is caught by the scan (found {found})", len(found) > 0)
    rc, out, err = run(["analyze", demo, "--out", os.path.join(ctl, "demo-pseudo.jsonl"), "-q"])
    pseudo = read_text(os.path.join(ctl, "demo-pseudo.jsonl"))
    c.true("pseudonyms are written instead", "\"phi:" in pseudo)

c.done()
