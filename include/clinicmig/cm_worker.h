/**
 * @file cm_worker.h
 * @brief One worker of the pool: consume, decode, mirror, derive, commit.
 */
#ifndef CM_WORKER_H
#define CM_WORKER_H

#include <signal.h>
#include <stddef.h>

#include "clinicmig/cm_config.h"

typedef struct cm_worker_s cm_worker_t;

/**
 * @brief Connects to the database (waiting for it with backoff), applies
 *        the schema migrations and creates the Kafka consumer.
 * @param conf     kept by reference: must outlive the worker.
 * @param running  the worker stops when *running drops to 0.
 * @returns NULL with the reason in @p errstr.
 */
cm_worker_t *cm_worker_new(const cm_config_t *conf,
                           volatile sig_atomic_t *running, char *errstr,
                           size_t errstr_size);

/**
 * @brief Runs until *running drops to 0: then finishes the batch in
 *        flight, commits it, and leaves the consumer group.
 * @returns 0, or CM_ERR_FATAL after logging why.
 */
int cm_worker_run(cm_worker_t *w);

void cm_worker_destroy(cm_worker_t *w);

#endif
