#!/usr/bin/python3
"""0055-redrive: dead letters re-driven after a fix are applied like live
events (docs/design.md §3.2).

A check constraint on the mirror stands in for a bug that makes the
database refuse some values: while it stands, a patient insert, a patient
delete and an insert that a newer update later overtakes are refused and
dead-lettered. After the "fix" (the constraint dropped), `clinicmig-replay
dlq --reason` re-drives them through the replay topic with their original
op and source position: the insert is applied, the delete deletes, and
the overtaken insert is stale — it does not undo the newer update.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (REPLAY_TOOL, Env, check, done, drained,  # noqa: E402
                    message, patient, publish, stats, wait_schema,
                    wait_until)

REFUSE = ("ALTER TABLE clinicmig.mirror_patient ADD CONSTRAINT bug CHECK"
          " (last_name IS DISTINCT FROM 'Refused' AND NOT (deleted AND id ="
          " 3))")


def alive(pg):
    return dict(pg.query("SELECT id, last_name FROM clinicmig.mirror_patient"
                         " WHERE NOT deleted ORDER BY id"))


with Env() as env:
    env.worker()
    wait_schema(env.pg)
    env.pg.execute(REFUSE)
    publish(env.kafka.bootstrap, [
        message("Patient", "c", patient(1, last="Fine"), 100, tx_id=10),
        message("Patient", "c", patient(2, last="Refused"), 110, tx_id=11),
        message("Patient", "c", patient(3, last="Doomed"), 120, tx_id=12),
        message("Patient", "c", patient(4, last="Refused"), 130, tx_id=13),
    ])
    wait_until("drained", lambda: drained(env.pg, env.kafka))
    publish(env.kafka.bootstrap, [
        message("Patient", "d", 3, 140, tx_id=14),
        message("Patient", "u", patient(4, last="Newer"), 150, tx_id=15),
    ])
    wait_until("drained", lambda: drained(env.pg, env.kafka))
    check("three events dead-lettered", stats(env.pg, "Patient")
          ["dead_lettered"], 3)
    check("before the fix", alive(env.pg), {1: "Fine", 3: "Doomed",
                                            4: "Newer"})

    env.pg.execute("ALTER TABLE clinicmig.mirror_patient DROP CONSTRAINT bug")
    r = subprocess.run([REPLAY_TOOL, "dlq", "--bootstrap-servers",
                        env.kafka.bootstrap, "--reason", "database refused"],
                       capture_output=True, text=True, timeout=120)
    check("clinicmig-replay dlq exits 0", r.returncode, 0) or \
        print("# " + r.stderr)
    wait_until("drained", lambda: drained(env.pg, env.kafka), 120)
    check("after the re-drive: the insert applied, the delete deleted, the "
          "overtaken insert left the newer update alone", alive(env.pg),
          {1: "Fine", 2: "Refused", 4: "Newer"})
    check("the new schema follows", env.pg.query(
        "SELECT id FROM v2.clinic_patient ORDER BY id"), [(1,), (2,), (4,)])
    s = stats(env.pg, "Patient")
    check("the re-driven events counted: 2 applied, 1 stale on the replay "
          "topic", env.pg.query(
              "SELECT sum(applied), sum(stale) FROM clinicmig.partition_stats"
              " WHERE topic = 'clinicmig.replay'")[0], (2, 1))
    check("nothing more dead-lettered", s["dead_lettered"], 3)
done()
