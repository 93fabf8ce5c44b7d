#!/usr/bin/python3
"""The --out file with rotation: the rotated files, oldest first, hold exactly the lines of an
unrotated run (none split, none lost), the same for several workers; rotation by packet time;
an `output:` section in the config; bad settings are errors with file:line:column, exit 2."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, Checker, pcap  # noqa: E402

c = Checker("sinks_file")
work = tempfile.mkdtemp(prefix="medmon-rotate-test-")
INPUT = [pcap("dicom", "move.pcap"), pcap("hl7", "mllp-mixed.pcap"), pcap("demo", "demo.pcap")]


def medmon(*args):
    return subprocess.run([MEDMON, *args], capture_output=True, text=True, timeout=300)


def rotated(path):
    """The rotated files oldest first, then the current one."""
    nums = sorted((int(p.rsplit(".", 1)[1]) for p in glob.glob(path + ".*")), reverse=True)
    return [f"{path}.{n}" for n in nums] + [path]


try:
    ref = os.path.join(work, "ref.jsonl")
    medmon("analyze", *INPUT, "--out", ref, "-q")
    want = open(ref).read()
    c.true("reference output has many lines", want.count("\n") > 20)
    for workers in ("1", "3"):
        out = os.path.join(work, f"rot{workers}.jsonl")
        if workers == "3":
            medmon("analyze", *INPUT, "--out", os.path.join(work, "ref3.jsonl"), "-q", "--workers", "3")
            want = open(os.path.join(work, "ref3.jsonl")).read()
        p = medmon("analyze", *INPUT, "--out", out, "-q", "--workers", workers, "--rotate-size", "8k", "--rotate-keep", "0")
        c.eq(f"workers {workers}: exit", p.returncode, 0)
        files = rotated(out)
        c.true(f"workers {workers}: rotated into several files ({len(files)})", len(files) > 3)
        parts = [open(f).read() for f in files]
        c.true(f"workers {workers}: every file ends with a whole line", all(x.endswith("\n") for x in parts if x))
        c.true(f"workers {workers}: files within the limit unless one line",
               all(len(x) <= 8192 or x.count("\n") == 1 for x in parts))
        c.eq(f"workers {workers}: rotated files together == unrotated output", "".join(parts), want)

    # Rotation by packet time: the demo capture spans a few seconds.
    out = os.path.join(work, "time.jsonl")
    p = medmon("analyze", pcap("demo", "demo.pcap"), "--out", out, "-q", "--rotate-interval", "1", "--rotate-timestamp")
    files = sorted(glob.glob(out + ".*"))
    c.true(f"time: rotated with timestamp names ({[os.path.basename(f) for f in files]})",
           len(files) >= 1 and all(re.search(r"\.\d{8}T\d{6}Z(-\d+)?$", f) for f in files))
    # A run on the same file keeps the earlier file (rotated away, not truncated).
    before = len(glob.glob(out + "*"))
    medmon("analyze", pcap("demo", "demo.pcap"), "--out", out, "-q", "--rotate-interval", "1", "--rotate-timestamp",
           "--rotate-keep", "0")
    c.true("time: a second run keeps the first run's files", len(glob.glob(out + "*")) > before)

    # The output: section of the config.
    cfg = os.path.join(work, "medmon.yaml")
    with open(cfg, "w") as f:
        f.write("output:\n  sensor_id: ward-7\n  rotate:\n    size: 8k\n    keep: 2\n")
    os.chmod(cfg, 0o600)
    out = os.path.join(work, "cfg.jsonl")
    p = medmon("analyze", *INPUT, "--out", out, "-q", "--config", cfg)
    c.eq(f"config: exit ({p.stderr.strip()})", p.returncode, 0)
    c.eq("config: keep 2", sorted(os.path.basename(x) for x in glob.glob(out + ".*")), ["cfg.jsonl.1", "cfg.jsonl.2"])

    with open(cfg, "w") as f:
        f.write("output:\n  sinks:\n    - type: clickhouse\n      url: http://127.0.0.1:1/\n      batch_size: 3\n")
    p = medmon("analyze", pcap("demo", "demo.pcap"), "--out", os.devnull, "--config", cfg)
    c.eq("config: unknown sink key: exit 2", p.returncode, 2)
    c.true(f"config: error names file:line:column ({p.stderr.strip()})", f"{cfg}:5:7: unknown key 'batch_size'" in p.stderr)
    with open(cfg, "w") as f:
        f.write("output:\n  rotate: {size: huge}\n")
    p = medmon("analyze", pcap("demo", "demo.pcap"), "--out", os.devnull, "--config", cfg)
    c.true(f"config: bad size ({p.stderr.strip()})", p.returncode == 2 and f"{cfg}:2:18:" in p.stderr)

    p = medmon("analyze", pcap("demo", "demo.pcap"), "--out", "-", "--rotate-size", "1M")
    c.eq("rotation of standard output: exit 2", p.returncode, 2)
    p = medmon("analyze", pcap("demo", "demo.pcap"), "--out", os.devnull, "--sink", "kafka=x")
    c.true(f"unknown sink type: exit 2 ({p.stderr.strip()})", p.returncode == 2 and "unknown sink type" in p.stderr)

    # A stdout sink: standard output is JSON Lines only, the console summary goes to stderr
    # (with the events in a file and no stdout sink, it is on stdout).
    out = os.path.join(work, "with-stdout-sink.jsonl")
    p = medmon("analyze", pcap("demo", "demo.pcap"), "--out", out, "--sink", "stdout", "--fail-on", "none")
    lines = p.stdout.splitlines()
    c.true("stdout sink: standard output has the events", len(lines) > 20)
    c.eq("stdout sink: every line of standard output is an event", [l for l in lines if not l.startswith("{")], [])
    c.true("stdout sink: the summary is on stderr", "medmon summary" in p.stderr)
    c.eq("stdout sink: the same events as the --out file", p.stdout, open(out).read())
    p = medmon("analyze", pcap("demo", "demo.pcap"), "--out", out, "--fail-on", "none")
    c.true("no stdout sink: the summary is on stdout", p.stdout.startswith("medmon summary"))
finally:
    shutil.rmtree(work, ignore_errors=True)

c.done()
