/*
 * main.c — clinicmig-worker: options, signals, and the worker's life.
 *
 * NOTES
 * Options come from a file, the environment and flags, in that order of
 * precedence from weakest to strongest (cm_config.h). A bad option exits
 * with status 2 and one line that says what and where. SIGTERM and SIGINT
 * ask the worker to finish its batch, commit and leave the group.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clinicmig/cm_config.h"
#include "clinicmig/cm_err.h"
#include "clinicmig/cm_log.h"
#include "clinicmig/cm_worker.h"

extern char **environ;

static volatile sig_atomic_t running = 1;

static void on_signal(int sig) {
  (void)sig;
  running = 0;
}

static int fail_config(const char *prog, const char *why) {
  fprintf(stderr, "%s: %s\n", prog, why);
  return 2;
}

/* file, then environment, then flags (a second pass, so that they win) */
static int load_config(cm_config_t *conf, int argc, char **argv, int *want_help,
                       char *errstr, size_t errstr_size) {
  cm_config_t scratch;
  const char *path = NULL;
  int r;

  cm_config_defaults(&scratch);
  r = cm_config_parse_args(&scratch, argc - 1, argv + 1, want_help, &path,
                           errstr, errstr_size);
  cm_config_free(&scratch);
  if (r || *want_help)
    return r;
  cm_config_defaults(conf);
  if (path && cm_config_load_file(conf, path, errstr, errstr_size))
    return CM_ERR_CONFIG;
  if (cm_config_load_env(conf, environ, errstr, errstr_size))
    return CM_ERR_CONFIG;
  if (cm_config_parse_args(conf, argc - 1, argv + 1, want_help, &path, errstr,
                           errstr_size))
    return CM_ERR_CONFIG;
  return cm_config_validate(conf, errstr, errstr_size);
}

static void default_worker_id(cm_config_t *conf) {
  char host[128], id[160], ignored[64];

  if (conf->worker_id && *conf->worker_id)
    return;
  if (gethostname(host, sizeof(host)) != 0)
    snprintf(host, sizeof(host), "worker");
  host[sizeof(host) - 1] = '\0';
  snprintf(id, sizeof(id), "%s:%d", host, (int)getpid());
  cm_config_set(conf, "worker.id", id, ignored, sizeof(ignored));
}

/*
 * One malloc arena for every thread (docs/performance.md §5). glibc
 * gives each of librdkafka's threads an arena of its own; the memory
 * their fetch buffers leave behind in them raised the worker's peak RSS
 * by about a sixth. An operator's MALLOC_ARENA_MAX still wins.
 */
static void one_arena(void) {
  if (!getenv("MALLOC_ARENA_MAX"))
    mallopt(M_ARENA_MAX, 1);
}

int main(int argc, char **argv) {
  struct sigaction sa;
  char errstr[512];
  cm_config_t conf;
  cm_worker_t *w;
  int want_help = 0, r;

  one_arena(); /* before any thread starts */
  memset(&conf, 0, sizeof(conf));
  if (load_config(&conf, argc, argv, &want_help, errstr, sizeof(errstr))) {
    cm_config_free(&conf);
    return fail_config("clinicmig-worker", errstr);
  }
  if (want_help) {
    cm_config_print_help("clinicmig-worker");
    return 0;
  }
  default_worker_id(&conf);
  cm_log_set_level((cm_log_level_t)conf.log_level);
  cm_log_set_component(conf.worker_id);

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  w = cm_worker_new(&conf, &running, errstr, sizeof(errstr));
  if (!w) {
    cm_error("cannot start: %s", errstr);
    cm_config_free(&conf);
    return running ? 1 : 0;
  }
  cm_info("started: group %s, topics %s.%s.{User,Patient,Appointment} and %s",
          conf.group_id, conf.topic_prefix, conf.source_schema,
          conf.topic_replay);
  r = cm_worker_run(w);
  cm_worker_destroy(w);
  cm_config_free(&conf);
  cm_info("stopped");
  return r == 0 ? 0 : 1;
}
