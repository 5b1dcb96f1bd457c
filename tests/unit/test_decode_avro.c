/*
 * test_decode_avro.c — the Avro decoder against messages built byte by
 *                      byte.
 *
 * NOTES
 * The fixtures of tests/data/decode-avro check that python3-avro's
 * messages decode as their JSON twins; this file checks what a writer
 * would never produce: lengths past the end, negative lengths, a union
 * branch that does not exist, trailing bytes, a type the catalog refuses,
 * and the two ways a schema source can fail (no source, a registry that
 * cannot be reached). Messages are built here, field by field, against
 * schemas written into a temporary schema directory: 5 (an envelope of
 * User), 6 (its key), 7 (the envelope with clinicId as a string), 8 (a
 * range marker of clinicmig-replay in a shape of its own: fields in
 * another order, ints, a union, arrays in several blocks) and 9 (the
 * envelope with updatedAt a long without a semantic type).
 *
 * It also holds schemas/replay.avsc, the replay topic's value schema, to
 * the catalog (cm_catalog.h): every column of every table, in order, with
 * the Avro type and nullability Debezium would give it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avro.h>
#include <cjson/cJSON.h>
#include <cmocka.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_event.h"
#include "clinicmig/cm_schemas.h"

#define USER_TOPIC "legacy.public.User"

static const char envelope_fmt[] =
    "{\"type\":\"record\",\"name\":\"Envelope\",\"namespace\":"
    "\"legacy.public.User\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"record\",\"name\":"
    "\"Value\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"int\"},"
    "{\"name\":\"clinicId\",\"type\":\"%s\"},"
    "{\"name\":\"email\",\"type\":\"string\"},"
    "{\"name\":\"firstName\",\"type\":\"string\"},"
    "{\"name\":\"lastName\",\"type\":\"string\"},"
    "{\"name\":\"role\",\"type\":{\"type\":\"string\",\"connect.name\":"
    "\"io.debezium.data.Enum\"}},"
    "{\"name\":\"isActive\",\"type\":\"boolean\"},"
    "{\"name\":\"createdAt\",\"type\":{\"type\":\"string\",\"connect.name\":"
    "\"io.debezium.time.ZonedTimestamp\"}},"
    "{\"name\":\"updatedAt\",\"type\":{\"type\":\"long\",\"connect.name\":"
    "\"io.debezium.time.MicroTimestamp\"}},"
    "{\"name\":\"phone\",\"type\":[\"null\",\"string\"],\"default\":null}"
    "]}],\"default\":null},"
    "{\"name\":\"after\",\"type\":[\"null\",\"Value\"],\"default\":null},"
    "{\"name\":\"source\",\"type\":{\"type\":\"record\",\"name\":\"Source\","
    "\"fields\":[{\"name\":\"table\",\"type\":\"string\"},"
    "{\"name\":\"lsn\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"txId\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"snapshot\",\"type\":[\"string\",\"null\"]}]}},"
    "{\"name\":\"op\",\"type\":\"string\"},"
    "{\"name\":\"ts_ms\",\"type\":[\"null\",\"long\"]}]}";

static const char key_schema[] =
    "{\"type\":\"record\",\"name\":\"Key\",\"namespace\":"
    "\"legacy.public.User\",\"fields\":[{\"name\":\"id\",\"type\":\"int\"}]}";

/* A range marker: op, range (present first, of ints; first optional),
 * then source without lsn. */
static const char marker_schema[] =
    "{\"type\":\"record\",\"name\":\"Marker\",\"fields\":["
    "{\"name\":\"op\",\"type\":\"string\"},"
    "{\"name\":\"range\",\"type\":{\"type\":\"record\",\"name\":"
    "\"Range\",\"fields\":["
    "{\"name\":\"present\",\"type\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"array\",\"items\":\"int\"}}},"
    "{\"name\":\"last\",\"type\":\"long\"},"
    "{\"name\":\"first\",\"type\":[\"null\",\"int\"]}]}},"
    "{\"name\":\"source\",\"type\":{\"type\":\"record\",\"name\":"
    "\"Source\",\"fields\":[{\"name\":\"table\",\"type\":\"string\"},"
    "{\"name\":\"txid_snapshot\",\"type\":\"string\"}]}}]}";

/* A message under construction. */
typedef struct out_s {
  unsigned char b[1024];
  size_t n;
} out_t;

static char dir[64];
static cm_schemas_t *schemas;

static void put_byte(out_t *o, int c) {
  assert_true(o->n < sizeof(o->b));
  o->b[o->n++] = (unsigned char)c;
}

static void put_long(out_t *o, int64_t v) {
  uint64_t u = ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);

  while (u >= 0x80) {
    put_byte(o, (int)(u & 0x7f) | 0x80);
    u >>= 7;
  }
  put_byte(o, (int)u);
}

static void put_str(out_t *o, const char *s) {
  size_t n = strlen(s);

  put_long(o, (int64_t)n);
  assert_true(o->n + n <= sizeof(o->b));
  memcpy(o->b + o->n, s, n);
  o->n += n;
}

static void header(out_t *o, int id) {
  o->n = 0;
  put_byte(o, 0);
  put_byte(o, 0);
  put_byte(o, 0);
  put_byte(o, 0);
  put_byte(o, id);
}

/* The after image of User 7; clinicId as the string @p clinic under
 * schema 7. */
static void put_row(out_t *o, const char *clinic) {
  put_long(o, 7);
  if (clinic != NULL)
    put_str(o, clinic);
  else
    put_long(o, 3);
  put_str(o, "i.petrov@clinic3.example");
  put_str(o, "Ivan");
  put_str(o, "Petrov");
  put_str(o, "DOCTOR");
  put_byte(o, 1);
  put_str(o, "2023-05-10T07:00:00Z");
  put_long(o, INT64_C(1737540930123456));
  put_long(o, 1); /* phone: the string branch */
  put_str(o, "+79990001122");
}

static void put_tail(out_t *o) {
  put_str(o, "User");
  put_long(o, 1);
  put_long(o, 24023128);
  put_long(o, 1);
  put_long(o, 771);
  put_long(o, 0);
  put_str(o, "false");
  put_str(o, "u");
  put_long(o, 1);
  put_long(o, INT64_C(1737540930789));
}

static void envelope(out_t *o, int schema_id) {
  header(o, schema_id);
  put_long(o, 0); /* before: null */
  put_long(o, 1); /* after: Value */
  put_row(o, schema_id == 7 ? "x-secret-3" : NULL);
  put_tail(o);
}

static void avro_key(out_t *o) {
  header(o, 6);
  put_long(o, 7);
}

static void write_file(const char *name, const char *text) {
  char path[128];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* @p text with the first @p from replaced by @p to, into @p out. */
static void replace(char *out, size_t size, const char *text, const char *from,
                    const char *to) {
  const char *at = strstr(text, from);

  assert_non_null(at);
  snprintf(out, size, "%.*s%s%s", (int)(at - text), text, to,
           at + strlen(from));
}

static int setup(void **state) {
  char text[4096], text9[4096];
  cm_schemas_conf_t sc = {NULL, NULL, NULL, dir, 0};
  char err[256];

  snprintf(dir, sizeof(dir), "/tmp/cm-avro-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(text, sizeof(text), envelope_fmt, "int");
  write_file("5.avsc", text);
  write_file("6.avsc", key_schema);
  snprintf(text, sizeof(text), envelope_fmt, "string");
  write_file("7.avsc", text);
  write_file("8.avsc", marker_schema);
  snprintf(text, sizeof(text), envelope_fmt, "int");
  replace(text9, sizeof(text9), text,
          "{\"type\":\"long\",\"connect.name\":"
          "\"io.debezium.time.MicroTimestamp\"}",
          "\"long\"");
  write_file("9.avsc", text9);
  schemas = cm_schemas_new(&sc, err, sizeof(err));
  return schemas != NULL ? 0 : -1;
}

static int teardown(void **state) {
  char path[128];
  const char *names[] = {"5.avsc", "6.avsc", "7.avsc", "8.avsc", "9.avsc"};
  size_t i;

  cm_schemas_destroy(schemas);
  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
  return 0;
}

static int decode(const out_t *key, const out_t *val, cm_event_t *ev, char *err,
                  size_t size) {
  return cm_event_decode2(USER_TOPIC, key->b, key->n, val->b, val->n, schemas,
                          ev, err, size);
}

/* A decode that must fail: the event left empty, the reason given. */
static void expect_bad(const out_t *key, const out_t *val, const char *want) {
  char err[256];
  cm_event_t ev;

  assert_int_equal(decode(key, val, &ev, err, sizeof(err)), CM_ERR_BAD_INPUT);
  if (strstr(err, want) == NULL)
    fail_msg("reason \"%s\" lacks \"%s\"", err, want);
  assert_int_equal(ev.op, 0);
  assert_null(strstr(err, "petrov"));
  assert_null(strstr(err, "secret"));
}

static void test_good(void **state) {
  out_t k, v;
  char err[256];
  cm_event_t ev;

  avro_key(&k);
  envelope(&v, 5);
  assert_int_equal(decode(&k, &v, &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.table, CM_TABLE_USER);
  assert_int_equal(ev.op, CM_OP_UPDATE);
  assert_int_equal(ev.key, 7);
  assert_int_equal(ev.lsn, 24023128);
  assert_int_equal(ev.tx_id, 771);
  assert_int_equal(ev.ts_ms, INT64_C(1737540930789));
  assert_int_equal(ev.after[CM_USER_CLINIC_ID].i, 3);
  assert_string_equal(ev.after[CM_USER_EMAIL].s, "i.petrov@clinic3.example");
  assert_string_equal(ev.after[CM_USER_PHONE].s, "+79990001122");
  assert_int_equal(ev.after[CM_USER_IS_ACTIVE].i, 1);
  assert_int_equal(ev.after[CM_USER_UPDATED_AT].kind, CM_VAL_TIMESTAMP);
  assert_int_equal(ev.after[CM_USER_UPDATED_AT].i, INT64_C(1737540930123456));
  assert_int_equal(ev.after[CM_USER_CREATED_AT].i, INT64_C(1683702000000000));
  /* not in the writer, nullable in the catalog */
  assert_int_equal(ev.after[CM_USER_SPECIALIZATION].kind, CM_VAL_NULL);
  assert_int_equal(ev.has_before, 0);
  cm_event_clear(&ev);
}

/* JSON key with an Avro value, and the other way round. */
static void test_mixed_formats(void **state) {
  out_t k, v;
  char err[256];
  cm_event_t ev;
  const char json_key[] = "{\"id\":7}";
  const char tomb_topic[] = "legacy.public.User";

  envelope(&v, 5);
  assert_int_equal(cm_event_decode2(USER_TOPIC, json_key, strlen(json_key), v.b,
                                    v.n, schemas, &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.key, 7);
  cm_event_clear(&ev);
  avro_key(&k);
  assert_int_equal(cm_event_decode2(tomb_topic, k.b, k.n, NULL, 0, schemas, &ev,
                                    err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.op, CM_OP_TOMBSTONE);
  assert_int_equal(ev.key, 7);
  cm_event_clear(&ev);
}

static void test_lengths(void **state) {
  out_t k, v;
  size_t email_at;

  avro_key(&k);
  envelope(&v, 5);
  /* the email's length: after header, before/after branches, id, clinicId */
  email_at = 5 + 1 + 1 + 1 + 1;
  v.b[email_at] = 0x7e; /* 63 bytes, of which 10 are left */
  v.n = email_at + 1 + 10;
  expect_bad(&k, &v, "does not match its writer schema");
  envelope(&v, 5);
  v.n = email_at;
  put_long(&v, INT64_C(1) << 60); /* a length of 2^60 bytes */
  expect_bad(&k, &v, "does not match its writer schema");
  envelope(&v, 5);
  v.n = email_at;
  put_long(&v, -5); /* a negative length */
  put_str(&v, "abcde");
  expect_bad(&k, &v, "does not match its writer schema");
  envelope(&v, 5);
  v.n = email_at;
  for (size_t i = 0; i < 11; i++)
    put_byte(&v, 0xff); /* a varint longer than ten bytes */
  expect_bad(&k, &v, "does not match its writer schema");
}

static void test_structure(void **state) {
  out_t k, v;

  avro_key(&k);
  envelope(&v, 5);
  v.b[6] = 0x04; /* after: union branch 2 of 2 */
  expect_bad(&k, &v, "does not match its writer schema");
  envelope(&v, 5);
  put_byte(&v, 0);
  expect_bad(&k, &v, "1 trailing bytes after the Avro data");
  envelope(&v, 5);
  v.n = 4;
  expect_bad(&k, &v, "shorter than its 5-byte header");
  envelope(&v, 99);
  expect_bad(&k, &v, "schema id 99: no 99.avsc in the schema directory");
  envelope(&v, 7);
  expect_bad(&k, &v, "after.clinicId: not an integer");
  header(&k, 6);
  put_long(&k, 8);
  envelope(&v, 5);
  expect_bad(&k, &v, "after.id: 7 does not match the key 8");
  header(&k, 5);
  expect_bad(&k, &v, "key: Avro data does not match");
}

static void test_without_source(void **state) {
  out_t k, v;
  char err[256];
  cm_event_t ev;

  avro_key(&k);
  envelope(&v, 5);
  assert_int_equal(
      cm_event_decode(USER_TOPIC, k.b, k.n, v.b, v.n, &ev, err, sizeof(err)),
      CM_ERR_BAD_INPUT);
  assert_non_null(strstr(err, "no schema registry or directory"));
}

/* Decimal text in an integer column (decimal.handling.mode=string), and a
 * timestamp without a semantic type, read in the configured unit as
 * decode.c reads schemaless JSON. */
static void test_text_and_units(void **state) {
  cm_decode_opts_t o = {NULL, CM_TIME_ADAPTIVE, NULL};
  cm_coltypes_t types;
  out_t k, v;
  char err[512];
  cm_event_t ev;

  avro_key(&k);
  header(&v, 7);
  put_long(&v, 0);
  put_long(&v, 1);
  put_row(&v, "3");
  put_tail(&v);
  assert_int_equal(decode(&k, &v, &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.after[CM_USER_CLINIC_ID].kind, CM_VAL_INT);
  assert_int_equal(ev.after[CM_USER_CLINIC_ID].i, 3);
  cm_event_clear(&ev);
  envelope(&v, 9);
  expect_bad(&k, &v, "after.updatedAt: an integer, but a timestamptz column");
  assert_int_equal(cm_coltypes_parse("User.updatedAt=timestamp(6)", &types, err,
                                     sizeof(err)),
                   0);
  o.schemas = schemas;
  o.coltypes = &types;
  assert_int_equal(cm_event_decode_opts(USER_TOPIC, k.b, k.n, v.b, v.n, &o, &ev,
                                        err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.after[CM_USER_UPDATED_AT].i, INT64_C(1737540930123456));
  cm_event_clear(&ev);
  o.time_mode = CM_TIME_CONNECT;
  assert_int_equal(cm_event_decode_opts(USER_TOPIC, k.b, k.n, v.b, v.n, &o, &ev,
                                        err, sizeof(err)),
                   CM_ERR_BAD_INPUT);
  assert_string_equal(err, "after.updatedAt: timestamp out of range in "
                           "milliseconds (time.precision.mode connect, "
                           "legacy type timestamp(4-6))");
}

/* A registry that cannot be reached is no fault of the message. */
static void test_registry_down(void **state) {
  cm_schemas_conf_t sc = {"http://127.0.0.1:1", "u:p", NULL, NULL, 500};
  cm_schemas_t *down;
  out_t k, v;
  char err[256];
  cm_event_t ev;

  down = cm_schemas_new(&sc, err, sizeof(err));
  assert_non_null(down);
  avro_key(&k);
  envelope(&v, 5);
  assert_int_equal(cm_event_decode2(USER_TOPIC, k.b, k.n, v.b, v.n, down, &ev,
                                    err, sizeof(err)),
                   CM_ERR_RETRY);
  assert_non_null(strstr(err, "schema registry"));
  assert_int_equal(ev.op, 0);
  cm_schemas_destroy(down);
}

/* ---- range markers ----------------------------------------------------- */

/* Marker of Patient [1, 40] holding 1-3, 5-9 and 20-40 in snapshot
 * @p snap: the first block of runs has a negative count (with its size in
 * bytes), the first run is an array in one-item blocks. Bytes 0-10 are
 * the header and op; present starts at byte 11, the first run's items
 * are bytes 14 and 16. @p first_null: range.first is null; @p third: the
 * number of items of the third run (2, or 1 or 3 to break it). */
static void marker(out_t *o, int first_null, const char *snap, int third) {
  static const int64_t items[] = {20, 40, 41};

  header(o, 8);
  put_str(o, "range");
  put_long(o, -2); /* a block of two runs ... */
  put_long(o, 9);  /* ... of 9 bytes */
  put_long(o, 1);
  put_long(o, 1);
  put_long(o, 1);
  put_long(o, 3);
  put_long(o, 0);
  put_long(o, 2);
  put_long(o, 5);
  put_long(o, 9);
  put_long(o, 0);
  put_long(o, 1); /* a block of one run, of @p third items */
  put_long(o, third);
  for (int i = 0; i < third; i++)
    put_long(o, items[i]);
  put_long(o, 0);
  put_long(o, 0); /* the end of present */
  put_long(o, 40);
  put_long(o, first_null ? 0 : 1);
  if (!first_null)
    put_long(o, 1);
  put_str(o, "Patient");
  put_str(o, snap);
}

static int decode_marker(const out_t *v, cm_event_t *ev, char *err,
                         size_t size) {
  return cm_event_decode2("clinicmig.replay", NULL, 0, v->b, v->n, schemas, ev,
                          err, size);
}

/* Fields are taken by name, whatever their order, type width or blocks;
 * a marker needs no key and, with its snapshot, no LSN. */
static void test_marker(void **state) {
  static const int64_t runs[] = {1, 3, 5, 9, 20, 40};
  char err[256];
  cm_event_t ev;
  out_t v;

  marker(&v, 0, "5:10:7", 2);
  assert_int_equal(decode_marker(&v, &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.op, CM_OP_RANGE);
  assert_int_equal(ev.table, CM_TABLE_PATIENT);
  assert_int_equal(ev.key, 1);
  assert_int_equal(ev.range_first, 1);
  assert_int_equal(ev.range_last, 40);
  assert_int_equal(ev.n_runs, 3);
  assert_memory_equal(ev.runs, runs, sizeof(runs));
  assert_int_equal(ev.has_txsnap, 1);
  assert_int_equal(ev.txsnap.xmin, 5);
  assert_int_equal(ev.txsnap.xmax, 10);
  assert_int_equal(ev.txsnap.n_xip, 1);
  assert_int_equal(ev.has_lsn, 0);
  assert_int_equal(cm_event_disposition(&ev, NULL), CM_DISP_APPLY);
  cm_event_clear(&ev);
}

static void expect_bad_marker(const out_t *v, const char *want) {
  char err[256];
  cm_event_t ev;

  assert_int_equal(decode_marker(v, &ev, err, sizeof(err)), CM_ERR_BAD_INPUT);
  if (strstr(err, want) == NULL)
    fail_msg("reason \"%s\" lacks \"%s\"", err, want);
  assert_int_equal(ev.op, 0);
  assert_null(ev.runs);
}

static void test_marker_faults(void **state) {
  out_t v;

  marker(&v, 1, "5:10:7", 2);
  expect_bad_marker(&v, "range: missing or without first <= last");
  marker(&v, 0, "5:10:7", 3);
  expect_bad_marker(&v, "range.present: not a list of [first, last] runs");
  marker(&v, 0, "5:10:7", 1);
  expect_bad_marker(&v, "range.present: not a list of [first, last] runs");
  marker(&v, 0, "5:10:7", 2);
  v.b[16] = 10; /* the first run ends at 5: 1-5, then 5-9 */
  expect_bad_marker(&v, "range.present: runs not sorted, disjoint and within");
  marker(&v, 0, "5:10:7", 2);
  v.n = 15; /* cut inside the runs */
  expect_bad_marker(&v, "value: Avro data does not match its writer schema");
  header(&v, 8);
  put_str(&v, "range");
  put_long(&v, INT64_C(1) << 40); /* a block of 2^40 runs */
  expect_bad_marker(&v, "value: Avro data does not match its writer schema");
  marker(&v, 0, "10:5:", 2);
  expect_bad_marker(&v, "source.txid_snapshot: not a snapshot");
}

/* The Avro type and nullability Debezium gives a column of the catalog. */
static void check_column(avro_schema_t rec, int i, const cm_column_t *col) {
  static const char *const base[] = {[CM_COL_INT] = "long",
                                     [CM_COL_TEXT] = "string",
                                     [CM_COL_BOOL] = "boolean",
                                     [CM_COL_DATE] = "int",
                                     [CM_COL_TIMESTAMP] = "string"};
  avro_schema_t t = avro_schema_record_field_get_by_index(rec, i);
  int nullable = 0;

  assert_string_equal(avro_schema_record_field_name(rec, i), col->name);
  if (avro_typeof(t) == AVRO_UNION) {
    assert_int_equal(avro_schema_union_size(t), 2);
    assert_int_equal(avro_typeof(avro_schema_union_branch(t, 0)), AVRO_NULL);
    t = avro_schema_union_branch(t, 1);
    nullable = 1;
  }
  if (nullable != col->nullable)
    fail_msg("column %s: nullable %d in the schema, %d in the catalog",
             col->name, nullable, col->nullable);
  assert_string_equal(avro_schema_type_name(t), base[col->type]);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  char *text;
  long n;

  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  rewind(f);
  text = malloc((size_t)n + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
  text[n] = '\0';
  fclose(f);
  return text;
}

/* schemas/replay.avsc against the catalog; the fixtures' copy (id 100,
 * written by tests/data/decode-avro/gen.py) is the same schema. */
static void test_replay_schema(void **state) {
  static const cm_table_t tables[] = {CM_TABLE_USER, CM_TABLE_PATIENT,
                                      CM_TABLE_APPOINTMENT};
  char *text = slurp(CM_SOURCE_DIR "/schemas/replay.avsc");
  char *copy = slurp(CM_SOURCE_DIR "/tests/data/decode-avro/schemas/100.avsc");
  cJSON *a = cJSON_Parse(text), *b = cJSON_Parse(copy);
  avro_schema_t s, u, rec;
  const cm_column_t *cols;
  char ns[64];
  size_t t;
  int i, n, found;

  assert_true(cJSON_Compare(a, b, 1));
  assert_int_equal(avro_schema_from_json_length(text, strlen(text), &s), 0);
  u = avro_schema_record_field_get(s, "after");
  assert_int_equal(avro_typeof(u), AVRO_UNION);
  assert_int_equal(avro_schema_union_size(u), 4);
  for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
    snprintf(ns, sizeof(ns), "clinicmig.replay.%s", cm_table_name(tables[t]));
    cols = cm_table_columns(tables[t], &n);
    for (found = 0, i = 1; i < 4; i++) {
      rec = avro_schema_union_branch(u, i);
      if (avro_typeof(rec) == AVRO_LINK)
        rec = avro_schema_link_target(rec);
      if (strcmp(avro_schema_namespace(rec), ns) != 0)
        continue;
      found = 1;
      assert_int_equal(avro_schema_record_size(rec), n);
      for (int c = 0; c < n; c++)
        check_column(rec, c, &cols[c]);
    }
    assert_true(found);
  }
  avro_schema_decref(s);
  cJSON_Delete(a);
  cJSON_Delete(b);
  free(text);
  free(copy);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_mixed_formats),
      cmocka_unit_test(test_lengths),
      cmocka_unit_test(test_structure),
      cmocka_unit_test(test_without_source),
      cmocka_unit_test(test_text_and_units),
      cmocka_unit_test(test_registry_down),
      cmocka_unit_test(test_marker),
      cmocka_unit_test(test_marker_faults),
      cmocka_unit_test(test_replay_schema),
  };

  return cmocka_run_group_tests(tests, setup, teardown);
}
