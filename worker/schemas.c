/*
 * schemas.c — Avro writer schemas by id, from a registry or a directory.
 *
 * NOTES
 * The registry speaks Confluent's REST API: GET {url}/schemas/ids/{id}
 * answers {"schema": "<the schema as JSON text>"}; a writer registers its
 * schema with POST {url}/subjects/{subject}/versions and is answered
 * {"id": N} (docs/observability.md, "Avro"). One curl handle is kept
 * and reused (its connection too); answers are read into a buffer with a
 * hard limit. Avro C keeps neither `connect.name` nor `logicalType`, so the
 * schema text is also read with cJSON once, and each field's semantic type
 * is kept beside the parsed schema (docs/design.md §1.2).
 */
#include "clinicmig/cm_schemas.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "clinicmig/cm_err.h"

/* Largest schema (file or registry answer) accepted, in bytes. */
#define SCHEMA_MAX_BYTES (1024 * 1024)

typedef struct sem_s {
  char *field;
  char *name;
} sem_t;

struct cm_schema_s {
  int32_t id;
  avro_schema_t avro;
  sem_t *sems;
  int n_sems;
};

/* A schema registered under a subject, and the id the registry gave. */
typedef struct reg_s {
  char *subject;
  char *text;
  int32_t id;
} reg_t;

struct cm_schemas_s {
  char *url;
  char *auth;
  char *ca;
  char *dir;
  long timeout_ms;
  CURL *curl;
  cm_schema_t **cache;
  int n_cache;
  reg_t *regs;
  int n_regs;
};

/* A bounded buffer for an answer; a failed append frees it. */
typedef struct buf_s {
  char *p;
  size_t len;
  int over;
} buf_t;

static char *dup_or_null(const char *s) {
  return (s != NULL && s[0] != '\0') ? strdup(s) : NULL;
}

cm_schemas_t *cm_schemas_new(const cm_schemas_conf_t *conf, char *errstr,
                             size_t errstr_size) {
  cm_schemas_t *s = calloc(1, sizeof(*s));

  if (s == NULL) {
    cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
    return NULL;
  }
  s->url = dup_or_null(conf->registry_url);
  s->auth = dup_or_null(conf->basic_auth);
  s->ca = dup_or_null(conf->ca_location);
  s->dir = dup_or_null(conf->dir);
  s->timeout_ms = conf->timeout_ms > 0 ? conf->timeout_ms : 5000;
  if (s->url == NULL && s->dir == NULL) {
    cm_fail(errstr, errstr_size, CM_ERR_CONFIG,
            "neither a schema registry nor a schema directory is set");
    cm_schemas_destroy(s);
    return NULL;
  }
  if (s->url != NULL) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s->curl = curl_easy_init();
    if (s->curl == NULL) {
      cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "cannot start libcurl");
      cm_schemas_destroy(s);
      return NULL;
    }
  }
  return s;
}

static void schema_free(cm_schema_t *sch) {
  int i;

  if (sch == NULL)
    return;
  if (sch->avro != NULL)
    avro_schema_decref(sch->avro);
  for (i = 0; i < sch->n_sems; i++) {
    free(sch->sems[i].field);
    free(sch->sems[i].name);
  }
  free(sch->sems);
  free(sch);
}

void cm_schemas_destroy(cm_schemas_t *s) {
  int i;

  if (s == NULL)
    return;
  if (s->curl != NULL) {
    curl_easy_cleanup(s->curl);
    curl_global_cleanup();
  }
  for (i = 0; i < s->n_cache; i++)
    schema_free(s->cache[i]);
  free(s->cache);
  for (i = 0; i < s->n_regs; i++) {
    free(s->regs[i].subject);
    free(s->regs[i].text);
  }
  free(s->regs);
  free(s->url);
  free(s->auth);
  free(s->ca);
  free(s->dir);
  free(s);
}

/* ---- semantic types ---------------------------------------------------- */

/* connect.name, else logicalType, of a field's type (through a union). */
static const char *type_semantic(const cJSON *type) {
  const cJSON *t, *n;

  if (cJSON_IsArray(type)) {
    cJSON_ArrayForEach(t, type) {
      if (cJSON_IsObject(t))
        return type_semantic(t);
    }
    return NULL;
  }
  if (!cJSON_IsObject(type))
    return NULL;
  n = cJSON_GetObjectItemCaseSensitive(type, "connect.name");
  if (!cJSON_IsString(n))
    n = cJSON_GetObjectItemCaseSensitive(type, "logicalType");
  return cJSON_IsString(n) ? n->valuestring : NULL;
}

static int sem_add(cm_schema_t *sch, const char *field, const char *name) {
  sem_t *v;
  int i;

  for (i = 0; i < sch->n_sems; i++)
    if (strcmp(sch->sems[i].field, field) == 0)
      return CM_OK; /* the first one holds */
  v = realloc(sch->sems, sizeof(*v) * (size_t)(sch->n_sems + 1));
  if (v == NULL)
    return CM_ERR_NOMEM;
  sch->sems = v;
  v[sch->n_sems].field = strdup(field);
  v[sch->n_sems].name = strdup(name);
  if (v[sch->n_sems].field == NULL || v[sch->n_sems].name == NULL) {
    free(v[sch->n_sems].field);
    free(v[sch->n_sems].name);
    return CM_ERR_NOMEM;
  }
  sch->n_sems++;
  return CM_OK;
}

/* Collects the semantic type of every record field, in document order. */
static int collect_sems(cm_schema_t *sch, const cJSON *node, int depth) {
  const cJSON *c, *name;
  const char *sem;
  int rc;

  if (depth > 32)
    return CM_OK;
  if (cJSON_IsObject(node)) {
    name = cJSON_GetObjectItemCaseSensitive(node, "name");
    sem = type_semantic(cJSON_GetObjectItemCaseSensitive(node, "type"));
    if (cJSON_IsString(name) && sem != NULL &&
        cJSON_GetObjectItemCaseSensitive(node, "fields") == NULL) {
      rc = sem_add(sch, name->valuestring, sem);
      if (rc != CM_OK)
        return rc;
    }
  }
  for (c = node != NULL ? node->child : NULL; c != NULL; c = c->next) {
    rc = collect_sems(sch, c, depth + 1);
    if (rc != CM_OK)
      return rc;
  }
  return CM_OK;
}

const char *cm_schema_semantic(const cm_schema_t *sch, const char *field) {
  int i;

  for (i = 0; i < sch->n_sems; i++)
    if (strcmp(sch->sems[i].field, field) == 0)
      return sch->sems[i].name;
  return NULL;
}

avro_schema_t cm_schema_avro(const cm_schema_t *sch) {
  return sch->avro;
}

/* Parses schema text into a new cache entry. */
static int schema_parse(int32_t id, const char *text, size_t len,
                        cm_schema_t **out, char *errstr, size_t errstr_size) {
  cm_schema_t *sch = calloc(1, sizeof(*sch));
  cJSON *doc;
  int rc;

  if (sch == NULL)
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  sch->id = id;
  if (avro_schema_from_json_length(text, len, &sch->avro) != 0) {
    sch->avro = NULL;
    schema_free(sch);
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32 ": not a valid Avro schema", id);
  }
  doc = cJSON_ParseWithLength(text, len);
  rc = collect_sems(sch, doc, 0);
  cJSON_Delete(doc);
  if (rc != CM_OK) {
    schema_free(sch);
    return cm_fail(errstr, errstr_size, rc, "out of memory");
  }
  *out = sch;
  return CM_OK;
}

/* ---- sources ----------------------------------------------------------- */

/* Reads <dir>/<id>.avsc; CM_ERR_BAD_INPUT with *missing = 1 if absent. */
static int dir_read(cm_schemas_t *s, int32_t id, buf_t *b, int *missing,
                    char *errstr, size_t errstr_size) {
  char path[4096];
  FILE *f;
  long n;

  snprintf(path, sizeof(path), "%s/%" PRId32 ".avsc", s->dir, id);
  f = fopen(path, "rb");
  if (f == NULL) {
    *missing = errno == ENOENT;
    if (*missing)
      return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                     "schema id %" PRId32 ": no %" PRId32
                     ".avsc in the schema directory",
                     id, id);
    return cm_fail(errstr, errstr_size, CM_ERR_RETRY,
                   "schema id %" PRId32 ": cannot read %s: %s", id, path,
                   strerror(errno));
  }
  n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (n < 0 || n > SCHEMA_MAX_BYTES || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32 ": %s is unreadable or over %d bytes",
                   id, path, SCHEMA_MAX_BYTES);
  }
  b->p = malloc((size_t)n + 1);
  if (b->p == NULL) {
    fclose(f);
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  }
  b->len = fread(b->p, 1, (size_t)n, f);
  b->p[b->len] = '\0';
  fclose(f);
  return CM_OK;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg) {
  buf_t *b = arg;
  size_t n = size * nmemb;
  char *p;

  if (b->over || b->len + n > SCHEMA_MAX_BYTES) {
    b->over = 1;
    return 0;
  }
  p = realloc(b->p, b->len + n + 1);
  if (p == NULL) {
    free(b->p);
    b->p = NULL;
    b->over = 1;
    return 0;
  }
  b->p = p;
  memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
  return n;
}

static void http_setup(cm_schemas_t *s, const char *url, buf_t *b) {
  CURL *c = s->curl;

  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (s->auth != NULL) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERPWD, s->auth);
  }
  if (s->ca != NULL)
    curl_easy_setopt(c, CURLOPT_CAINFO, s->ca);
}

/* GET {url}/schemas/ids/{id}; the "schema" member of the answer in @p b. */
static int http_get(cm_schemas_t *s, int32_t id, buf_t *b, char *errstr,
                    size_t errstr_size) {
  char url[4096];
  CURLcode cc;
  long status = 0;

  snprintf(url, sizeof(url), "%s%sschemas/ids/%" PRId32, s->url,
           s->url[strlen(s->url) - 1] == '/' ? "" : "/", id);
  http_setup(s, url, b);
  cc = curl_easy_perform(s->curl);
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  if (cc != CURLE_OK && !b->over)
    return cm_fail(errstr, errstr_size, CM_ERR_RETRY, "schema registry: %s",
                   curl_easy_strerror(cc));
  if (b->over)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32 ": answer over %d bytes", id,
                   SCHEMA_MAX_BYTES);
  if (status == 404)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32 ": not found in the registry", id);
  if (status != 200)
    return cm_fail(errstr, errstr_size, CM_ERR_RETRY,
                   "schema registry: HTTP status %ld for schema id %" PRId32,
                   status, id);
  return CM_OK;
}

/* Fetches the schema text of @p id from the registry into @p b. */
static int registry_read(cm_schemas_t *s, int32_t id, buf_t *b, char *errstr,
                         size_t errstr_size) {
  cJSON *doc, *text;
  int rc = http_get(s, id, b, errstr, errstr_size);

  if (rc != CM_OK)
    return rc;
  doc = cJSON_ParseWithLength(b->p != NULL ? b->p : "", b->len);
  text = cJSON_GetObjectItemCaseSensitive(doc, "schema");
  if (!cJSON_IsString(text)) {
    cJSON_Delete(doc);
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32 ": the registry's answer has no schema",
                   id);
  }
  free(b->p);
  b->p = strdup(text->valuestring);
  b->len = b->p != NULL ? strlen(b->p) : 0;
  cJSON_Delete(doc);
  return b->p != NULL
             ? CM_OK
             : cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
}

static int cache_add(cm_schemas_t *s, cm_schema_t *sch) {
  cm_schema_t **c;

  c = realloc(s->cache, sizeof(*c) * (size_t)(s->n_cache + 1));
  if (c == NULL)
    return CM_ERR_NOMEM;
  s->cache = c;
  c[s->n_cache++] = sch;
  return CM_OK;
}

/* The text of @p id: the directory first, then the registry. */
static int fetch_text(cm_schemas_t *s, int32_t id, buf_t *b, char *errstr,
                      size_t errstr_size) {
  int missing = 0, rc = CM_ERR_BAD_INPUT;

  if (s->dir != NULL) {
    rc = dir_read(s, id, b, &missing, errstr, errstr_size);
    if (rc == CM_OK || !missing || s->url == NULL)
      return rc;
  }
  return registry_read(s, id, b, errstr, errstr_size);
}

int cm_schemas_get(cm_schemas_t *s, int32_t id, const cm_schema_t **out,
                   char *errstr, size_t errstr_size) {
  buf_t b = {NULL, 0, 0};
  cm_schema_t *sch = NULL;
  int i, rc;

  for (i = 0; i < s->n_cache; i++) {
    if (s->cache[i]->id == id) {
      *out = s->cache[i];
      return CM_OK;
    }
  }
  if (id < 0)
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema id %" PRId32 ": negative", id);
  rc = fetch_text(s, id, &b, errstr, errstr_size);
  if (rc == CM_OK)
    rc = schema_parse(id, b.p, b.len, &sch, errstr, errstr_size);
  free(b.p);
  if (rc != CM_OK)
    return rc;
  if (cache_add(s, sch) != CM_OK) {
    schema_free(sch);
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  }
  *out = sch;
  return CM_OK;
}

/* ---- registration ------------------------------------------------------ */

/* The registry's "message" of an error answer, printable, or "". */
static void answer_message(const buf_t *b, char *out, size_t size) {
  cJSON *doc = cJSON_ParseWithLength(b->p != NULL ? b->p : "", b->len);
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");
  size_t i, n = 0;

  out[0] = '\0';
  for (i = 0; cJSON_IsString(m) && m->valuestring[i] && n + 1 < size; i++)
    out[n++] =
        (unsigned char)m->valuestring[i] < 0x20 ? ' ' : m->valuestring[i];
  out[n] = '\0';
  cJSON_Delete(doc);
}

/* POST {url}/subjects/{subject}/versions with @p body; the answer in @p b,
 * the HTTP status in @p status. */
static int http_post(cm_schemas_t *s, const char *subject, const char *body,
                     buf_t *b, long *status, char *errstr, size_t errstr_size) {
  struct curl_slist *hdr = NULL, *h;
  char url[4096], *esc;
  CURLcode cc;

  esc = curl_easy_escape(s->curl, subject, 0);
  if (esc == NULL)
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  snprintf(url, sizeof(url), "%s%ssubjects/%s/versions", s->url,
           s->url[strlen(s->url) - 1] == '/' ? "" : "/", esc);
  curl_free(esc);
  http_setup(s, url, b);
  hdr = curl_slist_append(
      NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
  h = hdr != NULL ? curl_slist_append(
                        hdr, "Accept: application/vnd.schemaregistry.v1+json")
                  : NULL;
  if (h == NULL) {
    curl_slist_free_all(hdr);
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  }
  curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   (curl_off_t)strlen(body));
  cc = curl_easy_perform(s->curl);
  *status = 0;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, status);
  curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hdr);
  if (cc != CURLE_OK && !b->over)
    return cm_fail(errstr, errstr_size, CM_ERR_RETRY, "schema registry: %s",
                   curl_easy_strerror(cc));
  if (b->over)
    return cm_fail(errstr, errstr_size, CM_ERR_RETRY,
                   "schema registry: answer over %d bytes registering subject "
                   "%s",
                   SCHEMA_MAX_BYTES, subject);
  return CM_OK;
}

/* Sorts the answer to a registration: the id, or who is at fault. */
static int register_answer(const buf_t *b, long status, const char *subject,
                           int32_t *id, char *errstr, size_t errstr_size) {
  char msg[512];
  cJSON *doc;
  const cJSON *n;
  double v;

  if (status == 409 || status == 422 || status == 400 || status == 404) {
    answer_message(b, msg, sizeof(msg));
    return cm_fail(errstr, errstr_size, CM_ERR_BAD_INPUT,
                   "schema registry refused the schema of subject %s (HTTP "
                   "%ld)%s%s",
                   subject, status, msg[0] ? ": " : "", msg);
  }
  if (status != 200)
    return cm_fail(errstr, errstr_size, CM_ERR_RETRY,
                   "schema registry: HTTP status %ld registering subject %s",
                   status, subject);
  doc = cJSON_ParseWithLength(b->p != NULL ? b->p : "", b->len);
  n = cJSON_GetObjectItemCaseSensitive(doc, "id");
  v = cJSON_IsNumber(n) ? n->valuedouble : -1;
  cJSON_Delete(doc);
  if (v < 0 || v > INT32_MAX || v != (double)(int32_t)v)
    return cm_fail(errstr, errstr_size, CM_ERR_RETRY,
                   "schema registry: the answer registering subject %s has no "
                   "id",
                   subject);
  *id = (int32_t)v;
  return CM_OK;
}

/* Remembers a registration; the schema goes into the cache by id too. */
static int remember(cm_schemas_t *s, const char *subject, const char *text,
                    int32_t id) {
  cm_schema_t *sch = NULL;
  char ignored[64];
  reg_t *r;
  int i;

  r = realloc(s->regs, sizeof(*r) * (size_t)(s->n_regs + 1));
  if (r == NULL)
    return CM_ERR_NOMEM;
  s->regs = r;
  r[s->n_regs].subject = strdup(subject);
  r[s->n_regs].text = strdup(text);
  r[s->n_regs].id = id;
  if (r[s->n_regs].subject == NULL || r[s->n_regs].text == NULL) {
    free(r[s->n_regs].subject);
    free(r[s->n_regs].text);
    return CM_ERR_NOMEM;
  }
  s->n_regs++;
  for (i = 0; i < s->n_cache; i++)
    if (s->cache[i]->id == id)
      return CM_OK;
  if (schema_parse(id, text, strlen(text), &sch, ignored, sizeof(ignored)) ==
          CM_OK &&
      cache_add(s, sch) != CM_OK)
    schema_free(sch);
  return CM_OK;
}

int cm_schemas_register(cm_schemas_t *s, const char *subject,
                        const char *schema_json, int32_t *id, char *errstr,
                        size_t errstr_size) {
  buf_t b = {NULL, 0, 0};
  cJSON *doc;
  char *body;
  long status = 0;
  int i, rc;

  for (i = 0; i < s->n_regs; i++) {
    if (strcmp(s->regs[i].subject, subject) == 0 &&
        strcmp(s->regs[i].text, schema_json) == 0) {
      *id = s->regs[i].id;
      return CM_OK;
    }
  }
  if (s->url == NULL)
    return cm_fail(errstr, errstr_size, CM_ERR_CONFIG,
                   "subject %s: registering a schema needs a schema registry "
                   "URL (a schema directory alone cannot register)",
                   subject);
  doc = cJSON_CreateObject();
  body = doc != NULL && cJSON_AddStringToObject(doc, "schema", schema_json)
             ? cJSON_PrintUnformatted(doc)
             : NULL;
  cJSON_Delete(doc);
  if (body == NULL)
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  rc = http_post(s, subject, body, &b, &status, errstr, errstr_size);
  cJSON_free(body);
  if (rc == CM_OK)
    rc = register_answer(&b, status, subject, id, errstr, errstr_size);
  free(b.p);
  if (rc == CM_OK && remember(s, subject, schema_json, *id) != CM_OK)
    return cm_fail(errstr, errstr_size, CM_ERR_NOMEM, "out of memory");
  return rc;
}
