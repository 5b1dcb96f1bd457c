#!/usr/bin/python3
"""0072-avro-outputs: the progress and reconciliation streams in Avro
(docs/observability.md §2.1, docs/reconciliation.md "Avro").

The seed-sized data set is backfilled through the replay topic; a schema
registry of the test's own (tools/lib/cmregistry.py, basic auth) takes the
writers' schemas. Then:

1. JSON, the default: two workers and the reconciler publish JSON;
   clinicmig-watch --report gives the in-sync report.
2. Avro, on the same topics: the workers again with
   topic.progress.format=avro, the reconciler with --output-format avro.
   clinicmig-watch --report --since (the switch) with the registry reads
   the Avro events back and gives the in-sync verdict and the same report
   as on JSON (the "since" times aside), nothing undecodable, and so with
   the schemas in a --schema-dir; without a registry it counts the Avro
   messages it cannot read and says why.
3. Merges, splits and mismatches planted afterwards come out in Avro too.
4. Every message of both topics read with confluent_kafka: each Avro one
   decoded by python3-avro (an independent decoder) with the schema the
   registry gives for its id, to its last byte; its id registered under
   "<topic>-value" only, one version per subject (two workers, one id);
   every event, JSON or Avro, valid against schemas/*.schema.json; the
   JSON events before the switch, Avro after it; and of each kind of
   event seen in both formats, the same members.
5. An Avro message of an id the registry does not have: the watch counts
   it with the reason.
6. A registry down when a worker starts: the worker applies events
   (drained), its progress events are dropped with a warning, and appear
   once the registry is back.
7. Bad settings: topic.progress.format=avro without a registry, an
   unknown format, --output-format avro without --schema-registry-url,
   a watch registry URL that is not http(s): status 2, one line; a
   registry refusing the reconciliation schema (409): the reconciler's
   pass fails with the registry's message.
"""
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import avro.io
import avro.schema
import jsonschema
import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, ROOT, SANITIZER_MARKS, TOPICS, WORKER,  # noqa
                    Env, Replay, check, check_true, done, drained, message,
                    no_drops, patient, publish, wait_until)
from cmregistry import Registry  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
sys.path.insert(0, os.path.join(ROOT, "tools", "lib"))
import cmgen  # noqa: E402
from cmpublish import read_all  # noqa: E402

RECONCILE = os.path.join(BUILD, "tools", "reconcile", "clinicmig-reconcile")
WATCH = os.path.join(BUILD, "tools", "watch", "clinicmig-watch")
PROGRESS = "clinicmig.progress"
RECON = "clinicmig.reconciliation"
REFUSED = "clinicmig.refused"
topics = dict(TOPICS)
topics[RECON] = 1
topics[REFUSED] = 1

with open(os.path.join(ROOT, "schemas", "progress.schema.json")) as f:
    VALIDATORS = {PROGRESS: jsonschema.Draft202012Validator(json.load(f))}
with open(os.path.join(ROOT, "schemas", "reconciliation.schema.json")) as f:
    VALIDATORS[RECON] = jsonschema.Draft202012Validator(json.load(f))


def now_ms():
    return int(time.time() * 1000)


def registry_args(reg):
    return ["--schema-registry-url", reg.url,
            "--schema-registry-basic-auth-user-info", reg.user_info]


def watch(env, *args, timeout=120):
    r = subprocess.run(
        [WATCH, "-b", env.kafka.bootstrap, "--report", "--timeout",
         str(timeout)] + list(args), capture_output=True, text=True,
        timeout=timeout + 60)
    check("no sanitizer report from clinicmig-watch",
          [m for m in SANITIZER_MARKS if m in r.stderr], [])
    return r


def reconciler(env, name, *args):
    return subprocess.Popen(
        [RECONCILE, "--db-conninfo", env.pg.conninfo, "--legacy-conninfo",
         env.pg.conninfo, "--bootstrap-servers", env.kafka.bootstrap,
         "--interval-ms", "500", "--hold-ms", "1000"] + list(args),
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(env.pg.dir, f"{name}.log"), "w"))


def stop(proc):
    proc.terminate()
    return proc.wait(60)


def check_clean(env, name):
    """The reconciler's log @name holds no sanitizer report."""
    with open(os.path.join(env.pg.dir, f"{name}.log")) as f:
        out = f.read()
    check(f"no sanitizer report in {name}'s log",
          [m for m in SANITIZER_MARKS if m in out], [])


def normalized(report):
    """The report with the moments the verdicts began left out."""
    return re.sub(r" since \S+", " since T", report)


# ---- reading the topics -----------------------------------------------------

SCHEMAS = {}  # id: parsed schema, fetched once


def fetch_schema(reg, sid):
    """The schema of id @sid, as a client gets it from the registry; None
    if the registry does not have it."""
    if sid not in SCHEMAS:
        req = urllib.request.Request(f"{reg.url}/schemas/ids/{sid}",
                                     headers={"Authorization": reg.auth})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                SCHEMAS[sid] = avro.schema.parse(json.load(r)["schema"])
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
            SCHEMAS[sid] = None
    return SCHEMAS[sid]


def decode(reg, raw):
    """(schema id, event, trailing bytes) of a Confluent-wire message,
    read by python3-avro; event None for an id the registry lacks."""
    sid = int.from_bytes(raw[1:5], "big")
    schema = fetch_schema(reg, sid)
    if schema is None:
        return sid, None, None
    buf = io.BytesIO(raw[5:])
    event = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(buf))
    return sid, event, len(raw) - 5 - buf.tell()


def read_events(env, reg, topic, key=None):
    """Every message of @topic (keyed @key if given): [(format, key,
    event, schema id)], format "json", "avro", or "unknown id"."""
    import base64
    out = []
    for m in read_all(env.kafka.bootstrap, topic):
        if key is not None and m["key"] != key:
            continue
        raw = (base64.b64decode(m["payload_b64"]) if "payload_b64" in m
               else m["payload"].encode())
        if raw[:1] != b"\0":
            out.append(("json", m["key"], json.loads(raw), None))
            continue
        sid, event, left = decode(reg, raw)
        if event is None:
            out.append(("unknown id", m["key"], None, sid))
            continue
        if left:
            check("an Avro message is read to its last byte", left, 0)
        out.append(("avro", m["key"], event, sid))
    return out


def members(value, prefix=""):
    """The member paths of a JSON document (list items under "[]")."""
    if isinstance(value, dict):
        paths = set()
        for k, v in value.items():
            paths.add(prefix + k)
            paths |= members(v, prefix + k + ".")
        return paths
    if isinstance(value, list):
        return set().union(*(members(v, prefix[:-1] + "[].")
                             for v in value)) if value else set()
    return set()


def check_stream(env, reg, topic, switch_ms):
    evs = read_events(env, reg, topic)
    avro_evs = [e for e in evs if e[0] == "avro"]
    json_evs = [e for e in evs if e[0] == "json"]
    check_true(f"{topic}: JSON events before the switch, Avro after",
               json_evs and avro_evs)
    check(f"{topic}: every Avro event stamped after the switch", [
        e[2]["ts"] for e in avro_evs if e[2]["ts"] < iso(switch_ms)], [])
    check(f"{topic}: every JSON event stamped before the switch", [
        e[2]["ts"] for e in json_evs if e[2]["ts"] >= iso(switch_ms)], [])
    ids = sorted({e[3] for e in avro_evs})
    check(f"{topic}: one schema id, registered under {topic}-value only",
          [reg.subject_of(i) for i in ids], [[f"{topic}-value"]])
    check(f"{topic}-value: one version", reg.subjects.get(f"{topic}-value"),
          ids)
    bad = [(fmt, ev.get("type"), err.message) for fmt, _, ev, _ in evs
           for err in VALIDATORS[topic].iter_errors(ev)]
    check(f"{topic}: all {len(evs)} events valid against its JSON Schema",
          bad[:5], [])
    kinds = {}
    for fmt, _, ev, _ in evs:
        kinds.setdefault(ev["type"], {}).setdefault(fmt, set()).update(
            members(ev))
    both = sorted(k for k, f in kinds.items() if len(f) == 2)
    check_true(f"{topic}: kinds of events seen in both formats", both, kinds)
    for k in both:
        check(f"{topic}: {k} events carry the same members in JSON and Avro",
              sorted(kinds[k]["avro"]), sorted(kinds[k]["json"]))
    return evs


def iso(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


def avro_progress_of(env, reg, worker):
    return [ev for fmt, _, ev, _ in read_events(env, reg, PROGRESS, worker)
            if fmt == "avro"]


# ---- bad settings -----------------------------------------------------------

def bad_settings(env, reg):
    r = subprocess.run([WORKER, "--db-conninfo", env.pg.conninfo, "-b",
                        env.kafka.bootstrap, "--topic-progress-format",
                        "avro"], capture_output=True, text=True, timeout=60)
    check("worker: avro without a registry exits 2",
          (r.returncode, r.stderr.strip()),
          (2, "clinicmig-worker: topic.progress.format: avro needs "
              "schema.registry.url (the progress schema is registered "
              "there)"))
    r = subprocess.run([WORKER, "--db-conninfo", env.pg.conninfo, "-b",
                        env.kafka.bootstrap, "-X",
                        "topic.progress.format=xml"],
                       capture_output=True, text=True, timeout=60)
    check("worker: an unknown format exits 2",
          (r.returncode, r.stderr.strip()),
          (2, 'clinicmig-worker: -X topic.progress.format: expected json or '
              'avro, got "xml"'))
    base = [RECONCILE, "--db-conninfo", env.pg.conninfo, "-b",
            env.kafka.bootstrap]
    r = subprocess.run(base + ["--output-format", "avro"],
                       capture_output=True, text=True, timeout=60)
    check("reconciler: avro without a registry exits 2",
          (r.returncode, r.stderr.strip()),
          (2, "clinicmig-reconcile: --output-format avro needs "
              "--schema-registry-url (the reconciliation schema is "
              "registered there)"))
    r = subprocess.run(base + ["--output-format", "xml"],
                       capture_output=True, text=True, timeout=60)
    check("reconciler: an unknown format exits 2",
          (r.returncode, r.stderr.strip()),
          (2, 'clinicmig-reconcile: --output-format: expected json or '
              'avro, got "xml"'))
    r = subprocess.run([WATCH, "-b", env.kafka.bootstrap,
                        "--schema-registry-url", "registry:8081"],
                       capture_output=True, text=True, timeout=60)
    check("watch: a registry URL that is not http(s) exits 2",
          (r.returncode, r.stderr.strip()),
          (2, 'clinicmig-watch: --schema-registry-url: expected an http:// '
              'or https:// URL, got "registry:8081"'))
    # a registry that finds the schema incompatible: the pass fails with
    # its reason (no other reconciler leads now)
    reg.refuse[f"{REFUSED}-value"] = (
        409, "Schema being registered is incompatible with an earlier "
             "schema for subject")
    r = subprocess.run(base + ["--legacy-conninfo", env.pg.conninfo,
                               "--topic-reconciliation", REFUSED, "--once",
                               "--hold-ms", "0", "--output-format", "avro"] +
                       registry_args(reg), capture_output=True, text=True,
                       timeout=120)
    check("reconciler: a refused schema fails the pass (exit 1)",
          r.returncode, 1)
    check_true("... with the registry's reason", re.search(
        r"clinicmig-reconcile: could not write an event as Avro: schema "
        rf"registry refused the schema of subject {REFUSED}-value \(HTTP "
        r"409\): Schema being registered is incompatible", r.stderr),
        r.stderr)
    check("... and nothing was published on its topic",
          read_all(env.kafka.bootstrap, REFUSED), [])


# ---- the run ----------------------------------------------------------------

reg = Registry({})
with Env(topics=topics) as env:
    conn = psycopg2.connect(env.pg.conninfo)
    cmgen.seed(conn)
    conn.close()

    # 1. JSON
    json_workers = [env.worker(f"j{i}", ["--progress-interval-ms", "500"])
                    for i in (1, 2)]
    check("the backfill exits 0", Replay(env, "--quiet").wait(), 0)
    wait_until("drained", lambda: drained(env.pg, env.kafka), 120)
    rec = reconciler(env, "reconciler-json")
    try:
        r = watch(env)
    finally:
        check("the JSON reconciler exits 0 on SIGTERM", stop(rec), 0)
    check_clean(env, "reconciler-json")
    check("JSON: --report exits 0", r.returncode, 0) or \
        print("# " + (r.stdout + r.stderr).replace("\n", "\n# "))
    report_json = r.stdout
    check_true("JSON: every entity in sync", all(
        re.search(rf"^in sync: {e} +yes", report_json, re.M)
        for e in ("doctor", "patient", "appointment")), report_json)
    for w in json_workers:
        check(f"{w.name} exits 0", w.stop(), 0)

    bad_settings(env, reg)

    # 2. Avro on the same topics
    time.sleep(0.01)
    switch = now_ms()
    avro_opts = ["--progress-interval-ms", "500", "--topic-progress-format",
                 "avro"] + reg.worker_options()
    avro_workers = [env.worker(f"a{i}", avro_opts) for i in (1, 2)]
    rec = reconciler(env, "reconciler-avro", "--output-format", "avro",
                     *registry_args(reg))
    try:
        r = watch(env, "--since", str(switch), *registry_args(reg))
        check("Avro: --report with the registry exits 0", r.returncode, 0) \
            or print("# " + (r.stdout + r.stderr).replace("\n", "\n# "))
        check("Avro: the same report as on JSON", normalized(r.stdout),
              normalized(report_json))
        check_true("Avro: nothing undecodable", "undecodable" not in
                   r.stdout + r.stderr, r.stdout + r.stderr)
        check_true("the report came from Avro events: the writers "
                   "registered", reg.subjects.get(f"{PROGRESS}-value") and
                   reg.subjects.get(f"{RECON}-value"), reg.subjects)
        check("every registration was posted as the registry's JSON",
              sorted({t for _, t in reg.posts}),
              ["application/vnd.schemaregistry.v1+json"])

        schema_dir = os.path.join(env.pg.dir, "avsc")
        os.makedirs(schema_dir)
        for sid, text in reg.schemas.items():
            with open(os.path.join(schema_dir, f"{sid}.avsc"), "w") as f:
                f.write(text)
        r = watch(env, "--since", str(switch), "--schema-dir", schema_dir)
        check("Avro with --schema-dir instead: the same report",
              (r.returncode, normalized(r.stdout)),
              (0, normalized(report_json)))

        r = watch(env, "--since", str(switch), "--json", timeout=8)
        check("Avro without a registry: --report does not pass",
              r.returncode, 1)
        total = [json.loads(line) for line in r.stdout.splitlines()
                 if '"report_total"' in line]
        check_true("... the Avro messages are counted as undecodable",
                   total and total[0]["undecodable"] > 0, r.stdout)
        check_true("... and the reason is given", re.search(
            r"clinicmig-watch: \d+ Avro messages could not be read: Avro "
            r"message \(schema id \d+\) but no schema registry or directory "
            r"is configured", r.stderr), r.stderr)

        # 3. merges, splits, mismatches, in Avro
        lsn = 10 ** 9
        publish(env.kafka.bootstrap, [
            message("Patient", "c", patient(9001, phone="89165550001"), lsn),
            message("Patient", "c", patient(9002, phone="89165550002"),
                    lsn + 10)])

        def anchor(pid):
            rows = env.pg.query("SELECT global_patient_id FROM"
                                " v2.clinic_patient WHERE id = %s", (pid,))
            return rows[0][0] if rows else None
        wait_until("two new patients", lambda: anchor(9001) == 9001 and
                   anchor(9002) == 9002, 60)
        publish(env.kafka.bootstrap, [message(
            "Patient", "u", patient(9002, phone="89165550001"), lsn + 20)])
        wait_until("the merge", lambda: anchor(9002) == 9001, 60)
        publish(env.kafka.bootstrap, [message(
            "Patient", "u", patient(9002, phone="89165550003"), lsn + 30)])
        wait_until("the split", lambda: anchor(9002) == 9002, 60)

        def planted():
            kinds = {(ev["type"], ev.get("check"))
                     for fmt, _, ev, _ in read_events(env, reg, RECON)
                     if fmt == "avro"}
            return {("merge", None), ("split", None),
                    ("mismatch", "legacy-mirror")} <= kinds
        wait_until("Avro merge, split and mismatch events", planted, 60)
    finally:
        check("the Avro reconciler exits 0 on SIGTERM", stop(rec), 0)
    check_clean(env, "reconciler-avro")
    for w in avro_workers:
        check(f"{w.name} exits 0", w.stop(), 0)

    # 4. every message, by an independent decoder
    check_stream(env, reg, PROGRESS, switch)
    recon = check_stream(env, reg, RECON, switch)
    check_true("Avro reconciliation events of every kind the run made", {
        ev["type"] for fmt, _, ev, _ in recon if fmt == "avro"} >= {
        "counts", "mismatch", "pass", "unresolved", "merge", "split",
        "suspect", "verdict"}, sorted({ev["type"] for _, _, ev, _ in recon}))

    # 5. an id the registry does not have
    publish(env.kafka.bootstrap, [
        (PROGRESS, "x", b"\0\0\x01\x86\x9f" + b"\x02\x00")])
    r = watch(env, "--since", str(switch), *registry_args(reg), timeout=5)
    check_true("an unknown schema id is counted and shown", re.search(
        r"^undecodable Avro messages: 1 \(latest: schema id 99999: not "
        r"found in the registry\)$", r.stdout, re.M), r.stdout)

    # 6. a registry down when a worker starts
    reg.stop()
    late = env.worker("late", avro_opts)
    publish(env.kafka.bootstrap, [message(
        "Patient", "c", patient(9003, phone="89165550004"), lsn + 40)])
    wait_until("the late worker applies events with the registry down",
               lambda: drained(env.pg, env.kafka) and env.pg.query(
                   "SELECT count(*) FROM clinicmig.mirror_patient"
                   " WHERE id = 9003")[0][0] == 1, 120)
    wait_until("a dropped progress event logged",
               lambda: "progress event dropped" in late.output(), 30)
    check("... and none of its progress events published",
          avro_progress_of(env, reg, "late"), [])
    check_true("... the worker keeps running", late.alive())
    reg.start()
    evs = wait_until("its progress events once the registry is back",
                     lambda: avro_progress_of(env, reg, "late"), 60)
    check("... counting what it applied meanwhile",
          evs[-1]["entities"]["patient"]["applied"], 1)
    wait_until("the recovery logged", lambda: re.search(
        r"progress events published again, after \d+ dropped",
        late.output()), 30)
    check("late exits 0", late.stop(), 0)
    no_drops(env.kafka, [PROGRESS, RECON])
done()
