#!/usr/bin/python3
"""0087-appointments-wait: appointments are read after the people they name.

An appointment that lands before its doctor or patient is written with
that link NULL and written again when the row arrives. While a worker's
User and Patient partitions hold more than a batch of unread events, its
Appointment partitions pause (appointments.wait.ms, docs/operations.md
§3). Each of the first two runs starts on the same backlog already in
Kafka: 6 000 users and 6 000 patients, each table in one partition, and
300 appointments naming people from the second half of them. The
consumer's prefetch is held small, as a backlog larger than it is, so
that read side by side the appointments come in before those people.
Each run counts the appointments committed before their doctor's or
patient's mirror row (by the rows' transaction ids): none with the
pause, most with appointments.wait.ms = 0. The third run shows the
bound: behind a long backlog of users, appointments still land before
the users are all read: after appointments.wait.ms they resume and are
read for as long again. Every run converges to the same links.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (TOPICS, Env, appointment, check, check_true,  # noqa
                    done, drained, message, no_drops, patient, publish, user,
                    wait_until)

N_PEOPLE, N_APPTS, BATCH, N_USERS = 6000, 300, 100, 20000
# one partition each for the people, so that each table is read in id
# order: the appointments name people read late in the drain
TOPICS_1 = dict(TOPICS, **{"legacy.public.User": 1,
                           "legacy.public.Patient": 1})
# a prefetch smaller than the backlog, as a real backlog's is
SMALL_PREFETCH = ["-X", "kafka.queued.min.messages=500",
                  "-X", "kafka.message.max.bytes=65536",
                  "-X", "kafka.fetch.max.bytes=131072"]


def backlog():
    msgs, lsn = [], 100
    for i in range(1, N_PEOPLE + 1):
        lsn += 1
        msgs.append(message("User", "r", user(i, email=f"d{i}@example.org"),
                            lsn))
        lsn += 1
        msgs.append(message("Patient", "r",
                            patient(i, phone="+7916%07d" % i), lsn))
    for a in range(1, N_APPTS + 1):
        lsn += 1
        person = N_PEOPLE // 2 + (a * 7) % (N_PEOPLE * 9 // 20)
        msgs.append(message("Appointment", "r",
                            appointment(a, person, person), lsn))
    return msgs


def early(pg):
    """Appointments committed in a transaction before their doctor's or
    patient's mirror row."""
    return pg.query(
        "SELECT count(*) FROM clinicmig.mirror_appointment a"
        " JOIN clinicmig.mirror_user u ON u.id = a.doctor_id"
        " JOIN clinicmig.mirror_patient p ON p.id = a.patient_id"
        " WHERE a.xmin::text::bigint < u.xmin::text::bigint"
        "    OR a.xmin::text::bigint < p.xmin::text::bigint")[0][0]


def links(pg):
    return pg.query("SELECT count(*), count(clinic_doctor_id),"
                    " count(clinic_patient_id) FROM v2.appointment")[0]


def run(wait_ms):
    with Env(topics=TOPICS_1) as env:
        publish(env.kafka.bootstrap, backlog())
        no_drops(env.kafka)
        env.worker(extra=["-X", f"batch.max.events={BATCH}",
                          "-X", f"appointments.wait.ms={wait_ms}"]
                   + SMALL_PREFETCH)
        wait_until("backlog drained", lambda: drained(env.pg, env.kafka),
                   timeout=300)
        check(f"wait {wait_ms}: every appointment linked", links(env.pg),
              (N_APPTS, N_APPTS, N_APPTS))
        return early(env.pg)


paused = run(60000)
unpaused = run(0)
print(f"# appointments before their people: {paused} paused,"
      f" {unpaused} not")
check("with the pause, no appointment comes before its people", paused, 0)
check_true("without it, most do (the measure can tell)",
           unpaused >= N_APPTS // 2, str(unpaused))

# the bound: a long backlog of users, appointments.wait.ms = 300
with Env() as env:
    msgs = [message("User", "r", user(i, email=f"u{i}@example.org"), 100 + i)
            for i in range(1, N_USERS + 1)]
    msgs += [message("Appointment", "r", appointment(a, a, a), 9000 + a)
             for a in range(1, 31)]
    publish(env.kafka.bootstrap, msgs)
    no_drops(env.kafka)
    env.worker(extra=["-X", "batch.max.events=5",
                      "-X", "appointments.wait.ms=300"] + SMALL_PREFETCH)
    wait_until("the appointments landed",
               lambda: env.pg.query("SELECT count(*) FROM"
                                    " clinicmig.mirror_appointment")[0][0]
               == 30, timeout=120)
    users = env.pg.query("SELECT count(*) FROM clinicmig.mirror_user")[0][0]
    print(f"# users read when the appointments had landed: {users}")
    check_true("appointments did not wait for the whole user backlog",
               users < N_USERS, str(users))
    wait_until("backlog drained", lambda: drained(env.pg, env.kafka),
               timeout=300)

done()
