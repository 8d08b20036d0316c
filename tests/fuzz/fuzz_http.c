/* fuzz_http.c: the HTTP server's checks on raw requests, without sockets.
 *
 * A small splitter takes the input apart as MHD would (request line, header
 * lines ending in CR LF or a bare LF, lower-cased names) and hands the pieces
 * to what http_server.c applies to every request (http_request.h): method,
 * header and Host rules, Content-Length / Transfer-Encoding framing, the raw
 * target split with px_url_decode_path and px_query_parse. The Origin and
 * forwarding headers also go through the CORS allow list and the TLS
 * detection of the security headers. Each result is checked against the rule
 * it claims to enforce, recomputed here independently. fuzz_http_server.c
 * drives the real server over TCP (slower, end to end). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/cors.h"
#include "kernel/security.h"
#include "transport/http_request.h"

#define MAX_BODY 4096
#define ORIGINS  "https://app.example.com,http://localhost:5173"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_ctl(const char *s, bool tab_ok)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && !(tab_ok && *p == '\t')) || *p == 0x7F)
            return true;
    return false;
}

static void check_message(const char *method, const char *version, const struct px_kv *h, size_t n)
{
    enum px_http_verdict v = px_http_check_message(method, version, h, n, MAX_BODY);
    if ((int)v < PX_HTTP_OK || (int)v > PX_HTTP_TOO_LARGE)
        abort();
    if (v != PX_HTTP_OK)
        return;
    /* Accepted: recompute every rule. */
    if (!*method || has_ctl(method, false) || strchr(method, ' ') || strchr(method, ':'))
        abort();
    size_t ncl = 0, nte = 0, nhost = 0;
    for (size_t i = 0; i < n; i++) {
        if (!*h[i].key || has_ctl(h[i].key, false) || strpbrk(h[i].key, " :\t\"(),/;<=>?@[\\]{}"))
            abort();
        if (has_ctl(h[i].value, true))
            abort();
        if (strcmp(h[i].key, "content-length") == 0) {
            ncl++;
            const char *c = h[i].value;
            if (!*c || strspn(c, "0123456789") != strlen(c) || strlen(c) > 19 ||
                strtoull(c, NULL, 10) > MAX_BODY)
                abort();
        } else if (strcmp(h[i].key, "transfer-encoding") == 0) {
            nte++;
            const char *t = h[i].value + strspn(h[i].value, " \t");
            if (strncasecmp(t, "chunked", 7) != 0 || t[7 + strspn(t + 7, " \t")] != '\0')
                abort();
            if (strcmp(version, "HTTP/1.0") == 0)
                abort();
        } else if (strcmp(h[i].key, "host") == 0) {
            nhost++;
        }
    }
    if (ncl > 1 || nte > 1 || (ncl && nte) || nhost > 1)
        abort();
    if (nhost == 0 && strcmp(version, "HTTP/1.1") == 0)
        abort();
}

static void check_target(struct px_arena *a, const char *target)
{
    struct px_request req = {.arena = a};
    enum px_http_verdict v = px_http_parse_target(a, target, &req);
    if (v == PX_HTTP_OK) {
        if (!req.path || has_ctl(req.path, false))
            abort();
        if (req.path[0] != '/' && strcmp(req.path, "*") != 0)
            abort();
        if (req.query_invalid && (req.nquery || req.query))
            abort();
        for (size_t i = 0; i < req.nquery; i++)
            if (has_ctl(req.query[i].key, false) || has_ctl(req.query[i].value, false))
                abort();
        /* A raw target with a space or control character never passes. */
        if (strpbrk(target, " \x7f") || has_ctl(target, false))
            abort();
    } else if (v != PX_HTTP_BAD_TARGET && v != PX_HTTP_NOMEM) {
        abort();
    }
}

static void check_cors(const struct px_kv *h, size_t n)
{
    struct px_request req = {.headers = (struct px_kv *)h, .nheaders = n};
    const char *origin = px_request_header(&req, "origin");
    if (px_cors_origin_allowed(ORIGINS, origin)) {
        /* Only one of the two listed origins, whatever the case. */
        if (strcasecmp(origin, "https://app.example.com") != 0 &&
            strcasecmp(origin, "http://localhost:5173") != 0)
            abort();
    }
    if (origin) {
        char err[256];
        if (px_cors_check_origins(origin, err, sizeof(err)) == PX_OK && origin[0] &&
            !strchr(origin, ',') && strspn(origin, " \t") != strlen(origin)) {
            /* An accepted one-entry list allows that very origin (trimmed). */
            const char *s = origin + strspn(origin, " \t");
            size_t len = strlen(s);
            while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
            char one[512];
            if (len < sizeof(one)) {
                memcpy(one, s, len);
                one[len] = '\0';
                if (!px_cors_origin_allowed(origin, one))
                    abort();
            }
            if (strchr(origin, '*'))
                abort();
        }
    }
    (void)px_security_behind_tls(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct px_arena *a;
    if (!a)
        a = px_arena_new(1 << 20);
    else
        px_arena_reset(a);
    if (!a || size > 256 * 1024)
        return 0;
    char *text = px_arena_strndup(a, (const char *)data, size);
    if (!text)
        return 0;
    char *end = strstr(text, "\r\n\r\n");
    if (end)
        *end = '\0';
    /* Lines end at CR LF or a bare LF, as MHD accepts both. */
    char *lines[PX_MAX_HEADERS + 1];
    size_t nlines = 0;
    for (char *p = text; p && *p && nlines < PX_COUNTOF(lines);) {
        char *eol = strchr(p, '\n');
        if (eol) {
            *eol = '\0';
            if (eol > p && eol[-1] == '\r')
                eol[-1] = '\0';
        }
        lines[nlines++] = p;
        p = eol ? eol + 1 : NULL;
    }
    if (nlines == 0)
        return 0;
    /* Request line: method SP target SP version (MHD splits on the last space). */
    char *line = lines[0];
    char *sp1 = strchr(line, ' ');
    char *sp2 = strrchr(line, ' ');
    const char *method = line, *target = "", *version = "";
    if (sp1) {
        *sp1 = '\0';
        target = sp1 + 1;
        if (sp2 && sp2 > sp1) {
            *sp2 = '\0';
            version = sp2 + 1;
        }
    }
    struct px_kv headers[PX_MAX_HEADERS];
    size_t n = 0;
    for (size_t i = 1; i < nlines; i++) {
        char *h = lines[i];
        char *colon = strchr(h, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        for (char *k = h; *k; k++)
            if (*k >= 'A' && *k <= 'Z')
                *k = (char)(*k - 'A' + 'a');
        headers[n].key = h;
        headers[n].value = v;
        n++;
    }
    check_message(method, version, headers, n);
    check_target(a, target);
    check_cors(headers, n);
    return 0;
}
