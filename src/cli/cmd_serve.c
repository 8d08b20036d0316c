/* cmd_serve.c: `pricing serve`, the local API server (sam local start-api). */
#include "cli.h"
#include "kernel/app.h"
#include "kernel/auth.h"
#include "kernel/log.h"
#include "transport/http_server.h"

/* AUTH_MODE=none only on loopback, unless the operator says otherwise out
 * loud; apigw needs an API Gateway in front, which serve never has. */
static int check_access_control(const struct px_config *cfg, bool insecure_no_auth)
{
    if (cfg->auth_mode == PX_AUTH_APIGW) {
        fprintf(stderr, "pricing serve: AUTH_MODE (--auth): apigw trusts claims that API Gateway "
                        "puts in Lambda events, and serve receives none: use jwt or none\n");
        return PX_EXIT_USAGE;
    }
    if (cfg->auth_mode != PX_AUTH_NONE || px_auth_host_is_loopback(cfg->host))
        return -1;
    if (!insecure_no_auth) {
        fprintf(stderr,
                "pricing serve: --host %.64s is not a loopback address and AUTH_MODE is none: "
                "use --auth jwt (with --jwt-secret-file or --jwks-file), or --insecure-no-auth "
                "to serve without access control\n",
                cfg->host);
        return PX_EXIT_USAGE;
    }
    PX_WARN(NULL,
            "serving %.64s without access control (AUTH_MODE=none, --insecure-no-auth): anyone "
            "who reaches the port can read prices and the audit trail",
            cfg->host);
    return -1;
}

int px_cmd_serve(int argc, char **argv)
{
    bool insecure_no_auth = false;
    const struct px_cli_flag flags[] = {
        {"--insecure-no-auth", false, NULL, &insecure_no_auth,
         "allow AUTH_MODE=none on a non-loopback address (warns at every start)"},
    };
    const struct px_cli_cmd cmd = {
        .name = "serve",
        .synopsis = "serve [--host H] [--port P] [--auth none|jwt] [--insecure-no-auth] "
                    "[configuration flags]",
        .summary = "serve every function's routes over HTTP (default 127.0.0.1:3000)",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
        .config_flags = true,
    };
    struct px_config cfg;
    const char *args[1];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, &cfg, args, &nargs);
    if (st >= 0)
        return st;
    px_log_init(cfg.log_level, "pricing");
    st = check_access_control(&cfg, insecure_no_auth);
    if (st >= 0)
        return st;

    struct px_app *app = px_cli_app_new("serve", &cfg);
    if (!app)
        return PX_EXIT_USAGE;
    char err[1024] = "";
    const struct px_http_opts opts = {
        .host = cfg.host,
        .port = (unsigned)cfg.port,
        .threads = (unsigned)cfg.threads,
        .max_connections = (unsigned)cfg.max_connections,
        .max_connections_per_ip = (unsigned)cfg.max_conns_per_ip,
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
