#!/usr/bin/python3
"""Input handling of `medmon analyze`: broken files, determinism, several files, stdin.

- A truncated pcap, a file that is not a capture, an unknown link type, an empty file and a
  missing file: exit code 3, a one-line error on stderr starting with "medmon: ", and whatever
  was written to stdout or --out before the error is whole JSON lines. A file that cannot be
  opened (missing, not a capture, unknown link type) is found before any output is made, and so
  is a pcapng file whose interfaces differ in link type or whose sections differ in byte order.
- The same input twice gives byte-identical output (stdout and --out FILE).
- Events that cannot be written (a full disk: /dev/full) are exit 3 with an error naming the output.
- Several files are read in order as one capture; `-` reads a capture from stdin, and a named
  pipe or `<(...)` is read like a file (once: it is not checked before the outputs are opened).
- `--filter BPF` analyses only the packets tcpdump's filter of the same expression keeps; a bad
  expression is exit 2 before anything is written.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, Checker, analyze, of_type, pcap  # noqa: E402

c = Checker("core_input")
tmp = tempfile.mkdtemp(prefix="medmon-core-input-")


def medmon(*args, stdin=None):
    p = subprocess.run([MEDMON, *args], input=stdin, capture_output=True, timeout=300)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def whole_lines(what, data):
    """Every line parses as a JSON object and the output ends at a line boundary."""
    c.true(f"{what}: output ends with a newline (no partial line)", data == b"" or data.endswith(b"\n"))
    n = 0
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            ev = json.loads(line)
            c.true(f"{what}: line is an event object", isinstance(ev, dict) and "event_type" in ev)
            n += 1
        except ValueError:
            c.true(f"{what}: incomplete JSON line {line[:80]!r}", False)
    return n


def input_error(what, args, stdin=None):
    rc, out, err = medmon("analyze", *args, "--out", "-", stdin=stdin)
    c.eq(f"{what}: exit code", rc, 3)
    lines = [l for l in err.splitlines() if l.strip()]
    c.true(f"{what}: an error on stderr", len(lines) >= 1)
    errs = [l for l in lines if l.startswith("medmon: ")]
    c.eq(f"{what}: exactly one 'medmon: ' error line (stderr: {err.strip()[:300]!r})", len(errs), 1)
    c.true(f"{what}: the error is one line of sensible length", all(0 < len(l) < 400 for l in errs))
    whole_lines(what + " stdout", out)
    # the same with --out FILE
    path = os.path.join(tmp, "err.jsonl")
    rc2, out2, _ = medmon("analyze", *args, "--out", path, stdin=stdin)
    c.eq(f"{what} (--out FILE): exit code", rc2, 3)
    if os.path.exists(path):
        with open(path, "rb") as f:
            whole_lines(what + " --out file", f.read())
        os.unlink(path)
    return errs[0] if errs else ""


# ---------------------------------------------------------------- broken inputs
e = input_error("truncated pcap", [pcap("core/truncated.pcap")])
c.true("truncated pcap: message names the file", "truncated.pcap" in e)
e = input_error("not a pcap", [pcap("core/not_a_pcap.pcap")])
c.true("not a pcap: message names the file", "not_a_pcap.pcap" in e)
e = input_error("unknown link type", [pcap("core/unknown_linktype.pcap")])
c.true("unknown link type: message names the link type 147", "147" in e)
empty = os.path.join(tmp, "empty.pcap")
open(empty, "wb").close()
input_error("empty file", [empty])
input_error("missing file", [os.path.join(tmp, "does-not-exist.pcap")])
input_error("not a pcap on stdin", ["-"], stdin=open(pcap("core/not_a_pcap.pcap"), "rb").read())
# a good file, then a broken one: the good file's events (if any were written) stay whole
input_error("good file then truncated file", [pcap("core/ethernet_basic.pcap"), pcap("core/truncated.pcap")])
# an input that cannot be opened is found before any output is made: the events file of an
# earlier run is left as it was, even when the bad file comes after a good one
earlier = os.path.join(tmp, "earlier.jsonl")
for what, files in (("missing file", [os.path.join(tmp, "does-not-exist.pcap")]),
                    ("good file then missing file", [pcap("core/ethernet_basic.pcap"), os.path.join(tmp, "nope.pcap")]),
                    ("good file then not a pcap", [pcap("core/ethernet_basic.pcap"), pcap("core/not_a_pcap.pcap")]),
                    ("good file then empty file", [pcap("core/ethernet_basic.pcap"), empty])):
    with open(earlier, "wb") as f:
        f.write(b'{"event_type":"stats"}\n')
    rc, _, err = medmon("analyze", *files, "--out", earlier)
    c.eq(f"{what}: exit code", rc, 3)
    c.true(f"{what}: an earlier run's events file is left untouched ({err.strip()[:160]})",
           open(earlier, "rb").read() == b'{"event_type":"stats"}\n')
# pcapng files valid by the format that libpcap refuses part way: found before any output is made


def ng_block(btype, body, e):
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


def ng_shb(e="<"):
    return ng_block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)


def ng_idb(linktype, e="<"):
    return ng_block(1, struct.pack(e + "HHI", linktype, 0, 65535), e)


def ng_epb(t, pkt, e="<"):
    return ng_block(6, struct.pack(e + "IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(pkt), len(pkt)) + pkt, e)


udp_ip = bytes.fromhex("45000021000100004011") + b"\0\0" + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + \
    bytes.fromhex("03e807d0000d0000") + b"hello"
eth_udp = bytes.fromhex("001122334455006677889900") + b"\x08\x00" + udp_ip
t0 = 1700000000 * 10**6
for name, data, words in (
        ("two link types", ng_shb() + ng_idb(1) + ng_idb(101) + ng_epb(t0, eth_udp), "link type 101, the first interface 1"),
        ("link type of a later section", ng_shb() + ng_idb(1) + ng_epb(t0, eth_udp) + ng_shb() + ng_idb(101) +
         ng_epb(t0 + 1, udp_ip), "link type 101, the first interface 1"),
        ("sections of mixed byte order", ng_shb() + ng_idb(1) + ng_epb(t0, eth_udp) + ng_shb(">") + ng_idb(1, ">") +
         ng_epb(t0 + 1, eth_udp, ">"), "another byte order than the first")):
    path = os.path.join(tmp, "mixed.pcapng")
    with open(path, "wb") as f:
        f.write(data)
    with open(earlier, "wb") as f:
        f.write(b'{"event_type":"stats"}\n')
    rc, _, err = medmon("analyze", pcap("core/ethernet_basic.pcap"), path, "--out", earlier)
    c.eq(f"pcapng, {name}: exit code", rc, 3)
    c.true(f"pcapng, {name}: one line naming the file and the reason ({err.strip()[:200]})",
           err.strip().startswith(f"medmon: {path}: ") and words in err and "not supported" in err and
           len(err.strip().splitlines()) == 1)
    c.true(f"pcapng, {name}: an earlier run's events file is left untouched",
           open(earlier, "rb").read() == b'{"event_type":"stats"}\n')
# two interfaces of one link type stay readable
rc, _, err = medmon("analyze", pcap("core/two_interfaces.pcapng"), "--out", "-")
c.eq(f"pcapng with two Ethernet interfaces: exit code ({err.strip()[:200]})", rc, 0)
# the flows of the truncated file up to the cut are complete events when they are written
rc, out, _ = medmon("analyze", pcap("core/truncated.pcap"), "--out", "-")
n = whole_lines("truncated pcap events", out)
c.true("truncated pcap: stdout holds only whole events (%d)" % n, n >= 0)

# ---------------------------------------------------------------- events that cannot be written
# A full disk (/dev/full) is an error naming the output, exit 3, with one worker or several.
for extra in ([], ["--workers", "2"]):
    rc, _, err = medmon("analyze", pcap("core/ethernet_basic.pcap"), "--out", "/dev/full", "-q", *extra)
    c.eq(f"--out /dev/full {extra}: exit code ({err.strip()[:200]})", rc, 3)
    c.true(f"--out /dev/full {extra}: one error line naming the output ({err.strip()[:200]})",
           err.strip() == "medmon: cannot write events: /dev/full: No space left on device")
with open("/dev/full", "wb") as full:
    p = subprocess.run([MEDMON, "analyze", pcap("core/ethernet_basic.pcap"), "--out", "-", "-q"], stdout=full,
                       stderr=subprocess.PIPE, timeout=300)
c.eq("--out - on a full device: exit code", p.returncode, 3)
c.true(f"--out - on a full device: says standard output ({p.stderr.decode()[:200]})",
       "cannot write events: standard output: No space left on device" in p.stderr.decode())

# ---------------------------------------------------------------- determinism
for rel in ("demo/demo.pcap", "core/real_tls.pcap", "core/ipv4_fragments.pcap", "core/malformed.pcap",
            "core/tcp_overlap.pcap", "core/two_interfaces.pcapng"):
    p = pcap(rel)
    r1, o1, _ = medmon("analyze", p, "--out", "-")
    r2, o2, _ = medmon("analyze", p, "--out", "-")
    c.eq(f"{rel}: exit code", r1, 0)
    c.true(f"{rel}: output not empty", len(o1) > 0)
    c.true(f"{rel}: same input twice gives byte-identical stdout", o1 == o2)
    f1, f2 = os.path.join(tmp, "a.jsonl"), os.path.join(tmp, "b.jsonl")
    medmon("analyze", p, "--out", f1)
    medmon("analyze", p, "--out", f2)
    with open(f1, "rb") as a, open(f2, "rb") as b:
        fa = a.read()
        c.true(f"{rel}: --out FILE twice gives byte-identical files", fa == b.read())
    c.true(f"{rel}: --out FILE equals stdout", fa == o1)

# ---------------------------------------------------------------- stdin
for rel in ("core/ethernet_basic.pcap", "core/two_interfaces.pcapng", "demo/demo.pcap"):
    p = pcap(rel)
    _, from_file, _ = medmon("analyze", p, "--out", "-")
    with open(p, "rb") as f:
        rc, from_stdin, err = medmon("analyze", "-", "--out", "-", stdin=f.read())
    c.eq(f"{rel} on stdin: exit code ({err.strip()[:200]})", rc, 0)
    c.true(f"{rel} on stdin: same events as from the file", from_stdin == from_file and len(from_file) > 0)

# ---------------------------------------------------------------- named pipes and <(...)
# A stream is read once, for real: checking it before the outputs are opened would consume it.
for rel in ("dicom/store-explicit.pcap", "core/two_interfaces.pcapng"):
    p = pcap(rel)
    _, from_file, _ = medmon("analyze", p, "--out", "-")
    fifo = os.path.join(tmp, "in.fifo")
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", 'cat "$1" > "$2"', "sh", p, fifo])
    rc, from_fifo, err = medmon("analyze", fifo, "--out", "-")
    writer.wait(timeout=60)
    os.unlink(fifo)
    c.eq(f"{rel} from a named pipe: exit code ({err.strip()[:200]})", rc, 0)
    c.true(f"{rel} from a named pipe: same events as from the file", from_fifo == from_file and len(from_file) > 0)
    # bash's <(cat FILE): a /dev/fd/N pipe, here after a regular file
    out = os.path.join(tmp, "procsub.jsonl")
    proc = subprocess.run(["bash", "-c", 'exec "$1" analyze "$2" <(cat "$3") --out "$4" -q', "bash", MEDMON,
                           pcap("core/ethernet_basic.pcap"), p, out], capture_output=True, text=True, timeout=300)
    _, both, _ = medmon("analyze", pcap("core/ethernet_basic.pcap"), p, "--out", "-", "-q")
    c.eq(f"{rel} as <(cat FILE): exit code ({proc.stderr.strip()[:200]})", proc.returncode, 0)
    c.true(f"{rel} as <(cat FILE): same events as from the files", open(out, "rb").read() == both and len(both) > 0)

# ---------------------------------------------------------------- several files, in order
# real_http.pcap was recorded before real_dns.pcap, and real_tls.pcap before both (make-real.sh).
files = [pcap("core/real_tls.pcap"), pcap("core/real_http.pcap"), pcap("core/real_dns.pcap")]


def flow_keys(evs):
    return sorted((e["proto"], e["src_ip"], e["src_port"], e["dst_ip"], e["dst_port"], e["flow"]["pkts_toserver"],
                   e["flow"]["pkts_toclient"], e["flow"]["bytes_toserver"], e["flow"]["bytes_toclient"])
                  for e in of_type(evs, "flow"))


together = analyze(files)
apart = [analyze(f) for f in files]
c.eq("three files: flows equal the flows of each file", flow_keys(together), sorted(sum((flow_keys(a) for a in apart), [])))
st = of_type(together, "stats")
c.eq("three files: one stats event at the end", len(st), 1)
if st:
    c.true("three files: stats is the last event", together[-1]["event_type"] == "stats")
    c.eq("three files: packets add up", st[0]["stats"]["packets"], sum(of_type(a, "stats")[0]["stats"]["packets"] for a in apart))
    c.eq("three files: bytes add up", st[0]["stats"]["bytes"], sum(of_type(a, "stats")[0]["stats"]["bytes"] for a in apart))
# file order is kept: event times never go back across the file boundary
flows = of_type(together, "flow")
c.true("three files: flows of the first file come before flows of the last",
       flows and min(i for i, e in enumerate(flows) if e["dst_port"] == 8443) < min(i for i, e in enumerate(flows) if e["dst_port"] == 53))
# the same file twice in one run: each conversation appears twice (the second copy is a new flow)
twice = analyze([pcap("core/tcp_gap.pcap"), pcap("core/tcp_gap.pcap")])
c.true("same file twice in one run: no crash and flows present", len(of_type(twice, "flow")) >= 1)

# ---------------------------------------------------------------- --filter
demo = pcap("demo/demo.pcap")
full = analyze(demo)
pacs = "10.10.2.20"
kept = analyze(demo, "--filter", f"host {pacs}")
c.true("--filter: only flows of the filtered host",
       len(of_type(kept, "flow")) > 0 and all(pacs in (e["src_ip"], e["dst_ip"]) for e in of_type(kept, "flow")))
c.eq("--filter: the stats event names the filter", of_type(kept, "stats")[0]["stats"].get("filter"), f"host {pacs}")
c.true("no --filter: the stats event names none", "filter" not in of_type(full, "stats")[0]["stats"])
workers = analyze(demo, "--filter", f"host {pacs}", "--workers", "2")
c.eq("--filter with --workers 2: the same flows", flow_keys(workers), flow_keys(kept))
c.eq("--filter with --workers 2: the stats event names the filter", of_type(workers, "stats")[0]["stats"].get("filter"),
     f"host {pacs}")
try:
    import jsonschema
    schema = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "schema",
                                         "stats.json")))
    jsonschema.validate(of_type(kept, "stats")[0], schema)
    c.true("--filter: the stats event follows its schema", True)
except ImportError:
    c.true("python3-jsonschema installed", False)
except Exception as ex:  # jsonschema.ValidationError
    c.true(f"--filter: the stats event follows its schema ({str(ex)[:200]})", False)
c.eq("--filter: the same flows as without the filter, for that host",
     flow_keys(kept), flow_keys([e for e in full if e["event_type"] != "flow" or pacs in (e["src_ip"], e["dst_ip"])]))
# tcpdump is installed with the test dependencies
by_tcpdump = os.path.join(tmp, "filtered-by-tcpdump.pcap")
tcpdump = subprocess.run(["tcpdump", "-n", "-r", demo, "-w", by_tcpdump, f"host {pacs}"], capture_output=True)
c.eq("tcpdump filtered the demo capture", tcpdump.returncode, 0)
if tcpdump.returncode == 0:
    c.eq("--filter: the packets tcpdump -r FILE -w OUT EXPR keeps", of_type(kept, "stats")[0]["stats"]["packets"],
         of_type(analyze(by_tcpdump), "stats")[0]["stats"]["packets"])
for expr in ("hots 10.0.0.1", "tcp port 99999"):
    out = os.path.join(tmp, "filtered.jsonl")
    rc, _, err = medmon("analyze", demo, "--filter", expr, "--out", out)
    c.eq(f"--filter '{expr}': exit 2", rc, 2)
    c.true(f"--filter '{expr}': says the filter is bad ({err.strip()[:120]})", err.startswith("medmon: bad BPF filter"))
    c.true(f"--filter '{expr}': nothing written", not os.path.exists(out))
rc, _, err = medmon("analyze", pcap("core/raw_ip.pcap"), "--filter", "ether host 1:2:3:4:5:6", "--out", "-")
c.eq("--filter that does not fit the file's link type: exit 2", rc, 2)
c.true(f"--filter that does not fit the file's link type: names the file ({err.strip()[:160]})", "raw_ip.pcap: bad BPF filter" in err)

shutil.rmtree(tmp, ignore_errors=True)
c.done()
