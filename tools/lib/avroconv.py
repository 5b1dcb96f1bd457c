"""avroconv.py -- Debezium's change events as its AvroConverter writes them,
and read back.

NOTES
Written with Debian's python3-avro, so that the worker's own Avro decoder
(worker/decode_avro.c) is checked against an independent writer. A message
is framed in Confluent's wire format: byte 0, the 4-byte big-endian schema
id, then Avro binary (docs/design.md §1.2).

The writer schemas follow the converter's mapping of Kafka Connect
schemas: an optional field is a union ["null", T] with default null,
semantic types keep their name in `connect.name` (io.debezium.time.Date on
an int, ZonedTimestamp on a string), the envelope is the record
<prefix>.<schema>.<Table>.Envelope with before/after of the record
...Value, source, op, ts_ms and transaction; the key is the record ...Key
with id. A table's columns can be changed (added, dropped, a timestamp
written as MicroTimestamp or Timestamp) to make other writer versions.
Only the tables clinicmig maps have column types here; a message of
another table is left as it is.

Writer.convert() turns one kcat -J line of a JSON event (what
clinicmig-gen writes, what kcat reads from a JSON topic) into the same
event in Avro: key_b64 and payload_b64, a tombstone's payload staying
null. Schemas get ids in the order they are first used, or, with a
registry, the ids the registry gives when they are registered
(RegistryClient.register, `POST /subjects/<topic>-value/versions` as the
converter does); write_dir() stores them as <id>.avsc for schema.dir.

Reader reads such messages back with their writer schema, from a
directory of <id>.avsc files (asked first) or a registry, as the worker's
schema source does (worker/schemas.c): NotFound is the message's fault (no
such id, a body that does not match), Unavailable the registry's.
"""

import base64
import datetime
import io
import json
import os
import ssl
import struct
import urllib.error
import urllib.request

import avro.errors
import avro.io
import avro.schema

# The columns clinicmig reads, with the catalog's types and nullability
# (docs/design.md §1.1, worker/catalog.c, schemas/legacy.sql).
TABLE_COLS = {
    "User": ["id", "clinicId", "email", "phone", "firstName", "lastName",
             "role", "specialization", "licenseNumber", "isActive",
             "createdAt", "updatedAt"],
    "Patient": ["id", "clinicId", "firstName", "lastName", "middleName",
                "birthDate", "gender", "phone", "email", "createdAt",
                "updatedAt"],
    "Appointment": ["id", "clinicId", "doctorId", "patientId", "startsAt",
                    "endsAt", "status", "reason", "createdAt", "updatedAt"],
}
NULLABLE = {
    "User": {"phone", "specialization", "licenseNumber"},
    "Patient": {"middleName", "birthDate", "gender", "phone", "email"},
    "Appointment": {"reason"},
}
ZONED = "io.debezium.time.ZonedTimestamp"
# column: (Avro type, connect.name); every other column is a string
COLUMN_TYPES = {
    "id": ("int", None), "clinicId": ("int", None),
    "doctorId": ("int", None), "patientId": ("int", None),
    "isActive": ("boolean", None),
    "birthDate": ("int", "io.debezium.time.Date"),
    "createdAt": ("string", ZONED), "updatedAt": ("string", ZONED),
    "startsAt": ("string", ZONED), "endsAt": ("string", ZONED),
}

# Debezium's temporal types as an integer column: (Avro type, connect.name,
# logicalType, unit per second).
TIME_TYPES = {
    "micro": ("long", "io.debezium.time.MicroTimestamp", "timestamp-micros",
              1000000),
    "millis": ("long", "io.debezium.time.Timestamp", "timestamp-millis",
               1000),
}

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# how RegistryClient's requests name themselves to a registry
USER_AGENT = "clinicmig-avroconv"


def nullable(table, col):
    """The catalog's nullability (include/clinicmig/cm_catalog.h)."""
    return col in NULLABLE.get(table, ())


def _column_type(table, col, variant):
    avro_type, sem = COLUMN_TYPES.get(col, ("string", None))
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


def _ns(table, ns):
    return ns or f"legacy.public.{table}"


def value_schema(table, cols=None, types=None, extra=None, ns=None):
    """The ...Value record. @p cols: the columns the writer has (default:
    the table's); @p types: {column: "micro" | "millis"}; @p extra: added
    columns {name: Avro type} the catalog does not know; @p ns: the
    record's namespace, the topic <prefix>.<schema>.<Table>."""
    ns = _ns(table, ns)
    fields = []
    for c in cols or TABLE_COLS[table]:
        t, opt = _column_type(table, c, (types or {}).get(c))
        f = {"name": c, "type": t}
        if opt:
            f["default"] = None
        fields.append(f)
    for c, t in (extra or {}).items():
        fields.append({"name": c, "type": ["null", t], "default": None})
    return {"type": "record", "name": "Value", "namespace": ns,
            "fields": fields, "connect.name": f"{ns}.Value"}


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


def envelope_schema(table, cols=None, types=None, extra=None, ns=None):
    ns = _ns(table, ns)
    return {"type": "record", "name": "Envelope", "namespace": ns,
            "fields": [
                {"name": "before", "type": [
                    "null", value_schema(table, cols, types, extra, ns)],
                 "default": None},
                {"name": "after", "type": ["null", "Value"],
                 "default": None},
                {"name": "source", "type": SOURCE_SCHEMA},
                {"name": "op", "type": "string"},
                {"name": "ts_ms", "type": ["null", "long"], "default": None},
                {"name": "transaction", "type": ["null", TRANSACTION_SCHEMA],
                 "default": None}],
            "connect.version": 2, "connect.name": f"{ns}.Envelope"}


def key_schema(table, ns=None):
    ns = _ns(table, ns)
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


def _zero(col):
    """What Debezium writes for a required column a partial before image
    (REPLICA IDENTITY DEFAULT) lacks: the type's zero value."""
    avro_type, sem = COLUMN_TYPES.get(col, ("string", None))
    if sem == ZONED:
        return "1970-01-01T00:00:00Z"
    return {"boolean": False, "string": ""}.get(avro_type, 0)


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
            v = _zero(c)
        out[c] = v
    for c in extra or {}:
        out[c] = row.get(c)
    return out


def _json(v):
    """A kcat -J key or payload (JSON text, object or null) as an object,
    the schemas-enabled converter's {schema, payload} unwrapped."""
    if isinstance(v, (str, bytes)):
        v = json.loads(v)
    if isinstance(v, dict) and set(v) == {"schema", "payload"}:
        v = v["payload"]
    return v


def is_avro(data):
    """Whether @p data (bytes or None) is in Confluent's wire format."""
    return data is not None and len(data) >= 5 and data[:1] == b"\0"


class Writer:
    """Writes Avro messages and remembers their schemas by id."""

    def __init__(self, first_id=1, register=None):
        """@register: None, or a function (subject, schema text) -> id, a
        registry's (RegistryClient.register)."""
        self.next_id = first_id
        self.register = register
        self.ids = {}      # schema text -> id
        self.texts = {}    # id -> schema text
        self.parsed = {}   # id -> avro.schema.Schema

    def schema_id(self, schema, subject=None):
        text = json.dumps(schema, sort_keys=True)
        if text not in self.ids:
            if self.register is not None:
                sid = self.register(subject or schema["connect.name"], text)
            else:
                sid = self.next_id
                self.next_id += 1
            self.ids[text] = sid
            self.texts[sid] = text
            self.parsed[sid] = avro.schema.parse(text)
        return self.ids[text]

    def encode(self, schema, datum, sid=None, subject=None):
        """Confluent's wire format of @p datum under @p schema."""
        sid = sid if sid is not None else self.schema_id(schema, subject)
        buf = io.BytesIO()
        buf.write(b"\0" + struct.pack(">I", sid))
        avro.io.DatumWriter(self.parsed[sid]).write(
            datum, avro.io.BinaryEncoder(buf))
        return buf.getvalue()

    def key(self, table, key_id, topic=None):
        """The ...Key record of @p key_id; @p topic names the namespace
        and the subject (default legacy.public.<table>)."""
        return self.encode(key_schema(table, topic), {"id": key_id},
                           subject=f"{_ns(table, topic)}-key")

    def envelope(self, table, env, cols=None, types=None, extra=None,
                 topic=None):
        """The Avro value of a JSON envelope dict."""
        src = dict(env["source"])
        datum = {"before": _row(table, env.get("before"), cols, types, extra),
                 "after": _row(table, env.get("after"), cols, types, extra),
                 "source": {f["name"]: src.get(f["name"])
                            for f in SOURCE_SCHEMA["fields"]},
                 "op": env["op"], "ts_ms": env.get("ts_ms"),
                 "transaction": env.get("transaction")}
        return self.encode(envelope_schema(table, cols, types, extra, topic),
                           datum, subject=f"{_ns(table, topic)}-value")

    def convert(self, m):
        """The kcat -J line @p m (a dict: topic, partition, key, payload,
        ...) of a Debezium JSON event, with or without schemas, as the
        same event in Avro: a copy with key_b64 and payload_b64 in place
        of key and payload (a tombstone's payload stays null). Lines of
        tables without column types here are returned as they are."""
        table = m["topic"].rsplit(".", 1)[-1]
        if table not in TABLE_COLS:
            return m
        out = {k: v for k, v in m.items()
               if k not in ("key", "payload", "key_b64", "payload_b64")}
        key = _json(m.get("key"))
        env = _json(m.get("payload"))
        if key is not None:
            out["key_b64"] = base64.b64encode(
                self.key(table, key["id"], m["topic"])).decode()
        else:
            out["key"] = None
        if env is not None:
            out["payload_b64"] = base64.b64encode(
                self.envelope(table, env, topic=m["topic"])).decode()
        else:
            out["payload"] = None
        return out

    def schemas(self):
        """{id: schema text}."""
        return dict(self.texts)

    def write_dir(self, path):
        """Writes every schema as <path>/<id>.avsc."""
        for sid, text in self.texts.items():
            with open(f"{path}/{sid}.avsc", "w", encoding="utf-8") as f:
                f.write(text)


class NotFound(Exception):
    """A message the schema source cannot read: no such id, a schema that
    does not parse, a body that does not match it."""


class Unavailable(Exception):
    """The registry cannot answer for now (unreachable, 5xx, 401, 403)."""


class RegistryClient:
    """Confluent's REST API: the two calls clinicmig's tools make."""

    def __init__(self, url, user_info=None, ca=None, timeout=10.0):
        self.url = url.rstrip("/")
        self.headers = {"Accept": CONTENT_TYPE, "User-Agent": USER_AGENT}
        if user_info:
            self.headers["Authorization"] = "Basic " + base64.b64encode(
                user_info.encode()).decode()
        self.context = ssl.create_default_context(cafile=ca) \
            if self.url.startswith("https:") else None
        self.timeout = timeout

    def _call(self, path, body=None):
        """(status, decoded JSON body); Unavailable if nothing answered."""
        req = urllib.request.Request(
            self.url + path, headers=dict(self.headers),
            data=None if body is None else json.dumps(body).encode())
        if body is not None:
            req.add_header("Content-Type", CONTENT_TYPE)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout,
                                        context=self.context) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, None
        except (OSError, ValueError) as e:
            raise Unavailable(f"schema registry {self.url}: {e}")

    def register(self, subject, text):
        """Registers the schema @p text under @p subject; its id."""
        status, body = self._call(
            f"/subjects/{urllib.request.quote(subject)}/versions",
            {"schema": text})
        if status != 200 or not isinstance(body, dict) or "id" not in body:
            raise Unavailable(f"schema registry {self.url}: registering "
                              f"under {subject}: HTTP status {status}")
        return body["id"]

    def schema(self, sid):
        """The schema text of id @p sid."""
        status, body = self._call(f"/schemas/ids/{sid}")
        if status == 404:
            raise NotFound(f"schema id {sid}: not found in the registry")
        if status != 200 or not isinstance(body, dict) or \
                not isinstance(body.get("schema"), str):
            raise Unavailable(f"schema registry {self.url}: schema id {sid}:"
                              f" HTTP status {status}")
        return body["schema"]


class Reader:
    """Reads Avro messages in Confluent's wire format with their writer
    schemas, from a directory of <id>.avsc (asked first) and a registry."""

    def __init__(self, schema_dir=None, registry=None):
        self.dir = schema_dir
        self.registry = registry
        self.cache = {}   # id -> avro.schema.Schema

    def _schema(self, sid):
        if sid in self.cache:
            return self.cache[sid]
        text = None
        if self.dir is not None:
            path = os.path.join(self.dir, f"{sid}.avsc")
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    text = f.read()
        if text is None and self.registry is not None:
            text = self.registry.schema(sid)
        if text is None:
            raise NotFound(f"schema id {sid}: no schema source has it")
        try:
            s = avro.schema.parse(text)
        except (avro.errors.AvroException, ValueError) as e:
            raise NotFound(f"schema id {sid}: does not parse ({e})")
        self.cache[sid] = s
        return s

    def read(self, data):
        """The datum of the message @p data (bytes, is_avro())."""
        if not is_avro(data):
            raise NotFound("not in Confluent's wire format")
        sid = struct.unpack(">I", data[1:5])[0]
        schema = self._schema(sid)
        buf = io.BytesIO(data[5:])
        try:
            datum = avro.io.DatumReader(schema).read(
                avro.io.BinaryDecoder(buf))
        except (avro.errors.AvroException, EOFError, ValueError,
                TypeError, struct.error, UnicodeDecodeError) as e:
            raise NotFound(f"schema id {sid}: the body does not match its "
                           f"writer schema ({type(e).__name__})")
        if buf.tell() != len(data) - 5:
            raise NotFound(f"schema id {sid}: trailing bytes after the Avro "
                           "data")
        return datum
