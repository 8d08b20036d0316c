/* http1_client.c: see http1_client.h. */
#include "http1_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum {
    S_STATUS,     /* a status line */
    S_HEADER,     /* header lines until the empty one */
    S_BODY_LEN,   /* `left` bytes of a Content-Length body */
    S_BODY_EOF,   /* everything until the server closes */
    S_CHUNK_SIZE, /* a chunk-size line */
    S_CHUNK_DATA, /* `left` bytes of a chunk */
    S_CHUNK_END,  /* the empty line after a chunk's data */
    S_TRAILER,    /* trailer lines until the empty one */
    S_DONE,
};

void px_h1_parser_init(struct px_h1_parser *p, struct px_buf *body, px_h1_header_fn on_header,
                       void *arg)
{
    /* field by field: the line buffer needs no clearing, and this runs per request */
    p->status = 0;
    p->close = false;
    p->body = body;
    p->on_header = on_header;
    p->arg = arg;
    p->state = S_STATUS;
    p->line_len = p->header_bytes = 0;
    p->left = 0;
    p->chunked = p->have_len = p->http10 = false;
    px_buf_clear(body);
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A header value without its leading and trailing blanks. */
static void trim(const char **v, size_t *n)
{
    while (*n && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*n)--;
    }
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

/* True when the comma-separated list v[0..n) holds the token tok. */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    while (n) {
        const char *comma = memchr(v, ',', n);
        size_t item = comma ? (size_t)(comma - v) : n;
        const char *t = v;
        size_t tn = item;
        trim(&t, &tn);
        if (tn == tl && strncasecmp(t, tok, tl) == 0)
            return true;
        if (!comma)
            break;
        v = comma + 1;
        n -= item + 1;
    }
    return false;
}

static px_rc status_line(struct px_h1_parser *p, const char *s, size_t n)
{
    /* "HTTP/1.1 200 OK": the reason phrase may be empty or absent */
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
        !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || (n > 12 && s[12] != ' '))
        return PX_ERR_PROTOCOL;
    long st = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (st < 100 || st > 599 || st == 101) /* 101: nothing asked to switch protocols */
        return PX_ERR_PROTOCOL;
    p->status = st;
    p->http10 = s[7] == '0';
    p->chunked = p->have_len = false;
    p->left = 0;
    p->close = p->http10; /* an HTTP/1.0 answer: the connection is not kept */
    p->state = S_HEADER;
    return PX_OK;
}

static px_rc header_line(struct px_h1_parser *p, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    if (!colon || colon == s)
        return PX_ERR_PROTOCOL; /* also obsolete line folding: no name before ':' */
    for (const char *q = s; q < colon; q++)
        if (!is_tchar((unsigned char)*q))
            return PX_ERR_PROTOCOL;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F)
            return PX_ERR_PROTOCOL;
    size_t nl = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    trim(&v, &vl);
    if (nl == 14 && strncasecmp(s, "content-length", nl) == 0) {
        if (!vl || vl > 18)
            return PX_ERR_PROTOCOL;
        uint64_t len = 0;
        for (size_t i = 0; i < vl; i++) {
            if (!is_digit(v[i]))
                return PX_ERR_PROTOCOL;
            len = len * 10 + (uint64_t)(v[i] - '0');
        }
        if (p->have_len && p->left != len)
            return PX_ERR_PROTOCOL; /* two lengths: which one frames the body? */
        p->have_len = true;
        p->left = len;
    } else if (nl == 17 && strncasecmp(s, "transfer-encoding", nl) == 0) {
        /* the only coding we can undo, and it must be the last one */
        if (p->chunked || vl != 7 || strncasecmp(v, "chunked", 7) != 0)
            return PX_ERR_PROTOCOL;
        p->chunked = true;
    } else if (nl == 10 && strncasecmp(s, "connection", nl) == 0) {
        if (has_token(v, vl, "close"))
            p->close = true;
    }
    if (p->status >= 200 && p->on_header)
        p->on_header(p->arg, s, n);
    return PX_OK;
}

/* The empty line after the headers: how the body is framed. */
static px_rc headers_end(struct px_h1_parser *p, bool *done)
{
    if (p->status < 200) {
        p->state = S_STATUS; /* an interim answer: the final one follows */
        p->header_bytes = 0;
        return PX_OK;
    }
    if (p->status == 204 || p->status == 304) {
        p->state = S_DONE;
    } else if (p->chunked) {
        p->close = p->close || p->have_len; /* both framings sent: do not keep the connection */
        p->state = S_CHUNK_SIZE;
    } else if (p->have_len) {
        p->state = p->left ? S_BODY_LEN : S_DONE;
    } else {
        p->state = S_BODY_EOF;
        p->close = true;
    }
    *done = p->state == S_DONE;
    return PX_OK;
}

static px_rc chunk_size_line(struct px_h1_parser *p, const char *s, size_t n)
{
    uint64_t size = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char c = s[i];
        int d = is_digit(c)              ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            break;
        if (i >= 15)
            return PX_ERR_PROTOCOL;
        size = size * 16 + (uint64_t)d;
    }
    if (!i || (i < n && s[i] != ';' && s[i] != ' ' && s[i] != '\t'))
        return PX_ERR_PROTOCOL; /* chunk extensions after ';' are ignored */
    p->left = size;
    p->state = size ? S_CHUNK_DATA : S_TRAILER;
    return PX_OK;
}

static px_rc body_bytes(struct px_h1_parser *p, const char *s, size_t n)
{
    if (p->body->len + n > p->body->max || n > p->body->max)
        return PX_ERR_TOO_LARGE;
    return px_buf_add(p->body, s, n);
}

/* One whole line (without its LF; a CR before it is taken off here). */
static px_rc on_line(struct px_h1_parser *p, const char *s, size_t n, bool *done)
{
    if (n && s[n - 1] == '\r')
        n--;
    switch (p->state) {
    case S_STATUS:
        return status_line(p, s, n);
    case S_HEADER:
        p->header_bytes += n + 2;
        if (p->header_bytes > PX_H1_HEADER_MAX)
            return PX_ERR_TOO_LARGE;
        return n ? header_line(p, s, n) : headers_end(p, done);
    case S_CHUNK_SIZE:
        return chunk_size_line(p, s, n);
    case S_CHUNK_END:
        if (n)
            return PX_ERR_PROTOCOL;
        p->state = S_CHUNK_SIZE;
        return PX_OK;
    case S_TRAILER:
        p->header_bytes += n + 2;
        if (p->header_bytes > PX_H1_HEADER_MAX)
            return PX_ERR_TOO_LARGE;
        if (!n) {
            p->state = S_DONE;
            *done = true;
        }
        return PX_OK; /* trailer fields: nothing of ours is in them */
    default:
        return PX_ERR_INTERNAL;
    }
}

px_rc px_h1_parse(struct px_h1_parser *p, const char *data, size_t len, bool *done)
{
    *done = p->state == S_DONE;
    while (len) {
        if (p->state == S_DONE)
            return PX_ERR_PROTOCOL; /* more than one answer */
        if (p->state == S_BODY_LEN || p->state == S_CHUNK_DATA || p->state == S_BODY_EOF) {
            size_t n = len;
            if (p->state != S_BODY_EOF && p->left < n)
                n = (size_t)p->left;
            px_rc rc = body_bytes(p, data, n);
            if (rc)
                return rc;
            data += n;
            len -= n;
            if (p->state == S_BODY_EOF)
                continue;
            p->left -= n;
            if (!p->left) {
                p->state = p->state == S_BODY_LEN ? S_DONE : S_CHUNK_END;
                *done = p->state == S_DONE;
            }
            continue;
        }
        const char *lf = memchr(data, '\n', len);
        size_t take = lf ? (size_t)(lf - data) : len;
        if (p->line_len + take > sizeof(p->line))
            return PX_ERR_TOO_LARGE;
        memcpy(p->line + p->line_len, data, take);
        p->line_len += take;
        if (!lf)
            return PX_OK;
        data += take + 1;
        len -= take + 1;
        size_t n = p->line_len;
        p->line_len = 0;
        px_rc rc = on_line(p, p->line, n, done);
        if (rc)
            return rc;
    }
    return PX_OK;
}

px_rc px_h1_parse_eof(struct px_h1_parser *p, bool *done)
{
    if (p->state == S_BODY_EOF)
        p->state = S_DONE;
    *done = p->state == S_DONE;
    return *done ? PX_OK : PX_ERR_PROTOCOL;
}

/* ------------------------------------------------------------------ I/O */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void px_h1_conn_close(struct px_h1_conn *conn)
{
    if (!conn || !conn->h)
        return;
    curl_easy_cleanup(conn->h);
    conn->h = NULL;
}

/* Waits until fd is ready for `events` or deadline_ms: PX_OK, PX_ERR_TIMEOUT, or
 * PX_ERR_UNAVAILABLE when poll fails. */
static px_rc wait_fd(curl_socket_t fd, short events, int64_t deadline_ms, struct px_h1_io *io)
{
    for (;;) {
        int64_t left = deadline_ms - now_ms();
        if (left <= 0)
            return PX_ERR_TIMEOUT;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return PX_OK; /* also POLLERR / POLLHUP: the next call says what */
        if (n < 0 && errno != EINTR) {
            io->os_errno = errno;
            return PX_ERR_UNAVAILABLE;
        }
    }
}

static px_rc connect_new(struct px_h1_conn *conn, px_h1_setup_fn setup, void *setup_arg,
                         int64_t deadline_ms, long connect_ms, struct px_h1_io *io)
{
    long left = (long)(deadline_ms - now_ms());
    if (left <= 0)
        return PX_ERR_TIMEOUT;
    CURL *h = curl_easy_init();
    if (!h)
        return PX_ERR_NOMEM;
    /* CONNECT through a proxy whatever the scheme: the request line stays
     * origin-form, as signed. */
    if (!setup(setup_arg, h) || curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L) ||
        curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L) ||
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms < left ? connect_ms : left) ||
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left)) {
        curl_easy_cleanup(h);
        snprintf(io->message, sizeof(io->message), "libcurl refused an option");
        return PX_ERR_INTERNAL;
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &io->os_errno);
        snprintf(io->message, sizeof(io->message), "%s", curl_easy_strerror(cc));
        curl_easy_cleanup(h);
        return cc == CURLE_OPERATION_TIMEDOUT ? PX_ERR_TIMEOUT : PX_ERR_UNAVAILABLE;
    }
    conn->h = h;
    return PX_OK;
}

/* A kept connection the server may have closed while it was idle: a read
 * that would block means it is still open (and, over TLS, takes in what the
 * server sent meanwhile, such as session tickets). */
static bool still_open(CURL *h)
{
    char b;
    size_t n = 0;
    return curl_easy_recv(h, &b, 1, &n) == CURLE_AGAIN;
}

static px_rc send_all(CURL *h, curl_socket_t fd, const char *req, size_t len, int64_t deadline_ms,
                      struct px_h1_io *io)
{
    size_t off = 0;
    while (off < len) {
        size_t n = 0;
        CURLcode cc = curl_easy_send(h, req + off, len - off, &n);
        if (cc == CURLE_OK) {
            off += n;
            io->sent = io->sent || n > 0;
            continue;
        }
        if (cc != CURLE_AGAIN) {
            snprintf(io->message, sizeof(io->message), "%s", curl_easy_strerror(cc));
            return PX_ERR_UNAVAILABLE;
        }
        px_rc rc = wait_fd(fd, POLLOUT, deadline_ms, io);
        if (rc)
            return rc;
    }
    return PX_OK;
}

/* Reads what has arrived without waiting. *done: the answer is complete;
 * *started: some of it came. */
static px_rc read_some(CURL *h, struct px_h1_parser *p, struct px_h1_io *io, bool *started,
                       bool *done)
{
    char buf[16384];
    for (;;) {
        size_t n = 0;
        CURLcode cc = curl_easy_recv(h, buf, sizeof(buf), &n);
        if (cc == CURLE_AGAIN)
            return PX_OK;
        if (cc != CURLE_OK || n == 0) {
            if (cc == CURLE_OK && px_h1_parse_eof(p, done) == PX_OK && *done)
                return PX_OK;
            snprintf(io->message, sizeof(io->message), "%s",
                     cc != CURLE_OK ? curl_easy_strerror(cc)
                     : *started     ? "connection closed in the middle of the answer"
                                    : "connection closed without an answer");
            return PX_ERR_UNAVAILABLE;
        }
        *started = true;
        px_rc rc = px_h1_parse(p, buf, n, done);
        if (rc) {
            snprintf(io->message, sizeof(io->message), "%s",
                     rc == PX_ERR_TOO_LARGE ? "answer over its size cap" : "malformed HTTP answer");
            return rc;
        }
        if (*done)
            return PX_OK;
    }
}

/* Connects when needed (a kept connection idle for PX_H1_FRESH_MS or more is
 * checked first), then sends the request. */
static px_rc start(struct px_h1_conn *conn, px_h1_setup_fn setup, void *setup_arg, const char *req,
                   size_t len, int64_t deadline_ms, long connect_ms, struct px_h1_parser *p,
                   struct px_h1_io *io)
{
    conn->reused = conn->h != NULL;
    conn->started = false;
    if (conn->reused && now_ms() - conn->used_ms >= PX_H1_FRESH_MS && !still_open(conn->h)) {
        px_h1_conn_close(conn);
        conn->reused = false;
    }
    if (!conn->h) {
        px_rc rc = connect_new(conn, setup, setup_arg, deadline_ms, connect_ms, io);
        if (rc)
            return rc;
    }
    conn->fd = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(conn->h, CURLINFO_ACTIVESOCKET, &conn->fd) != CURLE_OK ||
        conn->fd == CURL_SOCKET_BAD) {
        px_h1_conn_close(conn);
        snprintf(io->message, sizeof(io->message), "no connection after connecting");
        return PX_ERR_UNAVAILABLE;
    }
    px_h1_parser_init(p, p->body, p->on_header, p->arg);
    px_rc rc = send_all(conn->h, conn->fd, req, len, deadline_ms, io);
    if (rc)
        px_h1_conn_close(conn);
    return rc;
}

/* The exchange's end: a kept connection stays (unless the answer closes it),
 * a failed one is dropped. */
static void finish(struct px_h1_conn *conn, const struct px_h1_parser *p, px_rc rc)
{
    if (!rc && !p->close)
        conn->used_ms = now_ms();
    else
        px_h1_conn_close(conn);
}

/* The server closed a kept connection just as it was reused: nothing of an
 * answer came, so the request may go once more on a new one. */
static bool stale(const struct px_h1_conn *conn, px_rc rc)
{
    return conn->reused && !conn->started && rc == PX_ERR_UNAVAILABLE;
}

px_rc px_h1_exchange(struct px_h1_conn *conn, px_h1_setup_fn setup, void *setup_arg,
                     const char *req, size_t len, int64_t deadline_ms, long connect_ms,
                     struct px_h1_parser *p, struct px_h1_io *io)
{
    px_rc rc = PX_OK;
    memset(io, 0, sizeof(*io));
    /* A kept connection can be closed by the server just as we reuse it:
     * then once more on a new one, as curl_easy_perform does. */
    for (int round = 0; round < 2; round++) {
        rc = start(conn, setup, setup_arg, req, len, deadline_ms, connect_ms, p, io);
        bool done = false;
        /* nothing can be there before the server has read the request */
        while (!rc && !done) {
            rc = wait_fd(conn->fd, POLLIN, deadline_ms, io);
            if (!rc)
                rc = read_some(conn->h, p, io, &conn->started, &done);
        }
        if (conn->h)
            finish(conn, p, rc);
        if (!stale(conn, rc))
            break;
        io->message[0] = '\0';
    }
    return rc;
}

px_rc px_h1_send(struct px_h1_conn *conn, px_h1_setup_fn setup, void *setup_arg, const char *req,
                 size_t len, int64_t deadline_ms, long connect_ms, struct px_h1_parser *p,
                 struct px_h1_io *io)
{
    memset(io, 0, sizeof(*io));
    return start(conn, setup, setup_arg, req, len, deadline_ms, connect_ms, p, io);
}

px_rc px_h1_read(struct px_h1_conn *conn, struct px_h1_parser *p, struct px_h1_io *io, bool *done)
{
    *done = false;
    px_rc rc = read_some(conn->h, p, io, &conn->started, done);
    if (rc || *done)
        finish(conn, p, rc);
    return rc;
}

bool px_h1_stale(const struct px_h1_conn *conn, px_rc rc)
{
    return stale(conn, rc);
}
