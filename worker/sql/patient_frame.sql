-- patient_frame — the touched patients, the live holders of their phone
-- and email keys, and the patients asked for by id (derive_patient.c).
-- $1 bigint[]  touched patient ids and the anchors found so far
-- $2 text[]    phone keys
-- $3 text[]    email keys
-- Returns: id, old anchor, phone key, email key, birth date, deleted, and
-- the phone and email keys the patient was last derived with
WITH m AS (
  SELECT m.* FROM unnest($1::bigint[]) AS k(v), LATERAL (
    SELECT id, phone_norm, email_norm, birth_date, deleted
    FROM :"cm".mirror_patient WHERE id = k.v OFFSET 0) AS m
  UNION SELECT m.* FROM unnest($2::text[]) AS k(v), LATERAL (
    SELECT id, phone_norm, email_norm, birth_date, deleted
    FROM :"cm".mirror_patient WHERE NOT deleted AND phone_norm = k.v
    OFFSET 0) AS m
  UNION SELECT m.* FROM unnest($3::text[]) AS k(v), LATERAL (
    SELECT id, phone_norm, email_norm, birth_date, deleted
    FROM :"cm".mirror_patient WHERE NOT deleted AND email_norm = k.v
    OFFSET 0) AS m
) SELECT m.id, c.global_patient_id, m.phone_norm, m.email_norm,
  m.birth_date::text, m.deleted, c.phone, c.email
FROM m LEFT JOIN LATERAL (
   SELECT global_patient_id, phone, email FROM :"v2".clinic_patient
   WHERE id = m.id OFFSET 0) AS c ON true
ORDER BY 1;
