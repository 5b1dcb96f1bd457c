#!/usr/bin/python3
"""0009-gap: events Kafka deleted before they were read are reported.

The User topic has one partition, and more than the local cluster keeps
per partition is published before the worker starts, so the oldest
messages are gone. The worker must record the gap (topic, partition,
first and last lost offsets) in clinicmig.offset_gap, log it, and only
then go on from the log start; the rest is applied. The log line names
the clinicmig-replay command that repairs the gap.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (TOPICS, Env, check, check_true, done, drained,  # noqa
                    message, publish, user, wait_until)

topics = dict(TOPICS)
topics["legacy.public.User"] = 1
with Env(topics=topics) as env:
    msgs = [message("User", "c", user(i, email=f"u{i}@example.org",
                                      last="X" * 200), 100 + i,
                    schemas=True) for i in range(1, 2501)]
    publish(env.kafka.bootstrap, msgs)
    low, high = env.kafka.watermarks("legacy.public.User")[0]
    check_true("the local cluster dropped the oldest messages", low > 0,
               f"low {low}")
    check("the high watermark counts every message", high, len(msgs))
    w = env.worker()
    wait_until("drained", lambda: drained(env.pg, env.kafka))
    check("the gap is recorded", env.pg.query(
        "SELECT topic, partition, from_offset, to_offset"
        " FROM clinicmig.offset_gap"),
        [("legacy.public.User", 0, 0, low)])
    check_true("the gap is logged", "offset gap on legacy.public.User [0]"
               in w.output())
    check_true("the log names the backfill that repairs it",
               "repair with: clinicmig-replay db --legacy-conninfo "
               f"LEGACY_CONNINFO --bootstrap-servers {env.kafka.bootstrap} "
               "--topic-replay clinicmig.replay --topic-prefix legacy "
               "--source-schema public --tables User" in w.output())
    check("the events still in the log are applied", env.pg.query(
        "SELECT count(*) FROM clinicmig.mirror_user")[0][0], high - low)
done()
