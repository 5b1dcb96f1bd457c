#!/usr/bin/python3
"""gen.py -- writes the envelope-shape fixtures of this directory.

NOTES
Every shape the decoder accepts or refuses beyond the plain envelope
(docs/design.md §1.2, "Shapes"), written as a Debezium PostgreSQL
connector, its converters and its documentation print them, for the
legacy tables. Each kcat -J line carries a "shape" member saying what it
is; clinicmig-decode ignores it. The expected outputs (*.expected) are
checked by hand; ctest runs clinicmig-decode on every input
(tools/decode/CMakeLists.txt, tool.decode-shapes.*).

  both.json.jsonl, both.avro.jsonl -> both.expected
      the same changes from the JSON converter (schemas.enable=true) and
      from the AvroConverter (schemas/<id>.avsc): the same events.
  json.jsonl -> json.expected
      shapes only JSON has: numbers as text, the documentation's key
      layout, schemaless flattened rows, booleans for snapshot.
  modes/<mode>.jsonl -> modes.expected
      schemaless events as the connector prints them in each
      time.precision.mode, for timestamp(3) and timestamp(6) columns:
      decoded with that mode and MODES_TYPES they give the same events.
  modes/adaptive.jsonl -> modes.connect-misread.expected
      the adaptive mode's numbers read as connect: microseconds out of
      range as milliseconds.

Run it again after changing it; the output is the same for the same input.
"""

import base64
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
import cmavro  # noqa: E402

PREFIX = "legacy"
VERSION = "3.1.2.Final"
MODES_TYPES = ("*.*=timestamp(3),Appointment.startsAt=timestamp(6),"
               "Appointment.endsAt=timestamp(6)")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# ---- column types ----------------------------------------------------------

# kind -> (Connect type, semantic name, Avro logicalType)
KINDS = {
    "int": ("int32", None, None),
    "text": ("string", None, None),
    "bool": ("boolean", None, None),
    "enum": ("string", "io.debezium.data.Enum", None),
    "date": ("int32", "io.debezium.time.Date", None),
    "connect_date": ("int32", "org.apache.kafka.connect.data.Date", "date"),
    "iso_date": ("string", "io.debezium.time.IsoDate", None),
    "zoned": ("string", "io.debezium.time.ZonedTimestamp", None),
    "millis": ("int64", "io.debezium.time.Timestamp", None),
    "micros": ("int64", "io.debezium.time.MicroTimestamp", None),
    "nanos": ("int64", "io.debezium.time.NanoTimestamp", None),
    "connect": ("int64", "org.apache.kafka.connect.data.Timestamp",
                "timestamp-millis"),
    "iso": ("string", "io.debezium.time.IsoTimestamp", None),
}

# table -> [(column, kind, optional)], as schemas/legacy.sql has them
COLUMNS = {
    "User": [("id", "int", False), ("clinicId", "int", False),
             ("email", "text", False), ("phone", "text", True),
             ("firstName", "text", False), ("lastName", "text", False),
             ("role", "text", False), ("specialization", "text", True),
             ("licenseNumber", "text", True), ("isActive", "bool", False),
             ("createdAt", "zoned", False), ("updatedAt", "zoned", False)],
    "Patient": [("id", "int", False), ("clinicId", "int", False),
                ("firstName", "text", False), ("lastName", "text", False),
                ("middleName", "text", True), ("birthDate", "date", True),
                ("gender", "text", True), ("phone", "text", True),
                ("email", "text", True), ("createdAt", "zoned", False),
                ("updatedAt", "zoned", False)],
    "Appointment": [("id", "int", False), ("clinicId", "int", False),
                    ("doctorId", "int", False), ("patientId", "int", False),
                    ("startsAt", "zoned", False), ("endsAt", "zoned", False),
                    ("status", "text", False), ("reason", "text", True),
                    ("createdAt", "zoned", False),
                    ("updatedAt", "zoned", False)],
}


def columns(table, kinds=None):
    """The table's columns, temporal ones of the kinds @p kinds names."""
    return [(c, (kinds or {}).get(c, k), o) for c, k, o in COLUMNS[table]]


def instant(iso):
    """ISO text -> datetime (UTC)."""
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def micros(iso):
    d = instant(iso) - EPOCH
    return (d.days * 86400 + d.seconds) * 1000000 + d.microseconds


def iso_text(iso):
    """As Java's ISO_OFFSET_DATE_TIME prints an instant at UTC: the
    fraction only as long as it needs to be."""
    us = micros(iso)
    s = (EPOCH + datetime.timedelta(microseconds=us)).strftime(
        "%Y-%m-%dT%H:%M:%S")
    frac = us % 1000000
    if frac:
        s += (".%06d" % frac).rstrip("0")
    return s + "Z"


def value(kind, v):
    """A row value as the column's kind writes it."""
    if v is None or v == "__debezium_unavailable_value":
        return v
    if kind in ("zoned", "iso"):
        return iso_text(v)
    if kind == "millis" or kind == "connect":
        return micros(v) // 1000
    if kind == "micros":
        return micros(v)
    if kind == "nanos":
        return micros(v) * 1000
    if kind in ("date", "connect_date"):
        return (datetime.date.fromisoformat(v) - EPOCH.date()).days
    if kind == "iso_date":
        return v + "Z"
    return v


def row(table, r, kinds=None):
    if r is None:
        return None
    return {c: value(k, r.get(c)) for c, k, _ in columns(table, kinds)
            if c in r}


# ---- Kafka Connect JSON schemas -------------------------------------------

def connect_field(name, kind, optional):
    typ, sem, _ = KINDS[kind]
    f = {"type": typ, "optional": optional}
    if sem:
        f["name"] = sem
        f["version"] = 1
    f["field"] = name
    return f


def connect_struct(name, fields, field=None, optional=False):
    s = {"type": "struct", "fields": fields, "optional": optional,
         "name": name}
    if field:
        s["field"] = field
    return s


SOURCE_FIELDS = [
    ("version", "string", False), ("connector", "string", False),
    ("name", "string", False), ("ts_ms", "int64", False),
    ("snapshot", "string", True), ("db", "string", False),
    ("sequence", "string", True), ("ts_us", "int64", True),
    ("ts_ns", "int64", True), ("schema", "string", False),
    ("table", "string", False), ("txId", "int64", True),
    ("lsn", "int64", True), ("xmin", "int64", True)]


def value_schema(table, kinds):
    return [connect_field(c, k, o) for c, k, o in columns(table, kinds)]


def source_schema():
    src = [{"type": t, "optional": o, "field": n} for n, t, o in SOURCE_FIELDS]
    src[4].update({"name": "io.debezium.data.Enum", "version": 1,
                   "parameters": {"allowed": "true,first,first_in_data_"
                                  "collection,last_in_data_collection,last,"
                                  "false,incremental"},
                   "default": "false"})
    return connect_struct("io.debezium.connector.postgresql.Source", src,
                          "source")


def envelope_schema(table, kinds):
    vname = f"{PREFIX}.public.{table}.Value"
    return connect_struct(f"{PREFIX}.public.{table}.Envelope", [
        connect_struct(vname, value_schema(table, kinds), "before", True),
        connect_struct(vname, value_schema(table, kinds), "after", True),
        source_schema(),
        connect_struct("event.block", [
            {"type": "string", "optional": False, "field": "id"},
            {"type": "int64", "optional": False, "field": "total_order"},
            {"type": "int64", "optional": False,
             "field": "data_collection_order"}], "transaction", True),
        {"type": "string", "optional": False, "field": "op"},
        {"type": "int64", "optional": True, "field": "ts_ms"},
        {"type": "int64", "optional": True, "field": "ts_us"},
        {"type": "int64", "optional": True, "field": "ts_ns"}])


def flat_schema(table, kinds, meta):
    fields = value_schema(table, kinds)
    for name, typ in meta:
        fields.append({"type": typ, "optional": True, "field": name})
    return connect_struct(f"{PREFIX}.public.{table}.Value", fields)


def key_schema(table):
    return connect_struct(f"{PREFIX}.public.{table}.Key", [
        {"type": "int32", "optional": False, "field": "id"}])


def wrapped(schema, payload):
    return {"schema": schema, "payload": payload}


# ---- Avro schemas, as Confluent's AvroConverter writes them ---------------

AVRO_PRIM = {"int32": "int", "int64": "long", "string": "string",
             "boolean": "boolean"}


def avro_type(kind):
    typ, sem, logical = KINDS[kind]
    t = AVRO_PRIM[typ]
    if sem:
        t = {"type": t, "connect.version": 1, "connect.name": sem}
        if logical:
            t["logicalType"] = logical
    return t


def avro_field(name, t, optional):
    if optional:
        return {"name": name, "type": ["null", t], "default": None}
    return {"name": name, "type": t}


def avro_value(table, kinds, meta=()):
    fields = [avro_field(c, avro_type(k), o) for c, k, o in
              columns(table, kinds)]
    fields += [avro_field(n, AVRO_PRIM[t], True) for n, t in meta]
    return {"type": "record", "name": "Value",
            "namespace": f"{PREFIX}.public.{table}", "fields": fields,
            "connect.name": f"{PREFIX}.public.{table}.Value"}


AVRO_SOURCE = {
    "type": "record", "name": "Source",
    "namespace": "io.debezium.connector.postgresql",
    "fields": [avro_field(n, AVRO_PRIM[t], o) for n, t, o in SOURCE_FIELDS]}


def avro_envelope(table, kinds):
    return {"type": "record", "name": "Envelope",
            "namespace": f"{PREFIX}.public.{table}", "fields": [
                avro_field("before", avro_value(table, kinds), True),
                {"name": "after", "type": ["null", "Value"],
                 "default": None},
                {"name": "source", "type": AVRO_SOURCE},
                avro_field("transaction", {
                    "type": "record", "name": "block",
                    "namespace": "event", "fields": [
                        {"name": "id", "type": "string"},
                        {"name": "total_order", "type": "long"},
                        {"name": "data_collection_order",
                         "type": "long"}]}, True),
                {"name": "op", "type": "string"},
                avro_field("ts_ms", "long", True),
                avro_field("ts_us", "long", True),
                avro_field("ts_ns", "long", True)]}


def avro_key(table):
    return {"type": "record", "name": "Key",
            "namespace": f"{PREFIX}.public.{table}",
            "fields": [{"name": "id", "type": "int"}]}


# ---- envelopes ---------------------------------------------------------------

def source(table, lsn, tx, snapshot="false", ts=1737540930456):
    s = {"version": VERSION, "connector": "postgresql", "name": PREFIX,
         "ts_ms": ts, "snapshot": snapshot, "db": "clinic",
         "sequence": json.dumps([str(lsn - 64) if lsn else None,
                                 str(lsn) if lsn else None]),
         "ts_us": ts * 1000 + 412, "ts_ns": (ts * 1000 + 412) * 1000,
         "schema": "public", "table": table, "txId": tx, "lsn": lsn,
         "xmin": None}
    return s


def envelope(table, op, before, after, src, kinds=None, transaction=None,
             ts=1737540930789):
    return {"before": row(table, before, kinds),
            "after": row(table, after, kinds), "source": src,
            "transaction": transaction, "op": op, "ts_ms": ts,
            "ts_us": ts * 1000 + 841, "ts_ns": (ts * 1000 + 841) * 1000 + 257}


USER7 = {"id": 7, "clinicId": 3, "email": "i.petrov@clinic3.example",
         "phone": "+7 912 000-11-22", "firstName": "Иван",
         "lastName": "Петров", "role": "DOCTOR", "specialization": "Кардиолог",
         "licenseNumber": "77-01-004512", "isActive": True,
         "createdAt": "2023-05-10T07:00:00Z",
         "updatedAt": "2025-01-22T10:15:30.123456Z"}
PATIENT42 = {"id": 42, "clinicId": 3, "firstName": "Анна",
             "lastName": "Смирнова", "middleName": "Сергеевна",
             "birthDate": "1987-04-12", "gender": "F",
             "phone": "8 (912) 345-67-89", "email": "a.smirnova@example.ru",
             "createdAt": "2025-01-22T10:15:30.123Z",
             "updatedAt": "2025-01-23T05:00:05.5Z"}
APPT501 = {"id": 501, "clinicId": 3, "doctorId": 7, "patientId": 42,
           "startsAt": "2025-02-03T09:00:00Z",
           "endsAt": "2025-02-03T09:30:00Z", "status": "SCHEDULED",
           "reason": "Консультация",
           "createdAt": "2025-01-22T10:15:30.123Z",
           "updatedAt": "2025-01-22T10:15:30.456Z"}


def zero_row(table, key_id):
    """A delete's before with REPLICA IDENTITY DEFAULT: the key, the other
    required columns at their type's zero value, the optional ones null."""
    zero = {"int": 0, "text": "", "bool": False,
            "zoned": "1970-01-01T00:00:00Z"}
    r = {}
    for c, k, o in COLUMNS[table]:
        r[c] = key_id if c == "id" else (None if o else zero[k])
    return r


def T(table):
    return f"{PREFIX}.public.{table}"


def both_changes():
    """(shape, topic, key id, table, kinds, envelope) in both converters."""
    appt_ms = {"startsAt": "millis", "endsAt": "millis",
               "createdAt": "millis", "updatedAt": "millis"}
    appt_us = {c: "micros" for c in appt_ms}
    appt_ns = {c: "nanos" for c in appt_ms}
    appt_connect = {c: "connect" for c in appt_ms}
    appt_iso = {c: "iso" for c in appt_ms}
    pat_connect = {"birthDate": "connect_date"}
    pat_iso = {"birthDate": "iso_date", "createdAt": "iso",
               "updatedAt": "iso"}
    tx = {"id": "772:24023400", "total_order": 1, "data_collection_order": 1}
    a2 = dict(APPT501, status="DONE", updatedAt="2025-02-03T09:31:00.25Z")
    p_upd = dict(PATIENT42, phone=None, updatedAt="2025-01-23T08:00:00Z")
    u_toast = dict(USER7, specialization="__debezium_unavailable_value",
                   isActive=False, updatedAt="2025-01-24T09:12:00.000001Z")
    return [
        ("adaptive: timestamp(3) as io.debezium.time.Timestamp (ms), "
         "transaction block", "Appointment", 501, appt_ms,
         envelope("Appointment", "c", None, APPT501,
                  source("Appointment", 24023400, 772), appt_ms, tx)),
        ("adaptive: timestamp(6) as io.debezium.time.MicroTimestamp (us), "
         "REPLICA IDENTITY FULL update", "Appointment", 501, appt_us,
         envelope("Appointment", "u", APPT501, a2,
                  source("Appointment", 24023528, 773), appt_us)),
        ("nanoseconds: io.debezium.time.NanoTimestamp (ns), snapshot read "
         "\"first_in_data_collection\"", "Appointment", 501, appt_ns,
         envelope("Appointment", "r", None, a2,
                  source("Appointment", 24023600, 774,
                         "first_in_data_collection"), appt_ns)),
        ("connect: org.apache.kafka.connect.data.Timestamp (ms), snapshot "
         "read \"last_in_data_collection\"", "Appointment", 501,
         appt_connect,
         envelope("Appointment", "r", None, a2,
                  source("Appointment", 24023600, 774,
                         "last_in_data_collection"), appt_connect)),
        ("isostring: io.debezium.time.IsoTimestamp text", "Appointment", 501,
         appt_iso,
         envelope("Appointment", "u", None, a2,
                  source("Appointment", 24023700, 775), appt_iso)),
        ("isostring: io.debezium.time.IsoDate \"YYYY-MM-DDZ\"", "Patient", 42,
         pat_iso,
         envelope("Patient", "c", None, PATIENT42,
                  source("Patient", 24023800, 776), pat_iso)),
        ("connect: org.apache.kafka.connect.data.Date (days)", "Patient", 42,
         pat_connect,
         envelope("Patient", "u", None, p_upd,
                  source("Patient", 24023900, 777), pat_connect)),
        ("delete, REPLICA IDENTITY DEFAULT: the key and zero values",
         "Patient", 42, None,
         envelope("Patient", "d", zero_row("Patient", 42), None,
                  source("Patient", 24024000, 778))),
        ("delete, REPLICA IDENTITY FULL: the whole row", "Patient", 42, None,
         envelope("Patient", "d", p_upd, None,
                  source("Patient", 24024100, 779))),
        ("update with the unchanged-TOAST placeholder", "User", 7, None,
         envelope("User", "u", USER7, u_toast, source("User", 24024200, 780))),
        ("incremental snapshot read: no source.lsn (refused)", "User", 7,
         None,
         envelope("User", "r", None, USER7,
                  dict(source("User", None, None, "incremental"),
                       sequence=json.dumps(["24024200", "24024264"])))),
    ]


# Flattened rows: ExtractNewRecordState with add.fields=op,table,lsn,
# source.ts_ms and delete.tombstone.handling.mode=rewrite.
FLAT_META = [("__op", "string"), ("__table", "string"), ("__lsn", "int64"),
             ("__source_ts_ms", "int64"), ("__deleted", "string")]


def flat_changes():
    """(shape, table, key id, meta, row) of flattened rows."""
    a2 = dict(APPT501, status="CANCELLED", updatedAt="2025-02-01T12:00:00Z")
    meta = {"__op": "c", "__table": "Appointment", "__lsn": 24030000,
            "__source_ts_ms": 1737540930456, "__deleted": "false"}
    return [
        ("flattened create", "Appointment", 501, meta, APPT501),
        ("flattened update", "Appointment", 501,
         dict(meta, __op="u", __lsn=24030100), a2),
        ("flattened delete (rewrite: __deleted \"true\", the before image)",
         "Appointment", 501, dict(meta, __op="d", __lsn=24030200,
                                  __deleted="true"), a2),
        ("flattened row without __lsn: add.fields without lsn (refused)",
         "Appointment", 501, {"__op": "u", "__table": "Appointment",
                              "__lsn": None, "__source_ts_ms": None,
                              "__deleted": "false"}, a2),
    ]


def flat_row(table, meta, r):
    out = row(table, r)
    out.update(meta)
    return out


def other_messages(w):
    """(shape, topic, key JSON, value JSON, key Avro, value Avro) of the
    messages that are not row changes."""
    out = []
    hb_key = {"serverName": PREFIX}
    hb = {"ts_ms": 1737540930456}
    out.append((
        "heartbeat", f"__debezium-heartbeat.{PREFIX}",
        wrapped(connect_struct("io.debezium.connector.common.ServerNameKey",
                               [{"type": "string", "optional": False,
                                 "field": "serverName"}]), hb_key),
        wrapped(connect_struct("io.debezium.connector.common.Heartbeat",
                               [{"type": "int64", "optional": False,
                                 "field": "ts_ms"}]), hb),
        w.encode({"type": "record", "name": "ServerNameKey",
                  "namespace": "io.debezium.connector.common",
                  "fields": [{"name": "serverName", "type": "string"}]},
                 hb_key),
        w.encode({"type": "record", "name": "Heartbeat",
                  "namespace": "io.debezium.connector.common",
                  "fields": [{"name": "ts_ms", "type": "long"}]}, hb)))
    dc = {"type": "record", "name": "ConnectDefault",
          "namespace": "io.confluent.connect.avro",
          "fields": [{"name": "data_collection", "type": "string"},
                     {"name": "event_count", "type": "long"}]}
    tx_avro = {"type": "record", "name": "TransactionMetadataValue",
               "namespace": "io.debezium.connector.common", "fields": [
                   {"name": "status", "type": "string"},
                   {"name": "id", "type": "string"},
                   avro_field("event_count", "long", True),
                   avro_field("data_collections",
                              {"type": "array", "items": dc}, True),
                   {"name": "ts_ms", "type": "long"}]}
    tx_schema = connect_struct(
        "io.debezium.connector.common.TransactionMetadataValue", [
            {"type": "string", "optional": False, "field": "status"},
            {"type": "string", "optional": False, "field": "id"},
            {"type": "int64", "optional": True, "field": "event_count"},
            {"type": "array", "items": connect_struct("", [
                {"type": "string", "optional": False,
                 "field": "data_collection"},
                {"type": "int64", "optional": False,
                 "field": "event_count"}]), "optional": True,
             "field": "data_collections"},
            {"type": "int64", "optional": False, "field": "ts_ms"}])
    tx_key = {"id": "772:24023400"}
    tx_key_avro = {"type": "record", "name": "TransactionMetadataKey",
                   "namespace": "io.debezium.connector.common",
                   "fields": [{"name": "id", "type": "string"}]}
    for status, n, dcs in (("BEGIN", None, None),
                           ("END", 2, [{"data_collection": "public.Appointment",
                                        "event_count": 2}])):
        v = {"status": status, "id": "772:24023400", "event_count": n,
             "data_collections": dcs, "ts_ms": 1737540930456}
        out.append((f"transaction metadata {status}", f"{PREFIX}.transaction",
                    wrapped(connect_struct(
                        "io.debezium.connector.common."
                        "TransactionMetadataKey",
                        [{"type": "string", "optional": False,
                          "field": "id"}]), tx_key),
                    wrapped(tx_schema, v), w.encode(tx_key_avro, tx_key),
                    w.encode(tx_avro, v)))
    src = source("", 24200500, None)
    src["schema"] = ""
    src["table"] = ""
    msg = {"source": src, "op": "m", "ts_ms": 1737800100050,
           "message": {"prefix": "clinicmig", "content": "aGVsbG8="}}
    msg_avro_schema = {
        "type": "record", "name": "MessageValue",
        "namespace": "io.debezium.connector.postgresql", "fields": [
            {"name": "op", "type": "string"},
            avro_field("ts_ms", "long", True),
            {"name": "source", "type": AVRO_SOURCE},
            {"name": "message", "type": {
                "type": "record", "name": "Message", "fields": [
                    {"name": "prefix", "type": "string"},
                    {"name": "content", "type": "bytes"}]}}]}
    msg_avro = dict(msg, message={"prefix": "clinicmig",
                                  "content": base64.b64decode("aGVsbG8=")})
    msg_avro["source"] = {f["name"]: src.get(f["name"])
                          for f in AVRO_SOURCE["fields"]}
    key_m = {"prefix": "clinicmig"}
    out.append(("non-transactional logical decoding message (no txId)",
                f"{PREFIX}.message",
                wrapped(connect_struct(
                    "io.debezium.connector.postgresql.MessageKey",
                    [{"type": "string", "optional": False,
                      "field": "prefix"}]), key_m),
                wrapped(connect_struct(
                    "io.debezium.connector.postgresql.MessageValue",
                    [{"type": "string", "optional": False, "field": "op"},
                     {"type": "int64", "optional": True, "field": "ts_ms"},
                     source_schema(),
                     connect_struct("io.debezium.connector.postgresql."
                                    "Message", [
                                        {"type": "string", "optional": False,
                                         "field": "prefix"},
                                        {"type": "bytes", "optional": False,
                                         "field": "content"}],
                                    "message")]), msg),
                w.encode({"type": "record", "name": "MessageKey",
                          "namespace": "io.debezium.connector.postgresql",
                          "fields": [{"name": "prefix", "type": "string"}]},
                         key_m),
                w.encode(msg_avro_schema, msg_avro)))
    trunc = {"before": None, "after": None,
             "source": source("Appointment", 24200000, 900), "op": "t",
             "transaction": None, "ts_ms": 1737800000100}
    out.append(("truncate: no key, no row images", T("Appointment"), None,
                wrapped(envelope_schema("Appointment", None), trunc), None,
                w.encode(avro_envelope("Appointment", None),
                         avro_datum("Appointment", None, trunc))))
    return out


def avro_logical(table, kinds, r):
    """python3-avro takes a logical type's value as a datetime or date."""
    if r is None:
        return None
    out = dict(r)
    for c, k, _ in columns(table, kinds):
        if out.get(c) is not None and k == "connect":
            out[c] = EPOCH + datetime.timedelta(milliseconds=out[c])
        elif out.get(c) is not None and k == "connect_date":
            out[c] = EPOCH.date() + datetime.timedelta(days=out[c])
    return out


def avro_datum(table, kinds, env):
    """An envelope dict as the Avro record (source's fields by name)."""
    d = dict(env)
    d["source"] = {f["name"]: env["source"].get(f["name"])
                   for f in AVRO_SOURCE["fields"]}
    d["before"] = avro_logical(table, kinds, env.get("before"))
    d["after"] = avro_logical(table, kinds, env.get("after"))
    return d


# ---- JSON-only shapes ----------------------------------------------------

def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def json_only():
    """(shape, topic, key text, value text) only JSON has."""
    out = []
    doc_key = {"schema": {"type": "struct",
                          "name": f"{PREFIX}.public.User.Key",
                          "optional": False,
                          "fields": [{"name": "id", "index": "0",
                                      "schema": {"type": "INT32",
                                                 "optional": "false"}}]},
               "payload": {"id": "7"}}
    env = envelope("User", "c", None, USER7, source("User", 24023128, 771),
                   transaction={"id": "771:24023128", "total_order": "1",
                                "data_collection_order": "1"})
    for k in ("ts_ms", "ts_us", "ts_ns"):
        env[k] = str(env[k])
    out.append(("the documentation's key layout with the id as text; "
                "ts_ms/ts_us/ts_ns and the transaction block as text",
                T("User"), compact(doc_key), compact(env)))
    env = envelope("User", "u", None, dict(USER7, phone=None),
                   source("User", 24023200, 772))
    env["source"]["lsn"] = "24023200"
    env["source"]["txId"] = "772"
    env["source"]["ts_ms"] = str(env["source"]["ts_ms"])
    out.append(("source.lsn, source.txId and source.ts_ms as text",
                T("User"), compact({"id": 7}), compact(env)))
    env = envelope("Appointment", "u", None, APPT501,
                   source("Appointment", 24023300, 773))
    for c in ("id", "clinicId", "doctorId", "patientId"):
        env["after"][c] = str(env["after"][c])
    out.append(("integer columns as decimal text (decimal.handling.mode="
                "string, numeric legacy columns)", T("Appointment"),
                compact({"id": 501}), compact(env)))
    env = envelope("User", "c", None, USER7, source("User", 24023400, 774))
    env["source"]["snapshot"] = True
    del env["source"]["sequence"]
    out.append(("snapshot as a JSON boolean, no sequence (1.x layout)",
                T("User"), "7", compact(env)))
    meta = {"__op": "u", "__table": "User", "__lsn": "24030300",
            "__source_ts_ms": "1737540930456", "__deleted": "false"}
    out.append(("flattened, schemaless: metadata as text (the SMT's "
                "documentation)", T("User"), compact({"id": 7}),
                compact(flat_row("User", meta, USER7))))
    out.append(("flattened, schemaless, without __table: the topic names "
                "the table", T("User"), compact({"id": 7}),
                compact(flat_row("User", {"__lsn": 24030400,
                                          "__deleted": True}, USER7))))
    out.append(("flattened, schemaless, no metadata at all (refused)",
                T("User"), compact({"id": 7}),
                compact(row("User", USER7))))
    env = envelope("User", "r", None, USER7, source("User", None, None,
                                                    "true"))
    for k in ("lsn", "txId", "xmin", "sequence", "ts_us", "ts_ns"):
        del env["source"][k]
    out.append(("a snapshot read without source.lsn, as a README abridges "
                "it (refused)", T("User"), compact({"id": 7}), compact(env)))
    out.append(("heartbeat, schemaless", f"__debezium-heartbeat.{PREFIX}",
                compact({"serverName": PREFIX}),
                compact({"ts_ms": 1737540930456})))
    return out


# ---- time.precision.mode, schemaless ---------------------------------------

MODE_KINDS = {
    # timestamp(3) columns, timestamp(6) columns, date columns
    "adaptive": ("millis", "micros", "date"),
    "adaptive_time_microseconds": ("millis", "micros", "date"),
    "connect": ("connect", "connect", "connect_date"),
    "microseconds": ("micros", "micros", "date"),
    "nanoseconds": ("nanos", "nanos", "date"),
    "isostring": ("iso", "iso", "iso_date"),
}


def mode_changes(mode):
    ms, us, day = MODE_KINDS[mode]
    appt = {"startsAt": us, "endsAt": us, "createdAt": ms, "updatedAt": ms}
    pat = {"birthDate": day, "createdAt": ms, "updatedAt": ms}
    user = {"createdAt": ms, "updatedAt": ms}
    u = dict(USER7, updatedAt="2025-01-22T10:15:30.123Z")
    return [
        (T("Appointment"), {"id": 501},
         envelope("Appointment", "c", None, APPT501,
                  source("Appointment", 24023400, 772), appt)),
        (T("Patient"), {"id": 42},
         envelope("Patient", "c", None, PATIENT42,
                  source("Patient", 24023500, 773), pat)),
        (T("User"), {"id": 7},
         envelope("User", "u", None, u, source("User", 24023600, 774), user)),
    ]


# ---- output -----------------------------------------------------------------

def line(shape, topic, offset, key=None, payload=None, key_b=None,
         payload_b=None):
    m = {"shape": shape, "topic": topic, "partition": 0, "offset": offset}
    if key_b is not None or payload_b is not None:
        m["key_b64"] = base64.b64encode(key_b).decode() if key_b else None
        m["payload_b64"] = (base64.b64encode(payload_b).decode()
                            if payload_b else None)
    else:
        m["key"] = key
        m["payload"] = payload
    return json.dumps(m, ensure_ascii=False)


def write(name, lines):
    path = os.path.join(HERE, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    w = cmavro.Writer(first_id=101)
    js, av = [], []
    for shape, table, key_id, kinds, env in both_changes():
        js.append(line(shape, T(table), len(js),
                       compact(wrapped(key_schema(table), {"id": key_id})),
                       compact(wrapped(envelope_schema(table, kinds), env))))
        av.append(line(shape, T(table), len(av),
                       key_b=w.encode(avro_key(table), {"id": key_id}),
                       payload_b=w.encode(avro_envelope(table, kinds),
                                          avro_datum(table, kinds, env))))
    for shape, table, key_id, meta, r in flat_changes():
        fields = [(n, t) for n, t in FLAT_META]
        js.append(line(shape, T(table), len(js),
                       compact(wrapped(key_schema(table), {"id": key_id})),
                       compact(wrapped(flat_schema(table, None, fields),
                                       flat_row(table, meta, r)))))
        av.append(line(shape, T(table), len(av),
                       key_b=w.encode(avro_key(table), {"id": key_id}),
                       payload_b=w.encode(avro_value(table, None, fields),
                                          flat_row(table, meta, r))))
    for shape, topic, kj, vj, kb, vb in other_messages(w):
        js.append(line(shape, topic, len(js),
                       compact(kj) if kj is not None else None, compact(vj)))
        av.append(line(shape, topic, len(av), key_b=kb, payload_b=vb))
    # a tombstone after the delete: a null value in both converters
    js.append(line("tombstone", T("Patient"), len(js),
                   compact(wrapped(key_schema("Patient"), {"id": 42})), None))
    av.append(line("tombstone", T("Patient"), len(av),
                   key_b=w.encode(avro_key("Patient"), {"id": 42}),
                   payload_b=b""))
    write("both.json.jsonl", js)
    write("both.avro.jsonl", av)
    for sid, text in w.schemas().items():
        write(f"schemas/{sid}.avsc", [text])
    write("json.jsonl", [line(s, t, i, k, v) for i, (s, t, k, v) in
                         enumerate(json_only())])
    for mode in MODE_KINDS:
        write(f"modes/{mode}.jsonl",
              [line(f"time.precision.mode={mode}", t, i, compact(k),
                    compact(env)) for i, (t, k, env) in
               enumerate(mode_changes(mode))])


if __name__ == "__main__":
    main()
