#!/usr/bin/python3
"""0040-demo: the README's first command keeps working.

Runs tools/scripts/demo.sh on the build under test and checks that it ends
with the oracle finding no difference and the seed-sized report: 7
doctors in 6 global doctors, 20 patients, 43 appointments, no errors —
the report clinicmig-watch prints once the reconciler finds every entity
in sync; the initial load came through the replay topic (clinicmig-replay
db).

Then demo.sh --avro: the same end, with the live changes published in
Avro through the schema registry the demo starts, every one of them
applied (or found stale) by the workers and none dead-lettered or
skipped, and the backfill, the progress and the reconciliation streams
in Avro too, their schemas registered under <topic>-value. A demo.sh with an unknown argument exits 2 before doing anything.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import BUILD, ROOT, check, check_true, done  # noqa: E402

DEMO = os.path.join(ROOT, "tools", "scripts", "demo.sh")


def demo(*args):
    return subprocess.run([DEMO, *args],
                          env=dict(os.environ, CM_BUILD_DIR=BUILD),
                          capture_output=True, text=True, timeout=600)


def check_demo(mode, r):
    out = r.stdout
    check(f"{mode}: exits 0", r.returncode, 0)
    check_true(f"{mode}: the oracle finds no difference",
               "oracle: no difference" in out,
               out[-2000:] + r.stderr[-2000:])
    check_true(f"{mode}: the initial load was a backfill through the "
               "replay topic", re.search(
                   r"clinicmig-replay: done: 74 rows .*; all acknowledged",
                   r.stderr), r.stderr[-1000:])

    def row(entity):
        m = re.search(rf"^\s*{entity}\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(.*)$",
                      out, re.M)
        return m.groups() if m else None

    check(f"{mode}: report: doctors", row("Doctors"),
          ("7", "0", "6 global doctors"))
    check(f"{mode}: report: patients migrated, no errors",
          (row("Patients") or [])[:2], ("20", "0"))
    check(f"{mode}: report: appointments", row("Appointments"),
          ("43", "0", "43 with both links resolved"))
    check_true(f"{mode}: report: total",
               "Total: 70 records, 0 errors" in out)
    check_true(f"{mode}: report: every entity in sync", all(
        re.search(rf"^in sync: {e} +yes since ", out, re.M)
        for e in ("doctor", "patient", "appointment")), out[-1500:])


r = demo()
check_demo("demo.sh", r)
check_true("demo.sh: no schema registry, no Avro",
           "schema registry" not in r.stdout and "Avro" not in r.stdout)

r = demo("--avro")
check_demo("demo.sh --avro", r)
check_true("demo.sh --avro: starts a schema registry", re.search(
    r"^schema registry: http://127\.0\.0\.1:\d+$", r.stdout, re.M),
    r.stdout[:1500])
live = re.search(r"^live changes: (\d+) messages in Avro; the workers "
                 r"applied (\d+), (\d+) stale, (\d+) skipped, (\d+) "
                 r"dead-lettered$", r.stdout, re.M)
n, applied, stale, skipped, dead = map(int, live.groups()) if live else \
    (0, -1, -1, -1, -1)
check_true(f"demo.sh --avro: the live changes in Avro ({n}), every one "
           f"applied ({applied}) or stale ({stale})",
           n > 0 and applied + stale == n, r.stdout[-2500:])
check("demo.sh --avro: none skipped or dead-lettered", (skipped, dead),
      (0, 0))
subjects = re.search(r"^registered subjects: (.*)$", r.stdout, re.M)
subjects = set(subjects.group(1).split()) if subjects else set()
check("demo.sh --avro: the backfill, progress and reconciliation streams "
      "in Avro, their schemas under <topic>-value",
      sorted(s for s in subjects if s.startswith("clinicmig.")),
      ["clinicmig.progress-value", "clinicmig.reconciliation-value",
       "clinicmig.replay-value"])

r = subprocess.run([DEMO, "--bogus"], capture_output=True, text=True,
                   timeout=60)
check("demo.sh --bogus: exit 2, usage", (r.returncode, r.stdout,
                                         r.stderr.startswith("usage:")),
      (2, "", True))
done()
