/*
 * consumer.c — the worker's loop: consume, decode, mirror, derive, commit.
 *
 * NOTES
 * Effectively-once rests on one rule: a batch's effects and the offsets
 * that cover it are committed in one PostgreSQL transaction, and on
 * partition assignment the worker starts from the offsets stored there.
 * Kafka commits are made after the database commit, for lag tools only.
 *
 * A batch runs top-down: decode every message (once), then in one
 * transaction land each table's events in the mirror, derive the new
 * schema for what they touched, queue the dead letters and wait for their
 * acknowledgement, store offsets and counters, commit. A retryable failure
 * (connection, serialization, deadlock, dead-letter delivery) rolls back
 * and runs the same batch again after a reconnect with backoff. A refused
 * value isolates its event: each event is tried alone in a rolled-back
 * transaction, the one the database refuses is dead-lettered with the
 * reason, and the batch runs again without it.
 *
 * The replay topic's partitions are read through a queue of their own, so
 * that a backfill of millions of rows queued ahead by the fetcher never
 * stands between a live event and its batch: while both have messages, a
 * batch takes them one for one; either fills the batch when the other is
 * idle (docs/design.md §3).
 *
 * The stored offset of a partition below the log start means events were
 * deleted before they were read. The worker records that gap in the
 * database (and logs it) before it moves on to the log start; with
 * auto.offset.reset=error librdkafka never skips silently either.
 */
#include "clinicmig/cm_worker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_batch.h"
#include "clinicmig/cm_db.h"
#include "clinicmig/cm_derive.h"
#include "clinicmig/cm_dlq.h"
#include "clinicmig/cm_err.h"
#include "clinicmig/cm_http.h"
#include "clinicmig/cm_kafka.h"
#include "clinicmig/cm_log.h"
#include "clinicmig/cm_mirror.h"
#include "clinicmig/cm_progress.h"
#include "clinicmig/cm_repair.h"
#include "clinicmig/cm_schemas.h"
#include "clinicmig/cm_stats.h"
#include "cm_sql.h"

#define N_TOPICS 4

/* The statements of worker/sql/batch_*.sql, in the order of batch_sql[]. */
enum { Q_OFFSETS, Q_STATS, Q_STORED, Q_GAP, N_Q };

static const char *const batch_sql[N_Q] = {
    cm_sql_batch_offsets, cm_sql_batch_stats, cm_sql_batch_stored,
    cm_sql_batch_gap};
#define DLQ_FLUSH_MS 30000
#define STATS_EVERY_MS 5000
#define DB_PING_MS 1000 /* an idle worker's check of the database */

static const cm_table_t apply_order[] = {CM_TABLE_USER, CM_TABLE_PATIENT,
                                         CM_TABLE_APPOINTMENT};
#define N_APPLY (int)(sizeof(apply_order) / sizeof(apply_order[0]))

typedef struct totals_s {
  int64_t consumed, applied, stale, skipped, dead;
} totals_t;

struct cm_worker_s {
  const cm_config_t *conf;
  volatile sig_atomic_t *running;
  rd_kafka_t *rk;
  rd_kafka_queue_t *replayq; /* the replay topic's partitions forward here */
  cm_db_t *db;
  cm_mirror_t *mirror;
  cm_derive_t *derive;
  cm_dlq_t *dlq;
  cm_schemas_t *schemas; /* Avro writer schemas, or NULL */
  cm_batch_t batch;
  char *topics[N_TOPICS];
  char *sql[N_Q]; /* batch_sql[], schema names in */
  totals_t totals;
  int64_t last_stats_ms;
  cm_stats_t *stats;       /* read by the publisher and the HTTP server */
  cm_progress_t *progress; /* topic.progress */
  cm_http_t *http;         /* NULL without http.listen */
  int64_t next_ping_ms;    /* when an idle worker checks the database */
  int ping_backoff_ms;
  int fatal;
  /* appointments after the people they name (order_tables()) */
  int appts_paused;       /* this worker's Appointment partitions are paused */
  int appts_fresh;        /* not paused yet under this assignment */
  int64_t appts_pause_ms; /* when they were paused */
  int64_t appts_read_ms;  /* first appointment read since they resumed */
};

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* ---- batch ------------------------------------------------------------ */

static void batch_release(cm_batch_t *b) {
  int i;

  for (i = 0; i < b->cnt; i++) {
    if (b->items[i].decoded)
      cm_event_clear(&b->items[i].ev);
    rd_kafka_message_destroy(b->items[i].msg);
  }
  b->cnt = 0;
}

static int batch_add(cm_batch_t *b, rd_kafka_message_t *msg) {
  cm_item_t *it;

  if (b->cnt == b->cap) {
    int cap = b->cap ? b->cap * 2 : 256;

    it = realloc(b->items, sizeof(*it) * (size_t)cap);
    if (!it)
      return CM_ERR_NOMEM;
    b->items = it;
    b->cap = cap;
  }
  it = &b->items[b->cnt++];
  memset(it, 0, sizeof(*it));
  it->msg = msg;
  it->topic = rd_kafka_topic_name(msg->rkt);
  it->partition = msg->partition;
  it->offset = msg->offset;
  return 0;
}

/* Decodes one item and sorts it: to apply, to skip, or to dead-letter.
 * @returns CM_ERR_RETRY, with the reason in the item, when the schema
 * registry cannot answer for now: the item stays undecoded. */
static int decode_item(cm_worker_t *w, cm_item_t *it) {
  cm_decode_opts_t o = {w->schemas, w->conf->time_precision_mode,
                        &w->conf->legacy_column_types};
  const char *why = NULL;
  int r;

  r = cm_event_decode_opts(it->topic, it->msg->key, it->msg->key_len,
                           it->msg->payload, it->msg->len, &o, &it->ev,
                           it->reason, sizeof(it->reason));
  if (r == CM_ERR_RETRY)
    return r;
  if (r == CM_ERR_NOMEM) {
    snprintf(it->reason, sizeof(it->reason), "out of memory decoding");
    it->outcome = CM_OUT_DEAD_LETTER;
    return 0;
  }
  if (r) {
    it->outcome = CM_OUT_DEAD_LETTER;
    return 0;
  }
  it->decoded = 1;
  switch (cm_event_disposition(&it->ev, &why)) {
  case CM_DISP_APPLY: it->outcome = CM_OUT_PENDING; break;
  case CM_DISP_SKIP:
    it->outcome = CM_OUT_SKIPPED;
    snprintf(it->reason, sizeof(it->reason), "%s", why);
    break;
  case CM_DISP_DEAD_LETTER:
    it->outcome = CM_OUT_DEAD_LETTER;
    snprintf(it->reason, sizeof(it->reason), "%s", why);
    break;
  }
  return 0;
}

/*
 * Decodes the items of the batch not decoded yet. A schema registry that
 * is down or slow is not the events' fault: nothing is dead-lettered for
 * it, the batch waits with backoff and decodes again (docs/design.md
 * §1.2). @returns 0, or CM_ERR_RETRY if the worker was told to stop.
 */
static int decode_batch(cm_worker_t *w) {
  int i, r, pause = 100, waiting;

  for (;;) {
    waiting = -1;
    for (i = 0; i < w->batch.cnt; i++) {
      cm_item_t *it = &w->batch.items[i];

      if (it->decoded || it->outcome != CM_OUT_PENDING)
        continue;
      r = decode_item(w, it);
      if (r == CM_ERR_RETRY && waiting < 0)
        waiting = i;
    }
    if (waiting < 0)
      return 0;
    if (!*w->running)
      return CM_ERR_RETRY;
    cm_warn("batch of %d events waits for the schema registry (%s), "
            "retrying in %d ms",
            w->batch.cnt, w->batch.items[waiting].reason, pause);
    sleep_ms(pause);
    pause = pause * 2 > w->conf->db_retry_max_ms ? w->conf->db_retry_max_ms
                                                 : pause * 2;
  }
}

/* The table an item counts under: its event's, else its topic's. */
static cm_table_t item_table(const cm_item_t *it) {
  const char *dot;

  if (it->decoded && it->ev.table != CM_TABLE_NONE)
    return it->ev.table;
  dot = strrchr(it->topic, '.');
  return dot ? cm_table_from_name(dot + 1) : CM_TABLE_NONE;
}

/* partition_stats' entity: the legacy table's name, or "unknown" */
static const char *item_entity(const cm_item_t *it) {
  cm_table_t t = item_table(it);

  return t != CM_TABLE_NONE ? cm_table_name(t) : "unknown";
}

/* ---- the transaction -------------------------------------------------- */

/* Per (topic, partition, entity) counts, and per (topic, partition) the
 * next offset, as the JSON arrays the statements read. */
static cJSON *find_row(cJSON *arr, const cm_item_t *it, const char *entity) {
  cJSON *row;

  cJSON_ArrayForEach(row, arr) {
    if (cJSON_GetObjectItem(row, "partition")->valueint == it->partition &&
        strcmp(cJSON_GetObjectItem(row, "topic")->valuestring, it->topic) ==
            0 &&
        (!entity ||
         strcmp(cJSON_GetObjectItem(row, "entity")->valuestring, entity) == 0))
      return row;
  }
  row = cJSON_CreateObject();
  cJSON_AddStringToObject(row, "topic", it->topic);
  cJSON_AddNumberToObject(row, "partition", it->partition);
  if (entity) {
    static const char *const names[] = {"consumed", "applied", "stale",
                                        "skipped", "dead_lettered"};
    size_t i;

    cJSON_AddStringToObject(row, "entity", entity);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
      cJSON_AddNumberToObject(row, names[i], 0);
  } else {
    cJSON_AddNumberToObject(row, "next_offset", 0);
  }
  cJSON_AddItemToArray(arr, row);
  return row;
}

static void bump(cJSON *row, const char *name) {
  cJSON *n = cJSON_GetObjectItem(row, name);

  cJSON_SetNumberValue(n, n->valuedouble + 1);
}

static const char *outcome_counter(cm_outcome_t o) {
  switch (o) {
  case CM_OUT_APPLIED: return "applied";
  case CM_OUT_STALE: return "stale";
  case CM_OUT_SKIPPED: return "skipped";
  case CM_OUT_DEAD_LETTER: return "dead_lettered";
  default: return NULL;
  }
}

static int store_progress(cm_worker_t *w, char *errstr, size_t errstr_size) {
  cJSON *offs = cJSON_CreateArray(), *stats = cJSON_CreateArray(), *row;
  const char *params[2] = {w->conf->group_id, NULL};
  char *jo = NULL, *js = NULL;
  int i, r = CM_ERR_NOMEM;

  for (i = 0; offs && stats && i < w->batch.cnt; i++) {
    const cm_item_t *it = &w->batch.items[i];
    const char *counter = outcome_counter(it->outcome);

    row = find_row(offs, it, NULL);
    if (it->offset + 1 > cJSON_GetObjectItem(row, "next_offset")->valuedouble)
      cJSON_SetNumberValue(cJSON_GetObjectItem(row, "next_offset"),
                           (double)(it->offset + 1));
    row = find_row(stats, it, item_entity(it));
    bump(row, "consumed");
    if (counter)
      bump(row, counter);
  }
  if (offs && stats) {
    jo = cJSON_PrintUnformatted(offs);
    js = cJSON_PrintUnformatted(stats);
  }
  if (jo && js) {
    params[1] = jo;
    r = cm_db_exec(w->db, w->sql[Q_OFFSETS], 2, params, NULL, errstr,
                   errstr_size);
    params[1] = js;
    if (!r)
      r = cm_db_exec(w->db, w->sql[Q_STATS], 2, params, NULL, errstr,
                     errstr_size);
  }
  cJSON_Delete(offs);
  cJSON_Delete(stats);
  free(jo);
  free(js);
  return r;
}

/* Queues every dead letter of the batch not queued yet, then waits for
 * the broker's acknowledgement of all of them. */
static int send_dead_letters(cm_worker_t *w, char *errstr, size_t errstr_size) {
  int i, queued = 0;

  for (i = 0; i < w->batch.cnt; i++) {
    cm_item_t *it = &w->batch.items[i];

    if (it->outcome != CM_OUT_DEAD_LETTER || it->dlq_sent)
      continue;
    if (cm_dlq_send(w->dlq, it, it->decoded ? "TASK_PUT" : "VALUE_CONVERTER") !=
        0) {
      snprintf(errstr, errstr_size, "could not queue a dead letter");
      return CM_ERR_RETRY;
    }
    it->dlq_sent = 1;
    queued++;
  }
  if (!queued)
    return 0;
  return cm_dlq_flush(w->dlq, DLQ_FLUSH_MS, errstr, errstr_size);
}

/* Mirror and derive for every table, inside an open transaction. */
static int apply_tables(cm_worker_t *w, cm_batch_t *b, char *errstr,
                        size_t errstr_size) {
  cm_touched_t touched[N_APPLY];
  int i, r = 0;

  memset(touched, 0, sizeof(touched));
  r = cm_mirror_lock_ranges(w->mirror, w->db, b, errstr, errstr_size);
  for (i = 0; !r && i < N_APPLY; i++)
    r = cm_mirror_apply(w->mirror, w->db, apply_order[i], b, &touched[i],
                        errstr, errstr_size);
  if (!r)
    r = cm_derive_batch(w->derive, w->db, &touched[0], &touched[1], &touched[2],
                        errstr, errstr_size);
  for (i = 0; i < N_APPLY; i++)
    cm_touched_clear(&touched[i]);
  return r;
}

static void reset_outcomes(cm_batch_t *b) {
  int i;

  for (i = 0; i < b->cnt; i++)
    b->items[i].outcome = b->items[i].initial;
}

static void rollback(cm_worker_t *w) {
  char ignored[256];

  if (cm_db_conn(w->db) && PQstatus(cm_db_conn(w->db)) == CONNECTION_OK)
    cm_db_cmd(w->db, "ROLLBACK", ignored, sizeof(ignored));
}

static int run_transaction(cm_worker_t *w, char *errstr, size_t errstr_size) {
  int r;

  reset_outcomes(&w->batch);
  r = cm_db_cmd(w->db, "BEGIN", errstr, errstr_size);
  if (!r)
    r = apply_tables(w, &w->batch, errstr, errstr_size);
  if (!r)
    r = send_dead_letters(w, errstr, errstr_size);
  if (!r)
    r = store_progress(w, errstr, errstr_size);
  if (!r)
    r = cm_db_cmd(w->db, "COMMIT", errstr, errstr_size);
  if (r)
    rollback(w);
  return r;
}

/* Tries each event alone in a transaction that is rolled back; the ones
 * the database refuses are marked for the dead-letter topic for good. */
static int isolate_refused(cm_worker_t *w, char *errstr, size_t errstr_size) {
  char why[256];
  cm_batch_t one;
  int i, r, found = 0;

  reset_outcomes(&w->batch);
  for (i = 0; i < w->batch.cnt; i++) {
    cm_item_t *it = &w->batch.items[i];

    if (it->initial != CM_OUT_PENDING)
      continue;
    one.items = it;
    one.cnt = one.cap = 1;
    r = cm_db_cmd(w->db, "BEGIN", errstr, errstr_size);
    if (!r)
      r = apply_tables(w, &one, why, sizeof(why));
    rollback(w);
    it->outcome = CM_OUT_PENDING;
    if (r == CM_ERR_BAD_INPUT) {
      snprintf(it->reason, sizeof(it->reason),
               "database refused the row: %.200s", why);
      it->initial = CM_OUT_DEAD_LETTER;
      found++;
    } else if (r) {
      snprintf(errstr, errstr_size, "%s", why);
      return r;
    }
  }
  return found ? 0 : CM_ERR_FATAL;
}

/* The next offset of every partition the batch read. */
static rd_kafka_topic_partition_list_t *batch_offsets(const cm_batch_t *b) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
  rd_kafka_topic_partition_t *p;
  int i;

  for (i = 0; i < b->cnt; i++) {
    const cm_item_t *it = &b->items[i];

    p = rd_kafka_topic_partition_list_find(l, it->topic, it->partition);
    if (!p)
      p = rd_kafka_topic_partition_list_add(l, it->topic, it->partition);
    if (it->offset + 1 > p->offset)
      p->offset = it->offset + 1;
  }
  return l;
}

/* Kafka's copy of the offsets, for lag tools; the database's is the one
 * the worker resumes from. */
static void commit_to_kafka(cm_worker_t *w,
                            const rd_kafka_topic_partition_list_t *l) {
  rd_kafka_resp_err_t err = rd_kafka_commit(w->rk, l, 1 /* async */);

  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    cm_debug("kafka commit not queued: %s", rd_kafka_err2str(err));
}

static cm_count_t outcome_count(cm_outcome_t o) {
  switch (o) {
  case CM_OUT_APPLIED: return CM_COUNT_APPLIED;
  case CM_OUT_STALE: return CM_COUNT_STALE;
  case CM_OUT_SKIPPED: return CM_COUNT_SKIPPED;
  case CM_OUT_DEAD_LETTER: return CM_COUNT_DEAD_LETTERED;
  default: return CM_COUNT_CONSUMED; /* pending: counted as consumed only */
  }
}

/* The committed batch's figures: the log's totals and the observers'
 * (docs/observability.md), from the same outcomes partition_stats has. */
static void count_batch(cm_worker_t *w, cm_stats_batch_t *sb) {
  int i;

  memset(sb, 0, sizeof(*sb));
  sb->events = w->batch.cnt;
  for (i = 0; i < w->batch.cnt; i++) {
    const cm_item_t *it = &w->batch.items[i];
    cm_entity_t e = cm_entity_of_table(item_table(it));
    cm_count_t c = outcome_count(it->outcome);

    sb->counts[e][CM_COUNT_CONSUMED]++;
    if (c != CM_COUNT_CONSUMED)
      sb->counts[e][c]++;
  }
  for (i = 0; i < CM_ENTITY__CNT; i++) {
    w->totals.consumed += sb->counts[i][CM_COUNT_CONSUMED];
    w->totals.applied += sb->counts[i][CM_COUNT_APPLIED];
    w->totals.stale += sb->counts[i][CM_COUNT_STALE];
    w->totals.skipped += sb->counts[i][CM_COUNT_SKIPPED];
    w->totals.dead += sb->counts[i][CM_COUNT_DEAD_LETTERED];
  }
}

/* After the commit: the figures, then Kafka's copy of the offsets. */
static void batch_committed(cm_worker_t *w, int64_t started_ms) {
  rd_kafka_topic_partition_list_t *l = batch_offsets(&w->batch);
  cm_stats_batch_t sb;

  count_batch(w, &sb);
  sb.seconds = (double)(now_ms() - started_ms) / 1000.0;
  sb.offsets = l;
  cm_stats_batch(w->stats, &sb);
  commit_to_kafka(w, l);
  rd_kafka_topic_partition_list_destroy(l);
}

/* Applies the collected batch, retrying until it commits or the worker
 * is told to stop (then the batch is left for whoever reads it next). */
static int process_batch(cm_worker_t *w) {
  int64_t started = now_ms();
  char errstr[512];
  int i, r, attempt = 0;

  if (decode_batch(w) != 0)
    return CM_ERR_RETRY;
  for (i = 0; i < w->batch.cnt; i++)
    w->batch.items[i].initial = w->batch.items[i].outcome;
  for (;;) {
    r = run_transaction(w, errstr, sizeof(errstr));
    if (r == 0)
      break;
    if (r == CM_ERR_BAD_INPUT) {
      cm_warn("batch refused by the database (%s): isolating the event",
              errstr);
      r = isolate_refused(w, errstr, sizeof(errstr));
      if (r == 0)
        cm_stats_retry(w->stats);
    }
    if (r == CM_ERR_FATAL || r == CM_ERR_NOMEM) {
      cm_error("cannot apply batch: %s", errstr);
      return CM_ERR_FATAL;
    }
    if (r == CM_ERR_RETRY) {
      if (!*w->running && attempt > 0)
        return CM_ERR_RETRY;
      cm_warn("batch of %d events will be retried: %s", w->batch.cnt, errstr);
      cm_stats_retry(w->stats);
      attempt++;
      if (cm_db_conn(w->db) == NULL ||
          PQstatus(cm_db_conn(w->db)) != CONNECTION_OK) {
        if (cm_db_connect(w->db) != 0) /* waits with its own backoff */
          return CM_ERR_RETRY;
      } else {
        /* a conflict (deadlock, serialization) or an unacknowledged
         * dead letter: back off a little, more each time */
        sleep_ms(attempt < 10 ? 20 * attempt : 200);
      }
    }
  }
  batch_committed(w, started);
  return 0;
}

/* ---- assignment, resume, gaps ---------------------------------------- */

/* The stored next offset of a partition, or -1 if none; waits for the
 * database if it is down. */
static int stored_offset(cm_worker_t *w, const char *topic, int32_t part,
                         int64_t *out) {
  char pbuf[16], errstr[512];
  const char *params[3] = {w->conf->group_id, topic, pbuf};
  PGresult *res;
  int r;

  snprintf(pbuf, sizeof(pbuf), "%" PRId32, part);
  for (;;) {
    r = cm_db_exec(w->db, w->sql[Q_STORED], 3, params, &res, errstr,
                   sizeof(errstr));
    if (r == 0)
      break;
    if (r != CM_ERR_RETRY || cm_db_connect(w->db) != 0) {
      cm_error("cannot read stored offsets: %s", errstr);
      return r ? r : CM_ERR_RETRY;
    }
  }
  *out = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
  PQclear(res);
  return 0;
}

/* The clinicmig-replay command that repairs a gap of @p topic. */
static const char *repair_command(const cm_worker_t *w, const char *topic,
                                  char *buf, size_t size) {
  const cm_config_t *c = w->conf;

  /* bootstrap.servers is set: the configuration was validated */
  return cm_repair_command(cm_config_kafka_get(c, "bootstrap.servers"),
                           c->topic_replay, c->topic_prefix, c->source_schema,
                           topic, buf, size);
}

static int record_gap(cm_worker_t *w, const char *topic, int32_t part,
                      int64_t from, int64_t to) {
  char pbuf[16], fbuf[24], tbuf[24], errstr[512], cmd[1024];
  const char *params[5] = {w->conf->group_id, topic, pbuf, fbuf, tbuf};
  int r;

  snprintf(pbuf, sizeof(pbuf), "%" PRId32, part);
  snprintf(fbuf, sizeof(fbuf), "%" PRId64, from);
  snprintf(tbuf, sizeof(tbuf), "%" PRId64, to);
  cm_error("offset gap on %s [%" PRId32 "]: offsets %" PRId64 "..%" PRId64
           " were deleted by Kafka before they were read; recorded in "
           "offset_gap; repair with: %s",
           topic, part, from, to - 1,
           repair_command(w, topic, cmd, sizeof(cmd)));
  for (;;) {
    r = cm_db_exec(w->db, w->sql[Q_GAP], 5, params, NULL, errstr,
                   sizeof(errstr));
    if (r == 0)
      return 0;
    if (r != CM_ERR_RETRY || cm_db_connect(w->db) != 0) {
      cm_error("cannot record the offset gap: %s", errstr);
      return r ? r : CM_ERR_RETRY;
    }
  }
}

/* Where to start a partition: the stored offset, unless Kafka no longer
 * has it; then the log start, once the gap is on record. @p high_out
 * (NULL-able) receives the partition's high watermark. */
static int start_offset(cm_worker_t *w, const char *topic, int32_t part,
                        int64_t *start, int64_t *high_out) {
  int64_t stored, low = 0, high = 0;
  rd_kafka_resp_err_t err;
  int r;

  r = stored_offset(w, topic, part, &stored);
  if (r)
    return r;
  err =
      rd_kafka_query_watermark_offsets(w->rk, topic, part, &low, &high, 10000);
  if (err) {
    cm_warn("cannot query the log start of %s [%" PRId32 "]: %s", topic, part,
            rd_kafka_err2str(err));
    return CM_ERR_RETRY;
  }
  if (stored < 0)
    stored = 0; /* never read: everything since offset 0 is expected */
  if (stored > high)
    cm_error("stored offset %" PRId64 " of %s [%" PRId32 "] is past the "
             "end of the partition (%" PRId64 "): was the topic recreated? "
             "events below the stored offset will not be read; reset the "
             "group's offsets in consumer_offset and backfill",
             stored, topic, part, high);
  if (stored < low) {
    r = record_gap(w, topic, part, stored, low);
    if (r)
      return r;
    stored = low;
  }
  *start = stored;
  if (high_out)
    *high_out = high;
  return 0;
}

/* Routes a replay partition's messages to the worker's replay queue. */
static void forward_replay(cm_worker_t *w, int32_t partition) {
  rd_kafka_queue_t *q =
      rd_kafka_queue_get_partition(w->rk, w->conf->topic_replay, partition);

  if (!q) {
    cm_warn("no queue for %s [%" PRId32 "]: read with the live topics",
            w->conf->topic_replay, partition);
    return;
  }
  rd_kafka_queue_forward(q, w->replayq);
  rd_kafka_queue_destroy(q);
}

/* Drops what the replay queue still holds of revoked partitions: their
 * next owner reads them again from the stored offsets. */
static void drain_replay(cm_worker_t *w) {
  rd_kafka_message_t *m;

  while ((m = rd_kafka_consume_queue(w->replayq, 0)) != NULL)
    rd_kafka_message_destroy(m);
}

static void on_assign(cm_worker_t *w, rd_kafka_topic_partition_list_t *parts) {
  int64_t *highs = calloc((size_t)parts->cnt + 1, sizeof(*highs));
  int i, tries;

  for (i = 0; i < parts->cnt; i++) {
    rd_kafka_topic_partition_t *p = &parts->elems[i];

    for (tries = 0; tries < 30 && *w->running; tries++)
      if (start_offset(w, p->topic, p->partition, &p->offset,
                       highs ? &highs[i] : NULL) == 0)
        break;
    if (tries == 30 || !*w->running) {
      cm_error("cannot find where to resume %s [%" PRId32 "]; leaving it",
               p->topic, p->partition);
      w->fatal = 1;
      *w->running = 0;
      free(highs);
      return;
    }
    cm_info("assigned %s [%" PRId32 "] from offset %" PRId64, p->topic,
            p->partition, p->offset);
  }
  rd_kafka_assign(w->rk, parts);
  cm_stats_assign(w->stats, parts, highs, w->conf->topic_replay);
  free(highs);
  for (i = 0; i < parts->cnt; i++)
    if (strcmp(parts->elems[i].topic, w->conf->topic_replay) == 0)
      forward_replay(w, parts->elems[i].partition);
}

static void pause_appointments(cm_worker_t *w, int pause);
static void order_tables(cm_worker_t *w);

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  cm_worker_t *w = opaque;

  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    on_assign(w, parts);
    /* a partition paused under an earlier assignment starts unpaused;
     * then the order holds from the assignment's first batch on */
    if (w->conf->appointments_wait_ms > 0)
      pause_appointments(w, 0);
    w->appts_fresh = 1;
    order_tables(w);
    return;
  }
  /* revoked: finish what was collected, while the partitions are ours */
  if (w->batch.cnt > 0) {
    if (process_batch(w) == CM_ERR_FATAL)
      w->fatal = 1;
    batch_release(&w->batch);
  }
  cm_info("revoked %d partition(s)", parts->cnt);
  rd_kafka_assign(rk, NULL);
  w->appts_paused = 0;
  cm_stats_assign(w->stats, NULL, NULL, NULL);
  drain_replay(w);
}

/* librdkafka found the position out of range (auto.offset.reset=error):
 * the log start moved past it while the worker was reading. */
static void on_offset_reset(cm_worker_t *w, rd_kafka_message_t *m) {
  const char *topic = rd_kafka_topic_name(m->rkt);
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_error_t *e;
  int64_t start;

  if (start_offset(w, topic, m->partition, &start, NULL) != 0)
    return; /* retried on the next reset error */
  l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, m->partition)->offset = start;
  e = rd_kafka_seek_partitions(w->rk, l, 10000);
  if (e) {
    cm_warn("seek on %s [%" PRId32 "] failed: %s", topic, m->partition,
            rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  rd_kafka_topic_partition_list_destroy(l);
}

/* ---- the loop ---------------------------------------------------------- */

static void log_stats(cm_worker_t *w, int force) {
  int64_t t = now_ms();

  if (!force && t - w->last_stats_ms < STATS_EVERY_MS)
    return;
  w->last_stats_ms = t;
  cm_info("consumed %" PRId64 " applied %" PRId64 " stale %" PRId64
          " skipped %" PRId64 " dead-lettered %" PRId64,
          w->totals.consumed, w->totals.applied, w->totals.stale,
          w->totals.skipped, w->totals.dead);
}

/* Handles a message that carries an error rather than data. */
static void on_consume_error(cm_worker_t *w, rd_kafka_message_t *m) {
  if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && m->rkt) {
    /* settle what was read before the gap, then record the gap */
    if (w->batch.cnt > 0 && process_batch(w) == CM_ERR_FATAL)
      w->fatal = 1;
    batch_release(&w->batch);
    on_offset_reset(w, m);
  } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    cm_warn("consumer: %s", rd_kafka_message_errstr(m));
  }
  rd_kafka_message_destroy(m);
}

/* The next message: from the replay queue first when @p replay_turn,
 * else from the live topics first; waits on the live topics (which also
 * serves rebalances) at most @p wait_ms when both are empty. */
static rd_kafka_message_t *next_message(cm_worker_t *w, int replay_turn,
                                        int wait_ms) {
  rd_kafka_message_t *m;

  if (replay_turn)
    m = rd_kafka_consume_queue(w->replayq, 0);
  else
    m = rd_kafka_consumer_poll(w->rk, 0);
  if (!m && replay_turn)
    m = rd_kafka_consumer_poll(w->rk, 0);
  else if (!m)
    m = rd_kafka_consume_queue(w->replayq, 0);
  if (!m)
    m = rd_kafka_consumer_poll(w->rk, wait_ms);
  return m;
}

/* Collects up to batch.max.events messages, for at most batch.max.ms;
 * replay messages take at most every other place while live ones wait. */
static void collect(cm_worker_t *w) {
  int64_t deadline = now_ms() + w->conf->batch_max_ms, left;
  rd_kafka_message_t *m;
  int n_replay = 0;

  while (*w->running && !w->fatal && w->batch.cnt < w->conf->batch_max_events) {
    left = deadline - now_ms();
    if (left <= 0)
      break;
    m = next_message(w, 2 * n_replay < w->batch.cnt,
                     (int)(left > 20 ? 20 : left));
    if (!m)
      continue;
    if (m->rkt &&
        strcmp(rd_kafka_topic_name(m->rkt), w->conf->topic_replay) == 0)
      n_replay++;
    else if (m->rkt && !w->appts_read_ms &&
             strcmp(rd_kafka_topic_name(m->rkt), w->topics[2]) == 0)
      w->appts_read_ms = now_ms();
    if (m->err) {
      on_consume_error(w, m);
      continue;
    }
    if (batch_add(&w->batch, m) != 0) {
      rd_kafka_message_destroy(m);
      w->fatal = 1;
    }
  }
}

/* ---- appointments after the people they name ------------------------- */

/*
 * An appointment derived before its doctor's or patient's row exists is
 * written with that link NULL, and written again when the row lands
 * (docs/design.md §2.3). A backlog holds every table at once, and the
 * Appointment topic, the largest, has the most partitions, so without
 * care most appointments arrive first and are written twice. While this
 * worker's User and Patient partitions hold more than a batch of unread
 * events, its Appointment partitions are paused; they resume when that
 * backlog is read, or after appointments.wait.ms, and then stay resumed
 * at least as long (docs/operations.md §3). Only the order in which
 * events are read changes: the result does not depend on it, and paused
 * partitions lose nothing (librdkafka fetches them again from the
 * position the worker reached).
 */

/* The unread events of this worker's User and Patient partitions
 * (@p people) and of its Appointment partitions (@p appts): their high
 * watermarks less the offsets the last batches stored. */
static void unread(cm_worker_t *w, int64_t *people, int64_t *appts) {
  cm_stats_snapshot_t snap;
  int i;

  *people = *appts = 0;
  if (cm_stats_snapshot(w->stats, 0, &snap) != 0)
    return;
  for (i = 0; i < snap.n_parts; i++) {
    const cm_stats_part_t *p = &snap.parts[i];
    int64_t lag = cm_stats_part_lag(p);

    if (strcmp(p->topic, w->topics[2]) == 0)
      *appts += lag;
    else if (strcmp(p->topic, w->topics[0]) == 0 ||
             strcmp(p->topic, w->topics[1]) == 0)
      *people += lag;
  }
  cm_stats_snapshot_free(&snap);
}

/* Pauses (@p pause) or resumes the assigned Appointment partitions. */
static void pause_appointments(cm_worker_t *w, int pause) {
  rd_kafka_topic_partition_list_t *a = NULL, *l;
  rd_kafka_resp_err_t err;
  int i;

  w->appts_paused = 0;
  w->appts_read_ms = 0;
  if (rd_kafka_assignment(w->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR || !a)
    return;
  l = rd_kafka_topic_partition_list_new(a->cnt > 0 ? a->cnt : 1);
  for (i = 0; i < a->cnt; i++)
    if (strcmp(a->elems[i].topic, w->topics[2]) == 0)
      rd_kafka_topic_partition_list_add(l, a->elems[i].topic,
                                        a->elems[i].partition);
  err = l->cnt == 0 ? RD_KAFKA_RESP_ERR_NO_ERROR
        : pause     ? rd_kafka_pause_partitions(w->rk, l)
                    : rd_kafka_resume_partitions(w->rk, l);
  if (err)
    cm_warn("cannot %s %s: %s", pause ? "pause" : "resume", w->topics[2],
            rd_kafka_err2str(err));
  else if (l->cnt > 0)
    cm_debug("%s %d partition(s) of %s", pause ? "paused" : "resumed", l->cnt,
             w->topics[2]);
  if (pause && l->cnt > 0 && !err) {
    w->appts_paused = 1;
    w->appts_fresh = 0;
    w->appts_pause_ms = now_ms();
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_topic_partition_list_destroy(a);
}

/* Before each batch: appointments wait while people are behind, at most
 * appointments.wait.ms at a time; once resumed, they are read for as long
 * again before they may pause again. */
static void order_tables(cm_worker_t *w) {
  int64_t wait = w->conf->appointments_wait_ms, now, people, appts;
  int behind;

  if (wait == 0)
    return;
  now = now_ms();
  unread(w, &people, &appts);
  behind = people > w->conf->batch_max_events;
  if (w->appts_paused) {
    if (!behind || now - w->appts_pause_ms >= wait)
      pause_appointments(w, 0);
  } else if (behind && appts > 0 &&
             (w->appts_fresh ||
              (w->appts_read_ms > 0 && now - w->appts_read_ms >= wait))) {
    pause_appointments(w, 1);
  }
}

static int subscribe(cm_worker_t *w) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
  rd_kafka_resp_err_t err;
  int i;

  for (i = 0; i < N_TOPICS; i++)
    rd_kafka_topic_partition_list_add(l, w->topics[i], RD_KAFKA_PARTITION_UA);
  err = rd_kafka_subscribe(w->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err) {
    cm_error("cannot subscribe: %s", rd_kafka_err2str(err));
    return CM_ERR_FATAL;
  }
  return 0;
}

/* Between batches: the loop's heartbeat and, for an idle worker, a check
 * that the database is still there, so that /readyz notices it gone
 * (docs/observability.md). */
static void observe(cm_worker_t *w, int had_batch) {
  int64_t t = now_ms();

  cm_stats_turn(w->stats, 1);
  if (had_batch) {
    w->next_ping_ms = t + DB_PING_MS;
    w->ping_backoff_ms = DB_PING_MS;
    return;
  }
  if (t < w->next_ping_ms)
    return;
  if (cm_db_ping(w->db) == 0) {
    w->ping_backoff_ms = DB_PING_MS;
  } else if (w->ping_backoff_ms < w->conf->db_retry_max_ms) {
    w->ping_backoff_ms *= 2; /* one attempt each time, backing off */
    if (w->ping_backoff_ms > w->conf->db_retry_max_ms)
      w->ping_backoff_ms = w->conf->db_retry_max_ms;
  }
  w->next_ping_ms = t + w->ping_backoff_ms;
}

int cm_worker_run(cm_worker_t *w) {
  rd_kafka_resp_err_t err;
  int had;

  if (subscribe(w) != 0)
    return CM_ERR_FATAL;
  cm_stats_turn(w->stats, 1);
  if (cm_progress_start(w->progress) != 0)
    cm_warn("progress events disabled: cannot start their thread");
  w->ping_backoff_ms = DB_PING_MS;
  while (*w->running && !w->fatal) {
    order_tables(w);
    collect(w);
    had = w->batch.cnt > 0;
    if (had && process_batch(w) == CM_ERR_FATAL)
      w->fatal = 1;
    batch_release(&w->batch);
    log_stats(w, 0);
    observe(w, had);
  }
  if (w->batch.cnt > 0 && !w->fatal)
    process_batch(w);
  batch_release(&w->batch);
  log_stats(w, 1);
  cm_progress_finish(w->progress);
  cm_info("leaving the consumer group");
  err = rd_kafka_consumer_close(w->rk);
  if (err)
    cm_warn("leaving the group: %s", rd_kafka_err2str(err));
  return w->fatal ? CM_ERR_FATAL : 0;
}

/* ---- setup --------------------------------------------------------------- */

static rd_kafka_t *make_consumer(cm_worker_t *w, char *errstr,
                                 size_t errstr_size) {
  static const char *const fixed[][2] = {
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "error"},
  };
  rd_kafka_conf_t *kc = cm_kafka_conf(w->conf, 1, errstr, errstr_size);
  rd_kafka_t *rk;
  size_t i;

  if (!kc)
    return NULL;
  for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
    if (rd_kafka_conf_set(kc, fixed[i][0], fixed[i][1], errstr, errstr_size) !=
        RD_KAFKA_CONF_OK)
      goto fail;
  if (rd_kafka_conf_set(kc, "group.id", w->conf->group_id, errstr,
                        errstr_size) != RD_KAFKA_CONF_OK)
    goto fail;
  rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
  rd_kafka_conf_set_opaque(kc, w);
  rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size);
  if (!rk)
    goto fail;
  rd_kafka_poll_set_consumer(rk);
  return rk;
fail:
  rd_kafka_conf_destroy(kc);
  return NULL;
}

static int make_names(cm_worker_t *w) {
  static const char *const tables[] = {"User", "Patient", "Appointment"};
  const cm_config_t *c = w->conf;
  size_t len;
  int i;

  for (i = 0; i < 3; i++) {
    len = strlen(c->topic_prefix) + strlen(c->source_schema) + 16;
    w->topics[i] = malloc(len);
    if (!w->topics[i])
      return CM_ERR_NOMEM;
    snprintf(w->topics[i], len, "%s.%s.%s", c->topic_prefix, c->source_schema,
             tables[i]);
  }
  w->topics[3] = strdup(c->topic_replay);
  if (!w->topics[3] || cm_db_expand_all(w->db, batch_sql, w->sql, N_Q) != 0)
    return CM_ERR_NOMEM;
  return 0;
}

static void on_db(void *opaque, int ok) {
  cm_stats_db(opaque, ok);
}

/* The figures and their readers (docs/observability.md). The HTTP server
 * comes first, so that /healthz and /readyz answer while the worker waits
 * for its database. */
static int make_observers(cm_worker_t *w, char *errstr, size_t errstr_size) {
  const cm_config_t *conf = w->conf;

  w->stats = cm_stats_new();
  if (!w->stats) {
    snprintf(errstr, errstr_size, "out of memory");
    return CM_ERR_NOMEM;
  }
  cm_db_set_observer(w->db, on_db, w->stats);
  if (conf->http_listen && *conf->http_listen) {
    w->http = cm_http_start(conf->http_listen, w->stats, errstr, errstr_size);
    if (!w->http)
      return CM_ERR_FATAL;
  }
  return 0;
}

/* The consumer, its replay queue, the dead-letter and progress producers. */
static int make_clients(cm_worker_t *w, char *errstr, size_t errstr_size) {
  w->rk = make_consumer(w, errstr, errstr_size);
  if (!w->rk)
    return CM_ERR_FATAL;
  cm_stats_set_consumer(w->stats, w->rk);
  w->replayq = rd_kafka_queue_new(w->rk);
  if (!w->replayq) {
    snprintf(errstr, errstr_size, "out of memory");
    return CM_ERR_NOMEM;
  }
  w->dlq = cm_dlq_new(w->conf, errstr, errstr_size);
  if (!w->dlq)
    return CM_ERR_FATAL;
  w->progress = cm_progress_new(w->conf, w->stats, errstr, errstr_size);
  return w->progress ? 0 : CM_ERR_FATAL;
}

/* The schema source of Avro messages, if one is configured. */
static int make_schemas(cm_worker_t *w, char *errstr, size_t errstr_size) {
  const cm_config_t *c = w->conf;
  cm_schemas_conf_t sc = {c->schema_registry_url, c->schema_registry_auth,
                          c->schema_registry_ca, c->schema_dir,
                          c->schema_registry_timeout_ms};

  if ((!sc.registry_url || !*sc.registry_url) && (!sc.dir || !*sc.dir))
    return 0; /* JSON only: an Avro message is bad input */
  w->schemas = cm_schemas_new(&sc, errstr, errstr_size);
  return w->schemas ? 0 : CM_ERR_CONFIG;
}

cm_worker_t *cm_worker_new(const cm_config_t *conf,
                           volatile sig_atomic_t *running, char *errstr,
                           size_t errstr_size) {
  cm_worker_t *w = calloc(1, sizeof(*w));

  if (!w) {
    snprintf(errstr, errstr_size, "out of memory");
    return NULL;
  }
  w->conf = conf;
  w->running = running;
  w->db = cm_db_new(conf->db_conninfo, conf->schema_book, conf->schema_domain,
                    conf->db_retry_max_ms, running);
  if (!w->db || make_names(w) != 0) {
    snprintf(errstr, errstr_size, "out of memory");
    goto fail;
  }
  if (make_observers(w, errstr, errstr_size) != 0 ||
      make_clients(w, errstr, errstr_size) != 0)
    goto fail;
  if (make_schemas(w, errstr, errstr_size) != 0)
    goto fail;
  if (cm_db_connect(w->db) != 0) {
    snprintf(errstr, errstr_size, "stopped before the database was reached");
    goto fail;
  }
  if (cm_db_migrate(w->db, errstr, errstr_size) != 0)
    goto fail;
  w->mirror = cm_mirror_new(w->db, conf->phone_region);
  w->derive = cm_derive_new(w->db, conf->patients_match);
  if (!w->mirror || !w->derive) {
    snprintf(errstr, errstr_size, "out of memory");
    goto fail;
  }
  return w;
fail:
  cm_worker_destroy(w);
  return NULL;
}

void cm_worker_destroy(cm_worker_t *w) {
  int i;

  if (!w)
    return;
  cm_http_stop(w->http); /* it reads the figures: stop it first */
  cm_progress_destroy(w->progress);
  batch_release(&w->batch);
  free(w->batch.items);
  if (w->replayq) {
    drain_replay(w);
    rd_kafka_queue_destroy(w->replayq);
  }
  if (w->stats)
    cm_stats_set_consumer(w->stats, NULL);
  if (w->rk)
    rd_kafka_destroy(w->rk);
  cm_dlq_destroy(w->dlq);
  cm_schemas_destroy(w->schemas);
  cm_mirror_destroy(w->mirror);
  cm_derive_destroy(w->derive);
  cm_db_destroy(w->db);
  for (i = 0; i < N_TOPICS; i++)
    free(w->topics[i]);
  cm_db_free_all(w->sql, N_Q);
  cm_stats_destroy(w->stats);
  free(w);
}
