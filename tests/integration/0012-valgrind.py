#!/usr/bin/python3
"""0012-valgrind: the worker and the tools' Avro paths under valgrind's
memcheck.

A worker runs under memcheck through a small history of every entity
(creates, updates, deletes, a poison event, a placeholder, backfill rows
and a range marker; Avro events with their schemas from a registry, one
of an unknown schema id and a truncated one), serving its HTTP endpoints
(scraped while it runs) and publishing progress events in Avro every
500 ms (their schema registered), is stopped with SIGTERM, and must exit
0 with no memory error and no definite leak. While it runs, the tools
that write or read clinicmig's Avro streams run under memcheck too, each
with no memory error and no definite leak: clinicmig-replay db
--output-format avro (onto a topic of its own, the seed data set as the
legacy tables), clinicmig-reconcile --once --output-format avro and
clinicmig-watch --report reading the Avro progress and reconciliation
events with the registry.
Skipped (reported as such, not passed) in the sanitizer build, where
valgrind cannot run the instrumented binary.
"""
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, ROOT, TOPICS, Env, appointment, check,  # noqa
                    check_true, done, drained, free_port, message, patient,
                    publish, range_marker, replay_row, tombstone, user,
                    wait_until)
import cmavro  # noqa: E402
from cmregistry import Registry  # noqa: E402

if os.environ.get("CM_SANITIZE") == "ON":
    print("valgrind cannot run the sanitizer build: skipped")
    sys.exit(77)

sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
import cmgen  # noqa: E402
import psycopg2  # noqa: E402
from cmpublish import read_all  # noqa: E402

REPLAY_TOPIC = "clinicmig.replay-vg"  # not one the worker reads
topics = dict(TOPICS)
topics.update({REPLAY_TOPIC: 1, "clinicmig.reconciliation": 1})


def memcheck(log):
    return ["valgrind", "--tool=memcheck", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--error-exitcode=99",
            f"--log-file={log}"]


def check_log(what, log):
    with open(log) as f:
        text = f.read()
    check(f"{what}: no memory error",
          re.findall(r"ERROR SUMMARY: (\d+) errors", text)[-1:], ["0"])
    check(f"{what}: no definite leak",
          re.findall(r"definitely lost: ([\d,]+) bytes", text)[-1:] or
          ["0"], ["0"])


def in_avro(m):
    """Whether a read_all() message is in Confluent's wire format (its
    bytes come as payload_b64, or as text when they are valid UTF-8)."""
    return "payload_b64" in m or (m.get("payload") or "")[:1] == "\0"


def tool(env, name, args, timeout=300):
    """Runs build/tools/<name> under memcheck; its CompletedProcess."""
    log = os.path.join(env.pg.dir, f"valgrind-{name}.log")
    r = subprocess.run(memcheck(log) + [os.path.join(
        BUILD, "tools", name.split("-")[1], name)] + args,
        capture_output=True, text=True, timeout=timeout)
    check_log(name, log)
    return r


def avro_tools(env, reg):
    """The tools' Avro paths under memcheck, beside the worker."""
    conn = psycopg2.connect(env.pg.conninfo)
    cmgen.seed(conn)
    conn.close()
    registry = ["--schema-registry-url", reg.url,
                "--schema-registry-basic-auth-user-info", reg.user_info]
    r = tool(env, "clinicmig-replay", [
        "db", "--legacy-conninfo", env.pg.conninfo, "-b",
        env.kafka.bootstrap, "--topic-replay", REPLAY_TOPIC, "--quiet",
        "--output-format", "avro"] + registry)
    check("clinicmig-replay --output-format avro under valgrind exits 0",
          (r.returncode, r.stderr[-300:]), (0, r.stderr[-300:]))
    rows = read_all(env.kafka.bootstrap, REPLAY_TOPIC)
    check_true("... and wrote Avro rows and markers", rows and all(
        in_avro(m) for m in rows), rows[:1])
    r = tool(env, "clinicmig-reconcile", [
        "--db-conninfo", env.pg.conninfo, "--legacy-conninfo",
        env.pg.conninfo, "-b", env.kafka.bootstrap, "--once", "--hold-ms",
        "0", "--output-format", "avro"] + registry)
    # the seed set is not what the worker applied: a pass that finds
    # differences (3), and publishes them
    check("clinicmig-reconcile --output-format avro under valgrind: a pass",
          (r.returncode, r.stderr[-300:]), (3, r.stderr[-300:]))
    recs = read_all(env.kafka.bootstrap, "clinicmig.reconciliation")
    check_true("... its events in Avro", recs and all(
        in_avro(m) for m in recs), recs[:1])
    r = tool(env, "clinicmig-watch", [
        "-b", env.kafka.bootstrap, "--report", "--timeout", "5", "--json"] +
        registry)
    # not in sync (the differences above): the report after the timeout
    check("clinicmig-watch --report on Avro streams under valgrind: exit 1",
          (r.returncode, r.stderr[-300:]), (1, r.stderr[-300:]))
    check_true("... having read the Avro events: a report",
               r.stdout.strip(), r.stderr[-500:])
    check_true("... none it could not read",
               "could not be read" not in r.stderr, r.stderr[-500:])


with Env(topics=topics) as env:
    log = os.path.join(env.pg.dir, "valgrind.log")
    msgs = [message("User", "c", user(i, email=f"d{i % 3}@x.ru"), 100 + i)
            for i in range(1, 30)]
    msgs += [message("Patient", "c", patient(i, phone=f"8916000000{i % 4}",
                                             email=f"p{i % 5}@x.ru"),
                     200 + i) for i in range(1, 40)]
    msgs += [message("Appointment", "c", appointment(i, i % 35, i % 45),
                     400 + i) for i in range(1, 60)]
    msgs += [message("User", "d", 3, 900), tombstone("User", 3),
             message("Patient", "d", 4, 901), tombstone("Patient", 4),
             ("legacy.public.User", '{"id": 5}', '{"op": "u", "after": {'),
             message("Patient", "u", patient(7, phone="89160000003"), 950)]
    # a backfill: snapshot rows, a range marker that deletes, and a late
    # live insert judged against the recorded range
    snap = "5000:5010:5003"
    msgs += [replay_row("Patient", patient(i, phone=f"8916000000{i % 4}"),
                        snap) for i in range(10, 20)]
    msgs += [range_marker("Patient", 1, 30, [(10, 19)], snap),
             message("Patient", "c", patient(25), 990, tx_id=4000)]
    # Avro: the registry's schemas, writer versions, two bad messages
    aw = cmavro.Writer()
    reg = Registry(aw.texts)
    msgs += [aw.message("User", "c", user(i, email=f"v{i}@x.ru"), 2000 + i)
             for i in range(40, 45)]
    msgs += [aw.message("Patient", "u", patient(i, birth="1970-01-02"),
                        2100 + i) for i in range(1, 5)]
    msgs += [aw.message("Appointment", "c", appointment(70, 40, 1), 2200,
                        types={"startsAt": "micro"}),
             aw.message("User", "c", dict(user(46), nick="n"), 2300,
                        extra={"nick": "string"}),
             aw.message("Patient", "d", 2, 2400)]
    good = aw.message("User", "c", user(47), 2500)
    msgs += [(good[0], good[1], b"\0\0\0\x03\xe7" + good[2][5:]),
             (good[0], good[1], good[2][:-4])]
    publish(env.kafka.bootstrap, msgs)
    port = free_port()

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                        timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    vg = env.worker("vg", extra=reg.worker_options() + [
        "--http-listen", f"127.0.0.1:{port}", "--progress-interval-ms",
        "500", "--topic-progress-format", "avro"], wrapper=memcheck(log))
    wait_until("drained under valgrind", lambda: drained(env.pg, env.kafka),
               300)
    check("/healthz under valgrind", get("/healthz"), (200, "ok\n"))
    check("/readyz under valgrind", wait_until("ready", lambda: (
        lambda r: r if r[0] == 200 else None)(get("/readyz")), 60),
        (200, "ready\n"))
    status, page = get("/metrics")
    check("/metrics under valgrind", status, 200)
    check_true("/metrics counts the doctors",
               'clinicmig_events_total{entity="doctor",outcome="consumed"} 0'
               not in page, page[:300])
    check("an unknown path under valgrind", get("/nope")[0], 404)
    avro_tools(env, reg)
    status = vg.stop(timeout=120)
    reg.stop()
    check("the worker under valgrind exits 0 after SIGTERM", status, 0)
    check_log("the worker", log)
    progress = read_all(env.kafka.bootstrap, "clinicmig.progress")
    check_true("its progress events in Avro", progress and all(
        in_avro(m) for m in progress), progress[:1])
    check_true("... their schema registered under clinicmig.progress-value",
               "clinicmig.progress-value" in reg.subjects, reg.subjects)
    check("the Avro events applied", env.pg.query(
        "SELECT count(*) FROM clinicmig.mirror_user WHERE id BETWEEN 40"
        " AND 46"), [(6,)])
done()
