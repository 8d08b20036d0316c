/* ratelimit.c: token buckets in a fixed, sharded LRU table (see ratelimit.h).
 *
 * Arithmetic is integral and exact: a bucket holds nano-tokens, and a rate of
 * R tokens per 1000 s adds exactly R nano-tokens per microsecond. */
#include "ratelimit.h"

#include "errors.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define ONE_TOKEN  1000000000LL /* nano-tokens */
#define KEY_BYTES  16           /* keyed 128-bit hash kept per bucket */
#define MAX_SHARDS 16u
#define MAX_BURST  1000000ULL
#define MAX_RATE   1000000000000ULL /* 10^9 tokens per second, in tokens per 1000 s */
#define NIL        UINT32_MAX

struct bucket {
    uint8_t key[KEY_BYTES];
    int64_t tokens;  /* nano-tokens, 0..burst * ONE_TOKEN */
    int64_t last_us; /* clock at the last refill */
    uint32_t chain;  /* next bucket in the same hash slot */
    uint32_t prev;   /* LRU neighbours; head = most recently used */
    uint32_t next;
};

struct shard {
    pthread_mutex_t mu;
    struct bucket *b; /* cap buckets; [0, used) are live */
    uint32_t *slots;  /* nslots heads of hash chains */
    uint32_t cap, used, nslots;
    uint32_t head, tail;
};

struct px_ratelimit {
    uint64_t k0, k1; /* SipHash key, random per process */
    int64_t rate;    /* nano-tokens per microsecond */
    int64_t full;    /* burst in nano-tokens */
    int64_t (*now_us)(void *arg);
    void *clock_arg;
    unsigned nshards;
    struct shard shards[MAX_SHARDS];
};

static int64_t mono_us(void *arg)
{
    PX_UNUSED(arg);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- SipHash-2-4 with a 128-bit output (Aumasson and Bernstein) ----
 * Keyed with random bytes, so nobody choosing keys (addresses, subjects) can
 * make two of them share a bucket or a hash chain. */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

static void siphash128(uint64_t k0, uint64_t k1, const uint8_t *in, size_t n,
                       uint8_t out[KEY_BYTES])
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    v1 ^= 0xee;
    size_t full = n - n % 8;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = rd64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < n % 8; i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xee;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    wr64(out, v0 ^ v1 ^ v2 ^ v3);
    v1 ^= 0xdd;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    wr64(out + 8, v0 ^ v1 ^ v2 ^ v3);
}

static px_rc random_key(uint64_t *k0, uint64_t *k1)
{
    uint8_t k[16];
    size_t got = 0;
    for (int tries = 0; got < sizeof(k) && tries < 100; tries++) {
        ssize_t r = getrandom(k + got, sizeof(k) - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno != EINTR)
            return PX_ERR_INTERNAL;
    }
    if (got < sizeof(k))
        return PX_ERR_INTERNAL;
    *k0 = rd64(k);
    *k1 = rd64(k + 8);
    return PX_OK;
}

px_rc px_ratelimit_new(const struct px_ratelimit_opts *opts, struct px_ratelimit **out)
{
    *out = NULL;
    if (!opts || opts->rate_milli == 0 || opts->rate_milli > MAX_RATE || opts->burst == 0 ||
        opts->burst > MAX_BURST)
        return PX_ERR_INVALID;
    size_t keys = opts->max_keys ? opts->max_keys : PX_RATELIMIT_DEFAULT_KEYS;
    if (keys > UINT32_MAX / 4)
        return PX_ERR_INVALID;
    struct px_ratelimit *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return PX_ERR_NOMEM;
    if (random_key(&rl->k0, &rl->k1) != PX_OK) {
        free(rl);
        return PX_ERR_INTERNAL;
    }
    rl->rate = (int64_t)opts->rate_milli;
    rl->full = (int64_t)opts->burst * ONE_TOKEN;
    rl->now_us = opts->now_us ? opts->now_us : mono_us;
    rl->clock_arg = opts->clock_arg;
    /* Small tables (tests) keep one shard, so their LRU order is exact. */
    rl->nshards = keys >= 16 * MAX_SHARDS ? MAX_SHARDS : 1;
    uint32_t per = (uint32_t)(keys / rl->nshards);
    uint32_t nslots = 1;
    while (nslots < per)
        nslots <<= 1;
    px_rc rc = PX_OK;
    unsigned made = 0;
    for (; made < rl->nshards; made++) {
        struct shard *s = &rl->shards[made];
        s->b = calloc(per, sizeof(*s->b));
        s->slots = malloc((size_t)nslots * sizeof(*s->slots));
        if (!s->b || !s->slots || pthread_mutex_init(&s->mu, NULL) != 0) {
            free(s->b);
            free(s->slots);
            s->b = NULL;
            s->slots = NULL;
            rc = PX_ERR_NOMEM;
            break;
        }
        for (uint32_t i = 0; i < nslots; i++)
            s->slots[i] = NIL;
        s->cap = per;
        s->nslots = nslots;
        s->head = s->tail = NIL;
    }
    if (rc) {
        rl->nshards = made;
        px_ratelimit_free(rl);
        return rc;
    }
    *out = rl;
    return PX_OK;
}

void px_ratelimit_free(struct px_ratelimit *rl)
{
    if (!rl)
        return;
    for (unsigned i = 0; i < rl->nshards; i++) {
        struct shard *s = &rl->shards[i];
        pthread_mutex_destroy(&s->mu);
        free(s->b);
        free(s->slots);
    }
    free(rl);
}

/* ---- one shard (caller holds s->mu) ---- */

static void lru_unlink(struct shard *s, uint32_t i)
{
    struct bucket *b = &s->b[i];
    if (b->prev != NIL)
        s->b[b->prev].next = b->next;
    else
        s->head = b->next;
    if (b->next != NIL)
        s->b[b->next].prev = b->prev;
    else
        s->tail = b->prev;
    b->prev = b->next = NIL;
}

static void lru_push(struct shard *s, uint32_t i)
{
    struct bucket *b = &s->b[i];
    b->prev = NIL;
    b->next = s->head;
    if (s->head != NIL)
        s->b[s->head].prev = i;
    s->head = i;
    if (s->tail == NIL)
        s->tail = i;
}

static void chain_unlink(struct shard *s, uint32_t i)
{
    uint32_t slot = rd32(s->b[i].key) & (s->nslots - 1);
    uint32_t *link = &s->slots[slot];
    /* Chains are as long as the load factor (at most 1) makes them. */
    for (uint32_t guard = 0; *link != NIL && guard <= s->cap; guard++) {
        if (*link == i) {
            *link = s->b[i].chain;
            s->b[i].chain = NIL;
            return;
        }
        link = &s->b[*link].chain;
    }
}

static uint32_t find(struct shard *s, const uint8_t *key)
{
    uint32_t i = s->slots[rd32(key) & (s->nslots - 1)];
    for (uint32_t guard = 0; i != NIL && guard <= s->cap; guard++) {
        if (memcmp(s->b[i].key, key, KEY_BYTES) == 0)
            return i;
        i = s->b[i].chain;
    }
    return NIL;
}

/* A bucket for a new key: a fresh slot, or the least recently used one. */
static uint32_t claim(struct shard *s, const uint8_t *key)
{
    uint32_t i;
    if (s->used < s->cap) {
        i = s->used++;
    } else {
        /* Forgetting a bucket forgives what it owed; the cap bounds memory,
         * and the key that is least recently seen is the cheapest to forgive. */
        i = s->tail;
        lru_unlink(s, i);
        chain_unlink(s, i);
    }
    struct bucket *b = &s->b[i];
    memcpy(b->key, key, KEY_BYTES);
    uint32_t slot = rd32(key) & (s->nslots - 1);
    b->chain = s->slots[slot];
    s->slots[slot] = i;
    lru_push(s, i);
    return i;
}

static void refill(const struct px_ratelimit *rl, struct bucket *b, int64_t now)
{
    if (now <= b->last_us)
        return; /* a clock that stands still or steps back adds nothing */
    uint64_t elapsed = (uint64_t)(now - b->last_us);
    uint64_t room = (uint64_t)(rl->full - b->tokens);
    /* elapsed * rate <= room whenever elapsed <= room / rate: no overflow. */
    if (elapsed > room / (uint64_t)rl->rate)
        b->tokens = rl->full;
    else
        b->tokens += (int64_t)(elapsed * (uint64_t)rl->rate);
    b->last_us = now;
}

bool px_ratelimit_take(struct px_ratelimit *rl, const char *key, size_t keylen, long *retry_after_s)
{
    if (retry_after_s)
        *retry_after_s = 0;
    if (!rl)
        return true;
    uint8_t d[KEY_BYTES];
    siphash128(rl->k0, rl->k1, (const uint8_t *)(key ? key : ""), key ? keylen : 0, d);
    struct shard *s = &rl->shards[rd32(d + 12) % rl->nshards];
    int64_t now = rl->now_us(rl->clock_arg);
    bool allowed;
    pthread_mutex_lock(&s->mu);
    uint32_t i = find(s, d);
    if (i == NIL) {
        i = claim(s, d);
        s->b[i].tokens = rl->full;
        s->b[i].last_us = now;
    } else {
        refill(rl, &s->b[i], now);
        if (s->head != i) {
            lru_unlink(s, i);
            lru_push(s, i);
        }
    }
    struct bucket *b = &s->b[i];
    allowed = b->tokens >= ONE_TOKEN;
    if (allowed) {
        b->tokens -= ONE_TOKEN;
    } else if (retry_after_s) {
        int64_t deficit = ONE_TOKEN - b->tokens;
        int64_t wait_us = (deficit + rl->rate - 1) / rl->rate;
        long secs = (long)((wait_us + 999999) / 1000000);
        *retry_after_s = secs < 1 ? 1 : secs;
    }
    pthread_mutex_unlock(&s->mu);
    return allowed;
}

size_t px_ratelimit_keys(struct px_ratelimit *rl)
{
    if (!rl)
        return 0;
    size_t n = 0;
    for (unsigned i = 0; i < rl->nshards; i++) {
        pthread_mutex_lock(&rl->shards[i].mu);
        n += rl->shards[i].used;
        pthread_mutex_unlock(&rl->shards[i].mu);
    }
    return n;
}

bool px_ratelimit_request(struct px_ratelimit *rl, struct px_request *req, struct px_response *resp)
{
    if (!rl)
        return false;
    const char *kind = "ip:";
    const char *who = req->source_ip;
    if (req->identity.subject && req->identity.subject[0]) {
        kind = "sub:";
        who = req->identity.subject;
    }
    if (!who) {
        kind = "anonymous";
        who = "";
    }
    /* TENANCY=on: one bucket per tenant and caller, so a subject acting for
     * several tenants spends each tenant's allowance apart ("t:<tenant>|" is
     * unambiguous: tenant names hold no '|'). Off: the key it always was. */
    const char *t = req->tenant ? req->tenant : "";
    size_t tl = req->tenant ? strlen(t) + 3 : 0;
    size_t kl = strlen(kind), wl = strlen(who);
    char *key = px_arena_alloc(req->arena, tl + kl + wl + 1);
    long retry = 0;
    bool ok;
    if (key) {
        if (tl) {
            memcpy(key, "t:", 2);
            memcpy(key + 2, t, tl - 3);
            key[tl - 1] = '|';
        }
        memcpy(key + tl, kind, kl);
        memcpy(key + tl + kl, who, wl + 1);
        ok = px_ratelimit_take(rl, key, tl + kl + wl, &retry);
    } else {
        /* No room even for the key: the request could not be answered anyway. */
        ok = true;
    }
    if (ok)
        return false;
    memset(resp, 0, sizeof(*resp));
    px_error_response(req, resp, PX_E_TOO_MANY_REQUESTS,
                      "too many requests: the rate limit of this caller is exhausted", NULL, 0);
    const char *value = px_arena_printf(req->arena, "%ld", retry);
    /* Without room for the header the 429 itself still stands. */
    if (value && px_response_header(resp, "Retry-After", value) != PX_OK)
        return true;
    return true;
}
