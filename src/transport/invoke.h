/* invoke.h: one API Gateway proxy event through one function.
 *
 * The path shared by `pricing invoke` and the Lambda runtime loop: parse the
 * event, run the function's handler, make the audit record durable (blocking)
 * before anything is rendered, render the proxy response of the event's own
 * payload format. Everything per event lives in an arena freed before return. */
#ifndef PX_INVOKE_H
#define PX_INVOKE_H

#include "kernel/app.h"
#include "kernel/buf.h"

/* What one event came to, for callers that count outcomes (Lambda metrics).
 * Strings are static (route table, error code names), valid after return. */
struct px_invoke_result {
    int status;             /* HTTP status of the response */
    bool audit_failed;      /* the audit record could not be made durable (503) */
    const char *error_code; /* CONTRACT §4 code of an error response, else NULL */
    const char *route;      /* route pattern that matched, NULL when none */
    char tenant[64 + 1];    /* the request's tenant (TENANCY=on), "" when none; a copy */
};

/* Runs json[0..len) (an API Gateway 1.0 or 2.0 event) through `function`
 * (every function's routes when NULL) and appends the proxy response JSON to
 * out (caller-owned). request_id, when non-NULL, becomes the request id (the
 * Lambda request id); deadline_ms is the epoch ms the answer is due by (0 =
 * none). PX_OK whenever a response was produced, whatever its status code;
 * PX_ERR_INVALID when json is not an API Gateway proxy event; PX_ERR_NOT_FOUND
 * for an unknown function; PX_ERR_TOO_LARGE past PX_MAX_EVENT or when the
 * response does not fit in out (out is then left as it was). With a deadline
 * the audit wait ends PX_AUDIT_DEADLINE_MARGIN_MS before it (503), and an
 * event that arrives past that point is answered 503 without being run.
 * result (may be NULL) is filled whenever a response was built. */
px_rc px_invoke_event(struct px_app *app, const char *function, const char *json, size_t len,
                      const char *request_id, int64_t deadline_ms, struct px_buf *out,
                      struct px_invoke_result *result) PX_WUR;

#endif
