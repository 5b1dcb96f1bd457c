/*
 * derive.c — the new schema, derived from the mirror.
 *
 * NOTES
 * Each entity's derivation is set-based: one statement computes the
 * wanted rows of every group the batch touched and upserts them, a second
 * removes what no longer has a source. Writes are skipped where nothing
 * changes (IS DISTINCT FROM), so replays and duplicates cost reads only.
 *
 * Doctors (DESIGN §2.3): a clinic_doctor for every live user whose role is
 * DOCTOR; users with one normalized email share a global_doctor whose id
 * is the group's smallest user id; a user without a usable email is a
 * group of its own. Profile fields come from the most recently updated
 * member (updatedAt, then the higher id).
 */
#include "clinicmig/cm_derive.h"

#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"

struct cm_derive_s {
  char *lock;
  char *doctors;
  char *doctors_gc;
};

static const char lock_sql[] =
    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
    "FROM unnest($1::text[]) AS k";

static const char doctors_sql[] =
    "WITH elig AS ("
    "  SELECT u.* FROM @cm@.mirror_user u"
    "  WHERE NOT u.deleted AND u.role = 'DOCTOR'"
    "    AND (u.id = ANY($1::bigint[]) OR u.email_norm = ANY($2::text[]))"
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

cm_derive_t *cm_derive_new(cm_db_t *db) {
  cm_derive_t *d = calloc(1, sizeof(*d));

  if (!d)
    return NULL;
  d->lock = strdup(lock_sql);
  d->doctors = cm_db_expand(db, doctors_sql);
  d->doctors_gc = cm_db_expand(db, doctors_gc_sql);
  if (!d->lock || !d->doctors || !d->doctors_gc) {
    cm_derive_destroy(d);
    return NULL;
  }
  return d;
}

void cm_derive_destroy(cm_derive_t *d) {
  if (!d)
    return;
  free(d->lock);
  free(d->doctors);
  free(d->doctors_gc);
  free(d);
}

/* Lock names: "doctor:<email>" for every email key, sorted (the keys come
 * sorted from the mirror step, and the prefix keeps the order). */
static char *lock_names(const cm_touched_t *t, const char *entity) {
  char **names = calloc((size_t)t->n_keys + 1, sizeof(*names));
  char *arr;
  size_t len;
  int i, n = 0;

  if (!names)
    return NULL;
  for (i = 0; i < t->n_keys; i++) {
    len = strlen(entity) + strlen(t->keys[i]) + 2;
    names[n] = malloc(len);
    if (!names[n])
      break;
    snprintf(names[n++], len, "%s:%s", entity, t->keys[i]);
  }
  arr = i == t->n_keys ? cm_db_text_array(names, n, 0) : NULL;
  while (n > 0)
    free(names[--n]);
  free(names);
  return arr;
}

/* Email keys of the touched users, without their "e:" prefix. */
static char *email_array(const cm_touched_t *t) {
  char **v = malloc(sizeof(*v) * (size_t)(t->n_keys + 1));
  char *arr;
  int i, n = 0;

  if (!v)
    return NULL;
  for (i = 0; i < t->n_keys; i++)
    if (strncmp(t->keys[i], "e:", 2) == 0)
      v[n++] = t->keys[i];
  arr = cm_db_text_array(v, n, 2);
  free(v);
  return arr;
}

int cm_derive_doctors(cm_derive_t *d, cm_db_t *db, const cm_touched_t *users,
                      char *errstr, size_t errstr_size) {
  char *locks, *ids, *emails;
  const char *params[2];
  int r = CM_ERR_NOMEM;

  if (users->n_ids == 0)
    return 0;
  locks = lock_names(users, "doctor");
  ids = cm_db_int_array(users->ids, users->n_ids);
  emails = email_array(users);
  if (locks && ids && emails) {
    params[0] = locks;
    r = cm_db_exec(db, d->lock, 1, params, NULL, errstr, errstr_size);
    params[0] = ids;
    params[1] = emails;
    if (!r)
      r = cm_db_exec(db, d->doctors, 2, params, NULL, errstr, errstr_size);
    if (!r)
      r = cm_db_exec(db, d->doctors_gc, 2, params, NULL, errstr,
                     errstr_size);
  }
  free(locks);
  free(ids);
  free(emails);
  return r;
}
