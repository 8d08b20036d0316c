/* cmd_db.c: `pricing db migrate` creates or upgrades both stores; `pricing db
 * seed` does that and loads the sample prices. Migrations and sample prices
 * are built into the binary (store/sql_assets.h), so both run from any
 * directory; --seed-file loads a file instead. */
#include "cli.h"
#include "kernel/app.h"
#include "kernel/fs.h"
#include "kernel/log.h"
#include "kernel/tenant.h"
#include "store/audit.h"
#include "store/audit_chain.h"
#include "store/price.h"
#include "store/product.h"
#include "store/config_store.h"
#include "store/sql_assets.h"

#include <errno.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One catalogue entry per row of the built-in sample prices, whose lines read
 * ('PROD-101','99.99','USD'),: the catalogue matches the prices db seed loads. */
static size_t catalogue(struct px_product *items, size_t cap, const char *now)
{
    size_t n = 0;
    for (const char *p = px_sql_assets_seed.text; p && n < cap; p = strchr(p, '\n')) {
        while (*p == '\n')
            p++;
        char id[PX_MAX_PRODUCT_ID + 1], amount[48], cur[4];
        const char *q = p;
        if (strncmp(q, "('", 2) != 0)
            continue;
        q += 2;
        size_t l = strcspn(q, "'");
        if (l == 0 || l >= sizeof(id))
            continue;
        memcpy(id, q, l);
        id[l] = '\0';
        q += l;
        if (strncmp(q, "','", 3) != 0)
            continue;
        q += 3;
        l = strcspn(q, "'");
        if (l == 0 || l >= sizeof(amount))
            continue;
        memcpy(amount, q, l);
        amount[l] = '\0';
        q += l;
        if (strncmp(q, "','", 3) != 0 || strspn(q + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
            continue;
        memcpy(cur, q + 3, 3);
        cur[3] = '\0';
        struct px_product *it = &items[n++];
        memset(it, 0, sizeof(*it));
        memcpy(it->id, id, sizeof(id));
        it->name = "Sample product";
        it->description = "";
        it->category = "sample";
        memcpy(it->status, "ACTIVE", sizeof("ACTIVE"));
        it->attributes = "{}";
        it->has_price = true;
        memcpy(it->amount, amount, sizeof(amount));
        memcpy(it->currency, cur, sizeof(cur));
        memcpy(it->effective_from, now, 25);
        it->version = 1;
        memcpy(it->created_at, now, 25);
        memcpy(it->updated_at, now, 25);
    }
    return n;
}

/* Creates or upgrades the product store; seed also loads the catalogue. */
static int products(const char *what, const struct px_config *cfg, bool seed, const char *tenant)
{
    char err[1024];
    const struct px_product_opts o = {
        .timeout_ms = 30000,
        .create = true,
        .region = cfg->aws_region,
        .endpoint = cfg->dynamodb_endpoint,
        .access_key_id = cfg->aws_access_key_id,
        .secret_access_key = cfg->aws_secret_access_key,
        .session_token = cfg->aws_session_token,
    };
    struct px_product_store *s = NULL;
    if (px_product_open(cfg->product_store, &o, &s, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing %s: %s\n", what, err);
        return 1;
    }
    px_rc rc = PX_OK;
    size_t n = 0;
    if (seed) {
        enum { CATALOGUE_MAX = 100000 };
        struct px_product *items = calloc(CATALOGUE_MAX, sizeof(*items));
        char now[25];
        px_now_rfc3339(now);
        n = items ? catalogue(items, CATALOGUE_MAX, now) : 0;
        rc = items ? px_product_seed_in(s, tenant, items, n, err, sizeof(err)) : PX_ERR_NOMEM;
        free(items);
    }
    px_product_close(s);
    if (rc) {
        fprintf(stderr, "pricing %s: %s\n", what, rc == PX_ERR_NOMEM ? "out of memory" : err);
        return 1;
    }
    if (seed)
        printf("products: store ready, catalogue of %zu sample products loaded (existing kept)\n",
               n);
    else
        printf("products: store ready\n");
    return 0;
}

/* Creates or upgrades the config store (config-service); it starts empty:
 * every reader has its defaults. */
static int config_items(const char *what, const struct px_config *cfg)
{
    char err[1024];
    const struct px_config_store_opts o = {
        .timeout_ms = 30000,
        .create = true,
        .region = cfg->aws_region[0] ? cfg->aws_region : NULL,
        .endpoint = cfg->dynamodb_endpoint[0] ? cfg->dynamodb_endpoint : NULL,
        .access_key_id = cfg->aws_access_key_id[0] ? cfg->aws_access_key_id : NULL,
        .secret_access_key = cfg->aws_secret_access_key[0] ? cfg->aws_secret_access_key : NULL,
        .session_token = cfg->aws_session_token[0] ? cfg->aws_session_token : NULL,
    };
    struct px_config_store *s = NULL;
    if (px_config_store_open(cfg->config_store, &o, &s, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing %s: %s\n", what, err);
        return 1;
    }
    px_config_store_close(s);
    printf("config: store ready\n");
    return 0;
}

int px_cmd_db(int argc, char **argv)
{
    const char *seed_file = NULL;
    const char *tenant = NULL;
    const struct px_cli_flag flags[] = {
        {"--seed-file", true, &seed_file, NULL,
         "SQL file of prices to load instead of the built-in sample prices"},
        {"--tenant", true, &tenant, NULL,
         "load the prices and catalogue into this tenant (CONTRACT §12; default: default)"},
    };
    const struct px_cli_cmd seed_cmd = {
        .name = "db seed",
        .synopsis = "db seed [--seed-file F] [--tenant NAME] [configuration flags]",
        .summary = "create or upgrade the price and audit stores and load the sample prices "
                   "built into the binary (idempotent)",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
        .config_flags = true,
        .min_args = 1,
        .max_args = 1,
    };
    const struct px_cli_cmd migrate_cmd = {
        .name = "db migrate",
        .synopsis = "db migrate [configuration flags]",
        .summary = "create or upgrade the price and audit stores with the migrations built into "
                   "the binary, loading no prices (idempotent)",
        .config_flags = true,
        .min_args = 1,
        .max_args = 1,
    };
    const struct px_cli_cmd db_cmd = {
        .name = "db",
        .synopsis = "db migrate|seed [--seed-file F] [configuration flags]",
        .summary = "migrate: create or upgrade the stores; seed: that, then load the sample "
                   "prices (both idempotent, both need no files beside the binary)",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
        .config_flags = true,
        .min_args = 1,
        .max_args = 1,
    };
    /* The action picks the usage --help prints and the flags allowed; flags
     * before the action fall back to the command-wide table. */
    const struct px_cli_cmd *cmd = &db_cmd;
    if (argc > 0 && strcmp(argv[0], "seed") == 0)
        cmd = &seed_cmd;
    else if (argc > 0 && strcmp(argv[0], "migrate") == 0)
        cmd = &migrate_cmd;
    struct px_config cfg;
    const char *args[1];
    size_t nargs;
    int st = px_cli_parse(cmd, argc, argv, &cfg, args, &nargs);
    if (st >= 0)
        return st;
    bool seed = strcmp(args[0], "seed") == 0;
    if (!seed && strcmp(args[0], "migrate") != 0) {
        fprintf(stderr, "pricing db: unknown action \"%.64s\" (migrate or seed)\n", args[0]);
        px_cli_usage(&db_cmd, stderr);
        return PX_EXIT_USAGE;
    }
    if (!seed && (seed_file || tenant)) {
        fprintf(stderr, "pricing db migrate: %s belongs to db seed\n",
                seed_file ? "--seed-file" : "--tenant");
        px_cli_usage(&migrate_cmd, stderr);
        return PX_EXIT_USAGE;
    }
    if (tenant && !px_tenant_valid(tenant)) {
        fprintf(stderr,
                "pricing db seed: --tenant: \"%.64s\" is not a tenant name (1-64 of "
                "a-z 0-9 -)\n",
                tenant);
        return PX_EXIT_USAGE;
    }
    const char *what = seed ? "db seed" : "db migrate";
    px_log_set_fd(STDERR_FILENO);
    px_log_init(cfg.log_level, seed ? "db-seed" : "db-migrate");

    char err[1024];
    int e = 0;
    if (strncmp(cfg.price_db, "sqlite:", 7) == 0)
        e = px_fs_make_parent(cfg.price_db + 7, 0755);
    if (!e && strncmp(cfg.product_store, "sqlite:", 7) == 0)
        e = px_fs_make_parent(cfg.product_store + 7, 0755);
    if (!e && strncmp(cfg.audit_store, "sqlite:", 7) == 0)
        e = px_fs_make_parent(cfg.audit_store + 7, 0755);
    if (!e && strncmp(cfg.config_store, "sqlite:", 7) == 0)
        e = px_fs_make_parent(cfg.config_store + 7, 0755);
    if (e) {
        fprintf(stderr, "pricing %s: cannot create the store directory: %s\n", what, strerror(e));
        return PX_EXIT_FAIL;
    }

    const struct px_price_opts popts = {
        .pool_size = 1, .timeout_ms = cfg.price_timeout_ms * 10, .create = true};
    struct px_price_store *prices = NULL;
    if (px_price_open(cfg.price_db, &popts, &prices, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing %s: %s\n", what, err);
        return PX_EXIT_FAIL;
    }
    px_rc rc;
    if (!seed)
        rc = px_price_migrate(prices, err, sizeof(err));
    else if (seed_file)
        rc = px_price_seed_in(prices, tenant, seed_file, err, sizeof(err));
    else
        rc = px_price_seed_sql_in(prices, tenant, px_sql_assets_seed.name, px_sql_assets_seed.text,
                                  err, sizeof(err));
    px_price_close(prices);
    if (rc) {
        fprintf(stderr, "pricing %s: %s\n", what, err);
        return PX_EXIT_FAIL;
    }
    if (!seed)
        printf("prices: schema ready\n");
    else if (seed_file)
        printf("prices: schema ready, %s loaded%s%s\n", seed_file, tenant ? " into tenant " : "",
               tenant ? tenant : "");
    else
        printf("prices: schema ready, built-in sample prices (%s) loaded%s%s\n",
               px_sql_assets_seed.name, tenant ? " into tenant " : "", tenant ? tenant : "");

    /* CONTRACT §11: the embedded default trail gets a signing key of its own
     * when none is configured, so its checkpoints are signed from the start. */
    if (!cfg.signing_key[0] && strcmp(cfg.audit_store, px_config_defaults.audit_store) == 0 &&
        access(PX_DEFAULT_SIGNING_KEY, F_OK) != 0) {
        char prefix[] = PX_DEFAULT_SIGNING_KEY;
        prefix[sizeof(prefix) - 5] = '\0'; /* without ".key" */
        if (px_chain_keygen(prefix, err, sizeof(err)) != PX_OK) {
            fprintf(stderr, "pricing %s: cannot create the audit signing key: %s\n", what, err);
            return PX_EXIT_FAIL;
        }
        printf("audit: no AUDIT_SIGNING_KEY_FILE set; created signing key %s (public key "
               "%s.pub)\n",
               PX_DEFAULT_SIGNING_KEY, prefix);
    }
    struct px_audit_opts aopts = px_cli_audit_opts(&cfg);
    aopts.timeout_ms *= 10;
    aopts.create = true;
    aopts.must_exist = false;
    struct px_audit_store *audit = px_cli_audit_open(what, &cfg, &aopts);
    if (!audit)
        return PX_EXIT_FAIL;
    px_audit_close(audit);
    printf("audit: store ready\n");
    if (products(what, &cfg, seed, tenant))
        return PX_EXIT_FAIL;
    return config_items(what, &cfg) ? PX_EXIT_FAIL : PX_EXIT_OK;
}
