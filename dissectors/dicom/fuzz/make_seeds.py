#!/usr/bin/env python3
"""Turns the captures in pcaps/dicom into fuzz seeds in fuzz_dicom's delivery-script format.
Usage: make_seeds.py PCAPDIR OUTDIR"""
import os
import struct
import sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


def flows(path):
    data = open(path, "rb").read()
    pos, res = 24, {}
    while pos + 16 <= len(data):
        incl = struct.unpack("<I", data[pos + 8:pos + 12])[0]
        fr = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(fr) < 54 or fr[12:14] != b"\x08\x00" or fr[23] != 6:
            continue
        ihl = (fr[14] & 15) * 4
        t = 14 + ihl
        sp, dp = struct.unpack(">HH", fr[t:t + 4])
        flags = fr[t + 13]
        total = struct.unpack(">H", fr[16:18])[0]
        pl = fr[t + (fr[t + 12] >> 4) * 4:14 + total]
        key = tuple(sorted([sp, dp]))
        f = res.setdefault(key, {"client": None, "parts": []})
        if flags & 0x02 and not flags & 0x10:
            f["client"] = sp
        if pl:
            f["parts"].append((0 if sp == f["client"] else 1, pl))
    return res.values()


n = 0
for name in sorted(os.listdir(src)):
    if not name.endswith(".pcap"):
        continue
    for f in flows(os.path.join(src, name)):
        script = bytearray()
        for d, pl in f["parts"]:
            pl = pl[:4096]  # keep seeds small: headers matter, pixel data does not
            for o in range(0, len(pl), 256):
                c = pl[o:o + 256]
                script += bytes([d, len(c) - 1]) + c
        if script:
            open(os.path.join(out, f"{name}-{n}"), "wb").write(script[:65536])
            n += 1
print(n, "seeds")
