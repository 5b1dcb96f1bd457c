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
from cmtest import (Env, check_like_reference, check_true,  # noqa
                    doctor_history, done, drained, publish, wait_progress,
                    wait_until)

with Env() as env:
    msgs = doctor_history(seed=10, n_users=800, n_changes=12000, emails=8)
    publish(env.kafka.bootstrap, msgs)
    a = env.worker(extra=["--batch-max-events", "50"])
    b = env.worker(extra=["--batch-max-events", "50"])
    wait_progress(env.pg, len(msgs) // 3)
    c = env.worker(extra=["--batch-max-events", "50"])
    a.stop()
    wait_until("drained by the pool", lambda: drained(env.pg, env.kafka),
               180)
    check_like_reference(env, msgs, "a single worker's")
    check_true("more than one worker applied batches",
               "applied" in b.output() and "assigned" in c.output())
done()
