/* fuzz_http_server.c: the real HTTP server on arbitrary bytes.
 *
 * LLVMFuzzerInitialize starts the server once (px_http_start on a free
 * loopback port, SQLite stores in a temporary directory, throttling and CORS
 * on so that their code runs too). Each input is then written as raw bytes
 * on a fresh TCP connection, which is half-closed, and the answer read (see
 * read_answer for when reading stops). Every answer must be HTTP and must
 * finish within ANSWER_MS; then GET /health on a kept-alive connection must
 * be 200 within ANSWER_MS. A server that stops answering aborts (a finding),
 * as does any sanitizer report from its threads. Slow by nature (a TCP
 * connection and often an fsync per input): fuzz_http.c drives the same
 * checks without sockets at a much higher rate. Logs go to /dev/null; the
 * server and stores are stopped at exit. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kernel/app.h"
#include "kernel/log.h"
#include "store/audit.h"
#include "store/price.h"
#include "transport/http_server.h"

#define MAX_INPUT (64 * 1024)
#define ANSWER_MS 3000
#define MAX_BODY  4096
#define HEADERS   8192

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct px_app *app;
static struct px_http_server *srv;
static unsigned port;
static int health_fd = -1;
static char dir[64];

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s\n", what);
    abort();
}

static void teardown(void)
{
    if (health_fd >= 0)
        close(health_fd);
    px_http_stop(srv);
    px_app_free(app);
    char p[128];
    const char *files[] = {"prices.db",    "audit.db",      "audit.db-wal",
                           "audit.db-shm", "prices.db-wal", "prices.db-shm"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void make_stores(struct px_config *cfg)
{
    char err[512], price_path[128], audit_path[128];
    snprintf(price_path, sizeof(price_path), "%s/prices.db", dir);
    snprintf(audit_path, sizeof(audit_path), "%s/audit.db", dir);
    snprintf(cfg->price_db, sizeof(cfg->price_db), "sqlite:%s", price_path);
    snprintf(cfg->audit_store, sizeof(cfg->audit_store), "sqlite:%s", audit_path);
    struct px_price_store *ps = NULL;
    const struct px_price_opts po = {.create = true, .timeout_ms = 2000};
    if (px_price_open(cfg->price_db, &po, &ps, err, sizeof(err)) != PX_OK)
        die(err);
    px_price_close(ps);
    sqlite3 *db = NULL;
    if (sqlite3_open(price_path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "INSERT OR REPLACE INTO product_prices (product_id, price, currency)"
                     " VALUES ('PROD-101', '99.99', 'USD')",
                     NULL, NULL, NULL) != SQLITE_OK)
        die("cannot seed the price store");
    sqlite3_close(db);
    struct px_audit_store *as = NULL;
    const struct px_audit_opts ao = {.create = true, .timeout_ms = 1000};
    if (px_audit_open(cfg->audit_store, &ao, &as, err, sizeof(err)) != PX_OK)
        die(err);
    px_audit_close(as);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd >= 0)
        px_log_set_fd(null_fd);
    px_log_init(PX_LOG_ERROR, "fuzz");
    snprintf(dir, sizeof(dir), "/tmp/px-fuzz-http-XXXXXX");
    if (!mkdtemp(dir))
        die("mkdtemp");
    struct px_config cfg = px_config_defaults;
    make_stores(&cfg);
    cfg.audit_timeout_ms = 1000;
    cfg.rate_limit_rps = 100000;
    cfg.rate_limit_burst = 100000;
    snprintf(cfg.cors_origins, sizeof(cfg.cors_origins), "https://app.example.com");
    char err[512];
    if (px_app_new(&cfg, &app, err, sizeof(err)) != PX_OK)
        die(err);
    const struct px_http_opts o = {.host = "127.0.0.1",
                                   .threads = 2,
                                   .max_connections = 64,
                                   .max_connections_per_ip = 32,
                                   .conn_timeout_s = 2,
                                   .max_body = MAX_BODY,
                                   .max_header_bytes = HEADERS};
    if (px_http_start(app, &o, &srv, err, sizeof(err)) != PX_OK)
        die(err);
    port = px_http_port(srv);
    atexit(teardown);
    return 0;
}

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Reset on close: no TIME_WAIT pile-up over millions of connections. */
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether buf[0..len) holds at least one complete response: headers and a
 * Content-Length body (every answer of this server has one). */
static bool complete_response(const char *buf, size_t len)
{
    const char *eoh = memmem(buf, len, "\r\n\r\n", 4);
    if (!eoh)
        return false;
    size_t head = (size_t)(eoh - buf) + 4;
    const char *cl = memmem(buf, head, "\r\nContent-Length: ", 18);
    if (!cl)
        return true;
    size_t body = (size_t)strtoul(cl + 18, NULL, 10);
    return len >= head + body;
}

/* Reads the answer. The server closes after an answer to a half-closed
 * connection, except that MHD 0.9.75 sometimes misses the end of file of a
 * request still incomplete (then only the request deadline ends it); so the
 * read also ends after `quiet_ms` of silence once a whole response arrived,
 * or after `first_ms` when nothing at all arrives. False when data is still
 * trickling in after ANSWER_MS: a server that never finishes an answer. */
static bool read_answer(int fd, char *buf, size_t cap, size_t *len, int first_ms, int quiet_ms)
{
    int64_t deadline = now_ms() + ANSWER_MS;
    *len = 0;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return false;
        int wait = *len == 0 ? first_ms : complete_response(buf, *len) ? quiet_ms : (int)left;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, wait < left ? wait : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 && (wait < left || *len == 0);
        char tmp[16384];
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return true; /* closed (or reset): the answer, if any, is complete */
        size_t take = (size_t)n < cap - *len ? (size_t)n : cap - *len;
        memcpy(buf + *len, tmp, take);
        *len += take;
    }
}

static void check_health(void)
{
    static const char req[] = "GET /health HTTP/1.1\r\nHost: fuzz\r\n\r\n";
    char buf[4096];
    size_t len = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (health_fd < 0)
            health_fd = connect_server();
        if (health_fd < 0)
            continue;
        if (send(health_fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(req) - 1) &&
            read_answer(health_fd, buf, sizeof(buf), &len, ANSWER_MS, 0) && len > 12 &&
            memcmp(buf, "HTTP/1.1 200", 12) == 0)
            return;
        /* Kept-alive connections end (timeouts): one fresh try. */
        close(health_fd);
        health_fd = -1;
    }
    die("the server stopped answering GET /health");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;

    int fd = connect_server();
    if (fd < 0)
        die("cannot connect to the server");
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server closed early (a refused request): fine */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    static char answer[256 * 1024];
    size_t len = 0;
    /* Without an end of headers MHD is still waiting for the request. */
    bool eoh = memmem(data, size, "\r\n\r\n", 4) || memmem(data, size, "\n\n", 2);
    bool done = read_answer(fd, answer, sizeof(answer), &len, eoh ? 10 : 1, 2);
    close(fd);
    if (!done)
        die("no answer and no close within the bound");
    if (len && (len < 9 || memcmp(answer, "HTTP/1.", 7) != 0))
        die("an answer that is not HTTP");
    check_health();
    return 0;
}
