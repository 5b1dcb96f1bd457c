#!/usr/bin/python3
"""0003-kafka-commits: Kafka's committed offsets equal the stored ones.

After a drain, outside Kafka clients read the group's committed offsets:
python's confluent-kafka (the committed() call) and kcat (consuming as the
group from its committed position must find nothing new). Both must agree
with the offsets the worker stored in its database transaction.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (SOURCE_TOPICS, Env, check, check_true, done, drained,  # noqa
                    message, no_drops, publish, user, wait_until)
from confluent_kafka import Consumer, TopicPartition  # noqa: E402


def committed(bootstrap, topics, kafka):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "clinicmig",
                  "enable.auto.commit": False})
    parts = [TopicPartition(t, p) for t in topics
             for p in kafka.watermarks(t)]
    got = {(tp.topic, tp.partition): tp.offset
           for tp in c.committed(parts, timeout=20) if tp.offset >= 0}
    c.close()
    return got


with Env() as env:
    w = env.worker()
    msgs = [message("User", "c", user(i, email=f"d{i % 7}@example.org"),
                    100 + i) for i in range(1, 301)]
    publish(env.kafka.bootstrap, msgs)
    wait_until("drained", lambda: drained(env.pg, env.kafka))
    no_drops(env.kafka)
    stored = {(t, p): o for t, p, o in env.pg.query(
        "SELECT topic, partition, next_offset FROM clinicmig.consumer_offset"
        " WHERE group_id = 'clinicmig'")}
    user_topic = "legacy.public.User"
    ends = {(user_topic, p): high
            for p, (_, high) in env.kafka.watermarks(user_topic).items()}
    check("stored offsets reach the end of the User topic",
          {k: v for k, v in stored.items() if k[0] == user_topic}, ends)
    got = wait_until("Kafka has the group's commits", lambda: (
        lambda c: c if c == stored else None)(
            committed(env.kafka.bootstrap, SOURCE_TOPICS, env.kafka)), 30)
    check("committed offsets read by confluent-kafka equal the stored ones",
          got, stored)
    check("SIGTERM: the worker finishes, leaves the group and exits 0",
          w.stop(), 0)
    check_true("it said it left the group",
               "leaving the consumer group" in w.output())
    # kcat as the same group resumes from the committed offsets: nothing left
    out = subprocess.run(
        ["timeout", "60", "kcat", "-C", "-b", env.kafka.bootstrap, "-G",
         "clinicmig", "-X", "auto.offset.reset=earliest",
         "-X", "enable.auto.commit=false", "-e", "-q", user_topic],
        capture_output=True, text=True)
    check("kcat consuming as the group exits cleanly", out.returncode, 0)
    check("kcat finds no message past the committed offsets", out.stdout, "")
done()
