/*
 * fuzz_decode.c — libFuzzer entry for the Debezium event decoder.
 *
 * NOTES
 * The input is split at its first NUL or newline into a message key and a
 * message value; without a separator there is no key and the whole input
 * is the value. Key and value are copied to buffers of their exact size,
 * so AddressSanitizer catches a read one byte past either. The decoder's
 * contract (cm_event.h) is that every byte string gives an event or a
 * reason: a crash, a leak, a sanitizer report or an OK without an event is
 * a bug. Decoded events also go through cm_event_to_json and
 * cm_event_disposition, as clinicmig-decode uses them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_event.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  cm_event_t ev;
  size_t sep;
  char *key = NULL, *val;
  size_t key_len = 0;
  int rc;

  for (sep = 0; sep < size && data[sep] != '\0' && data[sep] != '\n'; sep++)
    ;
  if (sep < size) {
    key = copy(data, sep);
    key_len = sep;
    data += sep + 1;
    size -= sep + 1;
  }
  val = copy(data, size);
  rc = cm_event_decode("legacy.public.Patient", key, key_len, val, size, &ev,
                       err, sizeof(err));
  if (rc == CM_OK && ev.op == 0)
    abort(); /* OK must mean an event */
  if (rc == CM_OK)
    use_event(&ev);
  else if (err[0] == '\0' || strchr(err, '\n') != NULL)
    abort(); /* every failure must give a one-line reason */
  cm_event_clear(&ev);
  free(key);
  free(val);
  return 0;
}
