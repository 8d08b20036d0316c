/* lambda.h: the AWS Lambda custom runtime (Runtime API 2018-06-01).
 *
 * Two layers. The client speaks the Runtime API over one keep-alive libcurl
 * handle: GET .../invocation/next (no time-out: it blocks until an event
 * comes), POST .../{id}/response, .../{id}/error and /runtime/init/error.
 * The runtime owns a client and the app: it initialises once (configuration
 * from the environment, _HANDLER, stores), reporting any failure to
 * /runtime/init/error, then loops: next -> px_invoke_event -> response or
 * error, with the trace id in _X_AMZN_TRACE_ID, one JSON access line and one
 * CloudWatch Embedded Metric Format line per invocation on stdout.
 * docs/internals/lambda.md has the whole story. */
#ifndef PX_LAMBDA_H
#define PX_LAMBDA_H

#include "kernel/buf.h"
#include "kernel/px.h"

#define PX_LAMBDA_MAX_ID    128 /* Lambda-Runtime-Aws-Request-Id */
#define PX_LAMBDA_MAX_ARN   256 /* Lambda-Runtime-Invoked-Function-Arn */
#define PX_LAMBDA_MAX_TRACE 512 /* Lambda-Runtime-Trace-Id */

/* The error body content type of the Runtime API. */
#define PX_LAMBDA_ERROR_CT "application/vnd.aws.lambda.error+json"

/* One invocation as /next delivered it. The event bytes belong to the client
 * and stay valid until its next call. */
struct px_lambda_invocation {
    char request_id[PX_LAMBDA_MAX_ID + 1];    /* "" when absent */
    int64_t deadline_ms;                      /* epoch ms; 0 when absent or malformed */
    char function_arn[PX_LAMBDA_MAX_ARN + 1]; /* "" when absent */
    char trace_id[PX_LAMBDA_MAX_TRACE + 1];   /* "" when absent or oversized */
    const char *event;
    size_t event_len;
};

/* Resets inv to "no headers seen" (event untouched). */
void px_lambda_invocation_clear(struct px_lambda_invocation *inv);
/* Applies one response header line ("Name: value\r\n", any case) to inv.
 * Unknown headers and status lines are ignored (PX_OK). PX_ERR_TOO_LARGE for
 * an oversized value (that field is left empty), PX_ERR_INVALID for a
 * malformed deadline (left 0). */
px_rc px_lambda_parse_header(struct px_lambda_invocation *inv, const char *line, size_t len);

/* Sets _X_AMZN_TRACE_ID to trace, or removes it when trace is NULL or "".
 * glibc's setenv keeps every value it replaces, so the variable lives in one
 * static buffer handed to putenv once and rewritten in place. Not
 * thread-safe (environment). PX_ERR_TOO_LARGE past PX_LAMBDA_MAX_TRACE (the
 * variable is then removed). */
px_rc px_lambda_set_trace_env(const char *trace);

struct px_lambda_client;

/* A client of the Runtime API at host:port (AWS_LAMBDA_RUNTIME_API's form).
 * Events above max_event bytes are refused. Free with px_lambda_client_free. */
px_rc px_lambda_client_new(const char *runtime_api, size_t max_event,
                           struct px_lambda_client **out) PX_WUR;
/* Accepts NULL. */
void px_lambda_client_free(struct px_lambda_client *c);
/* Blocks for the next invocation. PX_ERR_TOO_LARGE when the event exceeds
 * max_event (inv's headers are filled: the caller can still report it);
 * PX_ERR_UNAVAILABLE when the API cannot be reached or answers 500;
 * PX_ERR_PROTOCOL for any other answer or a missing request id. */
px_rc px_lambda_next(struct px_lambda_client *c, struct px_lambda_invocation *inv) PX_WUR;
/* POST .../{id}/response. PX_ERR_TOO_LARGE on 413, PX_ERR_UNAVAILABLE on 500
 * or no answer, PX_ERR_PROTOCOL on another refusal (400, 403). */
px_rc px_lambda_post_response(struct px_lambda_client *c, const char *request_id, const char *body,
                              size_t len) PX_WUR;
/* POST .../{id}/error with Lambda-Runtime-Function-Error-Type: error_type and
 * {"errorMessage","errorType","stackTrace":[]}. Same answers as above. */
px_rc px_lambda_post_error(struct px_lambda_client *c, const char *request_id,
                           const char *error_type, const char *message) PX_WUR;
/* POST /runtime/init/error, same body. */
px_rc px_lambda_post_init_error(struct px_lambda_client *c, const char *error_type,
                                const char *message) PX_WUR;
/* Appends the Runtime API error body to out. */
px_rc px_lambda_error_body(struct px_buf *out, const char *error_type, const char *message) PX_WUR;

struct px_lambda_opts {
    const char *runtime_api;       /* host:port; NULL: $AWS_LAMBDA_RUNTIME_API */
    const char *handler;           /* function name; NULL: $_HANDLER */
    size_t max_response;           /* proxy response cap; 0: PX_MAX_EVENT (6 MB) */
    unsigned long max_invocations; /* 0: until the Runtime API ends the loop */
};

struct px_lambda_runtime;

/* Initialises once: client, configuration from the environment, handler,
 * stores. A failure after the client exists is posted to /runtime/init/error
 * (Runtime.ConfigError, Runtime.HandlerNotFound, Runtime.InitError) and
 * returned (PX_ERR_CONFIG for configuration and handler); err holds one human
 * line either way. */
px_rc px_lambda_runtime_new(const struct px_lambda_opts *opts, struct px_lambda_runtime **out,
                            char *err, size_t errlen) PX_WUR;
/* Accepts NULL. */
void px_lambda_runtime_free(struct px_lambda_runtime *rt);

/* What one invocation posts back. body points into the runtime and stays
 * valid until its next invocation. */
struct px_lambda_post {
    bool is_error;          /* POST .../error rather than .../response */
    const char *error_type; /* static, when is_error */
    const char *message;    /* errorMessage, when is_error */
    const char *body;
    size_t len;
};

/* Runs one invocation (trace id, cold start flag, px_invoke_event, metric
 * line) and says what to post; never fails: every failure is a post. */
void px_lambda_runtime_handle(struct px_lambda_runtime *rt, const struct px_lambda_invocation *inv,
                              struct px_lambda_post *post);
/* The loop: next, handle, post, until max_invocations or the Runtime API
 * ends it (500, connection lost: returned). A failing invocation is reported
 * and the loop goes on. */
px_rc px_lambda_runtime_run(struct px_lambda_runtime *rt) PX_WUR;

#endif
