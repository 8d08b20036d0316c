/* errors.c: the one error shape (CONTRACT §4). */
#include "errors.h"

#include "buf.h"

#include <string.h>

/* Bodies are small; a cap keeps a runaway details list from eating the arena. */
#define ERROR_BODY_MAX (64 * 1024)

static const struct {
    int status;
    const char *name;
    const char *message; /* used when the caller gives none */
} codes[PX_E__COUNT] = {
    [PX_E_VALIDATION_FAILED] = {400, "VALIDATION_FAILED", "the request is not valid"},
    [PX_E_UNAUTHORIZED] = {401, "UNAUTHORIZED", "authentication is required"},
    [PX_E_FORBIDDEN] = {403, "FORBIDDEN", "not allowed"},
    [PX_E_NOT_FOUND] = {404, "NOT_FOUND", "not found"},
    [PX_E_ROUTE_NOT_FOUND] = {404, "ROUTE_NOT_FOUND", "no route matches this path"},
    [PX_E_METHOD_NOT_ALLOWED] = {405, "METHOD_NOT_ALLOWED", "method not allowed on this route"},
    [PX_E_CONFLICT] = {409, "CONFLICT", "conflict with the current state"},
    [PX_E_PAYLOAD_TOO_LARGE] = {413, "PAYLOAD_TOO_LARGE", "the request body is too large"},
    [PX_E_UNSUPPORTED_MEDIA_TYPE] = {415, "UNSUPPORTED_MEDIA_TYPE", "unsupported media type"},
    [PX_E_HEADERS_TOO_LARGE] = {431, "HEADERS_TOO_LARGE", "the request headers are too large"},
    [PX_E_TOO_MANY_REQUESTS] = {429, "TOO_MANY_REQUESTS", "too many requests"},
    [PX_E_AUDIT_UNAVAILABLE] = {503, "AUDIT_UNAVAILABLE",
                                "the audit record could not be made durable; no price was "
                                "returned"},
    [PX_E_DEPENDENCY_UNAVAILABLE] = {503, "DEPENDENCY_UNAVAILABLE", "a dependency is unavailable"},
    [PX_E_INTERNAL] = {500, "INTERNAL", "internal error"},
    [PX_E_PRECONDITION_FAILED] = {412, "PRECONDITION_FAILED",
                                  "the item changed since the version named by If-Match"},
    [PX_E_PRECONDITION_REQUIRED] = {428, "PRECONDITION_REQUIRED",
                                    "this write needs an If-Match header"},
    [PX_E_IDEMPOTENCY_KEY_REUSED] = {422, "IDEMPOTENCY_KEY_REUSED",
                                     "this Idempotency-Key was used with another request body"},
    [PX_E_MAINTENANCE] = {503, "MAINTENANCE", "the service is in maintenance; retry later"},
};

/* Static bodies for when the arena cannot hold the real one: same code,
 * no request id (the arena that would hold it is what ran out). */
#define STATIC_BODY(name, msg)                                                                     \
    "{\"error\":{\"code\":\"" name "\",\"message\":\"" msg "\",\"requestId\":null}}"
static const char internal_body[] = STATIC_BODY("INTERNAL", "internal error");
static const char audit_body[] = STATIC_BODY(
    "AUDIT_UNAVAILABLE", "the audit record could not be made durable; no price was returned");

static bool valid_code(enum px_ecode code)
{
    return (unsigned)code < PX_E__COUNT;
}

int px_ecode_status(enum px_ecode code)
{
    return valid_code(code) ? codes[code].status : 500;
}

const char *px_ecode_name(enum px_ecode code)
{
    return valid_code(code) ? codes[code].name : "INTERNAL";
}

static px_rc render(struct px_buf *b, const char *name, const char *message, const char *request_id,
                    const struct px_err_detail *details, size_t ndetails)
{
    px_rc rc = px_buf_adds(b, "{\"error\":{\"code\":");
    if (!rc)
        rc = px_buf_json_strz(b, name);
    if (!rc)
        rc = px_buf_adds(b, ",\"message\":");
    if (!rc)
        rc = px_buf_json_strz(b, message);
    if (!rc)
        rc = px_buf_adds(b, ",\"requestId\":");
    if (!rc)
        rc = px_buf_json_strz(b, request_id);
    if (!rc && details && ndetails > 0) {
        rc = px_buf_adds(b, ",\"details\":[");
        for (size_t i = 0; !rc && i < ndetails; i++) {
            rc = px_buf_adds(b, i ? ",{\"field\":" : "{\"field\":");
            if (!rc)
                rc = px_buf_json_strz(b, details[i].field);
            if (!rc)
                rc = px_buf_adds(b, ",\"reason\":");
            if (!rc)
                rc = px_buf_json_strz(b, details[i].reason);
            if (!rc)
                rc = px_buf_adds(b, "}");
        }
        if (!rc)
            rc = px_buf_adds(b, "]");
    }
    if (!rc)
        rc = px_buf_adds(b, "}}");
    return rc;
}

void px_error_response(struct px_request *req, struct px_response *resp, enum px_ecode code,
                       const char *message, const struct px_err_detail *details, size_t ndetails)
{
    if (!resp)
        return;
    if (!valid_code(code))
        code = PX_E_INTERNAL;
    if (!message)
        message = codes[code].message;

    struct px_buf b;
    px_buf_init(&b, ERROR_BODY_MAX);
    char *body = NULL;
    px_rc rc =
        render(&b, codes[code].name, message, req ? req->request_id : NULL, details, ndetails);
    if (!rc && req)
        body = px_arena_strndup(req->arena, b.data, b.len);

    resp->content_type = NULL;
    if (body) {
        resp->status = codes[code].status;
        resp->body = body;
        resp->body_len = b.len;
    } else if (code == PX_E_AUDIT_UNAVAILABLE) {
        /* Still the truthful answer: the audit failed; keep its status. */
        resp->status = 503;
        resp->body = audit_body;
        resp->body_len = sizeof(audit_body) - 1;
    } else {
        resp->status = 500;
        resp->body = internal_body;
        resp->body_len = sizeof(internal_body) - 1;
    }
    px_buf_free(&b);
}

void px_response_audit_failed(struct px_request *req, struct px_response *resp)
{
    if (!resp)
        return;
    /* Whatever the handler put in (price body, headers), none of it may leave. */
    memset(resp, 0, sizeof(*resp));
    px_error_response(req, resp, PX_E_AUDIT_UNAVAILABLE, NULL, NULL, 0);
    resp->audit_failed = true;
}
