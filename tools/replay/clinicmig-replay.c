/*
 * clinicmig-replay.c — publishes onto the replay topic what the workers
 * must see again.
 *
 * NOTES
 * Three modes (tools/replay/README.md): db, a consistent snapshot of the
 * legacy tables with range markers (a backfill, docs/operations.md §5);
 * dlq, dead letters re-driven after a fix (docs/operations.md §6); topic,
 * a range of a CDC topic. The workers consume the replay topic beside the
 * CDC topics and order what they read there like live events.
 *
 * Exit status: 0 when every message was acknowledged by the cluster; 1
 * for a failure at run time; 2 for a bad argument. Either failure is one
 * line on stderr, "clinicmig-replay: <what and where>". stderr never
 * carries a column value.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "replay.h"

volatile sig_atomic_t rp_stop;

static void on_signal(int sig) {
  (void)sig;
  rp_stop = 1;
}

static void catch_signals(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

static int exit_status(int rc) {
  return rc == CM_ERR_CONFIG ? RP_EXIT_USAGE : RP_EXIT_FAIL;
}

/* Runs the mode; @returns 0 or a cm_err_t with the reason in errstr. */
static int run(const rp_opts_t *o, char *errstr, size_t errstr_size) {
  rp_out_t *out;
  int rc;

  out = rp_out_new(o, &rc, errstr, errstr_size);
  if (!out)
    return rc;
  if (o->mode == RP_MODE_DB)
    rc = rp_db_run(o, out, errstr, errstr_size);
  else
    rc = rp_read_run(o, out, errstr, errstr_size);
  rp_out_destroy(out);
  return rc;
}

int main(int argc, char **argv) {
  char errstr[RP_ERRSTR_MAX];
  rp_opts_t o;
  int rc;

  errstr[0] = '\0';
  rc = rp_parse_args(argc, argv, &o, errstr, sizeof(errstr));
  if (rc == 0 && o.help) {
    fputs(rp_usage(o.mode), stdout);
    rp_opts_free(&o);
    return fflush(stdout) == 0 ? EXIT_SUCCESS : RP_EXIT_FAIL;
  }
  if (rc == 0) {
    catch_signals();
    rc = run(&o, errstr, sizeof(errstr));
  }
  rp_opts_free(&o);
  if (rc == 0)
    return EXIT_SUCCESS;
  if (rc == CM_ERR_NOMEM && !errstr[0])
    snprintf(errstr, sizeof(errstr), "out of memory");
  fprintf(stderr, RP_NAME ": %s\n", errstr);
  return exit_status(rc);
}
