/*
 * args.c — clinicmig-reconcile's command line.
 *
 * NOTES
 * Every value is checked here, completely (strtoll/strtod with their end
 * pointer and errno, ranges, PostgreSQL identifiers, the phone region
 * libphonenumber must know, the listen address), the hash secret file is
 * read, and the -X properties are tried on a librdkafka configuration: a
 * bad argument is always reported before anything connects. Each refusal
 * is one line naming the flag and the value; the caller exits 2 with it.
 * The flags share their names and defaults with the worker's
 * (docs/operations.md §2) where they mean the same thing.
 */
#include "reconcile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_normalize.h"

#define RATE_MAX 1e9
#define SECRET_MAX 4096
#define WEEK_MS 604800000LL

enum {
  O_HELP = 'h',
  O_BROKERS = 'b',
  O_PROP = 'X',
  O_CONNINFO = 256,
  O_LEGACY,
  O_GROUP,
  O_PREFIX,
  O_SOURCE_SCHEMA,
  O_DOMAIN,
  O_BOOKKEEPING,
  O_TOPIC_RECON,
  O_TOPIC_REPLAY,
  O_INTERVAL,
  O_LAG_MAX,
  O_HOLD,
  O_GRACE,
  O_RATE,
  O_SEGMENT_ROWS,
  O_SUSPECT,
  O_REGION,
  O_SECRET,
  O_HTTP,
  O_ONCE,
  O_FORMAT,
  O_REG_URL,
  O_REG_AUTH,
  O_REG_CA,
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, O_HELP},
    {"db-conninfo", required_argument, NULL, O_CONNINFO},
    {"bootstrap-servers", required_argument, NULL, O_BROKERS},
    {"legacy-conninfo", required_argument, NULL, O_LEGACY},
    {"group-id", required_argument, NULL, O_GROUP},
    {"topic-prefix", required_argument, NULL, O_PREFIX},
    {"source-schema", required_argument, NULL, O_SOURCE_SCHEMA},
    {"schema-domain", required_argument, NULL, O_DOMAIN},
    {"schema-bookkeeping", required_argument, NULL, O_BOOKKEEPING},
    {"topic-reconciliation", required_argument, NULL, O_TOPIC_RECON},
    {"topic-replay", required_argument, NULL, O_TOPIC_REPLAY},
    {"interval-ms", required_argument, NULL, O_INTERVAL},
    {"lag-max", required_argument, NULL, O_LAG_MAX},
    {"hold-ms", required_argument, NULL, O_HOLD},
    {"grace-ms", required_argument, NULL, O_GRACE},
    {"rate", required_argument, NULL, O_RATE},
    {"segment-rows", required_argument, NULL, O_SEGMENT_ROWS},
    {"suspect-members", required_argument, NULL, O_SUSPECT},
    {"phone-region", required_argument, NULL, O_REGION},
    {"hash-secret-file", required_argument, NULL, O_SECRET},
    {"http-listen", required_argument, NULL, O_HTTP},
    {"once", no_argument, NULL, O_ONCE},
    {"output-format", required_argument, NULL, O_FORMAT},
    {"schema-registry-url", required_argument, NULL, O_REG_URL},
    {"schema-registry-basic-auth-user-info", required_argument, NULL,
     O_REG_AUTH},
    {"schema-registry-ssl-ca-location", required_argument, NULL, O_REG_CA},
    {NULL, 0, NULL, 0},
};

static const char usage[] =
    "Usage: clinicmig-reconcile --db-conninfo TARGET -b BROKERS [options]\n"
    "\n"
    "Checks, every interval, that the legacy tables, the mirror and the new\n"
    "schema agree, and publishes counts, mismatching ids, unresolved links,\n"
    "gaps, regroups, suspect components and a verdict per entity onto the\n"
    "reconciliation topic. One reconciler leads at a time (an advisory lock\n"
    "in the target database); the others stand by.\n"
    "\n"
    "Options:\n"
    "  --db-conninfo CONNINFO   the target database: mirror and v2 (required)\n"
    "  -b, --bootstrap-servers BROKERS  Kafka brokers (required)\n"
    "  --legacy-conninfo CONNINFO  the legacy database; without it the\n"
    "                           legacy-mirror check and legacy counts are off\n"
    "  --group-id ID            the workers' consumer group (clinicmig)\n"
    "  --topic-prefix NAME      Debezium topic.prefix (legacy)\n"
    "  --source-schema NAME     schema of the legacy tables (public)\n"
    "  --schema-domain NAME     schema of the new tables (v2)\n"
    "  --schema-bookkeeping NAME  schema of the mirror (clinicmig)\n"
    "  --topic-reconciliation TOPIC  where events go\n"
    "                           (clinicmig.reconciliation)\n"
    "  --topic-replay TOPIC     the replay topic, for the lag\n"
    "                           (clinicmig.replay)\n"
    "  --interval-ms N          a pass every N ms (10000)\n"
    "  --lag-max N              most lag of an in-sync entity (100)\n"
    "  --hold-ms N              how long no mismatch and little lag must\n"
    "                           hold before in sync (30000)\n"
    "  --grace-ms N             age of a mirror row before a null link is\n"
    "                           unresolved (60000)\n"
    "  --rate N                 at most N legacy rows scanned a second\n"
    "  --segment-rows N         rows read one by one per narrowed segment\n"
    "                           (64)\n"
    "  --suspect-members N      more members than N sharing a phone key is\n"
    "                           suspect (5)\n"
    "  --phone-region CODE      the workers' phone.region (RU)\n"
    "  --hash-secret-file FILE  the HMAC-SHA256 key naming phone keys\n"
    "  --http-listen ADDR:PORT  serve /metrics, /healthz, /readyz\n"
    "  --once                   one pass, then exit: 0 if every entity is in\n"
    "                           sync, 3 if not\n"
    "  --output-format FORMAT   json (default), or avro: Confluent's wire\n"
    "                           format, the schema registered in the\n"
    "                           registry as <topic>-value\n"
    "  --schema-registry-url URL  the schema registry (http:// or https://),\n"
    "                           needed by --output-format avro\n"
    "  --schema-registry-basic-auth-user-info USER:PASSWORD\n"
    "                           basic auth for the registry\n"
    "  --schema-registry-ssl-ca-location FILE\n"
    "                           CA certificates of an https registry\n"
    "  -X kafka.PROP=VALUE      a librdkafka property (security, timeouts)\n"
    "  -h, --help               print this help\n";

const char *rc_usage(void) {
  return usage;
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

static int set_count(const char *flag, const char *arg, int64_t min,
                     int64_t max, int64_t *out, char *errstr, size_t size) {
  char *end;
  long long v;

  errno = 0;
  v = strtoll(arg, &end, 10);
  if (errno != 0 || end == arg || *end != '\0' || v < min || v > max)
    return bad(errstr, size,
               "%s: expected a whole number from %lld to %lld, got \"%s\"",
               flag, (long long)min, (long long)max, arg);
  *out = (int64_t)v;
  return 0;
}

static int set_rate(rc_opts_t *o, const char *arg, char *errstr, size_t size) {
  char *end;
  double v;

  errno = 0;
  v = strtod(arg, &end);
  if (errno != 0 || end == arg || *end != '\0' || !isfinite(v) || v <= 0 ||
      v > RATE_MAX)
    return bad(errstr, size,
               "--rate: expected a number of rows per second greater than 0,"
               " got \"%s\"",
               arg);
  o->rate = v;
  return 0;
}

static int set_string(const char **field, const char *flag, const char *arg,
                      char *errstr, size_t size) {
  if (arg[0] == '\0')
    return bad(errstr, size, "%s: the value cannot be empty", flag);
  *field = arg;
  return 0;
}

/* A schema written into SQL as it is: the worker's rule. */
static int set_schema(const char **field, const char *flag, const char *arg,
                      char *errstr, size_t size) {
  size_t i, n = strlen(arg);
  int ok = n > 0 && n <= 63 && !(arg[0] >= '0' && arg[0] <= '9');

  for (i = 0; ok && i < n; i++)
    ok = (arg[i] >= 'a' && arg[i] <= 'z') || (arg[i] >= '0' && arg[i] <= '9') ||
         arg[i] == '_';
  if (!ok)
    return bad(errstr, size,
               "%s: expected lower-case letters, digits and _, not starting"
               " with a digit, at most 63 characters, got \"%s\"",
               flag, arg);
  *field = arg;
  return 0;
}

/* ADDR:PORT, ADDR an IPv4 address or an IPv6 one in brackets. */
static int set_listen(rc_opts_t *o, const char *arg, char *errstr,
                      size_t size) {
  const char *colon = strrchr(arg, ':');
  unsigned char sa[16];
  int64_t port;
  size_t n;
  char *addr;

  if (!colon || colon == arg ||
      set_count("--http-listen", colon + 1, 1, 65535, &port, errstr, size))
    return bad(errstr, size,
               "--http-listen: expected ADDR:PORT (0.0.0.0:9464, [::]:9464),"
               " got \"%s\"",
               arg);
  n = (size_t)(colon - arg);
  if (arg[0] == '[' && n > 2 && colon[-1] == ']')
    addr = strndup(arg + 1, n - 2);
  else
    addr = strndup(arg, n);
  if (!addr)
    return CM_ERR_NOMEM;
  if (inet_pton(strchr(addr, ':') ? AF_INET6 : AF_INET, addr, sa) != 1) {
    free(addr);
    return bad(errstr, size,
               "--http-listen: \"%.*s\" is not an IPv4 address or a"
               " bracketed IPv6 address",
               (int)n, arg);
  }
  free(o->http_addr);
  o->http_addr = addr;
  o->http_port = (int)port;
  o->http_listen = arg;
  return 0;
}

/* -X kafka.KEY=VALUE */
static int add_prop(rc_opts_t *o, const char *arg, char *errstr, size_t size) {
  const char *eq = strchr(arg, '=');
  rc_prop_t *np;

  if (strncmp(arg, "kafka.", 6) != 0 || !eq || eq == arg + 6)
    return bad(errstr, size,
               "-X: expected kafka.PROPERTY=VALUE (a librdkafka property),"
               " got \"%s\"",
               arg);
  np = realloc(o->props, (size_t)(o->prop_cnt + 1) * sizeof(*np));
  if (!np)
    return CM_ERR_NOMEM;
  o->props = np;
  np[o->prop_cnt].key = strndup(arg + 6, (size_t)(eq - (arg + 6)));
  np[o->prop_cnt].value = strdup(eq + 1);
  o->prop_cnt++;
  if (!np[o->prop_cnt - 1].key || !np[o->prop_cnt - 1].value)
    return CM_ERR_NOMEM;
  return 0;
}

/* ---- options ------------------------------------------------------------- */

/* The options that take text. */
static int set_text(rc_opts_t *o, int c, const char *arg, char *errstr,
                    size_t size) {
  switch (c) {
  case O_CONNINFO:
    return set_string(&o->conninfo, "--db-conninfo", arg, errstr, size);
  case O_BROKERS:
    return set_string(&o->brokers, "--bootstrap-servers", arg, errstr, size);
  case O_LEGACY:
    return set_string(&o->legacy_conninfo, "--legacy-conninfo", arg, errstr,
                      size);
  case O_GROUP:
    return set_string(&o->group_id, "--group-id", arg, errstr, size);
  case O_PREFIX:
    return set_string(&o->topic_prefix, "--topic-prefix", arg, errstr, size);
  case O_SOURCE_SCHEMA:
    return set_string(&o->source_schema, "--source-schema", arg, errstr, size);
  case O_TOPIC_RECON:
    return set_string(&o->topic_reconciliation, "--topic-reconciliation", arg,
                      errstr, size);
  case O_TOPIC_REPLAY:
    return set_string(&o->topic_replay, "--topic-replay", arg, errstr, size);
  case O_SECRET:
    return set_string(&o->hash_secret_file, "--hash-secret-file", arg, errstr,
                      size);
  case O_REG_URL:
    return set_string(&o->registry_url, "--schema-registry-url", arg, errstr,
                      size);
  case O_REG_AUTH:
    return set_string(&o->registry_auth,
                      "--schema-registry-basic-auth-user-info", arg, errstr,
                      size);
  case O_REG_CA:
    return set_string(&o->registry_ca, "--schema-registry-ssl-ca-location", arg,
                      errstr, size);
  case O_DOMAIN:
    return set_schema(&o->schema_domain, "--schema-domain", arg, errstr, size);
  case O_BOOKKEEPING:
    return set_schema(&o->schema_bookkeeping, "--schema-bookkeeping", arg,
                      errstr, size);
  default: return 1; /* not a text option */
  }
}

static int set_opt(rc_opts_t *o, int c, const char *arg, char *errstr,
                   size_t size) {
  int rc = set_text(o, c, arg, errstr, size);

  if (rc != 1)
    return rc;
  switch (c) {
  case O_HELP: o->help = 1; return 0;
  case O_ONCE: o->once = 1; return 0;
  case O_PROP: return add_prop(o, arg, errstr, size);
  case O_RATE: return set_rate(o, arg, errstr, size);
  case O_HTTP: return set_listen(o, arg, errstr, size);
  case O_REGION: o->phone_region = arg; return 0;
  case O_FORMAT:
    if (strcmp(arg, "json") != 0 && strcmp(arg, "avro") != 0)
      return bad(errstr, size,
                 "--output-format: expected json or avro, got \"%s\"", arg);
    o->avro = strcmp(arg, "avro") == 0;
    return 0;
  case O_INTERVAL:
    return set_count("--interval-ms", arg, 100, 86400000, &o->interval_ms,
                     errstr, size);
  case O_LAG_MAX:
    return set_count("--lag-max", arg, 0, INT64_MAX, &o->lag_max, errstr, size);
  case O_HOLD:
    return set_count("--hold-ms", arg, 0, WEEK_MS, &o->hold_ms, errstr, size);
  case O_GRACE:
    return set_count("--grace-ms", arg, 0, WEEK_MS, &o->grace_ms, errstr, size);
  case O_SEGMENT_ROWS:
    return set_count("--segment-rows", arg, 1, 1000000, &o->segment_rows,
                     errstr, size);
  case O_SUSPECT:
    return set_count("--suspect-members", arg, 1, 1000000, &o->suspect_members,
                     errstr, size);
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
static int refused(int c, char **argv, char *errstr, size_t size) {
  char name[64];

  if (c == ':')
    return bad(errstr, size, "%s needs a value (see --help)",
               optopt ? opt_name(optopt, name, sizeof(name))
                      : argv[optind - 1]);
  if (optopt > 0 && optopt < 256)
    return bad(errstr, size, "unknown option -%c (see --help)", optopt);
  return bad(errstr, size, "unknown option %s (see --help)", argv[optind - 1]);
}

/* ---- the whole command line ---------------------------------------------- */

/* The key of --hash-secret-file: its bytes, trailing line ends dropped. */
static int read_secret(rc_opts_t *o, char *errstr, size_t size) {
  FILE *f = fopen(o->hash_secret_file, "rb");
  size_t n;

  if (!f)
    return bad(errstr, size, "--hash-secret-file: cannot read \"%s\": %s",
               o->hash_secret_file, strerror(errno));
  o->secret = malloc(SECRET_MAX + 1);
  if (!o->secret) {
    fclose(f);
    return CM_ERR_NOMEM;
  }
  n = fread(o->secret, 1, SECRET_MAX + 1, f);
  fclose(f);
  while (n > 0 && (o->secret[n - 1] == '\n' || o->secret[n - 1] == '\r'))
    n--;
  if (n == 0 || n > SECRET_MAX)
    return bad(errstr, size,
               "--hash-secret-file: \"%s\" must hold 1 to %d bytes of key",
               o->hash_secret_file, SECRET_MAX);
  o->secret_len = n;
  return 0;
}

/* librdkafka refuses what it does not know: try the -X properties. */
static int check_props(const rc_opts_t *o, char *errstr, size_t size) {
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  char why[512];
  int i;

  for (i = 0; i < o->prop_cnt; i++)
    if (rd_kafka_conf_set(kc, o->props[i].key, o->props[i].value, why,
                          sizeof(why)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(kc);
      return bad(errstr, size, "-X kafka.%s: %s", o->props[i].key, why);
    }
  rd_kafka_conf_destroy(kc);
  return 0;
}

/* What the options say together. */
static int check_opts(rc_opts_t *o, char *errstr, size_t size) {
  if (!o->conninfo)
    return bad(errstr, size, "--db-conninfo is required");
  if (!o->brokers)
    return bad(errstr, size, "-b/--bootstrap-servers is required");
  if (strcmp(o->schema_domain, o->schema_bookkeeping) == 0)
    return bad(errstr, size,
               "--schema-domain and --schema-bookkeeping must differ (both"
               " \"%s\")",
               o->schema_domain);
  if (!cm_phone_region_valid(o->phone_region))
    return bad(errstr, size,
               "--phone-region: \"%s\" is not a region libphonenumber knows"
               " (RU, KZ, DE, ...)",
               o->phone_region);
  if (o->registry_url && strncmp(o->registry_url, "http://", 7) != 0 &&
      strncmp(o->registry_url, "https://", 8) != 0)
    return bad(errstr, size,
               "--schema-registry-url: expected an http:// or https:// URL,"
               " got \"%s\"",
               o->registry_url);
  if (o->avro && !o->registry_url)
    return bad(errstr, size,
               "--output-format avro needs --schema-registry-url (the"
               " reconciliation schema is registered there)");
  if (o->hash_secret_file && read_secret(o, errstr, size) != 0)
    return CM_ERR_CONFIG;
  return check_props(o, errstr, size);
}

static void defaults(rc_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->group_id = "clinicmig";
  o->topic_prefix = "legacy";
  o->source_schema = "public";
  o->schema_domain = "v2";
  o->schema_bookkeeping = "clinicmig";
  o->topic_reconciliation = "clinicmig.reconciliation";
  o->topic_replay = "clinicmig.replay";
  o->phone_region = "RU";
  o->interval_ms = 10000;
  o->lag_max = 100;
  o->hold_ms = 30000;
  o->grace_ms = 60000;
  o->segment_rows = 64;
  o->suspect_members = 5;
}

int rc_parse_args(int argc, char **argv, rc_opts_t *o, char *errstr,
                  size_t errstr_size) {
  int c, rc;

  defaults(o);
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":hb:X:", long_opts, NULL)) != -1) {
    if (c == ':' || c == '?')
      return refused(c, argv, errstr, errstr_size);
    rc = set_opt(o, c, optarg, errstr, errstr_size);
    if (rc != 0)
      return rc;
  }
  if (optind < argc)
    return bad(errstr, errstr_size, "unexpected argument \"%s\" (see --help)",
               argv[optind]);
  return o->help ? 0 : check_opts(o, errstr, errstr_size);
}

void rc_opts_free(rc_opts_t *o) {
  int i;

  for (i = 0; i < o->prop_cnt; i++) {
    free(o->props[i].key);
    free(o->props[i].value);
  }
  free(o->props);
  free(o->secret);
  free(o->http_addr);
  memset(o, 0, sizeof(*o));
}
