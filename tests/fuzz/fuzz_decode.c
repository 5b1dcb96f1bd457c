/*
 * fuzz_decode.c — libFuzzer entry for the Debezium event decoder.
 *
 * NOTES
 * The input is split at its first NUL or newline into a message key and a
 * message value; without a separator there is no key and the whole input
 * is the value. Binary messages (Avro in Confluent's wire format, full of
 * NULs) are framed instead: byte 0xFF, the key's length in two bytes (big
 * endian), the key, then the value. Avro writer schemas come from the
 * fixtures' schema directory (tests/data/decode-avro/schemas). Key and value
 * are copied to buffers of their exact size, so AddressSanitizer catches a read
 * one byte past either. The decoder's contract (cm_event.h) is that every byte
 * string gives an event or a reason: a crash, a leak, a sanitizer report or an
 * OK without an event is a bug. Decoded events also go through cm_event_to_json
 * and cm_event_disposition, as clinicmig-decode uses them.
 *
 * A value in Confluent's wire format also goes through the reader of
 * clinicmig's own Avro streams (cm_avro_wire_to_json, what clinicmig-watch
 * runs on every progress and reconciliation message): it must give valid
 * JSON or a one-line reason.
 *
 * The input's length picks the time.precision.mode and whether timestamp
 * columns are declared timestamp without time zone, so that temporal
 * numbers are read under every configuration (docs/design.md §1.2).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_avro_out.h"
#include "clinicmig/cm_err.h"
#include "clinicmig/cm_event.h"
#include "clinicmig/cm_schemas.h"

#ifndef CM_FUZZ_SCHEMA_DIR
#define CM_FUZZ_SCHEMA_DIR "tests/data/decode-avro/schemas"
#endif

/* The streams' own schemas are compiled into cmcore from a generated file;
 * the target reads the fixtures' schema directory only. */
const char *const cm_avsc_names[] = {NULL};
const char *const cm_avsc_texts[] = {NULL};

/* Kept for the whole run: a cache of parsed schemas, as in the worker. */
static cm_schemas_t *schemas;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A heap copy of exactly @p n bytes (at least one byte is allocated). */
static char *copy(const uint8_t *p, size_t n) {
  char *c = malloc(n > 0 ? n : 1);

  if (c != NULL && n > 0)
    memcpy(c, p, n);
  return c;
}

static void use_event(const cm_event_t *ev) {
  const char *reason = NULL;
  cJSON *j;
  char *s;

  cm_event_disposition(ev, &reason);
  j = cm_event_to_json(ev);
  if (j == NULL)
    abort();
  s = cJSON_PrintUnformatted(j);
  free(s);
  cJSON_Delete(j);
}

static cm_schemas_t *schema_source(void) {
  cm_schemas_conf_t sc = {NULL, NULL, NULL, CM_FUZZ_SCHEMA_DIR, 0};
  char err[256];

  if (schemas == NULL)
    schemas = cm_schemas_new(&sc, err, sizeof(err));
  if (schemas == NULL)
    abort();
  return schemas;
}

/* The key of a framed (0xFF) input: @returns its length, or 0. */
static size_t framed_key(const uint8_t **data, size_t *size, char **key) {
  size_t n;

  if (*size < 3)
    return 0;
  n = ((size_t)(*data)[1] << 8) | (*data)[2];
  if (n > *size - 3)
    n = *size - 3;
  *key = n > 0 ? copy(*data + 3, n) : NULL;
  *data += 3 + n;
  *size -= 3 + n;
  return n;
}

/* The key of a text input, up to its first NUL or newline. */
static size_t text_key(const uint8_t **data, size_t *size, char **key) {
  size_t sep;

  for (sep = 0; sep < *size && (*data)[sep] != '\0' && (*data)[sep] != '\n';
       sep++)
    ;
  if (sep == *size)
    return 0;
  *key = copy(*data, sep);
  *data += sep + 1;
  *size -= sep + 1;
  return sep;
}

/* Timestamp columns of both precisions without time zone. */
static const cm_coltypes_t *coltypes(void) {
  static cm_coltypes_t types;
  static int done;
  char err[256];

  if (!done && cm_coltypes_parse("*.*=timestamp(3),*.startsAt=timestamp(6)",
                                 &types, err, sizeof(err)) != 0)
    abort();
  done = 1;
  return &types;
}

/* The streams' reader on a wire-format value. */
static void wire_to_json(const char *val, size_t size) {
  char err[256], *json = NULL;
  cJSON *j;

  err[0] = '\0';
  if (cm_avro_wire_to_json(schema_source(), val, size, &json, err,
                           sizeof(err)) != CM_OK) {
    if (json != NULL || err[0] == '\0' || strchr(err, '\n') != NULL)
      abort(); /* a failure gives a one-line reason and no text */
    return;
  }
  j = json != NULL ? cJSON_Parse(json) : NULL;
  if (j == NULL)
    abort(); /* OK must mean a JSON document */
  cJSON_Delete(j);
  free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cm_decode_opts_t opts;
  char err[256];
  cm_event_t ev;
  char *key = NULL, *val;
  size_t key_len;
  int rc;

  if (size > 0 && data[0] == 0xFF)
    key_len = framed_key(&data, &size, &key);
  else
    key_len = text_key(&data, &size, &key);
  val = copy(data, size);
  opts.schemas = schema_source();
  opts.time_mode = (cm_time_mode_t)(size % (CM_TIME_ISOSTRING + 1));
  opts.coltypes = size % 2 == 0 ? NULL : coltypes();
  rc = cm_event_decode_opts("legacy.public.Patient", key, key_len, val, size,
                            &opts, &ev, err, sizeof(err));
  if (rc == CM_OK && ev.op == 0)
    abort(); /* OK must mean an event */
  if (rc == CM_OK)
    use_event(&ev);
  else if (err[0] == '\0' || strchr(err, '\n') != NULL)
    abort(); /* every failure must give a one-line reason */
  cm_event_clear(&ev);
  if (size > 0 && val[0] == 0)
    wire_to_json(val, size);
  free(key);
  free(val);
  return 0;
}
