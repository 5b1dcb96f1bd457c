#!/usr/bin/python3
"""0006-broker-down: a broker of the local cluster fails and comes back.

While the worker consumes, broker 1 is taken down with the mock cluster's
fault injection, then round-trip time is added to broker 2, then broker 1
comes back. No event may be lost (the topics drain completely) and none
applied twice (the transactional consumed-counter equals the message
count); the state equals an undisturbed reference run.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (Env, check, check_true, doctor_history, domain_rows,  # noqa
                    done, drained, no_drops, publish, reference_run, stats,
                    wait_until)

with Env() as env:
    msgs = doctor_history(seed=6, n_users=1500, n_changes=15000)
    publish(env.kafka.bootstrap, msgs)
    w = env.worker(extra=["--batch-max-events", "100"])
    wait_until("some progress", lambda: env.pg.query(
        "SELECT coalesce(sum(next_offset), 0) FROM clinicmig.consumer_offset"
    )[0][0] > len(msgs) // 10, 120, 0.02)
    env.kafka.broker_down(1)
    env.kafka.rtt(2, 100)
    time.sleep(4)
    env.kafka.broker_up(1)
    env.kafka.rtt(2, 0)
    wait_until("drained after the broker came back",
               lambda: drained(env.pg, env.kafka), 180)
    check_true("the worker kept running", w.alive())
    w.stop()
    no_drops(env.kafka)
    check("every message applied once", stats(env.pg, "User")["consumed"],
          len(msgs))
    got = domain_rows(env.pg, "v2")
    want = reference_run(env)
    for table in want:
        check(f"{table} equals the undisturbed run's", got[table],
              want[table])
done()
