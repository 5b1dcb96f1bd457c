#!/usr/bin/python3
"""0005-pg-restart: PostgreSQL restarted in the middle of a run.

The server is stopped for a few seconds while the worker applies a long
history. The worker must not crash: it reconnects with backoff, runs the
interrupted batch again, and ends in exactly the state of an
uninterrupted reference run, with every message counted once.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check_like_reference, check_true,  # noqa
                    doctor_history, done, drained, publish, wait_progress,
                    wait_until)

with Env() as env:
    msgs = doctor_history(seed=5, n_users=1500, n_changes=15000)
    publish(env.kafka.bootstrap, msgs)
    w = env.worker(extra=["--batch-max-events", "100",
                          "--db-retry-max-ms", "500"])
    wait_progress(env.pg, len(msgs) // 5)
    env.pg.stop("fast")
    time.sleep(3)
    check_true("the worker survives the database going away", w.alive())
    env.pg.start()
    wait_until("drained after the restart",
               lambda: drained(env.pg, env.kafka), 180)
    check_true("the worker is still running", w.alive())
    check_true("the worker logged the reconnection",
               "database connection restored" in w.output())
    w.stop()
    check_like_reference(env, msgs, "the uninterrupted run's")
done()
