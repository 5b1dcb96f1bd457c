#!/usr/bin/python3
"""0001-doctors: doctors end to end (docs/design.md §2.3).

Creates, updates, a role change in both directions, a deactivation and a
delete with its tombstone, in both JSON converter forms, published to the
local cluster; one worker applies them; v2 must hold exactly the rows f
gives: two users with one email in two clinics share one global_doctor.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, done, drained, message, no_drops,  # noqa
                    publish, stats, tombstone, user, wait_until)


def history():
    m = []
    m.append(message("User", "c", user(1, clinic=1, email=" Doc.A@Example.ORG ",
                                       first="Anna", last="Smirnova",
                                       updated="2025-01-01T10:00:00Z"), 100))
    m.append(message("User", "c", user(2, clinic=2, email="doc.a@example.org",
                                       first="Anna", last="Smirnova-K",
                                       spec="cardiologist", lic="L-2",
                                       updated="2025-01-05T10:00:00Z"), 110,
                     schemas=True))
    m.append(message("User", "c", user(3, clinic=1, email="rec@example.org",
                                       role="RECEPTIONIST"), 120))
    m.append(message("User", "c", user(4, clinic=3, email="not-an-email",
                                       first="Oleg"), 130, schemas=True))
    m.append(message("User", "c", user(5, clinic=1, email="b@example.org"),
                     140))
    m.append(message("User", "c", user(6, clinic=2, email="c@example.org"),
                     150))
    # updates
    m.append(message("User", "u", user(1, clinic=1, email="doc.a@example.org",
                                       first="Anna", last="Smirnova",
                                       spec="neurologist",
                                       updated="2025-02-01T10:00:00Z"), 200))
    m.append(message("User", "u", user(3, clinic=1, email="rec@example.org",
                                       role="DOCTOR"), 210, schemas=True))
    m.append(message("User", "u", user(5, clinic=1, email="b@example.org",
                                       role="ADMIN"), 220))
    m.append(message("User", "d", 6, 240))
    m.append(tombstone("User", 6))
    m.append(message("User", "u", user(2, clinic=2, email="doc.a@example.org",
                                       first="Anna", last="Smirnova-K",
                                       spec="cardiologist", lic="L-2",
                                       active=False,
                                       updated="2025-01-06T10:00:00Z"), 250,
                     schemas=True))
    return m


with Env() as env:
    env.worker()
    publish(env.kafka.bootstrap, history())
    wait_until("the worker drains the topics",
               lambda: drained(env.pg, env.kafka), 90)
    no_drops(env.kafka)
    check("global_doctor rows", env.pg.query(
        "SELECT id, email, first_name, last_name, specialization,"
        " license_number FROM v2.global_doctor ORDER BY id"),
        [(1, "doc.a@example.org", "Anna", "Smirnova", "neurologist", None),
         (3, "rec@example.org", "Ivan", "Petrov", "therapist", None),
         (4, None, "Oleg", "Petrov", "therapist", None)])
    check("clinic_doctor rows", env.pg.query(
        "SELECT id, global_doctor_id, clinic_id, is_active"
        " FROM v2.clinic_doctor ORDER BY id"),
        [(1, 1, 1, True), (2, 1, 2, False), (3, 3, 1, True),
         (4, 4, 3, True)])
    check("the deleted user is a tombstone in the mirror", env.pg.query(
        "SELECT deleted, lsn FROM clinicmig.mirror_user WHERE id = 6"),
        [(True, 240)])
    s = stats(env.pg, "User")
    check("counters: consumed", s["consumed"], 12)
    check("counters: applied", s["applied"], 11)
    check("counters: the tombstone is skipped", s["skipped"], 1)
    check("counters: nothing stale or dead-lettered",
          (s["stale"], s["dead_lettered"]), (0, 0))
done()
