#!/usr/bin/python3
"""0013-patient-collisions: workers fighting over the same patient groups.

Six hundred patients share ten phone numbers (each written in several
human forms) and eight emails, so nearly every event touches a group that
events in other partitions touch too; a long run of contact changes keeps
merging and splitting those groups. Three workers with small batches
apply it concurrently while workers are killed and restarted; loose and
strict matching each. The result must equal f of the final legacy rows,
as the oracle computes it.
"""
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import BUILD, ROOT, check, check_true, done, patient  # noqa

sys.path.insert(0, os.path.join(ROOT, "tools", "lib"))
from rehearse import Rehearsal  # noqa: E402

rnd = random.Random(13)
FORMS = ["8 ({a}) {b}-{c}-{d}", "+7 {a} {b} {c} {d}", "8{a}{b}{c}{d}",
         "+7({a}){b}-{c}-{d}"]
PHONES = [("916", f"{100 + i:03d}", f"{10 + i:02d}", f"{20 + i:02d}")
          for i in range(10)]


def phone():
    if rnd.random() < 0.15:
        return None
    a, b, c, d = rnd.choice(PHONES)
    return rnd.choice(FORMS).format(a=a, b=b, c=c, d=d)


def email():
    if rnd.random() < 0.3:
        return None
    e = f"family{rnd.randrange(8)}@mail.ru"
    return rnd.choice([e, e.upper(), f" {e} "])


rows, lines, lsn = {}, [], 1000


def emit(op, pid, row=None):
    global lsn
    lsn += 1
    key = json.dumps({"id": pid})
    value = {"before": {"id": pid} if op == "d" else None, "after": row,
             "source": {"lsn": lsn, "txId": lsn, "table": "Patient",
                        "schema": "public", "snapshot": "false",
                        "ts_ms": 0},
             "op": op, "ts_ms": 0}
    lines.append({"topic": "legacy.public.Patient", "partition": -1,
                  "key": key, "payload": json.dumps(value)})
    if op == "d":
        lines.append({"topic": "legacy.public.Patient", "partition": -1,
                      "key": key, "payload": None})


for pid in range(1, 601):
    rows[pid] = patient(pid, clinic=1 + pid % 3, phone=phone(),
                        email=email(), birth=rnd.choice(
                            [None, "1980-01-01", "1990-02-02"]),
                        updated=f"2025-01-01T00:00:{pid % 60:02d}Z")
    emit("c", pid, rows[pid])
for step in range(3000):
    pid = rnd.randrange(1, 601)
    if pid not in rows:
        rows[pid] = patient(pid, phone=phone(), email=email())
        emit("c", pid, rows[pid])
    elif rnd.random() < 0.05:
        del rows[pid]
        emit("d", pid)
    else:
        rows[pid] = dict(rows[pid], phone=phone(), email=email(),
                         updatedAt=f"2025-02-01T00:{step // 60 % 60:02d}:"
                                   f"{step % 60:02d}Z")
        emit("u", pid, rows[pid])



def load(r, name):
    """A database holding the final legacy rows."""
    import psycopg2
    conninfo = r.create_db(name)
    r.load_sql(conninfo, os.path.join(ROOT, "schemas", "legacy.sql"))
    with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
        for p in rows.values():
            cur.execute(
                'INSERT INTO "Patient" (id, "clinicId", "firstName",'
                ' "lastName", "middleName", "birthDate", gender, phone,'
                ' email, "createdAt", "updatedAt") VALUES (%s, %s, %s, %s,'
                " %s, DATE '1970-01-01' + %s::int, %s, %s, %s, %s, %s)",
                (p["id"], p["clinicId"], p["firstName"], p["lastName"],
                 p["middleName"], p["birthDate"], p["gender"], p["phone"],
                 p["email"], p["createdAt"], p["updatedAt"]))
    conn.close()
    return conninfo


r = Rehearsal(BUILD)
try:
    for match in ("loose", "strict"):
        run = r.run(f"collide_{match}", load(r, f"collide_{match}"), lines,
                    workers=3, chaos=True, seed=13, match=match,
                    worker_args=["--batch-max-events", "40"])
        check(f"{match}: three workers over colliding groups, killed and "
              "restarted: the oracle finds no difference",
              (run.oracle_status, run.sanitizer), (0, []))
        groups = int(re.search(r"(\d+) global patients", run.report)[1])
        check_true(f"{match}: the groups really collide ({groups} global "
                   f"patients for {len(rows)} patients)", groups < 150)
finally:
    r.close()
done()
