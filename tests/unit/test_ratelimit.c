/* test_ratelimit.c: token-bucket arithmetic with an injected clock, the
 * bounded table, and the dispatcher's 429. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kernel/errors.h"
#include "kernel/ratelimit.h"

static int64_t fake_now;

static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static struct px_ratelimit *make(uint64_t rate_milli, uint64_t burst, size_t keys)
{
    const struct px_ratelimit_opts o = {
        .rate_milli = rate_milli, .burst = burst, .max_keys = keys, .now_us = fake_clock};
    struct px_ratelimit *rl = NULL;
    assert_int_equal(px_ratelimit_new(&o, &rl), PX_OK);
    assert_non_null(rl);
    return rl;
}

static bool take(struct px_ratelimit *rl, const char *key, long *retry)
{
    return px_ratelimit_take(rl, key, strlen(key), retry);
}

static void test_bad_options(void **state)
{
    (void)state;
    struct px_ratelimit *rl = (struct px_ratelimit *)1;
    struct px_ratelimit_opts o = {.rate_milli = 0, .burst = 1};
    assert_int_equal(px_ratelimit_new(&o, &rl), PX_ERR_INVALID);
    assert_null(rl);
    o.rate_milli = 1000;
    o.burst = 0;
    assert_int_equal(px_ratelimit_new(&o, &rl), PX_ERR_INVALID);
    o.burst = 1000001;
    assert_int_equal(px_ratelimit_new(&o, &rl), PX_ERR_INVALID);
    assert_int_equal(px_ratelimit_new(NULL, &rl), PX_ERR_INVALID);
    /* NULL limiter: allows everything, never throttles a request. */
    long retry = 7;
    assert_true(px_ratelimit_take(NULL, "k", 1, &retry));
    assert_int_equal(retry, 0);
    assert_int_equal(px_ratelimit_keys(NULL), 0);
    px_ratelimit_free(NULL);
}

static void test_burst_then_throttle(void **state)
{
    (void)state;
    fake_now = 1000000;
    struct px_ratelimit *rl = make(2000, 5, 64); /* 2 rps, burst 5 */
    long retry = -1;
    for (int i = 0; i < 5; i++)
        assert_true(take(rl, "ip:10.0.0.1", &retry));
    assert_int_equal(retry, 0);
    assert_false(take(rl, "ip:10.0.0.1", &retry));
    /* 2 rps: one token is 0.5 s away, rounded up to a whole second. */
    assert_int_equal(retry, 1);
    /* Throttled attempts take nothing: still throttled, same wait. */
    assert_false(take(rl, "ip:10.0.0.1", &retry));
    assert_int_equal(retry, 1);
    px_ratelimit_free(rl);
}

static void test_refill(void **state)
{
    (void)state;
    fake_now = 5000000;
    struct px_ratelimit *rl = make(1000, 3, 64); /* 1 rps, burst 3 */
    for (int i = 0; i < 3; i++)
        assert_true(take(rl, "a", NULL));
    assert_false(take(rl, "a", NULL));
    fake_now += 999999; /* one microsecond short of a token */
    assert_false(take(rl, "a", NULL));
    fake_now += 1;
    assert_true(take(rl, "a", NULL));
    assert_false(take(rl, "a", NULL));
    /* A long pause refills to the burst, never past it. */
    fake_now += 3600LL * 1000000;
    for (int i = 0; i < 3; i++)
        assert_true(take(rl, "a", NULL));
    assert_false(take(rl, "a", NULL));
    /* A clock stepping back adds nothing and breaks nothing. */
    fake_now -= 10 * 1000000;
    assert_false(take(rl, "a", NULL));
    fake_now += 10 * 1000000 + 1000000;
    assert_true(take(rl, "a", NULL));
    px_ratelimit_free(rl);
}

static void test_retry_after_rounding(void **state)
{
    (void)state;
    long retry = 0;
    fake_now = 0;
    /* 0.4 rps: an empty bucket is 2.5 s from a token -> 3. */
    struct px_ratelimit *rl = make(400, 1, 64);
    assert_true(take(rl, "k", &retry));
    assert_false(take(rl, "k", &retry));
    assert_int_equal(retry, 3);
    fake_now += 500000; /* 2.0 s to go -> exactly 2 */
    assert_false(take(rl, "k", &retry));
    assert_int_equal(retry, 2);
    fake_now += 1; /* 1.999999 s -> 2 */
    assert_false(take(rl, "k", &retry));
    assert_int_equal(retry, 2);
    fake_now += 1999998; /* 1 us to go -> at least 1 */
    assert_false(take(rl, "k", &retry));
    assert_int_equal(retry, 1);
    fake_now += 1;
    assert_true(take(rl, "k", &retry));
    px_ratelimit_free(rl);

    /* 3 rps: 1/3 s rounds up to 1; a fresh bucket of a huge rate never waits. */
    rl = make(3000, 1, 64);
    assert_true(take(rl, "k", &retry));
    assert_false(take(rl, "k", &retry));
    assert_int_equal(retry, 1);
    px_ratelimit_free(rl);
    rl = make(1000000000ULL, 1000000, 64);
    for (int i = 0; i < 1000; i++)
        assert_true(take(rl, "k", NULL));
    px_ratelimit_free(rl);
}

static void test_per_key_isolation(void **state)
{
    (void)state;
    fake_now = 0;
    struct px_ratelimit *rl = make(1000, 2, 64);
    assert_true(take(rl, "sub:alice", NULL));
    assert_true(take(rl, "sub:alice", NULL));
    assert_false(take(rl, "sub:alice", NULL));
    /* Others are untouched, including one that differs only in its kind. */
    assert_true(take(rl, "sub:bob", NULL));
    assert_true(take(rl, "ip:alice", NULL));
    assert_true(take(rl, "sub:alicf", NULL));
    assert_true(take(rl, "sub:bob", NULL));
    assert_false(take(rl, "sub:bob", NULL));
    /* Keys are bytes: an embedded NUL is part of the key. */
    assert_true(px_ratelimit_take(rl, "sub:alice\0x", 11, NULL));
    assert_int_equal(px_ratelimit_keys(rl), 5);
    px_ratelimit_free(rl);
}

static void test_eviction_under_cap(void **state)
{
    (void)state;
    fake_now = 0;
    struct px_ratelimit *rl = make(1000, 1, 8); /* one shard of 8: exact LRU */
    char key[32];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "ip:10.0.0.%d", i);
        assert_true(take(rl, key, NULL));
    }
    assert_int_equal(px_ratelimit_keys(rl), 8);
    /* Touch key 0 so that key 1 is now the least recently used. */
    assert_false(take(rl, "ip:10.0.0.0", NULL));
    assert_true(take(rl, "ip:10.0.0.100", NULL)); /* evicts key 1 */
    assert_int_equal(px_ratelimit_keys(rl), 8);
    /* Key 0 kept its (empty) bucket; key 1 was forgotten and starts full. */
    assert_false(take(rl, "ip:10.0.0.0", NULL));
    assert_true(take(rl, "ip:10.0.0.1", NULL)); /* evicts key 2 */
    assert_true(take(rl, "ip:10.0.0.2", NULL)); /* evicts key 3 */
    assert_false(take(rl, "ip:10.0.0.100", NULL));

    /* Many more keys than the cap: memory stays at the cap. */
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "ip:172.16.%d.%d", i / 256, i % 256);
        assert_true(take(rl, key, NULL));
    }
    assert_int_equal(px_ratelimit_keys(rl), 8);
    px_ratelimit_free(rl);

    /* The sharded layout never holds more than max_keys either. */
    rl = make(1000, 1, 1000);
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "sub:user-%d", i);
        assert_true(take(rl, key, NULL));
    }
    assert_true(px_ratelimit_keys(rl) <= 1000);
    assert_true(px_ratelimit_keys(rl) >= 900);
    px_ratelimit_free(rl);
}

struct hammer {
    struct px_ratelimit *rl;
    int allowed;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 20000; i++) {
        if (px_ratelimit_take(h->rl, "shared", 6, NULL))
            h->allowed++;
    }
    return NULL;
}

static void test_threads_share_one_bucket(void **state)
{
    (void)state;
    fake_now = 0; /* the clock stands still: exactly `burst` tokens exist */
    struct px_ratelimit *rl = make(1000, 1000, 64);
    struct hammer h[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){.rl = rl};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += h[i].allowed;
    }
    assert_int_equal(total, 1000);
    px_ratelimit_free(rl);
}

static const char *header(const struct px_response *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].key, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void test_request_gate(void **state)
{
    (void)state;
    fake_now = 0;
    struct px_ratelimit *rl = make(1000, 1, 64);
    struct px_arena *a = px_arena_new(64 * 1024);
    assert_non_null(a);
    struct px_request req = {.arena = a,
                             .method = "GET",
                             .path = "/price",
                             .request_id = "rid-1",
                             .source_ip = "127.0.0.9"};
    struct px_response resp = {0};
    assert_false(px_ratelimit_request(NULL, &req, &resp));
    assert_false(px_ratelimit_request(rl, &req, &resp));
    assert_int_equal(resp.status, 0);
    assert_true(px_ratelimit_request(rl, &req, &resp));
    assert_int_equal(resp.status, 429);
    assert_null(resp.audit);
    assert_string_equal(header(&resp, "Retry-After"), "1");
    assert_non_null(strstr(resp.body, "\"code\":\"TOO_MANY_REQUESTS\""));
    assert_non_null(strstr(resp.body, "\"requestId\":\"rid-1\""));

    /* The same address authenticated as a subject has a bucket of its own,
     * and a subject keeps its bucket from any address. */
    memset(&resp, 0, sizeof(resp));
    req.identity.subject = "alice";
    assert_false(px_ratelimit_request(rl, &req, &resp));
    req.source_ip = "10.9.9.9";
    assert_true(px_ratelimit_request(rl, &req, &resp));
    assert_int_equal(resp.status, 429);
    /* No subject and no address: one shared bucket. */
    memset(&resp, 0, sizeof(resp));
    req.identity.subject = NULL;
    req.source_ip = NULL;
    assert_false(px_ratelimit_request(rl, &req, &resp));
    assert_true(px_ratelimit_request(rl, &req, &resp));
    px_arena_free(a);
    px_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_burst_then_throttle),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_retry_after_rounding),
        cmocka_unit_test(test_per_key_isolation),
        cmocka_unit_test(test_eviction_under_cap),
        cmocka_unit_test(test_threads_share_one_bucket),
        cmocka_unit_test(test_request_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
