-- The events beside the checks (docs/reconciliation.md): unresolved
-- links, offset gaps, patient regroups, suspect components.

-- Appointments whose doctor (or patient) link is null although their
-- mirror row was applied more than $1 milliseconds ago; the first 101
-- ids (101: the list is then truncated to 100).
-- name: unresolved_doctor
SELECT a.id::text
FROM @v2@.appointment a
JOIN @cm@.mirror_appointment m ON m.id = a.id
WHERE a.clinic_doctor_id IS NULL
  AND m.applied_at < now() - $1::bigint * interval '1 millisecond'
ORDER BY a.id
LIMIT 101;

-- name: unresolved_patient
SELECT a.id::text
FROM @v2@.appointment a
JOIN @cm@.mirror_appointment m ON m.id = a.id
WHERE a.clinic_patient_id IS NULL
  AND m.applied_at < now() - $1::bigint * interval '1 millisecond'
ORDER BY a.id
LIMIT 101;

-- Offset gaps of the group not published yet.
-- name: gaps
SELECT g.id, g.topic, g.partition, g.from_offset, g.to_offset,
       to_char(g.detected_at AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
FROM @cm@.offset_gap g
WHERE g.group_id = $1
  AND NOT EXISTS (SELECT 1 FROM @cm@.reconciler_published p
                  WHERE p.kind = 'gap' AND p.id = g.id)
ORDER BY g.id
LIMIT 1000;

-- Merges and splits the workers recorded, not published yet.
-- name: regroups
SELECT r.id, r.kind, r.global_patient_id,
       array_to_string(r.others, ','),
       to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
FROM @cm@.patient_regroup r
WHERE NOT EXISTS (SELECT 1 FROM @cm@.reconciler_published p
                  WHERE p.kind = 'regroup' AND p.id = r.id)
ORDER BY r.id
LIMIT 1000;

-- Global patients whose live members' birth dates conflict.
-- name: suspects_birth
SELECT c.global_patient_id, count(*)
FROM @v2@.clinic_patient c
JOIN @cm@.mirror_patient m ON m.id = c.id AND NOT m.deleted
GROUP BY c.global_patient_id
HAVING count(DISTINCT m.birth_date) > 1
ORDER BY 1
LIMIT 100;

-- Phone keys shared by more than $1 live patients: the key leaves the
-- database only to be hashed (HMAC-SHA256), never printed.
-- name: suspects_phone
SELECT min(c.global_patient_id), count(*), m.phone_norm
FROM @cm@.mirror_patient m
LEFT JOIN @v2@.clinic_patient c ON c.id = m.id
WHERE NOT m.deleted AND m.phone_norm IS NOT NULL
GROUP BY m.phone_norm
HAVING count(*) > $1::bigint
ORDER BY 1
LIMIT 100;
