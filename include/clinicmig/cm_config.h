/**
 * @file cm_config.h
 * @brief The worker's configuration: file, environment, flags.
 *
 * NOTES
 * Every option has one key (`batch.max.events`). It can be set in a file of
 * `key = value` lines, in the environment as CLINICMIG_<KEY> with dots as
 * underscores (CLINICMIG_BATCH_MAX_EVENTS), and on the command line as
 * `--batch-max-events N` or `-X key=value`. Flags win over the environment,
 * which wins over the file. Keys under `kafka.` are passed to librdkafka
 * as they are (minus the prefix).
 */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include <stddef.h>

#include "clinicmig/cm_catalog.h"
#include "clinicmig/cm_event.h"

typedef enum cm_match_e { CM_MATCH_LOOSE = 0, CM_MATCH_STRICT } cm_match_t;

/** How an output stream is written (docs/observability.md §2). */
typedef enum cm_format_e { CM_FORMAT_JSON = 0, CM_FORMAT_AVRO } cm_format_t;

/** A librdkafka property passed through. */
typedef struct cm_kv_s {
  char *key;
  char *value;
} cm_kv_t;

typedef struct cm_config_s {
  char *db_conninfo;   /**< libpq connection string */
  char *group_id;      /**< consumer group */
  char *topic_prefix;  /**< Debezium topic.prefix, e.g. "legacy" */
  char *source_schema; /**< legacy schema in topic names, "public" */
  char *topic_replay;
  char *topic_dlq;
  char *topic_progress;        /**< progress events (docs/observability.md) */
  cm_format_t progress_format; /**< json, or avro (needs the registry) */
  int progress_interval_ms;
  char *http_listen;   /**< ADDR:PORT of the endpoints; "": none */
  char *schema_domain; /**< "v2" */
  char *schema_book;   /**< "clinicmig" */
  char *phone_region;  /**< "RU" */
  cm_match_t patients_match;
  int batch_max_events;
  int batch_max_ms;
  int appointments_wait_ms; /**< longest pause of Appointment partitions
                               behind a User/Patient backlog; 0: none */
  int db_retry_max_ms; /**< cap of the reconnect backoff */
  int log_level;
  char *worker_id;
  char *schema_registry_url;  /**< Avro writer schemas by id, or "" */
  char *schema_registry_auth; /**< "user:password", or "" */
  char *schema_registry_ca;   /**< CA file for https, or "" */
  int schema_registry_timeout_ms;
  char *schema_dir; /**< directory of <id>.avsc files, or "" */
  cm_kv_t *kafka;   /**< kafka.* properties, without the prefix */
  int kafka_cnt;
  /** the connector's time.precision.mode, mirrored (docs/design.md §1.2) */
  cm_time_mode_t time_precision_mode;
  /** the legacy timestamp columns that are not timestamptz */
  cm_coltypes_t legacy_column_types;
} cm_config_t;

/** @brief Fills @p conf with the defaults. */
void cm_config_defaults(cm_config_t *conf);

/**
 * @brief Sets one option by key.
 * @returns 0, or CM_ERR_CONFIG with "key: reason" in @p errstr.
 */
int cm_config_set(cm_config_t *conf, const char *key, const char *value,
                  char *errstr, size_t errstr_size);

/**
 * @brief Reads a file of `key = value` lines ('#' starts a comment).
 * @returns 0, or CM_ERR_CONFIG with "FILE:LINE: reason" in @p errstr.
 */
int cm_config_load_file(cm_config_t *conf, const char *path, char *errstr,
                        size_t errstr_size);

/**
 * @brief Applies CLINICMIG_* variables of @p envp.
 * @returns 0, or CM_ERR_CONFIG with "environment VAR: reason".
 */
int cm_config_load_env(cm_config_t *conf, char **envp, char *errstr,
                       size_t errstr_size);

/**
 * @brief Parses the command line (after the program name). Sets
 *        *want_help / *config_path when seen; applies other flags.
 *
 * The caller parses twice: once to find --config, then, after file and
 * environment, again to let flags win.
 * @returns 0, or CM_ERR_CONFIG with "flag: reason".
 */
int cm_config_parse_args(cm_config_t *conf, int argc, char **argv,
                         int *want_help, const char **config_path, char *errstr,
                         size_t errstr_size);

/** @brief Checks options that depend on each other. */
int cm_config_validate(const cm_config_t *conf, char *errstr,
                       size_t errstr_size);

/** @returns the value of librdkafka property @p key (without the
 *  `kafka.` prefix) as configured, or NULL. */
const char *cm_config_kafka_get(const cm_config_t *conf, const char *key);

/** @brief Prints the option reference (for --help). */
void cm_config_print_help(const char *prog);

/** @brief Frees what @p conf owns. */
void cm_config_free(cm_config_t *conf);

#endif
