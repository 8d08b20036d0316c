/* test_product.c: product-service's body validation, If-Match parsing, list
 * cursors, and the product store's version checks and idempotency states. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "px_test.h"

#include <sqlite3.h>
#include "kernel/arena.h"
#include "store/product.h"
#include "functions/product-service/dto.h"
#include "functions/product-service/handler.h"

struct fx {
    struct px_arena *a;
};

static int setup(void **state)
{
    static struct fx f;
    f.a = px_arena_new(1 << 20);
    *state = &f;
    return f.a ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    px_arena_free(f->a);
    return 0;
}

/* true when v lists field. */
static bool has(const struct px_validation *v, const char *field)
{
    for (size_t i = 0; i < v->ndetails; i++)
        if (strcmp(v->details[i].field, field) == 0)
            return true;
    return false;
}

static px_rc price(struct fx *f, const char *json, struct px_ps_price_in *in,
                   struct px_validation *v)
{
    v->ndetails = 0;
    return px_ps_price_in_parse(json, strlen(json), f->a, in, v);
}

static void test_price_amount_kept_exactly(void **state)
{
    struct fx *f = *state;
    struct px_ps_price_in in;
    struct px_validation v;
    static const struct {
        const char *json, *amount, *currency;
    } ok[] = {
        {"{\"amount\":\"12.50\",\"currency\":\"EUR\"}", "12.50", "EUR"},
        {"{\"amount\":12.50,\"currency\":\"EUR\"}", "12.50", "EUR"},
        {" { \"currency\" : \"USD\" , \"amount\" : 7.10 } ", "7.10", "USD"},
        {"{\"amount\":0,\"currency\":\"JPY\"}", "0", "JPY"},
        {"{\"amount\":\"1999\",\"currency\":\"JPY\"}", "1999", "JPY"},
        {"{\"amount\":\"12.345\",\"currency\":\"KWD\"}", "12.345", "KWD"},
        {"{\"amount\":99999999999999999999.99,\"currency\":\"USD\"}", "99999999999999999999.99",
         "USD"},
    };
    for (size_t i = 0; i < PX_COUNTOF(ok); i++) {
        assert_int_equal(price(f, ok[i].json, &in, &v), PX_OK);
        assert_string_equal(in.amount, ok[i].amount);
        assert_string_equal(in.currency, ok[i].currency);
    }
}

static void test_price_refused(void **state)
{
    struct fx *f = *state;
    struct px_ps_price_in in;
    struct px_validation v;
    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"amount\":-1,\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\"-0.01\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":1e3,\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\"1E3\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\"1.005\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\"1.5\",\"currency\":\"JPY\"}", "amount"},
        {"{\"amount\":\"1.\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\".5\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\" 1\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\"NaN\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\"Infinity\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":123456789012345678901,\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\"123456789012345678901.00\",\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":null,\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":true,\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":[1],\"currency\":\"EUR\"}", "amount"},
        {"{\"currency\":\"EUR\"}", "amount"},
        {"{\"amount\":\"1.00\",\"currency\":\"eur\"}", "currency"},
        {"{\"amount\":\"1.00\",\"currency\":\"XXY\"}", "currency"},
        {"{\"amount\":\"1.00\",\"currency\":\"EURO\"}", "currency"},
        {"{\"amount\":\"1.00\",\"currency\":978}", "currency"},
        {"{\"amount\":\"1.00\"}", "currency"},
        {"{\"amount\":\"1.00\",\"currency\":\"EUR\",\"extra\":1}", "extra"},
        {"{\"amount\":NaN,\"currency\":\"EUR\"}", "body"},
        {"{\"amount\":1e999,\"currency\":\"EUR\"}", "body"},
        {"{\"amount\":\"1\",\"amount\":\"2\",\"currency\":\"EUR\"}", "body"},
        {"[\"amount\"]", "body"},
        {"", "body"},
        {"{\"amount\":\"1\",\"currency\":\"EUR\"} x", "body"},
    };
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        assert_int_equal(price(f, bad[i].json, &in, &v), PX_ERR_INVALID);
        if (!has(&v, bad[i].field))
            fail_msg("case %zu (%s): no detail for %s", i, bad[i].json, bad[i].field);
    }
    /* every failure listed, not only the first */
    assert_int_equal(price(f, "{\"amount\":\"-1\",\"currency\":\"??\",\"a\":1,\"b\":2}", &in, &v),
                     PX_ERR_INVALID);
    assert_true(has(&v, "amount") && has(&v, "currency") && has(&v, "a") && has(&v, "b"));
}

static void test_product_body(void **state)
{
    struct fx *f = *state;
    struct px_ps_product_in in;
    struct px_validation v = {.ndetails = 0};
    const char *ok = "{\"productId\":\"PROD-9\",\"name\":\"N\",\"category\":\"c\","
                     "\"attributes\":{\"b\":\"2\",\"a\":\"1\"}}";
    assert_int_equal(px_ps_product_in_parse(ok, strlen(ok), true, f->a, &in, &v), PX_OK);
    assert_string_equal(in.product_id, "PROD-9");
    assert_string_equal(in.status, "ACTIVE");
    assert_string_equal(in.description, "");
    assert_string_equal(in.attributes, "{\"a\":\"1\",\"b\":\"2\"}"); /* compact, sorted */

    const char *no_id = "{\"name\":\"N\",\"category\":\"c\"}";
    assert_int_equal(px_ps_product_in_parse(no_id, strlen(no_id), false, f->a, &in, &v), PX_OK);
    assert_null(in.product_id);
    v.ndetails = 0;
    assert_int_equal(px_ps_product_in_parse(no_id, strlen(no_id), true, f->a, &in, &v),
                     PX_ERR_INVALID);
    assert_true(has(&v, "productId"));

    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"productId\":\"-x\",\"name\":\"N\",\"category\":\"c\"}", "productId"},
        {"{\"productId\":\"P\",\"name\":\"\",\"category\":\"c\"}", "name"},
        {"{\"productId\":\"P\",\"name\":7,\"category\":\"c\"}", "name"},
        {"{\"productId\":\"P\",\"name\":\"N\"}", "category"},
        {"{\"productId\":\"P\",\"name\":\"N\",\"category\":\"c\",\"status\":\"ON\"}", "status"},
        {"{\"productId\":\"P\",\"name\":\"N\",\"category\":\"c\",\"attributes\":[]}", "attributes"},
        {"{\"productId\":\"P\",\"name\":\"N\",\"category\":\"c\",\"attributes\":{\"k\":1}}",
         "attributes"},
        {"{\"productId\":\"P\",\"name\":\"N\",\"category\":\"c\",\"price\":1}", "price"},
        {"{\"productId\":\"P\",\"name\":\"N\\u0000x\",\"category\":\"c\"}", "body"},
        {"{\"productId\":\"P\",\"name\":\"line\\nbreak\",\"category\":\"c\"}", "name"},
        {"{\"productId\":\"P\",\"productId\":\"Q\",\"name\":\"N\",\"category\":\"c\"}", "body"},
        {"not json", "body"},
    };
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        v.ndetails = 0;
        assert_int_equal(
            px_ps_product_in_parse(bad[i].json, strlen(bad[i].json), true, f->a, &in, &v),
            PX_ERR_INVALID);
        if (!has(&v, bad[i].field))
            fail_msg("case %zu (%s): no detail for %s", i, bad[i].json, bad[i].field);
    }
}

static void test_amount_rules(void **state)
{
    (void)state;
    assert_null(px_ps_amount_problem("0.5", "EUR"));
    assert_null(px_ps_amount_problem("100.00", "USD"));
    assert_null(px_ps_amount_problem("1.2345", "CLF"));
    assert_non_null(px_ps_amount_problem("1.23456", "CLF"));
    assert_non_null(px_ps_amount_problem("", "EUR"));
    assert_non_null(px_ps_amount_problem("+1", "EUR"));
    assert_non_null(px_ps_amount_problem("0x10", "EUR"));
    assert_non_null(px_ps_amount_problem("01.50", "EUR"));
    assert_null(px_ps_amount_problem("0.50", "EUR"));
    assert_true(px_ps_currency_known("EUR"));
    assert_true(px_ps_currency_known("JPY"));
    assert_false(px_ps_currency_known("EU"));
    assert_false(px_ps_currency_known("UR "));
    assert_false(px_ps_currency_known("R E"));
    assert_false(px_ps_currency_known("XYZ"));
    assert_false(px_ps_currency_known("eur"));
}

static void test_if_match(void **state)
{
    (void)state;
    assert_int_equal(px_ps_if_match("\"3\""), 3);
    assert_int_equal(px_ps_if_match(" \"12\" "), 12);
    assert_int_equal(px_ps_if_match("W/\"7\""), 7);
    assert_int_equal(px_ps_if_match("*"), -1);
    assert_int_equal(px_ps_if_match("3"), 0);
    assert_int_equal(px_ps_if_match("\"\""), 0);
    assert_int_equal(px_ps_if_match("\"0\""), 0);
    assert_int_equal(px_ps_if_match("\"03\""), 0);
    assert_int_equal(px_ps_if_match("\"-1\""), 0);
    assert_int_equal(px_ps_if_match("\"3\", \"4\""), 0);
    assert_int_equal(px_ps_if_match("\"99999999999999999999\""), 0);
    assert_int_equal(px_ps_if_match(NULL), 0);
}

static void test_cursor(void **state)
{
    struct fx *f = *state;
    struct px_ps_list_in in = {.category = "tools", .status = NULL, .limit = 10};
    const char *c = px_ps_cursor_encode(f->a, &in, "PROD-7");
    assert_non_null(c);
    const char *last = NULL;
    in.cursor = c;
    assert_int_equal(px_ps_cursor_decode(&in, f->a, &last), PX_OK);
    assert_string_equal(last, "PROD-7");
    in.category = "other"; /* another query's cursor */
    assert_int_equal(px_ps_cursor_decode(&in, f->a, &last), PX_ERR_INVALID);
    in.category = "tools";
    in.status = "ACTIVE";
    assert_int_equal(px_ps_cursor_decode(&in, f->a, &last), PX_ERR_INVALID);
    in.status = NULL;
    static const char *const junk[] = {"", "A", "!!!!",
                                       "UDEKCgpQUk9ELTAwMDAy=", "UDIKdG9vbHMKCi14"};
    for (size_t i = 0; i < PX_COUNTOF(junk); i++) {
        in.cursor = junk[i];
        assert_int_equal(px_ps_cursor_decode(&in, f->a, &last), PX_ERR_INVALID);
    }
}

/* ---- the store ------------------------------------------------------------------------ */

struct store_fx {
    char dir[64], spec[128];
    struct px_product_store *s;
    struct px_arena *a;
};

static int store_setup(void **state)
{
    static struct store_fx f;
    char err[256];
    if (px_test_tmpdir(f.dir, sizeof(f.dir), "product"))
        return -1;
    snprintf(f.spec, sizeof(f.spec), "sqlite:%s/products.db", f.dir);
    const struct px_product_opts o = {.timeout_ms = 2000, .create = true};
    if (px_product_open(f.spec, &o, &f.s, err, sizeof(err)) != PX_OK)
        return -1;
    f.a = px_arena_new(1 << 20);
    *state = &f;
    return f.a ? 0 : -1;
}

static int store_teardown(void **state)
{
    struct store_fx *f = *state;
    px_product_close(f->s);
    px_arena_free(f->a);
    px_test_rmdir(f->dir);
    return 0;
}

struct apply_arg {
    int calls;
    px_rc answer;
    long seen_version;
};

static px_rc make_next(void *arg, const struct px_product *cur, struct px_product *next)
{
    struct apply_arg *x = arg;
    x->calls++;
    x->seen_version = cur ? cur->version : 0;
    if (cur)
        *next = *cur;
    snprintf(next->id, sizeof(next->id), "PROD-1");
    next->name = "n";
    next->description = "";
    next->category = "c";
    snprintf(next->status, sizeof(next->status), "ACTIVE");
    next->attributes = "{}";
    next->version = cur ? cur->version + 1 : 1;
    snprintf(next->created_at, sizeof(next->created_at), "2026-01-01T00:00:00.000Z");
    snprintf(next->updated_at, sizeof(next->updated_at), "2026-01-01T00:00:00.000Z");
    return x->answer;
}

static void test_store_versions(void **state)
{
    struct store_fx *f = *state;
    struct apply_arg x = {0};
    struct px_product p;
    assert_int_equal(px_product_get(f->s, "PROD-1", f->a, &p), PX_ERR_NOT_FOUND);
    assert_int_equal(
        px_product_apply(f->s, "PROD-1", PX_PRODUCT_AT_VERSION, 1, make_next, &x, f->a),
        PX_ERR_NOT_FOUND);
    assert_int_equal(x.calls, 0);
    assert_int_equal(
        px_product_apply(f->s, "PROD-1", PX_PRODUCT_MUST_NOT_EXIST, 0, make_next, &x, f->a), PX_OK);
    assert_int_equal(
        px_product_apply(f->s, "PROD-1", PX_PRODUCT_MUST_NOT_EXIST, 0, make_next, &x, f->a),
        PX_ERR_CONFLICT);
    assert_int_equal(
        px_product_apply(f->s, "PROD-1", PX_PRODUCT_AT_VERSION, 2, make_next, &x, f->a),
        PX_ERR_STALE);
    assert_int_equal(x.calls, 1); /* refused before the callback: no record, no change */
    assert_int_equal(
        px_product_apply(f->s, "PROD-1", PX_PRODUCT_AT_VERSION, 1, make_next, &x, f->a), PX_OK);
    assert_int_equal(x.seen_version, 1);
    /* a callback that fails (its record could not be made durable) changes nothing */
    x.answer = PX_ERR_UNAVAILABLE;
    assert_int_equal(
        px_product_apply(f->s, "PROD-1", PX_PRODUCT_AT_VERSION, 2, make_next, &x, f->a),
        PX_ERR_UNAVAILABLE);
    assert_int_equal(px_product_get(f->s, "PROD-1", f->a, &p), PX_OK);
    assert_int_equal(p.version, 2);
    x.answer = PX_OK;
    assert_int_equal(
        px_product_apply(f->s, "PROD-1", PX_PRODUCT_AT_VERSION, -1, make_next, &x, f->a), PX_OK);
    assert_int_equal(px_product_get(f->s, "PROD-1", f->a, &p), PX_OK);
    assert_int_equal(p.version, 3);
}

/* CONTRACT §12: one product id in two tenants: versions, reads and lists
 * stay apart; a file made before tenants keeps its rows as "default". */
static void test_store_tenants(void **state)
{
    struct store_fx *f = *state;
    struct apply_arg x = {0};
    struct px_product p;
    assert_int_equal(
        px_product_apply(f->s, "PROD-1", PX_PRODUCT_MUST_NOT_EXIST, 0, make_next, &x, f->a), PX_OK);
    assert_int_equal(px_product_get_in(f->s, "acme", "PROD-1", f->a, &p), PX_ERR_NOT_FOUND);
    assert_int_equal(
        px_product_apply_in(f->s, "acme", "PROD-1", PX_PRODUCT_AT_VERSION, 1, make_next, &x, f->a),
        PX_ERR_NOT_FOUND);
    assert_int_equal(px_product_apply_in(f->s, "acme", "PROD-1", PX_PRODUCT_MUST_NOT_EXIST, 0,
                                         make_next, &x, f->a),
                     PX_OK);
    assert_int_equal(
        px_product_apply_in(f->s, "acme", "PROD-1", PX_PRODUCT_AT_VERSION, 1, make_next, &x, f->a),
        PX_OK);
    assert_int_equal(px_product_get_in(f->s, "acme", "PROD-1", f->a, &p), PX_OK);
    assert_int_equal(p.version, 2);
    assert_int_equal(px_product_get(f->s, "PROD-1", f->a, &p), PX_OK);
    assert_int_equal(p.version, 1);
    assert_int_equal(px_product_get_in(f->s, "default", "PROD-1", f->a, &p), PX_OK);
    assert_int_equal(p.version, 1);
    struct px_product *items = NULL;
    size_t n = 0;
    bool more = false;
    struct px_product_query q = {.limit = 10, .tenant = "globex"};
    assert_int_equal(px_product_list(f->s, &q, f->a, &items, &n, &more), PX_OK);
    assert_int_equal(n, 0);
    q.tenant = "acme";
    assert_int_equal(px_product_list(f->s, &q, f->a, &items, &n, &more), PX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].version, 2);
}

/* A catalogue written before tenants (schema v1, rows keyed by id alone)
 * opens with tenants: its rows belong to "default", and only there. */
static void test_store_pre_tenant_file(void **state)
{
    (void)state;
    char dir[64], path[128], spec[140], err[256];
    assert_int_equal(px_test_tmpdir(dir, sizeof(dir), "product-v1"), 0);
    snprintf(path, sizeof(path), "%s/products.db", dir);
    snprintf(spec, sizeof(spec), "sqlite:%s", path);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
                     " description TEXT NOT NULL, category TEXT NOT NULL, status TEXT NOT NULL,"
                     " attributes TEXT NOT NULL, price_amount TEXT, price_currency TEXT,"
                     " price_effective_from TEXT, version INTEGER NOT NULL CHECK (version >= 1),"
                     " created_at TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;"
                     "CREATE INDEX products_by_category ON products (category, id);"
                     "CREATE INDEX products_by_status ON products (status, id);"
                     "CREATE TABLE idempotency (principal TEXT NOT NULL, route TEXT NOT NULL,"
                     " key TEXT NOT NULL, body_hash TEXT NOT NULL, done INTEGER NOT NULL,"
                     " status INTEGER, body TEXT, etag TEXT, location TEXT,"
                     " created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
                     " PRIMARY KEY (principal, route, key)) WITHOUT ROWID;"
                     "INSERT INTO products VALUES ('OLD-1', 'old', '', 'c', 'ACTIVE', '{}', '1.00',"
                     " 'EUR', '2026-01-01T00:00:00.000Z', 4, '2026-01-01T00:00:00.000Z',"
                     " '2026-01-01T00:00:00.000Z');"
                     "PRAGMA user_version = 1;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    struct px_product_store *s = NULL;
    const struct px_product_opts o = {.timeout_ms = 2000, .create = true};
    assert_int_equal(px_product_open(spec, &o, &s, err, sizeof(err)), PX_OK);
    struct px_arena *a = px_arena_new(1 << 16);
    struct px_product p;
    assert_int_equal(px_product_get(s, "OLD-1", a, &p), PX_OK);
    assert_int_equal(p.version, 4);
    assert_string_equal(p.amount, "1.00");
    assert_int_equal(px_product_get_in(s, "default", "OLD-1", a, &p), PX_OK);
    assert_int_equal(px_product_get_in(s, "acme", "OLD-1", a, &p), PX_ERR_NOT_FOUND);
    px_arena_free(a);
    px_product_close(s);
    px_test_rmdir(dir);
}

static void test_idempotency_states(void **state)
{
    struct store_fx *f = *state;
    enum px_idem_state st;
    struct px_idem_saved saved;
    const int64_t t0 = 1800000000;
    assert_int_equal(
        px_product_idem_begin(f->s, "alice", "POST /products", "k1", "h1", t0, f->a, &st, &saved),
        PX_OK);
    assert_int_equal(st, PX_IDEM_NEW);
    /* the first is still running */
    assert_int_equal(px_product_idem_begin(f->s, "alice", "POST /products", "k1", "h1", t0 + 1,
                                           f->a, &st, &saved),
                     PX_OK);
    assert_int_equal(st, PX_IDEM_IN_FLIGHT);
    assert_int_equal(px_product_idem_begin(f->s, "alice", "POST /products", "k1", "h2", t0 + 1,
                                           f->a, &st, &saved),
                     PX_OK);
    assert_int_equal(st, PX_IDEM_MISMATCH);
    /* keys are per principal and route */
    assert_int_equal(
        px_product_idem_begin(f->s, "bob", "POST /products", "k1", "h2", t0, f->a, &st, &saved),
        PX_OK);
    assert_int_equal(st, PX_IDEM_NEW);
    const struct px_idem_saved answer = {
        .status = 201, .body = "{\"x\":1}", .etag = "\"1\"", .location = "/products/P"};
    assert_int_equal(px_product_idem_finish(f->s, "alice", "POST /products", "k1", &answer, t0 + 2),
                     PX_OK);
    assert_int_equal(px_product_idem_begin(f->s, "alice", "POST /products", "k1", "h1", t0 + 3,
                                           f->a, &st, &saved),
                     PX_OK);
    assert_int_equal(st, PX_IDEM_REPLAY);
    assert_int_equal(saved.status, 201);
    assert_string_equal(saved.body, "{\"x\":1}");
    assert_string_equal(saved.etag, "\"1\"");
    assert_string_equal(saved.location, "/products/P");
    assert_int_equal(px_product_idem_begin(f->s, "alice", "POST /products", "k1", "h2", t0 + 3,
                                           f->a, &st, &saved),
                     PX_OK);
    assert_int_equal(st, PX_IDEM_MISMATCH);
    /* after 24 h the key is swept and starts afresh */
    assert_int_equal(px_product_idem_begin(f->s, "alice", "POST /products", "k1", "h2",
                                           t0 + PX_IDEM_TTL_S + 1, f->a, &st, &saved),
                     PX_OK);
    assert_int_equal(st, PX_IDEM_NEW);
    /* an abandoned first request (its process died) frees the key after its lease */
    assert_int_equal(px_product_idem_begin(f->s, "bob", "POST /products", "k1", "h2",
                                           t0 + PX_IDEM_LEASE_S + 1, f->a, &st, &saved),
                     PX_OK);
    assert_int_equal(st, PX_IDEM_NEW);
    /* abort releases a key whose request failed */
    px_product_idem_abort(f->s, "bob", "POST /products", "k1");
    assert_int_equal(px_product_idem_begin(f->s, "bob", "POST /products", "k1", "h3",
                                           t0 + PX_IDEM_LEASE_S + 2, f->a, &st, &saved),
                     PX_OK);
    assert_int_equal(st, PX_IDEM_NEW);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_price_amount_kept_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_price_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_product_body, setup, teardown),
        cmocka_unit_test(test_amount_rules),
        cmocka_unit_test(test_if_match),
        cmocka_unit_test_setup_teardown(test_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_versions, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_states, store_setup, store_teardown),
        cmocka_unit_test_setup_teardown(test_store_tenants, store_setup, store_teardown),
        cmocka_unit_test(test_store_pre_tenant_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
