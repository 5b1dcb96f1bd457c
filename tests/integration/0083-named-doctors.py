#!/usr/bin/python3
"""0083-named-doctors: appointments and users re-derive only what they change.

A clinic_doctor exists for every live DOCTOR and for every live user a
live appointment names (docs/design.md §2.3). An appointment can change
the second kind only: a live DOCTOR that has its clinic_doctor keeps it
whatever names it. So a batch of appointments for such a doctor does not
re-derive the doctor's group (counted by pg_stat_statements), while one
that names a user of another role still creates, and its removal still
removes, that user's clinic_doctor, in the email group it shares.
Likewise an appointment's links depend only on whether its doctor and
patient live, so renaming a doctor re-reads none of its appointments.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, appointment, check, done, drained, message,  # noqa
                    no_drops, patient, publish, user, wait_until)

DOCTORS = "SELECT id, global_doctor_id, is_active FROM v2.clinic_doctor" \
          " ORDER BY id"


def derivations(pg):
    """Calls of the doctors' derivation since the last reset."""
    return pg.query("SELECT coalesce(sum(calls), 0)::int"
                    " FROM pg_stat_statements"
                    " WHERE query LIKE '%INSERT INTO v2.global_doctor%'"
                    )[0][0]


def step(env, msgs, what):
    env.pg.query("SELECT pg_stat_statements_reset()")
    publish(env.kafka.bootstrap, msgs)
    wait_until(what, lambda: drained(env.pg, env.kafka), timeout=60)


with Env() as env:
    with open(os.path.join(env.pg.data, "postgresql.conf"), "a") as f:
        f.write("shared_preload_libraries = 'pg_stat_statements'\n")
    env.pg.restart()
    env.worker()
    publish(env.kafka.bootstrap, [
        message("User", "c", user(1, email="doc@example.org"), 100),
        message("User", "c", user(2, email="nurse@example.org",
                                  role="NURSE"), 101),
        message("Patient", "c", patient(1, phone="+79161234567"), 102),
        message("Appointment", "c", appointment(1, 1, 1), 103)])
    wait_until("the clinic drained", lambda: drained(env.pg, env.kafka),
               timeout=60)
    env.pg.query("CREATE EXTENSION pg_stat_statements")
    check("the doctor has its clinic_doctor, the nurse none",
          env.pg.query(DOCTORS), [(1, 1, True)])

    step(env, [message("Appointment", "c", appointment(a, 1, 1), 200 + a)
               for a in range(2, 32)], "thirty appointments drained")
    check("thirty appointments of a doctor re-derive no doctor",
          derivations(env.pg), 0)
    check("they all link to the doctor", env.pg.query(
        "SELECT count(*) FROM v2.appointment WHERE clinic_doctor_id = 1"),
        [(31,)])

    step(env, [message("Appointment", "c", appointment(40, 2, 1), 300)],
         "an appointment with the nurse drained")
    check("naming the nurse re-derives her", derivations(env.pg) > 0, True)
    check("she has a clinic_doctor, not active", env.pg.query(DOCTORS),
          [(1, 1, True), (2, 2, False)])

    step(env, [message("Appointment", "d", 40, 400)],
         "its removal drained")
    check("without it she has none again", env.pg.query(DOCTORS),
          [(1, 1, True)])

    step(env, [message("User", "u", user(1, email="doc@example.org",
                                         last="Petrov-Vodkin"), 420)],
         "the doctor's new name drained")
    check("renaming a doctor re-reads none of its 31 appointments",
          env.pg.query("SELECT coalesce(sum(calls), 0)::int"
                       " FROM pg_stat_statements"
                       " WHERE query LIKE '%INSERT INTO v2.appointment%'"),
          [(0,)])

    # an administrator who shares the doctor's email, named by nothing yet
    step(env, [message("User", "c", user(3, email="Doc@example.org ",
                                         role="ADMIN"), 450)],
         "the administrator drained")
    check("the administrator alone has no clinic_doctor",
          env.pg.query(DOCTORS), [(1, 1, True)])
    step(env, [message("Appointment", "c", appointment(42, 3, 1), 460)],
         "an appointment with the administrator drained")
    check("named, she joins the doctor's email group",
          env.pg.query(DOCTORS), [(1, 1, True), (3, 1, False)])
    step(env, [message("Appointment", "d", 42, 470)],
         "its removal drained")

    step(env, [message("User", "u", user(1, email="doc@example.org",
                                         role="NURSE"), 500)],
         "the doctor's new role drained")
    check("a former doctor named by appointments keeps a clinic_doctor,"
          " not active", env.pg.query(DOCTORS), [(1, 1, False)])
    step(env, [message("Appointment", "c", appointment(41, 1, 1), 600)],
         "one more of his appointments drained")
    check("an appointment of a user of another role re-derives him",
          derivations(env.pg) > 0, True)
    no_drops(env.kafka)
done()
