/* cmd_smoke.c: `pricing smoke`: the checks run against a deployed API after
 * every deployment (dev, QA, UAT, PROD). They only read prices and the audit
 * trail; the one look-up they make is recorded under a fixed smoke-test user,
 * which is how the audit check finds it again. One line per check on stdout;
 * exit 1 when any check fails. Every request is bounded by --timeout-ms, and
 * the number of requests is bounded, so the whole run is too. */
#include "cli.h"
#include "kernel/validate.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SMOKE_USER_DEFAULT    "5e1f7e57-0000-4000-8000-000000000000"
#define SMOKE_PRODUCT_DEFAULT "PROD-101"
#define SMOKE_BODY_CAP        (1024 * 1024) /* an /audit page of 1000 records fits */
#define SMOKE_URL_CAP         4096
#define SMOKE_AUDIT_PAGES     20   /* pages followed looking for the record */
#define SMOKE_AUDIT_TRIES     3    /* the audit read is retried (index lag) */
#define SMOKE_AUDIT_WINDOW_S  3600 /* look at records of the last hour */

struct smoke_resp {
    long status;
    char request_id[PX_MAX_REQUEST_ID + 2]; /* one more: detects a longer id */
    char content_type[128];
    char *body; /* NUL-terminated, up to SMOKE_BODY_CAP */
    size_t len;
    bool overflow;
    char error[CURL_ERROR_SIZE];
};

struct smoke {
    CURL *h;
    struct curl_slist *headers;
    const char *base; /* without a trailing '/' */
    size_t base_len;
    long timeout_ms;
    int failed;
};

static void resp_reset(struct smoke_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct smoke_resp *r = ud;
    size_t len = size * n;
    if (len > SMOKE_BODY_CAP - r->len) {
        r->overflow = true;
        return 0; /* stops the transfer */
    }
    char *p = realloc(r->body, r->len + len + 1);
    if (!p)
        return 0;
    r->body = p;
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

/* Copies a header's value, trimmed, into dst (truncated to its size). */
static void header_value(const char *v, size_t n, char *dst, size_t cap)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    struct smoke_resp *r = ud;
    size_t len = size * n;
    static const char rid[] = "x-request-id:", ct[] = "content-type:";
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue, say): forget earlier headers. */
        r->request_id[0] = '\0';
        r->content_type[0] = '\0';
    } else if (len > sizeof(rid) - 1 && strncasecmp(data, rid, sizeof(rid) - 1) == 0) {
        header_value(data + sizeof(rid) - 1, len - (sizeof(rid) - 1), r->request_id,
                     sizeof(r->request_id));
    } else if (len > sizeof(ct) - 1 && strncasecmp(data, ct, sizeof(ct) - 1) == 0) {
        header_value(data + sizeof(ct) - 1, len - (sizeof(ct) - 1), r->content_type,
                     sizeof(r->content_type));
    }
    return len;
}

/* GET base + path_query into r. 0 when an HTTP response arrived (any status);
 * -1 with r->error set otherwise. */
static int smoke_get(struct smoke *s, const char *path_query, struct smoke_resp *r)
{
    char url[SMOKE_URL_CAP];
    resp_reset(r);
    int n = snprintf(url, sizeof(url), "%.*s%s", (int)s->base_len, s->base, path_query);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        snprintf(r->error, sizeof(r->error), "URL longer than %d bytes", SMOKE_URL_CAP);
        return -1;
    }
    CURL *h = s->h;
    curl_easy_reset(h);
    if (curl_easy_setopt(h, CURLOPT_URL, url) ||
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") ||
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) || curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) ||
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->headers) ||
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms) ||
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms) ||
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) ||
        curl_easy_setopt(h, CURLOPT_USERAGENT, "pricing-smoke/" PX_VERSION) ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->error) ||
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) ||
        curl_easy_setopt(h, CURLOPT_WRITEDATA, r) ||
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) ||
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r)) {
        snprintf(r->error, sizeof(r->error), "cannot set up the HTTP client");
        return -1;
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (r->overflow)
            snprintf(r->error, sizeof(r->error), "response body over %d bytes", SMOKE_BODY_CAP);
        else if (!r->error[0])
            snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(cc));
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    return 0;
}

static void report(struct smoke *s, const char *verdict, const char *check, const char *detail)
{
    if (strcmp(verdict, "FAIL") == 0)
        s->failed++;
    printf("%-4s %-8s %s\n", verdict, check, detail);
    fflush(stdout);
}

/* Checks every answer shares: a JSON body and a well-formed X-Request-Id.
 * Returns the parsed body (caller decrefs) or NULL with why filled in. */
static json_t *json_answer(const struct smoke_resp *r, char *why, size_t cap)
{
    if (strncasecmp(r->content_type, "application/json", 16) != 0) {
        snprintf(why, cap, "status %ld, Content-Type \"%.60s\", want application/json", r->status,
                 r->content_type);
        return NULL;
    }
    if (!r->request_id[0] || !px_valid_request_id(r->request_id)) {
        snprintf(why, cap, "status %ld, X-Request-Id missing or malformed (\"%.70s\")", r->status,
                 r->request_id);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = r->body ? json_loadb(r->body, r->len, 0, &jerr) : NULL;
    if (!json_is_object(j)) {
        snprintf(why, cap, "status %ld, body is not a JSON object: %.80s", r->status,
                 r->body ? r->body : "");
        json_decref(j);
        return NULL;
    }
    return j;
}

static const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* GET /health: the local server answers {"status":"ok"}; API Gateway has no
 * such route (404, or 401/403 before its authorizer), which is no failure. */
static void check_health(struct smoke *s, struct smoke_resp *r)
{
    char d[512];
    if (smoke_get(s, "/health", r) != 0) {
        snprintf(d, sizeof(d), "GET /health: %s", r->error);
        report(s, "FAIL", "health", d);
        return;
    }
    if (r->status == 404 || r->status == 401 || r->status == 403) {
        snprintf(d, sizeof(d), "GET /health: %ld, not routed here (API Gateway)", r->status);
        report(s, "skip", "health", d);
        return;
    }
    json_t *j = r->status == 200 ? json_answer(r, d, sizeof(d)) : NULL;
    const char *st = j ? jstr(j, "status") : NULL;
    if (j && st && strcmp(st, "ok") == 0) {
        snprintf(d, sizeof(d), "GET /health: 200 status ok");
        report(s, "ok", "health", d);
    } else {
        if (r->status != 200)
            snprintf(d, sizeof(d), "GET /health: status %ld, want 200 (or 404 behind API Gateway)",
                     r->status);
        else if (j)
            snprintf(d, sizeof(d), "GET /health: body has no \"status\":\"ok\"");
        report(s, "FAIL", "health", d);
    }
    json_decref(j);
}

static bool currency_ok(const char *c)
{
    if (!c || strlen(c) != 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (c[i] < 'A' || c[i] > 'Z')
            return false;
    return true;
}

/* GET /price for the smoke product: 200 {"productId","price","currency"}.
 * Copies the answer's X-Request-Id into rid (empty when the check failed). */
static void check_price(struct smoke *s, struct smoke_resp *r, const char *user,
                        const char *product, char *rid, size_t ridcap)
{
    char q[256], d[512];
    rid[0] = '\0';
    snprintf(q, sizeof(q), "/price?id=%s&userId=%s", product, user);
    if (smoke_get(s, q, r) != 0) {
        snprintf(d, sizeof(d), "GET /price: %s", r->error);
        report(s, "FAIL", "price", d);
        return;
    }
    json_t *j = json_answer(r, d, sizeof(d));
    if (j && r->status != 200) {
        const char *code = jstr(json_object_get(j, "error"), "code");
        snprintf(d, sizeof(d), "GET /price?id=%s: status %ld (%s), want 200", product, r->status,
                 code ? code : "no error code");
    } else if (j) {
        const char *pid = jstr(j, "productId"), *cur = jstr(j, "currency");
        json_t *price = json_object_get(j, "price");
        if (json_object_size(j) != 3 || !pid || strcmp(pid, product) != 0 ||
            !json_is_number(price) || json_number_value(price) < 0 || !currency_ok(cur)) {
            snprintf(
                d, sizeof(d),
                "GET /price: 200 but the body is not "
                "{\"productId\":\"%s\",\"price\":<number>,\"currency\":\"<ISO 4217>\"}: %.120s",
                product, r->body);
        } else {
            snprintf(rid, ridcap, "%s", r->request_id);
            snprintf(d, sizeof(d), "GET /price?id=%s: 200 %.120s (X-Request-Id %s)", product,
                     r->body, r->request_id);
            report(s, "ok", "price", d);
            json_decref(j);
            return;
        }
    }
    report(s, "FAIL", "price", d);
    json_decref(j);
}

/* Looks for rid in one /audit page. 1 found and right, 0 not on this page,
 * -1 wrong (why filled in). *next receives the page's nextCursor (borrowed
 * from j) or NULL. */
static int audit_page(const json_t *j, const char *rid, const char *user, const char *product,
                      const char **next, char *why, size_t cap)
{
    const json_t *items = json_object_get(j, "items");
    const json_t *nc = json_object_get(j, "nextCursor");
    *next = NULL;
    if (!json_is_array(items) || !(json_is_null(nc) || json_is_string(nc))) {
        snprintf(why, cap, "GET /audit: body is not {\"items\":[...],\"nextCursor\":...}");
        return -1;
    }
    *next = json_string_value(nc);
    size_t i;
    const json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *r = jstr(it, "requestId");
        if (!r || strcmp(r, rid) != 0)
            continue;
        const char *u = jstr(it, "userId"), *p = jstr(it, "productId"), *a = jstr(it, "action"),
                   *st = jstr(it, "status");
        if (!u || strcasecmp(u, user) != 0 || !p || strcmp(p, product) != 0 || !a ||
            strcmp(a, "PRICE_FETCH") != 0 || !st || strcmp(st, "SUCCESS") != 0) {
            snprintf(why, cap,
                     "GET /audit: the record of request %s does not say PRICE_FETCH SUCCESS of "
                     "%s by the smoke user",
                     rid, product);
            return -1;
        }
        return 1;
    }
    return 0;
}

/* GET /audit?userId=: the record of the price look-up is there. */
static void check_audit(struct smoke *s, struct smoke_resp *r, const char *user,
                        const char *product, const char *rid)
{
    char d[512], from[32], q[1024];
    if (!rid[0]) {
        report(s, "FAIL", "audit", "no successful price look-up to look for");
        return;
    }
    time_t since = time(NULL) - SMOKE_AUDIT_WINDOW_S;
    struct tm tm;
    if (!gmtime_r(&since, &tm) ||
        strftime(from, sizeof(from), "%Y-%m-%dT%H:%M:%S.000Z", &tm) == 0) {
        report(s, "FAIL", "audit", "cannot format the time window");
        return;
    }
    int pages = 0;
    for (int attempt = 0; attempt < SMOKE_AUDIT_TRIES; attempt++) {
        if (attempt) {
            const struct timespec pause = {.tv_sec = 1};
            nanosleep(&pause, NULL);
        }
        char cursor[1024] = "";
        for (int page = 0; page < SMOKE_AUDIT_PAGES; page++, pages++) {
            int n;
            if (cursor[0]) {
                char *esc = curl_easy_escape(s->h, cursor, 0);
                n = esc ? snprintf(q, sizeof(q), "/audit?userId=%s&from=%s&limit=1000&cursor=%s",
                                   user, from, esc)
                        : -1;
                curl_free(esc);
            } else {
                n = snprintf(q, sizeof(q), "/audit?userId=%s&from=%s&limit=1000", user, from);
            }
            if (n < 0 || (size_t)n >= sizeof(q)) {
                report(s, "FAIL", "audit", "GET /audit: cursor too long");
                return;
            }
            if (smoke_get(s, q, r) != 0) {
                snprintf(d, sizeof(d), "GET /audit: %s", r->error);
                report(s, "FAIL", "audit", d);
                return;
            }
            json_t *j = json_answer(r, d, sizeof(d));
            if (!j) {
                report(s, "FAIL", "audit", d);
                return;
            }
            if (r->status != 200) {
                const char *code = jstr(json_object_get(j, "error"), "code");
                snprintf(d, sizeof(d), "GET /audit?userId=: status %ld (%s), want 200", r->status,
                         code ? code : "no error code");
                json_decref(j);
                report(s, "FAIL", "audit", d);
                return;
            }
            const char *next;
            int found = audit_page(j, rid, user, product, &next, d, sizeof(d));
            if (found != 0) {
                json_decref(j);
                if (found < 0) {
                    report(s, "FAIL", "audit", d);
                } else {
                    snprintf(d, sizeof(d), "GET /audit?userId=: record of request %s present", rid);
                    report(s, "ok", "audit", d);
                }
                return;
            }
            bool more = next && strlen(next) < sizeof(cursor);
            if (more)
                memcpy(cursor, next, strlen(next) + 1);
            json_decref(j);
            if (!more)
                break;
        }
    }
    snprintf(d, sizeof(d),
             "GET /audit?userId=: no record of request %s after %d tries (%d pages): the look-up "
             "was answered without its audit record",
             rid, SMOKE_AUDIT_TRIES, pages);
    report(s, "FAIL", "audit", d);
}

/* GET /price with an invalid product id: 400 VALIDATION_FAILED naming "id". */
static void check_invalid(struct smoke *s, struct smoke_resp *r, const char *user)
{
    char q[256], d[512];
    snprintf(q, sizeof(q), "/price?id=not%%2Avalid&userId=%s", user);
    if (smoke_get(s, q, r) != 0) {
        snprintf(d, sizeof(d), "GET /price (bad id): %s", r->error);
        report(s, "FAIL", "invalid", d);
        return;
    }
    json_t *j = json_answer(r, d, sizeof(d));
    if (j) {
        const json_t *err = json_object_get(j, "error");
        const char *code = jstr(err, "code");
        const json_t *details = json_object_get(err, "details");
        bool names_id = false;
        size_t i;
        const json_t *it;
        json_array_foreach(details, i, it)
        {
            const char *f = jstr(it, "field");
            names_id = names_id || (f && strcmp(f, "id") == 0);
        }
        if (r->status == 400 && code && strcmp(code, "VALIDATION_FAILED") == 0 && names_id) {
            snprintf(d, sizeof(d), "GET /price?id=not*valid: 400 VALIDATION_FAILED (field id)");
            report(s, "ok", "invalid", d);
            json_decref(j);
            return;
        }
        snprintf(d, sizeof(d),
                 "GET /price?id=not*valid: status %ld, want 400 VALIDATION_FAILED naming field "
                 "id: %.120s",
                 r->status, r->body ? r->body : "");
    }
    report(s, "FAIL", "invalid", d);
    json_decref(j);
}

int px_cmd_smoke(int argc, char **argv)
{
    const char *base = NULL, *token = NULL, *user = NULL, *product = NULL, *timeout_s = NULL;
    const struct px_cli_flag flags[] = {
        {"--base-url", true, &base, NULL,
         "API root, e.g. https://ID.execute-api.REGION.amazonaws.com"},
        {"--token", true, &token, NULL, "bearer token for the JWT authorizer (or SMOKE_TOKEN)"},
        {"--user", true, &user, NULL, "smoke-test user id (default " SMOKE_USER_DEFAULT ")"},
        {"--product", true, &product, NULL, "product that has a price (default PROD-101)"},
        {"--timeout-ms", true, &timeout_s, NULL, "bound on each request, 100-60000 (default 5000)"},
    };
    const struct px_cli_cmd cmd = {
        .name = "smoke",
        .synopsis =
            "smoke --base-url URL [--token T] [--user UUID] [--product ID] [--timeout-ms N]",
        .summary = "read-only checks of a deployed API: health, price, audit record, validation",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
    };
    const char *args[1];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, NULL, args, &nargs);
    if (st >= 0)
        return st;
    if (!token || !*token)
        token = getenv("SMOKE_TOKEN");
    user = user ? user : SMOKE_USER_DEFAULT;
    product = product ? product : SMOKE_PRODUCT_DEFAULT;
    long timeout_ms = 5000;
    const char *bad = NULL;
    if (!base)
        bad = "--base-url is required";
    else if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        bad = "--base-url must start with http:// or https://";
    else if (strlen(base) > 2048 || strpbrk(base, "?# \t\r\n"))
        bad = "--base-url must be a URL without query or fragment";
    else if (!px_valid_uuid(user))
        bad = "--user must be a UUID";
    else if (!px_valid_product_id(product))
        bad = "--product must be a product id";
    else if (token && (strlen(token) > 8192 || strpbrk(token, "\r\n")))
        bad = "--token must be one line of at most 8192 characters";
    else if (timeout_s) {
        char *end;
        errno = 0;
        timeout_ms = strtol(timeout_s, &end, 10);
        if (errno || *end || end == timeout_s || timeout_ms < 100 || timeout_ms > 60000)
            bad = "--timeout-ms must be an integer between 100 and 60000";
    }
    if (bad) {
        fprintf(stderr, "pricing smoke: %s\n", bad);
        px_cli_usage(&cmd, stderr);
        return PX_EXIT_USAGE;
    }
    char lower[PX_UUID_LEN + 1];
    for (size_t i = 0; i <= PX_UUID_LEN; i++)
        lower[i] = (char)(user[i] >= 'A' && user[i] <= 'F' ? user[i] + 32 : user[i]);

    struct smoke s = {.base = base, .base_len = strlen(base), .timeout_ms = timeout_ms};
    while (s.base_len > 0 && s.base[s.base_len - 1] == '/')
        s.base_len--;
    struct smoke_resp r = {0};
    char auth[8300], rid[PX_MAX_REQUEST_ID + 2];
    int status = PX_EXIT_FAIL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "pricing smoke: cannot initialise libcurl\n");
        return PX_EXIT_FAIL;
    }
    s.h = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Accept: application/json");
    if (hl && token && *token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        struct curl_slist *more = curl_slist_append(hl, auth);
        if (!more) {
            curl_slist_free_all(hl);
            hl = NULL;
        } else {
            hl = more;
        }
        memset(auth, 0, sizeof(auth));
    }
    s.headers = hl;
    if (!s.h || !s.headers) {
        fprintf(stderr, "pricing smoke: out of memory\n");
        goto out;
    }
    check_health(&s, &r);
    check_price(&s, &r, lower, product, rid, sizeof(rid));
    check_audit(&s, &r, lower, product, rid);
    check_invalid(&s, &r, lower);
    printf("smoke: %s (%d failed)\n", s.failed ? "FAILED" : "passed", s.failed);
    status = s.failed ? PX_EXIT_FAIL : PX_EXIT_OK;
out:
    resp_reset(&r);
    curl_slist_free_all(s.headers);
    if (s.h)
        curl_easy_cleanup(s.h);
    curl_global_cleanup();
    return status;
}
