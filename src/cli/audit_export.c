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

#define FILE_RECORDS  100000 /* records per data file */
#define DIGESTS_MAX   100000
#define FILES_MAX     4096 /* data files per export */
#define LINE_MAX_LEN  (2 * PX_AUDIT_CHANGE_MAX + 8192)
#define DIGEST_PREFIX "digest-"
#define ORIGIN        "pricing.audit/export/v1"

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

/* ---- export ------------------------------------------------------------------------------ */

struct exporter {
    const char *dir;
    long seq;
    gzFile gz;
    char path[4096];
    size_t files;
    uint64_t in_file, total;
    struct px_buf line;
    struct px_buf text; /* the digest's file lines */
    char err[512];
};

static px_rc close_file(struct exporter *x)
{
    if (!x->gz)
        return PX_OK;
    int e = gzclose(x->gz);
    x->gz = NULL;
    char hex[PX_CHAIN_HEX_LEN + 1];
    if (e != Z_OK || !file_sha256(x->path, hex)) {
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
    if (x->gz && x->in_file == FILE_RECORDS)
        rc = close_file(x);
    if (!rc && !x->gz) {
        if (x->files == FILES_MAX) {
            snprintf(x->err, sizeof(x->err), "more than %d files in one export: narrow --from/--to",
                     FILES_MAX);
            return PX_ERR_TOO_LARGE;
        }
        snprintf(x->path, sizeof(x->path), "%s/records-%06ld-%04zu.jsonl.gz", x->dir, x->seq,
                 ++x->files);
        int fd = open(x->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        x->gz = fd >= 0 ? gzdopen(fd, "wb6") : NULL;
        if (!x->gz) {
            if (fd >= 0)
                close(fd);
            snprintf(x->err, sizeof(x->err), "cannot create %.300s: %s", x->path, strerror(errno));
            return PX_ERR_IO;
        }
        x->in_file = 0;
    }
    if (rc)
        return rc;
    px_buf_clear(&x->line);
    rc = px_audit_record_json(r, &x->line);
    if (!rc)
        rc = px_buf_add(&x->line, "\n", 1);
    if (!rc && gzwrite(x->gz, x->line.data, (unsigned)x->line.len) != (int)x->line.len) {
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

int px_audit_export(const struct px_config *cfg, const char *from, const char *to, const char *out)
{
    char err[1024] = "";
    const char *keyfile = px_config_signing_key(cfg);
    if (!keyfile) {
        fprintf(stderr, "pricing audit export: no signing key: set AUDIT_SIGNING_KEY_FILE\n");
        return PX_EXIT_USAGE;
    }
    if (strncmp(out, "s3://", 5) == 0) {
        fprintf(stderr, "pricing audit export: s3:// destinations are not supported yet; export "
                        "to a directory\n");
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
    char probe[4200];
    snprintf(probe, sizeof(probe), "%s/x", out);
    int e = px_fs_make_parent(probe, 0750);
    if (e) {
        px_chain_key_free(key);
        fprintf(stderr, "pricing audit export: cannot create %s: %s\n", out, strerror(e));
        return PX_EXIT_FAIL;
    }
    struct exporter x = {.dir = out};
    px_buf_init(&x.line, LINE_MAX_LEN);
    px_buf_init(&x.text, PX_NOTE_MAX / 2);
    x.seq = last_digest(out) + 1;
    char prev[PX_CHAIN_HEX_LEN + 1];
    memset(prev, '0', PX_CHAIN_HEX_LEN);
    prev[PX_CHAIN_HEX_LEN] = '\0';
    char dpath[4200];
    if (x.seq > 1) {
        snprintf(dpath, sizeof(dpath), "%s/" DIGEST_PREFIX "%06ld.txt", out, x.seq - 1);
        if (!file_sha256(dpath, prev)) {
            fprintf(stderr, "pricing audit export: cannot read %s\n", dpath);
            px_chain_key_free(key);
            return PX_EXIT_FAIL;
        }
    }
    int status = PX_EXIT_FAIL;
    const struct px_audit_opts aopts = px_cli_audit_opts(cfg);
    struct px_audit_store *store = px_cli_audit_open("audit export", cfg, &aopts);
    char now[25];
    px_chain_now_ts(now);
    px_rc rc = store ? PX_OK : PX_ERR_UNAVAILABLE;
    if (!rc)
        rc = px_buf_printf(&x.text, ORIGIN "\nseq %ld\nprevious %s\nfrom %s\nto %s\ncreated %s\n",
                           x.seq, prev, f[0] ? f : "-", t[0] ? t : "-", now);
    if (!rc) {
        rc = px_audit_scan(store, f[0] ? f : NULL, t[0] ? t : NULL, export_one, &x, err,
                           sizeof(err));
        if (rc == PX_ERR_INVALID && !err[0])
            snprintf(err, sizeof(err), "this store (%.300s) cannot be exported yet",
                     cfg->audit_store);
    }
    if (!rc)
        rc = close_file(&x);
    else if (x.gz)
        (void)close_file(&x);
    char *note = NULL;
    size_t nlen = 0;
    if (!rc) {
        note = malloc(x.text.len + 256);
        rc = note ? px_note_sign(key, x.text.data, x.text.len, note, x.text.len + 256, &nlen)
                  : PX_ERR_NOMEM;
    }
    if (!rc) {
        snprintf(dpath, sizeof(dpath), "%s/" DIGEST_PREFIX "%06ld.txt", out, x.seq);
        rc = write_new_file(dpath, note, nlen, err, sizeof(err));
    }
    if (rc) {
        if (store)
            fprintf(stderr, "pricing audit export: %s\n",
                    x.err[0] ? x.err
                    : err[0] ? err
                             : px_strerror(rc));
    } else {
        printf("audit export: %llu records in %zu file(s), digest %s (export %ld, chained to the "
               "previous digest)\n",
               (unsigned long long)x.total, x.files, dpath, x.seq);
        status = PX_EXIT_OK;
    }
    free(note);
    px_buf_free(&x.line);
    px_buf_free(&x.text);
    px_audit_close(store);
    px_chain_key_free(key);
    return status;
}

/* ---- offline verification ---------------------------------------------------------------- */

/* Lines of a data file (gzip or plain), each a JSON object; false (why in err). */
static bool count_lines(const char *path, uint64_t *n, char *err, size_t errlen)
{
    size_t pl = strlen(path);
    if (pl > 4 && strcmp(path + pl - 4, ".zst") == 0) {
        snprintf(err, errlen, "zstd files cannot be read by this build");
        return false;
    }
    gzFile g = gzopen(path, "rb"); /* reads plain files as they are, too */
    if (!g) {
        snprintf(err, errlen, "unreadable");
        return false;
    }
    char *line = malloc(LINE_MAX_LEN);
    bool ok = line != NULL;
    *n = 0;
    while (ok && gzgets(g, line, LINE_MAX_LEN)) {
        size_t l = strlen(line);
        if (!l || line[l - 1] != '\n') {
            snprintf(err, errlen, "line %llu: not a whole line", (unsigned long long)*n + 1);
            ok = false;
            break;
        }
        json_t *j = json_loadb(line, l, 0, NULL);
        bool obj = json_is_object(j);
        json_decref(j);
        if (!obj) {
            snprintf(err, errlen, "line %llu: not a JSON record (changed)",
                     (unsigned long long)*n + 1);
            ok = false;
            break;
        }
        (*n)++;
    }
    int ge = 0;
    gzerror(g, &ge);
    if (ok && ge != Z_OK && ge != Z_STREAM_END) {
        snprintf(err, errlen, "damaged compressed data (changed or truncated)");
        ok = false;
    }
    gzclose(g);
    free(line);
    return ok;
}

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
            if (!count_lines(fpath, &n, err, sizeof(err))) {
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
        printf("audit verify: OK: export %s: %ld digest(s) chained, %llu file(s), %llu records\n",
               dir, ndigests, (unsigned long long)files, (unsigned long long)records);
        status = PX_EXIT_OK;
    }
    for (size_t i = 0; i < ndata; i++)
        free(data[i]);
    free(data);
    free(listed);
    px_chain_key_free(key);
    return status;
}
