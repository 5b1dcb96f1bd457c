/**
 * @file cm_err.h
 * @brief Error codes shared by every part of clinicmig.
 *
 * Internal calls return 0 on success or a negative cm_err_t. Errors are
 * sorted by what the caller should do about them: expected outcomes (bad
 * input that belongs on the dead-letter topic), retryable ones (a lost
 * connection, a serialization failure) and fatal ones (bad configuration).
 * Library code never calls exit().
 */
#ifndef CM_ERR_H
#define CM_ERR_H

#include <stddef.h>

typedef enum cm_err_e {
  CM_OK = 0,
  CM_ERR_BAD_INPUT = -1, /**< input the mapping cannot use: dead-letter it */
  CM_ERR_NOMEM = -2,     /**< out of memory */
  CM_ERR_RETRY = -3,     /**< transient: connection lost, serialization */
  CM_ERR_FATAL = -4,     /**< cannot go on: schema mismatch, bug */
  CM_ERR_CONFIG = -5,    /**< bad configuration value */
  CM_ERR_TOO_LARGE = -6, /**< input over a configured size limit */
} cm_err_t;

/**
 * @brief A short, static, human-readable text for an error code.
 */
const char *cm_strerror(int err);

/**
 * @brief Writes a one-line reason into @p errstr (if it has room) and
 *        returns @p err, for `return cm_fail(errstr, n, CM_ERR_..., ...)`.
 */
__attribute__((format(printf, 4, 5))) int
cm_fail(char *errstr, size_t errstr_size, int err, const char *fmt, ...);

#endif
