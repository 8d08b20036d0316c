/* test_audit_guard.c: the embedded audit store refuses to lose records
 * quietly: a file deleted or replaced while open, a write lock held by
 * another process, a file it may not write, a trail that is not there,
 * parents to create, and failed batches that must reach the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/fs.h"
#include "kernel/log.h"
#include "kernel/log_limit.h"
#include "store/audit.h"

#include "px_test.h"

static const char USER_A[] = "0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e";

struct fixture {
    char dir[64];
    char db[128];
    char spec[140];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || px_test_tmpdir(f->dir, sizeof(f->dir), "guard")) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/audit.db", f->dir);
    snprintf(f->spec, sizeof(f->spec), "sqlite:%s", f->db);
    *state = f;
    return 0;
}

/* Removes what the tests leave: the store's files, a few nested directories. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    px_test_unlink_sqlite(f->db);
    char p[200];
    const char *extra[] = {"a/b/c/audit.db", "moved.db", "other.db", "empty.db", "log"};
    for (size_t i = 0; i < PX_COUNTOF(extra); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, extra[i]);
        px_test_unlink_sqlite(p);
    }
    const char *dirs[] = {"a/b/c", "a/b", "a"};
    for (size_t i = 0; i < PX_COUNTOF(dirs); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, dirs[i]);
        rmdir(p);
    }
    px_test_rmdir(f->dir);
    free(f);
    return 0;
}

static struct px_audit_record rec(int i)
{
    struct px_audit_record r;
    memset(&r, 0, sizeof(r));
    snprintf(r.user_id, sizeof(r.user_id), "%s", USER_A);
    snprintf(r.product_id, sizeof(r.product_id), "PROD-101");
    snprintf(r.request_id, sizeof(r.request_id), "guard-%06d", i);
    unsigned u = (unsigned)i;
    snprintf(r.ts, sizeof(r.ts), "2026-01-23T12:00:%02u.%03uZ", u / 1000 % 60, u % 1000);
    r.expires_at = INT64_MAX;
    snprintf(r.action, sizeof(r.action), "PRICE_FETCH");
    snprintf(r.status, sizeof(r.status), "SUCCESS");
    return r;
}

static struct px_audit_store *open_spec(const char *spec, long timeout_ms, bool must_exist)
{
    const struct px_audit_opts o = {.timeout_ms = timeout_ms, .must_exist = must_exist};
    struct px_audit_store *s = NULL;
    char err[512] = "";
    if (px_audit_open(spec, &o, &s, err, sizeof(err)) != PX_OK)
        fail_msg("open %s: %s", spec, err);
    return s;
}

static long count_rows(const char *db)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, "SELECT count(*) FROM audit", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- parents ---------------------------------------------------------------------------- */

/* `mkdir -p` of every missing parent, absolute and relative. */
static void test_missing_parents_created(void **state)
{
    struct fixture *f = *state;
    char spec[220], db[200];
    snprintf(db, sizeof(db), "%s/a/b/c/audit.db", f->dir);
    snprintf(spec, sizeof(spec), "sqlite:%s", db);
    struct px_audit_store *s = open_spec(spec, 2000, false);
    struct px_audit_record r = rec(1);
    assert_int_equal(px_audit_append(s, &r), PX_OK);
    px_audit_close(s);
    assert_int_equal(count_rows(db), 1);
    px_test_unlink_sqlite(db);
    char p[200];
    snprintf(p, sizeof(p), "%s/a/b/c", f->dir);
    assert_int_equal(rmdir(p), 0);
    snprintf(p, sizeof(p), "%s/a/b", f->dir);
    assert_int_equal(rmdir(p), 0);
    snprintf(p, sizeof(p), "%s/a", f->dir);
    assert_int_equal(rmdir(p), 0);

    /* Relative to the working directory, as AUDIT_STORE=sqlite:a/b/c/audit.db. */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir), 0);
    const struct px_audit_opts o = {.timeout_ms = 2000};
    s = NULL;
    char err[512] = "";
    px_rc rc = px_audit_open("sqlite:a/b/c/audit.db", &o, &s, err, sizeof(err));
    if (rc == PX_OK) {
        r = rec(2);
        rc = px_audit_append(s, &r);
        px_audit_close(s);
    }
    assert_int_equal(chdir(cwd), 0);
    if (rc)
        fail_msg("relative path: %s (%s)", px_strerror(rc), err);
    assert_int_equal(count_rows(db), 1);

    /* The shared helper reports the directory it could not make. */
    char file_parent[200];
    snprintf(file_parent, sizeof(file_parent), "%s/a/b/c/audit.db/x/y.db", f->dir);
    assert_int_equal(px_fs_make_parent(file_parent, 0750), ENOTDIR);
    assert_int_equal(px_fs_make_parent("no-slash.db", 0750), 0);
}

/* ---- a trail is created only on purpose ------------------------------------------------ */

static void test_must_exist(void **state)
{
    struct fixture *f = *state;
    char nested[220];
    snprintf(nested, sizeof(nested), "sqlite:%s/a/b/c/audit.db", f->dir);
    const struct px_audit_opts o = {.timeout_ms = 2000, .must_exist = true};
    struct px_audit_store *s = NULL;
    char err[512] = "";
    assert_int_equal(px_audit_open(f->spec, &o, &s, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(s);
    assert_non_null(strstr(err, "AUDIT_STORE"));
    assert_non_null(strstr(err, f->db));
    assert_null(strchr(err, '\n'));
    struct stat st;
    assert_int_equal(stat(f->db, &st), -1); /* nothing created */
    err[0] = '\0';
    assert_int_equal(px_audit_open(nested, &o, &s, err, sizeof(err)), PX_ERR_CONFIG);
    char p[200];
    snprintf(p, sizeof(p), "%s/a", f->dir);
    assert_int_equal(stat(p, &st), -1); /* no directories either */

    /* An empty file at the path is no trail either. */
    snprintf(p, sizeof(p), "sqlite:%s/empty.db", f->dir);
    int fd = open(p + 7, O_CREAT | O_WRONLY, 0640);
    assert_true(fd >= 0);
    close(fd);
    err[0] = '\0';
    assert_int_equal(px_audit_open(p, &o, &s, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "no audit trail"));

    /* Once created (db seed), it opens. */
    s = open_spec(f->spec, 2000, false);
    px_audit_close(s);
    s = open_spec(f->spec, 2000, true);
    px_audit_close(s);
}

/* ---- files deleted or replaced while open ---------------------------------------------- */

/* Unlinks (or renames over) one of the store's files after a first record,
 * then checks that nothing more is reported durable and readiness drops. */
static void fails_closed_after(struct fixture *f, const char *victim_suffix, bool replace)
{
    struct px_audit_store *s = open_spec(f->spec, 2000, true);
    struct px_audit_record r = rec(1);
    assert_int_equal(px_audit_append(s, &r), PX_OK);
    assert_int_equal(px_audit_ping(s), PX_OK);

    char victim[200];
    snprintf(victim, sizeof(victim), "%s%s", f->db, victim_suffix);
    if (replace) {
        char other[200], spec[220];
        snprintf(other, sizeof(other), "%s/other.db", f->dir);
        snprintf(spec, sizeof(spec), "sqlite:%s", other);
        struct px_audit_store *o = open_spec(spec, 2000, false);
        px_audit_close(o);
        assert_int_equal(rename(other, victim), 0);
    } else {
        assert_int_equal(unlink(victim), 0);
    }
    for (int i = 2; i < 5; i++) {
        r = rec(i);
        assert_int_not_equal(px_audit_append(s, &r), PX_OK);
    }
    assert_int_not_equal(px_audit_ping(s), PX_OK);
    px_audit_close(s);
}

static void test_deleted_database_fails_closed(void **state)
{
    struct fixture *f = *state;
    px_audit_close(open_spec(f->spec, 2000, false));
    fails_closed_after(f, "", false);
}

static void test_replaced_database_fails_closed(void **state)
{
    struct fixture *f = *state;
    px_audit_close(open_spec(f->spec, 2000, false));
    fails_closed_after(f, "", true);
}

static void test_deleted_wal_fails_closed(void **state)
{
    struct fixture *f = *state;
    px_audit_close(open_spec(f->spec, 2000, false));
    fails_closed_after(f, "-wal", false);
    /* The record answered OK before the WAL went is in the database: closing
     * checkpointed it from the still open (unlinked) WAL. */
    assert_int_equal(count_rows(f->db), 1);
}

/* An idle store notices on its own and logs one ERROR line, however often
 * readiness asks. */
static void test_deleted_file_logged_once(void **state)
{
    struct fixture *f = *state;
    char log[200];
    snprintf(log, sizeof(log), "%s/log", f->dir);
    int fd = open(log, O_CREAT | O_RDWR | O_TRUNC, 0640);
    assert_true(fd >= 0);
    px_log_init(PX_LOG_INFO, "test");
    px_log_set_fd(fd);
    px_audit_close(open_spec(f->spec, 2000, false));
    struct px_audit_store *s = open_spec(f->spec, 2000, true);
    assert_int_equal(unlink(f->db), 0);
    usleep(1500 * 1000); /* the writer's idle check runs every second */
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "deleted or replaced"));
    for (int i = 0; i < 5; i++)
        assert_int_not_equal(px_audit_ping(s), PX_OK);
    struct px_audit_record r = rec(1);
    assert_int_not_equal(px_audit_append(s, &r), PX_OK);
    px_audit_close(s);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    int lines = 0;
    for (const char *p = buf; (p = strstr(p, "deleted or replaced")) != NULL; p++)
        lines++;
    assert_int_equal(lines, 1);
    assert_non_null(strstr(buf, "\"level\":\"error\""));
    px_log_set_fd(STDOUT_FILENO);
    close(fd);
}

/* ---- readiness under another process's write lock ------------------------------------ */

static void test_ping_sees_exclusive_lock(void **state)
{
    struct fixture *f = *state;
    px_audit_close(open_spec(f->spec, 2000, false));
    struct px_audit_store *s = open_spec(f->spec, 2000, true);
    assert_int_equal(px_audit_ping(s), PX_OK);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    int64_t t0 = mono_ms();
    px_rc rc = px_audit_ping(s);
    int64_t took = mono_ms() - t0;
    assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    assert_int_not_equal(rc, PX_OK);
    assert_true(took < 1000); /* readiness never waits the record's whole bound */
    assert_int_equal(px_audit_ping(s), PX_OK);
    px_audit_close(s);
}

/* ---- a file this process may not write ------------------------------------------------ */

/* Permission bits do not stop root: the child drops to nobody first. */
static int readonly_child(const char *spec)
{
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        return 10;
    const struct px_audit_opts o = {.timeout_ms = 500, .must_exist = true};
    struct px_audit_store *s = NULL;
    char err[512] = "";
    px_rc rc = px_audit_open(spec, &o, &s, err, sizeof(err));
    if (rc == PX_OK) {
        px_audit_close(s);
        return 1;
    }
    if (rc != PX_ERR_CONFIG || !strstr(err, "AUDIT_STORE") || strchr(err, '\n'))
        return 2;
    return 0;
}

static void test_readonly_file_refused(void **state)
{
    struct fixture *f = *state;
    px_audit_close(open_spec(f->spec, 2000, false));
    /* A directory anyone may write, a file nobody but its owner may. */
    assert_int_equal(chmod(f->dir, 0777), 0);
    assert_int_equal(chmod(f->db, 0444), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(readonly_child(f->spec));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child: read-only file not refused (code %d)", WEXITSTATUS(status));
    assert_int_equal(chmod(f->dir, 0700), 0);
}

/* ---- failed batches reach the log, rate-limited ------------------------------------- */

static void test_failures_logged_rate_limited(void **state)
{
    struct fixture *f = *state;
    char log[200];
    snprintf(log, sizeof(log), "%s/log", f->dir);
    int fd = open(log, O_CREAT | O_RDWR | O_TRUNC, 0640);
    assert_true(fd >= 0);
    px_log_init(PX_LOG_INFO, "test");
    px_log_set_fd(fd);
    px_audit_close(open_spec(f->spec, 2000, false));
    struct px_audit_store *s = open_spec(f->spec, 100, true);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    /* Four failed batches inside one second: one line. */
    int64_t t0 = mono_ms();
    for (int i = 0; i < 4; i++) {
        struct px_audit_record r = rec(i);
        assert_int_not_equal(px_audit_append(s, &r), PX_OK);
    }
    assert_true(mono_ms() - t0 < 1000);
    usleep(1100 * 1000);
    struct px_audit_record r = rec(10);
    assert_int_not_equal(px_audit_append(s, &r), PX_OK);
    assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    px_audit_close(s);
    px_log_set_fd(STDOUT_FILENO);

    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    int lines = 0;
    for (const char *p = buf; (p = strstr(p, "\"cause\":\"SQLITE_BUSY\"")) != NULL; p++)
        lines++;
    if (lines != 2)
        fail_msg("want 2 SQLITE_BUSY lines, got %d:\n%s", lines, buf);
    assert_non_null(strstr(buf, "\"level\":\"error\""));
    assert_non_null(strstr(buf, "\"suppressed\":\"3\""));
}

/* The DynamoDB store logs its failed writes through the same limiter: six
 * records failing at once (nothing listens at the endpoint) make one line. */
struct done_count {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, failed;
};

static void on_done(void *arg, px_rc rc)
{
    struct done_count *c = arg;
    pthread_mutex_lock(&c->mu);
    c->done++;
    c->failed += rc != PX_OK;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void test_dynamodb_failures_logged_rate_limited(void **state)
{
    struct fixture *f = *state;
    /* A port that was free a moment ago: connections are refused. */
    int sfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(sfd, (struct sockaddr *)&sa, &sl), 0);
    close(sfd);
    char url[64], err[256] = "";
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    const struct px_audit_opts o = {
        .timeout_ms = 300,
        .region = "us-east-1",
        .endpoint = url,
        .access_key_id = "AKIDTEST",
        .secret_access_key = "secret/key",
    };
    char log[200];
    snprintf(log, sizeof(log), "%s/log", f->dir);
    int fd = open(log, O_CREAT | O_RDWR | O_TRUNC, 0640);
    assert_true(fd >= 0);
    px_log_init(PX_LOG_INFO, "test");
    px_log_set_fd(fd);
    struct px_audit_store *s = NULL;
    if (px_audit_open("dynamodb:audit_unit", &o, &s, err, sizeof(err)) != PX_OK)
        fail_msg("open: %s", err);
    struct done_count c = {.done = 0};
    assert_int_equal(pthread_mutex_init(&c.mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&c.cv, NULL), 0);
    for (int i = 0; i < 6; i++) {
        struct px_audit_record r = rec(i);
        assert_int_equal(px_audit_submit(s, &r, on_done, &c), PX_OK);
    }
    pthread_mutex_lock(&c.mu);
    while (c.done < 6)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    px_audit_close(s);
    px_log_set_fd(STDOUT_FILENO);
    assert_int_equal(c.failed, 6);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);

    char buf[16384];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    int lines = 0;
    for (const char *p = buf; (p = strstr(p, "not written to DynamoDB")) != NULL; p++)
        lines++;
    if (lines != 1)
        fail_msg("want 1 line, got %d:\n%s", lines, buf);
    assert_non_null(strstr(buf, "\"level\":\"error\""));
    assert_non_null(strstr(buf, "\"cause\":"));
}

/* The helper itself: per cause, per interval, counts what it held back. */
static void test_log_limit(void **state)
{
    (void)state;
    px_log_init(PX_LOG_ERROR, "test");
    int fd = open("/dev/null", O_WRONLY);
    assert_true(fd >= 0);
    px_log_set_fd(fd);
    struct px_log_limit l;
    assert_int_equal(px_log_limit_init(&l, 200), PX_OK);
    assert_true(px_log_limited(&l, PX_LOG_ERROR, "EFBIG", "x %d", 1));
    assert_false(px_log_limited(&l, PX_LOG_ERROR, "EFBIG", "x %d", 2));
    assert_true(px_log_limited(&l, PX_LOG_ERROR, "SQLITE_BUSY", "y"));
    assert_false(px_log_limited(&l, PX_LOG_INFO, "other", "below the level"));
    /* More causes than slots: the oldest slot is reused, nothing breaks. */
    for (int i = 0; i < PX_LOG_LIMIT_CAUSES + 2; i++) {
        char c[16];
        snprintf(c, sizeof(c), "c%d", i);
        assert_true(px_log_limited(&l, PX_LOG_ERROR, c, "z"));
    }
    usleep(250 * 1000);
    assert_true(px_log_limited(&l, PX_LOG_ERROR, "c9", "again after the interval"));
    assert_false(px_log_limited(&l, PX_LOG_ERROR, "c9", "held"));
    px_log_limit_destroy(&l);
    px_log_set_fd(STDOUT_FILENO);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_parents_created, setup, teardown),
        cmocka_unit_test_setup_teardown(test_must_exist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_database_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_database_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_wal_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_file_logged_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_sees_exclusive_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_logged_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dynamodb_failures_logged_rate_limited, setup,
                                        teardown),
        cmocka_unit_test(test_log_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
