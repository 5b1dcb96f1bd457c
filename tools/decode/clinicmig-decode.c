/*
 * clinicmig-decode.c — what the worker makes of Kafka messages, from kcat.
 *
 * NOTES
 * An operator's tool: pipe `kcat -C -J` into it to see, one JSON line per
 * message, whether the worker applies, skips or dead-letters a message,
 * why, and the event it decodes. It runs the worker's own decoder
 * (cm_event_decode2, cm_event_disposition), so its verdict is the worker's.
 * Binary messages (Avro in Confluent's wire format) come as `key_b64` and
 * `payload_b64`; their writer schemas from --schema-registry-url or
 * --schema-dir, as the worker's options name them. --time-precision-mode
 * and --legacy-column-types are the worker's options of the same names.
 *
 * Its output holds column values (names, phones, emails) of the messages
 * the operator is reading: it is for a terminal, never for logs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_event.h"
#include "clinicmig/cm_schemas.h"

/* Longest input line: a 4 MiB message can grow six-fold when escaped. */
#define LINE_MAX_BYTES ((size_t)32 * 1024 * 1024)

/* The header Kafka Connect puts on a dead-lettered message. */
#define ERRORS_TOPIC_HEADER "__connect.errors.topic"

static const char usage[] =
    "Usage: clinicmig-decode [--schema-registry-url URL]\n"
    "         [--schema-registry-basic-auth-user-info USER:PASSWORD]\n"
    "         [--schema-registry-ssl-ca-location FILE] [--schema-dir DIR]\n"
    "         [--time-precision-mode MODE] [--legacy-column-types SPEC]\n"
    "         [--help]\n"
    "\n"
    "Reads Kafka messages as `kcat -C -J` prints them, one JSON object a\n"
    "line, on standard input, and prints one JSON line for each: what the\n"
    "clinicmig worker does with it (\"status\": \"apply\", \"skip\" or\n"
    "\"dead_letter\"), the \"reason\" for a skip or dead letter, and the\n"
    "decoded \"event\": table, op, key, source position and typed row\n"
    "images.\n"
    "\n"
    "An input line is {\"topic\", \"partition\", \"offset\", \"headers\",\n"
    "\"key\", \"payload\"}, key and payload being the message text as a JSON\n"
    "string, or null; they may also be JSON objects (kcat -s avro). Binary\n"
    "messages come as \"key_b64\" and \"payload_b64\" (base64), beside or\n"
    "instead of key and payload. Avro\n"
    "messages in Confluent's wire format are decoded with their writer\n"
    "schema from the registry (--schema-registry-url) or a directory of\n"
    "<id>.avsc files (--schema-dir); a registry that cannot answer for now\n"
    "gives \"status\": \"error\" (the worker would wait and retry).\n"
    "\n"
    "A temporal number without a semantic type (the JSON converter with\n"
    "schemas.enable=false) is read in the unit the connector writes: give\n"
    "its time.precision.mode (--time-precision-mode: adaptive,\n"
    "adaptive_time_microseconds (the default), connect, microseconds,\n"
    "nanoseconds, isostring) and the legacy timestamp columns that are not\n"
    "timestamptz (--legacy-column-types, e.g. '*.*=timestamp(3)' or\n"
    "'Appointment.startsAt=timestamp(6)'), as the worker is configured.\n"
    "\n"
    "A message with a " ERRORS_TOPIC_HEADER " header (read back from a\n"
    "dead-letter topic) is decoded as if read from the topic it names,\n"
    "shown as \"source_topic\". A line that is not such an object prints\n"
    "{\"line\": N, \"status\": \"error\", \"reason\": ...} and reading goes\n"
    "on; blank lines are ignored.\n"
    "\n"
    "The output shows column values (names, phones, emails): keep it in\n"
    "the terminal, out of logs and tickets.\n"
    "\n"
    "Exit status: 0 at the end of input, 1 if standard input cannot be\n"
    "read, 2 on bad usage.\n"
    "\n"
    "Example:\n"
    "  kcat -C -J -e -b BROKER -t clinicmig.dlq | clinicmig-decode\n";

/* Key or value bytes of one message, owned or borrowed from the line. */
typedef struct bytes_s {
  const char *p;
  size_t len;
  char *owned;
} bytes_t;

/*
 * Reads one line without its newline into *buf (grown as needed). Lines
 * over LINE_MAX_BYTES are read to their end and flagged in *too_long.
 * @returns 1 for a line, 0 at the end of input, -1 on a read error.
 */
static int read_line(FILE *in, char **buf, size_t *cap, size_t *len,
                     int *too_long) {
  char chunk[65536];
  size_t n;
  char *nb;
  int got = 0;

  *len = 0;
  *too_long = 0;
  while (fgets(chunk, sizeof(chunk), in) != NULL) {
    got = 1;
    n = strlen(chunk);
    if (*too_long || *len + n + 1 > LINE_MAX_BYTES) {
      *too_long = 1;
    } else {
      if (*len + n + 1 > *cap) {
        nb = realloc(*buf, (*len + n + 1) * 2);
        if (nb == NULL)
          return -1;
        *buf = nb;
        *cap = (*len + n + 1) * 2;
      }
      memcpy(*buf + *len, chunk, n + 1);
      *len += n;
    }
    if (n > 0 && chunk[n - 1] == '\n')
      break;
  }
  if (ferror(in))
    return -1;
  if (*len > 0 && (*buf)[*len - 1] == '\n')
    (*buf)[--*len] = '\0';
  return got;
}

/*
 * The value of header @p name: kcat prints headers as a flat array
 * ["k1", "v1", "k2", "v2"] or, with a header map, {"k1": ["v1"]}.
 */
static const char *header_value(const cJSON *headers, const char *name) {
  const cJSON *h, *v;

  if (cJSON_IsObject(headers)) {
    v = cJSON_GetObjectItemCaseSensitive(headers, name);
    if (cJSON_IsArray(v))
      v = cJSON_GetArrayItem(v, 0);
    return cJSON_IsString(v) ? v->valuestring : NULL;
  }
  if (!cJSON_IsArray(headers))
    return NULL;
  for (h = headers->child; h != NULL && h->next != NULL; h = h->next->next) {
    v = h->next;
    if (cJSON_IsString(h) && strcmp(h->valuestring, name) == 0)
      return cJSON_IsString(v) ? v->valuestring : NULL;
  }
  return NULL;
}

static int base64_decode_fail(bytes_t *b) {
  int rc = b->owned == NULL ? -1 : -2;

  free(b->owned);
  memset(b, 0, sizeof(*b));
  return rc;
}

/* Decodes base64 (RFC 4648, padding optional) into new bytes. */
static int base64_decode(const char *in, bytes_t *b) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(in), i, len = 0;
  uint32_t acc = 0;
  int bits = 0;
  const char *p;

  b->owned = malloc(n / 4 * 3 + 3);
  if (b->owned == NULL)
    return -1;
  for (i = 0; i < n && in[i] != '='; i++) {
    p = in[i] != '\0' ? strchr(abc, in[i]) : NULL;
    if (p == NULL)
      return -2;
    acc = (acc << 6) | (uint32_t)(p - abc);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      b->owned[len++] = (char)((acc >> bits) & 0xff);
    }
  }
  b->p = b->owned;
  b->len = len;
  return 0;
}

/* Key or payload from "<name>_b64" when the line has it. @returns 1 if it
 * has, 0 if not, -1 out of memory, -2 not base64. */
static int message_b64(const cJSON *msg, const char *name, bytes_t *b) {
  char field[32];
  const cJSON *v;

  snprintf(field, sizeof(field), "%s_b64", name);
  v = cJSON_GetObjectItemCaseSensitive(msg, field);
  if (v == NULL)
    return 0;
  memset(b, 0, sizeof(*b));
  if (cJSON_IsNull(v))
    return 1;
  if (!cJSON_IsString(v))
    return -2;
  return base64_decode(v->valuestring, b) == 0 ? 1 : base64_decode_fail(b);
}

/* Key or payload: a JSON string holds the text; JSON null, no bytes; any
 * other JSON value is the message itself, serialized again. */
static int message_bytes(const cJSON *item, bytes_t *b) {
  memset(b, 0, sizeof(*b));
  if (item == NULL || cJSON_IsNull(item))
    return 0;
  if (cJSON_IsString(item)) {
    b->p = item->valuestring;
    b->len = strlen(item->valuestring);
    return 0;
  }
  b->owned = cJSON_PrintUnformatted(item);
  if (b->owned == NULL)
    return -1;
  b->p = b->owned;
  b->len = strlen(b->owned);
  return 0;
}

/* Key or payload of a line: "<name>_b64" wins over "<name>". */
static int line_bytes(const cJSON *msg, const char *name, bytes_t *b,
                      const char **why) {
  int rc = message_b64(msg, name, b);

  if (rc == 0)
    rc = message_bytes(cJSON_GetObjectItemCaseSensitive(msg, name), b) == 0
             ? 1
             : -1;
  if (rc == -2)
    *why = strcmp(name, "key") == 0 ? "\"key_b64\" is not base64"
                                    : "\"payload_b64\" is not base64";
  else if (rc < 0)
    *why = "out of memory";
  return rc < 0 ? -1 : 0;
}

/* Decodes one message into @p out: status, reason and event. */
static void decode_into(cJSON *out, const char *topic, const bytes_t *key,
                        const bytes_t *val, const cm_decode_opts_t *opts) {
  static const char *const status[] = {"apply", "skip", "dead_letter"};
  cm_event_t ev;
  char err[512];
  const char *reason = NULL;
  cm_disposition_t disp;
  int rc;

  rc = cm_event_decode_opts(topic, key->p, key->len, val->p, val->len, opts,
                            &ev, err, sizeof(err));
  if (rc == CM_ERR_NOMEM || rc == CM_ERR_RETRY) {
    cJSON_AddStringToObject(out, "status", "error");
    cJSON_AddStringToObject(out, "reason", err);
    return;
  }
  if (rc != CM_OK) {
    cJSON_AddStringToObject(out, "status", "dead_letter");
    cJSON_AddStringToObject(out, "reason", err);
    return;
  }
  disp = cm_event_disposition(&ev, &reason);
  cJSON_AddStringToObject(out, "status", status[disp]);
  if (reason != NULL)
    cJSON_AddStringToObject(out, "reason", reason);
  cJSON_AddItemToObject(out, "event", cm_event_to_json(&ev));
  cm_event_clear(&ev);
}

/* Copies a member of the kcat line (partition, offset) if it is there. */
static void copy_member(cJSON *out, const cJSON *in, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);

  if (v != NULL)
    cJSON_AddItemToObject(out, name, cJSON_Duplicate(v, 1));
}

/* The output for one kcat message; NULL with *why set if it is not one. */
static cJSON *process_message(const cJSON *msg, const cm_decode_opts_t *opts,
                              const char **why) {
  const cJSON *topic = cJSON_GetObjectItemCaseSensitive(msg, "topic");
  const char *src;
  bytes_t key, val;
  cJSON *out;

  if (!cJSON_IsString(topic)) {
    *why = "no \"topic\" string";
    return NULL;
  }
  memset(&val, 0, sizeof(val));
  out = cJSON_CreateObject();
  if (out == NULL || line_bytes(msg, "key", &key, why) != 0 ||
      line_bytes(msg, "payload", &val, why) != 0) {
    if (out == NULL)
      *why = "out of memory";
    cJSON_Delete(out);
    free(key.owned);
    free(val.owned);
    return NULL;
  }
  src = header_value(cJSON_GetObjectItemCaseSensitive(msg, "headers"),
                     ERRORS_TOPIC_HEADER);
  cJSON_AddStringToObject(out, "topic", topic->valuestring);
  copy_member(out, msg, "partition");
  copy_member(out, msg, "offset");
  if (src != NULL)
    cJSON_AddStringToObject(out, "source_topic", src);
  decode_into(out, src != NULL ? src : topic->valuestring, &key, &val, opts);
  free(key.owned);
  free(val.owned);
  return out;
}

static void print_json(cJSON *obj) {
  char *s = cJSON_PrintUnformatted(obj);

  if (s == NULL) {
    fputs("{\"status\":\"error\",\"reason\":\"out of memory\"}\n", stdout);
    return;
  }
  fputs(s, stdout);
  fputc('\n', stdout);
  free(s);
}

static void print_error(unsigned long lineno, const char *why) {
  cJSON *o = cJSON_CreateObject();

  if (o == NULL)
    return;
  cJSON_AddNumberToObject(o, "line", (double)lineno);
  cJSON_AddStringToObject(o, "status", "error");
  cJSON_AddStringToObject(o, "reason", why);
  print_json(o);
  cJSON_Delete(o);
}

/* Handles one input line. */
static void process_line(const char *line, size_t len, unsigned long lineno,
                         const cm_decode_opts_t *opts) {
  const char *why = "not a JSON object";
  cJSON *msg, *out = NULL;

  if (strspn(line, " \t\r") == len)
    return;
  msg = cJSON_ParseWithLength(line, len);
  if (msg == NULL)
    why = "not valid JSON";
  else if (cJSON_IsObject(msg))
    out = process_message(msg, opts, &why);
  if (out != NULL)
    print_json(out);
  else
    print_error(lineno, why);
  cJSON_Delete(out);
  cJSON_Delete(msg);
}

/* The options of clinicmig-decode, as text. */
typedef struct args_s {
  cm_schemas_conf_t sc;
  const char *time_mode;
  const char *coltypes;
} args_t;

/* Where each option goes. */
static const char **opt_slot(args_t *a, const char *flag) {
  cm_schemas_conf_t *sc = &a->sc;

  if (strcmp(flag, "--time-precision-mode") == 0)
    return &a->time_mode;
  if (strcmp(flag, "--legacy-column-types") == 0)
    return &a->coltypes;
  if (strcmp(flag, "--schema-registry-url") == 0)
    return &sc->registry_url;
  if (strcmp(flag, "--schema-registry-basic-auth-user-info") == 0)
    return &sc->basic_auth;
  if (strcmp(flag, "--schema-registry-ssl-ca-location") == 0)
    return &sc->ca_location;
  if (strcmp(flag, "--schema-dir") == 0)
    return &sc->dir;
  return NULL;
}

/*
 * Reads the options into @p a. @returns 0, 1 for --help, 2 on bad usage.
 */
static int parse_args(int argc, char **argv, args_t *a) {
  const char **slot;
  int i;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return 1;
    slot = opt_slot(a, argv[i]);
    if (slot == NULL || i + 1 >= argc) {
      fprintf(stderr, "clinicmig-decode: %s \"%s\"\n\n%s",
              slot == NULL ? "unknown argument" : "no value for", argv[i],
              usage);
      return 2;
    }
    *slot = argv[++i];
  }
  return 0;
}

/* The decoding options from the command line; 0, or 2 after saying why. */
static int make_opts(const args_t *a, cm_decode_opts_t *o,
                     cm_coltypes_t *coltypes) {
  char err[512];

  memset(o, 0, sizeof(*o));
  o->coltypes = coltypes;
  if (a->time_mode != NULL && cm_time_mode_parse(a->time_mode, &o->time_mode)) {
    fprintf(stderr,
            "clinicmig-decode: --time-precision-mode: expected adaptive, "
            "adaptive_time_microseconds, connect, microseconds, nanoseconds "
            "or isostring, got \"%s\"\n",
            a->time_mode);
    return 2;
  }
  if (cm_coltypes_parse(a->coltypes, coltypes, err, sizeof(err)) != 0) {
    fprintf(stderr, "clinicmig-decode: --legacy-column-types: %s\n", err);
    return 2;
  }
  if (a->sc.registry_url != NULL || a->sc.dir != NULL) {
    o->schemas = cm_schemas_new(&a->sc, err, sizeof(err));
    if (o->schemas == NULL) {
      fprintf(stderr, "clinicmig-decode: %s\n", err);
      return 2;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  args_t args = {{NULL, NULL, NULL, NULL, 0}, NULL, NULL};
  cm_coltypes_t coltypes;
  cm_decode_opts_t opts;
  unsigned long lineno = 0;
  size_t cap = 0, len;
  char *line = NULL;
  int rc, too_long;

  rc = parse_args(argc, argv, &args);
  if (rc == 1)
    fputs(usage, stdout);
  if (rc != 0)
    return rc == 1 ? 0 : 2;
  if (make_opts(&args, &opts, &coltypes) != 0)
    return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  while ((rc = read_line(stdin, &line, &cap, &len, &too_long)) > 0) {
    lineno++;
    if (too_long || line == NULL)
      print_error(lineno, "line too long");
    else
      process_line(line, len, lineno, &opts);
  }
  free(line);
  cm_schemas_destroy(opts.schemas);
  if (rc < 0) {
    fprintf(stderr, "clinicmig-decode: could not read standard input: %s\n",
            strerror(errno));
    return 1;
  }
  return 0;
}
