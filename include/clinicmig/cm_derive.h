/**
 * @file cm_derive.h
 * @brief Derives the new schema from the mirror for the keys a batch
 *        touched (the mapping f of DESIGN §2.3).
 *
 * NOTES
 * Derivation reads only the mirror, never the events, so the result is a
 * function of the mirror's rows whatever order they arrived in. Groups
 * span partitions, so before it reads a group the derive step takes a
 * transaction-scoped advisory lock on each of the group's keys, in one
 * fixed order: of two workers changing one group, the one that commits
 * last derives it from everything the other committed.
 */
#ifndef CM_DERIVE_H
#define CM_DERIVE_H

#include "clinicmig/cm_db.h"
#include "clinicmig/cm_mirror.h"

typedef struct cm_derive_s cm_derive_t;

cm_derive_t *cm_derive_new(cm_db_t *db);
void cm_derive_destroy(cm_derive_t *d);

/**
 * @brief Re-derives global_doctor and clinic_doctor for the users in
 *        @p users (touched ids and their email keys before and after),
 *        inside the caller's transaction.
 */
int cm_derive_doctors(cm_derive_t *d, cm_db_t *db, const cm_touched_t *users,
                      char *errstr, size_t errstr_size);

#endif
