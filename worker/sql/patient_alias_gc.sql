-- patient_alias_gc — ids that are anchors again stop being aliases; aliases
-- of a retired anchor without successor go; a retired anchor's
-- global_patient (when no member points at it) and profile source go.
-- $1 bigint[]  ids that are anchors again
-- $2 bigint[]  retired anchors with no successor
-- $3 bigint[]  every retired anchor
-- Returns: aliases deleted, global patients deleted
WITH a AS (DELETE FROM :"v2".global_patient_alias
   WHERE alias_id = ANY($1::bigint[])
      OR global_patient_id = ANY($2::bigint[]) RETURNING 1
), g AS (DELETE FROM :"v2".global_patient g
   WHERE g.id = ANY($3::bigint[]) AND NOT EXISTS (SELECT 1
     FROM :"v2".clinic_patient c WHERE c.global_patient_id = g.id)
   RETURNING 1
), s AS (DELETE FROM :"cm".patient_profile
   WHERE global_patient_id = ANY($3::bigint[])
) SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM g);
