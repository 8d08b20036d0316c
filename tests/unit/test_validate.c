/* test_validate.c: allow-list query validation and the value checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kernel/validate.h"

struct q {
    const char *id;
    const char *user;
    long limit;
    const char *from;
    const char *cursor;
};

static const struct px_param_spec params[] = {
    {"id", PX_P_PRODUCT_ID, true, offsetof(struct q, id), 0, 0},
    {"userId", PX_P_UUID, true, offsetof(struct q, user), 0, 0},
    {"limit", PX_P_INT, false, offsetof(struct q, limit), 1, 1000},
    {"from", PX_P_TIMESTAMP, false, offsetof(struct q, from), 0, 0},
    {"cursor", PX_P_TOKEN, false, offsetof(struct q, cursor), 0, 16},
};
static const struct px_schema schema = {params, PX_COUNTOF(params)};

#define U1 "123e4567-e89b-12d3-a456-426614174000"

static void test_product_ids(void **state)
{
    (void)state;
    char max[PX_MAX_PRODUCT_ID + 2];
    memset(max, 'A', sizeof(max));
    max[PX_MAX_PRODUCT_ID] = '\0'; /* 64 */
    assert_true(px_valid_product_id(max));
    max[PX_MAX_PRODUCT_ID] = 'A';
    max[PX_MAX_PRODUCT_ID + 1] = '\0'; /* 65 */
    assert_false(px_valid_product_id(max));

    static const char *const good[] = {"PROD-101",    "a",     "Z",       "0", "9-",
                                       "abc-DEF-123", "1-2-3", "prod--x", "X-"};
    for (size_t i = 0; i < PX_COUNTOF(good); i++) {
        if (!px_valid_product_id(good[i]))
            fail_msg("should be valid: %s", good[i]);
    }
    static const char *const bad[] = {
        "",
        "-PROD",
        "PROD 101",
        "PROD_101",
        "PROD.101",
        "PROD/101",
        "' OR '1'='1",
        "1; DROP TABLE prices;--",
        "PROD-101'--",
        "%00",
        "PROD%00",
        "PROD\x01",
        "PRÖD",
        "\xc3\xa9t\xc3\xa9",
        "\xef\xbc\xa1",     /* fullwidth A */
        "PROD\xe2\x80\x8b", /* zero-width space */
        "<script>",
        " PROD",
        "PROD\n",
        "../etc",
    };
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        if (px_valid_product_id(bad[i]))
            fail_msg("should be invalid: %s", bad[i]);
    }
    assert_false(px_valid_product_id(NULL));
}

static void test_uuids(void **state)
{
    (void)state;
    static const char *const good[] = {
        U1,
        "123E4567-E89B-12D3-A456-426614174000",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-FFFF-ffff-FFFF-ffffffffffff",
    };
    for (size_t i = 0; i < PX_COUNTOF(good); i++)
        assert_true(px_valid_uuid(good[i]));
    static const char *const bad[] = {
        "",
        "123e4567e89b12d3a456426614174000",
        "{123e4567-e89b-12d3-a456-426614174000}",
        "123e4567-e89b-12d3-a456-42661417400",
        "123e4567-e89b-12d3-a456-4266141740000",
        "123e4567-e89b-12d3-a456_426614174000",
        "123e4567-e89b-12d3-a4560426614174000",
        "g23e4567-e89b-12d3-a456-426614174000",
        "123e4567-e89b-12d3-a456-42661417400 ",
        " 123e4567-e89b-12d3-a456-426614174000",
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
        "123e4567-e89b-12d3-a456-42661417400%",
        "1' OR '1'='1",
    };
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        if (px_valid_uuid(bad[i]))
            fail_msg("should be invalid: %s", bad[i]);
    }
    assert_false(px_valid_uuid(NULL));
}

static void test_timestamps(void **state)
{
    (void)state;
    static const char *const good[] = {
        "2026-01-23T12:00:00Z",           "2026-01-23T12:00:00.123Z", "2026-01-23T12:00:00.1Z",
        "2026-01-23T12:00:00.123456789Z", "2024-02-29T00:00:00Z",     "2000-02-29T23:59:59Z",
        "2016-12-31T23:59:60Z",           "1970-01-01T00:00:00Z",     "2026-12-31T23:59:59.999Z",
        "2026-04-30T00:00:00Z",
    };
    for (size_t i = 0; i < PX_COUNTOF(good); i++) {
        if (!px_valid_timestamp(good[i]))
            fail_msg("should be valid: %s", good[i]);
    }
    static const char *const bad[] = {
        "",
        "2026-01-23",
        "2026-01-23T12:00:00",
        "2026-01-23T12:00:00+00:00",
        "2026-01-23 12:00:00Z",
        "2026-01-23t12:00:00z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-01-23T24:00:00Z",
        "2026-01-23T12:60:00Z",
        "2026-01-23T12:00:61Z",
        "2026-01-23T12:00:00.Z",
        "2026-01-23T12:00:00.1234567890Z",
        "2026-01-23T12:00:00.123ZZ",
        "2026-1-23T12:00:00Z",
        "+2026-01-23T12:00:00Z",
        "2026-01-23T12:00:00.12aZ",
    };
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        if (px_valid_timestamp(bad[i]))
            fail_msg("should be invalid: %s", bad[i]);
    }
    assert_false(px_valid_timestamp(NULL));
}

static void test_request_ids(void **state)
{
    (void)state;
    assert_true(px_valid_request_id(U1));
    assert_true(px_valid_request_id("abc.DEF_123:x-y"));
    char s[PX_MAX_REQUEST_ID + 2];
    memset(s, 'a', sizeof(s));
    s[PX_MAX_REQUEST_ID] = '\0';
    assert_true(px_valid_request_id(s));
    s[PX_MAX_REQUEST_ID] = 'a';
    s[PX_MAX_REQUEST_ID + 1] = '\0';
    assert_false(px_valid_request_id(s));
    static const char *const bad[] = {"", "a b", "a/b", "a\"b", "a\nb", "é", "a;b", "a%20"};
    for (size_t i = 0; i < PX_COUNTOF(bad); i++)
        assert_false(px_valid_request_id(bad[i]));
    assert_false(px_valid_request_id(NULL));
}

/* Runs the schema on pairs; returns rc and fills out/v. */
static px_rc run(struct px_arena *a, const struct px_kv *pairs, size_t n, bool invalid,
                 struct q *out, struct px_validation *v)
{
    struct px_kv *copy = px_arena_alloc(a, (n ? n : 1) * sizeof(*copy));
    if (n)
        memcpy(copy, pairs, n * sizeof(*copy));
    struct px_request req = {.arena = a, .query = copy, .nquery = n, .query_invalid = invalid};
    memset(out, 0, sizeof(*out));
    out->limit = 100;
    return px_validate_query(&schema, &req, out, v);
}

static void expect_details(const struct px_validation *v, const char *const *want, size_t n)
{
    if (v->ndetails != n) {
        for (size_t i = 0; i < v->ndetails; i++)
            print_message("got %s: %s\n", v->details[i].field, v->details[i].reason);
        fail_msg("expected %zu details, got %zu", n, v->ndetails);
    }
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(v->details[i].field, want[2 * i]);
        assert_string_equal(v->details[i].reason, want[2 * i + 1]);
    }
}

static void test_valid_query(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct q out;
    struct px_validation v;
    struct px_kv ok[] = {{"userId", "123E4567-E89B-12D3-A456-426614174000"},
                         {"id", "PROD-101"},
                         {"limit", "1000"},
                         {"from", "2026-01-23T12:00:00.123Z"},
                         {"cursor", "abc=="}};
    assert_int_equal(run(a, ok, 5, false, &out, &v), PX_OK);
    assert_int_equal(v.ndetails, 0);
    assert_string_equal(out.id, "PROD-101");
    assert_string_equal(out.user, U1); /* lower-cased copy */
    assert_int_equal(out.limit, 1000);
    assert_string_equal(out.from, "2026-01-23T12:00:00.123Z");
    assert_string_equal(out.cursor, "abc==");

    /* optional ones absent: pointers stay NULL, the int keeps its prior value */
    assert_int_equal(run(a, ok, 2, false, &out, &v), PX_OK);
    assert_int_equal(out.limit, 100);
    assert_null(out.from);
    assert_null(out.cursor);
    px_arena_free(a);
}

static void test_invalid_queries(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct q out;
    struct px_validation v;

    /* nothing at all */
    assert_int_equal(run(a, NULL, 0, false, &out, &v), PX_ERR_INVALID);
    expect_details(&v, (const char *[]){"id", "is required", "userId", "is required"}, 2);

    /* every kind of failure, all reported, in order */
    struct px_kv all[] = {
        {"id", "' OR '1'='1"}, {"userId", "{" U1 "}"}, {"limit", "0"},
        {"from", "yesterday"}, {"cursor", "a b"},      {"admin", "true"},
        {"id", "PROD-1"},      {"id", "PROD-2"},       {"admin", "x"},
    };
    assert_int_equal(run(a, all, PX_COUNTOF(all), false, &out, &v), PX_ERR_INVALID);
    expect_details(&v,
                   (const char *[]){
                       "id",
                       "must be 1-64 characters of A-Z a-z 0-9 - and start with a letter or digit",
                       "userId",
                       "must be a UUID",
                       "limit",
                       "must be an integer between 1 and 1000",
                       "from",
                       "must be an RFC 3339 UTC timestamp",
                       "cursor",
                       "must be 1-16 printable characters",
                       "admin",
                       "unknown parameter",
                       "id",
                       "must not be repeated",
                   },
                   7);

    /* the malformed query string replaces everything else */
    struct px_kv one[] = {{"bogus", "1"}};
    assert_int_equal(run(a, one, 1, true, &out, &v), PX_ERR_INVALID);
    expect_details(&v, (const char *[]){"query", "malformed query string"}, 1);

    /* repeated with the same value is still repeated; empty value is a type error */
    struct px_kv rep[] = {{"id", "P1"}, {"userId", U1}, {"userId", U1}, {"limit", ""}};
    assert_int_equal(run(a, rep, 4, false, &out, &v), PX_ERR_INVALID);
    expect_details(&v,
                   (const char *[]){"userId", "must not be repeated", "limit",
                                    "must be an integer between 1 and 1000"},
                   2);

    /* case matters in names */
    struct px_kv upper[] = {{"ID", "P1"}, {"userid", U1}};
    assert_int_equal(run(a, upper, 2, false, &out, &v), PX_ERR_INVALID);
    expect_details(&v,
                   (const char *[]){"ID", "unknown parameter", "userid", "unknown parameter", "id",
                                    "is required", "userId", "is required"},
                   4);
    px_arena_free(a);
}

static void test_ints(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct q out;
    struct px_validation v;
    static const struct {
        const char *in;
        bool ok;
        long want;
    } cases[] = {
        {"1", true, 1},     {"1000", true, 1000},
        {"007", true, 7},   {"0", false, 0},
        {"1001", false, 0}, {"-1", false, 0},
        {"+5", false, 0},   {" 5", false, 0},
        {"5 ", false, 0},   {"5x", false, 0},
        {"0x10", false, 0}, {"1e3", false, 0},
        {"", false, 0},     {"99999999999999999999", false, 0},
        {"%00", false, 0},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        struct px_kv p[] = {{"id", "P"}, {"userId", U1}, {"limit", cases[i].in}};
        px_rc rc = run(a, p, 3, false, &out, &v);
        if ((rc == PX_OK) != cases[i].ok)
            fail_msg("limit=%s: rc %d", cases[i].in, rc);
        if (cases[i].ok)
            assert_int_equal(out.limit, cases[i].want);
    }
    px_arena_free(a);
}

static void test_unknown_name_is_bounded(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct q out;
    struct px_validation v;
    char name[300];
    memset(name, 'x', sizeof(name));
    name[0] = '\x01';
    name[sizeof(name) - 1] = '\0';
    struct px_kv p[] = {{"id", "P"}, {"userId", U1}, {name, "1"}};
    assert_int_equal(run(a, p, 3, false, &out, &v), PX_ERR_INVALID);
    assert_int_equal(v.ndetails, 1);
    assert_int_equal(strlen(v.details[0].field), 64);
    assert_int_equal(v.details[0].field[0], '?');
    assert_string_equal(v.details[0].reason, "unknown parameter");

    /* a cut never splits a UTF-8 sequence: 63 x then a 2-byte é */
    char u[80];
    memset(u, 'x', 63);
    memcpy(u + 63, "\xc3\xa9tail", 7);
    struct px_kv p2[] = {{"id", "P"}, {"userId", U1}, {u, "1"}};
    assert_int_equal(run(a, p2, 3, false, &out, &v), PX_ERR_INVALID);
    assert_int_equal(strlen(v.details[0].field), 63);

    /* more failures than the detail table holds: dropped, not overflowed */
    struct px_kv many[PX_MAX_QUERY_PARAMS * 2];
    char names[PX_MAX_QUERY_PARAMS * 2][8];
    for (size_t i = 0; i < PX_COUNTOF(many); i++) {
        snprintf(names[i], sizeof(names[i]), "u%zu", i);
        many[i].key = names[i];
        many[i].value = "";
    }
    assert_int_equal(run(a, many, PX_COUNTOF(many), false, &out, &v), PX_ERR_INVALID);
    assert_int_equal(v.ndetails, PX_MAX_DETAILS);
    px_arena_free(a);
}

static void test_tokens(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct q out;
    struct px_validation v;
    static const struct {
        const char *in;
        bool ok;
    } cases[] = {
        {"a", true},
        {"0123456789abcdef", true},
        {"0123456789abcdefg", false},
        {"", false},
        {"a b", false},
        {"a\tb", false},
        {"\xc3\xa9", false},
        {"a\x7f", false},
        {"eyJ+/=_-.~!", true},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        struct px_kv p[] = {{"id", "P"}, {"userId", U1}, {"cursor", cases[i].in}};
        px_rc rc = run(a, p, 3, false, &out, &v);
        if ((rc == PX_OK) != cases[i].ok)
            fail_msg("cursor=%s: rc %d", cases[i].in, rc);
    }
    px_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_product_ids), cmocka_unit_test(test_uuids),
        cmocka_unit_test(test_timestamps),  cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_valid_query), cmocka_unit_test(test_invalid_queries),
        cmocka_unit_test(test_ints),        cmocka_unit_test(test_unknown_name_is_bounded),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
