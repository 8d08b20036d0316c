/* s3.c: PutObject, GetObject and ListObjectsV2 (see s3.h).
 *
 * Why MD5 and SHA-256 both: S3 checks Content-MD5 and x-amz-checksum-sha256
 * against the bytes it received and refuses the object when either differs,
 * and the signed x-amz-content-sha256 binds the bytes to the signature; an
 * S3 implementation that checks none of them (a local one) is still caught
 * by the ETag, which for a plain single-part object is the MD5 it stored. */
#include "s3.h"
#include "sigv4.h"
#include "../kernel/b64.h"
#include "../kernel/ossl.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_ANSWER     (64 * 1024) /* an error or a list page */
#define MAX_LIST_PAGES 100000

struct px_s3 {
    char *base;   /* URL up to the key: "http://h:p/bucket/" or "https://b.s3.r.amazonaws.com/" */
    char *host;   /* Host header value */
    char *prefix; /* path before the key: "/bucket/" or "/" */
    char region[64];
    char akid[128], secret[256];
    char *token;
    long timeout_ms;
    CURL *h;
};

struct answer {
    struct px_buf *body;
    char etag[80];
    bool kms;
};

static bool unreserved(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

bool px_s3_bucket_ok(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n < 3 || n > 63 || b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
              b[i] == '-'))
            return false;
    return true;
}

bool px_s3_key_ok(const char *key)
{
    if (!key || key[0] == '/' || strlen(key) > 900)
        return false;
    const char *seg = key;
    for (const char *p = key;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t sl = (size_t)(p - seg);
            /* the signer would drop these segments; S3 would not */
            if ((sl == 0 && *p == '/') || (sl == 1 && seg[0] == '.') ||
                (sl == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            seg = p + 1;
        } else if (!unreserved(*p)) {
            return false;
        }
    }
}

px_rc px_s3_digests(const void *data, size_t len, char *md5_b64, char *sha_b64, char *sha_hex)
{
    unsigned char md5[16], sha[32];
    unsigned int ml = 0, sl = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    bool ok = m && EVP_DigestInit_ex(m, EVP_md5(), NULL) == 1 &&
              EVP_DigestUpdate(m, data, len) == 1 && EVP_DigestFinal_ex(m, md5, &ml) == 1 &&
              EVP_DigestInit_ex(m, px_ossl_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(m, data, len) == 1 && EVP_DigestFinal_ex(m, sha, &sl) == 1;
    EVP_MD_CTX_free(m);
    if (!ok)
        return PX_ERR_INTERNAL;
    size_t n = 0;
    px_rc rc = px_b64_encode(md5, 16, PX_B64_STD, PX_B64_PAD, md5_b64, 25, &n);
    if (!rc)
        rc = px_b64_encode(sha, 32, PX_B64_STD, PX_B64_PAD, sha_b64, 45, &n);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        sha_hex[2 * i] = hex[sha[i] >> 4];
        sha_hex[2 * i + 1] = hex[sha[i] & 15];
    }
    sha_hex[64] = '\0';
    return rc;
}

px_rc px_s3_new(const struct px_s3_config *cfg, const char *bucket, struct px_s3 **out, char *err,
                size_t errlen)
{
    *out = NULL;
    if (!cfg->region || !*cfg->region || strlen(cfg->region) >= 64) {
        snprintf(err, errlen, "AWS_REGION: not set (needed for s3://)");
        return PX_ERR_CONFIG;
    }
    if (!cfg->access_key_id || !*cfg->access_key_id || !cfg->secret_access_key ||
        !*cfg->secret_access_key || strlen(cfg->access_key_id) >= 128 ||
        strlen(cfg->secret_access_key) >= 256) {
        snprintf(err, errlen,
                 "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: not set (needed for s3://)");
        return PX_ERR_CONFIG;
    }
    if (!px_s3_bucket_ok(bucket)) {
        snprintf(err, errlen, "s3://%.80s: not a bucket name (3-63 of a-z 0-9 . -)", bucket);
        return PX_ERR_CONFIG;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl initialisation failed");
        return PX_ERR_INTERNAL;
    }
    struct px_s3 *s = calloc(1, sizeof(*s));
    if (!s)
        return PX_ERR_NOMEM;
    snprintf(s->region, sizeof(s->region), "%s", cfg->region);
    snprintf(s->akid, sizeof(s->akid), "%s", cfg->access_key_id);
    snprintf(s->secret, sizeof(s->secret), "%s", cfg->secret_access_key);
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 60000;
    px_rc rc = PX_OK;
    size_t cap = 2048;
    s->base = malloc(cap);
    s->host = malloc(cap);
    s->prefix = malloc(cap);
    if (cfg->session_token && *cfg->session_token && !(s->token = strdup(cfg->session_token)))
        rc = PX_ERR_NOMEM;
    if (!rc && (!s->base || !s->host || !s->prefix))
        rc = PX_ERR_NOMEM;
    if (!rc && cfg->endpoint && *cfg->endpoint) {
        const char *ep = cfg->endpoint;
        const char *hs = strstr(ep, "://");
        size_t hl = hs ? strcspn(hs + 3, "/?#") : 0;
        const char *rest = hs ? hs + 3 + hl : "";
        if (!hs || (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) || !hl ||
            hl >= cap || strlen(ep) > 1024 || (*rest && strcmp(rest, "/") != 0)) {
            snprintf(err, errlen,
                     "AWS_ENDPOINT_URL_S3: \"%.200s\" is not http(s)://HOST[:PORT] with no path",
                     ep);
            rc = PX_ERR_CONFIG;
        } else {
            snprintf(s->host, cap, "%.*s", (int)hl, hs + 3);
            snprintf(s->base, cap, "%.*s/%s/", (int)(rest - ep), ep, bucket);
            snprintf(s->prefix, cap, "/%s/", bucket);
        }
    } else if (!rc) {
        bool cn = strncmp(cfg->region, "cn-", 3) == 0;
        if (strchr(bucket, '.')) { /* a dotted bucket breaks the TLS name: path-style */
            snprintf(s->host, cap, "s3.%s.amazonaws.com%s", cfg->region, cn ? ".cn" : "");
            snprintf(s->base, cap, "https://%s/%s/", s->host, bucket);
            snprintf(s->prefix, cap, "/%s/", bucket);
        } else {
            snprintf(s->host, cap, "%s.s3.%s.amazonaws.com%s", bucket, cfg->region,
                     cn ? ".cn" : "");
            snprintf(s->base, cap, "https://%s/", s->host);
            snprintf(s->prefix, cap, "/");
        }
    }
    if (!rc && !(s->h = curl_easy_init()))
        rc = PX_ERR_NOMEM;
    if (rc) {
        if (rc == PX_ERR_NOMEM)
            snprintf(err, errlen, "S3: out of memory");
        px_s3_free(s);
        return rc;
    }
    *out = s;
    return PX_OK;
}

void px_s3_free(struct px_s3 *s)
{
    if (!s)
        return;
    if (s->h)
        curl_easy_cleanup(s->h);
    free(s->base);
    free(s->host);
    free(s->prefix);
    free(s->token);
    memset(s->secret, 0, sizeof(s->secret));
    free(s);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    return px_buf_add(a->body, p, size * n) == PX_OK ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = size * n;
    if (len > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        const char *v = p + 5;
        size_t vl = len - 5;
        while (vl && (*v == ' ' || *v == '"')) {
            v++;
            vl--;
        }
        while (vl &&
               (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == '"' || v[vl - 1] == ' '))
            vl--;
        snprintf(a->etag, sizeof(a->etag), "%.*s", (int)(vl < 79 ? vl : 79), v);
    } else if (len > 29 && strncasecmp(p, "x-amz-server-side-encryption:", 29) == 0) {
        a->kms = strstr(p, "kms") != NULL; /* aws:kms, aws:kms:dsse */
    }
    return len;
}

/* The S3 error code of an XML error body ("NoSuchKey"), or "". */
static void error_code(const struct px_buf *b, char *out, size_t cap)
{
    out[0] = '\0';
    const char *s = b->data ? strstr(b->data, "<Code>") : NULL;
    const char *e = s ? strstr(s, "</Code>") : NULL;
    if (s && e)
        snprintf(out, cap, "%.*s", (int)(e - s - 6 < 64 ? e - s - 6 : 64), s + 6);
}

/* One signed request: method on key (query: raw, canonical order not
 * needed), extra signed headers, body. *status gets the HTTP status. */
static px_rc request(struct px_s3 *s, const char *method, const char *key, const char *query,
                     const struct px_sigv4_header *extra, size_t nextra, const void *body,
                     size_t blen, const char *payload_hex, struct answer *a, long *status,
                     char *err, size_t errlen)
{
    struct px_sigv4_header hs[8];
    size_t nh = 0;
    char path[2048], url[4096];
    snprintf(path, sizeof(path), "%s%s", s->prefix, key);
    snprintf(url, sizeof(url), "%s%s%s%s", s->base, key, query && *query ? "?" : "",
             query ? query : "");
    hs[nh++] = (struct px_sigv4_header){"Host", s->host};
    hs[nh++] = (struct px_sigv4_header){"x-amz-content-sha256", payload_hex};
    for (size_t i = 0; i < nextra && nh < PX_COUNTOF(hs); i++)
        hs[nh++] = extra[i];
    struct px_sigv4_input in = {
        .method = method,
        .path = path,
        .query = query,
        .headers = hs,
        .nheaders = nh,
        .payload = body,
        .payload_len = blen,
        .region = s->region,
        .service = "s3",
        .access_key_id = s->akid,
        .secret_access_key = s->secret,
        .session_token = s->token,
        .now = time(NULL),
    };
    struct px_sigv4_output *sig = malloc(sizeof(*sig));
    struct curl_slist *hl = NULL;
    char *line = malloc(8192);
    px_rc rc = sig && line ? PX_OK : PX_ERR_NOMEM;
    if (!rc)
        rc = px_sigv4_sign(&in, sig);
    for (size_t i = 0; !rc && i < nh + 4; i++) {
        if (i == 0) /* curl sends its own Host from the URL: the same value */
            continue;
        if (i < nh)
            snprintf(line, 8192, "%s: %s", hs[i].name, hs[i].value);
        else if (i == nh)
            snprintf(line, 8192, "Authorization: %s", sig->authorization);
        else if (i == nh + 1)
            snprintf(line, 8192, "X-Amz-Date: %s", sig->amz_date);
        else if (i == nh + 2)
            snprintf(line, 8192, "Expect:");
        else if (s->token)
            snprintf(line, 8192, "X-Amz-Security-Token: %s", s->token);
        else
            continue;
        struct curl_slist *t = curl_slist_append(hl, line);
        if (!t)
            rc = PX_ERR_NOMEM;
        else
            hl = t;
    }
    if (!rc && strcmp(method, "PUT") == 0) {
        struct curl_slist *t = curl_slist_append(hl, "Content-Type: application/octet-stream");
        rc = t ? PX_OK : PX_ERR_NOMEM;
        if (t)
            hl = t;
    }
    CURL *h = s->h;
    curl_easy_reset(h);
    if (!rc && (curl_easy_setopt(h, CURLOPT_URL, url) ||
                curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") ||
                curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
                curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms) ||
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl) ||
                curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) ||
                curl_easy_setopt(h, CURLOPT_WRITEDATA, a) ||
                curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) ||
                curl_easy_setopt(h, CURLOPT_HEADERDATA, a)))
        rc = PX_ERR_INTERNAL;
    if (!rc && strcmp(method, "PUT") == 0 &&
        (curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT") ||
         curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "") ||
         curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen)))
        rc = PX_ERR_INTERNAL;
    if (!rc) {
        CURLcode cc = curl_easy_perform(h);
        if (cc != CURLE_OK) {
            snprintf(err, errlen, "S3 %s %.200s: %s", method, url, curl_easy_strerror(cc));
            rc = cc == CURLE_OPERATION_TIMEDOUT ? PX_ERR_TIMEOUT : PX_ERR_UNAVAILABLE;
        } else {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        }
    } else if (rc) {
        snprintf(err, errlen, "S3 %s %.200s: %s", method, key, px_strerror(rc));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(hl);
    if (line)
        memset(line, 0, 8192);
    free(line);
    if (sig)
        memset(sig, 0, sizeof(*sig));
    free(sig);
    return rc;
}

/* Maps a non-2xx answer to an rc and one line in err. */
static px_rc http_error(const char *what, const char *key, long status, const struct px_buf *b,
                        char *err, size_t errlen)
{
    char code[80];
    error_code(b, code, sizeof(code));
    snprintf(err, errlen, "S3 %s %.300s: HTTP %ld%s%s", what, key, status, code[0] ? " " : "",
             code);
    if (status == 404)
        return PX_ERR_NOT_FOUND;
    if (status == 412 || status == 409)
        return PX_ERR_CONFLICT;
    if (status == 401 || status == 403)
        return PX_ERR_DENIED;
    if (status == 400)
        return PX_ERR_INVALID;
    return PX_ERR_UNAVAILABLE;
}

px_rc px_s3_put(struct px_s3 *s, const char *key, const void *data, size_t len, bool if_absent,
                char *err, size_t errlen)
{
    if (!px_s3_key_ok(key)) {
        snprintf(err, errlen, "S3 key \"%.200s\" has characters this client does not send", key);
        return PX_ERR_INVALID;
    }
    char md5[25], sha[45], hex[65];
    px_rc rc = px_s3_digests(data, len, md5, sha, hex);
    if (rc)
        return rc;
    const struct px_sigv4_header extra[] = {
        {"Content-MD5", md5},
        {"x-amz-checksum-sha256", sha},
        {"If-None-Match", "*"},
    };
    struct px_buf body;
    px_buf_init(&body, MAX_ANSWER);
    struct answer a = {.body = &body};
    long status = 0;
    rc = request(s, "PUT", key, "", extra, if_absent ? 3 : 2, data, len, hex, &a, &status, err,
                 errlen);
    if (!rc && (status < 200 || status > 299))
        rc = http_error("PutObject", key, status, &body, err, errlen);
    if (!rc && !a.kms) {
        /* the ETag of a single PUT is the hex MD5 of what S3 stored */
        unsigned char raw[16];
        size_t n = 0;
        char want[33];
        static const char hx[] = "0123456789abcdef";
        if (px_b64_decode(md5, 24, PX_B64_STD, PX_B64_PAD, raw, sizeof(raw), &n) == PX_OK &&
            n == 16) {
            for (size_t i = 0; i < 16; i++) {
                want[2 * i] = hx[raw[i] >> 4];
                want[2 * i + 1] = hx[raw[i] & 15];
            }
            want[32] = '\0';
            if (strcasecmp(a.etag, want) != 0) {
                snprintf(err, errlen,
                         "S3 PutObject %.300s: stored ETag %.40s is not the MD5 of what was sent "
                         "(%s)",
                         key, a.etag[0] ? a.etag : "(none)", want);
                rc = PX_ERR_PROTOCOL;
            }
        }
    }
    px_buf_free(&body);
    return rc;
}

px_rc px_s3_get(struct px_s3 *s, const char *key, struct px_buf *out, char *err, size_t errlen)
{
    if (!px_s3_key_ok(key)) {
        snprintf(err, errlen, "S3 key \"%.200s\" has characters this client does not send", key);
        return PX_ERR_INVALID;
    }
    char md5[25], sha[45], hex[65];
    px_rc rc = px_s3_digests("", 0, md5, sha, hex);
    if (rc)
        return rc;
    px_buf_clear(out);
    struct answer a = {.body = out};
    long status = 0;
    rc = request(s, "GET", key, "", NULL, 0, NULL, 0, hex, &a, &status, err, errlen);
    if (!rc && (status < 200 || status > 299)) {
        rc = http_error("GetObject", key, status, out, err, errlen);
        px_buf_clear(out);
    }
    return rc;
}

/* Appends the query encoding of v (every reserved byte, '/' included). */
static bool qenc(char *out, size_t cap, const char *v)
{
    size_t l = strlen(out);
    return px_sigv4_uri_encode(v, strlen(v), false, out, l, cap) != (size_t)-1;
}

px_rc px_s3_list(struct px_s3 *s, const char *prefix, long max_pages,
                 px_rc (*each)(void *arg, const char *key), void *arg, char *err, size_t errlen)
{
    if (prefix && *prefix && !px_s3_key_ok(prefix)) {
        snprintf(err, errlen, "S3 prefix \"%.200s\" has characters this client does not send",
                 prefix);
        return PX_ERR_INVALID;
    }
    char md5[25], sha[45], hex[65];
    px_rc rc = px_s3_digests("", 0, md5, sha, hex);
    if (rc)
        return rc;
    struct px_buf body;
    px_buf_init(&body, 8 * 1024 * 1024);
    char after[1024] = "", query[4096];
    if (max_pages <= 0 || max_pages > MAX_LIST_PAGES)
        max_pages = MAX_LIST_PAGES;
    for (long page = 0; !rc; page++) {
        if (page == max_pages) {
            snprintf(err, errlen, "S3 ListObjectsV2: more than %ld pages", max_pages);
            rc = PX_ERR_TOO_LARGE;
            break;
        }
        snprintf(query, sizeof(query), "list-type=2&prefix=");
        bool ok = qenc(query, sizeof(query), prefix ? prefix : "");
        if (ok && after[0]) {
            size_t l = strlen(query);
            snprintf(query + l, sizeof(query) - l, "&start-after=");
            ok = qenc(query, sizeof(query), after);
        }
        if (!ok) {
            rc = PX_ERR_TOO_LARGE;
            break;
        }
        px_buf_clear(&body);
        struct answer a = {.body = &body};
        long status = 0;
        rc = request(s, "GET", "", query, NULL, 0, NULL, 0, hex, &a, &status, err, errlen);
        if (!rc && (status < 200 || status > 299))
            rc = http_error("ListObjectsV2", prefix ? prefix : "", status, &body, err, errlen);
        if (rc)
            break;
        /* Only our own key names matter: they never need XML escapes. */
        const char *p = body.data ? body.data : "";
        size_t got = 0;
        while (!rc && (p = strstr(p, "<Key>"))) {
            p += 5;
            const char *e = strstr(p, "</Key>");
            if (!e || (size_t)(e - p) >= sizeof(after)) {
                snprintf(err, errlen, "S3 ListObjectsV2: malformed answer");
                rc = PX_ERR_PROTOCOL;
                break;
            }
            snprintf(after, sizeof(after), "%.*s", (int)(e - p), p);
            got++;
            rc = each(arg, after);
            p = e;
        }
        if (rc)
            break;
        bool truncated = body.data && strstr(body.data, "<IsTruncated>true</IsTruncated>");
        if (!truncated)
            break;
        if (!got) {
            snprintf(err, errlen, "S3 ListObjectsV2: truncated page without keys");
            rc = PX_ERR_PROTOCOL;
        }
    }
    px_buf_free(&body);
    return rc;
}
