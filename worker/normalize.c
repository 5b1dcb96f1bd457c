/*
 * normalize.c — the email grouping key.
 *
 * NOTES
 * The worker and the convergence oracle both call cm_email_normalize()
 * (docs/design.md §2.3), so it must stay a pure function of its input. It is
 * deliberately strict: a value it rejects gives no key, which at worst
 * misses a merge; a value it wrongly accepts could merge two people.
 * Only ASCII letters are lower-cased; other bytes are kept as they are.
 * White space is ASCII white space plus the common Unicode spaces in UTF-8
 * (no-break, en/em, thin, ideographic, zero-width, BOM), trimmed at both
 * ends and refused inside. The phone key lives in phone.cc.
 */
#include "clinicmig/cm_normalize.h"

#include <string.h>

/*
 * Returns the length in bytes of the white-space character that starts at
 * p, with avail bytes readable there, or 0 if there is none.
 */
static size_t space_len(const unsigned char *p, size_t avail) {
  if (avail == 0)
    return 0;
  switch (p[0]) {
  case ' ':
  case '\t':
  case '\n':
  case '\v':
  case '\f':
  case '\r': return 1;
  case 0xC2: /* U+0085 next line, U+00A0 no-break space */
    if (avail >= 2 && (p[1] == 0x85 || p[1] == 0xA0))
      return 2;
    return 0;
  case 0xE1: /* U+1680 ogham space mark */
    if (avail >= 3 && p[1] == 0x9A && p[2] == 0x80)
      return 3;
    return 0;
  case 0xE2:
    if (avail < 3)
      return 0;
    /* U+2000..U+200D spaces and zero-widths, U+2028/9, U+202F */
    if (p[1] == 0x80 &&
        (p[2] <= 0x8D || p[2] == 0xA8 || p[2] == 0xA9 || p[2] == 0xAF))
      return 3;
    /* U+205F medium mathematical space, U+2060 word joiner */
    if (p[1] == 0x81 && (p[2] == 0x9F || p[2] == 0xA0))
      return 3;
    return 0;
  case 0xE3: /* U+3000 ideographic space */
    if (avail >= 3 && p[1] == 0x80 && p[2] == 0x80)
      return 3;
    return 0;
  case 0xEF: /* U+FEFF byte order mark */
    if (avail >= 3 && p[1] == 0xBB && p[2] == 0xBF)
      return 3;
    return 0;
  default: return 0;
  }
}

/*
 * Returns the length of the white-space character that ends just before
 * s + end, looking no further back than s, or 0 if there is none.
 */
static size_t space_len_before(const unsigned char *s, size_t end) {
  size_t k;

  for (k = 1; k <= 3 && k <= end; k++)
    if (space_len(s + end - k, k) == k)
      return k;
  return 0;
}

/* Returns 1 if the byte is an ASCII control character, else 0. */
static int is_control(unsigned char c) {
  return c < 0x20 || c == 0x7F;
}

/*
 * Checks the trimmed text s[0..len): no white space or control characters
 * inside, exactly one '@', with text on both sides.
 */
static int email_shape_ok(const unsigned char *s, size_t len) {
  size_t i;
  size_t at = 0;
  size_t n_at = 0;

  for (i = 0; i < len; i++) {
    if (is_control(s[i]) || space_len(s + i, len - i) > 0)
      return 0;
    if (s[i] == '@') {
      n_at++;
      at = i;
    }
  }
  return n_at == 1 && at > 0 && at + 1 < len;
}

int cm_email_normalize(const char *in, char *out, size_t out_size) {
  const unsigned char *s;
  size_t begin = 0;
  size_t end;
  size_t k;
  size_t i;

  if (out != NULL && out_size > 0)
    out[0] = '\0';
  if (in == NULL || out == NULL || out_size == 0)
    return 0;
  s = (const unsigned char *)in;
  end = strlen(in);
  for (;;) {
    k = space_len(s + begin, end - begin);
    if (k == 0)
      break;
    begin += k;
  }
  for (;;) {
    k = space_len_before(s + begin, end - begin);
    if (k == 0)
      break;
    end -= k;
  }
  if (!email_shape_ok(s + begin, end - begin))
    return 0;
  if (end - begin >= out_size)
    return 0;
  for (i = begin; i < end; i++) {
    unsigned char c = s[i];

    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c - 'A' + 'a');
    out[i - begin] = (char)c;
  }
  out[end - begin] = '\0';
  return 1;
}
