/*
 * decode.c — Debezium change events (JSON converter) into cm_event_t.
 *
 * NOTES
 * This is the only file that knows Debezium's JSON forms. A message value
 * is either the envelope itself (schemas.enable=false) or a wrapper
 * {"schema": ..., "payload": envelope} (schemas.enable=true); the wrapper is
 * recognized by having both members. The key is {"id": N}, its wrapped
 * form, or a bare integer.
 *
 * Every value is checked against the legacy table's column list: a row
 * image that the mirror could not store faithfully is bad input, so it goes
 * to the dead-letter topic with a reason instead of half into the mirror.
 * Reasons name the field path but never echo a column value: they end up in
 * logs and dead-letter headers, and the columns hold names, phones, emails
 * and birth dates.
 *
 * Integers are taken from the message text, not from cJSON's double: a
 * NanoTimestamp (about 1.7e18) or a large LSN does not fit a double's 53
 * bits. index_numbers() pairs every number node of the parsed tree with its
 * token in the text (cJSON keeps document order), keeps the token's index
 * in the node's unused valueint, and records the exact value of the tokens
 * that are plain integers; json_int() reads it back. Only -?[0-9]+ is an
 * integer: 5.0 and 5e0 are not.
 *
 * Temporal numbers: an integer timestamp does not say its unit. With the
 * schema form (or Avro) the field's semantic type says it (MicroTimestamp:
 * µs, Timestamp and Kafka's Timestamp: ms, NanoTimestamp: ns), and it wins.
 * Without one the unit is what the connector writes for the column, which
 * the configuration mirrors (docs/design.md §1.2): its time.precision.mode
 * and the legacy type of the column (cm_coltypes_t). A timestamptz column
 * is ISO-8601 text in every mode, so a number there is bad input; a
 * timestamp(0..3) is ms in the adaptive modes, timestamp(4..6) µs; connect
 * is always ms, microseconds µs, nanoseconds ns, isostring text. The value
 * is never guessed from its magnitude: one that is out of range in the
 * configured unit is bad input naming the unit. All dates and timestamps
 * must lie within years 0001-9999.
 *
 * Shapes beyond the plain envelope (docs/design.md §1.2 lists them): keys,
 * integer columns, source.lsn and source.txId written as decimal text; a
 * row flattened by Debezium's ExtractNewRecordState SMT, applied only when
 * it carries its position (__lsn); Debezium's heartbeat, skipped.
 */
#include "clinicmig/cm_event.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_value.h"
#include "decode_int.h"

/* The exact value of one number token, if it is a plain integer. */
typedef struct num_s {
  int is_int;
  int64_t v;
} num_t;

/* A parsed JSON document and the exact integers of its number tokens. */
typedef struct doc_s {
  cJSON *root;
  num_t *nums;
  int nnums;
  int has_nul;  /* a string holds \u0000 or a raw NUL byte */
  int mismatch; /* tokens and number nodes did not pair up */
} doc_t;

/* What decoding one message needs to carry around. */
typedef struct dec_s {
  const char *topic;
  const char *key;
  size_t key_len;
  cm_schemas_t *schemas; /* Avro writer schemas, or NULL */
  const cm_decode_opts_t *opts;
  doc_t val;
  const cJSON *schema; /* the value's envelope schema, or NULL */
  int flat;            /* a flattened row: schema is the row's own */
  cm_event_t *ev;
  char *errstr;
  size_t errstr_size;
} dec_t;

const char cm_dec_run_misfit[] =
    "range.present: runs not sorted, disjoint and within the range";

int cm_dec_run_fits(const cm_event_t *ev, int i) {
  const int64_t *r = ev->runs;

  return !((i == 0 && r[0] < ev->range_first) ||
           (i > 0 && r[2 * i] <= r[2 * i - 1]) ||
           r[2 * i + 1] > ev->range_last || r[2 * i + 1] == INT64_MAX);
}

#define BAD(d, ...)                                                            \
  cm_fail((d)->errstr, (d)->errstr_size, CM_ERR_BAD_INPUT, __VA_ARGS__)

/* Copies at most 32 bytes of @p src, printable ASCII only, for a reason. */
const char *cm_dec_printable(const char *src, char *dst, size_t dst_size) {
  size_t i;

  for (i = 0; src[i] != '\0' && i < 32 && i + 1 < dst_size; i++)
    dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
  dst[i] = '\0';
  return dst;
}

/* ---- exact integers ---------------------------------------------------- */

/*
 * Finds the next number token at or after *pos, skipping strings (and
 * noting a \u0000 escape or NUL byte in one). @returns 1 with the token in
 * start and len, or 0 at the end of the text.
 */
static int next_number(doc_t *doc, const char *s, size_t n, size_t *pos,
                       size_t *start, size_t *len) {
  size_t i = *pos;

  while (i < n) {
    if (s[i] == '"') {
      for (i++; i < n && s[i] != '"'; i++) {
        if (s[i] == '\0')
          doc->has_nul = 1;
        if (s[i] == '\\' && i + 5 < n && memcmp(s + i + 1, "u0000", 5) == 0)
          doc->has_nul = 1;
        if (s[i] == '\\')
          i++;
      }
      i++;
    } else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
      *start = i;
      while (i < n && s[i] != '\0' && strchr("0123456789+-.eE", s[i]))
        i++;
      *len = i - *start;
      *pos = i;
      return 1;
    } else {
      i++;
    }
  }
  *pos = n;
  return 0;
}

/* Parses a token of the form -?[0-9]+ that fits in int64. */
static int parse_int_token(const char *tok, size_t len, int64_t *out) {
  char buf[32];
  char *end;
  long long v;
  size_t i;

  if (len == 0 || len >= sizeof(buf))
    return -1;
  for (i = (tok[0] == '-') ? 1 : 0; i < len; i++)
    if (tok[i] < '0' || tok[i] > '9')
      return -1;
  memcpy(buf, tok, len);
  buf[len] = '\0';
  errno = 0;
  v = strtoll(buf, &end, 10);
  if (errno != 0 || end != buf + len)
    return -1;
  *out = (int64_t)v;
  return 0;
}

int cm_dec_int_text(const char *s, size_t len, int64_t *out) {
  return parse_int_token(s, len, out);
}

/* Up to 8 hex digits: one half of PostgreSQL's "X/Y" LSN text. */
static int lsn_half(const char *s, size_t len, uint64_t *out) {
  size_t i;
  int d;

  if (len == 0 || len > 8)
    return -1;
  *out = 0;
  for (i = 0; i < len; i++) {
    if (s[i] >= '0' && s[i] <= '9')
      d = s[i] - '0';
    else if (s[i] >= 'A' && s[i] <= 'F')
      d = s[i] - 'A' + 10;
    else if (s[i] >= 'a' && s[i] <= 'f')
      d = s[i] - 'a' + 10;
    else
      return -1;
    *out = *out * 16 + (uint64_t)d;
  }
  return 0;
}

int cm_dec_lsn_text(const char *s, size_t len, int64_t *out) {
  const char *slash = memchr(s, '/', len);
  uint64_t hi, lo;

  if (slash == NULL)
    return parse_int_token(s, len, out);
  if (lsn_half(s, (size_t)(slash - s), &hi) != 0 ||
      lsn_half(slash + 1, len - (size_t)(slash - s) - 1, &lo) != 0 ||
      hi > INT32_MAX)
    return -1;
  *out = (int64_t)(hi << 32 | lo);
  return 0;
}

static int count_numbers(const cJSON *node) {
  int n = 0;

  for (; node != NULL; node = node->next) {
    if (cJSON_IsNumber(node))
      n++;
    n += count_numbers(node->child);
  }
  return n;
}

/*
 * Walks the tree in document order, pairing each number node with the next
 * number token of the text; the node's valueint becomes its index in
 * doc->nums.
 */
static void index_numbers(doc_t *doc, cJSON *node, const char *s, size_t n,
                          size_t *pos, int *idx) {
  size_t start, len;

  num_t *num;

  for (; node != NULL; node = node->next) {
    if (cJSON_IsNumber(node) && *idx < doc->nnums) {
      node->valueint = *idx;
      num = &doc->nums[(*idx)++];
      if (!next_number(doc, s, n, pos, &start, &len))
        doc->mismatch = 1;
      else if (parse_int_token(s + start, len, &num->v) == 0)
        num->is_int = 1;
      /* cJSON read the same text: a different value means a lost pairing */
      if (num->is_int && (double)num->v != node->valuedouble)
        doc->mismatch = 1;
    }
    index_numbers(doc, node->child, s, n, pos, idx);
  }
}

/* Reads an exact integer; -1 if @p node is not a JSON integer in int64. */
static int json_int(const doc_t *doc, const cJSON *node, int64_t *out) {
  int i;

  if (!cJSON_IsNumber(node))
    return -1;
  i = node->valueint;
  if (i < 0 || i >= doc->nnums || !doc->nums[i].is_int)
    return -1;
  *out = doc->nums[i].v;
  return 0;
}

/* An integer, or decimal text of one (see cm_dec_int_text()). */
static int json_int_or_text(const doc_t *doc, const cJSON *v, int64_t *out) {
  if (cJSON_IsString(v))
    return cm_dec_int_text(v->valuestring, strlen(v->valuestring), out);
  return json_int(doc, v, out);
}

static void doc_free(doc_t *doc) {
  cJSON_Delete(doc->root);
  free(doc->nums);
  memset(doc, 0, sizeof(*doc));
}

/* The length of the prefix of s[0..n) made of bytes in @p set. */
static size_t strspn_n(const char *s, size_t n, const char *set) {
  size_t i;

  for (i = 0; i < n && s[i] != '\0' && strchr(set, s[i]) != NULL; i++)
    ;
  return i;
}

/*
 * Parses @p what ("key", "value") into @p doc, with its exact integers.
 * The text need not end in a NUL; nothing but white space may follow the
 * JSON value.
 */
static int doc_parse(doc_t *doc, const char *what, const char *s, size_t n,
                     char *errstr, size_t errstr_size) {
  const char *end = s;
  size_t pos = 0, start, len;
  int idx = 0, rc;

  memset(doc, 0, sizeof(*doc));
  doc->root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
  if (doc->root != NULL && end >= s && end <= s + n)
    end += strspn_n(end, (size_t)(s + n - end), " \t\r\n");
  if (doc->root == NULL || end != s + n) {
    cJSON_Delete(doc->root);
    doc->root = NULL;
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "%s: malformed JSON at byte %zu of %zu", what,
                   end >= s && end <= s + n ? (size_t)(end - s) : (size_t)0, n);
  }
  doc->nnums = count_numbers(doc->root);
  if (doc->nnums > 0) {
    doc->nums = calloc((size_t)doc->nnums, sizeof(num_t));
    if (doc->nums == NULL) {
      doc_free(doc);
      return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
    }
  }
  index_numbers(doc, doc->root, s, n, &pos, &idx);
  while (next_number(doc, s, n, &pos, &start, &len))
    doc->mismatch = 1; /* reads the rest for the NUL check, too */
  if (!doc->has_nul && !doc->mismatch)
    return CM_OK;
  rc = cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
               doc->has_nul ? "%s: string contains a NUL character"
                            : "%s: numbers could not be read exactly",
               what);
  doc_free(doc);
  return rc;
}

/* ---- dates and times --------------------------------------------------- */

cm_ts_unit_t cm_dec_ts_unit(const char *name) {
  static const struct {
    const char *name;
    cm_ts_unit_t unit;
  } names[] = {
      {"io.debezium.time.MicroTimestamp", CM_TS_US},
      {"timestamp-micros", CM_TS_US},
      {"local-timestamp-micros", CM_TS_US},
      {"io.debezium.time.Timestamp", CM_TS_MS},
      {"org.apache.kafka.connect.data.Timestamp", CM_TS_MS},
      {"timestamp-millis", CM_TS_MS},
      {"local-timestamp-millis", CM_TS_MS},
      {"io.debezium.time.NanoTimestamp", CM_TS_NS},
      {"timestamp-nanos", CM_TS_NS},
      {"local-timestamp-nanos", CM_TS_NS},
      {"io.debezium.time.ZonedTimestamp", CM_TS_TEXT},
      {"io.debezium.time.IsoTimestamp", CM_TS_TEXT},
  };
  size_t i;

  if (name == NULL)
    return CM_TS_NONE;
  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(name, names[i].name) == 0)
      return names[i].unit;
  return CM_TS_BAD;
}

/* Converts an integer timestamp to µs; -1 if out of range. */
int cm_dec_ts_from_int(int64_t v, cm_ts_unit_t unit, int64_t *us) {
  switch (unit) {
  case CM_TS_MS:
    if (v > INT64_MAX / 1000 || v < INT64_MIN / 1000)
      return -1;
    *us = v * 1000;
    break;
  case CM_TS_US: *us = v; break;
  case CM_TS_NS: *us = v / 1000 - (v % 1000 < 0 ? 1 : 0); break;
  default: return -1;
  }
  return (*us < CM_US_MIN || *us > CM_US_MAX) ? -1 : 0;
}

int cm_time_mode_parse(const char *s, cm_time_mode_t *out) {
  cm_time_mode_t m;

  for (m = CM_TIME_ADAPTIVE_TIME_MICROSECONDS; m <= CM_TIME_ISOSTRING; m++)
    if (strcmp(s, cm_time_mode_name(m)) == 0) {
      *out = m;
      return 0;
    }
  return -1;
}

const char *cm_time_mode_name(cm_time_mode_t mode) {
  switch (mode) {
  case CM_TIME_ADAPTIVE: return "adaptive";
  case CM_TIME_CONNECT: return "connect";
  case CM_TIME_MICROSECONDS: return "microseconds";
  case CM_TIME_NANOSECONDS: return "nanoseconds";
  case CM_TIME_ISOSTRING: return "isostring";
  default: return "adaptive_time_microseconds";
  }
}

/*
 * The unit the connector writes a timestamp without time zone in, by its
 * time.precision.mode and the column's fractional precision (see NOTES).
 */
static cm_ts_unit_t configured_unit(cm_time_mode_t mode, cm_tstype_t type) {
  switch (mode) {
  case CM_TIME_CONNECT: return CM_TS_MS;
  case CM_TIME_MICROSECONDS: return CM_TS_US;
  case CM_TIME_NANOSECONDS: return CM_TS_NS;
  case CM_TIME_ISOSTRING: return CM_TS_TEXT;
  default: return type == CM_TSTYPE_TIMESTAMP_MS ? CM_TS_MS : CM_TS_US;
  }
}

static const cm_decode_opts_t default_opts;

int cm_dec_ts_int(const cm_decode_opts_t *o, cm_table_t table, int col,
                  const char *semantic, int64_t v, const char *path,
                  int64_t *us, char *errstr, size_t errstr_size) {
  static const char *const unit_names[] = {"", "milliseconds", "microseconds",
                                           "nanoseconds"};
  cm_ts_unit_t unit = cm_dec_ts_unit(semantic);
  cm_tstype_t type = CM_TSTYPE_TIMESTAMPTZ;
  char buf[48];

  if (o == NULL)
    o = &default_opts;
  if (unit == CM_TS_TEXT || unit == CM_TS_BAD)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "%s: integer where the schema says %s", path,
                   cm_dec_printable(semantic, buf, sizeof(buf)));
  if (unit != CM_TS_NONE)
    return cm_dec_ts_from_int(v, unit, us) == 0
               ? CM_OK
               : cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                         "%s: timestamp out of range", path);
  if (o->coltypes != NULL && table > CM_TABLE_NONE && table < CM_TABLE__CNT &&
      col >= 0 && col < CM_MAX_COLS)
    type = (cm_tstype_t)o->coltypes->ts[table][col];
  unit = configured_unit(o->time_mode, type);
  if (unit == CM_TS_TEXT)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "%s: an integer, but time.precision.mode isostring writes "
                   "timestamps as ISO-8601 text",
                   path);
  if (type == CM_TSTYPE_TIMESTAMPTZ)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "%s: an integer, but a timestamptz column is ISO-8601 text "
                   "(io.debezium.time.ZonedTimestamp) in every "
                   "time.precision.mode; a legacy timestamp without time zone "
                   "must be named in legacy.column.types",
                   path);
  if (cm_dec_ts_from_int(v, unit, us) != 0)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "%s: timestamp out of range in %s (time.precision.mode %s, "
                   "legacy type %s)",
                   path, unit_names[unit], cm_time_mode_name(o->time_mode),
                   cm_tstype_name(type));
  return CM_OK;
}

/* The semantic types of an integer of days. */
static int is_days_type(const char *name) {
  return strcmp(name, "io.debezium.time.Date") == 0 ||
         strcmp(name, "org.apache.kafka.connect.data.Date") == 0 ||
         strcmp(name, "date") == 0;
}

int cm_dec_date_int(const cm_decode_opts_t *o, const char *semantic, int64_t v,
                    const char *path, int64_t *days, char *errstr,
                    size_t errstr_size) {
  char buf[48];

  if (o == NULL)
    o = &default_opts;
  if (semantic != NULL && !is_days_type(semantic))
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "%s: integer where the schema says %s", path,
                   cm_dec_printable(semantic, buf, sizeof(buf)));
  if (semantic == NULL && o->time_mode == CM_TIME_ISOSTRING)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "%s: an integer, but time.precision.mode isostring writes "
                   "dates as ISO-8601 text",
                   path);
  if (v < CM_DAYS_MIN || v > CM_DAYS_MAX)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "%s: date out of range", path);
  *days = v;
  return CM_OK;
}

static int two_digits(const char *s) {
  return s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9';
}

/* "Z", "+HH", "+HHMM" or "+HH:MM" (to the end of @p s). */
static int is_offset(const char *s) {
  size_t n = strlen(s);

  if (n == 1)
    return s[0] == 'Z' || s[0] == 'z';
  if (s[0] != '+' && s[0] != '-')
    return 0;
  if (n == 3)
    return two_digits(s + 1);
  if (n == 5)
    return two_digits(s + 1) && two_digits(s + 3);
  return n == 6 && two_digits(s + 1) && s[3] == ':' && two_digits(s + 4);
}

int cm_dec_date_text(const char *s, int64_t *days) {
  char buf[11];

  if (cm_date_parse(s, days) == 0)
    return 0;
  if (strlen(s) <= 10 || !is_offset(s + 10))
    return -1;
  memcpy(buf, s, 10);
  buf[10] = '\0';
  return cm_date_parse(buf, days);
}

int cm_dec_no_lsn(const cm_event_t *ev, char *errstr, size_t errstr_size) {
  if (ev->snapshot == CM_SNAP_INCREMENTAL)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "source.lsn: missing in an incremental snapshot read, which "
                   "cannot be ordered against live changes (backfill with "
                   "clinicmig-replay db instead)");
  return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                 "source.lsn: missing, the event cannot be ordered");
}

/* ---- column values ----------------------------------------------------- */

/* 1 if @p s is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int cm_dec_utf8_valid(const unsigned char *s) {
  uint32_t cp, min;
  int i, n;

  while (*s != 0) {
    if (*s < 0x80) {
      s++;
      continue;
    }
    if ((*s & 0xE0) == 0xC0) {
      n = 1, min = 0x80, cp = *s & 0x1F;
    } else if ((*s & 0xF0) == 0xE0) {
      n = 2, min = 0x800, cp = *s & 0x0F;
    } else if ((*s & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, cp = *s & 0x07;
    } else {
      return 0;
    }
    for (i = 1; i <= n; i++) {
      if ((s[i] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    s += n + 1;
  }
  return 1;
}

/* The schema of image @p which ("before", "after"), or NULL. */
static const cJSON *image_schema(const cJSON *schema, const char *which) {
  const cJSON *fields, *f, *name;

  fields = cJSON_GetObjectItemCaseSensitive(schema, "fields");
  if (!cJSON_IsArray(fields))
    return NULL;
  cJSON_ArrayForEach(f, fields) {
    name = cJSON_GetObjectItemCaseSensitive(f, "field");
    if (cJSON_IsString(name) && strcmp(name->valuestring, which) == 0)
      return f;
  }
  return NULL;
}

/* The semantic type name ("io.debezium.time.Date") of a column, or NULL. */
static const char *semantic_type(const cJSON *img_schema, const char *col) {
  const cJSON *f, *name;

  f = image_schema(img_schema, col);
  if (f == NULL)
    return NULL;
  name = cJSON_GetObjectItemCaseSensitive(f, "name");
  return cJSON_IsString(name) ? name->valuestring : NULL;
}

static int decode_text(dec_t *d, const cJSON *v, const char *path,
                       cm_value_t *out) {
  if (!cJSON_IsString(v))
    return BAD(d, "%s: not a string", path);
  if (!cm_dec_utf8_valid((const unsigned char *)v->valuestring))
    return BAD(d, "%s: not valid UTF-8", path);
  out->s = strdup(v->valuestring);
  if (out->s == NULL)
    return cm_fail(d->errstr, d->errstr_size, CM_ERR_NOMEM, "out of memory");
  out->kind = CM_VAL_TEXT;
  return CM_OK;
}

/* io.debezium.time.Date (days since the epoch), "YYYY-MM-DD", or IsoDate's
 * "YYYY-MM-DDZ". */
static int decode_date(dec_t *d, const cJSON *v, const char *path,
                       const char *stype, cm_value_t *out) {
  int64_t days;
  int rc;

  if (cJSON_IsString(v)) {
    if (cm_dec_date_text(v->valuestring, &days) != 0)
      return BAD(d, "%s: not a valid date", path);
  } else if (json_int(&d->val, v, &days) != 0) {
    return BAD(d, "%s: not a valid date", path);
  } else {
    rc = cm_dec_date_int(d->opts, stype, days, path, &days, d->errstr,
                         d->errstr_size);
    if (rc != CM_OK)
      return rc;
  }
  out->kind = CM_VAL_DATE;
  out->i = days;
  return CM_OK;
}

/* An ISO-8601 string (ZonedTimestamp, IsoTimestamp) or an integer in the
 * unit its semantic type names, or the configuration (see NOTES). */
static int decode_ts(dec_t *d, const cJSON *v, int col, const char *path,
                     const char *stype, cm_value_t *out) {
  int64_t n;
  int rc;

  if (cJSON_IsString(v)) {
    if (cm_timestamp_parse(v->valuestring, &out->i) != 0)
      return BAD(d, "%s: not a valid timestamp", path);
  } else if (json_int(&d->val, v, &n) != 0) {
    return BAD(d, "%s: not a valid timestamp", path);
  } else {
    rc = cm_dec_ts_int(d->opts, d->ev->table, col, stype, n, path, &out->i,
                       d->errstr, d->errstr_size);
    if (rc != CM_OK)
      return rc;
  }
  out->kind = CM_VAL_TIMESTAMP;
  return CM_OK;
}

/* Decodes one present, non-null value by the type of column @p ci. */
static int decode_typed(dec_t *d, const cJSON *v, const cm_column_t *col,
                        int ci, const char *path, const cJSON *img_schema,
                        cm_value_t *out) {
  switch (col->type) {
  case CM_COL_INT:
    if (json_int_or_text(&d->val, v, &out->i) != 0)
      return BAD(d, "%s: not an integer", path);
    out->kind = CM_VAL_INT;
    return CM_OK;
  case CM_COL_BOOL:
    if (!cJSON_IsBool(v))
      return BAD(d, "%s: not a boolean", path);
    out->kind = CM_VAL_BOOL;
    out->i = cJSON_IsTrue(v) ? 1 : 0;
    return CM_OK;
  case CM_COL_TEXT: return decode_text(d, v, path, out);
  case CM_COL_DATE:
    return decode_date(d, v, path, semantic_type(img_schema, col->name), out);
  case CM_COL_TIMESTAMP:
    return decode_ts(d, v, ci, path, semantic_type(img_schema, col->name), out);
  }
  return BAD(d, "%s: unknown column type", path);
}

/*
 * One column of a row image. A column missing from `after` is NULL if the
 * column is nullable and an error if not; in `before` (often only the key,
 * with REPLICA IDENTITY DEFAULT) it is simply absent.
 */
static int decode_column(dec_t *d, const cJSON *img, const cm_column_t *col,
                         int ci, const char *which, const cJSON *img_schema,
                         cm_value_t *out) {
  int is_before = strcmp(which, "before") == 0;
  const cJSON *v;
  char path[64];

  snprintf(path, sizeof(path), "%s.%s", which, col->name);
  v = cJSON_GetObjectItemCaseSensitive(img, col->name);
  if (v == NULL && is_before)
    return CM_OK;
  if (v == NULL && !col->nullable)
    return BAD(d, "%s: missing required column", path);
  if (cJSON_IsNull(v) && !col->nullable && !is_before)
    return BAD(d, "%s: null in a not-null column", path);
  if (v == NULL || cJSON_IsNull(v)) {
    out->kind = CM_VAL_NULL;
    return CM_OK;
  }
  if (cJSON_IsString(v) &&
      strcmp(v->valuestring, CM_DEBEZIUM_UNAVAILABLE) == 0) {
    out->kind = CM_VAL_UNAVAILABLE;
    return CM_OK;
  }
  return decode_typed(d, v, col, ci, path, img_schema, out);
}

/* Decodes row image @p which ("before", "after") of the event's table. */
static int decode_image(dec_t *d, const cJSON *img, const char *which,
                        cm_value_t *vals) {
  const cm_column_t *cols;
  const cJSON *img_schema;
  int i, n, rc;

  if (!cJSON_IsObject(img))
    return BAD(d, "%s: not an object", which);
  img_schema = d->flat ? d->schema : image_schema(d->schema, which);
  cols = cm_table_columns(d->ev->table, &n);
  for (i = 0; i < n; i++) {
    rc = decode_column(d, img, &cols[i], i, which, img_schema, &vals[i]);
    if (rc != CM_OK)
      return rc;
  }
  return CM_OK;
}

/* ---- key, source and envelope ------------------------------------------ */

/* The payload of a {schema, payload} wrapper, or @p root itself. */
static const cJSON *unwrap(const cJSON *root) {
  if (cJSON_IsObject(root) &&
      cJSON_GetObjectItemCaseSensitive(root, "schema") != NULL &&
      cJSON_GetObjectItemCaseSensitive(root, "payload") != NULL)
    return cJSON_GetObjectItemCaseSensitive(root, "payload");
  return root;
}

int cm_dec_is_avro(const void *msg, size_t len) {
  return msg != NULL && len > 0 && ((const unsigned char *)msg)[0] == 0;
}

/* Reads the row id from a JSON key: {"id": N}, wrapped, or N. */
static int json_key(const char *key, size_t key_len, int64_t *id, char *errstr,
                    size_t errstr_size) {
  const cJSON *k, *idn;
  doc_t kd;
  int rc = CM_OK;

  rc = doc_parse(&kd, "key", key, key_len, errstr, errstr_size);
  if (rc != CM_OK)
    return rc;
  k = unwrap(kd.root);
  idn = cJSON_IsObject(k) ? cJSON_GetObjectItemCaseSensitive(k, "id") : k;
  if (k == NULL || cJSON_IsNull(k))
    rc = cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT, "missing key");
  else if (idn == NULL)
    rc = cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT, "key: no id field");
  else if (!cJSON_IsObject(k) && !cJSON_IsNumber(k))
    rc = cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                 "key: not an object or integer");
  else if (json_int_or_text(&kd, idn, id) != 0)
    rc = cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                 "key.id: not an integer");
  doc_free(&kd);
  return rc;
}

int cm_dec_key(cm_schemas_t *schemas, const void *key, size_t key_len,
               int64_t *id, char *errstr, size_t errstr_size) {
  if (key == NULL || key_len == 0)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT, "missing key");
  if (cm_dec_is_avro(key, key_len))
    return cm_dec_avro_key(schemas, key, key_len, id, errstr, errstr_size);
  return json_key(key, key_len, id, errstr, errstr_size);
}

/* Reads the row id from the message key, in either format. */
static int decode_key(dec_t *d, int64_t *id) {
  return cm_dec_key(d->schemas, d->key, d->key_len, id, d->errstr,
                    d->errstr_size);
}

/* Takes an integer, or a string of one, if it is there; else leaves 0. */
static void lenient_int(const doc_t *doc, const cJSON *v, int64_t *out) {
  char *end;
  long long n;

  if (json_int(doc, v, out) == 0 || !cJSON_IsString(v))
    return;
  errno = 0;
  n = strtoll(v->valuestring, &end, 10);
  if (errno == 0 && end != v->valuestring && *end == '\0')
    *out = (int64_t)n;
}

cm_snapshot_t cm_dec_snapshot(const char *s) {
  static const struct {
    const char *name;
    cm_snapshot_t snap;
  } names[] = {
      {"false", CM_SNAP_FALSE},
      {"true", CM_SNAP_TRUE},
      {"first", CM_SNAP_FIRST},
      {"last", CM_SNAP_LAST},
      {"incremental", CM_SNAP_INCREMENTAL},
      {"first_in_data_collection", CM_SNAP_TRUE},
      {"last_in_data_collection", CM_SNAP_TRUE},
  };
  size_t i;

  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(s, names[i].name) == 0)
      return names[i].snap;
  return CM_SNAP_OTHER;
}

/* source.snapshot: a string in Debezium 2.x, a boolean before. */
static int decode_snapshot(dec_t *d, const cJSON *v) {
  if (v == NULL || cJSON_IsNull(v) || cJSON_IsFalse(v))
    return CM_OK; /* CM_SNAP_FALSE */
  if (cJSON_IsTrue(v)) {
    d->ev->snapshot = CM_SNAP_TRUE;
    return CM_OK;
  }
  if (!cJSON_IsString(v))
    return BAD(d, "source.snapshot: not a string or boolean");
  d->ev->snapshot = cm_dec_snapshot(v->valuestring);
  return CM_OK;
}

/* source.txid_snapshot: the snapshot a clinicmig-replay row was read in. */
static int decode_txsnap(dec_t *d, const cJSON *src) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, "txid_snapshot");
  int rc;

  if (v == NULL || cJSON_IsNull(v))
    return CM_OK;
  if (!cJSON_IsString(v))
    return BAD(d, "source.txid_snapshot: not a string");
  rc = cm_txsnap_parse(v->valuestring, &d->ev->txsnap);
  if (rc == CM_ERR_NOMEM)
    return cm_fail(d->errstr, d->errstr_size, rc, "out of memory");
  if (rc != 0)
    return BAD(d, "source.txid_snapshot: not a snapshot (xmin:xmax:xip,...)");
  d->ev->has_txsnap = 1;
  return CM_OK;
}

/* An LSN: an integer, or text (decimal or PostgreSQL's "X/Y"). */
static int json_lsn(const dec_t *d, const cJSON *v, int64_t *out) {
  if (cJSON_IsString(v))
    return cm_dec_lsn_text(v->valuestring, strlen(v->valuestring), out);
  return json_int(&d->val, v, out);
}

/* The position of an event: @p lsn and @p tx (source.lsn and source.txId,
 * or a flattened row's __lsn and __txId), @p what naming them. */
static int decode_lsn_tx(dec_t *d, const cJSON *lsn, const cJSON *tx,
                         const char *what_lsn, const char *what_tx) {
  cm_event_t *ev = d->ev;

  if (lsn != NULL && !cJSON_IsNull(lsn)) {
    if (json_lsn(d, lsn, &ev->lsn) != 0 || ev->lsn < 0)
      return BAD(d, "%s: not a non-negative integer", what_lsn);
    ev->has_lsn = 1;
  }
  if (tx != NULL && !cJSON_IsNull(tx)) {
    if (json_int_or_text(&d->val, tx, &ev->tx_id) != 0)
      return BAD(d, "%s: not an integer", what_tx);
    ev->has_tx_id = 1;
  }
  return CM_OK;
}

/* source.lsn and source.txId; an event with neither an LSN nor a snapshot
 * cannot be ordered. */
static int decode_position(dec_t *d, const cJSON *src, int need_lsn) {
  cm_event_t *ev = d->ev;
  int rc = decode_txsnap(d, src);

  if (rc == CM_OK)
    rc = decode_lsn_tx(d, cJSON_GetObjectItemCaseSensitive(src, "lsn"),
                       cJSON_GetObjectItemCaseSensitive(src, "txId"),
                       "source.lsn", "source.txId");
  if (rc == CM_OK && need_lsn && !ev->has_lsn && !ev->has_txsnap)
    rc = cm_dec_no_lsn(ev, d->errstr, d->errstr_size);
  return rc;
}

/* The source block; @p row_op: c/u/d/r/t, which must name their table. */
static int decode_source(dec_t *d, const cJSON *env, int row_op) {
  const cJSON *src = cJSON_GetObjectItemCaseSensitive(env, "source");
  const cJSON *table;
  char buf[48];
  int rc;

  if (!cJSON_IsObject(src))
    return BAD(d, "source: missing or not an object");
  rc = decode_snapshot(d, cJSON_GetObjectItemCaseSensitive(src, "snapshot"));
  if (rc == CM_OK)
    rc = decode_position(d, src, row_op && d->ev->op != CM_OP_TRUNCATE);
  if (rc != CM_OK)
    return rc;
  lenient_int(&d->val, cJSON_GetObjectItemCaseSensitive(src, "ts_ms"),
              &d->ev->source_ts_ms);
  if (!row_op)
    return CM_OK;
  table = cJSON_GetObjectItemCaseSensitive(src, "table");
  if (!cJSON_IsString(table))
    return BAD(d, "source.table: missing or not a string");
  d->ev->table = cm_table_from_name(table->valuestring);
  if (d->ev->table == CM_TABLE_NONE)
    return BAD(d, "unknown table \"%s\"",
               cm_dec_printable(table->valuestring, buf, sizeof(buf)));
  return CM_OK;
}

/* A row image's id must be the key's: both name the same row. */
static int check_id(dec_t *d, const char *which, const cm_value_t *id) {
  if (id->kind != CM_VAL_INT || id->i == d->ev->key)
    return CM_OK;
  return BAD(d, "%s.id: %" PRId64 " does not match the key %" PRId64, which,
             id->i, d->ev->key);
}

/*
 * The row images of c/u/d/r. `after` is required except for a delete;
 * `before` is decoded when present (a partial image with REPLICA IDENTITY
 * DEFAULT, a full one with FULL). A delete's `after` is ignored.
 */
static int decode_rows(dec_t *d, const cJSON *env) {
  const cJSON *before = cJSON_GetObjectItemCaseSensitive(env, "before");
  const cJSON *after = cJSON_GetObjectItemCaseSensitive(env, "after");
  cm_event_t *ev = d->ev;
  int rc;

  if (ev->op != CM_OP_DELETE) {
    if (after == NULL || cJSON_IsNull(after))
      return BAD(d, "after: missing for op '%c'", (char)ev->op);
    rc = decode_image(d, after, "after", ev->after);
    if (rc != CM_OK)
      return rc;
    ev->has_after = 1;
  }
  if (before != NULL && !cJSON_IsNull(before)) {
    rc = decode_image(d, before, "before", ev->before);
    if (rc != CM_OK)
      return rc;
    ev->has_before = 1;
  }
  rc = check_id(d, "after", &ev->after[0]);
  return rc == CM_OK ? check_id(d, "before", &ev->before[0]) : rc;
}

/* A BEGIN/END event of the transaction metadata topic. */
static int decode_txmeta(dec_t *d, const cJSON *env) {
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(env, "status");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(env, "id");
  char *end;
  long long tx;

  if (!cJSON_IsString(status) || id == NULL ||
      (strcmp(status->valuestring, "BEGIN") != 0 &&
       strcmp(status->valuestring, "END") != 0))
    return BAD(d, "op: missing");
  d->ev->op = CM_OP_TXMETA;
  lenient_int(&d->val, cJSON_GetObjectItemCaseSensitive(env, "ts_ms"),
              &d->ev->ts_ms);
  if (!cJSON_IsString(id))
    return CM_OK;
  /* The id is "<txId>:<lsn>". */
  errno = 0;
  tx = strtoll(id->valuestring, &end, 10);
  if (errno == 0 && end != id->valuestring && (*end == ':' || *end == '\0')) {
    d->ev->has_tx_id = 1;
    d->ev->tx_id = (int64_t)tx;
  }
  return CM_OK;
}

/* Reads one [a, b] run of a range marker's `present` list. */
static int decode_run(dec_t *d, const cJSON *run, int64_t *lo, int64_t *hi) {
  if (!cJSON_IsArray(run) || cJSON_GetArraySize(run) != 2 ||
      json_int(&d->val, cJSON_GetArrayItem(run, 0), lo) != 0 ||
      json_int(&d->val, cJSON_GetArrayItem(run, 1), hi) != 0 || *lo > *hi)
    return BAD(d, "range.present: not a list of [first, last] runs");
  return CM_OK;
}

/*
 * clinicmig-replay's range marker: within [first, last] of the table, the
 * snapshot holds exactly the ids of `present` (docs/design.md §3). Runs
 * must be sorted, disjoint and inside the range; a marker without its
 * snapshot could not be ordered.
 */
static int decode_range(dec_t *d, const cJSON *env) {
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(env, "range"), *present;
  cm_event_t *ev = d->ev;
  int i, n, rc;

  if (!ev->has_txsnap)
    return BAD(d, "range marker without source.txid_snapshot");
  if (!cJSON_IsObject(r) ||
      json_int(&d->val, cJSON_GetObjectItemCaseSensitive(r, "first"),
               &ev->range_first) != 0 ||
      json_int(&d->val, cJSON_GetObjectItemCaseSensitive(r, "last"),
               &ev->range_last) != 0 ||
      ev->range_first > ev->range_last)
    return BAD(d, "range: missing or without first <= last");
  present = cJSON_GetObjectItemCaseSensitive(r, "present");
  if (!cJSON_IsArray(present))
    return BAD(d, "range.present: missing or not a list");
  n = cJSON_GetArraySize(present);
  ev->runs = malloc(sizeof(*ev->runs) * (size_t)(2 * n + 1));
  if (ev->runs == NULL)
    return cm_fail(d->errstr, d->errstr_size, CM_ERR_NOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    rc = decode_run(d, cJSON_GetArrayItem(present, i), &ev->runs[2 * i],
                    &ev->runs[2 * i + 1]);
    if (rc != CM_OK)
      return rc;
    if (!cm_dec_run_fits(ev, i))
      return BAD(d, "%s", cm_dec_run_misfit);
    ev->n_runs = i + 1;
  }
  ev->key = ev->range_first;
  return CM_OK;
}

cm_op_t cm_dec_op(const char *s) {
  if (s[0] == '\0' || s[1] != '\0')
    return (cm_op_t)0;
  switch (s[0]) {
  case 'c': return CM_OP_CREATE;
  case 'u': return CM_OP_UPDATE;
  case 'd': return CM_OP_DELETE;
  case 'r': return CM_OP_READ;
  case 't': return CM_OP_TRUNCATE;
  case 'm': return CM_OP_MESSAGE;
  default: return (cm_op_t)0;
  }
}

/* ---- heartbeats and flattened rows -------------------------------------- */

/* Debezium's heartbeat: {"ts_ms": N} and nothing else. */
static int is_heartbeat(const cJSON *env) {
  const cJSON *ts = cJSON_GetObjectItemCaseSensitive(env, "ts_ms");

  return ts != NULL && cJSON_GetArraySize(env) == 1 &&
         (cJSON_IsNumber(ts) || cJSON_IsString(ts));
}

/* A BEGIN or END of the transaction metadata topic: its id is the text
 * "txId:lsn" (a flattened row's id is a number). */
static int is_txmeta(const cJSON *env) {
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(env, "status");

  return cJSON_IsString(status) &&
         (strcmp(status->valuestring, "BEGIN") == 0 ||
          strcmp(status->valuestring, "END") == 0) &&
         cJSON_IsString(cJSON_GetObjectItemCaseSensitive(env, "id"));
}

/*
 * A row flattened by ExtractNewRecordState: no envelope member, and the
 * row's numeric key column or a metadata member (add.fields, "__" in
 * front).
 */
static int is_flat(const cJSON *env) {
  static const char *const envelope[] = {"source", "before", "after"};
  const cJSON *m;
  size_t i;

  for (i = 0; i < sizeof(envelope) / sizeof(envelope[0]); i++)
    if (cJSON_GetObjectItemCaseSensitive(env, envelope[i]) != NULL)
      return 0;
  cJSON_ArrayForEach(m, env) {
    if (strncmp(m->string, "__", 2) == 0 ||
        (strcmp(m->string, "id") == 0 && cJSON_IsNumber(m)))
      return 1;
  }
  return 0;
}

/* Metadata member @p name of a flattened row: "__NAME", or
 * "__source_NAME" as add.fields=source.NAME names it; NULL if absent. */
static const cJSON *flat_meta(const cJSON *row, const char *name) {
  const cJSON *v;
  char buf[48];

  snprintf(buf, sizeof(buf), "__%s", name);
  v = cJSON_GetObjectItemCaseSensitive(row, buf);
  if (v == NULL || cJSON_IsNull(v)) {
    snprintf(buf, sizeof(buf), "__source_%s", name);
    v = cJSON_GetObjectItemCaseSensitive(row, buf);
  }
  return v == NULL || cJSON_IsNull(v) ? NULL : v;
}

const char *cm_dec_flat_table_name(const char *schema_name, const char *topic,
                                   char *buf, size_t size) {
  const char *end, *p, *name = topic != NULL ? topic : "";
  size_t n;

  /* <prefix>.<schema>.<Table>.Value: the Table before ".Value" */
  n = schema_name != NULL ? strlen(schema_name) : 0;
  if (n > 6 && strcmp(schema_name + n - 6, ".Value") == 0) {
    end = schema_name + n - 6;
    for (p = end; p > schema_name && p[-1] != '.'; p--)
      ;
    snprintf(buf, size, "%.*s", (int)(end - p), p);
    return buf;
  }
  p = strrchr(name, '.');
  snprintf(buf, size, "%s", p != NULL ? p + 1 : name);
  return buf;
}

/* The table of a flattened row: __table, its schema's name, its topic. */
static int flat_table(dec_t *d, const cJSON *row) {
  const cJSON *t = flat_meta(row, "table"), *name;
  char buf[64], shown[48];
  const char *tn;

  if (t != NULL && !cJSON_IsString(t))
    return BAD(d, "__table: not a string");
  name = cJSON_GetObjectItemCaseSensitive(d->schema, "name");
  tn = t != NULL ? t->valuestring
                 : cm_dec_flat_table_name(
                       cJSON_IsString(name) ? name->valuestring : NULL,
                       d->topic, buf, sizeof(buf));
  d->ev->table = cm_table_from_name(tn);
  if (d->ev->table == CM_TABLE_NONE)
    return BAD(d, "unknown table \"%s\"",
               cm_dec_printable(tn, shown, sizeof(shown)));
  return CM_OK;
}

/* __deleted: "true" or "false" as the SMT writes it, or a boolean. */
static int flat_deleted(dec_t *d, const cJSON *v, int *deleted) {
  *deleted = 0;
  if (v == NULL)
    return CM_OK;
  if (cJSON_IsBool(v))
    *deleted = cJSON_IsTrue(v);
  else if (cJSON_IsString(v) && strcmp(v->valuestring, "true") == 0)
    *deleted = 1;
  else if (!cJSON_IsString(v) || strcmp(v->valuestring, "false") != 0)
    return BAD(d, "__deleted: not \"true\" or \"false\"");
  return CM_OK;
}

/* __op, checked against __deleted; without __op a row is an update, or a
 * delete if __deleted says so. */
static int flat_op(dec_t *d, const cJSON *row) {
  const cJSON *op = flat_meta(row, "op");
  const cJSON *del = cJSON_GetObjectItemCaseSensitive(row, "__deleted");
  cm_event_t *ev = d->ev;
  int deleted, rc;
  char buf[48];

  if (cJSON_IsNull(del))
    del = NULL; /* an optional field without a value, as in Avro */
  rc = flat_deleted(d, del, &deleted);
  if (rc != CM_OK)
    return rc;
  if (op == NULL) {
    ev->op = deleted ? CM_OP_DELETE : CM_OP_UPDATE;
    return CM_OK;
  }
  if (!cJSON_IsString(op))
    return BAD(d, "__op: not a string");
  ev->op = cm_dec_op(op->valuestring);
  if (ev->op != CM_OP_CREATE && ev->op != CM_OP_UPDATE &&
      ev->op != CM_OP_DELETE && ev->op != CM_OP_READ)
    return BAD(d, "__op: \"%s\" is not c, u, d or r",
               cm_dec_printable(op->valuestring, buf, sizeof(buf)));
  if (del != NULL && (ev->op == CM_OP_DELETE) != deleted)
    return BAD(d, "__op and __deleted disagree");
  return CM_OK;
}

/*
 * A row flattened by ExtractNewRecordState (docs/design.md §1.2): applied
 * only with its position, which the SMT adds with add.fields=lsn (__lsn);
 * with delete.tombstone.handling.mode=rewrite a delete is the before image
 * with __deleted "true".
 */
static int decode_flat(dec_t *d, const cJSON *row) {
  cm_event_t *ev = d->ev;
  int rc;

  d->flat = 1;
  rc = flat_op(d, row);
  if (rc == CM_OK)
    rc = decode_snapshot(d, flat_meta(row, "snapshot"));
  if (rc == CM_OK)
    rc = decode_lsn_tx(d, flat_meta(row, "lsn"), flat_meta(row, "txId"),
                       "__lsn", "__txId");
  if (rc != CM_OK)
    return rc;
  if (!ev->has_lsn)
    return ev->snapshot == CM_SNAP_INCREMENTAL
               ? cm_dec_no_lsn(ev, d->errstr, d->errstr_size)
               : BAD(d, "%s", CM_DEC_FLAT_NO_LSN);
  lenient_int(&d->val, cJSON_GetObjectItemCaseSensitive(row, "__ts_ms"),
              &ev->ts_ms);
  lenient_int(&d->val, cJSON_GetObjectItemCaseSensitive(row, "__source_ts_ms"),
              &ev->source_ts_ms);
  rc = flat_table(d, row);
  if (rc == CM_OK)
    rc = decode_key(d, &ev->key);
  if (rc != CM_OK)
    return rc;
  if (ev->op == CM_OP_DELETE) {
    rc = decode_image(d, row, "before", ev->before);
    ev->has_before = rc == CM_OK;
    return rc == CM_OK ? check_id(d, "before", &ev->before[0]) : rc;
  }
  rc = decode_image(d, row, "after", ev->after);
  ev->has_after = rc == CM_OK;
  return rc == CM_OK ? check_id(d, "after", &ev->after[0]) : rc;
}

/* The envelope: op, ts_ms, source, and for row changes key and images. */
static int decode_envelope(dec_t *d, const cJSON *env) {
  const cJSON *op = cJSON_GetObjectItemCaseSensitive(env, "op");
  cm_event_t *ev = d->ev;
  char buf[48];
  int rc, row_op;

  if (op == NULL && is_txmeta(env))
    return decode_txmeta(d, env);
  if (op == NULL && is_heartbeat(env)) {
    ev->op = CM_OP_HEARTBEAT;
    lenient_int(&d->val, cJSON_GetObjectItemCaseSensitive(env, "ts_ms"),
                &ev->ts_ms);
    return CM_OK;
  }
  if (op == NULL && is_flat(env))
    return decode_flat(d, env);
  if (op == NULL)
    return decode_txmeta(d, env);
  if (!cJSON_IsString(op))
    return BAD(d, "op: not a string");
  if (strcmp(op->valuestring, "range") == 0) {
    ev->op = CM_OP_RANGE;
    rc = decode_source(d, env, 1);
    return rc == CM_OK ? decode_range(d, env) : rc;
  }
  ev->op = cm_dec_op(op->valuestring);
  if (ev->op == 0)
    return BAD(d, "unknown op \"%s\"",
               cm_dec_printable(op->valuestring, buf, sizeof(buf)));
  lenient_int(&d->val, cJSON_GetObjectItemCaseSensitive(env, "ts_ms"),
              &ev->ts_ms);
  row_op = ev->op != CM_OP_MESSAGE;
  rc = decode_source(d, env, row_op);
  if (rc != CM_OK || ev->op == CM_OP_MESSAGE || ev->op == CM_OP_TRUNCATE)
    return rc;
  rc = decode_key(d, &ev->key);
  return rc == CM_OK ? decode_rows(d, env) : rc;
}

/* A null value: the tombstone that follows a delete, for compaction. */
static int decode_tombstone(dec_t *d) {
  const char *dot;

  d->ev->op = CM_OP_TOMBSTONE;
  if (d->topic != NULL) {
    dot = strrchr(d->topic, '.');
    d->ev->table = cm_table_from_name(dot != NULL ? dot + 1 : d->topic);
  }
  /* The key is kept when it reads; a tombstone is skipped either way. */
  if (d->key != NULL && d->key_len > 0 && decode_key(d, &d->ev->key) != 0)
    d->ev->key = 0;
  if (d->errstr != NULL && d->errstr_size > 0)
    d->errstr[0] = '\0';
  return CM_OK;
}

static int decode_value(dec_t *d) {
  const cJSON *root = d->val.root, *env, *schema;

  if (!cJSON_IsObject(root))
    return BAD(d, "value: not a JSON object");
  env = unwrap(root);
  if (env != root) {
    schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
    d->schema = cJSON_IsObject(schema) ? schema : NULL;
    if (cJSON_IsNull(env))
      return decode_tombstone(d);
    if (!cJSON_IsObject(env))
      return BAD(d, "payload: not a JSON object");
  }
  return decode_envelope(d, env);
}

int cm_event_decode(const char *topic, const void *key, size_t key_len,
                    const void *value, size_t value_len, cm_event_t *ev,
                    char *errstr, size_t errstr_size) {
  return cm_event_decode2(topic, key, key_len, value, value_len, NULL, ev,
                          errstr, errstr_size);
}

int cm_event_decode2(const char *topic, const void *key, size_t key_len,
                     const void *value, size_t value_len, cm_schemas_t *schemas,
                     cm_event_t *ev, char *errstr, size_t errstr_size) {
  cm_decode_opts_t o;

  memset(&o, 0, sizeof(o));
  o.schemas = schemas;
  return cm_event_decode_opts(topic, key, key_len, value, value_len, &o, ev,
                              errstr, errstr_size);
}

int cm_event_decode_opts(const char *topic, const void *key, size_t key_len,
                         const void *value, size_t value_len,
                         const cm_decode_opts_t *opts, cm_event_t *ev,
                         char *errstr, size_t errstr_size) {
  dec_t d;
  int rc;

  if (opts == NULL)
    opts = &default_opts;
  memset(ev, 0, sizeof(*ev));
  memset(&d, 0, sizeof(d));
  d.topic = topic;
  d.key = key;
  d.key_len = key_len;
  d.schemas = opts->schemas;
  d.opts = opts;
  d.ev = ev;
  d.errstr = errstr;
  d.errstr_size = errstr_size;
  if (errstr != NULL && errstr_size > 0)
    errstr[0] = '\0';
  if (key != NULL && key_len > CM_EVENT_MAX_BYTES)
    return cm_fail(errstr, errstr_size, CM_ERR_TOO_LARGE,
                   "key of %zu bytes is over the limit of %d bytes", key_len,
                   CM_EVENT_MAX_BYTES);
  if (value != NULL && value_len > CM_EVENT_MAX_BYTES)
    return cm_fail(errstr, errstr_size, CM_ERR_TOO_LARGE,
                   "value of %zu bytes is over the limit of %d bytes",
                   value_len, CM_EVENT_MAX_BYTES);
  if (value == NULL || value_len == 0)
    return decode_tombstone(&d);
  if (cm_dec_is_avro(value, value_len))
    return cm_dec_avro_value(opts, topic, key, key_len, value, value_len, ev,
                             errstr, errstr_size);
  rc = doc_parse(&d.val, "value", value, value_len, errstr, errstr_size);
  if (rc == CM_OK)
    rc = decode_value(&d);
  doc_free(&d.val);
  if (rc != CM_OK)
    cm_event_clear(ev);
  return rc;
}

void cm_event_clear(cm_event_t *ev) {
  int i;

  if (ev == NULL)
    return;
  for (i = 0; i < CM_MAX_COLS; i++) {
    free(ev->before[i].s);
    free(ev->after[i].s);
  }
  cm_txsnap_clear(&ev->txsnap);
  free(ev->runs);
  memset(ev, 0, sizeof(*ev));
}

cm_disposition_t cm_event_disposition(const cm_event_t *ev,
                                      const char **reason) {
  cm_disposition_t disp = CM_DISP_SKIP;
  const char *why;

  switch (ev->op) {
  case CM_OP_TOMBSTONE: why = "tombstone"; break;
  case CM_OP_MESSAGE: why = "logical decoding message"; break;
  case CM_OP_TXMETA: why = "transaction metadata"; break;
  case CM_OP_HEARTBEAT: why = "heartbeat"; break;
  case CM_OP_TRUNCATE:
    disp = CM_DISP_DEAD_LETTER;
    why = "truncate is never applied";
    break;
  case CM_OP_CREATE:
  case CM_OP_UPDATE:
  case CM_OP_DELETE:
  case CM_OP_READ:
  case CM_OP_RANGE:
    disp = CM_DISP_APPLY;
    why = NULL;
    if (ev->table == CM_TABLE_CLINIC) {
      disp = CM_DISP_SKIP;
      why = "table Clinic is not migrated";
    } else if (ev->table == CM_TABLE_NONE) {
      disp = CM_DISP_DEAD_LETTER;
      why = "unknown table";
    }
    break;
  default:
    disp = CM_DISP_DEAD_LETTER;
    why = "unknown op";
    break;
  }
  if (reason != NULL)
    *reason = why;
  return disp;
}
