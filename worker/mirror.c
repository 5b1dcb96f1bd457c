/*
 * mirror.c — lands events in the mirror of the legacy rows.
 *
 * NOTES
 * One call per table and batch, three steps:
 *   lock    SELECT the stored rows of the batch's keys FOR UPDATE, in key
 *           order (one round trip);
 *   fold    walk each key's events in batch order against the stored
 *           version: an event the stored version supersedes is stale, a
 *           delete leaves a tombstone, an unchanged-TOAST placeholder keeps
 *           the stored value (docs/design.md §2.2);
 *   write   one INSERT ... ON CONFLICT for every changed row, sent as a
 *           JSON array, guarded again by the same rule (@cm@.supersedes)
 *           so that a row a concurrent batch wrote meanwhile is never
 *           moved backwards.
 * Live events are ordered by LSN; rows of a backfill carry the snapshot
 * they were read in and are ordered against live events by visibility,
 * against each other by age. A backfill's range marker becomes deletes
 * (at its snapshot) of the mirror rows of its range that the snapshot
 * does not hold, and is recorded so that a key the mirror has never seen
 * is judged against it too (a "virtual" stored version).
 * Values travel as PostgreSQL input text; the session runs in UTC with ISO
 * dates (db.c), so text read back from the mirror re-enters unchanged.
 */
#include "clinicmig/cm_mirror.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_log.h"
#include "clinicmig/cm_normalize.h"
#include "clinicmig/cm_txsnap.h"
#include "clinicmig/cm_value.h"

#define MAX_EXTRA 2
#define NORM_MAX 320

/* What the mirror keeps of one table beyond its legacy columns. */
typedef struct tdesc_s {
  cm_table_t table;
  const char *mirror; /* table name in the bookkeeping schema */
  int n_extra;
  const char *extra[MAX_EXTRA];
  int src[MAX_EXTRA]; /* the legacy column each extra is made from */
} tdesc_t;

static const tdesc_t tdescs[] = {
    {CM_TABLE_USER, "mirror_user", 1, {"email_norm"}, {CM_USER_EMAIL}},
    {CM_TABLE_PATIENT,
     "mirror_patient",
     2,
     {"phone_norm", "email_norm"},
     {CM_PATIENT_PHONE, CM_PATIENT_EMAIL}},
    {CM_TABLE_APPOINTMENT, "mirror_appointment", 0, {NULL}, {0}},
};
#define N_TDESC (int)(sizeof(tdescs) / sizeof(tdescs[0]))

typedef struct tsql_s {
  char *lock;
  char *write;
  char *ranges; /* the recorded ranges covering keys the mirror lacks */
  char *marker; /* records a marker, lists the rows it deletes */
} tsql_t;

struct cm_mirror_s {
  char *region;
  char *lock_share; /* every batch: no marker may land meanwhile */
  char *lock_excl;  /* a batch with markers: alone */
  tsql_t sql[N_TDESC];
};

/* The stored (then folded) version of one key. */
typedef struct state_s {
  int64_t id;
  int exists;
  int deleted;
  int has_lsn;
  int64_t lsn;
  int has_tx;
  int64_t tx_id;
  int snapshot;
  int has_snap; /* the version is a backfill row's: ordered by snap */
  cm_txsnap_t snap;
  int virt;           /* no row: the version a recorded range implies */
  int exists_at_load; /* a stored row was read (old_* hold its keys) */
  int live_at_load;   /* ... and it was not deleted */
  int refold;         /* columns changed: the keys need set_extras */
  int changed;
  int written;           /* the guarded write moved the stored row */
  const cm_item_t *last; /* item whose position the row now carries */
  char *vals[CM_MAX_COLS + MAX_EXTRA];
  char *old_extra[MAX_EXTRA]; /* grouping keys before the batch */
  char *old_src[MAX_EXTRA];   /* the stored values they were made from */
  char *old_ref[2];           /* appointments: doctorId, patientId before */
} state_t;

static const tdesc_t *tdesc_of(cm_table_t t, int *idx) {
  int i;

  for (i = 0; i < N_TDESC; i++)
    if (tdescs[i].table == t) {
      *idx = i;
      return &tdescs[i];
    }
  return NULL;
}

/* Appends ", col" for every column (and extra) to @p s. */
static void col_list(char *s, size_t size, const tdesc_t *td,
                     const char *prefix) {
  const cm_column_t *cols;
  size_t len;
  int n, i;

  cols = cm_table_columns(td->table, &n);
  for (i = 0; i < n + td->n_extra; i++) {
    len = strlen(s);
    snprintf(s + len, size - len, "%s%s%s", i ? ", " : "", prefix,
             i < n ? cols[i].sql : td->extra[i - n]);
  }
}

static int build_sql(cm_db_t *db, const tdesc_t *td, tsql_t *out) {
  static const char pos[] = "deleted, lsn, tx_id, snapshot, snap_xmin, "
                            "snap_xmax, snap_xip, src_topic, "
                            "src_partition, src_offset";
  static const char xpos[] =
      "EXCLUDED.deleted, EXCLUDED.lsn, EXCLUDED.tx_id, EXCLUDED.snapshot, "
      "EXCLUDED.snap_xmin, EXCLUDED.snap_xmax, EXCLUDED.snap_xip, "
      "EXCLUDED.src_topic, EXCLUDED.src_partition, EXCLUDED.src_offset";
  char cols[1024] = "", xcols[1536] = "", tmpl[4096];

  col_list(cols, sizeof(cols), td, "");
  col_list(xcols, sizeof(xcols), td, "EXCLUDED.");
  snprintf(tmpl, sizeof(tmpl),
           "SELECT %s, deleted, lsn, tx_id, snapshot, snap_xmin, snap_xmax, "
           "snap_xip::text FROM @cm@.%s "
           "WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
           cols, td->mirror);
  out->lock = cm_db_expand(db, tmpl);
  snprintf(tmpl, sizeof(tmpl),
           "INSERT INTO @cm@.%s AS m (%s, %s, applied_at) "
           "SELECT %s, %s, now() "
           "FROM json_populate_recordset(NULL::@cm@.%s, $1::json) "
           "ON CONFLICT (id) DO UPDATE SET (%s, %s, applied_at) = "
           "(%s, %s, now()) "
           "WHERE @cm@.supersedes(EXCLUDED.lsn, EXCLUDED.tx_id, "
           "EXCLUDED.snap_xmin, EXCLUDED.snap_xmax, EXCLUDED.snap_xip, "
           "m.lsn, m.tx_id, m.snap_xmin, m.snap_xmax, m.snap_xip) "
           "RETURNING id",
           td->mirror, cols, pos, cols, pos, td->mirror, cols, pos, xcols,
           xpos);
  out->write = cm_db_expand(db, tmpl);
  snprintf(tmpl, sizeof(tmpl),
           "SELECT k.id, r.snap_xmin, r.snap_xmax, r.snap_xip::text "
           "FROM unnest($1::bigint[]) AS k(id) "
           "JOIN @cm@.snapshot_range r ON r.span @> k.id "
           "AND r.tbl = '%s' AND NOT (k.id <@ r.present)",
           cm_table_name(td->table));
  out->ranges = cm_db_expand(db, tmpl);
  snprintf(tmpl, sizeof(tmpl),
           "WITH r AS (INSERT INTO @cm@.snapshot_range (tbl, first_id, "
           "last_id, present, snap_xmin, snap_xmax, snap_xip, src_topic, "
           "src_partition, src_offset) VALUES ('%s', $1, $2, "
           "$3::int8multirange, $4, $5, $6::bigint[], $7, $8, $9) "
           "ON CONFLICT DO NOTHING) "
           "SELECT id FROM @cm@.%s WHERE id BETWEEN $1 AND $2 "
           "AND NOT (id <@ $3::int8multirange) ORDER BY id",
           cm_table_name(td->table), td->mirror);
  out->marker = cm_db_expand(db, tmpl);
  return out->lock && out->write && out->ranges && out->marker ? 0
                                                               : CM_ERR_NOMEM;
}

cm_mirror_t *cm_mirror_new(cm_db_t *db, const char *phone_region) {
  cm_mirror_t *m = calloc(1, sizeof(*m));
  int i;

  if (!m)
    return NULL;
  m->region = strdup(phone_region);
  m->lock_share =
      cm_db_expand(db, "LOCK TABLE @cm@.snapshot_range IN SHARE MODE");
  m->lock_excl = cm_db_expand(
      db, "LOCK TABLE @cm@.snapshot_range IN SHARE ROW EXCLUSIVE MODE");
  for (i = 0; i < N_TDESC; i++)
    if (build_sql(db, &tdescs[i], &m->sql[i]) != 0)
      break;
  if (!m->region || !m->lock_share || !m->lock_excl || i < N_TDESC) {
    cm_mirror_destroy(m);
    return NULL;
  }
  return m;
}

void cm_mirror_destroy(cm_mirror_t *m) {
  int i;

  if (!m)
    return;
  for (i = 0; i < N_TDESC; i++) {
    free(m->sql[i].lock);
    free(m->sql[i].write);
    free(m->sql[i].ranges);
    free(m->sql[i].marker);
  }
  free(m->region);
  free(m->lock_share);
  free(m->lock_excl);
  free(m);
}

void cm_touched_clear(cm_touched_t *t) {
  cm_idset_clear(&t->ids);
  cm_strset_clear(&t->keys);
  cm_idset_clear(&t->doctors);
  cm_idset_clear(&t->flipped);
  cm_idset_clear(&t->patients);
}

static void state_free(state_t *s, int n) {
  int i, c;

  for (i = 0; i < n; i++) {
    for (c = 0; c < CM_MAX_COLS + MAX_EXTRA; c++)
      free(s[i].vals[c]);
    for (c = 0; c < MAX_EXTRA; c++) {
      free(s[i].old_extra[c]);
      free(s[i].old_src[c]);
    }
    free(s[i].old_ref[0]);
    free(s[i].old_ref[1]);
    cm_txsnap_clear(&s[i].snap);
  }
  free(s);
}

static int cmp_item(const void *a, const void *b) {
  const cm_item_t *x = *(cm_item_t *const *)a, *y = *(cm_item_t *const *)b;

  if (x->ev.key != y->ev.key)
    return x->ev.key < y->ev.key ? -1 : 1;
  return x < y ? -1 : x > y; /* batch order within a key */
}

/* The table's events to apply, sorted by key then batch order. */
static cm_item_t **select_items(cm_batch_t *batch, cm_table_t table, int *n) {
  cm_item_t **v = malloc(sizeof(*v) * (size_t)(batch->cnt ? batch->cnt : 1));
  int i;

  *n = 0;
  if (!v)
    return NULL;
  for (i = 0; i < batch->cnt; i++)
    if (batch->items[i].outcome == CM_OUT_PENDING && batch->items[i].decoded &&
        batch->items[i].ev.table == table &&
        batch->items[i].ev.op != CM_OP_RANGE)
      v[(*n)++] = &batch->items[i];
  return v;
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static int64_t parse_i64(const char *s) {
  return s ? strtoll(s, NULL, 10) : 0;
}

static int same_text(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* Reads the locked rows into the states (which are sorted by id, as the
 * rows come back). */
static void load_states(PGresult *res, const tdesc_t *td, state_t *st,
                        int n_st) {
  int ncols, r, c, k = 0;

  cm_table_columns(td->table, &ncols);
  ncols += td->n_extra;
  for (r = 0; r < PQntuples(res); r++) {
    int64_t id = parse_i64(PQgetvalue(res, r, 0));

    while (k < n_st && st[k].id < id)
      k++;
    if (k == n_st || st[k].id != id)
      continue;
    st[k].exists = 1;
    st[k].exists_at_load = 1;
    st[k].deleted = PQgetvalue(res, r, ncols)[0] == 't';
    st[k].live_at_load = !st[k].deleted;
    for (c = 0; c < ncols; c++)
      if (!PQgetisnull(res, r, c))
        st[k].vals[c] = strdup(PQgetvalue(res, r, c));
    for (c = 0; c < td->n_extra; c++) {
      st[k].old_extra[c] = dup_or_null(st[k].vals[ncols - td->n_extra + c]);
      st[k].old_src[c] = dup_or_null(st[k].vals[td->src[c]]);
    }
    if (td->table == CM_TABLE_APPOINTMENT && !st[k].deleted) {
      st[k].old_ref[0] = dup_or_null(st[k].vals[CM_APPT_DOCTOR_ID]);
      st[k].old_ref[1] = dup_or_null(st[k].vals[CM_APPT_PATIENT_ID]);
    }
    st[k].has_lsn = !PQgetisnull(res, r, ncols + 1);
    st[k].lsn = parse_i64(PQgetvalue(res, r, ncols + 1));
    st[k].has_tx = !PQgetisnull(res, r, ncols + 2);
    st[k].tx_id = parse_i64(PQgetvalue(res, r, ncols + 2));
    st[k].snapshot = PQgetvalue(res, r, ncols + 3)[0] == 't';
    st[k].has_snap =
        !PQgetisnull(res, r, ncols + 4) &&
        cm_txsnap_from_parts(parse_i64(PQgetvalue(res, r, ncols + 4)),
                             parse_i64(PQgetvalue(res, r, ncols + 5)),
                             PQgetvalue(res, r, ncols + 6), &st[k].snap) == 0;
  }
}

/*
 * Recomputes the grouping keys of a folded row, once per row and batch.
 * A key whose source value is the one the stored key was made from is
 * kept as stored: most updates leave phone and email alone, and
 * libphonenumber's parse is the costliest step of the fold
 * (docs/performance.md §10).
 */
static void set_extras(const cm_mirror_t *m, const tdesc_t *td, state_t *s) {
  char norm[NORM_MAX];
  int ncols, i;
  const char *src;

  cm_table_columns(td->table, &ncols);
  for (i = 0; i < td->n_extra; i++) {
    free(s->vals[ncols + i]);
    s->vals[ncols + i] = NULL;
    src = s->vals[td->src[i]];
    if (s->exists_at_load && same_text(src, s->old_src[i])) {
      s->vals[ncols + i] = dup_or_null(s->old_extra[i]);
    } else if (strcmp(td->extra[i], "email_norm") == 0) {
      if (cm_email_normalize(src, norm, sizeof(norm)))
        s->vals[ncols + i] = strdup(norm);
    } else {
      if (src && cm_phone_normalize(src, m->region, norm, sizeof(norm)))
        s->vals[ncols + i] = strdup(norm);
    }
  }
}

/* An update whose placeholder has nothing stored to keep cannot be
 * applied: the true value is unknown. */
static int placeholder_unusable(const state_t *s, cm_item_t *it, int ncols) {
  const cm_column_t *cols = cm_table_columns(it->ev.table, &ncols);
  int c;

  for (c = 0; c < ncols; c++)
    if (it->ev.after[c].kind == CM_VAL_UNAVAILABLE &&
        (!s->exists || s->deleted)) {
      snprintf(it->reason, sizeof(it->reason),
               "after.%s: unchanged TOAST placeholder and no stored value "
               "to keep",
               cols[c].name);
      return 1;
    }
  return 0;
}

/*
 * Whether event @p ev supersedes the version @p s holds (docs/design.md
 * §2.2): two live events by LSN; a backfill row and a live event by
 * whether the live event's transaction is visible in the row's snapshot;
 * two backfill rows by the age of their snapshots. A live event without a
 * txId cannot be placed against a snapshot: the live event wins, and so
 * does a snapshot over a live version without one. A virtual version (a
 * recorded range) loses to a row of its own snapshot.
 */
static int supersedes(const cm_event_t *ev, const state_t *s) {
  int c;

  if (!s->exists && !s->virt)
    return 1;
  if (ev->has_txsnap && s->has_snap) {
    c = cm_txsnap_cmp(&ev->txsnap, &s->snap);
    return c > 0 || (c == 0 && s->virt);
  }
  if (ev->has_txsnap)
    return !s->has_tx || cm_txsnap_visible(&ev->txsnap, s->tx_id);
  if (s->has_snap)
    return !ev->has_tx_id || !cm_txsnap_visible(&s->snap, ev->tx_id);
  return !s->has_lsn || ev->lsn > s->lsn;
}

static void fold_one(const tdesc_t *td, state_t *s, cm_item_t *it) {
  char buf[CM_VALUE_TEXT_MAX];
  const char *text;
  int ncols, c;

  cm_table_columns(td->table, &ncols);
  if (!supersedes(&it->ev, s)) {
    it->outcome = CM_OUT_STALE;
    return;
  }
  if (it->ev.op != CM_OP_DELETE) {
    if (placeholder_unusable(s, it, ncols)) {
      it->outcome = CM_OUT_DEAD_LETTER;
      return;
    }
    for (c = 0; c < ncols; c++) {
      if (it->ev.after[c].kind == CM_VAL_UNAVAILABLE)
        continue;
      text = cm_value_text(&it->ev.after[c], buf, sizeof(buf));
      free(s->vals[c]);
      s->vals[c] = dup_or_null(text);
    }
    s->refold = 1;
  }
  s->deleted = it->ev.op == CM_OP_DELETE;
  s->exists = 1;
  s->virt = 0;
  s->has_lsn = it->ev.has_lsn;
  s->lsn = it->ev.lsn;
  s->has_tx = it->ev.has_tx_id;
  s->tx_id = it->ev.tx_id;
  s->snapshot = it->ev.snapshot != CM_SNAP_FALSE;
  cm_txsnap_clear(&s->snap);
  s->has_snap =
      it->ev.has_txsnap && cm_txsnap_copy(&s->snap, &it->ev.txsnap) == 0;
  s->changed = 1;
  s->last = it;
  it->outcome = CM_OUT_APPLIED;
}

static void add_i64(cJSON *o, const char *name, int64_t v) {
  char buf[24];

  snprintf(buf, sizeof(buf), "%" PRId64, v);
  cJSON_AddStringToObject(o, name, buf);
}

static cJSON *row_json(const tdesc_t *td, const state_t *s) {
  const cm_column_t *cols;
  cJSON *o = cJSON_CreateObject();
  int ncols, c;

  cols = cm_table_columns(td->table, &ncols);
  for (c = 0; c < ncols + td->n_extra; c++) {
    const char *name = c < ncols ? cols[c].sql : td->extra[c - ncols];

    if (c == 0) /* the key: a first event may be a delete, with no row */
      add_i64(o, name, s->id);
    else if (s->vals[c])
      cJSON_AddStringToObject(o, name, s->vals[c]);
    else
      cJSON_AddNullToObject(o, name);
  }
  /* 64-bit numbers travel as text: a JSON number is a double */
  cJSON_AddBoolToObject(o, "deleted", s->deleted);
  if (s->has_lsn)
    add_i64(o, "lsn", s->lsn);
  if (s->has_tx)
    add_i64(o, "tx_id", s->tx_id);
  cJSON_AddBoolToObject(o, "snapshot", s->snapshot);
  if (s->has_snap) {
    char *xip = cm_txsnap_xip_array(&s->snap);

    add_i64(o, "snap_xmin", s->snap.xmin);
    add_i64(o, "snap_xmax", s->snap.xmax);
    if (xip)
      cJSON_AddStringToObject(o, "snap_xip", xip);
    free(xip);
  }
  cJSON_AddStringToObject(o, "src_topic", s->last->topic);
  cJSON_AddNumberToObject(o, "src_partition", s->last->partition);
  add_i64(o, "src_offset", s->last->offset);
  return o;
}

/* One state per distinct key of the sorted items. */
static state_t *make_states(cm_item_t **items, int n, int *n_st) {
  state_t *st = calloc((size_t)(n ? n : 1), sizeof(*st));
  int i;

  *n_st = 0;
  if (!st)
    return NULL;
  for (i = 0; i < n; i++)
    if (i == 0 || items[i]->ev.key != items[i - 1]->ev.key)
      st[(*n_st)++].id = items[i]->ev.key;
  return st;
}

/* Adds an id given as text, if any. */
static int add_ref(cm_idset_t *set, const char *id) {
  return id && cm_idset_add(set, parse_i64(id)) != 0 ? CM_ERR_NOMEM : 0;
}

static int add_key(cm_strset_t *set, const char *prefix, const char *key) {
  return key && cm_strset_add(set, prefix, key) != 0 ? CM_ERR_NOMEM : 0;
}

/* Grouping keys before and after (the derive step locks them). */
static int touch_keys(const tdesc_t *td, const state_t *s, cm_touched_t *t) {
  int ncols, i, r = 0;

  cm_table_columns(td->table, &ncols);
  for (i = 0; !r && i < td->n_extra; i++) {
    const char *p = strcmp(td->extra[i], "email_norm") == 0 ? "e:" : "p:";

    r = add_key(&t->keys, p, s->old_extra[i]);
    if (!r && !s->deleted)
      r = add_key(&t->keys, p, s->vals[ncols + i]);
  }
  return r;
}

/* Doctors and patients an appointment named before and names after. */
static int touch_refs(const state_t *s, cm_touched_t *t) {
  int r;

  r = add_ref(&t->doctors, s->old_ref[0]);
  if (!r)
    r = add_ref(&t->patients, s->old_ref[1]);
  if (!r && !s->deleted)
    r = add_ref(&t->doctors, s->vals[CM_APPT_DOCTOR_ID]);
  if (!r && !s->deleted)
    r = add_ref(&t->patients, s->vals[CM_APPT_PATIENT_ID]);
  return r;
}

static int fill_touched(const tdesc_t *td, const state_t *st, int n_st,
                        cm_touched_t *t) {
  int i, r = 0;

  for (i = 0; !r && i < n_st; i++) {
    if (!st[i].changed)
      continue;
    r = cm_idset_add(&t->ids, st[i].id) ? CM_ERR_NOMEM : 0;
    if (!r && st[i].live_at_load != !st[i].deleted &&
        cm_idset_add(&t->flipped, st[i].id))
      r = CM_ERR_NOMEM;
    if (!r)
      r = touch_keys(td, &st[i], t);
    if (!r && td->table == CM_TABLE_APPOINTMENT)
      r = touch_refs(&st[i], t);
  }
  cm_idset_sort(&t->ids);
  cm_strset_sort(&t->keys);
  cm_idset_sort(&t->doctors);
  cm_idset_sort(&t->flipped);
  cm_idset_sort(&t->patients);
  return r;
}

static int lock_rows(cm_db_t *db, const tsql_t *q, const tdesc_t *td,
                     state_t *st, int n_st, char *errstr, size_t errstr_size) {
  const char *params[1];
  PGresult *res;
  int64_t *idv = malloc(sizeof(*idv) * (size_t)n_st);
  char *ids;
  int r, k;

  if (!idv)
    return CM_ERR_NOMEM;
  for (k = 0; k < n_st; k++)
    idv[k] = st[k].id;
  ids = cm_db_int_array(idv, n_st);
  free(idv);
  if (!ids)
    return CM_ERR_NOMEM;
  params[0] = ids;
  r = cm_db_exec(db, q->lock, 1, params, &res, errstr, errstr_size);
  free(ids);
  if (r)
    return r;
  load_states(res, td, st, n_st);
  PQclear(res);
  return 0;
}

/* Items whose row the guarded write did not move were overtaken by a
 * newer version written concurrently: they are stale after all. */
static state_t *state_of(state_t *st, int n_st, int64_t id) {
  int lo = 0, hi = n_st - 1;

  while (lo <= hi) {
    int mid = (lo + hi) / 2;

    if (st[mid].id == id)
      return &st[mid];
    if (st[mid].id < id)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return NULL;
}

static void mark_overtaken(PGresult *res, state_t *st, int n_st,
                           cm_item_t **items, int n) {
  state_t *s;
  int i, k, r;

  for (r = 0; r < PQntuples(res); r++) {
    s = state_of(st, n_st, parse_i64(PQgetvalue(res, r, 0)));
    if (s)
      s->written = 1;
  }
  for (i = 0, k = 0; i < n; i++) {
    while (st[k].id != items[i]->ev.key)
      k++;
    if (st[k].changed && !st[k].written && items[i]->outcome == CM_OUT_APPLIED)
      items[i]->outcome = CM_OUT_STALE;
  }
  for (k = 0; k < n_st; k++)
    if (!st[k].written)
      st[k].changed = 0;
}

static int write_rows(cm_db_t *db, const tsql_t *q, const tdesc_t *td,
                      state_t *st, int n_st, cm_item_t **items, int n,
                      char *errstr, size_t errstr_size) {
  cJSON *arr = cJSON_CreateArray();
  const char *params[1];
  PGresult *res;
  char *json;
  int k, r, rows = 0;

  if (!arr)
    return CM_ERR_NOMEM;
  for (k = 0; k < n_st; k++)
    if (st[k].changed) {
      cJSON_AddItemToArray(arr, row_json(td, &st[k]));
      rows++;
    }
  json = rows ? cJSON_PrintUnformatted(arr) : NULL;
  cJSON_Delete(arr);
  if (!rows)
    return 0;
  if (!json)
    return CM_ERR_NOMEM;
  params[0] = json;
  r = cm_db_exec(db, q->write, 1, params, &res, errstr, errstr_size);
  free(json);
  if (r)
    return r;
  if (PQntuples(res) != rows)
    mark_overtaken(res, st, n_st, items, n);
  PQclear(res);
  return 0;
}

/* ---- range markers ------------------------------------------------- */

/* Deletes a marker implies, made as items of their own (their snapshot
 * borrowed from the marker's event). */
typedef struct synth_s {
  cm_item_t *v;
  int n;
  int cap;
} synth_t;

static int synth_add(synth_t *sy, const cm_item_t *marker, int64_t id) {
  cm_item_t *it;

  if (sy->n == sy->cap) {
    int cap = sy->cap ? sy->cap * 2 : 64;

    it = realloc(sy->v, sizeof(*it) * (size_t)cap);
    if (!it)
      return CM_ERR_NOMEM;
    sy->v = it;
    sy->cap = cap;
  }
  it = &sy->v[sy->n++];
  memset(it, 0, sizeof(*it));
  it->topic = marker->topic;
  it->partition = marker->partition;
  it->offset = marker->offset;
  it->decoded = 1;
  it->ev.table = marker->ev.table;
  it->ev.op = CM_OP_DELETE;
  it->ev.key = id;
  it->ev.has_lsn = marker->ev.has_lsn;
  it->ev.lsn = marker->ev.lsn;
  it->ev.snapshot = marker->ev.snapshot;
  it->ev.has_txsnap = 1;
  it->ev.txsnap = marker->ev.txsnap;
  return 0;
}

/* The marker's present runs as an int8multirange literal. */
static char *runs_text(const cm_event_t *ev) {
  size_t size = 3 + (size_t)ev->n_runs * 44, len = 1;
  char *buf = malloc(size);
  int i;

  if (!buf)
    return NULL;
  buf[0] = '{';
  for (i = 0; i < ev->n_runs; i++)
    len +=
        (size_t)snprintf(buf + len, size - len, "%s[%" PRId64 ",%" PRId64 "]",
                         i ? "," : "", ev->runs[2 * i], ev->runs[2 * i + 1]);
  snprintf(buf + len, size - len, "}");
  return buf;
}

/* Records one marker and adds a delete for each mirror row of its range
 * that its snapshot does not hold. */
static int apply_marker(cm_db_t *db, const tsql_t *q, cm_item_t *it,
                        synth_t *sy, char *errstr, size_t errstr_size) {
  char first[24], last[24], xmin[24], xmax[24], part[16], off[24];
  char *present = runs_text(&it->ev),
       *xip = cm_txsnap_xip_array(&it->ev.txsnap);
  const char *params[9] = {first, last,      present, xmin, xmax,
                           xip,   it->topic, part,    off};
  PGresult *res = NULL;
  int r = CM_ERR_NOMEM, i;

  snprintf(first, sizeof(first), "%" PRId64, it->ev.range_first);
  snprintf(last, sizeof(last), "%" PRId64, it->ev.range_last);
  snprintf(xmin, sizeof(xmin), "%" PRId64, it->ev.txsnap.xmin);
  snprintf(xmax, sizeof(xmax), "%" PRId64, it->ev.txsnap.xmax);
  snprintf(part, sizeof(part), "%" PRId32, it->partition);
  snprintf(off, sizeof(off), "%" PRId64, it->offset);
  if (present && xip)
    r = cm_db_exec(db, q->marker, 9, params, &res, errstr, errstr_size);
  for (i = 0; !r && i < PQntuples(res); i++)
    r = synth_add(sy, it, parse_i64(PQgetvalue(res, i, 0)));
  if (!r)
    it->outcome = CM_OUT_APPLIED;
  PQclear(res);
  free(present);
  free(xip);
  return r;
}

static int apply_markers(cm_db_t *db, const tsql_t *q, cm_table_t table,
                         cm_batch_t *batch, synth_t *sy, char *errstr,
                         size_t errstr_size) {
  int i, r = 0;

  for (i = 0; !r && i < batch->cnt; i++) {
    cm_item_t *it = &batch->items[i];

    if (it->outcome == CM_OUT_PENDING && it->decoded && it->ev.table == table &&
        it->ev.op == CM_OP_RANGE)
      r = apply_marker(db, q, it, sy, errstr, errstr_size);
  }
  return r;
}

/* Keys the mirror does not hold take the version of the latest recorded
 * range that says its snapshot had no such row. */
static int load_virtual(cm_db_t *db, const tsql_t *q, state_t *st, int n_st,
                        char *errstr, size_t errstr_size) {
  int64_t *idv = malloc(sizeof(*idv) * (size_t)(n_st ? n_st : 1));
  const char *params[1];
  PGresult *res;
  cm_txsnap_t snap;
  state_t *s;
  int n = 0, k, r;

  if (!idv)
    return CM_ERR_NOMEM;
  for (k = 0; k < n_st; k++)
    if (!st[k].exists)
      idv[n++] = st[k].id;
  params[0] = n ? cm_db_int_array(idv, n) : NULL;
  free(idv);
  if (!n)
    return 0;
  if (!params[0])
    return CM_ERR_NOMEM;
  r = cm_db_exec(db, q->ranges, 1, params, &res, errstr, errstr_size);
  free((char *)params[0]);
  for (k = 0; !r && k < PQntuples(res); k++) {
    s = state_of(st, n_st, parse_i64(PQgetvalue(res, k, 0)));
    if (!s || cm_txsnap_from_parts(parse_i64(PQgetvalue(res, k, 1)),
                                   parse_i64(PQgetvalue(res, k, 2)),
                                   PQgetvalue(res, k, 3), &snap) != 0)
      continue;
    if (!s->virt || cm_txsnap_cmp(&snap, &s->snap) > 0) {
      cm_txsnap_clear(&s->snap);
      s->snap = snap;
      s->virt = s->has_snap = 1;
    } else {
      cm_txsnap_clear(&snap);
    }
  }
  if (!r)
    PQclear(res);
  return r;
}

/* The table's items to fold: its events and the deletes its markers
 * imply, sorted by key then batch order. */
static cm_item_t **gather(cm_batch_t *batch, cm_table_t table, synth_t *sy,
                          int *n) {
  cm_item_t **v;
  int i;

  v = select_items(batch, table, n);
  if (v && sy->n) {
    cm_item_t **nv = realloc(v, sizeof(*v) * (size_t)(*n + sy->n));

    if (!nv) {
      free(v);
      return NULL;
    }
    v = nv;
    for (i = 0; i < sy->n; i++)
      v[(*n)++] = &sy->v[i];
  }
  if (v)
    qsort(v, (size_t)*n, sizeof(*v), cmp_item);
  return v;
}

int cm_mirror_lock_ranges(cm_mirror_t *m, cm_db_t *db, const cm_batch_t *batch,
                          char *errstr, size_t errstr_size) {
  int i, markers = 0;

  for (i = 0; i < batch->cnt; i++)
    if (batch->items[i].decoded && batch->items[i].ev.op == CM_OP_RANGE &&
        batch->items[i].outcome == CM_OUT_PENDING)
      markers = 1;
  return cm_db_cmd(db, markers ? m->lock_excl : m->lock_share, errstr,
                   errstr_size);
}

int cm_mirror_apply(cm_mirror_t *m, cm_db_t *db, cm_table_t table,
                    cm_batch_t *batch, cm_touched_t *touched, char *errstr,
                    size_t errstr_size) {
  const tdesc_t *td;
  cm_item_t **items = NULL;
  state_t *st = NULL;
  synth_t sy = {NULL, 0, 0};
  int n = 0, n_st = 0, i, k, idx, r;

  memset(touched, 0, sizeof(*touched));
  td = tdesc_of(table, &idx);
  if (!td)
    return 0;
  r = apply_markers(db, &m->sql[idx], table, batch, &sy, errstr, errstr_size);
  if (!r) {
    items = gather(batch, table, &sy, &n);
    if (items && n > 0)
      st = make_states(items, n, &n_st);
    if (!items || (n > 0 && !st))
      r = CM_ERR_NOMEM;
  }
  if (!r && n)
    r = lock_rows(db, &m->sql[idx], td, st, n_st, errstr, errstr_size);
  if (!r && n)
    r = load_virtual(db, &m->sql[idx], st, n_st, errstr, errstr_size);
  for (i = 0, k = 0; !r && i < n; i++) {
    while (st[k].id != items[i]->ev.key)
      k++;
    fold_one(td, &st[k], items[i]);
  }
  for (k = 0; !r && k < n_st; k++)
    if (st[k].refold)
      set_extras(m, td, &st[k]);
  if (!r)
    r = write_rows(db, &m->sql[idx], td, st, n_st, items, n, errstr,
                   errstr_size);
  if (!r)
    r = fill_touched(td, st, n_st, touched);
  state_free(st, n_st);
  free(items);
  free(sy.v);
  return r;
}
