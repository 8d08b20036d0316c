/* test_audit_lsm_chain.c: the hash chain of the lsm: audit store against real
 * RocksDB directories: a trail written through the store verifies; each kind
 * of tampering, made with RocksDB itself on a copy of the closed store (a
 * changed value, both copies of a record removed, one copy removed, the tail
 * removed, a checkpoint replaced by another key's), makes verify name it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/audit.h"
#include "store/audit_chain.h"

#include "px_test.h"

#define RECORDS    20
#define TRAILER    (PX_CHAIN_WRITER_LEN + 8 + 2 * PX_CHAIN_HASH_LEN)
#define CHAINED_V1 3 /* a look-up's value version with its chain trailer */

static char dir[128], pristine[160], key[200], other[200], pub[200];

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    return system(cmd);
}

static int setup(void **state)
{
    PX_UNUSED(state);
    char p[200];
    if (px_test_tmpdir(dir, sizeof(dir), "lsmchain"))
        return -1;
    snprintf(p, sizeof(p), "%s/sign", dir);
    if (px_chain_keygen(p, NULL, 0))
        return -1;
    snprintf(key, sizeof(key), "%s/sign.key", dir);
    snprintf(pub, sizeof(pub), "%s/sign.pub", dir);
    snprintf(p, sizeof(p), "%s/other", dir);
    if (px_chain_keygen(p, NULL, 0))
        return -1;
    snprintf(other, sizeof(other), "%s/other.key", dir);
    snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
    char spec[200];
    snprintf(spec, sizeof(spec), "lsm:%s", pristine);
    const struct px_audit_opts o = {.timeout_ms = 5000, .signing_key_file = key};
    struct px_audit_store *s = NULL;
    char err[256];
    if (px_audit_open(spec, &o, &s, err, sizeof(err)) != PX_OK)
        return -1;
    for (int i = 0; i < RECORDS; i++) {
        struct px_audit_record r;
        memset(&r, 0, sizeof(r));
        snprintf(r.user_id, sizeof(r.user_id), "0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d%02u",
                 (unsigned)i % 3u);
        snprintf(r.product_id, sizeof(r.product_id), "PROD-%d", 101 + i % 4);
        snprintf(r.request_id, sizeof(r.request_id), "req-%02d", i);
        snprintf(r.correlation_id, sizeof(r.correlation_id), "req-%02d", i);
        snprintf(r.ts, sizeof(r.ts), "2026-01-23T12:00:%02u.000Z", (unsigned)i % 60u);
        snprintf(r.action, sizeof(r.action), "PRICE_FETCH");
        snprintf(r.status, sizeof(r.status), "SUCCESS");
        r.expires_at = (int64_t)time(NULL) + 86400;
        /* every other record belongs to tenant acme: its keys say so, and
         * verify must rebuild them (and the hash) from the key */
        if (i % 2)
            snprintf(r.tenant, sizeof(r.tenant), "acme");
        if (px_audit_append(s, &r) != PX_OK)
            return -1;
    }
    px_audit_close(s);
    return 0;
}

static int teardown(void **state)
{
    PX_UNUSED(state);
    sh("rm -rf '%s'%s", dir, "");
    return 0;
}

/* A fresh copy of the pristine store; its w-00 opened with RocksDB in *db. */
static void copy_store(char out[200], rocksdb_t **db, rocksdb_options_t **o)
{
    static int n;
    snprintf(out, 200, "%s/copy-%d", dir, n++);
    assert_int_equal(sh("cp -a '%s' '%s'", pristine, out), 0);
    if (!db)
        return;
    char sub[260];
    snprintf(sub, sizeof(sub), "%s/w-00", out);
    *o = rocksdb_options_create();
    char *e = NULL;
    *db = rocksdb_open(*o, sub, &e);
    assert_null(e);
}

static void close_db(rocksdb_t *db, rocksdb_options_t *o)
{
    rocksdb_close(db);
    rocksdb_options_destroy(o);
}

/* wseq of a record value, 0 for anything else. */
static uint64_t wseq_of(const char *v, size_t n)
{
    if (n < 9 + TRAILER || (v[0] != CHAINED_V1 && v[0] != CHAINED_V1 + 1))
        return 0;
    uint64_t s = 0;
    for (int i = 0; i < 8; i++)
        s = (s << 8) | (unsigned char)v[n - TRAILER + PX_CHAIN_WRITER_LEN + (size_t)i];
    return s;
}

typedef void (*edit_fn)(rocksdb_t *db, const char *k, size_t kl, const char *v, size_t vl,
                        void *arg);

/* Calls fn for every key whose record has wseq (0: every checkpoint key). */
static void each(rocksdb_t *db, uint64_t wseq, edit_fn fn, void *arg)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        bool hit = wseq ? k[0] != 'K' && wseq_of(v, vl) == wseq : k[0] == 'K';
        if (hit)
            fn(db, k, kl, v, vl, arg);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
}

static void del(rocksdb_t *db, const char *k, size_t kl, const char *v, size_t vl, void *arg)
{
    PX_UNUSED(v);
    PX_UNUSED(vl);
    const char *only = arg; /* "P", "U" or NULL for both copies */
    if (only && k[0] != only[0])
        return;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *e = NULL;
    rocksdb_delete(db, wo, k, kl, &e);
    assert_null(e);
    rocksdb_writeoptions_destroy(wo);
}

static void flip_status(rocksdb_t *db, const char *k, size_t kl, const char *v, size_t vl,
                        void *arg)
{
    PX_UNUSED(arg);
    if (k[0] != 'U')
        return;
    char *c = malloc(vl);
    memcpy(c, v, vl);
    char *s = memmem(c, vl, "SUCCESS", 7);
    assert_non_null(s);
    memcpy(s, "FAILURE", 7);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *e = NULL;
    rocksdb_put(db, wo, k, kl, c, vl, &e);
    assert_null(e);
    rocksdb_writeoptions_destroy(wo);
    free(c);
}

static void resign(rocksdb_t *db, const char *k, size_t kl, const char *v, size_t vl, void *arg)
{
    PX_UNUSED(arg);
    struct px_checkpoint c;
    assert_int_equal(px_checkpoint_open(NULL, v, vl, &c), PX_OK);
    struct px_chain_key *k2 = NULL;
    assert_int_equal(px_chain_key_load(other, true, &k2, NULL, 0), PX_OK);
    char note[PX_CHAIN_NOTE_MAX];
    size_t len = 0;
    assert_int_equal(px_checkpoint_sign(k2, &c, note, sizeof(note), &len), PX_OK);
    px_chain_key_free(k2);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *e = NULL;
    rocksdb_put(db, wo, k, kl, note, len, &e);
    assert_null(e);
    rocksdb_writeoptions_destroy(wo);
}

/* Verifies the store at path (counting tenant's records, or NULL); returns
 * whether it passed, the report in *rep. */
static bool verify_tenant(const char *path, const char *tenant, struct px_chain_report *rep)
{
    char spec[260], err[256] = "";
    snprintf(spec, sizeof(spec), "lsm:%s", path);
    const struct px_audit_opts o = {.timeout_ms = 5000, .must_exist = true};
    struct px_audit_store *s = NULL;
    assert_int_equal(px_audit_open(spec, &o, &s, err, sizeof(err)), PX_OK);
    struct px_chain_key *k = NULL;
    assert_int_equal(px_chain_key_load(pub, false, &k, NULL, 0), PX_OK);
    struct px_chain_verifier *v = NULL;
    assert_int_equal(px_chain_verifier_new(k, NULL, NULL, &v), PX_OK);
    if (tenant)
        px_chain_verifier_set_tenant(v, tenant);
    assert_int_equal(px_audit_verify(s, v, err, sizeof(err)), PX_OK);
    bool ok = px_chain_verifier_finish(v, rep);
    px_chain_verifier_free(v);
    px_chain_key_free(k);
    px_audit_close(s);
    return ok;
}

static bool verify(const char *path, struct px_chain_report *rep)
{
    return verify_tenant(path, NULL, rep);
}

static void expect_broken(const char *path, const char *where, const char *what)
{
    struct px_chain_report rep;
    assert_false(verify(path, &rep));
    if (!strstr(rep.where, where) || !strstr(rep.what, what))
        fail_msg("want \"%s\" / \"%s\", got \"%s\" / \"%s\"", where, what, rep.where, rep.what);
}

static void test_untouched(void **state)
{
    PX_UNUSED(state);
    char path[200];
    copy_store(path, NULL, NULL);
    struct px_chain_report rep;
    assert_true(verify(path, &rep));
    assert_int_equal(rep.records, RECORDS);
    assert_int_equal(rep.chained, RECORDS);
    assert_int_equal(rep.writers, 1);
    assert_true(rep.checkpoints >= 2); /* the first batch's and the close's */
    /* Opening it to verify wrote nothing: it still verifies. */
    assert_true(verify(path, &rep));
    assert_int_equal(rep.records, RECORDS);
}

/* CONTRACT §12: a query reads its tenant's records only, and says whose. */
static void test_tenants_apart(void **state)
{
    PX_UNUSED(state);
    char path[200], spec[260], err[256] = "";
    copy_store(path, NULL, NULL);
    snprintf(spec, sizeof(spec), "lsm:%s", path);
    const struct px_audit_opts o = {.timeout_ms = 5000, .must_exist = true};
    struct px_audit_store *s = NULL;
    assert_int_equal(px_audit_open(spec, &o, &s, err, sizeof(err)), PX_OK);
    struct px_arena *a = px_arena_new(1 << 22);
    const char *tenants[] = {NULL, "default", "acme", "globex"};
    size_t total[4] = {0};
    for (size_t t = 0; t < 4; t++) {
        for (int p = 101; p < 105; p++) {
            char id[16];
            snprintf(id, sizeof(id), "PROD-%d", p);
            struct px_audit_query q = {
                .product_id = id, .limit = 100, .now = (int64_t)time(NULL), .tenant = tenants[t]};
            struct px_audit_page page;
            px_arena_reset(a);
            assert_int_equal(px_audit_query(s, &q, a, &page), PX_OK);
            for (size_t i = 0; i < page.nitems; i++) {
                long n = strtol(page.items[i].request_id + 4, NULL, 10);
                assert_int_equal(n % 2, t == 2 ? 1 : 0); /* acme: the odd ones */
                assert_string_equal(page.items[i].tenant, t == 0 ? "" : tenants[t]);
            }
            total[t] += page.nitems;
        }
    }
    assert_int_equal(total[0], (RECORDS + 1) / 2);
    assert_int_equal(total[1], (RECORDS + 1) / 2);
    assert_int_equal(total[2], RECORDS / 2);
    assert_int_equal(total[3], 0);
    px_arena_free(a);
    px_audit_close(s);
}

static void test_changed(void **state)
{
    PX_UNUSED(state);
    char path[200];
    rocksdb_t *db;
    rocksdb_options_t *o;
    copy_store(path, &db, &o);
    each(db, 7, flip_status, NULL);
    close_db(db, o);
    expect_broken(path, "user key of sk AUDIT#2026-01-23T12:00:06.000Z#req-06",
                  "fields do not hash");
}

/* verify --tenant: the tenant's records counted from their keys; another
 * tenant's changed record named by writer and wseq, not by its key. */
static void test_verify_tenant(void **state)
{
    PX_UNUSED(state);
    char path[200];
    rocksdb_t *db;
    rocksdb_options_t *o;
    copy_store(path, NULL, NULL);
    struct px_chain_report rep;
    assert_true(verify_tenant(path, "acme", &rep));
    assert_int_equal(rep.records, RECORDS);
    assert_int_equal(rep.tenant_records, RECORDS / 2);
    assert_true(verify_tenant(path, "default", &rep));
    assert_int_equal(rep.tenant_records, RECORDS / 2);
    copy_store(path, &db, &o);
    each(db, 8, flip_status, NULL); /* req-07: acme's */
    close_db(db, o);
    assert_false(verify_tenant(path, "default", &rep));
    if (!strstr(rep.where, "a record of another tenant (writer w") ||
        !strstr(rep.where, " wseq 8)") || strstr(rep.where, "req-07") ||
        !strstr(rep.what, "fields do not hash"))
        fail_msg("got \"%s\" / \"%s\"", rep.where, rep.what);
    assert_false(verify_tenant(path, "acme", &rep));
    assert_non_null(strstr(rep.where, "user key of sk AUDIT#2026-01-23T12:00:07.000Z#req-07"));
}

static void test_removed(void **state)
{
    PX_UNUSED(state);
    char path[200];
    rocksdb_t *db;
    rocksdb_options_t *o;
    copy_store(path, &db, &o);
    each(db, 5, del, NULL);
    close_db(db, o);
    expect_broken(path, "product key of sk AUDIT#2026-01-23T12:00:05.000Z#req-05",
                  "wseq 5..5 missing");
}

static void test_one_copy_removed(void **state)
{
    PX_UNUSED(state);
    char path[200];
    rocksdb_t *db;
    rocksdb_options_t *o;
    copy_store(path, &db, &o);
    each(db, 9, del, "U");
    close_db(db, o);
    expect_broken(path, "product key of sk AUDIT#2026-01-23T12:00:08.000Z#req-08",
                  "the user copy of writer");
}

static void test_tail_removed(void **state)
{
    PX_UNUSED(state);
    char path[200];
    rocksdb_t *db;
    rocksdb_options_t *o;
    copy_store(path, &db, &o);
    each(db, RECORDS, del, NULL);
    each(db, RECORDS - 1, del, NULL);
    close_db(db, o);
    expect_broken(path, "checkpoint key", "tail removed");
}

static void test_checkpoint_replaced(void **state)
{
    PX_UNUSED(state);
    char path[200];
    rocksdb_t *db;
    rocksdb_options_t *o;
    copy_store(path, &db, &o);
    each(db, 0, resign, NULL);
    close_db(db, o);
    expect_broken(path, "checkpoint key", "not signed by the given key");
}

/* A record value without a chain trailer (version 1), under both its keys. */
static void add_unchained(rocksdb_t *db, const char *k, size_t kl, const char *v, size_t vl,
                          void *arg)
{
    PX_UNUSED(k);
    PX_UNUSED(kl);
    PX_UNUSED(arg);
    static bool done;
    if (done)
        return;
    done = true;
    size_t n = vl - TRAILER;
    char *c = malloc(n);
    memcpy(c, v, n);
    c[0] = 1;
    char *rid = memmem(c, n, "req-02", 6);
    assert_non_null(rid);
    memcpy(rid, "req-99", 6); /* both request id and correlation id */
    rid = memmem(c, n, "req-02", 6);
    if (rid)
        memcpy(rid, "req-99", 6);
    static const char user[] = "0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d02";
    static const char sk[] = "AUDIT#2026-01-23T12:00:02.000Z#req-99";
    char kb[256];
    int ul = snprintf(kb, sizeof(kb), "U%s%c%s", user, 0, sk);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *e = NULL;
    rocksdb_put(db, wo, kb, (size_t)ul, c, n, &e);
    assert_null(e);
    int pl = snprintf(kb, sizeof(kb), "PPROD-103%c%s%c%s", 0, sk, 0, user);
    rocksdb_put(db, wo, kb, (size_t)pl, c, n, &e);
    assert_null(e);
    rocksdb_writeoptions_destroy(wo);
    free(c);
}

static void test_unchained_inserted(void **state)
{
    PX_UNUSED(state);
    char path[200];
    rocksdb_t *db;
    rocksdb_options_t *o;
    copy_store(path, &db, &o);
    each(db, 3, add_unchained, NULL);
    close_db(db, o);
    expect_broken(path, "product key of sk AUDIT#2026-01-23T12:00:02.000Z#req-99",
                  "dated after the chain began");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_untouched),
        cmocka_unit_test(test_tenants_apart),
        cmocka_unit_test(test_verify_tenant),
        cmocka_unit_test(test_changed),
        cmocka_unit_test(test_removed),
        cmocka_unit_test(test_one_copy_removed),
        cmocka_unit_test(test_tail_removed),
        cmocka_unit_test(test_checkpoint_replaced),
        cmocka_unit_test(test_unchained_inserted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
