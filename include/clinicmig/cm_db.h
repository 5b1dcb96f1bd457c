/**
 * @file cm_db.h
 * @brief The worker's PostgreSQL connection: reconnect with backoff,
 *        statements with errors sorted by what to do, and migrations.
 */
#ifndef CM_DB_H
#define CM_DB_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/** One versioned migration, embedded from schemas/migrations/. */
typedef struct cm_migration_s {
  int version;
  const char *name;
  const char *sql; /**< with @cm@ / @v2@ standing for the schema names */
} cm_migration_t;

/** The embedded migrations, ordered, ended by a {0, NULL, NULL} entry. */
extern const cm_migration_t cm_migrations[];

typedef struct cm_db_s cm_db_t;

/**
 * @brief Creates a handle; does not connect.
 * @param running  while *running is non-zero the handle keeps retrying a
 *                 lost connection; when it drops to 0 retries stop.
 */
cm_db_t *cm_db_new(const char *conninfo, const char *schema_book,
                   const char *schema_domain, int retry_max_ms,
                   volatile sig_atomic_t *running);

void cm_db_destroy(cm_db_t *db);

/**
 * @brief Connects (or reconnects), retrying with exponential backoff
 *        until connected or *running drops to 0.
 * @returns 0, or CM_ERR_RETRY if stopped before a connection was made.
 */
int cm_db_connect(cm_db_t *db);

/** @returns the live connection (NULL if none). */
PGconn *cm_db_conn(cm_db_t *db);

/**
 * @brief Told after every round trip to the server (a statement, a
 *        connection attempt): @p ok is 1 when the server answered, even
 *        with an error, 0 when the connection is gone or none was made.
 */
typedef void (*cm_db_observer_t)(void *opaque, int ok);

/** @brief Sets the observer (NULL: none); called on the caller's thread. */
void cm_db_set_observer(cm_db_t *db, cm_db_observer_t fn, void *opaque);

/**
 * @brief One cheap round trip (`SELECT 1`), or, without a connection, one
 *        connection attempt; never waits or retries. For an idle worker
 *        to notice a lost database (docs/observability.md, /readyz).
 * @returns 0, or CM_ERR_RETRY.
 */
int cm_db_ping(cm_db_t *db);

/**
 * @brief Runs one statement with text parameters.
 * @param res  if non-NULL, receives the result on success (caller PQclear).
 * @returns 0; CM_ERR_RETRY (connection lost, serialization failure,
 *          deadlock: roll back and run the transaction again);
 *          CM_ERR_BAD_INPUT (the data was refused: a value out of range
 *          or past a limit, a constraint); CM_ERR_FATAL (anything else:
 *          a bug or a schema out of step). The reason is in @p errstr: SQLSTATE and the
 *          server's primary message with quoted values removed, so that
 *          no data value reaches a log.
 */
int cm_db_exec(cm_db_t *db, const char *sql, int nparams,
               const char *const *params, PGresult **res, char *errstr,
               size_t errstr_size);

/** @brief Runs a statement of no parameters whose result is not needed. */
int cm_db_cmd(cm_db_t *db, const char *sql, char *errstr, size_t errstr_size);

/**
 * @brief Expands @cm@ and @v2@ in @p tmpl into the configured schema names.
 * @returns a new string the caller frees, or NULL when out of memory.
 */
char *cm_db_expand(const cm_db_t *db, const char *tmpl);

/**
 * @brief cm_db_expand() of each of @p n templates into @p out.
 * @returns 0, or CM_ERR_NOMEM with every out[i] freed and NULL.
 */
int cm_db_expand_all(const cm_db_t *db, const char *const *tmpl, char **out,
                     int n);

/** @brief Frees the @p n strings of cm_db_expand_all() (NULL-safe). */
void cm_db_free_all(char **s, int n);

/**
 * @brief A PostgreSQL array literal of integers ("{1,2,3}").
 * @returns a new string the caller frees, or NULL when out of memory.
 */
char *cm_db_int_array(const int64_t *v, int n);

/**
 * @brief A PostgreSQL array literal of texts, each quoted and escaped.
 * @param skip  leading bytes of every element to leave out (a key prefix).
 * @returns a new string the caller frees, or NULL when out of memory.
 */
char *cm_db_text_array(char *const *v, int n, size_t skip);

/**
 * @brief Creates the schemas and applies the embedded migrations that are
 *        not yet recorded in <bookkeeping>.schema_version, each in its own
 *        transaction, under an advisory lock so that workers starting
 *        together apply each migration once. Running it again changes
 *        nothing. A database whose recorded version is newer than this
 *        binary knows is refused.
 * @returns 0, CM_ERR_RETRY, or CM_ERR_FATAL with the reason.
 */
int cm_db_migrate(cm_db_t *db, char *errstr, size_t errstr_size);

#endif
