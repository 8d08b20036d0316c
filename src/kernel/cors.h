/* cors.h: cross-origin access for a browser front end (CORS_ALLOW_ORIGINS).
 *
 * The allow list is the configuration string itself: comma-separated exact
 * origins ("https://app.example.com,http://localhost:5173"), checked once at
 * start-up by px_cors_check_origins() and read in place afterwards, so there
 * is no state to share or free. Nothing is allowed by default: with an empty
 * list, or an Origin not on it, no Access-Control-* header is ever written.
 * Origins are echoed, never `*`, and credentials (cookies) are never allowed:
 * the API authenticates with the Authorization header, which a preflight
 * allows explicitly. */
#ifndef PX_CORS_H
#define PX_CORS_H

#include "app.h"

#define PX_CORS_MAX_ORIGINS 32
#define PX_CORS_MAX_AGE_S   "600"
/* Request headers a browser may send cross-origin. */
#define PX_CORS_ALLOW_HEADERS "Authorization, Content-Type, X-Correlation-Id"
/* Response headers a browser script may read. */
#define PX_CORS_EXPOSE_HEADERS "X-Request-Id, X-Correlation-Id, Retry-After"

/* PX_OK when list is empty or holds 1..PX_CORS_MAX_ORIGINS origins of the form
 * http[s]://host[:port] (no path, no wildcard, no "null"); otherwise
 * PX_ERR_CONFIG with one line in err (without the variable name). */
px_rc px_cors_check_origins(const char *list, char *err, size_t errlen) PX_WUR;

/* Whether origin (an Origin header value) is on list; ASCII case-insensitive,
 * as origins compare. False for NULL or an empty list. */
bool px_cors_origin_allowed(const char *list, const char *origin);

/* Answers a CORS preflight: OPTIONS with Origin and Access-Control-Request-
 * Method, from an allowed origin, on a path some route of fns serves. Then
 * resp is 204 with Access-Control-Allow-Origin/-Methods/-Headers/-Max-Age,
 * req->function and req->route name the first matching route, and true is
 * returned. Anything else returns false with resp untouched (routing then
 * answers it as any other request: 404, or 405 with Allow). */
bool px_cors_preflight(const char *list, const struct px_function *const *fns, size_t nfns,
                       struct px_request *req, struct px_response *resp);

/* Adds Vary: Origin whenever list is non-empty, and for an allowed Origin
 * Access-Control-Allow-Origin (unless present) and -Expose-Headers. */
void px_cors_headers(const char *list, const struct px_request *req, struct px_response *resp);

#endif
