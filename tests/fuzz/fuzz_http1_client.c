/* fuzz_http1_client.c: the HTTP/1.1 answer parser of the AWS clients.
 *
 * Input layout: byte 0 is the size of the pieces the rest is fed in (0: all at
 * once), byte 1 bit 0 says whether the server then closes the connection; the
 * rest is what the server sent. Whatever the bytes, the parser must end in
 * the same verdict however the input is cut (it is fed again one byte at a
 * time), keep the body under its cap, report only a final status it accepts,
 * and never read past the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/buf.h"
#include "transport/http1_client.h"

#define BODY_CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct verdict {
    px_rc rc;
    bool done;
    long status;
    bool close;
    size_t body_len;
    unsigned headers;
    uint32_t body_sum;
};

static void count_header(void *arg, const char *line, size_t len)
{
    struct verdict *v = arg;
    /* a header line is passed whole: no line break, no empty line */
    if (!len || memchr(line, '\n', len))
        abort();
    v->headers++;
}

static struct verdict run(const char *in, size_t n, size_t piece, bool eof)
{
    struct verdict v;
    memset(&v, 0, sizeof(v));
    struct px_h1_parser *p = malloc(sizeof(*p));
    struct px_buf b;
    if (!p)
        abort();
    px_buf_init(&b, BODY_CAP);
    px_h1_parser_init(p, &b, count_header, &v);
    size_t off = 0;
    while (off < n && !v.rc) {
        size_t k = piece && n - off > piece ? piece : n - off;
        v.rc = px_h1_parse(p, in + off, k, &v.done);
        off += k;
    }
    if (!v.rc && eof && !v.done)
        v.rc = px_h1_parse_eof(p, &v.done);
    if (b.len > BODY_CAP)
        abort();
    if (!v.rc && v.done) {
        if (p->status < 200 || p->status > 599)
            abort();
        v.status = p->status;
        v.close = p->close;
    }
    v.body_len = b.len;
    for (size_t i = 0; i < b.len; i++)
        v.body_sum = v.body_sum * 31 + (unsigned char)b.data[i];
    px_buf_free(&b);
    free(p);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t piece = data[0];
    bool eof = data[1] & 1;
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    struct verdict a = run(in, n, piece, eof);
    struct verdict b = run(in, n, 1, eof);
    /* the same bytes, cut differently: the same answer */
    if (a.rc != b.rc || a.done != b.done || a.status != b.status || a.close != b.close ||
        (!a.rc && (a.body_len != b.body_len || a.body_sum != b.body_sum || a.headers != b.headers)))
        abort();
    return 0;
}
