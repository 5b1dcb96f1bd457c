"""cmavro.py -- Debezium's Avro change events of cmtest's rows.

NOTES
The worker's Avro decoder (worker/decode_avro.c) is checked against an
independent writer: Debian's python3-avro, through tools/lib/avroconv.py
(the writer schemas, Confluent's wire format, docs/design.md §1.2). This
module adds what the tests build by hand: the events cmtest.message()
builds as JSON (the same row dicts, the same envelope), written as
Debezium's AvroConverter does, under writer versions a test chooses
(columns added or dropped, a timestamp written as MicroTimestamp or
Timestamp), and truncates.

Schemas get ids in the order they are first used; write_dir() stores
them as <id>.avsc for schema.dir, schemas() hands them to a registry.

clinicmig-replay's own messages in Avro use one schema for the whole
replay topic, schemas/replay.avsc (docs/design.md §3): replay_schema()
reads it from the repository and Writer.replay() writes a snapshot row or
a range marker, given as the JSON envelope clinicmig-replay writes
(tools/replay/README.md, "Output"), with it. The key stays JSON text.
"""

import json
import os

import avroconv
from avroconv import (SOURCE_SCHEMA, TABLE_COLS, TIME_TYPES,
                      TRANSACTION_SCHEMA, envelope_schema, key_schema,
                      nullable, value_schema)
from avroconv import _to_date

import cmtest

__all__ = ["SOURCE_SCHEMA", "TABLE_COLS", "TIME_TYPES", "TRANSACTION_SCHEMA",
           "Writer", "envelope_schema", "key_schema", "nullable",
           "value_schema"]


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


class Writer(avroconv.Writer):
    """Writes Avro messages of cmtest's events; remembers their schemas."""

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
