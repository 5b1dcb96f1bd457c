/*
 * derive_int.h — the parts of the derive step (worker/ only).
 *
 * NOTES
 * The step calls one way: derive.c (doctors, appointments, the order of
 * a batch's derivation) uses derive_patient.c (patient components), and
 * both use derive_lock.c (the advisory locks of cm_derive.h). Nothing
 * below calls back up. Each part prepares its own statements, from the
 * files of worker/sql (worker/sql/README.md).
 */
#ifndef CM_DERIVE_INT_H
#define CM_DERIVE_INT_H

#include <stddef.h>

#include "clinicmig/cm_config.h"
#include "clinicmig/cm_db.h"
#include "clinicmig/cm_mirror.h"
#include "clinicmig/cm_set.h"

/* ---- derive_lock.c ---------------------------------------------------- */

/**
 * @brief Takes the advisory locks of the names in @p want not in @p held
 *        (sorted, one statement) and adds them to @p held.
 * @param added  set to the number of names newly locked.
 */
int cm_derive_lock(cm_db_t *db, cm_strset_t *want, cm_strset_t *held,
                   int *added, char *errstr, size_t errstr_size);

/* ---- derive_patient.c ------------------------------------------------- */

typedef struct cm_patients_s cm_patients_t;

/** @param match  the patient linking rule (patients.match). */
cm_patients_t *cm_patients_new(cm_db_t *db, cm_match_t match);
void cm_patients_destroy(cm_patients_t *p);

/**
 * @brief Derives the patient components of @p pt, inside the caller's
 *        transaction, under the names in @p held and those it adds.
 * @param refs  patient ids that touched appointments name: only locked.
 */
int cm_patients_derive(cm_patients_t *p, cm_db_t *db, const cm_touched_t *pt,
                       const cm_idset_t *refs, cm_strset_t *held,
                       char *errstr, size_t errstr_size);

#endif
