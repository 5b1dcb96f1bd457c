#!/usr/bin/python3
"""gen.py -- writes the Avro decoding fixtures of this directory.

NOTES
One set of changes of every legacy table and every op, built from the row
dicts of tests/lib/cmtest.py, written twice as kcat -J lines: as Debezium's
JSON converter writes them (changes.json.jsonl) and as its Avro converter
writes them, by python3-avro in Confluent's wire format
(changes.avro.jsonl, key_b64/payload_b64, schemas in schemas/<id>.avsc).
Both must decode to the same events: changes.expected, checked by hand.

faults.avro.jsonl holds what only Avro has: writer versions with an added
column, without an optional column and without a required one, an id no
schema has, a truncated body, trailing bytes, a delete with a partial
before image. Its verdicts are in faults.expected.

replay.json.jsonl and replay.avro.jsonl are clinicmig-replay's own
messages (tools/replay/README.md, "Output"): a snapshot row of every table
and range markers, in JSON and in Avro with schemas/replay.avsc (its id
is 100 here), keys in JSON both times. Both must decode to the same
events: replay.expected, checked by hand. replay-faults.json.jsonl and
replay-faults.avro.jsonl are the same broken replay messages in both
formats (for faults the schema cannot hold, an Avro writer schema that
can: txid_snapshot as a long, a range without present, ...); both must
give the same verdicts and reasons, replay-faults.expected.

Run it again after changing tests/lib/cmavro.py; the output is the same
for the same input (fixed timestamps).
"""

import base64
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tools", "lib"))
import cmavro  # noqa: E402
import cmtest  # noqa: E402
import cmpublish  # noqa: E402

TS_MS = 1737540930800


def change(table, op, row_or_id, lsn, **kw):
    """(topic, key id, envelope dict) with fixed timestamps."""
    topic, key, value = cmtest.message(table, op, row_or_id, lsn, **kw)
    env = json.loads(value)
    env["ts_ms"] = TS_MS
    env["source"]["ts_ms"] = TS_MS - 5
    for k in ("ts_us", "ts_ns"):
        env.pop(k, None)
    return topic, json.loads(key), env


def truncate(table, lsn):
    """A truncate, as cmavro.Writer.truncate() writes it, fixed in time."""
    env = cmtest.envelope(table, "t", None, None, lsn, 1000 + lsn // 100,
                          ts_ms=TS_MS)
    env["source"]["ts_ms"] = TS_MS - 5
    for k in ("ts_us", "ts_ns"):
        env.pop(k, None)
    return f"legacy.public.{table}", None, env


def changes():
    """(change, Avro options) of every table and op."""
    u = cmtest.user(7, phone="+7 999 000-11-22", lic="LIC-7")
    u2 = cmtest.user(7, phone=None, active=False, first="Иван",
                     updated="2025-02-01T08:30:00.123456Z")
    p = cmtest.patient(42, phone="8 (999) 123-45-67", email="a@example.org",
                       birth="1987-04-12", first="Анна", middle="Сергеевна")
    p2 = cmtest.patient(42, phone=None, birth=None, gender=None)
    a = cmtest.appointment(5, 7, 42, reason="осмотр")
    a2 = cmtest.appointment(5, 7, 42, status="DONE")
    plain, times = {}, {"types": {"startsAt": "micro", "endsAt": "millis"}}
    return [
        (change("User", "r", u, 1000), plain),
        (change("User", "c", u, 1100), plain),
        (change("User", "u", u2, 1200, before=u), plain),
        (change("User", "d", 7, 1300, before=u2), plain),
        (change("Patient", "r", p, 2000, snapshot="last"), plain),
        (change("Patient", "c", p, 2100), plain),
        (change("Patient", "u", p2, 2200), plain),
        (change("Patient", "d", 42, 2300, before=p2), plain),
        (change("Appointment", "r", a, 3000), plain),
        (change("Appointment", "c", a, 3100), times),
        (change("Appointment", "u", a2, 3200, before=a), times),
        (change("Appointment", "d", 5, 3300, before=a2), plain),
        (truncate("Appointment", 3400), plain),
    ]


def line(topic, offset, key=None, payload=None, key_b=None, payload_b=None):
    """A kcat -J line: text key and payload, or binary ones (*_b64)."""
    if key_b is not None or payload_b is not None:
        return cmpublish.kcat_line(topic, 0, offset, key_b or None,
                                   payload_b or None)
    return cmpublish.kcat_line(topic, 0, offset,
                               key.encode() if key is not None else None,
                               payload.encode() if payload is not None
                               else None)


def avro_change(w, ch, opts):
    topic, key, env = ch
    table = topic.rsplit(".", 1)[1]
    kb = w.key(table, cmtest_key_id(key)) if key is not None else None
    return kb, w.envelope(table, env, **opts)


def cmtest_key_id(key):
    return key["payload"]["id"] if "payload" in key else key["id"]


def faults(w):
    """Avro-only cases: (topic, key bytes, value bytes)."""
    u = cmtest.user(8)
    p = cmtest.patient(43, phone="+79991234567", middle="Петровна")
    cols = [c for c in cmtest.PATIENT_COLS if c != "middleName"]
    no_req = [c for c in cmtest.USER_COLS if c != "clinicId"]
    out = []

    def add(ch, **opts):
        topic, key, env = ch
        table = topic.rsplit(".", 1)[1]
        out.append((topic, w.key(table, cmtest_key_id(key)),
                    w.envelope(table, env, **opts)))

    add(change("User", "c", dict(u, nickname="doc8"), 4000),
        extra={"nickname": "string"})
    add(change("Patient", "c", p, 4100), cols=cols)
    add(change("User", "c", u, 4200), cols=no_req)
    add(change("Patient", "d", 43, 4300))
    good = w.envelope("User", change("User", "c", u, 4400)[2])
    kb = w.key("User", 8)
    out.append(("legacy.public.User", kb, b"\0\0\0\x03\xe7" + good[5:]))
    out.append(("legacy.public.User", kb, good[:-7]))
    out.append(("legacy.public.User", kb, good + b"\0"))
    out.append(("legacy.public.User", kb, good[:3]))
    out.append(("legacy.public.User", None, good))
    out.append(("legacy.public.User", kb, None))
    return out


# ---- clinicmig-replay's messages ----------------------------------------

REPLAY = "clinicmig.replay"
REPLAY_SCHEMA_ID = 100
SNAP = "1000:1010:1003,1007"
REPLAY_LSN = 24117248
INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1
BIG_ID = 2 ** 53 + 1


def replay_source(table, marker=False, snap=SNAP, lsn=REPLAY_LSN):
    """source as clinicmig-replay db writes it: a marker's lacks txId and
    xmin."""
    src = {"version": "clinicmig-replay 0.1.0",
           "connector": "clinicmig-replay", "name": "legacy",
           "ts_ms": TS_MS - 5, "snapshot": "true", "db": "legacy",
           "schema": "public", "table": table}
    if not marker:
        src["txId"] = None
    src["lsn"] = lsn
    if not marker:
        src["xmin"] = None
    src["txid_snapshot"] = snap
    return src


def replay_row(table, row, **kw):
    """(key text, envelope) of a snapshot row."""
    return (json.dumps({"id": row["id"]}),
            {"before": None, "after": row, "source": replay_source(table, **kw),
             "op": "r", "ts_ms": TS_MS})


def marker(table, first, last, present, **kw):
    """(key text, value) of a range marker."""
    return (json.dumps({"table": table, "first": first, "last": last}),
            {"op": "range", "source": replay_source(table, True, **kw),
             "range": {"first": first, "last": last,
                       "present": [list(r) for r in present]},
             "ts_ms": TS_MS})


def replay_changes():
    """A snapshot row of every table and markers, every one applicable."""
    u = cmtest.user(7, phone="+7 999 000-11-22", lic="LIC-7")
    u["updatedAt"] = "2025-02-01T08:30:00.123456Z"
    p = cmtest.patient(42, phone="8 (999) 123-45-67", email="a@example.org",
                       birth="1987-04-12", first="Анна", middle="Сергеевна")
    p2 = cmtest.patient(BIG_ID, phone=None, birth="1899-12-31", gender=None)
    a = cmtest.appointment(5, 7, 42, reason="осмотр")
    a2 = cmtest.appointment(6, BIG_ID, BIG_ID, clinic=3, status="DONE")
    return [
        replay_row("User", u),
        replay_row("Patient", p),
        replay_row("Patient", p2, lsn=None),
        replay_row("Appointment", a),
        replay_row("Appointment", a2, snap="4294967806:4294967810:"),
        marker("User", INT64_MIN, INT64_MAX - 1, [[7, 7]]),
        marker("Patient", INT64_MIN, 1000, [[1, 17], [19, 1000]]),
        marker("Patient", 1001, INT64_MAX, [[BIG_ID, BIG_ID]], lsn=None),
        marker("Appointment", INT64_MIN, INT64_MAX, []),
    ]


def source_field(schema, name, typ):
    """@p schema with source.@p name of Avro type @p typ."""
    schema = copy.deepcopy(schema)
    src = next(f for f in schema["fields"] if f["name"] == "source")
    for f in src["type"]["fields"]:
        if f["name"] == name:
            f["type"] = typ
    return schema


def range_fields(schema, **types):
    """@p schema with the range record's fields of those Avro types
    (None: dropped)."""
    schema = copy.deepcopy(schema)
    rng = next(f for f in schema["fields"] if f["name"] == "range")
    rec = rng["type"][1]
    fields = []
    for f in rec["fields"]:
        if f["name"] in types and types[f["name"]] is None:
            continue
        fields.append(dict(f, type=types.get(f["name"], f["type"])))
    rec["fields"] = fields
    return schema


def replay_faults():
    """(key text, envelope, Avro writer schema or None for replay.avsc):
    one fault each, as decode.c and decode_avro.c must both name it."""
    u = cmtest.user(8)
    base = cmavro.replay_schema()
    runs_or_long = {"type": "array", "items": [
        "long", {"type": "array", "items": "long"}]}
    out = [
        replay_row("User", u, snap="10:5:"),
        replay_row("User", u, snap="5:10:12"),
        replay_row("User", u, snap=None, lsn=None),
        marker("User", 1, 9, [], snap=None),
        marker("User", 1, 9, [], snap=None, lsn=None),
        marker("User", 3, 2, []),
        marker("User", 1, 9, [[3, 4], [2, 5]]),
        marker("User", 1, 9, [[3, 4], [4, 5]]),
        marker("User", 5, 9, [[3, 6]]),
        marker("User", 1, 9, [[3, 10]]),
        marker("User", 1, INT64_MAX, [[3, INT64_MAX]]),
        marker("User", 1, 9, [[4, 3]]),
        marker("User", 1, 9, [[1, 2, 3]]),
        marker("User", 1, 9, [[1]]),
        marker("Nope", 1, 9, []),
        marker("Clinic", 1, 9, [[1, 2]]),
    ]
    out = [(k, v, None) for k, v in out]
    k, v = replay_row("User", u)
    v["source"]["txid_snapshot"] = 7
    out.append((k, v, source_field(base, "txid_snapshot", ["null", "long"])))
    k, v = marker("User", 1, 9, [])
    del v["range"]["present"]
    out.append((k, v, range_fields(base, present=None)))
    k, v = marker("User", 1, 9, [])
    v["range"]["present"] = 5
    out.append((k, v, range_fields(base, present="long")))
    k, v = marker("User", 1, 9, [])
    v["range"]["present"] = [[1, 2], 3]
    out.append((k, v, range_fields(base, present=runs_or_long)))
    k, v = marker("User", 1, 9, [])
    v["range"]["first"] = "1"
    out.append((k, v, range_fields(base, first="string")))
    k, v = marker("User", 1, 9, [])
    del v["range"]["last"]
    out.append((k, v, range_fields(base, last=None)))
    k, v = marker("User", 1, 9, [])
    v["range"] = None
    out.append((k, v, None))
    return out


def replay_lines(w, msgs):
    """(JSON lines, Avro lines) of (key text, envelope, schema) items."""
    json_lines, avro_lines = [], []
    for off, (key, env, schema) in enumerate(msgs):
        json_lines.append(line(REPLAY, off, key,
                               json.dumps(env, ensure_ascii=False)))
        avro_lines.append(line(REPLAY, off, key_b=key.encode(),
                               payload_b=w.replay(env, schema)))
    return json_lines, avro_lines


def main():
    w = cmavro.Writer()
    json_lines, avro_lines, fault_lines = [], [], []
    for off, (ch, opts) in enumerate(changes()):
        topic, key, env = ch
        json_lines.append(line(topic, off, json.dumps(key) if key else None,
                               json.dumps(env, ensure_ascii=False)))
        kb, vb = avro_change(w, ch, opts)
        avro_lines.append(line(topic, off, key_b=kb, payload_b=vb))
    for off, (topic, kb, vb) in enumerate(faults(w)):
        fault_lines.append(line(topic, off, key_b=kb or b"",
                                payload_b=vb or b""))
    w.next_id = REPLAY_SCHEMA_ID
    w.schema_id(cmavro.replay_schema())
    rj, ra = replay_lines(w, [(k, v, None) for k, v in replay_changes()])
    fj, fa = replay_lines(w, replay_faults())
    os.makedirs(os.path.join(HERE, "schemas"), exist_ok=True)
    w.write_dir(os.path.join(HERE, "schemas"))
    for name, lines in (("changes.json.jsonl", json_lines),
                        ("changes.avro.jsonl", avro_lines),
                        ("faults.avro.jsonl", fault_lines),
                        ("replay.json.jsonl", rj),
                        ("replay.avro.jsonl", ra),
                        ("replay-faults.json.jsonl", fj),
                        ("replay-faults.avro.jsonl", fa)):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
