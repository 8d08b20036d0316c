/* audit_sqlite.c: the embedded audit store (spec "sqlite:PATH").
 *
 * Durability costs one fsync per commit, so records are group-committed: a
 * single writer thread owns the write connection, takes everything waiting in
 * the queue (up to max_batch), writes it in one IMMEDIATE transaction and
 * only after COMMIT has returned (WAL, synchronous=FULL: the WAL is fsynced)
 * calls each record's done(). While one commit syncs, the next batch gathers.
 * A failed BEGIN/COMMIT fails the whole batch and never reports it durable;
 * the writer reopens its connection and serves later batches when the fault
 * clears. Queries use their own read-only connection, so reads never wait for
 * the writer (WAL readers see the last commit). Records are append-only:
 * plain INSERT against UNIQUE(pk, sk), and triggers refuse UPDATE and DELETE
 * from any connection. A store whose file (or WAL) is deleted or replaced
 * while open refuses every later record until restart: SQLite would go on
 * committing to the unlinked inode. docs/internals/stores.md has the whole
 * argument. */
#include "audit.h"
#include "audit_chain.h"
#include "audit_queue.h"
#include "../kernel/fs.h"
#include "../kernel/log_limit.h"
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
#define CURSOR_MAX        PX_AUDIT_CURSOR_MAX
#define SCHEMA_VERSION    4
/* WAL size (pages) past which the writer checkpoints, between batches. */
#define CHECKPOINT_PAGES 1000
/* An idle writer still checks this often that its file is the one at its path. */
#define IDLE_CHECK_MS 1000
/* Readiness waits at most this long for the write lock. */
#define PROBE_BUSY_MS 100

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
    /* v3: what a write changed (CONTRACT §8), JSON text; NULL for look-ups,
     * so existing rows read back exactly as before. Both in one step. */
    {"ALTER TABLE audit ADD COLUMN before_json TEXT;"
     "ALTER TABLE audit ADD COLUMN after_json TEXT;",
     "before_json"},
    /* v4: tamper evidence (docs/internals/audit-integrity.md): each record's
     * writer, its place in that writer's chain, the previous hash and its
     * own; signed checkpoints in a table of their own, append-only too.
     * Rows written before stay NULL: verify reports them as unchained. */
    {"ALTER TABLE audit ADD COLUMN writer TEXT;"
     "ALTER TABLE audit ADD COLUMN wseq INTEGER;"
     "ALTER TABLE audit ADD COLUMN prev_hash TEXT;"
     "ALTER TABLE audit ADD COLUMN hash TEXT;"
     "CREATE TABLE IF NOT EXISTS audit_checkpoint ("
     " id INTEGER PRIMARY KEY, writer TEXT NOT NULL, seq INTEGER NOT NULL, note TEXT NOT NULL);"
     "CREATE TRIGGER IF NOT EXISTS audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint"
     " BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;"
     "CREATE TRIGGER IF NOT EXISTS audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint"
     " BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;",
     "writer"},
};

static const char INSERT_SQL[] =
    "INSERT INTO audit (pk, sk, gsi1pk, gsi1sk, action, status, user_id, product_id,"
    " request_id, correlation_id, ts, expires_at, principal, api_request_id, before_json,"
    " after_json, writer, wseq, prev_hash, hash)"
    " VALUES (?1, ?2, ?3, ?2, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19)";
static const char CHECKPOINT_SQL[] =
    "INSERT INTO audit_checkpoint (writer, seq, note) VALUES (?1, ?2, ?3)";

/* ?1 partition key, ?2 exclusive lower bound (cursor or from), ?3 exclusive
 * upper bound, ?4 now, ?5 limit + 1. */
#define SELECT_COLS_NOFROM                                                                         \
    "SELECT action, status, user_id, product_id, request_id, correlation_id, ts, expires_at,"      \
    " principal, api_request_id, sk, before_json, after_json, gsi1pk"
#define SELECT_COLS SELECT_COLS_NOFROM " FROM audit "
static const char BY_USER_SQL[] =
    SELECT_COLS "WHERE pk = ?1 AND sk > ?2 AND sk < ?3 AND expires_at > ?4 ORDER BY sk LIMIT ?5";
static const char BY_PRODUCT_SQL[] = SELECT_COLS "WHERE gsi1pk = ?1 AND gsi1sk > ?2 AND gsi1sk < ?3"
                                                 " AND expires_at > ?4 ORDER BY gsi1sk LIMIT ?5";
static const char PING_SQL[] = "SELECT 1 FROM audit LIMIT 1";

struct sqlite_audit {
    char *path;
    char *wal_path; /* path + "-wal" */
    long timeout_ms;
    unsigned max_batch;
    size_t queue_cap;
    bool must_exist;

    /* Identity of the files this store writes: the database's is set by the
     * first connect and never changes; the WAL's by every connect (0 = none
     * seen). Read by ping from other threads, hence atomic. */
    uint64_t db_dev, db_ino;
    atomic_uint_fast64_t wal_dev, wal_ino;
    atomic_bool moved; /* latched: a file was deleted or replaced while open */

    bool sync_init;
    struct px_aq *q; /* group commit: its writer thread owns everything below */

    /* Owned by the writer thread once it runs. */
    sqlite3 *wdb;
    sqlite3_stmt *ins, *cpins, *begin, *commit, *rollback;
    int wal_pages;
    /* This handle's hash chain: advanced only by a committed batch. */
    struct px_chain chain;
    struct px_chain_key *key;             /* NULL: no checkpoints */
    uint64_t cp_seq;                      /* chain seq at the last checkpoint */
    bool cp_any;                          /* a checkpoint of this chain was committed */
    int64_t cp_ms; /* when (monotonic) */ /* frames in the WAL, from the WAL hook */
    atomic_bool writer_open;

    /* Read side, guarded by rmu. */
    pthread_mutex_t rmu;
    sqlite3 *rdb;
    sqlite3_stmt *by_user, *by_product, *ping;

    /* Readiness probe: a read-write connection (never creating), opened on
     * first use, guarded by pmu. */
    pthread_mutex_t pmu;
    sqlite3 *pdb;

    struct px_log_limit loglim; /* failed batches: one line per cause per second */
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

/* ---- writer connection ---------------------------------------------------------------- */

static void writer_disconnect(struct sqlite_audit *a)
{
    sqlite3_finalize(a->ins);
    sqlite3_finalize(a->cpins);
    sqlite3_finalize(a->begin);
    sqlite3_finalize(a->commit);
    sqlite3_finalize(a->rollback);
    a->ins = a->cpins = a->begin = a->commit = a->rollback = NULL;
    sqlite3_close_v2(a->wdb);
    a->wdb = NULL;
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

/* SQLITE_CANTOPEN while setting up WAL means the -wal or -shm file could not
 * be created: a directory this process may not write, a start-up error. */
static px_rc wal_error_rc(sqlite3 *db)
{
    int e = sqlite3_errcode(db) & 0xff;
    return e == SQLITE_CANTOPEN || e == SQLITE_READONLY || e == SQLITE_PERM ? PX_ERR_CONFIG
                                                                            : PX_ERR_UNAVAILABLE;
}

/* The first connect records which file is at the path; a reconnect (after a
 * fault) must find the same one there, else a replaced file would quietly
 * become the trail. */
static px_rc check_db_identity(struct sqlite_audit *a, char *err, size_t errlen)
{
    struct stat st;
    if (stat(a->path, &st) != 0) {
        set_err(err, errlen, "AUDIT_STORE: cannot stat %s: %s", a->path, strerror(errno));
        return PX_ERR_UNAVAILABLE;
    }
    if (!a->db_ino) {
        a->db_dev = (uint64_t)st.st_dev;
        a->db_ino = (uint64_t)st.st_ino;
        return PX_OK;
    }
    if (a->db_dev == (uint64_t)st.st_dev && a->db_ino == (uint64_t)st.st_ino)
        return PX_OK;
    set_err(err, errlen, "AUDIT_STORE: %s was replaced while open", a->path);
    return PX_ERR_UNAVAILABLE;
}

/* Whether the files this store writes are still the ones at their paths:
 * stat(2) of the database and the WAL against the identities recorded at
 * connect. A database (or WAL) unlinked or renamed over goes on taking
 * commits through the open descriptor, and those records vanish at exit.
 * The first time it finds one moved, it latches the store closed and logs
 * one ERROR line; later calls return false at once. Any thread. */
static bool files_in_place(struct sqlite_audit *a)
{
    if (atomic_load(&a->moved))
        return false;
    struct stat st;
    const char *what = NULL;
    int e = 0;
    if (stat(a->path, &st) != 0) {
        what = "database file";
        e = errno;
    } else if ((uint64_t)st.st_dev != a->db_dev || (uint64_t)st.st_ino != a->db_ino) {
        what = "database file";
    } else {
        uint64_t wino = atomic_load(&a->wal_ino), wdev = atomic_load(&a->wal_dev);
        if (wino && stat(a->wal_path, &st) != 0) {
            what = "write-ahead log";
            e = errno;
        } else if (wino && ((uint64_t)st.st_dev != wdev || (uint64_t)st.st_ino != wino)) {
            what = "write-ahead log";
        }
    }
    if (!what)
        return true;
    if (!atomic_exchange(&a->moved, true))
        px_log_fields(PX_LOG_ERROR, NULL,
                      "audit store: its file was deleted or replaced while open; refusing every "
                      "record until restart",
                      (const struct px_kv[]){{"file", what},
                                             {"path", what[0] == 'd' ? a->path : a->wal_path},
                                             {"cause", e ? strerror(e) : "replaced"}},
                      3);
    return false;
}

/* "SQLITE_IOERR/EFBIG": the primary result code, and the system errno behind
 * it when there is one, as a short key for the failure log. */
static void failure_cause(sqlite3 *db, int e, char *out, size_t n)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {SQLITE_BUSY, "SQLITE_BUSY"},         {SQLITE_LOCKED, "SQLITE_LOCKED"},
        {SQLITE_READONLY, "SQLITE_READONLY"}, {SQLITE_IOERR, "SQLITE_IOERR"},
        {SQLITE_FULL, "SQLITE_FULL"},         {SQLITE_CANTOPEN, "SQLITE_CANTOPEN"},
        {SQLITE_CORRUPT, "SQLITE_CORRUPT"},   {SQLITE_NOTADB, "SQLITE_NOTADB"},
        {SQLITE_PERM, "SQLITE_PERM"},         {SQLITE_NOMEM, "SQLITE_NOMEM"},
        {SQLITE_ERROR, "SQLITE_ERROR"},       {SQLITE_CONSTRAINT, "SQLITE_CONSTRAINT"},
    };
    const char *name = NULL;
    for (size_t i = 0; i < PX_COUNTOF(names) && !name; i++)
        if (names[i].code == (e & 0xff))
            name = names[i].name;
    int sys = db ? sqlite3_system_errno(db) : 0;
    const char *sysname = sys ? strerrorname_np(sys) : NULL;
    if (name && sysname)
        snprintf(out, n, "%s/%s", name, sysname);
    else if (name)
        snprintf(out, n, "%s", name);
    else
        snprintf(out, n, "SQLITE_%d", e & 0xff);
}

/* Opens the write connection: WAL, synchronous=FULL, schema, statements. The
 * first open may create the file; a reopen after a fault never does (a file
 * that vanished must not silently become a new, empty trail). */
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
    /* SQLite quietly opens a file it may not write read-only: a store that
     * could only refuse records must not start. */
    if (sqlite3_db_readonly(a->wdb, "main") != 0) {
        set_err(err, errlen, "AUDIT_STORE: %s is not writable by this process", a->path);
        rc = PX_ERR_CONFIG;
        goto out;
    }
    rc = check_db_identity(a, err, errlen);
    if (rc)
        goto out;
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
        rc = wal_error_rc(a->wdb);
        goto out;
    }
    if (a->must_exist && schema_version(a->wdb) == 0) {
        set_err(err, errlen,
                "AUDIT_STORE: %s holds no audit trail; create one with `pricing db seed` or "
                "AUDIT_CREATE=1",
                a->path);
        rc = PX_ERR_CONFIG;
        goto out;
    }
    rc = migrate(a->wdb, a->path, err, errlen);
    if (rc)
        goto out;
    if (!prepare(a->wdb, INSERT_SQL, &a->ins) || !prepare(a->wdb, CHECKPOINT_SQL, &a->cpins) ||
        !prepare(a->wdb, "BEGIN IMMEDIATE", &a->begin) || !prepare(a->wdb, "COMMIT", &a->commit) ||
        !prepare(a->wdb, "ROLLBACK", &a->rollback)) {
        set_err(err, errlen, "AUDIT_STORE: cannot prepare statements on %s: %s", a->path,
                sqlite3_errmsg(a->wdb));
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    sqlite3_wal_hook(a->wdb, wal_hook, a);
    a->wal_pages = 0;
    /* The WAL exists now (journal_mode and the schema read opened it) and
     * stays while this connection is open. */
    struct stat st_wal;
    bool have_wal = stat(a->wal_path, &st_wal) == 0;
    atomic_store(&a->wal_dev, have_wal ? (uint64_t)st_wal.st_dev : 0);
    atomic_store(&a->wal_ino, have_wal ? (uint64_t)st_wal.st_ino : 0);
    atomic_store(&a->writer_open, true);
out:
    if (rc)
        writer_disconnect(a);
    return rc;
}

/* ---- group commit --------------------------------------------------------------------- */

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

static int insert(struct sqlite_audit *a, const struct px_audit_record *r, const struct px_chain *c,
                  const unsigned char hash[PX_CHAIN_HASH_LEN])
{
    char prev_hex[PX_CHAIN_HEX_LEN + 1], hash_hex[PX_CHAIN_HEX_LEN + 1];
    px_chain_hex(c->head, prev_hex);
    px_chain_hex(hash, hash_hex);
    char pk[PX_AUDIT_PK_MAX], sk[128], gsi1pk[PX_AUDIT_GSI1PK_MAX];
    px_audit_keys(r, pk, sk, gsi1pk);
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
    /* A NULL pointer binds SQL NULL: look-ups keep their columns empty. */
    sqlite3_bind_text(st, 14, r->before, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 15, r->after, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 16, c->writer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 17, (sqlite3_int64)(c->seq + 1));
    sqlite3_bind_text(st, 18, prev_hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 19, hash_hex, -1, SQLITE_TRANSIENT);
    return run(st);
}

/* Inserts a signed checkpoint of chain c (inside the caller's transaction).
 * SQLITE_DONE on success. */
static int insert_checkpoint(struct sqlite_audit *a, const struct px_chain *c)
{
    struct px_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    memcpy(cp.writer, c->writer, sizeof(cp.writer));
    cp.seq = c->seq;
    cp.expires_min = c->seg_min == INT64_MAX ? 0 : c->seg_min;
    memcpy(cp.head, c->head, sizeof(cp.head));
    px_chain_now_ts(cp.time);
    char note[PX_CHAIN_NOTE_MAX];
    size_t len = 0;
    if (px_checkpoint_sign(a->key, &cp, note, sizeof(note), &len))
        return SQLITE_ERROR;
    sqlite3_bind_text(a->cpins, 1, c->writer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(a->cpins, 2, (sqlite3_int64)c->seq);
    sqlite3_bind_text(a->cpins, 3, note, (int)len, SQLITE_TRANSIENT);
    return run(a->cpins);
}

/* Whether chain c (committed up to a->cp_seq) is due a checkpoint. The first
 * batch of a chain always is: every writer then has a signed checkpoint, so a
 * forged writer's records cannot pass for a real one's. */
static bool checkpoint_due(const struct sqlite_audit *a, const struct px_chain *c)
{
    if (!a->key || c->seq == a->cp_seq)
        return false;
    return !a->cp_any || c->seq - a->cp_seq >= PX_CHAIN_CHECKPOINT_RECORDS ||
           now_ms() - a->cp_ms >= PX_CHAIN_CHECKPOINT_MS;
}

/* A checkpoint in a transaction of its own (idle, close). Writer thread, or
 * the closing thread once the writer has stopped. */
static void checkpoint_alone(struct sqlite_audit *a)
{
    if (!a->wdb || !a->key || a->chain.seq == a->cp_seq || atomic_load(&a->moved))
        return;
    sqlite3_busy_timeout(a->wdb, (int)a->timeout_ms);
    int e = run(a->begin);
    if (e == SQLITE_DONE)
        e = insert_checkpoint(a, &a->chain);
    if (e == SQLITE_DONE)
        e = run(a->commit);
    if (e == SQLITE_DONE) {
        a->cp_seq = a->chain.seq;
        a->chain.seg_min = INT64_MAX;
        a->cp_any = true;
        a->cp_ms = now_ms();
    } else if (!sqlite3_get_autocommit(a->wdb)) {
        run(a->rollback);
    }
}

/* px_aq write function: items[0..n) in one transaction, each item's rc set.
 * The queue has already failed the records past their bound. */
static void write_items(void *ctx, struct px_aq_item **items, size_t n, int64_t oldest)
{
    struct sqlite_audit *a = ctx;
    px_rc fail = PX_OK;
    int e = SQLITE_OK;
    char why[256] = "";
    /* Latched closed: nothing more goes into a file that is not the trail. */
    if (!files_in_place(a))
        fail = PX_ERR_UNAVAILABLE;
    if (!fail && !a->wdb && writer_connect(a, false, why, sizeof(why))) {
        fail = PX_ERR_IO;
        px_log_limited(&a->loglim, PX_LOG_ERROR, "reconnect",
                       "audit batch of %zu record(s) failed: %s", n, why);
    }
    if (!fail) {
        /* Waiting on another process's write lock may use what is left of the bound. */
        int64_t left = a->timeout_ms - (now_ms() - oldest);
        sqlite3_busy_timeout(a->wdb, (int)(left > 0 ? left : 1));
        e = run(a->begin);
        if (e != SQLITE_DONE)
            fail = batch_error(e);
        /* The chain moves on in c; a->chain only once the batch committed. */
        struct px_chain c = a->chain;
        for (size_t i = 0; !fail && i < n; i++) {
            unsigned char hash[PX_CHAIN_HASH_LEN];
            px_chain_hash(c.writer, c.seq + 1, &items[i]->rec, c.head, hash);
            e = insert(a, &items[i]->rec, &c, hash);
            if (e == SQLITE_CONSTRAINT_TRIGGER || e == SQLITE_CONSTRAINT_UNIQUE ||
                e == SQLITE_CONSTRAINT_PRIMARYKEY)
                items[i]->rc = PX_ERR_CONFLICT; /* only this statement was undone */
            else if ((e & 0xff) == SQLITE_CONSTRAINT)
                items[i]->rc = PX_ERR_INVALID;
            else if (e != SQLITE_DONE)
                fail = batch_error(e);
            else {
                c.seq++;
                if (items[i]->rec.expires_at < c.seg_min)
                    c.seg_min = items[i]->rec.expires_at;
                memcpy(c.head, hash, sizeof(c.head));
            }
        }
        /* Same transaction, same fsync: a checkpoint costs no extra commit. */
        bool cp = !fail && checkpoint_due(a, &c);
        if (cp) {
            e = insert_checkpoint(a, &c);
            if (e != SQLITE_DONE)
                fail = batch_error(e);
        }
        if (!fail) {
            e = run(a->commit);
            if (e != SQLITE_DONE)
                fail = batch_error(e);
        }
        if (!fail) {
            a->chain = c;
            if (cp) {
                a->cp_seq = c.seq;
                a->chain.seg_min = INT64_MAX;
                a->cp_any = true;
                a->cp_ms = now_ms();
            }
        }
        if (fail) {
            char cause[PX_LOG_LIMIT_CAUSE];
            failure_cause(a->wdb, e, cause, sizeof(cause));
            px_log_limited(&a->loglim, PX_LOG_ERROR, cause,
                           "audit batch of %zu record(s) not written to %s: %s", n, a->path,
                           sqlite3_errmsg(a->wdb));
            if (!sqlite3_get_autocommit(a->wdb))
                run(a->rollback);
            /* After an I/O fault the connection's state is suspect: start afresh. */
            if (fail == PX_ERR_IO)
                writer_disconnect(a);
        } else if (!files_in_place(a)) {
            /* Committed, but to a file no longer at the path: not durable. */
            fail = PX_ERR_UNAVAILABLE;
        }
    }
    if (fail)
        for (size_t i = 0; i < n; i++)
            if (items[i]->rc == PX_OK)
                items[i]->rc = fail;
}

/* After a batch's answers, not before: PASSIVE never waits for readers, and
 * the records arriving meanwhile only make the next batch larger. */
static void checkpoint(void *ctx)
{
    struct sqlite_audit *a = ctx;
    if (a->wdb && a->wal_pages >= CHECKPOINT_PAGES) {
        sqlite3_wal_checkpoint_v2(a->wdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        a->wal_pages = 0;
    }
}

/* Readiness asked for the connection back (it never comes back to a file
 * that was deleted or replaced). */
static void reconnect(void *ctx)
{
    struct sqlite_audit *a = ctx;
    if (!a->wdb && !atomic_load(&a->moved))
        (void)writer_connect(a, false, NULL, 0);
}

/* Idle: a deleted file is reported now, not at the next look-up. */
static void idle_check(void *ctx)
{
    struct sqlite_audit *a = ctx;
    if (a->wdb && files_in_place(a) && a->key && a->chain.seq != a->cp_seq &&
        now_ms() - a->cp_ms >= PX_CHAIN_CHECKPOINT_MS)
        checkpoint_alone(a);
}

/* ---- open / close --------------------------------------------------------------------- */

static void audit_close(void *impl)
{
    struct sqlite_audit *a = impl;
    if (!a)
        return;
    /* Every queued record is written or failed, each done() called, first. */
    px_aq_stop(a->q);
    a->q = NULL;
    /* A clean close leaves no tail after the last checkpoint. */
    if (a->wdb && files_in_place(a))
        checkpoint_alone(a);
    px_chain_key_free(a->key);
    a->key = NULL;
    sqlite3_finalize(a->by_user);
    sqlite3_finalize(a->by_product);
    sqlite3_finalize(a->ping);
    sqlite3_close_v2(a->rdb);
    sqlite3_close_v2(a->pdb);
    /* The write connection closes last: as the last one it checkpoints the WAL. */
    writer_disconnect(a);
    if (a->sync_init) {
        pthread_mutex_destroy(&a->rmu);
        pthread_mutex_destroy(&a->pmu);
        px_log_limit_destroy(&a->loglim);
    }
    free(a->wal_path);
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
    a->must_exist = opts && opts->must_exist;
    a->path = strdup(target);
    size_t plen = strlen(target);
    a->wal_path = malloc(plen + 5);
    if (a->wal_path) {
        memcpy(a->wal_path, target, plen);
        memcpy(a->wal_path + plen, "-wal", 5);
    }
    atomic_init(&a->writer_open, false);
    atomic_init(&a->moved, false);
    atomic_init(&a->wal_dev, 0);
    atomic_init(&a->wal_ino, 0);
    if (!a->path || !a->wal_path) {
        set_err(err, errlen, "AUDIT_STORE: out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    bool locks = pthread_mutex_init(&a->rmu, NULL) == 0 && pthread_mutex_init(&a->pmu, NULL) == 0 &&
                 px_log_limit_init(&a->loglim, 1000) == PX_OK;
    if (!locks) {
        set_err(err, errlen, "AUDIT_STORE: cannot create locks");
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

    /* A file-size limit must surface as a failed write (EFBIG), not kill the
     * process: the record then fails and the caller answers 503. */
    signal(SIGXFSZ, SIG_IGN);

    /* A trail is created only on purpose: serve and friends open what `db
     * seed` made, so a deleted file is an error, not a new, empty trail. */
    struct stat st;
    if (a->must_exist && stat(a->path, &st) != 0 && errno == ENOENT) {
        set_err(err, errlen,
                "AUDIT_STORE: %s does not exist; create the trail with `pricing db seed` or "
                "AUDIT_CREATE=1",
                a->path);
        rc = PX_ERR_CONFIG;
        goto out;
    }
    if (!a->must_exist) {
        int e = px_fs_make_parent(a->path, 0750);
        if (e) {
            set_err(err, errlen, "AUDIT_STORE: cannot create the directory of %s: %s", a->path,
                    strerror(e));
            rc = PX_ERR_IO;
            goto out;
        }
    }
    rc = writer_connect(a, !a->must_exist, err, errlen);
    if (rc)
        goto out;
    const struct px_aq_opts qo = {
        .timeout_ms = a->timeout_ms,
        .max_batch = a->max_batch,
        .queue_cap = a->queue_cap,
        .write = write_items,
        .probe = reconnect,
        .after = checkpoint,
        .idle = idle_check,
        .idle_ms = IDLE_CHECK_MS,
        .ctx = a,
    };
    rc = px_aq_start(&qo, &a->q);
    if (rc) {
        set_err(err, errlen, "AUDIT_STORE: cannot start the writer thread for %s", a->path);
        goto out;
    }
    *impl = a;
out:
    if (rc)
        audit_close(a);
    return rc;
}

/* Opens the read connection on first use (caller holds rmu): a Lambda
 * environment answering look-ups never queries, and its cold start should not
 * parse the schema and prepare the query statements for nothing. */
static px_rc reader_open(struct sqlite_audit *a)
{
    if (a->rdb)
        return PX_OK;
    if (sqlite3_open_v2(a->path, &a->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) ==
            SQLITE_OK &&
        (sqlite3_busy_timeout(a->rdb, (int)a->timeout_ms),
         prepare(a->rdb, BY_USER_SQL, &a->by_user)) &&
        prepare(a->rdb, BY_PRODUCT_SQL, &a->by_product) && prepare(a->rdb, PING_SQL, &a->ping))
        return PX_OK;
    px_log_limited(&a->loglim, PX_LOG_WARN, "reader",
                   "audit store %s cannot be opened for reading: %s", a->path,
                   a->rdb ? sqlite3_errmsg(a->rdb) : "out of memory");
    sqlite3_finalize(a->by_user);
    sqlite3_finalize(a->by_product);
    sqlite3_finalize(a->ping);
    sqlite3_close_v2(a->rdb);
    a->by_user = a->by_product = a->ping = NULL;
    a->rdb = NULL;
    return PX_ERR_UNAVAILABLE;
}

/* ---- submit ----------------------------------------------------------------------------- */

static px_rc audit_submit(void *impl, const struct px_audit_record *r, px_audit_done_fn done,
                          void *arg)
{
    struct sqlite_audit *a = impl;
    return a ? px_aq_submit(a->q, r, done, arg) : PX_ERR_INVALID;
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

/* Column col as an arena string, or NULL when the column is NULL. */
static px_rc col_dup(sqlite3_stmt *st, int col, struct px_arena *ar, const char **out)
{
    *out = NULL;
    const unsigned char *v = sqlite3_column_text(st, col);
    if (!v)
        return PX_OK;
    *out = px_arena_strndup(ar, (const char *)v, (size_t)sqlite3_column_bytes(st, col));
    return *out ? PX_OK : PX_ERR_NOMEM;
}

static px_rc row_to_record(sqlite3_stmt *st, struct px_audit_record *r, char sk[CURSOR_MAX + 1],
                           struct px_arena *ar, const char *q_tenant)
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
    if (!rc)
        rc = col_dup(st, 11, ar, &r->before);
    if (!rc)
        rc = col_dup(st, 12, ar, &r->after);
    const unsigned char *g = sqlite3_column_text(st, 13);
    /* The tenant lives only in the keys (T#<tenant># before them). */
    if (!rc && g)
        g = (const unsigned char *)px_audit_tenant_from_key(r, (const char *)g, q_tenant);
    /* A config change's key lives only in its gsi1pk (CONFIG#<key>). */
    if (!rc && g && strncmp((const char *)g, "CONFIG#", 7) == 0) {
        size_t n = strlen((const char *)g + 7);
        if (n >= sizeof(r->config_key))
            return PX_ERR_PROTOCOL;
        memcpy(r->config_key, g + 7, n + 1);
    }
    return rc;
}

static px_rc audit_query(void *impl, const struct px_audit_query *q, struct px_arena *ar,
                         struct px_audit_page *out)
{
    struct sqlite_audit *a = impl;
    if (!a || !q || !ar || !out ||
        (q->user_id != NULL) + (q->product_id != NULL) + (q->config_key != NULL) != 1 ||
        q->limit < 1 || q->limit > 1000)
        return PX_ERR_INVALID;
    memset(out, 0, sizeof(*out));

    char lower[CURSOR_MAX + 1], upper[40];
    if (px_audit_bounds(q, lower, upper))
        return PX_ERR_INVALID;
    const char *subject = q->user_id ? q->user_id : q->product_id ? q->product_id : q->config_key;
    size_t subject_max =
        q->config_key ? sizeof(((struct px_audit_record *)0)->config_key) - 1 : PX_MAX_PRODUCT_ID;
    if (strnlen(subject, subject_max + 1) > subject_max)
        return PX_ERR_INVALID;
    char key[PX_AUDIT_GSI1PK_MAX], t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(q->tenant, t);
    if (q->user_id)
        snprintf(key, sizeof(key), "%sUSER#%s", t, q->user_id);
    else if (q->product_id)
        snprintf(key, sizeof(key), "%sPRODUCT#%s", t, q->product_id);
    else
        snprintf(key, sizeof(key), "%sCONFIG#%s", t, q->config_key);

    px_rc rc = PX_OK;
    size_t cap = 0, n = 0;
    struct px_audit_record *items = NULL;
    char last_sk[CURSOR_MAX + 1] = "";
    bool more = false;
    pthread_mutex_lock(&a->rmu);
    rc = reader_open(a);
    if (rc) {
        pthread_mutex_unlock(&a->rmu);
        return rc;
    }
    sqlite3_stmt *st = q->user_id ? a->by_user : a->by_product;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, lower, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, upper, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->now);
    sqlite3_bind_int64(st, 5, q->limit + 1);
    for (;;) {
        int e = sqlite3_step(st);
        if (e == SQLITE_DONE)
            break;
        if (e != SQLITE_ROW) {
            int primary = e & 0xff;
            rc = primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? PX_ERR_TIMEOUT
                                                                    : PX_ERR_UNAVAILABLE;
            break;
        }
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
        memset(&items[n], 0, sizeof(items[n]));
        rc = row_to_record(st, &items[n], last_sk, ar, q->tenant);
        if (rc)
            break;
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_unlock(&a->rmu);
    if (rc)
        return rc;

    if (more) {
        out->next_cursor = px_audit_cursor_encode(ar, last_sk);
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
        px_aq_probe(a->q);
        return PX_ERR_UNAVAILABLE;
    }
    if (!files_in_place(a))
        return PX_ERR_UNAVAILABLE;
    pthread_mutex_lock(&a->rmu);
    int e = reader_open(a) ? SQLITE_CANTOPEN : sqlite3_step(a->ping);
    if (a->ping)
        sqlite3_reset(a->ping);
    pthread_mutex_unlock(&a->rmu);
    if (e != SQLITE_ROW && e != SQLITE_DONE)
        return PX_ERR_UNAVAILABLE;
    /* Reads can go on while another process holds the write lock: only
     * taking the lock says a record could be written now. The wait is short,
     * so readiness never hangs, and the lock is released at once. */
    px_rc rc = PX_OK;
    pthread_mutex_lock(&a->pmu);
    if (!a->pdb) {
        if (sqlite3_open_v2(a->path, &a->pdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
            sqlite3_close_v2(a->pdb);
            a->pdb = NULL;
            rc = PX_ERR_UNAVAILABLE;
        } else {
            sqlite3_busy_timeout(
                a->pdb, (int)(a->timeout_ms < PROBE_BUSY_MS ? a->timeout_ms : PROBE_BUSY_MS));
        }
    }
    if (!rc && sqlite3_exec(a->pdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = PX_ERR_UNAVAILABLE;
    if (a->pdb && !sqlite3_get_autocommit(a->pdb))
        sqlite3_exec(a->pdb, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&a->pmu);
    return rc;
}

/* ---- verify ---------------------------------------------------------------------------- */

/* Feeds every checkpoint, then every record in insertion order, to v, from
 * one read transaction of a connection of its own (queries go on). */
static px_rc audit_verify(void *impl, struct px_chain_verifier *v, char *err, size_t errlen)
{
    struct sqlite_audit *a = impl;
    sqlite3 *db = NULL;
    sqlite3_stmt *cps = NULL, *recs = NULL;
    struct px_arena *ar = px_arena_new(4 * PX_AUDIT_CHANGE_MAX);
    px_rc rc = PX_OK;
    if (!ar) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (sqlite3_open_v2(a->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        (sqlite3_busy_timeout(db, (int)a->timeout_ms),
         sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) ||
        sqlite3_prepare_v2(db, "SELECT id, note FROM audit_checkpoint ORDER BY id", -1, &cps,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           SELECT_COLS_NOFROM ", writer, wseq, prev_hash, hash, seq, pk, gsi1pk,"
                                              " gsi1sk FROM audit ORDER BY seq",
                           -1, &recs, NULL) != SQLITE_OK) {
        set_err(err, errlen, "cannot read %s: %s", a->path,
                db ? sqlite3_errmsg(db) : "out of memory");
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    int e;
    char where[256];
    while ((e = sqlite3_step(cps)) == SQLITE_ROW) {
        snprintf(where, sizeof(where), "audit_checkpoint id %lld",
                 (long long)sqlite3_column_int64(cps, 0));
        const char *note = (const char *)sqlite3_column_text(cps, 1);
        px_chain_verifier_checkpoint(v, note ? note : "", (size_t)sqlite3_column_bytes(cps, 1),
                                     where);
    }
    if (e == SQLITE_DONE)
        e = sqlite3_step(recs);
    for (; e == SQLITE_ROW; e = sqlite3_step(recs)) {
        struct px_audit_record r;
        char sk[CURSOR_MAX + 1] = "";
        memset(&r, 0, sizeof(r));
        px_arena_reset(ar);
        px_rc rr = row_to_record(recs, &r, sk, ar, NULL);
        snprintf(where, sizeof(where), "audit seq %lld (sk %.160s)",
                 (long long)sqlite3_column_int64(recs, 18), sk);
        const char *cw = (const char *)sqlite3_column_text(recs, 14);
        int64_t cs = sqlite3_column_int64(recs, 15);
        if (rr) {
            px_chain_verifier_next(v, NULL, cw, cs);
            px_chain_verifier_fail(v, where, "unreadable record (a field too long or not text)");
            continue;
        }
        /* The keys are derived from the hashed fields: a changed key (a record
         * moved to another user or time in queries) shows here. */
        char pk[PX_AUDIT_PK_MAX], want_sk[128], gsi1pk[PX_AUDIT_GSI1PK_MAX];
        px_audit_keys(&r, pk, want_sk, gsi1pk);
        const char *spk = (const char *)sqlite3_column_text(recs, 19);
        const char *sg = (const char *)sqlite3_column_text(recs, 20);
        const char *sgs = (const char *)sqlite3_column_text(recs, 21);
        if (!spk || !sg || !sgs || strcmp(spk, pk) || strcmp(sk, want_sk) || strcmp(sg, gsi1pk) ||
            strcmp(sgs, want_sk)) {
            px_chain_verifier_next(v, r.tenant, cw, cs);
            px_chain_verifier_fail(v, where, "changed: its keys do not match its fields");
            continue;
        }
        px_chain_verifier_record(v, &r, (const char *)sqlite3_column_text(recs, 14),
                                 sqlite3_column_int64(recs, 15),
                                 (const char *)sqlite3_column_text(recs, 16),
                                 (const char *)sqlite3_column_text(recs, 17), where);
    }
    if (e != SQLITE_DONE) {
        set_err(err, errlen, "cannot read %s: %s", a->path, sqlite3_errmsg(db));
        rc = PX_ERR_UNAVAILABLE;
    }
out:
    sqlite3_finalize(cps);
    sqlite3_finalize(recs);
    sqlite3_close_v2(db);
    px_arena_free(ar);
    return rc;
}

/* Every record in [from, to] in insertion order, from one read transaction. */
static px_rc audit_scan(void *impl, const char *from, const char *to, px_audit_scan_fn fn,
                        void *arg, char *err, size_t errlen)
{
    struct sqlite_audit *a = impl;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct px_arena *ar = px_arena_new(4 * PX_AUDIT_CHANGE_MAX);
    px_rc rc = ar ? PX_OK : PX_ERR_NOMEM;
    if (!rc && (sqlite3_open_v2(a->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
                    SQLITE_OK ||
                (sqlite3_busy_timeout(db, (int)a->timeout_ms),
                 sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) ||
                sqlite3_prepare_v2(db, SELECT_COLS "WHERE ts >= ?1 AND ts <= ?2 ORDER BY seq", -1,
                                   &st, NULL) != SQLITE_OK)) {
        set_err(err, errlen, "cannot read %s: %s", a->path,
                db ? sqlite3_errmsg(db) : "out of memory");
        rc = PX_ERR_UNAVAILABLE;
    }
    if (!rc) {
        /* "~" sorts after every digit: an open upper bound. */
        sqlite3_bind_text(st, 1, from ? from : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, to ? to : "~", -1, SQLITE_STATIC);
    }
    int e = SQLITE_DONE;
    while (!rc && (e = sqlite3_step(st)) == SQLITE_ROW) {
        struct px_audit_record r;
        char sk[CURSOR_MAX + 1];
        memset(&r, 0, sizeof(r));
        px_arena_reset(ar);
        rc = row_to_record(st, &r, sk, ar, NULL);
        if (rc)
            set_err(err, errlen, "unreadable record in %s", a->path);
        else
            rc = fn(arg, &r);
    }
    if (!rc && e != SQLITE_DONE) {
        set_err(err, errlen, "cannot read %s: %s", a->path, sqlite3_errmsg(db));
        rc = PX_ERR_UNAVAILABLE;
    }
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    px_arena_free(ar);
    return rc;
}

/* Purge (retention): one write transaction on a connection of its own. The
 * append-only triggers are dropped and created again inside it, so no other
 * connection ever sees the table without them. */
static px_rc audit_purge(void *impl, int64_t now, uint64_t *removed, char *err, size_t errlen)
{
    struct sqlite_audit *a = impl;
    *removed = 0;
    if (!a->key) {
        set_err(err, errlen, "purge needs the signing key (AUDIT_SIGNING_KEY_FILE)");
        return PX_ERR_CONFIG;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *ws = NULL, *head = NULL, *del = NULL, *cp = NULL;
    px_rc rc = PX_OK;
    if (sqlite3_open_v2(a->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        (sqlite3_busy_timeout(db, (int)a->timeout_ms),
         sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)) {
        set_err(err, errlen, "cannot open %s for writing: %s", a->path,
                db ? sqlite3_errmsg(db) : "out of memory");
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    /* Per writer: the expired prefix ends before its first live record. */
    if (sqlite3_prepare_v2(
            db,
            "SELECT writer, COALESCE((SELECT min(wseq) - 1 FROM audit b WHERE b.writer = a.writer"
            " AND b.expires_at > ?1), max(wseq)) AS upto, min(wseq) FROM audit a"
            " WHERE writer IS NOT NULL GROUP BY writer",
            -1, &ws, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT hash FROM audit WHERE writer = ?1 AND wseq = ?2", -1, &head,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM audit WHERE writer = ?1 AND wseq <= ?2", -1, &del,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, CHECKPOINT_SQL, -1, &cp, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "DROP TRIGGER audit_no_delete", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, errlen, "cannot purge %s: %s", a->path, sqlite3_errmsg(db));
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    sqlite3_bind_int64(ws, 1, now);
    int e;
    while (!rc && (e = sqlite3_step(ws)) == SQLITE_ROW) {
        const char *w = (const char *)sqlite3_column_text(ws, 0);
        int64_t upto = sqlite3_column_int64(ws, 1), first = sqlite3_column_int64(ws, 2);
        if (!w || upto < first)
            continue;
        struct px_checkpoint c;
        memset(&c, 0, sizeof(c));
        snprintf(c.writer, sizeof(c.writer), "%s", w);
        c.seq = (uint64_t)upto;
        c.purged = true;
        px_chain_now_ts(c.time);
        sqlite3_bind_text(head, 1, w, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(head, 2, upto);
        const char *hx =
            sqlite3_step(head) == SQLITE_ROW ? (const char *)sqlite3_column_text(head, 0) : NULL;
        bool ok = hx && px_chain_unhex(hx, c.head);
        sqlite3_reset(head);
        char note[PX_CHAIN_NOTE_MAX];
        size_t len = 0;
        if (!ok || px_checkpoint_sign(a->key, &c, note, sizeof(note), &len)) {
            set_err(err, errlen, "cannot purge writer %s: its record %lld is unreadable", w,
                    (long long)upto);
            rc = PX_ERR_PROTOCOL;
            break;
        }
        sqlite3_bind_text(cp, 1, c.writer, -1, SQLITE_STATIC);
        sqlite3_bind_int64(cp, 2, upto);
        sqlite3_bind_text(cp, 3, note, (int)len, SQLITE_STATIC);
        sqlite3_bind_text(del, 1, c.writer, -1, SQLITE_STATIC);
        sqlite3_bind_int64(del, 2, upto);
        if (run(cp) != SQLITE_DONE || run(del) != SQLITE_DONE) {
            set_err(err, errlen, "cannot purge %s: %s", a->path, sqlite3_errmsg(db));
            rc = PX_ERR_IO;
            break;
        }
        *removed += (uint64_t)sqlite3_changes(db);
    }
    /* Records from before the chain carry no link: expired ones simply go. */
    if (!rc) {
        sqlite3_stmt *old = NULL;
        if (sqlite3_prepare_v2(db, "DELETE FROM audit WHERE writer IS NULL AND expires_at <= ?1",
                               -1, &old, NULL) == SQLITE_OK &&
            (sqlite3_bind_int64(old, 1, now), sqlite3_step(old) == SQLITE_DONE))
            *removed += (uint64_t)sqlite3_changes(db);
        else
            rc = PX_ERR_IO;
        sqlite3_finalize(old);
    }
    if (!rc && (sqlite3_exec(db, migrations[0].sql, NULL, NULL, NULL) != SQLITE_OK ||
                sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)) {
        set_err(err, errlen, "cannot purge %s: %s", a->path, sqlite3_errmsg(db));
        rc = PX_ERR_IO;
    }
out:
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (rc)
        *removed = 0;
    sqlite3_finalize(ws);
    sqlite3_finalize(head);
    sqlite3_finalize(del);
    sqlite3_finalize(cp);
    sqlite3_close_v2(db);
    return rc;
}

/* Group-commit figures since open, for tests and metrics: committed batches,
 * records in them, largest batch. */
PX_STATIC void px_audit_sqlite_stats(void *impl, uint64_t *batches, uint64_t *records,
                                     uint64_t *largest) __attribute__((unused));
PX_STATIC void px_audit_sqlite_stats(void *impl, uint64_t *batches, uint64_t *records,
                                     uint64_t *largest)
{
    px_aq_stats(((struct sqlite_audit *)impl)->q, batches, records, largest);
}

const struct px_audit_ops px_audit_sqlite_ops = {
    .scheme = "sqlite",
    .open = audit_open,
    .close = audit_close,
    .submit = audit_submit,
    .query = audit_query,
    .ping = audit_ping,
    .verify = audit_verify,
    .scan = audit_scan,
    .purge = audit_purge,
};
