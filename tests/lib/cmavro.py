"""cmavro.py -- Debezium's Avro change events, written with python3-avro.

NOTES
The worker's Avro decoder (worker/decode_avro.c) is checked against an
independent writer: Debian's python3-avro. The events are the ones
cmtest.message() builds as JSON (the same row dicts, the same envelope);
this module writes them as Debezium's AvroConverter does and frames them
in Confluent's wire format: byte 0, the 4-byte big-endian schema id, then
Avro binary (docs/design.md §1.2).

The writer schemas follow the converter's mapping of Kafka Connect
schemas: an optional field is a union ["null", T] with default null,
semantic types keep their name in `connect.name` (io.debezium.time.Date on
an int, ZonedTimestamp on a string), the envelope is the record
<prefix>.<schema>.<Table>.Envelope with before/after of the record
...Value, source, op, ts_ms and transaction. A table's columns can be
changed (added, dropped, a timestamp written as MicroTimestamp or
Timestamp) to make the writer versions the tests need.

Schemas get ids in the order they are first used; write_dir() stores
them as <id>.avsc for schema.dir, schemas() hands them to a registry.

clinicmig-replay's own messages in Avro use one schema for the whole
replay topic, schemas/replay.avsc (docs/design.md §3): replay_schema()
reads it from the repository and Writer.replay() writes a snapshot row or
a range marker, given as the JSON envelope clinicmig-replay writes
(tools/replay/README.md, "Output"), with it. The key stays JSON text.
"""

import datetime
import io
import json
import os
import struct

import avro.io
import avro.schema

import cmtest

# Debezium's temporal types as an integer column: (Avro type, connect.name,
# logicalType, unit per second).
TIME_TYPES = {
    "micro": ("long", "io.debezium.time.MicroTimestamp", "timestamp-micros",
              1000000),
    "millis": ("long", "io.debezium.time.Timestamp", "timestamp-millis",
               1000),
}

TABLE_COLS = {"User": cmtest.USER_COLS, "Patient": cmtest.PATIENT_COLS,
              "Appointment": cmtest.APPT_COLS}


def nullable(table, col):
    """The catalog's nullability (include/clinicmig/cm_catalog.h)."""
    return col in cmtest._NULLABLE and not (table == "User" and
                                            col == "email")


def _column_type(table, col, variant):
    typ, sem, _ = cmtest._FIELD_TYPES.get(col, ("string", None, False))
    avro_type = {"int32": "int", "int64": "long", "boolean": "boolean",
                 "string": "string"}[typ]
    t = avro_type
    if variant in TIME_TYPES:
        base, name, logical, _ = TIME_TYPES[variant]
        t = {"type": base, "connect.version": 1, "connect.name": name,
             "logicalType": logical}
    elif sem == "io.debezium.time.Date":
        t = {"type": "int", "connect.version": 1, "connect.name": sem,
             "logicalType": "date"}
    elif sem is not None:
        t = {"type": avro_type, "connect.version": 1, "connect.name": sem}
    if nullable(table, col):
        return ["null", t], True
    return t, False


def value_schema(table, cols=None, types=None, extra=None):
    """The ...Value record. @p cols: the columns the writer has (default:
    the table's); @p types: {column: "micro" | "millis"}; @p extra: added
    columns {name: Avro type} the catalog does not know."""
    fields = []
    for c in cols or TABLE_COLS[table]:
        t, opt = _column_type(table, c, (types or {}).get(c))
        f = {"name": c, "type": t}
        if opt:
            f["default"] = None
        fields.append(f)
    for c, t in (extra or {}).items():
        fields.append({"name": c, "type": ["null", t], "default": None})
    return {"type": "record", "name": "Value",
            "namespace": f"{cmtest.PREFIX}.public.{table}",
            "fields": fields,
            "connect.name": f"{cmtest.PREFIX}.public.{table}.Value"}


SOURCE_SCHEMA = {
    "type": "record", "name": "Source",
    "namespace": "io.debezium.connector.postgresql",
    "fields": [
        {"name": "version", "type": "string"},
        {"name": "connector", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "ts_ms", "type": "long"},
        {"name": "snapshot", "type": [
            {"type": "string", "connect.version": 1,
             "connect.parameters": {"allowed": "true,last,false,incremental"},
             "connect.default": "false",
             "connect.name": "io.debezium.data.Enum"}, "null"],
         "default": "false"},
        {"name": "db", "type": "string"},
        {"name": "sequence", "type": ["null", "string"], "default": None},
        {"name": "schema", "type": "string"},
        {"name": "table", "type": "string"},
        {"name": "txId", "type": ["null", "long"], "default": None},
        {"name": "lsn", "type": ["null", "long"], "default": None},
        {"name": "xmin", "type": ["null", "long"], "default": None}],
    "connect.name": "io.debezium.connector.postgresql.Source"}

TRANSACTION_SCHEMA = {
    "type": "record", "name": "block", "namespace": "event",
    "fields": [{"name": "id", "type": "string"},
               {"name": "total_order", "type": "long"},
               {"name": "data_collection_order", "type": "long"}],
    "connect.version": 1, "connect.name": "event.block"}


def envelope_schema(table, cols=None, types=None, extra=None):
    ns = f"{cmtest.PREFIX}.public.{table}"
    return {"type": "record", "name": "Envelope", "namespace": ns,
            "fields": [
                {"name": "before", "type": [
                    "null", value_schema(table, cols, types, extra)],
                 "default": None},
                {"name": "after", "type": ["null", "Value"],
                 "default": None},
                {"name": "source", "type": SOURCE_SCHEMA},
                {"name": "op", "type": "string"},
                {"name": "ts_ms", "type": ["null", "long"], "default": None},
                {"name": "transaction", "type": ["null", TRANSACTION_SCHEMA],
                 "default": None}],
            "connect.version": 2, "connect.name": f"{ns}.Envelope"}


def key_schema(table):
    ns = f"{cmtest.PREFIX}.public.{table}"
    return {"type": "record", "name": "Key", "namespace": ns,
            "fields": [{"name": "id", "type": "int"}],
            "connect.name": f"{ns}.Key"}


def _to_datetime(v):
    """An ISO instant as python3-avro writes a timestamp-* logical type."""
    if not isinstance(v, str):
        return v
    return datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))


def _to_date(v):
    """Days since the epoch as python3-avro writes a date logical type."""
    if not isinstance(v, int):
        return v
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=v)


def _zero(table, col):
    """What Debezium writes for a required column a partial before image
    (REPLICA IDENTITY DEFAULT) lacks: the type's zero value."""
    typ, sem, _ = cmtest._FIELD_TYPES.get(col, ("string", None, False))
    if sem == "io.debezium.time.ZonedTimestamp":
        return "1970-01-01T00:00:00Z"
    return {"boolean": False, "string": ""}.get(typ, 0)


def _row(table, row, cols, types, extra):
    if row is None:
        return None
    out = {}
    for c in cols or TABLE_COLS[table]:
        v = row.get(c)
        if c in (types or {}):
            v = _to_datetime(v)
        elif c == "birthDate":
            v = _to_date(v)
        if v is None and c not in row and not nullable(table, c):
            v = _zero(table, c)
        out[c] = v
    for c in extra or {}:
        out[c] = row.get(c)
    return out


REPLAY_AVSC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                           "..", "schemas", "replay.avsc")


def replay_schema():
    """The replay topic's value schema, schemas/replay.avsc, as a dict."""
    with open(REPLAY_AVSC, encoding="utf-8") as f:
        return json.load(f)


def _replay_source_fields(schema):
    src = next(f for f in schema["fields"] if f["name"] == "source")
    return [f["name"] for f in src["type"]["fields"]]


def _replay_row(row, table):
    """A replay row dict (JSON as clinicmig-replay writes it) as
    python3-avro writes the record: birthDate as a date."""
    if row is None:
        return None
    out = {c: row.get(c) for c in TABLE_COLS[table]}
    if "birthDate" in out:
        out["birthDate"] = _to_date(out["birthDate"])
    return out


class Writer:
    """Writes Avro messages and remembers their schemas by id."""

    def __init__(self, first_id=1):
        self.next_id = first_id
        self.ids = {}      # schema text -> id
        self.texts = {}    # id -> schema text
        self.parsed = {}   # id -> avro.schema.Schema

    def schema_id(self, schema):
        text = json.dumps(schema, sort_keys=True)
        if text not in self.ids:
            sid = self.next_id
            self.next_id += 1
            self.ids[text] = sid
            self.texts[sid] = text
            self.parsed[sid] = avro.schema.parse(text)
        return self.ids[text]

    def encode(self, schema, datum, sid=None):
        """Confluent's wire format of @p datum under @p schema."""
        sid = sid if sid is not None else self.schema_id(schema)
        buf = io.BytesIO()
        buf.write(b"\0" + struct.pack(">I", sid))
        avro.io.DatumWriter(self.parsed[sid]).write(
            datum, avro.io.BinaryEncoder(buf))
        return buf.getvalue()

    def key(self, table, key_id):
        return self.encode(key_schema(table), {"id": key_id})

    def envelope(self, table, env, cols=None, types=None, extra=None):
        """The Avro value of a JSON envelope dict (cmtest.envelope())."""
        src = dict(env["source"])
        datum = {"before": _row(table, env.get("before"), cols, types, extra),
                 "after": _row(table, env.get("after"), cols, types, extra),
                 "source": {f["name"]: src.get(f["name"])
                            for f in SOURCE_SCHEMA["fields"]},
                 "op": env["op"], "ts_ms": env.get("ts_ms"),
                 "transaction": env.get("transaction")}
        return self.encode(envelope_schema(table, cols, types, extra), datum)

    def message(self, table, op, row_or_id, lsn, cols=None, types=None,
                extra=None, **kw):
        """(topic, key, value) as bytes: cmtest.message()'s event in
        Avro."""
        topic, _, value = cmtest.message(table, op, row_or_id, lsn, **kw)
        env = json.loads(value)
        key_id = env["after"]["id"] if env["after"] else env["before"]["id"]
        return (topic, self.key(table, key_id),
                self.envelope(table, env, cols, types, extra))

    def truncate(self, table, lsn, ts_ms=None):
        """(topic, None, value) of a truncate: no key, no row images."""
        env = cmtest.envelope(table, "t", None, None, lsn, 1000 + lsn // 100,
                              ts_ms=ts_ms)
        return (f"{cmtest.PREFIX}.public.{table}", None,
                self.envelope(table, env))

    def replay(self, env, schema=None):
        """The Avro value of a replay envelope dict: a snapshot row (op
        "r") or a range marker (op "range"), as clinicmig-replay writes
        them in JSON. @p schema: the writer schema (default
        schemas/replay.avsc); a variant must keep its field names."""
        schema = schema or replay_schema()
        src = env.get("source")
        table = src.get("table") if isinstance(src, dict) else None
        datum = {"before": _replay_row(env.get("before"), table),
                 "after": _replay_row(env.get("after"), table),
                 "source": ({f: src.get(f)
                             for f in _replay_source_fields(schema)}
                            if isinstance(src, dict) else src),
                 "op": env.get("op"), "ts_ms": env.get("ts_ms"),
                 "range": env.get("range")}
        return self.encode(schema, datum)

    def replay_message(self, msg, schema=None):
        """(topic, key, value): a JSON replay message (cmtest.replay_row(),
        cmtest.range_marker()) with its value in Avro; the key as it was,
        JSON, in bytes."""
        topic, key, value = msg
        return (topic, key.encode() if isinstance(key, str) else key,
                self.replay(json.loads(value), schema))

    def schemas(self):
        """{id: schema text}."""
        return dict(self.texts)

    def write_dir(self, path):
        """Writes every schema as <path>/<id>.avsc."""
        for sid, text in self.texts.items():
            with open(f"{path}/{sid}.avsc", "w", encoding="utf-8") as f:
                f.write(text)
