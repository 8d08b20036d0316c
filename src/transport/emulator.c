/* emulator.c: Runtime API server, child supervisor and API Gateway front
 * (see emulator.h and docs/internals/lambda.md).
 *
 * One mutex guards the whole state: the queue of invocations, the one being
 * run (`current`), the child's life. Three kinds of threads touch it:
 *  - Runtime API connections (libmicrohttpd, thread per connection): /next
 *    blocks on the condition variable until an invocation is queued, the
 *    posts complete `current`;
 *  - the supervisor: reaps the child (waitpid under the same mutex, so a
 *    kill never reaches a recycled pid), enforces the time-out, the init
 *    limit and the memory size, starts the child when work is queued;
 *  - the front (libmicrohttpd, one polling thread): builds the event,
 *    suspends the connection, queues the invocation; completion resumes it.
 * Completion callbacks (which resume front connections) run after the mutex
 * is released. Invocations belong to their submitter, never to the emulator. */
#include "emulator.h"
#include "lambda.h"
#include "kernel/app.h"
#include "kernel/arena.h"
#include "kernel/b64.h"
#include "kernel/buf.h"
#include "kernel/log.h"
#include "kernel/query.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define API_PREFIX          "/2018-06-01/runtime/"
#define NEXT_PATH           API_PREFIX "invocation/next"
#define INIT_ERROR_PATH     API_PREFIX "init/error"
#define INVOCATION_PREFIX   API_PREFIX "invocation/"
#define INIT_LIMIT_MS       10000.0 /* Lambda's bound on the init phase */
#define INIT_ERROR_GRACE_MS 2000.0  /* after /init/error the child should exit by itself */
#define STOP_GRACE_MS       3000.0
#define TICK_MS             10
#define QUEUE_CAP           128
#define FRONT_BODY_MAX      (4u * 1024u * 1024u) /* base64 of it still fits a 6 MB event */
#define FRONT_CONN_MAX      256
#define FRONT_IDLE_S        30
#define MAX_EVENT_RESPONSE  PX_MAX_EVENT
#define DEFAULT_TIMEOUT_MS  3000
#define DEFAULT_MEMORY_MB   128

/* ---- invocations ---------------------------------------------------------- */

enum inv_state { INV_NEW, INV_QUEUED, INV_RUNNING, INV_DONE };

struct inv {
    struct inv *next; /* queue link, then the list of finished invocations */
    char id[37];
    char trace[PX_LAMBDA_MAX_TRACE + 1];
    const char *event; /* the submitter's, alive until DONE */
    size_t event_len;
    enum inv_state state;
    double start_ms;    /* monotonic, when /next delivered it */
    double deadline_ms; /* monotonic */
    int64_t deadline_wall;
    struct px_emu_outcome out;
    void (*done)(void *arg); /* after DONE, outside the lock; may be NULL */
    void *arg;
};

struct px_emulator {
    char *bootstrap;
    char handler[64];
    char function_name[128];
    long timeout_ms;
    long memory_mb;
    bool child_stdout_to_stderr;
    char **envp; /* the child's environment */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* any state change */
    struct inv *head, *tail;
    size_t qlen;
    struct inv *current;
    bool stopping;
    double stop_ms;

    /* The child. */
    pid_t pid;
    bool child_alive;
    bool killed; /* we sent SIGKILL; reason says why */
    const char *kill_reason;
    unsigned gen; /* bumped when a child is reaped */
    double exec_ms;
    bool init_done;     /* it called /next once */
    double init_ms;     /* exec to first /next */
    bool init_reported; /* its Init Duration went into a REPORT already */
    bool init_error;
    double init_error_ms;
    char init_error_type[128];
    char *init_error_body;
    unsigned long children; /* started so far */

    pthread_t supervisor;
    bool supervisor_started;
    struct MHD_Daemon *api;
    unsigned api_port;
    struct MHD_Daemon *front;
    unsigned front_port;
};

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void px_emu_outcome_free(struct px_emu_outcome *o)
{
    if (!o)
        return;
    free(o->payload);
    o->payload = NULL;
    o->len = 0;
}

const char *px_emu_result_name(enum px_emu_result r)
{
    switch (r) {
    case PX_EMU_RESPONSE:
        return "response";
    case PX_EMU_FUNCTION_ERROR:
        return "error";
    case PX_EMU_INIT_ERROR:
        return "init_error";
    case PX_EMU_TIMEOUT:
        return "timeout";
    case PX_EMU_EXIT:
        return "exit";
    case PX_EMU_BUSY:
        return "busy";
    case PX_EMU_STOPPED:
        return "stopped";
    }
    return "unknown";
}

/* A Runtime API style error body on the heap ({"errorMessage","errorType"}). */
static char *error_json(const char *type, const char *message, size_t *len)
{
    struct px_buf b;
    px_buf_init(&b, 4096);
    if (px_lambda_error_body(&b, type, message) != PX_OK) {
        px_buf_free(&b);
        *len = 0;
        return NULL;
    }
    *len = b.len;
    return px_buf_take(&b);
}

/* "VmHWM:" / "VmRSS:" of pid in kB; 0 when unknown. */
static long proc_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    if (!f)
        return 0;
    size_t klen = strlen(key);
    for (int i = 0; i < 128 && fgets(line, sizeof(line), f); i++) {
        if (strncmp(line, key, klen) != 0)
            continue;
        char *end = NULL;
        errno = 0;
        long v = strtol(line + klen, &end, 10);
        if (!errno && end != line + klen && v >= 0)
            kb = v;
        break;
    }
    fclose(f);
    return kb;
}

/* The REPORT line of one finished invocation (mutex held). */
static void report(struct px_emulator *e, struct inv *inv)
{
    char dur[32], billed[32], mem[32], used[32], hwm[32], rss[32], init[32];
    double d = inv->out.duration_ms;
    enum px_emu_result res = inv->out.result;
    bool with_init = !e->init_reported && (e->init_done || e->init_error) && res != PX_EMU_BUSY &&
                     res != PX_EMU_STOPPED;
    /* Custom runtimes are billed for their init as well. */
    double b = ceil(d + (with_init ? e->init_ms : 0));
    long hwm_kb = e->child_alive ? proc_kb(e->pid, "VmHWM:") : 0;
    long rss_kb = e->child_alive ? proc_kb(e->pid, "VmRSS:") : 0;
    snprintf(dur, sizeof(dur), "%.2f", d);
    snprintf(billed, sizeof(billed), "%.0f", b);
    snprintf(mem, sizeof(mem), "%ld", e->memory_mb);
    snprintf(used, sizeof(used), "%ld", (hwm_kb + 1023) / 1024);
    snprintf(hwm, sizeof(hwm), "%ld", hwm_kb);
    snprintf(rss, sizeof(rss), "%ld", rss_kb);
    snprintf(init, sizeof(init), "%.2f", e->init_ms);
    struct px_kv f[] = {
        {"outcome", px_emu_result_name(inv->out.result)},
        {"errorType", inv->out.error_type[0] ? inv->out.error_type : NULL},
        {"durationMs", dur},
        {"billedDurationMs", billed},
        {"memorySizeMB", mem},
        {"maxMemoryUsedMB", used},
        {"maxMemoryUsedKB", hwm},
        {"rssKB", rss},
        {"initDurationMs", with_init ? init : NULL},
    };
    char msg[256];
    snprintf(msg, sizeof(msg),
             "REPORT Duration: %s ms Billed Duration: %s ms Memory Size: %ld MB Max Memory Used: "
             "%s MB%s%s%s",
             dur, billed, e->memory_mb, used, with_init ? " Init Duration: " : "",
             with_init ? init : "", with_init ? " ms" : "");
    px_log_fields(inv->out.result == PX_EMU_RESPONSE ? PX_LOG_INFO : PX_LOG_WARN, inv->id, msg, f,
                  PX_COUNTOF(f));
    if (with_init)
        e->init_reported = true;
}

/* Finishes inv (mutex held): takes payload, unlinks it, reports it and puts
 * it on *fin for its callback. */
static void complete(struct px_emulator *e, struct inv *inv, enum px_emu_result result,
                     char *payload, size_t len, const char *type, struct inv **fin)
{
    if (e->current == inv) {
        e->current = NULL;
    } else if (inv->state == INV_QUEUED) {
        struct inv **pp = &e->head, *prev = NULL;
        while (*pp && *pp != inv) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = inv->next;
            if (e->tail == inv)
                e->tail = prev;
            e->qlen--;
        }
    }
    inv->out.result = result;
    inv->out.payload = payload;
    inv->out.len = payload ? len : 0;
    snprintf(inv->out.error_type, sizeof(inv->out.error_type), "%s", type ? type : "");
    inv->out.duration_ms = inv->start_ms > 0 ? mono_ms() - inv->start_ms : 0;
    inv->state = INV_DONE;
    report(e, inv);
    inv->next = NULL;
    if (inv->done) {
        inv->next = *fin;
        *fin = inv;
    }
    pthread_cond_broadcast(&e->cv);
}

static void complete_error(struct px_emulator *e, struct inv *inv, enum px_emu_result result,
                           const char *type, const char *message, struct inv **fin)
{
    size_t len = 0;
    char *body = error_json(type, message, &len);
    complete(e, inv, result, body, len, type, fin);
}

static void run_callbacks(struct inv *fin)
{
    while (fin) {
        struct inv *next = fin->next; /* fin may be freed by its callback */
        fin->done(fin->arg);
        fin = next;
    }
}

/* ---- the child -------------------------------------------------------------- */

static const char *const overridden[] = {
    "AWS_LAMBDA_RUNTIME_API",
    "_HANDLER",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "_X_AMZN_TRACE_ID",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "TZ",
};

static bool is_overridden(const char *kv)
{
    size_t n = strcspn(kv, "=");
    for (size_t i = 0; i < PX_COUNTOF(overridden); i++)
        if (strlen(overridden[i]) == n && strncmp(kv, overridden[i], n) == 0)
            return true;
    return false;
}

static void free_env(char **envp)
{
    if (!envp)
        return;
    for (char **p = envp; *p; p++)
        free(*p);
    free(envp);
}

static char *kv_dup(const char *k, const char *v)
{
    size_t n = strlen(k) + strlen(v) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s=%s", k, v);
    return s;
}

/* The inherited environment (store configuration included) plus what Lambda sets. */
static char **build_env(const struct px_emulator *e)
{
    size_t n = 0;
    for (char **p = environ; p && *p; p++)
        n++;
    char **envp = calloc(n + PX_COUNTOF(overridden) + 4, sizeof(*envp));
    if (!envp)
        return NULL;
    size_t k = 0;
    bool region = false;
    for (char **p = environ; p && *p; p++) {
        if (is_overridden(*p))
            continue;
        if (strncmp(*p, "AWS_REGION=", 11) == 0 && (*p)[11])
            region = true;
        if (!(envp[k++] = strdup(*p)))
            goto fail;
    }
    char api[32], mem[32], stream[96], root[1024];
    snprintf(api, sizeof(api), "127.0.0.1:%u", e->api_port);
    snprintf(mem, sizeof(mem), "%ld", e->memory_mb);
    char date[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y/%m/%d", &tm);
    char rid[37];
    px_new_request_id(rid);
    snprintf(stream, sizeof(stream), "%s/[$LATEST]%.8s%.4s", date, rid, rid + 9);
    char group[192];
    snprintf(group, sizeof(group), "/aws/lambda/%s", e->function_name);
    snprintf(root, sizeof(root), "%s", e->bootstrap);
    char *slash = strrchr(root, '/');
    if (slash && slash != root)
        *slash = '\0';
    else
        snprintf(root, sizeof(root), "%s", slash ? "/" : ".");
    const struct px_kv add[] = {
        {"AWS_LAMBDA_RUNTIME_API", api},
        {"_HANDLER", e->handler},
        {"AWS_LAMBDA_FUNCTION_NAME", e->function_name},
        {"AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"},
        {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", mem},
        {"AWS_LAMBDA_LOG_GROUP_NAME", group},
        {"AWS_LAMBDA_LOG_STREAM_NAME", stream},
        {"AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"},
        {"LAMBDA_TASK_ROOT", root},
        {"LAMBDA_RUNTIME_DIR", root},
        {"TZ", ":UTC"},
        {"AWS_REGION", region ? NULL : "us-east-1"},
    };
    for (size_t i = 0; i < PX_COUNTOF(add); i++) {
        if (!add[i].value)
            continue;
        if (!(envp[k++] = kv_dup(add[i].key, add[i].value)))
            goto fail;
    }
    envp[k] = NULL;
    return envp;
fail:
    free_env(envp);
    return NULL;
}

/* Starts the child (mutex held). */
static px_rc spawn_child(struct px_emulator *e)
{
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    sigset_t none, dflt;
    px_rc rc = PX_OK;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGTERM);
    if (posix_spawnattr_init(&attr))
        return PX_ERR_NOMEM;
    if (posix_spawn_file_actions_init(&fa)) {
        posix_spawnattr_destroy(&attr);
        return PX_ERR_NOMEM;
    }
    /* Our blocked and ignored signals are not the child's business; its own
     * process group keeps a terminal's ^C for us to handle. */
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP;
    if (posix_spawnattr_setflags(&attr, flags) || posix_spawnattr_setsigmask(&attr, &none) ||
        posix_spawnattr_setsigdefault(&attr, &dflt) || posix_spawnattr_setpgroup(&attr, 0) ||
        (e->child_stdout_to_stderr && posix_spawn_file_actions_adddup2(&fa, 2, 1))) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    char *argv[] = {e->bootstrap, NULL};
    pid_t pid;
    double t0 = mono_ms();
    int err = posix_spawn(&pid, e->bootstrap, &fa, &attr, argv, e->envp);
    if (err) {
        PX_ERROR(NULL, "cannot start %s: %s", e->bootstrap, strerror(err));
        rc = PX_ERR_IO;
        goto out;
    }
    e->pid = pid;
    e->child_alive = true;
    e->killed = false;
    e->kill_reason = NULL;
    e->exec_ms = t0;
    e->init_done = false;
    e->init_ms = 0;
    e->init_reported = false;
    e->init_error = false;
    e->init_error_type[0] = '\0';
    free(e->init_error_body);
    e->init_error_body = NULL;
    e->children++;
    char spid[24];
    snprintf(spid, sizeof(spid), "%ld", (long)pid);
    const struct px_kv f[] = {{"pid", spid}, {"bootstrap", e->bootstrap}};
    px_log_fields(PX_LOG_INFO, NULL, "runtime started", f, PX_COUNTOF(f));
out:
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

static void kill_child(struct px_emulator *e, const char *reason)
{
    if (!e->child_alive || e->killed)
        return;
    /* Still unreaped (reaping happens under this mutex): the pid is ours. */
    kill(e->pid, SIGKILL);
    e->killed = true;
    e->kill_reason = reason;
}

/* Reaps the child if it has exited (mutex held). */
static void reap(struct px_emulator *e, struct inv **fin)
{
    int st = 0;
    pid_t p = waitpid(e->pid, &st, WNOHANG);
    if (p == 0 || (p < 0 && errno == EINTR))
        return;
    e->child_alive = false;
    e->gen++;
    pthread_cond_broadcast(&e->cv);

    char spid[24], how[96];
    snprintf(spid, sizeof(spid), "%ld", (long)e->pid);
    if (p < 0)
        snprintf(how, sizeof(how), "lost (%s)", strerror(errno));
    else if (WIFEXITED(st))
        snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(how, sizeof(how), "signal %d%s%s", WTERMSIG(st), e->kill_reason ? ": " : "",
                 e->kill_reason ? e->kill_reason : "");
    else
        snprintf(how, sizeof(how), "status %d", st);
    char code[16] = "";
    if (p > 0 && WIFEXITED(st))
        snprintf(code, sizeof(code), "%d", WEXITSTATUS(st));
    const struct px_kv f[] = {{"pid", spid}, {"how", how}, {"exitStatus", code[0] ? code : NULL}};
    px_log_fields(PX_LOG_INFO, NULL, "runtime exited", f, PX_COUNTOF(f));

    /* An init failure is served to the first invocation, as Lambda does;
     * so is an exit before the first /next, or there would be no end of restarts. */
    struct inv *victim = e->current ? e->current : (!e->init_done ? e->head : NULL);
    if (!victim)
        return;
    if (e->init_error && e->init_error_body) {
        char *body = e->init_error_body;
        e->init_error_body = NULL;
        complete(e, victim, PX_EMU_INIT_ERROR, body, strlen(body), e->init_error_type, fin);
        return;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "RequestId: %s Error: Runtime exited with error: %s", victim->id,
             how);
    complete_error(e, victim, PX_EMU_EXIT, "Runtime.ExitError", msg, fin);
}

static void *supervise(void *arg)
{
    struct px_emulator *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        struct inv *fin = NULL;
        double now = mono_ms();
        if (e->child_alive)
            reap(e, &fin);
        if (e->child_alive) {
            struct inv *cur = e->current;
            if (cur && now >= cur->deadline_ms) {
                char msg[96];
                snprintf(msg, sizeof(msg), "Task timed out after %.2f seconds",
                         (double)e->timeout_ms / 1000.0);
                kill_child(e, "time-out");
                complete_error(e, cur, PX_EMU_TIMEOUT, "Sandbox.Timedout", msg, &fin);
            } else if (cur && !e->killed && proc_kb(e->pid, "VmRSS:") > e->memory_mb * 1024) {
                kill_child(e, "memory size exceeded");
                complete_error(e, cur, PX_EMU_EXIT, "Runtime.OutOfMemory",
                               "Runtime exited: the function used more than its memory size", &fin);
            } else if (!e->init_done && now - e->exec_ms > INIT_LIMIT_MS) {
                kill_child(e, "init took longer than 10 s");
            } else if (e->init_error && now - e->init_error_ms > INIT_ERROR_GRACE_MS) {
                kill_child(e, "did not exit after its init error");
            } else if (e->stopping && !e->current && now - e->stop_ms > STOP_GRACE_MS) {
                kill_child(e, "the emulator is stopping");
            }
        } else if (e->stopping) {
            if (!e->head && !e->current)
                break;
        } else if (e->head) {
            if (spawn_child(e) != PX_OK)
                complete_error(e, e->head, PX_EMU_EXIT, "Runtime.ExitError",
                               "the bootstrap could not be started", &fin);
        }
        if (fin) {
            pthread_mutex_unlock(&e->mu);
            run_callbacks(fin);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->cv, &e->mu, &until);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Queues inv (state INV_NEW) or finishes it at once when it cannot be. */
static void submit(struct px_emulator *e, struct inv *inv)
{
    struct inv *fin = NULL;
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        complete_error(e, inv, PX_EMU_STOPPED, "Emulator.Stopping", "the emulator is stopping",
                       &fin);
    } else if (e->qlen >= QUEUE_CAP) {
        complete_error(e, inv, PX_EMU_BUSY, "Emulator.TooManyRequests",
                       "too many invocations waiting", &fin);
    } else {
        inv->state = INV_QUEUED;
        inv->next = NULL;
        if (e->tail)
            e->tail->next = inv;
        else
            e->head = inv;
        e->tail = inv;
        e->qlen++;
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    run_callbacks(fin);
}

/* "Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=0", as X-Ray writes it. */
static void new_trace_id(char *out, size_t outlen)
{
    char a[37], b[37], hex[64];
    size_t n = 0;
    px_new_request_id(a);
    px_new_request_id(b);
    for (const char *p = a; *p && n < 32; p++)
        if (*p != '-')
            hex[n++] = *p;
    for (const char *p = b; *p && n < 48; p++)
        if (*p != '-')
            hex[n++] = *p;
    hex[n] = '\0';
    snprintf(out, outlen, "Root=1-%08lx-%.24s;Parent=%.16s;Sampled=0",
             (unsigned long)(time(NULL) & 0xFFFFFFFFUL), hex, hex + 24);
}

static void inv_init(struct inv *inv, const char *event, size_t len, const char *trace)
{
    memset(inv, 0, sizeof(*inv));
    px_new_request_id(inv->id);
    inv->event = event;
    inv->event_len = len;
    if (trace && trace[0] && strlen(trace) <= PX_LAMBDA_MAX_TRACE)
        snprintf(inv->trace, sizeof(inv->trace), "%s", trace);
    else
        new_trace_id(inv->trace, sizeof(inv->trace));
}

/* ---- the Runtime API server ------------------------------------------------- */

struct api_req {
    struct px_buf body;
    bool too_large;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ct,
                             const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (ct)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_api_error(struct MHD_Connection *conn, unsigned status,
                                       const char *type, const char *message)
{
    size_t len = 0;
    char *body = error_json(type, message, &len);
    enum MHD_Result ret =
        reply(conn, status, "application/json", body ? body : "{}", body ? len : 2);
    free(body);
    return ret;
}

static enum MHD_Result api_next(struct px_emulator *e, struct MHD_Connection *conn)
{
    pthread_mutex_lock(&e->mu);
    if (e->child_alive && !e->init_done) {
        e->init_done = true;
        e->init_ms = mono_ms() - e->exec_ms;
        char ms[32];
        snprintf(ms, sizeof(ms), "%.2f", e->init_ms);
        const struct px_kv f[] = {{"initDurationMs", ms}};
        px_log_fields(PX_LOG_INFO, NULL, "runtime ready", f, PX_COUNTOF(f));
    }
    unsigned gen = e->gen;
    /* Blocks until there is work: Lambda's /next has no time-out either. */
    while (!e->stopping && e->gen == gen && !(e->head && !e->current))
        pthread_cond_wait(&e->cv, &e->mu);
    if (e->stopping || e->gen != gen) {
        pthread_mutex_unlock(&e->mu);
        /* 500 tells a runtime to exit: how the child learns we are stopping. */
        return reply_api_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Emulator.Stopping",
                               "the execution environment is shutting down");
    }
    struct inv *inv = e->head;
    e->head = inv->next;
    if (!e->head)
        e->tail = NULL;
    e->qlen--;
    inv->next = NULL;
    inv->state = INV_RUNNING;
    inv->start_ms = mono_ms();
    inv->deadline_ms = inv->start_ms + (double)e->timeout_ms;
    inv->deadline_wall = wall_ms() + e->timeout_ms;
    e->current = inv;
    /* Built under the mutex: once it is released a time-out may finish inv. */
    struct MHD_Response *r = MHD_create_response_from_buffer(
        inv->event_len, (void *)(uintptr_t)inv->event, MHD_RESPMEM_MUST_COPY);
    char deadline[24], arn[256];
    snprintf(deadline, sizeof(deadline), "%lld", (long long)inv->deadline_wall);
    snprintf(arn, sizeof(arn), "arn:aws:lambda:us-east-1:123456789012:function:%s",
             e->function_name);
    bool ok = r && MHD_add_response_header(r, "Lambda-Runtime-Aws-Request-Id", inv->id) &&
              MHD_add_response_header(r, "Lambda-Runtime-Deadline-Ms", deadline) &&
              MHD_add_response_header(r, "Lambda-Runtime-Invoked-Function-Arn", arn) &&
              MHD_add_response_header(r, "Lambda-Runtime-Trace-Id", inv->trace) &&
              MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    pthread_mutex_unlock(&e->mu);
    if (!ok) {
        if (r)
            MHD_destroy_response(r);
        return MHD_NO; /* the invocation times out like any lost one */
    }
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result api_post(struct px_emulator *e, struct MHD_Connection *conn,
                                struct api_req *rq, const char *id, size_t idlen, bool is_error)
{
    struct inv *fin = NULL;
    pthread_mutex_lock(&e->mu);
    struct inv *inv = e->current;
    if (!inv || strlen(inv->id) != idlen || memcmp(inv->id, id, idlen) != 0) {
        pthread_mutex_unlock(&e->mu);
        return reply_api_error(conn, MHD_HTTP_BAD_REQUEST, "InvalidRequestID",
                               "no invocation in progress with this request id");
    }
    if (rq->too_large && !is_error) {
        pthread_mutex_unlock(&e->mu);
        return reply_api_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "RequestEntityTooLarge",
                               "the response exceeds the 6 MB payload limit");
    }
    const char *type = NULL;
    if (is_error) {
        type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                           "Lambda-Runtime-Function-Error-Type");
        if (!type || !type[0])
            type = "Unhandled";
    }
    size_t len = rq->body.len;
    char *body = px_buf_take(&rq->body);
    if (!body && (body = malloc(1)) != NULL)
        body[0] = '\0';
    complete(e, inv, is_error ? PX_EMU_FUNCTION_ERROR : PX_EMU_RESPONSE, body, len, type, &fin);
    pthread_mutex_unlock(&e->mu);
    run_callbacks(fin);
    static const char accepted[] = "{\"status\":\"OK\"}";
    return reply(conn, MHD_HTTP_ACCEPTED, "application/json", accepted, sizeof(accepted) - 1);
}

static enum MHD_Result api_init_error(struct px_emulator *e, struct MHD_Connection *conn,
                                      struct api_req *rq)
{
    const char *type =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Lambda-Runtime-Function-Error-Type");
    pthread_mutex_lock(&e->mu);
    e->init_error = true;
    e->init_error_ms = mono_ms();
    if (!e->init_done)
        e->init_ms = e->init_error_ms - e->exec_ms;
    snprintf(e->init_error_type, sizeof(e->init_error_type), "%s",
             type && type[0] ? type : "Runtime.Unknown");
    free(e->init_error_body);
    e->init_error_body = px_buf_take(&rq->body);
    if (!e->init_error_body)
        e->init_error_body = error_json(e->init_error_type, "", &(size_t){0});
    const struct px_kv f[] = {{"errorType", e->init_error_type}};
    px_log_fields(PX_LOG_WARN, NULL, "runtime reported an init error", f, PX_COUNTOF(f));
    pthread_mutex_unlock(&e->mu);
    static const char accepted[] = "{\"status\":\"OK\"}";
    return reply(conn, MHD_HTTP_ACCEPTED, "application/json", accepted, sizeof(accepted) - 1);
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct px_emulator *e = cls;
    struct api_req *rq = *con_cls;
    PX_UNUSED(version);
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        px_buf_init(&rq->body, MAX_EVENT_RESPONSE);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!rq->too_large && px_buf_add(&rq->body, upload_data, *upload_data_size) != PX_OK) {
            rq->too_large = true;
            px_buf_free(&rq->body);
            px_buf_init(&rq->body, MAX_EVENT_RESPONSE);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (get && strcmp(url, NEXT_PATH) == 0)
        return api_next(e, conn);
    if (post && strcmp(url, INIT_ERROR_PATH) == 0)
        return api_init_error(e, conn, rq);
    size_t plen = sizeof(INVOCATION_PREFIX) - 1;
    if (post && strncmp(url, INVOCATION_PREFIX, plen) == 0) {
        const char *id = url + plen;
        const char *slash = strchr(id, '/');
        if (slash && slash > id &&
            (strcmp(slash, "/response") == 0 || strcmp(slash, "/error") == 0))
            return api_post(e, conn, rq, id, (size_t)(slash - id), strcmp(slash, "/error") == 0);
    }
    return reply_api_error(conn, MHD_HTTP_NOT_FOUND, "NotFound", "no such Runtime API resource");
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    PX_UNUSED(cls);
    PX_UNUSED(conn);
    PX_UNUSED(toe);
    struct api_req *rq = *con_cls;
    if (!rq)
        return;
    px_buf_free(&rq->body);
    free(rq);
    *con_cls = NULL;
}

/* ---- start / invoke / stop ---------------------------------------------------- */

static struct MHD_Daemon *listen_on(const char *host, unsigned port, unsigned flags,
                                    MHD_AccessHandlerCallback access, void *cls,
                                    struct MHD_OptionItem *extra, unsigned *bound)
{
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    const struct sockaddr *sa = NULL;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        sa = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        sa = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        return NULL;
    }
    struct MHD_Daemon *d =
        MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, access, cls, MHD_OPTION_SOCK_ADDR, sa,
                         MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
    if (d && bound) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        *bound = info ? info->port : port;
    }
    return d;
}

px_rc px_emulator_start(const struct px_emulator_opts *opts, struct px_emulator **out, char *err,
                        size_t errlen)
{
    px_rc rc = PX_OK;
    *out = NULL;
    if (!opts || !opts->bootstrap || !opts->bootstrap[0]) {
        snprintf(err, errlen, "--bootstrap is required");
        return PX_ERR_CONFIG;
    }
    struct px_emulator *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return PX_ERR_NOMEM;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    e->bootstrap = strdup(opts->bootstrap);
    snprintf(e->handler, sizeof(e->handler), "%s", opts->handler ? opts->handler : "price-fetcher");
    snprintf(e->function_name, sizeof(e->function_name), "%s",
             opts->function_name && opts->function_name[0] ? opts->function_name : e->handler);
    e->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    e->memory_mb = opts->memory_mb > 0 ? opts->memory_mb : DEFAULT_MEMORY_MB;
    e->child_stdout_to_stderr = opts->child_stdout_to_stderr;
    if (!e->bootstrap) {
        snprintf(err, errlen, "out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    struct MHD_OptionItem o[] = {
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)api_completed, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 16, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* A thread per connection: /next blocks in its handler until there is work. */
    e->api =
        listen_on("127.0.0.1", 0, MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                  api_access, e, o, &e->api_port);
    if (!e->api) {
        snprintf(err, errlen, "cannot start the Runtime API listener on 127.0.0.1");
        rc = PX_ERR_IO;
        goto out;
    }
    e->envp = build_env(e);
    if (!e->envp) {
        snprintf(err, errlen, "out of memory");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (pthread_create(&e->supervisor, NULL, supervise, e) != 0) {
        snprintf(err, errlen, "cannot start the supervisor thread");
        rc = PX_ERR_NOMEM;
        goto out;
    }
    e->supervisor_started = true;
    char port[16];
    snprintf(port, sizeof(port), "%u", e->api_port);
    const struct px_kv f[] = {{"runtimeApi", "127.0.0.1"}, {"port", port}};
    px_log_fields(PX_LOG_INFO, NULL, "Runtime API listening", f, PX_COUNTOF(f));
    *out = e;
    e = NULL;
out:
    px_emulator_stop(e);
    return rc;
}

px_rc px_emulator_invoke(struct px_emulator *e, const char *event, size_t len,
                         struct px_emu_outcome *out)
{
    struct inv inv;
    memset(out, 0, sizeof(*out));
    inv_init(&inv, event, len, NULL);
    submit(e, &inv);
    pthread_mutex_lock(&e->mu);
    /* The supervisor finishes every invocation within time-out or init limit. */
    while (inv.state != INV_DONE)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    *out = inv.out;
    return PX_OK;
}

void px_emulator_stop(struct px_emulator *e)
{
    if (!e)
        return;
    /* New connections are refused from now on; MHD hands the socket back. */
    MHD_socket lfd = e->front ? MHD_quiesce_daemon(e->front) : MHD_INVALID_SOCKET;
    struct inv *fin = NULL;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    e->stop_ms = mono_ms();
    while (e->head)
        complete_error(e, e->head, PX_EMU_STOPPED, "Emulator.Stopping", "the emulator is stopping",
                       &fin);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    run_callbacks(fin);
    /* The supervisor leaves once the running invocation is over and the child gone. */
    if (e->supervisor_started)
        pthread_join(e->supervisor, NULL);
    if (e->front)
        MHD_stop_daemon(e->front);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    if (e->api)
        MHD_stop_daemon(e->api);
    free_env(e->envp);
    free(e->init_error_body);
    free(e->bootstrap);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* ---- the API Gateway front ---------------------------------------------------- */

struct front_req {
    struct px_emulator *e;
    struct MHD_Connection *conn;
    char *raw_uri;
    struct px_buf body;
    bool started, too_large, submitted;
    bool raw; /* Lambda Invoke API: the body is the event, the answer the payload */
    char *event;
    size_t event_len;
    char api_id[37];
    double t0;
    struct inv inv;
};

static void *front_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct front_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->e = cls;
    r->conn = conn;
    r->raw_uri = strdup(uri ? uri : "/");
    px_buf_init(&r->body, FRONT_BODY_MAX);
    px_new_request_id(r->api_id);
    r->t0 = mono_ms();
    return r;
}

static void front_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    PX_UNUSED(cls);
    PX_UNUSED(conn);
    PX_UNUSED(toe);
    struct front_req *r = *con_cls;
    if (!r)
        return;
    px_emu_outcome_free(&r->inv.out);
    px_buf_free(&r->body);
    free(r->event);
    free(r->raw_uri);
    free(r);
    *con_cls = NULL;
}

static void front_done(void *arg)
{
    struct front_req *r = arg;
    /* r belongs to MHD again from here on. */
    MHD_resume_connection(r->conn);
}

struct hdr_ctx {
    json_t *headers;
    json_t *cookies;
    const char *trace;
    const char *host;
    const char *ua;
    bool bad;
};

static void add_cookies(struct hdr_ctx *h, const char *v)
{
    while (*v) {
        while (*v == ' ' || *v == ';')
            v++;
        size_t n = strcspn(v, ";");
        size_t t = n;
        while (t && v[t - 1] == ' ')
            t--;
        if (t && json_array_append_new(h->cookies, json_stringn(v, t)))
            h->bad = true;
        v += n;
    }
}

static enum MHD_Result on_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct hdr_ctx *h = cls;
    PX_UNUSED(kind);
    char name[256];
    size_t n = strlen(key);
    if (n >= sizeof(name))
        return MHD_YES;
    for (size_t i = 0; i <= n; i++)
        name[i] = (key[i] >= 'A' && key[i] <= 'Z') ? (char)(key[i] + 32) : key[i];
    if (!value)
        value = "";
    if (strcmp(name, "cookie") == 0) { /* format 2.0 carries cookies on their own */
        add_cookies(h, value);
        return MHD_YES;
    }
    if (strcmp(name, "x-amzn-trace-id") == 0)
        h->trace = value;
    else if (strcmp(name, "host") == 0)
        h->host = value;
    else if (strcmp(name, "user-agent") == 0)
        h->ua = value;
    json_t *old = json_object_get(h->headers, name);
    json_t *v;
    if (old) { /* repeated headers are joined with commas in format 2.0 */
        size_t ol = json_string_length(old), vl = strlen(value);
        char *j = malloc(ol + vl + 2);
        if (!j) {
            h->bad = true;
            return MHD_NO;
        }
        memcpy(j, json_string_value(old), ol);
        j[ol] = ',';
        memcpy(j + ol + 1, value, vl + 1);
        v = json_stringn(j, ol + vl + 1);
        free(j);
    } else {
        v = json_string(value);
    }
    if (!v || json_object_set_new(h->headers, name, v))
        h->bad = true;
    return MHD_YES;
}

static bool valid_utf8_text(const char *s, size_t n)
{
    return !memchr(s, '\0', n) && px_utf8_valid((const unsigned char *)s, n);
}

/* Standard padded base64 into a heap string the caller frees; NULL when out of memory. */
static char *b64_encode(const void *s, size_t n, size_t *outlen)
{
    size_t cap = px_b64_encoded_len(n, PX_B64_PAD) + 1;
    char *o = malloc(cap);
    if (o && px_b64_encode(s, n, PX_B64_STD, PX_B64_PAD, o, cap, outlen) != PX_OK) {
        free(o);
        o = NULL;
    }
    return o;
}

/* Decodes a function's base64 body into a NUL-terminated heap string; NULL
 * when it is not padded base64. Non-zero unused bits are let through: this
 * reads what the function answered, not what a client sent. */
static char *b64_decode(const char *s, size_t n, size_t *outlen)
{
    size_t cap = px_b64_decoded_max(n);
    char *o = malloc(cap + 1);
    if (o && px_b64_decode(s, n, PX_B64_STD, PX_B64_PAD | PX_B64_ANY_TAIL_BITS, o, cap, outlen) !=
                 PX_OK) {
        free(o);
        o = NULL;
    }
    if (o)
        o[*outlen] = '\0';
    return o;
}

static void put(json_t *obj, const char *key, json_t *v, bool *bad)
{
    if (!v || json_object_set_new(obj, key, v))
        *bad = true;
}

/* The HTTP API (payload 2.0) event of the request, as API Gateway builds it. */
static px_rc build_event(struct front_req *r, const char *method, const char *version)
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    bool bad = false;
    px_rc rc = PX_OK;
    json_t *root = json_object(), *ctx = json_object(), *http = json_object();
    struct hdr_ctx h = {.headers = json_object(), .cookies = json_array()};
    struct px_arena *a = px_arena_new(65536 + 4 * strlen(r->raw_uri));
    if (!root || !ctx || !http || !h.headers || !h.cookies || !a) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, on_header, &h);
    if (h.bad) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    const char *q = strchr(r->raw_uri, '?');
    size_t plen = q ? (size_t)(q - r->raw_uri) : strlen(r->raw_uri);
    const char *raw_query = q ? q + 1 : "";
    char *path = NULL;
    if (px_url_decode_path(a, r->raw_uri, plen, &path) != PX_OK)
        path = px_arena_strndup(a, r->raw_uri, plen);
    put(root, "version", json_string("2.0"), &bad);
    put(root, "routeKey", json_string("$default"), &bad);
    put(root, "rawPath", json_stringn(r->raw_uri, plen), &bad);
    put(root, "rawQueryString", json_string(raw_query), &bad);
    if (json_array_size(h.cookies))
        put(root, "cookies", json_incref(h.cookies), &bad);
    put(root, "headers", json_incref(h.headers), &bad);
    struct px_kv *kv = NULL;
    size_t nkv = 0;
    /* A query API Gateway could not decode still reaches the function raw. */
    if (raw_query[0] && px_query_parse(a, raw_query, strlen(raw_query), &kv, &nkv) == PX_OK &&
        nkv) {
        json_t *qs = json_object();
        for (size_t i = 0; qs && i < nkv && !bad; i++) {
            json_t *old = json_object_get(qs, kv[i].key);
            const char *v = kv[i].value;
            if (old && !(v = px_arena_printf(a, "%s,%s", json_string_value(old), v)))
                bad = true;
            else
                put(qs, kv[i].key, json_string(v), &bad);
        }
        put(root, "queryStringParameters", qs, &bad);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char ip[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (ci && ci->client_addr) {
        if (ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET,
                      &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr, ip,
                      sizeof(ip));
        else if (ci->client_addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6,
                      &((const struct sockaddr_in6 *)(const void *)ci->client_addr)->sin6_addr, ip,
                      sizeof(ip));
    }
    char when[40];
    int64_t now = wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(when, sizeof(when), "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
             mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    const char *domain = h.host && h.host[0] ? h.host : "localhost";
    size_t dp = strcspn(domain, ".:");
    put(ctx, "accountId", json_string("123456789012"), &bad);
    put(ctx, "apiId", json_string("local"), &bad);
    put(ctx, "domainName", json_string(domain), &bad);
    put(ctx, "domainPrefix", json_stringn(domain, dp), &bad);
    put(http, "method", json_string(method), &bad);
    put(http, "path", json_string(path ? path : "/"), &bad);
    put(http, "protocol", json_string(version), &bad);
    put(http, "sourceIp", json_string(ip), &bad);
    put(http, "userAgent", json_string(h.ua ? h.ua : ""), &bad);
    put(ctx, "http", http, &bad);
    http = NULL;
    put(ctx, "requestId", json_string(r->api_id), &bad);
    put(ctx, "routeKey", json_string("$default"), &bad);
    put(ctx, "stage", json_string("$default"), &bad);
    put(ctx, "time", json_string(when), &bad);
    put(ctx, "timeEpoch", json_integer(now), &bad);
    put(root, "requestContext", ctx, &bad);
    ctx = NULL;
    if (r->body.len) {
        if (valid_utf8_text(r->body.data, r->body.len)) {
            put(root, "body", json_stringn(r->body.data, r->body.len), &bad);
            put(root, "isBase64Encoded", json_false(), &bad);
        } else {
            size_t bl = 0;
            char *b = b64_encode(r->body.data, r->body.len, &bl);
            put(root, "body", b ? json_stringn(b, bl) : NULL, &bad);
            free(b);
            put(root, "isBase64Encoded", json_true(), &bad);
        }
    } else {
        put(root, "isBase64Encoded", json_false(), &bad);
    }
    if (bad) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    r->event = json_dumps(root, JSON_COMPACT);
    if (!r->event) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    r->event_len = strlen(r->event);
    if (r->event_len > PX_MAX_EVENT)
        rc = PX_ERR_TOO_LARGE;
    if (!rc)
        inv_init(&r->inv, r->event, r->event_len, h.trace);
out:
    json_decref(root);
    json_decref(ctx);
    json_decref(http);
    json_decref(h.headers);
    json_decref(h.cookies);
    px_arena_free(a);
    return rc;
}

/* The CONTRACT §4 error shape, answered by the gateway itself. */
static enum MHD_Result front_error(struct front_req *r, unsigned status, const char *code,
                                   const char *message)
{
    struct px_buf b;
    px_buf_init(&b, 4096);
    px_rc rc = px_buf_adds(&b, "{\"error\":{\"code\":");
    if (!rc)
        rc = px_buf_json_strz(&b, code);
    if (!rc)
        rc = px_buf_adds(&b, ",\"message\":");
    if (!rc)
        rc = px_buf_json_strz(&b, message);
    if (!rc)
        rc = px_buf_adds(&b, ",\"requestId\":");
    if (!rc)
        rc = px_buf_json_strz(&b, r->api_id);
    if (!rc)
        rc = px_buf_adds(&b, "}}");
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        rc ? 0 : b.len, rc ? (void *)"" : b.data, MHD_RESPMEM_MUST_COPY);
    px_buf_free(&b);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Apigw-Requestid", r->api_id);
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static bool hop_by_hop(const char *name)
{
    return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
           strcasecmp(name, "connection") == 0;
}

static bool add_header_value(struct MHD_Response *resp, const char *name, json_t *v)
{
    char num[64];
    const char *text;
    if (json_is_string(v))
        text = json_string_value(v);
    else if (json_is_integer(v))
        text = (snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v)), num);
    else if (json_is_real(v))
        text = (snprintf(num, sizeof(num), "%g", json_real_value(v)), num);
    else if (json_is_boolean(v))
        text = json_is_true(v) ? "true" : "false";
    else
        return true; /* null: API Gateway drops it */
    if (hop_by_hop(name))
        return true;
    return MHD_add_response_header(resp, name, text) == MHD_YES;
}

/* Renders the child's proxy response (either format) as the HTTP answer. */
static enum MHD_Result front_proxy(struct front_req *r, const char *payload, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(payload, len, 0, &jerr);
    json_t *sc = root && json_is_object(root) ? json_object_get(root, "statusCode") : NULL;
    char *decoded = NULL;
    const char *body = payload;
    size_t blen = len;
    unsigned status = 200;
    bool bad = !root;
    if (!bad && sc) {
        json_int_t s = json_is_integer(sc) ? json_integer_value(sc) : 0;
        json_t *jb = json_object_get(root, "body");
        bad = s < 100 || s > 599 || (jb && !json_is_null(jb) && !json_is_string(jb));
        status = (unsigned)s;
        body = jb && json_is_string(jb) ? json_string_value(jb) : "";
        blen = jb && json_is_string(jb) ? json_string_length(jb) : 0;
        if (!bad && json_is_true(json_object_get(root, "isBase64Encoded"))) {
            decoded = b64_decode(body, blen, &blen);
            bad = !decoded;
            body = decoded;
        }
    }
    struct MHD_Response *resp =
        bad ? NULL
            : MHD_create_response_from_buffer(blen, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    bool ok = resp != NULL;
    if (ok && sc) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(root, "headers"), k, v)
        {
            ok = ok && add_header_value(resp, k, v);
        }
        json_object_foreach(json_object_get(root, "multiValueHeaders"), k, v)
        {
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item)
            {
                ok = ok && add_header_value(resp, k, item);
            }
        }
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(root, "cookies"), i, c)
        {
            ok = ok && add_header_value(resp, "Set-Cookie", c);
        }
    } else if (ok) {
        /* A non-proxy answer is a 200 JSON body in format 2.0. */
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") ==
             MHD_YES;
    }
    ok = ok && MHD_add_response_header(resp, "Apigw-Requestid", r->api_id) == MHD_YES;
    enum MHD_Result ret;
    if (ok) {
        ret = MHD_queue_response(r->conn, status, resp);
    } else {
        PX_WARN(r->api_id, "the function's response is not a valid proxy response");
        ret = front_error(r, MHD_HTTP_BAD_GATEWAY, "INTERNAL",
                          "the function returned an invalid response");
    }
    if (resp)
        MHD_destroy_response(resp);
    free(decoded);
    json_decref(root);
    return ret;
}

/* The Lambda Invoke API's answer: 200 with the payload, X-Amz-Function-Error
 * when it is an error body, as Lambda (and `sam local start-lambda`) answer. */
static enum MHD_Result invoke_answer(struct front_req *r)
{
    const struct px_emu_outcome *o = &r->inv.out;
    unsigned status = o->result == PX_EMU_BUSY      ? MHD_HTTP_TOO_MANY_REQUESTS
                      : o->result == PX_EMU_STOPPED ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                    : MHD_HTTP_OK;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        o->payload ? o->len : 0, o->payload ? o->payload : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, "X-Amz-Executed-Version", "$LATEST");
    MHD_add_response_header(resp, "X-Amzn-RequestId", r->inv.id);
    if (o->result != PX_EMU_RESPONSE)
        MHD_add_response_header(resp, "X-Amz-Function-Error",
                                o->result == PX_EMU_FUNCTION_ERROR ? "Unhandled" : o->error_type);
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result front_answer(struct front_req *r)
{
    const struct px_emu_outcome *o = &r->inv.out;
    char msg[256];
    if (r->raw)
        return invoke_answer(r);
    switch (o->result) {
    case PX_EMU_RESPONSE:
        return front_proxy(r, o->payload ? o->payload : "", o->len);
    case PX_EMU_TIMEOUT:
        snprintf(msg, sizeof(msg), "the function did not answer within %.2f s",
                 (double)r->e->timeout_ms / 1000.0);
        return front_error(r, MHD_HTTP_GATEWAY_TIMEOUT, "INTERNAL", msg);
    case PX_EMU_BUSY:
        return front_error(r, MHD_HTTP_TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS",
                           "too many requests are waiting for the function");
    case PX_EMU_STOPPED:
        return front_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "DEPENDENCY_UNAVAILABLE",
                           "the emulator is stopping");
    case PX_EMU_FUNCTION_ERROR:
    case PX_EMU_INIT_ERROR:
    case PX_EMU_EXIT:
        break;
    }
    snprintf(msg, sizeof(msg), "the function failed (%s)",
             o->error_type[0] ? o->error_type : px_emu_result_name(o->result));
    return front_error(r, MHD_HTTP_BAD_GATEWAY, "INTERNAL", msg);
}

/* POST /2015-03-31/functions/{name}/invocations: the Lambda Invoke API. */
static bool is_invoke_path(const char *uri)
{
    static const char pre[] = "/2015-03-31/functions/", suf[] = "/invocations";
    size_t n = strcspn(uri, "?"), pl = sizeof(pre) - 1, sl = sizeof(suf) - 1;
    if (n <= pl + sl || strncmp(uri, pre, pl) != 0 || strncmp(uri + n - sl, suf, sl) != 0)
        return false;
    return memchr(uri + pl, '/', n - pl - sl) == NULL;
}

static enum MHD_Result front_access(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    PX_UNUSED(cls);
    PX_UNUSED(url);
    struct front_req *r = *con_cls;
    if (!r)
        return MHD_NO;
    if (!r->started) {
        r->started = true;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_large && px_buf_add(&r->body, upload_data, *upload_data_size) != PX_OK) {
            r->too_large = true;
            px_buf_free(&r->body);
            px_buf_init(&r->body, FRONT_BODY_MAX);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->submitted) {
        if (r->inv.state != INV_DONE)
            return MHD_YES;
        double ms = mono_ms() - r->t0;
        char lat[32], st[16];
        snprintf(lat, sizeof(lat), "%.3f", ms);
        snprintf(st, sizeof(st), "%s", px_emu_result_name(r->inv.out.result));
        const struct px_kv f[] = {{"method", method}, {"outcome", st}, {"latencyMs", lat}};
        px_log_fields(PX_LOG_DEBUG, r->api_id, "gateway", f, PX_COUNTOF(f));
        return front_answer(r);
    }
    if (r->too_large)
        return front_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "PAYLOAD_TOO_LARGE",
                           "the request body is too large");
    px_rc rc;
    if (strcmp(method, "POST") == 0 && is_invoke_path(r->raw_uri)) {
        /* Any payload, event or not, goes to the function as it is. */
        r->raw = true;
        size_t len = r->body.len;
        r->event = len ? px_buf_take(&r->body) : strdup("{}");
        r->event_len = len ? len : 2;
        rc = r->event ? PX_OK : PX_ERR_NOMEM;
        if (!rc)
            inv_init(&r->inv, r->event, r->event_len, NULL);
    } else {
        rc = build_event(r, method, version);
    }
    if (rc == PX_ERR_TOO_LARGE)
        return front_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "PAYLOAD_TOO_LARGE",
                           "the request does not fit the 6 MB event limit");
    if (rc)
        return front_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "INTERNAL",
                           "the request could not be turned into an event");
    r->submitted = true;
    r->inv.done = front_done;
    r->inv.arg = r;
    /* Suspend first: the invocation may finish (and resume) before submit returns. */
    MHD_suspend_connection(conn);
    submit(r->e, &r->inv);
    return MHD_YES;
}

px_rc px_emulator_front(struct px_emulator *e, const char *host, unsigned port, unsigned *bound,
                        char *err, size_t errlen)
{
    struct MHD_OptionItem o[] = {
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)front_uri, e},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)front_completed, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, FRONT_CONN_MAX, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, FRONT_IDLE_S, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (port > 65535) {
        snprintf(err, errlen, "--port %u is out of range 0..65535", port);
        return PX_ERR_CONFIG;
    }
    e->front = listen_on(host && host[0] ? host : "127.0.0.1", port,
                         MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, front_access, e,
                         o, &e->front_port);
    if (!e->front) {
        snprintf(err, errlen, "cannot listen on %s:%u", host ? host : "127.0.0.1", port);
        return PX_ERR_IO;
    }
    if (bound)
        *bound = e->front_port;
    return PX_OK;
}
