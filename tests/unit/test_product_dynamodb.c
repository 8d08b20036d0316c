/* test_product_dynamodb.c: the DynamoDB product store's item encoding and keys
 * (docs/internals/products.md); its reads and writes run against dynalite in
 * tests/e2e/test_products.py and tests/integration/test_dynamodb.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kernel/arena.h"
#include "store/product_dynamodb.h"

static const char *s_of(const json_t *it, const char *name)
{
    return json_string_value(json_object_get(json_object_get(it, name), "S"));
}

static struct px_product sample(void)
{
    struct px_product p;
    memset(&p, 0, sizeof(p));
    snprintf(p.id, sizeof(p.id), "PROD-101");
    p.name = "Widget";
    p.description = "";
    p.category = "tools";
    snprintf(p.status, sizeof(p.status), "ACTIVE");
    p.attributes = "{\"k\":\"v\"}";
    p.has_price = true;
    snprintf(p.amount, sizeof(p.amount), "12.50");
    snprintf(p.currency, sizeof(p.currency), "EUR");
    snprintf(p.effective_from, sizeof(p.effective_from), "2026-01-23T12:00:00.123Z");
    p.version = 7;
    snprintf(p.created_at, sizeof(p.created_at), "2026-01-23T11:00:00.000Z");
    snprintf(p.updated_at, sizeof(p.updated_at), "2026-01-23T12:00:00.123Z");
    return p;
}

static void test_item_keys_and_round_trip(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 16);
    assert_non_null(a);
    struct px_product p = sample(), q;
    json_t *it = px_ddb_product_item(NULL, &p);
    assert_non_null(it);
    assert_string_equal(s_of(it, "pk"), "T#default#PRODUCT#PROD-101");
    /* another tenant: every key of its own (CONTRACT §12) */
    json_t *other = px_ddb_product_item("acme", &p);
    assert_non_null(other);
    assert_string_equal(s_of(other, "pk"), "T#acme#PRODUCT#PROD-101");
    assert_string_equal(s_of(other, "gsi1pk"), "T#acme#CATEGORY#tools");
    assert_string_equal(s_of(other, "gsi2pk"), "T#acme#STATUS#ACTIVE");
    assert_int_equal(strncmp(s_of(other, "gsi3pk"), "T#acme#PRODUCTS#", 16), 0);
    json_decref(other);
    assert_string_equal(s_of(it, "sk"), "META");
    assert_string_equal(s_of(it, "gsi1pk"), "T#default#CATEGORY#tools");
    assert_string_equal(s_of(it, "gsi2pk"), "T#default#STATUS#ACTIVE");
    char g3[64];
    snprintf(g3, sizeof(g3), "T#default#PRODUCTS#%u", px_ddb_product_shard("PROD-101"));
    assert_string_equal(s_of(it, "gsi3pk"), g3);
    assert_string_equal(s_of(it, "gsi1sk"), "PROD-101");
    assert_string_equal(s_of(it, "priceAmount"), "12.50"); /* the text, not a number */
    assert_string_equal(json_string_value(json_object_get(json_object_get(it, "version"), "N")),
                        "7");
    /* emulators refuse empty strings: an empty description is left out */
    assert_null(json_object_get(it, "description"));

    assert_int_equal(px_ddb_product_parse(it, a, &q), PX_OK);
    assert_string_equal(q.id, p.id);
    assert_string_equal(q.name, "Widget");
    assert_string_equal(q.description, "");
    assert_string_equal(q.category, "tools");
    assert_string_equal(q.status, "ACTIVE");
    assert_string_equal(q.attributes, "{\"k\":\"v\"}");
    assert_true(q.has_price);
    assert_string_equal(q.amount, "12.50");
    assert_string_equal(q.currency, "EUR");
    assert_string_equal(q.effective_from, p.effective_from);
    assert_int_equal(q.version, 7);
    assert_string_equal(q.created_at, p.created_at);
    assert_string_equal(q.updated_at, p.updated_at);
    json_decref(it);

    /* no price, no attributes: neither stored, both read back as before */
    p.has_price = false;
    p.attributes = "{}";
    it = px_ddb_product_item(NULL, &p);
    assert_null(json_object_get(it, "priceAmount"));
    assert_null(json_object_get(it, "attributes"));
    assert_int_equal(px_ddb_product_parse(it, a, &q), PX_OK);
    assert_false(q.has_price);
    assert_string_equal(q.attributes, "{}");
    json_decref(it);
    px_arena_free(a);
}

static void test_parse_refuses(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 16);
    struct px_product q;
    static const char *const bad[] = {
        "{}",
        "{\"productId\":{\"S\":\"X\"}}",                            /* no version */
        "{\"productId\":{\"S\":\"X\"},\"version\":{\"S\":\"1\"}}",  /* mistyped */
        "{\"productId\":{\"S\":\"X\"},\"version\":{\"N\":\"0\"}}",  /* below 1 */
        "{\"productId\":{\"S\":\"X\"},\"version\":{\"N\":\"1x\"}}", /* not a number */
        "{\"productId\":{\"N\":\"1\"},\"version\":{\"N\":\"1\"}}",  /* id not a string */
        "{\"productId\":{\"S\":\"X\"},\"version\":{\"N\":\"1\"},"
        "\"status\":{\"S\":\"FAR-TOO-LONG-A-STATUS\"}}", /* over its field */
        "{\"productId\":{\"S\":\"X\"},\"version\":{\"N\":\"1\"},"
        "\"priceAmount\":{\"S\":\"1.00\"},\"priceCurrency\":{\"S\":\"EURO\"}}",
    };
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        json_t *it = json_loads(bad[i], 0, NULL);
        assert_non_null(it);
        if (px_ddb_product_parse(it, a, &q) != PX_ERR_PROTOCOL)
            fail_msg("accepted: %s", bad[i]);
        json_decref(it);
    }
    px_arena_free(a);
}

static void test_idempotency_keys(void **state)
{
    (void)state;
    char a[512], b[512];
    px_ddb_idem_pk("alice", "PUT /products/P-1/price", "k1", a, sizeof(a));
    assert_string_equal(a, "T#default#IDEM#5:alice#PUT /products/P-1/price#k1");
    /* a principal holding '#' cannot take another principal's key */
    px_ddb_idem_pk("a#PUT /x", "PUT /x", "k", a, sizeof(a));
    px_ddb_idem_pk("a", "PUT /x#PUT /x", "k", b, sizeof(b));
    assert_string_not_equal(a, b);
}

static void test_shards_stable(void **state)
{
    (void)state;
    unsigned seen[4] = {0};
    char id[16];
    for (int i = 1; i <= 1000; i++) {
        snprintf(id, sizeof(id), "PROD-%05d", i);
        unsigned s = px_ddb_product_shard(id);
        assert_true(s < 4);
        assert_int_equal(s, px_ddb_product_shard(id));
        seen[s]++;
    }
    for (int s = 0; s < 4; s++) /* spread, not all in one partition */
        assert_true(seen[s] > 150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_item_keys_and_round_trip),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_idempotency_keys),
        cmocka_unit_test(test_shards_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
