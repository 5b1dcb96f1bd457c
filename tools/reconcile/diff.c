/*
 * diff.c — which ids differ between two row sources, found by checksums
 * of key segments.
 *
 * NOTES
 * The way data-diff and reladiff compare tables (docs/reconciliation.md,
 * "How a check reads few rows"). A row source (sql/sources.sql) gives
 * (id, t), t the row's canonical text. A segment of keys [lo, last] is
 * cut into RC_FANOUT buckets of consecutive keys, and one query per side
 * returns every bucket's row count and the sum of a 60-bit prefix of its
 * rows' md5 (sql/diff.sql): the server reads the rows, the client gets
 * RC_FANOUT numbers. A bucket whose count and sum agree on both sides
 * agrees (up to a collision of 60-bit sums); one that differs is cut
 * again, and once it holds at most --segment-rows rows on either side
 * its (id, md5) pairs are fetched on both sides and merged: ids on the
 * first side only are missing, on the second only extra, on both with
 * different md5 differing. One difference among N rows thus costs about
 * log16(N) queries per side and --segment-rows rows read, whatever N.
 *
 * The top of the key range is cut into windows of about TOP_ROWS rows
 * (fewer with --rate, so that one query stays within a second's budget)
 * and at most 2^62 keys, so that id - lo never overflows a bigint. The
 * windows are walked in key order, each depth first with a stack of
 * segments, so memory holds a few hundred segments whatever the size.
 *
 * Rows the legacy side's queries go through count against --rate: after
 * each query rc_throttle() sleeps until the pass's scanned rows are
 * within the rate.
 */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"

/** Buckets a segment is cut into. */
#define RC_FANOUT 16
/** Rows of a top window, without --rate. */
#define TOP_ROWS 262144
/** Widest top window, in keys: id - lo stays below 2^62. */
#define TOP_SPAN_BITS 62

typedef struct seg_s {
  int64_t lo, last;
} seg_t;

typedef struct segs_s {
  seg_t *s;
  size_t n, cap;
} segs_t;

/** One bucket of a checksum query. */
typedef struct bucket_s {
  int64_t count;
  const char *sum; /**< points into the query's result; NULL if empty */
} bucket_t;

/** A comparison in progress. */
typedef struct run_s {
  rc_ctx_t *c;
  const rc_side_t *side[2];
  char *range_sql[2], *sum_sql[2], *fetch_sql[2];
  rc_diff_t *d;
  segs_t stack;
  char *errstr;
  size_t size;
} run_t;

void rc_throttle(rc_ctx_t *c, int64_t rows) {
  double due, now;

  c->legacy_scanned += rows;
  if (c->o->rate <= 0)
    return;
  due = c->legacy_started + (double)c->legacy_scanned / c->o->rate;
  now = rc_now_s();
  if (due > now)
    rc_sleep_ms((int64_t)((due - now) * 1000) + 1);
}

static int push(segs_t *st, int64_t lo, int64_t last) {
  seg_t *ns;

  if (st->n == st->cap) {
    st->cap = st->cap ? st->cap * 2 : 64;
    ns = realloc(st->s, st->cap * sizeof(*ns));
    if (!ns)
      return CM_ERR_NOMEM;
    st->s = ns;
  }
  st->s[st->n].lo = lo;
  st->s[st->n].last = last;
  st->n++;
  return 0;
}

static void add_id(rc_ids_t *ids, int64_t id) {
  if (ids->n < RC_IDS_MAX)
    ids->id[ids->n++] = id;
  ids->total++;
}

/* Runs one of a side's queries; the main loop turns (/healthz). */
static PGresult *side_query(run_t *r, int s, const char *sql, int nparams,
                            const char *const *params, const char *what) {
  rc_tick(r->c);
  return rc_db_query(r->side[s]->db, sql, nparams, params, what, r->errstr,
                     r->size);
}

static void side_scanned(run_t *r, int s, int64_t rows) {
  if (!r->side[s]->legacy)
    return;
  r->d->legacy_scanned += rows;
  rc_throttle(r->c, rows);
}

/* ---- the statements ------------------------------------------------------ */

static int prepare_side(run_t *r, int s) {
  char *source =
      rc_ctx_sql(r->c, r->side[s]->source, NULL, 0, r->errstr, r->size);
  rc_subst_t sub = {"source", source};

  if (!source)
    return CM_ERR_FATAL;
  r->range_sql[s] = rc_ctx_sql(r->c, "range", &sub, 1, r->errstr, r->size);
  r->sum_sql[s] = rc_ctx_sql(r->c, "checksum", &sub, 1, r->errstr, r->size);
  r->fetch_sql[s] = rc_ctx_sql(r->c, "fetch", &sub, 1, r->errstr, r->size);
  free(source);
  return r->range_sql[s] && r->sum_sql[s] && r->fetch_sql[s] ? 0 : CM_ERR_FATAL;
}

static void free_run(run_t *r) {
  int s;

  for (s = 0; s < 2; s++) {
    free(r->range_sql[s]);
    free(r->sum_sql[s]);
    free(r->fetch_sql[s]);
  }
  free(r->stack.s);
}

/* ---- the key range ------------------------------------------------------- */

/* Both sides' smallest and largest id; *empty when neither has rows. */
static int key_range(run_t *r, int64_t *lo, int64_t *hi, int *empty) {
  PGresult *res;
  int64_t mn, mx;
  int s;

  *empty = 1;
  for (s = 0; s < 2; s++) {
    res = side_query(r, s, r->range_sql[s], 0, NULL, "read a key range");
    if (!res)
      return CM_ERR_RETRY;
    if (rc_cell_i64(res, 0, 0, &mn) == 0 && rc_cell_i64(res, 0, 1, &mx) == 0) {
      *lo = *empty || mn < *lo ? mn : *lo;
      *hi = *empty || mx > *hi ? mx : *hi;
      *empty = 0;
    }
    PQclear(res);
  }
  return 0;
}

/* ---- one small segment, row by row --------------------------------------- */

static int fetch_rows(run_t *r, int s, const seg_t *g, PGresult **res) {
  char lo[24], last[24];
  const char *params[2] = {lo, last};

  snprintf(lo, sizeof(lo), "%" PRId64, g->lo);
  snprintf(last, sizeof(last), "%" PRId64, g->last);
  *res = side_query(r, s, r->fetch_sql[s], 2, params, "read a segment's rows");
  if (!*res)
    return CM_ERR_RETRY;
  r->d->rows_read += PQntuples(*res);
  side_scanned(r, s, PQntuples(*res));
  return 0;
}

static int64_t row_id(const PGresult *res, int row) {
  int64_t v = 0;

  rc_cell_i64(res, row, 0, &v);
  return v;
}

/* Both sides' rows, each in id order: a merge. */
static void merge_rows(run_t *r, const PGresult *a, const PGresult *b) {
  int i = 0, j = 0, na = PQntuples(a), nb = PQntuples(b);
  int64_t ia, ib;

  while (i < na || j < nb) {
    ia = i < na ? row_id(a, i) : INT64_MAX;
    ib = j < nb ? row_id(b, j) : INT64_MAX;
    if (j >= nb || (i < na && ia < ib)) {
      add_id(&r->d->missing, ia);
      i++;
    } else if (i >= na || ib < ia) {
      add_id(&r->d->extra, ib);
      j++;
    } else {
      if (strcmp(PQgetvalue(a, i, 1), PQgetvalue(b, j, 1)) != 0)
        add_id(&r->d->differing, ia);
      i++;
      j++;
    }
  }
}

static int compare_rows(run_t *r, const seg_t *g) {
  PGresult *res[2] = {NULL, NULL};
  int rc = fetch_rows(r, 0, g, &res[0]);

  if (rc == 0)
    rc = fetch_rows(r, 1, g, &res[1]);
  if (rc == 0)
    merge_rows(r, res[0], res[1]);
  PQclear(res[0]);
  PQclear(res[1]);
  return rc;
}

/* ---- checksums of a segment's buckets ------------------------------------ */

/* One side's buckets of segment @g, @width keys each. */
static int checksum(run_t *r, int s, const seg_t *g, uint64_t width,
                    PGresult **res, bucket_t *b) {
  char lo[24], last[24], w[24];
  const char *params[3] = {lo, last, w};
  int64_t i, rows = 0;
  int row;

  snprintf(lo, sizeof(lo), "%" PRId64, g->lo);
  snprintf(last, sizeof(last), "%" PRId64, g->last);
  snprintf(w, sizeof(w), "%" PRIu64, width);
  memset(b, 0, RC_FANOUT * sizeof(*b));
  *res = side_query(r, s, r->sum_sql[s], 3, params, "checksum a segment");
  if (!*res)
    return CM_ERR_RETRY;
  for (row = 0; row < PQntuples(*res); row++) {
    if (rc_cell_i64(*res, row, 0, &i) != 0 || i < 0 || i >= RC_FANOUT ||
        rc_cell_i64(*res, row, 1, &b[i].count) != 0) {
      snprintf(r->errstr, r->size, "checksum a segment: unexpected bucket");
      return CM_ERR_FATAL;
    }
    b[i].sum = PQgetvalue(*res, row, 2);
    rows += b[i].count;
  }
  side_scanned(r, s, rows);
  return 0;
}

static int same(const bucket_t *a, const bucket_t *b) {
  return a->count == b->count &&
         (a->count == 0 || (a->sum && b->sum && strcmp(a->sum, b->sum) == 0));
}

/* Compares bucket @i of both sides: fetches it, pushes it, or neither. */
static int judge(run_t *r, const seg_t *g, const bucket_t *a, const bucket_t *b,
                 uint64_t width, segs_t *children) {
  int64_t most = a->count > b->count ? a->count : b->count;

  if (a->count == 0 && b->count == 0)
    return 0;
  r->d->segments++;
  if (same(a, b))
    return 0;
  if (most <= r->c->o->segment_rows || width == 1)
    return compare_rows(r, g);
  return push(children, g->lo, g->last);
}

/* Cuts @g into buckets and judges each; differing large ones go onto the
 * stack, lowest keys on top. */
static int split(run_t *r, const seg_t *g) {
  uint64_t span1 = (uint64_t)g->last - (uint64_t)g->lo;
  uint64_t width = span1 / RC_FANOUT + 1, off;
  bucket_t ba[RC_FANOUT], bb[RC_FANOUT];
  PGresult *res[2] = {NULL, NULL};
  segs_t children = {NULL, 0, 0};
  seg_t sub;
  int i, rc = checksum(r, 0, g, width, &res[0], ba);

  if (rc == 0)
    rc = checksum(r, 1, g, width, &res[1], bb);
  for (i = 0, off = 0; rc == 0 && i < RC_FANOUT && off <= span1;
       i++, off += width) {
    sub.lo = (int64_t)((uint64_t)g->lo + off);
    sub.last =
        span1 - off < width ? g->last : (int64_t)((uint64_t)sub.lo + width - 1);
    rc = judge(r, &sub, &ba[i], &bb[i], width, &children);
  }
  while (rc == 0 && children.n > 0) {
    children.n--;
    rc =
        push(&r->stack, children.s[children.n].lo, children.s[children.n].last);
  }
  free(children.s);
  PQclear(res[0]);
  PQclear(res[1]);
  return rc;
}

/* ---- the whole range ----------------------------------------------------- */

static int walk(run_t *r, int64_t lo, int64_t last) {
  seg_t g;
  int rc = push(&r->stack, lo, last);

  while (rc == 0 && r->stack.n > 0) {
    g = r->stack.s[--r->stack.n];
    rc = split(r, &g);
  }
  return rc;
}

/* Rows a top window should hold: TOP_ROWS, or a second's worth of --rate
 * (but not less than a few levels of buckets). */
static uint64_t top_rows(const rc_opts_t *o) {
  double least = (double)o->segment_rows * RC_FANOUT;

  if (o->rate <= 0 || o->rate >= TOP_ROWS)
    return TOP_ROWS;
  return (uint64_t)(o->rate > least ? o->rate : least);
}

static int walk_windows(run_t *r, int64_t lo, int64_t hi, int64_t est) {
  uint64_t span1 = (uint64_t)hi - (uint64_t)lo, per = top_rows(r->c->o);
  uint64_t nwin = est > 0 ? ((uint64_t)est + per - 1) / per : 1, width, off;
  int64_t wlo, wlast;
  int rc = 0;

  if (nwin < (span1 >> TOP_SPAN_BITS) + 1)
    nwin = (span1 >> TOP_SPAN_BITS) + 1;
  width = span1 / nwin + 1;
  for (off = 0; rc == 0; off += width) {
    wlo = (int64_t)((uint64_t)lo + off);
    wlast = span1 - off < width ? hi : (int64_t)((uint64_t)wlo + width - 1);
    rc = walk(r, wlo, wlast);
    if (wlast == hi)
      break;
  }
  return rc;
}

int rc_diff(rc_ctx_t *c, const rc_side_t *a, const rc_side_t *b,
            int64_t est_rows, rc_diff_t *d, char *errstr, size_t errstr_size) {
  run_t r;
  int64_t lo = 0, hi = 0;
  int empty = 1, rc;

  memset(&r, 0, sizeof(r));
  memset(d, 0, sizeof(*d));
  r.c = c;
  r.side[0] = a;
  r.side[1] = b;
  r.d = d;
  r.errstr = errstr;
  r.size = errstr_size;
  rc = prepare_side(&r, 0);
  if (rc == 0)
    rc = prepare_side(&r, 1);
  if (rc == 0)
    rc = key_range(&r, &lo, &hi, &empty);
  if (rc == 0 && !empty)
    rc = walk_windows(&r, lo, hi, est_rows);
  free_run(&r);
  return rc;
}
