/* trivial_runtime.c: the floor for bench/coldstart.sh. The smallest Lambda
 * custom runtime that answers an API Gateway event: a static executable (no
 * dynamic loader at all) that loops GET /next, POST a fixed 200 response, over
 * one short HTTP/1.1 connection each, with no store, no configuration and no
 * libraries. What `pricing` adds to a cold start is measured against it, in
 * the same run. Built by bench/coldstart.sh with `cc -static -O2`. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_CAP (7 * 1024 * 1024) /* an event is at most 6 MB */

static char buf[BUF_CAP];

/* host:port with a numeric IPv4 host, as the emulator gives: no resolver, so
 * the static executable never loads NSS modules. */
static int dial(const char *api)
{
    char host[64];
    const char *colon = strrchr(api, ':');
    if (!colon || (size_t)(colon - api) >= sizeof(host))
        return -1;
    memcpy(host, api, (size_t)(colon - api));
    host[colon - api] = '\0';
    unsigned long port = strtoul(colon + 1, NULL, 10);
    if (port == 0 || port > 65535)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* One request on a fresh connection; the answer (headers + body) lands in buf. */
static long exchange(const char *api, const char *head, const char *body, size_t blen)
{
    int fd = dial(api);
    if (fd < 0)
        return -1;
    size_t hl = strlen(head);
    if (write(fd, head, hl) != (ssize_t)hl || (blen && write(fd, body, blen) != (ssize_t)blen)) {
        close(fd);
        return -1;
    }
    size_t n = 0;
    ssize_t r;
    while (n < BUF_CAP - 1 && (r = read(fd, buf + n, BUF_CAP - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    return (long)n;
}

int main(void)
{
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api)
        return 2;
    static const char answer[] =
        "{\"statusCode\":200,\"headers\":{\"Content-Type\":\"application/json\"},"
        "\"body\":\"{\\\"productId\\\":\\\"PROD-101\\\",\\\"price\\\":\\\"99.99\\\"}\"}";
    char head[512], id[128];
    for (;;) {
        snprintf(head, sizeof(head),
                 "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n"
                 "Connection: close\r\n\r\n",
                 api);
        if (exchange(api, head, NULL, 0) <= 0)
            return 1;
        id[0] = '\0';
        static const char name[] = "\r\nLambda-Runtime-Aws-Request-Id:";
        const char *v = strcasestr(buf, name);
        if (v) {
            v += sizeof(name) - 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            if (len >= sizeof(id))
                return 1;
            memcpy(id, v, len);
            id[len] = '\0';
        }
        if (!id[0])
            return 1;
        snprintf(
            head, sizeof(head),
            "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
            id, api, sizeof(answer) - 1);
        if (exchange(api, head, answer, sizeof(answer) - 1) <= 0)
            return 1;
    }
}
