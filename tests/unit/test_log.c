/* test_log.c: JSON line logs, redaction, caps, one write per line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/log.h"
#include "kernel/validate.h"

#define U1 "123e4567-e89b-12d3-a456-426614174000"

static int pipe_rd = -1, pipe_wr = -1;
static char line[16384];

static int setup(void **state)
{
    (void)state;
    int p[2];
    if (pipe(p))
        return -1;
    pipe_rd = p[0];
    pipe_wr = p[1];
    fcntl(pipe_rd, F_SETFL, O_NONBLOCK);
    px_log_set_fd(pipe_wr);
    px_log_init(PX_LOG_DEBUG, "price-fetcher");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    px_log_set_fd(STDOUT_FILENO);
    close(pipe_rd);
    close(pipe_wr);
    return 0;
}

/* The next line written, without its newline, or NULL when none was. */
static const char *next_line(void)
{
    ssize_t n = read(pipe_rd, line, sizeof(line) - 1);
    if (n <= 0)
        return NULL;
    line[n] = '\0';
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', (size_t)n - 1)); /* exactly one line per event */
    line[n - 1] = '\0';
    return line;
}

static json_t *parse(const char *l)
{
    json_error_t err;
    json_t *j = json_loads(l, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, l);
    assert_true(json_is_object(j));
    return j;
}

static const char *str(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

static void test_basic_line(void **state)
{
    (void)state;
    px_log_msg(PX_LOG_INFO, "req-1", "hello %d", 5);
    json_t *j = parse(next_line());
    assert_true(px_valid_timestamp(str(j, "ts")));
    assert_int_equal(strlen(str(j, "ts")), 24);
    assert_string_equal(str(j, "level"), "info");
    assert_string_equal(str(j, "msg"), "hello 5");
    assert_string_equal(str(j, "function"), "price-fetcher");
    assert_string_equal(str(j, "requestId"), "req-1");
    json_decref(j);

    px_log_fields(PX_LOG_ERROR, NULL, "x", NULL, 0);
    j = parse(next_line());
    assert_string_equal(str(j, "level"), "error");
    assert_true(json_is_null(json_object_get(j, "requestId")));
    json_decref(j);
}

static int calls;
static int bump(void)
{
    return ++calls;
}

static void test_levels(void **state)
{
    (void)state;
    px_log_init(PX_LOG_WARN, "price-fetcher");
    calls = 0;
    PX_DEBUG(NULL, "%d", bump());
    PX_INFO(NULL, "%d", bump());
    assert_int_equal(calls, 0); /* arguments are not even evaluated */
    assert_null(next_line());
    px_log_fields(PX_LOG_INFO, NULL, "no", NULL, 0);
    assert_null(next_line());
    assert_false(px_log_enabled(PX_LOG_INFO));
    assert_true(px_log_enabled(PX_LOG_ERROR));
    PX_WARN(NULL, "%d", bump());
    assert_int_equal(calls, 1);
    json_t *j = parse(next_line());
    assert_string_equal(str(j, "level"), "warn");
    json_decref(j);
    px_log_init(PX_LOG_DEBUG, "price-fetcher");
}

/* Secrets in messages and in field values: none may reach the line. */
static const struct {
    const char *text;
    const char *secret;
} leaks[] = {
    {"lookup for user " U1 " done", U1},
    {"lookup for user 123E4567-E89B-12D3-A456-426614174000", "123E4567-E89B"},
    {"raw 123e4567e89b12d3a456426614174000 id", "123e4567e89b12d3a456426614174000"},
    {"sk=AUDIT#2026#" U1 "#x", "426614174000"},
    {"{" U1 "}", "e89b-12d3"},
    {"Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"},
    {"header \"bearer   s3cr3t\" seen", "s3cr3t"},
    {"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "eyJzdWIiOiIxMjM0In0"},
    {"key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE"},
    {"key=ASIAY34FZKBOKMUTVV7A;", "ASIAY34FZKBOKMUTVV7A"},
    {"secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end", "wJalrXUtnFEMI"},
    {"GET /price?id=PROD-101&userId=" U1 " 200", "id=PROD-101"},
    {"url=https://api.example.com/v1/x?token=abc123&y=2", "token=abc123"},
    {"'/price?id=PROD-7'", "id=PROD-7"},
    {"mail john.doe+tag@example.co.uk now", "john.doe"},
    {"to:" U1 "x@example.com", "example.com"},
};

static void test_redaction_in_msg_and_fields(void **state)
{
    (void)state;
    for (size_t i = 0; i < PX_COUNTOF(leaks); i++) {
        struct px_kv f[] = {{"note", leaks[i].text}, {"productId", "PROD-101"}};
        px_log_fields(PX_LOG_INFO, "rid-1", leaks[i].text, f, 2);
        const char *l = next_line();
        assert_non_null(l);
        if (strstr(l, leaks[i].secret))
            fail_msg("leaked %s: %s", leaks[i].secret, l);
        json_t *j = parse(l);
        assert_non_null(strstr(str(j, "msg"), "[REDACTED]"));
        assert_non_null(strstr(str(j, "note"), "[REDACTED]"));
        assert_string_equal(str(j, "productId"), "PROD-101");
        json_decref(j);

        px_log_msg(PX_LOG_INFO, NULL, "via printf: %s", leaks[i].text);
        l = next_line();
        if (strstr(l, leaks[i].secret))
            fail_msg("leaked %s: %s", leaks[i].secret, l);
    }
}

static void test_scrub_exact(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"user " U1 " ok", "user [REDACTED] ok"},
        {"GET /price?id=1 HTTP/1.1", "GET /price?[REDACTED] HTTP/1.1"},
        {"Authorization: Bearer xyz", "Authorization: Bearer [REDACTED]"},
        {"AKIAIOSFODNN7EXAMPLE", "[REDACTED]"},
        {"a@b.io", "[REDACTED]"},
        /* what must stay */
        {"what?", "what?"},
        {"a ? b", "a ? b"},
        {"PROD-101 costs 99.99 USD", "PROD-101 costs 99.99 USD"},
        {"price store: sqlite:./var/prices.db", "price store: sqlite:./var/prices.db"},
        {"user@localhost", "user@localhost"},
        {"the bearer", "the bearer"},
        {"deadbeef", "deadbeef"},
        {"", ""},
    };
    char out[256];
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        px_log_scrub(cases[i].in, out, sizeof(out));
        assert_string_equal(out, cases[i].out);
    }
    /* always terminated, truncated to the room given */
    char small[8];
    px_log_scrub("abcdefghijkl", small, sizeof(small));
    assert_string_equal(small, "abcdefg");
    px_log_scrub(U1, small, sizeof(small));
    assert_string_equal(small, "[REDACT");
    px_log_scrub(NULL, small, sizeof(small));
    assert_string_equal(small, "");
}

static void test_denied_keys(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "userId",
        "user_id",
        "USER-ID",
        "authorization",
        "Cookie",
        "set-cookie",
        "Set_Cookie",
        "query",
        "queryString",
        "QUERY_STRING",
        "body",
        "password",
        "secret",
        "token",
        "x-amz-security-token",
        "aws_secret_access_key",
        "AWS_SESSION_TOKEN",
        "apiKey",
        "x-api-key",
        "refreshToken",
    };
    for (size_t i = 0; i < PX_COUNTOF(keys); i++) {
        struct px_kv f[] = {{keys[i], "plain-value-42"}};
        px_log_fields(PX_LOG_INFO, NULL, "m", f, 1);
        const char *l = next_line();
        if (strstr(l, "plain-value-42"))
            fail_msg("key %s not redacted: %s", keys[i], l);
        json_t *j = parse(l);
        assert_string_equal(str(j, keys[i]), "[REDACTED]");
        json_decref(j);
    }
    /* a field cannot shadow a built-in key */
    struct px_kv f[] = {{"msg", "other"}, {"requestId", "fake"}, {"route", NULL}};
    px_log_fields(PX_LOG_INFO, "real", "m", f, 3);
    json_t *j = parse(next_line());
    assert_string_equal(str(j, "msg"), "m");
    assert_string_equal(str(j, "requestId"), "real");
    assert_string_equal(str(j, "field_msg"), "other");
    assert_true(json_is_null(json_object_get(j, "field_route")));
    json_decref(j);
}

static void test_request_line(void **state)
{
    (void)state;
    struct px_kv q[] = {{"id", "PROD-101"}, {"userId", U1}};
    struct px_request req = {
        .method = "GET",
        .path = "/products/" U1,
        .query = q,
        .nquery = 2,
        .request_id = "0f8fad5b-d9cb-469f-a165-70867728950e",
        .function = "product-service",
        .route = "/products/{id}",
    };
    struct px_response resp = {.status = 200};
    px_log_request(&req, &resp, 12.5);
    const char *l = next_line();
    assert_null(strstr(l, U1));
    assert_null(strstr(l, "PROD-101"));
    json_t *j = parse(l);
    assert_string_equal(str(j, "msg"), "request");
    assert_string_equal(str(j, "method"), "GET");
    assert_string_equal(str(j, "route"), "/products/{id}");
    assert_string_equal(str(j, "function"), "product-service");
    /* our own request id is the one UUID a line carries on purpose */
    assert_string_equal(str(j, "requestId"), "0f8fad5b-d9cb-469f-a165-70867728950e");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_true(json_number_value(json_object_get(j, "latencyMs")) == 12.5);
    assert_null(json_object_get(j, "coldStart"));
    json_decref(j);

    /* latency keeps at most 3 decimals; a 5xx is an error line */
    resp.status = 503;
    req.route = NULL;
    px_log_set_cold_start(true);
    px_log_request(&req, &resp, 0.123456);
    l = next_line();
    assert_non_null(strstr(l, "\"latencyMs\":0.123,"));
    j = parse(l);
    assert_string_equal(str(j, "level"), "error");
    assert_true(json_is_null(json_object_get(j, "route")));
    assert_true(json_is_true(json_object_get(j, "coldStart")));
    json_decref(j);

    px_log_set_cold_start(false);
    px_log_request(&req, &resp, 7);
    l = next_line();
    assert_non_null(strstr(l, "\"latencyMs\":7,"));
    j = parse(l);
    assert_true(json_is_false(json_object_get(j, "coldStart")));
    json_decref(j);

    /* a request id of a shape we do not accept is scrubbed like any value */
    req.request_id = "Bearer abc def";
    px_log_request(&req, &resp, 1);
    l = next_line();
    assert_null(strstr(l, "abc"));
    json_decref(parse(l));
}

/* Short values are remembered per thread after scrubbing (method, route and
 * function repeat on every line): a repeated untrusted value must come out
 * scrubbed every time, and one that differs by a byte is scrubbed afresh. */
static void test_repeated_values_still_scrubbed(void **state)
{
    (void)state;
    struct px_request req = {
        .method = "GET",
        .request_id = "0f8fad5b-d9cb-469f-a165-70867728950e",
        .function = "price-fetcher",
        .route = "/price",
    };
    struct px_response resp = {.status = 200};
    for (int i = 0; i < 20; i++) {
        /* a caller-chosen method carrying a user id, then a harmless one */
        req.method = i % 2 ? U1 : "GET";
        px_log_request(&req, &resp, 1);
        const char *l = next_line();
        assert_null(strstr(l, U1));
        json_t *j = parse(l);
        assert_string_equal(str(j, "method"), i % 2 ? "[REDACTED]" : "GET");
        assert_string_equal(str(j, "route"), "/price");
        json_decref(j);

        struct px_kv f[] = {{"note", "a@b.io"}, {"note2", "ab.io"}};
        px_log_fields(PX_LOG_INFO, NULL, "a@b.io", f, 2);
        l = next_line();
        assert_null(strstr(l, "a@b.io"));
        j = parse(l);
        assert_string_equal(str(j, "msg"), "[REDACTED]");
        assert_string_equal(str(j, "note"), "[REDACTED]");
        assert_string_equal(str(j, "note2"), "ab.io");
        json_decref(j);
    }
    char out[64];
    for (int i = 0; i < 3; i++) {
        px_log_scrub("AKIAIOSFODNN7EXAMPLE", out, sizeof(out));
        assert_string_equal(out, "[REDACTED]");
        /* too small to hold the remembered output: cut as before */
        px_log_scrub("AKIAIOSFODNN7EXAMPLE", out, 4);
        assert_string_equal(out, "[RE");
    }
}

static void test_caps_and_encoding(void **state)
{
    (void)state;
    static char big[40000];
    /* plain, control bytes (6x on escaping), invalid UTF-8 */
    static const char fill[] = {'z', '\x01', '\xff', '"'};
    for (size_t k = 0; k < sizeof(fill); k++) {
        memset(big, fill[k], sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        /* long enough that the scrubbed text alone fills the line */
        if (fill[k] == 'z')
            big[8191] = '\0';
        px_log_fields(PX_LOG_INFO, "r", big, NULL, 0);
        const char *l = next_line();
        assert_non_null(l);
        assert_true(strlen(l) + 1 <= 8192);
        json_t *j = parse(l);
        assert_true(json_is_true(json_object_get(j, "truncated")));
        assert_string_equal(str(j, "requestId"), "r");
        json_decref(j);
    }
    /* many big fields: the line still fits and stays JSON */
    struct px_kv f[40];
    char keys[40][16];
    for (size_t i = 0; i < PX_COUNTOF(f); i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
        f[i].key = keys[i];
        f[i].value = big;
    }
    memset(big, 'x', 3000);
    big[3000] = '\0';
    px_log_fields(PX_LOG_INFO, "r", "many", f, PX_COUNTOF(f));
    const char *l = next_line();
    assert_true(strlen(l) + 1 <= 8192);
    json_t *j = parse(l);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_string_equal(str(j, "msg"), "many");
    json_decref(j);

    px_log_fields(PX_LOG_INFO, "r", "caf\xc3\xa9 \xc3 \t\n", NULL, 0);
    j = parse(next_line());
    assert_string_equal(str(j, "msg"), "caf\xc3\xa9 \xef\xbf\xbd \t\n");
    json_decref(j);
}

#define THREADS    4
#define PER_THREAD 300

static void *writer(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        struct px_kv f[] = {{"thread", id % 2 ? "odd" : "even"}};
        px_log_fields(PX_LOG_INFO, "t", "concurrent line with some padding to make it longer", f,
                      1);
    }
    return NULL;
}

static void test_threads_never_interleave(void **state)
{
    (void)state;
    char path[] = "/tmp/px_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    px_log_set_fd(fd);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    px_log_set_fd(pipe_wr);

    off_t size = lseek(fd, 0, SEEK_END);
    char *all = malloc((size_t)size + 1);
    assert_int_equal(pread(fd, all, (size_t)size, 0), size);
    all[size] = '\0';
    close(fd);
    int count = 0;
    for (char *p = all, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        *nl = '\0';
        json_decref(parse(p));
        count++;
    }
    assert_int_equal(count, THREADS * PER_THREAD);
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_line),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_redaction_in_msg_and_fields),
        cmocka_unit_test(test_scrub_exact),
        cmocka_unit_test(test_denied_keys),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_repeated_values_still_scrubbed),
        cmocka_unit_test(test_caps_and_encoding),
        cmocka_unit_test(test_threads_never_interleave),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
