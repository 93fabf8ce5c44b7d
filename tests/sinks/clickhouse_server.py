"""A throw-away ClickHouse server for tests: Debian's clickhouse-server, run as the current user
on loopback in a temporary directory, driven over its HTTP interface."""
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

SERVER = "/usr/sbin/clickhouse-server"

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
  <uncompressed_cache_size>8589934</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <timezone>UTC</timezone>
</yandex>
"""

USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"""


def installed():
    return os.access(SERVER, os.X_OK)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class ClickHouse:
    def __init__(self, workdir):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.http = free_port()
        self.tcp = free_port()
        with open(os.path.join(workdir, "config.xml"), "w") as f:
            f.write(CONFIG.format(d=workdir, http=self.http, tcp=self.tcp))
        with open(os.path.join(workdir, "users.xml"), "w") as f:
            f.write(USERS)
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http}/"

    def start(self, timeout=60):
        self.proc = subprocess.Popen([SERVER, "--config-file=" + os.path.join(self.dir, "config.xml")],
                                     cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("clickhouse-server exited: " + self.log_tail())
            try:
                if self.query("SELECT 1").strip() == "1":
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError("clickhouse-server did not answer: " + self.log_tail())

    def kill(self):
        """Stops the server at once (SIGKILL): inserts in flight get no answer."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def query(self, sql):
        req = urllib.request.Request(self.url, data=sql.encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode()

    def run_script(self, path):
        text = "\n".join(l for l in open(path).read().splitlines() if not l.strip().startswith("--"))
        for stmt in text.split(";"):
            if stmt.strip():
                self.query(stmt)

    def log_tail(self):
        p = os.path.join(self.dir, "error.log")
        return open(p).read()[-2000:] if os.path.exists(p) else "(no log)"

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
