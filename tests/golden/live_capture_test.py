"""`medmon live` captures as libpcap would, with AF_PACKET as with `--capture pcap` (veth pair in a
private network namespace): a BPF filter on VLANs matches the tagged frames (the kernel has taken
the tag out of the frame before the filter runs: libpcap's live code tests it with the kernel's
ancillary loads), and the snapshot length cuts the frames with or without a filter. Needs root,
ip(8) and tcpreplay."""
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, pcap  # noqa: E402
from live_netns import Live, Netns, tools_missing  # noqa: E402


def capture(C, method, args, replay):
    """Runs medmon live on vb with args while `replay` goes to va; returns its events."""
    tmp = tempfile.mkdtemp(prefix="mmlivecap-")
    ns = Netns("c")
    try:
        out = os.path.join(tmp, "events.jsonl")
        live = Live(ns, ["-i", "vb", "--capture", method, "--buffer-mb", "4", *args], out,
                    os.path.join(tmp, "stderr.txt"))
        ns.replay(replay)
        time.sleep(0.6)  # a ring block is handed over after 100 ms at most
        rc = live.stop(signal.SIGTERM)
        err = open(live.err_path).read()
        C.eq(f"{method} {' '.join(args)}: exit status ({err.strip()[:200]})", rc, 0)
        C.true(f"{method} {' '.join(args)}: no warning ({err.strip()[:200]})", "warning" not in err)
        events = live.events()
        return events
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def loopback(C, method):
    """One UDP datagram sent on the namespace's loopback interface: one packet in its flow (a
    loopback frame passes a packet socket twice, sent and received)."""
    tmp = tempfile.mkdtemp(prefix="mmlivecap-")
    ns = Netns("l")
    try:
        ns.sh("ip link set lo up")
        out = os.path.join(tmp, "events.jsonl")
        live = Live(ns, ["-i", "lo", "--capture", method, "--buffer-mb", "4", "-f", "udp port 9999"], out,
                    os.path.join(tmp, "stderr.txt"))
        ns.sh("python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
              ".sendto(b'hello', ('127.0.0.1', 9999))\"")
        time.sleep(0.6)
        C.eq(f"{method} -i lo: exit status", live.stop(signal.SIGTERM), 0)
        flows = [e for e in live.events() if e["event_type"] == "flow"]
        C.eq(f"{method} -i lo: one flow of one packet",
             [(f["flow"]["pkts_toserver"], f["flow"]["pkts_toclient"]) for f in flows], [(1, 0)])
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def last_stats(events):
    stats = [e for e in events if e["event_type"] == "stats"]
    return stats[-1]["stats"] if stats else {"packets": 0, "counters": {}}


def main():
    C = Checker("live_capture")
    why = tools_missing()
    if why:
        print(f"live_capture: {why}; skipped")
        return 0
    vlan = pcap("core/vlan_8021q.pcap")  # 29 frames, all on VLAN 20
    dns = pcap("core/real_dns.pcap")     # 8 frames of 80 to 97 bytes
    cut = {}
    for method in ("pcap", "afpacket"):
        events = capture(C, method, ["-f", "vlan 20"], vlan)
        flows = [e for e in events if e["event_type"] == "flow"]
        C.eq(f"{method} -f 'vlan 20': every frame of VLAN 20 passes", last_stats(events)["packets"], 29)
        C.true(f"{method} -f 'vlan 20': flows on VLAN 20 ({len(flows)})",
               len(flows) > 0 and all(f.get("vlan") == 20 for f in flows))
        events = capture(C, method, ["-f", "vlan 30"], vlan)
        C.eq(f"{method} -f 'vlan 30': no frame passes", last_stats(events)["packets"], 0)
        for args in (["-s", "64"], ["-s", "64", "-f", "udp"]):
            st = last_stats(capture(C, method, args, dns))
            C.eq(f"{method} {' '.join(args)}: all frames seen", st["packets"], 8)
            cut[method, len(args)] = {k: v for k, v in st["counters"].items() if "truncated" in k}
            C.true(f"{method} {' '.join(args)}: frames longer than the snapshot length are cut ({cut[method, len(args)]})",
                   sum(cut[method, len(args)].values()) > 0)
    for method in ("pcap", "afpacket"):
        loopback(C, method)
    for n in (2, 4):
        C.eq(f"-s 64 {'with' if n == 4 else 'without'} a filter: afpacket cuts as libpcap", cut["afpacket", n],
             cut["pcap", n])
    C.done()


if __name__ == "__main__":
    sys.exit(main())
