#!/usr/bin/python3
"""0065-watch-e2e: the operators' view end to end (docs/observability.md).

The seed-sized data set is backfilled through the replay topic to two
workers that publish their progress; the reconciler runs beside them with
a legacy connection. clinicmig-watch --report must print doctors 7,
patients 20, appointments 43, errors 0, every entity in sync, and exit 0.
Then a row of v2 is edited behind the workers' back: the reconciliation
stream reports that id as differing (mirror-v2), the patient verdict turns
to not in sync, and --report exits non-zero.
"""
import json
import os
import re
import subprocess
import sys

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, ROOT, TOPICS, Env, Replay, check,  # noqa: E402
                    check_true, done, drained, wait_until)

sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
sys.path.insert(0, os.path.join(ROOT, "tools", "lib"))
import cmgen  # noqa: E402
from cmpublish import read_all  # noqa: E402

RECONCILE = os.path.join(BUILD, "tools", "reconcile", "clinicmig-reconcile")
WATCH = os.path.join(BUILD, "tools", "watch", "clinicmig-watch")
RECON = "clinicmig.reconciliation"
topics = dict(TOPICS)
topics[RECON] = 1


def watch(timeout):
    return subprocess.run([WATCH, "-b", env.kafka.bootstrap, "--report",
                           "--timeout", str(timeout)], capture_output=True,
                          text=True, timeout=timeout + 60)


def row(out, label):
    m = re.search(rf"^{label}\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", out, re.M)
    return m.groups() if m else None


with Env(topics=topics) as env:
    conn = psycopg2.connect(env.pg.conninfo)
    cmgen.seed(conn)
    conn.close()
    for _ in range(2):
        env.worker(extra=["--progress-interval-ms", "500"])
    check("the backfill exits 0", Replay(env, "--quiet").wait(), 0)
    wait_until("drained", lambda: drained(env.pg, env.kafka), 120)
    rec = subprocess.Popen(
        [RECONCILE, "--db-conninfo", env.pg.conninfo, "--legacy-conninfo",
         env.pg.conninfo, "--bootstrap-servers", env.kafka.bootstrap,
         "--interval-ms", "500", "--hold-ms", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(env.pg.dir, "reconciler.log"), "w"))
    try:
        r = watch(120)
        check("drained and in sync: --report exits 0", r.returncode, 0) or \
            print("# " + (r.stdout + r.stderr).replace("\n", "\n# "))
        check("report: doctors", row(r.stdout, "Doctors"), ("7", "0"))
        check("report: patients", row(r.stdout, "Patients"), ("20", "0"))
        check("report: appointments", row(r.stdout, "Appointments"),
              ("43", "0"))
        check_true("report: every entity in sync", all(
            re.search(rf"^in sync: {e} +yes", r.stdout, re.M)
            for e in ("doctor", "patient", "appointment")), r.stdout)

        # a divergence planted behind the workers' back
        env.pg.execute("UPDATE v2.clinic_patient SET clinic_id = clinic_id"
                       " + 100 WHERE id = 5")
        r = watch(20)
        check("a divergence: --report exits non-zero", r.returncode, 1)
        check_true("... the report shows the patient not in sync",
                   re.search(r"^in sync: patient +NO: ", r.stdout, re.M),
                   r.stdout)
        evs = [json.loads(m["payload"]) for m in
               read_all(env.kafka.bootstrap, RECON)]
        check_true("the reconciliation stream names id 5 as differing",
                   any(e["type"] == "mismatch" and e["entity"] == "patient"
                       and e["check"] == "mirror-v2"
                       and 5 in e["differing"] for e in evs))
        check_true("and a patient verdict not in sync follows one in sync",
                   [e["in_sync"] for e in evs if e["type"] == "verdict" and
                    e["entity"] == "patient"][-1] is False and
                   any(e["in_sync"] for e in evs if e["type"] == "verdict"
                       and e["entity"] == "patient"))
    finally:
        rec.terminate()
        rec.wait(60)
done()
