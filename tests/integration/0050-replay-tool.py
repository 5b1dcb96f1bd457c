#!/usr/bin/python3
"""0050-replay-tool: clinicmig-replay publishes exactly the formats of
tools/replay/README.md.

NOTES
One private PostgreSQL holding the seed data set (scale 3) plus rows that
stress the formats (a negative id, NULLs, quotes, backslashes, control
characters, non-ASCII text, dates and timestamps before the epoch and in
year 1, a timestamp written with an offset), one local Kafka cluster. Each
db run publishes into a replay topic of its own, read back whole with
confluent-kafka, and is checked against the tables:

- every row once, key {"id":N} byte for byte, op r, the row image equal to
  the database row as Debezium writes it (dates as days, timestamps as ISO
  UTC with microseconds), the source block of the spec, one txid_snapshot
  and lsn for all, equal to the line the tool printed, the partition
  Java's murmur2 gives the key, the header clinicmig.origin=db; the
  worker's own decoder (clinicmig-decode) applies every row;
- range markers that tile the id range with no hole and list exactly the
  ids present, chunk by chunk (--chunk-rows 7, a row count that is a
  multiple of it, an empty range), whatever --clinics filters;
- --tables, --clinics, --ids, --source-schema with int8 ids past 2^53;
- the snapshot: rows changed after the snapshot line are published as
  they were, and the changing transaction is not visible in the
  published txid_snapshot; --rate slows the run, progress lines appear.

Then dlq mode (dead letters with Kafka Connect headers, filtered by
reason, source topic and time) and topic mode (by offsets, partitions,
and by time), byte for byte with their origin headers; and every bad
input with its exit status and one line. stderr never shows a value.
"""
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "gen"))
import cmgen  # noqa: E402
import psycopg2  # noqa: E402
from cmtest import (BUILD, SANITIZER_MARKS, Env, check, check_true,  # noqa
                    done, free_port)
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

REPLAY = os.path.join(BUILD, "tools", "replay", "clinicmig-replay")
DECODE = os.path.join(BUILD, "tools", "decode", "clinicmig-decode")
INT8_MIN, INT8_MAX = -(1 << 63), (1 << 63) - 1
TABLES = ("User", "Patient", "Appointment")
SNAPSHOT_RE = re.compile(r"^clinicmig-replay: snapshot (\d+:\d+:[\d,]*)"
                         r" at lsn (\d+)$")
DONE_RE = re.compile(r"^clinicmig-replay: done: (\d+) rows \(([^)]*)\),"
                     r" (\d+) range markers, [\d.]+ s, \d+ rows/s;"
                     r" all acknowledged$")
PROGRESS_RE = re.compile(r"^clinicmig-replay: progress: .* rows/s, ETA \d+ s$")
PARTITIONS = 4

# Rows that stress the formats (Patient columns as cmgen.COLUMNS orders them).
EDGE_PATIENTS = [
    (-5, 1, 'Quote " and \\ back', "Line\nbreak\ttab\x01ctl", None,
     "1950-06-15", None, None, None, "0001-01-01 00:00:00+00",
     "1969-12-31 23:59:59.999999+00"),
    (500000, 3, "Ёлка", "日本語 ✓", "Ωmega", "2024-02-29", "F",
     "+7 900 000-00-00", "e@example.org", "2025-03-30 02:30:00+03",
     "2025-01-22 09:30:00+00"),
]


# ---- running the tool -----------------------------------------------------

def run(args, timeout=60):
    """Runs the tool; returns (status, stderr lines)."""
    p = subprocess.run([REPLAY] + args, capture_output=True, text=True,
                       timeout=timeout)
    bad = [m for m in SANITIZER_MARKS if m in p.stderr]
    if bad:
        check_true("no sanitizer report", False, p.stderr[-2000:])
    return p.returncode, p.stderr.splitlines()


def db_run(env, topic, *extra, conninfo=None):
    return run(["db", "--legacy-conninfo", conninfo or env.pg.conninfo,
                "-b", env.kafka.bootstrap, "--topic-replay", topic,
                "--quiet"] + list(extra))


def read_topic(bootstrap, topic, timeout=30):
    """Every message of @topic up to its high watermarks, as dicts."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                  "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    highs = {p: c.get_watermark_offsets(TopicPartition(topic, p),
                                        timeout=10)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts if highs[p] > 0])
    out, left = [], sum(highs.values())
    deadline = time.monotonic() + timeout
    while left > 0 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append({"partition": m.partition(), "offset": m.offset(),
                    "key": m.key(), "value": m.value(),
                    "headers": m.headers() or [],
                    "ts": m.timestamp()[1]})
        left -= 1
    c.close()
    check("read back every message of " + topic, left, 0)
    return out


_topics = [0]


def fresh_topic(env, partitions=PARTITIONS):
    _topics[0] += 1
    name = f"replay.t{_topics[0]}"
    env.kafka.topic(name, partitions)
    return name


# ---- what the database holds ----------------------------------------------

def db_rows(pg, schema="public", tables=TABLES):
    """{table: {id: row image as Debezium writes it}}."""
    out = {}
    conn = psycopg2.connect(pg.conninfo)
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
        for t in tables:
            cols = cmgen.COLUMNS[t]
            cur.execute(f"SELECT {', '.join(map(quoted, cols))}"
                        f' FROM "{schema}"."{t}" ORDER BY id')
            out[t] = {r[0]: dict(zip(cols, map(debezium_value, r)))
                      for r in cur.fetchall()}
    conn.close()
    return out


def debezium_value(v):
    """cmgen's, with four-digit years (strftime drops leading zeros)."""
    if isinstance(v, dt.datetime):
        v = v.astimezone(dt.timezone.utc)
        return f"{v.year:04d}" + v.strftime("-%m-%dT%H:%M:%S.%fZ")
    return cmgen.debezium_value(v)


def quoted(name):
    return '"' + name + '"'


def runs_of(ids):
    out = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def expected_chunks(ids, lo, hi, n):
    """(first, last, present) of each marker: chunks of n rows in key order
    tiling [lo, hi], the last one reaching hi."""
    ids = sorted(i for i in ids if lo <= i <= hi)
    if not ids:
        return [(lo, hi, [])]
    out, first = [], lo
    for k in range(0, len(ids), n):
        chunk = ids[k:k + n]
        last = chunk[-1] if k + n < len(ids) else hi
        out.append((first, last, runs_of(chunk)))
        first = last + 1
    return out


# ---- reading what the tool published --------------------------------------

def split(msgs):
    """(rows, markers): rows as (table, envelope, message), markers as
    (table, value, message), both decoded."""
    rows, markers = [], []
    for m in msgs:
        v = json.loads(m["value"])
        if v.get("op") == "range":
            markers.append((v["source"]["table"], v, m))
        else:
            rows.append((v["source"]["table"], v, m))
    return rows, markers


def frozen(x):
    """Lists as tuples, all the way down: check() sets long lists."""
    return tuple(map(frozen, x)) if isinstance(x, (list, tuple)) else x


def marker_tuples(markers, table):
    return sorted(frozen((v["range"]["first"], v["range"]["last"],
                          v["range"]["present"]))
                  for t, v, _ in markers if t == table)


def parse_stderr(name, lines):
    """The snapshot line's (txid_snapshot, lsn); checks the rest."""
    snap = SNAPSHOT_RE.match(lines[0]) if lines else None
    check_true(f"{name}: the first line names the snapshot", snap, lines[:1])
    check_true(f"{name}: the last line is the summary",
               lines and DONE_RE.match(lines[-1]), lines[-1:])
    others = [ln for ln in lines[1:-1] if not PROGRESS_RE.match(ln)]
    check(f"{name}: no other lines on stderr", others, [])
    return (snap.group(1), int(snap.group(2))) if snap else (None, None)


SOURCE_KEYS = ["version", "connector", "name", "ts_ms", "snapshot", "db",
               "schema", "table", "txId", "lsn", "xmin", "txid_snapshot"]
MARKER_SOURCE_KEYS = [k for k in SOURCE_KEYS if k not in ("txId", "xmin")]


def check_rows(name, rows, want, snap, schema="public"):
    """Every row of @want exactly once, as the spec writes it."""
    got = sorted((t, v["after"]["id"]) for t, v, _ in rows)
    check(f"{name}: every row published once", got,
          sorted((t, i) for t in want for i in want[t]))
    bad = []
    for t, v, m in rows:
        rid = v["after"]["id"]
        problems = []
        if m["key"] != b'{"id":%d}' % rid:
            problems.append(("key", m["key"]))
        if m["headers"] != [("clinicmig.origin", b"db")]:
            problems.append(("headers", m["headers"]))
        if m["partition"] != cmgen.partition(m["key"], PARTITIONS):
            problems.append(("partition", m["partition"]))
        if list(v) != ["before", "after", "source", "op", "ts_ms"] or \
                v["before"] is not None or v["op"] != "r":
            problems.append(("envelope", list(v), v["op"]))
        if v["after"] != want.get(t, {}).get(rid):
            problems.append(("after", v["after"], want.get(t, {}).get(rid)))
        s = v["source"]
        if list(s) != SOURCE_KEYS or (
                s["connector"], s["name"], s["snapshot"], s["db"],
                s["schema"], s["txId"], s["xmin"], s["lsn"],
                s["txid_snapshot"]) != ("clinicmig-replay", "legacy", "true",
                                        "postgres", schema, None, None,
                                        snap[1], snap[0]) or \
                not s["version"].startswith("clinicmig-replay "):
            problems.append(("source", s))
        if problems:
            bad.append(repr((t, rid, problems))[:500])
    check(f"{name}: keys, headers, partitions, envelopes, values, sources",
          bad[:3], [])
    check(f"{name}: one txid_snapshot and lsn for every row",
          sorted({(v["source"]["txid_snapshot"], v["source"]["lsn"])
                  for _, v, _ in rows}), [snap] if rows else [])


def check_markers(name, markers, ids, lo, hi, n, snap, schema="public"):
    """Per table: the markers are exactly the expected chunks."""
    for t in ids:
        check(f"{name}: {t} range markers", marker_tuples(markers, t),
              [frozen(c) for c in expected_chunks(ids[t], lo, hi, n)])
    bad = []
    for t, v, m in markers:
        r = v["range"]
        key = json.dumps({"table": t, "first": r["first"],
                          "last": r["last"]}, separators=(",", ":"))
        s = v["source"]
        if m["key"] != key.encode() or list(v) != [
                "op", "source", "range", "ts_ms"] or \
                list(s) != MARKER_SOURCE_KEYS or \
                (s["lsn"], s["txid_snapshot"], s["schema"]) != \
                (snap[1], snap[0], schema) or \
                m["headers"] != [("clinicmig.origin", b"db")] or \
                m["partition"] != cmgen.partition(m["key"], PARTITIONS):
            bad.append(repr((m["key"], v, m["headers"], m["partition"]))[:500])
    check(f"{name}: marker keys, sources, headers, partitions", bad[:2], [])


def check_decoder(name, rows):
    """The worker's decoder applies every row (read as from its CDC topic)."""
    lines = "".join(json.dumps({
        "topic": f"legacy.public.{t}", "partition": 0, "offset": i,
        "key": m["key"].decode(), "payload": m["value"].decode()}) + "\n"
        for i, (t, _, m) in enumerate(rows))
    p = subprocess.run([DECODE], input=lines, capture_output=True, text=True,
                       timeout=60)
    verdicts = [json.loads(ln) for ln in p.stdout.splitlines()]
    check(f"{name}: clinicmig-decode applies every row",
          sorted({(d["status"], d.get("reason")) for d in verdicts}),
          [("apply", None)])


def no_values_in(name, lines, want):
    text = "\n".join(lines)
    leaked = sorted({str(v) for t in want for r in want[t].values()
                     for c, v in r.items() if isinstance(v, str) and
                     len(v) > 3 and c not in ("createdAt", "updatedAt",
                                              "startsAt", "endsAt")
                     and v in text})
    check(f"{name}: no column value on stderr", leaked[:5], [])


# ---- db mode --------------------------------------------------------------

def load(env):
    conn = psycopg2.connect(env.pg.conninfo)
    cmgen.seed(conn, scale=3)
    with conn.cursor() as cur:
        cols = cmgen.COLUMNS["Patient"]
        cur.executemany(
            f'INSERT INTO "Patient" ({", ".join(map(quoted, cols))})'
            f' VALUES ({", ".join(["%s"] * len(cols))})', EDGE_PATIENTS)
        # int8 ids past 2^53, in a schema of their own
        cur.execute('CREATE SCHEMA s2; CREATE TABLE s2."Patient"'
                    ' (LIKE public."Patient" INCLUDING ALL);'
                    ' ALTER TABLE s2."Patient" ALTER id TYPE bigint;'
                    ' INSERT INTO s2."Patient" SELECT * FROM public."Patient"'
                    ' WHERE id BETWEEN 1 AND 3;'
                    ' UPDATE s2."Patient" SET id = id * 9007199254740993'
                    ' WHERE id IN (2, 3);'
                    ' UPDATE s2."Patient" SET id = -id'
                    ' WHERE id = 27021597764222979')
    conn.commit()
    conn.close()


def test_whole(env):
    topic = fresh_topic(env)
    status, lines = run(["db", "--legacy-conninfo", env.pg.conninfo, "-b",
                         env.kafka.bootstrap, "--topic-replay", topic])
    check("db: exit status 0", status, 0)
    snap = parse_stderr("db", lines)
    want = db_rows(env.pg)
    rows, markers = split(read_topic(env.kafka.bootstrap, topic))
    check_rows("db", rows, want, snap)
    check_true("db: the edge rows are there",
               -5 in want["Patient"] and 500000 in want["Patient"])
    check("db: an edge row as Debezium writes it", want["Patient"][-5], {
        "id": -5, "clinicId": 1, "firstName": 'Quote " and \\ back',
        "lastName": "Line\nbreak\ttab\x01ctl", "middleName": None,
        "birthDate": -7140, "gender": None, "phone": None, "email": None,
        "createdAt": "0001-01-01T00:00:00.000000Z",
        "updatedAt": "1969-12-31T23:59:59.999999Z"})
    check("db: a timestamp written with an offset is UTC",
          want["Patient"][500000]["createdAt"], "2025-03-29T23:30:00.000000Z")
    ids = {t: list(want[t]) for t in TABLES}
    check_markers("db", markers, ids, INT8_MIN, INT8_MAX, 1000, snap)
    m = DONE_RE.match(lines[-1]) if lines else None
    check("db: the summary counts", m and m.groups(), (
        str(len(rows)), ", ".join(f"{t} {len(want[t])}" for t in TABLES),
        "3"))
    check_decoder("db", rows)
    no_values_in("db", lines, want)
    check("db: the local cluster dropped nothing", env.kafka.dropped(topic),
          0)
    return want


def test_filters(env, want):
    topic = fresh_topic(env)
    status, lines = db_run(env, topic, "--tables", "Patient,Appointment",
                           "--clinics", "1,3", "--ids", "5-30",
                           "--chunk-rows", "7")
    check("filters: exit status 0", status, 0)
    snap = parse_stderr("filters", lines)
    rows, markers = split(read_topic(env.kafka.bootstrap, topic))
    sub = {t: {i: r for i, r in want[t].items()
               if 5 <= i <= 30 and r["clinicId"] in (1, 3)}
           for t in ("Patient", "Appointment")}
    check_true("filters: the clinic filter leaves rows out",
               sum(map(len, sub.values())) <
               sum(1 for t in sub for i in want[t] if 5 <= i <= 30))
    check_rows("filters", rows, sub, snap)
    check_markers("filters", markers,
                  {t: list(want[t]) for t in ("Patient", "Appointment")},
                  5, 30, 7, snap)
    check("filters: no User message",
          [t for t, _, _ in rows + markers if t == "User"], [])

    # 14 rows in the range, chunks of 7: the second chunk is full and the
    # last, so its marker must still reach the range's upper bound
    topic = fresh_topic(env)
    in_range = [i for i in want["Patient"] if 47 <= i <= 100]
    check("chunks: 14 rows in 47-100", len(in_range), 14)
    status, lines = db_run(env, topic, "--tables", "Patient", "--ids",
                           "47-100", "--chunk-rows", "7")
    snap = parse_stderr("chunks", lines)
    rows, markers = split(read_topic(env.kafka.bootstrap, topic))
    check("chunks: the markers", marker_tuples(markers, "Patient"),
          list(frozen([(47, 53, [[47, 53]]), (54, 100, [[54, 60]])])))
    check_rows("chunks", rows, {"Patient": {i: want["Patient"][i]
                                            for i in in_range}}, snap)

    # the whole table in chunks of 7, holes included (-5, 500000)
    topic = fresh_topic(env)
    status, lines = db_run(env, topic, "--tables", "Patient", "--chunk-rows",
                           "7")
    snap = parse_stderr("chunks of 7", lines)
    rows, markers = split(read_topic(env.kafka.bootstrap, topic))
    check_markers("chunks of 7", markers, {"Patient": list(want["Patient"])},
                  INT8_MIN, INT8_MAX, 7, snap)
    check("chunks of 7: a marker per 7 rows", len(markers),
          -(-len(want["Patient"]) // 7))

    # a range without rows: one marker per table, nothing present
    topic = fresh_topic(env)
    status, lines = db_run(env, topic, "--ids", "100000-200000")
    snap = parse_stderr("empty range", lines)
    rows, markers = split(read_topic(env.kafka.bootstrap, topic))
    check("empty range: no rows", rows, [])
    check("empty range: one empty marker per table",
          sorted(frozen((t, v["range"]["first"], v["range"]["last"],
                         v["range"]["present"])) for t, v, _ in markers),
          [(t, 100000, 200000, ()) for t in sorted(TABLES)])


def test_int8(env):
    topic = fresh_topic(env)
    status, lines = db_run(env, topic, "--source-schema", "s2", "--tables",
                           "Patient", "--chunk-rows", "2")
    check("int8: exit status 0", status, 0)
    snap = parse_stderr("int8", lines)
    msgs = read_topic(env.kafka.bootstrap, topic)
    rows, markers = split(msgs)
    want = db_rows(env.pg, "s2", ("Patient",))
    check("int8: the ids", sorted(want["Patient"]),
          [-3 * 9007199254740993, 1, 2 * 9007199254740993])
    check_rows("int8", rows, want, snap, schema="s2")
    check("int8: keys printed exactly", sorted(
        m["key"] for t, v, m in rows), sorted(
        b'{"id":%d}' % i for i in want["Patient"]))
    check("int8: markers", marker_tuples(markers, "Patient"), list(frozen([
        (INT8_MIN, 1, [[-27021597764222979, -27021597764222979], [1, 1]]),
        (2, INT8_MAX, [[18014398509481986, 18014398509481986]])])))
    check_true("int8: marker bounds printed exactly",
               any(b'"first":-9223372036854775808,"last":1,' in m["value"]
                   for _, _, m in markers))


def test_snapshot_and_rate(env, want):
    """Patient rows changed after the snapshot line, while User is still
    being read, are published as they were."""
    topic = fresh_topic(env)
    started = time.monotonic()
    p = subprocess.Popen(
        [REPLAY, "db", "--legacy-conninfo", env.pg.conninfo, "-b",
         env.kafka.bootstrap, "--topic-replay", topic, "--tables",
         "User,Patient", "--chunk-rows", "5", "--rate", "40"],
        stderr=subprocess.PIPE, text=True)
    first = p.stderr.readline().rstrip("\n")
    check_true("snapshot: the snapshot line comes first",
               SNAPSHOT_RE.match(first), first)
    conn = psycopg2.connect(env.pg.conninfo)
    with conn.cursor() as cur:
        cur.execute('UPDATE "Patient" SET "lastName" = %s WHERE id = 60',
                    ("Changed",))
        cur.execute('DELETE FROM "Patient" WHERE id = 59')
        cur.execute('INSERT INTO "Patient" SELECT 1000, "clinicId",'
                    ' "firstName", "lastName", "middleName", "birthDate",'
                    ' gender, phone, email, "createdAt", "updatedAt"'
                    ' FROM "Patient" WHERE id = 1')
        cur.execute("SELECT txid_current()")
        txid = cur.fetchone()[0]
    conn.commit()
    conn.close()
    rest = p.stderr.read().splitlines()
    status = p.wait(timeout=60)
    elapsed = time.monotonic() - started
    lines = [first] + rest
    check("snapshot: exit status 0", status, 0)
    snap = parse_stderr("snapshot", lines)
    rows, markers = split(read_topic(env.kafka.bootstrap, topic))
    sub = {t: want[t] for t in ("User", "Patient")}
    check_rows("snapshot: the rows as they were", rows, sub, snap)
    check_markers("snapshot", markers, {t: list(sub[t]) for t in sub},
                  INT8_MIN, INT8_MAX, 5, snap)
    check("snapshot: the change is not visible in the published snapshot",
          env.pg.query("SELECT txid_visible_in_snapshot(%s,"
                       " %s::txid_snapshot)", (txid, snap[0]))[0][0], False)
    n = sum(map(len, sub.values()))
    check_true("rate: 40 rows/s takes its time",
               elapsed >= (n - 1) / 40 * 0.9, f"{elapsed:.2f} s for {n}")
    check_true("rate: progress lines every 2 s",
               any(PROGRESS_RE.match(ln) for ln in lines), lines)
    no_values_in("snapshot", lines, want)


# ---- dlq and topic modes --------------------------------------------------

T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def connect_headers(topic, part, off, reason):
    return [("__connect.errors.topic", topic.encode()),
            ("__connect.errors.partition", str(part).encode()),
            ("__connect.errors.offset", str(off).encode()),
            ("__connect.errors.stage", b"VALUE_CONVERTER"),
            ("__connect.errors.exception.message", reason.encode())]


DEAD_LETTERS = [  # key, value, headers, timestamp
    (b'{"id":1}', b'{"op":"c","after":{"id":1,"birthDate":99999999}}',
     connect_headers("legacy.public.Patient", 0, 10,
                     "after.birthDate: date out of range"), T0),
    (b'{"id":2}', b'\xff\x00not json',
     connect_headers("legacy.public.User", 1, 20, "not valid JSON"),
     T0 + 1000),
    (b'{"id":3}', b'{"op":"u","after":{"id":3,"birthDate":-99999999}}',
     connect_headers("legacy.public.Patient", 2, 30,
                     "after.birthDate: date out of range"), T0 + 2000),
    (b'{"id":4}', None,
     connect_headers("legacy.public.Appointment", 0, 40,
                     "truncate is never applied"), T0 + 3000),
    (None, b"stray", [("x", b"y")], T0 + 4000),
]


def produce(bootstrap, topic, msgs):
    p = Producer({"bootstrap.servers": bootstrap})
    for part, key, value, headers, ts in msgs:
        p.produce(topic, key=key, value=value, headers=headers,
                  timestamp=ts, partition=part)
    check("test messages delivered", p.flush(30), 0)


def republished(bootstrap, topic):
    return sorted(((m["key"], m["value"], tuple(m["headers"]))
                   for m in read_topic(bootstrap, topic)),
                  key=lambda x: (x[2], x[0] or b""))


def redriven(indices, origin="dlq", positions=None):
    out = []
    for k, i in enumerate(indices):
        key, value, headers, _ = DEAD_LETTERS[i]
        out.append((key, value, (("clinicmig.origin", origin.encode()),
                                 ("clinicmig.origin.position",
                                  positions[k].encode()))))
    return sorted(out, key=lambda x: (x[2], x[0] or b""))


def dlq_case(env, name, args, indices, positions, summary):
    topic = fresh_topic(env)
    status, lines = run(["dlq", "-b", env.kafka.bootstrap, "--topic-replay",
                         topic, "--quiet"] + args)
    check(f"dlq {name}: exit status 0", status, 0)
    check(f"dlq {name}: the summary", lines[-1:] and
          re.sub(r", [\d.]+ s;", ", S s;", lines[-1]), summary)
    check(f"dlq {name}: one line on stderr", len(lines), 1)
    check(f"dlq {name}: the dead letters, byte for byte",
          republished(env.kafka.bootstrap, topic),
          redriven(indices, positions=positions))


def test_dlq(env):
    produce(env.kafka.bootstrap, "clinicmig.dlq",
            [(0,) + d for d in DEAD_LETTERS])
    done_line = ("clinicmig-replay: done: 5 dead letters read, {0} matched,"
                 " {0} published{1}, S s; all acknowledged")
    dlq_case(env, "by reason", ["--reason", "date out of"], [0, 2],
             ["legacy.public.Patient/0/10", "legacy.public.Patient/2/30"],
             done_line.format(2, ""))
    dlq_case(env, "by source topic", ["--source-topic", "legacy.public.User"],
             [1], ["legacy.public.User/1/20"], done_line.format(1, ""))
    dlq_case(env, "by reason and source topic",
             ["--reason", "date", "--source-topic", "legacy.public.User"],
             [], [], done_line.format(0, ""))
    dlq_case(env, "by time", ["--since", iso(T0 + 2000), "--until",
                              str(T0 + 4000)], [2, 3],
             ["legacy.public.Patient/2/30", "legacy.public.Appointment/0/40"],
             done_line.format(2, ""))
    dlq_case(env, "all", [], [0, 1, 2, 3, 4],
             ["legacy.public.Patient/0/10", "legacy.public.User/1/20",
              "legacy.public.Patient/2/30", "legacy.public.Appointment/0/40",
              "clinicmig.dlq/0/4"],
             done_line.format(5, " (1 without __connect.errors headers:"
                                 " given their own position)"))


TOPIC = "legacy.public.User"


def cdc_messages():
    """10 messages in each of partitions 0, 1 and 2, one a second; every
    fourth a tombstone."""
    out = []
    for i in range(30):
        value = None if i % 4 == 3 else b'{"op":"u","n":%d}' % i
        out.append((i % 3, b'{"id":%d}' % i, value, [("h", b"dropped")],
                    T0 + i * 1000))
    return out


def topic_case(env, name, args, want_msgs, status_want=0):
    topic = fresh_topic(env)
    status, lines = run(["topic", "-b", env.kafka.bootstrap, "--topic", TOPIC,
                         "--topic-replay", topic, "--quiet"] + args)
    check(f"topic {name}: exit status", status, status_want)
    check(f"topic {name}: one line on stderr", len(lines), 1)
    want = sorted(((k, v, (("clinicmig.origin", b"topic"),
                           ("clinicmig.origin.position",
                            f"{TOPIC}/{p}/{o}".encode())))
                   for p, o, k, v in want_msgs),
                  key=lambda x: (x[2], x[0] or b""))
    check(f"topic {name}: the messages, byte for byte",
          republished(env.kafka.bootstrap, topic), want)
    return lines


def test_topic(env):
    msgs = cdc_messages()
    produce(env.kafka.bootstrap, TOPIC, msgs)
    at = [(i % 3, i // 3, k, v, ts) for i, (_, k, v, _, ts) in
          enumerate(msgs)]  # partition, offset, key, value, timestamp
    lines = topic_case(env, "by offsets", ["--partitions", "0,2",
                                           "--from-offset", "2",
                                           "--to-offset", "5"],
                       [(p, o, k, v) for p, o, k, v, _ in at
                        if p in (0, 2) and 2 <= o < 5])
    check("topic by offsets: the summary", lines[-1:] and re.sub(
        r", [\d.]+ s;", ", S s;", lines[-1]),
        f"clinicmig-replay: done: 6 messages read from {TOPIC}, 6 published,"
        " S s; all acknowledged")
    topic_case(env, "to the end", ["--from-offset", "8"],
               [(p, o, k, v) for p, o, k, v, _ in at if o >= 8])
    topic_case(env, "by time", ["--since", iso(T0 + 5000), "--until",
                                str(T0 + 15000)],
               [(p, o, k, v) for p, o, k, v, ts in at
                if T0 + 5000 <= ts < T0 + 15000])
    topic_case(env, "since a time to the end", ["--partitions", "1",
                                                "--since", iso(T0 + 20500)],
               [(p, o, k, v) for p, o, k, v, ts in at
                if p == 1 and ts >= T0 + 20500])
    check_true("topic: tombstones among the republished",
               any(v is None for _, _, _, v, _ in at))


# ---- bad input ------------------------------------------------------------

def test_errors(env):
    b = env.kafka.bootstrap
    closed = f"host=127.0.0.1 port={free_port()} user=postgres dbname=x"
    db = ["db", "--legacy-conninfo", env.pg.conninfo, "-b", b]
    cases = [
        ("an unknown table", db + ["--tables", "User,Doctor"], 2, '"Doctor"'),
        ("an unreachable database",
         ["db", "--legacy-conninfo", closed, "-b", b], 1,
         "could not connect to the legacy database"),
        ("a table missing in the database", db + ["--source-schema", "nope"],
         1, 'table nope."User" does not exist'),
        ("an empty --ids range", db + ["--ids", "5-1"], 2, "--ids"),
        ("a --ids range that is not numbers", db + ["--ids", "x-3"], 2,
         '"x-3"'),
        ("an unknown replay topic", db + ["--topic-replay", "nosuch"], 1,
         'topic "nosuch" does not exist'),
        ("an unknown flag", db + ["--no-such-flag"], 2, "--no-such-flag"),
        ("a flag of another mode", db + ["--reason", "x"], 2, "--reason"),
        ("no --legacy-conninfo", ["db", "-b", b], 2, "--legacy-conninfo"),
        ("no brokers", ["dlq"], 2, "--bootstrap-servers"),
        ("no mode", [], 2, "mode"),
        ("an unknown mode", ["backfill", "-b", b], 2, '"backfill"'),
        ("--rate 0", db + ["--rate", "0"], 2, "--rate"),
        ("a negative --rate", db + ["--rate", "-5"], 2, "--rate"),
        ("--chunk-rows 0", db + ["--chunk-rows", "0"], 2, "--chunk-rows"),
        ("a bad --since", ["dlq", "-b", b, "--since", "yesterday"], 2,
         '"yesterday"'),
        ("a bad --until", ["topic", "-b", b, "--topic", TOPIC, "--since", "0",
                           "--until", "2026-02-30T10:00:00Z"], 2, "--until"),
        ("a time without a zone", ["dlq", "-b", b, "--since",
                                   "2026-11-30T10:00:00"], 2, "--since"),
        ("a bad librdkafka property", db + ["-X", "kafka.no.such=1"], 2,
         "no.such"),
        ("-X without kafka.", db + ["-X", "acks=all"], 2, "-X"),
        ("an unknown source topic", ["topic", "-b", b, "--topic", "nosuch",
                                     "--from-offset", "0"], 1,
         'topic "nosuch" does not exist'),
        ("--from-offset past --to-offset",
         ["topic", "-b", b, "--topic", TOPIC, "--from-offset", "5",
          "--to-offset", "2"], 2, "--to-offset"),
        ("a negative offset", ["topic", "-b", b, "--topic", TOPIC,
                               "--from-offset", "-1"], 2, "--from-offset"),
        ("an offset beyond the end", ["topic", "-b", b, "--topic", TOPIC,
                                      "--partitions", "1", "--from-offset",
                                      "11"], 1, "beyond the end"),
        ("a partition the topic lacks", ["topic", "-b", b, "--topic", TOPIC,
                                         "--partitions", "9",
                                         "--from-offset", "0"], 1,
         "no partition 9"),
        ("both offsets and times", ["topic", "-b", b, "--topic", TOPIC,
                                    "--from-offset", "0", "--since", "0"], 2,
         "--since"),
    ]
    for what, args, want_status, needle in cases:
        status, lines = run(args)
        check(f"{what}: exit status {want_status}", status, want_status)
        check(f"{what}: one line on stderr", len(lines), 1)
        check_true(f"{what}: the line names {needle}",
                   lines and lines[0].startswith("clinicmig-replay: ") and
                   needle in lines[0], lines)
    status, lines = run(["db", "--help"])
    check("db --help: exit status 0, nothing on stderr", (status, lines),
          (0, []))


check_true("the tool is built", os.access(REPLAY, os.X_OK), REPLAY)
with Env() as env:
    load(env)
    want = test_whole(env)
    test_filters(env, want)
    test_int8(env)
    test_dlq(env)
    test_topic(env)
    test_errors(env)
    test_snapshot_and_rate(env, want)
done()
