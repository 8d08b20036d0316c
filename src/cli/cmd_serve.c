/* cmd_serve.c: `pricing serve`, the local API server (sam local start-api). */
#include "cli.h"
#include "kernel/app.h"
#include "kernel/log.h"
#include "transport/http_server.h"

int px_cmd_serve(int argc, char **argv)
{
    static const struct px_cli_cmd cmd = {
        .name = "serve",
        .synopsis = "serve [--host H] [--port P] [configuration flags]",
        .summary = "serve every function's routes over HTTP (default 127.0.0.1:3000)",
        .config_flags = true,
    };
    struct px_config cfg;
    const char *args[1];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, &cfg, args, &nargs);
    if (st >= 0)
        return st;
    px_log_init(cfg.log_level, "pricing");

    char err[1024];
    struct px_app *app = NULL;
    if (px_app_new(&cfg, &app, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing serve: %s\n", err);
        return PX_EXIT_USAGE;
    }
    const struct px_http_opts opts = {
        .host = cfg.host,
        .port = (unsigned)cfg.port,
        .threads = (unsigned)cfg.threads,
        .max_connections = (unsigned)cfg.max_connections,
        .conn_timeout_s = (unsigned)cfg.conn_timeout_s,
        .max_body = PX_MAX_BODY,
        .max_header_bytes = 32 * 1024,
    };
    px_rc rc = px_http_serve(app, &opts, err, sizeof(err));
    px_app_free(app);
    if (rc) {
        fprintf(stderr, "pricing serve: %s\n", err);
        return rc == PX_ERR_CONFIG ? PX_EXIT_USAGE : PX_EXIT_FAIL;
    }
    return PX_EXIT_OK;
}
