/* cmd_db.c: `pricing db seed`: create both stores and load the sample prices. */
#include "cli.h"
#include "kernel/fs.h"
#include "kernel/log.h"
#include "store/audit.h"
#include "store/price.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SEED "infra/seed/prices.sql"

/* The seed file: the flag, else ./infra/seed/prices.sql, else next to the
 * source tree the binary was built in (build/pricing -> ../infra/...). */
static const char *seed_path(const char *flag, char *buf, size_t len)
{
    if (flag)
        return flag;
    if (access(DEFAULT_SEED, R_OK) == 0)
        return DEFAULT_SEED;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            int m = snprintf(buf, len, "%s/../%s", exe, DEFAULT_SEED);
            if (m > 0 && (size_t)m < len && access(buf, R_OK) == 0)
                return buf;
        }
    }
    return DEFAULT_SEED;
}

int px_cmd_db(int argc, char **argv)
{
    const char *seed_file = NULL;
    const struct px_cli_flag flags[] = {
        {"--seed-file", true, &seed_file, NULL, "SQL file of prices (default " DEFAULT_SEED ")"},
    };
    const struct px_cli_cmd cmd = {
        .name = "db",
        .synopsis = "db seed [--seed-file F] [configuration flags]",
        .summary = "create the price and audit stores (idempotent) and load the sample prices",
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
    if (strcmp(args[0], "seed") != 0) {
        fprintf(stderr, "pricing db: unknown action \"%.64s\" (seed)\n", args[0]);
        px_cli_usage(&cmd, stderr);
        return PX_EXIT_USAGE;
    }
    px_log_set_fd(STDERR_FILENO);
    px_log_init(cfg.log_level, "db-seed");

    char err[1024], pathbuf[PATH_MAX];
    const char *sql = seed_path(seed_file, pathbuf, sizeof(pathbuf));
    int e = 0;
    if (strncmp(cfg.price_db, "sqlite:", 7) == 0)
        e = px_fs_make_parent(cfg.price_db + 7, 0755);
    if (!e && strncmp(cfg.audit_store, "sqlite:", 7) == 0)
        e = px_fs_make_parent(cfg.audit_store + 7, 0755);
    if (e) {
        fprintf(stderr, "pricing db seed: cannot create the store directory: %s\n", strerror(e));
        return PX_EXIT_FAIL;
    }

    const struct px_price_opts popts = {
        .pool_size = 1, .timeout_ms = cfg.price_timeout_ms * 10, .create = true};
    struct px_price_store *prices = NULL;
    if (px_price_open(cfg.price_db, &popts, &prices, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing db seed: %s\n", err);
        return PX_EXIT_FAIL;
    }
    px_rc rc = px_price_seed(prices, sql, err, sizeof(err));
    px_price_close(prices);
    if (rc) {
        fprintf(stderr, "pricing db seed: %s\n", err);
        return PX_EXIT_FAIL;
    }
    printf("prices: schema ready, %s loaded\n", sql);

    struct px_audit_opts aopts = px_cli_audit_opts(&cfg);
    aopts.timeout_ms *= 10;
    aopts.create = true;
    aopts.must_exist = false;
    struct px_audit_store *audit = px_cli_audit_open("db seed", &cfg, &aopts);
    if (!audit)
        return PX_EXIT_FAIL;
    px_audit_close(audit);
    printf("audit: store ready\n");
    return PX_EXIT_OK;
}
