"""SIGTERM at a random moment of a live capture (veth pair in a private network namespace,
AF_PACKET with 1 and 2 workers, libpcap): exit 0, every output line is complete JSON, the flows still open come out as `flow`
events with state `interrupted`, and each worker writes its final `stats`. Needs root, ip(8)
and tcpreplay."""
import glob
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, pcap  # noqa: E402
from live_netns import Live, Netns, tools_missing  # noqa: E402
from pcapwrite import ether, ipv4, udp, write_pcap  # noqa: E402

T_NOW = 1_700_000_000  # a replayed frame is stamped by the receiving kernel, not by its file


def rotated(path):
    """The rotated files oldest first, then the current one."""
    nums = sorted((int(p.rsplit(".", 1)[1]) for p in glob.glob(path + ".*")), reverse=True)
    return [f"{path}.{n}" for n in nums] + [path]


def run_once(C, workers, seed, method="afpacket", rotate=False):
    rnd = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns(f"i{workers}")
    try:
        out = os.path.join(tmp, "events.jsonl")
        extra = ["--rotate-size", "4k", "--rotate-keep", "0"] if rotate else []
        live = Live(ns, ["-i", "vb", "--capture", method, "--workers", str(workers), "--buffer-mb", "4"] + extra, out,
                    os.path.join(tmp, "stderr.txt"), sockets=workers)
        # The demo capture (0.46 s a pass, 161 frames) in a loop at 1 Mbit/s: DICOM, HL7, SSH and
        # SMB flows are open at any moment.
        rep = ns.popen(["tcpreplay", "-q", "-i", "va", "--mbps", "1", "--loop", "20", pcap("demo", "demo.pcap")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Once a whole pass has arrived (the DNS flows stay open from then on), stop at a
        # random moment.
        deadline = time.time() + 30
        while int(ns.sh("cat /sys/class/net/vb/statistics/rx_packets").stdout) < 161 and time.time() < deadline:
            time.sleep(0.05)
        # Rotating: wait until the files hold three rotations' worth, so that the check below
        # does not depend on how fast a loaded machine wrote the events before the stop.
        def written():
            return sum(os.path.getsize(f) for f in rotated(out) if os.path.exists(f))
        while rotate and written() < 3 * 4096 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rnd.uniform(0.0, 2.5))
        rc = live.stop(signal.SIGTERM)
        rep.kill()
        rep.wait()
        tag = f"{method}, {workers} worker(s){', rotating' if rotate else ''}, seed {seed}"
        C.eq(f"{tag}: exit status", rc, 0)
        files = rotated(out) if rotate else [out]
        if rotate:
            C.true(f"{tag}: rotated into several files ({len(files)})", len(files) > 2)
        text = "".join(open(f).read() for f in files)
        C.true(f"{tag}: output ends with a newline", text.endswith("\n"))
        events, bad = [], 0
        for line in text.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                bad += 1
        C.eq(f"{tag}: lines that are not complete JSON", bad, 0)
        flows = [e for e in events if e["event_type"] == "flow"]
        interrupted = [e for e in flows if e["flow"]["state"] == "interrupted"]
        C.true(f"{tag}: open flows reported as interrupted ({len(interrupted)} of {len(flows)})", len(interrupted) > 0)
        stats = [e for e in events if e["event_type"] == "stats"]
        C.true(f"{tag}: a stats event per worker at the end", len(stats) >= workers)
        last = {}
        for s in stats:
            last[s["stats"].get("worker", 0)] = s
        C.eq(f"{tag}: workers in the final stats", sorted(last), list(range(workers)) if workers > 1 else [0])
        C.true(f"{tag}: the kernel counted the packets",
               sum(s["stats"]["capture"]["received"] for s in last.values()) > 0)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def ring_drained(C, workers, method="afpacket"):
    """SIGTERM while the ring fills at top speed: no frame the kernel put into a ring is lost
    unsaid. Each worker's final stats: packets analysed = received - dropped (the frames still
    unread when the ring was closed count as dropped, and as capture.unread_at_stop)."""
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns(f"d{workers}")
    try:
        out = os.path.join(tmp, "events.jsonl")
        live = Live(ns, ["-i", "vb", "--capture", method, "--workers", str(workers), "-f", "not ip6"], out,
                    os.path.join(tmp, "stderr.txt"), sockets=workers)
        rep = ns.popen(["tcpreplay", "-q", "-i", "va", "--topspeed", "--loop", "3000", pcap("demo", "demo.pcap")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        rc = live.stop(signal.SIGTERM)
        rep.kill()
        rep.wait()
        tag = f"drained ring, {method}, {workers} worker(s)"
        C.eq(f"{tag}: exit status", rc, 0)
        last = {}
        for e in live.events():
            if e["event_type"] == "stats":
                last[e["stats"].get("worker", 0)] = e["stats"]
        C.eq(f"{tag}: workers in the final stats", sorted(last), list(range(workers)))
        for w, s in sorted(last.items()):
            cap = s.get("capture", {})
            C.true(f"{tag}: worker {w} analysed packets", s["packets"] > 0)
            C.eq(f"{tag}: worker {w}: packets = received - dropped (received {cap.get('received')}, dropped "
                 f"{cap.get('dropped')}, unread at stop {s['counters'].get('capture.unread_at_stop', 0)})",
                 s["packets"], cap.get("received", 0) - cap.get("dropped", 0))
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def quiet_worker(C):
    """Two workers, one UDP packet: the worker that saw no packet dates its final `stats` by the
    time of the stop, not 1970."""
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("q2")
    try:
        one = os.path.join(tmp, "one.pcap")
        write_pcap(one, [(T_NOW, 0, ether(b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01",
                                          ipv4("10.5.0.1", "10.5.0.2", 17, udp("10.5.0.1", "10.5.0.2", 40000, 9999, b"hello"))))])
        live = Live(ns, ["-i", "vb", "--workers", "2", "--buffer-mb", "4"], os.path.join(tmp, "events.jsonl"),
                    os.path.join(tmp, "stderr.txt"), sockets=2)
        started = time.time()
        ns.replay(one)
        time.sleep(0.5)
        C.eq("one packet, 2 workers: exit status", live.stop(signal.SIGTERM), 0)
        stats = [e for e in live.events() if e["event_type"] == "stats"]
        C.eq("one packet, 2 workers: workers in the final stats", sorted(s["stats"]["worker"] for s in stats), [0, 1])
        now = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(started))
        later = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time()))
        for s in stats:
            C.true(f"one packet, worker {s['stats']['worker']} ({s['stats']['packets']} packets): "
                   f"stats dated at the capture ({s['ts']})", now <= s["ts"][:16] <= later)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def final_stats_one_moment(C):
    """Two workers: each worker's final `stats` is dated by the latest packet any worker
    analysed (the capture's end), not by its own last packet."""
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns("m2")
    try:
        many = os.path.join(tmp, "many.pcap")
        # 40 UDP flows of one packet each, 20 ms apart: the fanout hash spreads them over both
        # workers, and the last packet is one worker's only.
        frames = []
        for i in range(40):
            sport = 41000 + i
            frames.append((T_NOW, i * 20000, ether(b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01",
                                                   ipv4("10.6.0.1", "10.6.0.2", 17,
                                                        udp("10.6.0.1", "10.6.0.2", sport, 9999, b"tick")))))
        write_pcap(many, frames)
        live = Live(ns, ["-i", "vb", "--workers", "2", "--buffer-mb", "4", "-f", "udp port 9999"],
                    os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr.txt"), sockets=2)
        ns.replay(many, ())  # at the file's pace
        time.sleep(0.5)
        C.eq("final stats, 2 workers: exit status", live.stop(signal.SIGTERM), 0)
        events = live.events()
        ends = [e["flow"]["end"] for e in events if e["event_type"] == "flow"]
        last = {}
        for e in events:
            if e["event_type"] == "stats":
                last[e["stats"]["worker"]] = e
        C.eq("final stats, 2 workers: workers in the final stats", sorted(last), [0, 1])
        C.eq("final stats, 2 workers: flows", len(ends), 40)
        busy = [w for w, e in last.items() if e["stats"]["packets"] > 0]
        if len(busy) < 2:
            print("live_interrupt: the fanout gave every packet to one worker; final stats check not telling")
        for w, e in sorted(last.items()):
            C.eq(f"final stats, worker {w} ({e['stats']['packets']} packets): dated by the capture's last packet",
                 e["ts"], max(ends) if ends else None)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def full_disk(C, method, workers):
    """Events that cannot be written (a full disk: /dev/full) make live exit 3 with a message
    when it stops, as analyze does, instead of 0."""
    tmp = tempfile.mkdtemp(prefix="mmlive-")
    ns = Netns(f"f{workers}")
    try:
        live = Live(ns, ["-i", "vb", "--capture", method, "--workers", str(workers), "--buffer-mb", "4"], "/dev/full",
                    os.path.join(tmp, "stderr.txt"), sockets=workers)
        ns.replay(pcap("demo", "demo.pcap"))
        time.sleep(0.5)
        rc = live.stop(signal.SIGTERM)
        err = open(live.err_path).read()
        C.eq(f"full disk, {method}: exit status", rc, 3)
        C.true(f"full disk, {method}: says so ({err.strip()[-300:]})", "cannot write events: /dev/full" in err)
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    C = Checker("live_interrupt")
    why = tools_missing()
    if why:
        print(f"live_interrupt: {why}; skipped")
        return 0
    seed = int(os.environ.get("LIVE_SEED", time.time_ns() % 1000003))
    print(f"live_interrupt: seed {seed} (LIVE_SEED={seed} repeats this run)")
    for workers in (1, 2):
        run_once(C, workers, seed + workers)
    run_once(C, 1, seed + 3, "pcap")
    # Workers hand their lines to a rotating file in runs: rotation must still fall between lines.
    run_once(C, 2, seed + 4, rotate=True)
    for workers in (1, 2):
        ring_drained(C, workers)
    ring_drained(C, 1, "pcap")
    quiet_worker(C)
    final_stats_one_moment(C)
    full_disk(C, "afpacket", 2)
    full_disk(C, "pcap", 1)
    C.done()


if __name__ == "__main__":
    sys.exit(main())
