/*
 * db.c — the worker's PostgreSQL connection.
 *
 * NOTES
 * The worker holds one connection. Whatever goes wrong with it is sorted
 * into three kinds (see cm_db_exec): retry the transaction, refuse the
 * data, or stop. A lost connection is never a crash: cm_db_connect() waits
 * with exponential backoff until the server is back or the worker is asked
 * to stop. Sessions run in UTC with ISO dates so that text values read
 * back from the mirror parse the same way they were written.
 */
#include "clinicmig/cm_db.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_log.h"

struct cm_db_s {
  char *conninfo;
  char *book;
  char *domain;
  int retry_max_ms;
  volatile sig_atomic_t *running;
  PGconn *conn;
  cm_db_observer_t observer; /* told of every round trip (readiness) */
  void *observer_opaque;
};

/* A lock id all workers agree on for migrations: "clinicmig" in ASCII. */
#define CM_MIGRATION_LOCK 0x636c696e69636dLL

cm_db_t *cm_db_new(const char *conninfo, const char *schema_book,
                   const char *schema_domain, int retry_max_ms,
                   volatile sig_atomic_t *running) {
  cm_db_t *db = calloc(1, sizeof(*db));

  if (!db)
    return NULL;
  db->conninfo = strdup(conninfo);
  db->book = strdup(schema_book);
  db->domain = strdup(schema_domain);
  db->retry_max_ms = retry_max_ms;
  db->running = running;
  if (!db->conninfo || !db->book || !db->domain) {
    cm_db_destroy(db);
    return NULL;
  }
  return db;
}

void cm_db_destroy(cm_db_t *db) {
  if (!db)
    return;
  if (db->conn)
    PQfinish(db->conn);
  free(db->conninfo);
  free(db->book);
  free(db->domain);
  free(db);
}

PGconn *cm_db_conn(cm_db_t *db) {
  return db->conn;
}

void cm_db_set_observer(cm_db_t *db, cm_db_observer_t fn, void *opaque) {
  db->observer = fn;
  db->observer_opaque = opaque;
}

static void observe(cm_db_t *db, int ok) {
  if (db->observer)
    db->observer(db->observer_opaque, ok);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* The first line of a libpq message, without its newline. */
static const char *first_line(const char *msg, char *buf, size_t size) {
  size_t n = strcspn(msg, "\n");

  if (n >= size)
    n = size - 1;
  memcpy(buf, msg, n);
  buf[n] = '\0';
  return buf;
}

/* Server notices ("schema ... already exists, skipping") are routine in
 * idempotent migrations: debug level, first line only. */
static void on_notice(void *arg, const char *message) {
  char line[256];

  (void)arg;
  cm_debug("database: %s", first_line(message, line, sizeof(line)));
}

/*
 * The session's settings. jit off: the worker's statements run in
 * milliseconds, and PostgreSQL's JIT compiler, which starts above a plan
 * cost and not a run time, spent up to 700 ms compiling one of them
 * (docs/performance.md §10).
 */
static int try_connect(cm_db_t *db) {
  static const char setup[] =
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD';"
      "SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3;"
      "SET jit = off; SET application_name = 'clinicmig-worker'";
  char line[512];
  PGresult *res;
  int ok;

  if (db->conn)
    PQfinish(db->conn);
  db->conn = PQconnectdb(db->conninfo);
  if (PQstatus(db->conn) != CONNECTION_OK) {
    /* libpq's message names host and port, never a password */
    cm_warn("could not connect to the database: %s",
            first_line(PQerrorMessage(db->conn), line, sizeof(line)));
    observe(db, 0);
    return -1;
  }
  PQsetNoticeProcessor(db->conn, on_notice, NULL);
  res = PQexec(db->conn, setup);
  ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  PQclear(res);
  observe(db, ok);
  return ok ? 0 : -1;
}

int cm_db_connect(cm_db_t *db) {
  int backoff = 100, attempt = 0;

  while (*db->running) {
    if (try_connect(db) == 0) {
      if (attempt > 0)
        cm_info("database connection restored after %d attempts", attempt);
      return 0;
    }
    attempt++;
    sleep_ms(backoff);
    backoff = backoff * 2 > db->retry_max_ms ? db->retry_max_ms : backoff * 2;
  }
  return CM_ERR_RETRY;
}

/* Copies a server message, blanking what stands between quotes: servers
 * quote the offending value ("invalid input syntax for type date: \"x\""),
 * and values may be personal data. */
static void scrub(const char *msg, char *out, size_t size) {
  size_t i, o = 0;
  int quoted = 0;

  for (i = 0; msg[i] && msg[i] != '\n' && o + 6 < size; i++) {
    if (msg[i] == '"') {
      quoted = !quoted;
      if (quoted) {
        memcpy(out + o, "\"…\"", 5);
        o += 5;
      }
      continue;
    }
    if (!quoted)
      out[o++] = msg[i];
  }
  out[o] = '\0';
}

/* Identifiers the server names beside its message (table, column) are
 * not data; they say where the refusal happened. */
static void where(const PGresult *r, char *out, size_t size) {
  const char *t = r ? PQresultErrorField(r, PG_DIAG_TABLE_NAME) : NULL;
  const char *c = r ? PQresultErrorField(r, PG_DIAG_COLUMN_NAME) : NULL;

  snprintf(out, size, "%s%s%s%s%s", t ? " (table " : "", t ? t : "",
           c ? (t ? ", column " : " (column ") : "", c ? c : "",
           t || c ? ")" : "");
}

static int classify(const char *state) {
  if (!state)
    return CM_ERR_RETRY; /* no SQLSTATE: the client lost the server */
  if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
      strncmp(state, "57P", 3) == 0 || strcmp(state, "40001") == 0 ||
      strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
    return CM_ERR_RETRY;
  /* data exceptions, constraint violations, values past a limit (a key
   * too large for an index): the row is refused, not the worker broken */
  if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
      strncmp(state, "54", 2) == 0)
    return CM_ERR_BAD_INPUT;
  return CM_ERR_FATAL;
}

int cm_db_exec(cm_db_t *db, const char *sql, int nparams,
               const char *const *params, PGresult **res, char *errstr,
               size_t errstr_size) {
  char msg[512], loc[160];
  const char *state;
  ExecStatusType st;
  PGresult *r;
  int err;

  if (res)
    *res = NULL;
  if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
    snprintf(errstr, errstr_size, "no database connection");
    observe(db, 0);
    return CM_ERR_RETRY;
  }
  /* PQexec takes several statements at once (migrations); parameters
   * need the extended protocol, one statement */
  r = nparams
          ? PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0)
          : PQexec(db->conn, sql);
  st = PQresultStatus(r);
  /* the server answered, even with an error: the round trip succeeded */
  observe(db, PQstatus(db->conn) == CONNECTION_OK);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (res)
      *res = r;
    else
      PQclear(r);
    return 0;
  }
  state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  err = PQstatus(db->conn) == CONNECTION_OK ? classify(state) : CM_ERR_RETRY;
  scrub(r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn), msg,
        sizeof(msg));
  where(r, loc, sizeof(loc));
  snprintf(errstr, errstr_size, "SQLSTATE %s: %s%s", state ? state : "none",
           msg, loc);
  PQclear(r);
  return err;
}

int cm_db_cmd(cm_db_t *db, const char *sql, char *errstr, size_t errstr_size) {
  return cm_db_exec(db, sql, 0, NULL, NULL, errstr, errstr_size);
}

int cm_db_ping(cm_db_t *db) {
  char ignored[256];

  if (db->conn && PQstatus(db->conn) == CONNECTION_OK &&
      cm_db_cmd(db, "SELECT 1", ignored, sizeof(ignored)) == 0)
    return 0;
  if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
    return CM_ERR_RETRY; /* answered with an error: not the connection */
  if (try_connect(db) != 0)
    return CM_ERR_RETRY;
  cm_info("database connection restored");
  return 0;
}

char *cm_db_expand(const cm_db_t *db, const char *tmpl) {
  size_t len = 0, bl = strlen(db->book), dl = strlen(db->domain);
  const char *p;
  char *out, *o;

  for (p = tmpl; *p; p++, len++)
    if (strncmp(p, "@cm@", 4) == 0 || strncmp(p, "@v2@", 4) == 0)
      len += (bl > dl ? bl : dl);
  out = malloc(len + 1);
  if (!out)
    return NULL;
  for (p = tmpl, o = out; *p;) {
    if (strncmp(p, "@cm@", 4) == 0) {
      memcpy(o, db->book, bl);
      o += bl;
      p += 4;
    } else if (strncmp(p, "@v2@", 4) == 0) {
      memcpy(o, db->domain, dl);
      o += dl;
      p += 4;
    } else {
      *o++ = *p++;
    }
  }
  *o = '\0';
  return out;
}

int cm_db_expand_all(const cm_db_t *db, const char *const *tmpl, char **out,
                     int n) {
  int i;

  for (i = 0; i < n; i++) {
    out[i] = cm_db_expand(db, tmpl[i]);
    if (!out[i]) {
      cm_db_free_all(out, i);
      return CM_ERR_NOMEM;
    }
  }
  return 0;
}

void cm_db_free_all(char **s, int n) {
  int i;

  for (i = 0; s && i < n; i++) {
    free(s[i]);
    s[i] = NULL;
  }
}

char *cm_db_int_array(const int64_t *v, int n) {
  size_t size = (size_t)n * 21 + 3, len = 1;
  char *s = malloc(size);
  int i;

  if (!s)
    return NULL;
  s[0] = '{';
  for (i = 0; i < n; i++)
    len +=
        (size_t)snprintf(s + len, size - len, "%s%" PRId64, i ? "," : "", v[i]);
  snprintf(s + len, size - len, "}");
  return s;
}

char *cm_db_text_array(char *const *v, int n, size_t skip) {
  size_t size = 3, len = 0, j;
  const char *e;
  char *s;
  int i;

  for (i = 0; i < n; i++)
    size += 2 * (strlen(v[i]) - skip) + 3;
  s = malloc(size);
  if (!s)
    return NULL;
  s[len++] = '{';
  for (i = 0; i < n; i++) {
    if (i)
      s[len++] = ',';
    s[len++] = '"';
    for (e = v[i] + skip, j = 0; e[j]; j++) {
      if (e[j] == '"' || e[j] == '\\')
        s[len++] = '\\';
      s[len++] = e[j];
    }
    s[len++] = '"';
  }
  s[len++] = '}';
  s[len] = '\0';
  return s;
}

static int migrate_one(cm_db_t *db, const cm_migration_t *m, char *errstr,
                       size_t errstr_size) {
  char ver[16], *sql, *rec;
  const char *params[2] = {ver, m->name};
  int r;

  snprintf(ver, sizeof(ver), "%d", m->version);
  sql = cm_db_expand(db, m->sql);
  rec = cm_db_expand(db, "INSERT INTO @cm@.schema_version (version, name) "
                         "VALUES ($1, $2)");
  if (!sql || !rec) {
    free(sql);
    free(rec);
    snprintf(errstr, errstr_size, "out of memory");
    return CM_ERR_NOMEM;
  }
  r = cm_db_cmd(db, "BEGIN", errstr, errstr_size);
  if (!r)
    r = cm_db_cmd(db, sql, errstr, errstr_size);
  if (!r)
    r = cm_db_exec(db, rec, 2, params, NULL, errstr, errstr_size);
  if (!r)
    r = cm_db_cmd(db, "COMMIT", errstr, errstr_size);
  if (r)
    PQclear(PQexec(db->conn, "ROLLBACK"));
  else
    cm_info("applied schema migration %04d_%s", m->version, m->name);
  free(sql);
  free(rec);
  return r;
}

static int current_version(cm_db_t *db, int *version, char *errstr,
                           size_t errstr_size) {
  char *sql = cm_db_expand(db, "SELECT coalesce(max(version), 0) "
                               "FROM @cm@.schema_version");
  PGresult *res;
  int r;

  if (!sql)
    return CM_ERR_NOMEM;
  r = cm_db_exec(db, sql, 0, NULL, &res, errstr, errstr_size);
  free(sql);
  if (r)
    return r;
  *version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return 0;
}

static int migrate_locked(cm_db_t *db, char *errstr, size_t errstr_size) {
  static const char bootstrap[] =
      "CREATE SCHEMA IF NOT EXISTS @cm@; CREATE SCHEMA IF NOT EXISTS @v2@;"
      "CREATE TABLE IF NOT EXISTS @cm@.schema_version ("
      " version integer PRIMARY KEY, name text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())";
  const cm_migration_t *m;
  char *sql = cm_db_expand(db, bootstrap);
  int r, have = 0, newest = 0;

  if (!sql)
    return CM_ERR_NOMEM;
  r = cm_db_cmd(db, sql, errstr, errstr_size);
  free(sql);
  if (!r)
    r = current_version(db, &have, errstr, errstr_size);
  for (m = cm_migrations; !r && m->sql; m++) {
    newest = m->version;
    if (m->version > have)
      r = migrate_one(db, m, errstr, errstr_size);
  }
  if (!r && have > newest) {
    snprintf(errstr, errstr_size,
             "database schema is at version %d, newer than this worker "
             "knows (%d): upgrade the worker",
             have, newest);
    r = CM_ERR_FATAL;
  }
  return r;
}

int cm_db_migrate(cm_db_t *db, char *errstr, size_t errstr_size) {
  char lock[96], unlock[96], ignored[256];
  int r;

  snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%lld)",
           CM_MIGRATION_LOCK);
  snprintf(unlock, sizeof(unlock), "SELECT pg_advisory_unlock(%lld)",
           CM_MIGRATION_LOCK);
  r = cm_db_cmd(db, lock, errstr, errstr_size);
  if (r)
    return r;
  r = migrate_locked(db, errstr, errstr_size);
  cm_db_cmd(db, unlock, ignored, sizeof(ignored));
  return r;
}
