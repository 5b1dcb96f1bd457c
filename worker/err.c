/*
 * err.c — text for clinicmig's error codes.
 */
#include "clinicmig/cm_err.h"

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
