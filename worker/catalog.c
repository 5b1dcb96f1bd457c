/*
 * catalog.c — the legacy tables' columns (docs/design.md §1.1).
 */
#include "clinicmig/cm_catalog.h"

#include <string.h>

static const cm_column_t clinic_cols[] = {
    {"id", "id", CM_COL_INT, 0},
    {"name", "name", CM_COL_TEXT, 0},
    {"createdAt", "created_at", CM_COL_TIMESTAMP, 0},
    {"updatedAt", "updated_at", CM_COL_TIMESTAMP, 0},
};

static const cm_column_t user_cols[] = {
    {"id", "id", CM_COL_INT, 0},
    {"clinicId", "clinic_id", CM_COL_INT, 0},
    {"email", "email", CM_COL_TEXT, 0},
    {"phone", "phone", CM_COL_TEXT, 1},
    {"firstName", "first_name", CM_COL_TEXT, 0},
    {"lastName", "last_name", CM_COL_TEXT, 0},
    {"role", "role", CM_COL_TEXT, 0},
    {"specialization", "specialization", CM_COL_TEXT, 1},
    {"licenseNumber", "license_number", CM_COL_TEXT, 1},
    {"isActive", "is_active", CM_COL_BOOL, 0},
    {"createdAt", "created_at", CM_COL_TIMESTAMP, 0},
    {"updatedAt", "updated_at", CM_COL_TIMESTAMP, 0},
};

static const cm_column_t patient_cols[] = {
    {"id", "id", CM_COL_INT, 0},
    {"clinicId", "clinic_id", CM_COL_INT, 0},
    {"firstName", "first_name", CM_COL_TEXT, 0},
    {"lastName", "last_name", CM_COL_TEXT, 0},
    {"middleName", "middle_name", CM_COL_TEXT, 1},
    {"birthDate", "birth_date", CM_COL_DATE, 1},
    {"gender", "gender", CM_COL_TEXT, 1},
    {"phone", "phone", CM_COL_TEXT, 1},
    {"email", "email", CM_COL_TEXT, 1},
    {"createdAt", "created_at", CM_COL_TIMESTAMP, 0},
    {"updatedAt", "updated_at", CM_COL_TIMESTAMP, 0},
};

static const cm_column_t appt_cols[] = {
    {"id", "id", CM_COL_INT, 0},
    {"clinicId", "clinic_id", CM_COL_INT, 0},
    {"doctorId", "doctor_id", CM_COL_INT, 0},
    {"patientId", "patient_id", CM_COL_INT, 0},
    {"startsAt", "starts_at", CM_COL_TIMESTAMP, 0},
    {"endsAt", "ends_at", CM_COL_TIMESTAMP, 0},
    {"status", "status", CM_COL_TEXT, 0},
    {"reason", "reason", CM_COL_TEXT, 1},
    {"createdAt", "created_at", CM_COL_TIMESTAMP, 0},
    {"updatedAt", "updated_at", CM_COL_TIMESTAMP, 0},
};

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

_Static_assert(NELEM(clinic_cols) == CM_CLINIC__CNT, "clinic columns");
_Static_assert(NELEM(user_cols) == CM_USER__CNT, "user columns");
_Static_assert(NELEM(patient_cols) == CM_PATIENT__CNT, "patient columns");
_Static_assert(NELEM(appt_cols) == CM_APPT__CNT, "appointment columns");
_Static_assert(CM_USER__CNT <= CM_MAX_COLS, "CM_MAX_COLS too small");

static const char *const table_names[CM_TABLE__CNT] = {
    "?", "Clinic", "User", "Patient", "Appointment"};

const cm_column_t *cm_table_columns(cm_table_t table, int *cnt) {
  const cm_column_t *cols = NULL;
  int n = 0;

  switch (table) {
  case CM_TABLE_CLINIC:
    cols = clinic_cols;
    n = NELEM(clinic_cols);
    break;
  case CM_TABLE_USER:
    cols = user_cols;
    n = NELEM(user_cols);
    break;
  case CM_TABLE_PATIENT:
    cols = patient_cols;
    n = NELEM(patient_cols);
    break;
  case CM_TABLE_APPOINTMENT:
    cols = appt_cols;
    n = NELEM(appt_cols);
    break;
  default: break;
  }
  if (cnt != NULL)
    *cnt = n;
  return cols;
}

const char *cm_table_name(cm_table_t table) {
  if (table <= CM_TABLE_NONE || table >= CM_TABLE__CNT)
    return "?";
  return table_names[table];
}

cm_table_t cm_table_from_name(const char *name) {
  int t;

  if (name == NULL)
    return CM_TABLE_NONE;
  for (t = CM_TABLE_NONE + 1; t < CM_TABLE__CNT; t++)
    if (strcmp(name, table_names[t]) == 0)
      return (cm_table_t)t;
  return CM_TABLE_NONE;
}
