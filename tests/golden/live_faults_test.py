"""medmon live when the capture does not go as planned (veth pair in a private network namespace):
a reload that removes the capture filter takes it off the open sockets. Needs root, ip(8) and
tcpreplay."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, pcap  # noqa: E402
from live_netns import Live, Netns, tools_missing  # noqa: E402


def flows(events):
    return [e for e in events if e["event_type"] == "flow"]


def final_stats(events):
    """The last stats event of each worker."""
    last = {}
    for e in events:
        if e["event_type"] == "stats":
            last[e["stats"].get("worker", 0)] = e["stats"]
    return last


def filter_removed(C, method, workers):
    """capture.bpf taken out of the config file, then SIGHUP: the sockets take every frame again,
    and the stats say no filter."""
    tag = f"filter removed on reload, {method}, {workers} worker(s)"
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("b")
    try:
        cfg = os.path.join(tmp, "medmon.yaml")

        def write_cfg(bpf):
            with open(cfg, "w") as f:
                f.write(f"capture:\n  interface: vb\n  method: {method}\n  workers: {workers}\n"
                        "  ring_size: 4194304\n  block_size: 262144\n" + (f"  bpf: '{bpf}'\n" if bpf else ""))
        write_cfg("not host 10.10.1.50")
        live = Live(ns, ["--config", cfg], os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr.txt"),
                    sockets=workers)
        write_cfg(None)
        live.hup("capture filter now ''")
        ns.replay(pcap("demo", "demo.pcap"))
        time.sleep(0.6)
        rc = live.stop(signal.SIGTERM)
        err = open(live.err_path).read()
        C.eq(f"{tag}: exit status", rc, 0)
        C.true(f"{tag}: no error ({err.strip()[-300:]})", "rejected" not in err and "cannot" not in err)
        seen = [f for f in flows(live.events()) if "10.10.1.50" in (f["src_ip"], f["dst_ip"])]
        C.true(f"{tag}: the workstation's flows are seen again", len(seen) > 0)
        C.eq(f"{tag}: the final stats name no filter",
             sorted(str(s.get("filter")) for s in final_stats(live.events()).values()), ["None"] * workers)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    C = Checker("live_faults")
    why = tools_missing()
    if why:
        print(f"live_faults: {why}; skipped")
        return 0
    filter_removed(C, "afpacket", 2)
    filter_removed(C, "pcap", 1)
    C.done()


if __name__ == "__main__":
    sys.exit(main())
