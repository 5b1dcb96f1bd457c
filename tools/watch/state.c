/*
 * state.c — folds progress and reconciliation events into the watch's
 * state (docs/observability.md).
 *
 * NOTES
 * Every field is read defensively: an event of a newer version, or one
 * missing a field, changes what it can and nothing else. Numbers are read
 * from cJSON's doubles: counters and offsets stay far below 2^53.
 */
#include "watch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clinicmig/cm_value.h"

const char *const w_entity_names[W_ENTITIES] = {"doctor", "patient",
                                                "appointment"};

static const char *const tables[W_ENTITIES] = {"User", "Patient",
                                               "Appointment"};

void w_state_init(w_state_t *s, int64_t since_ms) {
  int i;

  memset(s, 0, sizeof(*s));
  s->since_ms = since_ms;
  for (i = 0; i < W_ENTITIES; i++) {
    s->ent[i].legacy = -1;
    s->ent[i].global = -1;
    s->ent[i].unresolved = -1;
  }
}

void w_state_clear(w_state_t *s) {
  free(s->workers);
  memset(s, 0, sizeof(*s));
}

static int entity_index(const char *name) {
  int i;

  for (i = 0; name && i < W_ENTITIES; i++)
    if (strcmp(name, w_entity_names[i]) == 0)
      return i;
  return -1;
}

/* The entity whose legacy table a topic carries (<prefix>.<schema>.<T>). */
static int topic_entity(const char *topic) {
  const char *dot = topic ? strrchr(topic, '.') : NULL;
  int i;

  for (i = 0; dot && i < W_ENTITIES; i++)
    if (strcmp(dot + 1, tables[i]) == 0)
      return i;
  return -1;
}

static double num(const cJSON *o, const char *name, double dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *str(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t ts_ms(const cJSON *o, const char *name) {
  const char *t = str(o, name);
  int64_t us;

  return t && cm_timestamp_parse(t, &us) == 0 ? us / 1000 : 0;
}

static w_worker_t *worker(w_state_t *s, const char *id) {
  w_worker_t *w;
  int i;

  for (i = 0; i < s->n_workers; i++)
    if (strcmp(s->workers[i].id, id) == 0)
      return &s->workers[i];
  if (s->n_workers == s->cap) {
    int cap = s->cap ? s->cap * 2 : 8;

    w = realloc(s->workers, sizeof(*w) * (size_t)cap);
    if (!w)
      return NULL;
    s->workers = w;
    s->cap = cap;
  }
  w = &s->workers[s->n_workers++];
  memset(w, 0, sizeof(*w));
  snprintf(w->id, sizeof(w->id), "%s", id);
  return w;
}

static void read_counts(const cJSON *o, w_counts_t *c) {
  c->consumed = (int64_t)num(o, "consumed", 0);
  c->applied = (int64_t)num(o, "applied", 0);
  c->stale = (int64_t)num(o, "stale", 0);
  c->skipped = (int64_t)num(o, "skipped", 0);
  c->dead = (int64_t)num(o, "dead_lettered", 0);
}

/* Lag per entity, from the partitions the worker holds. */
static void read_lags(const cJSON *ev, w_worker_t *w) {
  const cJSON *parts = cJSON_GetObjectItemCaseSensitive(ev, "partitions"), *p;
  const cJSON *lag = cJSON_GetObjectItemCaseSensitive(ev, "lag");
  int e;

  memset(w->lag, 0, sizeof(w->lag));
  cJSON_ArrayForEach(p, parts) {
    e = topic_entity(str(p, "topic"));
    if (e >= 0)
      w->lag[e] += (int64_t)num(p, "lag", 0);
  }
  w->lag_replay = (int64_t)num(lag, "replay", 0);
}

static void on_progress(w_state_t *s, const cJSON *ev, int64_t t) {
  const cJSON *ents = cJSON_GetObjectItemCaseSensitive(ev, "entities");
  const char *id = str(ev, "worker");
  w_worker_t *w;
  int e;

  if (!id || !(w = worker(s, id)) || t < w->ts_ms)
    return;
  w->ts_ms = t;
  w->interval_s = num(ev, "interval_s", 5.0);
  w->final = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "final"));
  w->rate = num(ev, "rate_per_s", 0);
  w->eta_s = num(ev, "eta_s", -1);
  for (e = 0; e < W_ENTITIES; e++)
    read_counts(cJSON_GetObjectItemCaseSensitive(ents, w_entity_names[e]),
                &w->ent[e]);
  read_lags(ev, w);
}

static void on_counts(w_entity_t *en, const cJSON *ev) {
  const cJSON *total = cJSON_GetObjectItemCaseSensitive(ev, "total");

  en->has_counts = 1;
  en->migrated = (int64_t)num(total, "migrated", 0);
  en->mirror = (int64_t)num(total, "mirror", 0);
  en->legacy = (int64_t)num(total, "legacy", -1);
  en->global = (int64_t)num(total, "global", -1);
  en->dead = (int64_t)num(ev, "dead_lettered", 0);
}

static void on_verdict(w_entity_t *en, const cJSON *ev, int64_t t) {
  if (t < en->verdict_ms)
    return;
  en->has_verdict = 1;
  en->verdict_ms = t;
  en->in_sync = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "in_sync"));
  en->verdict_lag = (int64_t)num(ev, "lag", -1);
  snprintf(en->since, sizeof(en->since), "%s",
           str(ev, "since") ? str(ev, "since") : "");
  snprintf(en->reason, sizeof(en->reason), "%s",
           str(ev, "reason") ? str(ev, "reason") : "");
}

static int64_t list_len(const cJSON *ev, const char *name) {
  return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ev, name));
}

/* Appends ", " and up to @p max ids of @p ev's list @p name to @p buf. */
static void ids(char *buf, size_t size, const cJSON *ev, const char *name,
                int max) {
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(ev, name), *v;
  size_t len;
  int n = 0;

  cJSON_ArrayForEach(v, l) {
    len = strlen(buf);
    if (n++ == max) {
      snprintf(buf + len, size - len, " ...");
      return;
    }
    snprintf(buf + len, size - len, " %.0f", v->valuedouble);
  }
}

static void remember(w_state_t *s, const char *line) {
  if (s->n_recent == W_RECENT) {
    memmove(s->recent[0], s->recent[1], sizeof(s->recent[0]) * (W_RECENT - 1));
    s->n_recent--;
  }
  snprintf(s->recent[s->n_recent++], W_LINE, "%s", line);
}

/* One line for a notable reconciliation event: ids only. */
static void on_notable(w_state_t *s, const cJSON *ev, const char *type) {
  const char *t = str(ev, "ts"), *ent = str(ev, "entity");
  char line[W_LINE];

  snprintf(line, sizeof(line), "%.8s %s %s", t && strlen(t) > 11 ? t + 11 : "",
           type, ent ? ent : "");
  if (strcmp(type, "mismatch") == 0) {
    snprintf(line + strlen(line), sizeof(line) - strlen(line), " %s",
             str(ev, "check") ? str(ev, "check") : "");
    ids(line, sizeof(line), ev, "missing", 3);
    ids(line, sizeof(line), ev, "extra", 3);
    ids(line, sizeof(line), ev, "differing", 3);
  } else if (strcmp(type, "merge") == 0 || strcmp(type, "split") == 0 ||
             strcmp(type, "suspect") == 0) {
    snprintf(line + strlen(line), sizeof(line) - strlen(line), " %.0f",
             num(ev, "global_patient_id", 0));
    ids(line, sizeof(line), ev, "merged", 4);
    ids(line, sizeof(line), ev, "split_off", 4);
  } else if (strcmp(type, "gap") == 0) {
    snprintf(line + strlen(line), sizeof(line) - strlen(line),
             "%s [%.0f] %.0f..%.0f", str(ev, "topic") ? str(ev, "topic") : "",
             num(ev, "partition", 0), num(ev, "from_offset", 0),
             num(ev, "to_offset", 0));
  }
  remember(s, line);
}

static void on_reconciliation(w_state_t *s, const cJSON *ev, const char *type,
                              int64_t t) {
  int e = entity_index(str(ev, "entity"));

  if (strcmp(type, "counts") == 0 && e >= 0)
    on_counts(&s->ent[e], ev);
  else if (strcmp(type, "verdict") == 0 && e >= 0)
    on_verdict(&s->ent[e], ev, t);
  else if (strcmp(type, "unresolved") == 0 && e >= 0)
    s->ent[e].unresolved = list_len(ev, "doctor") + list_len(ev, "patient");
  else if (strcmp(type, "mismatch") == 0 || strcmp(type, "merge") == 0 ||
           strcmp(type, "split") == 0 || strcmp(type, "gap") == 0 ||
           strcmp(type, "suspect") == 0)
    on_notable(s, ev, type);
}

void w_state_apply(w_state_t *s, const char *value, size_t len) {
  cJSON *ev = value ? cJSON_ParseWithLength(value, len) : NULL;
  const char *type = str(ev, "type");
  int64_t t = ts_ms(ev, "ts");

  if (type && t >= s->since_ms) {
    s->events++;
    if (strcmp(type, "progress") == 0)
      on_progress(s, ev, t);
    else
      on_reconciliation(s, ev, type, t);
  }
  cJSON_Delete(ev);
}

void w_state_undecodable(w_state_t *s, const char *why) {
  s->undecodable++;
  snprintf(s->undecodable_why, sizeof(s->undecodable_why), "%s", why);
}

int w_worker_alive(const w_worker_t *w, int64_t now_ms) {
  double window = 3 * (w->interval_s > 0 ? w->interval_s : 5.0) * 1000;

  return !w->final && (double)(now_ms - w->ts_ms) <= fmax(window, 3000);
}

int w_workers_drained(const w_state_t *s, int64_t now_ms, int64_t *as_of_ms) {
  int i, e, alive = 0;

  *as_of_ms = 0;
  for (i = 0; i < s->n_workers; i++) {
    const w_worker_t *w = &s->workers[i];

    if (!w_worker_alive(w, now_ms))
      continue;
    alive++;
    for (e = 0; e < W_ENTITIES; e++)
      if (w->lag[e] > 0)
        return 0;
    if (w->lag_replay > 0)
      return 0;
    if (w->ts_ms > *as_of_ms)
      *as_of_ms = w->ts_ms;
  }
  return alive > 0;
}

int w_reconciled(const w_state_t *s, int64_t after_ms) {
  int e;

  for (e = 0; e < W_ENTITIES; e++)
    if (!s->ent[e].has_counts || !s->ent[e].has_verdict ||
        s->ent[e].verdict_lag != 0 || s->ent[e].verdict_ms < after_ms)
      return 0;
  return 1;
}

int w_all_in_sync(const w_state_t *s) {
  int e;

  for (e = 0; e < W_ENTITIES; e++)
    if (!s->ent[e].has_verdict || !s->ent[e].in_sync)
      return 0;
  return 1;
}
