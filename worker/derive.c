/*
 * derive.c — the new schema, derived from the mirror: doctors,
 * appointments, and the order of it all (patients: derive_patient.c;
 * locks: derive_lock.c).
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
 *
 * The statements are worker/sql/doctor_*.sql and appointment_derive.sql
 * (worker/sql/README.md); the patients' are derive_patient.c's, which
 * this file calls and which never calls back (derive_int.h).
 */
#include "clinicmig/cm_derive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "cm_sql.h"
#include "derive_int.h"

/* The statements of worker/sql, in the order of sources[]. */
enum { Q_NAMED, Q_USER_EMAILS, Q_DOCTORS, Q_DOCTORS_GC, Q_APPOINTMENTS, N_Q };

static const char *const sources[N_Q] = {
    cm_sql_doctor_named, cm_sql_doctor_emails, cm_sql_doctor_derive,
    cm_sql_doctor_gc, cm_sql_appointment_derive};

struct cm_derive_s {
  char *sql[N_Q]; /* sources[], schema names in */
  cm_patients_t *patients;
};

cm_derive_t *cm_derive_new(cm_db_t *db, cm_match_t match) {
  cm_derive_t *d = calloc(1, sizeof(*d));

  if (!d)
    return NULL;
  if (cm_db_expand_all(db, sources, d->sql, N_Q) != 0) {
    free(d);
    return NULL;
  }
  d->patients = cm_patients_new(db, match);
  if (!d->patients) {
    cm_derive_destroy(d);
    return NULL;
  }
  return d;
}

void cm_derive_destroy(cm_derive_t *d) {
  if (!d)
    return;
  cm_db_free_all(d->sql, N_Q);
  cm_patients_destroy(d->patients);
  free(d);
}

/* ---- doctors ------------------------------------------------------------ */

/* Adds the current email keys of the users @p ids to @p emails. */
static int read_user_emails(cm_derive_t *d, cm_db_t *db, const char *ids,
                            cm_strset_t *emails, char *errstr,
                            size_t errstr_size) {
  const char *params[1] = {ids};
  PGresult *res;
  int i, r;

  r = cm_db_exec(db, d->sql[Q_USER_EMAILS], 1, params, &res, errstr,
                 errstr_size);
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
      r = cm_db_exec(db, d->sql[Q_NAMED], 1, params, &res, errstr, errstr_size);
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
    r = cm_db_exec(db, d->sql[Q_DOCTORS], 2, params, NULL, errstr, errstr_size);
  if (!r)
    r = cm_db_exec(db, d->sql[Q_DOCTORS_GC], 2, params, NULL, errstr,
                   errstr_size);
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
    r = cm_db_exec(db, d->sql[Q_APPOINTMENTS], 3, params, NULL, errstr,
                   errstr_size);
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
    r = cm_patients_derive(d->patients, db, patients, &prefs, &held, errstr,
                           errstr_size);
  if (!r)
    r = derive_appointments(d, db, users, patients, appts, errstr, errstr_size);
  cm_idset_clear(&doctors);
  cm_idset_clear(&prefs);
  cm_strset_clear(&emails);
  cm_strset_clear(&held);
  return r;
}
