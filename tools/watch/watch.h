/*
 * watch.h — clinicmig-watch: what the progress and reconciliation streams
 * say, folded into one state, and the views of it.
 *
 * NOTES
 * The events are those of docs/observability.md. The state keeps, per
 * worker, its latest progress event, and per entity the latest counts,
 * verdict and unresolved links the reconciler published, and a short
 * ring of recent notable events (mismatches, merges, splits, gaps,
 * suspects), and how many Avro messages could not be read. Times are the
 * events' own stamps ("ts"), so a stream read from its start shows the workers
 * as they were, not as alive now.
 */
#ifndef WATCH_H
#define WATCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define W_ENTITIES 3 /* doctor, patient, appointment */
#define W_RECENT 8
#define W_LINE 192

typedef struct w_counts_s {
  int64_t consumed, applied, stale, skipped, dead;
} w_counts_t;

typedef struct w_worker_s {
  char id[96];
  int64_t ts_ms;     /* of its latest progress event */
  double interval_s; /* its progress interval */
  int final;         /* its latest event was its last */
  int64_t lag[W_ENTITIES];
  int64_t lag_replay;
  double rate;  /* events/s over its last interval */
  double eta_s; /* -1: unknown */
  w_counts_t ent[W_ENTITIES];
} w_worker_t;

typedef struct w_entity_s {
  int has_counts;
  int64_t migrated, mirror, dead;
  int64_t legacy; /* -1: no legacy connection */
  int64_t global; /* -1: none (appointments) */
  int has_verdict;
  int in_sync;
  int64_t verdict_lag;
  int64_t verdict_ms; /* when the latest verdict was stamped */
  char since[40];
  char reason[W_LINE];
  int64_t unresolved; /* -1: not reported */
} w_entity_t;

typedef struct w_state_s {
  w_worker_t *workers;
  int n_workers, cap;
  w_entity_t ent[W_ENTITIES];
  char recent[W_RECENT][W_LINE];
  int n_recent;
  int64_t since_ms;             /* events stamped before are ignored */
  int64_t events;               /* events folded in */
  int64_t undecodable;          /* Avro messages that could not be read */
  char undecodable_why[W_LINE]; /* the reason of the latest */
} w_state_t;

/** The entity names, in display order. */
extern const char *const w_entity_names[W_ENTITIES];

void w_state_init(w_state_t *s, int64_t since_ms);
void w_state_clear(w_state_t *s);

/** Folds one event (a Kafka message value) in; ignores what it cannot
 *  read. */
void w_state_apply(w_state_t *s, const char *value, size_t len);

/** Counts an Avro message that could not be read, and why. */
void w_state_undecodable(w_state_t *s, const char *why);

/** Whether worker @p w counts as alive at @p now_ms. */
int w_worker_alive(const w_worker_t *w, int64_t now_ms);

/** 1 when some worker is alive and none has lag left; @p as_of_ms gets
 *  the latest stamp of their events. */
int w_workers_drained(const w_state_t *s, int64_t now_ms, int64_t *as_of_ms);

/** 1 when every entity has counts and a verdict of lag 0 stamped at or
 *  after @p after_ms. */
int w_reconciled(const w_state_t *s, int64_t after_ms);

/** 1 when every entity's latest verdict is in sync. */
int w_all_in_sync(const w_state_t *s);

/* Views (view.c). */
void w_view_live(FILE *out, const w_state_t *s, int64_t now_ms, int tty);
void w_view_report(FILE *out, const w_state_t *s);
void w_view_json_state(FILE *out, const w_state_t *s, int64_t now_ms);
void w_view_json_report(FILE *out, const w_state_t *s);

#endif
