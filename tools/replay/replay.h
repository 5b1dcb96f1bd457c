/*
 * replay.h — the parts of clinicmig-replay, shared between its files.
 *
 * NOTES
 * clinicmig-replay publishes onto the replay topic, in the formats of
 * tools/replay/README.md, what the workers must see again: a snapshot of
 * the legacy tables with range markers (db mode, db.c and emit.c), dead
 * letters (dlq mode) or a range of a CDC topic (topic mode, both in
 * read.c). args.c parses the command line into rp_opts_t; kafka.c holds
 * the librdkafka configuration, metadata and the capture of librdkafka's
 * log; out.c is the producer every mode publishes through, with its rate
 * limit and delivery accounting; emit_avro.c writes db mode's values in
 * Avro when --output-format avro says so.
 *
 * Calls return 0 or a negative cm_err_t with a one-line reason in errstr:
 * CM_ERR_CONFIG for a bad argument (exit 2), anything else for a failure
 * at run time (exit 1). Nothing here calls exit(). No message ever holds
 * a column value: ids, counts, table and topic names only.
 */
#ifndef RP_REPLAY_H
#define RP_REPLAY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_event.h"
#include "clinicmig/cm_text.h"

#define RP_NAME "clinicmig-replay"
#define RP_EXIT_FAIL 1
#define RP_EXIT_USAGE 2

/** Longest errstr the tool writes. */
#define RP_ERRSTR_MAX 1024

/** Seconds between progress lines. */
#define RP_PROGRESS_S 2.0

typedef enum rp_mode_e {
  RP_MODE_NONE = 0,
  RP_MODE_DB,
  RP_MODE_DLQ,
  RP_MODE_TOPIC
} rp_mode_t;

/** A librdkafka property given as -X kafka.KEY=VALUE (both owned). */
typedef struct rp_prop_s {
  char *key;
  char *value;
} rp_prop_t;

/** The parsed command line; strings point into argv unless said. */
typedef struct rp_opts_s {
  rp_mode_t mode;
  int help, quiet;
  const char *brokers;
  const char *topic_replay;
  rp_prop_t *props; /**< owned: rp_opts_free() */
  int prop_cnt;
  double rate; /**< messages (db: rows) per second; 0: no limit */
  /* db */
  const char *conninfo, *topic_prefix, *schema;
  int table[CM_TABLE__CNT]; /**< 1: replay this table */
  int64_t *clinics;         /**< owned; NULL: every clinic */
  int clinic_cnt;
  int has_ids;
  int64_t id_from, id_to; /**< inclusive */
  int chunk_rows;
  /* dlq */
  const char *topic_dlq, *reason, *source_topic;
  /* dlq and topic: message timestamps, ms since the epoch */
  int has_since, has_until;
  int64_t since_ms, until_ms; /**< until is exclusive */
  /* topic */
  const char *topic;
  int32_t *partitions; /**< owned; NULL: every partition */
  int partition_cnt;
  int has_from, has_to;
  int64_t from_offset, to_offset; /**< to is exclusive */
  /* every mode; only db writes messages of its own (README.md, "Output") */
  int avro; /**< --output-format avro */
  const char *registry_url, *registry_auth, *registry_ca;
} rp_opts_t;

/* ---- args.c -------------------------------------------------------------- */

/**
 * @brief Parses the command line into @p o (zeroed first).
 * @returns 0, or CM_ERR_CONFIG / CM_ERR_NOMEM with the reason in errstr.
 *          @p o is to be freed with rp_opts_free() either way.
 */
int rp_parse_args(int argc, char **argv, rp_opts_t *o, char *errstr,
                  size_t errstr_size);

void rp_opts_free(rp_opts_t *o);

/** @returns the usage text of @p mode (RP_MODE_NONE: the whole tool). */
const char *rp_usage(rp_mode_t mode);

/* ---- kafka.c ------------------------------------------------------------- */

/**
 * @brief A librdkafka configuration: bootstrap servers, every -X
 *        property, a client.id, and a log callback that keeps
 *        librdkafka's last error for rp_kafka_last_error() instead of
 *        printing it (printing all of it when -X kafka.debug is given).
 * @returns the configuration, for rd_kafka_new() or to destroy, or NULL
 *          with the property librdkafka refused in errstr.
 */
rd_kafka_conf_t *rp_kafka_conf(const rp_opts_t *o, char *errstr,
                               size_t errstr_size);

/** @brief Writes librdkafka's last logged error ("" if none) into buf. */
void rp_kafka_last_error(char *buf, size_t size);

/**
 * @brief Looks @p topic up in the cluster's metadata (a listing of every
 *        topic, which never creates one).
 * @param partitions  optional; set to the topic's partition count.
 * @returns 0; CM_ERR_BAD_INPUT if the topic does not exist; CM_ERR_RETRY
 *          if the cluster did not answer. The reason is in errstr.
 */
int rp_kafka_topic(rd_kafka_t *rk, const char *topic, int *partitions,
                   char *errstr, size_t errstr_size);

/** @returns seconds on a monotonic clock. */
double rp_now_s(void);

/** @returns milliseconds since the epoch. */
int64_t rp_wall_ms(void);

/* ---- out.c: the producer ------------------------------------------------- */

typedef struct rp_out_s rp_out_t;

/**
 * @brief The producer to the replay topic: enable.idempotence=true,
 *        partitioner=murmur2_random, a delivery report for each message;
 *        checks that the replay topic exists.
 * @returns the producer, or NULL with the reason in errstr and its code in
 *          *err.
 */
rp_out_t *rp_out_new(const rp_opts_t *o, int *err, char *errstr,
                     size_t errstr_size);

/** @brief Flushes what can still be delivered (up to 10 s) and frees. */
void rp_out_destroy(rp_out_t *out);

/**
 * @brief Queues one message to the replay topic (key and value copied),
 *        with the header clinicmig.origin = @p origin and, if not NULL,
 *        clinicmig.origin.position = @p position.
 * @param counted  1: the message takes a token of --rate first.
 * @returns 0, or CM_ERR_RETRY when a delivery has failed already or the
 *          message could not be queued (reason in errstr).
 */
int rp_out_send(rp_out_t *out, const void *key, size_t key_len,
                const void *value, size_t value_len, const char *origin,
                const char *position, int counted, char *errstr,
                size_t errstr_size);

/** @brief Serves delivery reports without waiting. */
void rp_out_poll(rp_out_t *out);

/**
 * @brief Waits until every queued message is acknowledged or has failed.
 * @returns 0 if all were acknowledged, else CM_ERR_RETRY with
 *          "N messages not acknowledged by the cluster: <first error>".
 */
int rp_out_finish(rp_out_t *out, char *errstr, size_t errstr_size);

/** @returns 1 once a delivery has failed. */
int rp_out_failed(const rp_out_t *out);

/* ---- emit.c: db mode's messages ------------------------------------------ */

/** The snapshot every message of a db run names (source.*). */
typedef struct rp_snap_s {
  const char *name;   /**< source.name: the topic prefix */
  const char *db;     /**< source.db: the database name */
  const char *schema; /**< source.schema */
  const char *txid_snapshot;
  int64_t lsn;
  int64_t ts_ms; /**< source.ts_ms: when the snapshot was taken */
} rp_snap_t;

/** Sorted, disjoint, non-adjacent inclusive runs of ids. */
typedef struct rp_runs_s {
  int64_t (*r)[2];
  int n, cap;
} rp_runs_t;

/** @brief Adds @p id, not below the last one added; @returns 0 or -1. */
int rp_runs_add(rp_runs_t *runs, int64_t id);
void rp_runs_free(rp_runs_t *runs);

/**
 * @brief Writes the source object of @p table's rows (@p marker 0) or
 *        range markers (1) into @p b, once per table and run.
 */
void rp_emit_source(cm_text_t *b, const rp_snap_t *snap, cm_table_t table,
                    int marker);

/**
 * @brief The key {"id":N} and the Debezium read event of row @p row of
 *        @p res, whose columns are the table's (cm_table_columns) as
 *        db.c selects them.
 * @param source  the table's source object (rp_emit_source).
 */
void rp_emit_row(cm_text_t *key, cm_text_t *val, const char *source,
                 cm_table_t table, const PGresult *res, int row);

/** @brief The key and value of a range marker. */
void rp_emit_marker(cm_text_t *key, cm_text_t *val, const char *source,
                    cm_table_t table, int64_t first, int64_t last,
                    const rp_runs_t *present);

/** @brief The key of a row, {"id":N}, alone (for the Avro output). */
void rp_emit_row_key(cm_text_t *key, const PGresult *res, int row);

/** @brief The key of a range marker alone (for the Avro output). */
void rp_emit_marker_key(cm_text_t *key, cm_table_t table, int64_t first,
                        int64_t last);

/* ---- emit_avro.c: db mode's values in Avro ------------------------------- */

typedef struct rp_avro_s rp_avro_t;

/**
 * @brief The Avro writer of the replay topic's values: schemas/replay.avsc
 *        (compiled in), registered in the registry of
 *        --schema-registry-url as subject `<topic-replay>-value` here,
 *        before anything is read.
 * @returns the writer, or NULL with the reason in errstr and its code in
 *          *err: CM_ERR_CONFIG for options the registry client refuses,
 *          else a failure at run time (the registry cannot be reached or
 *          refuses the schema).
 */
rp_avro_t *rp_avro_new(const rp_opts_t *o, int *err, char *errstr,
                       size_t errstr_size);

void rp_avro_destroy(rp_avro_t *a);

/**
 * @brief The value of row @p row of @p res (the table's columns, as db.c
 *        selects them) in Confluent's wire format, filled from the
 *        result's text as PostgreSQL gave it (ids are int8).
 * @param out  set to a malloc()ed buffer of *out_len bytes: free() it.
 * @returns 0 or a cm_err_t with the reason (no column value) in errstr.
 */
int rp_avro_row(rp_avro_t *a, const rp_snap_t *snap, cm_table_t table,
                const PGresult *res, int row, void **out, size_t *out_len,
                char *errstr, size_t errstr_size);

/** @brief The value of a range marker in Confluent's wire format. */
int rp_avro_marker(rp_avro_t *a, const rp_snap_t *snap, cm_table_t table,
                   int64_t first, int64_t last, const rp_runs_t *present,
                   void **out, size_t *out_len, char *errstr,
                   size_t errstr_size);

/* ---- db.c and read.c: the modes ------------------------------------------ */

/** Set by SIGINT / SIGTERM: the modes stop reading and flush. */
extern volatile sig_atomic_t rp_stop;

/**
 * @brief db mode: one snapshot of the selected legacy tables, rows and
 *        range markers (README.md, "db mode"); waits for every
 *        acknowledgement and prints the summary line.
 * @returns 0 or a cm_err_t with the reason in errstr.
 */
int rp_db_run(const rp_opts_t *o, rp_out_t *out, char *errstr,
              size_t errstr_size);

/** @brief dlq and topic modes (README.md, "dlq mode", "topic mode"). */
int rp_read_run(const rp_opts_t *o, rp_out_t *out, char *errstr,
                size_t errstr_size);

#endif
