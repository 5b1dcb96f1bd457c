/*
 * buf.c — growing text with a hard size limit, for the events and the
 * metrics page; and the clocks.
 *
 * NOTES
 * The limit is set at init (RC_EVENT_MAX for an event); an append past
 * it, or a failed allocation, marks the buffer failed and appends nothing
 * more, so a caller writes a whole event and checks once. Integers are
 * printed exactly (the reconciliation topic's contract,
 * docs/reconciliation.md: 64-bit counters and offsets are JSON integers).
 */
#include "reconcile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rc_buf_init(rc_buf_t *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max;
}

void rc_buf_free(rc_buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

void rc_buf_reset(rc_buf_t *b) {
  b->len = 0;
  b->failed = 0;
  if (b->p)
    b->p[0] = '\0';
}

static int grow(rc_buf_t *b, size_t need) {
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

void rc_buf_add(rc_buf_t *b, const char *s, size_t n) {
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

void rc_buf_str(rc_buf_t *b, const char *s) {
  rc_buf_add(b, s, strlen(s));
}

void rc_buf_i64(rc_buf_t *b, int64_t v) {
  char num[24];

  snprintf(num, sizeof(num), "%" PRId64, v);
  rc_buf_str(b, num);
}

void rc_buf_f3(rc_buf_t *b, double v) {
  char num[48];

  snprintf(num, sizeof(num), "%.3f", v);
  rc_buf_str(b, num);
}

/* ", \ and the control characters escaped; the rest goes through. */
void rc_buf_json(rc_buf_t *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  const char *run;
  char esc[7];

  if (!s) {
    rc_buf_str(b, "null");
    return;
  }
  rc_buf_add(b, "\"", 1);
  for (run = s; *s; s++) {
    unsigned char c = (unsigned char)*s;

    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    rc_buf_add(b, run, (size_t)(s - run));
    run = s + 1;
    memcpy(esc, "\\u00", 4);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 15];
    if (c == '"' || c == '\\') {
      esc[1] = (char)c;
      rc_buf_add(b, esc, 2);
    } else {
      rc_buf_add(b, esc, 6);
    }
  }
  rc_buf_add(b, run, (size_t)(s - run));
  rc_buf_add(b, "\"", 1);
}

void rc_buf_key(rc_buf_t *b, const char *key) {
  char last = b->len ? b->p[b->len - 1] : '{';

  if (last != '{' && last != '[')
    rc_buf_add(b, ",", 1);
  rc_buf_json(b, key);
  rc_buf_add(b, ":", 1);
}

/* ---- clocks -------------------------------------------------------------- */

double rc_now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t rc_wall_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rc_iso_ms(int64_t ms, char *buf, size_t size) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;

  gmtime_r(&secs, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(ms % 1000));
}

void rc_sleep_ms(int64_t ms) {
  struct timespec ts;
  int64_t step;

  while (ms > 0 && !rc_stop) {
    step = ms > 100 ? 100 : ms;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)step * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !rc_stop)
      ;
    ms -= step;
  }
}
