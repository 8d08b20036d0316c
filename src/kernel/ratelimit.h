/* ratelimit.h: per-principal token-bucket throttling (RATE_LIMIT_RPS / RATE_LIMIT_BURST).
 *
 * Like an API Gateway usage plan: every caller has a bucket of `burst`
 * tokens refilled at `rate` tokens per second; a request takes one token or
 * is answered 429 TOO_MANY_REQUESTS with Retry-After. The caller is the
 * authenticated subject when there is one, else the client address.
 *
 * Memory is bounded: at most max_keys buckets, kept in a fixed table split
 * into shards (one mutex each); a full shard forgets its least recently used
 * bucket. Keys are stored as 128-bit SipHash values under a random
 * per-process key, never as text: the table holds no principal names, a long
 * key costs no more than a short one, and nobody can choose keys that collide.
 * Thread-safe: one px_ratelimit is shared by every request thread.
 *
 * Ownership: px_ratelimit_new() allocates everything up front;
 * px_ratelimit_free() releases it. */
#ifndef PX_RATELIMIT_H
#define PX_RATELIMIT_H

#include "request.h"

#define PX_RATELIMIT_DEFAULT_KEYS 65536u

struct px_ratelimit_opts {
    /* Refill rate in tokens per 1000 seconds (RATE_LIMIT_RPS x 1000), so
     * rates below one per second are exact too. > 0. */
    uint64_t rate_milli;
    uint64_t burst;  /* bucket size in tokens, 1..1000000 */
    size_t max_keys; /* buckets tracked at once [PX_RATELIMIT_DEFAULT_KEYS] */
    /* Monotonic clock in microseconds; NULL = CLOCK_MONOTONIC. Tests inject one. */
    int64_t (*now_us)(void *arg);
    void *clock_arg;
};

struct px_ratelimit;

/* Allocates the table. PX_ERR_INVALID for a zero rate or burst out of range,
 * PX_ERR_NOMEM when the table cannot be allocated. */
px_rc px_ratelimit_new(const struct px_ratelimit_opts *opts, struct px_ratelimit **out) PX_WUR;
/* Frees rl. Accepts NULL. */
void px_ratelimit_free(struct px_ratelimit *rl);

/* Takes one token from key's bucket (a new key starts full). true: allowed.
 * false: throttled, *retry_after_s (may be NULL) = whole seconds until a
 * token is back, rounded up, at least 1. A NULL rl allows everything. */
bool px_ratelimit_take(struct px_ratelimit *rl, const char *key, size_t keylen,
                       long *retry_after_s);

/* Buckets tracked now (tests, metrics). */
size_t px_ratelimit_keys(struct px_ratelimit *rl);

/* The dispatcher's gate: takes a token for the request's principal
 * ("sub:" + identity.subject, else "ip:" + source_ip, else one shared
 * bucket for callers without either). When throttled, replaces resp with
 * 429 TOO_MANY_REQUESTS plus Retry-After and returns true. NULL rl: false. */
bool px_ratelimit_request(struct px_ratelimit *rl, struct px_request *req,
                          struct px_response *resp);

#endif
