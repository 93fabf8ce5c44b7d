"""Drives Debian's headless Chromium for the report tests (no node, no puppeteer).

    render(html_path)            -> (dom_text, console_lines)   page as Chromium built it
    screenshot(html_path, png)   -> writes a full-width PNG of the page
    print_pdf(html_path, pdf)    -> writes a PDF

Console messages (what a script error or a failed load would log) are read from Chromium's own
log on stderr (--enable-logging=stderr), where they appear as ":CONSOLE" lines.
"""
import os
import shutil
import subprocess
import tempfile


def find():
    """Path of the Chromium binary, or None."""
    for name in (os.environ.get("MEDMON_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name:
            p = shutil.which(name)
            if p:
                return p
    return None


def _run(args, timeout=120):
    chromium = find()
    if not chromium:
        raise RuntimeError("chromium is not installed (Debian package chromium)")
    profile = tempfile.mkdtemp(prefix="medmon-chromium-")
    try:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--hide-scrollbars", "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0"] + args
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _url(path):
    return "file://" + os.path.abspath(path)


def render(html_path):
    p = _run(["--dump-dom", _url(html_path)])
    console = [l for l in p.stderr.splitlines() if ":CONSOLE" in l]
    return p.stdout, console


def screenshot(html_path, png, width=1400, height=2400):
    _run(["--window-size=%d,%d" % (width, height), "--screenshot=" + os.path.abspath(png), _url(html_path)])
    return os.path.exists(png) and os.path.getsize(png) > 0


def print_pdf(html_path, pdf):
    _run(["--no-pdf-header-footer", "--print-to-pdf=" + os.path.abspath(pdf), _url(html_path)])
    return os.path.exists(pdf) and os.path.getsize(pdf) > 0
