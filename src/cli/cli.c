#include "cli.h"
#include "kernel/app.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void px_cli_usage(const struct px_cli_cmd *cmd, FILE *f)
{
    fprintf(f, "usage: pricing %s\n  %s\n", cmd->synopsis, cmd->summary);
    if (cmd->nflags)
        fprintf(f, "\noptions:\n");
    for (size_t i = 0; i < cmd->nflags; i++)
        fprintf(f, "  %-22s %s\n", cmd->flags[i].name, cmd->flags[i].help);
    if (cmd->config_flags) {
        fprintf(f, "\nconfiguration (flag wins over environment variable):\n");
        px_config_usage(f);
    }
    fprintf(f, "  %-22s %s\n", "--help", "this text");
}

static const struct px_cli_flag *find_flag(const struct px_cli_cmd *cmd, const char *name,
                                           size_t len)
{
    for (size_t i = 0; i < cmd->nflags; i++)
        if (strlen(cmd->flags[i].name) == len && strncmp(cmd->flags[i].name, name, len) == 0)
            return &cmd->flags[i];
    return NULL;
}

static int usage_error(const struct px_cli_cmd *cmd, const char *fmt, const char *what)
{
    fprintf(stderr, "pricing %s: ", cmd->name);
    fprintf(stderr, fmt, what);
    fputc('\n', stderr);
    px_cli_usage(cmd, stderr);
    return PX_EXIT_USAGE;
}

int px_cli_parse(const struct px_cli_cmd *cmd, int argc, char **argv, struct px_config *cfg,
                 const char **args, size_t *nargs)
{
    char err[512];
    *nargs = 0;
    if (cfg && px_config_from_env(cfg, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing: %s\n", err);
        return PX_EXIT_USAGE;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            px_cli_usage(cmd, stdout);
            return PX_EXIT_OK;
        }
        if (strncmp(a, "--", 2) != 0 || strcmp(a, "--") == 0) {
            if (strcmp(a, "--") == 0 && i + 1 < argc)
                a = argv[++i];
            if (*nargs >= cmd->max_args)
                return usage_error(cmd, "unexpected argument \"%.64s\"", a);
            args[(*nargs)++] = a;
            continue;
        }
        /* --name=value or --name value */
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const char *value = eq ? eq + 1 : NULL;
        char name[64];
        if (nlen >= sizeof(name))
            return usage_error(cmd, "unknown option \"%.64s\"", a);
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        const struct px_cli_flag *f = find_flag(cmd, a, nlen);
        bool is_config = false;
        if (!f && cmd->config_flags && cfg) {
            /* Probe: the config table knows whether this is one of its flags. */
            struct px_config probe = *cfg;
            px_rc rc = px_config_set_flag(&probe, name, "", err, sizeof(err));
            is_config = rc != PX_ERR_NOT_FOUND;
        }
        if (!f && !is_config)
            return usage_error(cmd, "unknown option \"%s\"", name);
        bool takes_value = f ? f->takes_value : true;
        if (!takes_value) {
            if (value)
                return usage_error(cmd, "option %s takes no value", name);
        } else if (!value) {
            if (i + 1 >= argc)
                return usage_error(cmd, "option %s needs a value", name);
            value = argv[++i];
        }
        if (f) {
            if (f->value)
                *f->value = value;
            if (f->seen)
                *f->seen = true;
            continue;
        }
        if (px_config_set_flag(cfg, name, value, err, sizeof(err)) != PX_OK) {
            fprintf(stderr, "pricing %s: %s\n", cmd->name, err);
            return PX_EXIT_USAGE;
        }
    }
    if (*nargs < cmd->min_args)
        return usage_error(cmd, "%s", "missing argument");
    if (cfg && px_config_check(cfg, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing: %s\n", err);
        return PX_EXIT_USAGE;
    }
    return -1;
}

int px_cli_read_file(const char *path, size_t cap, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    *out = NULL;
    *len = 0;
    if (!f)
        return errno ? errno : EIO;
    size_t size = 0, alloc = 0;
    char *buf = NULL;
    int rc = 0;
    for (;;) {
        if (size == alloc) {
            if (alloc >= cap + 1) {
                rc = EFBIG;
                break;
            }
            size_t next = alloc ? alloc * 2 : 65536;
            if (next > cap + 1)
                next = cap + 1;
            char *p = realloc(buf, next + 1);
            if (!p) {
                rc = ENOMEM;
                break;
            }
            buf = p;
            alloc = next;
        }
        size_t n = fread(buf + size, 1, alloc - size, f);
        size += n;
        if (n == 0) {
            if (ferror(f))
                rc = EIO;
            break;
        }
    }
    if (!rc && size > cap)
        rc = EFBIG;
    if (f != stdin)
        fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    if (!buf) {
        buf = malloc(1);
        if (!buf)
            return ENOMEM;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return 0;
}

struct px_audit_opts px_cli_audit_opts(const struct px_config *cfg)
{
    const struct px_audit_opts o = {
        .timeout_ms = cfg->audit_timeout_ms,
        .must_exist = !cfg->audit_create,
        .signing_key_file = px_config_signing_key(cfg),
        .region = cfg->aws_region,
        .endpoint = cfg->dynamodb_endpoint,
        .access_key_id = cfg->aws_access_key_id,
        .secret_access_key = cfg->aws_secret_access_key,
        .session_token = cfg->aws_session_token,
    };
    return o;
}

struct px_app *px_cli_app_new(const char *what, const struct px_config *cfg)
{
    char err[1024];
    struct px_app *app = NULL;
    if (px_app_new(cfg, &app, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing %s: %s\n", what, err);
        return NULL;
    }
    return app;
}

struct px_audit_store *px_cli_audit_open(const char *what, const struct px_config *cfg,
                                         const struct px_audit_opts *opts)
{
    char err[1024];
    struct px_audit_store *store = NULL;
    if (px_audit_open(cfg->audit_store, opts, &store, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing %s: %s\n", what, err);
        return NULL;
    }
    return store;
}

bool px_cli_print_line(const char *s, size_t n)
{
    if (s && n)
        fwrite(s, 1, n, stdout);
    fputc('\n', stdout);
    return fflush(stdout) == 0;
}
