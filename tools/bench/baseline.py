#!/usr/bin/python3
"""baseline.py -- the benchmark's Python baselines: Debezium events from
Kafka into the mirror and v2, without clinicmig (docs/performance.md).

NOTES
Two ways to run the same job, the statements of baseline.sql (one per
event: the mirror upsert and the v2 rows made from that one row):

  per-event  each event in its own transaction (autocommit), as a first
             script would do it; Kafka offsets auto-committed;
  batched    a transaction per batch of --batch events (default 1000),
             one prepared statement per event sent in pages of 100 to a
             round trip, as the usual JDBC sink connectors do with
             executeBatch(); the offsets committed to Kafka after each
             batch's commit.

Python (psycopg2 + confluent_kafka, both libpq and librdkafka underneath)
rather than C: these stand for what a team writes without clinicmig, and
the time goes into PostgreSQL round trips and transactions, which the
language does not change.

It stops once it has read --expect messages (tombstones included) and
writes one JSON object to --out: messages, applied, stale, tombstones,
the time of the first partition assignment and of the last commit
(seconds since the epoch), the batch latencies' p50 and p99, the
batch count and its peak RSS (VmHWM). Nothing it prints or writes holds row data.
"""

import argparse
import json
import math
import os
import re
import sys
import time

import psycopg2
from confluent_kafka import Consumer, KafkaError, KafkaException

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = {
    "User": ("id", "clinicId", "email", "phone", "firstName", "lastName",
             "role", "specialization", "licenseNumber", "isActive",
             "createdAt", "updatedAt"),
    "Patient": ("id", "clinicId", "firstName", "lastName", "middleName",
                "birthDate", "gender", "phone", "email", "createdAt",
                "updatedAt"),
    "Appointment": ("id", "clinicId", "doctorId", "patientId", "startsAt",
                    "endsAt", "status", "reason", "createdAt", "updatedAt"),
}
PAGE = 100  # statements sent in one round trip by the batched baseline


def statements(path=os.path.join(HERE, "baseline.sql")):
    """{table: SQL} from baseline.sql's "-- table: NAME" sections."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    parts = re.split(r"^-- table: (\w+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def params(table, topic, partition, offset, key, value):
    """The statement's parameters of one message, or None for a
    tombstone (a null value)."""
    if value is None:
        return None
    env = json.loads(value)
    if isinstance(env.get("payload"), dict) and "schema" in env:
        env = env["payload"]
    src = env.get("source") or {}
    op = env["op"]
    if op == "d":
        before = env.get("before") or {}
        rid = before.get("id")
        if rid is None:
            k = json.loads(key)
            rid = (k.get("payload") or k)["id"]
        row = [rid] + [None] * (len(COLUMNS[table]) - 1)
    else:
        after = env["after"]
        row = [after.get(c) for c in COLUMNS[table]]
    return row + [op == "d", src.get("lsn"), src.get("txId"), op == "r",
                  topic, partition, offset]


def vm_hwm():
    """This process's peak resident set size in KiB (VmHWM): unlike
    ru_maxrss, it does not count the parent's memory copied by the fork
    before exec()."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


class Histogram:
    """Latencies in buckets 1 % wide: percentiles within 1 % in constant
    memory, however many batches."""

    STEP = math.log(1.01)

    def __init__(self):
        self.buckets = {}
        self.count = 0

    def add(self, seconds):
        b = int(math.log(max(seconds, 1e-7) * 1e7) / self.STEP)
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1

    def percentile(self, q):
        """Nearest rank; the bucket's middle, in milliseconds."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return math.exp((b + 0.5) * self.STEP) / 1e7 * 1000
        return None


class Run:
    def __init__(self, a):
        self.a = a
        self.sql = statements()
        self.db = psycopg2.connect(a.db)
        self.db.autocommit = a.mode == "per-event"
        with self.db.cursor() as cur:
            for table, sql in self.sql.items():
                cur.execute(f"PREPARE bl_{table.lower()} AS {sql}")
        if not self.db.autocommit:
            self.db.commit()
        self.consumer = Consumer({
            "bootstrap.servers": a.bootstrap, "group.id": a.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": a.mode == "per-event",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        self.assigned_at = None
        self.last_commit = None
        self.messages = self.applied = self.stale = self.tombstones = 0
        self.latency = Histogram()

    def on_assign(self, consumer, parts):
        if self.assigned_at is None and parts:
            self.assigned_at = time.time()

    def execute_text(self, cur, m):
        """The EXECUTE of message @m as SQL text, or None (tombstone)."""
        topic = m.topic()
        table = topic.rsplit(".", 1)[-1]
        p = params(table, topic, m.partition(), m.offset(), m.key(),
                   m.value())
        if p is None:
            self.tombstones += 1
            return None
        return cur.mogrify(f"EXECUTE bl_{table.lower()} ("
                           + ", ".join(["%s"] * len(p)) + ")", p)

    def run(self):
        self.consumer.subscribe(self.a.topics.split(","),
                                on_assign=self.on_assign)
        deadline = time.monotonic() + self.a.timeout
        while self.messages < self.a.expect:
            if time.monotonic() > deadline:
                raise SystemExit(f"baseline: {self.messages} of "
                                 f"{self.a.expect} messages read in "
                                 f"{self.a.timeout} s")
            if self.a.mode == "per-event":
                self.one()
            else:
                self.batch()
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as e:
            # nothing left to commit: the batches' commits took it all
            if e.args[0].code() != KafkaError._NO_OFFSET:
                raise
        self.consumer.close()
        self.db.close()

    def _poll_error(self, m):
        if m.error().code() != KafkaError._PARTITION_EOF:
            raise SystemExit(f"baseline: consumer: {m.error()}")

    def one(self):
        m = self.consumer.poll(1.0)
        if m is None:
            return
        if m.error():
            return self._poll_error(m)
        self.messages += 1
        with self.db.cursor() as cur:
            sql = self.execute_text(cur, m)
            if sql is None:
                return
            t = time.monotonic()
            cur.execute(sql)
            changed = cur.fetchone()[0]
            self.latency.add(time.monotonic() - t)
        self.last_commit = time.time()
        self.applied += changed
        self.stale += 1 - changed

    def batch(self):
        want = min(self.a.batch, self.a.expect - self.messages)
        msgs = []
        deadline = time.monotonic() + 0.2
        while len(msgs) < want and time.monotonic() < deadline:
            for m in self.consumer.consume(want - len(msgs), 0.1):
                if m.error():
                    self._poll_error(m)
                else:
                    msgs.append(m)
        if not msgs:
            return
        self.messages += len(msgs)
        t = time.monotonic()
        with self.db.cursor() as cur:
            texts = [s for s in (self.execute_text(cur, m) for m in msgs)
                     if s is not None]
            for i in range(0, len(texts), PAGE):
                page = texts[i:i + PAGE]
                # one round trip; the statements' counts are not read
                # (the benchmark checks the tables afterwards)
                cur.execute(b";".join(page))
        self.db.commit()
        self.latency.add(time.monotonic() - t)
        self.last_commit = time.time()
        self.consumer.commit(asynchronous=True)

    def result(self):
        return {"mode": self.a.mode, "messages": self.messages,
                "tombstones": self.tombstones,
                "applied": self.applied if self.a.mode == "per-event"
                else None,
                "stale": self.stale if self.a.mode == "per-event" else None,
                "assigned_at": self.assigned_at,
                "last_commit_at": self.last_commit,
                "batches": self.latency.count,
                "latency_ms_p50": self.latency.percentile(0.5),
                "latency_ms_p99": self.latency.percentile(0.99),
                "vm_hwm_kib": vm_hwm()}


def main():
    ap = argparse.ArgumentParser(
        prog="baseline.py",
        description="A baseline of the benchmark: Debezium events into the "
                    "mirror and v2 with one statement per event "
                    "(baseline.sql), per event or per batch.")
    ap.add_argument("mode", choices=("per-event", "batched"))
    ap.add_argument("--bootstrap", required=True, help="Kafka brokers")
    ap.add_argument("--topics", required=True,
                    help="comma-separated CDC topics <prefix>.public.Table")
    ap.add_argument("--group", required=True, help="consumer group")
    ap.add_argument("--db", required=True, help="target database conninfo")
    ap.add_argument("--expect", type=int, required=True,
                    help="stop after this many messages")
    ap.add_argument("--out", required=True, help="result JSON file")
    ap.add_argument("--batch", type=int, default=1000,
                    help="events per transaction of the batched baseline")
    ap.add_argument("--timeout", type=float, default=3600,
                    help="give up after this many seconds")
    a = ap.parse_args()
    run = Run(a)
    run.run()
    with open(a.out, "w") as f:
        json.dump(run.result(), f)


if __name__ == "__main__":
    sys.exit(main())
