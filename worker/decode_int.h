/*
 * decode_int.h — what the JSON and Avro decoders share (worker/ only).
 *
 * NOTES
 * decode.c reads Debezium's JSON and dispatches on the format of each
 * message's key and value; decode_avro.c reads the Avro envelope. Both give
 * the same reasons for the same faults, from these helpers.
 */
#ifndef CM_DECODE_INT_H
#define CM_DECODE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "clinicmig/cm_event.h"

/* The unit of an integer timestamp, from its schema's semantic type. */
typedef enum cm_ts_unit_e {
  CM_TS_GUESS, /* no semantic type: see decode.c NOTES */
  CM_TS_MS,
  CM_TS_US,
  CM_TS_NS,
  CM_TS_TEXT, /* ZonedTimestamp: only a string is right */
  CM_TS_BAD,  /* a semantic type that is not a timestamp */
} cm_ts_unit_t;

/* Writes the reason (if there is room) and returns @p err. */
__attribute__((format(printf, 4, 5))) int
cm_dec_fail(char *errstr, size_t errstr_size, int err, const char *fmt, ...);

/* At most 32 bytes of @p src, printable ASCII only, for a reason. */
const char *cm_dec_printable(const char *src, char *dst, size_t dst_size);

/* 1 if the NUL-terminated @p s is well-formed UTF-8. */
int cm_dec_utf8_valid(const unsigned char *s);

cm_ts_unit_t cm_dec_ts_unit(const char *semantic);

/* An integer timestamp in @p unit to µs; -1 if out of range. */
int cm_dec_ts_from_int(int64_t v, cm_ts_unit_t unit, int64_t *us);

/* Debezium's op letter (c, u, d, r, t, m), or 0. */
cm_op_t cm_dec_op(const char *s);

/* source.snapshot's string form. */
cm_snapshot_t cm_dec_snapshot(const char *s);

/* 1 if a message of @p len bytes is in Confluent's wire format (magic byte
 * 0 and a schema id in front). */
int cm_dec_is_avro(const void *msg, size_t len);

/*
 * The row id of a message key in either format: JSON ({"id": N}, wrapped,
 * or N) or Avro (a record with an `id` field).
 */
int cm_dec_key(cm_schemas_t *schemas, const void *key, size_t key_len,
               int64_t *id, char *errstr, size_t errstr_size);

/* The Avro key (decode_avro.c). */
int cm_dec_avro_key(cm_schemas_t *schemas, const void *key, size_t key_len,
                    int64_t *id, char *errstr, size_t errstr_size);

/* An Avro value: Debezium's envelope into @p ev (decode_avro.c). */
int cm_dec_avro_value(cm_schemas_t *schemas, const void *key, size_t key_len,
                      const void *value, size_t value_len, cm_event_t *ev,
                      char *errstr, size_t errstr_size);

#endif
