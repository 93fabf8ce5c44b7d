#!/usr/bin/python3
"""Peak memory is bounded by the flow cap, not by the number of flows offered.

bench/make-many-flows.py --kind syn streams N distinct, never-answered TCP flows straight into
`medmon analyze -` (no file on disk) with `flows.max_flows: CAP`. Every flow stays open, so the
table fills up and LRU eviction must hold it at CAP. Checked: exit 0, every flow is counted and
ends with a flow event, the peak number of active flows never exceeds CAP, and peak RSS stays
under the documented bound

    RSS <= 64 MiB + CAP x 512 B      (flow-table flows without payload; bench/README.md)

Scale: MEDMON_FLOWCAP_FLOWS (default 1 000 000) and MEDMON_FLOWCAP_CAP (default FLOWS / 10).
The full-size run in bench/README.md is FLOWS=10000000 CAP=1000000.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, SRC, Checker  # noqa: E402
import json  # noqa: E402

N = int(os.environ.get("MEDMON_FLOWCAP_FLOWS", "1000000"))
CAP = int(os.environ.get("MEDMON_FLOWCAP_CAP", str(max(1, N // 10))))
BASE, PER_FLOW = 64 << 20, 512
c = Checker("core_flowcap")

tmp = tempfile.mkdtemp(prefix="medmon-flowcap-")
cfg = os.path.join(tmp, "cap.yaml")
with open(cfg, "w") as f:
    f.write("flows:\n  max_flows: %d\n" % CAP)

gen = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "bench", "make-many-flows.py"), "--kind", "syn",
                        "--flows", str(N), "-"], stdout=subprocess.PIPE)
med = subprocess.Popen([MEDMON, "analyze", "-", "--config", cfg, "--out", "-", "--quiet"], stdin=gen.stdout,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
gen.stdout.close()  # medmon owns the read end now
flow_events = 0
tail = rest = b""
while True:
    chunk = med.stdout.read(1 << 20)
    if not chunk:
        break
    buf = rest + chunk
    cut = buf.rfind(b"\n") + 1  # count whole lines only: a match may straddle two reads
    flow_events += buf.count(b'"event_type":"flow"', 0, cut)
    rest = buf[cut:]
    tail = (tail + buf[:cut])[-(1 << 16):]
err = med.stderr.read().decode("utf-8", "replace")
_, status, ru = os.wait4(med.pid, 0)
med.returncode = os.waitstatus_to_exitcode(status)
gen.wait()
rss = ru.ru_maxrss * 1024  # Linux reports KiB
bound = BASE + CAP * PER_FLOW
print(f"core_flowcap: {N} flows offered, cap {CAP}: peak RSS {rss / 2**20:.1f} MiB, bound {bound / 2**20:.1f} MiB, "
      f"user {ru.ru_utime:.1f} s")
c.eq(f"exit code ({err.strip()[-300:]})", med.returncode, 0)
c.eq("generator finished", gen.returncode, 0)
lines = [l for l in tail.decode("utf-8", "replace").splitlines() if l.startswith("{")]
stats = json.loads(lines[-1]) if lines else {}
c.eq("last event is stats", stats.get("event_type"), "stats")
s = stats.get("stats", {})
ctr = s.get("counters", {})
c.eq("packets counted", s.get("packets"), N)
c.eq("flows created", s.get("flows"), N)
c.eq("one flow event per flow", flow_events, N)
peak = ctr.get("flows.peak_active")
c.true(f"peak active flows {peak} <= cap {CAP}", peak is not None and peak <= CAP)
c.true(f"flows were evicted at the cap ({ctr.get('flows.evicted')})", N <= CAP or ctr.get("flows.evicted", 0) > 0)
# Under ASan (MEDMON_SANITIZED=1) RSS is the sanitizer's, not medmon's: checked in the Release run.
if os.environ.get("MEDMON_SANITIZED") != "1":
    c.true(f"peak RSS {rss >> 20} MiB <= 64 MiB + {CAP} x {PER_FLOW} B = {bound >> 20} MiB", rss <= bound)
shutil.rmtree(tmp, ignore_errors=True)
c.done()
