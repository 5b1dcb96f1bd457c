/*
 * clinicmig-kafka.c — a local Kafka cluster without a JVM.
 *
 * NOTES
 * Wraps librdkafka's mock cluster (rdkafka_mock.h): an N-broker cluster that
 * speaks the real Kafka protocol on loopback TCP ports, so kcat, the worker
 * and the tests connect to it as to any cluster. The tool prints the
 * bootstrap address as its first line on stdout, then serves a control
 * channel on stdin (one command per line, one reply line on stdout each) for
 * topic creation, fault injection and the checks the tests need. It runs
 * until SIGTERM or SIGINT, or until stdin says "quit"; EOF on stdin only
 * closes the control channel.
 *
 * Three librdkafka objects live here: a producer handle that only hosts the
 * mock cluster and never connects anywhere, the mock cluster itself, and a
 * consumer handle (created on first use) that is a client of the mock, used
 * for metadata and watermark queries. They are destroyed in the reverse
 * order. All librdkafka logs go to stderr through cm_log; stdout carries
 * only the bootstrap line and the replies.
 *
 * Limit: librdkafka 2.0.2 hard-codes the mock's per-partition retention at
 * 5 MiB (or 100000 produce batches) and silently drops the oldest batches
 * past it. The "dropped" command reports how many messages were lost that
 * way; every test, demo and benchmark run must check it.
 */
#include "clinicmig/cm_log.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KT_MAX_BROKERS 64
#define KT_MAX_PARTITIONS 1024
#define KT_MAX_TOPIC_NAME 249
#define KT_MAX_LINE 4096
#define KT_MAX_ARGS 66
#define KT_MAX_REPLY 65536
#define KT_QUERY_TIMEOUT_MS 5000
#define KT_QUERY_TIMEOUT_STR "5000"
#define KT_METADATA_TRIES 3
#define KT_METADATA_TIMEOUT_MS 2000

#define KT_EXIT_OK 0
#define KT_EXIT_FAILURE 1
#define KT_EXIT_USAGE 2

/** A topic given on the command line. */
typedef struct kt_topic_s {
  char name[KT_MAX_TOPIC_NAME + 1];
  int partitions;
} kt_topic_t;

/** Parsed command line. */
typedef struct kt_opts_s {
  int brokers;
  int replication; /* 0 until given: then min(3, brokers) */
  kt_topic_t *topics;
  int topic_cnt;
  int help;
} kt_opts_t;

/** A topic's partitions as metadata reports them. */
typedef struct kt_parts_s {
  int cnt;
  int32_t leader[KT_MAX_PARTITIONS];
} kt_parts_t;

/** The running tool. */
typedef struct kt_tool_s {
  rd_kafka_t *host;                  /* hosts the mock, never connects */
  rd_kafka_mock_cluster_t *mcluster; /* owned; destroyed before host */
  rd_kafka_t *query;                 /* client of the mock, or NULL */
  int replication;
  int brokers;
  unsigned char down[KT_MAX_BROKERS + 1]; /* set by broker-down */
  int quit;
  int stdout_failed;
  char line[KT_MAX_LINE + 1];
  size_t line_len;
  int line_overflow;
  char reply[KT_MAX_REPLY];
  size_t reply_len;
  int reply_overflow;
} kt_tool_t;

typedef int (*kt_cmd_fn)(kt_tool_t *tool, int argc, char **argv);

/** A control command: name, argument counts (excluding the name), handler. */
typedef struct kt_cmd_s {
  const char *name;
  int min_args;
  int max_args;
  kt_cmd_fn fn;
} kt_cmd_t;

static volatile sig_atomic_t kt_stop_signal;
static int kt_wake_pipe[2] = {-1, -1};

static const char kt_usage[] =
    "usage: clinicmig-kafka [--brokers N] [--topic NAME:PARTITIONS]...\n"
    "                       [--replication R] [--help]\n"
    "\n"
    "Runs a local Kafka cluster (librdkafka's mock cluster) on loopback\n"
    "ports. Prints the bootstrap address as the first line on stdout, then\n"
    "reads control commands on stdin until SIGTERM, SIGINT or \"quit\".\n"
    "EOF on stdin closes the control channel; the cluster keeps running\n"
    "until a signal (so `clinicmig-kafka ... </dev/null &` works).\n"
    "\n"
    "flags:\n"
    "  --brokers N             number of brokers, ids 1..N (default 3,\n"
    "                          at most 64)\n"
    "  --topic NAME:PARTITIONS create topic NAME with PARTITIONS partitions\n"
    "                          (1..1024); may be repeated\n"
    "  --replication R         replication factor of the topics created\n"
    "                          (default min(3, N); 1..N)\n"
    "  --help                  print this text and exit\n"
    "\n"
    "control commands (stdin, one per line; one reply line on stdout each,\n"
    "\"ok [...]\" or \"error <reason>\"):\n"
    "  topic NAME PARTITIONS   create a topic\n"
    "  broker-down ID          close broker ID's listener and connections\n"
    "                          (-1: all); leaders do not move\n"
    "  broker-up ID            make broker ID accept connections again\n"
    "  rtt ID MS               delay broker ID's responses by MS ms\n"
    "  request-errors APIKEY ERR [ERR...]\n"
    "                          fail the next requests of API APIKEY (numeric,\n"
    "                          0 = Produce, 1 = Fetch) with the Kafka error\n"
    "                          codes ERR..., one request each, in order\n"
    "  clear-errors APIKEY     forget the errors queued for APIKEY\n"
    "  watermarks TOPIC        reply \"ok P:LOW:HIGH ...\" for each partition\n"
    "  dropped TOPIC           reply \"ok N\": messages the mock dropped from\n"
    "                          the start of TOPIC's partitions (sum of low\n"
    "                          watermarks)\n"
    "  ping                    reply \"ok\"\n"
    "  quit                    reply \"ok\" and exit 0\n"
    "\n"
    "limits: the mock (librdkafka 2.0.2) keeps at most about 5 MiB (and\n"
    "100000 produce batches) per partition in memory and silently drops the\n"
    "oldest messages past that. Size the partition count for the data, and\n"
    "check \"dropped TOPIC\" is 0 after every run. Producers that name an\n"
    "unknown topic auto-create it with 4 partitions.\n";

/* ------------------------------------------------------------------------ */
/* Parsing helpers                                                          */
/* ------------------------------------------------------------------------ */

/** Parses a whole decimal integer in [min, max]; returns 0 or -1. */
static int kt_parse_long(const char *s, long min, long max, long *out) {
  char *end = NULL;
  long v;

  if (s == NULL || *s == '\0')
    return -1;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0')
    return -1;
  if (v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

/** Same as kt_parse_long() for an int. */
static int kt_parse_int(const char *s, int min, int max, int *out) {
  long v;

  if (kt_parse_long(s, min, max, &v) != 0)
    return -1;
  *out = (int)v;
  return 0;
}

/** Kafka's legal topic names: 1..249 of [a-zA-Z0-9._-], not "." or "..". */
static int kt_topic_name_ok(const char *name, size_t len) {
  size_t i;

  if (len == 0 || len > KT_MAX_TOPIC_NAME)
    return 0;
  if (strncmp(name, ".", len) == 0 || strncmp(name, "..", len) == 0)
    return 0;
  for (i = 0; i < len; i++) {
    char c = name[i];

    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

/** Prints one usage error line to stderr; returns KT_EXIT_USAGE. */
static int kt_usage_error(const char *fmt, ...) {
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fprintf(stderr, "clinicmig-kafka: %s (see --help)\n", msg);
  return KT_EXIT_USAGE;
}

/** Parses NAME:PARTITIONS into the next topic slot; returns 0 or exit code. */
static int kt_opts_add_topic(kt_opts_t *opts, const char *arg) {
  const char *colon = strrchr(arg, ':');
  kt_topic_t *topic = &opts->topics[opts->topic_cnt];
  size_t len;
  int i;

  if (colon == NULL)
    return kt_usage_error("--topic wants NAME:PARTITIONS, not \"%s\"", arg);
  len = (size_t)(colon - arg);
  if (!kt_topic_name_ok(arg, len))
    return kt_usage_error("invalid topic name in \"%s\"", arg);
  if (kt_parse_int(colon + 1, 1, KT_MAX_PARTITIONS, &topic->partitions))
    return kt_usage_error("partitions in \"%s\" must be 1..%d", arg,
                          KT_MAX_PARTITIONS);
  memcpy(topic->name, arg, len);
  topic->name[len] = '\0';
  for (i = 0; i < opts->topic_cnt; i++)
    if (strcmp(opts->topics[i].name, topic->name) == 0)
      return kt_usage_error("topic \"%s\" given twice", topic->name);
  opts->topic_cnt++;
  return 0;
}

/** Applies one flag with its value; returns 0 or an exit code. */
static int kt_opts_apply(kt_opts_t *opts, const char *flag, const char *val) {
  if (strcmp(flag, "--brokers") == 0) {
    if (kt_parse_int(val, 1, KT_MAX_BROKERS, &opts->brokers))
      return kt_usage_error("--brokers must be 1..%d, not \"%s\"",
                            KT_MAX_BROKERS, val);
    return 0;
  }
  if (strcmp(flag, "--replication") == 0) {
    if (kt_parse_int(val, 1, KT_MAX_BROKERS, &opts->replication))
      return kt_usage_error("--replication must be 1..%d, not \"%s\"",
                            KT_MAX_BROKERS, val);
    return 0;
  }
  return kt_opts_add_topic(opts, val);
}

/** Splits "--flag=value" or takes the value from the next argument. */
static int kt_opts_flag(kt_opts_t *opts, int argc, char **argv, int *i) {
  static const char *const with_value[] = {"--brokers", "--topic",
                                           "--replication"};
  char flag[32];
  const char *arg = argv[*i];
  const char *eq = strchr(arg, '=');
  size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
  size_t k;

  if (len >= sizeof(flag))
    return kt_usage_error("unknown flag \"%s\"", arg);
  memcpy(flag, arg, len);
  flag[len] = '\0';
  for (k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
    if (strcmp(flag, with_value[k]) != 0)
      continue;
    if (eq != NULL)
      return kt_opts_apply(opts, flag, eq + 1);
    if (*i + 1 >= argc)
      return kt_usage_error("%s needs a value", flag);
    (*i)++;
    return kt_opts_apply(opts, flag, argv[*i]);
  }
  return kt_usage_error("unknown flag \"%s\"", arg);
}

/** Parses the command line into opts; returns 0 or an exit code. */
static int kt_opts_parse(kt_opts_t *opts, int argc, char **argv) {
  int i, rc;

  opts->brokers = 3;
  opts->topics = calloc((size_t)argc, sizeof(*opts->topics));
  if (opts->topics == NULL)
    return kt_usage_error("out of memory");
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      opts->help = 1;
      return 0;
    }
    rc = kt_opts_flag(opts, argc, argv, &i);
    if (rc != 0)
      return rc;
  }
  if (opts->replication == 0)
    opts->replication = opts->brokers < 3 ? opts->brokers : 3;
  if (opts->replication > opts->brokers)
    return kt_usage_error("--replication %d exceeds --brokers %d",
                          opts->replication, opts->brokers);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* librdkafka handles                                                       */
/* ------------------------------------------------------------------------ */

/** Routes librdkafka's syslog-levelled logs to stderr through cm_log. */
static void kt_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf) {
  cm_log_level_t cm_level = CM_LOG_DEBUG;

  if (level <= 3)
    cm_level = CM_LOG_ERROR;
  else if (level == 4)
    cm_level = CM_LOG_WARN;
  else if (level <= 6)
    cm_level = CM_LOG_INFO;
  cm_log(cm_level, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

/** Errors of the query client: expected while a broker is down. */
static void kt_error_cb(rd_kafka_t *rk, int err, const char *reason,
                        void *opaque) {
  cm_info("%s: %s", rd_kafka_name(rk), reason);
}

/**
 * @brief Creates a configured handle of the given type.
 * @param bootstrap NULL-able: no bootstrap servers when NULL.
 * @returns the handle, or NULL with the reason in errstr.
 */
static rd_kafka_t *kt_handle_new(rd_kafka_type_t type, const char *client_id,
                                 const char *bootstrap, char *errstr,
                                 size_t errstr_size) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_t *rk;

  rd_kafka_conf_set_log_cb(conf, kt_log_cb);
  if (rd_kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) ||
      (bootstrap == NULL && /* the host's notices are noise (CONFWARN) */
       rd_kafka_conf_set(conf, "log_level", "4", errstr, errstr_size)) ||
      (bootstrap != NULL &&
       (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                          errstr_size) ||
        rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "1000", errstr,
                          errstr_size) ||
        rd_kafka_conf_set(conf, "socket.timeout.ms", KT_QUERY_TIMEOUT_STR,
                          errstr, errstr_size)))) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  if (bootstrap != NULL)
    rd_kafka_conf_set_error_cb(conf, kt_error_cb);
  rk = rd_kafka_new(type, conf, errstr, errstr_size);
  if (rk == NULL)
    rd_kafka_conf_destroy(conf);
  /* on success the conf object is owned by rk */
  return rk;
}

/** Creates the hosting handle, the mock cluster and the topics. */
static int kt_tool_start(kt_tool_t *tool, const kt_opts_t *opts) {
  char errstr[512];
  rd_kafka_resp_err_t err;
  int i;

  tool->replication = opts->replication;
  tool->brokers = opts->brokers;
  tool->host = kt_handle_new(RD_KAFKA_PRODUCER, "clinicmig-kafka-host", NULL,
                             errstr, sizeof(errstr));
  if (tool->host == NULL) {
    cm_error("could not create the hosting handle: %s", errstr);
    return -1;
  }
  tool->mcluster = rd_kafka_mock_cluster_new(tool->host, opts->brokers);
  if (tool->mcluster == NULL) {
    cm_error("could not create a mock cluster of %d brokers", opts->brokers);
    return -1;
  }
  for (i = 0; i < opts->topic_cnt; i++) {
    err = rd_kafka_mock_topic_create(tool->mcluster, opts->topics[i].name,
                                     opts->topics[i].partitions,
                                     tool->replication);
    if (err) {
      cm_error("could not create topic \"%s\": %s", opts->topics[i].name,
               rd_kafka_err2str(err));
      return -1;
    }
  }
  return 0;
}

/** Destroys the query client, then the mock cluster, then its host. */
static void kt_tool_stop(kt_tool_t *tool) {
  if (tool->query != NULL) {
    rd_kafka_destroy(tool->query);
    tool->query = NULL;
  }
  if (tool->mcluster != NULL) {
    rd_kafka_mock_cluster_destroy(tool->mcluster);
    tool->mcluster = NULL;
  }
  if (tool->host != NULL) {
    rd_kafka_destroy(tool->host);
    tool->host = NULL;
  }
}

/** Returns the query client, creating it on first use; NULL on failure. */
static rd_kafka_t *kt_query_client(kt_tool_t *tool) {
  char errstr[512];

  if (tool->query != NULL)
    return tool->query;
  tool->query = kt_handle_new(RD_KAFKA_CONSUMER, "clinicmig-kafka-query",
                              rd_kafka_mock_cluster_bootstraps(tool->mcluster),
                              errstr, sizeof(errstr));
  if (tool->query == NULL)
    cm_error("could not create the query client: %s", errstr);
  return tool->query;
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

/** Appends formatted text to the reply; an overflow is kept and reported. */
static void kt_reply_add(kt_tool_t *tool, const char *fmt, ...) {
  size_t room = sizeof(tool->reply) - tool->reply_len;
  va_list ap;
  int n;

  if (tool->reply_overflow)
    return;
  va_start(ap, fmt);
  n = vsnprintf(tool->reply + tool->reply_len, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) {
    tool->reply_overflow = 1;
    return;
  }
  tool->reply_len += (size_t)n;
}

/** Starts an error reply; handlers return its result (-1). */
static int kt_reply_error(kt_tool_t *tool, const char *fmt, ...) {
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(tool->reply, sizeof(tool->reply), fmt, ap);
  va_end(ap);
  tool->reply_len = n < 0 ? 0 : (size_t)n;
  if (tool->reply_len >= sizeof(tool->reply))
    tool->reply_len = sizeof(tool->reply) - 1;
  tool->reply_overflow = 0;
  return -1;
}

/** Writes one reply line to stdout and flushes it. */
static void kt_reply_send(kt_tool_t *tool, int rc) {
  if (rc == 0 && tool->reply_overflow) {
    rc = kt_reply_error(tool, "reply too long");
  }
  if (rc == 0)
    printf("ok%s%.*s\n", tool->reply_len ? " " : "", (int)tool->reply_len,
           tool->reply);
  else
    printf("error %.*s\n", (int)tool->reply_len, tool->reply);
  if (fflush(stdout) != 0 && !tool->stdout_failed) {
    tool->stdout_failed = 1;
    cm_warn("could not write a reply to stdout: %s", strerror(errno));
  }
  tool->reply_len = 0;
  tool->reply_overflow = 0;
}

/* ------------------------------------------------------------------------ */
/* Control commands                                                         */
/* ------------------------------------------------------------------------ */

/** Reports a mock call's result; returns 0 on success. */
static int kt_mock_result(kt_tool_t *tool, rd_kafka_resp_err_t err,
                          const char *what, const char *arg) {
  if (!err)
    return 0;
  return kt_reply_error(tool, "%s %s: %s", what, arg, rd_kafka_err2str(err));
}

static int kt_cmd_topic(kt_tool_t *tool, int argc, char **argv) {
  int partitions = 0;

  if (!kt_topic_name_ok(argv[1], strlen(argv[1])))
    return kt_reply_error(tool, "invalid topic name");
  if (kt_parse_int(argv[2], 1, KT_MAX_PARTITIONS, &partitions))
    return kt_reply_error(tool, "partitions must be 1..%d", KT_MAX_PARTITIONS);
  return kt_mock_result(tool,
                        rd_kafka_mock_topic_create(tool->mcluster, argv[1],
                                                   partitions,
                                                   tool->replication),
                        "topic", argv[1]);
}

/** Parses a broker id: -1 (all) or a broker's id. */
static int kt_broker_arg(kt_tool_t *tool, const char *s, int32_t *id) {
  int v;

  if (kt_parse_int(s, -1, INT32_MAX, &v))
    return kt_reply_error(tool, "invalid broker id \"%s\"", s);
  *id = (int32_t)v;
  return 0;
}

/* Remembers which brokers are down: the mock does not move leaders away
 * from them, so queries to their partitions can only time out. */
static void kt_mark_down(kt_tool_t *tool, int32_t id, unsigned char down) {
  int i;

  if (id >= 0 && id <= KT_MAX_BROKERS)
    tool->down[id] = down;
  for (i = 1; id == -1 && i <= KT_MAX_BROKERS; i++)
    tool->down[i] = down;
}

static int kt_cmd_broker_down(kt_tool_t *tool, int argc, char **argv) {
  int32_t id = 0;

  if (kt_broker_arg(tool, argv[1], &id))
    return -1;
  if (kt_mock_result(tool, rd_kafka_mock_broker_set_down(tool->mcluster, id),
                     "broker", argv[1]))
    return -1;
  kt_mark_down(tool, id, 1);
  return 0;
}

static int kt_cmd_broker_up(kt_tool_t *tool, int argc, char **argv) {
  int32_t id = 0;

  if (kt_broker_arg(tool, argv[1], &id))
    return -1;
  if (kt_mock_result(tool, rd_kafka_mock_broker_set_up(tool->mcluster, id),
                     "broker", argv[1]))
    return -1;
  kt_mark_down(tool, id, 0);
  return 0;
}

/** Whether broker id was taken down by broker-down. */
static int kt_is_down(const kt_tool_t *tool, int32_t id) {
  return id >= 0 && id <= KT_MAX_BROKERS && tool->down[id];
}

/** Whether every broker is down: metadata requests can only time out. */
static int kt_all_down(const kt_tool_t *tool) {
  int i;

  for (i = 1; i <= tool->brokers; i++)
    if (!tool->down[i])
      return 0;
  return 1;
}

static int kt_cmd_rtt(kt_tool_t *tool, int argc, char **argv) {
  int32_t id = 0;
  int ms = 0;

  if (kt_broker_arg(tool, argv[1], &id))
    return -1;
  if (kt_parse_int(argv[2], 0, 3600000, &ms))
    return kt_reply_error(tool, "rtt must be 0..3600000 ms");
  return kt_mock_result(tool,
                        rd_kafka_mock_broker_set_rtt(tool->mcluster, id, ms),
                        "broker", argv[1]);
}

/** Parses a numeric Kafka API key (ApiKey is an int16 on the wire). */
static int kt_apikey_arg(kt_tool_t *tool, const char *s, int16_t *key) {
  int v;

  if (kt_parse_int(s, 0, INT16_MAX, &v))
    return kt_reply_error(tool, "invalid api key \"%s\"", s);
  *key = (int16_t)v;
  return 0;
}

static int kt_cmd_request_errors(kt_tool_t *tool, int argc, char **argv) {
  rd_kafka_resp_err_t errs[KT_MAX_ARGS];
  int16_t key = 0;
  int i, code = 0;

  if (kt_apikey_arg(tool, argv[1], &key))
    return -1;
  for (i = 2; i < argc; i++) {
    /* wire error codes: -1 (unknown server error) and up */
    if (kt_parse_int(argv[i], -1, INT16_MAX, &code))
      return kt_reply_error(tool, "invalid error code \"%s\"", argv[i]);
    errs[i - 2] = (rd_kafka_resp_err_t)code;
  }
  rd_kafka_mock_push_request_errors_array(tool->mcluster, key,
                                          (size_t)(argc - 2), errs);
  return 0;
}

static int kt_cmd_clear_errors(kt_tool_t *tool, int argc, char **argv) {
  int16_t key = 0;

  if (kt_apikey_arg(tool, argv[1], &key))
    return -1;
  rd_kafka_mock_clear_request_errors(tool->mcluster, key);
  return 0;
}

/** Copies a topic's partition count and leaders out of its metadata. */
static int kt_parts_copy(kt_tool_t *tool, kt_parts_t *parts,
                         const rd_kafka_metadata_topic_t *mt) {
  int i, id;

  if (mt->err)
    return kt_reply_error(tool, "topic %s: %s", mt->topic,
                          rd_kafka_err2str(mt->err));
  if (mt->partition_cnt > KT_MAX_PARTITIONS)
    return kt_reply_error(tool, "topic %s has over %d partitions", mt->topic,
                          KT_MAX_PARTITIONS);
  parts->cnt = mt->partition_cnt;
  for (i = 0; i < parts->cnt; i++)
    parts->leader[i] = -1;
  for (i = 0; i < mt->partition_cnt; i++) {
    id = mt->partitions[i].id;
    if (id >= 0 && id < parts->cnt)
      parts->leader[id] = mt->partitions[i].leader;
  }
  return 0;
}

/**
 * @brief Requests metadata for all topics, trying again on failure.
 *
 * Asks for all topics: naming one would let the mock auto-create it. A
 * request sent to a broker just taken down waits on that broker until it
 * times out; the next try goes to a broker that is up.
 */
static rd_kafka_resp_err_t kt_metadata(rd_kafka_t *rk,
                                       const struct rd_kafka_metadata **md) {
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
  int i;

  for (i = 0; i < KT_METADATA_TRIES; i++) {
    err = rd_kafka_metadata(rk, 1, NULL, md, KT_METADATA_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
        err != RD_KAFKA_RESP_ERR__TRANSPORT)
      return err;
    cm_info("metadata request failed (%s); trying again",
            rd_kafka_err2str(err));
  }
  return err;
}

/**
 * @brief Finds TOPIC's partitions and their leaders by a metadata request.
 */
static int kt_topic_partitions(kt_tool_t *tool, rd_kafka_t *rk,
                               const char *topic, kt_parts_t *parts) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err;
  int i, rc = 0, found = 0;

  if (kt_all_down(tool))
    return kt_reply_error(tool, "all brokers are down");
  err = kt_metadata(rk, &md);
  if (err)
    return kt_reply_error(tool, "metadata: %s", rd_kafka_err2str(err));
  for (i = 0; i < md->topic_cnt && !found; i++) {
    if (strcmp(md->topics[i].topic, topic) != 0)
      continue;
    found = 1;
    rc = kt_parts_copy(tool, parts, &md->topics[i]);
  }
  rd_kafka_metadata_destroy(md);
  if (!found)
    return kt_reply_error(tool, "unknown topic \"%s\"", topic);
  return rc;
}

/**
 * @brief Queries every partition's low and high watermark of TOPIC.
 *
 * Appends "P:LOW:HIGH" entries to the reply; with sum_low set, adds the low
 * watermarks into *sum_low instead. One request per partition to its
 * leader: a partition whose leader is down fails the whole query.
 */
static int kt_watermarks(kt_tool_t *tool, const char *topic, int64_t *sum_low) {
  rd_kafka_t *rk = kt_query_client(tool);
  kt_parts_t parts;
  int p;
  int64_t lo, hi;
  rd_kafka_resp_err_t err;

  parts.cnt = 0;
  if (rk == NULL)
    return kt_reply_error(tool, "no query client");
  if (kt_topic_partitions(tool, rk, topic, &parts))
    return -1;
  for (p = 0; p < parts.cnt; p++) {
    if (kt_is_down(tool, parts.leader[p]))
      return kt_reply_error(tool, "watermarks of %s [%d]: leader %d is down",
                            topic, p, (int)parts.leader[p]);
    err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi,
                                           KT_QUERY_TIMEOUT_MS);
    if (err)
      return kt_reply_error(tool, "watermarks of %s [%d]: %s", topic, p,
                            rd_kafka_err2str(err));
    if (sum_low != NULL)
      *sum_low += lo;
    else
      kt_reply_add(tool, "%s%d:%" PRId64 ":%" PRId64, p ? " " : "", p, lo, hi);
  }
  return 0;
}

static int kt_cmd_watermarks(kt_tool_t *tool, int argc, char **argv) {
  return kt_watermarks(tool, argv[1], NULL);
}

/* The mock only ever drops from the start of a log (retention), so the low
 * watermarks add up to the messages lost. */
static int kt_cmd_dropped(kt_tool_t *tool, int argc, char **argv) {
  int64_t sum = 0;

  if (kt_watermarks(tool, argv[1], &sum))
    return -1;
  kt_reply_add(tool, "%" PRId64, sum);
  return 0;
}

static int kt_cmd_ping(kt_tool_t *tool, int argc, char **argv) {
  return 0;
}

static int kt_cmd_quit(kt_tool_t *tool, int argc, char **argv) {
  tool->quit = 1;
  return 0;
}

static const kt_cmd_t kt_cmds[] = {
    {"topic", 2, 2, kt_cmd_topic},
    {"broker-down", 1, 1, kt_cmd_broker_down},
    {"broker-up", 1, 1, kt_cmd_broker_up},
    {"rtt", 2, 2, kt_cmd_rtt},
    {"request-errors", 2, KT_MAX_ARGS - 1, kt_cmd_request_errors},
    {"clear-errors", 1, 1, kt_cmd_clear_errors},
    {"watermarks", 1, 1, kt_cmd_watermarks},
    {"dropped", 1, 1, kt_cmd_dropped},
    {"ping", 0, 0, kt_cmd_ping},
    {"quit", 0, 0, kt_cmd_quit},
};

/** Splits a line at blanks in place; returns the word count or -1. */
static int kt_split(char *line, char **argv, int max) {
  int argc = 0;
  char *p = line;

  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\r')
      *p++ = '\0';
    if (*p == '\0')
      return argc;
    if (argc == max)
      return -1;
    argv[argc++] = p;
    while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r')
      p++;
  }
}

/** Runs one control line and replies; blank lines get no reply. */
static void kt_run_line(kt_tool_t *tool, char *line) {
  char *argv[KT_MAX_ARGS + 1];
  int argc = kt_split(line, argv, KT_MAX_ARGS + 1);
  const kt_cmd_t *cmd = NULL;
  size_t i;
  int rc;

  if (argc == 0)
    return;
  if (argc < 0) {
    kt_reply_send(tool, kt_reply_error(tool, "too many arguments"));
    return;
  }
  for (i = 0; i < sizeof(kt_cmds) / sizeof(kt_cmds[0]); i++)
    if (strcmp(argv[0], kt_cmds[i].name) == 0)
      cmd = &kt_cmds[i];
  if (cmd == NULL)
    rc = kt_reply_error(tool, "unknown command \"%s\"", argv[0]);
  else if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args)
    rc = kt_reply_error(tool, "wrong number of arguments for %s", cmd->name);
  else
    rc = cmd->fn(tool, argc, argv);
  kt_reply_send(tool, rc);
}

/* ------------------------------------------------------------------------ */
/* Main loop                                                                */
/* ------------------------------------------------------------------------ */

/** Feeds bytes read from stdin; runs each complete line. */
static void kt_feed(kt_tool_t *tool, const char *buf, size_t len) {
  size_t i;

  for (i = 0; i < len && !tool->quit; i++) {
    if (buf[i] != '\n') {
      if (tool->line_len < KT_MAX_LINE)
        tool->line[tool->line_len++] = buf[i];
      else
        tool->line_overflow = 1;
      continue;
    }
    tool->line[tool->line_len] = '\0';
    if (tool->line_overflow)
      kt_reply_send(tool, kt_reply_error(tool, "line too long"));
    else
      kt_run_line(tool, tool->line);
    tool->line_len = 0;
    tool->line_overflow = 0;
  }
}

/** Reads what stdin has; returns 0, or -1 once it is closed. */
static int kt_read_stdin(kt_tool_t *tool) {
  char buf[4096];
  ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return 0;
  if (n < 0)
    cm_warn("could not read stdin: %s", strerror(errno));
  if (n <= 0) {
    if (tool->line_len > 0)
      kt_feed(tool, "\n", 1); /* a last line without a newline */
    cm_info("control channel closed; running until a signal");
    return -1;
  }
  kt_feed(tool, buf, (size_t)n);
  return 0;
}

static void kt_on_signal(int sig) {
  int saved = errno;
  ssize_t n;

  kt_stop_signal = sig;
  n = write(kt_wake_pipe[1], "x", 1);
  (void)n;
  errno = saved;
}

/** Installs SIGTERM/SIGINT handlers that wake the loop; ignores SIGPIPE. */
static int kt_signals_init(void) {
  struct sigaction sa;

  if (pipe(kt_wake_pipe) != 0)
    return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = kt_on_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
    return -1;
  sa.sa_handler = SIG_IGN;
  return sigaction(SIGPIPE, &sa, NULL);
}

/** Serves stdin and the handles' callbacks until quit or a signal. */
static int kt_loop(kt_tool_t *tool) {
  struct pollfd fds[2];
  int n;

  fds[0].fd = kt_wake_pipe[0];
  fds[0].events = POLLIN;
  fds[1].fd = STDIN_FILENO;
  fds[1].events = POLLIN;
  while (!kt_stop_signal && !tool->quit) {
    n = poll(fds, 2, 1000);
    if (n < 0 && errno != EINTR) {
      cm_error("poll: %s", strerror(errno));
      return -1;
    }
    if (n > 0 && fds[1].revents != 0 && kt_read_stdin(tool) != 0)
      fds[1].fd = -1; /* poll ignores negative fds */
    rd_kafka_poll(tool->host, 0);
    if (tool->query != NULL)
      rd_kafka_poll(tool->query, 0);
  }
  if (kt_stop_signal)
    cm_info("stopping on signal %d", (int)kt_stop_signal);
  return 0;
}

int main(int argc, char **argv) {
  kt_opts_t opts;
  kt_tool_t *tool;
  int rc;

  memset(&opts, 0, sizeof(opts));
  cm_log_set_component("clinicmig-kafka");
  rc = kt_opts_parse(&opts, argc, argv);
  if (rc != 0 || opts.help) {
    if (opts.help)
      fputs(kt_usage, stdout);
    free(opts.topics);
    return rc;
  }
  tool = calloc(1, sizeof(*tool));
  if (tool == NULL || kt_signals_init() != 0) {
    cm_error("could not start: %s", strerror(errno));
    free(opts.topics);
    free(tool);
    return KT_EXIT_FAILURE;
  }
  rc = KT_EXIT_FAILURE;
  if (kt_tool_start(tool, &opts) == 0) {
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(tool->mcluster));
    fflush(stdout);
    cm_info("%d brokers at %s", opts.brokers,
            rd_kafka_mock_cluster_bootstraps(tool->mcluster));
    if (kt_loop(tool) == 0)
      rc = KT_EXIT_OK;
  }
  kt_tool_stop(tool);
  free(opts.topics);
  free(tool);
  return rc;
}
