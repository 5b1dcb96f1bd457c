#!/usr/bin/python3
"""cmtest.py -- the integration tests' harness: real servers, real events.

NOTES
Every integration test starts its own private PostgreSQL (initdb/pg_ctl in
a temporary directory; as the postgres user when run as root, since the
server refuses root), its own local Kafka cluster (tools/kafka), and the
worker binaries of the build under test. Events are built exactly as
Debezium's PostgreSQL connector writes them (JSON converter, with or
without schemas) and published with a real Kafka client. Tests wait on
conditions with deadlines, never on sleeps alone; every check has a name
and prints both sides when it fails.

Environment: CM_BUILD_DIR (the CMake build directory) must be set; ctest
sets it.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "tools", "lib"))
import cmpublish  # noqa: E402
import cmrun  # noqa: E402
from cmrun import PgServer, free_port, wait_until  # noqa: E402,F401
from cmrun import Worker as _Worker  # noqa: E402
from kafkactl import LocalKafka  # noqa: E402,F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("CM_BUILD_DIR", os.path.join(ROOT, "build"))
WORKER = os.path.join(BUILD, "worker", "clinicmig-worker")
KAFKA_TOOL = os.path.join(BUILD, "tools", "kafka", "clinicmig-kafka")
PREFIX = "legacy"
TOPICS = {f"{PREFIX}.public.User": 6, f"{PREFIX}.public.Patient": 3,
          f"{PREFIX}.public.Appointment": 3, "clinicmig.replay": 2,
          "clinicmig.dlq": 1, "clinicmig.progress": 1}
# what the workers write, not read
OUTPUT_TOPICS = ("clinicmig.dlq", "clinicmig.progress")
SOURCE_TOPICS = [t for t in TOPICS if t not in OUTPUT_TOPICS]

_failures = 0
_checks = 0


# ---- checks -------------------------------------------------------------

def check(name, got, want):
    """Compares got with want; prints both when they differ."""
    global _failures, _checks
    _checks += 1
    if got == want:
        print(f"ok {_checks} - {name}", flush=True)
        return True
    _failures += 1
    print(f"not ok {_checks} - {name}\n{_describe(got, want)}", flush=True)
    return False


def _short(v, limit=300):
    r = repr(v)
    return r if len(r) <= limit else r[:limit] + f"... ({len(r)} chars)"


def _describe(got, want):
    """Both sides; for long lists, the first rows that differ."""
    if isinstance(got, list) and isinstance(want, list) and \
            len(repr(got)) + len(repr(want)) > 600:
        g, w = set(got), set(want)
        return (f"#   got {len(got)} rows, want {len(want)} rows\n"
                f"#   only in got:  {_short(sorted(g - w)[:5])}\n"
                f"#   only in want: {_short(sorted(w - g)[:5])}")
    return f"#   got:  {_short(got)}\n#   want: {_short(want)}"


def check_true(name, cond, detail=""):
    return check(name + (f" ({detail})" if detail and not cond else ""),
                 bool(cond), True)


def done():
    """Ends the test: the summary line, and the exit status."""
    print(f"{_checks - _failures} passed, {_failures} failed", flush=True)
    sys.exit(1 if _failures else 0)


def Worker(pg, kafka, name="w1", extra=None, log_dir=None, wrapper=None):
    """A worker of the build under test on the test's servers."""
    return _Worker(WORKER, pg.conninfo, kafka.bootstrap, name, extra,
                   log_dir or pg.dir, wrapper)


# ---- Debezium events ----------------------------------------------------

USER_COLS = ["id", "clinicId", "email", "phone", "firstName", "lastName",
             "role", "specialization", "licenseNumber", "isActive",
             "createdAt", "updatedAt"]
PATIENT_COLS = ["id", "clinicId", "firstName", "lastName", "middleName",
                "birthDate", "gender", "phone", "email", "createdAt",
                "updatedAt"]
APPT_COLS = ["id", "clinicId", "doctorId", "patientId", "startsAt", "endsAt",
             "status", "reason", "createdAt", "updatedAt"]

_FIELD_TYPES = {
    "id": ("int32", None, False), "clinicId": ("int32", None, False),
    "doctorId": ("int32", None, False), "patientId": ("int32", None, False),
    "isActive": ("boolean", None, False),
    "birthDate": ("int32", "io.debezium.time.Date", True),
    "createdAt": ("string", "io.debezium.time.ZonedTimestamp", False),
    "updatedAt": ("string", "io.debezium.time.ZonedTimestamp", False),
    "startsAt": ("string", "io.debezium.time.ZonedTimestamp", False),
    "endsAt": ("string", "io.debezium.time.ZonedTimestamp", False),
}
_NULLABLE = {"phone", "specialization", "licenseNumber", "middleName",
             "birthDate", "gender", "email", "reason"}


def _row_schema(table, cols, name):
    fields = []
    for c in cols:
        typ, sem, _ = _FIELD_TYPES.get(c, ("string", None, False))
        f = {"type": typ, "optional": c in _NULLABLE and not
             (table == "User" and c == "email"), "field": c}
        if sem:
            f["name"] = sem
            f["version"] = 1
        fields.append(f)
    return {"type": "struct", "fields": fields, "optional": True,
            "name": f"{PREFIX}.public.{table}.Value", "field": name}


def _envelope_schema(table, cols):
    return {"type": "struct", "optional": False,
            "name": f"{PREFIX}.public.{table}.Envelope", "version": 2,
            "fields": [
                _row_schema(table, cols, "before"),
                _row_schema(table, cols, "after"),
                {"type": "struct", "optional": False,
                 "name": "io.debezium.connector.postgresql.Source",
                 "field": "source", "fields": [
                     {"type": "string", "optional": False,
                      "field": "version"},
                     {"type": "string", "optional": False,
                      "field": "connector"},
                     {"type": "string", "optional": False, "field": "name"},
                     {"type": "int64", "optional": False, "field": "ts_ms"},
                     {"type": "string", "optional": True,
                      "name": "io.debezium.data.Enum", "version": 1,
                      "parameters": {"allowed": "true,last,false,incremental"},
                      "default": "false", "field": "snapshot"},
                     {"type": "string", "optional": False, "field": "db"},
                     {"type": "string", "optional": True,
                      "field": "sequence"},
                     {"type": "string", "optional": False,
                      "field": "schema"},
                     {"type": "string", "optional": False, "field": "table"},
                     {"type": "int64", "optional": True, "field": "txId"},
                     {"type": "int64", "optional": True, "field": "lsn"},
                     {"type": "int64", "optional": True, "field": "xmin"}]},
                {"type": "struct", "optional": True, "field": "transaction",
                 "fields": [
                     {"type": "string", "optional": False, "field": "id"},
                     {"type": "int64", "optional": False,
                      "field": "total_order"},
                     {"type": "int64", "optional": False,
                      "field": "data_collection_order"}]},
                {"type": "string", "optional": False, "field": "op"},
                {"type": "int64", "optional": True, "field": "ts_ms"}]}


def ts(s):
    """ISO text as Debezium's ZonedTimestamp writes it."""
    return s


def envelope(table, op, before, after, lsn, tx_id, snapshot="false",
             ts_ms=None):
    ts_ms = ts_ms or int(time.time() * 1000)
    return {
        "before": before, "after": after,
        "source": {"version": "2.5.4.Final", "connector": "postgresql",
                   "name": PREFIX, "ts_ms": ts_ms - 5, "snapshot": snapshot,
                   "db": "clinic", "sequence": json.dumps(
                       [str(lsn - 8), str(lsn)]),
                   "schema": "public", "table": table, "txId": tx_id,
                   "lsn": lsn, "xmin": None},
        "transaction": None, "op": op, "ts_ms": ts_ms,
        "ts_us": ts_ms * 1000, "ts_ns": ts_ms * 1000000}


def message(table, op, row_or_id, lsn, tx_id=None, schemas=False,
            before=None, snapshot=None):
    """(topic, key, value) of one change of a legacy row."""
    cols = {"User": USER_COLS, "Patient": PATIENT_COLS,
            "Appointment": APPT_COLS}[table]
    if op == "d":
        key_id = row_or_id if isinstance(row_or_id, int) else row_or_id["id"]
        after, before = None, before or {"id": key_id}
    else:
        after = row_or_id
        key_id = after["id"]
    if snapshot is None:
        snapshot = "true" if op == "r" else "false"
    env = envelope(table, op, before, after, lsn,
                   tx_id if tx_id is not None else 1000 + lsn // 100,
                   snapshot)
    if schemas:
        env = {"schema": _envelope_schema(table, cols), "payload": env}
    return (f"{PREFIX}.public.{table}", key_json(table, key_id),
            json.dumps(env))


def key_json(table, key_id):
    """The message key. Its form (with or without the schema wrapper)
    depends on the id alone: Kafka partitions by the key's bytes, and a
    connector writes every key of a row the same way, so all changes of
    one row stay in one partition, in order, as they do in production."""
    key = {"id": key_id}
    if key_id % 2:
        key = {"schema": {"type": "struct", "optional": False,
                          "name": f"{PREFIX}.public.{table}.Key",
                          "fields": [{"type": "int32", "optional": False,
                                      "field": "id"}]},
               "payload": key}
    return json.dumps(key)


def tombstone(table, key_id):
    return (f"{PREFIX}.public.{table}", key_json(table, key_id), None)


def user(uid, clinic=1, email="doc@example.org", role="DOCTOR", active=True,
         first="Ivan", last="Petrov", spec="therapist", lic=None,
         phone=None, updated="2025-01-10T10:00:00Z"):
    return {"id": uid, "clinicId": clinic, "email": email, "phone": phone,
            "firstName": first, "lastName": last, "role": role,
            "specialization": spec, "licenseNumber": lic,
            "isActive": active, "createdAt": "2024-01-01T09:00:00Z",
            "updatedAt": updated}


def publish(bootstrap, messages):
    """Publishes (topic, key, value) messages, partitioned by key as
    Debezium's are (Java's murmur2 on the key bytes), and waits for every
    delivery. Key and value are text (JSON) or bytes (Avro, cmavro.py)."""
    def raw(v):
        return v.encode() if isinstance(v, str) else v
    cmpublish.publish(bootstrap, [(topic, -1, raw(key), raw(value), None)
                                  for topic, key, value in messages])


# ---- convergence helpers ------------------------------------------------

def drained(pg, kafka, group="clinicmig", topics=None):
    """True when the offsets stored in the database reach the end of every
    partition of the source topics."""
    return cmrun.drained(pg.conninfo, kafka, group, topics or SOURCE_TOPICS)


def wait_schema(pg, timeout=60):
    wait_until("the worker's migrations", lambda: pg.query(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'clinicmig'"
        " AND tablename = 'schema_version'")[0][0] == 1 and pg.query(
        "SELECT max(version) FROM clinicmig.schema_version")[0][0] is not None,
        timeout)


def stats(pg, entity=None):
    """Totals of the partition counters: {counter: n}."""
    where = "WHERE entity = %s" if entity else ""
    row = pg.query(
        "SELECT coalesce(sum(consumed),0), coalesce(sum(applied),0),"
        " coalesce(sum(stale),0), coalesce(sum(skipped),0),"
        f" coalesce(sum(dead_lettered),0) FROM clinicmig.partition_stats {where}",
        (entity,) if entity else None)[0]
    return dict(zip(["consumed", "applied", "stale", "skipped",
                     "dead_lettered"], (int(x) for x in row)))


def no_drops(kafka, topics=None):
    """Checks that the local cluster dropped no message of the topics."""
    for t in topics or SOURCE_TOPICS:
        check(f"no message of {t} dropped by the local cluster",
              kafka.dropped(t), 0)


SANITIZER_MARKS = ("runtime error:", "ERROR: AddressSanitizer",
                   "ERROR: LeakSanitizer", "SUMMARY: UndefinedBehavior")


def check_clean_log(worker):
    """A worker's log holds no sanitizer report (in the ASan build every
    worker process is instrumented; its reports go to its log)."""
    out = worker.output()
    bad = [m for m in SANITIZER_MARKS if m in out]
    check_true(f"no sanitizer report in {worker.name}'s log", not bad,
               bad)


class Env:
    """PostgreSQL + local Kafka cluster + workers, torn down on exit."""

    def __init__(self, topics=None, brokers=3):
        self.pg = PgServer()
        try:
            self.kafka = LocalKafka(KAFKA_TOOL, topics or TOPICS,
                                    brokers=brokers, stderr=subprocess.DEVNULL)
        except Exception:
            self.pg.destroy()
            raise
        self.workers = []

    def worker(self, name=None, extra=None, wrapper=None):
        w = Worker(self.pg, self.kafka, name or f"w{len(self.workers) + 1}",
                   extra, wrapper=wrapper)
        self.workers.append(w)
        return w

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        for w in self.workers:
            if w.alive():
                w.stop()
        for w in self.workers:
            check_clean_log(w)
        if typ is not None or _failures:
            for w in self.workers:
                print(f"# --- log of {w.name} ---")
                for line in w.output().splitlines()[-40:]:
                    print("# " + line)
        self.kafka.stop()
        self.pg.destroy()
        return False


# ---- random histories and a reference run -------------------------------

def doctor_history(seed, n_users=300, n_changes=1500, emails=60,
                   schemas_share=0.02):
    """A random history of the User table as (topic, key, value) messages
    with increasing LSNs: creates, updates that move users between email
    groups, role changes both ways, deactivations, deletes with tombstones
    and re-creations."""
    import random
    rnd = random.Random(seed)
    lsn = 1000
    rows = {}
    out = []
    roles = ["DOCTOR", "DOCTOR", "DOCTOR", "ADMIN", "RECEPTIONIST"]

    def email():
        e = f"doc{rnd.randrange(emails)}@clinic.example"
        return rnd.choice([e, e.upper(), f"  {e} ", "broken-address"])

    def make(uid):
        return user(uid, clinic=1 + uid % 4, email=email(),
                    role=rnd.choice(roles), active=rnd.random() < 0.9,
                    last=f"L{rnd.randrange(1000)}",
                    updated=f"2025-0{1 + rnd.randrange(9)}-1"
                            f"{rnd.randrange(10)}T10:00:00Z")

    for _ in range(n_changes):
        lsn += rnd.randrange(1, 50)
        uid = rnd.randrange(1, n_users + 1)
        schemas = rnd.random() < schemas_share
        if uid not in rows:
            rows[uid] = make(uid)
            out.append(message("User", "c", rows[uid], lsn, schemas=schemas))
        elif rnd.random() < 0.1:
            del rows[uid]
            out.append(message("User", "d", uid, lsn, schemas=schemas))
            out.append(tombstone("User", uid))
        else:
            row = make(uid)
            rows[uid] = row
            out.append(message("User", "u", row, lsn, schemas=schemas))
    return out


DOCTOR_TABLES = {
    "global_doctor": "id, email, first_name, last_name, specialization,"
                     " license_number",
    "clinic_doctor": "id, global_doctor_id, clinic_id, is_active",
}


def progress(pg):
    """Messages applied so far: the sum of the stored next offsets."""
    return pg.query("SELECT coalesce(sum(next_offset), 0)"
                    " FROM clinicmig.consumer_offset")[0][0]


def wait_progress(pg, n, timeout=120):
    wait_until(f"progress past {n} messages", lambda: progress(pg) >= n,
               timeout, 0.02)


def check_like_reference(env, msgs, what="the undisturbed run's"):
    """After a disturbed run has drained: nothing dropped, every message
    counted exactly once, and the doctors equal a reference run's."""
    no_drops(env.kafka)
    check("every message counted exactly once",
          stats(env.pg, "User")["consumed"], len(msgs))
    got = domain_rows(env.pg, "v2")
    want = reference_run(env)
    check_true("the reference run built doctors",
               len(want["clinic_doctor"]) > 50)
    for table in want:
        check(f"{table} equals {what}", got[table], want[table])


def domain_rows(pg, schema, tables=None):
    """{table: rows} of the columns f defines, ordered by id."""
    return {t: pg.query(f"SELECT {cols} FROM {schema}.{t} ORDER BY id")
            for t, cols in (tables or DOCTOR_TABLES).items()}


def reference_run(env, timeout=180):
    """Runs one extra worker in its own group and schemas (ref_v2,
    ref_book) over the same topics, uninterrupted, and returns its
    domain rows: the state an undisturbed run reaches."""
    w = Worker(env.pg, env.kafka, "reference",
               ["--group-id", "reference", "--schema-domain", "ref_v2",
                "--schema-bookkeeping", "ref_book"])
    env.workers.append(w)

    wait_until("the reference run drains", lambda: cmrun.drained(
        env.pg.conninfo, env.kafka, "reference", SOURCE_TOPICS, "ref_book"),
        timeout)
    w.stop()
    return domain_rows(env.pg, "ref_v2")


def patient(pid, clinic=1, phone=None, email=None, birth=None, first="Anna",
            last="Ivanova", middle=None, gender="F",
            updated="2025-01-01T10:00:00Z"):
    """A legacy Patient row image; birth as 'YYYY-MM-DD' (sent as days)."""
    import datetime
    days = None
    if birth:
        days = (datetime.date.fromisoformat(birth) -
                datetime.date(1970, 1, 1)).days
    return {"id": pid, "clinicId": clinic, "firstName": first,
            "lastName": last, "middleName": middle, "birthDate": days,
            "gender": gender, "phone": phone, "email": email,
            "createdAt": "2024-06-01T09:00:00Z", "updatedAt": updated}


def appointment(aid, doctor, pat, clinic=1, status="SCHEDULED",
                reason=None, starts="2025-03-01T09:00:00Z",
                ends="2025-03-01T09:30:00Z"):
    return {"id": aid, "clinicId": clinic, "doctorId": doctor,
            "patientId": pat, "startsAt": starts, "endsAt": ends,
            "status": status, "reason": reason,
            "createdAt": "2025-01-01T00:00:00Z",
            "updatedAt": "2025-01-01T00:00:00Z"}


ALL_TABLES = dict(DOCTOR_TABLES, **{
    "global_patient": "id, first_name, last_name, middle_name,"
                      " birth_date::text, gender, member_count",
    "clinic_patient": "id, global_patient_id, clinic_id, phone, email",
    "appointment": "id, clinic_id, clinic_doctor_id, clinic_patient_id,"
                   " starts_at, ends_at, status, reason",
})


# ---- the replay topic ---------------------------------------------------

REPLAY = "clinicmig.replay"


def replay_row(table, row, snap, lsn=0):
    """(topic, key, value) of a row as clinicmig-replay db publishes it:
    op r, read in the snapshot @snap ("xmin:xmax:xip,...")."""
    env = envelope(table, "r", None, row, lsn, None, "true")
    env["source"].update(connector="clinicmig-replay", txid_snapshot=snap)
    return (REPLAY, json.dumps({"id": row["id"]}), json.dumps(env))


def range_marker(table, first, last, present, snap, lsn=0):
    """(topic, key, value) of a range marker: in snapshot @snap the ids of
    @table within [first, last] are exactly the runs of @present."""
    src = envelope(table, "r", None, None, lsn, None, "true")["source"]
    src.update(connector="clinicmig-replay", txid_snapshot=snap)
    value = {"op": "range", "source": src, "ts_ms": src["ts_ms"],
             "range": {"first": first, "last": last,
                       "present": [list(r) for r in present]}}
    return (REPLAY, json.dumps({"table": table, "first": first,
                                "last": last}), json.dumps(value))


REPLAY_TOOL = os.path.join(BUILD, "tools", "replay", "clinicmig-replay")
ORACLE = os.path.join(BUILD, "tools", "oracle", "clinicmig-oracle")


class Replay:
    """A running `clinicmig-replay db` against the test's servers; its
    stderr is collected, and snapshot() waits for the line that says its
    snapshot is taken."""

    def __init__(self, env, *args, legacy=None):
        import threading
        self.lines = []
        self._seen = threading.Event()
        self.proc = subprocess.Popen(
            [REPLAY_TOOL, "db", "--legacy-conninfo",
             legacy or env.pg.conninfo, "--bootstrap-servers",
             env.kafka.bootstrap] + list(args),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if " snapshot " in line:
                self._seen.set()
        self._seen.set()

    def snapshot(self, timeout=60):
        """(txid_snapshot text, lsn) of the run's snapshot."""
        import re
        if not self._seen.wait(timeout):
            raise TimeoutError("clinicmig-replay took no snapshot")
        for line in self.lines:
            m = re.search(r"snapshot (\S+) at lsn (\d+)", line)
            if m:
                return m.group(1), int(m.group(2))
        raise RuntimeError("clinicmig-replay: " + " | ".join(self.lines))

    def wait(self, timeout=300):
        rc = self.proc.wait(timeout)
        self._reader.join(10)
        return rc


def oracle(pg, *args):
    """Runs the oracle on the test's database (legacy tables and the new
    schema side by side): (exit status, output)."""
    r = subprocess.run([ORACLE, "--legacy", pg.conninfo] + list(args),
                       capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr
