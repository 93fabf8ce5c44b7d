#!/usr/bin/python3
"""Sinks of `medmon live` as a service runs them: with --user, the spool directory medmon creates
belongs to the user it drops to and takes every event while the receiver is down; a second
process on that spool directory is refused (exit 2); the systemd unit leaves the drain time to
finish before it kills. The live part needs root, ip(8) and tcpreplay."""
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, SRC, Checker, pcap  # noqa: E402
from live_netns import Live, Netns, tools_missing  # noqa: E402

DEFAULT_DRAIN = 30  # seconds, drain_timeout's default (docs/sinks.md)


def unit_stop_timeout(C):
    unit = open(os.path.join(SRC, "deploy", "systemd", "medmon.service")).read()
    m = re.search(r"^TimeoutStopSec=(\d+)s?$", unit, re.M)
    C.true("medmon.service sets TimeoutStopSec", m is not None)
    if m:
        # The final flows, the drain and writing what is left to the spools must end before
        # systemd sends SIGKILL.
        C.true(f"TimeoutStopSec={m.group(1)} leaves 15 s beyond the default drain_timeout ({DEFAULT_DRAIN} s)",
               int(m.group(1)) >= DEFAULT_DRAIN + 15)


def spooled_records(d):
    n = 0
    for f in glob.glob(os.path.join(d, "*.spool")):
        n += sum(1 for line in open(f, errors="replace") if line.endswith("\n"))
    return n


def user_spool(C):
    nobody = pwd.getpwnam("nobody")
    tmp = tempfile.mkdtemp(prefix="mmsinks-")
    os.chmod(tmp, 0o755)  # the dropped process reaches its spool directory through it
    spool = os.path.join(tmp, "spool")
    os.mkdir(spool)
    os.chown(spool, nobody.pw_uid, nobody.pw_gid)
    ns = Netns("s")
    try:
        out = os.path.join(tmp, "events.jsonl")
        # Nothing listens on port 1: the receiver is down for the whole run.
        sink = "clickhouse=http://127.0.0.1:1/?db=medmon,drain_timeout=1,flush_interval=0.1"
        live = Live(ns, ["-i", "vb", "--user", "nobody", "--spool-dir", spool, "--sink", sink], out,
                    os.path.join(tmp, "stderr.txt"))
        sub = os.path.join(spool, "clickhouse")
        C.true("the sink's spool directory exists", os.path.isdir(sub))
        if os.path.isdir(sub):
            C.eq("the sink's spool directory belongs to the user medmon runs as", os.stat(sub).st_uid, nobody.pw_uid)
        ns.replay(pcap("demo", "demo.pcap"))
        # A second process on the same spool directory: refused before it starts.
        p = subprocess.run([MEDMON, "analyze", pcap("demo", "demo.pcap"), "--out", os.devnull, "-q", "--sink",
                            f"clickhouse=http://127.0.0.1:1/?db=medmon,drain_timeout=0,spool={sub}"],
                           capture_output=True, text=True, timeout=120)
        C.eq("a second process on the spool directory: exit status", p.returncode, 2)
        C.true(f"... says the directory is in use ({p.stderr.strip()[-200:]})", "in use by another medmon process" in p.stderr)
        time.sleep(1.5)  # the sink tries, fails, and spools its queue
        rc = live.stop(signal.SIGTERM)
        err = live.stderr() if not live.errf.closed else open(live.err_path).read()
        C.eq("exit status", rc, 0)
        C.true(f"no permission error ({err.strip()[-300:]})", "Permission denied" not in err)
        C.true("nothing dropped", not re.search(r"[1-9]\d* dropped", err))
        events = live.events()
        C.true(f"events were written ({len(events)})", len(events) > 0)
        C.eq("every event waits in the spool", spooled_records(sub), len(events))
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    C = Checker("sinks_live")
    unit_stop_timeout(C)
    why = tools_missing()
    if why:
        print(f"sinks_live: {why}; live part skipped")
    else:
        user_spool(C)
    C.done()


if __name__ == "__main__":
    sys.exit(main())
