#!/usr/bin/python3
"""cmrun.py -- run clinicmig's parts: a private PostgreSQL, workers.

NOTES
Shared by the tools that orchestrate a whole migration on one machine
(clinicmig-rehearse, the demo) and by the integration tests. The private
PostgreSQL lives in a temporary directory and runs as the postgres user
when started by root, since the server refuses to run as root. Waits have
deadlines; nothing here sleeps without a condition.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg2


def wait_until(what, cond, timeout=60.0, interval=0.1):
    """Polls cond() until it is truthy; raises TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except Exception as e:  # a server restarting, say
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what} "
                       f"(last: {last!r})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- PostgreSQL ---------------------------------------------------------

def _pg_bindir():
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                         text=True)
    if out.returncode == 0 and os.path.exists(
            os.path.join(out.stdout.strip(), "initdb")):
        return out.stdout.strip()
    return "/usr/lib/postgresql/15/bin"


class PgServer:
    """A private PostgreSQL server in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cm-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.bindir = _pg_bindir()
        self._as = None
        if os.geteuid() == 0:
            self._as = pwd.getpwnam("postgres")
            os.chown(self.dir, self._as.pw_uid, self._as.pw_gid)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data,
                   "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--locale=C.UTF-8", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "fsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\nmax_connections = 100\n")
        self.start()
        self.conninfo = (f"host=127.0.0.1 port={self.port} user=postgres "
                         "dbname=postgres")

    def _run(self, args, check=True):
        def demote():
            if self._as:
                os.setgid(self._as.pw_gid)
                os.setuid(self._as.pw_uid)
        return subprocess.run(args, preexec_fn=demote, check=check,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)

    def _ctl(self, *args):
        return self._run([os.path.join(self.bindir, "pg_ctl"), "-D",
                          self.data, "-l", os.path.join(self.dir, "log"),
                          "-w", "-t", "60"] + list(args))

    def start(self):
        self._ctl("start")

    def stop(self, mode="fast"):
        self._ctl("stop", "-m", mode)

    def stop_command(self):
        """The shell command that stops this server and removes it."""
        ctl = os.path.join(self.bindir, "pg_ctl")
        who = "runuser -u postgres -- " if self._as else ""
        return (f"{who}{ctl} -D {self.data} -m fast stop && "
                f"rm -rf {self.dir}")

    def restart(self):
        self.stop()
        self.start()

    def connect(self):
        conn = psycopg2.connect(self.conninfo)
        conn.autocommit = True
        return conn

    def query(self, sql, args=None):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows

    def execute(self, sql, args=None):
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute(sql, args)
        conn.close()

    def destroy(self):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the worker ---------------------------------------------------------

class Worker:
    """One clinicmig-worker process."""

    def __init__(self, binary, conninfo, bootstrap, name="w1", extra=None,
                 log_dir=None, wrapper=None):
        """@wrapper: a command the worker runs under (valgrind, say)."""
        self.name = name
        self.log_path = os.path.join(log_dir or tempfile.gettempdir(),
                                     f"{name}.log")
        args = [binary, "--db-conninfo", conninfo,
                "--bootstrap-servers", bootstrap,
                "--worker-id", name, "--batch-max-ms", "50",
                "-X", "kafka.topic.metadata.refresh.interval.ms=1000",
                "-X", "kafka.session.timeout.ms=6000",
                "-X", "kafka.heartbeat.interval.ms=500"]
        args = list(wrapper or []) + args + list(extra or [])
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signals the worker and returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def drained(conninfo, kafka, group, topics, schema="clinicmig"):
    """True when the offsets @group stored in @schema.consumer_offset reach
    the end of every partition of @topics (@kafka: a LocalKafka)."""
    with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT topic, partition, next_offset FROM {schema}."
                    "consumer_offset WHERE group_id = %s", (group,))
        stored = {(t, p): o for t, p, o in cur.fetchall()}
    conn.close()
    return all(stored.get((t, p), 0) >= high
               for t in topics
               for p, (_, high) in kafka.watermarks(t).items()
               if high > 0)
