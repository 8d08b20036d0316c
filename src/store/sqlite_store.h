/* sqlite_store.h: opening and migrating the embedded SQLite stores of the
 * write functions (products, config): one connection per call, WAL,
 * synchronous=FULL, schema versions in PRAGMA user_version. */
#ifndef PX_SQLITE_STORE_H
#define PX_SQLITE_STORE_H

#include "../kernel/px.h"

#include <sqlite3.h>
#include <stdbool.h>

/* Sets SQLite's process-wide options once, before the first connection: no
 * page-cache bulk allocation per connection (SQLite would take and touch 20
 * page slots at the first read of each file, about 34 page faults of a
 * Lambda cold start for pages a look-up never uses). Thread-safe; a no-op
 * once SQLite is initialised. */
void px_sqlite_init(void);

/* Opens path read-write (creating it when create), with the busy timeout and
 * synchronous=FULL. *out owned by the caller (sqlite3_close_v2). */
px_rc px_sqlite_store_connect(const char *path, long timeout_ms, bool create, sqlite3 **out) PX_WUR;

/* Puts db in WAL mode and brings its schema from PRAGMA user_version to
 * nmigrations, running migrations[v] for each missing version in one
 * transaction. setting names the store in messages (e.g. "PRODUCT_STORE").
 * PX_ERR_CONFIG for a version this binary does not know. */
px_rc px_sqlite_store_migrate(sqlite3 *db, const char *setting, const char *path,
                              const char *const *migrations, int nmigrations, char *err,
                              size_t errlen) PX_WUR;

#endif
