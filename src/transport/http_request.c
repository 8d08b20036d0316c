/* http_request.c: checks on a raw HTTP request (see http_request.h). */
#include "http_request.h"
#include "kernel/query.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 section 5.6.2 tchar. */
static bool tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!tchar(*p))
            return false;
    return true;
}

/* field-value: VCHAR, SP, HTAB and obs-text; no other control character. */
static bool field_value_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7F)
            return false;
    return true;
}

enum px_http_verdict px_http_parse_target(struct px_arena *a, const char *raw,
                                          struct px_request *req)
{
    if (!raw)
        return PX_HTTP_NOMEM;
    /* A request target never holds raw spaces or control characters (RFC
     * 3986); MHD 0.9.75 passes some through, so they are refused here for
     * every route, whatever it does with its query. */
    for (const unsigned char *u = (const unsigned char *)raw; *u; u++)
        if (*u <= 0x20 || *u == 0x7F)
            return PX_HTTP_BAD_TARGET;
    const char *p = raw;
    size_t skip = 0;
    if (strncasecmp(p, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(p, "https://", 8) == 0)
        skip = 8;
    bool synthetic_root = false;
    if (skip) {
        p += skip;
        p += strcspn(p, "/?");
        synthetic_root = *p != '/';
    } else if (*p != '/' && strcmp(p, "*") != 0) {
        return PX_HTTP_BAD_TARGET; /* authority-form or garbage */
    }
    const char *q = strchr(p, '?');
    size_t plen = q ? (size_t)(q - p) : strlen(p);
    char *path = NULL;
    if (synthetic_root || (plen == 1 && p[0] == '*')) {
        path = px_arena_strdup(a, synthetic_root ? "/" : "*");
        if (!path)
            return PX_HTTP_NOMEM;
    } else {
        px_rc rc = px_url_decode_path(a, p, plen, &path);
        if (rc == PX_ERR_NOMEM)
            return PX_HTTP_NOMEM;
        if (rc)
            return PX_HTTP_BAD_TARGET;
    }
    req->path = path;
    req->query = NULL;
    req->nquery = 0;
    req->query_invalid = false;
    if (q) {
        px_rc rc = px_query_parse(a, q + 1, strlen(q + 1), &req->query, &req->nquery);
        if (rc == PX_ERR_NOMEM)
            return PX_HTTP_NOMEM;
        if (rc) {
            /* Validation answers 400 for a malformed query; nothing of it is kept. */
            req->query = NULL;
            req->nquery = 0;
            req->query_invalid = true;
        }
    }
    return PX_HTTP_OK;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* MHD 0.9.75 lets Transfer-Encoding win over Content-Length, treats any
 * other transfer coding as a body read until the connection closes, and
 * takes one of several Content-Length headers. Each of these is a
 * request-smuggling vector behind a proxy, so each is refused.
 *
 * Values are compared exactly as MHD reads them, never trimmed: MHD strips
 * the blanks after the colon (so a value never starts with one) but keeps
 * trailing ones, and compares Transfer-Encoding with "chunked" ignoring case
 * only. "chunked " is an unknown coding to MHD, so it must be one to us too.
 * Content-Length must be all digits: MHD answers 400 itself to anything
 * else before this runs, and this check keeps that true whatever MHD does.
 * A folded line (obs-fold) reaches us joined the way MHD joined it, so both
 * judge the same string. */
static enum px_http_verdict check_framing(const char *version, const struct px_kv *headers,
                                          size_t nheaders, size_t max_body)
{
    const char *cl = NULL, *te = NULL;
    size_t ncl = 0, nte = 0;
    for (size_t i = 0; i < nheaders; i++) {
        if (strcmp(headers[i].key, "content-length") == 0) {
            cl = headers[i].value;
            ncl++;
        } else if (strcmp(headers[i].key, "transfer-encoding") == 0) {
            te = headers[i].value;
            nte++;
        }
    }
    if (nte > 1 || ncl > 1 || (nte && ncl))
        return PX_HTTP_BAD_FRAMING;
    if (te) {
        /* RFC 9112 section 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing. */
        if (version && strcmp(version, "HTTP/1.0") == 0)
            return PX_HTTP_BAD_FRAMING;
        if (strcasecmp(te, "chunked") != 0)
            return PX_HTTP_BAD_FRAMING;
    }
    if (cl) {
        if (!all_digits(cl))
            return PX_HTTP_BAD_FRAMING;
        /* Past 19 digits strtoull could overflow; any such length is too large anyway. */
        if (strlen(cl) > 19)
            return PX_HTTP_TOO_LARGE;
        unsigned long long v = strtoull(cl, NULL, 10);
        if (v > max_body)
            return PX_HTTP_TOO_LARGE;
    }
    return PX_HTTP_OK;
}

enum px_http_verdict px_http_check_message(const char *method, const char *version,
                                           const struct px_kv *headers, size_t nheaders,
                                           size_t max_body)
{
    if (!is_token(method))
        return PX_HTTP_BAD_METHOD;
    size_t nhost = 0;
    for (size_t i = 0; i < nheaders; i++) {
        if (!is_token(headers[i].key) || !headers[i].value || !field_value_ok(headers[i].value))
            return PX_HTTP_BAD_HEADER;
        if (strcmp(headers[i].key, "host") == 0)
            nhost++;
    }
    /* RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request
     * without Host, and to any request with more than one. */
    bool v11 = version && strcmp(version, "HTTP/1.1") == 0;
    if (nhost > 1 || (v11 && nhost == 0))
        return PX_HTTP_BAD_HOST;
    return check_framing(version, headers, nheaders, max_body);
}

const char *px_http_verdict_name(enum px_http_verdict v)
{
    switch (v) {
    case PX_HTTP_OK:
        return "ok";
    case PX_HTTP_NOMEM:
        return "no-memory";
    case PX_HTTP_BAD_TARGET:
        return "bad-target";
    case PX_HTTP_BAD_METHOD:
        return "bad-method";
    case PX_HTTP_BAD_HEADER:
        return "bad-header";
    case PX_HTTP_BAD_HOST:
        return "bad-host";
    case PX_HTTP_BAD_FRAMING:
        return "bad-framing";
    case PX_HTTP_TOO_LARGE:
        return "too-large";
    }
    return "unknown";
}
