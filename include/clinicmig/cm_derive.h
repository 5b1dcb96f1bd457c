/**
 * @file cm_derive.h
 * @brief Derives the new schema from the mirror for the keys a batch
 *        touched (the mapping f of docs/design.md §2.3).
 *
 * NOTES
 * Derivation reads only the mirror, never the events, so the result is a
 * function of the mirror's rows whatever order they arrived in.
 *
 * Groups span partitions, so two workers may derive the same group at
 * once. Every derivation first takes transaction-scoped advisory locks on
 * the names of everything it will read: "du:<user id>" and "de:<email>"
 * for doctors; "pu:<patient id>" and "pk:<phone or email key>" for the
 * touched patients and their keys, and "pg:<anchor>" for every patient
 * component it reads; each through the bucket it hashes to (1 024
 * buckets, so that a large component cannot exhaust PostgreSQL's lock
 * table). A transaction that changes a mirror row locks the names of
 * that row's keys before and after the change, and one that changes a
 * component's members holds that component's name (it read them), so
 * while a derivation holds its names, nothing it reads can be committed
 * by anyone else. It re-reads after each round of locking and locks what
 * it newly finds until a round finds nothing new; of two workers
 * changing one group, the one that commits last derives it from
 * everything the other committed. Names are locked in sorted order
 * within a round, doctors before patients; a deadlock across rounds is
 * detected by PostgreSQL and the batch runs again.
 */
#ifndef CM_DERIVE_H
#define CM_DERIVE_H

#include "clinicmig/cm_config.h"
#include "clinicmig/cm_db.h"
#include "clinicmig/cm_mirror.h"
#include "clinicmig/cm_set.h"

typedef struct cm_derive_s cm_derive_t;

/** @param match  the patient linking rule (patients.match). */
cm_derive_t *cm_derive_new(cm_db_t *db, cm_match_t match);
void cm_derive_destroy(cm_derive_t *d);

/**
 * @brief Re-derives, inside the caller's transaction, every row of the new
 *        schema that depends on what the mirror step changed: the doctor
 *        groups of the touched users and of the doctors the touched
 *        appointments name, the patient components of the touched
 *        patients, and the touched appointments together with every
 *        appointment that names a user or patient that appeared or
 *        vanished.
 * @param touched  the mirror step's results, indexed User, Patient,
 *                 Appointment.
 */
int cm_derive_batch(cm_derive_t *d, cm_db_t *db, const cm_touched_t *users,
                    const cm_touched_t *patients, const cm_touched_t *appts,
                    char *errstr, size_t errstr_size);

#endif
