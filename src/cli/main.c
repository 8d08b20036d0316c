/* main.c: the one binary. Picks the sub-command; only this file exits. */
#include "cli.h"
#include "kernel/ossl.h"
#include "kernel/px.h"
#include "store/sqlite_store.h"

#include <stdlib.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

#ifndef PX_HAVE_SERVER
/* The Lambda build (PX_SERVER=OFF) leaves libmicrohttpd out, and with it the
 * commands that serve HTTP: they stay listed so that their absence is explained. */
static int not_built(const char *name)
{
    fprintf(stderr,
            "pricing %s: not in this build (built without the HTTP server, PX_SERVER=OFF: "
            "the Lambda package); use a development build\n",
            name);
    return PX_EXIT_USAGE;
}

int px_cmd_serve(int argc, char **argv)
{
    PX_UNUSED(argc);
    PX_UNUSED(argv);
    return not_built("serve");
}

int px_cmd_emulate(int argc, char **argv)
{
    PX_UNUSED(argc);
    PX_UNUSED(argv);
    return not_built("emulate");
}
#endif

static const struct command commands[] = {
    {"serve", px_cmd_serve, "local API server (sam local start-api without Docker)"},
    {"invoke", px_cmd_invoke, "run one API Gateway event through a function"},
    {"lambda", px_cmd_lambda, "AWS Lambda custom runtime (also as `bootstrap`)"},
    {"emulate", px_cmd_emulate, "Lambda Runtime API emulator + API Gateway front, no Docker"},
    {"db", px_cmd_db, "db migrate: create or upgrade the stores; db seed: also load sample prices"},
    {"events", px_cmd_events, "events list | retry ID | relay: the outbox of domain events"},
    {"audit", px_cmd_audit, "audit query: who looked at what, when"},
    {"smoke", px_cmd_smoke, "read-only checks of a deployed API (after every deployment)"},
    {"generate-event", px_cmd_generate_event, "print an API Gateway proxy event"},
    {"token", px_cmd_token, "mint an HS256 bearer token for local development and tests"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "this text"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: pricing COMMAND [options]   (pricing COMMAND --help for more)\n\n");
    for (size_t i = 0; i < PX_COUNTOF(commands); i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
}

static int cmd_version(int argc, char **argv)
{
    PX_UNUSED(argv);
    if (argc > 0 && strcmp(argv[0], "--help") == 0) {
        printf("usage: pricing version\n  print the version\n");
        return PX_EXIT_OK;
    }
    if (argc > 0) {
        fprintf(stderr, "usage: pricing version\n");
        return PX_EXIT_USAGE;
    }
    printf("pricing %s\n", PX_VERSION);
    return PX_EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
    PX_UNUSED(argc);
    PX_UNUSED(argv);
    usage(stdout);
    return PX_EXIT_OK;
}

/* The last path component of argv[0]. */
static const char *base_name(const char *p)
{
    const char *slash = p ? strrchr(p, '/') : NULL;
    return slash ? slash + 1 : p ? p : "";
}

int main(int argc, char **argv)
{
    /* Before any command: libcurl, SigV4 and JWT all use OpenSSL. */
    if (px_ossl_init() != PX_OK) {
        fputs("pricing: cannot initialise OpenSSL\n", stderr);
        return PX_EXIT_FAIL;
    }
    px_sqlite_init();
    /* Lambda runs a custom runtime as `bootstrap` with no arguments; flags
     * alone still mean the runtime, a sub-command name means that command. */
    if (argc >= 1 && strcmp(base_name(argv[0]), "bootstrap") == 0 &&
        (argc < 2 || argv[1][0] == '-'))
        return px_cmd_lambda(argc - 1, argv + 1);
    if (argc < 2) {
        const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
        if (api && api[0])
            return px_cmd_lambda(0, argv + argc);
        usage(stderr);
        return PX_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(0, NULL);
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(0, NULL);
    for (size_t i = 0; i < PX_COUNTOF(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "pricing: unknown command \"%.64s\"\n\n", argv[1]);
    usage(stderr);
    return PX_EXIT_USAGE;
}
