"""Helpers shared by the golden tests: run the medmon binary, parse its JSON Lines, make its pseudonyms."""
import hashlib
import hmac
import json
import os
import subprocess
import sys

MEDMON = os.environ.get("MEDMON") or os.path.join(os.path.dirname(__file__), "../../build/sensor/cli/medmon")
SRC = os.environ.get("MEDMON_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
OUT = os.environ.get("MEDMON_TEST_OUT") or os.path.join(SRC, "build", "test-output")


def pcap(*parts):
    """Path of a capture under pcaps/."""
    return os.path.join(SRC, "pcaps", *parts)


def run(args, check_rc=(0, 1)):
    """Runs medmon with args; returns (returncode, stdout, stderr)."""
    p = subprocess.run([MEDMON] + list(args), capture_output=True, text=True, timeout=600)
    if check_rc is not None and p.returncode not in check_rc:
        raise AssertionError(f"medmon {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p.returncode, p.stdout, p.stderr


def analyze(files, *extra, keep_as=None):
    """Runs `medmon analyze` and returns the list of events (dicts), in output order.
    keep_as: a name under MEDMON_TEST_OUT to keep the raw JSONL for later inspection."""
    if isinstance(files, str):
        files = [files]
    rc, out, err = run(["analyze", *files, "--out", "-", *extra])
    if keep_as:
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, keep_as + ".jsonl"), "w") as f:
            f.write(out)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def pseudonym(value):
    """What medmon writes in place of a PHI value under the default site key."""
    return "phi:" + hmac.new(b"medmon-default-site-key", value.encode(), hashlib.sha256).hexdigest()[:16]


def of_type(events, t):
    return [e for e in events if e["event_type"] == t]


class Checker:
    """Collects failures so one run reports all of them."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.checks = 0

    def eq(self, what, got, want):
        self.checks += 1
        if got != want:
            self.failures.append(f"{what}: got {got!r}, want {want!r}")

    def true(self, what, cond):
        self.checks += 1
        if not cond:
            self.failures.append(what)

    def done(self):
        for f in self.failures:
            print(f"FAIL {self.name}: {f}")
        print(f"{self.name}: {self.checks - len(self.failures)} passed, {len(self.failures)} failed")
        sys.exit(1 if self.failures or self.checks == 0 else 0)
