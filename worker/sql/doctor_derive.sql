-- doctor_derive — global_doctor and clinic_doctor rows of the touched
-- users and of everyone sharing one of the email keys (docs/design.md §2.3).
-- A clinic_doctor for every live user whose role is DOCTOR or whom a live
-- appointment names; users with one email key share the global_doctor of
-- the group's smallest id, its profile from the most recently updated
-- member. Unchanged rows are not written.
-- $1 bigint[]  touched user ids
-- $2 text[]    their email keys, old and new
-- Returns: global doctors written, clinic doctors written, clinic doctors
-- deleted
WITH cand AS (
  SELECT u.* FROM unnest($1::bigint[]) AS k(v), LATERAL (
    SELECT * FROM :"cm".mirror_user WHERE id = k.v AND NOT deleted
    OFFSET 0) AS u
  UNION SELECT u.* FROM unnest($2::text[]) AS k(v), LATERAL (
    SELECT * FROM :"cm".mirror_user
    WHERE email_norm = k.v AND NOT deleted OFFSET 0) AS u
), elig AS (
  SELECT u.* FROM cand u LEFT JOIN LATERAL (
    SELECT true AS named FROM :"cm".mirror_appointment
    WHERE doctor_id = u.id AND NOT deleted LIMIT 1) AS a ON true
  WHERE u.role = 'DOCTOR' OR a.named
), grp AS (
  SELECT e.*, CASE WHEN e.email_norm IS NULL THEN e.id
    ELSE min(e.id) OVER (PARTITION BY e.email_norm) END AS gid
  FROM elig e
), prof AS (
  SELECT DISTINCT ON (gid) gid, email_norm, first_name, last_name,
         specialization, license_number
  FROM grp ORDER BY gid, updated_at DESC NULLS LAST, id DESC
), up_g AS (
  INSERT INTO :"v2".global_doctor AS g (id, email, first_name,
    last_name, specialization, license_number)
  SELECT gid, email_norm, first_name, last_name, specialization,
         license_number FROM prof
  ON CONFLICT (id) DO UPDATE SET (email, first_name, last_name,
    specialization, license_number, updated_at) = (EXCLUDED.email,
    EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.specialization,
    EXCLUDED.license_number, now())
  WHERE (g.email, g.first_name, g.last_name, g.specialization,
         g.license_number) IS DISTINCT FROM (EXCLUDED.email,
         EXCLUDED.first_name, EXCLUDED.last_name,
         EXCLUDED.specialization, EXCLUDED.license_number)
  RETURNING 1
), up_c AS (
  INSERT INTO :"v2".clinic_doctor AS c (id, global_doctor_id, clinic_id,
    is_active)
  SELECT id, gid, clinic_id, coalesce(role = 'DOCTOR' AND is_active,
         false) FROM grp
  ON CONFLICT (id) DO UPDATE SET (global_doctor_id, clinic_id,
    is_active, updated_at) = (EXCLUDED.global_doctor_id,
    EXCLUDED.clinic_id, EXCLUDED.is_active, now())
  WHERE (c.global_doctor_id, c.clinic_id, c.is_active)
    IS DISTINCT FROM (EXCLUDED.global_doctor_id, EXCLUDED.clinic_id,
    EXCLUDED.is_active)
  RETURNING 1
), del_c AS (
  DELETE FROM :"v2".clinic_doctor c WHERE c.id = ANY($1::bigint[])
    AND NOT EXISTS (SELECT 1 FROM grp WHERE grp.id = c.id)
  RETURNING 1
) SELECT (SELECT count(*) FROM up_g), (SELECT count(*) FROM up_c),
         (SELECT count(*) FROM del_c);
