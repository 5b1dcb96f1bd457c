/*
 * verdict.c — whether each entity is in sync, after every pass.
 *
 * NOTES
 * An entity is in sync (docs/reconciliation.md, "verdict") when its last
 * pass was complete and found no mismatching id, the group's lag on the
 * entity's topic and on the replay topic is at most --lag-max, and both
 * have held for --hold-ms. "Held" starts at the first pass that finds the
 * conditions true and ends at the first that does not. A verdict is
 * published after every pass for every entity; "since" is the moment the
 * published value last changed, so the moment sync is lost shows even
 * when nothing else does. The state lives in memory: a reconciler that
 * takes over starts from "not in sync" and holds again.
 */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_log.h"

/** The lags a pass measured; known 0 when one could not be read. */
typedef struct lags_s {
  int known;
  int64_t topic[RC_ENTITY_CNT], replay;
} lags_t;

static void measure(rc_ctx_t *c, lags_t *l) {
  char topic[512], errstr[RC_ERRSTR_MAX];
  int e, rc;

  rc = rc_topic_lag(c, c->o->topic_replay, &l->replay, errstr, sizeof(errstr));
  for (e = 0; rc == 0 && e < RC_ENTITY_CNT; e++) {
    snprintf(topic, sizeof(topic), "%s.%s.%s", c->o->topic_prefix,
             c->o->source_schema, rc_entities[e].table);
    rc = rc_topic_lag(c, topic, &l->topic[e], errstr, sizeof(errstr));
  }
  l->known = rc == 0;
  if (!l->known)
    cm_warn("pass %" PRId64 ": lag unknown: %s", c->pass, errstr);
}

/* The reason, one line: what holds and what does not. */
static void reason(const rc_ctx_t *c, const rc_found_t *f, int64_t lag,
                   const lags_t *l, int64_t held_ms, char *buf, size_t size) {
  int64_t mism = f->mismatches[0] + f->mismatches[1];
  size_t n = 0;

  if (!f->complete)
    n += (size_t)snprintf(buf + n, size - n, "the last pass was incomplete");
  else if (mism)
    n += (size_t)snprintf(buf + n, size - n, "%" PRId64 " mismatching ids",
                          mism);
  else
    n += (size_t)snprintf(buf + n, size - n, "no mismatch");
  if (n >= size)
    return;
  if (!l->known)
    n += (size_t)snprintf(buf + n, size - n, ", lag unknown");
  else
    n +=
        (size_t)snprintf(buf + n, size - n, ", lag %" PRId64 " %s %" PRId64,
                         lag, lag <= c->o->lag_max ? "<=" : ">", c->o->lag_max);
  if (n >= size)
    return;
  snprintf(buf + n, size - n, ", held %.0f s of %.0f s", (double)held_ms / 1000,
           (double)c->o->hold_ms / 1000);
}

static int publish(rc_ctx_t *c, int e, int64_t lag, const lags_t *l,
                   int64_t held_ms, const char *why, char *errstr,
                   size_t size) {
  const rc_verdict_t *v = &c->verdict[e];
  char since[32];
  cm_text_t b;
  int rc;

  rc_iso_ms(v->since_ms, since, sizeof(since));
  cm_text_init(&b, RC_EVENT_MAX);
  rc_event_begin(c, &b, "verdict");
  rc_buf_key(&b, "entity");
  cm_text_json(&b, rc_entities[e].name);
  rc_buf_key(&b, "pass");
  cm_text_i64(&b, c->pass);
  rc_buf_key(&b, "in_sync");
  cm_text_str(&b, v->in_sync ? "true" : "false");
  rc_buf_key(&b, "since");
  cm_text_json(&b, since);
  rc_buf_key(&b, "lag");
  if (l->known)
    cm_text_i64(&b, lag);
  else
    cm_text_str(&b, "null");
  rc_buf_key(&b, "mismatches");
  cm_text_i64(&b, c->found[e].mismatches[0] + c->found[e].mismatches[1]);
  rc_buf_key(&b, "held_s");
  rc_buf_f3(&b, (double)held_ms / 1000);
  rc_buf_key(&b, "reason");
  cm_text_json(&b, why);
  rc = rc_event_send(c, rc_entities[e].name, &b, errstr, size);
  cm_text_free(&b);
  return rc;
}

/* Updates entity @e's verdict at @now and publishes it. */
static int judge(rc_ctx_t *c, int e, const lags_t *l, int64_t now, char *errstr,
                 size_t size) {
  rc_verdict_t *v = &c->verdict[e];
  const rc_found_t *f = &c->found[e];
  int64_t lag = l->topic[e] > l->replay ? l->topic[e] : l->replay, held = 0;
  int ok = f->complete && f->mismatches[0] + f->mismatches[1] == 0 &&
           l->known && lag <= c->o->lag_max;
  int in_sync;
  char why[512];

  if (ok && !v->holding)
    v->held_from = now;
  v->holding = ok;
  if (ok)
    held = now - v->held_from;
  in_sync = ok && held >= c->o->hold_ms;
  if (!v->known || in_sync != v->in_sync)
    v->since_ms = now;
  v->known = 1;
  v->in_sync = in_sync;
  pthread_mutex_lock(&c->metrics->lock);
  c->metrics->in_sync[e] = in_sync;
  pthread_mutex_unlock(&c->metrics->lock);
  reason(c, f, lag, l, held, why, sizeof(why));
  return publish(c, e, lag, l, held, why, errstr, size);
}

int rc_verdicts(rc_ctx_t *c, char *errstr, size_t errstr_size) {
  int64_t now = rc_wall_ms();
  lags_t l;
  int e, rc = 0;

  memset(&l, 0, sizeof(l));
  measure(c, &l);
  for (e = 0; rc == 0 && e < RC_ENTITY_CNT; e++)
    rc = judge(c, e, &l, now, errstr, errstr_size);
  return rc;
}

int rc_all_in_sync(const rc_ctx_t *c) {
  int e;

  for (e = 0; e < RC_ENTITY_CNT; e++)
    if (!c->verdict[e].known || !c->verdict[e].in_sync)
      return 0;
  return 1;
}
