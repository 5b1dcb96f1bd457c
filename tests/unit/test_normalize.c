/*
 * test_normalize.c — table-driven tests of the email and phone keys.
 *
 * NOTES
 * cm_email_normalize() and cm_phone_normalize() are the only code the
 * worker shares with the convergence oracle (docs/design.md §2.3), so every
 * spelling the legacy data is known to hold gets a row here. Each expected
 * E.164 key was first checked with libphonenumber 8.12.57 (Debian) itself:
 * the tables pin that version's judgement of what is a valid number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "clinicmig/cm_normalize.h"

/* One row: an input, and the key expected from it (NULL: no key). */
typedef struct {
  const char *in;
  const char *want;
} norm_case_t;

/* One row of the phone tables, with the region to parse against. */
typedef struct {
  const char *in;
  const char *region;
  const char *want;
} phone_case_t;

/* Prints the failing row, then fails the test. */
static void check_key(const char *what, size_t row, const char *in,
                      const char *want, int got, const char *out) {
  int ok;

  if (want == NULL)
    ok = got == 0 && out[0] == '\0';
  else
    ok = got == 1 && strcmp(out, want) == 0;
  if (ok)
    return;
  print_error("%s row %zu: in [%s]: got %d [%s], want %s%s%s\n", what, row,
              in != NULL ? in : "(null)", got, out,
              want != NULL ? "[" : "no key", want != NULL ? want : "",
              want != NULL ? "]" : "");
  fail();
}

static void run_phone_table(const char *what, const phone_case_t *cases,
                            size_t n) {
  char out[64];
  size_t i;
  int got;

  for (i = 0; i < n; i++) {
    memset(out, 'X', sizeof(out));
    got = cm_phone_normalize(cases[i].in, cases[i].region, out, sizeof(out));
    check_key(what, i, cases[i].in, cases[i].want, got, out);
  }
}

static void run_email_table(const char *what, const norm_case_t *cases,
                            size_t n) {
  char out[64];
  size_t i;
  int got;

  for (i = 0; i < n; i++) {
    memset(out, 'X', sizeof(out));
    got = cm_email_normalize(cases[i].in, out, sizeof(out));
    check_key(what, i, cases[i].in, cases[i].want, got, out);
  }
}

#define N_ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- phone ---- */

static void test_phone_ru_mobile(void **state) {
  static const phone_case_t cases[] = {
      {"8 (912) 345-67-89", "RU", "+79123456789"},
      {"+7 912 345 67 89", "RU", "+79123456789"},
      {"89123456789", "RU", "+79123456789"},
      {"+7(912)345-67-89", "RU", "+79123456789"},
      {"8-912-345-67-89", "RU", "+79123456789"},
      {"7 912 3456789", "RU", "+79123456789"},
      {"+7 912 345-67-89 ", "RU", "+79123456789"},
      {"  +7 (912) 345 67 89  ", "RU", "+79123456789"},
      {"\t8 912 345 67 89\n", "RU", "+79123456789"},
      {"9123456789", "RU", "+79123456789"},
      {"+79123456789", "RU", "+79123456789"},
      {"tel:+7-912-345-67-89", "RU", "+79123456789"},
      /* full-width digits, as pasted from some forms */
      {"\xEF\xBC\x98\xEF\xBC\x99\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93"
       "\xEF\xBC\x94\xEF\xBC\x95\xEF\xBC\x96\xEF\xBC\x97\xEF\xBC\x98"
       "\xEF\xBC\x99",
       "RU", "+79123456789"},
      /* an international number stays itself whatever the region */
      {"+7 912 345 67 89", "US", "+79123456789"},
  };
  (void)state;
  run_phone_table("ru mobile", cases, N_ROWS(cases));
}

static void test_phone_ru_landline(void **state) {
  static const phone_case_t cases[] = {
      {"8 (495) 123-45-67", "RU", "+74951234567"},
      {"+7 495 123 45 67", "RU", "+74951234567"},
      {"84951234567", "RU", "+74951234567"},
      {"+7 (495) 123-45-67", "RU", "+74951234567"},
      {"8 800 555 35 35", "RU", "+78005553535"},
  };
  (void)state;
  run_phone_table("ru landline", cases, N_ROWS(cases));
}

static void test_phone_foreign(void **state) {
  static const phone_case_t cases[] = {
      {"+1 202 456 1111", "RU", "+12024561111"},
      {"+1 (202) 456-1111", "RU", "+12024561111"},
      {"+44 20 7946 0958", "RU", "+442079460958"},
      {"+44 7911 123456", "RU", "+447911123456"},
      {"+49 30 901820", "RU", "+4930901820"},
      {"+49 151 23456789", "RU", "+4915123456789"},
      /* Russia's long-distance international prefix 8~10 */
      {"810 1 202 456 1111", "RU", "+12024561111"},
      {"8 10 49 30 901820", "RU", "+4930901820"},
  };
  (void)state;
  run_phone_table("foreign", cases, N_ROWS(cases));
}

static void test_phone_region(void **state) {
  static const phone_case_t cases[] = {
      {"(202) 456-1111", "US", "+12024561111"},
      {"202-456-1111", "US", "+12024561111"},
      {"1 202 456 1111", "US", "+12024561111"},
      {"011 7 912 345 67 89", "US", "+79123456789"},
      {"020 7946 0958", "GB", "+442079460958"},
      {"07911 123456", "GB", "+447911123456"},
      {"030 901820", "DE", "+4930901820"},
      /* the same spellings mean other things, or nothing, elsewhere */
      {"(202) 456-1111", "RU", NULL},
      {"8 (912) 345-67-89", "US", NULL},
      /* an unknown region: only international spellings parse */
      {"8 (912) 345-67-89", "ZZ", NULL},
      {"+7 912 345 67 89", "ZZ", "+79123456789"},
      {"8 (912) 345-67-89", "", NULL},
  };
  (void)state;
  run_phone_table("region", cases, N_ROWS(cases));
}

static void test_phone_no_key(void **state) {
  static const phone_case_t cases[] = {
      /* a bare local number: no area code, not a valid number */
      {"345-67-89", "RU", NULL},
      {"456-1111", "US", NULL},
      {"abc", "RU", NULL},
      {"", "RU", NULL},
      {"   ", "RU", NULL},
      {"+", "RU", NULL},
      {"12", "RU", NULL},
      {"+99 123", "RU", NULL},
      /* the right shape, but no such numbering range */
      {"8 (012) 345-67-89", "RU", NULL},
      {"+7 012 345 67 89", "RU", NULL},
      /* a digit short, a digit over */
      {"+7 912 345 67 8", "RU", NULL},
      {"+7 912 345 67 890", "RU", NULL},
      /* two numbers in one field */
      {"+7 912 345 67 89, +7 495 123 45 67", "RU", NULL},
      /* "00" is not Russia's international prefix */
      {"00 49 30 901820", "RU", NULL},
      /* an extension is dropped by E.164, so it gives no key at all */
      {"8 495 123 45 67 \xD0\xB4\xD0\xBE\xD0\xB1. 101", "RU", NULL},
      {"+7 495 123 45 67 ext. 102", "RU", NULL},
      {"+1 202 456 1111 x5", "US", NULL},
  };
  (void)state;
  run_phone_table("no key", cases, N_ROWS(cases));
}

static void test_phone_long_input(void **state) {
  char in[201];
  char out[64];

  (void)state;
  memset(in, '9', 200);
  in[200] = '\0';
  assert_int_equal(cm_phone_normalize(in, "RU", out, sizeof(out)), 0);
  assert_string_equal(out, "");
  memset(in, 'x', 200);
  assert_int_equal(cm_phone_normalize(in, "RU", out, sizeof(out)), 0);
  memcpy(in, "+7 912 345 67 89", 16); /* a number, then 184 x */
  assert_int_equal(cm_phone_normalize(in, "RU", out, sizeof(out)), 0);
  memset(in, ' ', 200);
  memcpy(in + 184, "+7 912 345 67 89", 16); /* 184 spaces, a number */
  assert_int_equal(cm_phone_normalize(in, "RU", out, sizeof(out)), 1);
  assert_string_equal(out, "+79123456789");
}

static void test_phone_bad_args(void **state) {
  char out[64];

  (void)state;
  assert_int_equal(cm_phone_normalize(NULL, "RU", out, sizeof(out)), 0);
  assert_string_equal(out, "");
  assert_int_equal(
      cm_phone_normalize("+7 912 345 67 89", NULL, out, sizeof(out)), 0);
  assert_int_equal(cm_phone_normalize("+7 912 345 67 89", "RU", NULL, 64), 0);
  out[0] = 'X';
  assert_int_equal(cm_phone_normalize("+7 912 345 67 89", "RU", out, 0), 0);
  assert_int_equal(out[0], 'X');
}

static void test_phone_out_size(void **state) {
  char out[13];

  (void)state;
  /* "+79123456789" is 12 characters: 13 bytes fit, 12 do not */
  assert_int_equal(cm_phone_normalize("89123456789", "RU", out, 12), 0);
  assert_string_equal(out, "");
  assert_int_equal(cm_phone_normalize("89123456789", "RU", out, 13), 1);
  assert_string_equal(out, "+79123456789");
  assert_int_equal(cm_phone_normalize("89123456789", "RU", out, 1), 0);
  assert_string_equal(out, "");
}

static void test_phone_region_valid(void **state) {
  (void)state;
  assert_int_equal(cm_phone_region_valid("RU"), 1);
  assert_int_equal(cm_phone_region_valid("US"), 1);
  assert_int_equal(cm_phone_region_valid("GB"), 1);
  assert_int_equal(cm_phone_region_valid("DE"), 1);
  assert_int_equal(cm_phone_region_valid("KZ"), 1);
  assert_int_equal(cm_phone_region_valid("ru"), 0);
  assert_int_equal(cm_phone_region_valid("ZZ"), 0);
  assert_int_equal(cm_phone_region_valid("001"), 0);
  assert_int_equal(cm_phone_region_valid("RUS"), 0);
  assert_int_equal(cm_phone_region_valid(""), 0);
  assert_int_equal(cm_phone_region_valid(NULL), 0);
}

#define N_THREADS 4
#define N_ROUNDS 200

/* Normalizes the same numbers over and over; *arg counts wrong answers. */
static void *phone_thread(void *arg) {
  int *misses = arg;
  char out[64];
  int i;
  int got;

  for (i = 0; i < N_ROUNDS; i++) {
    got = cm_phone_normalize("8 (912) 345-67-89", "RU", out, sizeof(out));
    if (got != 1 || strcmp(out, "+79123456789") != 0)
      (*misses)++;
    if (cm_phone_normalize("345-67-89", "RU", out, sizeof(out)) != 0)
      (*misses)++;
    if (cm_phone_region_valid("RU") != 1)
      (*misses)++;
  }
  return NULL;
}

static void test_phone_threads(void **state) {
  pthread_t threads[N_THREADS];
  int misses[N_THREADS] = {0};
  int i;

  (void)state;
  for (i = 0; i < N_THREADS; i++)
    assert_int_equal(
        pthread_create(&threads[i], NULL, phone_thread, &misses[i]), 0);
  for (i = 0; i < N_THREADS; i++)
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  for (i = 0; i < N_THREADS; i++)
    assert_int_equal(misses[i], 0);
}

/* ---- email ---- */

static void test_email_ok(void **state) {
  static const norm_case_t cases[] = {
      {"  Ivan.Petrov@Mail.RU ", "ivan.petrov@mail.ru"},
      {"ivan.petrov@mail.ru", "ivan.petrov@mail.ru"},
      {"\tIvan@Mail.Ru\n", "ivan@mail.ru"},
      {"\r\n a@b.c \t\v\f", "a@b.c"},
      {"A@B", "a@b"},
      {"x@y", "x@y"},
      {"First+Tag@Example.COM", "first+tag@example.com"},
      /* no-break space, narrow no-break space, BOM, ideographic space */
      {"\xC2\xA0"
       "a@b.c"
       "\xC2\xA0",
       "a@b.c"},
      {"a@b.c\xE2\x80\xAF", "a@b.c"},
      {"\xEF\xBB\xBF"
       "Doc@Clinic.ru",
       "doc@clinic.ru"},
      {"\xE3\x80\x80"
       "a@b.c"
       "\xE3\x80\x80 ",
       "a@b.c"},
      {"\xE2\x80\x8B"
       "a@b.c"
       "\xE2\x80\x8B",
       "a@b.c"},
      /* only ASCII is lower-cased; other bytes are kept */
      {"\xD0\x98\xD0\xB2\xD0\xB0\xD0\xBD@Mail.RU",
       "\xD0\x98\xD0\xB2\xD0\xB0\xD0\xBD@mail.ru"},
      {"caf\xC3\xA9@x.fr", "caf\xC3\xA9@x.fr"},
  };
  (void)state;
  run_email_table("email ok", cases, N_ROWS(cases));
}

static void test_email_no_key(void **state) {
  static const norm_case_t cases[] = {
      {NULL, NULL},
      {"", NULL},
      {"   ", NULL},
      {"\t\n", NULL},
      {"\xC2\xA0", NULL},
      {"ivan.petrov.mail.ru", NULL},
      {"a@@b", NULL},
      {"a@b@c", NULL},
      {"@x", NULL},
      {"x@", NULL},
      {"@", NULL},
      {" @x ", NULL},
      {"a b@c.d", NULL},
      {"a@c .d", NULL},
      {"a\tb@c.d", NULL},
      {"a\xC2\xA0"
       "b@c.d",
       NULL},
      {"a@b\xE2\x80\x83"
       "c",
       NULL},
      {"a\x01@b", NULL},
      {"a@b\x7F", NULL},
      /* a truncated UTF-8 sequence is not white space: kept */
      {"a@b\xC2", "a@b\xC2"},
  };
  (void)state;
  run_email_table("email no key", cases, N_ROWS(cases));
}

static void test_email_out_size(void **state) {
  char out[6];
  char big[300];
  char big_out[256];

  (void)state;
  /* "a@b.c" is 5 characters: 6 bytes fit, 5 do not */
  assert_int_equal(cm_email_normalize("a@b.c", out, 5), 0);
  assert_string_equal(out, "");
  assert_int_equal(cm_email_normalize("a@b.c", out, 6), 1);
  assert_string_equal(out, "a@b.c");
  assert_int_equal(cm_email_normalize("a@b.cd", out, 6), 0);
  assert_string_equal(out, "");
  /* white space trimmed before the size is judged */
  assert_int_equal(cm_email_normalize("   A@B.C   ", out, 6), 1);
  assert_string_equal(out, "a@b.c");
  assert_int_equal(cm_email_normalize("a@b.c", out, 1), 0);
  assert_string_equal(out, "");
  out[0] = 'X';
  assert_int_equal(cm_email_normalize("a@b.c", out, 0), 0);
  assert_int_equal(out[0], 'X');
  assert_int_equal(cm_email_normalize("a@b.c", NULL, 6), 0);

  /* 299 characters into 256 bytes: no key, and no overrun */
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  big[10] = '@';
  assert_int_equal(cm_email_normalize(big, big_out, sizeof(big_out)), 0);
  assert_string_equal(big_out, "");
  big[255] = '\0'; /* 255 characters fit exactly */
  assert_int_equal(cm_email_normalize(big, big_out, sizeof(big_out)), 1);
  assert_int_equal(strlen(big_out), 255);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_phone_ru_mobile),
      cmocka_unit_test(test_phone_ru_landline),
      cmocka_unit_test(test_phone_foreign),
      cmocka_unit_test(test_phone_region),
      cmocka_unit_test(test_phone_no_key),
      cmocka_unit_test(test_phone_long_input),
      cmocka_unit_test(test_phone_bad_args),
      cmocka_unit_test(test_phone_out_size),
      cmocka_unit_test(test_phone_region_valid),
      cmocka_unit_test(test_phone_threads),
      cmocka_unit_test(test_email_ok),
      cmocka_unit_test(test_email_no_key),
      cmocka_unit_test(test_email_out_size),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
