#!/usr/bin/python3
"""0063-no-pii: no personal data leaves the database (docs/design.md §4).

A generated legacy data set and history run end to end: a backfill through
the replay topic, live changes, a poison event that is dead-lettered, two
workers with metrics, the reconciler (with a legacy connection) and the
watch view and report. Then every name, phone (raw and E.164), email (raw
and normalized) and birth date of the legacy tables is searched for in the
progress and reconciliation streams, the workers' and the reconciler's
logs and stderr, the metrics pages, and the watch output — and none is
found. (The replay and dead-letter topics carry the legacy rows by design;
they are the data, not reports about it.)
"""
import io
import json
import os
import re
import subprocess
import sys
import urllib.request

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, REPLAY, ROOT, TOPICS, Env, Replay, check,  # noqa
                    check_true, done, drained, free_port, publish,
                    wait_until)

sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
import cmgen  # noqa: E402

RECONCILE = os.path.join(BUILD, "tools", "reconcile", "clinicmig-reconcile")
WATCH = os.path.join(BUILD, "tools", "watch", "clinicmig-watch")
PROGRESS, RECON = "clinicmig.progress", "clinicmig.reconciliation"

topics = dict(TOPICS)
topics.update({PROGRESS: 1, RECON: 1})


def personal_data(pg):
    """Every personal value of the legacy tables, in the forms a leak
    would take."""
    found = set()
    for table, cols in (("User", ["email", "phone", "firstName",
                                  "lastName"]),
                        ("Patient", ["firstName", "lastName", "middleName",
                                     "phone", "email", "birthDate"])):
        for row in pg.query(f'SELECT {", ".join(map(repr, cols))}'.replace(
                "'", '"') + f' FROM "{table}"'):
            for v in row:
                if v is None:
                    continue
                v = str(v).strip()
                if len(v) < 4:
                    continue
                found.add(v)
                found.add(v.lower())
                digits = re.sub(r"\D", "", v)
                if len(digits) >= 10 and "@" not in v and "-" not in v[:5]:
                    found.add("+7" + digits[-10:])  # E.164 for RU
                    found.add(digits)
    return found


def read_topic(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "pii-" + topic,
                  "enable.auto.commit": False,
                  "enable.partition.eof": True})
    md = c.list_topics(topic, timeout=10).topics[topic]
    c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    left, out = len(md.partitions), []
    while left:
        m = c.poll(5)
        if m is None:
            break
        if m.error():
            left -= 1
            continue
        out.append((m.key() or b"").decode() + " " +
                   (m.value() or b"").decode())
    c.close()
    return "\n".join(out)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=10) as r:
        return r.read().decode()


with Env(topics=topics) as env:
    conn = psycopg2.connect(env.pg.conninfo)
    cmgen.seed(conn, scale=2)
    ports = [free_port(), free_port(), free_port()]
    for i in range(2):
        env.worker(extra=["--http-listen", f"127.0.0.1:{ports[i]}",
                          "--progress-interval-ms", "500"])
    buf = io.StringIO()
    gen = cmgen.History(conn, 63, cmgen.EventWriter(buf))
    replay = Replay(env, "--quiet")
    gen.run(150)
    check("the backfill exits 0", replay.wait(), 0)
    msgs = [(m["topic"], m["key"], m["payload"])
            for m in map(json.loads, buf.getvalue().splitlines())]
    # a poison event carrying personal data: its reason must not
    patient = env.pg.query('SELECT id, "firstName" FROM "Patient" LIMIT 1')[0]
    msgs.append(("legacy.public.Patient", json.dumps({"id": patient[0]}),
                 json.dumps({"op": "u", "after": {"id": patient[0],
                                                  "firstName": patient[1]}})))
    publish(env.kafka.bootstrap, msgs)
    wait_until("drained", lambda: drained(env.pg, env.kafka), 300)
    rec = subprocess.run([RECONCILE, "--db-conninfo", env.pg.conninfo,
                          "--legacy-conninfo", env.pg.conninfo,
                          "--bootstrap-servers", env.kafka.bootstrap,
                          "--http-listen", f"127.0.0.1:{ports[2]}",
                          "--hold-ms", "0", "--once"],
                         capture_output=True, text=True, timeout=300)
    metrics = scrape(ports[0]) + scrape(ports[1])
    watch = subprocess.run([WATCH, "-b", env.kafka.bootstrap, "--report",
                            "--timeout", "60"], capture_output=True,
                           text=True, timeout=120)
    watch_json = subprocess.run([WATCH, "-b", env.kafka.bootstrap, "--report",
                                 "--json", "--timeout", "60"],
                                capture_output=True, text=True, timeout=120)
    for w in env.workers:
        w.stop()
    texts = {
        "progress stream": read_topic(env.kafka.bootstrap, PROGRESS),
        "reconciliation stream": read_topic(env.kafka.bootstrap, RECON),
        "workers' logs": "\n".join(w.output() for w in env.workers),
        "reconciler's output": rec.stdout + rec.stderr,
        "replay tool's stderr": "\n".join(replay.lines),
        "metrics": metrics,
        "watch report": watch.stdout + watch.stderr,
        "watch report (JSON)": watch_json.stdout + watch_json.stderr,
    }
    check_true("the progress stream has events", "\"progress\"" in
               texts["progress stream"])
    check_true("the reconciliation stream has verdicts", "\"verdict\"" in
               texts["reconciliation stream"])
    check_true("a poison event was dead-lettered", env.pg.query(
        "SELECT sum(dead_lettered) FROM clinicmig.partition_stats")[0][0] >= 1)
    check_true("the watch printed its report", "Patients" in watch.stdout,
               watch.stdout + watch.stderr)
    pii = personal_data(env.pg)
    check_true("the data set has personal data to look for", len(pii) > 100)
    # the search finds what is there: the replay topic carries the rows
    replayed = read_topic(env.kafka.bootstrap, REPLAY)
    check_true("the search finds the personal data the replay topic "
               "carries by design", sum(v in replayed for v in pii) > 50)
    for what, text in texts.items():
        leaks = sorted(v for v in pii if v in text)
        check(f"no personal data in the {what}", len(leaks), 0) or \
            print(f"#   {len(leaks)} values found (not shown)")
done()
