#!/usr/bin/python3
"""cmrun.py -- run clinicmig's parts: a private PostgreSQL, workers.

NOTES
Shared by the tools that orchestrate a whole migration on one machine
(clinicmig-rehearse, the demo) and by the integration tests. The private
PostgreSQL lives in a temporary directory and runs as the postgres user
when started by root, since the server refuses to run as root. Waits have
deadlines; nothing here sleeps without a condition.

Transaction ids: a PgServer can be made to hand out ids after a given
32-bit one (next_xid, set with pg_resetwal while the server is down), so
that its transactions come after those of change events captured
elsewhere. safe_next_xid() picks the value: the start of the pg_xact
segment above it (a multiple of 1048576, which needs no pg_xact file; see
pg_resetwal's documentation), so that 32-bit ids widened to the nearest
64-bit one lie in the server's past. pg_resetwal -x leaves the oldest xid
where it was; a jump too near wraparound from it is made safe by freezing
every database before (nothing older stays) and after (the catalogs'
frozen xids follow), with the oldest xid moved too (-u).
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
# the farthest a server's next xid may be from its oldest xid without
# freezing first: inside the 2^31 wraparound horizon with room to spare
# (the server warns 40 million ids before it and stops 3 million before)
XID_MAX_JUMP = (1 << 31) - (1 << 27)


def safe_next_xid(largest, current=0):
    """The full transaction id a server must hand out next for its
    transactions to come after the 32-bit xid @largest: the pg_xact
    segment start just above it, forward from @current (the server's next
    full id; 0: a fresh cluster), in the next epoch where that passes
    2^32. A 32-bit id up to 2^31 below it widens into its past."""
    epoch, now32 = divmod(current, XID_EPOCH)
    above = (largest // XID_SEGMENT + 1) * XID_SEGMENT
    target = above % XID_EPOCH or XID_SEGMENT
    if target <= now32:
        epoch += 1
    return epoch * XID_EPOCH + target


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
        self.conninfo = (f"host=127.0.0.1 port={self.port} user=postgres "
                         "dbname=postgres")
        if next_xid is not None:
            self._move_next_xid(next_xid)
        self.start()

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
            self._move_next_xid(full_xid)
        finally:
            self.start()

    def _control_xids(self):
        """(next full xid, oldest 32-bit xid) of the stopped server."""
        out = self._run([os.path.join(self.bindir, "pg_controldata"),
                         "-D", self.data], stdout=subprocess.PIPE).stdout
        nxt = re.search(r"^Latest checkpoint's NextXID:\s+(\d+):(\d+)$",
                        out, re.M)
        oldest = re.search(r"^Latest checkpoint's oldestXID:\s+(\d+)$",
                           out, re.M)
        return int(nxt[1]) * XID_EPOCH + int(nxt[2]), int(oldest[1])

    def _move_next_xid(self, full_xid):
        """pg_resetwal -e/-x on the stopped server, freezing around it when
        the jump from the oldest xid would come near wraparound."""
        epoch, xid32 = divmod(full_xid, XID_EPOCH)
        current, oldest = self._control_xids()
        if xid32 < 3 or xid32 % XID_SEGMENT or full_xid <= current:
            raise ValueError(f"next xid {full_xid}: not a pg_xact segment "
                             f"start after {current} (see safe_next_xid)")
        far = (xid32 - oldest) % XID_EPOCH > XID_MAX_JUMP
        if far:
            self._freeze_all()
        self._run([os.path.join(self.bindir, "pg_resetwal"),
                   "-e", str(epoch), "-x", str(xid32)] +
                  (["-u", str(xid32)] if far else []) + [self.data])
        if far:
            self._freeze_all()

    def _freeze_all(self):
        """VACUUM FREEZE in every database, template0 included, on the
        stopped server started for it without autovacuum: afterwards no
        tuple holds an xid and the catalogs' frozen xids are now's."""
        self._ctl("start", "-o", "-c autovacuum=off")
        try:
            for name, allowed in self.query(
                    "SELECT datname, datallowconn FROM pg_database"):
                if not allowed:
                    self.execute(f'ALTER DATABASE "{name}" '
                                 "ALLOW_CONNECTIONS true")
                self._vacuum_freeze(name)
                if not allowed:
                    self.execute(f'ALTER DATABASE "{name}" '
                                 "ALLOW_CONNECTIONS false")
            self._vacuum_freeze("postgres", "pg_database")  # those ALTERs
        finally:
            self.stop()

    def _vacuum_freeze(self, dbname, table=""):
        conn = psycopg2.connect(self.conninfo, dbname=dbname)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"VACUUM FREEZE {table}")
        conn.close()

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


def end_offsets(kafka, topics):
    """{(topic, partition): high watermark} of the non-empty partitions of
    @topics (@kafka: a LocalKafka)."""
    return {(t, p): high for t in topics
            for p, (_, high) in kafka.watermarks(t).items() if high > 0}


def _offsets_reach(cur, group, ends, schema):
    """Whether the offsets @group stored in @schema.consumer_offset reach
    @ends (end_offsets())."""
    cur.execute(f"SELECT topic, partition, next_offset FROM {schema}."
                "consumer_offset WHERE group_id = %s", (group,))
    stored = {(t, p): o for t, p, o in cur.fetchall()}
    return all(stored.get(k, 0) >= high for k, high in ends.items())


def drained(conninfo, kafka, group, topics, schema="clinicmig"):
    """True when the offsets @group stored in @schema.consumer_offset reach
    the end of every partition of @topics (@kafka: a LocalKafka)."""
    with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
        done = _offsets_reach(cur, group, end_offsets(kafka, topics), schema)
    conn.close()
    return done


class DrainPoll:
    """drained() for a tight loop on a machine being measured: one
    connection for every poll (a connection per poll would fork a
    PostgreSQL backend each time) and @ends (end_offsets()) read once, for
    a backlog that does not change while it drains. A database not ready
    yet is False, not an error."""

    def __init__(self, conninfo, group, ends, schema="clinicmig"):
        self.conninfo, self.group, self.ends = conninfo, group, ends
        self.schema = schema
        self.conn = None

    def drained(self):
        try:
            if self.conn is None:
                self.conn = psycopg2.connect(self.conninfo)
                self.conn.autocommit = True
            with self.conn.cursor() as cur:
                return _offsets_reach(cur, self.group, self.ends,
                                      self.schema)
        except psycopg2.OperationalError:  # lost: connect again next time
            self.close()
            return False
        except psycopg2.Error:  # the worker has not made its tables yet
            return False

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
