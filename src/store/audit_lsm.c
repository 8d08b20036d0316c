/* audit_lsm.c: the write-optimized embedded audit store (spec "lsm:DIR"), on RocksDB.
 *
 * Each record is two keys written in one synced write batch: the record under
 * its user key and a copy under its product key, so both queries are one
 * ordered range scan, and a record costs sequential log appends instead of
 * two random B-tree leaves. Group commit is audit_queue.c's: one writer
 * thread per store handle, done() only after the synced batch returned.
 *
 * RocksDB allows one writer process per database directory, so DIR holds one
 * sub-store per writer (DIR/w-00, DIR/w-01, ...): a handle claims the first
 * sub-store whose LOCK it can take, writes only there, and reads the others
 * as RocksDB secondaries (caught up with their writer before each query),
 * merging them by sort key. docs/internals/stores.md has the whole argument. */
#include "audit.h"
#include "audit_chain.h"
#include "audit_queue.h"
#include "../kernel/fs.h"
#include "../kernel/log.h"
#include "../kernel/tenant.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <rocksdb/c.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_DEFAULT      2000
#define TIMEOUT_MAX          60000
#define QUEUE_CAP_DEFAULT    65536
#define BATCH_DEFAULT        1024
#define BATCH_MAX            16384
#define SUBSTORES_MAX        64
#define BROKEN_MAX           8
#define VALUE_VERSION        1
#define VALUE_VERSION_CHANGE 2 /* a write's record: before / after follow */
#define VALUE_VERSION_CONFIG 3 /* a config change's body: as 2, then its config key */
#define CHANGE_ABSENT        0xffffffffu
/* Stored values are chained: versions 3, 4 and 5 are the bodies 1, 2 and 3
 * followed by the chain trailer: writer id, wseq (8 bytes big-endian), prev
 * hash, hash (docs/internals/audit-integrity.md). Versions 1 and 2 are records
 * written before the chain; a config change (body 3) is only ever chained. */
#define VALUE_CHAINED  2
#define TRAILER_LEN    (PX_CHAIN_WRITER_LEN + 8 + 2 * PX_CHAIN_HASH_LEN)
#define CONFIG_KEY_MAX 128 /* struct px_audit_record config_key, NUL excluded */
#define KEY_MAX                                                                                    \
    (1 + PX_AUDIT_TENANT_PREFIX_MAX + CONFIG_KEY_MAX + 1 + PX_AUDIT_CURSOR_MAX + 1 + PX_UUID_LEN + \
     1)
#define VALUE_MAX 1024
_Static_assert(sizeof(((struct px_audit_record *)0)->config_key) == CONFIG_KEY_MAX + 1,
               "CONFIG_KEY_MAX is the record's config_key");
/* Memtable size: bounds RSS per sub-store (two of them at most) and how much
 * log a secondary replays when it opens. 16 MiB rather than 4: with
 * universal compaction it cut the bytes written per look-up from 3.3 to
 * 2.3 KB and the CPU per look-up by a tenth (bench/RESULTS.md); 32 MiB wrote
 * less again but doubled the memory for little. */
#define MEMTABLE_BYTES (16u << 20)

/* A decoded write's before / after, still inside the stored value. */
struct change {
    const char *before, *after;
    size_t before_len, after_len;
};

struct reader {
    int index; /* w-NN */
    rocksdb_t *db;
};

struct lsm_audit {
    char dir[PATH_MAX];
    char sub[PATH_MAX + 8]; /* our sub-store */
    char secdir[PATH_MAX + 40];
    int index;
    dev_t sub_dev;
    ino_t sub_ino;
    long timeout_ms;
    rocksdb_options_t *opts, *sopts;
    rocksdb_block_based_table_options_t *bbto;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;

    /* The primary. Queries and writes hold lk shared; only the writer thread
     * swaps db (fault, reconnect) and holds it exclusive to do so. */
    pthread_rwlock_t lk;
    rocksdb_t *db;
    atomic_bool writer_open;

    /* Secondaries of the other sub-stores, guarded by rmu. */
    pthread_mutex_t rmu;
    struct reader readers[SUBSTORES_MAX];
    size_t nreaders;

    /* Primaries a write error left unusable. RocksDB 7.8 as Debian builds it
     * asserts (aborts the process) when such a handle is closed or written
     * again, so they stay open, unused, until exit; the writer moves on to a
     * fresh sub-store and the old one is read like any other. Writer thread. */
    rocksdb_t *broken[BROKEN_MAX];
    size_t nbroken;

    bool sync_init;
    struct px_aq *q;

    /* This handle's hash chain (writer thread): advanced only by a written batch. */
    struct px_chain chain;
    struct px_chain_key *key; /* NULL: no checkpoints */
    uint64_t cp_seq;
    bool cp_any;
    int64_t cp_ms;
};

/* A record's place in its writer's chain, stored after its fields. */
struct link {
    char writer[PX_CHAIN_WRITER_LEN + 1];
    uint64_t wseq;
    unsigned char prev[PX_CHAIN_HASH_LEN], hash[PX_CHAIN_HASH_LEN];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) PX_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- keys and values ------------------------------------------------------------------ */

/* Every key below has the tenant's T#<tenant># (CONTRACT §12; "" for the
 * default tenant, whose keys stay what they were) right after its type byte. */

/* 'U' user NUL sk: a user's records in sort-key order. */
static size_t user_key(char *k, const char *tenant, const char *user, const char *sk)
{
    char t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(tenant, t);
    int n = snprintf(k, KEY_MAX, "U%s%s%c%s", t, user, 0, sk);
    return n > 0 && n < KEY_MAX ? (size_t)n : 0;
}

/* 'A' principal NUL sk: a write's record under its actor (CONTRACT §8 pk
 * ACTOR#<principal>); writes carry no user id. */
static size_t actor_key(char *k, const char *tenant, const char *principal, const char *sk)
{
    char t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(tenant, t);
    int n = snprintf(k, KEY_MAX, "A%s%s%c%s", t, principal, 0, sk);
    return n > 0 && n < KEY_MAX ? (size_t)n : 0;
}

/* 'P' product NUL sk NUL user: a product's records in sort-key order; 'C' key
 * NUL sk NUL: a config key's changes (CONTRACT §9, gsi1pk CONFIG#<key>). */
static size_t product_key(char *k, const struct px_audit_record *r, const char *sk)
{
    char t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(r->tenant, t);
    int n = r->config_key[0]
                ? snprintf(k, KEY_MAX, "C%s%s%c%s%c", t, r->config_key, 0, sk, 0)
                : snprintf(k, KEY_MAX, "P%s%s%c%s%c%s", t, r->product_id, 0, sk, 0, r->user_id);
    return n > 0 && n < KEY_MAX ? (size_t)n : 0;
}

/* The record's tenant from its key k (type byte, then T#<tenant># or not). */
static void tenant_from_key(struct px_audit_record *r, const char *k, size_t kl)
{
    char head[PX_AUDIT_TENANT_PREFIX_MAX + 2];
    size_t n = kl > 1 ? kl - 1 : 0;
    if (n > sizeof(head) - 1)
        n = sizeof(head) - 1;
    memcpy(head, k + 1, n);
    head[n] = '\0';
    px_audit_tenant_from_key(r, head, NULL);
}

static size_t put_str(unsigned char *v, size_t at, const char *s)
{
    size_t n = strlen(s);
    v[at] = (unsigned char)n;
    memcpy(v + at + 1, s, n);
    return at + 1 + n;
}

/* Version, expires_at (8 bytes, big-endian), then nine length-prefixed
 * strings; every field is shorter than 256 bytes (struct px_audit_record).
 * A write's record (version 2) goes on with before and after, each a 4-byte
 * big-endian length (CHANGE_ABSENT: none) and its bytes; a look-up's stays
 * version 1, byte for byte what it always was. v holds value_size(r) bytes. */
static size_t encode_body(const struct px_audit_record *r, unsigned char *v)
{
    bool config = r->config_key[0] != '\0';
    bool change = r->before || r->after || config;
    size_t at = 0;
    v[at++] = config ? VALUE_VERSION_CONFIG : change ? VALUE_VERSION_CHANGE : VALUE_VERSION;
    uint64_t e = (uint64_t)r->expires_at;
    for (int i = 7; i >= 0; i--)
        v[at++] = (unsigned char)(e >> (i * 8));
    const char *f[] = {r->action,         r->status, r->user_id,   r->product_id,    r->request_id,
                       r->correlation_id, r->ts,     r->principal, r->api_request_id};
    for (size_t i = 0; i < PX_COUNTOF(f); i++)
        at = put_str(v, at, f[i]);
    if (!change)
        return at;
    const char *c[] = {r->before, r->after};
    for (size_t i = 0; i < PX_COUNTOF(c); i++) {
        uint32_t n = c[i] ? (uint32_t)strlen(c[i]) : CHANGE_ABSENT;
        for (int b = 3; b >= 0; b--)
            v[at++] = (unsigned char)(n >> (b * 8));
        if (c[i]) {
            memcpy(v + at, c[i], n);
            at += n;
        }
    }
    if (config)
        at = put_str(v, at, r->config_key);
    return at;
}

static void put_u64(unsigned char *v, uint64_t x)
{
    for (int i = 7; i >= 0; i--)
        *v++ = (unsigned char)(x >> (i * 8));
}

/* The record, then its link (version + VALUE_CHAINED). */
static size_t encode(const struct px_audit_record *r, const struct link *l, unsigned char *v)
{
    size_t at = encode_body(r, v);
    v[0] += VALUE_CHAINED;
    memcpy(v + at, l->writer, PX_CHAIN_WRITER_LEN);
    at += PX_CHAIN_WRITER_LEN;
    put_u64(v + at, l->wseq);
    at += 8;
    memcpy(v + at, l->prev, PX_CHAIN_HASH_LEN);
    at += PX_CHAIN_HASH_LEN;
    memcpy(v + at, l->hash, PX_CHAIN_HASH_LEN);
    return at + PX_CHAIN_HASH_LEN;
}

/* Bytes encode(r) writes at most. */
static size_t value_size(const struct px_audit_record *r)
{
    return VALUE_MAX + TRAILER_LEN + (r->before ? strlen(r->before) + 4 : 4) +
           (r->after ? strlen(r->after) + 4 : 4) + 1 + CONFIG_KEY_MAX;
}

static bool get_str(const unsigned char *v, size_t len, size_t *at, char *dst, size_t cap)
{
    if (*at >= len)
        return false;
    size_t n = v[*at];
    if (n >= cap || *at + 1 + n > len || memchr(v + *at + 1, 0, n))
        return false;
    memcpy(dst, v + *at + 1, n);
    dst[n] = '\0';
    *at += 1 + n;
    return true;
}

/* One change field of a version 2 value: *p points into v (not NUL-terminated),
 * NULL when absent. */
static bool get_change(const unsigned char *v, size_t len, size_t *at, const char **p, size_t *n)
{
    if (*at + 4 > len)
        return false;
    uint32_t l = 0;
    for (int i = 0; i < 4; i++)
        l = (l << 8) | v[*at + (size_t)i];
    *at += 4;
    if (l == CHANGE_ABSENT) {
        *p = NULL;
        *n = 0;
        return true;
    }
    if (l > PX_AUDIT_CHANGE_MAX || *at + l > len || memchr(v + *at, 0, l))
        return false;
    *p = (const char *)v + *at;
    *n = l;
    *at += l;
    return true;
}

/* Fills r from a stored value. A write's before / after are left pointing into
 * val (their lengths in ch): the caller copies them before val goes away. */
static px_rc decode_link(const char *val, size_t len, struct px_audit_record *r, struct change *ch,
                         struct link *l)
{
    const unsigned char *v = (const unsigned char *)val;
    memset(ch, 0, sizeof(*ch));
    memset(l, 0, sizeof(*l));
    r->before = r->after = NULL;
    if (len < 9 || v[0] < VALUE_VERSION || v[0] > VALUE_VERSION_CONFIG + VALUE_CHAINED)
        return PX_ERR_PROTOCOL;
    unsigned version = v[0];
    if (version > VALUE_VERSION_CHANGE) {
        /* The link is the trailer: the fields end where it starts. */
        if (len < 9 + TRAILER_LEN)
            return PX_ERR_PROTOCOL;
        size_t t = len - TRAILER_LEN;
        memcpy(l->writer, v + t, PX_CHAIN_WRITER_LEN);
        if (memchr(l->writer, 0, PX_CHAIN_WRITER_LEN))
            return PX_ERR_PROTOCOL;
        t += PX_CHAIN_WRITER_LEN;
        for (int i = 0; i < 8; i++)
            l->wseq = (l->wseq << 8) | v[t + (size_t)i];
        t += 8;
        memcpy(l->prev, v + t, PX_CHAIN_HASH_LEN);
        memcpy(l->hash, v + t + PX_CHAIN_HASH_LEN, PX_CHAIN_HASH_LEN);
        len -= TRAILER_LEN;
        version -= VALUE_CHAINED;
    }
    uint64_t e = 0;
    for (int i = 1; i <= 8; i++)
        e = (e << 8) | v[i];
    r->expires_at = (int64_t)e;
    size_t at = 9;
    bool ok = get_str(v, len, &at, r->action, sizeof(r->action)) &&
              get_str(v, len, &at, r->status, sizeof(r->status)) &&
              get_str(v, len, &at, r->user_id, sizeof(r->user_id)) &&
              get_str(v, len, &at, r->product_id, sizeof(r->product_id)) &&
              get_str(v, len, &at, r->request_id, sizeof(r->request_id)) &&
              get_str(v, len, &at, r->correlation_id, sizeof(r->correlation_id)) &&
              get_str(v, len, &at, r->ts, sizeof(r->ts)) &&
              get_str(v, len, &at, r->principal, sizeof(r->principal)) &&
              get_str(v, len, &at, r->api_request_id, sizeof(r->api_request_id));
    if (ok && version != VALUE_VERSION)
        ok = get_change(v, len, &at, &ch->before, &ch->before_len) &&
             get_change(v, len, &at, &ch->after, &ch->after_len);
    r->config_key[0] = '\0';
    if (ok && version == VALUE_VERSION_CONFIG)
        ok = get_str(v, len, &at, r->config_key, sizeof(r->config_key)) && r->config_key[0];
    return ok && at == len ? PX_OK : PX_ERR_PROTOCOL;
}

/* Fills r from a stored value of any version. */
static px_rc decode(const char *val, size_t len, struct px_audit_record *r, struct change *ch)
{
    struct link l;
    return decode_link(val, len, r, ch, &l);
}

/* 'K' writer NUL seq (8 bytes big-endian): a signed checkpoint, apart from the records. */
static size_t checkpoint_key(char *k, const char *writer, uint64_t seq)
{
    int n = snprintf(k, KEY_MAX, "K%s%c", writer, 0);
    if (n <= 0 || n + 8 >= KEY_MAX)
        return 0;
    put_u64((unsigned char *)k + n, seq);
    return (size_t)n + 8;
}

/* Puts a signed checkpoint of c into wb. */
static px_rc put_checkpoint(struct lsm_audit *a, rocksdb_writebatch_wi_t *wb,
                            const struct px_chain *c)
{
    struct px_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    memcpy(cp.writer, c->writer, sizeof(cp.writer));
    cp.seq = c->seq;
    cp.expires_min = c->seg_min == INT64_MAX ? 0 : c->seg_min;
    memcpy(cp.head, c->head, sizeof(cp.head));
    px_chain_now_ts(cp.time);
    char note[PX_CHAIN_NOTE_MAX], k[KEY_MAX];
    size_t len = 0, kl = checkpoint_key(k, c->writer, c->seq);
    px_rc rc = kl ? px_checkpoint_sign(a->key, &cp, note, sizeof(note), &len) : PX_ERR_INTERNAL;
    if (!rc)
        rocksdb_writebatch_wi_put(wb, k, kl, note, len);
    return rc;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The first batch of a chain always checkpoints, then every N records or T ms. */
static bool checkpoint_due(const struct lsm_audit *a, const struct px_chain *c)
{
    if (!a->key || c->seq == a->cp_seq)
        return false;
    return !a->cp_any || c->seq - a->cp_seq >= PX_CHAIN_CHECKPOINT_RECORDS ||
           mono_ms() - a->cp_ms >= PX_CHAIN_CHECKPOINT_MS;
}

/* ---- sub-stores ----------------------------------------------------------------------- */

static bool lock_error(const char *e)
{
    /* Another process (or handle in this one) holds the sub-store's LOCK. */
    return e && strstr(e, "/LOCK: ") != NULL;
}

static bool sub_still_there(struct lsm_audit *a)
{
    struct stat st;
    return stat(a->sub, &st) == 0 && st.st_ino == a->sub_ino && st.st_dev == a->sub_dev;
}

/* Takes the first free sub-store, creating it when needed. Only at open: a
 * reconnect after a fault reopens the same one and never creates. */
static px_rc claim(struct lsm_audit *a, char *err, size_t errlen)
{
    for (int i = 0; i < SUBSTORES_MAX; i++) {
        char *e = NULL;
        char sub[sizeof(a->sub)];
        snprintf(sub, sizeof(sub), "%s/w-%02d", a->dir, i);
        rocksdb_options_set_create_if_missing(a->opts, 1);
        rocksdb_t *db = rocksdb_open(a->opts, sub, &e);
        rocksdb_options_set_create_if_missing(a->opts, 0);
        if (!e) {
            struct stat st;
            if (stat(sub, &st) != 0) {
                rocksdb_close(db);
                set_err(err, errlen, "AUDIT_STORE: cannot stat %s: %s", sub, strerror(errno));
                return PX_ERR_IO;
            }
            /* Queries read a->db and a->index: they change under the write lock. */
            pthread_rwlock_wrlock(&a->lk);
            memcpy(a->sub, sub, sizeof(sub));
            a->sub_dev = st.st_dev;
            a->sub_ino = st.st_ino;
            a->index = i;
            a->db = db;
            atomic_store(&a->writer_open, true);
            pthread_rwlock_unlock(&a->lk);
            return PX_OK;
        }
        bool locked = lock_error(e);
        if (!locked)
            set_err(err, errlen, "AUDIT_STORE: cannot open %s: %s", sub, e);
        rocksdb_free(e);
        if (!locked)
            return PX_ERR_UNAVAILABLE;
    }
    set_err(err, errlen, "AUDIT_STORE: all %d sub-stores of %s are in use by other processes",
            SUBSTORES_MAX, a->dir);
    return PX_ERR_BUSY;
}

/* Writer thread only. */
static void writer_disconnect(struct lsm_audit *a)
{
    pthread_rwlock_wrlock(&a->lk);
    if (a->db)
        rocksdb_close(a->db);
    a->db = NULL;
    atomic_store(&a->writer_open, false);
    pthread_rwlock_unlock(&a->lk);
}

#define PROBE_BYTES (1u << 20)

/* Whether PROBE_BYTES can be written and synced in dir now (a file-size
 * limit, a full or failing disk say no), with a scratch file removed again. */
static bool can_write(const char *dir)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/.probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    static const char zeros[64 * 1024];
    bool ok = true;
    for (size_t done = 0; ok && done < PROBE_BYTES; done += sizeof(zeros))
        ok = write(fd, zeros, sizeof(zeros)) == (ssize_t)sizeof(zeros);
    ok = ok && fsync(fd) == 0;
    close(fd);
    unlink(path);
    return ok;
}

/* Writer thread only: a write failed (EFBIG, ENOSPC, EIO): set the primary
 * aside for good (see broken[]) and log it once. */
static void writer_set_aside(struct lsm_audit *a)
{
    pthread_rwlock_wrlock(&a->lk);
    if (a->db) {
        a->broken[a->nbroken++] = a->db;
#if defined(__SANITIZE_ADDRESS__)
        /* Kept on purpose until exit: not a leak. */
        __lsan_ignore_object(a->db);
#endif
    }
    a->db = NULL;
    atomic_store(&a->writer_open, false);
    pthread_rwlock_unlock(&a->lk);
    px_log_fields(PX_LOG_ERROR, NULL,
                  "audit store: a write failed; this sub-store takes no more records, the next "
                  "batch goes to a new one",
                  (const struct px_kv[]){{"path", a->sub}}, 1);
}

/* Writer thread only: reopens our own sub-store, never creating it, so a
 * directory that vanished is an error rather than a new, empty trail. After
 * a write error it claims a new sub-store in the same directory instead. */
static bool writer_connect(struct lsm_audit *a)
{
    if (a->nbroken) {
        struct stat st;
        /* The store directory itself must still be there: never a new trail.
         * And RocksDB must not meet the write error again while it creates
         * the new sub-store (an error there aborts too): a probe write first. */
        return a->nbroken < BROKEN_MAX && stat(a->dir, &st) == 0 && S_ISDIR(st.st_mode) &&
               can_write(a->dir) && claim(a, NULL, 0) == PX_OK;
    }
    if (!sub_still_there(a))
        return false;
    char *e = NULL;
    rocksdb_t *db = rocksdb_open(a->opts, a->sub, &e);
    if (e) {
        rocksdb_free(e);
        return false;
    }
    pthread_rwlock_wrlock(&a->lk);
    a->db = db;
    atomic_store(&a->writer_open, true);
    pthread_rwlock_unlock(&a->lk);
    return true;
}

/* ---- group commit --------------------------------------------------------------------- */

static void write_items(void *ctx, struct px_aq_item **items, size_t n, int64_t oldest)
{
    struct lsm_audit *a = ctx;
    PX_UNUSED(oldest);
    px_rc fail = PX_OK;
    /* The directory deleted or replaced under us: RocksDB would go on
     * appending to files nobody can find again. */
    if (a->db && !sub_still_there(a))
        writer_disconnect(a);
    if (!a->db && !writer_connect(a))
        fail = PX_ERR_IO;
    rocksdb_writebatch_wi_t *wb = fail ? NULL : rocksdb_writebatch_wi_create(0, 1);
    if (!fail && !wb)
        fail = PX_ERR_NOMEM;
    size_t puts = 0;
    /* The chain moves on in c; a->chain only once the batch is written. */
    struct px_chain c = a->chain;
    pthread_rwlock_rdlock(&a->lk);
    for (size_t i = 0; !fail && i < n; i++) {
        struct px_aq_item *it = items[i];
        char pk[PX_AUDIT_PK_MAX], sk[128], gsi1pk[PX_AUDIT_GSI1PK_MAX], k[KEY_MAX];
        unsigned char small[VALUE_MAX], *v = small;
        px_audit_keys(&it->rec, pk, sk, gsi1pk);
        size_t kl = it->rec.user_id[0] ? user_key(k, it->rec.tenant, it->rec.user_id, sk)
                                       : actor_key(k, it->rec.tenant, it->rec.principal, sk);
        if (!kl) {
            it->rc = PX_ERR_INVALID;
            continue;
        }
        /* Append-only: a key present in the store or earlier in this batch is refused. */
        size_t vl = 0;
        char *e = NULL;
        char *old = rocksdb_writebatch_wi_get_from_batch_and_db(wb, a->db, a->ro, k, kl, &vl, &e);
        if (e) {
            rocksdb_free(e);
            fail = PX_ERR_IO;
            break;
        }
        if (old) {
            rocksdb_free(old);
            it->rc = PX_ERR_CONFLICT;
            continue;
        }
        /* A write's before / after may be large: its value is built on the heap. */
        if ((it->rec.before || it->rec.after) && !(v = malloc(value_size(&it->rec)))) {
            fail = PX_ERR_NOMEM;
            break;
        }
        struct link l;
        memcpy(l.writer, c.writer, sizeof(l.writer));
        l.wseq = c.seq + 1;
        memcpy(l.prev, c.head, sizeof(l.prev));
        px_chain_hash(c.writer, l.wseq, &it->rec, c.head, l.hash);
        size_t len = encode(&it->rec, &l, v);
        rocksdb_writebatch_wi_put(wb, k, kl, (const char *)v, len);
        kl = product_key(k, &it->rec, sk);
        if (kl)
            rocksdb_writebatch_wi_put(wb, k, kl, (const char *)v, len);
        if (v != small)
            free(v);
        if (!kl) {
            /* Unreachable for a valid record; never leave half of one behind. */
            fail = PX_ERR_INTERNAL;
            break;
        }
        puts++;
        c.seq = l.wseq;
        if (it->rec.expires_at < c.seg_min)
            c.seg_min = it->rec.expires_at;
        memcpy(c.head, l.hash, sizeof(c.head));
    }
    /* Same write batch, same sync: a checkpoint costs no extra write. */
    bool cp = !fail && puts && checkpoint_due(a, &c);
    if (cp && put_checkpoint(a, wb, &c))
        fail = PX_ERR_INTERNAL;
    if (!fail && puts) {
        char *e = NULL;
        /* sync: the write-ahead log is fsynced before this returns. */
        rocksdb_write_writebatch_wi(a->db, a->wo, wb, &e);
        if (e) {
            rocksdb_free(e);
            fail = PX_ERR_IO;
        }
    }
    pthread_rwlock_unlock(&a->lk);
    if (wb)
        rocksdb_writebatch_wi_destroy(wb);
    if (!fail && puts) {
        a->chain = c;
        if (cp) {
            a->cp_seq = c.seq;
            a->chain.seg_min = INT64_MAX;
            a->cp_any = true;
            a->cp_ms = mono_ms();
        }
    }
    if (fail) {
        for (size_t i = 0; i < n; i++)
            if (items[i]->rc == PX_OK)
                items[i]->rc = fail;
        /* After a failed write RocksDB refuses further writes, and must not
         * be closed: set aside; the next batch claims a new sub-store. */
        if (fail == PX_ERR_IO && a->db)
            writer_set_aside(a);
    }
}

/* A checkpoint in a write batch of its own (idle, close). Writer thread, or
 * the closing thread once the writer has stopped. */
static void checkpoint_alone(struct lsm_audit *a)
{
    if (!a->db || !a->key || a->chain.seq == a->cp_seq)
        return;
    rocksdb_writebatch_wi_t *wb = rocksdb_writebatch_wi_create(0, 1);
    if (!wb)
        return;
    char *e = NULL;
    if (put_checkpoint(a, wb, &a->chain) == PX_OK) {
        pthread_rwlock_rdlock(&a->lk);
        rocksdb_write_writebatch_wi(a->db, a->wo, wb, &e);
        pthread_rwlock_unlock(&a->lk);
        if (e)
            rocksdb_free(e);
        else {
            a->cp_seq = a->chain.seq;
            a->chain.seg_min = INT64_MAX;
            a->cp_any = true;
            a->cp_ms = mono_ms();
        }
    }
    rocksdb_writebatch_wi_destroy(wb);
}

static void idle_checkpoint(void *ctx)
{
    struct lsm_audit *a = ctx;
    if (a->db && sub_still_there(a) && mono_ms() - a->cp_ms >= PX_CHAIN_CHECKPOINT_MS)
        checkpoint_alone(a);
}

static void probe(void *ctx)
{
    struct lsm_audit *a = ctx;
    if (a->db && !sub_still_there(a))
        writer_disconnect(a);
    if (!a->db)
        (void)writer_connect(a);
}

/* ---- readers of the other sub-stores ------------------------------------------------- */

static void rm_tree(const char *path, int depth)
{
    DIR *d = depth > 0 ? opendir(path) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[PATH_MAX];
        struct stat st;
        if (snprintf(p, sizeof(p), "%s/%s", path, de->d_name) >= (int)sizeof(p))
            continue;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p, depth - 1);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

/* Reader directories (secondaries' own info logs) of processes that are gone. */
static void remove_stale_readers(const char *readers)
{
    DIR *d = opendir(readers);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *end;
        errno = 0;
        long pid = strtol(de->d_name, &end, 10);
        if (errno || end == de->d_name || *end != '-' || pid <= 0 || pid > INT_MAX)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof(p), "%s/%s", readers, de->d_name) < (int)sizeof(p))
            rm_tree(p, 2);
    }
    if (d)
        closedir(d);
}

static struct reader *reader_of(struct lsm_audit *a, int index)
{
    for (size_t i = 0; i < a->nreaders; i++)
        if (a->readers[i].index == index)
            return &a->readers[i];
    return NULL;
}

/* Under rmu: opens a secondary on every other sub-store that holds a database
 * and brings each up to its writer's last synced batch. */
static px_rc refresh_readers(struct lsm_audit *a)
{
    DIR *d = opendir(a->dir);
    if (!d)
        return PX_ERR_UNAVAILABLE;
    px_rc rc = PX_OK;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        const char *nm = de->d_name;
        if (nm[0] != 'w' || nm[1] != '-' || nm[2] < '0' || nm[2] > '9' || nm[3] < '0' ||
            nm[3] > '9' || nm[4])
            continue;
        int index = (nm[2] - '0') * 10 + (nm[3] - '0');
        if (index >= SUBSTORES_MAX || index == a->index || reader_of(a, index))
            continue;
        char sub[PATH_MAX + 8], cur[PATH_MAX + 16], sec[PATH_MAX + 48];
        snprintf(sub, sizeof(sub), "%s/w-%02d", a->dir, index);
        snprintf(cur, sizeof(cur), "%s/CURRENT", sub);
        /* Being created right now by its writer, or never finished: nothing in it. */
        if (access(cur, F_OK) != 0)
            continue;
        snprintf(sec, sizeof(sec), "%s/w-%02d", a->secdir, index);
        char *e = NULL;
        rocksdb_t *db = rocksdb_open_as_secondary(a->sopts, sub, sec, &e);
        if (e) {
            rocksdb_free(e);
            rc = PX_ERR_UNAVAILABLE;
            break;
        }
        a->readers[a->nreaders].index = index;
        a->readers[a->nreaders].db = db;
        a->nreaders++;
    }
    closedir(d);
    for (size_t i = 0; !rc && i < a->nreaders; i++) {
        char *e = NULL;
        rocksdb_try_catch_up_with_primary(a->readers[i].db, &e);
        if (e) {
            rocksdb_free(e);
            rc = PX_ERR_UNAVAILABLE;
        }
    }
    return rc;
}

/* ---- open / close --------------------------------------------------------------------- */

/* The store directory: created (mkdir -p) only when the caller may create a
 * trail; otherwise it must exist with at least one sub-store in it, so a
 * deleted or mistyped trail is never silently replaced by an empty one. */
static px_rc store_dir(const char *dir, bool must_exist, char *err, size_t errlen)
{
    if (must_exist) {
        char first[PATH_MAX + 8];
        struct stat st;
        snprintf(first, sizeof(first), "%s/w-00", dir);
        if (stat(first, &st) != 0 || !S_ISDIR(st.st_mode)) {
            set_err(err, errlen,
                    "AUDIT_STORE: no audit trail at %s (create it with `pricing db seed`, or set "
                    "AUDIT_CREATE=1)",
                    dir);
            return PX_ERR_CONFIG;
        }
        return PX_OK;
    }
    char probe[PATH_MAX + 8];
    snprintf(probe, sizeof(probe), "%s/x", dir);
    int e = px_fs_make_parent(probe, 0750);
    if (e) {
        set_err(err, errlen, "AUDIT_STORE: cannot create directory %s: %s", dir, strerror(e));
        return PX_ERR_IO;
    }
    return PX_OK;
}

static void audit_close(void *impl)
{
    struct lsm_audit *a = impl;
    if (!a)
        return;
    /* Every queued record is written or failed, each done() called, before
     * the databases close. */
    px_aq_stop(a->q);
    /* A clean close leaves no tail after the last checkpoint. */
    if (a->db && sub_still_there(a))
        checkpoint_alone(a);
    px_chain_key_free(a->key);
    for (size_t i = 0; i < a->nreaders; i++)
        rocksdb_close(a->readers[i].db);
    if (a->db)
        rocksdb_close(a->db);
    if (a->secdir[0])
        rm_tree(a->secdir, 2);
    if (a->sync_init) {
        pthread_rwlock_destroy(&a->lk);
        pthread_mutex_destroy(&a->rmu);
    }
    if (a->bbto)
        rocksdb_block_based_options_destroy(a->bbto);
    if (a->opts)
        rocksdb_options_destroy(a->opts);
    if (a->sopts)
        rocksdb_options_destroy(a->sopts);
    if (a->wo)
        rocksdb_writeoptions_destroy(a->wo);
    if (a->ro)
        rocksdb_readoptions_destroy(a->ro);
    free(a);
}

/* RocksDB's flush and compaction threads (one environment per process) run
 * at the lowest CPU and I/O priority: they are never on an answer's path,
 * and at full load they took the cores the request threads and the writer
 * needed (bench/RESULTS.md: throughput and p99 at 64 connections). */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static rocksdb_env_t *bg_env;

static void env_init(void)
{
    bg_env = rocksdb_create_default_env();
    if (!bg_env)
        return;
    rocksdb_env_lower_thread_pool_cpu_priority(bg_env);
    rocksdb_env_lower_high_priority_thread_pool_cpu_priority(bg_env);
    rocksdb_env_lower_thread_pool_io_priority(bg_env);
    rocksdb_env_lower_high_priority_thread_pool_io_priority(bg_env);
}

static rocksdb_options_t *new_options(rocksdb_block_based_table_options_t *bbto)
{
    rocksdb_options_t *o = rocksdb_options_create();
    if (!o)
        return NULL;
    pthread_once(&env_once, env_init);
    if (bg_env)
        rocksdb_options_set_env(o, bg_env);
    rocksdb_options_set_block_based_table_factory(o, bbto);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    rocksdb_options_set_write_buffer_size(o, MEMTABLE_BYTES);
    rocksdb_options_set_max_write_buffer_number(o, 2);
    rocksdb_options_set_max_background_jobs(o, 2);
    /* Universal (tiered) compaction: records arrive under random user keys
     * and are never updated, so leveled compaction rewrote most of level 1
     * for every memtable flushed (4.3 KB written per look-up at 64
     * connections; 3.3 KB universal, same run). A store written with
     * leveled compaction opens unchanged: each level is one sorted run. */
    rocksdb_options_set_compaction_style(o, rocksdb_universal_compaction);
    /* Every record's key is looked up before it is written (append-only);
     * it is nearly always absent, and a whole-key bloom filter in the
     * memtable answers that without a skip-list search. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(o, 1);
    /* Its own info log: a warning level keeps it small. */
    rocksdb_options_set_info_log_level(o, 2);
    rocksdb_options_set_keep_log_file_num(o, 2);
    rocksdb_options_set_max_log_file_size(o, 1u << 20);
    /* A torn tail after a crash is a batch nobody heard "durable" for. */
    rocksdb_options_set_wal_recovery_mode(o, 2 /* point in time */);
    /* Flushes and compactions hand their table files to the disk a megabyte
     * at a time: left to pile up as dirty pages, they were written out in
     * bursts that each record's WAL sync then waited behind (quiet machine,
     * c=64, same run: p99 12.6 and 13.1 ms without, 7.9 and 6.7 ms with). */
    rocksdb_options_set_bytes_per_sync(o, 1u << 20);
    return o;
}

static px_rc audit_open(const char *target, const struct px_audit_opts *opts, void **impl,
                        char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    *impl = NULL;
    if (!target || !*target) {
        set_err(err, errlen, "AUDIT_STORE: lsm needs a directory (lsm:DIR)");
        return PX_ERR_CONFIG;
    }
    struct lsm_audit *a = calloc(1, sizeof(*a));
    if (!a) {
        set_err(err, errlen, "AUDIT_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    a->index = -1;
    atomic_init(&a->writer_open, false);
    if (strlen(target) >= sizeof(a->dir) - 64) {
        set_err(err, errlen, "AUDIT_STORE: path too long: %.64s", target);
        rc = PX_ERR_CONFIG;
        goto out;
    }
    snprintf(a->dir, sizeof(a->dir), "%s", target);
    long t = opts ? opts->timeout_ms : 0;
    a->timeout_ms = t <= 0 ? TIMEOUT_DEFAULT : t > TIMEOUT_MAX ? TIMEOUT_MAX : t;
    unsigned batch = opts && opts->max_batch ? opts->max_batch : BATCH_DEFAULT;
    if (batch > BATCH_MAX)
        batch = BATCH_MAX;
    size_t cap = opts && opts->queue_cap ? opts->queue_cap : QUEUE_CAP_DEFAULT;

    if (pthread_rwlock_init(&a->lk, NULL)) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (pthread_mutex_init(&a->rmu, NULL)) {
        pthread_rwlock_destroy(&a->lk);
        rc = PX_ERR_NOMEM;
        goto out;
    }
    a->sync_init = true;
    if (px_chain_init(&a->chain)) {
        set_err(err, errlen, "AUDIT_STORE: no random bytes for the writer id");
        rc = PX_ERR_INTERNAL;
        goto out;
    }
    if (opts && opts->signing_key_file) {
        char kerr[512];
        rc = px_chain_key_load(opts->signing_key_file, true, &a->key, kerr, sizeof(kerr));
        if (rc) {
            set_err(err, errlen, "AUDIT_SIGNING_KEY_FILE: %s", kerr);
            goto out;
        }
    }
    a->bbto = rocksdb_block_based_options_create();
    if (a->bbto)
        rocksdb_block_based_options_set_filter_policy(a->bbto,
                                                      rocksdb_filterpolicy_create_bloom(10));
    a->opts = a->bbto ? new_options(a->bbto) : NULL;
    a->sopts = a->bbto ? new_options(a->bbto) : NULL;
    a->wo = rocksdb_writeoptions_create();
    a->ro = rocksdb_readoptions_create();
    if (!a->opts || !a->sopts || !a->wo || !a->ro) {
        set_err(err, errlen, "AUDIT_STORE: out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    rocksdb_writeoptions_set_sync(a->wo, 1);
    /* A secondary keeps every table file open, so the primary's compactions
     * cannot pull one from under it. */
    rocksdb_options_set_max_open_files(a->sopts, -1);

    /* A file-size limit must surface as a failed write (EFBIG), not kill the process. */
    signal(SIGXFSZ, SIG_IGN);

    rc = store_dir(a->dir, opts && opts->must_exist, err, errlen);
    if (rc)
        goto out;
    char readers[PATH_MAX + 16];
    snprintf(readers, sizeof(readers), "%s/.readers", a->dir);
    if (mkdir(readers, 0750) != 0 && errno != EEXIST) {
        set_err(err, errlen, "AUDIT_STORE: cannot create directory %s: %s", readers,
                strerror(errno));
        rc = PX_ERR_IO;
        goto out;
    }
    remove_stale_readers(readers);
    snprintf(a->secdir, sizeof(a->secdir), "%s/%ld-XXXXXX", readers, (long)getpid());
    if (!mkdtemp(a->secdir)) {
        set_err(err, errlen, "AUDIT_STORE: cannot create a reader directory in %s: %s", readers,
                strerror(errno));
        a->secdir[0] = '\0';
        rc = PX_ERR_IO;
        goto out;
    }
    rc = claim(a, err, errlen);
    if (rc)
        goto out;
    const struct px_aq_opts qo = {
        .timeout_ms = a->timeout_ms,
        .max_batch = batch,
        .queue_cap = cap,
        .write = write_items,
        .probe = probe,
        .idle = idle_checkpoint,
        .idle_ms = 1000,
        .ctx = a,
    };
    rc = px_aq_start(&qo, &a->q);
    if (rc) {
        set_err(err, errlen, "AUDIT_STORE: cannot start the writer thread for %s", a->dir);
        goto out;
    }
    *impl = a;
out:
    if (rc)
        audit_close(a);
    return rc;
}

static px_rc audit_submit(void *impl, const struct px_audit_record *r, px_audit_done_fn done,
                          void *arg)
{
    struct lsm_audit *a = impl;
    return a ? px_aq_submit(a->q, r, done, arg) : PX_ERR_INVALID;
}

/* ---- query: a merge of one range scan per sub-store ----------------------------------- */

struct source {
    rocksdb_iterator_t *it;
    bool valid;
    char sk[PX_AUDIT_CURSOR_MAX + 1];
    struct px_audit_record rec;
    struct change ch; /* points into the iterator's current value */
};

struct scan {
    const char *prefix;
    size_t plen;
    bool by_product;
    const char *lower, *upper;
    int64_t now;
};

/* Moves s to its next visible record in range (or marks it done). */
static px_rc source_settle(struct source *s, const struct scan *sc)
{
    for (; rocksdb_iter_valid(s->it); rocksdb_iter_next(s->it)) {
        size_t kl = 0, vl = 0;
        const char *k = rocksdb_iter_key(s->it, &kl);
        if (kl < sc->plen || memcmp(k, sc->prefix, sc->plen) != 0)
            break;
        const char *skp = k + sc->plen;
        size_t skl = kl - sc->plen;
        if (sc->by_product) {
            const char *nul = memchr(skp, 0, skl);
            if (!nul)
                return PX_ERR_PROTOCOL;
            skl = (size_t)(nul - skp);
        }
        if (skl > PX_AUDIT_CURSOR_MAX)
            return PX_ERR_PROTOCOL;
        memcpy(s->sk, skp, skl);
        s->sk[skl] = '\0';
        if (strcmp(s->sk, sc->lower) <= 0)
            continue;
        if (strcmp(s->sk, sc->upper) >= 0)
            break;
        const char *v = rocksdb_iter_value(s->it, &vl);
        px_rc rc = decode(v, vl, &s->rec, &s->ch);
        if (rc)
            return rc;
        if (s->rec.expires_at <= sc->now)
            continue; /* hidden, not deleted: the store is append-only */
        s->valid = true;
        return PX_OK;
    }
    s->valid = false;
    char *e = NULL;
    rocksdb_iter_get_error(s->it, &e);
    if (e) {
        rocksdb_free(e);
        return PX_ERR_UNAVAILABLE;
    }
    return PX_OK;
}

/* Order of two visible records: sort key, then (product query) user. */
static int source_cmp(const struct source *x, const struct source *y)
{
    int c = strcmp(x->sk, y->sk);
    return c ? c : strcmp(x->rec.user_id, y->rec.user_id);
}

static px_rc audit_query(void *impl, const struct px_audit_query *q, struct px_arena *ar,
                         struct px_audit_page *out)
{
    struct lsm_audit *a = impl;
    if (!a || !q || !ar || !out ||
        (q->user_id != NULL) + (q->product_id != NULL) + (q->config_key != NULL) != 1 ||
        q->limit < 1 || q->limit > 1000)
        return PX_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    char lower[PX_AUDIT_CURSOR_MAX + 1], upper[40];
    if (px_audit_bounds(q, lower, upper))
        return PX_ERR_INVALID;
    const char *id = q->user_id ? q->user_id : q->product_id ? q->product_id : q->config_key;
    size_t id_max = q->config_key ? CONFIG_KEY_MAX : PX_MAX_PRODUCT_ID;
    if (strnlen(id, id_max + 1) > id_max)
        return PX_ERR_INVALID;
    char prefix[CONFIG_KEY_MAX + 3 + PX_AUDIT_TENANT_PREFIX_MAX], seek[KEY_MAX],
        t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(q->tenant, t); /* only the query's tenant is ever read */
    int plen = snprintf(prefix, sizeof(prefix), "%c%s%s%c",
                        q->user_id      ? 'U'
                        : q->product_id ? 'P'
                                        : 'C',
                        t, id, 0);
    memcpy(seek, prefix, (size_t)plen);
    size_t seekl = (size_t)plen + strlen(lower);
    memcpy(seek + plen, lower, strlen(lower));
    const struct scan sc = {.prefix = prefix,
                            .plen = (size_t)plen,
                            .by_product = q->user_id == NULL, /* product or config key */
                            .lower = lower,
                            .upper = upper,
                            .now = q->now};

    px_rc rc = PX_OK;
    struct source *src = NULL;
    size_t nsrc = 0, n = 0;
    struct px_audit_record *items = NULL;
    const char *last_sk = NULL;
    bool more = false;
    pthread_mutex_lock(&a->rmu);
    pthread_rwlock_rdlock(&a->lk);
    if (!a->db) {
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    rc = refresh_readers(a);
    if (rc)
        goto out;
    src = calloc(a->nreaders + 1, sizeof(*src));
    items = px_arena_alloc(ar, (size_t)q->limit * sizeof(*items));
    if (!src || !items) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i <= a->nreaders; i++) {
        rocksdb_t *db = i == 0 ? a->db : a->readers[i - 1].db;
        struct source *s = &src[nsrc];
        s->it = rocksdb_create_iterator(db, a->ro);
        if (!s->it) {
            rc = PX_ERR_NOMEM;
            goto out;
        }
        nsrc++;
        rocksdb_iter_seek(s->it, seek, seekl);
        rc = source_settle(s, &sc);
        if (rc)
            goto out;
    }
    for (;;) {
        struct source *best = NULL;
        for (size_t i = 0; i < nsrc; i++)
            if (src[i].valid && (!best || source_cmp(&src[i], best) < 0))
                best = &src[i];
        if (!best)
            break;
        if (n == (size_t)q->limit) {
            more = true;
            break;
        }
        items[n] = best->rec;
        if (q->tenant) /* the value has no tenant: the key said it is the query's */
            snprintf(items[n].tenant, sizeof(items[n].tenant), "%s", q->tenant);
        /* before / after live in the iterator's value: copied before it moves on. */
        if (best->ch.before &&
            !(items[n].before = px_arena_strndup(ar, best->ch.before, best->ch.before_len))) {
            rc = PX_ERR_NOMEM;
            goto out;
        }
        if (best->ch.after &&
            !(items[n].after = px_arena_strndup(ar, best->ch.after, best->ch.after_len))) {
            rc = PX_ERR_NOMEM;
            goto out;
        }
        n++;
        /* The cursor is the last returned sort key; it must outlive best's buffer. */
        last_sk = px_arena_strdup(ar, best->sk);
        if (!last_sk) {
            rc = PX_ERR_NOMEM;
            goto out;
        }
        rocksdb_iter_next(best->it);
        rc = source_settle(best, &sc);
        if (rc)
            goto out;
    }
out:
    for (size_t i = 0; i < nsrc; i++)
        rocksdb_iter_destroy(src[i].it);
    free(src);
    pthread_rwlock_unlock(&a->lk);
    pthread_mutex_unlock(&a->rmu);
    if (rc)
        return rc;
    if (more) {
        out->next_cursor = px_audit_cursor_encode(ar, last_sk);
        if (!out->next_cursor)
            return PX_ERR_NOMEM;
    }
    out->items = n ? items : NULL;
    out->nitems = n;
    return PX_OK;
}

static px_rc audit_ping(void *impl)
{
    struct lsm_audit *a = impl;
    if (!a)
        return PX_ERR_INVALID;
    if (!atomic_load(&a->writer_open) || !sub_still_there(a)) {
        /* The writer checks, disconnects and reconnects; readiness comes back
         * without waiting for traffic a not-ready instance would not get. */
        px_aq_probe(a->q);
        return PX_ERR_UNAVAILABLE;
    }
    return PX_OK;
}

/* Every record in every sub-store, expired ones included (migration checks). */
static px_rc audit_count(void *impl, uint64_t *count)
{
    struct lsm_audit *a = impl;
    px_rc rc = PX_OK;
    uint64_t total = 0;
    pthread_mutex_lock(&a->rmu);
    pthread_rwlock_rdlock(&a->lk);
    rc = a->db ? refresh_readers(a) : PX_ERR_UNAVAILABLE;
    for (size_t i = 0; !rc && i <= a->nreaders; i++) {
        rocksdb_iterator_t *it =
            rocksdb_create_iterator(i == 0 ? a->db : a->readers[i - 1].db, a->ro);
        /* Every record, look-up or write, has exactly one product key. */
        for (rocksdb_iter_seek(it, "P", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t kl = 0;
            const char *k = rocksdb_iter_key(it, &kl);
            if (!kl || k[0] != 'P')
                break;
            total++;
        }
        char *e = NULL;
        rocksdb_iter_get_error(it, &e);
        if (e) {
            rocksdb_free(e);
            rc = PX_ERR_UNAVAILABLE;
        }
        rocksdb_iter_destroy(it);
    }
    pthread_rwlock_unlock(&a->lk);
    pthread_mutex_unlock(&a->rmu);
    *count = total;
    return rc;
}

/* ---- verify ---------------------------------------------------------------------------- */

/* Bound on the records one verify holds in memory (two copies each). */
#define VERIFY_ENTRIES_MAX (4u << 20)

/* One stored copy of a chained record: which copy, where, its link. */
struct ventry {
    struct link l;
    bool ok;   /* its fields hash to l.hash and its key matches its fields */
    char kind; /* 'U' (user or actor key) or 'P' (product key) */
    int sub;   /* w-NN */
    char ts[25];
    char sk[128];
    char tenant[PX_TENANT_MAX + 1]; /* "" for default */
};

static int cmp_ventry(const void *x, const void *y)
{
    const struct ventry *a = x, *b = y;
    int c = strcmp(a->l.writer, b->l.writer);
    if (c)
        return c;
    if (a->l.wseq != b->l.wseq)
        return a->l.wseq < b->l.wseq ? -1 : 1;
    return (a->kind > b->kind) - (a->kind < b->kind);
}

static void ventry_where(const struct ventry *e, char *out, size_t n)
{
    snprintf(out, n, "w-%02d %s key of sk %s", e->sub, e->kind == 'P' ? "product" : "user", e->sk);
}

/* Feeds every checkpoint, then every record's link in wseq order per writer,
 * to v. Both copies of each record (user and product key) are decoded; each
 * must hash to its link and sit under the key its fields give, and the two
 * must carry the same link. */
static px_rc audit_verify(void *impl, struct px_chain_verifier *v, char *err, size_t errlen)
{
    struct lsm_audit *a = impl;
    px_rc rc = PX_OK;
    struct ventry *es = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&a->rmu);
    pthread_rwlock_rdlock(&a->lk);
    rc = a->db ? refresh_readers(a) : PX_ERR_UNAVAILABLE;
    if (rc)
        set_err(err, errlen, "cannot read the sub-stores of %s", a->dir);
    for (size_t i = 0; !rc && i <= a->nreaders; i++) {
        int sub = i == 0 ? a->index : a->readers[i - 1].index;
        rocksdb_iterator_t *it =
            rocksdb_create_iterator(i == 0 ? a->db : a->readers[i - 1].db, a->ro);
        for (rocksdb_iter_seek_to_first(it); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t kl = 0, vl = 0;
            const char *k = rocksdb_iter_key(it, &kl);
            const char *val = rocksdb_iter_value(it, &vl);
            char where[256];
            if (kl && k[0] == 'K') {
                snprintf(where, sizeof(where), "w-%02d checkpoint key %.*s", sub,
                         (int)strnlen(k + 1, kl - 1), k + 1);
                px_chain_verifier_checkpoint(v, val, vl, where);
                continue;
            }
            if (!kl || (k[0] != 'U' && k[0] != 'A' && k[0] != 'P' && k[0] != 'C')) {
                snprintf(where, sizeof(where), "w-%02d key %.*s", sub, (int)(kl > 80 ? 80 : kl), k);
                px_chain_verifier_next(v, NULL, NULL, 0);
                px_chain_verifier_fail(v, where, "a key of no known kind (inserted)");
                continue;
            }
            struct px_audit_record r;
            struct change ch;
            struct link l;
            memset(&r, 0, sizeof(r));
            px_rc dr = decode_link(val, vl, &r, &ch, &l);
            char pk[PX_AUDIT_PK_MAX], sk[128], gsi1pk[PX_AUDIT_GSI1PK_MAX], want[KEY_MAX];
            size_t wl = 0;
            if (!dr) {
                /* before / after point into the value: hashed before the iterator moves. */
                char *b = NULL, *af = NULL;
                if (ch.before)
                    b = strndup(ch.before, ch.before_len);
                if (ch.after)
                    af = strndup(ch.after, ch.after_len);
                r.before = b;
                r.after = af;
                if ((ch.before && !b) || (ch.after && !af))
                    dr = PX_ERR_NOMEM;
                /* The tenant is in the key only: a record moved to another
                 * tenant's key fails its hash (the tenant is hashed). */
                tenant_from_key(&r, k, kl);
                px_audit_keys(&r, pk, sk, gsi1pk);
                /* The index copy: P<product> or, for a config change, C<key>. */
                bool index_copy = k[0] == 'P' || k[0] == 'C';
                wl = index_copy    ? product_key(want, &r, sk)
                     : k[0] == 'U' ? user_key(want, r.tenant, r.user_id, sk)
                                   : actor_key(want, r.tenant, r.principal, sk);
                unsigned char h[PX_CHAIN_HASH_LEN];
                bool chained = l.writer[0] != '\0';
                bool hash_ok = true;
                if (chained) {
                    px_chain_hash(l.writer, l.wseq, &r, l.prev, h);
                    hash_ok = memcmp(h, l.hash, sizeof(h)) == 0;
                }
                free(b);
                free(af);
                if (dr) {
                    rc = dr;
                    break;
                }
                snprintf(where, sizeof(where), "w-%02d %s key of sk %s", sub,
                         k[0] == 'P'   ? "product"
                         : k[0] == 'C' ? "config"
                                       : "user",
                         sk);
                if (wl != kl || memcmp(want, k, kl) != 0) {
                    px_chain_verifier_next(v, r.tenant, l.writer, (int64_t)l.wseq);
                    px_chain_verifier_fail(v, where, "changed: its key does not match its fields");
                    continue;
                }
                /* Written before the chain: kept once, by its product copy. */
                if (!chained && k[0] != 'P' && k[0] != 'C')
                    continue;
                if (n == cap) {
                    size_t ncap = cap ? cap * 2 : 1024;
                    struct ventry *g =
                        ncap <= VERIFY_ENTRIES_MAX ? realloc(es, ncap * sizeof(*g)) : NULL;
                    if (!g) {
                        set_err(err, errlen, "more records than verify holds in memory (%u)",
                                VERIFY_ENTRIES_MAX / 2);
                        rc = PX_ERR_NOMEM;
                        break;
                    }
                    es = g;
                    cap = ncap;
                }
                struct ventry *e = &es[n++];
                e->l = l;
                e->ok = hash_ok;
                e->kind = k[0] == 'P' || k[0] == 'C' ? 'P' : 'U';
                e->sub = sub;
                memcpy(e->ts, r.ts, sizeof(e->ts));
                snprintf(e->sk, sizeof(e->sk), "%s", sk);
                snprintf(e->tenant, sizeof(e->tenant), "%s", r.tenant);
                continue;
            }
            snprintf(where, sizeof(where), "w-%02d key %.*s", sub, (int)(kl > 80 ? 80 : kl), k);
            px_chain_verifier_next(v, NULL, NULL, 0);
            px_chain_verifier_fail(v, where, "unreadable record value");
        }
        char *e = NULL;
        rocksdb_iter_get_error(it, &e);
        if (e) {
            set_err(err, errlen, "cannot read sub-store w-%02d: %s", sub, e);
            rocksdb_free(e);
            rc = PX_ERR_UNAVAILABLE;
        }
        rocksdb_iter_destroy(it);
    }
    pthread_rwlock_unlock(&a->lk);
    pthread_mutex_unlock(&a->rmu);
    if (!rc && n)
        qsort(es, n, sizeof(*es), cmp_ventry);
    /* Keys carry no insertion order: a record without a link dated after the
     * first linked one was inserted later, not written before the chain. */
    char first[25] = "";
    for (size_t i = 0; !rc && i < n; i++)
        if (es[i].l.writer[0] && (!first[0] || strcmp(es[i].ts, first) < 0))
            memcpy(first, es[i].ts, sizeof(first));
    size_t i0 = 0;
    for (; !rc && i0 < n && !es[i0].l.writer[0]; i0++) {
        char where[256];
        ventry_where(&es[i0], where, sizeof(where));
        px_chain_verifier_next(v, es[i0].tenant, NULL, 0);
        if (first[0] && strcmp(es[i0].ts, first) > 0)
            px_chain_verifier_fail(v, where,
                                   "a record without chain fields dated after the chain began "
                                   "(inserted, or its chain fields removed)");
        else
            px_chain_verifier_link(v, es[i0].ts, NULL, 0, NULL, NULL, true, where);
    }
    /* Each record: exactly one user copy and one product copy, same link. */
    for (size_t i = i0; !rc && i < n;) {
        size_t j = i + 1;
        while (j < n && strcmp(es[j].l.writer, es[i].l.writer) == 0 && es[j].l.wseq == es[i].l.wseq)
            j++;
        char where[256], prev[PX_CHAIN_HEX_LEN + 1], hash[PX_CHAIN_HEX_LEN + 1];
        const struct ventry *e = &es[i];
        /* The product copy names the record (the one count and queries by product use). */
        for (size_t x = i; x < j; x++)
            if (es[x].kind == 'P')
                e = &es[x];
        ventry_where(e, where, sizeof(where));
        px_chain_verifier_next(v, e->tenant, e->l.writer, (int64_t)e->l.wseq);
        if (j - i > 2 || (j - i == 2 && es[i].kind == es[i + 1].kind)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "duplicate: writer %s wseq %llu stored %zu times",
                     e->l.writer, (unsigned long long)e->l.wseq, j - i);
            px_chain_verifier_fail(v, where, msg);
        } else if (j - i == 1) {
            char msg[200];
            snprintf(msg, sizeof(msg), "removed: the %s copy of writer %s wseq %llu is missing",
                     e->kind == 'P' ? "user" : "product", e->l.writer,
                     (unsigned long long)e->l.wseq);
            px_chain_verifier_fail(v, where, msg);
        } else if (memcmp(es[i].l.hash, es[i + 1].l.hash, PX_CHAIN_HASH_LEN) != 0 ||
                   memcmp(es[i].l.prev, es[i + 1].l.prev, PX_CHAIN_HASH_LEN) != 0 || !es[i].ok ||
                   !es[i + 1].ok) {
            const struct ventry *bad = !es[i].ok ? &es[i] : &es[i + 1];
            ventry_where(bad, where, sizeof(where));
            px_chain_verifier_next(v, bad->tenant, bad->l.writer, (int64_t)bad->l.wseq);
            px_chain_verifier_fail(v, where,
                                   bad->ok ? "changed: its two copies carry different hashes"
                                           : "changed: its fields do not hash to its stored hash");
        }
        px_chain_hex(e->l.prev, prev);
        px_chain_hex(e->l.hash, hash);
        px_chain_verifier_next(v, e->tenant, e->l.writer, (int64_t)e->l.wseq);
        px_chain_verifier_link(v, e->ts, e->l.writer, (int64_t)e->l.wseq, prev, hash, e->ok, where);
        i = j;
    }
    free(es);
    return rc;
}

/* ---- purge ----------------------------------------------------------------------------- */

/* One stored copy of a record, for purge. */
struct pentry {
    char writer[PX_CHAIN_WRITER_LEN + 1]; /* "" for a record from before the chain */
    uint64_t wseq;
    int64_t expires_at;
    unsigned char hash[PX_CHAIN_HASH_LEN];
    int sub; /* index into the purge's sub-store table */
    char *key;
    size_t kl;
};

static int cmp_pentry(const void *x, const void *y)
{
    const struct pentry *a = x, *b = y;
    int c = strcmp(a->writer, b->writer);
    if (c)
        return c;
    if (a->wseq != b->wseq)
        return a->wseq < b->wseq ? -1 : 1;
    return (a->sub > b->sub) - (a->sub < b->sub);
}

struct psub {
    int index; /* w-NN */
    rocksdb_t *db;
    bool own; /* the handle's primary: not closed here */
};

/* Deletes the copies es[i..j) (all in sub-store db) in one synced batch. */
static px_rc purge_delete(rocksdb_t *db, const rocksdb_writeoptions_t *wo, const struct pentry *es,
                          size_t i, size_t j, char *err, size_t errlen)
{
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (size_t x = i; x < j; x++)
        rocksdb_writebatch_delete(wb, es[x].key, es[x].kl);
    char *e = NULL;
    rocksdb_write(db, wo, wb, &e);
    rocksdb_writebatch_destroy(wb);
    if (e) {
        set_err(err, errlen, "cannot delete expired records: %s", e);
        rocksdb_free(e);
        return PX_ERR_IO;
    }
    return PX_OK;
}

/* Per writer, the longest prefix of its chain whose records have all passed
 * expiresAt goes, as in SQLite. Sub-stores are separate databases, so the
 * removal cannot be one batch: a signed purge checkpoint is written first at
 * the end of every run of the prefix held by one sub-store, then the runs are
 * deleted in wseq order, one synced batch each. Whichever batch a crash stops
 * at, what is left of the writer begins right after a purge checkpoint and
 * verifies. Every sub-store is opened as a primary: a running process holding
 * one makes the purge refuse before it changes anything. */
static px_rc audit_purge(void *impl, int64_t now, uint64_t *removed, char *err, size_t errlen)
{
    struct lsm_audit *a = impl;
    *removed = 0;
    if (!a->key) {
        set_err(err, errlen, "purge needs the signing key (AUDIT_SIGNING_KEY_FILE)");
        return PX_ERR_CONFIG;
    }
    struct psub subs[SUBSTORES_MAX];
    size_t nsubs = 0;
    struct pentry *es = NULL;
    size_t n = 0, cap = 0;
    px_rc rc = PX_OK;
    pthread_rwlock_rdlock(&a->lk);
    if (!a->db) {
        pthread_rwlock_unlock(&a->lk);
        set_err(err, errlen, "the audit store %s is not open for writing", a->dir);
        return PX_ERR_UNAVAILABLE;
    }
    subs[nsubs++] = (struct psub){a->index, a->db, true};
    DIR *d = opendir(a->dir);
    struct dirent *de;
    while (d && !rc && (de = readdir(d))) {
        const char *nm = de->d_name;
        if (nm[0] != 'w' || nm[1] != '-' || nm[2] < '0' || nm[2] > '9' || nm[3] < '0' ||
            nm[3] > '9' || nm[4])
            continue;
        int index = (nm[2] - '0') * 10 + (nm[3] - '0');
        char sub[PATH_MAX + 8], cur[PATH_MAX + 16];
        snprintf(sub, sizeof(sub), "%s/w-%02d", a->dir, index);
        snprintf(cur, sizeof(cur), "%s/CURRENT", sub);
        if (index >= SUBSTORES_MAX || index == a->index || access(cur, F_OK) != 0)
            continue;
        char *e = NULL;
        rocksdb_t *db = rocksdb_open(a->opts, sub, &e);
        if (e) {
            set_err(err, errlen,
                    lock_error(e) ? "sub-store w-%02d is in use by a running process: stop every "
                                    "writer of %s before a purge"
                                  : "cannot open sub-store w-%02d of %s for the purge",
                    index, a->dir);
            rocksdb_free(e);
            rc = PX_ERR_BUSY;
            break;
        }
        subs[nsubs++] = (struct psub){index, db, false};
    }
    if (d)
        closedir(d);
    else
        rc = PX_ERR_UNAVAILABLE;
    /* Every copy of every record, with its link and expiry. */
    for (size_t si = 0; !rc && si < nsubs; si++) {
        rocksdb_iterator_t *it = rocksdb_create_iterator(subs[si].db, a->ro);
        for (rocksdb_iter_seek_to_first(it); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t kl = 0, vl = 0;
            const char *k = rocksdb_iter_key(it, &kl);
            const char *val = rocksdb_iter_value(it, &vl);
            if (!kl || (k[0] != 'U' && k[0] != 'A' && k[0] != 'P' && k[0] != 'C'))
                continue;
            struct px_audit_record r;
            struct change ch;
            struct link l;
            if (decode_link(val, vl, &r, &ch, &l) != PX_OK) {
                set_err(err, errlen, "sub-store w-%02d: an unreadable record", subs[si].index);
                rc = PX_ERR_PROTOCOL;
                break;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 1024;
                struct pentry *g =
                    ncap <= VERIFY_ENTRIES_MAX ? realloc(es, ncap * sizeof(*g)) : NULL;
                if (!g) {
                    set_err(err, errlen, "more records than a purge holds in memory (%u)",
                            VERIFY_ENTRIES_MAX / 2);
                    rc = PX_ERR_NOMEM;
                    break;
                }
                es = g;
                cap = ncap;
            }
            struct pentry *e = &es[n];
            memcpy(e->writer, l.writer, sizeof(e->writer));
            e->wseq = l.wseq;
            e->expires_at = r.expires_at;
            memcpy(e->hash, l.hash, sizeof(e->hash));
            e->sub = (int)si;
            e->kl = kl;
            if (!(e->key = malloc(kl))) {
                rc = PX_ERR_NOMEM;
                break;
            }
            memcpy(e->key, k, kl);
            n++;
        }
        char *e = NULL;
        rocksdb_iter_get_error(it, &e);
        if (e) {
            set_err(err, errlen, "cannot read sub-store w-%02d: %s", subs[si].index, e);
            rocksdb_free(e);
            rc = PX_ERR_UNAVAILABLE;
        }
        rocksdb_iter_destroy(it);
    }
    if (!rc && n)
        qsort(es, n, sizeof(*es), cmp_pentry);
    /* Per writer: [i, upto) is the expired prefix; its runs end where the sub-store changes. */
    /* One batch of purge checkpoints per sub-store: each goes where its run's
     * records (and so the plain checkpoint at that seq, if any) live. */
    rocksdb_writebatch_t *cps[SUBSTORES_MAX] = {0};
    for (size_t i = 0; i < nsubs; i++)
        cps[i] = rocksdb_writebatch_create();
    for (size_t i = 0; !rc && i < n;) {
        size_t j = i;
        while (j < n && strcmp(es[j].writer, es[i].writer) == 0)
            j++;
        if (!es[i].writer[0]) { /* before the chain: each expired copy simply goes */
            i = j;
            continue;
        }
        size_t upto = i;
        while (upto < j && es[upto].expires_at <= now)
            upto++;
        /* Never half a record: both copies of the last wseq must be in. */
        while (upto > i && upto < j && es[upto].wseq == es[upto - 1].wseq)
            upto--;
        while (upto > i && upto < j && es[upto - 1].wseq == es[upto].wseq)
            upto--;
        for (size_t x = i; !rc && x < upto; x++) {
            bool run_end =
                x + 1 == upto || (es[x + 1].wseq != es[x].wseq && es[x + 1].sub != es[x].sub);
            if (!run_end)
                continue;
            struct px_checkpoint c;
            memset(&c, 0, sizeof(c));
            memcpy(c.writer, es[x].writer, sizeof(c.writer));
            c.seq = es[x].wseq;
            c.purged = true;
            memcpy(c.head, es[x].hash, sizeof(c.head));
            px_chain_now_ts(c.time);
            char note[PX_CHAIN_NOTE_MAX], k[KEY_MAX];
            size_t len = 0, kl = checkpoint_key(k, c.writer, c.seq);
            rc = kl ? px_checkpoint_sign(a->key, &c, note, sizeof(note), &len) : PX_ERR_INTERNAL;
            if (!rc) {
                /* Same key as a checkpoint at that seq: same head, now marked purged. */
                rocksdb_writebatch_put(cps[es[x].sub], k, kl, note, len);
            }
        }
        /* Keep only the prefix for the deletes below. */
        for (size_t x = upto; x < j; x++)
            es[x].expires_at = INT64_MAX;
        i = j;
    }
    for (size_t i = 0; i < nsubs; i++) {
        if (!rc && rocksdb_writebatch_count(cps[i]) > 0) {
            char *e = NULL;
            rocksdb_write(subs[i].db, a->wo, cps[i], &e);
            if (e) {
                set_err(err, errlen, "cannot write the purge checkpoints: %s", e);
                rocksdb_free(e);
                rc = PX_ERR_IO;
            }
        }
        rocksdb_writebatch_destroy(cps[i]);
    }
    /* Runs in wseq order, each in its own sub-store's batch. */
    for (size_t i = 0; !rc && i < n;) {
        size_t j = i + 1;
        if (es[i].expires_at > now) {
            i++;
            continue;
        }
        while (j < n && es[j].expires_at <= now && es[j].sub == es[i].sub &&
               strcmp(es[j].writer, es[i].writer) == 0)
            j++;
        rc = purge_delete(subs[es[i].sub].db, a->wo, es, i, j, err, errlen);
        if (!rc)
            for (size_t x = i; x < j; x++)
                *removed += es[x].writer[0] ? (x + 1 < j && es[x + 1].wseq == es[x].wseq ? 0 : 1)
                                            : es[x].key[0] == 'P' || es[x].key[0] == 'C';
        i = j;
    }
    for (size_t i = 0; i < n; i++)
        free(es[i].key);
    free(es);
    for (size_t i = 0; i < nsubs; i++)
        if (!subs[i].own)
            rocksdb_close(subs[i].db);
    pthread_rwlock_unlock(&a->lk);
    return rc;
}

/* Every record in [from, to] (each once: its product key), sub-store by sub-store. */
static px_rc audit_scan(void *impl, const char *from, const char *to, px_audit_scan_fn fn,
                        void *arg, char *err, size_t errlen)
{
    struct lsm_audit *a = impl;
    px_rc rc = PX_OK;
    pthread_mutex_lock(&a->rmu);
    pthread_rwlock_rdlock(&a->lk);
    rc = a->db ? refresh_readers(a) : PX_ERR_UNAVAILABLE;
    if (rc)
        set_err(err, errlen, "cannot read the sub-stores of %s", a->dir);
    for (size_t i = 0; !rc && i <= a->nreaders; i++) {
        rocksdb_iterator_t *it =
            rocksdb_create_iterator(i == 0 ? a->db : a->readers[i - 1].db, a->ro);
        for (rocksdb_iter_seek(it, "P", 1); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t kl = 0, vl = 0;
            const char *k = rocksdb_iter_key(it, &kl);
            if (!kl || k[0] != 'P')
                break;
            const char *val = rocksdb_iter_value(it, &vl);
            struct px_audit_record r;
            struct change ch;
            memset(&r, 0, sizeof(r));
            if (decode(val, vl, &r, &ch)) {
                set_err(err, errlen, "unreadable record in %s", a->dir);
                rc = PX_ERR_PROTOCOL;
                break;
            }
            tenant_from_key(&r, k, kl);
            if ((from && strcmp(r.ts, from) < 0) || (to && strcmp(r.ts, to) > 0))
                continue;
            char *b = ch.before ? strndup(ch.before, ch.before_len) : NULL;
            char *af = ch.after ? strndup(ch.after, ch.after_len) : NULL;
            r.before = b;
            r.after = af;
            rc = (ch.before && !b) || (ch.after && !af) ? PX_ERR_NOMEM : fn(arg, &r);
            free(b);
            free(af);
        }
        char *e = NULL;
        rocksdb_iter_get_error(it, &e);
        if (e) {
            set_err(err, errlen, "cannot read %s: %s", a->dir, e);
            rocksdb_free(e);
            rc = PX_ERR_UNAVAILABLE;
        }
        rocksdb_iter_destroy(it);
    }
    pthread_rwlock_unlock(&a->lk);
    pthread_mutex_unlock(&a->rmu);
    return rc;
}

/* Group-commit figures since open, for tests: committed batches, records, largest batch. */
PX_STATIC void px_audit_lsm_stats(void *impl, uint64_t *batches, uint64_t *records,
                                  uint64_t *largest) __attribute__((unused));
PX_STATIC void px_audit_lsm_stats(void *impl, uint64_t *batches, uint64_t *records,
                                  uint64_t *largest)
{
    px_aq_stats(((struct lsm_audit *)impl)->q, batches, records, largest);
}

const struct px_audit_ops px_audit_lsm_ops = {
    .scheme = "lsm",
    .open = audit_open,
    .close = audit_close,
    .submit = audit_submit,
    .query = audit_query,
    .ping = audit_ping,
    .count = audit_count,
    .verify = audit_verify,
    .scan = audit_scan,
    .purge = audit_purge,
};
