#!/usr/bin/python3
"""analyze --report reads this run's events back from the disk, not from memory, whatever the
events go to: a file of its own, standard output appended to a file that holds earlier runs'
lines (`--out /dev/stdout >> file`, `--out - >> file`), a pipe or /dev/null. Memory then stays
that of a run whose report reads its --out file (a capture of 24/7 size would otherwise keep all
its events in memory until the end), and the report is the same in every case.

medmon report keeps in memory only the events the report reads (flows, alerts, assets, the last
stats): the protocol events of a long capture (hl7, dicom, dhcp, anomaly), millions of them, are
checked and counted but not kept."""
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, Checker  # noqa: E402
from pcapwrite import ether, ipv4, pcap_header, pcap_record, udp  # noqa: E402

C = Checker("cli_report_readback")
work = tempfile.mkdtemp(prefix="medmon-report-readback-")
N = 100000  # DHCP DISCOVERs: as many `dhcp` events (~30 MiB), which the report itself keeps none of


def capture(path):
    mac = bytes.fromhex("020000000007")
    msg = struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, 0, 0, 0, b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4)
    msg += mac.ljust(16, b"\0") + b"\0" * 192 + b"\x63\x82\x53\x63" + bytes([53, 1, 1, 12, 8]) + b"devhost1" + b"\xff"
    frame = ether(b"\xff" * 6, mac, ipv4("0.0.0.0", "255.255.255.255", 17,
                                         udp("0.0.0.0", "255.255.255.255", 68, 67, msg, with_checksum=False)))
    xid_at = 14 + 20 + 8 + 4
    with open(path, "wb") as f:
        f.write(pcap_header())
        for i in range(N):
            fr = frame[:xid_at] + struct.pack("!I", i) + frame[xid_at + 4:]
            f.write(pcap_record(1700000000 + i // 1000, (i % 1000) * 1000, fr))


def run(args, stdout):
    """Exit code, peak RSS (MiB) and stderr of medmon."""
    err = os.path.join(work, "stderr")
    with open(err, "wb") as e:
        p = subprocess.Popen([MEDMON, *args], stdout=stdout, stderr=e)
        _, status, usage = os.wait4(p.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, open(err).read().strip()


def digest(path, skip=0):
    """SHA-256 of a file from byte `skip` on, read in pieces: this process stays small, since a
    child's peak RSS (ru_maxrss) starts from its parent's at the fork."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(skip)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def report_of(name):
    return open(os.path.join(work, name)).read().replace(name, "r.html")


try:
    pcap = os.path.join(work, "dhcp-many.pcap")
    capture(pcap)
    args = lambda rep: ["analyze", pcap, "-q", "--fail-on", "none", "--report", os.path.join(work, rep)]  # noqa: E731
    events = os.path.join(work, "ev.jsonl")
    rc, base_rss, err = run(args("r.html") + ["-o", events], subprocess.DEVNULL)
    C.eq(f"--out FILE --report: exit 0 ({err})", rc, 0)
    # The report reading its --out file by name says so; the others say "analyze".
    want = report_of("r.html").replace(events, "analyze")
    earlier = b'{"ts":"2020-01-01T00:00:00.000000Z","event_type":"flow","flow_id":"old","src_ip":"10.99.99.99"}\n'
    for out in ("/dev/stdout", "-"):
        appended = os.path.join(work, "append.jsonl")
        with open(appended, "wb") as f:
            f.write(earlier)
        with open(appended, "ab") as f:
            rc, rss, err = run(args("a.html") + ["-o", out], f)
        C.eq(f"--out {out} >> file --report: exit 0 ({err})", rc, 0)
        C.true(f"--out {out} >> file --report: memory as with --out FILE ({rss:.0f} MiB against {base_rss:.0f} MiB)",
               rss < base_rss + 12)
        C.true(f"--out {out} >> file: the earlier lines kept, this run's after them",
               open(appended, "rb").read(len(earlier)) == earlier and digest(appended, len(earlier)) == digest(events))
        C.eq(f"--out {out} >> file --report: the report of this run's events", report_of("a.html").replace("a.html", "r.html"), want)
    # Standard error into the same file (`>> log 2>&1`): medmon's messages sit between the events
    # there, so the events are spooled instead; a sink that cannot deliver makes such messages.
    for out in ("/dev/stdout", "-"):
        both = os.path.join(work, "both.jsonl")
        with open(both, "wb") as f:
            f.write(earlier)
        with open(both, "ab") as f:
            p = subprocess.Popen([MEDMON, *args("b.html"), "-o", out, "--sink", "syslog=tcp://127.0.0.1:1,drain_timeout=0.3"],
                                 stdout=f, stderr=f)
            _, status, _ = os.wait4(p.pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        C.eq(f"--out {out} >> file 2>&1 --report: exit 0", rc, 0)
        # grep, not a read here: this process stays small (see digest)
        C.true(f"--out {out} >> file 2>&1: medmon's messages are in the file",
               subprocess.run(["grep", "-q", "medmon:", both]).returncode == 0)
        C.eq(f"--out {out} >> file 2>&1 --report: the report of this run's events",
             report_of("b.html").replace("b.html", "r.html"), want)
    # A pipe cannot be read back; /dev/null holds nothing: the events are spooled to a file.
    p = subprocess.Popen([MEDMON, *args("p.html"), "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    piped = hashlib.sha256()
    for block in iter(lambda: p.stdout.read(1 << 16), b""):
        piped.update(block)
    _, status, usage = os.wait4(p.pid, 0)
    C.eq("--out - | reader --report: exit 0", os.waitstatus_to_exitcode(status), 0)
    C.true(f"--out - | reader --report: memory as with --out FILE ({usage.ru_maxrss / 1024:.0f} MiB against {base_rss:.0f} MiB)",
           usage.ru_maxrss / 1024 < base_rss + 12)
    C.true("--out - | reader: the events", piped.hexdigest() == digest(events))
    C.eq("--out - | reader --report: the report", report_of("p.html").replace("p.html", "r.html"), want)
    rc, rss, err = run(args("n.html") + ["-o", os.devnull], subprocess.DEVNULL)
    C.eq(f"--out /dev/null --report: exit 0 ({err})", rc, 0)
    C.true(f"--out /dev/null --report: memory as with --out FILE ({rss:.0f} MiB against {base_rss:.0f} MiB)",
           rss < base_rss + 12)
    C.eq("--out /dev/null --report: the report", report_of("n.html").replace("n.html", "r.html"), want)
    # A spool that cannot be made is found before the run, as a report file that cannot be written.
    env = dict(os.environ, TMPDIR=os.path.join(work, "missing"))
    p = subprocess.run([MEDMON, "analyze", pcap, "-q", "--fail-on", "none", "--report", os.path.join(work, "m.html"),
                        "-o", os.devnull], env=env, capture_output=True, text=True, timeout=300)
    C.eq(f"no spool directory: exit 3 before the run ({p.stderr.strip()})", p.returncode, 3)
    C.true(f"no spool directory: says why ({p.stderr.strip()})", "--report: cannot create" in p.stderr)
    # 50 000 hl7 events and one flow: the report's memory is that of the flow, not of the messages.
    hl7 = os.path.join(work, "hl7.jsonl")
    with open(hl7, "w") as f:
        for i in range(50000):
            f.write('{"ts":"2024-03-01T12:%02d:%02d.000000Z","event_type":"hl7","flow_id":"F1","src_ip":"10.1.1.1",'
                    '"src_port":40000,"dst_ip":"10.1.1.2","dst_port":2575,"proto":"tcp","hl7":{"kind":"message",'
                    '"transport":"mllp","direction":"to_server","offset":%d,"sending_application":"ADT1","message_type":"ADT",'
                    '"trigger_event":"A01","control_id":"MSG%09d","segments":["MSH","EVN","PID","NK1","PV1","OBX","AL1"],'
                    '"phi_fields":["PID-3","PID-5","PID-7","PID-11","PID-13","PID-18","PID-19","NK1-2","NK1-5"],'
                    '"patient":{"id":"phi:d7fdbb364251533c","name":"phi:6ee580d9753902c0"}}}\n' % (i // 60 % 60, i % 60, i, i))
        f.write('{"ts":"2024-03-01T13:00:00.000000Z","event_type":"flow","flow_id":"F1","src_ip":"10.1.1.1","src_port":40000,'
                '"dst_ip":"10.1.1.2","dst_port":2575,"proto":"tcp","flow":{"start":"2024-03-01T12:00:00.000000Z",'
                '"end":"2024-03-01T13:00:00.000000Z","bytes_toserver":100,"bytes_toclient":10},"app":"hl7"}\n')
    rc, rss, err = run(["report", hl7, "-o", os.path.join(work, "hl7.html")], subprocess.DEVNULL)
    C.eq(f"report of 50 000 hl7 events: exit 0 ({err})", rc, 0)
    # Under ASan (MEDMON_SANITIZED=1) RSS is the sanitizer's, not medmon's: checked in the Release run.
    if os.environ.get("MEDMON_SANITIZED") != "1":
        C.true(f"report of 50 000 hl7 events: the messages are not kept ({rss:.0f} MiB)", rss < 48)
    page = open(os.path.join(work, "hl7.html")).read()
    C.true("report of 50 000 hl7 events: every line read", "50001 events read (0 malformed lines skipped)" in page)
    C.true("report of 50 000 hl7 events: the traffic's times from them too",
           "Traffic from 2024-03-01T12:00:00.000000Z to 2024-03-01T13:00:00.000000Z" in page)
finally:
    shutil.rmtree(work, ignore_errors=True)
C.done()
