/*
 * metrics.c — the /metrics page: Prometheus text format 0.0.4.
 *
 * NOTES
 * The names and labels are the contract of docs/observability.md, shared
 * with clinicmig-reconcile and clinicmig-watch. Counters are cumulative
 * since the process started (a restart resets them, as Prometheus
 * expects); histograms are cumulative too, the window of percentiles is
 * the progress event's, not this page's.
 */
#include "clinicmig/cm_http.h"

#include <inttypes.h>
#include <string.h>

#include "clinicmig/cm_err.h"

static void head(cm_text_t *t, const char *name, const char *type,
                 const char *help) {
  cm_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void label(cm_text_t *t, const char *v) {
  const char *run = v;

  for (; *v; v++) {
    if (*v != '\\' && *v != '"' && *v != '\n')
      continue;
    cm_text_add(t, run, (size_t)(v - run));
    cm_text_str(t, *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : "\\n");
    run = v + 1;
  }
  cm_text_add(t, run, (size_t)(v - run));
}

static void events(cm_text_t *t, const cm_stats_snapshot_t *s) {
  int e, c;

  head(t, "clinicmig_events_total", "counter",
       "Events this worker consumed since it started, by entity and "
       "outcome (consumed counts every event).");
  for (e = 0; e < CM_ENTITY__CNT; e++)
    for (c = 0; c < CM_COUNT__CNT; c++)
      cm_text_printf(t,
                     "clinicmig_events_total{entity=\"%s\",outcome=\"%s\"} "
                     "%" PRId64 "\n",
                     cm_entity_name((cm_entity_t)e),
                     cm_count_name((cm_count_t)c), s->counts[e][c]);
}

static void histogram(cm_text_t *t, const char *name, const char *help,
                      const cm_stats_hist_t *h, const double *le) {
  int64_t cum = 0;
  int i;

  head(t, name, "histogram", help);
  for (i = 0; le[i] >= 0; i++) {
    cum += h->bucket[i];
    cm_text_printf(t, "%s_bucket{le=\"%g\"} %" PRId64 "\n", name, le[i], cum);
  }
  cm_text_printf(t, "%s_bucket{le=\"+Inf\"} %" PRId64 "\n", name, h->count);
  cm_text_printf(t, "%s_sum %.6f\n%s_count %" PRId64 "\n", name, h->sum, name,
                 h->count);
}

static int64_t part_lag(const cm_stats_part_t *p) {
  if (p->high < 0 || p->committed < 0 || p->high <= p->committed)
    return 0;
  return p->high - p->committed;
}

/* One gauge per assigned partition; @p lag: the lag, else the offset. */
static void partitions(cm_text_t *t, const cm_stats_snapshot_t *s, int lag) {
  const char *name =
      lag ? "clinicmig_consumer_lag" : "clinicmig_consumer_committed_offset";
  int i;

  head(t, name, "gauge",
       lag ? "High watermark minus committed offset of each assigned "
             "partition."
           : "Next offset stored by the last committed batch of each "
             "assigned partition.");
  for (i = 0; i < s->n_parts; i++) {
    const cm_stats_part_t *p = &s->parts[i];

    if (!lag && p->committed < 0)
      continue;
    cm_text_printf(t, "%s{topic=\"", name);
    label(t, p->topic);
    cm_text_printf(t, "\",partition=\"%" PRId32 "\"} %" PRId64 "\n",
                   p->partition, lag ? part_lag(p) : p->committed);
  }
}

static void singles(cm_text_t *t, const cm_stats_snapshot_t *s) {
  char why[128];
  int64_t dead = 0;
  int e;

  for (e = 0; e < CM_ENTITY__CNT; e++)
    dead += s->counts[e][CM_COUNT_DEAD_LETTERED];
  head(t, "clinicmig_transaction_retries_total", "counter",
       "Batch transactions rolled back and run again.");
  cm_text_printf(t, "clinicmig_transaction_retries_total %" PRId64 "\n",
                 s->retries);
  head(t, "clinicmig_dead_letters_total", "counter",
       "Events sent to the dead-letter topic by committed batches.");
  cm_text_printf(t, "clinicmig_dead_letters_total %" PRId64 "\n", dead);
  head(t, "clinicmig_up", "gauge", "1 while the worker runs.");
  cm_text_str(t, "clinicmig_up 1\n");
  head(t, "clinicmig_ready", "gauge", "1 when /readyz answers 200.");
  cm_text_printf(t, "clinicmig_ready %d\n",
                 cm_stats_ready(s, why, sizeof(why)));
}

int cm_metrics_format(const cm_stats_snapshot_t *snap, cm_text_t *out) {
  events(out, snap);
  histogram(out, "clinicmig_batch_duration_seconds",
            "Seconds from the end of a batch's collection to its commit, "
            "retries included.",
            &snap->seconds, cm_stats_seconds_le);
  histogram(out, "clinicmig_batch_events", "Events per committed batch.",
            &snap->sizes, cm_stats_events_le);
  partitions(out, snap, 1);
  partitions(out, snap, 0);
  singles(out, snap);
  return out->failed ? CM_ERR_NOMEM : 0;
}
