/* router.c: route matching and handler dispatch. */
#include "router.h"

#include "auth.h"
#include "errors.h"
#include "log.h"
#include "ratelimit.h"
#include "tenant.h"

#include <string.h>

#define ALLOW_MAX 128

/* Next segment of a '/'-separated path: *p points at a '/', on return *seg
 * and *len describe the segment after it and *p the next '/' or the end. */
static bool next_segment(const char **p, const char **seg, size_t *len)
{
    if (**p != '/')
        return false;
    *seg = *p + 1;
    const char *end = strchr(*seg, '/');
    *len = end ? (size_t)(end - *seg) : strlen(*seg);
    *p = *seg + *len;
    return true;
}

bool px_router_path_match(const char *pattern, const char *path, struct px_arena *a,
                          struct px_kv *params, size_t *nparams)
{
    if (!pattern || !path || pattern[0] != '/' || path[0] != '/')
        return false;
    size_t first = nparams ? *nparams : 0;
    const char *pp = pattern, *tp = path;
    /* A pattern has a handful of segments; the bound only guards odd tables. */
    for (int guard = 0; guard < 64; guard++) {
        if (!*pp && !*tp)
            return true;
        const char *ps, *ts;
        size_t pl, tl;
        if (!next_segment(&pp, &ps, &pl) || !next_segment(&tp, &ts, &tl))
            break;
        bool capture = pl >= 3 && ps[0] == '{' && ps[pl - 1] == '}';
        if (capture) {
            if (tl == 0)
                break;
            if (params && nparams) {
                char *key = px_arena_strndup(a, ps + 1, pl - 2);
                char *value = px_arena_strndup(a, ts, tl);
                if (!key || !value)
                    break;
                params[*nparams].key = key;
                params[*nparams].value = value;
                (*nparams)++;
            }
        } else if (pl != tl || memcmp(ps, ts, pl) != 0) {
            break;
        }
    }
    if (nparams)
        *nparams = first;
    return false;
}

static bool method_matches(const char *route_method, const char *method)
{
    if (!route_method || !method)
        return false;
    if (strcmp(route_method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

static size_t count_captures(const char *pattern)
{
    size_t n = 0;
    for (const char *p = pattern; (p = strchr(p, '{')) != NULL; p++)
        n++;
    return n;
}

/* Appends method to the comma-separated list unless it is there already. */
static void allow_add(char *allow, size_t *len, const char *method)
{
    size_t ml = strlen(method);
    for (const char *p = allow; *p;) {
        size_t l = strcspn(p, ",");
        if (l == ml && memcmp(p, method, ml) == 0)
            return;
        p += l;
        while (*p == ',' || *p == ' ')
            p++;
    }
    size_t need = (*len ? 2 : 0) + ml;
    if (*len + need >= ALLOW_MAX)
        return;
    if (*len) {
        memcpy(allow + *len, ", ", 2);
        *len += 2;
    }
    memcpy(allow + *len, method, ml);
    *len += ml;
    allow[*len] = '\0';
}

static px_rc select_route(struct px_request *req, const struct px_function *fn,
                          const struct px_route *r, const struct px_route **route_out)
{
    size_t cap = req->path ? count_captures(r->pattern) : 0;
    req->path_params = NULL;
    req->npath_params = 0;
    if (cap) {
        struct px_kv *params = px_arena_calloc(req->arena, cap * sizeof(*params));
        size_t n = 0;
        if (!params || !px_router_path_match(r->pattern, req->path, req->arena, params, &n))
            return PX_ERR_NOMEM;
        req->path_params = params;
        req->npath_params = n;
    }
    req->function = fn->name;
    req->route = r->pattern;
    *route_out = r;
    return PX_OK;
}

px_rc px_router_route(const struct px_function *const *fns, size_t nfns, struct px_request *req,
                      struct px_response *resp, const struct px_route **route_out)
{
    char allow[ALLOW_MAX] = "";
    size_t allow_len = 0;
    bool path_matched = false;
    *route_out = NULL;

    if (!req->path && nfns != 1) {
        px_error_response(req, resp, PX_E_ROUTE_NOT_FOUND, NULL, NULL, 0);
        return PX_ERR_NOT_FOUND;
    }
    for (size_t f = 0; f < nfns; f++) {
        const struct px_function *fn = fns[f];
        if (!fn)
            continue;
        for (size_t i = 0; i < fn->nroutes; i++) {
            const struct px_route *r = &fn->routes[i];
            if (req->path && !px_router_path_match(r->pattern, req->path, NULL, NULL, NULL))
                continue;
            path_matched = true;
            if (method_matches(r->method, req->method)) {
                px_rc rc = select_route(req, fn, r, route_out);
                if (rc)
                    px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
                return rc;
            }
            if (r->method)
                allow_add(allow, &allow_len, r->method);
        }
    }
    if (!path_matched) {
        px_error_response(req, resp, PX_E_ROUTE_NOT_FOUND, NULL, NULL, 0);
        return PX_ERR_NOT_FOUND;
    }
    px_error_response(req, resp, PX_E_METHOD_NOT_ALLOWED, NULL, NULL, 0);
    const char *value = px_arena_strndup(req->arena, allow, allow_len);
    if (!value || px_response_header(resp, "Allow", value))
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
    return PX_ERR_NOT_FOUND;
}

static enum px_ecode failure_code(px_rc rc)
{
    switch (rc) {
    case PX_ERR_UNAVAILABLE:
    case PX_ERR_TIMEOUT:
    case PX_ERR_BUSY:
        return PX_E_DEPENDENCY_UNAVAILABLE;
    default:
        return PX_E_INTERNAL;
    }
}

void px_router_dispatch(struct px_app *app, const struct px_function *const *fns, size_t nfns,
                        struct px_request *req, struct px_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    const struct px_route *route = NULL;
    if (px_router_route(fns, nfns, req, resp, &route))
        return;
    /* Before the handler and its validation: a caller who may not use the
     * route learns nothing about its parameters or data. */
    px_rc access = px_auth_check(px_app_auth(app), req, route->permission, resp);
    /* Once per request, for every way in: the stores below see only req->tenant. */
    const struct px_config *cfg = px_app_config(app);
    if (access == PX_OK && cfg)
        access = px_tenant_resolve(cfg->tenancy, px_auth_mode(px_app_auth(app)), req, resp);
    if (access == PX_OK)
        px_log_set_tenant(req->tenant);
    /* Throttled whatever the verdict, so refused attempts count against the
     * caller (its address when unauthenticated); a throttled request reaches
     * no handler, so it is never an audited look-up. */
    if (px_ratelimit_request(px_app_ratelimit(app), req, resp) || access != PX_OK)
        return;
    px_rc rc = route->fn ? route->fn(app, req, resp) : PX_ERR_INTERNAL;
    if (rc == PX_OK && resp->status != 0)
        return;
    if (rc != PX_OK && resp->status != 0)
        return; /* the handler answered with its own error shape */
    if (rc == PX_OK)
        rc = PX_ERR_INTERNAL; /* success without an answer is a handler bug */
    PX_ERROR(req->request_id, "handler %s %s failed: %s", req->method ? req->method : "-",
             req->route, px_strerror(rc));
    /* Keep the audit record (a failed look-up is still audited); drop the rest. */
    struct px_audit_record *audit = resp->audit;
    memset(resp, 0, sizeof(*resp));
    resp->audit = audit;
    px_error_response(req, resp, failure_code(rc), NULL, NULL, 0);
}
