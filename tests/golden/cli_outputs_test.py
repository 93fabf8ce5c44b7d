#!/usr/bin/python3
"""The files the commands write, checked before anything is written.

- A sink file that cannot be opened leaves the --out file of an earlier run as it was (every
  file is checked before any is opened); a file that cannot be created is exit 3 (an output
  error), a bad sink setting exit 2; a sink from --config is named by file:line:column.
- An output that names an input file (the capture for analyze --out/--report/--sink file, the
  events for report -o, the form for mds2 import -o) is refused with exit 2, the input intact;
  report -o - writes the report to standard output.
- Standard input that is not a capture, as the first input, leaves the earlier events file alone.
- A --report naming the --out file or a sink's file is refused with exit 2, and so are standard
  output (the default --out -, a stdout sink) redirected onto the capture or the --report file.
- An events file that medmon report or medmon assets cannot open is exit 3.
- A --report that cannot be written is found before the run; a report that fails after the run
  does not hide the --fail-on verdict.
- --out /dev/stdout appended to a file (>>) keeps the earlier lines, and the report reads this
  run's events only.
- A configuration or site file of several YAML documents is refused with file:line:column.
- --baseline without a site, or a directory as the baseline, is exit 2.
- A path in --config that cannot be used (policy.site, phi_key_file) is named with the
  configuration's file:line:column and the reason.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden import MEDMON, SRC, Checker, pcap  # noqa: E402

C = Checker("cli_outputs")
work = tempfile.mkdtemp(prefix="medmon-cli-outputs-")
DEMO = pcap("demo", "demo.pcap")
SITE = os.path.join(SRC, "policies", "sites", "demo-site.yaml")


def medmon(*args, stdin=None):
    p = subprocess.run([MEDMON, *args], input=stdin, capture_output=True, timeout=300)
    return p.returncode, p.stderr.decode("utf-8", "replace").strip()


def path(name):
    return os.path.join(work, name)


def earlier_run(name="keep.jsonl"):
    p = path(name)
    with open(p, "w") as f:
        f.write("old\n")
    return p


def kept(p):
    return open(p).read() == "old\n"


def config(name, text):
    p = path(name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o600)
    return p


def sinks():
    keep = earlier_run()
    rc, err = medmon("analyze", DEMO, "-o", keep, "-q", "--sink", "file=/nonexistent/x.jsonl")
    C.eq(f"--sink file in a missing directory: exit 3 ({err})", rc, 3)
    C.true("--sink file in a missing directory: the --out file is kept", kept(keep))
    C.true(f"--sink file in a missing directory: says why ({err})", "/nonexistent/x.jsonl: No such file or directory" in err)

    cfg = config("sink.yaml", "output:\n  sinks:\n    - type: file\n      url: /nonexistent/y.jsonl\n")
    rc, err = medmon("analyze", DEMO, "-o", keep, "-q", "-c", cfg)
    C.eq(f"sink file in --config: exit 3 ({err})", rc, 3)
    C.true("sink file in --config: the --out file is kept", kept(keep))
    C.true(f"sink file in --config: file:line:column ({err})", f"{cfg}:3:7: /nonexistent/y.jsonl: No such file" in err)

    # A stdout sink beside events already on standard output, by any of its names: each event would
    # be written twice into one stream.
    for out in ("-", "/dev/stdout", "/dev/fd/1"):
        rc, err = medmon("analyze", DEMO, "-q", "-o", out, "--sink", "stdout")
        C.eq(f"--out {out} --sink stdout: exit 2 ({err})", rc, 2)
        C.true(f"--out {out} --sink stdout: says why ({err})", "events already go to standard output" in err)

    rc, err = medmon("analyze", DEMO, "-q", "-o", "/nonexistent/dir/x.jsonl")
    C.eq(f"--out in a missing directory: exit 3 ({err})", rc, 3)
    os.mkdir(path("outdir"))
    rc, err = medmon("analyze", DEMO, "-q", "-o", path("outdir"))
    C.eq(f"--out a directory: exit 3 ({err})", rc, 3)
    C.true(f"--out a directory: says why ({err})", "Is a directory" in err)


def same_files():
    victim = path("victim.pcap")
    shutil.copy(DEMO, victim)
    before = open(victim, "rb").read()
    for args in (["-o", victim], ["-o", os.devnull, "--report", victim], ["-o", os.devnull, "--sink", "file=" + victim],
                 ["-o", os.path.join(work, ".", "victim.pcap")]):
        rc, err = medmon("analyze", victim, "-q", *args)
        C.eq(f"analyze {' '.join(args)} onto the input: exit 2 ({err})", rc, 2)
        C.true(f"analyze {' '.join(args)}: says so ({err})", "is the input file" in err)
        C.true(f"analyze {' '.join(args)}: the capture is intact", open(victim, "rb").read() == before)

    # Standard output redirected onto the capture (`--out -`, the default, or a stdout sink, `>> victim.pcap`).
    for args in ([], ["-o", "-"], ["-o", os.devnull, "--sink", "stdout"]):
        with open(victim, "ab") as f:
            p = subprocess.run([MEDMON, "analyze", victim, "-q", *args], stdout=f, stderr=subprocess.PIPE, timeout=300)
        err = p.stderr.decode().strip()
        C.eq(f"analyze {' '.join(args)} >> the input: exit 2 ({err})", p.returncode, 2)
        C.true(f"analyze {' '.join(args)} >> the input: says so ({err})", "is the input file" in err)
        C.true(f"analyze {' '.join(args)} >> the input: the capture is intact", open(victim, "rb").read() == before)

    # The capture on standard input (`analyze - < victim.pcap`) is the input file as well.
    for args in (["-o", victim], [], ["-o", os.devnull, "--report", victim]):
        with open(victim, "rb") as fin, open(victim, "ab") as fout:
            p = subprocess.run([MEDMON, "analyze", "-", "-q", *args], stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                               timeout=300)
        err = p.stderr.decode().strip()
        C.eq(f"analyze - {' '.join(args)} < the input: exit 2 ({err})", p.returncode, 2)
        C.true(f"analyze - {' '.join(args)} < the input: says so ({err})", "is the input file - (standard input)" in err)
        C.true(f"analyze - {' '.join(args)} < the input: the capture is intact", open(victim, "rb").read() == before)
    with open(victim, "rb") as fin:  # read from a file on standard input, written elsewhere: fine
        p = subprocess.run([MEDMON, "analyze", "-", "-q", "-o", os.devnull], stdin=fin, capture_output=True, timeout=300)
    C.eq(f"analyze - < a capture, --out elsewhere: exit 0 ({p.stderr.decode().strip()})", p.returncode, 0)

    ev = path("ev.jsonl")
    rc, err = medmon("analyze", DEMO, "-q", "-o", ev)
    events = open(ev).read()
    rc, err = medmon("report", ev, "-o", ev)
    C.eq(f"report -o onto its events: exit 2 ({err})", rc, 2)
    C.true("report -o onto its events: the events are intact", open(ev).read() == events)
    # `-o -` is standard output, as for the other commands: no file named "-".
    cwd = path("dash")
    os.mkdir(cwd)
    p = subprocess.run([MEDMON, "report", ev, "-o", "-"], cwd=cwd, capture_output=True, timeout=300)
    C.eq(f"report -o -: exit 0 ({p.stderr.decode().strip()})", p.returncode, 0)
    C.true("report -o -: the HTML is on standard output", p.stdout.startswith(b"<!DOCTYPE html"))
    C.true("report -o -: no file named -", not os.path.exists(os.path.join(cwd, "-")))

    form = path("f.xlsx")
    shutil.copy(os.path.join(SRC, "tests", "data", "mds2", "nema-example-mds2-2019.xlsx"), form)
    before = open(form, "rb").read()
    rc, err = medmon("mds2", "import", form, "-o", form)
    C.eq(f"mds2 import -o onto the form: exit 2 ({err})", rc, 2)
    C.true("mds2 import -o onto the form: the form is intact", open(form, "rb").read() == before)

    # A model file that cannot be created is an output error (3) with its reason, found before the
    # form is read (standard input that is no form gives the output's error, not the form's).
    for out, why in (("/nonexistent/m.yaml", "No such file or directory"), (work, "Is a directory")):
        rc, err = medmon("mds2", "import", form, "-o", out)
        C.eq(f"mds2 import -o {out}: exit 3 ({err})", rc, 3)
        C.true(f"mds2 import -o {out}: says why ({err})", f"{out}: cannot write the model: {why}" in err)
        rc, err = medmon("mds2", "import", "/dev/stdin", "-o", out, stdin=b"no form here\n")
        C.eq(f"mds2 import /dev/stdin -o {out}: exit 3 before the form is read ({err})", rc, 3)
    rc, err = medmon("mds2", "import", form, "-o", "/dev/full")
    C.eq(f"mds2 import -o /dev/full: exit 3 ({err})", rc, 3)
    C.true(f"mds2 import -o /dev/full: says why ({err})", "/dev/full: cannot write the model: No space left on device" in err)


def stdin_not_capture():
    keep = earlier_run()
    rc, err = medmon("analyze", "-", "-o", keep, "-q", stdin=b"hello\n")
    C.eq(f"stdin not a capture: exit 3 ({err})", rc, 3)
    C.true("stdin not a capture: the earlier events file is kept", kept(keep))
    # A capture on stdin is still read.
    rc, err = medmon("analyze", "-", "-o", keep, "-q", stdin=open(DEMO, "rb").read())
    C.eq(f"capture on stdin: exit 1 (alerts of the demo) or 0 ({err})", rc in (0, 1), True)
    C.true("capture on stdin: events written", open(keep).read().count("\n") > 10)


def report():
    keep = earlier_run()
    rc, err = medmon("analyze", DEMO, "--site", SITE, "--report", "/nonexistent/r.html", "-o", keep, "-q")
    C.eq(f"--report in a missing directory: exit 3 before the run ({err})", rc, 3)
    C.true("--report in a missing directory: the --out file is kept", kept(keep))
    C.true(f"--report in a missing directory: says why ({err})", "No such file or directory" in err)
    # An events file that cannot be read is an input error (3), as a capture is to analyze.
    for cmd in ("assets", "report"):
        for ev, why in ((path("missing.jsonl"), "No such file or directory"), (work, "Is a directory")):
            rc, err = medmon(cmd, ev, *(["-o", path("r.html")] if cmd == "report" else []))
            C.eq(f"{cmd} {ev}: exit 3 ({err})", rc, 3)
            C.true(f"{cmd} {ev}: says why ({err})", f"{ev}: cannot open: {why}" in err)
    # --report - is standard output, its summary on stderr; refused when the events go there too.
    cwd = path("dash-analyze")
    os.mkdir(cwd)
    p = subprocess.run([MEDMON, "analyze", DEMO, "--site", SITE, "-o", keep, "--report", "-"], cwd=cwd,
                       capture_output=True, timeout=300)
    C.eq(f"--report -: exit 1, the demo's alerts ({p.stderr.decode().strip()[-200:]})", p.returncode, 1)
    C.true("--report -: the HTML alone is on standard output", p.stdout.startswith(b"<!DOCTYPE html"))
    C.true("--report -: no file named -", not os.path.exists(os.path.join(cwd, "-")))
    p = subprocess.run([MEDMON, "analyze", DEMO, "--report", "-", "-q"], cwd=cwd, capture_output=True, timeout=300)
    C.eq(f"--out - --report -: exit 2 ({p.stderr.decode().strip()})", p.returncode, 2)
    # The report is written after the run: on the --out file or a sink's file it would replace
    # the events it was made from.
    for ev, rep, extra in (("same.html", "same.html", []), ("same.html", "same.pdf", []),
                           ("o.jsonl", "sink.html", ["--sink", "file=" + path("sink.html")])):
        keep = earlier_run(ev)
        rc, err = medmon("analyze", DEMO, "--site", SITE, "-o", keep, "--report", path(rep), *extra, "-q")
        tag = f"--out {ev} --report {rep} {' '.join(extra)}"
        C.eq(f"{tag}: exit 2 ({err})", rc, 2)
        C.true(f"{tag}: says so ({err})", "--report" in err and "the events would be overwritten" in err)
        C.true(f"{tag}: the earlier events file is kept", kept(keep))
    # Events on standard output redirected to the --report file (`--report r.html > r.html`): the report,
    # written last, would replace them.
    for extra in ([], ["-o", os.devnull, "--sink", "stdout"]):
        with open(path("rep.html"), "wb") as f:
            p = subprocess.run([MEDMON, "analyze", DEMO, "--site", SITE, "--report", path("rep.html"), "-q", *extra],
                               stdout=f, stderr=subprocess.PIPE, timeout=300)
        err = p.stderr.decode().strip()
        tag = f"--report FILE {' '.join(extra)} > FILE"
        C.eq(f"{tag}: exit 2 ({err})", p.returncode, 2)
        C.true(f"{tag}: says so ({err})", "--report" in err and "the events would be overwritten" in err)
    rc, err = medmon("analyze", DEMO, "-o", os.devnull, "--report", os.devnull, "-q")
    C.true(f"--out and --report both {os.devnull}: not refused ({err})", rc in (0, 1))
    # medmon report: a report file that cannot be created is an output error (3), as for analyze.
    for rep, why in (("/nonexistent/r.html", "No such file or directory"), (work, "Is a directory"),
                     ("/nonexistent/r.pdf", "No such file or directory")):
        rc, err = medmon("report", path("ev.jsonl"), "-o", rep)
        C.eq(f"report -o {rep}: exit 3, as analyze --report ({err})", rc, 3)
        C.true(f"report -o {rep}: says why ({err})", why in err)
    # Events to a pipe (--out /dev/stdout | ...): the report keeps them in memory rather than read
    # back the pipe this process writes to, which would wait forever.
    medmon("analyze", DEMO, "--site", SITE, "-o", path("ev.jsonl"), "--report", path("file.html"), "-q")
    try:
        p = subprocess.run([MEDMON, "analyze", DEMO, "--site", SITE, "-o", "/dev/stdout", "--report",
                            path("pipe.html"), "-q", "--fail-on", "none"], capture_output=True, timeout=60)
        C.eq(f"--out /dev/stdout (a pipe) --report: exit 0 ({p.stderr.decode().strip()})", p.returncode, 0)
        C.eq("--out /dev/stdout (a pipe) --report: the events on stdout",
             p.stdout, open(path("ev.jsonl"), "rb").read())
        C.eq("--out /dev/stdout (a pipe) --report: the report of a file's events",
             open(path("pipe.html")).read().replace("pipe.html", "file.html"),
             open(path("file.html")).read().replace(path("ev.jsonl"), "analyze"))
    except subprocess.TimeoutExpired:
        C.true("--out /dev/stdout (a pipe) --report: finishes (it hung reading its own pipe)", False)
    # Events to a file standard output appends to (--out /dev/stdout >> file): the earlier runs'
    # lines stay, this run's follow them, and the report is made of this run's alone.
    earlier = b'{"ts":"2020-01-01T00:00:00.000000Z","event_type":"flow","flow_id":"old","src_ip":"10.99.99.99"}\n'
    with open(path("append.jsonl"), "wb") as f:
        f.write(earlier)
    with open(path("append.jsonl"), "ab") as f:
        p = subprocess.run([MEDMON, "analyze", DEMO, "--site", SITE, "-o", "/dev/stdout", "--report",
                            path("append.html"), "-q", "--fail-on", "none"], stdout=f, stderr=subprocess.PIPE,
                           timeout=300)
    C.eq(f"--out /dev/stdout >> file --report: exit 0 ({p.stderr.decode().strip()})", p.returncode, 0)
    C.eq("--out /dev/stdout >> file: the earlier lines kept, this run's after them",
         open(path("append.jsonl"), "rb").read(), earlier + open(path("ev.jsonl"), "rb").read())
    C.eq("--out /dev/stdout >> file --report: the report of this run's events only",
         open(path("append.html")).read().replace("append.html", "file.html"),
         open(path("file.html")).read().replace(path("ev.jsonl"), "analyze"))
    # A report that fails after the run (no Chromium for a PDF) keeps the --fail-on verdict.
    env = dict(os.environ, MEDMON_CHROMIUM="/nonexistent/chromium")
    p = subprocess.run([MEDMON, "analyze", DEMO, "--site", SITE, "--report", path("r.pdf"), "-o", keep, "-q",
                        "--fail-on", "low"], env=env, capture_output=True, text=True, timeout=300)
    C.eq(f"--report failing after a run with alerts: exit 1 ({p.stderr.strip()})", p.returncode, 1)
    p = subprocess.run([MEDMON, "analyze", DEMO, "--site", SITE, "--report", path("r.pdf"), "-o", keep, "-q",
                        "--fail-on", "none"], env=env, capture_output=True, text=True, timeout=300)
    C.eq(f"--report failing after a run, --fail-on none: exit 2 ({p.stderr.strip()})", p.returncode, 2)


def yaml_documents():
    cfg = config("multi.yaml", "flows:\n  max_flows: 10\n---\nbogus: 1\n")
    rc, err = medmon("analyze", DEMO, "-o", os.devnull, "-q", "-c", cfg)
    C.eq(f"config of two documents: exit 2 ({err})", rc, 2)
    C.true(f"config of two documents: file:line:column ({err})", f"{cfg}:3:1: a second YAML document" in err)
    # The demo site with a second document, beside the models it names (../devices).
    os.mkdir(path("sites"))
    os.symlink(os.path.join(SRC, "policies", "devices"), path("devices"))
    site = path("sites/site.yaml")
    with open(SITE) as f:
        text = f.read()
    with open(site, "w") as f:
        f.write(text)
    rc, err = medmon("policy", "check", site)
    C.eq(f"site of one document: exit 0 ({err[-300:]})", rc, 0)
    with open(site, "w") as f:
        f.write(text + "\n---\nbogus: 1\n")
    rc, err = medmon("policy", "check", site)
    C.eq(f"site of two documents: exit 2 ({err[-300:]})", rc, 2)
    C.true(f"site of two documents: names the file ({err[-300:]})", f"{site}:" in err and "second YAML document" in err)


def baseline():
    rc, err = medmon("analyze", DEMO, "-o", os.devnull, "-q", "--site", SITE, "--baseline", work)
    C.eq(f"--baseline a directory: exit 2 ({err})", rc, 2)
    C.true(f"--baseline a directory: says so ({err})", "directory" in err)
    rc, err = medmon("analyze", DEMO, "-o", os.devnull, "-q", "--baseline", path("nonexist.json"))
    C.eq(f"--baseline without a site: exit 2 ({err})", rc, 2)
    C.true(f"--baseline without a site: says so ({err})", "needs a site policy" in err)


def config_paths():
    cfg = config("sitebad.yaml", "policy:\n  site: /nonexistent/site.yaml\n")
    rc, err = medmon("analyze", DEMO, "-o", os.devnull, "-q", "-c", cfg)
    C.eq(f"policy.site missing: exit 2 ({err})", rc, 2)
    C.true(f"policy.site missing: config file:line:column and why ({err})",
           f"{cfg}:2:9: policy.site /nonexistent/site.yaml: No such file or directory" in err)
    cfg = config("pk.yaml", "output:\n  phi_key_file: /nonexistent/phi.key\n")
    rc, err = medmon("analyze", DEMO, "-o", os.devnull, "-q", "-c", cfg)
    C.eq(f"phi_key_file in a missing directory: exit 2 ({err})", rc, 2)
    C.true(f"phi_key_file in a missing directory: config file:line:column and why ({err})",
           f"{cfg}:2:17: /nonexistent/phi.key: cannot create PHI key file: No such file or directory" in err)
    cfg = config("pkdir.yaml", f"output:\n  phi_key_file: {work}\n")
    rc, err = medmon("analyze", DEMO, "-o", os.devnull, "-q", "-c", cfg)
    C.eq(f"phi_key_file a directory: exit 2 ({err})", rc, 2)
    C.true(f"phi_key_file a directory: says so ({err})", f"{cfg}:2:17: {work}: PHI key file is a directory" in err)


try:
    config_paths()
    sinks()
    same_files()
    stdin_not_capture()
    report()
    yaml_documents()
    baseline()
finally:
    shutil.rmtree(work, ignore_errors=True)
C.done()
