/* cmd_generate.c: `pricing generate-event apigateway aws-proxy|http-api`. */
#include "cli.h"
#include "kernel/apigw.h"

#include <string.h>

int px_cmd_generate_event(int argc, char **argv)
{
    const char *path = "/price", *query = "", *method = "GET", *body = NULL;
    const struct px_cli_flag flags[] = {
        {"--path", true, &path, NULL, "request path (default /price)"},
        {"--query", true, &query, NULL, "raw query string, e.g. 'id=PROD-101&userId=...'"},
        {"--method", true, &method, NULL, "HTTP method (default GET)"},
        {"--body", true, &body, NULL, "request body"},
    };
    const struct px_cli_cmd cmd = {
        .name = "generate-event",
        .synopsis = "generate-event apigateway aws-proxy|http-api [--path P] [--query Q] "
                    "[--method M] [--body B]",
        .summary = "print an API Gateway proxy event (REST 1.0 or HTTP API 2.0) for invoke",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
        .min_args = 2,
        .max_args = 2,
    };
    const char *args[2];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, NULL, args, &nargs);
    if (st >= 0)
        return st;
    enum px_apigw_format fmt;
    if (strcmp(args[0], "apigateway") != 0) {
        fprintf(stderr, "pricing generate-event: unknown service \"%.64s\" (apigateway)\n",
                args[0]);
        return PX_EXIT_USAGE;
    }
    if (strcmp(args[1], "aws-proxy") == 0)
        fmt = PX_APIGW_V1;
    else if (strcmp(args[1], "http-api") == 0)
        fmt = PX_APIGW_V2;
    else {
        fprintf(stderr, "pricing generate-event: unknown event \"%.64s\" (aws-proxy, http-api)\n",
                args[1]);
        return PX_EXIT_USAGE;
    }
    if (path[0] != '/') {
        fprintf(stderr, "pricing generate-event: --path must start with /\n");
        return PX_EXIT_USAGE;
    }
    struct px_buf out;
    px_buf_init(&out, PX_MAX_EVENT);
    px_rc rc = px_apigw_generate(fmt, method, path, query, body, &out);
    if (rc) {
        fprintf(stderr, "pricing generate-event: %s (check --query encoding)\n", px_strerror(rc));
        px_buf_free(&out);
        return PX_EXIT_USAGE;
    }
    fwrite(out.data, 1, out.len, stdout);
    fputc('\n', stdout);
    px_buf_free(&out);
    return PX_EXIT_OK;
}
