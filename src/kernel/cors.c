/* cors.c: CORS allow list, preflight and response headers (see cors.h). */
#include "cors.h"

#include "router.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ORIGIN_MAX  300 /* scheme + 253-byte host + port */
#define METHODS_MAX 128

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Next entry of a comma-separated list, trimmed: *p advances past it. */
static bool next_entry(const char **p, const char **start, size_t *len)
{
    if (!**p)
        return false;
    const char *s = *p;
    size_t n = strcspn(s, ",");
    *p = s[n] ? s + n + 1 : s + n;
    while (n && is_space(*s)) {
        s++;
        n--;
    }
    while (n && is_space(s[n - 1]))
        n--;
    *start = s;
    *len = n;
    return true;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

/* Serialized-origin syntax: scheme "://" host [":" port], nothing else. */
static const char *origin_problem(const char *s, size_t n)
{
    if (n == 0)
        return "an empty entry";
    if (memchr(s, '*', n))
        return "a wildcard (list exact origins)";
    if (n > ORIGIN_MAX)
        return "an origin longer than 300 characters";
    size_t skip;
    if (n > 7 && strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (n > 8 && strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else
        return "an origin that does not start with http:// or https://";
    const char *h = s + skip, *end = s + n;
    const char *p = h;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close || close == p + 1)
            return "a malformed IPv6 host";
        for (const char *q = p + 1; q < close; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
                  (*q >= 'A' && *q <= 'F') || *q == ':' || *q == '.'))
                return "a malformed IPv6 host";
        p = close + 1;
    } else {
        while (p < end && host_char(*p))
            p++;
        if (p == h)
            return "an origin without a host";
    }
    if (p < end && *p == ':') {
        p++;
        const char *digits = p;
        unsigned long port = 0;
        while (p < end && *p >= '0' && *p <= '9' && p - digits < 6)
            port = port * 10 + (unsigned long)(*p++ - '0');
        if (p == digits || port == 0 || port > 65535)
            return "an origin with a bad port";
    }
    if (p != end)
        return "an origin with a path, query or stray character (use scheme://host[:port])";
    return NULL;
}

px_rc px_cors_check_origins(const char *list, char *err, size_t errlen)
{
    if (!list)
        return PX_OK;
    const char *p = list;
    while (is_space(*p))
        p++;
    if (!*p)
        return PX_OK;
    const char *s;
    size_t n, count = 0;
    while (next_entry(&p, &s, &n)) {
        const char *problem = origin_problem(s, n);
        if (problem) {
            snprintf(err, errlen,
                     "must be a comma-separated list of origins such as "
                     "https://app.example.com; found %s",
                     problem);
            return PX_ERR_CONFIG;
        }
        if (++count > PX_CORS_MAX_ORIGINS) {
            snprintf(err, errlen, "at most %d origins", PX_CORS_MAX_ORIGINS);
            return PX_ERR_CONFIG;
        }
    }
    /* "a," leaves a last empty entry that the loop above never sees. */
    size_t len = strlen(list);
    while (len && is_space(list[len - 1]))
        len--;
    if (len && list[len - 1] == ',') {
        snprintf(err, errlen, "must be a comma-separated list of origins; found an empty entry");
        return PX_ERR_CONFIG;
    }
    return PX_OK;
}

static bool list_empty(const char *list)
{
    if (!list)
        return true;
    while (is_space(*list))
        list++;
    return *list == '\0';
}

bool px_cors_origin_allowed(const char *list, const char *origin)
{
    if (!origin || list_empty(list))
        return false;
    size_t ol = strlen(origin);
    if (ol == 0 || ol > ORIGIN_MAX)
        return false;
    const char *p = list, *s;
    size_t n;
    for (unsigned guard = 0; guard <= PX_CORS_MAX_ORIGINS && next_entry(&p, &s, &n); guard++) {
        if (n == ol && strncasecmp(s, origin, n) == 0)
            return true;
    }
    return false;
}

/* Appends method to a ", "-separated list unless already there. */
static void methods_add(char *out, size_t *len, const char *m)
{
    size_t ml = strlen(m);
    for (const char *p = out; *p;) {
        size_t l = strcspn(p, ",");
        if (l == ml && memcmp(p, m, ml) == 0)
            return;
        p += l;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (*len + ml + 2 >= METHODS_MAX)
        return;
    if (*len) {
        memcpy(out + *len, ", ", 2);
        *len += 2;
    }
    memcpy(out + *len, m, ml);
    *len += ml;
    out[*len] = '\0';
}

bool px_cors_preflight(const char *list, const struct px_function *const *fns, size_t nfns,
                       struct px_request *req, struct px_response *resp)
{
    if (!req->method || strcmp(req->method, "OPTIONS") != 0 || !req->path)
        return false;
    const char *origin = px_request_header(req, "origin");
    if (!px_request_header(req, "access-control-request-method") ||
        !px_cors_origin_allowed(list, origin))
        return false;
    char methods[METHODS_MAX] = "";
    size_t mlen = 0;
    const struct px_function *fn0 = NULL;
    const struct px_route *r0 = NULL;
    for (size_t f = 0; f < nfns; f++) {
        if (!fns[f])
            continue;
        for (size_t i = 0; i < fns[f]->nroutes; i++) {
            const struct px_route *r = &fns[f]->routes[i];
            if (!r->method || !px_router_path_match(r->pattern, req->path, NULL, NULL, NULL))
                continue;
            if (!r0) {
                fn0 = fns[f];
                r0 = r;
            }
            methods_add(methods, &mlen, r->method);
        }
    }
    if (!r0)
        return false;
    char *allow = px_arena_strndup(req->arena, methods, mlen);
    if (!allow)
        return false;
    memset(resp, 0, sizeof(*resp));
    req->function = fn0->name;
    req->route = r0->pattern;
    resp->status = 204;
    resp->body = "";
    resp->body_len = 0;
    /* Four headers into an empty table cannot fail. */
    px_rc rc = px_response_header(resp, "Access-Control-Allow-Origin", origin);
    if (!rc)
        rc = px_response_header(resp, "Access-Control-Allow-Methods", allow);
    if (!rc)
        rc = px_response_header(resp, "Access-Control-Allow-Headers", PX_CORS_ALLOW_HEADERS);
    if (!rc)
        rc = px_response_header(resp, "Access-Control-Max-Age", PX_CORS_MAX_AGE_S);
    return true;
}

void px_cors_headers(const char *list, const struct px_request *req, struct px_response *resp)
{
    if (list_empty(list))
        return;
    /* The answer depends on Origin whenever a list exists: caches must key on it. */
    px_response_header_default(resp, "Vary", "Origin");
    const char *origin = px_request_header(req, "origin");
    if (!px_cors_origin_allowed(list, origin))
        return;
    px_response_header_default(resp, "Access-Control-Allow-Origin", origin);
    px_response_header_default(resp, "Access-Control-Expose-Headers", PX_CORS_EXPOSE_HEADERS);
}
