/*
 * emit_avro.c — db mode's values in Avro (--output-format avro).
 *
 * NOTES
 * The replay topic has one value schema, schemas/replay.avsc, compiled
 * into the binary (cm_avsc()), registered under the topic-name subject
 * strategy as `<topic-replay>-value` (docs/design.md §3,
 * tools/replay/README.md, "Avro"). It is registered when the writer is
 * made, before the database is read, so that a registry that cannot be
 * reached or refuses the schema ends the run before anything is sent.
 *
 * Values are filled into one Avro C generic value, reused for every
 * message, straight from the text PostgreSQL gave for each column (db.c
 * selects dates as days and timestamps as ISO text, as for JSON): an
 * integer column is parsed with strtoll, so an int8 id stays exact, and
 * nothing goes through JSON or a double. The envelope's `after` is the
 * union branch of the table's `Value` record, found once by its
 * namespace; a nullable column's union takes its null branch for NULL,
 * its other branch else. The key is written by emit.c, as JSON.
 *
 * Reasons name tables, columns and ids, never a value.
 */
#include "replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "clinicmig/cm_avro_out.h"
#include "clinicmig/cm_err.h"
#include "clinicmig/cm_schemas.h"

#ifndef RP_VERSION
#define RP_VERSION "0"
#endif

#define SCHEMA_NAME "replay"
#define SUBJECT_MAX 512

struct rp_avro_s {
  cm_schemas_t *schemas;
  cm_avro_out_t *out;
  avro_value_iface_t *iface;
  avro_value_t val;
  int has_val;
  int after_branch[CM_TABLE__CNT]; /* -1: no Value record for the table */
};

/* ---- the writer ---------------------------------------------------------- */

/* The branch of the `after` union that is @p table's Value record. */
static int value_branch(avro_schema_t env, cm_table_t table) {
  avro_schema_t u = avro_schema_record_field_get(env, "after"), b;
  char ns[64];
  size_t i;

  snprintf(ns, sizeof(ns), "clinicmig.replay.%s", cm_table_name(table));
  if (!u || avro_typeof(u) != AVRO_UNION)
    return -1;
  for (i = 0; i < avro_schema_union_size(u); i++) {
    b = avro_schema_union_branch(u, (int)i);
    if (avro_typeof(b) == AVRO_LINK)
      b = avro_schema_link_target(b);
    if (avro_typeof(b) == AVRO_RECORD && avro_schema_namespace(b) &&
        strcmp(avro_schema_namespace(b), ns) == 0)
      return (int)i;
  }
  return -1;
}

rp_avro_t *rp_avro_new(const rp_opts_t *o, int *err, char *errstr,
                       size_t errstr_size) {
  cm_schemas_conf_t sc = {o->registry_url, o->registry_auth, o->registry_ca,
                          NULL, 0};
  const char *text = cm_avsc(SCHEMA_NAME);
  rp_avro_t *a = calloc(1, sizeof(*a));
  char subject[SUBJECT_MAX], why[512];
  avro_schema_t env;
  int32_t id;
  int t;

  *err = CM_ERR_NOMEM;
  if (!a || !text) {
    snprintf(errstr, errstr_size, "%s",
             a ? "schemas/replay.avsc is not compiled in" : "out of memory");
    goto fail;
  }
  *err = CM_ERR_CONFIG;
  a->schemas = cm_schemas_new(&sc, why, sizeof(why));
  if (!a->schemas) {
    snprintf(errstr, errstr_size, "--schema-registry-url: %s", why);
    goto fail;
  }
  snprintf(subject, sizeof(subject), "%s-value", o->topic_replay);
  *err = cm_schemas_register(a->schemas, subject, text, &id, why, sizeof(why));
  if (*err != 0) {
    snprintf(errstr, errstr_size,
             "could not register schemas/replay.avsc%s%s: %s",
             strstr(why, subject) ? "" : " as subject ",
             strstr(why, subject) ? "" : subject, why);
    if (*err == CM_ERR_CONFIG)
      *err = CM_ERR_FATAL; /* the options were checked: a run-time failure */
    goto fail;
  }
  *err = CM_ERR_FATAL;
  a->out = cm_avro_out_new(a->schemas, o->topic_replay, text, why, sizeof(why));
  if (!a->out) {
    snprintf(errstr, errstr_size, "schemas/replay.avsc: %s", why);
    goto fail;
  }
  env = cm_avro_out_schema(a->out);
  for (t = 0; t < CM_TABLE__CNT; t++)
    a->after_branch[t] = value_branch(env, (cm_table_t)t);
  a->iface = avro_generic_class_from_schema(env);
  if (!a->iface || avro_generic_value_new(a->iface, &a->val) != 0) {
    snprintf(errstr, errstr_size, "schemas/replay.avsc: %s", avro_strerror());
    goto fail;
  }
  a->has_val = 1;
  *err = 0;
  return a;
fail:
  rp_avro_destroy(a);
  return NULL;
}

void rp_avro_destroy(rp_avro_t *a) {
  if (!a)
    return;
  if (a->has_val)
    avro_value_decref(&a->val);
  if (a->iface)
    avro_value_iface_decref(a->iface);
  cm_avro_out_destroy(a->out);
  cm_schemas_destroy(a->schemas);
  free(a);
}

/* ---- filling the value --------------------------------------------------- */

/*
 * The value to fill for field @p f: @p f itself, or the branch of its
 * union that is null (@p null) or not null (the first such).
 */
static int pick(avro_value_t *f, int null, avro_value_t *v) {
  avro_schema_t s = avro_value_get_schema(f);
  size_t i;
  int is_null;

  if (avro_typeof(s) != AVRO_UNION) {
    *v = *f;
    return null ? avro_value_set_null(v) : 0;
  }
  for (i = 0; i < avro_schema_union_size(s); i++) {
    is_null = avro_typeof(avro_schema_union_branch(s, (int)i)) == AVRO_NULL;
    if (is_null == (null != 0)) {
      if (avro_value_set_branch(f, (int)i, v) != 0)
        return -1;
      return null ? avro_value_set_null(v) : 0;
    }
  }
  return -1;
}

/* Field @p name of record @p rec, through pick(). */
static int field(avro_value_t *rec, const char *name, int null,
                 avro_value_t *v) {
  avro_value_t f;

  if (avro_value_get_by_name(rec, name, &f, NULL) != 0)
    return -1;
  return pick(&f, null, v);
}

static int put_str(avro_value_t *rec, const char *name, const char *s) {
  avro_value_t v;

  if (!s)
    return field(rec, name, 1, &v);
  return field(rec, name, 0, &v) != 0 ? -1 : avro_value_set_string(&v, s);
}

static int put_long(avro_value_t *rec, const char *name, int64_t i) {
  avro_value_t v;

  return field(rec, name, 0, &v) != 0 ? -1 : avro_value_set_long(&v, i);
}

static int put_null(avro_value_t *rec, const char *name) {
  avro_value_t v;

  return field(rec, name, 1, &v);
}

/* source, as emit.c writes it: a marker's has no txId and xmin (null). */
static int put_source(avro_value_t *env, const rp_snap_t *snap,
                      cm_table_t table) {
  avro_value_t src;

  if (avro_value_get_by_name(env, "source", &src, NULL) != 0)
    return -1;
  return put_str(&src, "version", RP_NAME " " RP_VERSION) ||
         put_str(&src, "connector", RP_NAME) ||
         put_str(&src, "name", snap->name) ||
         put_long(&src, "ts_ms", snap->ts_ms) ||
         put_str(&src, "snapshot", "true") || put_str(&src, "db", snap->db) ||
         put_str(&src, "schema", snap->schema) ||
         put_str(&src, "table", cm_table_name(table)) ||
         put_null(&src, "txId") || put_long(&src, "lsn", snap->lsn) ||
         put_null(&src, "xmin") ||
         put_str(&src, "txid_snapshot", snap->txid_snapshot);
}

/* op, ts_ms and source: what rows and markers share. */
static int put_envelope(avro_value_t *env, const rp_snap_t *snap,
                        cm_table_t table, const char *op) {
  return put_str(env, "op", op) || put_long(env, "ts_ms", rp_wall_ms()) ||
         put_source(env, snap, table);
}

/* A whole number from PostgreSQL's text; -1 if it is not one. */
static int text_i64(const char *s, int64_t *v) {
  char *end;

  errno = 0;
  *v = strtoll(s, &end, 10);
  return errno != 0 || end == s || *end != '\0' ? -1 : 0;
}

/* One column of the row into its field of the Value record. */
static int put_column(avro_value_t *rec, const cm_column_t *col,
                      const PGresult *res, int row, int i) {
  const char *s = PQgetvalue(res, row, i);
  avro_value_t v;
  int64_t n;

  if (PQgetisnull(res, row, i))
    return field(rec, col->name, 1, &v);
  if (field(rec, col->name, 0, &v) != 0)
    return -1;
  switch (col->type) {
  case CM_COL_INT: return text_i64(s, &n) ? -1 : avro_value_set_long(&v, n);
  case CM_COL_DATE:
    return text_i64(s, &n) || n < INT32_MIN || n > INT32_MAX
               ? -1
               : avro_value_set_int(&v, (int32_t)n);
  case CM_COL_BOOL: return avro_value_set_boolean(&v, s[0] == 't');
  case CM_COL_TEXT:
  case CM_COL_TIMESTAMP: return avro_value_set_string(&v, s);
  }
  return -1;
}

static int encode(rp_avro_t *a, void **out, size_t *out_len, char *errstr,
                  size_t errstr_size) {
  char why[512];
  int rc =
      cm_avro_out_encode_value(a->out, &a->val, out, out_len, why, sizeof(why));

  if (rc != 0)
    snprintf(errstr, errstr_size, "could not write a message in Avro: %s", why);
  return rc;
}

int rp_avro_row(rp_avro_t *a, const rp_snap_t *snap, cm_table_t table,
                const PGresult *res, int row, void **out, size_t *out_len,
                char *errstr, size_t errstr_size) {
  const cm_column_t *cols;
  avro_value_t after, rec;
  int i, n, bad = -1;

  avro_value_reset(&a->val);
  cols = cm_table_columns(table, &n);
  if (a->after_branch[table] < 0 ||
      avro_value_get_by_name(&a->val, "after", &after, NULL) != 0 ||
      avro_value_set_branch(&after, a->after_branch[table], &rec) != 0 ||
      put_null(&a->val, "before") || put_null(&a->val, "range") ||
      put_envelope(&a->val, snap, table, "r"))
    goto fail;
  for (i = 0; i < n; i++)
    if (put_column(&rec, &cols[i], res, row, i) != 0) {
      bad = i;
      goto fail;
    }
  return encode(a, out, out_len, errstr, errstr_size);
fail:
  snprintf(errstr, errstr_size, "%s id %s%s%s does not fit schemas/replay.avsc",
           cm_table_name(table), PQgetvalue(res, row, 0),
           bad >= 0 ? ": column " : "", bad >= 0 ? cols[bad].name : "");
  return CM_ERR_FATAL;
}

int rp_avro_marker(rp_avro_t *a, const rp_snap_t *snap, cm_table_t table,
                   int64_t first, int64_t last, const rp_runs_t *present,
                   void **out, size_t *out_len, char *errstr,
                   size_t errstr_size) {
  avro_value_t range, runs, run, v;
  int i, ok;

  avro_value_reset(&a->val);
  ok = !put_null(&a->val, "before") && !put_null(&a->val, "after") &&
       !put_envelope(&a->val, snap, table, "range") &&
       !field(&a->val, "range", 0, &range) &&
       !put_long(&range, "first", first) && !put_long(&range, "last", last) &&
       !avro_value_get_by_name(&range, "present", &runs, NULL);
  for (i = 0; ok && i < present->n; i++)
    ok = !avro_value_append(&runs, &run, NULL) &&
         !avro_value_append(&run, &v, NULL) &&
         !avro_value_set_long(&v, present->r[i][0]) &&
         !avro_value_append(&run, &v, NULL) &&
         !avro_value_set_long(&v, present->r[i][1]);
  if (!ok) {
    snprintf(errstr, errstr_size,
             "the range marker of %s ids %" PRId64 " to %" PRId64
             " does not fit schemas/replay.avsc",
             cm_table_name(table), first, last);
    return CM_ERR_FATAL;
  }
  return encode(a, out, out_len, errstr, errstr_size);
}
