/*
 * kafka.c — librdkafka configuration, logs and metadata for
 * clinicmig-replay's clients.
 *
 * NOTES
 * Every client starts from the same configuration: the brokers, then each
 * -X kafka.PROP=VALUE in order (as the worker passes its kafka.* keys
 * through, docs/operations.md §2), so the tool runs against a secured
 * cluster as the workers do. The modes add what they need on top.
 *
 * librdkafka logs from its own threads. Its lines would break the promise
 * of one line per failure, so they are not printed: the last error is
 * kept, under a mutex, and the caller puts it into its one line when the
 * cluster cannot be reached. With -X kafka.debug=... every line is
 * printed, for the operator who asked for them. librdkafka's messages
 * name brokers and topics, never a payload.
 */
#include "replay.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clinicmig/cm_err.h"

#define METADATA_TIMEOUT_MS 15000

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[512];
static int print_logs;

/* syslog levels: 0 emerg .. 3 error, 4 warning, .. 7 debug */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
  (void)rk;
  if (print_logs) {
    fprintf(stderr, RP_NAME ": kafka %s: %s\n", fac, buf);
    return;
  }
  if (level > 3 && strcmp(fac, "FAIL") != 0)
    return;
  pthread_mutex_lock(&log_lock);
  snprintf(last_error, sizeof(last_error), "%s", buf);
  pthread_mutex_unlock(&log_lock);
}

void rp_kafka_last_error(char *buf, size_t size) {
  pthread_mutex_lock(&log_lock);
  snprintf(buf, size, "%s", last_error);
  pthread_mutex_unlock(&log_lock);
}

static int set(rd_kafka_conf_t *kc, const char *key, const char *value,
               const char *shown, char *errstr, size_t errstr_size) {
  char why[512];

  if (rd_kafka_conf_set(kc, key, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
    return 0;
  snprintf(errstr, errstr_size, "%s: %s", shown, why);
  return -1;
}

rd_kafka_conf_t *rp_kafka_conf(const rp_opts_t *o, char *errstr,
                               size_t errstr_size) {
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  char shown[300];
  int i;

  if (set(kc, "client.id", RP_NAME, "client.id", errstr, errstr_size) != 0)
    goto fail;
  for (i = 0; i < o->prop_cnt; i++) {
    snprintf(shown, sizeof(shown), "-X kafka.%s", o->props[i].key);
    if (set(kc, o->props[i].key, o->props[i].value, shown, errstr,
            errstr_size) != 0)
      goto fail;
    if (strcmp(o->props[i].key, "debug") == 0)
      print_logs = 1;
  }
  if (set(kc, "bootstrap.servers", o->brokers, "--bootstrap-servers", errstr,
          errstr_size) != 0)
    goto fail;
  rd_kafka_conf_set_log_cb(kc, on_log);
  return kc;
fail:
  rd_kafka_conf_destroy(kc);
  return NULL;
}

/* " (last error: ...)" when librdkafka logged one, else "". */
static void with_last_error(char *buf, size_t size) {
  char last[512];

  rp_kafka_last_error(last, sizeof(last));
  if (last[0])
    snprintf(buf, size, " (last error: %s)", last);
  else
    buf[0] = '\0';
}

int rp_kafka_topic(rd_kafka_t *rk, const char *topic, int *partitions,
                   char *errstr, size_t errstr_size) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err;
  char last[600];
  int i, rc = CM_ERR_BAD_INPUT;

  err = rd_kafka_metadata(rk, 1, NULL, &md, METADATA_TIMEOUT_MS);
  if (err) {
    with_last_error(last, sizeof(last));
    snprintf(errstr, errstr_size, "could not read the cluster's metadata: %s%s",
             rd_kafka_err2str(err), last);
    return CM_ERR_RETRY;
  }
  snprintf(errstr, errstr_size, "topic \"%s\" does not exist", topic);
  for (i = 0; i < md->topic_cnt; i++) {
    if (strcmp(md->topics[i].topic, topic) != 0)
      continue;
    if (md->topics[i].err) {
      snprintf(errstr, errstr_size, "topic \"%s\": %s", topic,
               rd_kafka_err2str(md->topics[i].err));
      break;
    }
    if (partitions)
      *partitions = md->topics[i].partition_cnt;
    rc = 0;
    break;
  }
  rd_kafka_metadata_destroy(md);
  return rc;
}

double rp_now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t rp_wall_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
