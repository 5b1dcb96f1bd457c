-- batch_stats — the batch's per-partition counters, added in its
-- transaction (docs/observability.md).
-- $1 text  consumer group
-- $2 json  [{"topic", "partition", "entity", "consumed", "applied",
--            "stale", "skipped", "dead_lettered"}]
INSERT INTO :"cm".partition_stats AS s (group_id, topic, partition,
entity, consumed, applied, stale, skipped, dead_lettered)
SELECT $1, x.topic, x.partition, x.entity, x.consumed, x.applied,
        x.stale, x.skipped, x.dead_lettered
FROM json_to_recordset($2::json) AS x(topic text, partition int,
   entity text, consumed bigint, applied bigint, stale bigint,
   skipped bigint, dead_lettered bigint)
ON CONFLICT (group_id, topic, partition, entity) DO UPDATE SET
consumed = s.consumed + EXCLUDED.consumed,
applied = s.applied + EXCLUDED.applied,
stale = s.stale + EXCLUDED.stale,
skipped = s.skipped + EXCLUDED.skipped,
dead_lettered = s.dead_lettered + EXCLUDED.dead_lettered,
updated_at = now();
