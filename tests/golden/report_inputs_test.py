#!/usr/bin/python3
"""What `medmon report` and `medmon assets` read and write, besides the page itself:

- `-` reads the events from standard input (a pipe, or a file the shell redirected), as
  `analyze -` reads a capture: the same inventory and the same page as from the file;
- a read error part way through the events (here a terminal that hangs up, read as /dev/stdin) is
  no end of file:
  the report says INCOMPLETE (`read-error`) and exits 3, `assets` exits 3, both name the line
  after which the rest is missing;
- a report file named `.PDF` (any case) is printed to PDF, by `report -o` and `analyze --report`."""
import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, SRC, Checker, pcap  # noqa: E402

C = Checker("report_inputs")
work = tempfile.mkdtemp(prefix="medmon-report-inputs-")


def medmon(*args, stdin=None, input=None, env=None):
    p = subprocess.run([MEDMON, *args], stdin=stdin, input=input, capture_output=True, timeout=300,
                       env=env or os.environ)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def page(path, source):
    """The report without its source name (the file name, or "standard input")."""
    return open(path).read().replace(source, "SOURCE")


try:
    demo = pcap("demo", "demo.pcap")
    site = os.path.join(SRC, "policies", "sites", "demo-site.yaml")
    events = os.path.join(work, "ev.jsonl")
    rc, _, err = medmon("analyze", demo, "--site", site, "--out", events, "-q", "--fail-on", "none")
    C.eq(f"analyze the demo ({err.strip()})", rc, 0)
    data = open(events, "rb").read()

    # --- `-`: standard input ---
    rc, want_table, err = medmon("assets", events)
    C.eq(f"assets FILE: exit 0 ({err.strip()})", rc, 0)
    rc, out, err = medmon("assets", "-", input=data)
    C.eq(f"assets - from a pipe: exit 0 ({err.strip()})", rc, 0)
    C.eq("assets - from a pipe: the inventory of the file", out, want_table)
    rc, want_json, _ = medmon("assets", events, "--json")
    with open(events, "rb") as f:
        rc, out, err = medmon("assets", "-", "--json", stdin=f)
    C.eq(f"assets - --json < FILE: exit 0 ({err.strip()})", rc, 0)
    C.eq("assets - --json < FILE: the inventory of the file", out, want_json)

    want_html = os.path.join(work, "file.html")
    rc, _, err = medmon("report", events, "-o", want_html, "--site", site)
    C.eq(f"report FILE: exit 0 ({err.strip()})", rc, 0)
    want = page(want_html, events)
    piped = os.path.join(work, "pipe.html")
    rc, _, err = medmon("report", "-", "-o", piped, "--site", site, input=data)
    C.eq(f"report - from a pipe: exit 0 ({err.strip()})", rc, 0)
    C.true("report - from a pipe: the page of the file", os.path.exists(piped) and page(piped, "standard input") == want)
    redirected = os.path.join(work, "redirected.html")
    with open(events, "rb") as f:
        rc, _, err = medmon("report", "-", "-o", redirected, "--site", site, stdin=f)
    C.eq(f"report - < FILE: exit 0 ({err.strip()})", rc, 0)
    C.true("report - < FILE: the page of the file",
           os.path.exists(redirected) and page(redirected, "standard input") == want)
    rc, out, err = medmon("report", "-", "-o", "-", input=data)
    C.eq(f"report - -o -: exit 0 ({err.strip()})", rc, 0)
    C.true("report - -o -: the page on standard output", out.startswith("<!DOCTYPE html>") and 'id="count-flows"' in out)
    # The report written over the file standard input reads is refused, as for a named events file.
    victim = os.path.join(work, "victim.jsonl")
    shutil.copy(events, victim)
    with open(victim, "rb") as f:
        rc, _, err = medmon("report", "-", "-o", victim, stdin=f)
    C.eq(f"report - < ev -o ev: refused, exit 2 ({err.strip()})", rc, 2)
    C.eq("report - < ev -o ev: the events are left alone", open(victim, "rb").read(), data)
    # Standard input that cannot be kept to be read again (no temporary directory) is exit 3.
    rc, _, err = medmon("report", "-", "-o", os.path.join(work, "notmp.html"), input=data,
                        env=dict(os.environ, TMPDIR=os.path.join(work, "missing")))
    C.eq(f"report - without a temporary directory: exit 3 ({err.strip()})", rc, 3)

    # --- a read error part way: a terminal hung up after some lines ---
    lines = data.splitlines(keepends=True)
    head = [l for l in lines if len(l) < 4000][:20]  # a terminal's line is at most 4095 bytes

    def hung_up(*args):
        """Runs medmon with a terminal on standard input that hangs up after `head`."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        p = subprocess.Popen([MEDMON, *args], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.write(master, b"".join(head))
        # Hung up once medmon has read it all (nothing left in the terminal's input queue).
        deadline = time.time() + 120
        while time.time() < deadline and struct.unpack("i", fcntl.ioctl(slave, termios.FIONREAD, b"\0" * 4))[0] > 0:
            time.sleep(0.05)
        time.sleep(0.2)
        os.close(slave)
        os.close(master)  # medmon's next read: EIO
        out, err = p.communicate(timeout=120)
        return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    hup_html = os.path.join(work, "hup.html")
    rc, _, err = hung_up("report", "/dev/stdin", "-o", hup_html)
    C.eq(f"report /dev/stdin from a terminal that hangs up: exit 3 ({err.strip()})", rc, 3)
    C.true(f"report: the read error named with its line ({err.strip()})",
           f"/dev/stdin:{len(head)}: read error after this line" in err)
    C.true(f"report: says the report is incomplete ({err.strip()})", "the report is incomplete" in err)
    hup = open(hup_html).read() if os.path.exists(hup_html) else ""
    C.true("report: INCOMPLETE on the page", 'id="overall-verdict" class="verdict big incomplete">INCOMPLETE' in hup)
    C.true("report: the read error on the page", f'id="read-error"' in hup and f"after line {len(head)}" in hup)
    rc, out, err = hung_up("assets", "/dev/stdin")
    C.eq(f"assets /dev/stdin from a terminal that hangs up: exit 3 ({err.strip()})", rc, 3)
    C.true(f"assets: the read error named with its line ({err.strip()})",
           f"/dev/stdin:{len(head)}: read error after this line" in err)
    C.true("assets: the inventory of what was read is printed", "device" in out)

    # --- .PDF in capitals is a PDF too (a stand-in for Chromium writes it) ---
    fake = os.path.join(work, "fake-chromium.sh")
    with open(fake, "w") as f:
        f.write('#!/bin/sh\nfor a; do case "$a" in --print-to-pdf=*) p="${a#--print-to-pdf=}";; esac; done\n'
                'printf "%%PDF-fake" > "$p"\n')
    os.chmod(fake, 0o755)
    env = dict(os.environ, MEDMON_CHROMIUM=fake)
    upper = os.path.join(work, "REPORT.PDF")
    rc, _, err = medmon("report", events, "-o", upper, env=env)
    C.eq(f"report -o REPORT.PDF: exit 0 ({err.strip()})", rc, 0)
    C.true("report -o REPORT.PDF: a PDF", os.path.exists(upper) and open(upper, "rb").read(5) == b"%PDF-")
    C.true("report -o REPORT.PDF: printed from REPORT.html", os.path.exists(os.path.join(work, "REPORT.html")))
    mixed = os.path.join(work, "an.Pdf")
    rc, _, err = medmon("analyze", demo, "--site", site, "--out", os.path.join(work, "an.jsonl"), "-q", "--fail-on", "none",
                        "--report", mixed, env=env)
    C.eq(f"analyze --report an.Pdf: exit 0 ({err.strip()})", rc, 0)
    C.true("analyze --report an.Pdf: a PDF", os.path.exists(mixed) and open(mixed, "rb").read(5) == b"%PDF-")
    C.true("analyze --report an.Pdf: printed from an.html", os.path.exists(os.path.join(work, "an.html")))
finally:
    shutil.rmtree(work, ignore_errors=True)
C.done()
