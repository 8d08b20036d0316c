/* http_server.h: the local API server (`pricing serve`) on libmicrohttpd.
 *
 * Every function's routes plus the server-only GET /health, /ready and
 * /metrics. Requests run on a small epoll thread pool; a request whose
 * response carries an audit record is suspended until the audit store has
 * made the record durable, so no price ever leaves before its record.
 * docs/internals/transports.md describes the request path, the caps and the
 * shutdown sequence.
 *
 * Ownership: the server borrows `app` (which must outlive it) and copies what
 * it needs from `opts`. px_http_stop() frees the server. */
#ifndef PX_HTTP_SERVER_H
#define PX_HTTP_SERVER_H

#include "kernel/app.h"

/* Zero fields take the defaults in brackets. */
struct px_http_opts {
    const char *host;                /* name or IPv4/IPv6 literal [127.0.0.1] */
    unsigned port;                   /* 0..65535; 0 = any free port */
    unsigned threads;                /* worker threads of the epoll pool [2] */
    unsigned max_connections;        /* open connections, past it new ones are closed [1024] */
    unsigned max_connections_per_ip; /* from one client address, past it closed [0 = no cap] */
    unsigned conn_timeout_s; /* bound on receiving each request, idle wait included, s [30] */
    size_t max_body;         /* request body cap, answered 413 [PX_MAX_BODY] */
    size_t max_header_bytes; /* per-connection memory for request line + headers [32 KiB] */
    /* Tests only: let libmicrohttpd 0.9.75 store query arguments itself (it
     * loses requests with too many: see on_uri in http_server.c), to
     * exercise the reclaim of contexts it never completes. [false] */
    bool keep_mhd_query;
};

struct px_http_server;

/* Binds host:port and starts serving in background threads. PX_ERR_CONFIG
 * for a bad host or port, PX_ERR_IO when the address cannot be bound,
 * PX_ERR_NOMEM / PX_ERR_INTERNAL otherwise; err holds one human line. */
px_rc px_http_start(struct px_app *app, const struct px_http_opts *opts,
                    struct px_http_server **out, char *err, size_t errlen) PX_WUR;
/* The bound port (the real one when opts->port was 0). */
unsigned px_http_port(const struct px_http_server *s);
/* Requests in flight (request line read, not yet finished) and audit records
 * awaited by suspended requests, at this instant. Either pointer may be NULL. */
void px_http_stats(const struct px_http_server *s, long *in_flight, long *audits_pending);
/* Request contexts libmicrohttpd never completed, freed when their
 * connection closed, since start. */
long px_http_reclaimed(const struct px_http_server *s);
/* Stops accepting, waits (bounded) for requests in flight, suspended ones
 * included, stops the threads, frees s. Accepts NULL. */
void px_http_stop(struct px_http_server *s);

/* start, then wait for SIGTERM or SIGINT, then stop. PX_OK after a clean
 * shutdown; the caller frees the app afterwards (which drains the audit store). */
px_rc px_http_serve(struct px_app *app, const struct px_http_opts *opts, char *err,
                    size_t errlen) PX_WUR;

#endif
