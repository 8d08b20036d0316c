/* test_config_store.c: the SQLite config store (store/config_store.h):
 * versions, the write expectations, the callback's veto, listing by prefix,
 * tenants kept apart, key rules; and config-service's secret-key rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "px_test.h"
#include "functions/config-service/dto.h"
#include "store/config_store.h"

struct fixture {
    char dir[256];
    struct px_config_store *s;
    struct px_arena *a;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    if (px_test_tmpdir(f.dir, sizeof(f.dir), "cfgstore"))
        return -1;
    char spec[320], err[512];
    snprintf(spec, sizeof(spec), "sqlite:%s/config.db", f.dir);
    struct px_config_store_opts o = {.timeout_ms = 2000, .create = false};
    /* without db migrate there is no store to open */
    if (px_config_store_open(spec, &o, &f.s, err, sizeof(err)) == PX_OK)
        return -1;
    o.create = true;
    if (px_config_store_open(spec, &o, &f.s, err, sizeof(err)) != PX_OK)
        return -1;
    f.a = px_arena_new(1 << 20);
    *state = &f;
    return f.a ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    px_config_store_close(f->s);
    px_arena_free(f->a);
    px_test_rmdir(f->dir);
    return 0;
}

struct put {
    const char *value;
    px_rc veto; /* returned by the callback */
    int calls;
    long seen_version; /* cur's version, 0 when absent */
};

static px_rc on_apply(void *arg, const struct px_config_item *cur, struct px_config_item *next)
{
    struct put *p = arg;
    p->calls++;
    p->seen_version = cur ? cur->version : 0;
    next->value = p->value;
    next->updated_by = "tester";
    snprintf(next->updated_at, sizeof(next->updated_at), "2026-01-01T00:00:00.000Z");
    return p->veto;
}

static px_rc put(struct fixture *f, const char *tenant, const char *key, enum px_config_expect e,
                 long version, struct put *p)
{
    return px_config_store_apply(f->s, tenant, key, e, version, on_apply, p, f->a);
}

static void test_versions_and_expectations(void **state)
{
    struct fixture *f = *state;
    struct px_config_item it;
    assert_int_equal(px_config_store_get(f->s, "default", "a.b", f->a, &it), PX_ERR_NOT_FOUND);
    struct put p = {.value = "1"};
    assert_int_equal(put(f, "default", "a.b", PX_CONFIG_AT_VERSION, 1, &p), PX_ERR_NOT_FOUND);
    assert_int_equal(p.calls, 0);
    assert_int_equal(put(f, "default", "a.b", PX_CONFIG_MUST_NOT_EXIST, 0, &p), PX_OK);
    assert_int_equal(p.seen_version, 0);
    assert_int_equal(px_config_store_get(f->s, "default", "a.b", f->a, &it), PX_OK);
    assert_int_equal(it.version, 1);
    assert_string_equal(it.value, "1");
    assert_string_equal(it.updated_by, "tester");
    p.calls = 0;
    assert_int_equal(put(f, "default", "a.b", PX_CONFIG_MUST_NOT_EXIST, 0, &p), PX_ERR_CONFLICT);
    assert_int_equal(put(f, "default", "a.b", PX_CONFIG_AT_VERSION, 2, &p), PX_ERR_STALE);
    assert_int_equal(p.calls, 0); /* refused before the callback: nothing audited */
    p.value = "{\"x\":[1,2]}";
    assert_int_equal(put(f, "default", "a.b", PX_CONFIG_AT_VERSION, 1, &p), PX_OK);
    assert_int_equal(p.seen_version, 1);
    p.value = "3";
    assert_int_equal(put(f, "default", "a.b", PX_CONFIG_AT_VERSION, -1, &p), PX_OK);
    assert_int_equal(px_config_store_get(f->s, "default", "a.b", f->a, &it), PX_OK);
    assert_int_equal(it.version, 3);
    /* a callback that fails (its audit record could not be made durable) changes nothing */
    p.value = "4";
    p.veto = PX_ERR_UNAVAILABLE;
    assert_int_equal(put(f, "default", "a.b", PX_CONFIG_AT_VERSION, 3, &p), PX_ERR_UNAVAILABLE);
    assert_int_equal(px_config_store_get(f->s, "default", "a.b", f->a, &it), PX_OK);
    assert_int_equal(it.version, 3);
    assert_string_equal(it.value, "3");
}

static void test_list_prefix_and_tenants(void **state)
{
    struct fixture *f = *state;
    const char *keys[] = {"flags.b", "flags.a", "flagsx", "z.c"};
    for (size_t i = 0; i < 4; i++) {
        struct put p = {.value = "true"};
        assert_int_equal(put(f, "default", keys[i], PX_CONFIG_MUST_NOT_EXIST, 0, &p), PX_OK);
    }
    struct put p = {.value = "false"};
    assert_int_equal(put(f, "other", "flags.a", PX_CONFIG_MUST_NOT_EXIST, 0, &p), PX_OK);
    struct px_config_item *items;
    size_t n;
    assert_int_equal(px_config_store_list(f->s, "default", "flags.", f->a, &items, &n), PX_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].key, "flags.a");
    assert_string_equal(items[0].value, "true");
    assert_string_equal(items[1].key, "flags.b");
    assert_int_equal(px_config_store_list(f->s, "other", "", f->a, &items, &n), PX_OK);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].value, "false");
    assert_int_equal(px_config_store_list(f->s, "nobody", "", f->a, &items, &n), PX_OK);
    assert_int_equal(n, 0);
}

static void test_key_rules(void **state)
{
    struct fixture *f = *state;
    char long_key[130];
    memset(long_key, 'a', 129);
    long_key[129] = '\0';
    const char *bad[] = {"", "A", "a b", "a/b", "ä", long_key};
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        assert_false(px_config_key_valid(bad[i]));
        struct px_config_item it;
        assert_int_equal(px_config_store_get(f->s, "default", bad[i], f->a, &it), PX_ERR_INVALID);
    }
    long_key[128] = '\0';
    assert_true(px_config_key_valid(long_key));
    assert_true(px_config_key_valid("a.b_c-9"));
}

static void test_secret_rule(void **state)
{
    (void)state;
    const char *secret[] = {"secrets.db", "secret", "payments.secret_key", "smtp.secret",
                            "a.b.secretive"};
    const char *plain[] = {"flags.x", "app.nosecret", "mysecret.x", "a.topsecret"};
    for (size_t i = 0; i < PX_COUNTOF(secret); i++)
        assert_true(px_cs_key_secret(secret[i]));
    for (size_t i = 0; i < PX_COUNTOF(plain); i++)
        assert_false(px_cs_key_secret(plain[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions_and_expectations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_prefix_and_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_rules, setup, teardown),
        cmocka_unit_test(test_secret_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
