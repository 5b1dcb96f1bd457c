#!/usr/bin/python3
"""0086-sql-files: the worker's statements stand on their own in psql.

The worker's statements live in worker/sql/<name>.sql and are embedded
by the build (worker/sql/README.md). Each file must paste into psql as
it is, with the schema names set as psql variables: every one is
prepared here, as it reads, against the schema the worker migrated
(a renamed column, a misspelt table or a type that no longer fits fails
here), and every file must be used by the worker's code. Then the
patient frame is executed from psql with ids and keys of patients the
worker derived, and must return the rows it describes.
"""
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (ROOT, Env, check, check_true, done, drained,  # noqa
                    message, patient, publish, wait_schema, wait_until)

SQL_DIR = os.path.join(ROOT, "worker", "sql")


def psql(pg, script):
    """Runs @p script in psql, as an operator pastes it: the schema names
    as the variables cm and v2, stopping at the first error."""
    r = subprocess.run(
        ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
         "-v", "cm=clinicmig", "-v", "v2=v2", pg.conninfo],
        input=script, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr.strip()


with Env() as env:
    env.worker()
    wait_schema(env.pg)
    A, B = "+79160000101", "+79160000202"
    publish(env.kafka.bootstrap, [
        message("Patient", "c", patient(7, phone=A), 101),
        message("Patient", "c", patient(3, phone=A, email="p@example.org"),
                102),
        message("Patient", "c", patient(9, phone=B), 103)])
    wait_until("three patients drained",
               lambda: drained(env.pg, env.kafka), timeout=60)

    files = sorted(glob.glob(os.path.join(SQL_DIR, "*.sql")))
    check_true("worker/sql holds the statements", len(files) >= 10,
               str(len(files)))
    code = ""
    for path in glob.glob(os.path.join(ROOT, "worker", "*.c")):
        with open(path) as f:
            code += f.read()
    for path in files:
        name = os.path.basename(path)[:-4]
        with open(path) as f:
            text = f.read()
        check_true(f"{name}: used by the worker", "cm_sql_" + name in code)
        body = "".join(line for line in text.splitlines(True)
                       if not line.startswith("--"))
        check_true(f"{name}: one statement, ending with ';'",
                   body.rstrip().endswith(";") and body.count(";") == 1)
        rc, out, err = psql(env.pg, "BEGIN;\nPREPARE s AS\n" + text +
                            "\nROLLBACK;\n")
        check(f"{name}: prepares in psql against the migrated schema",
              (rc, err), (0, ""))

    # the frame of patient 9 and phone key A, run from psql on its own
    keys = dict(env.pg.query("SELECT id, phone_norm"
                             " FROM clinicmig.mirror_patient"))
    with open(os.path.join(SQL_DIR, "patient_frame.sql")) as f:
        frame = f.read()
    rc, out, err = psql(env.pg, "PREPARE frame AS\n" + frame +
                        "\nEXECUTE frame('{9}', '{%s}', '{}');\n" % keys[7])
    check("patient_frame runs in psql", (rc, err), (0, ""))
    rows = [re.split(r"\|", line)[:2] for line in out.splitlines()]
    check("patient_frame: the patient asked for and the holders of the key,"
          " with their anchors", rows, [["3", "3"], ["7", "3"], ["9", "9"]])

done()
