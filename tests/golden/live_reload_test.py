"""medmon live on a veth pair in a private network namespace: SIGHUP reloads the site policy
(flow verdicts and alerts follow the new file), a broken site file is refused with a log line
while the old policy stays and capture goes on. Needs root, ip(8) and tcpreplay."""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from golden import SRC, OUT, Checker, analyze, pcap  # noqa: E402
from live_netns import Live, Netns, tools_missing  # noqa: E402
from pcapwrite import ether, ipv4, udp, write_pcap  # noqa: E402


def write_tick(path, n=64):
    """n UDP datagrams (10.99.0.1:port -> 10.99.0.2:9, a port each): replayed after a scenario
    so that packet time moves on, in every worker, and the scenario's flows reach their (1 s)
    timeouts. With 64 distinct flows the fanout hash misses a worker with odds 2^-63."""
    a, b = "10.99.0.1", "10.99.0.2"
    mac_a, mac_b = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    frames = (ether(mac_b, mac_a, ipv4(a, b, 17, udp(a, b, 20000 + i, 9, b"tick", with_checksum=False), ident=i))
              for i in range(n))
    write_pcap(path, ((0, i, frame) for i, frame in enumerate(frames)))


def demo_flows(events):
    """Flow events of the demo scenario (not the tick), keyed by their 5-tuple."""
    return {(e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"], e["proto"]): e for e in events
            if e["event_type"] == "flow" and e["src_ip"] != "10.99.0.1"}


def alert_keys(events):
    return {(e["alert"]["rule"], e.get("src_ip"), e.get("dst_ip"), e.get("dst_port")) for e in events
            if e["event_type"] == "alert"}


def main():
    C = Checker("live_reload")
    why = tools_missing()
    if why:
        print(f"live_reload: {why}; skipped")
        return 0
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    shutil.copytree(os.path.join(SRC, "policies", "devices"), os.path.join(tmp, "devices"))
    os.makedirs(os.path.join(tmp, "sites"))
    site = os.path.join(tmp, "sites", "site.yaml")
    demo_site = open(os.path.join(SRC, "policies", "sites", "demo-site.yaml")).read()
    open(site, "w").write(demo_site)
    tick = os.path.join(tmp, "tick.pcap")
    write_tick(tick)
    # CI: afpacket with 2 workers. LIVE_METHOD=pcap (one worker) or LIVE_WORKERS=N for the others.
    method = os.environ.get("LIVE_METHOD", "afpacket")
    workers = 1 if method == "pcap" else int(os.environ.get("LIVE_WORKERS", "2"))
    cfg = os.path.join(tmp, "medmon.yaml")

    def write_cfg(bpf=None, udp_idle=1, stats=1, rotate=""):
        with open(cfg, "w") as f:
            f.write(f"""capture:
  interface: vb
  method: {method}
  workers: {workers}
  ring_size: 4194304
  block_size: 262144
""" + (f"  bpf: '{bpf}'\n" if bpf else "") + f"""flows:
  tcp_idle_timeout: 1
  tcp_closed_timeout: 0.5
  udp_idle_timeout: {udp_idle}
output:
  stats_interval: {stats}
{rotate}policy:
  site: {site}
""")
    write_cfg()
    ref = demo_flows(analyze(pcap("demo", "demo.pcap"), "--site", site, "--fail-on", "none"))
    ns = Netns("r")
    try:
        live = Live(ns, ["--config", cfg], os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr.txt"),
                    sockets=workers)

        def scenario(n_before, expect=None):
            """Replays the demo capture then a tick; returns the new events once all the demo
            conversations (or `expect` of them) have ended."""
            ns.replay(pcap("demo", "demo.pcap"))
            time.sleep(1.3)
            ns.replay(tick)
            n = len(ref) if expect is None else expect
            live.wait_for(lambda: len(demo_flows(live.events()[n_before:])) >= n, "the demo flows")
            time.sleep(1.2)  # alerts of the last flows are flushed with them; let one more flush pass
            return live.events()[n_before:]

        # 1. The demo site: the CT may talk HL7 to the RIS (modality -> his is allowed).
        ev1 = scenario(0)
        f1 = demo_flows(ev1)
        C.eq("phase 1: the conversations analyze finds in demo.pcap", sorted(f1), sorted(ref))
        hl7 = [k for k, e in f1.items() if e.get("app") == "hl7"]
        C.eq("phase 1: one HL7 flow", len(hl7), 1)
        hl7 = hl7[0] if hl7 else None
        v1 = {k: e.get("verdict") for k, e in f1.items()}
        C.eq("phase 1: verdicts as analyze gives with the same site", v1,
             {k: e.get("verdict") for k, e in ref.items()})
        C.true("phase 1: some alerts (the demo has undeclared traffic)", len(alert_keys(ev1)) > 0)
        C.eq("phase 1: the HL7 flow is declared", v1.get(hl7), "declared")
        C.true("phase 1: no zone alert on the HL7 flow",
               not any(k[0].startswith("zone") and k[2] == "10.10.3.30" for k in alert_keys(ev1)))

        # 2. Forbid modality -> his, SIGHUP: the same traffic now raises a zone alert. The CT is
        # renamed too: the asset inventory must report the new name of a device it already knows.
        open(site, "w").write(demo_site.replace("  - {from: modality, to: his}      # worklist\n", "")
                              .replace("{name: ct-1,", "{name: ct-1b,"))
        live.hup("policy " + site + " in force")
        n = len(live.events())
        ev2 = scenario(n)
        f2 = demo_flows(ev2)
        a2 = alert_keys(ev2)
        C.eq("phase 2: every demo conversation (none lost over the reload)", sorted(f2), sorted(ref))
        C.true(f"phase 2: the HL7 flow is no longer declared (got {f2.get(hl7, {}).get('verdict')})",
               hl7 in f2 and f2[hl7].get("verdict") != "declared")
        C.true(f"phase 2: an alert on the CT -> RIS HL7 flow ({sorted(a2)})",
               any(k[1] == "10.10.1.10" and k[2] == "10.10.3.30" and k[3] == 2575 for k in a2))
        C.true("phase 2: the alerts differ from phase 1", a2 != alert_keys(ev1))
        v2 = {k: e.get("verdict") for k, e in f2.items()}

        # 3. A broken site file: refused with a log line naming the file; the phase-2 policy stays.
        open(site, "w").write(demo_site.replace("zone_matrix:", "zone_matrix: [\n"))
        live.hup("reload rejected")
        err = live.stderr()
        rejected = [l for l in err.splitlines() if "reload rejected" in l]
        C.true(f"phase 3: the rejection names the site file ({rejected})", any(site in l for l in rejected))
        C.true(f"phase 3: the error has file:line ({err[-400:]})", (site + ":") in err)
        C.true("phase 3: medmon still runs", live.p.poll() is None)
        n = len(live.events())
        ev3 = scenario(n)
        f3 = demo_flows(ev3)
        v3 = {k: e.get("verdict") for k, e in f3.items()}
        C.eq("phase 3: every demo conversation", sorted(f3), sorted(ref))
        C.eq("phase 3: same verdicts as under the phase-2 policy", v3, v2)
        C.true("phase 3: the HL7 flow is still not declared", v3.get(hl7) != "declared")

        # 4. A reload back to the demo site brings the declared verdict back.
        open(site, "w").write(demo_site)
        live.hup("policy " + site + " in force")
        n = len(live.events())
        ev4 = scenario(n)
        C.eq("phase 4: verdicts as in phase 1", {k: e.get("verdict") for k, e in demo_flows(ev4).items()}, v1)

        # 5. capture.bpf changes apply on reload, on the open sockets: the workstation disappears.
        kept = sorted(k for k in ref if k[2] != "10.10.1.50")
        unfiltered = live.events()
        write_cfg("not host 10.10.1.50")
        live.hup("capture filter now 'not host 10.10.1.50'")
        n = len(live.events())
        scenario(n, len(kept))
        time.sleep(1.0)
        C.eq("phase 5: the filter drops the workstation's flows", sorted(demo_flows(live.events()[n:])), kept)
        C.eq("no stats event named a filter before it was set",
             [e["stats"]["filter"] for e in unfiltered if e["event_type"] == "stats" and "filter" in e["stats"]], [])
        # 6. A filter that does not compile is refused; the previous one stays.
        write_cfg("not hots 10.10.1.50")
        live.hup("capture.bpf rejected")
        C.true("phase 6: the rejection names the expression", "not hots" in live.stderr())
        n = len(live.events())
        scenario(n, len(kept))
        time.sleep(1.0)
        C.eq("phase 6: the previous filter still applies", sorted(demo_flows(live.events()[n:])), kept)

        # Until now every reload changed only what a reload applies: no "restart" warning.
        C.eq("phases 1-6: no setting said to wait for a restart",
             [l for l in live.stderr().splitlines() if "effect at restart" in l], [])
        # 7. Settings sized or opened at start are said to wait for a restart, each kind once.
        write_cfg("not host 10.10.1.50", udp_idle=2, stats=2, rotate="  rotate: {size: 100M}\n")
        live.hup("policy " + site + " in force (generation")
        time.sleep(0.5)
        said = [l for l in live.stderr().splitlines() if "effect at restart" in l]
        C.eq("phase 7: limits, stats interval and output said to need a restart",
             [any(w in l for l in said) for w in ("limits changed", "stats_interval changed", "rotation or sensor_id")],
             [True, True, True])

        rc = live.stop()
        C.eq("SIGTERM: exit status", rc, 0)
        lines = open(live.out_path).read().split("\n")
        C.eq("output ends with a newline", lines[-1], "")
        last = {}
        for e in live.events():
            if e["event_type"] == "stats":
                last[e["stats"].get("worker", 0)] = e["stats"]
        C.eq("a stats event from every worker", sorted(last), list(range(workers)) if workers > 1 else [0])
        C.true("each worker's final stats: no flow left open", all(s["flows_active"] == 0 for s in last.values()))
        C.eq("each worker's final stats name the filter in force (the refused one did not replace it)",
             sorted({s.get("filter") for s in last.values()}), ["not host 10.10.1.50"])
        # One asset inventory for all workers: every device is new once, and the policy in force
        # names and binds it (the CT is ct-1, model acme-ct).
        assets = [e["asset"] for e in live.events() if e["event_type"] == "asset"]
        new = [a["ip"] for a in assets if "new" in a["changes"]]
        C.true(f"asset events in live mode ({len(assets)})", len(assets) > 0)
        C.eq("each device reported new once across the workers", sorted(new), sorted(set(new)))
        ct = [a for a in assets if a["ip"] == "10.10.1.10"]
        C.true("the CT's asset events name it and its model",
               bool(ct) and all(a.get("device") in ("ct-1", "ct-1b") and a.get("model") == "acme-ct" for a in ct))
        C.true("the reload that renamed the CT is reported as a binding change",
               any(a.get("device") == "ct-1b" and "binding" in a["changes"] for a in ct))
        C.eq("the last reload named it ct-1 again", ct[-1].get("device") if ct else None, "ct-1")
        C.eq("assets.devices counted once over the workers' final stats",
             sum(s["counters"].get("assets.devices", 0) for s in last.values()), len(set(new)))
        os.makedirs(OUT, exist_ok=True)
        shutil.copy(live.out_path, os.path.join(OUT, "live_reload.jsonl"))
        shutil.copy(live.err_path, os.path.join(OUT, "live_reload.stderr"))
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)
    C.done()


if __name__ == "__main__":
    sys.exit(main())
