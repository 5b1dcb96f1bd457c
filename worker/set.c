/*
 * set.c — small sorted sets of strings and ids.
 */
#include "clinicmig/cm_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(void **v, int *cap, int n, size_t elem) {
  void *nv;
  int ncap;

  if (n < *cap)
    return 0;
  ncap = *cap ? *cap * 2 : 16;
  nv = realloc(*v, elem * (size_t)ncap);
  if (!nv)
    return -1;
  *v = nv;
  *cap = ncap;
  return 0;
}

int cm_strset_add(cm_strset_t *set, const char *prefix, const char *s) {
  size_t len = strlen(prefix) + strlen(s) + 1;
  char *copy;

  if (grow((void **)&set->v, &set->cap, set->n, sizeof(char *)) != 0)
    return -1;
  copy = malloc(len);
  if (!copy)
    return -1;
  snprintf(copy, len, "%s%s", prefix, s);
  set->v[set->n++] = copy;
  set->sorted = 0;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void cm_strset_sort(cm_strset_t *set) {
  int i, o = 0;

  if (set->sorted)
    return;
  if (set->n > 1) /* v is NULL while the set is empty */
    qsort(set->v, (size_t)set->n, sizeof(char *), cmp_str);
  for (i = 0; i < set->n; i++) {
    if (o > 0 && strcmp(set->v[o - 1], set->v[i]) == 0)
      free(set->v[i]);
    else
      set->v[o++] = set->v[i];
  }
  set->n = o;
  set->sorted = 1;
}

int cm_strset_has(const cm_strset_t *set, const char *s) {
  return set->n > 0 &&
         bsearch(&s, set->v, (size_t)set->n, sizeof(char *), cmp_str) != NULL;
}

void cm_strset_clear(cm_strset_t *set) {
  int i;

  for (i = 0; i < set->n; i++)
    free(set->v[i]);
  free(set->v);
  memset(set, 0, sizeof(*set));
}

int cm_idset_add(cm_idset_t *set, int64_t id) {
  if (grow((void **)&set->v, &set->cap, set->n, sizeof(int64_t)) != 0)
    return -1;
  set->v[set->n++] = id;
  set->sorted = 0;
  return 0;
}

int cm_idset_add_all(cm_idset_t *set, const int64_t *ids, int n) {
  int i;

  for (i = 0; i < n; i++)
    if (cm_idset_add(set, ids[i]) != 0)
      return -1;
  return 0;
}

static int cmp_id(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return x < y ? -1 : x > y;
}

void cm_idset_sort(cm_idset_t *set) {
  int i, o = 0;

  if (set->sorted)
    return;
  if (set->n > 1)
    qsort(set->v, (size_t)set->n, sizeof(int64_t), cmp_id);
  for (i = 0; i < set->n; i++)
    if (o == 0 || set->v[o - 1] != set->v[i])
      set->v[o++] = set->v[i];
  set->n = o;
  set->sorted = 1;
}

int cm_idset_has(const cm_idset_t *set, int64_t id) {
  return set->n > 0 &&
         bsearch(&id, set->v, (size_t)set->n, sizeof(int64_t), cmp_id) != NULL;
}

void cm_idset_clear(cm_idset_t *set) {
  free(set->v);
  memset(set, 0, sizeof(*set));
}
