/* cmd_emulate.c: `pricing emulate`, a Lambda execution environment and an
 * API Gateway front without Docker (sam local start-api / sam local invoke). */
#include "cli.h"
#include "kernel/log.h"
#include "transport/emulator.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static bool parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Seconds, with up to three decimals ("3", "0.5"), into milliseconds. */
static bool parse_seconds(const char *s, long *ms)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || *end || !(v >= 0.05 && v <= 900.0))
        return false;
    *ms = (long)(v * 1000.0 + 0.5);
    return true;
}

/* The emulator's own level: LOG_LEVEL when it names one. The rest of the
 * configuration is the child's (a bad value there is its init error to report). */
static enum px_log_level env_level(void)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    const char *v = getenv("LOG_LEVEL");
    for (size_t i = 0; v && i < PX_COUNTOF(names); i++)
        if (strcasecmp(v, names[i]) == 0)
            return (enum px_log_level)i;
    return PX_LOG_INFO;
}

static int run_event(struct px_emulator *e, const char *path)
{
    char *json = NULL;
    size_t len = 0;
    int err = px_cli_read_file(path, PX_MAX_EVENT, &json, &len);
    if (err) {
        fprintf(stderr, "pricing emulate: cannot read event %s: %s\n", path, strerror(err));
        return PX_EXIT_FAIL;
    }
    struct px_emu_outcome o;
    int status = PX_EXIT_FAIL;
    if (px_emulator_invoke(e, json, len, &o) == PX_OK) {
        /* What `sam local invoke` prints: the payload, or the error body. */
        if (px_cli_print_line(o.payload, o.len) && o.result == PX_EMU_RESPONSE)
            status = PX_EXIT_OK;
        px_emu_outcome_free(&o);
    }
    free(json);
    return status;
}

int px_cmd_emulate(int argc, char **argv)
{
    const char *bootstrap = NULL, *handler = NULL, *name = NULL, *host = NULL, *port_s = NULL;
    const char *timeout_s = NULL, *memory_s = NULL, *event = NULL;
    const struct px_cli_flag flags[] = {
        {"--bootstrap", true, &bootstrap, NULL, "the runtime executable to run (required)"},
        {"--handler", true, &handler, NULL, "_HANDLER given to it (default price-fetcher)"},
        {"--function-name", true, &name, NULL, "AWS_LAMBDA_FUNCTION_NAME (default the handler)"},
        {"--host", true, &host, NULL, "address of the API Gateway front (default 127.0.0.1)"},
        {"--port", true, &port_s, NULL, "port of the front (default 3000; 0 = any free port)"},
        {"--timeout", true, &timeout_s, NULL, "seconds per invocation (default 3)"},
        {"--memory", true, &memory_s, NULL, "memory size in MB, also its RSS limit (default 128)"},
        {"--event", true, &event, NULL,
         "run this one event file (- = stdin), print the answer, exit (no front)"},
    };
    const struct px_cli_cmd cmd = {
        .name = "emulate",
        .synopsis = "emulate --bootstrap PATH [--handler NAME] [--host H] [--port P] "
                    "[--timeout S] [--memory MB] [--event FILE]",
        .summary = "run a Lambda bootstrap under a local Runtime API, behind an API Gateway "
                   "(HTTP API 2.0) front",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
    };
    const char *args[1];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, NULL, args, &nargs);
    if (st >= 0)
        return st;
    long port = 3000, timeout_ms = 3000, memory = 128;
    if (!bootstrap) {
        fprintf(stderr, "pricing emulate: --bootstrap is required\n");
        px_cli_usage(&cmd, stderr);
        return PX_EXIT_USAGE;
    }
    if (access(bootstrap, X_OK) != 0) {
        fprintf(stderr, "pricing emulate: --bootstrap %s is not an executable file\n", bootstrap);
        return PX_EXIT_USAGE;
    }
    if ((port_s && !parse_long(port_s, 0, 65535, &port)) ||
        (timeout_s && !parse_seconds(timeout_s, &timeout_ms)) ||
        (memory_s && !parse_long(memory_s, 128, 10240, &memory))) {
        fprintf(stderr, "pricing emulate: --port must be 0..65535, --timeout 0.05..900 seconds, "
                        "--memory 128..10240 MB\n");
        return PX_EXIT_USAGE;
    }
    /* One-event mode keeps stdout for the answer. */
    if (event)
        px_log_set_fd(STDERR_FILENO);
    px_log_init(env_level(), "emulator");

    /* Blocked before any thread exists, so every thread inherits the mask and
     * the signals wait for sigwait() below; the child gets a clean mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    const struct px_emulator_opts opts = {
        .bootstrap = bootstrap,
        .handler = handler,
        .function_name = name,
        .timeout_ms = timeout_ms,
        .memory_mb = memory,
        .child_stdout_to_stderr = event != NULL,
    };
    char err[512];
    struct px_emulator *e = NULL;
    if (px_emulator_start(&opts, &e, err, sizeof(err)) != PX_OK) {
        fprintf(stderr, "pricing emulate: %s\n", err);
        return PX_EXIT_FAIL;
    }
    int status = PX_EXIT_OK;
    if (event) {
        status = run_event(e, event);
    } else {
        unsigned bound = 0;
        px_rc rc = px_emulator_front(e, host, (unsigned)port, &bound, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "pricing emulate: %s\n", err);
            status = rc == PX_ERR_CONFIG ? PX_EXIT_USAGE : PX_EXIT_FAIL;
        } else {
            char addr[300];
            snprintf(addr, sizeof(addr), "%s:%u", host ? host : "127.0.0.1", bound);
            const struct px_kv f[] = {{"address", addr}};
            px_log_fields(PX_LOG_INFO, NULL, "listening", f, PX_COUNTOF(f));
            int sig = 0;
            if (sigwait(&stop, &sig) != 0)
                PX_WARN(NULL, "waiting for signals failed; stopping");
            px_log_fields(PX_LOG_INFO, NULL, "stopping", NULL, 0);
        }
    }
    px_emulator_stop(e);
    return status;
}
