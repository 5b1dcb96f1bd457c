/*
 * http.c — /metrics, /healthz and /readyz on libmicrohttpd.
 *
 * NOTES
 * The server runs in libmicrohttpd's own polling thread and reads the
 * figures only through cm_stats_snapshot(), a copy, so it shares nothing
 * else with the consumer loop. What the endpoints answer is
 * docs/observability.md: /healthz is liveness (has the main loop turned
 * lately?), /readyz readiness (database reachable, partitions assigned).
 * Answers carry ids, counts and offsets only, never personal data.
 */
#include "clinicmig/cm_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_log.h"

#define METRICS_MAX (4u << 20)

struct cm_http_s {
  struct MHD_Daemon *daemon;
  cm_stats_t *stats;
};

/* ---- the listen address ------------------------------------------------ */

static int parse_port(const char *s, in_port_t *port) {
  char *end;
  long v;

  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || *end != '\0' || v < 1 || v > 65535)
    return -1;
  *port = htons((uint16_t)v);
  return 0;
}

static int parse_host(const char *host, size_t n, in_port_t port,
                      struct sockaddr_storage *ss, socklen_t *len) {
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
  char buf[INET6_ADDRSTRLEN + 2];

  if (n >= sizeof(buf))
    return -1;
  memset(ss, 0, sizeof(*ss));
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
    memcpy(buf, host + 1, n - 2);
    buf[n - 2] = '\0';
    v6->sin6_family = AF_INET6;
    v6->sin6_port = port;
    *len = sizeof(*v6);
    return inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1 ? 0 : -1;
  }
  memcpy(buf, host, n);
  buf[n] = '\0';
  v4->sin_family = AF_INET;
  v4->sin_port = port;
  *len = sizeof(*v4);
  if (n == 0) {
    v4->sin_addr.s_addr = htonl(INADDR_ANY);
    return 0;
  }
  return inet_pton(AF_INET, buf, &v4->sin_addr) == 1 ? 0 : -1;
}

int cm_http_parse_listen(const char *s, struct sockaddr_storage *addr,
                         socklen_t *addr_len) {
  struct sockaddr_storage scratch;
  const char *colon = strrchr(s, ':');
  socklen_t len;
  in_port_t port;

  if (!colon || parse_port(colon + 1, &port) != 0)
    return -1;
  if (parse_host(s, (size_t)(colon - s), port, addr ? addr : &scratch,
                 addr_len ? addr_len : &len) != 0)
    return -1;
  return 0;
}

/* ---- answers ------------------------------------------------------------ */

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status,
                              const char *type, char *body, size_t len) {
  struct MHD_Response *resp;
  enum MHD_Result r;

  resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  r = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return r;
}

static enum MHD_Result answer_line(struct MHD_Connection *conn, unsigned status,
                                   const char *line) {
  cm_text_t t;
  char *body;
  size_t len;

  cm_text_init(&t, 1024);
  cm_text_printf(&t, "%s\n", line);
  body = cm_text_take(&t, &len);
  if (!body)
    return MHD_NO;
  return answer(conn, status, "text/plain; charset=utf-8", body, len);
}

static enum MHD_Result metrics(struct MHD_Connection *conn,
                               const cm_stats_snapshot_t *snap) {
  cm_text_t t;
  char *body;
  size_t len;

  cm_text_init(&t, METRICS_MAX);
  cm_metrics_format(snap, &t);
  body = cm_text_take(&t, &len);
  if (!body)
    return answer_line(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  return answer(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                body, len);
}

static enum MHD_Result healthz(struct MHD_Connection *conn,
                               const cm_stats_snapshot_t *snap) {
  char line[128];

  if (cm_stats_alive(snap))
    return answer_line(conn, MHD_HTTP_OK, "ok");
  snprintf(line, sizeof(line),
           "stalled: the main loop has not turned for %" PRId64 " s",
           snap->since_turn_ms / 1000);
  return answer_line(conn, MHD_HTTP_SERVICE_UNAVAILABLE, line);
}

static enum MHD_Result readyz(struct MHD_Connection *conn,
                              const cm_stats_snapshot_t *snap) {
  char why[128];

  if (cm_stats_ready(snap, why, sizeof(why)))
    return answer_line(conn, MHD_HTTP_OK, "ready");
  return answer_line(conn, MHD_HTTP_SERVICE_UNAVAILABLE, why);
}

static enum MHD_Result route(cm_http_t *h, struct MHD_Connection *conn,
                             const char *url) {
  cm_stats_snapshot_t snap;
  enum MHD_Result r;

  if (strcmp(url, "/metrics") != 0 && strcmp(url, "/healthz") != 0 &&
      strcmp(url, "/readyz") != 0)
    return answer_line(conn, MHD_HTTP_NOT_FOUND,
                       "not found: /metrics, /healthz or /readyz");
  if (cm_stats_snapshot(h->stats, 0, &snap) != 0)
    return answer_line(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  if (strcmp(url, "/metrics") == 0)
    r = metrics(conn, &snap);
  else if (strcmp(url, "/healthz") == 0)
    r = healthz(conn, &snap);
  else
    r = readyz(conn, &snap);
  cm_stats_snapshot_free(&snap);
  return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls) {
  (void)version;
  (void)upload;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return answer_line(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only");
  if (*upload_size != 0)
    return MHD_NO;
  (void)req_cls;
  return route(cls, conn, url);
}

/* ---- the server ------------------------------------------------------------
 */

__attribute__((format(printf, 2, 0))) static void
on_log(void *cls, const char *fmt, va_list ap) {
  char line[256];
  size_t n;

  (void)cls;
  vsnprintf(line, sizeof(line), fmt, ap);
  n = strcspn(line, "\n");
  line[n] = '\0';
  cm_warn("http: %s", line);
}

cm_http_t *cm_http_start(const char *listen, cm_stats_t *stats, char *errstr,
                         size_t errstr_size) {
  struct sockaddr_storage addr;
  socklen_t len;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  uint16_t port; /* for its messages: the socket address decides */
  cm_http_t *h;

  if (cm_http_parse_listen(listen, &addr, &len) != 0) {
    snprintf(errstr, errstr_size, "http.listen: bad address \"%s\"", listen);
    return NULL;
  }
  h = calloc(1, sizeof(*h));
  if (!h) {
    snprintf(errstr, errstr_size, "out of memory");
    return NULL;
  }
  h->stats = stats;
  if (addr.ss_family == AF_INET6) {
    flags |= MHD_USE_IPv6;
    port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
  } else {
    port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
  }
  /* the logger first: libmicrohttpd reads the options in order */
  h->daemon = MHD_start_daemon(
      flags, port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
      on_log, NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)32, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
      MHD_OPTION_END);
  if (!h->daemon) {
    snprintf(errstr, errstr_size,
             "http.listen: cannot serve on %s (in use, or not an address "
             "of this host)",
             listen);
    free(h);
    return NULL;
  }
  cm_info("serving /metrics, /healthz and /readyz on %s", listen);
  return h;
}

void cm_http_stop(cm_http_t *h) {
  if (!h)
    return;
  MHD_stop_daemon(h->daemon);
  free(h);
}
