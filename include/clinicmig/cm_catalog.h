/**
 * @file cm_catalog.h
 * @brief The legacy tables clinicmig knows: their columns, types,
 *        nullability and key.
 *
 * NOTES
 * One catalog serves every reader of legacy rows: the decoder, the mirror,
 * clinicmig-replay, the oracle and the reconciler. A column's legacy
 * (Prisma) name is how Debezium and the legacy database name it; its
 * snake_case name is the mirror's. Column 0 of every table is its key.
 */
#ifndef CM_CATALOG_H
#define CM_CATALOG_H

#include <stddef.h>

/** Legacy tables clinicmig knows. */
typedef enum cm_table_e {
  CM_TABLE_NONE = 0,
  CM_TABLE_CLINIC,
  CM_TABLE_USER,
  CM_TABLE_PATIENT,
  CM_TABLE_APPOINTMENT,
  CM_TABLE__CNT
} cm_table_t;

/** Column types of the legacy tables. */
typedef enum cm_coltype_e {
  CM_COL_INT = 1,   /**< int4 / int8 */
  CM_COL_TEXT,      /**< text */
  CM_COL_BOOL,      /**< boolean */
  CM_COL_DATE,      /**< date: days since 1970-01-01 */
  CM_COL_TIMESTAMP, /**< timestamptz: microseconds since the epoch, UTC */
} cm_coltype_t;

/** One column of a legacy table. */
typedef struct cm_column_s {
  const char *name; /**< the legacy (Prisma) name, e.g. "clinicId" */
  const char *sql;  /**< the snake_case name used in the mirror */
  cm_coltype_t type;
  int nullable; /**< 0: NOT NULL (required in a row image) */
} cm_column_t;

/* Column indices, in the order cm_table_columns() returns them. */
enum {
  CM_CLINIC_ID,
  CM_CLINIC_NAME,
  CM_CLINIC_CREATED_AT,
  CM_CLINIC_UPDATED_AT,
  CM_CLINIC__CNT
};
enum {
  CM_USER_ID,
  CM_USER_CLINIC_ID,
  CM_USER_EMAIL,
  CM_USER_PHONE,
  CM_USER_FIRST_NAME,
  CM_USER_LAST_NAME,
  CM_USER_ROLE,
  CM_USER_SPECIALIZATION,
  CM_USER_LICENSE_NUMBER,
  CM_USER_IS_ACTIVE,
  CM_USER_CREATED_AT,
  CM_USER_UPDATED_AT,
  CM_USER__CNT
};
enum {
  CM_PATIENT_ID,
  CM_PATIENT_CLINIC_ID,
  CM_PATIENT_FIRST_NAME,
  CM_PATIENT_LAST_NAME,
  CM_PATIENT_MIDDLE_NAME,
  CM_PATIENT_BIRTH_DATE,
  CM_PATIENT_GENDER,
  CM_PATIENT_PHONE,
  CM_PATIENT_EMAIL,
  CM_PATIENT_CREATED_AT,
  CM_PATIENT_UPDATED_AT,
  CM_PATIENT__CNT
};
enum {
  CM_APPT_ID,
  CM_APPT_CLINIC_ID,
  CM_APPT_DOCTOR_ID,
  CM_APPT_PATIENT_ID,
  CM_APPT_STARTS_AT,
  CM_APPT_ENDS_AT,
  CM_APPT_STATUS,
  CM_APPT_REASON,
  CM_APPT_CREATED_AT,
  CM_APPT_UPDATED_AT,
  CM_APPT__CNT
};

#define CM_MAX_COLS 12

/**
 * The legacy SQL type of a timestamp column. It fixes how Debezium writes
 * the column (docs/design.md §1.2): timestamptz as ISO-8601 text in every
 * `time.precision.mode`, a timestamp without time zone as a number whose
 * unit depends on the mode and on the column's fractional precision.
 */
typedef enum cm_tstype_e {
  CM_TSTYPE_TIMESTAMPTZ = 0, /**< timestamptz, as schemas/legacy.sql has it */
  CM_TSTYPE_TIMESTAMP_MS,    /**< timestamp(0) to timestamp(3) */
  CM_TSTYPE_TIMESTAMP_US,    /**< timestamp(4) to timestamp(6), timestamp */
} cm_tstype_t;

/**
 * The legacy types of the timestamp columns, by table and column index.
 * A zeroed value is schemas/legacy.sql: every timestamp column timestamptz.
 */
typedef struct cm_coltypes_s {
  unsigned char ts[CM_TABLE__CNT][CM_MAX_COLS]; /**< cm_tstype_t */
} cm_coltypes_t;

/**
 * @brief Reads the legacy types of timestamp columns from @p spec, a
 *        comma-separated list of `TABLE.COLUMN=TYPE` (TABLE or COLUMN may
 *        be `*`: every table, every timestamp column; later items win).
 *        TYPE is `timestamptz`, `timestamp` or `timestamp(P)` with P from 0
 *        to 6. An empty @p spec leaves every column timestamptz.
 * @returns 0, or -1 with a one-line reason in @p errstr.
 */
int cm_coltypes_parse(const char *spec, cm_coltypes_t *out, char *errstr,
                      size_t errstr_size);

/** @returns the type's name: "timestamptz", "timestamp(0-3)", "timestamp(4-6)".
 */
const char *cm_tstype_name(cm_tstype_t t);

/** @returns the table's column list and writes its length to *cnt. */
const cm_column_t *cm_table_columns(cm_table_t table, int *cnt);

/** @returns the legacy table name ("User"), or "?" for CM_TABLE_NONE. */
const char *cm_table_name(cm_table_t table);

/** @returns the table with that legacy name, or CM_TABLE_NONE. */
cm_table_t cm_table_from_name(const char *name);

#endif
