/* test_invoke_event.c: one API Gateway event through px_invoke_event(),
 * against real SQLite stores. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel/app.h"
#include "kernel/log.h"
#include "store/audit.h"
#include "store/price.h"
#include "transport/invoke.h"

#include "px_test.h"

#define AUDIT_MS 500
#define USER     "550e8400-e29b-41d4-a716-446655440000"
#define USER_B   "6a1f0e2d-3c4b-4a59-8b7c-9d0e1f2a3b4c"

static char dir[128];
static char audit_path[256];
static int log_fd = -1;
static struct px_app *app;

static const char EV_V2[] =
    "{\"version\":\"2.0\",\"routeKey\":\"GET /price\",\"rawPath\":\"/price\","
    "\"rawQueryString\":\"id=PROD-101&userId=" USER "\","
    "\"headers\":{\"host\":\"localhost\"},"
    "\"requestContext\":{\"requestId\":\"api-v2\",\"http\":{\"method\":\"GET\",\"path\":\"/price\","
    "\"sourceIp\":\"127.0.0.1\"}},\"isBase64Encoded\":false}";

static const char EV_V1[] = "{\"resource\":\"/price\",\"httpMethod\":\"GET\",\"path\":\"/price\","
                            "\"queryStringParameters\":{\"id\":\"PROD-101\",\"userId\":\"" USER
                            "\"},\"requestContext\":{\"requestId\":\"api-v1\"}}";

static const char EV_V1_B[] = "{\"resource\":\"/price\",\"httpMethod\":\"GET\",\"path\":\"/price\","
                              "\"queryStringParameters\":{\"id\":\"PROD-101\",\"userId\":\"" USER_B
                              "\"},\"requestContext\":{\"requestId\":\"api-v1b\"}}";

static const char EV_NOPE[] = "{\"resource\":\"/nope\",\"httpMethod\":\"GET\",\"path\":\"/nope\","
                              "\"requestContext\":{\"requestId\":\"api-nope\"}}";

static int setup(void **state)
{
    (void)state;
    if (px_test_tmpdir(dir, sizeof(dir), "invoke"))
        return -1;
    char p[256];
    snprintf(p, sizeof(p), "%s/log", dir);
    log_fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0)
        return -1;
    px_log_set_fd(log_fd);
    px_log_init(PX_LOG_INFO, "price-fetcher");

    struct px_config cfg = px_config_defaults;
    char price_path[256];
    snprintf(price_path, sizeof(price_path), "%s/prices.db", dir);
    snprintf(audit_path, sizeof(audit_path), "%s/audit.db", dir);
    snprintf(cfg.price_db, sizeof(cfg.price_db), "sqlite:%s", price_path);
    snprintf(cfg.audit_store, sizeof(cfg.audit_store), "sqlite:%s", audit_path);
    cfg.audit_timeout_ms = AUDIT_MS;

    char err[512];
    if (px_test_make_stores(price_path, cfg.audit_store, AUDIT_MS))
        return -1;
    if (px_app_new(&cfg, &app, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "app: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    px_app_free(app);
    px_log_set_fd(STDOUT_FILENO);
    if (log_fd >= 0)
        close(log_fd);
    px_test_rmdir(dir);
    return 0;
}

static size_t audit_count(const char *user, const char *request_id)
{
    struct px_arena *a = px_arena_new(1 << 20);
    assert_non_null(a);
    struct px_audit_query q = {.user_id = user, .limit = 100, .now = (int64_t)time(NULL)};
    struct px_audit_page page = {0};
    assert_int_equal(px_audit_query(px_app_audit(app), &q, a, &page), PX_OK);
    size_t n = 0;
    for (size_t i = 0; i < page.nitems; i++)
        if (!request_id || strcmp(page.items[i].request_id, request_id) == 0)
            n++;
    px_arena_free(a);
    return n;
}

static px_rc run(const char *function, const char *ev, const char *rid, struct px_buf *out)
{
    px_buf_init(out, 1 << 20);
    return px_invoke_event(app, function, ev, strlen(ev), rid, 0, out, NULL);
}

static void test_v2(void **state)
{
    (void)state;
    struct px_buf out;
    assert_int_equal(run("price-fetcher", EV_V2, NULL, &out), PX_OK);
    assert_non_null(strstr(out.data, "\"statusCode\":200"));
    assert_non_null(strstr(out.data, "\\\"price\\\":99.99"));
    px_buf_free(&out);
}

static void test_v1_request_id(void **state)
{
    (void)state;
    const char *rid = "8f14e45f-ceea-467f-a0e6-6c1a2b3c4d5e";
    size_t before = audit_count(USER, rid);
    struct px_buf out;
    assert_int_equal(run(NULL, EV_V1, rid, &out), PX_OK);
    assert_non_null(strstr(out.data, "\"statusCode\":200"));
    assert_non_null(strstr(out.data, rid));
    /* Durable before the response existed. */
    assert_int_equal(audit_count(USER, rid), before + 1);
    px_buf_free(&out);
}

static void test_not_an_event(void **state)
{
    (void)state;
    struct px_buf out;
    assert_int_equal(run("price-fetcher", "{}", NULL, &out), PX_ERR_INVALID);
    px_buf_free(&out);
    assert_int_equal(run("price-fetcher", "not json", NULL, &out), PX_ERR_INVALID);
    px_buf_free(&out);
    assert_int_equal(run("no-such-function", EV_V2, NULL, &out), PX_ERR_NOT_FOUND);
    px_buf_free(&out);
}

static void test_route_not_found_is_a_response(void **state)
{
    (void)state;
    struct px_buf out;
    assert_int_equal(run("price-fetcher", EV_NOPE, NULL, &out), PX_OK);
    assert_non_null(strstr(out.data, "\"statusCode\":404"));
    assert_non_null(strstr(out.data, "ROUTE_NOT_FOUND"));
    px_buf_free(&out);
}

static void test_audit_unavailable(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(audit_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    struct px_buf out;
    px_rc rc = run("price-fetcher", EV_V1_B, NULL, &out);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    assert_int_equal(rc, PX_OK);
    assert_non_null(strstr(out.data, "\"statusCode\":503"));
    assert_non_null(strstr(out.data, "AUDIT_UNAVAILABLE"));
    assert_null(strstr(out.data, "99.99"));
    px_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v1_request_id),
        cmocka_unit_test(test_not_an_event),
        cmocka_unit_test(test_route_not_found_is_a_response),
        cmocka_unit_test(test_audit_unavailable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
