"""medmon live when the capture does not go as planned (veth pair in a private network namespace):
a reload that removes the capture filter takes it off the open sockets; `--capture pcap` on the
loopback interface stops at the first SIGINT, traffic flowing or not; with AF_PACKET, an
interface taken down is waited for (without spinning) and captured again once up, a deleted one
ends the run (exit 3) as with libpcap, and `--capture pcap` says and counts an interface taken
down as AF_PACKET does; with --workers, a worker that receives no more packets
still ends its idle flows and writes its periodic stats on the capture's packet time; AF_PACKET
reads a tun device's raw IP packets as such, and refuses a link type it cannot read; every
periodic stats event counts as received (by the kernel) at least the packets it counts;
--buffer-mb gives an AF_PACKET ring of that size, small ones too. Needs root, ip(8) and
tcpreplay."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, Checker, pcap  # noqa: E402
from live_netns import Live, Netns, tools_missing  # noqa: E402
from pcapwrite import ether, ipv4, udp, write_pcap  # noqa: E402


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


def reload_keeps_ring(C):
    """`--capture pcap`, UDP to port 9999 at 1000 frames/s, capture.bpf changed from 'udp port
    9999' to 'udp port 9998' by SIGHUP half way: the frames the ring holds, taken under the old
    filter, are analysed (libpcap would match them against the new one and drop them without a
    word), and no frame is lost at the change: every frame the kernel took is analysed."""
    tag = "pcap, filter changed on reload"
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("r")
    try:
        trace = os.path.join(tmp, "udp.pcap")
        write_pcap(trace, [(1700000000 + i // 1000, (i % 1000) * 1000,
                            ether(b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01",
                                  ipv4("10.9.0.1", "10.9.0.2", 17, udp("10.9.0.1", "10.9.0.2", 40000 + i % 50, 9999, b"x" * 40))))
                           for i in range(3000)])
        cfg = os.path.join(tmp, "medmon.yaml")

        def write_cfg(bpf):
            with open(cfg, "w") as f:
                f.write(f"capture:\n  interface: vb\n  method: pcap\n  bpf: '{bpf}'\n")
        write_cfg("udp port 9999")
        live = Live(ns, ["--config", cfg], os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr.txt"))
        replay = ns.popen(["tcpreplay", "-q", "-i", "va", "--pps", "1000", trace], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        write_cfg("udp port 9998")
        live.hup("capture filter now")
        replay.wait(timeout=60)
        time.sleep(0.5)
        rc = live.stop(signal.SIGINT)
        st = final_stats(live.events())[0]
        C.eq(f"{tag}: exit status", rc, 0)
        C.true(f"{tag}: frames before the change analysed ({st['packets']})", 500 < st["packets"] < 3000)
        C.eq(f"{tag}: every frame the kernel took analysed, none dropped ({st.get('capture')})",
             (st["packets"], st["capture"]["dropped"]), (st["capture"]["received"], 0))
        C.eq(f"{tag}: none left unread", st["counters"].get("capture.unread_at_stop"), None)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    s.sendto(b"x" * 50, ("127.0.0.1", 9999))
    time.sleep(0.02)
"""


def loopback_stop(C, traffic_at_stop):
    """`--capture pcap -i lo` with UDP on 127.0.0.1: one SIGINT stops it, whether datagrams still
    flow or stopped a moment before. On loopback the kernel counts each frame twice (libpcap drops
    the outgoing copy itself): no frame is said unread or dropped for that."""
    tag = f"pcap on lo, SIGINT {'with traffic flowing' if traffic_at_stop else 'after the traffic'}"
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("l")
    try:
        ns.sh("ip link set lo up")
        live = Live(ns, ["-i", "lo", "--capture", "pcap"], os.path.join(tmp, "events.jsonl"),
                    os.path.join(tmp, "stderr.txt"))
        sender = ns.popen([sys.executable, "-c", SENDER, "30" if traffic_at_stop else "1.5"])
        time.sleep(2.0)
        os.kill(live.medmon_pid(), signal.SIGINT)
        try:
            rc = live.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = "still running 20 s after SIGINT"
        sender.kill()
        sender.wait()
        C.eq(f"{tag}: exit status", rc, 0)
        if rc != 0:
            return
        last = final_stats(live.events()).get(0, {})
        C.true(f"{tag}: packets analysed ({last.get('packets')})", last.get("packets", 0) > 0)
        C.eq(f"{tag}: no frame said unread", last.get("counters", {}).get("capture.unread_at_stop", 0), 0)
        C.eq(f"{tag}: no frame said dropped", last.get("capture", {}).get("dropped"), 0)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def until(cond, timeout=15):
    """Waits for cond(); False when it did not hold in time."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def cpu_seconds(pid):
    """User and system time of a process so far."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def link_down_then_gone(C, workers, method="afpacket"):
    """The interface goes down: said once on stderr (libpcap says nothing: `--capture pcap` asks
    the kernel once a second), counted, no busy loop; up again: captured again. Then deleted:
    `The interface disappeared`, exit 3."""
    tag = f"{method}, {workers} worker(s)"
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("k")
    try:
        args = ["-i", "vb", "--workers", str(workers), "--buffer-mb", "4"] + (["--capture", "pcap"] if method == "pcap" else [])
        live = Live(ns, args, os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr.txt"), sockets=workers)
        ns.sh("ip link set vb down")
        C.true(f"{tag}, interface down: said on stderr", until(lambda: "Network is down" in live.stderr()))
        t0, c0 = time.time(), cpu_seconds(live.medmon_pid())
        time.sleep(2.0)
        busy = (cpu_seconds(live.medmon_pid()) - c0) / (time.time() - t0)
        C.true(f"{tag}, interface down: no busy loop ({busy:.0%} of a CPU)", busy < 0.25)
        C.eq(f"{tag}, interface down: said once", live.stderr().count("Network is down"), 1)
        ns.sh("ip link set vb up")
        C.true(f"{tag}, interface up again: said on stderr", until(lambda: "up again" in live.stderr()))
        time.sleep(0.5)
        ns.replay(pcap("demo", "demo.pcap"))
        time.sleep(1.0)  # a ring block is handed over after 100 ms at most
        ns.sh("ip link del va")
        try:
            rc = live.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = "still running 20 s after the interface was deleted"
        err = live.stderr()
        C.eq(f"{tag}, interface deleted: exit status ({err.strip()[-300:]})", rc, 3)
        C.eq(f"{tag}, interface deleted: said once", err.count("vb: The interface disappeared"), 1)
        C.true(f"{tag}: the frames replayed once the interface was up again were analysed",
               sum(s["packets"] for s in final_stats(live.events()).values()) > 0 and len(flows(live.events())) > 0)
        C.eq(f"{tag}: the interface going down counted, once by each worker",
             [s["counters"].get("capture.link_down") for s in final_stats(live.events()).values()], [1] * workers)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


IDLE_SENDER = """
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from pcapwrite import ether, ipv4, udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("va", 0))
ma, mb = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
def send(a, b, sp, i):
    s.send(ether(mb, ma, ipv4(a, b, 17, udp(a, b, sp, 7000, b"x" * 10), ident=i)))
for k in range(16):  # short flows, one packet each, spread over the workers
    send("10.80.0.%d" % (k + 1), "10.80.1.1", 31000 + k, k)
for i in range(50):  # then one flow, on one worker, for 5 s
    send("10.81.0.1", "10.81.1.1", 30000, 100 + i)
    time.sleep(0.1)
"""


def quiet_worker_clock(C):
    """Two workers, 16 one-packet flows, then one flow for 5 s: one worker gets no packet more,
    yet its flows end by their 1 s idle timeout, not at the stop, and it writes its periodic
    stats as the other does."""
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("i")
    try:
        cfg = os.path.join(tmp, "medmon.yaml")
        with open(cfg, "w") as f:
            f.write("capture:\n  interface: vb\n  workers: 2\n  ring_size: 4194304\n  block_size: 262144\n"
                    "flows:\n  udp_idle_timeout: 1\noutput:\n  stats_interval: 1\n")
        live = Live(ns, ["--config", cfg], os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr.txt"), sockets=2)
        ns.popen([sys.executable, "-c", IDLE_SENDER, os.path.dirname(os.path.abspath(__file__))]).wait(timeout=60)
        time.sleep(0.3)
        C.eq("quiet worker: exit status", live.stop(signal.SIGTERM), 0)
        events = live.events()
        short = {f["src_ip"]: f["flow"]["state"] for f in flows(events) if f["src_ip"].startswith("10.80.0.")}
        C.eq("quiet worker: the 16 short flows", len(short), 16)
        C.eq("quiet worker: every short flow ended by its idle timeout",
             sorted(ip for ip, st in short.items() if st != "idle_timeout"), [])
        per_worker = {}
        for e in events:
            if e["event_type"] == "stats":
                per_worker[e["stats"]["worker"]] = per_worker.get(e["stats"]["worker"], 0) + 1
        C.true(f"quiet worker: periodic stats from both workers ({per_worker})",
               sorted(per_worker) == [0, 1] and min(per_worker.values()) >= 3)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


TUN_SENDER = """
import fcntl, os, struct, sys
sys.path.insert(0, sys.argv[1])
from pcapwrite import ipv4, udp
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", b"tun0", 0x1001))  # TUNSETIFF: IFF_TUN | IFF_NO_PI
if int(sys.argv[2]):
    fcntl.ioctl(fd, 0x400454cd, int(sys.argv[2]))  # TUNSETLINK: another ARP hardware type
os.system("ip link set tun0 up")
print("ready", flush=True)
sys.stdin.readline()
a, b = "10.70.0.1", "10.70.0.2"
for i in range(20):
    os.write(fd, ipv4(a, b, 17, udp(a, b, 40000 + i, 53, b"hello"), ident=i))
print("sent", flush=True)
sys.stdin.readline()
"""


def tun_device(C, args, arphrd=0):
    """medmon live --capture afpacket on a tun device: the raw IP packets give their flows (a
    filter is compiled for raw IP). Of another ARP hardware type (arphrd): refused, exit 3."""
    tag = f"afpacket on tun {' '.join(args)}" + (f", ARP hardware type {arphrd}" if arphrd else "")
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("t")
    try:
        tun = ns.popen([sys.executable, "-c", TUN_SENDER, os.path.dirname(os.path.abspath(__file__)), str(arphrd)],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        C.eq(f"{tag}: tun0 created", tun.stdout.readline().strip(), "ready")
        out, err = os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr.txt")
        if arphrd:
            with open(err, "w") as errf:
                p = ns.popen([MEDMON, "live", "-i", "tun0", "--capture", "afpacket", "--out", out, "--quiet", *args],
                             stdout=subprocess.DEVNULL, stderr=errf)
                try:
                    rc = p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    rc = "still running after 30 s"
            said = open(err).read()
            C.eq(f"{tag}: exit status ({said.strip()})", rc, 3)
            C.true(f"{tag}: the link type is said unsupported", "tun0: unsupported link type" in said)
            return
        live = Live(ns, ["-i", "tun0", "--capture", "afpacket", *args], out, err)
        tun.stdin.write("go\n")
        tun.stdin.flush()
        C.eq(f"{tag}: packets written", tun.stdout.readline().strip(), "sent")
        time.sleep(0.6)
        C.eq(f"{tag}: exit status", live.stop(signal.SIGTERM), 0)
        C.eq(f"{tag}: nothing on stderr", open(err).read(), "")
        mine = [f for f in flows(live.events()) if f["src_ip"] == "10.70.0.1" and f["dst_port"] == 53]
        C.eq(f"{tag}: a flow per datagram", len(mine), 20)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


PACED_SENDER = """
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from pcapwrite import ether, ipv4, udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("va", 0))
ma, mb = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
a, b = "10.50.0.1", "10.50.0.2"
for i in range(40):
    s.send(ether(mb, ma, ipv4(a, b, 17, udp(a, b, 30000 + i % 8, 7000, b"x" * 10), ident=i)))
    time.sleep(0.1)
"""


def stats_received(C, method):
    """Packets 100 ms apart, a stats event every second: each says received >= packets (the
    kernel's counters are read when the event is written, not at the once-a-second flush)."""
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("s")
    try:
        live = Live(ns, ["-i", "vb", "--capture", method, "--buffer-mb", "4", "--stats-interval", "1"],
                    os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr.txt"))
        ns.popen([sys.executable, "-c", PACED_SENDER, os.path.dirname(os.path.abspath(__file__))]).wait(timeout=60)
        time.sleep(0.3)
        C.eq(f"stats received, {method}: exit status", live.stop(signal.SIGTERM), 0)
        stats = [e["stats"] for e in live.events() if e["event_type"] == "stats"]
        C.true(f"stats received, {method}: periodic stats ({len(stats)})", len(stats) >= 3)
        C.eq(f"stats received, {method}: events where received < packets",
             [(s["packets"], s["capture"]["received"]) for s in stats if s["capture"]["received"] < s["packets"]], [])
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def ring_sizes(C):
    """--buffer-mb N maps an AF_PACKET ring of N MiB per worker, also below 4 default blocks
    (16 MiB) and when N MiB is no whole number of them."""
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("z")
    try:
        for mb in (1, 2, 18):
            live = Live(ns, ["-i", "vb", "--buffer-mb", str(mb)], os.path.join(tmp, "events.jsonl"),
                        os.path.join(tmp, "stderr.txt"))
            mapped = 0
            for line in open(f"/proc/{live.medmon_pid()}/maps"):
                if "socket:[" in line:
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    mapped += hi - lo
            C.eq(f"--buffer-mb {mb}: the ring mapped (MiB)", mapped / (1 << 20), mb)
            C.eq(f"--buffer-mb {mb}: exit status", live.stop(signal.SIGTERM), 0)
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
    reload_keeps_ring(C)
    loopback_stop(C, True)
    loopback_stop(C, False)
    for workers in (1, 2):
        link_down_then_gone(C, workers)
    link_down_then_gone(C, 1, "pcap")
    quiet_worker_clock(C)
    tun_device(C, [])
    tun_device(C, ["-f", "udp port 53"])
    tun_device(C, [], arphrd=512)  # ARPHRD_PPP
    for method in ("afpacket", "pcap"):
        stats_received(C, method)
    ring_sizes(C)
    C.done()


if __name__ == "__main__":
    sys.exit(main())
