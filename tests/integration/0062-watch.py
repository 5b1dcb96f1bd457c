#!/usr/bin/python3
"""0062-watch: clinicmig-watch follows the progress and reconciliation
streams (docs/observability.md).

Events in the documented formats are published by hand, so that every
state the watch must tell apart can be set up exactly:
  - the live view (not a terminal: one block per refresh) shows the
    workers alive by their own events (not one whose last event is an hour
    old, nor one that said it stopped), per entity migrated / stale /
    errors / lag / in sync, and the recent mismatches, merges and splits;
  - --report waits while a worker still has lag, and gives up at its
    timeout with status 1;
  - once every worker is drained and the reconciler's verdicts (stamped
    after that) say in sync, --report prints the seed-sized report and
    exits 0; --json prints the same as JSON lines;
  - a verdict that is not in sync makes --report exit 1;
  - bad flags exit 2 with one line.
"""
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, KAFKA_TOOL, LocalKafka, check, check_true,  # noqa
                    done, publish)

WATCH = os.path.join(BUILD, "tools", "watch", "clinicmig-watch")
PROGRESS, RECON = "clinicmig.progress", "clinicmig.reconciliation"


def ts(delta_s=0.0):
    t = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def progress(worker, lag=0, final=False, at=0.0, stale=1):
    ent = {"consumed": 10, "applied": 9, "stale": stale, "skipped": 0,
           "dead_lettered": 0}
    return (PROGRESS, worker, json.dumps({
        "v": 1, "type": "progress", "ts": ts(at), "source": f"worker:{worker}",
        "worker": worker, "group": "clinicmig", "final": final,
        "interval_s": 10.0,
        "entities": {"doctor": ent, "patient": ent, "appointment": ent,
                     "other": ent},
        "partitions": [{"topic": "legacy.public.Patient", "partition": 0,
                        "committed": 100 - lag, "high_watermark": 100,
                        "lag": lag}],
        "lag": {"live": lag, "replay": 0},
        "batches": {"count": 1, "events": 10, "size_p50": 10, "size_p99": 10,
                    "latency_ms_p50": 1.0, "latency_ms_p99": 1.0},
        "retries": 0, "rate_per_s": 10.0, "eta_s": lag / 10.0}))


def recon(typ, entity, **fields):
    ev = {"v": 1, "type": typ, "ts": ts(), "source": "reconciler:r1"}
    if entity:
        ev["entity"] = entity
    ev.update(fields)
    return (RECON, entity or "-", json.dumps(ev))


def counts(entity, migrated, glob, dead=0):
    return recon("counts", entity, pass_=1, clinics=[],
                 total={"legacy": migrated, "mirror": migrated,
                        "migrated": migrated, "global": glob},
                 dead_lettered=dead)


def verdict(entity, in_sync, lag=0):
    return recon("verdict", entity, in_sync=in_sync, since=ts(-30), lag=lag,
                 mismatches=0 if in_sync else 1, held_s=30.0,
                 reason="no mismatch, lag 0 <= 100, held 30 s" if in_sync
                 else "1 mismatch in the last pass")


def seed_counts():
    return [counts("doctor", 7, 6), counts("patient", 20, 13),
            counts("appointment", 43, None),
            recon("unresolved", "appointment", grace_s=60, doctor=[],
                  patient=[])]


def run(*args, timeout=60):
    return subprocess.run([WATCH, "-b", kafka.bootstrap] + list(args),
                          capture_output=True, text=True, timeout=timeout)


with LocalKafka(KAFKA_TOOL, {PROGRESS: 1, RECON: 1},
                stderr=subprocess.DEVNULL) as kafka:
    # ---- bad flags
    for args, want in [(["--timeout", "0"], "--timeout: expected"),
                       (["--since", "yesterday"], "--since: expected"),
                       (["--nope"], 'unknown option "--nope"'),
                       (["-X", "nokafka=1"], "-X: expected")]:
        r = run(*args)
        check(f"{args}: exit 2 with one line", (r.returncode,
              len(r.stderr.splitlines()), want in r.stderr), (2, 1, True))

    # ---- a worker still busy: the report waits, then gives up
    publish(kafka.bootstrap, [progress("w1", lag=7), progress("w2")] +
            seed_counts() + [verdict(e, True) for e in
                             ("doctor", "patient", "appointment")])
    r = run("--report", "--timeout", "12")  # joins the group first
    check("with lag left, --report times out with status 1", r.returncode, 1)
    check_true("... and says why", "timed out" in r.stderr, r.stderr)

    # ---- the live view
    publish(kafka.bootstrap, [
        progress("gone", at=-3600), progress("stopped", final=True),
        recon("mismatch", "patient", check="mirror-v2", missing=[],
              extra=[], differing=[12, 15]),
        recon("merge", "patient", global_patient_id=3, merged=[10]),
        recon("split", "patient", global_patient_id=4, split_off=[14])])
    p = subprocess.Popen([WATCH, "-b", kafka.bootstrap, "--refresh-ms", "300"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(8)  # joining the group takes the mock cluster a few s
    p.terminate()
    out, err = p.communicate(timeout=30)
    check("the live view stops on SIGTERM with status 0", p.returncode, 0)
    last = out.split("clinicmig-watch  ")[-1]
    check_true("the workers alive: w1 and w2, not the gone or stopped one",
               "workers alive: 2 w1 w2" in last, last[:300])
    # stale counts every worker's events, the stopped ones' too
    check_true("a line per entity with migrated, stale, errors, lag",
               any(line.split()[:5] == ["patient", "20", "4", "0", "7"]
                   for line in last.splitlines()), last)
    check_true("the in-sync column", "yes since" in last, last)
    check_true("recent mismatch, merge and split, ids only",
               "mismatch patient mirror-v2 12 15" in last and
               "merge patient 3 10" in last and "split patient 4 14" in last,
               last)

    # ---- drained and in sync: the report
    publish(kafka.bootstrap, [progress("w1"), progress("w2")])
    time.sleep(0.2)
    publish(kafka.bootstrap, seed_counts() + [
        verdict(e, True) for e in ("doctor", "patient", "appointment")])
    r = run("--report", "--timeout", "30")
    check("drained and in sync: --report exits 0", r.returncode, 0)
    rows = {line.split("|")[0].strip(): [c.strip() for c in
                                         line.split("|")[1:]]
            for line in r.stdout.splitlines() if "|" in line}
    check("report: doctors", rows.get("Doctors"), ["7", "0",
                                                   "6 global doctors"])
    check("report: patients", rows.get("Patients"),
          ["20", "0", "13 global patients"])
    check("report: appointments", rows.get("Appointments"),
          ["43", "0", "43 with both links resolved"])
    check_true("report: total", "Total: 70 records, 0 errors" in r.stdout,
               r.stdout)
    r = run("--report", "--json", "--timeout", "30")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    check("--json: one line per entity and a total", [
        (x["type"], x.get("entity"), x.get("migrated"), x["in_sync"])
        for x in lines],
        [("report", "doctor", 7, True), ("report", "patient", 20, True),
         ("report", "appointment", 43, True),
         ("report_total", None, None, True)])

    # ---- a verdict lost: not in sync
    publish(kafka.bootstrap, [progress("w1"), progress("w2"),
                              verdict("patient", False)])
    # long enough to join the group and read everything on a busy machine:
    # the report then waits out its timeout, as the verdict never turns
    r = run("--report", "--timeout", "15")
    check("a verdict not in sync: --report exits 1", r.returncode, 1)
    check_true("... the report says which and why",
               "patient      NO: 1 mismatch in the last pass" in r.stdout,
               r.stdout)
done()
