-- batch_gap — records an offset gap and moves the stored offset past it,
-- in one statement: the worker only moves on because the record exists.
-- $1 text  consumer group
-- $2 text  topic
-- $3 int   partition
-- $4, $5 bigint  the gap's first offset and the one after it
WITH g AS (INSERT INTO :"cm".offset_gap (group_id, topic, partition,
   from_offset, to_offset) VALUES ($1, $2, $3, $4, $5) RETURNING 1)
INSERT INTO :"cm".consumer_offset AS o (group_id, topic, partition,
   next_offset) SELECT $1, $2, $3, $5 FROM g
ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset =
greatest(o.next_offset, EXCLUDED.next_offset), updated_at = now();
