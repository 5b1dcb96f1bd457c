/**
 * @file cm_dlq.h
 * @brief The dead-letter topic: events the worker cannot apply, with why.
 *
 * NOTES
 * A dead-lettered message keeps its key, value and headers and gains
 * Kafka Connect's error headers (`__connect.errors.topic`, `.partition`,
 * `.offset`, `.exception.message`, ...), so tooling made for Connect's
 * dead-letter queues reads it, plus `clinicmig.error.reason` and
 * `clinicmig.error.time`. The batch that dead-letters an event commits only
 * after the broker has acknowledged it: an event is never lost.
 */
#ifndef CM_DLQ_H
#define CM_DLQ_H

#include <stddef.h>

#include "clinicmig/cm_batch.h"
#include "clinicmig/cm_config.h"

typedef struct cm_dlq_s cm_dlq_t;

/**
 * @brief Creates the dead-letter producer from the worker's kafka.*
 *        properties. @returns NULL with the reason in @p errstr.
 */
cm_dlq_t *cm_dlq_new(const cm_config_t *conf, char *errstr, size_t errstr_size);

void cm_dlq_destroy(cm_dlq_t *dlq);

/**
 * @brief Queues @p it (with it->reason) for the dead-letter topic.
 * @param stage  Connect's stage name: "VALUE_CONVERTER" for a message that
 *               did not decode, "TASK_PUT" for one the mapping refused.
 */
int cm_dlq_send(cm_dlq_t *dlq, const cm_item_t *it, const char *stage);

/**
 * @brief Waits until every queued message is acknowledged.
 * @returns 0, or CM_ERR_RETRY if any was not (the batch must not commit).
 */
int cm_dlq_flush(cm_dlq_t *dlq, int timeout_ms, char *errstr,
                 size_t errstr_size);

#endif
