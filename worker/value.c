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
