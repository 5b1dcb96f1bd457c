#!/usr/bin/python3
"""0076-time-precision: the worker reads schemaless events as configured.

A worker told the connector's time.precision.mode (adaptive) and the legacy
column types (timestamp(3) everywhere, timestamp(6) for an appointment's
start and end) applies schemaless events whose timestamps are numbers, in
milliseconds and microseconds as that mode writes them, and rows flattened
by ExtractNewRecordState that carry __lsn (an update and a rewritten
delete). What it cannot apply safely is dead-lettered with the reason: a
number out of range in its column's unit, a flattened row without __lsn,
an incremental snapshot read (docs/design.md §1.2).
"""
import datetime as dt
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, appointment, check, check_true, done,  # noqa
                    drained, envelope, key_json, no_drops, publish, stats,
                    user, wait_until)
from confluent_kafka import Consumer  # noqa: E402

TYPES = "*.*=timestamp(3),Appointment.startsAt=timestamp(6)," \
        "Appointment.endsAt=timestamp(6)"
U = "legacy.public.User"
A = "legacy.public.Appointment"
UTC = dt.timezone.utc


def ms(iso):
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
               .timestamp() * 1000)


def adaptive(row, us_cols=()):
    """The row as the connector writes it in adaptive mode: timestamp(3)
    columns in ms, timestamp(6) ones in µs."""
    out = dict(row)
    for c in ("createdAt", "updatedAt", "startsAt", "endsAt"):
        if c in out:
            out[c] = ms(out[c]) * (1000 if c in us_cols else 1)
    return out


def change(topic, table, op, row, pos, **src):
    env = envelope(table, op, None, row, pos, 1000 + pos // 100)
    env["source"].update(src)
    return (topic, key_json(table, row["id"]), json.dumps(env))


def flat(row, **meta):
    out = dict(row)
    out.update(meta)
    return (U, key_json("User", row["id"]), json.dumps(out))


def reasons(bootstrap, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-reader",
                  "auto.offset.reset": "earliest"})
    c.subscribe(["clinicmig.dlq"])
    got = []
    for _ in range(300):
        m = c.poll(0.1)
        if m is not None and not m.error():
            h = {k: v.decode() for k, v in (m.headers() or [])}
            got.append(h.get("__connect.errors.exception.message", ""))
        if len(got) >= n:
            break
    c.close()
    return got


u1 = user(1, email="a1@example.org", updated="2025-01-22T10:15:30.123Z")
u2 = user(2, email="a2@example.org")
u2b = user(2, email="a2@example.org", spec="surgeon",
           updated="2025-02-01T08:00:00.250Z")
u3 = user(3, email="a3@example.org")
a5 = appointment(5, 1, 42, reason="checkup")
a5.update(startsAt="2025-02-03T09:00:00Z", endsAt="2025-02-03T09:30:00Z")

with Env() as env:
    env.worker(extra=["--time-precision-mode", "adaptive",
                      "--legacy-column-types", TYPES])
    publish(env.kafka.bootstrap, [
        change(U, "User", "c", adaptive(u1), 100),
        change(U, "User", "c", adaptive(u2), 110),
        change(A, "Appointment", "c", adaptive(a5, ("startsAt", "endsAt")),
               120),
        flat(adaptive(u2b), __op="u", __table="User", __lsn="130",
             __deleted="false"),
        change(U, "User", "c", adaptive(u3), 140),
        flat(adaptive(u3), __lsn=150, __deleted="true"),
        # µs in a timestamp(3) column: past the year 9999 as ms
        change(U, "User", "u", adaptive(u1, ("updatedAt",)), 160),
        flat(adaptive(u1), __op="u"),
        change(U, "User", "r", adaptive(u1), 170, lsn=None, txId=None,
               snapshot="incremental"),
    ])
    wait_until("the worker drains the topics",
               lambda: drained(env.pg, env.kafka), 90)
    no_drops(env.kafka)
    check("users in the mirror, timestamps from ms", env.pg.query(
        "SELECT id, deleted, updated_at, specialization, lsn"
        " FROM clinicmig.mirror_user ORDER BY id"),
        [(1, False, dt.datetime(2025, 1, 22, 10, 15, 30, 123000, UTC),
          "therapist", 100),
         (2, False, dt.datetime(2025, 2, 1, 8, 0, 0, 250000, UTC),
          "surgeon", 130),
         (3, True, dt.datetime(2025, 1, 10, 10, 0, 0, tzinfo=UTC),
          "therapist", 150)])
    check("the appointment, start and end from µs", env.pg.query(
        "SELECT starts_at, ends_at FROM clinicmig.mirror_appointment"),
        [(dt.datetime(2025, 2, 3, 9, 0, tzinfo=UTC),
          dt.datetime(2025, 2, 3, 9, 30, tzinfo=UTC))])
    s = stats(env.pg, "User")
    check("user events dead-lettered", s["dead_lettered"], 3)
    got = reasons(env.kafka.bootstrap, 3)
    for want in ("after.updatedAt: timestamp out of range in milliseconds "
                 "(time.precision.mode adaptive, legacy type "
                 "timestamp(0-3))",
                 "__lsn: missing: a flattened event",
                 "source.lsn: missing in an incremental snapshot read"):
        check_true(f"dead letter: {want}",
                   any(r.startswith(want) for r in got), got)
done()
