/* price_sqlite.c: the embedded price store (spec "sqlite:PATH").
 *
 * A fixed pool of read-only connections, each with its prepared look-up, is
 * shared by all request threads: a thread borrows one under a mutex, waits at
 * most timeout_ms for one to come back, and returns it after a single
 * bind/step/reset. The product id is always a bound parameter. The price is
 * TEXT so its scale survives ("100.00" stays "100.00"). Seeding uses its own
 * read-write connection and one transaction, so readers see all or nothing.
 *
 * The file is kept in rollback-journal mode (journal_mode=DELETE), never WAL:
 * it is written only by `db seed` / `db migrate`, and its readers are
 * read-only connections, which in WAL mode would need a writable -shm file
 * beside it (a file and directory the service may only read could not be
 * served). After a seed every row is in the main file and no -wal, -shm or
 * -journal file is left. The price of it: each SQLite read takes and drops a
 * shared file lock (4 fcntl and 3 stat), and a seed's commit makes reads wait
 * (busy_timeout).
 *
 * So answers come from a small cache kept coherent by the file change counter
 * (header bytes 24..27), which SQLite increments in every commit that modifies
 * a rollback-journal file, before the writer's lock is released. A look-up
 * reads the header with one pread(2); when the counter is the one the cached
 * row was read under (the counter is read while the statement still holds
 * its shared lock), that row is the last committed state and is answered
 * without SQLite. A commit by any process, a rollback, a file in WAL mode
 * (where the counter is not kept) or a header that cannot be read sends the
 * look-up to SQLite as before. */
#include "price.h"
#include "outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POOL_DEFAULT    4
#define POOL_MAX        64
#define TIMEOUT_DEFAULT 2000
#define TIMEOUT_MAX     60000
#define SCHEMA_VERSION  4
/* Cached rows: CACHE_SETS sets (a power of two) of CACHE_WAYS, 32768 rows
 * (4 MB) at most, so a catalogue of tens of thousands of products stays in. */
#define CACHE_SETS 8192
#define CACHE_WAYS 4

/* Migrations, applied in order inside one transaction; user_version counts
 * how many ran, so running them again is a no-op. */
static const char *const migrations[SCHEMA_VERSION] = {
    "CREATE TABLE IF NOT EXISTS product_prices ("
    " product_id TEXT PRIMARY KEY CHECK (length(product_id) BETWEEN 1 AND 64"
    "  AND product_id GLOB '[A-Za-z0-9]*' AND product_id NOT GLOB '*[^A-Za-z0-9-]*'),"
    /* TEXT keeps '100.00' as written; an unquoted 100.00 would arrive as a REAL and
     * be stored as '100.0', so seed files quote every price. */
    " price TEXT NOT NULL CHECK (length(price) BETWEEN 1 AND 40"
    "  AND price GLOB '*[0-9]*' AND price NOT GLOB '*[^0-9.]*' AND price NOT GLOB '*.*.*'),"
    " currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency GLOB '[A-Z][A-Z][A-Z]')"
    ") WITHOUT ROWID;",
    /* v2: price history written by product-service with each price change,
     * in the same transaction; append-only like the audit trail. */
    "CREATE TABLE IF NOT EXISTS price_history ("
    " seq INTEGER PRIMARY KEY,"
    " product_id TEXT NOT NULL, amount TEXT NOT NULL, currency TEXT NOT NULL,"
    " effective_from TEXT NOT NULL, changed_by TEXT NOT NULL, request_id TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS price_history_product ON price_history (product_id, seq);"
    "CREATE TRIGGER IF NOT EXISTS price_history_no_update BEFORE UPDATE ON price_history"
    " BEGIN SELECT RAISE(ABORT, 'price history is append-only'); END;"
    "CREATE TRIGGER IF NOT EXISTS price_history_no_delete BEFORE DELETE ON price_history"
    " BEGIN SELECT RAISE(ABORT, 'price history is append-only'); END;",
    /* v3: the outbox of domain events (outbox.h), filled in the price change's
     * transaction; the text is built in outbox_sqlite.c. */
    px_outbox_sqlite_schema,
    /* v4: tenants (CONTRACT §12). product_prices stays the default tenant's
     * table exactly as it was (its key, and seed files upserting on
     * product_id, keep working); every other tenant's prices live in
     * tenant_prices under (tenant, product_id). History rows name their
     * tenant; rows written before belong to "default". */
    "CREATE TABLE IF NOT EXISTS tenant_prices ("
    " tenant TEXT NOT NULL CHECK (length(tenant) BETWEEN 1 AND 64"
    "  AND tenant NOT GLOB '*[^a-z0-9-]*' AND tenant <> 'default'),"
    " product_id TEXT NOT NULL CHECK (length(product_id) BETWEEN 1 AND 64"
    "  AND product_id GLOB '[A-Za-z0-9]*' AND product_id NOT GLOB '*[^A-Za-z0-9-]*'),"
    " price TEXT NOT NULL CHECK (length(price) BETWEEN 1 AND 40"
    "  AND price GLOB '*[0-9]*' AND price NOT GLOB '*[^0-9.]*' AND price NOT GLOB '*.*.*'),"
    " currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency GLOB '[A-Z][A-Z][A-Z]'),"
    " PRIMARY KEY (tenant, product_id)) WITHOUT ROWID;"
    "ALTER TABLE price_history ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';"
    "CREATE INDEX IF NOT EXISTS price_history_tenant ON price_history (tenant, product_id, seq);",
};

/* Parameters of the writes: ?1..?6 as exec_bound() lists them, ?7 the tenant. */
static const char SET_SQL[] =
    "INSERT INTO product_prices (product_id, price, currency) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (product_id) DO UPDATE SET price = excluded.price, currency = excluded.currency";
static const char SET_T_SQL[] =
    "INSERT INTO tenant_prices (tenant, product_id, price, currency) VALUES (?7, ?1, ?2, ?3)"
    " ON CONFLICT (tenant, product_id) DO UPDATE SET price = excluded.price,"
    " currency = excluded.currency";
static const char HISTORY_INSERT_SQL[] =
    "INSERT INTO price_history (product_id, amount, currency, effective_from, changed_by,"
    " request_id, tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char WITHDRAW_SQL[] = "DELETE FROM product_prices WHERE product_id = ?1";
static const char WITHDRAW_T_SQL[] =
    "DELETE FROM tenant_prices WHERE tenant = ?7 AND product_id = ?1";
static const char HISTORY_SQL[] =
    "SELECT amount, currency, effective_from, changed_by, request_id FROM price_history"
    " WHERE tenant = ?3 AND product_id = ?1 ORDER BY seq LIMIT ?2";

static const char GET_SQL[] = "SELECT price, currency FROM product_prices WHERE product_id = ?1";
static const char GET_T_SQL[] =
    "SELECT price, currency FROM tenant_prices WHERE tenant = ?2 AND product_id = ?1";
/* Readiness reads the table itself: "SELECT 1" alone would not touch the file. */
static const char PING_SQL[] = "SELECT 1 FROM product_prices LIMIT 1";

struct conn {
    sqlite3 *db;
    sqlite3_stmt *get;
    sqlite3_stmt *get_t; /* another tenant's price; NULL on a file not migrated to v4 */
    sqlite3_stmt *ping;
};

/* One cached row, valid while the file's change counter equals gen. */
struct cached {
    bool used;
    uint32_t gen;
    char tenant[PX_TENANT_NAME_MAX + 1]; /* "" for the default tenant */
    struct px_price price;
};

struct sqlite_price {
    char *path;
    int hdr_fd; /* the file, read for its header only; -1: no cache */
    pthread_mutex_t cmu;
    struct cached *cache; /* CACHE_SETS * CACHE_WAYS, under cmu */
    unsigned evict;       /* round-robin victim, under cmu */
    long timeout_ms;
    unsigned n;
    struct conn *conns;
    unsigned *free_idx; /* stack of idle connection indexes */
    unsigned nfree;
    unsigned nopen; /* conns[0..nopen) are open; the rest open on first need, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_init;
};

static long clamp_timeout(long ms)
{
    if (ms <= 0)
        return TIMEOUT_DEFAULT;
    return ms > TIMEOUT_MAX ? TIMEOUT_MAX : ms;
}

static void conn_close(struct conn *c)
{
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->get_t);
    sqlite3_finalize(c->ping);
    sqlite3_close_v2(c->db);
    c->get = c->get_t = c->ping = NULL;
    c->db = NULL;
}

static void price_close(void *impl)
{
    struct sqlite_price *p = impl;
    if (!p)
        return;
    for (unsigned i = 0; p->conns && i < p->n; i++)
        conn_close(&p->conns[i]);
    if (p->sync_init) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        pthread_mutex_destroy(&p->cmu);
    }
    if (p->hdr_fd >= 0)
        close(p->hdr_fd);
    free(p->cache);
    free(p->conns);
    free(p->free_idx);
    free(p->path);
    free(p);
}

/* Brings the schema to SCHEMA_VERSION on a read-write connection. */
static px_rc migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    px_rc rc = PX_OK;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0) {
        snprintf(err, errlen, "PRICE_DB: cannot read schema version of %s: %s", path,
                 sqlite3_errmsg(db));
        return PX_ERR_UNAVAILABLE;
    }
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "PRICE_DB: %s has schema version %d, newer than this binary (%d)",
                 path, version, SCHEMA_VERSION);
        return PX_ERR_CONFIG;
    }
    for (int v = version; !rc && v < SCHEMA_VERSION; v++) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "PRICE_DB: schema migration %d on %s failed: %s", v + 1, path,
                     sqlite3_errmsg(db));
            rc = PX_ERR_IO;
        }
    }
    return rc;
}

/* Opens a read-write connection (creating the file when create is set). */
static px_rc open_rw(const char *path, bool create, long timeout_ms, sqlite3 **out, char *err,
                     size_t errlen)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "PRICE_DB: cannot open %s for writing: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close_v2(db);
        return PX_ERR_UNAVAILABLE;
    }
    sqlite3_busy_timeout(db, (int)timeout_ms);
    *out = db;
    return PX_OK;
}

/* Puts the file in rollback-journal mode (see the top of this file). A file
 * left in WAL mode by an older build is checkpointed into the main file and
 * its -wal removed; that needs every other connection to it closed. */
static px_rc use_rollback_journal(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const unsigned char *mode = NULL;
    px_rc rc = PX_OK;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = DELETE", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        mode = sqlite3_column_text(st, 0);
    if (!mode || strcmp((const char *)mode, "delete") != 0) {
        snprintf(err, errlen,
                 "PRICE_DB: cannot put %s in rollback-journal mode: %s (stop the servers "
                 "reading it and run again)",
                 path, mode ? (const char *)mode : sqlite3_errmsg(db));
        rc = PX_ERR_UNAVAILABLE;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Migrates the file at path and, unless sql is NULL, runs sql, all in one
 * BEGIN IMMEDIATE transaction on a read-write connection of its own. */
/* A seed for a tenant other than "default" runs against a temporary
 * product_prices, which hides the main one for unqualified names, so any
 * seed file written for the default tenant loads unchanged; its rows then
 * move into tenant_prices, in the same transaction. */
static const char TENANT_SEED_BEGIN[] =
    "CREATE TEMP TABLE product_prices (product_id TEXT PRIMARY KEY, price TEXT NOT NULL,"
    " currency TEXT NOT NULL)";
static const char TENANT_SEED_MOVE[] =
    "INSERT INTO main.tenant_prices (tenant, product_id, price, currency)"
    " SELECT ?1, product_id, price, currency FROM temp.product_prices WHERE true"
    " ON CONFLICT (tenant, product_id) DO UPDATE SET price = excluded.price,"
    " currency = excluded.currency";

static int tenant_seed_move(sqlite3 *db, const char *tenant)
{
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v2(db, TENANT_SEED_MOVE, -1, &st, NULL);
    if (e == SQLITE_OK) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        e = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(st);
    if (e == SQLITE_OK)
        e = sqlite3_exec(db, "DROP TABLE temp.product_prices", NULL, NULL, NULL);
    return e;
}

static px_rc apply(const char *path, bool create, long timeout_ms, const char *tenant,
                   const char *name, const char *sql, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    px_rc rc = open_rw(path, create, timeout_ms, &db, err, errlen);
    if (rc)
        goto out;
    rc = use_rollback_journal(db, path, err, errlen);
    if (rc)
        goto out;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "PRICE_DB: cannot lock %s: %s", path, sqlite3_errmsg(db));
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    rc = migrate(db, path, err, errlen);
    bool other = sql && tenant && strcmp(tenant, "default") != 0;
    if (!rc && other && sqlite3_exec(db, TENANT_SEED_BEGIN, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "PRICE_DB: cannot seed tenant %s: %s", tenant, sqlite3_errmsg(db));
        rc = PX_ERR_IO;
    }
    if (!rc && sql) {
        char *msg = NULL;
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", name ? name : "seed", msg ? msg : sqlite3_errmsg(db));
            rc = PX_ERR_INVALID;
        }
        sqlite3_free(msg);
    }
    if (!rc && other && tenant_seed_move(db, tenant) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot load into tenant %s: %s", name ? name : "seed", tenant,
                 sqlite3_errmsg(db));
        rc = PX_ERR_INVALID;
    }
    if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "PRICE_DB: cannot commit to %s: %s", path, sqlite3_errmsg(db));
        rc = PX_ERR_IO;
    }
    if (rc && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_close_v2(db);
    return rc;
}

static px_rc conn_open(struct sqlite_price *p, struct conn *c, char *err, size_t errlen)
{
    if (sqlite3_open_v2(p->path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "PRICE_DB: cannot open %s: %s (run: pricing db seed)", p->path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        return PX_ERR_UNAVAILABLE;
    }
    sqlite3_busy_timeout(c->db, (int)p->timeout_ms);
    /* Pages through the mapping instead of one pread(2) each: a look-up then
     * reads its B-tree pages from memory; the shared lock it takes is the only
     * file system work left. */
    sqlite3_exec(c->db, "PRAGMA mmap_size = 268435456", NULL, NULL, NULL);
    if (sqlite3_prepare_v3(c->db, GET_SQL, -1, SQLITE_PREPARE_PERSISTENT, &c->get, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(c->db, PING_SQL, -1, SQLITE_PREPARE_PERSISTENT, &c->ping, NULL) !=
            SQLITE_OK) {
        const char *msg = sqlite3_errmsg(c->db);
        /* A missing file opened read-only reads as an empty database: no table. */
        if (strstr(msg, "no such table"))
            snprintf(err, errlen, "PRICE_DB: no price table in %s (run: pricing db seed)", p->path);
        else
            snprintf(err, errlen, "PRICE_DB: cannot read %s: %s", p->path, msg);
        return PX_ERR_UNAVAILABLE;
    }
    /* A file from before v4 still serves the default tenant. */
    if (sqlite3_prepare_v3(c->db, GET_T_SQL, -1, SQLITE_PREPARE_PERSISTENT, &c->get_t, NULL) !=
        SQLITE_OK)
        c->get_t = NULL;
    return PX_OK;
}

static px_rc price_open(const char *spec, const struct px_price_opts *opts, void **impl, char *err,
                        size_t errlen)
{
    px_rc rc = PX_OK;
    *impl = NULL;
    if (!spec || !*spec || strcmp(spec, ":memory:") == 0) {
        snprintf(err, errlen, "PRICE_DB: sqlite needs a file path (sqlite:PATH)");
        return PX_ERR_CONFIG;
    }
    struct sqlite_price *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "PRICE_DB: out of memory");
        return PX_ERR_NOMEM;
    }
    p->hdr_fd = -1;
    p->timeout_ms = clamp_timeout(opts ? opts->timeout_ms : 0);
    p->n = opts && opts->pool_size ? opts->pool_size : POOL_DEFAULT;
    if (p->n > POOL_MAX)
        p->n = POOL_MAX;
    p->path = strdup(spec);
    p->conns = calloc(p->n, sizeof(*p->conns));
    p->free_idx = calloc(p->n, sizeof(*p->free_idx));
    p->cache = calloc((size_t)CACHE_SETS * CACHE_WAYS, sizeof(*p->cache));
    if (!p->path || !p->conns || !p->free_idx || !p->cache) {
        snprintf(err, errlen, "PRICE_DB: out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&p->mu, NULL) != 0 || pthread_cond_init(&p->cv, &ca) != 0 ||
        pthread_mutex_init(&p->cmu, NULL) != 0) {
        pthread_condattr_destroy(&ca);
        snprintf(err, errlen, "PRICE_DB: cannot create pool lock");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    pthread_condattr_destroy(&ca);
    p->sync_init = true;

    if (opts && opts->create) {
        rc = apply(p->path, true, p->timeout_ms, NULL, NULL, NULL, err, errlen);
        if (rc)
            goto out;
    }
    /* One connection proves the store is there (a missing one fails init, as
     * before); the others cost a cold start nothing until a second concurrent
     * look-up wants one (a Lambda environment never does). */
    rc = conn_open(p, &p->conns[0], err, errlen);
    if (rc)
        goto out;
    p->nopen = 1;
    p->free_idx[p->nfree++] = 0;
    /* Opened after the connection: the same file it reads (a file renamed
     * over the path later is not seen by either, as before). No fd, no cache. */
    p->hdr_fd = open(p->path, O_RDONLY | O_CLOEXEC);
    *impl = p;
out:
    if (rc)
        price_close(p);
    return rc;
}

/* Borrows an idle connection, waiting at most timeout_ms. */
static px_rc acquire(struct sqlite_price *p, struct conn **out)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += p->timeout_ms / 1000;
    deadline.tv_nsec += (p->timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    px_rc rc = PX_OK;
    pthread_mutex_lock(&p->mu);
    if (p->nfree == 0 && p->nopen < p->n) {
        char why[256];
        if (conn_open(p, &p->conns[p->nopen], why, sizeof(why)) == PX_OK)
            p->free_idx[p->nfree++] = p->nopen++;
        else /* the pool stays smaller: wait for an open one below */
            conn_close(&p->conns[p->nopen]);
    }
    while (p->nfree == 0) {
        int e = pthread_cond_timedwait(&p->cv, &p->mu, &deadline);
        if (e == ETIMEDOUT && p->nfree == 0) {
            rc = PX_ERR_TIMEOUT;
            break;
        }
    }
    if (!rc)
        *out = &p->conns[p->free_idx[--p->nfree]];
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void release(struct sqlite_price *p, struct conn *c)
{
    pthread_mutex_lock(&p->mu);
    p->free_idx[p->nfree++] = (unsigned)(c - p->conns);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Database result codes as the store's callers see them. */
static px_rc map_step_error(int e)
{
    switch (e & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return PX_ERR_TIMEOUT;
    case SQLITE_NOMEM:
        return PX_ERR_NOMEM;
    default:
        return PX_ERR_UNAVAILABLE;
    }
}

static px_rc copy_text(sqlite3_stmt *st, int col, char *dst, size_t cap, size_t exact)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    int len = sqlite3_column_bytes(st, col);
    if (!v || len <= 0 || (size_t)len >= cap || (exact && (size_t)len != exact))
        return PX_ERR_PROTOCOL;
    memcpy(dst, v, (size_t)len);
    dst[len] = '\0';
    return PX_OK;
}

/* The file change counter, from the header. false when there is none to
 * trust: no file, a short read, not a SQLite file, or not rollback-journal
 * format (bytes 18 and 19 are 2 in WAL mode, where the counter is not kept). */
static bool change_counter(const struct sqlite_price *p, uint32_t *out)
{
    static const char magic[16] = "SQLite format 3";
    unsigned char h[28];
    if (p->hdr_fd < 0 || pread(p->hdr_fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return false;
    if (memcmp(h, magic, sizeof(magic)) != 0 || h[18] != 1 || h[19] != 1)
        return false;
    *out = (uint32_t)h[24] << 24 | (uint32_t)h[25] << 16 | (uint32_t)h[26] << 8 | h[27];
    return true;
}

static struct cached *set_of(struct sqlite_price *p, const char *tenant, const char *id, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a over tenant NUL id */
    for (size_t i = 0; tenant[i]; i++)
        h = (h ^ (unsigned char)tenant[i]) * 16777619u;
    h *= 16777619u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)id[i]) * 16777619u;
    return &p->cache[(size_t)(h & (CACHE_SETS - 1)) * CACHE_WAYS];
}

static bool cache_get(struct sqlite_price *p, const char *tenant, const char *id, size_t len,
                      uint32_t gen, struct px_price *out)
{
    struct cached *set = set_of(p, tenant, id, len);
    bool hit = false;
    pthread_mutex_lock(&p->cmu);
    for (unsigned w = 0; w < CACHE_WAYS && !hit; w++) {
        const struct cached *c = &set[w];
        if (c->used && c->gen == gen && strcmp(c->price.product_id, id) == 0 &&
            strcmp(c->tenant, tenant) == 0) {
            *out = c->price;
            hit = true;
        }
    }
    pthread_mutex_unlock(&p->cmu);
    return hit;
}

/* Into the way that holds the same product, else a free or outdated one,
 * else the next round-robin victim. */
static void cache_put(struct sqlite_price *p, const char *tenant, size_t len, uint32_t gen,
                      const struct px_price *v)
{
    struct cached *set = set_of(p, tenant, v->product_id, len), *c = NULL;
    pthread_mutex_lock(&p->cmu);
    for (unsigned w = 0; w < CACHE_WAYS && !c; w++)
        if (set[w].used && strcmp(set[w].price.product_id, v->product_id) == 0 &&
            strcmp(set[w].tenant, tenant) == 0)
            c = &set[w];
    for (unsigned w = 0; w < CACHE_WAYS && !c; w++)
        if (!set[w].used || set[w].gen != gen)
            c = &set[w];
    if (!c)
        c = &set[p->evict++ % CACHE_WAYS];
    c->used = true;
    c->gen = gen;
    snprintf(c->tenant, sizeof(c->tenant), "%s", tenant);
    c->price = *v;
    pthread_mutex_unlock(&p->cmu);
}

/* "" for the default tenant (product_prices), else the tenant (tenant_prices). */
static const char *tenant_key(const char *tenant)
{
    return tenant && strcmp(tenant, "default") != 0 ? tenant : "";
}

static px_rc price_get(void *impl, const char *tenant, const char *product_id, struct px_price *out)
{
    struct sqlite_price *p = impl;
    struct conn *c = NULL;
    size_t idlen = product_id ? strnlen(product_id, PX_MAX_PRODUCT_ID + 1) : 0;
    tenant = tenant_key(tenant);
    if (!p || !out || idlen == 0 || idlen > PX_MAX_PRODUCT_ID ||
        strnlen(tenant, PX_TENANT_NAME_MAX + 1) > PX_TENANT_NAME_MAX)
        return PX_ERR_INVALID;
    uint32_t gen = 0;
    if (change_counter(p, &gen) && cache_get(p, tenant, product_id, idlen, gen, out))
        return PX_OK;
    px_rc rc = acquire(p, &c);
    if (rc)
        return rc;
    sqlite3_stmt *st = tenant[0] ? c->get_t : c->get;
    if (!st) {
        rc = PX_ERR_UNAVAILABLE; /* a file from before `db migrate` has no tenant table */
        release(p, c);
        return rc;
    }
    if (sqlite3_bind_text(st, 1, product_id, (int)idlen, SQLITE_STATIC) != SQLITE_OK ||
        (tenant[0] && sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC) != SQLITE_OK)) {
        rc = PX_ERR_INTERNAL;
        goto out;
    }
    int e = sqlite3_step(st);
    if (e == SQLITE_DONE) {
        rc = PX_ERR_NOT_FOUND;
    } else if (e == SQLITE_ROW) {
        memcpy(out->product_id, product_id, idlen);
        out->product_id[idlen] = '\0';
        rc = copy_text(st, 0, out->price, sizeof(out->price), 0);
        if (!rc)
            rc = copy_text(st, 1, out->currency, sizeof(out->currency), 3);
        /* The statement still holds its shared lock: no commit can be under
         * way, so the counter read now is the one of the row just read. */
        if (!rc && change_counter(p, &gen))
            cache_put(p, tenant, idlen, gen, out);
    } else {
        rc = map_step_error(e);
    }
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    release(p, c);
    return rc;
}

static px_rc price_ping(void *impl)
{
    struct sqlite_price *p = impl;
    struct conn *c = NULL;
    if (!p)
        return PX_ERR_INVALID;
    px_rc rc = acquire(p, &c);
    if (rc)
        return rc;
    int e = sqlite3_step(c->ping);
    if (e != SQLITE_ROW && e != SQLITE_DONE)
        rc = map_step_error(e);
    sqlite3_reset(c->ping);
    release(p, c);
    return rc;
}

static px_rc price_seed(void *impl, const char *name, const char *sql, char *err, size_t errlen)
{
    struct sqlite_price *p = impl;
    if (!p)
        return PX_ERR_INVALID;
    return apply(p->path, false, p->timeout_ms, NULL, name, sql, err, errlen);
}

static px_rc price_seed_tenant(void *impl, const char *tenant, const char *name, const char *sql,
                               char *err, size_t errlen)
{
    struct sqlite_price *p = impl;
    if (!p)
        return PX_ERR_INVALID;
    return apply(p->path, false, p->timeout_ms, tenant, name, sql, err, errlen);
}

/* Runs sql with the change's strings bound as ?1..?6 (product, amount,
 * currency, effective_from, changed_by, request_id; unused ones ignored). */
static int exec_bound(sqlite3 *db, const char *sql, const struct px_price_change *c)
{
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (e != SQLITE_OK)
        return e;
    const char *v[] = {c->product_id,
                       c->amount,
                       c->currency,
                       c->effective_from,
                       c->changed_by,
                       c->request_id,
                       c->tenant && c->tenant[0] ? c->tenant : "default"};
    int np = sqlite3_bind_parameter_count(st);
    for (int i = 0; i < np && i < (int)PX_COUNTOF(v); i++)
        sqlite3_bind_text(st, i + 1, v[i] ? v[i] : "", -1, SQLITE_STATIC);
    e = sqlite3_step(st);
    sqlite3_finalize(st);
    return e == SQLITE_DONE ? SQLITE_OK : e;
}

/* A read-write connection of its own per change: the pool's are read-only
 * (see the top of this file), and writes are rare next to look-ups. */
static px_rc price_set(void *impl, const struct px_price_change *c)
{
    struct sqlite_price *p = impl;
    sqlite3 *db = NULL;
    char err[256];
    if (!p)
        return PX_ERR_INVALID;
    px_rc rc = open_rw(p->path, false, p->timeout_ms, &db, err, sizeof(err));
    if (rc)
        return rc;
    int e = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (e == SQLITE_OK && c->amount)
        e = exec_bound(db, HISTORY_INSERT_SQL, c);
    bool other = tenant_key(c->tenant)[0] != '\0';
    if (e == SQLITE_OK)
        e = exec_bound(
            db, c->amount ? (other ? SET_T_SQL : SET_SQL) : (other ? WITHDRAW_T_SQL : WITHDRAW_SQL),
            c);
    if (e == SQLITE_OK && c->event)
        e = px_outbox_sqlite_insert(db, c->event);
    if (e == SQLITE_OK)
        e = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (e != SQLITE_OK) {
        rc = (e & 0xff) == SQLITE_CONSTRAINT ? PX_ERR_INVALID : map_step_error(e);
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close_v2(db);
    return rc;
}

static px_rc price_history(void *impl, const char *tenant, const char *product_id, size_t max,
                           struct px_arena *a, struct px_price_history_row **rows, size_t *n)
{
    struct sqlite_price *p = impl;
    struct conn *c = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = acquire(p, &c);
    if (rc)
        return rc;
    struct px_price_history_row *out = px_arena_calloc(a, max * sizeof(*out));
    if (!out) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (sqlite3_prepare_v2(c->db, HISTORY_SQL, -1, &st, NULL) != SQLITE_OK) {
        rc = PX_ERR_UNAVAILABLE; /* a file from before `db migrate` has no history table */
        goto out;
    }
    sqlite3_bind_text(st, 1, product_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    sqlite3_bind_text(st, 3, tenant ? tenant : "default", -1, SQLITE_STATIC);
    size_t k = 0;
    int e = SQLITE_DONE;
    while (!rc && (e = sqlite3_step(st)) == SQLITE_ROW && k < max) {
        struct px_price_history_row *r = &out[k++];
        rc = copy_text(st, 0, r->amount, sizeof(r->amount), 0);
        if (!rc)
            rc = copy_text(st, 1, r->currency, sizeof(r->currency), 3);
        if (!rc)
            rc = copy_text(st, 2, r->effective_from, sizeof(r->effective_from), 0);
        if (!rc)
            rc = copy_text(st, 3, r->changed_by, sizeof(r->changed_by), 0);
        if (!rc)
            rc = copy_text(st, 4, r->request_id, sizeof(r->request_id), 0);
    }
    if (!rc && e != SQLITE_DONE && e != SQLITE_ROW)
        rc = map_step_error(e);
    *rows = out;
    *n = k;
out:
    sqlite3_finalize(st);
    release(p, c);
    return rc;
}

const struct px_price_ops px_price_sqlite_ops = {
    .scheme = "sqlite",
    .open = price_open,
    .close = price_close,
    .get = price_get,
    .ping = price_ping,
    .seed = price_seed,
    .seed_tenant = price_seed_tenant,
    .set = price_set,
    .history = price_history,
};
