#!/usr/bin/python3
"""Every capture in pcaps/ and bit-flipped copies of each run without a crash.

Flipped copies are made at test time (never committed) with a fixed seed per file, so a failure
reproduces: MEDMON_KEEP_FLIPPED=DIR keeps them. Two kinds per capture:
- "data": bits flipped only inside packet bytes, file and record headers intact. The file stays
  a valid capture, so medmon must exit 0 or 1 and report what it found malformed as anomalies.
- "any": bits flipped anywhere after the file header, record lengths included. Exit 3 (input
  error) is then also acceptable; a signal, exit 2 or a sanitizer report never is.
Run against the sanitizer build (MEDMON_SANITIZE=ON) this is the ASan/UBSan acceptance check.
"""
import glob
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, SRC, Checker  # noqa: E402

c = Checker("core_robustness")
keep = os.environ.get("MEDMON_KEEP_FLIPPED")
tmp = keep or tempfile.mkdtemp(prefix="medmon-flip-")
os.makedirs(tmp, exist_ok=True)
FLIPS_PER_KB = float(os.environ.get("MEDMON_FLIPS_PER_KB", "4"))
VARIANTS = int(os.environ.get("MEDMON_FLIP_VARIANTS", "2"))


def packet_ranges(data):
    """Byte ranges of packet data in a pcap or pcapng file (headers excluded)."""
    out = []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
            out.append((off + 16, min(off + 16 + incl, len(data))))
            off += 16 + incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        e = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        off = 0
        while off + 12 <= len(data):
            btype, blen = struct.unpack(e + "II", data[off:off + 8])
            if blen < 12:
                break
            if btype == 6 and off + 28 <= len(data):
                cap = struct.unpack(e + "I", data[off + 20:off + 24])[0]
                out.append((off + 28, min(off + 28 + cap, len(data))))
            off += blen
    return [(a, b) for a, b in out if b > a]


def flipped(data, seed, anywhere):
    rng = random.Random(seed)
    buf = bytearray(data)
    if anywhere:
        ranges = [(24, len(buf))] if len(buf) > 24 else []
    else:
        ranges = packet_ranges(data)
    total = sum(b - a for a, b in ranges)
    if total == 0:
        return bytes(buf)
    n = max(1, int(total * FLIPS_PER_KB / 1024))
    for _ in range(n):
        k = rng.randrange(total)
        for a, b in ranges:
            if k < b - a:
                buf[a + k] ^= 1 << rng.randrange(8)
                break
            k -= b - a
    return bytes(buf)


def check(rel, path, allowed):
    try:
        p = subprocess.run([MEDMON, "analyze", path, "--out", "/dev/null"], capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        c.true(f"{rel}: finishes within 120 s (hang?)", False)
        return
    err = p.stderr.decode("utf-8", "replace")
    c.true(f"{rel}: exit code {p.returncode} in {allowed} ({err.strip()[-300:]})", p.returncode in allowed)
    c.true(f"{rel}: no sanitizer report", "Sanitizer" not in err and "runtime error:" not in err)


captures = sorted(p for p in glob.glob(os.path.join(SRC, "pcaps", "**", "*"), recursive=True)
                  if p.endswith((".pcap", ".pcapng")))
c.true("captures found", len(captures) > 10)
BROKEN = {"truncated.pcap", "not_a_pcap.pcap", "unknown_linktype.pcap"}
for path in captures:
    rel = os.path.relpath(path, SRC)
    base = os.path.basename(path)
    with open(path, "rb") as f:
        data = f.read()
    check(rel, path, (3,) if base in BROKEN else (0, 1))
    for v in range(VARIANTS):
        for anywhere in (False, True):
            seed = zlib.crc32(rel.encode()) * 100 + v * 2 + anywhere
            out = os.path.join(tmp, "%s.%s%d%s" % (base, "any" if anywhere else "data", v, os.path.splitext(base)[1]))
            with open(out, "wb") as f:
                f.write(flipped(data, seed, anywhere))
            ok = (0, 1, 3) if anywhere or base in BROKEN else (0, 1)
            check(f"{rel} flipped ({'anywhere' if anywhere else 'packet data'}, seed {seed})", out, ok)
            if not keep:
                os.unlink(out)
if not keep:
    os.rmdir(tmp)
c.done()
