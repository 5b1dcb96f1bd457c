/*
 * buf.c — growing text with a hard size limit, for the JSON the tool
 * writes.
 *
 * NOTES
 * The limit is set at init (the largest message the workers decode,
 * CM_EVENT_MAX_BYTES); an append past it, or a failed allocation, marks
 * the buffer failed and appends nothing more, so a caller writes a whole
 * message and checks once. The buffer is reused from message to message:
 * it grows to the largest row and stays there.
 */
#include "replay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rp_buf_init(rp_buf_t *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max;
}

void rp_buf_free(rp_buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

void rp_buf_reset(rp_buf_t *b) {
  b->len = 0;
  b->failed = 0;
  if (b->p)
    b->p[0] = '\0';
}

static int grow(rp_buf_t *b, size_t need) {
  size_t cap = b->cap ? b->cap : 1024;
  char *np;

  while (cap < need)
    cap *= 2;
  if (cap > b->max + 1)
    cap = b->max + 1;
  np = realloc(b->p, cap);
  if (!np)
    return -1;
  b->p = np;
  b->cap = cap;
  return 0;
}

void rp_buf_add(rp_buf_t *b, const char *s, size_t n) {
  if (b->failed)
    return;
  if (b->len + n > b->max ||
      (b->len + n + 1 > b->cap && grow(b, b->len + n + 1) != 0)) {
    b->failed = 1;
    return;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void rp_buf_str(rp_buf_t *b, const char *s) {
  rp_buf_add(b, s, strlen(s));
}

void rp_buf_i64(rp_buf_t *b, int64_t v) {
  char num[24];

  snprintf(num, sizeof(num), "%" PRId64, v);
  rp_buf_str(b, num);
}

/* JSON wants ", \ and the control characters escaped; the rest of the
 * UTF-8 text PostgreSQL returns goes through as it is. */
void rp_buf_json(rp_buf_t *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  const char *run = s;
  char esc[7];

  rp_buf_add(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;

    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    rp_buf_add(b, run, (size_t)(s - run));
    run = s + 1;
    switch (c) {
    case '"': rp_buf_add(b, "\\\"", 2); break;
    case '\\': rp_buf_add(b, "\\\\", 2); break;
    case '\n': rp_buf_add(b, "\\n", 2); break;
    case '\r': rp_buf_add(b, "\\r", 2); break;
    case '\t': rp_buf_add(b, "\\t", 2); break;
    default:
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      rp_buf_add(b, esc, 6);
    }
  }
  rp_buf_add(b, run, (size_t)(s - run));
  rp_buf_add(b, "\"", 1);
}
