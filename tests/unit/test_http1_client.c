/* test_http1_client.c: the HTTP/1.1 answer parser on its own (every case fed
 * whole and then one byte at a time), then px_h1_exchange() against a
 * scripted TCP server on a free loopback port: keep-alive reuse, a chunked
 * answer written in pieces, Connection: close, a kept connection the server
 * closed (found before sending, and found only after), a server that never
 * answers, one that stops mid-answer, and a refused connection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kernel/buf.h"
#include "transport/http1_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ the parser */

struct pcase {
    const char *name, *in;
    px_rc rc;         /* of the feed (or of the end of input when eof) */
    bool eof;         /* the server closes after `in` */
    long status;      /* when rc is PX_OK */
    const char *body; /* when rc is PX_OK */
    bool close;
};

static const struct pcase pcases[] = {
    {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", PX_OK, false, 200,
     "hello", false},
    {"bare LF and no reason", "HTTP/1.1 200\nContent-Length: 2\n\nok", PX_OK, false, 200, "ok",
     false},
    {"empty body", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", PX_OK, false, 200, "", false},
    {"chunked",
     "HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\n"
     "Trailer: x\r\n\r\n",
     PX_OK, false, 400, "hello!", false},
    {"interim 100 then the answer",
     "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
     PX_OK, false, 200, "x", false},
    {"204 has no body", "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", PX_OK, false, 204,
     "", false},
    {"connection close",
     "HTTP/1.1 500 E\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\nx", PX_OK, false,
     500, "x", true},
    {"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", PX_OK, false, 200, "x",
     true},
    {"body until close", "HTTP/1.1 200 OK\r\n\r\nuntil the end", PX_OK, true, 200, "until the end",
     true},
    {"two lengths agreeing", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
     PX_OK, false, 200, "x", false},
    {"both framings: chunked wins, no reuse",
     "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: "
     "chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
     PX_OK, false, 200, "x", true},
    {"two lengths differing", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     PX_ERR_PROTOCOL, false, 0, NULL, false},
    {"length not a number", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", PX_ERR_PROTOCOL, false,
     0, NULL, false},
    {"coding we cannot undo", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", PX_ERR_PROTOCOL,
     false, 0, NULL, false},
    {"not HTTP", "SSH-2.0-OpenSSH\r\n", PX_ERR_PROTOCOL, false, 0, NULL, false},
    {"HTTP/2 status line", "HTTP/2 200\r\n\r\n", PX_ERR_PROTOCOL, false, 0, NULL, false},
    {"status out of range", "HTTP/1.1 600 X\r\n\r\n", PX_ERR_PROTOCOL, false, 0, NULL, false},
    {"switching protocols", "HTTP/1.1 101 Switching\r\n\r\n", PX_ERR_PROTOCOL, false, 0, NULL,
     false},
    {"folded header", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\n\r\n", PX_ERR_PROTOCOL, false, 0, NULL,
     false},
    {"space before colon", "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", PX_ERR_PROTOCOL, false, 0, NULL,
     false},
    {"control byte in a value", "HTTP/1.1 200 OK\r\nX-A: 1\x01\r\n\r\n", PX_ERR_PROTOCOL, false, 0,
     NULL, false},
    {"chunk size not hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     PX_ERR_PROTOCOL, false, 0, NULL, false},
    {"chunk size overflows",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", PX_ERR_PROTOCOL,
     false, 0, NULL, false},
    {"chunk without its CR LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n",
     PX_ERR_PROTOCOL, false, 0, NULL, false},
    {"bytes after the answer", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1",
     PX_ERR_PROTOCOL, false, 0, NULL, false},
    {"body over the cap", "HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", PX_OK, false, -1, NULL,
     false},
    {"cut in the body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", PX_ERR_PROTOCOL, true, 0,
     NULL, false},
    {"cut in the headers", "HTTP/1.1 200 OK\r\nContent-Le", PX_ERR_PROTOCOL, true, 0, NULL, false},
};

struct seen {
    int headers;
    char errtype[64];
};

static void on_header(void *arg, const char *line, size_t len)
{
    struct seen *s = arg;
    s->headers++;
    if (len > 17 && strncmp(line, "x-amzn-errortype:", 17) == 0)
        snprintf(s->errtype, sizeof(s->errtype), "%.*s", (int)(len - 17), line + 17);
}

/* Feeds in[] in pieces of `step` bytes (0: whole); returns the first error,
 * or the end-of-input verdict. */
static px_rc feed(const struct pcase *c, size_t step, struct px_h1_parser *p, struct px_buf *b,
                  struct seen *seen, bool *done)
{
    px_h1_parser_init(p, b, on_header, seen);
    size_t n = strlen(c->in), off = 0;
    *done = false;
    while (off < n) {
        size_t k = step && n - off > step ? step : n - off;
        px_rc rc = px_h1_parse(p, c->in + off, k, done);
        if (rc)
            return rc;
        off += k;
    }
    return c->eof ? px_h1_parse_eof(p, done) : PX_OK;
}

static void test_parser_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
        const struct pcase *c = &pcases[i];
        for (size_t step = 0; step <= 1; step++) {
            struct px_h1_parser *p = malloc(sizeof(*p));
            struct px_buf b;
            struct seen seen = {0};
            bool done = false;
            assert_non_null(p);
            px_buf_init(&b, 64);
            px_rc rc = feed(c, step, p, &b, &seen, &done);
            if (c->status == -1) {
                /* the 65-byte body: refused as soon as a byte over the cap comes */
                assert_int_equal(rc, PX_OK);
                assert_false(done);
                char big[65];
                memset(big, 'x', sizeof(big));
                assert_int_equal(px_h1_parse(p, big, sizeof(big), &done), PX_ERR_TOO_LARGE);
            } else if (rc != c->rc) {
                fail_msg("%s (step %zu): rc %d, want %d", c->name, step, rc, c->rc);
            } else if (rc == PX_OK) {
                if (!done)
                    fail_msg("%s (step %zu): not done", c->name, step);
                assert_int_equal(p->status, c->status);
                assert_int_equal(b.len, strlen(c->body));
                assert_memory_equal(b.len ? b.data : "", c->body, b.len);
                if (p->close != c->close)
                    fail_msg("%s (step %zu): close %d", c->name, step, p->close);
            }
            px_buf_free(&b);
            free(p);
        }
    }
}

static void test_parser_headers_of_final_answer_only(void **state)
{
    (void)state;
    static const char in[] = "HTTP/1.1 100 Continue\r\nx-amzn-errortype: Interim\r\n\r\n"
                             "HTTP/1.1 400 Bad Request\r\nx-amzn-errortype: ValidationException\r\n"
                             "Content-Length: 2\r\n\r\n{}";
    struct px_h1_parser *p = malloc(sizeof(*p));
    struct px_buf b;
    struct seen seen = {0};
    bool done = false;
    assert_non_null(p);
    px_buf_init(&b, 64);
    px_h1_parser_init(p, &b, on_header, &seen);
    assert_int_equal(px_h1_parse(p, in, sizeof(in) - 1, &done), PX_OK);
    assert_true(done);
    assert_int_equal(seen.headers, 2);
    assert_string_equal(seen.errtype, " ValidationException");
    px_buf_free(&b);
    free(p);
}

static void test_parser_caps(void **state)
{
    (void)state;
    struct px_h1_parser *p = malloc(sizeof(*p));
    struct px_buf b;
    bool done = false;
    assert_non_null(p);
    px_buf_init(&b, 64);
    /* one line over PX_H1_LINE_MAX */
    px_h1_parser_init(p, &b, NULL, NULL);
    assert_int_equal(px_h1_parse(p, "HTTP/1.1 200 OK\r\nX-Long: ", 26, &done), PX_OK);
    char chunk[1024];
    memset(chunk, 'a', sizeof(chunk));
    px_rc rc = PX_OK;
    for (int i = 0; i < 16 && !rc; i++)
        rc = px_h1_parse(p, chunk, sizeof(chunk), &done);
    assert_int_equal(rc, PX_ERR_TOO_LARGE);
    /* header lines adding up to more than PX_H1_HEADER_MAX */
    px_h1_parser_init(p, &b, NULL, NULL);
    assert_int_equal(px_h1_parse(p, "HTTP/1.1 200 OK\r\n", 17, &done), PX_OK);
    char line[1002];
    memset(line, 'v', sizeof(line));
    memcpy(line, "X-A: ", 5);
    line[1000] = '\r';
    line[1001] = '\n';
    rc = PX_OK;
    for (int i = 0; i < 80 && !rc; i++)
        rc = px_h1_parse(p, line, sizeof(line), &done);
    assert_int_equal(rc, PX_ERR_TOO_LARGE);
    px_buf_free(&b);
    free(p);
}

/* ------------------------------------------------- a scripted TCP server */

enum after { KEEP, CLOSE, HANG };

struct step {
    const char *resp; /* written after one request was read */
    size_t piece;     /* written in pieces of this many bytes, 0: at once */
    enum after after;
};

struct srv {
    int lfd, port;
    const struct step *steps;
    size_t n;
    int accepts, requests;
    pthread_t th;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads one request (headers and Content-Length body); false at EOF. */
static bool read_request(int fd)
{
    char buf[8192];
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        char *cl = strstr(buf, "Content-Length: ");
        size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
        if (got >= want)
            return true;
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    int cfd = -1;
    for (size_t i = 0; i < s->n; i++) {
        const struct step *st = &s->steps[i];
        for (;;) {
            if (cfd < 0) {
                cfd = accept(s->lfd, NULL, NULL);
                if (cfd < 0)
                    return NULL;
                s->accepts++;
            }
            if (read_request(cfd))
                break;
            close(cfd); /* the client gave this connection up */
            cfd = -1;
        }
        s->requests++;
        size_t len = strlen(st->resp), off = 0;
        while (off < len) {
            size_t k = st->piece && len - off > st->piece ? st->piece : len - off;
            if (send(cfd, st->resp + off, k, MSG_NOSIGNAL) < 0)
                break;
            off += k;
            if (off < len)
                sleep_ms(5);
        }
        if (st->after == HANG)
            sleep_ms(700);
        if (st->after != KEEP) {
            close(cfd);
            cfd = -1;
        }
    }
    if (cfd >= 0)
        close(cfd);
    return NULL;
}

/* A TCP socket bound to a free loopback port, *port set to it. */
static int bound_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void srv_start(struct srv *s, const struct step *steps, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->steps = steps;
    s->n = n;
    s->lfd = bound_socket(&s->port);
    assert_int_equal(listen(s->lfd, 8), 0);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
    shutdown(s->lfd, SHUT_RDWR); /* wakes a pending accept() */
    pthread_join(s->th, NULL);
    close(s->lfd);
}

struct target {
    char url[64];
};

static bool setup_handle(void *arg, CURL *h)
{
    const struct target *t = arg;
    return curl_easy_setopt(h, CURLOPT_URL, t->url) == CURLE_OK;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char REQ[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";

struct client {
    struct target t;
    struct px_h1_conn conn;
    struct px_h1_parser *p;
    struct px_buf body;
    struct px_h1_io io;
};

static void client_init(struct client *c, int port)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->t.url, sizeof(c->t.url), "http://127.0.0.1:%d/", port);
    c->p = malloc(sizeof(*c->p));
    assert_non_null(c->p);
    px_buf_init(&c->body, 1024);
    px_h1_parser_init(c->p, &c->body, NULL, NULL);
}

static px_rc client_go(struct client *c, long timeout_ms)
{
    return px_h1_exchange(&c->conn, setup_handle, &c->t, REQ, sizeof(REQ) - 1,
                          mono_ms() + timeout_ms, 500, c->p, &c->io);
}

static void client_free(struct client *c)
{
    px_h1_conn_close(&c->conn);
    px_buf_free(&c->body);
    free(c->p);
}

/* A scripted server and a client of it: what every exchange test starts with. */
struct rig {
    struct srv s;
    struct client c;
};

static void rig_start(struct rig *r, const struct step *steps, size_t n)
{
    srv_start(&r->s, steps, n);
    client_init(&r->c, r->s.port);
}

/* Closes the client, then stops the server (its counts stay readable). */
static void rig_stop(struct rig *r)
{
    client_free(&r->c);
    srv_stop(&r->s);
}

#define OK_KEEP "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

static void test_exchange_keep_alive_and_chunked(void **state)
{
    (void)state;
    static const struct step steps[] = {
        {OK_KEEP, 0, KEEP},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 7,
         KEEP},
        {"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy", 0, KEEP},
        {OK_KEEP, 0, KEEP},
    };
    struct rig r;
    rig_start(&r, steps, 4);
    assert_int_equal(client_go(&r.c, 2000), PX_OK);
    assert_int_equal(r.c.p->status, 200);
    assert_int_equal(r.c.body.len, 2);
    assert_non_null(r.c.conn.h); /* kept */
    assert_int_equal(client_go(&r.c, 2000), PX_OK);
    assert_int_equal(r.c.body.len, 5);
    assert_memory_equal(r.c.body.data, "abcde", 5);
    assert_int_equal(client_go(&r.c, 2000), PX_OK);
    assert_int_equal(r.c.p->status, 503);
    assert_null(r.c.conn.h); /* Connection: close: not kept */
    assert_int_equal(client_go(&r.c, 2000), PX_OK);
    assert_int_equal(r.c.p->status, 200);
    rig_stop(&r);
    assert_int_equal(r.s.requests, 4);
    assert_int_equal(r.s.accepts, 2); /* one connection for three answers, one after the close */
}

/* The server closes a kept connection without saying so: found by the check
 * before reuse (idle for long), or by the answer that never comes (just used). */
static void test_exchange_server_closed_kept_connection(void **state)
{
    (void)state;
    static const struct step steps[] = {
        {OK_KEEP, 0, CLOSE},
        {OK_KEEP, 0, CLOSE},
        {OK_KEEP, 0, KEEP},
    };
    struct rig r;
    rig_start(&r, steps, 3);
    assert_int_equal(client_go(&r.c, 2000), PX_OK);
    assert_non_null(r.c.conn.h);
    sleep_ms(50);                       /* the close reaches us */
    r.c.conn.used_ms -= PX_H1_FRESH_MS; /* idle long enough to be checked */
    assert_int_equal(client_go(&r.c, 2000), PX_OK);
    assert_int_equal(r.s.accepts, 2);
    sleep_ms(50);
    /* just used: not checked, so the request goes out on the closed
     * connection, nothing answers, and it goes again on a new one */
    assert_int_equal(client_go(&r.c, 2000), PX_OK);
    assert_int_equal(r.c.p->status, 200);
    rig_stop(&r);
    assert_int_equal(r.s.requests, 3);
    assert_int_equal(r.s.accepts, 3);
}

static void test_exchange_no_answer_times_out(void **state)
{
    (void)state;
    /* the server reads the request, says nothing for 700 ms, then closes */
    static const struct step steps[] = {{"", 0, HANG}};
    struct rig r;
    rig_start(&r, steps, 1);
    int64_t t0 = mono_ms();
    assert_int_equal(client_go(&r.c, 200), PX_ERR_TIMEOUT);
    int64_t took = mono_ms() - t0;
    assert_true(took >= 190 && took < 600);
    assert_true(r.c.io.sent); /* it may have been applied */
    assert_null(r.c.conn.h);
    rig_stop(&r);
}

static void test_exchange_cut_mid_answer(void **state)
{
    (void)state;
    static const struct step steps[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, CLOSE}};
    struct rig r;
    rig_start(&r, steps, 1);
    assert_int_equal(client_go(&r.c, 2000), PX_ERR_UNAVAILABLE);
    assert_true(r.c.io.sent);
    assert_non_null(strstr(r.c.io.message, "middle of the answer"));
    assert_null(r.c.conn.h);
    rig_stop(&r);
    assert_int_equal(r.s.accepts, 1); /* a fresh connection is not tried again */
}

static void test_exchange_refused(void **state)
{
    (void)state;
    /* a port that was free a moment ago */
    int port;
    close(bound_socket(&port));
    struct client c;
    client_init(&c, port);
    assert_int_equal(client_go(&c, 2000), PX_ERR_UNAVAILABLE);
    assert_false(c.io.sent);
    assert_true(c.io.message[0] != '\0');
    client_free(&c);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_cases),
        cmocka_unit_test(test_parser_headers_of_final_answer_only),
        cmocka_unit_test(test_parser_caps),
        cmocka_unit_test(test_exchange_keep_alive_and_chunked),
        cmocka_unit_test(test_exchange_server_closed_kept_connection),
        cmocka_unit_test(test_exchange_no_answer_times_out),
        cmocka_unit_test(test_exchange_cut_mid_answer),
        cmocka_unit_test(test_exchange_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
