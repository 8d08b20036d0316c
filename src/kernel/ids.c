/* ids.c: request ids and timestamps (declared in app.h).
 *
 * Kept apart from app.c so that logging and tests need no stores. Request ids
 * are UUID v4 text from a per-thread xoshiro256** generator seeded with
 * getrandom(): no lock and no system call per id. A fork bumps a generation
 * counter so a child never replays its parent's sequence. */
#include "app.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static atomic_uint fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void after_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

static void register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, after_fork_child);
}

struct rng {
    uint64_t s[4];
    unsigned generation;
    bool seeded;
};

static _Thread_local struct rng tls_rng;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r)
{
    uint64_t seed[4] = {0};
    size_t got = 0;
    /* getrandom() of 32 bytes does not block once the pool is initialised;
     * a few tries cover EINTR. */
    for (int tries = 0; tries < 8 && got < sizeof(seed); tries++) {
        ssize_t n = getrandom((unsigned char *)seed + got, sizeof(seed) - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    if (got < sizeof(seed)) {
        /* No kernel entropy: mix what differs between threads and processes. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32;
        x ^= (uint64_t)(uintptr_t)r;
        for (int i = 0; i < 4; i++)
            seed[i] ^= splitmix64(&x);
    }
    memcpy(r->s, seed, sizeof(r->s));
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* xoshiro's one forbidden state */
    r->seeded = true;
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t result = rotl(r->s[1] * 5, 7) * 9;
    uint64_t t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}

void px_new_request_id(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    struct rng *r = &tls_rng;
    unsigned gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
    if (!r->seeded || r->generation != gen) {
        pthread_once(&atfork_once, register_atfork);
        rng_seed(r);
        r->generation = gen;
    }
    unsigned char b[16];
    uint64_t hi = rng_next(r), lo = rng_next(r);
    memcpy(b, &hi, 8);
    memcpy(b + 8, &lo, 8);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10xx */
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0F];
    }
    out[o] = '\0';
}

static void put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

int64_t px_now_rfc3339(char out[25])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t secs = ts.tv_sec;
    gmtime_r(&secs, &tm);
    unsigned year = tm.tm_year + 1900 < 0 ? 0u : (unsigned)(tm.tm_year + 1900) % 10000u;
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    /* YYYY-MM-DDTHH:MM:SS.mmmZ, written by hand: fixed width, no locale */
    put_digits(out, year, 4);
    out[4] = '-';
    put_digits(out + 5, (unsigned)tm.tm_mon + 1, 2);
    out[7] = '-';
    put_digits(out + 8, (unsigned)tm.tm_mday, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)tm.tm_hour, 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)tm.tm_min, 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)tm.tm_sec, 2);
    out[19] = '.';
    put_digits(out + 20, ms, 3);
    out[23] = 'Z';
    out[24] = '\0';
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
