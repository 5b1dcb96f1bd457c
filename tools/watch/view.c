/*
 * view.c — the watch's views: the live table, the final report (like the
 * first migration's: entity, migrated, errors, grouped into) and their
 * JSON lines. Ids and counts only (docs/observability.md).
 */
#include "watch.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

static const char *const labels[W_ENTITIES] = {"Doctors", "Patients",
                                               "Appointments"};
static const char *const global_names[W_ENTITIES] = {"global doctors",
                                                     "global patients", NULL};

static void fmt_time(int64_t ms, char *buf, size_t size) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static int64_t lag_of(const w_state_t *s, int e, int64_t now_ms) {
  int64_t lag = 0;
  int i;

  for (i = 0; i < s->n_workers; i++)
    if (w_worker_alive(&s->workers[i], now_ms))
      lag += s->workers[i].lag[e];
  return lag;
}

static void totals(const w_state_t *s, int e, w_counts_t *c) {
  int i;

  memset(c, 0, sizeof(*c));
  for (i = 0; i < s->n_workers; i++) {
    c->consumed += s->workers[i].ent[e].consumed;
    c->applied += s->workers[i].ent[e].applied;
    c->stale += s->workers[i].ent[e].stale;
    c->dead += s->workers[i].ent[e].dead;
  }
}

static double rate(const w_state_t *s, int64_t now_ms) {
  double r = 0;
  int i;

  for (i = 0; i < s->n_workers; i++)
    if (w_worker_alive(&s->workers[i], now_ms))
      r += s->workers[i].rate;
  return r;
}

static void fmt_eta(int64_t lag, double r, char *buf, size_t size) {
  if (lag == 0)
    snprintf(buf, size, "-");
  else if (r <= 0)
    snprintf(buf, size, "?");
  else
    snprintf(buf, size, "%.0fs", (double)lag / r);
}

static void sync_text(const w_entity_t *en, char *buf, size_t size) {
  if (!en->has_verdict)
    snprintf(buf, size, "(no verdict yet)");
  else if (en->in_sync)
    snprintf(buf, size, "yes since %s", en->since);
  else
    snprintf(buf, size, "NO: %s", en->reason);
}

/* One line when some Avro messages could not be read. */
static void undecodable(FILE *out, const w_state_t *s) {
  if (s->undecodable)
    fprintf(out, "undecodable Avro messages: %" PRId64 " (latest: %s)\n",
            s->undecodable, s->undecodable_why);
}

static void live_workers(FILE *out, const w_state_t *s, int64_t now_ms) {
  int i, alive = 0;

  for (i = 0; i < s->n_workers; i++)
    alive += w_worker_alive(&s->workers[i], now_ms);
  fprintf(out, "workers alive: %d", alive);
  for (i = 0; i < s->n_workers; i++)
    if (w_worker_alive(&s->workers[i], now_ms))
      fprintf(out, " %s", s->workers[i].id);
  fprintf(out, "\n");
}

void w_view_live(FILE *out, const w_state_t *s, int64_t now_ms, int tty) {
  char now[32], eta[24], sync[W_LINE + 32];
  int64_t replay = 0;
  w_counts_t c;
  int e, i;

  fmt_time(now_ms, now, sizeof(now));
  fprintf(out, "%sclinicmig-watch  %s  (%" PRId64 " events)\n",
          tty ? "\033[H\033[2J" : "\n", now, s->events);
  live_workers(out, s, now_ms);
  fprintf(out, "%-12s %9s %9s %7s %8s %6s  %s\n", "entity", "migrated", "stale",
          "errors", "lag", "ETA", "in sync");
  for (e = 0; e < W_ENTITIES; e++) {
    totals(s, e, &c);
    fmt_eta(lag_of(s, e, now_ms), rate(s, now_ms), eta, sizeof(eta));
    sync_text(&s->ent[e], sync, sizeof(sync));
    fprintf(out,
            "%-12s %9" PRId64 " %9" PRId64 " %7" PRId64 " %8" PRId64
            " %6s  %s\n",
            w_entity_names[e], s->ent[e].migrated, c.stale, s->ent[e].dead,
            lag_of(s, e, now_ms), eta, sync);
  }
  for (i = 0; i < s->n_workers; i++)
    if (w_worker_alive(&s->workers[i], now_ms))
      replay += s->workers[i].lag_replay;
  fprintf(out, "replay lag: %" PRId64 "\n", replay);
  undecodable(out, s);
  fprintf(out, "recent:\n");
  for (i = 0; i < s->n_recent; i++)
    fprintf(out, "  %s\n", s->recent[i]);
  fflush(out);
}

static void grouped(const w_state_t *s, int e, char *buf, size_t size) {
  const w_entity_t *en = &s->ent[e];

  if (global_names[e] && en->global >= 0)
    snprintf(buf, size, "%" PRId64 " %s", en->global, global_names[e]);
  else if (!global_names[e] && en->unresolved >= 0)
    snprintf(buf, size, "%" PRId64 " with both links resolved",
             en->migrated - en->unresolved);
  else
    snprintf(buf, size, "-");
}

void w_view_report(FILE *out, const w_state_t *s) {
  char g[W_LINE], sync[W_LINE + 32];
  int64_t total = 0, errors = 0;
  int e;

  fprintf(out, "%-14s| %8s | %6s | %s\n", "type", "migrated", "errors",
          "grouped into");
  fprintf(
      out,
      "--------------+----------+--------+------------------------------\n");
  for (e = 0; e < W_ENTITIES; e++) {
    grouped(s, e, g, sizeof(g));
    fprintf(out, "%-14s| %8" PRId64 " | %6" PRId64 " | %s\n", labels[e],
            s->ent[e].migrated, s->ent[e].dead, g);
    total += s->ent[e].migrated;
    errors += s->ent[e].dead;
  }
  fprintf(out, "Total: %" PRId64 " records, %" PRId64 " errors\n", total,
          errors);
  for (e = 0; e < W_ENTITIES; e++) {
    sync_text(&s->ent[e], sync, sizeof(sync));
    fprintf(out, "in sync: %-12s %s\n", w_entity_names[e], sync);
  }
  undecodable(out, s);
  fflush(out);
}

static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(out, "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      fprintf(out, "\\u%04x", *s);
    else
      fputc(*s, out);
  }
  fputc('"', out);
}

static void json_entity(FILE *out, const w_state_t *s, int e, int64_t now_ms,
                        const char *type) {
  const w_entity_t *en = &s->ent[e];
  w_counts_t c;

  totals(s, e, &c);
  fprintf(out,
          "{\"type\":\"%s\",\"entity\":\"%s\",\"migrated\":%" PRId64
          ",\"errors\":%" PRId64 ",\"stale\":%" PRId64,
          type, w_entity_names[e], en->migrated, en->dead, c.stale);
  if (en->global >= 0)
    fprintf(out, ",\"global\":%" PRId64, en->global);
  if (en->unresolved >= 0)
    fprintf(out, ",\"unresolved\":%" PRId64, en->unresolved);
  if (now_ms)
    fprintf(out, ",\"lag\":%" PRId64, lag_of(s, e, now_ms));
  fprintf(out, ",\"in_sync\":%s,\"since\":",
          en->has_verdict && en->in_sync ? "true" : "false");
  json_str(out, en->since);
  fprintf(out, ",\"reason\":");
  json_str(out, en->reason);
  fprintf(out, "}\n");
}

void w_view_json_state(FILE *out, const w_state_t *s, int64_t now_ms) {
  int e;

  for (e = 0; e < W_ENTITIES; e++)
    json_entity(out, s, e, now_ms, "watch");
  if (s->undecodable) {
    fprintf(out,
            "{\"type\":\"watch_total\",\"undecodable\":%" PRId64 ",\"reason\":",
            s->undecodable);
    json_str(out, s->undecodable_why);
    fprintf(out, "}\n");
  }
  fflush(out);
}

void w_view_json_report(FILE *out, const w_state_t *s) {
  int64_t total = 0, errors = 0;
  int e;

  for (e = 0; e < W_ENTITIES; e++) {
    json_entity(out, s, e, 0, "report");
    total += s->ent[e].migrated;
    errors += s->ent[e].dead;
  }
  fprintf(out,
          "{\"type\":\"report_total\",\"records\":%" PRId64
          ",\"errors\":%" PRId64 ",\"in_sync\":%s,\"undecodable\":%" PRId64
          "}\n",
          total, errors, w_all_in_sync(s) ? "true" : "false", s->undecodable);
  fflush(out);
}
