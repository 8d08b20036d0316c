/* outbox_pg.c: the relay's side of the PostgreSQL outbox (infra/sql/003_outbox.sql).
 *
 * The relay is one loop, so one blocking libpq connection serves it; it is
 * opened with connect_timeout and a statement_timeout, dropped on any
 * connection failure and opened again by the next call. A claim leases each
 * event with a conditional UPDATE (row lock: two relays never both succeed)
 * inside one transaction. Every value is a bound parameter. */
#include "outbox.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pg_outbox {
    char *uri;
    long timeout_ms;
    PGconn *conn;
};

static void drop(struct pg_outbox *o)
{
    PQfinish(o->conn);
    o->conn = NULL;
}

static px_rc ensure(struct pg_outbox *o)
{
    if (o->conn && PQstatus(o->conn) == CONNECTION_OK)
        return PX_OK;
    drop(o);
    char ct[24], opts[64];
    snprintf(ct, sizeof(ct), "%ld", o->timeout_ms / 1000 > 0 ? o->timeout_ms / 1000 : 1);
    snprintf(opts, sizeof(opts), "-c statement_timeout=%ld", o->timeout_ms);
    const char *keys[] = {"dbname", "connect_timeout", "options", NULL};
    const char *vals[] = {o->uri, ct, opts, NULL};
    o->conn = PQconnectdbParams(keys, vals, 1);
    if (!o->conn || PQstatus(o->conn) != CONNECTION_OK) {
        drop(o);
        return PX_ERR_UNAVAILABLE;
    }
    return PX_OK;
}

/* One statement; *out gets the result when want is PGRES_TUPLES_OK. */
static px_rc run(struct pg_outbox *o, const char *sql, int n, const char *const *p,
                 ExecStatusType want, PGresult **out)
{
    if (out)
        *out = NULL;
    px_rc rc = ensure(o);
    if (rc)
        return rc;
    PGresult *r = PQexecParams(o->conn, sql, n, NULL, p, NULL, NULL, 0);
    if (r && PQresultStatus(r) == want) {
        if (out)
            *out = r;
        else
            PQclear(r);
        return PX_OK;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    rc = state && strcmp(state, "57014") == 0 ? PX_ERR_TIMEOUT : PX_ERR_UNAVAILABLE;
    PQclear(r);
    if (PQstatus(o->conn) != CONNECTION_OK)
        drop(o);
    return rc;
}

static void pg_close(void *impl)
{
    struct pg_outbox *o = impl;
    if (!o)
        return;
    drop(o);
    free(o->uri);
    free(o);
}

static px_rc pg_open(const char *uri, const struct px_config *cfg, long timeout_ms, void **impl,
                     char *err, size_t errlen)
{
    (void)cfg; /* everything is in the spec */
    *impl = NULL;
    struct pg_outbox *o = calloc(1, sizeof(*o));
    if (!o || !(o->uri = strdup(uri))) {
        free(o);
        return PX_ERR_NOMEM;
    }
    o->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    px_rc rc = run(o, "SELECT seq FROM outbox LIMIT 1", 0, NULL, PGRES_TUPLES_OK, NULL);
    if (rc) {
        snprintf(err, errlen,
                 "outbox: no outbox table reachable in PRICE_DB (run: pricing db migrate): %s",
                 px_strerror(rc));
        pg_close(o);
        return rc;
    }
    *impl = o;
    return PX_OK;
}

#define ROW_COLS                                                                                   \
    "SELECT seq, id::text, tenant, subject, type, ord, status, attempts, created_ms, next_ms,"     \
    " coalesce(last_error, ''), event, coalesce(lease_owner, ''), lease_until FROM outbox "

static int64_t i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static px_rc read_row(const PGresult *r, int i, struct px_outbox_row *row)
{
    memset(row, 0, sizeof(*row));
    row->seq = i64(r, i, 0);
    snprintf(row->id, sizeof(row->id), "%s", PQgetvalue(r, i, 1));
    snprintf(row->tenant, sizeof(row->tenant), "%s", PQgetvalue(r, i, 2));
    snprintf(row->subject, sizeof(row->subject), "%s", PQgetvalue(r, i, 3));
    snprintf(row->type, sizeof(row->type), "%s", PQgetvalue(r, i, 4));
    row->ord = i64(r, i, 5);
    const char *s = PQgetvalue(r, i, 6);
    row->status = strcmp(s, "sent") == 0     ? PX_OUTBOX_SENT
                  : strcmp(s, "failed") == 0 ? PX_OUTBOX_FAILED
                                             : PX_OUTBOX_WAITING;
    row->attempts = (long)i64(r, i, 7);
    row->created_ms = i64(r, i, 8);
    row->next_ms = i64(r, i, 9);
    snprintf(row->error, sizeof(row->error), "%s", PQgetvalue(r, i, 10));
    row->event = strdup(PQgetvalue(r, i, 11));
    return row->event ? PX_OK : PX_ERR_NOMEM;
}

static px_rc read_rows(const PGresult *r, struct px_outbox_row **rows, size_t *n)
{
    int k = PQntuples(r);
    struct px_outbox_row *out = calloc(k > 0 ? (size_t)k : 1, sizeof(*out));
    if (!out)
        return PX_ERR_NOMEM;
    px_rc rc = PX_OK;
    int i = 0;
    for (; !rc && i < k; i++)
        rc = read_row(r, i, &out[i]);
    if (rc) {
        px_outbox_rows_free(out, (size_t)i);
        return rc;
    }
    *rows = out;
    *n = (size_t)k;
    return PX_OK;
}

static px_rc pg_list(void *impl, bool failed_only, size_t max, struct px_outbox_row **rows,
                     size_t *n)
{
    PGresult *r = NULL;
    char lim[24];
    snprintf(lim, sizeof(lim), "%zu", max);
    const char *p[1] = {lim};
    px_rc rc = run(impl,
                   failed_only ? ROW_COLS "WHERE status = 'failed' ORDER BY seq LIMIT $1::bigint"
                               : ROW_COLS "ORDER BY seq LIMIT $1::bigint",
                   1, p, PGRES_TUPLES_OK, &r);
    if (!rc)
        rc = read_rows(r, rows, n);
    PQclear(r);
    return rc;
}

static px_rc pg_retry(void *impl, const char *id)
{
    PGresult *r = NULL;
    const char *p[1] = {id};
    px_rc rc = run(impl,
                   "WITH u AS (UPDATE outbox SET status = 'waiting', attempts = 0, next_ms = 0,"
                   " lease_owner = NULL, lease_until = 0 WHERE id::text = $1 AND status != 'sent'"
                   " RETURNING 1) SELECT (SELECT count(*) FROM u),"
                   " (SELECT count(*) FROM outbox WHERE id::text = $1)",
                   1, p, PGRES_TUPLES_OK, &r);
    if (!rc && PQntuples(r) == 1)
        rc = i64(r, 0, 0) > 0 ? PX_OK : i64(r, 0, 1) > 0 ? PX_ERR_CONFLICT : PX_ERR_NOT_FOUND;
    PQclear(r);
    return rc;
}

static px_rc pg_claim(void *impl, const char *owner, int64_t now_ms, long lease_ms, size_t max,
                      struct px_outbox_row **rows, size_t *n)
{
    struct pg_outbox *o = impl;
    PGresult *r = NULL;
    struct px_outbox_row *cand = NULL;
    bool *taken = NULL;
    size_t k = 0, got = 0;
    char lim[24], now[24], until[24], seq[24];
    snprintf(lim, sizeof(lim), "%zu", max * 4);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(until, sizeof(until), "%lld", (long long)(now_ms + lease_ms));
    const char *p[1] = {lim};
    px_rc rc = run(o, "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL);
    if (rc)
        return rc;
    rc = run(o, ROW_COLS "WHERE status = 'waiting' ORDER BY seq LIMIT $1::bigint", 1, p,
             PGRES_TUPLES_OK, &r);
    if (!rc)
        rc = read_rows(r, &cand, &k);
    if (!rc && !(taken = calloc(k ? k : 1, sizeof(*taken))))
        rc = PX_ERR_NOMEM;
    for (size_t i = 0; !rc && i < k; i++) {
        const char *lo = PQgetvalue(r, (int)i, 12);
        bool elsewhere = i64(r, (int)i, 13) > now_ms && strcmp(lo, owner) != 0;
        if (got >= max || elsewhere || cand[i].next_ms > now_ms ||
            px_outbox_blocked(cand, taken, i))
            continue;
        /* Conditional on the lease still being free: a relay that read the
         * same rows concurrently loses here and leaves the subject alone. */
        PGresult *u = NULL;
        snprintf(seq, sizeof(seq), "%lld", (long long)cand[i].seq);
        const char *q[4] = {owner, until, seq, now};
        rc = run(o,
                 "UPDATE outbox SET lease_owner = $1, lease_until = $2::bigint"
                 " WHERE seq = $3::bigint AND status = 'waiting'"
                 " AND (lease_until <= $4::bigint OR lease_owner = $1) RETURNING seq",
                 4, q, PGRES_TUPLES_OK, &u);
        if (!rc && PQntuples(u) == 1) {
            taken[i] = true;
            got++;
        }
        PQclear(u);
    }
    PQclear(r);
    if (!rc)
        rc = run(o, "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL);
    else if (o->conn)
        (void)run(o, "ROLLBACK", 0, NULL, PGRES_COMMAND_OK, NULL);
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

static px_rc pg_waiting_before(void *impl, const char *tenant, const char *subject, int64_t ord,
                               bool *before)
{
    PGresult *r = NULL;
    char o[24];
    snprintf(o, sizeof(o), "%lld", (long long)ord);
    const char *p[3] = {tenant, subject, o};
    px_rc rc = run(impl,
                   "SELECT 1 FROM outbox WHERE tenant = $1 AND subject = $2 AND ord < $3::bigint"
                   " AND status = 'waiting' LIMIT 1",
                   3, p, PGRES_TUPLES_OK, &r);
    if (!rc)
        *before = PQntuples(r) > 0;
    PQclear(r);
    return rc;
}

static px_rc pg_mark(void *impl, int64_t seq, enum px_outbox_status st, const char *error,
                     int64_t next_ms, int64_t now_ms, bool count_attempt)
{
    char s[24], t[24];
    snprintf(s, sizeof(s), "%lld", (long long)seq);
    if (st == PX_OUTBOX_SENT) {
        snprintf(t, sizeof(t), "%lld", (long long)now_ms);
        const char *p[2] = {s, t};
        return run(impl,
                   "UPDATE outbox SET status = 'sent', sent_ms = $2::bigint, lease_owner = NULL,"
                   " lease_until = 0, last_error = NULL WHERE seq = $1::bigint",
                   2, p, PGRES_COMMAND_OK, NULL);
    }
    if (!count_attempt) {
        const char *p[1] = {s};
        return run(impl,
                   "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE seq = $1::bigint",
                   1, p, PGRES_COMMAND_OK, NULL);
    }
    snprintf(t, sizeof(t), "%lld", (long long)next_ms);
    const char *p[4] = {s, t, error ? error : "", st == PX_OUTBOX_FAILED ? "failed" : "waiting"};
    return run(impl,
               "UPDATE outbox SET attempts = attempts + 1, last_error = left($3, 500),"
               " next_ms = $2::bigint, lease_owner = NULL, lease_until = 0, status = $4"
               " WHERE seq = $1::bigint AND status = 'waiting'",
               4, p, PGRES_COMMAND_OK, NULL);
}

static px_rc pg_stats(void *impl, int64_t *waiting, int64_t *failed, int64_t *oldest_ms)
{
    PGresult *r = NULL;
    px_rc rc = run(impl,
                   "SELECT (SELECT count(*) FROM outbox WHERE status = 'waiting'),"
                   " (SELECT count(*) FROM outbox WHERE status = 'failed'),"
                   " coalesce((SELECT created_ms FROM outbox WHERE status = 'waiting'"
                   " ORDER BY seq LIMIT 1), 0)",
                   0, NULL, PGRES_TUPLES_OK, &r);
    if (!rc && PQntuples(r) == 1) {
        *waiting = i64(r, 0, 0);
        *failed = i64(r, 0, 1);
        *oldest_ms = i64(r, 0, 2);
    }
    PQclear(r);
    return rc;
}

const struct px_outbox_ops px_outbox_pg_ops = {
    .open = pg_open,
    .close = pg_close,
    .list = pg_list,
    .retry = pg_retry,
    .claim = pg_claim,
    .waiting_before = pg_waiting_before,
    .mark = pg_mark,
    .stats = pg_stats,
};
