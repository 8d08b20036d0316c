/* cmd_events.c: `pricing events list [--failed]`, `pricing events retry ID`
 * and `pricing events relay` (CONTRACT §10; src/events/relay.h). */
#include "cli.h"
#include "events/relay.h"
#include "kernel/log.h"
#include "kernel/metrics.h"
#include "kernel/validate.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_MAX 1000000 /* rows per outbox printed by one `events list` */

static volatile sig_atomic_t stop_requested;

#define PING_EVERY_MS 5000 /* an idle relay checks its sink this often (readiness) */
#define METRICS_CAP   (64 * 1024)

/* The sink answered at the last publish or check: what /ready reports. */
static atomic_bool sink_ok;

#ifdef PX_HAVE_SERVER
#include <microhttpd.h>

/* The relay's own GET /health, /ready (503 while the sink cannot be reached)
 * and /metrics on --port: one thread, loopback unless --host says otherwise. */
static enum MHD_Result on_http(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_len, void **state)
{
    PX_UNUSED(cls);
    PX_UNUSED(version);
    PX_UNUSED(upload);
    PX_UNUSED(upload_len);
    PX_UNUSED(state);
    struct px_buf b;
    unsigned status = 200;
    const char *ctype = "application/json";
    px_buf_init(&b, METRICS_CAP);
    px_rc rc;
    if (strcmp(method, "GET") != 0) {
        status = 405;
        rc = px_buf_adds(&b, "{\"error\":{\"code\":\"METHOD_NOT_ALLOWED\","
                             "\"message\":\"method not allowed\"}}");
    } else if (strcmp(url, "/health") == 0) {
        rc = px_buf_adds(&b, "{\"status\":\"ok\"}");
    } else if (strcmp(url, "/ready") == 0) {
        bool ok = atomic_load(&sink_ok);
        status = ok ? 200 : 503;
        rc = px_buf_adds(&b, ok ? "{\"status\":\"ready\"}"
                                : "{\"error\":{\"code\":\"DEPENDENCY_UNAVAILABLE\","
                                  "\"message\":\"the event sink is unreachable\","
                                  "\"details\":[{\"field\":\"eventSink\","
                                  "\"reason\":\"unreachable\"}]}}");
    } else if (strcmp(url, "/metrics") == 0) {
        ctype = "text/plain; version=0.0.4";
        rc = px_metrics_render(&b);
    } else {
        status = 404;
        rc = px_buf_adds(&b, "{\"error\":{\"code\":\"ROUTE_NOT_FOUND\","
                             "\"message\":\"no such route\"}}");
    }
    if (rc)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b.len, b.data ? b.data : (char *)"", MHD_RESPMEM_MUST_COPY);
    px_buf_free(&b);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result q = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return q;
}

static struct MHD_Daemon *http_start(long port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY,
                            (uint16_t)port, NULL, NULL, on_http, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                            MHD_OPTION_END);
}

static void http_stop(struct MHD_Daemon *d)
{
    if (d)
        MHD_stop_daemon(d);
}
#else
struct MHD_Daemon;
static struct MHD_Daemon *http_start(long port)
{
    PX_UNUSED(port);
    return NULL;
}
static void http_stop(struct MHD_Daemon *d)
{
    PX_UNUSED(d);
}
#endif

static void on_stop(int sig)
{
    PX_UNUSED(sig);
    stop_requested = 1;
}

static int open_outboxes(const struct px_config *cfg, struct px_outbox **ob, size_t *n)
{
    const char *specs[PX_RELAY_MAX_OUTBOXES];
    size_t k = px_events_outbox_specs(cfg, specs, PX_COUNTOF(specs));
    char err[512];
    *n = 0;
    for (size_t i = 0; i < k; i++) {
        if (px_outbox_open(specs[i], cfg, 5000, &ob[*n], err, sizeof(err)) != PX_OK) {
            fprintf(stderr, "pricing events: %s\n", err);
            for (size_t j = 0; j < *n; j++)
                px_outbox_close(ob[j]);
            return PX_EXIT_FAIL;
        }
        (*n)++;
    }
    return PX_EXIT_OK;
}

static int list(const struct px_config *cfg, bool failed)
{
    struct px_outbox *ob[PX_RELAY_MAX_OUTBOXES];
    size_t n = 0;
    int st = open_outboxes(cfg, ob, &n);
    for (size_t i = 0; !st && i < n; i++) {
        struct px_outbox_row *rows = NULL;
        size_t k = 0;
        px_rc rc = px_outbox_list(ob[i], failed, LIST_MAX, &rows, &k);
        if (rc) {
            fprintf(stderr, "pricing events: cannot read the outbox of %s: %s\n",
                    px_outbox_name(ob[i]), px_strerror(rc));
            st = PX_EXIT_FAIL;
        }
        for (size_t j = 0; !st && j < k; j++) {
            struct px_buf b;
            px_buf_init(&b, PX_EVENT_MAX_JSON + 1024);
            rc = px_buf_printf(&b, "{\"status\":\"%s\",\"attempts\":%ld,",
                               px_outbox_status_name(rows[j].status), rows[j].attempts);
            if (!rc && rows[j].error[0]) {
                rc = px_buf_adds(&b, "\"lastError\":");
                if (!rc)
                    rc = px_buf_json_strz(&b, rows[j].error);
                if (!rc)
                    rc = px_buf_adds(&b, ",");
            }
            if (!rc)
                rc = px_buf_printf(&b, "\"event\":%s}", rows[j].event);
            if (rc || !px_cli_print_line(b.data, b.len))
                st = PX_EXIT_FAIL;
            px_buf_free(&b);
        }
        px_outbox_rows_free(rows, k);
    }
    for (size_t i = 0; i < n; i++)
        px_outbox_close(ob[i]);
    return st;
}

static int retry(const struct px_config *cfg, const char *id)
{
    struct px_outbox *ob[PX_RELAY_MAX_OUTBOXES];
    size_t n = 0;
    if (!px_valid_uuid(id)) {
        fprintf(stderr, "pricing events retry: ID must be an event id (UUID)\n");
        return PX_EXIT_USAGE;
    }
    int st = open_outboxes(cfg, ob, &n);
    px_rc found = PX_ERR_NOT_FOUND;
    for (size_t i = 0; !st && i < n && found == PX_ERR_NOT_FOUND; i++)
        found = px_outbox_retry(ob[i], id);
    for (size_t i = 0; i < n; i++)
        px_outbox_close(ob[i]);
    if (st)
        return st;
    if (found == PX_ERR_NOT_FOUND)
        fprintf(stderr, "pricing events retry: no event %s\n", id);
    else if (found == PX_ERR_CONFLICT)
        fprintf(stderr, "pricing events retry: event %s was sent already\n", id);
    else if (found)
        fprintf(stderr, "pricing events retry: %s\n", px_strerror(found));
    else
        fprintf(stderr, "pricing events retry: %s waits again\n", id);
    return found ? PX_EXIT_FAIL : PX_EXIT_OK;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal ends it early: on purpose */
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int relay(const struct px_config *cfg, bool once, const char *port_s)
{
    char err[1024];
    struct px_sink *sink = NULL;
    struct px_relay *r = NULL;
    int st = PX_EXIT_OK;
    px_log_init(cfg->log_level, "event-relay");
    if (strcmp(cfg->event_sink, "none") == 0 || !cfg->event_sink[0]) {
        fprintf(stderr, "pricing events relay: EVENT_SINK is none: events stay in the outbox "
                        "(set EVENT_SINK to amqp://..., sqs:QUEUE_URL or sns:TOPIC_ARN)\n");
        return PX_EXIT_USAGE;
    }
    px_rc rc = px_sink_open(cfg->event_sink, cfg, &sink, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "pricing events relay: %s\n", err);
        return rc == PX_ERR_CONFIG ? PX_EXIT_USAGE : PX_EXIT_FAIL;
    }
    const struct px_relay_opts opts = {
        .max_attempts = cfg->event_max_attempts,
        .base_ms = cfg->event_retry_base_ms,
        .cap_ms = cfg->event_retry_cap_ms,
        .lease_ms = cfg->event_lease_ms,
        .batch = cfg->event_batch,
    };
    rc = px_relay_new(cfg, &opts, sink, &r, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "pricing events relay: %s\n", err);
        px_sink_close(sink);
        return PX_EXIT_FAIL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop; /* no SA_RESTART: the idle sleep ends at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    px_metrics_events(0, 0, 0);
    /* Connects now (AMQP: declares the exchange), so that consumers can bind
     * before the first event; a broker that is down only delays publishing. */
    bool up = px_sink_ping(sink, err, sizeof(err)) == PX_OK;
    atomic_store(&sink_ok, up);
    if (!up)
        PX_WARN(NULL, "events: %s not reachable yet: %s", px_sink_kind(sink), err);
    struct MHD_Daemon *http = NULL;
    if (port_s) {
        char *end = NULL;
        long port = strtol(port_s, &end, 10);
        if (!end || *end || port < 1 || port > 65535 || !(http = http_start(port))) {
            fprintf(stderr, "pricing events relay: --port: cannot serve on 127.0.0.1:%.16s%s\n",
                    port_s,
#ifdef PX_HAVE_SERVER
                    ""
#else
                    " (built without the HTTP server)"
#endif
            );
            px_relay_free(r);
            px_sink_close(sink);
            return PX_EXIT_USAGE;
        }
    }
    PX_INFO(NULL, "events: relay publishing to %s", px_sink_kind(sink));
    int64_t last_check = mono_ms();
    while (!stop_requested) {
        size_t published = 0;
        struct px_relay_stats before, after;
        px_relay_stats(r, &before);
        rc = px_relay_round(r, &published); /* a whole batch, even after SIGTERM */
        px_relay_stats(r, &after);
        if (published)
            atomic_store(&sink_ok, true);
        else if (after.failed > before.failed)
            atomic_store(&sink_ok, false);
        if (px_relay_refresh(r) == PX_OK && published)
            PX_DEBUG(NULL, "events: %zu published", published);
        if (once && (rc || !published))
            break;
        if (!published && mono_ms() - last_check >= PING_EVERY_MS) {
            atomic_store(&sink_ok, px_sink_ping(sink, err, sizeof(err)) == PX_OK);
            last_check = mono_ms();
        }
        if (!published && !stop_requested)
            sleep_ms(cfg->event_poll_ms);
    }
    http_stop(http);
    struct px_relay_stats s;
    px_relay_stats(r, &s);
    PX_INFO(NULL, "events: relay stops: %lld published, %lld failed attempts, %lld parked",
            (long long)s.published, (long long)s.failed, (long long)s.parked);
    if (once && rc)
        st = PX_EXIT_FAIL;
    px_relay_free(r);
    px_sink_close(sink);
    return st;
}

int px_cmd_events(int argc, char **argv)
{
    bool failed = false, once = false;
    const char *port = NULL;
    const struct px_cli_flag flags[] = {
        {"--failed", false, NULL, &failed, "list: only parked events"},
        {"--once", false, NULL, &once,
         "relay: publish until nothing is due, then exit (1 when an outbox failed)"},
        {"--port", true, &port, NULL,
         "relay: serve GET /health, /ready (503 while the sink is unreachable) and /metrics on "
         "127.0.0.1:PORT"},
    };
    const struct px_cli_cmd cmd = {
        .name = "events",
        .synopsis = "events list [--failed] | events retry ID | events relay [--once] [--port P]",
        .summary = "the outbox of domain events: print it (JSON lines), re-queue a parked "
                   "event, or publish to EVENT_SINK until SIGTERM",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
        .config_flags = true,
        .min_args = 1,
        .max_args = 2,
    };
    struct px_config cfg;
    const char *args[2];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, &cfg, args, &nargs);
    if (st >= 0)
        return st;
    if (strcmp(args[0], "list") == 0 && nargs == 1)
        return list(&cfg, failed);
    if (strcmp(args[0], "retry") == 0 && nargs == 2)
        return retry(&cfg, args[1]);
    if (strcmp(args[0], "relay") == 0 && nargs == 1)
        return relay(&cfg, once, port);
    px_cli_usage(&cmd, stderr);
    return PX_EXIT_USAGE;
}
