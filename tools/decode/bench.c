/*
 * bench.c — clinicmig-decode-bench: how many events the worker's decoder
 * reads per second of CPU, for a set of messages.
 *
 * NOTES
 * The messages are kcat -J lines, as clinicmig-decode reads them (key and
 * payload as text, or key_b64 / payload_b64 for binary messages such as
 * Avro in Confluent's wire format). They are loaded into memory once; then
 * the whole set is decoded with cm_event_decode2(), again and again, until
 * the CPU time of the process reaches --seconds. The figure is events per
 * CPU second of one thread: events per second per core. Writer schemas are
 * fetched once and cached, as in the worker, so a run measures the decoding
 * itself. docs/performance.md says how the figures are taken.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_event.h"
#include "clinicmig/cm_schemas.h"

static const char usage[] =
    "Usage: clinicmig-decode-bench [--seconds S] [--schema-dir DIR]\n"
    "         [--schema-registry-url URL] FILE\n"
    "\n"
    "Decodes the messages of FILE (kcat -J lines, as clinicmig-decode reads\n"
    "them) with the worker's decoder, over and over for S seconds of CPU\n"
    "time (default 3), and prints one JSON line: the messages in the set,\n"
    "the events decoded, how many were dead letters, the CPU seconds and\n"
    "events_per_cpu_second (one thread: events per second per core).\n"
    "\n"
    "Exit status: 0, 1 if FILE cannot be read or a message cannot be\n"
    "decoded for lack of a schema source, 2 on bad usage.\n";

typedef struct msg_s {
  char *topic;
  unsigned char *key, *val;
  size_t key_len, val_len;
  int has_key, has_val;
} msg_t;

static double cpu_seconds(void) {
  struct timespec ts;

  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Base64 text to new bytes, with OpenSSL. @returns 0, -1 if not base64. */
static int unbase64(const char *in, unsigned char **out, size_t *len) {
  size_t n = strlen(in), pad = 0;
  int got;

  if (n % 4 != 0)
    return -1;
  *out = malloc(n / 4 * 3 + 1);
  if (*out == NULL)
    return -1;
  got = EVP_DecodeBlock(*out, (const unsigned char *)in, (int)n);
  if (got < 0) {
    free(*out);
    return -1;
  }
  while (pad < 2 && n > pad && in[n - 1 - pad] == '=')
    pad++;
  *len = (size_t)got - pad;
  return 0;
}

/* Key or payload of a line into @p p: "<name>_b64" wins over "<name>". */
static int member(const cJSON *line, const char *name, unsigned char **p,
                  size_t *len, int *has) {
  char b64[32];
  const cJSON *v;

  snprintf(b64, sizeof(b64), "%s_b64", name);
  *has = 0;
  v = cJSON_GetObjectItemCaseSensitive(line, b64);
  if (cJSON_IsString(v)) {
    *has = 1;
    return unbase64(v->valuestring, p, len);
  }
  v = cJSON_GetObjectItemCaseSensitive(line, name);
  if (cJSON_IsString(v)) {
    *has = 1;
    *len = strlen(v->valuestring);
    *p = (unsigned char *)strdup(v->valuestring);
    return *p == NULL ? -1 : 0;
  }
  return 0;
}

static void msgs_free(msg_t *m, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    free(m[i].topic);
    free(m[i].key);
    free(m[i].val);
  }
  free(m);
}

/* Loads every line of @p path. @returns the count, or -1 with a reason. */
static long load(const char *path, msg_t **out) {
  FILE *f = fopen(path, "r");
  char *line = NULL;
  size_t cap = 0, n = 0, room = 0;
  ssize_t len;
  msg_t *m = NULL, *nm;
  cJSON *j;
  const cJSON *t;
  long lineno = 0;

  if (f == NULL) {
    fprintf(stderr, "clinicmig-decode-bench: %s: %s\n", path, strerror(errno));
    return -1;
  }
  while ((len = getline(&line, &cap, f)) > 0) {
    lineno++;
    if (strspn(line, " \t\r\n") == (size_t)len)
      continue;
    j = cJSON_ParseWithLength(line, (size_t)len);
    t = cJSON_GetObjectItemCaseSensitive(j, "topic");
    if (n == room) {
      room = room ? room * 2 : 64;
      nm = realloc(m, room * sizeof(*m));
      if (nm == NULL)
        goto bad;
      m = nm;
    }
    memset(&m[n], 0, sizeof(m[n]));
    if (!cJSON_IsString(t) || (m[n].topic = strdup(t->valuestring)) == NULL ||
        member(j, "key", &m[n].key, &m[n].key_len, &m[n].has_key) != 0 ||
        member(j, "payload", &m[n].val, &m[n].val_len, &m[n].has_val) != 0) {
      n++;
      goto bad;
    }
    n++;
    cJSON_Delete(j);
  }
  free(line);
  fclose(f);
  *out = m;
  return (long)n;
bad:
  fprintf(stderr, "clinicmig-decode-bench: %s:%ld: not a kcat -J line\n", path,
          lineno);
  cJSON_Delete(j);
  free(line);
  fclose(f);
  msgs_free(m, n);
  return -1;
}

int main(int argc, char **argv) {
  cm_schemas_conf_t sc = {NULL, NULL, NULL, NULL, 0};
  cm_schemas_t *schemas = NULL;
  const char *path = NULL;
  double seconds = 3.0, start, used;
  uint64_t events = 0, bad = 0;
  msg_t *m = NULL;
  char err[512];
  cm_event_t ev;
  long n, i;
  int a, rc;

  for (a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--help") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (a + 1 < argc && strcmp(argv[a], "--seconds") == 0) {
      seconds = strtod(argv[++a], NULL);
      if (!(seconds > 0)) {
        fprintf(stderr, "clinicmig-decode-bench: --seconds: expected a "
                        "positive number\n");
        return 2;
      }
    } else if (a + 1 < argc && strcmp(argv[a], "--schema-dir") == 0) {
      sc.dir = argv[++a];
    } else if (a + 1 < argc && strcmp(argv[a], "--schema-registry-url") == 0) {
      sc.registry_url = argv[++a];
    } else if (argv[a][0] != '-' && path == NULL) {
      path = argv[a];
    } else {
      fprintf(stderr, "clinicmig-decode-bench: unknown argument \"%s\"\n\n%s",
              argv[a], usage);
      return 2;
    }
  }
  if (path == NULL) {
    fprintf(stderr, "clinicmig-decode-bench: no FILE\n\n%s", usage);
    return 2;
  }
  if (sc.dir != NULL || sc.registry_url != NULL) {
    schemas = cm_schemas_new(&sc, err, sizeof(err));
    if (schemas == NULL) {
      fprintf(stderr, "clinicmig-decode-bench: %s\n", err);
      return 2;
    }
  }
  n = load(path, &m);
  if (n <= 0) {
    if (n == 0)
      fprintf(stderr, "clinicmig-decode-bench: %s: no messages\n", path);
    cm_schemas_destroy(schemas);
    return 1;
  }
  start = cpu_seconds();
  do {
    for (i = 0; i < n; i++) {
      rc = cm_event_decode2(m[i].topic, m[i].has_key ? m[i].key : NULL,
                            m[i].key_len, m[i].has_val ? m[i].val : NULL,
                            m[i].val_len, schemas, &ev, err, sizeof(err));
      if (rc == CM_ERR_RETRY || rc == CM_ERR_NOMEM) {
        fprintf(stderr, "clinicmig-decode-bench: %s\n", err);
        msgs_free(m, (size_t)n);
        cm_schemas_destroy(schemas);
        return 1;
      }
      if (rc == CM_OK)
        cm_event_clear(&ev);
      else
        bad++;
      events++;
    }
    used = cpu_seconds() - start;
  } while (used < seconds);
  printf("{\"file\":\"%s\",\"messages\":%ld,\"events\":%llu,"
         "\"dead_letters\":%llu,\"cpu_seconds\":%.3f,"
         "\"events_per_cpu_second\":%.0f}\n",
         path, n, (unsigned long long)events, (unsigned long long)bad, used,
         (double)events / used);
  msgs_free(m, (size_t)n);
  cm_schemas_destroy(schemas);
  return 0;
}
