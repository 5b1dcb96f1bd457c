"""rehearse.py -- a whole migration rehearsed on one machine.

NOTES
A Rehearsal owns a private PostgreSQL and a local Kafka cluster and runs
one or more migrations on them. Each run gets its own database (the legacy
tables and the new schema side by side) and its own topics, consumer group
and dead-letter topic (names prefixed by the run's name), so runs never see
each other and the servers' start-up is paid once.

A run: load the final legacy state; size the topics for the messages
(the local cluster keeps about 5 MiB a partition, so a partition that
would overflow is spread over more partitions by key, which keeps every
row's changes in order); start the workers; publish the messages — each
topic-partition in its own order, the partitions interleaved at random,
with a share of redeliveries if asked — while the workers run, and, with
chaos, kill workers with SIGKILL and restart them at random moments;
wait until the stored offsets reach the end of every partition; check
that the cluster dropped nothing; run the oracle; report.
"""

import json
import math
import os
import random
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))

import cmgen  # noqa: E402
from cmpublish import dropped, publish  # noqa: E402
from cmrun import PgServer, Worker, drained, wait_until  # noqa: E402
from report import report  # noqa: E402
from kafkactl import LocalKafka  # noqa: E402

TABLES = ("User", "Patient", "Appointment")
# what an instrumented (ASan/UBSan) worker writes when it finds a bug
SANITIZER_MARKS = ("runtime error:", "ERROR: AddressSanitizer",
                   "ERROR: LeakSanitizer")
PARTITION_BYTES = 3 * 1024 * 1024  # well under the mock's ~5 MiB
WORKER_KAFKA = ["-X", "kafka.session.timeout.ms=3000",
                "-X", "kafka.heartbeat.interval.ms=300",
                "-X", "kafka.topic.metadata.refresh.interval.ms=1000"]


class RehearsalError(Exception):
    """The run could not be carried out (not: the oracle found a diff)."""


def binaries(build):
    b = {"worker": os.path.join(build, "worker", "clinicmig-worker"),
         "kafka": os.path.join(build, "tools", "kafka", "clinicmig-kafka"),
         "oracle": os.path.join(build, "tools", "oracle", "clinicmig-oracle")}
    for name, path in b.items():
        if not os.access(path, os.X_OK):
            raise RehearsalError(f"{path}: not built (the {name} is needed)")
    return b


def read_kcat_lines(path):
    """kcat -J lines of a file as dicts, with line numbers in errors."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                m = json.loads(line)
                m["topic"]
            except (ValueError, KeyError, TypeError) as e:
                raise RehearsalError(f"{path}:{n}: not a kcat -J line ({e})")
            out.append(m)
    return out


def _text(v):
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"))


class Run:
    """What one run did and found."""

    def __init__(self, name):
        self.name = name
        self.messages = 0
        self.kills = 0
        self.oracle_status = None
        self.oracle_output = ""
        self.report = ""
        self.seconds = 0.0
        self.conninfo = None
        self.workers = []        # every worker started, killed ones too
        self.sanitizer = []      # workers whose log holds such a report

    @property
    def ok(self):
        return self.oracle_status == 0 and not self.sanitizer


class Rehearsal:
    def __init__(self, build, log_dir=None, brokers=3, verbose=False):
        self.bin = binaries(build)
        self.log_dir = log_dir
        self.verbose = verbose
        self.pg = PgServer()
        try:
            self.kafka = LocalKafka(self.bin["kafka"], {}, brokers=brokers,
                                    stderr=subprocess.DEVNULL)
        except Exception:
            self.pg.destroy()
            raise
        self.log_dir = log_dir or self.pg.dir

    def close(self, keep=False):
        self.kafka.stop()
        if keep:
            print(f"rehearse: PostgreSQL left running; stop it with: "
                  f"{self.pg.stop_command()}", file=sys.stderr)
        else:
            self.pg.destroy()

    def say(self, text):
        if self.verbose:
            print(f"rehearse: {text}", file=sys.stderr, flush=True)

    # -- the database --------------------------------------------------

    def create_db(self, name):
        self.pg.execute(f'DROP DATABASE IF EXISTS "{name}"')
        self.pg.execute(f'CREATE DATABASE "{name}"')
        return self.pg.conninfo.replace("dbname=postgres", f"dbname={name}")

    def load_sql(self, conninfo, path):
        """Runs a SQL file (the legacy tables, a dump) with psql."""
        r = subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-X",
                            "-d", conninfo, "-f", path],
                           capture_output=True, text=True)
        if r.returncode:
            raise RehearsalError(f"{path}: {r.stderr.strip()[:500]}")

    # -- topics ----------------------------------------------------------

    def plan_topics(self, name, lines):
        """Maps each line to (run topic, partition) and creates the topics
        with room for the data. @returns the list of messages and the
        source schema named by the topics."""
        schema = "public"
        by_topic = {}
        for m in lines:
            parts = m["topic"].split(".")
            if len(parts) < 3 or parts[-1] not in TABLES:
                raise RehearsalError(f"topic {m['topic']}: not a topic of "
                                     "the legacy tables (<prefix>.<schema>."
                                     "User|Patient|Appointment)")
            schema = parts[-2]
            by_topic.setdefault(parts[-1], []).append(m)
        msgs = []
        for table, ms in by_topic.items():
            msgs += self._place(f"{name}.{schema}.{table}", ms)
        for table in TABLES:
            if table not in by_topic:
                self.kafka.topic(f"{name}.{schema}.{table}", 1)
        self.kafka.topic(f"{name}.replay", 1)
        self.kafka.topic(f"{name}.dlq", 1)
        return msgs, schema

    def _place(self, topic, ms):
        given = max((m.get("partition", -1) for m in ms), default=-1) + 1
        size = {}
        for m in ms:
            p = m.get("partition", -1)
            size[p] = size.get(p, 0) + len(_text(m.get("payload")) or "") + \
                len(_text(m.get("key")) or "") + 64
        n = max(given, 1)
        if given <= 0 or max(size.values()) > PARTITION_BYTES:
            n = max(n, math.ceil(sum(size.values()) / PARTITION_BYTES), 3)
            spread = True
        else:
            spread = False
        self.kafka.topic(topic, n)
        out = []
        for m in ms:
            key = _text(m.get("key"))
            p = m.get("partition", -1)
            if spread:
                p = cmgen.partition((key or "").encode(), n)
            out.append((topic, p, key.encode() if key else None,
                        _text(m.get("payload")).encode()
                        if m.get("payload") is not None else None, None))
        return out

    # -- workers ---------------------------------------------------------

    def start_worker(self, run, conninfo, schema, index, extra):
        args = ["--topic-prefix", run.name, "--source-schema", schema,
                "--topic-replay", f"{run.name}.replay",
                "--topic-dlq", f"{run.name}.dlq",
                "--group-id", run.name] + WORKER_KAFKA + extra
        w = Worker(self.bin["worker"], conninfo, self.kafka.bootstrap,
                   f"{run.name}-w{index}", args, self.log_dir)
        run.workers.append(w)
        return w

    def drained(self, run, conninfo, topics):
        return drained(conninfo, self.kafka, run.name, topics)

    # -- one run ----------------------------------------------------------

    def run(self, name, conninfo, lines, workers=2, chaos=False, seed=1,
            duplicates=0.0, worker_args=(), match="loose", region="RU",
            timeout=600):
        """Publishes @lines (kcat -J dicts) to fresh topics while @workers
        workers apply them to the database @conninfo, which already holds
        the final legacy state; then runs the oracle. @returns a Run."""
        run = Run(name)
        run.conninfo = conninfo
        started = time.monotonic()
        rnd = random.Random(seed)
        msgs, schema = self.plan_topics(name, lines)
        topics = sorted({m[0] for m in msgs} |
                        {f"{name}.{schema}.{t}" for t in TABLES})
        extra = ["--patients-match", match, "--phone-region", region] + \
            list(worker_args)
        pool = [self.start_worker(run, conninfo, schema, i, extra)
                for i in range(workers)]
        try:
            msgs = interleave(msgs, rnd, duplicates)
            run.messages = len(msgs)
            self.say(f"{name}: publishing {len(msgs)} messages to "
                     f"{len(topics)} topics, {workers} workers"
                     f"{', chaos' if chaos else ''}")
            stop = threading.Event()
            monkey = None
            if chaos:
                monkey = threading.Thread(target=self._chaos, args=(
                    run, conninfo, schema, pool, extra, rnd, stop))
                monkey.start()
            # in a few parts with pauses, so that the workers are busy
            # (and chaos strikes) while messages still arrive
            parts = 4
            for i in range(parts):
                publish(self.kafka.bootstrap,
                        msgs[i * len(msgs) // parts:
                             (i + 1) * len(msgs) // parts])
                if i + 1 < parts:
                    time.sleep(rnd.uniform(0.2, 1.0))
            try:
                wait_until("the workers drain the topics",
                           lambda: self.drained(run, conninfo, topics),
                           timeout, 0.2)
            finally:
                stop.set()
                if monkey:
                    monkey.join()
            # after the chaos: the last restarted workers finish in peace
            wait_until("the workers drain the topics",
                       lambda: self.drained(run, conninfo, topics),
                       timeout, 0.2)
            lost = dropped(self.kafka.bootstrap, topics)
            if lost:
                raise RehearsalError(f"the local cluster dropped {lost} "
                                     "messages")
        finally:
            for w in pool:
                w.stop()
            run.sanitizer = [w.name for w in run.workers
                             if any(m in w.output() for m in SANITIZER_MARKS)]
        r = subprocess.run([self.bin["oracle"], "--legacy", conninfo,
                            "--patients-match", match,
                            "--phone-region", region],
                           capture_output=True, text=True)
        run.oracle_status = r.returncode
        run.oracle_output = r.stdout + r.stderr
        run.report = report(conninfo, name)
        run.seconds = time.monotonic() - started
        return run

    def _chaos(self, run, conninfo, schema, pool, extra, rnd, stop):
        """Kills a random worker with SIGKILL one to three times, early in
        the run while there is work, each time starting a new one in its
        place a moment later; then lets the pool finish in peace."""
        for _ in range(rnd.randint(1, 3)):
            if stop.wait(rnd.uniform(0.3, 3.0)):
                return
            i = rnd.randrange(len(pool))
            pool[i].kill()
            run.kills += 1
            self.say(f"{run.name}: killed worker {i}")
            stop.wait(rnd.uniform(0.0, 1.5))
            pool[i] = self.start_worker(run, conninfo, schema,
                                        f"{i}-{run.kills}", extra)


def interleave(msgs, rnd, duplicates):
    """The messages with each topic-partition's order kept and the
    partitions interleaved at random; with a share of redeliveries: a
    message sent again later in its partition (at-least-once delivery)."""
    queues = {}
    for m in msgs:
        queues.setdefault((m[0], m[1]), []).append(m)
    if duplicates > 0:
        for k, q in queues.items():
            out = []
            for m in q:
                out.append(m)
                if rnd.random() < duplicates:
                    # redeliver a recent message of this partition
                    out.append(out[rnd.randrange(max(0, len(out) - 5),
                                                 len(out))])
            queues[k] = out
    order = []
    for k, q in queues.items():
        order += [k] * len(q)
    rnd.shuffle(order)
    pos = {k: 0 for k in queues}
    out = []
    for k in order:
        out.append(queues[k][pos[k]])
        pos[k] += 1
    return out
