"""`medmon live --config`: the capture section is checked key by key; every error names
file:line:column and exits 2 before any capture is opened."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import Checker, run  # noqa: E402

BAD = [
    # (config text, line, column, words the message must contain)
    ("capture:\n  workers: 0\n", 2, 12, "'workers' must be a number between 1 and 64 (got '0')"),
    ("capture:\n  workers: many\n", 2, 12, "'workers' must be a number between 1 and 64 (got 'many')"),
    ("capture:\n  workers: [2]\n", 2, 12, "'workers' must be a number between 1 and 64"),
    ("flows:\n  max_flows: -5\n", 2, 14, "'max_flows' must be a number between 1 and 100000000 (got '-5')"),
    ("flows:\n  tcp_idle_timeout: 0\n", 2, 21, "'tcp_idle_timeout' must be more than 0 seconds"),
    ("flows:\n  udp_idle_timeout: 0.0000001\n", 2, 21, "'udp_idle_timeout' must be more than 0 seconds"),
    ("flows:\n  absolute_timeout: 0\n", 2, 21, "'absolute_timeout' must be more than 0 seconds"),
    ("capture:\n  interface: eth0\n  snaplen: 10\n", 3, 12, "'snaplen' must be a number between 64 and 262144 (got '10')"),
    ("capture:\n  block_size: 100000\n", 2, 15, "'block_size' must be a power of two"),
    ("capture:\n  block_size: 1048576\n  ring_size: 3145728\n", 3, 14, "multiple of block_size"),
    ("capture:\n  ring_size: 2097152\n", 2, 14, "at least 4 blocks"),
    ("capture:\n  method: netmap\n", 2, 11, "'method' must be 'afpacket' or 'pcap'"),
    ("capture:\n  promisc: maybe\n", 2, 12, "'promisc' must be true or false"),
    ("capture:\n  cpus: []\n", 2, 9, "'cpus' must be a non-empty list"),
    ("capture:\n  cpus: [0, 5000]\n", 2, 13, "'cpus' must be a number between 0 and 1023 (got '5000')"),
    ("capture:\n  interface: [eth0]\n", 2, 14, "'interface' must be a string"),
    ("capture:\n  interface: eth0\n  ring: 4\n", 3, 3, "unknown key 'ring' in 'capture'"),
    ("capture:\n  interface: eth0\n  cpus: [1023]\n", 3, 9, "cpu 1023 is not available"),
    ("output:\n  phi: [raw]\n", 2, 8, "'phi' must be a string"),
    ("output:\n  phi_key_file: {a: 1}\n", 2, 17, "'phi_key_file' must be a string"),
    ("policy:\n  site: [a, b]\n", 2, 9, "'site' must be a string"),
    ("? [capture]\n: 1\n", 1, 3, "keys of 'top level' must be plain names"),
    ("fragments:\n  timeout: 0\n", 2, 12, "'timeout' must be more than 0 seconds"),
    ("output:\n  stats_interval: 0.0000001\n", 2, 19, "'stats_interval' must be 0 (stats only at the end) or at least 1 second"),
    ("output:\n  stats_interval: 0.5\n", 2, 19, "'stats_interval' must be 0 (stats only at the end) or at least 1 second"),
    ("output:\n  phi_key: 0123456789abcde\n", 2, 12, "'phi_key' must be at least 16 characters"),
    # A key given twice: yaml-cpp keeps both, the reader would take both in turn.
    ("capture:\n  workers: 2\n  workers: 3\n", 3, 3, "duplicate key 'workers' in 'capture'"),
    ("capture:\n  workers: 2\ncapture:\n  snaplen: 100\n", 3, 1, "duplicate key 'capture' in 'top level'"),
    ("capture:\n  cpus: [0]\n  cpus: [1]\n", 3, 3, "duplicate key 'cpus' in 'capture'"),
    # A filter that does not parse: told before any socket is opened.
    ("capture:\n  interface: mmnosuch0\n  bpf: 'port or'\n", 3, 8, "bad BPF filter 'port or'"),
]


def main():
    C = Checker("live_config")
    tmp = tempfile.mkdtemp(prefix="mmlivecfg-")
    for i, (text, line, col, words) in enumerate(BAD):
        path = os.path.join(tmp, f"bad{i}.yaml")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run(["live", "--config", path, "--out", os.path.join(tmp, "ev.jsonl")], check_rc=None)
        C.eq(f"{words}: exit status", rc, 2)
        C.true(f"{words}: message has {path}:{line}:{col} ({err.strip()})", f"{path}:{line}:{col}:" in err)
        C.true(f"{words}: message says what is wrong ({err.strip()})", words in err)

    # No interface anywhere.
    path = os.path.join(tmp, "noif.yaml")
    with open(path, "w") as f:
        f.write("capture:\n  workers: 2\n")
    rc, out, err = run(["live", "--config", path], check_rc=None)
    C.eq("no interface: exit status", rc, 2)
    C.true(f"no interface: says so ({err.strip()})", "no interface" in err)

    # A good file: the interface from the config is the one opened (and it does not exist).
    path = os.path.join(tmp, "good.yaml")
    with open(path, "w") as f:
        f.write("capture:\n  interface: mmnosuch0\n  workers: 2\n  ring_size: 4194304\n  block_size: 1048576\n"
                "  cpus: [0]\n  snaplen: 1600\n  promisc: false\n  bpf: 'tcp or udp'\n")
    rc, out, err = run(["live", "--config", path, "--out", os.path.join(tmp, "ev.jsonl")], check_rc=None)
    C.eq("good config, missing interface: input error", rc, 3)
    C.true(f"good config: the configured interface is named ({err.strip()})", "mmnosuch0" in err)
    # The command line wins over the file.
    rc, out, err = run(["live", "--config", path, "-i", "mmnosuch1", "--out", os.path.join(tmp, "ev.jsonl")],
                       check_rc=None)
    C.true(f"-i wins over capture.interface ({err.strip()})", rc == 3 and "mmnosuch1" in err)
    # An option given on the command line wins even when it has its default value: the file
    # says pcap (which takes one worker), the command line afpacket with two.
    path2 = os.path.join(tmp, "pcap.yaml")
    with open(path2, "w") as f:
        f.write("capture:\n  interface: mmnosuch0\n  method: pcap\n")
    rc, out, err = run(["live", "--config", path2, "--capture", "afpacket", "-w", "2", "--out",
                        os.path.join(tmp, "ev.jsonl")], check_rc=None)
    C.true(f"--capture afpacket wins over capture.method: pcap ({err.strip()})",
           rc == 3 and "needs --capture afpacket" not in err)
    # The same from the command line.
    rc, out, err = run(["live", "-i", "mmnosuch0", "-f", "host or", "--out", os.path.join(tmp, "ev.jsonl")], check_rc=None)
    C.true(f"-f that does not parse: exit 2, named ({err.strip()})", rc == 2 and "-f: bad BPF filter 'host or'" in err)
    # --fail-on is a verdict at the end of a replay: live refuses it instead of ignoring it.
    rc, out, err = run(["live", "-i", "lo", "--fail-on", "high"], check_rc=None)
    C.true(f"live refuses --fail-on ({err.strip()})", rc != 0 and "--fail-on" in err)
    shutil.rmtree(tmp, ignore_errors=True)
    C.done()


if __name__ == "__main__":
    main()
