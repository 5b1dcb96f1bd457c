-- appointment_derive — one appointment row per live legacy appointment,
-- its doctor and patient links the legacy ids while those rows live, else
-- NULL (docs/design.md §2.3). An appointment's links depend only on whether
-- its doctor and patient live, so only those that appeared or vanished
-- bring their appointments in.
-- $1 bigint[]  touched appointment ids
-- $2 bigint[]  users that appeared or vanished
-- $3 bigint[]  patients that appeared or vanished
-- Returns: rows written, rows deleted
WITH ids AS (
  SELECT a.id FROM unnest($1::bigint[]) AS k(v), LATERAL (
    SELECT id FROM :"cm".mirror_appointment
    WHERE id = k.v AND NOT deleted OFFSET 0) AS a
  UNION SELECT a.id FROM unnest($2::bigint[]) AS k(v), LATERAL (
    SELECT id FROM :"cm".mirror_appointment
    WHERE doctor_id = k.v AND NOT deleted OFFSET 0) AS a
  UNION SELECT a.id FROM unnest($3::bigint[]) AS k(v), LATERAL (
    SELECT id FROM :"cm".mirror_appointment
    WHERE patient_id = k.v AND NOT deleted OFFSET 0) AS a
), src AS (
  SELECT m.id, m.clinic_id,
    CASE WHEN u.live THEN m.doctor_id END AS cd,
    CASE WHEN p.live THEN m.patient_id END AS cp,
    m.starts_at, m.ends_at, m.status, m.reason
  FROM ids, LATERAL (
    SELECT * FROM :"cm".mirror_appointment WHERE id = ids.id
    OFFSET 0) AS m
  LEFT JOIN LATERAL (SELECT true AS live FROM :"cm".mirror_user
    WHERE id = m.doctor_id AND NOT deleted OFFSET 0) AS u ON true
  LEFT JOIN LATERAL (SELECT true AS live FROM :"cm".mirror_patient
    WHERE id = m.patient_id AND NOT deleted OFFSET 0) AS p ON true
), up AS (
  INSERT INTO :"v2".appointment AS a (id, clinic_id, clinic_doctor_id,
    clinic_patient_id, starts_at, ends_at, status, reason)
  SELECT id, clinic_id, cd, cp, starts_at, ends_at, status, reason
  FROM src
  ON CONFLICT (id) DO UPDATE SET (clinic_id, clinic_doctor_id,
    clinic_patient_id, starts_at, ends_at, status, reason, updated_at)
    = (EXCLUDED.clinic_id, EXCLUDED.clinic_doctor_id,
    EXCLUDED.clinic_patient_id, EXCLUDED.starts_at, EXCLUDED.ends_at,
    EXCLUDED.status, EXCLUDED.reason, now())
  WHERE (a.clinic_id, a.clinic_doctor_id, a.clinic_patient_id,
    a.starts_at, a.ends_at, a.status, a.reason) IS DISTINCT FROM
    (EXCLUDED.clinic_id, EXCLUDED.clinic_doctor_id,
    EXCLUDED.clinic_patient_id, EXCLUDED.starts_at, EXCLUDED.ends_at,
    EXCLUDED.status, EXCLUDED.reason)
  RETURNING 1
), del AS (
  DELETE FROM :"v2".appointment a WHERE a.id = ANY(ARRAY(
    SELECT k.v FROM unnest($1::bigint[]) AS k(v)
    WHERE NOT EXISTS (SELECT 1 FROM src WHERE src.id = k.v)))
  RETURNING 1
) SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM del);
