#!/usr/bin/python3
"""`medmon analyze --workers N` writes the same bytes whatever N, and the same as without
--workers: on every bundled capture (pcaps/), with no site, the demo site and the rules site.
The merge puts each worker's events where one pipeline writes them (the packet's position in
the input; the flows a packet's time or the end of the input ends, in the order of their last
packets), so events with the same time keep one order, and the asset inventory, which runs on
the merged events, sums up its changes the same way.

The differences allowed are in the `stats` event only: the reader's own counters of held IP
fragments (`workers.fragments.*`), which exist only with several workers, and the memory peaks
(`*.memory_peak`), which add up each worker's peak. `flows.peak_active` is the peak of all
workers' open flows together, followed in input order, as one flow table's.
"""
import glob
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import SRC, Checker, run  # noqa: E402

SITES = {
    "no site": [],
    "demo site": ["--site", os.path.join(SRC, "policies", "sites", "demo-site.yaml")],
    "rules site": ["--site", os.path.join(SRC, "policies", "sites", "rules-hospital.yaml")],
}
WORKERS = {"no site": (2, 3, 4), "demo site": (2, 3), "rules site": (2, 3)}
PER_WORKER_COUNTERS = re.compile(r'"(workers\.fragments\.[a-z_]+|[a-z0-9_.]*memory_peak)":\d+,?')


def output(path, site, workers):
    args = ["analyze", path, *SITES[site], "--fail-on", "none", "--out", "-", "-q"]
    if workers:
        args += ["--workers", str(workers)]
    rc, out, err = run(args, check_rc=None)  # a capture that is not one is exit 3, with what was read
    return f"{out}exit {rc}\n{err}"


def without_per_worker_counters(out):
    return "\n".join(PER_WORKER_COUNTERS.sub("", line).replace(",}", "}") if '"event_type":"stats"' in line else line
                     for line in out.splitlines())


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines())):
        if x != y:
            return f"line {i + 1}: {x[:160]} | {y[:160]}"
    return f"line counts {len(a.splitlines())} and {len(b.splitlines())}"


def main():
    c = Checker("core_workers_order")
    captures = sorted(glob.glob(os.path.join(SRC, "pcaps", "**", "*.pcap*"), recursive=True))
    jobs = [(p, site, n) for p in captures for site in SITES for n in (None, 1, *WORKERS[site])]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outs = dict(zip(jobs, pool.map(lambda j: output(*j), jobs)))
    for p in captures:
        name = os.path.relpath(p, SRC)
        for site in SITES:
            one = outs[p, site, None]
            c.true(f"{name}, {site}: events written", one.count("\n") >= 1)
            c.eq(f"{name}, {site}: --workers 1 writes what no --workers writes", outs[p, site, 1], one)
            for n in WORKERS[site]:
                many = outs[p, site, n]
                c.true(f"{name}, {site}: {n} workers write what one writes ({first_difference(one, many)})",
                       without_per_worker_counters(many) == without_per_worker_counters(one))
                if n != WORKERS[site][0]:
                    first = outs[p, site, WORKERS[site][0]]
                    c.true(f"{name}, {site}: {n} workers write what {WORKERS[site][0]} write "
                           f"({first_difference(first, many)})",
                           without_per_worker_counters(many) == without_per_worker_counters(first))
    c.true(f"captures compared ({len(captures)})", len(captures) >= 50)
    c.done()


if __name__ == "__main__":
    main()
