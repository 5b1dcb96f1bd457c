-- 0001: the worker's bookkeeping schema: mirror of the legacy rows,
-- consumer offsets stored with the data, per-partition counters and the
-- record of offset gaps (events Kafka deleted before they were read).
CREATE TABLE IF NOT EXISTS @cm@.mirror_user (
  id             bigint PRIMARY KEY,
  clinic_id      bigint,
  email          text,
  phone          text,
  first_name     text,
  last_name      text,
  role           text,
  specialization text,
  license_number text,
  is_active      boolean,
  created_at     timestamptz,
  updated_at     timestamptz,
  email_norm     text,          -- grouping key, NULL when unusable
  deleted        boolean NOT NULL DEFAULT false,
  lsn            bigint,        -- stream position of the last applied change
  tx_id          bigint,        -- transaction id of the last applied change
  snapshot       boolean NOT NULL DEFAULT false, -- last change a snapshot read
  src_topic      text,
  src_partition  integer,
  src_offset     bigint,
  applied_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mirror_user_email_norm
  ON @cm@.mirror_user (email_norm) WHERE NOT deleted;

CREATE TABLE IF NOT EXISTS @cm@.mirror_patient (
  id             bigint PRIMARY KEY,
  clinic_id      bigint,
  first_name     text,
  last_name      text,
  middle_name    text,
  birth_date     date,
  gender         text,
  phone          text,
  email          text,
  created_at     timestamptz,
  updated_at     timestamptz,
  phone_norm     text,
  email_norm     text,
  deleted        boolean NOT NULL DEFAULT false,
  lsn            bigint,
  tx_id          bigint,
  snapshot       boolean NOT NULL DEFAULT false,
  src_topic      text,
  src_partition  integer,
  src_offset     bigint,
  applied_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mirror_patient_phone_norm
  ON @cm@.mirror_patient (phone_norm) WHERE NOT deleted;
CREATE INDEX IF NOT EXISTS mirror_patient_email_norm
  ON @cm@.mirror_patient (email_norm) WHERE NOT deleted;

CREATE TABLE IF NOT EXISTS @cm@.mirror_appointment (
  id             bigint PRIMARY KEY,
  clinic_id      bigint,
  doctor_id      bigint,
  patient_id     bigint,
  starts_at      timestamptz,
  ends_at        timestamptz,
  status         text,
  reason         text,
  created_at     timestamptz,
  updated_at     timestamptz,
  deleted        boolean NOT NULL DEFAULT false,
  lsn            bigint,
  tx_id          bigint,
  snapshot       boolean NOT NULL DEFAULT false,
  src_topic      text,
  src_partition  integer,
  src_offset     bigint,
  applied_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mirror_appointment_doctor
  ON @cm@.mirror_appointment (doctor_id) WHERE NOT deleted;
CREATE INDEX IF NOT EXISTS mirror_appointment_patient
  ON @cm@.mirror_appointment (patient_id) WHERE NOT deleted;

-- The consumer offsets, written in the transaction of the batch they
-- cover: next_offset is the first offset not yet applied.
CREATE TABLE IF NOT EXISTS @cm@.consumer_offset (
  group_id    text    NOT NULL,
  topic       text    NOT NULL,
  partition   integer NOT NULL,
  next_offset bigint  NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, partition)
);

-- Counters per partition and entity; a partition has one owner at a time,
-- so workers never wait on each other's counter rows.
CREATE TABLE IF NOT EXISTS @cm@.partition_stats (
  group_id      text    NOT NULL,
  topic         text    NOT NULL,
  partition     integer NOT NULL,
  entity        text    NOT NULL,
  consumed      bigint  NOT NULL DEFAULT 0,
  applied       bigint  NOT NULL DEFAULT 0,
  stale         bigint  NOT NULL DEFAULT 0,
  skipped       bigint  NOT NULL DEFAULT 0,
  dead_lettered bigint  NOT NULL DEFAULT 0,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, partition, entity)
);

-- Offsets Kafka deleted before the worker read them: data lost upstream,
-- to be repaired by a backfill. The worker moves on only after this row
-- exists.
CREATE TABLE IF NOT EXISTS @cm@.offset_gap (
  id           bigserial PRIMARY KEY,
  group_id     text    NOT NULL,
  topic        text    NOT NULL,
  partition    integer NOT NULL,
  from_offset  bigint  NOT NULL, -- first offset lost
  to_offset    bigint  NOT NULL, -- first offset still in the log
  detected_at  timestamptz NOT NULL DEFAULT now()
);
