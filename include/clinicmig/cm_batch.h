/**
 * @file cm_batch.h
 * @brief A batch of consumed messages on its way into one transaction.
 *
 * NOTES
 * The consumer fills a batch; decode gives each item its event and
 * disposition; the mirror and derive steps mark each item's outcome; the
 * stats and stored offsets are written from the outcomes in the same
 * transaction. Items keep their Kafka message until the batch is released,
 * so a transaction that must run again can use them again.
 */
#ifndef CM_BATCH_H
#define CM_BATCH_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_event.h"

typedef enum cm_outcome_e {
  CM_OUT_PENDING = 0,
  CM_OUT_APPLIED,
  CM_OUT_STALE,       /**< at or below the stored position: skipped */
  CM_OUT_SKIPPED,     /**< not a row change (tombstone, message, ...) */
  CM_OUT_DEAD_LETTER, /**< sent to the dead-letter topic */
} cm_outcome_t;

typedef struct cm_item_s {
  rd_kafka_message_t *msg; /**< owned by the batch */
  const char *topic;
  int32_t partition;
  int64_t offset;
  int decoded; /**< ev holds an event */
  cm_event_t ev;
  cm_outcome_t outcome;
  cm_outcome_t initial; /**< outcome after decoding: where a retried
                             transaction starts from */
  int dlq_sent;         /**< queued for the dead-letter topic */
  char reason[256];     /**< why skipped or dead-lettered */
} cm_item_t;

typedef struct cm_batch_s {
  cm_item_t *items;
  int cnt;
  int cap;
} cm_batch_t;

#endif
