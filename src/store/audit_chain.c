/* audit_chain.c: record hashes, signed checkpoints and the chain verifier
 * (docs/internals/audit-integrity.md). */
#include "audit_chain.h"
#include "../kernel/b64.h"
#include "../kernel/log.h"
#include "../kernel/ossl.h"
#include "../kernel/tenant.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char DOMAIN[] = "pricing-audit-record/v1\n";
/* U+2014 EM DASH, then a space: how a signed-note signature line starts. */
static const char SIG_PREFIX[] = "\xe2\x80\x94 ";
#define SIG_LEN         64
#define KEY_ID_LEN      4
#define CHECKPOINTS_MAX (1u << 22)
#define WRITERS_MAX     (1u << 20)

static void set_err(char *err, size_t errlen, const char *fmt, ...) PX_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- record hashes -------------------------------------------------------------------- */

px_rc px_chain_init(struct px_chain *c)
{
    unsigned char r[8];
    memset(c, 0, sizeof(*c));
    /* From the kernel, not RAND_bytes: OpenSSL's first random bytes set up
     * its DRBG, 5.7 M instructions, most of a Lambda cold start's own work. */
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return PX_ERR_INTERNAL;
        got += (size_t)n;
    }
    c->seg_min = INT64_MAX;
    c->writer[0] = 'w';
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(c->writer + 1 + 2 * i, 3, "%02x", r[i]);
    return PX_OK;
}

/* A length-prefixed field: 4-byte big-endian length (0xffffffff: absent), bytes. */
static void put_field(EVP_MD_CTX *md, const char *s)
{
    uint32_t n = s ? (uint32_t)strlen(s) : 0xffffffffu;
    unsigned char len[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    EVP_DigestUpdate(md, len, sizeof(len));
    if (s)
        EVP_DigestUpdate(md, s, n);
}

/* Appends field s (length-prefixed, as put_field) to buf at *at; false past cap. */
static bool put_field_buf(unsigned char *buf, size_t cap, size_t *at, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (*at + 4 + n > cap)
        return false;
    uint32_t l = s ? (uint32_t)n : 0xffffffffu;
    buf[(*at)++] = (unsigned char)(l >> 24);
    buf[(*at)++] = (unsigned char)(l >> 16);
    buf[(*at)++] = (unsigned char)(l >> 8);
    buf[(*at)++] = (unsigned char)l;
    memcpy(buf + *at, s ? s : "", n);
    *at += n;
    return true;
}

/* PX_BENCH_AUDIT_INTEGRITY=off, for benchmarks only (bench/integrity.sh): no
 * hash is computed (records carry a zero hash, which verify reports as
 * changed), so a run with it and without a signing key measures what the
 * chain and the checkpoints cost. Read once. */
static pthread_once_t bench_once = PTHREAD_ONCE_INIT;
static bool bench_off;

static void bench_init(void)
{
    const char *v = getenv("PX_BENCH_AUDIT_INTEGRITY");
    bench_off = v && strcmp(v, "off") == 0;
    if (bench_off)
        PX_WARN(NULL, "PX_BENCH_AUDIT_INTEGRITY=off: audit records are NOT hash-chained (a "
                      "benchmark setting: this trail will not verify)");
}

void px_chain_hash(const char *writer, uint64_t wseq, const struct px_audit_record *r,
                   const unsigned char prev[PX_CHAIN_HASH_LEN],
                   unsigned char out[PX_CHAIN_HASH_LEN])
{
    pthread_once(&bench_once, bench_init);
    if (bench_off) {
        memset(out, 0, PX_CHAIN_HASH_LEN);
        return;
    }
    char seq[24], exp[24];
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)wseq);
    snprintf(exp, sizeof(exp), "%lld", (long long)r->expires_at);
    /* Allocation failure: an all-zero hash never matches a stored one, so the
     * record is then reported as changed rather than passing unchecked. */
    memset(out, 0, PX_CHAIN_HASH_LEN);
    /* The short fields go through one update: a digest call per field cost
     * more than the hashing (this runs once per record on the writer thread). */
    unsigned char fixed[sizeof(DOMAIN) + 12 * (4 + 256)];
    size_t at = sizeof(DOMAIN) - 1;
    memcpy(fixed, DOMAIN, at);
    const char *f[] = {writer,     seq,           r->action,     r->status,
                       r->user_id, r->product_id, r->request_id, r->correlation_id,
                       r->ts,      exp,           r->principal,  r->api_request_id};
    for (size_t i = 0; i < PX_COUNTOF(f); i++)
        if (!put_field_buf(fixed, sizeof(fixed), &at, f[i]))
            return;
    const EVP_MD *sha = px_ossl_sha256();
    EVP_MD_CTX *md = sha ? EVP_MD_CTX_new() : NULL;
    unsigned int n = 0;
    if (!md || EVP_DigestInit_ex(md, sha, NULL) != 1) {
        EVP_MD_CTX_free(md);
        return;
    }
    EVP_DigestUpdate(md, fixed, at);
    put_field(md, r->before);
    put_field(md, r->after);
    /* A config change's key is the one field that says what it changed (its
     * gsi1pk, CONFIG#<key>, is derived from it). Absent for every other
     * record, so their hashes stay what they were. */
    if (r->config_key[0])
        put_field(md, r->config_key);
    /* A tenant other than "default" (CONTRACT §12): whose record it is. The
     * default tenant's records hash as they always did, tenancy on or off. */
    if (r->tenant[0] && strcmp(r->tenant, "default") != 0)
        put_field(md, r->tenant);
    EVP_DigestUpdate(md, prev, PX_CHAIN_HASH_LEN);
    EVP_DigestFinal_ex(md, out, &n);
    EVP_MD_CTX_free(md);
}

void px_chain_now_ts(char out[25])
{
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    char buf[64];
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(t.tv_nsec / 1000000));
    memcpy(out, buf, 24);
    out[24] = '\0';
}

void px_chain_hex(const unsigned char h[PX_CHAIN_HASH_LEN], char out[PX_CHAIN_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < PX_CHAIN_HASH_LEN; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[PX_CHAIN_HEX_LEN] = '\0';
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool px_chain_unhex(const char *s, unsigned char out[PX_CHAIN_HASH_LEN])
{
    if (!s || strnlen(s, PX_CHAIN_HEX_LEN + 1) != PX_CHAIN_HEX_LEN)
        return false;
    for (size_t i = 0; i < PX_CHAIN_HASH_LEN; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

/* ---- keys ------------------------------------------------------------------------------- */

struct px_chain_key {
    EVP_PKEY *pkey;
    bool has_private;
    unsigned char id[KEY_ID_LEN]; /* signed-note key id */
    struct px_chain_key *next;    /* more public keys (rotation), verifying only */
};

void px_chain_key_free(struct px_chain_key *k)
{
    while (k) {
        struct px_chain_key *n = k->next;
        EVP_PKEY_free(k->pkey);
        free(k);
        k = n;
    }
}

static px_rc key_load_one(const char *path, bool want_private, struct px_chain_key **out, char *err,
                          size_t errlen);

px_rc px_chain_key_load(const char *path, bool want_private, struct px_chain_key **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    if (want_private || !path || !strchr(path, ','))
        return key_load_one(path, want_private, out, err, errlen);
    /* "old.pub,new.pub": every key verifies, each signature by its key id. */
    struct px_chain_key **tail = out;
    px_rc rc = PX_OK;
    for (const char *p = path; !rc && *p;) {
        size_t n = strcspn(p, ",");
        char one[4096];
        if (n == 0 || n >= sizeof(one)) {
            snprintf(err, errlen, "bad key file list %.200s", path);
            rc = PX_ERR_CONFIG;
            break;
        }
        memcpy(one, p, n);
        one[n] = '\0';
        rc = key_load_one(one, false, tail, err, errlen);
        if (!rc)
            tail = &(*tail)->next;
        p += n + (p[n] == ',');
    }
    if (rc) {
        px_chain_key_free(*out);
        *out = NULL;
    }
    return rc;
}

/* signed-note: key id = SHA-256(name || "\n" || 0x01 || public key)[:4] for Ed25519. */
static bool key_id(EVP_PKEY *pkey, unsigned char id[KEY_ID_LEN])
{
    unsigned char pub[32], h[32];
    size_t publen = sizeof(pub);
    unsigned int hl = 0;
    if (EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1 || publen != sizeof(pub))
        return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok =
        md && EVP_DigestInit_ex(md, px_ossl_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(md, PX_CHAIN_KEY_NAME "\n\x01", sizeof(PX_CHAIN_KEY_NAME) + 1) == 1 &&
        EVP_DigestUpdate(md, pub, publen) == 1 && EVP_DigestFinal_ex(md, h, &hl) == 1;
    EVP_MD_CTX_free(md);
    if (ok)
        memcpy(id, h, KEY_ID_LEN);
    return ok;
}

static px_rc key_load_one(const char *path, bool want_private, struct px_chain_key **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f) {
        set_err(err, errlen, "cannot read key file %s: %s", path ? path : "(none)",
                strerror(errno));
        return PX_ERR_CONFIG;
    }
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    bool priv = pkey != NULL;
    if (!pkey && !want_private) {
        rewind(f);
        pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    }
    fclose(f);
    struct px_chain_key *k = NULL;
    if (!pkey || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        set_err(err, errlen, "%s is not a PEM Ed25519 %s key", path,
                want_private ? "private" : "public or private");
        EVP_PKEY_free(pkey);
        return PX_ERR_CONFIG;
    }
    k = calloc(1, sizeof(*k));
    if (!k) {
        EVP_PKEY_free(pkey);
        set_err(err, errlen, "out of memory");
        return PX_ERR_NOMEM;
    }
    k->pkey = pkey;
    k->has_private = priv;
    if (!key_id(pkey, k->id)) {
        px_chain_key_free(k);
        set_err(err, errlen, "%s: cannot read its public key", path);
        return PX_ERR_CONFIG;
    }
    *out = k;
    return PX_OK;
}

/* Writes text to path, created exclusively with mode. */
static px_rc write_new(const char *path, mode_t mode, EVP_PKEY *pkey, bool priv, char *err,
                       size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        set_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return errno == EEXIST ? PX_ERR_CONFLICT : PX_ERR_IO;
    }
    /* The umask may have taken bits away, never added: make it exact. */
    (void)fchmod(fd, mode);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(path);
        set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return PX_ERR_IO;
    }
    bool ok = priv ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1
                   : PEM_write_PUBKEY(f, pkey) == 1;
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(path);
        set_err(err, errlen, "cannot write %s", path);
        return PX_ERR_IO;
    }
    return PX_OK;
}

px_rc px_chain_keygen(const char *prefix, char *err, size_t errlen)
{
    char kpath[4096], ppath[4096];
    if (!prefix || !*prefix ||
        snprintf(kpath, sizeof(kpath), "%s.key", prefix) >= (int)sizeof(kpath) ||
        snprintf(ppath, sizeof(ppath), "%s.pub", prefix) >= (int)sizeof(ppath)) {
        set_err(err, errlen, "bad key prefix");
        return PX_ERR_INVALID;
    }
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey) {
        set_err(err, errlen, "cannot generate an Ed25519 key");
        return PX_ERR_INTERNAL;
    }
    px_rc rc = write_new(kpath, 0600, pkey, true, err, errlen);
    if (!rc) {
        /* A stale public key of an earlier pair must not stay beside the new one. */
        unlink(ppath);
        rc = write_new(ppath, 0644, pkey, false, err, errlen);
        if (rc)
            unlink(kpath);
    }
    EVP_PKEY_free(pkey);
    return rc;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

/* The note text (before the blank line) of c into out. */
static px_rc note_text(const struct px_checkpoint *c, char *out, size_t cap, size_t *len)
{
    char head[64];
    size_t hl = 0;
    if (px_b64_encode(c->head, PX_CHAIN_HASH_LEN, PX_B64_STD, PX_B64_PAD, head, sizeof(head), &hl))
        return PX_ERR_INTERNAL;
    char exp[48] = "";
    if (c->expires_min > 0)
        snprintf(exp, sizeof(exp), "expires-min %lld\n", (long long)c->expires_min);
    int n = snprintf(out, cap, PX_CHAIN_KEY_NAME "/%s\n%llu\n%s\ntime %s\n%s%s", c->writer,
                     (unsigned long long)c->seq, head, c->time, exp, c->purged ? "purged\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return PX_ERR_TOO_LARGE;
    *len = (size_t)n;
    return PX_OK;
}

/* Appends the blank line and k's signature line over out[0..tl) to out. */
static px_rc sign_text(const struct px_chain_key *k, char *out, size_t cap, size_t tl, size_t *len)
{
    if (!k || !k->has_private)
        return PX_ERR_CONFIG;
    unsigned char sig[KEY_ID_LEN + SIG_LEN];
    size_t sl = SIG_LEN;
    memcpy(sig, k->id, KEY_ID_LEN);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
              EVP_DigestSign(md, sig + KEY_ID_LEN, &sl, (const unsigned char *)out, tl) == 1 &&
              sl == SIG_LEN;
    EVP_MD_CTX_free(md);
    if (!ok)
        return PX_ERR_INTERNAL;
    char b64[128];
    size_t bl = 0;
    if (px_b64_encode(sig, sizeof(sig), PX_B64_STD, PX_B64_PAD, b64, sizeof(b64), &bl))
        return PX_ERR_INTERNAL;
    int n = snprintf(out + tl, cap - tl, "\n%s" PX_CHAIN_KEY_NAME " %s\n", SIG_PREFIX, b64);
    if (n < 0 || (size_t)n >= cap - tl)
        return PX_ERR_TOO_LARGE;
    *len = tl + (size_t)n;
    return PX_OK;
}

px_rc px_checkpoint_sign(const struct px_chain_key *k, const struct px_checkpoint *c, char *out,
                         size_t cap, size_t *len)
{
    if (!k || !k->has_private)
        return PX_ERR_CONFIG;
    size_t tl = 0;
    px_rc rc = note_text(c, out, cap, &tl);
    return rc ? rc : sign_text(k, out, cap, tl, len);
}

px_rc px_note_sign(const struct px_chain_key *k, const char *text, size_t tl, char *out, size_t cap,
                   size_t *len)
{
    if (!tl || tl >= cap || text[tl - 1] != '\n' || memchr(text, '\0', tl) ||
        (tl >= 2 && memmem(text, tl, "\n\n", 2)))
        return PX_ERR_INVALID;
    for (size_t i = 0; i < tl; i++)
        if ((unsigned char)text[i] < 0x20 && text[i] != '\n')
            return PX_ERR_INVALID;
    memcpy(out, text, tl);
    return sign_text(k, out, cap, tl, len);
}

/* Decimal without sign or leading zeros, at most 19 digits, into *v. */
static bool parse_u64(const char *s, size_t n, uint64_t *v)
{
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *v = x;
    return true;
}

/* The next line of [p, end) without its newline; false when no newline ends it. */
static bool next_line(const char **p, const char *end, const char **line, size_t *n)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return false;
    *line = *p;
    *n = (size_t)(nl - *p);
    *p = nl + 1;
    return true;
}

static bool valid_ts(const char *s, size_t n)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (n != sizeof(shape) - 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i])
            return false;
    return true;
}

/* The blank line after note[0..text_len), then at least one signature line;
 * PX_OK when one is k's and verifies (k NULL: well-formed is enough). */
static px_rc signatures(const struct px_chain_key *k, const char *note, size_t len, size_t text_len)
{
    const char *p = note + text_len, *end = note + len, *l;
    size_t n;
    if (!next_line(&p, end, &l, &n) || n != 0 || p == end)
        return PX_ERR_INVALID;
    bool signed_by_k = false;
    while (p < end) {
        if (!next_line(&p, end, &l, &n) || n < sizeof(SIG_PREFIX) - 1 ||
            memcmp(l, SIG_PREFIX, sizeof(SIG_PREFIX) - 1) != 0)
            return PX_ERR_INVALID;
        const char *name = l + sizeof(SIG_PREFIX) - 1;
        const char *sp = memchr(name, ' ', n - (sizeof(SIG_PREFIX) - 1));
        if (!sp || sp == name)
            return PX_ERR_INVALID;
        const char *b = sp + 1;
        size_t bn = (size_t)(l + n - b);
        unsigned char sig[128];
        size_t sl = 0;
        if (px_b64_decode(b, bn, PX_B64_STD, PX_B64_PAD, sig, sizeof(sig), &sl) || sl <= KEY_ID_LEN)
            return PX_ERR_INVALID;
        const struct px_chain_key *kk = k;
        while (kk && memcmp(sig, kk->id, KEY_ID_LEN) != 0)
            kk = kk->next;
        if (!kk || signed_by_k || (size_t)(sp - name) != sizeof(PX_CHAIN_KEY_NAME) - 1 ||
            memcmp(name, PX_CHAIN_KEY_NAME, sizeof(PX_CHAIN_KEY_NAME) - 1) != 0 ||
            sl != KEY_ID_LEN + SIG_LEN)
            continue; /* another key's signature: not ours to judge */
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        signed_by_k = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, kk->pkey) == 1 &&
                      EVP_DigestVerify(md, sig + KEY_ID_LEN, SIG_LEN, (const unsigned char *)note,
                                       text_len) == 1;
        EVP_MD_CTX_free(md);
        if (!signed_by_k)
            return PX_ERR_DENIED;
    }
    return !k || signed_by_k ? PX_OK : PX_ERR_DENIED;
}

px_rc px_checkpoint_open(const struct px_chain_key *k, const char *note, size_t len,
                         struct px_checkpoint *out)
{
    memset(out, 0, sizeof(*out));
    if (!note || len == 0 || len > PX_CHAIN_NOTE_MAX || memchr(note, '\0', len))
        return PX_ERR_INVALID;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)note[i] < 0x20 && note[i] != '\n')
            return PX_ERR_INVALID;
    const char *p = note, *end = note + len, *l;
    size_t n;
    /* Origin: pricing.audit/<writer>. */
    static const char origin[] = PX_CHAIN_KEY_NAME "/";
    if (!next_line(&p, end, &l, &n) || n != sizeof(origin) - 1 + PX_CHAIN_WRITER_LEN ||
        memcmp(l, origin, sizeof(origin) - 1) != 0)
        return PX_ERR_INVALID;
    const char *w = l + sizeof(origin) - 1;
    if (w[0] != 'w')
        return PX_ERR_INVALID;
    for (size_t i = 1; i < PX_CHAIN_WRITER_LEN; i++)
        if (hexval(w[i]) < 0)
            return PX_ERR_INVALID;
    memcpy(out->writer, w, PX_CHAIN_WRITER_LEN);
    /* Tree size. */
    if (!next_line(&p, end, &l, &n) || !parse_u64(l, n, &out->seq))
        return PX_ERR_INVALID;
    /* Root hash. */
    size_t hl = 0;
    if (!next_line(&p, end, &l, &n) ||
        px_b64_decode(l, n, PX_B64_STD, PX_B64_PAD, out->head, sizeof(out->head), &hl) ||
        hl != PX_CHAIN_HASH_LEN)
        return PX_ERR_INVALID;
    /* The one extension line this log writes. */
    if (!next_line(&p, end, &l, &n) || n < 5 || memcmp(l, "time ", 5) != 0 ||
        !valid_ts(l + 5, n - 5))
        return PX_ERR_INVALID;
    memcpy(out->time, l + 5, n - 5);
    /* An optional "expires-min N" line, an optional "purged" line, nothing else. */
    const char *q = p;
    uint64_t em = 0;
    if (next_line(&q, end, &l, &n) && n > 12 && memcmp(l, "expires-min ", 12) == 0) {
        if (!parse_u64(l + 12, n - 12, &em) || em == 0 || em > INT64_MAX)
            return PX_ERR_INVALID;
        out->expires_min = (int64_t)em;
        p = q;
    }
    q = p;
    if (next_line(&q, end, &l, &n) && n == 6 && memcmp(l, "purged", 6) == 0) {
        out->purged = true;
        p = q;
    }
    size_t text_len = (size_t)(p - note);
    return signatures(k, note, len, text_len);
}

px_rc px_note_open(const struct px_chain_key *k, const char *note, size_t len, size_t *text_len)
{
    if (!k || !note || len == 0 || len > PX_NOTE_MAX || memchr(note, '\0', len))
        return PX_ERR_INVALID;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)note[i] < 0x20 && note[i] != '\n')
            return PX_ERR_INVALID;
    const char *blank = len >= 2 ? memmem(note, len, "\n\n", 2) : NULL;
    if (!blank)
        return PX_ERR_INVALID;
    *text_len = (size_t)(blank - note) + 1;
    return signatures(k, note, len, *text_len);
}

px_rc px_digest_tenant(const char *text, size_t tl, char out[PX_TENANT_MAX + 1])
{
    out[0] = '\0';
    bool files = false, seen = false;
    const char *p = text, *end = text + tl;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n >= 5 && memcmp(p, "file ", 5) == 0) {
            files = true;
        } else if (n >= 7 && memcmp(p, "tenant ", 7) == 0) {
            /* Once, before the files: the whole digest is the tenant's. */
            if (seen || files || n - 7 > PX_TENANT_MAX) {
                out[0] = '\0';
                return PX_ERR_INVALID;
            }
            memcpy(out, p + 7, n - 7);
            out[n - 7] = '\0';
            seen = true;
            if (!px_tenant_valid(out)) {
                out[0] = '\0';
                return PX_ERR_INVALID;
            }
        }
        p += n + 1;
    }
    return PX_OK;
}

/* ---- verifier --------------------------------------------------------------------------- */

struct vcp {
    struct px_checkpoint c;
    char where[64];
};

struct vwriter {
    char id[PX_CHAIN_WRITER_LEN + 1];
    uint64_t seq; /* last wseq seen */
    unsigned char head[PX_CHAIN_HASH_LEN];
    size_t cp_lo, cp_next, cp_end; /* its checkpoints in cps[] */
    bool started;                  /* its first record was seen */
};

struct px_chain_verifier {
    const struct px_chain_key *k;
    char from[25], to[25];
    struct vcp *cps;
    size_t ncps, capcps;
    bool sorted;
    struct vwriter *ws;
    size_t nws, capws, last_w;
    struct px_chain_report rep;
    long read_budget;
    int64_t ttl_now;
    /* px_chain_verifier_set_tenant ("" none) and the record at hand (next). */
    char tenant[PX_TENANT_MAX + 1];
    enum { CUR_NONE, CUR_MINE, CUR_OTHER, CUR_UNKNOWN } cur;
    char cur_writer[PX_CHAIN_WRITER_LEN + 1];
    int64_t cur_wseq;
};

void px_chain_verifier_set_tenant(struct px_chain_verifier *v, const char *tenant)
{
    snprintf(v->tenant, sizeof(v->tenant), "%s", tenant ? tenant : "");
}

void px_chain_verifier_next(struct px_chain_verifier *v, const char *tenant, const char *writer,
                            int64_t wseq)
{
    if (!tenant)
        v->cur = CUR_UNKNOWN;
    else if (strcmp(tenant[0] ? tenant : PX_TENANT_DEFAULT, v->tenant) == 0)
        v->cur = CUR_MINE;
    else
        v->cur = CUR_OTHER;
    snprintf(v->cur_writer, sizeof(v->cur_writer), "%s",
             writer && strlen(writer) == PX_CHAIN_WRITER_LEN ? writer : "");
    v->cur_wseq = v->cur_writer[0] ? wseq : 0;
}

void px_chain_verifier_set_ttl(struct px_chain_verifier *v, int64_t now)
{
    v->ttl_now = now;
}

void px_chain_verifier_set_read_budget(struct px_chain_verifier *v, long pages)
{
    v->read_budget = pages;
}

long px_chain_verifier_read_budget(const struct px_chain_verifier *v)
{
    return v->read_budget;
}

px_rc px_chain_verifier_new(const struct px_chain_key *k, const char *from, const char *to,
                            struct px_chain_verifier **out)
{
    *out = NULL;
    if (!k)
        return PX_ERR_INVALID;
    struct px_chain_verifier *v = calloc(1, sizeof(*v));
    if (!v)
        return PX_ERR_NOMEM;
    v->k = k;
    snprintf(v->from, sizeof(v->from), "%s", from ? from : "");
    snprintf(v->to, sizeof(v->to), "%s", to ? to : "");
    *out = v;
    return PX_OK;
}

void px_chain_verifier_free(struct px_chain_verifier *v)
{
    if (!v)
        return;
    free(v->cps);
    free(v->ws);
    free(v);
}

static void broken(struct px_chain_verifier *v, const char *where, const char *fmt, ...)
    PX_PRINTF(3, 4);
static void broken(struct px_chain_verifier *v, const char *where, const char *fmt, ...)
{
    if (v->rep.broken)
        return;
    v->rep.broken = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->rep.what, sizeof(v->rep.what), fmt, ap);
    va_end(ap);
    /* verify --tenant: another tenant's record is named by its chain place
     * only; its where (keys, user and product ids) is not shown. */
    if (v->tenant[0] && v->cur != CUR_MINE && v->cur != CUR_NONE) {
        char w[64] = "no chain fields";
        if (v->cur_writer[0])
            snprintf(w, sizeof(w), "writer %s wseq %lld", v->cur_writer, (long long)v->cur_wseq);
        snprintf(v->rep.where, sizeof(v->rep.where), "a record %s (%s)",
                 v->cur == CUR_OTHER ? "of another tenant" : "whose tenant cannot be read", w);
        return;
    }
    snprintf(v->rep.where, sizeof(v->rep.where), "%s", where ? where : "");
}

void px_chain_verifier_fail(struct px_chain_verifier *v, const char *where, const char *what)
{
    broken(v, where, "%s", what);
    v->cur = CUR_NONE;
}

void px_chain_verifier_checkpoint(struct px_chain_verifier *v, const char *note, size_t len,
                                  const char *where)
{
    if (v->rep.broken)
        return;
    struct px_checkpoint c;
    px_rc rc = px_checkpoint_open(v->k, note, len, &c);
    if (rc) {
        broken(v, where,
               rc == PX_ERR_DENIED ? "checkpoint not signed by the given key (forged or replaced)"
                                   : "malformed checkpoint");
        return;
    }
    if (v->ncps == v->capcps) {
        size_t ncap = v->capcps ? v->capcps * 2 : 64;
        struct vcp *g = ncap <= CHECKPOINTS_MAX ? realloc(v->cps, ncap * sizeof(*g)) : NULL;
        if (!g) {
            broken(v, where, "too many checkpoints for this verifier (cap %u)", CHECKPOINTS_MAX);
            return;
        }
        v->cps = g;
        v->capcps = ncap;
    }
    v->cps[v->ncps].c = c;
    snprintf(v->cps[v->ncps].where, sizeof(v->cps[v->ncps].where), "%s", where ? where : "");
    v->ncps++;
    v->rep.checkpoints++;
    v->sorted = false;
}

static int cmp_cp(const void *a, const void *b)
{
    const struct vcp *x = a, *y = b;
    int c = strcmp(x->c.writer, y->c.writer);
    if (c)
        return c;
    if (x->c.seq != y->c.seq)
        return x->c.seq < y->c.seq ? -1 : 1;
    /* A purge checkpoint at the same seq as a plain one says more (records
     * 1..seq removed on purpose): it sorts last, so it is the writer's last. */
    return (int)x->c.purged - (int)y->c.purged;
}

/* The writer's state, created (with its checkpoint range) on first sight. */
static struct vwriter *writer_of(struct px_chain_verifier *v, const char *id, const char *where)
{
    if (v->nws && strcmp(v->ws[v->last_w].id, id) == 0)
        return &v->ws[v->last_w];
    for (size_t i = 0; i < v->nws; i++)
        if (strcmp(v->ws[i].id, id) == 0) {
            v->last_w = i;
            return &v->ws[i];
        }
    if (v->nws == v->capws) {
        size_t ncap = v->capws ? v->capws * 2 : 16;
        struct vwriter *g = ncap <= WRITERS_MAX ? realloc(v->ws, ncap * sizeof(*g)) : NULL;
        if (!g) {
            broken(v, where, "too many writers for this verifier (cap %u)", WRITERS_MAX);
            return NULL;
        }
        v->ws = g;
        v->capws = ncap;
    }
    struct vwriter *w = &v->ws[v->nws];
    memset(w, 0, sizeof(*w));
    snprintf(w->id, sizeof(w->id), "%s", id);
    /* Its checkpoints: a contiguous run of the sorted array. */
    size_t lo = 0, hi = v->ncps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v->cps[mid].c.writer, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    w->cp_lo = w->cp_next = w->cp_end = lo;
    while (w->cp_end < v->ncps && strcmp(v->cps[w->cp_end].c.writer, id) == 0)
        w->cp_end++;
    v->last_w = v->nws++;
    v->rep.writers++;
    return w;
}

/* Whether every checkpoint of w in (after, upto] ends a segment that may
 * have lost records to TTL (its expires-min has passed). */
static bool all_expired(const struct px_chain_verifier *v, const struct vwriter *w, uint64_t after,
                        uint64_t upto)
{
    for (size_t i = w->cp_lo; i < w->cp_end; i++) {
        const struct px_checkpoint *c = &v->cps[i].c;
        if (c->seq > after && c->seq <= upto &&
            (c->expires_min <= 0 || c->expires_min > v->ttl_now))
            return false;
    }
    return true;
}

/* Records w->seq+1 .. s-1 are missing. When TTL may have deleted them, the
 * chain goes on: from s's own prev when s's segment may have lost records
 * too, or from the head of the checkpoint at s-1 that ends such a segment. */
static void ttl_resume(struct px_chain_verifier *v, struct vwriter *w, uint64_t s,
                       const unsigned char prev[PX_CHAIN_HASH_LEN])
{
    const struct px_checkpoint *seg = NULL, *at = NULL;
    for (size_t i = w->cp_lo; i < w->cp_end; i++) {
        const struct px_checkpoint *c = &v->cps[i].c;
        if (c->seq >= s && (!seg || c->seq < seg->seq))
            seg = c;
        if (c->seq == s - 1)
            at = c;
    }
    if (!all_expired(v, w, w->seq, s - 1))
        return;
    if (seg && seg->expires_min > 0 && seg->expires_min <= v->ttl_now) {
        w->seq = s - 1;
        memcpy(w->head, prev, PX_CHAIN_HASH_LEN);
    } else if (at && at->expires_min > 0 && at->expires_min <= v->ttl_now) {
        w->seq = s - 1;
        memcpy(w->head, at->head, PX_CHAIN_HASH_LEN);
    }
}

/* Checkpoints of w at its current seq must name its current head. */
static void match_checkpoints(struct px_chain_verifier *v, struct vwriter *w, const char *where)
{
    while (w->cp_next < w->cp_end && v->cps[w->cp_next].c.seq <= w->seq) {
        const struct vcp *c = &v->cps[w->cp_next++];
        if (c->c.seq == w->seq && memcmp(c->c.head, w->head, PX_CHAIN_HASH_LEN) != 0) {
            broken(v, where,
                   "writer %s wseq %llu does not match its signed checkpoint (%s): the records "
                   "up to it were changed and rehashed",
                   w->id, (unsigned long long)w->seq, c->where);
            return;
        }
    }
}

void px_chain_verifier_record(struct px_chain_verifier *v, const struct px_audit_record *r,
                              const char *writer, int64_t wseq, const char *prev_hex,
                              const char *hash_hex, const char *where)
{
    bool ok = false;
    unsigned char prev[PX_CHAIN_HASH_LEN], hash[PX_CHAIN_HASH_LEN], want[PX_CHAIN_HASH_LEN];
    if (writer && *writer && wseq >= 1 && px_chain_unhex(prev_hex, prev) &&
        px_chain_unhex(hash_hex, hash)) {
        px_chain_hash(writer, (uint64_t)wseq, r, prev, want);
        ok = memcmp(want, hash, PX_CHAIN_HASH_LEN) == 0;
    }
    px_chain_verifier_next(v, r->tenant, writer, wseq);
    px_chain_verifier_link(v, r->ts, writer, wseq, prev_hex, hash_hex, ok, where);
}

static void link_one(struct px_chain_verifier *v, const char *ts, const char *writer, int64_t wseq,
                     const char *prev_hex, const char *hash_hex, bool hash_ok, const char *where);

void px_chain_verifier_link(struct px_chain_verifier *v, const char *ts, const char *writer,
                            int64_t wseq, const char *prev_hex, const char *hash_hex, bool hash_ok,
                            const char *where)
{
    link_one(v, ts, writer, wseq, prev_hex, hash_hex, hash_ok, where);
    v->cur = CUR_NONE;
}

static void link_one(struct px_chain_verifier *v, const char *ts, const char *writer, int64_t wseq,
                     const char *prev_hex, const char *hash_hex, bool hash_ok, const char *where)
{
    if (v->rep.broken)
        return;
    if (!v->sorted) {
        if (v->ncps)
            qsort(v->cps, v->ncps, sizeof(*v->cps), cmp_cp);
        v->sorted = true;
    }
    v->rep.records++;
    if (v->cur == CUR_MINE)
        v->rep.tenant_records++;
    if ((!v->from[0] || strcmp(ts, v->from) >= 0) && (!v->to[0] || strcmp(ts, v->to) <= 0))
        v->rep.in_range++;
    if (!writer || !*writer) {
        if (v->rep.chained) {
            broken(v, where,
                   "a record without chain fields inside the chained trail (inserted, "
                   "or its chain fields removed)");
            return;
        }
        v->rep.unchained++;
        return;
    }
    v->rep.chained++;
    unsigned char prev[PX_CHAIN_HASH_LEN], hash[PX_CHAIN_HASH_LEN];
    if (strnlen(writer, PX_CHAIN_WRITER_LEN + 1) != PX_CHAIN_WRITER_LEN || wseq < 1 ||
        !px_chain_unhex(prev_hex, prev) || !px_chain_unhex(hash_hex, hash)) {
        broken(v, where, "malformed chain fields");
        return;
    }
    if (!hash_ok) {
        broken(v, where, "changed: its fields do not hash to its stored hash (writer %s wseq %lld)",
               writer, (long long)wseq);
        return;
    }
    struct vwriter *w = writer_of(v, writer, where);
    if (!w)
        return;
    if (!w->started) {
        w->started = true;
        /* Records 1..wseq-1 purged: a signed purge checkpoint at wseq-1 must
         * name this record's prev; then the chain goes on from there. */
        for (size_t i = w->cp_next; wseq > 1 && i < w->cp_end; i++) {
            const struct vcp *c = &v->cps[i];
            if (c->c.purged && c->c.seq == (uint64_t)wseq - 1 &&
                memcmp(c->c.head, prev, PX_CHAIN_HASH_LEN) == 0) {
                w->seq = c->c.seq;
                memcpy(w->head, prev, PX_CHAIN_HASH_LEN);
                while (w->cp_next < w->cp_end && v->cps[w->cp_next].c.seq <= w->seq)
                    w->cp_next++;
                break;
            }
        }
    }
    if (w->cp_next == w->cp_end && w->seq == 0) {
        broken(v, where,
               "writer %s has no signed checkpoint: records of an unknown writer (inserted), or "
               "its checkpoints were removed",
               writer);
        return;
    }
    uint64_t s = (uint64_t)wseq;
    if (s == w->seq && w->seq) {
        broken(v, where, "duplicate: writer %s wseq %llu appears twice", writer,
               (unsigned long long)s);
        return;
    }
    if (s <= w->seq) {
        broken(v, where, "out of order or duplicated: writer %s wseq %llu stored after wseq %llu",
               writer, (unsigned long long)s, (unsigned long long)w->seq);
        return;
    }
    if (s > w->seq + 1 && v->ttl_now)
        ttl_resume(v, w, s, prev);
    if (s != w->seq + 1) {
        broken(v, where, "writer %s wseq %llu..%llu missing before this record (removed, or moved)",
               writer, (unsigned long long)w->seq + 1, (unsigned long long)s - 1);
        return;
    }
    if (memcmp(prev, w->head, PX_CHAIN_HASH_LEN) != 0) {
        broken(v, where,
               "chain broken: its prev is not the hash of writer %s wseq %llu (inserted, or the "
               "record before it changed)",
               writer, (unsigned long long)w->seq);
        return;
    }
    w->seq = s;
    memcpy(w->head, hash, PX_CHAIN_HASH_LEN);
    match_checkpoints(v, w, where);
}

bool px_chain_verifier_finish(struct px_chain_verifier *v, struct px_chain_report *rep)
{
    if (!v->sorted && v->ncps) {
        qsort(v->cps, v->ncps, sizeof(*v->cps), cmp_cp);
        v->sorted = true;
    }
    /* A signed checkpoint past a writer's last record: its tail was removed. */
    for (size_t i = 0; !v->rep.broken && i < v->nws; i++) {
        struct vwriter *w = &v->ws[i];
        if (w->cp_end > w->cp_next && !(v->ttl_now && all_expired(v, w, w->seq, UINT64_MAX))) {
            const struct vcp *c = &v->cps[w->cp_end - 1];
            broken(v, c->where,
                   "tail removed: writer %s signed a checkpoint at wseq %llu, its last record is "
                   "wseq %llu",
                   w->id, (unsigned long long)c->c.seq, (unsigned long long)w->seq);
        }
    }
    /* A checkpoint of a writer with no record left (and more than none signed). */
    for (size_t i = 0; !v->rep.broken && i < v->ncps; i++) {
        const struct vcp *c = &v->cps[i];
        bool known = false;
        for (size_t j = 0; j < v->nws && !known; j++)
            known = strcmp(v->ws[j].id, c->c.writer) == 0;
        /* Named by its last (largest) checkpoint: the most it had written. */
        bool last = i + 1 == v->ncps || strcmp(v->cps[i + 1].c.writer, c->c.writer) != 0;
        /* Purged whole: its last checkpoint says so. */
        bool expired = false;
        if (v->ttl_now && !known && last) {
            /* Every segment of that writer may have gone to TTL. */
            expired = true;
            for (size_t j = i + 1; j-- > 0 && strcmp(v->cps[j].c.writer, c->c.writer) == 0;)
                expired =
                    expired && v->cps[j].c.expires_min > 0 && v->cps[j].c.expires_min <= v->ttl_now;
        }
        if (!known && last && c->c.seq > 0 && !c->c.purged && !expired)
            broken(v, c->where,
                   "every record of writer %s removed: it signed a checkpoint at wseq %llu",
                   c->c.writer, (unsigned long long)c->c.seq);
    }
    *rep = v->rep;
    return !v->rep.broken;
}
