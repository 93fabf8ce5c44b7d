#!/usr/bin/python3
"""ClickHouse sink against Debian's clickhouse-server (started here on loopback, in a temporary
directory, as the current user): several sensors at once give exactly one row per event in the
table of its type; a server killed mid-delivery and restarted loses nothing and duplicates
nothing; events left in the spool when a sensor exits with the server down are delivered by its
next run. Skips (exit 0, with a message) only when clickhouse-server is not installed."""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sinks"))
from golden import MEDMON, Checker, pcap, SRC  # noqa: E402
import clickhouse_server  # noqa: E402

if not clickhouse_server.installed():
    print("sinks_clickhouse: SKIPPED: clickhouse-server is not installed (scripts/install-deps.sh --test installs it)")
    sys.exit(0)

c = Checker("sinks_clickhouse")
TYPES = ["flow", "alert", "asset", "anomaly", "stats", "dicom", "hl7", "astm", "poct1", "sdc", "proprietary", "other"]
SENSORS = {
    "site-a-demo": [pcap("demo", "demo.pcap"), "--site", os.path.join(SRC, "policies", "sites", "demo-site.yaml")],
    "site-b-hl7": [pcap("hl7", "mllp-mixed.pcap"), pcap("hl7", "http.pcap")],
    "site-c-dicom": [pcap("dicom", "move.pcap"), pcap("dicom", "store-pdu4k.pcap"), pcap("dicom", "hostile.pcap")],
}

work = tempfile.mkdtemp(prefix="medmon-ch-test-")
ch = clickhouse_server.ClickHouse(os.path.join(work, "server"))


def start_sensor(sensor, args, out, extra=()):
    sink = f"clickhouse={ch.url}?db=medmon" + "".join("," + e for e in extra)
    cmd = [MEDMON, "analyze", *args, "--out", out, "-q", "--sensor-id", sensor, "--sink", sink]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def events_by_type(paths):
    n = collections.Counter()
    for p in paths:
        for line in open(p):
            if line.strip():
                n[json.loads(line)["event_type"]] += 1
    return n


def rows_by_type(sensor):
    n = collections.Counter()
    for t in TYPES:
        k = int(ch.query(f"SELECT count() FROM medmon.{t} WHERE sensor_id = '{sensor}'"))
        if k:
            n[t if t != "other" else "?"] += k
    return n


def duplicates():
    d = 0
    for t in TYPES:
        d += int(ch.query(f"SELECT count() - uniqExact(sensor_id, run, seq) FROM medmon.{t}"))
    return d


def wait_all(procs, what):
    errs = {}
    for name, p in procs.items():
        try:
            out, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        c.true(f"{what}: sensor {name} exit {p.returncode} (0/1 expected): {err[-500:]}", p.returncode in (0, 1))
        errs[name] = err
    return errs


try:
    ch.start()
    ch.run_script(os.path.join(SRC, "deploy", "clickhouse", "schema.sql"))

    # 1. Three sensors at once.
    procs, outs = {}, {}
    for s, args in SENSORS.items():
        outs[s] = [os.path.join(work, s + ".jsonl")]
        procs[s] = start_sensor(s, args, outs[s][0])
    wait_all(procs, "parallel")
    total_events = 0
    for s in SENSORS:
        want = events_by_type(outs[s])
        total_events += sum(want.values())
        c.true(f"{s}: has events", sum(want.values()) > 5)
        c.eq(f"{s}: rows per table == events per type", dict(rows_by_type(s)), dict(want))
    c.eq("no duplicate (sensor_id, run, seq)", duplicates(), 0)
    # A replay's own output does not depend on the sink: delivery counters follow the server's
    # timing, so analyze keeps them out of its stats event; the file is the same as without a sink.
    stats = [json.loads(l) for l in open(outs["site-a-demo"][0]) if '"event_type":"stats"' in l]
    c.true("analyze: stats event has no sink.clickhouse.* counters",
           not any(k.startswith("sink.clickhouse.") for k in stats[-1]["stats"]["counters"]))
    plain = os.path.join(work, "site-a-demo-nosink.jsonl")
    p = subprocess.run([MEDMON, "analyze", *SENSORS["site-a-demo"], "--out", plain, "-q"], capture_output=True, text=True)
    c.true(f"analyze without sink: exit {p.returncode}", p.returncode in (0, 1))
    c.true("analyze: output with the ClickHouse sink is byte-identical to the output without it",
           open(outs["site-a-demo"][0], "rb").read() == open(plain, "rb").read())
    # Fleet queries from docs/sinks.md run on this server version.
    undeclared = ch.query("SELECT sensor_id, alert_device, count() FROM medmon.alert "
                          "WHERE alert_rule = 'flow.undeclared' AND alert_evidence_model = 'acme-ct' "
                          "GROUP BY sensor_id, alert_device")
    c.true(f"fleet query: undeclared flows of acme-ct found ({undeclared!r})", "site-a-demo\tct-1" in undeclared)
    flows = ch.query("SELECT count() FROM medmon.flow AS f ANY INNER JOIN "
                     "(SELECT sensor_id, asset_device AS src_device, anyLast(asset_model) AS model FROM medmon.asset "
                     "WHERE asset_model != '' GROUP BY sensor_id, src_device) USING (sensor_id, src_device) "
                     "WHERE verdict = 'undeclared' AND model = 'acme-ct'")
    c.true(f"fleet query: undeclared flow events joined to the asset model ({flows.strip()})", int(flows) > 0)
    phi = ch.query("SELECT sensor_id, if(src_device != '', src_device, src_ip) AS device, arrayJoin(phi_cleartext) AS field, "
                   "count() FROM medmon.flow WHERE notEmpty(phi_cleartext) GROUP BY sensor_id, device, field")
    c.true(f"fleet query: cleartext PHI by device ({phi[:200]!r})", "PatientName" in phi and "site-c-dicom" in phi)

    # QinQ: both tags have a column.
    qinq_out = os.path.join(work, "qinq.jsonl")
    wait_all({"qinq": start_sensor("qinq", [pcap("core", "vlan_qinq.pcap")], qinq_out)}, "qinq")
    tags = ch.query("SELECT DISTINCT vlan, vlan_inner FROM medmon.flow WHERE sensor_id = 'qinq'").strip()
    c.eq("QinQ flows: vlan and vlan_inner columns", tags, "100\t30")

    # 2. The server is killed while the sensors deliver (small batches: many INSERTs), then
    # restarted: every event once.
    procs, outs2 = {}, {}
    for s, args in SENSORS.items():
        sid = s + "-restart"
        outs2[sid] = [os.path.join(work, sid + ".jsonl")]
        procs[sid] = start_sensor(sid, args, outs2[sid][0], ["batch=2", "flush_interval=0.01", "drain_timeout=120"])
    # Kill as soon as the first rows are in: the rest of the deliveries are in flight or queued.
    deadline = time.time() + 60
    while time.time() < deadline:
        if int(ch.query("SELECT count() FROM medmon.flow WHERE sensor_id LIKE '%-restart'")) > 0:
            break
        time.sleep(0.005)
    ch.kill()
    time.sleep(1.5)
    ch.start()
    errs = wait_all(procs, "restart")
    c.true("restart: the outage was seen mid-delivery (a sensor retried)", any("retrying" in e for e in errs.values()))
    for sid in outs2:
        c.eq(f"{sid}: rows == events after a server kill and restart", dict(rows_by_type(sid)), dict(events_by_type(outs2[sid])))
    c.eq("no duplicate after the restart", duplicates(), 0)

    # 3. The server is down for the whole run: the sensor gives up after its drain timeout and
    # leaves the events in its spool; its next run (server up) delivers them first.
    ch.stop()
    spool = os.path.join(work, "spool")
    sid = "site-d-spool"
    first = os.path.join(work, "spool-1.jsonl")
    p = start_sensor(sid, SENSORS["site-a-demo"], first, ["drain_timeout=0.5", "timeout=0.5", "spool=" + spool])
    _, err = p.communicate(timeout=120)
    c.true(f"server down: sensor says where the events wait ({err.strip()[-300:]!r})", spool in err)
    c.true("server down: spool holds files", any(f.endswith(".spool") for f in os.listdir(spool)))
    ch.start()
    second = os.path.join(work, "spool-2.jsonl")
    p = start_sensor(sid, SENSORS["site-b-hl7"], second, ["spool=" + spool])
    _, err = p.communicate(timeout=120)
    c.eq(f"next run: rows == events of both runs ({err.strip()[-300:]})", dict(rows_by_type(sid)),
         dict(events_by_type([first, second])))
    c.eq("next run: no duplicate", duplicates(), 0)
    c.eq("next run: spool emptied", [f for f in os.listdir(spool) if f.endswith(".spool")], [])
except Exception as e:  # report, not crash: the server log helps
    c.true(f"unexpected error: {e!r}; server log: {ch.log_tail()}", False)
finally:
    ch.cleanup()
    shutil.rmtree(work, ignore_errors=True)

c.done()
