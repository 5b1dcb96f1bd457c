"""rehearse.py -- a whole migration rehearsed on one machine.

NOTES
A Rehearsal owns a private PostgreSQL and a local Kafka cluster and runs
one or more migrations on them. Each run gets its own database (the legacy
tables and the new schema side by side) and its own topics, consumer group
and dead-letter topic (names prefixed by the run's name), so runs never see
each other and the servers' start-up is paid once.

A run: load the final legacy state; make sure the server's transaction
ids come after every source.txId of the capture (the legacy database
stands for the state after the whole capture; PgServer.set_next_xid);
size the topics for the messages (the local cluster keeps about 5 MiB a
partition, so a partition that would overflow is spread over more
partitions by key, which keeps every row's changes in order; the replay
topic by the legacy rows); skip, and count, the messages of tables
clinicmig does not map; drop a share of the messages at random if asked
(a retention gap: deletes and tombstones as likely as the rest); start
the workers; publish the messages — each topic-partition in its own
order, the partitions interleaved at random, with a share of redeliveries
if asked — while the workers run, and, with chaos, kill workers with
SIGKILL and restart them at random moments; with backfill, run
clinicmig-replay db over the legacy tables once the first part is
published, and wait for it; wait until the stored offsets reach the end
of every partition; check that the cluster dropped nothing; run the
oracle; report.

Messages may be JSON or Avro in Confluent's wire format (kcat -J lines
with key_b64 / payload_b64), one topic mixing both as a converter change
leaves it. Avro messages need their writer schemas: a run is given the
worker's schema options (schema.registry.url with its basic auth and CA,
schema.dir), hands them to every worker and reads the Avro messages'
source.txId with them too (avroconv.Reader), so that the transaction ids
above come after those of every message, whatever its format.

Nothing printed holds personal data: counts, ids, topics and positions.
"""

import json
import math
import os
import random
import shutil
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))

import avroconv  # noqa: E402
import cmgen  # noqa: E402
import psycopg2  # noqa: E402
from cmpublish import (MAPPED_TABLES, describe_tables, dropped,  # noqa: E402
                       message_bytes, publish, read_all, table_of)
from cmrun import (PgServer, Worker, drained, safe_next_xid,  # noqa: E402
                   wait_until)
from report import report  # noqa: E402
from kafkactl import LocalKafka  # noqa: E402

TABLES = MAPPED_TABLES
# what an instrumented (ASan/UBSan) worker writes when it finds a bug
SANITIZER_MARKS = ("runtime error:", "ERROR: AddressSanitizer",
                   "ERROR: LeakSanitizer")
PARTITION_BYTES = 3 * 1024 * 1024  # well under the mock's ~5 MiB
REPLAY_ROW_BYTES = 400  # a legacy row as a replay message, generously
# the worker's options that name the writer schemas of Avro messages, each
# also a flag --<key with dashes> VALUE (clinicmig-worker --help)
SCHEMA_OPTIONS = ("schema.registry.url",
                  "schema.registry.basic.auth.user.info",
                  "schema.registry.ssl.ca.location", "schema.dir")
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


def reconcile_binary(build):
    path = os.path.join(build, "tools", "reconcile", "clinicmig-reconcile")
    if not os.access(path, os.X_OK):
        raise RehearsalError(f"{path}: not built (the verdicts need "
                             "clinicmig-reconcile)")
    return path


def replay_binary(build):
    path = os.path.join(build, "tools", "replay", "clinicmig-replay")
    if not os.access(path, os.X_OK):
        raise RehearsalError(f"{path}: not built (--backfill needs "
                             "clinicmig-replay)")
    return path


def read_kcat_lines(path):
    """kcat -J lines of a file as dicts, with line numbers in errors; key
    and payload as text, objects or base64 (key_b64, payload_b64)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                m = json.loads(line)
                m["topic"]
                message_bytes(m, "key")
                message_bytes(m, "payload")
            except (ValueError, KeyError, TypeError) as e:
                raise RehearsalError(f"{path}:{n}: not a kcat -J line ({e})")
            out.append(m)
    return out


def schema_flags(schemas):
    """The worker's flags of @schemas, a dict of SCHEMA_OPTIONS."""
    out = []
    for k in SCHEMA_OPTIONS:
        if (schemas or {}).get(k):
            out += ["--" + k.replace(".", "-"), schemas[k]]
    return out


def schema_reader(schemas):
    """An avroconv.Reader of the schema source @schemas names, or None."""
    schemas = schemas or {}
    url = schemas.get("schema.registry.url")
    if not url and not schemas.get("schema.dir"):
        return None
    return avroconv.Reader(
        schemas.get("schema.dir"),
        avroconv.RegistryClient(
            url, schemas.get("schema.registry.basic.auth.user.info"),
            schemas.get("schema.registry.ssl.ca.location")) if url else None)


def is_avro_line(m):
    """Whether the key or value of a kcat -J line is Avro in Confluent's
    wire format."""
    return any(avroconv.is_avro(message_bytes(m, n))
               for n in ("key", "payload") if n + "_b64" in m)


def capture_txid(m, reader=None):
    """source.txId of the Debezium event in a kcat -J line, as the 32-bit
    xid it stands for, or None (a tombstone, a message without one). The
    payload may be JSON text or an object, the envelope bare or, with the
    schemas-enabled converter, under "payload"; or payload_b64: JSON text,
    or Avro in Confluent's wire format, read with @reader (an
    avroconv.Reader; without one, or if its source does not have the
    schema, None). Raises avroconv.Unavailable if the registry does not
    answer."""
    v = m.get("payload")
    if "payload_b64" in m:
        v = message_bytes(m, "payload")
        if avroconv.is_avro(v):
            try:
                v = reader.read(v) if reader is not None else None
            except avroconv.NotFound:
                v = None
        elif v is not None:
            v = v.decode("utf-8", errors="replace")
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    if isinstance(v, dict) and isinstance(v.get("payload"), dict):
        v = v["payload"]
    source = v.get("source") if isinstance(v, dict) else None
    tx = source.get("txId") if isinstance(source, dict) else None
    if isinstance(tx, int) and not isinstance(tx, bool) and tx >= 0:
        return tx % (1 << 32)
    return None


def largest_txid(lines, reader=None):
    """The largest source.txId of a capture (every topic's), or None; Avro
    payloads are read with @reader (see capture_txid)."""
    return max((t for t in (capture_txid(m, reader) for m in lines)
                if t is not None), default=None)


class Run:
    """What one run did and found."""

    def __init__(self, name, seed=1, lose=0.0):
        self.name = name
        self.seed = seed
        self.lose = lose         # the share of messages to drop
        self.messages = 0        # published, redeliveries included
        self.avro = 0            # of those, in Avro (key or value)
        self.captured = 0        # messages of mapped tables in the capture
        self.lost = 0            # of those, dropped by --lose
        self.skipped = {}        # {table clinicmig does not map: messages}
        self.backfill = None     # what clinicmig-replay said, if it ran
        self.kills = 0
        self.oracle_status = None
        self.oracle_output = ""
        self.report = ""
        self.seconds = 0.0
        self.conninfo = None
        self.workers = []        # every worker started, killed ones too
        self.sanitizer = []      # workers whose log holds such a report
        self.verdicts = {}       # {entity: (in sync, reason)}
        self.reconciler_log = ""

    @property
    def ok(self):
        return self.oracle_status == 0 and not self.sanitizer

    def notes(self):
        """Lines on what the run left out or added; no personal data."""
        out = []
        if self.skipped:
            out.append(f"skipped {sum(self.skipped.values())} messages of "
                       "tables clinicmig does not map "
                       f"({describe_tables(self.skipped)})")
        if self.avro:
            out.append(f"{self.avro} of {self.messages} messages in Avro "
                       "(Confluent's wire format)")
        if self.lose > 0:
            out.append(f"lost {self.lost} of {self.captured} messages at "
                       f"random (--lose {self.lose:g}, seed {self.seed})")
        if self.backfill:
            out.append(f"backfill: {self.backfill}")
        return out

    def verdict_lines(self):
        """The reconciler's verdicts, one line per entity."""
        return [f"in sync: {e:<12} " + ("yes" if ok else f"NO: {why}")
                for e, (ok, why) in self.verdicts.items()]


class Rehearsal:
    def __init__(self, build, log_dir=None, brokers=3, verbose=False,
                 next_xid=None):
        """@next_xid: the private PostgreSQL's first transaction id (see
        cmrun.safe_next_xid); run() moves it past its capture anyway."""
        self.build = build
        self.bin = binaries(build)
        self.log_dir = log_dir
        self.verbose = verbose
        self.pg = PgServer(next_xid=next_xid)
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

    def legacy_xids_after(self, lines, reader=None):
        """Makes the server's transaction ids come after every txId of the
        capture @lines (Avro payloads read with @reader), restarting it if
        needed (between runs only)."""
        largest = largest_txid(lines, reader)
        now = self.pg.next_xid()
        if largest is not None and now <= largest:
            self.pg.set_next_xid(safe_next_xid(largest, now))
            self.say(f"transaction ids moved from {now} to "
                     f"{self.pg.next_xid()}, past the capture's {largest}")

    def legacy_rows(self, conninfo):
        with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
            counts = " + ".join(f'(SELECT count(*) FROM "{t}")'
                                for t in TABLES)
            cur.execute(f"SELECT {counts}")
            rows = cur.fetchone()[0]
        conn.close()
        return rows

    # -- topics ----------------------------------------------------------

    def plan_topics(self, run, conninfo, lines):
        """Maps each line of a mapped table to (run topic, partition) and
        creates the topics with room for the data; counts the others in
        run.skipped. @returns the list of messages and the source schema
        named by the topics."""
        schema = "public"
        by_table = {}
        for m in lines:
            table = table_of(m["topic"])
            if table not in TABLES:
                label = table or m["topic"]
                run.skipped[label] = run.skipped.get(label, 0) + 1
                continue
            schema = m["topic"].split(".")[-2]
            by_table.setdefault(table, []).append(m)
        msgs = []
        for table, ms in by_table.items():
            msgs += self._place(f"{run.name}.{schema}.{table}", ms)
        for table in TABLES:
            if table not in by_table:
                self.kafka.topic(f"{run.name}.{schema}.{table}", 1)
        self.kafka.topic(f"{run.name}.replay",
                         self.replay_partitions(conninfo))
        self.kafka.topic(f"{run.name}.dlq", 1)
        self.kafka.topic(f"{run.name}.progress", 1)
        self.kafka.topic(f"{run.name}.reconciliation", 1)
        return msgs, schema

    def replay_partitions(self, conninfo):
        """Room in the replay topic for a backfill of every legacy row."""
        size = self.legacy_rows(conninfo) * REPLAY_ROW_BYTES
        return max(2, math.ceil(size / PARTITION_BYTES))

    def _place(self, topic, ms):
        given = max((m.get("partition", -1) for m in ms), default=-1) + 1
        size = {}
        data = [(message_bytes(m, "key"), message_bytes(m, "payload"))
                for m in ms]
        for m, (key, value) in zip(ms, data):
            p = m.get("partition", -1)
            size[p] = size.get(p, 0) + len(value or b"") + \
                len(key or b"") + 64
        n = max(given, 1)
        if given <= 0 or max(size.values()) > PARTITION_BYTES:
            n = max(n, math.ceil(sum(size.values()) / PARTITION_BYTES), 3)
            spread = True
        else:
            spread = False
        self.kafka.topic(topic, n)
        out = []
        for m, (key, value) in zip(ms, data):
            p = m.get("partition", -1)
            if spread:
                p = cmgen.partition(key or b"", n)
            out.append((topic, p, key or None, value, None))
        return out

    # -- workers ---------------------------------------------------------

    def start_worker(self, run, conninfo, schema, index, extra):
        args = ["--topic-prefix", run.name, "--source-schema", schema,
                "--topic-replay", f"{run.name}.replay",
                "--topic-dlq", f"{run.name}.dlq",
                "--topic-progress", f"{run.name}.progress",
                "--progress-interval-ms", "1000",
                "--group-id", run.name] + WORKER_KAFKA + extra
        w = Worker(self.bin["worker"], conninfo, self.kafka.bootstrap,
                   f"{run.name}-w{index}", args, self.log_dir)
        run.workers.append(w)
        return w

    def drained(self, run, conninfo, topics):
        return drained(conninfo, self.kafka, run.name, topics)

    def reconcile(self, run, conninfo, schema, region):
        """One pass of clinicmig-reconcile over the drained run, legacy
        tables included; its verdicts go into @run."""
        r = subprocess.run(
            [reconcile_binary(self.build), "--db-conninfo", conninfo,
             "--legacy-conninfo", conninfo, "--bootstrap-servers",
             self.kafka.bootstrap, "--group-id", run.name,
             "--topic-prefix", run.name, "--source-schema", schema,
             "--topic-replay", f"{run.name}.replay",
             "--topic-reconciliation", f"{run.name}.reconciliation",
             "--phone-region", region, "--hold-ms", "0", "--once"],
            capture_output=True, text=True, timeout=600)
        run.reconciler_log = r.stdout + r.stderr
        if r.returncode not in (0, 3):
            path = os.path.join(self.log_dir, f"{run.name}-reconciler.log")
            with open(path, "w") as f:
                f.write(run.reconciler_log)
            raise RehearsalError(f"clinicmig-reconcile exited "
                                 f"{r.returncode}; its output: {path}")
        for m in read_all(self.kafka.bootstrap, f"{run.name}.reconciliation"):
            ev = json.loads(m["payload"] or "{}")
            if ev.get("type") == "verdict":
                run.verdicts[ev["entity"]] = (ev["in_sync"],
                                              ev.get("reason", ""))

    def capture(self, run, directory):
        """Writes the topics the run wrote (progress, reconciliation, dead
        letters, replay) as kcat -J lines, and every log, into
        @directory."""
        os.makedirs(directory, exist_ok=True)
        for t in ("progress", "reconciliation", "dlq", "replay"):
            topic = f"{run.name}.{t}"
            with open(os.path.join(directory, f"{topic}.jsonl"), "w") as f:
                for m in read_all(self.kafka.bootstrap, topic):
                    f.write(json.dumps(m, ensure_ascii=False) + "\n")
        for w in run.workers:
            shutil.copyfile(w.log_path,
                            os.path.join(directory, f"{w.name}.log"))
        with open(os.path.join(directory, "reconciler.log"), "w") as f:
            f.write(run.reconciler_log)

    def start_backfill(self, run, conninfo, schema):
        return Backfill(replay_binary(self.build), run, conninfo,
                        self.kafka.bootstrap, schema, self.log_dir)

    # -- one run ----------------------------------------------------------

    def run(self, name, conninfo, lines, workers=2, chaos=False, seed=1,
            duplicates=0.0, worker_args=(), match="loose", region="RU",
            timeout=600, lose=0.0, backfill=False, capture=None,
            schemas=None):
        """Publishes @lines (kcat -J dicts) to fresh topics while @workers
        workers apply them to the database @conninfo, which already holds
        the final legacy state; then runs the oracle. @lose: the share of
        messages dropped before publishing; @backfill: run clinicmig-replay
        db meanwhile; @capture: a directory for every topic and log of the
        run; @schemas: the writer schemas of Avro messages, as the
        worker's options {key of SCHEMA_OPTIONS: value}. After the drain,
        one pass of the reconciler gives the verdicts. @returns a Run."""
        run = Run(name, seed, lose)
        run.conninfo = conninfo
        started = time.monotonic()
        rnd = random.Random(seed)
        if backfill:
            replay_binary(self.build)  # fail before anything starts
        reader = schema_reader(schemas)
        avro = sum(1 for m in lines if is_avro_line(m))
        if avro and reader is None:
            raise RehearsalError(
                f"{avro} messages are Avro (Confluent's wire format) and no "
                "schema source is given (schema.registry.url or schema.dir)")
        try:
            self.legacy_xids_after(lines, reader)
        except avroconv.Unavailable as e:
            raise RehearsalError(str(e))
        msgs, schema = self.plan_topics(run, conninfo, lines)
        topics = sorted({m[0] for m in msgs} | {f"{name}.replay"} |
                        {f"{name}.{schema}.{t}" for t in TABLES})
        run.captured = len(msgs)
        msgs = lose_share(msgs, lose, rnd)
        run.lost = run.captured - len(msgs)
        extra = ["--patients-match", match, "--phone-region", region] + \
            schema_flags(schemas) + list(worker_args)
        pool = [self.start_worker(run, conninfo, schema, i, extra)
                for i in range(workers)]
        replay = None
        try:
            msgs = interleave(msgs, rnd, duplicates)
            run.messages = len(msgs)
            run.avro = sum(1 for m in msgs if avroconv.is_avro(m[2]) or
                           avroconv.is_avro(m[3]))
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
            # (and chaos strikes, and the backfill reads) while messages
            # still arrive
            parts = 4
            for i in range(parts):
                publish(self.kafka.bootstrap,
                        msgs[i * len(msgs) // parts:
                             (i + 1) * len(msgs) // parts])
                if backfill and i == 0:
                    replay = self.start_backfill(run, conninfo, schema)
                if i + 1 < parts:
                    time.sleep(rnd.uniform(0.2, 1.0))
            try:
                if replay:
                    run.backfill = replay.finish(timeout)
                    self.say(f"{name}: backfill: {run.backfill}")
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
            self.reconcile(run, conninfo, schema, region)
        finally:
            if replay:
                replay.stop()
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
        if capture:
            self.capture(run, capture)
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


class Backfill:
    """clinicmig-replay db over a run's legacy tables, in the background:
    it reads them in one snapshot and publishes them, with range markers,
    to the run's replay topic. Its output goes to <run>-replay.log."""

    def __init__(self, binary, run, conninfo, bootstrap, schema, log_dir):
        self.log_path = os.path.join(log_dir, f"{run.name}-replay.log")
        self.log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "db", "--legacy-conninfo", conninfo, "-b", bootstrap,
             "--topic-replay", f"{run.name}.replay",
             "--topic-prefix", run.name, "--source-schema", schema,
             "--quiet"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def finish(self, timeout):
        """Waits for the exit; @returns a line on what it did; raises
        RehearsalError unless it exited 0."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RehearsalError(f"clinicmig-replay db still running after "
                                 f"{timeout} s (log: {self.log_path})")
        seconds = time.monotonic() - self.started
        self.log.close()
        with open(self.log_path, "rb") as f:
            out = f.read().decode(errors="replace")
        if status != 0:
            tail = " | ".join(out.strip().splitlines()[-3:])
            raise RehearsalError(f"clinicmig-replay db exited {status}: "
                                 f"{tail} (log: {self.log_path})")
        snap = re.search(r"snapshot (\S+) at lsn (\S+)", out)
        taken = f"snapshot {snap[1]} at lsn {snap[2]}" if snap else \
            "no snapshot line"
        rows = re.search(r"done: (\d+) rows", out)
        return f"clinicmig-replay db published {rows[1] if rows else '?'} " \
               f"legacy rows ({taken}) in {seconds:.1f} s"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def lose_share(msgs, share, rnd):
    """What a retention gap leaves: @msgs without round(share × count) of
    them, chosen at random whatever they are (deletes and tombstones too),
    in their order. Draws nothing from @rnd when @share is 0."""
    k = round(share * len(msgs))
    if k == 0:
        return msgs
    gone = set(rnd.sample(range(len(msgs)), k))
    return [m for i, m in enumerate(msgs) if i not in gone]


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
