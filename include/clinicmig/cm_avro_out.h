/**
 * @file cm_avro_out.h
 * @brief clinicmig's own streams in Avro: a JSON document (as the JSON
 *        output writes it) or a filled Avro value into Confluent's wire
 *        format, and back to the plain JSON document for readers.
 *
 * NOTES
 * The progress, reconciliation and replay streams are JSON by default;
 * with the Avro switch each message is byte 0, the 4-byte big-endian id
 * of its schema in the registry, then Avro binary written with that
 * schema (docs/observability.md, "Avro"). The schema is registered under
 * the topic-name subject strategy, `<topic>-value`, lazily on the first
 * encode, and registered again on the next encode after a failure: a
 * registry that is down delays the stream, never the caller beyond
 * `schema.registry.timeout.ms`.
 *
 * JSON to Avro walks the Avro schema over the cJSON tree and fills an Avro
 * C generic value:
 * - a record takes its fields by name; a field the document lacks is null
 *   if its type is a union with null, else the field's default, else an
 *   error naming its path; a member the record has no field for is an
 *   error (nothing is dropped silently);
 * - a union takes the first branch, in schema order, that takes the whole
 *   value (so a union of records chooses by shape);
 * - a map takes an open-ended object, an enum a string naming a symbol;
 * - int and long take whole numbers only, and only below 2^53 in
 *   magnitude: cJSON reads JSON numbers as doubles, so a larger one may
 *   already have been rounded and is refused.
 * Avro back to JSON prints every field in schema order, unions unwrapped
 * (not Avro's {"type": value} JSON encoding), enums as their symbol, so a
 * reader of the JSON stream reads the Avro stream unchanged.
 *
 * Errors name paths ($.entities.doctor.consumed), never values. A handle
 * is used by one thread at a time, as its cm_schemas_t.
 */
#ifndef CM_AVRO_OUT_H
#define CM_AVRO_OUT_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

#include "clinicmig/cm_schemas.h"

typedef struct cm_avro_out_s cm_avro_out_t;

/**
 * @brief The text of `schemas/<name>.avsc` ("progress",
 *        "reconciliation"), embedded at build time.
 * @returns the schema text, or NULL if there is no such file.
 */
const char *cm_avsc(const char *name);

/**
 * @brief A writer of @p topic's values with @p schema_json, registered as
 *        subject `<topic>-value` in @p s on the first encode.
 * @param s  kept by reference: must outlive the writer.
 * @returns the writer, or NULL with the reason in @p errstr (a schema Avro
 *          C does not parse, out of memory).
 */
cm_avro_out_t *cm_avro_out_new(cm_schemas_t *s, const char *topic,
                               const char *schema_json, char *errstr,
                               size_t errstr_size);

/** @brief Frees the writer. NULL is allowed. */
void cm_avro_out_destroy(cm_avro_out_t *o);

/** @brief The writer's parsed schema (borrowed), to fill a value with. */
avro_schema_t cm_avro_out_schema(cm_avro_out_t *o);

/**
 * @brief Encodes the JSON document @p json (@p len bytes) in Confluent's
 *        wire format.
 * @param out  set to a malloc()ed buffer of @p *out_len bytes: free() it.
 * @returns CM_OK; CM_ERR_BAD_INPUT (not JSON, or the document does not fit
 *          the schema: the path is in @p errstr; or the registry refuses
 *          the schema); CM_ERR_RETRY (the registry cannot register it now:
 *          the next call tries again); CM_ERR_CONFIG (no registry URL);
 *          CM_ERR_NOMEM.
 */
int cm_avro_out_encode_json(cm_avro_out_t *o, const char *json, size_t len,
                            void **out, size_t *out_len, char *errstr,
                            size_t errstr_size);

/**
 * @brief Encodes @p v, a value of cm_avro_out_schema(@p o) (for instance
 *        made by avro_generic_class_from_schema()), in Confluent's wire
 *        format. Returns as cm_avro_out_encode_json().
 */
int cm_avro_out_encode_value(cm_avro_out_t *o, avro_value_t *v, void **out,
                             size_t *out_len, char *errstr, size_t errstr_size);

/**
 * @brief Reads a message in Confluent's wire format with its writer schema
 *        (cm_schemas_get()) and prints it as the plain JSON document.
 * @param s     the schema source; NULL says that none is configured (the
 *              message is then CM_ERR_BAD_INPUT, saying so).
 * @param json  set to a malloc()ed NUL-terminated text: free() it.
 * @returns CM_OK; CM_ERR_BAD_INPUT (not the wire format, unknown id,
 *          truncated or malformed body, trailing bytes, a string that is
 *          not UTF-8); CM_ERR_RETRY (the registry cannot answer now);
 *          CM_ERR_NOMEM.
 */
int cm_avro_wire_to_json(cm_schemas_t *s, const void *buf, size_t len,
                         char **json, char *errstr, size_t errstr_size);

#endif
