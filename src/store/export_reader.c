/* export_reader.c: see export_reader.h. */
#include "export_reader.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef PX_HAVE_ZSTD
#include <zstd.h>
#endif

/* A data file's bytes, decompressed: gzip or plain through zlib, zstd through
 * libzstd. */
struct source {
    gzFile gz;
#ifdef PX_HAVE_ZSTD
    FILE *fp;
    ZSTD_DCtx *zd;
    unsigned char zin[64 * 1024];
    ZSTD_inBuffer in;
    size_t frame_left; /* ZSTD_decompressStream's hint: 0 at a frame's end */
    bool eof;
#endif
};

static bool source_open(struct source *s, const char *path, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    size_t pl = strlen(path);
    if (pl > 4 && strcmp(path + pl - 4, ".zst") == 0) {
#ifdef PX_HAVE_ZSTD
        s->fp = fopen(path, "rbe");
        s->zd = s->fp ? ZSTD_createDCtx() : NULL;
        s->in = (ZSTD_inBuffer){s->zin, 0, 0};
        if (s->zd)
            return true;
        if (s->fp)
            fclose(s->fp);
        snprintf(err, errlen, "unreadable");
        return false;
#else
        snprintf(err, errlen, "zstd files cannot be read by this build");
        return false;
#endif
    }
    s->gz = gzopen(path, "rb"); /* reads plain files as they are, too */
    if (!s->gz)
        snprintf(err, errlen, "unreadable");
    return s->gz != NULL;
}

/* Up to cap decompressed bytes into buf: the count, 0 at the end, -1 on damage. */
static long source_read(struct source *s, char *buf, size_t cap)
{
#ifdef PX_HAVE_ZSTD
    if (s->zd) {
        ZSTD_outBuffer o = {buf, cap, 0};
        while (o.pos == 0) {
            if (s->in.pos == s->in.size && !s->eof) {
                s->in.size = fread(s->zin, 1, sizeof(s->zin), s->fp);
                s->in.pos = 0;
                if (ferror(s->fp))
                    return -1;
                s->eof = s->in.size == 0;
            }
            if (s->eof && s->in.pos == s->in.size)
                return s->frame_left ? -1 : 0; /* a frame cut short */
            size_t r = ZSTD_decompressStream(s->zd, &o, &s->in);
            if (ZSTD_isError(r))
                return -1;
            s->frame_left = r;
        }
        return (long)o.pos;
    }
#endif
    int n = gzread(s->gz, buf, (unsigned)cap);
    if (n < 0)
        return -1;
    if (n == 0) {
        int ge = 0;
        gzerror(s->gz, &ge);
        if (ge != Z_OK && ge != Z_STREAM_END)
            return -1;
    }
    return n;
}

static void source_close(struct source *s)
{
#ifdef PX_HAVE_ZSTD
    if (s->zd) {
        ZSTD_freeDCtx(s->zd);
        fclose(s->fp);
        return;
    }
#endif
    if (s->gz)
        gzclose(s->gz);
}

bool px_export_count_lines(const char *path, uint64_t *n, char *err, size_t errlen)
{
    struct source src;
    if (!source_open(&src, path, err, errlen))
        return false;
    char *line = malloc(PX_EXPORT_LINE_MAX + 1);
    char *chunk = malloc(65536);
    bool ok = line && chunk;
    size_t ll = 0;
    *n = 0;
    long got;
    while (ok && (got = source_read(&src, chunk, 65536)) != 0) {
        if (got < 0) {
            snprintf(err, errlen, "damaged compressed data (changed or truncated)");
            ok = false;
            break;
        }
        for (long i = 0; ok && i < got; i++) {
            if (ll == PX_EXPORT_LINE_MAX) {
                snprintf(err, errlen, "line %llu: longer than %d bytes", (unsigned long long)*n + 1,
                         PX_EXPORT_LINE_MAX);
                ok = false;
                break;
            }
            line[ll++] = chunk[i];
            if (chunk[i] != '\n')
                continue;
            json_t *j = json_loadb(line, ll, 0, NULL);
            bool obj = json_is_object(j);
            json_decref(j);
            if (!obj) {
                snprintf(err, errlen, "line %llu: not a JSON record (changed)",
                         (unsigned long long)*n + 1);
                ok = false;
            }
            ll = 0;
            (*n)++;
        }
    }
    if (ok && ll) {
        snprintf(err, errlen, "line %llu: not a whole line", (unsigned long long)*n + 1);
        ok = false;
    }
    source_close(&src);
    free(line);
    free(chunk);
    return ok;
}
