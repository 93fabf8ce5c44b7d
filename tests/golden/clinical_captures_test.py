#!/usr/bin/python3
"""The clinical captures are exactly what their generator makes: running
pcaps/clinical/make_captures.py into a temporary directory reproduces every committed file."""
import filecmp
import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from golden import SRC, Checker  # noqa: E402

c = Checker("clinical_captures")
gen = os.path.join(SRC, "pcaps", "clinical", "make_captures.py")
tmp = tempfile.mkdtemp(prefix="medmon-clinical-")
try:
    p = subprocess.run(["/usr/bin/python3", gen, tmp], capture_output=True, text=True, timeout=300)
    c.eq("generator exit code", p.returncode, 0)
    committed = sorted(os.path.basename(x) for x in glob.glob(os.path.join(SRC, "pcaps", "clinical", "*.pcap")))
    made = sorted(os.path.basename(x) for x in glob.glob(os.path.join(tmp, "*.pcap")))
    c.eq("same set of captures", made, committed)
    for name in committed:
        c.true(f"{name} is reproduced byte for byte",
               os.path.exists(os.path.join(tmp, name)) and
               filecmp.cmp(os.path.join(tmp, name), os.path.join(SRC, "pcaps", "clinical", name), shallow=False))
finally:
    shutil.rmtree(tmp)
c.done()
