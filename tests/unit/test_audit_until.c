/* test_audit_until.c: px_audit_append_until() against a real SQLite audit
 * store: in time, past the deadline, and with the database write-locked by
 * another connection so the store's done() arrives after the caller left
 * (run under ASan: a waiter freed too early shows up as a use-after-free). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel/app.h"
#include "kernel/arena.h"
#include "store/audit.h"

#include "px_test.h"

#define USER "550e8400-e29b-41d4-a716-446655440000"

static char dir[128];
static char spec[300], path[256];

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int setup(void **state)
{
    (void)state;
    if (px_test_tmpdir(dir, sizeof(dir), "until"))
        return -1;
    snprintf(path, sizeof(path), "%s/audit.db", dir);
    snprintf(spec, sizeof(spec), "sqlite:%s", path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    px_test_rmdir(dir);
    return 0;
}

static struct px_audit_store *open_store(long timeout_ms)
{
    char err[512];
    struct px_audit_store *s = NULL;
    const struct px_audit_opts o = {.create = true, .timeout_ms = timeout_ms};
    assert_int_equal(px_audit_open(spec, &o, &s, err, sizeof(err)), PX_OK);
    return s;
}

static void record(struct px_audit_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->user_id, sizeof(r->user_id), USER);
    snprintf(r->product_id, sizeof(r->product_id), "PROD-101");
    px_new_request_id(r->request_id);
    snprintf(r->correlation_id, sizeof(r->correlation_id), "%s", r->request_id);
    snprintf(r->api_request_id, sizeof(r->api_request_id), "JKJaXmPLvHcESHA=");
    px_now_rfc3339(r->ts);
    r->expires_at = (int64_t)time(NULL) + 86400;
    snprintf(r->action, sizeof(r->action), "PRICE_FETCH");
    snprintf(r->status, sizeof(r->status), "SUCCESS");
}

static void test_in_time(void **state)
{
    (void)state;
    struct px_audit_store *s = open_store(1000);
    struct px_audit_record r;
    record(&r);
    assert_int_equal(px_audit_append_until(s, &r, wall_ms() + 5000), PX_OK);
    record(&r);
    assert_int_equal(px_audit_append_until(s, &r, 0), PX_OK); /* no deadline */
    record(&r);
    assert_int_equal(px_audit_append(s, &r), PX_OK);
    /* An invalid record fails at submit, whatever the deadline. */
    struct px_audit_record bad = r;
    bad.user_id[0] = '\0';
    assert_int_equal(px_audit_append_until(s, &bad, wall_ms() + 5000), PX_ERR_INVALID);
    px_audit_close(s);
}

static void test_past_deadline(void **state)
{
    (void)state;
    struct px_audit_store *s = open_store(1000);
    struct px_audit_record r;
    for (int i = 0; i < 50; i++) {
        record(&r);
        /* Inside the safety margin: gives up at once; done() follows later. */
        px_rc rc = px_audit_append_until(s, &r, wall_ms() + PX_AUDIT_DEADLINE_MARGIN_MS / 2);
        assert_true(rc == PX_ERR_TIMEOUT || rc == PX_OK);
    }
    px_audit_close(s); /* waits for every done(): each frees its waiter */
}

static void test_locked(void **state)
{
    (void)state;
    struct px_audit_store *s = open_store(600);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

    struct px_audit_record r;
    record(&r);
    int64_t t0 = wall_ms();
    assert_int_equal(px_audit_append_until(s, &r, t0 + 500), PX_ERR_TIMEOUT);
    int64_t took = wall_ms() - t0;
    /* 500 ms deadline minus the 200 ms margin; the store would have waited 600. */
    assert_true(took >= 250 && took < 550);

    /* Deadlines around the store's own bound: whichever side lets go first. */
    for (int i = 0; i < 6; i++) {
        record(&r);
        px_rc rc = px_audit_append_until(
            s, &r, wall_ms() + 600 + PX_AUDIT_DEADLINE_MARGIN_MS + (i % 3 - 1) * 5);
        assert_true(rc == PX_ERR_TIMEOUT);
    }
    /* The store's own bound ends a wait without deadline. */
    record(&r);
    t0 = wall_ms();
    assert_int_equal(px_audit_append(s, &r), PX_ERR_TIMEOUT);
    assert_true(wall_ms() - t0 >= 400);

    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    record(&r);
    assert_int_equal(px_audit_append_until(s, &r, wall_ms() + 5000), PX_OK);
    px_audit_close(s);
}

/* done() of the first record holds the store's writer thread until released,
 * so what is submitted meanwhile waits in the queue. */
struct hold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, released;
    int done;
};

static void hold_done(void *arg, px_rc rc)
{
    struct hold *h = arg;
    (void)rc;
    pthread_mutex_lock(&h->mu);
    if (!h->entered) {
        h->entered = true;
        pthread_cond_broadcast(&h->cv);
        while (!h->released)
            pthread_cond_wait(&h->cv, &h->mu);
    }
    h->done++;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* The queue full: the blocking append answers BUSY at once, whatever its
 * deadline (the caller answers 503), and the store works again once the
 * queue drains. */
static void test_queue_full(void **state)
{
    (void)state;
    char err[512];
    struct px_audit_store *s = NULL;
    const struct px_audit_opts o = {.timeout_ms = 5000, .queue_cap = 2};
    assert_int_equal(px_audit_open(spec, &o, &s, err, sizeof(err)), PX_OK);
    struct hold h = {.entered = false};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    struct px_audit_record r;
    record(&r);
    assert_int_equal(px_audit_submit(s, &r, hold_done, &h), PX_OK);
    pthread_mutex_lock(&h.mu);
    while (!h.entered)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    for (int i = 0; i < 2; i++) {
        record(&r);
        assert_int_equal(px_audit_submit(s, &r, hold_done, &h), PX_OK);
    }
    record(&r);
    int64_t t0 = wall_ms();
    assert_int_equal(px_audit_append_until(s, &r, t0 + 5000), PX_ERR_BUSY);
    assert_int_equal(px_audit_append(s, &r), PX_ERR_BUSY);
    assert_true(wall_ms() - t0 < 1000);

    pthread_mutex_lock(&h.mu);
    h.released = true;
    pthread_cond_broadcast(&h.cv);
    while (h.done < 3)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    record(&r);
    assert_int_equal(px_audit_append_until(s, &r, wall_ms() + 5000), PX_OK);
    px_audit_close(s);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
}

static void ignore_done(void *arg, px_rc rc)
{
    (void)arg;
    (void)rc;
}

/* Specs that name no store, and calls without what they need. */
static void test_bad_use(void **state)
{
    (void)state;
    static const char *const bad[] = {"mysql://h/db", "sqlite:", "dynamodb:", "", "SQLITE:x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512] = "";
        struct px_audit_store *s = (struct px_audit_store *)1;
        assert_int_equal(px_audit_open(bad[i], NULL, &s, err, sizeof(err)), PX_ERR_CONFIG);
        assert_null(s);
        assert_non_null(strstr(err, "AUDIT_STORE:"));
    }
    char err[512] = "";
    struct px_audit_store *s = NULL;
    assert_int_equal(px_audit_open(NULL, NULL, &s, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "use sqlite:PATH, "));
    assert_non_null(strstr(err, "dynamodb:TABLE)"));

    s = open_store(1000);
    struct px_audit_record r;
    record(&r);
    assert_int_equal(px_audit_submit(NULL, &r, ignore_done, NULL), PX_ERR_INVALID);
    assert_int_equal(px_audit_submit(s, NULL, ignore_done, NULL), PX_ERR_INVALID);
    assert_int_equal(px_audit_submit(s, &r, NULL, NULL), PX_ERR_INVALID);
    assert_int_equal(px_audit_ping(NULL), PX_ERR_INVALID);
    assert_int_equal(px_audit_ping(s), PX_OK);
    struct px_arena *a = px_arena_new(1 << 16);
    struct px_audit_page page;
    struct px_audit_query both = {.user_id = USER, .product_id = "PROD-101", .limit = 10};
    struct px_audit_query neither = {.limit = 10};
    struct px_audit_query too_many = {.user_id = USER, .limit = 1001};
    struct px_audit_query ok = {.user_id = USER, .limit = 1000};
    assert_int_equal(px_audit_query(s, &both, a, &page), PX_ERR_INVALID);
    assert_int_equal(px_audit_query(s, &neither, a, &page), PX_ERR_INVALID);
    assert_int_equal(px_audit_query(s, &too_many, a, &page), PX_ERR_INVALID);
    assert_int_equal(px_audit_query(NULL, &ok, a, &page), PX_ERR_INVALID);
    assert_int_equal(px_audit_query(s, &ok, a, &page), PX_OK);
    assert_int_equal(page.nitems, 0);
    px_arena_free(a);
    px_audit_close(s);
    px_audit_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_past_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
