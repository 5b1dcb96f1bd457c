/*
 * sql.c — the statements of tools/reconcile/sql/NAME.sql, by name.
 *
 * NOTES
 * The build embeds the .sql files as they are (embed-sql.cmake), so that
 * every statement can be read, pasted into psql and profiled on its own
 * (docs/reconciliation.md). A statement is a section of a file: it
 * starts after a line "-- name: NAME" and ends before the next such line
 * or at the end of the file; its trailing blank lines and semicolon are
 * dropped, so that a source can be set into a subquery. Placeholders
 * @name@ (the schemas, a source, a table) are replaced as the statement
 * is taken; one left over is a bug, reported rather than sent.
 */
#include "reconcile.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_err.h"

extern const char *const rc_sql_files[][2];

static const char name_tag[] = "-- name: ";

/* Drops what follows the statement: blank lines, comment lines (those
 * introducing the next section) and the semicolon. */
static size_t trim_tail(const char *s, size_t len) {
  size_t line;

  for (;;) {
    while (len > 0 && (isspace((unsigned char)s[len - 1]) || s[len - 1] == ';'))
      len--;
    line = len;
    while (line > 0 && s[line - 1] != '\n')
      line--;
    if (len == 0 || strncmp(s + line, "--", 2) != 0)
      return len;
    len = line;
  }
}

/* The section @name in @text: *start and *len; @returns 0 or -1. */
static int find_section(const char *text, const char *name, const char **start,
                        size_t *len) {
  size_t nlen = strlen(name);
  const char *p = text, *body, *next;

  for (;;) {
    p = strstr(p, name_tag);
    if (!p)
      return -1;
    p += sizeof(name_tag) - 1;
    if (strncmp(p, name, nlen) == 0 && (p[nlen] == '\n' || p[nlen] == '\r'))
      break;
  }
  body = p + nlen + 1;
  next = strstr(body, name_tag);
  *start = body;
  *len = trim_tail(body, next ? (size_t)(next - body) : strlen(body));
  return 0;
}

static const rc_subst_t *find_subst(const char *p, size_t n,
                                    const rc_subst_t *s, int cnt) {
  int i;

  for (i = 0; i < cnt; i++)
    if (strlen(s[i].name) == n && strncmp(s[i].name, p, n) == 0)
      return &s[i];
  return NULL;
}

/* Length of a placeholder's name at @p (after its opening @), or 0. */
static size_t placeholder(const char *p, const char *end) {
  const char *q = p;

  while (q < end && (islower((unsigned char)*q) || isdigit((unsigned char)*q) ||
                     *q == '_'))
    q++;
  return q > p && q < end && *q == '@' ? (size_t)(q - p) : 0;
}

/* Copies @p len bytes of @p text with the placeholders replaced. */
static char *expand(const char *text, size_t len, const rc_subst_t *subst,
                    int cnt, char *errstr, size_t size) {
  cm_text_t b;
  const char *p = text, *end = text + len, *run = text;
  const rc_subst_t *s;
  size_t n;

  cm_text_init(&b, (size_t)1 << 24);
  for (; p < end; p++) {
    if (*p != '@' || (n = placeholder(p + 1, end)) == 0)
      continue;
    s = find_subst(p + 1, n, subst, cnt);
    if (!s) {
      snprintf(errstr, size, "statement placeholder @%.*s@ has no value",
               (int)n, p + 1);
      cm_text_free(&b);
      return NULL;
    }
    cm_text_add(&b, run, (size_t)(p - run));
    cm_text_str(&b, s->value);
    p += n + 1;
    run = p + 1;
  }
  cm_text_add(&b, run, (size_t)(end - run));
  if (b.failed || !b.p) {
    snprintf(errstr, size, "out of memory");
    cm_text_free(&b);
    return NULL;
  }
  return b.p; /* owned by the caller now */
}

char *rc_sql(const char *name, const rc_subst_t *subst, int subst_cnt,
             char *errstr, size_t errstr_size) {
  const char *start;
  size_t len;
  int i;

  for (i = 0; rc_sql_files[i][0]; i++)
    if (find_section(rc_sql_files[i][1], name, &start, &len) == 0)
      return expand(start, len, subst, subst_cnt, errstr, errstr_size);
  snprintf(errstr, errstr_size, "no statement named %s", name);
  return NULL;
}
