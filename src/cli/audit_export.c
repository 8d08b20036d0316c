/* audit_export.c: `pricing audit export` and `pricing audit verify --export`
 * (CONTRACT §11, docs/internals/audit-integrity.md).
 *
 * An export directory holds records-NNNNNN-PPPP.jsonl.gz files (one record a
 * line, the §5 fields, gzip) and one digest-NNNNNN.txt per export: a signed
 * note listing each file of that export with its record count and SHA-256,
 * and the SHA-256 of the previous digest file, so the digests form a chain
 * (CloudTrail's digest files are the model). Checking needs only the files
 * and the public key. */
#include "cli.h"
#include "kernel/buf.h"
#include "kernel/fs.h"
#include "store/audit.h"
#include "store/audit_chain.h"
#include "store/export_reader.h"
#include "store/s3.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#ifdef PX_HAVE_ZSTD
#include <zstd.h>
#endif

#define FILE_RECORDS  100000 /* records per data file */
#define DIGESTS_MAX   100000
#define FILES_MAX     4096 /* data files per export */
#define DIGEST_PREFIX "digest-"
#define ORIGIN        "pricing.audit/export/v1"
#define S3_OBJECT_MAX (512 * 1024 * 1024) /* one uploaded file, read whole */

/* SHA-256 of a whole file as hex; false when it cannot be read. */
static bool file_sha256(const char *path, char hex[PX_CHAIN_HEX_LEN + 1])
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    unsigned char buf[65536], h[32];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        ok = EVP_DigestUpdate(md, buf, n) == 1;
    ok = ok && !ferror(f);
    unsigned int hl = 0;
    ok = ok && EVP_DigestFinal_ex(md, h, &hl) == 1;
    EVP_MD_CTX_free(md);
    fclose(f);
    if (ok)
        px_chain_hex(h, hex);
    return ok;
}

/* Number N of a name "digest-NNNNNN.txt", 0 when it is not one. */
static long digest_number(const char *name)
{
    size_t pl = sizeof(DIGEST_PREFIX) - 1;
    if (strncmp(name, DIGEST_PREFIX, pl) != 0 || strlen(name) != pl + 6 + 4 ||
        strcmp(name + pl + 6, ".txt") != 0)
        return 0;
    long n = 0;
    for (size_t i = pl; i < pl + 6; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        n = n * 10 + (name[i] - '0');
    }
    return n;
}

static bool is_data_file(const char *name)
{
    size_t n = strlen(name);
    const char *ext[] = {".jsonl", ".jsonl.gz", ".jsonl.zst"};
    for (size_t i = 0; i < PX_COUNTOF(ext); i++) {
        size_t e = strlen(ext[i]);
        if (n > e && strcmp(name + n - e, ext[i]) == 0)
            return true;
    }
    return false;
}

/* The highest digest number in dir (0: none). */
static long last_digest(const char *dir)
{
    DIR *d = opendir(dir);
    long max = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        long n = digest_number(de->d_name);
        if (n > max)
            max = n;
    }
    if (d)
        closedir(d);
    return max;
}

static int cmp_str_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- export ------------------------------------------------------------------------------ */

/* How data files are compressed. */
enum packing { PACK_GZ, PACK_ZST, PACK_NONE };

static const char *const pack_ext[] = {".jsonl.gz", ".jsonl.zst", ".jsonl"};

struct exporter {
    const char *dir;
    const char *tenant; /* NULL: every tenant's records */
    long seq;
    enum packing pack;
    bool open;
    gzFile gz; /* PACK_GZ, PACK_NONE (zlib's transparent mode) */
#ifdef PX_HAVE_ZSTD
    FILE *fp; /* PACK_ZST */
    ZSTD_CCtx *zc;
    char zout[64 * 1024];
#endif
    char path[4096];
    size_t files;
    uint64_t in_file, total;
    struct px_buf line;
    struct px_buf text; /* the digest's file lines */
    char err[512];
};

#ifdef PX_HAVE_ZSTD
/* Feeds data (or, with end, finishes the frame) to the zstd file. */
static bool zst_put(struct exporter *x, const void *data, size_t len, bool end)
{
    ZSTD_inBuffer in = {data, len, 0};
    for (;;) {
        ZSTD_outBuffer o = {x->zout, sizeof(x->zout), 0};
        size_t left = ZSTD_compressStream2(x->zc, &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left) || fwrite(x->zout, 1, o.pos, x->fp) != o.pos)
            return false;
        if (end ? left == 0 : in.pos == in.size)
            return true;
    }
}
#endif

static bool file_write(struct exporter *x, const void *data, size_t len)
{
#ifdef PX_HAVE_ZSTD
    if (x->pack == PACK_ZST)
        return zst_put(x, data, len, false);
#endif
    return gzwrite(x->gz, data, (unsigned)len) == (int)len;
}

/* Closes the file; false when any of it could not be written. */
static bool file_close(struct exporter *x)
{
    bool ok = true;
#ifdef PX_HAVE_ZSTD
    if (x->pack == PACK_ZST) {
        ok = zst_put(x, NULL, 0, true);
        ok = fclose(x->fp) == 0 && ok;
        ZSTD_freeCCtx(x->zc);
        x->fp = NULL;
        x->zc = NULL;
        return ok;
    }
#endif
    ok = gzclose(x->gz) == Z_OK;
    x->gz = NULL;
    return ok;
}

static bool file_open(struct exporter *x, int fd)
{
#ifdef PX_HAVE_ZSTD
    if (x->pack == PACK_ZST) {
        x->fp = fdopen(fd, "wb");
        x->zc = x->fp ? ZSTD_createCCtx() : NULL;
        /* level 6 as gzip's 6; a checksum in the frame catches damage on its own */
        if (x->zc && !ZSTD_isError(ZSTD_CCtx_setParameter(x->zc, ZSTD_c_compressionLevel, 6)) &&
            !ZSTD_isError(ZSTD_CCtx_setParameter(x->zc, ZSTD_c_checksumFlag, 1)))
            return true;
        ZSTD_freeCCtx(x->zc);
        x->zc = NULL;
        if (x->fp)
            fclose(x->fp);
        else
            close(fd);
        x->fp = NULL;
        return false;
    }
#endif
    x->gz = gzdopen(fd, x->pack == PACK_NONE ? "wT" : "wb6");
    if (!x->gz)
        close(fd);
    return x->gz != NULL;
}

static px_rc close_file(struct exporter *x)
{
    if (!x->open)
        return PX_OK;
    x->open = false;
    bool ok = file_close(x);
    char hex[PX_CHAIN_HEX_LEN + 1];
    if (!ok || !file_sha256(x->path, hex)) {
        snprintf(x->err, sizeof(x->err), "cannot write %.300s", x->path);
        return PX_ERR_IO;
    }
    const char *base = strrchr(x->path, '/');
    px_rc rc = px_buf_printf(&x->text, "file %s %llu %s\n", base ? base + 1 : x->path,
                             (unsigned long long)x->in_file, hex);
    if (rc)
        snprintf(x->err, sizeof(x->err), "digest too large");
    return rc;
}

static px_rc export_one(void *arg, const struct px_audit_record *r)
{
    struct exporter *x = arg;
    px_rc rc = PX_OK;
    /* A record with no tenant is the default tenant's (TENANCY=off, or kept
     * under today's keys). */
    if (x->tenant && strcmp(r->tenant[0] ? r->tenant : "default", x->tenant) != 0)
        return PX_OK;
    if (x->open && x->in_file == FILE_RECORDS)
        rc = close_file(x);
    if (!rc && !x->open) {
        if (x->files == FILES_MAX) {
            snprintf(x->err, sizeof(x->err), "more than %d files in one export: narrow --from/--to",
                     FILES_MAX);
            return PX_ERR_TOO_LARGE;
        }
        snprintf(x->path, sizeof(x->path), "%s/records-%06ld-%04zu%s", x->dir, x->seq, ++x->files,
                 pack_ext[x->pack]);
        int fd = open(x->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 || !file_open(x, fd)) {
            snprintf(x->err, sizeof(x->err), "cannot create %.300s: %s", x->path, strerror(errno));
            return PX_ERR_IO;
        }
        x->open = true;
        x->in_file = 0;
    }
    if (rc)
        return rc;
    px_buf_clear(&x->line);
    rc = px_audit_record_json(r, &x->line);
    if (!rc)
        rc = px_buf_add(&x->line, "\n", 1);
    if (!rc && !file_write(x, x->line.data, x->line.len)) {
        snprintf(x->err, sizeof(x->err), "cannot write %.300s", x->path);
        rc = PX_ERR_IO;
    }
    x->in_file++;
    x->total++;
    return rc;
}

/* Writes data to path via a temporary file and a rename, never replacing one. */
static px_rc write_new_file(const char *path, const char *data, size_t len, char *err,
                            size_t errlen)
{
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%.4200s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    /* link(2) fails when path exists: an export never overwrites a digest. */
    ok = ok && link(tmp, path) == 0;
    unlink(tmp);
    if (!ok) {
        snprintf(err, errlen, "cannot write %.300s: %s", path, strerror(errno));
        return PX_ERR_IO;
    }
    return PX_OK;
}

/* Exports the records of [f, t] into dir (which must exist) as export seq
 * chained to prev (hex SHA-256 of the previous digest file); *dpath gets the
 * digest's path. err gets one line on failure. */
static px_rc export_run(const struct px_config *cfg, const struct px_chain_key *key,
                        enum packing pack, const char *f, const char *t, const char *tenant,
                        const char *dir, long seq, const char *prev, char *dpath, size_t dcap,
                        uint64_t *total, size_t *files, char *err, size_t errlen)
{
    struct exporter x = {.dir = dir, .tenant = tenant, .seq = seq, .pack = pack};
    px_buf_init(&x.line, PX_EXPORT_LINE_MAX);
    px_buf_init(&x.text, PX_NOTE_MAX / 2);
    const struct px_audit_opts aopts = px_cli_audit_opts(cfg);
    struct px_audit_store *store = px_cli_audit_open("audit export", cfg, &aopts);
    char now[25];
    px_chain_now_ts(now);
    px_rc rc = store ? PX_OK : PX_ERR_UNAVAILABLE;
    if (!rc)
        rc = px_buf_printf(&x.text, ORIGIN "\nseq %ld\nprevious %s\nfrom %s\nto %s\ncreated %s\n",
                           x.seq, prev, f[0] ? f : "-", t[0] ? t : "-", now);
    /* Only with --tenant: a digest without it is the whole trail, as before. */
    if (!rc && tenant)
        rc = px_buf_printf(&x.text, "tenant %s\n", tenant);
    if (!rc) {
        rc = px_audit_scan(store, f[0] ? f : NULL, t[0] ? t : NULL, export_one, &x, err, errlen);
        if (rc == PX_ERR_INVALID && !err[0])
            snprintf(err, errlen, "this store (%.300s) cannot be exported yet", cfg->audit_store);
    }
    if (!rc)
        rc = close_file(&x);
    else
        (void)close_file(&x);
    char *note = NULL;
    size_t nlen = 0;
    if (!rc) {
        note = malloc(x.text.len + 256);
        rc = note ? px_note_sign(key, x.text.data, x.text.len, note, x.text.len + 256, &nlen)
                  : PX_ERR_NOMEM;
    }
    if (!rc) {
        snprintf(dpath, dcap, "%s/" DIGEST_PREFIX "%06ld.txt", dir, x.seq);
        rc = write_new_file(dpath, note, nlen, err, errlen);
    }
    if (rc && x.err[0])
        snprintf(err, errlen, "%s", x.err);
    else if (rc && !err[0])
        snprintf(err, errlen, "%s", store ? px_strerror(rc) : "cannot open the audit store");
    *total = x.total;
    *files = x.files;
    free(note);
    px_buf_free(&x.line);
    px_buf_free(&x.text);
    px_audit_close(store);
    return rc;
}

/* Whether the previous digest (note, len bytes; its signature is checked by
 * verify) is of the same tenant as this export (tenant NULL: every tenant):
 * one digest chain holds one tenant's exports, or only whole-trail ones. */
static bool same_tenant(const char *note, size_t len, const char *tenant, const char *where)
{
    const char *blank = len >= 2 ? memmem(note, len, "\n\n", 2) : NULL;
    char had[64 + 1];
    if (!blank || px_digest_tenant(note, (size_t)(blank - note) + 1, had) != PX_OK) {
        fprintf(stderr, "pricing audit export: %s: not a readable digest\n", where);
        return false;
    }
    if (strcmp(had, tenant ? tenant : "") == 0)
        return true;
    fprintf(stderr,
            "pricing audit export: %s is an export of %s%s, this one would be of %s%s: one "
            "digest chain holds one tenant (export to another directory or prefix)\n",
            where, had[0] ? "tenant " : "every tenant", had, tenant ? "tenant " : "every tenant",
            tenant ? tenant : "");
    return false;
}

/* ---- s3:// destinations ------------------------------------------------------------------ */

struct s3_last {
    const char *prefix;
    long max;
};

static px_rc s3_last_digest(void *arg, const char *k)
{
    struct s3_last *l = arg;
    size_t pl = strlen(l->prefix);
    long n = strncmp(k, l->prefix, pl) == 0 ? digest_number(k + pl) : 0;
    if (n > l->max)
        l->max = n;
    return PX_OK;
}

/* Reads a local file whole (at most cap bytes). */
static px_rc slurp(const char *path, size_t cap, struct px_buf *out)
{
    FILE *fp = fopen(path, "rbe");
    if (!fp)
        return PX_ERR_IO;
    px_buf_init(out, cap);
    char buf[65536];
    size_t n;
    px_rc rc = PX_OK;
    while (!rc && (n = fread(buf, 1, sizeof(buf), fp)) > 0)
        rc = px_buf_add(out, buf, n);
    if (!rc && ferror(fp))
        rc = PX_ERR_IO;
    fclose(fp);
    return rc;
}

/* Removes the staging directory and what is in it (only files). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[4400];
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%.4000s/%.255s", dir, de->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Uploads each file of the staging dir: data files first, the digest last, so
 * a digest in the bucket never names a file that is not there yet. */
static px_rc s3_upload(struct px_s3 *s3, const char *dir, const char *prefix, const char *dpath,
                       char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot read %.300s", dir);
        return PX_ERR_IO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    px_rc rc = PX_OK;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (!is_data_file(de->d_name))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **g = nc <= FILES_MAX * 2 ? realloc(names, nc * sizeof(*g)) : NULL;
            if (!g) {
                rc = PX_ERR_NOMEM;
                break;
            }
            names = g;
            cap = nc;
        }
        if (!(names[n] = strdup(de->d_name)))
            rc = PX_ERR_NOMEM;
        else
            n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_str_names);
    const char *dbase = strrchr(dpath, '/');
    dbase = dbase ? dbase + 1 : dpath;
    for (size_t i = 0; !rc && i <= n; i++) {
        const char *name = i < n ? names[i] : dbase;
        char local[4400], key[1200];
        snprintf(local, sizeof(local), "%.4000s/%.255s", dir, name);
        snprintf(key, sizeof(key), "%.900s%.255s", prefix, name);
        struct px_buf data;
        rc = slurp(local, S3_OBJECT_MAX, &data);
        if (rc)
            snprintf(err, errlen, "cannot read %.300s (larger than %d MiB?)", local,
                     S3_OBJECT_MAX >> 20);
        else
            rc = px_s3_put(s3, key, data.data ? data.data : "", data.len, true, err, errlen);
        px_buf_free(&data);
        if (rc == PX_ERR_CONFLICT)
            snprintf(err, errlen,
                     "s3 object %.900s exists already (another export at the same time?): "
                     "nothing was replaced",
                     key);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int export_s3(const struct px_config *cfg, const struct px_chain_key *key, enum packing pack,
                     const char *f, const char *t, const char *tenant, const char *out)
{
    char err[1024] = "", bucket[64] = "", prefix[1024] = "";
    const char *b = out + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    const char *p = slash ? slash + 1 : "";
    if (bl >= sizeof(bucket) || strlen(p) > 900) {
        fprintf(stderr, "pricing audit export: %s: bucket or prefix too long\n", out);
        return PX_EXIT_USAGE;
    }
    memcpy(bucket, b, bl);
    snprintf(prefix, sizeof(prefix), "%s%s", p, *p && p[strlen(p) - 1] != '/' ? "/" : "");
    char probe[1100];
    snprintf(probe, sizeof(probe), "%sx", prefix);
    if (!px_s3_bucket_ok(bucket) || !px_s3_key_ok(probe)) {
        fprintf(stderr,
                "pricing audit export: %s: want s3://BUCKET[/PREFIX], the prefix of A-Z a-z 0-9 "
                "- . _ ~ and single '/'\n",
                out);
        return PX_EXIT_USAGE;
    }
    /* The endpoint as the AWS SDKs and CLI take it. */
    const char *ep = getenv("AWS_ENDPOINT_URL_S3");
    if (!ep || !*ep)
        ep = getenv("AWS_ENDPOINT_URL");
    const struct px_s3_config sc = {
        .region = cfg->aws_region,
        .endpoint = ep,
        .access_key_id = cfg->aws_access_key_id,
        .secret_access_key = cfg->aws_secret_access_key,
        .session_token = cfg->aws_session_token,
    };
    struct px_s3 *s3 = NULL;
    px_rc rc = px_s3_new(&sc, bucket, &s3, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "pricing audit export: %s\n", err);
        return PX_EXIT_USAGE;
    }
    /* The previous export is the highest digest under the prefix in the bucket. */
    char dprefix[1100];
    snprintf(dprefix, sizeof(dprefix), "%s" DIGEST_PREFIX, prefix);
    struct s3_last last = {.prefix = prefix};
    rc = px_s3_list(s3, dprefix, 0, s3_last_digest, &last, err, sizeof(err));
    char prev[PX_CHAIN_HEX_LEN + 1];
    memset(prev, '0', PX_CHAIN_HEX_LEN);
    prev[PX_CHAIN_HEX_LEN] = '\0';
    if (!rc && last.max > 0) {
        char k[1200];
        snprintf(k, sizeof(k), "%s" DIGEST_PREFIX "%06ld.txt", prefix, last.max);
        struct px_buf d;
        px_buf_init(&d, PX_NOTE_MAX);
        rc = px_s3_get(s3, k, &d, err, sizeof(err));
        unsigned char h[PX_CHAIN_HASH_LEN];
        unsigned int hl = 0;
        if (!rc && EVP_Digest(d.data ? d.data : "", d.len, h, &hl, EVP_sha256(), NULL) != 1)
            rc = PX_ERR_INTERNAL;
        if (!rc)
            px_chain_hex(h, prev);
        if (!rc && !same_tenant(d.data ? d.data : "", d.len, tenant, k)) {
            px_buf_free(&d);
            px_s3_free(s3);
            return PX_EXIT_USAGE;
        }
        px_buf_free(&d);
    }
    char stage[4096] = "";
    if (!rc) {
        const char *tmp = getenv("TMPDIR");
        snprintf(stage, sizeof(stage), "%.3000s/pricing-export-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(stage)) {
            snprintf(err, sizeof(err), "cannot create a staging directory %.300s: %s", stage,
                     strerror(errno));
            stage[0] = '\0';
            rc = PX_ERR_IO;
        }
    }
    char dpath[4200] = "";
    uint64_t total = 0;
    size_t files = 0;
    if (!rc)
        rc = export_run(cfg, key, pack, f, t, tenant, stage, last.max + 1, prev, dpath,
                        sizeof(dpath), &total, &files, err, sizeof(err));
    if (!rc)
        rc = s3_upload(s3, stage, prefix, dpath, err, sizeof(err));
    if (stage[0])
        remove_dir(stage);
    px_s3_free(s3);
    if (rc) {
        fprintf(stderr, "pricing audit export: %s\n", err[0] ? err : px_strerror(rc));
        return PX_EXIT_FAIL;
    }
    printf("audit export: %llu records%s%s in %zu file(s), digest s3://%s/%s" DIGEST_PREFIX
           "%06ld.txt (export %ld, chained to the previous digest in the bucket)\n",
           (unsigned long long)total, tenant ? " of tenant " : "", tenant ? tenant : "", files,
           bucket, prefix, last.max + 1, last.max + 1);
    return PX_EXIT_OK;
}

int px_audit_export(const struct px_config *cfg, const char *from, const char *to, const char *out,
                    const char *compression, const char *tenant)
{
    char err[1024] = "";
    enum packing pack = PACK_GZ;
    if (compression && strcmp(compression, "zstd") == 0) {
#ifdef PX_HAVE_ZSTD
        pack = PACK_ZST;
#else
        fprintf(stderr, "pricing audit export: this build has no zstd: --compression gzip\n");
        return PX_EXIT_USAGE;
#endif
    } else if (compression && strcmp(compression, "none") == 0) {
        pack = PACK_NONE;
    } else if (compression && strcmp(compression, "gzip") != 0) {
        fprintf(stderr, "pricing audit export: --compression is gzip (default), zstd or none\n");
        return PX_EXIT_USAGE;
    }
    const char *keyfile = px_config_signing_key(cfg);
    if (!keyfile) {
        fprintf(stderr, "pricing audit export: no signing key: set AUDIT_SIGNING_KEY_FILE\n");
        return PX_EXIT_USAGE;
    }
    struct px_chain_key *key = NULL;
    if (px_chain_key_load(keyfile, true, &key, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing audit export: %s\n", err);
        return PX_EXIT_USAGE;
    }
    char f[25] = "", t[25] = "";
    if ((from && px_audit_ts_ms(from, f) != PX_OK) || (to && px_audit_ts_ms(to, t) != PX_OK)) {
        px_chain_key_free(key);
        fprintf(stderr, "pricing audit export: --from and --to must be RFC 3339 timestamps\n");
        return PX_EXIT_USAGE;
    }
    if (strncmp(out, "s3://", 5) == 0) {
        int st = export_s3(cfg, key, pack, f, t, tenant, out);
        px_chain_key_free(key);
        return st;
    }
    char probe[4200];
    snprintf(probe, sizeof(probe), "%s/x", out);
    int e = px_fs_make_parent(probe, 0750);
    if (e) {
        px_chain_key_free(key);
        fprintf(stderr, "pricing audit export: cannot create %s: %s\n", out, strerror(e));
        return PX_EXIT_FAIL;
    }
    long seq = last_digest(out) + 1;
    char prev[PX_CHAIN_HEX_LEN + 1];
    memset(prev, '0', PX_CHAIN_HEX_LEN);
    prev[PX_CHAIN_HEX_LEN] = '\0';
    char dpath[4200];
    if (seq > 1) {
        snprintf(dpath, sizeof(dpath), "%s/" DIGEST_PREFIX "%06ld.txt", out, seq - 1);
        if (!file_sha256(dpath, prev)) {
            fprintf(stderr, "pricing audit export: cannot read %s\n", dpath);
            px_chain_key_free(key);
            return PX_EXIT_FAIL;
        }
        char *pd = NULL;
        size_t pl = 0;
        bool same = px_cli_read_file(dpath, PX_NOTE_MAX, &pd, &pl) == 0 &&
                    same_tenant(pd, pl, tenant, dpath);
        if (!pd)
            fprintf(stderr, "pricing audit export: cannot read %s\n", dpath);
        free(pd);
        if (!same) {
            px_chain_key_free(key);
            return PX_EXIT_USAGE;
        }
    }
    uint64_t total = 0;
    size_t files = 0;
    px_rc rc = export_run(cfg, key, pack, f, t, tenant, out, seq, prev, dpath, sizeof(dpath),
                          &total, &files, err, sizeof(err));
    px_chain_key_free(key);
    if (rc) {
        fprintf(stderr, "pricing audit export: %s\n", err);
        return PX_EXIT_FAIL;
    }
    printf("audit export: %llu records%s%s in %zu file(s), digest %s (export %ld, chained to the "
           "previous digest)\n",
           (unsigned long long)total, tenant ? " of tenant " : "", tenant ? tenant : "", files,
           dpath, seq);
    return PX_EXIT_OK;
}

/* ---- offline verification ---------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int px_audit_verify_export(const char *dir, const char *pubkey)
{
    char err[1024] = "";
    struct px_chain_key *key = NULL;
    if (!pubkey) {
        fprintf(stderr, "pricing audit verify: --export needs --public-key FILE\n");
        return PX_EXIT_USAGE;
    }
    if (px_chain_key_load(pubkey, false, &key, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing audit verify: %s\n", err);
        return PX_EXIT_USAGE;
    }
    DIR *d = opendir(dir);
    if (!d) {
        px_chain_key_free(key);
        fprintf(stderr, "pricing audit verify: cannot read %s: %s\n", dir, strerror(errno));
        return PX_EXIT_USAGE;
    }
    /* Every data file, to find any no digest lists. */
    char **data = NULL;
    size_t ndata = 0, capdata = 0;
    long ndigests = 0;
    bool *listed = NULL;
    struct dirent *de;
    bool fail = false;
    while ((de = readdir(d))) {
        long n = digest_number(de->d_name);
        if (n > ndigests)
            ndigests = n;
        if (!is_data_file(de->d_name))
            continue;
        if (ndata == capdata) {
            size_t nc = capdata ? capdata * 2 : 64;
            char **g =
                nc <= (size_t)DIGESTS_MAX * FILES_MAX ? realloc(data, nc * sizeof(*g)) : NULL;
            if (!g) {
                fail = true;
                snprintf(err, sizeof(err), "too many files in %s", dir);
                break;
            }
            data = g;
            capdata = nc;
        }
        data[ndata] = strdup(de->d_name);
        if (!data[ndata]) {
            fail = true;
            break;
        }
        ndata++;
    }
    closedir(d);
    if (ndata)
        qsort(data, ndata, sizeof(*data), cmp_str);
    listed = calloc(ndata ? ndata : 1, sizeof(*listed));
    char where[4300] = "";
    char prev[PX_CHAIN_HEX_LEN + 1];
    memset(prev, '0', PX_CHAIN_HEX_LEN);
    prev[PX_CHAIN_HEX_LEN] = '\0';
    uint64_t records = 0, files = 0;
    /* The tenant of digest 1 ("" = every tenant); every later one must agree. */
    char tenant[64 + 1] = "";
    if (!listed)
        fail = true;
    if (!fail && ndigests == 0 && ndata) {
        snprintf(where, sizeof(where), "%s", dir);
        snprintf(err, sizeof(err), "data files but no digest");
        fail = true;
    }
    for (long i = 1; !fail && i <= ndigests; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/" DIGEST_PREFIX "%06ld.txt", dir, i);
        snprintf(where, sizeof(where), "%.4200s", path);
        char *buf = NULL;
        size_t len = 0;
        if (px_cli_read_file(path, PX_NOTE_MAX, &buf, &len) != 0) {
            snprintf(err, sizeof(err), "missing or unreadable (digest %ld of %ld)", i, ndigests);
            fail = true;
            break;
        }
        size_t tl = 0;
        px_rc rc = px_note_open(key, buf, len, &tl);
        if (rc) {
            snprintf(err, sizeof(err), "%s",
                     rc == PX_ERR_DENIED ? "not signed by the given key (forged or changed)"
                                         : "malformed digest");
            free(buf);
            fail = true;
            break;
        }
        char dt[64 + 1];
        if (px_digest_tenant(buf, tl, dt) != PX_OK) {
            snprintf(err, sizeof(err), "malformed tenant line");
            free(buf);
            fail = true;
            break;
        }
        if (i == 1)
            memcpy(tenant, dt, sizeof(tenant));
        if (strcmp(dt, tenant) != 0) {
            snprintf(err, sizeof(err),
                     "an export of %s%s in a chain of exports of %s%s (digest 1): tenants mixed",
                     dt[0] ? "tenant " : "every tenant", dt, tenant[0] ? "tenant " : "every tenant",
                     tenant);
            free(buf);
            fail = true;
            break;
        }
        /* The signed text, line by line. */
        buf[tl] = '\0';
        char hdr[256];
        snprintf(hdr, sizeof(hdr), ORIGIN "\nseq %ld\nprevious %s\n", i, prev);
        if (strncmp(buf, hdr, strlen(hdr)) != 0) {
            snprintf(err, sizeof(err),
                     "does not follow digest %ld (its seq or previous-digest hash differ: a "
                     "digest removed, replaced or reordered)",
                     i - 1);
            free(buf);
            fail = true;
            break;
        }
        for (char *l = buf, *nl; !fail && (nl = strchr(l, '\n')); l = nl + 1) {
            *nl = '\0';
            if (strncmp(l, "file ", 5) != 0)
                continue;
            char name[256], hex[80];
            unsigned long long want = 0;
            if (sscanf(l + 5, "%255s %llu %79s", name, &want, hex) != 3 || strchr(name, '/')) {
                snprintf(err, sizeof(err), "malformed file line");
                fail = true;
                break;
            }
            char fpath[4500], got[PX_CHAIN_HEX_LEN + 1];
            snprintf(fpath, sizeof(fpath), "%s/%s", dir, name);
            snprintf(where, sizeof(where), "%.4200s", fpath);
            char **hit = bsearch(&(char *){name}, data, ndata, sizeof(*data), cmp_str);
            if (!hit || !file_sha256(fpath, got)) {
                snprintf(err, sizeof(err), "listed by digest %ld but missing (removed)", i);
                fail = true;
                break;
            }
            listed[hit - data] = true;
            if (strcmp(got, hex) != 0) {
                snprintf(err, sizeof(err), "changed: its SHA-256 is not the one digest %ld signed",
                         i);
                fail = true;
                break;
            }
            uint64_t n = 0;
            if (!px_export_count_lines(fpath, &n, err, sizeof(err))) {
                fail = true;
                break;
            }
            if (n != want) {
                snprintf(err, sizeof(err), "%llu records, digest %ld says %llu",
                         (unsigned long long)n, i, want);
                fail = true;
                break;
            }
            records += n;
            files++;
        }
        free(buf);
        if (!fail && !file_sha256(path, prev)) {
            snprintf(err, sizeof(err), "unreadable");
            fail = true;
        }
    }
    for (size_t i = 0; !fail && i < ndata; i++)
        if (!listed[i]) {
            snprintf(where, sizeof(where), "%.2000s/%.255s", dir, data[i]);
            snprintf(err, sizeof(err), "not listed by any digest (added)");
            fail = true;
        }
    int status;
    if (fail) {
        printf("audit verify: BROKEN at %s: %s\n", where, err[0] ? err : "out of memory");
        status = PX_EXIT_FAIL;
    } else {
        printf(
            "audit verify: OK: export %s: %ld digest(s) chained, %llu file(s), %llu records%s%s\n",
            dir, ndigests, (unsigned long long)files, (unsigned long long)records,
            tenant[0] ? " of tenant " : "", tenant);
        status = PX_EXIT_OK;
    }
    for (size_t i = 0; i < ndata; i++)
        free(data[i]);
    free(data);
    free(listed);
    px_chain_key_free(key);
    return status;
}
