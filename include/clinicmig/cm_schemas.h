/**
 * @file cm_schemas.h
 * @brief Avro writer schemas by id: from a schema registry over HTTP(S) or
 *        from a directory of `<id>.avsc` files, cached in memory.
 *
 * NOTES
 * Confluent's wire format puts a 4-byte schema id in front of each Avro
 * message; the decoder (cm_event.h) asks this module for the schema the
 * message was written with and reads the message with it, taking fields by
 * name (docs/design.md §1.2). A schema is fetched once per id and kept for
 * the life of the handle: an id never changes its schema in a registry.
 *
 * Errors are sorted the way the worker acts on them: an id the source does
 * not have, or a schema that does not parse, is bad input
 * (CM_ERR_BAD_INPUT: the message goes to the dead-letter topic); a registry
 * that cannot be reached, times out or answers 5xx is CM_ERR_RETRY (the
 * batch waits and runs again).
 *
 * A handle is used by one thread at a time (it keeps one curl handle).
 */
#ifndef CM_SCHEMAS_H
#define CM_SCHEMAS_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

typedef struct cm_schemas_s cm_schemas_t;

/** One writer schema: the parsed schema and its fields' semantic types. */
typedef struct cm_schema_s cm_schema_t;

/** Where schemas come from; NULL or "" leaves a member unset. */
typedef struct cm_schemas_conf_s {
  const char *registry_url; /**< e.g. http://registry:8081 */
  const char *basic_auth;   /**< "user:password" */
  const char *ca_location;  /**< CA bundle for https */
  const char *dir;          /**< directory of <id>.avsc files */
  long timeout_ms;          /**< per request; 0: 5000 */
} cm_schemas_conf_t;

/**
 * @brief Creates a schema source. The directory, when set, is asked first.
 * @returns the handle, or NULL with the reason in @p errstr (neither a
 *          registry nor a directory, a directory that cannot be read, out
 *          of memory).
 */
cm_schemas_t *cm_schemas_new(const cm_schemas_conf_t *conf, char *errstr,
                             size_t errstr_size);

/** @brief Frees the handle and every cached schema. NULL is allowed. */
void cm_schemas_destroy(cm_schemas_t *s);

/**
 * @brief The writer schema of @p id.
 * @param out  set to a schema owned by @p s, valid until it is destroyed.
 * @returns CM_OK; CM_ERR_BAD_INPUT (unknown id, a schema that does not
 *          parse); CM_ERR_RETRY (registry unreachable, timeout, 5xx, 401,
 *          403); CM_ERR_NOMEM. A one-line reason is in @p errstr.
 */
int cm_schemas_get(cm_schemas_t *s, int32_t id, const cm_schema_t **out,
                   char *errstr, size_t errstr_size);

/**
 * @brief Registers @p schema_json under @p subject in the schema registry
 *        (`POST {url}/subjects/{subject}/versions`, body
 *        `{"schema": "<text>"}`, the same basic auth, CA file and timeout
 *        as the reads) and gives its id. Writers of Avro streams use it
 *        (cm_avro_out.h). The id is cached per subject and schema text for
 *        the life of the handle, and the schema is cached by that id too.
 * @returns CM_OK with @p *id set; CM_ERR_CONFIG (no registry URL: a schema
 *          directory alone cannot register); CM_ERR_BAD_INPUT (the
 *          registry refuses the schema: 409 incompatible, 422 invalid, 400,
 *          404; its message is in @p errstr); CM_ERR_RETRY (unreachable,
 *          timeout, 5xx, 401, 403, or any other status); CM_ERR_NOMEM.
 */
int cm_schemas_register(cm_schemas_t *s, const char *subject,
                        const char *schema_json, int32_t *id, char *errstr,
                        size_t errstr_size);

/** @brief The parsed Avro schema (borrowed). */
avro_schema_t cm_schema_avro(const cm_schema_t *sch);

/**
 * @brief The semantic type a record field of the schema declares: its
 *        `connect.name` ("io.debezium.time.MicroTimestamp"), else its Avro
 *        `logicalType` ("timestamp-micros"), looking through a union with
 *        null; NULL if none. The first field of that name in the schema
 *        text is meant: the column names of one table.
 */
const char *cm_schema_semantic(const cm_schema_t *sch, const char *field);

#endif
