/* jwt.c: JWS compact tokens verified with OpenSSL 3 directly (see jwt.h).
 *
 * Order of the checks: size and shape, header (alg, crit, typ, kid), key
 * selection, signature, and only then the payload's JSON and claims, so that
 * nothing an unauthenticated party wrote is interpreted beyond the header. */
#include "jwt.h"
#include "b64.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_KEYS     64 /* JWKS keys kept, plus the HS256 secret */
#define MAX_KID      256
#define MIN_RSA_BITS 2048
#define MAX_RSA_BITS 8192
#define P256_COORD   32

struct key {
    char *kid; /* NULL: selected only by a token without kid */
    enum px_jwt_alg alg;
    EVP_PKEY *pkey;        /* RS256, ES256 */
    unsigned char *secret; /* HS256 */
    size_t secret_len;
};

struct px_jwt_verifier {
    struct key keys[MAX_KEYS + 1];
    size_t nkeys;
    char *issuer;   /* NULL: not checked */
    char *audience; /* NULL: tokens carrying aud are refused */
    long skew;
};

static const char *alg_name(enum px_jwt_alg alg)
{
    switch (alg) {
    case PX_JWT_HS256:
        return "HS256";
    case PX_JWT_RS256:
        return "RS256";
    case PX_JWT_ES256:
        return "ES256";
    }
    return "?";
}

/* ---------------------------------------------------------------------------
 * base64url (RFC 4648 5) without padding, strictly: the alphabet only, no
 * '=', and zero unused bits, so that every token has exactly one spelling. */

/* Decodes s[0..n) into out (room for n * 3 / 4 bytes). */
PX_STATIC px_rc px_jwt_b64url_decode(const char *s, size_t n, unsigned char *out, size_t *outlen);
PX_STATIC px_rc px_jwt_b64url_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
    px_rc rc = px_b64_decode(s, n, PX_B64_URL, 0, out, px_b64_decoded_max(n), outlen);
    return rc ? PX_ERR_INVALID : PX_OK;
}

px_rc px_jwt_b64url_encode(const void *data, size_t n, struct px_buf *out)
{
    return px_b64_append(out, data, n, PX_B64_URL, 0);
}

/* Decodes a base64url JSON member of a JWK into a heap buffer. */
static px_rc b64u_member(json_t *obj, const char *name, size_t maxlen, unsigned char **out,
                         size_t *outlen)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!json_is_string(v))
        return PX_ERR_INVALID;
    size_t n = json_string_length(v);
    if (n == 0 || n > (maxlen + 2) / 3 * 4)
        return PX_ERR_INVALID;
    unsigned char *d = malloc(n);
    if (!d)
        return PX_ERR_NOMEM;
    if (px_jwt_b64url_decode(json_string_value(v), n, d, outlen) != PX_OK || *outlen == 0 ||
        *outlen > maxlen) {
        free(d);
        return PX_ERR_INVALID;
    }
    *out = d;
    return PX_OK;
}

/* ---------------------------------------------------------------------------
 * Keys. */

static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return true;
    }
    return false;
}

/* A JSON string of 1..max bytes without NUL or control characters. */
static const char *clean_string(json_t *v, size_t max)
{
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > max || strlen(s) != n || has_control(s, n))
        return NULL;
    return s;
}

/* Whether the key may verify: `use`, when present, is "sig", and
 * `key_ops`, when present, lists "verify". */
static bool for_signatures(json_t *jwk)
{
    json_t *use = json_object_get(jwk, "use");
    json_t *ops = json_object_get(jwk, "key_ops");
    if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
        return false;
    if (ops) {
        size_t i;
        json_t *op;
        if (!json_is_array(ops))
            return false;
        json_array_foreach(ops, i, op)
        {
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
                return true;
        }
        return false;
    }
    return true;
}

/* A public key from OSSL_PARAMs (RSA n/e or EC group/point), then checked. */
static px_rc pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
    px_rc rc = PX_ERR_INVALID;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY_CTX *check = NULL;
    EVP_PKEY *pkey = NULL;
    *out = NULL;
    if (!params || !ctx) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!check || EVP_PKEY_public_check(check) != 1)
        goto out;
    *out = pkey;
    pkey = NULL;
    rc = PX_OK;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return rc;
}

static px_rc rsa_key(json_t *jwk, EVP_PKEY **out, const char **problem)
{
    px_rc rc = PX_ERR_INVALID;
    unsigned char *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    *out = NULL;
    *problem = "n and e must be base64url big-endian integers";
    rc = b64u_member(jwk, "n", MAX_RSA_BITS / 8 + 1, &n, &nlen);
    if (!rc)
        rc = b64u_member(jwk, "e", 8, &e, &elen);
    if (rc)
        goto out;
    rc = PX_ERR_NOMEM;
    bn = BN_bin2bn(n, (int)nlen, NULL);
    be = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        goto out;
    rc = pkey_from_params("RSA", bld, out);
    if (rc == PX_ERR_INVALID)
        *problem = "not a valid RSA public key";
    if (rc)
        goto out;
    int bits = EVP_PKEY_get_bits(*out);
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
        *problem = "RSA modulus must have 2048 to 8192 bits";
        EVP_PKEY_free(*out);
        *out = NULL;
        rc = PX_ERR_INVALID;
    }
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return rc;
}

static px_rc ec_key(json_t *jwk, EVP_PKEY **out, const char **problem)
{
    px_rc rc;
    unsigned char *x = NULL, *y = NULL;
    size_t xlen = 0, ylen = 0;
    unsigned char point[1 + 2 * P256_COORD];
    OSSL_PARAM_BLD *bld = NULL;
    *out = NULL;
    *problem = "x and y must be 32-byte base64url coordinates";
    rc = b64u_member(jwk, "x", P256_COORD, &x, &xlen);
    if (!rc)
        rc = b64u_member(jwk, "y", P256_COORD, &y, &ylen);
    if (!rc && (xlen != P256_COORD || ylen != P256_COORD))
        rc = PX_ERR_INVALID;
    if (rc)
        goto out;
    point[0] = 0x04; /* uncompressed SEC 1 point */
    memcpy(point + 1, x, P256_COORD);
    memcpy(point + 1 + P256_COORD, y, P256_COORD);
    rc = PX_ERR_NOMEM;
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
        goto out;
    rc = pkey_from_params("EC", bld, out);
    if (rc == PX_ERR_INVALID)
        *problem = "the point is not on P-256";
out:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return rc;
}

static void key_clear(struct key *k)
{
    free(k->kid);
    EVP_PKEY_free(k->pkey);
    if (k->secret)
        OPENSSL_clear_free(k->secret, k->secret_len);
    memset(k, 0, sizeof(*k));
}

/* Adds k unless its kid repeats, or, without kid, another kid-less key has
 * its algorithm (the token could not say which one it means). */
static px_rc add_key(struct px_jwt_verifier *v, struct key *k, char *err, size_t errlen)
{
    for (size_t i = 0; i < v->nkeys; i++) {
        const struct key *o = &v->keys[i];
        if (k->kid && o->kid && strcmp(k->kid, o->kid) == 0) {
            snprintf(err, errlen, "two keys with kid \"%.64s\"", k->kid);
            return PX_ERR_CONFIG;
        }
        if (!k->kid && !o->kid && k->alg == o->alg) {
            snprintf(err, errlen, "two %s keys without kid: give each a kid", alg_name(k->alg));
            return PX_ERR_CONFIG;
        }
    }
    if (v->nkeys >= PX_COUNTOF(v->keys)) {
        snprintf(err, errlen, "more than %d keys", MAX_KEYS);
        return PX_ERR_CONFIG;
    }
    v->keys[v->nkeys++] = *k;
    memset(k, 0, sizeof(*k));
    return PX_OK;
}

/* One JWK: added, skipped (not for us), or an error naming it. */
static px_rc add_jwk(struct px_jwt_verifier *v, json_t *jwk, size_t idx, char *err, size_t errlen)
{
    struct key k = {.kid = NULL};
    const char *problem = "unusable";
    char name[96];
    px_rc rc = PX_OK;
    if (!json_is_object(jwk)) {
        snprintf(err, errlen, "keys[%zu] is not an object", idx);
        return PX_ERR_CONFIG;
    }
    json_t *jkid = json_object_get(jwk, "kid");
    const char *kid = clean_string(jkid, MAX_KID);
    if (jkid && !kid) {
        snprintf(err, errlen, "keys[%zu]: kid must be a string of 1-%d printable bytes", idx,
                 MAX_KID);
        return PX_ERR_CONFIG;
    }
    if (kid)
        snprintf(name, sizeof(name), "key \"%.64s\"", kid);
    else
        snprintf(name, sizeof(name), "keys[%zu]", idx);

    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    if (!kty) {
        snprintf(err, errlen, "%s: kty missing", name);
        return PX_ERR_CONFIG;
    }
    if (json_object_get(jwk, "alg") && !alg) {
        snprintf(err, errlen, "%s: alg must be a string", name);
        return PX_ERR_CONFIG;
    }
    if (!for_signatures(jwk))
        return PX_OK;
    if (strcmp(kty, "RSA") == 0 && (!alg || strcmp(alg, "RS256") == 0)) {
        k.alg = PX_JWT_RS256;
        rc = rsa_key(jwk, &k.pkey, &problem);
    } else if (strcmp(kty, "EC") == 0 && (!alg || strcmp(alg, "ES256") == 0)) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        if (!crv || strcmp(crv, "P-256") != 0)
            return PX_OK; /* another curve: not ours */
        k.alg = PX_JWT_ES256;
        rc = ec_key(jwk, &k.pkey, &problem);
    } else {
        return PX_OK; /* oct, OKP, RS512, ...: not ours */
    }
    if (rc == PX_ERR_NOMEM) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    if (rc) {
        snprintf(err, errlen, "%s: %s", name, problem);
        return PX_ERR_CONFIG;
    }
    if (kid && !(k.kid = strdup(kid))) {
        key_clear(&k);
        snprintf(err, errlen, "out of memory");
        return PX_ERR_NOMEM;
    }
    rc = add_key(v, &k, err, errlen);
    key_clear(&k);
    return rc;
}

static px_rc load_jwks(struct px_jwt_verifier *v, const char *text, size_t len, char *err,
                       size_t errlen)
{
    json_error_t jerr;
    px_rc rc = PX_OK;
    if (len > PX_JWT_MAX_JWKS) {
        snprintf(err, errlen, "JWKS larger than %d bytes", PX_JWT_MAX_JWKS);
        return PX_ERR_CONFIG;
    }
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "not JSON (line %d: %.80s)", jerr.line, jerr.text);
        return PX_ERR_CONFIG;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        snprintf(err, errlen, "not a JWKS: want {\"keys\":[...]}");
        rc = PX_ERR_CONFIG;
        goto out;
    }
    if (json_array_size(keys) > MAX_KEYS) {
        snprintf(err, errlen, "more than %d keys", MAX_KEYS);
        rc = PX_ERR_CONFIG;
        goto out;
    }
    size_t i;
    json_t *jwk;
    json_array_foreach(keys, i, jwk)
    {
        rc = add_jwk(v, jwk, i, err, errlen);
        if (rc)
            goto out;
    }
out:
    json_decref(root);
    return rc;
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

px_rc px_jwt_verifier_new(const struct px_jwt_settings *s, struct px_jwt_verifier **out, char *err,
                          size_t errlen)
{
    px_rc rc = PX_OK;
    *out = NULL;
    struct px_jwt_verifier *v = calloc(1, sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return PX_ERR_NOMEM;
    }
    v->skew = s->clock_skew_s < 0 ? 0 : s->clock_skew_s;
    v->issuer = dup_or_null(s->issuer);
    v->audience = dup_or_null(s->audience);
    if ((s->issuer && s->issuer[0] && !v->issuer) ||
        (s->audience && s->audience[0] && !v->audience)) {
        snprintf(err, errlen, "out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (s->hs256_secret) {
        if (s->hs256_secret_len < PX_JWT_MIN_SECRET || s->hs256_secret_len > PX_JWT_MAX_SECRET) {
            snprintf(err, errlen, "the HS256 secret must hold %d to %d bytes", PX_JWT_MIN_SECRET,
                     PX_JWT_MAX_SECRET);
            rc = PX_ERR_CONFIG;
            goto out;
        }
        struct key k = {.alg = PX_JWT_HS256, .secret_len = s->hs256_secret_len};
        k.secret = OPENSSL_malloc(s->hs256_secret_len);
        if (!k.secret) {
            snprintf(err, errlen, "out of memory");
            rc = PX_ERR_NOMEM;
            goto out;
        }
        memcpy(k.secret, s->hs256_secret, s->hs256_secret_len);
        rc = add_key(v, &k, err, errlen);
        key_clear(&k);
        if (rc)
            goto out;
    }
    if (s->jwks) {
        size_t before = v->nkeys;
        rc = load_jwks(v, s->jwks, s->jwks_len, err, errlen);
        if (rc)
            goto out;
        if (v->nkeys == before) {
            snprintf(err, errlen, "no usable key (RSA for RS256, or EC P-256 for ES256, use sig)");
            rc = PX_ERR_CONFIG;
            goto out;
        }
    }
    if (v->nkeys == 0) {
        snprintf(err, errlen, "no key: give an HS256 secret or a JWKS");
        rc = PX_ERR_CONFIG;
        goto out;
    }
    *out = v;
    v = NULL;
out:
    px_jwt_verifier_free(v);
    return rc;
}

void px_jwt_verifier_free(struct px_jwt_verifier *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->nkeys; i++)
        key_clear(&v->keys[i]);
    free(v->issuer);
    free(v->audience);
    free(v);
}

size_t px_jwt_verifier_nkeys(const struct px_jwt_verifier *v)
{
    return v ? v->nkeys : 0;
}

/* ---------------------------------------------------------------------------
 * Verifying. */

const char *px_jwt_why_text(enum px_jwt_why why)
{
    switch (why) {
    case PX_JWT_OK:
        return "valid";
    case PX_JWT_MALFORMED:
        return "malformed token";
    case PX_JWT_TOO_LARGE:
        return "token too large";
    case PX_JWT_BAD_HEADER:
        return "unacceptable header (alg, crit, typ or kid)";
    case PX_JWT_UNKNOWN_KEY:
        return "no key for this token";
    case PX_JWT_ALG_MISMATCH:
        return "header alg differs from the key's algorithm";
    case PX_JWT_BAD_SIGNATURE:
        return "bad signature";
    case PX_JWT_EXPIRED:
        return "token expired";
    case PX_JWT_NOT_YET_VALID:
        return "token not yet valid";
    case PX_JWT_BAD_ISSUER:
        return "wrong issuer";
    case PX_JWT_BAD_AUDIENCE:
        return "wrong audience";
    case PX_JWT_BAD_CLAIMS:
        return "missing or mistyped claims";
    }
    return "refused";
}

/* Header: alg (required, one we know), no crit, typ JWT when present, kid a
 * clean string when present. */
static enum px_jwt_why check_header(json_t *h, enum px_jwt_alg *alg, const char **kid)
{
    const char *a = json_string_value(json_object_get(h, "alg"));
    *kid = NULL;
    if (!a)
        return PX_JWT_BAD_HEADER;
    if (strcmp(a, "HS256") == 0)
        *alg = PX_JWT_HS256;
    else if (strcmp(a, "RS256") == 0)
        *alg = PX_JWT_RS256;
    else if (strcmp(a, "ES256") == 0)
        *alg = PX_JWT_ES256;
    else
        return PX_JWT_BAD_HEADER; /* none, HS512, PS256, ... */
    /* We implement no extension, so any critical one must be refused (RFC 7515 4.1.11). */
    if (json_object_get(h, "crit"))
        return PX_JWT_BAD_HEADER;
    json_t *typ = json_object_get(h, "typ");
    if (typ) {
        const char *t = json_string_value(typ);
        if (!t || (strcasecmp(t, "JWT") != 0 && strcasecmp(t, "at+jwt") != 0 &&
                   strcasecmp(t, "application/at+jwt") != 0))
            return PX_JWT_BAD_HEADER;
    }
    json_t *k = json_object_get(h, "kid");
    if (k && !(*kid = clean_string(k, MAX_KID)))
        return PX_JWT_BAD_HEADER;
    return PX_JWT_OK;
}

/* The key a token names: by kid, or the kid-less key (of the header's alg
 * when there are several, one per algorithm). The caller still compares the
 * header's alg with the key's. */
static const struct key *select_key(const struct px_jwt_verifier *v, const char *kid,
                                    enum px_jwt_alg alg)
{
    const struct key *only = NULL;
    size_t kidless = 0;
    for (size_t i = 0; i < v->nkeys; i++) {
        const struct key *k = &v->keys[i];
        if (kid) {
            if (k->kid && strcmp(k->kid, kid) == 0)
                return k;
            continue;
        }
        if (k->kid)
            continue;
        kidless++;
        if (!only || k->alg == alg)
            only = k;
    }
    if (kid || !only)
        return NULL;
    return kidless == 1 || only->alg == alg ? only : NULL;
}

static bool verify_hs256(const struct key *k, const char *input, size_t ilen,
                         const unsigned char *sig, size_t slen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (slen != 32)
        return false;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input, ilen, mac,
              &maclen) ||
        maclen != 32)
        return false;
    bool ok = CRYPTO_memcmp(mac, sig, 32) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

/* JWS carries an ES256 signature as r || s, 32 bytes each (RFC 7518 3.4);
 * OpenSSL verifies the DER SEQUENCE of two INTEGERs. */
static px_rc es256_der(const unsigned char *sig, size_t slen, unsigned char **der, int *derlen)
{
    px_rc rc = PX_ERR_INVALID;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    *der = NULL;
    if (slen != 2 * P256_COORD)
        return PX_ERR_INVALID;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, P256_COORD, NULL);
    s = BN_bin2bn(sig + P256_COORD, P256_COORD, NULL);
    if (!es || !r || !s) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (!ECDSA_SIG_set0(es, r, s))
        goto out;
    r = s = NULL; /* owned by es now */
    *derlen = i2d_ECDSA_SIG(es, der);
    rc = *derlen > 0 ? PX_OK : PX_ERR_NOMEM;
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return rc;
}

static bool verify_pkey(const struct key *k, const char *input, size_t ilen,
                        const unsigned char *sig, size_t slen)
{
    unsigned char *der = NULL;
    int derlen = 0;
    bool ok = false;
    EVP_MD_CTX *ctx = NULL;
    if (k->alg == PX_JWT_RS256) {
        if (slen != (size_t)EVP_PKEY_get_size(k->pkey))
            return false;
    } else {
        if (es256_der(sig, slen, &der, &derlen))
            return false;
        sig = der;
        slen = (size_t)derlen;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, k->pkey, NULL) == 1)
        ok = EVP_DigestVerify(ctx, sig, slen, (const unsigned char *)input, ilen) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

static bool verify_signature(const struct key *k, const char *input, size_t ilen,
                             const unsigned char *sig, size_t slen)
{
    return k->alg == PX_JWT_HS256 ? verify_hs256(k, input, ilen, sig, slen)
                                  : verify_pkey(k, input, ilen, sig, slen);
}

/* Optional NumericDate: absent is fine, any other type is not. */
static bool opt_number(json_t *obj, const char *name, bool *present, double *value)
{
    json_t *v = json_object_get(obj, name);
    *present = v != NULL;
    if (!v)
        return true;
    if (!json_is_number(v))
        return false;
    *value = json_number_value(v);
    return true;
}

static bool audience_matches(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *e;
    json_array_foreach(aud, i, e)
    {
        if (json_is_string(e) && strcmp(json_string_value(e), want) == 0)
            return true;
    }
    return false;
}

static bool valid_audience_type(json_t *aud)
{
    if (json_is_string(aud))
        return true;
    if (!json_is_array(aud) || json_array_size(aud) == 0)
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(aud, i, e)
    {
        if (!json_is_string(e))
            return false;
    }
    return true;
}

static px_rc add_scope(struct px_arena *a, struct px_jwt_claims *c, const char *s, size_t n)
{
    if (n == 0 || c->nscopes == PX_JWT_MAX_SCOPES || has_control(s, n) || memchr(s, '\0', n))
        return PX_OK;
    char *copy = px_arena_strndup(a, s, n);
    if (!copy)
        return PX_ERR_NOMEM;
    c->scopes[c->nscopes++] = copy;
    return PX_OK;
}

/* Permissions: the space-separated `scope` string, then the `roles` array. */
static enum px_jwt_why read_scopes(json_t *p, struct px_arena *a, struct px_jwt_claims *c,
                                   px_rc *rc)
{
    json_t *scope = json_object_get(p, "scope");
    json_t *roles = json_object_get(p, "roles");
    *rc = PX_OK;
    if ((scope && !json_is_string(scope)) || (roles && !json_is_array(roles)))
        return PX_JWT_BAD_CLAIMS;
    c->scopes = px_arena_calloc(a, (PX_JWT_MAX_SCOPES + 1) * sizeof(*c->scopes));
    if (!c->scopes) {
        *rc = PX_ERR_NOMEM;
        return PX_JWT_OK;
    }
    if (scope) {
        const char *s = json_string_value(scope);
        size_t n = json_string_length(scope);
        for (size_t i = 0; i < n && !*rc;) {
            while (i < n && s[i] == ' ')
                i++;
            size_t start = i;
            while (i < n && s[i] != ' ')
                i++;
            *rc = add_scope(a, c, s + start, i - start);
        }
    }
    if (roles) {
        size_t i;
        json_t *e;
        json_array_foreach(roles, i, e)
        {
            if (!json_is_string(e))
                return PX_JWT_BAD_CLAIMS;
            if (!*rc)
                *rc = add_scope(a, c, json_string_value(e), json_string_length(e));
        }
    }
    if (c->nscopes == 0)
        c->scopes = NULL;
    return PX_JWT_OK;
}

/* The tenancy claims (TENANCY=on, tenant.c): `tenant` a string, `tenants`
 * an array of at most PX_JWT_MAX_SCOPES strings. Their values are judged by
 * the tenant resolution, which answers 403 for a name it cannot use. */
static enum px_jwt_why read_tenants(json_t *p, struct px_arena *a, struct px_jwt_claims *c,
                                    px_rc *rc)
{
    json_t *tenant = json_object_get(p, "tenant");
    json_t *tenants = json_object_get(p, "tenants");
    *rc = PX_OK;
    if ((tenant && !json_is_string(tenant)) || (tenants && !json_is_array(tenants)) ||
        (tenants && json_array_size(tenants) > PX_JWT_MAX_SCOPES))
        return PX_JWT_BAD_CLAIMS;
    if (tenant) {
        c->tenant = px_arena_strndup(a, json_string_value(tenant), json_string_length(tenant));
        if (!c->tenant) {
            *rc = PX_ERR_NOMEM;
            return PX_JWT_OK;
        }
    }
    if (!tenants)
        return PX_JWT_OK;
    const char **list = px_arena_calloc(a, (json_array_size(tenants) + 1) * sizeof(*list));
    if (!list) {
        *rc = PX_ERR_NOMEM;
        return PX_JWT_OK;
    }
    size_t i;
    json_t *e;
    json_array_foreach(tenants, i, e)
    {
        if (!json_is_string(e))
            return PX_JWT_BAD_CLAIMS;
        list[i] = px_arena_strndup(a, json_string_value(e), json_string_length(e));
        if (!list[i]) {
            *rc = PX_ERR_NOMEM;
            return PX_JWT_OK;
        }
    }
    c->tenants = list;
    return PX_JWT_OK;
}

static enum px_jwt_why check_claims(const struct px_jwt_verifier *v, json_t *p, int64_t now,
                                    struct px_arena *a, struct px_jwt_claims *c, px_rc *rc)
{
    double t = (double)now, skew = (double)v->skew, exp = 0, nbf = 0, iat = 0;
    bool has_exp, has_nbf, has_iat;
    *rc = PX_OK;

    json_t *sub = json_object_get(p, "sub");
    const char *subject = clean_string(sub, PX_MAX_PRINCIPAL);
    if (!subject)
        return PX_JWT_BAD_CLAIMS;
    if (!opt_number(p, "exp", &has_exp, &exp) || !has_exp ||
        !opt_number(p, "nbf", &has_nbf, &nbf) || !opt_number(p, "iat", &has_iat, &iat))
        return PX_JWT_BAD_CLAIMS;
    json_t *iss = json_object_get(p, "iss");
    json_t *aud = json_object_get(p, "aud");
    if ((iss && !json_is_string(iss)) || (aud && !valid_audience_type(aud)))
        return PX_JWT_BAD_CLAIMS;

    if (t >= exp + skew)
        return PX_JWT_EXPIRED;
    if ((has_nbf && t + skew < nbf) || (has_iat && t + skew < iat))
        return PX_JWT_NOT_YET_VALID;
    if (v->issuer && !(iss && strcmp(json_string_value(iss), v->issuer) == 0))
        return PX_JWT_BAD_ISSUER;
    if (aud && !(v->audience && audience_matches(aud, v->audience)))
        return PX_JWT_BAD_AUDIENCE;
    if (!aud && v->audience)
        return PX_JWT_BAD_AUDIENCE;

    enum px_jwt_why why = read_scopes(p, a, c, rc);
    if (why || *rc)
        return why;
    why = read_tenants(p, a, c, rc);
    if (why || *rc)
        return why;
    c->subject = px_arena_strdup(a, subject);
    if (!c->subject)
        *rc = PX_ERR_NOMEM;
    c->exp = exp;
    return PX_JWT_OK;
}

/* A JSON object from decoded bytes, or NULL. */
static json_t *json_object_of(const unsigned char *d, size_t n)
{
    json_t *j = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

px_rc px_jwt_verify(const struct px_jwt_verifier *v, const char *token, size_t len, int64_t now,
                    struct px_arena *a, struct px_jwt_claims *claims, enum px_jwt_why *why)
{
    px_rc rc = PX_ERR_DENIED;
    unsigned char *mem = NULL;
    json_t *header = NULL, *payload = NULL;
    memset(claims, 0, sizeof(*claims));
    *why = PX_JWT_MALFORMED;
    if (!v || !token)
        goto out;
    if (len > PX_JWT_MAX_TOKEN) {
        *why = PX_JWT_TOO_LARGE;
        goto out;
    }
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        goto out; /* not three parts (a JWE has five) */
    size_t hn = (size_t)(d1 - token), pn = (size_t)(d2 - d1 - 1);
    size_t sn = len - (size_t)(d2 + 1 - token);
    if (!hn || !pn || !sn)
        goto out;

    mem = malloc(len);
    if (!mem) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    unsigned char *hd = mem, *pd, *sd;
    size_t hl, pl, sl;
    if (px_jwt_b64url_decode(token, hn, hd, &hl))
        goto out;
    pd = hd + hl;
    if (px_jwt_b64url_decode(d1 + 1, pn, pd, &pl))
        goto out;
    sd = pd + pl;
    if (px_jwt_b64url_decode(d2 + 1, sn, sd, &sl))
        goto out;
    if (!(header = json_object_of(hd, hl)))
        goto out;

    enum px_jwt_alg alg = PX_JWT_HS256;
    const char *kid = NULL;
    if ((*why = check_header(header, &alg, &kid)) != PX_JWT_OK)
        goto out;
    const struct key *key = select_key(v, kid, alg);
    if (!key) {
        *why = PX_JWT_UNKNOWN_KEY;
        goto out;
    }
    if (key->alg != alg) {
        *why = PX_JWT_ALG_MISMATCH;
        goto out;
    }
    if (!verify_signature(key, token, (size_t)(d2 - token), sd, sl)) {
        *why = PX_JWT_BAD_SIGNATURE;
        goto out;
    }
    if (!(payload = json_object_of(pd, pl))) {
        *why = PX_JWT_MALFORMED;
        goto out;
    }
    px_rc crc = PX_OK;
    *why = check_claims(v, payload, now, a, claims, &crc);
    if (crc) {
        rc = crc;
        goto out;
    }
    if (*why)
        goto out;
    claims->alg = key->alg;
    if (kid && !(claims->kid = px_arena_strdup(a, kid))) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    rc = PX_OK;
out:
    if (rc && rc != PX_ERR_DENIED)
        *why = PX_JWT_OK;
    if (rc)
        memset(claims, 0, sizeof(*claims));
    json_decref(header);
    json_decref(payload);
    free(mem);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Files and minting. */

px_rc px_jwt_read_file(const char *path, size_t cap, char **out, size_t *len, char *err,
                       size_t errlen)
{
    px_rc rc = PX_OK;
    char *buf = NULL;
    size_t n = 0;
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %.256s: %s", path, strerror(errno));
        return PX_ERR_IO;
    }
    buf = malloc(cap + 2);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    /* Read one byte past the cap to tell "exactly cap" from "more". */
    n = fread(buf, 1, cap + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %.256s: %s", path, strerror(errno));
        rc = PX_ERR_IO;
        goto out;
    }
    if (n > cap) {
        snprintf(err, errlen, "%.256s is larger than %zu bytes", path, cap);
        rc = PX_ERR_TOO_LARGE;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    if (buf) {
        OPENSSL_cleanse(buf, cap + 2);
        free(buf);
    }
    fclose(f);
    return rc;
}

px_rc px_jwt_read_secret(const char *path, unsigned char **out, size_t *len, char *err,
                         size_t errlen)
{
    char *buf = NULL;
    size_t n = 0;
    *out = NULL;
    *len = 0;
    px_rc rc = px_jwt_read_file(path, PX_JWT_MAX_SECRET + 2, &buf, &n, err, errlen);
    if (rc)
        return rc;
    size_t full = n;
    /* `openssl rand -hex 32 > FILE` ends with a line break that is not part of the key. */
    if (n && buf[n - 1] == '\n') {
        n--;
        if (n && buf[n - 1] == '\r')
            n--;
    }
    if (n < PX_JWT_MIN_SECRET || n > PX_JWT_MAX_SECRET) {
        snprintf(err, errlen,
                 "%.256s must hold %d to %d bytes (e.g. `openssl rand -hex 32 > FILE`), it "
                 "holds %zu",
                 path, PX_JWT_MIN_SECRET, PX_JWT_MAX_SECRET, n);
        OPENSSL_cleanse(buf, full);
        free(buf);
        return PX_ERR_CONFIG;
    }
    *out = (unsigned char *)buf;
    *len = n;
    return PX_OK;
}

void px_jwt_secret_free(unsigned char *secret, size_t len)
{
    if (!secret)
        return;
    OPENSSL_cleanse(secret, len);
    free(secret);
}

px_rc px_jwt_sign_hs256(const unsigned char *secret, size_t secret_len, const char *payload_json,
                        size_t payload_len, struct px_buf *out)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t start = out->len;
    px_rc rc = px_jwt_b64url_encode(header, sizeof(header) - 1, out);
    if (!rc)
        rc = px_buf_add(out, ".", 1);
    if (!rc)
        rc = px_jwt_b64url_encode(payload_json, payload_len, out);
    if (!rc && !HMAC(EVP_sha256(), secret, (int)secret_len,
                     (const unsigned char *)out->data + start, out->len - start, mac, &maclen))
        rc = PX_ERR_INTERNAL;
    if (!rc)
        rc = px_buf_add(out, ".", 1);
    if (!rc)
        rc = px_jwt_b64url_encode(mac, maclen, out);
    OPENSSL_cleanse(mac, sizeof(mac));
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}
