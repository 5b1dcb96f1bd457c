#!/usr/bin/python3
"""0021-generator: clinicmig-gen writes the data and events it claims to.

NOTES
Two private PostgreSQL servers, no Kafka and no binaries of the build.
seed must load the report's data set (7 doctors that are 6 people, 20
patients, 43 appointments); snapshot one "r" event per row; history with
one seed on two fresh databases the same stream (but for positions and
clock times) and the same final tables. The stream is checked for what
consumers rely on: strictly increasing LSNs, transactions contiguous,
a tombstone after every delete, Kafka's partitions, Debezium's value
formats, one event per real change (PostgreSQL's own tuple counters), and
faithfulness: replaying snapshot + history, the last image per key, gives
exactly the rows in the legacy tables. Finally dump must restore them.
history --format avro, with a schema registry of the test's own
(tools/lib/cmregistry.py), must write the very events the JSON form does
(read back with python3-avro and the registered writer schemas), keys
and values in Avro, partitioned by the Avro key's bytes, the schemas
registered under the topics' subjects.
"""
import base64
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "gen"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "lib"))
import cmgen  # noqa: E402
import avroconv  # noqa: E402
from cmregistry import Registry  # noqa: E402
from cmtest import PgServer, check, check_true, done, wait_until  # noqa

GEN = os.path.join(HERE, "..", "..", "tools", "gen", "clinicmig-gen")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TS_COLS = {"createdAt", "updatedAt", "startsAt", "endsAt"}
SEED_SUMMARY = ("seeded: 3 clinics, 11 users (7 doctors), 20 patients,"
                " 43 appointments\n")

# Kafka's own test vectors for Utils.murmur2 (UtilsTest.testMurmur2).
MURMUR2 = [("21", -973932308), ("foobar", -790332482),
           ("a-little-bit-long-string", -985981536),
           ("a-little-bit-longer-string", -1486304829),
           ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
           ("abc", 479470107)]


class Database(PgServer):
    """A new database on a running server: query() and execute() only."""

    def __init__(self, server, name):
        server.execute(f"CREATE DATABASE {name}")
        self.conninfo = server.conninfo.replace("dbname=postgres",
                                                f"dbname={name}")


def gen(*args):
    return subprocess.run([GEN] + list(args), capture_output=True,
                          text=True)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def values(line):
    """(key id, envelope or None) of one kcat line."""
    return (json.loads(line["key"])["id"],
            None if line["payload"] is None else json.loads(line["payload"]))


def table_of(line):
    return line["topic"].rsplit(".", 1)[1]


def content(lines):
    """A stream without what differs between runs: positions, xids and
    wall-clock times."""
    out = []
    for line in lines:
        key, env = values(line)
        if env is not None:
            env = dict(env, ts_ms=None, source=dict(
                env["source"], lsn=None, txId=None, sequence=None,
                ts_ms=None))
        out.append((line["topic"], line["partition"], key,
                    json.dumps(env, sort_keys=True)))
    return out


def from_image(table, image):
    """A Debezium row image back in psycopg2's types, column order."""
    row = []
    for col in cmgen.COLUMNS[table]:
        v = image[col]
        if col in TS_COLS:
            v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        elif col == "birthDate" and v is not None:
            v = cmgen.EPOCH_DAY + dt.timedelta(days=v)
        row.append(v)
    return tuple(row)


def legacy_rows(pg, tables=cmgen.CDC_TABLES):
    cols = {t: ", ".join(f'"{c}"' for c in cmgen.COLUMNS[t])
            for t in cmgen.ALL_TABLES}
    return {t: pg.query(f'SELECT {cols[t]} FROM "{t}" ORDER BY id')
            for t in tables}


def check_seed(pg):
    r = gen("seed", "--db", pg.conninfo)
    check("seed exits 0", (r.returncode, r.stderr), (0, ""))
    check("seed prints one summary line", r.stdout, SEED_SUMMARY)
    check("seed: row counts", [pg.query(f'SELECT count(*) FROM "{t}"')[0][0]
                               for t in cmgen.ALL_TABLES], [3, 11, 20, 43])
    check("seed: 7 doctors, 6 distinct normalized emails", pg.query(
        "SELECT count(*), count(DISTINCT lower(btrim(email))) FROM \"User\""
        " WHERE role = 'DOCTOR'")[0], (7, 6))
    check("seed: users that are not doctors", pg.query(
        "SELECT DISTINCT role FROM \"User\" WHERE role <> 'DOCTOR'"
        " ORDER BY 1"), [("ADMIN",), ("RECEPTIONIST",)])
    check("seed: every appointment names a doctor and a patient of its"
          " clinic", pg.query(
              'SELECT count(*) FROM "Appointment" a JOIN "User" u ON'
              ' u.id = a."doctorId" AND u.role = \'DOCTOR\' AND u."clinicId"'
              ' = a."clinicId" JOIN "Patient" p ON p.id = a."patientId" AND'
              ' p."clinicId" = a."clinicId"')[0][0], 43)
    check("seed: every status occurs, some reasons are null", pg.query(
        'SELECT array_agg(DISTINCT status ORDER BY status),'
        ' count(*) FILTER (WHERE reason IS NULL) > 0 FROM "Appointment"')[0],
        (["CANCELLED", "COMPLETED", "NO_SHOW", "SCHEDULED"], True))
    check("seed: patients sharing a phone in other forms", pg.query(
        'SELECT phone FROM "Patient" WHERE id IN (1, 8, 15) ORDER BY id'),
        [("8 (912) 345-67-89",), ("+7 912 345 67 89",), ("89123456789",)])
    # Grouping by the national number (libphonenumber's result for these
    # values, checked once against the worker's normalizer): 13 people.
    pats = pg.query('SELECT id, phone, email FROM "Patient" ORDER BY id')
    check("seed: patients group into 13 people", len(components(pats)), 13)
    r = gen("seed", "--db", pg.conninfo)
    check("seed refuses tables that hold rows", (r.returncode, r.stdout),
          (1, ""))
    check_true("seed's refusal says why", "already hold rows" in r.stderr,
               r.stderr)


def components(patients):
    """Connected components of (id, phone, email) by phone or email key."""
    parent = {p[0]: p[0] for p in patients}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x
    first = {}
    for pid, phone, email in patients:
        e = (email or "").strip().lower()
        keys = [("p", cmgen.national_number(phone))]
        if e.count("@") == 1 and not e.startswith("@") and \
                not e.endswith("@"):
            keys.append(("e", e))
        for k in keys:
            if k[1] is None:
                continue
            if k in first:
                parent[find(pid)] = find(first[k])
            else:
                first[k] = pid
    return {find(p[0]) for p in patients}


def check_snapshot(pg, path):
    r = gen("snapshot", "--db", pg.conninfo, "--out", path)
    check("snapshot exits 0", r.returncode, 0)
    lines = read_lines(path)
    check("snapshot: one line per User, Patient, Appointment row",
          [sum(1 for x in lines if table_of(x) == t)
           for t in cmgen.CDC_TABLES], [11, 20, 43])
    envs = [values(x)[1] for x in lines]
    check("snapshot: all op r", {e["op"] for e in envs}, {"r"})
    check("snapshot: snapshot flags", [e["source"]["snapshot"]
                                       for e in envs],
          ["true"] * (len(envs) - 1) + ["last"])
    lsns = {e["source"]["lsn"] for e in envs}
    check_true("snapshot: one lsn, a positive int64",
               len(lsns) == 1 and isinstance(min(lsns), int) and
               min(lsns) > 0, lsns)
    check_true("snapshot: one txId", len({e["source"]["txId"]
                                          for e in envs}) == 1)
    r = gen("snapshot", "--db", pg.conninfo, "--partitions", "6")
    six = [json.loads(x) for x in r.stdout.splitlines()]
    check("snapshot to stdout, 6 partitions: Kafka's partitioner", [
        x["partition"] for x in six], [
        cmgen.partition(x["key"].encode(), 6) for x in six])
    check("snapshot: 6 partitions are all used",
          len({x["partition"] for x in six}), 6)
    return lines, min(lsns)


def check_stream(name, lines, partitions=3):
    """What consumers of a change stream rely on: the lines' shapes, and
    positions that order the changes."""
    changes = check_lines(name, lines, partitions)
    lsns = [e["source"]["lsn"] for _, _, e in changes]
    check_true(f"{name}: lsn strictly increasing",
               all(a < b for a, b in zip(lsns, lsns[1:])))
    txs = [e["source"]["txId"] for _, _, e in changes]
    runs = [t for i, t in enumerate(txs) if i == 0 or txs[i - 1] != t]
    check_true(f"{name}: each transaction's events are contiguous",
               len(runs) == len(set(runs)))
    sizes = {t: txs.count(t) for t in set(txs)}
    check_true(f"{name}: 1-3 changes per transaction",
               set(sizes.values()) <= {1, 2, 3}, set(sizes.values()))
    return changes


def check_lines(name, lines, partitions=3):
    """Tombstones, partitions, kcat's members and Debezium's row images;
    returns the changes as (line, key, envelope)."""
    events = [(x, values(x)) for x in lines]
    changes = [(x, k, e) for x, (k, e) in events if e is not None]
    ok = True
    for i, (x, (k, e)) in enumerate(events):
        if e is None:
            prev = events[i - 1] if i else None
            ok &= (prev is not None and prev[1][1] is not None and
                   prev[1][1]["op"] == "d" and prev[0]["key"] == x["key"]
                   and prev[0]["topic"] == x["topic"] and
                   prev[0]["partition"] == x["partition"])
        elif e["op"] == "d":
            nxt = events[i + 1] if i + 1 < len(events) else None
            ok &= nxt is not None and nxt[1][1] is None
    check_true(f"{name}: a tombstone follows every delete, and only a"
               " delete", ok)
    check(f"{name}: partitions are Kafka's default partitioner's",
          [x["partition"] for x in lines],
          [cmgen.partition(x["key"].encode(), partitions) for x in lines])
    check(f"{name}: kcat -J members", {tuple(x) for x in lines},
          {("topic", "partition", "offset", "tstype", "ts", "broker",
            "headers", "key", "payload")})
    shapes = True
    for x, k, e in changes:
        row = e["after"]
        shapes &= e["source"]["table"] == table_of(x)
        shapes &= json.loads(e["source"]["sequence"])[1] == \
            str(e["source"]["lsn"])
        if e["op"] == "d":
            shapes &= e["before"] == {"id": k} and row is None
            continue
        shapes &= e["before"] is None and row["id"] == k
        shapes &= list(row) == list(cmgen.COLUMNS[table_of(x)])
        shapes &= all(TS_RE.match(row[c]) for c in TS_COLS if c in row)
        shapes &= row.get("birthDate") is None or \
            isinstance(row["birthDate"], int)
        shapes &= isinstance(row.get("isActive", True), bool)
    check_true(f"{name}: row images in Debezium's shapes", shapes)
    return changes


def replay(*streams):
    """The last image per (table, id) over the streams, deletes removing."""
    state = {}
    for lines in streams:
        for x in lines:
            k, e = values(x)
            if e is None:
                continue
            if e["op"] == "d":
                state.pop((table_of(x), k), None)
            else:
                state[(table_of(x), k)] = e["after"]
    return {t: sorted(from_image(t, img) for (tt, _), img in state.items()
                      if tt == t) for t in cmgen.CDC_TABLES}


def check_replay(name, replayed, pg):
    """The stream is faithful: its last images are the tables' rows."""
    rows = legacy_rows(pg)
    for t in cmgen.CDC_TABLES:
        check(f"replaying {name} gives the legacy \"{t}\" rows",
              replayed[t], rows[t])


def tuple_counts(pg):
    return {r[0]: tuple(r[1:]) for r in pg.query(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del"
        " FROM pg_stat_user_tables")}


def check_one_event_per_change(name, pg, changes, seeded):
    """PostgreSQL's own count of inserted, updated and deleted tuples equals
    the events (the seed's inserts aside): no change without an event."""
    want = {}
    for t in cmgen.CDC_TABLES:
        ops = [e["op"] for x, _, e in changes if table_of(x) == t]
        want[t] = (seeded[t] + ops.count("c"), ops.count("u"),
                   ops.count("d"))
    try:
        wait_until("the statistics", lambda: all(
            tuple_counts(pg).get(t) == want[t] for t in want), 15)
    except TimeoutError:
        pass
    got = tuple_counts(pg)
    check(f"{name}: one event per inserted, updated, deleted row",
          {t: got.get(t) for t in want}, want)


def check_variety(changes):
    """The history does what it is for: every op on every table, merges,
    dangling and early references."""
    kinds = {(table_of(x), e["op"]) for x, _, e in changes}
    check("history: c, u and d on every table", kinds,
          {(t, op) for t in cmgen.CDC_TABLES for op in "cud"})
    live = {t: set(ids) for t, ids in (
        ("User", range(1, 12)), ("Patient", range(1, 21)))}
    ever = {t: set(s) for t, s in live.items()}
    missing = {"dangling": 0, "early": 0}
    for x, k, e in changes:
        t = table_of(x)
        if t in live:
            (live[t].discard if e["op"] == "d" else live[t].add)(k)
            ever[t].add(k)
        elif e["op"] != "d":
            for col, ref in (("doctorId", "User"), ("patientId", "Patient")):
                i = e["after"][col]
                if i not in live[ref]:
                    missing["dangling" if i in ever[ref] else "early"] += 1
    check_true("history: appointments naming deleted users or patients",
               missing["dangling"] > 0, missing)
    check_true("history: appointments arriving before their doctor or"
               " patient", missing["early"] > 0, missing)
    roles = {(e["after"] or {}).get("role") for x, _, e in changes
             if table_of(x) == "User"}
    check_true("history: users of several roles", {"DOCTOR", "ADMIN"} <=
               roles, roles)


def check_dump(pg_src, pg_dst, path):
    r = gen("dump", "--db", pg_src.conninfo, "--out", path)
    check("dump exits 0", (r.returncode, r.stderr), (0, ""))
    with open(path, encoding="utf-8") as f:
        sql = f.read()
    check_true("dump holds INSERT statements, plain SQL",
               'INSERT INTO public."Patient" VALUES' in sql and
               "\\restrict" not in sql)
    restored = Database(pg_dst, "restored")
    with open(cmgen.LEGACY_SQL, encoding="utf-8") as f:
        restored.execute(f.read())
    restored.execute(sql)
    check("dump restores the four legacy tables", legacy_rows(
        restored, cmgen.ALL_TABLES), legacy_rows(pg_src, cmgen.ALL_TABLES))


def check_scaled(pg):
    scaled = Database(pg, "scaled")
    r = gen("seed", "--db", scaled.conninfo, "--scale", "3")
    check("seed --scale 3", r.stdout, "seeded: 9 clinics, 33 users"
          " (21 doctors), 60 patients, 129 appointments\n")
    check("seed --scale 3: copies never group together", (
        scaled.query("SELECT count(DISTINCT lower(btrim(email))) FROM"
                     " \"User\" WHERE role = 'DOCTOR'")[0][0],
        len(components(scaled.query(
            'SELECT id, phone, email FROM "Patient"')))), (18, 39))


def check_updates_only(pg):
    db = Database(pg, "updates")
    gen("seed", "--db", db.conninfo)
    before = {t: db.query(f'SELECT count(*) FROM "{t}"')[0][0]
              for t in cmgen.CDC_TABLES}
    doctors = db.query("SELECT count(*) FROM \"User\" WHERE role = 'DOCTOR'")
    r = gen("history", "--db", db.conninfo, "--seed", "3", "--steps", "60",
            "--updates-only")
    ops = {values(json.loads(x))[1]["op"] for x in r.stdout.splitlines()}
    check("history --updates-only: updates only", ops, {"u"})
    check("history --updates-only: every row and doctor kept",
          ({t: db.query(f'SELECT count(*) FROM "{t}"')[0][0]
            for t in cmgen.CDC_TABLES},
           db.query("SELECT count(*) FROM \"User\" WHERE role = 'DOCTOR'")),
          (before, doctors))


def from_avro(reader, line):
    """A --format avro line read back as the JSON form's line, but for
    the partition. A delete's before image is the whole ...Value record,
    the columns but the key at their type's zero value (docs/design.md
    §1.2): the JSON form has the key only."""
    key = reader.read(base64.b64decode(line["key_b64"]))
    env = None
    if line.get("payload_b64") is not None:
        env = reader.read(base64.b64decode(line["payload_b64"]))
        if env["op"] == "d":
            env["before"] = {"id": env["before"]["id"]}
        for img in (env["before"], env["after"]):
            if img and isinstance(img.get("birthDate"), dt.date):
                img["birthDate"] = (img["birthDate"] - cmgen.EPOCH_DAY).days
    return dict(line, key=json.dumps(key), payload=json.dumps(env)
                if env is not None else None)


def check_avro(pg):
    reg = Registry()
    try:
        streams = {}
        for fmt in ("json", "avro"):
            db = Database(pg, f"format_{fmt}")
            gen("seed", "--db", db.conninfo)
            r = gen("history", "--db", db.conninfo, "--seed", "5", "--steps",
                    "80", "--format", fmt, *(
                        ["--schema-registry-url", reg.url,
                         "--schema-registry-basic-auth-user-info",
                         reg.user_info] if fmt == "avro" else []))
            check(f"history --format {fmt} exits 0", r.returncode, 0)
            streams[fmt] = [json.loads(x) for x in r.stdout.splitlines()]
        avro = streams["avro"]
        check_true("history --format avro: every key and value in Avro",
                   avro and all(
                       avroconv.is_avro(base64.b64decode(m["key_b64"])) and
                       "key" not in m and
                       ("payload" in m) != ("payload_b64" in m) and
                       m.get("payload") is None for m in avro), avro[:1])
        check("history --format avro: partitioned by the Avro key's bytes",
              [m["partition"] for m in avro],
              [cmgen.partition(base64.b64decode(m["key_b64"]), 3)
               for m in avro])
        reader = avroconv.Reader(registry=avroconv.RegistryClient(
            reg.url, reg.user_info))
        back = [from_avro(reader, m) for m in avro]
        check("history --format avro: the JSON form's events",
              [c[:1] + c[2:] for c in content(back)],
              [c[:1] + c[2:] for c in content(streams["json"])])
        check("history --format avro: schemas registered per topic",
              sorted(reg.subjects), sorted(
                  f"legacy.public.{t}-{k}" for t in cmgen.CDC_TABLES
                  for k in ("key", "value")))
        r = gen("history", "--db", db.conninfo, "--seed", "6", "--steps",
                "1", "--format", "avro", "--schema-registry-url", reg.url)
        check("history --format avro: a registry refusing the credentials:"
              " exit 1, one line", (r.returncode, r.stderr.count("\n")),
              (1, 1))
    finally:
        reg.stop()


for text, want in MURMUR2:
    check(f"murmur2({text!r}) as Kafka's Utils.murmur2",
          cmgen.murmur2(text.encode()), want)
check("partition: toPositive(murmur2) % N", cmgen.partition(b"foobar", 7),
      (-790332482 & 0x7fffffff) % 7)

tmp = tempfile.mkdtemp(prefix="cm-gen-")
pg_a = PgServer()
pg_b = None
try:
    pg_b = PgServer()
    check_seed(pg_a)
    snap, snap_lsn = check_snapshot(pg_a, os.path.join(tmp, "snap.jsonl"))

    runs, logs = {}, {}
    for name, pg in (("a", pg_a), ("b", pg_b)):
        path = os.path.join(tmp, f"history-{name}.jsonl")
        r = gen("history", "--db", pg.conninfo, "--seed", "1", "--steps",
                "200", "--out", path)
        check(f"history on {name} exits 0", (r.returncode, r.stdout),
              (0, ""))
        runs[name], logs[name] = read_lines(path), r.stderr
    check_true("history on an empty database seeds it first",
               SEED_SUMMARY in logs["b"] and SEED_SUMMARY not in logs["a"],
               logs)
    check("history: the same seed, the same stream on two databases",
          content(runs["a"]), content(runs["b"]))
    check("history: the two databases end equal",
          legacy_rows(pg_a, cmgen.ALL_TABLES),
          legacy_rows(pg_b, cmgen.ALL_TABLES))
    changes = check_stream("history", runs["a"])
    check_lines("snapshot", snap)
    check_true("history: positions after the snapshot's",
               changes[0][2]["source"]["lsn"] > snap_lsn)
    check_true("history: 200 transactions", len({
        e["source"]["txId"] for _, _, e in changes}) == 200)
    seeded = {"User": 11, "Patient": 20, "Appointment": 43}
    check_one_event_per_change("history on a", pg_a, changes, seeded)
    check_one_event_per_change("history on b", pg_b, check_stream(
        "history on b", runs["b"]), seeded)
    check_variety(changes)
    check_replay("snapshot + history", replay(snap, runs["a"]), pg_a)
    r = gen("history", "--db", pg_a.conninfo, "--seed", "7", "--steps",
            "50", "--partitions", "5")
    more = [json.loads(x) for x in r.stdout.splitlines()]
    check_stream("a second history to stdout", more, 5)
    check_true("a second history continues the positions",
               values(more[0])[1]["source"]["lsn"] >
               changes[-1][2]["source"]["lsn"])
    check_replay("snapshot + both histories", replay(snap, runs["a"], more),
                 pg_a)
    check_dump(pg_a, pg_b, os.path.join(tmp, "dump.sql"))
    check_scaled(pg_b)
    check_updates_only(pg_b)
    check_avro(pg_b)
    r = gen("snapshot", "--db", "host=127.0.0.1 port=1 dbname=none")
    check("an unreachable database: exit 1, one line on stderr",
          (r.returncode, r.stdout, r.stderr.count("\n") >= 1), (1, "", True))
finally:
    pg_a.destroy()
    if pg_b:
        pg_b.destroy()
    subprocess.run(["rm", "-rf", tmp])
done()
