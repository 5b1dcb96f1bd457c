/**
 * @file cm_stats.h
 * @brief The worker's figures: what its batches did, where its partitions
 *        stand, whether it is alive and ready (docs/observability.md).
 *
 * NOTES
 * The consumer loop writes, after each committed batch, one summary of it
 * (O(batch) work, done by the loop; nothing here runs per event). The
 * progress publisher and the HTTP server, in threads of their own, read a
 * snapshot: a copy taken under the handle's mutex and formatted after the
 * lock is released. Counters are cumulative since the process started;
 * the batch sizes and latencies of the current interval are kept in a
 * bounded window for percentiles, and a progress snapshot starts a new
 * interval. High watermarks are read from librdkafka's cache when a
 * snapshot is taken, so they stay current while the loop waits (for a
 * lost database, say).
 */
#ifndef CM_STATS_H
#define CM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_event.h"

/** What an event counts under (docs/observability.md, "entities"). */
typedef enum cm_entity_e {
  CM_ENTITY_DOCTOR = 0, /**< legacy table User */
  CM_ENTITY_PATIENT,
  CM_ENTITY_APPOINTMENT,
  CM_ENTITY_OTHER, /**< any other table, or none known */
  CM_ENTITY__CNT
} cm_entity_t;

/** What happened to an event; consumed counts every event. */
typedef enum cm_count_e {
  CM_COUNT_CONSUMED = 0,
  CM_COUNT_APPLIED,
  CM_COUNT_STALE,
  CM_COUNT_SKIPPED,
  CM_COUNT_DEAD_LETTERED,
  CM_COUNT__CNT
} cm_count_t;

/** @returns "doctor", "patient", "appointment" or "other". */
const char *cm_entity_name(cm_entity_t e);

/** @returns "consumed", "applied", "stale", "skipped", "dead_lettered". */
const char *cm_count_name(cm_count_t c);

/** @returns the entity of a legacy table. */
cm_entity_t cm_entity_of_table(cm_table_t table);

/** Most batches an interval keeps for its percentiles (the latest). */
#define CM_STATS_WINDOW 4096
#define CM_STATS_BUCKETS 16
/** A Kafka topic name is at most 249 bytes. */
#define CM_STATS_TOPIC_MAX 256

/** A histogram: counts per bucket (not cumulative), the last for +Inf. */
typedef struct cm_stats_hist_s {
  int64_t bucket[CM_STATS_BUCKETS];
  int64_t count;
  double sum;
} cm_stats_hist_t;

/** The upper bounds of the buckets, ended by a negative number. */
extern const double cm_stats_seconds_le[];
extern const double cm_stats_events_le[];

/** One assigned partition. */
typedef struct cm_stats_part_s {
  char topic[CM_STATS_TOPIC_MAX];
  int32_t partition;
  int replay;        /**< a partition of the replay topic */
  int64_t committed; /**< next offset stored by the last committed batch */
  int64_t high;      /**< high watermark librdkafka last saw; -1 unknown */
} cm_stats_part_t;

/** One committed batch, as the consumer reports it. */
typedef struct cm_stats_batch_s {
  int64_t counts[CM_ENTITY__CNT][CM_COUNT__CNT];
  int events;
  double seconds; /**< from the end of collection to the commit */
  /** the next offset of every partition the batch read (not owned) */
  const rd_kafka_topic_partition_list_t *offsets;
} cm_stats_batch_t;

/** A copy of the figures, the reader's own. */
typedef struct cm_stats_snapshot_s {
  int64_t started_ms; /**< wall clock, ms since the epoch */
  int64_t now_ms;     /**< wall clock when taken */
  int64_t counts[CM_ENTITY__CNT][CM_COUNT__CNT];
  int64_t batches, events, retries;
  cm_stats_hist_t seconds, sizes;
  cm_stats_part_t *parts; /**< owned; cm_stats_snapshot_free() */
  int n_parts;
  int64_t lag_live, lag_replay;
  /* the interval, filled when the snapshot was taken with a new interval */
  double interval_s;
  int64_t interval_consumed;
  int interval_batches;
  int64_t size_p50, size_p99;
  double latency_ms_p50, latency_ms_p99;
  /* health */
  int running;           /**< the consumer loop has started */
  int db_ok;             /**< the last database round trip succeeded */
  int64_t since_turn_ms; /**< since the main loop last turned */
} cm_stats_snapshot_t;

typedef struct cm_stats_s cm_stats_t;

/** @returns a handle, or NULL when out of memory. */
cm_stats_t *cm_stats_new(void);
void cm_stats_destroy(cm_stats_t *s);

/** @brief Adds a committed batch: counts, histograms, offsets. */
void cm_stats_batch(cm_stats_t *s, const cm_stats_batch_t *b);

/** @brief Counts a batch transaction rolled back to run again. */
void cm_stats_retry(cm_stats_t *s);

/**
 * @brief Replaces the assigned partitions.
 * @param parts  offsets are where each partition resumes; NULL: none.
 * @param highs  their high watermarks, NULL-able (then unknown).
 */
void cm_stats_assign(cm_stats_t *s,
                     const rd_kafka_topic_partition_list_t *parts,
                     const int64_t *highs, const char *replay_topic);

/**
 * @brief The consumer whose cached high watermarks a snapshot reads
 *        (rd_kafka_get_watermark_offsets: no request, safe from any
 *        thread). NULL detaches it; detach before destroying it.
 */
void cm_stats_set_consumer(cm_stats_t *s, rd_kafka_t *rk);

/** @brief The main loop turned (for /healthz); @p running: it has begun. */
void cm_stats_turn(cm_stats_t *s, int running);

/** @brief The outcome of the latest database round trip (for /readyz). */
void cm_stats_db(cm_stats_t *s, int ok);

/**
 * @brief Copies the figures.
 * @param new_interval  also compute the interval's rate and percentiles
 *                      and start a new interval (the progress publisher).
 * @returns 0, or CM_ERR_NOMEM (then @p out holds nothing to free).
 */
int cm_stats_snapshot(cm_stats_t *s, int new_interval,
                      cm_stats_snapshot_t *out);

void cm_stats_snapshot_free(cm_stats_snapshot_t *snap);

/**
 * @brief /readyz's rule: the loop runs, the database's last round trip
 *        succeeded and partitions are assigned.
 * @returns 1 when ready, else 0 with a one-line reason in @p why.
 */
int cm_stats_ready(const cm_stats_snapshot_t *snap, char *why, size_t why_size);

/** How long /healthz lets the main loop stand still. */
#define CM_STATS_STALL_MS 30000

/** @returns 1 when the main loop turned within CM_STATS_STALL_MS. */
int cm_stats_alive(const cm_stats_snapshot_t *snap);

/** @returns the unread messages of @p p: its high watermark less the
 *           next offset stored, 0 while either is unknown. */
int64_t cm_stats_part_lag(const cm_stats_part_t *p);

#endif
