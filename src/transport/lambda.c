/* lambda.c: the Lambda custom runtime (see lambda.h, docs/internals/lambda.md). */
#include "lambda.h"
#include "events/relay.h"
#include "invoke.h"
#include "kernel/app.h"
#include "kernel/config.h"
#include "kernel/log.h"
#include "kernel/metrics.h"
#include "kernel/validate.h"
#include "store/audit_chain.h"
#include "store/secrets.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define API_VERSION     "/2018-06-01"
#define POST_TIMEOUT_MS 30000L /* a post the local API does not take in this is lost */
#define CONNECT_MS      5000L
#define MAX_API_LEN     255
#define TRACE_VAR       "_X_AMZN_TRACE_ID"
#define EMF_MAX         4096
/* event-relay stops starting rounds this long before the invocation deadline. */
#define RELAY_MARGIN_MS 3000
#define ERROR_BODY_MAX  8192

/* ---- headers and the trace id ------------------------------------------ */

void px_lambda_invocation_clear(struct px_lambda_invocation *inv)
{
    inv->request_id[0] = '\0';
    inv->deadline_ms = 0;
    inv->function_arn[0] = '\0';
    inv->trace_id[0] = '\0';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copies value into field (cap bytes with NUL); an oversized value leaves it empty. */
static px_rc set_field(char *field, size_t cap, const char *v, size_t n)
{
    if (n >= cap) {
        field[0] = '\0';
        return PX_ERR_TOO_LARGE;
    }
    memcpy(field, v, n);
    field[n] = '\0';
    return PX_OK;
}

static px_rc parse_deadline(const char *v, size_t n, int64_t *out)
{
    int64_t x = 0;
    *out = 0;
    if (n == 0 || n > 18)
        return PX_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return PX_ERR_INVALID;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return PX_OK;
}

px_rc px_lambda_parse_header(struct px_lambda_invocation *inv, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return PX_OK; /* status line or the blank line ending the headers */
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen && is_space(*v)) {
        v++;
        vlen--;
    }
    while (vlen && is_space(v[vlen - 1]))
        vlen--;
    static const char prefix[] = "Lambda-Runtime-";
    const size_t plen = sizeof(prefix) - 1;
    if (nlen <= plen || strncasecmp(line, prefix, plen) != 0)
        return PX_OK;
    const char *name = line + plen;
    nlen -= plen;
#define IS(n) (nlen == sizeof(n) - 1 && strncasecmp(name, n, nlen) == 0)
    if (IS("Aws-Request-Id"))
        return set_field(inv->request_id, sizeof(inv->request_id), v, vlen);
    if (IS("Deadline-Ms"))
        return parse_deadline(v, vlen, &inv->deadline_ms);
    if (IS("Invoked-Function-Arn"))
        return set_field(inv->function_arn, sizeof(inv->function_arn), v, vlen);
    if (IS("Trace-Id"))
        return set_field(inv->trace_id, sizeof(inv->trace_id), v, vlen);
#undef IS
    return PX_OK;
}

static char trace_env[sizeof(TRACE_VAR "=") + PX_LAMBDA_MAX_TRACE];

px_rc px_lambda_set_trace_env(const char *trace)
{
    static const size_t plen = sizeof(TRACE_VAR "=") - 1;
    size_t n = trace ? strlen(trace) : 0;
    if (n == 0 || n > PX_LAMBDA_MAX_TRACE) {
        unsetenv(TRACE_VAR);
        return n ? PX_ERR_TOO_LARGE : PX_OK;
    }
    memcpy(trace_env, TRACE_VAR "=", plen);
    memcpy(trace_env + plen, trace, n + 1);
    /* Already in the environment: the in-place rewrite is all it takes. */
    if (getenv(TRACE_VAR) == trace_env + plen)
        return PX_OK;
    return putenv(trace_env) == 0 ? PX_OK : PX_ERR_NOMEM;
}

/* ---- the Runtime API client --------------------------------------------- */

struct px_lambda_client {
    CURL *h;
    char base[MAX_API_LEN + 32]; /* http://host:port/2018-06-01 */
    char url[MAX_API_LEN + 32 + PX_LAMBDA_MAX_ID + 64];
    struct px_buf body; /* last answer's body, capped */
    bool overflow;
    struct px_lambda_invocation *inv; /* header target during /next, else NULL */
    struct curl_slist *post_headers;
    struct curl_slist *error_headers; /* rebuilt per error type */
    char errbuf[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct px_lambda_client *c = arg;
    size_t len = size * n;
    if (px_buf_add(&c->body, p, len) != PX_OK) {
        c->overflow = true;
        return 0; /* aborts the transfer: never a truncated event */
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct px_lambda_client *c = arg;
    size_t len = size * n;
    if (c->inv) {
        if (len > 5 && strncmp(p, "HTTP/", 5) == 0)
            px_lambda_invocation_clear(c->inv); /* a new answer starts */
        else
            (void)px_lambda_parse_header(c->inv, p, len);
    }
    return len;
}

px_rc px_lambda_client_new(const char *runtime_api, size_t max_event, struct px_lambda_client **out)
{
    *out = NULL;
    if (!runtime_api || !runtime_api[0] || strlen(runtime_api) > MAX_API_LEN)
        return PX_ERR_CONFIG;
    for (const char *p = runtime_api; *p; p++)
        if (*p <= ' ' || *p == '/' || *p == '?' || *p == '#' || *p == '@' || *p == 0x7F)
            return PX_ERR_CONFIG;
    /* Plain HTTP to a local API. Since libcurl 7.57 this initialises OpenSSL all
     * the same: main() has already done so, without openssl.cnf and error
     * strings (kernel/ossl.h), which made it about six times cheaper. */
    if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK)
        return PX_ERR_NOMEM;
    struct px_lambda_client *c = calloc(1, sizeof(*c));
    if (!c) {
        curl_global_cleanup();
        return PX_ERR_NOMEM;
    }
    snprintf(c->base, sizeof(c->base), "http://%s" API_VERSION, runtime_api);
    px_buf_init(&c->body, max_event);
    c->h = curl_easy_init();
    c->post_headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* Large bodies would otherwise wait for 100-continue. */
    struct curl_slist *t = c->post_headers ? curl_slist_append(c->post_headers, "Expect:") : NULL;
    if (t)
        c->post_headers = t;
    if (!c->h || !t) {
        px_lambda_client_free(c);
        return PX_ERR_NOMEM;
    }
    CURL *h = c->h;
    if (curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*") || /* the API is local, never proxied */
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_MS) ||
        curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L) ||
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) ||
        curl_easy_setopt(h, CURLOPT_WRITEDATA, c) ||
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) ||
        curl_easy_setopt(h, CURLOPT_HEADERDATA, c) ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf) ||
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http")) {
        px_lambda_client_free(c);
        return PX_ERR_NOMEM;
    }
    *out = c;
    return PX_OK;
}

void px_lambda_client_free(struct px_lambda_client *c)
{
    if (!c)
        return;
    curl_slist_free_all(c->post_headers);
    curl_slist_free_all(c->error_headers);
    if (c->h)
        curl_easy_cleanup(c->h);
    px_buf_free(&c->body);
    free(c);
    curl_global_cleanup();
}

/* Maps a Runtime API status to px_rc for the posts and /next. */
static px_rc status_rc(long status, long ok)
{
    if (status == ok)
        return PX_OK;
    if (status == 413)
        return PX_ERR_TOO_LARGE;
    if (status >= 500)
        return PX_ERR_UNAVAILABLE; /* "Container error. Non-recoverable state." */
    return PX_ERR_PROTOCOL;
}

/* One request on the shared handle. body NULL: GET without a time-out. */
static px_rc perform(struct px_lambda_client *c, const char *body, size_t len,
                     struct curl_slist *headers, long ok_status)
{
    CURL *h = c->h;
    long status = 0;
    px_buf_clear(&c->body);
    c->overflow = false;
    c->errbuf[0] = '\0';
    CURLcode e = curl_easy_setopt(h, CURLOPT_URL, c->url);
    if (!e && body) {
        e = curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (!e)
            e = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        if (!e)
            e = curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        if (!e)
            e = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, POST_TIMEOUT_MS);
    } else if (!e) {
        e = curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        /* /next blocks until an event arrives: the docs ask for no time-out. */
        if (!e)
            e = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
    }
    if (!e)
        e = curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (e)
        return PX_ERR_NOMEM;
    e = curl_easy_perform(h);
    if (e == CURLE_WRITE_ERROR && c->overflow)
        return PX_ERR_TOO_LARGE;
    if (e) {
        PX_ERROR(NULL, "Runtime API %s: %s", c->url,
                 c->errbuf[0] ? c->errbuf : curl_easy_strerror(e));
        return PX_ERR_UNAVAILABLE;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    px_rc rc = status_rc(status, ok_status);
    if (rc)
        PX_ERROR(NULL, "Runtime API %s answered %ld", c->url, status);
    return rc;
}

/* Ids go into the URL: only the characters Lambda's ids are made of. */
static bool url_safe_id(const char *id)
{
    if (!id || !id[0])
        return false;
    for (const char *p = id; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

px_rc px_lambda_next(struct px_lambda_client *c, struct px_lambda_invocation *inv)
{
    px_lambda_invocation_clear(inv);
    inv->event = NULL;
    inv->event_len = 0;
    snprintf(c->url, sizeof(c->url), "%s/runtime/invocation/next", c->base);
    c->inv = inv;
    px_rc rc = perform(c, NULL, 0, NULL, 200);
    c->inv = NULL;
    if (rc == PX_ERR_TOO_LARGE && !c->overflow)
        rc = PX_ERR_PROTOCOL; /* a 413 from /next is no answer we know */
    if (rc && rc != PX_ERR_TOO_LARGE)
        return rc;
    if (!url_safe_id(inv->request_id)) {
        PX_ERROR(NULL,
                 "Runtime API: /next answered without a usable Lambda-Runtime-Aws-Request-Id");
        return PX_ERR_PROTOCOL;
    }
    inv->event = c->body.data ? c->body.data : "";
    inv->event_len = c->body.len;
    return rc;
}

px_rc px_lambda_post_response(struct px_lambda_client *c, const char *request_id, const char *body,
                              size_t len)
{
    if (!url_safe_id(request_id))
        return PX_ERR_INVALID;
    snprintf(c->url, sizeof(c->url), "%s/runtime/invocation/%s/response", c->base, request_id);
    return perform(c, body ? body : "", body ? len : 0, c->post_headers, 202);
}

px_rc px_lambda_error_body(struct px_buf *out, const char *error_type, const char *message)
{
    size_t start = out->len;
    px_rc rc = px_buf_adds(out, "{\"errorMessage\":");
    if (!rc)
        rc = px_buf_json_strz(out, message ? message : "");
    if (!rc)
        rc = px_buf_adds(out, ",\"errorType\":");
    if (!rc)
        rc = px_buf_json_strz(out, error_type ? error_type : "Runtime.Unknown");
    if (!rc)
        rc = px_buf_adds(out, ",\"stackTrace\":[]}");
    if (rc)
        out->len = start;
    return rc;
}

/* Error types are our own static tokens; anything else is not sent as a header. */
static bool header_safe(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7E)
            return false;
    return true;
}

static px_rc post_error_to(struct px_lambda_client *c, const char *error_type, const char *message)
{
    char hdr[160];
    const char *type =
        error_type && error_type[0] && strlen(error_type) < 100 && header_safe(error_type)
            ? error_type
            : "Runtime.Unknown";
    snprintf(hdr, sizeof(hdr), "Lambda-Runtime-Function-Error-Type: %s", type);
    curl_slist_free_all(c->error_headers);
    c->error_headers = NULL;
    struct curl_slist *l = curl_slist_append(NULL, "Content-Type: " PX_LAMBDA_ERROR_CT);
    struct curl_slist *t = l ? curl_slist_append(l, hdr) : NULL;
    if (t)
        t = curl_slist_append(t, "Expect:");
    if (!t) {
        curl_slist_free_all(l);
        return PX_ERR_NOMEM;
    }
    c->error_headers = t;
    struct px_buf b;
    px_buf_init(&b, ERROR_BODY_MAX);
    px_rc rc = px_lambda_error_body(&b, type, message);
    if (rc) { /* an overlong message: the type alone still says what failed */
        px_buf_clear(&b);
        rc = px_lambda_error_body(&b, type, "error message too long");
    }
    if (!rc)
        rc = perform(c, b.data, b.len, c->error_headers, 202);
    px_buf_free(&b);
    return rc;
}

px_rc px_lambda_post_error(struct px_lambda_client *c, const char *request_id,
                           const char *error_type, const char *message)
{
    if (!url_safe_id(request_id))
        return PX_ERR_INVALID;
    snprintf(c->url, sizeof(c->url), "%s/runtime/invocation/%s/error", c->base, request_id);
    return post_error_to(c, error_type, message);
}

px_rc px_lambda_post_init_error(struct px_lambda_client *c, const char *error_type,
                                const char *message)
{
    snprintf(c->url, sizeof(c->url), "%s/runtime/init/error", c->base);
    return post_error_to(c, error_type, message);
}

/* ---- the runtime -------------------------------------------------------- */

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

struct px_lambda_runtime {
    struct px_lambda_client *client;
    struct px_app *app;
    struct px_sink *sink;   /* event-relay only (no app then) */
    struct px_relay *relay; /* event-relay only */
    struct px_config cfg;
    char handler[64];
    size_t max_response;
    unsigned long max_invocations;
    unsigned long invocations;
    double init_ms; /* main's share of the init: configuration, stores (not the loader) */
    /* config cache fallbacks already reported by an earlier metric line */
    unsigned long config_stale_seen, config_defaults_seen;
    struct px_buf out; /* the proxy response or error body of the current invocation */
    int key_fd;        /* the signing key from Secrets Manager until the stores read it; -1 */
};

static const char *env_or(const char *given, const char *var)
{
    if (given && given[0])
        return given;
    const char *v = getenv(var);
    return v && v[0] ? v : NULL;
}

/* AUDIT_SIGNING_KEY_SECRET_ARN: the audit signing key (PEM) is the value of a
 * Secrets Manager secret, read once here with GetSecretValue (the function's
 * role credentials). It goes into an anonymous memory file (memfd: never on a
 * disk, gone with the process) that the stores read as AUDIT_SIGNING_KEY_FILE
 * when they open; the file is closed once they have. Neither the value nor
 * the key is ever logged. */
static px_rc signing_key_from_secret(struct px_lambda_runtime *rt, char *err, size_t errlen)
{
    const char *arn = getenv("AUDIT_SIGNING_KEY_SECRET_ARN");
    if (!arn || !*arn)
        return PX_OK;
    if (rt->cfg.signing_key[0]) {
        snprintf(err, errlen,
                 "AUDIT_SIGNING_KEY_SECRET_ARN and AUDIT_SIGNING_KEY_FILE are both set: set one");
        return PX_ERR_CONFIG;
    }
    const char *ep = getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER");
    if (!ep || !*ep)
        ep = getenv("AWS_ENDPOINT_URL");
    const struct px_secret_config sc = {
        .region = rt->cfg.aws_region,
        .endpoint = ep,
        .access_key_id = rt->cfg.aws_access_key_id,
        .secret_access_key = rt->cfg.aws_secret_access_key,
        .session_token = rt->cfg.aws_session_token,
        .timeout_ms = rt->cfg.audit_timeout_ms > 5000 ? rt->cfg.audit_timeout_ms : 5000,
    };
    char *value = NULL;
    size_t len = 0;
    char serr[768] = "";
    px_rc rc = px_secret_get(&sc, arn, &value, &len, serr, sizeof(serr));
    if (rc) {
        snprintf(err, errlen, "AUDIT_SIGNING_KEY_SECRET_ARN: %s", serr);
        return rc == PX_ERR_CONFIG ? PX_ERR_CONFIG : PX_ERR_UNAVAILABLE;
    }
    int fd = memfd_create("audit-signing-key", MFD_CLOEXEC);
    bool ok = fd >= 0 && write(fd, value, len) == (ssize_t)len;
    px_secret_free(value, len);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct px_chain_key *k = NULL;
    char kerr[512] = "";
    if (ok && px_chain_key_load(path, true, &k, kerr, sizeof(kerr)) != PX_OK)
        ok = false;
    px_chain_key_free(k);
    if (!ok) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen,
                 "AUDIT_SIGNING_KEY_SECRET_ARN: %.300s: the secret is not an Ed25519 private key "
                 "in PEM (pricing audit keygen writes one)",
                 arn);
        return PX_ERR_CONFIG;
    }
    rt->key_fd = fd;
    snprintf(rt->cfg.signing_key, sizeof(rt->cfg.signing_key), "%s", path);
    PX_INFO(NULL, "audit signing key read from Secrets Manager (%s)", arn);
    return PX_OK;
}

/* event-relay: a scheduled function that publishes what the outboxes hold
 * (relay.h) instead of answering API Gateway events. */
static px_rc relay_init(struct px_lambda_runtime *rt, char *err, size_t errlen)
{
    const struct px_relay_opts o = {
        .max_attempts = rt->cfg.event_max_attempts,
        .base_ms = rt->cfg.event_retry_base_ms,
        .cap_ms = rt->cfg.event_retry_cap_ms,
        .lease_ms = rt->cfg.event_lease_ms,
        .batch = rt->cfg.event_batch,
    };
    if (!rt->cfg.event_sink[0] || strcmp(rt->cfg.event_sink, "none") == 0) {
        snprintf(err, errlen,
                 "EVENT_SINK: event-relay needs a sink (sqs:QUEUE_URL or sns:TOPIC_ARN)");
        return PX_ERR_CONFIG;
    }
    px_rc rc = px_sink_open(rt->cfg.event_sink, &rt->cfg, &rt->sink, err, errlen);
    if (!rc)
        rc = px_relay_new(&rt->cfg, &o, rt->sink, &rt->relay, err, errlen);
    return rc;
}

/* Reports an init failure: one line on stderr, the error to the API. */
static px_rc init_failed(struct px_lambda_runtime *rt, px_rc rc, const char *type, char *err)
{
    PX_ERROR(NULL, "init failed (%s): %s", type, err);
    px_rc prc = px_lambda_post_init_error(rt->client, type, err);
    if (prc)
        PX_ERROR(NULL, "could not report the init error: %s", px_strerror(prc));
    return rc;
}

px_rc px_lambda_runtime_new(const struct px_lambda_opts *opts, struct px_lambda_runtime **out,
                            char *err, size_t errlen)
{
    static const struct px_lambda_opts none = {0};
    px_rc rc = PX_OK;
    double t0 = mono_ms();
    *out = NULL;
    if (!opts)
        opts = &none;
    /* Logs go out before the configuration is known: function name only. */
    const char *handler = env_or(opts->handler, "_HANDLER");
    px_log_init(PX_LOG_INFO, handler ? handler : "pricing");
    const char *api = env_or(opts->runtime_api, "AWS_LAMBDA_RUNTIME_API");
    if (!api) {
        snprintf(err, errlen,
                 "AWS_LAMBDA_RUNTIME_API is not set (the Lambda Runtime API host:port)");
        return PX_ERR_CONFIG;
    }
    struct px_lambda_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return PX_ERR_NOMEM;
    }
    rt->key_fd = -1;
    rt->max_response = opts->max_response ? opts->max_response : PX_MAX_EVENT;
    rt->max_invocations = opts->max_invocations;
    px_buf_init(&rt->out, rt->max_response);
    rc = px_lambda_client_new(api, PX_MAX_EVENT, &rt->client);
    if (rc) {
        snprintf(err, errlen, "AWS_LAMBDA_RUNTIME_API: not a usable host:port (\"%.64s\")", api);
        goto out;
    }
    rc = px_config_from_env(&rt->cfg, err, errlen);
    /* Behind API Gateway the authorizer's claims are the identity, even when
     * the Runtime API came from --runtime-api rather than the environment. */
    if (!rc)
        px_config_default_auth_mode(&rt->cfg, PX_AUTH_APIGW);
    if (!rc)
        rc = px_config_check(&rt->cfg, err, errlen);
    if (rc) {
        rc = init_failed(rt, PX_ERR_CONFIG, "Runtime.ConfigError", err);
        goto out;
    }
    rc = signing_key_from_secret(rt, err, errlen);
    if (rc) {
        rc = init_failed(rt, rc, rc == PX_ERR_CONFIG ? "Runtime.ConfigError" : "Runtime.InitError",
                         err);
        goto out;
    }
    px_log_init(rt->cfg.log_level, handler ? handler : "pricing");
    if (handler && strcmp(handler, PX_EVENT_RELAY_HANDLER) == 0) {
        snprintf(rt->handler, sizeof(rt->handler), "%s", handler);
        rc = relay_init(rt, err, errlen);
        if (rc)
            rc = init_failed(
                rt, rc, rc == PX_ERR_CONFIG ? "Runtime.ConfigError" : "Runtime.InitError", err);
        else
            rt->init_ms = mono_ms() - t0;
        if (!rc) {
            *out = rt;
            rt = NULL;
        }
        goto out;
    }
    if (!handler || !px_function_find(handler) || strlen(handler) >= sizeof(rt->handler)) {
        size_t n = 0;
        const struct px_function *const *fns = px_functions(&n);
        int w = snprintf(
            err, errlen,
            "_HANDLER: no function named \"%.64s\" in this binary (known:", handler ? handler : "");
        for (size_t i = 0; i < n && w > 0 && (size_t)w < errlen; i++)
            w += snprintf(err + w, errlen - (size_t)w, " %s", fns[i]->name);
        if (w > 0 && (size_t)w < errlen)
            snprintf(err + w, errlen - (size_t)w, ")");
        rc = init_failed(rt, PX_ERR_CONFIG, "Runtime.HandlerNotFound", err);
        goto out;
    }
    snprintf(rt->handler, sizeof(rt->handler), "%s", handler);
    /* One invocation at a time: the smallest connection pool serve's sizing allows. */
    rt->cfg.threads = 1;
    rc = px_app_new(&rt->cfg, &rt->app, err, errlen);
    /* The stores hold the key now: its memory file goes. */
    if (rt->key_fd >= 0) {
        close(rt->key_fd);
        rt->key_fd = -1;
    }
    if (rc) {
        rc = init_failed(rt, rc, "Runtime.InitError", err);
        goto out;
    }
    rt->init_ms = mono_ms() - t0;
    *out = rt;
    rt = NULL;
out:
    px_lambda_runtime_free(rt);
    return rc;
}

void px_lambda_runtime_free(struct px_lambda_runtime *rt)
{
    if (!rt)
        return;
    px_relay_free(rt->relay);
    px_sink_close(rt->sink);
    px_app_free(rt->app);
    px_lambda_client_free(rt->client);
    px_buf_free(&rt->out);
    if (rt->key_fd >= 0)
        close(rt->key_fd);
    free(rt);
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* All of a line, or as much as the descriptor takes (bounded tries). */
static void write_all(int fd, const char *p, size_t n)
{
    for (int tries = 0; n && tries < 64; tries++) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static bool is_route(const char *route, const char *want)
{
    return route && strcmp(route, want) == 0;
}

/* One CloudWatch Embedded Metric Format line for the invocation. */
static void emit_metrics(struct px_lambda_runtime *rt, const char *request_id,
                         const struct px_invoke_result *res, double latency_ms, bool cold)
{
    static const char *const names[] = {"PriceFetched",     "PriceNotFound", "ValidationFailed",
                                        "AuditWriteFailed", "Latency",       "ColdStart",
                                        "ConfigStale",      "ConfigDefaults"};
    const char *ns = rt->cfg.metrics_namespace[0] ? rt->cfg.metrics_namespace : "Pricing";
    const char *svc = rt->cfg.metrics_service[0] ? rt->cfg.metrics_service : "pricing";
    bool price = res && is_route(res->route, "/price");
    const char *code = res ? res->error_code : NULL;
    int fetched = price && res->status == 200;
    int not_found = price && code && strcmp(code, "NOT_FOUND") == 0;
    int invalid = code && strcmp(code, "VALIDATION_FAILED") == 0;
    int audit_failed = res && res->audit_failed;
    /* Config cache refreshes that fell back (config_cache.h) since the last line. */
    unsigned long stale = px_metrics_config_total(PX_METRICS_CONFIG_STALE);
    unsigned long dflt = px_metrics_config_total(PX_METRICS_CONFIG_DEFAULTS);
    unsigned long stale_new = stale - rt->config_stale_seen;
    unsigned long dflt_new = dflt - rt->config_defaults_seen;
    rt->config_stale_seen = stale;
    rt->config_defaults_seen = dflt;

    struct px_buf b;
    px_buf_init(&b, EMF_MAX);
    px_rc rc = px_buf_printf(&b,
                             "{\"_aws\":{\"Timestamp\":%lld,\"CloudWatchMetrics\":[{"
                             "\"Namespace\":",
                             (long long)wall_ms());
    if (!rc)
        rc = px_buf_json_strz(&b, ns);
    if (!rc)
        rc = px_buf_adds(&b, ",\"Dimensions\":[[\"service\"]],\"Metrics\":[");
    for (size_t i = 0; !rc && i < PX_COUNTOF(names); i++)
        rc = px_buf_printf(&b, "%s{\"Name\":\"%s\",\"Unit\":\"%s\"}", i ? "," : "", names[i],
                           strcmp(names[i], "Latency") == 0 ? "Milliseconds" : "Count");
    if (!rc)
        rc = px_buf_adds(&b, "]}]},\"service\":");
    if (!rc)
        rc = px_buf_json_strz(&b, svc);
    if (!rc)
        rc = px_buf_adds(&b, ",\"function\":");
    if (!rc)
        rc = px_buf_json_strz(&b, rt->handler);
    if (!rc && px_valid_request_id(request_id)) {
        rc = px_buf_adds(&b, ",\"requestId\":");
        if (!rc)
            rc = px_buf_json_strz(&b, request_id);
    }
    if (!rc)
        rc = px_buf_printf(&b,
                           ",\"PriceFetched\":%d,\"PriceNotFound\":%d,\"ValidationFailed\":%d,"
                           "\"AuditWriteFailed\":%d,\"Latency\":%.3f,\"ColdStart\":%d,"
                           "\"ConfigStale\":%lu,\"ConfigDefaults\":%lu}\n",
                           fetched, not_found, invalid, audit_failed, latency_ms, cold ? 1 : 0,
                           stale_new, dflt_new);
    if (!rc)
        write_all(STDOUT_FILENO, b.data, b.len);
    px_buf_free(&b);
}

/* The proxy response for an answer that does not fit the payload limit:
 * refused whole with the error shape, never cut. */
static px_rc too_large_response(struct px_buf *out, const char *request_id)
{
    struct px_buf body;
    px_buf_init(&body, 1024);
    px_buf_clear(out);
    /* The refusal itself is small and fixed: it fits whatever the cap. */
    size_t max = out->max;
    if (out->max < 4096)
        out->max = 4096;
    px_rc rc = px_buf_adds(&body, "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"the response "
                                  "exceeds the Lambda payload limit\",\"requestId\":");
    if (!rc)
        rc = px_buf_json_strz(&body, request_id);
    if (!rc)
        rc = px_buf_adds(&body, "}}");
    if (!rc)
        rc = px_buf_adds(out, "{\"statusCode\":500,\"headers\":{\"Content-Type\":"
                              "\"application/json\",\"Cache-Control\":\"no-store\"},\"body\":");
    if (!rc)
        rc = px_buf_json_str(out, body.data, body.len);
    if (!rc)
        rc = px_buf_adds(out, ",\"isBase64Encoded\":false}");
    out->max = max;
    px_buf_free(&body);
    return rc;
}

static void set_error(struct px_lambda_runtime *rt, struct px_lambda_post *post, const char *type,
                      const char *message, const char *request_id)
{
    PX_WARN(px_valid_request_id(request_id) ? request_id : NULL, "invocation failed (%s): %s", type,
            message);
    post->is_error = true;
    post->error_type = type;
    post->message = message;
    px_buf_clear(&rt->out);
    if (px_lambda_error_body(&rt->out, type, message) != PX_OK) {
        post->body = "";
        post->len = 0;
        return;
    }
    post->body = rt->out.data;
    post->len = rt->out.len;
}

/* One event-relay invocation: rounds until nothing is due or the deadline
 * is near; answers the counts and writes one EMF line with them. */
static void relay_handle(struct px_lambda_runtime *rt, const struct px_lambda_invocation *inv,
                         const char *rid, struct px_lambda_post *post)
{
    struct px_relay_stats before, after;
    px_relay_stats(rt->relay, &before);
    px_rc rc = PX_OK;
    for (int round = 0; round < 100000; round++) {
        size_t n = 0;
        rc = px_relay_round(rt->relay, &n);
        if (rc || !n || (inv->deadline_ms && wall_ms() > inv->deadline_ms - RELAY_MARGIN_MS))
            break;
    }
    px_rc frc = px_relay_refresh(rt->relay);
    px_relay_stats(rt->relay, &after);
    long long pub = (long long)(after.published - before.published);
    long long failed = (long long)(after.failed - before.failed);
    long long parked = (long long)(after.parked - before.parked);
    px_buf_clear(&rt->out);
    px_rc brc =
        px_buf_printf(&rt->out,
                      "{\"published\":%lld,\"failed\":%lld,\"parked\":%lld,"
                      "\"waiting\":%lld,\"lagMs\":%lld}",
                      pub, failed, parked, (long long)after.waiting, (long long)after.lag_ms);
    if (rc || frc || brc) {
        set_error(rt, post, "Function.OutboxUnavailable",
                  px_strerror(rc    ? rc
                              : frc ? frc
                                    : brc),
                  inv->request_id);
    } else {
        post->body = rt->out.data;
        post->len = rt->out.len;
    }
    const char *ns = rt->cfg.metrics_namespace[0] ? rt->cfg.metrics_namespace : "Pricing";
    const char *svc = rt->cfg.metrics_service[0] ? rt->cfg.metrics_service : "pricing";
    struct px_buf b;
    px_buf_init(&b, EMF_MAX);
    px_rc erc = px_buf_printf(&b,
                              "{\"_aws\":{\"Timestamp\":%lld,\"CloudWatchMetrics\":[{"
                              "\"Namespace\":",
                              (long long)wall_ms());
    if (!erc)
        erc = px_buf_json_strz(&b, ns);
    if (!erc)
        erc = px_buf_adds(&b, ",\"Dimensions\":[[\"service\"]],\"Metrics\":["
                              "{\"Name\":\"EventsPublished\",\"Unit\":\"Count\"},"
                              "{\"Name\":\"EventsFailed\",\"Unit\":\"Count\"},"
                              "{\"Name\":\"EventsParked\",\"Unit\":\"Count\"},"
                              "{\"Name\":\"EventsWaiting\",\"Unit\":\"Count\"},"
                              "{\"Name\":\"EventLag\",\"Unit\":\"Milliseconds\"}]}]},"
                              "\"service\":");
    if (!erc)
        erc = px_buf_json_strz(&b, svc);
    if (!erc)
        erc = px_buf_adds(&b, ",\"function\":\"" PX_EVENT_RELAY_HANDLER "\"");
    if (!erc && rid) {
        erc = px_buf_adds(&b, ",\"requestId\":");
        if (!erc)
            erc = px_buf_json_strz(&b, rid);
    }
    if (!erc)
        erc = px_buf_printf(&b,
                            ",\"EventsPublished\":%lld,\"EventsFailed\":%lld,\"EventsParked\":%lld,"
                            "\"EventsWaiting\":%lld,\"EventLag\":%lld}\n",
                            pub, failed, parked, (long long)after.waiting, (long long)after.lag_ms);
    if (!erc)
        write_all(STDOUT_FILENO, b.data, b.len);
    px_buf_free(&b);
}

void px_lambda_runtime_handle(struct px_lambda_runtime *rt, const struct px_lambda_invocation *inv,
                              struct px_lambda_post *post)
{
    bool cold = rt->invocations == 0;
    const char *rid = px_valid_request_id(inv->request_id) ? inv->request_id : NULL;
    memset(post, 0, sizeof(*post));
    rt->invocations++;
    if (px_lambda_set_trace_env(inv->trace_id) != PX_OK)
        PX_WARN(rid, "trace id too long; %s cleared", TRACE_VAR);
    px_log_set_cold_start(cold);
    if (rt->relay) {
        relay_handle(rt, inv, rid, post);
        px_log_set_cold_start(false);
        return;
    }

    struct px_invoke_result res = {0};
    double t0 = mono_ms();
    px_rc rc = PX_ERR_TOO_LARGE;
    px_buf_clear(&rt->out);
    if (inv->event_len <= PX_MAX_EVENT)
        rc = px_invoke_event(rt->app, rt->handler, inv->event ? inv->event : "", inv->event_len,
                             rid, inv->deadline_ms, &rt->out, &res);
    double latency = mono_ms() - t0;

    if (rc == PX_OK) {
        post->body = rt->out.data ? rt->out.data : "";
        post->len = rt->out.len;
    } else if (rc == PX_ERR_TOO_LARGE && inv->event_len <= PX_MAX_EVENT) {
        PX_ERROR(rid, "the response exceeds %zu bytes; answered 500 instead", rt->max_response);
        res.status = 500;
        res.error_code = "INTERNAL";
        if (too_large_response(&rt->out, rid ? rid : inv->request_id) == PX_OK) {
            post->body = rt->out.data;
            post->len = rt->out.len;
        } else {
            set_error(rt, post, "Function.ResponseSizeTooLarge", "the response is too large",
                      inv->request_id);
        }
    } else if (rc == PX_ERR_TOO_LARGE) {
        set_error(rt, post, "Function.EventTooLarge", "the event exceeds the 6 MB payload limit",
                  inv->request_id);
    } else if (rc == PX_ERR_INVALID) {
        set_error(rt, post, "Function.InvalidEvent",
                  "the event is not an API Gateway proxy event (REST 1.0 or HTTP API 2.0)",
                  inv->request_id);
    } else {
        set_error(rt, post, "Function.Internal", px_strerror(rc), inv->request_id);
    }
    emit_metrics(rt, rid, rc == PX_OK || !post->is_error ? &res : NULL, latency, cold);
    px_log_set_cold_start(false);
}

px_rc px_lambda_runtime_run(struct px_lambda_runtime *rt)
{
    struct px_lambda_invocation inv;
    struct px_lambda_post post;
    char ms[32];
    snprintf(ms, sizeof(ms), "%.2f", rt->init_ms);
    const struct px_kv f[] = {{"initMs", ms}};
    px_log_fields(PX_LOG_INFO, NULL, "runtime ready", f, PX_COUNTOF(f));
    for (;;) {
        if (rt->max_invocations && rt->invocations >= rt->max_invocations)
            return PX_OK;
        px_rc rc = px_lambda_next(rt->client, &inv);
        if (rc == PX_ERR_TOO_LARGE) {
            rt->invocations++;
            rc = px_lambda_post_error(rt->client, inv.request_id, "Function.EventTooLarge",
                                      "the event exceeds the 6 MB payload limit");
            if (rc == PX_ERR_UNAVAILABLE)
                return rc;
            continue;
        }
        if (rc)
            return rc;
        px_lambda_runtime_handle(rt, &inv, &post);
        if (post.is_error) {
            rc = px_lambda_post_error(rt->client, inv.request_id, post.error_type, post.message);
        } else {
            rc = px_lambda_post_response(rt->client, inv.request_id, post.body, post.len);
            if (rc == PX_ERR_TOO_LARGE)
                rc = px_lambda_post_error(rt->client, inv.request_id,
                                          "Function.ResponseSizeTooLarge",
                                          "the Runtime API refused the response as too large");
        }
        if (rc == PX_ERR_UNAVAILABLE)
            return rc;
        if (rc)
            PX_ERROR(inv.request_id[0] && px_valid_request_id(inv.request_id) ? inv.request_id
                                                                              : NULL,
                     "the Runtime API refused the answer: %s", px_strerror(rc));
    }
}
