#!/usr/bin/python3
"""scale.py -- legacy tables, mirror and v2 that agree, at any size, and
the benchmark of clinicmig-reconcile on them.

NOTES
fill_sql() gives the SQL that fills, with INSERT ... SELECT
generate_series, the legacy tables ("User", "Patient", "Appointment" in
public), the mirror (clinicmig.mirror_*) and v2 with rows on which f and
the mirror agree: every user a doctor with a global doctor of its own,
every patient a global patient of its own, every appointment linked. The
schemas must exist (a worker creates them at start). Used by
tests/integration/0062-reconcile-scale.py and by the benchmark below.

As a program it starts a private PostgreSQL and the local Kafka cluster,
lets a worker create the schema, fills ROWS legacy rows (1 % users, the
rest half patients, half appointments), and times `clinicmig-reconcile
--once` over them: a full pass with nothing to find, then one with a
single planted difference. It prints the figures tools/reconcile/README.md
quotes:

    /usr/bin/python3 tools/reconcile/scale.py --build build --rows 1000000
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def fill_sql(users, patients, appointments):
    """The SQL that fills the three layers with agreeing rows."""
    return f"""
INSERT INTO "User" SELECT i, 1 + i % 3, 'doc' || i || '@example.org', NULL,
  'F' || i, 'L' || i, 'DOCTOR', 'therapist', NULL, i % 7 <> 0,
  timestamptz '2024-01-01 09:00:00+00',
  timestamptz '2025-01-01 10:00:00+00' + i * interval '1 s'
FROM generate_series(1, {users}) i;
INSERT INTO "Patient" SELECT i, 1 + i % 3, 'F' || i, 'L' || i,
  CASE WHEN i % 5 = 0 THEN NULL ELSE 'M' END,
  date '1950-01-01' + i % 20000, CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END,
  '+7912' || lpad(i::text, 7, '0'), 'p' || i || '@example.org',
  timestamptz '2024-06-01 09:00:00+00',
  timestamptz '2025-01-01 10:00:00.123456+00' + i * interval '1 s'
FROM generate_series(1, {patients}) i;
INSERT INTO "Appointment" SELECT i, 1 + i % 3, 1 + i % {users},
  1 + i % {patients},
  timestamptz '2025-03-01 09:00:00+00' + i * interval '30 min',
  timestamptz '2025-03-01 09:30:00+00' + i * interval '30 min',
  'SCHEDULED', CASE WHEN i % 4 = 0 THEN NULL ELSE 'checkup' END,
  timestamptz '2025-01-01 00:00:00+00', timestamptz '2025-01-01 00:00:00+00'
FROM generate_series(1, {appointments}) i;

INSERT INTO clinicmig.mirror_user (id, clinic_id, email, phone, first_name,
  last_name, role, specialization, license_number, is_active, created_at,
  updated_at, email_norm)
SELECT id, "clinicId", email, phone, "firstName", "lastName", role,
  specialization, "licenseNumber", "isActive", "createdAt", "updatedAt",
  email FROM "User";
INSERT INTO clinicmig.mirror_patient (id, clinic_id, first_name, last_name,
  middle_name, birth_date, gender, phone, email, created_at, updated_at,
  phone_norm, email_norm)
SELECT id, "clinicId", "firstName", "lastName", "middleName", "birthDate",
  gender, phone, email, "createdAt", "updatedAt", phone, email
FROM "Patient";
INSERT INTO clinicmig.mirror_appointment (id, clinic_id, doctor_id,
  patient_id, starts_at, ends_at, status, reason, created_at, updated_at)
SELECT id, "clinicId", "doctorId", "patientId", "startsAt", "endsAt", status,
  reason, "createdAt", "updatedAt" FROM "Appointment";

INSERT INTO v2.global_doctor (id, email, first_name, last_name)
SELECT id, email, "firstName", "lastName" FROM "User";
INSERT INTO v2.clinic_doctor (id, global_doctor_id, clinic_id, is_active)
SELECT id, id, "clinicId", "isActive" FROM "User";
INSERT INTO v2.global_patient (id, first_name, last_name, member_count)
SELECT id, "firstName", "lastName", 1 FROM "Patient";
INSERT INTO v2.clinic_patient (id, global_patient_id, clinic_id, phone, email)
SELECT id, id, "clinicId", phone, email FROM "Patient";
INSERT INTO v2.appointment (id, clinic_id, clinic_doctor_id,
  clinic_patient_id, starts_at, ends_at, status, reason)
SELECT id, "clinicId", "doctorId", "patientId", "startsAt", "endsAt", status,
  reason FROM "Appointment";
ANALYZE;
"""


def _once(build, pg, kafka, *extra):
    """Runs one pass; returns (exit status, seconds, stderr lines)."""
    t0 = time.monotonic()
    r = subprocess.run(
        [os.path.join(build, "tools", "reconcile", "clinicmig-reconcile"),
         "--db-conninfo", pg.conninfo, "--legacy-conninfo", pg.conninfo,
         "-b", kafka.bootstrap, "--once", "--hold-ms", "0"] + list(extra),
        capture_output=True, text=True)
    return r.returncode, time.monotonic() - t0, r.stderr.splitlines()


def _report(what, status, secs, lines):
    print(f"{what}: exit {status}, {secs:.1f} s wall")
    for line in lines:
        m = re.search(r"(pass \d+ \w+: .*)", line)
        if m and "rows scanned" in line:
            print("  " + m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rows", type=int, default=1000000,
                    help="legacy rows in all (default 1000000)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tools", "lib"))
    import psycopg2
    from cmrun import PgServer, Worker, wait_until
    from kafkactl import LocalKafka
    sys.path.insert(0, os.path.join(ROOT, "tools", "gen"))
    import cmgen

    users = max(args.rows // 100, 1)
    patients = (args.rows - users) // 2
    appointments = args.rows - users - patients
    pg = PgServer()
    kafka = LocalKafka(os.path.join(args.build, "tools", "kafka",
                                    "clinicmig-kafka"),
                       {"legacy.public.User": 1, "legacy.public.Patient": 1,
                        "legacy.public.Appointment": 1,
                        "clinicmig.replay": 1, "clinicmig.dlq": 1,
                        "clinicmig.reconciliation": 1},
                       stderr=subprocess.DEVNULL)
    try:
        w = Worker(os.path.join(args.build, "worker", "clinicmig-worker"),
                   pg.conninfo, kafka.bootstrap, "bench", log_dir=pg.dir)
        wait_until("the worker's schema", lambda: pg.query(
            "SELECT to_regclass('v2.appointment') IS NOT NULL")[0][0], 60)
        w.stop()
        conn = psycopg2.connect(pg.conninfo)
        conn.autocommit = True
        cmgen.create_tables(conn)
        t0 = time.monotonic()
        with conn.cursor() as cur:
            cur.execute(fill_sql(users, patients, appointments))
        print(f"filled {users} users, {patients} patients, {appointments} "
              f"appointments (legacy, mirror, v2) in "
              f"{time.monotonic() - t0:.0f} s")
        _report("a full pass, nothing to find",
                *_once(args.build, pg, kafka))
        _report("again (warm cache)", *_once(args.build, pg, kafka))
        with conn.cursor() as cur:
            cur.execute('UPDATE "Patient" SET "lastName" = \'X\''
                        " WHERE id = %s", (patients // 2 + 7,))
        _report("one planted difference", *_once(args.build, pg, kafka))
        conn.close()
    finally:
        kafka.stop()
        pg.destroy()


if __name__ == "__main__":
    main()
