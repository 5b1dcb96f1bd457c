/*
 * mapping.c — the mapping f of docs/design.md §2.3, computed from scratch.
 *
 * NOTES
 * This is the oracle's own route to f, independent of the worker's (which
 * derives incrementally, in SQL, from its mirror): the legacy rows are in
 * memory, sorted by id, and f is computed by sorting and a union-find.
 * Only the key normalizers (cm_normalize.h) are shared with the worker.
 *
 * Doctors. A clinic_doctor for every User whose role is DOCTOR or whom an
 * Appointment names; among those users, equal email keys make one group,
 * a user without a key is a group alone. A group's global_doctor has the
 * smallest id of the group and the profile of its most recent member.
 *
 * Patients. A union-find over the Patient rows: sorting (key, ...) pairs
 * puts each phone key's and each email key's patients side by side, a
 * bucket, and the links of a bucket are unioned. global_patient is a
 * component, anchored on its smallest id (the union-find keeps the
 * smallest index as the root: the rows are sorted by id).
 *
 * "Most recent" is the greatest recency rank, which db.c reads as the
 * rank by ("updatedAt", id).
 */
#include "oracle.h"

#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_normalize.h"

/*
 * Size of a key buffer, the worker's too (NORM_MAX in worker/mirror.c):
 * cm_email_normalize() gives no key for a normalized email of this many
 * bytes or more (an address is at most 254), and f is the same on both
 * sides only if the limit is.
 */
#define KEY_MAX 320

/* A doctor or patient with its key, for sorting into buckets. */
typedef struct keyed_s {
  const char *key;   /* NULL: no key */
  const char *birth; /* patients: birth date text, NULL if unknown */
  size_t idx;        /* index in the legacy array: its id order */
} keyed_t;

static const char *email_key(or_arena_t *a, const char *email) {
  char key[KEY_MAX];

  return cm_email_normalize(email, key, sizeof(key)) ? or_strdup(a, key) : NULL;
}

static const char *phone_key(or_arena_t *a, const char *phone,
                             const char *region) {
  char key[KEY_MAX];

  if (!phone)
    return NULL;
  return cm_phone_normalize(phone, region, key, sizeof(key)) ? or_strdup(a, key)
                                                             : NULL;
}

/* Orders by key (NULL last), then birth date (NULL first), then index. */
static int keyed_cmp(const void *x, const void *y) {
  const keyed_t *a = x, *b = y;
  int c;

  if (!a->key || !b->key)
    c = !a->key - !b->key;
  else
    c = strcmp(a->key, b->key);
  if (c == 0 && (!a->birth || !b->birth))
    c = !b->birth - !a->birth;
  else if (c == 0)
    c = strcmp(a->birth, b->birth);
  if (c == 0)
    c = (a->idx > b->idx) - (a->idx < b->idx);
  return c;
}

/* The end of the bucket that starts at k[i]: the run of its key. */
static size_t bucket_end(const keyed_t *k, size_t n, size_t i) {
  size_t j = i + 1;

  if (!k[i].key)
    return j;
  while (j < n && k[j].key && strcmp(k[j].key, k[i].key) == 0)
    j++;
  return j;
}

/*
 * Index of the record with @p id in @p base (n records of @p size bytes
 * sorted by id, each starting with its int64_t id), or -1.
 */
static long find_id(const void *base, size_t n, size_t size, int64_t id) {
  const char *p = base;
  size_t lo = 0, hi = n, mid;
  int64_t at;

  while (lo < hi) {
    mid = lo + (hi - lo) / 2;
    memcpy(&at, p + mid * size, sizeof(at));
    if (at == id)
      return (long)mid;
    if (at < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* ---- doctors ------------------------------------------------------ */

/* Emits one doctor group k[0..n), its users in id order. */
static int emit_doctors(const or_legacy_t *l, or_arena_t *a, const keyed_t *k,
                        size_t n, or_rows_t *gd, or_rows_t *cd) {
  const or_user_t *anchor = &l->user[k[0].idx], *best = anchor, *u;
  const char **v;
  size_t i;

  for (i = 1; i < n; i++)
    if (l->user[k[i].idx].recency > best->recency)
      best = &l->user[k[i].idx];
  v = or_rows_add(gd, a, anchor->id, 5);
  if (!v)
    return -1;
  v[0] = k[0].key;
  v[1] = best->first_name;
  v[2] = best->last_name;
  v[3] = best->specialization;
  v[4] = best->license_number;
  for (i = 0; i < n; i++) {
    u = &l->user[k[i].idx];
    v = or_rows_add(cd, a, u->id, 3);
    if (!v)
      return -1;
    v[0] = or_i64_text(a, anchor->id);
    v[1] = u->clinic_id;
    v[2] = u->role && strcmp(u->role, "DOCTOR") == 0 && u->is_active &&
                   strcmp(u->is_active, "t") == 0
               ? "t"
               : "f";
  }
  return 0;
}

/* Marks the users that are doctors: role DOCTOR, or named by a visit. */
static unsigned char *doctor_flags(const or_legacy_t *l, or_arena_t *a) {
  unsigned char *is_doc = or_alloc(a, l->n_user + 1);
  size_t i;
  long at;

  if (!is_doc)
    return NULL;
  for (i = 0; i < l->n_user; i++)
    is_doc[i] = l->user[i].role && strcmp(l->user[i].role, "DOCTOR") == 0;
  for (i = 0; i < l->n_appt; i++) {
    if (!l->appt[i].has_doctor)
      continue;
    at = find_id(l->user, l->n_user, sizeof(or_user_t), l->appt[i].doctor_id);
    if (at >= 0)
      is_doc[at] = 1;
  }
  return is_doc;
}

static int map_doctors(const or_legacy_t *l, or_arena_t *a, or_rows_t *gd,
                       or_rows_t *cd) {
  unsigned char *is_doc = doctor_flags(l, a);
  keyed_t *k = or_alloc(a, (l->n_user + 1) * sizeof(keyed_t));
  size_t i, j, n = 0;

  if (!is_doc || !k)
    return -1;
  for (i = 0; i < l->n_user; i++) {
    if (!is_doc[i])
      continue;
    k[n].key = email_key(a, l->user[i].email);
    k[n].idx = i;
    n++;
  }
  if (or_arena_failed(a))
    return -1;
  qsort(k, n, sizeof(keyed_t), keyed_cmp);
  for (i = 0; i < n; i = j) {
    j = bucket_end(k, n, i);
    if (emit_doctors(l, a, k + i, j - i, gd, cd) != 0)
      return -1;
  }
  return 0;
}

/* ---- patients ----------------------------------------------------- */

/* The root of x; halves the path. Roots are the smallest index. */
static size_t uf_find(size_t *parent, size_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

/* Joins the components of x and y under the smaller root. */
static void uf_union(size_t *parent, size_t x, size_t y) {
  x = uf_find(parent, x);
  y = uf_find(parent, y);
  if (x < y)
    parent[y] = x;
  else if (y < x)
    parent[x] = y;
}

/*
 * Unions the links of one bucket k[0..n), sorted by birth date with
 * unknown dates first. Loose: every pair is a link. Strict: a pair is a
 * link unless both dates are known and differ. So in strict mode a member
 * without a date is linked to every other and the bucket is one
 * component; and if all dates are known, the links are exactly the pairs
 * of equal dates, whose components are the runs of equal dates. This
 * gives the components of all pairs without visiting every pair.
 */
static void link_bucket(size_t *parent, const keyed_t *k, size_t n,
                        int strict) {
  size_t i;

  if (!strict || !k[0].birth) {
    for (i = 1; i < n; i++)
      uf_union(parent, k[0].idx, k[i].idx);
    return;
  }
  for (i = 1; i < n; i++)
    if (strcmp(k[i].birth, k[i - 1].birth) == 0)
      uf_union(parent, k[i - 1].idx, k[i].idx);
}

/* Links the patients that share a key of @p keys (one per patient). */
static int link_by_key(const or_legacy_t *l, const char **keys, size_t *parent,
                       int strict, or_arena_t *a) {
  keyed_t *k = or_alloc(a, (l->n_patient + 1) * sizeof(keyed_t));
  size_t i, j, n = 0;

  if (!k)
    return -1;
  for (i = 0; i < l->n_patient; i++) {
    if (!keys[i])
      continue;
    k[n].key = keys[i];
    k[n].birth = l->patient[i].birth_date;
    k[n].idx = i;
    n++;
  }
  qsort(k, n, sizeof(keyed_t), keyed_cmp);
  for (i = 0; i < n; i = j) {
    j = bucket_end(k, n, i);
    link_bucket(parent, k + i, j - i, strict);
  }
  return 0;
}

/* Emits the global_patient rows of the components of @p parent. */
static int emit_global_patients(const or_legacy_t *l, size_t *parent,
                                or_arena_t *a, or_rows_t *gp) {
  size_t n = l->n_patient + 1, i, r;
  size_t *count = or_alloc(a, n * sizeof(size_t));
  size_t *best = or_alloc(a, n * sizeof(size_t));
  const or_patient_t *p;
  const char **v;

  if (!count || !best)
    return -1;
  for (i = 0; i < l->n_patient; i++) {
    r = uf_find(parent, i);
    if (count[r]++ == 0 || l->patient[i].recency > l->patient[best[r]].recency)
      best[r] = i;
  }
  for (r = 0; r < l->n_patient; r++) {
    if (parent[r] != r)
      continue;
    p = &l->patient[best[r]];
    v = or_rows_add(gp, a, l->patient[r].id, 6);
    if (!v)
      return -1;
    v[0] = p->first_name;
    v[1] = p->last_name;
    v[2] = p->middle_name;
    v[3] = p->birth_date;
    v[4] = p->gender;
    v[5] = or_i64_text(a, (int64_t)count[r]);
  }
  return or_arena_failed(a) ? -1 : 0;
}

static int map_patients(const or_legacy_t *l, const char *region, int strict,
                        or_arena_t *a, or_rows_t *gp, or_rows_t *cp) {
  size_t n = l->n_patient + 1, i;
  const char **phones = or_alloc(a, n * sizeof(char *));
  const char **emails = or_alloc(a, n * sizeof(char *));
  size_t *parent = or_alloc(a, n * sizeof(size_t));
  const char **v;

  if (!phones || !emails || !parent)
    return -1;
  for (i = 0; i < l->n_patient; i++) {
    phones[i] = phone_key(a, l->patient[i].phone, region);
    emails[i] = email_key(a, l->patient[i].email);
    parent[i] = i;
  }
  if (or_arena_failed(a) || link_by_key(l, phones, parent, strict, a) != 0 ||
      link_by_key(l, emails, parent, strict, a) != 0 ||
      emit_global_patients(l, parent, a, gp) != 0)
    return -1;
  for (i = 0; i < l->n_patient; i++) {
    v = or_rows_add(cp, a, l->patient[i].id, 4);
    if (!v)
      return -1;
    v[0] = or_i64_text(a, l->patient[uf_find(parent, i)].id);
    v[1] = l->patient[i].clinic_id;
    v[2] = phones[i];
    v[3] = emails[i];
  }
  return or_arena_failed(a) ? -1 : 0;
}

/* ---- appointments ------------------------------------------------- */

static int map_appointments(const or_legacy_t *l, or_arena_t *a,
                            or_rows_t *ap) {
  const or_appt_t *p;
  const char **v;
  size_t i;

  for (i = 0; i < l->n_appt; i++) {
    p = &l->appt[i];
    v = or_rows_add(ap, a, p->id, 7);
    if (!v)
      return -1;
    v[0] = p->clinic_id;
    if (p->has_doctor &&
        find_id(l->user, l->n_user, sizeof(or_user_t), p->doctor_id) >= 0)
      v[1] = or_i64_text(a, p->doctor_id);
    if (p->has_patient && find_id(l->patient, l->n_patient,
                                  sizeof(or_patient_t), p->patient_id) >= 0)
      v[2] = or_i64_text(a, p->patient_id);
    v[3] = p->starts_at;
    v[4] = p->ends_at;
    v[5] = p->status;
    v[6] = p->reason;
  }
  return or_arena_failed(a) ? -1 : 0;
}

int or_map(const or_legacy_t *legacy, const char *region, int strict,
           or_arena_t *a, or_rows_t want[OR_N_TABLES]) {
  if (map_doctors(legacy, a, &want[OR_GLOBAL_DOCTOR],
                  &want[OR_CLINIC_DOCTOR]) != 0 ||
      map_patients(legacy, region, strict, a, &want[OR_GLOBAL_PATIENT],
                   &want[OR_CLINIC_PATIENT]) != 0 ||
      map_appointments(legacy, a, &want[OR_APPOINTMENT]) != 0)
    return -1;
  return or_arena_failed(a) ? -1 : 0;
}
