/*
 * dlq.c — the dead-letter producer.
 */
#include "clinicmig/cm_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_kafka.h"
#include "clinicmig/cm_log.h"
#include "clinicmig/cm_value.h"

struct cm_dlq_s {
  rd_kafka_t *rk;
  char *topic;
  char *connector;
  char *task;
  int failed; /* deliveries failed since the last flush */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  cm_dlq_t *dlq = opaque;

  (void)rk;
  if (m->err) {
    dlq->failed++;
    cm_warn("dead-letter delivery failed: %s", rd_kafka_err2str(m->err));
  }
}

cm_dlq_t *cm_dlq_new(const cm_config_t *conf, char *errstr,
                     size_t errstr_size) {
  cm_dlq_t *dlq = calloc(1, sizeof(*dlq));
  rd_kafka_conf_t *kc = cm_kafka_conf(conf, 0, errstr, errstr_size);

  if (!dlq || !kc)
    goto fail;
  if (rd_kafka_conf_set(kc, "acks", "all", errstr, errstr_size) ||
      rd_kafka_conf_set(kc, "enable.idempotence", "true", errstr, errstr_size))
    goto fail;
  rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
  rd_kafka_conf_set_opaque(kc, dlq);
  dlq->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size);
  if (!dlq->rk)
    goto fail;
  kc = NULL; /* owned by the producer now */
  dlq->topic = strdup(conf->topic_dlq);
  dlq->connector = strdup(conf->group_id);
  dlq->task = strdup(conf->worker_id);
  if (!dlq->topic || !dlq->connector || !dlq->task)
    goto fail;
  return dlq;
fail:
  if (kc)
    rd_kafka_conf_destroy(kc);
  cm_dlq_destroy(dlq);
  return NULL;
}

void cm_dlq_destroy(cm_dlq_t *dlq) {
  if (!dlq)
    return;
  if (dlq->rk) {
    rd_kafka_flush(dlq->rk, 10000);
    rd_kafka_destroy(dlq->rk);
  }
  free(dlq->topic);
  free(dlq->connector);
  free(dlq->task);
  free(dlq);
}

static void add_header(rd_kafka_headers_t *h, const char *name,
                       const char *value) {
  rd_kafka_header_add(h, name, -1, value, -1);
}

static rd_kafka_headers_t *
error_headers(const cm_dlq_t *dlq, const cm_item_t *it, const char *stage) {
  rd_kafka_headers_t *orig = NULL, *h;
  char part[16], off[24], now[CM_VALUE_TEXT_MAX];
  struct timeval tv;

  if (rd_kafka_message_headers(it->msg, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
    h = rd_kafka_headers_copy(orig);
  else
    h = rd_kafka_headers_new(12);
  gettimeofday(&tv, NULL);
  cm_timestamp_format((int64_t)tv.tv_sec * 1000000 + tv.tv_usec, now,
                      sizeof(now));
  snprintf(part, sizeof(part), "%" PRId32, it->partition);
  snprintf(off, sizeof(off), "%" PRId64, it->offset);
  add_header(h, "__connect.errors.topic", it->topic);
  add_header(h, "__connect.errors.partition", part);
  add_header(h, "__connect.errors.offset", off);
  add_header(h, "__connect.errors.connector.name", dlq->connector);
  add_header(h, "__connect.errors.task.id", dlq->task);
  add_header(h, "__connect.errors.stage", stage);
  add_header(h, "__connect.errors.class.name", "clinicmig-worker");
  add_header(h, "__connect.errors.exception.class.name",
             strcmp(stage, "VALUE_CONVERTER") == 0 ? "clinicmig.DecodeError"
                                                   : "clinicmig.ApplyError");
  add_header(h, "__connect.errors.exception.message", it->reason);
  add_header(h, "clinicmig.error.reason", it->reason);
  add_header(h, "clinicmig.error.time", now);
  return h;
}

int cm_dlq_send(cm_dlq_t *dlq, const cm_item_t *it, const char *stage) {
  rd_kafka_headers_t *h = error_headers(dlq, it, stage);
  rd_kafka_resp_err_t err;

  err = rd_kafka_producev(dlq->rk, RD_KAFKA_V_TOPIC(dlq->topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(it->msg->key, it->msg->key_len),
                          RD_KAFKA_V_VALUE(it->msg->payload, it->msg->len),
                          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
  if (err) {
    rd_kafka_headers_destroy(h); /* not taken over on failure */
    cm_warn("could not queue %s [%" PRId32 "] offset %" PRId64
            " for the dead-letter topic: %s",
            it->topic, it->partition, it->offset, rd_kafka_err2str(err));
    dlq->failed++;
    return CM_ERR_RETRY;
  }
  cm_warn("dead-lettered %s [%" PRId32 "] offset %" PRId64 ": %s", it->topic,
          it->partition, it->offset, it->reason);
  return 0;
}

int cm_dlq_flush(cm_dlq_t *dlq, int timeout_ms, char *errstr,
                 size_t errstr_size) {
  rd_kafka_resp_err_t err = rd_kafka_flush(dlq->rk, timeout_ms);
  int failed = dlq->failed;

  dlq->failed = 0;
  if (err || failed) {
    snprintf(errstr, errstr_size,
             "dead-letter topic did not acknowledge %d message(s)%s", failed,
             err ? " in time" : "");
    return CM_ERR_RETRY;
  }
  return 0;
}
