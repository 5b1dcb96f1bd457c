/*
 * value.c — typed column values as text.
 *
 * NOTES
 * Dates are civil (proleptic Gregorian) days counted from 1970-01-01, as
 * Debezium's io.debezium.time.Date sends them; the conversion is the
 * usual era-based one, exact for every int64 day count that fits a year
 * PostgreSQL can hold.
 */
#include "clinicmig/cm_value.h"

#include <inttypes.h>
#include <stdio.h>

/* ---- parsing -------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, int m, int d) {
  int64_t era, yoe, doy, doe;

  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
  static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return mdays[m - 1];
}

/* Reads exactly @p n decimal digits; stops at a NUL. */
static int digits(const char *s, int n, int *out) {
  int i, v = 0;

  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* Parses "YYYY-MM-DD" at the start of @p s into days since the epoch. */
static int parse_ymd(const char *s, int64_t *days) {
  int y, m, d;

  if (digits(s, 4, &y) != 0 || s[4] != '-' || digits(s + 5, 2, &m) != 0 ||
      s[7] != '-' || digits(s + 8, 2, &d) != 0)
    return -1;
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
    return -1;
  *days = days_from_civil(y, m, d);
  return 0;
}

/* Parses "HH:MM[:SS[.f]]" (0-9 fraction digits, cut to µs); moves *p. */
static int parse_hms(const char **p, int64_t *us) {
  const char *s = *p;
  int h, mi, sec = 0, frac = 0, nd = 0, kept = 0;

  if (digits(s, 2, &h) != 0 || s[2] != ':' || digits(s + 3, 2, &mi) != 0)
    return -1;
  s += 5;
  if (*s == ':') {
    if (digits(s + 1, 2, &sec) != 0)
      return -1;
    s += 3;
    if (*s == '.') {
      for (s++; *s >= '0' && *s <= '9'; s++) {
        if (nd < 6)
          frac = frac * 10 + (*s - '0');
        nd++;
      }
      if (nd == 0 || nd > 9)
        return -1;
      for (kept = nd; kept < 6; kept++)
        frac *= 10;
    }
  }
  if (h > 23 || mi > 59 || sec > 59)
    return -1;
  *us = ((int64_t)(h * 60 + mi) * 60 + sec) * 1000000 + frac;
  *p = s;
  return 0;
}

/* Parses "Z", "+HH:MM", "+HHMM" or "+HH" (to the end of @p s). */
static int parse_offset(const char *s, int64_t *off_s) {
  int sign, h, m = 0;

  if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
    *off_s = 0;
    return 0;
  }
  if ((s[0] != '+' && s[0] != '-') || digits(s + 1, 2, &h) != 0)
    return -1;
  sign = s[0] == '-' ? -1 : 1;
  s += 3;
  if (*s != '\0') {
    if (*s == ':')
      s++;
    if (digits(s, 2, &m) != 0 || s[2] != '\0')
      return -1;
  }
  if (h > 18 || m > 59)
    return -1;
  *off_s = sign * (h * 3600 + m * 60);
  return 0;
}

int cm_date_parse(const char *s, int64_t *days) {
  return parse_ymd(s, days) == 0 && s[10] == '\0' ? 0 : -1;
}

int cm_timestamp_parse(const char *s, int64_t *us) {
  int64_t days, tod, off;

  if (parse_ymd(s, &days) != 0 || (s[10] != 'T' && s[10] != ' '))
    return -1;
  s += 11;
  if (parse_hms(&s, &tod) != 0 || parse_offset(s, &off) != 0)
    return -1;
  *us = days * CM_US_PER_DAY + tod - off * 1000000;
  return (*us < CM_US_MIN || *us > CM_US_MAX) ? -1 : 0;
}

/* ---- formatting ----------------------------------------------------- */

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  int64_t era, yoe, doy, mp;

  z += 719468;
  era = (z >= 0 ? z : z - 146096) / 146097;
  yoe = z - era * 146097;
  yoe = (yoe - yoe / 1460 + yoe / 36524 - yoe / 146096) / 365;
  doy = (z - era * 146097) - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
  *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

void cm_date_format(int64_t days, char *buf, size_t size) {
  unsigned m, d;
  int64_t y;

  civil_from_days(days, &y, &m, &d);
  snprintf(buf, size, "%04" PRId64 "-%02u-%02u", y, m, d);
}

void cm_timestamp_format(int64_t us, char *buf, size_t size) {
  int64_t secs = us / 1000000, frac = us % 1000000, days, sod;
  unsigned m, d;
  int64_t y;

  if (frac < 0) {
    frac += 1000000;
    secs -= 1;
  }
  days = secs / 86400;
  sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    days -= 1;
  }
  civil_from_days(days, &y, &m, &d);
  snprintf(buf, size, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d.%06" PRId64 "Z",
           y, m, d, (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60),
           frac);
}

const char *cm_value_text(const cm_value_t *v, char *buf, size_t size) {
  switch (v->kind) {
  case CM_VAL_TEXT: return v->s;
  case CM_VAL_INT: snprintf(buf, size, "%" PRId64, v->i); return buf;
  case CM_VAL_BOOL:
    snprintf(buf, size, "%s", v->i ? "true" : "false");
    return buf;
  case CM_VAL_DATE: cm_date_format(v->i, buf, size); return buf;
  case CM_VAL_TIMESTAMP: cm_timestamp_format(v->i, buf, size); return buf;
  default: return NULL;
  }
}
