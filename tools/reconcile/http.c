/*
 * http.c — /metrics, /healthz and /readyz (libmicrohttpd).
 *
 * NOTES
 * The endpoints of docs/reconciliation.md, "Metrics and health", served
 * by libmicrohttpd's own thread. The handler only reads rc_metrics_t
 * under its lock and writes text: it never touches a connection of the
 * main loop. Prometheus text format 0.0.4.
 *
 * /healthz: 200 while the main loop has turned within HEALTH_S seconds
 * (between steps of a pass, between segments of a check, or a standby's
 * retry). /readyz: 200 while the last round trip to the target database
 * succeeded; a standby is ready (it takes over when the leader goes).
 */
#include "reconcile.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#define HEALTH_S 30.0
#define PAGE_MAX 65536

struct rc_http_s {
  struct MHD_Daemon *d;
  rc_metrics_t *m;
};

static const char *const check_names[2] = {"legacy-mirror", "mirror-v2"};

static void gauge_head(cm_text_t *b, const char *name, const char *type,
                       const char *help) {
  cm_text_str(b, "# HELP ");
  cm_text_str(b, name);
  cm_text_str(b, " ");
  cm_text_str(b, help);
  cm_text_str(b, "\n# TYPE ");
  cm_text_str(b, name);
  cm_text_str(b, " ");
  cm_text_str(b, type);
  cm_text_str(b, "\n");
}

static void sample(cm_text_t *b, const char *name, const char *labels,
                   int64_t v) {
  cm_text_str(b, name);
  cm_text_str(b, labels);
  cm_text_str(b, " ");
  cm_text_i64(b, v);
  cm_text_str(b, "\n");
}

static void entity_gauges(cm_text_t *b, const rc_metrics_t *m) {
  char labels[128];
  int e, k;

  gauge_head(b, "clinicmig_in_sync", "gauge",
             "1 when the entity's last verdict was in sync");
  for (e = 0; e < RC_ENTITY_CNT; e++) {
    snprintf(labels, sizeof(labels), "{entity=\"%s\"}", rc_entities[e].name);
    sample(b, "clinicmig_in_sync", labels, m->in_sync[e]);
  }
  gauge_head(b, "clinicmig_reconcile_mismatches", "gauge",
             "mismatching ids the last pass found");
  for (e = 0; e < RC_ENTITY_CNT; e++)
    for (k = 0; k < 2; k++) {
      snprintf(labels, sizeof(labels), "{entity=\"%s\",check=\"%s\"}",
               rc_entities[e].name, check_names[k]);
      sample(b, "clinicmig_reconcile_mismatches", labels, m->mismatches[e][k]);
    }
}

static void metrics_page(cm_text_t *b, const rc_metrics_t *m) {
  entity_gauges(b, m);
  gauge_head(b, "clinicmig_reconcile_rows_read_total", "counter",
             "rows read one by one after bisection");
  sample(b, "clinicmig_reconcile_rows_read_total", "", m->rows_read_total);
  gauge_head(b, "clinicmig_reconcile_pass_seconds", "gauge",
             "duration of the last full pass");
  cm_text_str(b, "clinicmig_reconcile_pass_seconds ");
  rc_buf_f3(b, m->pass_seconds);
  cm_text_str(b, "\n");
  gauge_head(b, "clinicmig_reconcile_leader", "gauge",
             "1 while this reconciler holds the leader lock");
  sample(b, "clinicmig_reconcile_leader", "", m->leader);
  gauge_head(b, "clinicmig_up", "gauge", "1 while the process runs");
  sample(b, "clinicmig_up", "", 1);
  gauge_head(b, "clinicmig_ready", "gauge", "1 when /readyz says ready");
  sample(b, "clinicmig_ready", "", m->db_ok);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
                             const char *type, const char *text, size_t len) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret;

  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, "Content-Type", type);
  ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* The page for @url into @b; @returns the HTTP status. */
static unsigned int page(rc_metrics_t *m, const char *url, cm_text_t *b,
                         const char **type) {
  unsigned int status = 200;

  *type = "text/plain; charset=utf-8";
  pthread_mutex_lock(&m->lock);
  if (strcmp(url, "/metrics") == 0) {
    *type = "text/plain; version=0.0.4; charset=utf-8";
    metrics_page(b, m);
  } else if (strcmp(url, "/healthz") == 0) {
    status = rc_now_s() - m->last_turn <= HEALTH_S ? 200 : 503;
    cm_text_str(b, status == 200 ? "ok\n"
                                 : "the main loop has not turned for 30 s\n");
  } else if (strcmp(url, "/readyz") == 0) {
    status = m->db_ok ? 200 : 503;
    cm_text_str(b, m->db_ok ? "ready\n"
                            : "the last round trip to the target database"
                              " failed\n");
  } else {
    status = 404;
    cm_text_str(b, "not found\n");
  }
  pthread_mutex_unlock(&m->lock);
  return status;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
  rc_http_t *h = cls;
  const char *type;
  unsigned int status;
  enum MHD_Result ret;
  cm_text_t b;

  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)con_cls;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return reply(conn, 405, "text/plain", "GET only\n", 9);
  cm_text_init(&b, PAGE_MAX);
  status = page(h->m, url, &b, &type);
  ret = b.failed ? reply(conn, 500, "text/plain", "page too large\n", 15)
                 : reply(conn, status, type, b.p ? b.p : "", b.len);
  cm_text_free(&b);
  return ret;
}

/* The address of --http-listen, for MHD_OPTION_SOCK_ADDR. */
static int sock_addr(const rc_opts_t *o, struct sockaddr_storage *ss) {
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

  memset(ss, 0, sizeof(*ss));
  if (inet_pton(AF_INET, o->http_addr, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)o->http_port);
    return AF_INET;
  }
  if (inet_pton(AF_INET6, o->http_addr, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)o->http_port);
    return AF_INET6;
  }
  return -1;
}

rc_http_t *rc_http_start(const rc_opts_t *o, rc_metrics_t *m, char *errstr,
                         size_t errstr_size) {
  struct sockaddr_storage ss;
  rc_http_t *h = calloc(1, sizeof(*h));
  int family = sock_addr(o, &ss);
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD;

  if (!h || family < 0) {
    snprintf(errstr, errstr_size, "--http-listen: cannot use %s",
             o->http_listen);
    free(h);
    return NULL;
  }
  if (family == AF_INET6)
    flags |= MHD_USE_IPv6;
  h->m = m;
  h->d = MHD_start_daemon(flags, (uint16_t)o->http_port, NULL, NULL, handle, h,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_END);
  if (!h->d) {
    snprintf(errstr, errstr_size,
             "could not listen on %s (address in use, or not this host's)",
             o->http_listen);
    free(h);
    return NULL;
  }
  return h;
}

void rc_http_stop(rc_http_t *h) {
  if (!h)
    return;
  MHD_stop_daemon(h->d);
  free(h);
}
