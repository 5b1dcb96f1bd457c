/**
 * @file cm_event.h
 * @brief A decoded change event of one legacy row, and the decoder that
 *        makes it from a Kafka message in Debezium's format.
 *
 * NOTES
 * The decoder is the only place that knows Debezium's wire forms: the JSON
 * converter with and without `schemas.enable` (a `{schema, payload}` wrapper),
 * its envelope (`before`, `after`, `source`, `op`, `ts_ms`, `transaction`),
 * its semantic temporal types and its placeholder for unchanged TOASTed
 * values, rows flattened by ExtractNewRecordState, heartbeats; and its Avro
 * converter's envelope in Confluent's wire format, read with the writer
 * schema of each message (cm_schemas.h). A temporal number without a
 * semantic type is read in the unit the connector's time.precision.mode
 * and the legacy column type give (cm_decode_opts_t; docs/design.md §1.2
 * lists every shape). Everything downstream (mirror, derive,
 * clinicmig-decode) sees only cm_event_t, typed by the legacy table's
 * columns (cm_catalog.h).
 */
#ifndef CM_EVENT_H
#define CM_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "clinicmig/cm_catalog.h"
#include "clinicmig/cm_txsnap.h"

/** Debezium's `op`, plus the kinds of message that are not row changes. */
typedef enum cm_op_e {
  CM_OP_CREATE = 'c',
  CM_OP_UPDATE = 'u',
  CM_OP_DELETE = 'd',
  CM_OP_READ = 'r',      /**< snapshot read */
  CM_OP_TRUNCATE = 't',  /**< never applied: dead-lettered by the worker */
  CM_OP_MESSAGE = 'm',   /**< logical decoding message: skipped, counted */
  CM_OP_TXMETA = 'x',    /**< transaction metadata (BEGIN/END): skipped */
  CM_OP_TOMBSTONE = 'T', /**< null value after a delete: skipped */
  CM_OP_RANGE = 'R',     /**< clinicmig-replay's range marker: the ids a
                              snapshot holds in a key range */
  CM_OP_HEARTBEAT = 'H', /**< Debezium's heartbeat ({ts_ms}): skipped */
} cm_op_t;

/** Debezium's `source.snapshot`. */
typedef enum cm_snapshot_e {
  CM_SNAP_FALSE = 0,
  CM_SNAP_TRUE,
  CM_SNAP_FIRST,
  CM_SNAP_LAST,
  CM_SNAP_INCREMENTAL,
  CM_SNAP_OTHER, /**< a newer value we do not know; treated as a snapshot */
} cm_snapshot_t;

typedef enum cm_val_kind_e {
  CM_VAL_ABSENT = 0,  /**< not in the row image */
  CM_VAL_NULL,        /**< SQL NULL */
  CM_VAL_INT,         /**< .i */
  CM_VAL_BOOL,        /**< .i is 0 or 1 */
  CM_VAL_TEXT,        /**< .s, NUL-terminated, owned by the event */
  CM_VAL_DATE,        /**< .i: days since 1970-01-01 */
  CM_VAL_TIMESTAMP,   /**< .i: microseconds since 1970-01-01T00:00:00Z */
  CM_VAL_UNAVAILABLE, /**< Debezium's unchanged-TOAST placeholder */
} cm_val_kind_t;

typedef struct cm_value_s {
  cm_val_kind_t kind;
  int64_t i;
  char *s;
} cm_value_t;

/**
 * A decoded event. Row images are indexed by the table's column enum
 * (CM_USER_*, ...). Strings are owned by the event: release with
 * cm_event_clear().
 */
typedef struct cm_event_s {
  cm_table_t table;
  cm_op_t op;
  int64_t key; /**< primary key, from the Kafka message key */
  int has_lsn; /**< 1 if source.lsn is present */
  int64_t lsn; /**< source.lsn */
  int has_tx_id;
  int64_t tx_id;        /**< source.txId (a 32-bit xid as Debezium sends it) */
  int64_t ts_ms;        /**< envelope ts_ms (0 if absent) */
  int64_t source_ts_ms; /**< source.ts_ms (0 if absent) */
  cm_snapshot_t snapshot;
  int has_txsnap;      /**< source.txid_snapshot: a clinicmig-replay row,
                            ordered by visibility (cm_txsnap.h) */
  cm_txsnap_t txsnap;  /**< owned */
  int64_t range_first; /**< CM_OP_RANGE: the key range, inclusive */
  int64_t range_last;
  int n_runs;    /**< CM_OP_RANGE: ids present, as inclusive runs */
  int64_t *runs; /**< 2 * n_runs bounds, sorted, owned */
  int has_before;
  int has_after;
  cm_value_t before[CM_MAX_COLS];
  cm_value_t after[CM_MAX_COLS];
} cm_event_t;

/** The value placeholder Debezium writes for an unchanged TOASTed column. */
#define CM_DEBEZIUM_UNAVAILABLE "__debezium_unavailable_value"

/** Avro writer schemas by id (cm_schemas.h). */
typedef struct cm_schemas_s cm_schemas_t;

/**
 * Debezium's `time.precision.mode`, as the connector is configured: with
 * the legacy type of a column (cm_coltypes_t) it fixes the unit of a
 * temporal number that carries no semantic type (docs/design.md §1.2).
 */
typedef enum cm_time_mode_e {
  CM_TIME_ADAPTIVE_TIME_MICROSECONDS = 0, /**< deploy/debezium's setting */
  CM_TIME_ADAPTIVE,                       /**< Debezium's default */
  CM_TIME_CONNECT,      /**< Kafka Connect's types: always milliseconds */
  CM_TIME_MICROSECONDS, /**< every timestamp in µs */
  CM_TIME_NANOSECONDS,  /**< every timestamp in ns */
  CM_TIME_ISOSTRING,    /**< ISO-8601 text: no temporal numbers */
} cm_time_mode_t;

/** @brief Reads a mode's name ("adaptive", ...); 0, or -1 if unknown. */
int cm_time_mode_parse(const char *s, cm_time_mode_t *out);

/** @returns the mode's name as the connector spells it. */
const char *cm_time_mode_name(cm_time_mode_t mode);

/** What the decoder needs besides the message. */
typedef struct cm_decode_opts_s {
  cm_schemas_t *schemas;         /**< Avro writer schemas, or NULL */
  cm_time_mode_t time_mode;      /**< the connector's time.precision.mode */
  const cm_coltypes_t *coltypes; /**< legacy column types; NULL: all
                                      timestamps timestamptz */
} cm_decode_opts_t;

/** Largest message key or value the decoder accepts (bytes). */
#define CM_EVENT_MAX_BYTES (4 * 1024 * 1024)

/**
 * @brief Decodes one Kafka message into @p ev.
 *
 * @param topic    the topic it was read from (used to name the table of a
 *                 tombstone, whose value is empty).
 * @param key      message key bytes, or NULL if the message has no key.
 * @param value    message value bytes, or NULL for a tombstone.
 *
 * @returns CM_OK, or CM_ERR_BAD_INPUT / CM_ERR_TOO_LARGE with a one-line
 *          reason in @p errstr (this text is the dead-letter reason), or
 *          CM_ERR_NOMEM. On error @p ev holds nothing to free.
 *
 * @remark The decoder never crashes on input: every byte string yields
 *         either an event or a reason. Avro messages are refused (bad
 *         input): they need cm_event_decode2() and a schema source.
 */
int cm_event_decode(const char *topic, const void *key, size_t key_len,
                    const void *value, size_t value_len, cm_event_t *ev,
                    char *errstr, size_t errstr_size);

/**
 * @brief Decodes one Kafka message in either format into @p ev.
 *
 * The key and the value are each JSON, or Avro in Confluent's wire format
 * (byte 0, a 4-byte big-endian schema id, Avro binary), told apart by
 * their first byte (docs/design.md §1.2).
 *
 * @param schemas  optional: the writer schemas of Avro messages; without
 *                 it an Avro key or value is bad input.
 * @returns as cm_event_decode(), and CM_ERR_RETRY when the schema source
 *          cannot answer for now (a registry that is down or slow): the
 *          message is not bad, decode it again later.
 */
int cm_event_decode2(const char *topic, const void *key, size_t key_len,
                     const void *value, size_t value_len, cm_schemas_t *schemas,
                     cm_event_t *ev, char *errstr, size_t errstr_size);

/**
 * @brief Decodes one Kafka message in either format into @p ev, reading
 *        temporal numbers without a semantic type as @p opts says.
 *
 * cm_event_decode2() is this with the schema source and the defaults
 * (adaptive_time_microseconds, every timestamp column timestamptz).
 * @param opts  NULL: the defaults, without a schema source.
 * @returns as cm_event_decode2().
 */
int cm_event_decode_opts(const char *topic, const void *key, size_t key_len,
                         const void *value, size_t value_len,
                         const cm_decode_opts_t *opts, cm_event_t *ev,
                         char *errstr, size_t errstr_size);

/** @brief Frees the strings an event owns and zeroes it. */
void cm_event_clear(cm_event_t *ev);

/** What the worker does with a decoded event. */
typedef enum cm_disposition_e {
  CM_DISP_APPLY = 0,   /**< a row change of a migrated table */
  CM_DISP_SKIP,        /**< not a row change to apply: counted, skipped */
  CM_DISP_DEAD_LETTER, /**< never applied silently: to the dead-letter topic */
} cm_disposition_t;

/**
 * @brief Sorts a decoded event: c/u/d/r of User, Patient and Appointment and
 *        range markers of those tables are applied; tombstones, logical
 * decoding messages, transaction metadata, heartbeats and Clinic rows are
 * skipped; a truncate is dead-lettered.
 * @param reason  optional; set to a static one-line reason for SKIP and
 *                DEAD_LETTER ("tombstone", "truncate is never applied"),
 *                NULL for APPLY.
 */
cm_disposition_t cm_event_disposition(const cm_event_t *ev,
                                      const char **reason);

/**
 * @brief The event as a JSON object (for clinicmig-decode and logs of
 *        record shapes): table, op, key, source position, snapshot, and
 *        the typed column values of before/after (dates as "YYYY-MM-DD",
 *        timestamps as ISO-8601 UTC with microseconds).
 * @returns a new cJSON object the caller frees with cJSON_Delete, or NULL.
 */
cJSON *cm_event_to_json(const cm_event_t *ev);

#endif
