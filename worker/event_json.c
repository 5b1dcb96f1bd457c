/*
 * event_json.c — a decoded event as JSON, for people to read.
 *
 * NOTES
 * Used by clinicmig-decode to show an operator what the worker makes of a
 * message: the typed values exactly as decoded, not the message's text.
 * The output holds column values (PII included): it is for a local tool's
 * stdout, showing a message the operator can already read, never for logs.
 *
 * Shape: {"table", "op", "key", "lsn", "txId", "snapshot", "ts_ms",
 * "source_ts_ms", "before", "after"}. op is Debezium's letter, or
 * "tombstone" / "txmeta"; table is null when the event names none. key is
 * given for row changes (and for a tombstone whose key was read), lsn and
 * txId when the event has them, the times when not 0. Integers are printed
 * exactly (cJSON would print them through a double). In a row image,
 * absent columns are left out, dates are "YYYY-MM-DD", timestamps
 * "YYYY-MM-DDTHH:MM:SS.ffffffZ", and Debezium's unchanged-TOAST placeholder
 * is {"unavailable": true}.
 */
#include "clinicmig/cm_event.h"
#include "clinicmig/cm_value.h"

#include <inttypes.h>
#include <stdio.h>

/* An int64 as a raw JSON number, exact. */
static cJSON *exact_int(int64_t v) {
  char buf[24];

  snprintf(buf, sizeof(buf), "%" PRId64, v);
  return cJSON_CreateRaw(buf);
}

static cJSON *value_json(const cm_value_t *v) {
  char buf[48];
  cJSON *o;

  switch (v->kind) {
  case CM_VAL_NULL: return cJSON_CreateNull();
  case CM_VAL_INT: return exact_int(v->i);
  case CM_VAL_BOOL: return cJSON_CreateBool(v->i != 0);
  case CM_VAL_TEXT: return cJSON_CreateString(v->s != NULL ? v->s : "");
  case CM_VAL_DATE: cm_date_format(v->i, buf, sizeof(buf)); break;
  case CM_VAL_TIMESTAMP: cm_timestamp_format(v->i, buf, sizeof(buf)); break;
  case CM_VAL_UNAVAILABLE:
    o = cJSON_CreateObject();
    if (o != NULL && cJSON_AddTrueToObject(o, "unavailable") == NULL) {
      cJSON_Delete(o);
      o = NULL;
    }
    return o;
  default: return NULL;
  }
  return cJSON_CreateString(buf);
}

/* A row image, or null when the event has none. */
static cJSON *image_json(const cm_event_t *ev, int has,
                         const cm_value_t *vals) {
  const cm_column_t *cols;
  cJSON *img, *v;
  int i, n;

  if (!has)
    return cJSON_CreateNull();
  img = cJSON_CreateObject();
  cols = cm_table_columns(ev->table, &n);
  for (i = 0; img != NULL && i < n; i++) {
    if (vals[i].kind == CM_VAL_ABSENT)
      continue;
    v = value_json(&vals[i]);
    if (v == NULL || !cJSON_AddItemToObject(img, cols[i].name, v)) {
      cJSON_Delete(v);
      cJSON_Delete(img);
      img = NULL;
    }
  }
  return img;
}

static const char *op_name(cm_op_t op) {
  switch (op) {
  case CM_OP_CREATE: return "c";
  case CM_OP_UPDATE: return "u";
  case CM_OP_DELETE: return "d";
  case CM_OP_READ: return "r";
  case CM_OP_TRUNCATE: return "t";
  case CM_OP_MESSAGE: return "m";
  case CM_OP_TXMETA: return "txmeta";
  case CM_OP_TOMBSTONE: return "tombstone";
  case CM_OP_RANGE: return "range";
  case CM_OP_HEARTBEAT: return "heartbeat";
  }
  return "?";
}

static const char *snapshot_name(cm_snapshot_t s) {
  switch (s) {
  case CM_SNAP_FALSE: return "false";
  case CM_SNAP_TRUE: return "true";
  case CM_SNAP_FIRST: return "first";
  case CM_SNAP_LAST: return "last";
  case CM_SNAP_INCREMENTAL: return "incremental";
  case CM_SNAP_OTHER: return "other";
  }
  return "?";
}

/* Adds @p item (NULL: a failed create) to @p obj; 0 on failure. */
static int add(cJSON *obj, const char *name, cJSON *item) {
  if (item == NULL)
    return 0;
  if (!cJSON_AddItemToObject(obj, name, item)) {
    cJSON_Delete(item);
    return 0;
  }
  return 1;
}

static int is_row_op(cm_op_t op) {
  return op == CM_OP_CREATE || op == CM_OP_UPDATE || op == CM_OP_DELETE ||
         op == CM_OP_READ;
}

/* A range marker's range: first, last and the present runs. */
static cJSON *range_json(const cm_event_t *ev) {
  cJSON *r = cJSON_CreateObject(), *runs = cJSON_CreateArray(), *run;
  int ok = r != NULL && runs != NULL, i;

  for (i = 0; ok && i < ev->n_runs; i++) {
    run = cJSON_CreateArray();
    ok = run != NULL && cJSON_AddItemToArray(runs, run) &&
         cJSON_AddItemToArray(run, exact_int(ev->runs[2 * i])) &&
         cJSON_AddItemToArray(run, exact_int(ev->runs[2 * i + 1]));
  }
  ok = ok && add(r, "first", exact_int(ev->range_first)) &&
       add(r, "last", exact_int(ev->range_last));
  if (ok)
    return add(r, "present", runs) ? r : (cJSON_Delete(r), NULL);
  cJSON_Delete(runs);
  cJSON_Delete(r);
  return NULL;
}

cJSON *cm_event_to_json(const cm_event_t *ev) {
  char snap[256];
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL;

  if (ok)
    ok = add(o, "table",
             ev->table == CM_TABLE_NONE
                 ? cJSON_CreateNull()
                 : cJSON_CreateString(cm_table_name(ev->table)));
  ok = ok && add(o, "op", cJSON_CreateString(op_name(ev->op)));
  if (ok && (is_row_op(ev->op) || (ev->op == CM_OP_TOMBSTONE && ev->key)))
    ok = add(o, "key", exact_int(ev->key));
  if (ok && ev->has_lsn)
    ok = add(o, "lsn", exact_int(ev->lsn));
  if (ok && ev->has_tx_id)
    ok = add(o, "txId", exact_int(ev->tx_id));
  if (ok && ev->has_txsnap)
    ok = add(
        o, "txid_snapshot",
        cJSON_CreateString(cm_txsnap_format(&ev->txsnap, snap, sizeof(snap))));
  if (ok && ev->op == CM_OP_RANGE)
    ok = add(o, "range", range_json(ev));
  ok =
      ok && add(o, "snapshot", cJSON_CreateString(snapshot_name(ev->snapshot)));
  if (ok && ev->ts_ms != 0)
    ok = add(o, "ts_ms", exact_int(ev->ts_ms));
  if (ok && ev->source_ts_ms != 0)
    ok = add(o, "source_ts_ms", exact_int(ev->source_ts_ms));
  ok = ok && add(o, "before", image_json(ev, ev->has_before, ev->before));
  ok = ok && add(o, "after", image_json(ev, ev->has_after, ev->after));
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}
