/* cmd_db.c: `pricing db migrate` creates or upgrades both stores; `pricing db
 * seed` does that and loads the sample prices. Migrations and sample prices
 * are built into the binary (store/sql_assets.h), so both run from any
 * directory; --seed-file loads a file instead. */
#include "cli.h"
#include "kernel/fs.h"
#include "kernel/log.h"
#include "store/audit.h"
#include "store/price.h"
#include "store/sql_assets.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int px_cmd_db(int argc, char **argv)
{
    const char *seed_file = NULL;
    const struct px_cli_flag flags[] = {
        {"--seed-file", true, &seed_file, NULL,
         "SQL file of prices to load instead of the built-in sample prices"},
    };
    const struct px_cli_cmd seed_cmd = {
        .name = "db seed",
        .synopsis = "db seed [--seed-file F] [configuration flags]",
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
    if (!seed && seed_file) {
        fprintf(stderr, "pricing db migrate: --seed-file belongs to db seed\n");
        px_cli_usage(&migrate_cmd, stderr);
        return PX_EXIT_USAGE;
    }
    const char *what = seed ? "db seed" : "db migrate";
    px_log_set_fd(STDERR_FILENO);
    px_log_init(cfg.log_level, seed ? "db-seed" : "db-migrate");

    char err[1024];
    int e = 0;
    if (strncmp(cfg.price_db, "sqlite:", 7) == 0)
        e = px_fs_make_parent(cfg.price_db + 7, 0755);
    if (!e && strncmp(cfg.audit_store, "sqlite:", 7) == 0)
        e = px_fs_make_parent(cfg.audit_store + 7, 0755);
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
        rc = px_price_seed(prices, seed_file, err, sizeof(err));
    else
        rc = px_price_seed_sql(prices, px_sql_assets_seed.name, px_sql_assets_seed.text, err,
                               sizeof(err));
    px_price_close(prices);
    if (rc) {
        fprintf(stderr, "pricing %s: %s\n", what, err);
        return PX_EXIT_FAIL;
    }
    if (!seed)
        printf("prices: schema ready\n");
    else if (seed_file)
        printf("prices: schema ready, %s loaded\n", seed_file);
    else
        printf("prices: schema ready, built-in sample prices (%s) loaded\n",
               px_sql_assets_seed.name);

    struct px_audit_opts aopts = px_cli_audit_opts(&cfg);
    aopts.timeout_ms *= 10;
    aopts.create = true;
    aopts.must_exist = false;
    struct px_audit_store *audit = px_cli_audit_open(what, &cfg, &aopts);
    if (!audit)
        return PX_EXIT_FAIL;
    px_audit_close(audit);
    printf("audit: store ready\n");
    return PX_EXIT_OK;
}
