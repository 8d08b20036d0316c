/* audit_migrate.c: `pricing audit migrate --from sqlite:OLD --to SPEC`: copies
 * an embedded SQLite audit trail record for record into another store. */
#include "cli.h"
#include "store/audit.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#define IN_FLIGHT_MAX 4096

struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long pending, ok, present, failed;
    px_rc first_error;
};

static void migrated(void *arg, px_rc rc)
{
    struct tally *t = arg;
    pthread_mutex_lock(&t->mu);
    t->pending--;
    if (rc == PX_OK)
        t->ok++;
    else if (rc == PX_ERR_CONFLICT)
        t->present++; /* copied by an earlier run: append-only stores refuse it again */
    else if (t->failed++ == 0)
        t->first_error = rc;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void wait_below(struct tally *t, long n)
{
    pthread_mutex_lock(&t->mu);
    while (t->pending > n)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

static bool copy_col(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (!v || n < 0 || (size_t)n >= cap)
        return false;
    memcpy(dst, v, (size_t)n);
    dst[n] = '\0';
    return true;
}

/* A write's before / after (NULL for look-ups), borrowed from the statement
 * until its next step: px_audit_submit() copies them. */
static bool change_col(sqlite3_stmt *st, int col, const char **dst)
{
    *dst = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return true;
    *dst = (const char *)sqlite3_column_text(st, col);
    return *dst && (size_t)sqlite3_column_bytes(st, col) <= PX_AUDIT_CHANGE_MAX;
}

static bool row_record(sqlite3_stmt *st, struct px_audit_record *r)
{
    memset(r, 0, sizeof(*r));
    r->expires_at = sqlite3_column_int64(st, 7);
    return copy_col(st, 0, r->action, sizeof(r->action)) &&
           copy_col(st, 1, r->status, sizeof(r->status)) &&
           copy_col(st, 2, r->user_id, sizeof(r->user_id)) &&
           copy_col(st, 3, r->product_id, sizeof(r->product_id)) &&
           copy_col(st, 4, r->request_id, sizeof(r->request_id)) &&
           copy_col(st, 5, r->correlation_id, sizeof(r->correlation_id)) &&
           copy_col(st, 6, r->ts, sizeof(r->ts)) &&
           copy_col(st, 8, r->principal, sizeof(r->principal)) &&
           copy_col(st, 9, r->api_request_id, sizeof(r->api_request_id)) &&
           change_col(st, 10, &r->before) && change_col(st, 11, &r->after);
}

int px_audit_migrate(const char *from, const char *to, const struct px_config *cfg)
{
    if (strncmp(from, "sqlite:", 7) != 0 || !from[7]) {
        fprintf(stderr, "pricing audit migrate: --from must be sqlite:PATH\n");
        return PX_EXIT_USAGE;
    }
    sqlite3 *src = NULL;
    sqlite3_stmt *st = NULL, *cnt = NULL;
    /* Read-only: the old trail is evidence, migration never changes it. */
    if (sqlite3_open_v2(from + 7, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "pricing audit migrate: cannot open %s: %s\n", from + 7,
                src ? sqlite3_errmsg(src) : "out of memory");
        sqlite3_close(src);
        return PX_EXIT_FAIL;
    }
    sqlite3_busy_timeout(src, 10000);
    static const char cols[] = "SELECT action, status, user_id, product_id, request_id,"
                               " correlation_id, ts, expires_at, principal, %s FROM audit"
                               " ORDER BY seq";
    /* Newest schema first: a version 2 file has no before/after (look-ups
     * only), a version 1 file no api_request_id either (read back as ""). */
    static const char *const tails[] = {"api_request_id, before_json, after_json",
                                        "api_request_id, NULL, NULL", "'', NULL, NULL"};
    char sql[256];
    for (size_t i = 0; i < PX_COUNTOF(tails) && !st; i++) {
        snprintf(sql, sizeof(sql), cols, tails[i]);
        if (sqlite3_prepare_v2(src, sql, -1, &st, NULL) != SQLITE_OK) {
            sqlite3_finalize(st);
            st = NULL;
        }
    }
    if (!st || sqlite3_prepare_v2(src, "SELECT count(*) FROM audit", -1, &cnt, NULL) != SQLITE_OK ||
        sqlite3_exec(src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_step(cnt) != SQLITE_ROW) {
        fprintf(stderr, "pricing audit migrate: %s has no audit table: %s\n", from + 7,
                sqlite3_errmsg(src));
        sqlite3_finalize(st);
        sqlite3_finalize(cnt);
        sqlite3_close(src);
        return PX_EXIT_FAIL;
    }
    /* One read transaction: the count and the rows are the same snapshot. */
    long rows = (long)sqlite3_column_int64(cnt, 0);

    struct px_audit_opts aopts = px_cli_audit_opts(cfg);
    aopts.timeout_ms = 60000; /* a backlog of a whole trail, not one look-up */
    aopts.queue_cap = IN_FLIGHT_MAX * 2;
    aopts.create = true;
    struct px_audit_store *dst = NULL;
    char err[1024];
    uint64_t before = 0, after = 0;
    if (px_audit_open(to, &aopts, &dst, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing audit migrate: %s\n", err);
        sqlite3_finalize(st);
        sqlite3_finalize(cnt);
        sqlite3_close(src);
        return PX_EXIT_FAIL;
    }
    bool countable = px_audit_count(dst, &before) == PX_OK;
    struct tally t = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    long read = 0, bad = 0;
    int e;
    while ((e = sqlite3_step(st)) == SQLITE_ROW) {
        struct px_audit_record r;
        read++;
        if (!row_record(st, &r)) {
            bad++;
            continue;
        }
        wait_below(&t, IN_FLIGHT_MAX - 1);
        pthread_mutex_lock(&t.mu);
        t.pending++;
        pthread_mutex_unlock(&t.mu);
        px_rc rc = px_audit_submit(dst, &r, migrated, &t);
        if (rc) {
            pthread_mutex_lock(&t.mu);
            t.pending--;
            if (t.failed++ == 0)
                t.first_error = rc;
            pthread_mutex_unlock(&t.mu);
        }
    }
    wait_below(&t, 0);
    bool read_ok = e == SQLITE_DONE;
    if (!read_ok)
        fprintf(stderr, "pricing audit migrate: reading %s: %s\n", from + 7, sqlite3_errmsg(src));
    sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(st);
    sqlite3_finalize(cnt);
    sqlite3_close(src);
    if (countable && px_audit_count(dst, &after) != PX_OK)
        countable = false;
    px_audit_close(dst);

    printf("source records: %ld\ncopied: %ld\nalready present: %ld\nunreadable: %ld\nfailed: %ld\n",
           rows, t.ok, t.present, bad, t.failed);
    if (countable)
        printf("destination records: %llu before, %llu after\n", (unsigned long long)before,
               (unsigned long long)after);
    if (t.failed)
        fprintf(stderr, "pricing audit migrate: first failure: %s\n", px_strerror(t.first_error));
    /* Verified by count: every source row read and accounted for, and the
     * destination grew by exactly the records copied. */
    bool ok = read_ok && read == rows && !bad && !t.failed && t.ok + t.present == rows &&
              (!countable || (after - before == (uint64_t)t.ok && after >= (uint64_t)rows));
    if (!ok)
        fprintf(stderr, "pricing audit migrate: the copy is incomplete\n");
    return ok ? PX_EXIT_OK : PX_EXIT_FAIL;
}
