#!/usr/bin/python3
"""0011-patients-appointments: the whole mapping on a worked example.

Patients are linked through phones written in different human forms and
through emails; updates split and merge their components, a delete splits
one again; the anchors stay stable and retired anchors become aliases
(checked change by change: aliases are history, not part of f), and each
merge and split leaves its row in clinicmig.patient_regroup.
Appointments arrive before their doctor and patient and are resolved when
those land; a user an appointment names gets a clinic_doctor even when it
is not a doctor; moves and deletes follow. Every expected row below was
worked out by hand from docs/design.md §2.3.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (ALL_TABLES, Env, appointment, check, done,  # noqa
                    domain_rows, drained, message, no_drops, patient,
                    publish, tombstone, user, wait_until)

A, P, U = "Appointment", "Patient", "User"


def appointments_first():
    return [
        message(A, "c", appointment(100, 10, 2), 10),
        message(A, "c", appointment(101, 12, 7, clinic=2), 11),
        message(A, "c", appointment(102, 11, 4, status="COMPLETED",
                                    reason="checkup"), 12),
        message(A, "c", appointment(103, 10, 1), 13),
        message(A, "c", appointment(104, 11, 3), 14),
        message(A, "u", appointment(104, 13, 3, status="CANCELLED"), 15),
        message(A, "c", appointment(105, 14, 5), 16),
        message(A, "d", 105, 17),
        tombstone(A, 105),
    ]


def people():
    return [
        message(U, "c", user(10, email="d10@x.ru"), 20),
        message(U, "c", user(11, email="a11@x.ru", role="ADMIN"), 21),
        message(U, "c", user(12, clinic=2, email="d12@x.ru"), 22),
        message(U, "c", user(13, email="a13@x.ru", role="ADMIN"), 23),
        message(U, "c", user(14, email="a14@x.ru", role="ADMIN"), 24),
        message(P, "c", patient(1, phone="8 (912) 345-67-89",
                                birth="1980-01-01",
                                updated="2025-01-01T00:00:00Z"), 30),
        message(P, "c", patient(2, clinic=2, phone="+7 912 345 67 89",
                                email="Ann@x.ru",
                                updated="2025-01-02T00:00:00Z"), 31),
        message(P, "c", patient(3, clinic=3, email=" ann@x.ru",
                                birth="1990-05-05", first="Anya",
                                updated="2025-01-03T00:00:00Z"), 32),
        message(P, "c", patient(4, phone="345-67-89"), 33),
        message(P, "c", patient(5, clinic=2, phone="89161112233"), 34),
        message(P, "c", patient(7, clinic=2, first="Petr", gender="M"), 35),
    ]


def changes():
    return [
        # split: 2 drops the shared phone -> {1}, {2,3}
        message(P, "u", patient(2, clinic=2, email="Ann@x.ru",
                                updated="2025-02-01T00:00:00Z"), 40),
        # 5 joins {2,3} by email; 6 joins by 5's phone in another form
        message(P, "u", patient(5, clinic=2, phone="89161112233",
                                email="ann@x.ru",
                                updated="2025-02-02T00:00:00Z"), 41),
        message(P, "c", patient(6, clinic=3, phone="+79161112233",
                                first="Anna-Maria",
                                updated="2025-02-03T00:00:00Z"), 42),
        # merge: 1 takes the email -> one component anchored on 1
        message(P, "u", patient(1, phone="8 (912) 345-67-89",
                                email="ANN@X.RU", birth="1980-01-01",
                                updated="2025-01-01T00:00:00Z"), 43),
        # split again: 1 is deleted -> anchored on 2, alias 1 -> 2
        message(P, "d", 1, 44),
        tombstone(P, 1),
        message(U, "d", 10, 45),
        tombstone(U, 10),
    ]


with Env() as env:
    env.worker()
    publish(env.kafka.bootstrap, appointments_first())
    wait_until("appointments drained", lambda: drained(env.pg, env.kafka))
    check("appointments before their doctor and patient: unresolved",
          env.pg.query("SELECT id, clinic_doctor_id, clinic_patient_id"
                       " FROM v2.appointment ORDER BY id"),
          [(100, None, None), (101, None, None), (102, None, None),
           (103, None, None), (104, None, None)])
    publish(env.kafka.bootstrap, people())
    wait_until("people drained", lambda: drained(env.pg, env.kafka))
    check("one component through phone forms and email, anchored on 1",
          env.pg.query("SELECT id, global_patient_id FROM v2.clinic_patient"
                       " ORDER BY id"),
          [(1, 1), (2, 1), (3, 1), (4, 4), (5, 5), (7, 7)])
    check("links resolved when doctor and patient land", env.pg.query(
        "SELECT id, clinic_doctor_id, clinic_patient_id FROM v2.appointment"
        " ORDER BY id"),
        [(100, 10, 2), (101, 12, 7), (102, 11, 4), (103, 10, 1),
         (104, 13, 3)])
    # one change at a time: the alias table records history, and which
    # merges and splits it sees depends on what each batch holds
    aliases, regroups = [], []
    seen = env.pg.query("SELECT coalesce(max(id), 0)"
                        " FROM clinicmig.patient_regroup")[0][0]
    for m in changes():
        publish(env.kafka.bootstrap, [m])
        wait_until("change drained", lambda: drained(env.pg, env.kafka))
        aliases.append(env.pg.query(
            "SELECT alias_id, global_patient_id"
            " FROM v2.global_patient_alias ORDER BY 1"))
        rows = env.pg.query(
            "SELECT id, kind, global_patient_id, others"
            " FROM clinicmig.patient_regroup WHERE id > %s ORDER BY id",
            (seen,))
        regroups.append([r[1:] for r in rows])
        seen = rows[-1][0] if rows else seen
    no_drops(env.kafka)
    got = domain_rows(env.pg, "v2", ALL_TABLES)
    check("global_doctor", got["global_doctor"], [
        (11, "a11@x.ru", "Ivan", "Petrov", "therapist", None),
        (12, "d12@x.ru", "Ivan", "Petrov", "therapist", None),
        (13, "a13@x.ru", "Ivan", "Petrov", "therapist", None)])
    check("clinic_doctor: non-doctors named by appointments, inactive",
          got["clinic_doctor"], [(11, 11, 1, False), (12, 12, 2, True),
                                 (13, 13, 1, False)])
    check("global_patient: profile from the latest update, member counts",
          got["global_patient"], [
              (2, "Anna-Maria", "Ivanova", None, None, "F", 4),
              (4, "Anna", "Ivanova", None, None, "F", 1),
              (7, "Petr", "Ivanova", None, None, "M", 1)])
    check("clinic_patient: normalized keys", got["clinic_patient"], [
        (2, 2, 2, None, "ann@x.ru"),
        (3, 2, 3, None, "ann@x.ru"),
        (4, 4, 1, None, None),
        (5, 2, 2, "+79161112233", "ann@x.ru"),
        (6, 2, 3, "+79161112233", None),
        (7, 7, 2, None, None)])
    check("appointments: deleted doctor and patient unresolved",
          [r[:4] for r in got["appointment"]],
          [(100, 1, None, 2), (101, 2, 12, 7), (102, 1, 11, 4),
           (103, 1, None, None), (104, 1, 13, 3)])
    check("alias after each change", aliases[:5], [
        [],                  # split {1} {2,3}: no anchor retired
        [(5, 2)],            # 5 merges into 2
        [(5, 2)],            # 6 joins
        [(2, 1), (5, 1)],    # 1 merges everything: 2 retires, 5 follows
        [(1, 2), (5, 2)]])   # 1 deleted: 2 anchors again, 1 points at it
    check("patient_regroup rows of each change", regroups, [
        [("split", 1, [2])],  # {1,2,3} -> {1} and {2,3} under new anchor 2
        [("merge", 2, [5])],  # 5's component merges into 2's
        [],                   # 6 joins: no anchor comes or goes
        [("merge", 1, [2])],  # 2's component into 1's (5 was an alias)
        [("merge", 2, [1])],  # 1 deleted: its alias points at 2
        [], [], []])
done()
