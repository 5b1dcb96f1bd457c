-- doctor_gc — after doctor_derive: the touched groups' global doctors that
-- no clinic doctor points at any more.
-- $1 bigint[]  touched user ids
-- $2 text[]    their email keys
DELETE FROM :"v2".global_doctor g
WHERE (g.id = ANY($1::bigint[]) OR g.email = ANY($2::text[]))
   AND NOT EXISTS (SELECT 1 FROM :"v2".clinic_doctor c
                   WHERE c.global_doctor_id = g.id);
