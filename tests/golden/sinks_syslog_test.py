#!/usr/bin/python3
"""Syslog sink against local listeners: RFC 5424 over UDP (one event per datagram, MSG = the
JSONL line), CEF over TCP (RFC 6587 octet counting, one message per alert), and a unix datagram
socket with an event filter."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, Checker, pcap, SRC  # noqa: E402

c = Checker("sinks_syslog")
work = tempfile.mkdtemp(prefix="medmon-syslog-test-")
SITE = ["--site", os.path.join(SRC, "policies", "sites", "demo-site.yaml")]
DEMO = pcap("demo", "demo.pcap")
RFC5424 = re.compile(r"^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[(?:[^\]\\]|\\.)*\]) (.*)$", re.S)
SEV = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}


def collect_dgram(sock, out, done):
    sock.settimeout(0.2)
    while True:
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            if done.is_set():
                return
            continue
        out.append(data.decode())


def collect_tcp(server, out):
    conn, _ = server.accept()
    buf = b""
    while True:
        d = conn.recv(65536)
        if not d:
            break
        buf += d
    # RFC 6587 octet counting: LEN SP MSG
    while buf:
        sp = buf.index(b" ")
        n = int(buf[:sp])
        out.append(buf[sp + 1:sp + 1 + n].decode())
        buf = buf[sp + 1 + n:]


def run(extra, out):
    p = subprocess.run([MEDMON, "analyze", DEMO, *SITE, "--out", out, "-q", *extra],
                       capture_output=True, text=True, timeout=300)
    c.true(f"medmon {' '.join(extra)}: exit {p.returncode}: {p.stderr[-400:]}", p.returncode in (0, 1))
    return [l for l in open(out).read().splitlines() if l]


try:
    # UDP, JSON messages.
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    u.bind(("127.0.0.1", 0))
    got, done = [], threading.Event()
    t = threading.Thread(target=collect_dgram, args=(u, got, done), daemon=True)
    t.start()
    lines = run(["--syslog", f"udp://127.0.0.1:{u.getsockname()[1]},facility=local3", "--sensor-id", "icu-1"],
                os.path.join(work, "udp.jsonl"))
    done.set()
    t.join()
    u.close()
    c.eq("udp: one datagram per event", len(got), len(lines))
    for line, msg in zip(lines, got):
        m = RFC5424.match(msg)
        c.true(f"udp: RFC 5424 layout: {msg[:120]!r}", m is not None)
        if not m:
            break
        ev = json.loads(line)
        pri, ts, host, app, _pid, msgid, sd, body = m.groups()
        want_sev = SEV[ev["alert"]["severity"]] if ev["event_type"] == "alert" else 6
        c.eq("udp: PRI = local3 * 8 + severity", int(pri), 19 * 8 + want_sev)
        c.eq("udp: TIMESTAMP is the event time", ts, ev["ts"])
        c.eq("udp: HOSTNAME is the sensor id", host, "icu-1")
        c.eq("udp: APP-NAME", app, "medmon")
        c.eq("udp: MSGID is the event type", msgid, ev["event_type"])
        c.eq("udp: SD names the sensor", sd, '[medmon@32473 sensor="icu-1"]')
        c.eq("udp: MSG is the event line", body, line)

    # TCP, CEF: alerts only.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    frames = []
    srv.settimeout(60)
    t = threading.Thread(target=collect_tcp, args=(srv, frames), daemon=True)
    t.start()
    lines = run(["--sink", f"syslog=tcp://127.0.0.1:{srv.getsockname()[1]},format=cef"], os.path.join(work, "tcp.jsonl"))
    t.join(timeout=60)
    srv.close()
    alerts = [json.loads(l) for l in lines if '"event_type":"alert"' in l]
    c.true("tcp: the capture has alerts", len(alerts) > 3)
    c.eq("tcp: one CEF message per alert", len(frames), len(alerts))
    cef_sev = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}
    for a, msg in zip(alerts, frames):
        m = RFC5424.match(msg)
        c.true(f"tcp: RFC 5424 layout: {msg[:120]!r}", m is not None)
        if not m:
            break
        body = m.group(8)
        head = re.split(r"(?<!\\)\|", body)
        c.eq("tcp: CEF version/vendor/product", head[:3], ["CEF:0", "medmon", "medmon"])
        c.eq("tcp: CEF signature is the rule", head[4], a["alert"]["rule"])
        c.eq("tcp: CEF severity", int(head[6]), cef_sev[a["alert"]["severity"]])
        ext = head[7]
        c.true(f"tcp: CEF src/dst ({ext[:100]})", f"src={a['src_ip']} " in ext and f"dst={a['dst_ip']} " in ext)
        ids = ",".join(q["id"] for q in a["alert"]["mds2"]) or "-"
        c.true(f"tcp: CEF cs1 holds the MDS2 ids {ids}", f"cs1Label=mds2 cs1={ids}" in ext)

    # Unix datagram socket, only alerts and anomalies.
    path = os.path.join(work, "log.sock")
    x = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    x.bind(path)
    got, done = [], threading.Event()
    t = threading.Thread(target=collect_dgram, args=(x, got, done), daemon=True)
    t.start()
    lines = run(["--syslog", f"unix:{path},events=alert+anomaly"], os.path.join(work, "unix.jsonl"))
    done.set()
    t.join()
    x.close()
    want = [l for l in lines if json.loads(l)["event_type"] in ("alert", "anomaly")]
    c.eq("unix: filtered events, in order", [RFC5424.match(m).group(8) for m in got], want)

    # Bad sink settings are usage errors (exit 2) that name the option.
    p = subprocess.run([MEDMON, "analyze", DEMO, "--out", os.devnull, "--syslog", "ftp://x"], capture_output=True, text=True)
    c.eq("bad syslog URL: exit 2", p.returncode, 2)
    c.true(f"bad syslog URL: message ({p.stderr.strip()})", "udp://" in p.stderr)
finally:
    shutil.rmtree(work, ignore_errors=True)

c.done()
