/* errors.h: the single error shape of CONTRACT §4, for every function and way in.
 *
 * {"error":{"code":"...","message":"...","requestId":"...","details":[{"field":..,"reason":..}]}}
 */
#ifndef PX_ERRORS_H
#define PX_ERRORS_H

#include "request.h"

enum px_ecode {
    PX_E_VALIDATION_FAILED,      /* 400 */
    PX_E_UNAUTHORIZED,           /* 401 */
    PX_E_FORBIDDEN,              /* 403 */
    PX_E_NOT_FOUND,              /* 404 */
    PX_E_ROUTE_NOT_FOUND,        /* 404 */
    PX_E_METHOD_NOT_ALLOWED,     /* 405, with Allow */
    PX_E_CONFLICT,               /* 409 */
    PX_E_PAYLOAD_TOO_LARGE,      /* 413 */
    PX_E_UNSUPPORTED_MEDIA_TYPE, /* 415 */
    PX_E_HEADERS_TOO_LARGE,      /* 431 */
    PX_E_TOO_MANY_REQUESTS,      /* 429 */
    PX_E_AUDIT_UNAVAILABLE,      /* 503 */
    PX_E_DEPENDENCY_UNAVAILABLE, /* 503 */
    PX_E_INTERNAL,               /* 500 */
    PX_E_PRECONDITION_FAILED,    /* 412: If-Match names an older version */
    PX_E_PRECONDITION_REQUIRED,  /* 428: a write without If-Match */
    PX_E_IDEMPOTENCY_KEY_REUSED, /* 422: Idempotency-Key seen with another body */
    PX_E_MAINTENANCE,            /* 503: flags.maintenance is on (CONTRACT §9), with Retry-After */
    PX_E__COUNT
};

struct px_err_detail {
    const char *field;
    const char *reason;
};

/* HTTP status of code. */
int px_ecode_status(enum px_ecode code);
/* Wire name of code, e.g. "VALIDATION_FAILED". */
const char *px_ecode_name(enum px_ecode code);

/* Fills resp with the error shape; the body lives in req's arena. When even
 * that fails (arena cap), resp gets a static 500 body: it never fails. */
void px_error_response(struct px_request *req, struct px_response *resp, enum px_ecode code,
                       const char *message, const struct px_err_detail *details, size_t ndetails);

/* Replaces resp (whatever it held) with 503 AUDIT_UNAVAILABLE: used when the
 * audit record of a look-up could not be made durable, so no price leaves. */
void px_response_audit_failed(struct px_request *req, struct px_response *resp);

#endif
