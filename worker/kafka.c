/*
 * kafka.c — the configuration every librdkafka client of the worker
 * starts from.
 *
 * NOTES
 * librdkafka's own log lines go through cm_log, so a worker writes one
 * format. Its messages name brokers, topics and errors, never payloads.
 */
#include "clinicmig/cm_kafka.h"

#include <string.h>

#include "clinicmig/cm_log.h"

/* Properties only a consumer reads: a producer given them logs a warning
 * for each, which says nothing useful about a shared configuration. */
static const char *const consumer_only[] = {
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.instance.id",
    "fetch.wait.max.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.message.max.bytes",
    "isolation.level",
    "check.crcs",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "coordinator.query.interval.ms",
    "auto.commit.interval.ms",
    "enable.partition.eof",
};

static int is_consumer_only(const char *key) {
  size_t i;

  for (i = 0; i < sizeof(consumer_only) / sizeof(consumer_only[0]); i++)
    if (strcmp(consumer_only[i], key) == 0)
      return 1;
  return 0;
}

/* syslog levels (0 emerg .. 7 debug) to ours */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
  cm_log_level_t l = level <= 3   ? CM_LOG_ERROR
                     : level == 4 ? CM_LOG_WARN
                     : level <= 6 ? CM_LOG_INFO
                                  : CM_LOG_DEBUG;

  cm_log(l, "kafka %s %s: %s", rd_kafka_name(rk), fac, buf);
}

/*
 * The consumer's prefetch, bounded (docs/performance.md §5): librdkafka
 * queues up to 64 MiB and 100 000 messages ahead of the application by
 * default, which a backlog fills and the worker's memory then shows. A
 * batch is at most batch.max.events messages, so a few batches ahead keep
 * the fetcher busy. One fetch response may carry up to 1 MiB of every
 * partition it asks for, past the queue's bound, so the response is
 * bounded too (fetch.max.bytes, 50 MiB by default): otherwise the peak
 * grows with the number of partitions. -X kafka.* still overrides these.
 */
static const char *const consumer_defaults[][2] = {
    {"queued.max.messages.kbytes", "8192"},
    {"queued.min.messages", "10000"},
    {"fetch.max.bytes", "2097152"},
};

rd_kafka_conf_t *cm_kafka_conf(const cm_config_t *conf, int consumer,
                               char *errstr, size_t errstr_size) {
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  size_t d;
  int i;

  for (d = 0;
       consumer && d < sizeof(consumer_defaults) / sizeof(consumer_defaults[0]);
       d++)
    if (rd_kafka_conf_set(kc, consumer_defaults[d][0], consumer_defaults[d][1],
                          errstr, errstr_size) != RD_KAFKA_CONF_OK)
      goto fail;
  for (i = 0; i < conf->kafka_cnt; i++) {
    if (!consumer && is_consumer_only(conf->kafka[i].key))
      continue;
    if (rd_kafka_conf_set(kc, conf->kafka[i].key, conf->kafka[i].value, errstr,
                          errstr_size) != RD_KAFKA_CONF_OK)
      goto fail;
  }
  if (rd_kafka_conf_set(kc, "client.id", conf->worker_id, errstr,
                        errstr_size) != RD_KAFKA_CONF_OK)
    goto fail;
  rd_kafka_conf_set_log_cb(kc, on_log);
  return kc;
fail:
  rd_kafka_conf_destroy(kc);
  return NULL;
}
