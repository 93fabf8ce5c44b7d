"""`medmon mds2 import` and `medmon policy check` through the binary.

- The NEMA example workbook imports into a model whose mds2_derived values follow the raw cells
  (read here independently with zipfile + ElementTree), and CSV/TSV/Markdown/PDF copies made from
  it by policies/mds2/test/make_variants.py give the same model.
- Policies with errors exit 2 with file:line:column messages; nothing crashes.
"""
import os
import re
import shutil
import subprocess
import sys
import zipfile
import xml.etree.ElementTree as ET

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from golden import MEDMON, OUT, SRC, Checker, run  # noqa: E402

XLSX = os.path.join(SRC, "tests", "data", "mds2", "nema-example-mds2-2019.xlsx")
NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"

# switch -> (question, value when the answer is Yes)
SWITCHES = {
    "internal_only": ("CONN-4", False), "internet_required": ("CONN-6", True),
    "communicates_internal": ("CONN-3", True), "tls_supported": ("CONN-7", True),
    "phi_any": ("MPII-1", True), "phi_wired": ("MPII-3.5", True), "phi_external": ("MPII-3.7", True),
    "phi_point_to_point_only": ("TXCF-1", True), "phi_encrypted_claim": ("TXCF-2", True),
    "phi_fixed_destinations": ("TXCF-3", True), "remote_service": ("RMOT-1", True),
    "file_shares_disabled": ("SAHD-7", True), "unused_ports_disabled": ("SAHD-8", True),
    "legacy_services_disabled": ("SAHD-9", True),
}


def raw_answers():
    z = zipfile.ZipFile(XLSX)
    shared = ["".join(t.text or "" for t in si.iter(NS + "t"))
              for si in ET.fromstring(z.read("xl/sharedStrings.xml")).iter(NS + "si")]
    out = {}
    for row in ET.fromstring(z.read("xl/worksheets/sheet1.xml")).iter(NS + "row"):
        cells = {}
        for c in row.iter(NS + "c"):
            col = re.match(r"[A-Z]+", c.get("r")).group()
            v = c.find(NS + "v")
            if v is not None:
                cells[col] = shared[int(v.text)] if c.get("t") == "s" else v.text
        qid = cells.get("A", "").strip()
        if re.match(r"^(DOC|[A-Z]{4})-\d+(\.\d+)*$", qid):
            out[qid] = " ".join(cells.get("C", "").split())
    return out


def without_source(text):
    return "\n".join(l for l in text.splitlines()
                     if "imported by" not in l.lower() and not l.startswith("      file:") and not l.startswith("      format:")
                     and not l.startswith("      sha256:") and not l.startswith("      sheet:")
                     and not l.startswith("  id: "))


def main():
    c = Checker("policy_cli")
    work = os.path.join(OUT, "policy_cli")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    # 1. XLSX import against the raw cells.
    model_path = os.path.join(work, "nema.yaml")
    rc, _, err = run(["mds2", "import", XLSX, "-o", model_path], check_rc=None)
    c.eq("mds2 import exit code", rc, 0)
    model = yaml.safe_load(open(model_path))
    raw = raw_answers()
    c.eq("240 answers", len(model["mds2"]["answers"]), 240)
    for switch, (qid, yes_value) in SWITCHES.items():
        ans = raw[qid]
        want = yes_value if ans == "Yes" else (not yes_value if ans == "No" else None)
        c.eq(f"mds2_derived.{switch} ({qid} = {ans})", model["mds2_derived"][switch], want)
    c.eq("CONN-4 raw", raw["CONN-4"], "No")
    c.eq("TXCF-2 raw", raw["TXCF-2"], "No")
    c.eq("internal_only from CONN-4 = No", model["mds2_derived"]["internal_only"], True)
    c.eq("phi_encrypted_claim from TXCF-2 = No", model["mds2_derived"]["phi_encrypted_claim"], False)
    for qid, ans in raw.items():
        cid = "SAHD" + qid[4:] if qid.startswith("SHAD-") else qid
        got = model["mds2"]["answers"].get(cid, {}).get("detail")
        if qid != "DOC-7":
            c.eq(f"detail of {qid}", got, ans)
    c.eq("SHAD-15 typo kept as raw_id", model["mds2"]["answers"]["SAHD-15"].get("raw_id"), "SHAD-15")
    c.eq("TXCF-2 NIST mapping", model["mds2"]["answers"]["TXCF-2"].get("nist_800_53"), "CM-7")
    text = open(model_path).read()
    c.true("switch comment cites CONN-4", "# CONN-4 = No" in text)

    # 2. The same form as CSV, TSV, Markdown and PDF.
    variants = os.path.join(work, "variants")
    subprocess.run(["/usr/bin/python3", os.path.join(SRC, "policies", "mds2", "test", "make_variants.py"), XLSX, variants],
                   check=True)
    for name in ("form.csv", "form.tsv", "form.md", "form.pdf"):
        out = os.path.join(work, name + ".yaml")
        rc, _, err = run(["mds2", "import", os.path.join(variants, name), "-o", out], check_rc=None)
        c.eq(f"import {name} exit code", rc, 0)
        if rc == 0:
            c.true(f"{name} gives the same model as the XLSX", without_source(open(out).read()) == without_source(text))

    # The bundled model of the example form is that import, word for word (under the id the demo
    # site gives it): a fix of the importer shows here until the model is imported again.
    bundled = os.path.join(SRC, "policies", "devices", "nema-example-glucose.yaml")
    again = os.path.join(work, "nema-bundled.yaml")
    rc, _, err = run(["mds2", "import", XLSX, "-o", again, "--id", "nema-example-glucose"], check_rc=None)
    c.eq("import with --id exit code", rc, 0)
    c.true("policies/devices/nema-example-glucose.yaml is the import of the form",
           rc == 0 and open(again).read() == open(bundled).read())

    # 3. Imported model is usable as-is in a site.
    rc, out, err = run(["policy", "check", os.path.join(SRC, "policies", "sites", "demo-site.yaml")], check_rc=None)
    c.eq("demo site checks clean", rc, 0)
    c.eq("demo site: no errors", err.strip(), "")

    # 4. Refusals: older editions, not a form, files that do not exist.
    old = os.path.join(work, "mds2-2013.txt")
    open(old, "w").write("Manufacturer Disclosure Statement for Medical Device Security - HN 1-2013\n"
                         "Management of private data\nTransmit/receive private data via a wired network connection: Yes\n")
    rc, _, err = run(["mds2", "import", old, "-o", os.path.join(work, "x.yaml")], check_rc=None)
    c.eq("2013 edition exit code", rc, 2)
    c.true("2013 edition named in the message", "HN 1-2013" in err and "only ANSI/NEMA HN 1-2019" in err)
    rc, _, err = run(["mds2", "import", os.path.join(work, "missing.xlsx")], check_rc=None)
    # A file that cannot be read is an input error (3); one read but no form is 2.
    c.eq("missing form exit code", rc, 3)
    c.true(f"missing form: says why ({err.strip()})", "missing.xlsx: cannot open file: No such file or directory" in err)
    rc, _, err = run(["mds2", "import", work], check_rc=None)
    c.eq("a directory as the form: exit 3", rc, 3)
    rc, _, err = run(["mds2", "import", XLSX, "--ports", os.path.join(work, "missing.csv")], check_rc=None)
    c.eq("missing port table: exit 3", rc, 3)

    # 5. Broken policies: precise message, exit 2, never a crash.
    devdir = os.path.join(work, "devices")
    sitedir = os.path.join(work, "sites")
    os.makedirs(devdir)
    os.makedirs(sitedir)
    shutil.copy(os.path.join(SRC, "policies", "devices", "acme-ct.yaml"), devdir)
    good_site = ("schema: medmon.site/v1\ninternal_networks: [10.0.0.0/8]\nzones:\n  - {name: modality, cidrs: [10.10.1.0/24]}\n"
                 "  - {name: pacs, cidrs: [10.10.2.0/24]}\n  - {name: his, cidrs: [10.10.3.0/24]}\n  - {name: infra, cidrs: [10.10.0.0/24]}\n"
                 "roles:\n  - {role: pacs, ips: [10.10.2.20]}\n  - {role: ris_mwl, ips: [10.10.3.30]}\n"
                 "  - {role: his_ris, ips: [10.10.3.30]}\n  - {role: ntp, ips: [10.10.0.123]}\n  - {role: dns, ips: [10.10.0.53]}\n"
                 "devices:\n  - {name: ct-1, model: acme-ct, ip: 10.10.1.10, zone: modality}\n")
    def line_of(body, text):
        return next(i for i, l in enumerate(body.splitlines(), 1) if text in l)

    cases = {
        "bad_yaml": (good_site.replace("zones:\n  - {name", "zones:\n  - {name: [") , r"bad_yaml\.yaml:\d+:\d+: YAML syntax error"),
        "unknown_key": (good_site + "colour: blue\n", rf"unknown_key\.yaml:{line_of(good_site + 'colour: blue', 'colour')}:1: unknown key 'colour' in site \(expected one of:"),
        "bad_cidr": (good_site.replace("10.10.1.0/24", "10.10.1.0/33"), r"bad_cidr\.yaml:4:30: zone 'modality' cidrs: '10.10.1.0/33' is not an IP address or CIDR"),
        "unknown_role": (good_site.replace("role: ris_mwl", "role: worklist"), r"acme-ct\.yaml:\d+:\d+: flow 'dicom-mwl': unknown role 'ris_mwl'"),
        "model_not_found": (good_site.replace("model: acme-ct", "model: acme-mri"), rf"model_not_found\.yaml:{line_of(good_site, 'model: acme-ct')}:25: device 'ct-1' model: model 'acme-mri' not found"),
    }
    # A file with no YAML in it (empty, or comments only) is an error at its line 1, site or model.
    cases["empty"] = ("", r"empty\.yaml:1:1: empty document \(expected a site: a mapping")
    cases["comments_only"] = ("# to be written\n\n", r"comments_only\.yaml:1:1: empty document \(expected a site:")
    emptydir = os.path.join(work, "empty")
    os.makedirs(os.path.join(emptydir, "devices"))
    os.makedirs(os.path.join(emptydir, "sites"))
    open(os.path.join(emptydir, "devices", "acme-void.yaml"), "w").write("# to be written\n")
    empty_model_site = os.path.join(emptydir, "sites", "site.yaml")
    open(empty_model_site, "w").write(good_site.replace("model: acme-ct", "model: acme-void"))
    rc, out, err = run(["policy", "check", empty_model_site], check_rc=None)
    c.eq("empty model: exit code", rc, 2)
    c.true(f"empty model: error at its line 1; got {err!r}",
           re.search(r"acme-void\.yaml:1:1: empty document \(expected a device model:", err) is not None)
    rc, out, err = run(["policy", "check", os.path.join(sitedir, "ok.yaml")], check_rc=None)
    open(os.path.join(sitedir, "ok.yaml"), "w").write(good_site)
    rc, out, err = run(["policy", "check", os.path.join(sitedir, "ok.yaml")], check_rc=None)
    c.eq("valid site exit code", rc, 0)
    for name, (body, pattern) in cases.items():
        path = os.path.join(sitedir, name + ".yaml")
        open(path, "w").write(body)
        rc, out, err = run(["policy", "check", path], check_rc=None)
        c.eq(f"{name}: exit code", rc, 2)
        c.true(f"{name}: message matches {pattern!r}; got {err!r}", re.search(pattern, err) is not None)

    # 6. The documented workflow: import without --id into the models folder, name the model by its
    # file in a site, check. A port table listing a port once per service, and a port both ways.
    ports = os.path.join(work, "ports.csv")
    open(ports, "w").write("Port,Protocol,Direction,Service,Default State\n"
                           "104,TCP,Inbound,DICOM Storage SCP,Enabled\n"
                           "104,TCP,Inbound,DICOM Query/Retrieve SCP,Enabled\n"
                           "443,TCP,In/Out,HTTPS web UI and update,Enabled\n"
                           "443,TCP,Inbound,HTTPS admin,Disabled\n")
    dock = os.path.join(devdir, "nema-dock.yaml")
    rc, _, err = run(["mds2", "import", XLSX, "--ports", ports, "-o", dock], check_rc=None)
    c.eq("import without --id exit code", rc, 0)
    c.true(f"import names the model id it wrote; got {err!r}", "model 'nema-dock'" in err)
    dock_model = yaml.safe_load(open(dock))
    c.eq("model id is the file name", dock_model["model"]["id"], "nema-dock")
    c.eq("one flow per direction, protocol and port", [f["id"] for f in dock_model["flows"]],
         ["in-tcp-104", "in-tcp-443", "out-tcp-443"])
    site = os.path.join(sitedir, "dock.yaml")
    open(site, "w").write(good_site.replace("model: acme-ct", "model: nema-dock"))
    rc, out, err = run(["policy", "check", site], check_rc=None)
    c.eq(f"site naming the imported model checks clean; got {err!r}", rc, 0)

    # 7. PDF in layout: a note wrapped over lines (sentences two spaces apart) is read whole, and an
    # answer printed on the line below its question is read.
    sys.path.insert(0, os.path.join(SRC, "policies", "mds2", "test"))
    import make_variants  # noqa: E402
    rows = [["CONN-4", "Can the device communicate with other systems external to the customer environment?", "No", "See Note 1"],
            ["CONN-7", "Does the device support Transport Layer Security (TLS)?", "Yes", "__"],
            ["CONN-7.1", "Is TLS configurable?"],
            ["", "", "No", "__"],
            ["Note 1", "The device is a battery powered, hand held, personal blood glucose monitor.  It records"],
            ["", "blood glucose levels based on test strip insertion.  It can be attached by a special"],
            ["", "cable to a PC."],
            ["Note 2", "There is no restriction on access to any person with physical access to the device."]]
    pdf = os.path.join(work, "wrapped.pdf")
    make_variants.write_pdf(rows, pdf)
    rc, out, err = run(["mds2", "import", pdf, "--id", "x", "-o", "-"], check_rc=None)
    c.eq(f"wrapped PDF imports; got {err!r}", rc, 0)
    m = yaml.safe_load(out)
    c.eq("PDF note read whole", m["mds2"]["notes"].get("Note 1"),
         "The device is a battery powered, hand held, personal blood glucose monitor. It records blood glucose levels "
         "based on test strip insertion. It can be attached by a special cable to a PC.")
    c.eq("PDF note 2", m["mds2"]["notes"].get("Note 2"),
         "There is no restriction on access to any person with physical access to the device.")
    c.eq("PDF answer on the line below its question", m["mds2"]["answers"]["CONN-7.1"]["answer"], "no")
    c.eq("tls_configurable from it", m["mds2_derived"]["tls_configurable"], False)

    # 8. A Windows-1252 CSV with control characters gives a model PyYAML reads, its text decoded.
    cp = os.path.join(work, "cp1252.csv")
    open(cp, "wb").write(b"Question ID,Question,Answer\r\nDOC-1,Manufacturer Name,Soci\xe9t\xe9 \x93Acme\x94\r\n"
                         b"CONN-4,External?,\"No\x00 \x7f \x1b really\"\r\nRMOT-1,Remote?,No\x85\r\n")
    cp_model = os.path.join(work, "cp1252.yaml")
    rc, out, err = run(["mds2", "import", cp, "--id", "x", "-o", cp_model], check_rc=None)
    c.eq(f"cp1252 CSV imports; got {err!r}", rc, 0)
    c.true(f"cp1252 CSV: the decoding is said; got {err!r}", "read as Windows-1252" in err)
    try:
        m = yaml.safe_load(open(cp_model, "rb"))
    except yaml.YAMLError as e:
        m = None
        c.true(f"cp1252 CSV: the model is valid YAML ({e})", False)
    if m:
        c.eq("cp1252 CSV: text decoded", m["model"]["manufacturer"], "Soci\u00e9t\u00e9 \u201cAcme\u201d")
        c.eq("cp1252 CSV: control characters kept escaped", m["mds2"]["answers"]["CONN-4"]["detail"], "No\x00 \x7f \x1b really")
    c.true(f"cp1252 CSV: the first byte that is no UTF-8 is located; got {err!r}",
           "line 2, byte 0xE9 (\"\u00e9\" in \"...1,Manufacturer Name,Soci\u00e9t\u00e9 \u201cAcme\u201d\")" in err)
    # A Windows-1252 port table (Excel's en dash 0x96 in a range) is decoded with a warning naming it and the line.
    cp_ports = os.path.join(work, "ports-1252.csv")
    open(cp_ports, "wb").write(b"Port,Protocol,Direction\r\n104,TCP,Inbound\r\n1024\x9665535,TCP,Outbound\r\n")
    rc, out, err = run(["mds2", "import", XLSX, "--ports", cp_ports, "--id", "x", "-o", "-"], check_rc=None)
    c.eq(f"cp1252 port table imports; got {err!r}", rc, 0)
    c.true(f"cp1252 port table: the decoding is said, located; got {err!r}",
           f"{cp_ports}: warning: the port table is not UTF-8 text: read as Windows-1252" in err and
           "line 3, byte 0x96 (\"\u2013\" in \"1024\u201365535,TCP,Outbound\")" in err)
    c.true("cp1252 port table: the range is read", "dst_port: [1024-65535]" in out)

    # 9. A form from a pipe (/dev/stdin, a shell's <(...)) is read once: the same model, and the
    # SHA-256 of the bytes read (opened again for each look, the reader lost the form's start).
    import hashlib
    data = open(XLSX, "rb").read()
    p = subprocess.run([MEDMON, "mds2", "import", "/dev/stdin", "--id", "x", "-o", "-"], input=data,
                       capture_output=True, timeout=600)
    c.eq(f"form from a pipe imports; got {p.stderr!r}", p.returncode, 0)
    piped = yaml.safe_load(p.stdout) if p.returncode == 0 else {}
    rc, out, err = run(["mds2", "import", XLSX, "--id", "x", "-o", "-"], check_rc=None)
    whole = yaml.safe_load(out)
    c.eq("form from a pipe: the same answers", piped.get("mds2"), whole["mds2"])
    c.eq("form from a pipe: the SHA-256 of its bytes", piped["model"]["documents"][0].get("sha256") if piped else None,
         hashlib.sha256(data).hexdigest())
    c.done()


if __name__ == "__main__":
    main()
