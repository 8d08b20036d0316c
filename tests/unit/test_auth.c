/* test_auth.c: AUTH_MODE none / jwt / apigw, the 401/403 answers, the
 * permission mapping (scope string vs roles array), the settings, and the
 * loopback rule of serve. Tokens are minted here with px_jwt_sign_hs256(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel/apigw.h"
#include "kernel/auth.h"
#include "kernel/log.h"

static const char secret[] = "auth-test-secret-auth-test-secret-0123";

static struct {
    char dir[64];
    char secret_path[128];
    char jwks_path[128];
    struct px_auth *jwt;
    struct px_auth *apigw;
    struct px_arena *a;
    int null_fd;
} F;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void base_config(struct px_config *c)
{
    *c = px_config_defaults;
}

static int setup(void **state)
{
    (void)state;
    /* refusals are logged; keep the test output readable */
    F.null_fd = open("/dev/null", O_WRONLY);
    px_log_set_fd(F.null_fd);
    snprintf(F.dir, sizeof(F.dir), "/tmp/px-auth-XXXXXX");
    if (!mkdtemp(F.dir))
        return -1;
    snprintf(F.secret_path, sizeof(F.secret_path), "%s/secret", F.dir);
    snprintf(F.jwks_path, sizeof(F.jwks_path), "%s/jwks.json", F.dir);
    char text[128];
    snprintf(text, sizeof(text), "%s\n", secret);
    write_file(F.secret_path, text);

    struct px_config c;
    char err[512];
    base_config(&c);
    c.auth_mode = PX_AUTH_JWT;
    snprintf(c.jwt_secret_file, sizeof(c.jwt_secret_file), "%s", F.secret_path);
    snprintf(c.jwt_audience, sizeof(c.jwt_audience), "pricing");
    if (px_auth_new(&c, &F.jwt, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    base_config(&c);
    c.auth_mode = PX_AUTH_APIGW;
    if (px_auth_new(&c, &F.apigw, err, sizeof(err)) != PX_OK)
        return -1;
    F.a = px_arena_new(1 << 20);
    return F.a ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    px_auth_free(F.jwt);
    px_auth_free(F.apigw);
    px_arena_free(F.a);
    unlink(F.secret_path);
    unlink(F.jwks_path);
    rmdir(F.dir);
    px_log_set_fd(STDOUT_FILENO);
    close(F.null_fd);
    return 0;
}

/* A token for sub with the extra claims (JSON members, may be ""). */
static char *token(const char *sub, const char *extra, long ttl)
{
    char payload[1024];
    long long now = (long long)time(NULL);
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"aud\":\"pricing\",\"exp\":%lld%s%s}", sub,
             now + ttl, extra[0] ? "," : "", extra);
    struct px_buf b;
    px_buf_init(&b, PX_JWT_MAX_TOKEN);
    assert_int_equal(px_jwt_sign_hs256((const unsigned char *)secret, strlen(secret), payload,
                                       strlen(payload), &b),
                     PX_OK);
    return px_buf_take(&b);
}

struct call {
    struct px_request req;
    struct px_response resp;
    struct px_kv headers[4];
    px_rc rc;
};

/* Runs the gate on a GET with the given Authorization headers (NULL-ended). */
static void run(struct call *c, const struct px_auth *auth, const char *permission,
                const char *const *authz)
{
    px_arena_reset(F.a);
    memset(c, 0, sizeof(*c));
    c->req.arena = F.a;
    c->req.method = "GET";
    c->req.path = "/price";
    c->req.request_id = "req-1";
    c->req.headers = c->headers;
    c->headers[c->req.nheaders++] = (struct px_kv){"host", "localhost"};
    for (size_t i = 0; authz && authz[i] && c->req.nheaders < 4; i++)
        c->headers[c->req.nheaders++] = (struct px_kv){"authorization", authz[i]};
    c->rc = px_auth_check(auth, &c->req, permission, &c->resp);
}

static const char *resp_header(const struct px_response *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].key, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void assert_error(const struct call *c, int status, const char *code)
{
    assert_int_equal(c->rc, PX_ERR_DENIED);
    assert_int_equal(c->resp.status, status);
    json_t *j = json_loadb(c->resp.body, c->resp.body_len, 0, NULL);
    assert_non_null(j);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_string_equal(json_string_value(json_object_get(e, "requestId")), "req-1");
    json_decref(j);
}

static void test_none_mode(void **state)
{
    (void)state;
    struct px_config c;
    char err[256];
    struct px_auth *none = NULL;
    base_config(&c);
    assert_int_equal(px_auth_new(&c, &none, err, sizeof(err)), PX_OK);
    assert_int_equal(px_auth_mode(none), PX_AUTH_NONE);
    assert_null(px_auth_verifier(none));
    struct call k;
    const char *junk[] = {"Bearer not-a-token", NULL};
    run(&k, none, "price:read", NULL);
    assert_int_equal(k.rc, PX_OK);
    assert_int_equal(k.resp.status, 0);
    run(&k, none, "audit:read", junk);
    assert_int_equal(k.rc, PX_OK);
    assert_null(k.req.identity.subject);
    /* a NULL auth (an app without one) is mode none */
    assert_int_equal(px_auth_mode(NULL), PX_AUTH_NONE);
    run(&k, NULL, "price:read", NULL);
    assert_int_equal(k.rc, PX_OK);
    px_auth_free(none);
    px_auth_free(NULL);
}

static void test_jwt_missing_and_bad(void **state)
{
    (void)state;
    struct call k;
    run(&k, F.jwt, "price:read", NULL);
    assert_error(&k, 401, "UNAUTHORIZED");
    assert_string_equal(resp_header(&k.resp, "WWW-Authenticate"), "Bearer realm=\"pricing\"");

    const char *basic[] = {"Basic dXNlcjpwYXNz", NULL};
    run(&k, F.jwt, "price:read", basic);
    assert_error(&k, 401, "UNAUTHORIZED");
    assert_string_equal(resp_header(&k.resp, "WWW-Authenticate"), "Bearer realm=\"pricing\"");

    const char *bads[][2] = {{"Bearer", NULL},
                             {"Bearer    ", NULL},
                             {"Bearer abc.def.ghi", NULL},
                             {"Bearer a b", NULL},
                             {"Bearerabc", NULL}};
    for (size_t i = 0; i < PX_COUNTOF(bads); i++) {
        run(&k, F.jwt, "price:read", bads[i]);
        assert_error(&k, 401, "UNAUTHORIZED");
        const char *h = resp_header(&k.resp, "WWW-Authenticate");
        assert_non_null(h);
        assert_true(strncmp(h, "Bearer realm=\"pricing\"", 22) == 0);
    }
    /* "Bearer abc.def.ghi" names a token: invalid_token */
    run(&k, F.jwt, "price:read", bads[2]);
    assert_string_equal(resp_header(&k.resp, "WWW-Authenticate"),
                        "Bearer realm=\"pricing\", error=\"invalid_token\"");

    /* expired, and two Authorization headers (even both valid) */
    char *old = token("svc", "\"scope\":\"price:read\"", -3600);
    char *good = token("svc", "\"scope\":\"price:read\"", 600);
    char h1[PX_JWT_MAX_TOKEN + 16], h2[PX_JWT_MAX_TOKEN + 16];
    snprintf(h1, sizeof(h1), "Bearer %s", old);
    snprintf(h2, sizeof(h2), "Bearer %s", good);
    const char *expired[] = {h1, NULL};
    run(&k, F.jwt, "price:read", expired);
    assert_error(&k, 401, "UNAUTHORIZED");
    assert_non_null(strstr(resp_header(&k.resp, "WWW-Authenticate"), "expired"));
    const char *two[] = {h2, h2, NULL};
    run(&k, F.jwt, "price:read", two);
    assert_error(&k, 401, "UNAUTHORIZED");
    assert_null(k.req.identity.subject);
    free(old);
    free(good);
}

static void test_jwt_permissions(void **state)
{
    (void)state;
    static const struct {
        const char *claims;
        bool price, audit;
    } cases[] = {
        {"\"scope\":\"price:read audit:read\"", true, true},
        {"\"scope\":\"price:read\"", true, false},
        {"\"scope\":\"audit:read\"", false, true},
        {"\"roles\":[\"price:read\"]", true, false},
        {"\"roles\":[\"audit:read\",\"price:read\"]", true, true},
        {"\"scope\":\"audit:read\",\"roles\":[\"price:read\"]", true, true},
        {"\"scope\":\"price:reader audit\"", false, false},
        {"\"scope\":\"PRICE:READ\"", false, false},
        {"\"roles\":[\"price:read audit:read\"]", false, false},
        {"", false, false},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        char *t = token("svc-42", cases[i].claims, 600);
        char h[PX_JWT_MAX_TOKEN + 16];
        snprintf(h, sizeof(h), "%s %s", i % 2 ? "bearer" : "Bearer", t);
        const char *authz[] = {h, NULL};
        const char *perms[2] = {"price:read", "audit:read"};
        const bool want[2] = {cases[i].price, cases[i].audit};
        for (size_t p = 0; p < 2; p++) {
            struct call k;
            run(&k, F.jwt, perms[p], authz);
            if (want[p]) {
                if (k.rc != PX_OK)
                    fail_msg("case %zu %s: refused", i, perms[p]);
                assert_int_equal(k.resp.status, 0);
                assert_string_equal(k.req.identity.subject, "svc-42");
            } else {
                assert_error(&k, 403, "FORBIDDEN");
                char want_h[128];
                snprintf(want_h, sizeof(want_h),
                         "Bearer realm=\"pricing\", error=\"insufficient_scope\", scope=\"%s\"",
                         perms[p]);
                assert_string_equal(resp_header(&k.resp, "WWW-Authenticate"), want_h);
            }
        }
        /* a NULL permission only asks for a valid token */
        struct call k;
        run(&k, F.jwt, NULL, authz);
        assert_int_equal(k.rc, PX_OK);
        free(t);
    }
}

static void test_jwt_replaces_identity(void **state)
{
    (void)state;
    /* Whatever a transport put in identity, jwt mode trusts only the token. */
    static const char *spoof_scopes[] = {"price:read", NULL};
    px_arena_reset(F.a);
    struct px_request req = {.arena = F.a, .method = "GET", .request_id = "req-1"};
    struct px_response resp;
    memset(&resp, 0, sizeof(resp));
    req.identity.subject = "admin";
    req.identity.scopes = spoof_scopes;
    assert_int_equal(px_auth_check(F.jwt, &req, "price:read", &resp), PX_ERR_DENIED);
    assert_int_equal(resp.status, 401);
    assert_null(req.identity.subject);

    char *t = token("real-sub", "\"scope\":\"price:read\"", 600);
    char h[PX_JWT_MAX_TOKEN + 16];
    snprintf(h, sizeof(h), "Bearer %s", t);
    struct px_kv hdr[1] = {{"authorization", h}};
    req.headers = hdr;
    req.nheaders = 1;
    req.identity.subject = "admin";
    memset(&resp, 0, sizeof(resp));
    assert_int_equal(px_auth_authenticate(F.jwt, &req, (int64_t)time(NULL), &resp), PX_OK);
    assert_string_equal(req.identity.subject, "real-sub");
    assert_string_equal(req.identity.scopes[0], "price:read");
    assert_null(req.identity.scopes[1]);
    /* the same token an hour later */
    memset(&resp, 0, sizeof(resp));
    assert_int_equal(px_auth_authenticate(F.jwt, &req, (int64_t)time(NULL) + 3600, &resp),
                     PX_ERR_DENIED);
    assert_int_equal(resp.status, 401);
    free(t);
}

static void test_permits(void **state)
{
    (void)state;
    static const char *scopes[] = {"price:read", "audit:read", NULL};
    struct px_identity none = {.subject = NULL, .scopes = NULL};
    struct px_identity bare = {.subject = "s", .scopes = NULL};
    struct px_identity some = {.subject = "s", .scopes = scopes};
    struct px_identity anon = {.subject = NULL, .scopes = scopes};
    assert_false(px_auth_permits(NULL, NULL));
    assert_false(px_auth_permits(&none, NULL));
    assert_false(px_auth_permits(&anon, "price:read"));
    assert_true(px_auth_permits(&bare, NULL));
    assert_false(px_auth_permits(&bare, "price:read"));
    assert_true(px_auth_permits(&some, "price:read"));
    assert_true(px_auth_permits(&some, "audit:read"));
    assert_false(px_auth_permits(&some, "price:write"));
    assert_false(px_auth_permits(&some, "price"));
}

/* Parses an API Gateway event into a request and runs the gate on it. */
static px_rc gate_event(const struct px_auth *auth, const char *event, const char *permission,
                        struct px_request *req, struct px_response *resp)
{
    enum px_apigw_format fmt;
    px_arena_reset(F.a);
    memset(req, 0, sizeof(*req));
    memset(resp, 0, sizeof(*resp));
    assert_int_equal(px_apigw_parse(F.a, event, strlen(event), req, &fmt), PX_OK);
    req->request_id = "req-1";
    return px_auth_check(auth, req, permission, resp);
}

static void test_apigw_mode(void **state)
{
    (void)state;
    struct px_request req;
    struct px_response resp;
    const char *v2_claims =
        "{\"version\":\"2.0\",\"rawPath\":\"/price\",\"requestContext\":{\"http\":{\"method\":"
        "\"GET\"},\"authorizer\":{\"jwt\":{\"claims\":{\"sub\":\"client-7\",\"scope\":"
        "\"price:read\"},\"scopes\":null}}}}";
    assert_int_equal(gate_event(F.apigw, v2_claims, "price:read", &req, &resp), PX_OK);
    assert_string_equal(req.identity.subject, "client-7");
    assert_int_equal(resp.status, 0);
    /* the permission is still required: 403, and no Bearer challenge (API Gateway's job) */
    assert_int_equal(gate_event(F.apigw, v2_claims, "audit:read", &req, &resp), PX_ERR_DENIED);
    assert_int_equal(resp.status, 403);
    assert_null(resp_header(&resp, "WWW-Authenticate"));

    const char *v2_scopes =
        "{\"version\":\"2.0\",\"rawPath\":\"/audit\",\"requestContext\":{\"http\":{\"method\":"
        "\"GET\"},\"authorizer\":{\"jwt\":{\"claims\":{\"sub\":\"client-8\"},\"scopes\":["
        "\"audit:read\"]}}}}";
    assert_int_equal(gate_event(F.apigw, v2_scopes, "audit:read", &req, &resp), PX_OK);
    assert_int_equal(gate_event(F.apigw, v2_scopes, "price:read", &req, &resp), PX_ERR_DENIED);

    const char *v1_claims =
        "{\"httpMethod\":\"GET\",\"path\":\"/price\",\"requestContext\":{\"authorizer\":{"
        "\"claims\":{\"sub\":\"cog-1\",\"scope\":\"audit:read price:read\"}}}}";
    assert_int_equal(gate_event(F.apigw, v1_claims, "price:read", &req, &resp), PX_OK);
    assert_string_equal(req.identity.subject, "cog-1");

    /* no claims: 403 FORBIDDEN, even with a bearer token in the headers */
    const char *v2_none =
        "{\"version\":\"2.0\",\"rawPath\":\"/price\",\"headers\":{\"authorization\":\"Bearer "
        "x.y.z\"},\"requestContext\":{\"http\":{\"method\":\"GET\"}}}";
    const char *v1_none = "{\"httpMethod\":\"GET\",\"path\":\"/price\",\"requestContext\":{}}";
    const char *events[] = {v2_none, v1_none};
    for (size_t i = 0; i < PX_COUNTOF(events); i++) {
        assert_int_equal(gate_event(F.apigw, events[i], "price:read", &req, &resp), PX_ERR_DENIED);
        assert_int_equal(resp.status, 403);
        assert_non_null(strstr(resp.body, "\"FORBIDDEN\""));
        assert_null(resp_header(&resp, "WWW-Authenticate"));
        assert_int_equal(gate_event(F.apigw, events[i], NULL, &req, &resp), PX_ERR_DENIED);
    }
    /* the same event in none mode passes, in jwt mode the fake token is refused */
    assert_int_equal(gate_event(NULL, v2_none, "price:read", &req, &resp), PX_OK);
    assert_int_equal(gate_event(F.jwt, v2_none, "price:read", &req, &resp), PX_ERR_DENIED);
    assert_int_equal(resp.status, 401);
    /* jwt mode ignores authorizer claims: they are not its own verification */
    assert_int_equal(gate_event(F.jwt, v2_claims, "price:read", &req, &resp), PX_ERR_DENIED);
    assert_int_equal(resp.status, 401);
}

static void expect_new_fails(const struct px_config *c, const char *needle)
{
    struct px_auth *a = NULL;
    char err[512] = "";
    px_rc rc = px_auth_new(c, &a, err, sizeof(err));
    assert_int_not_equal(rc, PX_OK);
    assert_null(a);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void test_auth_new_errors(void **state)
{
    (void)state;
    struct px_config c;
    base_config(&c);
    c.auth_mode = PX_AUTH_JWT;
    expect_new_fails(&c, "AUTH_JWT_SECRET_FILE");

    snprintf(c.jwt_secret_file, sizeof(c.jwt_secret_file), "%s/nope", F.dir);
    expect_new_fails(&c, "AUTH_JWT_SECRET_FILE (--jwt-secret-file): cannot open");

    char shortp[160];
    snprintf(shortp, sizeof(shortp), "%s/short", F.dir);
    write_file(shortp, "too-short\n");
    snprintf(c.jwt_secret_file, sizeof(c.jwt_secret_file), "%s", shortp);
    expect_new_fails(&c, "AUTH_JWT_SECRET_FILE");
    unlink(shortp);

    c.jwt_secret_file[0] = '\0';
    snprintf(c.jwks_file, sizeof(c.jwks_file), "%s", F.jwks_path);
    write_file(F.jwks_path, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");
    expect_new_fails(&c, "AUTH_JWKS_FILE (--jwks-file)");
    write_file(F.jwks_path, "not json");
    expect_new_fails(&c, "AUTH_JWKS_FILE");
    /* a good secret does not hide a bad JWKS */
    snprintf(c.jwt_secret_file, sizeof(c.jwt_secret_file), "%s", F.secret_path);
    expect_new_fails(&c, "AUTH_JWKS_FILE");
}

static void test_loopback(void **state)
{
    (void)state;
    static const struct {
        const char *host;
        bool loopback;
    } cases[] = {
        {"127.0.0.1", true},
        {"127.1.2.3", true},
        {"127.255.255.254", true},
        {"::1", true},
        {"[::1]", true},
        {"localhost", true},
        {"LOCALHOST", true},
        {"::ffff:127.0.0.1", true},
        {"0.0.0.0", false},
        {"::", false},
        {"10.0.0.1", false},
        {"128.0.0.1", false},
        {"", false},
        {"localhost.evil", false},
        {"127.0.0.1.nip.io", false},
        {"::2", false},
        {"[::]", false},
        {"example.com", false},
        {"::ffff:10.0.0.1", false},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++)
        if (px_auth_host_is_loopback(cases[i].host) != cases[i].loopback)
            fail_msg("%s: want %d", cases[i].host, cases[i].loopback);
    assert_false(px_auth_host_is_loopback(NULL));
}

static const char *const auth_vars[] = {
    "AUTH_MODE",     "AUTH_JWT_SECRET_FILE", "AUTH_JWKS_FILE",        "AUTH_ISSUER",
    "AUTH_AUDIENCE", "AUTH_CLOCK_SKEW_S",    "AWS_LAMBDA_RUNTIME_API"};

static void clear_auth_env(void)
{
    for (size_t i = 0; i < PX_COUNTOF(auth_vars); i++)
        unsetenv(auth_vars[i]);
}

static void test_config(void **state)
{
    (void)state;
    struct px_config c;
    char err[512];
    clear_auth_env();
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_int_equal(c.auth_mode, PX_AUTH_NONE);
    assert_false(c.auth_mode_set);
    assert_int_equal(c.jwt_clock_skew_s, 60);
    assert_string_equal(px_auth_mode_name(c.auth_mode), "none");

    /* inside Lambda the default is apigw; an explicit choice still wins */
    setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_int_equal(c.auth_mode, PX_AUTH_APIGW);
    assert_false(c.auth_mode_set);
    setenv("AUTH_MODE", "none", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_int_equal(c.auth_mode, PX_AUTH_NONE);
    assert_true(c.auth_mode_set);
    clear_auth_env();

    /* the default a command asks for applies only when nothing chose */
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    px_config_default_auth_mode(&c, PX_AUTH_APIGW);
    assert_int_equal(c.auth_mode, PX_AUTH_APIGW);
    assert_int_equal(px_config_set_flag(&c, "--auth", "NONE", err, sizeof(err)), PX_OK);
    px_config_default_auth_mode(&c, PX_AUTH_APIGW);
    assert_int_equal(c.auth_mode, PX_AUTH_NONE);

    setenv("AUTH_MODE", "jwt", 1);
    setenv("AUTH_JWT_SECRET_FILE", "/run/secrets/jwt", 1);
    setenv("AUTH_ISSUER", "https://issuer.test", 1);
    setenv("AUTH_AUDIENCE", "pricing", 1);
    setenv("AUTH_CLOCK_SKEW_S", "0", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_int_equal(c.auth_mode, PX_AUTH_JWT);
    assert_string_equal(c.jwt_secret_file, "/run/secrets/jwt");
    assert_string_equal(c.jwt_issuer, "https://issuer.test");
    assert_string_equal(c.jwt_audience, "pricing");
    assert_int_equal(c.jwt_clock_skew_s, 0);
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_OK);
    /* flags win */
    assert_int_equal(px_config_set_flag(&c, "--jwks-file", "/etc/jwks.json", err, sizeof(err)),
                     PX_OK);
    assert_int_equal(px_config_set_flag(&c, "--jwt-clock-skew", "600", err, sizeof(err)), PX_OK);
    assert_int_equal(px_config_set_flag(&c, "--jwt-issuer", "i", err, sizeof(err)), PX_OK);
    assert_int_equal(px_config_set_flag(&c, "--jwt-audience", "a", err, sizeof(err)), PX_OK);
    assert_int_equal(px_config_set_flag(&c, "--jwt-secret-file", "/s", err, sizeof(err)), PX_OK);
    assert_string_equal(c.jwks_file, "/etc/jwks.json");
    assert_int_equal(c.jwt_clock_skew_s, 600);
    assert_string_equal(c.jwt_issuer, "i");

    /* bad values name the setting */
    assert_int_equal(px_config_set_flag(&c, "--jwt-clock-skew", "601", err, sizeof(err)),
                     PX_ERR_CONFIG);
    assert_non_null(strstr(err, "--jwt-clock-skew"));
    assert_int_equal(px_config_set_flag(&c, "--auth", "oauth", err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "--auth"));
    setenv("AUTH_MODE", "basic", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AUTH_MODE"));
    setenv("AUTH_MODE", "jwt", 1);
    setenv("AUTH_CLOCK_SKEW_S", "-1", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AUTH_CLOCK_SKEW_S"));
    unsetenv("AUTH_CLOCK_SKEW_S");
    unsetenv("AUTH_JWT_SECRET_FILE");
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AUTH_JWT_SECRET_FILE"));
    clear_auth_env();

    /* the usage lists the settings */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    px_config_usage(f);
    fclose(f);
    for (size_t i = 0; i + 1 < PX_COUNTOF(auth_vars); i++)
        assert_non_null(strstr(text, auth_vars[i]));
    assert_non_null(strstr(text, "--jwt-clock-skew"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_mode),       cmocka_unit_test(test_jwt_missing_and_bad),
        cmocka_unit_test(test_jwt_permissions), cmocka_unit_test(test_jwt_replaces_identity),
        cmocka_unit_test(test_permits),         cmocka_unit_test(test_apigw_mode),
        cmocka_unit_test(test_auth_new_errors), cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
