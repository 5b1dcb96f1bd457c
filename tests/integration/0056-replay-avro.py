#!/usr/bin/python3
"""0056-replay-avro: clinicmig-replay db --output-format avro, end to end
(tools/replay/README.md, "db in Avro"; docs/design.md §3.1).

One PostgreSQL database holds the legacy tables and the new schema side by
side; a schema registry of the test's own (tools/lib/cmregistry.py, basic
auth) takes the replay schema and serves it to the workers.

1. The initial load is a backfill in Avro while a history's live JSON
   events flow (clinicmig-gen, real transactions): the workers converge
   and the oracle finds no difference; the registry got one schema, under
   the subject clinicmig.replay-value, equal to schemas/replay.avsc.
2. The replay topic's messages, read with confluent-kafka and decoded by
   python3-avro with the schema the registry gives for their id: every
   value is Avro with that id, every row carries the run's snapshot and
   its key's id, the markers tile int8 and list exactly the rows sent.
3. The same tables replayed in JSON and in Avro, one after the other with
   nothing changing between: the same keys, headers, rows and markers,
   field for field (a bigint table with ids past 2^53 and values that
   stress the formats among them).
4. A repair: a legacy row deleted without its event reaching Kafka; the
   oracle sees it; an Avro backfill of its table deletes it, through a
   range marker (no message of the run names the row).
5. dlq and topic modes take --output-format avro and re-publish bytes
   unchanged, without asking the registry; a registry that refuses the
   schema or cannot be reached ends a db run (exit 1) before anything is
   read or published; bad flags exit 2 with one line.
"""
import datetime as dt
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import urllib.request

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from cmtest import (BUILD, OUTPUT_TOPICS, REPLAY, ROOT,  # noqa: E402
                    SANITIZER_MARKS, TOPICS, Env, Replay, check, check_true,
                    done, drained, no_drops, oracle, publish, wait_until)

sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
import avro.io  # noqa: E402
import avro.schema  # noqa: E402
import cmavro  # noqa: E402
import cmgen  # noqa: E402
from cmregistry import Registry  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

TOOL = os.path.join(BUILD, "tools", "replay", "clinicmig-replay")
INT8_MIN, INT8_MAX = -(1 << 63), (1 << 63) - 1
SUBJECT = REPLAY + "-value"
TABLES = ("User", "Patient", "Appointment")
SNAPSHOT_RE = re.compile(r"^clinicmig-replay: snapshot (\d+:\d+:[\d,]*)"
                         r" at lsn (\d+)$")

topics = dict(TOPICS)
topics[REPLAY] = 4
SOURCES = [t for t in topics if t not in OUTPUT_TOPICS]

# Patient rows of a bigint table (cmgen.COLUMNS order): ids past 2^53 and
# values that stress the formats.
BIG = 9007199254740993
S2_PATIENTS = [
    (-3 * BIG, 1, 'Quote " and \\ back', "Line\nbreak\ttab\x01ctl", None,
     "1950-06-15", None, None, None, "0001-01-01 00:00:00+00",
     "1969-12-31 23:59:59.999999+00"),
    (2 * BIG, 3, "Ёлка", "日本語 ✓", "Ωmega", "2024-02-29", "F",
     "+7 900 000-00-00", "e@example.org", "2025-03-30 02:30:00+03",
     "2025-01-22 09:30:00+00"),
    (7, 2, "Anna", "Ivanova", None, None, None, None, None,
     "2024-06-01 09:00:00+00", "2024-06-01 09:00:00+00"),
]


# ---- running the tool -------------------------------------------------------

def run(args, timeout=120):
    """Runs the tool; returns (status, stderr lines)."""
    p = subprocess.run([TOOL] + args, capture_output=True, text=True,
                       timeout=timeout)
    bad = [m for m in SANITIZER_MARKS if m in p.stderr]
    check_true("no sanitizer report", not bad, p.stderr[-2000:])
    return p.returncode, p.stderr.splitlines()


def avro_args(reg):
    return ["--output-format", "avro", "--schema-registry-url", reg.url,
            "--schema-registry-basic-auth-user-info", reg.user_info]


def db_run(env, topic, *extra):
    status, lines = run(["db", "--legacy-conninfo", env.pg.conninfo, "-b",
                         env.kafka.bootstrap, "--topic-replay", topic,
                         "--quiet"] + list(extra))
    check(f"db run into {topic} {' '.join(extra[:2])}: exit 0", status, 0) \
        or print("# " + " | ".join(lines[-3:]))
    snaps = [m.groups() for m in map(SNAPSHOT_RE.match, lines) if m]
    return (snaps[0][0], int(snaps[0][1])) if snaps else (None, None)


def read_topic(bootstrap, topic, timeout=60):
    """Every message of @topic up to its high watermarks, partition by
    partition in offset order, as dicts."""
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
                    "headers": m.headers() or []})
        left -= 1
    c.close()
    check("read back every message of " + topic, left, 0)
    return sorted(out, key=lambda m: (m["partition"], m["offset"]))


# ---- Avro, read with python3-avro -------------------------------------------

class AvroReader:
    """Values in Confluent's wire format, their schemas fetched from the
    registry by id (GET /schemas/ids/{id}, as any consumer does)."""

    def __init__(self, reg):
        self.reg = reg
        self.schemas = {}
        self.texts = {}

    def schema(self, sid):
        if sid not in self.schemas:
            req = urllib.request.Request(
                f"{self.reg.url}/schemas/ids/{sid}",
                headers={"Authorization": self.reg.auth})
            with urllib.request.urlopen(req, timeout=10) as r:
                self.texts[sid] = json.loads(r.read())["schema"]
            self.schemas[sid] = avro.schema.parse(self.texts[sid])
        return self.schemas[sid]

    def read(self, value):
        """(schema id, datum as the JSON envelope would hold it)."""
        if not value or value[0] != 0 or len(value) < 5:
            return None, None
        sid = struct.unpack(">I", value[1:5])[0]
        buf = io.BytesIO(value[5:])
        datum = avro.io.DatumReader(self.schema(sid)).read(
            avro.io.BinaryDecoder(buf))
        if buf.tell() != len(value) - 5:
            return sid, None  # trailing bytes
        return sid, as_json(datum)


def as_json(datum):
    """python3-avro's reading of a replay value as the JSON envelope: the
    date logical type back to days."""
    for image in ("before", "after"):
        row = datum.get(image)
        if row and isinstance(row.get("birthDate"), dt.date):
            row["birthDate"] = (row["birthDate"] - dt.date(1970, 1, 1)).days
    return datum


def kind(env):
    return "marker" if env.get("op") == "range" else "row"


def runs_of(ids):
    runs = []
    for i in sorted(ids):
        if runs and runs[-1][1] + 1 == i:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return runs


def check_avro_topic(reg, reader, msgs, snap, lsn, sid):
    """Every value Avro with the registered id; rows and markers as the
    JSON format says, the markers covering exactly the rows sent."""
    rows = {t: set() for t in TABLES}
    marked = {t: [] for t in TABLES}
    bad = []
    for m in msgs:
        got_sid, env = reader.read(m["value"])
        if got_sid != sid or env is None:
            bad.append((m["partition"], m["offset"], got_sid))
            continue
        src = env["source"]
        if src["txid_snapshot"] != snap or src["lsn"] != lsn or \
                src["connector"] != "clinicmig-replay" or \
                src["snapshot"] != "true" or src["txId"] is not None:
            bad.append((m["partition"], m["offset"], "source"))
        table = src["table"]
        if kind(env) == "row":
            key = json.loads(m["key"])
            if env["op"] != "r" or env["after"]["id"] != key["id"] or \
                    env["before"] is not None or env["range"] is not None:
                bad.append((m["partition"], m["offset"], "row"))
            rows[table].add(key["id"])
        else:
            r = env["range"]
            if json.loads(m["key"]) != {"table": table, "first": r["first"],
                                        "last": r["last"]}:
                bad.append((m["partition"], m["offset"], "marker key"))
            marked[table].append((r["first"], r["last"], r["present"]))
    check("every replay value is Avro with the registered id and reads as "
          "its kind says", bad[:5], [])
    for t in TABLES:
        chunks = sorted(marked[t])
        tiled = bool(chunks) and chunks[0][0] == INT8_MIN and \
            chunks[-1][1] == INT8_MAX and all(
                a[1] + 1 == b[0] for a, b in zip(chunks, chunks[1:]))
        check_true(f"{t}: the Avro markers tile int8", tiled, chunks[:3])
        check(f"{t}: the Avro markers list exactly the rows sent",
              [r for c in chunks for r in c[2]], runs_of(rows[t]))
    return sum(len(v) for v in rows.values())


# ---- live traffic -------------------------------------------------------------

class Capture:
    """A history's events, as (topic, key, value) messages."""

    def __init__(self):
        self.buf = io.StringIO()
        self.writer = cmgen.EventWriter(self.buf)
        self.taken = 0

    def take(self):
        lines = self.buf.getvalue().splitlines()[self.taken:]
        self.taken += len(lines)
        return [(m["topic"], m["key"], m["payload"])
                for m in map(json.loads, lines)]


def settle(env):
    wait_until("drained", lambda: drained(env.pg, env.kafka, topics=SOURCES),
               300)


def no_difference(env, what):
    status, out = oracle(env.pg)
    check(f"{what}: the oracle finds no difference", status, 0) or \
        print("# " + out.strip().replace("\n", "\n# ")[:3000])


# ---- the parts ----------------------------------------------------------------

def backfill_racing(env, reg, gen, cap):
    replay = Replay(env, *avro_args(reg))
    for i in range(300):
        gen.step()
        if i % 10 == 9:
            publish(env.kafka.bootstrap, cap.take())
    snap, lsn = replay.snapshot()
    check("the Avro backfill exits 0", replay.wait(), 0) or \
        print("# " + " | ".join(replay.lines[-5:]))
    publish(env.kafka.bootstrap, cap.take())
    settle(env)
    no_drops(env.kafka, SOURCES)
    check_true("the backfill brought the seeded rows", env.pg.query(
        "SELECT count(*) FROM clinicmig.mirror_patient")[0][0] >= 60)
    no_difference(env, "initial load by an Avro backfill, racing live JSON")
    return snap, lsn


def registry_holds_the_schema(reg):
    check("the registry has one subject, clinicmig.replay-value, with one "
          "version", {s: len(v) for s, v in reg.subjects.items()},
          {SUBJECT: 1})
    sid = reg.subjects.get(SUBJECT, [None])[0]
    check("the registered schema is schemas/replay.avsc",
          json.loads(reg.schemas.get(sid, "null")), cmavro.replay_schema())
    return sid


def both_formats(env, reg, reader, sid):
    """The same tables in JSON and in Avro: the same messages."""
    for schema in ("public", "s2"):
        tables = ["--source-schema", schema, "--chunk-rows", "40"]
        if schema == "s2":
            tables = ["--source-schema", schema, "--tables", "Patient",
                      "--chunk-rows", "2"]
        jt, at = f"check.json.{schema}", f"check.avro.{schema}"
        env.kafka.topic(jt, 1)
        env.kafka.topic(at, 1)
        posts = len(reg.posts)
        # a registry URL with json is unused: JSON out, nothing registered
        jsnap, _ = db_run(env, jt, "--schema-registry-url", reg.url, *tables)
        check(f"{schema}: the JSON run asked no registry", len(reg.posts),
              posts)
        asnap, _ = db_run(env, at, *(avro_args(reg) + tables))
        jm = read_topic(env.kafka.bootstrap, jt)
        am = read_topic(env.kafka.bootstrap, at)
        check(f"{schema}: nothing dropped", (env.kafka.dropped(jt),
                                             env.kafka.dropped(at)), (0, 0))
        check(f"{schema}: as many messages in both formats", len(am), len(jm))
        check(f"{schema}: the same keys and headers, byte for byte",
              [(m["key"], m["headers"]) for m in am],
              [(m["key"], m["headers"]) for m in jm])
        diff, kinds = [], {"row": 0, "marker": 0}
        for j, a in zip(jm, am):
            want = json.loads(j["value"])
            got_sid, got = reader.read(a["value"])
            if got_sid != sid or got is None:
                diff.append((a["offset"], got_sid))
                continue
            kinds[kind(want)] += 1
            want_snap, got_snap = want["source"]["txid_snapshot"], \
                got["source"]["txid_snapshot"]
            if want_snap != jsnap or got_snap != asnap:
                diff.append((a["offset"], "snapshot"))
            for e in (want, got):
                e.pop("ts_ms", None)
                for k in ("ts_ms", "lsn", "txid_snapshot"):
                    e["source"].pop(k, None)
            # a JSON marker has no before/after/txId/xmin: null in Avro
            full = {k: want.get(k) for k in got}
            full["source"] = {k: want["source"].get(k)
                              for k in got["source"]}
            if full != got or set(want) - set(got) or \
                    set(want["source"]) - set(got["source"]):
                diff.append((a["offset"], kind(want)))
        check(f"{schema}: every row and marker reads the same in Avro as in "
              "JSON", diff[:5], [])
        check_true(f"{schema}: rows and markers both compared",
                   kinds["row"] > 0 and kinds["marker"] > 1, kinds)
        if schema == "s2":
            ids = [json.loads(m["key"]).get("id") for m in am]
            check("s2: int8 ids past 2^53 exact in Avro", sorted(
                i for i in ids if i is not None), sorted(
                r[0] for r in S2_PATIENTS))


def repair(env, reg, reader, conn, sid):
    pid = env.pg.query("SELECT min(id) FROM clinicmig.mirror_patient"
                       " WHERE NOT deleted AND id > 1")[0][0]
    with conn.cursor() as cur:  # its event never reaches Kafka
        cur.execute('DELETE FROM "Patient" WHERE id = %s', (pid,))
    conn.commit()
    status, _ = oracle(env.pg)
    check_true("the oracle sees the lost delete", status != 0)
    snap, _ = db_run(env, REPLAY, "--tables", "Patient", "--chunk-rows", "5",
                     *avro_args(reg))
    envs = [e for e in (reader.read(m["value"])[1] for m in
                        read_topic(env.kafka.bootstrap, REPLAY))
            if e and e["source"]["txid_snapshot"] == snap]
    check_true("the repair's messages are on the replay topic",
               len(envs) > 10, len(envs))
    check("no message of the repair names the deleted row",
          [e["after"]["id"] for e in envs
           if e["after"] and e["after"]["id"] == pid], [])
    covering = [e["range"] for e in envs if e["range"] and
                e["range"]["first"] <= pid <= e["range"]["last"]]
    check("one marker covers the deleted id, which it does not list",
          [any(a <= pid <= b for a, b in r["present"]) for r in covering],
          [False])
    settle(env)
    no_drops(env.kafka, SOURCES)
    check("the range marker in Avro deleted the mirror row",
          env.pg.query("SELECT deleted FROM clinicmig.mirror_patient"
                       " WHERE id = %s", (pid,)), [(True,)])
    no_difference(env, "after the Avro repair")


def republish_unchanged(env, reg):
    posts = len(reg.posts)
    for src in ("check.json.public", "check.avro.public"):
        dst = src + ".copy"
        env.kafka.topic(dst, 1)
        status, lines = run(["topic", "-b", env.kafka.bootstrap, "--topic",
                             src, "--from-offset", "0", "--topic-replay",
                             dst, "--quiet"] + avro_args(reg))
        check(f"topic mode {src} with --output-format avro: exit 0",
              status, 0) or print("# " + " | ".join(lines[-3:]))
        check(f"topic mode {src}: the bytes re-published unchanged",
              [m["value"] for m in read_topic(env.kafka.bootstrap, dst)],
              [m["value"] for m in read_topic(env.kafka.bootstrap, src)])
    status, lines = run(["dlq", "-b", env.kafka.bootstrap, "--topic-replay",
                         "check.json.public.copy", "--output-format", "avro",
                         "--quiet"])
    check("dlq mode takes --output-format avro without a registry", status, 0) \
        or print("# " + " | ".join(lines[-3:]))
    check("dlq and topic modes never asked the registry", len(reg.posts),
          posts)


def errors(env, reg):
    env.kafka.topic("refused.replay", 1)
    reg.refuse["refused.replay-value"] = (
        409, "Schema being registered is incompatible with an earlier schema")
    base = ["db", "--legacy-conninfo", env.pg.conninfo, "-b",
            env.kafka.bootstrap, "--topic-replay", "refused.replay"]
    status, lines = run(base + avro_args(reg))
    check("a registry refusing the schema: exit 1 and one line",
          (status, len(lines)), (1, 1))
    check_true("... naming the subject and the registry's reason",
               lines and "refused.replay-value" in lines[0] and
               "incompatible" in lines[0], lines)
    check("... before the database is read (no snapshot line)",
          [l for l in lines if SNAPSHOT_RE.match(l)], [])
    down = ["--output-format", "avro", "--schema-registry-url",
            "http://127.0.0.1:1"]
    status, lines = run(base + down)
    check("a registry that cannot be reached: exit 1 and one line",
          (status, len(lines)), (1, 1))
    check("nothing published by either run",
          sum(h for _, h in env.kafka.watermarks("refused.replay").values()),
          0)
    db = ["db", "--legacy-conninfo", env.pg.conninfo, "-b", "127.0.0.1:1"]
    for args, want in (
            (["--output-format", "avro"],
             "db: --output-format avro needs --schema-registry-url"),
            (["--output-format", "avro", "--schema-registry-url",
              "registry:8081"],
             '--schema-registry-url: expected an http:// or https:// URL'),
            (["--output-format", "xml"],
             '--output-format: expected json or avro, got "xml"')):
        status, lines = run(db + args)
        check(f"{args}: exit 2 and one line", (status, len(lines)), (2, 1))
        check_true(f"{args}: says {want!r}", lines and want in lines[0],
                   lines)
    status, _ = run(["dlq", "-b", "127.0.0.1:1", "--output-format", "json",
                     "--help"])
    check("dlq --help with --output-format: exit 0", status, 0)


with Env(topics=topics) as env:
    reg = Registry({})
    try:
        conn = psycopg2.connect(env.pg.conninfo)
        cmgen.seed(conn, scale=3)
        with conn.cursor() as cur:
            cur.execute('CREATE SCHEMA s2; CREATE TABLE s2."Patient"'
                        ' (LIKE public."Patient" INCLUDING ALL);'
                        ' ALTER TABLE s2."Patient" ALTER id TYPE bigint')
            cols = cmgen.COLUMNS["Patient"]
            cur.executemany(
                f'INSERT INTO s2."Patient" ({", ".join(map(cmgen._q, cols))})'
                f' VALUES ({", ".join(["%s"] * len(cols))})', S2_PATIENTS)
        conn.commit()
        env.worker(extra=reg.worker_options())
        env.worker(extra=reg.worker_options())
        cap = Capture()
        gen = cmgen.History(conn, 56, cap.writer)

        snap, lsn = backfill_racing(env, reg, gen, cap)
        sid = registry_holds_the_schema(reg)
        reader = AvroReader(reg)
        n = check_avro_topic(reg, reader,
                             read_topic(env.kafka.bootstrap, REPLAY), snap,
                             lsn, sid)
        check_true("the replay topic held the backfill's rows", n >= 60, n)
        check("the schema the registry serves for the id is replay.avsc",
              json.loads(reader.texts.get(sid, "null")),
              cmavro.replay_schema())
        both_formats(env, reg, reader, sid)
        repair(env, reg, reader, conn, sid)
        republish_unchanged(env, reg)
        errors(env, reg)
        conn.close()
    finally:
        reg.stop()
done()
