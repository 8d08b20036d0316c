/* test_outbox.c: CloudEvents built for the outbox, and the SQLite outbox's
 * claim rules: order per subject, leases between relays, backoff waits,
 * parking and retry. The outbox lives in a product store file made by
 * px_product_open(create), as `db migrate` makes it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "px_test.h"
#include "kernel/arena.h"
#include "store/outbox.h"
#include "store/product.h"

struct fx {
    char dir[64], path[128], spec[160];
    struct px_arena *a;
    struct px_outbox *o;
};

static int setup(void **state)
{
    static struct fx f;
    char err[256];
    struct px_product_store *ps = NULL;
    memset(&f, 0, sizeof(f));
    if (px_test_tmpdir(f.dir, sizeof(f.dir), "outbox"))
        return -1;
    snprintf(f.path, sizeof(f.path), "%s/products.db", f.dir);
    snprintf(f.spec, sizeof(f.spec), "sqlite:%s", f.path);
    const struct px_product_opts o = {.timeout_ms = 2000, .create = true};
    if (px_product_open(f.spec, &o, &ps, err, sizeof(err)) != PX_OK)
        return -1;
    px_product_close(ps);
    f.a = px_arena_new(1 << 20);
    if (!f.a || px_outbox_open(f.spec, NULL, 2000, &f.o, err, sizeof(err)) != PX_OK)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    px_outbox_close(f->o);
    px_arena_free(f->a);
    px_test_rmdir(f->dir);
    return 0;
}

/* Inserts one event of subject at version v, in its own transaction. */
static void add(struct fx *f, const char *subject, long v, char id_out[37])
{
    struct px_event ev;
    sqlite3 *db = NULL;
    assert_int_equal(px_event_build(&ev, f->a, PX_EVENT_PRODUCT_UPDATED, "product-service", subject,
                                    NULL, px_event_ord(v, 1), "{\"v\":1}"),
                     PX_OK);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(px_outbox_sqlite_insert(db, &ev), SQLITE_OK);
    sqlite3_close(db);
    if (id_out)
        memcpy(id_out, ev.id, 37);
}

static void test_event_shape(void **state)
{
    struct fx *f = *state;
    struct px_event ev;
    assert_int_equal(px_event_build(&ev, f->a, PX_EVENT_PRICE_CHANGED, "product-service", "P-1",
                                    NULL, px_event_ord(2, 0), "{\"price\":null}"),
                     PX_OK);
    json_error_t je;
    json_t *j = json_loads(ev.json, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "specversion")), "1.0");
    assert_string_equal(json_string_value(json_object_get(j, "id")), ev.id);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "pricing/product-service");
    assert_string_equal(json_string_value(json_object_get(j, "type")), "pricing.price.changed.v1");
    assert_string_equal(json_string_value(json_object_get(j, "subject")), "P-1");
    assert_string_equal(json_string_value(json_object_get(j, "datacontenttype")),
                        "application/json");
    assert_string_equal(json_string_value(json_object_get(j, "time")), ev.time);
    assert_true(json_is_null(json_object_get(json_object_get(j, "data"), "price")));
    /* TENANCY=off: no tenantid, ev.tenant the implicit tenant */
    assert_null(strstr(ev.json, "tenantid"));
    assert_string_equal(ev.tenant, PX_EVENT_TENANT);
    json_decref(j);
    /* TENANCY=on: the tenant as the CloudEvents extension attribute tenantid */
    struct px_event et;
    assert_int_equal(px_event_build(&et, f->a, PX_EVENT_PRICE_CHANGED, "product-service", "P-1",
                                    "acme", px_event_ord(2, 0), "{}"),
                     PX_OK);
    j = json_loads(et.json, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "tenantid")), "acme");
    assert_string_equal(et.tenant, "acme");
    json_decref(j);
    assert_int_equal(px_event_build(&et, f->a, PX_EVENT_PRICE_CHANGED, "x", "P-1", "", 0, "{}"),
                     PX_ERR_INVALID);
    /* data is embedded raw, so it must be JSON; ids are fresh */
    assert_int_equal(
        px_event_build(&ev, f->a, PX_EVENT_PRICE_CHANGED, "x", "P-1", NULL, 0, "{oops"),
        PX_ERR_INVALID);
    struct px_event e2;
    assert_int_equal(px_event_build(&e2, f->a, PX_EVENT_PRICE_CHANGED, "x", "P-1", NULL, 0, "1"),
                     PX_OK);
    assert_string_not_equal(e2.id, ev.id);
    /* a write's events keep their order; a later write sorts after all of them */
    assert_true(px_event_ord(3, 0) < px_event_ord(3, 1));
    assert_true(px_event_ord(3, 7) < px_event_ord(4, 0));
}

static void test_claim_order_and_leases(void **state)
{
    struct fx *f = *state;
    struct px_outbox_row *r = NULL;
    size_t n = 0;
    add(f, "A", 1, NULL);
    add(f, "B", 1, NULL);
    add(f, "A", 2, NULL);
    /* max 2: the first two in seq order */
    assert_int_equal(px_outbox_claim(f->o, "r1", 1000, 5000, 2, &r, &n), PX_OK);
    assert_int_equal(n, 2);
    assert_string_equal(r[0].subject, "A");
    assert_string_equal(r[1].subject, "B");
    px_outbox_rows_free(r, n);
    /* another relay: A's first is leased by r1, so A stops there; B too */
    assert_int_equal(px_outbox_claim(f->o, "r2", 2000, 5000, 10, &r, &n), PX_OK);
    assert_int_equal(n, 0);
    px_outbox_rows_free(r, n);
    /* the lease runs out: r2 takes all three, in order */
    assert_int_equal(px_outbox_claim(f->o, "r2", 7000, 5000, 10, &r, &n), PX_OK);
    assert_int_equal(n, 3);
    assert_string_equal(r[0].subject, "A");
    assert_true(r[0].ord < r[2].ord);
    int64_t a1 = r[0].seq, b1 = r[1].seq;
    px_outbox_rows_free(r, n);
    /* A's first fails: it waits (backoff), and A's second waits behind it */
    assert_int_equal(px_outbox_mark_failed(f->o, a1, "down", 20000, false), PX_OK);
    assert_int_equal(px_outbox_mark_sent(f->o, b1, 8000), PX_OK);
    assert_int_equal(px_outbox_claim(f->o, "r3", 13000, 5000, 10, &r, &n), PX_OK);
    assert_int_equal(n, 0);
    px_outbox_rows_free(r, n);
    bool before = false;
    assert_int_equal(px_outbox_waiting_before(f->o, "default", "A", px_event_ord(2, 1), &before),
                     PX_OK);
    assert_true(before);
    /* due again */
    assert_int_equal(px_outbox_claim(f->o, "r3", 20001, 5000, 10, &r, &n), PX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].attempts, 1);
    assert_string_equal(r[0].error, "down");
    px_outbox_rows_free(r, n);
    int64_t w, fl, oldest;
    assert_int_equal(px_outbox_stats(f->o, &w, &fl, &oldest), PX_OK);
    assert_int_equal(w, 2);
    assert_int_equal(fl, 0);
    assert_true(oldest > 0);
}

static void test_park_and_retry(void **state)
{
    struct fx *f = *state;
    struct px_outbox_row *r = NULL;
    size_t n = 0;
    char id1[37], id2[37];
    add(f, "A", 1, id1);
    add(f, "A", 2, id2);
    assert_int_equal(px_outbox_claim(f->o, "r1", 1000, 5000, 1, &r, &n), PX_OK);
    assert_int_equal(n, 1);
    int64_t seq = r[0].seq;
    px_outbox_rows_free(r, n);
    assert_int_equal(px_outbox_mark_failed(f->o, seq, "poison", 0, true), PX_OK);
    /* parked: listed as failed, and no longer holds A's next event back */
    assert_int_equal(px_outbox_list(f->o, true, 100, &r, &n), PX_OK);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].id, id1);
    assert_int_equal(r[0].status, PX_OUTBOX_FAILED);
    assert_int_equal(r[0].attempts, 1);
    px_outbox_rows_free(r, n);
    assert_int_equal(px_outbox_claim(f->o, "r1", 2000, 5000, 10, &r, &n), PX_OK);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].id, id2);
    assert_int_equal(px_outbox_mark_sent(f->o, r[0].seq, 2500), PX_OK);
    px_outbox_rows_free(r, n);
    /* retry: waiting again with no attempts; a sent one cannot be retried */
    assert_int_equal(px_outbox_retry(f->o, id1), PX_OK);
    assert_int_equal(px_outbox_retry(f->o, id2), PX_ERR_CONFLICT);
    assert_int_equal(px_outbox_retry(f->o, "00000000-0000-4000-8000-000000000000"),
                     PX_ERR_NOT_FOUND);
    assert_int_equal(px_outbox_list(f->o, false, 100, &r, &n), PX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].status, PX_OUTBOX_WAITING);
    assert_int_equal(r[0].attempts, 0);
    assert_int_equal(r[1].status, PX_OUTBOX_SENT);
    px_outbox_rows_free(r, n);
}

/* The DynamoDB outbox item: keys that sort a subject's events by ord (as
 * numbers, through the zero padding), and a put that never overwrites. */
static void test_ddb_item(void **state)
{
    struct fx *f = *state;
    struct px_event ev;
    char a[200], b[200], pk[80];
    px_outbox_ddb_sk("PROD-1", px_event_ord(9, 1), a, sizeof(a));
    px_outbox_ddb_sk("PROD-1", px_event_ord(10, 0), b, sizeof(b));
    assert_string_equal(a, "PROD-1#0000000000000000073");
    assert_true(strcmp(a, b) < 0); /* 73 < 80, as text too */
    px_outbox_ddb_pk(NULL, pk, sizeof(pk));
    assert_string_equal(pk, "OUTBOX#default");
    assert_int_equal(px_event_build(&ev, f->a, PX_EVENT_CONFIG_CHANGED, "config-service", "app.x",
                                    NULL, px_event_ord(2, 0), "{\"v\":1}"),
                     PX_OK);
    json_t *put = px_outbox_ddb_put("cfg", &ev);
    assert_non_null(put);
    const json_t *p = json_object_get(put, "Put");
    assert_string_equal(json_string_value(json_object_get(p, "TableName")), "cfg");
    assert_string_equal(json_string_value(json_object_get(p, "ConditionExpression")),
                        "attribute_not_exists(pk)");
    const json_t *it = json_object_get(p, "Item");
    assert_string_equal(json_string_value(json_object_get(json_object_get(it, "sk"), "S")),
                        "app.x#0000000000000000016");
    assert_string_equal(json_string_value(json_object_get(json_object_get(it, "status"), "S")),
                        "waiting");
    assert_string_equal(json_string_value(json_object_get(json_object_get(it, "event"), "S")),
                        ev.json);
    assert_string_equal(json_string_value(json_object_get(json_object_get(it, "id"), "S")), ev.id);
    json_decref(put);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_event_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_order_and_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_park_and_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ddb_item, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
