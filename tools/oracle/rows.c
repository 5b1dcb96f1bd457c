/*
 * rows.c — the oracle's memory: an arena for strings, sets of rows.
 *
 * NOTES
 * A run reads a few tables once and frees everything at exit, so strings
 * and row slots go into an arena of large chunks: no per-value free, no
 * leak paths. The arena also keeps the query results whose cells the
 * rows point at, so that a value is not copied. A failed allocation is
 * remembered by the arena, so that a loop filling rows can check once at
 * its end.
 */
#include "oracle.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE ((size_t)1 << 20)
#define ALIGN 16

typedef struct chunk_s {
  struct chunk_s *next;
  size_t used;
  size_t size;
  max_align_t data[];
} chunk_t;

struct or_arena_s {
  chunk_t *head;
  PGresult **res;
  size_t n_res;
  size_t cap_res;
  int failed;
};

const or_table_t or_tables[OR_N_TABLES] = {
    {"global_doctor",
     5,
     {"email", "first_name", "last_name", "specialization", "license_number"}},
    {"clinic_doctor", 3, {"global_doctor_id", "clinic_id", "is_active"}},
    {"global_patient",
     6,
     {"first_name", "last_name", "middle_name", "birth_date", "gender",
      "member_count"}},
    {"clinic_patient", 4, {"global_patient_id", "clinic_id", "phone", "email"}},
    {"appointment",
     7,
     {"clinic_id", "clinic_doctor_id", "clinic_patient_id", "starts_at",
      "ends_at", "status", "reason"}},
};

or_arena_t *or_arena_new(void) {
  return calloc(1, sizeof(or_arena_t));
}

void or_arena_destroy(or_arena_t *a) {
  chunk_t *c, *next;
  size_t i;

  if (!a)
    return;
  for (i = 0; i < a->n_res; i++)
    PQclear(a->res[i]);
  free(a->res);
  for (c = a->head; c; c = next) {
    next = c->next;
    free(c);
  }
  free(a);
}

int or_arena_adopt(or_arena_t *a, PGresult *res) {
  PGresult **grown;
  size_t cap;

  if (a->n_res == a->cap_res) {
    cap = a->cap_res ? a->cap_res * 2 : 8;
    grown = realloc(a->res, cap * sizeof(*grown));
    if (!grown) {
      PQclear(res);
      a->failed = 1;
      return -1;
    }
    a->res = grown;
    a->cap_res = cap;
  }
  a->res[a->n_res++] = res;
  return 0;
}

/* Adds a chunk of at least @p need bytes in front of the list. */
static chunk_t *chunk_add(or_arena_t *a, size_t need) {
  size_t size = need > CHUNK_SIZE ? need : CHUNK_SIZE;
  chunk_t *c;

  if (size > SIZE_MAX - sizeof(chunk_t))
    return NULL;
  c = malloc(sizeof(chunk_t) + size);
  if (!c)
    return NULL;
  c->used = 0;
  c->size = size;
  c->next = a->head;
  a->head = c;
  return c;
}

void *or_alloc(or_arena_t *a, size_t size) {
  chunk_t *c = a->head;
  size_t rounded;
  void *p;

  if (size > SIZE_MAX - ALIGN) {
    a->failed = 1;
    return NULL;
  }
  rounded = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
  if (!c || c->size - c->used < rounded) {
    c = chunk_add(a, rounded);
    if (!c) {
      a->failed = 1;
      return NULL;
    }
  }
  p = (char *)c->data + c->used;
  c->used += rounded;
  memset(p, 0, size);
  return p;
}

const char *or_strdup(or_arena_t *a, const char *s) {
  size_t n;
  char *p;

  if (!s)
    return NULL;
  n = strlen(s);
  p = or_alloc(a, n + 1);
  if (p)
    memcpy(p, s, n + 1);
  return p;
}

const char *or_i64_text(or_arena_t *a, int64_t v) {
  char buf[32];

  snprintf(buf, sizeof(buf), "%" PRId64, v);
  return or_strdup(a, buf);
}

int or_arena_failed(const or_arena_t *a) {
  return a->failed;
}

const char **or_rows_add(or_rows_t *rs, or_arena_t *a, int64_t id, int ncols) {
  const char **val;
  or_row_t *grown;
  size_t cap;

  if (rs->n == rs->cap) {
    cap = rs->cap ? rs->cap * 2 : 256;
    if (cap > SIZE_MAX / sizeof(or_row_t))
      return NULL;
    grown = realloc(rs->row, cap * sizeof(or_row_t));
    if (!grown)
      return NULL;
    rs->row = grown;
    rs->cap = cap;
  }
  val = or_alloc(a, (size_t)ncols * sizeof(*val));
  if (!val)
    return NULL;
  rs->row[rs->n].id = id;
  rs->row[rs->n].val = val;
  rs->n++;
  return val;
}

static int row_cmp(const void *x, const void *y) {
  const or_row_t *a = x, *b = y;

  return (a->id > b->id) - (a->id < b->id);
}

void or_rows_sort(or_rows_t *rs) {
  if (rs->n > 1)
    qsort(rs->row, rs->n, sizeof(or_row_t), row_cmp);
}

void or_rows_free(or_rows_t *rs) {
  free(rs->row);
  rs->row = NULL;
  rs->n = rs->cap = 0;
}

int or_parse_i64(const char *s, int64_t *out) {
  char *end;
  long long v;

  if (!s || !*s)
    return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return -1;
  *out = (int64_t)v;
  return 0;
}
