/* product_sqlite.c: the embedded product store (spec "sqlite:PATH").
 *
 * Each operation opens its own connection (WAL, synchronous=FULL) and closes
 * it: writes are rare next to look-ups, and a connection per call needs no
 * pool and is safe across threads and processes alike. A write runs in one
 * BEGIN IMMEDIATE transaction: the file's write lock serialises writers, in
 * this process or another, for the whole check-callback-store sequence of
 * px_product_apply(), so of two writers holding the same If-Match exactly one
 * finds its version current. Every value is a bound parameter. */
#include "product.h"
#include "sqlite_store.h"
#include "outbox.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 3
#define TIMEOUT_MAX    60000

static const char *const migrations[SCHEMA_VERSION] = {
    "CREATE TABLE IF NOT EXISTS products ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,"
    " category TEXT NOT NULL, status TEXT NOT NULL, attributes TEXT NOT NULL,"
    " price_amount TEXT, price_currency TEXT, price_effective_from TEXT,"
    " version INTEGER NOT NULL CHECK (version >= 1),"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS products_by_category ON products (category, id);"
    "CREATE INDEX IF NOT EXISTS products_by_status ON products (status, id);"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    " principal TEXT NOT NULL, route TEXT NOT NULL, key TEXT NOT NULL,"
    " body_hash TEXT NOT NULL, done INTEGER NOT NULL, status INTEGER, body TEXT,"
    " etag TEXT, location TEXT, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
    " PRIMARY KEY (principal, route, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_at);",
    /* v2: the outbox of domain events (outbox.h), filled in the write's transaction. */
    px_outbox_sqlite_schema,
    /* v3: tenants (CONTRACT §12): the tenant leads every product key and
     * index; rows written before belong to "default". (Idempotency keys carry
     * the tenant in their principal, see product-service.) */
    "CREATE TABLE products_v3 ("
    " tenant TEXT NOT NULL DEFAULT 'default', id TEXT NOT NULL, name TEXT NOT NULL,"
    " description TEXT NOT NULL, category TEXT NOT NULL, status TEXT NOT NULL,"
    " attributes TEXT NOT NULL, price_amount TEXT, price_currency TEXT,"
    " price_effective_from TEXT, version INTEGER NOT NULL CHECK (version >= 1),"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " PRIMARY KEY (tenant, id)) WITHOUT ROWID;"
    "INSERT INTO products_v3 (tenant, id, name, description, category, status, attributes,"
    " price_amount, price_currency, price_effective_from, version, created_at, updated_at)"
    " SELECT 'default', id, name, description, category, status, attributes, price_amount,"
    " price_currency, price_effective_from, version, created_at, updated_at FROM products;"
    "DROP TABLE products;"
    "ALTER TABLE products_v3 RENAME TO products;"
    "CREATE INDEX products_by_category ON products (tenant, category, id);"
    "CREATE INDEX products_by_status ON products (tenant, status, id);",
};

#define COLS                                                                                       \
    "SELECT id, name, description, category, status, attributes, price_amount, price_currency,"    \
    " price_effective_from, version, created_at, updated_at FROM products "

/* ?13 is the tenant everywhere. */
static const char GET_SQL[] = COLS "WHERE tenant = ?13 AND id = ?1";
static const char LIST_SQL[] = COLS "WHERE tenant = ?13 AND (?1 IS NULL OR category = ?1) AND"
                                    " (?2 IS NULL OR status = ?2) AND id > ?3 ORDER BY id LIMIT ?4";
static const char PUT_SQL[] =
    "INSERT INTO products (id, name, description, category, status, attributes, price_amount,"
    " price_currency, price_effective_from, version, created_at, updated_at, tenant)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    " ON CONFLICT (tenant, id) DO UPDATE SET name = excluded.name, description = "
    "excluded.description,"
    " category = excluded.category, status = excluded.status, attributes = excluded.attributes,"
    " price_amount = excluded.price_amount, price_currency = excluded.price_currency,"
    " price_effective_from = excluded.price_effective_from, version = excluded.version,"
    " updated_at = excluded.updated_at";
static const char SEED_SQL[] =
    "INSERT INTO products (id, name, description, category, status, attributes, price_amount,"
    " price_currency, price_effective_from, version, created_at, updated_at, tenant)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    " ON CONFLICT (tenant, id) DO NOTHING";

struct sqlite_product {
    char *path;
    long timeout_ms;
};

static px_rc map_error(int e)
{
    switch (e & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return PX_ERR_TIMEOUT;
    case SQLITE_NOMEM:
        return PX_ERR_NOMEM;
    case SQLITE_CONSTRAINT:
        return PX_ERR_INVALID;
    default:
        return PX_ERR_UNAVAILABLE;
    }
}

static px_rc connect(struct sqlite_product *p, bool create, sqlite3 **out)
{
    return px_sqlite_store_connect(p->path, p->timeout_ms, create, out);
}

static void product_close(void *impl)
{
    struct sqlite_product *p = impl;
    if (!p)
        return;
    free(p->path);
    free(p);
}

static px_rc migrate(sqlite3 *db, char *err, size_t errlen, const char *path)
{
    return px_sqlite_store_migrate(db, "PRODUCT_STORE", path, migrations, SCHEMA_VERSION, err,
                                   errlen);
}

static px_rc product_open(const char *target, const struct px_product_opts *opts, void **impl,
                          char *err, size_t errlen)
{
    *impl = NULL;
    struct sqlite_product *p = calloc(1, sizeof(*p));
    if (!p || !(p->path = strdup(target))) {
        free(p);
        snprintf(err, errlen, "PRODUCT_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    p->timeout_ms =
        opts->timeout_ms > 0 && opts->timeout_ms <= TIMEOUT_MAX ? opts->timeout_ms : 5000;
    sqlite3 *db = NULL;
    px_rc rc = connect(p, opts->create, &db);
    if (rc) {
        snprintf(err, errlen, "PRODUCT_STORE: cannot open %s (run: pricing db migrate)", target);
    } else if (opts->create) {
        rc = migrate(db, err, errlen, target);
    } else {
        sqlite3_stmt *st = NULL;
        /* A file from before v3 has no tenant column: migrate first. */
        if (sqlite3_prepare_v2(db, GET_SQL, -1, &st, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "PRODUCT_STORE: no product table in %s (run: pricing db migrate)",
                     target);
            rc = PX_ERR_UNAVAILABLE;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close_v2(db);
    if (rc) {
        product_close(p);
        return rc;
    }
    *impl = p;
    return PX_OK;
}

static const char *col_dup(sqlite3_stmt *st, int col, struct px_arena *a)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    return px_arena_strndup(a, v ? (const char *)v : "", (size_t)sqlite3_column_bytes(st, col));
}

static void col_copy(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", v ? (const char *)v : "");
}

static px_rc row_to_product(sqlite3_stmt *st, struct px_arena *a, struct px_product *p)
{
    memset(p, 0, sizeof(*p));
    col_copy(st, 0, p->id, sizeof(p->id));
    p->name = col_dup(st, 1, a);
    p->description = col_dup(st, 2, a);
    p->category = col_dup(st, 3, a);
    col_copy(st, 4, p->status, sizeof(p->status));
    p->attributes = col_dup(st, 5, a);
    p->has_price = sqlite3_column_type(st, 6) != SQLITE_NULL;
    col_copy(st, 6, p->amount, sizeof(p->amount));
    col_copy(st, 7, p->currency, sizeof(p->currency));
    col_copy(st, 8, p->effective_from, sizeof(p->effective_from));
    p->version = (long)sqlite3_column_int64(st, 9);
    col_copy(st, 10, p->created_at, sizeof(p->created_at));
    col_copy(st, 11, p->updated_at, sizeof(p->updated_at));
    return p->name && p->description && p->category && p->attributes ? PX_OK : PX_ERR_NOMEM;
}

static const char *tenant_of(const char *tenant)
{
    return tenant && tenant[0] ? tenant : "default";
}

static px_rc get_on(sqlite3 *db, const char *tenant, const char *id, struct px_arena *a,
                    struct px_product *out)
{
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v2(db, GET_SQL, -1, &st, NULL);
    if (e != SQLITE_OK)
        return map_error(e);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, tenant_of(tenant), -1, SQLITE_STATIC);
    e = sqlite3_step(st);
    px_rc rc = e == SQLITE_ROW    ? row_to_product(st, a, out)
               : e == SQLITE_DONE ? PX_ERR_NOT_FOUND
                                  : map_error(e);
    sqlite3_finalize(st);
    return rc;
}

static px_rc product_get(void *impl, const char *tenant, const char *id, struct px_arena *a,
                         struct px_product *out)
{
    sqlite3 *db = NULL;
    px_rc rc = connect(impl, false, &db);
    if (!rc)
        rc = get_on(db, tenant, id, a, out);
    sqlite3_close_v2(db);
    return rc;
}

static px_rc product_list(void *impl, const struct px_product_query *q, struct px_arena *a,
                          struct px_product **items, size_t *n, bool *more)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(impl, false, &db);
    if (rc)
        return rc;
    struct px_product *out = px_arena_calloc(a, (size_t)q->limit * sizeof(*out));
    int e = out ? sqlite3_prepare_v2(db, LIST_SQL, -1, &st, NULL) : SQLITE_NOMEM;
    if (e != SQLITE_OK) {
        rc = map_error(e);
        goto out;
    }
    if (q->category)
        sqlite3_bind_text(st, 1, q->category, -1, SQLITE_STATIC);
    if (q->status)
        sqlite3_bind_text(st, 2, q->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, q->after_id ? q->after_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->limit + 1);
    sqlite3_bind_text(st, 13, tenant_of(q->tenant), -1, SQLITE_STATIC);
    size_t k = 0;
    while (!rc && (e = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == (size_t)q->limit) {
            *more = true;
            break;
        }
        rc = row_to_product(st, a, &out[k++]);
    }
    if (!rc && e != SQLITE_ROW && e != SQLITE_DONE)
        rc = map_error(e);
    *items = out;
    *n = k;
out:
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    return rc;
}

static int put_on(sqlite3 *db, const char *sql, const char *tenant, const struct px_product *p)
{
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (e != SQLITE_OK)
        return e;
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->name ? p->name : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->description ? p->description : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->category ? p->category : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, p->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, p->attributes ? p->attributes : "{}", -1, SQLITE_STATIC);
    if (p->has_price) {
        sqlite3_bind_text(st, 7, p->amount, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, p->currency, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, p->effective_from, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 10, p->version);
    sqlite3_bind_text(st, 11, p->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, p->updated_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 13, tenant_of(tenant), -1, SQLITE_STATIC);
    e = sqlite3_step(st);
    sqlite3_finalize(st);
    return e == SQLITE_DONE ? SQLITE_OK : e;
}

static px_rc product_apply(void *impl, const char *tenant, const char *id,
                           enum px_product_expect expect, long version, px_product_apply_fn fn,
                           void *arg, struct px_arena *a)
{
    sqlite3 *db = NULL;
    struct px_product cur, next;
    px_rc rc = connect(impl, false, &db);
    if (rc)
        return rc;
    int e = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (e != SQLITE_OK) {
        rc = map_error(e);
        goto out;
    }
    rc = get_on(db, tenant, id, a, &cur);
    bool exists = rc == PX_OK;
    if (rc && rc != PX_ERR_NOT_FOUND)
        goto out;
    rc = PX_OK;
    if (expect == PX_PRODUCT_MUST_NOT_EXIST && exists)
        rc = PX_ERR_CONFLICT;
    else if (expect == PX_PRODUCT_AT_VERSION && !exists)
        rc = PX_ERR_NOT_FOUND;
    else if (expect == PX_PRODUCT_AT_VERSION && version >= 0 && cur.version != version)
        rc = PX_ERR_STALE;
    if (rc)
        goto out;
    memset(&next, 0, sizeof(next));
    rc = fn(arg, exists ? &cur : NULL, &next);
    if (rc)
        goto out;
    e = put_on(db, PUT_SQL, tenant, &next);
    /* The change's event commits with it, or neither does (outbox.h). */
    if (e == SQLITE_OK && next.event)
        e = px_outbox_sqlite_insert(db, next.event);
    if (e == SQLITE_OK)
        e = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (e != SQLITE_OK)
        rc = PX_ERR_IO; /* the callback's effects are durable: the caller records the failure */
out:
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close_v2(db);
    return rc;
}

static const char *opt_text(sqlite3_stmt *st, int col, struct px_arena *a)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NULL : col_dup(st, col, a);
}

static px_rc product_idem_begin(void *impl, const char *principal, const char *route,
                                const char *key, const char *body_hash, int64_t now_s,
                                struct px_arena *a, enum px_idem_state *state,
                                struct px_idem_saved *saved)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(impl, false, &db);
    if (rc)
        return rc;
    int e = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (e == SQLITE_OK) {
        /* The sweep: expired keys go with the next use of any key. */
        e = sqlite3_prepare_v2(db, "DELETE FROM idempotency WHERE expires_at <= ?1", -1, &st, NULL);
        if (e == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, now_s);
            e = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (e == SQLITE_OK)
        e = sqlite3_prepare_v2(db,
                               "SELECT body_hash, done, status, body, etag, location, created_at"
                               " FROM idempotency WHERE principal = ?1 AND route = ?2 AND key = ?3",
                               -1, &st, NULL);
    if (e != SQLITE_OK) {
        rc = map_error(e);
        goto out;
    }
    sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    e = sqlite3_step(st);
    bool take = false;
    if (e == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(st, 0);
        bool done = sqlite3_column_int(st, 1) != 0;
        if (!h || strcmp((const char *)h, body_hash) != 0) {
            *state = PX_IDEM_MISMATCH;
        } else if (done) {
            *state = PX_IDEM_REPLAY;
            saved->status = sqlite3_column_int(st, 2);
            saved->body = opt_text(st, 3, a);
            saved->etag = opt_text(st, 4, a);
            saved->location = opt_text(st, 5, a);
            if (!saved->body)
                rc = PX_ERR_NOMEM;
        } else if (now_s - sqlite3_column_int64(st, 6) > PX_IDEM_LEASE_S) {
            take = true; /* its first request died without an answer */
        } else {
            *state = PX_IDEM_IN_FLIGHT;
        }
    } else if (e == SQLITE_DONE) {
        take = true;
    } else {
        rc = map_error(e);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!rc && take) {
        e = sqlite3_prepare_v2(db,
                               "INSERT OR REPLACE INTO idempotency (principal, route, key,"
                               " body_hash, done, created_at, expires_at)"
                               " VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)",
                               -1, &st, NULL);
        if (e == SQLITE_OK) {
            sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, body_hash, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, now_s);
            sqlite3_bind_int64(st, 6, now_s + PX_IDEM_TTL_S);
            e = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        }
        if (e != SQLITE_OK)
            rc = map_error(e);
        *state = PX_IDEM_NEW;
    }
    if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = PX_ERR_IO;
out:
    sqlite3_finalize(st);
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close_v2(db);
    return rc;
}

static px_rc product_idem_finish(void *impl, const char *principal, const char *route,
                                 const char *key, const struct px_idem_saved *saved, int64_t now_s)
{
    PX_UNUSED(now_s);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(impl, false, &db);
    if (rc)
        return rc;
    int e = sqlite3_prepare_v2(db,
                               "UPDATE idempotency SET done = 1, status = ?4, body = ?5, etag = ?6,"
                               " location = ?7 WHERE principal = ?1 AND route = ?2 AND key = ?3",
                               -1, &st, NULL);
    if (e == SQLITE_OK) {
        sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, saved->status);
        sqlite3_bind_text(st, 5, saved->body ? saved->body : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, saved->etag, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, saved->location, -1, SQLITE_STATIC);
        e = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    if (e != SQLITE_OK)
        rc = map_error(e);
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    return rc;
}

static void product_idem_abort(void *impl, const char *principal, const char *route,
                               const char *key)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (connect(impl, false, &db))
        return;
    if (sqlite3_prepare_v2(db,
                           "DELETE FROM idempotency WHERE principal = ?1 AND route = ?2 AND key = "
                           "?3 AND done = 0",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, principal, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
}

static px_rc product_seed(void *impl, const char *tenant, const struct px_product *items, size_t n,
                          char *err, size_t errlen)
{
    struct sqlite_product *p = impl;
    sqlite3 *db = NULL;
    px_rc rc = connect(p, false, &db);
    if (rc) {
        snprintf(err, errlen, "PRODUCT_STORE: cannot open %s", p->path);
        return rc;
    }
    int e = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; e == SQLITE_OK && i < n; i++)
        e = put_on(db, SEED_SQL, tenant, &items[i]);
    if (e == SQLITE_OK)
        e = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (e != SQLITE_OK) {
        snprintf(err, errlen, "PRODUCT_STORE: cannot load the catalogue into %s: %s", p->path,
                 sqlite3_errmsg(db));
        rc = map_error(e);
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close_v2(db);
    return rc;
}

static px_rc product_ping(void *impl)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(impl, false, &db);
    if (rc)
        return rc;
    int e = sqlite3_prepare_v2(db, "SELECT 1 FROM products LIMIT 1", -1, &st, NULL);
    if (e == SQLITE_OK)
        e = sqlite3_step(st);
    if (e != SQLITE_ROW && e != SQLITE_DONE)
        rc = map_error(e);
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    return rc;
}

const struct px_product_ops px_product_sqlite_ops = {
    .scheme = "sqlite",
    .open = product_open,
    .close = product_close,
    .get = product_get,
    .list = product_list,
    .apply = product_apply,
    .idem_begin = product_idem_begin,
    .idem_finish = product_idem_finish,
    .idem_abort = product_idem_abort,
    .seed = product_seed,
    .ping = product_ping,
};
