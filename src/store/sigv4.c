/* sigv4.c: AWS Signature Version 4, the canonical form of
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 * for every service but S3: the path is normalised (dot segments and empty
 * segments removed) and then encoded once more ("double encoding": an already
 * encoded %20 in the raw path becomes %2520). Output buffers are fixed-size;
 * going past one is an error, never a truncation. */
#include "sigv4.h"
#include "../kernel/ossl.h"

#include <openssl/evp.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PATH        2048 /* normalised path before encoding */
#define MAX_QUERY_PAIRS 64
#define MAX_QUERY_PART  1024 /* one encoded key or value */
#define MAX_HEADER_NAME 128

/* A bounded writer into a caller's char array; `over` sticks once the cap is hit. */
struct out {
    char *p;
    size_t len, cap;
    bool over;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->over || n >= o->cap - o->len) {
        o->over = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putc_(struct out *o, char c)
{
    put(o, &c, 1);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

size_t px_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, char *out, size_t len,
                           size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            if (len + 1 >= cap)
                return (size_t)-1;
            out[len++] = (char)c;
        } else {
            if (len + 3 >= cap)
                return (size_t)-1;
            out[len++] = '%';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        }
    }
    if (len < cap)
        out[len] = '\0';
    return len;
}

static void put_encoded(struct out *o, const char *s, size_t n, bool keep_slash)
{
    if (o->over)
        return;
    size_t r = px_sigv4_uri_encode(s, n, keep_slash, o->p, o->len, o->cap);
    if (r == (size_t)-1) {
        o->over = true;
        return;
    }
    o->len = r;
}

static void hex_encode(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* One digest context per signature, reused for every hash of it. */
struct hasher {
    EVP_MD_CTX *ctx;
};

static bool digest(struct hasher *h, const void *a, size_t an, const void *b, size_t bn,
                   unsigned char out[32])
{
    unsigned int len = 0;
    return EVP_DigestInit_ex(h->ctx, px_ossl_sha256(), NULL) && EVP_DigestUpdate(h->ctx, a, an) &&
           (!bn || EVP_DigestUpdate(h->ctx, b, bn)) && EVP_DigestFinal_ex(h->ctx, out, &len) &&
           len == 32;
}

static bool sha256_hex(struct hasher *h, const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    if (!digest(h, data ? data : "", n, NULL, 0, md))
        return false;
    hex_encode(md, 32, out);
    return true;
}

/* HMAC-SHA256 (RFC 2104) on the digest context. */
static bool hmac(struct hasher *h, const void *key, size_t keylen, const char *msg, size_t msglen,
                 unsigned char out[32])
{
    unsigned char ipad[64], opad[64], inner[32];
    unsigned char k[64] = {0};
    if (keylen > sizeof(k)) { /* a longer key is replaced by its digest */
        if (!digest(h, key, keylen, NULL, 0, k))
            return false;
    } else {
        memcpy(k, key, keylen);
    }
    for (size_t i = 0; i < 64; i++) {
        ipad[i] = (unsigned char)(k[i] ^ 0x36);
        opad[i] = (unsigned char)(k[i] ^ 0x5c);
    }
    bool ok = digest(h, ipad, 64, msg, msglen, inner) && digest(h, opad, 64, inner, 32, out);
    memset(k, 0, sizeof(k));
    memset(ipad, 0, sizeof(ipad));
    memset(opad, 0, sizeof(opad));
    return ok;
}

/* The signing key depends only on the secret, the date, the region and the
 * service: derived once per thread for each combination in use (in practice
 * once a day), not four HMACs per request. Compared in full, so a rotated
 * secret or a new day derives afresh. */
#define KEY_SECRET_MAX 251 /* as before the cache: "AWS4" + secret in 256 bytes */
static _Thread_local struct signing_key {
    bool set;
    size_t secret_len;
    char secret[KEY_SECRET_MAX + 1];
    char date[9];
    char region[64];
    char service[64];
    unsigned char key[32];
} key_cache;

static bool signing_key(struct hasher *h, const char *secret, const char *date, const char *region,
                        const char *service, unsigned char out[32])
{
    struct signing_key *c = &key_cache;
    size_t sl = strlen(secret), rl = strlen(region), vl = strlen(service);
    if (sl > KEY_SECRET_MAX)
        return false;
    if (c->set && c->secret_len == sl && memcmp(c->secret, secret, sl) == 0 &&
        memcmp(c->date, date, 9) == 0 && strcmp(c->region, region) == 0 &&
        strcmp(c->service, service) == 0) {
        memcpy(out, c->key, 32);
        return true;
    }
    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
    char key0[KEY_SECRET_MAX + 4];
    unsigned char k1[32], k2[32], k3[32];
    memcpy(key0, "AWS4", 4);
    memcpy(key0 + 4, secret, sl);
    bool ok = hmac(h, key0, sl + 4, date, 8, k1) && hmac(h, k1, 32, region, rl, k2) &&
              hmac(h, k2, 32, service, vl, k3) && hmac(h, k3, 32, "aws4_request", 12, out);
    memset(key0, 0, sizeof(key0));
    memset(k1, 0, sizeof(k1));
    memset(k2, 0, sizeof(k2));
    memset(k3, 0, sizeof(k3));
    c->set = false;
    if (ok && rl < sizeof(c->region) && vl < sizeof(c->service)) {
        c->secret_len = sl;
        memcpy(c->secret, secret, sl);
        memcpy(c->date, date, 9);
        memcpy(c->region, region, rl + 1);
        memcpy(c->service, service, vl + 1);
        memcpy(c->key, out, 32);
        c->set = true;
    }
    return ok;
}

/* Removes empty and "." segments and resolves ".." (never above the root);
 * a trailing slash survives. "//example//" -> "/example/". */
static px_rc normalize_path(const char *path, char *out, size_t cap)
{
    size_t len = 0;
    size_t n = strlen(path);
    const char *p = path, *end = path + n;
    if (cap < 2)
        return PX_ERR_TOO_LARGE;
    out[len++] = '/';
    while (p < end) {
        const char *seg = p;
        while (p < end && *p != '/')
            p++;
        size_t sl = (size_t)(p - seg);
        if (p < end)
            p++; /* the '/' */
        if (sl == 0 || (sl == 1 && seg[0] == '.'))
            continue;
        if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
            /* drop the last segment: back to the '/' before it */
            if (len > 1) {
                len--; /* the '/' after the segment */
                while (len > 1 && out[len - 1] != '/')
                    len--;
            }
            continue;
        }
        if (len + sl + 1 >= cap)
            return PX_ERR_TOO_LARGE;
        memcpy(out + len, seg, sl);
        len += sl;
        out[len++] = '/';
    }
    /* Every kept segment left a '/' behind it; keep it only when the raw path ended in one. */
    if (len > 1 && !(n > 0 && path[n - 1] == '/'))
        len--;
    out[len] = '\0';
    return PX_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) then encodes it canonically into out (cap bytes). */
static px_rc reencode(const char *s, size_t n, char *out, size_t cap)
{
    char dec[MAX_QUERY_PART];
    size_t dl = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (dl + 1 >= sizeof(dec))
            return PX_ERR_TOO_LARGE;
        dec[dl++] = c;
    }
    if (px_sigv4_uri_encode(dec, dl, false, out, 0, cap) == (size_t)-1)
        return PX_ERR_TOO_LARGE;
    return PX_OK;
}

struct qpair {
    char *key, *value; /* canonically encoded, heap (freed by the caller) */
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

static px_rc canonical_query(const char *q, struct out *o)
{
    struct qpair pairs[MAX_QUERY_PAIRS];
    size_t np = 0;
    px_rc rc = PX_OK;
    const char *p = q ? q : "", *end = p + strlen(p);
    char *tmp = malloc(MAX_QUERY_PART);
    if (!tmp)
        return PX_ERR_NOMEM;
    while (p < end) {
        const char *item = p;
        while (p < end && *p != '&')
            p++;
        const char *iend = p;
        if (p < end)
            p++;
        if (iend == item)
            continue;
        const char *eq = memchr(item, '=', (size_t)(iend - item));
        const char *kend = eq ? eq : iend;
        const char *v = eq ? eq + 1 : iend;
        if (np == MAX_QUERY_PAIRS) {
            rc = PX_ERR_TOO_LARGE;
            goto out;
        }
        rc = reencode(item, (size_t)(kend - item), tmp, MAX_QUERY_PART);
        if (rc)
            goto out;
        pairs[np].key = strdup(tmp);
        rc = reencode(v, (size_t)(iend - v), tmp, MAX_QUERY_PART);
        if (rc) {
            free(pairs[np].key);
            goto out;
        }
        pairs[np].value = strdup(tmp);
        np++;
        if (!pairs[np - 1].key || !pairs[np - 1].value) {
            rc = PX_ERR_NOMEM;
            goto out;
        }
    }
    qsort(pairs, np, sizeof(pairs[0]), qpair_cmp);
    for (size_t i = 0; i < np; i++) {
        if (i)
            putc_(o, '&');
        puts_(o, pairs[i].key);
        putc_(o, '=');
        puts_(o, pairs[i].value);
    }
out:
    for (size_t i = 0; i < np; i++) {
        free(pairs[i].key);
        free(pairs[i].value);
    }
    free(tmp);
    return rc;
}

struct chdr {
    char name[MAX_HEADER_NAME];
    const char *value;
    size_t order;
};

static int chdr_cmp(const void *a, const void *b)
{
    const struct chdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims and collapses every run of blanks (folded lines included) to one space. */
static void put_trimmed(struct out *o, const char *v)
{
    bool pending = false;
    while (*v && blank(*v))
        v++;
    for (; *v; v++) {
        if (blank(*v)) {
            pending = true;
            continue;
        }
        if (pending)
            putc_(o, ' ');
        pending = false;
        putc_(o, *v);
    }
}

static bool lower_name(const char *in, char *out)
{
    size_t n = strlen(in);
    if (n == 0 || n >= MAX_HEADER_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= ' ' || c >= 127 || c == ':')
            return false;
        out[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    out[n] = '\0';
    return true;
}

static px_rc sign_with(struct hasher *hs, const struct px_sigv4_input *in,
                       struct px_sigv4_output *out)
{
    struct chdr h[PX_SIGV4_MAX_HEADERS];
    size_t nh = 0;
    char date[9], scope[256], path[MAX_PATH], creq_hash[65], signed_headers[1024];
    unsigned char k4[32], sig[32];
    char sighex[65];
    struct tm tm;
    bool have_date = false, have_token = false;
    px_rc rc = PX_OK;

    if (!in || !out || !in->method || !*in->method || !in->path || in->path[0] != '/' ||
        !in->region || !*in->region || !in->service || !*in->service || !in->access_key_id ||
        !*in->access_key_id || !in->secret_access_key || !*in->secret_access_key ||
        (in->nheaders && !in->headers) || (in->payload_len && !in->payload))
        return PX_ERR_INVALID;
    if (in->nheaders > PX_SIGV4_MAX_HEADERS - 2)
        return PX_ERR_TOO_LARGE;
    /* Each field is written NUL-terminated as it is built; clearing all 18 KB
     * of *out cost more than the canonical request it holds. */
    out->amz_date[0] = out->payload_hash[0] = out->canonical_request[0] = '\0';
    out->string_to_sign[0] = out->authorization[0] = '\0';

    if (!gmtime_r(&in->now, &tm) ||
        strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16)
        return PX_ERR_INVALID;
    memcpy(date, out->amz_date, 8);
    date[8] = '\0';
    if (snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, in->region, in->service) >=
        (int)sizeof(scope))
        return PX_ERR_TOO_LARGE;

    for (size_t i = 0; i < in->nheaders; i++) {
        if (!in->headers[i].name || !in->headers[i].value ||
            !lower_name(in->headers[i].name, h[nh].name))
            return PX_ERR_INVALID;
        h[nh].value = in->headers[i].value;
        h[nh].order = nh;
        if (strcmp(h[nh].name, "x-amz-date") == 0) {
            /* the string to sign carries `now`: a different header would never verify */
            char v[32];
            struct out vo = {v, 0, sizeof(v), false};
            v[0] = '\0';
            put_trimmed(&vo, h[nh].value);
            if (vo.over || strcmp(v, out->amz_date) != 0)
                return PX_ERR_INVALID;
            have_date = true;
        }
        if (strcmp(h[nh].name, "x-amz-security-token") == 0)
            have_token = true;
        nh++;
    }
    if (!have_date) {
        memcpy(h[nh].name, "x-amz-date", sizeof("x-amz-date"));
        h[nh].value = out->amz_date;
        h[nh].order = nh;
        nh++;
    }
    if (in->session_token && *in->session_token && !have_token) {
        memcpy(h[nh].name, "x-amz-security-token", sizeof("x-amz-security-token"));
        h[nh].value = in->session_token;
        h[nh].order = nh;
        nh++;
    }
    qsort(h, nh, sizeof(h[0]), chdr_cmp);

    if (!sha256_hex(hs, in->payload, in->payload_len, out->payload_hash))
        return PX_ERR_INTERNAL;

    rc = normalize_path(in->path, path, sizeof(path));
    if (rc)
        return rc;

    struct out c = {out->canonical_request, 0, sizeof(out->canonical_request), false};
    struct out sh = {signed_headers, 0, sizeof(signed_headers), false};
    signed_headers[0] = '\0';
    puts_(&c, in->method);
    putc_(&c, '\n');
    put_encoded(&c, path, strlen(path), true);
    putc_(&c, '\n');
    rc = canonical_query(in->query, &c);
    if (rc)
        return rc;
    putc_(&c, '\n');
    for (size_t i = 0; i < nh; i++) {
        bool same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
        if (same) {
            putc_(&c, ',');
        } else {
            if (i > 0) {
                putc_(&c, '\n');
                putc_(&sh, ';');
            }
            puts_(&c, h[i].name);
            putc_(&c, ':');
            puts_(&sh, h[i].name);
        }
        put_trimmed(&c, h[i].value);
    }
    if (nh)
        putc_(&c, '\n');
    putc_(&c, '\n');
    puts_(&c, signed_headers);
    putc_(&c, '\n');
    puts_(&c, out->payload_hash);
    if (c.over || sh.over)
        return PX_ERR_TOO_LARGE;

    if (!sha256_hex(hs, out->canonical_request, c.len, creq_hash))
        return PX_ERR_INTERNAL;
    struct out s = {out->string_to_sign, 0, sizeof(out->string_to_sign), false};
    puts_(&s, "AWS4-HMAC-SHA256\n");
    puts_(&s, out->amz_date);
    putc_(&s, '\n');
    puts_(&s, scope);
    putc_(&s, '\n');
    puts_(&s, creq_hash);
    if (s.over)
        return PX_ERR_TOO_LARGE;

    bool ok = signing_key(hs, in->secret_access_key, date, in->region, in->service, k4) &&
              hmac(hs, k4, 32, out->string_to_sign, s.len, sig);
    memset(k4, 0, sizeof(k4));
    if (!ok)
        return PX_ERR_INTERNAL;
    hex_encode(sig, 32, sighex);
    int n = snprintf(out->authorization, sizeof(out->authorization),
                     "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                     in->access_key_id, scope, signed_headers, sighex);
    if (n < 0 || (size_t)n >= sizeof(out->authorization))
        return PX_ERR_TOO_LARGE;
    return PX_OK;
}

px_rc px_sigv4_sign(const struct px_sigv4_input *in, struct px_sigv4_output *out)
{
    if (in && in->secret_access_key && strlen(in->secret_access_key) > KEY_SECRET_MAX)
        return PX_ERR_TOO_LARGE;
    struct hasher hs = {px_ossl_sha256() ? EVP_MD_CTX_new() : NULL};
    if (!hs.ctx)
        return PX_ERR_INTERNAL;
    px_rc rc = sign_with(&hs, in, out);
    EVP_MD_CTX_free(hs.ctx);
    return rc;
}
