/*
 * err.c — text for clinicmig's error codes, and the one-line reasons
 * that go with them.
 */
#include "clinicmig/cm_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *cm_strerror(int err) {
  switch (err) {
  case CM_OK: return "success";
  case CM_ERR_BAD_INPUT: return "bad input";
  case CM_ERR_NOMEM: return "out of memory";
  case CM_ERR_RETRY: return "transient failure, retrying";
  case CM_ERR_FATAL: return "fatal error";
  case CM_ERR_CONFIG: return "bad configuration";
  case CM_ERR_TOO_LARGE: return "input too large";
  default: return "unknown error";
  }
}

int cm_fail(char *errstr, size_t errstr_size, int err, const char *fmt, ...) {
  va_list ap;

  if (errstr == NULL || errstr_size == 0)
    return err;
  va_start(ap, fmt);
  vsnprintf(errstr, errstr_size, fmt, ap);
  va_end(ap);
  return err;
}
