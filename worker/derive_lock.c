/*
 * derive_lock.c — the derive step's advisory locks (cm_derive.h).
 *
 * NOTES
 * Names are locked by bucket: the advisory lock (25453, hash of the name
 * mod 1 024), worker/sql/lock_names.sql. PostgreSQL's lock table is a
 * fixed pool of max_locks_per_transaction x max_connections slots (6 400
 * by default) shared by every session; a lock per name made a batch whose
 * patients form one large component (thousands of keys) run out of it
 * ("out of shared memory") and retry for ever. Buckets bound a
 * transaction's locks; two names in one bucket only make two workers
 * wait for each other (docs/performance.md §10).
 */
#include "derive_int.h"

#include <stdlib.h>

#include "clinicmig/cm_err.h"
#include "cm_sql.h"

int cm_derive_lock(cm_db_t *db, cm_strset_t *want, cm_strset_t *held,
                   int *added, char *errstr, size_t errstr_size) {
  char **fresh, *arr;
  const char *params[1];
  int i, n = 0, r;

  *added = 0;
  cm_strset_sort(want);
  cm_strset_sort(held);
  fresh = malloc(sizeof(*fresh) * (size_t)(want->n ? want->n : 1));
  if (!fresh)
    return CM_ERR_NOMEM;
  for (i = 0; i < want->n; i++)
    if (!cm_strset_has(held, want->v[i]))
      fresh[n++] = want->v[i];
  arr = n ? cm_db_text_array(fresh, n, 0) : NULL;
  r = n && !arr ? CM_ERR_NOMEM : 0;
  if (!r && n) {
    params[0] = arr;
    r = cm_db_exec(db, cm_sql_lock_names, 1, params, NULL, errstr, errstr_size);
  }
  for (i = 0; !r && i < n; i++)
    if (cm_strset_add(held, "", fresh[i]) != 0)
      r = CM_ERR_NOMEM;
  if (!r)
    *added = n;
  free(arr);
  free(fresh);
  return r;
}
