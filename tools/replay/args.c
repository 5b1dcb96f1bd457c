/*
 * args.c — clinicmig-replay's command line.
 *
 * NOTES
 * `clinicmig-replay MODE [options]`: one table of long options serves the
 * three modes, each option marked with the modes that take it, so that a
 * flag of another mode is refused by name. Every value is checked here,
 * completely (strtoll/strtod with their end pointer and errno, ranges,
 * lists without empty items), and the -X properties are tried on a
 * librdkafka configuration: a bad argument is always reported before
 * anything connects. Each refusal is one line naming the flag and the
 * value; the caller exits 2 with it.
 */
#include "replay.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_value.h"

#define M_DB (1 << RP_MODE_DB)
#define M_DLQ (1 << RP_MODE_DLQ)
#define M_TOPIC (1 << RP_MODE_TOPIC)
#define M_ALL (M_DB | M_DLQ | M_TOPIC)

#define CHUNK_ROWS_MAX 1000000
#define RATE_MAX 1e9
#define LIST_MAX 4096

enum {
  O_HELP = 'h',
  O_BROKERS = 'b',
  O_PROP = 'X',
  O_TOPIC_REPLAY = 256,
  O_RATE,
  O_QUIET,
  O_CONNINFO,
  O_PREFIX,
  O_SCHEMA,
  O_TABLES,
  O_CLINICS,
  O_IDS,
  O_CHUNK,
  O_TOPIC_DLQ,
  O_REASON,
  O_SOURCE_TOPIC,
  O_SINCE,
  O_UNTIL,
  O_TOPIC,
  O_PARTITIONS,
  O_FROM,
  O_TO,
  O_FORMAT,
  O_REGISTRY_URL,
  O_REGISTRY_AUTH,
  O_REGISTRY_CA,
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, O_HELP},
    {"bootstrap-servers", required_argument, NULL, O_BROKERS},
    {"topic-replay", required_argument, NULL, O_TOPIC_REPLAY},
    {"rate", required_argument, NULL, O_RATE},
    {"quiet", no_argument, NULL, O_QUIET},
    {"legacy-conninfo", required_argument, NULL, O_CONNINFO},
    {"topic-prefix", required_argument, NULL, O_PREFIX},
    {"source-schema", required_argument, NULL, O_SCHEMA},
    {"tables", required_argument, NULL, O_TABLES},
    {"clinics", required_argument, NULL, O_CLINICS},
    {"ids", required_argument, NULL, O_IDS},
    {"chunk-rows", required_argument, NULL, O_CHUNK},
    {"topic-dlq", required_argument, NULL, O_TOPIC_DLQ},
    {"reason", required_argument, NULL, O_REASON},
    {"source-topic", required_argument, NULL, O_SOURCE_TOPIC},
    {"since", required_argument, NULL, O_SINCE},
    {"until", required_argument, NULL, O_UNTIL},
    {"topic", required_argument, NULL, O_TOPIC},
    {"partitions", required_argument, NULL, O_PARTITIONS},
    {"from-offset", required_argument, NULL, O_FROM},
    {"to-offset", required_argument, NULL, O_TO},
    {"output-format", required_argument, NULL, O_FORMAT},
    {"schema-registry-url", required_argument, NULL, O_REGISTRY_URL},
    {"schema-registry-basic-auth-user-info", required_argument, NULL,
     O_REGISTRY_AUTH},
    {"schema-registry-ssl-ca-location", required_argument, NULL, O_REGISTRY_CA},
    {NULL, 0, NULL, 0},
};

/* The modes that take each option. */
static int modes_of(int c) {
  switch (c) {
  case O_CONNINFO:
  case O_PREFIX:
  case O_SCHEMA:
  case O_TABLES:
  case O_CLINICS:
  case O_IDS:
  case O_CHUNK: return M_DB;
  case O_TOPIC_DLQ:
  case O_REASON:
  case O_SOURCE_TOPIC: return M_DLQ;
  case O_SINCE:
  case O_UNTIL: return M_DLQ | M_TOPIC;
  case O_TOPIC:
  case O_PARTITIONS:
  case O_FROM:
  case O_TO: return M_TOPIC;
  default: return M_ALL;
  }
}

static const char *const mode_names[] = {"", "db", "dlq", "topic"};

static const char usage_db[] =
    "Usage: clinicmig-replay db --legacy-conninfo CONNINFO -b BROKERS"
    " [options]\n"
    "\n"
    "Publishes one consistent snapshot of the legacy tables onto the replay\n"
    "topic: every row as a Debezium read event (op \"r\") carrying the\n"
    "snapshot's txid_snapshot and lsn, and after each chunk of rows a range\n"
    "marker listing the ids that exist in the chunk's id range.\n"
    "\n"
    "Options:\n"
    "  --legacy-conninfo CONNINFO  libpq connection string or URI of the\n"
    "                              legacy database (required)\n"
    "  -b, --bootstrap-servers BROKERS  Kafka brokers (required)\n"
    "  --topic-replay TOPIC     replay topic (default clinicmig.replay)\n"
    "  --topic-prefix NAME      Debezium topic.prefix, written as\n"
    "                           source.name (default legacy)\n"
    "  --source-schema NAME     schema of the legacy tables (default public)\n"
    "  --tables LIST            some of User,Patient,Appointment (default:\n"
    "                           all three)\n"
    "  --clinics LIST           publish only rows of these clinicId values\n"
    "                           (markers still list every id)\n"
    "  --ids FROM-TO            only ids from FROM to TO, inclusive\n"
    "  --chunk-rows N           rows per chunk and range marker, 1 to\n"
    "                           1000000 (default 1000)\n"
    "  --rate N                 at most N rows a second (markers are free)\n"
    "  --output-format json|avro  how rows and markers are written (default\n"
    "                           json); avro: Confluent's wire format with\n"
    "                           schemas/replay.avsc, registered as subject\n"
    "                           TOPIC-value (the key stays JSON)\n"
    "  --schema-registry-url URL  the registry, http:// or https://\n"
    "                           (required with avro; unused with json)\n"
    "  --schema-registry-basic-auth-user-info USER:PASSWORD\n"
    "                           basic auth for the registry\n"
    "  --schema-registry-ssl-ca-location FILE  CA file of an https registry\n"
    "  -X kafka.PROP=VALUE      a librdkafka property (security, timeouts)\n"
    "  --quiet                  no progress lines\n"
    "  -h, --help               print this help\n";

/* dlq and topic take the output options too, and change nothing: they
 * re-publish bytes as they were (README.md, "Output"). */
#define USAGE_REPUBLISH_FORMAT                                                 \
  "  --output-format json|avro  accepted, and changes nothing here: the\n"     \
  "                           messages keep their bytes, JSON or Avro, as\n"   \
  "                           they were; the --schema-registry-* options\n"    \
  "                           are accepted too, and no registry is asked\n"

static const char usage_dlq[] =
    "Usage: clinicmig-replay dlq -b BROKERS [options]\n"
    "\n"
    "Re-drives dead letters: reads the dead-letter topic from its start to\n"
    "its end at start-up and publishes the matching messages onto the\n"
    "replay topic, key and value byte for byte, with the headers\n"
    "clinicmig.origin=dlq and clinicmig.origin.position=TOPIC/PARTITION/\n"
    "OFFSET of the original event.\n"
    "\n"
    "Options:\n"
    "  -b, --bootstrap-servers BROKERS  Kafka brokers (required)\n"
    "  --topic-dlq TOPIC        dead-letter topic (default clinicmig.dlq)\n"
    "  --topic-replay TOPIC     replay topic (default clinicmig.replay)\n"
    "  --reason TEXT            only dead letters whose reason contains TEXT\n"
    "  --source-topic TOPIC     only dead letters read from TOPIC\n"
    "  --since TIME             only messages stamped at or after TIME\n"
    "  --until TIME             only messages stamped before TIME\n"
    "  --rate N                 at most N messages a "
    "second\n" USAGE_REPUBLISH_FORMAT
    "  -X kafka.PROP=VALUE      a librdkafka property (security, timeouts)\n"
    "  --quiet                  no progress lines\n"
    "  -h, --help               print this help\n"
    "\n"
    "TIME is ISO-8601 with a zone (2026-11-30T10:00:00Z) or milliseconds\n"
    "since the epoch.\n";

static const char usage_topic[] =
    "Usage: clinicmig-replay topic -b BROKERS --topic TOPIC\n"
    "         (--from-offset N [--to-offset M] | --since TIME [--until TIME])\n"
    "         [options]\n"
    "\n"
    "Re-publishes a range of a topic onto the replay topic, key and value\n"
    "byte for byte (a tombstone stays null), with the headers\n"
    "clinicmig.origin=topic and clinicmig.origin.position=TOPIC/PARTITION/\n"
    "OFFSET.\n"
    "\n"
    "Options:\n"
    "  -b, --bootstrap-servers BROKERS  Kafka brokers (required)\n"
    "  --topic TOPIC            the topic to read (required)\n"
    "  --partitions LIST        its partitions to read (default: all)\n"
    "  --from-offset N          first offset of each partition\n"
    "  --to-offset M            end offset, exclusive (default: the end of\n"
    "                           the partition at start-up)\n"
    "  --since TIME             from the first message stamped at or after\n"
    "                           TIME\n"
    "  --until TIME             up to the first message stamped at or after\n"
    "                           TIME (default: the end at start-up)\n"
    "  --topic-replay TOPIC     replay topic (default clinicmig.replay)\n"
    "  --rate N                 at most N messages a "
    "second\n" USAGE_REPUBLISH_FORMAT
    "  -X kafka.PROP=VALUE      a librdkafka property (security, timeouts)\n"
    "  --quiet                  no progress lines\n"
    "  -h, --help               print this help\n"
    "\n"
    "TIME is ISO-8601 with a zone (2026-11-30T10:00:00Z) or milliseconds\n"
    "since the epoch.\n";

static const char usage_all[] =
    "Usage: clinicmig-replay db    --legacy-conninfo CONNINFO -b BROKERS"
    " [options]\n"
    "       clinicmig-replay dlq   -b BROKERS [options]\n"
    "       clinicmig-replay topic -b BROKERS --topic TOPIC\n"
    "                              (--from-offset N | --since TIME)"
    " [options]\n"
    "       clinicmig-replay MODE --help\n"
    "\n"
    "Publishes onto the replay topic what the clinicmig workers must see\n"
    "again:\n"
    "  db     a consistent snapshot of the legacy tables, with range markers\n"
    "         (a backfill: repairs gaps and deletes the mirror missed)\n"
    "  dlq    dead letters, re-driven after a fix\n"
    "  topic  a range of a CDC topic, by offsets or by time\n"
    "\n"
    "Exit status: 0 when every message was acknowledged by the cluster,\n"
    "1 on a failure at run time, 2 on a bad argument (one line on stderr\n"
    "says what and where). No column value is ever printed.\n";

const char *rp_usage(rp_mode_t mode) {
  switch (mode) {
  case RP_MODE_DB: return usage_db;
  case RP_MODE_DLQ: return usage_dlq;
  case RP_MODE_TOPIC: return usage_topic;
  default: return usage_all;
  }
}

static int bad(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *errstr, size_t size, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(errstr, size, fmt, ap);
  va_end(ap);
  return CM_ERR_CONFIG;
}

/* ---- values -------------------------------------------------------------- */

/* A whole number, all of @p s; @returns 0 or -1. */
static int parse_i64(const char *s, int64_t *out) {
  char *end;
  long long v;

  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0')
    return -1;
  *out = (int64_t)v;
  return 0;
}

/* Comma-separated whole numbers in [min, max] into a new array. */
static int parse_i64_list(const char *s, int64_t min, int64_t max,
                          int64_t **out, int *cnt) {
  char *copy = strdup(s), *item, *next;
  int64_t *v = NULL, x;
  int n = 0;

  if (!copy)
    return CM_ERR_NOMEM;
  v = calloc(LIST_MAX, sizeof(*v));
  for (item = copy; v && item; item = next) {
    next = strchr(item, ',');
    if (next)
      *next++ = '\0';
    if (n == LIST_MAX || parse_i64(item, &x) != 0 || x < min || x > max)
      goto fail;
    v[n++] = x;
  }
  free(copy);
  if (!v)
    return CM_ERR_NOMEM;
  free(*out);
  *out = v;
  *cnt = n;
  return 0;
fail:
  free(copy);
  free(v);
  return CM_ERR_CONFIG;
}

static int set_clinics(rp_opts_t *o, const char *arg, char *errstr,
                       size_t size) {
  int rc =
      parse_i64_list(arg, INT64_MIN, INT64_MAX, &o->clinics, &o->clinic_cnt);

  if (rc == CM_ERR_CONFIG)
    return bad(errstr, size,
               "--clinics: expected whole numbers separated by commas,"
               " got \"%s\"",
               arg);
  return rc;
}

static int set_partitions(rp_opts_t *o, const char *arg, char *errstr,
                          size_t size) {
  int64_t *v = NULL;
  int i, j, n = 0, rc;

  rc = parse_i64_list(arg, 0, INT32_MAX, &v, &n);
  if (rc == CM_ERR_CONFIG)
    return bad(errstr, size,
               "--partitions: expected partition numbers (0 or more)"
               " separated by commas, got \"%s\"",
               arg);
  if (rc != 0)
    return rc;
  free(o->partitions);
  o->partitions = calloc((size_t)n, sizeof(int32_t));
  if (!o->partitions) {
    free(v);
    return CM_ERR_NOMEM;
  }
  for (i = 0; i < n; i++) {
    for (j = 0; j < i; j++)
      if (v[j] == v[i]) {
        free(v);
        return bad(errstr, size, "--partitions: %d is given twice", (int)v[i]);
      }
    o->partitions[i] = (int32_t)v[i];
  }
  o->partition_cnt = n;
  free(v);
  return 0;
}

/* "User,Patient": the tables clinicmig applies, by their legacy names. */
static int set_tables(rp_opts_t *o, const char *arg, char *errstr,
                      size_t size) {
  char name[64];
  const char *p = arg, *comma;
  size_t n;
  cm_table_t t;

  memset(o->table, 0, sizeof(o->table));
  for (;;) {
    comma = strchr(p, ',');
    n = comma ? (size_t)(comma - p) : strlen(p);
    if (n >= sizeof(name))
      n = sizeof(name) - 1;
    memcpy(name, p, n);
    name[n] = '\0';
    t = cm_table_from_name(name);
    if (t != CM_TABLE_USER && t != CM_TABLE_PATIENT &&
        t != CM_TABLE_APPOINTMENT)
      return bad(errstr, size,
                 "--tables: unknown table \"%s\" (the tables are User,"
                 " Patient and Appointment)",
                 name);
    o->table[t] = 1;
    if (!comma)
      return 0;
    p = comma + 1;
  }
}

/* FROM-TO, both whole numbers (either may be negative), FROM <= TO. */
static int set_ids(rp_opts_t *o, const char *arg, char *errstr, size_t size) {
  char *end;
  long long from, to;

  errno = 0;
  from = strtoll(arg, &end, 10);
  if (errno == 0 && end != arg && *end == '-') {
    const char *second = end + 1;

    to = strtoll(second, &end, 10);
    if (errno == 0 && end != second && *end == '\0') {
      if (from > to)
        return bad(errstr, size,
                   "--ids: the range %lld-%lld is empty (FROM is greater"
                   " than TO)",
                   from, to);
      o->has_ids = 1;
      o->id_from = from;
      o->id_to = to;
      return 0;
    }
  }
  return bad(errstr, size,
             "--ids: expected FROM-TO, two whole numbers (1-1000), got"
             " \"%s\"",
             arg);
}

static int set_count(const char *flag, const char *arg, int64_t min,
                     int64_t max, int64_t *out, char *errstr, size_t size) {
  if (parse_i64(arg, out) != 0 || *out < min || *out > max)
    return bad(errstr, size,
               "%s: expected a whole number from %lld to %lld, got \"%s\"",
               flag, (long long)min, (long long)max, arg);
  return 0;
}

static int set_rate(rp_opts_t *o, const char *arg, char *errstr, size_t size) {
  char *end;
  double v;

  errno = 0;
  v = strtod(arg, &end);
  if (errno != 0 || end == arg || *end != '\0' || !isfinite(v) || v <= 0 ||
      v > RATE_MAX)
    return bad(errstr, size,
               "--rate: expected a number of messages per second greater"
               " than 0, got \"%s\"",
               arg);
  o->rate = v;
  return 0;
}

static int set_time(const char *flag, const char *arg, int *has, int64_t *ms,
                    char *errstr, size_t size) {
  const char *p;
  int64_t us;

  for (p = arg; *p >= '0' && *p <= '9'; p++)
    ;
  if (p != arg && *p == '\0' && p - arg <= 15 && parse_i64(arg, ms) == 0) {
    *has = 1;
    return 0;
  }
  if (cm_timestamp_parse(arg, &us) == 0) {
    *ms = us / 1000 - (us % 1000 < 0); /* floor */
    *has = 1;
    return 0;
  }
  return bad(errstr, size,
             "%s: expected an ISO-8601 time with a zone"
             " (2026-11-30T10:00:00Z) or milliseconds since the epoch,"
             " got \"%s\"",
             flag, arg);
}

/* --output-format json|avro */
static int set_format(rp_opts_t *o, const char *arg, char *errstr,
                      size_t size) {
  if (strcmp(arg, "json") != 0 && strcmp(arg, "avro") != 0)
    return bad(errstr, size,
               "--output-format: expected json or avro, got \"%s\"", arg);
  o->avro = arg[0] == 'a';
  return 0;
}

/* -X kafka.KEY=VALUE */
static int add_prop(rp_opts_t *o, const char *arg, char *errstr, size_t size) {
  const char *eq = strchr(arg, '=');
  rp_prop_t *np;
  size_t klen;

  if (strncmp(arg, "kafka.", 6) != 0 || !eq || eq == arg + 6)
    return bad(errstr, size,
               "-X: expected kafka.PROPERTY=VALUE (a librdkafka property),"
               " got \"%s\"",
               arg);
  np = realloc(o->props, (size_t)(o->prop_cnt + 1) * sizeof(*np));
  if (!np)
    return CM_ERR_NOMEM;
  o->props = np;
  klen = (size_t)(eq - (arg + 6));
  np[o->prop_cnt].key = strndup(arg + 6, klen);
  np[o->prop_cnt].value = strdup(eq + 1);
  o->prop_cnt++;
  if (!np[o->prop_cnt - 1].key || !np[o->prop_cnt - 1].value)
    return CM_ERR_NOMEM;
  return 0;
}

/* ---- options ------------------------------------------------------------- */

static int set_string(const char **field, const char *flag, const char *arg,
                      char *errstr, size_t size) {
  if (arg[0] == '\0')
    return bad(errstr, size, "%s: the value cannot be empty", flag);
  *field = arg;
  return 0;
}

/* The options that take any text, or none. */
static int set_simple(rp_opts_t *o, int c, const char *arg, char *errstr,
                      size_t size) {
  switch (c) {
  case O_HELP: o->help = 1; return 0;
  case O_QUIET: o->quiet = 1; return 0;
  case O_BROKERS:
    return set_string(&o->brokers, "--bootstrap-servers", arg, errstr, size);
  case O_TOPIC_REPLAY:
    return set_string(&o->topic_replay, "--topic-replay", arg, errstr, size);
  case O_CONNINFO: o->conninfo = arg; return 0;
  case O_PREFIX:
    return set_string(&o->topic_prefix, "--topic-prefix", arg, errstr, size);
  case O_SCHEMA:
    return set_string(&o->schema, "--source-schema", arg, errstr, size);
  case O_TOPIC_DLQ:
    return set_string(&o->topic_dlq, "--topic-dlq", arg, errstr, size);
  case O_REASON: o->reason = arg; return 0;
  case O_SOURCE_TOPIC:
    return set_string(&o->source_topic, "--source-topic", arg, errstr, size);
  case O_TOPIC: return set_string(&o->topic, "--topic", arg, errstr, size);
  case O_REGISTRY_URL:
    return set_string(&o->registry_url, "--schema-registry-url", arg, errstr,
                      size);
  case O_REGISTRY_AUTH:
    return set_string(&o->registry_auth,
                      "--schema-registry-basic-auth-user-info", arg, errstr,
                      size);
  case O_REGISTRY_CA:
    return set_string(&o->registry_ca, "--schema-registry-ssl-ca-location", arg,
                      errstr, size);
  default: return 1; /* not a simple one */
  }
}

static int set_opt(rp_opts_t *o, int c, const char *arg, char *errstr,
                   size_t size) {
  int64_t v;
  int rc = set_simple(o, c, arg, errstr, size);

  if (rc != 1)
    return rc;
  switch (c) {
  case O_PROP: return add_prop(o, arg, errstr, size);
  case O_FORMAT: return set_format(o, arg, errstr, size);
  case O_RATE: return set_rate(o, arg, errstr, size);
  case O_TABLES: return set_tables(o, arg, errstr, size);
  case O_CLINICS: return set_clinics(o, arg, errstr, size);
  case O_IDS: return set_ids(o, arg, errstr, size);
  case O_PARTITIONS: return set_partitions(o, arg, errstr, size);
  case O_SINCE:
    return set_time("--since", arg, &o->has_since, &o->since_ms, errstr, size);
  case O_UNTIL:
    return set_time("--until", arg, &o->has_until, &o->until_ms, errstr, size);
  case O_CHUNK:
    rc = set_count("--chunk-rows", arg, 1, CHUNK_ROWS_MAX, &v, errstr, size);
    o->chunk_rows = (int)v;
    return rc;
  case O_FROM:
    o->has_from = 1;
    return set_count("--from-offset", arg, 0, INT64_MAX, &o->from_offset,
                     errstr, size);
  case O_TO:
    o->has_to = 1;
    return set_count("--to-offset", arg, 0, INT64_MAX, &o->to_offset, errstr,
                     size);
  default: return bad(errstr, size, "unknown option (see --help)");
  }
}

/* The name of option @p c as the user would write it. */
static const char *opt_name(int c, char *buf, size_t size) {
  const struct option *lo;

  for (lo = long_opts; lo->name; lo++)
    if (lo->val == c) {
      snprintf(buf, size, "--%s", lo->name);
      return buf;
    }
  snprintf(buf, size, "-%c", c);
  return buf;
}

/* Says which option getopt refused: a value missing, or unknown. */
static int refused(int c, char **argv, const char *mode, char *errstr,
                   size_t size) {
  char name[64];

  if (c == ':')
    return bad(errstr, size, "%s needs a value (see %s --help)",
               optopt ? opt_name(optopt, name, sizeof(name)) : argv[optind - 1],
               mode);
  if (optopt > 0 && optopt < 256)
    return bad(errstr, size, "unknown option -%c (see %s --help)", optopt,
               mode);
  return bad(errstr, size, "unknown option %s (see %s --help)",
             argv[optind - 1], mode);
}

/* ---- the whole command line ---------------------------------------------- */

static int check_db(rp_opts_t *o, char *errstr, size_t size) {
  int t, any = 0;

  if (!o->conninfo)
    return bad(errstr, size, "db: --legacy-conninfo is required");
  if (o->avro && !o->registry_url)
    return bad(errstr, size,
               "db: --output-format avro needs --schema-registry-url (the"
               " schema is registered there)");
  for (t = 0; t < CM_TABLE__CNT; t++)
    any |= o->table[t];
  if (!any)
    o->table[CM_TABLE_USER] = o->table[CM_TABLE_PATIENT] =
        o->table[CM_TABLE_APPOINTMENT] = 1;
  return 0;
}

static int check_read(const rp_opts_t *o, char *errstr, size_t size) {
  if (o->has_since && o->has_until && o->since_ms >= o->until_ms)
    return bad(errstr, size, "--since must be earlier than --until");
  if (o->mode == RP_MODE_DLQ)
    return 0;
  if (!o->topic)
    return bad(errstr, size, "topic: --topic is required");
  if (o->has_from == o->has_since)
    return bad(errstr, size,
               "topic: give either --from-offset or --since (one of them)");
  if ((o->has_to && !o->has_from) || (o->has_until && !o->has_since))
    return bad(errstr, size,
               "topic: --to-offset goes with --from-offset, --until with"
               " --since");
  if (o->has_to && o->from_offset > o->to_offset)
    return bad(errstr, size,
               "topic: --from-offset %lld is past --to-offset %lld",
               (long long)o->from_offset, (long long)o->to_offset);
  return 0;
}

/* What the options say together; the -X properties tried on librdkafka. */
static int check_opts(rp_opts_t *o, char *errstr, size_t size) {
  rd_kafka_conf_t *kc;
  int rc;

  if (!o->brokers)
    return bad(errstr, size, "%s: -b/--bootstrap-servers is required",
               mode_names[o->mode]);
  if (o->registry_url && strncmp(o->registry_url, "http://", 7) != 0 &&
      strncmp(o->registry_url, "https://", 8) != 0)
    return bad(errstr, size,
               "--schema-registry-url: expected an http:// or https:// URL,"
               " got \"%s\"",
               o->registry_url);
  rc = o->mode == RP_MODE_DB ? check_db(o, errstr, size)
                             : check_read(o, errstr, size);
  if (rc != 0)
    return rc;
  kc = rp_kafka_conf(o, errstr, size);
  if (!kc)
    return CM_ERR_CONFIG;
  rd_kafka_conf_destroy(kc);
  return 0;
}

static rp_mode_t mode_of(const char *s) {
  int m;

  for (m = RP_MODE_DB; m <= RP_MODE_TOPIC; m++)
    if (strcmp(s, mode_names[m]) == 0)
      return (rp_mode_t)m;
  return RP_MODE_NONE;
}

static void defaults(rp_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->topic_replay = "clinicmig.replay";
  o->topic_prefix = "legacy";
  o->schema = "public";
  o->topic_dlq = "clinicmig.dlq";
  o->chunk_rows = 1000;
}

/* Options after the mode word. */
static int parse_mode_opts(int argc, char **argv, rp_opts_t *o, char *errstr,
                           size_t size) {
  char mode[32], name[64];
  int c, rc;

  snprintf(mode, sizeof(mode), RP_NAME " %s", mode_names[o->mode]);
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":hb:X:", long_opts, NULL)) != -1) {
    if (c == ':' || c == '?')
      return refused(c, argv, mode, errstr, size);
    if (!(modes_of(c) & (1 << o->mode)))
      return bad(errstr, size, "%s is not an option of %s (see %s --help)",
                 opt_name(c, name, sizeof(name)), mode, mode);
    rc = set_opt(o, c, optarg, errstr, size);
    if (rc != 0)
      return rc;
  }
  if (optind < argc)
    return bad(errstr, size, "unexpected argument \"%s\" (see %s --help)",
               argv[optind], mode);
  return o->help ? 0 : check_opts(o, errstr, size);
}

int rp_parse_args(int argc, char **argv, rp_opts_t *o, char *errstr,
                  size_t errstr_size) {
  defaults(o);
  if (argc < 2)
    return bad(errstr, errstr_size,
               "a mode is required: db, dlq or topic (see --help)");
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    o->help = 1;
    return 0;
  }
  o->mode = mode_of(argv[1]);
  if (o->mode == RP_MODE_NONE)
    return bad(errstr, errstr_size,
               "unknown mode \"%s\": expected db, dlq or topic (see --help)",
               argv[1]);
  return parse_mode_opts(argc - 1, argv + 1, o, errstr, errstr_size);
}

void rp_opts_free(rp_opts_t *o) {
  int i;

  for (i = 0; i < o->prop_cnt; i++) {
    free(o->props[i].key);
    free(o->props[i].value);
  }
  free(o->props);
  free(o->clinics);
  free(o->partitions);
  memset(o, 0, sizeof(*o));
}
