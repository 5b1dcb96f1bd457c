#!/usr/bin/python3
"""0082-large-component: a patient component of thousands of keys converges.

A derivation locks the names of everything it reads (cm_derive.h).
PostgreSQL's lock table is a fixed pool shared by every session
(max_locks_per_transaction x the server's backends); a lock per name made
a batch whose patients form one large component exhaust it ("out of
shared memory") and retry for ever. Names are locked by bucket
(worker/derive.c, docs/performance.md §10), so a transaction holds at most
1 024 advisory locks.

Here the server's pool is about 1 300 slots, and 3 000 patients form one
chain (patients 2k and 2k+1 share an email, 2k+1 and 2k+2 a phone): 6 000
names. The worker must drain them all into one global patient.

Components are maintained incrementally (docs/design.md §2.3): a batch
reads its frame (the touched patients, the holders of their keys, the
anchors of their components), and a whole component only when it may
split. So a new patient that joins the chain by one email costs a read of
a handful of rows, not of 3 000 (counted by pg_stat_statements), and
its profile and count come from the chain's recorded profile source and
count, not from its members (counted in buffers); and the
removal of the middle patient, which splits the chain, reads it once and
leaves the two halves under their own anchors.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, check_true, done, drained, message,  # noqa
                    no_drops, patient, publish, tombstone, wait_until)

N = 3000

with Env() as env:
    with open(os.path.join(env.pg.data, "postgresql.conf"), "a") as f:
        f.write("max_connections = 20\nmax_locks_per_transaction = 30\n"
                "shared_preload_libraries = 'pg_stat_statements'\n")
    env.pg.restart()
    check("the server's lock table is small",
          env.pg.query("SHOW max_locks_per_transaction"), [("30",)])
    msgs = [message("Patient", "c", patient(
        i + 1, clinic=1 + i % 5, email=f"chain{i // 2}@example.org",
        phone=f"+7916{(i + 1) // 2:07d}"), 100 + i) for i in range(N)]
    env.worker(extra=["--batch-max-events", "5000",
                      "--batch-max-ms", "3000"])
    publish(env.kafka.bootstrap, msgs)
    wait_until("the chain drained", lambda: drained(env.pg, env.kafka),
               timeout=180)
    no_drops(env.kafka)
    check("one global patient holds the whole chain", env.pg.query(
        "SELECT id, member_count FROM v2.global_patient"), [(1, N)])
    check("every clinic patient points at it", env.pg.query(
        "SELECT count(*), min(global_patient_id), max(global_patient_id)"
        " FROM v2.clinic_patient"), [(N, 1, 1)])

    # one more patient joins by the email of patients 1 and 2
    env.pg.query("CREATE EXTENSION pg_stat_statements;"
                 " SELECT pg_stat_statements_reset()")
    publish(env.kafka.bootstrap, [message("Patient", "c", patient(
        N + 1, clinic=2, email="chain0@example.org"), 100 + N)])
    wait_until("the newcomer drained", lambda: drained(env.pg, env.kafka),
               timeout=60)
    check("the newcomer joined the chain", env.pg.query(
        "SELECT global_patient_id FROM v2.clinic_patient WHERE id = %d"
        % (N + 1)), [(1,)])
    check("the global patient counts it", env.pg.query(
        "SELECT member_count FROM v2.global_patient"), [(N + 1,)])
    read = env.pg.query(
        "SELECT coalesce(sum(rows), 0) FROM pg_stat_statements"
        " WHERE query ILIKE '%mirror_patient%'"
        " AND query !~* '\\m(INSERT INTO|UPDATE|DELETE FROM)\\M'")[0][0]
    check_true("joining read a handful of patients, not the chain",
               0 < int(read) <= 20, f"rows read: {read}")
    blocks = env.pg.query(
        "SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0)"
        " FROM pg_stat_statements"
        " WHERE query ILIKE '%INSERT INTO v2.global_patient %'")[0][0]
    check_true("its profile and count came from the old profile's source,"
               " not from the 3 000 members", 0 < int(blocks) <= 200,
               f"buffers: {blocks}")

    # the middle patient goes: the chain splits in two
    mid = N // 2
    publish(env.kafka.bootstrap, [
        message("Patient", "d", patient(mid), 200 + N),
        tombstone("Patient", mid)])
    wait_until("the removal drained", lambda: drained(env.pg, env.kafka),
               timeout=60)
    check("two halves, each under its smallest patient", env.pg.query(
        "SELECT id, member_count FROM v2.global_patient ORDER BY id"),
        [(1, mid), (mid + 1, N - mid)])
    check("the split is recorded", env.pg.query(
        "SELECT kind, global_patient_id, others FROM clinicmig.patient_regroup"
        " WHERE kind = 'split'"), [("split", 1, [mid + 1])])
    check("no batch retried", "will be retried" in env.workers[0].output(),
          False)
done()
