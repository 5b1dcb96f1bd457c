-- 0004: patient_regroup, the history of patient merges and splits
-- (docs/observability.md; the rule is docs/design.md §2.3).
--
-- Written by the derive step in the batch's transaction. A `merge` row
-- for each anchor that takes in others, which are recorded as its aliases
-- in global_patient_alias in the same transaction; a `split` row for each
-- component that lost parts to new anchors. clinicmig-reconcile publishes
-- one event per row. The table holds ids only, no personal data.
CREATE TABLE IF NOT EXISTS @cm@.patient_regroup (
  id                bigserial PRIMARY KEY,
  kind              text   NOT NULL CHECK (kind IN ('merge', 'split')),
  global_patient_id bigint NOT NULL, -- the surviving / keeping anchor
  others            bigint[] NOT NULL, -- merged-in anchors / new anchors
  at                timestamptz NOT NULL DEFAULT now());
