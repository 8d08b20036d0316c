/* cli.h: shared pieces of the sub-commands: flag parsing that understands
 * the configuration flags of config.h, and the commands' entry points.
 * Each command returns the process exit status; only main() exits. */
#ifndef PX_CLI_H
#define PX_CLI_H

#include "kernel/config.h"
#include "store/audit.h"

#include <stdio.h>

/* A command-specific flag. value receives argv storage (not copied). */
struct px_cli_flag {
    const char *name; /* "--event" */
    bool takes_value;
    const char **value; /* set when takes_value */
    bool *seen;         /* set when present (may be NULL) */
    const char *help;
};

struct px_cli_cmd {
    const char *name;     /* "serve" */
    const char *synopsis; /* "serve [--host H] [--port P] [config flags]" */
    const char *summary;  /* one line */
    const struct px_cli_flag *flags;
    size_t nflags;
    bool config_flags;         /* accepts the configuration flags of config.h */
    size_t min_args, max_args; /* positional arguments */
};

enum { PX_EXIT_OK = 0, PX_EXIT_FAIL = 1, PX_EXIT_USAGE = 2 };

/* Parses argv (after the command name) into flags, cfg (env first, then
 * flags) and positional args. Returns -1 to go on, or an exit status: 0 after
 * --help, 2 after a usage or configuration error (message already on stderr). */
int px_cli_parse(const struct px_cli_cmd *cmd, int argc, char **argv, struct px_config *cfg,
                 const char **args, size_t *nargs);
/* Prints the command's usage to f. */
void px_cli_usage(const struct px_cli_cmd *cmd, FILE *f);
/* Reads a whole file ("-" = stdin) into a heap buffer the caller frees; at most cap bytes. */
int px_cli_read_file(const char *path, size_t cap, char **out, size_t *len);

/* The audit store options the configuration spells out: its timeout, whether
 * a missing SQLite trail may be created (AUDIT_CREATE) and the DynamoDB
 * settings (strings point into cfg). Commands adjust the rest. */
struct px_audit_opts px_cli_audit_opts(const struct px_config *cfg);
/* px_app_new(cfg); on failure prints "pricing <what>: <reason>" and returns
 * NULL. The caller frees the app with px_app_free(). */
struct px_app *px_cli_app_new(const char *what, const struct px_config *cfg);
/* px_audit_open(cfg->audit_store, opts); on failure prints "pricing <what>:
 * <reason>" and returns NULL. The caller closes it with px_audit_close(). */
struct px_audit_store *px_cli_audit_open(const char *what, const struct px_config *cfg,
                                         const struct px_audit_opts *opts);
/* Writes s[0..n) (nothing when s is NULL) and a newline to stdout, then
 * flushes; false when the line may not have got out. */
bool px_cli_print_line(const char *s, size_t n);

int px_cmd_serve(int argc, char **argv);
int px_cmd_invoke(int argc, char **argv);
int px_cmd_db(int argc, char **argv);
int px_cmd_audit(int argc, char **argv);
int px_cmd_generate_event(int argc, char **argv);
int px_cmd_token(int argc, char **argv);
int px_cmd_smoke(int argc, char **argv);
int px_cmd_lambda(int argc, char **argv);
int px_cmd_emulate(int argc, char **argv);
int px_cmd_events(int argc, char **argv);
/* serve and emulate exist in every build; without PX_SERVER they only say so (main.c). */

/* `pricing audit migrate`: copies every record of the SQLite trail `from`
 * (sqlite:PATH, opened read-only) into the store `to`; verifies by count.
 * Returns a PX_EXIT_* status. */
int px_audit_migrate(const char *from, const char *to, const struct px_config *cfg);
/* `pricing audit export`: the records with from <= ts <= to (NULL open) as
 * JSON lines (compression: "gzip" or NULL, "zstd", "none") under out (a directory, or
 * s3://BUCKET/PREFIX uploaded with PutObject), and a signed digest chained to the previous one
 * there. tenant (a valid name, or NULL for every tenant): only its records (no tenant =
 * "default"), and a "tenant NAME" line in the digest. Returns a PX_EXIT_* status. */
int px_audit_export(const struct px_config *cfg, const char *from, const char *to, const char *out,
                    const char *compression, const char *tenant);
/* `pricing audit verify --export DIR --public-key FILE`: the digest chain and
 * every file it lists, offline. Returns a PX_EXIT_* status. */
int px_audit_verify_export(const char *dir, const char *pubkey);

#endif
