/**
 * @file cm_log.h
 * @brief Line-oriented logging to stderr.
 *
 * One line per event of interest: `<iso time> <level> <component>: <text>`.
 * Callers pass ids and keyed hashes only: a log line never carries a name,
 * phone, email or birth date.
 */
#ifndef CM_LOG_H
#define CM_LOG_H

typedef enum cm_log_level_e {
  CM_LOG_ERROR = 0,
  CM_LOG_WARN = 1,
  CM_LOG_INFO = 2,
  CM_LOG_DEBUG = 3,
} cm_log_level_t;

/** @brief Sets the most verbose level that is printed (default INFO). */
void cm_log_set_level(cm_log_level_t level);

/** @brief Parses "error", "warn", "info" or "debug"; returns -1 if unknown. */
int cm_log_level_parse(const char *s);

/** @brief Sets the component name printed on every line (e.g. "worker-1"). */
void cm_log_set_component(const char *name);

void cm_log(cm_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define cm_error(...) cm_log(CM_LOG_ERROR, __VA_ARGS__)
#define cm_warn(...) cm_log(CM_LOG_WARN, __VA_ARGS__)
#define cm_info(...) cm_log(CM_LOG_INFO, __VA_ARGS__)
#define cm_debug(...) cm_log(CM_LOG_DEBUG, __VA_ARGS__)

#endif
