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
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import BUILD, ROOT, PgServer, check, check_true, done  # noqa

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
subprocess.run(["rm", "-rf", tmp])
done()
