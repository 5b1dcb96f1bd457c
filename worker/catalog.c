/*
 * catalog.c — the legacy tables' columns (docs/design.md §1.1).
 */
#include "clinicmig/cm_catalog.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const cm_column_t clinic_cols[] = {
    {"id", "id", CM_COL_INT, 0},
    {"name", "name", CM_COL_TEXT, 0},
    {"createdAt", "created_at", CM_COL_TIMESTAMP, 0},
    {"updatedAt", "updated_at", CM_COL_TIMESTAMP, 0},
};

static const cm_column_t user_cols[] = {
    {"id", "id", CM_COL_INT, 0},
    {"clinicId", "clinic_id", CM_COL_INT, 0},
    {"email", "email", CM_COL_TEXT, 0},
    {"phone", "phone", CM_COL_TEXT, 1},
    {"firstName", "first_name", CM_COL_TEXT, 0},
    {"lastName", "last_name", CM_COL_TEXT, 0},
    {"role", "role", CM_COL_TEXT, 0},
    {"specialization", "specialization", CM_COL_TEXT, 1},
    {"licenseNumber", "license_number", CM_COL_TEXT, 1},
    {"isActive", "is_active", CM_COL_BOOL, 0},
    {"createdAt", "created_at", CM_COL_TIMESTAMP, 0},
    {"updatedAt", "updated_at", CM_COL_TIMESTAMP, 0},
};

static const cm_column_t patient_cols[] = {
    {"id", "id", CM_COL_INT, 0},
    {"clinicId", "clinic_id", CM_COL_INT, 0},
    {"firstName", "first_name", CM_COL_TEXT, 0},
    {"lastName", "last_name", CM_COL_TEXT, 0},
    {"middleName", "middle_name", CM_COL_TEXT, 1},
    {"birthDate", "birth_date", CM_COL_DATE, 1},
    {"gender", "gender", CM_COL_TEXT, 1},
    {"phone", "phone", CM_COL_TEXT, 1},
    {"email", "email", CM_COL_TEXT, 1},
    {"createdAt", "created_at", CM_COL_TIMESTAMP, 0},
    {"updatedAt", "updated_at", CM_COL_TIMESTAMP, 0},
};

static const cm_column_t appt_cols[] = {
    {"id", "id", CM_COL_INT, 0},
    {"clinicId", "clinic_id", CM_COL_INT, 0},
    {"doctorId", "doctor_id", CM_COL_INT, 0},
    {"patientId", "patient_id", CM_COL_INT, 0},
    {"startsAt", "starts_at", CM_COL_TIMESTAMP, 0},
    {"endsAt", "ends_at", CM_COL_TIMESTAMP, 0},
    {"status", "status", CM_COL_TEXT, 0},
    {"reason", "reason", CM_COL_TEXT, 1},
    {"createdAt", "created_at", CM_COL_TIMESTAMP, 0},
    {"updatedAt", "updated_at", CM_COL_TIMESTAMP, 0},
};

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

_Static_assert(NELEM(clinic_cols) == CM_CLINIC__CNT, "clinic columns");
_Static_assert(NELEM(user_cols) == CM_USER__CNT, "user columns");
_Static_assert(NELEM(patient_cols) == CM_PATIENT__CNT, "patient columns");
_Static_assert(NELEM(appt_cols) == CM_APPT__CNT, "appointment columns");
_Static_assert(CM_USER__CNT <= CM_MAX_COLS, "CM_MAX_COLS too small");

static const char *const table_names[CM_TABLE__CNT] = {
    "?", "Clinic", "User", "Patient", "Appointment"};

const cm_column_t *cm_table_columns(cm_table_t table, int *cnt) {
  const cm_column_t *cols = NULL;
  int n = 0;

  switch (table) {
  case CM_TABLE_CLINIC:
    cols = clinic_cols;
    n = NELEM(clinic_cols);
    break;
  case CM_TABLE_USER:
    cols = user_cols;
    n = NELEM(user_cols);
    break;
  case CM_TABLE_PATIENT:
    cols = patient_cols;
    n = NELEM(patient_cols);
    break;
  case CM_TABLE_APPOINTMENT:
    cols = appt_cols;
    n = NELEM(appt_cols);
    break;
  default: break;
  }
  if (cnt != NULL)
    *cnt = n;
  return cols;
}

const char *cm_table_name(cm_table_t table) {
  if (table <= CM_TABLE_NONE || table >= CM_TABLE__CNT)
    return "?";
  return table_names[table];
}

cm_table_t cm_table_from_name(const char *name) {
  int t;

  if (name == NULL)
    return CM_TABLE_NONE;
  for (t = CM_TABLE_NONE + 1; t < CM_TABLE__CNT; t++)
    if (strcmp(name, table_names[t]) == 0)
      return (cm_table_t)t;
  return CM_TABLE_NONE;
}

/* ---- legacy types of timestamp columns -------------------------------- */

const char *cm_tstype_name(cm_tstype_t t) {
  switch (t) {
  case CM_TSTYPE_TIMESTAMP_MS: return "timestamp(0-3)";
  case CM_TSTYPE_TIMESTAMP_US: return "timestamp(4-6)";
  default: return "timestamptz";
  }
}

/* Skips white space. */
static const char *skip_ws(const char *s) {
  while (isspace((unsigned char)*s))
    s++;
  return s;
}

/* Matches @p word (lower case) at @p s, case-insensitively; moves *s. */
static int eat(const char **s, const char *word) {
  size_t n = strlen(word);

  if (strncasecmp(*s, word, n) != 0)
    return 0;
  *s += n;
  return 1;
}

/*
 * timestamptz[(P)], timestamp[(P)] [with|without time zone]: the spellings
 * PostgreSQL's own catalog and Prisma's migrations use.
 */
static int parse_tstype(const char *s, cm_tstype_t *out) {
  int tz = 0, prec = 6;

  s = skip_ws(s);
  if (eat(&s, "timestamptz"))
    tz = 1;
  else if (!eat(&s, "timestamp"))
    return -1;
  s = skip_ws(s);
  if (*s == '(') {
    s = skip_ws(s + 1);
    if (*s < '0' || *s > '6')
      return -1;
    prec = *s - '0';
    s = skip_ws(s + 1);
    if (*s++ != ')')
      return -1;
    s = skip_ws(s);
  }
  if (!tz && eat(&s, "with time zone"))
    tz = 1;
  else if (!tz)
    eat(&s, "without time zone");
  if (*skip_ws(s) != '\0')
    return -1;
  *out = tz ? CM_TSTYPE_TIMESTAMPTZ
            : (prec <= 3 ? CM_TSTYPE_TIMESTAMP_MS : CM_TSTYPE_TIMESTAMP_US);
  return 0;
}

/* Sets column @p col ("*": every timestamp column) of @p t to @p type. */
static int set_tstype(cm_coltypes_t *out, cm_table_t t, const char *col,
                      cm_tstype_t type) {
  const cm_column_t *cols;
  int i, n, hit = 0;

  cols = cm_table_columns(t, &n);
  for (i = 0; i < n; i++) {
    if (strcmp(col, "*") != 0 && strcmp(col, cols[i].name) != 0)
      continue;
    if (cols[i].type != CM_COL_TIMESTAMP) {
      if (strcmp(col, "*") != 0)
        return -2;
      continue;
    }
    out->ts[t][i] = (unsigned char)type;
    hit = 1;
  }
  return hit || strcmp(col, "*") == 0 ? 0 : -1;
}

/* One TABLE.COLUMN=TYPE item, white space trimmed. */
static int parse_item(char *item, cm_coltypes_t *out, char *errstr,
                      size_t errstr_size) {
  char *eq = strchr(item, '='), *dot, *col, *end;
  cm_tstype_t type;
  int t, rc = 0, any = 0, named = 0;

  end = item + strlen(item);
  while (end > item && isspace((unsigned char)end[-1]))
    *--end = '\0';
  dot = eq != NULL ? memchr(item, '.', (size_t)(eq - item)) : NULL;
  if (eq == NULL || dot == NULL) {
    snprintf(errstr, errstr_size,
             "\"%s\": expected TABLE.COLUMN=TYPE (e.g. "
             "Appointment.startsAt=timestamp(3))",
             item);
    return -1;
  }
  *eq = '\0';
  *dot = '\0';
  col = dot + 1;
  if (parse_tstype(eq + 1, &type) != 0) {
    snprintf(errstr, errstr_size,
             "%s.%s: expected timestamptz, timestamp or timestamp(0) to "
             "timestamp(6) as the type",
             item, col);
    return -1;
  }
  /* with TABLE "*", a named column is set in the tables that have it */
  for (t = CM_TABLE_NONE + 1; t < CM_TABLE__CNT && rc != -2; t++) {
    if (strcmp(item, "*") != 0 && strcmp(item, cm_table_name(t)) != 0)
      continue;
    rc = set_tstype(out, (cm_table_t)t, col, type);
    any |= rc == 0;
    named = 1;
  }
  if (!named)
    snprintf(errstr, errstr_size, "%s: not a legacy table", item);
  else if (rc == -2)
    snprintf(errstr, errstr_size, "%s.%s: not a timestamp column", item, col);
  else if (!any)
    snprintf(errstr, errstr_size, "%s.%s: no such column", item, col);
  return any && rc != -2 ? 0 : -1;
}

int cm_coltypes_parse(const char *spec, cm_coltypes_t *out, char *errstr,
                      size_t errstr_size) {
  char *copy, *item, *next;
  int rc = 0;

  memset(out, 0, sizeof(*out));
  copy = strdup(spec != NULL ? spec : "");
  if (copy == NULL) {
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
  }
  for (item = copy; rc == 0 && item != NULL; item = next) {
    next = strchr(item, ',');
    if (next != NULL)
      *next++ = '\0';
    item = (char *)skip_ws(item);
    if (*item != '\0')
      rc = parse_item(item, out, errstr, errstr_size);
  }
  free(copy);
  return rc;
}
