-- patient_regroup — the batch's merges and splits, for operators
-- (docs/observability.md §5).
-- $1 json  [{"kind": "merge" or "split", "gid": anchor, "others": [ids]}]
INSERT INTO :"cm".patient_regroup (kind, global_patient_id, others)
SELECT x.kind, x.gid, x.others FROM json_to_recordset($1::json)
   AS x(kind text, gid bigint, others bigint[]);
