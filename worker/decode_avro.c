/*
 * decode_avro.c — Debezium change events (Avro converter, Confluent wire
 *                 format) into cm_event_t.
 *
 * NOTES
 * A message is byte 0, a 4-byte big-endian schema id, then Avro binary
 * written with that schema (docs/design.md §1.2). The schema comes from
 * cm_schemas.h; the bytes are read here against it, field by field, and
 * the fields the event needs are taken by name: a column added to a legacy
 * table is skipped, a removed one is missing, and a missing column reads as
 * NULL if the catalog says it is nullable and is bad input if not, as in
 * the JSON decoder (decode.c). Values are checked against the catalog the
 * same way and fail with the same reasons, which never echo a value.
 *
 * The reader is our own and works on the message bytes in place: every
 * length is checked against the bytes that are left before anything is
 * read or allocated, nesting is bounded, and nothing but the event's own
 * strings is allocated. An array or map block may not claim more items
 * than there are bytes left (an array of nulls is the one shape this
 * refuses, and Debezium writes none). Avro C parses the schemas; it keeps
 * neither `connect.name` nor `logicalType`, so the unit of an integer
 * timestamp comes from cm_schema_semantic().
 *
 * The envelope's fields come in schema order: before, after, source, op.
 * The images are remembered where they start and read once source.table
 * has named the table. A record with neither op nor source is a row
 * flattened by ExtractNewRecordState (its metadata in "__" fields, read as
 * decode.c reads them) or, with ts_ms alone, Debezium's heartbeat.
 *
 * clinicmig-replay's own messages (schemas/replay.avsc, docs/design.md §3)
 * are read the same way: `source.txid_snapshot` (a string) orders a
 * snapshot row by visibility, and op "range" with the record `range`
 * {first, last, present: [[a, b], ...]} is a range marker. Both are
 * checked as decode.c checks their JSON, in the same order and with the
 * same reasons: the source first, then the range's bounds, then its runs;
 * a marker's `range` is remembered like an image and read last.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_schemas.h"
#include "clinicmig/cm_value.h"
#include "decode_int.h"

#define MAX_DEPTH 32

/* The bytes left to read. */
typedef struct cur_s {
  const unsigned char *p;
  size_t n;
} cur_t;

typedef enum av_kind_e {
  AV_NULL,
  AV_BOOL,
  AV_LONG,   /* int or long */
  AV_STR,    /* string or enum symbol: s, len (not NUL-terminated) */
  AV_RECORD, /* not read yet: the caller reads or skips it */
  AV_OTHER,  /* read and skipped */
} av_kind_t;

/* One value as read, after unions and links are resolved. */
typedef struct av_s {
  av_kind_t kind;
  int64_t i;
  const char *s;
  size_t len;
  avro_schema_t schema;
} av_t;

/* What decoding one Avro message needs to carry around. */
typedef struct adec_s {
  cm_schemas_t *schemas;
  const cm_decode_opts_t *opts;
  const char *topic;
  const cm_schema_t *sch; /* the value's writer schema */
  cm_event_t *ev;
  char *errstr;
  size_t errstr_size;
  char op[8];
  char table[64];
  int has_op, has_source;
  int64_t ts_ms;
  int has_ts_ms;
  cur_t img[2]; /* before, after: where each record starts */
  avro_schema_t img_schema[2];
  const char *txsnap; /* source.txid_snapshot, in the message bytes */
  size_t txsnap_len;
  int txsnap_kind;               /* TXSNAP_* */
  cur_t range;                   /* a marker's range: where the record starts */
  avro_schema_t range_rec;       /* NULL: no record there */
  int flat, heartbeat, txmeta;   /* a flattened row, a heartbeat, a
                                    BEGIN/END of transaction metadata */
  char status[8], txid[48];      /* the BEGIN/END's status and id */
  int deleted, has_del, bad_del; /* a flattened row's __deleted */
  cur_t flat_row;                /* where the flattened row starts */
  avro_schema_t flat_schema;
  char flat_name[160]; /* its record's full name */
} adec_t;

/* What source.txid_snapshot held. */
enum { TXSNAP_NONE = 0, TXSNAP_STR, TXSNAP_OTHER };

#define BAD(d, ...)                                                            \
  cm_fail((d)->errstr, (d)->errstr_size, CM_ERR_BAD_INPUT, __VA_ARGS__)

/* ---- the reader -------------------------------------------------------- */

static int skip_n(cur_t *c, size_t n) {
  if (n > c->n)
    return -1;
  c->p += n;
  c->n -= n;
  return 0;
}

/* A zig-zag varint of at most 10 bytes. */
static int rd_long(cur_t *c, int64_t *out) {
  uint64_t u = 0;
  unsigned char b;
  int shift = 0;

  do {
    if (c->n == 0 || shift > 63)
      return -1;
    b = *c->p++;
    c->n--;
    u |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
  return 0;
}

/* A length that the bytes left can hold. */
static int rd_len(cur_t *c, size_t *len) {
  int64_t v;

  if (rd_long(c, &v) != 0 || v < 0 || (uint64_t)v > c->n)
    return -1;
  *len = (size_t)v;
  return 0;
}

static int read_any(cur_t *c, avro_schema_t s, int depth, av_t *av);

static int skip_record(cur_t *c, avro_schema_t rec, int depth);

static int skip_value(cur_t *c, avro_schema_t s, int depth) {
  av_t av;

  if (read_any(c, s, depth, &av) != 0)
    return -1;
  return av.kind == AV_RECORD ? skip_record(c, av.schema, depth + 1) : 0;
}

static int skip_record(cur_t *c, avro_schema_t rec, int depth) {
  size_t i, n = avro_schema_record_size(rec);

  if (depth > MAX_DEPTH)
    return -1;
  for (i = 0; i < n; i++)
    if (skip_value(c, avro_schema_record_field_get_by_index(rec, (int)i),
                   depth) != 0)
      return -1;
  return 0;
}

/* The blocks of an array or map (a map's items are a string key and a
 * value). */
static int skip_blocks(cur_t *c, avro_schema_t item, int is_map, int depth) {
  int64_t cnt, bytes, k;
  size_t len;

  for (;;) {
    if (rd_long(c, &cnt) != 0)
      return -1;
    if (cnt == 0)
      return 0;
    if (cnt < 0 && (cnt == INT64_MIN || rd_long(c, &bytes) != 0))
      return -1;
    cnt = cnt < 0 ? -cnt : cnt;
    if ((uint64_t)cnt > c->n)
      return -1; /* see NOTES */
    for (k = 0; k < cnt; k++) {
      if (is_map && (rd_len(c, &len) != 0 || skip_n(c, len) != 0))
        return -1;
      if (skip_value(c, item, depth + 1) != 0)
        return -1;
    }
  }
}

static int read_enum(cur_t *c, avro_schema_t s, av_t *av) {
  int64_t v;

  if (rd_long(c, &v) != 0 || v < 0 ||
      v >= avro_schema_enum_number_of_symbols(s))
    return -1;
  av->s = avro_schema_enum_get(s, (int)v);
  if (av->s == NULL)
    return -1;
  av->kind = AV_STR;
  av->len = strlen(av->s);
  return 0;
}

static int read_scalar(cur_t *c, avro_schema_t s, av_t *av) {
  int64_t v;
  size_t len;

  switch (avro_typeof(s)) {
  case AVRO_NULL: av->kind = AV_NULL; return 0;
  case AVRO_BOOLEAN:
    if (c->n < 1 || *c->p > 1)
      return -1;
    av->kind = AV_BOOL;
    av->i = *c->p;
    return skip_n(c, 1);
  case AVRO_INT32:
    if (rd_long(c, &v) != 0 || v < INT32_MIN || v > INT32_MAX)
      return -1;
    av->kind = AV_LONG;
    av->i = v;
    return 0;
  case AVRO_INT64: av->kind = AV_LONG; return rd_long(c, &av->i);
  case AVRO_FLOAT: return skip_n(c, 4);
  case AVRO_DOUBLE: return skip_n(c, 8);
  case AVRO_STRING:
    if (rd_len(c, &len) != 0)
      return -1;
    av->kind = AV_STR;
    av->s = (const char *)c->p;
    av->len = len;
    return skip_n(c, len);
  case AVRO_BYTES: return rd_len(c, &len) != 0 ? -1 : skip_n(c, len);
  case AVRO_FIXED:
    return avro_schema_fixed_size(s) < 0
               ? -1
               : skip_n(c, (size_t)avro_schema_fixed_size(s));
  case AVRO_ENUM: return read_enum(c, s, av);
  default: return -1;
  }
}

/* Reads one value of schema @p s; a record is left for the caller. */
static int read_any(cur_t *c, avro_schema_t s, int depth, av_t *av) {
  int64_t v;

  if (depth > MAX_DEPTH || s == NULL)
    return -1;
  memset(av, 0, sizeof(*av));
  av->kind = AV_OTHER;
  av->schema = s;
  switch (avro_typeof(s)) {
  case AVRO_UNION:
    if (rd_long(c, &v) != 0 || v < 0 ||
        (uint64_t)v >= (uint64_t)avro_schema_union_size(s))
      return -1;
    return read_any(c, avro_schema_union_branch(s, (int)v), depth + 1, av);
  case AVRO_LINK: return read_any(c, avro_schema_link_target(s), depth + 1, av);
  case AVRO_RECORD: av->kind = AV_RECORD; return 0;
  case AVRO_ARRAY: return skip_blocks(c, avro_schema_array_items(s), 0, depth);
  case AVRO_MAP: return skip_blocks(c, avro_schema_map_values(s), 1, depth);
  default: return read_scalar(c, s, av);
  }
}

/* Copies a string value into @p buf; -1 if it does not fit or holds NUL. */
static int str_copy(const av_t *av, char *buf, size_t size) {
  if (av->kind != AV_STR || av->len >= size ||
      memchr(av->s, '\0', av->len) != NULL)
    return -1;
  memcpy(buf, av->s, av->len);
  buf[av->len] = '\0';
  return 0;
}

static int av_is(const av_t *av, const char *s) {
  return av->kind == AV_STR && av->len == strlen(s) &&
         memcmp(av->s, s, av->len) == 0;
}

/* ---- the wire format --------------------------------------------------- */

/* Checks the header and finds the writer schema of a key or value. */
static int wire_header(adec_t *d, const char *what, const void *msg, size_t len,
                       cur_t *c, const cm_schema_t **sch) {
  const unsigned char *p = msg;
  char why[256];
  int32_t id;
  int rc;

  if (len < 5)
    return BAD(d, "%s: Avro message shorter than its 5-byte header", what);
  id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                 ((uint32_t)p[3] << 8) | (uint32_t)p[4]);
  if (d->schemas == NULL)
    return BAD(d,
               "%s: Avro message (schema id %" PRId32 ") but no schema "
               "registry or directory is configured",
               what, id);
  why[0] = '\0';
  rc = cm_schemas_get(d->schemas, id, sch, why, sizeof(why));
  if (rc != CM_OK)
    return cm_fail(d->errstr, d->errstr_size, rc, "%s: %s", what, why);
  c->p = p + 5;
  c->n = len - 5;
  return CM_OK;
}

static int mismatch(adec_t *d, const char *what) {
  return BAD(d,
             "%s: Avro data does not match its writer schema (truncated "
             "or malformed)",
             what);
}

/* ---- the key ----------------------------------------------------------- */

/* The id of a key record, or of a key that is a bare integer. */
static int key_id(adec_t *d, cur_t *c, avro_schema_t s, int64_t *id) {
  int found = 0;
  size_t i, n;
  av_t av;

  if (read_any(c, s, 0, &av) != 0)
    return mismatch(d, "key");
  if (av.kind == AV_LONG) {
    *id = av.i;
    return CM_OK;
  }
  if (av.kind != AV_RECORD)
    return BAD(d, "key: not a record or integer");
  n = avro_schema_record_size(av.schema);
  for (i = 0; i < n; i++) {
    avro_schema_t f = avro_schema_record_field_get_by_index(av.schema, (int)i);
    int is_id =
        strcmp(avro_schema_record_field_name(av.schema, (int)i), "id") == 0;
    av_t fv;

    if (read_any(c, f, 1, &fv) != 0 ||
        (fv.kind == AV_RECORD && skip_record(c, fv.schema, 2) != 0))
      return mismatch(d, "key");
    if (is_id && fv.kind == AV_STR && cm_dec_int_text(fv.s, fv.len, &fv.i) == 0)
      fv.kind = AV_LONG; /* decimal text, see decode_int.h */
    if (is_id && fv.kind != AV_LONG)
      return BAD(d, "key.id: not an integer");
    if (is_id) {
      *id = fv.i;
      found = 1;
    }
  }
  return found ? CM_OK : BAD(d, "key: no id field");
}

int cm_dec_avro_key(cm_schemas_t *schemas, const void *key, size_t key_len,
                    int64_t *id, char *errstr, size_t errstr_size) {
  const cm_schema_t *sch;
  adec_t d;
  cur_t c;
  int rc;

  memset(&d, 0, sizeof(d));
  d.schemas = schemas;
  d.errstr = errstr;
  d.errstr_size = errstr_size;
  rc = wire_header(&d, "key", key, key_len, &c, &sch);
  if (rc == CM_OK)
    rc = key_id(&d, &c, cm_schema_avro(sch), id);
  if (rc == CM_OK && c.n != 0)
    rc = BAD(&d, "key: %zu trailing bytes after the Avro data", c.n);
  return rc;
}

/* ---- column values ----------------------------------------------------- */

static int col_text(adec_t *d, const av_t *av, const char *path,
                    cm_value_t *out) {
  if (av->kind != AV_STR)
    return BAD(d, "%s: not a string", path);
  if (memchr(av->s, '\0', av->len) != NULL)
    return BAD(d, "%s: string contains a NUL character", path);
  out->s = malloc(av->len + 1);
  if (out->s == NULL)
    return cm_fail(d->errstr, d->errstr_size, CM_ERR_NOMEM, "out of memory");
  memcpy(out->s, av->s, av->len);
  out->s[av->len] = '\0';
  if (!cm_dec_utf8_valid((const unsigned char *)out->s))
    return BAD(d, "%s: not valid UTF-8", path); /* freed with the event */
  out->kind = CM_VAL_TEXT;
  return CM_OK;
}

/* io.debezium.time.Date (int days), "YYYY-MM-DD" or IsoDate's text. */
static int col_date(adec_t *d, const av_t *av, const cm_column_t *col,
                    const char *path, cm_value_t *out) {
  char buf[24];

  if (av->kind == AV_STR) {
    if (str_copy(av, buf, sizeof(buf)) != 0 ||
        cm_dec_date_text(buf, &out->i) != 0)
      return BAD(d, "%s: not a valid date", path);
  } else if (av->kind != AV_LONG) {
    return BAD(d, "%s: not a valid date", path);
  } else if (cm_dec_date_int(d->opts, cm_schema_semantic(d->sch, col->name),
                             av->i, path, &out->i, d->errstr,
                             d->errstr_size) != CM_OK) {
    return CM_ERR_BAD_INPUT;
  }
  out->kind = CM_VAL_DATE;
  return CM_OK;
}

/* ISO-8601 text or an integer in the unit its schema names, or the
 * configuration (decode.c NOTES). */
static int col_ts(adec_t *d, const av_t *av, const cm_column_t *col, int ci,
                  const char *path, cm_value_t *out) {
  char buf[64];

  if (av->kind == AV_STR) {
    if (str_copy(av, buf, sizeof(buf)) != 0 ||
        cm_timestamp_parse(buf, &out->i) != 0)
      return BAD(d, "%s: not a valid timestamp", path);
  } else if (av->kind != AV_LONG) {
    return BAD(d, "%s: not a valid timestamp", path);
  } else if (cm_dec_ts_int(d->opts, d->ev->table, ci,
                           cm_schema_semantic(d->sch, col->name), av->i, path,
                           &out->i, d->errstr, d->errstr_size) != CM_OK) {
    return CM_ERR_BAD_INPUT;
  }
  out->kind = CM_VAL_TIMESTAMP;
  return CM_OK;
}

/* One value of column @p ci, checked against the catalog (as decode.c
 * does). */
static int col_value(adec_t *d, const av_t *av, const cm_column_t *col, int ci,
                     const char *path, int is_before, cm_value_t *out) {
  if (av->kind == AV_NULL) {
    if (!col->nullable && !is_before)
      return BAD(d, "%s: null in a not-null column", path);
    out->kind = CM_VAL_NULL;
    return CM_OK;
  }
  if (av_is(av, CM_DEBEZIUM_UNAVAILABLE)) {
    out->kind = CM_VAL_UNAVAILABLE;
    return CM_OK;
  }
  switch (col->type) {
  case CM_COL_INT:
    if (av->kind == AV_STR && cm_dec_int_text(av->s, av->len, &out->i) == 0) {
      out->kind = CM_VAL_INT; /* decimal.handling.mode=string */
      return CM_OK;
    }
    if (av->kind != AV_LONG)
      return BAD(d, "%s: not an integer", path);
    out->kind = CM_VAL_INT;
    out->i = av->i;
    return CM_OK;
  case CM_COL_BOOL:
    if (av->kind != AV_BOOL)
      return BAD(d, "%s: not a boolean", path);
    out->kind = CM_VAL_BOOL;
    out->i = av->i;
    return CM_OK;
  case CM_COL_TEXT: return col_text(d, av, path, out);
  case CM_COL_DATE: return col_date(d, av, col, path, out);
  case CM_COL_TIMESTAMP: return col_ts(d, av, col, ci, path, out);
  }
  return BAD(d, "%s: unknown column type", path);
}

static int find_col(const cm_column_t *cols, int n, const char *name) {
  int i;

  for (i = 0; i < n; i++)
    if (strcmp(cols[i].name, name) == 0)
      return i;
  return -1;
}

/* A column the writer did not send: NULL if nullable, absent in before. */
static int col_missing(adec_t *d, const cm_column_t *col, const char *which,
                       cm_value_t *out) {
  if (strcmp(which, "before") == 0)
    return CM_OK;
  if (!col->nullable)
    return BAD(d, "%s.%s: missing required column", which, col->name);
  out->kind = CM_VAL_NULL;
  return CM_OK;
}

/* Row image @p w (0: before, 1: after), from where it was remembered. */
static int read_image(adec_t *d, int w, cm_value_t *vals) {
  const char *which = w ? "after" : "before";
  avro_schema_t rec = d->img_schema[w];
  int seen[CM_MAX_COLS] = {0};
  const cm_column_t *cols;
  cur_t c = d->img[w];
  size_t i, nf = avro_schema_record_size(rec);
  char path[96];
  int k, n, rc;
  av_t av;

  cols = cm_table_columns(d->ev->table, &n);
  for (i = 0; i < nf; i++) {
    k = find_col(cols, n, avro_schema_record_field_name(rec, (int)i));
    if (read_any(&c, avro_schema_record_field_get_by_index(rec, (int)i), 1,
                 &av) != 0 ||
        (av.kind == AV_RECORD && skip_record(&c, av.schema, 2) != 0))
      return mismatch(d, which);
    if (k < 0)
      continue; /* a column the catalog does not know: ignored */
    snprintf(path, sizeof(path), "%s.%s", which, cols[k].name);
    seen[k] = 1;
    rc = col_value(d, &av, &cols[k], k, path, !w, &vals[k]);
    if (rc != CM_OK)
      return rc;
  }
  for (k = 0; k < n; k++) {
    rc = seen[k] ? CM_OK : col_missing(d, &cols[k], which, &vals[k]);
    if (rc != CM_OK)
      return rc;
  }
  return CM_OK;
}

/* ---- source and envelope ----------------------------------------------- */

/* An LSN (@p is_lsn) or a txId: a long, or text as decode.c reads it. */
static int position_value(adec_t *d, const av_t *av, int is_lsn,
                          const char *what, int *has, int64_t *out) {
  int64_t v = av->i;
  int ok = av->kind == AV_LONG;

  if (av->kind == AV_NULL)
    return CM_OK;
  if (av->kind == AV_STR)
    ok = (is_lsn ? cm_dec_lsn_text(av->s, av->len, &v)
                 : cm_dec_int_text(av->s, av->len, &v)) == 0;
  if (!ok || (is_lsn && v < 0))
    return BAD(d,
               is_lsn ? "%s: not a non-negative integer" : "%s: not an integer",
               what);
  *has = 1;
  *out = v;
  return CM_OK;
}

static int source_field(adec_t *d, const char *name, const av_t *av) {
  cm_event_t *ev = d->ev;
  char buf[40];
  int rc = CM_OK;

  if (strcmp(name, "table") == 0 && av->kind != AV_NULL &&
      str_copy(av, d->table, sizeof(d->table)) != 0)
    return BAD(d, "source.table: missing or not a string");
  if (strcmp(name, "lsn") == 0)
    rc = position_value(d, av, 1, "source.lsn", &ev->has_lsn, &ev->lsn);
  if (strcmp(name, "txId") == 0)
    rc = position_value(d, av, 0, "source.txId", &ev->has_tx_id, &ev->tx_id);
  if (rc != CM_OK)
    return rc;
  if (strcmp(name, "ts_ms") == 0 && av->kind == AV_LONG)
    ev->source_ts_ms = av->i;
  if (strcmp(name, "txid_snapshot") == 0) {
    d->txsnap_kind = av->kind == AV_NULL  ? TXSNAP_NONE
                     : av->kind == AV_STR ? TXSNAP_STR
                                          : TXSNAP_OTHER;
    d->txsnap = av->s;
    d->txsnap_len = av->len;
  }
  if (strcmp(name, "snapshot") == 0 && av->kind == AV_BOOL)
    ev->snapshot = av->i ? CM_SNAP_TRUE : CM_SNAP_FALSE;
  if (strcmp(name, "snapshot") == 0 && av->kind == AV_STR)
    ev->snapshot = str_copy(av, buf, sizeof(buf)) == 0 ? cm_dec_snapshot(buf)
                                                       : CM_SNAP_OTHER;
  return CM_OK;
}

static int read_source(adec_t *d, cur_t *c, avro_schema_t rec) {
  size_t i, n = avro_schema_record_size(rec);
  const char *name;
  int rc;
  av_t av;

  for (i = 0; i < n; i++) {
    name = avro_schema_record_field_name(rec, (int)i);
    if (read_any(c, avro_schema_record_field_get_by_index(rec, (int)i), 1,
                 &av) != 0 ||
        (av.kind == AV_RECORD && skip_record(c, av.schema, 2) != 0))
      return mismatch(d, "source");
    rc = source_field(d, name, &av);
    if (rc != CM_OK)
      return rc;
  }
  d->has_source = 1;
  return CM_OK;
}

/* before/after: remembered, read once the table is known. */
static int envelope_image(adec_t *d, cur_t *c, int w, const av_t *av) {
  if (av->kind == AV_NULL)
    return CM_OK;
  if (av->kind != AV_RECORD)
    return BAD(d, "%s: not a record or null", w ? "after" : "before");
  d->img[w] = *c;
  d->img_schema[w] = av->schema;
  return skip_record(c, av->schema, 1) != 0
             ? mismatch(d, w ? "after" : "before")
             : CM_OK;
}

static int envelope_field(adec_t *d, cur_t *c, const char *name,
                          const av_t *av) {
  if (strcmp(name, "before") == 0 || strcmp(name, "after") == 0)
    return envelope_image(d, c, name[0] == 'a', av);
  if (strcmp(name, "source") == 0)
    return av->kind == AV_RECORD ? read_source(d, c, av->schema)
                                 : BAD(d, "source: missing or not an object");
  if (strcmp(name, "op") == 0) {
    if (av->kind != AV_STR)
      return BAD(d, "op: not a string");
    d->has_op = 1;
    if (str_copy(av, d->op, sizeof(d->op)) != 0)
      d->op[0] = '\0';
    return CM_OK;
  }
  if (strcmp(name, "ts_ms") == 0 && av->kind == AV_LONG) {
    d->ts_ms = av->i;
    d->has_ts_ms = 1;
  }
  if (strcmp(name, "range") == 0 && av->kind == AV_RECORD) {
    d->range = *c;
    d->range_rec = av->schema;
  }
  if (av->kind == AV_RECORD && skip_record(c, av->schema, 1) != 0)
    return mismatch(d, "value");
  return CM_OK;
}

/* ---- flattened rows and heartbeats -------------------------------------- */

static int has_field(avro_schema_t rec, const char *name) {
  size_t i, n = avro_schema_record_size(rec);

  for (i = 0; i < n; i++)
    if (strcmp(avro_schema_record_field_name(rec, (int)i), name) == 0)
      return 1;
  return 0;
}

/* A record without op and source: transaction metadata (status, id,
 * event_count, ...), a heartbeat ({ts_ms}) or a flattened row, remembered
 * where its fields start. */
static void flat_begin(adec_t *d, const cur_t *c, avro_schema_t rec) {
  const char *ns = avro_schema_namespace(rec);

  d->txmeta = has_field(rec, "status") && has_field(rec, "id") &&
              has_field(rec, "event_count");
  d->heartbeat = !d->txmeta && avro_schema_record_size(rec) == 1 &&
                 has_field(rec, "ts_ms");
  d->flat = !d->txmeta && !d->heartbeat;
  d->flat_row = *c;
  d->flat_schema = rec;
  snprintf(d->flat_name, sizeof(d->flat_name), "%s%s%s", ns ? ns : "",
           ns && *ns ? "." : "", avro_schema_name(rec));
}

/* One field of a flattened row: its "__" metadata, as decode.c reads them
 * ("__NAME" or "__source_NAME"); the columns are read later. */
static int flat_field(adec_t *d, cur_t *c, const char *name, const av_t *av) {
  cm_event_t *ev = d->ev;
  const char *m = name + 2;
  char buf[40];

  if (av->kind == AV_RECORD && skip_record(c, av->schema, 1) != 0)
    return mismatch(d, "value");
  if ((d->heartbeat || d->txmeta) && strcmp(name, "ts_ms") == 0 &&
      av->kind == AV_LONG)
    ev->ts_ms = av->i;
  if (d->txmeta && strcmp(name, "status") == 0 &&
      str_copy(av, d->status, sizeof(d->status)) != 0)
    d->status[0] = '\0';
  if (d->txmeta && strcmp(name, "id") == 0 &&
      str_copy(av, d->txid, sizeof(d->txid)) != 0)
    d->txid[0] = '\0';
  if (strncmp(name, "__", 2) != 0 || av->kind == AV_NULL)
    return CM_OK;
  if (strcmp(m, "source_ts_ms") == 0 && av->kind == AV_LONG)
    ev->source_ts_ms = av->i;
  if (strcmp(m, "ts_ms") == 0 && av->kind == AV_LONG)
    ev->ts_ms = av->i;
  if (strncmp(m, "source_", 7) == 0)
    m += 7;
  if (strcmp(m, "deleted") == 0) {
    d->has_del = 1;
    d->deleted = (av->kind == AV_BOOL && av->i) || av_is(av, "true");
    d->bad_del =
        av->kind != AV_BOOL && !av_is(av, "true") && !av_is(av, "false");
  } else if (strcmp(m, "op") == 0) {
    if (av->kind != AV_STR)
      return BAD(d, "__op: not a string");
    d->has_op = 1;
    if (str_copy(av, d->op, sizeof(d->op)) != 0)
      d->op[0] = '\0';
  } else if (strcmp(m, "lsn") == 0) {
    return position_value(d, av, 1, "__lsn", &ev->has_lsn, &ev->lsn);
  } else if (strcmp(m, "txId") == 0) {
    return position_value(d, av, 0, "__txId", &ev->has_tx_id, &ev->tx_id);
  } else if (strcmp(m, "table") == 0) {
    if (str_copy(av, d->table, sizeof(d->table)) != 0)
      return BAD(d, "__table: not a string");
  } else if (strcmp(m, "snapshot") == 0 && av->kind == AV_BOOL) {
    ev->snapshot = av->i ? CM_SNAP_TRUE : CM_SNAP_FALSE;
  } else if (strcmp(m, "snapshot") == 0 && av->kind == AV_STR) {
    ev->snapshot = str_copy(av, buf, sizeof(buf)) == 0 ? cm_dec_snapshot(buf)
                                                       : CM_SNAP_OTHER;
  }
  return CM_OK;
}

/* The op, position and table of a flattened row, checked as decode.c
 * checks them; its image is the before of a delete, else the after. */
static int check_flat(adec_t *d) {
  cm_event_t *ev = d->ev;
  char buf[64], shown[48];
  const char *tn;
  int w;

  if (d->heartbeat) {
    ev->op = CM_OP_HEARTBEAT;
    return CM_OK;
  }
  if (d->txmeta) {
    /* as decode.c: BEGIN or END, the id "<txId>:<lsn>" */
    if (strcmp(d->status, "BEGIN") != 0 && strcmp(d->status, "END") != 0)
      return BAD(d, "op: missing");
    ev->op = CM_OP_TXMETA;
    tn = strchr(d->txid, ':');
    if (cm_dec_int_text(d->txid,
                        tn != NULL ? (size_t)(tn - d->txid) : strlen(d->txid),
                        &ev->tx_id) == 0)
      ev->has_tx_id = 1;
    return CM_OK;
  }
  if (d->bad_del)
    return BAD(d, "__deleted: not \"true\" or \"false\"");
  ev->op = d->deleted ? CM_OP_DELETE : CM_OP_UPDATE;
  if (d->has_op) {
    ev->op = cm_dec_op(d->op);
    if (ev->op != CM_OP_CREATE && ev->op != CM_OP_UPDATE &&
        ev->op != CM_OP_DELETE && ev->op != CM_OP_READ)
      return BAD(d, "__op: \"%s\" is not c, u, d or r",
                 cm_dec_printable(d->op, shown, sizeof(shown)));
    if (d->has_del && (ev->op == CM_OP_DELETE) != d->deleted)
      return BAD(d, "__op and __deleted disagree");
  }
  if (!ev->has_lsn)
    return ev->snapshot == CM_SNAP_INCREMENTAL
               ? cm_dec_no_lsn(ev, d->errstr, d->errstr_size)
               : BAD(d, "%s", CM_DEC_FLAT_NO_LSN);
  tn = d->table[0] != '\0'
           ? d->table
           : cm_dec_flat_table_name(d->flat_name, d->topic, buf, sizeof(buf));
  ev->table = cm_table_from_name(tn);
  if (ev->table == CM_TABLE_NONE)
    return BAD(d, "unknown table \"%s\"",
               cm_dec_printable(tn, shown, sizeof(shown)));
  w = ev->op != CM_OP_DELETE;
  d->img[w] = d->flat_row;
  d->img_schema[w] = d->flat_schema;
  return CM_OK;
}

static int read_envelope(adec_t *d, cur_t *c) {
  avro_schema_t rec = cm_schema_avro(d->sch);
  const char *name;
  size_t i, n;
  int rc;
  av_t av;

  if (read_any(c, rec, 0, &av) != 0 || av.kind != AV_RECORD)
    return BAD(d, "value: the writer schema is not a record");
  rec = av.schema;
  if (!has_field(rec, "op") && !has_field(rec, "source"))
    flat_begin(d, c, rec);
  n = avro_schema_record_size(rec);
  for (i = 0; i < n; i++) {
    if (read_any(c, avro_schema_record_field_get_by_index(rec, (int)i), 1,
                 &av) != 0)
      return mismatch(d, "value");
    name = avro_schema_record_field_name(rec, (int)i);
    rc = d->flat || d->heartbeat || d->txmeta ? flat_field(d, c, name, &av)
                                              : envelope_field(d, c, name, &av);
    if (rc != CM_OK)
      return rc;
  }
  if (c->n != 0)
    return BAD(d, "value: %zu trailing bytes after the Avro data", c->n);
  return CM_OK;
}

/* source.txid_snapshot: the snapshot a clinicmig-replay row was read in. */
static int check_txsnap(adec_t *d) {
  char *text;
  int rc;

  if (d->txsnap_kind == TXSNAP_NONE)
    return CM_OK;
  if (d->txsnap_kind != TXSNAP_STR)
    return BAD(d, "source.txid_snapshot: not a string");
  text = malloc(d->txsnap_len + 1);
  if (text == NULL)
    return cm_fail(d->errstr, d->errstr_size, CM_ERR_NOMEM, "out of memory");
  memcpy(text, d->txsnap, d->txsnap_len);
  text[d->txsnap_len] = '\0';
  rc = memchr(d->txsnap, '\0', d->txsnap_len) != NULL
           ? -1
           : cm_txsnap_parse(text, &d->ev->txsnap);
  free(text);
  if (rc == CM_ERR_NOMEM)
    return cm_fail(d->errstr, d->errstr_size, rc, "out of memory");
  if (rc != 0)
    return BAD(d, "source.txid_snapshot: not a snapshot (xmin:xmax:xip,...)");
  d->ev->has_txsnap = 1;
  return CM_OK;
}

/* op, source.txid_snapshot, source.lsn and source.table, checked as
 * decode.c checks them. A marker's ts_ms is not taken, as there. */
static int check_envelope(adec_t *d) {
  cm_event_t *ev = d->ev;
  char buf[48];
  int rc;

  if (!d->has_op)
    return BAD(d, "op: missing");
  ev->op = strcmp(d->op, "range") == 0 ? CM_OP_RANGE : cm_dec_op(d->op);
  if (ev->op == 0)
    return BAD(d, "unknown op \"%s\"",
               cm_dec_printable(d->op, buf, sizeof(buf)));
  if (ev->op != CM_OP_RANGE && d->has_ts_ms)
    ev->ts_ms = d->ts_ms;
  if (!d->has_source)
    return BAD(d, "source: missing or not an object");
  rc = check_txsnap(d);
  if (rc != CM_OK || ev->op == CM_OP_MESSAGE)
    return rc;
  if (!ev->has_lsn && !ev->has_txsnap && ev->op != CM_OP_TRUNCATE)
    return cm_dec_no_lsn(ev, d->errstr, d->errstr_size);
  if (d->table[0] == '\0')
    return BAD(d, "source.table: missing or not a string");
  ev->table = cm_table_from_name(d->table);
  if (ev->table == CM_TABLE_NONE)
    return BAD(d, "unknown table \"%s\"",
               cm_dec_printable(d->table, buf, sizeof(buf)));
  return CM_OK;
}

/* A row image's id must be the key's: both name the same row. */
static int check_id(adec_t *d, const char *which, const cm_value_t *id) {
  if (id->kind != CM_VAL_INT || id->i == d->ev->key)
    return CM_OK;
  return BAD(d, "%s.id: %" PRId64 " does not match the key %" PRId64, which,
             id->i, d->ev->key);
}

static int read_rows(adec_t *d) {
  cm_event_t *ev = d->ev;
  int rc;

  if (ev->op != CM_OP_DELETE) {
    if (d->img_schema[1] == NULL)
      return BAD(d, "after: missing for op '%c'", (char)ev->op);
    rc = read_image(d, 1, ev->after);
    if (rc != CM_OK)
      return rc;
    ev->has_after = 1;
  }
  if (d->img_schema[0] != NULL) {
    rc = read_image(d, 0, ev->before);
    if (rc != CM_OK)
      return rc;
    ev->has_before = 1;
  }
  rc = check_id(d, "after", &ev->after[0]);
  return rc == CM_OK ? check_id(d, "before", &ev->before[0]) : rc;
}

/* ---- range markers ----------------------------------------------------- */

#define RUNS_BAD "range.present: not a list of [first, last] runs"

/* Follows links and the union branch the bytes name, to the schema of the
 * value that comes next. */
static int resolve(cur_t *c, avro_schema_t *s) {
  int64_t v;
  int depth;

  for (depth = 0; depth <= MAX_DEPTH && *s != NULL; depth++) {
    if (avro_typeof(*s) == AVRO_LINK) {
      *s = avro_schema_link_target(*s);
    } else if (avro_typeof(*s) == AVRO_UNION) {
      if (rd_long(c, &v) != 0 || v < 0 ||
          (uint64_t)v >= (uint64_t)avro_schema_union_size(*s))
        return -1;
      *s = avro_schema_union_branch(*s, (int)v);
    } else {
      return 0;
    }
  }
  return -1;
}

/* The item count of an array's next block; 0 at its end. */
static int next_block(cur_t *c, int64_t *cnt) {
  int64_t bytes;

  if (rd_long(c, cnt) != 0)
    return -1;
  if (*cnt < 0) {
    if (*cnt == INT64_MIN || rd_long(c, &bytes) != 0)
      return -1;
    *cnt = -*cnt;
  }
  return (uint64_t)*cnt > c->n ? -1 : 0; /* see NOTES */
}

/* One run of `present`: an array of exactly two integers, first <= last. */
static int read_run(adec_t *d, cur_t *c, avro_schema_t s, int64_t *lo,
                    int64_t *hi) {
  int64_t cnt, k, v[2];
  int n = 0;
  av_t av;

  if (resolve(c, &s) != 0)
    return mismatch(d, "range");
  if (avro_typeof(s) != AVRO_ARRAY)
    return BAD(d, RUNS_BAD);
  for (;;) {
    if (next_block(c, &cnt) != 0)
      return mismatch(d, "range");
    if (cnt == 0)
      break;
    for (k = 0; k < cnt; k++) {
      if (read_any(c, avro_schema_array_items(s), 3, &av) != 0)
        return mismatch(d, "range");
      if (av.kind != AV_LONG || n == 2)
        return BAD(d, RUNS_BAD);
      v[n++] = av.i;
    }
  }
  if (n != 2 || v[0] > v[1])
    return BAD(d, RUNS_BAD);
  *lo = v[0];
  *hi = v[1];
  return CM_OK;
}

/* `present`: the runs, sorted, disjoint and inside [first, last]. */
static int read_present(adec_t *d, cur_t *c, avro_schema_t s) {
  cm_event_t *ev = d->ev;
  int64_t cnt, k, *grown;
  int cap = 8, i, rc;

  if (resolve(c, &s) != 0)
    return mismatch(d, "range");
  if (avro_typeof(s) != AVRO_ARRAY)
    return BAD(d, "range.present: missing or not a list");
  ev->runs = malloc(sizeof(*ev->runs) * (size_t)cap);
  if (ev->runs == NULL)
    return cm_fail(d->errstr, d->errstr_size, CM_ERR_NOMEM, "out of memory");
  for (;;) {
    if (next_block(c, &cnt) != 0)
      return mismatch(d, "range");
    if (cnt == 0)
      return CM_OK;
    for (k = 0; k < cnt; k++) {
      i = ev->n_runs;
      if (2 * i + 2 > cap) {
        cap *= 2;
        grown = realloc(ev->runs, sizeof(*ev->runs) * (size_t)cap);
        if (grown == NULL)
          return cm_fail(d->errstr, d->errstr_size, CM_ERR_NOMEM,
                         "out of memory");
        ev->runs = grown;
      }
      rc = read_run(d, c, avro_schema_array_items(s), &ev->runs[2 * i],
                    &ev->runs[2 * i + 1]);
      if (rc != CM_OK)
        return rc;
      if (!cm_dec_run_fits(ev, i))
        return BAD(d, "%s", cm_dec_run_misfit);
      ev->n_runs = i + 1;
    }
  }
}

/*
 * clinicmig-replay's range marker (docs/design.md §3): within [first,
 * last] of the table, the snapshot holds exactly the ids of `present`.
 * The bounds are checked before the runs, as decode.c does, whatever the
 * order of the writer's fields.
 */
static int read_range(adec_t *d) {
  avro_schema_t rec = d->range_rec, present = NULL, f;
  cm_event_t *ev = d->ev;
  int has_first = 0, has_last = 0, rc;
  cur_t c = d->range, at = {NULL, 0};
  size_t i, n = rec != NULL ? avro_schema_record_size(rec) : 0;
  const char *name;
  av_t av;

  if (!ev->has_txsnap)
    return BAD(d, "range marker without source.txid_snapshot");
  for (i = 0; i < n; i++) {
    name = avro_schema_record_field_name(rec, (int)i);
    f = avro_schema_record_field_get_by_index(rec, (int)i);
    if (strcmp(name, "present") == 0) {
      at = c;
      present = f;
      if (skip_value(&c, f, 2) != 0)
        return mismatch(d, "range");
      continue;
    }
    if (read_any(&c, f, 2, &av) != 0 ||
        (av.kind == AV_RECORD && skip_record(&c, av.schema, 3) != 0))
      return mismatch(d, "range");
    if (strcmp(name, "first") == 0 && av.kind == AV_LONG) {
      ev->range_first = av.i;
      has_first = 1;
    }
    if (strcmp(name, "last") == 0 && av.kind == AV_LONG) {
      ev->range_last = av.i;
      has_last = 1;
    }
  }
  if (!has_first || !has_last || ev->range_first > ev->range_last)
    return BAD(d, "range: missing or without first <= last");
  if (present == NULL)
    return BAD(d, "range.present: missing or not a list");
  rc = read_present(d, &at, present);
  if (rc == CM_OK)
    ev->key = ev->range_first;
  return rc;
}

/* ---- the value --------------------------------------------------------- */

static int decode_value(adec_t *d, const void *key, size_t key_len,
                        const void *value, size_t value_len) {
  cur_t c;
  int rc;

  rc = wire_header(d, "value", value, value_len, &c, &d->sch);
  if (rc == CM_OK)
    rc = read_envelope(d, &c);
  if (rc == CM_OK)
    rc = d->flat || d->heartbeat || d->txmeta ? check_flat(d)
                                              : check_envelope(d);
  if (rc != CM_OK || d->ev->op == CM_OP_MESSAGE ||
      d->ev->op == CM_OP_TRUNCATE || d->ev->op == CM_OP_HEARTBEAT ||
      d->ev->op == CM_OP_TXMETA)
    return rc;
  if (d->ev->op == CM_OP_RANGE)
    return read_range(d);
  rc = cm_dec_key(d->schemas, key, key_len, &d->ev->key, d->errstr,
                  d->errstr_size);
  return rc == CM_OK ? read_rows(d) : rc;
}

int cm_dec_avro_value(const cm_decode_opts_t *opts, const char *topic,
                      const void *key, size_t key_len, const void *value,
                      size_t value_len, cm_event_t *ev, char *errstr,
                      size_t errstr_size) {
  adec_t d;
  int rc;

  memset(&d, 0, sizeof(d));
  d.schemas = opts->schemas;
  d.opts = opts;
  d.topic = topic;
  d.ev = ev;
  d.errstr = errstr;
  d.errstr_size = errstr_size;
  rc = decode_value(&d, key, key_len, value, value_len);
  if (rc != CM_OK)
    cm_event_clear(ev);
  return rc;
}
