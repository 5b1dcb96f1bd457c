#!/usr/bin/python3
"""0070-avro: Debezium's Avro events, schemas from a registry.

A schema registry of the test's own (tools/lib/cmregistry.py: HTTP, basic
auth) serves the writer schemas of events written by python3-avro
(tests/lib/cmavro.py) in Confluent's wire format, beside JSON events on
the same topics. Every table and op applies as its JSON twin would; a
writer version with an added column applies; one without an optional
column stores NULL; one without a required column, an id the registry
does not have and a truncated body go to the dead-letter topic with the
reason. Then the registry answers 503, and then stops, while events of a
schema the worker has not fetched yet arrive: the batch waits (nothing applied, nothing
dead-lettered), and once the registry is back everything applies and
nothing more is dead-lettered.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, appointment, check, check_true, done,  # noqa
                    drained, message, no_drops, patient, publish, stats,
                    user, wait_until)
import cmavro  # noqa: E402
from cmregistry import Registry  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402

U = "legacy.public.User"


def read_dlq(bootstrap, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-reader",
                  "auto.offset.reset": "earliest"})
    c.subscribe(["clinicmig.dlq"])
    got = []
    for _ in range(300):
        m = c.poll(0.1)
        if m is not None and not m.error():
            got.append(m)
        if len(got) >= n:
            break
    c.close()
    return got


def reasons_of(msgs):
    out = []
    for m in msgs:
        h = {k: v.decode() for k, v in (m.headers() or [])}
        out.append(h.get("__connect.errors.exception.message", ""))
    return out


def history(w):
    """Every table and op, in Avro, and one JSON event among them."""
    u1 = user(1, email="a1@example.org", phone="+79990000001")
    u2 = user(2, email="a2@example.org", lic="L-2")
    p1 = patient(11, phone="+79991110011", birth="1980-02-03",
                 middle="Ильич")
    p2 = patient(12, phone="+79991110012", email="p12@example.org")
    a1 = appointment(21, 1, 11, reason="checkup")
    times = {"startsAt": "micro", "endsAt": "millis"}
    return [
        w.message("User", "r", u1, 100),
        w.message("User", "c", u2, 110),
        w.message("User", "u", dict(u2, lastName="Sidorov"), 120, before=u2),
        w.message("Patient", "r", p1, 200),
        w.message("Patient", "c", p2, 210),
        w.message("Patient", "u", dict(p2, phone=None), 220),
        w.message("Patient", "d", 12, 230),
        (U, w.key("User", 3), None),  # tombstone: skipped
        w.message("Appointment", "c", a1, 300, types=times),
        w.message("Appointment", "u", dict(a1, status="DONE"), 310,
                  types=times),
        message("User", "c", user(4, email="json@example.org"), 400),
    ]


def versions(w):
    """Writer versions: an added column, no optional column, no required
    one; an unknown id and a truncated body."""
    no_middle = [c for c in cmavro.TABLE_COLS["Patient"]
                 if c != "middleName"]
    no_clinic = [c for c in cmavro.TABLE_COLS["User"] if c != "clinicId"]
    good = w.message("User", "c", user(6, email="a6@example.org"), 520)
    return [
        w.message("User", "c", dict(user(5, email="a5@example.org"),
                                    nickname="five"), 500,
                  extra={"nickname": "string"}),
        w.message("Patient", "c", patient(13, middle="Петрович"), 510,
                  cols=no_middle),
        w.message("User", "c", user(7, email="a7@example.org"), 530,
                  cols=no_clinic),
        (U, good[1], b"\0\0\0\x03\xe7" + good[2][5:]),   # id 999
        (U, good[1], good[2][:-9]),                       # truncated
        good,
    ]


with Env() as env:
    w = cmavro.Writer()
    reg = Registry(w.texts)
    try:
        worker = env.worker(extra=reg.worker_options())
        publish(env.kafka.bootstrap, history(w) + versions(w))
        wait_until("drained", lambda: drained(env.pg, env.kafka), 120)
        no_drops(env.kafka)
        check("users applied from Avro and JSON", env.pg.query(
            "SELECT id, clinic_id, last_name, license_number FROM"
            " clinicmig.mirror_user WHERE NOT deleted ORDER BY id"),
            [(1, 1, "Petrov", None), (2, 1, "Sidorov", "L-2"),
             (4, 1, "Petrov", None), (5, 1, "Petrov", None),
             (6, 1, "Petrov", None)])
        check("patients: dates, deletes, an optional column the writer "
              "lacks is NULL", env.pg.query(
                  "SELECT id, middle_name, birth_date::text, deleted"
                  " FROM clinicmig.mirror_patient ORDER BY id"),
              [(11, "Ильич", "1980-02-03", False), (12, None, None, True),
               (13, None, None, False)])
        check("appointment: MicroTimestamp and Timestamp columns",
              env.pg.query(
                  "SELECT status, starts_at = '2025-03-01T09:00:00Z',"
                  " ends_at = '2025-03-01T09:30:00Z'"
                  " FROM clinicmig.mirror_appointment WHERE id = 21"),
              [("DONE", True, True)])
        check("appointment derived", env.pg.query(
            "SELECT status FROM v2.appointment WHERE id = 21"), [("DONE",)])
        s = stats(env.pg)
        check("three dead letters", s["dead_lettered"], 3)
        reasons = reasons_of(read_dlq(env.kafka.bootstrap, 3))
        check_true("reason: a required column the writer lacks",
                   any("after.clinicId: missing required column" in r
                       for r in reasons), reasons)
        check_true("reason: unknown schema id",
                   any("schema id 999: not found in the registry" in r
                       for r in reasons), reasons)
        check_true("reason: truncated body",
                   any("does not match its writer schema" in r
                       for r in reasons), reasons)
        check_true("reasons hold no value", not any(
            "a7@example.org" in r or "Petrov" in r for r in reasons),
            reasons)
        check_true("schemas are fetched once per id",
                   all(n == 1 for sid, n in reg.requests.items()
                       if sid != 999), reg.requests)

        # the registry fails (503), then goes away, while events of a new
        # writer version come
        reg.failing = 503
        later = [w.message("User", "c", dict(user(i, email=f"b{i}@x.org"),
                                             badge="b"), 600 + i,
                           extra={"badge": "string"}) for i in range(8, 12)]
        before = stats(env.pg)
        publish(env.kafka.bootstrap, later)
        wait_until("the worker waits for the registry (503)", lambda:
                   "HTTP status 503" in worker.output(), 60)
        reg.stop()
        reg.failing = None
        wait_until("a few retries", lambda: worker.output().count(
            "waits for the schema registry") >= 3, 60)
        mid = stats(env.pg)
        check("nothing applied while the registry is down",
              mid["applied"], before["applied"])
        check("nothing dead-lettered while the registry is down",
              mid["dead_lettered"], before["dead_lettered"])
        reg.start()
        wait_until("drained after the registry is back",
                   lambda: drained(env.pg, env.kafka), 120)
        check("every event of the outage applied", env.pg.query(
            "SELECT count(*) FROM clinicmig.mirror_user"
            " WHERE id BETWEEN 8 AND 11"), [(4,)])
        check("still three dead letters", stats(env.pg)["dead_lettered"], 3)
        check_true("no personal data in the worker log",
                   "a1@example.org" not in worker.output() and
                   "Ильич" not in worker.output())
    finally:
        reg.stop()
done()
