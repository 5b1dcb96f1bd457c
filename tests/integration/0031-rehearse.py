#!/usr/bin/python3
"""0031-rehearse: clinicmig-rehearse as an operator runs it.

A legacy database gets the seed set and a random history; its final state
is dumped (pg_dump --data-only --inserts) and its events written as kcat
-J lines. clinicmig-rehearse on those two files must exit 0 with the
report, the reconciler's verdicts (in sync) and the oracle's "no
difference"; --capture keeps every topic the run wrote and every log;
with --keep it leaves its
PostgreSQL running and prints the connection string last. With a change
event removed from the history (events lost upstream), the result no
longer equals f of the final state: it must exit 1 and say so.

The same history as Debezium's AvroConverter writes it (tools/lib/
avroconv.py: every message in Confluent's wire format, kcat -J lines with
key_b64 / payload_b64), with one message's txId raised past every other
and one copy of a message under a schema id nobody has: without a schema
source clinicmig-rehearse refuses it (exit 2, before starting anything);
with the key schemas in --schema-dir and the value schemas in a registry
of the test's own (basic auth) it must exit 0 with the oracle's "no
difference", the copy dead-lettered and captured byte for byte, and its
kept database must hand out transaction ids past the raised txId, which
only the Avro body holds.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import BUILD, ROOT, PgServer, check, check_true, done  # noqa
from avroconv import Writer  # noqa: E402
from cmpublish import message_bytes  # noqa: E402
from cmregistry import Registry  # noqa: E402

GEN = os.path.join(ROOT, "tools", "gen", "clinicmig-gen")
REHEARSE = os.path.join(ROOT, "tools", "rehearse", "clinicmig-rehearse")
tmp = tempfile.mkdtemp(prefix="cm-rehearse-")
dump, events = os.path.join(tmp, "final.sql"), os.path.join(tmp, "h.jsonl")


def rehearse(*args):
    return subprocess.run([REHEARSE, "--build-dir", BUILD, *args],
                          capture_output=True, text=True, timeout=600)


pg = PgServer()
try:
    db = pg.conninfo
    subprocess.run([GEN, "seed", "--db", db], check=True,
                   capture_output=True)
    subprocess.run([GEN, "snapshot", "--db", db, "--out", events],
                   check=True, capture_output=True)
    h = subprocess.run([GEN, "history", "--db", db, "--seed", "11",
                        "--steps", "120"], check=True, capture_output=True,
                       text=True)
    with open(events, "a") as f:
        f.write(h.stdout)
    subprocess.run([GEN, "dump", "--db", db, "--out", dump], check=True)
finally:
    pg.destroy()

capture = os.path.join(tmp, "capture")
r = rehearse(dump, events, "--workers", "2", "--chaos", "--keep",
             "--capture", capture)
check("a faithful history: exit 0", r.returncode, 0)
check_true("the oracle finds no difference",
           "oracle: no difference" in r.stdout, r.stdout[-1500:] + r.stderr)
check_true("the report names every entity", all(
    e in r.stdout for e in ("Doctors", "Patients", "Appointments")))
check_true("the report gives the reconciler's verdicts: in sync", all(
    f"in sync: {e:<12} yes" in r.stdout
    for e in ("doctor", "patient", "appointment")), r.stdout[-1500:])
got = sorted(os.listdir(capture)) if os.path.isdir(capture) else []
check("--capture writes every topic the run wrote and every log", [
    f for f in got if f.endswith(".jsonl") or f == "reconciler.log"],
    ["reconciler.log", "rehearsal.dlq.jsonl", "rehearsal.progress.jsonl",
     "rehearsal.reconciliation.jsonl", "rehearsal.replay.jsonl"])
check_true("... the workers' logs among them (killed ones too)", len(
    [f for f in got if f.startswith("rehearsal-w") and f.endswith(".log")])
    >= 3, got)


def kinds(name):
    with open(os.path.join(capture, name)) as f:
        return {json.loads(json.loads(x)["payload"])["type"] for x in f}


if got:
    check_true("the progress capture holds the workers' progress events",
               kinds("rehearsal.progress.jsonl") == {"progress"})
    check_true("the reconciliation capture holds counts, passes and "
               "verdicts", {"counts", "pass", "verdict"} <=
               kinds("rehearsal.reconciliation.jsonl"))
last = r.stdout.strip().splitlines()[-1]
check_true("--keep prints the connection string last",
           last.startswith("host=") and "dbname=rehearsal" in last, last)
if last.startswith("host="):
    q = subprocess.run(["psql", "-tAq", last, "-c",
                        "SELECT count(*) FROM v2.appointment"],
                       capture_output=True, text=True)
    check_true("the kept database answers", q.returncode == 0 and
               int(q.stdout or 0) > 0, q.stderr)
stop = [x for x in r.stderr.splitlines() if "stop it with: " in x]
check("--keep says how to stop the server", len(stop), 1)
if stop:
    subprocess.run(stop[0].split("stop it with: ", 1)[1], shell=True)

# lose the only event of a patient that never changed: data lost upstream
with open(events) as f:
    lines = f.readlines()
seen = {}
for i, line in enumerate(lines):
    m = json.loads(line)
    if m["topic"].endswith("Patient"):
        seen.setdefault(json.loads(m["key"])["id"], []).append(i)
victim = next(v[0] for v in seen.values() if len(v) == 1)
lossy = os.path.join(tmp, "lossy.jsonl")
with open(lossy, "w") as f:
    f.writelines(lines[:victim] + lines[victim + 1:])
r = rehearse(dump, lossy, "--workers", "1")
check("a history with a lost event: exit 1", r.returncode, 1)
check_true("the oracle reports the missing patient",
           "clinic_patient: " in r.stdout and " 1 missing" in r.stdout and
           "oracle: no difference" not in r.stdout, r.stdout[-800:])


# ---- the same history in Avro ----------------------------------------------

RAISED_TXID = 9_000_000  # above every txId the history's server gives
UNKNOWN_ID = 999


def avro_history(path, key_dir):
    """Writes the history in Avro to @path, the key schemas to @key_dir;
    @returns the value schemas {id: text} and the unknown-id copy."""
    w = Writer()
    ms = [json.loads(x) for x in lines]
    last = max(i for i, m in enumerate(ms) if m["payload"] is not None)
    env = json.loads(ms[last]["payload"])
    env["source"]["txId"] = RAISED_TXID
    ms[last]["payload"] = json.dumps(env, ensure_ascii=False)
    out = [w.convert(m) for m in ms]
    bad = dict(out[last])
    body = base64.b64decode(bad["payload_b64"])
    bad["payload_b64"] = base64.b64encode(
        b"\0" + UNKNOWN_ID.to_bytes(4, "big") + body[5:]).decode()
    with open(path, "w") as f:
        for m in out[:last + 1] + [bad] + out[last + 1:]:
            f.write(json.dumps(m) + "\n")
    keys = {sid: t for sid, t in w.texts.items()
            if json.loads(t)["name"] == "Key"}
    os.makedirs(key_dir)
    for sid, text in keys.items():
        with open(os.path.join(key_dir, f"{sid}.avsc"), "w") as f:
            f.write(text)
    return {sid: t for sid, t in w.texts.items() if sid not in keys}, bad


avro = os.path.join(tmp, "avro.jsonl")
values, bad = avro_history(avro, os.path.join(tmp, "keys"))
r = rehearse(dump, avro)
check("Avro without a schema source: exit 2", r.returncode, 2)
check_true("... saying which options give the schemas",
           "--schema-registry-url or --schema-dir" in r.stderr and
           "rehearsal:" not in r.stdout, r.stderr[-500:])

reg = Registry(values)
acapture = os.path.join(tmp, "avro-capture")
try:
    r = rehearse(dump, avro, "--workers", "2", "--keep",
                 "--schema-dir", os.path.join(tmp, "keys"),
                 "--schema-registry-url", reg.url,
                 "--schema-registry-basic-auth-user-info", reg.user_info,
                 "--capture", acapture)
finally:
    reg.stop()
check("an Avro history, schemas from a directory and a registry: exit 0",
      r.returncode, 0)
check_true("... the oracle finds no difference",
           "oracle: no difference" in r.stdout, r.stdout[-1500:] + r.stderr)
check_true("... every message in Avro", f"{len(lines) + 1} of "
           f"{len(lines) + 1} messages in Avro (Confluent's wire format)"
           in r.stdout, r.stdout[:800])
check("... the registry was asked for the value schemas and the unknown "
      "id, never for a key schema (the directory is asked first)",
      sorted(reg.requests), sorted(set(values) | {UNKNOWN_ID}))
check("... the copy under an unknown schema id dead-lettered",
      re.findall(r"dead-lettered (\d+)", r.stdout), ["1"])
dlq = os.path.join(acapture, "rehearsal.dlq.jsonl")
dead = [json.loads(x) for x in open(dlq)] if os.path.exists(dlq) else []
check("... and captured byte for byte",
      [message_bytes(m, "payload") for m in dead],
      [base64.b64decode(bad["payload_b64"])])
last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
if last.startswith("host="):
    q = subprocess.run(["psql", "-tAqX", last, "-c", "SELECT txid_current()"],
                       capture_output=True, text=True)
    check_true(f"the kept database's transaction ids ({q.stdout.strip()}) "
               f"come after the txId {RAISED_TXID} of an Avro body",
               int(q.stdout or 0) > RAISED_TXID, q.stderr)
else:
    check_true("--keep printed the connection string", False, last)
stop = [x for x in r.stderr.splitlines() if "stop it with: " in x]
if stop:
    subprocess.run(stop[0].split("stop it with: ", 1)[1], shell=True)
subprocess.run(["rm", "-rf", tmp])
done()
