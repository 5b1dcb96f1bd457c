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
from cmtest import (Env, check, check_true, doctor_history, domain_rows,  # noqa
                    done, drained, no_drops, publish, reference_run, stats,
                    wait_until)

with Env() as env:
    msgs = doctor_history(seed=5, n_users=1500, n_changes=15000)
    publish(env.kafka.bootstrap, msgs)
    w = env.worker(extra=["--batch-max-events", "100",
                          "--db-retry-max-ms", "500"])
    wait_until("some progress", lambda: env.pg.query(
        "SELECT coalesce(sum(next_offset), 0) FROM clinicmig.consumer_offset"
    )[0][0] > len(msgs) // 5, 120, 0.02)
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
    no_drops(env.kafka)
    check("every message counted once", stats(env.pg, "User")["consumed"],
          len(msgs))
    got = domain_rows(env.pg, "v2")
    want = reference_run(env)
    for table in want:
        check(f"{table} equals the uninterrupted run's", got[table],
              want[table])
done()
