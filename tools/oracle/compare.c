/*
 * compare.c — row-by-row comparison of what f gives with what was built.
 *
 * NOTES
 * Both sides are sorted by id and walked once, side by side: an id only
 * on the expected side is missing, one only on the found side is extra,
 * one on both is compared column by column as text (NULL equals only
 * NULL). Every difference is counted; the first max_diffs of a table are
 * kept for the report. A found id that repeats (a table without its
 * primary key) is counted as extra.
 */
#include "oracle.h"

#include <stdlib.h>
#include <string.h>

/* Keeps a difference if there is room under @p max. */
static int keep(or_result_t *r, size_t max, or_kind_t kind, int64_t id,
                const or_row_t *want, const or_row_t *got, unsigned cols) {
  or_diff_t *grown;
  size_t cap;

  if (r->n_diff >= max)
    return 0;
  if (r->n_diff == r->cap_diff) {
    cap = r->cap_diff ? r->cap_diff * 2 : 16;
    cap = cap > max ? max : cap;
    grown = realloc(r->diff, cap * sizeof(or_diff_t));
    if (!grown)
      return -1;
    r->diff = grown;
    r->cap_diff = cap;
  }
  r->diff[r->n_diff].kind = kind;
  r->diff[r->n_diff].id = id;
  r->diff[r->n_diff].want = want;
  r->diff[r->n_diff].got = got;
  r->diff[r->n_diff].cols = cols;
  r->n_diff++;
  return 0;
}

static int same(const char *a, const char *b) {
  if (!a || !b)
    return a == b;
  return strcmp(a, b) == 0;
}

/* The columns in which two rows differ, as a bit set. */
static unsigned differing_cols(const or_table_t *t, const or_row_t *want,
                               const or_row_t *got) {
  unsigned cols = 0;
  int c;

  for (c = 0; c < t->ncols; c++)
    if (!same(want->val[c], got->val[c]))
      cols |= 1u << c;
  return cols;
}

int or_compare(const or_table_t *table, const or_rows_t *want,
               const or_rows_t *got, size_t max_diffs, or_result_t *out) {
  size_t i = 0, j = 0;
  const or_row_t *w, *g;
  unsigned cols;
  int rc = 0, dup;

  memset(out, 0, sizeof(*out));
  out->table = table;
  out->expected = want->n;
  out->found = got->n;
  while (rc == 0 && (i < want->n || j < got->n)) {
    w = i < want->n ? &want->row[i] : NULL;
    g = j < got->n ? &got->row[j] : NULL;
    dup = g && j > 0 && got->row[j - 1].id == g->id;
    if (g && (dup || !w || g->id < w->id)) {
      out->extra++;
      rc = keep(out, max_diffs, OR_EXTRA, g->id, NULL, g, 0);
      j++;
    } else if (!g || w->id < g->id) {
      out->missing++;
      rc = keep(out, max_diffs, OR_MISSING, w->id, w, NULL, 0);
      i++;
    } else {
      cols = differing_cols(table, w, g);
      if (cols) {
        out->differing++;
        rc = keep(out, max_diffs, OR_DIFFERS, w->id, w, g, cols);
      }
      i++;
      j++;
    }
  }
  return rc;
}

void or_result_free(or_result_t *r) {
  free(r->diff);
  r->diff = NULL;
  r->n_diff = r->cap_diff = 0;
}

size_t or_total(const or_result_t *res, size_t n) {
  size_t i, total = 0;

  for (i = 0; i < n; i++)
    total += res[i].missing + res[i].extra + res[i].differing;
  return total;
}
