/* test_jwt.c: JWT verification. Every key and token is made here with OpenSSL
 * (HMAC, an RSA 2048 key and an EC P-256 key generated at start, a JWKS file
 * written from them into a temporary directory); nothing is copied in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel/jwt.h"

extern px_rc px_jwt_b64url_decode(const char *s, size_t n, unsigned char *out, size_t *outlen);

#define NOW ((int64_t)1700000000)

static const char secret[] = "0123456789abcdef0123456789abcdef-test-secret";

static struct {
    char dir[64];
    char jwks_path[128];
    EVP_PKEY *rsa, *rsa_other, *ec, *ec_other;
    char *jwks;
    size_t jwks_len;
    struct px_jwt_verifier *v; /* HS256 secret + rsa-1 + ec-1, iss/aud set, skew 60 */
    struct px_arena *a;
} F;

/* ---------------------------------------------------------------- helpers */

static char *b64u(const void *data, size_t n)
{
    struct px_buf b;
    px_buf_init(&b, 1 << 20);
    assert_int_equal(px_jwt_b64url_encode(data, n, &b), PX_OK);
    char *s = px_buf_take(&b);
    return s ? s : strdup("");
}

static char *bn_b64u(const BIGNUM *bn)
{
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    assert_true(n > 0);
    return b64u(buf, (size_t)n);
}

static char *rsa_jwk(EVP_PKEY *k, const char *kid)
{
    BIGNUM *n = NULL, *e = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    char *nb = bn_b64u(n), *eb = bn_b64u(e);
    char *out = malloc(4096);
    snprintf(out, 4096,
             "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"RS256\","
             "\"n\":\"%s\",\"e\":\"%s\"}",
             kid, nb, eb);
    free(nb);
    free(eb);
    BN_free(n);
    BN_free(e);
    return out;
}

/* x and y of a P-256 key as base64url; the coordinates always take 32 bytes. */
static char *ec_jwk(EVP_PKEY *k, const char *kid)
{
    unsigned char pt[65];
    size_t n = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n), 1);
    assert_int_equal(n, 65);
    assert_int_equal(pt[0], 4);
    char *xb = b64u(pt + 1, 32), *yb = b64u(pt + 33, 32);
    char *out = malloc(1024);
    snprintf(out, 1024,
             "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", kid, xb,
             yb);
    free(xb);
    free(yb);
    return out;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* header.payload signed with one of: HS256 (hmac key), RS256 / ES256 (pkey). */
enum how { SIGN_HMAC, SIGN_RSA, SIGN_EC, SIGN_NONE };

static char *sign_token(enum how how, const void *hkey, size_t hkeylen, EVP_PKEY *pkey,
                        const char *header, const char *payload)
{
    char *h = b64u(header, strlen(header)), *p = b64u(payload, strlen(payload));
    size_t inlen = strlen(h) + 1 + strlen(p);
    char *input = malloc(inlen + 1);
    snprintf(input, inlen + 1, "%s.%s", h, p);
    unsigned char sig[1024];
    size_t siglen = 0;
    if (how == SIGN_HMAC) {
        unsigned int l = 0;
        assert_non_null(
            HMAC(EVP_sha256(), hkey, (int)hkeylen, (unsigned char *)input, inlen, sig, &l));
        siglen = l;
    } else if (how == SIGN_RSA || how == SIGN_EC) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char der[256];
        size_t derlen = sizeof(der);
        unsigned char *dst = how == SIGN_RSA ? sig : der;
        size_t *dstlen = how == SIGN_RSA ? &siglen : &derlen;
        if (how == SIGN_RSA)
            siglen = sizeof(sig);
        assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL), 1);
        assert_int_equal(EVP_DigestSign(ctx, dst, dstlen, (unsigned char *)input, inlen), 1);
        EVP_MD_CTX_free(ctx);
        if (how == SIGN_EC) {
            /* DER -> r || s, 32 bytes each, as JWS wants */
            const unsigned char *q = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)derlen);
            assert_non_null(es);
            assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
            assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
            ECDSA_SIG_free(es);
            siglen = 64;
        }
    }
    char *s = b64u(sig, siglen);
    size_t total = inlen + 1 + strlen(s) + 1;
    char *tok = malloc(total);
    snprintf(tok, total, "%s.%s", input, s);
    free(h);
    free(p);
    free(s);
    free(input);
    return tok;
}

static char *payload_with(const char *extra)
{
    char *p = malloc(2048);
    snprintf(p, 2048,
             "{\"sub\":\"svc-reader\",\"iss\":\"https://issuer.test\",\"aud\":\"pricing\","
             "\"exp\":%lld,\"iat\":%lld,\"scope\":\"price:read audit:read\"%s%s}",
             (long long)NOW + 300, (long long)NOW - 10, extra && extra[0] ? "," : "",
             extra ? extra : "");
    return p;
}

static char *hs_token(const char *payload)
{
    return sign_token(SIGN_HMAC, secret, strlen(secret), NULL,
                      "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload);
}

static char *rs_token(EVP_PKEY *k, const char *payload)
{
    return sign_token(SIGN_RSA, NULL, 0, k, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", payload);
}

static char *es_token(EVP_PKEY *k, const char *payload)
{
    return sign_token(SIGN_EC, NULL, 0, k, "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"typ\":\"JWT\"}",
                      payload);
}

static enum px_jwt_why verify_with(const struct px_jwt_verifier *v, const char *tok, int64_t now,
                                   struct px_jwt_claims *c)
{
    enum px_jwt_why why = PX_JWT_OK;
    struct px_jwt_claims local;
    px_arena_reset(F.a);
    px_rc rc = px_jwt_verify(v, tok, strlen(tok), now, F.a, c ? c : &local, &why);
    if (rc == PX_OK) {
        assert_int_equal(why, PX_JWT_OK);
        return PX_JWT_OK;
    }
    assert_int_equal(rc, PX_ERR_DENIED);
    assert_int_not_equal(why, PX_JWT_OK);
    return why;
}

static enum px_jwt_why verify(const char *tok)
{
    return verify_with(F.v, tok, NOW, NULL);
}

static struct px_jwt_verifier *new_verifier(const char *jwks, const char *iss, const char *aud,
                                            long skew, bool with_secret, px_rc want, char *err,
                                            size_t errlen)
{
    struct px_jwt_settings s = {
        .hs256_secret = with_secret ? (const unsigned char *)secret : NULL,
        .hs256_secret_len = with_secret ? strlen(secret) : 0,
        .jwks = jwks,
        .jwks_len = jwks ? strlen(jwks) : 0,
        .issuer = iss,
        .audience = aud,
        .clock_skew_s = skew,
    };
    struct px_jwt_verifier *v = NULL;
    err[0] = '\0';
    assert_int_equal(px_jwt_verifier_new(&s, &v, err, errlen), want);
    if (want)
        assert_null(v);
    else
        assert_non_null(v);
    return v;
}

/* ---------------------------------------------------------------- fixture */

static int setup(void **state)
{
    (void)state;
    snprintf(F.dir, sizeof(F.dir), "/tmp/px-jwt-XXXXXX");
    if (!mkdtemp(F.dir))
        return -1;
    F.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    F.rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    F.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    F.ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    F.a = px_arena_new(1 << 20);
    if (!F.rsa || !F.rsa_other || !F.ec || !F.ec_other || !F.a)
        return -1;
    char *r = rsa_jwk(F.rsa, "rsa-1"), *e = ec_jwk(F.ec, "ec-1");
    size_t n = strlen(r) + strlen(e) + 64;
    char *jwks = malloc(n);
    snprintf(jwks, n, "{\"keys\":[%s,%s]}", r, e);
    free(r);
    free(e);
    snprintf(F.jwks_path, sizeof(F.jwks_path), "%s/jwks.json", F.dir);
    write_file(F.jwks_path, jwks);
    free(jwks);

    /* As the service does it: the JWKS read back from its file. */
    char err[256];
    if (px_jwt_read_file(F.jwks_path, PX_JWT_MAX_JWKS, &F.jwks, &F.jwks_len, err, sizeof(err)))
        return -1;
    struct px_jwt_settings s = {
        .hs256_secret = (const unsigned char *)secret,
        .hs256_secret_len = strlen(secret),
        .jwks = F.jwks,
        .jwks_len = F.jwks_len,
        .issuer = "https://issuer.test",
        .audience = "pricing",
        .clock_skew_s = 60,
    };
    if (px_jwt_verifier_new(&s, &F.v, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "verifier: %s\n", err);
        return -1;
    }
    return px_jwt_verifier_nkeys(F.v) == 3 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    px_jwt_verifier_free(F.v);
    EVP_PKEY_free(F.rsa);
    EVP_PKEY_free(F.rsa_other);
    EVP_PKEY_free(F.ec);
    EVP_PKEY_free(F.ec_other);
    px_arena_free(F.a);
    free(F.jwks);
    unlink(F.jwks_path);
    rmdir(F.dir);
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void test_valid_tokens(void **state)
{
    (void)state;
    char *p = payload_with("\"roles\":[\"ops\"]");
    char *toks[3] = {hs_token(p), rs_token(F.rsa, p), es_token(F.ec, p)};
    const enum px_jwt_alg algs[3] = {PX_JWT_HS256, PX_JWT_RS256, PX_JWT_ES256};
    for (size_t i = 0; i < 3; i++) {
        struct px_jwt_claims c;
        assert_int_equal(verify_with(F.v, toks[i], NOW, &c), PX_JWT_OK);
        assert_string_equal(c.subject, "svc-reader");
        assert_int_equal(c.alg, algs[i]);
        assert_int_equal(c.nscopes, 3);
        assert_string_equal(c.scopes[0], "price:read");
        assert_string_equal(c.scopes[1], "audit:read");
        assert_string_equal(c.scopes[2], "ops");
        assert_null(c.scopes[3]);
        assert_true(c.exp == (double)(NOW + 300));
        free(toks[i]);
    }
    free(p);
}

static void test_wrong_signature_and_key(void **state)
{
    (void)state;
    char *p = payload_with(NULL);
    char *toks[3] = {hs_token(p), rs_token(F.rsa, p), es_token(F.ec, p)};
    for (size_t i = 0; i < 3; i++) {
        /* a flipped character in the middle of the signature */
        char *t = toks[i];
        char *sig = strrchr(t, '.') + 1;
        size_t mid = strlen(sig) / 2;
        sig[mid] = sig[mid] == 'A' ? 'B' : 'A';
        assert_int_equal(verify(t), PX_JWT_BAD_SIGNATURE);
        /* the payload changed under a valid signature */
        free(t);
    }
    char *h = hs_token(p);
    char *p2 = payload_with("\"x\":1");
    char *h2 = hs_token(p2);
    /* splice: header.payload of one token with the signature of another */
    char spliced[4096];
    snprintf(spliced, sizeof(spliced), "%.*s%s", (int)(strrchr(h2, '.') - h2), h2, strrchr(h, '.'));
    assert_int_equal(verify(spliced), PX_JWT_BAD_SIGNATURE);

    /* right kid, wrong key */
    char *r = rs_token(F.rsa_other, p), *e = es_token(F.ec_other, p);
    assert_int_equal(verify(r), PX_JWT_BAD_SIGNATURE);
    assert_int_equal(verify(e), PX_JWT_BAD_SIGNATURE);
    /* another secret */
    char *o = sign_token(SIGN_HMAC, "another-secret-another-secret-xx", 32, NULL,
                         "{\"alg\":\"HS256\"}", p);
    assert_int_equal(verify(o), PX_JWT_BAD_SIGNATURE);
    free(h);
    free(p2);
    free(h2);
    free(r);
    free(e);
    free(o);
    free(p);
}

static void test_times(void **state)
{
    (void)state;
    char *p = payload_with(NULL);
    char *t = es_token(F.ec, p);
    /* exp = NOW + 300, skew 60 */
    assert_int_equal(verify_with(F.v, t, NOW + 359, NULL), PX_JWT_OK);
    assert_int_equal(verify_with(F.v, t, NOW + 360, NULL), PX_JWT_EXPIRED);
    assert_int_equal(verify_with(F.v, t, NOW + 100000, NULL), PX_JWT_EXPIRED);
    /* iat = NOW - 10: a clock 70 s behind is beyond the skew */
    assert_int_equal(verify_with(F.v, t, NOW - 69, NULL), PX_JWT_OK);
    assert_int_equal(verify_with(F.v, t, NOW - 71, NULL), PX_JWT_NOT_YET_VALID);
    free(t);
    free(p);

    char extra[128];
    snprintf(extra, sizeof(extra), "\"nbf\":%lld", (long long)NOW + 30);
    p = payload_with(extra);
    t = hs_token(p);
    assert_int_equal(verify(t), PX_JWT_OK); /* 30 s early: within the 60 s skew */
    free(t);
    free(p);
    snprintf(extra, sizeof(extra), "\"nbf\":%lld", (long long)NOW + 61);
    p = payload_with(extra);
    t = hs_token(p);
    assert_int_equal(verify(t), PX_JWT_NOT_YET_VALID);
    free(t);
    free(p);

    /* skew 0: exactly at exp is expired, a second before is not */
    char err[256];
    struct px_jwt_verifier *strict =
        new_verifier(F.jwks, "https://issuer.test", "pricing", 0, true, PX_OK, err, sizeof(err));
    p = payload_with(NULL);
    t = hs_token(p);
    assert_int_equal(verify_with(strict, t, NOW + 299, NULL), PX_JWT_OK);
    assert_int_equal(verify_with(strict, t, NOW + 300, NULL), PX_JWT_EXPIRED);
    assert_int_equal(verify_with(strict, t, NOW - 11, NULL), PX_JWT_NOT_YET_VALID);
    free(t);
    free(p);
    /* fractional NumericDate */
    t = hs_token("{\"sub\":\"a\",\"iss\":\"https://issuer.test\",\"aud\":\"pricing\","
                 "\"exp\":1700000000.5}");
    assert_int_equal(verify_with(strict, t, NOW, NULL), PX_JWT_OK);
    assert_int_equal(verify_with(strict, t, NOW + 1, NULL), PX_JWT_EXPIRED);
    free(t);
    px_jwt_verifier_free(strict);
}

static void test_issuer_audience(void **state)
{
    (void)state;
    char exp[64];
    snprintf(exp, sizeof(exp), "\"exp\":%lld", (long long)NOW + 300);
    static const struct {
        const char *claims; /* besides sub and exp */
        enum px_jwt_why want;
    } cases[] = {
        {"\"iss\":\"https://issuer.test\",\"aud\":\"pricing\"", PX_JWT_OK},
        {"\"iss\":\"https://issuer.test\",\"aud\":[\"other\",\"pricing\"]", PX_JWT_OK},
        {"\"iss\":\"https://evil.test\",\"aud\":\"pricing\"", PX_JWT_BAD_ISSUER},
        {"\"aud\":\"pricing\"", PX_JWT_BAD_ISSUER},
        {"\"iss\":\"https://issuer.test/\",\"aud\":\"pricing\"", PX_JWT_BAD_ISSUER},
        {"\"iss\":\"https://issuer.test\",\"aud\":\"other\"", PX_JWT_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.test\",\"aud\":[\"other\"]", PX_JWT_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.test\"", PX_JWT_BAD_AUDIENCE},
        {"\"iss\":\"https://issuer.test\",\"aud\":[]", PX_JWT_BAD_CLAIMS},
        {"\"iss\":\"https://issuer.test\",\"aud\":[\"pricing\",7]", PX_JWT_BAD_CLAIMS},
        {"\"iss\":7,\"aud\":\"pricing\"", PX_JWT_BAD_CLAIMS},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        char p[512];
        snprintf(p, sizeof(p), "{\"sub\":\"s\",%s,%s}", exp, cases[i].claims);
        char *t = rs_token(F.rsa, p);
        if (verify(t) != cases[i].want)
            fail_msg("case %zu (%s): got %d want %d", i, cases[i].claims, verify(t), cases[i].want);
        free(t);
    }
    /* No audience configured: a token that names one is not for us (RFC 7519 4.1.3). */
    char err[256];
    struct px_jwt_verifier *v = new_verifier(NULL, NULL, NULL, 60, true, PX_OK, err, sizeof(err));
    char p[256];
    snprintf(p, sizeof(p), "{\"sub\":\"s\",%s,\"aud\":\"pricing\",\"iss\":\"any\"}", exp);
    char *t = hs_token(p);
    assert_int_equal(verify_with(v, t, NOW, NULL), PX_JWT_BAD_AUDIENCE);
    free(t);
    snprintf(p, sizeof(p), "{\"sub\":\"s\",%s,\"iss\":\"any\"}", exp);
    t = hs_token(p);
    assert_int_equal(verify_with(v, t, NOW, NULL), PX_JWT_OK);
    free(t);
    px_jwt_verifier_free(v);
}

static void test_alg_none_and_unknown(void **state)
{
    (void)state;
    char *p = payload_with(NULL);
    const char *headers[] = {
        "{\"alg\":\"none\"}",  "{\"alg\":\"None\"}",  "{\"alg\":\"NONE\"}",
        "{\"alg\":\"HS512\"}", "{\"alg\":\"PS256\"}", "{\"alg\":\"hs256\"}",
        "{\"typ\":\"JWT\"}",   "{\"alg\":null}",      "{\"alg\":[\"HS256\"]}",
    };
    for (size_t i = 0; i < PX_COUNTOF(headers); i++) {
        /* unsigned (empty signature part) and HMAC-signed with the real secret */
        char *t = sign_token(SIGN_NONE, NULL, 0, NULL, headers[i], p);
        assert_int_equal(verify(t), PX_JWT_MALFORMED); /* empty third part */
        free(t);
        t = sign_token(SIGN_HMAC, secret, strlen(secret), NULL, headers[i], p);
        assert_int_equal(verify(t), PX_JWT_BAD_HEADER);
        free(t);
    }
    /* "header.payload." with a none header and nothing after the dot */
    char *h = b64u("{\"alg\":\"none\"}", 14), *pp = b64u(p, strlen(p));
    char tok[4096];
    snprintf(tok, sizeof(tok), "%s.%s.", h, pp);
    assert_int_not_equal(verify(tok), PX_JWT_OK);
    free(h);
    free(pp);
    free(p);
}

static void test_alg_confusion(void **state)
{
    (void)state;
    char *p = payload_with(NULL);
    /* The RSA public key as PEM and as DER, used as an HMAC secret. */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, F.rsa), 1);
    char *pem = NULL;
    long pemlen = BIO_get_mem_data(bio, &pem);
    unsigned char *der = NULL;
    int derlen = i2d_PUBKEY(F.rsa, &der);
    assert_true(pemlen > 0 && derlen > 0);

    const char *hdrs[] = {"{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", "{\"alg\":\"HS256\"}"};
    for (size_t i = 0; i < PX_COUNTOF(hdrs); i++) {
        char *t1 = sign_token(SIGN_HMAC, pem, (size_t)pemlen, NULL, hdrs[i], p);
        char *t2 = sign_token(SIGN_HMAC, der, (size_t)derlen, NULL, hdrs[i], p);
        assert_int_not_equal(verify(t1), PX_JWT_OK);
        assert_int_not_equal(verify(t2), PX_JWT_OK);
        free(t1);
        free(t2);
    }
    /* With a kid, the RSA key is selected and its algorithm decides. */
    char *t = sign_token(SIGN_HMAC, pem, (size_t)pemlen, NULL, hdrs[0], p);
    assert_int_equal(verify(t), PX_JWT_ALG_MISMATCH);
    free(t);

    /* A verifier holding only the RSA key (no kid): HS256 is still refused. */
    char *jwk = rsa_jwk(F.rsa, "x");
    char *kidless = strstr(jwk, "\"kid\":\"x\",");
    memmove(kidless, kidless + 10, strlen(kidless + 10) + 1);
    char jwks[4096];
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", jwk);
    char err[256];
    struct px_jwt_verifier *v = new_verifier(jwks, NULL, NULL, 60, false, PX_OK, err, sizeof(err));
    t = sign_token(SIGN_HMAC, pem, (size_t)pemlen, NULL, hdrs[1],
                   "{\"sub\":\"s\",\"exp\":1800000000}");
    assert_int_equal(verify_with(v, t, NOW, NULL), PX_JWT_ALG_MISMATCH);
    free(t);
    t = sign_token(SIGN_RSA, NULL, 0, F.rsa, "{\"alg\":\"RS256\"}",
                   "{\"sub\":\"s\",\"exp\":1800000000}");
    assert_int_equal(verify_with(v, t, NOW, NULL), PX_JWT_OK);
    free(t);
    /* ES256 header on the RSA key, and RS256 header on the EC key */
    t = sign_token(SIGN_RSA, NULL, 0, F.rsa, "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", p);
    assert_int_equal(verify(t), PX_JWT_ALG_MISMATCH);
    free(t);
    t = sign_token(SIGN_EC, NULL, 0, F.ec, "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", p);
    assert_int_equal(verify(t), PX_JWT_ALG_MISMATCH);
    free(t);
    /* RS256 without kid when kid-less keys are the secret only */
    t = sign_token(SIGN_RSA, NULL, 0, F.rsa, "{\"alg\":\"RS256\"}", p);
    assert_int_equal(verify(t), PX_JWT_ALG_MISMATCH);
    free(t);
    px_jwt_verifier_free(v);
    free(jwk);
    OPENSSL_free(der);
    BIO_free(bio);
    free(p);
}

static void test_unknown_kid_and_header(void **state)
{
    (void)state;
    char *p = payload_with(NULL);
    static const struct {
        const char *header;
        enum px_jwt_why want;
    } cases[] = {
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-2\"}", PX_JWT_UNKNOWN_KEY},
        {"{\"alg\":\"RS256\",\"kid\":\"\"}", PX_JWT_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":7}", PX_JWT_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[\"exp\"]}", PX_JWT_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[]}", PX_JWT_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"b64\":false,\"crit\":[\"b64\"]}",
         PX_JWT_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"JWE\"}", PX_JWT_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":1}", PX_JWT_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"jwt\"}", PX_JWT_OK},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"at+jwt\"}", PX_JWT_OK},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", PX_JWT_OK},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        char *t = sign_token(SIGN_RSA, NULL, 0, F.rsa, cases[i].header, p);
        enum px_jwt_why got = verify(t);
        if (got != cases[i].want)
            fail_msg("%s: got %d want %d", cases[i].header, got, cases[i].want);
        free(t);
    }
    free(p);
}

static void test_malformed(void **state)
{
    (void)state;
    char *p = payload_with(NULL);
    char *good = hs_token(p);
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    char buf[8192];
    assert_int_equal(verify(good), PX_JWT_OK);

    const char *bad[] = {"",
                         ".",
                         "..",
                         "...",
                         "a.b",
                         "a.b.c.d",
                         "a..c",
                         ".b.c",
                         "a.b.",
                         "eyJ.eyJ.eyJ",
                         "not a token at all"};
    for (size_t i = 0; i < PX_COUNTOF(bad); i++)
        assert_int_equal(verify(bad[i]), PX_JWT_MALFORMED);

    /* padding, the standard alphabet, whitespace, a fourth part */
    snprintf(buf, sizeof(buf), "%s=", good);
    assert_int_equal(verify(buf), PX_JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)(d1 - good), good, d1);
    assert_int_equal(verify(buf), PX_JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", good);
    buf[d2 - good + 3] = '+';
    assert_int_equal(verify(buf), PX_JWT_MALFORMED);
    snprintf(buf, sizeof(buf), " %s", good);
    assert_int_equal(verify(buf), PX_JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.e30", good);
    assert_int_equal(verify(buf), PX_JWT_MALFORMED);
    /* a NUL inside */
    snprintf(buf, sizeof(buf), "%s", good);
    buf[d2 - good + 2] = '\0';
    enum px_jwt_why why;
    struct px_jwt_claims c;
    assert_int_equal(px_jwt_verify(F.v, buf, strlen(good), NOW, F.a, &c, &why), PX_ERR_DENIED);

    /* Non-canonical base64url: the HMAC signature is 32 bytes = 43 chars with
     * 2 unused bits; setting them changes the spelling, not the bytes. */
    snprintf(buf, sizeof(buf), "%s", good);
    char *last = buf + strlen(buf) - 1;
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int idx = (int)(strchr(alpha, *last) - alpha);
    *last = alpha[idx | 1];
    if (*last != good[strlen(good) - 1])
        assert_int_equal(verify(buf), PX_JWT_MALFORMED);

    /* header or payload that is not a JSON object, or has duplicate keys */
    static const char *const headers[] = {"[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\"",
                                          "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "null"};
    for (size_t i = 0; i < PX_COUNTOF(headers); i++) {
        char *t = sign_token(SIGN_HMAC, secret, strlen(secret), NULL, headers[i], p);
        assert_int_equal(verify(t), PX_JWT_MALFORMED);
        free(t);
    }
    static const char *const payloads[] = {"[1]",
                                           "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1800000000}",
                                           "{\"sub\":\"a\"", "", "1800000000"};
    for (size_t i = 0; i < PX_COUNTOF(payloads); i++) {
        char *t =
            sign_token(SIGN_HMAC, secret, strlen(secret), NULL, "{\"alg\":\"HS256\"}", payloads[i]);
        assert_int_equal(verify(t), PX_JWT_MALFORMED);
        free(t);
    }
    free(good);
    free(p);
}

static void test_claims_types(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        enum px_jwt_why want;
    } cases[] = {
        {"{\"exp\":1800000000}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"\",\"exp\":1800000000}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":7,\"exp\":1800000000}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\\nb\",\"exp\":1800000000}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\"}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":\"1800000000\"}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":\"x\"}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"scope\":[\"price:read\"]}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"roles\":\"price:read\"}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"roles\":[\"price:read\",1]}", PX_JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"roles\":[]}", PX_JWT_OK},
        {"{\"sub\":\"a\",\"exp\":1800000000,\"scope\":\"\"}", PX_JWT_OK},
        {"{\"sub\":\"\\u00e9l\\u00e8ve\",\"exp\":1800000000}", PX_JWT_OK},
    };
    char err[256];
    struct px_jwt_verifier *v = new_verifier(NULL, NULL, NULL, 0, true, PX_OK, err, sizeof(err));
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        char *t = hs_token(cases[i].payload);
        enum px_jwt_why got = verify_with(v, t, NOW, NULL);
        if (got != cases[i].want)
            fail_msg("%s: got %d want %d", cases[i].payload, got, cases[i].want);
        free(t);
    }
    /* sub of 128 bytes passes, 129 does not */
    char p[512], sub[130];
    memset(sub, 'x', sizeof(sub));
    sub[128] = '\0';
    snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":1800000000}", sub);
    char *t = hs_token(p);
    assert_int_equal(verify_with(v, t, NOW, NULL), PX_JWT_OK);
    free(t);
    sub[128] = 'x';
    sub[129] = '\0';
    snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":1800000000}", sub);
    t = hs_token(p);
    assert_int_equal(verify_with(v, t, NOW, NULL), PX_JWT_BAD_CLAIMS);
    free(t);
    /* scope and roles together, blanks collapsed, capped */
    struct px_jwt_claims c;
    t = hs_token("{\"sub\":\"a\",\"exp\":1800000000,\"scope\":\"  price:read   audit:read \","
                 "\"roles\":[\"admin\",\"\"]}");
    assert_int_equal(verify_with(v, t, NOW, &c), PX_JWT_OK);
    assert_int_equal(c.nscopes, 3);
    assert_string_equal(c.scopes[0], "price:read");
    assert_string_equal(c.scopes[1], "audit:read");
    assert_string_equal(c.scopes[2], "admin");
    free(t);
    char big[2048] = "{\"sub\":\"a\",\"exp\":1800000000,\"scope\":\"";
    for (int i = 0; i < 100; i++) {
        char one[16];
        snprintf(one, sizeof(one), "s%d ", i);
        strncat(big, one, sizeof(big) - strlen(big) - 1);
    }
    strncat(big, "\"}", sizeof(big) - strlen(big) - 1);
    t = hs_token(big);
    assert_int_equal(verify_with(v, t, NOW, &c), PX_JWT_OK);
    assert_int_equal(c.nscopes, PX_JWT_MAX_SCOPES);
    assert_null(c.scopes[PX_JWT_MAX_SCOPES]);
    free(t);
    px_jwt_verifier_free(v);
}

static void test_oversized(void **state)
{
    (void)state;
    /* A correctly signed token just over the cap is refused for its size alone. */
    char *pad = malloc(PX_JWT_MAX_TOKEN);
    memset(pad, 'a', PX_JWT_MAX_TOKEN - 1);
    pad[PX_JWT_MAX_TOKEN - 1] = '\0';
    size_t n = PX_JWT_MAX_TOKEN + 256;
    char *p = malloc(n);
    snprintf(p, n, "{\"sub\":\"a\",\"exp\":1800000000,\"pad\":\"%s\"}", pad);
    char *t = hs_token(p);
    assert_true(strlen(t) > PX_JWT_MAX_TOKEN);
    assert_int_equal(verify(t), PX_JWT_TOO_LARGE);
    free(t);
    /* and one under the cap is fine */
    pad[PX_JWT_MAX_TOKEN / 2] = '\0';
    snprintf(p, n,
             "{\"sub\":\"a\",\"exp\":1800000000,\"iss\":\"https://issuer.test\",\"aud\":"
             "\"pricing\",\"pad\":\"%s\"}",
             pad);
    t = hs_token(p);
    assert_true(strlen(t) < PX_JWT_MAX_TOKEN);
    assert_int_equal(verify(t), PX_JWT_OK);
    free(t);
    free(p);
    free(pad);
}

static void test_jwks_loading(void **state)
{
    (void)state;
    char err[256];
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(weak);
    char *w = rsa_jwk(weak, "weak"), *r = rsa_jwk(F.rsa, "k"), *e = ec_jwk(F.ec, "k");
    char jwks[8192];

    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", w);
    new_verifier(jwks, NULL, NULL, 60, false, PX_ERR_CONFIG, err, sizeof(err));
    assert_non_null(strstr(err, "2048"));
    assert_non_null(strstr(err, "weak"));

    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s,%s]}", r, e);
    new_verifier(jwks, NULL, NULL, 60, false, PX_ERR_CONFIG, err, sizeof(err));
    assert_non_null(strstr(err, "two keys with kid"));

    /* a point off the curve: y of another key */
    char *e2 = ec_jwk(F.ec_other, "k2");
    char *y1 = strstr(e, "\"y\":"), *y2 = strstr(e2, "\"y\":");
    memcpy(y1, y2, strlen(y2));
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", e);
    new_verifier(jwks, NULL, NULL, 60, false, PX_ERR_CONFIG, err, sizeof(err));
    assert_non_null(strstr(err, "P-256"));

    /* keys that are not ours are skipped; none left is an error */
    const char *skipped =
        "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
        "{\"kty\":\"RSA\",\"alg\":\"RS512\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
        "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
        "{\"kty\":\"RSA\",\"key_ops\":[\"encrypt\"],\"n\":\"AQAB\",\"e\":\"AQAB\"}";
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", skipped);
    new_verifier(jwks, NULL, NULL, 60, false, PX_ERR_CONFIG, err, sizeof(err));
    assert_non_null(strstr(err, "no usable key"));
    /* the same next to a usable key: one key */
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s,%s]}", r, skipped);
    struct px_jwt_verifier *v = new_verifier(jwks, NULL, NULL, 60, false, PX_OK, err, sizeof(err));
    assert_int_equal(px_jwt_verifier_nkeys(v), 1);
    px_jwt_verifier_free(v);

    const char *broken[] = {
        "",
        "[]",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":[1]}",
        "{\"keys\":[{\"n\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB=\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
    };
    for (size_t i = 0; i < PX_COUNTOF(broken); i++) {
        new_verifier(broken[i], NULL, NULL, 60, false, PX_ERR_CONFIG, err, sizeof(err));
        assert_true(err[0] != '\0');
    }
    /* no key at all, and a short secret */
    new_verifier(NULL, NULL, NULL, 60, false, PX_ERR_CONFIG, err, sizeof(err));
    struct px_jwt_settings s = {.hs256_secret = (const unsigned char *)"short",
                                .hs256_secret_len = 5};
    v = NULL;
    assert_int_equal(px_jwt_verifier_new(&s, &v, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(v);
    free(w);
    free(r);
    free(e);
    free(e2);
    EVP_PKEY_free(weak);
}

static void test_secret_file(void **state)
{
    (void)state;
    char path[128], err[256];
    unsigned char *s = NULL;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/secret", F.dir);
    write_file(path, "0123456789abcdef0123456789abcdef\n");
    assert_int_equal(px_jwt_read_secret(path, &s, &n, err, sizeof(err)), PX_OK);
    assert_int_equal(n, 32);
    assert_memory_equal(s, "0123456789abcdef0123456789abcdef", 32);
    px_jwt_secret_free(s, n);
    write_file(path, "0123456789abcdef0123456789abcde\r\n");
    assert_int_equal(px_jwt_read_secret(path, &s, &n, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(s);
    assert_non_null(strstr(err, "32"));
    unlink(path);
    assert_int_equal(px_jwt_read_secret(path, &s, &n, err, sizeof(err)), PX_ERR_IO);
    assert_non_null(strstr(err, path));
}

static void test_b64url(void **state)
{
    (void)state;
    unsigned char in[64], out[64];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        char *e = b64u(in, n);
        size_t m = 0;
        assert_null(strchr(e, '='));
        assert_int_equal(px_jwt_b64url_decode(e, strlen(e), out, &m), PX_OK);
        assert_int_equal(m, n);
        assert_memory_equal(in, out, n);
        free(e);
    }
    size_t m;
    assert_int_equal(px_jwt_b64url_decode("A", 1, out, &m), PX_ERR_INVALID);
    assert_int_equal(px_jwt_b64url_decode("AB", 2, out, &m), PX_ERR_INVALID); /* bits set */
    assert_int_equal(px_jwt_b64url_decode("AA", 2, out, &m), PX_OK);
    assert_int_equal(px_jwt_b64url_decode("A+", 2, out, &m), PX_ERR_INVALID);
    assert_int_equal(px_jwt_b64url_decode("AA==", 4, out, &m), PX_ERR_INVALID);
    assert_int_equal(px_jwt_b64url_decode("-_-_", 4, out, &m), PX_OK);
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    const char *p = "{\"sub\":\"dev\",\"scope\":\"price:read\",\"iss\":\"https://issuer.test\","
                    "\"aud\":\"pricing\",\"exp\":1700000100}";
    struct px_buf b;
    px_buf_init(&b, PX_JWT_MAX_TOKEN);
    assert_int_equal(
        px_jwt_sign_hs256((const unsigned char *)secret, strlen(secret), p, strlen(p), &b), PX_OK);
    struct px_jwt_claims c;
    assert_int_equal(verify_with(F.v, b.data, NOW, &c), PX_JWT_OK);
    assert_string_equal(c.subject, "dev");
    assert_string_equal(c.scopes[0], "price:read");
    assert_null(c.scopes[1]);
    /* the same token as built here by hand */
    char *t = hs_token(p);
    assert_string_equal(t, b.data);
    free(t);
    px_buf_free(&b);
}

struct worker {
    const char *toks[3];
    int ok;
};

static void *verify_many(void *arg)
{
    struct worker *w = arg;
    struct px_arena *a = px_arena_new(1 << 16);
    for (int i = 0; a && i < 150; i++) {
        px_arena_reset(a);
        const char *t = w->toks[i % 3];
        struct px_jwt_claims c;
        enum px_jwt_why why;
        if (px_jwt_verify(F.v, t, strlen(t), NOW, a, &c, &why) == PX_OK &&
            strcmp(c.subject, "svc-reader") == 0)
            w->ok++;
    }
    px_arena_free(a);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char *p = payload_with(NULL);
    char *toks[3] = {hs_token(p), rs_token(F.rsa, p), es_token(F.ec, p)};
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){{toks[0], toks[1], toks[2]}, 0};
        assert_int_equal(pthread_create(&th[i], NULL, verify_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].ok, 150);
    }
    for (int i = 0; i < 3; i++)
        free(toks[i]);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_tokens),
        cmocka_unit_test(test_wrong_signature_and_key),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_issuer_audience),
        cmocka_unit_test(test_alg_none_and_unknown),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_unknown_kid_and_header),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_claims_types),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_jwks_loading),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
