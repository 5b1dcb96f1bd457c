/*
 * log.c — one line per event of interest, to stderr.
 *
 * NOTES
 * Lines are written with a single write(2) so that lines of several threads
 * or processes sharing a terminal do not interleave.
 */
#include "clinicmig/cm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static cm_log_level_t log_level = CM_LOG_INFO;
static char log_component[64] = "clinicmig";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void cm_log_set_level(cm_log_level_t level) {
  log_level = level;
}

int cm_log_level_parse(const char *s) {
  size_t i;

  for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
    if (strcasecmp(s, level_names[i]) == 0)
      return (int)i;
  return -1;
}

void cm_log_set_component(const char *name) {
  snprintf(log_component, sizeof(log_component), "%s", name);
}

void cm_log(cm_log_level_t level, const char *fmt, ...) {
  char line[2048];
  struct timeval tv;
  struct tm tm;
  va_list ap;
  int n, m;

  if (level > log_level)
    return;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  n = snprintf(
      line, sizeof(line),
      "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s: ", tm.tm_year + 1900,
      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
      (int)(tv.tv_usec / 1000), level_names[level], log_component);
  va_start(ap, fmt);
  m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  n += m;
  if (n > (int)sizeof(line) - 2)
    n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  if (write(STDERR_FILENO, line, (size_t)n) < 0)
    return;
}
