"""Test hosts for the live golden tests: a private network namespace with a veth pair (medmon
listens on `vb`, replays go to `va`) and medmon live running in it. Needs root, ip(8) and
tcpreplay; tools_missing() says why a test must skip."""
import json
import os
import shutil
import signal
import subprocess
import time

from golden import MEDMON


def tools_missing():
    if os.geteuid() != 0:
        return "not root"
    for t in ("ip", "tcpreplay"):
        if not shutil.which(t):
            return f"{t} not installed (scripts/install-deps.sh --test)"
    return None


class Netns:
    """A private network namespace with a veth pair: medmon listens on `vb`, replays go to `va`."""

    def __init__(self, tag):
        self.name = f"mmlive{os.getpid()}{tag}"
        self.procs = []  # what popen started, killed by close() if still running
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            self.sh("ip link add va type veth peer name vb")
            self.sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
            self.sh("ip link set va up")
            self.sh("ip link set vb up")
        except Exception:
            self.close()
            raise

    def sh(self, cmd, **kw):
        return subprocess.run(["ip", "netns", "exec", self.name, "sh", "-c", cmd], check=True,
                              capture_output=True, text=True, **kw)

    def popen(self, args, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", self.name] + args, **kw)
        self.procs.append(p)
        return p

    def replay(self, path, extra=("--mbps", "100")):
        self.sh(f"tcpreplay -q -i va {' '.join(extra)} {path}")

    def packet_sockets(self):
        """AF_PACKET sockets bound to an interface (the Iface column is set at bind)."""
        lines = self.sh("cat /proc/net/packet").stdout.splitlines()[1:]
        return sum(1 for l in lines if l.split()[4] != "0")

    def close(self):
        """Kills what still runs in the namespace (a test that failed half way), then deletes it."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Live:
    """medmon live in the namespace, writing to a file; waits until its sockets are open."""

    def __init__(self, ns, args, out, err, sockets=1):
        self.ns, self.out_path, self.err_path = ns, out, err
        self.errf = open(err, "w")
        self.p = ns.popen([MEDMON, "live", "--out", out, "--quiet", *args], stdout=subprocess.DEVNULL,
                          stderr=self.errf)
        deadline = time.time() + 20
        while ns.packet_sockets() < sockets:
            if self.p.poll() is not None or time.time() > deadline:
                raise AssertionError(f"medmon live did not start: {open(err).read()}")
            time.sleep(0.05)
        time.sleep(0.3)  # the workers are polling their rings

    def events(self):
        with open(self.out_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stderr(self):
        self.errf.flush()
        with open(self.err_path) as f:
            return f.read()

    def wait_for(self, cond, what, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return True
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; stderr: {self.stderr()}")

    def hup(self, expect_in_log):
        before = self.stderr().count(expect_in_log)
        os.kill(self.medmon_pid(), signal.SIGHUP)
        self.wait_for(lambda: self.stderr().count(expect_in_log) > before, f"'{expect_in_log}' on stderr")

    def medmon_pid(self):
        # `ip netns exec` execs the command: the child is medmon itself.
        return self.p.pid

    def stop(self, sig=signal.SIGTERM):
        os.kill(self.medmon_pid(), sig)
        rc = self.p.wait(timeout=60)
        self.errf.close()
        return rc
