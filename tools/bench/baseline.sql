-- baseline.sql: the one statement per event that every baseline of the
-- benchmark runs (baseline.py per-event and batched, node/per-event.js;
-- docs/performance.md, "The baselines").
--
-- One statement per legacy table, after a "-- table: NAME" line. It
-- upserts the event's row into the mirror of the same tables clinicmig
-- writes (schemas/migrations/), guarded by the stream position as
-- clinicmig guards live changes (docs/design.md §2.2: a change older than
-- the stored one is stale), and, when the mirror row changed, upserts or
-- deletes the rows of v2 made from that one row. There is no grouping:
-- a doctor is his own global_doctor, a patient his own global_patient
-- (member_count 1), an appointment links the clinic_doctor and
-- clinic_patient rows that exist when it is applied, and nothing is
-- re-linked later. Phones get no key (no libphonenumber); an email's key
-- is the trimmed, lower-cased address with exactly one '@'.
--
-- Parameters: the legacy columns of the table in the order of
-- docs/design.md §1.1 (NULL for a delete, but the id), then deleted,
-- lsn, txId, snapshot (op r), topic, partition, offset. A date is sent as
-- Debezium writes it: days since 1970-01-01.

-- table: User
WITH m AS (
  INSERT INTO clinicmig.mirror_user AS t
    (id, clinic_id, email, phone, first_name, last_name, role,
     specialization, license_number, is_active, created_at, updated_at,
     email_norm, deleted, lsn, tx_id, snapshot, src_topic, src_partition,
     src_offset)
  VALUES ($1::bigint, $2::bigint, $3::text, $4::text, $5::text, $6::text,
          $7::text, $8::text, $9::text, $10::boolean, $11::timestamptz,
          $12::timestamptz,
          CASE WHEN lower(btrim($3::text)) ~ '^[^@]+@[^@]+$'
               THEN lower(btrim($3::text)) END,
          $13::boolean, $14::bigint, $15::bigint, $16::boolean, $17::text,
          $18::integer, $19::bigint)
  ON CONFLICT (id) DO UPDATE SET
    clinic_id = EXCLUDED.clinic_id, email = EXCLUDED.email,
    phone = EXCLUDED.phone, first_name = EXCLUDED.first_name,
    last_name = EXCLUDED.last_name, role = EXCLUDED.role,
    specialization = EXCLUDED.specialization,
    license_number = EXCLUDED.license_number,
    is_active = EXCLUDED.is_active, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, email_norm = EXCLUDED.email_norm,
    deleted = EXCLUDED.deleted, lsn = EXCLUDED.lsn, tx_id = EXCLUDED.tx_id,
    snapshot = EXCLUDED.snapshot, src_topic = EXCLUDED.src_topic,
    src_partition = EXCLUDED.src_partition,
    src_offset = EXCLUDED.src_offset, applied_at = now()
  WHERE t.lsn IS NULL OR t.lsn < EXCLUDED.lsn
  RETURNING id, clinic_id, email_norm, first_name, last_name, role,
            specialization, license_number, is_active, deleted),
live AS (SELECT * FROM m WHERE NOT deleted AND role = 'DOCTOR'),
gd AS (
  INSERT INTO v2.global_doctor AS g
    (id, email, first_name, last_name, specialization, license_number)
  SELECT id, email_norm, first_name, last_name, specialization,
         license_number FROM live
  ON CONFLICT (id) DO UPDATE SET
    email = EXCLUDED.email, first_name = EXCLUDED.first_name,
    last_name = EXCLUDED.last_name, specialization = EXCLUDED.specialization,
    license_number = EXCLUDED.license_number, updated_at = now()),
cd AS (
  INSERT INTO v2.clinic_doctor AS c (id, global_doctor_id, clinic_id,
                                     is_active)
  SELECT id, id, clinic_id, is_active FROM live
  ON CONFLICT (id) DO UPDATE SET
    global_doctor_id = EXCLUDED.global_doctor_id,
    clinic_id = EXCLUDED.clinic_id, is_active = EXCLUDED.is_active,
    updated_at = now()),
dc AS (
  DELETE FROM v2.clinic_doctor c USING m
  WHERE c.id = m.id AND (m.deleted OR m.role IS DISTINCT FROM 'DOCTOR')),
dg AS (
  DELETE FROM v2.global_doctor g USING m
  WHERE g.id = m.id AND (m.deleted OR m.role IS DISTINCT FROM 'DOCTOR'))
SELECT count(*) FROM m

-- table: Patient
WITH m AS (
  INSERT INTO clinicmig.mirror_patient AS t
    (id, clinic_id, first_name, last_name, middle_name, birth_date, gender,
     phone, email, created_at, updated_at, phone_norm, email_norm, deleted,
     lsn, tx_id, snapshot, src_topic, src_partition, src_offset)
  VALUES ($1::bigint, $2::bigint, $3::text, $4::text, $5::text,
          DATE '1970-01-01' + $6::integer, $7::text, $8::text, $9::text,
          $10::timestamptz, $11::timestamptz, NULL,
          CASE WHEN lower(btrim($9::text)) ~ '^[^@]+@[^@]+$'
               THEN lower(btrim($9::text)) END,
          $12::boolean, $13::bigint, $14::bigint, $15::boolean, $16::text,
          $17::integer, $18::bigint)
  ON CONFLICT (id) DO UPDATE SET
    clinic_id = EXCLUDED.clinic_id, first_name = EXCLUDED.first_name,
    last_name = EXCLUDED.last_name, middle_name = EXCLUDED.middle_name,
    birth_date = EXCLUDED.birth_date, gender = EXCLUDED.gender,
    phone = EXCLUDED.phone, email = EXCLUDED.email,
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    phone_norm = EXCLUDED.phone_norm, email_norm = EXCLUDED.email_norm,
    deleted = EXCLUDED.deleted, lsn = EXCLUDED.lsn, tx_id = EXCLUDED.tx_id,
    snapshot = EXCLUDED.snapshot, src_topic = EXCLUDED.src_topic,
    src_partition = EXCLUDED.src_partition,
    src_offset = EXCLUDED.src_offset, applied_at = now()
  WHERE t.lsn IS NULL OR t.lsn < EXCLUDED.lsn
  RETURNING id, clinic_id, first_name, last_name, middle_name, birth_date,
            gender, phone, email, deleted),
live AS (SELECT * FROM m WHERE NOT deleted),
gp AS (
  INSERT INTO v2.global_patient AS g
    (id, first_name, last_name, middle_name, birth_date, gender,
     member_count)
  SELECT id, first_name, last_name, middle_name, birth_date, gender, 1
  FROM live
  ON CONFLICT (id) DO UPDATE SET
    first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    middle_name = EXCLUDED.middle_name, birth_date = EXCLUDED.birth_date,
    gender = EXCLUDED.gender, member_count = 1, updated_at = now()),
cp AS (
  INSERT INTO v2.clinic_patient AS c (id, global_patient_id, clinic_id,
                                      phone, email)
  SELECT id, id, clinic_id, phone, email FROM live
  ON CONFLICT (id) DO UPDATE SET
    global_patient_id = EXCLUDED.global_patient_id,
    clinic_id = EXCLUDED.clinic_id, phone = EXCLUDED.phone,
    email = EXCLUDED.email, updated_at = now()),
dc AS (
  DELETE FROM v2.clinic_patient c USING m WHERE c.id = m.id AND m.deleted),
dg AS (
  DELETE FROM v2.global_patient g USING m WHERE g.id = m.id AND m.deleted)
SELECT count(*) FROM m

-- table: Appointment
WITH m AS (
  INSERT INTO clinicmig.mirror_appointment AS t
    (id, clinic_id, doctor_id, patient_id, starts_at, ends_at, status,
     reason, created_at, updated_at, deleted, lsn, tx_id, snapshot,
     src_topic, src_partition, src_offset)
  VALUES ($1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::timestamptz,
          $6::timestamptz, $7::text, $8::text, $9::timestamptz,
          $10::timestamptz, $11::boolean, $12::bigint, $13::bigint,
          $14::boolean, $15::text, $16::integer, $17::bigint)
  ON CONFLICT (id) DO UPDATE SET
    clinic_id = EXCLUDED.clinic_id, doctor_id = EXCLUDED.doctor_id,
    patient_id = EXCLUDED.patient_id, starts_at = EXCLUDED.starts_at,
    ends_at = EXCLUDED.ends_at, status = EXCLUDED.status,
    reason = EXCLUDED.reason, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, deleted = EXCLUDED.deleted,
    lsn = EXCLUDED.lsn, tx_id = EXCLUDED.tx_id, snapshot = EXCLUDED.snapshot,
    src_topic = EXCLUDED.src_topic, src_partition = EXCLUDED.src_partition,
    src_offset = EXCLUDED.src_offset, applied_at = now()
  WHERE t.lsn IS NULL OR t.lsn < EXCLUDED.lsn
  RETURNING id, clinic_id, doctor_id, patient_id, starts_at, ends_at,
            status, reason, deleted),
live AS (SELECT * FROM m WHERE NOT deleted),
ap AS (
  INSERT INTO v2.appointment AS a
    (id, clinic_id, clinic_doctor_id, clinic_patient_id, starts_at, ends_at,
     status, reason)
  SELECT l.id, l.clinic_id,
         (SELECT d.id FROM v2.clinic_doctor d WHERE d.id = l.doctor_id),
         (SELECT p.id FROM v2.clinic_patient p WHERE p.id = l.patient_id),
         l.starts_at, l.ends_at, l.status, l.reason
  FROM live l
  ON CONFLICT (id) DO UPDATE SET
    clinic_id = EXCLUDED.clinic_id,
    clinic_doctor_id = EXCLUDED.clinic_doctor_id,
    clinic_patient_id = EXCLUDED.clinic_patient_id,
    starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
    status = EXCLUDED.status, reason = EXCLUDED.reason, updated_at = now()),
da AS (
  DELETE FROM v2.appointment a USING m WHERE a.id = m.id AND m.deleted)
SELECT count(*) FROM m
