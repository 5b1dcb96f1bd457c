/**
 * @file cm_set.h
 * @brief Small sorted sets of strings and of 64-bit ids.
 *
 * NOTES
 * The derive step gathers the keys and ids a batch touched, the lock
 * names it holds and the members of the patient groups it reads; these
 * sets are its working memory. They grow by appending and are sorted and
 * de-duplicated on demand (cm_strset_sort); lookups need a sorted set.
 */
#ifndef CM_SET_H
#define CM_SET_H

#include <stddef.h>
#include <stdint.h>

typedef struct cm_strset_s {
  char **v;
  int n, cap;
  int sorted;
} cm_strset_t;

typedef struct cm_idset_s {
  int64_t *v;
  int n, cap;
  int sorted;
} cm_idset_t;

/** @brief Appends a copy of @p prefix followed by @p s. @returns 0 or -1. */
int cm_strset_add(cm_strset_t *set, const char *prefix, const char *s);
/** @brief Sorts (byte order) and removes duplicates. */
void cm_strset_sort(cm_strset_t *set);
/** @returns 1 if the sorted @p set holds @p s. */
int cm_strset_has(const cm_strset_t *set, const char *s);
void cm_strset_clear(cm_strset_t *set);

int cm_idset_add(cm_idset_t *set, int64_t id);
int cm_idset_add_all(cm_idset_t *set, const int64_t *ids, int n);
void cm_idset_sort(cm_idset_t *set);
/** @returns 1 if the sorted @p set holds @p id. */
int cm_idset_has(const cm_idset_t *set, int64_t id);
void cm_idset_clear(cm_idset_t *set);

#endif
