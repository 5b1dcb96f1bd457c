#!/usr/bin/python3
"""0064-reconcile-scale: one difference among 100 000 rows, found by
reading a few rows (docs/reconciliation.md, "How a check reads few
rows").

The legacy tables, the mirror and v2 are filled to agree with
INSERT ... SELECT generate_series (tools/reconcile/scale.py: 1 000
doctors, 100 000 patients, 100 000 appointments), the worker only
creating the schema. A first pass finds nothing and every verdict is in
sync. One legacy "Patient" row is
then changed without an event: the next pass names exactly that id under
legacy-mirror, and its patient pass event shows rows_read far below the
table size (both printed). A pass with --rate keeps the legacy rows
scanned per second within the rate. SIGTERM in the middle of a pass
ends it after the entity in progress: exit 0, no verdict published.
"""
import json
import os
import signal
import subprocess
import sys
import time

import psycopg2
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, ROOT, SANITIZER_MARKS, TOPICS, Env,  # noqa: E402
                    check, check_true, done, wait_schema, wait_until)

sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
import cmgen  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tools", "reconcile"))
from scale import fill_sql  # noqa: E402

RECONCILE = os.path.join(BUILD, "tools", "reconcile", "clinicmig-reconcile")
RECON_TOPIC = "clinicmig.reconciliation"
N = 100000
DOCTORS = 1000
topics = dict(TOPICS)
topics[RECON_TOPIC] = 1
stderr_seen = []


def reconcile(env, *args):
    t0 = time.monotonic()
    r = subprocess.run([RECONCILE, "--db-conninfo", env.pg.conninfo,
                        "--legacy-conninfo", env.pg.conninfo,
                        "-b", env.kafka.bootstrap, "--once", "--hold-ms", "0"]
                       + list(args), capture_output=True, text=True,
                       timeout=600)
    stderr_seen.append(r.stderr)
    return r.returncode, r.stderr, time.monotonic() - t0


class Topic:
    def __init__(self, bootstrap):
        self.c = Consumer({"bootstrap.servers": bootstrap,
                           "group.id": "test-0064",
                           "enable.auto.commit": False})
        self.c.assign([TopicPartition(RECON_TOPIC, 0, 0)])
        self.next = 0

    def read(self, kafka):
        _, high = kafka.watermarks(RECON_TOPIC)[0]
        out = []
        deadline = time.monotonic() + 30
        while self.next < high and time.monotonic() < deadline:
            m = self.c.poll(0.5)
            if m is not None and not m.error():
                self.next = m.offset() + 1
                out.append(json.loads(m.value()))
        return out


def of(evs, typ):
    return {e["entity"]: e for e in evs if e["type"] == typ}


with Env(topics=topics) as env:
    env.worker()
    wait_schema(env.pg)
    conn = psycopg2.connect(env.pg.conninfo)
    cmgen.create_tables(conn)
    with conn.cursor() as cur:
        cur.execute(fill_sql(DOCTORS, N, N))
    conn.commit()
    conn.close()
    topic = Topic(env.kafka.bootstrap)

    status, err, secs = reconcile(env)
    evs = topic.read(env.kafka)
    check("a pass over 100 000 agreeing rows exits 0", status, 0) or \
        print("# " + err.replace("\n", "\n# "))
    check("it finds no mismatch", [e for e in evs
                                   if e["type"] == "mismatch"], [])
    check("every verdict in sync", {e: v["in_sync"] for e, v in
                                    of(evs, "verdict").items()},
          {"doctor": True, "patient": True, "appointment": True})
    print(f"# a full pass over {N} patients, {N} appointments and "
          f"{DOCTORS} doctors (legacy, mirror, v2): {secs:.1f} s")

    env.pg.execute('UPDATE "Patient" SET "lastName" = \'Changed\''
                   " WHERE id = 77777")
    status, err, secs = reconcile(env)
    evs = topic.read(env.kafka)
    check("with one difference --once exits 3", status, 3)
    check("exactly that id, under legacy-mirror", [
        (e["entity"], e["check"], e["missing"], e["extra"], e["differing"])
        for e in evs if e["type"] == "mismatch"],
        [("patient", "legacy-mirror", [], [], [77777])])
    p = of(evs, "pass")["patient"]
    print(f"# patient pass: rows {p['rows']}, rows_read {p['rows_read']}, "
          f"segments {p['segments']}, {p['duration_s']} s")
    check("the table size in the pass event", p["rows"],
          {"legacy": N, "mirror": N, "v2": N})
    check_true("rows_read far below the table size (at most 2 x 64 rows a "
               "side per check)", 0 < p["rows_read"] <= 4 * 64,
               p["rows_read"])
    check_true("few segments checksummed", p["segments"] < 200,
               p["segments"])

    rate = 50000
    status, err, secs = reconcile(env, "--rate", str(rate))
    evs = topic.read(env.kafka)
    p = of(evs, "pass")["patient"]
    print(f"# with --rate {rate}: the patient pass scanned legacy rows at "
          f"{p['legacy_rows_per_s']} rows/s in {p['duration_s']} s")
    check_true("--rate bounds the legacy rows scanned per second",
               p["legacy_rows_per_s"] <= rate * 1.1 and
               p["duration_s"] >= 2 * N / rate * 0.9,
               (p["legacy_rows_per_s"], p["duration_s"]))
    check("the difference is still found",
          [e["differing"] for e in evs if e["type"] == "mismatch"],
          [[77777]])

    # SIGTERM while the patients are being checked
    p = subprocess.Popen([RECONCILE, "--db-conninfo", env.pg.conninfo,
                          "--legacy-conninfo", env.pg.conninfo,
                          "-b", env.kafka.bootstrap, "--hold-ms", "0",
                          "--interval-ms", "600000"],
                         stderr=subprocess.PIPE, text=True)
    wait_until("the doctors are checked", lambda: any(
        e["type"] == "pass" and e["entity"] == "doctor"
        for e in topic.read(env.kafka)), 60, 0.05)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    status = p.wait(60)
    err = p.stderr.read()
    stderr_seen.append(err)
    print(f"# stopped {time.monotonic() - t0:.1f} s after SIGTERM")
    evs = topic.read(env.kafka)
    check("SIGTERM in the middle of a pass: exit 0", status, 0)
    check("the entity in progress is finished, no verdict published",
          [(e["type"], e["entity"]) for e in evs
           if e["type"] in ("pass", "verdict")], [("pass", "patient")])
    check_true("one log line per entity done, no pass summary",
               "pass 4 patient:" in err and "pass 4 in" not in err, err)
    topic.c.close()
    check("no sanitizer report from any reconciler",
          [m for m in SANITIZER_MARKS if any(m in e for e in stderr_seen)],
          [])
done()
