#!/usr/bin/python3
"""cmgen.py -- the legacy data generator: the seed data set, random
histories applied to a real legacy database, and the Debezium events they
give, written as kcat -J lines.

NOTES
clinicmig-gen (beside this file) is the command line; the tests import this
module. It produces three kinds of data:

- the seed set: the data of the user's first migration report
  (MIGRATION_REPORT.md: 3 clinics, 7 doctors, 20 patients, 43
  appointments), fixed, with the cases that make grouping hard written in:
  one doctor in two clinics under one email written two ways, one person in
  two or three clinics under one phone written in different human forms,
  family phones, people with no contacts, a bare local number, a malformed
  email. --scale K adds K-1 copies with shifted ids, phones and emails.
- a snapshot: Debezium's initial snapshot of the current rows (op r), read
  in one REPEATABLE READ transaction.
- a history: a seeded random walk of real transactions on the legacy
  tables (inserts, updates that merge and split patient components and move
  doctors between email groups, role changes, deletes that leave dangling
  references, references to ids inserted later). Every event is built from
  the row the database returned (RETURNING *), never from what the
  generator meant to write, so the stream is faithful by construction; the
  integration test replays it against the tables to prove it.

Events look as Debezium 2.5's PostgreSQL connector writes them with the
JSON converter (schemas.enable=false) and REPLICA IDENTITY DEFAULT: an
update has no before image, a delete's before image is the key only, and a
delete is followed by a tombstone; or, written through an avroconv.Writer,
as its AvroConverter writes them (EventWriter). source.lsn is the WAL
insert position
read after each statement, kept strictly increasing over the stream;
source.txId is the 32-bit xid of the statement's transaction. Partitions
are those of Kafka's default partitioner (murmur2 of the key bytes), so a
producer that writes each line to its partition places it where Debezium's
Kafka Connect producer would.

Reproducibility: a history depends only on its seed and on the rows in the
database when it starts. Row timestamps come from a simulated clock, never
from now(); two runs on equal databases write equal streams except for
lsn, txId, sequence and the ts_ms / ts values.
"""

import base64
import datetime as dt
import glob
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LEGACY_SQL = os.path.normpath(os.path.join(HERE, "..", "..", "schemas",
                                           "legacy.sql"))
CDC_TABLES = ("User", "Patient", "Appointment")  # what clinicmig consumes
ALL_TABLES = ("Clinic",) + CDC_TABLES
DEBEZIUM_VERSION = "2.5.4.Final"
UTC = dt.timezone.utc
EPOCH_DAY = dt.date(1970, 1, 1)
XID_MOD = 1 << 32

COLUMNS = {
    "Clinic": ("id", "name", "createdAt", "updatedAt"),
    "User": ("id", "clinicId", "email", "phone", "firstName", "lastName",
             "role", "specialization", "licenseNumber", "isActive",
             "createdAt", "updatedAt"),
    "Patient": ("id", "clinicId", "firstName", "lastName", "middleName",
                "birthDate", "gender", "phone", "email", "createdAt",
                "updatedAt"),
    "Appointment": ("id", "clinicId", "doctorId", "patientId", "startsAt",
                    "endsAt", "status", "reason", "createdAt", "updatedAt"),
}


class GenError(Exception):
    """A failure the user must read (bad state, missing tool)."""


# ---- Kafka's default partitioner ------------------------------------------

def murmur2(data):
    """Kafka's Utils.murmur2 (seed 0x9747b28c) of the bytes @data, as the
    signed 32-bit int Java returns."""
    m = 0x5bd1e995
    length = len(data)
    h = (0x9747b28c ^ length) & 0xffffffff
    tail = length - length % 4
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition(key, partitions):
    """The partition Kafka's Java default partitioner (and librdkafka's
    murmur2_random) gives a keyed message: toPositive(murmur2) % N."""
    return (murmur2(key) & 0x7fffffff) % partitions


# ---- Debezium events --------------------------------------------------------

def debezium_value(v):
    """A column value as Debezium's JSON converter writes it: timestamptz as
    ZonedTimestamp (ISO-8601 UTC, microseconds, "Z"), date as
    io.debezium.time.Date (days since the epoch), the rest as is."""
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, dt.date):
        return (v - EPOCH_DAY).days
    return v


def row_image(cols, values):
    """The Debezium row image of one database row."""
    return {c: debezium_value(v) for c, v in zip(cols, values)}


def _dumps(obj):
    # Kafka Connect's JsonConverter writes compact UTF-8 JSON, as kcat does.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def now_ms():
    return int(time.time() * 1000)


class EventWriter:
    """Writes change events as `kcat -C -J` lines to a text stream.

    One line per Kafka message: topic, partition (Kafka's default
    partitioner), offset -1 and broker -1 (not produced yet), the key and
    the value as JSON text; a tombstone has a null payload. With @avro (an
    avroconv.Writer, tools/lib/avroconv.py) the key and the value are in
    Avro as Debezium's AvroConverter writes them, base64 in key_b64 and
    payload_b64, and the partition is that of the Avro key's bytes."""

    def __init__(self, out, partitions=3, prefix="legacy", avro=None):
        if partitions < 1:
            raise GenError("partitions must be at least 1")
        self.out = out
        self.partitions = partitions
        self.prefix = prefix
        self.avro = avro
        self.counts = {}  # (table, op) -> events written

    def _line(self, table, key_id, payload, ts_ms):
        key = _dumps({"id": key_id})
        line = {
            "topic": f"{self.prefix}.public.{table}",
            "partition": partition(key.encode(), self.partitions),
            "offset": -1, "tstype": "create", "ts": ts_ms, "broker": -1,
            "headers": None, "key": key,
            "payload": None if payload is None else _dumps(payload)}
        if self.avro is not None:
            line = self.avro.convert(line)
            line["partition"] = partition(base64.b64decode(line["key_b64"]),
                                          self.partitions)
        self.out.write(_dumps(line) + "\n")

    def change(self, table, op, key_id, before, after, lsn, seq_prev, tx_id,
               source_ts_ms, snapshot="false"):
        """One change event; a delete is followed by its tombstone."""
        ts = max(now_ms(), source_ts_ms)
        self._line(table, key_id, {
            "before": before, "after": after,
            "source": {
                "version": DEBEZIUM_VERSION, "connector": "postgresql",
                "name": self.prefix, "ts_ms": source_ts_ms,
                "snapshot": snapshot, "db": "legacy",
                "sequence": _dumps(
                    [None if seq_prev is None else str(seq_prev), str(lsn)]),
                "schema": "public", "table": table, "txId": tx_id,
                "lsn": lsn, "xmin": None},
            "transaction": None, "op": op, "ts_ms": ts}, ts)
        self.counts[(table, op)] = self.counts.get((table, op), 0) + 1
        if op == "d":
            self._line(table, key_id, None, ts)

    def total(self):
        return sum(self.counts.values())


# ---- the seed data set ------------------------------------------------------

def _t(text):
    """A UTC timestamp from "YYYY-MM-DD HH:MM[:SS[.ffffff]]"."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _d(text):
    return dt.date.fromisoformat(text) if text else None


SEED_CLINICS = [
    (1, "Клиника «Здоровье» на Ленина", _t("2023-01-10 06:00"),
     _t("2023-01-10 06:00")),
    (2, "Медицинский центр «Семейный доктор»", _t("2023-01-12 07:30"),
     _t("2023-06-01 09:15:12.5")),
    (3, "Клиника «Мед+» на Садовой", _t("2023-02-03 08:00"),
     _t("2023-02-03 08:00")),
]

# id, clinicId, email, phone, firstName, lastName, role, specialization,
# licenseNumber, isActive, createdAt, updatedAt. Users 1 and 8 are one
# doctor working in two clinics, her email written two ways: 7 doctors,
# 6 real ones. Volkov (6) is a doctor who has left (isActive false).
SEED_USERS = [
    (1, 1, "Anna.Smirnova@clinic.ru", "+7 (916) 201-33-44", "Анна",
     "Смирнова", "DOCTOR", "терапевт", "77-01-004512", True,
     _t("2023-02-01 06:00"), _t("2024-11-02 09:30:45.25")),
    (2, 1, "i.petrov@clinic.ru", None, "Иван", "Петров", "DOCTOR",
     "кардиолог", "77-01-003318", True, _t("2023-02-01 06:05"),
     _t("2024-03-14 11:02:00.318204")),
    (3, 1, "admin@zdorovie-clinic.ru", "+7 495 100-20-30", "Сергей",
     "Николаев", "ADMIN", None, None, True, _t("2023-01-10 06:00"),
     _t("2023-01-10 06:00")),
    (4, 1, "reception@zdorovie-clinic.ru", None, "Мария", "Орлова",
     "RECEPTIONIST", None, None, True, _t("2023-01-15 07:00"),
     _t("2024-09-01 05:45:10.000912")),
    (5, 2, "e.kuznetsova@semdoc.ru", "8 (925) 410-12-12", "Елена",
     "Кузнецова", "DOCTOR", "педиатр", "50-02-011207", True,
     _t("2023-01-20 07:00"), _t("2024-12-20 13:14:15.161718")),
    (6, 2, "D.Volkov@semdoc.ru", None, "Дмитрий", "Волков", "DOCTOR",
     "невролог", "50-02-009876", False, _t("2023-01-20 07:10"),
     _t("2025-01-15 10:00:00.5")),
    (7, 2, "t.lebedeva@semdoc.ru", None, "Татьяна", "Лебедева",
     "RECEPTIONIST", None, None, True, _t("2023-01-12 07:30"),
     _t("2023-01-12 07:30")),
    (8, 3, " anna.smirnova@clinic.ru", "+7 (916) 201-33-44", "Анна",
     "Смирнова", "DOCTOR", "терапевт", "77-01-004512", True,
     _t("2024-04-01 06:00"), _t("2024-04-01 06:00")),
    (9, 3, "o.morozova@medplus.ru", None, "Ольга", "Морозова", "DOCTOR",
     "гинеколог", "77-03-002741", True, _t("2023-02-03 08:10"),
     _t("2024-07-07 07:07:07.070707")),
    (10, 3, "a.sokolov@medplus.ru", "89261234567", "Алексей", "Соколов",
     "DOCTOR", "хирург", "77-03-005530", True, _t("2023-02-03 08:20"),
     _t("2024-10-10 12:00:00.000001")),
    (11, 3, "admin@medplus.ru", None, "Павел", "Фёдоров", "ADMIN", None,
     None, True, _t("2023-02-03 08:00"), _t("2023-02-03 08:00")),
]

# id, clinicId, firstName, lastName, middleName, birthDate, gender, phone,
# email (createdAt/updatedAt are derived from the id). The intended
# components (docs/design.md §2.3, phones parsed for region RU):
#   {1, 8, 15}  one man in three clinics, one phone in three forms
#   {2, 16}     one woman in two clinics, one email in two spellings
#   {3, 4, 10}  a family phone (3, 4) and 4's email again in clinic 2 (10)
#   {9, 17}     phone and email both, written differently
#   {11, 12}    a family phone (father and daughter)
#   5, 7, 13, 14, 18 alone; 6 and 19 alone (the same bare local number,
#   which gives no key); 20 alone (a malformed email)
# so 13 global patients; with patients.match = strict, 3-4 and 11-12 have
# conflicting birth dates and split: 15.
SEED_PATIENTS = [
    (1, 1, "Иван", "Иванов", "Иванович", "1980-03-15", "M",
     "8 (912) 345-67-89", None),
    (2, 1, "Мария", "Козлова", "Петровна", "1992-07-02", "F",
     "+7 (903) 123-45-67", "maria.kozlova@mail.ru"),
    (3, 1, "Пётр", "Сидоров", "Алексеевич", "1975-11-20", "M",
     "8 916 555-12-34", "p.sidorov@yandex.ru"),
    (4, 1, "Ольга", "Сидорова", "Викторовна", "1978-01-09", "F",
     "+79165551234", "olga.sidorova@yandex.ru"),
    (5, 1, "Артём", "Новиков", "Сергеевич", "2015-05-30", "M", None, None),
    (6, 1, "Екатерина", "Павлова", "Андреевна", "1988-09-12", "F",
     "345-67-89", None),
    (7, 1, "Андрей", "Михайлов", "Николаевич", "1965-12-01", "M",
     "+7 985 222 33 44", "mikhailov.an@gmail.com"),
    (8, 2, "Иван", "Иванов", "Иванович", "1980-03-15", "M",
     "+7 912 345 67 89", None),
    (9, 2, "Наталья", "Егорова", "Игоревна", "1990-04-18", "F",
     "89031112233", "n.egorova@mail.ru"),
    (10, 2, "Ольга", "Сидорова", "Викторовна", "1978-01-09", "F", None,
     "OLGA.SIDOROVA@YANDEX.RU "),
    (11, 2, "Алина", "Фёдорова", "Дмитриевна", "2001-08-25", "F",
     "8-926-777-88-99", None),
    (12, 2, "Дмитрий", "Фёдоров", "Олегович", "1972-02-14", "M",
     "+7 926 777-88-99", "d.fedorov@list.ru"),
    (13, 2, "Николай", "Васильев", "Петрович", "1958-06-06", "M",
     "(495) 123-45-67", None),
    (14, 2, "Светлана", "Зайцева", "Юрьевна", None, "F", None,
     "zaytseva.s@mail.ru"),
    (15, 3, "Иван", "Иванов", "Иванович", "1980-03-15", "M", "89123456789",
     "ivanov.ii@mail.ru"),
    (16, 3, "Мария", "Козлова", "Петровна", None, "F", None,
     " Maria.Kozlova@Mail.RU "),
    (17, 3, "Наталья", "Егорова", "Игоревна", "1990-04-18", "F",
     "8 (903) 111-22-33", "N.Egorova@mail.ru"),
    (18, 3, "Константин", "Белов", "Сергеевич", "1995-03-03", "M",
     "+7 999 000 11 22", "k.belov@gmail.com"),
    (19, 3, "Екатерина", "Павлова", "Андреевна", "1988-09-12", "F",
     "345-67-89", None),
    (20, 3, "Ирина", "Новикова", "Владимировна", None, "F", None,
     "novikova.irina@"),
]

SEED_APPOINTMENTS = 43
REPORT_DAY = _t("2025-01-22 00:00")  # the report's date: before it, past
PAST_STATUSES = ("COMPLETED", "COMPLETED", "CANCELLED", "COMPLETED",
                 "NO_SHOW", "COMPLETED")
REASONS = ("Плановый осмотр", None, "Боли в груди", "Повторный приём",
           "Головная боль", None, "Консультация по анализам",
           "Температура, кашель", "Профилактический осмотр", None,
           "Повышенное давление", "Боль в спине", "Справка для бассейна")


def _seed_appointments(users, patients):
    """The 43 appointments: a fixed pattern over the clinics, each with a
    doctor and a patient of its own clinic; past ones completed, cancelled
    or missed, later ones scheduled; some without a reason."""
    docs = {c: [u[0] for u in users if u[1] == c and u[6] == "DOCTOR"]
            for c in (1, 2, 3)}
    pats = {c: [p[0] for p in patients if p[1] == c] for c in (1, 2, 3)}
    rows = []
    for i in range(SEED_APPOINTMENTS):
        clinic, k = i % 3 + 1, i // 3
        start = _t("2025-01-09 06:00") + dt.timedelta(
            days=2 * k + clinic - 1, hours=(i * 7) % 9,
            minutes=30 * (k % 2))
        end = start + dt.timedelta(minutes=30 + 15 * (i % 2))
        created = start - dt.timedelta(days=3 + i % 10, hours=2,
                                       microseconds=(i * 137911) % 10**6)
        if start < REPORT_DAY:
            status = PAST_STATUSES[i % len(PAST_STATUSES)]
            updated = end + dt.timedelta(minutes=5 + i)
        else:
            status = "CANCELLED" if i % 7 == 3 else "SCHEDULED"
            updated = created + dt.timedelta(
                days=1 if status == "CANCELLED" else 0)
        rows.append((i + 1, clinic, docs[clinic][k % len(docs[clinic])],
                     pats[clinic][(k * 5) % len(pats[clinic])], start, end,
                     status, REASONS[i % len(REASONS)], created, updated))
    return rows


def _shift_phone(text, r):
    """Copy r of a phone: its national digits 4-6 moved by 37 * r (mod
    1000), keeping the written form; a bare local number stays local."""
    if text is None or r == 0:
        return text
    chars = list(text)
    digits = [i for i, c in enumerate(chars) if c.isdigit()]
    if len(digits) < 7:
        return text
    pos = digits[-7:-4]
    val = (int("".join(chars[i] for i in pos)) + 37 * r) % 1000
    for i, c in zip(pos, f"{val:03d}"):
        chars[i] = c
    return "".join(chars)


def _shift_email(text, r):
    """Copy r of an email: ".r" before the '@', spelling kept."""
    if text is None or r == 0:
        return text
    at = text.find("@")
    return text + f".{r}" if at < 0 else text[:at] + f".{r}" + text[at:]


def seed_rows(scale=1):
    """{table: [rows in column order]} of the seed set times @scale: copy r
    has its ids and clinic ids moved past copy r-1's, its phones and emails
    shifted so that copies never group together."""
    if scale < 1:
        raise GenError("scale must be at least 1")
    patients = [p[:5] + (_d(p[5]),) + p[6:] + (
        _t("2023-03-01 07:00") + dt.timedelta(days=11 * p[0], minutes=p[0],
                                              microseconds=p[0] * 40123),
        _t("2024-06-01 07:00") + dt.timedelta(days=7 * p[0], seconds=p[0],
                                              microseconds=p[0] * 7001))
        for p in SEED_PATIENTS]
    appts = _seed_appointments(SEED_USERS, SEED_PATIENTS)
    nc, nu, np_, na = (len(SEED_CLINICS), len(SEED_USERS), len(patients),
                       len(appts))
    out = {t: [] for t in ALL_TABLES}
    for r in range(scale):
        out["Clinic"] += [(c[0] + r * nc, c[1] + (f" ({r + 1})" if r else ""))
                          + c[2:] for c in SEED_CLINICS]
        out["User"] += [(u[0] + r * nu, u[1] + r * nc, _shift_email(u[2], r),
                         _shift_phone(u[3], r)) + u[4:] for u in SEED_USERS]
        out["Patient"] += [(p[0] + r * np_, p[1] + r * nc) + p[2:7] + (
            _shift_phone(p[7], r), _shift_email(p[8], r)) + p[9:]
            for p in patients]
        out["Appointment"] += [(a[0] + r * na, a[1] + r * nc, a[2] + r * nu,
                                a[3] + r * np_) + a[4:] for a in appts]
    return out


def create_tables(conn):
    """Runs schemas/legacy.sql (CREATE TABLE IF NOT EXISTS)."""
    with open(LEGACY_SQL, encoding="utf-8") as f:
        sql = f.read()
    with conn.cursor() as cur:
        cur.execute(sql)


def legacy_row_count(conn):
    """Rows in the four legacy tables (0 if they do not exist)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname ="
                    " 'public' AND tablename = ANY(%s)", (list(ALL_TABLES),))
        if cur.fetchone()[0] < len(ALL_TABLES):
            return 0
        cur.execute("SELECT " + " + ".join(
            f'(SELECT count(*) FROM "{t}")' for t in ALL_TABLES))
        return cur.fetchone()[0]


def _q(name):
    return '"' + name + '"'


def seed(conn, scale=1):
    """Creates the legacy tables and loads the seed set in one transaction;
    refuses tables that already hold rows. Returns the summary line."""
    create_tables(conn)
    if legacy_row_count(conn):
        conn.rollback()
        raise GenError("the legacy tables already hold rows; seed needs"
                       " empty tables")
    rows = seed_rows(scale)
    with conn.cursor() as cur:
        for table in ALL_TABLES:
            cols = COLUMNS[table]
            cur.executemany(
                f'INSERT INTO "{table}" ({", ".join(map(_q, cols))})'
                f' VALUES ({", ".join(["%s"] * len(cols))})', rows[table])
    conn.commit()
    doctors = sum(1 for u in rows["User"] if u[6] == "DOCTOR")
    return (f"seeded: {len(rows['Clinic'])} clinics, {len(rows['User'])}"
            f" users ({doctors} doctors), {len(rows['Patient'])} patients,"
            f" {len(rows['Appointment'])} appointments")


# ---- snapshot ---------------------------------------------------------------

def snapshot(conn, writer):
    """Debezium's initial snapshot of User, Patient and Appointment: every
    row as an op "r" event, read in one REPEATABLE READ transaction whose
    WAL position and xid every event carries; the last event says
    snapshot "last". Must be called before @conn's first query. Returns
    the snapshot's lsn."""
    conn.set_session(isolation_level="REPEATABLE READ")
    rows = []
    with conn.cursor() as cur:
        cur.execute("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint,"
                    " txid_current() %% %s", (XID_MOD,))
        lsn, tx_id = cur.fetchone()
        ts = now_ms()
        for table in CDC_TABLES:
            cur.execute(f'SELECT * FROM "{table}" ORDER BY id')
            cols = [d.name for d in cur.description]
            rows += [(table, row_image(cols, r)) for r in cur.fetchall()]
    conn.commit()
    for i, (table, img) in enumerate(rows):
        writer.change(table, "r", img["id"], None, img, lsn, None, tx_id,
                      ts, "last" if i == len(rows) - 1 else "true")
    return lsn


# ---- history ----------------------------------------------------------------

MALE_FIRST = (("Александр", "aleksandr"), ("Сергей", "sergey"),
              ("Дмитрий", "dmitry"), ("Андрей", "andrey"),
              ("Алексей", "aleksey"), ("Максим", "maksim"),
              ("Евгений", "evgeny"), ("Михаил", "mikhail"),
              ("Николай", "nikolay"), ("Игорь", "igor"), ("Роман", "roman"),
              ("Павел", "pavel"), ("Владимир", "vladimir"),
              ("Артём", "artem"), ("Илья", "ilya"))
FEMALE_FIRST = (("Елена", "elena"), ("Ольга", "olga"),
                ("Наталья", "natalya"), ("Татьяна", "tatyana"),
                ("Ирина", "irina"), ("Светлана", "svetlana"),
                ("Анна", "anna"), ("Мария", "maria"),
                ("Екатерина", "ekaterina"), ("Юлия", "yulia"),
                ("Анастасия", "anastasia"), ("Дарья", "darya"),
                ("Ксения", "ksenia"), ("Виктория", "viktoria"),
                ("Полина", "polina"))
LAST_NAMES = (("Иванов", "ivanov"), ("Смирнов", "smirnov"),
              ("Кузнецов", "kuznetsov"), ("Попов", "popov"),
              ("Васильев", "vasilyev"), ("Петров", "petrov"),
              ("Соколов", "sokolov"), ("Михайлов", "mikhailov"),
              ("Новиков", "novikov"), ("Фёдоров", "fedorov"),
              ("Морозов", "morozov"), ("Волков", "volkov"),
              ("Алексеев", "alekseev"), ("Лебедев", "lebedev"),
              ("Семёнов", "semenov"), ("Егоров", "egorov"),
              ("Павлов", "pavlov"), ("Козлов", "kozlov"),
              ("Степанов", "stepanov"), ("Николаев", "nikolaev"),
              ("Орлов", "orlov"), ("Андреев", "andreev"),
              ("Макаров", "makarov"), ("Никитин", "nikitin"),
              ("Захаров", "zakharov"), ("Зайцев", "zaytsev"),
              ("Соловьёв", "solovyev"), ("Борисов", "borisov"),
              ("Яковлев", "yakovlev"), ("Григорьев", "grigoryev"))
PATRONYMICS = ("Александров", "Сергеев", "Дмитриев", "Андреев", "Алексеев",
               "Михайлов", "Николаев", "Игорев", "Петров", "Владимиров")
SPECIALIZATIONS = ("терапевт", "кардиолог", "педиатр", "невролог",
                   "гинеколог", "хирург", "офтальмолог", "эндокринолог",
                   "оториноларинголог", "дерматолог", "уролог",
                   "травматолог-ортопед")
MAIL_DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "list.ru", "bk.ru",
                "inbox.ru", "rambler.ru")
STAFF_DOMAINS = ("clinic.ru", "semdoc.ru", "medplus.ru", "zdorovie-clinic.ru")
# The human forms of one phone number; N is its 10 national digits.
PHONE_FORMS = ("8 ({0}) {1}-{2}-{3}", "+7 {0} {1} {2} {3}", "8{0}{1}{2}{3}",
               "+7{0}{1}{2}{3}", "8 {0} {1}-{2}-{3}", "8-{0}-{1}-{2}-{3}",
               "+7 ({0}) {1}-{2}-{3}", "({0}) {1}-{2}-{3}",
               "+7 {0} {1}-{2}-{3}", "8({0}){1}{2}{3}")

# (operation, weight): inserts, updates, deletes.
OPERATIONS = (
    ("insert_patient", 9), ("insert_doctor", 3), ("insert_staff", 1),
    ("insert_appointment", 12),
    ("patient_phone", 9), ("patient_email", 5), ("patient_profile", 4),
    ("doctor_email", 5), ("user_role", 3), ("user_active", 3),
    ("user_profile", 2), ("appointment_move", 5), ("appointment_status", 6),
    ("delete_patient", 3), ("delete_user", 2), ("delete_appointment", 3),
)

# Changes that keep every row, every doctor and every doctor group: the
# demo's live traffic, under which the report's counts stay those of the
# seed set (patients' contacts still change, so their groups may too).
UPDATES_ONLY = ("patient_phone", "patient_email", "patient_profile",
                "user_active", "user_profile", "appointment_status")


def national_number(phone):
    """The 10 national digits of a Russian phone in any human form, or None
    (no phone, a bare local number, anything else)."""
    if phone is None:
        return None
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 11 and digits[0] in "78":
        return digits[1:]
    return digits if len(digits) == 10 else None


class IdPool:
    """A set of ids with O(1) add, remove and a seeded random choice; its
    order depends only on the operations applied, so choices reproduce."""

    def __init__(self, ids=()):
        self.ids = []
        self.pos = {}
        for i in ids:
            self.add(i)

    def __len__(self):
        return len(self.ids)

    def __contains__(self, i):
        return i in self.pos

    def add(self, i):
        if i not in self.pos:
            self.pos[i] = len(self.ids)
            self.ids.append(i)

    def remove(self, i):
        at = self.pos.pop(i, None)
        if at is None:
            return
        last = self.ids.pop()
        if at < len(self.ids):
            self.ids[at] = last
            self.pos[last] = at

    def choice(self, rnd):
        return self.ids[rnd.randrange(len(self.ids))] if self.ids else None


class History:
    """A seeded random history applied to the legacy tables, one real
    transaction per step, each change written as a Debezium event after
    its transaction commits.

    The generator keeps a model of the rows (loaded once, then updated
    from the rows the database returns) to choose what to change; the
    events come from the database's own row images."""

    def __init__(self, conn, seed, writer, ops=None):
        self.conn = conn
        self.ops = [(op, w) for op, w in OPERATIONS if ops is None or op in ops]
        self.rnd = random.Random(seed)
        self.writer = writer
        self.rows = {t: {} for t in CDC_TABLES}
        self.pool = {t: IdPool() for t in CDC_TABLES}
        self.doctors = IdPool()
        self.next_id = {}
        self.pending = {"User": [], "Patient": []}  # named, not inserted
        self.gone = {"User": [], "Patient": []}     # deleted ids
        self.clinics = []
        self.clock = None
        self.last_lsn = 0
        self.steps = 0
        self._events = []
        self._load()

    # -- the model -------------------------------------------------------

    def _load(self):
        """Reads every row; finds the next ids, the ids appointments name
        that do not exist (below the highest id: deleted, dangling; above
        it: to be inserted later) and where the simulated clock starts."""
        latest = _t("2025-01-22 09:00")
        with self.conn.cursor() as cur:
            for table in CDC_TABLES:
                cur.execute(f'SELECT * FROM "{table}" ORDER BY id')
                cols = [d.name for d in cur.description]
                for values in cur.fetchall():
                    row = dict(zip(cols, values))
                    self._remember(table, row)
                    latest = max(latest, row["updatedAt"], row["createdAt"])
            cur.execute('SELECT id FROM "Clinic" ORDER BY id')
            self.clinics = [r[0] for r in cur.fetchall()]
            cur.execute('SELECT coalesce(max("doctorId"), 0),'
                        ' coalesce(max("patientId"), 0),'
                        ' coalesce(max(id), 0) FROM "Appointment"')
            max_doc, max_pat, max_appt = cur.fetchone()
        self.conn.commit()
        if not self.clinics:
            self.clinics = sorted({r["clinicId"] for t in CDC_TABLES
                                   for r in self.rows[t].values()}) or [1]
        self.clock = latest.astimezone(UTC) + dt.timedelta(hours=1)
        for table, column, top in (("User", "doctorId", max_doc),
                                   ("Patient", "patientId", max_pat)):
            highest = max(self.rows[table], default=0)
            named = sorted({a[column] for a in
                            self.rows["Appointment"].values()}
                           - set(self.rows[table]))
            self.gone[table] = [i for i in named if i < highest]
            self.pending[table] = [i for i in named if i > highest]
            self.next_id[table] = max(highest, top) + 1
        self.next_id["Appointment"] = max_appt + 1

    def _remember(self, table, row):
        self.rows[table][row["id"]] = row
        self.pool[table].add(row["id"])
        if table == "User":
            if row["role"] == "DOCTOR":
                self.doctors.add(row["id"])
            else:
                self.doctors.remove(row["id"])

    def _forget(self, table, key):
        del self.rows[table][key]
        self.pool[table].remove(key)
        if table == "User":
            self.doctors.remove(key)
        if table in self.gone:
            self.gone[table].append(key)

    # -- one step: one transaction ---------------------------------------

    def run(self, steps):
        for _ in range(steps):
            self.step()

    def step(self):
        """One transaction of 1-3 changes; its events are written after it
        commits, so the stream is in commit order."""
        rnd = self.rnd
        names = [op for op, _ in self.ops]
        weights = [w for _, w in self.ops]
        with self.conn.cursor() as cur:
            cur.execute("SELECT txid_current() %% %s, (pg_current_wal_insert"
                        "_lsn() - '0/0'::pg_lsn)::bigint", (XID_MOD,))
            tx_id, start_lsn = cur.fetchone()
        self.clock += dt.timedelta(seconds=rnd.randint(5, 900),
                                   microseconds=rnd.randrange(10**6))
        self._events = []
        want = rnd.randint(1, 3)
        while len(self._events) < want:
            op = rnd.choices(names, weights)[0]
            getattr(self, "_op_" + op)()
        self.conn.commit()
        seq_prev = min(start_lsn, self._events[0][3])
        for table, op, key, lsn, ts, after in self._events:
            self.writer.change(table, op, key, {"id": key} if op == "d"
                               else None, after, lsn, seq_prev, tx_id, ts)
        self.steps += 1

    def _now(self):
        """The simulated application clock, a little later at each call."""
        self.clock += dt.timedelta(microseconds=self.rnd.randrange(1000,
                                                                   400000))
        return self.clock

    def _run(self, sql, args, table, op):
        """Runs one statement ending in RETURNING *, reads the WAL insert
        position after it, updates the model and queues the event."""
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            cols = [d.name for d in cur.description]
            values = cur.fetchone()
            if values is None:
                raise GenError(f"{op} on \"{table}\" changed no row: the"
                               " legacy tables changed under the generator")
            row = dict(zip(cols, values))
            cur.execute("SELECT (pg_current_wal_insert_lsn()"
                        " - '0/0'::pg_lsn)::bigint")
            lsn = max(cur.fetchone()[0], self.last_lsn + 1)
        self.last_lsn = lsn
        if op == "d":
            self._forget(table, row["id"])
            after = None
        else:
            self._remember(table, row)
            after = row_image(cols, values)
        self._events.append((table, op, row["id"], lsn, now_ms(), after))
        return row

    def _insert(self, table, row):
        cols = list(row)
        return self._run(
            f'INSERT INTO "{table}" ({", ".join(map(_q, cols))}) VALUES'
            f' ({", ".join(["%s"] * len(cols))}) RETURNING *',
            [row[c] for c in cols], table, "c")

    def _update(self, table, key, changes):
        """Updates some columns; updatedAt moves, as Prisma's @updatedAt."""
        changes = dict(changes, updatedAt=self._now())
        sets = ", ".join(f"{_q(c)} = %s" for c in changes)
        return self._run(f'UPDATE "{table}" SET {sets} WHERE id = %s'
                         ' RETURNING *', list(changes.values()) + [key],
                         table, "u")

    def _delete(self, table, key):
        return self._run(f'DELETE FROM "{table}" WHERE id = %s RETURNING *',
                         [key], table, "d")

    # -- choosing values -------------------------------------------------

    def _take_id(self, table):
        """A new id: mostly one an appointment already names (it arrived
        before its doctor or patient), else the next free one."""
        pending = self.pending.get(table)
        if pending and self.rnd.random() < 0.7:
            return pending.pop(0)
        key = self.next_id[table]
        self.next_id[table] += 1
        return key

    def _reference(self, table):
        """An id for an appointment to name: mostly an existing row (a
        doctor, for users), sometimes a deleted one (dangling), sometimes
        one not inserted yet."""
        r = self.rnd.random()
        pool = self.doctors if table == "User" else self.pool[table]
        if r < 0.80 and len(pool):
            return pool.choice(self.rnd)
        if r < 0.86 and len(self.pool[table]):
            return self.pool[table].choice(self.rnd)
        if r < 0.92 and self.gone[table]:
            return self.rnd.choice(self.gone[table])
        key = self.next_id[table]
        self.next_id[table] += 1
        self.pending[table].append(key)
        return key

    def _pick(self, table, test=None, tries=8):
        """A random existing row passing @test, or None."""
        for _ in range(tries):
            key = self.pool[table].choice(self.rnd)
            if key is None:
                return None
            if test is None or test(self.rows[table][key]):
                return self.rows[table][key]
        return None

    def _person(self, gender=None):
        """(gender, (first, latin), (last, latin), patronymic)."""
        rnd = self.rnd
        gender = gender or rnd.choice("MF")
        first = rnd.choice(MALE_FIRST if gender == "M" else FEMALE_FIRST)
        last = rnd.choice(LAST_NAMES)
        middle = rnd.choice(PATRONYMICS)
        if gender == "F":
            return gender, first, (last[0] + "а", last[1] + "a"), \
                middle + "на"
        return gender, first, last, middle + "ич"

    def _write_phone(self, national, avoid=None):
        """@national in a random human form, unlike @avoid if it can be."""
        parts = (national[:3], national[3:6], national[6:8], national[8:])
        text = avoid
        for _ in range(4):
            text = self.rnd.choice(PHONE_FORMS).format(*parts)
            if text != avoid:
                break
        return text

    def _fresh_national(self):
        """A new valid number: a mobile 9XX, or a Moscow 495 line."""
        rnd = self.rnd
        if rnd.random() < 0.85:
            return "9" + f"{rnd.randrange(10**9):09d}"
        return "495" + f"{rnd.randrange(10**7):07d}"

    def _local_phone(self):
        """A bare local number: no region code, so no phone key."""
        rnd = self.rnd
        return (f"{rnd.randrange(100, 1000)}-{rnd.randrange(100):02d}-"
                f"{rnd.randrange(100):02d}")

    def _respell_email(self, email):
        """@email as another person typed it: case and stray spaces."""
        base = email.strip()
        local, at, domain = base.partition("@")
        title = ".".join(p.capitalize() for p in local.lower().split("."))
        forms = (base.lower(), base.upper(), " " + base, base + " ",
                 title + at + domain.lower(), "  " + base.lower() + " ")
        text = email
        for _ in range(4):
            text = self.rnd.choice(forms)
            if text != email:
                break
        return text

    def _fresh_email(self, first_lat, last_lat, domains=MAIL_DOMAINS):
        rnd = self.rnd
        local = rnd.choice((f"{first_lat[0]}.{last_lat}",
                            f"{first_lat}.{last_lat}",
                            f"{last_lat}.{first_lat[0]}",
                            f"{last_lat}{rnd.randrange(10, 100)}"))
        email = f"{local}@{rnd.choice(domains)}"
        return self._respell_email(email) if rnd.random() < 0.3 else email

    def _bad_email(self, email):
        """An email with no usable key: no '@', two, or nothing after."""
        local = email.strip().split("@")[0] or "x"
        return self.rnd.choice((local, f"{local}@", f"{local}@@mail.ru",
                                f"{local} mail.ru"))

    def _other_phone(self, not_id=None):
        """Another patient's phone, for a merge or a family phone."""
        row = self._pick("Patient", lambda p: p["id"] != not_id and
                         national_number(p["phone"]) is not None)
        return row and self._write_phone(national_number(row["phone"]),
                                         row["phone"])

    def _other_email(self, table, not_id=None, doctors_only=False):
        def usable(r):
            return (r["id"] != not_id and r["email"] and "@" in r["email"]
                    and (not doctors_only or r["role"] == "DOCTOR"))
        row = self._pick(table, usable)
        return row and self._respell_email(row["email"])

    def _birth_date(self):
        return dt.date(1940, 1, 1) + dt.timedelta(
            days=self.rnd.randrange(80 * 365))

    def _slot(self):
        """An appointment time: -20..+45 days around the clock, in clinic
        hours (08:00-17:45 Moscow time), 15-60 minutes long."""
        rnd = self.rnd
        day = self.clock.date() + dt.timedelta(days=rnd.randint(-20, 45))
        start = dt.datetime(day.year, day.month, day.day, rnd.randint(5, 14),
                            rnd.choice((0, 15, 30, 45)), tzinfo=UTC)
        return start, start + dt.timedelta(
            minutes=rnd.choice((15, 30, 30, 45, 60)))

    def _status_for(self, start):
        if start < self.clock:
            return self.rnd.choices(("COMPLETED", "CANCELLED", "NO_SHOW"),
                                    (7, 2, 1))[0]
        return "CANCELLED" if self.rnd.random() < 0.1 else "SCHEDULED"

    # -- inserts ---------------------------------------------------------

    def _op_insert_patient(self):
        """A new patient: sometimes a person already known in another
        clinic (the same phone in another form, the same email spelled
        differently), else a new person; contacts may be shared (family),
        fresh, local-only or missing."""
        rnd = self.rnd
        now = self._now()
        known = self._pick("Patient") if rnd.random() < 0.25 else None
        if known:
            phone = known["phone"]
            nat = national_number(phone)
            row = {k: known[k] for k in ("firstName", "lastName",
                                         "middleName", "birthDate", "gender")}
            row["phone"] = self._write_phone(nat, phone) if nat else phone
            row["email"] = known["email"] and self._respell_email(
                known["email"])
            others = [c for c in self.clinics if c != known["clinicId"]]
            clinic = rnd.choice(others or self.clinics)
        else:
            gender, first, last, middle = self._person()
            r = rnd.random()
            phone = (self._other_phone() if r < 0.2 else None) or (
                self._write_phone(self._fresh_national()) if r < 0.6 else
                self._local_phone() if r < 0.68 else None)
            r = rnd.random()
            email = (self._other_email("Patient") if r < 0.15 else None) or (
                self._fresh_email(first[1], last[1]) if r < 0.55 else
                self._bad_email(f"{first[1]}.{last[1]}") if r < 0.6 else None)
            row = {"firstName": first[0], "lastName": last[0],
                   "middleName": middle if rnd.random() < 0.9 else None,
                   "birthDate": self._birth_date() if rnd.random() < 0.85
                   else None,
                   "gender": gender if rnd.random() < 0.95 else None,
                   "phone": phone, "email": email}
            clinic = rnd.choice(self.clinics)
        row.update(id=self._take_id("Patient"), clinicId=clinic,
                   createdAt=now, updatedAt=now)
        self._insert("Patient", row)

    def _op_insert_doctor(self):
        """A new doctor: sometimes one who already works in another clinic
        (the same email, spelled differently), else a new one."""
        rnd = self.rnd
        now = self._now()
        known = None
        if rnd.random() < 0.3:
            known = self._pick("User", lambda u: u["role"] == "DOCTOR")
        if known:
            row = {k: known[k] for k in ("firstName", "lastName", "phone",
                                         "specialization", "licenseNumber")}
            row["email"] = self._respell_email(known["email"])
            others = [c for c in self.clinics if c != known["clinicId"]]
            clinic = rnd.choice(others or self.clinics)
        else:
            _, first, last, _ = self._person()
            row = {"firstName": first[0], "lastName": last[0],
                   "email": self._fresh_email(first[1], last[1],
                                              STAFF_DOMAINS),
                   "phone": self._write_phone(self._fresh_national())
                   if rnd.random() < 0.5 else None,
                   "specialization": rnd.choice(SPECIALIZATIONS),
                   "licenseNumber": f"{rnd.choice(('77', '50', '78'))}-"
                                    f"{rnd.randint(1, 9):02d}-"
                                    f"{rnd.randrange(10**6):06d}"}
            clinic = rnd.choice(self.clinics)
        row.update(id=self._take_id("User"), clinicId=clinic, role="DOCTOR",
                   isActive=rnd.random() < 0.95, createdAt=now,
                   updatedAt=now)
        self._insert("User", row)

    def _op_insert_staff(self):
        """A new user who is not a doctor."""
        rnd = self.rnd
        now = self._now()
        _, first, last, _ = self._person()
        key = self.next_id["User"]
        self.next_id["User"] += 1
        self._insert("User", {
            "id": key, "clinicId": rnd.choice(self.clinics),
            "email": self._fresh_email(first[1], last[1], STAFF_DOMAINS),
            "phone": None, "firstName": first[0], "lastName": last[0],
            "role": rnd.choice(("ADMIN", "RECEPTIONIST", "RECEPTIONIST",
                                "NURSE")),
            "specialization": None, "licenseNumber": None, "isActive": True,
            "createdAt": now, "updatedAt": now})

    def _op_insert_appointment(self):
        """A new appointment, mostly of a doctor and a patient of its
        clinic; its doctor or patient may be deleted or not inserted yet."""
        rnd = self.rnd
        now = self._now()
        doctor = self._reference("User")
        patient = self._reference("Patient")
        doc = self.rows["User"].get(doctor)
        if doc and patient in self.rows["Patient"]:
            for _ in range(4):  # prefer a patient of the doctor's clinic
                if self.rows["Patient"][patient]["clinicId"] == \
                        doc["clinicId"]:
                    break
                patient = self.pool["Patient"].choice(rnd)
        pat = self.rows["Patient"].get(patient)
        clinic = (doc or pat or {}).get("clinicId") or rnd.choice(
            self.clinics)
        start, end = self._slot()
        key = self.next_id["Appointment"]
        self.next_id["Appointment"] += 1
        self._insert("Appointment", {
            "id": key, "clinicId": clinic, "doctorId": doctor,
            "patientId": patient, "startsAt": start, "endsAt": end,
            "status": self._status_for(start),
            "reason": rnd.choice(REASONS), "createdAt": now,
            "updatedAt": now})

    # -- updates ---------------------------------------------------------

    def _op_patient_phone(self):
        """A phone change: another patient's number in another form (a
        merge), none (maybe a split), a new number, a local-only one, or
        the same number written differently."""
        p = self._pick("Patient")
        if p is None:
            return
        r = self.rnd.random()
        nat = national_number(p["phone"])
        if r < 0.3:
            phone = self._other_phone(p["id"])
        elif r < 0.65:
            phone = None
        elif r < 0.8 or (r >= 0.9 and nat is None):
            phone = self._write_phone(self._fresh_national())
        elif r < 0.9:
            phone = self._local_phone()
        else:
            phone = self._write_phone(nat, p["phone"])
        self._update("Patient", p["id"], {"phone": phone})

    def _op_patient_email(self):
        """An email change: another patient's email respelled (a merge),
        none, a new one, or a malformed one."""
        p = self._pick("Patient")
        if p is None:
            return
        r = self.rnd.random()
        _, first, last, _ = self._person(p["gender"])
        if r < 0.3:
            email = self._other_email("Patient", p["id"])
        elif r < 0.65:
            email = None
        elif r < 0.9:
            email = self._fresh_email(first[1], last[1])
        else:
            email = self._bad_email(p["email"] or f"{first[1]}.{last[1]}")
        self._update("Patient", p["id"], {"email": email})

    def _op_patient_profile(self):
        """A name, birth date or gender change (profile fields of the
        global patient come from the most recently updated member)."""
        rnd = self.rnd
        p = self._pick("Patient")
        if p is None:
            return
        gender, first, last, middle = self._person(p["gender"])
        change = rnd.choice((
            {"lastName": last[0]}, {"firstName": first[0]},
            {"middleName": rnd.choice((middle, None))},
            {"birthDate": rnd.choice((self._birth_date(), None))},
            {"gender": rnd.choice(("M", "F", None))}))
        self._update("Patient", p["id"], change)

    def _op_doctor_email(self):
        """A user's email change: another doctor's email respelled (moves
        the doctor into that group), a new one, or an unusable one."""
        rnd = self.rnd
        u = self._pick("User", (lambda u: u["role"] == "DOCTOR")
                       if rnd.random() < 0.8 else None)
        if u is None:
            return
        r = rnd.random()
        email = self._other_email("User", u["id"], True) if r < 0.5 else None
        if email is None and r < 0.85:
            _, first, last, _ = self._person()
            email = self._fresh_email(first[1], last[1], STAFF_DOMAINS)
        self._update("User", u["id"], {
            "email": email or self._bad_email(u["email"])})

    def _op_user_role(self):
        """DOCTOR becomes ADMIN (or receptionist), or the other way."""
        rnd = self.rnd
        u = self._pick("User")
        if u is None:
            return
        if u["role"] == "DOCTOR":
            change = {"role": rnd.choice(("ADMIN", "ADMIN",
                                          "RECEPTIONIST"))}
        else:
            change = {"role": "DOCTOR"}
            if u["specialization"] is None:
                change["specialization"] = rnd.choice(SPECIALIZATIONS)
        self._update("User", u["id"], change)

    def _op_user_active(self):
        u = self._pick("User")
        if u is not None:
            self._update("User", u["id"], {"isActive": not u["isActive"]})

    def _op_user_profile(self):
        """A name, specialization, licence or phone change."""
        rnd = self.rnd
        u = self._pick("User")
        if u is None:
            return
        _, first, last, _ = self._person()
        change = rnd.choice((
            {"lastName": last[0]}, {"firstName": first[0]},
            {"specialization": rnd.choice(SPECIALIZATIONS)},
            {"licenseNumber": f"77-{rnd.randint(1, 9):02d}-"
                              f"{rnd.randrange(10**6):06d}"},
            {"phone": rnd.choice((None, self._write_phone(
                self._fresh_national())))}))
        self._update("User", u["id"], change)

    def _op_appointment_move(self):
        """An appointment moves to another doctor or another patient (who
        may be deleted or not inserted yet)."""
        a = self._pick("Appointment")
        if a is None:
            return
        if self.rnd.random() < 0.5:
            change = {"doctorId": self._reference("User")}
        else:
            change = {"patientId": self._reference("Patient")}
        self._update("Appointment", a["id"], change)

    def _op_appointment_status(self):
        """A visit happens, is missed or cancelled, or is rescheduled; the
        reason may be edited."""
        rnd = self.rnd
        a = self._pick("Appointment")
        if a is None:
            return
        if rnd.random() < 0.25:
            start, end = self._slot()
            change = {"startsAt": start, "endsAt": end,
                      "status": self._status_for(start)}
        elif a["status"] == "SCHEDULED":
            change = {"status": rnd.choice(("COMPLETED", "COMPLETED",
                                            "CANCELLED", "NO_SHOW"))}
        else:
            change = {"status": "SCHEDULED"}
        if rnd.random() < 0.2:
            change["reason"] = rnd.choice(REASONS)
        self._update("Appointment", a["id"], change)

    # -- deletes ---------------------------------------------------------

    def _op_delete_patient(self):
        """Deletes a patient, even one that appointments still name (the
        legacy schema has no foreign keys)."""
        p = self._pick("Patient")
        if p is not None:
            self._delete("Patient", p["id"])

    def _op_delete_user(self):
        u = self._pick("User", (lambda u: u["role"] == "DOCTOR")
                       if self.rnd.random() < 0.6 else None)
        if u is not None:
            self._delete("User", u["id"])

    def _op_delete_appointment(self):
        a = self._pick("Appointment")
        if a is not None:
            self._delete("Appointment", a["id"])


def history(conn, rng_seed, steps, writer, scale=1, ops=None):
    """Applies a seeded random history of @steps transactions to the legacy
    tables and writes its events; seeds the tables first (at @scale) when
    they are empty. @ops limits the kinds of change (None: all; see
    UPDATES_ONLY). Returns (History, the seed summary line or None)."""
    seeded = None
    if not legacy_row_count(conn):
        seeded = seed(conn, scale)
    h = History(conn, rng_seed, writer, ops)
    h.run(steps)
    return h, seeded


# ---- dump -------------------------------------------------------------------

def find_pg_dump():
    """The newest PostgreSQL's pg_dump (a newer one dumps older servers)."""
    def version(path):
        m = re.search(r"/postgresql/(\d+)/", path)
        return int(m.group(1)) if m else 0
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"),
                   key=version, reverse=True)
    if found:
        return found[0]
    path = shutil.which("pg_dump")
    if path is None:
        raise GenError("pg_dump not found (install postgresql-client)")
    return path


def dump(conninfo, out):
    """Writes the four legacy tables' rows as INSERT statements (pg_dump
    --data-only --inserts) to the file @out, as plain SQL: the psql-only
    \\restrict / \\unrestrict lines of recent pg_dump releases are left
    out, so any client (psycopg2, libpq) can run the file."""
    args = [find_pg_dump(), "--data-only", "--inserts", "--no-owner",
            "--dbname", conninfo]
    for table in ALL_TABLES:
        args += ["--table", f'public."{table}"']
    with open(out, "wb") as f, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
        for line in proc.stdout:
            if not line.startswith((b"\\restrict ", b"\\unrestrict ")):
                f.write(line)
        if proc.wait() != 0:
            err.seek(0)
            raise GenError("pg_dump failed: " +
                           err.read().decode(errors="replace").strip())
