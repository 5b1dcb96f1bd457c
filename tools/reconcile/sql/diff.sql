-- The checksum bisection over a row source (sources.sql), the way
-- data-diff does it (docs/reconciliation.md, "How a check reads few
-- rows"). @source@ is one of the sources; ids compare as bigint.

-- The key range of a source.
-- name: range
SELECT min(id)::text, max(id)::text FROM (@source@) s;

-- The segment [$1, $2] cut into buckets of $3 consecutive keys: per
-- bucket, the row count and the sum of a 60-bit prefix of each row's md5
-- (as numeric: no overflow). Equal counts and sums on both sides: the
-- bucket agrees.
-- name: checksum
SELECT ((id - $1::bigint) / $3::bigint)::text AS bucket,
       count(*),
       sum(('x' || substr(md5(t), 18))::bit(60)::bigint)::text
FROM (@source@) s
WHERE id >= $1::bigint AND id <= $2::bigint
GROUP BY 1;

-- The rows of a small segment, one by one: (id, md5).
-- name: fetch
SELECT id::text, md5(t)
FROM (@source@) s
WHERE id >= $1::bigint AND id <= $2::bigint
ORDER BY id;
