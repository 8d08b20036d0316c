/* test_query.c: the strict query-string and path decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kernel/query.h"

#define MAXP 4

struct qcase {
    const char *raw;
    size_t len; /* 0: strlen(raw) */
    px_rc rc;
    size_t n;
    const char *kv[MAXP][2];
};

static const struct qcase cases[] = {
    /* valid */
    {"", 0, PX_OK, 0, {{0}}},
    {"id=PROD-101&userId=0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e",
     0,
     PX_OK,
     2,
     {{"id", "PROD-101"}, {"userId", "0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e"}}},
    {"a=1&a=2&a=3", 0, PX_OK, 3, {{"a", "1"}, {"a", "2"}, {"a", "3"}}},
    {"b=2&a=1&b=3", 0, PX_OK, 3, {{"b", "2"}, {"a", "1"}, {"b", "3"}}},
    {"q=hello+world", 0, PX_OK, 1, {{"q", "hello world"}}},
    {"a+b=c+d", 0, PX_OK, 1, {{"a b", "c d"}}},
    {"q=a%2Bb", 0, PX_OK, 1, {{"q", "a+b"}}},
    {"q=%20", 0, PX_OK, 1, {{"q", " "}}},
    {"%41%4a%4A=%7e", 0, PX_OK, 1, {{"AJJ", "~"}}},
    {"k", 0, PX_OK, 1, {{"k", ""}}},
    {"k=", 0, PX_OK, 1, {{"k", ""}}},
    {"a=b=c", 0, PX_OK, 1, {{"a", "b=c"}}},
    {"a=1&&b=2", 0, PX_OK, 2, {{"a", "1"}, {"b", "2"}}},
    {"a=1&", 0, PX_OK, 1, {{"a", "1"}}},
    {"&a=1", 0, PX_OK, 1, {{"a", "1"}}},
    {"&", 0, PX_OK, 0, {{0}}},
    {"&&&", 0, PX_OK, 0, {{0}}},
    {"n=%C3%A9", 0, PX_OK, 1, {{"n", "\xC3\xA9"}}},
    {"n=%e2%82%ac", 0, PX_OK, 1, {{"n", "\xE2\x82\xAC"}}},
    {"n=%F0%9F%98%80", 0, PX_OK, 1, {{"n", "\xF0\x9F\x98\x80"}}},
    {"n=%F4%8F%BF%BF", 0, PX_OK, 1, {{"n", "\xF4\x8F\xBF\xBF"}}}, /* U+10FFFF */
    {"n=%EF%BF%BD", 0, PX_OK, 1, {{"n", "\xEF\xBF\xBD"}}},
    {"n=\xC3\xA9", 0, PX_OK, 1, {{"n", "\xC3\xA9"}}}, /* raw UTF-8 */
    {"a=1&b", 3, PX_OK, 1, {{"a", "1"}}},             /* len bounds the input */
    /* bad escapes */
    {"a=%", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%4", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%G1", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%4G", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%%41", 0, PX_ERR_INVALID, 0, {{0}}},
    {"%=1", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%4", 3, PX_ERR_INVALID, 0, {{0}}},
    /* decoded NUL and control characters */
    {"a=%00", 0, PX_ERR_INVALID, 0, {{0}}},
    {"%00=a", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=x%00y", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%0A", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%0d", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%09", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%1F", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%7F", 0, PX_ERR_INVALID, 0, {{0}}},
    /* raw control characters and spaces */
    {"a=b c", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a b=c", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=b\tc", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=b\nc", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=b\rc", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=b\x7F", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=b\x01", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=b\0c", 5, PX_ERR_INVALID, 0, {{0}}},
    /* empty key with '=' */
    {"=x", 0, PX_ERR_INVALID, 0, {{0}}},
    {"=", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=1&=2", 0, PX_ERR_INVALID, 0, {{0}}},
    /* invalid UTF-8 after decoding */
    {"a=%C0%AF", 0, PX_ERR_INVALID, 0, {{0}}},       /* overlong '/' */
    {"a=%C1%BF", 0, PX_ERR_INVALID, 0, {{0}}},       /* overlong */
    {"a=%E0%80%AF", 0, PX_ERR_INVALID, 0, {{0}}},    /* overlong, 3 bytes */
    {"a=%E0%9F%BF", 0, PX_ERR_INVALID, 0, {{0}}},    /* overlong U+07FF */
    {"a=%F0%80%80%AF", 0, PX_ERR_INVALID, 0, {{0}}}, /* overlong, 4 bytes */
    {"a=%F0%8F%BF%BF", 0, PX_ERR_INVALID, 0, {{0}}}, /* overlong U+FFFF */
    {"a=%ED%A0%80", 0, PX_ERR_INVALID, 0, {{0}}},    /* surrogate U+D800 */
    {"a=%ED%BF%BF", 0, PX_ERR_INVALID, 0, {{0}}},    /* surrogate U+DFFF */
    {"a=%F4%90%80%80", 0, PX_ERR_INVALID, 0, {{0}}}, /* U+110000 */
    {"a=%F5%80%80%80", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%FF", 0, PX_ERR_INVALID, 0, {{0}}},
    {"a=%80", 0, PX_ERR_INVALID, 0, {{0}}},          /* lone continuation */
    {"a=%C3", 0, PX_ERR_INVALID, 0, {{0}}},          /* truncated */
    {"a=%E2%82", 0, PX_ERR_INVALID, 0, {{0}}},       /* truncated */
    {"a=%C3%28", 0, PX_ERR_INVALID, 0, {{0}}},       /* bad continuation */
    {"%C3=%C3%A9", 0, PX_ERR_INVALID, 0, {{0}}},     /* in the key too */
    {"a=\xC0\xAF", 0, PX_ERR_INVALID, 0, {{0}}},     /* raw overlong */
    {"a=\xFF", 0, PX_ERR_INVALID, 0, {{0}}},         /* raw invalid byte */
    {"a=\xC3%A9", 0, PX_OK, 1, {{"a", "\xC3\xA9"}}}, /* mixed raw and escaped */
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct qcase *c = &cases[i];
        struct px_arena *a = px_arena_new(1 << 20);
        assert_non_null(a);
        struct px_kv *kv = (struct px_kv *)1;
        size_t n = 99;
        size_t len = c->len ? c->len : strlen(c->raw);
        px_rc rc = px_query_parse(a, c->raw, len, &kv, &n);
        if (rc != c->rc)
            fail_msg("case %zu \"%s\": rc %d, want %d", i, c->raw, rc, c->rc);
        if (rc == PX_OK) {
            if (n != c->n)
                fail_msg("case %zu \"%s\": %zu pairs, want %zu", i, c->raw, n, c->n);
            for (size_t k = 0; k < n; k++) {
                assert_string_equal(kv[k].key, c->kv[k][0]);
                assert_string_equal(kv[k].value, c->kv[k][1]);
            }
            if (n == 0)
                assert_null(kv);
        }
        px_arena_free(a);
    }
}

/* k1=v&k2=v&... with `pairs` non-empty pieces and `empties` extra '&'. */
static size_t make_query(char *buf, size_t cap, size_t pairs, size_t empties)
{
    size_t len = 0;
    for (size_t i = 0; i < pairs; i++) {
        int w = snprintf(buf + len, cap - len, "%sk%zu=v%zu", i ? "&" : "", i, i);
        assert_true(w > 0 && (size_t)w < cap - len);
        len += (size_t)w;
    }
    for (size_t i = 0; i < empties; i++) {
        assert_true(len + 1 < cap);
        buf[len++] = '&';
    }
    buf[len] = '\0';
    return len;
}

static void test_caps(void **state)
{
    (void)state;
    char buf[4096];
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_kv *kv;
    size_t n;
    assert_non_null(a);

    size_t len = make_query(buf, sizeof(buf), PX_MAX_QUERY_PARAMS, 0);
    assert_int_equal(px_query_parse(a, buf, len, &kv, &n), PX_OK);
    assert_int_equal(n, PX_MAX_QUERY_PARAMS);
    assert_string_equal(kv[PX_MAX_QUERY_PARAMS - 1].key, "k31");
    assert_string_equal(kv[PX_MAX_QUERY_PARAMS - 1].value, "v31");

    /* empty pieces do not count against the cap */
    len = make_query(buf, sizeof(buf), PX_MAX_QUERY_PARAMS, 50);
    assert_int_equal(px_query_parse(a, buf, len, &kv, &n), PX_OK);
    assert_int_equal(n, PX_MAX_QUERY_PARAMS);

    len = make_query(buf, sizeof(buf), PX_MAX_QUERY_PARAMS + 1, 0);
    assert_int_equal(px_query_parse(a, buf, len, &kv, &n), PX_ERR_TOO_LARGE);
    assert_int_equal(n, 0);
    len = make_query(buf, sizeof(buf), 200, 0);
    assert_int_equal(px_query_parse(a, buf, len, &kv, &n), PX_ERR_TOO_LARGE);

    /* the arena cap is honoured */
    struct px_arena *small = px_arena_new(8192);
    assert_non_null(small);
    char big[20001];
    memset(big, 'x', sizeof(big) - 1);
    big[0] = 'k';
    big[1] = '=';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(px_query_parse(small, big, strlen(big), &kv, &n), PX_ERR_NOMEM);
    px_arena_free(small);

    /* NULL with length 0 is an empty query */
    assert_int_equal(px_query_parse(a, NULL, 0, &kv, &n), PX_OK);
    assert_int_equal(n, 0);
    px_arena_free(a);
}

struct pcase {
    const char *in;
    px_rc rc;
    const char *out;
};

static const struct pcase paths[] = {
    {"/price", PX_OK, "/price"},
    {"/", PX_OK, "/"},
    {"/a%20b", PX_OK, "/a b"},
    {"/a+b", PX_OK, "/a+b"}, /* no '+' rule in paths */
    {"/products/PROD%2D101", PX_OK, "/products/PROD-101"},
    {"/caf%C3%A9", PX_OK, "/caf\xC3\xA9"},
    {"/a%2Fb", PX_OK, "/a/b"},
    {"", PX_ERR_INVALID, NULL},
    {"price", PX_ERR_INVALID, NULL},
    {"%2Fprice", PX_ERR_INVALID, NULL},
    {"/a b", PX_ERR_INVALID, NULL},
    {"/a\tb", PX_ERR_INVALID, NULL},
    {"/a%00", PX_ERR_INVALID, NULL},
    {"/a%0a", PX_ERR_INVALID, NULL},
    {"/a%7f", PX_ERR_INVALID, NULL},
    {"/a%", PX_ERR_INVALID, NULL},
    {"/a%2", PX_ERR_INVALID, NULL},
    {"/a%zz", PX_ERR_INVALID, NULL},
    {"/%C0%AF", PX_ERR_INVALID, NULL},
    {"/%ED%A0%80", PX_ERR_INVALID, NULL},
    {"/%F4%90%80%80", PX_ERR_INVALID, NULL},
    {"/\xFF", PX_ERR_INVALID, NULL},
};

static void test_paths(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 16);
    assert_non_null(a);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char *out = (char *)1;
        px_rc rc = px_url_decode_path(a, paths[i].in, strlen(paths[i].in), &out);
        if (rc != paths[i].rc)
            fail_msg("path \"%s\": rc %d, want %d", paths[i].in, rc, paths[i].rc);
        if (rc == PX_OK)
            assert_string_equal(out, paths[i].out);
        else
            assert_null(out);
    }
    char *out;
    assert_int_equal(px_url_decode_path(a, NULL, 0, &out), PX_ERR_INVALID);
    px_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
