/* http_server.c: libmicrohttpd front end (see http_server.h and
 * docs/internals/transports.md).
 *
 * One context per request, created when MHD has read the request line (the
 * URI log callback, which also hands us the raw URI) and freed when MHD
 * reports the request finished (NOTIFY_COMPLETED) or, if MHD never does,
 * when the connection closes (NOTIFY_CONNECTION). The access handler is a
 * small state machine over that context:
 *   HEADERS -> BODY -> (dispatch) -> AUDIT (suspended) -> DONE
 * and the response is queued only in DONE, after the audit record of the
 * request (if any) is durable or has definitely failed. */
#include "http_server.h"
#include "http_request.h"
#include "kernel/buf.h"
#include "kernel/errors.h"
#include "kernel/log.h"
#include "kernel/metrics.h"
#include "kernel/query.h"
#include "store/audit.h"
#include "store/price.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_HOST       "127.0.0.1"
#define DEFAULT_THREADS    2u
#define DEFAULT_MAX_CONNS  1024u
#define DEFAULT_TIMEOUT_S  30u
#define DEFAULT_HEADER_MEM (32u * 1024u)
#define MIN_HEADER_MEM     2048u
/* MHD builds the response headers in the same per-connection pool that holds
 * the request headers and their index (about 56 bytes per header); a request
 * filling the pool leaves no room for any answer and MHD 0.9.75 then closes
 * the connection silently. So the pool is the cap plus this headroom, and
 * the cap itself is enforced by us with a 431. */
#define HEADER_HEADROOM   (2048u + 64u * PX_MAX_HEADERS)
#define ARENA_CAP         (1024u * 1024u)
#define POOL_MAX          64u           /* contexts kept for reuse */
#define BODY_KEEP         (16u * 1024u) /* body storage kept with a pooled context */
#define DRAIN_MS          10000         /* bound on waiting for requests in flight */
#define AUDIT_DRAIN_MS    60000         /* further bound on waiting for audit callbacks */
#define METRICS_CAP       (1024u * 1024u)
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4"
#define WATCH_TICK_MS     200   /* how often request deadlines are checked */
#define REFUSED_LOG_MS    10000 /* at most one "connection cap reached" line per this */
#define DEADLINE_KILLED   (-1)  /* conn_watch.deadline_ms of a connection being shut down */

enum ctx_state { ST_HEADERS, ST_BODY, ST_AUDIT, ST_DONE };

struct ctx {
    struct px_http_server *srv;
    struct MHD_Connection *conn;
    struct px_arena *arena;
    struct px_request req;
    struct px_response resp;
    struct px_buf body;
    struct timespec t0;
    const char *raw_uri; /* as received, arena-owned */
    enum ctx_state state;
    bool discarding; /* body passed max_body: drop the rest, answer 413 */
    size_t discarded;
    bool close;               /* answer with Connection: close */
    _Atomic int audit_rc;     /* px_rc from the audit store's done callback */
    struct conn_watch *watch; /* the connection's deadline (NULL if it has none) */
    struct ctx *next;         /* free list */
};

/* One per open connection (MHD_OPTION_NOTIFY_CONNECTION): the time by which
 * the request being received must be complete, and the context of the
 * request on the connection. deadline_ms > 0 while a
 * request is awaited or being received, 0 while one is processed or
 * answered, DEADLINE_KILLED once the watchdog shut the socket down. The fd
 * stays valid while the entry is on the list: MHD notifies CLOSED (which
 * unlinks it under watch_mu) before it closes the socket. */
struct conn_watch {
    struct conn_watch *prev, *next;
    int fd;
    _Atomic int64_t deadline_ms;
    /* Set by on_uri, cleared by on_completed, both on the connection's
     * worker, as is CLOSED: a context still here at CLOSED was never
     * completed by MHD and is reclaimed there. */
    struct ctx *cur;
};

struct px_http_server {
    struct px_app *app;
    struct MHD_Daemon *daemon;
    int listen_fd;
    unsigned port;
    size_t max_body;
    size_t max_header_bytes;
    size_t discard_limit;
    atomic_long in_flight;      /* contexts alive: request line read, not yet completed */
    atomic_long audits_pending; /* submitted records whose done callback has not returned */
    atomic_bool stopping;
    pthread_mutex_t pool_mu;
    struct ctx *pool;
    size_t npool;
    char address[INET6_ADDRSTRLEN + 8];
    /* Abuse bounds (docs/internals/transports.md, "Hostile clients"). */
    long max_conns;        /* our connection cap, enforced at accept */
    int64_t timeout_ms;    /* bound on receiving one request, idle time included */
    atomic_long conns;     /* connections open now */
    atomic_long refused;   /* connections refused at the cap */
    atomic_long timed_out; /* connections shut down past their request deadline */
    atomic_long reclaimed; /* contexts MHD never completed, freed at connection close */
    bool mhd_0975;         /* MHD parses as 0.9.75 does: cut_query, folded_header */
    bool cut_query;        /* hide the query from MHD in on_uri (see there) */
    _Atomic int64_t refused_logged_ms;
    pthread_mutex_t watch_mu; /* the watch list; held while the watchdog shuts a socket */
    pthread_cond_t watch_cv;
    struct conn_watch *watch_head;
    bool watch_stop;
    bool watchdog_started;
    pthread_t watchdog;
};

/* ---- time ---- */

static double ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- contexts ---- */

static struct ctx *ctx_get(struct px_http_server *s)
{
    struct ctx *c = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->pool) {
        c = s->pool;
        s->pool = c->next;
        s->npool--;
    }
    pthread_mutex_unlock(&s->pool_mu);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return NULL;
        c->arena = px_arena_new(ARENA_CAP);
        if (!c->arena) {
            free(c);
            return NULL;
        }
        px_buf_init(&c->body, s->max_body);
    }
    c->srv = s;
    c->next = NULL;
    c->state = ST_HEADERS;
    atomic_store(&c->audit_rc, PX_OK);
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    c->req.arena = c->arena;
    return c;
}

static void ctx_destroy(struct ctx *c)
{
    if (!c)
        return;
    px_buf_free(&c->body);
    px_arena_free(c->arena);
    free(c);
}

/* Returns c to the free list with its arena emptied (or frees it). */
static void ctx_put(struct px_http_server *s, struct ctx *c)
{
    px_arena_reset(c->arena);
    if (c->body.cap > BODY_KEEP) {
        px_buf_free(&c->body);
        px_buf_init(&c->body, s->max_body);
    } else {
        px_buf_clear(&c->body);
    }
    memset(&c->req, 0, sizeof(c->req));
    memset(&c->resp, 0, sizeof(c->resp));
    c->conn = NULL;
    c->raw_uri = NULL;
    c->discarding = false;
    c->discarded = 0;
    c->close = false;
    c->watch = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->npool < POOL_MAX) {
        c->next = s->pool;
        s->pool = c;
        s->npool++;
        c = NULL;
    }
    pthread_mutex_unlock(&s->pool_mu);
    ctx_destroy(c);
}

/* ---- hostile clients: connection cap and request deadlines ---- */

/* MHD_AcceptPolicyCallback: past max_conns a new connection is accepted and
 * closed at once (the client sees the connection end, not a silent wait in
 * the listen backlog). MHD's own limit sits above ours and is never reached. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct px_http_server *s = cls;
    PX_UNUSED(addr);
    PX_UNUSED(addrlen);
    if (atomic_load(&s->stopping))
        return MHD_NO;
    if (atomic_load(&s->conns) < s->max_conns)
        return MHD_YES;
    long n = atomic_fetch_add(&s->refused, 1) + 1;
    int64_t now = mono_ms(), last = atomic_load(&s->refused_logged_ms);
    if (now - last >= REFUSED_LOG_MS &&
        atomic_compare_exchange_strong(&s->refused_logged_ms, &last, now))
        PX_WARN(NULL, "connection cap (%ld) reached: refusing new connections (%ld so far)",
                s->max_conns, n);
    return MHD_NO;
}

/* The request on a closing connection was never completed: MHD 0.9.75 can
 * mark a connection closed without NOTIFY_COMPLETED (a second internal
 * error on the same request sets its state to CLOSED directly), and the
 * context, in_flight and px_http_stop()'s drain would otherwise wait for it
 * forever. Nothing else can hold the context then: it is not suspended
 * (MHD never closes a suspended connection) and its worker is here. */
static void ctx_reclaim(struct px_http_server *s, struct ctx *c)
{
    c->watch->cur = NULL;
    ctx_put(s, c);
    atomic_fetch_add(&s->reclaimed, 1);
    atomic_fetch_sub(&s->in_flight, 1);
    PX_DEBUG(NULL, "request context freed at connection close: no completion from libmicrohttpd");
}

/* MHD_OPTION_NOTIFY_CONNECTION: keeps the list of open connections, their
 * deadlines and the context of the request on each. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct px_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->conns, 1);
        *socket_context = NULL;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_watch *w = ci ? calloc(1, sizeof(*w)) : NULL;
        if (!w) {
            /* Without a deadline a slow client could hold it forever: refuse it. */
            if (ci)
                shutdown(ci->connect_fd, SHUT_RDWR);
            return;
        }
        w->fd = ci->connect_fd;
        atomic_init(&w->deadline_ms, mono_ms() + s->timeout_ms);
        pthread_mutex_lock(&s->watch_mu);
        w->next = s->watch_head;
        if (w->next)
            w->next->prev = w;
        s->watch_head = w;
        pthread_mutex_unlock(&s->watch_mu);
        *socket_context = w;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED: the socket is still open; it is closed
     * once this returns, so nobody may shut it down after the unlink. */
    struct conn_watch *w = *socket_context;
    *socket_context = NULL;
    if (w && w->cur)
        ctx_reclaim(s, w->cur);
    if (w) {
        pthread_mutex_lock(&s->watch_mu);
        if (w->prev)
            w->prev->next = w->next;
        else
            s->watch_head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&s->watch_mu);
        free(w);
    }
    atomic_fetch_sub(&s->conns, 1);
}

/* The request is fully received: no deadline while it is processed (an
 * audit wait included). False when the watchdog got there first. */
static bool watch_received(struct conn_watch *w)
{
    if (!w)
        return true;
    int64_t prev = atomic_exchange(&w->deadline_ms, 0);
    if (prev == DEADLINE_KILLED) {
        atomic_store(&w->deadline_ms, DEADLINE_KILLED);
        return false;
    }
    return true;
}

/* The request is over: the next one on this connection must arrive in full
 * within the timeout. */
static void watch_rearm(struct px_http_server *s, struct conn_watch *w)
{
    if (!w)
        return;
    int64_t cur = atomic_load(&w->deadline_ms);
    int64_t next = mono_ms() + s->timeout_ms;
    while (cur != DEADLINE_KILLED && !atomic_compare_exchange_weak(&w->deadline_ms, &cur, next))
        ;
}

/* Shuts down connections whose request did not arrive in time. MHD's own
 * timeout is an idle timeout, restarted by every byte: a client sending one
 * header byte a second (slowloris) or a trickle of body never meets it. The
 * socket is shut down, not closed: MHD sees end of file, closes it itself
 * and notifies CLOSED, which is what frees the entry. */
static void *watchdog_main(void *arg)
{
    struct px_http_server *s = arg;
    pthread_mutex_lock(&s->watch_mu);
    while (!s->watch_stop) {
        int64_t now = mono_ms();
        long killed = 0;
        for (struct conn_watch *w = s->watch_head; w; w = w->next) {
            int64_t d = atomic_load(&w->deadline_ms);
            if (d > 0 && d <= now &&
                atomic_compare_exchange_strong(&w->deadline_ms, &d, DEADLINE_KILLED)) {
                shutdown(w->fd, SHUT_RDWR);
                killed++;
            }
        }
        if (killed) {
            atomic_fetch_add(&s->timed_out, killed);
            PX_DEBUG(NULL, "closed %ld connections past their request deadline", killed);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)WATCH_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->watch_cv, &s->watch_mu, &until);
    }
    pthread_mutex_unlock(&s->watch_mu);
    return NULL;
}

/* MHD 0.9.75 stores every query argument in the connection's memory pool
 * right after this callback, and when the pool cannot hold them all (about
 * 650 arguments in the default 40 KiB, far below the target cap) it queues a
 * 431, then overwrites the connection's state, never sends the answer, never
 * runs the handler or NOTIFY_COMPLETED, and later closes the connection
 * silently. We parse the query from our own copy of the target and never
 * read MHD's arguments, so the query is hidden from MHD: `uri` points into
 * MHD's writable request-line buffer and MHD found the '?' before calling
 * us; a NUL right after it leaves MHD an empty argument string. Only for the
 * versions whose parser was read to work this way (s->mhd_0975). */
static void cut_query(const char *uri)
{
    char *q = strchr(uri, '?');
    if (q && q[1])
        q[1] = '\0';
}

/* MHD_OPTION_URI_LOG_CALLBACK: called once per request with the raw request
 * target, before MHD decodes it; its result becomes the request's context. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct px_http_server *s = cls;
    struct ctx *c = ctx_get(s);
    if (!c)
        return NULL;
    c->conn = conn;
    c->raw_uri = px_arena_strdup(c->arena, uri ? uri : "");
    if (uri && s->cut_query)
        cut_query(uri);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    c->watch = ci ? ci->socket_context : NULL;
    if (c->watch)
        c->watch->cur = c;
    atomic_fetch_add(&s->in_flight, 1);
    return c;
}

/* MHD_OPTION_NOTIFY_COMPLETED: the request is over (sent, aborted or shut down). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct px_http_server *s = cls;
    PX_UNUSED(conn);
    PX_UNUSED(toe);
    struct ctx *c = *req_cls;
    *req_cls = NULL;
    if (!c)
        return;
    if (c->watch && c->watch->cur == c)
        c->watch->cur = NULL;
    watch_rearm(s, c->watch);
    ctx_put(s, c);
    atomic_fetch_sub(&s->in_flight, 1);
}

/* ---- building the request ---- */

struct hdr_fill {
    struct ctx *c;
    size_t n, cap;
    size_t bytes; /* "name: value\r\n" of each, as on the wire */
    bool oom;
    bool nul;    /* a name or value holds a NUL byte */
    bool folded; /* a header line was continued on the next (obs-fold) */
    bool mhd_0975;
};

/* MHD 0.9.75 joins a continuation line (obs-fold, RFC 9112 section 5.2) to
 * the header's NAME, not its value: "Transfer-Encoding: chunked\r\n x"
 * becomes "Transfer-Encodingx: chunked", so a proxy that reads the first line
 * frames the message as chunked while MHD sees no body at all. The server
 * must refuse such a message. An unfolded header's name and value lie in the
 * read buffer in wire order ("name\0 value"); a folded one's name was copied
 * to a new block past the read buffer, after its value. */
static bool folded_header(const char *key, size_t key_size, const char *value)
{
    return value && (uintptr_t)value < (uintptr_t)key + key_size + 1;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    struct hdr_fill *f = cls;
    PX_UNUSED(kind);
    if (f->n >= f->cap)
        return MHD_NO;
    if (f->mhd_0975 && key && folded_header(key, key_size, value)) {
        f->folded = true;
        return MHD_NO;
    }
    /* C strings end at a NUL the client sent: seen only through the sizes. */
    if (!key || strlen(key) != key_size || (value && strlen(value) != value_size)) {
        f->nul = true;
        return MHD_NO;
    }
    char *k = px_arena_strdup(f->c->arena, key);
    char *v = px_arena_strdup(f->c->arena, value ? value : "");
    if (!k || !v) {
        f->oom = true;
        return MHD_NO;
    }
    for (char *p = k; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    f->c->req.headers[f->n].key = k;
    f->c->req.headers[f->n].value = v;
    f->n++;
    f->bytes += strlen(k) + strlen(v) + 4;
    return MHD_YES;
}

static const char *client_ip(struct ctx *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return NULL;
    char text[INET6_ADDRSTRLEN];
    const struct sockaddr *sa = ci->client_addr;
    const void *addr;
    if (sa->sa_family == AF_INET)
        addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    else
        return NULL;
    if (!inet_ntop(sa->sa_family, addr, text, sizeof(text)))
        return NULL;
    return px_arena_strdup(c->arena, text);
}

/* What the first handler call found wrong with the request (answered at once). */
enum reject {
    REJ_NONE,
    REJ_NOMEM,
    REJ_BAD_TARGET,
    REJ_BAD_METHOD,
    REJ_BAD_HEADER,
    REJ_BAD_HOST,
    REJ_TOO_MANY_HEADERS,
    REJ_HEADERS_TOO_LARGE,
    REJ_FRAMING,
    REJ_TOO_LARGE,
};

static enum reject reject_of(enum px_http_verdict v)
{
    switch (v) {
    case PX_HTTP_OK:
        return REJ_NONE;
    case PX_HTTP_BAD_TARGET:
        return REJ_BAD_TARGET;
    case PX_HTTP_BAD_METHOD:
        return REJ_BAD_METHOD;
    case PX_HTTP_BAD_HEADER:
        return REJ_BAD_HEADER;
    case PX_HTTP_BAD_HOST:
        return REJ_BAD_HOST;
    case PX_HTTP_BAD_FRAMING:
        return REJ_FRAMING;
    case PX_HTTP_TOO_LARGE:
        return REJ_TOO_LARGE;
    case PX_HTTP_NOMEM:
    default:
        return REJ_NOMEM;
    }
}

static enum reject read_request(struct ctx *c, const char *method, const char *version)
{
    c->req.method = px_arena_strdup(c->arena, method);
    if (!c->req.method)
        return REJ_NOMEM;
    int n = MHD_get_connection_values(c->conn, MHD_HEADER_KIND, NULL, NULL);
    if (n > PX_MAX_HEADERS)
        return REJ_TOO_MANY_HEADERS;
    /* Request line and the blank line that ends the headers. */
    size_t bytes = strlen(method) + strlen(c->raw_uri ? c->raw_uri : "") + strlen(version) + 6;
    bool nul = false;
    if (n > 0) {
        c->req.headers = px_arena_calloc(c->arena, (size_t)n * sizeof(*c->req.headers));
        if (!c->req.headers)
            return REJ_NOMEM;
        struct hdr_fill f = {.c = c, .cap = (size_t)n, .mhd_0975 = c->srv->mhd_0975};
        MHD_get_connection_values_n(c->conn, MHD_HEADER_KIND, add_header, &f);
        if (f.oom)
            return REJ_NOMEM;
        c->req.nheaders = f.n;
        bytes += f.bytes;
        nul = f.nul || f.folded;
    }
    if (bytes > c->srv->max_header_bytes)
        return REJ_HEADERS_TOO_LARGE;
    c->req.source_ip = client_ip(c);
    if (nul)
        return REJ_BAD_HEADER;
    enum reject r = reject_of(
        px_http_check_message(method, version, c->req.headers, c->req.nheaders, c->srv->max_body));
    if (r)
        return r;
    return reject_of(px_http_parse_target(c->arena, c->raw_uri, &c->req));
}

/* ---- responses ---- */

static enum MHD_Result queue(struct ctx *c)
{
    struct px_http_server *s = c->srv;
    struct px_response *resp = &c->resp;
    c->state = ST_DONE;
    px_app_complete(s->app, &c->req, resp, ms_since(&c->t0));

    const char *body = resp->body ? resp->body : "";
    struct MHD_Response *r = MHD_create_response_from_buffer(
        resp->body_len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    enum MHD_Result ok =
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type ? resp->content_type : "application/json");
    for (size_t i = 0; ok == MHD_YES && i < resp->nheaders; i++)
        ok = MHD_add_response_header(r, resp->headers[i].key, resp->headers[i].value);
    /* While stopping, clients are told not to reuse the connection. */
    if (ok == MHD_YES && (c->close || atomic_load(&s->stopping)))
        ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (ok == MHD_YES)
        ok = MHD_queue_response(c->conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Answers at once with the error for r (used before any handler ran). */
static enum MHD_Result reject(struct ctx *c, enum reject r)
{
    struct px_request *req = &c->req;
    struct px_response *resp = &c->resp;
    if (px_app_prepare(c->srv->app, req) != PX_OK) {
        /* The arena is exhausted; the error writer still has its static 500. */
        r = REJ_NOMEM;
    }
    static const struct px_err_detail framing[] = {
        {"transfer-encoding",
         "Transfer-Encoding must be \"chunked\" alone, with no Content-Length, and "
         "Content-Length must appear at most once"},
    };
    static const struct px_err_detail target[] = {
        {"target", "must be an origin-form path: no raw space or control character, no "
                   "malformed %-escape, no %00 or encoded control character in the path"}};
    static const struct px_err_detail method[] = {{"method", "must be an HTTP token"}};
    static const struct px_err_detail header[] = {
        {"headers", "names must be HTTP tokens, values free of control characters, and no "
                    "line continued on the next (obs-fold)"}};
    static const struct px_err_detail host[] = {
        {"host", "HTTP/1.1 requests carry exactly one Host header, others at most one"}};
    switch (r) {
    case REJ_BAD_TARGET:
        px_error_response(req, resp, PX_E_VALIDATION_FAILED, "the request path is not valid",
                          target, PX_COUNTOF(target));
        break;
    /* The three below make the rest of the message suspect: the connection ends. */
    case REJ_BAD_METHOD:
        px_error_response(req, resp, PX_E_VALIDATION_FAILED, "the request method is not valid",
                          method, PX_COUNTOF(method));
        c->close = true;
        break;
    case REJ_BAD_HEADER:
        px_error_response(req, resp, PX_E_VALIDATION_FAILED, "a request header is not valid",
                          header, PX_COUNTOF(header));
        c->close = true;
        break;
    case REJ_BAD_HOST:
        px_error_response(req, resp, PX_E_VALIDATION_FAILED,
                          "the Host header is missing or repeated", host, PX_COUNTOF(host));
        c->close = true;
        break;
    case REJ_TOO_MANY_HEADERS:
        px_error_response(req, resp, PX_E_HEADERS_TOO_LARGE, "too many request headers", NULL, 0);
        c->close = true;
        break;
    case REJ_HEADERS_TOO_LARGE:
        px_error_response(req, resp, PX_E_HEADERS_TOO_LARGE,
                          "the request line and headers are larger than the server accepts", NULL,
                          0);
        c->close = true;
        break;
    case REJ_FRAMING:
        px_error_response(req, resp, PX_E_VALIDATION_FAILED, "the request framing is not valid",
                          framing, PX_COUNTOF(framing));
        c->close = true;
        break;
    case REJ_TOO_LARGE:
        px_error_response(req, resp, PX_E_PAYLOAD_TOO_LARGE,
                          "the request body is larger than the server accepts", NULL, 0);
        c->close = true;
        break;
    case REJ_NONE:
    case REJ_NOMEM:
    default:
        px_error_response(req, resp, PX_E_INTERNAL, "internal error", NULL, 0);
        c->close = true;
        break;
    }
    return queue(c);
}

/* ---- server-only routes ---- */

enum builtin { B_NONE, B_HEALTH, B_READY, B_METRICS };

/* Static: metrics keep the route pointer for the life of the process. */
static const char *const builtin_route[] = {NULL, "/health", "/ready", "/metrics"};

static enum builtin builtin_of(const char *path)
{
    for (size_t i = B_HEALTH; i < PX_COUNTOF(builtin_route); i++)
        if (strcmp(path, builtin_route[i]) == 0)
            return (enum builtin)i;
    return B_NONE;
}

static void json_status(struct px_request *req, struct px_response *resp, int status,
                        const char *json)
{
    if (px_response_json(req, resp, status, json, strlen(json)) != PX_OK)
        px_error_response(req, resp, PX_E_INTERNAL, "internal error", NULL, 0);
}

static void serve_ready(struct px_http_server *s, struct px_request *req, struct px_response *resp)
{
    bool price_ok = px_price_ping(px_app_prices(s->app)) == PX_OK;
    bool audit_ok = px_audit_ping(px_app_audit(s->app)) == PX_OK;
    if (price_ok && audit_ok) {
        json_status(req, resp, 200, "{\"status\":\"ready\"}");
        return;
    }
    /* Names the store, never its spec: specs may hold credentials. */
    static const struct px_err_detail price_down = {"priceStore", "unreachable"};
    static const struct px_err_detail audit_down = {"auditStore", "unreachable"};
    struct px_err_detail details[2];
    size_t n = 0;
    if (!price_ok)
        details[n++] = price_down;
    if (!audit_ok)
        details[n++] = audit_down;
    const char *msg = !price_ok && !audit_ok ? "the price and audit stores are unreachable"
                      : !price_ok            ? "the price store is unreachable"
                                             : "the audit store is unreachable";
    px_error_response(req, resp, PX_E_DEPENDENCY_UNAVAILABLE, msg, details, n);
}

static void serve_metrics(struct px_http_server *s, struct px_request *req,
                          struct px_response *resp)
{
    struct px_buf b;
    px_buf_init(&b, METRICS_CAP);
    px_rc rc = px_metrics_render(&b);
    /* The server's own gauges: what a leak of connections or requests shows as. */
    if (!rc)
        rc = px_buf_printf(
            &b,
            "# HELP pricing_http_connections_open Connections open now.\n"
            "# TYPE pricing_http_connections_open gauge\n"
            "pricing_http_connections_open %ld\n"
            "# HELP pricing_http_requests_in_flight Requests whose request line was read and "
            "that are not finished, this one included.\n"
            "# TYPE pricing_http_requests_in_flight gauge\n"
            "pricing_http_requests_in_flight %ld\n"
            "# HELP pricing_http_requests_reclaimed_total Requests the HTTP library dropped "
            "without completing them, freed when their connection closed.\n"
            "# TYPE pricing_http_requests_reclaimed_total counter\n"
            "pricing_http_requests_reclaimed_total %ld\n",
            atomic_load(&s->conns), atomic_load(&s->in_flight), atomic_load(&s->reclaimed));
    char *body = NULL;
    if (!rc)
        body = px_arena_strndup(req->arena, b.data ? b.data : "", b.len);
    if (body) {
        resp->status = 200;
        resp->body = body;
        resp->body_len = b.len;
        resp->content_type = PROM_CONTENT_TYPE;
    } else {
        px_error_response(req, resp, PX_E_INTERNAL, "internal error", NULL, 0);
    }
    px_buf_free(&b);
}

static void serve_builtin(struct px_http_server *s, enum builtin b, struct px_request *req,
                          struct px_response *resp)
{
    req->route = builtin_route[b];
    /* HEAD as GET, like the router does for function routes (MHD drops the body). */
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        px_error_response(req, resp, PX_E_METHOD_NOT_ALLOWED, "method not allowed", NULL, 0);
        if (px_response_header(resp, "Allow", "GET") != PX_OK)
            px_error_response(req, resp, PX_E_INTERNAL, "internal error", NULL, 0);
        return;
    }
    switch (b) {
    case B_HEALTH:
        json_status(req, resp, 200, "{\"status\":\"ok\"}");
        break;
    case B_READY:
        serve_ready(s, req, resp);
        break;
    case B_METRICS:
    default:
        serve_metrics(s, req, resp);
        break;
    }
}

/* ---- the audit gate ---- */

/* px_audit_done_fn: runs on an audit store thread. */
static void on_audit_done(void *arg, px_rc rc)
{
    struct ctx *c = arg;
    struct px_http_server *s = c->srv;
    atomic_store(&c->audit_rc, (int)rc);
    /* MHD publishes everything written before resume to the worker that
     * picks the connection up; c must not be touched after this call. */
    MHD_resume_connection(c->conn);
    atomic_fetch_sub(&s->audits_pending, 1);
}

/* Holds the response until its record is durable. Returns true when the
 * connection was suspended (the handler runs again after resume). */
static bool hold_for_audit(struct ctx *c)
{
    struct px_http_server *s = c->srv;
    /* Counted before `stopping` is read, so px_http_stop() either sees this
     * record pending or we see it stopping (both accesses are seq_cst). */
    atomic_fetch_add(&s->audits_pending, 1);
    if (atomic_load(&s->stopping)) {
        /* MHD_stop_daemon() aborts on suspended connections, so once stopping
         * this worker waits for the record itself. */
        atomic_fetch_sub(&s->audits_pending, 1);
        px_rc rc = px_audit_append(px_app_audit(s->app), c->resp.audit);
        if (rc)
            px_response_audit_failed(&c->req, &c->resp);
        return false;
    }
    c->state = ST_AUDIT;
    /* Suspend before submitting: the done callback may run before submit returns. */
    MHD_suspend_connection(c->conn);
    px_rc rc = px_audit_submit(px_app_audit(s->app), c->resp.audit, on_audit_done, c);
    if (rc)
        on_audit_done(c, rc);
    return true;
}

/* ---- the access handler ---- */

static enum MHD_Result on_final(struct ctx *c)
{
    struct px_http_server *s = c->srv;
    struct px_request *req = &c->req;
    struct px_response *resp = &c->resp;

    /* Received in time, or the watchdog already shut the socket down: then
     * nobody is there to answer, and nothing is looked up or audited. */
    if (!watch_received(c->watch))
        return MHD_NO;
    if (c->discarding)
        return reject(c, REJ_TOO_LARGE);
    if (c->body.len) {
        req->body = c->body.data;
        req->body_len = c->body.len;
    }
    if (px_app_prepare(s->app, req) != PX_OK)
        return reject(c, REJ_NOMEM);
    enum builtin b = builtin_of(req->path);
    if (b != B_NONE) {
        serve_builtin(s, b, req, resp);
        return queue(c);
    }
    px_app_dispatch(s->app, NULL, req, resp);
    if (resp->audit && hold_for_audit(c))
        return MHD_YES;
    return queue(c);
}

static enum MHD_Result on_body(struct ctx *c, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    if (c->discarding) {
        c->discarded += n;
        /* A client that keeps sending past several times the cap is cut off. */
        return c->discarded > c->srv->discard_limit ? MHD_NO : MHD_YES;
    }
    if (px_buf_add(&c->body, data, n) != PX_OK) {
        c->discarding = true;
        c->discarded = c->body.len + n;
        px_buf_free(&c->body);
        px_buf_init(&c->body, c->srv->max_body);
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    PX_UNUSED(cls);
    PX_UNUSED(url);
    struct ctx *c = *req_cls;
    if (!c)
        return MHD_NO; /* no context could be allocated: drop the connection */
    c->conn = conn;
    switch (c->state) {
    case ST_HEADERS: {
        enum reject r = read_request(c, method, version);
        if (r)
            return reject(c, r);
        c->state = ST_BODY;
        return MHD_YES;
    }
    case ST_BODY:
        if (*upload_data_size)
            return on_body(c, upload_data, upload_data_size);
        return on_final(c);
    case ST_AUDIT:
        if (atomic_load(&c->audit_rc) != PX_OK)
            px_response_audit_failed(&c->req, &c->resp);
        return queue(c);
    case ST_DONE:
    default:
        /* A response is queued already; MHD does not call again, but be safe. */
        *upload_data_size = 0;
        return MHD_YES;
    }
}

/* ---- daemon ---- */

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    PX_UNUSED(cls);
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    PX_DEBUG(NULL, "libmicrohttpd: %s", line);
}

/* Resolves host and binds a listening socket on it: done here rather than
 * inside MHD so that a failure names its cause (address in use, ...). */
static px_rc open_listener(const char *host, unsigned port, int *fd_out, int *family, char *err,
                           size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(host, portstr, &hints, &res);
    if (g != 0 || !res) {
        snprintf(err, errlen, "cannot resolve host \"%.200s\": %s", host, gai_strerror(g));
        if (res)
            freeaddrinfo(res);
        return PX_ERR_CONFIG;
    }
    px_rc rc = PX_OK;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket for %.200s: %s", host, strerror(errno));
        rc = PX_ERR_IO;
        goto out;
    }
    int one = 1;
    /* Lets a restart bind while old connections sit in TIME_WAIT. Not
     * SO_REUSEPORT: a second server on the same port must fail, not share it. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (res->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
        snprintf(err, errlen, "cannot set socket options: %s", strerror(errno));
        rc = PX_ERR_IO;
        goto out;
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        snprintf(err, errlen, "cannot listen on %.200s port %u: %s", host, port, strerror(errno));
        rc = errno == EADDRNOTAVAIL ? PX_ERR_CONFIG : PX_ERR_IO;
        goto out;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "cannot listen on %.200s port %u: %s", host, port, strerror(errno));
        rc = PX_ERR_IO;
        goto out;
    }
    *family = res->ai_family;
out:
    if (rc && fd >= 0) {
        close(fd);
        fd = -1;
    }
    *fd_out = fd;
    freeaddrinfo(res);
    return rc;
}

static void bound_address(struct px_http_server *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char text[INET6_ADDRSTRLEN] = "?";
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
        s->port = ntohs(a->sin_port);
        snprintf(s->address, sizeof(s->address), "%s:%u", text, s->port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
        s->port = ntohs(a->sin6_port);
        snprintf(s->address, sizeof(s->address), "[%s]:%u", text, s->port);
    }
}

/* True when the running libmicrohttpd parses requests the way cut_query()
 * and folded_header() rely on: 0.9.75 and earlier (0.9.76 rewrote the
 * parser, answers a query that does not fit and refuses folded lines). */
static bool mhd_parses_as_0975(void)
{
    const char *v = MHD_get_version();
    unsigned a = 0, b = 0, c = 0;
    if (!v || sscanf(v, "%u.%u.%u", &a, &b, &c) != 3)
        return false;
    return a == 0 && (b < 9 || (b == 9 && c <= 75));
}

static void server_free(struct px_http_server *s)
{
    if (!s)
        return;
    while (s->pool) {
        struct ctx *c = s->pool;
        s->pool = c->next;
        ctx_destroy(c);
    }
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_cond_destroy(&s->watch_cv);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    free(s);
}

px_rc px_http_start(struct px_app *app, const struct px_http_opts *opts,
                    struct px_http_server **out, char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    const char *host = opts->host && opts->host[0] ? opts->host : DEFAULT_HOST;
    unsigned threads = opts->threads ? opts->threads : DEFAULT_THREADS;
    unsigned max_conns = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNS;
    unsigned timeout_s = opts->conn_timeout_s ? opts->conn_timeout_s : DEFAULT_TIMEOUT_S;
    size_t max_body = opts->max_body ? opts->max_body : PX_MAX_BODY;
    size_t header_cap = opts->max_header_bytes ? opts->max_header_bytes : DEFAULT_HEADER_MEM;
    if (header_cap < MIN_HEADER_MEM)
        header_cap = MIN_HEADER_MEM;
    size_t header_mem = header_cap + HEADER_HEADROOM;
    if (opts->port > 65535) {
        snprintf(err, errlen, "port %u is out of range 0..65535", opts->port);
        return PX_ERR_CONFIG;
    }

    struct px_http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return PX_ERR_NOMEM;
    }
    s->app = app;
    s->listen_fd = -1;
    s->max_body = max_body;
    s->max_header_bytes = header_cap;
    s->discard_limit = max_body * 4 > (1u << 20) ? max_body * 4 : (1u << 20);
    atomic_init(&s->in_flight, 0);
    atomic_init(&s->audits_pending, 0);
    atomic_init(&s->stopping, false);
    pthread_mutex_init(&s->pool_mu, NULL);
    s->max_conns = (long)max_conns;
    s->timeout_ms = (int64_t)timeout_s * 1000;
    atomic_init(&s->conns, 0);
    atomic_init(&s->refused, 0);
    atomic_init(&s->timed_out, 0);
    atomic_init(&s->reclaimed, 0);
    s->mhd_0975 = mhd_parses_as_0975();
    s->cut_query = s->mhd_0975 && !opts->keep_mhd_query;
    atomic_init(&s->refused_logged_ms, INT64_MIN / 2);
    pthread_mutex_init(&s->watch_mu, NULL);
    pthread_cond_init(&s->watch_cv, NULL);

    int family = AF_INET;
    rc = open_listener(host, opts->port, &s->listen_fd, &family, err, errlen);
    if (rc)
        goto out;
    bound_address(s);

    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    bool debug = px_log_enabled(PX_LOG_DEBUG);
    if (debug)
        flags |= MHD_USE_ERROR_LOG;
    struct MHD_OptionItem o[16];
    size_t n = 0;
    /* First, so that MHD's messages about the other options reach it too. */
    if (debug)
        o[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL};
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL};
    if (threads > 1)
        o[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL};
    /* MHD splits its limit among the workers and, at it, stops accepting
     * (connections wait unanswered in the backlog). Ours is enforced at
     * accept (on_accept); MHD's is set where no worker can reach it. */
    unsigned mhd_limit = (max_conns + threads) * threads;
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)mhd_limit, NULL};
    if (opts->max_connections_per_ip)
        o[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                         (intptr_t)opts->max_connections_per_ip, NULL};
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)timeout_s, NULL};
    o[n++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)header_mem, NULL};
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s};
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s};
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s};
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    s->daemon = MHD_start_daemon(flags, (uint16_t)s->port, on_accept, s, on_access, s,
                                 MHD_OPTION_ARRAY, o, MHD_OPTION_END);
    if (!s->daemon) {
        /* Whether MHD closed the socket on failure is not specified: leave
         * it rather than risk closing a descriptor another thread reopened. */
        s->listen_fd = -1;
        snprintf(err, errlen, "cannot start the HTTP server on %s", s->address);
        rc = PX_ERR_INTERNAL;
        goto out;
    }
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
        s->listen_fd = -1;
        snprintf(err, errlen, "cannot start the connection watchdog");
        rc = PX_ERR_INTERNAL;
        goto out;
    }
    s->watchdog_started = true;
    const struct px_kv f[] = {{"address", s->address}};
    px_log_fields(PX_LOG_INFO, NULL, "listening", f, PX_COUNTOF(f));
    *out = s;
    s = NULL;
out:
    server_free(s);
    return rc;
}

unsigned px_http_port(const struct px_http_server *s)
{
    return s ? s->port : 0;
}

void px_http_stats(const struct px_http_server *s, long *in_flight, long *audits_pending)
{
    if (in_flight)
        *in_flight = s ? atomic_load(&s->in_flight) : 0;
    if (audits_pending)
        *audits_pending = s ? atomic_load(&s->audits_pending) : 0;
}

long px_http_reclaimed(const struct px_http_server *s)
{
    return s ? atomic_load(&s->reclaimed) : 0;
}

static bool wait_zero(atomic_long *v, long bound_ms)
{
    for (long waited = 0; atomic_load(v) > 0; waited += 5) {
        if (waited >= bound_ms)
            return false;
        sleep_ms(5);
    }
    return true;
}

void px_http_stop(struct px_http_server *s)
{
    if (!s)
        return;
    /* From now on on_accept() closes every new connection at once. Not
     * MHD_quiesce_daemon(): in 0.9.75 with an epoll thread pool it aborts the
     * process ("Failed to remove listen FD from epoll set") when a worker has
     * already taken the listen socket out of its set, e.g. at the connection
     * limit or after an accept error under a connection flood. */
    atomic_store(&s->stopping, true);
    if (!wait_zero(&s->in_flight, DRAIN_MS))
        PX_WARN(NULL, "%ld requests still in flight after %d ms; closing them",
                atomic_load(&s->in_flight), DRAIN_MS);
    /* A suspended connection makes MHD_stop_daemon() abort the process, and
     * each pending record ends within the audit store's own bound. */
    if (!wait_zero(&s->audits_pending, AUDIT_DRAIN_MS)) {
        PX_ERROR(NULL, "%ld audit records never completed; leaving the server threads running",
                 atomic_load(&s->audits_pending));
        return;
    }
    /* The watchdog shuts sockets down by descriptor: it ends before MHD
     * closes the descriptors for good. */
    if (s->watchdog_started) {
        pthread_mutex_lock(&s->watch_mu);
        s->watch_stop = true;
        pthread_cond_signal(&s->watch_cv);
        pthread_mutex_unlock(&s->watch_mu);
        pthread_join(s->watchdog, NULL);
        s->watchdog_started = false;
    }
    MHD_stop_daemon(s->daemon); /* closes the listen socket it was given */
    s->daemon = NULL;
    s->listen_fd = -1;
    char refused[24], timed_out[24], reclaimed[24];
    snprintf(refused, sizeof(refused), "%ld", atomic_load(&s->refused));
    snprintf(timed_out, sizeof(timed_out), "%ld", atomic_load(&s->timed_out));
    snprintf(reclaimed, sizeof(reclaimed), "%ld", atomic_load(&s->reclaimed));
    const struct px_kv f[] = {{"refusedConnections", refused},
                              {"timedOutConnections", timed_out},
                              {"reclaimedRequests", reclaimed}};
    px_log_fields(PX_LOG_INFO, NULL, "stopped", f, PX_COUNTOF(f));
    server_free(s);
}

/* ---- signals ---- */

static int sig_wfd = -1;

static void on_signal(int sig)
{
    PX_UNUSED(sig);
    int saved = errno;
    if (sig_wfd >= 0) {
        ssize_t w = write(sig_wfd, "x", 1);
        PX_UNUSED(w);
    }
    errno = saved;
}

/* The wait uses a handler and a pipe rather than sigwait(): the app's store
 * threads exist before serve is called and do not block the signals, so a
 * SIGTERM may be delivered to any of them, and must still end up here. */
px_rc px_http_serve(struct px_app *app, const struct px_http_opts *opts, char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    struct px_http_server *s = NULL;
    int pfd[2] = {-1, -1};
    struct sigaction old_term, old_int, old_pipe;
    bool installed = false;
    sigset_t stop_sigs, old_mask;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGPIPE);

    if (pipe2(pfd, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot create a pipe: %s", strerror(errno));
        return PX_ERR_IO;
    }
    sig_wfd = pfd[1];
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGPIPE, &ign, &old_pipe);
    installed = true;

    /* MHD's threads inherit the mask: they never run the handler. */
    pthread_sigmask(SIG_BLOCK, &stop_sigs, &old_mask);
    rc = px_http_start(app, opts, &s, err, errlen);
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, SIGTERM);
    sigaddset(&wake, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
    if (rc)
        goto out;

    for (;;) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int r = poll(&p, 1, -1);
        if (r < 0 && errno != EINTR) {
            snprintf(err, errlen, "waiting for signals failed: %s", strerror(errno));
            rc = PX_ERR_IO;
            break;
        }
        char ch;
        if (r > 0 && read(pfd[0], &ch, 1) == 1)
            break;
    }
    px_log_fields(PX_LOG_INFO, NULL, "stopping", NULL, 0);
    px_http_stop(s);
out:
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (installed) {
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGPIPE, &old_pipe, NULL);
    }
    sig_wfd = -1;
    close(pfd[0]);
    close(pfd[1]);
    return rc;
}
