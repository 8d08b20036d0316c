/* jwt.h: JSON Web Tokens (RFC 7519, JWS compact form RFC 7515) verified with
 * OpenSSL 3, and HS256 minting for local development.
 *
 * A px_jwt_verifier holds the keys (an HS256 secret and/or the RS256 / ES256
 * public keys of a JWKS) and the claim rules; it is built once at start-up,
 * never changes afterwards, and px_jwt_verify() may run on it from any number
 * of threads at once. The algorithm of a token is decided by the key that
 * verifies it, never by the token: a header whose `alg` differs from the
 * selected key's is refused, and so are `alg: none` and any `crit` header. */
#ifndef PX_JWT_H
#define PX_JWT_H

#include "px.h"
#include "arena.h"
#include "buf.h"

#define PX_JWT_MAX_TOKEN  (8 * 1024)   /* compact token, bytes */
#define PX_JWT_MAX_JWKS   (256 * 1024) /* JWKS document, bytes */
#define PX_JWT_MAX_SCOPES 64           /* permissions kept from scope + roles */
#define PX_JWT_MIN_SECRET 32           /* HS256 secret: at least the hash size (RFC 7518 3.2) */
#define PX_JWT_MAX_SECRET 4096

struct px_jwt_verifier;

enum px_jwt_alg { PX_JWT_HS256 = 1, PX_JWT_RS256, PX_JWT_ES256 };

/* Why a token was refused (for logs; clients only learn "invalid_token"). */
enum px_jwt_why {
    PX_JWT_OK = 0,
    PX_JWT_MALFORMED,     /* not three strict base64url parts holding JSON objects */
    PX_JWT_TOO_LARGE,     /* longer than PX_JWT_MAX_TOKEN */
    PX_JWT_BAD_HEADER,    /* alg missing, none or unsupported; crit; odd typ or kid */
    PX_JWT_UNKNOWN_KEY,   /* no key for this kid (or for a token without kid) */
    PX_JWT_ALG_MISMATCH,  /* header alg differs from the selected key's algorithm */
    PX_JWT_BAD_SIGNATURE, /* the signature does not verify with the key */
    PX_JWT_EXPIRED,       /* exp (plus skew) has passed */
    PX_JWT_NOT_YET_VALID, /* nbf or iat lies beyond now plus skew */
    PX_JWT_BAD_ISSUER,    /* iss missing or not the configured issuer */
    PX_JWT_BAD_AUDIENCE,  /* aud does not name the configured audience */
    PX_JWT_BAD_CLAIMS,    /* sub or exp missing; a claim of the wrong type */
};

/* Inputs of a verifier; copied by px_jwt_verifier_new(), nothing is kept. */
struct px_jwt_settings {
    const unsigned char *hs256_secret; /* NULL: no HS256 key */
    size_t hs256_secret_len;           /* PX_JWT_MIN_SECRET..PX_JWT_MAX_SECRET */
    const char *jwks;                  /* JWKS JSON text; NULL: no public keys */
    size_t jwks_len;
    const char *issuer;   /* NULL or "": iss is not checked */
    const char *audience; /* NULL or "": a token that carries aud is refused (RFC 7519 4.1.3) */
    long clock_skew_s;    /* allowance on exp, nbf and iat */
};

/* What a verified token says. Strings and arrays live in the arena given to
 * px_jwt_verify(). */
struct px_jwt_claims {
    const char *subject; /* sub: 1..PX_MAX_PRINCIPAL bytes without control characters */
    const char *
        *scopes; /* NULL-terminated: scope (space-separated) then roles (array); NULL when none */
    size_t nscopes;
    double exp;          /* seconds since the epoch */
    enum px_jwt_alg alg; /* the key's algorithm */
    const char *kid;     /* the token's kid, NULL when absent */
    const char *tenant;  /* `tenant` claim (a string), NULL when absent */
    const char *
        *tenants; /* `tenants` claim (array of strings), NULL-terminated; NULL when absent */
};

/* Builds a verifier. Keys of a JWKS that this verifier cannot use (use other
 * than sig, kty other than RSA/EC, curves other than P-256, alg other than
 * RS256/ES256) are skipped; a usable key that is malformed (bad base64url, a
 * point off the curve, RSA below 2048 bits), duplicate kids, or no key at all
 * fail with PX_ERR_CONFIG and one line in err. *out is freed with
 * px_jwt_verifier_free(). */
px_rc px_jwt_verifier_new(const struct px_jwt_settings *s, struct px_jwt_verifier **out, char *err,
                          size_t errlen) PX_WUR;
/* Frees the verifier and wipes its secret. Accepts NULL. */
void px_jwt_verifier_free(struct px_jwt_verifier *v);
/* Number of keys held (the HS256 secret counts as one). */
size_t px_jwt_verifier_nkeys(const struct px_jwt_verifier *v);

/* Verifies a compact token at time `now` (epoch seconds). PX_OK: *claims is
 * filled (strings in a). PX_ERR_DENIED: refused, *why says why. PX_ERR_NOMEM:
 * the arena or the heap ran out. Thread-safe on a shared verifier. */
px_rc px_jwt_verify(const struct px_jwt_verifier *v, const char *token, size_t len, int64_t now,
                    struct px_arena *a, struct px_jwt_claims *claims, enum px_jwt_why *why) PX_WUR;

/* Static text of why, for logs. */
const char *px_jwt_why_text(enum px_jwt_why why);

/* Reads a whole file of at most cap bytes into a NUL-terminated heap buffer
 * the caller frees. PX_ERR_IO / PX_ERR_TOO_LARGE with a line in err. */
px_rc px_jwt_read_file(const char *path, size_t cap, char **out, size_t *len, char *err,
                       size_t errlen) PX_WUR;
/* Reads an HS256 secret file: its bytes, one trailing line end (\n or \r\n)
 * dropped; at least PX_JWT_MIN_SECRET bytes. Free with px_jwt_secret_free(). */
px_rc px_jwt_read_secret(const char *path, unsigned char **out, size_t *len, char *err,
                         size_t errlen) PX_WUR;
/* Wipes and frees a secret from px_jwt_read_secret(). Accepts NULL. */
void px_jwt_secret_free(unsigned char *secret, size_t len);

/* Appends base64url without padding (RFC 7515 2) of data to out. */
px_rc px_jwt_b64url_encode(const void *data, size_t n, struct px_buf *out) PX_WUR;
/* Appends a compact HS256 token, header {"alg":"HS256","typ":"JWT"}, whose
 * payload is the JSON text payload_json (not checked here), to out. */
px_rc px_jwt_sign_hs256(const unsigned char *secret, size_t secret_len, const char *payload_json,
                        size_t payload_len, struct px_buf *out) PX_WUR;

#endif
