#!/usr/bin/python3
"""0051-rehearse-repair: rehearsing a repair with clinicmig-rehearse.

NOTES
First the parts, without Kafka: safe_next_xid() and PgServer's next_xid
(txid_current() lands just past the asked 32-bit id, also where the jump
needs freezing and where it passes 2^32, and rows written before stay
visible); source.txId read from every
form a capture line takes; --lose's choice spares no kind of message.

Then as an operator runs it. A legacy database gets the seed set and a
300-step history with deletes; its final state is dumped and its events
written as kcat -J lines, with fake messages of the Clinic table added (a
connector without a table filter publishes them; one of them, in the
schemas-enabled form, carries the capture's largest txId).
clinicmig-publish must take that capture and report the Clinic messages.
clinicmig-rehearse --lose 0.2 must count and skip them, drop a fifth of
the rest, and exit 1 with the oracle's differences; its kept database
must hand out transaction ids past the capture's largest txId. With
--lose 0.2 --backfill (clinicmig-replay db repairs the loss) the oracle
must find no difference. Nothing either run prints may hold personal data.

The backfill check needs clinicmig-replay (branch replay) and a worker
that orders replayed rows by their snapshot; until both are in the build
it fails, rightly.
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from cmtest import (BUILD, KAFKA_TOOL, ROOT, LocalKafka, PgServer,  # noqa
                    check, check_true, done)
from cmrun import XID_EPOCH, safe_next_xid  # noqa: E402
from rehearse import capture_txid, largest_txid, lose_share  # noqa: E402

GEN = os.path.join(ROOT, "tools", "gen", "clinicmig-gen")
PUBLISH = os.path.join(ROOT, "tools", "publish", "clinicmig-publish")
REHEARSE = os.path.join(ROOT, "tools", "rehearse", "clinicmig-rehearse")
CLINIC_MESSAGES = 12
CLINIC_TXID = 9_000_000  # above every txId the history's server gives
tmp = tempfile.mkdtemp(prefix="cm-repair-")
dump, events = os.path.join(tmp, "final.sql"), os.path.join(tmp, "h.jsonl")


def rehearse(*args):
    return subprocess.run([REHEARSE, "--build-dir", BUILD, *args],
                          capture_output=True, text=True, timeout=800)


# ---- the parts ------------------------------------------------------------

def past_32bit(full_xid, largest):
    """Whether a 32-bit @largest widened to the 64-bit id nearest
    @full_xid (as the worker widens source.txId) lies before it."""
    return 0 < (full_xid - largest) % XID_EPOCH < (1 << 31)


def check_safe_next_xid():
    seg = 1 << 20
    check("safe_next_xid: the pg_xact segment start above the largest",
          [safe_next_xid(0), safe_next_xid(seg - 1), safe_next_xid(seg),
           safe_next_xid(5_000_000), safe_next_xid(3_000_000_000)],
          [seg, seg, 2 * seg, 5 * seg, 2862 * seg])
    check("safe_next_xid: past 2^32, the next epoch",
          [safe_next_xid(XID_EPOCH - 1, XID_EPOCH - 5),
           safe_next_xid(1000, 3 * XID_EPOCH + 5 * seg)],
          [XID_EPOCH + seg, 4 * XID_EPOCH + seg])


def check_pg_next_xid():
    pg = PgServer(next_xid=safe_next_xid(5_000_000))
    try:
        first = pg.query("SELECT txid_current()")[0][0]
        check_true(f"PgServer(next_xid): txid_current() {first} is past "
                   "5000000", 5_000_000 < first < 5_300_000)
        pg.execute("CREATE TABLE kept AS SELECT 0 AS x")
        for n, largest in enumerate((3_000_000_000, XID_EPOCH - 10), 1):
            pg.set_next_xid(safe_next_xid(largest, pg.next_xid()))
            now = pg.query("SELECT txid_current()")[0][0]
            check_true(f"set_next_xid past {largest}: txid_current() {now}",
                       now > largest and past_32bit(now, largest))
            pg.execute("INSERT INTO kept VALUES (%s)", (n,))
            pg.execute("VACUUM")  # fails if a frozen xid were left behind
            check("rows written before the move stay visible",
                  pg.query("SELECT x FROM kept ORDER BY x"),
                  [(i,) for i in range(n + 1)])
        try:
            pg.set_next_xid(pg.next_xid() + 7)
            refused = False
        except ValueError:
            refused = True
        check_true("an id off a pg_xact segment start is refused", refused)
    finally:
        pg.destroy()


def envelope_line(payload, as_text=True, schemas=False):
    if schemas:
        payload = {"schema": {"type": "struct"}, "payload": payload}
    return {"topic": "legacy.public.Clinic", "partition": 0,
            "key": '{"id":1}',
            "payload": json.dumps(payload) if as_text else payload}


def check_capture_txid():
    env = {"op": "u", "source": {"txId": 4321, "lsn": 1}}
    forms = [envelope_line(env, t, s) for t in (True, False)
             for s in (False, True)]
    check("source.txId from text or object payloads, schemas or not",
          [capture_txid(m) for m in forms], [4321] * 4)
    check("a tombstone has no txId",
          capture_txid({"topic": "t.public.User", "payload": None}), None)
    check("largest_txid over a capture", largest_txid(forms + [
        envelope_line({"source": {"txId": 9}})]), 4321)


def check_lose_share(lines):
    kinds = {}
    for i, m in enumerate(lines):
        kinds[i] = "tombstone" if m["payload"] is None else \
            json.loads(m["payload"])["op"]
    kept = lose_share(list(range(len(lines))), 0.2, random.Random(1))
    gone = set(range(len(lines))) - set(kept)
    check("--lose 0.2 drops a fifth, keeping the order",
          (len(gone), kept == sorted(kept)), (round(0.2 * len(lines)), True))
    check_true("deletes and tombstones are lost like the rest",
               {"d", "tombstone"} <= {kinds[i] for i in gone})


# ---- the capture ------------------------------------------------------------

def personal_data(db):
    """Names, emails and phones of the final legacy rows."""
    pg_rows = subprocess.run(
        ["psql", "-tAqX", db, "-c",
         'SELECT "lastName", email, phone FROM "User" UNION ALL '
         'SELECT "lastName", email, phone FROM "Patient"'],
        capture_output=True, text=True, check=True).stdout
    values = {v.strip() for row in pg_rows.splitlines()
              for v in row.split("|")}
    return {v for v in values if len(v) >= 5}


def generate():
    pg = PgServer()
    try:
        db = pg.conninfo
        subprocess.run([GEN, "seed", "--db", db], check=True,
                       capture_output=True)
        subprocess.run([GEN, "snapshot", "--db", db, "--out", events],
                       check=True, capture_output=True)
        h = subprocess.run([GEN, "history", "--db", db, "--seed", "51",
                            "--steps", "300"], check=True,
                           capture_output=True, text=True)
        with open(events, "a") as f:
            f.write(h.stdout)
        subprocess.run([GEN, "dump", "--db", db, "--out", dump], check=True)
        return personal_data(db)
    finally:
        pg.destroy()


def add_clinic_messages():
    """Clinic events as a connector without a table filter publishes
    them; the last, schemas-enabled, has the capture's largest txId."""
    with open(events, "a") as f:
        for i in range(CLINIC_MESSAGES):
            cid = i % 3 + 1
            env = {"before": None, "after": {"id": cid,
                                             "name": f"Clinic {cid}"},
                   "source": {"connector": "postgresql", "table": "Clinic",
                              "txId": CLINIC_TXID if i == 11 else 700 + i,
                              "lsn": 1000 + i},
                   "op": "r" if i < 3 else "u"}
            f.write(json.dumps(envelope_line(env, i % 2 == 0, i == 11))
                    + "\n")


def check_publish_reports_clinic():
    with LocalKafka(KAFKA_TOOL, {}, stderr=subprocess.DEVNULL) as kafka:
        r = subprocess.run([PUBLISH, "-b", kafka.bootstrap, events],
                           capture_output=True, text=True, timeout=300)
    check("clinicmig-publish takes a capture with Clinic messages",
          r.returncode, 0)
    check_true("clinicmig-publish reports the Clinic messages",
               f"{CLINIC_MESSAGES} messages of tables clinicmig does not "
               f"map (Clinic {CLINIC_MESSAGES})" in r.stderr, r.stderr)


def check_no_personal_data(what, r, personal):
    text = r.stdout + r.stderr
    leaked = sorted(v for v in personal if v in text)
    check(f"{what}: no personal data printed", leaked, [])
    check_true(f"{what}: no email printed", "@" not in text)


def stop_kept_server(r):
    stop = [x for x in r.stderr.splitlines() if "stop it with: " in x]
    if stop:
        subprocess.run(stop[0].split("stop it with: ", 1)[1], shell=True)


def check_loss_alone(personal, capture):
    r = rehearse(dump, events, "--workers", "2", "--lose", "0.2", "--keep")
    check("--lose 0.2 alone: exit 1", r.returncode, 1)
    check_true("--lose 0.2 alone: the oracle reports differences",
               "oracle: " in r.stdout and
               "oracle: no difference" not in r.stdout,
               r.stdout[-1500:] + r.stderr[-1500:])
    check_true("the Clinic messages are counted and skipped",
               f"skipped {CLINIC_MESSAGES} messages of tables clinicmig "
               f"does not map (Clinic {CLINIC_MESSAGES})" in r.stdout,
               r.stdout[:600])
    mapped = capture - CLINIC_MESSAGES
    check_true("a fifth of the mapped messages is lost",
               f"lost {round(0.2 * mapped)} of {mapped} messages at random"
               in r.stdout, r.stdout[:600])
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if last.startswith("host="):
        q = subprocess.run(["psql", "-tAqX", last, "-c",
                            "SELECT txid_current()"],
                           capture_output=True, text=True)
        txid = int(q.stdout or 0)
        check_true(f"the legacy database's transaction ids ({txid}) come "
                   f"after the capture's largest txId {CLINIC_TXID}",
                   txid > CLINIC_TXID and past_32bit(txid, CLINIC_TXID),
                   q.stderr)
    else:
        check_true("--keep printed the connection string", False, last)
    stop_kept_server(r)
    check_no_personal_data("--lose 0.2", r, personal)


def check_loss_repaired(personal):
    r = rehearse(dump, events, "--workers", "2", "--lose", "0.2",
                 "--backfill")
    check("--lose 0.2 --backfill: exit 0", r.returncode, 0)
    check_true("--lose 0.2 --backfill: the oracle finds no difference",
               "oracle: no difference" in r.stdout,
               r.stdout[-1500:] + r.stderr[-1500:])
    check_true("the backfill ran and took its snapshot",
               re.search(r"backfill: .*snapshot \d+:\d+:", r.stdout),
               r.stdout[:800])
    check_no_personal_data("--lose 0.2 --backfill", r, personal)


check_safe_next_xid()
check_pg_next_xid()
check_capture_txid()
personal = generate()
with open(events) as f:
    history = [json.loads(x) for x in f]
check_true("the history has deletes",
           sum(1 for m in history if m["payload"] is None) > 5)
check_lose_share(history)
add_clinic_messages()
check_publish_reports_clinic()
check_loss_alone(personal, len(history) + CLINIC_MESSAGES)
check_loss_repaired(personal)
subprocess.run(["rm", "-rf", tmp])
done()
