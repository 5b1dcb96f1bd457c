/**
 * @file cm_txsnap.h
 * @brief PostgreSQL transaction snapshots and the visibility rule that
 *        orders a backfill's rows against live change events.
 *
 * NOTES
 * A row read by `clinicmig-replay db` carries the snapshot it was read in
 * (`txid_current_snapshot()`, text `xmin:xmax:xip,...`, 64-bit
 * epoch-extended ids). A live change is older than that row exactly when
 * its transaction is visible in the snapshot: committed before xmin, or
 * below xmax and not in progress (docs/design.md §2.2). Debezium's
 * `source.txId` is the 32-bit xid: it is widened against the snapshot's
 * xmax before the test.
 */
#ifndef CM_TXSNAP_H
#define CM_TXSNAP_H

#include <stddef.h>
#include <stdint.h>

/** Most in-progress ids a snapshot may list (PostgreSQL's own bound is
 *  about max_connections; this is far above any real server). */
#define CM_TXSNAP_MAX_XIP 65536

/** A snapshot: xmin <= every xip < xmax; xip sorted, owned. */
typedef struct cm_txsnap_s {
  int64_t xmin;
  int64_t xmax;
  int n_xip;
  int64_t *xip;
} cm_txsnap_t;

/**
 * @brief Parses `xmin:xmax:xip1,xip2,...`, txid_current_snapshot()'s text.
 * @returns 0, or -1 if the text is not a well-formed snapshot (then @p out
 *          holds nothing to free), or CM_ERR_NOMEM.
 */
int cm_txsnap_parse(const char *text, cm_txsnap_t *out);

/**
 * @brief Builds a snapshot from xmin, xmax and the PostgreSQL array text
 *        of xip (`{1,2}`), as the mirror stores them.
 * @returns 0, -1 on malformed input, or CM_ERR_NOMEM.
 */
int cm_txsnap_from_parts(int64_t xmin, int64_t xmax, const char *xip_array,
                         cm_txsnap_t *out);

/** @brief Deep copy; @returns 0 or CM_ERR_NOMEM. */
int cm_txsnap_copy(cm_txsnap_t *dst, const cm_txsnap_t *src);

/** @brief Frees the xip list and zeroes the snapshot. */
void cm_txsnap_clear(cm_txsnap_t *s);

/**
 * @brief Widens a 32-bit xid (Debezium's txId) to the 64-bit id closest to
 *        @p ref (a snapshot's xmax); ids already past 32 bits are kept.
 */
int64_t cm_xid_widen(int64_t xid, int64_t ref);

/** @brief 1 if transaction @p xid (32 or 64 bit) is visible in @p s. */
int cm_txsnap_visible(const cm_txsnap_t *s, int64_t xid);

/**
 * @brief Orders two snapshots of one server: > 0 if @p a was taken after
 *        @p b, < 0 if before, 0 if they see the same (xmax, then xmin,
 *        then fewer transactions in progress is later).
 */
int cm_txsnap_cmp(const cm_txsnap_t *a, const cm_txsnap_t *b);

/**
 * @brief Writes xip as PostgreSQL array text (`{1,2}`) into a new string.
 * @returns the string (caller frees) or NULL when out of memory.
 */
char *cm_txsnap_xip_array(const cm_txsnap_t *s);

/**
 * @brief Writes the snapshot as `xmin:xmax:xip,...` into @p buf.
 * @returns @p buf (truncated text if @p size is too small).
 */
char *cm_txsnap_format(const cm_txsnap_t *s, char *buf, size_t size);

#endif
