#!/usr/bin/python3
"""ClickHouse sink, retries: an INSERT slower than the sink's `timeout` is not sent a second time
while the server still runs it (no event twice), and rows the server refuses for their data
(HTTP 400) are dropped and counted, not retried for ever in front of every later event. A server
that refuses the sink itself (HTTP 401 wrong password, 403 no rights, 404 no such table) is not
asked again: the sink says so, stops, and keeps the events in its spool, where a run with the
sink set right finds and delivers them; so is a server whose table does not fit the rows (a
schema error: no column, a column that takes no INSERT). Uses a
stand-in for ClickHouse's HTTP interface that runs requests side by side (INSERT with query_id,
system.processes, SELECT count() / SELECT seq by sensor, run and seq range)."""
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
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, Checker, pcap  # noqa: E402


class FakeClickHouse:
    """slow: seconds an INSERT takes before its rows are in. refuse(row): a row the server
    refuses (the whole INSERT holding it gets `refusal`, HTTP status and text, nothing of it
    goes in)."""

    def __init__(self, slow=0.0, refuse=None, status=None,
                 refusal=(400, "Code: 72, e.displayText() = DB::Exception: Cannot parse number")):
        self.slow, self.refuse, self.status = slow, refuse or (lambda row: False), status
        self.refusal = refusal
        self.rows, self.running, self.lock = [], collections.Counter(), threading.Lock()
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def reply(self, c, status, text):
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  500: "Internal Server Error"}[status]
        try:
            c.sendall(b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (status, reason.encode(), len(text))
                      + text.encode())
        except OSError:
            pass  # the client gave up waiting

    def handle(self, c):
        with c:
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
            params = urllib.parse.parse_qs(urllib.parse.urlparse(head.split(b" ")[1].decode()).query)
            q = params.get("query", [""])[0]
            words = q.split()
            with self.lock:
                self.requests += 1
            if self.status:
                return self.reply(c, self.status, "Code: 516, e.displayText() = DB::Exception: medmon: Authentication failed")
            if q.startswith("INSERT"):
                qid = params.get("query_id", [""])[0]
                with self.lock:
                    if qid and self.running[qid]:
                        return self.reply(c, 500, f"Code: 216, e.displayText() = DB::Exception: Query with id = {qid} is already running.")
                    self.running[qid] += 1
                try:
                    time.sleep(self.slow)
                    rows = [json.loads(l) for l in body.decode().splitlines() if l.strip()]
                    if any(self.refuse(r) for r in rows):
                        return self.reply(c, *self.refusal)
                    with self.lock:
                        self.rows += [(words[2], r) for r in rows]
                finally:
                    with self.lock:
                        self.running[qid] -= 1
                return self.reply(c, 200, "")
            if "system.processes" in q:
                prefix = re.search(r"LIKE '([^%']*)%'", q).group(1)
                with self.lock:
                    n = sum(v for k, v in self.running.items() if k.startswith(prefix))
                return self.reply(c, 200, f"{n}\n")
            run, lo, hi = re.search(r"run = '(\w+)' AND seq BETWEEN (\d+) AND (\d+)", q).groups()
            with self.lock:
                seqs = [r["seq"] for t, r in self.rows if t == words[3] and r["run"] == run and int(lo) <= int(r["seq"]) <= int(hi)]
            self.reply(c, 200, f"{len(seqs)}\n" if q.startswith("SELECT count()") else "".join(s + "\n" for s in seqs))

    def close(self):
        """Stops taking requests; waits for the INSERTs still running (the sensor may have gone)."""
        self.sock.close()
        for _ in range(200):
            with self.lock:
                if not any(self.running.values()):
                    return
            time.sleep(0.05)


c = Checker("sinks_clickhouse_retry")
work = tempfile.mkdtemp(prefix="medmon-ch-retry-")
try:
    events = [json.loads(l) for l in subprocess.run([MEDMON, "analyze", pcap("demo", "demo.pcap"), "--out", "-", "-q"],
                                                    capture_output=True, text=True, timeout=120).stdout.splitlines()]
    flows = [e for e in events if e["event_type"] == "flow"]

    def sensor(server, sink_keys):
        return subprocess.run([MEDMON, "analyze", pcap("demo", "demo.pcap"), "--out", os.devnull, "--sensor-id", "s1",
                               "--sink", f"clickhouse=http://127.0.0.1:{server.port}/?db=medmon,spool={work}/spool,{sink_keys}"],
                              capture_output=True, text=True, timeout=300)

    # Every INSERT takes 2.5 s, the sink waits 1 s for an answer: it must wait for the server
    # to finish the one it sent, then find the rows in, rather than send them again.
    slow = FakeClickHouse(slow=2.5)
    p = sensor(slow, "events=flow,timeout=1,drain_timeout=60")
    slow.close()
    c.eq(f"slow: exit ({p.stderr.strip()})", p.returncode, 0)
    ids = collections.Counter((r["run"], r["seq"]) for _, r in slow.rows)
    c.eq("slow: no event twice", [k for k, v in ids.items() if v > 1], [])
    c.eq("slow: every flow in", len(ids), len(flows))
    c.true(f"slow: nothing left in the spool ({p.stderr.strip()})", "for the next run" not in p.stderr)

    # UDP flows and the stats event have a value the server refuses: they are dropped, every
    # other event (TCP flows in the same INSERT too) goes in once, and nothing waits in the spool.
    shutil.rmtree(os.path.join(work, "spool"), ignore_errors=True)
    picky = FakeClickHouse(refuse=lambda r: r.get("proto") == "udp" or r.get("event_type") == "stats")
    p = sensor(picky, "timeout=1,drain_timeout=10")
    picky.close()
    refused = [e for e in events if e.get("proto") == "udp" or e["event_type"] == "stats"]
    c.eq(f"refused: exit ({p.stderr.strip()})", p.returncode, 0)
    c.true("refused: some events refused", 0 < len(refused) < len(events))
    ids = collections.Counter((r["run"], r["seq"]) for _, r in picky.rows)
    c.eq("refused: no event twice", [k for k, v in ids.items() if v > 1], [])
    c.eq("refused: every other event in", len(ids), len(events) - len(refused))
    c.eq("refused: no refused event in", [r for _, r in picky.rows if r.get("proto") == "udp" or r["event_type"] == "stats"], [])
    c.true(f"refused: told on stderr ({p.stderr.strip()})", "refused by the server and dropped" in p.stderr)
    c.true(f"refused: counted as dropped ({p.stderr.strip()})", f"{len(refused)} dropped" in p.stderr)
    c.true(f"refused: nothing left in the spool ({p.stderr.strip()})", "for the next run" not in p.stderr)

    # Older servers answer bad data with HTTP 500 and the exception's code: those codes that
    # mean the row itself is bad are dropped as a 400 is, not retried until the drain timeout.
    for code, text in ((25, "Cannot parse escape sequence"), (131, "String size is too large"),
                       (349, "Cannot convert NULL value to non-Nullable type")):
        shutil.rmtree(os.path.join(work, "spool"), ignore_errors=True)
        picky = FakeClickHouse(refuse=lambda r: r.get("event_type") == "stats",
                               refusal=(500, f"Code: {code}, e.displayText() = DB::Exception: {text}"))
        start = time.monotonic()
        p = sensor(picky, "timeout=1,drain_timeout=8")
        took = time.monotonic() - start
        picky.close()
        stats = [e for e in events if e["event_type"] == "stats"]
        ids = collections.Counter((r["run"], r["seq"]) for _, r in picky.rows)
        c.eq(f"code {code}: exit ({p.stderr.strip()})", p.returncode, 0)
        c.true(f"code {code}: no wait for the drain timeout ({took:.1f} s)", took < 6)
        c.eq(f"code {code}: every other event in", len(ids), len(events) - len(stats))
        c.true(f"code {code}: counted as dropped ({p.stderr.strip()})", f"{len(stats)} dropped" in p.stderr)
        c.true(f"code {code}: nothing left in the spool ({p.stderr.strip()})", "for the next run" not in p.stderr)

    # The server refuses the sink itself: asked once per status, not again and again until the
    # drain timeout; every event waits in the spool, and the run after the fix delivers them.
    for status in (401, 403, 404):
        shutil.rmtree(os.path.join(work, "spool"), ignore_errors=True)
        locked = FakeClickHouse(status=status)
        start = time.monotonic()
        p = sensor(locked, "timeout=1,drain_timeout=8")
        took = time.monotonic() - start
        locked.close()
        c.eq(f"{status}: exit ({p.stderr.strip()})", p.returncode, 0)
        c.eq(f"{status}: one request, not retried ({p.stderr.strip()})", locked.requests, 1)
        c.true(f"{status}: no wait for the drain timeout ({took:.1f} s)", took < 6)
        c.true(f"{status}: told on stderr ({p.stderr.strip()})",
               f"HTTP {status}" in p.stderr and "refuses the sink itself" in p.stderr and "not retried" in p.stderr)
        c.true(f"{status}: said stopped in the final counts ({p.stderr.strip()})", "stopped, the server refused the sink" in p.stderr)
        c.true(f"{status}: every event kept in the spool ({p.stderr.strip()})",
               f"0 delivered, {len(events)} spooled, 0 dropped" in p.stderr and "for the next run" in p.stderr)
    # A table that does not fit the rows (a schema error, HTTP 400 or 500 with its code) refuses
    # every INSERT whatever its rows: the sink stops and keeps them, it does not drop them all.
    for status, text in ((400, "Code: 44. DB::Exception: Cannot insert column alert_mds2, because it is MATERIALIZED column. (ILLEGAL_COLUMN)"),
                         (500, "Code: 16, e.displayText() = DB::Exception: There is no column with name seq in table medmon.flow")):
        shutil.rmtree(os.path.join(work, "spool"), ignore_errors=True)
        schema = FakeClickHouse(refuse=lambda r: True, refusal=(status, text))
        p = sensor(schema, "timeout=1,drain_timeout=8")
        schema.close()
        c.eq(f"schema {status}: exit ({p.stderr.strip()})", p.returncode, 0)
        c.eq(f"schema {status}: one request, not split nor retried ({p.stderr.strip()})", schema.requests, 1)
        c.true(f"schema {status}: stopped ({p.stderr.strip()})", "stopped, the server refused the sink" in p.stderr)
        c.true(f"schema {status}: every event kept in the spool, none dropped ({p.stderr.strip()})",
               f"0 delivered, {len(events)} spooled, 0 dropped" in p.stderr and "for the next run" in p.stderr)
    fixed = FakeClickHouse()
    p = subprocess.run([MEDMON, "analyze", pcap("core", "udp_icmp.pcap"), "--out", os.devnull, "--sensor-id", "s1",
                        "--sink", f"clickhouse=http://127.0.0.1:{fixed.port}/?db=medmon,spool={work}/spool,timeout=1"],
                       capture_output=True, text=True, timeout=300)
    fixed.close()
    ids = collections.Counter((r["run"], r["seq"]) for _, r in fixed.rows)
    runs = collections.Counter(r["run"] for _, r in fixed.rows)
    c.eq(f"after the fix: exit ({p.stderr.strip()})", p.returncode, 0)
    c.eq("after the fix: no event twice", [k for k, v in ids.items() if v > 1], [])
    c.eq("after the fix: the refused run's events delivered from the spool", sorted(runs.values())[-1], len(events))
finally:
    shutil.rmtree(work, ignore_errors=True)

c.done()
