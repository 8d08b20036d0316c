/* app.h: the application context, the route table and the dispatcher.
 *
 * One px_app per process: configuration, store handles and metrics, created
 * once at start-up (or Lambda init) and shared by every request. Functions
 * register route tables; every way in calls the same three steps:
 *   px_app_prepare()  -> ids; px_app_dispatch() -> handler; px_app_complete() -> headers + log. */
#ifndef PX_APP_H
#define PX_APP_H

#include "request.h"
#include "config.h"

struct px_app;
struct px_price_store;
struct px_audit_store;
struct px_product_store;
struct px_config_store;
struct px_config_cache;
struct px_auth;
struct px_ratelimit;

typedef px_rc (*px_handler_fn)(struct px_app *app, struct px_request *req,
                               struct px_response *resp);

struct px_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/price", "/products/{id}" */
    px_handler_fn fn;
    /* Permission the caller needs (a scope or role, e.g. "price:read"),
     * checked by the dispatcher before the handler runs (auth.h). NULL: any
     * authenticated caller (every caller under AUTH_MODE=none). */
    const char *permission;
};

struct px_function {
    const char *name; /* _HANDLER value, e.g. "price-fetcher" */
    const struct px_route *routes;
    size_t nroutes;
};

/* Loads the access control keys (AUTH_MODE) and opens the stores named by
 * cfg. On failure writes one human line naming the setting to err. */
px_rc px_app_new(const struct px_config *cfg, struct px_app **out, char *err, size_t errlen) PX_WUR;
/* Flushes and closes the stores, frees the app. Accepts NULL. */
void px_app_free(struct px_app *app);

const struct px_config *px_app_config(const struct px_app *app);
struct px_price_store *px_app_prices(struct px_app *app);
struct px_audit_store *px_app_audit(struct px_app *app);
/* The product store (PRODUCT_STORE), opened on first use so that a process
 * serving look-ups only never needs the catalogue file. NULL when it cannot be
 * opened (logged once per attempt); a later call tries again. Thread-safe. */
struct px_product_store *px_app_products(struct px_app *app);
/* The config store (CONFIG_STORE), opened on first use like the product
 * store. NULL when it cannot be opened now; a later call tries again. */
struct px_config_store *px_app_config_store(struct px_app *app);
/* The process-wide cache of config and flags (config_cache.h); NULL app: NULL. */
struct px_config_cache *px_app_config_cache(struct px_app *app);
/* Tenants (besides "default") with a config cache of their own per process. */
#define PX_APP_TENANT_CACHES 256
/* The cache of tenant's config and flags (TENANCY=on; NULL or "default": the
 * process-wide one), made on first use. NULL past PX_APP_TENANT_CACHES
 * tenants: their flags read as defaults (logged once). Thread-safe. */
struct px_config_cache *px_app_config_cache_for(struct px_app *app, const char *tenant);
/* The access control built from AUTH_MODE (NULL app: none). */
const struct px_auth *px_app_auth(const struct px_app *app);
/* The throttle built from RATE_LIMIT_RPS / RATE_LIMIT_BURST (NULL: off). */
struct px_ratelimit *px_app_ratelimit(struct px_app *app);

/* The functions this binary ships, and lookup by name (NULL when unknown). */
const struct px_function *const *px_functions(size_t *n);
const struct px_function *px_function_find(const char *name);

/* Assigns request_id (unless the transport set one) and correlation_id. */
px_rc px_app_prepare(struct px_app *app, struct px_request *req) PX_WUR;
/* Answers a CORS preflight from an allowed origin (cors.h), or routes req
 * (within `function` only, or all functions when NULL) and runs the handler.
 * Always leaves a complete response in resp: 404/405 for routing, 429 when
 * throttled (ratelimit.h), the error shape for handler failures. resp->audit
 * may be set (see request.h). */
void px_app_dispatch(struct px_app *app, const char *function, struct px_request *req,
                     struct px_response *resp);
/* Adds X-Request-Id, X-Correlation-Id, Cache-Control, the security headers
 * (security.h) and CORS headers (cors.h); logs one line; counts metrics. */
void px_app_complete(struct px_app *app, struct px_request *req, struct px_response *resp,
                     double latency_ms);

/* Fills a fresh unique request id (UUID v4 text, 36 chars + NUL) into out[37]. */
void px_new_request_id(char out[37]);
/* Current UTC time as RFC 3339 with milliseconds into out[25]; also epoch ms. */
int64_t px_now_rfc3339(char out[25]);

#endif
