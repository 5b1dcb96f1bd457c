/*
 * stats.c — the worker's figures, shared by the loop and its observers.
 *
 * NOTES
 * One mutex guards everything here. The consumer loop takes it once per
 * committed batch (and per assignment, loop turn and database round
 * trip); the progress thread and libmicrohttpd's thread take it
 * only to copy (cm_stats_snapshot), and format the copy afterwards. So
 * no reader ever holds the loop up for longer than a memcpy, and nothing
 * here runs per event. What each figure means is docs/observability.md.
 */
#include "clinicmig/cm_stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "clinicmig/cm_err.h"

/* batch seconds: from a few milliseconds to a stalled database */
const double cm_stats_seconds_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,  5,     10,   30,  -1};
/* batch events: 1 up to the largest batch.max.events in use */
const double cm_stats_events_le[] = {1,   5,    10,   25,   50,    100, 250,
                                     500, 1000, 2500, 5000, 10000, -1};

typedef struct sample_s {
  int events;
  double ms;
} sample_t;

struct cm_stats_s {
  pthread_mutex_t lock;
  int64_t started_ms; /* wall */
  int64_t counts[CM_ENTITY__CNT][CM_COUNT__CNT];
  int64_t batches, events, retries;
  cm_stats_hist_t seconds, sizes;
  cm_stats_part_t *parts;
  int n_parts, cap_parts;
  /* the current interval */
  int64_t interval_start; /* monotonic */
  int64_t interval_consumed;
  sample_t window[CM_STATS_WINDOW];
  int win_n, win_next;
  /* health */
  int running, db_ok;
  int64_t last_turn; /* monotonic */
  rd_kafka_t *rk;    /* whose watermark cache snapshots read; NULL-able */
};

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timeval tv;

  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

const char *cm_entity_name(cm_entity_t e) {
  static const char *const names[] = {"doctor", "patient", "appointment",
                                      "other"};

  return e >= 0 && e < CM_ENTITY__CNT ? names[e] : "other";
}

const char *cm_count_name(cm_count_t c) {
  static const char *const names[] = {"consumed", "applied", "stale", "skipped",
                                      "dead_lettered"};

  return c >= 0 && c < CM_COUNT__CNT ? names[c] : "?";
}

cm_entity_t cm_entity_of_table(cm_table_t table) {
  switch (table) {
  case CM_TABLE_USER: return CM_ENTITY_DOCTOR;
  case CM_TABLE_PATIENT: return CM_ENTITY_PATIENT;
  case CM_TABLE_APPOINTMENT: return CM_ENTITY_APPOINTMENT;
  default: return CM_ENTITY_OTHER;
  }
}

cm_stats_t *cm_stats_new(void) {
  cm_stats_t *s = calloc(1, sizeof(*s));

  if (!s)
    return NULL;
  if (pthread_mutex_init(&s->lock, NULL) != 0) {
    free(s);
    return NULL;
  }
  s->started_ms = wall_ms();
  s->interval_start = s->last_turn = mono_ms();
  return s;
}

void cm_stats_destroy(cm_stats_t *s) {
  if (!s)
    return;
  pthread_mutex_destroy(&s->lock);
  free(s->parts);
  free(s);
}

static void hist_add(cm_stats_hist_t *h, const double *le, double v) {
  int i;

  for (i = 0; le[i] >= 0 && v > le[i]; i++)
    ;
  h->bucket[i]++;
  h->count++;
  h->sum += v;
}

static cm_stats_part_t *find_part(cm_stats_t *s, const char *topic,
                                  int32_t partition) {
  int i;

  for (i = 0; i < s->n_parts; i++)
    if (s->parts[i].partition == partition &&
        strcmp(s->parts[i].topic, topic) == 0)
      return &s->parts[i];
  return NULL;
}

static void add_offsets(cm_stats_t *s,
                        const rd_kafka_topic_partition_list_t *l) {
  cm_stats_part_t *p;
  int i;

  for (i = 0; l && i < l->cnt; i++) {
    p = find_part(s, l->elems[i].topic, l->elems[i].partition);
    if (p && l->elems[i].offset > p->committed)
      p->committed = l->elems[i].offset;
  }
}

void cm_stats_batch(cm_stats_t *s, const cm_stats_batch_t *b) {
  sample_t *w;
  int e, c;

  pthread_mutex_lock(&s->lock);
  for (e = 0; e < CM_ENTITY__CNT; e++)
    for (c = 0; c < CM_COUNT__CNT; c++)
      s->counts[e][c] += b->counts[e][c];
  for (e = 0; e < CM_ENTITY__CNT; e++)
    s->interval_consumed += b->counts[e][CM_COUNT_CONSUMED];
  s->batches++;
  s->events += b->events;
  hist_add(&s->seconds, cm_stats_seconds_le, b->seconds);
  hist_add(&s->sizes, cm_stats_events_le, (double)b->events);
  w = &s->window[s->win_next];
  w->events = b->events;
  w->ms = b->seconds * 1000.0;
  s->win_next = (s->win_next + 1) % CM_STATS_WINDOW;
  if (s->win_n < CM_STATS_WINDOW)
    s->win_n++;
  add_offsets(s, b->offsets);
  pthread_mutex_unlock(&s->lock);
}

void cm_stats_retry(cm_stats_t *s) {
  pthread_mutex_lock(&s->lock);
  s->retries++;
  pthread_mutex_unlock(&s->lock);
}

static int reserve_parts(cm_stats_t *s, int n) {
  cm_stats_part_t *np;

  if (n <= s->cap_parts)
    return 0;
  np = realloc(s->parts, sizeof(*np) * (size_t)n);
  if (!np)
    return CM_ERR_NOMEM;
  s->parts = np;
  s->cap_parts = n;
  return 0;
}

void cm_stats_assign(cm_stats_t *s,
                     const rd_kafka_topic_partition_list_t *parts,
                     const int64_t *highs, const char *replay_topic) {
  const rd_kafka_topic_partition_t *e;
  cm_stats_part_t *p;
  int i;

  pthread_mutex_lock(&s->lock);
  s->n_parts = 0;
  if (parts && reserve_parts(s, parts->cnt) == 0) {
    for (i = 0; i < parts->cnt; i++) {
      e = &parts->elems[i];
      p = &s->parts[s->n_parts++];
      snprintf(p->topic, sizeof(p->topic), "%s", e->topic);
      p->partition = e->partition;
      p->replay = replay_topic && strcmp(e->topic, replay_topic) == 0;
      p->committed = e->offset >= 0 ? e->offset : -1;
      p->high = highs ? highs[i] : -1;
    }
  }
  pthread_mutex_unlock(&s->lock);
}

void cm_stats_set_consumer(cm_stats_t *s, rd_kafka_t *rk) {
  pthread_mutex_lock(&s->lock);
  s->rk = rk;
  pthread_mutex_unlock(&s->lock);
}

void cm_stats_turn(cm_stats_t *s, int running) {
  int64_t t = mono_ms();

  pthread_mutex_lock(&s->lock);
  s->last_turn = t;
  if (running)
    s->running = 1;
  pthread_mutex_unlock(&s->lock);
}

void cm_stats_db(cm_stats_t *s, int ok) {
  int64_t t = mono_ms();

  pthread_mutex_lock(&s->lock);
  s->db_ok = ok;
  s->last_turn = t; /* waiting for the database is not a stall */
  pthread_mutex_unlock(&s->lock);
}

/* ---- snapshots ----------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return (x > y) - (x < y);
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

/* nearest rank: the smallest value with at least p of the values at or
 * below it */
static size_t rank(int n, double p) {
  size_t r = (size_t)(p * n + 0.999999);

  return r ? r - 1 : 0;
}

/* The interval's percentiles, from a copy of the window made under the
 * lock; sorted here, outside it. */
static int percentiles(const sample_t *win, int n, cm_stats_snapshot_t *out) {
  int64_t *sizes;
  double *ms;
  int i;

  if (n == 0)
    return 0;
  sizes = malloc(sizeof(*sizes) * (size_t)n);
  ms = malloc(sizeof(*ms) * (size_t)n);
  if (!sizes || !ms) {
    free(sizes);
    free(ms);
    return CM_ERR_NOMEM;
  }
  for (i = 0; i < n; i++) {
    sizes[i] = win[i].events;
    ms[i] = win[i].ms;
  }
  qsort(sizes, (size_t)n, sizeof(*sizes), cmp_i64);
  qsort(ms, (size_t)n, sizeof(*ms), cmp_dbl);
  out->size_p50 = sizes[rank(n, 0.5)];
  out->size_p99 = sizes[rank(n, 0.99)];
  out->latency_ms_p50 = ms[rank(n, 0.5)];
  out->latency_ms_p99 = ms[rank(n, 0.99)];
  free(sizes);
  free(ms);
  return 0;
}

/* librdkafka's cached high watermarks, read outside our lock (librdkafka
 * takes its own); a partition it has no figure for keeps the one it had
 * when it was assigned. */
static void read_watermarks(rd_kafka_t *rk, cm_stats_snapshot_t *out) {
  int64_t low, high;
  int i;

  for (i = 0; rk && i < out->n_parts; i++) {
    cm_stats_part_t *p = &out->parts[i];

    if (rd_kafka_get_watermark_offsets(rk, p->topic, p->partition, &low,
                                       &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0)
      p->high = high;
  }
}

int64_t cm_stats_part_lag(const cm_stats_part_t *p) {
  return p->high >= 0 && p->committed >= 0 && p->high > p->committed
             ? p->high - p->committed
             : 0;
}

static void sum_lags(cm_stats_snapshot_t *out) {
  int i;

  for (i = 0; i < out->n_parts; i++) {
    const cm_stats_part_t *p = &out->parts[i];
    int64_t lag = cm_stats_part_lag(p);

    if (p->replay)
      out->lag_replay += lag;
    else
      out->lag_live += lag;
  }
}

/* Copies the cumulative figures; the caller holds the lock. */
static int copy_locked(cm_stats_t *s, cm_stats_snapshot_t *out, int64_t now) {
  memcpy(out->counts, s->counts, sizeof(out->counts));
  out->started_ms = s->started_ms;
  out->batches = s->batches;
  out->events = s->events;
  out->retries = s->retries;
  out->seconds = s->seconds;
  out->sizes = s->sizes;
  out->running = s->running;
  out->db_ok = s->db_ok;
  out->since_turn_ms = now - s->last_turn;
  out->n_parts = s->n_parts;
  out->parts = malloc(sizeof(*out->parts) * (size_t)(s->n_parts + 1));
  if (!out->parts)
    return CM_ERR_NOMEM;
  if (s->n_parts > 0)
    memcpy(out->parts, s->parts, sizeof(*out->parts) * (size_t)s->n_parts);
  return 0;
}

/* Moves the interval's figures out and starts a new interval; the caller
 * holds the lock. The window comes out oldest first into @p win. */
static void take_interval(cm_stats_t *s, cm_stats_snapshot_t *out,
                          sample_t *win, int64_t now) {
  int first = (s->win_next - s->win_n + CM_STATS_WINDOW) % CM_STATS_WINDOW;
  int i;

  for (i = 0; i < s->win_n; i++)
    win[i] = s->window[(first + i) % CM_STATS_WINDOW];
  out->interval_batches = s->win_n;
  out->interval_consumed = s->interval_consumed;
  out->interval_s = (double)(now - s->interval_start) / 1000.0;
  s->win_n = s->win_next = 0;
  s->interval_consumed = 0;
  s->interval_start = now;
}

int cm_stats_snapshot(cm_stats_t *s, int new_interval,
                      cm_stats_snapshot_t *out) {
  sample_t *win = NULL;
  int64_t now = mono_ms();
  rd_kafka_t *rk;
  int r;

  memset(out, 0, sizeof(*out));
  if (new_interval) {
    win = malloc(sizeof(*win) * CM_STATS_WINDOW);
    if (!win)
      return CM_ERR_NOMEM;
  }
  pthread_mutex_lock(&s->lock);
  r = copy_locked(s, out, now);
  if (!r && new_interval)
    take_interval(s, out, win, now);
  rk = s->rk;
  pthread_mutex_unlock(&s->lock);
  out->now_ms = wall_ms();
  if (!r && new_interval)
    r = percentiles(win, out->interval_batches, out);
  free(win);
  if (r) {
    cm_stats_snapshot_free(out);
    return r;
  }
  read_watermarks(rk, out);
  sum_lags(out);
  return 0;
}

void cm_stats_snapshot_free(cm_stats_snapshot_t *snap) {
  free(snap->parts);
  snap->parts = NULL;
  snap->n_parts = 0;
}

int cm_stats_ready(const cm_stats_snapshot_t *snap, char *why,
                   size_t why_size) {
  if (!snap->running) {
    snprintf(why, why_size, "starting%s",
             snap->db_ok ? "" : ": waiting for the database");
    return 0;
  }
  if (!snap->db_ok) {
    snprintf(why, why_size,
             "database unreachable: the last round trip "
             "failed");
    return 0;
  }
  if (snap->n_parts == 0) {
    snprintf(why, why_size, "no partitions assigned");
    return 0;
  }
  snprintf(why, why_size, "ready");
  return 1;
}

int cm_stats_alive(const cm_stats_snapshot_t *snap) {
  return snap->since_turn_ms < CM_STATS_STALL_MS;
}
