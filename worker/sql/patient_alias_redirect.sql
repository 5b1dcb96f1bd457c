-- patient_alias_redirect — aliases that pointed at a retired anchor follow
-- it to its new component.
-- $1 json  [{"alias_id": retired anchor, "gid": its new component}]
UPDATE :"v2".global_patient_alias a
SET global_patient_id = x.gid, merged_at = now()
FROM json_to_recordset($1::json) AS x(alias_id bigint, gid bigint)
WHERE a.global_patient_id = x.alias_id;
