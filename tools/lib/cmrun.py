#!/usr/bin/python3
"""cmrun.py -- run clinicmig's parts: a private PostgreSQL, workers.

NOTES
Shared by the tools that orchestrate a whole migration on one machine
(clinicmig-rehearse, the demo) and by the integration tests. The private
PostgreSQL lives in a temporary directory and runs as the postgres user
when started by root, since the server refuses to run as root. Waits have
deadlines; nothing here sleeps without a condition.

Transaction ids: a PgServer can be made to hand out ids after a given
one (next_xid, set with pg_resetwal while the server is down), so that
its transactions come after those of change events captured elsewhere.
safe_next_xid() picks the value: a multiple of 1048576, which needs no
pg_xact file (pg_resetwal's documentation), and never a jump that would
bring the cluster near wraparound.
"""

import os
import pwd
import re
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


# ---- transaction ids ----------------------------------------------------

XID_SEGMENT = 1 << 20  # transactions per pg_xact file (0x100000)
XID_EPOCH = 1 << 32    # 32-bit xids wrap here; full ids are epoch << 32 | xid
# the farthest a server's next xid may jump within its epoch: inside the
# 2^31 wraparound horizon with room to spare (the server warns 40 million
# ids before it and stops 3 million before), since pg_resetwal -x leaves
# the oldest xid where it was
XID_MAX_JUMP = (1 << 31) - (1 << 27)


def _segment_above(xid32):
    """The first xid of the pg_xact segment after the one holding @xid32
    (XID_EPOCH when @xid32 is in the last one)."""
    return (xid32 // XID_SEGMENT + 1) * XID_SEGMENT


def safe_next_xid(largest, current=0):
    """A full transaction id for a server that must hand out ids after the
    32-bit xid @largest; @current: the server's next full id now (0: a
    fresh cluster). Normally the segment start above @largest in the
    current epoch. If that is out of reach (past 2^32, or more than
    XID_MAX_JUMP ahead), the next epoch at the segment start above
    @current: 32-bit ids widened against a snapshot of that epoch all lie
    in its past."""
    epoch, now32 = divmod(current, XID_EPOCH)
    above = _segment_above(largest)
    if above < XID_EPOCH and 0 < above - now32 <= XID_MAX_JUMP:
        return epoch * XID_EPOCH + above
    low = _segment_above(now32)
    if low >= XID_EPOCH:
        low = XID_SEGMENT
    return (epoch + 1) * XID_EPOCH + low


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

    def __init__(self, next_xid=None):
        """@next_xid: the first transaction id (full, 64-bit) the server
        hands out, as safe_next_xid() gives; None: initdb's."""
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
        if next_xid is not None:
            self._reset_next_xid(next_xid)
        self.start()
        self.conninfo = (f"host=127.0.0.1 port={self.port} user=postgres "
                         "dbname=postgres")

    def _run(self, args, check=True, stdout=subprocess.DEVNULL):
        def demote():
            if self._as:
                os.setgid(self._as.pw_gid)
                os.setuid(self._as.pw_uid)
        return subprocess.run(args, preexec_fn=demote, check=check,
                              stdout=stdout, stderr=subprocess.PIPE,
                              text=True)

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

    # -- transaction ids ---------------------------------------------------

    def next_xid(self):
        """The full id the running server gives its next transaction."""
        return self.query("SELECT txid_snapshot_xmax("
                          "txid_current_snapshot())")[0][0]

    def set_next_xid(self, full_xid):
        """Stops the server, sets its next transaction id, starts it."""
        self.stop()
        try:
            self._reset_next_xid(full_xid)
        finally:
            self.start()

    def _stopped_next_xid(self):
        """The next full xid that pg_control of the stopped server holds."""
        out = self._run([os.path.join(self.bindir, "pg_controldata"),
                         "-D", self.data], stdout=subprocess.PIPE).stdout
        m = re.search(r"^Latest checkpoint's NextXID:\s+(\d+):(\d+)$", out,
                      re.M)
        return int(m[1]) * XID_EPOCH + int(m[2])

    def _reset_next_xid(self, full_xid):
        """pg_resetwal -e/-x on the stopped server, after checking that
        @full_xid is one safe_next_xid() could give."""
        epoch, xid32 = divmod(full_xid, XID_EPOCH)
        current = self._stopped_next_xid()
        jump32 = (xid32 - current) % XID_EPOCH
        if xid32 < 3 or xid32 % XID_SEGMENT or full_xid <= current or \
                jump32 > XID_MAX_JUMP:
            raise ValueError(f"next xid {full_xid}: not a safe next "
                             f"transaction id after {current} (see "
                             "safe_next_xid)")
        self._run([os.path.join(self.bindir, "pg_resetwal"), "-e",
                   str(epoch), "-x", str(xid32), self.data])

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
