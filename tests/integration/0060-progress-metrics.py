#!/usr/bin/python3
"""0060-progress-metrics: what operators observe of a worker.

A worker runs with --http-listen and a progress interval of 500 ms over a
small history of every entity: creates, an update, a delete with its
tombstone, a stale update, and poison events on a CDC topic and on the
replay topic. Checked, as docs/observability.md describes them:

- /healthz answers 200 throughout; /readyz 200 once partitions are
  assigned, 503 (naming the database) while PostgreSQL is stopped, 200
  again after it is back;
- /metrics: the counters move with the history and end equal to what was
  published, to clinicmig.partition_stats and to the final progress event;
  the histograms count the batches; the per-partition gauges equal the
  stored offsets; the lag gauges show the backlog that piles up while the
  database is away;
- clinicmig.progress: every event valid against schemas/progress.schema.json,
  keyed by the worker id, one every interval; while the database is away
  the live lag is the backlog and eta_s is null; SIGTERM produces one
  final event, the last, whose per-entity counts equal what was published
  and clinicmig.partition_stats, with every partition at its high
  watermark;
- nothing either shows holds personal data.
"""
import datetime
import json
import os
import re
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (ROOT, Env, appointment, check, check_true, done,  # noqa
                    drained, free_port, message, patient, publish, stats,
                    tombstone, user, wait_until)
import jsonschema  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402

PROGRESS = "clinicmig.progress"
ENTITIES = ("doctor", "patient", "appointment", "other")
OUTCOMES = ("consumed", "applied", "stale", "skipped", "dead_lettered")
TABLE_ENTITY = {"User": "doctor", "Patient": "patient",
                "Appointment": "appointment"}
PERSONAL = ("@x.ru", "8916", "+7916", "Ivan", "Petrov", "Anna", "Ivanova")

with open(os.path.join(ROOT, "schemas", "progress.schema.json")) as f:
    SCHEMA = json.load(f)


# ---- the history ----------------------------------------------------------

def counts(**per_entity):
    """{entity: {outcome: n}} with zeros where not given."""
    out = {e: dict.fromkeys(OUTCOMES, 0) for e in ENTITIES}
    for e, given in per_entity.items():
        out[e].update(given)
    return out


PHASE1 = [message("User", "c", user(i, email=f"d{i % 4}@x.ru"), 100 + i)
          for i in range(1, 21)]
PHASE1 += [message("Patient", "c", patient(i, phone=f"8916000000{i % 3}"),
                   200 + i) for i in range(1, 16)]
PHASE1 += [
    # older than user 5's create: stale
    message("User", "u", user(5, email="old@x.ru"), 50),
    # poison on a CDC topic (counts as a doctor) and on the replay topic
    # (no table: counts as other)
    ("legacy.public.User", '{"id": 5}', '{"op": "u", "after": {'),
    ("clinicmig.replay", '{"id": 1}', "not json at all"),
]
WANT1 = counts(doctor=dict(consumed=22, applied=20, stale=1, dead_lettered=1),
               patient=dict(consumed=15, applied=15),
               other=dict(consumed=1, dead_lettered=1))

PHASE2 = [message("Appointment", "c", appointment(i, i % 20 + 1, i % 15 + 1),
                  400 + i) for i in range(1, 26)]
PHASE2 += [message("User", "d", 3, 900), tombstone("User", 3),
           message("Patient", "u", patient(2, phone="89160000009"), 901)]
WANT = counts(doctor=dict(consumed=24, applied=21, stale=1, skipped=1,
                          dead_lettered=1),
              patient=dict(consumed=16, applied=16),
              appointment=dict(consumed=25, applied=25),
              other=dict(consumed=1, dead_lettered=1))


# ---- HTTP -------------------------------------------------------------------

def get(port, path):
    """(status, body, content type) of GET path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                    timeout=10) as r:
            return r.status, r.read().decode(), r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers["Content-Type"]


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port):
    """(page, {(name, ((label, value), ...)): value})."""
    status, body, _ = get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            raise RuntimeError(f"not a metrics line: {line!r}")
        labels = tuple(sorted(LABEL.findall(m[2] or "")))
        out[(m[1], labels)] = float(m[3])
    return body, out


def metric_counts(m):
    """{entity: {outcome: n}} of clinicmig_events_total."""
    out = counts()
    for (name, labels), v in m.items():
        if name == "clinicmig_events_total":
            lab = dict(labels)
            out[lab["entity"]][lab["outcome"]] = int(v)
    return out


def one(m, name):
    return m.get((name, ()))


def per_partition(m, name):
    return {(dict(lab)["topic"], int(dict(lab)["partition"])): int(v)
            for (n, lab), v in m.items() if n == name}


# ---- the progress topic ---------------------------------------------------

class Progress:
    """Reads clinicmig.progress from the start, keeping every event."""

    def __init__(self, bootstrap):
        self.c = Consumer({"bootstrap.servers": bootstrap,
                           "group.id": "progress-reader",
                           "auto.offset.reset": "earliest",
                           "enable.auto.commit": False})
        self.c.subscribe([PROGRESS])
        self.events = []  # (key, raw value, parsed)

    def read(self):
        while True:
            m = self.c.poll(0.2)
            if m is None:
                return self.events
            if m.error():
                continue
            raw = m.value().decode()
            self.events.append((m.key(), raw, json.loads(raw)))

    def find(self, pred):
        return [e for _, _, e in self.read() if pred(e)]

    def close(self):
        self.c.close()


def stored_offsets(pg):
    return {(t, p): o for t, p, o in pg.query(
        "SELECT topic, partition, next_offset FROM clinicmig.consumer_offset"
        " WHERE group_id = 'clinicmig'")}


def partition_stats_counts(pg):
    """clinicmig.partition_stats per entity of the progress event."""
    out = counts()
    for entity in ("User", "Patient", "Appointment", "Clinic", "unknown"):
        for k, v in stats(pg, entity).items():
            out[TABLE_ENTITY.get(entity, "other")][k] += v
    return out


def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


with Env() as env:
    port = free_port()
    w = env.worker(extra=["--http-listen", f"127.0.0.1:{port}",
                          "--progress-interval-ms", "500",
                          "--db-retry-max-ms", "500"])
    progress = Progress(env.kafka.bootstrap)

    # -- health before any event -------------------------------------------
    status, body, ctype = wait_until("/healthz answers", lambda: get(
        port, "/healthz"), 60)
    check("/healthz: 200 ok", (status, body), (200, "ok\n"))
    check_true("/healthz: plain text", ctype.startswith("text/plain"), ctype)
    got = wait_until("/readyz: 200 once partitions are assigned",
                     lambda: (lambda r: r if r[0] == 200 else None)(
                         get(port, "/readyz")), 60)
    check("/readyz: ready", got[1], "ready\n")
    check("an unknown path: 404", get(port, "/nope")[0], 404)
    _, m0 = scrape(port)
    check("/metrics: clinicmig_up 1", one(m0, "clinicmig_up"), 1)
    check("/metrics: clinicmig_ready 1", one(m0, "clinicmig_ready"), 1)
    check("/metrics: no event counted yet", metric_counts(m0), counts())

    # -- phase 1 ------------------------------------------------------------
    publish(env.kafka.bootstrap, PHASE1)
    wait_until("phase 1 drained", lambda: drained(env.pg, env.kafka))
    page1, m1 = scrape(port)
    check("/metrics after phase 1: the counters moved to what was "
          "published", metric_counts(m1), WANT1)
    check("/metrics after phase 1: equal to partition_stats",
          metric_counts(m1), partition_stats_counts(env.pg))
    check("/metrics after phase 1: dead letters",
          one(m1, "clinicmig_dead_letters_total"), 2)
    got = wait_until("a progress event with phase 1's counts", lambda:
                     progress.find(lambda e: e["entities"] == WANT1), 30)
    check("progress agrees with /metrics after phase 1",
          got[-1]["entities"], metric_counts(m1))

    # -- the database goes away; a backlog piles up -------------------------
    env.pg.stop()
    got = wait_until("/readyz: 503 while PostgreSQL is stopped",
                     lambda: (lambda r: r if r[0] == 503 else None)(
                         get(port, "/readyz")), 30)
    check_true("/readyz names the database as the reason",
               "database" in got[1], got[1])
    check_true("/readyz: one line", got[1].count("\n") == 1, got[1])
    check("/healthz: still 200 while PostgreSQL is stopped",
          get(port, "/healthz")[0], 200)
    check("/metrics: clinicmig_ready 0 while PostgreSQL is stopped",
          one(scrape(port)[1], "clinicmig_ready"), 0)
    publish(env.kafka.bootstrap, PHASE2)
    got = wait_until("a progress event showing the backlog", lambda:
                     progress.find(lambda e: e["lag"]["live"] ==
                                   len(PHASE2)), 30)
    check("while nothing commits: rate 0, eta null",
          (got[-1]["rate_per_s"], got[-1]["eta_s"]), (0, None))
    lag = wait_until("the lag gauges show the backlog", lambda: (
        lambda v: v if sum(v.values()) == len(PHASE2) else None)(
            per_partition(scrape(port)[1], "clinicmig_consumer_lag")), 30)
    check("the lag gauges: the backlog on the live topics",
          sum(v for (t, _), v in lag.items() if t.startswith("legacy.")),
          len(PHASE2))
    check("/healthz: still 200 while the worker waits for the database",
          get(port, "/healthz")[0], 200)
    env.pg.start()
    wait_until("/readyz: 200 again after PostgreSQL is back",
               lambda: get(port, "/readyz")[0] == 200, 60)
    wait_until("phase 2 drained", lambda: drained(env.pg, env.kafka), 120)

    # -- after the run ------------------------------------------------------
    page2, m2 = wait_until("the lag gauges back to 0", lambda: (
        lambda r: r if not any(per_partition(
            r[1], "clinicmig_consumer_lag").values()) else None)(
                scrape(port)), 30)
    check("/metrics after the run: what was published", metric_counts(m2),
          WANT)
    pstats = partition_stats_counts(env.pg)
    check("/metrics after the run: equal to partition_stats",
          metric_counts(m2), pstats)
    stored = stored_offsets(env.pg)
    offs = per_partition(m2, "clinicmig_consumer_committed_offset")
    check("/metrics: committed offsets equal the stored ones",
          {k: v for k, v in offs.items() if k in stored}, stored)
    check("/metrics: partitions never read stand at 0",
          {v for k, v in offs.items() if k not in stored} - {0}, set())
    retries = one(m2, "clinicmig_transaction_retries_total")
    check_true("/metrics: the batch that met the stopped database was "
               "retried", retries >= 1, retries)
    n_batches = one(m2, "clinicmig_batch_events_count")
    check("/metrics: the batch sizes sum to the events",
          one(m2, "clinicmig_batch_events_sum"), sum(
              v["consumed"] for v in WANT.values()))
    check("/metrics: one duration per batch",
          one(m2, "clinicmig_batch_duration_seconds_count"), n_batches)
    check("/metrics: the +Inf bucket counts every batch", m2.get((
        "clinicmig_batch_duration_seconds_bucket", (("le", "+Inf"),))),
        n_batches)
    check_true("/metrics: the page declares its types",
               "# TYPE clinicmig_events_total counter" in page2 and
               "# TYPE clinicmig_batch_duration_seconds histogram" in page2
               and "# TYPE clinicmig_consumer_lag gauge" in page2)
    check_true("/metrics: no personal data",
               not any(p in page1 + page2 for p in PERSONAL))

    # -- SIGTERM: the final event ---------------------------------------------
    check("SIGTERM: the worker exits 0", w.stop(), 0)
    final = wait_until("the final progress event", lambda: progress.find(
        lambda e: e["final"]), 30)
    events = progress.read()
    progress.close()
    docs = [e for _, _, e in events]
    check("one final event", len(final), 1)
    check_true("the final event is the last", docs[-1]["final"])
    final = final[0]
    check_true("an event every 500 ms or so", len(docs) >= 8, len(docs))
    bad = []
    for _, raw, e in events:
        try:
            jsonschema.validate(e, SCHEMA,
                                cls=jsonschema.Draft202012Validator)
        except jsonschema.ValidationError as err:
            bad.append(err.message)
    check("every event is valid against schemas/progress.schema.json",
          bad[:3], [])
    check("every event keyed by the worker id",
          {k for k, _, _ in events}, {b"w1"})
    check("source and worker", {(e["source"], e["worker"], e["group"])
                                for e in docs},
          {("worker:w1", "w1", "clinicmig")})
    check("one start time", len({e["started"] for e in docs}), 1)
    stamps = [ts(e["ts"]) for e in docs]
    check_true("times increase", stamps == sorted(stamps))
    gaps = [e["interval_s"] for e in docs[1:-1]]
    check_true("intervals of about half a second",
               all(0.4 <= g <= 2.0 for g in gaps), gaps)
    consumed = [sum(c["consumed"] for c in e["entities"].values())
                for e in docs]
    check_true("the consumed counts never go back",
               consumed == sorted(consumed), consumed)
    check_true("some interval had a rate",
               any(e["rate_per_s"] > 0 for e in docs))
    busy = [e["batches"] for e in docs if e["batches"]["size_p50"] > 0]
    check_true("some interval had batch percentiles", busy)
    check_true("percentiles are ordered", all(
        b["size_p50"] <= b["size_p99"] and
        b["latency_ms_p50"] <= b["latency_ms_p99"] for b in busy), busy)
    check_true("no personal data in the progress events",
               not any(p in raw for _, raw, _ in events for p in PERSONAL))

    check("final: per-entity counts equal what was published",
          final["entities"], WANT)
    check("final: per-entity counts equal partition_stats",
          final["entities"], pstats)
    check("final: equal to the last scrape", final["entities"],
          metric_counts(m2))
    check("final: batches as /metrics counted them",
          (final["batches"]["count"], final["batches"]["events"]),
          (n_batches, sum(v["consumed"] for v in WANT.values())))
    check("final: retries as /metrics counted them", final["retries"],
          retries)
    live = {(p["topic"], p["partition"]): p for p in final["partitions"]}
    ends = {(t, p): high for t in ("legacy.public.User",
                                   "legacy.public.Patient",
                                   "legacy.public.Appointment")
            for p, (_, high) in env.kafka.watermarks(t).items()}
    check("final: the live partitions, each at its high watermark",
          {k: (p["committed"], p["high_watermark"], p["lag"])
           for k, p in live.items()},
          {k: (v, v, 0) for k, v in ends.items()})
    check("final: committed equals the stored offsets",
          {k: p["committed"] for k, p in live.items() if k in stored},
          {k: v for k, v in stored.items() if k in live})
    replay = {p["partition"]: (p["committed"], p["high_watermark"])
              for p in final["replay"]["partitions"]}
    check("final: the replay partitions, each at its high watermark",
          replay, {p: (high, high) for p, (_, high) in
                   env.kafka.watermarks("clinicmig.replay").items()})
    check("final: no lag, eta 0",
          (final["lag"], final["eta_s"]), ({"live": 0, "replay": 0}, 0))
done()
