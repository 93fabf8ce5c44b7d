#!/usr/bin/python3
"""Sinks at exit: one SIGINT during the drain changes nothing (the drain goes on, up to
drain_timeout); a second one ends it at once, says so on stderr, and leaves every event not
delivered in the spool, none lost. The receiver is a ClickHouse stand-in that takes requests and
never answers. Without a spool directory of its own, the exit line says the private one is not
read by a later run."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, Checker, pcap  # noqa: E402

DEMO = pcap("demo", "demo.pcap")


class DeafServer:
    """Accepts connections, reads what comes, never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.requests += 1
            threading.Thread(target=self.swallow, args=(c,), daemon=True).start()

    @staticmethod
    def swallow(c):
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass


def spooled_lines(d):
    n = 0
    for name in os.listdir(d):
        if name.endswith(".spool"):
            with open(os.path.join(d, name), "rb") as f:
                n += f.read().count(b"\n")
    return n


def main():
    c = Checker("sinks_drain_signal")
    tmp = tempfile.mkdtemp(prefix="medmon-drain-")
    try:
        srv = DeafServer()
        out, spool = os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "spool")
        p = subprocess.Popen([MEDMON, "analyze", DEMO, "--out", out, "-q", "--fail-on", "none", "--sink",
                              f"clickhouse=http://127.0.0.1:{srv.port}/?db=medmon,timeout=60,drain_timeout=60,"
                              f"spool={spool}"], stderr=subprocess.PIPE, text=True)
        # The capture is read in well under a second; then the sink drains into a server that
        # never answers.
        deadline = time.monotonic() + 20
        while srv.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        c.true("draining: still running before any signal", p.poll() is None)
        p.send_signal(signal.SIGINT)
        time.sleep(1.5)
        c.true("one SIGINT during the drain does not end it", p.poll() is None)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            c.true("a second SIGINT ends the drain at once", False)
            c.done()
        took = time.monotonic() - t0
        c.true(f"a second SIGINT ends the drain at once (took {took:.1f} s)", took < 3.0)
        c.true(f"stderr says the drain was cut: {err!r}", "stopping now (signal received again)" in err)
        c.true(f"stderr says where the events wait: {err!r}", f"wait in {spool}" in err)
        with open(out) as f:
            events = sum(1 for line in f if line.strip())
        c.true("the capture has events", events > 0)
        c.true(f"every event is in the spool: {spooled_lines(spool)} lines for {events} events", spooled_lines(spool) == events)
        c.true(f"exit status of a stop by signal: {p.returncode}", p.returncode in (0, 1))
        # Without a spool directory of its own the events left are in the private one, which no
        # later run reads: the exit line must not promise them to the next run.
        r = subprocess.run([MEDMON, "analyze", DEMO, "--out", os.devnull, "-q", "--fail-on", "none", "--sink",
                            "syslog=tcp://127.0.0.1:1,drain_timeout=0.3"],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, TMPDIR=tmp))
        c.true(f"private spool: no promise of a next run: {r.stderr!r}",
               "for the next run" not in r.stderr and "which no later run reads" in r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.done()


if __name__ == "__main__":
    sys.exit(main())
