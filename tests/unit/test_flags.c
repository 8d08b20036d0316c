/* test_flags.c: feature flag validation and evaluation (kernel/flags.h):
 * every rule kind, the edge percentages, the bucket's distribution and the
 * refusals of flags that cannot be evaluated. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "kernel/flags.h"

static struct px_flag *parse_ok(const char *text, struct px_arena *a)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    struct px_validation v = {.ndetails = 0};
    struct px_flag *f = NULL;
    px_rc rc = px_flag_parse(doc, a, &v, &f);
    if (rc)
        fail_msg("refused %s: %s %s", text, v.ndetails ? v.details[0].field : "",
                 v.ndetails ? v.details[0].reason : "");
    json_decref(doc); /* the flag keeps its own reference */
    return f;
}

struct eval_case {
    const char *flag;
    const char *key;   /* targeting key, NULL: none */
    const char *attrs; /* JSON object text, NULL: none */
    const char *value; /* expected value as compact JSON; NULL: no value */
    const char *reason;
    const char *variant;
    const char *error;
};

static void test_eval_table(void **state)
{
    (void)state;
    const char *rules =
        "{\"default\":\"off\",\"rules\":["
        "{\"when\":{\"attribute\":\"country\",\"in\":[\"DE\",\"AT\"]},\"value\":\"de\"},"
        "{\"when\":{\"attribute\":\"tier\",\"in\":[3,4]},\"value\":\"gold\"},"
        "{\"when\":{\"attribute\":\"beta\",\"in\":[true]},\"value\":\"beta\"},"
        "{\"when\":{\"attribute\":\"targetingKey\",\"in\":[\"vip-1\"]},\"value\":\"vip\"},"
        "{\"when\":{\"attribute\":\"country\",\"in\":[\"FR\"]},\"percentage\":0,\"value\":\"fr0\"},"
        "{\"when\":{\"attribute\":\"country\",\"in\":[\"FR\"]},\"percentage\":100,"
        "\"value\":\"fr100\"}]}";
    const struct eval_case cases[] = {
        /* no rules: STATIC for everybody, key or not */
        {"{\"default\":true}", NULL, NULL, "true", "STATIC", "default", ""},
        {"{\"default\":{\"a\":1},\"rules\":[]}", "u1", NULL, "{\"a\": 1}", "STATIC", "default", ""},
        /* attribute rules: string, number, boolean, the targeting key */
        {rules, "u1", "{\"country\":\"AT\"}", "\"de\"", "TARGETING_MATCH", "rule-1", ""},
        {rules, "u1", "{\"tier\":4}", "\"gold\"", "TARGETING_MATCH", "rule-2", ""},
        {rules, "u1", "{\"tier\":4.0}", "\"gold\"", "TARGETING_MATCH", "rule-2", ""},
        {rules, "u1", "{\"tier\":\"4\"}", "\"off\"", "DEFAULT", "default", ""},
        {rules, "u1", "{\"beta\":true}", "\"beta\"", "TARGETING_MATCH", "rule-3", ""},
        {rules, "vip-1", NULL, "\"vip\"", "TARGETING_MATCH", "rule-4", ""},
        /* first rule first */
        {rules, "vip-1", "{\"country\":\"DE\"}", "\"de\"", "TARGETING_MATCH", "rule-1", ""},
        /* when + percentage: 0 never, 100 always */
        {rules, "u1", "{\"country\":\"FR\"}", "\"fr100\"", "SPLIT", "rule-6", ""},
        /* nothing matches */
        {rules, "u1", "{\"country\":\"US\"}", "\"off\"", "DEFAULT", "default", ""},
        {rules, "u1", NULL, "\"off\"", "DEFAULT", "default", ""},
        /* percentages alone */
        {"{\"default\":1,\"rules\":[{\"percentage\":0,\"value\":2}]}", "u1", NULL, "1", "DEFAULT",
         "default", ""},
        {"{\"default\":1,\"rules\":[{\"percentage\":100,\"value\":2}]}", "u1", NULL, "2", "SPLIT",
         "rule-1", ""},
        {"{\"default\":1,\"rules\":[{\"percentage\":100.0,\"value\":2.5}]}", "u1", NULL, "2.5",
         "SPLIT", "rule-1", ""},
        /* a percentage reached without a targeting key is an error, not a guess */
        {"{\"default\":1,\"rules\":[{\"percentage\":50,\"value\":2}]}", NULL, NULL, NULL, "ERROR",
         "", "TARGETING_KEY_MISSING"},
        {"{\"default\":1,\"rules\":[{\"percentage\":50,\"value\":2}]}", "", NULL, NULL, "ERROR", "",
         "TARGETING_KEY_MISSING"},
        /* ... but a `when` that did not match never gets that far */
        {rules, NULL, "{\"country\":\"US\"}", "\"off\"", "DEFAULT", "default", ""},
        /* attributes that are not an object */
        {rules, "u1", "[1]", NULL, "ERROR", "", "INVALID_CONTEXT"},
    };
    struct px_arena *a = px_arena_new(1 << 20);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct eval_case *c = &cases[i];
        struct px_flag *f = parse_ok(c->flag, a);
        json_t *attrs = c->attrs ? json_loads(c->attrs, JSON_DECODE_ANY, NULL) : NULL;
        const struct px_flag_ctx ctx = {.targeting_key = c->key, .attributes = attrs};
        struct px_flag_result r;
        px_flag_eval(f, "flags.t", &ctx, &r);
        if (strcmp(px_flag_reason_name(r.reason), c->reason) || strcmp(r.variant, c->variant) ||
            strcmp(px_flag_error_name(r.error), c->error))
            fail_msg("case %zu: reason %s variant %s error %s", i, px_flag_reason_name(r.reason),
                     r.variant, px_flag_error_name(r.error));
        if (c->value) {
            assert_non_null(r.value);
            char *got = json_dumps(r.value, JSON_ENCODE_ANY);
            if (strcmp(got, c->value))
                fail_msg("case %zu: value %s, expected %s", i, got, c->value);
            free(got);
        } else {
            assert_null(r.value);
        }
        json_decref(attrs);
        px_flag_free(f);
    }
    px_arena_free(a);
}

/* String attributes on the stack (price-fetcher's hot path) match like JSON ones;
 * a JSON member of the same name wins; targetingKey is always the targeting key. */
static void test_string_attrs(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_flag *f =
        parse_ok("{\"default\":0,\"rules\":["
                 "{\"when\":{\"attribute\":\"productId\",\"in\":[\"P-1\"]},\"value\":1},"
                 "{\"when\":{\"attribute\":\"targetingKey\",\"in\":[\"u9\"]},"
                 "\"value\":2},"
                 "{\"when\":{\"attribute\":\"tier\",\"in\":[3]},\"value\":3}]}",
                 a);
    const struct px_flag_attr p1[] = {{"productId", "P-1"}};
    const struct px_flag_attr p2[] = {{"productId", "P-2"}, {"tier", "3"}};
    struct px_flag_result r;
    const struct px_flag_ctx c1 = {.targeting_key = "u1", .attrs = p1, .nattrs = 1};
    px_flag_eval(f, "flags.s", &c1, &r);
    assert_string_equal(r.variant, "rule-1");
    const struct px_flag_ctx c2 = {.targeting_key = "u9", .attrs = p2, .nattrs = 2};
    px_flag_eval(f, "flags.s", &c2, &r);
    assert_string_equal(r.variant, "rule-2");
    /* a string "3" is not the number 3 */
    const struct px_flag_ctx c3 = {.targeting_key = "u1", .attrs = p2, .nattrs = 2};
    px_flag_eval(f, "flags.s", &c3, &r);
    assert_int_equal(r.reason, PX_FLAG_DEFAULT);
    /* the JSON object's member wins over a string attribute of the same name */
    json_t *j = json_pack("{s:s}", "productId", "P-2");
    const struct px_flag_ctx c4 = {
        .targeting_key = "u1", .attributes = j, .attrs = p1, .nattrs = 1};
    px_flag_eval(f, "flags.s", &c4, &r);
    assert_int_equal(r.reason, PX_FLAG_DEFAULT);
    /* targetingKey in the JSON object does not override the targeting key */
    json_t *k = json_pack("{s:s}", "targetingKey", "u9");
    const struct px_flag_ctx c5 = {.targeting_key = "u1", .attributes = k};
    px_flag_eval(f, "flags.s", &c5, &r);
    assert_int_equal(r.reason, PX_FLAG_DEFAULT);
    json_decref(j);
    json_decref(k);
    px_flag_free(f);
    px_arena_free(a);
}

/* One user always gets the same answer; the bucket depends on the flag too. */
static void test_bucket_stable(void **state)
{
    (void)state;
    unsigned b = px_flag_bucket("flags.x", "user-1");
    assert_true(b < PX_FLAG_BUCKETS);
    for (int i = 0; i < 10; i++)
        assert_int_equal(px_flag_bucket("flags.x", "user-1"), b);
    /* The documented hash, so any other implementation can reproduce it:
     * SHA-256("flags.x\nuser-1"), first 8 bytes big-endian, mod 10000. */
    assert_int_equal(px_flag_bucket("flags.x", "user-1"), 4806);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        char flag[32];
        snprintf(flag, sizeof(flag), "flags.f%d", i);
        differ += px_flag_bucket(flag, "user-1") != b;
    }
    assert_true(differ > 90);
}

/* Over 100,000 keys the share served by a percentage rule is within ±1
 * percentage point of the percentage. */
static void test_distribution(void **state)
{
    (void)state;
    const double pcts[] = {0, 1, 10, 25, 33.33, 50, 75, 99.5, 100};
    struct px_arena *a = px_arena_new(1 << 20);
    for (size_t p = 0; p < sizeof(pcts) / sizeof(pcts[0]); p++) {
        char text[128];
        snprintf(text, sizeof(text),
                 "{\"default\":false,\"rules\":[{\"percentage\":%g,"
                 "\"value\":true}]}",
                 pcts[p]);
        struct px_flag *f = parse_ok(text, a);
        long on = 0;
        enum { N = 100000 };
        for (int i = 0; i < N; i++) {
            char key[48];
            snprintf(key, sizeof(key), "%08x-user-%d", (unsigned)i * 2654435761u, i);
            const struct px_flag_ctx ctx = {.targeting_key = key};
            struct px_flag_result r;
            px_flag_eval(f, "flags.rollout", &ctx, &r);
            assert_int_equal(r.error, PX_FLAG_OK);
            on += json_is_true(r.value);
        }
        double share = 100.0 * (double)on / N;
        if (share < pcts[p] - 1.0 || share > pcts[p] + 1.0)
            fail_msg("percentage %g served %.3f%%", pcts[p], share);
        if (pcts[p] == 0)
            assert_int_equal(on, 0);
        if (pcts[p] == 100)
            assert_int_equal(on, N);
        px_flag_free(f);
    }
    px_arena_free(a);
}

struct bad_case {
    const char *flag;
    const char *field; /* the first detail's field */
};

static void test_refused(void **state)
{
    (void)state;
    const struct bad_case cases[] = {
        {"[]", "value"},
        {"true", "value"},
        {"{}", "default"},
        {"{\"default\":null}", "default"},
        {"{\"default\":1,\"extra\":2}", "extra"},
        {"{\"default\":1,\"rules\":{}}", "rules"},
        {"{\"default\":1,\"rules\":[1]}", "rules[0]"},
        {"{\"default\":1,\"rules\":[{\"value\":2}]}", "rules[0]"},
        {"{\"default\":1,\"rules\":[{\"percentage\":10}]}", "rules[0].value"},
        {"{\"default\":1,\"rules\":[{\"percentage\":101,\"value\":2}]}", "rules[0].percentage"},
        {"{\"default\":1,\"rules\":[{\"percentage\":-1,\"value\":2}]}", "rules[0].percentage"},
        {"{\"default\":1,\"rules\":[{\"percentage\":10.005,\"value\":2}]}", "rules[0].percentage"},
        {"{\"default\":1,\"rules\":[{\"percentage\":\"10\",\"value\":2}]}", "rules[0].percentage"},
        {"{\"default\":1,\"rules\":[{\"percentage\":10,\"value\":\"2\"}]}", "rules[0].value"},
        {"{\"default\":true,\"rules\":[{\"percentage\":10,\"value\":1}]}", "rules[0].value"},
        {"{\"default\":1,\"rules\":[{\"percentage\":10,\"value\":2,\"x\":1}]}", "rules[0].x"},
        {"{\"default\":1,\"rules\":[{\"when\":[],\"value\":2}]}", "rules[0].when"},
        {"{\"default\":1,\"rules\":[{\"when\":{\"in\":[\"a\"]},\"value\":2}]}",
         "rules[0].when.attribute"},
        {"{\"default\":1,\"rules\":[{\"when\":{\"attribute\":\"\",\"in\":[\"a\"]},\"value\":2}]}",
         "rules[0].when.attribute"},
        {"{\"default\":1,\"rules\":[{\"when\":{\"attribute\":\"c\",\"in\":[]},\"value\":2}]}",
         "rules[0].when.in"},
        {"{\"default\":1,\"rules\":[{\"when\":{\"attribute\":\"c\",\"in\":[[1]]},\"value\":2}]}",
         "rules[0].when.in"},
        {"{\"default\":1,\"rules\":[{\"when\":{\"attribute\":\"c\",\"in\":\"a\"},\"value\":2}]}",
         "rules[0].when.in"},
        {"{\"default\":1,\"rules\":[{\"when\":{\"attribute\":\"c\",\"in\":[1],\"y\":0},"
         "\"value\":2}]}",
         "rules[0].when.y"},
        {"{\"default\":1,\"rules\":[{\"percentage\":1,\"value\":2},{\"value\":3}]}", "rules[1]"},
    };
    struct px_arena *a = px_arena_new(1 << 20);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *doc = json_loads(cases[i].flag, JSON_DECODE_ANY, NULL);
        assert_non_null(doc);
        struct px_validation v = {.ndetails = 0};
        struct px_flag *f = (struct px_flag *)1;
        px_rc rc = px_flag_parse(doc, a, &v, &f);
        if (rc != PX_ERR_INVALID || f || v.ndetails == 0 ||
            strcmp(v.details[0].field, cases[i].field))
            fail_msg("case %zu (%s): rc %d, field %s", i, cases[i].flag, rc,
                     v.ndetails ? v.details[0].field : "(none)");
        json_decref(doc);
    }
    /* every failure is listed, not just the first */
    json_t *doc = json_loads("{\"x\":1,\"rules\":[{\"percentage\":200}]}", 0, NULL);
    struct px_validation v = {.ndetails = 0};
    struct px_flag *f = NULL;
    assert_int_equal(px_flag_parse(doc, a, &v, &f), PX_ERR_INVALID);
    assert_int_equal(v.ndetails, 4); /* x, default, percentage, value */
    json_decref(doc);
    /* 65 rules is one too many */
    json_t *many = json_pack("{s:i,s:[]}", "default", 1, "rules");
    for (int i = 0; i < PX_FLAG_RULES_MAX + 1; i++)
        json_array_append_new(json_object_get(many, "rules"),
                              json_pack("{s:i,s:i}", "percentage", 1, "value", 2));
    v.ndetails = 0;
    assert_int_equal(px_flag_parse(many, a, &v, &f), PX_ERR_INVALID);
    assert_string_equal(v.details[0].field, "rules");
    json_array_remove(json_object_get(many, "rules"), 0);
    v.ndetails = 0;
    assert_int_equal(px_flag_parse(many, a, &v, &f), PX_OK);
    px_flag_free(f);
    json_decref(many);
    px_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_table),    cmocka_unit_test(test_string_attrs),
        cmocka_unit_test(test_bucket_stable), cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
