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
  CM_TS_NONE, /* no semantic type: the configuration decides (decode.c) */
  CM_TS_MS,
  CM_TS_US,
  CM_TS_NS,
  CM_TS_TEXT, /* ZonedTimestamp, IsoTimestamp: only a string is right */
  CM_TS_BAD,  /* a semantic type that is not a timestamp */
} cm_ts_unit_t;

/* Whether run @p i of a range marker's ev->runs, just read, keeps the
 * runs sorted, disjoint and within [range_first, range_last]; the reason
 * when it does not. Both decoders check markers with it. */
int cm_dec_run_fits(const cm_event_t *ev, int i);
extern const char cm_dec_run_misfit[];

/* At most 32 bytes of @p src, printable ASCII only, for a reason. */
const char *cm_dec_printable(const char *src, char *dst, size_t dst_size);

/* 1 if the NUL-terminated @p s is well-formed UTF-8. */
int cm_dec_utf8_valid(const unsigned char *s);

cm_ts_unit_t cm_dec_ts_unit(const char *semantic);

/* An integer timestamp in @p unit to µs; -1 if out of range. */
int cm_dec_ts_from_int(int64_t v, cm_ts_unit_t unit, int64_t *us);

/*
 * An integer in timestamp column @p col of @p table to µs: in the unit
 * its @p semantic type names, or without one in the unit @p o's
 * time.precision.mode and legacy column type give (decode.c NOTES).
 * @returns CM_OK, or CM_ERR_BAD_INPUT with the reason for @p path.
 */
int cm_dec_ts_int(const cm_decode_opts_t *o, cm_table_t table, int col,
                  const char *semantic, int64_t v, const char *path,
                  int64_t *us, char *errstr, size_t errstr_size);

/* An integer in a date column: days, unless the semantic type or the
 * mode (isostring) says otherwise. @returns as cm_dec_ts_int(). */
int cm_dec_date_int(const cm_decode_opts_t *o, const char *semantic, int64_t v,
                    const char *path, int64_t *days, char *errstr,
                    size_t errstr_size);

/* A date as text: "YYYY-MM-DD", or with an offset as IsoDate writes it
 * ("2017-09-15Z"). @returns 0 or -1. */
int cm_dec_date_text(const char *s, int64_t *days);

/* A decimal integer written as text ("42", "-7"): what a connector with
 * decimal.handling.mode=string, or its documentation, prints for a number.
 * @returns 0, or -1 if @p s[0..len) is not one that fits in int64. */
int cm_dec_int_text(const char *s, size_t len, int64_t *out);

/* An LSN written as text: decimal, or PostgreSQL's "X/Y" (hex). */
int cm_dec_lsn_text(const char *s, size_t len, int64_t *out);

/* The reason for a flattened row without __lsn. */
#define CM_DEC_FLAT_NO_LSN                                                     \
  "__lsn: missing: a flattened event (ExtractNewRecordState) carries no "      \
  "stream position unless its add.fields has lsn, and cannot be ordered"

/* The reason for an event without a position (source.lsn): an
 * incremental snapshot read gets its own. */
int cm_dec_no_lsn(const cm_event_t *ev, char *errstr, size_t errstr_size);

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

/* An Avro value: Debezium's envelope, or a flattened row, into @p ev
 * (decode_avro.c); @p topic names the table of a flattened row that does
 * not name it itself. */
int cm_dec_avro_value(const cm_decode_opts_t *opts, const char *topic,
                      const void *key, size_t key_len, const void *value,
                      size_t value_len, cm_event_t *ev, char *errstr,
                      size_t errstr_size);

/* The table name of a flattened row (ExtractNewRecordState) without
 * __table: from its schema's name ("legacy.public.User.Value") if it has
 * one, else from the topic ("legacy.public.User"); written into @p buf. */
const char *cm_dec_flat_table_name(const char *schema_name, const char *topic,
                                   char *buf, size_t size);

#endif
