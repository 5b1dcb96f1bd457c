"""cmpublish.py -- publish Kafka messages given as kcat -J lines.

NOTES
Lines are in the form `kcat -C -J` prints them (topic, partition, key,
payload, headers; key and payload as JSON text or as JSON objects, or as
base64 in key_b64 / payload_b64 for binary messages such as Avro in
Confluent's wire format; a *_b64 member wins over its text twin).
Messages go to the partition each line names (or by key, with Kafka's
default partitioner, where it names none), in file order, so the order
within every topic-partition is the file's. publish() waits until the
broker has acknowledged every message; dropped() then tells whether the
cluster still holds them all: the local development cluster silently drops
the oldest messages of a partition past about 5 MiB, and a publish that
lost data must not look like a success.

A capture holds whatever a Debezium connector published, often more
tables than clinicmig maps (`legacy.public.Clinic`, say). unmapped()
names the messages of such tables; publishing them is harmless, since the
workers subscribe only to the topics of the tables they map.
"""

import base64
import binascii
import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition


MAPPED_TABLES = ("User", "Patient", "Appointment")


class PublishError(Exception):
    """Messages that could not be read or were not delivered."""


def text(v):
    """A kcat -J key/payload (string, object or null) as bytes or None."""
    if v is None:
        return None
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v, separators=(",", ":")).encode()


def message_bytes(m, name):
    """Key or payload of a kcat -J line as bytes or None: <name>_b64
    (base64) if the line has it, else <name>."""
    b64 = name + "_b64"
    if b64 in m:
        if m[b64] is None:
            return None
        return base64.b64decode(m[b64], validate=True)
    return text(m.get(name))


def _as_text(b):
    """@p b as text if it reads as UTF-8 JSON-safe text, else None."""
    if b[:1] == b"\0":
        return None
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def kcat_line(topic, partition, offset, key, value):
    """A kcat -J line of one message: key and payload as text where they
    are text, as key_b64 / payload_b64 (base64) where they are binary
    (Avro in Confluent's wire format starts with byte 0)."""
    m = {"topic": topic, "partition": partition, "offset": offset}
    for name, b in (("key", key), ("payload", value)):
        t = _as_text(b) if b is not None else None
        if b is None or t is not None:
            m[name] = t
        else:
            m[name + "_b64"] = base64.b64encode(b).decode()
    return json.dumps(m, ensure_ascii=False)


def table_of(topic):
    """The table a Debezium topic <prefix>.<schema>.<table> names, or None
    for a topic not so named (the replay or dead-letter topic, say)."""
    parts = topic.split(".")
    return parts[-1] if len(parts) >= 3 else None


def unmapped(counts):
    """{table: messages} of the tables clinicmig does not map, from
    {topic: messages}."""
    out = {}
    for topic, n in counts.items():
        table = table_of(topic)
        if table is not None and table not in MAPPED_TABLES:
            out[table] = out.get(table, 0) + n
    return out


def describe_tables(counts):
    """{table: messages} as "Clinic 12, Doctor 3"."""
    return ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))


def headers(h):
    if not h:
        return None
    if isinstance(h, dict):
        return [(k, text(v)) for k, v in h.items()]
    return [(h[i], text(h[i + 1])) for i in range(0, len(h) - 1, 2)]


def read_lines(paths):
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                m = json.loads(line)
                yield m["topic"], m.get("partition", -1), \
                    message_bytes(m, "key"), message_bytes(m, "payload"), \
                    headers(m.get("headers"))
            except (ValueError, KeyError, TypeError, binascii.Error) as e:
                raise PublishError(f"{path}:{n}: not a kcat -J line ({e})")
        if f is not sys.stdin:
            f.close()


def with_duplicates(msgs, share, rnd):
    """Redeliveries: a share of messages is sent again later in the same
    partition (at-least-once delivery), keeping the original order."""
    out = []
    pending = []
    for m in msgs:
        out.append(m)
        if rnd.random() < share:
            pending.append(m)
        if pending and rnd.random() < 0.3:
            out.append(pending.pop(0))
    return out + pending


def publish(bootstrap, msgs):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 10,
                  "partitioner": "murmur2_random",
                  "message.timeout.ms": 120000})
    failed = []
    counts = {}

    def done(err, msg):
        if err:
            failed.append(err)

    for topic, part, key, value, hdrs in msgs:
        kw = {"key": key, "value": value, "on_delivery": done}
        if part is not None and part >= 0:
            kw["partition"] = part
        if hdrs:
            kw["headers"] = hdrs
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        counts[topic] = counts.get(topic, 0) + 1
    left = p.flush(120)
    if left or failed:
        raise PublishError(f"{left} messages unsent, {len(failed)} failed "
                           f"({failed[:1]})")
    return counts


def dropped(bootstrap, topics):
    """Messages the cluster no longer has at the start of a partition."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cm-publish"})
    lost = 0
    for t in topics:
        md = c.list_topics(t, timeout=20).topics[t]
        for part in md.partitions:
            low, _ = c.get_watermark_offsets(TopicPartition(t, part),
                                             timeout=20)
            lost += low
    c.close()
    return lost


def read_all(bootstrap, topic, timeout=30.0):
    """Every message of @topic, as the dicts kcat -C -J prints (key and
    payload as text, or key_b64/payload_b64 for bytes that are not
    UTF-8), partition by partition in offset order."""
    import base64
    c = Consumer({"bootstrap.servers": bootstrap,
                  "group.id": f"cmpublish-read-{topic}",
                  "enable.auto.commit": False,
                  "enable.partition.eof": True})
    try:
        md = c.list_topics(topic, timeout=timeout).topics[topic]
        c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        left, out = len(md.partitions), []
        while left:
            m = c.poll(timeout)
            if m is None:
                raise PublishError(f"{topic}: no end of partition in "
                                   f"{timeout:g} s")
            if m.error():
                left -= 1
                continue
            line = {"topic": topic, "partition": m.partition(),
                    "offset": m.offset(), "tstype": "create",
                    "ts": m.timestamp()[1], "broker": -1,
                    "headers": [x for kv in (m.headers() or [])
                                for x in (kv[0], (kv[1] or b"").decode(
                                    errors="replace"))] or None}
            for name, raw in (("key", m.key()), ("payload", m.value())):
                try:
                    line[name] = None if raw is None else raw.decode()
                except UnicodeDecodeError:
                    line[name + "_b64"] = base64.b64encode(raw).decode()
            out.append(line)
        return sorted(out, key=lambda x: (x["partition"], x["offset"]))
    finally:
        c.close()

