#!/usr/bin/python3
"""0007-poison: bad events go to the dead-letter topic; the rest applies.

Between good events of one key (so all in one partition) stand a
malformed JSON value, an event of an unknown table, an event with a
required column missing, a truncate, and an update whose unchanged-TOAST
placeholder has no stored value; beside them, a row the database refuses
(a check constraint stands in for any value it cannot store). Each must land on clinicmig.dlq with
Kafka Connect's error headers (reason, source topic/partition/offset) and
its original key and value; the events after them must be applied, and a
placeholder on a row the mirror holds must keep the stored value.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, check_true, done, drained, envelope,  # noqa
                    key_json, message, no_drops, publish, stats, user,
                    wait_schema, wait_until)
from confluent_kafka import Consumer  # noqa: E402

T = "legacy.public.User"
KEY = key_json("User", 7)


def bad(env_change):
    env = envelope("User", "u", None, user(7, email="p@example.org"), 150, 9)
    env_change(env)
    return (T, KEY, json.dumps(env))


def drop_col(e):
    del e["after"]["email"]


def unknown_table(e):
    e["source"]["table"] = "Invoice"


def truncate(e):
    e.update(op="t", before=None, after=None)


def read_dlq(bootstrap, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-reader",
                  "auto.offset.reset": "earliest"})
    c.subscribe(["clinicmig.dlq"])
    got = []
    for _ in range(600):
        m = c.poll(0.1)
        if m is not None and not m.error():
            got.append(m)
        if len(got) >= n:
            break
    c.close()
    return got


with Env() as env:
    env.worker()
    # a value the database itself refuses, as a stand-in for any row the
    # mapping cannot store: the batch holding it must go on without it
    wait_schema(env.pg)
    env.pg.execute("ALTER TABLE clinicmig.mirror_user ADD CONSTRAINT"
                   " refuse_me CHECK (last_name IS DISTINCT FROM 'REFUSE')")
    toast = user(8, email="q@example.org")
    toast["lastName"] = "__debezium_unavailable_value"
    keep = user(7, email="p@example.org", last="Keep", spec="surgeon")
    keep["specialization"] = "__debezium_unavailable_value"
    publish(env.kafka.bootstrap, [
        message("User", "c", user(7, email="p@example.org", last="Before",
                                  spec="surgeon"), 100),
        (T, KEY, '{"before": null, "after": {"id": 7, '),
        bad(unknown_table),
        bad(drop_col),
        bad(truncate),
        message("User", "u", toast, 160),
        message("User", "u", keep, 200),
        message("User", "c", user(9, email="r@example.org", last="REFUSE"),
                300),
        message("User", "c", user(10, email="s@example.org"), 301),
    ])
    wait_until("drained", lambda: drained(env.pg, env.kafka))
    no_drops(env.kafka)
    check("the event after the poison ones is applied; the placeholder "
          "keeps the stored specialization", env.pg.query(
              "SELECT last_name, specialization FROM v2.global_doctor"
              " WHERE id = 7"), [("Keep", "surgeon")])
    check("no row from the placeholder event without a stored value",
          env.pg.query("SELECT count(*) FROM clinicmig.mirror_user"
                       " WHERE id = 8"), [(0,)])
    check("the events beside the refused one are applied", env.pg.query(
        "SELECT id FROM v2.clinic_doctor WHERE id IN (9, 10)"), [(10,)])
    s = stats(env.pg)
    check("dead-letter counter", s["dead_lettered"], 6)
    dl = read_dlq(env.kafka.bootstrap, 6)
    check("six messages on the dead-letter topic", len(dl), 6)
    reasons = []
    for m in dl:
        h = {k: v.decode() for k, v in (m.headers() or [])}
        reasons.append(h.get("__connect.errors.exception.message", ""))
        check_true("header names the source topic",
                   h.get("__connect.errors.topic") == T)
        check_true("header names partition and offset",
                   h.get("__connect.errors.partition", "").isdigit() and
                   h.get("__connect.errors.offset", "").isdigit())
        check_true("header carries the time", "clinicmig.error.time" in h)
        check_true("original key kept", m.key() in (KEY.encode(),
                   key_json("User", 8).encode(),
                   key_json("User", 9).encode()))
    check_true("reason: malformed JSON",
               any("malformed JSON" in r for r in reasons), reasons)
    check_true("reason: unknown table",
               any("unknown table" in r for r in reasons), reasons)
    check_true("reason: missing column",
               any("after.email" in r for r in reasons), reasons)
    check_true("reason: truncate", any("truncate" in r for r in reasons),
               reasons)
    check_true("reason: placeholder without stored value",
               any("placeholder" in r for r in reasons), reasons)
    check_true("reason: the database's refusal, by SQLSTATE, no value",
               any("database refused the row: SQLSTATE 23514" in r and
                   "REFUSE" not in r for r in reasons), reasons)
    check_true("no personal data in the worker log",
               "p@example.org" not in env.workers[0].output() and
               "Keep" not in env.workers[0].output())
done()
