/*
 * test_txsnap.c — transaction snapshots: parsing, widening of 32-bit
 * xids, visibility and the order of snapshots (docs/design.md §2.2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clinicmig/cm_txsnap.h"

#define EPOCH INT64_C(4294967296)

static void test_parse(void **state) {
  static const char *const bad[] = {
      "",      "1:2",   "1:2:x",    "5:3:", "1:9:3,", "1:9:0",
      "1:9:9", "-1:9:", "1:9:3,,4", "a:9:", "1:9:3 ", "1:9: 3",
  };
  cm_txsnap_t s;
  char buf[64];
  size_t i;

  (void)state;
  assert_int_equal(cm_txsnap_parse("100:110:107,103", &s), 0);
  assert_int_equal(s.xmin, 100);
  assert_int_equal(s.xmax, 110);
  assert_int_equal(s.n_xip, 2);
  assert_int_equal(s.xip[0], 103);
  assert_string_equal(cm_txsnap_format(&s, buf, sizeof(buf)),
                      "100:110:103,107");
  cm_txsnap_clear(&s);
  assert_int_equal(cm_txsnap_parse("7:7:", &s), 0);
  assert_int_equal(s.n_xip, 0);
  cm_txsnap_clear(&s);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (cm_txsnap_parse(bad[i], &s) != -1) {
      print_error("accepted \"%s\"\n", bad[i]);
      fail();
    }
    assert_null(s.xip);
  }
  assert_int_equal(cm_txsnap_from_parts(100, 110, "{103,107}", &s), 0);
  assert_int_equal(s.n_xip, 2);
  cm_txsnap_clear(&s);
  assert_int_equal(cm_txsnap_from_parts(100, 110, "{}", &s), 0);
  assert_int_equal(cm_txsnap_from_parts(100, 110, "{111}", &s), -1);
  assert_int_equal(cm_txsnap_from_parts(100, 110, "103", &s), -1);
}

static void test_widen(void **state) {
  (void)state;
  assert_true(cm_xid_widen(400, EPOCH + 510) == EPOCH + 400);
  assert_true(cm_xid_widen(1001, EPOCH + 510) == EPOCH + 1001);
  /* just before the wrap, seen from just after it */
  assert_true(cm_xid_widen(4294967290, EPOCH + 10) == 4294967290);
  /* just after the wrap, seen from just before it */
  assert_true(cm_xid_widen(5, 4294967290) == EPOCH + 5);
  assert_true(cm_xid_widen(700, 800) == 700);
  /* already 64-bit: kept */
  assert_true(cm_xid_widen(EPOCH * 3 + 1, 5) == EPOCH * 3 + 1);
}

static void test_visible(void **state) {
  cm_txsnap_t s;

  (void)state;
  assert_int_equal(cm_txsnap_parse("100:110:103,107", &s), 0);
  assert_int_equal(cm_txsnap_visible(&s, 99), 1);  /* before xmin */
  assert_int_equal(cm_txsnap_visible(&s, 100), 1); /* xmin itself ended */
  assert_int_equal(cm_txsnap_visible(&s, 103), 0); /* in progress */
  assert_int_equal(cm_txsnap_visible(&s, 105), 1); /* ended in between */
  assert_int_equal(cm_txsnap_visible(&s, 107), 0);
  assert_int_equal(cm_txsnap_visible(&s, 110), 0); /* xmax and after */
  assert_int_equal(cm_txsnap_visible(&s, 4000), 0);
  cm_txsnap_clear(&s);
  /* nothing in progress: between xmin and xmax everything ended */
  assert_int_equal(cm_txsnap_parse("100:110:", &s), 0);
  assert_int_equal(cm_txsnap_visible(&s, 105), 1);
  assert_int_equal(cm_txsnap_visible(&s, 110), 0);
  cm_txsnap_clear(&s);
  /* epoch 1: a 32-bit xid is read in the snapshot's epoch */
  assert_int_equal(cm_txsnap_parse("4294967796:4294967806:4294967801", &s), 0);
  assert_int_equal(cm_txsnap_visible(&s, 400), 1);
  assert_int_equal(cm_txsnap_visible(&s, 505), 0);
  assert_int_equal(cm_txsnap_visible(&s, 1001), 0);
  assert_int_equal(cm_txsnap_visible(&s, 4294967000), 1); /* epoch 0 */
  cm_txsnap_clear(&s);
}

static void test_cmp(void **state) {
  cm_txsnap_t a, b, c, d;

  (void)state;
  assert_int_equal(cm_txsnap_parse("100:110:103,107", &a), 0);
  assert_int_equal(cm_txsnap_parse("100:110:107", &b), 0);
  assert_int_equal(cm_txsnap_parse("104:110:107", &c), 0);
  assert_int_equal(cm_txsnap_parse("100:111:", &d), 0);
  assert_true(cm_txsnap_cmp(&b, &a) > 0); /* 103 ended since */
  assert_true(cm_txsnap_cmp(&a, &b) < 0);
  assert_true(cm_txsnap_cmp(&c, &b) > 0);
  assert_true(cm_txsnap_cmp(&d, &c) > 0);
  assert_int_equal(cm_txsnap_cmp(&a, &a), 0);
  cm_txsnap_clear(&a);
  cm_txsnap_clear(&b);
  cm_txsnap_clear(&c);
  cm_txsnap_clear(&d);
}

static void test_xip_array(void **state) {
  cm_txsnap_t s;
  char *t;

  (void)state;
  assert_int_equal(cm_txsnap_parse("100:110:107,103", &s), 0);
  t = cm_txsnap_xip_array(&s);
  assert_string_equal(t, "{103,107}");
  free(t);
  cm_txsnap_clear(&s);
  assert_int_equal(cm_txsnap_parse("100:110:", &s), 0);
  t = cm_txsnap_xip_array(&s);
  assert_string_equal(t, "{}");
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),     cmocka_unit_test(test_widen),
      cmocka_unit_test(test_visible),   cmocka_unit_test(test_cmp),
      cmocka_unit_test(test_xip_array),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
