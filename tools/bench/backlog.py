"""backlog.py -- the benchmark's backlogs: generated, cached, loaded into
the local Kafka cluster and checked (docs/performance.md, "The backlog").

NOTES
A backlog is made by the project's generator (tools/gen/cmgen.py) on a
real legacy database, so its events are Debezium's and its final legacy
tables are what the oracle compares with:

  mixed   like a clinic at work: Debezium's snapshot of a small seeded
          clinic set (seed scale N/2000, about 4 % of the events), then
          a random history of real transactions until N messages: inserts,
          updates that merge and split patients and move doctors between
          groups, role changes, deletes with their tombstones, appointments
          naming doctors and patients deleted or not inserted yet;
  insert  like an initial snapshot: the seed set grown by a history of
          inserts only, then Debezium's snapshot of it (op r), N messages.

A generated backlog is kept in the cache directory (its key: variant, N,
seed and a hash of the generator's and this file's code): the kcat -J
lines and the final legacy tables as COPY text, so a second run loads
them instead of generating again.

Loading: each topic gets as many partitions as its bytes need at
PARTITION_BYTES each (the mock keeps about 5 MiB per partition and
silently drops older messages; at least MIN_PARTITIONS), messages are
placed by Kafka's default partitioner of their key, published in file
order (each row's changes stay in order), and afterwards every
partition's low watermark must be 0 and its high watermark the number
of messages published to it.
"""

import hashlib
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))

import cmgen  # noqa: E402
import psycopg2  # noqa: E402
from cmpublish import publish  # noqa: E402

VARIANTS = ("mixed", "insert")
TABLES = cmgen.CDC_TABLES
PARTITION_BYTES = 3 * 1024 * 1024  # well under the mock's ~5 MiB
MESSAGE_OVERHEAD = 64              # the mock's bytes beside key and value
MIN_PARTITIONS = 3
INSERTS = ("insert_patient", "insert_doctor", "insert_staff",
           "insert_appointment")


class BacklogError(Exception):
    """The backlog could not be made or loaded whole."""


class _Counter:
    """A text sink counting the lines written to it (one per message)."""

    def __init__(self, out=None):
        self.out = out
        self.lines = 0

    def write(self, text):
        self.lines += text.count("\n")
        if self.out is not None:
            self.out.write(text)


def code_hash():
    h = hashlib.sha256()
    for path in (cmgen.__file__, os.path.abspath(__file__)):
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


class Backlog:
    """One backlog: .events (the kcat -J file), .messages, .meta, the
    legacy database it came from (.legacy, a conninfo) and, once loaded,
    .prefix, .topics and .partitions."""

    def __init__(self, variant, n, seed, cache):
        if variant not in VARIANTS:
            raise BacklogError(f"unknown variant {variant}")
        self.variant = variant
        self.n = n
        self.seed = seed
        self.dir = os.path.join(cache, f"{variant}-{n}-s{seed}-{code_hash()}")
        self.events = os.path.join(self.dir, "events.jsonl")
        self.meta = None
        self.legacy = None
        self.prefix = None
        self.topics = []
        self.partitions = {}

    @property
    def messages(self):
        return self.meta["messages"]

    # -- generating or restoring ------------------------------------------

    def prepare(self, pg, dbname, say):
        """Makes the legacy database @dbname on @pg hold the backlog's
        final legacy tables: from the cache if it has them, else by
        generating the backlog (and caching it)."""
        pg.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        pg.execute(f'CREATE DATABASE "{dbname}"')
        self.legacy = pg.conninfo.replace("dbname=postgres",
                                          f"dbname={dbname}")
        meta_path = os.path.join(self.dir, "meta.json")
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                self.meta = json.load(f)
            self._restore()
            say(f"{self.variant}: {self.messages} messages from the cache "
                f"({self.dir})")
            return
        os.makedirs(self.dir, exist_ok=True)
        started = time.monotonic()
        say(f"{self.variant}: generating {self.n} messages")
        self._generate()
        self.meta["generate_s"] = round(time.monotonic() - started, 3)
        self._save_tables()
        with open(meta_path + ".tmp", "w") as f:
            json.dump(self.meta, f)
        os.replace(meta_path + ".tmp", meta_path)
        say(f"{self.variant}: generated {self.messages} messages in "
            f"{self.meta['generate_s']:.1f} s")

    def _generate(self):
        conn = psycopg2.connect(self.legacy)
        tmp = self.events + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            sink = _Counter(f)
            writer = cmgen.EventWriter(sink, 1)
            if self.variant == "mixed":
                cmgen.seed(conn, max(1, self.n // 2000))
                snap = psycopg2.connect(self.legacy)
                cmgen.snapshot(snap, writer)
                snap.close()
                h = cmgen.History(conn, self.seed, writer)
                while sink.lines < self.n:
                    h.step()
            else:
                cmgen.seed(conn, 1)
                quiet = _Counter()
                h = cmgen.History(conn, self.seed,
                                  cmgen.EventWriter(quiet, 1), INSERTS)
                rows = cmgen.legacy_row_count(conn) - len(cmgen.SEED_CLINICS)
                while rows + quiet.lines < self.n:
                    h.step()
                snap = psycopg2.connect(self.legacy)
                cmgen.snapshot(snap, writer)
                snap.close()
        conn.close()
        os.replace(tmp, self.events)
        by_op = {}
        for (table, op), k in writer.counts.items():
            by_op[op] = by_op.get(op, 0) + k
        self.meta = {"variant": self.variant, "requested": self.n,
                     "seed": self.seed, "messages": sink.lines,
                     "by_op": by_op,
                     "tombstones": sink.lines - writer.total(),
                     "by_table": {t: sum(k for (tt, _), k in
                                         writer.counts.items() if tt == t)
                                  for t in TABLES}}

    def _save_tables(self):
        conn = psycopg2.connect(self.legacy)
        rows = {}
        with conn.cursor() as cur:
            for table in cmgen.ALL_TABLES:
                with open(os.path.join(self.dir, f"{table}.copy"), "w",
                          encoding="utf-8") as f:
                    cur.copy_expert(f'COPY "{table}" TO STDOUT', f)
                cur.execute(f'SELECT count(*) FROM "{table}"')
                rows[table] = cur.fetchone()[0]
        conn.close()
        self.meta["legacy_rows"] = rows

    def _restore(self):
        conn = psycopg2.connect(self.legacy)
        cmgen.create_tables(conn)
        with conn.cursor() as cur:
            for table in cmgen.ALL_TABLES:
                with open(os.path.join(self.dir, f"{table}.copy"),
                          encoding="utf-8") as f:
                    cur.copy_expert(f'COPY "{table}" FROM STDIN', f)
        conn.commit()
        conn.close()

    # -- loading into Kafka -------------------------------------------------

    def _lines(self):
        with open(self.events, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def load(self, kafka, prefix):
        """Creates the topics <prefix>.public.<Table>, publishes the
        backlog and checks that the cluster holds every message.
        @returns seconds spent publishing."""
        self.prefix = prefix
        size = {}
        for m in self._lines():
            table = m["topic"].rsplit(".", 1)[-1]
            size[table] = size.get(table, 0) + len(m["key"] or "") + \
                len(m["payload"] or "") + MESSAGE_OVERHEAD
        self.partitions = {}
        for table in TABLES:
            topic = f"{prefix}.public.{table}"
            n = max(MIN_PARTITIONS,
                    math.ceil(size.get(table, 0) / PARTITION_BYTES))
            kafka.topic(topic, n)
            self.partitions[topic] = n
        self.topics = sorted(self.partitions)
        sent = {}

        def messages():
            for m in self._lines():
                topic = f"{prefix}.public.{m['topic'].rsplit('.', 1)[-1]}"
                key = m["key"].encode()
                part = cmgen.partition(key, self.partitions[topic])
                sent[(topic, part)] = sent.get((topic, part), 0) + 1
                value = m["payload"]
                yield (topic, part, key,
                       None if value is None else value.encode(), None)

        started = time.monotonic()
        publish(kafka.bootstrap, messages())
        seconds = time.monotonic() - started
        for topic in self.topics:
            if kafka.dropped(topic):
                raise BacklogError(f"the local cluster dropped messages of "
                                   f"{topic}")
            for part, (low, high) in kafka.watermarks(topic).items():
                want = sent.get((topic, part), 0)
                if low != 0 or high != want:
                    raise BacklogError(
                        f"{topic} [{part}]: watermarks {low}..{high}, "
                        f"published {want}")
        total = sum(sent.values())
        if total != self.messages:
            raise BacklogError(f"published {total} of {self.messages} "
                               "messages")
        return seconds

    def describe(self):
        """What the JSON output says of the backlog."""
        return dict(self.meta, prefix=self.prefix,
                    partitions=dict(self.partitions))
