/*
 * out.c — the producer every mode publishes through.
 *
 * NOTES
 * One idempotent producer (enable.idempotence=true, hence acks=all and
 * ordered retries) with the partitioner of Java's clients
 * (murmur2_random), so that a key lands in the partition Kafka Connect
 * would give it: the replay of a row shares a partition with the row's
 * own events in a replay topic of the same partition count. The
 * format is in tools/replay/README.md.
 *
 * Every message gets a delivery report; a run succeeds only when each
 * one says acknowledged. The first failure stops the mode early (sending
 * more cannot make the run good) and its reason ends up in the one line.
 *
 * --rate is a token bucket of one second's worth of tokens, refilled
 * continuously; a message that takes a token waits for one while the
 * producer's reports are served.
 */
#include "replay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"

#define QUEUE_FULL_WAIT_MS 50
#define FINISH_POLL_MS 500
#define DESTROY_FLUSH_MS 10000

struct rp_out_s {
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt;
  rp_out_stats_t st;
  char first_error[256];
  double rate, tokens, refilled; /* token bucket; rate 0: none */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  rp_out_t *out = opaque;

  (void)rk;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    out->st.acked++;
    return;
  }
  if (out->st.failed++ == 0)
    snprintf(out->first_error, sizeof(out->first_error), "%s",
             rd_kafka_err2str(m->err));
}

static rd_kafka_conf_t *producer_conf(const rp_opts_t *o, rp_out_t *out,
                                      char *errstr, size_t errstr_size) {
  rd_kafka_conf_t *kc = rp_kafka_conf(o, errstr, errstr_size);

  if (!kc)
    return NULL;
  if (rd_kafka_conf_set(kc, "enable.idempotence", "true", errstr,
                        errstr_size) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(kc, "partitioner", "murmur2_random", errstr,
                        errstr_size) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(kc);
    return NULL;
  }
  rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
  rd_kafka_conf_set_opaque(kc, out);
  return kc;
}

rp_out_t *rp_out_new(const rp_opts_t *o, int *err, char *errstr,
                     size_t errstr_size) {
  rp_out_t *out = calloc(1, sizeof(*out));
  rd_kafka_conf_t *kc;

  *err = CM_ERR_NOMEM;
  if (!out) {
    snprintf(errstr, errstr_size, "out of memory");
    return NULL;
  }
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
  *err = rp_kafka_topic(out->rk, o->topic_replay, NULL, errstr, errstr_size);
  if (*err != 0)
    goto fail;
  out->rkt = rd_kafka_topic_new(out->rk, o->topic_replay, NULL);
  if (!out->rkt) {
    *err = CM_ERR_NOMEM;
    snprintf(errstr, errstr_size, "could not create a topic handle: %s",
             rd_kafka_err2str(rd_kafka_last_error()));
    goto fail;
  }
  out->rate = o->rate;
  out->tokens = 1;
  out->refilled = rp_now_s();
  return out;
fail:
  rp_out_destroy(out);
  return NULL;
}

void rp_out_destroy(rp_out_t *out) {
  if (!out)
    return;
  if (out->rkt)
    rd_kafka_topic_destroy(out->rkt);
  if (out->rk) {
    rd_kafka_flush(out->rk, DESTROY_FLUSH_MS);
    rd_kafka_destroy(out->rk);
  }
  free(out);
}

void rp_out_poll(rp_out_t *out) {
  rd_kafka_poll(out->rk, 0);
}

/* Waits for a token of the rate limit, serving delivery reports. */
static void take_token(rp_out_t *out) {
  double now, cap = out->rate >= 1 ? out->rate : 1;
  int wait_ms;

  for (;;) {
    now = rp_now_s();
    out->tokens += (now - out->refilled) * out->rate;
    out->refilled = now;
    if (out->tokens > cap)
      out->tokens = cap;
    if (out->tokens >= 1 || rp_stop) {
      out->tokens -= 1;
      return;
    }
    wait_ms = (int)((1 - out->tokens) / out->rate * 1000) + 1;
    rd_kafka_poll(out->rk, wait_ms > 100 ? 100 : wait_ms);
  }
}

static int send_failed(const rp_out_t *out, char *errstr, size_t size) {
  snprintf(errstr, size,
           "%" PRId64 " messages not acknowledged by the cluster: %s",
           out->st.failed, out->first_error);
  return CM_ERR_RETRY;
}

static rd_kafka_headers_t *origin_headers(const char *origin,
                                          const char *position) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(2);

  rd_kafka_header_add(h, "clinicmig.origin", -1, origin, -1);
  if (position)
    rd_kafka_header_add(h, "clinicmig.origin.position", -1, position, -1);
  return h;
}

int rp_out_send(rp_out_t *out, const void *key, size_t key_len,
                const void *value, size_t value_len, const char *origin,
                const char *position, int counted, char *errstr,
                size_t errstr_size) {
  rd_kafka_headers_t *h;
  rd_kafka_resp_err_t err;

  if (out->st.failed)
    return send_failed(out, errstr, errstr_size);
  if (counted && out->rate > 0) {
    take_token(out);
    out->st.counted++;
  }
  for (;;) {
    h = origin_headers(origin, position);
    err = rd_kafka_producev(
        out->rk, RD_KAFKA_V_RKT(out->rkt),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len), /* copied: F_COPY */
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
      break;
    rd_kafka_headers_destroy(h); /* not taken over on failure */
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      snprintf(errstr, errstr_size, "could not queue a message: %s",
               rd_kafka_err2str(err));
      return CM_ERR_RETRY;
    }
    rd_kafka_poll(out->rk, QUEUE_FULL_WAIT_MS);
  }
  out->st.queued++;
  rd_kafka_poll(out->rk, 0);
  return 0;
}

int rp_out_finish(rp_out_t *out, char *errstr, size_t errstr_size) {
  int64_t missing;

  /* Every queued message ends in a report: acknowledged, or failed at the
   * latest after message.timeout.ms. */
  while (rd_kafka_outq_len(out->rk) > 0)
    rd_kafka_flush(out->rk, FINISH_POLL_MS);
  rd_kafka_poll(out->rk, 0);
  missing = out->st.queued - out->st.acked;
  if (out->st.failed || missing) {
    snprintf(errstr, errstr_size,
             "%" PRId64 " messages not acknowledged by the cluster%s%s",
             missing, out->first_error[0] ? ": " : "", out->first_error);
    return CM_ERR_RETRY;
  }
  return 0;
}

void rp_out_stats(const rp_out_t *out, rp_out_stats_t *st) {
  *st = out->st;
}

rd_kafka_t *rp_out_handle(rp_out_t *out) {
  return out->rk;
}
