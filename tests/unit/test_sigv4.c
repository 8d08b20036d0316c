/* test_sigv4.c: every case of the AWS SigV4 test suite ($PX_TESTDATA/sigv4),
 * canonical request, string to sign and Authorization compared byte for byte,
 * plus a DynamoDB-shaped request cross-checked against botocore's signer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "store/sigv4.h"
#include "px_test.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SUITE_TIME 1440938160 /* 2015-08-30T12:36:00Z */
#define SUITE_AKID "AKIDEXAMPLE"
#define SUITE_SKEY "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define STS_TOKEN                                                                                  \
    "AQoDYXdzEPT//////////"                                                                        \
    "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwt"  \
    "hAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9"   \
    "HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOL" \
    "n9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
#define VANILLA_TOKEN "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
#define MAX_CASES     64

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* A parsed .req: request line, headers (continuation lines folded in), body. */
struct req {
    char *text;
    char *method, *path, *query;
    struct px_sigv4_header h[PX_SIGV4_MAX_HEADERS];
    char *hv[PX_SIGV4_MAX_HEADERS]; /* owned values when folded */
    size_t nh;
    const char *body;
    size_t body_len;
};

static void req_free(struct req *r)
{
    for (size_t i = 0; i < r->nh; i++)
        free(r->hv[i]);
    free(r->text);
}

static void parse_req(const char *file, struct req *r)
{
    size_t len = 0;
    memset(r, 0, sizeof(*r));
    r->text = read_all(file, &len);
    assert_non_null(r->text);
    char *p = r->text, *end = r->text + len;
    char *eol = strchr(p, '\n');
    assert_non_null(eol);
    *eol = '\0';
    /* "METHOD URI HTTP/1.1": the URI may hold a raw space (normalize-path/get-space). */
    char *sp1 = strchr(p, ' ');
    char *sp2 = strrchr(p, ' ');
    assert_true(sp1 && sp2 && sp2 > sp1);
    *sp1 = '\0';
    *sp2 = '\0';
    r->method = p;
    r->path = sp1 + 1;
    char *q = strchr(r->path, '?');
    r->query = "";
    if (q) {
        *q = '\0';
        r->query = q + 1;
    }
    p = eol + 1;
    r->body = "";
    while (p < end) {
        char *e = strchr(p, '\n');
        if (!e)
            e = end;
        *e = '\0';
        if (*p == '\0') { /* blank line: the body follows */
            r->body = e + 1 <= end ? e + 1 : end;
            r->body_len = (size_t)(end - (char *)r->body);
            if (e == end)
                r->body_len = 0;
            break;
        }
        if ((*p == ' ' || *p == '\t') && r->nh > 0) {
            /* folded continuation of the previous header */
            size_t i = r->nh - 1;
            size_t a = strlen(r->h[i].value), b = strlen(p);
            char *v = malloc(a + b + 2);
            assert_non_null(v);
            memcpy(v, r->h[i].value, a);
            v[a] = '\n';
            memcpy(v + a + 1, p, b + 1);
            free(r->hv[i]);
            r->hv[i] = v;
            r->h[i].value = v;
        } else {
            char *colon = strchr(p, ':');
            assert_non_null(colon);
            assert_true(r->nh < PX_SIGV4_MAX_HEADERS - 2);
            *colon = '\0';
            r->h[r->nh].name = p;
            r->h[r->nh].value = colon + 1;
            r->nh++;
        }
        p = e + 1;
    }
}

static char *expect_file(const char *dir, const char *name, const char *ext)
{
    char path[1100];
    snprintf(path, sizeof(path), "%.899s/%.95s.%.8s", dir, name, ext);
    char *s = read_all(path, NULL);
    if (!s)
        fail_msg("cannot read %s", path);
    return s;
}

struct vcase {
    char dir[900];
    char name[96];
};

static void run_case(void **state)
{
    const struct vcase *c = *state;
    char file[1100];
    struct req r;
    snprintf(file, sizeof(file), "%.899s/%.95s.req", c->dir, c->name);
    parse_req(file, &r);

    struct px_sigv4_input in = {
        .method = r.method,
        .path = r.path,
        .query = r.query,
        .headers = r.h,
        .nheaders = r.nh,
        .payload = r.body,
        .payload_len = r.body_len,
        .region = "us-east-1",
        .service = "service",
        .access_key_id = SUITE_AKID,
        .secret_access_key = SUITE_SKEY,
        .now = SUITE_TIME,
    };
    /* Session tokens: signed in get-vanilla-with-session-token (not in its .req) and in
     * post-sts-header-before (already a header: must not be signed twice); added after
     * signing in post-sts-header-after (so not an input of the signature). */
    if (strcmp(c->name, "get-vanilla-with-session-token") == 0)
        in.session_token = VANILLA_TOKEN;
    if (strcmp(c->name, "post-sts-header-before") == 0)
        in.session_token = STS_TOKEN;

    struct px_sigv4_output *out = malloc(sizeof(*out));
    assert_non_null(out);
    assert_int_equal(px_sigv4_sign(&in, out), PX_OK);
    char *creq = expect_file(c->dir, c->name, "creq");
    char *sts = expect_file(c->dir, c->name, "sts");
    char *authz = expect_file(c->dir, c->name, "authz");
    assert_string_equal(out->canonical_request, creq);
    assert_string_equal(out->string_to_sign, sts);
    assert_string_equal(out->authorization, authz);
    assert_string_equal(out->amz_date, "20150830T123600Z");
    free(creq);
    free(sts);
    free(authz);
    free(out);
    req_free(&r);
}

/* Every directory D holding D/D.req is a case. */
static void find_cases(const char *dir, struct vcase *cases, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[900], req[1100];
        struct stat st;
        snprintf(sub, sizeof(sub), "%.700s/%.120s", dir, e->d_name);
        if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        snprintf(req, sizeof(req), "%.899s/%.120s.req", sub, e->d_name);
        if (stat(req, &st) == 0 && *n < MAX_CASES) {
            snprintf(cases[*n].dir, sizeof(cases[*n].dir), "%s", sub);
            snprintf(cases[*n].name, sizeof(cases[*n].name), "%.95s", e->d_name);
            (*n)++;
        } else {
            find_cases(sub, cases, n);
        }
    }
    closedir(d);
}

/* The DynamoDB JSON-protocol shape (no case in the suite has it), cross-checked with
 * botocore 1.43 SigV4Auth at the suite's clock: POST / to 127.0.0.1:8000 with a token. */
static void test_dynamodb_shape(void **state)
{
    (void)state;
    const char *body = "{\"TableName\":\"audit_test\",\"Key\":{\"pk\":{\"S\":\"USER#a\"}}}";
    const struct px_sigv4_header h[] = {
        {"Content-Type", "application/x-amz-json-1.0"},
        {"X-Amz-Target", "DynamoDB_20120810.GetItem"},
        {"Host", "127.0.0.1:8000"},
    };
    struct px_sigv4_input in = {
        .method = "POST",
        .path = "/",
        .headers = h,
        .nheaders = 3,
        .payload = body,
        .payload_len = strlen(body),
        .region = "us-east-1",
        .service = "dynamodb",
        .access_key_id = SUITE_AKID,
        .secret_access_key = SUITE_SKEY,
        .session_token = "session-token-example",
        .now = SUITE_TIME,
    };
    struct px_sigv4_output *out = malloc(sizeof(*out));
    assert_non_null(out);
    assert_int_equal(px_sigv4_sign(&in, out), PX_OK);
    assert_string_equal(out->payload_hash,
                        "28e8c96c1b97a1249c1e8f4dceb53f2b67269890efbee39945231d1d02660dfd");
    assert_string_equal(
        out->authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
        "Signature=7d3ce1897457afb0f25d3a914401b3a188c92c3ef3931225458e1ebdfe6ae78c");
    free(out);
}

static void test_rejects_and_caps(void **state)
{
    (void)state;
    struct px_sigv4_output *out = malloc(sizeof(*out));
    assert_non_null(out);
    const struct px_sigv4_header bad[] = {{"Bad Name", "x"}};
    struct px_sigv4_input in = {
        .method = "POST",
        .path = "/",
        .region = "us-east-1",
        .service = "dynamodb",
        .access_key_id = SUITE_AKID,
        .secret_access_key = SUITE_SKEY,
        .now = SUITE_TIME,
    };
    assert_int_equal(px_sigv4_sign(&in, out), PX_OK);
    in.path = "no-slash";
    assert_int_equal(px_sigv4_sign(&in, out), PX_ERR_INVALID);
    in.path = "/";
    in.secret_access_key = "";
    assert_int_equal(px_sigv4_sign(&in, out), PX_ERR_INVALID);
    in.secret_access_key = SUITE_SKEY;
    const struct px_sigv4_header stale[] = {{"X-Amz-Date", "20150830T123559Z"}};
    in.headers = stale;
    in.nheaders = 1;
    assert_int_equal(px_sigv4_sign(&in, out), PX_ERR_INVALID);
    in.headers = bad;
    in.nheaders = 1;
    assert_int_equal(px_sigv4_sign(&in, out), PX_ERR_INVALID);
    /* a header too big for the canonical request is an error, never a truncation */
    size_t big = PX_SIGV4_MAX_CREQ + 10;
    char *v = malloc(big + 1);
    assert_non_null(v);
    memset(v, 'a', big);
    v[big] = '\0';
    const struct px_sigv4_header huge[] = {{"X-Big", v}};
    in.headers = huge;
    assert_int_equal(px_sigv4_sign(&in, out), PX_ERR_TOO_LARGE);
    in.nheaders = 0;
    in.session_token = v;
    assert_int_equal(px_sigv4_sign(&in, out), PX_ERR_TOO_LARGE);
    free(v);
    free(out);
}

/* The signature of out->string_to_sign under the key derived from scratch
 * with OpenSSL's own HMAC, as hex. */
static void reference_signature(const char *secret, const char *date, const char *region,
                                const char *service, const char *sts, char hex[65])
{
    unsigned char k[32], sig[32];
    unsigned int len = 0;
    char key0[300];
    snprintf(key0, sizeof(key0), "AWS4%s", secret);
    assert_non_null(
        HMAC(EVP_sha256(), key0, (int)strlen(key0), (const unsigned char *)date, 8, k, &len));
    assert_non_null(
        HMAC(EVP_sha256(), k, 32, (const unsigned char *)region, strlen(region), k, &len));
    assert_non_null(
        HMAC(EVP_sha256(), k, 32, (const unsigned char *)service, strlen(service), k, &len));
    assert_non_null(HMAC(EVP_sha256(), k, 32, (const unsigned char *)"aws4_request", 12, k, &len));
    assert_non_null(HMAC(EVP_sha256(), k, 32, (const unsigned char *)sts, strlen(sts), sig, &len));
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", sig[i]);
}

/* The signing key is derived once and reused: every change of secret, day,
 * region or service, in any order and back again, must derive the right key. */
static void test_signing_key_follows_inputs(void **state)
{
    (void)state;
    char long_secret[201];
    memset(long_secret, 'K', 200); /* longer than an HMAC block */
    long_secret[200] = '\0';
    const char *secrets[] = {SUITE_SKEY, "another/secret+KEY0123456789abcdefghijk", long_secret};
    const time_t days[] = {SUITE_TIME, SUITE_TIME + 60, SUITE_TIME + 86400, SUITE_TIME - 86400};
    const char *regions[] = {"us-east-1", "eu-west-1"};
    const char *services[] = {"dynamodb", "iam"};
    struct px_sigv4_output *out = malloc(sizeof(*out));
    assert_non_null(out);
    /* Every ordered pair of combinations, one after the other: the second
     * differs from the first in any one input or several. */
    const size_t na = PX_COUNTOF(secrets), nd = PX_COUNTOF(days), nr = PX_COUNTOF(regions),
                 nv = PX_COUNTOF(services), n = na * nd * nr * nv;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            for (int k = 0; k < 2; k++) {
                size_t x = k ? j : i;
                size_t a = x % na, d = x / na % nd, r = x / na / nd % nr, v = x / na / nd / nr;
                struct px_sigv4_input in = {
                    .method = "GET",
                    .path = "/",
                    .region = regions[r],
                    .service = services[v],
                    .access_key_id = SUITE_AKID,
                    .secret_access_key = secrets[a],
                    .now = days[d],
                };
                assert_int_equal(px_sigv4_sign(&in, out), PX_OK);
                char want[65];
                reference_signature(secrets[a], out->amz_date, regions[r], services[v],
                                    out->string_to_sign, want);
                const char *got = strstr(out->authorization, "Signature=");
                assert_non_null(got);
                assert_string_equal(got + 10, want);
            }
    free(out);
}

static void test_uri_encode(void **state)
{
    (void)state;
    char buf[64];
    size_t n = px_sigv4_uri_encode("a b/~$", 6, true, buf, 0, sizeof(buf));
    assert_int_equal(n, 10);
    assert_string_equal(buf, "a%20b/~%24");
    n = px_sigv4_uri_encode("a/b", 3, false, buf, 0, sizeof(buf));
    assert_string_equal(buf, "a%2Fb");
    assert_int_equal(px_sigv4_uri_encode("%%%%", 4, false, buf, 0, 8), (size_t)-1);
}

int main(void)
{
    char root[800];
    snprintf(root, sizeof(root), "%s/sigv4", px_test_data());
    static struct vcase cases[MAX_CASES];
    size_t n = 0;
    find_cases(root, cases, &n);
    if (n != 34) {
        fprintf(stderr, "test_sigv4: expected 34 cases under %s, found %zu\n", root, n);
        return 1;
    }
    struct CMUnitTest tests[MAX_CASES + 4];
    for (size_t i = 0; i < n; i++) {
        tests[i] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, &cases[i]};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_dynamodb_shape);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_rejects_and_caps);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_uri_encode);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_signing_key_follows_inputs);
    return _cmocka_run_group_tests("sigv4", tests, n, NULL, NULL);
}
