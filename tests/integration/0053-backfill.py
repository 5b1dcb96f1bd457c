#!/usr/bin/python3
"""0053-backfill: backfill and repair from a real legacy database while
live changes flow (docs/design.md §3).

One PostgreSQL database holds the legacy tables and the new schema side by
side; clinicmig-gen applies random histories to the legacy tables in real
transactions and derives their Debezium events (real txIds and LSNs);
clinicmig-replay db reads the legacy tables in one snapshot; two workers
apply both streams; the oracle compares the result with f(legacy tables).

1. The initial load is a backfill: the seeded rows reach the workers only
   through the replay topic, while a history races the backfill's snapshot
   (updates and deletes of the same rows before and after it).
2. A backfill again after more live changes, and once more with nothing
   new, changes nothing it should not: the oracle still finds no
   difference, and the last run leaves the new schema as it was.
3. Repair: a fifth of a history's events never reach Kafka (deletes and
   tombstones among them), and the oracle sees the damage. A transaction
   is held open across the next backfill's snapshot (begun before it,
   committed after): its changes carry LSNs below the snapshot's position,
   so ordering by LSN would let the snapshot's older rows win. More live
   changes flow during the backfill. After it the oracle finds no
   difference.
"""
import io
import json
import os
import random
import sys

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (OUTPUT_TOPICS, REPLAY, ROOT, TOPICS, Env, Replay,  # noqa
                    check, check_true, done, drained, no_drops, oracle,
                    publish, wait_until)

sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
import cmgen  # noqa: E402

topics = dict(TOPICS)
topics[REPLAY] = 4
SOURCES = [t for t in topics if t not in OUTPUT_TOPICS]


class Capture:
    """A history's events, as (topic, key, value) messages."""

    def __init__(self):
        self.buf = io.StringIO()
        self.writer = cmgen.EventWriter(self.buf)
        self.taken = 0

    def take(self):
        """The messages written since the last take()."""
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


def v2_state(env):
    return {t: env.pg.query(f"SELECT * FROM v2.{t} ORDER BY id")
            for t in ("global_doctor", "clinic_doctor", "global_patient",
                      "clinic_patient", "appointment")}


def race(env, gen, cap, steps, *args):
    """A backfill while @steps history transactions run and their events
    are published as they come; returns the replay's snapshot."""
    replay = Replay(env, *args)
    for i in range(steps):
        gen.step()
        if i % 10 == 9:
            publish(env.kafka.bootstrap, cap.take())
    snap = replay.snapshot()
    check("the backfill exits 0", replay.wait(), 0) or \
        print("# " + " | ".join(replay.lines[-5:]))
    publish(env.kafka.bootstrap, cap.take())
    return snap


def held_events(conn, tx, names, appt):
    """The Debezium events of the held transaction: @names {patient id:
    LSN of its update}, @appt (appointment id, LSN of its delete); row
    images as the transaction left them."""
    buf = io.StringIO()
    w = cmgen.EventWriter(buf)
    with conn.cursor() as cur:
        for pid, lsn in names.items():
            cur.execute('SELECT * FROM "Patient" WHERE id = %s', (pid,))
            cols = [d.name for d in cur.description]
            w.change("Patient", "u", pid, None,
                     cmgen.row_image(cols, cur.fetchone()), lsn, None, tx,
                     cmgen.now_ms())
    w.change("Appointment", "d", appt[0], {"id": appt[0]}, None, appt[1],
             None, tx, cmgen.now_ms())
    return [(m["topic"], m["key"], m["payload"])
            for m in map(json.loads, buf.getvalue().splitlines())]


def wal_lsn(cur):
    cur.execute("SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint")
    return cur.fetchone()[0]


def repair(env, conn, gen, cap):
    rnd = random.Random(53)
    gen.run(200)
    msgs = cap.take()
    deletes = [i for i, m in enumerate(msgs)
               if m[2] is None or json.loads(m[2])["op"] == "d"]
    lost = {i for i in range(len(msgs)) if rnd.random() < 0.2}
    lost |= set(deletes[:4])  # a delete and its tombstone at least
    publish(env.kafka.bootstrap,
            [m for i, m in enumerate(msgs) if i not in lost])
    settle(env)
    status, out = oracle(env.pg)
    check_true(f"with {len(lost)} of {len(msgs)} events lost (deletes among "
               "them) the oracle sees the damage", status != 0, out[:300])

    # a transaction held open across the backfill's snapshot
    held = psycopg2.connect(env.pg.conninfo)
    tx_cur = held.cursor()
    tx_cur.execute("SELECT txid_current() %% %s", (cmgen.XID_MOD,))
    tx = tx_cur.fetchone()[0]
    names = {}
    for pid in sorted(gen.rows["Patient"])[:2]:
        tx_cur.execute('UPDATE "Patient" SET "lastName" = %s, "updatedAt" ='
                       ' now() WHERE id = %s', (f"Held{pid}", pid))
        names[pid] = wal_lsn(tx_cur)
    appt_id = sorted(gen.rows["Appointment"])[0]
    tx_cur.execute('DELETE FROM "Appointment" WHERE id = %s', (appt_id,))
    appt = (appt_id, wal_lsn(tx_cur))
    replay = Replay(env)
    snap, snap_lsn = replay.snapshot()
    held.commit()
    held.close()
    xmin, xmax, xip = snap.split(":")
    check_true("the held transaction is in progress in the snapshot "
               "(listed, or at or past its xmax)",
               tx >= int(xmax) or str(tx) in xip.split(","),
               f"{tx} / {snap}")
    check_true("its changes have LSNs at or below the snapshot's position, so LSN "
               "order would take the snapshot's rows as newer",
               max(list(names.values()) + [appt[1]]) <= snap_lsn,
               f"{names} {appt} / {snap_lsn}")
    events = held_events(conn, tx, names, appt)
    # live traffic goes on while the backfill runs
    gen2 = cmgen.History(conn, 531, cap.writer)
    for _ in range(100):
        gen2.step()
    check("the repair backfill exits 0", replay.wait(), 0)
    publish(env.kafka.bootstrap, events + cap.take())
    settle(env)
    no_difference(env, "after the repair")
    held_names = dict(env.pg.query(
        "SELECT id, last_name FROM clinicmig.mirror_patient WHERE id = ANY(%s)",
        (list(names),)))
    check("the held transaction's changes won over the snapshot's older "
          "rows", {pid: held_names.get(pid) == f"Held{pid}" for pid in names},
          {pid: True for pid in names})
    check("the held transaction's delete stands", env.pg.query(
        "SELECT count(*) FROM v2.appointment WHERE id = %s", (appt_id,)),
        [(0,)])


with Env(topics=topics) as env:
    conn = psycopg2.connect(env.pg.conninfo)
    cmgen.seed(conn, scale=3)
    env.worker()
    env.worker()
    cap = Capture()
    gen = cmgen.History(conn, 53, cap.writer)

    race(env, gen, cap, 300)
    settle(env)
    no_drops(env.kafka, SOURCES)
    check_true("the backfill brought the seeded rows", env.pg.query(
        "SELECT count(*) FROM clinicmig.mirror_patient")[0][0] >= 60)
    no_difference(env, "initial load by backfill, racing live changes")

    race(env, gen, cap, 100)
    settle(env)
    no_difference(env, "a second backfill after more live changes")
    before = v2_state(env)
    r = Replay(env)
    check("a third backfill exits 0", r.wait(), 0)
    settle(env)
    check("a backfill of unchanged tables leaves the new schema as it was",
          v2_state(env), before)

    repair(env, conn, gen, cap)
    no_drops(env.kafka, SOURCES)
    conn.close()
done()
