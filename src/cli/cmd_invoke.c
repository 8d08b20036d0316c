/* cmd_invoke.c: `pricing invoke FUNCTION --event FILE` (sam local invoke -e). */
#include "cli.h"
#include "kernel/app.h"
#include "kernel/buf.h"
#include "kernel/log.h"
#include "transport/invoke.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int px_cmd_invoke(int argc, char **argv)
{
    const char *event = NULL;
    const struct px_cli_flag flags[] = {
        {"--event", true, &event, NULL, "API Gateway proxy event file (- = stdin)"},
    };
    const struct px_cli_cmd cmd = {
        .name = "invoke",
        .synopsis = "invoke FUNCTION --event FILE [configuration flags]",
        .summary = "run one API Gateway event through FUNCTION and print the proxy response",
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
    if (!event) {
        fprintf(stderr, "pricing invoke: --event is required\n");
        px_cli_usage(&cmd, stderr);
        return PX_EXIT_USAGE;
    }
    if (!px_function_find(args[0])) {
        size_t n;
        const struct px_function *const *fns = px_functions(&n);
        fprintf(stderr, "pricing invoke: unknown function \"%.64s\" (known:", args[0]);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", fns[i]->name);
        fprintf(stderr, ")\n");
        return PX_EXIT_USAGE;
    }
    /* stdout carries the response line alone; logs go to stderr, as sam local does. */
    px_log_set_fd(STDERR_FILENO);
    px_log_init(cfg.log_level, args[0]);

    char *json = NULL;
    size_t len = 0;
    int e = px_cli_read_file(event, PX_MAX_EVENT, &json, &len);
    if (e) {
        fprintf(stderr, "pricing invoke: cannot read event %s: %s\n", event, strerror(e));
        return PX_EXIT_FAIL;
    }
    struct px_app *app = px_cli_app_new("invoke", &cfg);
    if (!app) {
        free(json);
        return PX_EXIT_USAGE;
    }
    struct px_buf out;
    px_buf_init(&out, PX_MAX_EVENT + 64 * 1024);
    px_rc rc = px_invoke_event(app, args[0], json, len, NULL, 0, &out, NULL);
    int status = PX_EXIT_OK;
    if (rc == PX_ERR_INVALID) {
        fprintf(stderr, "pricing invoke: %s is not an API Gateway proxy event\n", event);
        status = PX_EXIT_FAIL;
    } else if (rc) {
        fprintf(stderr, "pricing invoke: %s\n", px_strerror(rc));
        status = PX_EXIT_FAIL;
    } else if (!px_cli_print_line(out.data, out.len)) {
        status = PX_EXIT_FAIL;
    }
    px_buf_free(&out);
    px_app_free(app);
    free(json);
    return status;
}
