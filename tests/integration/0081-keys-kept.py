#!/usr/bin/python3
"""0081-keys-kept: a grouping key is made again only when its source changes.

The fold keeps a stored phone or email key when the update leaves the
legacy phone or email text as it was, and normalizes again (libphonenumber
for phones) only when the text changed (worker/mirror.c, set_extras;
docs/performance.md §10). To see which happened, the stored keys are
overwritten by hand between deliveries with values no normalizer makes:
an update of another column must keep them, an update of the phone or
email must replace them with the normalized new text.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, done, drained, message, no_drops,  # noqa
                    patient, publish, user, wait_until)

PAT = ("SELECT phone_norm, email_norm, last_name FROM"
       " clinicmig.mirror_patient WHERE id = 1")
USR = "SELECT email_norm, last_name FROM clinicmig.mirror_user WHERE id = 5"


def deliver(env, msgs, what):
    publish(env.kafka.bootstrap, msgs)
    wait_until(what, lambda: drained(env.pg, env.kafka))


with Env() as env:
    env.worker()
    deliver(env, [
        message("Patient", "c", patient(1, phone="+7 916 123-45-67",
                                        email=" Anna@Example.org"), 100),
        message("User", "c", user(5, email="Doc@Example.org", last="A"), 101),
    ], "inserts drained")
    check("inserted patient: keys normalized", env.pg.query(PAT),
          [("+79161234567", "anna@example.org", "Ivanova")])
    check("inserted user: key normalized", env.pg.query(USR),
          [("doc@example.org", "A")])

    # keys no normalizer makes from these texts
    env.pg.query("UPDATE clinicmig.mirror_patient SET phone_norm ="
                 " '+70000000001', email_norm = 'kept@p' WHERE id = 1")
    env.pg.query("UPDATE clinicmig.mirror_user SET email_norm = 'kept@u'"
                 " WHERE id = 5")
    deliver(env, [
        message("Patient", "u", patient(1, phone="+7 916 123-45-67",
                                        email=" Anna@Example.org",
                                        last="Petrova"), 200),
        message("User", "u", user(5, email="Doc@Example.org", last="B"), 201),
    ], "updates of other columns drained")
    check("phone and email unchanged: stored keys kept", env.pg.query(PAT),
          [("+70000000001", "kept@p", "Petrova")])
    check("email unchanged: stored key kept", env.pg.query(USR),
          [("kept@u", "B")])

    deliver(env, [
        message("Patient", "u", patient(1, phone="8 (916) 765-43-21",
                                        email=" Anna@Example.org",
                                        last="Petrova"), 300),
        message("User", "u", user(5, email="New@Example.org", last="B"), 301),
    ], "updates of the sources drained")
    check("phone changed: made again; email unchanged: kept",
          env.pg.query(PAT), [("+79167654321", "kept@p", "Petrova")])
    check("email changed: made again", env.pg.query(USR),
          [("new@example.org", "B")])

    deliver(env, [
        message("Patient", "u", patient(1, phone=None, email="b@example.org",
                                        last="Petrova"), 400),
    ], "phone removed drained")
    check("phone removed: no key; email changed: made again",
          env.pg.query(PAT), [(None, "b@example.org", "Petrova")])
    no_drops(env.kafka)
done()
