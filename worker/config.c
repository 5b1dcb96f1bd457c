/*
 * config.c — the worker's options: one table, three sources.
 *
 * NOTES
 * The option table below is the single reference: the parser, the
 * environment mapping and --help all read it, so the documentation cannot
 * drift from what is accepted.
 */
#include "clinicmig/cm_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <librdkafka/rdkafka.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_http.h"
#include "clinicmig/cm_log.h"
#include "clinicmig/cm_normalize.h"

typedef enum opt_type_e {
  OPT_STRING,
  OPT_IDENT, /* a PostgreSQL identifier we put into SQL */
  OPT_INT,
  OPT_MATCH,
  OPT_LEVEL,
  OPT_REGION,
  OPT_LISTEN, /* ADDR:PORT of the HTTP endpoints, or empty */
  OPT_FORMAT, /* json or avro */
  /* Debezium's time.precision.mode (docs/design.md §1.2) */
  OPT_TIME_MODE,
  /* legacy types of timestamp columns (cm_coltypes_parse) */
  OPT_COLTYPES,
} opt_type_t;

typedef struct opt_s {
  const char *key;
  opt_type_t type;
  size_t offset;
  int min, max;
  const char *def;
  const char *help;
} opt_t;

#define OFF(f) offsetof(cm_config_t, f)

static const opt_t options[] = {
    {"db.conninfo", OPT_STRING, OFF(db_conninfo), 0, 0, "",
     "libpq connection string or URI of the target database"},
    {"group.id", OPT_STRING, OFF(group_id), 0, 0, "clinicmig",
     "Kafka consumer group of the worker pool"},
    {"topic.prefix", OPT_STRING, OFF(topic_prefix), 0, 0, "legacy",
     "Debezium topic.prefix: topics are <prefix>.<schema>.<table>"},
    {"source.schema", OPT_STRING, OFF(source_schema), 0, 0, "public",
     "schema of the legacy tables in the topic names"},
    {"topic.replay", OPT_STRING, OFF(topic_replay), 0, 0, "clinicmig.replay",
     "replay topic (backfill, repair, re-drive)"},
    {"topic.dlq", OPT_STRING, OFF(topic_dlq), 0, 0, "clinicmig.dlq",
     "dead-letter topic for events that cannot be applied"},
    {"topic.progress", OPT_STRING, OFF(topic_progress), 0, 0,
     "clinicmig.progress",
     "topic of the worker's progress events (docs/observability.md)"},
    {"topic.progress.format", OPT_FORMAT, OFF(progress_format), 0, 0, "json",
     "json, or avro: Confluent's wire format, the schema registered in "
     "schema.registry.url as <topic.progress>-value"},
    {"progress.interval.ms", OPT_INT, OFF(progress_interval_ms), 100, 3600000,
     "5000", "how often a progress event is published, in milliseconds"},
    {"http.listen", OPT_LISTEN, OFF(http_listen), 0, 0, "",
     "ADDR:PORT serving /metrics, /healthz and /readyz (e.g. 0.0.0.0:9464; "
     "empty: no server)"},
    {"schema.domain", OPT_IDENT, OFF(schema_domain), 0, 0, "v2",
     "PostgreSQL schema of the new domain tables"},
    {"schema.bookkeeping", OPT_IDENT, OFF(schema_book), 0, 0, "clinicmig",
     "PostgreSQL schema of the mirror, offsets and counters"},
    {"phone.region", OPT_REGION, OFF(phone_region), 0, 0, "RU",
     "default region for phones written without a country code"},
    {"patients.match", OPT_MATCH, OFF(patients_match), 0, 0, "loose",
     "loose: link patients by phone or email; strict: only where birth "
     "dates do not conflict"},
    {"batch.max.events", OPT_INT, OFF(batch_max_events), 1, 1000000, "2500",
     "most events in one batch (one database transaction)"},
    {"batch.max.ms", OPT_INT, OFF(batch_max_ms), 1, 600000, "200",
     "longest time a batch collects events, in milliseconds"},
    {"appointments.wait.ms", OPT_INT, OFF(appointments_wait_ms), 0, 3600000,
     "60000",
     "while this worker's User and Patient partitions hold more than a batch "
     "of unread events, its Appointment partitions pause, so that "
     "appointments land after the doctors and patients they name: at most "
     "this long at a time, then they are read for as long again before "
     "they pause again; 0: never pause"},
    {"db.retry.max.ms", OPT_INT, OFF(db_retry_max_ms), 10, 600000, "5000",
     "cap of the backoff between database reconnection attempts"},
    {"log.level", OPT_LEVEL, OFF(log_level), 0, 0, "info",
     "error, warn, info or debug"},
    {"schema.registry.url", OPT_STRING, OFF(schema_registry_url), 0, 0, "",
     "schema registry of Avro messages (Confluent REST API), e.g. "
     "http://registry:8081"},
    {"schema.registry.basic.auth.user.info", OPT_STRING,
     OFF(schema_registry_auth), 0, 0, "",
     "user:password for the schema registry (HTTP basic auth)"},
    {"schema.registry.ssl.ca.location", OPT_STRING, OFF(schema_registry_ca), 0,
     0, "", "CA certificates (PEM file) to verify an https schema registry"},
    {"schema.registry.timeout.ms", OPT_INT, OFF(schema_registry_timeout_ms),
     100, 600000, "5000",
     "longest wait for one schema registry request, in milliseconds"},
    {"schema.dir", OPT_STRING, OFF(schema_dir), 0, 0, "",
     "directory of Avro writer schemas named <id>.avsc, asked before the "
     "registry"},
    {"worker.id", OPT_STRING, OFF(worker_id), 0, 0, "",
     "name of this worker in logs (default: host:pid)"},
    {"time.precision.mode", OPT_TIME_MODE, OFF(time_precision_mode), 0, 0,
     "adaptive_time_microseconds",
     "the connector's time.precision.mode (adaptive, "
     "adaptive_time_microseconds, connect, microseconds, nanoseconds, "
     "isostring): the unit of a temporal number without a schema"},
    {"legacy.column.types", OPT_COLTYPES, OFF(legacy_column_types), 0, 0, "",
     "legacy timestamp columns that are not timestamptz, as "
     "TABLE.COLUMN=TYPE,... (TYPE timestamp(0) to timestamp(6); * for "
     "every table or column), e.g. *.*=timestamp(3)"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static const opt_t *opt_find(const char *key) {
  size_t i;

  for (i = 0; i < N_OPTIONS; i++)
    if (strcmp(options[i].key, key) == 0)
      return &options[i];
  return NULL;
}

static int set_string(char **slot, const char *value) {
  char *copy = strdup(value);

  if (!copy)
    return CM_ERR_NOMEM;
  free(*slot);
  *slot = copy;
  return 0;
}

static int parse_int(const char *value, int min, int max, int *out) {
  char *end;
  long v;

  errno = 0;
  v = strtol(value, &end, 10);
  if (errno || end == value || *end != '\0' || v < min || v > max)
    return -1;
  *out = (int)v;
  return 0;
}

static int is_ident(const char *s) {
  size_t i;

  if (!*s || strlen(s) > 63 || !(islower((unsigned char)s[0]) || s[0] == '_'))
    return 0;
  for (i = 0; s[i]; i++)
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) ||
          s[i] == '_'))
      return 0;
  return 1;
}

static int kafka_set(cm_config_t *conf, const char *key, const char *value) {
  cm_kv_t *kv;
  int i;

  for (i = 0; i < conf->kafka_cnt; i++)
    if (strcmp(conf->kafka[i].key, key) == 0)
      return set_string(&conf->kafka[i].value, value);
  kv = realloc(conf->kafka, sizeof(*kv) * (size_t)(conf->kafka_cnt + 1));
  if (!kv)
    return CM_ERR_NOMEM;
  conf->kafka = kv;
  kv[conf->kafka_cnt].key = strdup(key);
  kv[conf->kafka_cnt].value = strdup(value);
  if (!kv[conf->kafka_cnt].key || !kv[conf->kafka_cnt].value)
    return CM_ERR_NOMEM;
  conf->kafka_cnt++;
  return 0;
}

static int set_typed(cm_config_t *conf, const opt_t *o, const char *value,
                     char *errstr, size_t errstr_size) {
  char *base = (char *)conf;
  char why[256];
  int lvl;

  switch (o->type) {
  case OPT_STRING: return set_string((char **)(base + o->offset), value);
  case OPT_IDENT:
    if (!is_ident(value))
      goto bad;
    return set_string((char **)(base + o->offset), value);
  case OPT_REGION:
    if (!cm_phone_region_valid(value))
      goto bad;
    return set_string((char **)(base + o->offset), value);
  case OPT_LISTEN:
    if (*value && cm_http_parse_listen(value, NULL, NULL) != 0) {
      snprintf(errstr, errstr_size,
               "%s: expected ADDR:PORT (an IPv4 address, an IPv6 address in "
               "brackets or nothing, and a port from 1 to 65535), got \"%s\"",
               o->key, value);
      return CM_ERR_CONFIG;
    }
    return set_string((char **)(base + o->offset), value);
  case OPT_INT:
    if (parse_int(value, o->min, o->max, (int *)(base + o->offset)) != 0) {
      snprintf(errstr, errstr_size,
               "%s: expected a whole number from %d to %d, got \"%s\"", o->key,
               o->min, o->max, value);
      return CM_ERR_CONFIG;
    }
    return 0;
  case OPT_MATCH:
    if (strcmp(value, "loose") == 0)
      conf->patients_match = CM_MATCH_LOOSE;
    else if (strcmp(value, "strict") == 0)
      conf->patients_match = CM_MATCH_STRICT;
    else
      goto bad;
    return 0;
  case OPT_FORMAT:
    if (strcmp(value, "json") == 0)
      *(cm_format_t *)(base + o->offset) = CM_FORMAT_JSON;
    else if (strcmp(value, "avro") == 0)
      *(cm_format_t *)(base + o->offset) = CM_FORMAT_AVRO;
    else {
      snprintf(errstr, errstr_size, "%s: expected json or avro, got \"%s\"",
               o->key, value);
      return CM_ERR_CONFIG;
    }
    return 0;
  case OPT_LEVEL:
    lvl = cm_log_level_parse(value);
    if (lvl < 0)
      goto bad;
    conf->log_level = lvl;
    return 0;
  case OPT_TIME_MODE:
    if (cm_time_mode_parse(value, (cm_time_mode_t *)(base + o->offset)) != 0) {
      snprintf(errstr, errstr_size,
               "%s: expected adaptive, adaptive_time_microseconds, connect, "
               "microseconds, nanoseconds or isostring, got \"%s\"",
               o->key, value);
      return CM_ERR_CONFIG;
    }
    return 0;
  case OPT_COLTYPES:
    if (cm_coltypes_parse(value, (cm_coltypes_t *)(base + o->offset), why,
                          sizeof(why)) != 0) {
      snprintf(errstr, errstr_size, "%s: %s", o->key, why);
      return CM_ERR_CONFIG;
    }
    return 0;
  }
bad:
  snprintf(errstr, errstr_size, "%s: invalid value \"%s\"", o->key, value);
  return CM_ERR_CONFIG;
}

int cm_config_set(cm_config_t *conf, const char *key, const char *value,
                  char *errstr, size_t errstr_size) {
  const opt_t *o;
  int r;

  if (strncmp(key, "kafka.", 6) == 0 && key[6]) {
    r = kafka_set(conf, key + 6, value);
  } else {
    o = opt_find(key);
    if (!o) {
      snprintf(errstr, errstr_size, "unknown option \"%s\"", key);
      return CM_ERR_CONFIG;
    }
    r = set_typed(conf, o, value, errstr, errstr_size);
  }
  if (r == CM_ERR_NOMEM)
    snprintf(errstr, errstr_size, "%s: out of memory", key);
  return r;
}

void cm_config_defaults(cm_config_t *conf) {
  char err[256];
  size_t i;

  memset(conf, 0, sizeof(*conf));
  for (i = 0; i < N_OPTIONS; i++)
    if (set_typed(conf, &options[i], options[i].def, err, sizeof(err)) != 0)
      abort(); /* the table's own defaults are wrong: a bug */
}

static char *trim(char *s) {
  char *end;

  while (isspace((unsigned char)*s))
    s++;
  end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1]))
    *--end = '\0';
  return s;
}

int cm_config_load_file(cm_config_t *conf, const char *path, char *errstr,
                        size_t errstr_size) {
  char line[4096], why[512], *eq, *key;
  FILE *f;
  int lineno = 0, r = 0;

  f = fopen(path, "r");
  if (!f) {
    snprintf(errstr, errstr_size, "config file %s: %s", path, strerror(errno));
    return CM_ERR_CONFIG;
  }
  while (r == 0 && fgets(line, sizeof(line), f)) {
    lineno++;
    key = trim(line);
    if (*key == '#' || *key == '\0')
      continue;
    eq = strchr(key, '=');
    if (!eq) {
      snprintf(errstr, errstr_size, "%s:%d: expected key = value", path,
               lineno);
      r = CM_ERR_CONFIG;
      break;
    }
    *eq = '\0';
    r = cm_config_set(conf, trim(key), trim(eq + 1), why, sizeof(why));
    if (r)
      snprintf(errstr, errstr_size, "%s:%d: %s", path, lineno, why);
  }
  fclose(f);
  return r;
}

/* CLINICMIG_BATCH_MAX_EVENTS -> batch.max.events */
static void env_to_key(const char *name, char *key, size_t key_size) {
  size_t i;

  for (i = 0; name[i] && i + 1 < key_size; i++)
    key[i] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
  key[i] = '\0';
}

int cm_config_load_env(cm_config_t *conf, char **envp, char *errstr,
                       size_t errstr_size) {
  char key[256], why[512];
  const char *eq;
  size_t n;
  int i;

  for (i = 0; envp && envp[i]; i++) {
    if (strncmp(envp[i], "CLINICMIG_", 10) != 0)
      continue;
    eq = strchr(envp[i], '=');
    if (!eq)
      continue;
    n = (size_t)(eq - envp[i]) - 10;
    if (n == 0 || n >= sizeof(key))
      continue;
    memcpy(key, envp[i] + 10, n);
    key[n] = '\0';
    env_to_key(key, key, sizeof(key));
    if (cm_config_set(conf, key, eq + 1, why, sizeof(why)) != 0) {
      snprintf(errstr, errstr_size, "environment %.*s: %s", (int)(eq - envp[i]),
               envp[i], why);
      return CM_ERR_CONFIG;
    }
  }
  return 0;
}

/* --batch-max-events -> batch.max.events */
static int flag_to_key(const char *flag, char *key, size_t key_size) {
  size_t i;

  for (i = 0; flag[i] && i + 1 < key_size; i++)
    key[i] = flag[i] == '-' ? '.' : flag[i];
  key[i] = '\0';
  return opt_find(key) != NULL;
}

static int set_kv_arg(cm_config_t *conf, const char *arg, char *errstr,
                      size_t errstr_size) {
  char key[256], why[512];
  const char *eq = strchr(arg, '=');

  if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(key)) {
    snprintf(errstr, errstr_size, "-X %s: expected key=value", arg);
    return CM_ERR_CONFIG;
  }
  memcpy(key, arg, (size_t)(eq - arg));
  key[eq - arg] = '\0';
  if (cm_config_set(conf, key, eq + 1, why, sizeof(why)) != 0) {
    snprintf(errstr, errstr_size, "-X %s", why);
    return CM_ERR_CONFIG;
  }
  return 0;
}

int cm_config_parse_args(cm_config_t *conf, int argc, char **argv,
                         int *want_help, const char **config_path, char *errstr,
                         size_t errstr_size) {
  char key[256], why[512];
  const char *a;
  int i;

  for (i = 0; i < argc; i++) {
    a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      *want_help = 1;
      continue;
    }
    if (i + 1 >= argc || strncmp(a, "-", 1) != 0) {
      snprintf(errstr, errstr_size, "%s: %s", a,
               strncmp(a, "-", 1) ? "unexpected argument" : "missing value");
      return CM_ERR_CONFIG;
    }
    if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
      *config_path = argv[++i];
    } else if (strcmp(a, "-X") == 0) {
      if (set_kv_arg(conf, argv[++i], errstr, errstr_size))
        return CM_ERR_CONFIG;
    } else if (strcmp(a, "--bootstrap-servers") == 0 || strcmp(a, "-b") == 0) {
      if (cm_config_set(conf, "kafka.bootstrap.servers", argv[++i], why,
                        sizeof(why)))
        goto fail;
    } else if (strncmp(a, "--", 2) == 0 &&
               flag_to_key(a + 2, key, sizeof(key))) {
      if (cm_config_set(conf, key, argv[++i], why, sizeof(why)))
        goto fail;
    } else {
      snprintf(errstr, errstr_size, "%s: unknown flag (see --help)", a);
      return CM_ERR_CONFIG;
    }
  }
  return 0;
fail:
  snprintf(errstr, errstr_size, "%s: %s", a, why);
  return CM_ERR_CONFIG;
}

const char *cm_config_kafka_get(const cm_config_t *conf, const char *key) {
  int i;

  for (i = 0; i < conf->kafka_cnt; i++)
    if (strcmp(conf->kafka[i].key, key) == 0)
      return conf->kafka[i].value;
  return NULL;
}

/* librdkafka's own check of the kafka.* properties, so that a bad one is
 * a configuration error like any other. */
static int kafka_validate(const cm_config_t *conf, char *errstr,
                          size_t errstr_size) {
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  char why[256];
  int i, r = 0;

  for (i = 0; !r && i < conf->kafka_cnt; i++)
    if (rd_kafka_conf_set(kc, conf->kafka[i].key, conf->kafka[i].value, why,
                          sizeof(why)) != RD_KAFKA_CONF_OK) {
      snprintf(errstr, errstr_size, "kafka.%s: %s", conf->kafka[i].key, why);
      r = CM_ERR_CONFIG;
    }
  rd_kafka_conf_destroy(kc);
  return r;
}

/* The schema source of Avro messages: an http(s) URL, a directory. */
static int schemas_validate(const cm_config_t *conf, char *errstr,
                            size_t errstr_size) {
  const char *url = conf->schema_registry_url;
  struct stat st;

  if (url && *url && strncmp(url, "http://", 7) != 0 &&
      strncmp(url, "https://", 8) != 0) {
    snprintf(errstr, errstr_size,
             "schema.registry.url: expected an http:// or https:// URL, "
             "got \"%s\"",
             url);
    return CM_ERR_CONFIG;
  }
  if (conf->schema_dir && *conf->schema_dir &&
      (stat(conf->schema_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
    snprintf(errstr, errstr_size, "schema.dir: \"%s\" is not a directory",
             conf->schema_dir);
    return CM_ERR_CONFIG;
  }
  if (conf->progress_format == CM_FORMAT_AVRO && (!url || !*url)) {
    snprintf(errstr, errstr_size,
             "topic.progress.format: avro needs schema.registry.url (the "
             "progress schema is registered there)");
    return CM_ERR_CONFIG;
  }
  return 0;
}

int cm_config_validate(const cm_config_t *conf, char *errstr,
                       size_t errstr_size) {
  if (kafka_validate(conf, errstr, errstr_size) != 0 ||
      schemas_validate(conf, errstr, errstr_size) != 0)
    return CM_ERR_CONFIG;
  if (!conf->db_conninfo || !*conf->db_conninfo) {
    snprintf(errstr, errstr_size,
             "db.conninfo: not set (--db-conninfo, CLINICMIG_DB_CONNINFO "
             "or the config file)");
    return CM_ERR_CONFIG;
  }
  if (!cm_config_kafka_get(conf, "bootstrap.servers")) {
    snprintf(errstr, errstr_size,
             "kafka.bootstrap.servers: not set (--bootstrap-servers, "
             "CLINICMIG_KAFKA_BOOTSTRAP_SERVERS or the config file)");
    return CM_ERR_CONFIG;
  }
  if (strcmp(conf->schema_domain, conf->schema_book) == 0) {
    snprintf(errstr, errstr_size,
             "schema.domain and schema.bookkeeping must differ");
    return CM_ERR_CONFIG;
  }
  return 0;
}

void cm_config_print_help(const char *prog) {
  char flag[128];
  size_t i, j;

  printf("usage: %s [options]\n\n"
         "Applies Debezium change events of the legacy clinic tables to the\n"
         "new multi-clinic schema, as one member of a pool of workers.\n\n"
         "  -c, --config FILE          read `key = value` lines from FILE\n"
         "  -b, --bootstrap-servers L  Kafka brokers "
         "(= -X kafka.bootstrap.servers=L)\n"
         "  -X KEY=VALUE               set any option below, or kafka.* to\n"
         "                             pass a librdkafka property through\n"
         "  -h, --help                 this text\n\n"
         "Options (flag, key, default). Each can also be set as the\n"
         "environment variable CLINICMIG_<KEY> (upper case, dots as\n"
         "underscores); flags win over the environment, which wins over\n"
         "the file.\n\n",
         prog);
  for (i = 0; i < N_OPTIONS; i++) {
    for (j = 0; options[i].key[j] && j + 1 < sizeof(flag); j++)
      flag[j] = options[i].key[j] == '.' ? '-' : options[i].key[j];
    flag[j] = '\0';
    printf("  --%s VALUE\n      %s (key %s, default \"%s\")\n", flag,
           options[i].help, options[i].key, options[i].def);
  }
  printf("\nKafka properties: kafka.<property> sets a librdkafka consumer and\n"
         "producer property, e.g. -X kafka.security.protocol=SASL_SSL.\n"
         "The worker itself sets group.id, client.id (= worker.id),\n"
         "enable.auto.commit=false, enable.auto.offset.store=false and\n"
         "auto.offset.reset=error (offsets live in the database; a gap in\n"
         "a topic is reported, never skipped silently).\n\n"
         "With http.listen set, the worker serves /metrics (Prometheus),\n"
         "/healthz (liveness) and /readyz (readiness); it publishes a\n"
         "progress event to topic.progress every progress.interval.ms and\n"
         "once at shutdown (docs/observability.md), JSON or, with\n"
         "topic.progress.format=avro, Avro through the schema registry.\n\n"
         "Exit status: 0 after SIGTERM/SIGINT (batch finished, offsets\n"
         "committed, group left); 2 for a bad option; 1 for a fatal error.\n");
}

void cm_config_free(cm_config_t *conf) {
  size_t i;
  int k;

  for (i = 0; i < N_OPTIONS; i++)
    if (options[i].type == OPT_STRING || options[i].type == OPT_IDENT ||
        options[i].type == OPT_REGION || options[i].type == OPT_LISTEN)
      free(*(char **)((char *)conf + options[i].offset));
  for (k = 0; k < conf->kafka_cnt; k++) {
    free(conf->kafka[k].key);
    free(conf->kafka[k].value);
  }
  free(conf->kafka);
  memset(conf, 0, sizeof(*conf));
}
