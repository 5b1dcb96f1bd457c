#!/usr/bin/python3
"""0010-pool: two workers in one group build one consistent result.

Users sharing a few emails are spread over all partitions, so the two
workers change the same email groups at once; the derive step's ordered
group locks must make the result equal to a single-worker reference run.
A third worker joins midway (a rebalance) and one leaves.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, check_true, doctor_history, domain_rows,  # noqa
                    done, drained, no_drops, publish, reference_run, stats,
                    wait_until)

with Env() as env:
    msgs = doctor_history(seed=10, n_users=800, n_changes=12000, emails=8)
    publish(env.kafka.bootstrap, msgs)
    a = env.worker(extra=["--batch-max-events", "50"])
    b = env.worker(extra=["--batch-max-events", "50"])
    wait_until("some progress", lambda: env.pg.query(
        "SELECT coalesce(sum(next_offset), 0) FROM clinicmig.consumer_offset"
    )[0][0] > len(msgs) // 3, 120, 0.02)
    c = env.worker(extra=["--batch-max-events", "50"])
    a.stop()
    wait_until("drained by the pool", lambda: drained(env.pg, env.kafka),
               180)
    no_drops(env.kafka)
    check("every message counted once", stats(env.pg, "User")["consumed"],
          len(msgs))
    got = domain_rows(env.pg, "v2")
    want = reference_run(env)
    for table in want:
        check(f"{table} equals a single worker's", got[table], want[table])
    check_true("more than one worker applied batches",
               "applied" in b.output() and "assigned" in c.output())
done()
