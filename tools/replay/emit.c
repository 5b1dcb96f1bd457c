/*
 * emit.c — db mode's messages: snapshot rows and range markers as JSON
 *          (their keys are JSON in either output format; emit_avro.c
 *          writes the values in Avro).
 *
 * NOTES
 * The formats are those of tools/replay/README.md ("Output"), which the
 * worker reads: a row is Debezium's read event (op "r") as its JSON
 * converter writes it without schemas for PostgreSQL with
 * time.precision.mode=adaptive_time_microseconds; a range marker lists
 * the ids a chunk's id range holds. The JSON is written here, not built
 * with cJSON: numbers are copied as the digits PostgreSQL printed (cJSON
 * keeps doubles, which lose int8 ids past 2^53), and rows are written
 * straight into one reused buffer.
 *
 * db.c selects each column already in its wire form (a date as days since
 * the epoch, a timestamptz as ISO-8601 UTC text), so a value is only
 * quoted or copied here, by the column type of the table catalog
 * (cm_table_columns).
 */
#include "replay.h"

#include <stdlib.h>
#include <string.h>

#ifndef RP_VERSION
#define RP_VERSION "0"
#endif

int rp_runs_add(rp_runs_t *runs, int64_t id) {
  int64_t(*nr)[2];
  int cap;

  if (runs->n > 0) {
    if (id <= runs->r[runs->n - 1][1])
      return 0; /* a repeated id: already present */
    if (id == runs->r[runs->n - 1][1] + 1) {
      runs->r[runs->n - 1][1] = id;
      return 0;
    }
  }
  if (runs->n == runs->cap) {
    cap = runs->cap ? runs->cap * 2 : 64;
    nr = realloc(runs->r, (size_t)cap * sizeof(*nr));
    if (!nr)
      return -1;
    runs->r = nr;
    runs->cap = cap;
  }
  runs->r[runs->n][0] = runs->r[runs->n][1] = id;
  runs->n++;
  return 0;
}

void rp_runs_free(rp_runs_t *runs) {
  free(runs->r);
  memset(runs, 0, sizeof(*runs));
}

static void member(cm_text_t *b, const char *name) {
  cm_text_json(b, name);
  cm_text_add(b, ":", 1);
}

void rp_emit_source(cm_text_t *b, const rp_snap_t *snap, cm_table_t table,
                    int marker) {
  cm_text_reset(b);
  cm_text_str(b, "{\"version\":");
  cm_text_json(b, RP_NAME " " RP_VERSION);
  cm_text_str(b, ",\"connector\":\"" RP_NAME "\",\"name\":");
  cm_text_json(b, snap->name);
  cm_text_str(b, ",\"ts_ms\":");
  cm_text_i64(b, snap->ts_ms);
  cm_text_str(b, ",\"snapshot\":\"true\",\"db\":");
  cm_text_json(b, snap->db);
  cm_text_str(b, ",\"schema\":");
  cm_text_json(b, snap->schema);
  cm_text_str(b, ",\"table\":");
  cm_text_json(b, cm_table_name(table));
  if (!marker)
    cm_text_str(b, ",\"txId\":null");
  cm_text_str(b, ",\"lsn\":");
  cm_text_i64(b, snap->lsn);
  if (!marker)
    cm_text_str(b, ",\"xmin\":null");
  cm_text_str(b, ",\"txid_snapshot\":");
  cm_text_json(b, snap->txid_snapshot);
  cm_text_str(b, "}");
}

/* One column value, from the text db.c selected for it. */
static void value(cm_text_t *b, const cm_column_t *col, const PGresult *res,
                  int row, int i) {
  const char *v = PQgetvalue(res, row, i);

  if (PQgetisnull(res, row, i)) {
    cm_text_str(b, "null");
    return;
  }
  switch (col->type) {
  case CM_COL_INT:
  case CM_COL_DATE: cm_text_str(b, v); break; /* digits, as printed */
  case CM_COL_BOOL: cm_text_str(b, v[0] == 't' ? "true" : "false"); break;
  case CM_COL_TEXT:
  case CM_COL_TIMESTAMP: cm_text_json(b, v); break;
  }
}

void rp_emit_row_key(cm_text_t *key, const PGresult *res, int row) {
  cm_text_reset(key);
  cm_text_str(key, "{\"id\":");
  cm_text_str(key, PQgetvalue(res, row, 0));
  cm_text_str(key, "}");
}

void rp_emit_row(cm_text_t *key, cm_text_t *val, const char *source,
                 cm_table_t table, const PGresult *res, int row) {
  const cm_column_t *cols;
  int i, n;

  rp_emit_row_key(key, res, row);
  cols = cm_table_columns(table, &n);
  cm_text_reset(val);
  cm_text_str(val, "{\"before\":null,\"after\":{");
  for (i = 0; i < n; i++) {
    if (i > 0)
      cm_text_add(val, ",", 1);
    member(val, cols[i].name);
    value(val, &cols[i], res, row, i);
  }
  cm_text_str(val, "},\"source\":");
  cm_text_str(val, source);
  cm_text_str(val, ",\"op\":\"r\",\"ts_ms\":");
  cm_text_i64(val, rp_wall_ms());
  cm_text_str(val, "}");
}

static void bounds(cm_text_t *b, int64_t first, int64_t last) {
  cm_text_str(b, "\"first\":");
  cm_text_i64(b, first);
  cm_text_str(b, ",\"last\":");
  cm_text_i64(b, last);
}

void rp_emit_marker_key(cm_text_t *key, cm_table_t table, int64_t first,
                        int64_t last) {
  cm_text_reset(key);
  cm_text_str(key, "{\"table\":");
  cm_text_json(key, cm_table_name(table));
  cm_text_add(key, ",", 1);
  bounds(key, first, last);
  cm_text_str(key, "}");
}

void rp_emit_marker(cm_text_t *key, cm_text_t *val, const char *source,
                    cm_table_t table, int64_t first, int64_t last,
                    const rp_runs_t *present) {
  int i;

  rp_emit_marker_key(key, table, first, last);
  cm_text_reset(val);
  cm_text_str(val, "{\"op\":\"range\",\"source\":");
  cm_text_str(val, source);
  cm_text_str(val, ",\"range\":{");
  bounds(val, first, last);
  cm_text_str(val, ",\"present\":[");
  for (i = 0; i < present->n; i++) {
    cm_text_str(val, i ? ",[" : "[");
    cm_text_i64(val, present->r[i][0]);
    cm_text_add(val, ",", 1);
    cm_text_i64(val, present->r[i][1]);
    cm_text_add(val, "]", 1);
  }
  cm_text_str(val, "]},\"ts_ms\":");
  cm_text_i64(val, rp_wall_ms());
  cm_text_str(val, "}");
}
