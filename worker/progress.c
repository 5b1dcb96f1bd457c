/*
 * progress.c — the progress stream (docs/observability.md, "Progress").
 *
 * NOTES
 * A thread wakes every progress.interval.ms, takes a snapshot of the
 * figures that starts a new interval (so the rate and percentiles cover
 * exactly the time since the previous event), formats it and hands it to
 * its own producer without waiting: produce copies the message, and a
 * poll of zero serves the delivery reports of earlier ones. At shutdown
 * the thread is stopped and the main thread publishes the final event,
 * after the last batch committed, and waits a bounded time for it.
 *
 * 64-bit counters and offsets are written with PRId64, never through a
 * double, so they are exact however large.
 *
 * With topic.progress.format = avro the JSON event is encoded by
 * cm_avro_out (schemas/progress.avsc, registered as
 * <topic.progress>-value on the first event). A registry that cannot
 * register the schema costs the event, not the worker: it is dropped with
 * a warning (at most one a minute; the next event supersedes it) and the
 * registration is tried again with the next one. Only the progress thread
 * waits for the registry, at most schema.registry.timeout.ms a request;
 * the thread has a schema source of its own.
 */
#include "clinicmig/cm_progress.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_avro_out.h"
#include "clinicmig/cm_err.h"
#include "clinicmig/cm_kafka.h"
#include "clinicmig/cm_log.h"
#include "clinicmig/cm_schemas.h"

#define EVENT_MAX (1u << 20)
#define FINAL_FLUSH_MS 5000
#define DROP_WARN_MS 60000

struct cm_progress_s {
  const cm_config_t *conf;
  cm_stats_t *stats;
  rd_kafka_t *rk;
  pthread_t thread;
  int started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int stop;
  cm_schemas_t *schemas; /* with topic.progress.format = avro */
  cm_avro_out_t *avro;
  int64_t dropped;   /* events not encoded since the last one that was */
  int64_t warned_ms; /* when the last drop was logged */
};

/* ---- the event -------------------------------------------------------- */

static void iso_ms(cm_text_t *t, int64_t ms) {
  time_t sec = (time_t)(ms / 1000);
  struct tm tm;

  gmtime_r(&sec, &tm);
  cm_text_printf(t, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void entities(cm_text_t *t, const cm_stats_snapshot_t *s) {
  int e, c;

  cm_text_str(t, "\"entities\":{");
  for (e = 0; e < CM_ENTITY__CNT; e++) {
    cm_text_printf(t, "%s\"%s\":{", e ? "," : "",
                   cm_entity_name((cm_entity_t)e));
    for (c = 0; c < CM_COUNT__CNT; c++)
      cm_text_printf(t, "%s\"%s\":%" PRId64, c ? "," : "",
                     cm_count_name((cm_count_t)c), s->counts[e][c]);
    cm_text_str(t, "}");
  }
  cm_text_str(t, "}");
}

/* The live partitions with topic and lag, or the replay topic's. */
static void partitions(cm_text_t *t, const cm_stats_snapshot_t *s, int replay) {
  int i, n = 0;

  cm_text_str(t, "\"partitions\":[");
  for (i = 0; i < s->n_parts; i++) {
    const cm_stats_part_t *p = &s->parts[i];
    int64_t committed = p->committed >= 0 ? p->committed : 0;
    int64_t high = p->high >= 0 ? p->high : committed;

    if (p->replay != replay)
      continue;
    cm_text_str(t, n++ ? ",{" : "{");
    if (!replay) {
      cm_text_str(t, "\"topic\":");
      cm_text_json(t, p->topic);
      cm_text_str(t, ",");
    }
    cm_text_printf(t,
                   "\"partition\":%" PRId32 ",\"committed\":%" PRId64
                   ",\"high_watermark\":%" PRId64,
                   p->partition, committed, high);
    if (!replay)
      cm_text_printf(t, ",\"lag\":%" PRId64,
                     high > committed ? high - committed : 0);
    cm_text_str(t, "}");
  }
  cm_text_str(t, "]");
}

static void batches(cm_text_t *t, const cm_stats_snapshot_t *s) {
  cm_text_printf(t,
                 "\"batches\":{\"count\":%" PRId64 ",\"events\":%" PRId64
                 ",\"size_p50\":%" PRId64 ",\"size_p99\":%" PRId64
                 ",\"latency_ms_p50\":%.1f,\"latency_ms_p99\":%.1f}",
                 s->batches, s->events, s->size_p50, s->size_p99,
                 s->latency_ms_p50, s->latency_ms_p99);
}

/* rate over the interval; eta: null when nothing moves but lag remains */
static void rate_eta(cm_text_t *t, const cm_stats_snapshot_t *s) {
  int64_t lag = s->lag_live + s->lag_replay;
  double rate =
      s->interval_s > 0 ? (double)s->interval_consumed / s->interval_s : 0.0;

  cm_text_printf(t, "\"rate_per_s\":%.1f,\"eta_s\":", rate);
  if (lag == 0)
    cm_text_str(t, "0.0");
  else if (rate <= 0)
    cm_text_str(t, "null");
  else
    cm_text_printf(t, "%.1f", (double)lag / rate);
}

/* "worker:<id>", as one JSON string */
static void source(cm_text_t *t, const char *worker) {
  cm_text_t s;

  cm_text_init(&s, 4096);
  cm_text_str(&s, "worker:");
  cm_text_str(&s, worker);
  if (s.failed)
    t->failed = 1;
  else
    cm_text_json(t, s.p);
  cm_text_free(&s);
}

int cm_progress_format(const cm_stats_snapshot_t *snap, const char *worker,
                       const char *group, int final, cm_text_t *out) {
  cm_text_str(out, "{\"v\":1,\"type\":\"progress\",\"ts\":");
  iso_ms(out, snap->now_ms);
  cm_text_str(out, ",\"source\":");
  source(out, worker);
  cm_text_str(out, ",\"worker\":");
  cm_text_json(out, worker);
  cm_text_str(out, ",\"group\":");
  cm_text_json(out, group);
  cm_text_printf(out, ",\"final\":%s,\"started\":", final ? "true" : "false");
  iso_ms(out, snap->started_ms);
  cm_text_printf(out, ",\"interval_s\":%.3f,", snap->interval_s);
  entities(out, snap);
  cm_text_str(out, ",");
  partitions(out, snap, 0);
  cm_text_printf(out, ",\"lag\":{\"live\":%" PRId64 ",\"replay\":%" PRId64 "},",
                 snap->lag_live, snap->lag_replay);
  batches(out, snap);
  cm_text_printf(out, ",\"retries\":%" PRId64 ",", snap->retries);
  rate_eta(out, snap);
  cm_text_str(out, ",\"replay\":{");
  partitions(out, snap, 1);
  cm_text_str(out, "}}");
  return out->failed ? CM_ERR_NOMEM : 0;
}

/* ---- publishing ------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err)
    cm_warn("progress event not delivered: %s", rd_kafka_err2str(m->err));
}

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The JSON event in *out as Avro; on failure it is dropped with a warning
 * (at most one a minute). @returns 0 if *out now holds the Avro bytes. */
static int to_avro(cm_progress_t *p, char **out, size_t *len) {
  char why[512];
  void *bin = NULL;
  size_t bin_len = 0;
  int64_t now;
  int rc;

  why[0] = '\0';
  rc = cm_avro_out_encode_json(p->avro, *out, *len, &bin, &bin_len, why,
                               sizeof(why));
  free(*out);
  *out = NULL;
  if (rc == CM_OK) {
    if (p->dropped)
      cm_info("progress events published again, after %" PRId64 " dropped",
              p->dropped);
    p->dropped = 0;
    *out = bin;
    *len = bin_len;
    return 0;
  }
  now = mono_ms();
  if (p->dropped++ == 0 || now - p->warned_ms >= DROP_WARN_MS) {
    cm_warn("progress event dropped (%" PRId64 " since the last one "
            "published): %s",
            p->dropped, why);
    p->warned_ms = now;
  }
  return -1;
}

/* Takes a snapshot that starts a new interval and queues its event. */
static void publish(cm_progress_t *p, int final) {
  cm_stats_snapshot_t snap;
  rd_kafka_resp_err_t err;
  cm_text_t t;
  char *json;
  size_t len;

  if (cm_stats_snapshot(p->stats, 1, &snap) != 0) {
    cm_warn("progress event not published: out of memory");
    return;
  }
  cm_text_init(&t, EVENT_MAX);
  cm_progress_format(&snap, p->conf->worker_id, p->conf->group_id, final, &t);
  cm_stats_snapshot_free(&snap);
  json = cm_text_take(&t, &len);
  if (!json) {
    cm_warn("progress event not published: out of memory");
    return;
  }
  if (p->avro && to_avro(p, &json, &len) != 0)
    return;
  err = rd_kafka_producev(
      p->rk, RD_KAFKA_V_TOPIC(p->conf->topic_progress),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
      RD_KAFKA_V_KEY(p->conf->worker_id, strlen(p->conf->worker_id)),
      RD_KAFKA_V_VALUE(json, len), RD_KAFKA_V_END);
  if (err) {
    free(json); /* not taken over on failure */
    cm_warn("progress event not published: %s", rd_kafka_err2str(err));
  }
  rd_kafka_poll(p->rk, 0);
}

static struct timespec deadline_after(int ms) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

static int before(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec ||
         (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *run(void *arg) {
  cm_progress_t *p = arg;
  struct timespec next = deadline_after(p->conf->progress_interval_ms), now;

  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    pthread_cond_timedwait(&p->wake, &p->lock, &next);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (p->stop || before(&now, &next))
      continue;
    pthread_mutex_unlock(&p->lock);
    publish(p, 0);
    next = deadline_after(p->conf->progress_interval_ms);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

cm_progress_t *cm_progress_new(const cm_config_t *conf, cm_stats_t *stats,
                               char *errstr, size_t errstr_size) {
  cm_progress_t *p = calloc(1, sizeof(*p));
  rd_kafka_conf_t *kc = cm_kafka_conf(conf, 0, errstr, errstr_size);
  pthread_condattr_t ca;

  if (!p)
    snprintf(errstr, errstr_size, "out of memory");
  if (!p || !kc)
    goto fail;
  p->conf = conf;
  p->stats = stats;
  if (conf->progress_format == CM_FORMAT_AVRO) {
    cm_schemas_conf_t sc = {
        conf->schema_registry_url, conf->schema_registry_auth,
        conf->schema_registry_ca, NULL, conf->schema_registry_timeout_ms};

    p->schemas = cm_schemas_new(&sc, errstr, errstr_size);
    if (p->schemas)
      p->avro = cm_avro_out_new(p->schemas, conf->topic_progress,
                                cm_avsc("progress"), errstr, errstr_size);
    if (!p->avro)
      goto fail;
  }
  /* an event older than a minute says nothing the next one will not */
  if (rd_kafka_conf_set(kc, "message.timeout.ms", "60000", errstr,
                        errstr_size) != RD_KAFKA_CONF_OK)
    goto fail;
  rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size);
  if (!p->rk)
    goto fail;
  kc = NULL; /* owned by the producer now */
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->wake, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->lock, NULL);
  return p;
fail:
  if (kc)
    rd_kafka_conf_destroy(kc);
  if (p) {
    cm_avro_out_destroy(p->avro);
    cm_schemas_destroy(p->schemas);
  }
  free(p);
  return NULL;
}

int cm_progress_start(cm_progress_t *p) {
  if (pthread_create(&p->thread, NULL, run, p) != 0)
    return CM_ERR_NOMEM;
  p->started = 1;
  return 0;
}

static void stop_thread(cm_progress_t *p) {
  if (!p->started)
    return;
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->lock);
  pthread_join(p->thread, NULL);
  p->started = 0;
}

void cm_progress_finish(cm_progress_t *p) {
  stop_thread(p);
  publish(p, 1);
  if (rd_kafka_flush(p->rk, FINAL_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
    cm_warn("the final progress event was not acknowledged in %d ms",
            FINAL_FLUSH_MS);
}

void cm_progress_destroy(cm_progress_t *p) {
  if (!p)
    return;
  stop_thread(p);
  rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(p->rk, 0);
  rd_kafka_destroy(p->rk);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->lock);
  cm_avro_out_destroy(p->avro);
  cm_schemas_destroy(p->schemas);
  free(p);
}
