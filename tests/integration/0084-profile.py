#!/usr/bin/python3
"""0084-profile: a global patient's profile and count, kept incrementally.

A global_patient takes its profile from its most recently updated member
(by updatedAt, the larger id on a tie) and
counts its members (docs/design.md §2.3). A batch that only adds patients
to components recomputes both from the old components' profile sources
(clinicmig.patient_profile) and the rows in hand; a component whose
source moved back in time, died, or has no recorded source is recomputed
from all its members. Each step below takes one of those ways, and the
profile and count must come out as if computed from scratch.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, done, drained, message,  # noqa
                    no_drops, patient, publish, tombstone, wait_until)

T = {i: "2025-01-0%dT10:00:00Z" % i for i in range(1, 10)}
lsn = [100]


def step(env, msgs, what):
    out = []
    for op, row in msgs:
        lsn[0] += 1
        out.append(message("Patient", op, row, lsn[0]))
        if op == "d":
            out.append(tombstone("Patient", row))
    publish(env.kafka.bootstrap, out)
    wait_until(what, lambda: drained(env.pg, env.kafka), timeout=60)


def profiles(pg):
    return pg.query("SELECT id, first_name, member_count"
                    " FROM v2.global_patient ORDER BY id")


def sources(pg):
    return pg.query("SELECT global_patient_id, source_id"
                    " FROM clinicmig.patient_profile ORDER BY 1")


with Env() as env:
    env.worker()
    A, B, X = "+79160000001", "+79160000002", "x@example.org"
    step(env, [("c", patient(1, phone=A, first="P1", updated=T[1])),
               ("c", patient(2, phone=A, email=X, first="P2", updated=T[3])),
               ("c", patient(3, email=X, first="P3", updated=T[2]))],
         "three linked patients drained")
    check("the latest updated member gives the profile", profiles(env.pg),
          [(1, "P2", 3)])
    check("its source is recorded", sources(env.pg), [(1, 2)])

    step(env, [("c", patient(4, email=X, first="P4", updated=T[4]))],
         "a newcomer drained")
    check("a newer newcomer gives the profile", profiles(env.pg),
          [(1, "P4", 4)])

    step(env, [("u", patient(4, email=X, first="P4b", updated=T[1]))],
         "the source moved back in time")
    check("a source that moved back gives way to the next latest",
          profiles(env.pg), [(1, "P2", 4)])

    step(env, [("u", patient(2, phone=A, email=X, first="P2b",
                             updated=T[5]))],
         "a member's newer update drained")
    check("a member updated last gives the profile", profiles(env.pg),
          [(1, "P2b", 4)])

    step(env, [("c", patient(10, phone=B, first="P10", updated=T[5])),
               ("c", patient(11, phone=B, first="P11", updated=T[1]))],
         "a second component drained")
    check("two components", profiles(env.pg),
          [(1, "P2b", 4), (10, "P10", 2)])

    step(env, [("c", patient(12, phone=B, email=X, first="P12",
                             updated=T[1]))],
         "a bridge drained")
    check("merged: the counts add up, the latest of both gives the profile"
          " (on a tie of updatedAt, the larger id)",
          profiles(env.pg), [(1, "P10", 7)])
    check("the merged-in anchor's source is gone", sources(env.pg),
          [(1, 10)])

    step(env, [("c", patient(13, phone=B, first="P13", updated=T[5]))],
         "a tie drained")
    check("a newcomer that ties the source wins by its larger id",
          profiles(env.pg),
          [(1, "P13", 8)])

    step(env, [("u", patient(11, phone=B, first="P11b", updated=T[2]))],
         "an older member's update drained")
    check("an update that is not the latest changes no profile",
          profiles(env.pg), [(1, "P13", 8)])

    env.pg.query("DELETE FROM clinicmig.patient_profile")
    step(env, [("c", patient(14, email=X, first="P14", updated=T[1]))],
         "a newcomer to a component without a recorded source drained")
    check("without a recorded source, all members are read",
          profiles(env.pg), [(1, "P13", 9)])
    check("and the source is recorded again", sources(env.pg), [(1, 13)])

    step(env, [("d", 13)], "the source's removal drained")
    check("a removed source gives way to the next latest", profiles(env.pg),
          [(1, "P10", 8)])

    step(env, [("u", patient(10, phone=A, first="P10", updated=T[6]))],
         "a member moving its key drained")
    check("a member that moves its key takes its update along",
          profiles(env.pg), [(1, "P10", 8)])
    no_drops(env.kafka)
done()
