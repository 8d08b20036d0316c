/* cmd_audit.c: `pricing audit query`: who looked at what, as JSON lines;
 * `pricing audit migrate`: copy a SQLite trail into another store. */
#include "cli.h"
#include "kernel/buf.h"
#include "kernel/log.h"
#include "kernel/validate.h"
#include "store/audit.h"
#include "store/config_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int px_cmd_audit(int argc, char **argv)
{
    const char *user = NULL, *product = NULL, *from = NULL, *to = NULL, *limit_s = NULL,
               *cursor = NULL, *config_key = NULL;
    const struct px_cli_flag flags[] = {
        {"--user", true, &user, NULL, "user id (UUID)"},
        {"--product", true, &product, NULL, "product id"},
        {"--config", true, &config_key, NULL,
         "config key: its CONFIG_CHANGE records (sqlite: audit stores)"},
        {"--from", true, &from, NULL,
         "query: RFC 3339 UTC lower bound (inclusive); migrate: sqlite:PATH"},
        {"--to", true, &to, NULL,
         "query: RFC 3339 UTC upper bound (inclusive); migrate: store spec"},
        {"--limit", true, &limit_s, NULL, "records per page, 1-1000 (default 100)"},
        {"--cursor", true, &cursor, NULL, "continue after a previous page"},
    };
    const struct px_cli_cmd cmd = {
        .name = "audit",
        .synopsis = "audit query --user UUID | --product ID | --config KEY [--from TS] [--to TS] "
                    "[--limit N] "
                    "[--cursor C] | audit migrate --from sqlite:OLD --to SPEC | audit count",
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
    if (strcmp(args[0], "migrate") == 0) {
        if (!from || !to) {
            fprintf(stderr, "pricing audit: migrate needs --from sqlite:OLD and --to SPEC\n");
            return PX_EXIT_USAGE;
        }
        return px_audit_migrate(from, to, &cfg);
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
        bad = "unknown action (query, migrate, count)";
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
