#!/usr/bin/python3
"""0061-reconcile: clinicmig-reconcile against a legacy database and the
target side by side (docs/reconciliation.md).

One PostgreSQL database holds the legacy tables and the new schema;
clinicmig-gen seeds the legacy tables (the seed set), its Debezium
snapshot is published and a worker drains it. Then:

1. `clinicmig-reconcile --once --hold-ms 0`: the counts of the seed set
   (11 users of which 7 doctors in 6 global doctors, 20 patients in 13
   global patients, 43 appointments), no mismatch, the seed set's two
   families with conflicting birth dates as suspects, every verdict in
   sync, exit 0; nothing published holds a legacy text value.
2. Divergences planted behind the worker's back — a v2.clinic_patient
   row edited, a v2.appointment row deleted, a legacy "Patient" row
   changed without an event: the next pass reports exactly those ids,
   under the right check and kind; the verdicts of patient and
   appointment turn false, the doctor's stays true, and --once exits 3.
3. Events published once: an offset gap and a patient regroup recorded,
   an appointment's link nulled: the pass publishes the gap (with the
   repair command), the merge and the unresolved link; the next run (a
   new process) publishes the unresolved link again but not the gap nor
   the merge.
4. One reconciler at a time: a second one stands by while the first
   leads (and serves /metrics, /healthz, /readyz), and takes over with
   its own pass when the first is stopped with SIGTERM (exit 0).
5. Bad flags: exit 2 with one line; an unreachable database and an
   unknown topic: exit 1 with one line.
6. Under valgrind (not in the sanitizer build): one pass, no error, no
   definite leak.
Every event read is checked against schemas/reconciliation.schema.json.
"""
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import jsonschema
import psycopg2
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, ROOT, SANITIZER_MARKS, TOPICS, Env,  # noqa: E402
                    check, check_true, done, drained, free_port, publish,
                    wait_schema, wait_until)

sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
import cmgen  # noqa: E402

RECONCILE = os.path.join(BUILD, "tools", "reconcile", "clinicmig-reconcile")
RECON_TOPIC = "clinicmig.reconciliation"
topics = dict(TOPICS)
topics[RECON_TOPIC] = 1
stderr_seen = []  # every reconciler's stderr, for the sanitizer check


class Topic:
    """Reads the reconciliation topic from where the last read ended."""

    def __init__(self, bootstrap):
        self.c = Consumer({"bootstrap.servers": bootstrap,
                           "group.id": "test-0061",
                           "enable.auto.commit": False})
        self.c.assign([TopicPartition(RECON_TOPIC, 0, 0)])
        self.next = 0
        self.seen = []

    def read(self, kafka):
        """Every event published since the last read, as (key, dict)."""
        _, high = kafka.watermarks(RECON_TOPIC)[0]
        out = []
        deadline = time.monotonic() + 30
        while self.next < high and time.monotonic() < deadline:
            m = self.c.poll(0.5)
            if m is None or m.error():
                continue
            self.next = m.offset() + 1
            out.append((m.key().decode(), m.value().decode()))
        self.seen += out
        return out

    def close(self):
        self.c.close()


def reconcile(env, *args, timeout=120):
    r = subprocess.run([RECONCILE, "--db-conninfo", env.pg.conninfo,
                        "--legacy-conninfo", env.pg.conninfo,
                        "-b", env.kafka.bootstrap, "--hold-ms", "0",
                        "--interval-ms", "500"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    stderr_seen.append(r.stderr)
    return r.returncode, r.stderr


def events(raw, typ=None):
    evs = [json.loads(v) for _, v in raw]
    return [e for e in evs if typ is None or e["type"] == typ]


def by_entity(evs, typ):
    return {e["entity"]: e for e in evs if e["type"] == typ}


def mismatches(evs):
    """{(entity, check): (missing, extra, differing)}"""
    return {(e["entity"], e["check"]): (e["missing"], e["extra"],
                                        e["differing"])
            for e in evs if e["type"] == "mismatch"}


def load(env):
    conn = psycopg2.connect(env.pg.conninfo)
    cmgen.seed(conn)
    conn.close()
    buf = io.StringIO()
    snap = psycopg2.connect(env.pg.conninfo)
    cmgen.snapshot(snap, cmgen.EventWriter(buf))
    snap.close()
    publish(env.kafka.bootstrap,
            [(m["topic"], m["key"], m["payload"])
             for m in map(json.loads, buf.getvalue().splitlines())])
    env.worker()
    wait_schema(env.pg)
    wait_until("drained", lambda: drained(env.pg, env.kafka), 120)


def personal_values(env):
    """Every legacy text value of 4 characters or more."""
    vals = set()
    for table, cols in (("User", ("email", "phone", "firstName",
                                  "lastName", "licenseNumber")),
                        ("Patient", ("firstName", "lastName", "middleName",
                                     "phone", "email")),
                        ("Appointment", ("reason",))):
        for row in env.pg.query(
                "SELECT " + ", ".join(f'"{c}"' for c in cols) +
                f' FROM "{table}"'):
            vals |= {v.strip() for v in row if v and len(v.strip()) >= 4}
    return vals


def first_pass(env, topic):
    status, err = reconcile(env, "--once")
    check("a pass over the drained seed set exits 0", status, 0) or \
        print("# " + err.replace("\n", "\n# "))
    raw = topic.read(env.kafka)
    evs = events(raw)
    counts = by_entity(evs, "counts")
    check("doctor counts: 11 users, 7 clinic doctors, 6 global doctors",
          counts["doctor"]["total"], {"legacy": 11, "mirror": 11,
                                      "migrated": 7, "global": 6})
    check("patient counts: 20 patients in 13 global patients",
          counts["patient"]["total"], {"legacy": 20, "mirror": 20,
                                       "migrated": 20, "global": 13})
    check("appointment counts: 43", counts["appointment"]["total"],
          {"legacy": 43, "mirror": 43, "migrated": 43, "global": None})
    check("the patients' clinics add up",
          sum(c["migrated"] for c in counts["patient"]["clinics"]), 20)
    check("three clinics", [c["clinic_id"] for c in
                            counts["appointment"]["clinics"]], [1, 2, 3])
    check("nothing dead-lettered",
          [counts[e]["dead_lettered"] for e in counts], [0, 0, 0])
    check("no mismatch", mismatches(evs), {})
    passes = by_entity(evs, "pass")
    check("pass events: every row counted, no row read one by one",
          {e: (p["rows"]["legacy"], p["rows_read"])
           for e, p in passes.items()},
          {"doctor": (11, 0), "patient": (20, 0), "appointment": (43, 0)})
    check("unresolved links: published every pass, none here",
          [(e["doctor"], e["patient"]) for e in evs
           if e["type"] == "unresolved"], [([], [])])
    check("events in the contract's order", [
        (k, json.loads(v)["type"]) for k, v in raw
        if json.loads(v)["type"] in ("counts", "pass", "verdict")],
        [("doctor", "counts"), ("doctor", "pass"), ("patient", "counts"),
         ("patient", "pass"), ("appointment", "counts"),
         ("appointment", "pass"), ("doctor", "verdict"),
         ("patient", "verdict"), ("appointment", "verdict")])
    check("the seed set's two families with conflicting birth dates are "
          "suspects", sorted((e["global_patient_id"], e["members"],
                              e["reason"]) for e in events(raw, "suspect")),
          [(3, 3, "conflicting birth dates"),
           (11, 2, "conflicting birth dates")])
    verdicts = by_entity(evs, "verdict")
    check("every verdict in sync", {e: (v["in_sync"], v["lag"],
                                        v["mismatches"])
                                    for e, v in verdicts.items()},
          {e: (True, 0, 0) for e in ("doctor", "patient", "appointment")})
    check_true("every event has v, ts and a reconciler source", all(
        e["v"] == 1 and re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]) and
        e["source"].startswith("reconciler:") for e in evs))
    leaked = [v for v in personal_values(env)
              if any(v in text for _, text in raw) or v in err]
    check("no legacy text value in any event or log line", leaked, [])


def plant(env, topic):
    env.pg.execute("UPDATE v2.clinic_patient SET email = 'planted@x.org'"
                   " WHERE id = 5")
    env.pg.execute("DELETE FROM v2.appointment WHERE id = 17")
    env.pg.execute('UPDATE "Patient" SET "lastName" = \'Planted\''
                   " WHERE id = 12")
    status, err = reconcile(env, "--once")
    check("--once exits 3 when an entity is not in sync", status, 3)
    evs = events(topic.read(env.kafka))
    check("exactly the planted ids, under the right check and kind",
          mismatches(evs),
          {("patient", "legacy-mirror"): ([], [], [12]),
           ("patient", "mirror-v2"): ([], [], [5]),
           ("appointment", "mirror-v2"): ([17], [], [])})
    verdicts = by_entity(evs, "verdict")
    check("verdicts: doctor in sync, patient and appointment not",
          {e: v["in_sync"] for e, v in verdicts.items()},
          {"doctor": True, "patient": False, "appointment": False})
    check("the verdicts count the mismatching ids",
          {e: v["mismatches"] for e, v in verdicts.items()},
          {"doctor": 0, "patient": 2, "appointment": 1})
    passes = by_entity(evs, "pass")
    check("the patient pass read a handful of rows one by one",
          (passes["patient"]["mismatches"],
           0 < passes["patient"]["rows_read"] <= 4 * 64), (2, True))


def once_events(env, topic):
    env.pg.execute(
        "INSERT INTO clinicmig.offset_gap (group_id, topic, partition,"
        " from_offset, to_offset) VALUES ('clinicmig',"
        " 'legacy.public.Patient', 1, 0, 120)")
    env.pg.execute("INSERT INTO clinicmig.patient_regroup (kind,"
                   " global_patient_id, others) VALUES ('merge', 3, '{10}')")
    env.pg.execute("UPDATE v2.appointment SET clinic_doctor_id = NULL"
                   " WHERE id = 20")
    reconcile(env, "--once", "--grace-ms", "0")
    evs = events(topic.read(env.kafka))
    gaps = events([(None, json.dumps(e)) for e in evs], "gap")
    check("the gap is published with its offsets",
          [(g["topic"], g["partition"], g["from_offset"], g["to_offset"])
           for g in gaps], [("legacy.public.Patient", 1, 0, 120)])
    check_true("with the command that repairs it", gaps and gaps[0][
        "repair"].startswith("clinicmig-replay db --legacy-conninfo "
                             "LEGACY_CONNINFO --bootstrap-servers ") and
        gaps[0]["repair"].endswith(" --tables Patient"),
        gaps and gaps[0]["repair"])
    check("the merge is published", [(e["type"], e["global_patient_id"],
                                      e["merged"]) for e in evs
                                     if e["type"] in ("merge", "split")],
          [("merge", 3, [10])])
    check("the nulled link is unresolved",
          [(e["doctor"], e["patient"]) for e in evs
           if e["type"] == "unresolved"], [([20], [])])
    reconcile(env, "--once", "--grace-ms", "0")
    evs = events(topic.read(env.kafka))
    check("a new process publishes neither the gap nor the merge again",
          [e["type"] for e in evs if e["type"] in ("gap", "merge")], [])
    check("but the unresolved link again",
          [e["doctor"] for e in evs if e["type"] == "unresolved"], [[20]])
    env.pg.execute("UPDATE v2.appointment SET clinic_doctor_id ="
                   " (SELECT doctor_id FROM clinicmig.mirror_appointment"
                   " WHERE id = 20) WHERE id = 20")


class Proc:
    """A reconciler in the background, its stderr collected."""

    def __init__(self, args):
        self.lines = []
        self.p = subprocess.Popen([RECONCILE] + args, stderr=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))
        stderr_seen.append("\n".join(self.lines))

    def said(self, text):
        return any(text in line for line in self.lines)


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                    timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def leader(env, topic):
    port = free_port()
    base = ["--db-conninfo", env.pg.conninfo, "-b", env.kafka.bootstrap,
            "--hold-ms", "0"]
    a = Proc(base + ["--interval-ms", "1000", "--http-listen",
                     f"127.0.0.1:{port}"])
    wait_until("the first reconciler leads", lambda: a.said("leading"), 60)
    wait_until("its first pass", lambda: a.said("pass "), 60)
    b = Proc(base + ["--once", "--interval-ms", "300"])
    wait_until("the second stands by", lambda: b.said("standing by"), 60)
    time.sleep(2)
    check("the second keeps standing by while the first leads",
          b.p.poll(), None)
    sources = {e["source"] for e in events(topic.read(env.kafka))}
    check("only the leader published", sources,
          {f"reconciler:{os.uname().nodename[:63]}:{a.p.pid}"})
    status, text = http_get(port, "/metrics")
    check_true("/metrics gives the verdicts", status == 200 and
               'clinicmig_in_sync{entity="doctor"} 1' in text and
               "clinicmig_reconcile_rows_read_total" in text and
               'clinicmig_reconcile_mismatches{entity="patient",'
               'check="mirror-v2"} 1' in text, text[:400])
    check("/healthz", http_get(port, "/healthz"), (200, "ok\n"))
    check("/readyz", http_get(port, "/readyz"), (200, "ready\n"))
    a.p.send_signal(signal.SIGTERM)
    check("the first exits 0 on SIGTERM", a.p.wait(60), 0)
    check("the second takes over, runs its pass and exits (3: patient and "
          "appointment are still out of sync)", b.p.wait(60), 3)
    check_true("it said it took the lead", b.said("leading"), b.lines)
    sources = {e["source"] for e in events(topic.read(env.kafka))}
    check_true("its pass was published by itself",
               f"reconciler:{os.uname().nodename[:63]}:{b.p.pid}" in sources,
               sources)


def errors(env):
    def run(*args):
        r = subprocess.run([RECONCILE] + list(args), capture_output=True,
                           text=True, timeout=60)
        stderr_seen.append(r.stderr)
        return r.returncode, r.stderr

    db = ["--db-conninfo", env.pg.conninfo]
    kb = ["-b", env.kafka.bootstrap]
    for args, want in [
        (kb, "clinicmig-reconcile: --db-conninfo is required\n"),
        (db, "clinicmig-reconcile: -b/--bootstrap-servers is required\n"),
        (db + kb + ["--hold-ms"],
         "clinicmig-reconcile: --hold-ms needs a value (see --help)\n"),
        (db + kb + ["--interval-ms", "5"],
         "clinicmig-reconcile: --interval-ms: expected a whole number from "
         "100 to 86400000, got \"5\"\n"),
        (db + kb + ["--segment-rows", "x"],
         "clinicmig-reconcile: --segment-rows: expected a whole number from "
         "1 to 1000000, got \"x\"\n"),
        (db + kb + ["--rate", "-3"],
         "clinicmig-reconcile: --rate: expected a number of rows per second "
         "greater than 0, got \"-3\"\n"),
        (db + kb + ["--phone-region", "ZZ"],
         "clinicmig-reconcile: --phone-region: \"ZZ\" is not a region "
         "libphonenumber knows (RU, KZ, DE, ...)\n"),
        (db + kb + ["--schema-domain", "clinicmig"],
         "clinicmig-reconcile: --schema-domain and --schema-bookkeeping "
         "must differ (both \"clinicmig\")\n"),
        (db + kb + ["--http-listen", "localhost"],
         "clinicmig-reconcile: --http-listen: expected ADDR:PORT "
         "(0.0.0.0:9464, [::]:9464), got \"localhost\"\n"),
        (db + kb + ["--hash-secret-file", "/nonexistent"],
         "clinicmig-reconcile: --hash-secret-file: cannot read "
         "\"/nonexistent\": No such file or directory\n"),
        (db + kb + ["-X", "kafka.no.such=1"],
         "clinicmig-reconcile: -X kafka.no.such: No such configuration "
         "property: \"no.such\"\n"),
        (db + kb + ["--frobnicate"],
         "clinicmig-reconcile: unknown option --frobnicate (see --help)\n"),
        (db + kb + ["--once", "extra"],
         "clinicmig-reconcile: unexpected argument \"extra\" (see --help)\n"),
    ]:
        flag = want.split(": ")[1].split(" ")[0]
        check(f"bad flags ({flag}): exit 2, one line", run(*args), (2, want))
    status, err = run("--db-conninfo", f"host=127.0.0.1 port={free_port()}"
                      " user=postgres dbname=postgres connect_timeout=5",
                      *kb, "--once")
    check_true("an unreachable database: exit 1, one line",
               status == 1 and err.count("\n") == 1 and err.startswith(
                   "clinicmig-reconcile: could not connect to the target "
                   "database: "), (status, err))
    check("an unknown topic: exit 1, one line",
          run(*db, *kb, "--once", "--topic-reconciliation", "no.such"),
          (1, 'clinicmig-reconcile: topic "no.such" does not exist\n'))
    check("an unknown legacy schema: exit 1, one line",
          run(*db, *kb, "--once", "--legacy-conninfo", env.pg.conninfo,
              "--source-schema", "nosuch"),
          (1, 'clinicmig-reconcile: table nosuch."User" does not exist in '
              "the legacy database\n"))


def valgrind(env, topic):
    if os.environ.get("CM_SANITIZE") == "ON":
        print("# valgrind cannot run the sanitizer build: skipped")
        return
    log = os.path.join(env.pg.dir, "valgrind.log")
    secret = os.path.join(env.pg.dir, "secret")
    with open(secret, "w") as f:
        f.write("k3y\n")
    r = subprocess.run(
        ["valgrind", "--tool=memcheck", "--leak-check=full",
         "--errors-for-leak-kinds=definite", "--error-exitcode=99",
         f"--log-file={log}", RECONCILE, "--db-conninfo", env.pg.conninfo,
         "--legacy-conninfo", env.pg.conninfo, "-b", env.kafka.bootstrap,
         "--once", "--hold-ms", "0", "--suspect-members", "1",
         "--hash-secret-file", secret, "--http-listen",
         f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=600)
    with open(log) as f:
        text = f.read()
    check("under valgrind: a pass (exit 3, as the plants stand)",
          r.returncode, 3)
    check("no memory error", re.findall(r"ERROR SUMMARY: (\d+) errors",
                                        text)[-1:], ["0"])
    check("no definite leak",
          re.findall(r"definitely lost: ([\d,]+) bytes", text)[-1:] or
          ["0"], ["0"])
    hashes = [e.get("key_hash") for e in events(topic.read(env.kafka),
                                                "suspect")
              if e["reason"] == "shared phone key"]
    check_true("shared phone keys named by 64 hex digits", hashes and all(
        re.fullmatch(r"[0-9a-f]{64}", h or "") for h in hashes), hashes)


def schema_check(seen):
    with open(os.path.join(ROOT, "schemas",
                           "reconciliation.schema.json")) as f:
        v = jsonschema.Draft202012Validator(json.load(f))
    bad = [(json.loads(text)["type"], e.message) for _, text in seen
           for e in v.iter_errors(json.loads(text))]
    check(f"all {len(seen)} events valid against "
          "schemas/reconciliation.schema.json", bad[:5], [])
    check("every kind of event was seen", sorted({
        json.loads(t)["type"] for _, t in seen}), sorted([
            "counts", "mismatch", "pass", "unresolved", "gap", "merge",
            "suspect", "verdict"]))
    check("keys: the entity, or - for a gap", sorted({
        (k, json.loads(t).get("entity", "-")) for k, t in seen} - {
        (e, e) for e in ("doctor", "patient", "appointment")}), [("-", "-")])


with Env(topics=topics) as env:
    load(env)
    topic = Topic(env.kafka.bootstrap)
    first_pass(env, topic)
    plant(env, topic)
    once_events(env, topic)
    leader(env, topic)
    errors(env)
    valgrind(env, topic)
    topic.close()
    schema_check(topic.seen)
    marks = [m for m in SANITIZER_MARKS if any(m in e for e in stderr_seen)]
    check("no sanitizer report from any reconciler", marks, [])
done()
