/**
 * @file cm_progress.h
 * @brief The progress stream: every progress.interval.ms, and once at
 *        shutdown, one event on topic.progress with this worker's figures
 *        (docs/observability.md has every field).
 *
 * NOTES
 * The publisher has its own producer beside the dead-letter one: the
 * batch loop waits for the dead-letter producer's acknowledgements before
 * it commits, and a progress event must never be what it waits for. It
 * publishes from a thread of its own, so the loop never waits for it at
 * all; a failed publish is logged at warn and changes nothing else. With
 * topic.progress.format = avro the events are Avro in Confluent's wire
 * format (cm_avro_out.h); one the registry cannot take yet is dropped
 * with a warning.
 */
#ifndef CM_PROGRESS_H
#define CM_PROGRESS_H

#include <stddef.h>

#include "clinicmig/cm_config.h"
#include "clinicmig/cm_stats.h"
#include "clinicmig/cm_text.h"

typedef struct cm_progress_s cm_progress_t;

/**
 * @brief Creates the producer (the worker's kafka.* properties) and, for
 *        Avro, the schema source and writer (nothing is asked of the
 *        registry yet).
 * @param conf   kept by reference: must outlive the publisher.
 * @param stats  read at every interval: must outlive the publisher.
 * @returns NULL with the reason in @p errstr.
 */
cm_progress_t *cm_progress_new(const cm_config_t *conf, cm_stats_t *stats,
                               char *errstr, size_t errstr_size);

/**
 * @brief Starts publishing every progress.interval.ms in a thread.
 * @returns 0, or CM_ERR_NOMEM if the thread could not start.
 */
int cm_progress_start(cm_progress_t *p);

/**
 * @brief Stops the thread, publishes the final event ("final": true) and
 *        waits a few seconds at most for the cluster to take it.
 */
void cm_progress_finish(cm_progress_t *p);

/** @brief Stops the thread if running; drops what was not delivered. */
void cm_progress_destroy(cm_progress_t *p);

/**
 * @brief Writes the progress event of @p snap (taken with a new
 *        interval) as one line of JSON.
 * @returns 0, or CM_ERR_NOMEM.
 */
int cm_progress_format(const cm_stats_snapshot_t *snap, const char *worker,
                       const char *group, int final, cm_text_t *out);

#endif
