/* audit_engines.c: the audit trail's write pattern on candidate engines, side by side.
 *
 * Each engine gets the same records (random UUID v4 users, 10,000 products,
 * CONTRACT §5 keys) and both query keys, written in batches with one sync per
 * batch, the way the audit store's writer group-commits. A store is filled
 * with PREFILL records first (not measured), then MEASURE records are written
 * in batches of BATCH and each batch is timed. Reported per record: bytes
 * written to storage (write_bytes of /proc/self/io, which counts the engine's
 * background flush and compaction threads too), CPU-µs (utime + stime of the
 * whole process), and the p50/p99 latency of one batch.
 *
 * Usage: audit_engines DIR [PREFILL [MEASURE [BATCH]]]
 * Built only with -DPX_BENCH=ON (bench/README.md). */
#include <errno.h>
#include <inttypes.h>
#include <leveldb/c.h>
#include <rocksdb/c.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NPRODUCTS 10000

struct rec {
    char user[37], product[16], request[40], ts[25];
    char pk[PX_AUDIT_PK_MAX], sk[128], gsi1pk[96];
    char value[512];
    size_t vlen;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static long long io_written(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "write_bytes:", 12) == 0)
            v = strtoll(line + 12, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void make_rec(struct rec *r, uint64_t n)
{
    uint64_t a = rnd(), b = rnd();
    snprintf(r->user, sizeof(r->user), "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff, (unsigned)(b >> 48) & 0xfff,
             (unsigned long long)(b & 0xffffffffffffULL));
    snprintf(r->product, sizeof(r->product), "PROD-%05u", (unsigned)(rnd() % NPRODUCTS) + 1);
    snprintf(r->request, sizeof(r->request), "req-%016llx", (unsigned long long)rnd());
    time_t s = (time_t)(1790000000 + n / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(r->ts, sizeof(r->ts), "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(tm.tm_year + 1900) % 10000, (unsigned)(tm.tm_mon + 1) % 100,
             (unsigned)tm.tm_mday % 100, (unsigned)tm.tm_hour % 100, (unsigned)tm.tm_min % 100,
             (unsigned)tm.tm_sec % 100, (unsigned)(n % 1000));
    snprintf(r->pk, sizeof(r->pk), "USER#%s", r->user);
    snprintf(r->sk, sizeof(r->sk), "AUDIT#%s#%s", r->ts, r->request);
    snprintf(r->gsi1pk, sizeof(r->gsi1pk), "PRODUCT#%s", r->product);
    int len = snprintf(r->value, sizeof(r->value),
                       "PRICE_FETCH|SUCCESS|%s|%s|%s|corr-%016llx|%s|%lld||", r->user, r->product,
                       r->request, (unsigned long long)rnd(), r->ts, (long long)s + 7776000);
    r->vlen = (size_t)len;
}

/* ---- engines --------------------------------------------------------------------------- */

struct engine {
    const char *name;
    int (*open)(const char *dir);
    int (*write)(struct rec *rs, size_t n, int sync);
    void (*close)(void);
};

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "audit_engines: %s: %s\n", what, msg ? msg : "?");
    exit(1);
}

/* LSM key layout: the record under its user key, an empty pointer under the product key. */
static size_t ukey(const struct rec *r, char *k)
{
    int n = snprintf(k, 256, "U%s%c%s", r->user, 0, r->sk);
    return (size_t)n;
}
static size_t pkey(const struct rec *r, char *k)
{
    int n = snprintf(k, 256, "P%s%c%s%c%s", r->product, 0, r->sk, 0, r->user);
    return (size_t)n;
}

static leveldb_t *ldb;
static leveldb_writeoptions_t *lwo_sync, *lwo_nosync;
static int ldb_open(const char *dir)
{
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    leveldb_options_set_compression(o, leveldb_snappy_compression);
    char *err = NULL;
    ldb = leveldb_open(o, dir, &err);
    if (err)
        die("leveldb open", err);
    lwo_sync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(lwo_sync, 1);
    lwo_nosync = leveldb_writeoptions_create();
    return 0;
}
static int ldb_write(struct rec *rs, size_t n, int sync)
{
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    char k[256];
    for (size_t i = 0; i < n; i++) {
        size_t kl = ukey(&rs[i], k);
        leveldb_writebatch_put(b, k, kl, rs[i].value, rs[i].vlen);
        kl = pkey(&rs[i], k);
        leveldb_writebatch_put(b, k, kl, "", 0);
    }
    char *err = NULL;
    leveldb_write(ldb, sync ? lwo_sync : lwo_nosync, b, &err);
    leveldb_writebatch_destroy(b);
    if (err)
        die("leveldb write", err);
    return 0;
}
static void ldb_close(void)
{
    leveldb_close(ldb);
}

static rocksdb_t *rdb;
static rocksdb_writeoptions_t *rwo_sync, *rwo_nosync;
static int rdb_open(const char *dir)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_keep_log_file_num(o, 2);
    /* The store's setting: a small memtable keeps RSS low and makes flushes
     * and compactions happen within the measured run. */
    rocksdb_options_set_write_buffer_size(o, 4u << 20);
    char *err = NULL;
    rdb = rocksdb_open(o, dir, &err);
    if (err)
        die("rocksdb open", err);
    rwo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(rwo_sync, 1);
    rwo_nosync = rocksdb_writeoptions_create();
    return 0;
}
static int rdb_write(struct rec *rs, size_t n, int sync)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    char k[256];
    for (size_t i = 0; i < n; i++) {
        size_t kl = ukey(&rs[i], k);
        rocksdb_writebatch_put(b, k, kl, rs[i].value, rs[i].vlen);
        kl = pkey(&rs[i], k);
        rocksdb_writebatch_put(b, k, kl, "", 0);
    }
    char *err = NULL;
    rocksdb_write(rdb, sync ? rwo_sync : rwo_nosync, b, &err);
    rocksdb_writebatch_destroy(b);
    if (err)
        die("rocksdb write", err);
    return 0;
}
static void rdb_close(void)
{
    rocksdb_close(rdb);
}

static sqlite3 *sdb;
static sqlite3_stmt *sins;
static int sqlite_indexes;
static int sql_open(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/audit.db", dir);
    if (sqlite3_open(path, &sdb) != SQLITE_OK)
        die("sqlite open", sqlite3_errmsg(sdb));
    const char *schema_idx =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, pk TEXT NOT NULL, sk TEXT NOT NULL,"
        " gsi1pk TEXT NOT NULL, gsi1sk TEXT NOT NULL, value TEXT NOT NULL, UNIQUE (pk, sk));"
        "CREATE INDEX audit_gsi1 ON audit (gsi1pk, gsi1sk);";
    const char *schema_noidx =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, pk TEXT NOT NULL, sk TEXT NOT NULL,"
        " gsi1pk TEXT NOT NULL, gsi1sk TEXT NOT NULL, value TEXT NOT NULL);";
    if (sqlite3_exec(sdb, sqlite_indexes ? schema_idx : schema_noidx, NULL, NULL, NULL))
        die("sqlite schema", sqlite3_errmsg(sdb));
    if (sqlite3_prepare_v2(sdb,
                           "INSERT INTO audit (pk, sk, gsi1pk, gsi1sk, value)"
                           " VALUES (?1, ?2, ?3, ?2, ?4)",
                           -1, &sins, NULL))
        die("sqlite prepare", sqlite3_errmsg(sdb));
    return 0;
}
static int sql_write(struct rec *rs, size_t n, int sync)
{
    (void)sync; /* synchronous=FULL fsyncs every commit */
    sqlite3_exec(sdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(sins, 1, rs[i].pk, -1, SQLITE_STATIC);
        sqlite3_bind_text(sins, 2, rs[i].sk, -1, SQLITE_STATIC);
        sqlite3_bind_text(sins, 3, rs[i].gsi1pk, -1, SQLITE_STATIC);
        sqlite3_bind_text(sins, 4, rs[i].value, (int)rs[i].vlen, SQLITE_STATIC);
        if (sqlite3_step(sins) != SQLITE_DONE)
            die("sqlite insert", sqlite3_errmsg(sdb));
        sqlite3_reset(sins);
    }
    if (sqlite3_exec(sdb, "COMMIT", NULL, NULL, NULL))
        die("sqlite commit", sqlite3_errmsg(sdb));
    return 0;
}
static void sql_close(void)
{
    sqlite3_finalize(sins);
    sqlite3_close(sdb);
}
static int sql2_open(const char *dir)
{
    sqlite_indexes = 1;
    return sql_open(dir);
}
static int sql0_open(const char *dir)
{
    sqlite_indexes = 0;
    return sql_open(dir);
}

static const struct engine engines[] = {
    {"leveldb-1.23", ldb_open, ldb_write, ldb_close},
    {"rocksdb-7.8", rdb_open, rdb_write, rdb_close},
    {"sqlite-2-indexes", sql2_open, sql_write, sql_close},
    {"sqlite-no-index", sql0_open, sql_write, sql_close},
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long long dir_bytes(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "du -sb '%s' 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    long long v = -1;
    if (p && fscanf(p, "%lld", &v) != 1)
        v = -1;
    if (p)
        pclose(p);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: audit_engines DIR [PREFILL [MEASURE [BATCH [ENGINE]]]]\n");
        return 2;
    }
    const char *root = argv[1];
    size_t prefill = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
    size_t measure = argc > 3 ? strtoul(argv[3], NULL, 10) : 50000;
    size_t batch = argc > 4 ? strtoul(argv[4], NULL, 10) : 32;
    const char *only = argc > 5 ? argv[5] : NULL;
    if (batch < 1 || batch > 4096 || measure < batch)
        die("arguments", "need 1 <= BATCH <= 4096 and MEASURE >= BATCH");
    struct rec *rs = calloc(4096, sizeof(*rs));
    double *lat = calloc(measure / batch + 1, sizeof(*lat));
    if (!rs || !lat)
        die("memory", strerror(ENOMEM));
    printf("| engine | records present | batch | bytes written/record | store bytes/record | "
           "CPU-µs/record | wall-µs/record | batch p50 ms | batch p99 ms |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fflush(stdout);
    for (size_t e = 0; e < sizeof(engines) / sizeof(engines[0]); e++) {
        const struct engine *en = &engines[e];
        if (only && strcmp(only, en->name) != 0)
            continue;
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/%s", root, en->name);
        mkdir(root, 0750);
        if (mkdir(dir, 0750) != 0)
            die(dir, strerror(errno));
        rng_state = 0x9e3779b97f4a7c15ULL;
        en->open(dir);
        uint64_t n = 0;
        for (size_t done = 0; done < prefill; done += 4096) {
            size_t k = prefill - done < 4096 ? prefill - done : 4096;
            for (size_t i = 0; i < k; i++)
                make_rec(&rs[i], n++);
            en->write(rs, k, 0);
        }
        sleep(1);
        long long w0 = io_written();
        double c0 = cpu_s(), t0 = mono_s();
        size_t nb = 0;
        for (size_t done = 0; done + batch <= measure; done += batch) {
            for (size_t i = 0; i < batch; i++)
                make_rec(&rs[i], n++);
            double b0 = mono_s();
            en->write(rs, batch, 1);
            lat[nb++] = mono_s() - b0;
        }
        double t1 = mono_s();
        /* Background flushes and compactions the measured writes caused. */
        sleep(2);
        double c1 = cpu_s();
        long long w1 = io_written();
        en->close();
        size_t written = nb * batch;
        qsort(lat, nb, sizeof(*lat), cmp_double);
        long long store = dir_bytes(dir);
        printf("| %s | %zu | %zu | %.0f | %.0f | %.1f | %.1f | %.2f | %.2f |\n", en->name, prefill,
               batch, (double)(w1 - w0) / (double)written,
               (double)store / (double)(prefill + written), (c1 - c0) * 1e6 / (double)written,
               (t1 - t0) * 1e6 / (double)written, lat[nb / 2] * 1e3,
               lat[(size_t)((double)nb * 0.99)] * 1e3);
        fflush(stdout);
    }
    free(rs);
    free(lat);
    return 0;
}
