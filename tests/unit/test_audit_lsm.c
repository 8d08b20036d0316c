/* test_audit_lsm.c: the lsm: audit store against real RocksDB directories:
 * round trip and reopen, pages by both keys, cursors, bounds, expiry,
 * append-only, two handles on one directory (as two processes would be),
 * a deleted directory, and SIGKILL of a writer process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/arena.h"
#include "store/audit.h"

#include "px_test.h"

static const char USER_A[] = "0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e";
static const char USER_B[] = "11111111-2222-4333-8444-555555555555";

struct fixture {
    char dir[64];
    char store[128]; /* in a sub-directory the store must create */
    char spec[140];
    int64_t now;
};

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[512];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (px_test_tmpdir(f->dir, sizeof(f->dir), "auditlsm")) {
        free(f);
        return -1;
    }
    snprintf(f->store, sizeof(f->store), "%s/var/audit", f->dir);
    snprintf(f->spec, sizeof(f->spec), "lsm:%s", f->store);
    f->now = (int64_t)time(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rm_tree(f->dir);
    free(f);
    return 0;
}

/* Record number i: ts = 2026-01-23T12:00:00.000Z + i ms. */
static struct px_audit_record rec(int i, const char *user, const char *product, int64_t expires)
{
    struct px_audit_record r;
    memset(&r, 0, sizeof(r));
    snprintf(r.user_id, sizeof(r.user_id), "%s", user);
    snprintf(r.product_id, sizeof(r.product_id), "%s", product);
    snprintf(r.request_id, sizeof(r.request_id), "req-%06d", i);
    snprintf(r.correlation_id, sizeof(r.correlation_id), "corr-%d", i);
    snprintf(r.principal, sizeof(r.principal), "%s", i % 2 ? "svc-reader" : "");
    if (i % 2)
        snprintf(r.api_request_id, sizeof(r.api_request_id), "apigw-%d", i);
    unsigned u = (unsigned)i;
    snprintf(r.ts, sizeof(r.ts), "2026-01-23T12:%02u:%02u.%03uZ", u / 60000 % 60, u / 1000 % 60,
             u % 1000);
    r.expires_at = expires;
    snprintf(r.action, sizeof(r.action), "PRICE_FETCH");
    snprintf(r.status, sizeof(r.status), "%s", i % 3 ? "SUCCESS" : "NOT_FOUND");
    return r;
}

static struct px_audit_store *open_store(struct fixture *f)
{
    struct px_audit_opts opts = {.timeout_ms = 2000};
    struct px_audit_store *s = NULL;
    char err[512] = "";
    px_rc rc = px_audit_open(f->spec, &opts, &s, err, sizeof(err));
    if (rc)
        fail_msg("open: %s", err);
    return s;
}

static px_rc query(struct px_audit_store *s, struct px_arena *a, const char *user,
                   const char *product, const char *from, const char *to, long limit,
                   const char *cursor, int64_t now, struct px_audit_page *page)
{
    struct px_audit_query q = {.user_id = user,
                               .product_id = product,
                               .from = from,
                               .to = to,
                               .limit = limit,
                               .cursor = cursor,
                               .now = now};
    return px_audit_query(s, &q, a, page);
}

static uint64_t count(struct px_audit_store *s)
{
    uint64_t n = 0;
    assert_int_equal(px_audit_count(s, &n), PX_OK);
    return n;
}

/* All of a user's (or product's) visible records by paging with cursors; checks order. */
static int page_all(struct px_audit_store *s, const char *user, const char *product, long limit,
                    int64_t now, char ids[][16], int cap)
{
    struct px_arena *a = px_arena_new(8 << 20);
    const char *cursor = NULL;
    char held[400] = "";
    char last_sk[160] = "";
    int n = 0;
    for (int pages = 0; pages < 1000; pages++) {
        struct px_audit_page p;
        assert_int_equal(query(s, a, user, product, NULL, NULL, limit, cursor, now, &p), PX_OK);
        for (size_t i = 0; i < p.nitems; i++) {
            char sk[160];
            snprintf(sk, sizeof(sk), "AUDIT#%s#%s", p.items[i].ts, p.items[i].request_id);
            assert_true(strcmp(sk, last_sk) >= 0);
            snprintf(last_sk, sizeof(last_sk), "%s", sk);
            assert_true(n < cap);
            snprintf(ids[n++], 16, "%.15s", p.items[i].request_id);
        }
        if (!p.next_cursor)
            break;
        assert_int_equal(p.nitems, limit);
        snprintf(held, sizeof(held), "%s", p.next_cursor);
        cursor = held;
        px_arena_reset(a);
    }
    px_arena_free(a);
    return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_round_trip_and_reopen(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f);
    int64_t exp = f->now + 90 * 86400;
    /* Appended newest first: the query must still answer oldest first. */
    struct px_audit_record r[4] = {rec(3, USER_A, "PROD-101", exp), rec(2, USER_A, "PROD-102", exp),
                                   rec(1, USER_A, "PROD-101", exp),
                                   rec(0, USER_B, "PROD-101", exp)};
    for (int i = 0; i < 4; i++)
        assert_int_equal(px_audit_append(s, &r[i]), PX_OK);
    assert_int_equal(px_audit_ping(s), PX_OK);

    struct px_arena *a = px_arena_new(4 << 20);
    struct px_audit_page p;
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 3);
    assert_null(p.next_cursor);
    assert_string_equal(p.items[0].request_id, "req-000001");
    assert_string_equal(p.items[1].request_id, "req-000002");
    assert_string_equal(p.items[2].request_id, "req-000003");
    const struct px_audit_record *got = &p.items[0], *want = &r[2];
    assert_memory_equal(got, want, sizeof(*got)); /* every field back as written */
    assert_string_equal(p.items[1].principal, "");
    assert_string_equal(p.items[1].api_request_id, "");

    assert_int_equal(query(s, a, NULL, "PROD-101", NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 3);
    assert_string_equal(p.items[0].user_id, USER_B);
    assert_string_equal(p.items[1].request_id, "req-000001");
    assert_string_equal(p.items[2].request_id, "req-000003");
    assert_int_equal(query(s, a, NULL, "PROD-102", NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 1);
    assert_int_equal(query(s, a, NULL, "PROD-10", NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 0); /* a prefix of a product id is another product */
    assert_int_equal(count(s), 4);
    px_arena_free(a);
    px_audit_close(s);

    /* The directory outlives the store: reopening finds the same records. */
    s = open_store(f);
    a = px_arena_new(1 << 20);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 3);
    assert_memory_equal(&p.items[0], &r[2], sizeof(r[2]));
    assert_int_equal(count(s), 4);
    px_arena_free(a);
    px_audit_close(s);
}

static void test_pages_both_keys(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f);
    int64_t exp = f->now + 86400;
    for (int i = 0; i < 250; i++) {
        struct px_audit_record r =
            rec(i, i % 5 ? USER_A : USER_B, i % 2 ? "PROD-ODD" : "PROD-EVEN", exp);
        assert_int_equal(px_audit_append(s, &r), PX_OK);
    }
    static char ids[300][16];
    assert_int_equal(page_all(s, USER_A, NULL, 100, f->now, ids, 300), 200);
    assert_string_equal(ids[0], "req-000001");
    assert_string_equal(ids[199], "req-000249");
    assert_int_equal(page_all(s, NULL, "PROD-ODD", 7, f->now, ids, 300), 125);
    assert_string_equal(ids[0], "req-000001");
    assert_string_equal(ids[124], "req-000249");
    /* exactly one page: no cursor */
    assert_int_equal(page_all(s, USER_B, NULL, 50, f->now, ids, 300), 50);

    /* A cursor from a user query positions a product query at the same key. */
    struct px_arena *a = px_arena_new(4 << 20);
    struct px_audit_page p;
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 2, NULL, f->now, &p), PX_OK);
    assert_string_equal(p.items[1].request_id, "req-000002");
    char cur[300];
    snprintf(cur, sizeof(cur), "%s", p.next_cursor);
    assert_int_equal(query(s, a, NULL, "PROD-ODD", NULL, NULL, 1, cur, f->now, &p), PX_OK);
    assert_string_equal(p.items[0].request_id, "req-000003");
    /* Bad cursors are refused, like the sqlite store's. */
    const char *bad[] = {"", "!!!!", "QUJD", "QVVESVQj=", "QVVESVQjAA"};
    for (size_t i = 0; i < PX_COUNTOF(bad); i++)
        assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, bad[i], f->now, &p),
                         PX_ERR_INVALID);
    px_arena_free(a);
    px_audit_close(s);
}

static void test_bounds_and_expiry(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f);
    for (int i = 0; i < 30; i++) {
        /* every third record expired already */
        struct px_audit_record r = rec(i * 1000, USER_A, "PROD-1", i % 3 ? f->now + 60 : f->now);
        assert_int_equal(px_audit_append(s, &r), PX_OK);
    }
    struct px_arena *a = px_arena_new(4 << 20);
    struct px_audit_page p;
    /* 12:00:05..12:00:10 inclusive: seconds 5,7,8,10 are live (6 and 9 expired) */
    assert_int_equal(query(s, a, USER_A, NULL, "2026-01-23T12:00:05Z", "2026-01-23T12:00:10Z", 100,
                           NULL, f->now, &p),
                     PX_OK);
    assert_int_equal(p.nitems, 4);
    assert_string_equal(p.items[0].ts, "2026-01-23T12:00:05.000Z");
    assert_string_equal(p.items[3].ts, "2026-01-23T12:00:10.000Z");
    /* offsets normalised: 13:00:05+01:00 is 12:00:05Z */
    assert_int_equal(
        query(s, a, NULL, "PROD-1", "2026-01-23T13:00:05+01:00", NULL, 100, NULL, f->now, &p),
        PX_OK);
    assert_int_equal(p.nitems, 17);
    /* expired records do not count towards the limit: 20 live, pages of 10 */
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 10);
    assert_non_null(p.next_cursor);
    char cur[300];
    snprintf(cur, sizeof(cur), "%s", p.next_cursor);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, cur, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 10);
    assert_null(p.next_cursor);
    /* one second earlier nothing has expired; one minute later everything has */
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 100, NULL, f->now - 1, &p), PX_OK);
    assert_int_equal(p.nitems, 30);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 100, NULL, f->now + 60, &p), PX_OK);
    assert_int_equal(p.nitems, 0);
    assert_int_equal(count(s), 30); /* hidden, not deleted */
    assert_int_equal(query(s, a, USER_A, NULL, "yesterday", NULL, 10, NULL, f->now, &p),
                     PX_ERR_INVALID);
    px_arena_free(a);
    px_audit_close(s);
}

struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, by_rc[PX_ERR__COUNT];
};

static void count_done(void *arg, px_rc rc)
{
    struct counter *c = arg;
    pthread_mutex_lock(&c->mu);
    c->done++;
    c->by_rc[rc]++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void test_append_only(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f);
    struct px_audit_record r = rec(1, USER_A, "PROD-1", f->now + 60);
    assert_int_equal(px_audit_append(s, &r), PX_OK);
    /* the same keys again, other content: refused, the first stays */
    struct px_audit_record again = r;
    snprintf(again.status, sizeof(again.status), "ERROR");
    assert_int_equal(px_audit_append(s, &again), PX_ERR_CONFLICT);
    /* twice in one batch: the first is written, the second refused */
    struct counter c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct px_audit_record twin = rec(2, USER_A, "PROD-1", f->now + 60);
    for (int i = 0; i < 2; i++)
        assert_int_equal(px_audit_submit(s, &twin, count_done, &c), PX_OK);
    pthread_mutex_lock(&c.mu);
    while (c.done < 2)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    assert_int_equal(c.by_rc[PX_OK], 1);
    assert_int_equal(c.by_rc[PX_ERR_CONFLICT], 1);
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page p;
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 2);
    assert_string_equal(p.items[0].status, r.status);
    assert_int_equal(count(s), 2);
    /* malformed records never reach the store */
    struct px_audit_record bad = rec(3, USER_A, "PROD-1", f->now + 60);
    snprintf(bad.ts, sizeof(bad.ts), "2026-01-23T12:00:00Z");
    assert_int_equal(px_audit_append(s, &bad), PX_ERR_INVALID);
    px_arena_free(a);
    px_audit_close(s);
}

static void test_two_handles_one_directory(void **state)
{
    struct fixture *f = *state;
    /* Two handles in one process take the sub-store LOCKs exactly as two
     * processes do: each claims its own and reads the other's as a secondary. */
    struct px_audit_store *s1 = open_store(f), *s2 = open_store(f);
    char w0[200], w1[200];
    snprintf(w0, sizeof(w0), "%s/w-00/CURRENT", f->store);
    snprintf(w1, sizeof(w1), "%s/w-01/CURRENT", f->store);
    assert_int_equal(access(w0, F_OK), 0);
    assert_int_equal(access(w1, F_OK), 0);
    int64_t exp = f->now + 60;
    for (int i = 0; i < 60; i++) {
        struct px_audit_record r = rec(i, USER_A, i % 2 ? "PROD-1" : "PROD-2", exp);
        assert_int_equal(px_audit_append(i % 3 ? s1 : s2, &r), PX_OK);
    }
    static char ids[100][16];
    /* Both handles see every record, merged in sort-key order, across pages. */
    for (int h = 0; h < 2; h++) {
        struct px_audit_store *s = h ? s2 : s1;
        assert_int_equal(page_all(s, USER_A, NULL, 7, f->now, ids, 100), 60);
        for (int i = 0; i < 60; i++) {
            char want[16];
            snprintf(want, sizeof(want), "req-%06d", i);
            assert_string_equal(ids[i], want);
        }
        assert_int_equal(page_all(s, NULL, "PROD-1", 4, f->now, ids, 100), 30);
        assert_int_equal(count(s), 60);
    }
    /* Records written after a reader opened are seen too (it catches up). */
    struct px_audit_record late = rec(100, USER_A, "PROD-1", exp);
    assert_int_equal(px_audit_append(s2, &late), PX_OK);
    assert_int_equal(page_all(s1, USER_A, NULL, 1000, f->now, ids, 100), 61);
    px_audit_close(s2);
    /* A handle opened later reuses the free sub-store, not a third one. */
    struct px_audit_store *s3 = open_store(f);
    char w2[200];
    snprintf(w2, sizeof(w2), "%s/w-02", f->store);
    assert_int_equal(access(w2, F_OK), -1);
    assert_int_equal(count(s3), 61);
    assert_int_equal(page_all(s3, NULL, "PROD-1", 1000, f->now, ids, 100), 31);
    px_audit_close(s3);
    px_audit_close(s1);
}

static void test_directory_deleted(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f);
    struct px_audit_record r = rec(1, USER_A, "PROD-1", f->now + 60);
    assert_int_equal(px_audit_append(s, &r), PX_OK);
    assert_int_equal(px_audit_ping(s), PX_OK);
    /* Deleted under a running store: no write may be reported durable into
     * files nobody can find any more, and readiness says so. */
    rm_tree(f->store);
    r = rec(2, USER_A, "PROD-1", f->now + 60);
    assert_int_equal(px_audit_append(s, &r), PX_ERR_IO);
    assert_int_equal(px_audit_ping(s), PX_ERR_UNAVAILABLE);
    r = rec(3, USER_A, "PROD-1", f->now + 60);
    assert_int_equal(px_audit_append(s, &r), PX_ERR_IO);
    /* nor is it silently recreated empty */
    assert_int_equal(access(f->store, F_OK), -1);
    px_audit_close(s);
}

static void test_sigkill_writer(void **state)
{
    struct fixture *f = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct px_audit_opts opts = {.timeout_ms = 2000};
        struct px_audit_store *s = NULL;
        char err[256];
        if (px_audit_open(f->spec, &opts, &s, err, sizeof(err)))
            _exit(3);
        for (int i = 0; i < 1000000; i++) {
            struct px_audit_record r = rec(i, USER_A, "PROD-1", f->now + 600);
            if (px_audit_append(s, &r))
                _exit(4);
            /* "answered": only after the store said durable */
            if (write(fds[1], &i, sizeof(i)) != (ssize_t)sizeof(i))
                _exit(5);
        }
        _exit(0);
    }
    close(fds[1]);
    int last = -1, v;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (read(fds[0], &v, sizeof(v)) != (ssize_t)sizeof(v))
            break;
        last = v;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (last < 300 && t.tv_sec - t0.tv_sec < 20);
    kill(pid, SIGKILL);
    /* answers already in the pipe were given before the kill */
    while (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
        last = v;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    assert_true(last >= 0);

    struct px_audit_store *s = open_store(f);
    static char ids[1200][16];
    int n = page_all(s, USER_A, NULL, 1000, f->now, ids, 1200);
    assert_true(n >= last + 1);
    for (int i = 0; i <= last; i++) {
        char want[16];
        snprintf(want, sizeof(want), "req-%06d", i);
        assert_string_equal(ids[i], want);
    }
    px_audit_close(s);
}

/* A write's record (CONTRACT §8: no user, keyed by its actor, with before /
 * after) is kept whole beside look-ups, read back by product, and counted. */
static void test_write_records(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f);
    struct px_audit_record look = rec(1, USER_A, "PROD-W", f->now + 3600);
    struct px_audit_record w = rec(2, "", "PROD-W", f->now + 3600);
    snprintf(w.action, sizeof(w.action), "PRICE_CHANGE");
    snprintf(w.principal, sizeof(w.principal), "alice");
    /* Larger than any look-up field: the value grows past its fixed part. */
    char *after = malloc(100 * 1024);
    assert_non_null(after);
    memset(after, 'x', 100 * 1024 - 1);
    memcpy(after, "{\"d\":\"", 6);
    memcpy(after + 100 * 1024 - 3, "\"}", 3);
    w.before = "{\"price\":{\"amount\":\"99.99\",\"currency\":\"USD\"}}";
    w.after = after;
    struct px_audit_record b = rec(3, "", "PROD-W", f->now + 3600);
    snprintf(b.action, sizeof(b.action), "PRODUCT_CREATE");
    snprintf(b.principal, sizeof(b.principal), "bob");
    b.after = "{\"name\":\"n\"}";
    assert_int_equal(px_audit_append(s, &look), PX_OK);
    assert_int_equal(px_audit_append(s, &w), PX_OK);
    assert_int_equal(px_audit_append(s, &b), PX_OK);
    /* Append-only holds for writes too: the same actor key again is refused. */
    assert_int_equal(px_audit_append(s, &w), PX_ERR_CONFLICT);
    assert_int_equal(count(s), 3);

    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page page;
    assert_int_equal(query(s, a, NULL, "PROD-W", NULL, NULL, 10, NULL, f->now, &page), PX_OK);
    assert_int_equal(page.nitems, 3);
    assert_null(page.items[0].before);
    assert_null(page.items[0].after);
    assert_string_equal(page.items[0].user_id, USER_A);
    assert_string_equal(page.items[1].action, "PRICE_CHANGE");
    assert_string_equal(page.items[1].user_id, "");
    assert_string_equal(page.items[1].principal, "alice");
    assert_string_equal(page.items[1].before, w.before);
    assert_string_equal(page.items[1].after, after);
    assert_null(page.items[2].before);
    assert_string_equal(page.items[2].after, b.after);
    /* The user's own look-ups are not mixed with writes that have no user. */
    px_arena_reset(a);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, NULL, f->now, &page), PX_OK);
    assert_int_equal(page.nitems, 1);
    px_arena_free(a);
    free(after);
    px_audit_close(s);
}

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = NULL;
    char err[512] = "";
    assert_int_equal(px_audit_open("lsm:", NULL, &s, err, sizeof(err)), PX_ERR_CONFIG);
    /* a file where the directory should be */
    char file[200];
    snprintf(file, sizeof(file), "%s/file", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    char spec[220];
    snprintf(spec, sizeof(spec), "lsm:%s/sub", file);
    assert_int_not_equal(px_audit_open(spec, NULL, &s, err, sizeof(err)), PX_OK);
    assert_null(s);
    assert_non_null(strstr(err, "AUDIT_STORE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages_both_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_one_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
