/*
 * clinicmig-watch — follows the progress and reconciliation streams and
 * shows the migration converging: a live table, or with --report the final
 * migration report once everything is drained and reconciled.
 *
 * NOTES
 * It reads both topics with a consumer group of its own (nothing is
 * committed), from their start or from --since, and folds every event
 * into one state (state.c). The report waits until (1) the consumer has
 * read every partition it holds as far as it went when it was assigned,
 * so that old events cannot pass for current ones; (2) every worker alive by
 * its own events has no lag; (3) the reconciler has published, for every
 * entity, counts and a verdict with lag 0 stamped after the workers were seen
 * drained. It exits 0 only if every verdict then says in sync; at the timeout
 * it prints what it knows and exits 1. Formats: docs/observability.md.
 *
 * Each message is JSON or, when it begins with byte 0 (no JSON text
 * does), Avro in Confluent's wire format: it is read with its writer
 * schema from --schema-registry-url or --schema-dir back into the JSON
 * document (cm_avro_out.h) and folded in the same way. An Avro message
 * that cannot be read (no schema source, an unknown id, a malformed body,
 * a registry that does not answer) is counted and shown with the reason,
 * never dropped silently.
 */
#include "watch.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_avro_out.h"
#include "clinicmig/cm_err.h"
#include "clinicmig/cm_schemas.h"
#include "clinicmig/cm_value.h"

#define NAME "clinicmig-watch"
#define PROPS_MAX 64

typedef struct opts_s {
  const char *brokers;
  const char *topics[2];
  const char *group;
  int64_t since_ms; /* 0: from the start */
  int refresh_ms;
  int report;
  int json;
  int timeout_s;
  const char *props[PROPS_MAX][2];
  int n_props;
  cm_schemas_conf_t schemas; /* of Avro messages */
} opts_t;

typedef struct run_s {
  rd_kafka_t *rk;
  const opts_t *o;
  rd_kafka_topic_partition_list_t *held; /* the partitions assigned */
  int64_t *end; /* per partition of held: its end when it was assigned */
  char *at_end; /* per partition of held: read up to that end */
  cm_schemas_t *schemas; /* NULL: Avro messages cannot be read */
} run_t;

static volatile sig_atomic_t running = 1;

static void on_signal(int sig) {
  (void)sig;
  running = 0;
}

static int64_t wall_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: " NAME " -b BROKERS [options]\n"
          "Follows clinicmig's progress and reconciliation streams.\n\n"
          "  -b, --bootstrap-servers L   Kafka brokers (required)\n"
          "  --topic-progress T          progress topic "
          "(default clinicmig.progress)\n"
          "  --topic-reconciliation T    reconciliation topic (default\n"
          "                              clinicmig.reconciliation)\n"
          "  --since TIME                only events stamped at or after "
          "TIME\n"
          "                              (ISO-8601 with a zone, or ms since "
          "the\n"
          "                              epoch); default: from the start\n"
          "  --group-id G                consumer group (default\n"
          "                              clinicmig-watch-<host>-<pid>; "
          "nothing\n"
          "                              is committed)\n"
          "  --refresh-ms N              redraw every N ms (default 1000)\n"
          "  --report                    wait until everything is drained "
          "and\n"
          "                              reconciled, print the migration "
          "report,\n"
          "                              exit 0 only if every entity is in "
          "sync\n"
          "  --timeout S                 --report gives up after S seconds\n"
          "                              (default 600): report, exit 1\n"
          "  --json                      JSON lines instead of tables\n"
          "  --schema-registry-url URL   schema registry of Avro messages\n"
          "                              (Confluent's wire format; JSON and\n"
          "                              Avro may share the topics)\n"
          "  --schema-registry-basic-auth-user-info USER:PASSWORD\n"
          "                              basic auth for the registry\n"
          "  --schema-registry-ssl-ca-location FILE\n"
          "                              CA certificates of an https "
          "registry\n"
          "  --schema-dir DIR            Avro writer schemas <id>.avsc, "
          "asked\n"
          "                              before the registry\n"
          "  -X kafka.PROP=VALUE         a librdkafka property\n"
          "  -h, --help                  this text\n\n"
          "An Avro message that cannot be read is counted and shown with "
          "the\nreason (\"undecodable Avro messages\").\n\n"
          "Exit status: 0 (with --report: every entity in sync), 1 not in "
          "sync\nor timed out, or a Kafka failure, 2 bad usage.\n");
}

__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  fprintf(stderr, NAME ": ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  return 2;
}

static int parse_int(const char *s, long min, long max, int *out) {
  char *end;
  long v;

  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max)
    return -1;
  *out = (int)v;
  return 0;
}

static int parse_time(const char *s, int64_t *ms) {
  char *end;
  long long v;
  int64_t us;

  errno = 0;
  v = strtoll(s, &end, 10);
  if (!errno && end != s && !*end && v >= 0) {
    *ms = (int64_t)v;
    return 0;
  }
  if (cm_timestamp_parse(s, &us) != 0)
    return -1;
  *ms = us / 1000;
  return 0;
}

static int add_prop(opts_t *o, const char *arg) {
  const char *eq = strchr(arg, '=');
  static char keys[PROPS_MAX][128];

  if (strncmp(arg, "kafka.", 6) != 0 || !eq || eq == arg + 6 ||
      (size_t)(eq - arg - 6) >= sizeof(keys[0]) || o->n_props == PROPS_MAX)
    return -1;
  snprintf(keys[o->n_props], sizeof(keys[0]), "%.*s", (int)(eq - arg - 6),
           arg + 6);
  o->props[o->n_props][0] = keys[o->n_props];
  o->props[o->n_props++][1] = eq + 1;
  return 0;
}

static int parse_args(opts_t *o, int argc, char **argv) {
  static const struct option lo[] = {
      {"bootstrap-servers", required_argument, NULL, 'b'},
      {"topic-progress", required_argument, NULL, 'P'},
      {"topic-reconciliation", required_argument, NULL, 'R'},
      {"since", required_argument, NULL, 's'},
      {"group-id", required_argument, NULL, 'g'},
      {"refresh-ms", required_argument, NULL, 'r'},
      {"report", no_argument, NULL, 'W'},
      {"timeout", required_argument, NULL, 't'},
      {"json", no_argument, NULL, 'j'},
      {"schema-registry-url", required_argument, NULL, 'U'},
      {"schema-registry-basic-auth-user-info", required_argument, NULL, 'A'},
      {"schema-registry-ssl-ca-location", required_argument, NULL, 'C'},
      {"schema-dir", required_argument, NULL, 'D'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;

  opterr = 0;
  while ((c = getopt_long(argc, argv, ":b:X:h", lo, NULL)) != -1) {
    switch (c) {
    case 'b': o->brokers = optarg; break;
    case 'P': o->topics[0] = optarg; break;
    case 'R': o->topics[1] = optarg; break;
    case 'g': o->group = optarg; break;
    case 'W': o->report = 1; break;
    case 'j': o->json = 1; break;
    case 'A': o->schemas.basic_auth = optarg; break;
    case 'C': o->schemas.ca_location = optarg; break;
    case 'U':
      if (strncmp(optarg, "http://", 7) != 0 &&
          strncmp(optarg, "https://", 8) != 0)
        return bad("--schema-registry-url: expected an http:// or https:// "
                   "URL, got \"%s\"",
                   optarg);
      o->schemas.registry_url = optarg;
      break;
    case 'D': {
      struct stat st;

      if (stat(optarg, &st) != 0 || !S_ISDIR(st.st_mode))
        return bad("--schema-dir: \"%s\" is not a directory", optarg);
      o->schemas.dir = optarg;
      break;
    }
    case 'h': usage(stdout); exit(0);
    case 's':
      if (parse_time(optarg, &o->since_ms) != 0)
        return bad("--since: expected an ISO-8601 time with a zone or ms "
                   "since the epoch, got \"%s\"",
                   optarg);
      break;
    case 'r':
      if (parse_int(optarg, 100, 3600000, &o->refresh_ms) != 0)
        return bad("--refresh-ms: expected a whole number from 100 to "
                   "3600000, got \"%s\"",
                   optarg);
      break;
    case 't':
      if (parse_int(optarg, 1, 86400, &o->timeout_s) != 0)
        return bad("--timeout: expected a whole number of seconds from 1 to "
                   "86400, got \"%s\"",
                   optarg);
      break;
    case 'X':
      if (add_prop(o, optarg) != 0)
        return bad("-X: expected kafka.PROPERTY=VALUE, got \"%s\"", optarg);
      break;
    case ':': return bad("%s: missing value", argv[optind - 1]);
    default: return bad("unknown option \"%s\"", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return bad("unexpected argument \"%s\"", argv[optind]);
  if (!o->brokers)
    return bad("--bootstrap-servers: required");
  return 0;
}

/* ---- Kafka ------------------------------------------------------------ */

static void release(run_t *r) {
  if (r->held)
    rd_kafka_topic_partition_list_destroy(r->held);
  free(r->at_end);
  free(r->end);
  r->held = NULL;
  r->at_end = NULL;
  r->end = NULL;
}

/* Starts every partition at --since (or at its start when the cluster
 * knows no offset for that time). */
static void start_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
                          int64_t since_ms) {
  int i;

  for (i = 0; i < l->cnt; i++)
    l->elems[i].offset = since_ms;
  if (!since_ms ||
      rd_kafka_offsets_for_times(rk, l, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    for (i = 0; i < l->cnt; i++)
      l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
  for (i = 0; i < l->cnt; i++)
    if (l->elems[i].offset < 0)
      l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
}

/* The partition's end now; INT64_MAX if the cluster cannot tell (then
 * only an end-of-partition event counts). */
static int64_t high_watermark(rd_kafka_t *rk,
                              const rd_kafka_topic_partition_t *p) {
  int64_t low, high;

  if (rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &low, &high,
                                       10000) != 0)
    return INT64_MAX;
  return high;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  run_t *r = opaque;
  int i;

  release(r);
  if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    rd_kafka_assign(rk, NULL);
    return;
  }
  start_offsets(rk, parts, r->o->since_ms);
  rd_kafka_assign(rk, parts);
  r->held = rd_kafka_topic_partition_list_copy(parts);
  r->at_end = calloc((size_t)(parts->cnt ? parts->cnt : 1), 1);
  r->end = calloc((size_t)(parts->cnt ? parts->cnt : 1), sizeof(*r->end));
  for (i = 0; r->end && i < parts->cnt; i++)
    r->end[i] = high_watermark(rk, &parts->elems[i]);
}

/* Notes that a partition was read up to where it ended when it was
 * assigned: at its end-of-partition event, or at the message before that
 * end. Events written since are news, not history. */
static void mark(run_t *r, const rd_kafka_message_t *m, int eof) {
  int i;

  for (i = 0; r->held && r->at_end && r->end && m->rkt && i < r->held->cnt; i++)
    if (r->held->elems[i].partition == m->partition &&
        strcmp(r->held->elems[i].topic, rd_kafka_topic_name(m->rkt)) == 0 &&
        (eof || m->offset + 1 >= r->end[i]))
      r->at_end[i] = 1;
}

/* 1 when partitions are held and every one was read as far as it went
 * when it was assigned. */
static int caught_up(const run_t *r) {
  int i;

  if (!r->held || !r->at_end || r->held->cnt == 0)
    return 0;
  for (i = 0; i < r->held->cnt; i++)
    if (!r->at_end[i])
      return 0;
  return 1;
}

static rd_kafka_t *consumer(run_t *r, const opts_t *o) {
  static char group[160];
  const char *fixed[][2] = {
      {"bootstrap.servers", o->brokers},
      {"group.id", o->group ? o->group : group},
      {"enable.auto.commit", "false"},
      {"enable.partition.eof", "true"},
      {"auto.offset.reset", "earliest"},
      {"client.id", NAME},
  };
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  char errstr[512], host[64] = "host";
  int i, ok = 1;

  if (!o->group) {
    gethostname(host, sizeof(host) - 1);
    snprintf(group, sizeof(group), NAME "-%s-%ld", host, (long)getpid());
  }
  for (i = 0; ok && i < (int)(sizeof(fixed) / sizeof(fixed[0])); i++)
    ok = rd_kafka_conf_set(kc, fixed[i][0], fixed[i][1], errstr,
                           sizeof(errstr)) == RD_KAFKA_CONF_OK;
  for (i = 0; ok && i < o->n_props; i++)
    ok = rd_kafka_conf_set(kc, o->props[i][0], o->props[i][1], errstr,
                           sizeof(errstr)) == RD_KAFKA_CONF_OK;
  if (!ok) {
    fprintf(stderr, NAME ": -X: %s\n", errstr);
    rd_kafka_conf_destroy(kc);
    return NULL;
  }
  rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
  rd_kafka_conf_set_opaque(kc, r);
  r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
  if (!r->rk) {
    fprintf(stderr, NAME ": %s\n", errstr);
    return NULL;
  }
  rd_kafka_poll_set_consumer(r->rk);
  return r->rk;
}

static int subscribe(run_t *r, const opts_t *o) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
  rd_kafka_resp_err_t err;

  rd_kafka_topic_partition_list_add(l, o->topics[0], RD_KAFKA_PARTITION_UA);
  rd_kafka_topic_partition_list_add(l, o->topics[1], RD_KAFKA_PARTITION_UA);
  err = rd_kafka_subscribe(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err)
    fprintf(stderr, NAME ": cannot subscribe: %s\n", rd_kafka_err2str(err));
  return err ? 1 : 0;
}

/* Folds one message in: JSON as it is, Avro (byte 0 first) once read
 * back into its JSON document. */
static void apply(run_t *r, w_state_t *s, const void *value, size_t len) {
  char why[512], *json = NULL;

  if (!value || len == 0 || *(const unsigned char *)value != 0) {
    w_state_apply(s, value, len);
    return;
  }
  why[0] = '\0';
  if (cm_avro_wire_to_json(r->schemas, value, len, &json, why, sizeof(why)) !=
      CM_OK) {
    w_state_undecodable(s, why);
    return;
  }
  w_state_apply(s, json, strlen(json));
  free(json);
}

/* Reads what is there for up to @p ms; counts partitions at their end. */
static void consume(run_t *r, w_state_t *s, int ms) {
  int64_t until = wall_ms() + ms;
  rd_kafka_message_t *m;

  while (running && wall_ms() < until) {
    m = rd_kafka_consumer_poll(r->rk, 50);
    if (!m)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      mark(r, m, 1);
    } else if (!m->err) {
      mark(r, m, 0);
      apply(r, s, m->payload, m->len);
    }
    rd_kafka_message_destroy(m);
  }
}

/* ---- the two modes ------------------------------------------------------- */

static int report(run_t *r, w_state_t *s, const opts_t *o) {
  int64_t deadline = wall_ms() + (int64_t)o->timeout_s * 1000;
  int64_t drained_since = 0, as_of;

  while (running && wall_ms() < deadline) {
    consume(r, s, 500);
    if (!w_workers_drained(s, wall_ms(), &as_of)) {
      drained_since = 0;
      continue;
    }
    if (!drained_since)
      drained_since = as_of;
    if (caught_up(r) && w_reconciled(s, drained_since) && w_all_in_sync(s))
      break;
  }
  if (o->json)
    w_view_json_report(stdout, s);
  else
    w_view_report(stdout, s);
  if (s->undecodable)
    fprintf(stderr, NAME ": %" PRId64 " Avro messages could not be read: %s\n",
            s->undecodable, s->undecodable_why);
  if (!w_all_in_sync(s) || wall_ms() >= deadline)
    fprintf(stderr, NAME ": %s\n",
            w_all_in_sync(s) ? "timed out before everything was drained"
                             : "not every entity is in sync");
  return running && w_all_in_sync(s) && wall_ms() < deadline ? 0 : 1;
}

static int live(run_t *r, w_state_t *s, const opts_t *o) {
  int tty = isatty(STDOUT_FILENO);

  while (running) {
    consume(r, s, o->refresh_ms);
    if (o->json)
      w_view_json_state(stdout, s, wall_ms());
    else
      w_view_live(stdout, s, wall_ms(), tty);
  }
  return 0;
}

int main(int argc, char **argv) {
  opts_t o = {.topics = {"clinicmig.progress", "clinicmig.reconciliation"},
              .refresh_ms = 1000,
              .timeout_s = 600};
  run_t r = {.o = &o};
  w_state_t s;
  int rc;

  rc = parse_args(&o, argc, argv);
  if (rc)
    return rc;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  if (o.schemas.registry_url || o.schemas.dir) {
    char why[512];

    r.schemas = cm_schemas_new(&o.schemas, why, sizeof(why));
    if (!r.schemas) {
      fprintf(stderr, NAME ": %s\n", why);
      return 2;
    }
  }
  if (!consumer(&r, &o)) {
    cm_schemas_destroy(r.schemas);
    return 2;
  }
  w_state_init(&s, o.since_ms);
  rc = subscribe(&r, &o);
  if (!rc)
    rc = o.report ? report(&r, &s, &o) : live(&r, &s, &o);
  rd_kafka_consumer_close(r.rk);
  rd_kafka_destroy(r.rk);
  release(&r);
  w_state_clear(&s);
  cm_schemas_destroy(r.schemas);
  return rc;
}
