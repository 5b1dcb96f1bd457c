-- patient_moves — every member of a component that stayed whole but whose
-- anchor changed moves to the new anchor.
-- $1 json  [{"from": old anchor, "to": new anchor}]
UPDATE :"v2".clinic_patient c
SET global_patient_id = x.to, updated_at = now()
FROM json_to_recordset($1::json) AS x("from" bigint, "to" bigint)
WHERE c.global_patient_id = x.from;
