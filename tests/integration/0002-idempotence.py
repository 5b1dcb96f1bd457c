#!/usr/bin/python3
"""0002-idempotence: duplicates and stale events change nothing.

The same history is published twice, then an event older than what the
mirror holds (a late redelivery); the final state equals the one of a
single delivery, and the stale-event counter counts exactly the events at
or below the stored position.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, done, drained, message, no_drops,  # noqa
                    publish, stats, user, wait_until)

V2 = ("SELECT 'g', id, email, first_name, last_name FROM v2.global_doctor"
      " UNION ALL SELECT 'c', id, global_doctor_id::text, clinic_id::text,"
      " is_active::text FROM v2.clinic_doctor ORDER BY 1, 2")


def history():
    return [
        message("User", "c", user(10, email="x@example.org", last="A"), 100),
        message("User", "c", user(11, clinic=2, email="X@example.org",
                                  last="B"), 101),
        message("User", "u", user(10, email="x@example.org", last="A2",
                                  updated="2025-03-01T00:00:00Z"), 200),
        message("User", "u", user(11, clinic=2, email="y@example.org",
                                  last="B2"), 201, schemas=True),
        message("User", "d", 10, 300),
    ]


with Env() as env:
    env.worker()
    publish(env.kafka.bootstrap, history())
    wait_until("first delivery drained", lambda: drained(env.pg, env.kafka))
    once = env.pg.query(V2)
    check("after one delivery: user 11 alone under its new email", once,
          [("c", 11, "11", "2", "true"),
           ("g", 11, "y@example.org", "Ivan", "B2")])
    publish(env.kafka.bootstrap, history())
    # stale: an update of user 11 older than its stored position (201)
    publish(env.kafka.bootstrap, [
        message("User", "u", user(11, clinic=2, email="z@example.org",
                                  last="OLD"), 150)])
    wait_until("second delivery drained", lambda: drained(env.pg, env.kafka))
    no_drops(env.kafka)
    check("after a duplicate delivery and a stale event: same state",
          env.pg.query(V2), once)
    s = stats(env.pg, "User")
    check("consumed counter", s["consumed"], 11)
    check("applied counter", s["applied"], 5)
    check("stale counter: 5 duplicates and 1 older event", s["stale"], 6)
    check("mirror keeps the newest position of user 11", env.pg.query(
        "SELECT lsn, last_name FROM clinicmig.mirror_user WHERE id = 11"),
        [(201, "B2")])
done()
