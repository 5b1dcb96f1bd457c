-- patient_write — the clinic_patient rows of the live patients that are
-- touched or changed anchor; the touched patients that are not live lose
-- theirs. Unchanged rows are not written.
-- $1 json      [{"id": patient id, "gid": anchor}]
-- $2 bigint[]  touched patient ids
-- Returns: rows written, rows deleted
WITH m AS (SELECT x.id, x.gid FROM json_to_recordset($1::json)
           AS x(id bigint, gid bigint)
), up_c AS (
  INSERT INTO :"v2".clinic_patient AS c (id, global_patient_id,
    clinic_id, phone, email)
  SELECT mp.id, m.gid, mp.clinic_id, mp.phone_norm, mp.email_norm
  FROM m JOIN :"cm".mirror_patient mp ON mp.id = m.id
  ON CONFLICT (id) DO UPDATE SET (global_patient_id, clinic_id, phone,
    email, updated_at) = (EXCLUDED.global_patient_id,
    EXCLUDED.clinic_id, EXCLUDED.phone, EXCLUDED.email, now())
  WHERE (c.global_patient_id, c.clinic_id, c.phone, c.email)
    IS DISTINCT FROM (EXCLUDED.global_patient_id, EXCLUDED.clinic_id,
    EXCLUDED.phone, EXCLUDED.email)
  RETURNING 1
), del_c AS (
  DELETE FROM :"v2".clinic_patient c WHERE c.id = ANY($2::bigint[])
    AND NOT EXISTS (SELECT 1 FROM m WHERE m.id = c.id)
  RETURNING 1
) SELECT (SELECT count(*) FROM up_c), (SELECT count(*) FROM del_c);
