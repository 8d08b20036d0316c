/* px_test.h: fixtures shared by the unit tests. Header only, because every
 * tests/unit/test_*.c is an executable of its own; a test that does not call
 * one of these functions must still compile warning-free, hence `unused`.
 * The caller owns every buffer passed in; nothing here allocates. */
#ifndef PX_TEST_H
#define PX_TEST_H

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kernel/px.h"
#include "store/audit.h"
#include "store/price.h"

#define PX_TEST_UNUSED __attribute__((unused))

#ifndef PX_TEST_DATA_DIR
#define PX_TEST_DATA_DIR "tests/data" /* CMake passes the absolute path */
#endif

/* The test vectors directory: $PX_TESTDATA, else the repository's tests/data. */
PX_TEST_UNUSED static const char *px_test_data(void)
{
    const char *d = getenv("PX_TESTDATA");
    return d && *d ? d : PX_TEST_DATA_DIR;
}

/* Creates a fresh directory /tmp/px-NAME-XXXXXX, its path in dir (n bytes); 0 or -1. */
PX_TEST_UNUSED static int px_test_tmpdir(char *dir, size_t n, const char *name)
{
    int w = snprintf(dir, n, "/tmp/px-%s-XXXXXX", name);
    if (w < 0 || (size_t)w >= n)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes the files directly in dir, then dir itself (sub-directories are not walked). */
PX_TEST_UNUSED static void px_test_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Removes the SQLite database file db and its journal, WAL and shared-memory files. */
PX_TEST_UNUSED static void px_test_unlink_sqlite(const char *db)
{
    const char *suffix[] = {"", "-journal", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", db, suffix[i]);
        unlink(p);
    }
}

/* Creates the SQLite price store at price_path holding PROD-101 (99.99 USD) and
 * the audit store audit_spec, then closes both; 0, or -1 with the reason on stderr. */
PX_TEST_UNUSED static int px_test_make_stores(const char *price_path, const char *audit_spec,
                                              long audit_timeout_ms)
{
    char spec[300], err[512];
    snprintf(spec, sizeof(spec), "sqlite:%s", price_path);
    struct px_price_store *ps = NULL;
    const struct px_price_opts po = {.create = true, .timeout_ms = 2000};
    if (px_price_open(spec, &po, &ps, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "price store: %s\n", err);
        return -1;
    }
    px_price_close(ps);
    sqlite3 *db = NULL;
    int bad = sqlite3_open(price_path, &db) != SQLITE_OK ||
              sqlite3_exec(db,
                           "INSERT INTO product_prices (product_id, price, currency)"
                           " VALUES ('PROD-101', '99.99', 'USD')",
                           NULL, NULL, NULL) != SQLITE_OK;
    sqlite3_close(db);
    if (bad)
        return -1;
    struct px_audit_store *as = NULL;
    const struct px_audit_opts ao = {.create = true, .timeout_ms = audit_timeout_ms};
    if (px_audit_open(audit_spec, &ao, &as, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "audit store: %s\n", err);
        return -1;
    }
    px_audit_close(as);
    return 0;
}

#endif
