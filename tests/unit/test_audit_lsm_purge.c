/* test_audit_lsm_purge.c: retention on a real lsm: trail (RocksDB). As on
 * SQLite, px_audit_purge removes expired records only, as a prefix of each
 * writer's chain, with signed purge checkpoints, across every sub-store, so the
 * trail still verifies; one record more removed with RocksDB, or the expired
 * records removed by hand without a purge, does not verify; a purge refuses
 * while another handle holds a sub-store. */
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

#define TRAILER (PX_CHAIN_WRITER_LEN + 8 + 2 * PX_CHAIN_HASH_LEN)

static char dir[128], trail[200], spec[260], key[200], pub[200];
static int64_t now, past, future;

static struct px_audit_record rec(int i, int64_t expires)
{
    struct px_audit_record r;
    memset(&r, 0, sizeof(r));
    snprintf(r.user_id, sizeof(r.user_id), "0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d%02u",
             (unsigned)i % 7u);
    snprintf(r.product_id, sizeof(r.product_id), "PROD-%d", 101 + i % 3);
    snprintf(r.request_id, sizeof(r.request_id), "req-%03u", (unsigned)i % 1000u);
    snprintf(r.correlation_id, sizeof(r.correlation_id), "req-%03u", (unsigned)i % 1000u);
    snprintf(r.ts, sizeof(r.ts), "2026-01-23T12:00:%02u.000Z", (unsigned)i % 60u);
    snprintf(r.action, sizeof(r.action), "PRICE_FETCH");
    snprintf(r.status, sizeof(r.status), "SUCCESS");
    r.expires_at = expires;
    return r;
}

static struct px_audit_store *open_at(const char *sp)
{
    const struct px_audit_opts o = {.timeout_ms = 5000, .signing_key_file = key};
    struct px_audit_store *s = NULL;
    char err[256];
    if (px_audit_open(sp, &o, &s, err, sizeof(err)) != PX_OK)
        fail_msg("open: %s", err);
    return s;
}

static bool verify_at(const char *sp, struct px_chain_report *rep)
{
    struct px_audit_store *s = open_at(sp);
    struct px_chain_key *k = NULL;
    assert_int_equal(px_chain_key_load(pub, false, &k, NULL, 0), PX_OK);
    struct px_chain_verifier *v = NULL;
    char err[256];
    assert_int_equal(px_chain_verifier_new(k, NULL, NULL, &v), PX_OK);
    assert_int_equal(px_audit_verify(s, v, err, sizeof(err)), PX_OK);
    bool ok = px_chain_verifier_finish(v, rep);
    px_chain_verifier_free(v);
    px_chain_key_free(k);
    px_audit_close(s);
    return ok;
}

static int64_t expires_of(const char *v, size_t n)
{
    uint64_t e = 0;
    for (size_t i = 1; i <= 8 && i < n; i++)
        e = (e << 8) | (unsigned char)v[i];
    return (int64_t)e;
}

static uint64_t wseq_of(const char *v, size_t n)
{
    uint64_t s = 0;
    for (int i = 0; i < 8; i++)
        s = (s << 8) | (unsigned char)v[n - TRAILER + PX_CHAIN_WRITER_LEN + (size_t)i];
    return s;
}

/* Deletes, with RocksDB itself, every record copy in sub-store sub of the
 * trail at path whose wseq is <= max_wseq (and >= min_wseq) and whose
 * expiry is exp. Returns the copies deleted. */
static int rdelete(const char *path, int sub, uint64_t min_wseq, uint64_t max_wseq, int64_t exp)
{
    char p[300];
    snprintf(p, sizeof(p), "%s/w-%02d", path, sub);
    rocksdb_options_t *o = rocksdb_options_create();
    char *e = NULL;
    rocksdb_t *db = rocksdb_open(o, p, &e);
    assert_null(e);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
    int n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (k[0] == 'K' || vl < 9 + TRAILER)
            continue;
        uint64_t w = wseq_of(v, vl);
        if (w >= min_wseq && w <= max_wseq && expires_of(v, vl) == exp) {
            rocksdb_delete(db, wo, k, kl, &e);
            assert_null(e);
            n++;
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    return n;
}

static void test_lsm_purge(void **state)
{
    PX_UNUSED(state);
    assert_int_equal(px_test_tmpdir(dir, sizeof(dir), "lsmpurge"), 0);
    char p[200];
    snprintf(p, sizeof(p), "%s/sign", dir);
    assert_int_equal(px_chain_keygen(p, NULL, 0), PX_OK);
    snprintf(key, sizeof(key), "%s/sign.key", dir);
    snprintf(pub, sizeof(pub), "%s/sign.pub", dir);
    snprintf(trail, sizeof(trail), "%s/trail", dir);
    snprintf(spec, sizeof(spec), "lsm:%s", trail);
    now = (int64_t)time(NULL);
    past = now - 10;
    future = now + 86400;

    /* Writer 1 (w-00): 5 expired, 3 live, 2 expired after them (they must stay). */
    struct px_audit_store *s = open_at(spec);
    for (int i = 0; i < 10; i++) {
        struct px_audit_record r = rec(i, i >= 5 && i < 8 ? future : past);
        assert_int_equal(px_audit_append(s, &r), PX_OK);
    }
    px_audit_close(s);
    /* Writer 2 (w-00): 2 records, both expired; writer 3 (w-01, while w-00 is
     * held): 3 expired records. Both purged whole. */
    s = open_at(spec);
    struct px_audit_store *s3 = open_at(spec);
    for (int i = 10; i < 12; i++) {
        struct px_audit_record r = rec(i, past);
        assert_int_equal(px_audit_append(s, &r), PX_OK);
    }
    for (int i = 12; i < 15; i++) {
        struct px_audit_record r = rec(i, past);
        assert_int_equal(px_audit_append(s3, &r), PX_OK);
    }
    px_audit_close(s3);
    px_audit_close(s);
    struct px_chain_report rep;
    assert_true(verify_at(spec, &rep));
    assert_int_equal(rep.records, 15);
    assert_int_equal(rep.writers, 3);

    char copy[260], copyspec[300], cmd[700];
    snprintf(copy, sizeof(copy), "%s/copy", dir);
    snprintf(copyspec, sizeof(copyspec), "lsm:%s", copy);
    snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", trail, copy);
    assert_int_equal(system(cmd), 0);

    /* While another handle holds a sub-store, nothing is removed. */
    uint64_t removed = 99;
    char err[256] = "";
    s = open_at(spec);
    s3 = open_at(spec);
    assert_int_equal(px_audit_purge(s3, now, &removed, err, sizeof(err)), PX_ERR_BUSY);
    assert_non_null(strstr(err, "in use by a running process"));
    assert_int_equal(removed, 0);
    px_audit_close(s3);
    px_audit_close(s);
    assert_true(verify_at(spec, &rep));
    assert_int_equal(rep.records, 15);

    s = open_at(spec);
    assert_int_equal(px_audit_purge(s, now, &removed, err, sizeof(err)), PX_OK);
    px_audit_close(s);
    assert_int_equal(removed, 10);
    if (!verify_at(spec, &rep))
        fail_msg("after the purge: %s: %s", rep.where, rep.what);
    assert_int_equal(rep.records, 5); /* writer 1's 3 live and the 2 expired after them */
    /* Again: nothing more to remove, still whole. */
    s = open_at(spec);
    assert_int_equal(px_audit_purge(s, now, &removed, err, sizeof(err)), PX_OK);
    px_audit_close(s);
    assert_int_equal(removed, 0);
    assert_true(verify_at(spec, &rep));

    /* One record more than the purge removed (live, writer 1's wseq 6). */
    assert_int_equal(rdelete(trail, 0, 6, 6, future), 2);
    assert_false(verify_at(spec, &rep));
    if (!strstr(rep.what, "wseq 1..6 missing"))
        fail_msg("got %s: %s", rep.where, rep.what);

    /* The same expired records removed by hand, without a purge: writer 1's
     * prefix (wseq 1..5) is a gap. */
    assert_int_equal(rdelete(copy, 0, 1, 5, past), 2 * 5 + 2 * 2);
    assert_false(verify_at(copyspec, &rep));
    if (!strstr(rep.what, "missing") && !strstr(rep.what, "removed"))
        fail_msg("got %s: %s", rep.where, rep.what);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lsm_purge)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
