/*
 * clinicmig-reconcile.c — checks, pass after pass, that the legacy
 * tables, the mirror and the new schema agree.
 *
 * NOTES
 * The loop of docs/reconciliation.md: take the leader lock or stand by;
 * as the leader, run a pass (pass.c) every --interval-ms and publish
 * what it finds onto the reconciliation topic. A lost target database
 * costs the pass and the lock: the reconciler reconnects and tries for
 * the lock again, so a standby may take over meanwhile.
 *
 * Exit status: 0 when stopped by SIGTERM / SIGINT (after the step of the
 * pass in progress) or, with --once, when every entity is in sync; 3 with
 * --once when one is not; 1 for a failure at run time (a database or the
 * cluster unreachable at start, a missing topic or table, with --once a
 * failed pass); 2 for a bad argument. A failure is one line on stderr,
 * "clinicmig-reconcile: <what and where>"; log lines carry ids and
 * counts only.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_log.h"
#include "reconcile.h"

volatile sig_atomic_t rc_stop;

static void on_signal(int sig) {
  (void)sig;
  rc_stop = 1;
}

static void catch_signals(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/* "name" with its quotes doubled: the legacy schema as an identifier. */
static char *quote_ident(const char *name) {
  size_t n = strlen(name), i, j = 0;
  char *q = malloc(2 * n + 3);

  if (!q)
    return NULL;
  q[j++] = '"';
  for (i = 0; i < n; i++) {
    if (name[i] == '"')
      q[j++] = '"';
    q[j++] = name[i];
  }
  q[j++] = '"';
  q[j] = '\0';
  return q;
}

static void set_leader(rc_ctx_t *c, int leader) {
  pthread_mutex_lock(&c->metrics->lock);
  c->metrics->leader = leader;
  pthread_mutex_unlock(&c->metrics->lock);
}

/* Connects to the target if it is not, then tries the lock: 1 leading,
 * 0 not (standing by or reconnecting). */
static int try_lead(rc_ctx_t *c, int *told) {
  char why[RC_ERRSTR_MAX];
  int rc = 0;

  if (!c->target.conn)
    rc = rc_db_connect(&c->target, c->o->conninfo, "target", why, sizeof(why));
  if (rc == 0)
    rc = rc_db_try_lead(c, why, sizeof(why));
  if (rc == 1) {
    cm_info("leading: a pass every %" PRId64 " ms", c->o->interval_ms);
    set_leader(c, 1);
    *told = 0;
    return 1;
  }
  if (rc < 0) {
    cm_warn("%s; trying again in %" PRId64 " ms", why, c->o->interval_ms);
    rc_db_close(&c->target);
  } else if (!*told) {
    cm_info("another reconciler holds the leader lock: standing by, trying"
            " every %" PRId64 " ms",
            c->o->interval_ms);
    *told = 1;
  }
  return 0;
}

/* A failed pass: drop the connections (and so the lock) and start over. */
static void after_failure(rc_ctx_t *c, const char *why) {
  cm_warn("pass %" PRId64 " failed: %s; reconnecting", c->pass, why);
  rc_db_close(&c->target);
  rc_db_close(&c->legacy);
  set_leader(c, 0);
}

/* The loop; @returns 0, RC_EXIT_NOT_IN_SYNC (--once) or a cm_err_t. */
static int run(rc_ctx_t *c, char *errstr, size_t size) {
  int leader = 0, told = 0, rc;
  double t0;

  for (;;) {
    rc_tick(c);
    if (rc_stop)
      return 0;
    if (!leader && !(leader = try_lead(c, &told))) {
      rc_sleep_ms(c->o->interval_ms);
      continue;
    }
    t0 = rc_now_s();
    rc = rc_pass(c, errstr, size);
    if (rc != 0 && c->o->once)
      return rc;
    if (rc != 0) {
      after_failure(c, errstr);
      leader = 0;
    }
    if (rc_stop)
      return 0;
    if (c->o->once)
      return rc_all_in_sync(c) ? 0 : RC_EXIT_NOT_IN_SYNC;
    rc_sleep_ms(c->o->interval_ms - (int64_t)((rc_now_s() - t0) * 1000));
  }
}

/* Everything before the loop: a failure here exits 1. */
static int start(rc_ctx_t *c, char *errstr, size_t size) {
  int rc;

  rc = rc_db_connect(&c->target, c->o->conninfo, "target", errstr, size);
  if (rc == 0 && c->o->legacy_conninfo)
    rc = rc_db_connect(&c->legacy, c->o->legacy_conninfo, "legacy", errstr,
                       size);
  if (rc == 0 && c->o->legacy_conninfo)
    rc = rc_db_check_legacy(c, errstr, size);
  if (rc == 0)
    rc = rc_db_setup(c, errstr, size);
  if (rc == 0) {
    c->out = rc_out_new(c->o, &rc, errstr, size);
    rc = c->out ? 0 : rc;
  }
  if (rc == 0 && !c->have_regroup)
    cm_warn("no %s.patient_regroup table: merge and split events are off",
            c->o->schema_bookkeeping);
  if (rc == 0 && !c->o->secret)
    cm_info("no --hash-secret-file: shared phone keys are published without"
            " a key hash");
  return rc;
}

static int init(rc_ctx_t *c, const rc_opts_t *o, rc_metrics_t *m) {
  char host[64];
  char *legacy = quote_ident(o->source_schema);

  memset(c, 0, sizeof(*c));
  if (!legacy)
    return CM_ERR_NOMEM;
  if (gethostname(host, sizeof(host)) != 0)
    snprintf(host, sizeof(host), "localhost");
  host[sizeof(host) - 1] = '\0';
  snprintf(c->id, sizeof(c->id), "%s:%ld", host, (long)getpid());
  c->o = o;
  c->metrics = m;
  c->subst[0].name = "cm";
  c->subst[0].value = o->schema_bookkeeping;
  c->subst[1].name = "v2";
  c->subst[1].value = o->schema_domain;
  c->subst[2].name = "legacy";
  c->subst[2].value = legacy; /* freed by fini() */
  cm_log_set_component(RC_NAME);
  return 0;
}

static void fini(rc_ctx_t *c) {
  rc_out_destroy(c->out);
  rc_db_close(&c->target);
  rc_db_close(&c->legacy);
  rc_idlist_free(&c->sent_gaps);
  rc_idlist_free(&c->sent_regroups);
  free((char *)c->subst[2].value);
}

static int main_run(const rc_opts_t *o, char *errstr, size_t size) {
  rc_metrics_t m;
  rc_http_t *http = NULL;
  rc_ctx_t c;
  int rc;

  memset(&m, 0, sizeof(m));
  pthread_mutex_init(&m.lock, NULL);
  m.last_turn = rc_now_s();
  rc = init(&c, o, &m);
  if (rc == 0 && o->http_listen) {
    http = rc_http_start(o, &m, errstr, size);
    rc = http ? 0 : CM_ERR_FATAL;
  }
  if (rc == 0)
    rc = start(&c, errstr, size);
  if (rc == 0)
    rc = run(&c, errstr, size);
  rc_http_stop(http);
  fini(&c);
  pthread_mutex_destroy(&m.lock);
  return rc;
}

int main(int argc, char **argv) {
  char errstr[RC_ERRSTR_MAX];
  rc_opts_t o;
  int rc;

  errstr[0] = '\0';
  rc = rc_parse_args(argc, argv, &o, errstr, sizeof(errstr));
  if (rc == 0 && o.help) {
    fputs(rc_usage(), stdout);
    rc_opts_free(&o);
    return fflush(stdout) == 0 ? EXIT_SUCCESS : RC_EXIT_FAIL;
  }
  if (rc == 0) {
    catch_signals();
    rc = main_run(&o, errstr, sizeof(errstr));
  }
  rc_opts_free(&o);
  if (rc == 0 || rc == RC_EXIT_NOT_IN_SYNC)
    return rc;
  if (rc == CM_ERR_NOMEM && !errstr[0])
    snprintf(errstr, sizeof(errstr), "out of memory");
  fprintf(stderr, RC_NAME ": %s\n", errstr);
  return rc == CM_ERR_CONFIG ? RC_EXIT_USAGE : RC_EXIT_FAIL;
}
