/**
 * @file cm_http.h
 * @brief The worker's HTTP endpoints: /metrics (Prometheus text format
 *        0.0.4), /healthz and /readyz (docs/observability.md).
 *
 * NOTES
 * libmicrohttpd serves them from its own thread. Every request takes a
 * snapshot of the figures (cm_stats.h) and formats it outside the lock,
 * so a scrape never holds the consumer loop up.
 */
#ifndef CM_HTTP_H
#define CM_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

#include "clinicmig/cm_stats.h"
#include "clinicmig/cm_text.h"

typedef struct cm_http_s cm_http_t;

/**
 * @brief Parses "ADDR:PORT": an IPv4 address, an IPv6 address in
 *        brackets, or nothing (every IPv4 interface) before the colon;
 *        a port from 1 to 65535.
 * @param addr  NULL-able: receives the socket address.
 * @returns 0, or -1 if @p s has another form.
 */
int cm_http_parse_listen(const char *s, struct sockaddr_storage *addr,
                         socklen_t *addr_len);

/**
 * @brief Starts serving on @p listen (already validated by the config).
 * @param stats  read by the server's thread: must outlive the server.
 * @returns NULL with the reason (a port in use, say) in @p errstr.
 */
cm_http_t *cm_http_start(const char *listen, cm_stats_t *stats, char *errstr,
                         size_t errstr_size);

/** @brief Stops the server and waits for its thread. NULL-able. */
void cm_http_stop(cm_http_t *h);

/**
 * @brief Writes the metrics page of @p snap (Prometheus text format).
 * @returns 0, or CM_ERR_NOMEM.
 */
int cm_metrics_format(const cm_stats_snapshot_t *snap, cm_text_t *out);

#endif
