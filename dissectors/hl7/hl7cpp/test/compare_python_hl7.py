#!/usr/bin/python3
"""Parses every sample in DATA with python-hl7 and with hl7cpp (the hl7dump example, --tree) and
compares them field by field: segments, fields, repetitions, components, sub-components, raw and
unescaped. Files named *bad* must be rejected by both.
Usage: compare_python_hl7.py HL7DUMP DATA_DIR"""
import glob
import json
import logging
import os
import subprocess
import sys

import hl7
from hl7.exceptions import ParseException

logging.disable(logging.CRITICAL)  # python-hl7 logs dropped escape sequences


def norm(x, depth):
    """python-hl7 nests only as deep as the separators present; pad to a fixed depth."""
    if isinstance(x, str):
        v = x
        for _ in range(depth):
            v = [v]
        return v
    return [norm(c, depth - 1) for c in x]


def py_tree(msg):
    esc = msg.esc
    out = []
    for seg in msg:
        header = str(seg[0]) in ("MSH", "BHS", "FHS")
        fields = []
        for i, f in enumerate(seg):
            reps = norm(f, 3) if not isinstance(f, str) else norm(f, 3)
            tree = []
            for rep in reps:
                tr = []
                for comp in rep:
                    tc = []
                    for leaf in comp:
                        raw_leaf = i == 0 or (header and i in (1, 2))
                        text = leaf if raw_leaf else msg.unescape(leaf)
                        tc.append([leaf, text])
                    tr.append(tc)
                tree.append(tr)
            fields.append(tree)
        out.append(fields)
    return out, esc


def highlight(leaf, esc):
    return (esc + "H" + esc) in leaf or (esc + "N" + esc) in leaf


def compare(a, b, esc, where, failures):
    """a: python tree, b: hl7cpp tree."""
    if len(a) != len(b):
        failures.append(f"{where}: {len(a)} segments in python-hl7, {len(b)} in hl7cpp")
        return 0
    n = 0
    for si, (sa, sb) in enumerate(zip(a, b)):
        name = sa[0][0][0][0][0]
        if len(sa) != len(sb):
            failures.append(f"{where} {name}: {len(sa) - 1} fields vs {len(sb) - 1}")
            continue
        for fi, (fa, fb) in enumerate(zip(sa, sb)):
            path = f"{where} {name}-{fi}"
            shape_a = [[len(c) for c in r] for r in fa]
            shape_b = [[len(c) for c in r] for r in fb]
            if shape_a != shape_b:
                failures.append(f"{path}: shape {shape_a} vs {shape_b}")
                continue
            for ra, rb in zip(fa, fb):
                for ca, cb in zip(ra, rb):
                    for la, lb in zip(ca, cb):
                        n += 1
                        if la[0] != lb[0]:
                            failures.append(f"{path}: raw {la[0]!r} vs {lb[0]!r}")
                        elif not highlight(la[0], esc) and la[1] != lb[1]:
                            failures.append(f"{path}: unescaped {la[1]!r} vs {lb[1]!r}")
    return n


def main():
    dump, data = sys.argv[1], sys.argv[2]
    failures, files, leaves = [], 0, 0
    for path in sorted(glob.glob(os.path.join(data, "*.hl7"))):
        name = os.path.basename(path)
        text = open(path, "rb").read().decode("latin-1")
        p = subprocess.run([dump, "--tree", path], capture_output=True, text=True)
        files += 1
        try:
            f = hl7.parse_file(text)
            messages = [m for batch in f for m in batch]
            py_error = None
        except ParseException as e:
            py_error = e
        if "bad" in name:
            if py_error is None:
                failures.append(f"{name}: python-hl7 accepted a bad sample")
            if p.returncode == 0:
                failures.append(f"{name}: hl7cpp did not flag a bad sample")
            continue
        if py_error is not None:
            failures.append(f"{name}: python-hl7 rejected it: {py_error}")
            continue
        if p.returncode != 0:
            failures.append(f"{name}: hl7dump exit {p.returncode}: {p.stderr.strip()}")
            continue
        ours = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        if len(ours) != len(messages):
            failures.append(f"{name}: {len(messages)} messages in python-hl7, {len(ours)} in hl7cpp")
            continue
        for k, (m, t) in enumerate(zip(messages, ours)):
            tree, esc = py_tree(m)
            leaves += compare(tree, t, esc, f"{name}#{k + 1}", failures)
    for f in failures:
        print("FAIL", f)
    print(f"compared {files} files, {leaves} leaves: {len(failures)} differences")
    sys.exit(1 if failures or leaves == 0 else 0)


main()
