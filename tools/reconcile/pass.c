/*
 * pass.c — one reconciliation pass, entity by entity.
 *
 * NOTES
 * For each entity, in the order doctor, patient, appointment
 * (docs/reconciliation.md, "A pass"): the counts; the legacy-mirror
 * check (with a legacy connection); the mirror-v2 check; the entity's
 * extras (unresolved links for appointments; regroups and suspects for
 * patients); the pass event. Then the gaps and the verdicts, and the
 * events are flushed: only once the cluster has acknowledged them are the
 * published gaps and regroups recorded.
 *
 * Each entity is read in REPEATABLE READ, READ ONLY transactions, one per
 * database: the mirror and v2, which the workers change together in one
 * transaction per batch (docs/design.md §2.4), are thus compared in one
 * snapshot and never differ for a batch in flight. Legacy and mirror are
 * read at different moments; what a change in flight makes them differ
 * by shows as a mismatch of one pass, which the verdict's hold absorbs.
 *
 * A failure on the legacy side costs that check only: the entity's pass
 * is incomplete (its verdict cannot be in sync) and the legacy database
 * is reconnected at the next pass. A failure on the target stops the
 * pass.
 */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_log.h"

enum { LEGACY, MIRROR, MIGRATED, NCOL };

static const char *const check_names[2] = {"legacy-mirror", "mirror-v2"};

static const char begin_sql[] =
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/** One (clinic, count) row of one of the counts queries. */
typedef struct tally_s {
  int64_t clinic;
  int null_clinic;
  int col;
  int64_t n;
} tally_t;

/** What the counts step found. */
typedef struct counts_s {
  tally_t *t;
  int n, cap;
  int64_t total[NCOL];
  int has_legacy;
  int64_t global, dead;
} counts_t;

void rc_tick(rc_ctx_t *c) {
  pthread_mutex_lock(&c->metrics->lock);
  c->metrics->last_turn = rc_now_s();
  c->metrics->db_ok = c->target.ok;
  pthread_mutex_unlock(&c->metrics->lock);
}

int rc_idlist_add(rc_idlist_t *l, int64_t id) {
  int64_t *nv;

  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    nv = realloc(l->v, (size_t)l->cap * sizeof(*nv));
    if (!nv)
      return CM_ERR_NOMEM;
    l->v = nv;
  }
  l->v[l->n++] = id;
  return 0;
}

void rc_idlist_free(rc_idlist_t *l) {
  free(l->v);
  memset(l, 0, sizeof(*l));
}

/* ---- events -------------------------------------------------------------- */

void rc_event_begin(rc_ctx_t *c, cm_text_t *b, const char *type) {
  char ts[32];

  rc_iso_ms(rc_wall_ms(), ts, sizeof(ts));
  cm_text_reset(b);
  cm_text_str(b, "{\"v\":1");
  rc_buf_key(b, "type");
  cm_text_json(b, type);
  rc_buf_key(b, "ts");
  cm_text_json(b, ts);
  rc_buf_key(b, "source");
  cm_text_str(b, "\"reconciler:");
  cm_text_str(b, c->id);
  cm_text_str(b, "\"");
}

int rc_event_send(rc_ctx_t *c, const char *key, cm_text_t *b, char *errstr,
                  size_t errstr_size) {
  cm_text_add(b, "}", 1);
  if (b->failed) {
    snprintf(errstr, errstr_size, "an event outgrew %d bytes", RC_EVENT_MAX);
    return CM_ERR_FATAL;
  }
  return rc_out_send(c->out, key, b, errstr, errstr_size);
}

/* "entity":..,"pass":.. */
static void entity_head(rc_ctx_t *c, cm_text_t *b, const rc_entity_t *e) {
  rc_buf_key(b, "entity");
  cm_text_json(b, e->name);
  rc_buf_key(b, "pass");
  cm_text_i64(b, c->pass);
}

/* ---- transactions -------------------------------------------------------- */

static int begin(rc_db_t *db, char *errstr, size_t size) {
  return db->conn ? rc_db_cmd(db, begin_sql, 0, NULL, "begin", errstr, size)
                  : 0;
}

static void end(rc_db_t *db) {
  char ignored[256];

  if (db->conn)
    rc_db_cmd(db, "ROLLBACK", 0, NULL, "end", ignored, sizeof(ignored));
}

/* The legacy side failed: the rest of the pass goes without it, and the
 * target's transaction (which a failed statement may have aborted) starts
 * again. */
static int drop_legacy(rc_ctx_t *c, const rc_entity_t *e, const char *step,
                       const char *why, char *errstr, size_t size) {
  cm_warn("pass %" PRId64 ": %s of %s failed, going on without the legacy"
          " database until the next pass: %s",
          c->pass, step, e->name, why);
  rc_db_close(&c->legacy);
  end(&c->target);
  return begin(&c->target, errstr, size);
}

/* ---- counts -------------------------------------------------------------- */

static int add_tally(counts_t *k, const PGresult *res, int row, int col) {
  tally_t *nt;

  if (k->n == k->cap) {
    k->cap = k->cap ? k->cap * 2 : 16;
    nt = realloc(k->t, (size_t)k->cap * sizeof(*nt));
    if (!nt)
      return CM_ERR_NOMEM;
    k->t = nt;
  }
  nt = &k->t[k->n++];
  nt->col = col;
  nt->null_clinic = rc_cell_i64(res, row, 0, &nt->clinic) != 0;
  if (nt->null_clinic)
    nt->clinic = 0;
  if (rc_cell_i64(res, row, 1, &nt->n) != 0)
    nt->n = 0;
  k->total[col] += nt->n;
  return 0;
}

/* Runs counts statement @p name on @p db into column @p col. */
static int count_into(rc_ctx_t *c, rc_db_t *db, const rc_entity_t *e,
                      const char *name, int col, counts_t *k, char *errstr,
                      size_t size) {
  char table[64];
  rc_subst_t sub[4] = {{"table", table},
                       {"mirror", e->mirror},
                       {"clinic", e->clinic},
                       {"global", e->global ? e->global : "-"}};
  char *sql;
  PGresult *res;
  int i, rc = 0;

  snprintf(table, sizeof(table), "\"%s\"", e->table);
  sql = rc_ctx_sql(c, name, sub, 4, errstr, size);
  if (!sql)
    return CM_ERR_FATAL;
  res = rc_db_query(db, sql, 0, NULL, "count rows", errstr, size);
  free(sql);
  if (!res)
    return CM_ERR_RETRY;
  for (i = 0; rc == 0 && i < PQntuples(res); i++)
    rc = col >= 0                                  ? add_tally(k, res, i, col)
         : rc_cell_i64(res, i, 0, &k->global) == 0 ? 0
                                                   : CM_ERR_FATAL;
  PQclear(res);
  if (col == LEGACY && db == &c->legacy)
    rc_throttle(c, k->total[LEGACY]);
  return rc;
}

static int dead_lettered(rc_ctx_t *c, const rc_entity_t *e, counts_t *k,
                         char *errstr, size_t size) {
  const char *params[2] = {c->o->group_id, e->table};
  char *sql = rc_ctx_sql(c, "dead_lettered", NULL, 0, errstr, size);
  PGresult *res;

  if (!sql)
    return CM_ERR_FATAL;
  res = rc_db_query(&c->target, sql, 2, params, "count dead letters", errstr,
                    size);
  free(sql);
  if (!res)
    return CM_ERR_RETRY;
  if (rc_cell_i64(res, 0, 0, &k->dead) != 0)
    k->dead = 0;
  PQclear(res);
  return 0;
}

static int by_clinic(const void *a, const void *b) {
  const tally_t *x = a, *y = b;

  if (x->null_clinic != y->null_clinic)
    return x->null_clinic - y->null_clinic;
  return x->clinic < y->clinic ? -1 : x->clinic > y->clinic;
}

static void count_value(cm_text_t *b, const char *key, int has, int64_t v) {
  rc_buf_key(b, key);
  if (has)
    cm_text_i64(b, v);
  else
    cm_text_str(b, "null");
}

/* "clinics":[{"clinic_id":1,"legacy":..,"mirror":..,"migrated":..}] */
static void clinics_json(cm_text_t *b, counts_t *k) {
  int64_t v[NCOL];
  int i = 0, j;

  if (k->n > 1) /* never hand qsort a NULL array */
    qsort(k->t, (size_t)k->n, sizeof(*k->t), by_clinic);
  rc_buf_key(b, "clinics");
  cm_text_add(b, "[", 1);
  while (i < k->n) {
    memset(v, 0, sizeof(v));
    for (j = i; j < k->n && by_clinic(&k->t[i], &k->t[j]) == 0; j++)
      v[k->t[j].col] += k->t[j].n;
    cm_text_str(b, i ? ",{" : "{");
    count_value(b, "clinic_id", !k->t[i].null_clinic, k->t[i].clinic);
    count_value(b, "legacy", k->has_legacy, v[LEGACY]);
    count_value(b, "mirror", 1, v[MIRROR]);
    count_value(b, "migrated", 1, v[MIGRATED]);
    cm_text_add(b, "}", 1);
    i = j;
  }
  cm_text_add(b, "]", 1);
}

static int send_counts(rc_ctx_t *c, const rc_entity_t *e, counts_t *k,
                       cm_text_t *b, char *errstr, size_t size) {
  rc_event_begin(c, b, "counts");
  entity_head(c, b, e);
  clinics_json(b, k);
  rc_buf_key(b, "total");
  cm_text_add(b, "{", 1);
  count_value(b, "legacy", k->has_legacy, k->total[LEGACY]);
  count_value(b, "mirror", 1, k->total[MIRROR]);
  count_value(b, "migrated", 1, k->total[MIGRATED]);
  count_value(b, "global", e->global != NULL, k->global);
  cm_text_add(b, "}", 1);
  count_value(b, "dead_lettered", 1, k->dead);
  return rc_event_send(c, e->name, b, errstr, size);
}

static int counts(rc_ctx_t *c, const rc_entity_t *e, counts_t *k, cm_text_t *b,
                  char *errstr, size_t size) {
  int rc;

  if (c->legacy.conn) {
    rc = count_into(c, &c->legacy, e, "legacy_counts", LEGACY, k, errstr, size);
    k->has_legacy = rc == 0;
    if (rc != 0 &&
        drop_legacy(c, e, "the legacy count", errstr, errstr, size) != 0)
      return CM_ERR_RETRY;
  }
  rc = count_into(c, &c->target, e, "mirror_counts", MIRROR, k, errstr, size);
  if (rc == 0)
    rc = count_into(c, &c->target, e, "migrated_counts", MIGRATED, k, errstr,
                    size);
  if (rc == 0 && e->global)
    rc = count_into(c, &c->target, e, "global_count", -1, k, errstr, size);
  if (rc == 0)
    rc = dead_lettered(c, e, k, errstr, size);
  return rc == 0 ? send_counts(c, e, k, b, errstr, size) : rc;
}

/* ---- checks -------------------------------------------------------------- */

static void ids_json(cm_text_t *b, const char *key, const rc_ids_t *ids) {
  int i;

  rc_buf_key(b, key);
  cm_text_add(b, "[", 1);
  for (i = 0; i < ids->n; i++) {
    if (i)
      cm_text_add(b, ",", 1);
    cm_text_i64(b, ids->id[i]);
  }
  cm_text_add(b, "]", 1);
}

static int64_t diff_total(const rc_diff_t *d) {
  return d->missing.total + d->extra.total + d->differing.total;
}

static int send_mismatch(rc_ctx_t *c, const rc_entity_t *e, int check,
                         const rc_diff_t *d, cm_text_t *b, char *errstr,
                         size_t size) {
  rc_event_begin(c, b, "mismatch");
  entity_head(c, b, e);
  rc_buf_key(b, "check");
  cm_text_json(b, check_names[check]);
  ids_json(b, "missing", &d->missing);
  ids_json(b, "extra", &d->extra);
  ids_json(b, "differing", &d->differing);
  if (d->missing.total > d->missing.n || d->extra.total > d->extra.n ||
      d->differing.total > d->differing.n) {
    rc_buf_key(b, "truncated");
    cm_text_str(b, "true");
  }
  return rc_event_send(c, e->name, b, errstr, size);
}

/* The sources of entity @e for @check (sql/sources.sql's names). */
static void sources(const rc_entity_t *e, int check, char *a, char *b,
                    size_t size) {
  snprintf(a, size, "%s_%s", check == 0 ? "legacy" : "expected", e->name);
  snprintf(b, size, "%s_%s", check == 0 ? "mirror" : "v2", e->name);
}

/** What the checks of one entity cost, for its pass event. */
typedef struct cost_s {
  int64_t rows_read, segments, mismatches, legacy_scanned;
} cost_t;

static int check(rc_ctx_t *c, const rc_entity_t *e, int which,
                 const counts_t *k, cost_t *cost, cm_text_t *b, char *errstr,
                 size_t size) {
  char na[64], nb[64];
  rc_side_t sa = {which == 0 ? &c->legacy : &c->target, na, which == 0};
  rc_side_t sb = {&c->target, nb, 0};
  int64_t est = which == 0 ? k->total[LEGACY] : k->total[MIGRATED];
  rc_diff_t d;
  int rc;

  sources(e, which, na, nb, sizeof(na));
  if (k->total[MIRROR] > est)
    est = k->total[MIRROR];
  rc = rc_diff(c, &sa, &sb, est, &d, errstr, size);
  if (rc != 0)
    return rc;
  cost->rows_read += d.rows_read;
  cost->segments += d.segments;
  cost->mismatches += diff_total(&d);
  cost->legacy_scanned += d.legacy_scanned;
  c->found[e - rc_entities].mismatches[which] = diff_total(&d);
  if (diff_total(&d) == 0)
    return 0;
  return send_mismatch(c, e, which, &d, b, errstr, size);
}

static int checks(rc_ctx_t *c, const rc_entity_t *e, const counts_t *k,
                  cost_t *cost, cm_text_t *b, char *errstr, size_t size) {
  rc_found_t *f = &c->found[e - rc_entities];
  int rc;

  if (c->legacy.conn && k->has_legacy) {
    rc = check(c, e, 0, k, cost, b, errstr, size);
    if (rc != 0 &&
        drop_legacy(c, e, "the legacy-mirror check", errstr, errstr, size) != 0)
      return CM_ERR_RETRY;
    f->complete = rc == 0;
  } else {
    f->complete = c->o->legacy_conninfo == NULL;
  }
  rc_tick(c);
  return check(c, e, 1, k, cost, b, errstr, size);
}

/* ---- the pass event ------------------------------------------------------ */

static int send_pass(rc_ctx_t *c, const rc_entity_t *e, const counts_t *k,
                     const cost_t *cost, double secs, cm_text_t *b,
                     char *errstr, size_t size) {
  rc_event_begin(c, b, "pass");
  entity_head(c, b, e);
  rc_buf_key(b, "rows");
  cm_text_add(b, "{", 1);
  count_value(b, "legacy", k->has_legacy, k->total[LEGACY]);
  count_value(b, "mirror", 1, k->total[MIRROR]);
  count_value(b, "v2", 1, k->total[MIGRATED]);
  cm_text_add(b, "}", 1);
  count_value(b, "rows_read", 1, cost->rows_read);
  count_value(b, "segments", 1, cost->segments);
  count_value(b, "mismatches", 1, cost->mismatches);
  rc_buf_key(b, "duration_s");
  rc_buf_f3(b, secs);
  count_value(b, "legacy_rows_per_s", k->has_legacy,
              (int64_t)((double)(cost->legacy_scanned + k->total[LEGACY]) /
                        (secs > 1e-3 ? secs : 1e-3)));
  return rc_event_send(c, e->name, b, errstr, size);
}

static void note_metrics(rc_ctx_t *c, int ent, const cost_t *cost) {
  rc_metrics_t *m = c->metrics;

  pthread_mutex_lock(&m->lock);
  m->mismatches[ent][0] = c->found[ent].mismatches[0];
  m->mismatches[ent][1] = c->found[ent].mismatches[1];
  m->rows_read_total += cost->rows_read;
  pthread_mutex_unlock(&m->lock);
}

/* The entity's extras, in its transaction. */
static int extras(rc_ctx_t *c, int ent, char *errstr, size_t size) {
  int rc = 0;

  if (ent == RC_APPOINTMENT)
    rc = rc_unresolved(c, errstr, size);
  if (ent == RC_PATIENT && c->have_regroup)
    rc = rc_regroups(c, errstr, size);
  if (ent == RC_PATIENT && rc == 0)
    rc = rc_suspects(c, errstr, size);
  return rc;
}

/* One line per entity: what the checks cost, the legacy reading speed. */
static void log_entity(const rc_ctx_t *c, const rc_entity_t *e,
                       const cost_t *cost, int64_t scanned, double busy) {
  if (!c->legacy.conn)
    cm_info("pass %" PRId64 " %s: %" PRId64 " mismatching ids, %" PRId64
            " rows read one by one, %" PRId64 " segments",
            c->pass, e->name, cost->mismatches, cost->rows_read,
            cost->segments);
  else
    cm_info("pass %" PRId64 " %s: %" PRId64 " mismatching ids, %" PRId64
            " rows read one by one, %" PRId64 " segments; legacy: %" PRId64
            " rows scanned in %.2f s of queries (%.0f rows/s)",
            c->pass, e->name, cost->mismatches, cost->rows_read, cost->segments,
            scanned, busy, busy > 0 ? (double)scanned / busy : 0.0);
}

static int entity_pass(rc_ctx_t *c, int ent, cm_text_t *b, char *errstr,
                       size_t size) {
  const rc_entity_t *e = &rc_entities[ent];
  double t0 = rc_now_s(), busy0 = c->legacy.busy_s;
  int64_t scanned0 = c->legacy_scanned;
  counts_t k;
  cost_t cost;
  int rc;

  memset(&k, 0, sizeof(k));
  memset(&cost, 0, sizeof(cost));
  memset(&c->found[ent], 0, sizeof(c->found[ent]));
  rc = begin(&c->target, errstr, size);
  if (rc == 0 && begin(&c->legacy, errstr, size) != 0)
    rc = drop_legacy(c, e, "beginning", errstr, errstr, size);
  if (rc == 0)
    rc = counts(c, e, &k, b, errstr, size);
  if (rc == 0)
    rc = checks(c, e, &k, &cost, b, errstr, size);
  if (rc == 0)
    rc = extras(c, ent, errstr, size);
  end(&c->legacy);
  end(&c->target);
  if (rc == 0)
    rc = send_pass(c, e, &k, &cost, rc_now_s() - t0, b, errstr, size);
  if (rc == 0)
    log_entity(c, e, &cost, c->legacy_scanned - scanned0,
               c->legacy.busy_s - busy0);
  c->found[ent].rows_read = cost.rows_read;
  if (rc != 0)
    c->found[ent].complete = 0;
  note_metrics(c, ent, &cost);
  free(k.t);
  rc_tick(c);
  return rc;
}

/* ---- the pass ------------------------------------------------------------ */

static void reconnect_legacy(rc_ctx_t *c) {
  char why[RC_ERRSTR_MAX];

  if (!c->o->legacy_conninfo || c->legacy.conn)
    return;
  if (rc_db_connect(&c->legacy, c->o->legacy_conninfo, "legacy", why,
                    sizeof(why)) != 0)
    cm_warn("pass %" PRId64 " goes without the legacy database: %s", c->pass,
            why);
}

static int finish(rc_ctx_t *c, char *errstr, size_t size) {
  int rc = rc_out_flush(c->out, errstr, size);

  if (rc == 0)
    rc = rc_db_mark_published(c, "gap", c->sent_gaps.v, c->sent_gaps.n, errstr,
                              size);
  if (rc == 0)
    rc = rc_db_mark_published(c, "regroup", c->sent_regroups.v,
                              c->sent_regroups.n, errstr, size);
  c->sent_gaps.n = c->sent_regroups.n = 0;
  return rc;
}

static void log_pass(const rc_ctx_t *c, double secs) {
  const rc_found_t *f = c->found;

  cm_info("pass %" PRId64 " in %.1f s: mismatching ids doctor %" PRId64
          ", patient %" PRId64 ", appointment %" PRId64
          "; in sync: doctor %s, patient %s, appointment %s",
          c->pass, secs, f[0].mismatches[0] + f[0].mismatches[1],
          f[1].mismatches[0] + f[1].mismatches[1],
          f[2].mismatches[0] + f[2].mismatches[1],
          c->verdict[0].in_sync ? "yes" : "no",
          c->verdict[1].in_sync ? "yes" : "no",
          c->verdict[2].in_sync ? "yes" : "no");
}

int rc_pass(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  double t0 = rc_now_s();
  cm_text_t b;
  int ent, rc;

  rc = rc_db_next_pass(c, errstr, errstr_size);
  if (rc != 0)
    return rc;
  reconnect_legacy(c);
  c->legacy_scanned = 0;
  c->legacy_started = rc_now_s();
  cm_text_init(&b, RC_EVENT_MAX);
  for (ent = 0; rc == 0 && ent < RC_ENTITY_CNT && !rc_stop; ent++)
    rc = entity_pass(c, ent, &b, errstr, errstr_size);
  if (rc == 0 && !rc_stop)
    rc = rc_gaps(c, errstr, errstr_size);
  if (rc == 0 && !rc_stop)
    rc = rc_verdicts(c, errstr, errstr_size);
  cm_text_free(&b);
  if (rc == 0)
    rc = finish(c, errstr, errstr_size);
  c->sent_gaps.n = c->sent_regroups.n = 0;
  if (rc == 0 && !rc_stop) {
    pthread_mutex_lock(&c->metrics->lock);
    c->metrics->pass_seconds = rc_now_s() - t0;
    pthread_mutex_unlock(&c->metrics->lock);
    log_pass(c, rc_now_s() - t0);
  }
  return rc;
}
