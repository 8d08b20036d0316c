/* test_metrics.c: counters and their Prometheus text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/metrics.h"

static char *render(void)
{
    struct px_buf b;
    px_buf_init(&b, 1 << 20);
    assert_int_equal(px_metrics_render(&b), PX_OK);
    return px_buf_take(&b);
}

/* Value of the sample line starting with `series` (name + labels), or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static const char F[] = "price-fetcher";
static const char R[] = "/price";

static void test_render_format(void **state)
{
    (void)state;
    px_metrics_request(F, R, 200, 0.3);
    px_metrics_request(F, R, 200, 2);
    px_metrics_request(F, R, 404, 20000);
    px_metrics_request(F, R, 418, 1);
    px_metrics_request(NULL, NULL, 404, 1);
    px_metrics_audit(true);
    px_metrics_audit(true);
    px_metrics_audit(false);
    px_metrics_audit_batch(1);
    px_metrics_audit_batch(8);
    px_metrics_audit_batch(1000);
    px_metrics_price(true);
    px_metrics_price(false);
    px_metrics_audit_wait(0.4);
    px_metrics_audit_wait(3);
    px_metrics_audit_write(0.2);
    char *t = render();

    /* every sample belongs to a family with HELP and TYPE */
    static const char *const fams[] = {
        "pricing_http_requests_total counter",   "pricing_http_request_duration_seconds histogram",
        "pricing_audit_records_total counter",   "pricing_audit_batch_size histogram",
        "pricing_price_lookups_total counter",   "pricing_audit_commit_seconds histogram",
        "pricing_audit_write_seconds histogram",
    };
    for (size_t i = 0; i < PX_COUNTOF(fams); i++) {
        char want[128];
        snprintf(want, sizeof(want), "# TYPE %s\n", fams[i]);
        if (!strstr(t, want))
            fail_msg("missing %s", want);
        char name[96];
        snprintf(name, sizeof(name), "# HELP %.*s ", (int)strcspn(fams[i], " "), fams[i]);
        assert_non_null(strstr(t, name));
    }
    for (const char *p = t; *p; p = strchr(p, '\n') + 1) {
        assert_non_null(strchr(p, '\n')); /* every line ends with a newline */
        if (*p != '#')
            assert_memory_equal(p, "pricing_", 8);
    }

    const char *ok = "pricing_http_requests_total{function=\"price-fetcher\",route=\"/price\","
                     "code=\"200\"}";
    assert_true(sample(t, ok) == 2);
    assert_true(sample(t, "pricing_http_requests_total{function=\"price-fetcher\","
                          "route=\"/price\",code=\"404\"}") == 1);
    assert_true(sample(t, "pricing_http_requests_total{function=\"price-fetcher\","
                          "route=\"/price\",code=\"4xx\"}") == 1);
    assert_true(sample(t, "pricing_http_requests_total{function=\"\",route=\"\",code=\"404\"}") ==
                1);
    assert_true(sample(t, "pricing_http_request_duration_seconds_bucket{le=\"0.0005\"}") == 1);
    assert_true(sample(t, "pricing_http_request_duration_seconds_bucket{le=\"0.001\"}") == 3);
    assert_true(sample(t, "pricing_http_request_duration_seconds_bucket{le=\"0.0025\"}") == 4);
    assert_true(sample(t, "pricing_http_request_duration_seconds_bucket{le=\"10\"}") == 4);
    assert_true(sample(t, "pricing_http_request_duration_seconds_bucket{le=\"+Inf\"}") == 5);
    assert_true(sample(t, "pricing_http_request_duration_seconds_count") == 5);
    double sum = sample(t, "pricing_http_request_duration_seconds_sum");
    assert_true(sum > 20.0042 && sum < 20.0044);
    assert_true(sample(t, "pricing_audit_records_total{result=\"ok\"}") == 2);
    assert_true(sample(t, "pricing_audit_records_total{result=\"failed\"}") == 1);
    assert_true(sample(t, "pricing_audit_batch_size_bucket{le=\"1\"}") == 1);
    assert_true(sample(t, "pricing_audit_batch_size_bucket{le=\"8\"}") == 2);
    assert_true(sample(t, "pricing_audit_batch_size_bucket{le=\"512\"}") == 2);
    assert_true(sample(t, "pricing_audit_batch_size_bucket{le=\"+Inf\"}") == 3);
    assert_true(sample(t, "pricing_audit_batch_size_sum") == 1009);
    assert_true(sample(t, "pricing_audit_commit_seconds_bucket{le=\"0.0005\"}") == 1);
    assert_true(sample(t, "pricing_audit_commit_seconds_bucket{le=\"0.0025\"}") == 1);
    assert_true(sample(t, "pricing_audit_commit_seconds_bucket{le=\"0.005\"}") == 2);
    assert_true(sample(t, "pricing_audit_commit_seconds_count") == 2);
    sum = sample(t, "pricing_audit_commit_seconds_sum");
    assert_true(sum > 0.00339 && sum < 0.00341);
    assert_true(sample(t, "pricing_audit_write_seconds_bucket{le=\"0.0005\"}") == 1);
    assert_true(sample(t, "pricing_audit_write_seconds_count") == 1);
    assert_true(sample(t, "pricing_price_lookups_total{result=\"found\"}") == 1);
    assert_true(sample(t, "pricing_price_lookups_total{result=\"not_found\"}") == 1);
    free(t);
}

#define THREADS    4
#define PER_THREAD 20000
static const char R2[] = "/products/{id}";

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        px_metrics_request("product-service", R2, 201, 0.1);
        px_metrics_price(i % 2);
    }
    return NULL;
}

static void test_concurrent_counts(void **state)
{
    (void)state;
    char *before = render();
    double found0 = sample(before, "pricing_price_lookups_total{result=\"found\"}");
    free(before);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = render();
    assert_true(sample(text, "pricing_http_requests_total{function=\"product-service\","
                             "route=\"/products/{id}\",code=\"201\"}") == THREADS * PER_THREAD);
    assert_true(sample(text, "pricing_price_lookups_total{result=\"found\"}") - found0 ==
                THREADS * PER_THREAD / 2);
    /* one series per (function, route, code): claimed once under contention */
    const char *first = strstr(text, "route=\"/products/{id}\",code=\"201\"");
    assert_non_null(first);
    assert_null(strstr(first + 1, "route=\"/products/{id}\",code=\"201\""));
    free(text);
}

static void test_label_escaping_and_overflow(void **state)
{
    (void)state;
    px_metrics_request("f\"n", "/a\\b\n", 200, 1);
    char *t = render();
    assert_non_null(strstr(t, "function=\"f\\\"n\",route=\"/a\\\\b\\n\""));
    free(t);
    /* more (function, route) pairs than slots: the rest count as "other" */
    static char routes[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(routes[i], sizeof(routes[i]), "/r%d", i);
        px_metrics_request("many", routes[i], 200, 1);
    }
    t = render();
    assert_true(sample(t, "pricing_http_requests_total{function=\"other\",route=\"other\","
                          "code=\"200\"}") > 0);
    free(t);
}

/* TENANCY=on: one series per tenant, at most 32 of them; the rest are "other".
 * Before any tenant is counted (TENANCY=off) no tenant series is rendered. */
static void test_tenants_bounded(void **state)
{
    (void)state;
    char *t = render();
    assert_null(strstr(t, "pricing_tenant_requests_total"));
    free(t);
    char name[16];
    px_metrics_tenant(NULL, 200); /* tenancy off: nothing */
    px_metrics_tenant("acme", 200);
    px_metrics_tenant("acme", 200);
    px_metrics_tenant("acme", 404);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "t%d", i); /* a buffer reused: names are copied */
        px_metrics_tenant(name, 200);
    }
    t = render();
    assert_true(sample(t, "pricing_tenant_requests_total{tenant=\"acme\",code=\"200\"}") == 2);
    assert_true(sample(t, "pricing_tenant_requests_total{tenant=\"acme\",code=\"404\"}") == 1);
    assert_true(sample(t, "pricing_tenant_requests_total{tenant=\"t0\",code=\"200\"}") == 1);
    assert_true(sample(t, "pricing_tenant_requests_total{tenant=\"t30\",code=\"200\"}") == 1);
    assert_true(sample(t, "pricing_tenant_requests_total{tenant=\"t31\",code=\"200\"}") < 0);
    assert_true(sample(t, "pricing_tenant_requests_total{tenant=\"other\",code=\"200\"}") == 69);
    size_t series = 0;
    for (const char *p = strstr(t, "pricing_tenant_requests_total{"); p;
         p = strstr(p + 1, "pricing_tenant_requests_total{"))
        series++;
    assert_int_equal(series, 32 + 1 + 1); /* 32 tenants, acme's 404, other */
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_format),
        cmocka_unit_test(test_concurrent_counts),
        cmocka_unit_test(test_label_escaping_and_overflow),
        cmocka_unit_test(test_tenants_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
