/*
 * test_decode.c — the Debezium event decoder against real-shaped messages.
 *
 * NOTES
 * Fixtures in tests/data/decode/ are shaped like the PostgreSQL connector's
 * output (Debezium 2.7, one in 1.x layout) for our legacy tables: NAME.json
 * is the message value, NAME.key.json its key. Variations (a wrong type, a
 * missing field) are made here from an inline no-schema User event, one
 * change per row of a table, so each bad input is named next to the reason
 * it must give. Every failing decode is also checked to leave the event
 * empty, and no reason may echo a column's value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_event.h"

#ifndef CM_TEST_DATA_DIR
#error "CM_TEST_DATA_DIR must name tests/data"
#endif

#define PATIENT_TOPIC "legacy.public.Patient"
#define USER_TOPIC "legacy.public.User"

/* An update of User 7 without a schema: the base of the inline cases. */
static const char user_event[] =
    "{\"before\":null,\"after\":{\"id\":7,\"clinicId\":3,"
    "\"email\":\"i.petrov@clinic3.example\",\"phone\":null,"
    "\"firstName\":\"Ivan\",\"lastName\":\"Petrov\",\"role\":\"DOCTOR\","
    "\"specialization\":null,\"licenseNumber\":null,\"isActive\":true,"
    "\"createdAt\":\"2023-05-10T07:00:00Z\","
    "\"updatedAt\":\"2025-01-22T10:15:30.123456Z\"},"
    "\"source\":{\"version\":\"2.7.3.Final\",\"connector\":\"postgresql\","
    "\"name\":\"legacy\",\"ts_ms\":1737540930456,\"snapshot\":\"false\","
    "\"db\":\"clinic\",\"sequence\":\"[\\\"24023064\\\",\\\"24023128\\\"]\","
    "\"schema\":\"public\",\"table\":\"User\",\"txId\":771,"
    "\"lsn\":24023128,\"xmin\":null},"
    "\"transaction\":null,\"op\":\"u\",\"ts_ms\":1737540930789}";

static const char user_key[] = "{\"id\":7}";

/* ---- helpers ------------------------------------------------------------ */

/* Reads tests/data/decode/NAME; NULL (and *len 0) if there is none. */
static char *load(const char *name, size_t *len) {
  char path[512];
  FILE *f;
  char *buf;
  long n;

  snprintf(path, sizeof(path), "%s/decode/%s", CM_TEST_DATA_DIR, name);
  *len = 0;
  f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* Decodes fixture BASE.json with key BASE.key.json (if it exists). */
static int decode_fixture(const char *topic, const char *base, cm_event_t *ev,
                          char *err, size_t err_size) {
  char name[256];
  size_t klen, vlen;
  char *key, *val;
  int rc;

  snprintf(name, sizeof(name), "%s.key.json", base);
  key = load(name, &klen);
  snprintf(name, sizeof(name), "%s.json", base);
  val = load(name, &vlen);
  assert_non_null(val);
  rc = cm_event_decode(topic, key, klen, val, vlen, ev, err, err_size);
  free(key);
  free(val);
  return rc;
}

static int decode_str(const char *key, const char *val, cm_event_t *ev,
                      char *err, size_t err_size) {
  return cm_event_decode(USER_TOPIC, key, key ? strlen(key) : 0, val,
                         val ? strlen(val) : 0, ev, err, err_size);
}

/* Asserts a decode fails with @p want in the reason, leaving ev empty. */
static void expect_bad(const char *key, const char *val, const char *want) {
  static const cm_event_t zero;
  cm_event_t ev;
  char err[256];
  int rc;

  memset(&ev, 0x5a, sizeof(ev));
  rc = decode_str(key, val, &ev, err, sizeof(err));
  if (rc != CM_ERR_BAD_INPUT || strstr(err, want) == NULL) {
    print_error("value %s\nwant bad input \"%s\", got %d \"%s\"\n", val, want,
                rc, err);
    if (rc == CM_OK)
      cm_event_clear(&ev);
    fail();
  }
  assert_null(strchr(err, '\n'));
  assert_memory_equal(&ev, &zero, sizeof(ev));
}

/*
 * @p base with one member replaced: @p obj is "" (the envelope), "after",
 * "before" or "source"; @p raw is the new value as JSON text, spliced in
 * verbatim (cJSON would round numbers and drop \u0000), or NULL to remove
 * the member. The caller frees the result.
 */
static char *mutate(const char *base, const char *obj, const char *field,
                    const char *raw) {
  static const char mark[] = "\"@@raw@@\"";
  cJSON *root, *parent;
  char *text, *out, *at;
  size_t n;

  root = cJSON_Parse(base);
  assert_non_null(root);
  parent = obj[0] == '\0' ? root : cJSON_GetObjectItemCaseSensitive(root, obj);
  if (cJSON_IsNull(parent)) {
    cJSON_ReplaceItemInObjectCaseSensitive(root, obj, cJSON_CreateObject());
    parent = cJSON_GetObjectItemCaseSensitive(root, obj);
  }
  assert_non_null(parent);
  cJSON_DeleteItemFromObjectCaseSensitive(parent, field);
  if (raw != NULL)
    cJSON_AddStringToObject(parent, field, "@@raw@@");
  text = cJSON_PrintUnformatted(root);
  assert_non_null(text);
  cJSON_Delete(root);
  at = strstr(text, mark);
  if (at == NULL)
    return text;
  n = strlen(text) + strlen(raw) + 1;
  out = malloc(n);
  assert_non_null(out);
  snprintf(out, n, "%.*s%s%s", (int)(at - text), text, raw, at + strlen(mark));
  free(text);
  return out;
}

/* Decodes the base User event with one member replaced; must succeed. */
static void decode_mutated(const char *obj, const char *field, const char *raw,
                           cm_event_t *ev) {
  char err[256];
  char *val = mutate(user_event, obj, field, raw);
  int rc = decode_str(user_key, val, ev, err, sizeof(err));

  if (rc != CM_OK) {
    print_error("%s.%s = %s: %s\n", obj, field, raw ? raw : "(removed)", err);
    fail();
  }
  free(val);
}

static void expect_mutated_bad(const char *obj, const char *field,
                               const char *raw, const char *want) {
  char *val = mutate(user_event, obj, field, raw);

  expect_bad(user_key, val, want);
  free(val);
}

static void expect_json(const cm_event_t *ev, const char *want);

static void assert_disp(const cm_event_t *ev, cm_disposition_t want,
                        const char *want_reason) {
  const char *reason = "unset";

  assert_int_equal(cm_event_disposition(ev, &reason), want);
  if (want_reason == NULL)
    assert_null(reason);
  else
    assert_string_equal(reason, want_reason);
}

/* ---- tables ---------------------------------------------------------------
 */

static void test_tables(void **state) {
  const cm_column_t *c;
  int n;

  (void)state;
  c = cm_table_columns(CM_TABLE_USER, &n);
  assert_int_equal(n, CM_USER__CNT);
  assert_string_equal(c[CM_USER_LICENSE_NUMBER].name, "licenseNumber");
  assert_string_equal(c[CM_USER_LICENSE_NUMBER].sql, "license_number");
  assert_true(c[CM_USER_LICENSE_NUMBER].nullable);
  assert_int_equal(c[CM_USER_IS_ACTIVE].type, CM_COL_BOOL);
  assert_false(c[CM_USER_EMAIL].nullable);
  c = cm_table_columns(CM_TABLE_PATIENT, &n);
  assert_int_equal(n, CM_PATIENT__CNT);
  assert_string_equal(c[CM_PATIENT_BIRTH_DATE].sql, "birth_date");
  assert_int_equal(c[CM_PATIENT_BIRTH_DATE].type, CM_COL_DATE);
  assert_true(c[CM_PATIENT_EMAIL].nullable);
  c = cm_table_columns(CM_TABLE_APPOINTMENT, &n);
  assert_int_equal(n, CM_APPT__CNT);
  assert_string_equal(c[CM_APPT_STARTS_AT].sql, "starts_at");
  assert_int_equal(c[CM_APPT_DOCTOR_ID].type, CM_COL_INT);
  assert_true(c[CM_APPT_REASON].nullable);
  c = cm_table_columns(CM_TABLE_CLINIC, &n);
  assert_int_equal(n, CM_CLINIC__CNT);
  assert_string_equal(c[CM_CLINIC_UPDATED_AT].name, "updatedAt");
  assert_null(cm_table_columns(CM_TABLE_NONE, &n));
  assert_int_equal(n, 0);
  assert_string_equal(cm_table_name(CM_TABLE_APPOINTMENT), "Appointment");
  assert_string_equal(cm_table_name(CM_TABLE_NONE), "?");
  assert_int_equal(cm_table_from_name("User"), CM_TABLE_USER);
  assert_int_equal(cm_table_from_name("user"), CM_TABLE_NONE);
  assert_int_equal(cm_table_from_name(NULL), CM_TABLE_NONE);
}

/* ---- every op --------------------------------------------------------- */

/* c, with schemas.enable=true: key and value wrapped with their schemas. */
static void test_create_schema_form(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture(PATIENT_TOPIC, "patient-create", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.op, CM_OP_CREATE);
  assert_int_equal(ev.table, CM_TABLE_PATIENT);
  assert_int_equal(ev.key, 42);
  assert_true(ev.has_lsn);
  assert_int_equal(ev.lsn, 24023128);
  assert_true(ev.has_tx_id);
  assert_int_equal(ev.tx_id, 771);
  assert_int_equal(ev.snapshot, CM_SNAP_FALSE);
  assert_int_equal(ev.ts_ms, 1737540930789);
  assert_int_equal(ev.source_ts_ms, 1737540930456);
  assert_false(ev.has_before);
  assert_true(ev.has_after);
  assert_int_equal(ev.after[CM_PATIENT_ID].kind, CM_VAL_INT);
  assert_int_equal(ev.after[CM_PATIENT_CLINIC_ID].i, 3);
  assert_int_equal(ev.after[CM_PATIENT_FIRST_NAME].kind, CM_VAL_TEXT);
  assert_string_equal(ev.after[CM_PATIENT_FIRST_NAME].s, "Анна");
  assert_string_equal(ev.after[CM_PATIENT_EMAIL].s,
                      " Anna.Smirnova@Example.ru ");
  assert_int_equal(ev.after[CM_PATIENT_BIRTH_DATE].kind, CM_VAL_DATE);
  assert_int_equal(ev.after[CM_PATIENT_BIRTH_DATE].i, 6310); /* 1987-04-12 */
  assert_int_equal(ev.after[CM_PATIENT_CREATED_AT].kind, CM_VAL_TIMESTAMP);
  assert_int_equal(ev.after[CM_PATIENT_CREATED_AT].i, 1737540930123000);
  assert_int_equal(ev.before[CM_PATIENT_ID].kind, CM_VAL_ABSENT);
  assert_string_equal(err, "");
  assert_disp(&ev, CM_DISP_APPLY, NULL);
  cm_event_clear(&ev);
}

/* u, without schemas; before is null (REPLICA IDENTITY DEFAULT). */
static void test_update_no_schema(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture(PATIENT_TOPIC, "patient-update", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.op, CM_OP_UPDATE);
  assert_int_equal(ev.key, 42);
  assert_int_equal(ev.lsn, 24060312);
  assert_false(ev.has_before);
  assert_int_equal(ev.after[CM_PATIENT_MIDDLE_NAME].kind, CM_VAL_NULL);
  assert_string_equal(ev.after[CM_PATIENT_PHONE].s, "+7 912 345 67 89");
  /* "2025-01-23T08:00:05.5+03:00" */
  assert_int_equal(ev.after[CM_PATIENT_UPDATED_AT].i, 1737608405500000);
  assert_disp(&ev, CM_DISP_APPLY, NULL);
  cm_event_clear(&ev);
}

/* d with a key-only before image, as REPLICA IDENTITY DEFAULT gives. */
static void test_delete_partial_before(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture(PATIENT_TOPIC, "patient-delete", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.op, CM_OP_DELETE);
  assert_int_equal(ev.key, 42);
  assert_int_equal(ev.lsn, 24101576);
  assert_true(ev.has_before);
  assert_false(ev.has_after);
  assert_int_equal(ev.before[CM_PATIENT_ID].kind, CM_VAL_INT);
  assert_int_equal(ev.before[CM_PATIENT_ID].i, 42);
  assert_int_equal(ev.before[CM_PATIENT_FIRST_NAME].kind, CM_VAL_ABSENT);
  assert_int_equal(ev.before[CM_PATIENT_CREATED_AT].kind, CM_VAL_ABSENT);
  assert_disp(&ev, CM_DISP_APPLY, NULL);
  cm_event_clear(&ev);
}

/* d with before null (REPLICA IDENTITY NOTHING): the key names the row. */
static void test_delete_null_before(void **state) {
  cm_event_t ev;
  char *val, *val2;

  (void)state;
  val = mutate(user_event, "", "op", "\"d\"");
  val2 = mutate(val, "", "after", "null");
  assert_int_equal(decode_str(user_key, val2, &ev, NULL, 0), CM_OK);
  assert_int_equal(ev.op, CM_OP_DELETE);
  assert_int_equal(ev.key, 7);
  assert_false(ev.has_before);
  assert_false(ev.has_after);
  cm_event_clear(&ev);
  free(val);
  free(val2);
}

/* r, a snapshot read: snapshot "first", sequence with a null LSN. */
static void test_read_snapshot(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture(USER_TOPIC, "user-read", &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.op, CM_OP_READ);
  assert_int_equal(ev.table, CM_TABLE_USER);
  assert_int_equal(ev.snapshot, CM_SNAP_FIRST);
  assert_int_equal(ev.after[CM_USER_IS_ACTIVE].kind, CM_VAL_BOOL);
  assert_int_equal(ev.after[CM_USER_IS_ACTIVE].i, 1);
  assert_int_equal(ev.after[CM_USER_PHONE].kind, CM_VAL_NULL);
  assert_string_equal(ev.after[CM_USER_ROLE].s, "DOCTOR");
  assert_int_equal(ev.after[CM_USER_CREATED_AT].i, 1683702000000000);
  assert_int_equal(ev.after[CM_USER_UPDATED_AT].i, 1730550645250000);
  assert_disp(&ev, CM_DISP_APPLY, NULL);
  cm_event_clear(&ev);
}

/* A backfill row (clinicmig-replay db): ordered by its snapshot, so it
 * needs no LSN; and its range marker. */
static void test_replay_row(void **state) {
  static const char row[] =
      "{\"before\":null,\"after\":{\"id\":7,\"clinicId\":1,\"email\":"
      "\"a@b.c\",\"firstName\":\"F\",\"lastName\":\"L\",\"role\":"
      "\"DOCTOR\",\"isActive\":true,\"createdAt\":\"2024-01-01T00:00:00Z\","
      "\"updatedAt\":\"2024-01-01T00:00:00Z\"},\"source\":{\"table\":"
      "\"User\",\"snapshot\":\"true\",\"txid_snapshot\":\"100:110:107,103\"},"
      "\"op\":\"r\"}";
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(decode_str(user_key, row, &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.op, CM_OP_READ);
  assert_int_equal(ev.has_lsn, 0);
  assert_int_equal(ev.has_txsnap, 1);
  assert_int_equal(ev.txsnap.xmin, 100);
  assert_int_equal(ev.txsnap.xmax, 110);
  assert_int_equal(ev.txsnap.n_xip, 2);
  assert_int_equal(ev.txsnap.xip[0], 103); /* sorted */
  assert_int_equal(ev.txsnap.xip[1], 107);
  cm_event_clear(&ev);
}

/* The fixtures of a backfill row and a range marker decode (they also
 * seed the fuzzer's corpus). */
static void test_replay_fixtures(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture("clinicmig.replay", "replay-row", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.table, CM_TABLE_PATIENT);
  assert_int_equal(ev.has_txsnap, 1);
  assert_int_equal(ev.after[CM_PATIENT_BIRTH_DATE].i, 4018);
  cm_event_clear(&ev);
  assert_int_equal(
      decode_fixture("clinicmig.replay", "range-marker", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.op, CM_OP_RANGE);
  assert_int_equal(ev.n_runs, 2);
  assert_int_equal(ev.range_last, 1000);
  cm_event_clear(&ev);
}

static void test_range_marker(void **state) {
  static const char marker[] =
      "{\"op\":\"range\",\"source\":{\"table\":\"Patient\","
      "\"txid_snapshot\":\"4294967806:4294967810:\",\"lsn\":5},"
      "\"range\":{\"first\":-9223372036854775808,\"last\":"
      "9223372036854775807,\"present\":[[1,17],[19,19]]}}";
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(cm_event_decode("clinicmig.replay", "{}", 2, marker,
                                   strlen(marker), &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.op, CM_OP_RANGE);
  assert_int_equal(ev.table, CM_TABLE_PATIENT);
  assert_true(ev.range_first == INT64_MIN);
  assert_true(ev.range_last == INT64_MAX);
  assert_int_equal(ev.n_runs, 2);
  assert_int_equal(ev.runs[0], 1);
  assert_int_equal(ev.runs[1], 17);
  assert_int_equal(ev.runs[2], 19);
  assert_int_equal(ev.runs[3], 19);
  assert_true(ev.txsnap.xmin == INT64_C(4294967806));
  assert_disp(&ev, CM_DISP_APPLY, NULL);
  cm_event_clear(&ev);
}

static void test_bad_replay(void **state) {
  static const struct {
    const char *val;
    const char *why;
  } cases[] = {
      {"{\"op\":\"r\",\"source\":{\"table\":\"User\"},\"after\":{}}",
       "source.lsn: missing"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"txid_snapshot\":"
       "\"10:5:\"},\"range\":{\"first\":1,\"last\":2,\"present\":[]}}",
       "source.txid_snapshot: not a snapshot"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"txid_snapshot\":"
       "\"5:10:12\"},\"range\":{\"first\":1,\"last\":2,\"present\":[]}}",
       "source.txid_snapshot: not a snapshot"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"txid_snapshot\":"
       "7},\"range\":{\"first\":1,\"last\":2,\"present\":[]}}",
       "source.txid_snapshot: not a string"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"lsn\":1},"
       "\"range\":{\"first\":1,\"last\":2,\"present\":[]}}",
       "range marker without source.txid_snapshot"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"txid_snapshot\":"
       "\"5:10:\"},\"range\":{\"first\":3,\"last\":2,\"present\":[]}}",
       "range: missing or without first <= last"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"txid_snapshot\":"
       "\"5:10:\"},\"range\":{\"first\":1,\"last\":9}}",
       "range.present: missing"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"txid_snapshot\":"
       "\"5:10:\"},\"range\":{\"first\":1,\"last\":9,\"present\":[[3,4],"
       "[4,5]]}}",
       "range.present: runs not sorted"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"txid_snapshot\":"
       "\"5:10:\"},\"range\":{\"first\":1,\"last\":9,\"present\":[[3,"
       "12]]}}",
       "range.present: runs not sorted"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"User\",\"txid_snapshot\":"
       "\"5:10:\"},\"range\":{\"first\":1,\"last\":9,\"present\":[[4,3]]}}",
       "range.present: not a list of [first, last] runs"},
      {"{\"op\":\"range\",\"source\":{\"table\":\"Nope\",\"txid_snapshot\":"
       "\"5:10:\"},\"range\":{\"first\":1,\"last\":9,\"present\":[]}}",
       "unknown table"},
  };
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    expect_bad(user_key, cases[i].val, cases[i].why);
}

/* u with REPLICA IDENTITY FULL and an unchanged TOASTed column. */
static void test_update_toast(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture(USER_TOPIC, "user-update-toast", &ev, err, sizeof(err)),
      CM_OK);
  assert_true(ev.has_before);
  assert_string_equal(ev.before[CM_USER_SPECIALIZATION].s, "Кардиолог");
  assert_int_equal(ev.before[CM_USER_IS_ACTIVE].i, 1);
  assert_int_equal(ev.after[CM_USER_SPECIALIZATION].kind, CM_VAL_UNAVAILABLE);
  assert_null(ev.after[CM_USER_SPECIALIZATION].s);
  assert_int_equal(ev.after[CM_USER_IS_ACTIVE].i, 0);
  assert_int_equal(ev.after[CM_USER_UPDATED_AT].i, 1737709920000001);
  cm_event_clear(&ev);
}

/* The placeholder is never an error, even in a NOT NULL column. */
static void test_unavailable_not_null(void **state) {
  cm_event_t ev;

  (void)state;
  decode_mutated("after", "email", "\"__debezium_unavailable_value\"", &ev);
  assert_int_equal(ev.after[CM_USER_EMAIL].kind, CM_VAL_UNAVAILABLE);
  cm_event_clear(&ev);
  decode_mutated("after", "createdAt", "\"__debezium_unavailable_value\"", &ev);
  assert_int_equal(ev.after[CM_USER_CREATED_AT].kind, CM_VAL_UNAVAILABLE);
  cm_event_clear(&ev);
}

static void test_truncate(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(decode_fixture("legacy.public.Appointment",
                                  "appointment-truncate", &ev, err,
                                  sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.op, CM_OP_TRUNCATE);
  assert_int_equal(ev.table, CM_TABLE_APPOINTMENT);
  assert_int_equal(ev.lsn, 24200000);
  assert_false(ev.has_before || ev.has_after);
  assert_disp(&ev, CM_DISP_DEAD_LETTER, "truncate is never applied");
  cm_event_clear(&ev);
}

static void test_message(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture("legacy.message", "message", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.op, CM_OP_MESSAGE);
  assert_int_equal(ev.table, CM_TABLE_NONE);
  assert_int_equal(ev.tx_id, 901);
  assert_int_equal(ev.lsn, 24200500);
  assert_disp(&ev, CM_DISP_SKIP, "logical decoding message");
  cm_event_clear(&ev);
}

static void test_txmeta(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(decode_fixture("legacy.transaction", "txmeta-begin", &ev,
                                  err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.op, CM_OP_TXMETA);
  assert_true(ev.has_tx_id);
  assert_int_equal(ev.tx_id, 771);
  assert_int_equal(ev.ts_ms, 1737540930456);
  assert_disp(&ev, CM_DISP_SKIP, "transaction metadata");
  cm_event_clear(&ev);
  /* END, in the schema form, with no key at all */
  assert_int_equal(
      decode_fixture("legacy.transaction", "txmeta-end", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.op, CM_OP_TXMETA);
  assert_int_equal(ev.tx_id, 771);
  cm_event_clear(&ev);
  expect_bad(NULL, "{\"status\":\"COMMIT\",\"id\":\"1:2\"}", "op: missing");
}

static void test_tombstone(void **state) {
  cm_event_t ev;
  char err[256];
  const char *wkey = "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":"
                     "\"int32\",\"optional\":false,\"field\":\"id\"}],"
                     "\"optional\":false,\"name\":\"legacy.public.Patient."
                     "Key\"},\"payload\":{\"id\":42}}";

  (void)state;
  assert_int_equal(cm_event_decode(PATIENT_TOPIC, "{\"id\":42}", 9, NULL, 0,
                                   &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.op, CM_OP_TOMBSTONE);
  assert_int_equal(ev.table, CM_TABLE_PATIENT);
  assert_int_equal(ev.key, 42);
  assert_disp(&ev, CM_DISP_SKIP, "tombstone");
  cm_event_clear(&ev);
  /* an empty value, the key in the schema form */
  assert_int_equal(cm_event_decode("legacy.public.Appointment", wkey,
                                   strlen(wkey), "", 0, &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.table, CM_TABLE_APPOINTMENT);
  assert_int_equal(ev.key, 42);
  cm_event_clear(&ev);
  /* no key, an unreadable key, no topic: still a tombstone */
  assert_int_equal(
      cm_event_decode(PATIENT_TOPIC, NULL, 0, NULL, 0, &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.key, 0);
  assert_int_equal(cm_event_decode(PATIENT_TOPIC, "{\"id", 4, NULL, 0, &ev, err,
                                   sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.key, 0);
  assert_string_equal(err, "");
  assert_int_equal(
      cm_event_decode(NULL, NULL, 0, NULL, 0, &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.table, CM_TABLE_NONE);
  assert_int_equal(
      cm_event_decode("Patient", NULL, 0, NULL, 0, &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.table, CM_TABLE_PATIENT);
  /* a wrapper with a null payload is a tombstone too */
  assert_int_equal(decode_str(user_key, "{\"schema\":null,\"payload\":null}",
                              &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.op, CM_OP_TOMBSTONE);
  assert_int_equal(ev.table, CM_TABLE_USER);
}

static void test_clinic_skipped(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(decode_fixture("legacy.public.Clinic", "clinic-create", &ev,
                                  err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.table, CM_TABLE_CLINIC);
  assert_string_equal(ev.after[CM_CLINIC_NAME].s, "Клиника на Ленина");
  assert_disp(&ev, CM_DISP_SKIP, "table Clinic is not migrated");
  cm_event_clear(&ev);
}

/* A 1.x layout: boolean snapshot, no sequence, ts_us or transaction. */
static void test_old_layout(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture(PATIENT_TOPIC, "patient-create-1x", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.key, 43);
  assert_int_equal(ev.snapshot, CM_SNAP_FALSE);
  assert_int_equal(ev.lsn, 23456789);
  assert_int_equal(ev.after[CM_PATIENT_BIRTH_DATE].kind, CM_VAL_NULL);
  assert_int_equal(ev.after[CM_PATIENT_EMAIL].kind, CM_VAL_NULL);
  cm_event_clear(&ev);
}

/* ---- source fields ------------------------------------------------------ */

static void test_snapshot_values(void **state) {
  static const struct {
    const char *raw;
    cm_snapshot_t want;
  } cases[] = {
      {"\"true\"", CM_SNAP_TRUE},
      {"\"first\"", CM_SNAP_FIRST},
      {"\"last\"", CM_SNAP_LAST},
      {"\"false\"", CM_SNAP_FALSE},
      {"\"incremental\"", CM_SNAP_INCREMENTAL},
      {"\"first_in_data_collection\"", CM_SNAP_TRUE},
      {"\"last_in_data_collection\"", CM_SNAP_TRUE},
      {"\"parallel\"", CM_SNAP_OTHER},
      {"true", CM_SNAP_TRUE},
      {"false", CM_SNAP_FALSE},
      {"null", CM_SNAP_FALSE},
      {NULL, CM_SNAP_FALSE},
  };
  cm_event_t ev;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    decode_mutated("source", "snapshot", cases[i].raw, &ev);
    if (ev.snapshot != cases[i].want) {
      print_error("snapshot %s: got %d\n", cases[i].raw, ev.snapshot);
      fail();
    }
    cm_event_clear(&ev);
  }
  expect_mutated_bad("source", "snapshot", "1", "source.snapshot");
}

/* ts_us and ts_ns as strings, a transaction block, unknown fields. */
static void test_lenient_fields(void **state) {
  cm_event_t ev;

  (void)state;
  decode_mutated("", "ts_us", "\"1737540930789123\"", &ev);
  cm_event_clear(&ev);
  decode_mutated("", "ts_ns", "\"1737540930789123456\"", &ev);
  cm_event_clear(&ev);
  decode_mutated("source", "ts_ns", "\"1737540930456000000\"", &ev);
  cm_event_clear(&ev);
  decode_mutated("", "ts_ms", "\"1737540930790\"", &ev);
  assert_int_equal(ev.ts_ms, 1737540930790);
  cm_event_clear(&ev);
  decode_mutated("", "transaction",
                 "{\"id\":\"771:24023128\",\"total_order\":3,"
                 "\"data_collection_order\":2}",
                 &ev);
  cm_event_clear(&ev);
  decode_mutated("source", "sequence", "null", &ev);
  cm_event_clear(&ev);
  decode_mutated("source", "sequence", NULL, &ev);
  cm_event_clear(&ev);
  decode_mutated("", "x_extra", "{\"nested\":[1,2.5,\"x\"]}", &ev);
  cm_event_clear(&ev);
  decode_mutated("source", "origin", "\"replica-2\"", &ev);
  cm_event_clear(&ev);
  decode_mutated("after", "legacyNotes", "\"dropped column\"", &ev);
  cm_event_clear(&ev);
  decode_mutated("source", "txId", "null", &ev);
  assert_false(ev.has_tx_id);
  cm_event_clear(&ev);
}

/* ---- temporal types ----------------------------------------------------- */

static void test_schema_timestamps(void **state) {
  static const struct {
    const char *fixture;
    int64_t created;
  } cases[] = {
      {"appointment-micro", 1737540930123456},
      {"appointment-millis", 1737540930123000},
      {"appointment-nano", 1737540930123456}, /* ...456789 ns, cut to µs */
  };
  cm_event_t ev;
  char err[256];
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_int_equal(decode_fixture("legacy.public.Appointment",
                                    cases[i].fixture, &ev, err, sizeof(err)),
                     CM_OK);
    assert_int_equal(ev.key, 501);
    assert_int_equal(ev.after[CM_APPT_STARTS_AT].i, 1738573200000000);
    assert_int_equal(ev.after[CM_APPT_ENDS_AT].i, 1738575000000000);
    assert_int_equal(ev.after[CM_APPT_CREATED_AT].i, cases[i].created);
    assert_int_equal(ev.after[CM_APPT_DOCTOR_ID].i, 7);
    assert_int_equal(ev.after[CM_APPT_PATIENT_ID].i, 42);
    cm_event_clear(&ev);
  }
}

/* Decodes the millis fixture with its semantic type name replaced. */
static int decode_renamed(const char *new_name, cm_event_t *ev, char *err,
                          size_t err_size) {
  const char *old = "io.debezium.time.Timestamp";
  char *val, *key, *out, *p, *q;
  size_t vlen, klen, n = 0;
  int rc;

  val = load("appointment-millis.json", &vlen);
  key = load("appointment-millis.key.json", &klen);
  assert_non_null(val);
  out = malloc(vlen * 2 + 1);
  assert_non_null(out);
  for (p = val; (q = strstr(p, old)) != NULL; p = q + strlen(old)) {
    memcpy(out + n, p, (size_t)(q - p));
    n += (size_t)(q - p);
    memcpy(out + n, new_name, strlen(new_name));
    n += strlen(new_name);
  }
  memcpy(out + n, p, strlen(p) + 1);
  rc = cm_event_decode("legacy.public.Appointment", key, klen, out, strlen(out),
                       ev, err, err_size);
  free(val);
  free(key);
  free(out);
  return rc;
}

static void test_schema_timestamp_names(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(decode_renamed("org.apache.kafka.connect.data.Timestamp",
                                  &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.after[CM_APPT_CREATED_AT].i, 1737540930123000);
  cm_event_clear(&ev);
  assert_int_equal(
      decode_renamed("io.debezium.time.ZonedTimestamp", &ev, err, sizeof(err)),
      CM_ERR_BAD_INPUT);
  assert_string_equal(err, "after.startsAt: integer where the schema says "
                           "io.debezium.time.ZonedTimestamp");
  assert_int_equal(
      decode_renamed("io.debezium.time.Date", &ev, err, sizeof(err)),
      CM_ERR_BAD_INPUT);
  assert_int_equal(
      decode_renamed("io.debezium.time.MicroTimestamp", &ev, err, sizeof(err)),
      CM_OK);
  assert_int_equal(ev.after[CM_APPT_CREATED_AT].i, 1737540930123);
  cm_event_clear(&ev);
}

/* Decodes @p val (key user_key) with @p mode and legacy types @p spec. */
static int decode_with(const char *val, cm_time_mode_t mode, const char *spec,
                       cm_event_t *ev, char *err, size_t err_size) {
  cm_coltypes_t types;
  cm_decode_opts_t o;
  char why[256];

  assert_int_equal(cm_coltypes_parse(spec, &types, why, sizeof(why)), 0);
  memset(&o, 0, sizeof(o));
  o.time_mode = mode;
  o.coltypes = &types;
  return cm_event_decode_opts(USER_TOPIC, user_key, strlen(user_key), val,
                              strlen(val), &o, ev, err, err_size);
}

/*
 * Without a schema the unit of a temporal number is the configuration's:
 * the same event gives the instant the connector meant under each mode
 * and legacy type, and a number out of range in that unit is bad input.
 */
static void test_configured_timestamps(void **state) {
  static const struct {
    const char *raw;
    cm_time_mode_t mode;
    const char *spec;
    int64_t want; /* INT64_MIN: bad input with reason why */
    const char *why;
  } cases[] = {
      /* 2025-01-22T10:15:30.123Z from a timestamp(3) column */
      {"1737540930123", CM_TIME_ADAPTIVE, "User.updatedAt=timestamp(3)",
       1737540930123000, NULL},
      {"1737540930123", CM_TIME_ADAPTIVE_TIME_MICROSECONDS,
       "User.*=timestamp(3)", 1737540930123000, NULL},
      {"1737540930123", CM_TIME_CONNECT, "*.*=timestamp(6)", 1737540930123000,
       NULL},
      {"1737540930123", CM_TIME_CONNECT, "User.updatedAt=timestamp",
       1737540930123000, NULL},
      /* the same number read as µs is an instant of 1970 */
      {"1737540930123", CM_TIME_ADAPTIVE, "User.updatedAt=timestamp(6)",
       1737540930123, NULL},
      {"1737540930123", CM_TIME_MICROSECONDS, "User.updatedAt=timestamp(3)",
       1737540930123, NULL},
      /* 2025-01-22T10:15:30.123456Z from a timestamp(6) column */
      {"1737540930123456", CM_TIME_ADAPTIVE, "User.updatedAt=timestamp(6)",
       1737540930123456, NULL},
      {"1737540930123456", CM_TIME_ADAPTIVE_TIME_MICROSECONDS,
       "User.updatedAt=timestamp without time zone", 1737540930123456, NULL},
      {"1737540930123456", CM_TIME_MICROSECONDS, "User.updatedAt=timestamp(3)",
       1737540930123456, NULL},
      {"1737540930123456", CM_TIME_NANOSECONDS, "User.updatedAt=timestamp(6)",
       1737540930123, NULL},
      {"1737540930123456789", CM_TIME_NANOSECONDS, "*.*=timestamp(6)",
       1737540930123456, NULL},
      {"-1", CM_TIME_NANOSECONDS, "*.*=timestamp(6)", -1, NULL},
      {"-1000", CM_TIME_ADAPTIVE, "*.*=timestamp(3)", -1000000, NULL},
      {"0", CM_TIME_CONNECT, "*.*=timestamp(3)", 0, NULL},
      /* microseconds read as milliseconds: past the year 9999 */
      {"1737540930123456", CM_TIME_CONNECT, "User.updatedAt=timestamp(6)",
       INT64_MIN,
       "after.updatedAt: timestamp out of range in milliseconds "
       "(time.precision.mode connect, legacy type timestamp(4-6))"},
      {"1737540930123456", CM_TIME_ADAPTIVE, "User.updatedAt=timestamp(2)",
       INT64_MIN,
       "after.updatedAt: timestamp out of range in milliseconds "
       "(time.precision.mode adaptive, legacy type timestamp(0-3))"},
      {"253402300800000000", CM_TIME_MICROSECONDS, "*.*=timestamp(6)",
       INT64_MIN, "after.updatedAt: timestamp out of range in microseconds"},
      {"9223372036854775807", CM_TIME_ADAPTIVE, "*.*=timestamp(3)", INT64_MIN,
       "after.updatedAt: timestamp out of range"},
      /* timestamptz is text in every mode; isostring writes no numbers */
      {"1737540930123", CM_TIME_ADAPTIVE, "", INT64_MIN,
       "after.updatedAt: an integer, but a timestamptz column is ISO-8601 "
       "text (io.debezium.time.ZonedTimestamp) in every time.precision.mode"},
      {"1737540930123456", CM_TIME_MICROSECONDS, "User.createdAt=timestamp(6)",
       INT64_MIN, "after.updatedAt: an integer, but a timestamptz column"},
      {"1737540930123", CM_TIME_ISOSTRING, "*.*=timestamp(3)", INT64_MIN,
       "after.updatedAt: an integer, but time.precision.mode isostring "
       "writes timestamps as ISO-8601 text"},
      {"\"2025-01-22T10:15:30.123Z\"", CM_TIME_ISOSTRING, "*.*=timestamp(3)",
       1737540930123000, NULL},
      {"1.5", CM_TIME_ADAPTIVE, "*.*=timestamp(3)", INT64_MIN,
       "not a valid timestamp"},
      {"true", CM_TIME_ADAPTIVE, "*.*=timestamp(3)", INT64_MIN,
       "not a valid timestamp"},
  };
  cm_event_t ev;
  char err[512];
  char *val;
  size_t i;
  int rc;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    val = mutate(user_event, "after", "updatedAt", cases[i].raw);
    memset(&ev, 0x5a, sizeof(ev));
    rc = decode_with(val, cases[i].mode, cases[i].spec, &ev, err, sizeof(err));
    if (cases[i].want == INT64_MIN) {
      if (rc != CM_ERR_BAD_INPUT || strstr(err, cases[i].why) == NULL) {
        print_error("case %zu (%s): want \"%s\", got %d \"%s\"\n", i,
                    cases[i].raw, cases[i].why, rc, err);
        fail();
      }
    } else if (rc != CM_OK ||
               ev.after[CM_USER_UPDATED_AT].kind != CM_VAL_TIMESTAMP ||
               ev.after[CM_USER_UPDATED_AT].i != cases[i].want) {
      print_error("case %zu (%s): rc %d %s, got %lld\n", i, cases[i].raw, rc,
                  err, (long long)ev.after[CM_USER_UPDATED_AT].i);
      fail();
    }
    if (rc == CM_OK)
      cm_event_clear(&ev);
    free(val);
  }
}

/* With a schema, the semantic type wins over the configuration. */
static void test_semantic_type_wins(void **state) {
  static const cm_time_mode_t modes[] = {CM_TIME_NANOSECONDS, CM_TIME_CONNECT,
                                         CM_TIME_ISOSTRING};
  cm_coltypes_t types;
  cm_decode_opts_t o;
  char *key, *val, err[256];
  size_t klen, vlen, i;
  cm_event_t ev;

  (void)state;
  assert_int_equal(
      cm_coltypes_parse("*.*=timestamp(3)", &types, err, sizeof(err)), 0);
  key = load("appointment-micro.key.json", &klen);
  val = load("appointment-micro.json", &vlen);
  assert_non_null(val);
  for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
    memset(&o, 0, sizeof(o));
    o.time_mode = modes[i];
    o.coltypes = &types;
    assert_int_equal(cm_event_decode_opts("legacy.public.Appointment", key,
                                          klen, val, vlen, &o, &ev, err,
                                          sizeof(err)),
                     CM_OK);
    assert_int_equal(ev.after[CM_APPT_CREATED_AT].i, 1737540930123456);
    cm_event_clear(&ev);
  }
  free(key);
  free(val);
}

/* The legacy column types of the configuration. */
static void test_coltypes(void **state) {
  static const struct {
    const char *spec, *why;
  } bad[] = {
      {"Appointment.startsAt", "expected TABLE.COLUMN=TYPE"},
      {"startsAt=timestamp(3)", "expected TABLE.COLUMN=TYPE"},
      {"Doctor.startsAt=timestamp(3)", "Doctor: not a legacy table"},
      {"Appointment.begins=timestamp(3)", "Appointment.begins: no such column"},
      {"*.begins=timestamp(3)", "*.begins: no such column"},
      {"*.birthDate=timestamp(3)", "*.birthDate: not a timestamp column"},
      {"Patient.birthDate=timestamp(3)",
       "Patient.birthDate: not a timestamp column"},
      {"User.createdAt=timestamp(7)", "User.createdAt: expected timestamptz"},
      {"User.createdAt=date", "User.createdAt: expected timestamptz"},
      {"User.createdAt=timestamp(3) junk", "User.createdAt: expected"},
  };
  cm_coltypes_t t;
  char err[256];
  size_t i;

  (void)state;
  assert_int_equal(cm_coltypes_parse("", &t, err, sizeof(err)), 0);
  assert_int_equal(t.ts[CM_TABLE_USER][CM_USER_CREATED_AT],
                   CM_TSTYPE_TIMESTAMPTZ);
  assert_int_equal(
      cm_coltypes_parse(" *.*=TIMESTAMP(3) , Appointment.startsAt=timestamp,"
                        "Appointment.endsAt=timestamp(4) without time zone,"
                        "User.updatedAt=timestamp(6) with time zone,"
                        "Patient.createdAt=timestamptz",
                        &t, err, sizeof(err)),
      0);
  assert_int_equal(t.ts[CM_TABLE_USER][CM_USER_CREATED_AT],
                   CM_TSTYPE_TIMESTAMP_MS);
  assert_int_equal(t.ts[CM_TABLE_CLINIC][CM_CLINIC_UPDATED_AT],
                   CM_TSTYPE_TIMESTAMP_MS);
  assert_int_equal(t.ts[CM_TABLE_APPOINTMENT][CM_APPT_STARTS_AT],
                   CM_TSTYPE_TIMESTAMP_US);
  assert_int_equal(t.ts[CM_TABLE_APPOINTMENT][CM_APPT_ENDS_AT],
                   CM_TSTYPE_TIMESTAMP_US);
  assert_int_equal(t.ts[CM_TABLE_USER][CM_USER_UPDATED_AT],
                   CM_TSTYPE_TIMESTAMPTZ);
  assert_int_equal(t.ts[CM_TABLE_PATIENT][CM_PATIENT_CREATED_AT],
                   CM_TSTYPE_TIMESTAMPTZ);
  assert_int_equal(t.ts[CM_TABLE_PATIENT][CM_PATIENT_BIRTH_DATE], 0);
  /* "*" with a column: the tables that have it */
  assert_int_equal(
      cm_coltypes_parse("*.startsAt=timestamp(6)", &t, err, sizeof(err)), 0);
  assert_int_equal(t.ts[CM_TABLE_APPOINTMENT][CM_APPT_STARTS_AT],
                   CM_TSTYPE_TIMESTAMP_US);
  assert_int_equal(t.ts[CM_TABLE_APPOINTMENT][CM_APPT_ENDS_AT],
                   CM_TSTYPE_TIMESTAMPTZ);
  assert_int_equal(
      cm_coltypes_parse("*.createdAt=timestamp(3)", &t, err, sizeof(err)), 0);
  assert_int_equal(t.ts[CM_TABLE_USER][CM_USER_CREATED_AT],
                   CM_TSTYPE_TIMESTAMP_MS);
  assert_int_equal(t.ts[CM_TABLE_PATIENT][CM_PATIENT_CREATED_AT],
                   CM_TSTYPE_TIMESTAMP_MS);
  assert_int_equal(t.ts[CM_TABLE_USER][CM_USER_UPDATED_AT],
                   CM_TSTYPE_TIMESTAMPTZ);
  assert_int_equal(t.ts[CM_TABLE_PATIENT][CM_PATIENT_CLINIC_ID], 0);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = '\0';
    if (cm_coltypes_parse(bad[i].spec, &t, err, sizeof(err)) != -1 ||
        strstr(err, bad[i].why) == NULL) {
      print_error("%s: want \"%s\", got \"%s\"\n", bad[i].spec, bad[i].why,
                  err);
      fail();
    }
  }
}

static void test_zoned_timestamps(void **state) {
  static const struct {
    const char *text;
    int64_t want; /* INT64_MIN: must be rejected */
  } cases[] = {
      {"2025-01-22T10:15:30.123456Z", 1737540930123456},
      {"2025-01-22T10:15:30Z", 1737540930000000},
      {"2025-01-22T10:15:30.1Z", 1737540930100000},
      {"2025-01-22T10:15:30.123456789Z", 1737540930123456},
      {"2025-01-22T10:15:30+03:00", 1737530130000000},
      {"2025-01-22T10:15:30+0300", 1737530130000000},
      {"2025-01-22T10:15:30+03", 1737530130000000},
      {"2025-01-22T10:15:30-05:30", 1737560730000000},
      {"2025-01-22T10:15Z", 1737540900000000},
      {"2025-01-22 10:15:30Z", 1737540930000000},
      {"2024-02-29T23:59:59.999999Z", 1709251199999999},
      {"1969-12-31T23:59:59.999999Z", -1},
      {"0001-01-01T00:00:00Z", -62135596800000000},
      {"9999-12-31T23:59:59.999999Z", 253402300799999999},
      {"2025-01-22T10:15:30.1234567890Z", INT64_MIN},
      {"2025-01-22T10:15:30.Z", INT64_MIN},
      {"2025-01-22T10:15:30", INT64_MIN},
      {"2025-01-22T24:00:00Z", INT64_MIN},
      {"2025-01-22T10:60:00Z", INT64_MIN},
      {"2025-01-22T10:15:60Z", INT64_MIN},
      {"2025-02-29T10:15:30Z", INT64_MIN},
      {"2025-13-01T10:15:30Z", INT64_MIN},
      {"2025-00-10T10:15:30Z", INT64_MIN},
      {"0000-12-31T10:15:30Z", INT64_MIN},
      {"0001-01-01T00:00:00+01:00", INT64_MIN},
      {"2025-01-22T10:15:30+19:00", INT64_MIN},
      {"2025-01-22T10:15:30+03:", INT64_MIN},
      {"2025-01-22T10:15:30Zjunk", INT64_MIN},
      {"2025-1-22T10:15:30Z", INT64_MIN},
      {"+294247-01-10T04:00:25.2Z", INT64_MIN},
      {"", INT64_MIN},
  };
  char raw[96];
  cm_event_t ev;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(raw, sizeof(raw), "\"%s\"", cases[i].text);
    if (cases[i].want == INT64_MIN) {
      expect_mutated_bad("after", "createdAt", raw,
                         "after.createdAt: not a valid timestamp");
      continue;
    }
    decode_mutated("after", "createdAt", raw, &ev);
    if (ev.after[CM_USER_CREATED_AT].i != cases[i].want) {
      print_error("%s: got %lld\n", cases[i].text,
                  (long long)ev.after[CM_USER_CREATED_AT].i);
      fail();
    }
    cm_event_clear(&ev);
  }
}

/* The base event made a Patient 7 create with @p birth_date (raw JSON). */
static char *patient_event(const char *birth_date) {
  cJSON *root, *after, *src;
  char *out;

  root = cJSON_Parse(user_event);
  after = cJSON_Parse("{\"id\":7,\"clinicId\":3,\"firstName\":\"A\","
                      "\"lastName\":\"B\",\"createdAt\":"
                      "\"2023-05-10T07:00:00Z\",\"updatedAt\":"
                      "\"2023-05-10T07:00:00Z\"}");
  assert_non_null(root);
  assert_non_null(after);
  cJSON_AddItemToObject(after, "birthDate", cJSON_Parse(birth_date));
  cJSON_ReplaceItemInObjectCaseSensitive(root, "after", after);
  src = cJSON_GetObjectItemCaseSensitive(root, "source");
  cJSON_ReplaceItemInObjectCaseSensitive(src, "table",
                                         cJSON_CreateString("Patient"));
  out = cJSON_PrintUnformatted(root);
  assert_non_null(out);
  cJSON_Delete(root);
  return out;
}

static void test_dates(void **state) {
  static const struct {
    const char *raw;
    int64_t want; /* INT64_MIN: must be rejected */
  } cases[] = {
      {"6310", 6310},
      {"-2616", -2616},
      {"\"1987-04-12\"", 6310},
      {"\"1962-11-03\"", -2616},
      {"\"2000-02-29\"", 11016},
      {"\"0001-01-01\"", -719162},
      {"\"9999-12-31\"", 2932896},
      {"-719162", -719162},
      {"2932896", 2932896},
      {"\"1900-02-29\"", INT64_MIN},
      {"\"2025-13-01\"", INT64_MIN},
      {"\"2025-04-31\"", INT64_MIN},
      {"\"1987-04-12T00:00:00Z\"", INT64_MIN},
      {"\"12.04.1987\"", INT64_MIN},
      {"6310.5", INT64_MIN},
      {"true", INT64_MIN},
  };
  char *val;
  cm_event_t ev;
  char err[256];
  size_t i;
  int rc;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    val = patient_event(cases[i].raw);
    if (cases[i].want == INT64_MIN) {
      expect_bad(user_key, val, "after.birthDate: not a valid date");
      free(val);
      continue;
    }
    rc = decode_str(user_key, val, &ev, err, sizeof(err));
    if (rc != CM_OK || ev.after[CM_PATIENT_BIRTH_DATE].i != cases[i].want) {
      print_error("%s: rc %d %s, got %lld\n", cases[i].raw, rc, err,
                  (long long)ev.after[CM_PATIENT_BIRTH_DATE].i);
      fail();
    }
    assert_int_equal(ev.after[CM_PATIENT_BIRTH_DATE].kind, CM_VAL_DATE);
    cm_event_clear(&ev);
    free(val);
  }
  val = patient_event("2932897"); /* 10000-01-01 */
  expect_bad(user_key, val, "after.birthDate: date out of range");
  free(val);
  val = patient_event("-719163");
  expect_bad(user_key, val, "after.birthDate: date out of range");
  free(val);
}

/* Dates: days in every mode but isostring, which writes "YYYY-MM-DDZ". */
static void test_configured_dates(void **state) {
  cm_event_t ev;
  char err[256];
  char *val;

  (void)state;
  val = patient_event("6310");
  assert_int_equal(decode_with(val, CM_TIME_CONNECT, "", &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.after[CM_PATIENT_BIRTH_DATE].i, 6310);
  cm_event_clear(&ev);
  assert_int_equal(
      decode_with(val, CM_TIME_ISOSTRING, "", &ev, err, sizeof(err)),
      CM_ERR_BAD_INPUT);
  assert_string_equal(err, "after.birthDate: an integer, but "
                           "time.precision.mode isostring writes dates as "
                           "ISO-8601 text");
  free(val);
  val = patient_event("\"1987-04-12Z\"");
  assert_int_equal(
      decode_with(val, CM_TIME_ISOSTRING, "", &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.after[CM_PATIENT_BIRTH_DATE].i, 6310);
  cm_event_clear(&ev);
  free(val);
}

/* ---- keys ------------------------------------------------------------- */

static void test_keys(void **state) {
  const char *wrapped = "{\"schema\":{\"type\":\"struct\",\"fields\":[{"
                        "\"type\":\"int32\",\"optional\":false,\"field\":"
                        "\"id\"}],\"optional\":false,\"name\":\"legacy."
                        "public.User.Key\"},\"payload\":{\"id\":7}}";
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(decode_str("7", user_event, &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.key, 7);
  cm_event_clear(&ev);
  assert_int_equal(decode_str(wrapped, user_event, &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.key, 7);
  cm_event_clear(&ev);
  assert_int_equal(
      decode_str("{\"id\":7,\"extra\":1}", user_event, &ev, err, sizeof(err)),
      CM_OK);
  cm_event_clear(&ev);
  expect_bad(NULL, user_event, "missing key");
  expect_bad("", user_event, "missing key");
  expect_bad("null", user_event, "missing key");
  expect_bad("{\"schema\":null,\"payload\":null}", user_event, "missing key");
  expect_bad("{}", user_event, "key: no id field");
  expect_bad("{\"id\":\"7x\"}", user_event, "key.id: not an integer");
  expect_bad("{\"id\":\"7.0\"}", user_event, "key.id: not an integer");
  expect_bad("{\"id\":\"\"}", user_event, "key.id: not an integer");
  expect_bad("{\"id\":7.5}", user_event, "key.id: not an integer");
  expect_bad("\"7\"", user_event, "key: not an object or integer");
  expect_bad("[7]", user_event, "key: not an object or integer");
  expect_bad("{\"id\":7", user_event, "key: malformed JSON at byte");
  expect_bad("8", user_event, "after.id: 7 does not match the key 8");
}

static void test_key_mismatch_before(void **state) {
  char *val;

  (void)state;
  val = mutate(user_event, "before", "id", "9");
  expect_bad(user_key, val, "before.id: 9 does not match the key 7");
  free(val);
}

/* ---- shapes beyond the plain envelope (docs/design.md §1.2) ------------ */

/* Numbers written as decimal text: keys, integer columns, positions. */
static void test_text_numbers(void **state) {
  static const char wrapped[] =
      "{\"schema\":{\"type\":\"struct\",\"name\":\"legacy.public.User.Key\","
      "\"optional\":false,\"fields\":[{\"name\":\"id\",\"index\":\"0\","
      "\"schema\":{\"type\":\"INT32\",\"optional\":\"false\"}}]},"
      "\"payload\":{\"id\":\"7\"}}";
  cm_event_t ev;
  char err[256];

  (void)state;
  decode_mutated("source", "lsn", "\"24023128\"", &ev);
  assert_true(ev.has_lsn);
  assert_int_equal(ev.lsn, 24023128);
  cm_event_clear(&ev);
  decode_mutated("source", "lsn", "\"0/16E9058\"", &ev); /* PostgreSQL's */
  assert_int_equal(ev.lsn, 0x16E9058);
  cm_event_clear(&ev);
  decode_mutated("source", "lsn", "\"1A/0000002b\"", &ev);
  assert_int_equal(ev.lsn, (INT64_C(0x1A) << 32) | 0x2b);
  cm_event_clear(&ev);
  decode_mutated("source", "txId", "\"771\"", &ev);
  assert_true(ev.has_tx_id);
  assert_int_equal(ev.tx_id, 771);
  cm_event_clear(&ev);
  decode_mutated("after", "clinicId", "\"3\"", &ev);
  assert_int_equal(ev.after[CM_USER_CLINIC_ID].kind, CM_VAL_INT);
  assert_int_equal(ev.after[CM_USER_CLINIC_ID].i, 3);
  cm_event_clear(&ev);
  decode_mutated("after", "id", "\"7\"", &ev);
  assert_int_equal(ev.after[CM_USER_ID].i, 7);
  cm_event_clear(&ev);
  assert_int_equal(
      decode_str("{\"id\":\"7\"}", user_event, &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.key, 7);
  cm_event_clear(&ev);
  assert_int_equal(decode_str(wrapped, user_event, &ev, err, sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.key, 7);
  cm_event_clear(&ev);
  expect_bad("{\"id\":\"8\"}", user_event, "after.id: 7 does not match");
}

/* A flattened User 7 (ExtractNewRecordState, add.fields=op,table,lsn,
 * source.ts_ms, delete.tombstone.handling.mode=rewrite), with @p meta
 * replacing its metadata members. */
static char *flat_user(const char *meta) {
  static const char row[] =
      "{\"id\":7,\"clinicId\":3,\"email\":\"i.petrov@clinic3.example\","
      "\"phone\":null,\"firstName\":\"Ivan\",\"lastName\":\"Petrov\","
      "\"role\":\"DOCTOR\",\"specialization\":null,\"licenseNumber\":null,"
      "\"isActive\":true,\"createdAt\":\"2023-05-10T07:00:00Z\","
      "\"updatedAt\":\"2025-01-22T10:15:30.123456Z\"%s%s}";
  size_t n = sizeof(row) + strlen(meta) + 2;
  char *out = malloc(n);

  assert_non_null(out);
  snprintf(out, n, row, meta[0] != '\0' ? "," : "", meta);
  return out;
}

static void expect_flat(const char *meta, cm_op_t op, int64_t lsn) {
  char *val = flat_user(meta);
  cm_event_t ev;
  char err[256];

  if (decode_str(user_key, val, &ev, err, sizeof(err)) != CM_OK) {
    print_error("%s: %s\n", meta, err);
    fail();
  }
  assert_int_equal(ev.op, op);
  assert_int_equal(ev.table, CM_TABLE_USER);
  assert_int_equal(ev.key, 7);
  assert_true(ev.has_lsn);
  assert_int_equal(ev.lsn, lsn);
  if (op == CM_OP_DELETE) {
    assert_true(ev.has_before && !ev.has_after);
    assert_int_equal(ev.before[CM_USER_ID].i, 7);
  } else {
    assert_true(ev.has_after && !ev.has_before);
    assert_string_equal(ev.after[CM_USER_EMAIL].s, "i.petrov@clinic3.example");
    assert_int_equal(ev.after[CM_USER_UPDATED_AT].i, 1737540930123456);
  }
  assert_disp(&ev, CM_DISP_APPLY, NULL);
  cm_event_clear(&ev);
  free(val);
}

static void expect_flat_bad(const char *meta, const char *why) {
  char *val = flat_user(meta);

  expect_bad(user_key, val, why);
  free(val);
}

static void test_flattened(void **state) {
  static const char schema_form[] =
      "{\"schema\":{\"type\":\"struct\",\"optional\":false,\"name\":"
      "\"legacy.public.Appointment.Value\",\"fields\":["
      "{\"type\":\"int32\",\"optional\":false,\"field\":\"id\"},"
      "{\"type\":\"int64\",\"optional\":false,\"name\":"
      "\"io.debezium.time.MicroTimestamp\",\"field\":\"startsAt\"},"
      "{\"type\":\"string\",\"optional\":true,\"field\":\"__lsn\"}]},"
      "\"payload\":{\"id\":501,\"clinicId\":3,\"doctorId\":7,\"patientId\":"
      "42,\"startsAt\":1738573200000000,\"endsAt\":"
      "\"2025-02-03T09:30:00Z\",\"status\":\"SCHEDULED\",\"reason\":null,"
      "\"createdAt\":\"2025-01-22T10:15:30Z\",\"updatedAt\":"
      "\"2025-01-22T10:15:30Z\",\"__lsn\":\"24023400\"}}";
  cm_event_t ev;
  char err[256];

  (void)state;
  expect_flat("\"__op\":\"u\",\"__table\":\"User\",\"__lsn\":\"24023128\","
              "\"__source_ts_ms\":\"1737540930456\",\"__deleted\":\"false\"",
              CM_OP_UPDATE, 24023128);
  expect_flat("\"__op\":\"c\",\"__lsn\":24023128", CM_OP_CREATE, 24023128);
  expect_flat("\"__op\":\"r\",\"__snapshot\":\"true\",\"__lsn\":5", CM_OP_READ,
              5);
  expect_flat("\"__lsn\":5", CM_OP_UPDATE, 5);
  expect_flat("\"__source_lsn\":6,\"__source_table\":\"User\"", CM_OP_UPDATE,
              6);
  expect_flat("\"__deleted\":\"true\",\"__lsn\":9", CM_OP_DELETE, 9);
  expect_flat("\"__deleted\":true,\"__op\":\"d\",\"__lsn\":9", CM_OP_DELETE, 9);
  expect_flat("\"__deleted\":null,\"__op\":null,\"__lsn\":9", CM_OP_UPDATE, 9);
  /* the source_ts_ms, the table from the topic */
  {
    char *val = flat_user("\"__lsn\":5,\"__source_ts_ms\":\"1737540930456\"");

    assert_int_equal(decode_str(user_key, val, &ev, err, sizeof(err)), CM_OK);
    assert_int_equal(ev.source_ts_ms, 1737540930456);
    cm_event_clear(&ev);
    assert_int_equal(cm_event_decode("legacy.public.Patient", user_key,
                                     strlen(user_key), val, strlen(val), &ev,
                                     err, sizeof(err)),
                     CM_OK);
    assert_int_equal(ev.table, CM_TABLE_PATIENT); /* the topic names it */
    cm_event_clear(&ev);
    assert_int_equal(cm_event_decode("legacy.public.Doctor", user_key,
                                     strlen(user_key), val, strlen(val), &ev,
                                     err, sizeof(err)),
                     CM_ERR_BAD_INPUT);
    assert_string_equal(err, "unknown table \"Doctor\"");
    free(val);
  }
  /* the schema form: the table from the schema's name, the unit from its
   * semantic type */
  if (cm_event_decode("clinicmig.replay", "{\"id\":501}", 10, schema_form,
                      strlen(schema_form), &ev, err, sizeof(err)) != CM_OK) {
    print_error("schema form: %s\n", err);
    fail();
  }
  assert_int_equal(ev.table, CM_TABLE_APPOINTMENT);
  assert_int_equal(ev.op, CM_OP_UPDATE);
  assert_int_equal(ev.lsn, 24023400);
  assert_int_equal(ev.after[CM_APPT_STARTS_AT].i, 1738573200000000);
  assert_int_equal(ev.after[CM_APPT_ENDS_AT].i, 1738575000000000);
  cm_event_clear(&ev);
  expect_flat_bad("\"__op\":\"u\",\"__table\":\"User\"",
                  "__lsn: missing: a flattened event (ExtractNewRecordState) "
                  "carries no stream position unless its add.fields has lsn, "
                  "and cannot be ordered");
  expect_flat_bad("", "__lsn: missing");
  expect_flat_bad("\"__op\":\"r\",\"__snapshot\":\"incremental\"",
                  "source.lsn: missing in an incremental snapshot read");
  expect_flat_bad("\"__op\":\"u\",\"__deleted\":\"true\",\"__lsn\":1",
                  "__op and __deleted disagree");
  expect_flat_bad("\"__op\":\"d\",\"__deleted\":\"false\",\"__lsn\":1",
                  "__op and __deleted disagree");
  expect_flat_bad("\"__deleted\":\"yes\",\"__lsn\":1",
                  "__deleted: not \"true\" or \"false\"");
  expect_flat_bad("\"__op\":\"t\",\"__lsn\":1",
                  "__op: \"t\" is not c, u, d or r");
  expect_flat_bad("\"__op\":1,\"__lsn\":1", "__op: not a string");
  expect_flat_bad("\"__lsn\":\"x\"", "__lsn: not a non-negative integer");
  expect_flat_bad("\"__lsn\":1,\"__txId\":\"x\"", "__txId: not an integer");
  expect_flat_bad("\"__lsn\":1,\"__table\":\"Doctor\"",
                  "unknown table \"Doctor\"");
  expect_flat_bad("\"__lsn\":1,\"__table\":5", "__table: not a string");
}

/* Debezium's heartbeat: skipped, in both JSON forms. */
static void test_heartbeat(void **state) {
  static const char wrapped[] =
      "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\","
      "\"optional\":false,\"field\":\"ts_ms\"}],\"optional\":false,\"name\":"
      "\"io.debezium.connector.common.Heartbeat\"},\"payload\":{\"ts_ms\":"
      "1737540930456}}";
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(cm_event_decode("__debezium-heartbeat.legacy",
                                   "{\"serverName\":\"legacy\"}", 23,
                                   "{\"ts_ms\":1737540930456}", 23, &ev, err,
                                   sizeof(err)),
                   CM_OK);
  assert_int_equal(ev.op, CM_OP_HEARTBEAT);
  assert_int_equal(ev.ts_ms, 1737540930456);
  assert_disp(&ev, CM_DISP_SKIP, "heartbeat");
  expect_json(&ev, "{\"table\":null,\"op\":\"heartbeat\",\"snapshot\":"
                   "\"false\",\"ts_ms\":1737540930456,\"before\":null,"
                   "\"after\":null}");
  cm_event_clear(&ev);
  assert_int_equal(decode_str(NULL, wrapped, &ev, err, sizeof(err)), CM_OK);
  assert_int_equal(ev.op, CM_OP_HEARTBEAT);
  cm_event_clear(&ev);
  expect_bad(NULL, "{\"ts_ms\":1,\"x\":2}", "op: missing");
}

/* An incremental snapshot read carries no LSN (Debezium leaves it out):
 * refused with its own reason. */
static void test_incremental_snapshot(void **state) {
  char *v1 = mutate(user_event, "source", "lsn", NULL);
  char *v2 = mutate(v1, "source", "txId", NULL);
  char *v3 = mutate(v2, "source", "snapshot", "\"incremental\"");
  char *v4 = mutate(v3, "", "op", "\"r\"");

  (void)state;
  expect_bad(user_key, v4,
             "source.lsn: missing in an incremental snapshot read, which "
             "cannot be ordered against live changes (backfill with "
             "clinicmig-replay db instead)");
  expect_bad(user_key, v2, "source.lsn: missing, the event cannot be ordered");
  free(v1);
  free(v2);
  free(v3);
  free(v4);
}

/* ---- bad input ---------------------------------------------------------- */

static void test_bad_values(void **state) {
  static const struct {
    const char *obj, *field, *raw, *want;
  } cases[] = {
      {"after", "email", NULL, "after.email: missing required column"},
      {"after", "isActive", NULL, "after.isActive: missing required column"},
      {"after", "email", "null", "after.email: null in a not-null column"},
      {"after", "createdAt", "null", "after.createdAt: null in a not-null"},
      {"after", "clinicId", "\"3.0\"", "after.clinicId: not an integer"},
      {"after", "clinicId", "\" 3\"", "after.clinicId: not an integer"},
      {"after", "clinicId", "\"\"", "after.clinicId: not an integer"},
      {"after", "clinicId", "3.5", "after.clinicId: not an integer"},
      {"after", "clinicId", "3e0", "after.clinicId: not an integer"},
      {"after", "clinicId", "9223372036854775808",
       "after.clinicId: not an integer"},
      {"after", "isActive", "\"true\"", "after.isActive: not a boolean"},
      {"after", "isActive", "1", "after.isActive: not a boolean"},
      {"after", "firstName", "5", "after.firstName: not a string"},
      {"after", "role", "[\"DOCTOR\"]", "after.role: not a string"},
      {"before", "clinicId", "\"x3\"", "before.clinicId: not an integer"},
      {"", "after", "null", "after: missing for op 'u'"},
      {"", "after", NULL, "after: missing for op 'u'"},
      {"", "after", "[]", "after: not an object"},
      {"", "before", "\"x\"", "before: not an object"},
      {"", "op", "\"x\"", "unknown op \"x\""},
      {"", "op", "\"cu\"", "unknown op \"cu\""},
      {"", "op", "\"\"", "unknown op \"\""},
      {"", "op", "1", "op: not a string"},
      {"", "op", NULL, "op: missing"},
      {"", "source", NULL, "source: missing or not an object"},
      {"", "source", "\"s\"", "source: missing or not an object"},
      {"source", "lsn", NULL, "source.lsn: missing"},
      {"source", "lsn", "null", "source.lsn: missing"},
      {"source", "lsn", "\"24023128x\"", "source.lsn: not a non-negative"},
      {"source", "lsn", "\"-1\"", "source.lsn: not a non-negative"},
      {"source", "lsn", "\"0/\"", "source.lsn: not a non-negative"},
      {"source", "lsn", "\"1/G\"", "source.lsn: not a non-negative"},
      {"source", "lsn", "\"1/123456789\"", "source.lsn: not a non-negative"},
      {"source", "lsn", "true", "source.lsn: not a non-negative"},
      {"source", "lsn", "-1", "source.lsn: not a non-negative"},
      {"source", "lsn", "2.4e7", "source.lsn: not a non-negative"},
      {"source", "txId", "\"77 1\"", "source.txId: not an integer"},
      {"source", "table", "\"Doctor\"", "unknown table \"Doctor\""},
      {"source", "table", "\"user\"", "unknown table \"user\""},
      {"source", "table", NULL, "source.table: missing"},
      {"source", "table", "\"a\\nb\"", "unknown table \"a?b\""},
  };
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    expect_mutated_bad(cases[i].obj, cases[i].field, cases[i].raw,
                       cases[i].want);
}

static void test_malformed(void **state) {
  char half[sizeof(user_event)];

  (void)state;
  memcpy(half, user_event, 120);
  half[120] = '\0';
  expect_bad(user_key, half, "value: malformed JSON at byte");
  expect_bad(user_key, "{", "value: malformed JSON at byte");
  expect_bad(user_key, "{\"op\":\"c\"} trailing",
             "value: malformed JSON at byte 11 of 19");
  expect_bad(user_key, "\xff\xfe", "value: malformed JSON");
  expect_bad(user_key, "[]", "value: not a JSON object");
  expect_bad(user_key, "null", "value: not a JSON object");
  expect_bad(user_key, "42", "value: not a JSON object");
  expect_bad(user_key, "\"{}\"", "value: not a JSON object");
  expect_bad(user_key, "{\"schema\":{},\"payload\":[1]}",
             "payload: not a JSON object");
  expect_bad(user_key, "{}", "op: missing");
}

/* Text must be UTF-8 without NUL: PostgreSQL text could not hold it. */
static void test_bad_text(void **state) {
  char *val;
  char *p;

  (void)state;
  expect_mutated_bad("after", "firstName", "\"Iv\\u0000an\"",
                     "value: string contains a NUL character");
  val = mutate(user_event, "after", "firstName", "\"Iv#an\"");
  p = strchr(val, '#');
  *p = (char)0xC3; /* a lead byte and no continuation */
  expect_bad(user_key, val, "after.firstName: not valid UTF-8");
  *p = (char)0xC0; /* overlong */
  expect_bad(user_key, val, "after.firstName: not valid UTF-8");
  free(val);
  expect_mutated_bad("after", "firstName", "\"\\ud800\"",
                     "value: malformed JSON");
}

/* Reasons name the field, never the value of a column. */
static void test_reasons_hold_no_values(void **state) {
  static const struct {
    const char *field, *raw, *secret;
  } cases[] = {
      {"firstName", "12345", "12345"},
      {"email", "{\"v\":\"x@secret.example\"}", "secret"},
      {"phone", "89123456789", "8912"},
      {"createdAt", "\"1987-13-45T10:00:00Z\"", "1987"},
  };
  cm_event_t ev;
  char err[256];
  char *val;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    val = mutate(user_event, "after", cases[i].field, cases[i].raw);
    assert_int_equal(decode_str(user_key, val, &ev, err, sizeof(err)),
                     CM_ERR_BAD_INPUT);
    assert_null(strstr(err, cases[i].secret));
    free(val);
  }
}

static void test_oversize(void **state) {
  size_t n = CM_EVENT_MAX_BYTES + 1;
  char *big = malloc(n);
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_non_null(big);
  memset(big, ' ', n);
  assert_int_equal(cm_event_decode(USER_TOPIC, user_key, strlen(user_key), big,
                                   n, &ev, err, sizeof(err)),
                   CM_ERR_TOO_LARGE);
  assert_string_equal(err, "value of 4194305 bytes is over the limit of "
                           "4194304 bytes");
  assert_int_equal(cm_event_decode(USER_TOPIC, big, n, user_event,
                                   strlen(user_event), &ev, err, sizeof(err)),
                   CM_ERR_TOO_LARGE);
  assert_string_equal(err, "key of 4194305 bytes is over the limit of "
                           "4194304 bytes");
  /* exactly at the limit is parsed (and is white space only) */
  assert_int_equal(cm_event_decode(USER_TOPIC, user_key, strlen(user_key), big,
                                   n - 1, &ev, err, sizeof(err)),
                   CM_ERR_BAD_INPUT);
  free(big);
}

/* Integers come from the text: beyond 2^53 a double would round them. */
static void test_exact_integers(void **state) {
  cm_event_t ev;

  (void)state;
  decode_mutated("source", "lsn", "9007199254740993", &ev);
  assert_int_equal(ev.lsn, INT64_C(9007199254740993));
  cm_event_clear(&ev);
  decode_mutated("source", "lsn", "9223372036854775807", &ev);
  assert_int_equal(ev.lsn, INT64_MAX);
  cm_event_clear(&ev);
  expect_mutated_bad("source", "lsn", "9223372036854775808",
                     "source.lsn: not a non-negative integer");
  decode_mutated("after", "clinicId", "-9007199254740995", &ev);
  assert_int_equal(ev.after[CM_USER_CLINIC_ID].i, INT64_C(-9007199254740995));
  cm_event_clear(&ev);
}

/* A schema that is not the envelope's (or none) does not break decoding. */
static void test_odd_schemas(void **state) {
  cm_event_t ev;
  char err[256];
  char buf[sizeof(user_event) + 128];

  (void)state;
  snprintf(buf, sizeof(buf), "{\"schema\":null,\"payload\":%s}", user_event);
  assert_int_equal(decode_str(user_key, buf, &ev, err, sizeof(err)), CM_OK);
  cm_event_clear(&ev);
  snprintf(buf, sizeof(buf),
           "{\"schema\":{\"fields\":{\"after\":1}},"
           "\"payload\":%s}",
           user_event);
  assert_int_equal(decode_str(user_key, buf, &ev, err, sizeof(err)), CM_OK);
  cm_event_clear(&ev);
  snprintf(buf, sizeof(buf),
           "{\"schema\":{\"fields\":[{\"field\":\"after\","
           "\"fields\":[{\"field\":\"createdAt\",\"name\":7}]}]},"
           "\"payload\":%s}",
           user_event);
  assert_int_equal(decode_str(user_key, buf, &ev, err, sizeof(err)), CM_OK);
  cm_event_clear(&ev);
}

/* ---- cm_event_to_json ---------------------------------------------------- */

static void expect_json(const cm_event_t *ev, const char *want) {
  cJSON *j = cm_event_to_json(ev);
  char *s;

  assert_non_null(j);
  s = cJSON_PrintUnformatted(j);
  assert_non_null(s);
  if (strcmp(s, want) != 0) {
    print_error("got  %s\nwant %s\n", s, want);
    fail();
  }
  free(s);
  cJSON_Delete(j);
}

static void test_to_json(void **state) {
  cm_event_t ev;
  char err[256];

  (void)state;
  assert_int_equal(
      decode_fixture(PATIENT_TOPIC, "patient-create", &ev, err, sizeof(err)),
      CM_OK);
  expect_json(&ev, "{\"table\":\"Patient\",\"op\":\"c\",\"key\":42,"
                   "\"lsn\":24023128,\"txId\":771,\"snapshot\":\"false\","
                   "\"ts_ms\":1737540930789,\"source_ts_ms\":1737540930456,"
                   "\"before\":null,\"after\":{\"id\":42,\"clinicId\":3,"
                   "\"firstName\":\"Анна\",\"lastName\":\"Смирнова\","
                   "\"middleName\":\"Сергеевна\",\"birthDate\":\"1987-04-12\","
                   "\"gender\":\"F\",\"phone\":\"8 (912) 345-67-89\","
                   "\"email\":\" Anna.Smirnova@Example.ru \","
                   "\"createdAt\":\"2025-01-22T10:15:30.123000Z\","
                   "\"updatedAt\":\"2025-01-22T10:15:30.123000Z\"}}");
  cm_event_clear(&ev);
  assert_int_equal(
      decode_fixture(PATIENT_TOPIC, "patient-delete", &ev, err, sizeof(err)),
      CM_OK);
  expect_json(&ev, "{\"table\":\"Patient\",\"op\":\"d\",\"key\":42,"
                   "\"lsn\":24101576,\"txId\":845,\"snapshot\":\"false\","
                   "\"ts_ms\":1737694800117,\"source_ts_ms\":1737694800101,"
                   "\"before\":{\"id\":42},\"after\":null}");
  cm_event_clear(&ev);
  decode_mutated("after", "specialization", "\"__debezium_unavailable_value\"",
                 &ev);
  ev.after[CM_USER_UPDATED_AT].i = -1; /* 1969-12-31T23:59:59.999999Z */
  ev.after[CM_USER_CREATED_AT].i = -62135596800000000;
  ev.lsn = INT64_C(9007199254740993);
  expect_json(&ev,
              "{\"table\":\"User\",\"op\":\"u\",\"key\":7,"
              "\"lsn\":9007199254740993,\"txId\":771,\"snapshot\":\"false\","
              "\"ts_ms\":1737540930789,\"source_ts_ms\":1737540930456,"
              "\"before\":null,\"after\":{\"id\":7,\"clinicId\":3,"
              "\"email\":\"i.petrov@clinic3.example\",\"phone\":null,"
              "\"firstName\":\"Ivan\",\"lastName\":\"Petrov\","
              "\"role\":\"DOCTOR\",\"specialization\":{\"unavailable\":true},"
              "\"licenseNumber\":null,\"isActive\":true,"
              "\"createdAt\":\"0001-01-01T00:00:00.000000Z\","
              "\"updatedAt\":\"1969-12-31T23:59:59.999999Z\"}}");
  cm_event_clear(&ev);
  assert_int_equal(
      cm_event_decode(PATIENT_TOPIC, "42", 2, NULL, 0, &ev, err, sizeof(err)),
      CM_OK);
  expect_json(&ev, "{\"table\":\"Patient\",\"op\":\"tombstone\",\"key\":42,"
                   "\"snapshot\":\"false\",\"before\":null,\"after\":null}");
  assert_int_equal(decode_fixture("legacy.transaction", "txmeta-begin", &ev,
                                  err, sizeof(err)),
                   CM_OK);
  expect_json(&ev, "{\"table\":null,\"op\":\"txmeta\",\"txId\":771,"
                   "\"snapshot\":\"false\",\"ts_ms\":1737540930456,"
                   "\"before\":null,\"after\":null}");
  cm_event_clear(&ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tables),
      cmocka_unit_test(test_create_schema_form),
      cmocka_unit_test(test_update_no_schema),
      cmocka_unit_test(test_delete_partial_before),
      cmocka_unit_test(test_delete_null_before),
      cmocka_unit_test(test_read_snapshot),
      cmocka_unit_test(test_replay_row),
      cmocka_unit_test(test_range_marker),
      cmocka_unit_test(test_replay_fixtures),
      cmocka_unit_test(test_bad_replay),
      cmocka_unit_test(test_update_toast),
      cmocka_unit_test(test_unavailable_not_null),
      cmocka_unit_test(test_truncate),
      cmocka_unit_test(test_message),
      cmocka_unit_test(test_txmeta),
      cmocka_unit_test(test_tombstone),
      cmocka_unit_test(test_clinic_skipped),
      cmocka_unit_test(test_old_layout),
      cmocka_unit_test(test_snapshot_values),
      cmocka_unit_test(test_lenient_fields),
      cmocka_unit_test(test_schema_timestamps),
      cmocka_unit_test(test_schema_timestamp_names),
      cmocka_unit_test(test_configured_timestamps),
      cmocka_unit_test(test_semantic_type_wins),
      cmocka_unit_test(test_configured_dates),
      cmocka_unit_test(test_coltypes),
      cmocka_unit_test(test_zoned_timestamps),
      cmocka_unit_test(test_dates),
      cmocka_unit_test(test_keys),
      cmocka_unit_test(test_text_numbers),
      cmocka_unit_test(test_flattened),
      cmocka_unit_test(test_heartbeat),
      cmocka_unit_test(test_incremental_snapshot),
      cmocka_unit_test(test_key_mismatch_before),
      cmocka_unit_test(test_bad_values),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_bad_text),
      cmocka_unit_test(test_reasons_hold_no_values),
      cmocka_unit_test(test_oversize),
      cmocka_unit_test(test_exact_integers),
      cmocka_unit_test(test_odd_schemas),
      cmocka_unit_test(test_to_json),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
