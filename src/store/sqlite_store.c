#include "sqlite_store.h"

#include <pthread.h>
#include <stdio.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_sqlite(void)
{
    /* N = 0: each page is allocated when first needed. SQLITE_MISUSE when
     * SQLite is initialised already (an embedder did it): its choice stands. */
    (void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

void px_sqlite_init(void)
{
    pthread_once(&init_once, init_sqlite);
}

px_rc px_sqlite_store_connect(const char *path, long timeout_ms, bool create, sqlite3 **out)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    sqlite3 *db = NULL;
    *out = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        sqlite3_close_v2(db);
        return PX_ERR_UNAVAILABLE;
    }
    sqlite3_busy_timeout(db, (int)timeout_ms);
    sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    *out = db;
    return PX_OK;
}

px_rc px_sqlite_store_migrate(sqlite3 *db, const char *setting, const char *path,
                              const char *const *migrations, int nmigrations, char *err,
                              size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot lock %s: %s", setting, path, sqlite3_errmsg(db));
        return PX_ERR_UNAVAILABLE;
    }
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    px_rc rc = PX_OK;
    if (version < 0 || version > nmigrations) {
        snprintf(err, errlen, "%s: %s has schema version %d, not one this binary knows", setting,
                 path, version);
        rc = PX_ERR_CONFIG;
    }
    for (int v = version; !rc && v < nmigrations; v++) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: schema migration %d on %s failed: %s", setting, v + 1, path,
                     sqlite3_errmsg(db));
            rc = PX_ERR_IO;
        }
    }
    if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot commit to %s: %s", setting, path, sqlite3_errmsg(db));
        rc = PX_ERR_IO;
    }
    if (rc && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}
