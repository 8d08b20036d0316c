/* emulator.h: a local Lambda execution environment without Docker.
 *
 * Runs a real bootstrap executable as a child process speaking the Runtime
 * API (2018-06-01) to a libmicrohttpd server on 127.0.0.1, one invocation at
 * a time as one Lambda execution environment does, and optionally puts an
 * API Gateway HTTP API (payload 2.0) front before it: each HTTP request
 * becomes an event, the child's proxy response becomes the HTTP answer
 * (`sam local start-api` without containers). The child is started on the
 * first invocation (cold start), killed past its time-out and started again
 * for the next one, as Lambda does. Every invocation is reported like
 * Lambda's REPORT line (Init Duration, Duration, Billed Duration, Max Memory
 * Used). docs/internals/lambda.md describes it. */
#ifndef PX_EMULATOR_H
#define PX_EMULATOR_H

#include "kernel/px.h"

struct px_emulator;

struct px_emulator_opts {
    const char *bootstrap;       /* executable to run (required) */
    const char *handler;         /* _HANDLER; NULL: "price-fetcher" */
    const char *function_name;   /* AWS_LAMBDA_FUNCTION_NAME; NULL: the handler */
    long timeout_ms;             /* per invocation; 0: 3000 */
    long memory_mb;              /* AWS_LAMBDA_FUNCTION_MEMORY_SIZE, and the RSS limit; 0: 128 */
    bool child_stdout_to_stderr; /* keep stdout for the answer (one-event mode) */
};

enum px_emu_result {
    PX_EMU_RESPONSE,       /* the child posted .../response */
    PX_EMU_FUNCTION_ERROR, /* the child posted .../error */
    PX_EMU_INIT_ERROR,     /* the child reported /runtime/init/error */
    PX_EMU_TIMEOUT,        /* past the time-out: the child was killed */
    PX_EMU_EXIT,           /* the child exited (or was killed for memory) */
    PX_EMU_BUSY,           /* too many invocations waiting */
    PX_EMU_STOPPED,        /* the emulator is stopping */
};

struct px_emu_outcome {
    enum px_emu_result result;
    char *payload; /* response or Runtime API error body (heap, NUL-terminated) */
    size_t len;
    char error_type[128]; /* "" for a response */
    double duration_ms;   /* from delivery by /next to the post */
};

/* Frees payload. Accepts NULL; safe twice. */
void px_emu_outcome_free(struct px_emu_outcome *o);
/* Wire name of a result ("response", "timeout", ...). */
const char *px_emu_result_name(enum px_emu_result r);

/* Starts the Runtime API listener and the supervisor (the child starts with
 * the first invocation). err holds one human line on failure. */
px_rc px_emulator_start(const struct px_emulator_opts *opts, struct px_emulator **out, char *err,
                        size_t errlen) PX_WUR;
/* Runs one raw event through the child and waits for its outcome (bounded
 * by the time-out and the 10 s init limit). out is the caller's. */
px_rc px_emulator_invoke(struct px_emulator *e, const char *event, size_t len,
                         struct px_emu_outcome *out) PX_WUR;
/* Starts the API Gateway front on host:port (port 0: any); *bound gets the port. */
px_rc px_emulator_front(struct px_emulator *e, const char *host, unsigned port, unsigned *bound,
                        char *err, size_t errlen) PX_WUR;
/* Answers what is waiting, lets the child finish its invocation and exit
 * (answering its /next with 500), kills it after a grace period, stops the
 * listeners, frees e. Accepts NULL. */
void px_emulator_stop(struct px_emulator *e);

#endif
