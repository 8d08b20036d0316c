/* test_lambda.c: the Lambda runtime's pieces that need no Runtime API:
 * header parsing, _X_AMZN_TRACE_ID handling (no leak), one invocation
 * through px_lambda_runtime_handle() against real SQLite stores (metric
 * line, cold start, deadline, oversized response), and init failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kernel/log.h"
#include "store/audit.h"
#include "store/price.h"
#include "transport/lambda.h"

#include "px_test.h"

#define USER "550e8400-e29b-41d4-a716-446655440000"
#define RID  "8476a536-e9f4-11e8-9739-2dfe598c3fcd"

static char dir[128];
static char price_spec[300], audit_spec[300];

/* ---- header parsing --------------------------------------------------------- */

static px_rc hdr(struct px_lambda_invocation *inv, const char *line)
{
    return px_lambda_parse_header(inv, line, strlen(line));
}

static void test_headers(void **state)
{
    (void)state;
    struct px_lambda_invocation inv;
    px_lambda_invocation_clear(&inv);
    assert_int_equal(hdr(&inv, "HTTP/1.1 200 OK\r\n"), PX_OK);
    assert_int_equal(hdr(&inv, "Lambda-Runtime-Aws-Request-Id: " RID "\r\n"), PX_OK);
    assert_string_equal(inv.request_id, RID);
    assert_int_equal(hdr(&inv, "lambda-runtime-deadline-ms:1542409706888\r\n"), PX_OK);
    assert_int_equal(inv.deadline_ms, 1542409706888LL);
    assert_int_equal(hdr(&inv,
                         "LAMBDA-RUNTIME-INVOKED-FUNCTION-ARN:   "
                         "arn:aws:lambda:us-east-2:123456789012:function:custom-runtime  \r\n"),
                     PX_OK);
    assert_string_equal(inv.function_arn,
                        "arn:aws:lambda:us-east-2:123456789012:function:custom-runtime");
    assert_int_equal(hdr(&inv, "Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;"
                               "Parent=9a9197af755a6419;Sampled=1\r\n"),
                     PX_OK);
    assert_string_equal(
        inv.trace_id, "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1");
    /* Unknown headers and the blank line are ignored. */
    assert_int_equal(hdr(&inv, "Lambda-Runtime-Client-Context: {}\r\n"), PX_OK);
    assert_int_equal(hdr(&inv, "Content-Type: application/json\r\n"), PX_OK);
    assert_int_equal(hdr(&inv, "\r\n"), PX_OK);
    assert_string_equal(inv.request_id, RID);

    /* Malformed or oversized values leave their field empty. */
    assert_int_equal(hdr(&inv, "Lambda-Runtime-Deadline-Ms: 12a\r\n"), PX_ERR_INVALID);
    assert_int_equal(inv.deadline_ms, 0);
    assert_int_equal(hdr(&inv, "Lambda-Runtime-Deadline-Ms: -5\r\n"), PX_ERR_INVALID);
    assert_int_equal(hdr(&inv, "Lambda-Runtime-Deadline-Ms: 1234567890123456789012\r\n"),
                     PX_ERR_INVALID);
    assert_int_equal(hdr(&inv, "Lambda-Runtime-Deadline-Ms: \r\n"), PX_ERR_INVALID);
    char big[PX_LAMBDA_MAX_TRACE + 64];
    memcpy(big, "Lambda-Runtime-Trace-Id: ", 25);
    memset(big + 25, 'x', PX_LAMBDA_MAX_TRACE + 1);
    big[25 + PX_LAMBDA_MAX_TRACE + 1] = '\0';
    assert_int_equal(hdr(&inv, big), PX_ERR_TOO_LARGE);
    assert_string_equal(inv.trace_id, "");
    /* A prefix of a known name is not that name. */
    assert_int_equal(hdr(&inv, "Lambda-Runtime-Aws-Request: other\r\n"), PX_OK);
    assert_string_equal(inv.request_id, RID);

    px_lambda_invocation_clear(&inv);
    assert_string_equal(inv.request_id, "");
    assert_int_equal(inv.deadline_ms, 0);
}

/* ---- the trace id in the environment ------------------------------------------ */

static void test_trace_env(void **state)
{
    (void)state;
    const char *a = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1";
    assert_int_equal(px_lambda_set_trace_env(a), PX_OK);
    assert_string_equal(getenv("_X_AMZN_TRACE_ID"), a);
    const char *where = getenv("_X_AMZN_TRACE_ID");
    assert_int_equal(px_lambda_set_trace_env("Root=1-00000000-000000000000000000000001"), PX_OK);
    assert_string_equal(getenv("_X_AMZN_TRACE_ID"), "Root=1-00000000-000000000000000000000001");
    /* Rewritten in place: the environment still points at the same buffer. */
    assert_ptr_equal(getenv("_X_AMZN_TRACE_ID"), where);
    assert_int_equal(px_lambda_set_trace_env(NULL), PX_OK);
    assert_null(getenv("_X_AMZN_TRACE_ID"));
    assert_int_equal(px_lambda_set_trace_env(""), PX_OK);
    assert_null(getenv("_X_AMZN_TRACE_ID"));
    assert_int_equal(px_lambda_set_trace_env(a), PX_OK);
    assert_string_equal(getenv("_X_AMZN_TRACE_ID"), a);

    /* Someone else's setenv in between does not stop us from taking over again. */
    setenv("_X_AMZN_TRACE_ID", "other", 1);
    assert_int_equal(px_lambda_set_trace_env(a), PX_OK);
    assert_string_equal(getenv("_X_AMZN_TRACE_ID"), a);

    char big[PX_LAMBDA_MAX_TRACE + 2];
    memset(big, 'r', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(px_lambda_set_trace_env(big), PX_ERR_TOO_LARGE);
    assert_null(getenv("_X_AMZN_TRACE_ID"));

    /* Thousands of invocations cost no memory (glibc's setenv would keep
     * every replaced value: about 100 bytes each here). */
    char t[128];
    for (int i = 0; i < 200; i++) { /* settle the environment's own array */
        snprintf(t, sizeof(t), "Root=1-%08x-%024d;Sampled=0", i, i);
        assert_int_equal(px_lambda_set_trace_env(i % 3 ? t : NULL), PX_OK);
    }
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 10000; i++) {
        snprintf(t, sizeof(t), "Root=1-%08x-%024d;Parent=%016x;Sampled=1", i, i, i);
        assert_int_equal(px_lambda_set_trace_env(i % 5 ? t : NULL), PX_OK);
        if (i % 5)
            assert_string_equal(getenv("_X_AMZN_TRACE_ID"), t);
        else
            assert_null(getenv("_X_AMZN_TRACE_ID"));
    }
    struct mallinfo2 after = mallinfo2();
    assert_true(after.uordblks <= before.uordblks + 4096);
    assert_int_equal(px_lambda_set_trace_env(NULL), PX_OK);
}

/* ---- one invocation through the runtime ------------------------------------------ */

static int setup_stores(void **state)
{
    (void)state;
    if (px_test_tmpdir(dir, sizeof(dir), "lambda"))
        return -1;
    char price_path[256], audit_path[256];
    snprintf(price_path, sizeof(price_path), "%s/prices.db", dir);
    snprintf(audit_path, sizeof(audit_path), "%s/audit.db", dir);
    snprintf(price_spec, sizeof(price_spec), "sqlite:%s", price_path);
    snprintf(audit_spec, sizeof(audit_spec), "sqlite:%s", audit_path);
    if (px_test_make_stores(price_path, audit_spec, 1000))
        return -1;
    int logfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    px_log_set_fd(logfd);
    return 0;
}

static int teardown_stores(void **state)
{
    (void)state;
    px_test_rmdir(dir);
    return 0;
}

/* A loopback port nobody listens on: init errors are posted there and refused. */
static unsigned closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(s >= 0);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void lambda_env(const char *handler)
{
    char api[32];
    snprintf(api, sizeof(api), "127.0.0.1:%u", closed_port());
    setenv("AWS_LAMBDA_RUNTIME_API", api, 1);
    setenv("PRICE_DB", price_spec, 1);
    setenv("AUDIT_STORE", audit_spec, 1);
    /* never created: the config cache serves the defaults (a metric says so) */
    setenv("CONFIG_STORE", "sqlite:/nonexistent-dir/config.db", 1);
    setenv("METRICS_NAMESPACE", "PricingTest", 1);
    setenv("METRICS_SERVICE", "svc \"q\"", 1);
    unsetenv("AUDIT_RETENTION_DAYS");
    unsetenv("AUTH_MODE");
    unsetenv("LOG_LEVEL");
    if (handler)
        setenv("_HANDLER", handler, 1);
    else
        unsetenv("_HANDLER");
}

/* Runs handle() with stdout captured; returns the metric line (heap). */
static char *handle_capture(struct px_lambda_runtime *rt, const struct px_lambda_invocation *inv,
                            struct px_lambda_post *post)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/stdout", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    px_lambda_runtime_handle(rt, inv, post);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    char *line = calloc(1, 8192);
    assert_non_null(line);
    ssize_t n = pread(fd, line, 8191, 0);
    assert_true(n > 0);
    close(fd);
    return line;
}

static json_t *metric_line(const char *line)
{
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    assert_non_null(j);
    json_t *aws = json_object_get(j, "_aws");
    assert_non_null(aws);
    json_t *cw = json_array_get(json_object_get(aws, "CloudWatchMetrics"), 0);
    assert_string_equal(json_string_value(json_object_get(cw, "Namespace")), "PricingTest");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "svc \"q\"");
    assert_int_equal(json_array_size(json_object_get(cw, "Metrics")), 8);
    return j;
}

static long metric(json_t *j, const char *name)
{
    json_t *v = json_object_get(j, name);
    assert_non_null(v);
    return (long)json_number_value(v);
}

static void event_of(char *out, size_t outlen, const char *query, bool with_claims)
{
    snprintf(out, outlen,
             "{\"version\":\"2.0\",\"routeKey\":\"$default\",\"rawPath\":\"/price\","
             "\"rawQueryString\":\"%s\",\"headers\":{\"host\":\"localhost\"},"
             "\"requestContext\":{\"requestId\":\"JKJaXmPLvHcESHA=\",%s"
             "\"http\":{\"method\":\"GET\",\"path\":\"/price\",\"sourceIp\":\"127.0.0.1\"}},"
             "\"isBase64Encoded\":false}",
             query,
             with_claims ? "\"authorizer\":{\"jwt\":{\"claims\":{\"sub\":\"client-1\",\"scope\":"
                           "\"price:read\"},\"scopes\":null}},"
                         : "");
}

static void test_runtime_handle(void **state)
{
    (void)state;
    lambda_env("price-fetcher");
    char err[512];
    struct px_lambda_runtime *rt = NULL;
    assert_int_equal(px_lambda_runtime_new(NULL, &rt, err, sizeof(err)), PX_OK);

    char ev[2048];
    event_of(ev, sizeof(ev), "id=PROD-101&userId=" USER, true);
    struct px_lambda_invocation inv;
    px_lambda_invocation_clear(&inv);
    snprintf(inv.request_id, sizeof(inv.request_id), RID);
    snprintf(inv.trace_id, sizeof(inv.trace_id), "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700");
    inv.deadline_ms = 0;
    inv.event = ev;
    inv.event_len = strlen(ev);

    /* 1: cold, found, traced. */
    struct px_lambda_post post;
    char *line = handle_capture(rt, &inv, &post);
    assert_false(post.is_error);
    assert_non_null(strstr(post.body, "\"statusCode\":200"));
    assert_non_null(strstr(post.body, "99.99"));
    assert_non_null(strstr(post.body, RID)); /* the Lambda request id is ours */
    assert_string_equal(getenv("_X_AMZN_TRACE_ID"), "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700");
    json_t *m = metric_line(line);
    assert_int_equal(metric(m, "PriceFetched"), 1);
    assert_int_equal(metric(m, "ColdStart"), 1);
    assert_int_equal(metric(m, "ValidationFailed"), 0);
    /* no config store here: the cache's first read fell back to the defaults */
    assert_int_equal(metric(m, "ConfigDefaults"), 1);
    assert_int_equal(metric(m, "ConfigStale"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "requestId")), RID);
    assert_null(json_object_get(m, "tenantId")); /* TENANCY=off: the line as it was */
    json_decref(m);
    free(line);

    /* 2: warm, no trace id (cleared), validation failure. */
    event_of(ev, sizeof(ev), "id=PROD-101&userId=nope", true);
    inv.event_len = strlen(ev);
    inv.trace_id[0] = '\0';
    snprintf(inv.request_id, sizeof(inv.request_id), "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    line = handle_capture(rt, &inv, &post);
    assert_false(post.is_error);
    assert_non_null(strstr(post.body, "\"statusCode\":400"));
    assert_null(getenv("_X_AMZN_TRACE_ID"));
    m = metric_line(line);
    assert_int_equal(metric(m, "ColdStart"), 0);
    assert_int_equal(metric(m, "ValidationFailed"), 1);
    assert_int_equal(metric(m, "PriceFetched"), 0);
    assert_int_equal(metric(m, "ConfigDefaults"), 0); /* reported once, not again */
    json_decref(m);
    free(line);

    /* 3: not found. */
    event_of(ev, sizeof(ev), "id=PROD-999&userId=" USER, true);
    inv.event_len = strlen(ev);
    line = handle_capture(rt, &inv, &post);
    assert_non_null(strstr(post.body, "\"statusCode\":404"));
    m = metric_line(line);
    assert_int_equal(metric(m, "PriceNotFound"), 1);
    json_decref(m);
    free(line);

    /* 4: Lambda's default trusts the gateway's authorizer: no claims, no price. */
    event_of(ev, sizeof(ev), "id=PROD-101&userId=" USER, false);
    inv.event_len = strlen(ev);
    line = handle_capture(rt, &inv, &post);
    assert_non_null(strstr(post.body, "\"statusCode\":403"));
    free(line);

    /* 5: not an API Gateway event: an error post with its type. */
    const char *junk = "{\"hello\":\"world\"}";
    inv.event = junk;
    inv.event_len = strlen(junk);
    line = handle_capture(rt, &inv, &post);
    assert_true(post.is_error);
    assert_string_equal(post.error_type, "Function.InvalidEvent");
    json_error_t je;
    json_t *b = json_loadb(post.body, post.len, 0, &je);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "errorType")),
                        "Function.InvalidEvent");
    assert_true(json_is_array(json_object_get(b, "stackTrace")));
    assert_non_null(json_string_value(json_object_get(b, "errorMessage")));
    json_decref(b);
    free(line);

    /* 6: a deadline too close to make a record durable: 503, nothing looked up. */
    event_of(ev, sizeof(ev), "id=PROD-101&userId=" USER, true);
    inv.event = ev;
    inv.event_len = strlen(ev);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    inv.deadline_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 50;
    line = handle_capture(rt, &inv, &post);
    assert_false(post.is_error);
    assert_non_null(strstr(post.body, "\"statusCode\":503"));
    free(line);
    px_lambda_runtime_free(rt);

    /* 7: a response above the cap is refused whole: 500 with the error shape. */
    struct px_lambda_opts small = {.max_response = 200};
    assert_int_equal(px_lambda_runtime_new(&small, &rt, err, sizeof(err)), PX_OK);
    inv.deadline_ms = 0;
    line = handle_capture(rt, &inv, &post);
    assert_false(post.is_error);
    b = json_loadb(post.body, post.len, 0, &je);
    assert_non_null(b);
    assert_int_equal(json_integer_value(json_object_get(b, "statusCode")), 500);
    json_t *inner = json_loads(json_string_value(json_object_get(b, "body")), 0, &je);
    assert_non_null(inner);
    json_t *eo = json_object_get(inner, "error");
    assert_string_equal(json_string_value(json_object_get(eo, "code")), "INTERNAL");
    assert_string_equal(json_string_value(json_object_get(eo, "requestId")),
                        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    json_decref(inner);
    json_decref(b);
    free(line);
    px_lambda_runtime_free(rt);
}

/* TENANCY=on: the tenant of the authorizer claims is the request's, and the
 * metric line of the invocation names it (a property, not a dimension). */
static void test_runtime_tenant(void **state)
{
    (void)state;
    lambda_env("price-fetcher");
    setenv("TENANCY", "on", 1);
    char err[512];
    struct px_lambda_runtime *rt = NULL;
    assert_int_equal(px_lambda_runtime_new(NULL, &rt, err, sizeof(err)), PX_OK);
    char ev[2048];
    snprintf(ev, sizeof(ev),
             "{\"version\":\"2.0\",\"routeKey\":\"$default\",\"rawPath\":\"/price\","
             "\"rawQueryString\":\"id=PROD-101&userId=" USER "\",\"headers\":{\"host\":"
             "\"localhost\"},\"requestContext\":{\"requestId\":\"JKJaXmPLvHcESHA=\","
             "\"authorizer\":{\"jwt\":{\"claims\":{\"sub\":\"client-1\",\"scope\":"
             "\"price:read\",\"tenant\":\"default\"},\"scopes\":null}},"
             "\"http\":{\"method\":\"GET\",\"path\":\"/price\",\"sourceIp\":\"127.0.0.1\"}},"
             "\"isBase64Encoded\":false}");
    struct px_lambda_invocation inv;
    px_lambda_invocation_clear(&inv);
    snprintf(inv.request_id, sizeof(inv.request_id), RID);
    inv.event = ev;
    inv.event_len = strlen(ev);
    struct px_lambda_post post;
    char *line = handle_capture(rt, &inv, &post);
    assert_non_null(strstr(post.body, "\"statusCode\":200"));
    json_t *m = metric_line(line);
    assert_string_equal(json_string_value(json_object_get(m, "tenantId")), "default");
    json_decref(m);
    free(line);
    unsetenv("TENANCY");
    px_lambda_runtime_free(rt);
}

static void test_init_errors(void **state)
{
    (void)state;
    char err[512];
    struct px_lambda_runtime *rt = NULL;

    lambda_env("no-such-function");
    assert_int_equal(px_lambda_runtime_new(NULL, &rt, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(rt);
    assert_non_null(strstr(err, "_HANDLER"));
    assert_non_null(strstr(err, "price-fetcher"));

    lambda_env(NULL);
    assert_int_equal(px_lambda_runtime_new(NULL, &rt, err, sizeof(err)), PX_ERR_CONFIG);

    lambda_env("price-fetcher");
    setenv("AUDIT_RETENTION_DAYS", "abc", 1);
    assert_int_equal(px_lambda_runtime_new(NULL, &rt, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AUDIT_RETENTION_DAYS"));
    unsetenv("AUDIT_RETENTION_DAYS");

    lambda_env("price-fetcher");
    setenv("PRICE_DB", "sqlite:/nonexistent-dir/prices.db", 1);
    assert_int_not_equal(px_lambda_runtime_new(NULL, &rt, err, sizeof(err)), PX_OK);
    assert_null(rt);
    assert_non_null(strstr(err, "PRICE_DB"));

    unsetenv("AWS_LAMBDA_RUNTIME_API");
    assert_int_equal(px_lambda_runtime_new(NULL, &rt, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AWS_LAMBDA_RUNTIME_API"));
    const struct px_lambda_opts bad = {.runtime_api = "host/path"};
    assert_int_equal(px_lambda_runtime_new(&bad, &rt, err, sizeof(err)), PX_ERR_CONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_trace_env),
        cmocka_unit_test_setup_teardown(test_runtime_handle, setup_stores, teardown_stores),
        cmocka_unit_test_setup_teardown(test_runtime_tenant, setup_stores, teardown_stores),
        cmocka_unit_test_setup_teardown(test_init_errors, setup_stores, teardown_stores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
