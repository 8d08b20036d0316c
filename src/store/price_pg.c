/* price_pg.c: the PostgreSQL price store (spec "postgresql://user:pass@host:port/db").
 *
 * A fixed pool of libpq connections is shared by the request threads: a thread
 * borrows one under a mutex (waiting at most until its deadline), runs one
 * prepared statement with the product id as a bound parameter, and gives it
 * back. Connections are opened lazily (the first one at open, so a wrong URI
 * or a dead server stops start-up), prepared on first use, and replaced when
 * found broken: an idle connection whose socket turned readable is checked
 * before use, and a statement that fails on a connection error is retried
 * once on a fresh connection.
 *
 * Every wait on the server is poll() on PQsocket() bounded by one deadline per
 * call (timeout_ms), on a non-blocking connection: connect (PQconnectPoll),
 * send (PQflush) and receive (PQconsumeInput). A dead or hung server therefore
 * answers PX_ERR_UNAVAILABLE or PX_ERR_TIMEOUT in time; a connection abandoned
 * mid-statement is closed, never reused. connect_timeout and the session's
 * statement_timeout repeat the bound on the libpq and server sides.
 *
 * While the server is unreachable one call at a time probes it, at most every
 * RETRY_MS; the others answer PX_ERR_UNAVAILABLE at once instead of each
 * waiting out its deadline. The first success closes the breaker again.
 *
 * Seeding applies the versioned migrations built into the binary (infra/sql/
 * NNN_name.sql, see sql_assets.h; recorded in schema_migrations) and then the
 * seed, if any, all in one transaction under an advisory lock. */
#include "price.h"
#include "outbox.h"
#include "../kernel/log.h"
#include "sql_assets.h"

#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_DEFAULT     4
#define POOL_MAX         128
#define TIMEOUT_DEFAULT  2000
#define TIMEOUT_MAX      600000
#define SEED_TIMEOUT_MIN 10000
#define RETRY_MS         200
#define CONNECT_STEPS    1000 /* PQconnectPoll rounds; the deadline ends them sooner */
#define WHY_LEN          256

#define FRESH_MS 1000 /* a connection that answered this recently is used without a check */

/* slot_result()'s want for SQL files: any success (command, rows, nothing). */
#define ANY_OK PGRES_EMPTY_QUERY

#define GET_STMT "px_price_get"
#define GET_SQL  "SELECT price::text, currency FROM product_prices WHERE product_id = $1"
/* TENANCY=on: one tenant's price through the row-level security policies
 * (infra/sql/004_tenancy.sql): the function sets pricing.tenant for its own
 * statement, so one round trip still answers. */
#define GET_T_STMT "px_price_get_t"
#define GET_T_SQL  "SELECT price, currency FROM px_tenant_price($2, $1)"
/* Advisory lock key of the migrations ("pricing" in ASCII). */
#define MIGRATION_LOCK "31650994356579943"

struct slot {
    PGconn *conn;    /* NULL when closed */
    int64_t used_ms; /* when it last answered (now_ms clock) */
    bool in_use;
    bool prepared;
    bool prepared_t; /* GET_T_STMT, prepared on the first request with a tenant */
};

struct pg_store {
    /* Connection parameters for PQconnectStartParams, NULL-terminated. The
     * strings belong to info and to the buffers below. */
    const char **keys, **vals;
    PQconninfoOption *info;
    char *options;     /* the URI's "options" plus our statement_timeout */
    char ctimeout[24]; /* connect_timeout in seconds */
    char *shown;       /* the URI with its password masked, for messages */
    long timeout_ms;

    unsigned n;
    struct slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool sync_init;
    /* breaker, under mu */
    bool down;
    bool probing;
    int64_t retry_at;
};

/* What one call learnt about the server. */
struct call {
    int64_t deadline;
    bool lost;         /* the server could not be reached or stopped answering */
    bool answered;     /* the server answered a statement (even with an error) */
    char why[WHY_LEN]; /* first line of the last failure */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies the first line of msg (libpq messages end in "\n" and may add hints). */
static void first_line(char *out, size_t outlen, const char *msg)
{
    if (!outlen)
        return;
    if (!msg || !*msg)
        msg = "no message from libpq";
    size_t n = strcspn(msg, "\r\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, msg, n);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
}

static void why_conn(struct call *c, PGconn *conn)
{
    first_line(c->why, sizeof(c->why), conn ? PQerrorMessage(conn) : NULL);
}

static void why_result(struct call *c, const PGresult *r, PGconn *conn)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (m)
        first_line(c->why, sizeof(c->why), m);
    else
        why_conn(c, conn);
}

/* Masks the value of every password in a URI or key=value string: the user
 * info after ':' and "password=" parameters. out holds 2 * strlen(spec) + 8. */
PX_STATIC void px_price_pg_mask_uri(const char *spec, char *out, size_t outlen);
PX_STATIC void px_price_pg_mask_uri(const char *spec, char *out, size_t outlen)
{
    size_t o = 0, len = strlen(spec);
    const char *auth = strstr(spec, "://");
    const char *colon = NULL, *at = NULL;
    if (auth) {
        auth += 3;
        size_t alen = strcspn(auth, "/?#");
        for (size_t i = 0; i < alen; i++)
            if (auth[i] == '@')
                at = auth + i;
        if (at)
            colon = memchr(auth, ':', (size_t)(at - auth));
    }
    for (size_t i = 0; i < len && o + 4 < outlen;) {
        const char *p = spec + i;
        if (colon && p == colon) {
            memcpy(out + o, ":***", 4);
            o += 4;
            i = (size_t)(at - spec);
            continue;
        }
        bool boundary = i == 0 || spec[i - 1] == '?' || spec[i - 1] == '&' || spec[i - 1] == ' ';
        if (boundary && strncmp(p, "password=", 9) == 0) {
            if (o + 12 >= outlen)
                break; /* never copy a password for want of room */
            memcpy(out + o, "password=***", 12);
            o += 12;
            i += 9;
            while (i < len && spec[i] != '&' && spec[i] != ' ' && spec[i] != '#')
                i++;
            continue;
        }
        out[o++] = spec[i++];
    }
    out[o] = '\0';
}

/* Waits until fd is ready for events or the deadline passes. */
static px_rc wait_fd(int fd, short events, int64_t deadline, short *revents)
{
    if (fd < 0)
        return PX_ERR_UNAVAILABLE;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return PX_ERR_TIMEOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0) {
            if (revents)
                *revents = p.revents;
            return PX_OK;
        }
        if (r == 0)
            return PX_ERR_TIMEOUT;
        if (errno != EINTR)
            return PX_ERR_UNAVAILABLE;
    }
}

/* Server notices (NOTICE, the FATAL of a terminated session) go to the debug
 * log as one JSON line instead of libpq's default stderr. */
static void on_notice(void *arg, const char *msg)
{
    char line[WHY_LEN];
    PX_UNUSED(arg);
    first_line(line, sizeof(line), msg);
    PX_DEBUG(NULL, "price database notice: %s", line);
}

/* Opens one connection within the call's deadline. */
static px_rc pg_connect(struct pg_store *s, struct call *c, PGconn **out)
{
    px_rc rc = PX_OK;
    PGconn *conn = PQconnectStartParams(s->keys, s->vals, 0);
    *out = NULL;
    if (!conn) {
        snprintf(c->why, sizeof(c->why), "out of memory");
        return PX_ERR_NOMEM;
    }
    if (PQstatus(conn) == CONNECTION_BAD) {
        why_conn(c, conn);
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (int step = 0; st != PGRES_POLLING_OK; step++) {
        if (st == PGRES_POLLING_FAILED) {
            why_conn(c, conn);
            rc = PX_ERR_UNAVAILABLE;
            goto out;
        }
        if (step >= CONNECT_STEPS) {
            snprintf(c->why, sizeof(c->why), "connection set-up did not finish");
            rc = PX_ERR_PROTOCOL;
            goto out;
        }
        if (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) {
            short ev = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
            rc = wait_fd(PQsocket(conn), ev, c->deadline, NULL);
            if (rc) {
                if (rc == PX_ERR_TIMEOUT)
                    snprintf(c->why, sizeof(c->why), "no answer within the time-out");
                else
                    why_conn(c, conn);
                goto out;
            }
        }
        st = PQconnectPoll(conn);
    }
    if (PQsetnonblocking(conn, 1) != 0) {
        why_conn(c, conn);
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    *out = conn;
    conn = NULL;
out:
    if (conn)
        PQfinish(conn);
    return rc;
}

/* Collects the results of the command just sent: the first error, else the
 * last result. A non-OK return means the connection cannot be trusted. */
static px_rc pg_finish(PGconn *conn, struct call *c, PGresult **out)
{
    px_rc rc = PX_OK;
    PGresult *keep = NULL;
    int f;
    *out = NULL;
    /* A large command (a seed file) may not fit the socket at once. */
    while ((f = PQflush(conn)) == 1) {
        short rev = 0;
        rc = wait_fd(PQsocket(conn), POLLIN | POLLOUT, c->deadline, &rev);
        if (rc)
            goto out;
        if ((rev & POLLIN) && !PQconsumeInput(conn)) {
            rc = PX_ERR_UNAVAILABLE;
            goto out;
        }
    }
    if (f < 0) {
        rc = PX_ERR_UNAVAILABLE;
        goto out;
    }
    for (;;) {
        while (PQisBusy(conn)) {
            rc = wait_fd(PQsocket(conn), POLLIN, c->deadline, NULL);
            if (rc)
                goto out;
            if (!PQconsumeInput(conn)) {
                rc = PX_ERR_UNAVAILABLE;
                goto out;
            }
        }
        PGresult *r = PQgetResult(conn);
        if (!r)
            break;
        ExecStatusType st = PQresultStatus(r);
        bool keep_err = keep && PQresultStatus(keep) == PGRES_FATAL_ERROR;
        if (keep_err) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
        /* After a connection error libpq has nothing more to give. */
        if (st == PGRES_FATAL_ERROR && PQstatus(conn) == CONNECTION_BAD)
            break;
    }
    *out = keep;
    keep = NULL;
out:
    if (rc == PX_ERR_TIMEOUT)
        snprintf(c->why, sizeof(c->why), "no answer within the time-out");
    else if (rc)
        why_conn(c, conn);
    PQclear(keep);
    return rc;
}

/* Maps a failed result to a px_rc; *conn_lost when the connection is gone. */
static px_rc classify(PGconn *conn, const PGresult *r, bool *conn_lost)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    *conn_lost = PQstatus(conn) != CONNECTION_OK;
    if (*conn_lost || !state)
        return PX_ERR_UNAVAILABLE;
    if (strcmp(state, "57014") == 0) /* query_canceled: our statement_timeout */
        return PX_ERR_TIMEOUT;
    /* connection exceptions, shutdown, resources, missing schema or statement */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
        strncmp(state, "53", 2) == 0 || strcmp(state, "42P01") == 0 ||
        strcmp(state, "26000") == 0 || strcmp(state, "25006") == 0)
        return PX_ERR_UNAVAILABLE;
    return PX_ERR_INTERNAL;
}

static void slot_drop(struct slot *sl)
{
    if (sl->conn)
        PQfinish(sl->conn);
    sl->conn = NULL;
    sl->prepared = sl->prepared_t = false;
}

/* true when an idle connection is still usable: a readable socket on an idle
 * connection means the server said something, usually goodbye. */
static bool slot_alive(struct slot *sl)
{
    if (!sl->conn || PQstatus(sl->conn) != CONNECTION_OK)
        return false;
    struct pollfd p = {.fd = PQsocket(sl->conn), .events = POLLIN};
    if (p.fd < 0)
        return false;
    int r = poll(&p, 1, 0);
    if (r <= 0)
        return r == 0;
    if (!PQconsumeInput(sl->conn) || PQstatus(sl->conn) != CONNECTION_OK)
        return false;
    /* Anything but a notice on an idle connection is out of step. */
    return !PQisBusy(sl->conn);
}

/* Makes sl connected; *fresh when a new connection was opened. One that
 * answered less than FRESH_MS ago is used unchecked (a poll saved per
 * look-up): should the server have closed it all the same, the command
 * fails with the connection lost, and pg_call sends it once more on a new
 * one, as it does when the check itself is fooled. */
static px_rc slot_connect(struct pg_store *s, struct slot *sl, struct call *c, bool *fresh)
{
    *fresh = false;
    if (sl->conn && now_ms() - sl->used_ms < FRESH_MS && PQstatus(sl->conn) == CONNECTION_OK)
        return PX_OK;
    if (sl->conn && slot_alive(sl))
        return PX_OK;
    slot_drop(sl);
    px_rc rc = pg_connect(s, c, &sl->conn);
    if (rc) {
        c->lost = true;
        return rc == PX_ERR_TIMEOUT ? PX_ERR_TIMEOUT : PX_ERR_UNAVAILABLE;
    }
    *fresh = true;
    return PX_OK;
}

/* Runs the command just sent and checks its status; on failure says whether a
 * retry on a new connection may help. The result is the caller's on PX_OK. */
static px_rc slot_result(struct slot *sl, struct call *c, ExecStatusType want, PGresult **out,
                         bool *retry)
{
    PGresult *r = NULL;
    *retry = false;
    *out = NULL;
    px_rc rc = pg_finish(sl->conn, c, &r);
    if (rc) {
        /* A statement may still be in flight: the connection is done for. */
        slot_drop(sl);
        c->lost = true;
        *retry = rc != PX_ERR_TIMEOUT;
        return rc;
    }
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (r && (st == want || (want == ANY_OK && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
                                                st == PGRES_EMPTY_QUERY)))) {
        c->answered = true;
        sl->used_ms = now_ms();
        *out = r;
        return PX_OK;
    }
    bool conn_lost = false;
    rc = r ? classify(sl->conn, r, &conn_lost) : PX_ERR_PROTOCOL;
    why_result(c, r, sl->conn);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    c->answered = !conn_lost;
    if (conn_lost) {
        slot_drop(sl);
        c->lost = true;
        *retry = true;
    } else if (state && strcmp(state, "26000") == 0) {
        /* the statements vanished (DISCARD ALL, a pooler) */
        sl->prepared = sl->prepared_t = false;
        *retry = true;
    }
    /* A missing table (42P01) keeps `prepared` as it is: a failed PREPARE
     * left nothing behind and is tried again anyway, while a prepared
     * statement whose table was dropped stays on the server and finds the
     * table again once it exists; preparing it anew would fail for good with
     * "already exists". */
    PQclear(r);
    return rc;
}

static px_rc slot_prepare(struct slot *sl, struct call *c, bool tenant, bool *retry)
{
    *retry = false;
    bool *done = tenant ? &sl->prepared_t : &sl->prepared;
    if (*done)
        return PX_OK;
    if (!PQsendPrepare(sl->conn, tenant ? GET_T_STMT : GET_STMT, tenant ? GET_T_SQL : GET_SQL,
                       tenant ? 2 : 1, NULL)) {
        why_conn(c, sl->conn);
        slot_drop(sl);
        *retry = true;
        return PX_ERR_UNAVAILABLE;
    }
    PGresult *r = NULL;
    px_rc rc = slot_result(sl, c, PGRES_COMMAND_OK, &r, retry);
    PQclear(r);
    if (!rc)
        *done = true;
    return rc;
}

/* Copies at most cap - 1 bytes of a text value; PX_ERR_PROTOCOL when longer. */
static px_rc copy_value(const PGresult *r, int col, char *dst, size_t cap)
{
    if (PQgetisnull(r, 0, col))
        return PX_ERR_PROTOCOL;
    int len = PQgetlength(r, 0, col);
    if (len <= 0 || (size_t)len >= cap)
        return PX_ERR_PROTOCOL;
    memcpy(dst, PQgetvalue(r, 0, col), (size_t)len);
    dst[len] = '\0';
    return PX_OK;
}

static px_rc run_get(struct slot *sl, struct call *c, const char *tenant, const char *id,
                     struct px_price *out, bool *retry)
{
    px_rc rc = slot_prepare(sl, c, tenant != NULL, retry);
    if (rc)
        return rc;
    const char *params[2] = {id, tenant};
    if (!PQsendQueryPrepared(sl->conn, tenant ? GET_T_STMT : GET_STMT, tenant ? 2 : 1, params, NULL,
                             NULL, 0)) {
        why_conn(c, sl->conn);
        slot_drop(sl);
        *retry = true;
        return PX_ERR_UNAVAILABLE;
    }
    PGresult *r = NULL;
    rc = slot_result(sl, c, PGRES_TUPLES_OK, &r, retry);
    if (rc)
        return rc;
    if (PQnfields(r) != 2 || PQntuples(r) > 1) {
        snprintf(c->why, sizeof(c->why), "unexpected result shape");
        rc = PX_ERR_PROTOCOL;
    } else if (PQntuples(r) == 0) {
        rc = PX_ERR_NOT_FOUND;
    } else {
        rc = copy_value(r, 0, out->price, sizeof(out->price));
        if (!rc)
            rc = copy_value(r, 1, out->currency, sizeof(out->currency));
        if (rc)
            snprintf(c->why, sizeof(c->why), "stored price or currency does not fit");
    }
    PQclear(r);
    return rc;
}

static px_rc run_ping(struct slot *sl, struct call *c, bool *retry)
{
    if (!PQsendQueryParams(sl->conn, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0)) {
        why_conn(c, sl->conn);
        slot_drop(sl);
        *retry = true;
        return PX_ERR_UNAVAILABLE;
    }
    PGresult *r = NULL;
    px_rc rc = slot_result(sl, c, PGRES_TUPLES_OK, &r, retry);
    PQclear(r);
    return rc;
}

static void abs_time(int64_t deadline_ms, struct timespec *ts)
{
    /* deadline is on CLOCK_MONOTONIC, the condition variable's clock */
    ts->tv_sec = (time_t)(deadline_ms / 1000);
    ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

/* Borrows a slot, preferring one already connected; bounded by the deadline. */
static px_rc slot_acquire(struct pg_store *s, int64_t deadline, struct slot **out)
{
    px_rc rc = PX_OK;
    struct timespec ts;
    abs_time(deadline, &ts);
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    while (!*out) {
        struct slot *idle = NULL;
        for (unsigned i = 0; i < s->n; i++) {
            struct slot *sl = &s->slots[i];
            if (sl->in_use)
                continue;
            if (sl->conn) {
                idle = sl;
                break;
            }
            if (!idle)
                idle = sl;
        }
        if (idle) {
            idle->in_use = true;
            *out = idle;
            break;
        }
        int e = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (e == ETIMEDOUT) {
            rc = PX_ERR_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void slot_release(struct pg_store *s, struct slot *sl)
{
    pthread_mutex_lock(&s->mu);
    sl->in_use = false;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Breaker: PX_ERR_UNAVAILABLE at once while the server is known down and
 * another call is probing it or the retry interval has not passed. */
static px_rc gate_enter(struct pg_store *s, bool *probe)
{
    px_rc rc = PX_OK;
    *probe = false;
    pthread_mutex_lock(&s->mu);
    if (s->down) {
        if (s->probing || now_ms() < s->retry_at)
            rc = PX_ERR_UNAVAILABLE;
        else
            s->probing = *probe = true;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void gate_leave(struct pg_store *s, bool probe, const struct call *c)
{
    bool went_down = false, came_back = false;
    pthread_mutex_lock(&s->mu);
    if (probe)
        s->probing = false;
    if (c->lost) {
        went_down = !s->down;
        s->down = true;
        s->retry_at = now_ms() + RETRY_MS;
    } else if (s->down && c->answered) {
        s->down = false;
        came_back = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (went_down)
        PX_WARN(NULL, "price database %s unreachable: %s", s->shown, c->why);
    if (came_back)
        PX_INFO(NULL, "price database %s reachable again", s->shown);
}

enum op { OP_GET, OP_PING };

/* One bounded call: gate, borrow, (re)connect, run, retry once when a reused
 * connection turned out dead, give back. */
static px_rc pg_call(struct pg_store *s, enum op op, const char *tenant, const char *id,
                     struct px_price *out)
{
    struct call c = {.deadline = now_ms() + s->timeout_ms};
    struct slot *sl = NULL;
    bool probe = false;
    px_rc rc = gate_enter(s, &probe);
    if (rc)
        return rc;
    rc = slot_acquire(s, c.deadline, &sl);
    if (rc)
        goto out;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = false, retry = false;
        c.lost = c.answered = false;
        rc = slot_connect(s, sl, &c, &fresh);
        if (rc)
            break;
        rc = op == OP_GET ? run_get(sl, &c, tenant, id, out, &retry) : run_ping(sl, &c, &retry);
        if (!rc || !retry || fresh)
            break;
    }
out:
    if (sl)
        slot_release(s, sl);
    gate_leave(s, probe, &c);
    return rc;
}

/* A tenant other than "default" (CONTRACT §12): its rows are in tenant_prices. */
static bool other_tenant(const char *tenant)
{
    return tenant && strcmp(tenant, "default") != 0;
}

static px_rc pg_get(void *impl, const char *tenant, const char *product_id, struct px_price *out)
{
    struct pg_store *s = impl;
    if (!s || !product_id || !out)
        return PX_ERR_INVALID;
    size_t len = strnlen(product_id, PX_MAX_PRODUCT_ID + 1);
    if (len == 0 || len > PX_MAX_PRODUCT_ID)
        return PX_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    memcpy(out->product_id, product_id, len);
    /* TENANCY=off (NULL): the statement it always was; on: through the policies */
    px_rc rc = pg_call(s, OP_GET, tenant, product_id, out);
    if (rc) {
        out->price[0] = out->currency[0] = '\0';
    }
    return rc;
}

static px_rc pg_ping(void *impl)
{
    struct pg_store *s = impl;
    if (!s)
        return PX_ERR_INVALID;
    return pg_call(s, OP_PING, NULL, NULL, NULL);
}

static void pg_close(void *impl)
{
    struct pg_store *s = impl;
    if (!s)
        return;
    for (unsigned i = 0; s->slots && i < s->n; i++)
        slot_drop(&s->slots[i]);
    if (s->sync_init) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    free(s->slots);
    free(s->keys);
    free(s->vals);
    PQconninfoFree(s->info);
    free(s->options);
    free(s->shown);
    free(s);
}

/* Builds the connection parameters: the URI's own, then our bounds. */
static px_rc build_params(struct pg_store *s, const char *spec, char *err, size_t errlen)
{
    char *perr = NULL;
    s->info = PQconninfoParse(spec, &perr);
    if (!s->info) {
        char line[WHY_LEN];
        first_line(line, sizeof(line), perr ? perr : "out of memory");
        snprintf(err, errlen, "PRICE_DB: invalid PostgreSQL URI %s: %s", s->shown, line);
        PQfreemem(perr);
        return PX_ERR_CONFIG;
    }
    size_t n = 0;
    const char *user_opts = NULL;
    bool have_app = false, have_enc = false;
    for (PQconninfoOption *o = s->info; o->keyword; o++) {
        n++;
        if (o->val && strcmp(o->keyword, "options") == 0)
            user_opts = o->val;
        if (o->val && strcmp(o->keyword, "application_name") == 0)
            have_app = true;
        if (o->val && strcmp(o->keyword, "client_encoding") == 0)
            have_enc = true;
    }
    size_t olen = (user_opts ? strlen(user_opts) : 0) + 64;
    s->options = malloc(olen);
    s->keys = calloc(n + 5, sizeof(*s->keys));
    s->vals = calloc(n + 5, sizeof(*s->vals));
    if (!s->options || !s->keys || !s->vals) {
        snprintf(err, errlen, "PRICE_DB: out of memory");
        return PX_ERR_NOMEM;
    }
    /* The server cancels a statement a little before the client would give
     * up, so a slow statement (a lock wait) reads as a timeout from a live
     * server, not as a lost one. */
    long stmt_ms = s->timeout_ms - s->timeout_ms / 10;
    snprintf(s->options, olen, "%s%s-c statement_timeout=%ld", user_opts ? user_opts : "",
             user_opts ? " " : "", stmt_ms < 1 ? 1 : stmt_ms);
    /* libpq counts whole seconds and treats anything below 2 as 2. */
    long secs = (s->timeout_ms + 999) / 1000;
    snprintf(s->ctimeout, sizeof(s->ctimeout), "%ld", secs < 2 ? 2 : secs);
    size_t k = 0;
    for (PQconninfoOption *o = s->info; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "options") == 0 ||
            strcmp(o->keyword, "connect_timeout") == 0)
            continue;
        s->keys[k] = o->keyword;
        s->vals[k++] = o->val;
    }
    s->keys[k] = "options";
    s->vals[k++] = s->options;
    s->keys[k] = "connect_timeout";
    s->vals[k++] = s->ctimeout;
    if (!have_app) {
        s->keys[k] = "application_name";
        s->vals[k++] = "pricing";
    }
    if (!have_enc) {
        s->keys[k] = "client_encoding";
        s->vals[k++] = "UTF8";
    }
    s->keys[k] = NULL;
    s->vals[k] = NULL;
    return PX_OK;
}

static px_rc pg_open(const char *spec, const struct px_price_opts *opts, void **impl, char *err,
                     size_t errlen)
{
    px_rc rc = PX_OK;
    struct pg_store *s = NULL;
    *impl = NULL;
    if (!spec || !*spec) {
        snprintf(err, errlen, "PRICE_DB: empty PostgreSQL URI");
        return PX_ERR_CONFIG;
    }
    unsigned pool = opts && opts->pool_size ? opts->pool_size : POOL_DEFAULT;
    if (pool > POOL_MAX) {
        snprintf(err, errlen, "PRICE_DB: pool of %u connections is over the cap of %d", pool,
                 POOL_MAX);
        return PX_ERR_CONFIG;
    }
    s = calloc(1, sizeof(*s));
    size_t shown_len = 2 * strlen(spec) + 8;
    if (s)
        s->shown = malloc(shown_len);
    if (s)
        s->slots = calloc(pool, sizeof(*s->slots));
    if (!s || !s->shown || !s->slots) {
        snprintf(err, errlen, "PRICE_DB: out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    px_price_pg_mask_uri(spec, s->shown, shown_len);
    s->n = pool;
    long t = opts ? opts->timeout_ms : 0;
    s->timeout_ms = t <= 0 ? TIMEOUT_DEFAULT : t > TIMEOUT_MAX ? TIMEOUT_MAX : t;
    rc = build_params(s, spec, err, errlen);
    if (rc)
        goto out;

    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        rc = PX_ERR_NOMEM;
        snprintf(err, errlen, "PRICE_DB: cannot set up the pool");
        goto out;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int e1 = pthread_mutex_init(&s->mu, NULL);
    int e2 = e1 ? -1 : pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (e1 || e2) {
        if (!e1)
            pthread_mutex_destroy(&s->mu);
        rc = PX_ERR_NOMEM;
        snprintf(err, errlen, "PRICE_DB: cannot set up the pool");
        goto out;
    }
    s->sync_init = true;

    /* One connection now: a wrong URI, password or a dead server stops start-up. */
    struct call c = {.deadline = now_ms() + s->timeout_ms};
    bool fresh = false, retry = false;
    rc = slot_connect(s, &s->slots[0], &c, &fresh);
    if (rc) {
        snprintf(err, errlen, "PRICE_DB: cannot connect to %s: %s", s->shown, c.why);
        goto out;
    }
    if (!opts || !opts->create) {
        rc = slot_prepare(&s->slots[0], &c, false, &retry);
        if (rc) {
            const char *hint = strstr(c.why, "does not exist") ? " (run: pricing db seed)" : "";
            snprintf(err, errlen, "PRICE_DB: %s: cannot prepare the price look-up: %s%s", s->shown,
                     c.why, hint);
            goto out;
        }
    }
    *impl = s;
    s = NULL;
out:
    pg_close(s);
    return rc;
}

/* ---- seeding: migrations and the seed file ---- */

/* "NNN_words.sql": version NNN; false for anything else. */
PX_STATIC bool px_price_pg_migration_name(const char *name, long *version);
PX_STATIC bool px_price_pg_migration_name(const char *name, long *version)
{
    size_t len = strlen(name), d = strspn(name, "0123456789");
    if (d == 0 || d > 9 || name[d] != '_' || len < d + 6 || strcmp(name + len - 4, ".sql") != 0)
        return false;
    for (size_t i = d + 1; i < len - 4; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok)
            return false;
    }
    *version = strtol(name, NULL, 10);
    return true;
}

/* Versions of the built-in migrations into v[] (px_sql_assets_nmigrations
 * entries). The build already refused bad names and shared versions; this
 * keeps a hand-edited generated file from recording nonsense. */
static px_rc migration_versions(long *v, char *err, size_t errlen)
{
    for (size_t i = 0; i < px_sql_assets_nmigrations; i++) {
        const char *name = px_sql_assets_migrations[i].name;
        if (!px_price_pg_migration_name(name, &v[i]) || (i > 0 && v[i] <= v[i - 1])) {
            snprintf(err, errlen, "PRICE_DB: built-in migration %s is out of order", name);
            return PX_ERR_INTERNAL;
        }
    }
    return px_sql_assets_nmigrations ? PX_OK : PX_ERR_INTERNAL;
}

/* Runs sql (one or more statements, no parameters, or one statement with
 * nparams text parameters) and expects want; err names what. */
static px_rc seed_exec(struct slot *sl, struct call *c, const char *what, const char *sql,
                       int nparams, const char *const *params, ExecStatusType want, PGresult **res,
                       char *err, size_t errlen)
{
    int sent = nparams ? PQsendQueryParams(sl->conn, sql, nparams, NULL, params, NULL, NULL, 0)
                       : PQsendQuery(sl->conn, sql);
    PGresult *r = NULL;
    bool retry = false;
    px_rc rc;
    if (!sent) {
        why_conn(c, sl->conn);
        slot_drop(sl);
        rc = PX_ERR_UNAVAILABLE;
    } else {
        rc = slot_result(sl, c, want, &r, &retry);
    }
    if (rc) {
        snprintf(err, errlen, "PRICE_DB: %s failed: %s", what, c->why);
        return rc;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return PX_OK;
}

static bool applied(const PGresult *r, long version)
{
    for (int i = 0; i < PQntuples(r); i++)
        if (strtol(PQgetvalue(r, i, 0), NULL, 10) == version)
            return true;
    return false;
}

/* A seed for a tenant other than "default" runs against a temporary
 * product_prices (pg_temp comes first in the search path), so a seed file
 * written for the default tenant loads unchanged; its rows then move into
 * tenant_prices in the same transaction. */
static const char TENANT_SEED_BEGIN[] =
    "CREATE TEMP TABLE product_prices (product_id TEXT PRIMARY KEY, price NUMERIC NOT NULL,"
    " currency CHAR(3) NOT NULL) ON COMMIT DROP";
static const char TENANT_SEED_MOVE[] =
    "INSERT INTO tenant_prices (tenant_id, product_id, price, currency)"
    " SELECT $1, product_id, price, currency FROM pg_temp.product_prices"
    " ON CONFLICT (tenant_id, product_id) DO UPDATE SET price = EXCLUDED.price,"
    " currency = EXCLUDED.currency";

static px_rc seed_in_tx(struct slot *sl, struct call *c, const long *versions, const char *tenant,
                        const char *name, const char *sql, long timeout_ms, char *err,
                        size_t errlen)
{
    char tmo[24], ver[24], what[NAME_MAX + 32];
    PGresult *done = NULL;
    snprintf(tmo, sizeof(tmo), "%ld", timeout_ms);
    const char *p_tmo[1] = {tmo};
    const char *p_lock[1] = {MIGRATION_LOCK};
    px_rc rc = seed_exec(sl, c, "setting the statement time-out",
                         "SELECT set_config('statement_timeout', $1, true)", 1, p_tmo,
                         PGRES_TUPLES_OK, NULL, err, errlen);
    if (!rc)
        rc = seed_exec(sl, c, "taking the migration lock", "SELECT pg_advisory_xact_lock($1)", 1,
                       p_lock, PGRES_TUPLES_OK, NULL, err, errlen);
    if (!rc)
        rc = seed_exec(sl, c, "creating schema_migrations",
                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       " version BIGINT PRIMARY KEY,"
                       " name TEXT NOT NULL,"
                       " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                       0, NULL, PGRES_COMMAND_OK, NULL, err, errlen);
    if (!rc)
        rc = seed_exec(sl, c, "reading schema_migrations", "SELECT version FROM schema_migrations",
                       0, NULL, PGRES_TUPLES_OK, &done, err, errlen);
    for (size_t i = 0; !rc && i < px_sql_assets_nmigrations; i++) {
        const struct px_sql_asset *m = &px_sql_assets_migrations[i];
        if (applied(done, versions[i]))
            continue;
        snprintf(what, sizeof(what), "migration %s", m->name);
        rc = seed_exec(sl, c, what, m->text, 0, NULL, ANY_OK, NULL, err, errlen);
        snprintf(ver, sizeof(ver), "%ld", versions[i]);
        const char *p_rec[2] = {ver, m->name};
        if (!rc)
            rc = seed_exec(sl, c, "recording a migration",
                           "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                           p_rec, PGRES_COMMAND_OK, NULL, err, errlen);
    }
    bool other = sql && tenant && strcmp(tenant, "default") != 0;
    if (!rc && other)
        rc = seed_exec(sl, c, "a tenant's seed table", TENANT_SEED_BEGIN, 0, NULL, PGRES_COMMAND_OK,
                       NULL, err, errlen);
    if (!rc && sql) {
        rc = seed_exec(sl, c, "loading the seed", sql, 0, NULL, ANY_OK, NULL, err, errlen);
        if (rc)
            snprintf(err, errlen, "%s: %s", name ? name : "seed", c->why);
    }
    if (!rc && other)
        rc = seed_exec(sl, c, "moving the seed into its tenant", TENANT_SEED_MOVE, 1, &tenant,
                       PGRES_COMMAND_OK, NULL, err, errlen);
    PQclear(done);
    return rc;
}

static px_rc seed_run(void *impl, const char *tenant, const char *name, const char *sql, char *err,
                      size_t errlen)
{
    struct pg_store *s = impl;
    struct slot *sl = NULL;
    long *versions = NULL;
    bool in_tx = false;
    if (!s)
        return PX_ERR_INVALID;
    long timeout = s->timeout_ms < SEED_TIMEOUT_MIN ? SEED_TIMEOUT_MIN : s->timeout_ms;
    struct call c = {.deadline = now_ms() + timeout};
    px_rc rc = PX_OK;
    versions = calloc(px_sql_assets_nmigrations + 1, sizeof(*versions));
    if (!versions) {
        snprintf(err, errlen, "PRICE_DB: out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    rc = migration_versions(versions, err, errlen);
    if (rc)
        goto out;
    rc = slot_acquire(s, c.deadline, &sl);
    if (rc) {
        snprintf(err, errlen, "PRICE_DB: no free connection");
        goto out;
    }
    bool fresh = false;
    rc = slot_connect(s, sl, &c, &fresh);
    if (rc) {
        snprintf(err, errlen, "PRICE_DB: cannot connect to %s: %s", s->shown, c.why);
        goto out;
    }
    rc = seed_exec(sl, &c, "BEGIN", "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL, err, errlen);
    if (rc)
        goto out;
    in_tx = true;
    rc = seed_in_tx(sl, &c, versions, tenant, name, sql, timeout, err, errlen);
    if (rc)
        goto out;
    rc = seed_exec(sl, &c, "COMMIT", "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, err, errlen);
    in_tx = false;
out:
    if (in_tx && sl && sl->conn) {
        char ignore[WHY_LEN];
        struct call rb = {.deadline = now_ms() + s->timeout_ms};
        if (seed_exec(sl, &rb, "ROLLBACK", "ROLLBACK", 0, NULL, PGRES_COMMAND_OK, NULL, ignore,
                      sizeof(ignore)) != PX_OK)
            slot_drop(sl);
    }
    if (sl)
        slot_release(s, sl);
    free(versions);
    return rc;
}

static px_rc pg_seed(void *impl, const char *name, const char *sql, char *err, size_t errlen)
{
    return seed_run(impl, NULL, name, sql, err, errlen);
}

static px_rc pg_seed_tenant(void *impl, const char *tenant, const char *name, const char *sql,
                            char *err, size_t errlen)
{
    return seed_run(impl, tenant, name, sql, err, errlen);
}

/* One statement, so the history row and the price commit together (an
 * implicit transaction); a withdrawal deletes the price and keeps the history. */
static const char SET_SQL[] =
    "WITH h AS (INSERT INTO price_history (product_id, amount, currency, effective_from,"
    " changed_by, request_id) VALUES ($1, $2::numeric, $3, $4, $5, $6) RETURNING 1)"
    " INSERT INTO product_prices (product_id, price, currency)"
    " SELECT $1, $2::numeric, $3 FROM h"
    " ON CONFLICT (product_id) DO UPDATE SET price = EXCLUDED.price, currency = EXCLUDED.currency";
static const char WITHDRAW_SQL[] = "DELETE FROM product_prices WHERE product_id = $1";
static const char HISTORY_SQL[] =
    "SELECT amount::text, currency, effective_from, changed_by, request_id FROM price_history"
    " WHERE product_id = $1 ORDER BY seq LIMIT $2";
/* TENANCY=on, inside a transaction whose pricing.tenant is $7 (or $3). */
static const char SET_T_SQL[] =
    "WITH h AS (INSERT INTO price_history (product_id, amount, currency, effective_from,"
    " changed_by, request_id, tenant_id) VALUES ($1, $2::numeric, $3, $4, $5, $6, $7)"
    " RETURNING 1)"
    " INSERT INTO tenant_prices (tenant_id, product_id, price, currency)"
    " SELECT $7, $1, $2::numeric, $3 FROM h"
    " ON CONFLICT (tenant_id, product_id) DO UPDATE SET price = EXCLUDED.price,"
    " currency = EXCLUDED.currency";
static const char SET_DEFAULT_T_SQL[] =
    "WITH h AS (INSERT INTO price_history (product_id, amount, currency, effective_from,"
    " changed_by, request_id, tenant_id) VALUES ($1, $2::numeric, $3, $4, $5, $6, $7)"
    " RETURNING 1)"
    " INSERT INTO product_prices (product_id, price, currency)"
    " SELECT $1, $2::numeric, $3 FROM h"
    " ON CONFLICT (product_id) DO UPDATE SET price = EXCLUDED.price, currency = EXCLUDED.currency";
static const char WITHDRAW_T_SQL[] =
    "DELETE FROM tenant_prices WHERE tenant_id = $2 AND product_id = $1";
static const char HISTORY_T_SQL[] =
    "SELECT amount::text, currency, effective_from, changed_by, request_id FROM price_history"
    " WHERE tenant_id = $3 AND product_id = $1 ORDER BY seq LIMIT $2";
static const char TENANT_TX_SQL[] = "SELECT set_config('pricing.tenant', $1, true)";

/* Borrows a connected slot for one write or history read. */
static px_rc slot_ready(struct pg_store *s, struct call *c, struct slot **out)
{
    bool fresh = false;
    *out = NULL;
    px_rc rc = slot_acquire(s, c->deadline, out);
    if (!rc)
        rc = slot_connect(s, *out, c, &fresh);
    if (rc && *out) {
        slot_release(s, *out);
        *out = NULL;
    }
    return rc;
}

static const char OUTBOX_SQL[] =
    "INSERT INTO outbox (tenant, id, subject, type, ord, event, created_ms)"
    " VALUES ($1, $2::uuid, $3, $4, $5::bigint, $6, $7::bigint)";

/* The change and its event (when there is one) in one transaction: the event
 * exists exactly when the price row changed (outbox.h). */
static px_rc pg_set(void *impl, const struct px_price_change *pc)
{
    struct pg_store *s = impl;
    struct slot *sl = NULL;
    char err[WHY_LEN + 64];
    bool in_tx = false;
    if (!s || !pc)
        return PX_ERR_INVALID;
    struct call c = {.deadline = now_ms() + s->timeout_ms};
    px_rc rc = slot_ready(s, &c, &sl);
    if (rc)
        return rc;
    /* TENANCY=on: a transaction whose pricing.tenant names the tenant, so the
     * row-level security policies check every row written. */
    const char *t = pc->tenant;
    const char *p[7] = {
        pc->product_id, pc->amount, pc->currency, pc->effective_from, pc->changed_by,
        pc->request_id, t};
    const char *pw[2] = {pc->product_id, t};
    if (pc->event || t) {
        rc = seed_exec(sl, &c, "BEGIN", "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL, err, sizeof(err));
        in_tx = !rc;
    }
    if (!rc && t)
        rc = seed_exec(sl, &c, "tenant", TENANT_TX_SQL, 1, &t, PGRES_TUPLES_OK, NULL, err,
                       sizeof(err));
    if (!rc && pc->amount)
        rc = seed_exec(sl, &c, "price change",
                       !t                ? SET_SQL
                       : other_tenant(t) ? SET_T_SQL
                                         : SET_DEFAULT_T_SQL,
                       t ? 7 : 6, p, PGRES_COMMAND_OK, NULL, err, sizeof(err));
    else if (!rc)
        rc = seed_exec(sl, &c, "price withdrawal", other_tenant(t) ? WITHDRAW_T_SQL : WITHDRAW_SQL,
                       other_tenant(t) ? 2 : 1, pw, PGRES_COMMAND_OK, NULL, err, sizeof(err));
    if (!rc && pc->event) {
        const struct px_event *ev = pc->event;
        char ord[24], created[24];
        snprintf(ord, sizeof(ord), "%lld", (long long)ev->ord);
        snprintf(created, sizeof(created), "%lld", (long long)ev->time_ms);
        const char *q[7] = {ev->tenant ? ev->tenant : PX_EVENT_TENANT,
                            ev->id,
                            ev->subject,
                            ev->type,
                            ord,
                            ev->json,
                            created};
        rc = seed_exec(sl, &c, "price change event", OUTBOX_SQL, 7, q, PGRES_COMMAND_OK, NULL, err,
                       sizeof(err));
    }
    if (!rc && in_tx) {
        rc = seed_exec(sl, &c, "COMMIT", "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, err,
                       sizeof(err));
        in_tx = false;
    }
    if (rc)
        PX_WARN(NULL, "%s", err);
    if (in_tx && sl->conn) {
        char ignore[WHY_LEN + 64];
        struct call rb = {.deadline = now_ms() + s->timeout_ms};
        if (seed_exec(sl, &rb, "ROLLBACK", "ROLLBACK", 0, NULL, PGRES_COMMAND_OK, NULL, ignore,
                      sizeof(ignore)) != PX_OK)
            slot_drop(sl);
    }
    slot_release(s, sl);
    return rc;
}

static px_rc pg_history(void *impl, const char *tenant, const char *product_id, size_t max,
                        struct px_arena *a, struct px_price_history_row **rows, size_t *n)
{
    struct pg_store *s = impl;
    struct slot *sl = NULL;
    PGresult *r = NULL;
    char err[WHY_LEN + 64], lim[24];
    bool in_tx = false;
    struct call c = {.deadline = now_ms() + s->timeout_ms};
    px_rc rc = slot_ready(s, &c, &sl);
    if (rc)
        return rc;
    snprintf(lim, sizeof(lim), "%zu", max);
    const char *p[3] = {product_id, lim, tenant};
    if (tenant) { /* TENANCY=on: read through the policies, like pg_set */
        rc = seed_exec(sl, &c, "BEGIN", "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL, err, sizeof(err));
        in_tx = !rc;
        if (!rc)
            rc = seed_exec(sl, &c, "tenant", TENANT_TX_SQL, 1, &tenant, PGRES_TUPLES_OK, NULL, err,
                           sizeof(err));
    }
    if (!rc)
        rc = seed_exec(sl, &c, "price history", tenant ? HISTORY_T_SQL : HISTORY_SQL,
                       tenant ? 3 : 2, p, PGRES_TUPLES_OK, &r, err, sizeof(err));
    if (!rc && in_tx) {
        rc = seed_exec(sl, &c, "COMMIT", "COMMIT", 0, NULL, PGRES_COMMAND_OK, NULL, err,
                       sizeof(err));
        in_tx = !!rc;
    }
    if (in_tx && sl->conn) {
        char ignore[WHY_LEN + 64];
        struct call rb = {.deadline = now_ms() + s->timeout_ms};
        if (seed_exec(sl, &rb, "ROLLBACK", "ROLLBACK", 0, NULL, PGRES_COMMAND_OK, NULL, ignore,
                      sizeof(ignore)) != PX_OK)
            slot_drop(sl);
    }
    if (rc) {
        PX_WARN(NULL, "%s", err);
        goto out;
    }
    size_t k = (size_t)PQntuples(r);
    struct px_price_history_row *out = px_arena_calloc(a, (k ? k : 1) * sizeof(*out));
    if (!out || PQnfields(r) != 5 || k > max) {
        rc = out ? PX_ERR_PROTOCOL : PX_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; !rc && i < k; i++) {
        struct {
            char *dst;
            size_t cap;
        } f[5] = {{out[i].amount, sizeof(out[i].amount)},
                  {out[i].currency, sizeof(out[i].currency)},
                  {out[i].effective_from, sizeof(out[i].effective_from)},
                  {out[i].changed_by, sizeof(out[i].changed_by)},
                  {out[i].request_id, sizeof(out[i].request_id)}};
        for (int col = 0; !rc && col < 5; col++) {
            int len = PQgetlength(r, (int)i, col);
            if (PQgetisnull(r, (int)i, col) || len <= 0 || (size_t)len >= f[col].cap)
                rc = PX_ERR_PROTOCOL;
            else
                memcpy(f[col].dst, PQgetvalue(r, (int)i, col), (size_t)len + 1);
        }
    }
    if (!rc) {
        *rows = out;
        *n = k;
    }
out:
    PQclear(r);
    slot_release(s, sl);
    return rc;
}

const struct px_price_ops px_price_pg_ops = {
    .scheme = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .get = pg_get,
    .ping = pg_ping,
    .seed = pg_seed,
    .seed_tenant = pg_seed_tenant,
    .set = pg_set,
    .history = pg_history,
};
