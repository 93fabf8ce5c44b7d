#!/usr/bin/python3
"""`medmon report` and `medmon assets` keep no flow in memory: a SPAN port's day has millions of
flows, and the report sums them up per device, peer, port and application as it reads them (it
reads the file again for each pass). Memory for 120 000 flows is that of 6 000; the tables are
bounded (4096 rows per device, 1000 PHI findings per device, 4096 peers per chart) and the page
says so (`flows-capped`, `groups-capped`, `phi-capped`), while every count stays whole."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, Checker  # noqa: E402

C = Checker("report_memory")
work = tempfile.mkdtemp(prefix="medmon-report-memory-")
# ASan's quarantine keeps freed memory (each pass parses every flow again) up to 256 MiB: kept
# small, so that the comparison measures what medmon holds, with or without the sanitizer.
ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64")


def events(path, n):
    """One inventoried device, 10.0.0.1, and n flows of it to n public peers (port 80, HTTP);
    every tenth carried PHI in clear."""
    with open(path, "w") as f:
        f.write('{"ts":"2024-03-01T00:00:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.1","changes":["new"],'
                '"first_seen":"2024-03-01T00:00:00.000000Z","last_seen":"2024-03-01T00:00:00.000000Z","model":"unbound",'
                '"flows":1,"bytes":100}}\n')
        for i in range(n):
            t = "2024-03-01T%02d:%02d:%02d.000000Z" % (i // 3600 % 24, i // 60 % 60, i % 60)
            phi = ',"phi_cleartext":["PID-5"]' if i % 10 == 0 else ""
            f.write('{"ts":"%s","event_type":"flow","flow_id":"F%d","src_ip":"10.0.0.1","src_port":%d,'
                    '"dst_ip":"198.%d.%d.%d","dst_port":80,"proto":"tcp","community_id":"1:abcdefghijklmnopqrstuvwxyz0=",'
                    '"flow":{"start":"%s","end":"%s","pkts_toserver":5,"pkts_toclient":4,"bytes_toserver":400,'
                    '"bytes_toclient":1200,"payload_bytes_toserver":64,"payload_bytes_toclient":128,'
                    '"tcp_flags_toserver":"SAFP","tcp_flags_toclient":"SAFP","state":"closed","reason":"fin"},'
                    '"ndpi":{"protocol":"HTTP","category":"Web","guessed":false},"app":null%s}\n'
                    % (t, i, 1024 + i % 60000, 18 + (i >> 16) % 2, (i >> 8) & 255, i & 255, t, t, phi))


def run(args):
    """Exit code, peak RSS (MiB) and stderr of medmon."""
    err = os.path.join(work, "stderr")
    with open(err, "wb") as e:
        p = subprocess.Popen([MEDMON, *args], stdout=subprocess.DEVNULL, stderr=e, env=ENV)
        _, status, usage = os.wait4(p.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, open(err).read().strip()


def number(page, id_):
    m = re.search(r'id="%s">(\d+)<' % id_, page)
    return int(m.group(1)) if m else None


try:
    small, big = os.path.join(work, "small.jsonl"), os.path.join(work, "big.jsonl")
    events(small, 6000)
    events(big, 120000)
    rc, small_rss, err = run(["report", small, "-o", os.path.join(work, "small.html")])
    C.eq(f"report of 6 000 flows: exit 0 ({err})", rc, 0)
    rc, big_rss, err = run(["report", big, "-o", os.path.join(work, "big.html")])
    C.eq(f"report of 120 000 flows: exit 0 ({err})", rc, 0)
    C.true(f"report: 120 000 flows take the memory of 6 000 ({big_rss:.0f} MiB against {small_rss:.0f} MiB)",
           big_rss < small_rss + 16)
    # Under ASan (MEDMON_SANITIZED=1) RSS is the sanitizer's, not medmon's: checked in the Release run.
    if os.environ.get("MEDMON_SANITIZED") != "1":
        C.true(f"report of 120 000 flows: bounded ({big_rss:.0f} MiB)", big_rss < 48)
    page = open(os.path.join(work, "big.html")).read()
    C.eq("every flow counted", number(page, "count-flows"), 120000)
    C.true("the device's section counts every flow", 'data-device="10.0.0.1" data-verdict="NOT JUDGED" data-flows="120000"' in page)
    C.true("the device table counts every flow", '<td class="num">120000</td>' in page)
    rows = page.count('<tr class="flow-group"')
    C.eq("the flow table is bounded", rows, 4096)
    C.true("the page says flows are in no row", "115904 flows of this device are in no row above" in page)
    C.true("the summary says the tables are bounded", 'id="flows-capped"' in page)
    C.eq("PHI findings are bounded", page.count('<tr class="phi-row"'), 1000)
    C.true("the page says PHI flows are not listed", "11000 more flows carried PHI in clear" in page)
    C.true("the peers past the cap are one bar", "(other peers)" in page)
    small_page = open(os.path.join(work, "small.html")).read()
    C.eq("6 000 flows counted", number(small_page, "count-flows"), 6000)

    rc, small_rss, err = run(["assets", small])
    C.eq(f"assets of 6 000 flows: exit 0 ({err})", rc, 0)
    rc, big_rss, err = run(["assets", big])
    C.eq(f"assets of 120 000 flows: exit 0 ({err})", rc, 0)
    C.true(f"assets: 120 000 flows take the memory of 6 000 ({big_rss:.0f} MiB against {small_rss:.0f} MiB)",
           big_rss < small_rss + 16)
    out = subprocess.run([MEDMON, "assets", big], capture_output=True, text=True, env=ENV).stdout
    C.true("assets counts every flow", re.search(r"^10\.0\.0\.1 .* 120000$", out, re.M) is not None)
finally:
    shutil.rmtree(work, ignore_errors=True)
C.done()
