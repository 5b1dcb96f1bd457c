-- The reconciler's own bookkeeping, in the workers' bookkeeping schema
-- (docs/reconciliation.md, "What it keeps").

-- Run under the workers' migration lock. patient_regroup is the workers'
-- table (their migration 0004); it is created here too, the same way, so
-- that a reconciler may start first.
-- name: setup
CREATE TABLE IF NOT EXISTS @cm@.reconciler_state (
  key        text PRIMARY KEY,
  value      bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS @cm@.reconciler_published (
  kind         text   NOT NULL, -- 'gap' (offset_gap.id), 'regroup'
  id           bigint NOT NULL,
  published_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS @cm@.patient_regroup (
  id                bigserial PRIMARY KEY,
  kind              text   NOT NULL CHECK (kind IN ('merge', 'split')),
  global_patient_id bigint NOT NULL,
  others            bigint[] NOT NULL,
  at                timestamptz NOT NULL DEFAULT now()
);

-- Whether the workers have created their tables.
-- name: schema_ready
SELECT to_regclass('@cm@.consumer_offset') IS NOT NULL
   AND to_regclass('@v2@.appointment') IS NOT NULL;

-- name: regroup_exists
SELECT to_regclass('@cm@.patient_regroup') IS NOT NULL;

-- name: next_pass
INSERT INTO @cm@.reconciler_state AS s (key, value) VALUES ('pass', 1)
ON CONFLICT (key) DO UPDATE SET value = s.value + 1, updated_at = now()
RETURNING value;

-- name: mark_published
INSERT INTO @cm@.reconciler_published (kind, id)
SELECT $1, unnest($2::bigint[])
ON CONFLICT DO NOTHING;

-- The offsets the group stored for one topic's partitions.
-- name: offsets
SELECT partition, next_offset
FROM @cm@.consumer_offset
WHERE group_id = $1 AND topic = $2;
