/*
 * oracle.h — the parts of clinicmig-oracle, shared between its files.
 *
 * NOTES
 * The oracle reads the final legacy tables (db.c), computes the mapping f
 * of docs/design.md §2.3 from them in memory (mapping.c), reads the v2 tables
 * the workers built (db.c), merge-compares the two sides table by table
 * (compare.c) and prints what differs (report.c). Every value is kept as
 * the text PostgreSQL prints in a session with TimeZone=UTC and
 * DateStyle=ISO, NULL being a NULL pointer, so that the comparison is a
 * comparison of strings. Strings, rows and the query results they point
 * into live in one arena, freed at the end of the run.
 */
#ifndef OR_ORACLE_H
#define OR_ORACLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

/* ---- the arena: everything that lives as long as the run ------------ */

typedef struct or_arena_s or_arena_t;

/** @returns a new, empty arena, or NULL when out of memory. */
or_arena_t *or_arena_new(void);

/** Frees the arena and everything allocated in it. NULL is allowed. */
void or_arena_destroy(or_arena_t *a);

/**
 * @returns @p size zeroed bytes, or NULL when out of memory; a failure is
 *          also remembered (or_arena_failed), so callers may check once
 *          after a series of allocations.
 */
void *or_alloc(or_arena_t *a, size_t size);

/**
 * Keeps @p res until the arena is destroyed, so that its cells may be
 * pointed at. On failure @p res is cleared at once.
 * @returns 0, or -1 when out of memory.
 */
int or_arena_adopt(or_arena_t *a, PGresult *res);

/** @returns a copy of @p s, or NULL for NULL (and when out of memory). */
const char *or_strdup(or_arena_t *a, const char *s);

/** @returns @p v as decimal text. */
const char *or_i64_text(or_arena_t *a, int64_t v);

/** @returns 1 if an allocation in the arena has failed, else 0. */
int or_arena_failed(const or_arena_t *a);

/* ---- rows of the compared tables ------------------------------------ */

/** One row: its id and the text of its other columns (NULL for NULL). */
typedef struct or_row_s {
  int64_t id;
  const char **val;
} or_row_t;

/** A growable set of rows; zero-initialize before use. */
typedef struct or_rows_s {
  or_row_t *row;
  size_t n;
  size_t cap;
} or_rows_t;

/**
 * Appends a row with @p ncols value slots, all NULL, kept in @p a.
 * @returns the slots, or NULL when out of memory.
 */
const char **or_rows_add(or_rows_t *rs, or_arena_t *a, int64_t id, int ncols);

/** Sorts the rows by id (stable for equal ids is not needed). */
void or_rows_sort(or_rows_t *rs);

/** Frees the row array (the values live in the arena). */
void or_rows_free(or_rows_t *rs);

/** Parses a decimal integer; @returns 0, or -1 if @p s is not one. */
int or_parse_i64(const char *s, int64_t *out);

/* ---- the compared tables -------------------------------------------- */

typedef enum or_table_id_e {
  OR_GLOBAL_DOCTOR,
  OR_CLINIC_DOCTOR,
  OR_GLOBAL_PATIENT,
  OR_CLINIC_PATIENT,
  OR_APPOINTMENT,
  OR_N_TABLES
} or_table_id_t;

#define OR_MAX_COLS 8

/** A v2 table: its name and the columns f defines, id excluded. */
typedef struct or_table_s {
  const char *name;
  int ncols;
  const char *cols[OR_MAX_COLS];
} or_table_t;

/** The five tables, in report order, indexed by or_table_id_t. */
extern const or_table_t or_tables[OR_N_TABLES];

/* ---- the legacy rows ------------------------------------------------ */

typedef struct or_user_s {
  int64_t id;
  int64_t recency; /* rank by ("updatedAt", id): greater is more recent */
  const char *clinic_id, *email, *role, *first_name, *last_name;
  const char *specialization, *license_number, *is_active;
} or_user_t;

typedef struct or_patient_s {
  int64_t id;
  int64_t recency;
  const char *clinic_id, *first_name, *last_name, *middle_name;
  const char *birth_date, *gender, *phone, *email;
} or_patient_t;

typedef struct or_appt_s {
  int64_t id;
  int has_doctor, has_patient; /* 0 when the column is NULL */
  int64_t doctor_id, patient_id;
  const char *clinic_id, *starts_at, *ends_at, *status, *reason;
} or_appt_t;

/** The legacy tables, each sorted by id, ids unique. */
typedef struct or_legacy_s {
  or_user_t *user;
  size_t n_user;
  or_patient_t *patient;
  size_t n_patient;
  or_appt_t *appt;
  size_t n_appt;
} or_legacy_t;

/* ---- db.c ----------------------------------------------------------- */

/**
 * Connects, sets the session up (UTC, ISO dates) and opens a read-only
 * REPEATABLE READ transaction, so that all tables read through the
 * connection come from one snapshot.
 * @param what "legacy" or "target", for the error message.
 * @returns the connection, or NULL with the reason in @p errstr.
 */
PGconn *or_db_connect(const char *conninfo, const char *what, char *errstr,
                      size_t errstr_size);

/** Reads "User", "Patient" and "Appointment" of @p schema. */
int or_db_read_legacy(PGconn *conn, const char *schema, or_arena_t *a,
                      or_legacy_t *out, char *errstr, size_t errstr_size);

/** Reads the five v2 tables of @p schema into @p found (unsorted). */
int or_db_read_domain(PGconn *conn, const char *schema, or_arena_t *a,
                      or_rows_t found[OR_N_TABLES], char *errstr,
                      size_t errstr_size);

/* ---- mapping.c ------------------------------------------------------ */

/**
 * Computes f(@p legacy) into @p want (unsorted).
 * @param region default region of phones, e.g. "RU".
 * @param strict 1 for patients.match = strict, 0 for loose.
 * @returns 0, or -1 when out of memory.
 */
int or_map(const or_legacy_t *legacy, const char *region, int strict,
           or_arena_t *a, or_rows_t want[OR_N_TABLES]);

/* ---- compare.c ------------------------------------------------------ */

typedef enum or_kind_e { OR_MISSING, OR_EXTRA, OR_DIFFERS } or_kind_t;

/** One row that differs: want is NULL for extra, got for missing. */
typedef struct or_diff_s {
  or_kind_t kind;
  int64_t id;
  const or_row_t *want;
  const or_row_t *got;
  unsigned cols; /* OR_DIFFERS: bit c set when column c differs */
} or_diff_t;

/** The comparison of one table. */
typedef struct or_result_s {
  const or_table_t *table;
  size_t expected, found, missing, extra, differing;
  or_diff_t *diff; /* the first ones, in id order */
  size_t n_diff;
  size_t cap_diff;
} or_result_t;

/**
 * Merge-compares @p want with @p got, both sorted by id, keeping at most
 * @p max_diffs differences in @p out.
 * @returns 0, or -1 when out of memory.
 */
int or_compare(const or_table_t *table, const or_rows_t *want,
               const or_rows_t *got, size_t max_diffs, or_result_t *out);

/** Frees what or_compare() allocated. */
void or_result_free(or_result_t *r);

/** @returns missing + extra + differing over @p n results. */
size_t or_total(const or_result_t *res, size_t n);

/* ---- report.c ------------------------------------------------------- */

/** Settings echoed in the JSON report. */
typedef struct or_settings_s {
  const char *legacy_schema, *domain_schema, *phone_region, *patients_match;
  int show_values;
} or_settings_t;

/** Prints the text report. */
void or_report_text(FILE *f, const or_result_t res[OR_N_TABLES],
                    const or_settings_t *s);

/** Prints the JSON report. @returns 0, or -1 when out of memory. */
int or_report_json(FILE *f, const or_result_t res[OR_N_TABLES],
                   const or_settings_t *s);

#endif
