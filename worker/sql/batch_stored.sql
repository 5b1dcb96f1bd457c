-- batch_stored — the stored next offset of one partition, where an
-- assigned partition resumes.
-- $1 text  consumer group
-- $2 text  topic
-- $3 int   partition
-- Returns: next_offset
SELECT next_offset FROM :"cm".consumer_offset
WHERE group_id = $1 AND topic = $2 AND partition = $3;
