/*
 * kafka.c — the producer of the reconciliation topic, and the group's
 * lag.
 *
 * NOTES
 * One idempotent producer (acks=all, ordered retries): the events of a
 * pass arrive in the order they were published, keyed by entity
 * (docs/reconciliation.md, "Topic"). Every event gets a delivery report;
 * rc_out_flush() at the end of a pass says whether all were acknowledged,
 * and only then does the reconciler record the gaps and regroups it
 * published, so a lost event is published again rather than never.
 *
 * The lag of an entity is read the way the workers define their
 * progress (docs/design.md §2.4: the database is the record): the high
 * watermark of each partition, from the cluster, minus the next offset
 * the group stored in consumer_offset (0 when it stored none).
 *
 * With --output-format avro every event, written as JSON by the pass,
 * is encoded by cm_avro_out.h (schemas/reconciliation.avsc, registered
 * as <topic>-value with the first event) before it is queued. A registry
 * that cannot take the schema fails the send like a full queue would: the
 * pass fails and runs again, and nothing is recorded as published.
 *
 * librdkafka logs from its own threads; its lines are kept out of the
 * log but for the last error, which goes into the one line of a failure
 * (all of them are printed with -X kafka.debug=...). They name brokers and
 * topics, never a payload.
 */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_avro_out.h"
#include "clinicmig/cm_err.h"
#include "clinicmig/cm_schemas.h"

#define METADATA_TIMEOUT_MS 15000
#define WATERMARK_TIMEOUT_MS 10000
#define FLUSH_POLL_MS 500
#define DESTROY_FLUSH_MS 10000

struct rc_out_s {
  rd_kafka_t *rk;
  const rc_opts_t *o;
  cm_schemas_t *schemas; /* --output-format avro */
  cm_avro_out_t *avro;
  int64_t queued, acked, failed; /* since the last flush */
  char first_error[256];
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[512];
static int print_logs;

static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
  (void)rk;
  if (print_logs) {
    fprintf(stderr, RC_NAME ": kafka %s: %s\n", fac, buf);
    return;
  }
  if (level > 3 && strcmp(fac, "FAIL") != 0)
    return;
  pthread_mutex_lock(&log_lock);
  snprintf(last_error, sizeof(last_error), "%s", buf);
  pthread_mutex_unlock(&log_lock);
}

/* " (last error: ...)" when librdkafka logged one, else "". */
static void with_last_error(char *buf, size_t size) {
  pthread_mutex_lock(&log_lock);
  if (last_error[0])
    snprintf(buf, size, " (last error: %s)", last_error);
  else
    buf[0] = '\0';
  pthread_mutex_unlock(&log_lock);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  rc_out_t *out = opaque;

  (void)rk;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    out->acked++;
    return;
  }
  if (out->failed++ == 0)
    snprintf(out->first_error, sizeof(out->first_error), "%s",
             rd_kafka_err2str(m->err));
}

static int set(rd_kafka_conf_t *kc, const char *key, const char *value,
               const char *shown, char *errstr, size_t errstr_size) {
  char why[512];

  if (rd_kafka_conf_set(kc, key, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
    return 0;
  snprintf(errstr, errstr_size, "%s: %s", shown, why);
  return -1;
}

/* Brokers, every -X property, then what the producer needs. */
static rd_kafka_conf_t *producer_conf(const rc_opts_t *o, rc_out_t *out,
                                      char *errstr, size_t size) {
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  char shown[300];
  int i;

  if (set(kc, "client.id", RC_NAME, "client.id", errstr, size) != 0)
    goto fail;
  for (i = 0; i < o->prop_cnt; i++) {
    snprintf(shown, sizeof(shown), "-X kafka.%s", o->props[i].key);
    if (set(kc, o->props[i].key, o->props[i].value, shown, errstr, size) != 0)
      goto fail;
    if (strcmp(o->props[i].key, "debug") == 0)
      print_logs = 1;
  }
  if (set(kc, "bootstrap.servers", o->brokers, "--bootstrap-servers", errstr,
          size) != 0 ||
      set(kc, "enable.idempotence", "true", "enable.idempotence", errstr,
          size) != 0)
    goto fail;
  rd_kafka_conf_set_log_cb(kc, on_log);
  rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
  rd_kafka_conf_set_opaque(kc, out);
  return kc;
fail:
  rd_kafka_conf_destroy(kc);
  return NULL;
}

/* The partition count of @topic; @returns 0, BAD_INPUT or RETRY. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int *cnt,
                            char *errstr, size_t size) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err;
  char last[600];
  int i, rc = CM_ERR_BAD_INPUT;

  /* all topics: asking for one would create it where auto-create is on */
  err = rd_kafka_metadata(rk, 1, NULL, &md, METADATA_TIMEOUT_MS);
  if (err) {
    with_last_error(last, sizeof(last));
    snprintf(errstr, size, "could not read the cluster's metadata: %s%s",
             rd_kafka_err2str(err), last);
    return CM_ERR_RETRY;
  }
  snprintf(errstr, size, "topic \"%s\" does not exist", topic);
  for (i = 0; i < md->topic_cnt; i++) {
    if (strcmp(md->topics[i].topic, topic) != 0)
      continue;
    if (md->topics[i].err)
      snprintf(errstr, size, "topic \"%s\": %s", topic,
               rd_kafka_err2str(md->topics[i].err));
    else
      rc = 0;
    *cnt = md->topics[i].partition_cnt;
    break;
  }
  rd_kafka_metadata_destroy(md);
  return rc;
}

/* The topics a run needs: where events go, and those whose lag counts. */
static int check_topics(rc_out_t *out, char *errstr, size_t size) {
  char topic[512];
  int e, cnt, rc;

  rc = topic_partitions(out->rk, out->o->topic_reconciliation, &cnt, errstr,
                        size);
  if (rc == 0)
    rc = topic_partitions(out->rk, out->o->topic_replay, &cnt, errstr, size);
  for (e = 0; rc == 0 && e < RC_ENTITY_CNT; e++) {
    snprintf(topic, sizeof(topic), "%s.%s.%s", out->o->topic_prefix,
             out->o->source_schema, rc_entities[e].table);
    rc = topic_partitions(out->rk, topic, &cnt, errstr, size);
  }
  return rc;
}

rc_out_t *rc_out_new(const rc_opts_t *o, int *err, char *errstr,
                     size_t errstr_size) {
  rc_out_t *out = calloc(1, sizeof(*out));
  rd_kafka_conf_t *kc;

  *err = CM_ERR_NOMEM;
  if (!out) {
    snprintf(errstr, errstr_size, "out of memory");
    return NULL;
  }
  out->o = o;
  *err = CM_ERR_CONFIG;
  kc = producer_conf(o, out, errstr, errstr_size);
  if (!kc)
    goto fail;
  out->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size);
  if (!out->rk) {
    rd_kafka_conf_destroy(kc);
    goto fail;
  }
  /* kc is owned by the producer now */
  if (o->avro) {
    cm_schemas_conf_t sc = {o->registry_url, o->registry_auth, o->registry_ca,
                            NULL, 0};

    *err = CM_ERR_NOMEM;
    out->schemas = cm_schemas_new(&sc, errstr, errstr_size);
    if (out->schemas)
      out->avro =
          cm_avro_out_new(out->schemas, o->topic_reconciliation,
                          cm_avsc("reconciliation"), errstr, errstr_size);
    if (!out->avro)
      goto fail;
  }
  *err = check_topics(out, errstr, errstr_size);
  if (*err == 0)
    return out;
fail:
  rc_out_destroy(out);
  return NULL;
}

void rc_out_destroy(rc_out_t *out) {
  if (!out)
    return;
  if (out->rk) {
    rd_kafka_flush(out->rk, DESTROY_FLUSH_MS);
    rd_kafka_destroy(out->rk);
  }
  cm_avro_out_destroy(out->avro);
  cm_schemas_destroy(out->schemas);
  free(out);
}

int rc_out_send(rc_out_t *out, const char *key, const cm_text_t *value,
                char *errstr, size_t errstr_size) {
  rd_kafka_resp_err_t err;
  const void *payload = value->p;
  size_t len = value->len;
  void *bin = NULL;
  char why[RC_ERRSTR_MAX];
  int rc;

  if (out->avro) {
    rc = cm_avro_out_encode_json(out->avro, value->p, value->len, &bin, &len,
                                 why, sizeof(why));
    if (rc != 0) {
      snprintf(errstr, errstr_size, "could not write an event as Avro: %s",
               why);
      return rc;
    }
    payload = bin;
  }
  for (;;) {
    err = rd_kafka_producev(
        out->rk, RD_KAFKA_V_TOPIC(out->o->topic_reconciliation),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)payload, len), /* copied: F_COPY */
        RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      break;
    rd_kafka_poll(out->rk, 50);
  }
  free(bin);
  if (err) {
    snprintf(errstr, errstr_size, "could not queue an event: %s",
             rd_kafka_err2str(err));
    return CM_ERR_RETRY;
  }
  out->queued++;
  rd_kafka_poll(out->rk, 0);
  return 0;
}

int rc_out_flush(rc_out_t *out, char *errstr, size_t errstr_size) {
  int64_t missing;
  int rc = 0;

  /* Every queued event ends in a report: acknowledged, or failed at the
   * latest after message.timeout.ms. */
  while (rd_kafka_outq_len(out->rk) > 0)
    rd_kafka_flush(out->rk, FLUSH_POLL_MS);
  rd_kafka_poll(out->rk, 0);
  missing = out->queued - out->acked;
  if (out->failed || missing) {
    snprintf(errstr, errstr_size,
             "%" PRId64 " events not acknowledged by the cluster%s%s", missing,
             out->first_error[0] ? ": " : "", out->first_error);
    rc = CM_ERR_RETRY;
  }
  out->queued = out->acked = out->failed = 0;
  out->first_error[0] = '\0';
  return rc;
}

/* ---- lag ----------------------------------------------------------------- */

/* The group's stored next offsets of @topic, by partition (0: none). */
static int stored_offsets(rc_ctx_t *c, const char *topic, int64_t *next,
                          int cnt, char *errstr, size_t size) {
  const char *params[2] = {c->o->group_id, topic};
  char *sql = rc_ctx_sql(c, "offsets", NULL, 0, errstr, size);
  PGresult *res;
  int64_t p, v;
  int i;

  if (!sql)
    return CM_ERR_FATAL;
  res = rc_db_query(&c->target, sql, 2, params, "read the stored offsets",
                    errstr, size);
  free(sql);
  if (!res)
    return CM_ERR_RETRY;
  memset(next, 0, (size_t)cnt * sizeof(*next));
  for (i = 0; i < PQntuples(res); i++)
    if (rc_cell_i64(res, i, 0, &p) == 0 && p >= 0 && p < cnt &&
        rc_cell_i64(res, i, 1, &v) == 0)
      next[p] = v;
  PQclear(res);
  return 0;
}

int rc_topic_lag(rc_ctx_t *c, const char *topic, int64_t *lag, char *errstr,
                 size_t errstr_size) {
  rd_kafka_t *rk = c->out->rk;
  rd_kafka_resp_err_t err;
  int64_t *next, low, high;
  int cnt = 0, p, rc;

  rc = topic_partitions(rk, topic, &cnt, errstr, errstr_size);
  if (rc != 0)
    return rc;
  next = calloc((size_t)(cnt > 0 ? cnt : 1), sizeof(*next));
  if (!next)
    return CM_ERR_NOMEM;
  rc = stored_offsets(c, topic, next, cnt, errstr, errstr_size);
  for (*lag = 0, p = 0; rc == 0 && p < cnt; p++) {
    err = rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high,
                                           WATERMARK_TIMEOUT_MS);
    if (err) {
      snprintf(errstr, errstr_size,
               "could not read the high watermark of %s [%d]: %s", topic, p,
               rd_kafka_err2str(err));
      rc = CM_ERR_RETRY;
    } else if (high > next[p]) {
      *lag += high - next[p];
    }
  }
  free(next);
  return rc;
}
