/* fuzz_jwt.c: JWT parsing and verification against a fixed HS256 secret and a
 * fixed EC P-256 public key (kid "fuzz-ec").
 *
 * The input is taken three ways, so that the fuzzer also reaches the code
 * behind the signature check:
 *   - a compact token, verified as it is;
 *   - text starting with '{': a claims object, signed here with the HS256
 *     secret, then verified;
 *   - '{'-text with a newline: "header\npayload", both signed here.
 * Whatever is accepted must satisfy the claim invariants, and base64url must
 * round-trip the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kernel/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
px_rc px_jwt_b64url_decode(const char *s, size_t n, unsigned char *out, size_t *outlen);

#define NOW ((int64_t)1700000000)

static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
static const char jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"fuzz-ec\",\"crv\":\"P-256\","
                           "\"x\":\"U823C9GHcH7jBWRzWkOETzRQAITNe72K6WnSg9tnTP4\","
                           "\"y\":\"WIwajC8tqI03EoFbaEjXOtwXNTMD2XwqxrKHiSjVLyg\"}]}";

static struct px_jwt_verifier *verifier(void)
{
    static struct px_jwt_verifier *v;
    if (!v) {
        char err[256];
        const struct px_jwt_settings s = {
            .hs256_secret = (const unsigned char *)secret,
            .hs256_secret_len = sizeof(secret) - 1,
            .jwks = jwks,
            .jwks_len = sizeof(jwks) - 1,
            .issuer = "https://issuer.fuzz",
            .audience = "pricing",
            .clock_skew_s = 60,
        };
        if (px_jwt_verifier_new(&s, &v, err, sizeof(err)) != PX_OK)
            __builtin_trap();
    }
    return v;
}

static void check_claims(const struct px_jwt_claims *c)
{
    size_t n = c->subject ? strlen(c->subject) : 0;
    if (n == 0 || n > PX_MAX_PRINCIPAL)
        __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c->subject[i] < 0x20)
            __builtin_trap();
    if (c->nscopes > PX_JWT_MAX_SCOPES || (c->nscopes && (!c->scopes || c->scopes[c->nscopes])))
        __builtin_trap();
    if (!c->nscopes && c->scopes)
        __builtin_trap();
    for (size_t i = 0; i < c->nscopes; i++)
        if (!c->scopes[i][0])
            __builtin_trap();
    if (c->alg != PX_JWT_HS256 && c->alg != PX_JWT_ES256)
        __builtin_trap();
    if ((double)NOW >= c->exp + 60)
        __builtin_trap();
}

static void verify(struct px_arena *a, const char *tok, size_t len)
{
    struct px_jwt_claims c;
    enum px_jwt_why why = PX_JWT_OK;
    px_rc rc = px_jwt_verify(verifier(), tok, len, NOW, a, &c, &why);
    if (rc == PX_OK) {
        if (why != PX_JWT_OK || len > PX_JWT_MAX_TOKEN)
            __builtin_trap();
        check_claims(&c);
    } else if (rc == PX_ERR_DENIED) {
        if (why == PX_JWT_OK || c.subject || c.scopes)
            __builtin_trap();
    } else if (rc != PX_ERR_NOMEM) {
        __builtin_trap();
    }
}

/* header.payload signed with the secret, for inputs that are JSON text. */
static void sign_and_verify(struct px_arena *a, const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    const char *header = "{\"alg\":\"HS256\"}";
    size_t hlen = strlen(header);
    const uint8_t *payload = data;
    size_t plen = size;
    if (nl) {
        header = (const char *)data;
        hlen = (size_t)(nl - data);
        payload = nl + 1;
        plen = size - hlen - 1;
    }
    struct px_buf b;
    px_buf_init(&b, 64 * 1024);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    px_rc rc = px_jwt_b64url_encode(header, hlen, &b);
    if (!rc)
        rc = px_buf_add(&b, ".", 1);
    if (!rc)
        rc = px_jwt_b64url_encode(payload, plen, &b);
    if (!rc && !HMAC(EVP_sha256(), secret, (int)(sizeof(secret) - 1), (const unsigned char *)b.data,
                     b.len, mac, &maclen))
        __builtin_trap();
    if (!rc)
        rc = px_buf_add(&b, ".", 1);
    if (!rc)
        rc = px_jwt_b64url_encode(mac, maclen, &b);
    if (!rc)
        verify(a, b.data, b.len);
    px_buf_free(&b);
}

static void b64url_roundtrip(const uint8_t *data, size_t size)
{
    struct px_buf b;
    px_buf_init(&b, 64 * 1024);
    if (px_jwt_b64url_encode(data, size, &b) == PX_OK) {
        unsigned char *back = malloc(size + 1);
        size_t n = 0;
        if (!back)
            __builtin_trap();
        if (px_jwt_b64url_decode(b.data ? b.data : "", b.len, back, &n) != PX_OK || n != size ||
            (size && memcmp(back, data, size) != 0))
            __builtin_trap();
        free(back);
    }
    px_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct px_arena *a;
    if (!a)
        a = px_arena_new(1 << 20);
    else
        px_arena_reset(a);
    if (!a)
        return 0;
    if (size > 4 * PX_JWT_MAX_TOKEN)
        return 0;
    if (size && data[0] == '{')
        sign_and_verify(a, data, size);
    else
        verify(a, (const char *)data, size);
    b64url_roundtrip(data, size);
    return 0;
}
