-- The row sources the reconciler compares (docs/reconciliation.md,
-- "Checks"). Each gives (id, t): the row's key and its canonical text,
-- every compared column in the same form on both sides of a check:
-- timestamps as UTC text with microseconds, dates ISO, booleans t / f,
-- text as a quoted literal and NULL as the bare marker NULL
-- (quote_nullable), joined by commas. The sessions run with
-- TimeZone = UTC, so a legacy "timestamp without time zone" reads as UTC,
-- as Debezium and the workers read it.
--
-- The id is given in the table's own type, so that the key ranges the
-- bisection adds (diff.sql) can use the primary key's index.
--
-- Placeholders: @legacy@ the legacy schema (quoted), @cm@ the
-- bookkeeping schema, @v2@ the domain schema.

-- ---- legacy-mirror: the legacy table's columns vs the mirror's copy ----

-- name: legacy_doctor
SELECT "id" AS id,
       concat_ws(',',
         quote_nullable("clinicId"::text), quote_nullable("email"),
         quote_nullable("phone"), quote_nullable("firstName"),
         quote_nullable("lastName"), quote_nullable("role"),
         quote_nullable("specialization"), quote_nullable("licenseNumber"),
         quote_nullable(CASE "isActive" WHEN true THEN 't'
                                        WHEN false THEN 'f' END),
         quote_nullable(to_char("createdAt"::timestamptz,
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char("updatedAt"::timestamptz,
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))) AS t
FROM @legacy@."User";

-- name: mirror_doctor
SELECT id,
       concat_ws(',',
         quote_nullable(clinic_id::text), quote_nullable(email),
         quote_nullable(phone), quote_nullable(first_name),
         quote_nullable(last_name), quote_nullable(role),
         quote_nullable(specialization), quote_nullable(license_number),
         quote_nullable(CASE is_active WHEN true THEN 't'
                                       WHEN false THEN 'f' END),
         quote_nullable(to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
         AS t
FROM @cm@.mirror_user
WHERE NOT deleted;

-- name: legacy_patient
SELECT "id" AS id,
       concat_ws(',',
         quote_nullable("clinicId"::text), quote_nullable("firstName"),
         quote_nullable("lastName"), quote_nullable("middleName"),
         quote_nullable("birthDate"::date::text), quote_nullable("gender"),
         quote_nullable("phone"), quote_nullable("email"),
         quote_nullable(to_char("createdAt"::timestamptz,
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char("updatedAt"::timestamptz,
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))) AS t
FROM @legacy@."Patient";

-- name: mirror_patient
SELECT id,
       concat_ws(',',
         quote_nullable(clinic_id::text), quote_nullable(first_name),
         quote_nullable(last_name), quote_nullable(middle_name),
         quote_nullable(birth_date::text), quote_nullable(gender),
         quote_nullable(phone), quote_nullable(email),
         quote_nullable(to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
         AS t
FROM @cm@.mirror_patient
WHERE NOT deleted;

-- name: legacy_appointment
SELECT "id" AS id,
       concat_ws(',',
         quote_nullable("clinicId"::text), quote_nullable("doctorId"::text),
         quote_nullable("patientId"::text),
         quote_nullable(to_char("startsAt"::timestamptz,
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char("endsAt"::timestamptz,
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable("status"), quote_nullable("reason"),
         quote_nullable(to_char("createdAt"::timestamptz,
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char("updatedAt"::timestamptz,
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))) AS t
FROM @legacy@."Appointment";

-- name: mirror_appointment
SELECT id,
       concat_ws(',',
         quote_nullable(clinic_id::text), quote_nullable(doctor_id::text),
         quote_nullable(patient_id::text),
         quote_nullable(to_char(starts_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char(ends_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(status), quote_nullable(reason),
         quote_nullable(to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
         AS t
FROM @cm@.mirror_appointment
WHERE NOT deleted;

-- ---- mirror-v2: v2's clinic-level row as f gives it from the mirror ----
-- (docs/design.md §2.3) vs the row v2 holds.

-- A clinic_doctor for every live user whose role is DOCTOR or whom a live
-- appointment names; is_active is role DOCTOR and isActive.
-- name: expected_doctor
SELECT u.id,
       concat_ws(',', quote_nullable(u.clinic_id::text),
         CASE WHEN coalesce(u.role = 'DOCTOR' AND u.is_active, false)
              THEN 't' ELSE 'f' END) AS t
FROM @cm@.mirror_user u
WHERE NOT u.deleted
  AND (u.role = 'DOCTOR'
       OR EXISTS (SELECT 1 FROM @cm@.mirror_appointment a
                  WHERE a.doctor_id = u.id AND NOT a.deleted));

-- name: v2_doctor
SELECT id,
       concat_ws(',', quote_nullable(clinic_id::text),
         CASE WHEN is_active THEN 't' ELSE 'f' END) AS t
FROM @v2@.clinic_doctor;

-- A clinic_patient for every live patient, with its normalized keys.
-- name: expected_patient
SELECT id,
       concat_ws(',', quote_nullable(clinic_id::text),
         quote_nullable(phone_norm), quote_nullable(email_norm)) AS t
FROM @cm@.mirror_patient
WHERE NOT deleted;

-- name: v2_patient
SELECT id,
       concat_ws(',', quote_nullable(clinic_id::text),
         quote_nullable(phone), quote_nullable(email)) AS t
FROM @v2@.clinic_patient;

-- One appointment per live appointment; a link is the legacy id while
-- the row it names lives in the mirror (it is then a clinic_doctor /
-- clinic_patient), else NULL.
-- name: expected_appointment
SELECT m.id,
       concat_ws(',', quote_nullable(m.clinic_id::text),
         quote_nullable(to_char(m.starts_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char(m.ends_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(m.status), quote_nullable(m.reason),
         quote_nullable(CASE WHEN u.id IS NOT NULL
                             THEN m.doctor_id::text END),
         quote_nullable(CASE WHEN p.id IS NOT NULL
                             THEN m.patient_id::text END)) AS t
FROM @cm@.mirror_appointment m
LEFT JOIN @cm@.mirror_user u ON u.id = m.doctor_id AND NOT u.deleted
LEFT JOIN @cm@.mirror_patient p ON p.id = m.patient_id AND NOT p.deleted
WHERE NOT m.deleted;

-- name: v2_appointment
SELECT id,
       concat_ws(',', quote_nullable(clinic_id::text),
         quote_nullable(to_char(starts_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(to_char(ends_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
         quote_nullable(status), quote_nullable(reason),
         quote_nullable(clinic_doctor_id::text),
         quote_nullable(clinic_patient_id::text)) AS t
FROM @v2@.appointment;
