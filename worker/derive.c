/*
 * derive.c — the new schema, derived from the mirror: locks, doctors,
 * appointments, and the order of it all (patients: derive_patient.c).
 *
 * NOTES
 * Each entity's derivation is set-based: one statement computes the
 * wanted rows of every group the batch touched and upserts them, another
 * removes what no longer has a source. Writes are skipped where nothing
 * changes (IS DISTINCT FROM), so replays and duplicates cost reads only.
 *
 * Doctors (docs/design.md §2.3): a clinic_doctor for every live user whose role
 * is DOCTOR or whom a live appointment names; is_active is role DOCTOR and
 * isActive. Users with one normalized email share a global_doctor whose
 * id is the group's smallest user id; a user without a usable email is a
 * group of its own. Profile fields come from the most recently updated
 * member (updatedAt, then the higher id). Users that touched
 * appointments name are re-derived only where an appointment can change
 * their clinic_doctor (named_doctors()).
 *
 * Appointments: one row per live legacy appointment; its doctor and
 * patient links are the legacy ids while those rows live, else NULL
 * (unresolved). A link is resolved by whichever transaction lands the
 * second of the two sides: appointment derivation re-reads the
 * appointments that name a user or patient that appeared or vanished
 * in the batch (an update that leaves a row live changes no link).
 */
#include "clinicmig/cm_derive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"

struct cm_derive_s {
  cm_match_t match;
  char *named;
  char *user_emails;
  char *doctors;
  char *doctors_gc;
  char *appointments;
  cm_patient_sql_t patient;
};

/* $1 users that touched appointments name: those whose clinic_doctor
 * may depend on appointments (not a live DOCTOR that has one already) */
static const char named_sql[] =
    "SELECT u.id FROM @cm@.mirror_user u WHERE u.id = ANY($1::bigint[])"
    " AND NOT (NOT u.deleted AND u.role = 'DOCTOR' AND EXISTS (SELECT 1"
    "          FROM @v2@.clinic_doctor c WHERE c.id = u.id))";

static const char user_emails_sql[] =
    "SELECT DISTINCT email_norm FROM @cm@.mirror_user"
    " WHERE id = ANY($1::bigint[]) AND email_norm IS NOT NULL";

/*
 * The reads below look their rows up one id or key at a time through the
 * index (a LATERAL subquery with OFFSET 0, which PostgreSQL does not
 * flatten into a join): asked for "= ANY" of many ids, or an EXISTS per
 * user, it scanned whole tables, a cost that grew with the backlog
 * (docs/performance.md §10).
 */
static const char doctors_sql[] =
    "WITH cand AS ("
    "  SELECT u.* FROM unnest($1::bigint[]) AS k(v), LATERAL ("
    "    SELECT * FROM @cm@.mirror_user WHERE id = k.v AND NOT deleted"
    "    OFFSET 0) AS u"
    "  UNION SELECT u.* FROM unnest($2::text[]) AS k(v), LATERAL ("
    "    SELECT * FROM @cm@.mirror_user"
    "    WHERE email_norm = k.v AND NOT deleted OFFSET 0) AS u"
    "), elig AS ("
    "  SELECT u.* FROM cand u LEFT JOIN LATERAL ("
    "    SELECT true AS named FROM @cm@.mirror_appointment"
    "    WHERE doctor_id = u.id AND NOT deleted LIMIT 1) AS a ON true"
    "  WHERE u.role = 'DOCTOR' OR a.named"
    "), grp AS ("
    "  SELECT e.*, CASE WHEN e.email_norm IS NULL THEN e.id"
    "    ELSE min(e.id) OVER (PARTITION BY e.email_norm) END AS gid"
    "  FROM elig e"
    "), prof AS ("
    "  SELECT DISTINCT ON (gid) gid, email_norm, first_name, last_name,"
    "         specialization, license_number"
    "  FROM grp ORDER BY gid, updated_at DESC NULLS LAST, id DESC"
    "), up_g AS ("
    "  INSERT INTO @v2@.global_doctor AS g (id, email, first_name,"
    "    last_name, specialization, license_number)"
    "  SELECT gid, email_norm, first_name, last_name, specialization,"
    "         license_number FROM prof"
    "  ON CONFLICT (id) DO UPDATE SET (email, first_name, last_name,"
    "    specialization, license_number, updated_at) = (EXCLUDED.email,"
    "    EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.specialization,"
    "    EXCLUDED.license_number, now())"
    "  WHERE (g.email, g.first_name, g.last_name, g.specialization,"
    "         g.license_number) IS DISTINCT FROM (EXCLUDED.email,"
    "         EXCLUDED.first_name, EXCLUDED.last_name,"
    "         EXCLUDED.specialization, EXCLUDED.license_number)"
    "  RETURNING 1"
    "), up_c AS ("
    "  INSERT INTO @v2@.clinic_doctor AS c (id, global_doctor_id, clinic_id,"
    "    is_active)"
    "  SELECT id, gid, clinic_id, coalesce(role = 'DOCTOR' AND is_active,"
    "         false) FROM grp"
    "  ON CONFLICT (id) DO UPDATE SET (global_doctor_id, clinic_id,"
    "    is_active, updated_at) = (EXCLUDED.global_doctor_id,"
    "    EXCLUDED.clinic_id, EXCLUDED.is_active, now())"
    "  WHERE (c.global_doctor_id, c.clinic_id, c.is_active)"
    "    IS DISTINCT FROM (EXCLUDED.global_doctor_id, EXCLUDED.clinic_id,"
    "    EXCLUDED.is_active)"
    "  RETURNING 1"
    "), del_c AS ("
    "  DELETE FROM @v2@.clinic_doctor c WHERE c.id = ANY($1::bigint[])"
    "    AND NOT EXISTS (SELECT 1 FROM grp WHERE grp.id = c.id)"
    "  RETURNING 1"
    ") SELECT (SELECT count(*) FROM up_g), (SELECT count(*) FROM up_c),"
    "         (SELECT count(*) FROM del_c)";

/* After the upserts: global doctors of the touched groups that no clinic
 * doctor points at any more. */
static const char doctors_gc_sql[] =
    "DELETE FROM @v2@.global_doctor g"
    " WHERE (g.id = ANY($1::bigint[]) OR g.email = ANY($2::text[]))"
    "   AND NOT EXISTS (SELECT 1 FROM @v2@.clinic_doctor c"
    "                   WHERE c.global_doctor_id = g.id)";

/* $1 touched appointments, $2 users and $3 patients that appeared or
 * vanished (an appointment's links depend on whether its doctor and
 * patient live, nothing else of them) */
static const char appointments_sql[] =
    "WITH ids AS ("
    "  SELECT a.id FROM unnest($1::bigint[]) AS k(v), LATERAL ("
    "    SELECT id FROM @cm@.mirror_appointment"
    "    WHERE id = k.v AND NOT deleted OFFSET 0) AS a"
    "  UNION SELECT a.id FROM unnest($2::bigint[]) AS k(v), LATERAL ("
    "    SELECT id FROM @cm@.mirror_appointment"
    "    WHERE doctor_id = k.v AND NOT deleted OFFSET 0) AS a"
    "  UNION SELECT a.id FROM unnest($3::bigint[]) AS k(v), LATERAL ("
    "    SELECT id FROM @cm@.mirror_appointment"
    "    WHERE patient_id = k.v AND NOT deleted OFFSET 0) AS a"
    "), src AS ("
    "  SELECT m.id, m.clinic_id,"
    "    CASE WHEN u.live THEN m.doctor_id END AS cd,"
    "    CASE WHEN p.live THEN m.patient_id END AS cp,"
    "    m.starts_at, m.ends_at, m.status, m.reason"
    "  FROM ids, LATERAL ("
    "    SELECT * FROM @cm@.mirror_appointment WHERE id = ids.id"
    "    OFFSET 0) AS m"
    "  LEFT JOIN LATERAL (SELECT true AS live FROM @cm@.mirror_user"
    "    WHERE id = m.doctor_id AND NOT deleted OFFSET 0) AS u ON true"
    "  LEFT JOIN LATERAL (SELECT true AS live FROM @cm@.mirror_patient"
    "    WHERE id = m.patient_id AND NOT deleted OFFSET 0) AS p ON true"
    "), up AS ("
    "  INSERT INTO @v2@.appointment AS a (id, clinic_id, clinic_doctor_id,"
    "    clinic_patient_id, starts_at, ends_at, status, reason)"
    "  SELECT id, clinic_id, cd, cp, starts_at, ends_at, status, reason"
    "  FROM src"
    "  ON CONFLICT (id) DO UPDATE SET (clinic_id, clinic_doctor_id,"
    "    clinic_patient_id, starts_at, ends_at, status, reason, updated_at)"
    "    = (EXCLUDED.clinic_id, EXCLUDED.clinic_doctor_id,"
    "    EXCLUDED.clinic_patient_id, EXCLUDED.starts_at, EXCLUDED.ends_at,"
    "    EXCLUDED.status, EXCLUDED.reason, now())"
    "  WHERE (a.clinic_id, a.clinic_doctor_id, a.clinic_patient_id,"
    "    a.starts_at, a.ends_at, a.status, a.reason) IS DISTINCT FROM"
    "    (EXCLUDED.clinic_id, EXCLUDED.clinic_doctor_id,"
    "    EXCLUDED.clinic_patient_id, EXCLUDED.starts_at, EXCLUDED.ends_at,"
    "    EXCLUDED.status, EXCLUDED.reason)"
    "  RETURNING 1"
    "), del AS ("
    "  DELETE FROM @v2@.appointment a WHERE a.id = ANY(ARRAY("
    "    SELECT k.v FROM unnest($1::bigint[]) AS k(v)"
    "    WHERE NOT EXISTS (SELECT 1 FROM src WHERE src.id = k.v)))"
    "  RETURNING 1"
    ") SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM del)";

cm_derive_t *cm_derive_new(cm_db_t *db, cm_match_t match) {
  cm_derive_t *d = calloc(1, sizeof(*d));

  if (!d)
    return NULL;
  d->match = match;
  d->named = cm_db_expand(db, named_sql);
  d->user_emails = cm_db_expand(db, user_emails_sql);
  d->doctors = cm_db_expand(db, doctors_sql);
  d->doctors_gc = cm_db_expand(db, doctors_gc_sql);
  d->appointments = cm_db_expand(db, appointments_sql);
  if (!d->named || !d->user_emails || !d->doctors || !d->doctors_gc ||
      !d->appointments || cm_patient_sql_init(db, &d->patient) != 0) {
    cm_derive_destroy(d);
    return NULL;
  }
  return d;
}

void cm_derive_destroy(cm_derive_t *d) {
  if (!d)
    return;
  free(d->named);
  free(d->user_emails);
  free(d->doctors);
  free(d->doctors_gc);
  free(d->appointments);
  cm_patient_sql_free(&d->patient);
  free(d);
}

const cm_patient_sql_t *cm_derive_patient_sql(const cm_derive_t *d,
                                              cm_match_t *match) {
  *match = d->match;
  return &d->patient;
}

/*
 * Names are locked by bucket: the advisory lock (25453, hash of the name
 * mod 1 024). PostgreSQL's lock table is a fixed pool of
 * max_locks_per_transaction x max_connections slots (6 400 by default)
 * shared by every session; a lock per name made a batch whose
 * patients form one large component (thousands of keys) run out of it
 * ("out of shared memory") and retry for ever. Buckets bound a
 * transaction's locks; two names in one bucket only make two workers
 * wait for each other (docs/performance.md §10).
 */
int cm_derive_lock(cm_db_t *db, cm_strset_t *want, cm_strset_t *held,
                   int *added, char *errstr, size_t errstr_size) {
  /* lock space 25453 (the first key of the two-key form), 1 024 buckets */
  static const char sql[] =
      "SELECT count(pg_advisory_xact_lock(25453, b))"
      " FROM (SELECT DISTINCT (hashtextextended(k, 0) & 1023)::int AS b"
      "       FROM unnest($1::text[]) AS k ORDER BY 1) AS s";
  char **fresh, *arr;
  const char *params[1];
  int i, n = 0, r;

  *added = 0;
  cm_strset_sort(want);
  cm_strset_sort(held);
  fresh = malloc(sizeof(*fresh) * (size_t)(want->n ? want->n : 1));
  if (!fresh)
    return CM_ERR_NOMEM;
  for (i = 0; i < want->n; i++)
    if (!cm_strset_has(held, want->v[i]))
      fresh[n++] = want->v[i];
  arr = n ? cm_db_text_array(fresh, n, 0) : NULL;
  r = n && !arr ? CM_ERR_NOMEM : 0;
  if (!r && n) {
    params[0] = arr;
    r = cm_db_exec(db, sql, 1, params, NULL, errstr, errstr_size);
  }
  for (i = 0; !r && i < n; i++)
    if (cm_strset_add(held, "", fresh[i]) != 0)
      r = CM_ERR_NOMEM;
  if (!r)
    *added = n;
  free(arr);
  free(fresh);
  return r;
}

/* ---- doctors ------------------------------------------------------------ */

/* Adds the current email keys of the users @p ids to @p emails. */
static int read_user_emails(cm_derive_t *d, cm_db_t *db, const char *ids,
                            cm_strset_t *emails, char *errstr,
                            size_t errstr_size) {
  const char *params[1] = {ids};
  PGresult *res;
  int i, r;

  r = cm_db_exec(db, d->user_emails, 1, params, &res, errstr, errstr_size);
  for (i = 0; !r && i < PQntuples(res); i++)
    if (cm_strset_add(emails, "", PQgetvalue(res, i, 0)) != 0)
      r = CM_ERR_NOMEM;
  PQclear(res);
  return r;
}

static int doctor_names(const cm_idset_t *users, const cm_strset_t *emails,
                        cm_strset_t *names) {
  char buf[32];
  int i;

  for (i = 0; i < users->n; i++) {
    snprintf(buf, sizeof(buf), "%lld", (long long)users->v[i]);
    if (cm_strset_add(names, "du:", buf) != 0)
      return CM_ERR_NOMEM;
  }
  for (i = 0; i < emails->n; i++)
    if (cm_strset_add(names, "de:", emails->v[i]) != 0)
      return CM_ERR_NOMEM;
  return 0;
}

/*
 * The users that touched appointments name and whose clinic_doctor may
 * depend on them. A live DOCTOR that has its clinic_doctor keeps it
 * whatever names it, so its group is not re-derived for every
 * appointment (docs/design.md §2.3). The decision is read under the
 * users' locks: a transaction that changes such a user derives it under
 * the same lock, after this one or from what this one committed.
 */
static int named_doctors(cm_derive_t *d, cm_db_t *db, const cm_idset_t *named,
                         const cm_idset_t *users, cm_strset_t *held,
                         cm_idset_t *out, char *errstr, size_t errstr_size) {
  cm_idset_t ids = {0};
  cm_strset_t names = {0}, none = {0};
  const char *params[1];
  PGresult *res = NULL;
  char *arr = NULL;
  int i, r = 0, added;

  for (i = 0; !r && i < named->n; i++)
    if (!cm_idset_has(users, named->v[i]))
      r = cm_idset_add(&ids, named->v[i]) ? CM_ERR_NOMEM : 0;
  if (!r && ids.n > 0) {
    cm_idset_sort(&ids);
    r = doctor_names(&ids, &none, &names);
    if (!r)
      r = cm_derive_lock(db, &names, held, &added, errstr, errstr_size);
    arr = r ? NULL : cm_db_int_array(ids.v, ids.n);
    if (!r && !arr)
      r = CM_ERR_NOMEM;
    params[0] = arr;
    if (!r)
      r = cm_db_exec(db, d->named, 1, params, &res, errstr, errstr_size);
    for (i = 0; !r && i < PQntuples(res); i++)
      if (cm_idset_add(out, strtoll(PQgetvalue(res, i, 0), NULL, 10)))
        r = CM_ERR_NOMEM;
  }
  PQclear(res);
  free(arr);
  cm_idset_clear(&ids);
  cm_strset_clear(&names);
  return r;
}

/* Locks the users and their email groups, re-reading the users' emails
 * after each round until no new group turns up. The emails are read at
 * least once, under the users' locks, even when every name was held
 * already (named_doctors() locks the users it keeps). */
static int lock_doctors(cm_derive_t *d, cm_db_t *db, const cm_idset_t *users,
                        const char *ids, cm_strset_t *emails, cm_strset_t *held,
                        char *errstr, size_t errstr_size) {
  cm_strset_t names = {0};
  int r, added, read = 0;

  for (;;) {
    r = doctor_names(users, emails, &names);
    if (!r)
      r = cm_derive_lock(db, &names, held, &added, errstr, errstr_size);
    cm_strset_clear(&names);
    if (r || (read && !added))
      return r;
    r = read_user_emails(d, db, ids, emails, errstr, errstr_size);
    if (r)
      return r;
    read = 1;
    cm_strset_sort(emails);
  }
}

static int derive_doctors(cm_derive_t *d, cm_db_t *db, cm_idset_t *users,
                          cm_strset_t *emails, cm_strset_t *held, char *errstr,
                          size_t errstr_size) {
  const char *params[2];
  char *ids, *arr = NULL;
  int r;

  cm_idset_sort(users);
  cm_strset_sort(emails);
  if (users->n == 0)
    return 0;
  ids = cm_db_int_array(users->v, users->n);
  if (!ids)
    return CM_ERR_NOMEM;
  r = lock_doctors(d, db, users, ids, emails, held, errstr, errstr_size);
  if (!r) {
    arr = cm_db_text_array(emails->v, emails->n, 0);
    r = arr ? 0 : CM_ERR_NOMEM;
  }
  params[0] = ids;
  params[1] = arr;
  if (!r)
    r = cm_db_exec(db, d->doctors, 2, params, NULL, errstr, errstr_size);
  if (!r)
    r = cm_db_exec(db, d->doctors_gc, 2, params, NULL, errstr, errstr_size);
  free(ids);
  free(arr);
  return r;
}

/* ---- appointments ------------------------------------------------------- */

static int derive_appointments(cm_derive_t *d, cm_db_t *db,
                               const cm_touched_t *users,
                               const cm_touched_t *patients,
                               const cm_touched_t *appts, char *errstr,
                               size_t errstr_size) {
  char *a, *u, *p;
  const char *params[3];
  int r = CM_ERR_NOMEM;

  if (appts->ids.n == 0 && users->flipped.n == 0 && patients->flipped.n == 0)
    return 0;
  a = cm_db_int_array(appts->ids.v, appts->ids.n);
  u = cm_db_int_array(users->flipped.v, users->flipped.n);
  p = cm_db_int_array(patients->flipped.v, patients->flipped.n);
  if (a && u && p) {
    params[0] = a;
    params[1] = u;
    params[2] = p;
    r = cm_db_exec(db, d->appointments, 3, params, NULL, errstr, errstr_size);
  }
  free(a);
  free(u);
  free(p);
  return r;
}

/* ---- the whole batch -------------------------------------------------- */

/* The email keys ("e:...") of the touched users, without the prefix. */
static int user_emails(const cm_touched_t *users, cm_strset_t *emails) {
  int i;

  for (i = 0; i < users->keys.n; i++)
    if (strncmp(users->keys.v[i], "e:", 2) == 0 &&
        cm_strset_add(emails, "", users->keys.v[i] + 2) != 0)
      return CM_ERR_NOMEM;
  return 0;
}

int cm_derive_batch(cm_derive_t *d, cm_db_t *db, const cm_touched_t *users,
                    const cm_touched_t *patients, const cm_touched_t *appts,
                    char *errstr, size_t errstr_size) {
  cm_idset_t doctors = {0}, prefs = {0};
  cm_strset_t emails = {0}, held = {0};
  int r = CM_ERR_NOMEM;

  if (cm_idset_add_all(&doctors, users->ids.v, users->ids.n) == 0 &&
      cm_idset_add_all(&prefs, appts->patients.v, appts->patients.n) == 0 &&
      user_emails(users, &emails) == 0)
    r = 0;
  if (!r)
    r = named_doctors(d, db, &appts->doctors, &users->ids, &held, &doctors,
                      errstr, errstr_size);
  if (!r)
    r = derive_doctors(d, db, &doctors, &emails, &held, errstr, errstr_size);
  if (!r)
    r = cm_derive_patients(d, db, patients, &prefs, &held, errstr, errstr_size);
  if (!r)
    r = derive_appointments(d, db, users, patients, appts, errstr, errstr_size);
  cm_idset_clear(&doctors);
  cm_idset_clear(&prefs);
  cm_strset_clear(&emails);
  cm_strset_clear(&held);
  return r;
}
