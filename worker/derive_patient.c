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
 * A change to one patient can merge components (a new key) or split one
 * (an old key gone). Every part of a split still holds a member that
 * shared one of the changed patient's old keys, so the closure over keys
 * from the touched patients' old and new keys reaches every component the
 * change can affect, and the old components of everything it reaches lie
 * inside it. The closure is read from the mirror, locked key by key (see
 * cm_derive.h), and components are computed here with a union-find.
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
 */
#include "clinicmig/cm_derive.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clinicmig/cm_err.h"

static const char closure_sql[] =
    "SELECT id, phone_norm, email_norm, birth_date::text"
    " FROM @cm@.mirror_patient WHERE NOT deleted"
    " AND (id = ANY($1::bigint[]) OR phone_norm = ANY($2::text[])"
    "      OR email_norm = ANY($3::text[])) ORDER BY id";

static const char old_gids_sql[] =
    "SELECT id, global_patient_id FROM @v2@.clinic_patient"
    " WHERE id = ANY($1::bigint[])";

/* $1 [{id, gid}] of the live members, $2 touched patient ids */
static const char write_sql[] =
    "WITH m AS (SELECT x.id, x.gid FROM json_to_recordset($1::json)"
    "           AS x(id bigint, gid bigint)"
    "), p AS (SELECT m.gid, mp.* FROM m"
    "         JOIN @cm@.mirror_patient mp ON mp.id = m.id"
    "), prof AS ("
    "  SELECT DISTINCT ON (gid) gid, first_name, last_name, middle_name,"
    "    birth_date, gender, count(*) OVER (PARTITION BY gid) AS n"
    "  FROM p ORDER BY gid, updated_at DESC NULLS LAST, id DESC"
    "), up_g AS ("
    "  INSERT INTO @v2@.global_patient AS g (id, first_name, last_name,"
    "    middle_name, birth_date, gender, member_count)"
    "  SELECT gid, first_name, last_name, middle_name, birth_date, gender, n"
    "  FROM prof"
    "  ON CONFLICT (id) DO UPDATE SET (first_name, last_name, middle_name,"
    "    birth_date, gender, member_count, updated_at) = ("
    "    EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.middle_name,"
    "    EXCLUDED.birth_date, EXCLUDED.gender, EXCLUDED.member_count, now())"
    "  WHERE (g.first_name, g.last_name, g.middle_name, g.birth_date,"
    "    g.gender, g.member_count) IS DISTINCT FROM (EXCLUDED.first_name,"
    "    EXCLUDED.last_name, EXCLUDED.middle_name, EXCLUDED.birth_date,"
    "    EXCLUDED.gender, EXCLUDED.member_count)"
    "  RETURNING 1"
    "), up_c AS ("
    "  INSERT INTO @v2@.clinic_patient AS c (id, global_patient_id,"
    "    clinic_id, phone, email)"
    "  SELECT id, gid, clinic_id, phone_norm, email_norm FROM p"
    "  ON CONFLICT (id) DO UPDATE SET (global_patient_id, clinic_id, phone,"
    "    email, updated_at) = (EXCLUDED.global_patient_id,"
    "    EXCLUDED.clinic_id, EXCLUDED.phone, EXCLUDED.email, now())"
    "  WHERE (c.global_patient_id, c.clinic_id, c.phone, c.email)"
    "    IS DISTINCT FROM (EXCLUDED.global_patient_id, EXCLUDED.clinic_id,"
    "    EXCLUDED.phone, EXCLUDED.email)"
    "  RETURNING 1"
    "), del_c AS ("
    "  DELETE FROM @v2@.clinic_patient c WHERE c.id = ANY($2::bigint[])"
    "    AND NOT EXISTS (SELECT 1 FROM m WHERE m.id = c.id)"
    "  RETURNING 1"
    ") SELECT (SELECT count(*) FROM up_g), (SELECT count(*) FROM up_c),"
    "         (SELECT count(*) FROM del_c)";

/* $1 [{alias_id, gid}]: aliases that pointed at a retired anchor follow
 * it to its new component */
static const char alias_redirect_sql[] =
    "UPDATE @v2@.global_patient_alias a"
    " SET global_patient_id = x.gid, merged_at = now()"
    " FROM json_to_recordset($1::json) AS x(alias_id bigint, gid bigint)"
    " WHERE a.global_patient_id = x.alias_id";

static const char alias_upsert_sql[] =
    "INSERT INTO @v2@.global_patient_alias (alias_id, global_patient_id)"
    " SELECT alias_id, gid FROM json_to_recordset($1::json)"
    "   AS x(alias_id bigint, gid bigint)"
    " ON CONFLICT (alias_id) DO UPDATE SET"
    " global_patient_id = EXCLUDED.global_patient_id, merged_at = now()";

/* $1 ids that are anchors again, $2 retired anchors with no successor,
 * $3 every retired anchor */
static const char alias_gc_sql[] =
    "WITH a AS (DELETE FROM @v2@.global_patient_alias"
    "   WHERE alias_id = ANY($1::bigint[])"
    "      OR global_patient_id = ANY($2::bigint[]) RETURNING 1"
    "), g AS (DELETE FROM @v2@.global_patient g"
    "   WHERE g.id = ANY($3::bigint[]) AND NOT EXISTS (SELECT 1"
    "     FROM @v2@.clinic_patient c WHERE c.global_patient_id = g.id)"
    "   RETURNING 1"
    ") SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM g)";

/* $1 [{kind, gid, others}] */
static const char regroup_sql[] =
    "INSERT INTO @cm@.patient_regroup (kind, global_patient_id, others)"
    " SELECT x.kind, x.gid, x.others FROM json_to_recordset($1::json)"
    "   AS x(kind text, gid bigint, others bigint[])";

int cm_patient_sql_init(cm_db_t *db, cm_patient_sql_t *sql) {
  sql->closure = cm_db_expand(db, closure_sql);
  sql->old_gids = cm_db_expand(db, old_gids_sql);
  sql->write = cm_db_expand(db, write_sql);
  sql->alias_redirect = cm_db_expand(db, alias_redirect_sql);
  sql->alias_upsert = cm_db_expand(db, alias_upsert_sql);
  sql->alias_gc = cm_db_expand(db, alias_gc_sql);
  sql->regroup = cm_db_expand(db, regroup_sql);
  return sql->closure && sql->old_gids && sql->write && sql->alias_redirect &&
                 sql->alias_upsert && sql->alias_gc && sql->regroup
             ? 0
             : CM_ERR_NOMEM;
}

void cm_patient_sql_free(cm_patient_sql_t *sql) {
  free(sql->closure);
  free(sql->old_gids);
  free(sql->write);
  free(sql->alias_redirect);
  free(sql->alias_upsert);
  free(sql->alias_gc);
  free(sql->regroup);
  memset(sql, 0, sizeof(*sql));
}

/* ---- the closure ------------------------------------------------------ */

typedef struct prow_s {
  int64_t id;
  char *phone; /* key or NULL */
  char *email;
  char *birth; /* "YYYY-MM-DD" or NULL */
  int parent;
  int64_t gid;     /* anchor of its component */
  int64_t old_gid; /* global_patient_id before the batch, or -1 */
} prow_t;

typedef struct closure_s {
  prow_t *rows;
  int n;
  cm_idset_t ids;     /* touched patients */
  cm_strset_t phones; /* keys reached so far */
  cm_strset_t emails;
} closure_t;

static void rows_free(closure_t *c) {
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

/* Reads the live patients holding a reached key; adds their keys.
 * @returns 0 with *grew set when new keys were reached. */
static int read_round(const cm_patient_sql_t *q, cm_db_t *db, closure_t *c,
                      int *grew, char *errstr, size_t errstr_size) {
  const char *params[3];
  int before, i, r = CM_ERR_NOMEM;
  PGresult *res = NULL;
  char *a[3];

  cm_strset_sort(&c->phones);
  cm_strset_sort(&c->emails);
  before = c->phones.n + c->emails.n;
  a[0] = cm_db_int_array(c->ids.v, c->ids.n);
  a[1] = cm_db_text_array(c->phones.v, c->phones.n, 0);
  a[2] = cm_db_text_array(c->emails.v, c->emails.n, 0);
  if (a[0] && a[1] && a[2]) {
    memcpy(params, a, sizeof(params));
    r = cm_db_exec(db, q->closure, 3, params, &res, errstr, errstr_size);
  }
  free(a[0]);
  free(a[1]);
  free(a[2]);
  rows_free(c);
  if (r)
    return r;
  c->n = PQntuples(res);
  c->rows = calloc((size_t)(c->n ? c->n : 1), sizeof(prow_t));
  for (i = 0; c->rows && i < c->n; i++) {
    prow_t *p = &c->rows[i];

    p->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    p->phone = dup_value(res, i, 1);
    p->email = dup_value(res, i, 2);
    p->birth = dup_value(res, i, 3);
    p->old_gid = -1;
    if ((p->phone && cm_strset_add(&c->phones, "", p->phone)) ||
        (p->email && cm_strset_add(&c->emails, "", p->email)))
      break;
  }
  PQclear(res);
  if (!c->rows || i < c->n)
    return CM_ERR_NOMEM;
  cm_strset_sort(&c->phones);
  cm_strset_sort(&c->emails);
  *grew = c->phones.n + c->emails.n > before;
  return 0;
}

static int key_names(const closure_t *c, const cm_idset_t *refs,
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
  return r ? CM_ERR_NOMEM : 0;
}

static int lock_round(cm_db_t *db, const closure_t *c, const cm_idset_t *refs,
                      cm_strset_t *held, int *added, char *errstr,
                      size_t errstr_size) {
  cm_strset_t names = {0};
  int r = key_names(c, refs, &names);

  if (!r)
    r = cm_derive_lock(db, &names, held, added, errstr, errstr_size);
  cm_strset_clear(&names);
  return r;
}

/* Reads the closure of the touched patients until every key in it is
 * locked and a read under those locks finds no new key. */
static int read_closure(const cm_patient_sql_t *q, cm_db_t *db, closure_t *c,
                        const cm_idset_t *refs, cm_strset_t *held, char *errstr,
                        size_t errstr_size) {
  int r, added = 0, grew = 1;

  r = lock_round(db, c, refs, held, &added, errstr, errstr_size);
  while (!r) {
    grew = 1;
    while (!r && grew)
      r = read_round(q, db, c, &grew, errstr, errstr_size);
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

/* Rows come sorted by id, so a component's first row is its anchor. */
static int components(prow_t *rows, int n, cm_match_t match) {
  int i, r;

  for (i = 0; i < n; i++)
    rows[i].parent = i;
  r = link_by(rows, n, 1, match);
  if (!r)
    r = link_by(rows, n, 0, match);
  for (i = 0; !r && i < n; i++)
    rows[i].gid = rows[uf_find(rows, i)].id;
  return r;
}

/* ---- writing ------------------------------------------------------------ */

static prow_t *row_of(closure_t *c, int64_t id) {
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

/* The global ids the members and the touched patients had before. */
static int read_old_gids(const cm_patient_sql_t *q, cm_db_t *db, closure_t *c,
                         cm_idset_t *old, char *errstr, size_t errstr_size) {
  cm_idset_t ids = {0};
  const char *params[1];
  PGresult *res = NULL;
  char *arr = NULL;
  int i, r = CM_ERR_NOMEM;

  for (i = 0; i < c->n; i++)
    if (cm_idset_add(&ids, c->rows[i].id) != 0)
      goto out;
  if (cm_idset_add_all(&ids, c->ids.v, c->ids.n) != 0)
    goto out;
  cm_idset_sort(&ids);
  arr = cm_db_int_array(ids.v, ids.n);
  if (!arr)
    goto out;
  params[0] = arr;
  r = cm_db_exec(db, q->old_gids, 1, params, &res, errstr, errstr_size);
  for (i = 0; !r && i < PQntuples(res); i++) {
    int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    int64_t g = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    prow_t *p = row_of(c, id);

    if (p)
      p->old_gid = g;
    if (cm_idset_add(old, g))
      r = CM_ERR_NOMEM;
  }
out:
  PQclear(res);
  free(arr);
  cm_idset_clear(&ids);
  return r;
}

static int write_members(const cm_patient_sql_t *q, cm_db_t *db,
                         const closure_t *c, char *errstr, size_t errstr_size) {
  cJSON *arr = cJSON_CreateArray(), *o;
  const char *params[2];
  char *json = NULL, *ids;
  int i, r = CM_ERR_NOMEM;

  for (i = 0; arr && i < c->n; i++) {
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)c->rows[i].id);
    cJSON_AddNumberToObject(o, "gid", (double)c->rows[i].gid);
    cJSON_AddItemToArray(arr, o);
  }
  if (arr)
    json = cJSON_PrintUnformatted(arr);
  cJSON_Delete(arr);
  ids = cm_db_int_array(c->ids.v, c->ids.n);
  if (json && ids) {
    params[0] = json;
    params[1] = ids;
    r = cm_db_exec(db, q->write, 2, params, NULL, errstr, errstr_size);
  }
  free(json);
  free(ids);
  return r;
}

/* Where a retired anchor's patients went: its own patient's component,
 * else that of its smallest remaining former member; -1 if none. */
static int64_t successor(closure_t *c, int64_t g) {
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

static int plan_anchors(closure_t *c, cm_idset_t *old, anchors_t *a) {
  cm_idset_t now = {0};
  int i, r = 0;

  for (i = 0; !r && i < c->n; i++)
    r = cm_idset_add(&now, c->rows[i].gid);
  cm_idset_sort(&now);
  cm_idset_sort(old);
  for (i = 0; !r && i < now.n; i++)
    if (!cm_idset_has(old, now.v[i]))
      r = cm_idset_add(&a->fresh, now.v[i]);
  for (i = 0; !r && i < old->n; i++) {
    int64_t g = old->v[i], to;
    cJSON *o;

    if (cm_idset_has(&now, g))
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
  cm_idset_clear(&now);
  return r ? CM_ERR_NOMEM : 0;
}

static int write_aliases(const cm_patient_sql_t *q, cm_db_t *db, anchors_t *a,
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
    r = cm_db_exec(db, q->alias_redirect, 1, params, NULL, errstr, errstr_size);
    if (!r)
      r = cm_db_exec(db, q->alias_upsert, 1, params, NULL, errstr, errstr_size);
    memcpy(params, arr, sizeof(params));
    if (!r)
      r = cm_db_exec(db, q->alias_gc, 3, params, NULL, errstr, errstr_size);
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
static int plan_split(closure_t *c, const anchors_t *a, const pair_t *p, int n,
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
static int plan_splits(closure_t *c, const anchors_t *a, cJSON *out) {
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

static int write_regroup(const cm_patient_sql_t *q, cm_db_t *db, closure_t *c,
                         const anchors_t *a, char *errstr, size_t errstr_size) {
  cJSON *rows = cJSON_CreateArray();
  const char *params[1];
  char *json = NULL;
  int r = rows ? 0 : CM_ERR_NOMEM;

  if (!r)
    r = plan_merges(a, rows);
  if (!r)
    r = plan_splits(c, a, rows);
  if (!r && cJSON_GetArraySize(rows) > 0) {
    json = cJSON_PrintUnformatted(rows);
    params[0] = json;
    r = json ? cm_db_exec(db, q->regroup, 1, params, NULL, errstr, errstr_size)
             : CM_ERR_NOMEM;
  }
  free(json);
  cJSON_Delete(rows);
  return r;
}

static int update_anchors(const cm_patient_sql_t *q, cm_db_t *db, closure_t *c,
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

static int seed_closure(const cm_touched_t *pt, closure_t *c) {
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

int cm_derive_patients(cm_derive_t *d, cm_db_t *db, const cm_touched_t *pt,
                       const cm_idset_t *refs, cm_strset_t *held, char *errstr,
                       size_t errstr_size) {
  closure_t c = {0};
  cm_idset_t old = {0};
  const cm_patient_sql_t *q;
  cm_match_t match;
  int r, added;

  q = cm_derive_patient_sql(d, &match);
  r = seed_closure(pt, &c);
  if (!r && pt->ids.n == 0) /* appointments' patients: lock only */
    r = lock_round(db, &c, refs, held, &added, errstr, errstr_size);
  else if (!r)
    r = read_closure(q, db, &c, refs, held, errstr, errstr_size);
  if (!r && pt->ids.n > 0)
    r = components(c.rows, c.n, match);
  if (!r && pt->ids.n > 0)
    r = read_old_gids(q, db, &c, &old, errstr, errstr_size);
  if (!r && pt->ids.n > 0)
    r = write_members(q, db, &c, errstr, errstr_size);
  if (!r && pt->ids.n > 0)
    r = update_anchors(q, db, &c, &old, errstr, errstr_size);
  rows_free(&c);
  cm_idset_clear(&c.ids);
  cm_strset_clear(&c.phones);
  cm_strset_clear(&c.emails);
  cm_idset_clear(&old);
  return r;
}
