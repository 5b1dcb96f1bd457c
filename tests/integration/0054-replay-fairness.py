#!/usr/bin/python3
"""0054-replay-fairness: a large backfill does not hold up live changes
(docs/design.md §3.3).

A backlog of backfill rows waits on the replay topic when the worker
starts; live changes are published once it is busy with them. The replay
topic is read through a queue of its own, and a batch takes live and
replay messages one for one, so every live change is applied while most
of the backfill is still waiting. Were the replay messages read through
the consumer's one queue, librdkafka's prefetch would put tens of
thousands of them ahead of the first live change, and the backfill would
be nearly done before it. The test prints the live lag it saw (the time
from publishing a live change to finding it in the mirror) for the
record; it asserts only the order, never a time.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (REPLAY, TOPICS, Env, check, check_true, done,  # noqa
                    drained, message, no_drops, publish, replay_row, user,
                    wait_until)

N_BACKLOG = 40000
N_LIVE = 30
SNAP = "1000:1000:"

topics = dict(TOPICS)
topics[REPLAY] = 12  # ~600 bytes a row, far under the mock's 5 MiB each


def replay_done(env):
    return sum(env.pg.query(
        "SELECT coalesce(sum(next_offset), 0) FROM clinicmig.consumer_offset"
        " WHERE topic = %s", (REPLAY,))[0])


with Env(topics=topics) as env:
    started = time.monotonic()
    publish(env.kafka.bootstrap, [
        replay_row("User", user(100000 + i, email=f"b{i}@example.org"), SNAP)
        for i in range(N_BACKLOG)])
    no_drops(env.kafka, [REPLAY])
    env.worker(extra=["--batch-max-events", "500"])
    wait_until("the backfill is under way",
               lambda: replay_done(env) >= 1000, 120, 0.05)
    sent = time.monotonic()
    publish(env.kafka.bootstrap, [message(
        "User", "c", user(1 + i, email=f"live{i}@example.org"), 5000 + i,
        tx_id=2000 + i) for i in range(N_LIVE)])
    wait_until("every live change applied", lambda: env.pg.query(
        "SELECT count(*) FROM clinicmig.mirror_user WHERE id <= %s",
        (N_LIVE,))[0][0] == N_LIVE, 120, 0.01)
    lag = time.monotonic() - sent
    left = N_BACKLOG - replay_done(env)
    print(f"# live lag during the backfill: {lag:.3f} s from publishing "
          f"{N_LIVE} live changes to the last in the mirror; backfill rows "
          f"still waiting then: {left} of {N_BACKLOG}")
    check_true("every live change was applied while most of the backfill "
               "still waited", left > N_BACKLOG // 2, f"{left} left")
    wait_until("drained", lambda: drained(env.pg, env.kafka), 300)
    print(f"# the whole backfill took {time.monotonic() - started:.1f} s")
    check("the whole backfill is applied", env.pg.query(
        "SELECT count(*) FROM clinicmig.mirror_user")[0][0],
        N_BACKLOG + N_LIVE)
done()
