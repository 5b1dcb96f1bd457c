/**
 * @file cm_kafka.h
 * @brief librdkafka configuration shared by the worker's clients.
 */
#ifndef CM_KAFKA_H
#define CM_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_config.h"

/**
 * @brief A librdkafka configuration holding the worker's kafka.*
 *        properties, client.id = worker.id, and a log callback that
 *        writes librdkafka's messages as clinicmig log lines.
 * @param consumer  0 for a producer: consumer-only properties (group and
 *                  session settings) are then left out, so librdkafka
 *                  does not warn about them.
 * @returns the configuration (the caller passes it to rd_kafka_new or
 *          destroys it), or NULL with the reason in @p errstr.
 */
rd_kafka_conf_t *cm_kafka_conf(const cm_config_t *conf, int consumer,
                               char *errstr, size_t errstr_size);

#endif
