/* http1_client.h: one HTTP/1.1 request and its answer on a keep-alive
 * connection that libcurl opened (CURLOPT_CONNECT_ONLY).
 *
 * libcurl keeps what is hard to get right: name resolution, proxies (a
 * CONNECT tunnel), TLS with certificate checks, the connect time-out. This
 * module writes the request bytes the caller built and reads one answer with
 * its own parser. Why not curl_easy_perform: per request on a reused
 * connection it costs about twice the CPU of the same exchange done here
 * (several polls and a transfer's set-up and tear-down each time), and the
 * DynamoDB audit store makes one request per look-up (bench/RESULTS.md).
 *
 * The parser is apart from the I/O so that it can be fuzzed
 * (tests/fuzz/fuzz_http1_client.c). It reads what RFC 9112 allows a server
 * to send to a POST: interim 1xx answers (skipped), then one final answer
 * framed by Transfer-Encoding: chunked, Content-Length, or the end of the
 * connection. Anything else is PX_ERR_PROTOCOL, never a guess.
 *
 * Ownership: the parser writes the body into the caller's px_buf (its cap is
 * the answer's cap) and owns nothing. A px_h1_conn owns its CURL handle;
 * px_h1_conn_close() frees it. */
#ifndef PX_HTTP1_CLIENT_H
#define PX_HTTP1_CLIENT_H

#include "../kernel/buf.h"
#include "../kernel/px.h"

#include <curl/curl.h>
#include <stdint.h>

#define PX_H1_LINE_MAX   8192        /* one status, header or chunk-size line */
#define PX_H1_HEADER_MAX (64 * 1024) /* all header lines of one answer */

/* Called once per header line of the final answer, line[0..len) without its
 * CR LF (interim answers' headers are not passed). */
typedef void (*px_h1_header_fn)(void *arg, const char *line, size_t len);

struct px_h1_parser {
    /* results, valid once px_h1_parse() reported done */
    long status;         /* the final answer's status code */
    bool close;          /* the server closes the connection after it */
    struct px_buf *body; /* decoded body (caller's) */
    /* private */
    px_h1_header_fn on_header;
    void *arg;
    int state;
    char line[PX_H1_LINE_MAX];
    size_t line_len, header_bytes;
    uint64_t left; /* bytes of the body or of the current chunk still to come */
    bool chunked, have_len, http10;
};

/* Ready for one answer; body (cleared here) receives it, on_header may be NULL. */
void px_h1_parser_init(struct px_h1_parser *p, struct px_buf *body, px_h1_header_fn on_header,
                       void *arg);
/* Feeds data[0..len). *done becomes true when the final answer is complete;
 * bytes after it are PX_ERR_PROTOCOL (nothing was pipelined). Errors:
 * PX_ERR_PROTOCOL (malformed), PX_ERR_TOO_LARGE (a line, the headers or the
 * body over its cap). */
px_rc px_h1_parse(struct px_h1_parser *p, const char *data, size_t len, bool *done) PX_WUR;
/* The server closed the connection: PX_OK with *done when that ends the
 * answer (a body framed by the close), PX_ERR_PROTOCOL when it cut it short. */
px_rc px_h1_parse_eof(struct px_h1_parser *p, bool *done) PX_WUR;

/* Sets a new handle's options (URL, CA file, proxy...); false on failure. */
typedef bool (*px_h1_setup_fn)(void *arg, CURL *h);

/* A kept connection idle for less than this is used without first checking
 * that the server has not closed it (servers keep idle ones for seconds);
 * should it be closed all the same, the request goes once more on a new one. */
#define PX_H1_FRESH_MS 1000

/* One connection: h is NULL until the first exchange connects it. A zeroed
 * struct is a connection not yet made. */
struct px_h1_conn {
    CURL *h;
    int64_t used_ms; /* end of its last exchange (CLOCK_MONOTONIC ms) */
    /* the exchange under way */
    curl_socket_t fd; /* its socket, to poll, once px_h1_send() succeeded */
    bool reused;      /* the connection was kept from an earlier exchange */
    bool started;     /* some of the answer came */
};

/* What a failed exchange got to do, for retry decisions and messages. */
struct px_h1_io {
    bool sent;         /* some of the request was handed to the connection */
    long os_errno;     /* the last system error, 0 when none */
    char message[200]; /* what failed, "" on success */
};

/* Sends req[0..len) and reads one answer into p (set up once with
 * px_h1_parser_init: its body and callback are kept, the rest is reset here)
 * before deadline_ms (a CLOCK_MONOTONIC time in ms). Connects first when conn has no connection
 * (setup configures the new handle; connect_ms caps the connect), and on a
 * reused one that the server has closed. On error, and when the answer says
 * the server closes, the connection is dropped (the next exchange connects).
 * PX_ERR_UNAVAILABLE: no connection or it failed; PX_ERR_TIMEOUT: the
 * deadline passed; PX_ERR_PROTOCOL / PX_ERR_TOO_LARGE from the parser. */
px_rc px_h1_exchange(struct px_h1_conn *conn, px_h1_setup_fn setup, void *setup_arg,
                     const char *req, size_t len, int64_t deadline_ms, long connect_ms,
                     struct px_h1_parser *p, struct px_h1_io *io) PX_WUR;

/* The two halves of px_h1_exchange, for a caller that waits on several
 * connections at once (one poll for many requests in flight). px_h1_send
 * connects when needed and sends req; then conn->fd is polled for POLLIN and
 * px_h1_read takes what has come, without waiting, until *done. Either one
 * drops the connection on error, px_h1_read also when the answer closes it.
 * Unlike px_h1_exchange there is no second round: px_h1_stale() says when a
 * failure was a kept connection the server had closed (no answer came), so
 * that the caller may send again. */
px_rc px_h1_send(struct px_h1_conn *conn, px_h1_setup_fn setup, void *setup_arg, const char *req,
                 size_t len, int64_t deadline_ms, long connect_ms, struct px_h1_parser *p,
                 struct px_h1_io *io) PX_WUR;
/* Reads what has arrived for the request px_h1_send sent; *done when the answer is whole. */
px_rc px_h1_read(struct px_h1_conn *conn, struct px_h1_parser *p, struct px_h1_io *io,
                 bool *done) PX_WUR;
/* True when rc, the failure of the exchange on conn, met a kept connection
 * the server had closed before any answer. */
bool px_h1_stale(const struct px_h1_conn *conn, px_rc rc);

/* Closes the connection and frees its handle. Accepts NULL. */
void px_h1_conn_close(struct px_h1_conn *conn);

#endif
