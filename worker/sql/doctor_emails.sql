-- doctor_emails — the current email keys of some users, to lock and
-- derive their email groups with them.
-- $1 bigint[]  user ids
-- Returns: email_norm
SELECT DISTINCT email_norm FROM :"cm".mirror_user
WHERE id = ANY($1::bigint[]) AND email_norm IS NOT NULL;
