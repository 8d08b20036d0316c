/* cli.h: shared pieces of the sub-commands: flag parsing that understands
 * the configuration flags of config.h, and the commands' entry points.
 * Each command returns the process exit status; only main() exits. */
#ifndef PX_CLI_H
#define PX_CLI_H

#include "kernel/config.h"

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

int px_cmd_serve(int argc, char **argv);
int px_cmd_invoke(int argc, char **argv);
int px_cmd_db(int argc, char **argv);
int px_cmd_audit(int argc, char **argv);
int px_cmd_generate_event(int argc, char **argv);
int px_cmd_token(int argc, char **argv);
int px_cmd_smoke(int argc, char **argv);
int px_cmd_lambda(int argc, char **argv);
int px_cmd_emulate(int argc, char **argv);

#endif
