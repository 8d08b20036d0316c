/* dynamodb.c: the DynamoDB JSON-protocol client (see dynamodb.h).
 *
 * Why a pool of connections rather than one per call: handing the same few
 * back and forth keeps TLS sessions and TCP connections alive between calls
 * without sharing one between threads. Each is a libcurl handle that only
 * connected (http1_client.h): the request and its answer go over it without
 * curl_easy_perform, whose per-transfer work was half of this client's CPU. */
#include "dynamodb.h"
#include "sigv4.h"
#include "../kernel/buf.h"
#include "../transport/http1_client.h"

#include <curl/curl.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define POOL_MAX       64 /* idle connections kept: px_ddb_call_many uses one per request */
#define TARGET_PREFIX  "DynamoDB_20120810."
#define MAX_BODY       (4 * 1024 * 1024) /* request body cap (items are <= 400 KB) */
#define MAX_HEAD       16384             /* request line and headers (a session token is ~1 KB) */
#define MIN_ATTEMPT_MS 5                 /* no attempt starts with less time than this */

struct px_ddb {
    char *url;         /* full endpoint URL */
    char *host_header; /* "Host: <host[:port]>" as signed */
    char *host;        /* host[:port] */
    char *path;        /* request path, usually "/" */
    char *region, *akid, *secret, *token;
    char service[32], target_prefix[64], content_type[48], label[32], endpoint_var[48];
    char *ca_file; /* SSL_CERT_FILE at creation: the bundled libcurl's built-in CA path
                    * (Debian's) does not exist on Amazon Linux 2023 */
    long connect_timeout_ms;
    size_t max_response;
    unsigned max_attempts;
    pthread_mutex_t mu;
    struct px_h1_conn idle[POOL_MAX];
    size_t nidle;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int64_t px_ddb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- errors */

void px_ddb_error_name(const char *raw, char *out, size_t outlen)
{
    if (!outlen)
        return;
    out[0] = '\0';
    if (!raw)
        return;
    size_t n = strcspn(raw, ":");
    const char *start = raw;
    for (size_t i = 0; i < n; i++)
        if (raw[i] == '#')
            start = raw + i + 1;
    size_t len = (size_t)(raw + n - start);
    /* trim blanks a header value may carry */
    while (len && (*start == ' ' || *start == '\t')) {
        start++;
        len--;
    }
    while (len && (start[len - 1] == ' ' || start[len - 1] == '\t' || start[len - 1] == '\r' ||
                   start[len - 1] == '\n'))
        len--;
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, start, len);
    out[len] = '\0';
}

struct errmap {
    const char *type;
    px_rc rc;
    bool retry;
};

static const struct errmap errmap[] = {
    {"ConditionalCheckFailedException", PX_ERR_CONFLICT, false},
    {"TransactionConflictException", PX_ERR_CONFLICT, false},
    {"ResourceNotFoundException", PX_ERR_NOT_FOUND, false},
    {"ResourceInUseException", PX_ERR_CONFLICT, false},
    {"ValidationException", PX_ERR_INVALID, false},
    {"SerializationException", PX_ERR_INVALID, false},
    {"ItemCollectionSizeLimitExceededException", PX_ERR_TOO_LARGE, false},
    {"RequestEntityTooLarge", PX_ERR_TOO_LARGE, false},
    {"AccessDeniedException", PX_ERR_DENIED, false},
    {"UnrecognizedClientException", PX_ERR_DENIED, false},
    {"InvalidSignatureException", PX_ERR_DENIED, false},
    {"IncompleteSignatureException", PX_ERR_DENIED, false},
    {"ExpiredTokenException", PX_ERR_DENIED, false},
    {"MissingAuthenticationTokenException", PX_ERR_DENIED, false},
    {"InvalidClientTokenId", PX_ERR_DENIED, false},
    {"UnknownOperationException", PX_ERR_PROTOCOL, false},
    {"LimitExceededException", PX_ERR_UNAVAILABLE, false},
    {"ThrottlingException", PX_ERR_UNAVAILABLE, true},
    {"ProvisionedThroughputExceededException", PX_ERR_UNAVAILABLE, true},
    {"RequestLimitExceeded", PX_ERR_UNAVAILABLE, true},
    {"TransactionInProgressException", PX_ERR_UNAVAILABLE, true},
    {"InternalServerError", PX_ERR_UNAVAILABLE, true},
    {"ServiceUnavailable", PX_ERR_UNAVAILABLE, true},
    {"ServiceUnavailableException", PX_ERR_UNAVAILABLE, true},
};

px_rc px_ddb_error_rc(const char *type, long http_status, bool *retryable)
{
    bool retry = false;
    px_rc rc = PX_ERR_PROTOCOL;
    bool known = false;
    for (size_t i = 0; type && *type && i < PX_COUNTOF(errmap); i++) {
        if (strcmp(type, errmap[i].type) == 0) {
            rc = errmap[i].rc;
            retry = errmap[i].retry;
            known = true;
            break;
        }
    }
    if (!known) {
        if (http_status >= 500 || http_status == 429) {
            rc = PX_ERR_UNAVAILABLE;
            retry = true;
        } else if (http_status == 401 || http_status == 403) {
            rc = PX_ERR_DENIED;
        } else if (http_status == 413) {
            rc = PX_ERR_TOO_LARGE;
        } else if (http_status == 404) {
            rc = PX_ERR_NOT_FOUND;
        }
    } else if (http_status >= 500) {
        /* a 5xx is worth another try whatever it is called */
        retry = true;
        if (rc == PX_ERR_PROTOCOL)
            rc = PX_ERR_UNAVAILABLE;
    }
    if (retryable)
        *retryable = retry;
    return rc;
}

px_rc px_ddb_parse_response(long http_status, const char *body, size_t len,
                            const char *errtype_header, json_t **resp, struct px_ddb_error *err)
{
    json_t *root = NULL;
    json_error_t jerr;
    *resp = NULL;
    err->http_status = http_status;
    err->type[0] = '\0';
    err->message[0] = '\0';
    err->retryable = false;

    if (body && len)
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (http_status >= 200 && http_status < 300) {
        if (!root && (!body || len == 0))
            root = json_object(); /* tolerated: an empty success body */
        if (!root || !json_is_object(root)) {
            json_decref(root);
            snprintf(err->message, sizeof(err->message),
                     "DynamoDB answered HTTP %ld with a body that is not a JSON object",
                     http_status);
            return PX_ERR_PROTOCOL;
        }
        *resp = root;
        return PX_OK;
    }

    /* Error: the header first, then "code", then "__type" (awsJson1_0 rules). */
    const char *raw = NULL;
    if (errtype_header && *errtype_header)
        raw = errtype_header;
    else if (json_is_object(root) && json_is_string(json_object_get(root, "code")))
        raw = json_string_value(json_object_get(root, "code"));
    else if (json_is_object(root) && json_is_string(json_object_get(root, "__type")))
        raw = json_string_value(json_object_get(root, "__type"));
    px_ddb_error_name(raw, err->type, sizeof(err->type));
    if (json_is_object(root)) {
        json_t *m = json_object_get(root, "message");
        if (!json_is_string(m))
            m = json_object_get(root, "Message");
        if (json_is_string(m))
            snprintf(err->message, sizeof(err->message), "%s", json_string_value(m));
    }
    if (!err->message[0]) {
        if (err->type[0])
            snprintf(err->message, sizeof(err->message), "%s", err->type);
        else
            snprintf(err->message, sizeof(err->message), "DynamoDB answered HTTP %ld", http_status);
    }
    json_decref(root);
    if (http_status < 400 && !err->type[0]) {
        /* 1xx/3xx: nothing we asked for */
        return PX_ERR_PROTOCOL;
    }
    return px_ddb_error_rc(err->type, http_status, &err->retryable);
}

/* ----------------------------------------------------------------- crc32 */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t px_ddb_crc32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    pthread_once(&crc_once, crc_init);
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---------------------------------------------------------------- client */

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

/* Host header value: host, plus the port when the URL names a non-default one. */
static px_rc parse_endpoint(struct px_ddb *c, char *err, size_t errlen)
{
    px_rc rc = PX_ERR_CONFIG;
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *user = NULL;
    CURLU *u = curl_url();
    if (!u)
        return PX_ERR_NOMEM;
    if (curl_url_set(u, CURLUPART_URL, c->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, errlen, "%s: \"%.200s\" is not a URL", c->endpoint_var, c->url);
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(err, errlen, "%s: scheme must be http or https", c->endpoint_var);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        snprintf(err, errlen, "%s: must not carry a query string or credentials", c->endpoint_var);
        goto out;
    }
    bool https = strcasecmp(scheme, "https") == 0;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port &&
        strcmp(port, https ? "443" : "80") != 0) {
        size_t n = strlen(host) + strlen(port) + 2;
        c->host = malloc(n);
        if (c->host)
            snprintf(c->host, n, "%s:%s", host, port);
    } else {
        c->host = strdup(host);
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK || !path || path[0] != '/')
        c->path = strdup("/");
    else
        c->path = strdup(path);
    if (!c->host || !c->path) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    size_t hn = strlen(c->host) + sizeof("Host: ");
    c->host_header = malloc(hn);
    if (!c->host_header) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    snprintf(c->host_header, hn, "Host: %s", c->host);
    rc = PX_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

static bool valid_region(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = r[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
    }
    return true;
}

px_rc px_ddb_new(const struct px_ddb_config *cfg, struct px_ddb **out, char *err, size_t errlen)
{
    px_rc rc = PX_ERR_CONFIG;
    struct px_ddb *c = NULL;
    *out = NULL;
    if (empty(cfg->region)) {
        snprintf(err, errlen, "AWS_REGION: not set (needed by the DynamoDB audit store)");
        return PX_ERR_CONFIG;
    }
    if (!valid_region(cfg->region)) {
        snprintf(err, errlen, "AWS_REGION: \"%.40s\" is not a region name", cfg->region);
        return PX_ERR_CONFIG;
    }
    if (empty(cfg->access_key_id)) {
        snprintf(err, errlen, "AWS_ACCESS_KEY_ID: not set (needed by the DynamoDB audit store)");
        return PX_ERR_CONFIG;
    }
    if (empty(cfg->secret_access_key)) {
        snprintf(err, errlen,
                 "AWS_SECRET_ACCESS_KEY: not set (needed by the DynamoDB audit store)");
        return PX_ERR_CONFIG;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "DynamoDB: libcurl initialisation failed: %s",
                 curl_easy_strerror(curl_init_rc));
        return PX_ERR_INTERNAL;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        goto nomem;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        c = NULL;
        goto nomem;
    }
    snprintf(c->service, sizeof(c->service), "%s", cfg->service ? cfg->service : "dynamodb");
    snprintf(c->target_prefix, sizeof(c->target_prefix), "%s",
             cfg->target_prefix ? cfg->target_prefix : TARGET_PREFIX);
    snprintf(c->content_type, sizeof(c->content_type), "application/x-amz-json-%s",
             cfg->json_version ? cfg->json_version : "1.0");
    snprintf(c->label, sizeof(c->label), "%s", cfg->label ? cfg->label : "DynamoDB");
    snprintf(c->endpoint_var, sizeof(c->endpoint_var), "%s",
             cfg->endpoint_var ? cfg->endpoint_var : "AWS_ENDPOINT_URL_DYNAMODB");
    c->region = dupstr(cfg->region);
    c->akid = dupstr(cfg->access_key_id);
    c->secret = dupstr(cfg->secret_access_key);
    c->token = empty(cfg->session_token) ? NULL : dupstr(cfg->session_token);
    /* Read once here: getenv is not safe against the runtime's per-invocation putenv later. */
    const char *ca = getenv("SSL_CERT_FILE");
    if (!empty(ca) && !(c->ca_file = dupstr(ca)))
        goto nomem;
    if (!empty(cfg->endpoint)) {
        c->url = dupstr(cfg->endpoint);
    } else {
        /* China regions live under amazonaws.com.cn */
        bool cn = strncmp(cfg->region, "cn-", 3) == 0;
        size_t n = strlen(cfg->region) + 64;
        c->url = malloc(n);
        if (c->url)
            snprintf(c->url, n, "https://dynamodb.%s.amazonaws.com%s/", cfg->region,
                     cn ? ".cn" : "");
    }
    if (!c->region || !c->akid || !c->secret || !c->url ||
        (!empty(cfg->session_token) && !c->token))
        goto nomem;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 1000;
    c->max_response = cfg->max_response ? cfg->max_response : PX_DDB_MAX_RESPONSE;
    c->max_attempts = cfg->max_attempts ? cfg->max_attempts : PX_DDB_MAX_ATTEMPTS;
    rc = parse_endpoint(c, err, errlen);
    if (rc)
        goto fail;
    *out = c;
    return PX_OK;
nomem:
    rc = PX_ERR_NOMEM;
    snprintf(err, errlen, "DynamoDB: out of memory");
fail:
    px_ddb_free(c);
    return rc;
}

void px_ddb_free(struct px_ddb *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nidle; i++)
        px_h1_conn_close(&c->idle[i]);
    c->nidle = 0;
    pthread_mutex_destroy(&c->mu);
    free(c->url);
    free(c->host_header);
    free(c->host);
    free(c->path);
    free(c->region);
    free(c->akid);
    if (c->secret)
        memset(c->secret, 0, strlen(c->secret));
    free(c->secret);
    free(c->token);
    free(c->ca_file);
    free(c);
}

const char *px_ddb_endpoint(const struct px_ddb *c)
{
    return c ? c->url : NULL;
}

/* The options every connection of this client shares (px_h1_setup_fn). */
static bool handle_setup(void *arg, CURL *h)
{
    const struct px_ddb *c = arg;
    return !(curl_easy_setopt(h, CURLOPT_URL, c->url) ||
             curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") ||
             curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
             curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) ||
             curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L) ||
             (c->ca_file && curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file)));
}

/* A kept connection, or none (the first exchange connects). */
static struct px_h1_conn take_conn(struct px_ddb *c)
{
    struct px_h1_conn conn;
    memset(&conn, 0, sizeof(conn));
    pthread_mutex_lock(&c->mu);
    if (c->nidle)
        conn = c->idle[--c->nidle];
    pthread_mutex_unlock(&c->mu);
    return conn;
}

static void give_conn(struct px_ddb *c, struct px_h1_conn *conn)
{
    if (!conn->h)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->nidle < POOL_MAX) {
        c->idle[c->nidle++] = *conn;
        conn->h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    px_h1_conn_close(conn);
}

/* One attempt's answer as it comes off the wire. */
struct answer {
    struct px_buf body;
    char errtype[128];
    char crc[16];
    bool have_crc;
};

static bool header_is(const char *line, size_t n, const char *name, const char **value,
                      size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return false;
    const char *v = line + nl + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    *value = v;
    *vlen = (size_t)(end - v);
    return true;
}

static void on_header(void *arg, const char *ptr, size_t n)
{
    struct answer *a = arg;
    const char *v;
    size_t vl;
    if (header_is(ptr, n, "x-amzn-errortype", &v, &vl)) {
        if (vl >= sizeof(a->errtype))
            vl = sizeof(a->errtype) - 1;
        memcpy(a->errtype, v, vl);
        a->errtype[vl] = '\0';
    } else if (header_is(ptr, n, "x-amz-crc32", &v, &vl) && vl < sizeof(a->crc)) {
        memcpy(a->crc, v, vl);
        a->crc[vl] = '\0';
        a->have_crc = true;
    }
}

static bool crc_matches(const struct answer *a)
{
    if (!a->have_crc)
        return true;
    char *end = NULL;
    errno = 0;
    unsigned long long want = strtoull(a->crc, &end, 10);
    if (errno || end == a->crc || *end != '\0' || want > 0xFFFFFFFFull)
        return false;
    return px_ddb_crc32(a->body.data ? a->body.data : "", a->body.len) == (uint32_t)want;
}

static uint64_t jitter_state(void)
{
    static _Thread_local uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&s;
        if (!s)
            s = 0x9E3779B97F4A7C15ull;
    }
    /* xorshift64 */
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* Full jitter: a random delay in [0, min(cap, base * 2^attempt)]. */
static long backoff_ms(unsigned attempt)
{
    long ceiling = PX_DDB_BACKOFF_BASE;
    for (unsigned i = 1; i < attempt && ceiling < PX_DDB_BACKOFF_CAP; i++)
        ceiling *= 2;
    if (ceiling > PX_DDB_BACKOFF_CAP)
        ceiling = PX_DDB_BACKOFF_CAP;
    return (long)(jitter_state() % (uint64_t)(ceiling + 1));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The request line, headers and body of one signed POST, into req. */
static px_rc build_request(const struct px_ddb *c, const char *target,
                           const struct px_sigv4_output *sig, const char *body, size_t len,
                           struct px_buf *req)
{
    px_rc rc =
        px_buf_printf(req,
                      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
                      "X-Amz-Target: %s\r\nX-Amz-Date: %s\r\nAuthorization: %s\r\n",
                      c->path, c->host, c->content_type, target, sig->amz_date, sig->authorization);
    if (!rc && c->token)
        rc = px_buf_printf(req, "X-Amz-Security-Token: %s\r\n", c->token);
    if (!rc)
        rc = px_buf_printf(req, "Accept: %s\r\nContent-Length: %zu\r\n\r\n", c->content_type, len);
    if (!rc)
        rc = px_buf_add(req, body, len);
    return rc;
}

/* Signs one POST of op with body and writes it whole (request line, headers,
 * body) into req; err says why when it cannot. The caller wipes and frees req
 * (it holds the signature and any session token). */
static px_rc prepare(const struct px_ddb *c, const char *op, const char *body, size_t len,
                     struct px_buf *req, struct px_ddb_error *err)
{
    char target[128];
    struct px_sigv4_output *sig = NULL;
    px_rc rc = PX_OK;

    snprintf(target, sizeof(target), "%s%s", c->target_prefix, op);
    const struct px_sigv4_header sh[] = {
        {"Content-Type", c->content_type},
        {"Host", c->host},
        {"X-Amz-Target", target},
    };
    struct px_sigv4_input in = {
        .method = "POST",
        .path = c->path,
        .query = "",
        .headers = sh,
        .nheaders = PX_COUNTOF(sh),
        .payload = body,
        .payload_len = len,
        .region = c->region,
        .service = c->service,
        .access_key_id = c->akid,
        .secret_access_key = c->secret,
        .session_token = c->token,
        .now = time(NULL),
    };
    sig = malloc(sizeof(*sig));
    if (!sig)
        return PX_ERR_NOMEM;
    rc = px_sigv4_sign(&in, sig);
    if (rc) {
        snprintf(err->message, sizeof(err->message), "signing the request failed: %s",
                 px_strerror(rc));
        goto out;
    }
    rc = build_request(c, target, sig, body, len, req);
    if (rc)
        snprintf(err->message, sizeof(err->message), "%s %s: request over its cap", c->label, op);
out:
    memset(sig, 0, sizeof(*sig));
    free(sig);
    return rc;
}

static void wipe_request(struct px_buf *req)
{
    if (req->data)
        memset(req->data, 0, req->len);
    px_buf_free(req);
}

/* What a failed exchange means for the call: the rc, whether it is worth
 * another attempt (err->retryable), and *sent: whether the request may have
 * been applied. */
static px_rc transport_rc(const struct px_ddb *c, px_rc rc, const struct px_h1_io *io,
                          struct px_ddb_error *err, bool *sent)
{
    *sent = io->sent;
    err->retryable = true;
    switch (rc) {
    case PX_ERR_TIMEOUT:
        break; /* sent or not, as io says: a time-out after sending may have let it through */
    case PX_ERR_TOO_LARGE:
        err->retryable = false;
        *sent = true;
        snprintf(err->message, sizeof(err->message), "%s response larger than the %zu-byte cap",
                 c->label, c->max_response);
        return rc;
    case PX_ERR_NOMEM:
    case PX_ERR_INTERNAL:
        err->retryable = false;
        break;
    default:
        /* connection refused or cut, a garbled answer: the request may have landed if sent */
        rc = PX_ERR_UNAVAILABLE;
        break;
    }
    snprintf(err->message, sizeof(err->message), "%s endpoint %.120s: %.120s%s%.60s", c->label,
             c->url, io->message[0] ? io->message : px_strerror(rc), io->os_errno ? ": " : "",
             io->os_errno ? strerror((int)io->os_errno) : "");
    return rc;
}

/* One attempt's answer, ready for the next attempt. */
static void answer_reset(struct answer *a)
{
    px_buf_clear(&a->body);
    a->errtype[0] = '\0';
    a->have_crc = false;
}

/* A whole answer to attempt n: its CRC, status and body decide. *sent: the
 * service may have applied the request. */
static px_rc judge(const struct px_ddb *c, const char *op, long status, const struct answer *a,
                   json_t **resp, struct px_ddb_error *err, bool *sent)
{
    px_rc rc;
    err->http_status = status;
    if (!crc_matches(a)) {
        /* botocore retries these: the body was damaged on the way */
        rc = PX_ERR_PROTOCOL;
        err->retryable = true;
        snprintf(err->message, sizeof(err->message),
                 "%s %s: response CRC32 does not match x-amz-crc32", c->label, op);
    } else {
        rc = px_ddb_parse_response(status, a->body.data, a->body.len,
                                   a->errtype[0] ? a->errtype : NULL, resp, err);
    }
    /* a 5xx or a damaged 2xx may have been applied */
    *sent = status >= 500 || (status >= 200 && status < 300);
    return rc;
}

/* After attempt n failed: whether another may follow (having slept its
 * backoff). A sent request makes the call ambiguous. */
static bool retry_after(const struct px_ddb *c, unsigned n, bool sent, int64_t deadline_ms,
                        struct px_ddb_error *err)
{
    if (!err->retryable)
        return false;
    if (sent)
        err->ambiguous = true;
    if (n >= c->max_attempts)
        return false;
    long delay = backoff_ms(n);
    if (delay + MIN_ATTEMPT_MS > deadline_ms - px_ddb_now_ms())
        return false; /* no time for another attempt after waiting: report this one */
    sleep_ms(delay);
    return true;
}

/* Attempts first, first+1, ... of one call over *conn (dropped or kept as
 * the answers say), as px_ddb_call describes. */
static px_rc call_from(struct px_ddb *c, const char *op, const char *body, size_t len,
                       int64_t deadline_ms, json_t **resp, struct px_ddb_error *err,
                       struct px_h1_conn *conn, struct answer *a, unsigned first)
{
    px_rc rc = PX_ERR_TIMEOUT;
    if (first == 1)
        snprintf(err->message, sizeof(err->message), "%s %s: no time left to try", c->label, op);
    for (unsigned n = first; n <= c->max_attempts; n++) {
        if (deadline_ms - px_ddb_now_ms() < MIN_ATTEMPT_MS)
            break;
        struct px_buf req;
        struct px_h1_parser p;
        struct px_h1_io io;
        bool sent = false;
        answer_reset(a);
        err->type[0] = '\0';
        err->retryable = false;
        err->attempts = n;
        err->http_status = 0;
        px_buf_init(&req, MAX_HEAD + len);
        rc = prepare(c, op, body, len, &req, err);
        if (!rc) {
            px_h1_parser_init(&p, &a->body, on_header, a);
            rc = px_h1_exchange(conn, handle_setup, c, req.data, req.len, deadline_ms,
                                c->connect_timeout_ms, &p, &io);
            rc = rc ? transport_rc(c, rc, &io, err, &sent)
                    : judge(c, op, p.status, a, resp, err, &sent);
        }
        wipe_request(&req);
        if (rc == PX_OK || !retry_after(c, n, sent, deadline_ms, err))
            break;
    }
    return rc;
}

static bool call_ok(const struct px_ddb *c, const char *op, size_t len)
{
    return c && op && *op && strlen(op) <= 48 && len <= MAX_BODY;
}

px_rc px_ddb_call(struct px_ddb *c, const char *op, const char *body, size_t len,
                  int64_t deadline_ms, json_t **resp, struct px_ddb_error *errp)
{
    struct px_ddb_error local;
    struct px_ddb_error *err = errp ? errp : &local;
    struct answer a;

    memset(err, 0, sizeof(*err));
    *resp = NULL;
    if (!call_ok(c, op, len) || !body)
        return PX_ERR_INVALID;
    memset(&a, 0, sizeof(a));
    px_buf_init(&a.body, c->max_response);
    struct px_h1_conn conn = take_conn(c);
    px_rc rc = call_from(c, op, body, len, deadline_ms, resp, err, &conn, &a, 1);
    px_buf_free(&a.body);
    give_conn(c, &conn);
    return rc;
}

/* One request of px_ddb_call_many in flight. */
struct flight {
    struct px_h1_conn conn;
    struct answer a;
    struct px_h1_parser p;
    struct px_h1_io io;
    bool waiting; /* sent, its answer not yet whole */
    px_rc rc;     /* of the exchange */
};

/* Waits for the answers of every request in flight until deadline_ms: each
 * ends whole, failed, or PX_ERR_TIMEOUT. */
static void await_answers(struct flight *f, size_t n, int64_t deadline_ms)
{
    struct pollfd pfd[PX_DDB_MANY_MAX];
    size_t idx[PX_DDB_MANY_MAX];
    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!f[i].waiting)
                continue;
            pfd[k] = (struct pollfd){.fd = f[i].conn.fd, .events = POLLIN};
            idx[k++] = i;
        }
        if (!k)
            return;
        int64_t left = deadline_ms - px_ddb_now_ms();
        int ready = left > 0 ? poll(pfd, (nfds_t)k, left > 60000 ? 60000 : (int)left) : 0;
        if (ready < 0 && errno == EINTR)
            continue;
        for (size_t j = 0; j < k; j++) {
            struct flight *x = &f[idx[j]];
            if (ready < 0) {
                x->io.os_errno = errno;
                x->rc = PX_ERR_UNAVAILABLE;
            } else if (ready == 0) {
                x->rc = PX_ERR_TIMEOUT;
            } else if (!pfd[j].revents) {
                continue;
            } else {
                bool done = false;
                x->rc = px_h1_read(&x->conn, &x->p, &x->io, &done);
                if (!x->rc && !done)
                    continue;
            }
            if (x->rc && x->conn.h)
                px_h1_conn_close(&x->conn);
            x->waiting = false;
        }
    }
}

void px_ddb_call_many(struct px_ddb *c, const char *op, struct px_ddb_req *reqs, size_t n,
                      int64_t deadline_ms)
{
    struct flight *f = n ? malloc(n * sizeof(*f)) : NULL;
    for (size_t i = 0; i < n; i++) {
        reqs[i].resp = NULL;
        memset(&reqs[i].err, 0, sizeof(reqs[i].err));
        reqs[i].rc = f && n <= PX_DDB_MANY_MAX ? PX_OK : PX_ERR_NOMEM;
        if (!reqs[i].rc && (!call_ok(c, op, reqs[i].len) || !reqs[i].body))
            reqs[i].rc = PX_ERR_INVALID;
    }
    if (!f || n > PX_DDB_MANY_MAX) {
        free(f);
        return;
    }
    /* every request out before any answer is awaited */
    for (size_t i = 0; i < n; i++) {
        struct flight *x = &f[i];
        struct px_ddb_req *r = &reqs[i];
        x->conn = take_conn(c);
        memset(&x->a, 0, sizeof(x->a));
        px_buf_init(&x->a.body, c->max_response);
        memset(&x->io, 0, sizeof(x->io));
        x->waiting = false;
        x->rc = PX_OK;
        if (r->rc)
            continue;
        r->err.attempts = 1;
        if (deadline_ms - px_ddb_now_ms() < MIN_ATTEMPT_MS) {
            r->rc = PX_ERR_TIMEOUT;
            snprintf(r->err.message, sizeof(r->err.message), "%s %s: no time left to try", c->label,
                     op);
            continue;
        }
        struct px_buf req;
        px_buf_init(&req, MAX_HEAD + r->len);
        r->rc = prepare(c, op, r->body, r->len, &req, &r->err);
        if (!r->rc) {
            px_h1_parser_init(&x->p, &x->a.body, on_header, &x->a);
            x->rc = px_h1_send(&x->conn, handle_setup, c, req.data, req.len, deadline_ms,
                               c->connect_timeout_ms, &x->p, &x->io);
            x->waiting = !x->rc;
        }
        wipe_request(&req);
    }
    await_answers(f, n, deadline_ms);
    /* each outcome as px_ddb_call's first attempt; what failed goes on alone */
    for (size_t i = 0; i < n; i++) {
        struct flight *x = &f[i];
        struct px_ddb_req *r = &reqs[i];
        bool sent = false;
        if (!r->rc) {
            r->rc = x->rc ? transport_rc(c, x->rc, &x->io, &r->err, &sent)
                          : judge(c, op, x->p.status, &x->a, &r->resp, &r->err, &sent);
            if (r->rc && x->rc && px_h1_stale(&x->conn, x->rc)) {
                /* a kept connection the server had closed: once more on a new
                 * one, as px_h1_exchange does, without a backoff */
                r->err.ambiguous = r->err.ambiguous || sent;
                r->rc = call_from(c, op, r->body, r->len, deadline_ms, &r->resp, &r->err, &x->conn,
                                  &x->a, 1);
            } else if (r->rc && retry_after(c, 1, sent, deadline_ms, &r->err)) {
                r->rc = call_from(c, op, r->body, r->len, deadline_ms, &r->resp, &r->err, &x->conn,
                                  &x->a, 2);
            }
        }
        px_buf_free(&x->a.body);
        give_conn(c, &x->conn);
    }
    free(f);
}

px_rc px_ddb_call_json(struct px_ddb *c, const char *op, json_t *req, int64_t deadline_ms,
                       json_t **resp, struct px_ddb_error *err)
{
    json_t *ignored = NULL;
    struct px_ddb_error e;
    if (!resp)
        resp = &ignored;
    if (!err)
        err = &e;
    memset(err, 0, sizeof(*err));
    *resp = NULL;
    if (!req)
        return PX_ERR_NOMEM;
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body)
        return PX_ERR_NOMEM;
    px_rc rc = px_ddb_call(c, op, body, strlen(body), deadline_ms, resp, err);
    free(body);
    json_decref(ignored);
    return rc;
}

px_rc px_ddb_ttl_on(struct px_ddb *c, const char *table, const char *attr, int64_t deadline_ms,
                    enum px_ddb_ttl *state, struct px_ddb_error *err)
{
    json_t *resp = NULL;
    *state = PX_DDB_TTL_WAS_ON;
    px_rc rc = px_ddb_call_json(c, "DescribeTimeToLive", json_pack("{s:s}", "TableName", table),
                                deadline_ms, &resp, err);
    if (rc) {
        if (!strcmp(err->type, "UnknownOperationException")) {
            *state = PX_DDB_TTL_UNSUPPORTED;
            rc = PX_OK;
        }
        return rc;
    }
    json_t *d = json_object_get(resp, "TimeToLiveDescription");
    const char *st = json_string_value(json_object_get(d, "TimeToLiveStatus"));
    const char *on_attr = json_string_value(json_object_get(d, "AttributeName"));
    st = st ? st : "DISABLED";
    if (!strcmp(st, "ENABLED") || !strcmp(st, "ENABLING"))
        *state = on_attr && strcmp(on_attr, attr) != 0 ? PX_DDB_TTL_OTHER_ATTR : PX_DDB_TTL_WAS_ON;
    else if (!strcmp(st, "DISABLING"))
        *state = PX_DDB_TTL_DISABLING;
    else
        *state = PX_DDB_TTL_TURNED_ON;
    json_decref(resp);
    resp = NULL;
    if (*state != PX_DDB_TTL_TURNED_ON)
        return PX_OK;
    rc = px_ddb_call_json(c, "UpdateTimeToLive",
                          json_pack("{s:s, s:{s:s, s:b}}", "TableName", table,
                                    "TimeToLiveSpecification", "AttributeName", attr, "Enabled", 1),
                          deadline_ms, &resp, err);
    if (!rc && !json_is_true(
                   json_object_get(json_object_get(resp, "TimeToLiveSpecification"), "Enabled"))) {
        snprintf(err->message, sizeof(err->message),
                 "UpdateTimeToLive answered without Enabled=true");
        rc = PX_ERR_PROTOCOL;
    }
    json_decref(resp);
    if (rc && !strcmp(err->type, "UnknownOperationException")) {
        *state = PX_DDB_TTL_UNSUPPORTED;
        rc = PX_OK;
    }
    return rc;
}
