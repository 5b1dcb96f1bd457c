/*
 * clinicmig-oracle.c — checks the v2 tables against f(legacy tables).
 *
 * NOTES
 * The convergence oracle of docs/design.md §2.1: once the workers have drained
 * every topic, the v2 tables must equal f(final legacy state). This tool
 * computes f directly from the legacy tables, by a route of its own
 * (mapping.c), and compares it row by row with what the workers built.
 * Operators run it against their own databases before switching the
 * application over; the test suite runs it after every convergence test.
 *
 * It only reads: its sessions are read-only transactions. Its report
 * names tables, ids and columns, never a value, unless --show-values.
 * Exit status: 0 no difference, 1 differences, 2 could not check.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clinicmig/cm_normalize.h"
#include "oracle.h"

#define EXIT_DIFFERENT 1
#define EXIT_TROUBLE 2

static const char usage[] =
    "Usage: clinicmig-oracle --legacy CONNINFO [options]\n"
    "\n"
    "Computes the mapping f (docs/design.md section 2.3) directly from the\n"
    "legacy tables \"User\", \"Patient\" and \"Appointment\" and compares it\n"
    "row by row with the v2 tables global_doctor, clinic_doctor,\n"
    "global_patient, clinic_patient and appointment.\n"
    "\n"
    "Options:\n"
    "  --legacy CONNINFO        libpq connection string or URI of the legacy\n"
    "                           database (required)\n"
    "  --target CONNINFO        database holding the v2 tables (default: the\n"
    "                           legacy database)\n"
    "  --legacy-schema NAME     schema of the legacy tables (default public)\n"
    "  --domain-schema NAME     schema of the v2 tables (default v2)\n"
    "  --phone-region CODE      default region of phone numbers, as the\n"
    "                           workers' phone.region (default RU)\n"
    "  --patients-match MODE    loose or strict, as the workers'\n"
    "                           patients.match (default loose)\n"
    "  --max-diffs N            differences listed per table (default 20;\n"
    "                           all are counted)\n"
    "  --show-values            print the differing values; they are\n"
    "                           personal data: keep them out of logs\n"
    "  --json                   print one JSON object instead of text\n"
    "  --help                   print this help\n"
    "\n"
    "Output: one line per table, \"TABLE: N expected, M found, K missing,\n"
    "L extra, D differing\", then a line per difference naming the id and\n"
    "the columns, then \"oracle: no difference\" or \"oracle: N\n"
    "differences\".\n"
    "\n"
    "Exit status: 0 no difference, 1 differences, 2 bad usage or the\n"
    "databases could not be read (one line on stderr says why).\n";

typedef struct opts_s {
  const char *legacy, *target;
  const char *legacy_schema, *domain_schema;
  const char *region, *match;
  long max_diffs;
  int show_values, json, help;
} opts_t;

enum {
  O_LEGACY = 256,
  O_TARGET,
  O_LSCHEMA,
  O_DSCHEMA,
  O_REGION,
  O_MATCH,
  O_MAXDIFFS,
  O_SHOW,
  O_JSON,
  O_HELP
};

static const struct option long_opts[] = {
    {"legacy", required_argument, NULL, O_LEGACY},
    {"target", required_argument, NULL, O_TARGET},
    {"legacy-schema", required_argument, NULL, O_LSCHEMA},
    {"domain-schema", required_argument, NULL, O_DSCHEMA},
    {"phone-region", required_argument, NULL, O_REGION},
    {"patients-match", required_argument, NULL, O_MATCH},
    {"max-diffs", required_argument, NULL, O_MAXDIFFS},
    {"show-values", no_argument, NULL, O_SHOW},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* One line on stderr: what went wrong. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...) {
  va_list ap;

  fputs("clinicmig-oracle: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static int parse_max_diffs(const char *s, long *out) {
  char *end;
  long v;

  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
    return -1;
  *out = v;
  return 0;
}

/* Sets one option; @returns 0, or -1 after saying what is wrong. */
static int set_opt(opts_t *o, int c, const char *arg) {
  switch (c) {
  case O_LEGACY: o->legacy = arg; return 0;
  case O_TARGET: o->target = arg; return 0;
  case O_LSCHEMA: o->legacy_schema = arg; return 0;
  case O_DSCHEMA: o->domain_schema = arg; return 0;
  case O_REGION: o->region = arg; return 0;
  case O_MATCH: o->match = arg; return 0;
  case O_SHOW: o->show_values = 1; return 0;
  case O_JSON: o->json = 1; return 0;
  case O_HELP: o->help = 1; return 0;
  case O_MAXDIFFS:
    if (parse_max_diffs(arg, &o->max_diffs) == 0)
      return 0;
    fail("--max-diffs wants a whole number from 0, not \"%s\"", arg);
    return -1;
  default: fail("unknown option (see --help)"); return -1;
  }
}

/* Says which option getopt refused: a value missing, or unknown. */
static void bad_option(int c, char **argv) {
  const struct option *lo;

  if (c == ':') {
    for (lo = long_opts; lo->name; lo++)
      if (lo->val == optopt) {
        fail("--%s needs a value (see --help)", lo->name);
        return;
      }
  }
  if (optopt > 0 && optopt < 256)
    fail("unknown option -%c (see --help)", optopt);
  else
    fail("unknown option %s (see --help)", argv[optind - 1]);
}

/* Checks what the options say together; @returns 0 or -1. */
static int check_opts(const opts_t *o) {
  if (!o->legacy) {
    fail("--legacy is required (see --help)");
    return -1;
  }
  if (!o->legacy_schema[0] || !o->domain_schema[0]) {
    fail("a schema name cannot be empty");
    return -1;
  }
  if (strcmp(o->match, "loose") != 0 && strcmp(o->match, "strict") != 0) {
    fail("--patients-match is loose or strict, not \"%s\"", o->match);
    return -1;
  }
  if (!cm_phone_region_valid(o->region)) {
    fail("unknown phone region \"%s\"", o->region);
    return -1;
  }
  return 0;
}

static int parse_args(int argc, char **argv, opts_t *o) {
  int c;

  memset(o, 0, sizeof(*o));
  o->legacy_schema = "public";
  o->domain_schema = "v2";
  o->region = "RU";
  o->match = "loose";
  o->max_diffs = 20;
  opterr = 0;
  for (;;) {
    c = getopt_long(argc, argv, ":", long_opts, NULL);
    if (c == -1)
      break;
    if (c == ':' || c == '?') {
      bad_option(c, argv);
      return -1;
    }
    if (set_opt(o, c, optarg) != 0)
      return -1;
  }
  if (optind < argc) {
    fail("unexpected argument \"%s\" (see --help)", argv[optind]);
    return -1;
  }
  return o->help ? 0 : check_opts(o);
}

/* Everything one run holds, freed by run_free(). */
typedef struct run_s {
  or_arena_t *arena;
  PGconn *legacy, *target;
  or_rows_t want[OR_N_TABLES], found[OR_N_TABLES];
  or_result_t res[OR_N_TABLES];
} run_t;

static void run_free(run_t *r) {
  int t;

  for (t = 0; t < OR_N_TABLES; t++) {
    or_rows_free(&r->want[t]);
    or_rows_free(&r->found[t]);
    or_result_free(&r->res[t]);
  }
  if (r->target && r->target != r->legacy)
    PQfinish(r->target);
  PQfinish(r->legacy);
  or_arena_destroy(r->arena);
}

/* Reads both sides and computes f; @returns 0 or -1 with errstr set. */
static int load(run_t *r, const opts_t *o, char *errstr, size_t size) {
  or_legacy_t legacy;
  int t;

  r->legacy = or_db_connect(o->legacy, "legacy", errstr, size);
  if (!r->legacy)
    return -1;
  r->target = r->legacy;
  if (o->target && strcmp(o->target, o->legacy) != 0)
    r->target = or_db_connect(o->target, "target", errstr, size);
  if (!r->target ||
      or_db_read_legacy(r->legacy, o->legacy_schema, r->arena, &legacy, errstr,
                        size) != 0 ||
      or_db_read_domain(r->target, o->domain_schema, r->arena, r->found, errstr,
                        size) != 0)
    return -1;
  if (or_map(&legacy, o->region, strcmp(o->match, "strict") == 0, r->arena,
             r->want) != 0) {
    snprintf(errstr, size, "out of memory");
    return -1;
  }
  for (t = 0; t < OR_N_TABLES; t++) {
    or_rows_sort(&r->want[t]);
    or_rows_sort(&r->found[t]);
  }
  return 0;
}

/* Compares, reports; @returns the exit status. */
static int compare_and_report(run_t *r, const opts_t *o) {
  or_settings_t s = {o->legacy_schema, o->domain_schema, o->region, o->match,
                     o->show_values};
  int t;

  for (t = 0; t < OR_N_TABLES; t++) {
    if (or_compare(&or_tables[t], &r->want[t], &r->found[t],
                   (size_t)o->max_diffs, &r->res[t]) != 0) {
      fail("out of memory");
      return EXIT_TROUBLE;
    }
  }
  if (o->json) {
    if (or_report_json(stdout, r->res, &s) != 0) {
      fail("out of memory");
      return EXIT_TROUBLE;
    }
  } else {
    or_report_text(stdout, r->res, &s);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fail("could not write the report: %s", strerror(errno));
    return EXIT_TROUBLE;
  }
  return or_total(r->res, OR_N_TABLES) ? EXIT_DIFFERENT : EXIT_SUCCESS;
}

int main(int argc, char **argv) {
  char errstr[1024];
  run_t run;
  opts_t o;
  int rc;

  if (parse_args(argc, argv, &o) != 0)
    return EXIT_TROUBLE;
  if (o.help) {
    fputs(usage, stdout);
    return EXIT_SUCCESS;
  }
  memset(&run, 0, sizeof(run));
  run.arena = or_arena_new();
  if (!run.arena) {
    fail("out of memory");
    return EXIT_TROUBLE;
  }
  if (load(&run, &o, errstr, sizeof(errstr)) != 0) {
    fail("%s", errstr);
    rc = EXIT_TROUBLE;
  } else {
    rc = compare_and_report(&run, &o);
  }
  run_free(&run);
  return rc;
}
