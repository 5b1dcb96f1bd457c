/*
 * read.c — dlq and topic modes: read a fixed range of a topic, publish
 * what matches onto the replay topic, byte for byte.
 *
 * NOTES
 * Both modes read a range fixed at start-up: per partition, from a start
 * offset to an end offset (exclusive) no greater than the high watermark
 * then, so a run ends even while the topic grows (the replay topic
 * itself included). The consumer assigns the partitions itself — no group
 * membership, no commits — and a partition is done at its end offset or
 * at the end of its log (enable.partition.eof), whichever comes first.
 *
 * dlq mode reads the dead-letter topic from its log start and re-drives
 * the dead letters the filters match (docs/operations.md §6: the original
 * event is the dead letter's key and value; its origin is in the Kafka
 * Connect headers __connect.errors.topic, .partition, .offset).
 *
 * topic mode takes offsets, or times. A time range follows
 * offsets_for_times(): from the first message stamped at or after --since
 * to the first one stamped at or after --until. Where the cluster gives no
 * offset for a time (no later message, or a cluster that cannot look
 * offsets up by time — librdkafka's mock cluster answers -1 to every
 * such query), the partition is read from its log start and the same rule
 * is applied to the messages as they come, which gives the same range.
 *
 * Messages are republished with the headers clinicmig.origin and
 * clinicmig.origin.position; their own headers and timestamps are not
 * carried over (a republished message is stamped now, so time-based
 * retention counts from the replay). stderr names topics, partitions and
 * offsets only.
 */
#include "replay.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clinicmig/cm_err.h"

#define WATERMARK_TIMEOUT_MS 15000
#define POLL_MS 100
#define STALL_S 120.0
#define HEADER_MAX 4096

/* One partition's range. */
typedef struct part_s {
  int32_t id;
  int64_t start, end; /* [start, end) */
  int waiting_since;  /* topic --since without an offset: skip until then */
  int done;
} part_t;

typedef struct rd_s {
  const rp_opts_t *o;
  rp_out_t *out;
  rd_kafka_t *rk;
  const char *topic;
  part_t *parts;
  int part_cnt, left;
  int64_t read, matched, no_origin;
  double started, next_progress, last_activity;
  char *errstr;
  size_t errstr_size;
} rd_t;

static int fail(rd_t *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(rd_t *r, int rc, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(r->errstr, r->errstr_size, fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- the consumer and the plan ------------------------------------------- */

static int consumer_new(rd_t *r) {
  rd_kafka_conf_t *kc = rp_kafka_conf(r->o, r->errstr, r->errstr_size);
  char group[64];

  if (!kc)
    return CM_ERR_CONFIG;
  snprintf(group, sizeof(group), RP_NAME "-%ld", (long)getpid());
  if (rd_kafka_conf_set(kc, "group.id", group, r->errstr, r->errstr_size) ||
      rd_kafka_conf_set(kc, "enable.auto.commit", "false", r->errstr,
                        r->errstr_size) ||
      rd_kafka_conf_set(kc, "enable.auto.offset.store", "false", r->errstr,
                        r->errstr_size) ||
      rd_kafka_conf_set(kc, "enable.partition.eof", "true", r->errstr,
                        r->errstr_size) ||
      rd_kafka_conf_set(kc, "auto.offset.reset", "error", r->errstr,
                        r->errstr_size)) {
    rd_kafka_conf_destroy(kc);
    return CM_ERR_CONFIG;
  }
  r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, r->errstr, r->errstr_size);
  if (!r->rk) {
    rd_kafka_conf_destroy(kc);
    return CM_ERR_CONFIG;
  }
  return 0; /* kc is owned by the consumer now */
}

/* The partitions to read: --partitions, checked, or all of them. */
static int choose_partitions(rd_t *r) {
  int i, cnt = 0, rc;

  rc = rp_kafka_topic(r->rk, r->topic, &cnt, r->errstr, r->errstr_size);
  if (rc != 0)
    return rc;
  r->part_cnt = r->o->partitions ? r->o->partition_cnt : cnt;
  r->parts = calloc((size_t)(r->part_cnt ? r->part_cnt : 1), sizeof(part_t));
  if (!r->parts)
    return fail(r, CM_ERR_NOMEM, "out of memory");
  for (i = 0; i < r->part_cnt; i++) {
    r->parts[i].id = r->o->partitions ? r->o->partitions[i] : i;
    if (r->parts[i].id >= cnt)
      return fail(r, CM_ERR_BAD_INPUT,
                  "topic \"%s\" has no partition %" PRId32 " (it has %d)",
                  r->topic, r->parts[i].id, cnt);
  }
  return 0;
}

/* The offsets of the first messages stamped at or after @p ms, -1 where
 * the cluster gives none (see NOTES). */
static void offsets_for(rd_t *r, int64_t ms, int64_t *out) {
  rd_kafka_topic_partition_list_t *l;
  int i;

  l = rd_kafka_topic_partition_list_new(r->part_cnt);
  for (i = 0; i < r->part_cnt; i++)
    rd_kafka_topic_partition_list_add(l, r->topic, r->parts[i].id)->offset = ms;
  if (rd_kafka_offsets_for_times(r->rk, l, WATERMARK_TIMEOUT_MS))
    for (i = 0; i < r->part_cnt; i++)
      out[i] = -1;
  else
    for (i = 0; i < r->part_cnt; i++)
      out[i] = l->elems[i].err ? -1 : l->elems[i].offset;
  rd_kafka_topic_partition_list_destroy(l);
}

/* dlq mode: the whole log, as it stands at start-up. */
static void plan_all(part_t *p, int64_t lo, int64_t hi) {
  p->start = lo;
  p->end = hi;
}

/*
 * topic mode by offsets: [--from-offset, --to-offset or the end). A
 * partition named by --partitions must reach --from-offset; of all the
 * partitions, those that do not are left out, unless none does.
 */
static int plan_offsets(rd_t *r, part_t *p, int64_t lo, int64_t hi,
                        int *beyond) {
  const rp_opts_t *o = r->o;

  p->start = p->end = 0;
  if (o->from_offset > hi && !o->partitions) {
    (*beyond)++;
    return 0;
  }
  if (o->from_offset > hi)
    return fail(r, CM_ERR_BAD_INPUT,
                "--from-offset %" PRId64 " is beyond the end of %s [%" PRId32
                "] (high watermark %" PRId64 ")",
                o->from_offset, r->topic, p->id, hi);
  if (o->from_offset < lo)
    return fail(r, CM_ERR_BAD_INPUT,
                "--from-offset %" PRId64 " is below the log start of %s"
                " [%" PRId32 "] (%" PRId64 "): those messages were deleted",
                o->from_offset, r->topic, p->id, lo);
  p->start = o->from_offset;
  p->end = o->has_to && o->to_offset < hi ? o->to_offset : hi;
  return 0;
}

/* topic mode by time, from offsets_for_times() where the cluster answers. */
static void plan_times(const rd_t *r, part_t *p, int64_t lo, int64_t hi,
                       int64_t since_off, int64_t until_off) {
  p->start = since_off >= lo ? since_off : lo;
  p->waiting_since = since_off < 0;
  p->end = hi;
  if (r->o->has_until && until_off >= 0 && until_off < hi)
    p->end = until_off;
}

static int plan(rd_t *r) {
  int64_t lo, hi, *since_off, *until_off;
  rd_kafka_resp_err_t err;
  part_t *p;
  int i, rc = 0, beyond = 0;

  since_off = calloc((size_t)r->part_cnt + 1, sizeof(int64_t));
  until_off = calloc((size_t)r->part_cnt + 1, sizeof(int64_t));
  if (!since_off || !until_off)
    rc = fail(r, CM_ERR_NOMEM, "out of memory");
  if (rc == 0 && r->o->mode == RP_MODE_TOPIC && r->o->has_since) {
    offsets_for(r, r->o->since_ms, since_off);
    if (r->o->has_until)
      offsets_for(r, r->o->until_ms, until_off);
  }
  for (i = 0; rc == 0 && i < r->part_cnt; i++) {
    p = &r->parts[i];
    err = rd_kafka_query_watermark_offsets(r->rk, r->topic, p->id, &lo, &hi,
                                           WATERMARK_TIMEOUT_MS);
    if (err)
      rc = fail(r, CM_ERR_RETRY,
                "could not read the offsets of %s [%" PRId32 "]: %s", r->topic,
                p->id, rd_kafka_err2str(err));
    else if (r->o->mode == RP_MODE_DLQ)
      plan_all(p, lo, hi);
    else if (r->o->has_from)
      rc = plan_offsets(r, p, lo, hi, &beyond);
    else
      plan_times(r, p, lo, hi, since_off[i], until_off[i]);
    p->done = p->start >= p->end;
    r->left += !p->done;
  }
  free(since_off);
  free(until_off);
  if (rc == 0 && beyond > 0 && beyond == r->part_cnt)
    rc = fail(r, CM_ERR_BAD_INPUT,
              "--from-offset %" PRId64 " is beyond the end of every"
              " partition of %s",
              r->o->from_offset, r->topic);
  return rc;
}

static int assign(rd_t *r) {
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_resp_err_t err;
  int i;

  l = rd_kafka_topic_partition_list_new(r->part_cnt);
  for (i = 0; i < r->part_cnt; i++)
    if (!r->parts[i].done)
      rd_kafka_topic_partition_list_add(l, r->topic, r->parts[i].id)->offset =
          r->parts[i].start;
  err = rd_kafka_assign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err)
    return fail(r, CM_ERR_RETRY, "could not assign %s: %s", r->topic,
                rd_kafka_err2str(err));
  return 0;
}

/* ---- messages ------------------------------------------------------------ */

static part_t *part_of(rd_t *r, int32_t id) {
  int i;

  for (i = 0; i < r->part_cnt; i++)
    if (r->parts[i].id == id)
      return &r->parts[i];
  return NULL;
}

static void finish_part(rd_t *r, part_t *p) {
  if (!p->done) {
    p->done = 1;
    r->left--;
  }
}

/* The last header @p name as text (cut at HEADER_MAX); 0, or -1 if absent. */
static int header(const rd_kafka_message_t *m, const char *name, char *buf,
                  size_t size) {
  rd_kafka_headers_t *h;
  const void *v;
  size_t n;

  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      !v)
    return -1;
  if (n >= size)
    n = size - 1;
  memcpy(buf, v, n);
  buf[n] = '\0';
  return 0;
}

/* dlq mode's filters: --reason, --source-topic, --since, --until. */
static int dlq_matches(const rd_t *r, const rd_kafka_message_t *m, int64_t ts) {
  char v[HEADER_MAX];

  if ((r->o->has_since && (ts < 0 || ts < r->o->since_ms)) ||
      (r->o->has_until && (ts < 0 || ts >= r->o->until_ms)))
    return 0;
  if (r->o->reason &&
      (header(m, "__connect.errors.exception.message", v, sizeof(v)) != 0 ||
       !strstr(v, r->o->reason)))
    return 0;
  if (r->o->source_topic &&
      (header(m, "__connect.errors.topic", v, sizeof(v)) != 0 ||
       strcmp(v, r->o->source_topic) != 0))
    return 0;
  return 1;
}

/* Where the dead letter was read (the Kafka Connect headers), else where
 * it is itself: counted, and said in the summary. */
static void dlq_position(rd_t *r, const rd_kafka_message_t *m, char *buf,
                         size_t size) {
  char t[256], p[32], o[32];

  if (header(m, "__connect.errors.topic", t, sizeof(t)) == 0 &&
      header(m, "__connect.errors.partition", p, sizeof(p)) == 0 &&
      header(m, "__connect.errors.offset", o, sizeof(o)) == 0) {
    snprintf(buf, size, "%s/%s/%s", t, p, o);
    return;
  }
  r->no_origin++;
  snprintf(buf, size, "%s/%" PRId32 "/%" PRId64, r->topic, m->partition,
           m->offset);
}

/* topic mode's time range; @returns 1 to publish, 0 to skip, -1 past it. */
static int topic_in_range(const rd_t *r, part_t *p, int64_t ts) {
  if (p->waiting_since) {
    if (ts < r->o->since_ms)
      return 0;
    p->waiting_since = 0;
  }
  if (r->o->has_until && ts >= r->o->until_ms)
    return -1;
  return 1;
}

static int handle(rd_t *r, const rd_kafka_message_t *m, part_t *p) {
  char pos[600];
  int64_t ts = rd_kafka_message_timestamp(m, NULL);
  int in;

  r->read++;
  if (r->o->mode == RP_MODE_DLQ) {
    if (!dlq_matches(r, m, ts))
      return 0;
    dlq_position(r, m, pos, sizeof(pos));
  } else {
    in = topic_in_range(r, p, ts);
    if (in < 0)
      finish_part(r, p);
    if (in <= 0)
      return 0;
    snprintf(pos, sizeof(pos), "%s/%" PRId32 "/%" PRId64, r->topic,
             m->partition, m->offset);
  }
  r->matched++;
  return rp_out_send(r->out, m->key, m->key_len, m->payload, m->len,
                     r->o->mode == RP_MODE_DLQ ? "dlq" : "topic", pos, 1,
                     r->errstr, r->errstr_size);
}

/* One consumer event: a message, the end of a partition, or an error. */
static int on_message(rd_t *r, const rd_kafka_message_t *m) {
  part_t *p = part_of(r, m->partition);
  int rc = 0;

  r->last_activity = rp_now_s();
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (p)
      finish_part(r, p);
    return 0;
  }
  if (m->err) {
    if (!m->rkt) /* a client-wide condition; librdkafka retries */
      return 0;
    return fail(r, CM_ERR_RETRY, "could not read %s [%" PRId32 "]: %s",
                r->topic, m->partition, rd_kafka_err2str(m->err));
  }
  if (!p)
    return 0;
  if (p->done || m->offset >= p->end) {
    finish_part(r, p);
    return 0;
  }
  rc = handle(r, m, p);
  if (m->offset + 1 >= p->end)
    finish_part(r, p);
  return rc;
}

static void progress(rd_t *r) {
  double now = rp_now_s();

  if (r->o->quiet || now < r->next_progress)
    return;
  r->next_progress = now + RP_PROGRESS_S;
  fprintf(stderr,
          RP_NAME ": progress: %" PRId64 " read from %s, %" PRId64
                  " published; %d of %d partitions to go\n",
          r->read, r->topic, r->matched, r->left, r->part_cnt);
}

static int consume(rd_t *r) {
  rd_kafka_message_t *m;
  char last[512];
  int rc = 0;

  r->last_activity = rp_now_s();
  while (rc == 0 && r->left > 0) {
    if (rp_stop)
      return fail(r, CM_ERR_FATAL, "interrupted; the replay is incomplete");
    m = rd_kafka_consumer_poll(r->rk, POLL_MS);
    rp_out_poll(r->out);
    progress(r);
    if (!m) {
      if (rp_now_s() - r->last_activity < STALL_S)
        continue;
      rp_kafka_last_error(last, sizeof(last));
      return fail(r, CM_ERR_RETRY, "nothing read from %s for %.0f s%s%s",
                  r->topic, STALL_S, last[0] ? "; last error: " : "", last);
    }
    rc = on_message(r, m);
    rd_kafka_message_destroy(m);
  }
  return rc;
}

static void summary(const rd_t *r) {
  char extra[128] = "";
  double s = rp_now_s() - r->started;

  if (r->no_origin)
    snprintf(extra, sizeof(extra),
             " (%" PRId64 " without __connect.errors headers: given their"
             " own position)",
             r->no_origin);
  if (r->o->mode == RP_MODE_DLQ)
    fprintf(stderr,
            RP_NAME ": done: %" PRId64 " dead letters read, %" PRId64
                    " matched, %" PRId64 " published%s, %.1f s;"
                    " all acknowledged\n",
            r->read, r->matched, r->matched, extra, s);
  else
    fprintf(stderr,
            RP_NAME ": done: %" PRId64 " messages read from %s, %" PRId64
                    " published, %.1f s; all acknowledged\n",
            r->read, r->topic, r->matched, s);
}

static int run(rd_t *r) {
  int rc;

  if ((rc = consumer_new(r)) != 0 || (rc = choose_partitions(r)) != 0 ||
      (rc = plan(r)) != 0 || (r->left > 0 && (rc = assign(r)) != 0) ||
      (rc = consume(r)) != 0)
    return rc;
  if ((rc = rp_out_finish(r->out, r->errstr, r->errstr_size)) != 0)
    return rc;
  summary(r);
  return 0;
}

int rp_read_run(const rp_opts_t *o, rp_out_t *out, char *errstr,
                size_t errstr_size) {
  rd_t r;
  int rc;

  memset(&r, 0, sizeof(r));
  r.o = o;
  r.out = out;
  r.topic = o->mode == RP_MODE_DLQ ? o->topic_dlq : o->topic;
  r.errstr = errstr;
  r.errstr_size = errstr_size;
  r.started = rp_now_s();
  r.next_progress = r.started + RP_PROGRESS_S;
  rc = run(&r);
  if (r.rk) {
    rd_kafka_consumer_close(r.rk);
    rd_kafka_destroy(r.rk);
  }
  free(r.parts);
  return rc;
}
