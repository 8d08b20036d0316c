/* audit_seed.c: fills an audit store with N synthetic records, fast, through
 * the store's own group-commit write path (px_audit_submit), so the records,
 * keys and files are exactly those `pricing serve` writes. For the query-at-
 * scale benchmark (bench/query-scale.sh); not part of the service.
 *
 * Usage: audit_seed SPEC COUNT USERS PRODUCTS IDS_FILE
 *   SPEC      sqlite:PATH or lsm:DIR (created when missing)
 *   COUNT     records to write
 *   USERS     distinct random UUID v4 user ids (record i goes to user i % USERS)
 *   PRODUCTS  distinct product ids PROD-00001.. (record i to product
 *             (i % PRODUCTS + i / USERS) % PRODUCTS: each gets COUNT / PRODUCTS or so)
 *   IDS_FILE  receives the user ids, one a line (the query benchmark picks from them)
 * Timestamps are spread evenly over the last 30 days, oldest first; records
 * expire a year from now. The generator is seeded with a constant, so two
 * runs write the same records. */
#include "store/audit.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SPAN_MS   (30LL * 86400 * 1000)
#define USERS_MAX 10000000L

static atomic_ulong done_ok, done_fail;

static void on_done(void *arg, px_rc rc)
{
    (void)arg;
    if (rc)
        atomic_fetch_add(&done_fail, 1);
    else
        atomic_fetch_add(&done_ok, 1);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A lower-case UUID v4 from two random words. */
static void uuid_of(uint64_t a, uint64_t b, char out[PX_UUID_LEN + 1])
{
    unsigned char u[16];
    for (int i = 0; i < 8; i++) {
        u[i] = (unsigned char)(a >> (8 * i));
        u[8 + i] = (unsigned char)(b >> (8 * i));
    }
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

static void ts_of(int64_t ms, char out[25])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char buf[32];
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    char full[48];
    snprintf(full, sizeof(full), "%.19s.%03dZ", n == 19 ? buf : "1970-01-01T00:00:00",
             (int)(ms % 1000));
    memcpy(out, full, 24);
    out[24] = '\0';
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long parse_count(const char *s, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || !end || *end || v < 1 || v > max ? -1 : v;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: audit_seed SPEC COUNT USERS PRODUCTS IDS_FILE\n");
        return 2;
    }
    long count = parse_count(argv[2], 2000000000L), nusers = parse_count(argv[3], USERS_MAX),
         nproducts = parse_count(argv[4], 99999);
    if (count < 0 || nusers < 0 || nproducts < 0) {
        fprintf(stderr,
                "audit_seed: COUNT, USERS (<= %ld), PRODUCTS (<= 99999) are positive "
                "integers\n",
                USERS_MAX);
        return 2;
    }
    int status = 1;
    char(*users)[PX_UUID_LEN + 1] = calloc((size_t)nusers, sizeof(*users));
    FILE *ids = fopen(argv[5], "w");
    struct px_audit_store *store = NULL;
    if (!users || !ids) {
        fprintf(stderr, "audit_seed: cannot allocate or open %s\n", argv[5]);
        goto out;
    }
    uint64_t rng = 20261203;
    for (long u = 0; u < nusers; u++) {
        uint64_t a = splitmix(&rng), b = splitmix(&rng);
        uuid_of(a, b, users[u]);
        fprintf(ids, "%s\n", users[u]);
    }
    if (fclose(ids) != 0) {
        ids = NULL;
        fprintf(stderr, "audit_seed: cannot write %s\n", argv[5]);
        goto out;
    }
    ids = NULL;

    const struct px_audit_opts opts = {
        .timeout_ms = 60000, .max_batch = 16384, .queue_cap = 262144, .create = true};
    char err[512] = "";
    if (px_audit_open(argv[1], &opts, &store, err, sizeof(err))) {
        fprintf(stderr, "audit_seed: %s\n", err);
        goto out;
    }
    int64_t end_ms = (int64_t)time(NULL) * 1000, start_ms = end_ms - SPAN_MS;
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        struct px_audit_record r;
        memset(&r, 0, sizeof(r));
        memcpy(r.user_id, users[i % nusers], sizeof(r.user_id));
        /* Shifted by one each round over the users: every product gets its share
         * of records, and a user's records go to many products. */
        snprintf(r.product_id, sizeof(r.product_id), "PROD-%05ld",
                 (i % nproducts + i / nusers) % nproducts + 1);
        uuid_of(splitmix(&rng), splitmix(&rng), r.request_id);
        memcpy(r.correlation_id, r.request_id, sizeof(r.correlation_id));
        ts_of(start_ms + (int64_t)((double)SPAN_MS * (double)i / (double)count), r.ts);
        r.expires_at = end_ms / 1000 + 365LL * 86400;
        snprintf(r.action, sizeof(r.action), "PRICE_FETCH");
        snprintf(r.status, sizeof(r.status), "SUCCESS");
        px_rc rc;
        while ((rc = px_audit_submit(store, &r, on_done, NULL)) == PX_ERR_BUSY)
            usleep(1000); /* the queue is full: let the writer catch up */
        if (rc) {
            fprintf(stderr, "audit_seed: submit: %s\n", px_strerror(rc));
            goto out;
        }
        if ((i + 1) % 1000000 == 0)
            fprintf(stderr, "audit_seed: %ld submitted, %.0f records/s\n", i + 1,
                    (double)atomic_load(&done_ok) / (now_s() - t0));
    }
    px_audit_close(store); /* waits for every record */
    store = NULL;
    double dt = now_s() - t0;
    unsigned long ok = atomic_load(&done_ok), bad = atomic_load(&done_fail);
    printf("records=%lu failed=%lu seconds=%.1f records_per_s=%.0f\n", ok, bad, dt,
           (double)ok / dt);
    status = ok == (unsigned long)count && bad == 0 ? 0 : 1;
out:
    px_audit_close(store);
    if (ids)
        fclose(ids);
    free(users);
    return status;
}
