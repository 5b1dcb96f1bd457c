/*
 * avro_out.c — clinicmig's own streams in Avro (Confluent's wire format),
 *              and back to their JSON documents.
 *
 * NOTES
 * cm_avro_out.h states the mapping. Writing fills an Avro C generic value
 * (avro_generic_class_from_schema) by walking the writer schema over the
 * cJSON tree, and Avro C writes it (avro_value_write into a memory
 * writer). Avro C keeps no field defaults, so the schema text is also read
 * with cJSON and each record field's default kept beside it, by the
 * record's full name.
 *
 * Reading is our own, as in decode_avro.c (docs/design.md §1.2): every
 * length is checked against the bytes left before anything is read or
 * allocated, nesting is bounded, an array or map block may not claim more
 * items than there are bytes left, and truncated bodies and trailing bytes
 * are refused. The JSON it prints is bounded too.
 *
 * The schemas of schemas/NAME.avsc are compiled in by
 * schemas/embed-avsc.cmake (cm_avsc_names, cm_avsc_texts).
 */
#include "clinicmig/cm_avro_out.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clinicmig/cm_err.h"
#include "clinicmig/cm_text.h"

#define MAX_DEPTH 32
#define SAFE_INT 9007199254740992.0 /* 2^53 */
#define JSON_MAX ((size_t)16 << 20)
#define PATH_LEN 256
#define ERR_LEN 512
#define NAME_LEN 512

extern const char *const cm_avsc_names[];
extern const char *const cm_avsc_texts[];

/* A record field's default, from the schema text. */
typedef struct dflt_s {
  char *record; /* full name */
  char *field;
  const cJSON *value; /* in the writer's doc */
} dflt_t;

struct cm_avro_out_s {
  cm_schemas_t *s;
  char *subject;
  char *text;
  avro_schema_t schema;
  avro_value_iface_t *iface;
  cJSON *doc;
  dflt_t *dflts;
  int n_dflts;
  int32_t id;
  int registered;
};

const char *cm_avsc(const char *name) {
  int i;

  for (i = 0; cm_avsc_names[i] != NULL; i++)
    if (strcmp(cm_avsc_names[i], name) == 0)
      return cm_avsc_texts[i];
  return NULL;
}

/* ---- defaults ---------------------------------------------------------- */

/* The full name of a named type whose "name" is @p name in namespace
 * @p ns; @p ns_out gets the namespace its children inherit. */
static void full_name(const char *name, const char *ns, char *full, size_t size,
                      char *ns_out, size_t ns_size) {
  const char *dot = strrchr(name, '.');

  if (dot != NULL) {
    snprintf(full, size, "%s", name);
    snprintf(ns_out, ns_size, "%.*s", (int)(dot - name), name);
  } else if (ns != NULL && ns[0] != '\0') {
    snprintf(full, size, "%s.%s", ns, name);
    snprintf(ns_out, ns_size, "%s", ns);
  } else {
    snprintf(full, size, "%s", name);
    ns_out[0] = '\0';
  }
}

static int dflt_add(cm_avro_out_t *o, const char *record, const char *field,
                    const cJSON *value) {
  dflt_t *d = realloc(o->dflts, sizeof(*d) * (size_t)(o->n_dflts + 1));

  if (d == NULL)
    return CM_ERR_NOMEM;
  o->dflts = d;
  d[o->n_dflts].record = strdup(record);
  d[o->n_dflts].field = strdup(field);
  d[o->n_dflts].value = value;
  if (d[o->n_dflts].record == NULL || d[o->n_dflts].field == NULL) {
    free(d[o->n_dflts].record);
    free(d[o->n_dflts].field);
    return CM_ERR_NOMEM;
  }
  o->n_dflts++;
  return CM_OK;
}

/* Collects the defaults of every record field of the schema @p node. */
static int collect(cm_avro_out_t *o, const cJSON *node, const char *ns,
                   int depth) {
  const cJSON *type, *name, *space, *fields, *f, *c;
  char full[NAME_LEN], inner[NAME_LEN];
  int rc = CM_OK;

  if (depth > MAX_DEPTH)
    return CM_OK;
  if (cJSON_IsArray(node)) {
    cJSON_ArrayForEach(c, node) {
      rc = collect(o, c, ns, depth + 1);
      if (rc != CM_OK)
        return rc;
    }
    return CM_OK;
  }
  if (!cJSON_IsObject(node))
    return CM_OK;
  type = cJSON_GetObjectItemCaseSensitive(node, "type");
  if (!cJSON_IsString(type))
    return collect(o, type, ns, depth + 1);
  if (strcmp(type->valuestring, "array") == 0)
    return collect(o, cJSON_GetObjectItemCaseSensitive(node, "items"), ns,
                   depth + 1);
  if (strcmp(type->valuestring, "map") == 0)
    return collect(o, cJSON_GetObjectItemCaseSensitive(node, "values"), ns,
                   depth + 1);
  name = cJSON_GetObjectItemCaseSensitive(node, "name");
  fields = cJSON_GetObjectItemCaseSensitive(node, "fields");
  if ((strcmp(type->valuestring, "record") != 0 &&
       strcmp(type->valuestring, "error") != 0) ||
      !cJSON_IsString(name) || !cJSON_IsArray(fields))
    return CM_OK;
  space = cJSON_GetObjectItemCaseSensitive(node, "namespace");
  full_name(name->valuestring, cJSON_IsString(space) ? space->valuestring : ns,
            full, sizeof(full), inner, sizeof(inner));
  cJSON_ArrayForEach(f, fields) {
    const cJSON *fname = cJSON_GetObjectItemCaseSensitive(f, "name");
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(f, "default");

    if (cJSON_IsString(fname) && def != NULL)
      rc = dflt_add(o, full, fname->valuestring, def);
    if (rc == CM_OK)
      rc = collect(o, cJSON_GetObjectItemCaseSensitive(f, "type"), inner,
                   depth + 1);
    if (rc != CM_OK)
      return rc;
  }
  return CM_OK;
}

/* The default of field @p field of record @p rec, or NULL. */
static const cJSON *field_default(const cm_avro_out_t *o, avro_schema_t rec,
                                  const char *field) {
  const char *ns = avro_schema_namespace(rec);
  char full[NAME_LEN];
  int i;

  if (ns != NULL && ns[0] != '\0')
    snprintf(full, sizeof(full), "%s.%s", ns, avro_schema_name(rec));
  else
    snprintf(full, sizeof(full), "%s", avro_schema_name(rec));
  for (i = 0; i < o->n_dflts; i++)
    if (strcmp(o->dflts[i].record, full) == 0 &&
        strcmp(o->dflts[i].field, field) == 0)
      return o->dflts[i].value;
  return NULL;
}

/* ---- the writer -------------------------------------------------------- */

cm_avro_out_t *cm_avro_out_new(cm_schemas_t *s, const char *topic,
                               const char *schema_json, char *errstr,
                               size_t errstr_size) {
  cm_avro_out_t *o = calloc(1, sizeof(*o));
  size_t n = strlen(topic) + sizeof("-value");

  if (o == NULL) {
    cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
    return NULL;
  }
  o->s = s;
  o->subject = malloc(n);
  o->text = strdup(schema_json);
  if (o->subject == NULL || o->text == NULL)
    goto nomem;
  snprintf(o->subject, n, "%s-value", topic);
  if (avro_schema_from_json_length(schema_json, strlen(schema_json),
                                   &o->schema) != 0) {
    o->schema = NULL;
    cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
            "subject %s: not a valid Avro schema: %s", o->subject,
            avro_strerror());
    cm_avro_out_destroy(o);
    return NULL;
  }
  o->doc = cJSON_Parse(schema_json);
  o->iface = avro_generic_class_from_schema(o->schema);
  if (o->doc == NULL || o->iface == NULL ||
      collect(o, o->doc, NULL, 0) != CM_OK)
    goto nomem;
  return o;
nomem:
  cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  cm_avro_out_destroy(o);
  return NULL;
}

void cm_avro_out_destroy(cm_avro_out_t *o) {
  int i;

  if (o == NULL)
    return;
  if (o->iface != NULL)
    avro_value_iface_decref(o->iface);
  if (o->schema != NULL)
    avro_schema_decref(o->schema);
  for (i = 0; i < o->n_dflts; i++) {
    free(o->dflts[i].record);
    free(o->dflts[i].field);
  }
  free(o->dflts);
  cJSON_Delete(o->doc);
  free(o->subject);
  free(o->text);
  free(o);
}

avro_schema_t cm_avro_out_schema(cm_avro_out_t *o) {
  return o->schema;
}

/* What filling a value carries: where it is, and why it failed. */
typedef struct fill_s {
  const cm_avro_out_t *o;
  char path[PATH_LEN];
  size_t plen;
  char err[ERR_LEN];
  int fail_depth; /* how deep the last failure was */
} fill_t;

/* Appends a path step; @returns the length to pop back to. */
__attribute__((format(printf, 2, 3))) static size_t push(fill_t *c,
                                                         const char *fmt, ...) {
  size_t mark = c->plen;
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(c->path + c->plen, sizeof(c->path) - c->plen, fmt, ap);
  va_end(ap);
  if (n > 0)
    c->plen += (size_t)n < sizeof(c->path) - c->plen
                   ? (size_t)n
                   : sizeof(c->path) - c->plen - 1;
  return mark;
}

static void pop(fill_t *c, size_t mark) {
  c->plen = mark;
  c->path[mark] = '\0';
}

__attribute__((format(printf, 4, 5))) static int
bad(fill_t *c, int err, int depth, const char *fmt, ...) {
  va_list ap;
  int n = snprintf(c->err, sizeof(c->err), "%s: ", c->path);

  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof(c->err))
    vsnprintf(c->err + n, sizeof(c->err) - (size_t)n, fmt, ap);
  va_end(ap);
  c->fail_depth = depth;
  return err;
}

/* Avro C refused to set a value: out of memory, in practice. */
static int avro_failed(fill_t *c, int depth) {
  return bad(c, CM_ERR_NOMEM, depth, "avro: %s", avro_strerror());
}

static avro_schema_t resolve(avro_schema_t s) {
  while (s != NULL && is_avro_link(s))
    s = avro_schema_link_target(s);
  return s;
}

static const char *json_kind(const cJSON *j) {
  if (cJSON_IsNull(j))
    return "null";
  if (cJSON_IsBool(j))
    return "boolean";
  if (cJSON_IsNumber(j))
    return "number";
  if (cJSON_IsString(j))
    return "string";
  if (cJSON_IsArray(j))
    return "array";
  return "object";
}

/* Whether a JSON value of its kind can be a value of @p s at all. */
static int kind_fits(avro_schema_t s, const cJSON *j) {
  switch (avro_typeof(s)) {
  case AVRO_NULL: return cJSON_IsNull(j);
  case AVRO_BOOLEAN: return cJSON_IsBool(j);
  case AVRO_INT32:
  case AVRO_INT64:
  case AVRO_FLOAT:
  case AVRO_DOUBLE: return cJSON_IsNumber(j);
  case AVRO_STRING:
  case AVRO_BYTES:
  case AVRO_ENUM: return cJSON_IsString(j);
  case AVRO_RECORD:
  case AVRO_MAP: return cJSON_IsObject(j);
  case AVRO_ARRAY: return cJSON_IsArray(j);
  default: return 0;
  }
}

/* A whole number within [lo, hi] and below 2^53 in magnitude. */
static int whole(fill_t *c, const cJSON *j, int depth, double lo, double hi,
                 int64_t *out) {
  double d = j->valuedouble;

  if (!isfinite(d) || d != floor(d))
    return bad(c, CM_ERR_BAD_INPUT, depth, "expected a whole number");
  if (fabs(d) >= SAFE_INT)
    return bad(c, CM_ERR_BAD_INPUT, depth,
               "a whole number of 2^53 or more cannot be carried exactly "
               "(JSON numbers are read as doubles)");
  if (d < lo || d > hi)
    return bad(c, CM_ERR_BAD_INPUT, depth, "out of the range of an Avro int");
  *out = (int64_t)d;
  return CM_OK;
}

static int fill(fill_t *c, avro_value_t *v, avro_schema_t s, const cJSON *j,
                int depth);

/* The index of the null branch of a union, or -1. */
static int null_branch(avro_schema_t s) {
  size_t i, n;

  s = resolve(s);
  if (avro_typeof(s) != AVRO_UNION)
    return -1;
  n = avro_schema_union_size(s);
  for (i = 0; i < n; i++)
    if (avro_typeof(resolve(avro_schema_union_branch(s, (int)i))) == AVRO_NULL)
      return (int)i;
  return -1;
}

/* A field the document lacks: null, its default, or an error. */
static int fill_missing(fill_t *c, avro_value_t *fv, avro_schema_t rec,
                        const char *name, avro_schema_t fs, int depth) {
  int nb = null_branch(fs);
  const cJSON *def;
  avro_value_t b;

  if (nb >= 0)
    return avro_value_set_branch(fv, nb, &b) != 0 || avro_value_set_null(&b)
               ? avro_failed(c, depth)
               : CM_OK;
  def = field_default(c->o, rec, name);
  if (def != NULL)
    return fill(c, fv, fs, def, depth);
  return bad(c, CM_ERR_BAD_INPUT, depth,
             "missing, and the field has no default");
}

static int fill_record(fill_t *c, avro_value_t *v, avro_schema_t s,
                       const cJSON *j, int depth) {
  size_t i, n = avro_schema_record_size(s), mark;
  const cJSON *m;
  avro_value_t fv;
  int rc;

  cJSON_ArrayForEach(m, j) {
    if (m->string == NULL ||
        avro_schema_record_field_get_index(s, m->string) < 0) {
      mark = push(c, ".%s", m->string != NULL ? m->string : "?");
      rc = bad(c, CM_ERR_BAD_INPUT, depth + 1, "no such field in record %s",
               avro_schema_name(s));
      pop(c, mark);
      return rc;
    }
  }
  for (i = 0; i < n; i++) {
    const char *name = avro_schema_record_field_name(s, (int)i);
    avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);

    m = cJSON_GetObjectItemCaseSensitive(j, name);
    mark = push(c, ".%s", name);
    if (avro_value_get_by_index(v, i, &fv, NULL) != 0)
      rc = avro_failed(c, depth + 1);
    else if (m == NULL)
      rc = fill_missing(c, &fv, s, name, fs, depth + 1);
    else
      rc = fill(c, &fv, fs, m, depth + 1);
    pop(c, mark);
    if (rc != CM_OK)
      return rc;
  }
  return CM_OK;
}

static int fill_map(fill_t *c, avro_value_t *v, avro_schema_t s, const cJSON *j,
                    int depth) {
  avro_schema_t vs = avro_schema_map_values(s);
  const cJSON *m;
  avro_value_t ev;
  size_t mark;
  int rc, is_new = 0;

  cJSON_ArrayForEach(m, j) {
    mark = push(c, "[\"%s\"]", m->string != NULL ? m->string : "");
    if (m->string == NULL || avro_value_add(v, m->string, &ev, NULL, &is_new))
      rc = avro_failed(c, depth + 1);
    else if (!is_new)
      rc = bad(c, CM_ERR_BAD_INPUT, depth + 1, "a key given twice");
    else
      rc = fill(c, &ev, vs, m, depth + 1);
    pop(c, mark);
    if (rc != CM_OK)
      return rc;
  }
  return CM_OK;
}

static int fill_array(fill_t *c, avro_value_t *v, avro_schema_t s,
                      const cJSON *j, int depth) {
  avro_schema_t is = avro_schema_array_items(s);
  const cJSON *m;
  avro_value_t ev;
  size_t mark;
  int rc, k = 0;

  cJSON_ArrayForEach(m, j) {
    mark = push(c, "[%d]", k++);
    rc = avro_value_append(v, &ev, NULL) != 0 ? avro_failed(c, depth + 1)
                                              : fill(c, &ev, is, m, depth + 1);
    pop(c, mark);
    if (rc != CM_OK)
      return rc;
  }
  return CM_OK;
}

/* The first branch, in schema order, that takes the whole value. Of the
 * branches that failed, the reason of the one that got deepest is kept. */
static int fill_union(fill_t *c, avro_value_t *v, avro_schema_t s,
                      const cJSON *j, int depth) {
  size_t i, n = avro_schema_union_size(s);
  char best[ERR_LEN];
  int rc, best_depth = -1;
  avro_value_t bv;

  for (i = 0; i < n; i++) {
    avro_schema_t b = resolve(avro_schema_union_branch(s, (int)i));

    if (b == NULL || !kind_fits(b, j))
      continue;
    if (avro_value_set_branch(v, (int)i, &bv) != 0)
      return avro_failed(c, depth);
    rc = fill(c, &bv, b, j, depth + 1);
    if (rc != CM_ERR_BAD_INPUT)
      return rc;
    if (c->fail_depth > best_depth) {
      best_depth = c->fail_depth;
      memcpy(best, c->err, sizeof(best));
    }
  }
  if (best_depth < 0)
    return bad(c, CM_ERR_BAD_INPUT, depth,
               "a JSON %s fits no branch of the union", json_kind(j));
  memcpy(c->err, best, sizeof(c->err));
  c->fail_depth = best_depth;
  return CM_ERR_BAD_INPUT;
}

static int fill_scalar(fill_t *c, avro_value_t *v, avro_schema_t s,
                       const cJSON *j, int depth) {
  int64_t i = 0;
  int rc, sym;

  switch (avro_typeof(s)) {
  case AVRO_NULL: rc = avro_value_set_null(v); break;
  case AVRO_BOOLEAN: rc = avro_value_set_boolean(v, cJSON_IsTrue(j)); break;
  case AVRO_INT32:
    if (whole(c, j, depth, INT32_MIN, INT32_MAX, &i) != CM_OK)
      return CM_ERR_BAD_INPUT;
    rc = avro_value_set_int(v, (int32_t)i);
    break;
  case AVRO_INT64:
    if (whole(c, j, depth, -SAFE_INT, SAFE_INT, &i) != CM_OK)
      return CM_ERR_BAD_INPUT;
    rc = avro_value_set_long(v, i);
    break;
  case AVRO_FLOAT: rc = avro_value_set_float(v, (float)j->valuedouble); break;
  case AVRO_DOUBLE: rc = avro_value_set_double(v, j->valuedouble); break;
  case AVRO_STRING:
    rc = avro_value_set_string_len(v, j->valuestring,
                                   strlen(j->valuestring) + 1);
    break;
  case AVRO_BYTES:
    rc = avro_value_set_bytes(v, j->valuestring, strlen(j->valuestring));
    break;
  case AVRO_ENUM:
    sym = avro_schema_enum_get_by_name(s, j->valuestring);
    if (sym < 0)
      return bad(c, CM_ERR_BAD_INPUT, depth, "not a symbol of enum %s",
                 avro_schema_name(s));
    rc = avro_value_set_enum(v, sym);
    break;
  default:
    return bad(c, CM_ERR_BAD_INPUT, depth, "Avro type %s is not supported",
               avro_schema_type_name(s));
  }
  return rc != 0 ? avro_failed(c, depth) : CM_OK;
}

static int fill(fill_t *c, avro_value_t *v, avro_schema_t s, const cJSON *j,
                int depth) {
  s = resolve(s);
  if (depth > MAX_DEPTH || s == NULL)
    return bad(c, CM_ERR_BAD_INPUT, depth, "nested too deeply");
  if (avro_typeof(s) == AVRO_UNION)
    return fill_union(c, v, s, j, depth);
  if (!kind_fits(s, j))
    return bad(c, CM_ERR_BAD_INPUT, depth, "a JSON %s where the schema has %s",
               json_kind(j), avro_schema_type_name(s));
  switch (avro_typeof(s)) {
  case AVRO_RECORD: return fill_record(c, v, s, j, depth);
  case AVRO_MAP: return fill_map(c, v, s, j, depth);
  case AVRO_ARRAY: return fill_array(c, v, s, j, depth);
  default: return fill_scalar(c, v, s, j, depth);
  }
}

/* Registers the schema unless it is already. */
static int ensure_id(cm_avro_out_t *o, char *errstr, size_t errstr_size) {
  int rc;

  if (o->registered)
    return CM_OK;
  rc = cm_schemas_register(o->s, o->subject, o->text, &o->id, errstr,
                           errstr_size);
  o->registered = rc == CM_OK;
  return rc;
}

int cm_avro_out_encode_value(cm_avro_out_t *o, avro_value_t *v, void **out,
                             size_t *out_len, char *errstr,
                             size_t errstr_size) {
  avro_writer_t w;
  unsigned char *buf;
  size_t size = 0;
  int rc;

  if (avro_value_sizeof(v, &size) != 0)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "subject %s: the value cannot be written: %s", o->subject,
                   avro_strerror());
  buf = malloc(size + 5);
  if (buf == NULL)
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  w = avro_writer_memory((const char *)buf + 5, (int64_t)size);
  rc = w != NULL && avro_value_write(w, v) == 0 &&
       avro_writer_tell(w) == (int64_t)size;
  if (w != NULL)
    avro_writer_free(w);
  if (!rc) {
    free(buf);
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "subject %s: the value cannot be written: %s", o->subject,
                   avro_strerror());
  }
  rc = ensure_id(o, errstr, errstr_size);
  if (rc != CM_OK) {
    free(buf);
    return rc;
  }
  buf[0] = 0;
  buf[1] = (unsigned char)((uint32_t)o->id >> 24);
  buf[2] = (unsigned char)((uint32_t)o->id >> 16);
  buf[3] = (unsigned char)((uint32_t)o->id >> 8);
  buf[4] = (unsigned char)o->id;
  *out = buf;
  *out_len = size + 5;
  return CM_OK;
}

int cm_avro_out_encode_json(cm_avro_out_t *o, const char *json, size_t len,
                            void **out, size_t *out_len, char *errstr,
                            size_t errstr_size) {
  cJSON *doc = cJSON_ParseWithLength(json, len);
  avro_value_t v;
  fill_t c;
  int rc;

  if (doc == NULL)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "subject %s: not a JSON document", o->subject);
  if (avro_generic_value_new(o->iface, &v) != 0) {
    cJSON_Delete(doc);
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  }
  memset(&c, 0, sizeof(c));
  c.o = o;
  c.path[0] = '$';
  c.plen = 1;
  rc = fill(&c, &v, o->schema, doc, 0);
  cJSON_Delete(doc);
  if (rc != CM_OK)
    cm_fail(errstr, errstr_size, rc, "subject %s: %s", o->subject, c.err);
  else
    rc = cm_avro_out_encode_value(o, &v, out, out_len, errstr, errstr_size);
  avro_value_decref(&v);
  return rc;
}

/* ---- the reader -------------------------------------------------------- */

/* The bytes left, and the JSON being printed. */
typedef struct rd_s {
  const unsigned char *p;
  size_t n;
  cm_text_t *t;
  const char *why; /* a reason more precise than "malformed", or NULL */
} rd_t;

static int take(rd_t *r, size_t n, const unsigned char **p) {
  if (n > r->n)
    return -1;
  *p = r->p;
  r->p += n;
  r->n -= n;
  return 0;
}

/* A zig-zag varint of at most 10 bytes. */
static int rd_long(rd_t *r, int64_t *out) {
  uint64_t u = 0;
  unsigned char b;
  int shift = 0;

  do {
    if (r->n == 0 || shift > 63)
      return -1;
    b = *r->p++;
    r->n--;
    u |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
  return 0;
}

/* A length the bytes left can hold. */
static int rd_len(rd_t *r, size_t *len) {
  int64_t v;

  if (rd_long(r, &v) != 0 || v < 0 || (uint64_t)v > r->n)
    return -1;
  *len = (size_t)v;
  return 0;
}

/* 1 if @p s (@p n bytes) is well-formed UTF-8. */
static int utf8_ok(const unsigned char *s, size_t n) {
  size_t i = 0, k, len;
  uint32_t cp;

  while (i < n) {
    unsigned char c = s[i];

    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf)
      len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
      len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
      len = 4, cp = c & 0x07;
    else
      return 0;
    if (i + len > n)
      return 0;
    for (k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
      return 0;
    i += len;
  }
  return 1;
}

/* @p n bytes as a JSON string; bytes from 0x80 up as \u00XX when @p raw
 * (Avro bytes and fixed), else passed on (UTF-8 text). */
static void json_string(cm_text_t *t, const unsigned char *s, size_t n,
                        int raw) {
  static const char hex[] = "0123456789abcdef";
  char esc[7] = "\\u00";
  size_t i, run = 0;

  cm_text_add(t, "\"", 1);
  for (i = 0; i < n; i++) {
    unsigned char c = s[i];

    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f && !(raw && c >= 0x80))
      continue;
    cm_text_add(t, (const char *)s + run, i - run);
    run = i + 1;
    if (c == '"' || c == '\\') {
      cm_text_add(t, "\\", 1);
      cm_text_add(t, (const char *)&s[i], 1);
      continue;
    }
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 15];
    cm_text_add(t, esc, 6);
  }
  cm_text_add(t, (const char *)s + run, n - run);
  cm_text_add(t, "\"", 1);
}

/* The shortest of %.15g .. %.17g that reads back as @p d; null if not
 * finite (JSON has no such number). */
static void json_double(cm_text_t *t, double d, int is_float) {
  char buf[40];
  int prec;

  if (!isfinite(d)) {
    cm_text_str(t, "null");
    return;
  }
  for (prec = is_float ? 6 : 15; prec < 17; prec++) {
    snprintf(buf, sizeof(buf), "%.*g", prec, d);
    if (is_float ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
      break;
  }
  snprintf(buf, sizeof(buf), "%.*g", prec, d);
  cm_text_str(t, buf);
}

static uint64_t le_bytes(const unsigned char *p, int n) {
  uint64_t u = 0;
  int i;

  for (i = n - 1; i >= 0; i--)
    u = (u << 8) | p[i];
  return u;
}

static int read_value(rd_t *r, avro_schema_t s, int depth);

/* The blocks of an array or map, as JSON. */
static int read_blocks(rd_t *r, avro_schema_t item, int is_map, int depth) {
  const unsigned char *key;
  int64_t cnt, bytes, k;
  size_t len;
  int first = 1;

  cm_text_add(r->t, is_map ? "{" : "[", 1);
  for (;;) {
    if (rd_long(r, &cnt) != 0)
      return -1;
    if (cnt == 0)
      break;
    if (cnt < 0 && (cnt == INT64_MIN || rd_long(r, &bytes) != 0))
      return -1;
    cnt = cnt < 0 ? -cnt : cnt;
    if ((uint64_t)cnt > r->n)
      return -1; /* see NOTES */
    for (k = 0; k < cnt; k++) {
      if (!first)
        cm_text_add(r->t, ",", 1);
      first = 0;
      if (is_map) {
        if (rd_len(r, &len) != 0 || take(r, len, &key) != 0)
          return -1;
        if (!utf8_ok(key, len)) {
          r->why = "a map key is not valid UTF-8";
          return -1;
        }
        json_string(r->t, key, len, 0);
        cm_text_add(r->t, ":", 1);
      }
      if (read_value(r, item, depth + 1) != 0)
        return -1;
    }
  }
  cm_text_add(r->t, is_map ? "}" : "]", 1);
  return 0;
}

static int read_record(rd_t *r, avro_schema_t s, int depth) {
  size_t i, n = avro_schema_record_size(s);

  cm_text_add(r->t, "{", 1);
  for (i = 0; i < n; i++) {
    if (i)
      cm_text_add(r->t, ",", 1);
    cm_text_json(r->t, avro_schema_record_field_name(s, (int)i));
    cm_text_add(r->t, ":", 1);
    if (read_value(r, avro_schema_record_field_get_by_index(s, (int)i),
                   depth + 1) != 0)
      return -1;
  }
  cm_text_add(r->t, "}", 1);
  return 0;
}

static int read_text(rd_t *r, int raw) {
  const unsigned char *p;
  size_t len;

  if (rd_len(r, &len) != 0 || take(r, len, &p) != 0)
    return -1;
  if (!raw && !utf8_ok(p, len)) {
    r->why = "a string is not valid UTF-8";
    return -1;
  }
  json_string(r->t, p, len, raw);
  return 0;
}

static int read_scalar(rd_t *r, avro_schema_t s) {
  const unsigned char *p;
  uint64_t u;
  int64_t v;
  float f;
  double d;

  switch (avro_typeof(s)) {
  case AVRO_NULL: cm_text_str(r->t, "null"); return 0;
  case AVRO_BOOLEAN:
    if (take(r, 1, &p) != 0 || *p > 1)
      return -1;
    cm_text_str(r->t, *p ? "true" : "false");
    return 0;
  case AVRO_INT32:
  case AVRO_INT64:
    if (rd_long(r, &v) != 0 ||
        (avro_typeof(s) == AVRO_INT32 && (v < INT32_MIN || v > INT32_MAX)))
      return -1;
    cm_text_i64(r->t, v);
    return 0;
  case AVRO_FLOAT:
    if (take(r, 4, &p) != 0)
      return -1;
    u = le_bytes(p, 4);
    {
      uint32_t u32 = (uint32_t)u;
      memcpy(&f, &u32, sizeof(f));
    }
    json_double(r->t, (double)f, 1);
    return 0;
  case AVRO_DOUBLE:
    if (take(r, 8, &p) != 0)
      return -1;
    u = le_bytes(p, 8);
    memcpy(&d, &u, sizeof(d));
    json_double(r->t, d, 0);
    return 0;
  case AVRO_STRING: return read_text(r, 0);
  case AVRO_BYTES: return read_text(r, 1);
  case AVRO_FIXED:
    if (avro_schema_fixed_size(s) < 0 ||
        take(r, (size_t)avro_schema_fixed_size(s), &p) != 0)
      return -1;
    json_string(r->t, p, (size_t)avro_schema_fixed_size(s), 1);
    return 0;
  case AVRO_ENUM:
    if (rd_long(r, &v) != 0 || v < 0 ||
        v >= avro_schema_enum_number_of_symbols(s) ||
        avro_schema_enum_get(s, (int)v) == NULL)
      return -1;
    cm_text_json(r->t, avro_schema_enum_get(s, (int)v));
    return 0;
  default: return -1;
  }
}

static int read_value(rd_t *r, avro_schema_t s, int depth) {
  int64_t v;

  s = resolve(s);
  if (depth > MAX_DEPTH || s == NULL)
    return -1;
  switch (avro_typeof(s)) {
  case AVRO_UNION:
    if (rd_long(r, &v) != 0 || v < 0 ||
        (uint64_t)v >= (uint64_t)avro_schema_union_size(s))
      return -1;
    return read_value(r, avro_schema_union_branch(s, (int)v), depth + 1);
  case AVRO_RECORD: return read_record(r, s, depth);
  case AVRO_ARRAY: return read_blocks(r, avro_schema_array_items(s), 0, depth);
  case AVRO_MAP: return read_blocks(r, avro_schema_map_values(s), 1, depth);
  default: return read_scalar(r, s);
  }
}

int cm_avro_wire_to_json(cm_schemas_t *s, const void *buf, size_t len,
                         char **json, char *errstr, size_t errstr_size) {
  const unsigned char *p = buf;
  const cm_schema_t *sch;
  cm_text_t t;
  rd_t r;
  int32_t id;
  int rc;

  if (len < 5 || p[0] != 0)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "not in Confluent's wire format (byte 0 and a 4-byte schema "
                   "id first)");
  id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                 ((uint32_t)p[3] << 8) | (uint32_t)p[4]);
  if (s == NULL)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "Avro message (schema id %" PRId32
                   ") but no schema registry "
                   "or directory is configured",
                   id);
  rc = cm_schemas_get(s, id, &sch, errstr, errstr_size);
  if (rc != CM_OK)
    return rc;
  cm_text_init(&t, JSON_MAX);
  r.p = p + 5;
  r.n = len - 5;
  r.t = &t;
  r.why = NULL;
  rc = read_value(&r, cm_schema_avro(sch), 0);
  if (rc == 0 && r.n != 0) {
    cm_text_free(&t);
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32
                   ": %zu trailing bytes after the Avro data",
                   id, r.n);
  }
  if (rc != 0) {
    cm_text_free(&t);
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32 ": %s", id,
                   r.why != NULL ? r.why
                                 : "Avro data does not match its writer schema "
                                   "(truncated or malformed)");
  }
  *json = cm_text_take(&t, &len);
  cm_text_free(&t);
  if (*json == NULL)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32
                   ": the message does not fit in %zu bytes "
                   "of JSON (or memory ran out)",
                   id, JSON_MAX);
  return CM_OK;
}
