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
 * User), 6 (its key), 7 (the envelope with clinicId as a string) and 8
 * (the envelope with updatedAt a long without a semantic type).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  char text[4096], text8[4096];
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
  snprintf(text, sizeof(text), envelope_fmt, "int");
  replace(text8, sizeof(text8), text,
          "{\"type\":\"long\",\"connect.name\":"
          "\"io.debezium.time.MicroTimestamp\"}",
          "\"long\"");
  write_file("8.avsc", text8);
  schemas = cm_schemas_new(&sc, err, sizeof(err));
  return schemas != NULL ? 0 : -1;
}

static int teardown(void **state) {
  char path[128];
  const char *names[] = {"5.avsc", "6.avsc", "7.avsc", "8.avsc"};
  size_t i;

  cm_schemas_destroy(schemas);
  for (i = 0; i < 4; i++) {
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
  envelope(&v, 8);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_mixed_formats),
      cmocka_unit_test(test_lengths),
      cmocka_unit_test(test_structure),
      cmocka_unit_test(test_without_source),
      cmocka_unit_test(test_text_and_units),
      cmocka_unit_test(test_registry_down),
  };

  return cmocka_run_group_tests(tests, setup, teardown);
}
