#!/usr/bin/python3
"""0008-bad-config: a bad option exits non-zero with one clear line.

Each case runs the worker with one mistake (a flag, a value, a file line,
an environment variable, a missing setting) and expects exit status 2 and
exactly one line on stderr that names the option and where it came from.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import WORKER, check, check_true, done  # noqa: E402

BASE = ["--db-conninfo", "host=127.0.0.1 port=1", "-b", "127.0.0.1:1"]


def run(args, env=None):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("CLINICMIG_")}
    e.update(env or {})
    p = subprocess.run([WORKER] + args, capture_output=True, text=True,
                       env=e, timeout=30)
    return p.returncode, p.stderr.splitlines()


with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
    f.write("# worker settings\ngroup.id = g1\nbatch.max.events = lots\n")
    conf = f.name

cases = [
    ("a non-numeric batch size", BASE + ["--batch-max-events", "abc"], None,
     "batch.max.events"),
    ("a batch size out of range", BASE + ["--batch-max-events", "0"], None,
     "from 1 to"),
    ("a negative appointments wait", BASE + ["--appointments-wait-ms", "-1"],
     None, "appointments.wait.ms"),
    ("an unknown flag", BASE + ["--no-such-flag", "1"], None, "--no-such-flag"),
    ("a flag without its value", BASE + ["--group-id"], None, "missing value"),
    ("a bad line in the config file", BASE + ["--config", conf], None,
     f"{conf}:3"),
    ("a missing config file", BASE + ["--config", "/nonexistent.conf"], None,
     "/nonexistent.conf"),
    ("a bad environment variable", BASE, {"CLINICMIG_BATCH_MAX_MS": "-5"},
     "CLINICMIG_BATCH_MAX_MS"),
    ("an unknown phone region", BASE + ["--phone-region", "XX"], None,
     "phone.region"),
    ("an unknown patients.match", BASE + ["-X", "patients.match=fuzzy"], None,
     "patients.match"),
    ("a schema name that is not an identifier",
     BASE + ["--schema-domain", "v2; DROP"], None, "schema.domain"),
    ("no database configured", ["-b", "127.0.0.1:1"], None, "db.conninfo"),
    ("a bad librdkafka property", BASE + ["-X", "kafka.no.such.prop=1"],
     None, "no.such.prop"),
    ("an HTTP address without a port", BASE + ["--http-listen", "0.0.0.0"],
     None, "http.listen"),
    ("an HTTP port out of range",
     BASE + ["--http-listen", "127.0.0.1:70000"], None, "http.listen"),
    ("an HTTP host name instead of an address",
     BASE + ["--http-listen", "localhost:9464"], None, "http.listen"),
    ("an unbracketed IPv6 HTTP address", BASE, {
        "CLINICMIG_HTTP_LISTEN": "::1:9464"}, "CLINICMIG_HTTP_LISTEN"),
    ("a progress interval below 100 ms",
     BASE + ["--progress-interval-ms", "50"], None, "progress.interval.ms"),
    ("an unknown time.precision.mode",
     BASE + ["--time-precision-mode", "weekly"], None, "time.precision.mode"),
    ("a legacy type for a date column", BASE,
     {"CLINICMIG_LEGACY_COLUMN_TYPES": "Patient.birthDate=timestamp(3)"},
     "Patient.birthDate: not a timestamp column"),
    ("a legacy column type that is not one",
     BASE + ["-X", "legacy.column.types=*.*=timestamp(9)"], None,
     "legacy.column.types"),
]
for what, args, env, needle in cases:
    status, lines = run(args, env)
    check(f"{what}: exit status 2", status, 2)
    check(f"{what}: one line on stderr", len(lines), 1)
    check_true(f"{what}: the line names {needle}",
               lines and needle in lines[-1], lines)

status, lines = run(["--help"])
check("--help exits 0", status, 0)
out = subprocess.run([WORKER, "--help"], capture_output=True, text=True)
for key in ("--db-conninfo", "--batch-max-events", "--topic-dlq",
            "--phone-region", "-X KEY=VALUE", "CLINICMIG_", "--http-listen",
            "--progress-interval-ms", "--topic-progress", "/readyz",
            "--time-precision-mode", "--legacy-column-types"):
    check_true(f"--help documents {key}", key in out.stdout)
os.unlink(conf)
done()
