-- 0005: where each global patient's profile comes from (docs/design.md
-- §2.3).
--
-- A global_patient's profile is the row of its most recently updated
-- member. The derive step keeps, per anchor, that member's id and the
-- updatedAt it had, so a batch that only adds patients to components
-- recomputes a profile from the old sources and the rows in hand instead
-- of reading every member. An anchor without a row here, or whose source
-- has since moved back in time, left or died, is recomputed from all its
-- members. Ids and timestamps only, no personal data.
CREATE TABLE IF NOT EXISTS @cm@.patient_profile (
  global_patient_id bigint PRIMARY KEY,
  source_id         bigint NOT NULL,
  source_updated_at timestamptz
);
