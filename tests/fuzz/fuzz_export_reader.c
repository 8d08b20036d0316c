/* fuzz_export_reader.c: the reader of audit export data files
 * (px_export_count_lines: gzip / zstd / plain, split into lines, each a JSON
 * object).
 *
 * Input layout: byte 0 picks the file's kind (bits 0-1: plain .jsonl, .gz or
 * .zst) and whether the rest is the file as it is (bit 2 clear: damaged and
 * hostile streams) or a payload this harness compresses itself (bit 2 set).
 * For a payload, the verdict and the line count must be those of the same
 * payload read as a plain file, and those must match an independent count:
 * whole lines, each a JSON object, the last one ended by a line feed. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#ifdef PX_HAVE_ZSTD
#include <zstd.h>
#endif

#include "store/export_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void remove_dir(void)
{
    rmdir(dir);
}

static bool write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static bool count(const char *name, const void *p, size_t n, uint64_t *lines)
{
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!write_file(path, p, n))
        abort();
    *lines = 0;
    bool ok = px_export_count_lines(path, lines, err, sizeof(err));
    if (!ok && !err[0])
        abort(); /* a refusal always says why */
    unlink(path);
    return ok;
}

/* The reader's rule, recomputed: whole lines, each a JSON object. */
static bool expected(const uint8_t *p, size_t n, uint64_t *lines)
{
    *lines = 0;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 - start > PX_EXPORT_LINE_MAX)
            return false;
        json_t *j = json_loadb((const char *)p + start, i + 1 - start, 0, NULL);
        bool obj = json_is_object(j);
        json_decref(j);
        if (!obj)
            return false;
        (*lines)++;
        start = i + 1;
    }
    return start == n;
}

static size_t gzip(const uint8_t *p, size_t n, uint8_t **out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&z, n) + 32;
    *out = malloc(cap);
    if (!*out)
        abort();
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = *out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    size_t len = z.total_out;
    deflateEnd(&z);
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/fuzz-export-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        atexit(remove_dir);
    }
    if (size < 1 || size > 1 << 20)
        return 0;
    unsigned kind = data[0] & 3, payload = data[0] & 4;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    static const char *names[] = {"x.jsonl", "x.jsonl.gz", "x.jsonl.zst", "x.jsonl"};
    uint64_t lines = 0;
    if (!payload) {
        /* hostile bytes: whatever the verdict, no crash, no hang, a reason;
         * a plain file is also held to the rule */
        bool ok = count(names[kind], p, n, &lines);
        uint64_t want = 0;
        if (kind != 1 && kind != 2 && !(n >= 2 && p[0] == 0x1f && p[1] == 0x8b) &&
            (ok != expected(p, n, &want) || (ok && lines != want)))
            abort();
        return 0;
    }
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
        return 0; /* read as plain, zlib would take it for gzip */
    uint64_t want = 0, plain_lines = 0;
    bool want_ok = expected(p, n, &want);
    bool plain_ok = count("x.jsonl", p, n, &plain_lines);
    if (plain_ok != want_ok || (plain_ok && plain_lines != want))
        abort();
    uint8_t *z = NULL;
    size_t zl = 0;
    const char *name = NULL;
    if (kind == 2) {
#ifdef PX_HAVE_ZSTD
        size_t cap = ZSTD_compressBound(n);
        z = malloc(cap ? cap : 1);
        if (!z)
            abort();
        zl = ZSTD_compress(z, cap, p, n, 1);
        if (ZSTD_isError(zl))
            abort();
        name = "x.jsonl.zst";
#else
        return 0;
#endif
    } else {
        zl = gzip(p, n, &z);
        name = "x.jsonl.gz";
    }
    bool ok = count(name, z, zl, &lines);
    free(z);
    if (ok != want_ok || (ok && lines != want))
        abort();
    return 0;
}
