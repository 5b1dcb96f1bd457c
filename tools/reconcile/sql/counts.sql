-- The counts event (docs/reconciliation.md, "counts"). Placeholders
-- besides the schemas: @table@ the legacy table (quoted), @mirror@ its
-- mirror table, @clinic@ v2's clinic-level table, @global@ v2's global
-- table.

-- name: legacy_counts
SELECT "clinicId"::bigint, count(*) FROM @legacy@.@table@ GROUP BY 1;

-- name: mirror_counts
SELECT clinic_id, count(*) FROM @cm@.@mirror@ WHERE NOT deleted GROUP BY 1;

-- name: migrated_counts
SELECT clinic_id, count(*) FROM @v2@.@clinic@ GROUP BY 1;

-- name: global_count
SELECT count(*) FROM @v2@.@global@;

-- Dead letters of the entity's legacy table, over the group's partitions.
-- name: dead_lettered
SELECT coalesce(sum(dead_lettered), 0)
FROM @cm@.partition_stats
WHERE group_id = $1 AND entity = $2;
