-- doctor_named — which users that the batch's appointments name may
-- need their clinic_doctor re-derived: all but a live DOCTOR that has one
-- already (docs/design.md §2.3).
-- $1 bigint[]  the named users
-- Returns: id
SELECT u.id FROM :"cm".mirror_user u WHERE u.id = ANY($1::bigint[])
AND NOT (NOT u.deleted AND u.role = 'DOCTOR' AND EXISTS (SELECT 1
          FROM :"v2".clinic_doctor c WHERE c.id = u.id));
