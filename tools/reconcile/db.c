/*
 * db.c — the reconciler's connections, its leader lock and its own
 * bookkeeping.
 *
 * NOTES
 * Two connections: the target database (mirror, v2, the workers'
 * bookkeeping; always) and the legacy database (with --legacy-conninfo).
 * Both sessions read with TimeZone = UTC and DateStyle = ISO, so that a
 * row's canonical text (sql/sources.sql) is the same on both sides.
 *
 * One reconciler leads at a time: a session-level advisory lock on a key
 * of its own in the target database (docs/reconciliation.md, "One at a
 * time"). The lock goes with the session, so a leader that dies or loses
 * its connection frees it at once, and a standby takes over at its next
 * try. The reconciler's tables (state.sql) are created under the
 * workers' migration lock, so that they never race a worker's migration.
 *
 * Error texts are libpq's first line, which names relations and columns,
 * never a value; the connection string is never printed.
 */
#include "reconcile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"

/* The workers' migration lock (0x636c696e69636d, "clinicm", worker/db.c)
 * and the leader's own (0x636d7265636f6e, "cmrecon"). */
#define MIGRATION_LOCK "27985222774121325"
#define LEADER_LOCK "27986360789069678"

const rc_entity_t rc_entities[RC_ENTITY_CNT] = {
    {"doctor", "User", "mirror_user", "clinic_doctor", "global_doctor"},
    {"patient", "Patient", "mirror_patient", "clinic_patient",
     "global_patient"},
    {"appointment", "Appointment", "mirror_appointment", "appointment", NULL},
};

static const char session_sql[] =
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'";

/* The first line of libpq's message about the last failure. */
static const char *pq_error(PGconn *conn, char *buf, size_t size) {
  const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
  size_t n;

  if (strncmp(msg, "ERROR:  ", 8) == 0 || strncmp(msg, "FATAL:  ", 8) == 0)
    msg += 8;
  n = strcspn(msg, "\n");
  if (n >= size)
    n = size - 1;
  memcpy(buf, msg, n);
  buf[n] = '\0';
  return buf;
}

/* Server notices would break the one-line promise: drop them. */
static void quiet_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

int rc_db_connect(rc_db_t *db, const char *conninfo, const char *what,
                  char *errstr, size_t errstr_size) {
  const char *keys[] = {"dbname", "fallback_application_name", NULL};
  const char *vals[] = {conninfo, RC_NAME, NULL};
  char line[512];
  PGresult *res;

  rc_db_close(db);
  db->what = what;
  db->conn = PQconnectdbParams(keys, vals, 1);
  if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
    snprintf(errstr, errstr_size, "could not connect to the %s database: %s",
             what, pq_error(db->conn, line, sizeof(line)));
    rc_db_close(db);
    return CM_ERR_RETRY;
  }
  PQsetNoticeProcessor(db->conn, quiet_notice, NULL);
  res = PQexec(db->conn, session_sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    snprintf(errstr, errstr_size, "could not set up the %s session: %s", what,
             pq_error(db->conn, line, sizeof(line)));
    PQclear(res);
    rc_db_close(db);
    return CM_ERR_RETRY;
  }
  PQclear(res);
  db->ok = 1;
  return 0;
}

void rc_db_close(rc_db_t *db) {
  if (db->conn)
    PQfinish(db->conn);
  db->conn = NULL;
  db->ok = 0;
}

PGresult *rc_db_query(rc_db_t *db, const char *sql, int nparams,
                      const char *const *params, const char *what, char *errstr,
                      size_t errstr_size) {
  char line[512];
  PGresult *res;
  ExecStatusType st;
  double t0;

  if (!db->conn) {
    snprintf(errstr, errstr_size,
             "could not %s: not connected to the %s"
             " database",
             what, db->what);
    return NULL;
  }
  /* several statements (state.sql's setup) go through PQexec */
  t0 = rc_now_s();
  res = nparams == 0
            ? PQexec(db->conn, sql)
            : PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
  db->busy_s += rc_now_s() - t0;
  st = PQresultStatus(res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
    db->ok = 1;
    return res;
  }
  snprintf(errstr, errstr_size, "could not %s in the %s database: %s", what,
           db->what, pq_error(db->conn, line, sizeof(line)));
  db->ok = PQstatus(db->conn) == CONNECTION_OK;
  PQclear(res);
  return NULL;
}

int rc_db_cmd(rc_db_t *db, const char *sql, int nparams,
              const char *const *params, const char *what, char *errstr,
              size_t errstr_size) {
  PGresult *res =
      rc_db_query(db, sql, nparams, params, what, errstr, errstr_size);

  if (!res)
    return CM_ERR_RETRY;
  PQclear(res);
  return 0;
}

int rc_cell_i64(const PGresult *res, int row, int col, int64_t *v) {
  const char *s = PQgetvalue(res, row, col);
  char *end;

  if (PQgetisnull(res, row, col))
    return -1;
  errno = 0;
  *v = strtoll(s, &end, 10);
  return errno != 0 || end == s || *end != '\0' ? -1 : 0;
}

char *rc_ctx_sql(rc_ctx_t *c, const char *name, const rc_subst_t *more,
                 int more_cnt, char *errstr, size_t errstr_size) {
  rc_subst_t all[12];
  int i, n = 0;

  for (i = 0; i < 3; i++)
    all[n++] = c->subst[i];
  for (i = 0; i < more_cnt && n < 12; i++)
    all[n++] = more[i];
  return rc_sql(name, all, n, errstr, errstr_size);
}

/* Runs statement @p name of sql/ (no parameters) and @returns its first
 * cell as a boolean: 1, 0, or a negative cm_err_t. */
static int ask(rc_ctx_t *c, const char *name, char *errstr, size_t size) {
  char *sql = rc_ctx_sql(c, name, NULL, 0, errstr, size);
  PGresult *res;
  int yes;

  if (!sql)
    return CM_ERR_FATAL;
  res = rc_db_query(&c->target, sql, 0, NULL, "read the schema", errstr, size);
  free(sql);
  if (!res)
    return CM_ERR_RETRY;
  yes = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  return yes;
}

static int create_tables(rc_ctx_t *c, char *errstr, size_t size) {
  char *sql = rc_ctx_sql(c, "setup", NULL, 0, errstr, size);
  char ignored[256];
  int rc;

  if (!sql)
    return CM_ERR_FATAL;
  rc = rc_db_cmd(&c->target, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", 0,
                 NULL, "take the migration lock", errstr, size);
  if (rc == 0) {
    rc = rc_db_cmd(&c->target, sql, 0, NULL, "create the reconciler's tables",
                   errstr, size);
    rc_db_cmd(&c->target, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")", 0,
              NULL, "release the migration lock", ignored, sizeof(ignored));
  }
  free(sql);
  return rc;
}

int rc_db_setup(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  int rc = ask(c, "schema_ready", errstr, errstr_size);

  if (rc < 0)
    return rc;
  if (rc == 0) {
    snprintf(errstr, errstr_size,
             "the target database has no %s.consumer_offset or %s.appointment"
             " yet: start the workers first (they create them)",
             c->o->schema_bookkeeping, c->o->schema_domain);
    return CM_ERR_FATAL;
  }
  rc = create_tables(c, errstr, errstr_size);
  if (rc != 0)
    return rc;
  rc = ask(c, "regroup_exists", errstr, errstr_size);
  if (rc < 0)
    return rc;
  c->have_regroup = rc;
  return 0;
}

int rc_db_try_lead(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  PGresult *res =
      rc_db_query(&c->target, "SELECT pg_try_advisory_lock(" LEADER_LOCK ")", 0,
                  NULL, "try the leader lock", errstr, errstr_size);
  int got;

  if (!res)
    return CM_ERR_RETRY;
  got = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  return got;
}

int rc_db_next_pass(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  char *sql = rc_ctx_sql(c, "next_pass", NULL, 0, errstr, errstr_size);
  PGresult *res;
  int rc = 0;

  if (!sql)
    return CM_ERR_FATAL;
  res = rc_db_query(&c->target, sql, 0, NULL, "count the pass", errstr,
                    errstr_size);
  free(sql);
  if (!res)
    return CM_ERR_RETRY;
  if (rc_cell_i64(res, 0, 0, &c->pass) != 0) {
    snprintf(errstr, errstr_size, "could not count the pass: no number");
    rc = CM_ERR_FATAL;
  }
  PQclear(res);
  return rc;
}

/* {1,2,3} */
static int id_array(const int64_t *ids, int n, cm_text_t *b) {
  int i;

  cm_text_add(b, "{", 1);
  for (i = 0; i < n; i++) {
    if (i)
      cm_text_add(b, ",", 1);
    cm_text_i64(b, ids[i]);
  }
  cm_text_add(b, "}", 1);
  return b->failed ? CM_ERR_NOMEM : 0;
}

int rc_db_mark_published(rc_ctx_t *c, const char *kind, const int64_t *ids,
                         int n, char *errstr, size_t errstr_size) {
  char *sql;
  const char *params[2];
  cm_text_t arr;
  int rc;

  if (n == 0)
    return 0;
  cm_text_init(&arr, (size_t)n * 24 + 16);
  sql = rc_ctx_sql(c, "mark_published", NULL, 0, errstr, errstr_size);
  rc = sql ? id_array(ids, n, &arr) : CM_ERR_FATAL;
  if (rc == 0) {
    params[0] = kind;
    params[1] = arr.p;
    rc = rc_db_cmd(&c->target, sql, 2, params, "record what was published",
                   errstr, errstr_size);
  }
  free(sql);
  cm_text_free(&arr);
  return rc;
}

int rc_db_check_legacy(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  char name[512];
  const char *params[1] = {name};
  PGresult *res;
  int e, missing;

  for (e = 0; e < RC_ENTITY_CNT; e++) {
    snprintf(name, sizeof(name), "%s.\"%s\"", c->subst[2].value,
             rc_entities[e].table);
    res = rc_db_query(&c->legacy, "SELECT to_regclass($1) IS NULL", 1, params,
                      "look up the legacy tables", errstr, errstr_size);
    if (!res)
      return CM_ERR_RETRY;
    missing = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (missing) {
      snprintf(errstr, errstr_size,
               "table %s.\"%s\" does not exist in the legacy database",
               c->o->source_schema, rc_entities[e].table);
      return CM_ERR_FATAL;
    }
  }
  return 0;
}
