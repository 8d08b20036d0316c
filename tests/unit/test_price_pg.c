/* test_price_pg.c: the PostgreSQL price store against a real server.
 *
 * The server tests run when PX_TEST_PG_URI names a database the test may
 * seed (scripts/pg.sh start DIR writes one to DIR/uri) and are skipped
 * otherwise. Masking, migration names and the start-up failure need no server. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "store/price.h"

extern void px_price_pg_mask_uri(const char *spec, char *out, size_t outlen);
extern bool px_price_pg_migration_name(const char *name, long *version);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *pg_uri(void)
{
    const char *u = getenv("PX_TEST_PG_URI");
    return u && *u ? u : NULL;
}

/* The reason goes out on the line before cmocka's [  SKIPPED ], where scripts/test.sh
 * (ctest-summary.py) picks it up: a skip nobody can explain hides a gap. */
#define NEED_PG()                                                                                  \
    do {                                                                                           \
        if (!pg_uri()) {                                                                           \
            print_message("skip: PX_TEST_PG_URI is not set (scripts/pg.sh start DIR writes one "   \
                          "to DIR/uri)\n");                                                        \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void seed_path(char *out, size_t len)
{
    const char *src = getenv("PX_SOURCE_DIR");
    snprintf(out, len, "%s/infra/seed/prices.sql", src && *src ? src : ".");
}

/* A loopback port nobody listens on (bound, read, closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_mask_uri(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"postgresql://user:pass@host:5432/db", "postgresql://user:***@host:5432/db"},
        {"postgres://u:p%40ss@h/db?sslmode=disable", "postgres://u:***@h/db?sslmode=disable"},
        {"postgresql://u:a@b@h:1/db", "postgresql://u:***@h:1/db"},
        {"postgresql://u@h/db?password=secret&x=1", "postgresql://u@h/db?password=***&x=1"},
        {"postgresql://h/db", "postgresql://h/db"},
        {"postgresql://u:@h/db", "postgresql://u:***@h/db"},
        {"host=h password=secret dbname=d", "host=h password=*** dbname=d"},
        {"postgresql://u:p@h/db?application_name=password=x",
         "postgresql://u:***@h/db?application_name=password=x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256];
        px_price_pg_mask_uri(cases[i].in, out, 2 * strlen(cases[i].in) + 8);
        assert_string_equal(out, cases[i].out);
    }
}

static void test_migration_name(void **state)
{
    (void)state;
    long v = 0;
    assert_true(px_price_pg_migration_name("001_product_prices.sql", &v));
    assert_int_equal(v, 1);
    assert_true(px_price_pg_migration_name("12_a-b.sql", &v));
    assert_int_equal(v, 12);
    assert_false(px_price_pg_migration_name("README.md", &v));
    assert_false(px_price_pg_migration_name("001.sql", &v));
    assert_false(px_price_pg_migration_name("_x.sql", &v));
    assert_false(px_price_pg_migration_name("001_x.sql~", &v));
    assert_false(px_price_pg_migration_name("001_a b.sql", &v));
    assert_false(px_price_pg_migration_name("0000000001_x.sql", &v));
}

/* Start-up against a dead port: fails fast, one line, password masked. */
static void test_open_unreachable(void **state)
{
    (void)state;
    char uri[128], err[512];
    snprintf(uri, sizeof(uri), "postgresql://u:sekret@127.0.0.1:%d/db", closed_port());
    struct px_price_opts o = {.pool_size = 2, .timeout_ms = 1000};
    struct px_price_store *s = (struct px_price_store *)1;
    int64_t t0 = now_ms();
    px_rc rc = px_price_open(uri, &o, &s, err, sizeof(err));
    assert_int_equal(rc, PX_ERR_UNAVAILABLE);
    assert_null(s);
    assert_true(now_ms() - t0 < 1500);
    assert_non_null(strstr(err, "PRICE_DB: cannot connect to postgresql://u:***@127.0.0.1:"));
    assert_null(strstr(err, "sekret"));
    assert_null(strchr(err, '\n'));
}

static void test_open_bad_uri(void **state)
{
    (void)state;
    char err[512];
    struct px_price_store *s = NULL;
    px_rc rc =
        px_price_open("postgresql://u:sekret@h/db?nosuchoption=1", NULL, &s, err, sizeof(err));
    assert_int_equal(rc, PX_ERR_CONFIG);
    assert_null(strstr(err, "sekret"));
}

/* Seeds twice (idempotent), then opens a reading store. */
static int pg_setup(void **state)
{
    if (!pg_uri())
        return 0;
    char path[PATH_MAX], err[512];
    seed_path(path, sizeof(path));
    for (int i = 0; i < 2; i++) {
        struct px_price_opts o = {.pool_size = 1, .timeout_ms = 20000, .create = true};
        struct px_price_store *s = NULL;
        if (px_price_open(pg_uri(), &o, &s, err, sizeof(err)) != PX_OK) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
        px_rc rc = px_price_seed(s, path, err, sizeof(err));
        px_price_close(s);
        if (rc) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
    }
    struct px_price_opts o = {.pool_size = 2, .timeout_ms = 1000};
    struct px_price_store *s = NULL;
    if (px_price_open(pg_uri(), &o, &s, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    *state = s;
    return 0;
}

static int pg_teardown(void **state)
{
    px_price_close(*state);
    *state = NULL;
    return 0;
}

/* A plain libpq connection for checks the store does not offer. */
static PGconn *side_conn(void)
{
    PGconn *c = PQconnectdb(pg_uri());
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static void test_get_exact(void **state)
{
    NEED_PG();
    struct px_price_store *s = *state;
    static const struct {
        const char *id, *price, *cur;
    } cases[] = {
        {"PROD-101", "99.99", "USD"}, {"PROD-102", "100.00", "USD"}, {"PROD-103", "0.5", "EUR"},
        {"PROD-104", "1999", "JPY"},  {"PROD-105", "12.345", "KWD"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct px_price p;
        assert_int_equal(px_price_get(s, cases[i].id, &p), PX_OK);
        assert_string_equal(p.product_id, cases[i].id);
        assert_string_equal(p.price, cases[i].price);
        assert_string_equal(p.currency, cases[i].cur);
    }
}

/* A scale written outside the seed survives too, and the schema refuses
 * what a price cannot be. */
static void test_scale_and_checks(void **state)
{
    NEED_PG();
    struct px_price_store *s = *state;
    PGconn *c = side_conn();
    exec_ok(c, "INSERT INTO product_prices VALUES ('TEST-SCALE', '7.500', 'CHF') "
               "ON CONFLICT (product_id) DO UPDATE SET price = excluded.price");
    struct px_price p;
    assert_int_equal(px_price_get(s, "TEST-SCALE", &p), PX_OK);
    assert_string_equal(p.price, "7.500");
    char json[64];
    assert_int_equal(px_decimal_to_json(p.price, json, sizeof(json)), PX_OK);
    assert_string_equal(json, "7.500");

    static const char *const bad[] = {
        "INSERT INTO product_prices VALUES ('TEST-NEG', '-1', 'USD')",
        "INSERT INTO product_prices VALUES ('TEST-NAN', 'NaN', 'USD')",
        "INSERT INTO product_prices VALUES ('TEST-INF', 'Infinity', 'USD')",
        "INSERT INTO product_prices VALUES ('TEST-CUR', '1', 'usd')",
        "INSERT INTO product_prices VALUES ('TEST-CU2', '1', 'US')",
        "INSERT INTO product_prices VALUES ('-TEST', '1', 'USD')",
        "INSERT INTO product_prices VALUES ('TEST ID', '1', 'USD')",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        PGresult *r = PQexec(c, bad[i]);
        assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
        PQclear(r);
    }
    exec_ok(c, "DELETE FROM product_prices WHERE product_id = 'TEST-SCALE'");

    /* two seeds, one recorded migration */
    PGresult *r = PQexec(c, "SELECT count(*) FROM schema_migrations WHERE version = 1");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    PQfinish(c);
}

static void test_not_found_and_injection(void **state)
{
    NEED_PG();
    struct px_price_store *s = *state;
    struct px_price p;
    assert_int_equal(px_price_get(s, "PROD-NOPE", &p), PX_ERR_NOT_FOUND);
    static const char *const evil[] = {
        "PROD-101' OR '1'='1",
        "PROD-101'; DROP TABLE product_prices; --",
        "' UNION SELECT '1','USD",
        "PROD-101\\",
        "$1",
    };
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++)
        assert_int_equal(px_price_get(s, evil[i], &p), PX_ERR_NOT_FOUND);
    char long_id[PX_MAX_PRODUCT_ID + 2];
    memset(long_id, 'A', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(px_price_get(s, long_id, &p), PX_ERR_INVALID);
    assert_int_equal(px_price_get(s, "", &p), PX_ERR_INVALID);
    assert_int_equal(px_price_get(s, "PROD-101", &p), PX_OK);
    assert_string_equal(p.price, "99.99");
}

static void test_ping(void **state)
{
    NEED_PG();
    assert_int_equal(px_price_ping(*state), PX_OK);
}

/* The server ends our sessions: the next look-up reconnects by itself. */
static void test_reconnect(void **state)
{
    NEED_PG();
    struct px_price_store *s = *state;
    struct px_price p;
    assert_int_equal(px_price_get(s, "PROD-101", &p), PX_OK);
    PGconn *c = side_conn();
    exec_ok(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE application_name = 'pricing' AND pid <> pg_backend_pid()");
    PQfinish(c);
    usleep(50 * 1000);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(px_price_get(s, "PROD-102", &p), PX_OK);
        assert_string_equal(p.price, "100.00");
    }
    assert_int_equal(px_price_ping(s), PX_OK);
}

/* A statement stuck behind a lock comes back as a time-out within the bound,
 * and the store recovers once the lock is gone. */
static void test_bounded_wait(void **state)
{
    NEED_PG();
    struct px_price_store *s = *state;
    PGconn *c = side_conn();
    exec_ok(c, "BEGIN");
    exec_ok(c, "LOCK TABLE product_prices IN ACCESS EXCLUSIVE MODE");
    struct px_price p;
    int64_t t0 = now_ms();
    px_rc rc = px_price_get(s, "PROD-101", &p);
    int64_t took = now_ms() - t0;
    assert_true(rc == PX_ERR_TIMEOUT || rc == PX_ERR_UNAVAILABLE);
    assert_true(took < 1500);
    exec_ok(c, "ROLLBACK");
    PQfinish(c);
    rc = PX_ERR_INTERNAL;
    for (int i = 0; i < 40 && rc != PX_OK; i++) {
        rc = px_price_get(s, "PROD-101", &p);
        if (rc)
            usleep(50 * 1000);
    }
    assert_int_equal(rc, PX_OK);
}

struct worker {
    struct px_price_store *s;
    int ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    static const char *const ids[] = {"PROD-101", "PROD-102", "PROD-103", "PROD-NOPE"};
    for (int i = 0; i < 200; i++) {
        struct px_price p;
        px_rc rc = px_price_get(w->s, ids[i % 4], &p);
        if ((i % 4 == 3 && rc == PX_ERR_NOT_FOUND) || (i % 4 != 3 && rc == PX_OK))
            w->ok++;
    }
    return NULL;
}

/* More threads than connections: everyone waits its turn, nobody fails. */
static void test_pool_threads(void **state)
{
    NEED_PG();
    enum { N = 8 };
    pthread_t th[N];
    struct worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){.s = *state};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].ok, 200);
    }
}

int main(void)
{
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_mask_uri),
        cmocka_unit_test(test_migration_name),
        cmocka_unit_test(test_open_unreachable),
        cmocka_unit_test(test_open_bad_uri),
    };
    const struct CMUnitTest server[] = {
        cmocka_unit_test(test_get_exact),
        cmocka_unit_test(test_scale_and_checks),
        cmocka_unit_test(test_not_found_and_injection),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_bounded_wait),
        cmocka_unit_test(test_pool_threads),
    };
    int failed = cmocka_run_group_tests_name("price_pg", plain, NULL, NULL);
    failed += cmocka_run_group_tests_name("price_pg_server", server, pg_setup, pg_teardown);
    return failed ? 1 : 0;
}
