/* cmd_lambda.c: `pricing lambda`, the AWS Lambda custom runtime (also what
 * runs when the binary is named `bootstrap`). Configured by the environment
 * alone, as Lambda configures a function: an init failure is reported to the
 * Runtime API and the process exits non-zero (Lambda restarts it). */
#include "cli.h"
#include "kernel/log.h"
#include "transport/lambda.h"

#include <string.h>

int px_cmd_lambda(int argc, char **argv)
{
    const char *api = NULL, *handler = NULL;
    const struct px_cli_flag flags[] = {
        {"--runtime-api", true, &api, NULL,
         "Runtime API host:port (default $AWS_LAMBDA_RUNTIME_API)"},
        {"--handler", true, &handler, NULL, "function to run (default $_HANDLER)"},
    };
    const struct px_cli_cmd cmd = {
        .name = "lambda",
        .synopsis = "lambda [--runtime-api HOST:PORT] [--handler NAME]",
        .summary = "AWS Lambda custom runtime (provided.al2023); configuration from the "
                   "environment (pricing help for the variables)",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
    };
    const char *args[1];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, NULL, args, &nargs);
    if (st >= 0)
        return st;

    char err[1024] = "";
    struct px_lambda_runtime *rt = NULL;
    const struct px_lambda_opts opts = {.runtime_api = api, .handler = handler};
    px_rc rc = px_lambda_runtime_new(&opts, &rt, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "pricing lambda: %s\n", err);
        return rc == PX_ERR_CONFIG ? PX_EXIT_USAGE : PX_EXIT_FAIL;
    }
    rc = px_lambda_runtime_run(rt);
    px_lambda_runtime_free(rt);
    if (rc) {
        fprintf(stderr, "pricing lambda: the Runtime API ended the loop: %s\n", px_strerror(rc));
        return PX_EXIT_FAIL;
    }
    return PX_EXIT_OK;
}
