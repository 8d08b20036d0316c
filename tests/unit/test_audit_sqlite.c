/* test_audit_sqlite.c: the embedded audit store against real SQLite files:
 * round trip, ordering, pages, bounds, append-only, group commit, failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/buf.h"
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/arena.h"
#include "kernel/b64.h"
#include "store/audit.h"

#include "px_test.h"

/* Internals of audit_sqlite.c (PX_STATIC, reachable in unit-test builds). */
void px_audit_sqlite_stats(void *impl, uint64_t *batches, uint64_t *records, uint64_t *largest);
/* base64url without padding, as cursors are spelled: the encoded length, 0 when out is too small.
 */
static size_t px_audit_b64url_encode(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    size_t len = 0;
    return px_b64_encode(in, n, PX_B64_URL, 0, out, outlen, &len) == PX_OK ? len : 0;
}

static const char USER_A[] = "0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e";
static const char USER_B[] = "11111111-2222-4333-8444-555555555555";

struct fixture {
    char dir[64];
    char db[128]; /* in a sub-directory the store must create */
    char spec[140];
    int64_t now;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (px_test_tmpdir(f->dir, sizeof(f->dir), "audit")) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/var/audit.db", f->dir);
    snprintf(f->spec, sizeof(f->spec), "sqlite:%s", f->db);
    f->now = (int64_t)time(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    px_test_unlink_sqlite(f->db);
    char sub[80];
    snprintf(sub, sizeof(sub), "%s/var", f->dir);
    rmdir(sub);
    rmdir(f->dir);
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

static struct px_audit_store *open_store(struct fixture *f, long timeout_ms)
{
    struct px_audit_opts opts = {.timeout_ms = timeout_ms};
    struct px_audit_store *s = NULL;
    char err[256] = "";
    px_rc rc = px_audit_open(f->spec, &opts, &s, err, sizeof(err));
    if (rc)
        fail_msg("open: %s", err);
    return s;
}

static long count_rows(const char *db)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*) FROM audit", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
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

/* ---- completion counter for submit() --------------------------------------------------- */

struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int by_rc[PX_ERR__COUNT];
};

static void counter_init(struct counter *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void counter_destroy(struct counter *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void count_done(void *arg, px_rc rc)
{
    struct counter *c = arg;
    pthread_mutex_lock(&c->mu);
    c->done++;
    if (rc >= 0 && rc < PX_ERR__COUNT)
        c->by_rc[rc]++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Waits (at most 10 s) until n completions arrived; returns how many did. */
static int counter_wait(struct counter *c, int n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&c->mu);
    while (c->done < n)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) != 0)
            break;
    int got = c->done;
    pthread_mutex_unlock(&c->mu);
    return got;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_ts_normaliser(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {"2026-01-23T12:00:00Z", "2026-01-23T12:00:00.000Z"},
        {"2026-01-23T12:00:00.123Z", "2026-01-23T12:00:00.123Z"},
        {"2026-01-23T12:00:00.1Z", "2026-01-23T12:00:00.100Z"},
        {"2026-01-23T12:00:00.123456789Z", "2026-01-23T12:00:00.123Z"},
        {"2026-01-23t12:00:00z", "2026-01-23T12:00:00.000Z"},
        {"2026-01-23T13:30:00+01:30", "2026-01-23T12:00:00.000Z"},
        {"2026-01-23T07:00:00.5-05:00", "2026-01-23T12:00:00.500Z"},
        {"2026-01-01T00:30:00+01:00", "2025-12-31T23:30:00.000Z"},
        {"2024-02-28T23:00:00-01:00", "2024-02-29T00:00:00.000Z"},
        {"2023-02-28T23:00:00-01:00", "2023-03-01T00:00:00.000Z"},
        {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"},
        {"9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"},
        {"2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"},
        {"2023-02-29T00:00:00Z", NULL},
        {"2026-13-01T00:00:00Z", NULL},
        {"2026-01-32T00:00:00Z", NULL},
        {"2026-01-23T24:00:00Z", NULL},
        {"2026-01-23T12:60:00Z", NULL},
        {"2026-01-23T12:00:60Z", NULL},
        {"2026-01-23T12:00:00", NULL},
        {"2026-01-23T12:00:00.Z", NULL},
        {"2026-01-23T12:00:00.1234567890Z", NULL},
        {"2026-01-23T12:00:00+0100", NULL},
        {"2026-01-23T12:00:00+01:00x", NULL},
        {"2026-01-23 12:00:00Z", NULL},
        {"2026-01-23", NULL},
        {"0000-01-01T00:00:00+00:01", NULL},
        {"9999-12-31T23:59:59-00:01", NULL},
        {"", NULL},
        {"2026-1-23T12:00:00Z", NULL},
        {"+026-01-23T12:00:00Z", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[25];
        px_rc rc = px_audit_ts_ms(cases[i].in, out);
        if (cases[i].out) {
            if (rc)
                fail_msg("\"%s\" refused", cases[i].in);
            assert_string_equal(out, cases[i].out);
        } else if (rc != PX_ERR_INVALID) {
            fail_msg("\"%s\" accepted as \"%s\"", cases[i].in, out);
        }
    }
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f, 2000);
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
    /* every field back as written */
    const struct px_audit_record *got = &p.items[0], *want = &r[2];
    assert_string_equal(got->user_id, want->user_id);
    assert_string_equal(got->product_id, want->product_id);
    assert_string_equal(got->request_id, want->request_id);
    assert_string_equal(got->correlation_id, want->correlation_id);
    assert_string_equal(got->principal, "svc-reader");
    assert_string_equal(got->api_request_id, "apigw-1");
    assert_string_equal(got->ts, "2026-01-23T12:00:00.001Z");
    assert_int_equal(got->expires_at, exp);
    assert_string_equal(got->action, "PRICE_FETCH");
    assert_string_equal(got->status, "SUCCESS");
    assert_string_equal(p.items[1].principal, "");
    assert_string_equal(p.items[1].api_request_id, "");
    assert_string_equal(p.items[2].api_request_id, "apigw-3");

    assert_int_equal(query(s, a, NULL, "PROD-101", NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 3);
    assert_string_equal(p.items[0].user_id, USER_B);
    assert_string_equal(p.items[1].request_id, "req-000001");
    assert_string_equal(p.items[2].request_id, "req-000003");
    assert_int_equal(query(s, a, NULL, "PROD-102", NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 1);
    assert_int_equal(query(s, a, NULL, "PROD-999", NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 0);
    assert_null(p.next_cursor);
    px_arena_free(a);
    px_audit_close(s);

    /* The file outlives the store: reopening finds the same records. */
    s = open_store(f, 2000);
    a = px_arena_new(1 << 20);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 3);
    px_arena_free(a);
    px_audit_close(s);
}

static void test_pages(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f, 2000);
    int64_t exp = f->now + 86400;
    struct counter c;
    counter_init(&c);
    for (int i = 0; i < 250; i++) {
        struct px_audit_record r = rec(i, USER_A, i % 2 ? "PROD-ODD" : "PROD-EVEN", exp);
        assert_int_equal(px_audit_submit(s, &r, count_done, &c), PX_OK);
    }
    assert_int_equal(counter_wait(&c, 250), 250);
    assert_int_equal(c.by_rc[PX_OK], 250);
    counter_destroy(&c);

    struct px_arena *a = px_arena_new(4 << 20);
    const size_t want[] = {100, 100, 50};
    const char *cursor = NULL;
    int next = 0;
    for (size_t pg = 0; pg < 3; pg++) {
        struct px_audit_page p;
        assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 100, cursor, f->now, &p), PX_OK);
        assert_int_equal(p.nitems, want[pg]);
        for (size_t i = 0; i < p.nitems; i++) {
            char id[32];
            snprintf(id, sizeof(id), "req-%06d", next++);
            assert_string_equal(p.items[i].request_id, id);
        }
        if (pg < 2) {
            assert_non_null(p.next_cursor);
            assert_null(strpbrk(p.next_cursor, "+/=")); /* base64url, no padding */
        } else {
            assert_null(p.next_cursor);
        }
        cursor = p.next_cursor;
    }
    assert_int_equal(next, 250);

    /* The same by product: 125 odd records, pages of 100 and 25. */
    struct px_audit_page p;
    assert_int_equal(query(s, a, NULL, "PROD-ODD", NULL, NULL, 100, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 100);
    assert_string_equal(p.items[0].request_id, "req-000001");
    assert_non_null(p.next_cursor);
    assert_int_equal(query(s, a, NULL, "PROD-ODD", NULL, NULL, 100, p.next_cursor, f->now, &p),
                     PX_OK);
    assert_int_equal(p.nitems, 25);
    assert_string_equal(p.items[24].request_id, "req-000249");
    assert_null(p.next_cursor);

    /* Exactly limit records left: no cursor pointing at an empty page. */
    assert_int_equal(query(s, a, NULL, "PROD-EVEN", NULL, NULL, 125, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 125);
    assert_null(p.next_cursor);
    px_arena_free(a);
    px_audit_close(s);
}

static void test_time_bounds(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f, 2000);
    int64_t exp = f->now + 86400;
    const int at[] = {0, 499, 500, 1000, 1001, 2000}; /* ms after 12:00:00 */
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        struct px_audit_record r = rec(at[i], USER_A, "PROD-101", exp);
        assert_int_equal(px_audit_append(s, &r), PX_OK);
    }
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page p;
    /* Both bounds inclusive, whatever precision or zone they are written in. */
    assert_int_equal(query(s, a, USER_A, NULL, "2026-01-23T12:00:00.5Z", "2026-01-23T12:00:01Z",
                           100, NULL, f->now, &p),
                     PX_OK);
    assert_int_equal(p.nitems, 2);
    assert_string_equal(p.items[0].ts, "2026-01-23T12:00:00.500Z");
    assert_string_equal(p.items[1].ts, "2026-01-23T12:00:01.000Z");
    assert_int_equal(
        query(s, a, NULL, "PROD-101", "2026-01-23T13:00:00.500+01:00", NULL, 100, NULL, f->now, &p),
        PX_OK);
    assert_int_equal(p.nitems, 4);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, "2026-01-23T12:00:00Z", 100, NULL, f->now, &p),
                     PX_OK);
    assert_int_equal(p.nitems, 1);
    assert_int_equal(query(s, a, USER_A, NULL, "2026-01-23T12:00:03Z", NULL, 100, NULL, f->now, &p),
                     PX_OK);
    assert_int_equal(p.nitems, 0);
    /* A cursor inside the range moves the lower bound; one before it does not. */
    assert_int_equal(query(s, a, USER_A, NULL, "2026-01-23T12:00:00.5Z", NULL, 1, NULL, f->now, &p),
                     PX_OK);
    assert_int_equal(p.nitems, 1);
    assert_non_null(p.next_cursor);
    assert_int_equal(
        query(s, a, USER_A, NULL, "2026-01-23T12:00:00.5Z", NULL, 100, p.next_cursor, f->now, &p),
        PX_OK);
    assert_int_equal(p.nitems, 3);
    assert_string_equal(p.items[0].ts, "2026-01-23T12:00:01.000Z");

    assert_int_equal(query(s, a, USER_A, NULL, "yesterday", NULL, 100, NULL, f->now, &p),
                     PX_ERR_INVALID);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, "2026-01-23", 100, NULL, f->now, &p),
                     PX_ERR_INVALID);
    px_arena_free(a);
    px_audit_close(s);
}

static void test_expired_hidden(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f, 2000);
    for (int i = 0; i < 6; i++) {
        /* expires_at: now-2, now-1, now, now+1, now+2, now+3 */
        struct px_audit_record r = rec(i, USER_A, "PROD-101", f->now - 2 + i);
        assert_int_equal(px_audit_append(s, &r), PX_OK);
    }
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page p;
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 2, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 2);
    assert_string_equal(p.items[0].request_id, "req-000003");
    assert_non_null(p.next_cursor);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 2, p.next_cursor, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 1);
    assert_null(p.next_cursor);
    assert_int_equal(query(s, a, NULL, "PROD-101", NULL, NULL, 100, NULL, f->now + 3, &p), PX_OK);
    assert_int_equal(p.nitems, 0);
    px_arena_free(a);
    px_audit_close(s);
    assert_int_equal(count_rows(f->db), 6); /* hidden, not deleted */
}

static void test_bad_cursor(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f, 2000);
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page p;
    char enc[400], raw[200];
    const char *bad[8];
    size_t nbad = 0;
    bad[nbad++] = "!!!!";
    bad[nbad++] = "QUFBQQ=="; /* padded */
    bad[nbad++] = "A";        /* impossible length */
    bad[nbad++] = "";
    static char e1[64], e2[400], e3[64];
    px_audit_b64url_encode((const unsigned char *)"hello", 5, e1, sizeof(e1));
    bad[nbad++] = e1; /* not a sort key */
    memset(raw, 'x', sizeof(raw));
    memcpy(raw, "AUDIT#", 6);
    px_audit_b64url_encode((const unsigned char *)raw, 161, e2, sizeof(e2));
    bad[nbad++] = e2; /* too long */
    px_audit_b64url_encode((const unsigned char *)"AUDIT#\x01x", 8, e3, sizeof(e3));
    bad[nbad++] = e3; /* control byte */
    for (size_t i = 0; i < nbad; i++)
        if (query(s, a, USER_A, NULL, NULL, NULL, 10, bad[i], f->now, &p) != PX_ERR_INVALID)
            fail_msg("cursor \"%s\" accepted", bad[i]);
    /* "AUDIT#2026A" is QVVESVQjMjAyNkE; a last "F" would decode the same but for
     * two non-zero spare bits: one key, one spelling. */
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, "QVVESVQjMjAyNkE", f->now, &p),
                     PX_OK);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, "QVVESVQjMjAyNkF", f->now, &p),
                     PX_ERR_INVALID);
    px_audit_b64url_encode((const unsigned char *)"AUDIT#2026-01-23T12:00:00.000Z#r", 32, enc,
                           sizeof(enc));
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, enc, f->now, &p), PX_OK);
    /* The other query errors. */
    assert_int_equal(query(s, a, USER_A, "PROD-1", NULL, NULL, 10, NULL, f->now, &p),
                     PX_ERR_INVALID);
    assert_int_equal(query(s, a, NULL, NULL, NULL, NULL, 10, NULL, f->now, &p), PX_ERR_INVALID);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 0, NULL, f->now, &p), PX_ERR_INVALID);
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 1001, NULL, f->now, &p), PX_ERR_INVALID);
    px_arena_free(a);
    px_audit_close(s);
}

static void expect_refused(sqlite3 *h, const char *sql)
{
    char *msg = NULL;
    assert_int_not_equal(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK);
    assert_non_null(msg);
    if (!strstr(msg, "audit records are append-only"))
        fail_msg("%s: %s", sql, msg);
    sqlite3_free(msg);
}

static void test_append_only(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f, 2000);
    struct px_audit_record r = rec(7, USER_A, "PROD-101", f->now + 86400);
    assert_int_equal(px_audit_append(s, &r), PX_OK);

    /* The same (pk, sk) again, other content: refused, the first one stays. */
    struct px_audit_record dup = r;
    snprintf(dup.status, sizeof(dup.status), "ERROR");
    snprintf(dup.product_id, sizeof(dup.product_id), "PROD-666");
    assert_int_equal(px_audit_append(s, &dup), PX_ERR_CONFLICT);
    /* A conflict fails that record only; the store goes on. */
    struct px_audit_record other = rec(8, USER_A, "PROD-101", f->now + 86400);
    assert_int_equal(px_audit_append(s, &other), PX_OK);

    /* Submitted together they likely share a batch: the duplicate fails alone. */
    struct counter c;
    counter_init(&c);
    struct px_audit_record r9 = rec(9, USER_A, "PROD-101", f->now + 86400);
    assert_int_equal(px_audit_submit(s, &r9, count_done, &c), PX_OK);
    assert_int_equal(px_audit_submit(s, &dup, count_done, &c), PX_OK);
    assert_int_equal(px_audit_submit(s, &r9, count_done, &c), PX_OK);
    assert_int_equal(counter_wait(&c, 3), 3);
    assert_int_equal(c.by_rc[PX_OK], 1);
    assert_int_equal(c.by_rc[PX_ERR_CONFLICT], 2);
    counter_destroy(&c);

    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 2000);
    expect_refused(h, "UPDATE audit SET status = 'ERROR'");
    expect_refused(h, "UPDATE audit SET expires_at = 0 WHERE seq = 1");
    expect_refused(h, "DELETE FROM audit WHERE seq = 1");
    expect_refused(h, "DELETE FROM audit");
    expect_refused(h, "INSERT OR REPLACE INTO audit (pk, sk, gsi1pk, gsi1sk, action, status,"
                      " user_id, product_id, request_id, correlation_id, ts, expires_at)"
                      " SELECT pk, sk, gsi1pk, gsi1sk, action, 'ERROR', user_id, product_id,"
                      " request_id, correlation_id, ts, expires_at FROM audit WHERE seq = 1");
    expect_refused(h, "INSERT OR REPLACE INTO audit (seq, pk, sk, gsi1pk, gsi1sk, action, status,"
                      " user_id, product_id, request_id, correlation_id, ts, expires_at)"
                      " VALUES (1, 'USER#x', 'AUDIT#x', 'PRODUCT#x', 'AUDIT#x', 'A', 'S', 'u',"
                      " 'p', 'r', 'c', 't', 0)");
    expect_refused(h, "INSERT INTO audit (pk, sk, gsi1pk, gsi1sk, action, status, user_id,"
                      " product_id, request_id, correlation_id, ts, expires_at)"
                      " SELECT pk, sk, gsi1pk, gsi1sk, action, status, user_id, product_id,"
                      " request_id, correlation_id, ts, expires_at FROM audit WHERE seq = 1"
                      " ON CONFLICT (pk, sk) DO UPDATE SET status = 'ERROR'");
    sqlite3_close(h);

    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page p;
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 3);
    assert_string_equal(p.items[0].status, r.status);
    assert_string_equal(p.items[0].product_id, "PROD-101");
    assert_int_equal(query(s, a, NULL, "PROD-666", NULL, NULL, 10, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 0);
    px_arena_free(a);
    px_audit_close(s);
}

/* A write's record (CONTRACT §8): keyed by its actor, found by product, its
 * before/after kept as sent; a look-up's JSON form is exactly what it was. */
static void test_write_record(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f, 2000);
    struct px_audit_record w = rec(5, USER_A, "PROD-101", f->now + 60);
    w.user_id[0] = '\0';
    snprintf(w.principal, sizeof(w.principal), "alice");
    snprintf(w.action, sizeof(w.action), "PRICE_CHANGE");
    snprintf(w.status, sizeof(w.status), "SUCCESS");
    w.before = "{\"price\":{\"amount\":\"99.99\",\"currency\":\"USD\"}}";
    w.after = "{\"price\":{\"amount\":\"12.50\",\"currency\":\"EUR\"}}";
    assert_int_equal(px_audit_append(s, &w), PX_OK);
    struct px_audit_record l = rec(6, USER_A, "PROD-101", f->now + 60);
    assert_int_equal(px_audit_append(s, &l), PX_OK);

    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page p;
    assert_int_equal(query(s, a, NULL, "PROD-101", NULL, NULL, 10, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 2);
    assert_string_equal(p.items[0].before, w.before);
    assert_string_equal(p.items[0].after, w.after);
    assert_null(p.items[1].before);
    struct px_buf b;
    px_buf_init(&b, 1 << 16);
    p.items[0].expires_at = p.items[1].expires_at = 0; /* the clock's part, fixed for the text */
    assert_int_equal(px_audit_record_json(&p.items[0], &b), PX_OK);
    assert_string_equal(
        b.data, "{\"pk\":\"ACTOR#alice\",\"sk\":\"AUDIT#2026-01-23T12:00:00.005Z#req-000005\","
                "\"gsi1pk\":\"PRODUCT#PROD-101\",\"gsi1sk\":\"AUDIT#2026-01-23T12:00:00.005Z#req-"
                "000005\",\"action\":\"PRICE_CHANGE\",\"status\":\"SUCCESS\",\"productId\":"
                "\"PROD-101\",\"requestId\":\"req-000005\",\"correlationId\":\"corr-5\",\"ts\":"
                "\"2026-01-23T12:00:00.005Z\",\"principal\":\"alice\",\"apiRequestId\":"
                "\"apigw-5\",\"before\":{\"price\":{\"amount\":\"99.99\",\"currency\":\"USD\"}},"
                "\"after\":{\"price\":{\"amount\":\"12.50\",\"currency\":\"EUR\"}},"
                "\"expiresAt\":0}");
    px_buf_clear(&b);
    assert_int_equal(px_audit_record_json(&p.items[1], &b), PX_OK);
    /* The look-up's form from before records could carry changes, byte for byte. */
    assert_string_equal(
        b.data, "{\"pk\":\"USER#0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e\",\"sk\":\"AUDIT#2026-01-"
                "23T12:00:00.006Z#req-000006\","
                "\"gsi1pk\":\"PRODUCT#PROD-101\",\"gsi1sk\":\"AUDIT#2026-01-23T12:00:00.006Z#req-"
                "000006\",\"action\":\"PRICE_FETCH\",\"status\":\"NOT_FOUND\",\"userId\":"
                "\"0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e"
                "\",\"productId\":\"PROD-101\",\"requestId\":\"req-000006\",\"correlationId\":"
                "\"corr-6\",\"ts\":\"2026-01-23T12:00:00.006Z\",\"expiresAt\":0}");
    px_buf_free(&b);
    px_arena_free(a);
    px_audit_close(s);
}

static void test_invalid_records(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = open_store(f, 2000);
    struct px_audit_record r = rec(1, USER_A, "PROD-101", f->now + 60);
    struct counter c;
    counter_init(&c);
    struct px_audit_record bad = r;
    snprintf(bad.ts, sizeof(bad.ts), "2026-01-23T12:00:00Z"); /* not the stored form */
    assert_int_equal(px_audit_submit(s, &bad, count_done, &c), PX_ERR_INVALID);
    bad = r;
    bad.user_id[0] = '\0';
    bad.principal[0] = '\0'; /* neither a user (look-up) nor an actor (write) */
    assert_int_equal(px_audit_submit(s, &bad, count_done, &c), PX_ERR_INVALID);
    bad = r;
    memset(bad.request_id, 'r', sizeof(bad.request_id)); /* no terminator */
    assert_int_equal(px_audit_submit(s, &bad, count_done, &c), PX_ERR_INVALID);
    px_audit_close(s);
    assert_int_equal(c.done, 0); /* refused at submit: done never called */
    counter_destroy(&c);
}

struct appender {
    void *impl;
    int base;
    int ok;
};

static void *appender_main(void *arg)
{
    struct appender *ap = arg;
    struct counter c;
    counter_init(&c);
    for (int i = 0; i < 200; i++) {
        char user[40];
        snprintf(user, sizeof(user), "00000000-0000-4000-8000-%012d", ap->base);
        struct px_audit_record r = rec(ap->base * 1000 + i, user, "PROD-101", INT64_MAX);
        /* One at a time per thread, as a request thread would. */
        if (px_audit_sqlite_ops.submit(ap->impl, &r, count_done, &c) != PX_OK)
            break;
        if (counter_wait(&c, i + 1) != i + 1)
            break;
    }
    ap->ok = c.by_rc[PX_OK];
    counter_destroy(&c);
    return NULL;
}

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    struct px_audit_opts opts = {.timeout_ms = 5000};
    void *impl = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_sqlite_ops.open(f->db, &opts, &impl, err, sizeof(err)), PX_OK);
    pthread_t t[8];
    struct appender ap[8];
    for (int i = 0; i < 8; i++) {
        ap[i] = (struct appender){.impl = impl, .base = i, .ok = 0};
        assert_int_equal(pthread_create(&t[i], NULL, appender_main, &ap[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(ap[i].ok, 200);
    }
    uint64_t batches, records, largest;
    px_audit_sqlite_stats(impl, &batches, &records, &largest);
    print_message("group commit: %llu records in %llu batches, largest %llu\n",
                  (unsigned long long)records, (unsigned long long)batches,
                  (unsigned long long)largest);
    assert_int_equal(records, 1600);
    assert_true(batches < 1600);
    assert_true(largest > 1);
    px_audit_sqlite_ops.close(impl);
    assert_int_equal(count_rows(f->db), 1600); /* all durable, in the file */
}

static void test_close_drains(void **state)
{
    struct fixture *f = *state;
    struct px_audit_opts opts = {.timeout_ms = 10000, .max_batch = 64};
    void *impl = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_sqlite_ops.open(f->db, &opts, &impl, err, sizeof(err)), PX_OK);
    struct counter c;
    counter_init(&c);
    for (int i = 0; i < 500; i++) {
        struct px_audit_record r = rec(i, USER_A, "PROD-101", INT64_MAX);
        assert_int_equal(px_audit_sqlite_ops.submit(impl, &r, count_done, &c), PX_OK);
    }
    px_audit_sqlite_ops.close(impl); /* returns only when every record is settled */
    assert_int_equal(c.done, 500);
    assert_int_equal(c.by_rc[PX_OK], 500);
    counter_destroy(&c);
    assert_int_equal(count_rows(f->db), 500);
}

/* Another process holds the write lock: records fail within the bound
 * (TIMEOUT), the queue refuses work past its cap (BUSY), and writing resumes
 * once the lock is gone. */
static void test_lock_timeout_and_queue_cap(void **state)
{
    struct fixture *f = *state;
    struct px_audit_opts opts = {.timeout_ms = 300, .queue_cap = 4};
    void *impl = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_sqlite_ops.open(f->db, &opts, &impl, err, sizeof(err)), PX_OK);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    struct counter c;
    counter_init(&c);
    int accepted = 0, busy_at = -1;
    for (int i = 0; i < 10 && busy_at < 0; i++) {
        struct px_audit_record r = rec(i, USER_A, "PROD-101", INT64_MAX);
        px_rc rc = px_audit_sqlite_ops.submit(impl, &r, count_done, &c);
        if (rc == PX_OK)
            accepted++;
        else if (rc == PX_ERR_BUSY)
            busy_at = i;
        else
            fail_msg("submit: %s", px_strerror(rc));
    }
    /* 4 waiting, plus those the writer took into the batch it is stuck on. */
    assert_true(busy_at >= 4 && busy_at <= 8);
    assert_int_equal(counter_wait(&c, accepted), accepted);
    assert_int_equal(c.by_rc[PX_ERR_TIMEOUT], accepted);
    assert_int_equal(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);

    struct px_audit_record r = rec(99, USER_A, "PROD-101", INT64_MAX);
    assert_int_equal(px_audit_sqlite_ops.submit(impl, &r, count_done, &c), PX_OK);
    assert_int_equal(counter_wait(&c, accepted + 1), accepted + 1);
    assert_int_equal(c.by_rc[PX_OK], 1);
    px_audit_sqlite_ops.close(impl);
    counter_destroy(&c);
    assert_int_equal(count_rows(f->db), 1);
}

/* ---- a done() that holds the writer thread: batches made to order ------------------------ */

/* done() runs on the writer thread: while the first record's done() waits for
 * release, everything submitted queues up and becomes the next batch, whole. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, released;
};

struct slot {
    struct gate *g; /* non-NULL: block in done() until released */
    bool done;
    px_rc rc;
};

static void gate_init(struct gate *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

static void slot_done(void *arg, px_rc rc)
{
    struct slot *sl = arg;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    if (sl->g) {
        pthread_mutex_lock(&sl->g->mu);
        sl->g->entered = true;
        pthread_cond_broadcast(&sl->g->cv);
        while (!sl->g->released)
            pthread_cond_wait(&sl->g->cv, &sl->g->mu);
        pthread_mutex_unlock(&sl->g->mu);
    }
    pthread_mutex_lock(&mu);
    sl->rc = rc;
    sl->done = true;
    pthread_mutex_unlock(&mu);
}

static void gate_wait_entered(struct gate *g)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &deadline) != 0)
            break;
    bool ok = g->entered;
    pthread_mutex_unlock(&g->mu);
    assert_true(ok);
}

static void gate_release(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->released = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* Submits record i for product with slot sl; the writer is held by the gate. */
static px_rc submit_slot(void *impl, int i, const char *product, struct slot *sl)
{
    struct px_audit_record r = rec(i, USER_A, product, INT64_MAX);
    return px_audit_sqlite_ops.submit(impl, &r, slot_done, sl);
}

/* Waits (at most 10 s) for done() of every slot in sl[0..n). */
static void slots_wait(struct slot *sl, int n)
{
    for (int t = 0; t < 1000; t++) {
        bool all = true;
        for (int i = 0; i < n; i++)
            all = all && __atomic_load_n(&sl[i].done, __ATOMIC_SEQ_CST);
        if (all)
            return;
        usleep(10000);
    }
    fail_msg("done() missing");
}

/* One record in the middle of a batch fails with an error that is not its own
 * (an SQL error raised by a trigger, as a full or broken file would): the
 * whole transaction is rolled back, every record of the batch reports the
 * failure, none of them is in the file, and the store writes again after. */
static void test_rollback_mid_batch(void **state)
{
    struct fixture *f = *state;
    struct px_audit_opts opts = {.timeout_ms = 5000};
    void *impl = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_sqlite_ops.open(f->db, &opts, &impl, err, sizeof(err)), PX_OK);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    assert_int_equal(sqlite3_exec(h,
                                  "CREATE TRIGGER test_fail BEFORE INSERT ON audit"
                                  " WHEN NEW.product_id = 'PROD-FAIL'"
                                  " BEGIN SELECT abs(-9223372036854775808); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);

    struct gate g;
    gate_init(&g);
    struct slot sl[6] = {{.g = &g}};
    assert_int_equal(submit_slot(impl, 0, "PROD-101", &sl[0]), PX_OK);
    gate_wait_entered(&g); /* record 0 is durable; the writer waits in its done() */
    static const char *const products[] = {"PROD-101", "PROD-102", "PROD-FAIL", "PROD-103",
                                           "PROD-104"};
    for (int i = 1; i <= 5; i++)
        assert_int_equal(submit_slot(impl, i, products[i - 1], &sl[i]), PX_OK);
    gate_release(&g);
    slots_wait(sl, 6);
    assert_int_equal(sl[0].rc, PX_OK);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(sl[i].rc, PX_ERR_IO);
    assert_int_equal(count_rows(f->db), 1);
    uint64_t batches, records, largest;
    px_audit_sqlite_stats(impl, &batches, &records, &largest);
    assert_int_equal(records, 1); /* the failed batch is not counted as written */

    /* The connection was replaced after the failure; the next batch commits. */
    struct slot after = {0};
    assert_int_equal(submit_slot(impl, 6, "PROD-105", &after), PX_OK);
    slots_wait(&after, 1);
    assert_int_equal(after.rc, PX_OK);
    px_audit_sqlite_ops.close(impl);
    gate_destroy(&g);
    sqlite3_close(h);
    assert_int_equal(count_rows(f->db), 2);
}

/* A record that waited in the queue past the store's bound (the writer was
 * busy) is failed with TIMEOUT and not written, while a fresh record of the
 * same batch is: "failed" never turns into "durable" later. */
static void test_expired_in_queue(void **state)
{
    struct fixture *f = *state;
    struct px_audit_opts opts = {.timeout_ms = 300};
    void *impl = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_sqlite_ops.open(f->db, &opts, &impl, err, sizeof(err)), PX_OK);
    struct gate g;
    gate_init(&g);
    struct slot sl[3] = {{.g = &g}};
    assert_int_equal(submit_slot(impl, 0, "PROD-101", &sl[0]), PX_OK);
    gate_wait_entered(&g);
    assert_int_equal(submit_slot(impl, 1, "PROD-102", &sl[1]), PX_OK);
    usleep(400 * 1000); /* past the 300 ms bound */
    assert_int_equal(submit_slot(impl, 2, "PROD-103", &sl[2]), PX_OK);
    gate_release(&g);
    slots_wait(sl, 3);
    assert_int_equal(sl[0].rc, PX_OK);
    assert_int_equal(sl[1].rc, PX_ERR_TIMEOUT);
    assert_int_equal(sl[2].rc, PX_OK);
    px_audit_sqlite_ops.close(impl);
    gate_destroy(&g);

    struct px_audit_store *s = open_store(f, 2000);
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page p;
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 2);
    assert_string_equal(p.items[0].request_id, "req-000000");
    assert_string_equal(p.items[1].request_id, "req-000002");
    px_arena_free(a);
    px_audit_close(s);
}

/* Past queue_cap waiting records, submit refuses at once with BUSY (the
 * transports answer 503) and calls no done(); the waiting ones are written. */
static void test_queue_full(void **state)
{
    struct fixture *f = *state;
    struct px_audit_opts opts = {.timeout_ms = 5000, .queue_cap = 3};
    void *impl = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_sqlite_ops.open(f->db, &opts, &impl, err, sizeof(err)), PX_OK);
    struct gate g;
    gate_init(&g);
    struct slot sl[5] = {{.g = &g}};
    assert_int_equal(submit_slot(impl, 0, "PROD-101", &sl[0]), PX_OK);
    gate_wait_entered(&g);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(submit_slot(impl, i, "PROD-101", &sl[i]), PX_OK);
    assert_int_equal(submit_slot(impl, 4, "PROD-101", &sl[4]), PX_ERR_BUSY);
    gate_release(&g);
    slots_wait(sl, 4);
    for (int i = 0; i <= 3; i++)
        assert_int_equal(sl[i].rc, PX_OK);
    px_audit_sqlite_ops.close(impl);
    assert_false(sl[4].done);
    gate_destroy(&g);
    assert_int_equal(count_rows(f->db), 4);
}

struct closer {
    void *impl;
    bool returned;
};

static void *closer_main(void *arg)
{
    struct closer *c = arg;
    px_audit_sqlite_ops.close(c->impl);
    __atomic_store_n(&c->returned, true, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Submits while the store is closing: refused with UNAVAILABLE (no done()),
 * while everything accepted before is still written and answered before
 * close returns. */
static void test_submit_while_closing(void **state)
{
    struct fixture *f = *state;
    struct px_audit_opts opts = {.timeout_ms = 5000};
    void *impl = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_sqlite_ops.open(f->db, &opts, &impl, err, sizeof(err)), PX_OK);
    struct gate g;
    gate_init(&g);
    enum { N = 64 };
    struct slot sl[N] = {{.g = &g}};
    assert_int_equal(submit_slot(impl, 0, "PROD-101", &sl[0]), PX_OK);
    gate_wait_entered(&g);
    struct closer c = {.impl = impl};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, closer_main, &c), 0);
    /* Until close() has marked the store stopping, records are still taken. */
    int n = 1;
    px_rc rc = PX_OK;
    for (; n < N; n++) {
        rc = submit_slot(impl, n, "PROD-101", &sl[n]);
        if (rc)
            break;
        usleep(5000);
    }
    assert_int_equal(rc, PX_ERR_UNAVAILABLE);
    assert_false(__atomic_load_n(&c.returned, __ATOMIC_SEQ_CST)); /* held by the gate */
    gate_release(&g);
    pthread_join(t, NULL);
    for (int i = 0; i < n; i++) {
        assert_true(sl[i].done);
        assert_int_equal(sl[i].rc, PX_OK);
    }
    assert_false(sl[n].done);
    gate_destroy(&g);
    assert_int_equal(count_rows(f->db), n);
}

/* Child process: the file-size limit makes the next commit fail (EFBIG). The
 * record must be reported failed, readiness must drop, and writing must come
 * back once the limit is lifted. Returns a bit per failed expectation. */
static int efbig_child(const char *db)
{
    int bad = 0;
    struct px_audit_opts opts = {.timeout_ms = 2000};
    void *impl = NULL;
    char err[256] = "";
    if (px_audit_sqlite_ops.open(db, &opts, &impl, err, sizeof(err)) != PX_OK)
        return 1;
    struct counter c;
    counter_init(&c);
    struct px_audit_record r0 = rec(0, USER_A, "PROD-101", INT64_MAX);
    if (px_audit_sqlite_ops.submit(impl, &r0, count_done, &c) || counter_wait(&c, 1) != 1 ||
        c.by_rc[PX_OK] != 1)
        bad |= 2;

    struct rlimit lim;
    getrlimit(RLIMIT_FSIZE, &lim);
    struct rlimit tiny = {.rlim_cur = 1, .rlim_max = lim.rlim_max};
    if (setrlimit(RLIMIT_FSIZE, &tiny) != 0)
        bad |= 4;
    struct px_audit_record r1 = rec(1, USER_A, "PROD-101", INT64_MAX);
    if (px_audit_sqlite_ops.submit(impl, &r1, count_done, &c) || counter_wait(&c, 2) != 2 ||
        c.by_rc[PX_ERR_IO] != 1)
        bad |= 8;
    if (px_audit_sqlite_ops.ping(impl) == PX_OK)
        bad |= 16;

    setrlimit(RLIMIT_FSIZE, &lim);
    struct px_audit_record r2 = rec(2, USER_A, "PROD-101", INT64_MAX);
    if (px_audit_sqlite_ops.submit(impl, &r2, count_done, &c) || counter_wait(&c, 3) != 3 ||
        c.by_rc[PX_OK] != 2)
        bad |= 32;
    /* Readiness returns: the ping above asked the writer to reconnect. */
    bool ready = false;
    for (int i = 0; i < 100 && !ready; i++) {
        ready = px_audit_sqlite_ops.ping(impl) == PX_OK;
        if (!ready)
            usleep(10000);
    }
    if (!ready)
        bad |= 64;
    px_audit_sqlite_ops.close(impl);
    counter_destroy(&c);
    return bad;
}

static void test_write_failure(void **state)
{
    struct fixture *f = *state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(efbig_child(f->db));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child expectations failed: mask %d", WEXITSTATUS(status));

    struct px_audit_store *s = open_store(f, 2000);
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_page p;
    assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, NULL, f->now, &p), PX_OK);
    assert_int_equal(p.nitems, 2); /* the failed record is not there */
    assert_string_equal(p.items[0].request_id, "req-000000");
    assert_string_equal(p.items[1].request_id, "req-000002");
    px_arena_free(a);
    px_audit_close(s);
}

/* The schema of version 1 exactly as it shipped, to build old files by hand. */
static const char V1_SCHEMA[] =
    "CREATE TABLE audit ("
    " seq INTEGER PRIMARY KEY,"
    " pk TEXT NOT NULL, sk TEXT NOT NULL, gsi1pk TEXT NOT NULL, gsi1sk TEXT NOT NULL,"
    " action TEXT NOT NULL, status TEXT NOT NULL, user_id TEXT NOT NULL,"
    " product_id TEXT NOT NULL, request_id TEXT NOT NULL, correlation_id TEXT NOT NULL,"
    " ts TEXT NOT NULL, expires_at INTEGER NOT NULL, principal TEXT NOT NULL DEFAULT '',"
    " UNIQUE (pk, sk));"
    "CREATE INDEX audit_gsi1 ON audit (gsi1pk, gsi1sk);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
    "CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit"
    " WHEN EXISTS (SELECT 1 FROM audit WHERE pk = NEW.pk AND sk = NEW.sk)"
    "  OR EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)"
    " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
    "PRAGMA user_version = 1;";

/* A version 1 file (at f->db) holding one record written by a version 1 binary;
 * extra_sql runs after it. */
static void make_v1_file(struct fixture *f, const char *extra_sql)
{
    char sub[80];
    snprintf(sub, sizeof(sub), "%s/var", f->dir);
    assert_int_equal(mkdir(sub, 0750), 0);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(h, V1_SCHEMA, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(h,
                     "INSERT INTO audit (pk, sk, gsi1pk, gsi1sk, action, status, user_id,"
                     " product_id, request_id, correlation_id, ts, expires_at, principal)"
                     " VALUES ('USER#0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e',"
                     " 'AUDIT#2026-01-23T11:00:00.000Z#old-1', 'PRODUCT#PROD-101',"
                     " 'AUDIT#2026-01-23T11:00:00.000Z#old-1', 'PRICE_FETCH', 'SUCCESS',"
                     " '0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e', 'PROD-101', 'old-1', 'corr-old',"
                     " '2026-01-23T11:00:00.000Z', 9999999999, 'svc-old')",
                     NULL, NULL, &msg) != SQLITE_OK ||
        (extra_sql && sqlite3_exec(h, extra_sql, NULL, NULL, &msg) != SQLITE_OK))
        fail_msg("building the v1 file: %s", msg ? msg : "?");
    sqlite3_close(h);
}

static int user_version(const char *db)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* Opening a version 1 file upgrades it in place: old records read back with an
 * empty apiRequestId, new ones keep theirs, append-only still holds, and a
 * second open changes nothing. */
static void upgrade_and_check(struct fixture *f)
{
    struct px_audit_store *s = open_store(f, 2000);
    assert_int_equal(user_version(f->db), 4);
    struct px_audit_record r = rec(1, USER_A, "PROD-101", f->now + 86400);
    assert_string_equal(r.api_request_id, "apigw-1");
    assert_int_equal(px_audit_append(s, &r), PX_OK);
    px_audit_close(s);

    for (int round = 0; round < 2; round++) {
        s = open_store(f, 2000);
        assert_int_equal(user_version(f->db), 4);
        struct px_arena *a = px_arena_new(1 << 20);
        struct px_audit_page p;
        assert_int_equal(query(s, a, USER_A, NULL, NULL, NULL, 10, NULL, f->now, &p), PX_OK);
        assert_int_equal(p.nitems, 2);
        assert_string_equal(p.items[0].request_id, "old-1");
        assert_string_equal(p.items[0].principal, "svc-old");
        assert_string_equal(p.items[0].api_request_id, "");
        assert_null(p.items[0].before); /* v3 columns read back NULL on old rows */
        assert_null(p.items[0].after);
        assert_string_equal(p.items[1].request_id, "req-000001");
        assert_string_equal(p.items[1].api_request_id, "apigw-1");
        assert_int_equal(query(s, a, NULL, "PROD-101", NULL, NULL, 10, NULL, f->now, &p), PX_OK);
        assert_int_equal(p.nitems, 2);
        assert_string_equal(p.items[1].api_request_id, "apigw-1");
        px_arena_free(a);
        px_audit_close(s);
    }

    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 2000);
    expect_refused(h, "UPDATE audit SET api_request_id = 'forged'");
    expect_refused(h, "DELETE FROM audit WHERE request_id = 'old-1'");
    sqlite3_close(h);
}

static void test_upgrade_v1(void **state)
{
    struct fixture *f = *state;
    make_v1_file(f, NULL);
    assert_int_equal(user_version(f->db), 1);
    upgrade_and_check(f);
}

/* A file that has the column but still says version 1 (upgraded by a run that
 * never recorded it) is brought to version 2 without a second ALTER. */
static void test_upgrade_v1_column_present(void **state)
{
    struct fixture *f = *state;
    make_v1_file(f, "ALTER TABLE audit ADD COLUMN api_request_id TEXT NOT NULL DEFAULT ''");
    assert_int_equal(user_version(f->db), 1);
    upgrade_and_check(f);
}

/* A version 2 file (the last before write records) opens and upgrades to 3:
 * its look-ups read back as before, with no before/after. */
static void test_upgrade_v2(void **state)
{
    struct fixture *f = *state;
    make_v1_file(f, "ALTER TABLE audit ADD COLUMN api_request_id TEXT NOT NULL DEFAULT '';"
                    "PRAGMA user_version = 2");
    assert_int_equal(user_version(f->db), 2);
    upgrade_and_check(f);
}

/* A file from a newer binary is refused, not downgraded or written. */
static void test_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    make_v1_file(f, "PRAGMA user_version = 5");
    struct px_audit_store *s = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_open(f->spec, NULL, &s, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(s);
    assert_non_null(strstr(err, "newer schema"));
    assert_int_equal(user_version(f->db), 5);
}

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    struct px_audit_store *s = NULL;
    char err[256] = "";
    assert_int_equal(px_audit_open("sqlite::memory:", NULL, &s, err, sizeof(err)), PX_ERR_CONFIG);
    /* A directory where the file should be. */
    char spec[200];
    snprintf(spec, sizeof(spec), "sqlite:%s", f->dir);
    err[0] = '\0';
    assert_int_not_equal(px_audit_open(spec, NULL, &s, err, sizeof(err)), PX_OK);
    assert_null(s);
    assert_non_null(strstr(err, f->dir));
    px_audit_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ts_normaliser),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_hidden, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_timeout_and_queue_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_mid_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_in_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_while_closing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_v1_column_present, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
