#!/usr/bin/python3
"""ClickHouse sink, restart after a lost answer: a server that stores an INSERT and then dies
without answering leaves the sensor unsure whether the rows went in; the batch waits in the
spool, and the next run of the sensor counts the rows of those events before sending them, so
every event is in its table exactly once. Uses a small stand-in for ClickHouse's HTTP interface
(INSERT ... FORMAT JSONEachRow, SELECT count() / SELECT seq by sensor, run and seq range, INSERTs
still running in system.processes)."""
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, Checker, pcap  # noqa: E402


class FakeClickHouse:
    """mode 'swallow': stores the first INSERT, then closes every connection without an answer.
    mode 'ok': answers every request."""

    def __init__(self, mode, rows):
        self.mode, self.rows, self.inserted = mode, rows, False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                self.handle(c)

    def handle(self, c):
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            if not d:
                return
            data += d
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"content-length:\s*(\d+)", head, re.I)
        while m and len(body) < int(m.group(1)):
            d = c.recv(65536)
            if not d:
                return
            body += d
        target = head.split(b" ")[1].decode()
        q = urllib.parse.parse_qs(urllib.parse.urlparse(target).query).get("query", [""])[0]
        if self.mode == "swallow" and self.inserted:
            return
        words = q.split()
        if q.startswith("INSERT"):
            for line in body.decode().splitlines():
                if line.strip():
                    self.rows.append((words[2], json.loads(line)))
            if self.mode == "swallow":
                self.inserted = True
                return
            resp = ""
        elif "system.processes" in q:
            resp = "0\n"  # one request at a time: no INSERT runs while another is answered
        else:
            run, lo, hi = re.search(r"run = '(\w+)' AND seq BETWEEN (\d+) AND (\d+)", q).groups()
            seqs = [r["seq"] for t, r in self.rows if t == words[3] and r["run"] == run and int(lo) <= int(r["seq"]) <= int(hi)]
            resp = f"{len(seqs)}\n" if q.startswith("SELECT count()") else "".join(s + "\n" for s in seqs)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(resp) + resp.encode())

    def close(self):
        self.sock.close()


c = Checker("sinks_clickhouse_restart")
work = tempfile.mkdtemp(prefix="medmon-ch-restart-")
try:
    rows = []
    spool = os.path.join(work, "spool")

    def sensor(server, drain):
        return subprocess.run([MEDMON, "analyze", pcap("demo", "demo.pcap"), "--out", os.devnull, "-q", "--sensor-id", "s1",
                               "--sink", f"clickhouse=http://127.0.0.1:{server.port}/?db=medmon,spool={spool},"
                                         f"drain_timeout={drain},timeout=1"],
                              capture_output=True, text=True, timeout=120)

    first = FakeClickHouse("swallow", rows)
    p = sensor(first, 2)
    first.close()
    c.eq(f"first run: exit ({p.stderr.strip()})", p.returncode, 0)
    c.true("first run: one INSERT went in without an answer", len(rows) > 0)
    c.true(f"first run: events left in the spool ({p.stderr.strip()})", "wait in" in p.stderr)
    second = FakeClickHouse("ok", rows)
    p = sensor(second, 10)
    second.close()
    c.eq(f"second run: exit ({p.stderr.strip()})", p.returncode, 0)
    ids = collections.Counter((t, r["run"], r["seq"]) for t, r in rows)
    runs = {r["run"] for _, r in rows}
    c.eq("two runs' events in the tables", len(runs), 2)
    c.eq("no event twice", [k for k, v in ids.items() if v > 1], [])
    per_run = collections.Counter(r["run"] for _, r in rows)
    c.eq(f"every event of both runs once ({dict(per_run)})", len(set(per_run.values())), 1)
finally:
    shutil.rmtree(work, ignore_errors=True)

c.done()
