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
"""

import json

import avroconv
from avroconv import (SOURCE_SCHEMA, TABLE_COLS, TIME_TYPES,
                      TRANSACTION_SCHEMA, envelope_schema, key_schema,
                      nullable, value_schema)

import cmtest

__all__ = ["SOURCE_SCHEMA", "TABLE_COLS", "TIME_TYPES", "TRANSACTION_SCHEMA",
           "Writer", "envelope_schema", "key_schema", "nullable",
           "value_schema"]


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
