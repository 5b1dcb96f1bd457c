/**
 * @file cm_text.h
 * @brief Growing text with a hard size limit: the progress event's JSON
 *        and the metrics page.
 *
 * NOTES
 * The limit is set at init. An append past it, or a failed allocation,
 * marks the text failed and appends nothing more, so a caller writes the
 * whole document and checks once (the shape of tools/replay/buf.c).
 */
#ifndef CM_TEXT_H
#define CM_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct cm_text_s {
  char *p; /**< NUL-terminated while not failed; owned */
  size_t len;
  size_t cap;
  size_t max;
  int failed;
} cm_text_t;

/** @brief An empty text that may grow to @p max bytes. */
void cm_text_init(cm_text_t *t, size_t max);

void cm_text_free(cm_text_t *t);

/** @brief Empties @p t, keeping its memory for the next message. */
void cm_text_reset(cm_text_t *t);

/** @brief Appends @p n bytes of @p s. */
void cm_text_add(cm_text_t *t, const char *s, size_t n);

/** @brief Appends a NUL-terminated string. */
void cm_text_str(cm_text_t *t, const char *s);

/** @brief Appends formatted text (vsnprintf's rules). */
void cm_text_printf(cm_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** @brief Appends a 64-bit integer exactly. */
void cm_text_i64(cm_text_t *t, int64_t v);

/** @brief Appends @p s as a quoted JSON string, or null for NULL. */
void cm_text_json(cm_text_t *t, const char *s);

/**
 * @brief Takes the text out of @p t (the caller frees it) and leaves @p t
 *        empty. @returns NULL if the text failed.
 */
char *cm_text_take(cm_text_t *t, size_t *len);

#endif
