-- lock_names — transaction-scoped advisory locks of some names, by bucket:
-- lock space 25453, the name's hash mod 1 024, in bucket order
-- (include/clinicmig/cm_derive.h, docs/performance.md §10).
-- $1 text[]  names ("du:<user id>", "pk:<key>", ...)
-- Returns: the number of buckets locked
SELECT count(pg_advisory_xact_lock(25453, b))
FROM (SELECT DISTINCT (hashtextextended(k, 0) & 1023)::int AS b
      FROM unnest($1::text[]) AS k ORDER BY 1) AS s;
