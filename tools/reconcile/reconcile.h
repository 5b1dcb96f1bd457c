/*
 * reconcile.h — the parts of clinicmig-reconcile, shared between its files.
 *
 * NOTES
 * clinicmig-reconcile checks, pass after pass, that the legacy tables, the
 * mirror and the new schema agree (docs/reconciliation.md), and publishes
 * what it finds onto the reconciliation topic. args.c parses the command
 * line into rc_opts_t; sql.c holds the statements of sql/NAME.sql, embedded
 * at build time and expanded with the schema names; db.c the connections,
 * the leader lock and the reconciler's own bookkeeping; diff.c the
 * checksum bisection that finds differing ids while reading few rows;
 * pass.c runs one pass entity by entity; extras.c the events beside the
 * checks (unresolved links, gaps, regroups, suspects); verdict.c the lag
 * and the verdicts; kafka.c the producer; http.c the metrics and health
 * endpoints; buf.c the JSON pieces the events need beyond cm_text.h.
 *
 * Calls return 0 or a negative cm_err_t with a one-line reason in errstr:
 * CM_ERR_CONFIG for a bad argument (exit 2), anything else for a failure
 * at run time. Nothing here calls exit(). Nothing printed or published
 * holds a column value: ids, counts, topic names, keyed hashes.
 */
#ifndef RC_RECONCILE_H
#define RC_RECONCILE_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_text.h"

#define RC_NAME "clinicmig-reconcile"
#define RC_EXIT_FAIL 1
#define RC_EXIT_USAGE 2
#define RC_EXIT_NOT_IN_SYNC 3

/** Longest errstr the tool writes. */
#define RC_ERRSTR_MAX 1024

/** Ids listed per list of a mismatch event. */
#define RC_IDS_MAX 100

/** Longest event the tool publishes. */
#define RC_EVENT_MAX (1 << 20)

/* ---- options ------------------------------------------------------------- */

/** A librdkafka property given as -X kafka.KEY=VALUE (both owned). */
typedef struct rc_prop_s {
  char *key;
  char *value;
} rc_prop_t;

/** The parsed command line; strings point into argv unless said. */
typedef struct rc_opts_s {
  int help, once;
  const char *conninfo, *legacy_conninfo, *brokers;
  const char *group_id, *topic_prefix, *source_schema;
  const char *schema_domain, *schema_bookkeeping;
  const char *topic_reconciliation, *topic_replay;
  const char *phone_region, *hash_secret_file, *http_listen;
  int avro; /**< --output-format avro */
  const char *registry_url, *registry_auth, *registry_ca; /**< or NULL */
  int64_t interval_ms, lag_max, hold_ms, grace_ms;
  int64_t segment_rows, suspect_members;
  double rate;      /**< legacy rows scanned per second; 0: no limit */
  rc_prop_t *props; /**< owned: rc_opts_free() */
  int prop_cnt;
  unsigned char *secret; /**< owned: the HMAC key; NULL without a file */
  size_t secret_len;
  char *http_addr; /**< owned: the address part of --http-listen */
  int http_port;
} rc_opts_t;

/**
 * @brief Parses the command line into @p o (zeroed first) and reads the
 *        hash secret file.
 * @returns 0, or CM_ERR_CONFIG / CM_ERR_NOMEM with the reason in errstr.
 *          @p o is to be freed with rc_opts_free() either way.
 */
int rc_parse_args(int argc, char **argv, rc_opts_t *o, char *errstr,
                  size_t errstr_size);

void rc_opts_free(rc_opts_t *o);

/** @returns the usage text. */
const char *rc_usage(void);

/* ---- buf.c: JSON pieces beside cm_text.h, and the clocks ------------------
 */

/** @brief Appends @p v with three decimals. */
void rc_buf_f3(cm_text_t *b, double v);
/** @brief Appends ,"key": (the comma unless right after '{'). */
void rc_buf_key(cm_text_t *b, const char *key);

/* ---- clocks -------------------------------------------------------------- */

/** @returns seconds on a monotonic clock. */
double rc_now_s(void);

/** @returns milliseconds since the epoch. */
int64_t rc_wall_ms(void);

/** @brief Writes @p ms as ISO-8601 UTC with milliseconds into @p buf. */
void rc_iso_ms(int64_t ms, char *buf, size_t size);

/** Set by SIGINT / SIGTERM: the pass stops after the step in progress. */
extern volatile sig_atomic_t rc_stop;

/** @brief Sleeps up to @p ms, returning early once rc_stop is set. */
void rc_sleep_ms(int64_t ms);

/* ---- sql.c: the statements of sql/NAME.sql ------------------------------ */

/** A placeholder and its value, for rc_sql(). */
typedef struct rc_subst_s {
  const char *name; /**< without the @s: "cm" stands for @cm@ */
  const char *value;
} rc_subst_t;

/**
 * @brief The statement named @p name (a "-- name:" section of one of the
 *        sql/NAME.sql files), with every @name@ of @p subst replaced.
 * @returns a new string (free() it), or NULL if the name is unknown, a
 *          placeholder is left, or memory ran out (reason in errstr).
 */
char *rc_sql(const char *name, const rc_subst_t *subst, int subst_cnt,
             char *errstr, size_t errstr_size);

/* ---- db.c ---------------------------------------------------------------- */

typedef struct rc_db_s {
  PGconn *conn;
  const char *what; /**< "target" or "legacy", for messages */
  int ok;           /**< the last round trip succeeded */
  double busy_s;    /**< seconds spent in statements, since the start */
} rc_db_t;

/**
 * @brief Connects, with a UTC / ISO session and server notices dropped.
 * @returns 0, or CM_ERR_RETRY with libpq's first line in errstr.
 */
int rc_db_connect(rc_db_t *db, const char *conninfo, const char *what,
                  char *errstr, size_t errstr_size);

void rc_db_close(rc_db_t *db);

/**
 * @brief Runs @p sql with text parameters.
 * @returns the result (PQclear() it) if its status is a success, else NULL
 *          with "could not <what>: <first line>" in errstr.
 */
PGresult *rc_db_query(rc_db_t *db, const char *sql, int nparams,
                      const char *const *params, const char *what, char *errstr,
                      size_t errstr_size);

/** @brief rc_db_query() for a statement whose rows are not needed. */
int rc_db_cmd(rc_db_t *db, const char *sql, int nparams,
              const char *const *params, const char *what, char *errstr,
              size_t errstr_size);

/** @brief An integer cell into *v; @returns 0, or -1 if NULL or not one. */
int rc_cell_i64(const PGresult *res, int row, int col, int64_t *v);

/* ---- entities ------------------------------------------------------------ */

typedef enum rc_entity_id_e {
  RC_DOCTOR,
  RC_PATIENT,
  RC_APPOINTMENT,
  RC_ENTITY_CNT
} rc_entity_id_t;

/** What the reconciler compares for one entity. */
typedef struct rc_entity_s {
  const char *name;   /**< doctor: the key of its events */
  const char *table;  /**< User: the legacy table and partition_stats */
  const char *mirror; /**< mirror_user */
  const char *clinic; /**< clinic_doctor: v2's clinic-level table */
  const char *global; /**< global_doctor, or NULL */
} rc_entity_t;

extern const rc_entity_t rc_entities[RC_ENTITY_CNT];

/* ---- the reconciler's state ---------------------------------------------- */

/** The verdict of one entity, carried from pass to pass. */
typedef struct rc_verdict_s {
  int known;         /**< a verdict was published already */
  int in_sync;       /**< the published value */
  int64_t since_ms;  /**< when in_sync took its current value */
  int holding;       /**< the conditions held at the last pass */
  int64_t held_from; /**< since when they have held (ms) */
} rc_verdict_t;

/** What the last pass found for one entity (metrics and verdict). */
typedef struct rc_found_s {
  int complete;          /**< every check of the entity ran */
  int64_t mismatches[2]; /**< ids, per check: legacy-mirror, mirror-v2 */
  int64_t rows_read;
} rc_found_t;

/** Metrics, shared with the HTTP thread under @c lock. */
typedef struct rc_metrics_s {
  pthread_mutex_t lock;
  int in_sync[RC_ENTITY_CNT];
  int64_t mismatches[RC_ENTITY_CNT][2];
  int64_t rows_read_total;
  double pass_seconds;
  double last_turn; /**< rc_now_s() of the main loop's last turn */
  int db_ok, leader;
} rc_metrics_t;

typedef struct rc_out_s rc_out_t;

/** A growing list of ids. */
typedef struct rc_idlist_s {
  int64_t *v;
  int n, cap;
} rc_idlist_t;

/** @brief Appends @p id; @returns 0 or CM_ERR_NOMEM. */
int rc_idlist_add(rc_idlist_t *l, int64_t id);

void rc_idlist_free(rc_idlist_t *l);

/** Everything a run holds. */
typedef struct rc_ctx_s {
  const rc_opts_t *o;
  char id[128];           /**< reconciler:<host>:<pid> minus the prefix */
  rc_subst_t subst[3];    /**< cm, v2, legacy */
  rc_db_t target, legacy; /**< legacy.conn NULL without --legacy-conninfo */
  int have_regroup;       /**< the patient_regroup table exists */
  int64_t pass;           /**< the pass number */
  rc_out_t *out;
  rc_verdict_t verdict[RC_ENTITY_CNT];
  rc_found_t found[RC_ENTITY_CNT];
  rc_metrics_t *metrics;
  /* --rate: legacy rows scanned since the pass began, and when it began */
  int64_t legacy_scanned;
  double legacy_started;
  /* offset_gap and patient_regroup rows published in this pass, recorded
   * once the cluster has acknowledged the pass's events */
  rc_idlist_t sent_gaps, sent_regroups;
} rc_ctx_t;

/** @brief Notes that the main loop turns (for /healthz). */
void rc_tick(rc_ctx_t *c);

/**
 * @brief The statement @p name of sql/, expanded for this run (@cm@,
 *        @v2@, @legacy@ and the extra placeholders of @p more).
 */
char *rc_ctx_sql(rc_ctx_t *c, const char *name, const rc_subst_t *more,
                 int more_cnt, char *errstr, size_t errstr_size);

/**
 * @brief Creates the reconciler's tables (and patient_regroup if the
 *        workers have not) under the workers' migration lock; notes
 *        whether patient_regroup exists.
 * @returns 0; CM_ERR_FATAL if the bookkeeping schema does not exist yet.
 */
int rc_db_setup(rc_ctx_t *c, char *errstr, size_t errstr_size);

/**
 * @brief Tries the leader lock (a session advisory lock).
 * @returns 1 if this session holds it, 0 if another does, or a negative
 *          cm_err_t.
 */
int rc_db_try_lead(rc_ctx_t *c, char *errstr, size_t errstr_size);

/** @brief Checks that the legacy database has the three tables. */
int rc_db_check_legacy(rc_ctx_t *c, char *errstr, size_t errstr_size);

/** @brief Increments and returns the stored pass number into c->pass. */
int rc_db_next_pass(rc_ctx_t *c, char *errstr, size_t errstr_size);

/**
 * @brief Records the rows of @p kind ("gap", "regroup") published.
 */
int rc_db_mark_published(rc_ctx_t *c, const char *kind, const int64_t *ids,
                         int n, char *errstr, size_t errstr_size);

/* ---- diff.c: checksum bisection ------------------------------------------ */

/** One side of a comparison: a connection and a row source (SQL). */
typedef struct rc_side_s {
  rc_db_t *db;
  const char *source; /**< section name in sql/sources.sql */
  int legacy;         /**< rows scanned count against --rate */
} rc_side_t;

/** Ids of one kind of difference: the first RC_IDS_MAX, and how many. */
typedef struct rc_ids_s {
  int64_t id[RC_IDS_MAX];
  int n;
  int64_t total;
} rc_ids_t;

/** What a comparison found and what it cost. */
typedef struct rc_diff_s {
  rc_ids_t missing, extra, differing;
  int64_t rows_read;      /**< rows fetched one by one, both sides */
  int64_t segments;       /**< segments checksummed on both sides */
  int64_t legacy_scanned; /**< legacy rows the queries went through */
} rc_diff_t;

/**
 * @brief Compares the rows of @p a and @p b by checksums of key segments,
 *        splitting the segments that differ, and fetches (id, md5) only
 *        for segments of at most --segment-rows rows.
 * @param est_rows  about how many rows the larger side has, to size the
 *                  top segments.
 * @returns 0 with @p d filled, or a cm_err_t with the reason in errstr.
 */
int rc_diff(rc_ctx_t *c, const rc_side_t *a, const rc_side_t *b,
            int64_t est_rows, rc_diff_t *d, char *errstr, size_t errstr_size);

/** @brief Sleeps as long as --rate asks after @p rows more legacy rows. */
void rc_throttle(rc_ctx_t *c, int64_t rows);

/* ---- kafka.c: the producer ----------------------------------------------- */

/**
 * @brief The producer to the reconciliation topic (idempotent, acks=all);
 *        checks that the reconciliation, entity and replay topics exist.
 *        With --output-format avro, also the schema source and the Avro
 *        writer (the schema is registered with the first event).
 * @returns the producer, or NULL with the reason in errstr and its code
 *          in *err.
 */
rc_out_t *rc_out_new(const rc_opts_t *o, int *err, char *errstr,
                     size_t errstr_size);

/** @brief Flushes what can still be delivered (up to 10 s) and frees. */
void rc_out_destroy(rc_out_t *out);

/**
 * @brief Queues one event (copied) keyed @p key, as JSON or, with
 *        --output-format avro, encoded by cm_avro_out.h.
 * @returns 0; CM_ERR_RETRY (the queue, or the registry cannot take the
 *          schema now); CM_ERR_BAD_INPUT (the event does not fit the
 *          schema, or the registry refuses it); CM_ERR_NOMEM.
 */
int rc_out_send(rc_out_t *out, const char *key, const cm_text_t *value,
                char *errstr, size_t errstr_size);

/**
 * @brief Waits until every queued event is acknowledged or failed.
 * @returns 0 if all were acknowledged since the last call, else
 *          CM_ERR_RETRY with the reason.
 */
int rc_out_flush(rc_out_t *out, char *errstr, size_t errstr_size);

/**
 * @brief The group's lag on @p topic: the sum over its partitions of the
 *        high watermark minus the offset stored in consumer_offset.
 * @returns 0 with *lag set, or a cm_err_t with the reason.
 */
int rc_topic_lag(rc_ctx_t *c, const char *topic, int64_t *lag, char *errstr,
                 size_t errstr_size);

/* ---- events: the common head --------------------------------------------- */

/** @brief Starts an event: {"v":1,"type":..,"ts":..,"source":..}. */
void rc_event_begin(rc_ctx_t *c, cm_text_t *b, const char *type);

/** @brief Ends the event and publishes it keyed @p key. */
int rc_event_send(rc_ctx_t *c, const char *key, cm_text_t *b, char *errstr,
                  size_t errstr_size);

/* ---- pass.c, extras.c, verdict.c ----------------------------------------- */

/**
 * @brief One pass: every entity's counts, checks and extras, then the
 *        gaps and the verdicts.
 * @returns 0, or a cm_err_t when a step failed (the target database lost,
 *          say); the pass is then incomplete.
 */
int rc_pass(rc_ctx_t *c, char *errstr, size_t errstr_size);

/** @brief unresolved (appointments) for this pass. */
int rc_unresolved(rc_ctx_t *c, char *errstr, size_t errstr_size);

/** @brief merge / split events of patient_regroup rows not yet published. */
int rc_regroups(rc_ctx_t *c, char *errstr, size_t errstr_size);

/** @brief suspect events (patients). */
int rc_suspects(rc_ctx_t *c, char *errstr, size_t errstr_size);

/** @brief gap events of offset_gap rows not yet published. */
int rc_gaps(rc_ctx_t *c, char *errstr, size_t errstr_size);

/**
 * @brief Works out and publishes every entity's verdict.
 * @returns 0, or a cm_err_t if publishing failed.
 */
int rc_verdicts(rc_ctx_t *c, char *errstr, size_t errstr_size);

/** @returns 1 if every entity's last verdict was in sync. */
int rc_all_in_sync(const rc_ctx_t *c);

/* ---- http.c -------------------------------------------------------------- */

typedef struct rc_http_s rc_http_t;

/**
 * @brief Serves /metrics, /healthz and /readyz on --http-listen from a
 *        thread of its own, reading @p m under its lock.
 * @returns the server, or NULL with the reason in errstr.
 */
rc_http_t *rc_http_start(const rc_opts_t *o, rc_metrics_t *m, char *errstr,
                         size_t errstr_size);

void rc_http_stop(rc_http_t *h);

#endif
