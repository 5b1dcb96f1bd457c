/**
 * @file cm_mirror.h
 * @brief The mirror of the legacy rows: where every event lands first.
 *
 * NOTES
 * For each table the batch touches, the mirror step locks the stored rows
 * of the batch's keys (in key order, so workers never deadlock on them),
 * folds the batch's events into them under the version rule of
 * docs/design.md §2.2 (an event the stored version supersedes is stale; a
 * delete leaves a tombstone), and writes every changed row back with one
 * set-based statement. It reports which keys changed and their grouping
 * keys before and after, which is what the derive step needs.
 */
#ifndef CM_MIRROR_H
#define CM_MIRROR_H

#include <stdint.h>

#include "clinicmig/cm_batch.h"
#include "clinicmig/cm_db.h"
#include "clinicmig/cm_set.h"

typedef struct cm_mirror_s cm_mirror_t;

/** What one table's mirror step changed, for the derive step. */
typedef struct cm_touched_s {
  cm_idset_t ids;      /**< keys whose mirror row changed */
  cm_strset_t keys;    /**< grouping keys before and after ("e:<email>",
                            "p:<phone>") */
  cm_idset_t doctors;  /**< appointments: doctor ids named before and
                            after */
  cm_idset_t patients; /**< appointments: patient ids, likewise */
  cm_idset_t flipped;  /**< rows that were live before and are not now,
                            or the other way round: the users and patients
                            whose appointments' links can change */
} cm_touched_t;

/**
 * @brief Prepares the statements of the mirror for @p db's schema names.
 * @param phone_region  default region for phone keys.
 */
cm_mirror_t *cm_mirror_new(cm_db_t *db, const char *phone_region);

void cm_mirror_destroy(cm_mirror_t *m);

/**
 * @brief Lands the batch's events of @p table in the mirror, inside the
 *        caller's open transaction.
 *
 * Marks each item of the table APPLIED, STALE or DEAD_LETTER (an update
 * whose unchanged-TOAST placeholder has no stored value to keep); a range
 * marker is recorded and APPLIED, and the rows it deletes count as
 * changed. Fills @p touched, its sets sorted (free with cm_touched_clear()).
 * @returns 0 or a cm_db_exec() error with the reason in @p errstr.
 */
int cm_mirror_apply(cm_mirror_t *m, cm_db_t *db, cm_table_t table,
                    cm_batch_t *batch, cm_touched_t *touched, char *errstr,
                    size_t errstr_size);

/**
 * @brief Takes the batch's lock on the recorded snapshot ranges, first in
 *        the caller's open transaction: shared for an ordinary batch,
 *        exclusive for one that holds range markers, so that a marker and
 *        a batch that judges new keys against the recorded ranges never
 *        run at once (docs/design.md §3).
 * @returns 0 or a cm_db_exec() error with the reason in @p errstr.
 */
int cm_mirror_lock_ranges(cm_mirror_t *m, cm_db_t *db, const cm_batch_t *batch,
                          char *errstr, size_t errstr_size);

void cm_touched_clear(cm_touched_t *t);

#endif
