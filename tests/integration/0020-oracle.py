#!/usr/bin/python3
"""0020-oracle: clinicmig-oracle computes f and finds every difference.

A small legacy data set exercises every rule of f (docs/design.md §2.3): doctors
sharing an email across clinics in case/space variants, an unusable email,
a non-DOCTOR user named by an appointment, an ADMIN sharing a doctor's
email, an inactive doctor, a tie on updatedAt; patients linked through
phones written in different human forms, a chain phone-email, an invalid
phone, conflicting birth dates in one component (loose vs strict), a
bridge through an unknown birth date; appointments whose doctor or
patient row does not exist. The v2 rows f gives for it were worked out by
hand, below: the oracle must agree with them (exit 0), then find each
planted difference (exit 1, naming table, id and column) without printing
a value, and fail cleanly (exit 2, one line) when it cannot read.

A larger random data set (30 000 patients) checks speed and agreement
with a second, plain Python computation of f (pairs, not buckets).
"""
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, ROOT, PgServer, check, check_true, done,  # noqa
                    free_port)
from psycopg2.extras import execute_values  # noqa: E402

ORACLE = os.path.join(BUILD, "tools", "oracle", "clinicmig-oracle")

# ---- the legacy data set -------------------------------------------------

# id, clinicId, email, role, firstName, lastName, specialization,
# licenseNumber, isActive, updatedAt
USERS = [
    (1, 1, "doc.a@example.org", "ADMIN", "Adminka", "Adminova", None, None,
     True, "2025-06-01 00:00:00+00"),
    (2, 1, " Doc.A@Example.ORG ", "DOCTOR", "Anna", "Smirnova",
     "neurologist", "L-2", True, "2025-02-01 10:00:00+00"),
    (3, 1, "not-an-email", "DOCTOR", "Oleg", "Ivanov", "surgeon", None,
     True, "2025-01-01 10:00:00+00"),
    (4, 2, "not-an-email", "DOCTOR", "Olga", "Sidorova", "dentist", "L-4",
     True, "2025-01-02 10:00:00+00"),
    (5, 2, "doc.a@example.org", "DOCTOR", "Anna", "Smirnova-K",
     "cardiologist", "L-5", False, "2025-03-01 10:00:00+00"),
    (6, 2, "rec@example.org", "RECEPTIONIST", "Rita", "Kuznetsova", None,
     None, True, "2025-04-01 10:00:00+00"),
    (7, 1, "Rec@Example.org", "DOCTOR", "Roman", "Kuznetsov", "therapist",
     "L-7", True, "2025-01-20 10:00:00+00"),
    (8, 3, "b@example.org", "ADMIN", "Boris", "Belov", None, None, True,
     "2025-01-01 10:00:00+00"),
    (9, 3, "  doc.a@EXAMPLE.org", "DOCTOR", "Anya", "Smirnova",
     "neurologist", None, True, "2025-01-15 10:00:00+00"),
    (10, 1, "c@example.org", "DOCTOR", "Cyril", "Chernov", "oculist", None,
     False, "2025-01-01 10:00:00+00"),
    (11, 2, "e@x@y.org", "DOCTOR", "Egor", "Egorov", None, None, True,
     "2025-01-01 10:00:00+00"),
    # the same instant written in two offsets: the higher id wins
    (12, 1, "tie@example.org", "DOCTOR", "Tanya", "Tikhonova", "ENT",
     "L-12", True, "2025-05-05 05:05:05.123456+00"),
    (13, 2, "TIE@example.org", "DOCTOR", "Tatiana", "Tikhonova", "ENT",
     "L-13", True, "2025-05-05 08:05:05.123456+03"),
]

# id, clinicId, firstName, lastName, middleName, birthDate, gender, phone,
# email, updatedAt
PATIENTS = [
    (1, 1, "Maria", "Ivanova", "Petrovna", "1980-01-01", "F",
     "8 (912) 345-67-89", None, "2025-01-01 10:00:00+00"),
    (2, 2, "Maria", "Ivanova", None, "1980-01-01", "F", "+7 912 345 67 89",
     "maria@example.org", "2025-02-01 10:00:00+00"),
    (3, 1, "Petr", "Petrov", None, "1975-05-05", "M", "345-67-89", None,
     "2025-01-01 10:00:00+00"),
    (4, 3, "Masha", "Ivanova", None, None, "F", "89123456789", None,
     "2025-01-15 10:00:00+00"),
    (5, 3, "M.", "Ivanova-Sidorova", None, "1980-01-01", "F", None,
     " MARIA@example.org ", "2025-03-01 10:00:00+00"),
    (6, 2, "Pavel", "Pavlov", None, "1960-06-06", "M", "345-67-89", None,
     "2025-01-01 10:00:00+00"),
    (7, 1, "Ivan", "Sokolov", None, "1990-01-01", "M", "+7 (916) 111-22-33",
     None, "2025-01-01 10:00:00+00"),
    (8, 2, "Ivan", "Sokolov", "Ivanovich", "1991-02-02", "M",
     "8 916 111 22 33", None, "2025-02-01 10:00:00+00"),
    (10, 1, "Olga", "Orlova", None, "1970-03-03", "F", None,
     "olga@example.org", "2025-01-01 10:00:00+00"),
    (11, 2, "Olga", "Orlova", "Olegovna", None, "F", None,
     "OLGA@example.org", "2025-01-02 10:00:00+00"),
    (12, 3, "Olya", "Orlova", None, "1971-04-04", None, None,
     "olga@example.org\t", "2025-01-03 10:00:00+00"),
    (13, 1, "Kira", "Kotova", None, "1985-01-01", "F", None,
     "k@example.org", "2025-05-05 10:00:00+00"),
    (14, 2, "Kira", "Kotova-B", None, "1985-01-01", "F", None,
     "K@EXAMPLE.ORG", "2025-05-05 10:00:00+00"),
    (15, 3, "Kirill", "Kotov", None, "1986-01-01", "M", None,
     "k@example.org", "2025-01-01 10:00:00+00"),
    (16, 1, "Nina", "Nikitina", None, None, None, None,
     "no-at-sign.example.org", "2025-01-01 10:00:00+00"),
]

# id, clinicId, doctorId, patientId, startsAt, endsAt, status, reason
APPOINTMENTS = [
    (1, 1, 2, 1, "2025-03-01 09:00:00+00", "2025-03-01 09:30:00+00",
     "COMPLETED", "checkup"),
    (2, 2, 6, 2, "2025-03-02 10:00:00+03", "2025-03-02 10:30:00+03",
     "SCHEDULED", None),
    (3, 1, 999, 3, "2025-03-03 12:00:00+00", "2025-03-03 12:15:00+00",
     "CANCELLED", "the doctor's row is gone"),
    (4, 2, 5, 9999, "2025-03-04 08:00:00+00", "2025-03-04 08:20:00+00",
     "NO_SHOW", "the patient's row is gone"),
    (5, 3, 9, 16, "2025-03-05 12:30:00.5+03", "2025-03-05 13:00:00.25+03",
     "SCHEDULED", ""),
    (6, 1, 13, 7, "2025-03-06 09:00:00+00", "2025-03-06 09:45:00+00",
     "COMPLETED", "follow-up"),
]

# ---- f of it, worked out by hand -----------------------------------------

# Doctors: users 2, 5, 9 share doc.a@example.org (user 1 has it too but is
# an ADMIN no appointment names: not a doctor); 5 is the newest. 3 and 4
# have the same unusable email: each alone. 6 is a RECEPTIONIST named by
# appointment 2: a doctor, inactive, grouped with 7 by email; 6 is newer.
# 12 and 13 were updated at the same instant: 13, the higher id, wins.
GLOBAL_DOCTOR = [
    (2, "doc.a@example.org", "Anna", "Smirnova-K", "cardiologist", "L-5"),
    (3, None, "Oleg", "Ivanov", "surgeon", None),
    (4, None, "Olga", "Sidorova", "dentist", "L-4"),
    (6, "rec@example.org", "Rita", "Kuznetsova", None, None),
    (10, "c@example.org", "Cyril", "Chernov", "oculist", None),
    (11, None, "Egor", "Egorov", None, None),
    (12, "tie@example.org", "Tatiana", "Tikhonova", "ENT", "L-13"),
]
CLINIC_DOCTOR = [
    (2, 2, 1, True), (3, 3, 1, True), (4, 4, 2, True), (5, 2, 2, False),
    (6, 6, 2, False), (7, 6, 1, True), (9, 2, 3, True), (10, 10, 1, False),
    (11, 11, 2, True), (12, 12, 1, True), (13, 12, 2, True),
]
# Patients, loose: 1-2-4 share +79123456789 in three forms, 2-5 share
# maria@: one person of four, 5 newest. 3 and 6 have the same invalid
# phone: no key, each alone. 7-8 share +79161112233 (dates differ).
# 10-11-12 share olga@ (11 has no date). 13-14-15 share k@; 13 and 14
# tie on updatedAt: 14 wins. 16's email is unusable: alone.
GLOBAL_PATIENT = [
    (1, "M.", "Ivanova-Sidorova", None, "1980-01-01", "F", 4),
    (3, "Petr", "Petrov", None, "1975-05-05", "M", 1),
    (6, "Pavel", "Pavlov", None, "1960-06-06", "M", 1),
    (7, "Ivan", "Sokolov", "Ivanovich", "1991-02-02", "M", 2),
    (10, "Olya", "Orlova", None, "1971-04-04", None, 3),
    (13, "Kira", "Kotova-B", None, "1985-01-01", "F", 3),
    (16, "Nina", "Nikitina", None, None, None, 1),
]
P1, P2 = "+79123456789", "+79161112233"
CLINIC_PATIENT = [
    (1, 1, 1, P1, None), (2, 1, 2, P1, "maria@example.org"),
    (3, 3, 1, None, None), (4, 1, 3, P1, None),
    (5, 1, 3, None, "maria@example.org"), (6, 6, 2, None, None),
    (7, 7, 1, P2, None), (8, 7, 2, P2, None),
    (10, 10, 1, None, "olga@example.org"),
    (11, 10, 2, None, "olga@example.org"),
    (12, 10, 3, None, "olga@example.org"),
    (13, 13, 1, None, "k@example.org"), (14, 13, 2, None, "k@example.org"),
    (15, 13, 3, None, "k@example.org"), (16, 16, 1, None, None),
]
# Strict: 7 and 8 (1990 vs 1991) split; 13-14 (1985) split from 15
# (1986); 10 and 12 conflict but both link to 11 (no date): one person;
# 1-2-4-5 have no conflict.
GLOBAL_PATIENT_STRICT = [
    (1, "M.", "Ivanova-Sidorova", None, "1980-01-01", "F", 4),
    (3, "Petr", "Petrov", None, "1975-05-05", "M", 1),
    (6, "Pavel", "Pavlov", None, "1960-06-06", "M", 1),
    (7, "Ivan", "Sokolov", None, "1990-01-01", "M", 1),
    (8, "Ivan", "Sokolov", "Ivanovich", "1991-02-02", "M", 1),
    (10, "Olya", "Orlova", None, "1971-04-04", None, 3),
    (13, "Kira", "Kotova-B", None, "1985-01-01", "F", 2),
    (15, "Kirill", "Kotov", None, "1986-01-01", "M", 1),
    (16, "Nina", "Nikitina", None, None, None, 1),
]
CLINIC_PATIENT_STRICT = [
    (8, 8, 2, P2, None) if r[0] == 8 else
    (15, 15, 3, None, "k@example.org") if r[0] == 15 else r
    for r in CLINIC_PATIENT]
# Appointment 3's doctor and 4's patient have no row: NULL links.
APPOINTMENT = [
    (1, 1, 2, 1, "2025-03-01T09:00:00Z", "2025-03-01T09:30:00Z",
     "COMPLETED", "checkup"),
    (2, 2, 6, 2, "2025-03-02T07:00:00Z", "2025-03-02T07:30:00Z",
     "SCHEDULED", None),
    (3, 1, None, 3, "2025-03-03T12:00:00Z", "2025-03-03T12:15:00Z",
     "CANCELLED", "the doctor's row is gone"),
    (4, 2, 5, None, "2025-03-04T08:00:00Z", "2025-03-04T08:20:00Z",
     "NO_SHOW", "the patient's row is gone"),
    (5, 3, 9, 16, "2025-03-05T09:30:00.5Z", "2025-03-05T10:00:00.25Z",
     "SCHEDULED", ""),
    (6, 1, 13, 7, "2025-03-06T09:00:00Z", "2025-03-06T09:45:00Z",
     "COMPLETED", "follow-up"),
]

V2_COLS = {
    "global_doctor": "id, email, first_name, last_name, specialization,"
                     " license_number",
    "clinic_doctor": "id, global_doctor_id, clinic_id, is_active",
    "global_patient": "id, first_name, last_name, middle_name, birth_date,"
                      " gender, member_count",
    "clinic_patient": "id, global_patient_id, clinic_id, phone, email",
    "appointment": "id, clinic_id, clinic_doctor_id, clinic_patient_id,"
                   " starts_at, ends_at, status, reason",
}
LEGACY_COLS = {
    "User": '"id", "clinicId", "email", "role", "firstName", "lastName",'
            ' "specialization", "licenseNumber", "isActive", "updatedAt"',
    "Patient": '"id", "clinicId", "firstName", "lastName", "middleName",'
               ' "birthDate", "gender", "phone", "email", "updatedAt"',
    "Appointment": '"id", "clinicId", "doctorId", "patientId", "startsAt",'
                   ' "endsAt", "status", "reason"',
}


# ---- helpers -------------------------------------------------------------

def sql_file(path, **subst):
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace(f"@{k}@", v)
    return text


def create_legacy(conn, schema):
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema};"
                    f" SET search_path = {schema};"
                    + sql_file("schemas/legacy.sql") +
                    "; RESET search_path")


def create_domain(conn, schema):
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema};" +
                    sql_file("schemas/migrations/0002_domain.sql",
                             v2=schema, cm="clinicmig"))


def load(conn, schema, table, cols, rows):
    with conn.cursor() as cur:
        execute_values(cur, f"INSERT INTO {schema}.{table} ({cols})"
                       " VALUES %s", rows, page_size=5000)


def load_domain(conn, schema, gd, cd, gp, cp, ap):
    for table, rows in (("global_doctor", gd), ("clinic_doctor", cd),
                        ("global_patient", gp), ("clinic_patient", cp),
                        ("appointment", ap)):
        load(conn, schema, table, V2_COLS[table], rows)


def oracle(*args, legacy=None):
    p = subprocess.run([ORACLE, "--legacy", legacy or pg.conninfo]
                       + list(args), capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def table_line(table, expected, found, missing=0, extra=0, differing=0):
    return (f"{table}: {expected} expected, {found} found, {missing} missing,"
            f" {extra} extra, {differing} differing")


def clean_lines():
    return [table_line("global_doctor", 7, 7),
            table_line("clinic_doctor", 11, 11),
            table_line("global_patient", 7, 7),
            table_line("clinic_patient", 15, 15),
            table_line("appointment", 6, 6),
            "oracle: no difference"]


def check_clean(name, *args):
    rc, out, err = oracle(*args)
    check(f"{name}: exit 0", rc, 0)
    check(f"{name}: the report", out.splitlines(), clean_lines())
    check(f"{name}: nothing on stderr", err, "")


def planted(name, do, undo, lines, summary_line, total=1, args=()):
    """Plants a difference, runs the oracle, takes it back."""
    pg.execute(do)
    try:
        rc, out, err = oracle(*args)
    finally:
        pg.execute(undo)
    got = out.splitlines()
    check(f"{name}: exit 1", rc, 1)
    for line in lines:
        check_true(f"{name}: the report says {line.strip()!r}",
                   line in got, out)
    check_true(f"{name}: the table line is {summary_line!r}",
               summary_line in got, out)
    check(f"{name}: the last line", got[-1:],
          [f"oracle: {total} difference" + ("" if total == 1 else "s")])
    return out


# ---- the checks on the small data set ------------------------------------

def plant_each_kind():
    planted("a changed column",
            "UPDATE v2.global_doctor SET last_name = 'Smirnova' WHERE id = 2",
            "UPDATE v2.global_doctor SET last_name = 'Smirnova-K'"
            " WHERE id = 2",
            ["  global_doctor id 2: last_name differs"],
            table_line("global_doctor", 7, 7, differing=1))
    planted("a missing row", "DELETE FROM v2.appointment WHERE id = 3",
            "INSERT INTO v2.appointment (id, clinic_id, clinic_doctor_id,"
            " clinic_patient_id, starts_at, ends_at, status, reason) VALUES"
            " (3, 1, NULL, 3, '2025-03-03T12:00:00Z', '2025-03-03T12:15:00Z',"
            " 'CANCELLED', 'the doctor''s row is gone')",
            ["  appointment id 3: missing"],
            table_line("appointment", 6, 5, missing=1))
    planted("an extra row (a user that is no doctor)",
            "INSERT INTO v2.clinic_doctor VALUES (8, 2, 3, true)",
            "DELETE FROM v2.clinic_doctor WHERE id = 8",
            ["  clinic_doctor id 8: extra"],
            table_line("clinic_doctor", 11, 12, extra=1))
    planted("an extra global_doctor (the ADMIN sharing an email)",
            "INSERT INTO v2.global_doctor (id, email) VALUES"
            " (1, 'doc.a@example.org')",
            "DELETE FROM v2.global_doctor WHERE id = 1",
            ["  global_doctor id 1: extra"],
            table_line("global_doctor", 7, 8, extra=1))
    planted("a wrong global id",
            "UPDATE v2.clinic_doctor SET global_doctor_id = 3 WHERE id = 9",
            "UPDATE v2.clinic_doctor SET global_doctor_id = 2 WHERE id = 9",
            ["  clinic_doctor id 9: global_doctor_id differs"],
            table_line("clinic_doctor", 11, 11, differing=1))
    planted("a wrong member_count",
            "UPDATE v2.global_patient SET member_count = 3 WHERE id = 1",
            "UPDATE v2.global_patient SET member_count = 4 WHERE id = 1",
            ["  global_patient id 1: member_count differs"],
            table_line("global_patient", 7, 7, differing=1))
    planted("a wrong patient link",
            "UPDATE v2.clinic_patient SET global_patient_id = 3 WHERE id = 4",
            "UPDATE v2.clinic_patient SET global_patient_id = 1 WHERE id = 4",
            ["  clinic_patient id 4: global_patient_id differs"],
            table_line("clinic_patient", 15, 15, differing=1))
    planted("a resolved link that f leaves unresolved",
            "UPDATE v2.appointment SET clinic_patient_id = 9999 WHERE id = 4",
            "UPDATE v2.appointment SET clinic_patient_id = NULL WHERE id = 4",
            ["  appointment id 4: clinic_patient_id differs"],
            table_line("appointment", 6, 6, differing=1))
    planted("an unresolved link that f resolves (non-DOCTOR user)",
            "UPDATE v2.appointment SET clinic_doctor_id = NULL WHERE id = 2",
            "UPDATE v2.appointment SET clinic_doctor_id = 6 WHERE id = 2",
            ["  appointment id 2: clinic_doctor_id differs"],
            table_line("appointment", 6, 6, differing=1))


def plant_value_kinds():
    planted("two columns of one row",
            "UPDATE v2.global_patient SET first_name = 'Olga',"
            " birth_date = NULL WHERE id = 10",
            "UPDATE v2.global_patient SET first_name = 'Olya',"
            " birth_date = '1971-04-04' WHERE id = 10",
            ["  global_patient id 10: first_name, birth_date differ"],
            table_line("global_patient", 7, 7, differing=1))
    planted("a timestamp one microsecond off",
            "UPDATE v2.appointment SET starts_at = starts_at"
            " + interval '1 microsecond' WHERE id = 5",
            "UPDATE v2.appointment SET starts_at = starts_at"
            " - interval '1 microsecond' WHERE id = 5",
            ["  appointment id 5: starts_at differs"],
            table_line("appointment", 6, 6, differing=1))
    planted("NULL for an empty reason",
            "UPDATE v2.appointment SET reason = NULL WHERE id = 5",
            "UPDATE v2.appointment SET reason = '' WHERE id = 5",
            ["  appointment id 5: reason differs"],
            table_line("appointment", 6, 6, differing=1))
    planted("an empty specialization for NULL",
            "UPDATE v2.global_doctor SET specialization = '' WHERE id = 6",
            "UPDATE v2.global_doctor SET specialization = NULL WHERE id = 6",
            ["  global_doctor id 6: specialization differs"],
            table_line("global_doctor", 7, 7, differing=1))
    planted("an inactive doctor shown active",
            "UPDATE v2.clinic_doctor SET is_active = true WHERE id = 5",
            "UPDATE v2.clinic_doctor SET is_active = false WHERE id = 5",
            ["  clinic_doctor id 5: is_active differs"],
            table_line("clinic_doctor", 11, 11, differing=1))
    planted("a phone kept as written",
            "UPDATE v2.clinic_patient SET phone = '89123456789' WHERE id = 4",
            f"UPDATE v2.clinic_patient SET phone = '{P1}' WHERE id = 4",
            ["  clinic_patient id 4: phone differs"],
            table_line("clinic_patient", 15, 15, differing=1))
    planted("an email not normalized",
            "UPDATE v2.clinic_patient SET email = ' MARIA@example.org '"
            " WHERE id = 5",
            "UPDATE v2.clinic_patient SET email = 'maria@example.org'"
            " WHERE id = 5",
            ["  clinic_patient id 5: email differs"],
            table_line("clinic_patient", 15, 15, differing=1))


PII_DO = (
    "UPDATE v2.global_doctor SET first_name = 'Zinaida',"
    " email = 'zina@example.org' WHERE id = 2;"
    "UPDATE v2.clinic_patient SET phone = '+79990000001',"
    " email = 'x@example.org' WHERE id = 2;"
    "UPDATE v2.global_patient SET birth_date = '1999-09-09',"
    " last_name = 'Zaytseva' WHERE id = 1;"
    "DELETE FROM v2.clinic_patient WHERE id = 16;"
    "DELETE FROM v2.global_patient WHERE id = 16;"
    "INSERT INTO v2.clinic_patient VALUES (9, 1, 1, '+79995554433',"
    " 'extra@example.org')")
PII_UNDO = (
    "UPDATE v2.global_doctor SET first_name = 'Anna',"
    " email = 'doc.a@example.org' WHERE id = 2;"
    f"UPDATE v2.clinic_patient SET phone = '{P1}',"
    " email = 'maria@example.org' WHERE id = 2;"
    "UPDATE v2.global_patient SET birth_date = '1980-01-01',"
    " last_name = 'Ivanova-Sidorova' WHERE id = 1;"
    "INSERT INTO v2.global_patient (id, first_name, last_name,"
    " member_count) VALUES (16, 'Nina', 'Nikitina', 1);"
    "INSERT INTO v2.clinic_patient (id, global_patient_id, clinic_id)"
    " VALUES (16, 16, 1);"
    "DELETE FROM v2.clinic_patient WHERE id = 9")
PII = ["Anna", "Zinaida", "zina@", "doc.a@", "+7999", "+7912", "79123",
       "maria@", "x@example", "1980-01-01", "1999-09-09", "Zaytseva",
       "Ivanova", "Nina", "Nikitina", "extra@", "+79995554433", "@"]


def check_no_values():
    pg.execute(PII_DO)
    try:
        runs = {"text": oracle(), "json": oracle("--json"),
                "shown": oracle("--show-values"),
                "json shown": oracle("--json", "--show-values")}
    finally:
        pg.execute(PII_UNDO)
    for kind in ("text", "json"):
        rc, out, err = runs[kind]
        check(f"personal data ({kind}): exit 1", rc, 1)
        leaked = [v for v in PII if v in out or v in err]
        check(f"personal data ({kind}): no value in the report", leaked, [])
    rc, out, _ = runs["text"]
    for line in ["  global_doctor id 2: email, first_name differ",
                 "  clinic_patient id 2: phone, email differ",
                 "  clinic_patient id 9: extra",
                 "  global_patient id 1: last_name, birth_date differ",
                 "  global_patient id 16: missing"]:
        check_true(f"personal data: the report says {line.strip()!r}",
                   line in out.splitlines(), out)
    rc, out, _ = runs["shown"]
    for line in ['    first_name: expected "Anna", found "Zinaida"',
                 f'    phone: expected "{P1}", found "+79990000001"',
                 '    last_name: expected "Nikitina"',
                 '    email: found "extra@example.org"',
                 '    birth_date: expected "1980-01-01", found "1999-09-09"']:
        check_true(f"--show-values prints {line.strip()!r}",
                   line in out.splitlines(), out)
    rc, out, _ = runs["json shown"]
    doc = json.loads(out)
    gd = doc["tables"][0]["differences"]
    check("--json --show-values: the values of the differing columns", gd,
          [{"id": 2, "kind": "differs", "columns": ["email", "first_name"],
            "expected": {"email": "doc.a@example.org", "first_name": "Anna"},
            "found": {"email": "zina@example.org",
                      "first_name": "Zinaida"}}])


def check_json():
    pg.execute("UPDATE v2.clinic_doctor SET global_doctor_id = 3"
               " WHERE id = 9; DELETE FROM v2.appointment WHERE id = 6")
    try:
        rc, out, err = oracle("--json")
    finally:
        pg.execute("UPDATE v2.clinic_doctor SET global_doctor_id = 2"
                   " WHERE id = 9; INSERT INTO v2.appointment VALUES (6, 1,"
                   " 13, 7, '2025-03-06T09:00:00Z', '2025-03-06T09:45:00Z',"
                   " 'COMPLETED', 'follow-up')")
    check("--json: exit 1", rc, 1)
    check("--json: one line", len(out.splitlines()), 1)
    doc = json.loads(out)
    check("--json: totals", (doc["differences"], doc["ok"]), (2, False))
    check("--json: settings", (doc["legacy_schema"], doc["domain_schema"],
                               doc["phone_region"], doc["patients_match"]),
          ("public", "v2", "RU", "loose"))
    t = {x["table"]: x for x in doc["tables"]}
    check("--json: tables in order", [x["table"] for x in doc["tables"]],
          ["global_doctor", "clinic_doctor", "global_patient",
           "clinic_patient", "appointment"])
    check("--json: clinic_doctor",
          {k: t["clinic_doctor"][k] for k in t["clinic_doctor"]},
          {"table": "clinic_doctor", "expected": 11, "found": 11,
           "missing": 0, "extra": 0, "differing": 1, "not_shown": 0,
           "differences": [{"id": 9, "kind": "differs",
                            "columns": ["global_doctor_id"]}]})
    check("--json: appointment", (t["appointment"]["missing"],
                                  t["appointment"]["differences"]),
          (1, [{"id": 6, "kind": "missing"}]))
    rc, out, _ = oracle("--json")
    doc = json.loads(out)
    check("--json, clean: exit 0 and ok", (rc, doc["ok"], doc["differences"]),
          (0, True, 0))


def check_max_diffs():
    do = "UPDATE v2.clinic_doctor SET is_active = NOT is_active WHERE id <= 4"
    pg.execute(do)
    try:
        one = oracle("--max-diffs", "1")
        none = oracle("--max-diffs", "0")
        default = oracle()
    finally:
        pg.execute(do)
    listed = [x for x in one[1].splitlines() if x.startswith("  clinic_d")]
    check("--max-diffs 1: the first difference only", listed,
          ["  clinic_doctor id 2: is_active differs"])
    check_true("--max-diffs 1: says how many are not shown",
               "  ... 2 more clinic_doctor differences not shown"
               " (--max-diffs)" in one[1].splitlines(), one[1])
    check("--max-diffs 1: all are counted", one[1].splitlines()[-1],
          "oracle: 3 differences")
    check("--max-diffs 0: none listed",
          [x for x in none[1].splitlines() if x.startswith("  clinic_d")],
          [])
    check("default: all three listed",
          [x for x in default[1].splitlines() if x.startswith("  clinic_d")],
          ["  clinic_doctor id 2: is_active differs",
           "  clinic_doctor id 3: is_active differs",
           "  clinic_doctor id 4: is_active differs"])


def check_strict():
    rc, out, err = oracle("--patients-match", "strict")
    got = out.splitlines()
    check("strict against loose rows: exit 1", rc, 1)
    check("strict against loose rows: what differs",
          [x for x in got if x.startswith("  ") or "patient:" in x],
          [table_line("global_patient", 9, 7, missing=2, differing=2),
           "  global_patient id 7: middle_name, birth_date, member_count"
           " differ",
           "  global_patient id 8: missing",
           "  global_patient id 13: member_count differs",
           "  global_patient id 15: missing",
           table_line("clinic_patient", 15, 15, differing=2),
           "  clinic_patient id 8: global_patient_id differs",
           "  clinic_patient id 15: global_patient_id differs"])
    check("strict against loose rows: total", got[-1:],
          ["oracle: 6 differences"])
    # the strict rows, in another database and schema
    tgt = pg.conninfo.replace("dbname=postgres", "dbname=tgt")
    pg.execute("CREATE DATABASE tgt")
    import psycopg2
    conn = psycopg2.connect(tgt)
    conn.autocommit = True
    create_domain(conn, "v2s")
    load_domain(conn, "v2s", GLOBAL_DOCTOR, CLINIC_DOCTOR,
                GLOBAL_PATIENT_STRICT, CLINIC_PATIENT_STRICT, APPOINTMENT)
    conn.close()
    rc, out, err = oracle("--target", tgt, "--domain-schema", "v2s",
                          "--patients-match", "strict")
    check("strict rows, strict oracle, --target: exit 0", rc, 0)
    check("strict rows, strict oracle: the report", out.splitlines(),
          [table_line("global_doctor", 7, 7),
           table_line("clinic_doctor", 11, 11),
           table_line("global_patient", 9, 9),
           table_line("clinic_patient", 15, 15),
           table_line("appointment", 6, 6), "oracle: no difference"])
    rc, out, err = oracle("--target", tgt, "--domain-schema", "v2s")
    check("strict rows, loose oracle: exit 1", rc, 1)
    check_true("strict rows, loose oracle: 8 is extra",
               "  global_patient id 8: extra" in out.splitlines(), out)
    return tgt


def check_errors(tgt):
    port = free_port()
    bad = (f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
           " password=s3cret-pw connect_timeout=5")
    cases = [
        ("a legacy database that does not answer", [], bad,
         "clinicmig-oracle: could not connect to the legacy database: "),
        ("a target database that does not answer", ["--target", bad], None,
         "clinicmig-oracle: could not connect to the target database: "),
        ("a legacy schema without the tables",
         ["--legacy-schema", "nosuch"], None,
         'clinicmig-oracle: could not read nosuch."User": '),
        ("a domain schema without the tables",
         ["--target", tgt], None,
         "clinicmig-oracle: could not read v2.global_doctor: "),
        ("no --legacy", None, None, "clinicmig-oracle: --legacy is required"),
        ("an unknown option", ["--frobnicate"], None,
         "clinicmig-oracle: unknown option --frobnicate"),
        ("a bad --patients-match", ["--patients-match", "fuzzy"], None,
         "clinicmig-oracle: --patients-match is loose or strict"),
        ("a bad --phone-region", ["--phone-region", "QQ"], None,
         "clinicmig-oracle: unknown phone region"),
        ("a bad --max-diffs", ["--max-diffs", "lots"], None,
         "clinicmig-oracle: --max-diffs wants a whole number"),
        ("a missing value", ["--domain-schema"], None,
         "clinicmig-oracle: --domain-schema needs a value"),
    ]
    for name, args, legacy, prefix in cases:
        if args is None:
            p = subprocess.run([ORACLE], capture_output=True, text=True)
            rc, out, err = p.returncode, p.stdout, p.stderr
        else:
            rc, out, err = oracle(*args, legacy=legacy)
        check(f"{name}: exit 2", rc, 2)
        check(f"{name}: nothing on stdout", out, "")
        check(f"{name}: one line on stderr", len(err.splitlines()), 1)
        check_true(f"{name}: it says why", err.startswith(prefix), err)
        check_true(f"{name}: no password in the message",
                   "s3cret" not in err, err)
    p = subprocess.run([ORACLE, "--help"], capture_output=True, text=True)
    check("--help: exit 0", p.returncode, 0)
    check_true("--help: names every option", all(
        o in p.stdout for o in ["--legacy", "--target", "--legacy-schema",
                                "--domain-schema", "--phone-region",
                                "--patients-match", "--max-diffs",
                                "--show-values", "--json"]), p.stdout)


# ---- a larger random data set, f computed a second way -------------------

class UnionFind:
    def __init__(self, ids):
        self.parent = {i: i for i in ids}

    def find(self, x):
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def big_legacy(rnd, n_users=3000, n_patients=30000, n_appts=30000):
    stamps = [f"2025-{1 + i % 12:02d}-{1 + i % 28:02d} 10:{i % 60:02d}:00+00"
              for i in range(400)]  # few values: many ties

    def variant(e):
        return rnd.choice([e, e.upper(), f"  {e} ", e.capitalize()])

    users = []
    for uid in range(1, n_users + 1):
        e = f"doc{rnd.randrange(900)}@clinic.example"
        users.append((uid, 1 + uid % 7, variant(e) if rnd.random() < 0.9
                      else "broken-address",
                      rnd.choice(["DOCTOR"] * 6 + ["ADMIN", "RECEPTIONIST"]),
                      f"F{uid}", f"L{uid}", rnd.choice([None, "ent", "gp"]),
                      rnd.choice([None, f"LIC{uid}"]), rnd.random() < 0.85,
                      rnd.choice(stamps)))
    patients = []
    for pid in range(1, n_patients + 1):
        phone = None
        r = rnd.random()
        if r < 0.6:
            d = str(1000000 + rnd.randrange(12000))
            phone = rnd.choice([f"+7 912 {d[:3]} {d[3:5]} {d[5:]}",
                                f"8 (912) {d[:3]}-{d[3:5]}-{d[5:]}",
                                f"8912{d}"])
        elif r < 0.7:
            phone = f"{rnd.randrange(100, 999)}-{rnd.randrange(10, 99)}-11"
        email = (variant(f"p{rnd.randrange(10000)}@mail.example")
                 if rnd.random() < 0.4 else None)
        birth = rnd.choice([None, "1980-01-01", "1981-02-02", "1982-03-03"])
        patients.append((pid, 1 + pid % 7, f"F{pid}", f"L{pid}",
                         rnd.choice([None, "M"]), birth,
                         rnd.choice(["F", "M", None]), phone, email,
                         rnd.choice(stamps)))
    appts = [(aid, 1 + aid % 7, rnd.randrange(1, n_users + 200),
              rnd.randrange(1, n_patients + 2000),
              "2025-04-01 10:00:00+00", "2025-04-01 10:30:00+00",
              "SCHEDULED", rnd.choice([None, "r"]))
             for aid in range(1, n_appts + 1)]
    return users, patients, appts


def py_email(e):
    e = e.strip().lower() if e else None
    return e if e and e.count("@") == 1 and not e.startswith("@") \
        and not e.endswith("@") else None


def py_phone(p):
    digits = "".join(c for c in p or "" if c.isdigit())
    if len(digits) == 11 and digits[:4] in ("8912", "7912"):
        return "+7" + digits[1:]
    return None


def newest(rows, upd):
    """The row with the greatest (updatedAt, id); stamps share a format."""
    return max(rows, key=lambda r: (r[upd], r[0]))


def py_doctors(users, appts):
    named = {a[2] for a in appts}
    docs = [u for u in users if u[3] == "DOCTOR" or u[0] in named]
    groups = {}
    for u in docs:
        k = py_email(u[2])
        groups.setdefault(k if k else ("alone", u[0]), []).append(u)
    gd, cd = [], []
    for key, members in groups.items():
        gid = min(u[0] for u in members)
        b = newest(members, 9)
        gd.append((gid, key if isinstance(key, str) else None, b[4], b[5],
                   b[6], b[7]))
        cd += [(u[0], gid, u[1], u[3] == "DOCTOR" and u[8]) for u in members]
    return gd, cd


def py_patients(patients, strict):
    uf = UnionFind([p[0] for p in patients])
    keys = {p[0]: (py_phone(p[7]), py_email(p[8])) for p in patients}
    for which in (0, 1):
        buckets = {}
        for p in patients:
            if keys[p[0]][which]:
                buckets.setdefault(keys[p[0]][which], []).append(p)
        for members in buckets.values():  # every pair, as the spec says
            for i, a in enumerate(members):
                for b in members[i + 1:]:
                    if not strict or not a[5] or not b[5] or a[5] == b[5]:
                        uf.union(a[0], b[0])
    comps = {}
    for p in patients:
        comps.setdefault(uf.find(p[0]), []).append(p)
    gp = []
    for root, members in comps.items():
        b = newest(members, 9)
        gp.append((root, b[2], b[3], b[4], b[5], b[6], len(members)))
    cp = [(p[0], uf.find(p[0]), p[1], keys[p[0]][0], keys[p[0]][1])
          for p in patients]
    return gp, cp


def py_appointments(users, patients, appts):
    uids = {u[0] for u in users}
    pids = {p[0] for p in patients}
    return [(a[0], a[1], a[2] if a[2] in uids else None,
             a[3] if a[3] in pids else None) + a[4:] for a in appts]


def check_big():
    rnd = random.Random(20)
    users, patients, appts = big_legacy(rnd)
    conn = pg.connect()
    create_legacy(conn, "big")
    load(conn, "big", '"User"', LEGACY_COLS["User"], users)
    load(conn, "big", '"Patient"', LEGACY_COLS["Patient"], patients)
    load(conn, "big", '"Appointment"', LEGACY_COLS["Appointment"], appts)
    gd, cd = py_doctors(users, appts)
    ap = py_appointments(users, patients, appts)
    for schema, strict in (("big_v2", False), ("big_v2s", True)):
        gp, cp = py_patients(patients, strict)
        create_domain(conn, schema)
        load_domain(conn, schema, gd, cd, gp, cp, ap)
    conn.close()
    check_true("the large set has merges across keys",
               len(py_patients(patients, False)[0]) < len(patients) * 0.8)
    check_true("strict splits some of them",
               len(py_patients(patients, True)[0]) >
               len(py_patients(patients, False)[0]))
    for schema, match in (("big_v2", "loose"), ("big_v2s", "strict")):
        start = time.monotonic()
        rc, out, err = oracle("--legacy-schema", "big", "--domain-schema",
                              schema, "--patients-match", match)
        took = time.monotonic() - start
        check(f"30 000 patients, {match}: exit 0", rc, 0)
        check(f"30 000 patients, {match}: no difference", out.splitlines()[-1:],
              ["oracle: no difference"])
        check_true(f"30 000 patients, {match}: quick", took < 30,
                   f"{took:.1f} s")
        print(f"# {match}: {took:.2f} s", flush=True)
    rc, out, _ = oracle("--legacy-schema", "big", "--domain-schema",
                        "big_v2s")
    check("30 000 patients, strict rows, loose oracle: exit 1", rc, 1)


# ---- main ----------------------------------------------------------------

pg = PgServer()
try:
    c = pg.connect()
    create_legacy(c, "public")
    create_domain(c, "v2")
    load(c, "public", '"User"', LEGACY_COLS["User"], USERS)
    load(c, "public", '"Patient"', LEGACY_COLS["Patient"], PATIENTS)
    load(c, "public", '"Appointment"', LEGACY_COLS["Appointment"],
         APPOINTMENTS)
    load_domain(c, "v2", GLOBAL_DOCTOR, CLINIC_DOCTOR, GLOBAL_PATIENT,
                CLINIC_PATIENT, APPOINTMENT)
    c.close()
    check_clean("the hand-made rows")
    check_clean("the hand-made rows, --target given",
                "--target", pg.conninfo)
    plant_each_kind()
    plant_value_kinds()
    check_no_values()
    check_json()
    check_max_diffs()
    check_clean("every plant taken back")
    target = check_strict()
    check_errors(target)
    check_big()
finally:
    pg.destroy()
done()
