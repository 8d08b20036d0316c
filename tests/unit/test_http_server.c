/* test_http_server.c: the libmicrohttpd server against real SQLite stores,
 * over loopback, with libcurl and raw sockets as clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernel/app.h"
#include "kernel/log.h"
#include "store/audit.h"
#include "store/price.h"
#include "transport/http_server.h"

#define MAX_BODY   1024
#define HEADER_MEM 8192
#define AUDIT_MS   1000
#define USER_OK    "0b7e4c1a-8b1e-4c2a-9d7e-3f1a2b3c4d5e"
#define USER_GATE  "1c8f5d2b-9c2f-4d3b-8e8f-4a2b3c4d5e6f"
#define USER_STOP  "2d9a6e3c-ad3a-4e4c-9f9a-5b3c4d5e6f70"
#define PRICE_JSON "{\"productId\":\"PROD-101\",\"price\":99.99,\"currency\":\"USD\"}"

struct env {
    char dir[128];
    char audit_path[256];
    char log_path[256];
    int log_fd;
    struct px_app *app;
    struct px_http_server *srv;
    unsigned port;
};
static struct env E;

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- stores and app ---- */

static int seed_prices(const char *spec, const char *path)
{
    char err[512];
    struct px_price_store *ps = NULL;
    const struct px_price_opts po = {.create = true, .timeout_ms = 2000};
    if (px_price_open(spec, &po, &ps, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "price store: %s\n", err);
        return -1;
    }
    char seed[512];
    const char *src = getenv("PX_SOURCE_DIR");
    snprintf(seed, sizeof(seed), "%s/infra/seed/prices.sql", src ? src : ".");
    int r = 0;
    if (access(seed, R_OK) == 0) {
        if (px_price_seed(ps, seed, err, sizeof(err)) != PX_OK) {
            fprintf(stderr, "seed: %s\n", err);
            r = -1;
        }
    } else {
        /* No seed file in this tree: the schema exists now, add the one row we need. */
        sqlite3 *db = NULL;
        if (sqlite3_open(path, &db) != SQLITE_OK ||
            sqlite3_exec(db,
                         "INSERT OR REPLACE INTO product_prices (product_id, price, currency)"
                         " VALUES ('PROD-101', '99.99', 'USD')",
                         NULL, NULL, NULL) != SQLITE_OK)
            r = -1;
        sqlite3_close(db);
    }
    px_price_close(ps);
    return r;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    snprintf(E.dir, sizeof(E.dir), "/tmp/px-http-XXXXXX");
    if (!mkdtemp(E.dir))
        return -1;
    snprintf(E.log_path, sizeof(E.log_path), "%s/log", E.dir);
    E.log_fd = open(E.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (E.log_fd < 0)
        return -1;
    px_log_set_fd(E.log_fd);
    px_log_init(PX_LOG_INFO, "pricing");

    struct px_config cfg = px_config_defaults;
    char price_path[256];
    snprintf(price_path, sizeof(price_path), "%s/prices.db", E.dir);
    snprintf(E.audit_path, sizeof(E.audit_path), "%s/audit.db", E.dir);
    snprintf(cfg.price_db, sizeof(cfg.price_db), "sqlite:%s", price_path);
    snprintf(cfg.audit_store, sizeof(cfg.audit_store), "sqlite:%s", E.audit_path);
    cfg.audit_timeout_ms = AUDIT_MS;
    if (seed_prices(cfg.price_db, price_path))
        return -1;
    char err[512];
    struct px_audit_store *as = NULL;
    const struct px_audit_opts ao = {.create = true, .timeout_ms = AUDIT_MS};
    if (px_audit_open(cfg.audit_store, &ao, &as, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "audit store: %s\n", err);
        return -1;
    }
    px_audit_close(as);
    if (px_app_new(&cfg, &E.app, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "app: %s\n", err);
        return -1;
    }
    const struct px_http_opts o = {.host = "127.0.0.1",
                                   .port = 0,
                                   .threads = 2,
                                   .max_connections = 64,
                                   .conn_timeout_s = 10,
                                   .max_body = MAX_BODY,
                                   .max_header_bytes = HEADER_MEM};
    if (px_http_start(E.app, &o, &E.srv, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    E.port = px_http_port(E.srv);
    return E.port ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    px_http_stop(E.srv);
    px_app_free(E.app);
    px_log_set_fd(STDOUT_FILENO);
    if (E.log_fd >= 0)
        close(E.log_fd);
    if (getenv("PX_KEEP_LOG")) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "cp %s %s", E.log_path, getenv("PX_KEEP_LOG"));
        if (system(cmd) != 0)
            fprintf(stderr, "cannot keep the log\n");
    }
    DIR *d = opendir(E.dir);
    if (d) {
        struct dirent *de;
        char p[512];
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", E.dir, de->d_name);
            unlink(p);
        }
        closedir(d);
        rmdir(E.dir);
    }
    curl_global_cleanup();
    return 0;
}

/* ---- clients ---- */

struct reply {
    long status;
    char body[16384];
    size_t len;
    char ctype[128];
    char allow[64];
    char connection[64];
    char request_id[64];
    long connects;
};

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t k = sz * n;
    size_t room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, k < room ? k : room);
    r->len += k < room ? k : room;
    r->body[r->len] = '\0';
    return k;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vn = n - nl - 1;
    while (vn && (*v == ' '))
        v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n'))
        vn--;
    if (vn >= cap)
        vn = cap - 1;
    memcpy(out, v, vn);
    out[vn] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct reply *r = ud;
    size_t k = sz * n;
    header_value(p, k, "Content-Type", r->ctype, sizeof(r->ctype));
    header_value(p, k, "Allow", r->allow, sizeof(r->allow));
    header_value(p, k, "Connection", r->connection, sizeof(r->connection));
    header_value(p, k, "X-Request-Id", r->request_id, sizeof(r->request_id));
    return k;
}

static void curl_prepare(CURL *h, unsigned port, const char *method, const char *target,
                         const char *body, size_t blen, struct reply *r)
{
    char url[2048];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, target);
    memset(r, 0, sizeof(*r));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)blen);
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
}

static void curl_finish(CURL *h, struct reply *r)
{
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
}

/* One request on handle h (reused: keep-alive) or on a fresh handle. */
static CURLcode http_on(CURL *h, const char *method, const char *target, const char *body,
                        size_t blen, struct reply *r)
{
    curl_prepare(h, E.port, method, target, body, blen, r);
    CURLcode cc = curl_easy_perform(h);
    curl_finish(h, r);
    return cc;
}

static void http(const char *method, const char *target, const char *body, size_t blen,
                 struct reply *r)
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    assert_int_equal(http_on(h, method, target, body, blen, r), CURLE_OK);
    curl_easy_cleanup(h);
}

/* Sends raw bytes on a new connection and reads until the server closes or
 * 5 s pass. Returns the status of the first response line, or -1. */
static int raw(unsigned port, const char *req, size_t len, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before reading it all */
        off += (size_t)w;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == cap - 1)
            break;
    }
    out[got] = '\0';
    close(fd);
    int status = -1;
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    return status;
}

static int raw_s(const char *req, char *out, size_t cap)
{
    return raw(E.port, req, strlen(req), out, cap);
}

static long in_flight(struct px_http_server *s)
{
    long n = -1;
    px_http_stats(s, &n, NULL);
    return n;
}

/* Waits (bounded) for the server's request count to fall to zero. */
static void assert_drained(struct px_http_server *s)
{
    int64_t until = now_ms() + 5000;
    while (in_flight(s) != 0 && now_ms() < until)
        sleep_ms(5);
    assert_int_equal(in_flight(s), 0);
}

static size_t audit_count(const char *user)
{
    struct px_arena *a = px_arena_new(1 << 20);
    assert_non_null(a);
    struct px_audit_query q = {.user_id = user, .limit = 100, .now = (int64_t)time(NULL)};
    struct px_audit_page page = {0};
    assert_int_equal(px_audit_query(px_app_audit(E.app), &q, a, &page), PX_OK);
    size_t n = page.nitems;
    px_arena_free(a);
    return n;
}

/* Holds the audit database's write lock, so the audit writer waits. */
static sqlite3 *lock_audit(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(E.audit_path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void unlock_audit(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* ---- tests ---- */

static void test_health(void **state)
{
    (void)state;
    struct reply r;
    http("GET", "/health", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    assert_string_equal(r.ctype, "application/json");
    assert_int_equal(strlen(r.request_id), 36);
}

static void test_ready(void **state)
{
    (void)state;
    struct reply r;
    http("GET", "/ready", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\"}");
}

static void test_metrics(void **state)
{
    (void)state;
    struct reply r;
    http("GET", "/health", NULL, 0, &r);
    http("GET", "/metrics", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4");
    assert_true(r.len > 0);
}

static void test_builtin_method(void **state)
{
    (void)state;
    struct reply r;
    http("POST", "/health", "x", 1, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET");
    assert_non_null(strstr(r.body, "\"METHOD_NOT_ALLOWED\""));
    http("DELETE", "/metrics", NULL, 0, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET");
    char out[1024];
    assert_int_equal(
        raw_s("HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof(out)),
        200);
    assert_null(strstr(out, "\"status\""));
}

static void test_price(void **state)
{
    (void)state;
    size_t before = audit_count(USER_OK);
    struct reply r;
    http("GET", "/price?id=PROD-101&userId=" USER_OK, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, PRICE_JSON);
    assert_string_equal(r.ctype, "application/json");
    /* The record was durable before the answer left: it is there already. */
    assert_int_equal(audit_count(USER_OK), before + 1);

    http("GET", "/price?id=NOPE-1&userId=" USER_OK, NULL, 0, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"NOT_FOUND\""));
    assert_int_equal(audit_count(USER_OK), before + 2);

    http("GET", "/price?id=PROD-101", NULL, 0, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"VALIDATION_FAILED\""));
}

static void test_route_not_found(void **state)
{
    (void)state;
    struct reply r;
    http("GET", "/nope", NULL, 0, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"ROUTE_NOT_FOUND\""));
    assert_int_equal(strlen(r.request_id), 36);
}

static void test_body_too_large(void **state)
{
    (void)state;
    char *big = malloc(MAX_BODY * 4);
    assert_non_null(big);
    memset(big, 'a', MAX_BODY * 4);
    struct reply r;
    http("POST", "/price", big, MAX_BODY * 4, &r);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"PAYLOAD_TOO_LARGE\""));
    free(big);

    /* Exactly the cap is accepted (and then routed: POST /price is a 405). */
    char *ok = calloc(1, MAX_BODY);
    assert_non_null(ok);
    memset(ok, 'a', MAX_BODY);
    http("POST", "/price", ok, MAX_BODY, &r);
    assert_int_equal(r.status, 405);
    free(ok);

    /* Chunked: no length up front, the cap is noticed while reading. */
    char req[8192];
    int n = snprintf(req, sizeof(req),
                     "POST /price HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += snprintf(req + n, sizeof(req) - (size_t)n, "200\r\n");
        memset(req + n, 'b', 0x200);
        n += 0x200;
        n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    }
    n += snprintf(req + n, sizeof(req) - (size_t)n, "0\r\n\r\n");
    char out[4096];
    assert_int_equal(raw(E.port, req, (size_t)n, out, sizeof(out)), 413);
    assert_non_null(strstr(out, "\"PAYLOAD_TOO_LARGE\""));
    assert_drained(E.srv);
}

static void test_bad_query_and_path(void **state)
{
    (void)state;
    struct reply r;
    http("GET", "/price?id=PROD%00-101&userId=" USER_OK, NULL, 0, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"VALIDATION_FAILED\""));

    char out[4096];
    assert_int_equal(raw_s("GET /price?id=PROD-101&userId=%zz HTTP/1.1\r\nHost: x\r\n"
                           "Connection: close\r\n\r\n",
                           out, sizeof(out)),
                     400);
    assert_int_equal(raw_s("GET /pri%00ce?id=PROD-101 HTTP/1.1\r\nHost: x\r\n"
                           "Connection: close\r\n\r\n",
                           out, sizeof(out)),
                     400);
    assert_non_null(strstr(out, "\"VALIDATION_FAILED\""));
    /* The raw target is decoded by us: an escaped path still routes. */
    assert_int_equal(
        raw_s("GET /he%61lth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof(out)),
        200);
    /* Absolute form is reduced to its path. */
    assert_int_equal(raw_s("GET http://x/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           out, sizeof(out)),
                     200);
}

static void test_framing(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(raw_s("POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                           out, sizeof(out)),
                     400);
    assert_non_null(strstr(out, "Connection: close"));
    assert_int_equal(raw_s("POST /price HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
                           "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                           out, sizeof(out)),
                     400);
    /* The smuggled second request must not have been answered. */
    assert_null(strstr(out + 12, "HTTP/1.1 200"));
    assert_int_equal(raw_s("POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           "Content-Length: 6\r\n\r\nhello!",
                           out, sizeof(out)),
                     400);
    /* Trailing blanks: libmicrohttpd would read the body to end of stream. */
    assert_int_equal(raw_s("POST /price HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked \r\n"
                           "\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                           out, sizeof(out)),
                     400);
    assert_null(strstr(out + 12, "HTTP/1.1 200"));
    /* A folded line: libmicrohttpd appends it to the header's name. */
    assert_int_equal(raw_s("POST /price HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           " x\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                           out, sizeof(out)),
                     400);
    assert_non_null(strstr(out, "obs-fold"));
    assert_null(strstr(out + 12, "HTTP/1.1 200"));
    assert_drained(E.srv);
}

static void test_header_caps(void **state)
{
    (void)state;
    static char req[5 * HEADER_MEM];
    char out[4096];
    /* Request target past the whole connection memory: MHD answers 414 itself. */
    int n = snprintf(req, sizeof(req), "GET /");
    memset(req + n, 'a', 4 * HEADER_MEM);
    n += 4 * HEADER_MEM;
    snprintf(req + n, sizeof(req) - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_s(req, out, sizeof(out)), 414);
    /* One header past it: 431. */
    n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', 4 * HEADER_MEM);
    n += 4 * HEADER_MEM;
    snprintf(req + n, sizeof(req) - (size_t)n, "\r\n\r\n");
    assert_int_equal(raw_s(req, out, sizeof(out)), 431);
    /* Past our cap but within the memory: our 431. */
    n = snprintf(req, sizeof(req), "GET /he%%61lth?q=");
    memset(req + n, 'a', HEADER_MEM);
    n += HEADER_MEM;
    snprintf(req + n, sizeof(req) - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_s(req, out, sizeof(out)), 431);
    assert_non_null(strstr(out, "\"HEADERS_TOO_LARGE\""));
    /* More headers than PX_MAX_HEADERS, within the memory: our 431. */
    n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < PX_MAX_HEADERS + 1; i++)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "X-%d: v\r\n", i);
    snprintf(req + n, sizeof(req) - (size_t)n, "Connection: close\r\n\r\n");
    assert_int_equal(raw_s(req, out, sizeof(out)), 431);
    assert_non_null(strstr(out, "\"error\""));
    /* Every context made for these was freed (NOTIFY_COMPLETED ran). */
    assert_drained(E.srv);
}

/* Around the cap: up to it always served; past it our 431 while the
 * connection's memory can still hold an answer (see transports.md). */
static void test_header_cap_edge(void **state)
{
    (void)state;
    static char req[4 * HEADER_MEM];
    char out[4096];
    const char *tail = "\r\nConnection: close\r\n\r\n";
    for (int size = HEADER_MEM - 600; size <= HEADER_MEM + 2048; size += 13) {
        /* One big header: `size` bytes of request line and headers in all. */
        int n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ");
        int pad = size - n - (int)strlen(tail);
        memset(req + n, 'p', (size_t)pad);
        snprintf(req + n + pad, sizeof(req) - (size_t)(n + pad), "%s", tail);
        assert_int_equal((int)strlen(req), size);
        int st = raw_s(req, out, sizeof(out));
        if (st != (size <= HEADER_MEM ? 200 : 431))
            fail_msg("request of %d header bytes answered %d", size, st);
        if (st == 431 && !strstr(out, "\"HEADERS_TOO_LARGE\""))
            fail_msg("431 without our error shape at %d bytes", size);
    }
    /* PX_MAX_HEADERS headers, each long, around the cap. */
    for (int vlen = 40; vlen <= 100; vlen += 3) {
        int n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: x\r\n");
        for (int i = 0; i < PX_MAX_HEADERS - 2; i++) {
            n += snprintf(req + n, sizeof(req) - (size_t)n, "X-%02d: ", i);
            memset(req + n, 'v', (size_t)vlen);
            n += vlen;
            n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
        }
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Connection: close\r\n\r\n");
        int st = raw_s(req, out, sizeof(out));
        bool ok = n <= HEADER_MEM ? st == 200 : n <= HEADER_MEM + 1024 ? st == 431 : st != 200;
        if (!ok)
            fail_msg("%d headers of %d bytes (%d in all) answered %d", PX_MAX_HEADERS, vlen, n, st);
    }
    assert_drained(E.srv);
}

/* A target with many query arguments, well under the header cap. MHD 0.9.75
 * cannot store that many in its connection pool (here about 250; 650 with the
 * server's default memory) and then loses the request: no answer, no handler,
 * no completion. Each must be answered by us, and every context returned. */
static void test_many_query_args(void **state)
{
    (void)state;
    static char req[4 * HEADER_MEM];
    char out[4096];
    const int counts[] = {300, 650, 1000, 3000};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        int n = snprintf(req, sizeof(req), "GET /price?id=PROD-101");
        for (int k = 0; k < counts[i] && n < (int)sizeof(req) - 64; k++)
            n += snprintf(req + n, sizeof(req) - (size_t)n, "&%d", k);
        snprintf(req + n, sizeof(req) - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
        int st = raw_s(req, out, sizeof(out));
        /* Within the header cap: 400 (too many parameters); past it (3000
         * arguments, 14 KB, still inside MHD's memory): our 431. */
        int want = n + 64 <= HEADER_MEM ? 400 : 431;
        if (st != want)
            fail_msg("%d arguments (%d bytes) answered %d, want %d", counts[i], n, st, want);
        if (!strstr(out, "\"error\""))
            fail_msg("%d arguments: not our error shape: %.200s", counts[i], out);
    }
    /* Empty arguments cost MHD a record each too: 7000 of them. */
    int n = snprintf(req, sizeof(req), "GET /price?");
    memset(req + n, '&', 7000);
    n += 7000;
    snprintf(req + n, sizeof(req) - (size_t)n, "id=PROD-101 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(raw_s(req, out, sizeof(out)), 400);
    assert_non_null(strstr(out, "\"VALIDATION_FAILED\""));
    /* Pipelined behind one: both answered, in order, on the same connection. */
    n = snprintf(req, sizeof(req), "GET /health?");
    memset(req + n, '&', 3000);
    n += 3000;
    snprintf(req + n, sizeof(req) - (size_t)n,
             " HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n"
             "Connection: close\r\n\r\n");
    assert_int_equal(raw_s(req, out, sizeof(out)), 200);
    const char *second = strstr(out + 12, "HTTP/1.1 200");
    assert_non_null(second);
    assert_drained(E.srv);
    assert_int_equal(px_http_reclaimed(E.srv), 0);
}

/* When MHD does lose a request (here by letting it store the arguments, as
 * 0.9.75 does without our cut), the context it never completes is freed when
 * the connection closes: in_flight returns to zero and stop is prompt. */
static void test_reclaim_lost_request(void **state)
{
    (void)state;
    char err[256];
    struct px_http_server *s = NULL;
    const struct px_http_opts o = {.host = "127.0.0.1",
                                   .threads = 2,
                                   .max_connections = 16,
                                   .conn_timeout_s = 1,
                                   .max_body = MAX_BODY,
                                   .max_header_bytes = HEADER_MEM,
                                   .keep_mhd_query = true};
    assert_int_equal(px_http_start(E.app, &o, &s, err, sizeof(err)), PX_OK);
    static char req[2 * HEADER_MEM];
    char out[4096];
    for (int round = 0; round < 3; round++) {
        int n = snprintf(req, sizeof(req), "GET /health?");
        for (int k = 0; k < 1000; k++)
            n += snprintf(req + n, sizeof(req) - (size_t)n, "a=%d&", k % 10);
        snprintf(req + n, sizeof(req) - (size_t)n, "b HTTP/1.1\r\nHost: x\r\n\r\n");
        /* MHD 0.9.75 answers nothing; the deadline closes the connection. */
        int st = raw(px_http_port(s), req, strlen(req), out, sizeof(out));
        if (st != -1)
            PX_INFO(NULL, "libmicrohttpd answered %d to 1000 arguments", st);
    }
    int64_t until = now_ms() + 5000;
    while (in_flight(s) != 0 && now_ms() < until)
        sleep_ms(10);
    assert_int_equal(in_flight(s), 0);
    /* Requests on a fresh connection are still served. */
    assert_int_equal(raw(px_http_port(s), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                         strlen("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), out, sizeof(out)),
                     200);
    assert_drained(s);
    int64_t t0 = now_ms();
    px_http_stop(s);
    assert_true(now_ms() - t0 < 3000);
}

static void test_keep_alive(void **state)
{
    (void)state;
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct reply r;
    assert_int_equal(http_on(h, "GET", "/health", NULL, 0, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 1);
    assert_int_equal(http_on(h, "GET", "/price?id=PROD-101&userId=" USER_OK, NULL, 0, &r),
                     CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 0);
    /* An error answer keeps the connection too. */
    assert_int_equal(http_on(h, "GET", "/nope", NULL, 0, &r), CURLE_OK);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.connects, 0);
    curl_easy_cleanup(h);
}

/* The audit gate: a record that cannot be made durable means no price. */
static void test_audit_unavailable(void **state)
{
    (void)state;
    sqlite3 *lock = lock_audit();
    struct reply r;
    int64_t t0 = now_ms();
    http("GET", "/price?id=PROD-101&userId=" USER_GATE, NULL, 0, &r);
    int64_t took = now_ms() - t0;
    unlock_audit(lock);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"AUDIT_UNAVAILABLE\""));
    assert_null(strstr(r.body, "99.99"));
    assert_true(took >= AUDIT_MS / 2);
    /* Once the store is back, the same look-up succeeds. */
    http("GET", "/price?id=PROD-101&userId=" USER_GATE, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, PRICE_JSON);
}

#define NSTOP 4

struct batch {
    unsigned port;
    long status[NSTOP];
    char connection[NSTOP][64];
    char body[NSTOP][256];
};

/* NSTOP concurrent look-ups, each on its own connection. */
static void *run_batch(void *arg)
{
    struct batch *b = arg;
    CURLM *m = curl_multi_init();
    CURL *h[NSTOP];
    static struct reply rs[NSTOP];
    for (int i = 0; i < NSTOP; i++) {
        h[i] = curl_easy_init();
        curl_prepare(h[i], b->port, "GET", "/price?id=PROD-101&userId=" USER_STOP, NULL, 0, &rs[i]);
        curl_multi_add_handle(m, h[i]);
    }
    int running = 1;
    int64_t until = now_ms() + 20000;
    while (running && now_ms() < until) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    for (int i = 0; i < NSTOP; i++) {
        curl_finish(h[i], &rs[i]);
        b->status[i] = rs[i].status;
        snprintf(b->connection[i], sizeof(b->connection[i]), "%s", rs[i].connection);
        snprintf(b->body[i], sizeof(b->body[i]), "%.200s", rs[i].body);
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
    }
    curl_multi_cleanup(m);
    return NULL;
}

struct stopper {
    struct px_http_server *srv;
    atomic_bool done;
};

static void *run_stop(void *arg)
{
    struct stopper *st = arg;
    px_http_stop(st->srv);
    atomic_store(&st->done, true);
    return NULL;
}

/* Shutdown while requests wait for their audit records: they are answered. */
static void test_shutdown_completes_suspended(void **state)
{
    (void)state;
    char err[256];
    struct px_http_server *s = NULL;
    const struct px_http_opts o = {.host = "localhost", .threads = 2};
    assert_int_equal(px_http_start(E.app, &o, &s, err, sizeof(err)), PX_OK);
    unsigned port = px_http_port(s);
    assert_true(port > 0);

    size_t before = audit_count(USER_STOP);
    sqlite3 *lock = lock_audit();
    struct batch b = {.port = port};
    pthread_t client;
    assert_int_equal(pthread_create(&client, NULL, run_batch, &b), 0);
    long pending = 0;
    for (int64_t until = now_ms() + 5000; pending < NSTOP && now_ms() < until; sleep_ms(2))
        px_http_stats(s, NULL, &pending);
    assert_int_equal(pending, NSTOP);

    struct stopper st = {.srv = s};
    atomic_init(&st.done, false);
    pthread_t stopper;
    assert_int_equal(pthread_create(&stopper, NULL, run_stop, &st), 0);
    sleep_ms(150);
    /* Still waiting for the suspended requests; no longer accepting. */
    assert_false(atomic_load(&st.done));
    char out[256];
    assert_int_equal(raw(port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 34, out, sizeof(out)),
                     -1);
    unlock_audit(lock);
    pthread_join(stopper, NULL);
    pthread_join(client, NULL);
    for (int i = 0; i < NSTOP; i++) {
        assert_int_equal(b.status[i], 200);
        assert_string_equal(b.body[i], PRICE_JSON);
        assert_string_equal(b.connection[i], "close");
    }
    assert_int_equal(audit_count(USER_STOP), before + NSTOP);
}

static void test_bad_host_and_port(void **state)
{
    (void)state;
    char err[256];
    struct px_http_server *s = NULL;
    struct px_http_opts o = {.host = "no-such-host.invalid", .port = 0};
    assert_int_equal(px_http_start(E.app, &o, &s, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(s);
    assert_non_null(strstr(err, "no-such-host.invalid"));
    o.host = "127.0.0.1";
    o.port = E.port; /* taken by the shared server */
    assert_int_equal(px_http_start(E.app, &o, &s, err, sizeof(err)), PX_ERR_IO);
    assert_non_null(strstr(err, "in use"));
    o.port = 70000;
    assert_int_equal(px_http_start(E.app, &o, &s, err, sizeof(err)), PX_ERR_CONFIG);
    /* IPv6 literal, when the machine has ::1. */
    o.host = "::1";
    o.port = 0;
    px_rc rc = px_http_start(E.app, &o, &s, err, sizeof(err));
    if (rc == PX_OK) {
        unsigned p = px_http_port(s);
        char url[64];
        snprintf(url, sizeof(url), "http://[::1]:%u/health", p);
        CURL *h = curl_easy_init();
        struct reply r;
        curl_prepare(h, p, "GET", "/health", NULL, 0, &r);
        curl_easy_setopt(h, CURLOPT_URL, url);
        assert_int_equal(curl_easy_perform(h), CURLE_OK);
        curl_finish(h, &r);
        curl_easy_cleanup(h);
        assert_int_equal(r.status, 200);
        px_http_stop(s);
    }
}

struct serve_arg {
    px_rc rc;
    char err[256];
};

static void *run_serve(void *arg)
{
    struct serve_arg *a = arg;
    const struct px_http_opts o = {.host = "127.0.0.1", .port = 0};
    a->rc = px_http_serve(E.app, &o, a->err, sizeof(a->err));
    return NULL;
}

/* Finds the port of a "listening" line written past offset `from` of the log. */
static unsigned logged_port(long from)
{
    FILE *f = fopen(E.log_path, "r");
    if (!f)
        return 0;
    if (fseek(f, from, SEEK_SET) != 0) {
        fclose(f);
        return 0;
    }
    char line[4096];
    unsigned port = 0;
    while (fgets(line, sizeof(line), f)) {
        if (!strstr(line, "\"listening\""))
            continue;
        const char *p = strstr(line, "\"address\":\"127.0.0.1:");
        if (p)
            port = (unsigned)strtoul(p + strlen("\"address\":\"127.0.0.1:"), NULL, 10);
    }
    fclose(f);
    return port;
}

static bool log_has(const char *needle)
{
    FILE *f = fopen(E.log_path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* serve = start + wait for SIGTERM + stop, with the signal sent to the process. */
static void test_serve_sigterm(void **state)
{
    (void)state;
    unsigned shared = E.port;
    struct stat st;
    assert_int_equal(stat(E.log_path, &st), 0);
    struct serve_arg a = {.rc = PX_ERR_INTERNAL};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_serve, &a), 0);
    unsigned port = 0;
    for (int64_t until = now_ms() + 5000; now_ms() < until; sleep_ms(10)) {
        port = logged_port((long)st.st_size);
        if (port && port != shared)
            break;
    }
    assert_true(port && port != shared);
    char out[1024];
    assert_int_equal(raw(port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 52,
                         out, sizeof(out)),
                     200);
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, PX_OK);
    assert_true(log_has("\"stopped\""));
    /* The shared server lived through it. */
    struct reply r;
    http("GET", "/health", NULL, 0, &r);
    assert_int_equal(r.status, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_builtin_method),
        cmocka_unit_test(test_price),
        cmocka_unit_test(test_route_not_found),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_bad_query_and_path),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_header_caps),
        cmocka_unit_test(test_header_cap_edge),
        cmocka_unit_test(test_many_query_args),
        cmocka_unit_test(test_reclaim_lost_request),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_audit_unavailable),
        cmocka_unit_test(test_shutdown_completes_suspended),
        cmocka_unit_test(test_bad_host_and_port),
        cmocka_unit_test(test_serve_sigterm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
