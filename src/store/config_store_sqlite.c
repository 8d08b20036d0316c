/* config_store_sqlite.c: the embedded configuration store (spec "sqlite:PATH").
 *
 * Like product_sqlite.c: each operation opens its own connection (WAL,
 * synchronous=FULL) and closes it, and a write runs in one BEGIN IMMEDIATE
 * transaction, so the file's write lock serialises writers in this process
 * or another for the whole check-callback-store sequence: of two writers
 * holding the same If-Match (or both If-None-Match: *) exactly one finds the
 * item as it expects. Every value is a bound parameter. */
#include "config_store.h"
#include "sqlite_store.h"
#include "outbox.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 2
#define TIMEOUT_MAX    60000

static const char *const migrations[SCHEMA_VERSION] = {
    /* tenant first in the key: a tenant's items are one range (CONTRACT §12) */
    "CREATE TABLE IF NOT EXISTS config_items ("
    " tenant TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " version INTEGER NOT NULL CHECK (version >= 1),"
    " updated_at TEXT NOT NULL, updated_by TEXT NOT NULL,"
    " PRIMARY KEY (tenant, key)) WITHOUT ROWID;",
    /* v2: the outbox of pricing.config.changed.v1 events, filled in the write's transaction,
     * so the relay reads it from this file (CONFIG_STORE). */
    px_outbox_sqlite_schema,
};

#define COLS "SELECT key, value, version, updated_at, updated_by FROM config_items "
static const char GET_SQL[] = COLS "WHERE tenant = ?1 AND key = ?2";
static const char LIST_SQL[] = COLS "WHERE tenant = ?1 AND substr(key, 1, length(?2)) = ?2"
                                    " ORDER BY key LIMIT ?3";
static const char PUT_SQL[] =
    "INSERT INTO config_items (tenant, key, value, version, updated_at, updated_by)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant, key) DO UPDATE SET"
    " value = excluded.value, version = excluded.version, updated_at = excluded.updated_at,"
    " updated_by = excluded.updated_by";

struct sqlite_config {
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
    default:
        return PX_ERR_UNAVAILABLE;
    }
}

static px_rc connect(struct sqlite_config *p, bool create, sqlite3 **out)
{
    return px_sqlite_store_connect(p->path, p->timeout_ms, create, out);
}

static void config_close(void *impl)
{
    struct sqlite_config *p = impl;
    if (!p)
        return;
    free(p->path);
    free(p);
}

static px_rc migrate(sqlite3 *db, char *err, size_t errlen, const char *path)
{
    return px_sqlite_store_migrate(db, "CONFIG_STORE", path, migrations, SCHEMA_VERSION, err,
                                   errlen);
}

static px_rc config_open(const char *target, const struct px_config_store_opts *opts, void **impl,
                         char *err, size_t errlen)
{
    *impl = NULL;
    struct sqlite_config *p = calloc(1, sizeof(*p));
    if (!p || !(p->path = strdup(target))) {
        free(p);
        snprintf(err, errlen, "CONFIG_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    p->timeout_ms =
        opts->timeout_ms > 0 && opts->timeout_ms <= TIMEOUT_MAX ? opts->timeout_ms : 5000;
    sqlite3 *db = NULL;
    px_rc rc = connect(p, opts->create, &db);
    if (rc) {
        snprintf(err, errlen, "CONFIG_STORE: cannot open %s (run: pricing db migrate)", target);
    } else if (opts->create) {
        rc = migrate(db, err, errlen, target);
    } else {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, GET_SQL, -1, &st, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "CONFIG_STORE: no config table in %s (run: pricing db migrate)",
                     target);
            rc = PX_ERR_UNAVAILABLE;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close_v2(db);
    if (rc) {
        config_close(p);
        return rc;
    }
    *impl = p;
    return PX_OK;
}

static px_rc row_to_item(sqlite3_stmt *st, struct px_arena *a, struct px_config_item *it)
{
    memset(it, 0, sizeof(*it));
    const unsigned char *k = sqlite3_column_text(st, 0);
    snprintf(it->key, sizeof(it->key), "%s", k ? (const char *)k : "");
    const unsigned char *v = sqlite3_column_text(st, 1);
    it->value = px_arena_strndup(a, v ? (const char *)v : "null",
                                 v ? (size_t)sqlite3_column_bytes(st, 1) : 4);
    it->version = (long)sqlite3_column_int64(st, 2);
    const unsigned char *u = sqlite3_column_text(st, 3);
    snprintf(it->updated_at, sizeof(it->updated_at), "%s", u ? (const char *)u : "");
    const unsigned char *b = sqlite3_column_text(st, 4);
    it->updated_by = px_arena_strdup(a, b ? (const char *)b : "");
    return it->value && it->updated_by ? PX_OK : PX_ERR_NOMEM;
}

static px_rc get_on(sqlite3 *db, const char *tenant, const char *key, struct px_arena *a,
                    struct px_config_item *out)
{
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v2(db, GET_SQL, -1, &st, NULL);
    if (e != SQLITE_OK)
        return map_error(e);
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    e = sqlite3_step(st);
    px_rc rc = e == SQLITE_ROW    ? row_to_item(st, a, out)
               : e == SQLITE_DONE ? PX_ERR_NOT_FOUND
                                  : map_error(e);
    sqlite3_finalize(st);
    return rc;
}

static px_rc config_get(void *impl, const char *tenant, const char *key, struct px_arena *a,
                        struct px_config_item *out)
{
    sqlite3 *db = NULL;
    px_rc rc = connect(impl, false, &db);
    if (!rc)
        rc = get_on(db, tenant, key, a, out);
    sqlite3_close_v2(db);
    return rc;
}

static px_rc config_list(void *impl, const char *tenant, const char *prefix, struct px_arena *a,
                         struct px_config_item **items, size_t *n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(impl, false, &db);
    if (rc)
        return rc;
    size_t cap = 0, k = 0;
    struct px_config_item *out = NULL;
    int e = sqlite3_prepare_v2(db, LIST_SQL, -1, &st, NULL);
    if (e != SQLITE_OK) {
        rc = map_error(e);
        goto out;
    }
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, PX_CONFIG_ITEMS_MAX + 1);
    while (!rc && (e = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == PX_CONFIG_ITEMS_MAX) {
            rc = PX_ERR_TOO_LARGE;
            break;
        }
        if (k == cap) {
            /* arena growth: copy into a doubled array (the old one dies with the arena) */
            size_t ncap = cap ? cap * 2 : 32;
            struct px_config_item *bigger = px_arena_alloc(a, ncap * sizeof(*bigger));
            if (!bigger) {
                rc = PX_ERR_NOMEM;
                break;
            }
            if (k)
                memcpy(bigger, out, k * sizeof(*out));
            out = bigger;
            cap = ncap;
        }
        rc = row_to_item(st, a, &out[k++]);
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

static int put_on(sqlite3 *db, const char *tenant, const struct px_config_item *it)
{
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v2(db, PUT_SQL, -1, &st, NULL);
    if (e != SQLITE_OK)
        return e;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, it->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, it->value ? it->value : "null", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, it->version);
    sqlite3_bind_text(st, 5, it->updated_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, it->updated_by ? it->updated_by : "", -1, SQLITE_STATIC);
    e = sqlite3_step(st);
    sqlite3_finalize(st);
    return e == SQLITE_DONE ? SQLITE_OK : e;
}

static px_rc config_apply(void *impl, const char *tenant, const char *key,
                          enum px_config_expect expect, long version, px_config_apply_fn fn,
                          void *arg, struct px_arena *a)
{
    sqlite3 *db = NULL;
    struct px_config_item cur, next;
    px_rc rc = connect(impl, false, &db);
    if (rc)
        return rc;
    int e = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (e != SQLITE_OK) {
        rc = map_error(e);
        goto out;
    }
    rc = get_on(db, tenant, key, a, &cur);
    bool exists = rc == PX_OK;
    if (rc && rc != PX_ERR_NOT_FOUND)
        goto out;
    rc = PX_OK;
    if (expect == PX_CONFIG_MUST_NOT_EXIST && exists)
        rc = PX_ERR_CONFLICT;
    else if (expect == PX_CONFIG_AT_VERSION && !exists)
        rc = PX_ERR_NOT_FOUND;
    else if (expect == PX_CONFIG_AT_VERSION && version >= 0 && cur.version != version)
        rc = PX_ERR_STALE;
    if (rc)
        goto out;
    memset(&next, 0, sizeof(next));
    snprintf(next.key, sizeof(next.key), "%s", key);
    next.version = exists ? cur.version + 1 : 1;
    rc = fn(arg, exists ? &cur : NULL, &next);
    if (rc)
        goto out;
    e = put_on(db, tenant, &next);
    /* The change's event commits with it, or neither does (outbox.h). */
    if (e == SQLITE_OK && next.event)
        e = px_outbox_sqlite_insert(db, next.event);
    if (e == SQLITE_OK)
        e = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (e != SQLITE_OK)
        rc = PX_ERR_IO; /* the callback's effects are durable: the caller records the failure */
out:
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close_v2(db);
    return rc;
}

static px_rc config_ping(void *impl)
{
    sqlite3 *db = NULL;
    px_rc rc = connect(impl, false, &db);
    sqlite3_stmt *st = NULL;
    if (!rc &&
        sqlite3_prepare_v2(db, "SELECT 1 FROM config_items LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        rc = PX_ERR_UNAVAILABLE;
    if (!rc) {
        int e = sqlite3_step(st);
        if (e != SQLITE_ROW && e != SQLITE_DONE)
            rc = map_error(e);
    }
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    return rc;
}

const struct px_config_store_ops px_config_store_sqlite_ops = {
    .open = config_open,
    .close = config_close,
    .get = config_get,
    .list = config_list,
    .apply = config_apply,
    .ping = config_ping,
};
