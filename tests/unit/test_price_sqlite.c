/* test_price_sqlite.c: the embedded price store against real SQLite files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/price.h"

#include "px_test.h"

struct fixture {
    char dir[64];
    char db[128];
    char spec[140];
    char sql[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (px_test_tmpdir(f->dir, sizeof(f->dir), "price")) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/prices.db", f->dir);
    snprintf(f->spec, sizeof(f->spec), "sqlite:%s", f->db);
    snprintf(f->sql, sizeof(f->sql), "%s/extra.sql", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    px_test_unlink_sqlite(f->db);
    unlink(f->sql);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void seed_path(char *out, size_t n)
{
    const char *src = getenv("PX_SOURCE_DIR");
    snprintf(out, n, "%s/infra/seed/prices.sql", src ? src : ".");
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static long count_rows(const char *db)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*) FROM product_prices", -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static struct px_price_store *open_seeded(struct fixture *f, long timeout_ms)
{
    struct px_price_opts opts = {.pool_size = 2, .timeout_ms = timeout_ms, .create = true};
    struct px_price_store *s = NULL;
    char err[256] = "", sql[512];
    px_rc rc = px_price_open(f->spec, &opts, &s, err, sizeof(err));
    if (rc)
        fail_msg("open: %s", err);
    seed_path(sql, sizeof(sql));
    rc = px_price_seed(s, sql, err, sizeof(err));
    if (rc)
        fail_msg("seed: %s", err);
    return s;
}

static void expect_price(struct px_price_store *s, const char *id, const char *price,
                         const char *cur)
{
    struct px_price p;
    memset(&p, 0, sizeof(p));
    px_rc rc = px_price_get(s, id, &p);
    if (rc)
        fail_msg("get %s: %s", id, px_strerror(rc));
    assert_string_equal(p.product_id, id);
    assert_string_equal(p.price, price);
    assert_string_equal(p.currency, cur);
}

static void test_seed_and_get(void **state)
{
    struct fixture *f = *state;
    struct px_price_store *s = open_seeded(f, 1000);
    expect_price(s, "PROD-101", "99.99", "USD");
    expect_price(s, "PROD-102", "100.00", "USD"); /* scale kept: text, not a double */
    expect_price(s, "PROD-103", "0.5", "EUR");
    expect_price(s, "PROD-104", "1999", "JPY");
    expect_price(s, "PROD-105", "12.345", "KWD");
    struct px_price p;
    assert_int_equal(px_price_get(s, "PROD-10000", &p), PX_OK);
    assert_int_equal(px_price_get(s, "PROD-99999", &p), PX_ERR_NOT_FOUND);
    assert_int_equal(px_price_get(s, "prod-101", &p), PX_ERR_NOT_FOUND);
    assert_int_equal(px_price_ping(s), PX_OK);
    assert_int_equal(count_rows(f->db), 10005);
    px_price_close(s);
}

static void test_bound_parameter(void **state)
{
    struct fixture *f = *state;
    struct px_price_store *s = open_seeded(f, 1000);
    struct px_price p;
    /* Were the id pasted into the SQL, these would match a row or fail to parse. */
    assert_int_equal(px_price_get(s, "' OR 1=1 --", &p), PX_ERR_NOT_FOUND);
    assert_int_equal(px_price_get(s, "PROD-101' --", &p), PX_ERR_NOT_FOUND);
    assert_int_equal(px_price_get(s, "x'; DROP TABLE product_prices; --", &p), PX_ERR_NOT_FOUND);
    assert_int_equal(px_price_get(s, "%", &p), PX_ERR_NOT_FOUND);
    assert_int_equal(px_price_get(s, "", &p), PX_ERR_INVALID);
    char long_id[PX_MAX_PRODUCT_ID + 2];
    memset(long_id, 'A', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(px_price_get(s, long_id, &p), PX_ERR_INVALID);
    expect_price(s, "PROD-101", "99.99", "USD");
    px_price_close(s);
}

static void test_seed_idempotent_and_atomic(void **state)
{
    struct fixture *f = *state;
    struct px_price_store *s = open_seeded(f, 1000);
    char err[256] = "", sql[512];
    seed_path(sql, sizeof(sql));
    assert_int_equal(px_price_seed(s, sql, err, sizeof(err)), PX_OK);
    assert_int_equal(count_rows(f->db), 10005);

    /* An upsert changes a row; a later bad row undoes the whole file. */
    write_file(f->sql, "INSERT INTO product_prices VALUES ('NEW-1','1.00','USD');\n"
                       "INSERT INTO product_prices VALUES ('PROD-101','5.00','USD')"
                       " ON CONFLICT (product_id) DO UPDATE SET price = excluded.price;\n"
                       "INSERT INTO product_prices VALUES ('NEW-2','1e5','USD');\n");
    err[0] = '\0';
    assert_int_not_equal(px_price_seed(s, f->sql, err, sizeof(err)), PX_OK);
    assert_non_null(strstr(err, "CHECK"));
    struct px_price p;
    assert_int_equal(px_price_get(s, "NEW-1", &p), PX_ERR_NOT_FOUND);
    expect_price(s, "PROD-101", "99.99", "USD");

    /* Currency and id checks hold too. */
    write_file(f->sql, "INSERT INTO product_prices VALUES ('NEW-3','1.00','usd');");
    assert_int_not_equal(px_price_seed(s, f->sql, err, sizeof(err)), PX_OK);
    write_file(f->sql, "INSERT INTO product_prices VALUES ('','1.00','USD');");
    assert_int_not_equal(px_price_seed(s, f->sql, err, sizeof(err)), PX_OK);
    write_file(f->sql, "INSERT INTO product_prices VALUES ('-X','1.00','USD');");
    assert_int_not_equal(px_price_seed(s, f->sql, err, sizeof(err)), PX_OK);
    write_file(f->sql, "INSERT INTO product_prices VALUES ('A B','1.00','USD');");
    assert_int_not_equal(px_price_seed(s, f->sql, err, sizeof(err)), PX_OK);

    write_file(f->sql, "INSERT INTO product_prices VALUES ('NEW-4','007.50','CHF');");
    assert_int_equal(px_price_seed(s, f->sql, err, sizeof(err)), PX_OK);
    expect_price(s, "NEW-4", "007.50", "CHF");

    err[0] = '\0';
    assert_int_not_equal(px_price_seed(s, "/nonexistent/seed.sql", err, sizeof(err)), PX_OK);
    assert_non_null(strstr(err, "/nonexistent/seed.sql"));
    px_price_close(s);
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;
    struct px_price_opts opts = {.pool_size = 2, .timeout_ms = 500};
    struct px_price_store *s = NULL;
    char err[256] = "";
    assert_int_not_equal(px_price_open(f->spec, &opts, &s, err, sizeof(err)), PX_OK);
    assert_null(s);
    assert_non_null(strstr(err, f->db));
    assert_non_null(strstr(err, "pricing db seed"));
    /* A read-only open must not leave an empty file behind. */
    assert_int_not_equal(access(f->db, F_OK), 0);
}

static void test_missing_table(void **state)
{
    struct fixture *f = *state;
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TABLE other (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    struct px_price_opts opts = {.pool_size = 2, .timeout_ms = 500};
    struct px_price_store *s = NULL;
    char err[256] = "";
    assert_int_not_equal(px_price_open(f->spec, &opts, &s, err, sizeof(err)), PX_OK);
    char want[200];
    snprintf(want, sizeof(want), "no price table in %s (run: pricing db seed)", f->db);
    assert_non_null(strstr(err, want));
}

/* The price file is in rollback-journal mode. A writer that has not reached
 * its commit (a seed running beside a live server) does not block look-ups;
 * one holding the exclusive lock makes them wait at most the bound. */
static void test_writer_and_reads(void **state)
{
    struct fixture *f = *state;
    struct px_price_store *s = open_seeded(f, 150);
    struct px_price p;
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(h, "UPDATE product_prices SET price = '1.00' WHERE product_id = 'PROD-101'",
                     NULL, NULL, NULL),
        SQLITE_OK);
    /* Uncommitted: readers see the last committed price, at once. */
    expect_price(s, "PROD-101", "99.99", "USD");
    assert_int_equal(px_price_ping(s), PX_OK);
    assert_int_equal(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    expect_price(s, "PROD-101", "1.00", "USD");

    assert_int_equal(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    /* A row read since the last commit is still the committed state: answered
     * from the cache without the lock. One never read waits for the lock. */
    expect_price(s, "PROD-101", "1.00", "USD");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(px_price_get(s, "PROD-103", &p), PX_ERR_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms < 5000);
    assert_int_equal(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    expect_price(s, "PROD-101", "1.00", "USD");
    px_price_close(s);
}

/* Runs sql on db from a child process, as `db seed` or the sqlite3 tool would. */
static void change_in_child(const char *db, const char *sql)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *h = NULL;
        int ok = sqlite3_open(db, &h) == SQLITE_OK &&
                 sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK;
        sqlite3_close(h);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The look-up cache: every commit of another process is seen by the next
 * look-up, whatever was read before (updates, deletes, inserts, a rollback). */
static void test_changes_of_other_process(void **state)
{
    struct fixture *f = *state;
    struct px_price_store *s = open_seeded(f, 1000);
    struct px_price p;
    char prev[16] = "99.99";
    for (int round = 0; round < 50; round++) {
        char sql[160], want[16];
        snprintf(want, sizeof(want), "%d.25", round);
        snprintf(sql, sizeof(sql),
                 "UPDATE product_prices SET price = '%s' WHERE product_id = 'PROD-101'", want);
        expect_price(s, "PROD-101", prev, "USD");
        change_in_child(f->db, sql);
        expect_price(s, "PROD-101", want, "USD");
        expect_price(s, "PROD-101", want, "USD");
        memcpy(prev, want, sizeof(prev));
    }
    expect_price(s, "PROD-102", "100.00", "USD");
    change_in_child(f->db, "DELETE FROM product_prices WHERE product_id = 'PROD-102'");
    assert_int_equal(px_price_get(s, "PROD-102", &p), PX_ERR_NOT_FOUND);
    change_in_child(f->db, "INSERT INTO product_prices VALUES ('PROD-102', '7.00', 'EUR')");
    expect_price(s, "PROD-102", "7.00", "EUR");
    /* Rolled back: nothing changed, the cached row stays right. */
    change_in_child(f->db, "BEGIN; UPDATE product_prices SET price = '1' WHERE product_id = "
                           "'PROD-102'; ROLLBACK;");
    expect_price(s, "PROD-102", "7.00", "EUR");
    /* A change made through the store itself (product-service) is a commit
     * like any other: seen at once, withdrawal included. */
    expect_price(s, "PROD-104", "1999", "JPY");
    struct px_price_change ch = {.product_id = "PROD-104",
                                 .amount = "2000",
                                 .currency = "JPY",
                                 .effective_from = "2026-12-03T12:00:00.000Z",
                                 .changed_by = "test",
                                 .request_id = "r-1"};
    assert_int_equal(px_price_set(s, &ch), PX_OK);
    expect_price(s, "PROD-104", "2000", "JPY");
    ch.amount = ch.currency = NULL;
    assert_int_equal(px_price_set(s, &ch), PX_OK);
    assert_int_equal(px_price_get(s, "PROD-104", &p), PX_ERR_NOT_FOUND);
    /* Switched to WAL, changed, and switched back while nobody looked: the
     * switches are commits of their own, so the counter moved all the same.
     * (A switch back while this store reads the file in WAL mode is refused
     * by SQLite: its connections use the WAL.) */
    expect_price(s, "PROD-103", "0.5", "EUR");
    change_in_child(f->db, "PRAGMA journal_mode = WAL; UPDATE product_prices SET price = '3.00' "
                           "WHERE product_id = 'PROD-103'; PRAGMA journal_mode = DELETE;");
    expect_price(s, "PROD-102", "7.00", "EUR");
    expect_price(s, "PROD-103", "3.00", "EUR");
    /* Put in WAL mode by another tool: the counter is not kept there, every
     * look-up goes to SQLite, and changes are still seen. */
    change_in_child(f->db, "PRAGMA journal_mode = WAL");
    change_in_child(f->db,
                    "UPDATE product_prices SET price = '8.00' WHERE product_id = 'PROD-102'");
    expect_price(s, "PROD-102", "8.00", "EUR");
    change_in_child(f->db,
                    "UPDATE product_prices SET price = '9.00' WHERE product_id = 'PROD-102'");
    expect_price(s, "PROD-102", "9.00", "EUR");
    px_price_close(s);
}

static bool exists(const char *db, const char *suffix)
{
    char p[200];
    snprintf(p, sizeof(p), "%s%s", db, suffix);
    return access(p, F_OK) == 0;
}

/* Byte 18 of a SQLite file: 1 = rollback journal, 2 = WAL (file format). */
static int file_format(const char *db)
{
    unsigned char hdr[20];
    FILE *fp = fopen(db, "rb");
    assert_non_null(fp);
    size_t n = fread(hdr, 1, sizeof(hdr), fp);
    fclose(fp);
    assert_int_equal(n, sizeof(hdr));
    return hdr[18];
}

static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* After a seed the price file is one file: every row in it, in rollback-journal
 * mode, with no -wal, -shm or -journal beside it, so copying the file alone
 * copies the prices. */
static void test_seed_leaves_one_file(void **state)
{
    struct fixture *f = *state;
    struct px_price_store *s = open_seeded(f, 1000);
    px_price_close(s);
    assert_false(exists(f->db, "-wal"));
    assert_false(exists(f->db, "-shm"));
    assert_false(exists(f->db, "-journal"));
    assert_int_equal(file_format(f->db), 1);
    char copy[160];
    snprintf(copy, sizeof(copy), "%s/copy.db", f->dir);
    copy_file(f->db, copy);
    assert_int_equal(count_rows(copy), 10005);
    unlink(copy);

    /* Migrations alone leave the same single file. */
    px_test_unlink_sqlite(f->db);
    struct px_price_opts opts = {.pool_size = 1, .timeout_ms = 1000, .create = true};
    char err[256] = "";
    assert_int_equal(px_price_open(f->spec, &opts, &s, err, sizeof(err)), PX_OK);
    assert_int_equal(px_price_migrate(s, err, sizeof(err)), PX_OK);
    struct px_price p;
    assert_int_equal(px_price_get(s, "PROD-101", &p), PX_ERR_NOT_FOUND);
    px_price_close(s);
    assert_false(exists(f->db, "-wal"));
    assert_int_equal(file_format(f->db), 1);
    assert_int_equal(count_rows(f->db), 0);
}

/* A file an older build left in WAL mode, its rows only in the -wal (the
 * read-only pool closed last, and a read-only connection cannot checkpoint),
 * is folded back into one rollback-journal file by the next seed. */
static void test_wal_file_converted(void **state)
{
    struct fixture *f = *state;
    sqlite3 *w = NULL, *r = NULL;
    assert_int_equal(sqlite3_open(f->db, &w), SQLITE_OK);
    assert_int_equal(sqlite3_exec(w,
                                  "PRAGMA journal_mode = WAL;"
                                  "CREATE TABLE product_prices (product_id TEXT PRIMARY KEY,"
                                  " price TEXT NOT NULL, currency TEXT NOT NULL) WITHOUT ROWID;"
                                  "INSERT INTO product_prices VALUES ('OLD-1', '2.50', 'EUR');"
                                  "PRAGMA user_version = 1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(f->db, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(r, "SELECT count(*) FROM product_prices", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(w);
    sqlite3_close(r);
    assert_true(exists(f->db, "-wal"));
    assert_int_equal(file_format(f->db), 2);

    struct px_price_opts opts = {.pool_size = 1, .timeout_ms = 1000, .create = true};
    struct px_price_store *s = NULL;
    char err[256] = "";
    assert_int_equal(px_price_open(f->spec, &opts, &s, err, sizeof(err)), PX_OK);
    assert_int_equal(px_price_seed_sql(s, "inline",
                                       "INSERT INTO product_prices VALUES ('NEW-1','1.00','USD');",
                                       err, sizeof(err)),
                     PX_OK);
    expect_price(s, "OLD-1", "2.50", "EUR");
    expect_price(s, "NEW-1", "1.00", "USD");
    px_price_close(s);
    assert_false(exists(f->db, "-wal"));
    assert_int_equal(file_format(f->db), 1);
    assert_int_equal(count_rows(f->db), 2);
}

/* In a forked child that may only read: drops root (which permission bits do
 * not stop) to nobody, checks the file really cannot be written, then serves
 * look-ups from it. Returns the step that failed, 0 when all passed. */
static int read_only_child(const char *db, const char *spec)
{
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
        return 10;
    int fd = open(db, O_RDWR);
    if (fd >= 0) {
        close(fd);
        return 11;
    }
    struct px_price_opts opts = {.pool_size = 2, .timeout_ms = 1000};
    struct px_price_store *s = NULL;
    char err[256] = "";
    if (px_price_open(spec, &opts, &s, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "read-only open: %s\n", err);
        return 12;
    }
    struct px_price p;
    int step = 0;
    if (px_price_get(s, "PROD-102", &p) != PX_OK || strcmp(p.price, "100.00") != 0)
        step = 13;
    else if (px_price_ping(s) != PX_OK)
        step = 14;
    else if (px_price_get(s, "NOPE-1", &p) != PX_ERR_NOT_FOUND)
        step = 15;
    px_price_close(s);
    return step;
}

/* The seeded file, installed alone (as a deployment copies it) mode 0444 in
 * a directory mode 0555, serves a user who may only read both: nothing beside
 * the file has to exist, be created or be written. */
static void test_read_only_file(void **state)
{
    struct fixture *f = *state;
    char dir[100], db[140], spec[150];
    snprintf(dir, sizeof(dir), "%s/ro", f->dir);
    snprintf(db, sizeof(db), "%s/prices.db", dir);
    snprintf(spec, sizeof(spec), "sqlite:%s", db);
    assert_int_equal(mkdir(dir, 0755), 0);
    px_price_close(open_seeded(f, 1000));
    copy_file(f->db, db);
    /* The test directory itself must let nobody through. */
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(chmod(db, 0444), 0);
    assert_int_equal(chmod(dir, 0555), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(read_only_child(db, spec));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    chmod(dir, 0755);
    chmod(db, 0644);
    px_test_unlink_sqlite(db);
    rmdir(dir);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

struct reader {
    struct px_price_store *s;
    int ok;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    for (int i = 0; i < 500; i++) {
        char id[16];
        struct px_price p;
        snprintf(id, sizeof(id), "PROD-%05d", 1 + (i * 37) % 10000);
        if (px_price_get(r->s, id, &p) == PX_OK && strcmp(p.product_id, id) == 0)
            r->ok++;
    }
    return NULL;
}

/* More threads than pooled connections: each waits its turn, none fails. */
static void test_pool_shared(void **state)
{
    struct fixture *f = *state;
    struct px_price_store *s = open_seeded(f, 2000);
    pthread_t t[8];
    struct reader r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct reader){.s = s, .ok = 0};
        assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].ok, 500);
    }
    px_price_close(s);
}

/* Descriptors of this process open on path (SQLite keeps one per connection). */
static int fds_on(const char *path)
{
    char want[PATH_MAX], link[64], got[PATH_MAX];
    if (!realpath(path, want))
        return -1;
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t len = readlink(link, got, sizeof(got) - 1);
        if (len <= 0)
            continue;
        got[len] = '\0';
        n += strcmp(got, want) == 0;
    }
    return n;
}

/* A cold start opens one connection, whatever the pool size; a second
 * concurrent look-up opens the next one, and they all serve. */
static void test_pool_opens_lazily(void **state)
{
    struct fixture *f = *state;
    px_price_close(open_seeded(f, 2000)); /* creates and seeds the file */
    struct px_price_opts opts = {.pool_size = 4, .timeout_ms = 2000};
    struct px_price_store *s = NULL;
    char err[256] = "";
    assert_int_equal(px_price_open(f->spec, &opts, &s, err, sizeof(err)), PX_OK);
    /* One connection, and the descriptor the price cache reads the header with. */
    assert_int_equal(fds_on(f->db), 2);
    expect_price(s, "PROD-101", "99.99", "USD");
    assert_int_equal(fds_on(f->db), 2); /* one at a time: the one connection is reused */
    pthread_t t[8];
    struct reader r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct reader){.s = s, .ok = 0};
        assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].ok, 500);
    }
    int open = fds_on(f->db) - 1;
    assert_true(open >= 1 && open <= 4);
    px_price_close(s);
}

/* CONTRACT §12: the same product id in three tenants; each read, write,
 * withdrawal and history stays in its tenant (the cache included), and the
 * default tenant is the table a file without tenants always had. */
static void test_tenants_apart(void **state)
{
    struct fixture *f = *state;
    struct px_price_store *s = open_seeded(f, 1000);
    struct px_price p;
    assert_int_equal(px_price_get_in(s, "acme", "PROD-101", &p), PX_ERR_NOT_FOUND);
    struct px_price_change ch = {.tenant = "acme",
                                 .product_id = "PROD-101",
                                 .amount = "5.00",
                                 .currency = "EUR",
                                 .effective_from = "2026-12-03T12:00:00.000Z",
                                 .changed_by = "test",
                                 .request_id = "r-acme"};
    assert_int_equal(px_price_set(s, &ch), PX_OK);
    assert_int_equal(px_price_get_in(s, "acme", "PROD-101", &p), PX_OK);
    assert_string_equal(p.price, "5.00");
    expect_price(s, "PROD-101", "99.99", "USD"); /* default untouched */
    assert_int_equal(px_price_get_in(s, "default", "PROD-101", &p), PX_OK);
    assert_string_equal(p.price, "99.99");
    assert_int_equal(px_price_get_in(s, "globex", "PROD-101", &p), PX_ERR_NOT_FOUND);
    assert_int_equal(count_rows(f->db), 10005);

    struct px_arena *a = px_arena_new(1 << 16);
    struct px_price_history_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(px_price_history_in(s, "acme", "PROD-101", 10, a, &rows, &n), PX_OK);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].request_id, "r-acme");
    assert_int_equal(px_price_history(s, "PROD-101", 10, a, &rows, &n), PX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(px_price_history_in(s, "globex", "PROD-101", 10, a, &rows, &n), PX_OK);
    assert_int_equal(n, 0);
    px_arena_free(a);

    /* withdrawn in acme only */
    ch.amount = ch.currency = NULL;
    assert_int_equal(px_price_set(s, &ch), PX_OK);
    assert_int_equal(px_price_get_in(s, "acme", "PROD-101", &p), PX_ERR_NOT_FOUND);
    expect_price(s, "PROD-101", "99.99", "USD");
    px_price_close(s);
}

/* A price file from before tenants (schema v2) opens with them: its prices
 * are the default tenant's, read with the keys they always had. */
static void test_pre_tenant_file(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE product_prices (product_id TEXT PRIMARY KEY, price TEXT NOT"
                     " NULL, currency TEXT NOT NULL) WITHOUT ROWID;"
                     "CREATE TABLE price_history (seq INTEGER PRIMARY KEY, product_id TEXT NOT"
                     " NULL, amount TEXT NOT NULL, currency TEXT NOT NULL, effective_from TEXT NOT"
                     " NULL, changed_by TEXT NOT NULL, request_id TEXT NOT NULL);"
                     "INSERT INTO product_prices VALUES ('OLD-1', '1.50', 'EUR');"
                     "INSERT INTO price_history (product_id, amount, currency, effective_from,"
                     " changed_by, request_id) VALUES ('OLD-1', '1.50', 'EUR',"
                     " '2026-01-01T00:00:00.000Z', 'x', 'r-old');"
                     "PRAGMA user_version = 2;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    struct px_price_opts opts = {.pool_size = 1, .timeout_ms = 1000, .create = true};
    struct px_price_store *s = NULL;
    char err[256] = "";
    assert_int_equal(px_price_open(f->spec, &opts, &s, err, sizeof(err)), PX_OK);
    assert_int_equal(px_price_migrate(s, err, sizeof(err)), PX_OK);
    expect_price(s, "OLD-1", "1.50", "EUR");
    struct px_price p;
    assert_int_equal(px_price_get_in(s, "default", "OLD-1", &p), PX_OK);
    assert_int_equal(px_price_get_in(s, "acme", "OLD-1", &p), PX_ERR_NOT_FOUND);
    struct px_arena *a = px_arena_new(1 << 16);
    struct px_price_history_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(px_price_history_in(s, "default", "OLD-1", 10, a, &rows, &n), PX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(px_price_history_in(s, "acme", "OLD-1", 10, a, &rows, &n), PX_OK);
    assert_int_equal(n, 0);
    px_arena_free(a);
    px_price_close(s);
}

static void test_bad_spec(void **state)
{
    (void)state;
    struct px_price_store *s = NULL;
    char err[256] = "";
    assert_int_equal(px_price_open("sqlite:", NULL, &s, err, sizeof(err)), PX_ERR_CONFIG);
    assert_int_equal(px_price_open("sqlite::memory:", NULL, &s, err, sizeof(err)), PX_ERR_CONFIG);
    px_price_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seed_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_parameter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_idempotent_and_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_and_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_of_other_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_leaves_one_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_file_converted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenants_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pre_tenant_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_opens_lazily, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_spec, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
