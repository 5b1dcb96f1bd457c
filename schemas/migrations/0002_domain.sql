-- 0002: the new multi-clinic domain schema (docs/design.md §1, §2.3). Every row's
-- id is the legacy id it came from; global rows take the smallest legacy id
-- of their group, so ids are stable.
CREATE TABLE IF NOT EXISTS @v2@.global_doctor (
  id             bigint PRIMARY KEY,
  email          text,
  first_name     text,
  last_name      text,
  specialization text,
  license_number text,
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS global_doctor_email
  ON @v2@.global_doctor (email);

CREATE TABLE IF NOT EXISTS @v2@.clinic_doctor (
  id               bigint PRIMARY KEY,
  global_doctor_id bigint NOT NULL
    REFERENCES @v2@.global_doctor (id) DEFERRABLE INITIALLY DEFERRED,
  clinic_id        bigint NOT NULL,
  is_active        boolean NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS clinic_doctor_global
  ON @v2@.clinic_doctor (global_doctor_id);

CREATE TABLE IF NOT EXISTS @v2@.global_patient (
  id           bigint PRIMARY KEY,
  first_name   text,
  last_name    text,
  middle_name  text,
  birth_date   date,
  gender       text,
  member_count integer NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS @v2@.clinic_patient (
  id                bigint PRIMARY KEY,
  global_patient_id bigint NOT NULL
    REFERENCES @v2@.global_patient (id) DEFERRABLE INITIALLY DEFERRED,
  clinic_id         bigint NOT NULL,
  phone             text,
  email             text,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS clinic_patient_global
  ON @v2@.clinic_patient (global_patient_id);

CREATE TABLE IF NOT EXISTS @v2@.global_patient_alias (
  alias_id          bigint PRIMARY KEY,
  global_patient_id bigint NOT NULL,
  merged_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS @v2@.appointment (
  id                bigint PRIMARY KEY,
  clinic_id         bigint NOT NULL,
  clinic_doctor_id  bigint,  -- NULL while the doctor's row does not exist
  clinic_patient_id bigint,  -- NULL while the patient's row does not exist
  starts_at         timestamptz NOT NULL,
  ends_at           timestamptz NOT NULL,
  status            text NOT NULL,
  reason            text,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
