/* ddb_client_cost: CPU per PutItem round trip for three ways of sending it
 * over a kept connection to a local DynamoDB server (bench/ddb-client.sh):
 *
 *   perform  curl_easy_perform per request (what src/store/dynamodb.c did)
 *   connect  CURLOPT_CONNECT_ONLY + curl_easy_send/recv (what it does now)
 *   socket   a bare blocking socket: the floor, no TLS, no proxy, nothing
 *   epoll    THREADS bare sockets driven by one thread with epoll: the floor
 *            when one thread keeps several requests in flight
 *
 * THREADS threads (epoll: connections) each send one PutItem after the other for SECONDS; the
 * process's user+system CPU time divided by the requests is printed. The
 * signature is a fixed dummy: local servers do not check it (dynalite). Each
 * item has its own key, so every request is a real conditional write. */
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX  2048
#define RESP_MAX 8192

static int port;
static double seconds;
static const char *table;
static atomic_long total, counter;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "ddb_client_cost: %s\n", what);
    exit(1);
}

/* One PutItem request, head and body; returns its length, *body_at the body. */
static int build(char *out, size_t cap, int *body_at)
{
    char body[700];
    long k = atomic_fetch_add(&counter, 1);
    int bl = snprintf(body, sizeof(body),
                      "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"COST#%d-%ld\"},"
                      "\"sk\":{\"S\":\"2026-12-04T00:00:00.000Z#0123456789abcdef\"},"
                      "\"userId\":{\"S\":\"b4c7e3f0-1111-4222-8333-444455556666\"},"
                      "\"productId\":{\"S\":\"PROD-101\"},\"action\":{\"S\":\"PRICE_FETCH\"},"
                      "\"status\":{\"S\":\"SUCCESS\"}},"
                      "\"ConditionExpression\":\"attribute_not_exists(pk)\"}",
                      table, (int)getpid(), k);
    int n = snprintf(out, cap,
                     "POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/x-amz-json-1.0\r\n"
                     "X-Amz-Target: DynamoDB_20120810.PutItem\r\n"
                     "X-Amz-Date: 20261204T000000Z\r\n"
                     "Authorization: AWS4-HMAC-SHA256 Credential=AKIDBENCH/20261204/us-east-1/"
                     "dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;"
                     "x-amz-target, Signature=%064d\r\n"
                     "Content-Length: %d\r\n\r\n",
                     port, 0, bl);
    *body_at = n;
    n += snprintf(out + n, cap - (size_t)n, "%s", body);
    return n;
}

/* True once r[0..n) holds a whole answer framed by Content-Length. */
static int complete(const char *r, size_t n)
{
    const char *e = memmem(r, n, "\r\n\r\n", 4);
    if (!e)
        return 0;
    const char *cl = memmem(r, (size_t)(e - r), "ength: ", 7);
    size_t len = cl ? strtoul(cl + 7, NULL, 10) : 0;
    return (size_t)(e + 4 - r) + len <= n;
}

static void check_ok(const char *r)
{
    if (strncmp(r, "HTTP/1.1 200", 12) != 0)
        die("the server did not answer 200 (is the table there?)");
}

static int connect_socket(void)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect failed");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_one(int fd)
{
    char req[REQ_MAX];
    int at, len = build(req, sizeof(req), &at);
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
        die("send failed");
}

static size_t sink(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static void *run_perform(void *arg)
{
    (void)arg;
    CURL *h = curl_easy_init();
    char url[64], req[REQ_MAX];
    long n = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    for (double end = now() + seconds; now() < end; n++) {
        int at, len = build(req, sizeof(req), &at);
        /* the headers as dynamodb.c sent them: a list built per request from
         * the lines of build()'s head after the request line and Host, without
         * Content-Length (curl writes its own) */
        struct curl_slist *hl = NULL;
        char *line = strstr(req, "\r\n") + 2;
        line = strstr(line, "\r\n") + 2;
        for (char *eol; (eol = strstr(line, "\r\n")) && eol != line; line = eol + 2) {
            *eol = '\0';
            if (strncmp(line, "Content-Length", 14) != 0)
                hl = curl_slist_append(hl, line);
        }
        hl = curl_slist_append(hl, "Expect:");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req + at);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(len - at));
        long code = 0;
        if (curl_easy_perform(h) != CURLE_OK)
            die("curl_easy_perform failed");
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (code != 200)
            die("the server did not answer 200 (is the table there?)");
        curl_slist_free_all(hl);
    }
    curl_easy_cleanup(h);
    atomic_fetch_add(&total, n);
    return NULL;
}

static void *run_connect(void *arg)
{
    (void)arg;
    CURL *h = curl_easy_init();
    char url[64], req[REQ_MAX], resp[RESP_MAX];
    curl_socket_t fd;
    long n = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (curl_easy_perform(h) != CURLE_OK)
        die("connect failed");
    curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd);
    for (double end = now() + seconds; now() < end; n++) {
        int at, len = build(req, sizeof(req), &at);
        size_t sent = 0, got = 0;
        if (curl_easy_send(h, req, (size_t)len, &sent) != CURLE_OK || sent != (size_t)len)
            die("curl_easy_send failed");
        for (;;) {
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, 1, 2000);
            size_t r = 0;
            CURLcode cc = curl_easy_recv(h, resp + got, sizeof(resp) - 1 - got, &r);
            if (cc == CURLE_AGAIN)
                continue;
            if (cc != CURLE_OK || r == 0)
                die("curl_easy_recv failed");
            got += r;
            if (complete(resp, got))
                break;
        }
        resp[got] = '\0';
        check_ok(resp);
    }
    curl_easy_cleanup(h);
    atomic_fetch_add(&total, n);
    return NULL;
}

static void *run_socket(void *arg)
{
    (void)arg;
    char req[REQ_MAX], resp[RESP_MAX];
    long n = 0;
    int fd = connect_socket();
    for (double end = now() + seconds; now() < end; n++) {
        int at, len = build(req, sizeof(req), &at);
        size_t got = 0;
        if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
            die("send failed");
        for (;;) {
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, 1, 2000);
            ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
            if (r <= 0)
                die("recv failed");
            got += (size_t)r;
            if (complete(resp, got))
                break;
        }
        resp[got] = '\0';
        check_ok(resp);
    }
    close(fd);
    atomic_fetch_add(&total, n);
    return NULL;
}

/* One thread, `conns` connections each with one request in flight. */
static void run_epoll(int conns)
{
    static char resp[64][RESP_MAX];
    size_t got[64] = {0};
    int fds[64], ep = epoll_create1(0);
    long n = 0;
    if (ep < 0)
        die("epoll_create1 failed");
    for (int i = 0; i < conns; i++) {
        fds[i] = connect_socket();
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
        send_one(fds[i]);
    }
    for (double end = now() + seconds; now() < end;) {
        struct epoll_event evs[64];
        int k = epoll_wait(ep, evs, 64, 2000);
        for (int j = 0; j < k; j++) {
            int i = (int)evs[j].data.u32;
            ssize_t r = recv(fds[i], resp[i] + got[i], RESP_MAX - 1 - got[i], 0);
            if (r <= 0)
                die("recv failed");
            got[i] += (size_t)r;
            if (!complete(resp[i], got[i]))
                continue;
            resp[i][got[i]] = '\0';
            check_ok(resp[i]);
            got[i] = 0;
            n++;
            send_one(fds[i]);
        }
    }
    for (int i = 0; i < conns; i++)
        close(fds[i]);
    close(ep);
    atomic_fetch_add(&total, n);
}

static double cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr,
                "usage: ddb_client_cost PORT TABLE perform|connect|socket|epoll THREADS SECONDS\n");
        return 2;
    }
    port = (int)strtol(argv[1], NULL, 10);
    table = argv[2];
    int threads = (int)strtol(argv[4], NULL, 10);
    seconds = strtod(argv[5], NULL);
    bool epoll = !strcmp(argv[3], "epoll");
    void *(*fn)(void *) = !strcmp(argv[3], "perform")   ? run_perform
                          : !strcmp(argv[3], "connect") ? run_connect
                          : !strcmp(argv[3], "socket")  ? run_socket
                                                        : NULL;
    if ((!fn && !epoll) || port <= 0 || port > 65535 || threads < 1 || threads > 64 ||
        seconds <= 0 || seconds > 600)
        die("bad arguments");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t th[64];
    double c0 = cpu_seconds();
    if (epoll)
        run_epoll(threads);
    for (int i = 0; fn && i < threads; i++)
        pthread_create(&th[i], NULL, fn, NULL);
    for (int i = 0; fn && i < threads; i++)
        pthread_join(th[i], NULL);
    double cpu = cpu_seconds() - c0;
    long n = atomic_load(&total);
    printf("%s threads=%d requests=%ld per_s=%.0f cpu_us_per_request=%.1f\n", argv[3], threads, n,
           (double)n / seconds, n ? cpu * 1e6 / (double)n : 0.0);
    curl_global_cleanup();
    return 0;
}
