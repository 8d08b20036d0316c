/* invoke.c: one event in, one proxy response out (see invoke.h). */
#include "invoke.h"
#include "kernel/apigw.h"
#include "kernel/errors.h"
#include "store/audit.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Room for the parsed event (strings copied out of the JSON, query, headers)
 * and what the handler allocates, in proportion to the event. */
#define ARENA_BASE (1024u * 1024u)

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The CONTRACT §4 code of an error body, as the static name errors.c uses:
 * every error body starts {"error":{"code":"NAME". */
static const char *error_code_of(const struct px_response *resp)
{
    static const char prefix[] = "{\"error\":{\"code\":\"";
    const size_t plen = sizeof(prefix) - 1;
    if (!resp->body || resp->body_len <= plen || memcmp(resp->body, prefix, plen) != 0)
        return NULL;
    const char *name = resp->body + plen;
    size_t left = resp->body_len - plen;
    for (int c = 0; c < PX_E__COUNT; c++) {
        const char *n = px_ecode_name((enum px_ecode)c);
        size_t nl = strlen(n);
        if (nl < left && memcmp(name, n, nl) == 0 && name[nl] == '"')
            return n;
    }
    return NULL;
}

px_rc px_invoke_event(struct px_app *app, const char *function, const char *json, size_t len,
                      const char *request_id, int64_t deadline_ms, struct px_buf *out,
                      struct px_invoke_result *result)
{
    px_rc rc = PX_OK;
    struct px_arena *a = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (result)
        memset(result, 0, sizeof(*result));
    if (len > PX_MAX_EVENT)
        return PX_ERR_TOO_LARGE;
    if (function && !px_function_find(function))
        return PX_ERR_NOT_FOUND;
    a = px_arena_new(ARENA_BASE + 2 * len);
    if (!a)
        return PX_ERR_NOMEM;

    struct px_request req = {.arena = a};
    struct px_response resp = {.status = 0};
    enum px_apigw_format fmt = PX_APIGW_V2;
    bool audit_failed = false;
    rc = px_apigw_parse(a, json, len, &req, &fmt);
    if (rc)
        goto out;
    req.arena = a;
    if (request_id && request_id[0]) {
        req.request_id = px_arena_strdup(a, request_id);
        if (!req.request_id) {
            rc = PX_ERR_NOMEM;
            goto out;
        }
    }
    req.deadline_ms = deadline_ms;

    if (px_app_prepare(app, &req) != PX_OK) {
        px_error_response(&req, &resp, PX_E_INTERNAL, "internal error", NULL, 0);
    } else if (deadline_ms > 0 && wall_ms() >= deadline_ms - PX_AUDIT_DEADLINE_MARGIN_MS) {
        /* Too late to look anything up and still make its record durable. */
        px_error_response(&req, &resp, PX_E_DEPENDENCY_UNAVAILABLE,
                          "the invocation deadline leaves no time to answer", NULL, 0);
    } else {
        px_app_dispatch(app, function, &req, &resp);
    }
    /* The record is durable before the response exists outside this function;
     * with a deadline, the wait ends early enough to answer 503 in time. */
    if (resp.audit && px_audit_append_until(px_app_audit(app), resp.audit, deadline_ms) != PX_OK) {
        px_response_audit_failed(&req, &resp);
        audit_failed = true;
    }

    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    px_app_complete(app, &req, &resp, ms);
    if (result) {
        result->status = resp.status;
        result->audit_failed = audit_failed;
        result->error_code = error_code_of(&resp);
        result->route = req.route;
        snprintf(result->tenant, sizeof(result->tenant), "%s", req.tenant ? req.tenant : "");
    }
    rc = px_apigw_render(&resp, fmt, out);
out:
    px_arena_free(a);
    return rc;
}
