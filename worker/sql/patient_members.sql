-- patient_members — every live member of some components, and the live
-- touched patients that belong to none yet: what a batch that may split a
-- component recomputes.
-- $1 bigint[]  anchors
-- $2 bigint[]  touched patient ids
-- Returns: as patient_frame
SELECT m.id, c.global_patient_id, m.phone_norm, m.email_norm,
  m.birth_date::text, m.deleted, c.phone, c.email
FROM unnest($1::bigint[]) AS g(v), LATERAL (
   SELECT id, global_patient_id, phone, email FROM :"v2".clinic_patient
   WHERE global_patient_id = g.v OFFSET 0) AS c, LATERAL (
   SELECT id, phone_norm, email_norm, birth_date, deleted
   FROM :"cm".mirror_patient WHERE id = c.id AND NOT deleted
   OFFSET 0) AS m
UNION ALL SELECT m.id, NULL, m.phone_norm, m.email_norm,
  m.birth_date::text, m.deleted, NULL, NULL
FROM unnest($2::bigint[]) AS k(v), LATERAL (
   SELECT id, phone_norm, email_norm, birth_date, deleted
   FROM :"cm".mirror_patient WHERE id = k.v AND NOT deleted
   OFFSET 0) AS m
WHERE NOT EXISTS (SELECT 1 FROM :"v2".clinic_patient c
                   WHERE c.id = m.id)
ORDER BY 1;
