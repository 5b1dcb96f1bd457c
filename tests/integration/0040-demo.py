#!/usr/bin/python3
"""0040-demo: the README's first command keeps working.

Runs tools/scripts/demo.sh on the build under test and checks that it ends
with the oracle finding no difference and the seed-sized report: 7
doctors in 6 global doctors, 20 patients, 43 appointments, no errors —
the report clinicmig-watch prints once the reconciler finds every entity
in sync; the initial load came through the replay topic (clinicmig-replay
db).
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import BUILD, ROOT, check, check_true, done  # noqa: E402

r = subprocess.run([os.path.join(ROOT, "tools", "scripts", "demo.sh")],
                   env=dict(os.environ, CM_BUILD_DIR=BUILD),
                   capture_output=True, text=True, timeout=600)
out = r.stdout
check("demo.sh exits 0", r.returncode, 0)
check_true("the oracle finds no difference", "oracle: no difference" in out,
           out[-2000:] + r.stderr[-2000:])
check_true("the initial load was a backfill through the replay topic",
           re.search(r"clinicmig-replay: done: 74 rows .*; all acknowledged",
                     r.stderr), r.stderr[-1000:])


def row(entity):
    m = re.search(rf"^\s*{entity}\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(.*)$",
                  out, re.M)
    return m.groups() if m else None


check("report: doctors", row("Doctors"), ("7", "0", "6 global doctors"))
check("report: patients migrated, no errors", (row("Patients") or [])[:2],
      ("20", "0"))
check("report: appointments", row("Appointments"),
      ("43", "0", "43 with both links resolved"))
check_true("report: total", "Total: 70 records, 0 errors" in out)
check_true("report: every entity in sync", all(
    re.search(rf"^in sync: {e} +yes since ", out, re.M)
    for e in ("doctor", "patient", "appointment")), out[-1500:])
done()
