/* test_audit_chain.c: record hashes, checkpoint notes and their signatures,
 * keygen, and the chain verifier against every kind of tampering
 * (docs/internals/audit-integrity.md). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#include "px_test.h"
#include "store/audit_chain.h"

static char dir[256], key1[300], key2[300], pub1[300];

static int setup(void **state)
{
    PX_UNUSED(state);
    char p[300];
    if (px_test_tmpdir(dir, sizeof(dir), "chain"))
        return -1;
    snprintf(p, sizeof(p), "%s/one", dir);
    if (px_chain_keygen(p, NULL, 0))
        return -1;
    snprintf(p, sizeof(p), "%s/two", dir);
    if (px_chain_keygen(p, NULL, 0))
        return -1;
    snprintf(key1, sizeof(key1), "%s/one.key", dir);
    snprintf(pub1, sizeof(pub1), "%s/one.pub", dir);
    snprintf(key2, sizeof(key2), "%s/two.key", dir);
    return 0;
}

static int teardown(void **state)
{
    PX_UNUSED(state);
    px_test_rmdir(dir);
    return 0;
}

static struct px_audit_record rec(int i)
{
    struct px_audit_record r;
    memset(&r, 0, sizeof(r));
    snprintf(r.user_id, sizeof(r.user_id), "123e4567-e89b-12d3-a456-4266141740%02u",
             (unsigned)i % 100u);
    snprintf(r.product_id, sizeof(r.product_id), "PROD-%d", 100 + i);
    snprintf(r.request_id, sizeof(r.request_id), "req-%d", i);
    snprintf(r.correlation_id, sizeof(r.correlation_id), "corr-%d", i);
    snprintf(r.ts, sizeof(r.ts), "2026-01-23T12:00:00.%03uZ", (unsigned)i % 1000u);
    snprintf(r.action, sizeof(r.action), "PRICE_FETCH");
    snprintf(r.status, sizeof(r.status), "SUCCESS");
    r.expires_at = 1800000000 + i;
    return r;
}

static void test_hash_binds_every_field(void **state)
{
    PX_UNUSED(state);
    unsigned char zero[32] = {0}, base[32], h[32];
    struct px_audit_record r = rec(1);
    px_chain_hash("w0123456789abcdef", 1, &r, zero, base);
    /* Pinned: the encoding is part of the stored trail and must never drift. */
    char hex[65];
    px_chain_hex(base, hex);
    assert_string_equal(hex, "d6bcf55af066853da6ca7b4510ab1a58d77a4ab0901f71acc2067191525bc062");
    unsigned char again[32];
    assert_true(px_chain_unhex(hex, again));
    assert_memory_equal(again, base, 32);

    struct px_audit_record m;
    char *fields[] = {m.user_id, m.product_id, m.request_id, m.correlation_id, m.ts,
                      m.action,  m.status,     m.principal,  m.api_request_id};
    for (size_t i = 0; i < PX_COUNTOF(fields); i++) {
        m = r;
        fields[i][0] = fields[i][0] == 'X' ? 'Y' : 'X';
        px_chain_hash("w0123456789abcdef", 1, &m, zero, h);
        assert_memory_not_equal(h, base, 32);
    }
    m = r;
    m.expires_at++;
    px_chain_hash("w0123456789abcdef", 1, &m, zero, h);
    assert_memory_not_equal(h, base, 32);
    m = r;
    m.after = "{}";
    px_chain_hash("w0123456789abcdef", 1, &m, zero, h);
    assert_memory_not_equal(h, base, 32);
    m.after = NULL;
    m.before = ""; /* empty is not absent */
    px_chain_hash("w0123456789abcdef", 1, &m, zero, h);
    assert_memory_not_equal(h, base, 32);
    px_chain_hash("w0123456789abcdef", 2, &r, zero, h);
    assert_memory_not_equal(h, base, 32);
    px_chain_hash("w0123456789abcdee", 1, &r, zero, h);
    assert_memory_not_equal(h, base, 32);
    unsigned char prev[32] = {1};
    px_chain_hash("w0123456789abcdef", 1, &r, prev, h);
    assert_memory_not_equal(h, base, 32);
    /* Moving a byte from one field to the next is a different encoding. */
    m = r;
    snprintf(m.request_id, sizeof(m.request_id), "req-");
    snprintf(m.correlation_id, sizeof(m.correlation_id), "1corr-1");
    px_chain_hash("w0123456789abcdef", 1, &m, zero, h);
    assert_memory_not_equal(h, base, 32);
    px_chain_hash("w0123456789abcdef", 1, &r, zero, h);
    assert_memory_equal(h, base, 32);

    assert_false(px_chain_unhex("00", again));
    char upper[65];
    memcpy(upper, hex, sizeof(upper));
    upper[0] = 'A';
    assert_false(px_chain_unhex(upper, again));
}

static void test_keygen(void **state)
{
    PX_UNUSED(state);
    struct stat st;
    assert_int_equal(stat(key1, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char p[300];
    snprintf(p, sizeof(p), "%s/one", dir);
    char err[256];
    assert_int_equal(px_chain_keygen(p, err, sizeof(err)), PX_ERR_CONFLICT);
    struct px_chain_key *k = NULL;
    assert_int_equal(px_chain_key_load(pub1, true, &k, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(k);
    assert_int_equal(px_chain_key_load(pub1, false, &k, err, sizeof(err)), PX_OK);
    px_chain_key_free(k);
    snprintf(p, sizeof(p), "%s/missing.key", dir);
    assert_int_equal(px_chain_key_load(p, false, &k, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "missing.key"));
}

static struct px_checkpoint sample_cp(void)
{
    struct px_checkpoint c;
    memset(&c, 0, sizeof(c));
    memcpy(c.writer, "w0123456789abcdef", 18);
    c.seq = 1234;
    for (int i = 0; i < 32; i++)
        c.head[i] = (unsigned char)(i * 7);
    memcpy(c.time, "2026-01-23T12:00:00.123Z", 25);
    return c;
}

static void test_checkpoint_sign_open(void **state)
{
    PX_UNUSED(state);
    struct px_chain_key *k1 = NULL, *k2 = NULL, *p1 = NULL;
    assert_int_equal(px_chain_key_load(key1, true, &k1, NULL, 0), PX_OK);
    assert_int_equal(px_chain_key_load(key2, true, &k2, NULL, 0), PX_OK);
    assert_int_equal(px_chain_key_load(pub1, false, &p1, NULL, 0), PX_OK);
    struct px_checkpoint c = sample_cp(), got;
    char note[PX_CHAIN_NOTE_MAX];
    size_t len = 0;
    assert_int_equal(px_checkpoint_sign(k1, &c, note, sizeof(note), &len), PX_OK);
    assert_int_equal(strlen(note), len);
    assert_int_equal(strncmp(note, "pricing.audit/w0123456789abcdef\n1234\n", 37), 0);
    assert_non_null(strstr(note, "\ntime 2026-01-23T12:00:00.123Z\n\n\xe2\x80\x94 pricing.audit "));
    assert_int_equal(px_checkpoint_open(p1, note, len, &got), PX_OK);
    assert_memory_equal(&got, &c, sizeof(c));
    /* The public half of the private key verifies too; another key does not. */
    assert_int_equal(px_checkpoint_open(k1, note, len, &got), PX_OK);
    assert_int_equal(px_checkpoint_open(k2, note, len, &got), PX_ERR_DENIED);

    /* Any change of the signed text. */
    char bad[PX_CHAIN_NOTE_MAX];
    memcpy(bad, note, len + 1);
    bad[strlen("pricing.audit/w0123456789abcdef\n123")] = '5';
    assert_int_equal(px_checkpoint_open(p1, bad, len, &got), PX_ERR_DENIED);
    /* Signed by key 2, presented under key 1's id: refused, never skipped. */
    char n2[PX_CHAIN_NOTE_MAX];
    size_t l2 = 0;
    assert_int_equal(px_checkpoint_sign(k2, &c, n2, sizeof(n2), &l2), PX_OK);
    assert_int_equal(px_checkpoint_open(p1, n2, l2, &got), PX_ERR_DENIED);
    /* Rotation: a list of public keys checks each note by its key id. */
    char list[700];
    snprintf(list, sizeof(list), "%s,%s", pub1, key2);
    struct px_chain_key *ring = NULL;
    assert_int_equal(px_chain_key_load(list, false, &ring, NULL, 0), PX_OK);
    assert_int_equal(px_checkpoint_open(ring, note, len, &got), PX_OK);
    assert_int_equal(px_checkpoint_open(ring, n2, l2, &got), PX_OK);
    px_chain_key_free(ring);
    snprintf(list, sizeof(list), "%s,", pub1);
    assert_int_equal(px_chain_key_load(list, false, &ring, NULL, 0), PX_OK); /* trailing comma */
    px_chain_key_free(ring);
    snprintf(list, sizeof(list), "%s,,%s", pub1, key2);
    assert_int_equal(px_chain_key_load(list, false, &ring, NULL, 0), PX_ERR_CONFIG);
    assert_null(ring);
    /* A second signature line by another key does not hurt. */
    char both[2 * PX_CHAIN_NOTE_MAX];
    memcpy(both, note, len);
    const char *sig2 = strstr(n2, "\n\n") + 2;
    memcpy(both + len, sig2, strlen(sig2) + 1);
    assert_int_equal(px_checkpoint_open(p1, both, strlen(both), &got), PX_OK);
    assert_int_equal(px_checkpoint_open(k2, both, strlen(both), &got), PX_OK);

    /* A purge checkpoint: its own line, signed with the rest. */
    struct px_checkpoint pc = c;
    pc.purged = true;
    assert_int_equal(px_checkpoint_sign(k1, &pc, bad, sizeof(bad), &len), PX_OK);
    assert_non_null(strstr(bad, "\ntime 2026-01-23T12:00:00.123Z\npurged\n\n"));
    assert_int_equal(px_checkpoint_open(p1, bad, len, &got), PX_OK);
    assert_memory_equal(&got, &pc, sizeof(pc));
    /* Dropping the line breaks the signature: a purge cannot be turned into
     * a plain checkpoint, nor the reverse. */
    char *pl = strstr(bad, "purged\n");
    memmove(pl, pl + 7, strlen(pl + 7) + 1);
    assert_int_equal(px_checkpoint_open(p1, bad, strlen(bad), &got), PX_ERR_DENIED);
    len = strlen(note);

    /* Malformed notes. */
    const char *malformed[] = {
        "",
        "pricing.audit/w0123456789abcdef\n",
        "pricing.audit/w0123456789abcdeg\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime "
        "2026-01-23T12:00:00.123Z\n\n\xe2\x80\x94 pricing.audit AAAA\n",
        "pricing.audit/w0123456789abcdef\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime "
        "2026-01-23T12:00:00.123Z\n\n\xe2\x80\x94 pricing.audit AAAAAAA=\n",
        "pricing.audit/w0123456789abcdef\n1\nAAAA\ntime "
        "2026-01-23T12:00:00.123Z\n\n\xe2\x80\x94 pricing.audit AAAAAAA=\n",
        "pricing.audit/w0123456789abcdef\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime "
        "2026-01-23T12:00:00.123Z\n",
        "pricing.audit/w0123456789abcdef\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime "
        "2026-01-23T12:00:00.123Z\n\n- pricing.audit AAAAAAA=\n",
        "pricing.audit/w0123456789abcdef\n99999999999999999999\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAA=\ntime 2026-01-23T12:00:00.123Z\n\n\xe2\x80\x94 pricing.audit AAAAAAA=\n",
    };
    for (size_t i = 0; i < PX_COUNTOF(malformed); i++)
        assert_int_equal(px_checkpoint_open(p1, malformed[i], strlen(malformed[i]), &got),
                         PX_ERR_INVALID);
    /* A control character anywhere. */
    memcpy(bad, note, len + 1);
    bad[len - 2] = '\t';
    assert_int_equal(px_checkpoint_open(p1, bad, len, &got), PX_ERR_INVALID);
    px_chain_key_free(k1);
    px_chain_key_free(k2);
    px_chain_key_free(p1);
}

/* A writer purged whole whose plain checkpoint has the purge checkpoint's seq
 * (both kept, as SQLite keeps them): whichever order they come in, the purge
 * one is the writer's last, so no "every record removed". Without it the
 * plain one alone still reports the removal. */
static void test_purge_checkpoint_same_seq(void **state)
{
    PX_UNUSED(state);
    struct px_chain_key *k = NULL;
    assert_int_equal(px_chain_key_load(key1, true, &k, NULL, 0), PX_OK);
    struct px_checkpoint c = sample_cp();
    char plain[PX_CHAIN_NOTE_MAX], purged[PX_CHAIN_NOTE_MAX];
    size_t pl = 0, ql = 0;
    assert_int_equal(px_checkpoint_sign(k, &c, plain, sizeof(plain), &pl), PX_OK);
    c.purged = true;
    assert_int_equal(px_checkpoint_sign(k, &c, purged, sizeof(purged), &ql), PX_OK);
    for (int order = 0; order < 3; order++) {
        struct px_chain_verifier *v = NULL;
        assert_int_equal(px_chain_verifier_new(k, NULL, NULL, &v), PX_OK);
        if (order == 0) {
            px_chain_verifier_checkpoint(v, purged, ql, "purged");
            px_chain_verifier_checkpoint(v, plain, pl, "plain");
        } else if (order == 1) {
            px_chain_verifier_checkpoint(v, plain, pl, "plain");
            px_chain_verifier_checkpoint(v, purged, ql, "purged");
        } else {
            px_chain_verifier_checkpoint(v, plain, pl, "plain");
        }
        struct px_chain_report rep;
        bool ok = px_chain_verifier_finish(v, &rep);
        px_chain_verifier_free(v);
        if (order < 2 && !ok)
            fail_msg("order %d: %s: %s", order, rep.where, rep.what);
        if (order == 2) {
            assert_false(ok);
            assert_non_null(strstr(rep.what, "every record of writer"));
        }
    }
    px_chain_key_free(k);
}

/* ---- verifier --------------------------------------------------------------------------- */

#define N 12

struct row {
    struct px_audit_record r;
    char writer[18];
    int64_t wseq;
    char prev[65], hash[65];
};

struct trail {
    struct row rows[2 * N + 4];
    size_t n;
    char notes[8][PX_CHAIN_NOTE_MAX];
    size_t ncp;
};

/* build(): rows of three tenants in turn ("b", "a", none = default) when set. */
static bool build_tenants;

/* Two writers interleaved, N records each; checkpoints at 1, 6 and N of each. */
static void build(struct trail *t, struct px_chain_key *k)
{
    memset(t, 0, sizeof(*t));
    struct px_chain c[2];
    for (int w = 0; w < 2; w++)
        assert_int_equal(px_chain_init(&c[w]), PX_OK);
    for (int i = 0; i < 2 * N; i++) {
        struct px_chain *ch = &c[i % 2];
        struct row *row = &t->rows[t->n++];
        row->r = rec(i);
        if (build_tenants)
            snprintf(row->r.tenant, sizeof(row->r.tenant), "%s",
                     (const char *[]){"b", "a", ""}[i % 3]);
        unsigned char h[32];
        px_chain_hash(ch->writer, ch->seq + 1, &row->r, ch->head, h);
        memcpy(row->writer, ch->writer, 18);
        row->wseq = (int64_t)ch->seq + 1;
        px_chain_hex(ch->head, row->prev);
        px_chain_hex(h, row->hash);
        ch->seq++;
        memcpy(ch->head, h, 32);
        if (ch->seq == 1 || ch->seq == 6 || ch->seq == N) {
            struct px_checkpoint cp;
            memset(&cp, 0, sizeof(cp));
            memcpy(cp.writer, ch->writer, 18);
            cp.seq = ch->seq;
            memcpy(cp.head, ch->head, 32);
            px_chain_now_ts(cp.time);
            size_t len = 0;
            assert_int_equal(
                px_checkpoint_sign(k, &cp, t->notes[t->ncp], sizeof(t->notes[0]), &len), PX_OK);
            t->ncp++;
        }
    }
}

/* Runs the verifier over t (counting tenant's records, or NULL); returns
 * whether it passed, the report in *rep. */
static bool run_tenant(const struct trail *t, const struct px_chain_key *k, const char *tenant,
                       struct px_chain_report *rep)
{
    struct px_chain_verifier *v = NULL;
    assert_int_equal(px_chain_verifier_new(k, NULL, NULL, &v), PX_OK);
    if (tenant)
        px_chain_verifier_set_tenant(v, tenant);
    for (size_t i = 0; i < t->ncp; i++) {
        char where[32];
        snprintf(where, sizeof(where), "cp %zu", i);
        px_chain_verifier_checkpoint(v, t->notes[i], strlen(t->notes[i]), where);
    }
    for (size_t i = 0; i < t->n; i++) {
        char where[32];
        snprintf(where, sizeof(where), "row %zu", i);
        const struct row *r = &t->rows[i];
        px_chain_verifier_record(v, &r->r, r->writer, r->wseq, r->prev, r->hash, where);
    }
    bool ok = px_chain_verifier_finish(v, rep);
    px_chain_verifier_free(v);
    return ok;
}

static bool run(const struct trail *t, const struct px_chain_key *k, struct px_chain_report *rep)
{
    return run_tenant(t, k, NULL, rep);
}

static void remove_row(struct trail *t, size_t i)
{
    memmove(&t->rows[i], &t->rows[i + 1], (t->n - i - 1) * sizeof(t->rows[0]));
    t->n--;
}

static void expect_broken(const struct trail *t, const struct px_chain_key *k, const char *where,
                          const char *what)
{
    struct px_chain_report rep;
    assert_false(run(t, k, &rep));
    assert_true(rep.broken);
    assert_string_equal(rep.where, where);
    if (!strstr(rep.what, what))
        fail_msg("expected \"%s\" in \"%s\"", what, rep.what);
}

static void test_verifier(void **state)
{
    PX_UNUSED(state);
    struct px_chain_key *k = NULL, *p = NULL, *k2 = NULL;
    assert_int_equal(px_chain_key_load(key1, true, &k, NULL, 0), PX_OK);
    assert_int_equal(px_chain_key_load(pub1, false, &p, NULL, 0), PX_OK);
    assert_int_equal(px_chain_key_load(key2, true, &k2, NULL, 0), PX_OK);
    static struct trail base, t;
    build(&base, k);
    struct px_chain_report rep;

    /* Untouched. */
    assert_true(run(&base, p, &rep));
    assert_int_equal(rep.records, 2 * N);
    assert_int_equal(rep.chained, 2 * N);
    assert_int_equal(rep.writers, 2);
    assert_int_equal(rep.checkpoints, 6);

    /* A field changed. */
    t = base;
    t.rows[5].r.status[0] = 'E';
    expect_broken(&t, p, "row 5", "changed");
    /* A field changed and the hash recomputed: the next record's prev disagrees. */
    t = base;
    t.rows[4].r.status[0] = 'E';
    {
        unsigned char prev[32], h[32];
        assert_true(px_chain_unhex(t.rows[4].prev, prev));
        px_chain_hash(t.rows[4].writer, (uint64_t)t.rows[4].wseq, &t.rows[4].r, prev, h);
        px_chain_hex(h, t.rows[4].hash);
    }
    expect_broken(&t, p, "row 6", "chain broken");
    /* The whole rest of that chain rehashed: the signed checkpoint disagrees. */
    t = base;
    t.rows[4].r.status[0] = 'E';
    unsigned char head[32];
    assert_true(px_chain_unhex(t.rows[4].prev, head));
    for (size_t i = 4; i < t.n; i += 2) {
        unsigned char h[32];
        px_chain_hex(head, t.rows[i].prev);
        px_chain_hash(t.rows[i].writer, (uint64_t)t.rows[i].wseq, &t.rows[i].r, head, h);
        px_chain_hex(h, t.rows[i].hash);
        memcpy(head, h, 32);
    }
    expect_broken(&t, p, "row 10", "does not match its signed checkpoint");
    /* A record removed. */
    t = base;
    remove_row(&t, 6);
    expect_broken(&t, p, "row 7", "wseq 4..4 missing");
    /* Two records of one writer swapped. */
    t = base;
    {
        struct row tmp = t.rows[6];
        t.rows[6] = t.rows[8];
        t.rows[8] = tmp;
    }
    expect_broken(&t, p, "row 6", "missing");
    /* A record duplicated. */
    t = base;
    memmove(&t.rows[8], &t.rows[7], (t.n - 7) * sizeof(t.rows[0]));
    t.n++;
    expect_broken(&t, p, "row 8", "duplicate");
    /* A record inserted with a consistent chain of its own (an unknown writer). */
    t = base;
    {
        struct px_chain c;
        assert_int_equal(px_chain_init(&c), PX_OK);
        struct row *r = &t.rows[t.n++];
        r->r = rec(77);
        unsigned char h[32];
        px_chain_hash(c.writer, 1, &r->r, c.head, h);
        memcpy(r->writer, c.writer, 18);
        r->wseq = 1;
        px_chain_hex(c.head, r->prev);
        px_chain_hex(h, r->hash);
    }
    expect_broken(&t, p, "row 24", "no signed checkpoint");
    /* A record without chain fields after the chain began. */
    t = base;
    t.rows[3].writer[0] = '\0';
    expect_broken(&t, p, "row 3", "without chain fields");
    /* The tail removed (covered by a checkpoint). */
    t = base;
    t.n -= 2;
    expect_broken(&t, p, "cp 4", "tail removed");
    /* A whole writer removed. */
    t = base;
    for (size_t i = t.n; i-- > 0;)
        if (i % 2)
            remove_row(&t, i);
    expect_broken(&t, p, "cp 5", "every record of writer");
    /* A checkpoint replaced by one signed with another key. */
    t = base;
    {
        struct px_checkpoint cp;
        assert_int_equal(px_checkpoint_open(p, t.notes[2], strlen(t.notes[2]), &cp), PX_OK);
        size_t len = 0;
        assert_int_equal(px_checkpoint_sign(k2, &cp, t.notes[2], sizeof(t.notes[2]), &len), PX_OK);
    }
    expect_broken(&t, p, "cp 2", "not signed by the given key");
    /* Records written before the chain came first: unchained, not broken. */
    t = base;
    memmove(&t.rows[2], &t.rows[0], t.n * sizeof(t.rows[0]));
    t.n += 2;
    t.rows[0].writer[0] = t.rows[1].writer[0] = '\0';
    assert_true(run(&t, p, &rep));
    assert_int_equal(rep.unchained, 2);
    /* The tail after the last checkpoints: the documented limit, not detected. */
    t = base;
    t.ncp -= 2; /* the checkpoints at wseq N of both writers */
    t.n -= 2;
    assert_true(run(&t, p, &rep));
    px_chain_key_free(k);
    px_chain_key_free(k2);
    px_chain_key_free(p);
}

/* One writer, 12 records, checkpoints at 4, 8 and 12 whose expires-min say
 * segment 1..4 and 9..12 may have lost records to TTL at now = 1000, 5..8 not. */
static void build_ttl(struct trail *t, struct px_chain_key *k)
{
    memset(t, 0, sizeof(*t));
    struct px_chain c;
    assert_int_equal(px_chain_init(&c), PX_OK);
    for (int i = 0; i < 12; i++) {
        struct row *row = &t->rows[t->n++];
        row->r = rec(i);
        row->r.expires_at = i < 4 ? 100 + i : i < 8 ? 2000 + i : 50 + i;
        unsigned char h[32];
        px_chain_hash(c.writer, c.seq + 1, &row->r, c.head, h);
        memcpy(row->writer, c.writer, 18);
        row->wseq = (int64_t)c.seq + 1;
        px_chain_hex(c.head, row->prev);
        px_chain_hex(h, row->hash);
        c.seq++;
        memcpy(c.head, h, 32);
        if (c.seq % 4 == 0) {
            struct px_checkpoint cp;
            memset(&cp, 0, sizeof(cp));
            memcpy(cp.writer, c.writer, 18);
            cp.seq = c.seq;
            memcpy(cp.head, c.head, 32);
            cp.expires_min = c.seq == 8 ? 2004 : c.seq == 4 ? 100 : 58;
            px_chain_now_ts(cp.time);
            size_t len = 0;
            assert_int_equal(
                px_checkpoint_sign(k, &cp, t->notes[t->ncp], sizeof(t->notes[0]), &len), PX_OK);
            t->ncp++;
        }
    }
}

static bool run_ttl(const struct trail *t, const struct px_chain_key *k, int64_t now,
                    struct px_chain_report *rep)
{
    struct px_chain_verifier *v = NULL;
    assert_int_equal(px_chain_verifier_new(k, NULL, NULL, &v), PX_OK);
    px_chain_verifier_set_ttl(v, now);
    for (size_t i = 0; i < t->ncp; i++)
        px_chain_verifier_checkpoint(v, t->notes[i], strlen(t->notes[i]), "cp");
    for (size_t i = 0; i < t->n; i++) {
        char where[32];
        snprintf(where, sizeof(where), "row %zu", i);
        const struct row *r = &t->rows[i];
        px_chain_verifier_record(v, &r->r, r->writer, r->wseq, r->prev, r->hash, where);
    }
    bool ok = px_chain_verifier_finish(v, rep);
    px_chain_verifier_free(v);
    return ok;
}

/* DynamoDB's TTL deletes expired items late and in no order: gaps are
 * accepted only inside segments whose signed expires-min has passed. */
static void test_ttl_segments(void **state)
{
    PX_UNUSED(state);
    struct px_chain_key *k = NULL;
    assert_int_equal(px_chain_key_load(key1, true, &k, NULL, 0), PX_OK);
    static struct trail base, t;
    build_ttl(&base, k);
    struct px_chain_report rep;
    assert_true(run_ttl(&base, k, 1000, &rep));
    /* Inside an expired segment. */
    t = base;
    remove_row(&t, 2);
    remove_row(&t, 1);
    assert_true(run_ttl(&t, k, 1000, &rep));
    /* Its end: the next segment links to the checkpoint's head. */
    t = base;
    remove_row(&t, 3);
    assert_true(run_ttl(&t, k, 1000, &rep));
    t = base;
    for (int i = 0; i < 4; i++)
        remove_row(&t, 0);
    assert_true(run_ttl(&t, k, 1000, &rep));
    /* The tail, expired. */
    t = base;
    t.n -= 2;
    assert_true(run_ttl(&t, k, 1000, &rep));
    /* A segment not yet expired keeps every record. */
    t = base;
    remove_row(&t, 5);
    assert_false(run_ttl(&t, k, 1000, &rep));
    assert_string_equal(rep.where, "row 5");
    /* Nor before its time, nor without TTL. */
    t = base;
    remove_row(&t, 1);
    assert_false(run_ttl(&t, k, 99, &rep));
    assert_false(run_ttl(&t, k, 0, &rep));
    /* A change is a change, expired or not. */
    t = base;
    t.rows[2].r.status[0] = 'E';
    assert_false(run_ttl(&t, k, 1000, &rep));
    assert_non_null(strstr(rep.what, "changed"));
    px_chain_key_free(k);
}

/* verify --tenant: every record is still checked; the tenant's are counted;
 * another tenant's broken record is named by writer and wseq only. */
static void test_verifier_tenant(void **state)
{
    PX_UNUSED(state);
    struct px_chain_key *k = NULL;
    assert_int_equal(px_chain_key_load(key1, true, &k, NULL, 0), PX_OK);
    static struct trail base, t;
    build_tenants = true;
    build(&base, k);
    build_tenants = false;
    struct px_chain_report rep;
    assert_true(run(&base, k, &rep));
    assert_int_equal(rep.tenant_records, 0);
    const char *names[] = {"a", "b", "default", "zzz"};
    const uint64_t want[] = {2 * N / 3, 2 * N / 3, 2 * N / 3, 0};
    for (size_t i = 0; i < PX_COUNTOF(names); i++) {
        assert_true(run_tenant(&base, k, names[i], &rep));
        assert_int_equal(rep.records, 2 * N);
        assert_int_equal(rep.tenant_records, want[i]);
    }
    /* row 3 is tenant b's: writer 1's wseq 2 */
    t = base;
    t.rows[3].r.status[0] = 'E';
    assert_false(run_tenant(&t, k, "a", &rep));
    char where[128];
    snprintf(where, sizeof(where), "a record of another tenant (writer %s wseq 2)",
             t.rows[3].writer);
    assert_string_equal(rep.where, where);
    assert_non_null(strstr(rep.what, "changed"));
    assert_false(run_tenant(&t, k, "b", &rep));
    assert_string_equal(rep.where, "row 3");
    assert_false(run(&t, k, &rep));
    assert_string_equal(rep.where, "row 3");
    /* a record moved to another tenant fails its hash: the tenant is hashed */
    t = base;
    snprintf(t.rows[5].r.tenant, sizeof(t.rows[5].r.tenant), "a");
    assert_false(run_tenant(&t, k, "a", &rep));
    assert_string_equal(rep.where, "row 5");
    /* a store that could not read a record's tenant: not shown either */
    struct px_chain_verifier *v = NULL;
    assert_int_equal(px_chain_verifier_new(k, NULL, NULL, &v), PX_OK);
    px_chain_verifier_set_tenant(v, "a");
    px_chain_verifier_next(v, NULL, NULL, 0);
    px_chain_verifier_fail(v, "key T#b#USER#u1", "unreadable record value");
    assert_false(px_chain_verifier_finish(v, &rep));
    assert_string_equal(rep.where, "a record whose tenant cannot be read (no chain fields)");
    px_chain_verifier_free(v);
    px_chain_key_free(k);
}

/* The "tenant NAME" line of an export digest's signed text. */
static void test_digest_tenant(void **state)
{
    PX_UNUSED(state);
    const char *head = "pricing.audit/export/v1\nseq 1\nprevious 00\nfrom -\nto -\n"
                       "created 2026-01-23T12:00:00.000Z\n";
    char text[512], out[65];
    /* none: the whole trail, as every digest before the line existed */
    snprintf(text, sizeof(text), "%sfile records-000001-0001.jsonl.gz 3 ab\n", head);
    assert_int_equal(px_digest_tenant(text, strlen(text), out), PX_OK);
    assert_string_equal(out, "");
    snprintf(text, sizeof(text), "%stenant acme-2\nfile records-000001-0001.jsonl.gz 3 ab\n", head);
    assert_int_equal(px_digest_tenant(text, strlen(text), out), PX_OK);
    assert_string_equal(out, "acme-2");
    /* only the signed text counts: a length that stops before the line */
    assert_int_equal(px_digest_tenant(text, strlen(head), out), PX_OK);
    assert_string_equal(out, "");
    snprintf(text, sizeof(text), "%stenant acme", head); /* no final newline */
    assert_int_equal(px_digest_tenant(text, strlen(text), out), PX_OK);
    assert_string_equal(out, "acme");
    const char *bad[] = {
        "tenant a\ntenant b\n",    /* twice */
        "tenant Acme\n",           /* not a tenant name */
        "tenant \n",               /* empty */
        "tenant a b\n",            /* a space */
        "file x 1 ab\ntenant a\n", /* after the files */
        "tenant "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", /* 65 */
    };
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        snprintf(text, sizeof(text), "%s%s", head, bad[i]);
        assert_int_equal(px_digest_tenant(text, strlen(text), out), PX_ERR_INVALID);
        assert_string_equal(out, "");
    }
    /* "tenants x" is no tenant line */
    snprintf(text, sizeof(text), "%stenants x\n", head);
    assert_int_equal(px_digest_tenant(text, strlen(text), out), PX_OK);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_binds_every_field),
        cmocka_unit_test(test_keygen),
        cmocka_unit_test(test_checkpoint_sign_open),
        cmocka_unit_test(test_verifier),
        cmocka_unit_test(test_ttl_segments),
        cmocka_unit_test(test_purge_checkpoint_same_seq),
        cmocka_unit_test(test_verifier_tenant),
        cmocka_unit_test(test_digest_tenant),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
