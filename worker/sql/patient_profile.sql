-- patient_profile — after patient_write: the global_patient row (profile
-- and member count) of each anchor, and its profile source.
-- The profile is that of the most recently updated member; the count is
-- k plus the old components' counts. An old component's recorded source
-- (patient_profile) still stands for its untouched members while it is a
-- live member whose updatedAt did not move back; where one does not, or
-- has no row, the anchor is recomputed from all its members (redo).
-- $1 json  [{"g": anchor, "o": [old anchors it took in whole],
--            "c": [its rows in hand that may have changed or are new],
--            "k": its members in none of o}]
-- Returns: anchors redone, profiles written
WITH x AS (
  SELECT x.g, x.o, x.c, x.k FROM json_to_recordset($1::json)
    AS x(g bigint, o bigint[], c bigint[], k integer)
), old AS (
  SELECT x.g, s.source_id, s.n, s.source_id IS NULL OR s.n IS NULL
    OR NOT EXISTS (SELECT 1 FROM :"v2".clinic_patient c
      JOIN :"cm".mirror_patient m ON m.id = c.id
      WHERE c.id = s.source_id AND c.global_patient_id = x.g
        AND NOT m.deleted AND (s.source_updated_at IS NULL
          OR m.updated_at >= s.source_updated_at)) AS stale
  FROM x CROSS JOIN LATERAL unnest(x.o) AS o(v) LEFT JOIN LATERAL (
    SELECT p.source_id, p.source_updated_at, (SELECT member_count
      FROM :"v2".global_patient WHERE id = p.global_patient_id) AS n
    FROM :"cm".patient_profile p WHERE p.global_patient_id = o.v
    OFFSET 0) AS s ON true
), redo AS (SELECT DISTINCT g FROM old WHERE stale
), cand AS (
  SELECT x.g, c.v AS id FROM x CROSS JOIN LATERAL unnest(x.c) AS c(v)
  WHERE x.g NOT IN (SELECT g FROM redo)
  UNION SELECT g, source_id FROM old WHERE g NOT IN (SELECT g FROM redo)
  UNION SELECT r.g, c.id FROM redo r, LATERAL (SELECT id
    FROM :"v2".clinic_patient WHERE global_patient_id = r.g OFFSET 0) c
), n AS (
  SELECT x.g, x.k + coalesce(o.n, 0) AS n FROM x LEFT JOIN (
    SELECT g, sum(n)::integer AS n FROM old GROUP BY g) o ON o.g = x.g
  WHERE x.g NOT IN (SELECT g FROM redo)
  UNION ALL SELECT g, count(*)::integer FROM cand
  WHERE g IN (SELECT g FROM redo) GROUP BY g
), prof AS (
  SELECT DISTINCT ON (cand.g) cand.g, m.id, m.updated_at, m.first_name,
    m.last_name, m.middle_name, m.birth_date, m.gender
  FROM cand, LATERAL (SELECT * FROM :"cm".mirror_patient
    WHERE id = cand.id AND NOT deleted OFFSET 0) AS m
  ORDER BY cand.g, m.updated_at DESC NULLS LAST, m.id DESC
), gp AS (
  INSERT INTO :"v2".global_patient AS g (id, first_name, last_name,
    middle_name, birth_date, gender, member_count)
  SELECT p.g, p.first_name, p.last_name, p.middle_name, p.birth_date,
    p.gender, n.n FROM prof p JOIN n ON n.g = p.g
  ON CONFLICT (id) DO UPDATE SET (first_name, last_name, middle_name,
    birth_date, gender, member_count, updated_at) = (
    EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.middle_name,
    EXCLUDED.birth_date, EXCLUDED.gender, EXCLUDED.member_count, now())
  WHERE (g.first_name, g.last_name, g.middle_name, g.birth_date,
    g.gender, g.member_count) IS DISTINCT FROM (EXCLUDED.first_name,
    EXCLUDED.last_name, EXCLUDED.middle_name, EXCLUDED.birth_date,
    EXCLUDED.gender, EXCLUDED.member_count)
  RETURNING 1
), src AS (
  INSERT INTO :"cm".patient_profile AS s (global_patient_id, source_id,
    source_updated_at) SELECT g, id, updated_at FROM prof
  ON CONFLICT (global_patient_id) DO UPDATE SET (source_id,
    source_updated_at) = (EXCLUDED.source_id, EXCLUDED.source_updated_at)
  WHERE (s.source_id, s.source_updated_at) IS DISTINCT FROM
    (EXCLUDED.source_id, EXCLUDED.source_updated_at)
) SELECT (SELECT count(*) FROM redo), (SELECT count(*) FROM gp);
