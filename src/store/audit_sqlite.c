/* audit_sqlite.c: the embedded audit store (spec "sqlite:PATH").
 *
 * Durability costs one fsync per commit, so records are group-committed: a
 * single writer thread owns the write connection, takes everything waiting in
 * the queue (up to max_batch), appends it to table `audit` in one IMMEDIATE
 * transaction and only after COMMIT has returned (WAL, synchronous=FULL: the
 * WAL is fsynced) calls each record's done(). While one commit syncs, the next
 * batch gathers. The table is keyed by an ever-growing seq, so a batch touches
 * one or two pages at its end: the durable part of a look-up is an append.
 *
 * The query keys (by user, by product) live in two index tables the same
 * writer fills from the not-yet-indexed tail (seq > the watermark in
 * audit_index_state) in larger transactions: when the queue has been idle for a
 * moment, and under sustained load every INDEX_INTERVAL_MS or INDEX_BACKLOG
 * records. Those commits need no fsync of their own (the index is rebuilt from
 * the table, and the next record commit syncs them anyway). Queries read the
 * index tables plus the tail, in one read transaction, so every durable record
 * is visible at once. A key (pk, sk) is unique: the writer checks the tail (an
 * in-memory hash of its keys, verified against the row) and a trigger checks the
 * index before each insert; a duplicate written behind our back (another
 * program) is found by the indexer, logged and left out of the indexes, and
 * the query shows only the first record with that key.
 *
 * A failed BEGIN/COMMIT fails the whole batch and never reports it durable;
 * the writer reopens its connection and serves later batches when the fault
 * clears. Queries use their own read-only connection, so reads never wait for
 * the writer (WAL readers see the last commit). Records are append-only:
 * triggers refuse UPDATE, DELETE and REPLACE from any connection.
 * docs/internals/stores.md has the whole argument. */
#include "audit.h"
#include "../kernel/log.h"
#include "../kernel/metrics.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TIMEOUT_DEFAULT   2000
#define TIMEOUT_MAX       60000
#define QUEUE_CAP_DEFAULT 65536
#define BATCH_DEFAULT     1024
#define BATCH_MAX         16384
#define CURSOR_MAX        160 /* decoded bytes */
#define CURSOR_ENC_MAX    ((CURSOR_MAX * 4 + 2) / 3)
#define SCHEMA_VERSION    3
/* WAL size (pages) past which the writer checkpoints, between batches. */
#define CHECKPOINT_PAGES 1000
/* Indexing: after IDLE_MS without a record, or under load every
 * INDEX_INTERVAL_MS or once INDEX_BACKLOG records wait; at most INDEX_CHUNK
 * records per index transaction, so a pass never holds records back for long. */
#define INDEX_IDLE_MS     5
#define INDEX_INTERVAL_MS 50
#define INDEX_BACKLOG     2048
#define INDEX_CHUNK       4096
/* Waiting on another process's write lock for an index pass: short, it is retried. */
#define INDEX_BUSY_MS 50
/* Tail key set: initial and largest number of slots. */
#define KEYSET_MIN 4096
#define KEYSET_MAX (1u << 21)

/* Version 3 moves the query keys out of `audit`: the table is rebuilt without
 * UNIQUE (pk, sk) and audit_gsi1 (each insert dirtied a random leaf of both),
 * and two WITHOUT ROWID index tables plus a watermark take their place, filled
 * here from the existing rows. The new no_replace trigger looks a key up in
 * audit_by_user rather than in the table. */
#define V3_TABLE                                                                                   \
    " (seq INTEGER PRIMARY KEY,"                                                                   \
    " pk TEXT NOT NULL, sk TEXT NOT NULL, gsi1pk TEXT NOT NULL, gsi1sk TEXT NOT NULL,"             \
    " action TEXT NOT NULL, status TEXT NOT NULL, user_id TEXT NOT NULL,"                          \
    " product_id TEXT NOT NULL, request_id TEXT NOT NULL, correlation_id TEXT NOT NULL,"           \
    " ts TEXT NOT NULL, expires_at INTEGER NOT NULL, principal TEXT NOT NULL DEFAULT '',"          \
    " api_request_id TEXT NOT NULL DEFAULT '');"
#define V3_COLS                                                                                    \
    "seq, pk, sk, gsi1pk, gsi1sk, action, status, user_id, product_id, request_id,"                \
    " correlation_id, ts, expires_at, principal, api_request_id"

/* Migration v (0-based) brings the file from user_version v to v + 1. A step
 * that adds a column names it, and is skipped when the column is there already
 * (a file some earlier run upgraded without recording the version). */
static const struct migration {
    const char *sql;
    const char *adds_column; /* NULL: the SQL is idempotent by itself */
} migrations[SCHEMA_VERSION] = {
    {"CREATE TABLE IF NOT EXISTS audit ("
     " seq INTEGER PRIMARY KEY,"
     " pk TEXT NOT NULL, sk TEXT NOT NULL, gsi1pk TEXT NOT NULL, gsi1sk TEXT NOT NULL,"
     " action TEXT NOT NULL, status TEXT NOT NULL, user_id TEXT NOT NULL,"
     " product_id TEXT NOT NULL, request_id TEXT NOT NULL, correlation_id TEXT NOT NULL,"
     " ts TEXT NOT NULL, expires_at INTEGER NOT NULL, principal TEXT NOT NULL DEFAULT '',"
     " UNIQUE (pk, sk));"
     "CREATE INDEX IF NOT EXISTS audit_gsi1 ON audit (gsi1pk, gsi1sk);"
     "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
     " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
     "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
     " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
     /* INSERT OR REPLACE deletes the old row without firing DELETE triggers
      * (unless recursive_triggers is on): refuse any insert that would meet one. */
     "CREATE TRIGGER IF NOT EXISTS audit_no_replace BEFORE INSERT ON audit"
     " WHEN EXISTS (SELECT 1 FROM audit WHERE pk = NEW.pk AND sk = NEW.sk)"
     "  OR EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)"
     " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;",
     NULL},
    /* v2: API Gateway's own request id, so a record can be matched with the
     * gateway's access logs. Existing rows read back as "". */
    {"ALTER TABLE audit ADD COLUMN api_request_id TEXT NOT NULL DEFAULT ''", "api_request_id"},
    /* v3: append-only table, keys in index tables (see above). Runs in the
     * migration's transaction, with the version bump: all or nothing. */
    {"CREATE TABLE audit_v3" V3_TABLE "INSERT INTO audit_v3 (" V3_COLS ") SELECT " V3_COLS
     " FROM audit ORDER BY seq;"
     /* Drops audit_gsi1, the UNIQUE index and the triggers with the table;
      * DROP TABLE fires no DELETE trigger. */
     "DROP TABLE audit;"
     "ALTER TABLE audit_v3 RENAME TO audit;"
     "CREATE TABLE IF NOT EXISTS audit_by_user (pk TEXT NOT NULL, sk TEXT NOT NULL,"
     " seq INTEGER NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID;"
     "CREATE TABLE IF NOT EXISTS audit_by_product (gsi1pk TEXT NOT NULL, gsi1sk TEXT NOT NULL,"
     " seq INTEGER NOT NULL, PRIMARY KEY (gsi1pk, gsi1sk, seq)) WITHOUT ROWID;"
     "CREATE TABLE IF NOT EXISTS audit_index_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
     " seq INTEGER NOT NULL);"
     "INSERT OR IGNORE INTO audit_by_user (pk, sk, seq) SELECT pk, sk, seq FROM audit ORDER BY seq;"
     "INSERT OR IGNORE INTO audit_by_product (gsi1pk, gsi1sk, seq)"
     " SELECT a.gsi1pk, a.gsi1sk, a.seq FROM audit_by_user u CROSS JOIN audit a ON a.seq = u.seq;"
     "INSERT OR REPLACE INTO audit_index_state (id, seq)"
     " VALUES (1, (SELECT coalesce(max(seq), 0) FROM audit));"
     "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
     " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
     "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
     " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
     /* REPLACE can meet only a seq now (no other unique key on the table); a key
      * already indexed is refused too. Keys in the unindexed tail are checked by
      * the writer, and found by the indexer when written by anything else. */
     "CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit"
     " WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)"
     "  OR EXISTS (SELECT 1 FROM audit_by_user WHERE pk = NEW.pk AND sk = NEW.sk)"
     " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;",
     NULL},
};

static const char INSERT_SQL[] =
    "INSERT INTO audit (pk, sk, gsi1pk, gsi1sk, action, status, user_id, product_id,"
    " request_id, correlation_id, ts, expires_at, principal, api_request_id)"
    " VALUES (?1, ?2, ?3, ?2, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
static const char MAX_SEQ_SQL[] = "SELECT coalesce(max(seq), 0) FROM audit";
static const char WATERMARK_SQL[] = "SELECT seq FROM audit_index_state WHERE id = 1";
static const char TAIL_KEYS_SQL[] = "SELECT seq, pk, sk FROM audit WHERE seq > ?1 ORDER BY seq";
static const char KEY_AT_SQL[] = "SELECT pk, sk FROM audit WHERE seq = ?1";
/* Fallback when the key set cannot hold the tail: a scan, slow but exact. */
static const char TAIL_HAS_SQL[] = "SELECT 1 FROM audit WHERE seq > ?1 AND pk = ?2 AND sk = ?3";
static const char INDEX_SRC_SQL[] =
    "SELECT seq, pk, sk, gsi1pk, gsi1sk FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2";
static const char INDEX_USER_SQL[] =
    "INSERT OR IGNORE INTO audit_by_user (pk, sk, seq) VALUES (?1, ?2, ?3)";
static const char INDEX_PRODUCT_SQL[] =
    "INSERT OR IGNORE INTO audit_by_product (gsi1pk, gsi1sk, seq) VALUES (?1, ?2, ?3)";
static const char INDEX_HOLDER_SQL[] = "SELECT seq FROM audit_by_user WHERE pk = ?1 AND sk = ?2";
static const char SET_WATERMARK_SQL[] = "UPDATE audit_index_state SET seq = ?1 WHERE id = 1";

/* ?1 partition key, ?2 exclusive lower bound (cursor or from), ?3 exclusive
 * upper bound, ?4 now, ?5 limit + 1. Each query is two statements read in one
 * transaction and merged by sort key: the indexed records, and the tail past
 * the watermark (where a key already indexed, or an earlier tail record with the
 * same key, hides a later duplicate). */
#define SELECT_COLS                                                                                \
    "SELECT a.action, a.status, a.user_id, a.product_id, a.request_id, a.correlation_id, a.ts,"    \
    " a.expires_at, a.principal, a.api_request_id, a.sk"
#define TAIL_FROM                                                                                  \
    " FROM audit a WHERE a.seq > (SELECT seq FROM audit_index_state WHERE id = 1) AND "
#define TAIL_FIRST                                                                                 \
    " AND NOT EXISTS (SELECT 1 FROM audit_by_user u WHERE u.pk = a.pk AND u.sk = a.sk)"            \
    " AND NOT EXISTS (SELECT 1 FROM audit d WHERE d.seq > (SELECT seq FROM audit_index_state"      \
    " WHERE id = 1) AND d.seq < a.seq AND d.pk = a.pk AND d.sk = a.sk)"
static const char BY_USER_SQL[] =
    SELECT_COLS " FROM audit_by_user b CROSS JOIN audit a ON a.seq = b.seq"
                " WHERE b.pk = ?1 AND b.sk > ?2 AND b.sk < ?3 AND a.expires_at > ?4"
                " ORDER BY b.sk LIMIT ?5";
static const char BY_USER_TAIL_SQL[] =
    SELECT_COLS TAIL_FROM "a.pk = ?1 AND a.sk > ?2 AND a.sk < ?3 AND a.expires_at > ?4" TAIL_FIRST
                          " ORDER BY a.sk, a.seq LIMIT ?5";
static const char BY_PRODUCT_SQL[] =
    SELECT_COLS " FROM audit_by_product b CROSS JOIN audit a ON a.seq = b.seq"
                " WHERE b.gsi1pk = ?1 AND b.gsi1sk > ?2 AND b.gsi1sk < ?3 AND a.expires_at > ?4"
                " ORDER BY b.gsi1sk, b.seq LIMIT ?5";
static const char BY_PRODUCT_TAIL_SQL[] = SELECT_COLS TAIL_FROM
    "a.gsi1pk = ?1 AND a.gsi1sk > ?2 AND a.gsi1sk < ?3 AND a.expires_at > ?4" TAIL_FIRST
    " ORDER BY a.gsi1sk, a.seq LIMIT ?5";
static const char PING_SQL[] = "SELECT 1 FROM audit LIMIT 1";

/* '$' follows '#': every "AUDIT#..." key sorts below it. */
static const char UPPER_OPEN[] = "AUDIT$";

struct item {
    struct item *next;
    struct px_audit_record rec;
    px_audit_done_fn done;
    void *arg;
    int64_t enq_ms; /* monotonic */
    px_rc rc;
};

/* Keys of the unindexed tail: open addressing, hash -> seq. A hit is only a
 * hint, confirmed against the row, so stale entries (rolled-back or since
 * indexed records) are harmless. */
struct keyset {
    uint64_t *hash; /* 0 = empty slot */
    int64_t *seq;
    size_t cap, n;
};

struct sqlite_audit {
    char *path;
    long timeout_ms;
    unsigned max_batch;
    size_t queue_cap;

    /* Queue, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *head, *tail;
    size_t qlen;
    bool stopping;
    bool probe;   /* readiness asked the writer to reopen its connection */
    bool waiting; /* the writer sleeps on cv: submit must wake it */
    bool sync_init;
    pthread_t writer;
    bool writer_started;

    /* Owned by the writer thread once it runs. */
    sqlite3 *wdb;
    sqlite3_stmt *ins, *begin, *commit, *rollback, *max_seq, *watermark, *tail_keys, *key_at,
        *tail_has, *idx_src, *idx_user, *idx_product, *idx_holder, *set_wm, *sync_normal,
        *sync_full;
    struct item **batch;
    int wal_pages; /* frames in the WAL, from the WAL hook */
    atomic_bool writer_open;
    struct keyset keys;
    bool keys_valid;    /* keys holds every record with seq in (watermark, known_max] */
    int64_t known_max;  /* highest seq the writer has seen in the table */
    int64_t unindexed;  /* records past the watermark, as far as the writer knows */
    int64_t last_index; /* monotonic ms of the last index pass */

    /* Read side, guarded by rmu. */
    pthread_mutex_t rmu;
    sqlite3 *rdb;
    sqlite3_stmt *by_user, *by_user_tail, *by_product, *by_product_tail, *ping, *rbegin, *rend;

    /* Group-commit figures (committed batches only). */
    atomic_uint_fast64_t batches, records, largest;
    /* Index figures: records indexed, duplicates left out. */
    atomic_uint_fast64_t indexed, duplicates;
};

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

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

/* ---- tail key set --------------------------------------------------------------------- */

static uint64_t key_hash(const char *pk, const char *sk)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, pk NUL sk */
    for (const unsigned char *p = (const unsigned char *)pk; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    h *= 1099511628211ull;
    for (const unsigned char *p = (const unsigned char *)sk; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    h ^= h >> 29;
    return h ? h : 1;
}

static void keyset_clear(struct keyset *k)
{
    if (k->hash)
        memset(k->hash, 0, k->cap * sizeof(*k->hash));
    k->n = 0;
}

static void keyset_free(struct keyset *k)
{
    free(k->hash);
    free(k->seq);
    memset(k, 0, sizeof(*k));
}

static void keyset_put_slot(struct keyset *k, uint64_t h, int64_t seq)
{
    size_t i = (size_t)h & (k->cap - 1);
    while (k->hash[i])
        i = (i + 1) & (k->cap - 1);
    k->hash[i] = h;
    k->seq[i] = seq;
    k->n++;
}

/* false when the set is full (KEYSET_MAX) or memory is short. */
static bool keyset_put(struct keyset *k, uint64_t h, int64_t seq)
{
    if ((k->n + 1) * 2 > k->cap) {
        size_t ncap = k->cap ? k->cap * 2 : KEYSET_MIN;
        if (ncap > KEYSET_MAX)
            return false;
        uint64_t *nh = calloc(ncap, sizeof(*nh));
        int64_t *ns = malloc(ncap * sizeof(*ns));
        if (!nh || !ns) {
            free(nh);
            free(ns);
            return false;
        }
        struct keyset old = *k;
        *k = (struct keyset){.hash = nh, .seq = ns, .cap = ncap, .n = 0};
        for (size_t i = 0; i < old.cap; i++)
            if (old.hash[i])
                keyset_put_slot(k, old.hash[i], old.seq[i]);
        keyset_free(&old);
    }
    keyset_put_slot(k, h, seq);
    return true;
}

/* ---- writer connection ---------------------------------------------------------------- */

static void writer_disconnect(struct sqlite_audit *a)
{
    sqlite3_stmt **st[] = {&a->ins,        &a->begin,     &a->commit,      &a->rollback,
                           &a->max_seq,    &a->watermark, &a->tail_keys,   &a->key_at,
                           &a->tail_has,   &a->idx_src,   &a->idx_user,    &a->idx_product,
                           &a->idx_holder, &a->set_wm,    &a->sync_normal, &a->sync_full};
    for (size_t i = 0; i < PX_COUNTOF(st); i++) {
        sqlite3_finalize(*st[i]);
        *st[i] = NULL;
    }
    sqlite3_close_v2(a->wdb);
    a->wdb = NULL;
    a->keys_valid = false;
    atomic_store(&a->writer_open, false);
}

/* PRAGMA user_version, or -1 when it cannot be read. */
static int schema_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return version;
}

/* 1 when table audit has the column, 0 when not, -1 on error. */
static int has_column(sqlite3 *db, const char *column)
{
    sqlite3_stmt *st = NULL;
    int found = -1;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('audit') WHERE name = ?1", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, column, -1, SQLITE_STATIC) == SQLITE_OK) {
        int e = sqlite3_step(st);
        found = e == SQLITE_ROW ? 1 : e == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    return found;
}

static px_rc migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    int version = schema_version(db);
    if (version < 0) {
        set_err(err, errlen, "AUDIT_STORE: cannot read schema version of %s: %s", path,
                sqlite3_errmsg(db));
        return PX_ERR_IO;
    }
    if (version > SCHEMA_VERSION) {
        set_err(err, errlen, "AUDIT_STORE: %s has a newer schema than this binary", path);
        return PX_ERR_CONFIG;
    }
    if (version == SCHEMA_VERSION)
        return PX_OK;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "AUDIT_STORE: cannot lock %s: %s", path, sqlite3_errmsg(db));
        return PX_ERR_IO;
    }
    px_rc rc = PX_OK;
    /* Read again under the write lock: another process may have migrated the
     * file between the first look and the lock. */
    version = schema_version(db);
    if (version < 0 || version > SCHEMA_VERSION) {
        set_err(err, errlen, "AUDIT_STORE: schema version of %s changed to %d while opening", path,
                version);
        rc = version < 0 ? PX_ERR_IO : PX_ERR_CONFIG;
    }
    for (int v = version; !rc && v < SCHEMA_VERSION; v++) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        const struct migration *m = &migrations[v];
        int present = m->adds_column ? has_column(db, m->adds_column) : 0;
        if (present < 0 || (!present && sqlite3_exec(db, m->sql, NULL, NULL, NULL) != SQLITE_OK) ||
            sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            set_err(err, errlen, "AUDIT_STORE: cannot bring the schema of %s to version %d: %s",
                    path, v + 1, sqlite3_errmsg(db));
            rc = PX_ERR_IO;
        }
    }
    if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "AUDIT_STORE: cannot commit the schema of %s: %s", path,
                sqlite3_errmsg(db));
        rc = PX_ERR_IO;
    }
    if (rc && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static bool prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK;
}

/* Replaces SQLite's auto-checkpoint, which would run inside COMMIT and hold
 * back the done() calls of records that are already durable. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    PX_UNUSED(db);
    PX_UNUSED(name);
    ((struct sqlite_audit *)arg)->wal_pages = pages;
    return SQLITE_OK;
}

/* A failed BEGIN/INSERT/COMMIT as the record's caller sees it. */
static px_rc batch_error(int e)
{
    int primary = e & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? PX_ERR_TIMEOUT : PX_ERR_IO;
}

static int run(sqlite3_stmt *st)
{
    int e = sqlite3_step(st);
    sqlite3_reset(st);
    return e;
}

/* One integer from a one-column statement already bound; -1 on error. */
static int64_t scalar(sqlite3_stmt *st)
{
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return v;
}

static px_rc index_tail(struct sqlite_audit *a, int64_t limit, long busy_ms);

/* Opens the write connection: WAL, synchronous=FULL, schema, statements, and
 * indexes whatever tail a previous run left (crash recovery). The first open
 * may create the file; a reopen after a fault never does (a file that vanished
 * must not silently become a new, empty trail). */
static px_rc writer_connect(struct sqlite_audit *a, bool create, char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(a->path, &a->wdb, flags, NULL) != SQLITE_OK) {
        set_err(err, errlen, "AUDIT_STORE: cannot open %s: %s", a->path,
                a->wdb ? sqlite3_errmsg(a->wdb) : "out of memory");
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    sqlite3_extended_result_codes(a->wdb, 1);
    sqlite3_busy_timeout(a->wdb, (int)a->timeout_ms);
    sqlite3_stmt *st = NULL;
    const unsigned char *mode = NULL;
    bool wal =
        sqlite3_prepare_v2(a->wdb, "PRAGMA journal_mode = WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && (mode = sqlite3_column_text(st, 0)) &&
        strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal || sqlite3_exec(a->wdb, "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "AUDIT_STORE: cannot put %s in WAL mode: %s", a->path,
                sqlite3_errmsg(a->wdb));
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    rc = migrate(a->wdb, a->path, err, errlen);
    if (rc)
        goto out;
    /* Index pages are hit at random (keys by user and by product): keep them
     * cached and mapped rather than re-read with pread(2) on every pass. */
    sqlite3_exec(a->wdb, "PRAGMA cache_size = -65536", NULL, NULL, NULL);
    sqlite3_exec(a->wdb, "PRAGMA mmap_size = 268435456", NULL, NULL, NULL);
    if (!prepare(a->wdb, INSERT_SQL, &a->ins) || !prepare(a->wdb, "BEGIN IMMEDIATE", &a->begin) ||
        !prepare(a->wdb, "COMMIT", &a->commit) || !prepare(a->wdb, "ROLLBACK", &a->rollback) ||
        !prepare(a->wdb, MAX_SEQ_SQL, &a->max_seq) ||
        !prepare(a->wdb, WATERMARK_SQL, &a->watermark) ||
        !prepare(a->wdb, TAIL_KEYS_SQL, &a->tail_keys) ||
        !prepare(a->wdb, KEY_AT_SQL, &a->key_at) || !prepare(a->wdb, TAIL_HAS_SQL, &a->tail_has) ||
        !prepare(a->wdb, INDEX_SRC_SQL, &a->idx_src) ||
        !prepare(a->wdb, INDEX_USER_SQL, &a->idx_user) ||
        !prepare(a->wdb, INDEX_PRODUCT_SQL, &a->idx_product) ||
        !prepare(a->wdb, INDEX_HOLDER_SQL, &a->idx_holder) ||
        !prepare(a->wdb, SET_WATERMARK_SQL, &a->set_wm) ||
        !prepare(a->wdb, "PRAGMA synchronous = NORMAL", &a->sync_normal) ||
        !prepare(a->wdb, "PRAGMA synchronous = FULL", &a->sync_full)) {
        set_err(err, errlen, "AUDIT_STORE: cannot prepare statements on %s: %s", a->path,
                sqlite3_errmsg(a->wdb));
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    sqlite3_wal_hook(a->wdb, wal_hook, a);
    a->wal_pages = 0;
    a->keys_valid = false;
    a->known_max = 0;
    a->unindexed = 1; /* unknown: the first pass finds out */
    /* Crash recovery: a tail left by an earlier run is indexed before serving. */
    for (int i = 0; i < 1000000 && a->unindexed > 0; i++) {
        rc = index_tail(a, INDEX_CHUNK * 4, a->timeout_ms);
        if (rc == PX_ERR_TIMEOUT) {
            /* Another process holds the lock: its records wait for a later pass. */
            rc = PX_OK;
            break;
        }
        if (rc) {
            set_err(err, errlen, "AUDIT_STORE: cannot index the records of %s: %s", a->path,
                    a->wdb ? sqlite3_errmsg(a->wdb) : "connection lost");
            rc = PX_ERR_UNAVAILABLE;
            goto out;
        }
    }
    atomic_store(&a->writer_open, true);
out:
    if (rc)
        writer_disconnect(a);
    return rc;
}

/* ---- indexing ------------------------------------------------------------------------- */

/* Moves up to `limit` records of the tail into the index tables, in one
 * transaction that needs no fsync of its own: losing it in a crash loses
 * nothing but index work (the watermark goes back with it), and the next record
 * commit's fsync covers its WAL frames. A record whose (pk, sk) is indexed
 * already was written behind the writer's back: it is logged and left out, so
 * the first record with a key stays the only visible one. */
static px_rc index_tail(struct sqlite_audit *a, int64_t limit, long busy_ms)
{
    if (!a->wdb)
        return PX_ERR_UNAVAILABLE;
    a->last_index = now_ms();
    sqlite3_busy_timeout(a->wdb, (int)busy_ms);
    px_rc rc = PX_OK;
    int64_t wm = -1, last = -1, n = 0, maxseq = -1;
    int e = run(a->sync_normal);
    if (e == SQLITE_DONE || e == SQLITE_ROW)
        e = run(a->begin);
    if (e != SQLITE_DONE) {
        rc = batch_error(e);
        goto out;
    }
    wm = scalar(a->watermark);
    maxseq = scalar(a->max_seq);
    if (wm < 0 || maxseq < 0) {
        rc = PX_ERR_IO;
        goto out;
    }
    last = wm;
    sqlite3_bind_int64(a->idx_src, 1, wm);
    sqlite3_bind_int64(a->idx_src, 2, limit);
    while (!rc && (e = sqlite3_step(a->idx_src)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(a->idx_src, 0);
        sqlite3_stmt *u = a->idx_user, *p = a->idx_product;
        sqlite3_bind_value(u, 1, sqlite3_column_value(a->idx_src, 1));
        sqlite3_bind_value(u, 2, sqlite3_column_value(a->idx_src, 2));
        sqlite3_bind_int64(u, 3, seq);
        e = run(u);
        if (e != SQLITE_DONE) {
            rc = batch_error(e);
            break;
        }
        if (sqlite3_changes(a->wdb) == 0) {
            sqlite3_bind_value(a->idx_holder, 1, sqlite3_column_value(a->idx_src, 1));
            sqlite3_bind_value(a->idx_holder, 2, sqlite3_column_value(a->idx_src, 2));
            long long first = (long long)scalar(a->idx_holder);
            atomic_fetch_add_explicit(&a->duplicates, 1, memory_order_relaxed);
            PX_WARN(NULL,
                    "AUDIT_STORE: conflict: record seq %lld repeats the key (pk, sk) of record"
                    " seq %lld; it stays in the table but is left out of the indexes",
                    (long long)seq, first);
        } else {
            sqlite3_bind_value(p, 1, sqlite3_column_value(a->idx_src, 3));
            sqlite3_bind_value(p, 2, sqlite3_column_value(a->idx_src, 4));
            sqlite3_bind_int64(p, 3, seq);
            e = run(p);
            if (e != SQLITE_DONE) {
                rc = batch_error(e);
                break;
            }
        }
        last = seq;
        n++;
    }
    sqlite3_reset(a->idx_src);
    if (!rc && e != SQLITE_DONE && e != SQLITE_ROW)
        rc = batch_error(e);
    if (!rc && last > wm) {
        sqlite3_bind_int64(a->set_wm, 1, last);
        e = run(a->set_wm);
        if (e != SQLITE_DONE)
            rc = batch_error(e);
    }
    if (!rc) {
        e = run(a->commit);
        if (e != SQLITE_DONE)
            rc = batch_error(e);
    }
out:
    if (rc && a->wdb && !sqlite3_get_autocommit(a->wdb))
        run(a->rollback);
    /* Record commits must fsync again; a connection that cannot promise it goes. */
    if (a->wdb && run(a->sync_full) != SQLITE_DONE)
        rc = PX_ERR_IO;
    if (rc == PX_ERR_IO) {
        writer_disconnect(a);
        return rc;
    }
    if (rc)
        return rc; /* busy: the tail waits for the next pass */
    atomic_fetch_add_explicit(&a->indexed, (uint64_t)n, memory_order_relaxed);
    if (maxseq > a->known_max)
        a->known_max = maxseq;
    a->unindexed = maxseq > last ? maxseq - last : 0;
    if (a->unindexed == 0 || !a->keys_valid) {
        /* Everything the set held is in the index now (or it is rebuilt at the next batch). */
        keyset_clear(&a->keys);
        a->keys_valid = a->unindexed == 0 && a->known_max == maxseq;
    }
    return PX_OK;
}

/* Brings the key set up to date with rows appended since known_max (by this
 * writer before a failure, or by another process); inside the batch's
 * transaction. false: the set cannot be trusted, the slow scan is used. */
static bool keys_refresh(struct sqlite_audit *a)
{
    int64_t maxseq = scalar(a->max_seq);
    if (maxseq < 0)
        return false;
    int64_t from = a->known_max;
    if (!a->keys_valid) {
        int64_t wm = scalar(a->watermark);
        if (wm < 0)
            return false;
        keyset_clear(&a->keys);
        from = wm;
    } else if (maxseq <= a->known_max) {
        return true;
    }
    bool ok = true;
    int e, added = 0;
    sqlite3_bind_int64(a->tail_keys, 1, from);
    while ((e = sqlite3_step(a->tail_keys)) == SQLITE_ROW && ok) {
        const char *pk = (const char *)sqlite3_column_text(a->tail_keys, 1);
        const char *sk = (const char *)sqlite3_column_text(a->tail_keys, 2);
        ok = pk && sk &&
             keyset_put(&a->keys, key_hash(pk, sk), sqlite3_column_int64(a->tail_keys, 0));
        added++;
    }
    sqlite3_reset(a->tail_keys);
    ok = ok && e == SQLITE_DONE;
    a->keys_valid = ok;
    if (ok) {
        a->unindexed += maxseq - a->known_max > 0 ? maxseq - a->known_max : 0;
        a->known_max = maxseq;
    }
    PX_UNUSED(added);
    return ok;
}

/* 1 when the tail holds a record with key (pk, sk), 0 when not, -1 on error. */
static int tail_has(struct sqlite_audit *a, const char *pk, const char *sk, uint64_t h)
{
    if (!a->keys_valid) {
        int64_t wm = scalar(a->watermark);
        if (wm < 0)
            return -1;
        sqlite3_bind_int64(a->tail_has, 1, wm);
        sqlite3_bind_text(a->tail_has, 2, pk, -1, SQLITE_STATIC);
        sqlite3_bind_text(a->tail_has, 3, sk, -1, SQLITE_STATIC);
        int e = run(a->tail_has);
        return e == SQLITE_ROW ? 1 : e == SQLITE_DONE ? 0 : -1;
    }
    const struct keyset *k = &a->keys;
    if (!k->cap)
        return 0;
    for (size_t i = (size_t)h & (k->cap - 1); k->hash[i]; i = (i + 1) & (k->cap - 1)) {
        if (k->hash[i] != h)
            continue;
        sqlite3_bind_int64(a->key_at, 1, k->seq[i]);
        int e = sqlite3_step(a->key_at);
        int found = 0;
        if (e == SQLITE_ROW) {
            const char *p = (const char *)sqlite3_column_text(a->key_at, 0);
            const char *s = (const char *)sqlite3_column_text(a->key_at, 1);
            found = p && s && strcmp(p, pk) == 0 && strcmp(s, sk) == 0;
        } else if (e != SQLITE_DONE) {
            found = -1;
        }
        sqlite3_reset(a->key_at);
        if (found)
            return found;
    }
    return 0;
}

/* ---- group commit --------------------------------------------------------------------- */

/* Appends r unless its key exists: SQLITE_CONSTRAINT_UNIQUE for a key in the
 * tail, the trigger's SQLITE_CONSTRAINT_TRIGGER for one in the index. */
static int insert(struct sqlite_audit *a, const struct px_audit_record *r)
{
    char pk[64], sk[128], gsi1pk[96];
    px_audit_keys(r, pk, sk, gsi1pk);
    uint64_t h = key_hash(pk, sk);
    int dup = tail_has(a, pk, sk, h);
    if (dup)
        return dup > 0 ? SQLITE_CONSTRAINT_UNIQUE : SQLITE_IOERR;
    sqlite3_stmt *st = a->ins;
    const char *text[] = {pk,
                          sk,
                          gsi1pk,
                          r->action,
                          r->status,
                          r->user_id,
                          r->product_id,
                          r->request_id,
                          r->correlation_id,
                          r->ts};
    for (int i = 0; i < (int)PX_COUNTOF(text); i++)
        sqlite3_bind_text(st, i + 1, text[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, r->expires_at);
    sqlite3_bind_text(st, 12, r->principal, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, r->api_request_id, -1, SQLITE_STATIC);
    int e = run(st);
    if (e == SQLITE_DONE) {
        int64_t seq = sqlite3_last_insert_rowid(a->wdb);
        if (a->keys_valid && !keyset_put(&a->keys, h, seq))
            a->keys_valid = false; /* full: the slow scan takes over until the next pass */
        if (seq > a->known_max)
            a->known_max = seq;
        a->unindexed++;
    }
    return e;
}

/* Writes batch[0..n) in one transaction and reports every record. */
static void write_batch(struct sqlite_audit *a, size_t n)
{
    int64_t now = now_ms(), oldest = now;
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        struct item *it = a->batch[i];
        /* Past its bound already: its caller has given up, do not write it. */
        if (now - it->enq_ms > a->timeout_ms) {
            it->rc = PX_ERR_TIMEOUT;
            continue;
        }
        it->rc = PX_OK;
        if (it->enq_ms < oldest)
            oldest = it->enq_ms;
        live++;
    }
    px_rc fail = PX_OK;
    size_t written = 0;
    int64_t saved_max = a->known_max, saved_unindexed = a->unindexed;
    if (live && !a->wdb && writer_connect(a, false, NULL, 0))
        fail = PX_ERR_IO;
    if (live && !fail) {
        /* Waiting on another process's write lock may use what is left of the bound. */
        int64_t left = a->timeout_ms - (now - oldest);
        sqlite3_busy_timeout(a->wdb, (int)(left > 0 ? left : 1));
        saved_max = a->known_max;
        saved_unindexed = a->unindexed;
        int e = run(a->begin);
        if (e != SQLITE_DONE)
            fail = batch_error(e);
        if (!fail && !keys_refresh(a))
            a->keys_valid = false;
        for (size_t i = 0; !fail && i < n; i++) {
            struct item *it = a->batch[i];
            if (it->rc)
                continue;
            e = insert(a, &it->rec);
            if (e == SQLITE_DONE)
                written++;
            else if (e == SQLITE_CONSTRAINT_TRIGGER || e == SQLITE_CONSTRAINT_UNIQUE ||
                     e == SQLITE_CONSTRAINT_PRIMARYKEY)
                it->rc = PX_ERR_CONFLICT; /* only this record is refused */
            else if ((e & 0xff) == SQLITE_CONSTRAINT)
                it->rc = PX_ERR_INVALID;
            else
                fail = batch_error(e);
        }
        if (!fail) {
            e = run(a->commit);
            if (e != SQLITE_DONE)
                fail = batch_error(e);
        }
        if (fail) {
            if (!sqlite3_get_autocommit(a->wdb))
                run(a->rollback);
            /* The set may name rolled-back seqs: harmless, every hit is checked. */
            a->known_max = saved_max;
            a->unindexed = saved_unindexed;
            /* After an I/O fault the connection's state is suspect: start afresh. */
            if (fail == PX_ERR_IO)
                writer_disconnect(a);
        }
    }
    if (fail) {
        for (size_t i = 0; i < n; i++)
            if (a->batch[i]->rc == PX_OK)
                a->batch[i]->rc = fail;
    } else if (written) {
        atomic_fetch_add_explicit(&a->batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&a->records, written, memory_order_relaxed);
        px_metrics_audit_batch(written);
        if (written > atomic_load_explicit(&a->largest, memory_order_relaxed))
            atomic_store_explicit(&a->largest, written, memory_order_relaxed);
    }
    /* Only now, after COMMIT returned, may anyone hear "durable". */
    for (size_t i = 0; i < n; i++) {
        struct item *it = a->batch[i];
        a->batch[i] = NULL;
        it->done(it->arg, it->rc);
        free(it);
    }
}

/* Checkpoint after the answers, not before: PASSIVE never waits for readers,
 * and the records arriving meanwhile only make the next batch larger. */
static void maybe_checkpoint(struct sqlite_audit *a)
{
    if (a->wdb && a->wal_pages >= CHECKPOINT_PAGES) {
        sqlite3_wal_checkpoint_v2(a->wdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        a->wal_pages = 0;
    }
}

static void *writer_main(void *arg)
{
    struct sqlite_audit *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->head && !a->stopping && !a->probe) {
            bool idle_index = a->wdb && a->unindexed > 0;
            int w = 0;
            a->waiting = true;
            if (idle_index) {
                struct timespec until;
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_nsec += INDEX_IDLE_MS * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                    until.tv_sec++;
                    until.tv_nsec -= 1000000000L;
                }
                w = pthread_cond_timedwait(&a->cv, &a->mu, &until);
            } else {
                pthread_cond_wait(&a->cv, &a->mu);
            }
            a->waiting = false;
            if (idle_index && w == ETIMEDOUT && !a->head && !a->stopping && !a->probe) {
                /* Quiet for a moment: index now, in chunks, yielding to new records. */
                pthread_mutex_unlock(&a->mu);
                (void)index_tail(a, INDEX_CHUNK, INDEX_BUSY_MS);
                maybe_checkpoint(a);
                pthread_mutex_lock(&a->mu);
                if (a->wdb && a->unindexed > 0 && !a->head)
                    continue; /* next chunk after another short wait */
            }
        }
        if (!a->head && a->stopping)
            break;
        if (!a->head) {
            a->probe = false;
            pthread_mutex_unlock(&a->mu);
            if (!a->wdb)
                (void)writer_connect(a, false, NULL, 0);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        size_t n = 0;
        while (a->head && n < a->max_batch) {
            struct item *it = a->head;
            a->head = it->next;
            it->next = NULL;
            a->batch[n++] = it;
        }
        if (!a->head)
            a->tail = NULL;
        a->qlen -= n;
        pthread_mutex_unlock(&a->mu);
        write_batch(a, n);
        /* Under sustained load the queue is never quiet: keep the tail short. */
        if (a->wdb && a->unindexed > 0 &&
            (a->unindexed >= INDEX_BACKLOG || now_ms() - a->last_index >= INDEX_INTERVAL_MS))
            (void)index_tail(a, INDEX_CHUNK, INDEX_BUSY_MS);
        maybe_checkpoint(a);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    /* Leave the file indexed: the next open starts without a tail. */
    for (int i = 0; i < 1000 && a->wdb && a->unindexed > 0; i++)
        if (index_tail(a, INDEX_CHUNK * 4, a->timeout_ms))
            break;
    return NULL;
}

/* ---- open / close --------------------------------------------------------------------- */

static px_rc make_parent(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(dir)) {
        set_err(err, errlen, "AUDIT_STORE: path too long: %.64s", path);
        return PX_ERR_CONFIG;
    }
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return PX_OK;
    *slash = '\0';
    for (char *p = dir + 1; p; p = strchr(p + 1, '/')) {
        char saved = *p;
        if (saved == '/')
            *p = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
            set_err(err, errlen, "AUDIT_STORE: cannot create directory %s: %s", dir,
                    strerror(errno));
            return PX_ERR_IO;
        }
        if (saved == '/')
            *p = '/';
        else
            break;
    }
    return PX_OK;
}

static void audit_close(void *impl)
{
    struct sqlite_audit *a = impl;
    if (!a)
        return;
    if (a->writer_started) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        /* The writer leaves only once the queue is empty: all pending records are
         * written or failed, each done() called. */
        pthread_join(a->writer, NULL);
        a->writer_started = false;
    }
    sqlite3_stmt **st[] = {&a->by_user, &a->by_user_tail, &a->by_product, &a->by_product_tail,
                           &a->ping,    &a->rbegin,       &a->rend};
    for (size_t i = 0; i < PX_COUNTOF(st); i++) {
        sqlite3_finalize(*st[i]);
        *st[i] = NULL;
    }
    sqlite3_close_v2(a->rdb);
    a->rdb = NULL;
    /* The write connection closes last: as the last one it checkpoints the WAL. */
    writer_disconnect(a);
    keyset_free(&a->keys);
    if (a->sync_init) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        pthread_mutex_destroy(&a->rmu);
        a->sync_init = false;
    }
    free(a->batch);
    free(a->path);
    free(a);
}

static px_rc audit_open(const char *target, const struct px_audit_opts *opts, void **impl,
                        char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    *impl = NULL;
    if (!target || !*target || strcmp(target, ":memory:") == 0) {
        set_err(err, errlen, "AUDIT_STORE: sqlite needs a file path (sqlite:PATH)");
        return PX_ERR_CONFIG;
    }
    struct sqlite_audit *a = calloc(1, sizeof(*a));
    if (!a) {
        set_err(err, errlen, "AUDIT_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    long t = opts ? opts->timeout_ms : 0;
    a->timeout_ms = t <= 0 ? TIMEOUT_DEFAULT : t > TIMEOUT_MAX ? TIMEOUT_MAX : t;
    a->max_batch = opts && opts->max_batch ? opts->max_batch : BATCH_DEFAULT;
    if (a->max_batch > BATCH_MAX)
        a->max_batch = BATCH_MAX;
    a->queue_cap = opts && opts->queue_cap ? opts->queue_cap : QUEUE_CAP_DEFAULT;
    a->path = strdup(target);
    a->batch = calloc(a->max_batch, sizeof(*a->batch));
    atomic_init(&a->writer_open, false);
    atomic_init(&a->batches, 0);
    atomic_init(&a->records, 0);
    atomic_init(&a->largest, 0);
    atomic_init(&a->indexed, 0);
    atomic_init(&a->duplicates, 0);
    if (!a->path || !a->batch) {
        set_err(err, errlen, "AUDIT_STORE: out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    /* The writer's idle wait is timed on the monotonic clock. */
    pthread_condattr_t ca;
    bool cv_ok = pthread_condattr_init(&ca) == 0;
    cv_ok = cv_ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
            pthread_cond_init(&a->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv_ok) {
        set_err(err, errlen, "AUDIT_STORE: cannot create locks");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (pthread_mutex_init(&a->mu, NULL) || pthread_mutex_init(&a->rmu, NULL)) {
        pthread_cond_destroy(&a->cv);
        set_err(err, errlen, "AUDIT_STORE: cannot create locks");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    a->sync_init = true;

    /* A file-size limit must surface as a failed write (EFBIG), not kill the
     * process: the record then fails and the caller answers 503. */
    signal(SIGXFSZ, SIG_IGN);

    rc = make_parent(a->path, err, errlen);
    if (rc)
        goto out;
    rc = writer_connect(a, true, err, errlen);
    if (rc)
        goto out;
    if (sqlite3_open_v2(a->path, &a->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        (sqlite3_busy_timeout(a->rdb, (int)a->timeout_ms),
         !prepare(a->rdb, BY_USER_SQL, &a->by_user)) ||
        !prepare(a->rdb, BY_USER_TAIL_SQL, &a->by_user_tail) ||
        !prepare(a->rdb, BY_PRODUCT_SQL, &a->by_product) ||
        !prepare(a->rdb, BY_PRODUCT_TAIL_SQL, &a->by_product_tail) ||
        !prepare(a->rdb, PING_SQL, &a->ping) || !prepare(a->rdb, "BEGIN", &a->rbegin) ||
        !prepare(a->rdb, "COMMIT", &a->rend)) {
        set_err(err, errlen, "AUDIT_STORE: cannot open %s for reading: %s", a->path,
                a->rdb ? sqlite3_errmsg(a->rdb) : "out of memory");
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    if (pthread_create(&a->writer, NULL, writer_main, a) != 0) {
        set_err(err, errlen, "AUDIT_STORE: cannot start the writer thread for %s", a->path);
        rc = PX_ERR_NOMEM;
        goto out;
    }
    a->writer_started = true;
    *impl = a;
out:
    if (rc)
        audit_close(a);
    return rc;
}

/* ---- submit --------------------------------------------------------------------------- */

#define FIELD_OK(f, required) (strnlen((f), sizeof(f)) < sizeof(f) && (!(required) || (f)[0]))

static bool record_ok(const struct px_audit_record *r)
{
    char ts[25];
    if (!FIELD_OK(r->user_id, true) || !FIELD_OK(r->product_id, true) ||
        !FIELD_OK(r->request_id, true) || !FIELD_OK(r->correlation_id, false) ||
        !FIELD_OK(r->principal, false) || !FIELD_OK(r->api_request_id, false) ||
        !FIELD_OK(r->ts, true) || !FIELD_OK(r->action, true) || !FIELD_OK(r->status, true))
        return false;
    /* The sort key orders by ts as text: only the canonical form may go in. */
    return px_audit_ts_ms(r->ts, ts) == PX_OK && strcmp(ts, r->ts) == 0;
}

static px_rc audit_submit(void *impl, const struct px_audit_record *r, px_audit_done_fn done,
                          void *arg)
{
    struct sqlite_audit *a = impl;
    if (!a || !r || !done || !record_ok(r))
        return PX_ERR_INVALID;
    struct item *it = malloc(sizeof(*it));
    if (!it)
        return PX_ERR_NOMEM;
    it->next = NULL;
    it->rec = *r;
    it->done = done;
    it->arg = arg;
    it->rc = PX_OK;
    it->enq_ms = now_ms();
    px_rc rc = PX_OK;
    pthread_mutex_lock(&a->mu);
    if (a->stopping) {
        rc = PX_ERR_UNAVAILABLE;
    } else if (a->qlen >= a->queue_cap) {
        rc = PX_ERR_BUSY;
    } else {
        if (a->tail)
            a->tail->next = it;
        else
            a->head = it;
        a->tail = it;
        a->qlen++;
        /* A busy writer looks at the queue before it sleeps: no futex call then. */
        if (a->waiting) {
            a->waiting = false;
            pthread_cond_signal(&a->cv);
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (rc)
        free(it);
    return rc;
}

/* ---- cursor: base64url (no padding) of the last sort key returned ------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

PX_STATIC size_t px_audit_b64url_encode(const unsigned char *in, size_t n, char *out,
                                        size_t outlen);
PX_STATIC size_t px_audit_b64url_encode(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
    if (need + 1 > outlen)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = B64[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = B64[v & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes a cursor into the sort key it names; PX_ERR_INVALID for anything a
 * previous page could not have produced. out holds CURSOR_MAX + 1 bytes. */
PX_STATIC px_rc px_audit_cursor_decode(const char *cur, char *out);
PX_STATIC px_rc px_audit_cursor_decode(const char *cur, char *out)
{
    size_t n = strnlen(cur, CURSOR_ENC_MAX + 1);
    if (n == 0 || n > CURSOR_ENC_MAX || n % 4 == 1)
        return PX_ERR_INVALID;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(cur[i]);
        if (v < 0)
            return PX_ERR_INVALID;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    /* Left-over bits must be zero: one key, one spelling. */
    if (acc & ((1u << bits) - 1))
        return PX_ERR_INVALID;
    out[o] = '\0';
    if (o < 6 || o > CURSOR_MAX || memcmp(out, "AUDIT#", 6) != 0)
        return PX_ERR_INVALID;
    for (size_t i = 0; i < o; i++)
        if ((unsigned char)out[i] < 0x21 || (unsigned char)out[i] > 0x7e)
            return PX_ERR_INVALID;
    return PX_OK;
}

/* ---- query ---------------------------------------------------------------------------- */

static px_rc col_copy(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    int len = sqlite3_column_bytes(st, col);
    if (!v || len < 0 || (size_t)len >= cap)
        return PX_ERR_PROTOCOL;
    memcpy(dst, v, (size_t)len);
    dst[len] = '\0';
    return PX_OK;
}

static px_rc row_to_record(sqlite3_stmt *st, struct px_audit_record *r, char sk[CURSOR_MAX + 1])
{
    px_rc rc = col_copy(st, 0, r->action, sizeof(r->action));
    if (!rc)
        rc = col_copy(st, 1, r->status, sizeof(r->status));
    if (!rc)
        rc = col_copy(st, 2, r->user_id, sizeof(r->user_id));
    if (!rc)
        rc = col_copy(st, 3, r->product_id, sizeof(r->product_id));
    if (!rc)
        rc = col_copy(st, 4, r->request_id, sizeof(r->request_id));
    if (!rc)
        rc = col_copy(st, 5, r->correlation_id, sizeof(r->correlation_id));
    if (!rc)
        rc = col_copy(st, 6, r->ts, sizeof(r->ts));
    r->expires_at = sqlite3_column_int64(st, 7);
    if (!rc)
        rc = col_copy(st, 8, r->principal, sizeof(r->principal));
    if (!rc)
        rc = col_copy(st, 9, r->api_request_id, sizeof(r->api_request_id));
    if (!rc)
        rc = col_copy(st, 10, sk, CURSOR_MAX + 1);
    return rc;
}

/* One side of a query (index or tail): the next row, copied out. */
struct stream {
    sqlite3_stmt *st;
    bool has; /* rec/sk hold a row not yet taken */
    bool done;
    struct px_audit_record rec;
    char sk[CURSOR_MAX + 1];
};

static px_rc stream_next(struct stream *s)
{
    s->has = false;
    if (s->done)
        return PX_OK;
    int e = sqlite3_step(s->st);
    if (e == SQLITE_DONE) {
        s->done = true;
        return PX_OK;
    }
    if (e != SQLITE_ROW) {
        s->done = true;
        int primary = e & 0xff;
        return primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? PX_ERR_TIMEOUT
                                                                  : PX_ERR_UNAVAILABLE;
    }
    memset(&s->rec, 0, sizeof(s->rec));
    px_rc rc = row_to_record(s->st, &s->rec, s->sk);
    if (rc)
        return rc;
    s->has = true;
    return PX_OK;
}

static void stream_bind(struct stream *s, const char *key, const char *lower, const char *upper,
                        int64_t now, long limit)
{
    sqlite3_bind_text(s->st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st, 2, lower, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st, 3, upper, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->st, 4, now);
    sqlite3_bind_int64(s->st, 5, limit + 1);
}

static void stream_end(struct stream *s)
{
    sqlite3_reset(s->st);
    sqlite3_clear_bindings(s->st);
}

static px_rc audit_query(void *impl, const struct px_audit_query *q, struct px_arena *ar,
                         struct px_audit_page *out)
{
    struct sqlite_audit *a = impl;
    if (!a || !q || !ar || !out || !q->user_id == !q->product_id || q->limit < 1 || q->limit > 1000)
        return PX_ERR_INVALID;
    memset(out, 0, sizeof(*out));

    /* Bounds on the sort key: (lower, upper), both exclusive. No key equals
     * "AUDIT#<ts>" itself (keys go on with "#<requestId>"), so `> AUDIT#from`
     * is `>= from`, and `< AUDIT#<to>$` takes in every key stamped `to`. */
    char lower[CURSOR_MAX + 1] = "", upper[40], ts[25];
    snprintf(upper, sizeof(upper), "%s", UPPER_OPEN);
    if (q->from) {
        if (px_audit_ts_ms(q->from, ts))
            return PX_ERR_INVALID;
        snprintf(lower, sizeof(lower), "AUDIT#%s", ts);
    }
    if (q->to) {
        if (px_audit_ts_ms(q->to, ts))
            return PX_ERR_INVALID;
        snprintf(upper, sizeof(upper), "AUDIT#%s$", ts);
    }
    if (q->cursor) {
        char after[CURSOR_MAX + 1];
        if (px_audit_cursor_decode(q->cursor, after))
            return PX_ERR_INVALID;
        if (strcmp(after, lower) > 0)
            memcpy(lower, after, strlen(after) + 1);
    }
    if (strnlen(q->user_id ? q->user_id : q->product_id, PX_MAX_PRODUCT_ID + 1) > PX_MAX_PRODUCT_ID)
        return PX_ERR_INVALID;
    char key[96];
    if (q->user_id)
        snprintf(key, sizeof(key), "USER#%s", q->user_id);
    else
        snprintf(key, sizeof(key), "PRODUCT#%s", q->product_id);

    px_rc rc = PX_OK;
    size_t cap = 0, n = 0;
    struct px_audit_record *items = NULL;
    char last_sk[CURSOR_MAX + 1] = "";
    bool more = false;
    /* Two streams in sort-key order; on equal keys the indexed one (lower seq) first. */
    struct stream *s = malloc(2 * sizeof(*s));
    if (!s)
        return PX_ERR_NOMEM;
    memset(s, 0, 2 * sizeof(*s));
    pthread_mutex_lock(&a->rmu);
    s[0].st = q->user_id ? a->by_user : a->by_product;
    s[1].st = q->user_id ? a->by_user_tail : a->by_product_tail;
    /* One read transaction: the watermark the tail starts from and the index
     * tables are of the same commit, so no record falls between them. */
    int e = run(a->rbegin);
    if (e != SQLITE_DONE) {
        pthread_mutex_unlock(&a->rmu);
        free(s);
        return PX_ERR_UNAVAILABLE;
    }
    for (int i = 0; i < 2; i++)
        stream_bind(&s[i], key, lower, upper, q->now, q->limit);
    rc = stream_next(&s[0]);
    if (!rc)
        rc = stream_next(&s[1]);
    while (!rc && (s[0].has || s[1].has)) {
        struct stream *take =
            !s[1].has || (s[0].has && strcmp(s[0].sk, s[1].sk) <= 0) ? &s[0] : &s[1];
        if (n == (size_t)q->limit) {
            more = true;
            break;
        }
        if (n == cap) {
            /* Grow in the arena; the old block stays until the arena resets. */
            size_t ncap = cap ? cap * 2 : 16;
            if (ncap > (size_t)q->limit)
                ncap = (size_t)q->limit;
            struct px_audit_record *grown = px_arena_alloc(ar, ncap * sizeof(*grown));
            if (!grown) {
                rc = PX_ERR_NOMEM;
                break;
            }
            if (n)
                memcpy(grown, items, n * sizeof(*items));
            items = grown;
            cap = ncap;
        }
        items[n++] = take->rec;
        memcpy(last_sk, take->sk, sizeof(last_sk));
        rc = stream_next(take);
    }
    for (int i = 0; i < 2; i++)
        stream_end(&s[i]);
    run(a->rend);
    pthread_mutex_unlock(&a->rmu);
    free(s);
    if (rc)
        return rc;

    if (more) {
        char enc[CURSOR_ENC_MAX + 1];
        if (!px_audit_b64url_encode((const unsigned char *)last_sk, strlen(last_sk), enc,
                                    sizeof(enc)))
            return PX_ERR_INTERNAL;
        out->next_cursor = px_arena_strdup(ar, enc);
        if (!out->next_cursor)
            return PX_ERR_NOMEM;
    }
    out->items = items;
    out->nitems = n;
    return PX_OK;
}

static px_rc audit_ping(void *impl)
{
    struct sqlite_audit *a = impl;
    if (!a)
        return PX_ERR_INVALID;
    if (!atomic_load(&a->writer_open)) {
        /* Ask the writer to try its connection again, so readiness can come back
         * without waiting for traffic that a not-ready instance will not get. */
        pthread_mutex_lock(&a->mu);
        a->probe = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        return PX_ERR_UNAVAILABLE;
    }
    pthread_mutex_lock(&a->rmu);
    int e = sqlite3_step(a->ping);
    sqlite3_reset(a->ping);
    pthread_mutex_unlock(&a->rmu);
    return e == SQLITE_ROW || e == SQLITE_DONE ? PX_OK : PX_ERR_UNAVAILABLE;
}

/* Group-commit figures since open, for tests and metrics: committed batches,
 * records in them, largest batch. */
PX_STATIC void px_audit_sqlite_stats(void *impl, uint64_t *batches, uint64_t *records,
                                     uint64_t *largest) __attribute__((unused));
PX_STATIC void px_audit_sqlite_stats(void *impl, uint64_t *batches, uint64_t *records,
                                     uint64_t *largest)
{
    struct sqlite_audit *a = impl;
    *batches = atomic_load(&a->batches);
    *records = atomic_load(&a->records);
    *largest = atomic_load(&a->largest);
}

/* Index figures since open, for tests: records moved into the index tables,
 * duplicates of an indexed key left out. */
PX_STATIC void px_audit_sqlite_index_stats(void *impl, uint64_t *indexed, uint64_t *duplicates)
    __attribute__((unused));
PX_STATIC void px_audit_sqlite_index_stats(void *impl, uint64_t *indexed, uint64_t *duplicates)
{
    struct sqlite_audit *a = impl;
    *indexed = atomic_load(&a->indexed);
    *duplicates = atomic_load(&a->duplicates);
}

const struct px_audit_ops px_audit_sqlite_ops = {
    .scheme = "sqlite",
    .open = audit_open,
    .close = audit_close,
    .submit = audit_submit,
    .query = audit_query,
    .ping = audit_ping,
};
