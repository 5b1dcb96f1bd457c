/*
 * txsnap.c — transaction snapshots: parse, compare, visibility.
 *
 * NOTES
 * The rule is PostgreSQL's own (XidInMVCCSnapshot, for committed ids): an
 * id below xmin is visible, one at or past xmax is not, one in between is
 * visible unless it is listed as in progress. Aborted transactions leave
 * no change events, so "visible" here means "committed before the
 * snapshot". See docs/design.md §2.2.
 */
#include "clinicmig/cm_txsnap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"

#define XID_SPAN INT64_C(4294967296) /* 2^32 */
#define XID_HALF INT64_C(2147483648) /* 2^31 */

/* Reads a non-negative decimal id at *p, advancing it; -1 if none. */
static int read_id(const char **p, int64_t *out) {
  char *end;
  long long v;

  if (**p < '0' || **p > '9')
    return -1;
  errno = 0;
  v = strtoll(*p, &end, 10);
  if (errno != 0)
    return -1;
  *p = end;
  *out = (int64_t)v;
  return 0;
}

static int cmp_id(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return (x > y) - (x < y);
}

/* Reads a list of ids separated by commas up to @p stop; sorts it and
 * checks it lies within [xmin, xmax). */
static int read_xip(const char *p, char stop, cm_txsnap_t *s) {
  int cap = 0;
  int64_t *v;

  while (*p != stop) {
    if (s->n_xip == CM_TXSNAP_MAX_XIP)
      return -1;
    if (s->n_xip == cap) {
      cap = cap ? cap * 2 : 8;
      v = realloc(s->xip, sizeof(*v) * (size_t)cap);
      if (!v)
        return CM_ERR_NOMEM;
      s->xip = v;
    }
    if (read_id(&p, &s->xip[s->n_xip]) != 0)
      return -1;
    if (s->xip[s->n_xip] < s->xmin || s->xip[s->n_xip] >= s->xmax)
      return -1;
    s->n_xip++;
    if (*p == ',' && p[1] != stop)
      p++;
    else if (*p != stop)
      return -1;
  }
  if (p[stop ? 1 : 0] != '\0')
    return -1;
  if (s->n_xip > 1)
    qsort(s->xip, (size_t)s->n_xip, sizeof(*s->xip), cmp_id);
  return 0;
}

static int finish(int r, cm_txsnap_t *out) {
  if (r != 0)
    cm_txsnap_clear(out);
  return r;
}

int cm_txsnap_parse(const char *text, cm_txsnap_t *out) {
  const char *p = text;

  memset(out, 0, sizeof(*out));
  if (!p || read_id(&p, &out->xmin) != 0 || *p++ != ':' ||
      read_id(&p, &out->xmax) != 0 || *p++ != ':' || out->xmin > out->xmax)
    return -1;
  return finish(read_xip(p, '\0', out), out);
}

int cm_txsnap_from_parts(int64_t xmin, int64_t xmax, const char *xip_array,
                         cm_txsnap_t *out) {
  memset(out, 0, sizeof(*out));
  out->xmin = xmin;
  out->xmax = xmax;
  if (xmin < 0 || xmin > xmax || !xip_array || xip_array[0] != '{')
    return -1;
  return finish(read_xip(xip_array + 1, '}', out), out);
}

int cm_txsnap_copy(cm_txsnap_t *dst, const cm_txsnap_t *src) {
  *dst = *src;
  dst->xip = NULL;
  if (src->n_xip == 0)
    return 0;
  dst->xip = malloc(sizeof(*dst->xip) * (size_t)src->n_xip);
  if (!dst->xip) {
    dst->n_xip = 0;
    return CM_ERR_NOMEM;
  }
  memcpy(dst->xip, src->xip, sizeof(*dst->xip) * (size_t)src->n_xip);
  return 0;
}

void cm_txsnap_clear(cm_txsnap_t *s) {
  free(s->xip);
  memset(s, 0, sizeof(*s));
}

int64_t cm_xid_widen(int64_t xid, int64_t ref) {
  int64_t w;

  if (xid < 0 || xid >= XID_SPAN)
    return xid;
  w = (ref & ~(XID_SPAN - 1)) | xid;
  if (w - ref > XID_HALF && w >= XID_SPAN)
    w -= XID_SPAN;
  else if (ref - w > XID_HALF)
    w += XID_SPAN;
  return w;
}

int cm_txsnap_visible(const cm_txsnap_t *s, int64_t xid) {
  int64_t w = cm_xid_widen(xid, s->xmax);

  if (w < s->xmin)
    return 1;
  if (w >= s->xmax)
    return 0;
  return s->n_xip == 0 ||
         bsearch(&w, s->xip, (size_t)s->n_xip, sizeof(*s->xip), cmp_id) == NULL;
}

int cm_txsnap_cmp(const cm_txsnap_t *a, const cm_txsnap_t *b) {
  if (a->xmax != b->xmax)
    return a->xmax > b->xmax ? 1 : -1;
  if (a->xmin != b->xmin)
    return a->xmin > b->xmin ? 1 : -1;
  return (a->n_xip < b->n_xip) - (a->n_xip > b->n_xip);
}

char *cm_txsnap_xip_array(const cm_txsnap_t *s) {
  size_t size = 3 + (size_t)s->n_xip * 21, len = 1;
  char *buf = malloc(size);
  int i;

  if (!buf)
    return NULL;
  buf[0] = '{';
  for (i = 0; i < s->n_xip; i++)
    len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64, i ? "," : "",
                            s->xip[i]);
  snprintf(buf + len, size - len, "}");
  return buf;
}

char *cm_txsnap_format(const cm_txsnap_t *s, char *buf, size_t size) {
  size_t len;
  int i;

  snprintf(buf, size, "%" PRId64 ":%" PRId64 ":", s->xmin, s->xmax);
  for (i = 0; i < s->n_xip; i++) {
    len = strlen(buf);
    if (len + 1 >= size)
      break;
    snprintf(buf + len, size - len, "%s%" PRId64, i ? "," : "", s->xip[i]);
  }
  return buf;
}
