/* outbox_sqlite.c: the outbox table inside a SQLite store's own file.
 *
 * Writers (product_sqlite.c, price_sqlite.c) insert on their connection in
 * their transaction. The relay's side keeps one connection per handle, opened
 * at px_outbox_open(): a handle belongs to one thread (the relay is one loop).
 * A claim runs in one BEGIN IMMEDIATE transaction, so the file's write lock
 * makes the lease check-and-set atomic between relays, in this process or
 * another. */
#include "outbox.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char px_outbox_sqlite_schema[] =
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " tenant TEXT NOT NULL DEFAULT 'default', id TEXT NOT NULL UNIQUE,"
    " subject TEXT NOT NULL, type TEXT NOT NULL, ord INTEGER NOT NULL, event TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'sent', 'failed')),"
    " attempts INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,"
    " next_ms INTEGER NOT NULL DEFAULT 0, sent_ms INTEGER, lease_owner TEXT,"
    " lease_until INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
    "CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox (status, seq);"
    "CREATE INDEX IF NOT EXISTS outbox_by_subject ON outbox (tenant, subject, ord);";

static const char INSERT_SQL[] =
    "INSERT INTO outbox (tenant, id, subject, type, ord, event, created_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

int px_outbox_sqlite_insert(struct sqlite3 *db, const struct px_event *ev)
{
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v2(db, INSERT_SQL, -1, &st, NULL);
    if (e != SQLITE_OK)
        return e;
    sqlite3_bind_text(st, 1, ev->tenant ? ev->tenant : PX_EVENT_TENANT, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ev->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, ev->ord);
    sqlite3_bind_text(st, 6, ev->json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, ev->time_ms);
    e = sqlite3_step(st);
    sqlite3_finalize(st);
    return e == SQLITE_DONE ? SQLITE_OK : e;
}

struct sq_outbox {
    char *path;
    long timeout_ms;
    sqlite3 *db; /* the handle's connection */
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

static px_rc connect(struct sq_outbox *o, sqlite3 **out)
{
    sqlite3 *db = NULL;
    *out = o->db;
    if (o->db)
        return PX_OK;
    if (sqlite3_open_v2(o->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sqlite3_close_v2(db);
        return PX_ERR_UNAVAILABLE;
    }
    sqlite3_busy_timeout(db, (int)o->timeout_ms);
    sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    *out = o->db = db;
    return PX_OK;
}

static void sq_close(void *impl)
{
    struct sq_outbox *o = impl;
    if (!o)
        return;
    sqlite3_close_v2(o->db);
    free(o->path);
    free(o);
}

static px_rc sq_open(const char *path, const struct px_config *cfg, long timeout_ms, void **impl,
                     char *err, size_t errlen)
{
    (void)cfg; /* everything is in the spec */
    *impl = NULL;
    struct sq_outbox *o = calloc(1, sizeof(*o));
    if (!o || !(o->path = strdup(path))) {
        free(o);
        return PX_ERR_NOMEM;
    }
    o->timeout_ms = timeout_ms > 0 && timeout_ms <= 60000 ? timeout_ms : 5000;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(o, &db);
    if (!rc && sqlite3_prepare_v2(db, "SELECT seq FROM outbox LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        rc = PX_ERR_UNAVAILABLE;
    sqlite3_finalize(st);
    if (rc) {
        snprintf(err, errlen, "outbox: no outbox table in %.300s (run: pricing db migrate)", path);
        sq_close(o);
        return rc;
    }
    *impl = o;
    return PX_OK;
}

#define ROW_COLS                                                                                   \
    "SELECT seq, id, tenant, subject, type, ord, status, attempts, created_ms, next_ms,"           \
    " last_error, event, lease_owner, lease_until FROM outbox "

static void text_copy(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", v ? (const char *)v : "");
}

static px_rc read_row(sqlite3_stmt *st, struct px_outbox_row *r)
{
    memset(r, 0, sizeof(*r));
    r->seq = sqlite3_column_int64(st, 0);
    text_copy(st, 1, r->id, sizeof(r->id));
    text_copy(st, 2, r->tenant, sizeof(r->tenant));
    text_copy(st, 3, r->subject, sizeof(r->subject));
    text_copy(st, 4, r->type, sizeof(r->type));
    r->ord = sqlite3_column_int64(st, 5);
    const unsigned char *s = sqlite3_column_text(st, 6);
    r->status = s && strcmp((const char *)s, "sent") == 0     ? PX_OUTBOX_SENT
                : s && strcmp((const char *)s, "failed") == 0 ? PX_OUTBOX_FAILED
                                                              : PX_OUTBOX_WAITING;
    r->attempts = (long)sqlite3_column_int64(st, 7);
    r->created_ms = sqlite3_column_int64(st, 8);
    r->next_ms = sqlite3_column_int64(st, 9);
    text_copy(st, 10, r->error, sizeof(r->error));
    const unsigned char *ev = sqlite3_column_text(st, 11);
    r->event = strdup(ev ? (const char *)ev : "null");
    return r->event ? PX_OK : PX_ERR_NOMEM;
}

static px_rc sq_list(void *impl, bool failed_only, size_t max, struct px_outbox_row **rows,
                     size_t *n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct px_outbox_row *out = NULL;
    size_t k = 0, cap = 0;
    px_rc rc = connect(impl, &db);
    if (rc)
        return rc;
    int e =
        sqlite3_prepare_v2(db,
                           failed_only ? ROW_COLS "WHERE status = 'failed' ORDER BY seq LIMIT ?1"
                                       : ROW_COLS "ORDER BY seq LIMIT ?1",
                           -1, &st, NULL);
    if (e != SQLITE_OK) {
        rc = map_error(e);
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
    while (!rc && (e = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            size_t nc = cap ? cap * 2 : 64;
            struct px_outbox_row *t = realloc(out, nc * sizeof(*t));
            if (!t) {
                rc = PX_ERR_NOMEM;
                break;
            }
            out = t;
            cap = nc;
        }
        rc = read_row(st, &out[k]);
        if (!rc)
            k++;
    }
    if (!rc && e != SQLITE_DONE && e != SQLITE_ROW)
        rc = map_error(e);
out:
    sqlite3_finalize(st);
    if (rc) {
        px_outbox_rows_free(out, k);
        return rc;
    }
    *rows = out;
    *n = k;
    return PX_OK;
}

/* Runs one UPDATE with text/int parameters; *changed: rows it touched. */
static int exec_update(sqlite3 *db, const char *sql, const char *t1, int64_t i2, int64_t i3,
                       const char *t4, int64_t i5, int *changed)
{
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (e != SQLITE_OK)
        return e;
    int np = sqlite3_bind_parameter_count(st);
    if (np >= 1)
        sqlite3_bind_text(st, 1, t1, -1, SQLITE_STATIC);
    if (np >= 2)
        sqlite3_bind_int64(st, 2, i2);
    if (np >= 3)
        sqlite3_bind_int64(st, 3, i3);
    if (np >= 4)
        sqlite3_bind_text(st, 4, t4, -1, SQLITE_STATIC);
    if (np >= 5)
        sqlite3_bind_int64(st, 5, i5);
    e = sqlite3_step(st);
    if (changed)
        *changed = sqlite3_changes(db);
    sqlite3_finalize(st);
    return e == SQLITE_DONE ? SQLITE_OK : e;
}

static px_rc sq_retry(void *impl, const char *id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(impl, &db);
    if (rc)
        return rc;
    int changed = 0;
    int e = exec_update(db,
                        "UPDATE outbox SET status = 'waiting', attempts = 0, next_ms = 0,"
                        " lease_owner = NULL, lease_until = 0 WHERE id = ?1 AND status != 'sent'",
                        id, 0, 0, NULL, 0, &changed);
    if (e != SQLITE_OK) {
        rc = map_error(e);
    } else if (!changed) {
        e = sqlite3_prepare_v2(db, "SELECT 1 FROM outbox WHERE id = ?1", -1, &st, NULL);
        if (e == SQLITE_OK) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            e = sqlite3_step(st);
        }
        rc = e == SQLITE_ROW ? PX_ERR_CONFLICT : e == SQLITE_DONE ? PX_ERR_NOT_FOUND : map_error(e);
    }
    sqlite3_finalize(st);
    return rc;
}

static px_rc sq_claim(void *impl, const char *owner, int64_t now_ms, long lease_ms, size_t max,
                      struct px_outbox_row **rows, size_t *n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    size_t k = 0, want = max * 4, got = 0;
    struct px_outbox_row *cand = calloc(want ? want : 1, sizeof(*cand));
    bool *taken = calloc(want ? want : 1, sizeof(*taken));
    px_rc rc = cand && taken ? connect(impl, &db) : PX_ERR_NOMEM;
    if (rc)
        goto out;
    int e = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (e == SQLITE_OK)
        e = sqlite3_prepare_v2(db, ROW_COLS "WHERE status = 'waiting' ORDER BY seq LIMIT ?1", -1,
                               &st, NULL);
    if (e != SQLITE_OK) {
        rc = map_error(e);
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)want);
    while (!rc && k < want && (e = sqlite3_step(st)) == SQLITE_ROW) {
        rc = read_row(st, &cand[k]);
        if (rc)
            break;
        const unsigned char *lo = sqlite3_column_text(st, 12);
        int64_t until = sqlite3_column_int64(st, 13);
        bool elsewhere = until > now_ms && lo && strcmp((const char *)lo, owner) != 0;
        /* Order per subject: never past an earlier event that waits. */
        taken[k] = got < max && !elsewhere && cand[k].next_ms <= now_ms &&
                   !px_outbox_blocked(cand, taken, k);
        if (taken[k])
            got++;
        k++;
    }
    if (!rc && e != SQLITE_ROW && e != SQLITE_DONE)
        rc = map_error(e);
    sqlite3_finalize(st);
    st = NULL;
    for (size_t i = 0; !rc && i < k; i++) {
        if (!taken[i])
            continue;
        e = exec_update(db, "UPDATE outbox SET lease_owner = ?1, lease_until = ?2 WHERE seq = ?3",
                        owner, now_ms + lease_ms, cand[i].seq, NULL, 0, NULL);
        if (e != SQLITE_OK)
            rc = map_error(e);
    }
    if (!rc && (e = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
        rc = map_error(e);
out:
    sqlite3_finalize(st);
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    size_t m = 0;
    for (size_t i = 0; !rc && i < k; i++) {
        if (taken[i])
            cand[m++] = cand[i];
        else
            free(cand[i].event);
    }
    free(taken);
    if (rc) {
        px_outbox_rows_free(cand, k);
        return rc;
    }
    *rows = cand;
    *n = m;
    return PX_OK;
}

static px_rc sq_waiting_before(void *impl, const char *tenant, const char *subject, int64_t ord,
                               bool *before)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(impl, &db);
    if (rc)
        return rc;
    int e = sqlite3_prepare_v2(db,
                               "SELECT 1 FROM outbox WHERE tenant = ?1 AND subject = ?2 AND ord < "
                               "?3 AND status = 'waiting' LIMIT 1",
                               -1, &st, NULL);
    if (e == SQLITE_OK) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, ord);
        e = sqlite3_step(st);
    }
    if (e == SQLITE_ROW)
        *before = true;
    else if (e != SQLITE_DONE)
        rc = map_error(e);
    sqlite3_finalize(st);
    return rc;
}

static px_rc sq_mark(void *impl, int64_t seq, enum px_outbox_status s, const char *error,
                     int64_t next_ms, int64_t now_ms, bool count_attempt)
{
    sqlite3 *db = NULL;
    px_rc rc = connect(impl, &db);
    if (rc)
        return rc;
    int e;
    if (s == PX_OUTBOX_SENT)
        e = exec_update(db,
                        "UPDATE outbox SET status = 'sent', sent_ms = ?2, lease_owner = NULL,"
                        " lease_until = 0, last_error = NULL WHERE seq = ?3",
                        NULL, now_ms, seq, NULL, 0, NULL);
    else if (count_attempt)
        e = exec_update(
            db,
            "UPDATE outbox SET attempts = attempts + 1, last_error = substr(?1, 1, 500),"
            " next_ms = ?2, lease_owner = NULL, lease_until = 0,"
            " status = CASE WHEN ?5 THEN 'failed' ELSE 'waiting' END"
            " WHERE seq = ?3 AND status = 'waiting'",
            error ? error : "", next_ms, seq, NULL, s == PX_OUTBOX_FAILED, NULL);
    else
        e = exec_update(db, "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE seq = ?3",
                        NULL, 0, seq, NULL, 0, NULL);
    if (e != SQLITE_OK)
        rc = map_error(e);
    return rc;
}

static px_rc sq_stats(void *impl, int64_t *waiting, int64_t *failed, int64_t *oldest_ms)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    px_rc rc = connect(impl, &db);
    if (rc)
        return rc;
    int e = sqlite3_prepare_v2(
        db,
        "SELECT (SELECT count(*) FROM outbox WHERE status = 'waiting'),"
        " (SELECT count(*) FROM outbox WHERE status = 'failed'),"
        " (SELECT created_ms FROM outbox WHERE status = 'waiting' ORDER BY seq LIMIT 1)",
        -1, &st, NULL);
    if (e == SQLITE_OK)
        e = sqlite3_step(st);
    if (e == SQLITE_ROW) {
        *waiting = sqlite3_column_int64(st, 0);
        *failed = sqlite3_column_int64(st, 1);
        *oldest_ms = sqlite3_column_int64(st, 2);
    } else {
        rc = map_error(e);
    }
    sqlite3_finalize(st);
    return rc;
}

const struct px_outbox_ops px_outbox_sqlite_ops = {
    .open = sq_open,
    .close = sq_close,
    .list = sq_list,
    .retry = sq_retry,
    .claim = sq_claim,
    .waiting_before = sq_waiting_before,
    .mark = sq_mark,
    .stats = sq_stats,
};
