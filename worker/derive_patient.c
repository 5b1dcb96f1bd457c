/*
 * derive_patient.c — patient components, their anchors and aliases.
 *
 * NOTES
 * A global_patient is a connected component of live legacy patients
 * linked by an equal phone key or an equal email key (docs/design.md §2.3);
 * with patients.match = strict, two patients are linked only where their birth
 * dates do not conflict. Its id is the component's anchor, the smallest
 * patient id in it.
 *
 * Components are maintained incrementally (docs/design.md §2.3): what is
 * committed always holds the components of the committed mirror, so a
 * batch only has to look at the components its touched patients can
 * reach. Those are the old components of the touched patients and of
 * the live patients holding one of their keys, old or new (the frame):
 * a path of the new graph leaves one old component only through a
 * touched patient, by one of its keys. Every name read is locked first
 * (cm_derive.h): the touched ids and keys, then "pg:<anchor>" for each
 * component found, re-reading the frame until it finds none new.
 *
 * - When no touched patient lost a key, died, or (strict) may have lost
 *   a link, components can only merge: the old components stay whole,
 *   so the frame's rows are enough. Each old component is represented
 *   by its anchor's row, the members of a component whose anchor
 *   changes move with one UPDATE, and the rest of the component is
 *   never read.
 * - Otherwise a component may split: every member of the frame's
 *   components is read (one statement) and the components of that set,
 *   which holds every new component that meets it, are computed anew.
 *
 * Either way the components of the rows in hand are computed here with a
 * union-find and only rows whose anchor changed are written. Profiles and
 * member counts follow from the old components' recorded profile sources
 * and counts and the rows in hand (profile_sql); a component whose
 * source no longer stands is recomputed from all its members.
 *
 * Stable ids: an old anchor that is no longer an anchor becomes an alias
 * of the component that holds its patient now (or, if that patient is
 * gone, of the component of its smallest remaining former member);
 * aliases that pointed at it follow it; an id that becomes an anchor again
 * stops being an alias.
 *
 * What regrouped is kept in patient_regroup (docs/observability.md), in
 * the same transaction: a `merge` row per anchor that takes in retired
 * anchors as its aliases, and a `split` row per old component whose
 * patients now lie in several components, some under new anchors (the
 * part that holds the old anchor, or its successor, keeps it).
 *
 * The statements are worker/sql/patient_*.sql (worker/sql/README.md).
 */
#include "derive_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clinicmig/cm_err.h"
#include "cm_sql.h"

/* The statements of worker/sql/patient_*.sql, in the order of sources[]. */
enum {
  Q_FRAME,   /* touched patients, holders of their keys, anchors */
  Q_MEMBERS, /* every member of some components */
  Q_MOVES,   /* whole components to a new anchor */
  Q_WRITE,   /* clinic_patient rows */
  Q_PROFILE, /* global_patient rows and their profile sources */
  Q_ALIAS_REDIRECT,
  Q_ALIAS_UPSERT,
  Q_ALIAS_GC,
  Q_REGROUP, /* patient_regroup rows (docs/observability.md) */
  N_Q
};

static const char *const sources[N_Q] = {
    cm_sql_patient_frame,        cm_sql_patient_members,
    cm_sql_patient_moves,        cm_sql_patient_write,
    cm_sql_patient_profile,      cm_sql_patient_alias_redirect,
    cm_sql_patient_alias_upsert, cm_sql_patient_alias_gc,
    cm_sql_patient_regroup};

struct cm_patients_s {
  cm_match_t match;
  char *sql[N_Q]; /* sources[], schema names in */
};

cm_patients_t *cm_patients_new(cm_db_t *db, cm_match_t match) {
  cm_patients_t *q = calloc(1, sizeof(*q));

  if (q && cm_db_expand_all(db, sources, q->sql, N_Q) != 0) {
    free(q);
    return NULL;
  }
  if (q)
    q->match = match;
  return q;
}

void cm_patients_destroy(cm_patients_t *q) {
  if (!q)
    return;
  cm_db_free_all(q->sql, N_Q);
  free(q);
}

/* ---- the frame -------------------------------------------------------- */

typedef struct prow_s {
  int64_t id;
  char *phone; /* key or NULL */
  char *email;
  char *birth; /* "YYYY-MM-DD" or NULL */
  int parent;
  int touched;
  int64_t gid;     /* anchor of its component */
  int64_t old_gid; /* global_patient_id before the batch, or -1 */
} prow_t;

typedef struct frame_s {
  prow_t *rows; /* live rows, by id */
  int n;
  cm_idset_t ids;     /* touched patients */
  cm_strset_t phones; /* their keys, old and new */
  cm_strset_t emails;
  cm_idset_t gids;    /* old anchors of the rows of the last read */
  cm_idset_t seen;    /* every anchor found, read back as rows */
  cm_idset_t anchors; /* the rows' anchors, once components() ran */
  int split;          /* a touched patient may have lost a link */
} frame_t;

static void rows_free(frame_t *c) {
  int i;

  for (i = 0; i < c->n; i++) {
    free(c->rows[i].phone);
    free(c->rows[i].email);
    free(c->rows[i].birth);
  }
  free(c->rows);
  c->rows = NULL;
  c->n = 0;
}

static char *dup_value(PGresult *res, int r, int c) {
  return PQgetisnull(res, r, c) ? NULL : strdup(PQgetvalue(res, r, c));
}

/* A key the patient was derived with that it no longer has. */
static int lost(PGresult *res, int r, int now, int before) {
  return !PQgetisnull(res, r, before) &&
         (PQgetisnull(res, r, now) ||
          strcmp(PQgetvalue(res, r, now), PQgetvalue(res, r, before)) != 0);
}

/* Replaces the rows with the live rows of @p res (as frame_sql returns them, by
 * id); adds every old anchor to c->gids and notes in c->split a touched patient
 * that was derived before and now is gone, lost a key, or (strict) may have
 * lost a link through its birth date. */
static int take_rows(frame_t *c, PGresult *res, cm_match_t match) {
  int i, n = PQntuples(res), r = 0;

  rows_free(c);
  c->rows = calloc((size_t)(n ? n : 1), sizeof(prow_t));
  if (!c->rows)
    return CM_ERR_NOMEM;
  for (i = 0; !r && i < n; i++) {
    int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    int64_t old =
        PQgetisnull(res, i, 1) ? -1 : strtoll(PQgetvalue(res, i, 1), NULL, 10);
    int dead = strcmp(PQgetvalue(res, i, 5), "t") == 0;
    int touched = cm_idset_has(&c->ids, id);
    prow_t *p;

    if (old >= 0 && cm_idset_add(&c->gids, old))
      r = CM_ERR_NOMEM;
    if (touched && old >= 0 &&
        (dead || lost(res, i, 2, 6) || lost(res, i, 3, 7) ||
         match == CM_MATCH_STRICT))
      c->split = 1;
    if (dead)
      continue;
    p = &c->rows[c->n++];
    p->id = id;
    p->old_gid = old;
    p->touched = touched;
    p->phone = dup_value(res, i, 2);
    p->email = dup_value(res, i, 3);
    p->birth = dup_value(res, i, 4);
    if ((!PQgetisnull(res, i, 2) && !p->phone) ||
        (!PQgetisnull(res, i, 3) && !p->email) ||
        (!PQgetisnull(res, i, 4) && !p->birth))
      r = CM_ERR_NOMEM;
  }
  cm_idset_sort(&c->gids);
  return r;
}

/* Reads the frame: the touched patients, the live holders of their keys
 * and the anchors found so far. */
static int read_frame(const cm_patients_t *q, cm_db_t *db, frame_t *c,
                      char *errstr, size_t errstr_size) {
  cm_idset_t ids = {0};
  const char *params[3];
  PGresult *res = NULL;
  int i, r = CM_ERR_NOMEM;
  char *a[3];

  if (cm_idset_add_all(&ids, c->ids.v, c->ids.n) != 0 ||
      cm_idset_add_all(&ids, c->seen.v, c->seen.n) != 0) {
    cm_idset_clear(&ids);
    return CM_ERR_NOMEM;
  }
  cm_idset_sort(&ids);
  a[0] = cm_db_int_array(ids.v, ids.n);
  a[1] = cm_db_text_array(c->phones.v, c->phones.n, 0);
  a[2] = cm_db_text_array(c->emails.v, c->emails.n, 0);
  if (a[0] && a[1] && a[2]) {
    memcpy(params, a, sizeof(params));
    r = cm_db_exec(db, q->sql[Q_FRAME], 3, params, &res, errstr, errstr_size);
  }
  for (i = 0; i < 3; i++)
    free(a[i]);
  cm_idset_clear(&ids);
  c->split = 0;
  c->gids.n = 0;
  if (!r)
    r = take_rows(c, res, q->match);
  if (!r && cm_idset_add_all(&c->seen, c->gids.v, c->gids.n) != 0)
    r = CM_ERR_NOMEM;
  cm_idset_sort(&c->seen);
  PQclear(res);
  return r;
}

/* Reads every live member of the frame's components, and the touched
 * patients that belong to none yet. */
static int read_members(const cm_patients_t *q, cm_db_t *db, frame_t *c,
                        char *errstr, size_t errstr_size) {
  const char *params[2];
  PGresult *res = NULL;
  char *a[2];
  int r = CM_ERR_NOMEM;

  a[0] = cm_db_int_array(c->gids.v, c->gids.n);
  a[1] = cm_db_int_array(c->ids.v, c->ids.n);
  if (a[0] && a[1]) {
    memcpy(params, a, sizeof(params));
    r = cm_db_exec(db, q->sql[Q_MEMBERS], 2, params, &res, errstr, errstr_size);
  }
  free(a[0]);
  free(a[1]);
  if (!r)
    r = take_rows(c, res, q->match);
  PQclear(res);
  return r;
}

static int key_names(const frame_t *c, const cm_idset_t *refs,
                     cm_strset_t *names) {
  char buf[32];
  int i, r = 0;

  for (i = 0; !r && i < c->ids.n; i++) {
    snprintf(buf, sizeof(buf), "%" PRId64, c->ids.v[i]);
    r = cm_strset_add(names, "pu:", buf);
  }
  for (i = 0; !r && refs && i < refs->n; i++) {
    snprintf(buf, sizeof(buf), "%" PRId64, refs->v[i]);
    r = cm_strset_add(names, "pu:", buf);
  }
  for (i = 0; !r && i < c->phones.n; i++)
    r = cm_strset_add(names, "pk:p:", c->phones.v[i]);
  for (i = 0; !r && i < c->emails.n; i++)
    r = cm_strset_add(names, "pk:e:", c->emails.v[i]);
  for (i = 0; !r && i < c->gids.n; i++) {
    snprintf(buf, sizeof(buf), "%" PRId64, c->gids.v[i]);
    r = cm_strset_add(names, "pg:", buf);
  }
  return r ? CM_ERR_NOMEM : 0;
}

static int lock_round(cm_db_t *db, const frame_t *c, const cm_idset_t *refs,
                      cm_strset_t *held, int *added, char *errstr,
                      size_t errstr_size) {
  cm_strset_t names = {0};
  int r = key_names(c, refs, &names);

  if (!r)
    r = cm_derive_lock(db, &names, held, added, errstr, errstr_size);
  cm_strset_clear(&names);
  return r;
}

/* Locks the touched patients and their keys, then reads the frame until
 * every component in it is locked and a read under those locks finds no
 * new one. */
static int read_locked_frame(const cm_patients_t *q, cm_db_t *db, frame_t *c,
                             const cm_idset_t *refs, cm_strset_t *held,
                             char *errstr, size_t errstr_size) {
  int r, added = 0;

  r = lock_round(db, c, refs, held, &added, errstr, errstr_size);
  while (!r) {
    r = read_frame(q, db, c, errstr, errstr_size);
    if (!r)
      r = lock_round(db, c, NULL, held, &added, errstr, errstr_size);
    if (!r && !added)
      break;
  }
  return r;
}

/* ---- components ------------------------------------------------------- */

static int uf_find(prow_t *rows, int i) {
  while (rows[i].parent != i) {
    rows[i].parent = rows[rows[i].parent].parent;
    i = rows[i].parent;
  }
  return i;
}

static void uf_union(prow_t *rows, int a, int b) {
  a = uf_find(rows, a);
  b = uf_find(rows, b);
  if (a != b)
    rows[a > b ? a : b].parent = a < b ? a : b;
}

/* Birth dates conflict when both are known and differ. */
static int conflict(const prow_t *a, const prow_t *b) {
  return a->birth && b->birth && strcmp(a->birth, b->birth) != 0;
}

typedef struct keyed_s {
  const char *key;
  int row;
} keyed_t;

static int cmp_keyed(const void *x, const void *y) {
  const keyed_t *a = x, *b = y;
  int c = strcmp(a->key, b->key);

  return c ? c : a->row - b->row;
}

/* Links the patients of one bucket (rows sharing a key). */
static void link_bucket(prow_t *rows, const keyed_t *k, int n,
                        cm_match_t match) {
  int i, j;

  for (i = 1; i < n; i++) {
    if (match == CM_MATCH_LOOSE) {
      uf_union(rows, k[0].row, k[i].row);
      continue;
    }
    for (j = 0; j < i; j++)
      if (!conflict(&rows[k[j].row], &rows[k[i].row]))
        uf_union(rows, k[j].row, k[i].row);
  }
}

/* Links the patients that share a key of one kind (phone or email). */
static int link_by(prow_t *rows, int n, int phone, cm_match_t match) {
  keyed_t *k = malloc(sizeof(*k) * (size_t)(n ? n : 1));
  int i, m = 0, start;

  if (!k)
    return CM_ERR_NOMEM;
  for (i = 0; i < n; i++) {
    const char *key = phone ? rows[i].phone : rows[i].email;

    if (key) {
      k[m].key = key;
      k[m++].row = i;
    }
  }
  qsort(k, (size_t)m, sizeof(*k), cmp_keyed);
  for (start = 0; start < m; start = i) {
    for (i = start + 1; i < m && strcmp(k[i].key, k[start].key) == 0; i++)
      ;
    link_bucket(rows, k + start, i - start, match);
  }
  free(k);
  return 0;
}

static prow_t *row_of(frame_t *c, int64_t id) {
  int lo = 0, hi = c->n - 1;

  while (lo <= hi) {
    int mid = (lo + hi) / 2;

    if (c->rows[mid].id == id)
      return &c->rows[mid];
    if (c->rows[mid].id < id)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return NULL;
}

/* Components can only merge when every old anchor of the frame is read
 * back as the live row of its own component: then each old component
 * stands for itself whole. */
static int whole(frame_t *c) {
  int i;

  if (c->split)
    return 0;
  for (i = 0; i < c->gids.n; i++) {
    prow_t *p = row_of(c, c->gids.v[i]);

    if (!p || p->old_gid != p->id)
      return 0;
  }
  return 1;
}

/* Rows come sorted by id, so a component's first row is its anchor.
 * @p kept: the old components stayed whole, so each row is first
 * joined to its old anchor's row. */
static int components(frame_t *c, cm_match_t match, int kept) {
  prow_t *rows = c->rows;
  int i, n = c->n, r;

  for (i = 0; i < n; i++)
    rows[i].parent = i;
  for (i = 0; kept && i < n; i++)
    if (rows[i].old_gid >= 0)
      uf_union(rows, i, (int)(row_of(c, rows[i].old_gid) - rows));
  r = link_by(rows, n, 1, match);
  if (!r)
    r = link_by(rows, n, 0, match);
  for (i = 0; !r && i < n; i++) {
    rows[i].gid = rows[uf_find(rows, i)].id;
    if (cm_idset_add(&c->anchors, rows[i].gid))
      r = CM_ERR_NOMEM;
  }
  cm_idset_sort(&c->anchors);
  return r;
}

/* ---- writing ------------------------------------------------------------ */

/* Builds [{k1: v1, k2: v2}] as JSON text. */
static char *pairs_json(const int64_t *a, const int64_t *b, int n,
                        const char *k1, const char *k2) {
  cJSON *arr = cJSON_CreateArray(), *o;
  char *json = NULL;
  int i;

  for (i = 0; arr && i < n; i++) {
    o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o) ||
        !cJSON_AddNumberToObject(o, k1, (double)a[i]) ||
        !cJSON_AddNumberToObject(o, k2, (double)b[i]))
      goto out;
  }
  if (arr)
    json = cJSON_PrintUnformatted(arr);
out:
  cJSON_Delete(arr);
  return json;
}

/* Runs @p sql with the JSON text of @p rows as its one parameter; nothing
 * when @p rows is empty. */
static int exec_rows(cm_db_t *db, const char *sql, const cJSON *rows,
                     char *errstr, size_t errstr_size) {
  const char *params[1];
  char *json;
  int r;

  if (cJSON_GetArraySize(rows) == 0)
    return 0;
  json = cJSON_PrintUnformatted(rows);
  if (!json)
    return CM_ERR_NOMEM;
  params[0] = json;
  r = cm_db_exec(db, sql, 1, params, NULL, errstr, errstr_size);
  free(json);
  return r;
}

/* Moves the members of every whole old component whose anchor changed. */
static int write_moves(const cm_patients_t *q, cm_db_t *db, frame_t *c,
                       char *errstr, size_t errstr_size) {
  int64_t *from = malloc(sizeof(*from) * (size_t)(c->gids.n + 1));
  int64_t *to = malloc(sizeof(*to) * (size_t)(c->gids.n + 1));
  const char *params[1];
  char *json = NULL;
  int i, n = 0, r = CM_ERR_NOMEM;

  for (i = 0; from && to && i < c->gids.n; i++) {
    prow_t *p = row_of(c, c->gids.v[i]);

    if (p->gid != p->id) {
      from[n] = p->id;
      to[n++] = p->gid;
    }
  }
  if (from && to && n == 0)
    r = 0;
  else if (from && to)
    json = pairs_json(from, to, n, "from", "to");
  if (json) {
    params[0] = json;
    r = cm_db_exec(db, q->sql[Q_MOVES], 1, params, NULL, errstr, errstr_size);
  }
  free(json);
  free(from);
  free(to);
  return r;
}

/* By anchor now, then by old anchor, so that each component's old
 * anchors come in runs. */
static int cmp_by_gid(const void *x, const void *y) {
  const prow_t *a = *(prow_t *const *)x, *b = *(prow_t *const *)y;

  if (a->gid != b->gid)
    return a->gid < b->gid ? -1 : 1;
  if (a->old_gid != b->old_gid)
    return a->old_gid < b->old_gid ? -1 : 1;
  return (a->id > b->id) - (a->id < b->id);
}

static int add_id(cJSON *arr, int64_t id) {
  return cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)id)) ? 0 : -1;
}

/* Adds {g, o, c, k} for the component of rows p[0..n) (profile_sql).
 * @p kept: the old components stayed whole, so a member of one (o) that
 * is not touched is stood for by that component's profile source; else
 * every member is in hand, and in c. Nothing is added for a component
 * that is one old component, whole, with no row touched. */
static int add_profile(cJSON *out, prow_t *const *p, int n, int kept) {
  cJSON *o = cJSON_CreateObject();
  cJSON *olds = cJSON_AddArrayToObject(o, "o");
  cJSON *cands = cJSON_AddArrayToObject(o, "c");
  int i, k = 0, same = kept, r = olds && cands ? 0 : -1;

  for (i = 0; !r && i < n; i++) {
    int64_t old = kept ? p[i]->old_gid : -1;

    if (old < 0)
      k++;
    else if (i == 0 || old != p[i - 1]->old_gid)
      r = add_id(olds, old);
    if (!r && (old < 0 || p[i]->touched))
      r = add_id(cands, p[i]->id);
    same &= old == p[0]->gid && !p[i]->touched;
  }
  if (!r && !same &&
      (!cJSON_AddNumberToObject(o, "g", (double)p[0]->gid) ||
       !cJSON_AddNumberToObject(o, "k", k) || !cJSON_AddItemToArray(out, o)))
    r = -1;
  if (r || same)
    cJSON_Delete(o);
  return r ? CM_ERR_NOMEM : 0;
}

/* Recomputes the profile and member count of every anchor in hand whose
 * component may have changed (profile_sql). */
static int write_profiles(const cm_patients_t *q, cm_db_t *db, const frame_t *c,
                          int kept, char *errstr, size_t errstr_size) {
  prow_t **p = malloc(sizeof(*p) * (size_t)(c->n + 1));
  cJSON *out = cJSON_CreateArray();
  int i, start, r = p && out ? 0 : CM_ERR_NOMEM;

  for (i = 0; !r && i < c->n; i++)
    p[i] = &c->rows[i];
  if (!r)
    qsort(p, (size_t)c->n, sizeof(*p), cmp_by_gid);
  for (start = 0; !r && start < c->n; start = i) {
    for (i = start; i < c->n && p[i]->gid == p[start]->gid; i++)
      ;
    r = add_profile(out, p + start, i - start, kept);
  }
  if (!r)
    r = exec_rows(db, q->sql[Q_PROFILE], out, errstr, errstr_size);
  cJSON_Delete(out);
  free(p);
  return r;
}

/* Writes the rows that are touched or changed anchor, deletes the
 * touched patients that are gone, then the profiles. */
static int write_members(const cm_patients_t *q, cm_db_t *db, const frame_t *c,
                         int kept, char *errstr, size_t errstr_size) {
  int64_t *id = malloc(sizeof(*id) * (size_t)(c->n + 1));
  int64_t *gid = malloc(sizeof(*gid) * (size_t)(c->n + 1));
  const char *params[2];
  char *json = NULL, *ids = NULL;
  int i, n = 0, r = CM_ERR_NOMEM;

  for (i = 0; id && gid && i < c->n; i++)
    if (c->rows[i].touched || c->rows[i].gid != c->rows[i].old_gid) {
      id[n] = c->rows[i].id;
      gid[n++] = c->rows[i].gid;
    }
  json = id && gid ? pairs_json(id, gid, n, "id", "gid") : NULL;
  ids = cm_db_int_array(c->ids.v, c->ids.n);
  if (json && ids) {
    params[0] = json;
    params[1] = ids;
    r = cm_db_exec(db, q->sql[Q_WRITE], 2, params, NULL, errstr, errstr_size);
  }
  if (!r)
    r = write_profiles(q, db, c, kept, errstr, errstr_size);
  free(json);
  free(ids);
  free(id);
  free(gid);
  return r;
}

/* Where a retired anchor's patients went: its own patient's component,
 * else that of its smallest remaining former member; -1 if none. */
static int64_t successor(frame_t *c, int64_t g) {
  prow_t *p = row_of(c, g);
  int i;

  if (p)
    return p->gid;
  for (i = 0; i < c->n; i++)
    if (c->rows[i].old_gid == g)
      return c->rows[i].gid;
  return -1;
}

typedef struct anchors_s {
  cm_idset_t fresh;   /* anchors now that were not before */
  cm_idset_t retired; /* anchors before that are not now */
  cm_idset_t dead;    /* retired with no successor */
  cJSON *aliases;     /* [{alias_id, gid}] */
} anchors_t;

static int plan_anchors(frame_t *c, cm_idset_t *old, anchors_t *a) {
  const cm_idset_t *now = &c->anchors;
  int i, r = 0;

  cm_idset_sort(old);
  for (i = 0; !r && i < now->n; i++)
    if (!cm_idset_has(old, now->v[i]))
      r = cm_idset_add(&a->fresh, now->v[i]);
  for (i = 0; !r && i < old->n; i++) {
    int64_t g = old->v[i], to;
    cJSON *o;

    if (cm_idset_has(now, g))
      continue;
    r = cm_idset_add(&a->retired, g);
    to = successor(c, g);
    if (!r && to < 0) {
      r = cm_idset_add(&a->dead, g);
      continue;
    }
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "alias_id", (double)g);
    cJSON_AddNumberToObject(o, "gid", (double)to);
    cJSON_AddItemToArray(a->aliases, o);
  }
  return r ? CM_ERR_NOMEM : 0;
}

static int write_aliases(const cm_patients_t *q, cm_db_t *db, anchors_t *a,
                         char *errstr, size_t errstr_size) {
  char *json = cJSON_PrintUnformatted(a->aliases);
  char *arr[3];
  const char *params[3];
  int r = CM_ERR_NOMEM;

  arr[0] = cm_db_int_array(a->fresh.v, a->fresh.n);
  arr[1] = cm_db_int_array(a->dead.v, a->dead.n);
  arr[2] = cm_db_int_array(a->retired.v, a->retired.n);
  if (json && arr[0] && arr[1] && arr[2]) {
    params[0] = json;
    r = cm_db_exec(db, q->sql[Q_ALIAS_REDIRECT], 1, params, NULL, errstr,
                   errstr_size);
    if (!r)
      r = cm_db_exec(db, q->sql[Q_ALIAS_UPSERT], 1, params, NULL, errstr,
                     errstr_size);
    memcpy(params, arr, sizeof(params));
    if (!r)
      r = cm_db_exec(db, q->sql[Q_ALIAS_GC], 3, params, NULL, errstr,
                     errstr_size);
  }
  free(json);
  free(arr[0]);
  free(arr[1]);
  free(arr[2]);
  return r;
}

/* ---- merges and splits, for patient_regroup ---------------------------- */

typedef struct pair_s {
  int64_t key; /* the anchor a merge keeps / the old anchor of a split */
  int64_t val; /* a merged-in anchor / a member's anchor now */
} pair_t;

static int cmp_pair(const void *x, const void *y) {
  const pair_t *a = x, *b = y;

  if (a->key != b->key)
    return a->key < b->key ? -1 : 1;
  return (a->val > b->val) - (a->val < b->val);
}

/* Appends {kind, gid, others} to @p out. */
static int add_regroup(cJSON *out, const char *kind, int64_t gid,
                       const cm_idset_t *others) {
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
  int i;

  if (!o || !arr) {
    cJSON_Delete(o);
    cJSON_Delete(arr);
    return CM_ERR_NOMEM;
  }
  for (i = 0; i < others->n; i++)
    cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)others->v[i]));
  cJSON_AddStringToObject(o, "kind", kind);
  cJSON_AddNumberToObject(o, "gid", (double)gid);
  cJSON_AddItemToObject(o, "others", arr);
  cJSON_AddItemToArray(out, o);
  return 0;
}

/* One merge row per surviving anchor: the retired anchors made its
 * aliases by this batch. */
static int plan_merges(const anchors_t *a, cJSON *out) {
  int i, n = cJSON_GetArraySize(a->aliases), start, r = 0;
  pair_t *p = malloc(sizeof(*p) * (size_t)(n ? n : 1));
  cm_idset_t others = {0};

  if (!p)
    return CM_ERR_NOMEM;
  for (i = 0; i < n; i++) {
    cJSON *o = cJSON_GetArrayItem(a->aliases, i);

    p[i].key = (int64_t)cJSON_GetObjectItem(o, "gid")->valuedouble;
    p[i].val = (int64_t)cJSON_GetObjectItem(o, "alias_id")->valuedouble;
  }
  qsort(p, (size_t)n, sizeof(*p), cmp_pair);
  for (start = 0; !r && start < n; start = i) {
    others.n = 0;
    for (i = start; !r && i < n && p[i].key == p[start].key; i++)
      r = cm_idset_add(&others, p[i].val) ? CM_ERR_NOMEM : 0;
    if (!r)
      r = add_regroup(out, "merge", p[start].key, &others);
  }
  cm_idset_clear(&others);
  free(p);
  return r;
}

/* The split of old anchor p[0].key whose members now have the anchors
 * p[0..n) (sorted): the part holding the anchor (or its successor) keeps
 * it; the others that are new anchors were split off. */
static int plan_split(frame_t *c, const anchors_t *a, const pair_t *p, int n,
                      cJSON *out) {
  int64_t keep = p[0].key;
  cm_idset_t others = {0};
  int i, r = 0, kept = 0;

  for (i = 0; i < n; i++)
    kept |= p[i].val == keep;
  if (!kept)
    keep = successor(c, p[0].key);
  for (i = 0; !r && i < n; i++)
    if (p[i].val != keep && (i == 0 || p[i].val != p[i - 1].val) &&
        cm_idset_has(&a->fresh, p[i].val))
      r = cm_idset_add(&others, p[i].val) ? CM_ERR_NOMEM : 0;
  if (!r && others.n > 0)
    r = add_regroup(out, "split", keep, &others);
  cm_idset_clear(&others);
  return r;
}

/* One split row per old component now in several, some new. */
static int plan_splits(frame_t *c, const anchors_t *a, cJSON *out) {
  pair_t *p = malloc(sizeof(*p) * (size_t)(c->n ? c->n : 1));
  int i, m = 0, start, r = 0;

  if (!p)
    return CM_ERR_NOMEM;
  for (i = 0; i < c->n; i++) {
    if (c->rows[i].old_gid < 0)
      continue;
    p[m].key = c->rows[i].old_gid;
    p[m++].val = c->rows[i].gid;
  }
  qsort(p, (size_t)m, sizeof(*p), cmp_pair);
  for (start = 0; !r && start < m; start = i) {
    for (i = start; i < m && p[i].key == p[start].key; i++)
      ;
    if (p[start].val != p[i - 1].val) /* more than one anchor now */
      r = plan_split(c, a, p + start, i - start, out);
  }
  free(p);
  return r;
}

static int write_regroup(const cm_patients_t *q, cm_db_t *db, frame_t *c,
                         const anchors_t *a, char *errstr, size_t errstr_size) {
  cJSON *rows = cJSON_CreateArray();
  int r = rows ? 0 : CM_ERR_NOMEM;

  if (!r)
    r = plan_merges(a, rows);
  if (!r)
    r = plan_splits(c, a, rows);
  if (!r)
    r = exec_rows(db, q->sql[Q_REGROUP], rows, errstr, errstr_size);
  cJSON_Delete(rows);
  return r;
}

static int update_anchors(const cm_patients_t *q, cm_db_t *db, frame_t *c,
                          cm_idset_t *old, char *errstr, size_t errstr_size) {
  anchors_t a = {0};
  int r;

  a.aliases = cJSON_CreateArray();
  r = a.aliases ? plan_anchors(c, old, &a) : CM_ERR_NOMEM;
  if (!r && (a.fresh.n || a.retired.n))
    r = write_aliases(q, db, &a, errstr, errstr_size);
  if (!r && (a.fresh.n || a.retired.n)) {
    cm_idset_sort(&a.fresh);
    r = write_regroup(q, db, c, &a, errstr, errstr_size);
  }
  cJSON_Delete(a.aliases);
  cm_idset_clear(&a.fresh);
  cm_idset_clear(&a.retired);
  cm_idset_clear(&a.dead);
  return r;
}

/* ---- the entry point ----------------------------------------------------- */

static int seed_frame(const cm_touched_t *pt, frame_t *c) {
  int i, r;

  r = cm_idset_add_all(&c->ids, pt->ids.v, pt->ids.n);
  for (i = 0; !r && i < pt->keys.n; i++) {
    if (strncmp(pt->keys.v[i], "p:", 2) == 0)
      r = cm_strset_add(&c->phones, "", pt->keys.v[i] + 2);
    else if (strncmp(pt->keys.v[i], "e:", 2) == 0)
      r = cm_strset_add(&c->emails, "", pt->keys.v[i] + 2);
  }
  cm_idset_sort(&c->ids);
  return r ? CM_ERR_NOMEM : 0;
}

int cm_patients_derive(cm_patients_t *q, cm_db_t *db, const cm_touched_t *pt,
                       const cm_idset_t *refs, cm_strset_t *held, char *errstr,
                       size_t errstr_size) {
  frame_t c = {0};
  int r, added, kept = 0;

  r = seed_frame(pt, &c);
  if (!r && pt->ids.n == 0) /* appointments' patients: lock only */
    r = lock_round(db, &c, refs, held, &added, errstr, errstr_size);
  else if (!r)
    r = read_locked_frame(q, db, &c, refs, held, errstr, errstr_size);
  if (!r && pt->ids.n > 0) {
    kept = whole(&c);
    if (!kept)
      r = read_members(q, db, &c, errstr, errstr_size);
  }
  if (!r && pt->ids.n > 0)
    r = components(&c, q->match, kept);
  if (!r && kept)
    r = write_moves(q, db, &c, errstr, errstr_size);
  if (!r && pt->ids.n > 0)
    r = write_members(q, db, &c, kept, errstr, errstr_size);
  if (!r && pt->ids.n > 0)
    r = update_anchors(q, db, &c, &c.gids, errstr, errstr_size);
  rows_free(&c);
  cm_idset_clear(&c.ids);
  cm_idset_clear(&c.gids);
  cm_idset_clear(&c.seen);
  cm_idset_clear(&c.anchors);
  cm_strset_clear(&c.phones);
  cm_strset_clear(&c.emails);
  return r;
}
