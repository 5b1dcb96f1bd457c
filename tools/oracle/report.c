/*
 * report.c — the oracle's report, as text or as one JSON object.
 *
 * NOTES
 * Values are personal data (names, phones, emails, birth dates): the
 * report names tables, ids and columns only, unless the operator asks for
 * the values (show_values). Printed values are quoted and escaped, so that
 * a value cannot break a line of the report or pass for another.
 */
#include "oracle.h"

#include <inttypes.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *kind_name(or_kind_t kind) {
  switch (kind) {
  case OR_MISSING: return "missing";
  case OR_EXTRA: return "extra";
  default: return "differs";
  }
}

/* Prints a value quoted and escaped, or NULL. */
static void put_value(FILE *f, const char *v) {
  const unsigned char *p;

  if (!v) {
    fputs("NULL", f);
    return;
  }
  fputc('"', f);
  for (p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(f, "\\x%02x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

/* "    col: expected X, found Y" for each column of @p d worth showing. */
static void put_values(FILE *f, const or_table_t *t, const or_diff_t *d) {
  int c;

  for (c = 0; c < t->ncols; c++) {
    if (d->kind == OR_DIFFERS && !(d->cols & (1u << c)))
      continue;
    fprintf(f, "    %s:", t->cols[c]);
    if (d->want) {
      fputs(" expected ", f);
      put_value(f, d->want->val[c]);
    }
    if (d->got) {
      fputs(d->want ? ", found " : " found ", f);
      put_value(f, d->got->val[c]);
    }
    fputc('\n', f);
  }
}

/* "  table id N: missing" or "  table id N: a, b differ". */
static void put_diff(FILE *f, const or_table_t *t, const or_diff_t *d,
                     int show_values) {
  int c, n = 0;

  fprintf(f, "  %s id %" PRId64 ": ", t->name, d->id);
  if (d->kind != OR_DIFFERS) {
    fprintf(f, "%s\n", kind_name(d->kind));
  } else {
    for (c = 0; c < t->ncols; c++)
      if (d->cols & (1u << c))
        fprintf(f, "%s%s", n++ ? ", " : "", t->cols[c]);
    fputs(n > 1 ? " differ\n" : " differs\n", f);
  }
  if (show_values)
    put_values(f, t, d);
}

void or_report_text(FILE *f, const or_result_t res[OR_N_TABLES],
                    const or_settings_t *s) {
  const or_result_t *r;
  size_t total = or_total(res, OR_N_TABLES), shown, i;
  int t;

  for (t = 0; t < OR_N_TABLES; t++) {
    r = &res[t];
    fprintf(f,
            "%s: %zu expected, %zu found, %zu missing, %zu extra, "
            "%zu differing\n",
            r->table->name, r->expected, r->found, r->missing, r->extra,
            r->differing);
    for (i = 0; i < r->n_diff; i++)
      put_diff(f, r->table, &r->diff[i], s->show_values);
    shown = r->missing + r->extra + r->differing;
    if (shown > r->n_diff)
      fprintf(f, "  ... %zu more %s differences not shown (--max-diffs)\n",
              shown - r->n_diff, r->table->name);
  }
  if (total == 0)
    fputs("oracle: no difference\n", f);
  else
    fprintf(f, "oracle: %zu difference%s\n", total, total == 1 ? "" : "s");
}

/* ---- JSON ----------------------------------------------------------- */

/* {"col": value...} of the columns of @p d worth showing, from @p row. */
static cJSON *values_json(const or_table_t *t, const or_diff_t *d,
                          const or_row_t *row) {
  cJSON *o = cJSON_CreateObject(), *v;
  int c;

  for (c = 0; o && c < t->ncols; c++) {
    if (d->kind == OR_DIFFERS && !(d->cols & (1u << c)))
      continue;
    v = row->val[c] ? cJSON_CreateString(row->val[c]) : cJSON_CreateNull();
    if (!v || !cJSON_AddItemToObject(o, t->cols[c], v)) {
      cJSON_Delete(v);
      cJSON_Delete(o);
      return NULL;
    }
  }
  return o;
}

/* Adds @p item to @p o as @p name; frees it on failure. */
static int add(cJSON *o, const char *name, cJSON *item) {
  if (!item || !cJSON_AddItemToObject(o, name, item)) {
    cJSON_Delete(item);
    return -1;
  }
  return 0;
}

/* An id as a JSON number, exact at any size. */
static cJSON *id_json(int64_t id) {
  char buf[32];

  snprintf(buf, sizeof(buf), "%" PRId64, id);
  return cJSON_CreateRaw(buf);
}

static cJSON *diff_json(const or_table_t *t, const or_diff_t *d,
                        int show_values) {
  cJSON *o = cJSON_CreateObject(), *cols;
  int c, rc;

  if (!o)
    return NULL;
  rc = add(o, "id", id_json(d->id)) |
       add(o, "kind", cJSON_CreateString(kind_name(d->kind)));
  if (rc == 0 && d->kind == OR_DIFFERS) {
    cols = cJSON_CreateArray();
    for (c = 0; cols && c < t->ncols; c++)
      if ((d->cols & (1u << c)) &&
          !cJSON_AddItemToArray(cols, cJSON_CreateString(t->cols[c])))
        rc = -1;
    rc |= add(o, "columns", cols);
  }
  if (rc == 0 && show_values && d->want)
    rc = add(o, "expected", values_json(t, d, d->want));
  if (rc == 0 && show_values && d->got)
    rc = add(o, "found", values_json(t, d, d->got));
  if (rc != 0) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* Adds a count; @returns 0 or -1. */
static int add_count(cJSON *o, const char *name, size_t n) {
  return cJSON_AddNumberToObject(o, name, (double)n) ? 0 : -1;
}

static cJSON *table_json(const or_result_t *r, int show_values) {
  cJSON *o = cJSON_CreateObject(), *diffs = cJSON_CreateArray();
  size_t i, all = r->missing + r->extra + r->differing;
  int rc = o && diffs ? 0 : -1;

  for (i = 0; rc == 0 && i < r->n_diff; i++)
    if (!cJSON_AddItemToArray(diffs,
                              diff_json(r->table, &r->diff[i], show_values)))
      rc = -1;
  if (rc == 0)
    rc = (cJSON_AddStringToObject(o, "table", r->table->name) ? 0 : -1) |
         add_count(o, "expected", r->expected) |
         add_count(o, "found", r->found) | add_count(o, "missing", r->missing) |
         add_count(o, "extra", r->extra) |
         add_count(o, "differing", r->differing);
  if (rc == 0) {
    rc = add(o, "differences", diffs) |
         add_count(o, "not_shown", all - r->n_diff);
    diffs = NULL;
  }
  if (rc != 0) {
    cJSON_Delete(diffs);
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* The whole report as a cJSON tree, or NULL when out of memory. */
static cJSON *report_json(const or_result_t res[OR_N_TABLES],
                          const or_settings_t *s) {
  cJSON *o = cJSON_CreateObject(), *tables = cJSON_CreateArray();
  size_t total = or_total(res, OR_N_TABLES);
  int t, rc = o && tables ? 0 : -1;

  for (t = 0; rc == 0 && t < OR_N_TABLES; t++)
    if (!cJSON_AddItemToArray(tables, table_json(&res[t], s->show_values)))
      rc = -1;
  if (rc == 0) {
    rc = add(o, "legacy_schema", cJSON_CreateString(s->legacy_schema)) |
         add(o, "domain_schema", cJSON_CreateString(s->domain_schema)) |
         add(o, "phone_region", cJSON_CreateString(s->phone_region)) |
         add(o, "patients_match", cJSON_CreateString(s->patients_match)) |
         add(o, "tables", tables) | add_count(o, "differences", total) |
         add(o, "ok", cJSON_CreateBool(total == 0));
    tables = NULL;
  }
  if (rc != 0) {
    cJSON_Delete(tables);
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

int or_report_json(FILE *f, const or_result_t res[OR_N_TABLES],
                   const or_settings_t *s) {
  cJSON *o = report_json(res, s);
  char *text;

  if (!o)
    return -1;
  text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!text)
    return -1;
  fprintf(f, "%s\n", text);
  cJSON_free(text);
  return 0;
}
