-- 0003: backfill and repair through the replay topic (docs/design.md
-- §2.2 and §3).
--
-- A mirror row whose last change came from clinicmig-replay keeps the
-- snapshot it was read in (snap_xmin, snap_xmax, snap_xip); one whose last
-- change was a live event keeps its lsn and tx_id, as before.
ALTER TABLE @cm@.mirror_user
  ADD COLUMN IF NOT EXISTS snap_xmin bigint,
  ADD COLUMN IF NOT EXISTS snap_xmax bigint,
  ADD COLUMN IF NOT EXISTS snap_xip  bigint[];
ALTER TABLE @cm@.mirror_patient
  ADD COLUMN IF NOT EXISTS snap_xmin bigint,
  ADD COLUMN IF NOT EXISTS snap_xmax bigint,
  ADD COLUMN IF NOT EXISTS snap_xip  bigint[];
ALTER TABLE @cm@.mirror_appointment
  ADD COLUMN IF NOT EXISTS snap_xmin bigint,
  ADD COLUMN IF NOT EXISTS snap_xmax bigint,
  ADD COLUMN IF NOT EXISTS snap_xip  bigint[];

-- The range markers applied: "in this snapshot, the ids of tbl within
-- [first_id, last_id] are exactly `present`". A live event for an id of
-- such a range that the mirror does not hold, absent from the snapshot
-- and visible in it, is older than the snapshot: stale.
CREATE TABLE IF NOT EXISTS @cm@.snapshot_range (
  tbl           text           NOT NULL,
  first_id      bigint         NOT NULL,
  last_id       bigint         NOT NULL,
  present       int8multirange NOT NULL,
  snap_xmin     bigint         NOT NULL,
  snap_xmax     bigint         NOT NULL,
  snap_xip      bigint[]       NOT NULL,
  src_topic     text,
  src_partition integer,
  src_offset    bigint,
  applied_at    timestamptz    NOT NULL DEFAULT now(),
  -- [first_id, last_id] as a range (an upper bound of 2^63-1 is open)
  span          int8range      NOT NULL GENERATED ALWAYS AS (
                  int8range(first_id, CASE WHEN last_id < 9223372036854775807
                                      THEN last_id + 1 END)) STORED,
  UNIQUE (tbl, first_id, last_id, snap_xmin, snap_xmax, snap_xip)
);
-- the ranges covering a key, however many backfills ran
CREATE INDEX IF NOT EXISTS snapshot_range_span
  ON @cm@.snapshot_range USING gist (span);

-- Debezium's txId is a 32-bit xid: the 64-bit id nearest to ref.
CREATE OR REPLACE FUNCTION @cm@.xid_widen(xid bigint, ref bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN xid < 0 OR xid >= 4294967296 THEN xid
    WHEN w - ref > 2147483648 AND w >= 4294967296 THEN w - 4294967296
    WHEN ref - w > 2147483648 THEN w + 4294967296
    ELSE w END
  FROM (SELECT (ref & ~4294967295::bigint) | xid AS w) s
$$;

-- PostgreSQL's visibility rule for a committed transaction.
CREATE OR REPLACE FUNCTION @cm@.xid_visible(xid bigint, xmin bigint,
                                            xmax bigint, xip bigint[])
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT w < xmin OR (w < xmax AND NOT (w = ANY (xip)))
  FROM (SELECT @cm@.xid_widen(xid, xmax) AS w) s
$$;

-- Whether a change (e_*) supersedes the stored version of a row (m_*):
-- the same rule as the worker's fold (worker/mirror.c), kept here for the
-- guarded write.
CREATE OR REPLACE FUNCTION @cm@.supersedes(
  e_lsn bigint, e_tx bigint, e_xmin bigint, e_xmax bigint, e_xip bigint[],
  m_lsn bigint, m_tx bigint, m_xmin bigint, m_xmax bigint, m_xip bigint[])
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN e_xmax IS NOT NULL AND m_xmax IS NOT NULL THEN
      (e_xmax, e_xmin, -cardinality(e_xip)) >
      (m_xmax, m_xmin, -cardinality(m_xip))
    WHEN e_xmax IS NOT NULL THEN
      m_tx IS NULL OR @cm@.xid_visible(m_tx, e_xmin, e_xmax, e_xip)
    WHEN m_xmax IS NOT NULL THEN
      e_tx IS NULL OR NOT @cm@.xid_visible(e_tx, m_xmin, m_xmax, m_xip)
    ELSE m_lsn IS NULL OR m_lsn < e_lsn
  END
$$;
