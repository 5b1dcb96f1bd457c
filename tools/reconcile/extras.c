/*
 * extras.c — the events beside the checks: unresolved links, offset
 * gaps, patient regroups and suspect components.
 *
 * NOTES
 * docs/reconciliation.md gives each event's fields. Unresolved links and
 * suspects describe the state of this pass and are published every pass
 * in which there are any; gaps (offset_gap) and regroups (patient_regroup,
 * written by the workers in the batch that merges or splits) are
 * published once each: their ids go into c->sent_gaps / sent_regroups
 * and, once the cluster has acknowledged the pass's events, into
 * reconciler_published (pass.c), so that a restart does not publish them
 * again.
 *
 * A phone key is personal data: it leaves the database only to be
 * hashed, HMAC-SHA256 with the --hash-secret-file key (OpenSSL), and only
 * the hash is published. Without a key the hash is null.
 */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_repair.h"

/* Runs statement @p name with the parameters; the caller PQclear()s. */
static PGresult *run(rc_ctx_t *c, const char *name, int nparams,
                     const char *const *params, const char *what, char *errstr,
                     size_t size) {
  char *sql = rc_ctx_sql(c, name, NULL, 0, errstr, size);
  PGresult *res;

  if (!sql)
    return NULL;
  res = rc_db_query(&c->target, sql, nparams, params, what, errstr, size);
  free(sql);
  return res;
}

/* "key":[first column of the first 100 rows] */
static void id_column(cm_text_t *b, const char *key, const PGresult *res) {
  int i, n = PQntuples(res) < RC_IDS_MAX ? PQntuples(res) : RC_IDS_MAX;

  rc_buf_key(b, key);
  cm_text_add(b, "[", 1);
  for (i = 0; i < n; i++) {
    if (i)
      cm_text_add(b, ",", 1);
    cm_text_str(b, PQgetvalue(res, i, 0)); /* an integer, from id::text */
  }
  cm_text_add(b, "]", 1);
}

static void i64_or_null(cm_text_t *b, const char *key, const PGresult *res,
                        int row, int col) {
  int64_t v;

  rc_buf_key(b, key);
  if (rc_cell_i64(res, row, col, &v) == 0)
    cm_text_i64(b, v);
  else
    cm_text_str(b, "null");
}

static void entity_pass_head(rc_ctx_t *c, cm_text_t *b, const char *entity) {
  rc_buf_key(b, "entity");
  cm_text_json(b, entity);
  rc_buf_key(b, "pass");
  cm_text_i64(b, c->pass);
}

/* ---- unresolved ---------------------------------------------------------- */

static void seconds(cm_text_t *b, int64_t ms) {
  if (ms % 1000 == 0)
    cm_text_i64(b, ms / 1000);
  else
    rc_buf_f3(b, (double)ms / 1000);
}

static int send_unresolved(rc_ctx_t *c, const PGresult *doc,
                           const PGresult *pat, char *errstr, size_t size) {
  cm_text_t b;
  int rc;

  cm_text_init(&b, RC_EVENT_MAX);
  rc_event_begin(c, &b, "unresolved");
  entity_pass_head(c, &b, "appointment");
  rc_buf_key(&b, "grace_s");
  seconds(&b, c->o->grace_ms);
  id_column(&b, "doctor", doc);
  id_column(&b, "patient", pat);
  if (PQntuples(doc) > RC_IDS_MAX || PQntuples(pat) > RC_IDS_MAX) {
    rc_buf_key(&b, "truncated");
    cm_text_str(&b, "true");
  }
  rc = rc_event_send(c, "appointment", &b, errstr, size);
  cm_text_free(&b);
  return rc;
}

int rc_unresolved(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  char grace[24];
  const char *params[1] = {grace};
  PGresult *doc, *pat = NULL;
  int rc = CM_ERR_RETRY;

  snprintf(grace, sizeof(grace), "%" PRId64, c->o->grace_ms);
  doc = run(c, "unresolved_doctor", 1, params, "read unresolved links", errstr,
            errstr_size);
  if (doc)
    pat = run(c, "unresolved_patient", 1, params, "read unresolved links",
              errstr, errstr_size);
  if (doc && pat) /* every pass, empty lists too: "none" is news */
    rc = send_unresolved(c, doc, pat, errstr, errstr_size);
  PQclear(doc);
  PQclear(pat);
  return rc;
}

/* ---- rows published once ------------------------------------------------ */

/* One event per row of a bookkeeping query, by @p send. */
typedef int (*send_row_t)(rc_ctx_t *c, const PGresult *res, int row,
                          cm_text_t *b, char *errstr, size_t size);

/*
 * Publishes one event per row of query @p name and notes each row's id
 * (column 0) in @p sent, to be marked published once the pass is
 * acknowledged: what was published is not published again.
 */
static int publish_rows(rc_ctx_t *c, const char *name, int nparams,
                        const char *const *params, const char *what,
                        send_row_t send, rc_idlist_t *sent, char *errstr,
                        size_t size) {
  PGresult *res = run(c, name, nparams, params, what, errstr, size);
  cm_text_t b;
  int64_t id;
  int i, rc = 0;

  if (!res)
    return CM_ERR_RETRY;
  cm_text_init(&b, RC_EVENT_MAX);
  for (i = 0; rc == 0 && i < PQntuples(res); i++) {
    rc = send(c, res, i, &b, errstr, size);
    if (rc == 0 && rc_cell_i64(res, i, 0, &id) == 0)
      rc = rc_idlist_add(sent, id);
  }
  cm_text_free(&b);
  PQclear(res);
  return rc;
}

/* ---- gaps ---------------------------------------------------------------- */

/* The command that repairs a gap on @topic, as the worker logs it
 * (docs/operations.md §5). */
static void repair(const rc_opts_t *o, const char *topic, cm_text_t *b) {
  char cmd[1024];

  cm_text_json(b,
               cm_repair_command(o->brokers, o->topic_replay, o->topic_prefix,
                                 o->source_schema, topic, cmd, sizeof(cmd)));
}

static int send_gap(rc_ctx_t *c, const PGresult *res, int row, cm_text_t *b,
                    char *errstr, size_t size) {
  rc_event_begin(c, b, "gap");
  rc_buf_key(b, "topic");
  cm_text_json(b, PQgetvalue(res, row, 1));
  i64_or_null(b, "partition", res, row, 2);
  i64_or_null(b, "from_offset", res, row, 3);
  i64_or_null(b, "to_offset", res, row, 4);
  rc_buf_key(b, "detected_at");
  cm_text_json(b, PQgetvalue(res, row, 5));
  rc_buf_key(b, "repair");
  repair(c->o, PQgetvalue(res, row, 1), b);
  return rc_event_send(c, "-", b, errstr, size);
}

int rc_gaps(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  const char *params[1] = {c->o->group_id};

  return publish_rows(c, "gaps", 1, params, "read the offset gaps", send_gap,
                      &c->sent_gaps, errstr, errstr_size);
}

/* ---- regroups ------------------------------------------------------------ */

/* "10,14" (array_to_string of a bigint[]) as a JSON list. */
static void id_list(cm_text_t *b, const char *key, const char *csv) {
  size_t n = strspn(csv, "0123456789,-");

  rc_buf_key(b, key);
  cm_text_add(b, "[", 1);
  if (csv[n] == '\0') /* only digits, commas and signs: numbers */
    cm_text_str(b, csv);
  cm_text_add(b, "]", 1);
}

static int send_regroup(rc_ctx_t *c, const PGresult *res, int row, cm_text_t *b,
                        char *errstr, size_t size) {
  int merge = strcmp(PQgetvalue(res, row, 1), "merge") == 0;

  rc_event_begin(c, b, merge ? "merge" : "split");
  rc_buf_key(b, "entity");
  cm_text_json(b, "patient");
  i64_or_null(b, "global_patient_id", res, row, 2);
  id_list(b, merge ? "merged" : "split_off", PQgetvalue(res, row, 3));
  rc_buf_key(b, "at");
  cm_text_json(b, PQgetvalue(res, row, 4));
  return rc_event_send(c, "patient", b, errstr, size);
}

int rc_regroups(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  return publish_rows(c, "regroups", 0, NULL, "read the regroups", send_regroup,
                      &c->sent_regroups, errstr, errstr_size);
}

/* ---- suspects ------------------------------------------------------------ */

/* Lowercase hex HMAC-SHA256 of @key under the secret, or null. */
static void key_hash(const rc_opts_t *o, const char *key, cm_text_t *b) {
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0, i;
  char out[2 * EVP_MAX_MD_SIZE + 1];

  if (!o->secret || !HMAC(EVP_sha256(), o->secret, (int)o->secret_len,
                          (const unsigned char *)key, strlen(key), md, &len)) {
    cm_text_str(b, "null");
    return;
  }
  for (i = 0; i < len; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[2 * len] = '\0';
  cm_text_json(b, out);
}

/* One suspect of @res's row: global id, members, and the phone key when
 * @phone. */
static int send_suspect(rc_ctx_t *c, const PGresult *res, int row, int phone,
                        cm_text_t *b, char *errstr, size_t size) {
  rc_event_begin(c, b, "suspect");
  entity_pass_head(c, b, "patient");
  i64_or_null(b, "global_patient_id", res, row, 0);
  i64_or_null(b, "members", res, row, 1);
  rc_buf_key(b, "reason");
  cm_text_json(b, phone ? "shared phone key" : "conflicting birth dates");
  if (phone) {
    rc_buf_key(b, "key_hash");
    key_hash(c->o, PQgetvalue(res, row, 2), b);
  }
  return rc_event_send(c, "patient", b, errstr, size);
}

int rc_suspects(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  char most[24];
  const char *params[1] = {most};
  PGresult *res[2] = {NULL, NULL};
  cm_text_t b;
  int k, i, rc = 0;

  snprintf(most, sizeof(most), "%" PRId64, c->o->suspect_members);
  res[0] = run(c, "suspects_birth", 0, NULL, "read suspect components", errstr,
               errstr_size);
  if (res[0])
    res[1] = run(c, "suspects_phone", 1, params, "read suspect components",
                 errstr, errstr_size);
  if (!res[0] || !res[1])
    rc = CM_ERR_RETRY;
  cm_text_init(&b, RC_EVENT_MAX);
  for (k = 0; rc == 0 && k < 2; k++)
    for (i = 0; rc == 0 && i < PQntuples(res[k]); i++)
      rc = send_suspect(c, res[k], i, k, &b, errstr, errstr_size);
  cm_text_free(&b);
  PQclear(res[0]);
  PQclear(res[1]);
  return rc;
}
