/* test_apigw.c: API Gateway proxy events, against the AWS runtimes' own fixtures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/apigw.h"
#include "px_test.h"

extern px_rc px_apigw_b64_decode(struct px_arena *a, const char *s, size_t n, char **out,
                                 size_t *outlen);

#define FIXTURE_BODY "{\r\n\t\"a\": 1\r\n}"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static const char *testdata(void)
{
    return px_test_data();
}

struct parsed {
    struct px_arena *a;
    struct px_request req;
    enum px_apigw_format fmt;
};

static px_rc parse_str(struct parsed *p, const char *json, size_t len)
{
    memset(p, 0, sizeof(*p));
    p->a = px_arena_new(8 << 20);
    assert_non_null(p->a);
    return px_apigw_parse(p->a, json, len, &p->req, &p->fmt);
}

static void parse_fixture(struct parsed *p, const char *rel)
{
    char path[1024];
    size_t len;
    snprintf(path, sizeof(path), "%s/apigw-events/%s", testdata(), rel);
    char *json = read_file(path, &len);
    px_rc rc = parse_str(p, json, len);
    if (rc)
        fail_msg("%s: %s", rel, px_strerror(rc));
    free(json);
}

static void done(struct parsed *p)
{
    px_arena_free(p->a);
    p->a = NULL;
}

/* The i-th value of query key k (0-based among repeats), or NULL. */
static const char *qval(const struct px_request *r, const char *k, size_t nth)
{
    for (size_t i = 0; i < r->nquery; i++)
        if (strcmp(r->query[i].key, k) == 0 && nth-- == 0)
            return r->query[i].value;
    return NULL;
}

static const char *hval(const struct px_request *r, const char *k, size_t nth)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].key, k) == 0 && nth-- == 0)
            return r->headers[i].value;
    return NULL;
}

static void assert_headers_lower(const struct px_request *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        for (const char *c = r->headers[i].key; *c; c++)
            assert_false(*c >= 'A' && *c <= 'Z');
}

static void assert_body(const struct px_request *r, const char *want)
{
    assert_non_null(r->body);
    assert_int_equal(r->body_len, strlen(want));
    assert_memory_equal(r->body, want, r->body_len);
}

/* Every fixture in both directories parses. */
static void test_every_fixture(void **state)
{
    (void)state;
    static const char *const dirs[] = {"aws-lambda-go", "aws-lambda-rust-runtime"};
    size_t total = 0;
    for (size_t d = 0; d < 2; d++) {
        char dpath[1024];
        snprintf(dpath, sizeof(dpath), "%s/apigw-events/%s", testdata(), dirs[d]);
        DIR *dir = opendir(dpath);
        assert_non_null(dir);
        struct dirent *e;
        while ((e = readdir(dir))) {
            size_t l = strlen(e->d_name);
            if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
                continue; /* LICENSE files */
            char rel[600];
            snprintf(rel, sizeof(rel), "%s/%s", dirs[d], e->d_name);
            struct parsed p;
            parse_fixture(&p, rel);
            assert_non_null(p.req.method);
            assert_true(p.fmt == PX_APIGW_V1 || p.fmt == PX_APIGW_V2);
            assert_ptr_equal(p.req.arena, p.a);
            assert_non_null(p.req.api_request_id);
            assert_headers_lower(&p.req);
            done(&p);
            total++;
        }
        closedir(dir);
    }
    assert_int_equal(total, 8);
}

static void test_v1_rest(void **state)
{
    (void)state;
    struct parsed p;
    parse_fixture(&p, "aws-lambda-go/apigw-request.json");
    const struct px_request *r = &p.req;
    assert_int_equal(p.fmt, PX_APIGW_V1);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->path, "/hello/world");
    assert_int_equal(r->nquery, 1);
    assert_string_equal(qval(r, "name", 0), "me");
    assert_false(r->query_invalid);
    assert_int_equal(r->nheaders, 19);
    assert_string_equal(hval(r, "accept", 0), "*/*");
    assert_string_equal(hval(r, "content-type", 0), "application/json");
    assert_string_equal(hval(r, "x-forwarded-for", 0), "54.240.196.186, 54.182.214.83");
    assert_string_equal(hval(r, "host", 0), "gy415nuibc.execute-api.us-east-1.amazonaws.com");
    assert_string_equal(px_request_header(r, "user-agent"), "PostmanRuntime/2.4.5");
    assert_body(r, FIXTURE_BODY);
    assert_string_equal(r->api_request_id, "deef4878-7910-11e6-8f14-25afc3e9ae33");
    assert_string_equal(r->source_ip, "192.168.196.186");
    assert_string_equal(r->identity.subject, "admin"); /* principalId */
    assert_null(r->identity.scopes);
    done(&p);
}

static void test_v1_multi_value(void **state)
{
    (void)state;
    struct parsed p;
    parse_fixture(&p, "aws-lambda-rust-runtime/example-apigw-request-multi-value-parameters.json");
    const struct px_request *r = &p.req;
    assert_int_equal(p.fmt, PX_APIGW_V1);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->path, "/hello/world");
    /* the repeat is visible, not just the last value of queryStringParameters */
    assert_int_equal(r->nquery, 2);
    assert_string_equal(qval(r, "name", 0), "me");
    assert_string_equal(qval(r, "name", 1), "me2");
    assert_string_equal(hval(r, "headername", 0), "headerValue");
    assert_string_equal(hval(r, "headername", 1), "headerValue2");
    assert_null(hval(r, "headername", 2));
    assert_body(r, FIXTURE_BODY);
    done(&p);
}

static void test_v1_console_nulls(void **state)
{
    (void)state;
    struct parsed p;
    parse_fixture(&p, "aws-lambda-rust-runtime/example-apigw-console-test-request.json");
    const struct px_request *r = &p.req;
    assert_int_equal(p.fmt, PX_APIGW_V1);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->path, "/myPath");
    assert_int_equal(r->nquery, 0);
    assert_int_equal(r->nheaders, 0);
    assert_false(r->query_invalid);
    assert_body(r, FIXTURE_BODY);
    assert_string_equal(r->api_request_id, "e5488776-afe4-4e5e-92b1-37bd23f234d6");
    assert_string_equal(r->source_ip, "test-invoke-source-ip");
    assert_null(r->identity.subject);
    done(&p);
}

static void test_v2_multi_value(void **state)
{
    (void)state;
    struct parsed p;
    parse_fixture(&p,
                  "aws-lambda-rust-runtime/example-apigw-v2-request-multi-value-parameters.json");
    const struct px_request *r = &p.req;
    assert_int_equal(p.fmt, PX_APIGW_V2);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/my/path");
    /* from rawQueryString, not the comma-joined queryStringParameters */
    assert_int_equal(r->nquery, 2);
    assert_string_equal(r->query[0].key, "Parameter1");
    assert_string_equal(r->query[0].value, "value1");
    assert_string_equal(r->query[1].key, "Parameter1");
    assert_string_equal(r->query[1].value, "value2");
    assert_string_equal(hval(r, "header2", 0), "value1,value2");
    assert_string_equal(hval(r, "cookie", 0), "cookie1; cookie2");
    assert_string_equal(r->api_request_id, "id");
    assert_string_equal(r->source_ip, "IP");
    assert_null(r->identity.subject); /* a Lambda authorizer: no jwt */
    assert_body(r, FIXTURE_BODY);
    done(&p);
}

static void test_v2_jwt(void **state)
{
    (void)state;
    struct parsed p;
    parse_fixture(&p, "aws-lambda-go/apigw-v2-request-jwt-authorizer.json");
    const struct px_request *r = &p.req;
    assert_int_equal(p.fmt, PX_APIGW_V2);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/my/path");
    assert_int_equal(r->nquery, 3);
    assert_string_equal(qval(r, "parameter1", 0), "value1");
    assert_string_equal(qval(r, "parameter1", 1), "value2");
    assert_string_equal(qval(r, "parameter2", 0), "value");
    assert_string_equal(hval(r, "header1", 0), "value1");
    assert_string_equal(hval(r, "cookie", 0), "cookie1; cookie2");
    /* the fixture's claims carry no "sub"; its scopes come through */
    assert_null(r->identity.subject);
    assert_non_null(r->identity.scopes);
    assert_string_equal(r->identity.scopes[0], "scope1");
    assert_string_equal(r->identity.scopes[1], "scope2");
    assert_null(r->identity.scopes[2]);
    done(&p);

    parse_fixture(&p, "aws-lambda-go/apigw-v2-request-iam.json");
    assert_int_equal(p.fmt, PX_APIGW_V2);
    assert_null(p.req.identity.subject);
    assert_null(p.req.identity.scopes);
    assert_int_equal(p.req.nquery, 3);
    done(&p);
}

static void test_v2_no_authorizer(void **state)
{
    (void)state;
    struct parsed p;
    parse_fixture(&p, "aws-lambda-go/apigw-v2-request-no-authorizer.json");
    const struct px_request *r = &p.req;
    assert_int_equal(p.fmt, PX_APIGW_V2);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/");
    assert_int_equal(r->nquery, 0);
    assert_int_equal(r->nheaders, 8);
    assert_string_equal(hval(r, "user-agent", 0), "curl/7.58.0");
    assert_null(hval(r, "cookie", 0));
    assert_null(r->body);
    assert_int_equal(r->body_len, 0);
    assert_string_equal(r->api_request_id, "LV7fzho-PHcEJPw=");
    assert_string_equal(r->source_ip, "1.2.3.4");
    done(&p);
}

static void test_v2_sam(void **state)
{
    (void)state;
    struct parsed p;
    parse_fixture(&p, "aws-lambda-rust-runtime/example-apigw-sam-http-request.json");
    const struct px_request *r = &p.req;
    assert_int_equal(p.fmt, PX_APIGW_V2);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/dump");
    assert_int_equal(r->nquery, 1);
    assert_string_equal(qval(r, "foo", 0), "bar");
    assert_string_equal(hval(r, "host", 0), "127.0.0.1:3000");
    assert_string_equal(hval(r, "sec-ch-ua-platform", 0), "\"macOS\"");
    assert_null(hval(r, "cookie", 0)); /* cookies: [] */
    assert_non_null(r->body);
    assert_int_equal(r->body_len, 0);
    assert_string_equal(r->source_ip, "127.0.0.1");
    assert_string_equal(r->api_request_id, "b3ea2f1a-9f2a-48a4-8791-0db24e5d40e5");
    done(&p);
}

static px_rc parse_z(struct parsed *p, const char *json)
{
    return parse_str(p, json, strlen(json));
}

static void test_identity(void **state)
{
    (void)state;
    struct parsed p;
    assert_int_equal(
        parse_z(&p, "{\"version\":\"2.0\",\"rawPath\":\"/price\",\"requestContext\":{\"http\":"
                    "{\"method\":\"GET\"},\"authorizer\":{\"jwt\":{\"claims\":{\"sub\":\"user-1\","
                    "\"scope\":\"  prices:read  audit:read\"},\"scopes\":null}}}}"),
        PX_OK);
    assert_string_equal(p.req.identity.subject, "user-1");
    assert_string_equal(p.req.identity.scopes[0], "prices:read");
    assert_string_equal(p.req.identity.scopes[1], "audit:read");
    assert_null(p.req.identity.scopes[2]);
    done(&p);

    assert_int_equal(
        parse_z(&p, "{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":\"GET\"},"
                    "\"authorizer\":{\"jwt\":{\"claims\":{\"sub\":\"u2\",\"scope\":\"x\"},"
                    "\"scopes\":[\"a\",\"b\"]}}}}"),
        PX_OK);
    assert_string_equal(p.req.identity.subject, "u2");
    assert_string_equal(p.req.identity.scopes[0], "a"); /* the array wins */
    assert_string_equal(p.req.identity.scopes[1], "b");
    assert_null(p.req.identity.scopes[2]);
    done(&p);

    /* 1.0 Cognito authorizer: claims.sub wins over principalId */
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"GET\",\"requestContext\":{\"authorizer\":{"
                                 "\"principalId\":\"p\",\"claims\":{\"sub\":\"cog-1\","
                                 "\"scope\":\"prices:read\"}}}}"),
                     PX_OK);
    assert_string_equal(p.req.identity.subject, "cog-1");
    assert_string_equal(p.req.identity.scopes[0], "prices:read");
    assert_null(p.req.identity.scopes[1]);
    done(&p);

    /* an over-long subject or a wrong type is an invalid event */
    char ev[1024];
    char sub[PX_MAX_PRINCIPAL + 2];
    memset(sub, 's', sizeof(sub) - 1);
    sub[sizeof(sub) - 1] = '\0';
    snprintf(
        ev, sizeof(ev),
        "{\"httpMethod\":\"GET\",\"requestContext\":{\"authorizer\":{\"principalId\":\"%s\"}}}",
        sub);
    assert_int_equal(parse_z(&p, ev), PX_ERR_INVALID);
    done(&p);
    assert_int_equal(parse_z(&p, "{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":"
                                 "\"GET\"},\"authorizer\":{\"jwt\":{\"claims\":{\"sub\":7}}}}}"),
                     PX_ERR_INVALID);
    done(&p);
}

/* Checks that scopes holds exactly the NULL-terminated list want (NULL: none). */
static void expect_scopes(const struct parsed *p, const char *const *want)
{
    const char **got = p->req.identity.scopes;
    if (!want || !want[0]) {
        if (got)
            fail_msg("no permissions wanted, got \"%s\"...", got[0]);
        return;
    }
    assert_non_null(got);
    size_t i = 0;
    for (; want[i]; i++) {
        if (!got[i])
            fail_msg("permission %zu missing, want \"%s\"", i, want[i]);
        assert_string_equal(got[i], want[i]);
    }
    if (got[i])
        fail_msg("extra permission \"%s\"", got[i]);
}

#define V1_CLAIMS(c)                                                                               \
    "{\"httpMethod\":\"GET\",\"requestContext\":{\"authorizer\":{\"claims\":{" c "}}}}"
#define V2_JWT(c, scopes)                                                                          \
    "{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":\"GET\"},\"authorizer\":{"      \
    "\"jwt\":{\"claims\":{" c "},\"scopes\":" scopes "}}}}"

static void test_roles(void **state)
{
    (void)state;
    static const struct {
        const char *event;
        const char *want[6];
    } cases[] = {
        /* REST 1.0: the claim is the token's array */
        {V1_CLAIMS("\"sub\":\"u\",\"roles\":[\"price:read\",\"audit:read\"]"),
         {"price:read", "audit:read"}},
        {V1_CLAIMS("\"sub\":\"u\",\"scope\":\"a b\",\"roles\":[\"c\",null,\"\",\"d\"]"),
         {"a", "b", "c", "d"}},
        {V1_CLAIMS("\"sub\":\"u\",\"roles\":[]"), {NULL}},
        {V1_CLAIMS("\"sub\":\"u\",\"roles\":null"), {NULL}},
        /* a 1.0 authorizer that stringified it, as HTTP API does */
        {V1_CLAIMS("\"sub\":\"u\",\"roles\":\"[price:read]\""), {"price:read"}},
        /* HTTP API 2.0 flattens arrays: "[a b]" */
        {V2_JWT("\"sub\":\"u\",\"roles\":\"[price:read audit:read]\"", "null"),
         {"price:read", "audit:read"}},
        {V2_JWT("\"sub\":\"u\",\"roles\":\"[price:read]\"", "null"), {"price:read"}},
        {V2_JWT("\"sub\":\"u\",\"roles\":\"[]\"", "null"), {NULL}},
        {V2_JWT("\"sub\":\"u\",\"roles\":\"\"", "null"), {NULL}},
        {V2_JWT("\"sub\":\"u\",\"roles\":\" [ a ,  b,c ] \"", "null"), {"a", "b", "c"}},
        /* a plain string is one role, or blank-separated roles */
        {V2_JWT("\"sub\":\"u\",\"roles\":\"price:read\"", "null"), {"price:read"}},
        {V2_JWT("\"sub\":\"u\",\"roles\":\"a b\"", "null"), {"a", "b"}},
        /* a JSON array written into the string is read as JSON */
        {V2_JWT("\"sub\":\"u\",\"roles\":\"[\\\"a b\\\",\\\"c\\\"]\"", "null"), {"a b", "c"}},
        /* brackets that are not a JSON array of strings: words */
        {V2_JWT("\"sub\":\"u\",\"roles\":\"[1,2]\"", "null"), {"1", "2"}},
        /* after the scopes: jwt.scopes (which wins over the scope claim), then roles */
        {V2_JWT("\"sub\":\"u\",\"scope\":\"x\",\"roles\":\"[r1 r2]\"", "[\"s1\",\"s2\"]"),
         {"s1", "s2", "r1", "r2"}},
        {V2_JWT("\"sub\":\"u\",\"scope\":\"x y\",\"roles\":\"[r1]\"", "null"), {"x", "y", "r1"}},
        {V2_JWT("\"sub\":\"u\",\"scope\":\"x\"", "null"), {"x"}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct parsed p;
        px_rc rc = parse_z(&p, cases[i].event);
        if (rc)
            fail_msg("case %zu %s: rc %d", i, cases[i].event, rc);
        assert_string_equal(p.req.identity.subject, "u");
        expect_scopes(&p, cases[i].want);
        done(&p);
    }

    /* roles of the wrong type make the event invalid, like a wrong scope */
    static const char *const bad[] = {
        V1_CLAIMS("\"sub\":\"u\",\"roles\":7"),
        V1_CLAIMS("\"sub\":\"u\",\"roles\":{\"a\":\"b\"}"),
        V1_CLAIMS("\"sub\":\"u\",\"roles\":[\"a\",1]"),
        V1_CLAIMS("\"sub\":\"u\",\"roles\":[[\"a\"]]"),
        V2_JWT("\"sub\":\"u\",\"roles\":true", "null"),
        V2_JWT("\"sub\":\"u\",\"roles\":\"a\\u0000b\"", "null"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct parsed p;
        px_rc rc = parse_z(&p, bad[i]);
        if (rc != PX_ERR_INVALID)
            fail_msg("bad case %zu %s: rc %d, want invalid", i, bad[i], rc);
        done(&p);
    }

    /* at most 64 permissions are kept, scopes first */
    char ev[4096];
    int off = snprintf(ev, sizeof(ev),
                       "{\"httpMethod\":\"GET\",\"requestContext\":{\"authorizer\":{\"claims\":"
                       "{\"sub\":\"u\",\"scope\":\"first\",\"roles\":\"[");
    for (int i = 0; i < 100; i++)
        off += snprintf(ev + off, sizeof(ev) - (size_t)off, "%sr%d", i ? " " : "", i);
    snprintf(ev + off, sizeof(ev) - (size_t)off, "]\"}}}}");
    struct parsed p;
    assert_int_equal(parse_z(&p, ev), PX_OK);
    size_t n = 0;
    while (p.req.identity.scopes[n])
        n++;
    assert_int_equal(n, 64);
    assert_string_equal(p.req.identity.scopes[0], "first");
    assert_string_equal(p.req.identity.scopes[1], "r0");
    assert_string_equal(p.req.identity.scopes[63], "r62");
    done(&p);
}

static void test_paths_and_queries(void **state)
{
    (void)state;
    struct parsed p;
    /* 2.0 rawPath is percent-decoded; 1.0 path is already decoded by API Gateway */
    assert_int_equal(parse_z(&p, "{\"version\":\"2.0\",\"rawPath\":\"/a%20b\",\"requestContext\":"
                                 "{\"http\":{\"method\":\"get\",\"path\":\"/ignored\"}}}"),
                     PX_OK);
    assert_string_equal(p.req.path, "/a b");
    assert_string_equal(p.req.method, "GET");
    done(&p);
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"GET\",\"path\":\"/a%20b\"}"), PX_OK);
    assert_string_equal(p.req.path, "/a%20b");
    assert_null(p.req.source_ip);
    assert_null(p.req.api_request_id);
    done(&p);
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"GET\"}"), PX_OK);
    assert_null(p.req.path);
    done(&p);
    /* no rawPath: requestContext.http.path */
    assert_int_equal(parse_z(&p, "{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":"
                                 "\"GET\",\"path\":\"/price\"}}}"),
                     PX_OK);
    assert_string_equal(p.req.path, "/price");
    done(&p);
    /* a rawPath that does not decode stays as sent */
    assert_int_equal(parse_z(&p, "{\"version\":\"2.0\",\"rawPath\":\"/price%00\","
                                 "\"requestContext\":{\"http\":{\"method\":\"GET\"}}}"),
                     PX_OK);
    assert_string_equal(p.req.path, "/price%00");
    done(&p);

    /* a malformed raw query is flagged, not an invalid event */
    static const char *const bad[] = {"id=%ZZ", "id=%00", "=x", "a=%C0%AF"};
    for (size_t i = 0; i < 4; i++) {
        char ev[512];
        snprintf(ev, sizeof(ev),
                 "{\"version\":\"2.0\",\"rawPath\":\"/price\",\"rawQueryString\":\"%s\","
                 "\"queryStringParameters\":{\"id\":\"x\"},\"requestContext\":{\"http\":"
                 "{\"method\":\"GET\"}}}",
                 bad[i]);
        assert_int_equal(parse_z(&p, ev), PX_OK);
        assert_true(p.req.query_invalid);
        done(&p);
    }
    /* too many pairs */
    char ev[4096];
    size_t len = (size_t)snprintf(ev, sizeof(ev), "{\"version\":\"2.0\",\"rawQueryString\":\"");
    for (int i = 0; i <= PX_MAX_QUERY_PARAMS; i++)
        len += (size_t)snprintf(ev + len, sizeof(ev) - len, "k%d=v&", i);
    snprintf(ev + len, sizeof(ev) - len, "\",\"requestContext\":{\"http\":{\"method\":\"GET\"}}}");
    assert_int_equal(parse_z(&p, ev), PX_OK);
    assert_true(p.req.query_invalid);
    done(&p);

    /* 2.0 without rawQueryString: queryStringParameters */
    assert_int_equal(parse_z(&p, "{\"version\":\"2.0\",\"rawQueryString\":\"\","
                                 "\"queryStringParameters\":{\"a\":\"1\",\"b\":\"x,y\"},"
                                 "\"requestContext\":{\"http\":{\"method\":\"GET\"}}}"),
                     PX_OK);
    assert_int_equal(p.req.nquery, 2);
    assert_string_equal(qval(&p.req, "a", 0), "1");
    assert_string_equal(qval(&p.req, "b", 0), "x,y");
    done(&p);

    /* 1.0 single-value map when there is no multi-value one; nulls skipped */
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"GET\",\"queryStringParameters\":{\"a\":null,"
                                 "\"b\":\"2\"},\"multiValueQueryStringParameters\":null}"),
                     PX_OK);
    assert_int_equal(p.req.nquery, 1);
    assert_string_equal(qval(&p.req, "b", 0), "2");
    assert_false(p.req.query_invalid);
    done(&p);
    /* decoded values obey the same rules as raw ones */
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"GET\",\"queryStringParameters\":{\"a\":"
                                 "\"x\\ny\"}}"),
                     PX_OK);
    assert_true(p.req.query_invalid);
    done(&p);
}

static void test_headers_cap(void **state)
{
    (void)state;
    struct parsed p;
    size_t cap = 64 * 1024, len;
    char *ev = malloc(cap);
    assert_non_null(ev);
    len = (size_t)snprintf(ev, cap, "{\"httpMethod\":\"GET\",\"headers\":{");
    for (int i = 0; i < PX_MAX_HEADERS + 50; i++)
        len += (size_t)snprintf(ev + len, cap - len, "%s\"X-H%d\":\"v\"", i ? "," : "", i);
    snprintf(ev + len, cap - len, "}}");
    assert_int_equal(parse_z(&p, ev), PX_OK);
    assert_int_equal(p.req.nheaders, PX_MAX_HEADERS);
    assert_string_equal(p.req.headers[0].key, "x-h0");
    done(&p);
    free(ev);
}

static void test_body(void **state)
{
    (void)state;
    struct parsed p;
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"POST\",\"body\":\"aGVsbG8=\","
                                 "\"isBase64Encoded\":true}"),
                     PX_OK);
    assert_body(&p.req, "hello");
    done(&p);
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"POST\",\"body\":\"AGE=\","
                                 "\"isBase64Encoded\":true}"),
                     PX_OK);
    assert_int_equal(p.req.body_len, 2);
    assert_memory_equal(p.req.body, "\0a", 2);
    done(&p);
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"POST\",\"body\":\"a\\u0000b\"}"), PX_OK);
    assert_int_equal(p.req.body_len, 3);
    assert_memory_equal(p.req.body, "a\0b", 3);
    done(&p);
    assert_int_equal(parse_z(&p, "{\"httpMethod\":\"POST\",\"body\":\"aGVsbG8=\","
                                 "\"isBase64Encoded\":false}"),
                     PX_OK);
    assert_body(&p.req, "aGVsbG8=");
    done(&p);

    static const struct {
        const char *in, *out;
    } good[] = {{"", ""},
                {"Zg==", "f"},
                {"Zm8=", "fo"},
                {"Zm9v", "foo"},
                {"Zm9vYg==", "foob"},
                {"Zm9vYmFy", "foobar"},
                {"+/+/", "\xfb\xff\xbf"}};
    static const char *const badb64[] = {"Zg",   "Zg=",   "Zg=a",   "Z===", "====",     "Zh==",
                                         "Zm9=", "Zm 9v", "Zm9v\n", "Zm9-", "Zg==Zg==", "Zm_v"};
    struct px_arena *a = px_arena_new(1 << 16);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *out;
        size_t n;
        assert_int_equal(px_apigw_b64_decode(a, good[i].in, strlen(good[i].in), &out, &n), PX_OK);
        assert_int_equal(n, strlen(good[i].out));
        assert_memory_equal(out, good[i].out, n);
    }
    for (size_t i = 0; i < sizeof(badb64) / sizeof(badb64[0]); i++) {
        char *out;
        size_t n;
        if (px_apigw_b64_decode(a, badb64[i], strlen(badb64[i]), &out, &n) != PX_ERR_INVALID)
            fail_msg("\"%s\" decoded", badb64[i]);
    }
    px_arena_free(a);
}

static void test_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "null",
        "\"GET\"",
        "42",
        "[]",
        "[{\"httpMethod\":\"GET\"}]",
        "{}",
        "{\"path\":\"/price\"}",
        "{\"httpMethod\":5}",
        "{\"httpMethod\":\"\"}",
        "{\"httpMethod\":\"G ET\"}",
        "{\"httpMethod\":\"GET\\u0000\"}",
        "{\"httpMethod\":\"GETGETGETGETGETGETGET\"}",
        "{\"httpMethod\":\"GET\",\"httpMethod\":\"POST\"}",
        "{\"httpMethod\":\"GET\",\"path\":7}",
        "{\"httpMethod\":\"GET\",\"path\":\"/\\u0000\"}",
        "{\"httpMethod\":\"GET\",\"headers\":\"x\"}",
        "{\"httpMethod\":\"GET\",\"headers\":{\"a\":1}}",
        "{\"httpMethod\":\"GET\",\"multiValueHeaders\":{\"a\":\"b\"}}",
        "{\"httpMethod\":\"GET\",\"multiValueHeaders\":{\"a\":[1]}}",
        "{\"httpMethod\":\"GET\",\"queryStringParameters\":[]}",
        "{\"httpMethod\":\"GET\",\"multiValueQueryStringParameters\":{\"a\":{}}}",
        "{\"httpMethod\":\"GET\",\"body\":5}",
        "{\"httpMethod\":\"GET\",\"body\":{}}",
        "{\"httpMethod\":\"GET\",\"isBase64Encoded\":\"yes\"}",
        "{\"httpMethod\":\"GET\",\"body\":\"!!!!\",\"isBase64Encoded\":true}",
        "{\"httpMethod\":\"GET\",\"body\":\"aGVsbG8\",\"isBase64Encoded\":true}",
        "{\"httpMethod\":\"GET\",\"requestContext\":[]}",
        "{\"httpMethod\":\"GET\",\"requestContext\":{\"requestId\":1}}",
        "{\"httpMethod\":\"GET\",\"requestContext\":{\"identity\":{\"sourceIp\":false}}}",
        "{\"httpMethod\":\"GET\",\"requestContext\":{\"authorizer\":\"x\"}}",
        "{\"version\":2}",
        "{\"version\":\"2.0\"}",
        "{\"version\":\"2.0\",\"httpMethod\":\"GET\"}",
        "{\"version\":\"2.0\",\"requestContext\":{}}",
        "{\"version\":\"2.0\",\"requestContext\":{\"http\":{}}}",
        "{\"version\":\"2.0\",\"requestContext\":{\"http\":\"GET\"}}",
        "{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":\"GET\"}},\"cookies\":"
        "\"a\"}",
        "{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":\"GET\"}},"
        "\"cookies\":[1]}",
        "{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":\"GET\"}},"
        "\"rawQueryString\":5}",
        "{\"version\":\"2.0\",\"requestContext\":{\"http\":{\"method\":\"GET\"},"
        "\"authorizer\":{\"jwt\":{\"scopes\":\"a\"}}}}",
        "{\"httpMethod\":\"GET\"} trailing",
        "{\"httpMethod\":\"GET\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct parsed p;
        px_rc rc = parse_z(&p, bad[i]);
        if (rc != PX_ERR_INVALID)
            fail_msg("event %zu %s: rc %d, want invalid", i, bad[i], rc);
        assert_null(p.req.method); /* req untouched on failure */
        done(&p);
    }
    struct parsed p;
    assert_int_equal(parse_str(&p, NULL, 0), PX_ERR_INVALID);
    done(&p);
}

/* Parses a rendered response and checks the proxy-response shape. */
static json_t *load_response(const struct px_buf *b)
{
    json_error_t err;
    json_t *j = json_loadb(b->data, b->len, JSON_ALLOW_NUL, &err);
    if (!j)
        fail_msg("rendered response is not JSON: %s: %s", err.text, b->data);
    assert_true(json_is_object(j));
    assert_int_equal(json_object_size(j), 4);
    /* key order is fixed: statusCode, headers, body, isBase64Encoded */
    static const char *const keys[] = {"statusCode", "headers", "body", "isBase64Encoded"};
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        assert_string_equal(k, keys[i]);
        i++;
    }
    assert_true(json_is_integer(json_object_get(j, "statusCode")));
    assert_true(json_is_object(json_object_get(j, "headers")));
    assert_true(json_is_string(json_object_get(j, "body")));
    assert_true(json_is_false(json_object_get(j, "isBase64Encoded")));
    return j;
}

static void test_render(void **state)
{
    (void)state;
    static const char body[] = "{\"msg\":\"say \\\"hi\\\"\"}\n\t\x01\x1f end \"q\" \\ \xC3\xA9";
    for (int f = PX_APIGW_V1; f <= PX_APIGW_V2; f++) {
        struct px_response resp;
        memset(&resp, 0, sizeof(resp));
        resp.status = 200;
        resp.body = body;
        resp.body_len = sizeof(body) - 1;
        assert_int_equal(px_response_header(&resp, "X-Request-Id", "rid-1"), PX_OK);
        assert_int_equal(px_response_header(&resp, "Vary", "Origin"), PX_OK);
        assert_int_equal(px_response_header(&resp, "Cache-Control", "no-store"), PX_OK);
        assert_int_equal(px_response_header(&resp, "vary", "Accept"), PX_OK);
        struct px_buf b;
        px_buf_init(&b, 1 << 20);
        assert_int_equal(px_apigw_render(&resp, (enum px_apigw_format)f, &b), PX_OK);
        assert_true(strncmp(b.data, "{\"statusCode\":200,\"headers\":{\"Content-Type\":", 44) == 0);
        json_t *j = load_response(&b);
        assert_int_equal(json_integer_value(json_object_get(j, "statusCode")), 200);
        json_t *h = json_object_get(j, "headers");
        assert_int_equal(json_object_size(h), 4);
        assert_string_equal(json_string_value(json_object_get(h, "Content-Type")),
                            "application/json");
        assert_string_equal(json_string_value(json_object_get(h, "X-Request-Id")), "rid-1");
        assert_string_equal(json_string_value(json_object_get(h, "Cache-Control")), "no-store");
        assert_string_equal(json_string_value(json_object_get(h, "Vary")), "Origin, Accept");
        json_t *jb = json_object_get(j, "body");
        assert_int_equal(json_string_length(jb), sizeof(body) - 1);
        assert_memory_equal(json_string_value(jb), body, sizeof(body) - 1);
        /* control characters are escaped, not raw, in the rendered text */
        assert_null(memchr(b.data, '\x01', b.len));
        assert_null(memchr(b.data, '\n', b.len));
        assert_non_null(strstr(b.data, "\\u0001"));
        json_decref(j);
        px_buf_free(&b);
    }
}

static void test_render_edges(void **state)
{
    (void)state;
    struct px_response resp;
    struct px_buf b;
    memset(&resp, 0, sizeof(resp));
    px_buf_init(&b, 1 << 16);

    /* no body, another content type, a NUL byte */
    resp.status = 404;
    resp.content_type = "text/plain; charset=utf-8";
    assert_int_equal(px_apigw_render(&resp, PX_APIGW_V2, &b), PX_OK);
    json_t *j = load_response(&b);
    assert_int_equal(json_integer_value(json_object_get(j, "statusCode")), 404);
    assert_string_equal(json_string_value(json_object_get(j, "body")), "");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "headers"), "Content-Type")),
        "text/plain; charset=utf-8");
    json_decref(j);

    px_buf_clear(&b);
    resp.status = 503;
    resp.content_type = NULL;
    resp.body = "a\0b";
    resp.body_len = 3;
    assert_int_equal(px_response_header(&resp, "content-type", "application/problem+json"), PX_OK);
    assert_int_equal(px_apigw_render(&resp, PX_APIGW_V1, &b), PX_OK);
    j = load_response(&b);
    json_t *jb = json_object_get(j, "body");
    assert_int_equal(json_string_length(jb), 3);
    assert_memory_equal(json_string_value(jb), "a\0b", 3);
    json_t *h = json_object_get(j, "headers");
    assert_int_equal(json_object_size(h), 1);
    assert_string_equal(json_string_value(json_object_get(h, "Content-Type")),
                        "application/problem+json");
    json_decref(j);

    /* a failed render leaves the buffer as it was */
    px_buf_clear(&b);
    assert_int_equal(px_buf_adds(&b, "keep"), PX_OK);
    resp.status = 0;
    assert_int_equal(px_apigw_render(&resp, PX_APIGW_V1, &b), PX_ERR_INVALID);
    resp.status = 200;
    assert_int_equal(px_apigw_render(&resp, (enum px_apigw_format)3, &b), PX_ERR_INVALID);
    struct px_buf small;
    px_buf_init(&small, 40);
    assert_int_equal(px_buf_adds(&small, "keep"), PX_OK);
    assert_int_equal(px_apigw_render(&resp, PX_APIGW_V1, &small), PX_ERR_TOO_LARGE);
    assert_string_equal(small.data, "keep");
    assert_string_equal(b.data, "keep");
    px_buf_free(&small);
    px_buf_free(&b);
}

static void round_trip(enum px_apigw_format fmt)
{
    struct px_buf b;
    struct parsed p;
    px_buf_init(&b, 1 << 20);
    assert_int_equal(px_apigw_generate(fmt, "get", "/pr%69ce",
                                       "?id=PROD-101&userId=0B7E4C1A-8B1E-4C2A-9D7E-3F1A2B3C4D5E"
                                       "&id=x+y",
                                       NULL, &b),
                     PX_OK);
    assert_int_equal(parse_str(&p, b.data, b.len), PX_OK);
    const struct px_request *r = &p.req;
    assert_int_equal(p.fmt, fmt);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/price");
    assert_false(r->query_invalid);
    assert_int_equal(r->nquery, 3);
    assert_string_equal(qval(r, "id", 0), "PROD-101");
    assert_string_equal(qval(r, "id", 1), "x y");
    assert_string_equal(qval(r, "userId", 0), "0B7E4C1A-8B1E-4C2A-9D7E-3F1A2B3C4D5E");
    if (fmt == PX_APIGW_V2) /* rawQueryString keeps the order */
        assert_string_equal(r->query[1].key, "userId");
    assert_string_equal(r->source_ip, "127.0.0.1");
    assert_non_null(r->api_request_id);
    assert_int_equal(strlen(r->api_request_id), 36);
    assert_int_equal(r->api_request_id[14], '4');
    assert_string_equal(hval(r, "host", 0), "localhost");
    assert_string_equal(hval(r, "accept", 0), "*/*");
    assert_non_null(hval(r, "user-agent", 0));
    assert_null(hval(r, "content-type", 0));
    assert_null(r->body);
    assert_null(r->identity.subject);

    /* the generated JSON is the sample's shape */
    json_t *j = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(j);
    json_t *ctx = json_object_get(j, "requestContext");
    assert_true(json_is_object(ctx));
    assert_string_equal(json_string_value(json_object_get(ctx, "accountId")), "123456789012");
    assert_true(json_is_false(json_object_get(j, "isBase64Encoded")));
    if (fmt == PX_APIGW_V1) {
        assert_string_equal(json_string_value(json_object_get(j, "httpMethod")), "GET");
        assert_string_equal(json_string_value(json_object_get(ctx, "stage")), "local");
        assert_true(json_is_integer(json_object_get(ctx, "requestTimeEpoch")));
        assert_true(json_is_null(json_object_get(j, "pathParameters")));
        assert_true(json_is_null(json_object_get(j, "stageVariables")));
        assert_true(json_is_null(json_object_get(j, "body")));
        json_t *q = json_object_get(j, "queryStringParameters");
        assert_string_equal(json_string_value(json_object_get(q, "id")), "x y");
        json_t *mq = json_object_get(json_object_get(j, "multiValueQueryStringParameters"), "id");
        assert_int_equal(json_array_size(mq), 2);
        assert_true(
            json_is_array(json_object_get(json_object_get(j, "multiValueHeaders"), "Host")));
    } else {
        assert_string_equal(json_string_value(json_object_get(j, "version")), "2.0");
        assert_string_equal(json_string_value(json_object_get(j, "routeKey")), "$default");
        assert_string_equal(json_string_value(json_object_get(j, "rawPath")), "/pr%69ce");
        assert_string_equal(json_string_value(json_object_get(j, "rawQueryString")),
                            "id=PROD-101&userId=0B7E4C1A-8B1E-4C2A-9D7E-3F1A2B3C4D5E&id=x+y");
        json_t *q = json_object_get(j, "queryStringParameters");
        assert_string_equal(json_string_value(json_object_get(q, "id")), "PROD-101,x y");
        json_t *http = json_object_get(ctx, "http");
        assert_string_equal(json_string_value(json_object_get(http, "path")), "/price");
        assert_string_equal(json_string_value(json_object_get(http, "protocol")), "HTTP/1.1");
        assert_string_equal(json_string_value(json_object_get(ctx, "apiId")), "local");
        assert_true(json_integer_value(json_object_get(ctx, "timeEpoch")) > 1600000000000LL);
        assert_null(json_object_get(j, "body"));
    }
    json_decref(j);
    done(&p);

    /* empty query, a body */
    px_buf_clear(&b);
    assert_int_equal(px_apigw_generate(fmt, "POST", "/products", "", "{\"id\":\"P-1\"}", &b),
                     PX_OK);
    assert_int_equal(parse_str(&p, b.data, b.len), PX_OK);
    assert_string_equal(p.req.method, "POST");
    assert_string_equal(p.req.path, "/products");
    assert_int_equal(p.req.nquery, 0);
    assert_body(&p.req, "{\"id\":\"P-1\"}");
    assert_string_equal(hval(&p.req, "content-type", 0), "application/json");
    j = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(j);
    if (fmt == PX_APIGW_V1)
        assert_true(json_is_null(json_object_get(j, "queryStringParameters")));
    else
        assert_null(json_object_get(j, "queryStringParameters"));
    json_decref(j);
    done(&p);

    /* bad input */
    px_buf_clear(&b);
    assert_int_equal(px_apigw_generate(fmt, "GET", "/price", "id=%zz", NULL, &b), PX_ERR_INVALID);
    assert_int_equal(px_apigw_generate(fmt, "GET", "/price", "id=%00", NULL, &b), PX_ERR_INVALID);
    assert_int_equal(px_apigw_generate(fmt, "GET", "/price", "=1", NULL, &b), PX_ERR_INVALID);
    assert_int_equal(px_apigw_generate(fmt, "GET", "price", "", NULL, &b), PX_ERR_INVALID);
    assert_int_equal(px_apigw_generate(fmt, "G T", "/price", "", NULL, &b), PX_ERR_INVALID);
    assert_int_equal(px_apigw_generate(fmt, "GET", "/price", "", "\xff", &b), PX_ERR_INVALID);
    assert_int_equal(b.len, 0);
    px_buf_free(&b);
}

static void test_generate_round_trip(void **state)
{
    (void)state;
    round_trip(PX_APIGW_V1);
    round_trip(PX_APIGW_V2);
    struct px_buf b;
    px_buf_init(&b, 1 << 20);
    assert_int_equal(px_apigw_generate((enum px_apigw_format)0, "GET", "/", "", NULL, &b),
                     PX_ERR_INVALID);
    /* defaults: GET / */
    assert_int_equal(px_apigw_generate(PX_APIGW_V2, NULL, NULL, NULL, NULL, &b), PX_OK);
    struct parsed p;
    assert_int_equal(parse_str(&p, b.data, b.len), PX_OK);
    assert_string_equal(p.req.method, "GET");
    assert_string_equal(p.req.path, "/");
    done(&p);
    /* two events never share a request id */
    struct px_buf b2;
    px_buf_init(&b2, 1 << 20);
    assert_int_equal(px_apigw_generate(PX_APIGW_V2, NULL, NULL, NULL, NULL, &b2), PX_OK);
    json_t *j1 = json_loadb(b.data, b.len, 0, NULL), *j2 = json_loadb(b2.data, b2.len, 0, NULL);
    assert_string_not_equal(
        json_string_value(json_object_get(json_object_get(j1, "requestContext"), "requestId")),
        json_string_value(json_object_get(json_object_get(j2, "requestContext"), "requestId")));
    json_decref(j1);
    json_decref(j2);
    px_buf_free(&b);
    px_buf_free(&b2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_fixture),
        cmocka_unit_test(test_v1_rest),
        cmocka_unit_test(test_v1_multi_value),
        cmocka_unit_test(test_v1_console_nulls),
        cmocka_unit_test(test_v2_multi_value),
        cmocka_unit_test(test_v2_jwt),
        cmocka_unit_test(test_v2_no_authorizer),
        cmocka_unit_test(test_v2_sam),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_paths_and_queries),
        cmocka_unit_test(test_headers_cap),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_edges),
        cmocka_unit_test(test_generate_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
