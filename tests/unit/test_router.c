/* test_router.c: route matching, 404/405 + Allow, path params, handler failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "kernel/errors.h"
#include "kernel/log.h"
#include "kernel/router.h"

static const char *called;

static px_rc h_ok(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    (void)app;
    called = req->route;
    return px_response_json(req, resp, 200, "{}", 2);
}

static px_rc h_unavailable(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    (void)app;
    (void)req;
    /* a half-made answer that must not leave */
    resp->body = "{\"price\":1}";
    resp->body_len = 11;
    return PX_ERR_UNAVAILABLE;
}

static px_rc h_timeout(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    (void)app;
    (void)req;
    (void)resp;
    return PX_ERR_TIMEOUT;
}

static int audit_marker;

static px_rc h_io(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    (void)app;
    (void)req;
    resp->audit = (struct px_audit_record *)&audit_marker;
    if (px_response_header(resp, "X-Leak", "1"))
        return PX_ERR_INTERNAL;
    return PX_ERR_IO;
}

static px_rc h_silent(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    (void)app;
    (void)req;
    (void)resp;
    return PX_OK;
}

static px_rc h_own_error(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    (void)app;
    px_error_response(req, resp, PX_E_NOT_FOUND, "no such product", NULL, 0);
    return PX_ERR_NOT_FOUND;
}

static const struct px_route price_routes[] = {
    {"GET", "/price", h_ok, NULL},
    {"GET", "/audit", h_ok, NULL},
};
static const struct px_route product_routes[] = {
    {"GET", "/products", h_ok, NULL},         {"POST", "/products", h_ok, NULL},
    {"GET", "/products/{id}", h_ok, NULL},    {"PUT", "/products/{id}", h_ok, NULL},
    {"DELETE", "/products/{id}", h_ok, NULL}, {"GET", "/products/{id}/history/{n}", h_ok, NULL},
};
static const struct px_route config_routes[] = {
    {"GET", "/config", h_ok, NULL},       {"GET", "/config/{key}", h_ok, NULL},
    {"PUT", "/config/{key}", h_ok, NULL}, {"POST", "/config/{key}", h_ok, NULL},
    {"PUT", "/config/{key}", h_ok, NULL}, /* a duplicate method: Allow lists it once */
};
static const struct px_route failing_routes[] = {
    {"GET", "/fail/unavailable", h_unavailable, NULL},
    {"GET", "/fail/timeout", h_timeout, NULL},
    {"GET", "/fail/io", h_io, NULL},
    {"GET", "/fail/silent", h_silent, NULL},
    {"GET", "/fail/own", h_own_error, NULL},
    {"GET", "/fail/nofn", NULL, NULL},
};
static const struct px_function price_fn = {"price-fetcher", price_routes, 2};
static const struct px_function product_fn = {"product-service", product_routes, 6};
static const struct px_function config_fn = {"config-service", config_routes, 5};
static const struct px_function failing_fn = {"failing", failing_routes, 6};
static const struct px_function *const all_fns[] = {&price_fn, &product_fn, &config_fn,
                                                    &failing_fn};

static int null_fd = -1;

static int quiet_logs(void **state)
{
    (void)state;
    null_fd = open("/dev/null", O_WRONLY);
    px_log_set_fd(null_fd);
    return null_fd < 0;
}

static int restore_logs(void **state)
{
    (void)state;
    px_log_set_fd(STDOUT_FILENO);
    close(null_fd);
    return 0;
}

static void test_path_match(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *path;
        bool ok;
        const char *param; /* value of the first capture */
    } cases[] = {
        {"/price", "/price", true, NULL},
        {"/", "/", true, NULL},
        {"/price", "/price/", false, NULL},
        {"/price", "/prices", false, NULL},
        {"/price", "/Price", false, NULL},
        {"/price", "//price", false, NULL},
        {"/price", "price", false, NULL},
        {"/price", "", false, NULL},
        {"/products/{id}", "/products/PROD-1", true, "PROD-1"},
        {"/products/{id}", "/products/", false, NULL},
        {"/products/{id}", "/products", false, NULL},
        {"/products/{id}", "/products/a/b", false, NULL},
        {"/products/{id}", "/products/a b%", true, "a b%"},
        {"/{a}/{b}", "/x/y", true, "x"},
        {"/{a}/{b}", "/x//", false, NULL},
    };
    struct px_arena *a = px_arena_new(1 << 20);
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        struct px_kv params[4];
        size_t n = 0;
        bool ok = px_router_path_match(cases[i].pattern, cases[i].path, a, params, &n);
        if (ok != cases[i].ok)
            fail_msg("%s vs %s", cases[i].pattern, cases[i].path);
        if (!ok) {
            assert_int_equal(n, 0);
            continue;
        }
        if (cases[i].param) {
            assert_true(n >= 1);
            assert_string_equal(params[0].value, cases[i].param);
        }
        /* matching without captures gives the same answer */
        assert_true(px_router_path_match(cases[i].pattern, cases[i].path, NULL, NULL, NULL));
    }
    struct px_kv params[2];
    size_t n = 0;
    assert_true(px_router_path_match("/{a}/{b}", "/x/y", a, params, &n));
    assert_int_equal(n, 2);
    assert_string_equal(params[0].key, "a");
    assert_string_equal(params[1].key, "b");
    assert_string_equal(params[1].value, "y");
    px_arena_free(a);
}

static void test_routing_table(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        int status;
        const char *route; /* matched pattern, when 200 */
        const char *function;
        const char *allow; /* Allow header, when 405 */
        const char *param; /* "name=value" of the first path param */
    } cases[] = {
        {"GET", "/price", 200, "/price", "price-fetcher", NULL, NULL},
        {"HEAD", "/price", 200, "/price", "price-fetcher", NULL, NULL},
        {"GET", "/audit", 200, "/audit", "price-fetcher", NULL, NULL},
        {"POST", "/price", 405, NULL, NULL, "GET", NULL},
        {"DELETE", "/price", 405, NULL, NULL, "GET", NULL},
        {"GET", "/products", 200, "/products", "product-service", NULL, NULL},
        {"POST", "/products", 200, "/products", "product-service", NULL, NULL},
        {"PATCH", "/products", 405, NULL, NULL, "GET, POST", NULL},
        {"GET", "/products/P-1", 200, "/products/{id}", "product-service", NULL, "id=P-1"},
        {"DELETE", "/products/P-1", 200, "/products/{id}", "product-service", NULL, "id=P-1"},
        {"POST", "/products/P-1", 405, NULL, NULL, "GET, PUT, DELETE", NULL},
        {"GET", "/products/P-1/history/3", 200, "/products/{id}/history/{n}", "product-service",
         NULL, "id=P-1"},
        {"PATCH", "/config/flag", 405, NULL, NULL, "GET, PUT, POST", NULL},
        {"GET", "/config/flag", 200, "/config/{key}", "config-service", NULL, "key=flag"},
        {"GET", "/nope", 404, NULL, NULL, NULL, NULL},
        {"GET", "/price/", 404, NULL, NULL, NULL, NULL},
        {"GET", "/products/", 404, NULL, NULL, NULL, NULL},
        {"GET", "/", 404, NULL, NULL, NULL, NULL},
        {"get", "/price", 405, NULL, NULL, "GET", NULL},
        {NULL, "/price", 405, NULL, NULL, "GET", NULL},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        struct px_arena *a = px_arena_new(1 << 20);
        struct px_request req = {
            .arena = a, .method = cases[i].method, .path = cases[i].path, .request_id = "rid"};
        struct px_response resp;
        called = NULL;
        px_router_dispatch(NULL, all_fns, PX_COUNTOF(all_fns), &req, &resp);
        if (resp.status != cases[i].status)
            fail_msg("%s %s: status %d", cases[i].method, cases[i].path, resp.status);
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        assert_non_null(j);
        if (cases[i].status == 200) {
            assert_string_equal(called, cases[i].route);
            assert_string_equal(req.route, cases[i].route);
            assert_string_equal(req.function, cases[i].function);
        } else {
            assert_null(called);
            const char *code =
                json_string_value(json_object_get(json_object_get(j, "error"), "code"));
            assert_string_equal(code,
                                cases[i].status == 404 ? "ROUTE_NOT_FOUND" : "METHOD_NOT_ALLOWED");
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(j, "error"), "requestId")),
                "rid");
        }
        if (cases[i].allow) {
            assert_int_equal(resp.nheaders, 1);
            assert_string_equal(resp.headers[0].key, "Allow");
            assert_string_equal(resp.headers[0].value, cases[i].allow);
        } else {
            assert_int_equal(resp.nheaders, 0);
        }
        if (cases[i].param) {
            const char *eq = strchr(cases[i].param, '=');
            char name[16];
            memcpy(name, cases[i].param, (size_t)(eq - cases[i].param));
            name[eq - cases[i].param] = '\0';
            assert_string_equal(px_request_path_param(&req, name), eq + 1);
        }
        json_decref(j);
        px_arena_free(a);
    }
}

static void test_within_one_function(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    const struct px_function *one[] = {&price_fn};
    struct px_request req = {.arena = a, .method = "GET", .path = "/products"};
    struct px_response resp;
    px_router_dispatch(NULL, one, 1, &req, &resp);
    assert_int_equal(resp.status, 404); /* another function's route */

    /* no path (some API Gateway events): the first route with the method */
    const struct px_function *prod[] = {&product_fn};
    struct px_request r2 = {.arena = a, .method = "POST", .path = NULL};
    px_router_dispatch(NULL, prod, 1, &r2, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(r2.route, "/products");
    assert_int_equal(r2.npath_params, 0);
    struct px_request r3 = {.arena = a, .method = "PATCH", .path = NULL};
    px_router_dispatch(NULL, prod, 1, &r3, &resp);
    assert_int_equal(resp.status, 405);
    assert_string_equal(resp.headers[0].value, "GET, POST, PUT, DELETE");
    /* without a function to narrow it down, no path cannot be routed */
    struct px_request r4 = {.arena = a, .method = "GET", .path = NULL};
    px_router_dispatch(NULL, all_fns, PX_COUNTOF(all_fns), &r4, &resp);
    assert_int_equal(resp.status, 404);
    px_arena_free(a);
}

static void test_handler_failures(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        int status;
        const char *code;
        bool audit_kept;
    } cases[] = {
        {"/fail/unavailable", 503, "DEPENDENCY_UNAVAILABLE", false},
        {"/fail/timeout", 503, "DEPENDENCY_UNAVAILABLE", false},
        {"/fail/io", 500, "INTERNAL", true},
        {"/fail/silent", 500, "INTERNAL", false},
        {"/fail/own", 404, "NOT_FOUND", false},
        {"/fail/nofn", 500, "INTERNAL", false},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        struct px_arena *a = px_arena_new(1 << 20);
        struct px_request req = {
            .arena = a, .method = "GET", .path = cases[i].path, .request_id = "rid"};
        struct px_response resp;
        px_router_dispatch(NULL, all_fns, PX_COUNTOF(all_fns), &req, &resp);
        assert_int_equal(resp.status, cases[i].status);
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                            cases[i].code);
        assert_null(strstr(resp.body, "price"));
        assert_int_equal(resp.nheaders, 0);
        if (cases[i].audit_kept)
            assert_ptr_equal(resp.audit, &audit_marker);
        else
            assert_null(resp.audit);
        json_decref(j);
        px_arena_free(a);
    }
}

static void test_arena_exhausted_params(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(8192);
    assert_non_null(px_arena_alloc(a, 8192));
    struct px_request req = {.arena = a, .method = "GET", .path = "/products/P-1"};
    struct px_response resp;
    called = NULL;
    px_router_dispatch(NULL, all_fns, PX_COUNTOF(all_fns), &req, &resp);
    assert_int_equal(resp.status, 500);
    assert_null(called); /* no handler runs without its path params */
    px_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_match),
        cmocka_unit_test(test_routing_table),
        cmocka_unit_test(test_within_one_function),
        cmocka_unit_test(test_handler_failures),
        cmocka_unit_test(test_arena_exhausted_params),
    };
    return cmocka_run_group_tests(tests, quiet_logs, restore_logs);
}
