#!/usr/bin/python3
"""report.py -- the migration report, in the shape of the first one.

NOTES
One row per entity: how many legacy rows were migrated (rows in the new
schema), how many events of it were dead-lettered (errors), and what they
grouped into; then the totals and the event counters. It reads only the
new schema and the worker's counters: ids and counts, no personal data.

Usage: report.py CONNINFO [GROUP]   (GROUP: one consumer group's counters)
"""
import sys

import psycopg2

QUERY = """
WITH errs AS (SELECT entity, sum(dead_lettered) AS n
              FROM clinicmig.partition_stats
              WHERE %(group)s::text IS NULL OR group_id = %(group)s
              GROUP BY entity)
SELECT 'Doctors', (SELECT count(*) FROM v2.clinic_doctor),
       coalesce((SELECT n FROM errs WHERE entity = 'User'), 0),
       (SELECT count(*) FROM v2.global_doctor) || ' global doctors'
UNION ALL
SELECT 'Patients', (SELECT count(*) FROM v2.clinic_patient),
       coalesce((SELECT n FROM errs WHERE entity = 'Patient'), 0),
       (SELECT count(*) FROM v2.global_patient) || ' global patients'
UNION ALL
SELECT 'Appointments', (SELECT count(*) FROM v2.appointment),
       coalesce((SELECT n FROM errs WHERE entity = 'Appointment'), 0),
       (SELECT count(*) FROM v2.appointment
        WHERE clinic_doctor_id IS NOT NULL AND clinic_patient_id IS NOT NULL)
       || ' with both links resolved'
"""

COUNTERS = """
SELECT coalesce(sum(consumed), 0), coalesce(sum(applied), 0),
       coalesce(sum(stale), 0), coalesce(sum(dead_lettered), 0)
FROM clinicmig.partition_stats
WHERE %(group)s::text IS NULL OR group_id = %(group)s
"""


def report(conninfo, group=None):
    """The report as text."""
    with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(QUERY, {"group": group})
        rows = cur.fetchall()
        cur.execute(COUNTERS, {"group": group})
        consumed, applied, stale, dead = cur.fetchone()
    conn.close()
    lines = [f"{'type':<14}| {'migrated':>8} | {'errors':>6} | grouped into",
             "-" * 14 + "+" + "-" * 10 + "+" + "-" * 8 + "+" + "-" * 30]
    for entity, n, errs, grouped in rows:
        lines.append(f"{entity:<14}| {n:>8} | {int(errs):>6} | {grouped}")
    lines.append(f"Total: {sum(r[1] for r in rows)} records; events "
                 f"consumed {consumed}, applied {applied}, stale {stale}, "
                 f"dead-lettered {dead}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: report.py CONNINFO [GROUP]")
    try:
        print(report(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None))
    except psycopg2.Error as e:
        sys.exit(f"report.py: {str(e).strip().splitlines()[0]}")
