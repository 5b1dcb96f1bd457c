/*
 * db.c — db mode: one snapshot of the legacy tables, onto the replay
 * topic.
 *
 * NOTES
 * A backfill (docs/design.md §3.1; docs/operations.md §5: gaps, lost slots,
 * recreated topics) must give the workers rows they can order against the live
 * events, and a way to learn which rows no longer exist. So everything is read
 * in one REPEATABLE READ, READ ONLY transaction whose first statement reads
 * txid_current_snapshot() and the WAL position: that statement fixes the
 * snapshot, and every message carries both (source.txid_snapshot,
 * source.lsn), so a worker can order a replayed row by MVCC visibility.
 * After each chunk of rows comes a range marker: the ids that exist in
 * the chunk's id range, in that snapshot. The markers of a table tile the
 * requested id range (--ids, or all of int8) with no hole, so a worker
 * can delete what its mirror holds and the snapshot does not.
 *
 * Tables are read in key order through a server-side cursor, --chunk-rows
 * rows per FETCH: memory holds one chunk, whatever the table's size. To
 * know whether a full chunk is the last one (its marker then reaches the
 * upper bound of the tiling), the next chunk is fetched before the marker
 * is sent; the chunk's rows are gone by then, only its id runs are kept.
 *
 * With --output-format avro the values are written by emit_avro.c, whose
 * schema is registered before the database is even connected to; keys
 * stay JSON.
 *
 * The SELECT gives each column in its wire form: a date as days since
 * 1970-01-01, a timestamptz as ISO-8601 UTC with microseconds (to_char in
 * a session set to TimeZone=UTC, so a legacy "timestamp without time
 * zone" reads as UTC, as Debezium does). The statements are built from
 * the table catalog (cm_table_columns), the schema quoted by libpq.
 *
 * stderr gets ids, counts and table names only: the server's error text
 * is cut to its first line, which names relations and columns.
 */
#include "replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"

#define SQL_MAX 4096
#define INT8_LO INT64_MIN
#define INT8_HI INT64_MAX

static const char session_sql[] =
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'";

static const char begin_sql[] =
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

static const char snapshot_sql[] =
    "SELECT txid_current_snapshot()::text,"
    " (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_insert_lsn() END - '0/0')::bigint";

/* What one table's run has done so far. */
typedef struct tab_s {
  int64_t total; /* rows counted in the range, for the ETA */
  int64_t read, published, markers;
  cm_text_t source, marker_source;
} tab_t;

typedef struct db_s {
  const rp_opts_t *o;
  rp_out_t *out;
  PGconn *conn;
  char *schema_q; /* the schema, quoted */
  char *txid_snapshot;
  rp_snap_t snap;
  int64_t lo, hi; /* the tiling: --ids or all of int8 */
  cm_text_t key, val;
  rp_avro_t *avro; /* --output-format avro, else NULL */
  rp_runs_t runs;
  tab_t tab[CM_TABLE__CNT];
  double started, next_progress;
  char *errstr;
  size_t errstr_size;
} db_t;

static int fail(db_t *d, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(db_t *d, int rc, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(d->errstr, d->errstr_size, fmt, ap);
  va_end(ap);
  return rc;
}

/* The first line of libpq's message about the last failure. */
static const char *pq_error(db_t *d, char *buf, size_t size) {
  const char *msg = PQerrorMessage(d->conn);
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

/* An integer cell into *v; @returns 0, or -1 if NULL or not an integer. */
static int cell_i64(const PGresult *res, int row, int col, int64_t *v) {
  const char *s = PQgetvalue(res, row, col);
  char *end;

  if (PQgetisnull(res, row, col))
    return -1;
  errno = 0;
  *v = strtoll(s, &end, 10);
  return errno != 0 || end == s || *end != '\0' ? -1 : 0;
}

/* Runs @p sql, which must return @p want; @returns the result or NULL. */
static PGresult *exec(db_t *d, const char *sql, ExecStatusType want,
                      const char *what) {
  PGresult *res = PQexec(d->conn, sql);
  char line[512];

  if (PQresultStatus(res) == want)
    return res;
  fail(d, CM_ERR_FATAL, "could not %s: %s", what,
       pq_error(d, line, sizeof(line)));
  PQclear(res);
  return NULL;
}

/* Server notices would break the one-line promise: drop them. */
static void quiet_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static int connect_db(db_t *d) {
  const char *keys[] = {"dbname", "fallback_application_name", NULL};
  const char *vals[] = {d->o->conninfo, RP_NAME, NULL};
  char line[512];
  PGresult *res;

  d->conn = PQconnectdbParams(keys, vals, 1);
  if (!d->conn)
    return fail(d, CM_ERR_NOMEM, "out of memory");
  if (PQstatus(d->conn) != CONNECTION_OK)
    return fail(d, CM_ERR_FATAL, "could not connect to the legacy database: %s",
                pq_error(d, line, sizeof(line)));
  PQsetNoticeProcessor(d->conn, quiet_notice, NULL);
  res = exec(d, session_sql, PGRES_COMMAND_OK, "set up the session");
  if (!res)
    return CM_ERR_FATAL;
  PQclear(res);
  d->schema_q = PQescapeIdentifier(d->conn, d->o->schema, strlen(d->o->schema));
  if (!d->schema_q)
    return fail(d, CM_ERR_CONFIG, "--source-schema: not a valid name");
  return 0;
}

/*
 * Checks, before the transaction, that every table exists: a missing one
 * is then reported alone, not after the snapshot line.
 */
static int check_table(db_t *d, cm_table_t t) {
  char name[512], line[512];
  const char *param = name;
  PGresult *res;
  int missing;

  snprintf(name, sizeof(name), "%s.\"%s\"", d->schema_q, cm_table_name(t));
  res = PQexecParams(d->conn, "SELECT to_regclass($1) IS NULL", 1, NULL, &param,
                     NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    PQclear(res);
    return fail(d, CM_ERR_FATAL, "could not look up %s: %s", name,
                pq_error(d, line, sizeof(line)));
  }
  missing = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  if (missing)
    return fail(d, CM_ERR_FATAL,
                "table %s.\"%s\" does not exist in the legacy database",
                d->o->schema, cm_table_name(t));
  return 0;
}

/* The transaction's first statement: it fixes the snapshot. */
static int take_snapshot(db_t *d) {
  PGresult *res = exec(d, begin_sql, PGRES_COMMAND_OK, "begin");

  if (!res)
    return CM_ERR_FATAL;
  PQclear(res);
  res = exec(d, snapshot_sql, PGRES_TUPLES_OK, "read the snapshot");
  if (!res)
    return CM_ERR_FATAL;
  d->snap.ts_ms = rp_wall_ms();
  d->txid_snapshot = strdup(PQgetvalue(res, 0, 0));
  if (cell_i64(res, 0, 1, &d->snap.lsn) != 0) {
    PQclear(res);
    return fail(d, CM_ERR_FATAL, "the server gave no WAL position");
  }
  PQclear(res);
  if (!d->txid_snapshot)
    return fail(d, CM_ERR_NOMEM, "out of memory");
  d->snap.txid_snapshot = d->txid_snapshot;
  d->snap.name = d->o->topic_prefix;
  d->snap.db = PQdb(d->conn);
  d->snap.schema = d->o->schema;
  fprintf(stderr, RP_NAME ": snapshot %s at lsn %" PRId64 "\n",
          d->txid_snapshot, d->snap.lsn);
  fflush(stderr);
  return 0;
}

/* ---- statements ---------------------------------------------------------- */

static int append(char *sql, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends to a SQL_MAX buffer; @returns -1 once it does not fit. */
static int append(char *sql, size_t *len, const char *fmt, ...) {
  va_list ap;
  int n;

  if (*len >= SQL_MAX)
    return -1;
  va_start(ap, fmt);
  n = vsnprintf(sql + *len, SQL_MAX - *len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= SQL_MAX - *len) {
    *len = SQL_MAX;
    return -1;
  }
  *len += (size_t)n;
  return 0;
}

/* A column in its wire form (see NOTES). */
static void column_expr(char *sql, size_t *len, const cm_column_t *col) {
  switch (col->type) {
  case CM_COL_DATE:
    append(sql, len, "(\"%s\"::date - DATE '1970-01-01')", col->name);
    break;
  case CM_COL_TIMESTAMP:
    append(sql, len,
           "to_char(\"%s\"::timestamptz AT TIME ZONE 'UTC',"
           " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
           col->name);
    break;
  default: append(sql, len, "\"%s\"", col->name);
  }
}

/* " FROM schema."Table" [WHERE "id" BETWEEN lo AND hi]" */
static void from_where(const db_t *d, char *sql, size_t *len, cm_table_t t) {
  append(sql, len, " FROM %s.\"%s\"", d->schema_q, cm_table_name(t));
  if (d->o->has_ids)
    append(sql, len, " WHERE \"id\" BETWEEN %" PRId64 " AND %" PRId64, d->lo,
           d->hi);
}

static int count_rows(db_t *d, cm_table_t t) {
  char sql[SQL_MAX], what[128];
  size_t len = 0;
  PGresult *res;
  int rc;

  append(sql, &len, "SELECT count(*)");
  from_where(d, sql, &len, t);
  if (len >= SQL_MAX)
    return fail(d, CM_ERR_CONFIG, "--source-schema: name too long");
  snprintf(what, sizeof(what), "read %s.\"%s\"", d->o->schema,
           cm_table_name(t));
  res = exec(d, sql, PGRES_TUPLES_OK, what);
  if (!res)
    return CM_ERR_FATAL;
  rc = cell_i64(res, 0, 0, &d->tab[t].total);
  PQclear(res);
  return rc == 0 ? 0 : fail(d, CM_ERR_FATAL, "could not count the rows");
}

static int declare_cursor(db_t *d, cm_table_t t) {
  char sql[SQL_MAX], what[128];
  const cm_column_t *cols;
  size_t len = 0;
  int i, n;
  PGresult *res;

  cols = cm_table_columns(t, &n);
  append(sql, &len, "DECLARE rp_rows NO SCROLL CURSOR FOR SELECT ");
  for (i = 0; i < n; i++) {
    if (i > 0)
      append(sql, &len, ", ");
    column_expr(sql, &len, &cols[i]);
  }
  from_where(d, sql, &len, t);
  append(sql, &len, " ORDER BY \"id\"");
  if (len >= SQL_MAX)
    return fail(d, CM_ERR_CONFIG, "--source-schema: name too long");
  snprintf(what, sizeof(what), "read %s.\"%s\"", d->o->schema,
           cm_table_name(t));
  res = exec(d, sql, PGRES_COMMAND_OK, what);
  if (!res)
    return CM_ERR_FATAL;
  PQclear(res);
  return 0;
}

/* @returns the next chunk of rows, or NULL with errstr set. */
static PGresult *fetch(db_t *d, cm_table_t t) {
  char sql[64], what[128];

  snprintf(sql, sizeof(sql), "FETCH FORWARD %d FROM rp_rows", d->o->chunk_rows);
  snprintf(what, sizeof(what), "read %s.\"%s\"", d->o->schema,
           cm_table_name(t));
  return exec(d, sql, PGRES_TUPLES_OK, what);
}

/* ---- progress ------------------------------------------------------------ */

static void progress(db_t *d) {
  char line[512];
  size_t len = 0;
  int64_t read = 0, total = 0;
  double now = rp_now_s(), rate;
  int t;

  if (d->o->quiet || now < d->next_progress)
    return;
  d->next_progress = now + RP_PROGRESS_S;
  line[0] = '\0';
  for (t = 0; t < CM_TABLE__CNT; t++) {
    if (!d->o->table[t])
      continue;
    read += d->tab[t].read;
    total += d->tab[t].total;
    if (len < sizeof(line))
      len += (size_t)snprintf(line + len, sizeof(line) - len,
                              "%s%s %" PRId64 "/%" PRId64 " read, %" PRId64
                              " published",
                              len ? "; " : "", cm_table_name(t), d->tab[t].read,
                              d->tab[t].total, d->tab[t].published);
  }
  rate = (double)read / (now - d->started > 0.001 ? now - d->started : 0.001);
  fprintf(stderr, RP_NAME ": progress: %s; %.0f rows/s, ETA %.0f s\n", line,
          rate, rate > 0 && total > read ? (double)(total - read) / rate : 0.0);
}

static void summary(db_t *d) {
  char line[512];
  size_t len = 0;
  int64_t rows = 0, markers = 0;
  double s = rp_now_s() - d->started;
  int t;

  for (t = 0; t < CM_TABLE__CNT; t++) {
    if (!d->o->table[t])
      continue;
    rows += d->tab[t].published;
    markers += d->tab[t].markers;
    if (len < sizeof(line))
      len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s %" PRId64,
                              len ? ", " : "", cm_table_name(t),
                              d->tab[t].published);
  }
  fprintf(stderr,
          RP_NAME ": done: %" PRId64 " rows (%s), %" PRId64
                  " range markers, %.1f s, %.0f rows/s; all acknowledged\n",
          rows, line, markers, s, (double)rows / (s > 0.001 ? s : 0.001));
}

/* ---- rows and markers ---------------------------------------------------- */

static int stopped(db_t *d) {
  return fail(d, CM_ERR_FATAL, "interrupted; the replay is incomplete");
}

/* 1 if the row's clinicId passes --clinics (every row without it). */
static int wanted(const db_t *d, const PGresult *res, int row) {
  int64_t clinic;
  int i;

  if (!d->o->clinics)
    return 1;
  if (cell_i64(res, row, 1, &clinic) != 0)
    return 0;
  for (i = 0; i < d->o->clinic_cnt; i++)
    if (d->o->clinics[i] == clinic)
      return 1;
  return 0;
}

/* Sends a key and an Avro value, which it frees. */
static int send_avro(db_t *d, void *val, size_t len, int counted) {
  int rc = rp_out_send(d->out, d->key.p, d->key.len, val, len, "db", NULL,
                       counted, d->errstr, d->errstr_size);

  free(val);
  return rc;
}

static int send_row_avro(db_t *d, cm_table_t t, const PGresult *res, int row,
                         int64_t id) {
  void *val = NULL;
  size_t len = 0;
  int rc;

  rp_emit_row_key(&d->key, res, row);
  rc = rp_avro_row(d->avro, &d->snap, t, res, row, &val, &len, d->errstr,
                   d->errstr_size);
  if (rc != 0)
    return rc;
  if (d->key.failed || len > CM_EVENT_MAX_BYTES) {
    free(val);
    return fail(d, CM_ERR_TOO_LARGE,
                "%s id %" PRId64 " is over %d bytes in Avro, more than the"
                " workers read",
                cm_table_name(t), id, CM_EVENT_MAX_BYTES);
  }
  d->tab[t].published++;
  return send_avro(d, val, len, 1);
}

static int send_row(db_t *d, cm_table_t t, const PGresult *res, int row,
                    int64_t id) {
  if (d->avro)
    return send_row_avro(d, t, res, row, id);
  rp_emit_row(&d->key, &d->val, d->tab[t].source.p, t, res, row);
  if (d->key.failed || d->val.failed)
    return fail(d, CM_ERR_TOO_LARGE,
                "%s id %" PRId64 " is over %d bytes as JSON, more than the"
                " workers read",
                cm_table_name(t), id, CM_EVENT_MAX_BYTES);
  d->tab[t].published++;
  return rp_out_send(d->out, d->key.p, d->key.len, d->val.p, d->val.len, "db",
                     NULL, 1, d->errstr, d->errstr_size);
}

/* Publishes a chunk's wanted rows and collects its ids into d->runs. */
static int send_rows(db_t *d, cm_table_t t, const PGresult *res,
                     int64_t *last) {
  int i, rc, n = PQntuples(res);
  int64_t id;

  d->runs.n = 0;
  for (i = 0; i < n; i++) {
    if (rp_stop)
      return stopped(d);
    if (cell_i64(res, i, 0, &id) != 0)
      return fail(d, CM_ERR_FATAL, "%s has a row whose id is not an integer",
                  cm_table_name(t));
    if (rp_runs_add(&d->runs, id) != 0)
      return fail(d, CM_ERR_NOMEM, "out of memory");
    d->tab[t].read++;
    *last = id;
    if (wanted(d, res, i) && (rc = send_row(d, t, res, i, id)) != 0)
      return rc;
    progress(d);
  }
  return 0;
}

static int send_marker(db_t *d, cm_table_t t, int64_t first, int64_t last) {
  void *val = NULL;
  size_t len = 0;
  int rc;

  if (d->avro) {
    rp_emit_marker_key(&d->key, t, first, last);
    rc = rp_avro_marker(d->avro, &d->snap, t, first, last, &d->runs, &val, &len,
                        d->errstr, d->errstr_size);
    if (rc != 0)
      return rc;
  } else {
    rp_emit_marker(&d->key, &d->val, d->tab[t].marker_source.p, t, first, last,
                   &d->runs);
    len = d->val.failed ? (size_t)CM_EVENT_MAX_BYTES + 1 : d->val.len;
  }
  if (d->key.failed || len > CM_EVENT_MAX_BYTES) {
    free(val);
    return fail(d, CM_ERR_TOO_LARGE,
                "the range marker of %s ids %" PRId64 " to %" PRId64
                " is over %d bytes; use a smaller --chunk-rows",
                cm_table_name(t), first, last, CM_EVENT_MAX_BYTES);
  }
  d->tab[t].markers++;
  if (d->avro)
    return send_avro(d, val, len, 0);
  return rp_out_send(d->out, d->key.p, d->key.len, d->val.p, d->val.len, "db",
                     NULL, 0, d->errstr, d->errstr_size);
}

/*
 * The chunks of one table, in key order (NOTES): rows, then the chunk's
 * marker, whose range starts past the previous one and ends at its last
 * row's id, or at the tiling's upper bound for the last chunk.
 */
static int chunks(db_t *d, cm_table_t t) {
  PGresult *res = fetch(d, t);
  int64_t first = d->lo, last = d->lo;
  int rc, full;

  d->runs.n = 0;
  if (!res)
    return CM_ERR_FATAL;
  while (PQntuples(res) > 0) {
    full = PQntuples(res) == d->o->chunk_rows;
    rc = send_rows(d, t, res, &last);
    PQclear(res);
    res = NULL;
    if (rc != 0)
      return rc;
    if (full && last < d->hi && !(res = fetch(d, t)))
      return CM_ERR_FATAL;
    if (!res || PQntuples(res) == 0)
      break;
    if ((rc = send_marker(d, t, first, last)) != 0) {
      PQclear(res);
      return rc;
    }
    first = last + 1;
  }
  PQclear(res);
  return send_marker(d, t, first, d->hi);
}

static int read_table(db_t *d, cm_table_t t) {
  PGresult *res;
  int rc;

  rp_emit_source(&d->tab[t].source, &d->snap, t, 0);
  rp_emit_source(&d->tab[t].marker_source, &d->snap, t, 1);
  if (d->tab[t].source.failed || d->tab[t].marker_source.failed)
    return fail(d, CM_ERR_NOMEM, "out of memory");
  if ((rc = declare_cursor(d, t)) != 0 || (rc = chunks(d, t)) != 0)
    return rc;
  res = exec(d, "CLOSE rp_rows", PGRES_COMMAND_OK, "close the cursor");
  if (!res)
    return CM_ERR_FATAL;
  PQclear(res);
  return 0;
}

/* ---- the run ------------------------------------------------------------- */

static int run(db_t *d) {
  PGresult *res;
  int rc, t;

  if ((rc = connect_db(d)) != 0)
    return rc;
  for (t = 0; t < CM_TABLE__CNT; t++)
    if (d->o->table[t] && (rc = check_table(d, (cm_table_t)t)) != 0)
      return rc;
  if ((rc = take_snapshot(d)) != 0)
    return rc;
  for (t = 0; t < CM_TABLE__CNT; t++)
    if (d->o->table[t] && (rc = count_rows(d, (cm_table_t)t)) != 0)
      return rc;
  for (t = 0; t < CM_TABLE__CNT; t++)
    if (d->o->table[t] && (rc = read_table(d, (cm_table_t)t)) != 0)
      return rc;
  res = exec(d, "COMMIT", PGRES_COMMAND_OK, "end the transaction");
  if (!res)
    return CM_ERR_FATAL;
  PQclear(res);
  if ((rc = rp_out_finish(d->out, d->errstr, d->errstr_size)) != 0)
    return rc;
  summary(d);
  return 0;
}

int rp_db_run(const rp_opts_t *o, rp_out_t *out, char *errstr,
              size_t errstr_size) {
  db_t d;
  int rc, t;

  memset(&d, 0, sizeof(d));
  d.o = o;
  d.out = out;
  d.errstr = errstr;
  d.errstr_size = errstr_size;
  d.lo = o->has_ids ? o->id_from : INT8_LO;
  d.hi = o->has_ids ? o->id_to : INT8_HI;
  d.started = rp_now_s();
  d.next_progress = d.started + RP_PROGRESS_S;
  cm_text_init(&d.key, CM_EVENT_MAX_BYTES);
  cm_text_init(&d.val, CM_EVENT_MAX_BYTES);
  for (t = 0; t < CM_TABLE__CNT; t++) {
    cm_text_init(&d.tab[t].source, CM_EVENT_MAX_BYTES);
    cm_text_init(&d.tab[t].marker_source, CM_EVENT_MAX_BYTES);
  }
  rc = 0;
  if (o->avro)
    d.avro = rp_avro_new(o, &rc, errstr, errstr_size);
  if (rc == 0)
    rc = run(&d);
  rp_avro_destroy(d.avro);
  for (t = 0; t < CM_TABLE__CNT; t++) {
    cm_text_free(&d.tab[t].source);
    cm_text_free(&d.tab[t].marker_source);
  }
  cm_text_free(&d.key);
  cm_text_free(&d.val);
  rp_runs_free(&d.runs);
  free(d.txid_snapshot);
  PQfreemem(d.schema_q);
  PQfinish(d.conn);
  return rc;
}
