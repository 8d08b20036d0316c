/* test_audit_purge.c: retention on a real SQLite trail. px_audit_purge removes
 * expired records only, as a prefix of each writer's chain, with a signed purge
 * checkpoint, so the trail still verifies; removing the same records without a
 * purge, or more than a purge did, does not verify. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "px_test.h"
#include "store/audit_chain.h"

static char dir[128], db[240], spec[260], key[200], pub[200];

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

static struct px_audit_store *open_store(void)
{
    const struct px_audit_opts o = {.timeout_ms = 5000, .signing_key_file = key};
    struct px_audit_store *s = NULL;
    char err[256];
    if (px_audit_open(spec, &o, &s, err, sizeof(err)) != PX_OK)
        fail_msg("open: %s", err);
    return s;
}

static bool verify(struct px_chain_report *rep)
{
    struct px_audit_store *s = open_store();
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

static void sql(const char *path, const char *text)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    char *e = NULL;
    if (sqlite3_exec(h, text, NULL, NULL, &e) != SQLITE_OK)
        fail_msg("%s: %s", text, e);
    sqlite3_close(h);
}

static int64_t count(const char *where)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    char q[256];
    snprintf(q, sizeof(q), "SELECT count(*) FROM audit WHERE %s", where);
    int64_t n = -1;
    if (sqlite3_open(db, &h) == SQLITE_OK && sqlite3_prepare_v2(h, q, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static void test_purge(void **state)
{
    PX_UNUSED(state);
    assert_int_equal(px_test_tmpdir(dir, sizeof(dir), "purge"), 0);
    char p[200];
    snprintf(p, sizeof(p), "%s/sign", dir);
    assert_int_equal(px_chain_keygen(p, NULL, 0), PX_OK);
    snprintf(key, sizeof(key), "%s/sign.key", dir);
    snprintf(pub, sizeof(pub), "%s/sign.pub", dir);
    snprintf(db, sizeof(db), "%s/audit.db", dir);
    snprintf(spec, sizeof(spec), "sqlite:%s", db);
    int64_t now = (int64_t)time(NULL), past = now - 10, future = now + 86400;

    /* Writer 1: 5 expired, 3 live, 2 expired after them (they must stay). */
    struct px_audit_store *s = open_store();
    for (int i = 0; i < 10; i++) {
        struct px_audit_record r = rec(i, i >= 5 && i < 8 ? future : past);
        assert_int_equal(px_audit_append(s, &r), PX_OK);
    }
    px_audit_close(s);
    /* Writer 2: 2 records, both expired: purged whole. */
    s = open_store();
    for (int i = 10; i < 12; i++) {
        struct px_audit_record r = rec(i, past);
        assert_int_equal(px_audit_append(s, &r), PX_OK);
    }
    px_audit_close(s);
    struct px_chain_report rep;
    assert_true(verify(&rep));
    assert_int_equal(rep.records, 12);

    /* Removing the expired prefix by hand (no purge checkpoint) is a gap. */
    char copy[200];
    snprintf(copy, sizeof(copy), "%s/copy.db", dir);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", db, copy);
    assert_int_equal(system(cmd), 0);

    s = open_store();
    uint64_t removed = 0;
    char err[256] = "";
    assert_int_equal(px_audit_purge(s, now, &removed, err, sizeof(err)), PX_OK);
    px_audit_close(s);
    assert_int_equal(removed, 7);
    assert_int_equal(count("1"), 5);
    assert_int_equal(count("expires_at <= strftime('%s','now')"), 2); /* after a live one */
    assert_true(verify(&rep));
    assert_int_equal(rep.records, 5);
    /* Again: nothing more to remove, still whole. */
    s = open_store();
    assert_int_equal(px_audit_purge(s, now, &removed, err, sizeof(err)), PX_OK);
    px_audit_close(s);
    assert_int_equal(removed, 0);
    assert_true(verify(&rep));

    /* One record more than the purge removed: not covered by its checkpoint. */
    sql(db, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = (SELECT min(seq) FROM "
            "audit)");
    assert_false(verify(&rep));
    assert_non_null(strstr(rep.what, "wseq 1..6 missing"));

    /* The same expired records removed by hand, without a purge checkpoint. */
    sql(copy, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE expires_at <= "
              "strftime('%s','now') AND seq <= 5");
    snprintf(spec, sizeof(spec), "sqlite:%s", copy);
    snprintf(db, sizeof(db), "%s", copy);
    assert_false(verify(&rep));
    assert_non_null(strstr(rep.what, "wseq 1..5 missing"));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_purge)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
