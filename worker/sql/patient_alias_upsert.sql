-- patient_alias_upsert — a retired anchor becomes an alias of the component
-- that holds its patient now (or its successor's).
-- $1 json  [{"alias_id": retired anchor, "gid": its new component}]
INSERT INTO :"v2".global_patient_alias (alias_id, global_patient_id)
SELECT alias_id, gid FROM json_to_recordset($1::json)
   AS x(alias_id bigint, gid bigint)
ON CONFLICT (alias_id) DO UPDATE SET
global_patient_id = EXCLUDED.global_patient_id, merged_at = now();
