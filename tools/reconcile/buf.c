/*
 * buf.c — the JSON pieces the events need beyond cm_text.h (decimals,
 * keys), and the clocks.
 *
 * NOTES
 * The events are written into a cm_text_t bounded at RC_EVENT_MAX; its
 * integers are printed exactly (the reconciliation topic's contract,
 * docs/reconciliation.md: 64-bit counters and offsets are JSON integers).
 */
#include "reconcile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void rc_buf_f3(cm_text_t *b, double v) {
  char num[48];

  snprintf(num, sizeof(num), "%.3f", v);
  cm_text_str(b, num);
}

void rc_buf_key(cm_text_t *b, const char *key) {
  char last = b->len ? b->p[b->len - 1] : '{';

  if (last != '{' && last != '[')
    cm_text_add(b, ",", 1);
  cm_text_json(b, key);
  cm_text_add(b, ":", 1);
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
