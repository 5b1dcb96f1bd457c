/*
 * text.c — growing text with a hard size limit.
 *
 * NOTES
 * Used for what the worker writes for operators (docs/observability.md):
 * the progress event and the metrics page; and by the tools for the
 * messages they publish (clinicmig-replay's rows, the reconciler's
 * events). The limit guards against input or a bug making them grow
 * without end: an append past it, or a failed allocation, marks the text
 * failed and appends nothing more, so a caller writes a whole message and
 * checks once.
 */
#include "clinicmig/cm_text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cm_text_init(cm_text_t *t, size_t max) {
  memset(t, 0, sizeof(*t));
  t->max = max;
}

void cm_text_reset(cm_text_t *t) {
  t->len = 0;
  t->failed = 0;
  if (t->p)
    t->p[0] = '\0';
}

void cm_text_free(cm_text_t *t) {
  free(t->p);
  t->p = NULL;
  t->len = t->cap = 0;
  t->failed = 0;
}

static int grow(cm_text_t *t, size_t need) {
  size_t cap = t->cap ? t->cap : 1024;
  char *np;

  while (cap < need)
    cap *= 2;
  if (cap > t->max + 1)
    cap = t->max + 1;
  np = realloc(t->p, cap);
  if (!np)
    return -1;
  t->p = np;
  t->cap = cap;
  return 0;
}

void cm_text_add(cm_text_t *t, const char *s, size_t n) {
  if (t->failed)
    return;
  if (t->len + n > t->max ||
      (t->len + n + 1 > t->cap && grow(t, t->len + n + 1) != 0)) {
    t->failed = 1;
    return;
  }
  memcpy(t->p + t->len, s, n);
  t->len += n;
  t->p[t->len] = '\0';
}

void cm_text_str(cm_text_t *t, const char *s) {
  cm_text_add(t, s, strlen(s));
}

void cm_text_printf(cm_text_t *t, const char *fmt, ...) {
  char line[512];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(line)) {
    t->failed = 1; /* the callers' pieces are short: a bug */
    return;
  }
  cm_text_add(t, line, (size_t)n);
}

void cm_text_i64(cm_text_t *t, int64_t v) {
  cm_text_printf(t, "%" PRId64, v);
}

/* JSON wants ", \ and the control characters escaped; the rest of the
 * UTF-8 text goes through as it is. */
void cm_text_json(cm_text_t *t, const char *s) {
  static const char hex[] = "0123456789abcdef";
  const char *run = s;
  char esc[7];

  if (!s) {
    cm_text_str(t, "null");
    return;
  }
  cm_text_add(t, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;

    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    cm_text_add(t, run, (size_t)(s - run));
    run = s + 1;
    switch (c) {
    case '"': cm_text_add(t, "\\\"", 2); break;
    case '\\': cm_text_add(t, "\\\\", 2); break;
    case '\n': cm_text_add(t, "\\n", 2); break;
    default:
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      cm_text_add(t, esc, 6);
    }
  }
  cm_text_add(t, run, (size_t)(s - run));
  cm_text_add(t, "\"", 1);
}

char *cm_text_take(cm_text_t *t, size_t *len) {
  char *p = t->failed ? NULL : t->p;

  if (len)
    *len = t->failed ? 0 : t->len;
  if (t->failed)
    free(t->p);
  t->p = NULL;
  t->len = t->cap = 0;
  t->failed = 0;
  return p;
}
