#!/usr/bin/python3
"""A reader that closes the pipe medmon writes to (`| head`) is an output error, not a kill by
SIGPIPE: analyze and live exit 3 with `cannot write events: standard output: Broken pipe`, and
the --out file, when standard output is an extra sink, is still written completely (for live:
with the interrupted flows and the final stats at stop). The pipe here has no reader from the
start, so every write to it fails however fast the reader would have been."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, SRC, Checker, pcap  # noqa: E402
from live_netns import Netns, tools_missing  # noqa: E402
from pcapwrite import ACK, RST, SYN, ether, ipv4, tcp, write_pcap  # noqa: E402

C = Checker("cli_sigpipe")
work = tempfile.mkdtemp(prefix="medmon-sigpipe-test-")


def many_flows(path, n=6000):
    """n refused TCP connections, one a millisecond: several MiB of events, more than one write."""
    a, b = b"\x02\0\0\0\0\x0a", b"\x02\0\0\0\0\x0b"
    recs = []
    for i in range(n):
        cli, srv, port = f"10.9.{i >> 8 & 255}.{i & 255}", "10.8.0.1", 20000 + i % 40000
        t = 1700000000_000000 + i * 1000
        recs.append((t // 1000000, t % 1000000, ether(b, a, ipv4(cli, srv, 6, tcp(cli, srv, port, 104, 1, 0, SYN)))))
        t += 100
        recs.append((t // 1000000, t % 1000000, ether(a, b, ipv4(srv, cli, 6, tcp(srv, cli, 104, port, 0, 2, RST | ACK)))))
    write_pcap(path, recs)
    return path


INPUT = [pcap("dicom", "move.pcap"), pcap("hl7", "mllp-mixed.pcap"), pcap("demo", "demo.pcap"),
         many_flows(os.path.join(work, "many.pcap"))]


def closed_pipe():
    """The write end of a pipe whose read end is already closed."""
    r, w = os.pipe()
    os.close(r)
    return w


def medmon_into_closed_pipe(*args):
    w = closed_pipe()
    try:
        # subprocess gives the child the default SIGPIPE action, as a shell does.
        return subprocess.run([MEDMON, *args], stdout=w, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(w)


def describe(p):
    return f"exit {p.returncode}, stderr {p.stderr.strip()[-200:]!r}"


def analyze():
    ref = os.path.join(work, "ref.jsonl")
    subprocess.run([MEDMON, "analyze", *INPUT, "--out", ref, "-q"], check=True)
    want = open(ref).read()
    C.true(f"reference output is larger than one write ({len(want)} bytes)", len(want) > 2 << 20)

    p = medmon_into_closed_pipe("analyze", *INPUT, "--out", "-", "-q")
    C.eq(f"--out -: exit 3 ({describe(p)})", p.returncode, 3)
    C.true(f"--out -: says so ({p.stderr.strip()})",
           "medmon: cannot write events: standard output: Broken pipe" in p.stderr)

    for workers in ("1", "3"):
        out = os.path.join(work, f"out{workers}.jsonl")
        p = medmon_into_closed_pipe("analyze", *INPUT, "--out", out, "--sink", "stdout", "-q", "--workers", workers)
        tag = f"--sink stdout, {workers} worker(s)"
        C.eq(f"{tag}: exit 3 ({describe(p)})", p.returncode, 3)
        C.true(f"{tag}: says so ({p.stderr.strip()})",
               "medmon: cannot write events: standard output: Broken pipe" in p.stderr)
        if workers == "3":
            ref3 = os.path.join(work, "ref3.jsonl")
            subprocess.run([MEDMON, "analyze", *INPUT, "--out", ref3, "-q", "--workers", "3"], check=True)
            want_w = open(ref3).read()
        else:
            want_w = want
        got = open(out).read() if os.path.exists(out) else ""
        C.true(f"{tag}: the --out file is complete ({got.count(chr(10))} of {want_w.count(chr(10))} lines)",
               got == want_w)

    # The summary goes to standard output when the events do not.
    out = os.path.join(work, "summary.jsonl")
    p = medmon_into_closed_pipe("analyze", *INPUT, "--out", out)
    C.eq(f"summary: exit 3 ({describe(p)})", p.returncode, 3)
    C.true(f"summary: says so ({p.stderr.strip()})",
           "medmon: cannot write the summary: standard output: Broken pipe" in p.stderr)
    C.true("summary: the --out file is complete", os.path.exists(out) and open(out).read() == want)

    # Standard error in the same closed pipe (`2>&1 | head`): the diagnostic cannot be printed,
    # the exit code stays (no abort by an exception from the print).
    for args, rc in ((["--out", "-", "-q"], 3), (["--out", out, "--fail-on", "none"], 3),
                     (["--out", out, "--sink", "file=/nonexistent/x.jsonl"], 3), (["--out", out, "--sink", "kafka=x"], 2)):
        w = closed_pipe()
        try:
            p = subprocess.run([MEDMON, "analyze", INPUT[2], *args], stdout=w, stderr=w, timeout=300)
        finally:
            os.close(w)
        C.eq(f"stderr closed too, {' '.join(args[2:])}: exit {rc} (exit {p.returncode})", p.returncode, rc)
    # Standard error closed under the other commands: no abort.
    for args in (["report", os.path.join(work, "missing.jsonl")], ["policy", "check", os.path.join(work, "missing.yaml")],
                 ["assets", os.path.join(work, "missing.jsonl")]):
        w = closed_pipe()
        try:
            p = subprocess.run([MEDMON, *args], stdout=w, stderr=w, timeout=300)
        finally:
            os.close(w)
        C.true(f"stderr closed, {args[0]}: no abort (exit {p.returncode})", p.returncode != -signal.SIGABRT)


def other_commands():
    """report, assets, policy check and mds2 import: a closed pipe is exit 3 naming what was lost,
    never a kill by SIGPIPE, and the files written before it are whole."""
    site = os.path.join(SRC, "policies", "sites", "demo-site.yaml")
    events = os.path.join(work, "demo.jsonl")
    subprocess.run([MEDMON, "analyze", pcap("demo", "demo.pcap"), "--site", site, "--out", events, "-q",
                    "--fail-on", "none"], check=True)
    for args, what in ((["assets", events], "the inventory"), (["assets", events, "--json"], "the inventory"),
                       (["policy", "check", site], "the summary"),
                       (["mds2", "import", os.path.join(SRC, "tests", "data", "mds2", "nema-example-mds2-2019.xlsx"),
                         "-o", "-"], "the model")):
        p = medmon_into_closed_pipe(*args)
        tag = " ".join(a for a in args if not a.startswith("/"))
        C.eq(f"{tag}: exit 3 ({describe(p)})", p.returncode, 3)
        C.true(f"{tag}: says so ({p.stderr.strip()})",
               f"medmon: cannot write {what}: standard output: Broken pipe" in p.stderr)
    # The report to standard output: its write fails, and says so.
    p = medmon_into_closed_pipe("report", events, "-o", "/dev/stdout")
    C.true(f"report -o /dev/stdout: not killed, an error exit ({describe(p)})", p.returncode in (2, 3))
    C.true(f"report -o /dev/stdout: says so ({p.stderr.strip()})", "cannot write the report: Broken pipe" in p.stderr)
    # A damaged events file with standard error in a closed pipe (`2>&1 | head`): the warning about
    # the damaged line cannot be printed, the report is still written whole and the exit code stays.
    damaged = os.path.join(work, "damaged.jsonl")
    with open(events) as f, open(damaged, "w") as d:
        d.write(f.read() + "{not json\n")
    ref, out = os.path.join(work, "ref.html"), os.path.join(work, "report.html")
    subprocess.run([MEDMON, "report", damaged, "-o", ref], capture_output=True)
    w = closed_pipe()
    try:
        p = subprocess.run([MEDMON, "report", damaged, "-o", out], stdout=w, stderr=w, timeout=300)
    finally:
        os.close(w)
    C.eq(f"report, stderr closed: exit 3 (exit {p.returncode})", p.returncode, 3)
    C.true("report, stderr closed: the report is written whole",
           os.path.exists(out) and open(out, "rb").read() == open(ref, "rb").read())


def live():
    why = tools_missing()
    if why:
        print(f"cli_sigpipe: live part skipped: {why}")
        return
    ns = Netns("sp")
    try:
        out = os.path.join(work, "live.jsonl")
        err = os.path.join(work, "live.err")
        w = closed_pipe()
        with open(err, "w") as errf:
            p = ns.popen([MEDMON, "live", "-i", "vb", "--out", out, "--quiet", "--sink", "stdout"], stdout=w, stderr=errf)
        os.close(w)
        deadline = time.time() + 20
        while ns.packet_sockets() < 1 and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        # Flows that stay open (the demo's DNS and SSH) and events that must be written at once
        # (at least once a second) to the closed pipe.
        ns.replay(pcap("demo", "demo.pcap"))
        time.sleep(1.5)
        C.true("live: still running after writing to the closed pipe", p.poll() is None)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        rc = p.wait(timeout=60)
        text = open(err).read()
        C.eq(f"live: exit 3 (exit {rc}, stderr {text.strip()[-200:]!r})", rc, 3)
        C.true(f"live: says so ({text.strip()})", "cannot write events: standard output: Broken pipe" in text)
        events = [json.loads(l) for l in open(out)] if os.path.exists(out) else []
        C.true("live: the --out file has the interrupted flows",
               any(e["event_type"] == "flow" and e["flow"]["state"] == "interrupted" for e in events))
        C.true("live: the --out file has the final stats", any(e["event_type"] == "stats" for e in events))
    finally:
        ns.close()


try:
    analyze()
    other_commands()
    live()
finally:
    shutil.rmtree(work, ignore_errors=True)
C.done()
