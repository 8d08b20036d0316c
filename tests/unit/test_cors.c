/* test_cors.c: the CORS allow list, preflight and response headers, and the
 * security headers every response carries. Routes are the binary's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kernel/app.h"
#include "kernel/cors.h"
#include "kernel/security.h"

#define LIST "https://app.example.com, http://localhost:5173,https://[::1]:8443"

static const char *header(const struct px_response *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].key, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static size_t count_prefix(const struct px_response *r, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        if (strncasecmp(r->headers[i].key, prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

static void test_check_origins(void **state)
{
    (void)state;
    char err[256];
    const char *good[] = {
        "",
        "   ",
        "https://app.example.com",
        LIST,
        "http://127.0.0.1:3000",
        "HTTPS://App.Example.COM:443",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        err[0] = '\0';
        assert_int_equal(px_cors_check_origins(good[i], err, sizeof(err)), PX_OK);
    }
    assert_int_equal(px_cors_check_origins(NULL, err, sizeof(err)), PX_OK);
    const char *bad[] = {
        "*",
        "https://*.example.com",
        "null",
        "app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://app.example.com?x=1",
        "https://user@app.example.com",
        "https://app.example.com:0",
        "https://app.example.com:65536",
        "https://app.example.com:12a",
        "https://app.example.com,",
        "https://a.com,,https://b.com",
        "https://[]",
        "https://[zz::1]",
        "https://exa mple.com",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(px_cors_check_origins(bad[i], err, sizeof(err)), PX_ERR_CONFIG);
        assert_true(strlen(err) > 10);
    }
    char many[4096] = "";
    size_t len = 0;
    for (int i = 0; i <= PX_CORS_MAX_ORIGINS; i++)
        len += (size_t)snprintf(many + len, sizeof(many) - len, "%shttps://h%d.example",
                                i ? "," : "", i);
    assert_int_equal(px_cors_check_origins(many, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "at most"));
}

static void test_origin_allowed(void **state)
{
    (void)state;
    assert_true(px_cors_origin_allowed(LIST, "https://app.example.com"));
    assert_true(px_cors_origin_allowed(LIST, "http://localhost:5173"));
    assert_true(px_cors_origin_allowed(LIST, "https://[::1]:8443"));
    assert_true(px_cors_origin_allowed(LIST, "HTTPS://APP.EXAMPLE.COM"));
    /* Exact: no prefixes, suffixes, other schemes or ports. */
    assert_false(px_cors_origin_allowed(LIST, "https://app.example.com.evil.com"));
    assert_false(px_cors_origin_allowed(LIST, "https://app.example.co"));
    assert_false(px_cors_origin_allowed(LIST, "http://app.example.com"));
    assert_false(px_cors_origin_allowed(LIST, "http://localhost:5174"));
    assert_false(px_cors_origin_allowed(LIST, "http://localhost"));
    assert_false(px_cors_origin_allowed(LIST, "null"));
    assert_false(px_cors_origin_allowed(LIST, ""));
    assert_false(px_cors_origin_allowed(LIST, NULL));
    assert_false(px_cors_origin_allowed(LIST, "https://app.example.com, http://localhost:5173"));
    assert_false(px_cors_origin_allowed("", "https://app.example.com"));
    assert_false(px_cors_origin_allowed(NULL, "https://app.example.com"));
}

struct fixture {
    struct px_arena *arena;
    struct px_kv headers[8];
    struct px_request req;
    struct px_response resp;
};

static void setup_req(struct fixture *f, const char *method, const char *path)
{
    memset(f, 0, sizeof(*f));
    f->arena = px_arena_new(64 * 1024);
    assert_non_null(f->arena);
    f->req.arena = f->arena;
    f->req.method = method;
    f->req.path = path;
    f->req.headers = f->headers;
    f->req.request_id = "rid";
}

static void add_header(struct fixture *f, const char *k, const char *v)
{
    assert_true(f->req.nheaders < 8);
    f->headers[f->req.nheaders].key = k;
    f->headers[f->req.nheaders].value = v;
    f->req.nheaders++;
}

static void test_preflight(void **state)
{
    (void)state;
    size_t n = 0;
    const struct px_function *const *fns = px_functions(&n);
    assert_true(n > 0);
    struct fixture f;

    setup_req(&f, "OPTIONS", "/price");
    add_header(&f, "origin", "https://app.example.com");
    add_header(&f, "access-control-request-method", "GET");
    add_header(&f, "access-control-request-headers", "authorization");
    assert_true(px_cors_preflight(LIST, fns, n, &f.req, &f.resp));
    assert_int_equal(f.resp.status, 204);
    assert_int_equal(f.resp.body_len, 0);
    assert_string_equal(header(&f.resp, "Access-Control-Allow-Origin"), "https://app.example.com");
    assert_string_equal(header(&f.resp, "Access-Control-Allow-Methods"), "GET");
    assert_string_equal(header(&f.resp, "Access-Control-Allow-Headers"), PX_CORS_ALLOW_HEADERS);
    assert_string_equal(header(&f.resp, "Access-Control-Max-Age"), PX_CORS_MAX_AGE_S);
    assert_null(header(&f.resp, "Access-Control-Allow-Credentials"));
    assert_string_equal(f.req.route, "/price");
    assert_non_null(f.req.function);
    px_cors_headers(LIST, &f.req, &f.resp);
    assert_string_equal(header(&f.resp, "Vary"), "Origin");
    assert_int_equal(count_prefix(&f.resp, "Access-Control-Allow-Origin"), 1);
    px_arena_free(f.arena);

    /* Not a preflight, or not allowed: untouched, routing answers. */
    struct {
        const char *list, *method, *path, *origin, *acrm;
    } no[] = {
        {"", "OPTIONS", "/price", "https://app.example.com", "GET"},
        {NULL, "OPTIONS", "/price", "https://app.example.com", "GET"},
        {LIST, "OPTIONS", "/price", "https://evil.example.com", "GET"},
        {LIST, "OPTIONS", "/price", NULL, "GET"},
        {LIST, "OPTIONS", "/price", "https://app.example.com", NULL},
        {LIST, "GET", "/price", "https://app.example.com", "GET"},
        {LIST, "OPTIONS", "/nope", "https://app.example.com", "GET"},
        {LIST, "OPTIONS", "/health", "https://app.example.com", "GET"},
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        setup_req(&f, no[i].method, no[i].path);
        if (no[i].origin)
            add_header(&f, "origin", no[i].origin);
        if (no[i].acrm)
            add_header(&f, "access-control-request-method", no[i].acrm);
        assert_false(px_cors_preflight(no[i].list, fns, n, &f.req, &f.resp));
        assert_int_equal(f.resp.status, 0);
        assert_int_equal(f.resp.nheaders, 0);
        assert_null(f.req.route);
        px_arena_free(f.arena);
    }
}

static void test_response_headers(void **state)
{
    (void)state;
    struct fixture f;

    /* Empty list: nothing at all, whatever the Origin. */
    setup_req(&f, "GET", "/price");
    add_header(&f, "origin", "https://app.example.com");
    px_cors_headers("", &f.req, &f.resp);
    px_cors_headers(NULL, &f.req, &f.resp);
    assert_int_equal(f.resp.nheaders, 0);

    /* Allowed origin: echoed, never `*`, no credentials; Vary once. */
    px_cors_headers(LIST, &f.req, &f.resp);
    assert_string_equal(header(&f.resp, "Access-Control-Allow-Origin"), "https://app.example.com");
    assert_string_equal(header(&f.resp, "Access-Control-Expose-Headers"), PX_CORS_EXPOSE_HEADERS);
    assert_null(header(&f.resp, "Access-Control-Allow-Credentials"));
    assert_string_equal(header(&f.resp, "Vary"), "Origin");
    size_t before = f.resp.nheaders;
    px_cors_headers(LIST, &f.req, &f.resp);
    assert_int_equal(f.resp.nheaders, before);
    px_arena_free(f.arena);

    /* Denied or absent origin: Vary only, no Access-Control-*. */
    const char *origins[] = {"https://evil.example.com", NULL};
    for (size_t i = 0; i < 2; i++) {
        setup_req(&f, "GET", "/price");
        if (origins[i])
            add_header(&f, "origin", origins[i]);
        px_cors_headers(LIST, &f.req, &f.resp);
        assert_int_equal(count_prefix(&f.resp, "Access-Control-"), 0);
        assert_string_equal(header(&f.resp, "Vary"), "Origin");
        px_arena_free(f.arena);
    }

    /* A full header table keeps what is there. */
    setup_req(&f, "GET", "/price");
    add_header(&f, "origin", "https://app.example.com");
    for (int i = 0; i < PX_MAX_RESP_HEADERS; i++)
        assert_int_equal(px_response_header(&f.resp, "X-Filler", "x"), PX_OK);
    px_cors_headers(LIST, &f.req, &f.resp);
    assert_int_equal(f.resp.nheaders, PX_MAX_RESP_HEADERS);
    px_arena_free(f.arena);
}

static void test_security_headers(void **state)
{
    (void)state;
    struct fixture f;
    setup_req(&f, "GET", "/price");
    px_security_headers(&f.req, &f.resp);
    assert_string_equal(header(&f.resp, "Content-Security-Policy"), PX_CSP);
    assert_string_equal(header(&f.resp, "Referrer-Policy"), "no-referrer");
    assert_null(header(&f.resp, "Strict-Transport-Security"));
    size_t n = f.resp.nheaders;
    px_security_headers(&f.req, &f.resp);
    assert_int_equal(f.resp.nheaders, n);
    px_arena_free(f.arena);

    struct {
        const char *name, *value;
        bool tls;
    } cases[] = {
        {"x-forwarded-proto", "https", true},
        {"x-forwarded-proto", "HTTPS", true},
        {"x-forwarded-proto", " https, http", true},
        {"x-forwarded-proto", "http", false},
        {"x-forwarded-proto", "http, https", false},
        {"x-forwarded-proto", "httpsx", false},
        {"forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43", true},
        {"forwarded", "proto=\"https\"", true},
        {"forwarded", "for=192.0.2.60;proto=http, proto=https", false},
        {"forwarded", "xproto=https", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setup_req(&f, "GET", "/price");
        add_header(&f, cases[i].name, cases[i].value);
        assert_int_equal(px_security_behind_tls(&f.req), cases[i].tls);
        px_security_headers(&f.req, &f.resp);
        if (cases[i].tls)
            assert_string_equal(header(&f.resp, "Strict-Transport-Security"), PX_HSTS);
        else
            assert_null(header(&f.resp, "Strict-Transport-Security"));
        px_arena_free(f.arena);
    }
    /* An API Gateway event is HTTPS by construction. */
    setup_req(&f, "GET", "/price");
    f.req.api_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef";
    assert_true(px_security_behind_tls(&f.req));
    px_arena_free(f.arena);
    assert_false(px_security_behind_tls(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_origins),    cmocka_unit_test(test_origin_allowed),
        cmocka_unit_test(test_preflight),        cmocka_unit_test(test_response_headers),
        cmocka_unit_test(test_security_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
