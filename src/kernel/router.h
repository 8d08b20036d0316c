/* router.h: route matching and handler dispatch over a list of functions.
 *
 * px_app_dispatch() is this plus the function registry; kept apart so the
 * matching rules are testable with any route table and no stores. Strings it
 * stores in the request (function, route, path params) are the table's own
 * static strings or arena copies. */
#ifndef PX_ROUTER_H
#define PX_ROUTER_H

#include "app.h"

/* Matches path against pattern ("/products/{id}"): '/'-separated segments,
 * literal segments compare exactly, `{name}` takes one non-empty segment.
 * When params is non-NULL the captures are appended to it (arena strings;
 * room for at least as many entries as the pattern has captures). */
bool px_router_path_match(const char *pattern, const char *path, struct px_arena *a,
                          struct px_kv *params, size_t *nparams);

/* Finds the route of req among fns (in table order). PX_OK: *route_out is set
 * and req->function, req->route and req->path_params are filled.
 * PX_ERR_NOT_FOUND: resp holds 404 ROUTE_NOT_FOUND, or 405 METHOD_NOT_ALLOWED
 * with an Allow header listing the methods of every matching route.
 * HEAD matches GET routes. A NULL req->path (some API Gateway events) selects
 * the first route whose method matches, when fns holds exactly one function. */
px_rc px_router_route(const struct px_function *const *fns, size_t nfns, struct px_request *req,
                      struct px_response *resp, const struct px_route **route_out) PX_WUR;

/* Routes req, checks access (px_auth_check() with the route's permission:
 * 401/403 and no handler when refused) and runs the handler; always leaves a
 * complete response. A handler that fails without setting a status yields 500
 * INTERNAL, or 503 DEPENDENCY_UNAVAILABLE for PX_ERR_UNAVAILABLE /
 * PX_ERR_TIMEOUT / PX_ERR_BUSY. */
void px_router_dispatch(struct px_app *app, const struct px_function *const *fns, size_t nfns,
                        struct px_request *req, struct px_response *resp);

#endif
