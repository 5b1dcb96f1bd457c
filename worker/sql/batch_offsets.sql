-- batch_offsets — the batch's next offsets, in its transaction. A stored
-- offset never moves back (greatest): a worker that lost the partition
-- and commits late cannot rewind it.
-- $1 text  consumer group
-- $2 json  [{"topic", "partition", "next_offset"}]
INSERT INTO :"cm".consumer_offset AS o (group_id, topic, partition,
next_offset) SELECT $1, x.topic, x.partition, x.next_offset
FROM json_to_recordset($2::json)
   AS x(topic text, partition int, next_offset bigint)
ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset =
greatest(o.next_offset, EXCLUDED.next_offset), updated_at = now();
