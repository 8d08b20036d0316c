/* test_tenant.c: TENANCY (CONTRACT §12): tenant names, the resolution rules
 * for every auth mode (none, jwt tokens minted here, API Gateway 1.0 / 2.0
 * authorizer claims), the tenant in log lines and rate limit keys, and the
 * audit record's tenant: keys, tenantId, chain hash (default = as before). */
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
#include "kernel/buf.h"
#include "kernel/log.h"
#include "kernel/tenant.h"
#include "store/audit.h"
#include "store/audit_chain.h"

static const char secret[] = "tenant-test-secret-tenant-test-secret-01";

static struct {
    char dir[64];
    char secret_path[128];
    struct px_auth *jwt;
    struct px_auth *apigw;
    struct px_arena *a;
} F;

static int setup(void **state)
{
    (void)state;
    snprintf(F.dir, sizeof(F.dir), "/tmp/px-tenant-XXXXXX");
    if (!mkdtemp(F.dir))
        return -1;
    snprintf(F.secret_path, sizeof(F.secret_path), "%s/secret", F.dir);
    FILE *f = fopen(F.secret_path, "wb");
    if (!f || fputs(secret, f) < 0 || fclose(f))
        return -1;
    struct px_config c = px_config_defaults;
    char err[256];
    c.auth_mode = PX_AUTH_JWT;
    snprintf(c.jwt_secret_file, sizeof(c.jwt_secret_file), "%s", F.secret_path);
    if (px_auth_new(&c, &F.jwt, err, sizeof(err)))
        return -1;
    c = px_config_defaults;
    c.auth_mode = PX_AUTH_APIGW;
    if (px_auth_new(&c, &F.apigw, err, sizeof(err)))
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
    rmdir(F.dir);
    return 0;
}

static void test_names(void **state)
{
    (void)state;
    const char *good[] = {"default", "a", "acme-1", "0", "-", NULL};
    const char *bad[] = {"", "Acme", "a_b", "a b", "a.b", "a#b", "é", NULL};
    for (size_t i = 0; good[i]; i++)
        assert_true(px_tenant_valid(good[i]));
    for (size_t i = 0; bad[i]; i++)
        assert_false(px_tenant_valid(bad[i]));
    char n[PX_TENANT_MAX + 2];
    memset(n, 'a', sizeof(n));
    n[PX_TENANT_MAX] = '\0';
    assert_true(px_tenant_valid(n));
    n[PX_TENANT_MAX] = 'a';
    n[PX_TENANT_MAX + 1] = '\0';
    assert_false(px_tenant_valid(n));
    assert_false(px_tenant_valid(NULL));
    struct px_request r = {.tenant = NULL};
    assert_string_equal(px_tenant_of(&r), "default");
    assert_string_equal(px_tenant_of(NULL), "default");
    r.tenant = "acme";
    assert_string_equal(px_tenant_of(&r), "acme");
}

struct call {
    struct px_request req;
    struct px_response resp;
    struct px_kv headers[6];
    px_rc rc;
};

/* Authenticates (mode of auth) a GET carrying the token (or none) and the
 * X-Tenant-ID headers (NULL-ended), then resolves its tenant. */
static void run(struct call *c, const struct px_auth *auth, bool tenancy, const char *tok,
                const char *const *tenant_headers)
{
    px_arena_reset(F.a);
    memset(c, 0, sizeof(*c));
    c->req.arena = F.a;
    c->req.method = "GET";
    c->req.path = "/price";
    c->req.request_id = "req-1";
    c->req.headers = c->headers;
    if (tok)
        c->headers[c->req.nheaders++] =
            (struct px_kv){"authorization", px_arena_printf(F.a, "Bearer %s", tok)};
    for (size_t i = 0; tenant_headers && tenant_headers[i] && c->req.nheaders < 6; i++)
        c->headers[c->req.nheaders++] = (struct px_kv){"x-tenant-id", tenant_headers[i]};
    c->rc = px_auth_check(auth, &c->req, NULL, &c->resp);
    if (!c->rc)
        c->rc = px_tenant_resolve(tenancy, px_auth_mode(auth), &c->req, &c->resp);
}

static char *token(const char *extra)
{
    char payload[1024];
    snprintf(payload, sizeof(payload), "{\"sub\":\"svc\",\"exp\":%lld%s%s}",
             (long long)time(NULL) + 600, extra[0] ? "," : "", extra);
    struct px_buf b;
    px_buf_init(&b, PX_JWT_MAX_TOKEN);
    assert_int_equal(px_jwt_sign_hs256((const unsigned char *)secret, strlen(secret), payload,
                                       strlen(payload), &b),
                     PX_OK);
    return px_buf_take(&b);
}

static void assert_refused(const struct call *c, px_rc rc, int status, const char *code)
{
    assert_int_equal(c->rc, rc);
    assert_int_equal(c->resp.status, status);
    assert_non_null(strstr(c->resp.body, code));
    assert_null(c->req.tenant);
}

static void test_off(void **state)
{
    (void)state;
    struct call c;
    const char *h[] = {"Bad Name", NULL};
    run(&c, NULL, false, NULL, h); /* the header means nothing with tenancy off */
    assert_int_equal(c.rc, PX_OK);
    assert_null(c.req.tenant);
    char *t = token("\"tenant\":\"acme\"");
    run(&c, F.jwt, false, t, NULL);
    assert_int_equal(c.rc, PX_OK);
    assert_null(c.req.tenant);
    free(t);
}

static void test_none_mode(void **state)
{
    (void)state;
    struct call c;
    const char *acme[] = {"acme", NULL};
    run(&c, NULL, true, NULL, acme);
    assert_int_equal(c.rc, PX_OK);
    assert_string_equal(c.req.tenant, "acme");
    run(&c, NULL, true, NULL, NULL);
    assert_refused(&c, PX_ERR_INVALID, 400, "VALIDATION_FAILED");
    assert_non_null(strstr(c.resp.body, "X-Tenant-ID"));
    const char *bad[] = {"ACME", NULL};
    run(&c, NULL, true, NULL, bad);
    assert_refused(&c, PX_ERR_INVALID, 400, "VALIDATION_FAILED");
    const char *twice[] = {"acme", "acme", NULL};
    run(&c, NULL, true, NULL, twice);
    assert_refused(&c, PX_ERR_INVALID, 400, "VALIDATION_FAILED");
}

static void test_jwt_mode(void **state)
{
    (void)state;
    struct call c;
    const char *acme[] = {"acme", NULL};
    const char *globex[] = {"globex", NULL};
    const char *initech[] = {"initech", NULL};
    const char *bad[] = {"Not/A/Tenant", NULL};

    /* header without a token: 401 before any tenant question */
    run(&c, F.jwt, true, NULL, acme);
    assert_refused(&c, PX_ERR_DENIED, 401, "UNAUTHORIZED");

    char *one = token("\"tenant\":\"acme\"");
    run(&c, F.jwt, true, one, NULL);
    assert_int_equal(c.rc, PX_OK);
    assert_string_equal(c.req.tenant, "acme");
    run(&c, F.jwt, true, one, acme); /* repeating the claim is fine */
    assert_int_equal(c.rc, PX_OK);
    assert_string_equal(c.req.tenant, "acme");
    run(&c, F.jwt, true, one, globex); /* overriding it is not */
    assert_refused(&c, PX_ERR_DENIED, 403, "FORBIDDEN");
    free(one);

    char *many = token("\"tenants\":[\"acme\",\"globex\"]");
    run(&c, F.jwt, true, many, globex);
    assert_int_equal(c.rc, PX_OK);
    assert_string_equal(c.req.tenant, "globex");
    run(&c, F.jwt, true, many, initech); /* not listed */
    assert_refused(&c, PX_ERR_DENIED, 403, "FORBIDDEN");
    run(&c, F.jwt, true, many, NULL); /* which one? */
    assert_refused(&c, PX_ERR_INVALID, 400, "VALIDATION_FAILED");
    run(&c, F.jwt, true, many, bad);
    assert_refused(&c, PX_ERR_INVALID, 400, "VALIDATION_FAILED");
    free(many);

    char *none = token("\"scope\":\"price:read\"");
    run(&c, F.jwt, true, none, acme); /* no tenant claim: a header alone grants nothing */
    assert_refused(&c, PX_ERR_DENIED, 403, "FORBIDDEN");
    free(none);

    char *malformed = token("\"tenant\":\"ACME\"");
    run(&c, F.jwt, true, malformed, NULL);
    assert_refused(&c, PX_ERR_DENIED, 403, "FORBIDDEN");
    free(malformed);

    /* claims of the wrong type make the token invalid */
    char *wrong = token("\"tenants\":\"acme\"");
    run(&c, F.jwt, true, wrong, acme);
    assert_refused(&c, PX_ERR_DENIED, 401, "UNAUTHORIZED");
    free(wrong);
}

static px_rc event(const char *json, bool tenancy, struct px_request *req, struct px_response *resp)
{
    enum px_apigw_format fmt;
    px_arena_reset(F.a);
    memset(req, 0, sizeof(*req));
    memset(resp, 0, sizeof(*resp));
    assert_int_equal(px_apigw_parse(F.a, json, strlen(json), req, &fmt), PX_OK);
    req->request_id = "req-1";
    px_rc rc = px_auth_check(F.apigw, req, NULL, resp);
    return rc ? rc : px_tenant_resolve(tenancy, PX_AUTH_APIGW, req, resp);
}

static void test_apigw_mode(void **state)
{
    (void)state;
    struct px_request req;
    struct px_response resp;
    const char *v2_one =
        "{\"version\":\"2.0\",\"rawPath\":\"/price\",\"requestContext\":{\"http\":{\"method\":"
        "\"GET\"},\"authorizer\":{\"jwt\":{\"claims\":{\"sub\":\"c\",\"tenant\":\"acme\"}}}}}";
    assert_int_equal(event(v2_one, true, &req, &resp), PX_OK);
    assert_string_equal(req.tenant, "acme");
    /* 2.0 flattens an array claim to "[a b]" */
    const char *v2_many =
        "{\"version\":\"2.0\",\"rawPath\":\"/price\",\"headers\":{\"x-tenant-id\":\"globex\"},"
        "\"requestContext\":{\"http\":{\"method\":\"GET\"},\"authorizer\":{\"jwt\":{\"claims\":"
        "{\"sub\":\"c\",\"tenants\":\"[acme globex]\"}}}}}";
    assert_int_equal(event(v2_many, true, &req, &resp), PX_OK);
    assert_string_equal(req.tenant, "globex");
    const char *v1_many =
        "{\"httpMethod\":\"GET\",\"path\":\"/price\",\"headers\":{\"X-Tenant-ID\":\"initech\"},"
        "\"requestContext\":{\"authorizer\":{\"claims\":{\"sub\":\"c\",\"tenants\":[\"acme\","
        "\"globex\"]}}}}";
    assert_int_equal(event(v1_many, true, &req, &resp), PX_ERR_DENIED);
    assert_int_equal(resp.status, 403);
    const char *v1_none =
        "{\"httpMethod\":\"GET\",\"path\":\"/price\",\"headers\":{\"X-Tenant-ID\":"
        "\"acme\"},\"requestContext\":{\"authorizer\":{\"claims\":{\"sub\":"
        "\"c\"}}}}";
    assert_int_equal(event(v1_none, true, &req, &resp), PX_ERR_DENIED);
    assert_int_equal(event(v1_none, false, &req, &resp), PX_OK);
    assert_null(req.tenant);
}

static void test_log_line(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/log", F.dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    assert_true(fd >= 0);
    px_log_init(PX_LOG_INFO, "price-fetcher");
    px_log_set_fd(fd);
    px_log_msg(PX_LOG_INFO, NULL, "before");
    px_log_set_tenant("acme");
    px_log_msg(PX_LOG_INFO, NULL, "during");
    struct px_request req = {.method = "GET", .route = "/price", .tenant = "acme"};
    struct px_response resp = {.status = 200};
    px_log_request(&req, &resp, 1.0);
    px_log_set_tenant(NULL);
    px_log_msg(PX_LOG_INFO, NULL, "after");
    px_log_set_fd(STDOUT_FILENO);
    char text[4096] = "";
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    char *lines[4] = {text};
    for (int i = 1; i < 4; i++) {
        lines[i] = strchr(lines[i - 1], '\n');
        assert_non_null(lines[i]);
        *lines[i]++ = '\0';
    }
    assert_null(strstr(lines[0], "tenantId"));
    assert_non_null(strstr(lines[1], "\"tenantId\":\"acme\""));
    assert_non_null(strstr(lines[2], "\"tenantId\":\"acme\""));
    assert_null(strstr(lines[3], "tenantId"));
}

static void fill(struct px_audit_record *r, const char *tenant)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->user_id, sizeof(r->user_id), "123e4567-e89b-42d3-a456-426614174000");
    snprintf(r->product_id, sizeof(r->product_id), "PROD-101");
    snprintf(r->request_id, sizeof(r->request_id), "r1");
    snprintf(r->correlation_id, sizeof(r->correlation_id), "r1");
    snprintf(r->ts, sizeof(r->ts), "2026-01-23T12:00:00.123Z");
    snprintf(r->action, sizeof(r->action), "PRICE_FETCH");
    snprintf(r->status, sizeof(r->status), "SUCCESS");
    r->expires_at = 1800000000;
    snprintf(r->tenant, sizeof(r->tenant), "%s", tenant);
}

static void test_audit_record(void **state)
{
    (void)state;
    struct px_audit_record off, def, acme;
    fill(&off, "");
    fill(&def, "default");
    fill(&acme, "acme");
    char pk[PX_AUDIT_PK_MAX], sk[128], g[PX_AUDIT_GSI1PK_MAX];
    px_audit_keys(&off, pk, sk, g);
    assert_string_equal(pk, "USER#123e4567-e89b-42d3-a456-426614174000");
    assert_string_equal(g, "PRODUCT#PROD-101");
    px_audit_keys(&def, pk, sk, g); /* the default tenant keeps today's keys */
    assert_string_equal(pk, "USER#123e4567-e89b-42d3-a456-426614174000");
    assert_string_equal(g, "PRODUCT#PROD-101");
    px_audit_keys(&acme, pk, sk, g);
    assert_string_equal(pk, "T#acme#USER#123e4567-e89b-42d3-a456-426614174000");
    assert_string_equal(g, "T#acme#PRODUCT#PROD-101");
    acme.user_id[0] = '\0';
    snprintf(acme.principal, sizeof(acme.principal), "svc");
    snprintf(acme.config_key, sizeof(acme.config_key), "flags.x");
    px_audit_keys(&acme, pk, sk, g);
    assert_string_equal(pk, "T#acme#ACTOR#svc");
    assert_string_equal(g, "T#acme#CONFIG#flags.x");
    fill(&acme, "acme");

    /* tenantId only with tenancy on; the rest byte for byte */
    struct px_buf b1, b2;
    px_buf_init(&b1, 4096);
    px_buf_init(&b2, 4096);
    assert_int_equal(px_audit_record_json(&off, &b1), PX_OK);
    assert_int_equal(px_audit_record_json(&def, &b2), PX_OK);
    assert_null(strstr(b1.data, "tenantId"));
    assert_non_null(strstr(b2.data, ",\"tenantId\":\"default\","));
    px_buf_free(&b1);
    px_buf_free(&b2);

    /* hashes: default as before, another tenant differs */
    unsigned char prev[PX_CHAIN_HASH_LEN] = {0}, h1[PX_CHAIN_HASH_LEN], h2[PX_CHAIN_HASH_LEN],
                  h3[PX_CHAIN_HASH_LEN];
    px_chain_hash("w", 1, &off, prev, h1);
    px_chain_hash("w", 1, &def, prev, h2);
    px_chain_hash("w", 1, &acme, prev, h3);
    assert_memory_equal(h1, h2, PX_CHAIN_HASH_LEN);
    assert_memory_not_equal(h1, h3, PX_CHAIN_HASH_LEN);

    /* read back: the tenant comes from the key */
    struct px_audit_record r;
    memset(&r, 0, sizeof(r));
    assert_string_equal(px_audit_tenant_from_key(&r, "T#acme#PRODUCT#P1", NULL), "PRODUCT#P1");
    assert_string_equal(r.tenant, "acme");
    assert_string_equal(px_audit_tenant_from_key(&r, "PRODUCT#P1", "default"), "PRODUCT#P1");
    assert_string_equal(r.tenant, "default");
    assert_string_equal(px_audit_tenant_from_key(&r, "PRODUCT#P1", NULL), "PRODUCT#P1");
    assert_string_equal(r.tenant, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),        cmocka_unit_test(test_off),
        cmocka_unit_test(test_none_mode),    cmocka_unit_test(test_jwt_mode),
        cmocka_unit_test(test_apigw_mode),   cmocka_unit_test(test_log_line),
        cmocka_unit_test(test_audit_record),
    };
    int null_fd = open("/dev/null", O_WRONLY);
    px_log_set_fd(null_fd);
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    close(null_fd);
    return rc;
}
