/*
 * db.c — what the oracle reads: the legacy tables and the v2 tables.
 *
 * NOTES
 * Each table is read with one query, in a session set to TimeZone=UTC and
 * DateStyle=ISO, inside a read-only REPEATABLE READ transaction: both
 * sides print their values the same way, and the tables read through one
 * connection come from one snapshot (when legacy and target are one
 * database, one connection serves both). Values are kept as text; the
 * legacy timestamps and dates are cast to the types of the v2 columns, so
 * that a legacy "timestamp without time zone" (read as UTC, as Debezium
 * does) prints like the timestamptz it becomes. Rows point into the query
 * results, which the arena keeps to the end of the run.
 *
 * The only computing done in SQL is the recency rank of a row, by
 * ("updatedAt", id) with a NULL "updatedAt" oldest: PostgreSQL orders its
 * own timestamps exactly, infinities included. Everything f derives from
 * the rows is computed in C (mapping.c).
 *
 * Error messages carry the server's first line (it names tables and
 * columns, never a row's values) and never a connection string.
 */
#include "oracle.h"

#include <stdlib.h>
#include <string.h>

enum {
  U_ID,
  U_CLINIC,
  U_EMAIL,
  U_ROLE,
  U_FIRST,
  U_LAST,
  U_SPEC,
  U_LICENSE,
  U_ACTIVE,
  U_RECENCY,
  U_NCOLS
};
enum {
  P_ID,
  P_CLINIC,
  P_FIRST,
  P_LAST,
  P_MIDDLE,
  P_BIRTH,
  P_GENDER,
  P_PHONE,
  P_EMAIL,
  P_RECENCY,
  P_NCOLS
};
enum {
  A_ID,
  A_CLINIC,
  A_DOCTOR,
  A_PATIENT,
  A_STARTS,
  A_ENDS,
  A_STATUS,
  A_REASON,
  A_NCOLS
};

static const char user_sql[] =
    "SELECT id, \"clinicId\", email, role, \"firstName\", \"lastName\","
    " specialization, \"licenseNumber\", \"isActive\"::boolean,"
    " row_number() OVER (ORDER BY \"updatedAt\" NULLS FIRST, id)";
static const char patient_sql[] =
    "SELECT id, \"clinicId\", \"firstName\", \"lastName\", \"middleName\","
    " \"birthDate\"::date, gender, phone, email,"
    " row_number() OVER (ORDER BY \"updatedAt\" NULLS FIRST, id)";
static const char appt_sql[] =
    "SELECT id, \"clinicId\", \"doctorId\", \"patientId\","
    " \"startsAt\"::timestamptz, \"endsAt\"::timestamptz, status, reason";

/* The first line of a libpq message, without its newline. */
static void first_line(const char *msg, char *buf, size_t size) {
  size_t n = strcspn(msg, "\n");

  if (size == 0)
    return;
  if (n >= size)
    n = size - 1;
  memcpy(buf, msg, n);
  buf[n] = '\0';
}

/* Server notices would interleave with the report: drop them. */
static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

PGconn *or_db_connect(const char *conninfo, const char *what, char *errstr,
                      size_t errstr_size) {
  static const char setup[] =
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD';"
      "SET IntervalStyle = 'postgres';"
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
  const char *keys[] = {"dbname", "fallback_application_name", NULL};
  const char *vals[] = {conninfo, "clinicmig-oracle", NULL};
  char line[512];
  PGresult *res;
  PGconn *conn;

  conn = PQconnectdbParams(keys, vals, 1);
  if (PQstatus(conn) != CONNECTION_OK) {
    first_line(conn ? PQerrorMessage(conn) : "out of memory", line,
               sizeof(line));
    snprintf(errstr, errstr_size, "could not connect to the %s database: %s",
             what, line);
    PQfinish(conn);
    return NULL;
  }
  PQsetNoticeProcessor(conn, quiet, NULL);
  res = PQexec(conn, setup);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    first_line(PQerrorMessage(conn), line, sizeof(line));
    snprintf(errstr, errstr_size, "could not set up the %s session: %s", what,
             line);
    PQclear(res);
    PQfinish(conn);
    return NULL;
  }
  PQclear(res);
  return conn;
}

/* Appends @p s to @p buf; @returns -1 if it does not fit. */
static int append(char *buf, size_t size, size_t *len, const char *s) {
  size_t n = strlen(s);

  if (*len + n >= size)
    return -1;
  memcpy(buf + *len, s, n + 1);
  *len += n;
  return 0;
}

/*
 * Runs "<head> FROM <schema>.<table>", @p schema quoted here, and checks
 * that it returns @p ncols columns.
 * @returns the result, or NULL with the reason in errstr.
 */
static PGresult *query(PGconn *conn, const char *head, const char *schema,
                       const char *table, int ncols, char *errstr,
                       size_t errstr_size) {
  char sql[4096], line[512];
  size_t len = 0;
  PGresult *res;
  char *q;
  int fits;

  q = PQescapeIdentifier(conn, schema, strlen(schema));
  if (!q) {
    snprintf(errstr, errstr_size, "bad schema name");
    return NULL;
  }
  fits = append(sql, sizeof(sql), &len, head) == 0 &&
         append(sql, sizeof(sql), &len, " FROM ") == 0 &&
         append(sql, sizeof(sql), &len, q) == 0 &&
         append(sql, sizeof(sql), &len, ".") == 0 &&
         append(sql, sizeof(sql), &len, table) == 0;
  PQfreemem(q);
  if (!fits) {
    snprintf(errstr, errstr_size, "schema name too long");
    return NULL;
  }
  res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != ncols) {
    first_line(PQerrorMessage(conn), line, sizeof(line));
    snprintf(errstr, errstr_size, "could not read %s.%s: %s", schema, table,
             line[0] ? line : "unexpected columns");
    PQclear(res);
    return NULL;
  }
  return res;
}

/* A cell's text, valid while the arena keeps @p r; NULL for SQL NULL. */
static const char *cell(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col))
    return NULL;
  return PQgetvalue(r, row, col);
}

/* An integer cell; @returns 0, 1 if NULL, -1 if not an integer. */
static int cell_i64(const PGresult *r, int row, int col, int64_t *out) {
  if (PQgetisnull(r, row, col))
    return 1;
  return or_parse_i64(PQgetvalue(r, row, col), out);
}

/* Reads the id and recency of row @p i; @returns 0 or -1. */
static int id_and_rank(const PGresult *r, int i, int rank_col, int64_t *id,
                       int64_t *rank) {
  if (cell_i64(r, i, 0, id) != 0)
    return -1;
  return rank_col < 0 ? 0 : (cell_i64(r, i, rank_col, rank) != 0 ? -1 : 0);
}

static int fill_users(const PGresult *r, or_arena_t *a, or_legacy_t *l) {
  int i, n = PQntuples(r);
  or_user_t *u;

  l->user = or_alloc(a, (size_t)n * sizeof(or_user_t) + 1);
  if (!l->user)
    return -1;
  for (i = 0; i < n; i++) {
    u = &l->user[i];
    if (id_and_rank(r, i, U_RECENCY, &u->id, &u->recency) != 0)
      return -2;
    u->clinic_id = cell(r, i, U_CLINIC);
    u->email = cell(r, i, U_EMAIL);
    u->role = cell(r, i, U_ROLE);
    u->first_name = cell(r, i, U_FIRST);
    u->last_name = cell(r, i, U_LAST);
    u->specialization = cell(r, i, U_SPEC);
    u->license_number = cell(r, i, U_LICENSE);
    u->is_active = cell(r, i, U_ACTIVE);
  }
  l->n_user = (size_t)n;
  return or_arena_failed(a) ? -1 : 0;
}

static int fill_patients(const PGresult *r, or_arena_t *a, or_legacy_t *l) {
  int i, n = PQntuples(r);
  or_patient_t *p;

  l->patient = or_alloc(a, (size_t)n * sizeof(or_patient_t) + 1);
  if (!l->patient)
    return -1;
  for (i = 0; i < n; i++) {
    p = &l->patient[i];
    if (id_and_rank(r, i, P_RECENCY, &p->id, &p->recency) != 0)
      return -2;
    p->clinic_id = cell(r, i, P_CLINIC);
    p->first_name = cell(r, i, P_FIRST);
    p->last_name = cell(r, i, P_LAST);
    p->middle_name = cell(r, i, P_MIDDLE);
    p->birth_date = cell(r, i, P_BIRTH);
    p->gender = cell(r, i, P_GENDER);
    p->phone = cell(r, i, P_PHONE);
    p->email = cell(r, i, P_EMAIL);
  }
  l->n_patient = (size_t)n;
  return or_arena_failed(a) ? -1 : 0;
}

static int fill_appts(const PGresult *r, or_arena_t *a, or_legacy_t *l) {
  int i, rc, n = PQntuples(r);
  or_appt_t *p;

  l->appt = or_alloc(a, (size_t)n * sizeof(or_appt_t) + 1);
  if (!l->appt)
    return -1;
  for (i = 0; i < n; i++) {
    p = &l->appt[i];
    if (id_and_rank(r, i, -1, &p->id, NULL) != 0)
      return -2;
    rc = cell_i64(r, i, A_DOCTOR, &p->doctor_id);
    p->has_doctor = rc == 0;
    if (rc < 0)
      return -2;
    rc = cell_i64(r, i, A_PATIENT, &p->patient_id);
    p->has_patient = rc == 0;
    if (rc < 0)
      return -2;
    p->clinic_id = cell(r, i, A_CLINIC);
    p->starts_at = cell(r, i, A_STARTS);
    p->ends_at = cell(r, i, A_ENDS);
    p->status = cell(r, i, A_STATUS);
    p->reason = cell(r, i, A_REASON);
  }
  l->n_appt = (size_t)n;
  return or_arena_failed(a) ? -1 : 0;
}

/* Comparators by id; the three structs begin with their id. */
static int user_cmp(const void *x, const void *y) {
  const or_user_t *a = x, *b = y;

  return (a->id > b->id) - (a->id < b->id);
}

static int patient_cmp(const void *x, const void *y) {
  const or_patient_t *a = x, *b = y;

  return (a->id > b->id) - (a->id < b->id);
}

static int appt_cmp(const void *x, const void *y) {
  const or_appt_t *a = x, *b = y;

  return (a->id > b->id) - (a->id < b->id);
}

/*
 * Sorts @p n records of @p size bytes by id and finds a repeated id (f is
 * not defined for a table whose ids repeat). @returns 0, or -1 with the
 * id in *dup.
 */
static int sort_unique(void *base, size_t n, size_t size,
                       int (*cmp)(const void *, const void *), int64_t *dup) {
  const char *p = base;
  size_t i;

  if (n > 1)
    qsort(base, n, size, cmp);
  for (i = 1; i < n; i++) {
    if (cmp(p + (i - 1) * size, p + i * size) == 0) {
      /* every record type starts with its int64_t id */
      memcpy(dup, p + i * size, sizeof(*dup));
      return -1;
    }
  }
  return 0;
}

typedef int (*filler_t)(const PGresult *, or_arena_t *, or_legacy_t *);

/* Reads one legacy table with @p sql and @p fill. */
static int read_one(PGconn *conn, const char *schema, const char *table,
                    const char *sql, int ncols, filler_t fill, or_arena_t *a,
                    or_legacy_t *l, char *errstr, size_t errstr_size) {
  PGresult *res = query(conn, sql, schema, table, ncols, errstr, errstr_size);
  int rc;

  if (!res)
    return -1;
  rc = or_arena_adopt(a, res);
  if (rc == 0)
    rc = fill(res, a, l);
  if (rc == -1)
    snprintf(errstr, errstr_size, "out of memory");
  else if (rc < 0)
    snprintf(errstr, errstr_size, "%s.%s: a row has no usable id", schema,
             table);
  return rc < 0 ? -1 : 0;
}

int or_db_read_legacy(PGconn *conn, const char *schema, or_arena_t *a,
                      or_legacy_t *out, char *errstr, size_t errstr_size) {
  int64_t dup;
  const char *table = NULL;

  memset(out, 0, sizeof(*out));
  if (read_one(conn, schema, "\"User\"", user_sql, U_NCOLS, fill_users, a, out,
               errstr, errstr_size) != 0 ||
      read_one(conn, schema, "\"Patient\"", patient_sql, P_NCOLS, fill_patients,
               a, out, errstr, errstr_size) != 0 ||
      read_one(conn, schema, "\"Appointment\"", appt_sql, A_NCOLS, fill_appts,
               a, out, errstr, errstr_size) != 0)
    return -1;
  if (sort_unique(out->user, out->n_user, sizeof(or_user_t), user_cmp, &dup) !=
      0)
    table = "\"User\"";
  else if (sort_unique(out->patient, out->n_patient, sizeof(or_patient_t),
                       patient_cmp, &dup) != 0)
    table = "\"Patient\"";
  else if (sort_unique(out->appt, out->n_appt, sizeof(or_appt_t), appt_cmp,
                       &dup) != 0)
    table = "\"Appointment\"";
  if (table) {
    snprintf(errstr, errstr_size, "%s.%s: id %lld appears more than once",
             schema, table, (long long)dup);
    return -1;
  }
  return 0;
}

/* "SELECT id, c1, c2..." for one v2 table. */
static int domain_select(const or_table_t *t, char *sql, size_t size) {
  size_t len = 0;
  int c;

  if (append(sql, size, &len, "SELECT id") != 0)
    return -1;
  for (c = 0; c < t->ncols; c++)
    if (append(sql, size, &len, ", ") != 0 ||
        append(sql, size, &len, t->cols[c]) != 0)
      return -1;
  return 0;
}

/* Reads one v2 table into @p rows. */
static int read_domain_table(PGconn *conn, const char *schema,
                             const or_table_t *t, or_arena_t *a,
                             or_rows_t *rows, char *errstr,
                             size_t errstr_size) {
  char head[512];
  PGresult *res;
  const char **val;
  int64_t id;
  int i, c, n;

  if (domain_select(t, head, sizeof(head)) != 0)
    return -1;
  res = query(conn, head, schema, t->name, t->ncols + 1, errstr, errstr_size);
  if (!res)
    return -1;
  if (or_arena_adopt(a, res) != 0) {
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
  }
  n = PQntuples(res);
  for (i = 0; i < n; i++) {
    if (cell_i64(res, i, 0, &id) != 0) {
      snprintf(errstr, errstr_size, "%s.%s: a row has no usable id", schema,
               t->name);
      return -1;
    }
    val = or_rows_add(rows, a, id, t->ncols);
    if (!val)
      break;
    for (c = 0; c < t->ncols; c++)
      val[c] = cell(res, i, c + 1);
  }
  if (i < n || or_arena_failed(a)) {
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
  }
  return 0;
}

int or_db_read_domain(PGconn *conn, const char *schema, or_arena_t *a,
                      or_rows_t found[OR_N_TABLES], char *errstr,
                      size_t errstr_size) {
  int t;

  for (t = 0; t < OR_N_TABLES; t++)
    if (read_domain_table(conn, schema, &or_tables[t], a, &found[t], errstr,
                          errstr_size) != 0)
      return -1;
  return 0;
}
