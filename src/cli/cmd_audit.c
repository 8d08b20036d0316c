/* cmd_audit.c: `pricing audit query`: who looked at what, as JSON lines;
 * `pricing audit migrate`: copy a SQLite trail into another store;
 * `pricing audit keygen` / `verify`: the tamper-evident trail (CONTRACT §11). */
#include "cli.h"
#include "kernel/buf.h"
#include "kernel/log.h"
#include "kernel/tenant.h"
#include "kernel/validate.h"
#include "store/audit.h"
#include "store/audit_chain.h"
#include "store/config_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* `audit keygen --out PREFIX`. */
static int keygen(const char *out)
{
    char err[1024];
    px_rc rc = px_chain_keygen(out, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "pricing audit keygen: %s\n", err);
        return PX_EXIT_FAIL;
    }
    printf("audit keygen: wrote %s.key (Ed25519 private key, mode 0600) and %s.pub; sign with "
           "AUDIT_SIGNING_KEY_FILE=%s.key\n",
           out, out, out);
    return PX_EXIT_OK;
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* `audit verify [--from TS] [--to TS] [--public-key FILE] [--tenant NAME]`: 0 whole, 1
 * broken. Chains span tenants: every record is checked; tenant (or NULL)
 * only decides what is counted and how other tenants' records are named. */
static int verify(const struct px_config *cfg, const char *from, const char *to, const char *pubkey,
                  long max_pages, const char *tenant)
{
    char err[1024];
    const char *keyfile = pubkey ? pubkey : px_config_signing_key(cfg);
    if (!keyfile) {
        fprintf(stderr, "pricing audit verify: no key to check checkpoints with: give "
                        "--public-key FILE or set AUDIT_SIGNING_KEY_FILE\n");
        return PX_EXIT_USAGE;
    }
    struct px_chain_key *key = NULL;
    if (px_chain_key_load(keyfile, false, &key, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing audit verify: %s\n", err);
        return PX_EXIT_USAGE;
    }
    char f[25] = "", t[25] = "";
    if (from && px_audit_ts_ms(from, f) != PX_OK)
        f[0] = '\0';
    if (to && px_audit_ts_ms(to, t) != PX_OK)
        t[0] = '\0';
    int status = PX_EXIT_FAIL;
    struct px_chain_verifier *v = NULL;
    const struct px_audit_opts aopts = px_cli_audit_opts(cfg);
    struct px_audit_store *store = px_cli_audit_open("audit verify", cfg, &aopts);
    if (!store) {
        px_chain_key_free(key);
        return PX_EXIT_USAGE;
    }
    double t0 = mono_s();
    px_rc rc = px_chain_verifier_new(key, f[0] ? f : NULL, t[0] ? t : NULL, &v);
    if (!rc) {
        px_chain_verifier_set_read_budget(v, max_pages);
        if (tenant)
            px_chain_verifier_set_tenant(v, tenant);
        rc = px_audit_verify(store, v, err, sizeof(err));
    }
    if (rc == PX_ERR_INVALID) {
        fprintf(stderr, "pricing audit verify: this store (%s) keeps no hash chain yet\n",
                cfg->audit_store);
        status = PX_EXIT_USAGE;
    } else if (rc) {
        fprintf(stderr, "pricing audit verify: %s\n", rc == PX_ERR_NOMEM ? "out of memory" : err);
    } else {
        struct px_chain_report r;
        bool ok = px_chain_verifier_finish(v, &r);
        double secs = mono_s() - t0;
        if (ok) {
            printf("audit verify: OK: %llu records checked (%llu chained by %llu writers, %llu "
                   "unchained from before the chain), %llu signed checkpoints; %llu records in "
                   "[%s, %s]; %.0f records/s\n",
                   (unsigned long long)r.records, (unsigned long long)r.chained,
                   (unsigned long long)r.writers, (unsigned long long)r.unchained,
                   (unsigned long long)r.checkpoints, (unsigned long long)r.in_range,
                   f[0] ? f : "start", t[0] ? t : "end", secs > 0 ? (double)r.records / secs : 0.0);
            if (tenant)
                printf("audit verify: tenant %s: %llu of these records are its own; the other "
                       "%llu belong to other tenants (every chain spans all tenants, so all were "
                       "checked)\n",
                       tenant, (unsigned long long)r.tenant_records,
                       (unsigned long long)(r.records - r.tenant_records));
            status = PX_EXIT_OK;
        } else {
            printf("audit verify: BROKEN at %s: %s\n", r.where, r.what);
        }
        fflush(stdout);
    }
    px_chain_verifier_free(v);
    px_audit_close(store);
    px_chain_key_free(key);
    return status;
}

/* `audit purge`: verify, and only an intact trail loses its expired records. */
static int purge(const struct px_config *cfg)
{
    const char *keyfile = px_config_signing_key(cfg);
    if (!keyfile) {
        fprintf(stderr, "pricing audit purge: no signing key: set AUDIT_SIGNING_KEY_FILE\n");
        return PX_EXIT_USAGE;
    }
    /* A purge must never cut away the evidence of a tamper: verify first. */
    int st = verify(cfg, NULL, NULL, NULL, 0, NULL);
    if (st != PX_EXIT_OK) {
        fprintf(stderr, "pricing audit purge: the trail does not verify; nothing removed\n");
        return st;
    }
    char err[1024] = "";
    const struct px_audit_opts aopts = px_cli_audit_opts(cfg);
    struct px_audit_store *store = px_cli_audit_open("audit purge", cfg, &aopts);
    if (!store)
        return PX_EXIT_USAGE;
    uint64_t removed = 0;
    px_rc rc = px_audit_purge(store, (int64_t)time(NULL), &removed, err, sizeof(err));
    px_audit_close(store);
    if (rc == PX_ERR_INVALID) {
        fprintf(stderr, "pricing audit purge: this store (%s) cannot purge (DynamoDB: TTL)\n",
                cfg->audit_store);
        return PX_EXIT_USAGE;
    }
    if (rc) {
        fprintf(stderr, "pricing audit purge: %s\n", err[0] ? err : px_strerror(rc));
        return PX_EXIT_FAIL;
    }
    printf("audit purge: %llu expired records removed, a signed purge checkpoint for each "
           "writer they came from\n",
           (unsigned long long)removed);
    return verify(cfg, NULL, NULL, NULL, 0, NULL);
}

int px_cmd_audit(int argc, char **argv)
{
    const char *user = NULL, *product = NULL, *from = NULL, *to = NULL, *limit_s = NULL,
               *cursor = NULL, *out = NULL, *pubkey = NULL, *max_pages = NULL, *export_dir = NULL,
               *config_key = NULL, *compression = NULL, *tenant = NULL;
    const struct px_cli_flag flags[] = {
        {"--tenant", true, &tenant, NULL,
         "query: the tenant whose records are read (CONTRACT §12; default: default); export: "
         "only its records (default: every tenant's); verify: count its records (all are "
         "checked)"},
        {"--user", true, &user, NULL, "user id (UUID)"},
        {"--product", true, &product, NULL, "product id"},
        {"--config", true, &config_key, NULL, "config key: its CONFIG_CHANGE records"},
        {"--from", true, &from, NULL,
         "query: RFC 3339 UTC lower bound (inclusive); migrate: sqlite:PATH"},
        {"--to", true, &to, NULL,
         "query: RFC 3339 UTC upper bound (inclusive); migrate: store spec"},
        {"--limit", true, &limit_s, NULL, "records per page, 1-1000 (default 100)"},
        {"--cursor", true, &cursor, NULL, "continue after a previous page"},
        {"--out", true, &out, NULL, "keygen: PREFIX of PREFIX.key and PREFIX.pub"},
        {"--export", true, &export_dir, NULL,
         "verify: check an export directory offline (with --public-key) instead of the store"},
        {"--compression", true, &compression, NULL,
         "export: data files as gzip (default, .jsonl.gz), zstd (.jsonl.zst) or none (.jsonl)"},
        {"--max-pages", true, &max_pages, NULL,
         "verify: DynamoDB Scan pages (1000 items each) to read at most (default 10000)"},
        {"--public-key", true, &pubkey, NULL,
         "verify: Ed25519 public key(s) (PEM; A.pub,B.pub after a rotation) of the checkpoints "
         "(default: the signing key's)"},
    };
    const struct px_cli_cmd cmd = {
        .name = "audit",
        .synopsis =
            "audit query --user UUID | --product ID | --config KEY [--tenant NAME] [--from TS] "
            "[--to TS] "
            "[--limit N] [--cursor C] | audit migrate --from sqlite:OLD --to SPEC | audit count | "
            "audit keygen --out PREFIX | audit verify [--from TS] [--to TS] [--public-key F] "
            "[--max-pages N] [--tenant NAME] | audit export --from TS --to TS --out DIR|s3://B/P "
            "[--tenant NAME] [--compression gzip|zstd|none] | audit verify "
            "--export DIR --public-key F | audit purge",
        .summary = "print audit records, oldest first, as JSON lines (next cursor on stderr)",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
        .config_flags = true,
        .min_args = 1,
        .max_args = 1,
    };
    struct px_config cfg;
    const char *args[1];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, &cfg, args, &nargs);
    if (st >= 0)
        return st;
    const char *bad = NULL;
    long limit = 100;
    if (tenant && strcmp(args[0], "query") != 0 && strcmp(args[0], "export") != 0 &&
        !(strcmp(args[0], "verify") == 0 && !export_dir)) {
        /* verify --export reads the tenant from the digests */
        fprintf(stderr, "pricing audit: --tenant applies to audit query, verify and export "
                        "(not verify --export: its digests name their tenant)\n");
        return PX_EXIT_USAGE;
    }
    if (tenant && !px_tenant_valid(tenant)) {
        fprintf(stderr, "pricing audit: --tenant must be 1-64 of a-z 0-9 -\n");
        return PX_EXIT_USAGE;
    }
    if (strcmp(args[0], "migrate") == 0) {
        if (!from || !to) {
            fprintf(stderr, "pricing audit: migrate needs --from sqlite:OLD and --to SPEC\n");
            return PX_EXIT_USAGE;
        }
        return px_audit_migrate(from, to, &cfg);
    }
    if (strcmp(args[0], "keygen") == 0) {
        if (!out || !*out) {
            fprintf(stderr, "pricing audit: keygen needs --out PREFIX\n");
            return PX_EXIT_USAGE;
        }
        return keygen(out);
    }
    if (strcmp(args[0], "export") == 0) {
        char ts0[25];
        if (!out || !*out) {
            fprintf(stderr, "pricing audit: export needs --out DIR or s3://BUCKET/PREFIX\n");
            return PX_EXIT_USAGE;
        }
        if ((from && (!px_valid_timestamp(from) || px_audit_ts_ms(from, ts0) != PX_OK)) ||
            (to && (!px_valid_timestamp(to) || px_audit_ts_ms(to, ts0) != PX_OK))) {
            fprintf(stderr, "pricing audit: --from and --to must be RFC 3339 UTC timestamps\n");
            return PX_EXIT_USAGE;
        }
        px_log_set_fd(STDERR_FILENO);
        px_log_init(cfg.log_level, "audit-export");
        return px_audit_export(&cfg, from, to, out, compression, tenant);
    }
    if (strcmp(args[0], "purge") == 0) {
        px_log_set_fd(STDERR_FILENO);
        px_log_init(cfg.log_level, "audit-purge");
        return purge(&cfg);
    }
    if (strcmp(args[0], "verify") == 0 && export_dir)
        return px_audit_verify_export(export_dir, pubkey);
    if (strcmp(args[0], "verify") == 0) {
        char ts0[25];
        if ((from && (!px_valid_timestamp(from) || px_audit_ts_ms(from, ts0) != PX_OK)) ||
            (to && (!px_valid_timestamp(to) || px_audit_ts_ms(to, ts0) != PX_OK))) {
            fprintf(stderr, "pricing audit: --from and --to must be RFC 3339 UTC timestamps\n");
            return PX_EXIT_USAGE;
        }
        px_log_set_fd(STDERR_FILENO);
        long pages = 0;
        if (max_pages) {
            char *end;
            errno = 0;
            pages = strtol(max_pages, &end, 10);
            if (errno || *end || end == max_pages || pages < 1 || pages > 1000000) {
                fprintf(stderr, "pricing audit: --max-pages must be 1-1000000\n");
                return PX_EXIT_USAGE;
            }
        }
        px_log_init(cfg.log_level, "audit-verify");
        return verify(&cfg, from, to, pubkey, pages, tenant);
    }
    if (strcmp(args[0], "count") == 0) {
        /* Records in the store, expired ones included (lsm: stores; for bench and checks). */
        const struct px_audit_opts copts = px_cli_audit_opts(&cfg);
        struct px_audit_store *cs = px_cli_audit_open("audit", &cfg, &copts);
        uint64_t n = 0;
        px_rc crc = cs ? px_audit_count(cs, &n) : PX_ERR_UNAVAILABLE;
        px_audit_close(cs);
        if (crc) {
            fprintf(stderr, "pricing audit: cannot count this store: %s\n", px_strerror(crc));
            return PX_EXIT_FAIL;
        }
        printf("%llu\n", (unsigned long long)n);
        return PX_EXIT_OK;
    }
    char ts[25]; /* the store converts --from/--to with px_audit_ts_ms(): check with it */
    if (strcmp(args[0], "query") != 0)
        bad = "unknown action (query, migrate, count, keygen, verify, export, purge)";
    else if ((user != NULL) + (product != NULL) + (config_key != NULL) != 1)
        bad = "exactly one of --user, --product or --config is required";
    else if (config_key && !px_config_key_valid(config_key))
        bad = "--config must be a config key (1-128 of a-z 0-9 . _ -)";
    else if (user && !px_valid_uuid(user))
        bad = "--user must be a UUID";
    else if (product && !px_valid_product_id(product))
        bad = "--product must be a product id";
    else if (from && (!px_valid_timestamp(from) || px_audit_ts_ms(from, ts) != PX_OK))
        bad = "--from must be an RFC 3339 UTC timestamp (seconds 00-59)";
    else if (to && (!px_valid_timestamp(to) || px_audit_ts_ms(to, ts) != PX_OK))
        bad = "--to must be an RFC 3339 UTC timestamp (seconds 00-59)";
    else if (limit_s) {
        char *end;
        errno = 0;
        limit = strtol(limit_s, &end, 10);
        if (errno || *end || end == limit_s || limit < 1 || limit > 1000)
            bad = "--limit must be an integer between 1 and 1000";
    }
    if (bad) {
        fprintf(stderr, "pricing audit: %s\n", bad);
        px_cli_usage(&cmd, stderr);
        return PX_EXIT_USAGE;
    }
    px_log_set_fd(STDERR_FILENO);
    px_log_init(cfg.log_level, "audit-query");

    char lower[PX_UUID_LEN + 1] = "";
    if (user) {
        for (size_t i = 0; i < PX_UUID_LEN; i++)
            lower[i] = (char)(user[i] >= 'A' && user[i] <= 'F' ? user[i] + 32 : user[i]);
        user = lower;
    }
    const struct px_audit_opts aopts = px_cli_audit_opts(&cfg);
    struct px_audit_store *store = px_cli_audit_open("audit", &cfg, &aopts);
    if (!store)
        return PX_EXIT_USAGE;
    struct px_arena *arena = px_arena_new(64 * 1024 * 1024);
    struct px_audit_query q = {
        .user_id = user,
        .product_id = product,
        .config_key = config_key,
        .from = from,
        .to = to,
        .limit = limit,
        .cursor = cursor,
        .now = (int64_t)time(NULL),
        /* TENANCY=on without --tenant: the default tenant, records with tenantId */
        .tenant = tenant        ? tenant
                  : cfg.tenancy ? "default"
                                : NULL,
    };
    struct px_audit_page page;
    px_rc rc = arena ? px_audit_query(store, &q, arena, &page) : PX_ERR_NOMEM;
    int status = PX_EXIT_OK;
    if (rc) {
        fprintf(stderr, "pricing audit: %s\n",
                rc == PX_ERR_INVALID ? "the cursor does not belong to this query"
                                     : px_strerror(rc));
        status = rc == PX_ERR_INVALID ? PX_EXIT_USAGE : PX_EXIT_FAIL;
    } else {
        struct px_buf line;
        /* a write's record carries before and after, each up to PX_AUDIT_CHANGE_MAX */
        px_buf_init(&line, 2 * PX_AUDIT_CHANGE_MAX + 64 * 1024);
        for (size_t i = 0; i < page.nitems && !rc; i++) {
            px_buf_clear(&line);
            rc = px_audit_record_json(&page.items[i], &line);
            if (!rc) {
                fwrite(line.data, 1, line.len, stdout);
                fputc('\n', stdout);
            }
        }
        px_buf_free(&line);
        if (page.next_cursor)
            fprintf(stderr, "next cursor: %s\n", page.next_cursor);
        if (rc)
            fprintf(stderr, "pricing audit: a record cannot be printed: %s\n", px_strerror(rc));
        if (rc || fflush(stdout) != 0)
            status = PX_EXIT_FAIL;
    }
    px_arena_free(arena);
    px_audit_close(store);
    return status;
}
