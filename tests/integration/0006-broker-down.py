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
from cmtest import (Env, check_like_reference, check_true,  # noqa
                    doctor_history, done, drained, publish, wait_progress,
                    wait_until)

with Env() as env:
    msgs = doctor_history(seed=6, n_users=1500, n_changes=15000)
    publish(env.kafka.bootstrap, msgs)
    w = env.worker(extra=["--batch-max-events", "100"])
    wait_progress(env.pg, len(msgs) // 10)
    env.kafka.broker_down(1)
    env.kafka.rtt(2, 100)
    time.sleep(4)
    env.kafka.broker_up(1)
    env.kafka.rtt(2, 0)
    wait_until("drained after the broker came back",
               lambda: drained(env.pg, env.kafka), 180)
    check_true("the worker kept running", w.alive())
    w.stop()
    check_like_reference(env, msgs)
done()
