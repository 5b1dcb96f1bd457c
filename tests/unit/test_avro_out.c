/*
 * test_avro_out.c — clinicmig's own streams in Avro: JSON to Confluent's
 *                   wire format and back, and schema registration.
 *
 * NOTES
 * A schema registry of the test's own runs in this process
 * (libmicrohttpd): POST /subjects/{subject}/versions gives ids (the same
 * id for the same text), GET /schemas/ids/{id} answers them, and it can
 * be told to refuse (409), to be unwell (503) or to demand basic auth.
 * Checked: the progress and every kind of reconciliation event of
 * docs/observability.md and docs/reconciliation.md survive JSON -> Avro ->
 * JSON; the union branch a document takes; missing fields (null, default,
 * error); members the schema lacks; the 2^53 refusal; truncated and
 * malformed messages; registration once per subject and text, its errors
 * sorted, and retried on the next encode. python3-avro reads what this
 * writes in tests/integration/0072-avro-outputs.py.
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

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>

#include "clinicmig/cm_avro_out.h"
#include "clinicmig/cm_err.h"
#include "clinicmig/cm_schemas.h"

/* ---- the registry ------------------------------------------------------ */

#define REG_MAX 16

static struct {
  pthread_mutex_t lock;
  struct MHD_Daemon *d;
  int port;
  int status;           /* 0: answer; else every request gets it */
  const char *auth;     /* required Authorization header, or NULL */
  char *texts[REG_MAX]; /* id i + 1 */
  char subjects[REG_MAX][128];
  int n;
  int posts;
  char last_subject[128];
  char last_type[128];
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct body_s {
  char *p;
  size_t len;
} body_t;

static enum MHD_Result answer(struct MHD_Connection *c, unsigned int status,
                              const char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result rc;

  MHD_add_response_header(r, "Content-Type",
                          "application/vnd.schemaregistry.v1+json");
  rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* POST: the id of the body's schema under the subject. */
static enum MHD_Result post(struct MHD_Connection *c, const char *subject,
                            const body_t *b) {
  cJSON *doc = cJSON_ParseWithLength(b->p ? b->p : "", b->len);
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(doc, "schema");
  const char *type =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
  char out[64];
  int i, id = 0;

  snprintf(reg.last_subject, sizeof(reg.last_subject), "%s", subject);
  snprintf(reg.last_type, sizeof(reg.last_type), "%s", type ? type : "");
  reg.posts++;
  if (!cJSON_IsString(s)) {
    cJSON_Delete(doc);
    return answer(c, 422, "{\"error_code\":42201,\"message\":\"no schema\"}");
  }
  for (i = 0; i < reg.n && !id; i++)
    if (strcmp(reg.texts[i], s->valuestring) == 0)
      id = i + 1;
  if (!id && reg.n < REG_MAX) {
    reg.texts[reg.n] = strdup(s->valuestring);
    snprintf(reg.subjects[reg.n], sizeof(reg.subjects[0]), "%s", subject);
    id = ++reg.n;
  }
  cJSON_Delete(doc);
  snprintf(out, sizeof(out), "{\"id\":%d}", id);
  return answer(c, 200, out);
}

static enum MHD_Result get(struct MHD_Connection *c, const char *url) {
  cJSON *doc;
  char *text;
  enum MHD_Result rc;
  int id = 0;

  if (sscanf(url, "/schemas/ids/%d", &id) != 1 || id < 1 || id > reg.n)
    return answer(c, 404,
                  "{\"error_code\":40403,\"message\":\"Schema not found\"}");
  doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "schema", reg.texts[id - 1]);
  text = cJSON_PrintUnformatted(doc);
  rc = answer(c, 200, text);
  cJSON_free(text);
  cJSON_Delete(doc);
  return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *data,
                              size_t *data_size, void **con_cls) {
  body_t *b = *con_cls;
  const char *auth;
  char subject[128];
  enum MHD_Result rc;

  (void)cls;
  (void)version;
  if (b == NULL) {
    *con_cls = calloc(1, sizeof(body_t));
    return *con_cls ? MHD_YES : MHD_NO;
  }
  if (*data_size) {
    b->p = realloc(b->p, b->len + *data_size + 1);
    memcpy(b->p + b->len, data, *data_size);
    b->len += *data_size;
    *data_size = 0;
    return MHD_YES;
  }
  pthread_mutex_lock(&reg.lock);
  auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (reg.auth && (!auth || strcmp(auth, reg.auth) != 0))
    rc = answer(c, 401, "{\"error_code\":401,\"message\":\"Unauthorized\"}");
  else if (reg.status == 409)
    rc = answer(c, 409,
                "{\"error_code\":409,\"message\":\"Schema being registered "
                "is incompatible with an earlier schema\"}");
  else if (reg.status)
    rc = answer(c, (unsigned)reg.status,
                "{\"error_code\":50301,\"message\":\"unavailable\"}");
  else if (strcmp(method, "POST") == 0 &&
           sscanf(url, "/subjects/%127[^/]/versions", subject) == 1)
    rc = post(c, subject, b);
  else if (strcmp(method, "GET") == 0)
    rc = get(c, url);
  else
    rc = answer(c, 405, "{}");
  pthread_mutex_unlock(&reg.lock);
  return rc;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  body_t *b = *con_cls;

  (void)cls;
  (void)c;
  (void)toe;
  if (b) {
    free(b->p);
    free(b);
  }
  *con_cls = NULL;
}

static void reg_set(int status, const char *auth) {
  pthread_mutex_lock(&reg.lock);
  reg.status = status;
  reg.auth = auth;
  pthread_mutex_unlock(&reg.lock);
}

static int reg_posts(void) {
  int n;

  pthread_mutex_lock(&reg.lock);
  n = reg.posts;
  pthread_mutex_unlock(&reg.lock);
  return n;
}

/* A schema source on the registry (@p auth: user:password or NULL). */
static cm_schemas_t *source(const char *auth) {
  char url[64], err[256];
  cm_schemas_conf_t sc = {url, auth, NULL, NULL, 2000};
  cm_schemas_t *s;

  snprintf(url, sizeof(url), "http://127.0.0.1:%d", reg.port);
  s = cm_schemas_new(&sc, err, sizeof(err));
  assert_non_null(s);
  return s;
}

static int setup(void **state) {
  (void)state;
  reg.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                           handle, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed,
                           NULL, MHD_OPTION_END);
  if (!reg.d)
    return -1;
  reg.port = MHD_get_daemon_info(reg.d, MHD_DAEMON_INFO_BIND_PORT)->port;
  return 0;
}

static int teardown(void **state) {
  int i;

  (void)state;
  MHD_stop_daemon(reg.d);
  for (i = 0; i < reg.n; i++)
    free(reg.texts[i]);
  return 0;
}

/* ---- helpers ----------------------------------------------------------- */

/* Encodes @p json with @p o; asserts it worked. */
static void encode(cm_avro_out_t *o, const char *json, unsigned char **buf,
                   size_t *len) {
  char err[512] = "";
  int rc = cm_avro_out_encode_json(o, json, strlen(json), (void **)buf, len,
                                   err, sizeof(err));

  if (rc != CM_OK)
    fail_msg("encode: %d %s", rc, err);
}

/* Decodes @p buf with a fresh schema source (the schema fetched by id). */
static char *decode(const unsigned char *buf, size_t len) {
  cm_schemas_t *s = source(NULL);
  char err[512] = "", *json = NULL;
  int rc = cm_avro_wire_to_json(s, buf, len, &json, err, sizeof(err));

  cm_schemas_destroy(s);
  if (rc != CM_OK)
    fail_msg("decode: %d %s", rc, err);
  return json;
}

/* JSON -> Avro -> JSON gives the same document. */
static void round_trip(cm_avro_out_t *o, const char *json, int branch) {
  cJSON *a = cJSON_Parse(json), *b;
  unsigned char *buf;
  char *back;
  size_t len;

  assert_non_null(a);
  encode(o, json, &buf, &len);
  assert_true(len > 5);
  assert_int_equal(buf[0], 0);
  if (branch >= 0) /* the union's branch: the body's first varint */
    assert_int_equal(buf[5], branch * 2);
  back = decode(buf, len);
  b = cJSON_Parse(back);
  if (!cJSON_Compare(a, b, 1))
    fail_msg("round trip changed\n  %s\ninto\n  %s", json, back);
  cJSON_Delete(a);
  cJSON_Delete(b);
  free(back);
  free(buf);
}

static cm_avro_out_t *writer(cm_schemas_t *s, const char *topic,
                             const char *schema) {
  char err[512] = "";
  cm_avro_out_t *o = cm_avro_out_new(s, topic, schema, err, sizeof(err));

  if (!o)
    fail_msg("cm_avro_out_new: %s", err);
  return o;
}

/* ---- the streams' events ----------------------------------------------- */

static const char progress_event[] =
    "{\"v\":1,\"type\":\"progress\",\"ts\":\"2026-11-30T10:15:30.123Z\","
    "\"source\":\"worker:w1\",\"worker\":\"w1\",\"group\":\"clinicmig\","
    "\"final\":false,\"started\":\"2026-11-30T10:02:11.480Z\","
    "\"interval_s\":5.001,\"entities\":{"
    "\"doctor\":{\"consumed\":10,\"applied\":9,\"stale\":1,\"skipped\":0,"
    "\"dead_lettered\":0},"
    "\"patient\":{\"consumed\":4,\"applied\":4,\"stale\":0,\"skipped\":0,"
    "\"dead_lettered\":0},"
    "\"appointment\":{\"consumed\":0,\"applied\":0,\"stale\":0,\"skipped\":0,"
    "\"dead_lettered\":0},"
    "\"other\":{\"consumed\":9007199254740991,\"applied\":0,\"stale\":0,"
    "\"skipped\":0,\"dead_lettered\":0}},"
    "\"partitions\":[{\"topic\":\"legacy.public.User\",\"partition\":0,"
    "\"committed\":123,\"high_watermark\":130,\"lag\":7},"
    "{\"topic\":\"legacy.public.Patient\",\"partition\":2,"
    "\"committed\":0,\"high_watermark\":0,\"lag\":0}],"
    "\"lag\":{\"live\":7,\"replay\":0},"
    "\"batches\":{\"count\":42,\"events\":4100,\"size_p50\":100,"
    "\"size_p99\":500,\"latency_ms_p50\":35.2,\"latency_ms_p99\":120.0},"
    "\"retries\":0,\"rate_per_s\":812.5,\"eta_s\":%s,"
    "\"replay\":{\"partitions\":[{\"partition\":0,\"committed\":10,"
    "\"high_watermark\":10}]}}";

static void progress_round_trip(void **state) {
  cm_schemas_t *s = source(NULL);
  cm_avro_out_t *o = writer(s, "clinicmig.progress", cm_avsc("progress"));
  const char *etas[] = {"null", "0.0", "12.5"};
  char json[4096], *back;
  unsigned char *buf;
  size_t len, i;

  (void)state;
  for (i = 0; i < 3; i++) {
    snprintf(json, sizeof(json), progress_event, etas[i]);
    round_trip(o, json, -1);
  }
  /* exactly: longs printed whole, the union unwrapped, the members in the
   * order the worker writes them */
  snprintf(json, sizeof(json), progress_event, "12.5");
  encode(o, json, &buf, &len);
  back = decode(buf, len);
  assert_non_null(strstr(back, "\"consumed\":9007199254740991,"));
  assert_non_null(strstr(back, "\"rate_per_s\":812.5,\"eta_s\":12.5,"));
  assert_non_null(strstr(back, "{\"v\":1,\"type\":\"progress\",\"ts\":"));
  assert_string_equal(reg.last_subject, "clinicmig.progress-value");
  assert_string_equal(reg.last_type, "application/vnd.schemaregistry.v1+json");
  free(back);
  free(buf);
  cm_avro_out_destroy(o);
  cm_schemas_destroy(s);
}

#define HEAD(t)                                                                \
  "{\"v\":1,\"type\":\"" t "\",\"ts\":\"2026-11-30T10:15:30.123Z\","           \
  "\"source\":\"reconciler:h:1\","

static const struct {
  const char *json;
  int branch; /* in schemas/reconciliation.avsc */
} reconciliation_events[] = {
    {HEAD("counts") "\"entity\":\"patient\",\"pass\":7,\"clinics\":["
                    "{\"clinic_id\":1,\"legacy\":20,\"mirror\":20,"
                    "\"migrated\":20},{\"clinic_id\":null,\"legacy\":null,"
                    "\"mirror\":1,\"migrated\":0}],\"total\":{\"legacy\":20,"
                    "\"mirror\":21,\"migrated\":20,\"global\":13},"
                    "\"dead_lettered\":0}",
     0},
    {HEAD("counts") "\"entity\":\"appointment\",\"pass\":7,\"clinics\":[],"
                    "\"total\":{\"legacy\":null,\"mirror\":0,\"migrated\":0,"
                    "\"global\":null},\"dead_lettered\":2}",
     0},
    {HEAD("mismatch") "\"entity\":\"patient\",\"pass\":7,\"check\":"
                      "\"legacy-mirror\",\"missing\":[],\"extra\":[3,4],"
                      "\"differing\":[12]}",
     1},
    {HEAD("mismatch") "\"entity\":\"doctor\",\"pass\":7,\"check\":"
                      "\"mirror-v2\",\"missing\":[1],\"extra\":[],"
                      "\"differing\":[],\"truncated\":true}",
     2},
    {HEAD("pass") "\"entity\":\"patient\",\"pass\":7,\"rows\":{\"legacy\":"
                  "100000,\"mirror\":100000,\"v2\":100000},\"rows_read\":50,"
                  "\"segments\":64,\"mismatches\":1,\"duration_s\":1.565,"
                  "\"legacy_rows_per_s\":127779}",
     3},
    {HEAD("pass") "\"entity\":\"doctor\",\"pass\":7,\"rows\":{\"legacy\":"
                  "null,\"mirror\":0,\"v2\":0},\"rows_read\":0,"
                  "\"segments\":0,\"mismatches\":0,\"duration_s\":0.001,"
                  "\"legacy_rows_per_s\":null}",
     3},
    {HEAD("unresolved") "\"entity\":\"appointment\",\"pass\":7,\"grace_s\":"
                        "60,\"doctor\":[20],\"patient\":[]}",
     4},
    {HEAD("unresolved") "\"entity\":\"appointment\",\"pass\":7,\"grace_s\":"
                        "0.5,\"doctor\":[],\"patient\":[1,2],"
                        "\"truncated\":true}",
     5},
    {HEAD("gap") "\"topic\":\"legacy.public.Patient\",\"partition\":1,"
                 "\"from_offset\":0,\"to_offset\":120,\"detected_at\":"
                 "\"2026-11-30T10:15:30.123Z\",\"repair\":\"clinicmig-replay "
                 "db --legacy-conninfo LEGACY_CONNINFO --tables Patient\"}",
     6},
    {HEAD("merge") "\"entity\":\"patient\",\"global_patient_id\":3,"
                   "\"merged\":[10],\"at\":\"2026-11-30T10:15:30.123Z\"}",
     7},
    {HEAD("split") "\"entity\":\"patient\",\"global_patient_id\":3,"
                   "\"split_off\":[10,14],\"at\":\"2026-11-30T10:15:30.123Z\"}",
     8},
    {HEAD("suspect") "\"entity\":\"patient\",\"pass\":7,"
                     "\"global_patient_id\":3,\"members\":3,\"reason\":"
                     "\"conflicting birth dates\"}",
     9},
    {HEAD("suspect") "\"entity\":\"patient\",\"pass\":7,"
                     "\"global_patient_id\":40,\"members\":7,\"reason\":"
                     "\"shared phone key\",\"key_hash\":\"9f2c\"}",
     10},
    {HEAD("suspect") "\"entity\":\"patient\",\"pass\":7,"
                     "\"global_patient_id\":null,\"members\":7,\"reason\":"
                     "\"shared phone key\",\"key_hash\":null}",
     10},
    {HEAD("verdict") "\"entity\":\"patient\",\"pass\":7,\"in_sync\":true,"
                     "\"since\":\"2026-11-30T10:15:30.123Z\",\"lag\":0,"
                     "\"mismatches\":0,\"held_s\":30.0,\"reason\":\"no "
                     "mismatch, lag 0 <= 100, held 30 s of 30 s\"}",
     11},
    {HEAD("verdict") "\"entity\":\"doctor\",\"pass\":1,\"in_sync\":false,"
                     "\"since\":\"2026-11-30T10:15:30.123Z\",\"lag\":null,"
                     "\"mismatches\":2,\"held_s\":0.0,\"reason\":\"2 "
                     "mismatching ids, lag unknown\"}",
     11},
};

static void reconciliation_round_trip(void **state) {
  cm_schemas_t *s = source(NULL);
  cm_avro_out_t *o =
      writer(s, "clinicmig.reconciliation", cm_avsc("reconciliation"));
  unsigned char *buf;
  char *back;
  size_t i, len;

  (void)state;
  for (i = 0;
       i < sizeof(reconciliation_events) / sizeof(reconciliation_events[0]);
       i++)
    round_trip(o, reconciliation_events[i].json,
               reconciliation_events[i].branch);
  assert_string_equal(reg.last_subject, "clinicmig.reconciliation-value");
  /* absent stays absent, null stays null */
  encode(o, reconciliation_events[11].json, &buf, &len);
  back = decode(buf, len);
  assert_null(strstr(back, "key_hash"));
  free(back);
  free(buf);
  encode(o, reconciliation_events[13].json, &buf, &len);
  back = decode(buf, len);
  assert_non_null(strstr(back, "\"key_hash\":null"));
  free(back);
  free(buf);
  cm_avro_out_destroy(o);
  cm_schemas_destroy(s);
}

static void embedded_schemas(void **state) {
  (void)state;
  assert_non_null(cm_avsc("progress"));
  assert_non_null(cm_avsc("reconciliation"));
  assert_null(cm_avsc("no-such-schema"));
}

/* ---- the mapping, on a small schema ------------------------------------ */

static const char small_schema[] =
    "{\"type\":\"record\",\"name\":\"Small\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"req\",\"type\":\"long\"},"
    "{\"name\":\"opt\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"def\",\"type\":\"int\",\"default\":7},"
    "{\"name\":\"sym\",\"type\":{\"type\":\"enum\",\"name\":\"Sym\","
    "\"symbols\":[\"a\",\"b\"]},\"default\":\"b\"},"
    "{\"name\":\"inner\",\"type\":{\"type\":\"record\",\"name\":\"x.Inner\","
    "\"fields\":[{\"name\":\"d\",\"type\":\"string\",\"default\":\"dd\"}]},"
    "\"default\":{}},"
    "{\"name\":\"any\",\"type\":[\"null\",\"long\",\"double\",\"string\","
    "{\"type\":\"record\",\"name\":\"A\",\"fields\":[{\"name\":\"a\","
    "\"type\":\"long\"}]},"
    "{\"type\":\"record\",\"name\":\"B\",\"fields\":[{\"name\":\"b\","
    "\"type\":\"string\"}]},"
    "{\"type\":\"map\",\"values\":\"boolean\"},"
    "{\"type\":\"array\",\"items\":\"Small\"}],\"default\":null}]}";

/* Encodes {"req":1,"any":ANY}; the branch of `any` and the JSON back. */
static char *any_branch(cm_avro_out_t *o, const char *any, int *branch) {
  char json[256];
  unsigned char *buf;
  char *back;
  size_t len;

  snprintf(json, sizeof(json), "{\"req\":1,\"any\":%s}", any);
  encode(o, json, &buf, &len);
  /* req (1 byte), opt (null: 1), def (1), sym (1), inner.d (3): then any */
  *branch = buf[5 + 7] / 2;
  back = decode(buf, len);
  free(buf);
  return back;
}

static void union_choice(void **state) {
  static const struct {
    const char *any;
    int branch;
  } cases[] = {
      {"null", 0},
      {"5", 1},
      {"-5.5", 2},
      {"\"s\"", 3},
      {"{\"a\":1}", 4},
      {"{\"b\":\"y\"}", 5},
      {"{\"b\":true}", 6},
      {"{}", 6},
      {"[{\"req\":2}]", 7},
      {"1e300", 2},
      {"4503599627370497", 1},
  };
  cm_schemas_t *s = source(NULL);
  cm_avro_out_t *o = writer(s, "t.small", small_schema);
  char want[256], *back;
  size_t i;
  int branch;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    back = any_branch(o, cases[i].any, &branch);
    assert_int_equal(branch, cases[i].branch);
    free(back);
  }
  back = any_branch(o, "{\"a\":1}", &branch);
  assert_string_equal(back, "{\"req\":1,\"opt\":null,\"def\":7,\"sym\":\"b\","
                            "\"inner\":{\"d\":\"dd\"},\"any\":{\"a\":1}}");
  free(back);
  back = any_branch(o, "[{\"req\":2,\"sym\":\"a\"}]", &branch);
  snprintf(want, sizeof(want),
           "{\"req\":1,\"opt\":null,\"def\":7,\"sym\":\"b\",\"inner\":"
           "{\"d\":\"dd\"},\"any\":[{\"req\":2,\"opt\":null,\"def\":7,"
           "\"sym\":\"a\",\"inner\":{\"d\":\"dd\"},\"any\":null}]}");
  assert_string_equal(back, want);
  free(back);
  cm_avro_out_destroy(o);
  cm_schemas_destroy(s);
}

/* The document @p json is refused with BAD_INPUT naming @p what. */
static void refused(cm_avro_out_t *o, const char *json, const char *what) {
  char err[512] = "";
  unsigned char *buf = NULL;
  size_t len = 0;
  int rc = cm_avro_out_encode_json(o, json, strlen(json), (void **)&buf, &len,
                                   err, sizeof(err));

  assert_int_equal(rc, CM_ERR_BAD_INPUT);
  assert_null(buf);
  if (!strstr(err, what))
    fail_msg("%s: reason \"%s\" does not name \"%s\"", json, err, what);
}

static void missing_and_unknown(void **state) {
  cm_schemas_t *s = source(NULL);
  cm_avro_out_t *o = writer(s, "t.small", small_schema);

  (void)state;
  refused(o, "{}", "$.req: missing, and the field has no default");
  refused(o, "{\"req\":1,\"zzz\":2}", "$.zzz: no such field in record Small");
  refused(o, "{\"req\":1,\"inner\":{\"e\":1}}", "$.inner.e: no such field");
  refused(o, "{\"req\":\"1\"}", "$.req: a JSON string where the schema has");
  refused(o, "{\"req\":1,\"sym\":\"c\"}", "$.sym: not a symbol of enum Sym");
  refused(o, "{\"req\":1,\"opt\":true}",
          "$.opt: a JSON boolean fits no branch of the union");
  refused(o, "{\"req\":1,\"any\":[{\"req\":1,\"def\":1.5}]}",
          "$.any[0].def: expected a whole number");
  refused(o, "{\"req\":1,\"def\":3000000000}",
          "$.def: out of the range of an Avro int");
  refused(o, "[1", "not a JSON document");
  cm_avro_out_destroy(o);
  cm_schemas_destroy(s);
}

static void beyond_2_53(void **state) {
  cm_schemas_t *s = source(NULL);
  cm_avro_out_t *o = writer(s, "t.small", small_schema);
  unsigned char *buf;
  char *back;
  size_t len;

  (void)state;
  refused(o, "{\"req\":9007199254740993}", "$.req: a whole number of 2^53");
  refused(o, "{\"req\":9007199254740992}", "2^53 or more cannot be carried");
  refused(o, "{\"req\":-9007199254740992}", "2^53 or more cannot be carried");
  refused(o, "{\"req\":1,\"opt\":18446744073709551616}",
          "$.opt: a whole number of 2^53");
  encode(o, "{\"req\":9007199254740991}", &buf, &len);
  back = decode(buf, len);
  assert_non_null(strstr(back, "\"req\":9007199254740991,"));
  free(back);
  free(buf);
  encode(o, "{\"req\":-9007199254740991}", &buf, &len);
  back = decode(buf, len);
  assert_non_null(strstr(back, "\"req\":-9007199254740991,"));
  free(back);
  free(buf);
  cm_avro_out_destroy(o);
  cm_schemas_destroy(s);
}

/* cm_avro_out_encode_value with a value filled by hand. */
static void encode_value(void **state) {
  cm_schemas_t *s = source(NULL);
  cm_avro_out_t *o = writer(s, "t.small", small_schema);
  avro_value_iface_t *iface =
      avro_generic_class_from_schema(cm_avro_out_schema(o));
  avro_value_t v, f, b;
  unsigned char *buf;
  char err[256], *back;
  size_t len;

  (void)state;
  avro_generic_value_new(iface, &v);
  avro_value_get_by_name(&v, "req", &f, NULL);
  avro_value_set_long(&f, 42);
  avro_value_get_by_name(&v, "opt", &f, NULL);
  avro_value_set_branch(&f, 1, &b);
  avro_value_set_long(&b, -3);
  avro_value_get_by_name(&v, "inner", &f, NULL);
  avro_value_get_by_name(&f, "d", &b, NULL);
  avro_value_set_string(&b, "hé");
  avro_value_get_by_name(&v, "any", &f, NULL);
  avro_value_set_branch(&f, 0, &b);
  avro_value_set_null(&b);
  assert_int_equal(
      cm_avro_out_encode_value(o, &v, (void **)&buf, &len, err, sizeof(err)),
      CM_OK);
  back = decode(buf, len);
  assert_string_equal(back, "{\"req\":42,\"opt\":-3,\"def\":0,\"sym\":\"a\","
                            "\"inner\":{\"d\":\"hé\"},\"any\":null}");
  free(back);
  free(buf);
  /* a union left without a branch cannot be written */
  avro_value_reset(&v);
  assert_int_equal(
      cm_avro_out_encode_value(o, &v, (void **)&buf, &len, err, sizeof(err)),
      CM_ERR_BAD_INPUT);
  avro_value_decref(&v);
  avro_value_iface_decref(iface);
  cm_avro_out_destroy(o);
  cm_schemas_destroy(s);
}

/* ---- reading what does not fit ----------------------------------------- */

static int read_back(cm_schemas_t *s, const unsigned char *buf, size_t len,
                     char *err, size_t size) {
  char *json = NULL;
  int rc = cm_avro_wire_to_json(s, buf, len, &json, err, size);

  if (rc == CM_OK)
    free(json);
  else
    assert_null(json);
  return rc;
}

static void truncated_and_malformed(void **state) {
  cm_schemas_t *s = source(NULL);
  cm_avro_out_t *o = writer(s, "t.small", small_schema);
  unsigned char *buf, bad[64];
  char err[512];
  size_t len, n;

  (void)state;
  encode(o,
         "{\"req\":300,\"opt\":5,\"inner\":{\"d\":\"text\"},"
         "\"any\":[{\"req\":2}]}",
         &buf, &len);
  assert_int_equal(read_back(s, buf, len, err, sizeof(err)), CM_OK);
  for (n = 0; n < len; n++) {
    err[0] = '\0';
    assert_int_equal(read_back(s, buf, n, err, sizeof(err)), CM_ERR_BAD_INPUT);
    if (n >= 5 && !strstr(err, "truncated or malformed"))
      fail_msg("%zu of %zu bytes: %s", n, len, err);
  }
  assert_true(len + 1 <= sizeof(bad));
  memcpy(bad, buf, len);
  bad[len] = 0;
  assert_int_equal(read_back(s, bad, len + 1, err, sizeof(err)),
                   CM_ERR_BAD_INPUT);
  assert_non_null(strstr(err, "1 trailing bytes"));
  bad[0] = '{';
  assert_int_equal(read_back(s, bad, len, err, sizeof(err)), CM_ERR_BAD_INPUT);
  assert_non_null(strstr(err, "wire format"));
  /* no schema source configured */
  assert_int_equal(read_back(NULL, buf, len, err, sizeof(err)),
                   CM_ERR_BAD_INPUT);
  assert_non_null(strstr(err, "no schema registry or directory"));
  /* an id the registry does not have */
  memcpy(bad, buf, len);
  bad[1] = 0x7f;
  assert_int_equal(read_back(s, bad, len, err, sizeof(err)), CM_ERR_BAD_INPUT);
  assert_non_null(strstr(err, "not found in the registry"));
  /* req is 300: two varint bytes (d8 04); opt: branch 1 (02), 5 (0a) */
  memcpy(bad, buf, len);
  bad[7] = 0x09; /* opt: a negative union branch */
  assert_int_equal(read_back(s, bad, len, err, sizeof(err)), CM_ERR_BAD_INPUT);
  /* inner.d: "text" (08 t e x t) after def (0e) and sym (02) */
  memcpy(bad, buf, len);
  assert_int_equal(bad[11], 0x08);
  bad[12] = 0xff; /* not UTF-8 */
  assert_int_equal(read_back(s, bad, len, err, sizeof(err)), CM_ERR_BAD_INPUT);
  assert_non_null(strstr(err, "not valid UTF-8"));
  memcpy(bad, buf, len);
  bad[11] = 0x7e; /* a string longer than what is left */
  assert_int_equal(read_back(s, bad, len, err, sizeof(err)), CM_ERR_BAD_INPUT);
  /* any: branch 7 (0e), an array block claiming 63 items (7e) */
  memcpy(bad, buf, len);
  assert_int_equal(bad[16], 0x0e);
  bad[17] = 0x7e;
  assert_int_equal(read_back(s, bad, len, err, sizeof(err)), CM_ERR_BAD_INPUT);
  free(buf);
  cm_avro_out_destroy(o);
  cm_schemas_destroy(s);
}

/* ---- registration ------------------------------------------------------ */

static int try_encode(cm_avro_out_t *o, char *err, size_t size) {
  static const char json[] = "{\"req\":1}";
  unsigned char *buf = NULL;
  size_t len = 0;
  int rc;

  err[0] = '\0';
  rc = cm_avro_out_encode_json(o, json, strlen(json), (void **)&buf, &len, err,
                               size);
  if (rc == CM_OK) {
    assert_int_equal(len, 5 + 8);
    free(buf);
  } else {
    assert_null(buf);
  }
  return rc;
}

static void registration(void **state) {
  cm_schemas_t *s = source(NULL), *s2;
  cm_avro_out_t *o = writer(s, "t.reg", small_schema), *o2;
  char err[512], dir[] = "/tmp/cm-avro-out-XXXXXX";
  cm_schemas_conf_t dir_only = {NULL, NULL, NULL, dir, 0};
  int32_t id1, id2;
  int posts;

  (void)state;
  /* once per subject and text, however many encodes and writers */
  posts = reg_posts();
  assert_int_equal(try_encode(o, err, sizeof(err)), CM_OK);
  assert_int_equal(try_encode(o, err, sizeof(err)), CM_OK);
  assert_int_equal(cm_schemas_register(s, "t.reg-value", small_schema, &id1,
                                       err, sizeof(err)),
                   CM_OK);
  assert_int_equal(reg_posts(), posts + 1);
  assert_string_equal(reg.last_subject, "t.reg-value");
  assert_int_equal(cm_schemas_register(s, "other-value", small_schema, &id2,
                                       err, sizeof(err)),
                   CM_OK);
  assert_int_equal(id1, id2); /* the registry's: same text, same id */
  assert_int_equal(reg_posts(), posts + 2);

  /* a registry that is unwell, then back: retried on the next encode */
  s2 = source(NULL);
  o2 = writer(s2, "t.reg2", small_schema);
  reg_set(503, NULL);
  assert_int_equal(try_encode(o2, err, sizeof(err)), CM_ERR_RETRY);
  assert_non_null(strstr(err, "HTTP status 503 registering subject t.reg2"));
  reg_set(0, NULL);
  assert_int_equal(try_encode(o2, err, sizeof(err)), CM_OK);
  cm_avro_out_destroy(o2);
  cm_schemas_destroy(s2);

  /* refused: the registry's reason; tried again next time */
  s2 = source(NULL);
  o2 = writer(s2, "t.reg3", small_schema);
  reg_set(409, NULL);
  assert_int_equal(try_encode(o2, err, sizeof(err)), CM_ERR_BAD_INPUT);
  assert_non_null(strstr(err, "refused the schema of subject t.reg3-value "
                              "(HTTP 409): Schema being registered is "
                              "incompatible"));
  reg_set(0, NULL);
  assert_int_equal(try_encode(o2, err, sizeof(err)), CM_OK);
  cm_avro_out_destroy(o2);
  cm_schemas_destroy(s2);

  /* basic auth: sent as the reads send it; 401 is worth a retry */
  reg_set(0, "Basic dTpw"); /* u:p */
  s2 = source(NULL);
  assert_int_equal(cm_schemas_register(s2, "t.auth-value", "\"long\"", &id1,
                                       err, sizeof(err)),
                   CM_ERR_RETRY);
  assert_non_null(strstr(err, "HTTP status 401"));
  cm_schemas_destroy(s2);
  s2 = source("u:p");
  assert_int_equal(cm_schemas_register(s2, "t.auth-value", "\"long\"", &id1,
                                       err, sizeof(err)),
                   CM_OK);
  cm_schemas_destroy(s2);
  reg_set(0, NULL);

  /* nobody listening */
  {
    cm_schemas_conf_t sc = {"http://127.0.0.1:1", NULL, NULL, NULL, 1000};

    s2 = cm_schemas_new(&sc, err, sizeof(err));
    assert_non_null(s2);
    assert_int_equal(
        cm_schemas_register(s2, "x-value", "\"long\"", &id1, err, sizeof(err)),
        CM_ERR_RETRY);
    cm_schemas_destroy(s2);
  }

  /* a schema directory alone cannot register */
  assert_non_null(mkdtemp(dir));
  s2 = cm_schemas_new(&dir_only, err, sizeof(err));
  assert_non_null(s2);
  o2 = writer(s2, "t.dir", small_schema);
  assert_int_equal(try_encode(o2, err, sizeof(err)), CM_ERR_CONFIG);
  assert_non_null(strstr(err, "needs a schema registry URL"));
  cm_avro_out_destroy(o2);
  cm_schemas_destroy(s2);
  rmdir(dir);

  /* a schema Avro C does not parse */
  assert_null(
      cm_avro_out_new(s, "t.bad", "{\"type\":\"nope\"}", err, sizeof(err)));
  assert_non_null(strstr(err, "not a valid Avro schema"));
  cm_avro_out_destroy(o);
  cm_schemas_destroy(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(embedded_schemas),
      cmocka_unit_test(progress_round_trip),
      cmocka_unit_test(reconciliation_round_trip),
      cmocka_unit_test(union_choice),
      cmocka_unit_test(missing_and_unknown),
      cmocka_unit_test(beyond_2_53),
      cmocka_unit_test(encode_value),
      cmocka_unit_test(truncated_and_malformed),
      cmocka_unit_test(registration),
  };

  return cmocka_run_group_tests(tests, setup, teardown);
}
