/* app.c: the application context and the three request steps. */
#include "app.h"

#include "auth.h"
#include "cors.h"
#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "ossl.h"
#include "ratelimit.h"
#include "router.h"
#include "security.h"
#include "validate.h"
#include "../store/audit.h"
#include "../store/price.h"
#include "../store/product.h"
#include "../store/config_store.h"
#include "../store/sqlite_store.h"
#include "config_cache.h"

#include <pthread.h>
#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct px_app {
    struct px_config cfg; /* own copy: store options point into it */
    struct px_price_store *prices;
    struct px_audit_store *audit;
    struct px_auth *auth;           /* read-only once built: shared by every request thread */
    struct px_ratelimit *ratelimit; /* NULL when RATE_LIMIT_RPS is 0 */
    pthread_mutex_t products_mu;
    struct px_product_store *_Atomic products; /* opened on first use */
    pthread_mutex_t config_mu;
    struct px_config_store *_Atomic config; /* opened on first use */
    bool config_open_failed;                /* logged once until an open succeeds */
    struct px_config_cache *config_cache;   /* built with the app; reads open config lazily */
    /* TENANCY=on: the caches of other tenants, made on first use and kept
     * until the app goes; slots [0, ntenant_caches) are published. */
    pthread_mutex_t tenant_cache_mu;
    struct px_config_cache *tenant_caches[PX_APP_TENANT_CACHES];
    atomic_size_t ntenant_caches;
    atomic_bool tenant_caches_full_logged;
};

/* A spec for an error line: a URI's password never reaches stderr. */
static void spec_for_humans(const char *spec, char *out, size_t outlen)
{
    const char *scheme_end = strstr(spec, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3)) : NULL;
    if (!colon) {
        snprintf(out, outlen, "%s", spec);
        return;
    }
    snprintf(out, outlen, "%.*s:***%s", (int)(colon - spec), spec, at);
}

/* "<SETTING>: cannot open <spec>: <reason>", without repeating the setting
 * when the store's reason already starts with it. */
static void open_error(const char *setting, const char *spec, const char *reason, char *err,
                       size_t errlen)
{
    char shown[512];
    size_t sl = strlen(setting);
    spec_for_humans(spec, shown, sizeof(shown));
    if (strncmp(reason, setting, sl) == 0 && reason[sl] == ':') {
        reason += sl + 1;
        while (*reason == ' ')
            reason++;
    }
    snprintf(err, errlen, "%s: cannot open %s: %s", setting, shown,
             reason[0] ? reason : "unknown error");
}

static const char *or_null(const char *s)
{
    return s && s[0] ? s : NULL;
}

px_rc px_app_new(const struct px_config *cfg, struct px_app **out, char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    char reason[512] = "";
    *out = NULL;
    /* main() has done it already; an embedder (a test, a fuzz harness) gets the
     * same OpenSSL set-up here, before any store thread can be the first to
     * touch OpenSSL and load its configuration from that thread. */
    if (px_ossl_init() != PX_OK) {
        snprintf(err, errlen, "cannot initialise OpenSSL");
        return PX_ERR_NOMEM;
    }
    px_sqlite_init();
    struct px_app *app = calloc(1, sizeof(*app));
    if (!app) {
        snprintf(err, errlen, "out of memory");
        return PX_ERR_NOMEM;
    }
    app->cfg = *cfg;
    pthread_mutex_init(&app->products_mu, NULL);
    pthread_mutex_init(&app->config_mu, NULL);
    pthread_mutex_init(&app->tenant_cache_mu, NULL);

    /* Keys first: a bad key file is a configuration error, found before any store is touched. */
    rc = px_auth_new(&app->cfg, &app->auth, err, errlen);
    if (rc)
        goto out;

    if (app->cfg.rate_limit_rps > 0) {
        long burst =
            app->cfg.rate_limit_burst ? app->cfg.rate_limit_burst : app->cfg.rate_limit_rps;
        const struct px_ratelimit_opts ro = {
            .rate_milli = (uint64_t)app->cfg.rate_limit_rps * 1000u,
            .burst = (uint64_t)burst,
        };
        rc = px_ratelimit_new(&ro, &app->ratelimit);
        if (rc) {
            snprintf(err, errlen, "RATE_LIMIT_RPS: cannot set up throttling: %s", px_strerror(rc));
            goto out;
        }
    }

    struct px_price_opts popts = {
        .pool_size = (unsigned)(app->cfg.threads + 2),
        .timeout_ms = app->cfg.price_timeout_ms,
        .create = false,
    };
    rc = px_price_open(app->cfg.price_db, &popts, &app->prices, reason, sizeof(reason));
    if (rc) {
        open_error("PRICE_DB", app->cfg.price_db, reason, err, errlen);
        goto out;
    }

    struct px_audit_opts aopts = {
        .timeout_ms = app->cfg.audit_timeout_ms,
        .max_batch = (unsigned)app->cfg.audit_max_batch,
        /* every connection waits for at most one record */
        .queue_cap = (unsigned)app->cfg.max_connections,
        .create = false,
        .must_exist = !app->cfg.audit_create,
        .signing_key_file = px_config_signing_key(&app->cfg),
        .region = or_null(app->cfg.aws_region),
        .endpoint = or_null(app->cfg.dynamodb_endpoint),
        .access_key_id = or_null(app->cfg.aws_access_key_id),
        .secret_access_key = or_null(app->cfg.aws_secret_access_key),
        .session_token = or_null(app->cfg.aws_session_token),
    };
    reason[0] = '\0';
    rc = px_audit_open(app->cfg.audit_store, &aopts, &app->audit, reason, sizeof(reason));
    if (rc) {
        open_error("AUDIT_STORE", app->cfg.audit_store, reason, err, errlen);
        goto out;
    }
    /* Records are still chained, but a tail written since the last checkpoint
     * can be cut off unseen, and verify reports the trail as not proven. */
    if (!aopts.signing_key_file)
        PX_WARN(NULL, "no audit signing key (AUDIT_SIGNING_KEY_FILE): records are chained but "
                      "no checkpoints are signed; `pricing audit keygen` makes one");
    rc = px_config_cache_new(app, &app->config_cache);
    if (rc) {
        snprintf(err, errlen, "CONFIG_CACHE_TTL_S: cannot set up the config cache: %s",
                 px_strerror(rc));
        goto out;
    }
    *out = app;
    app = NULL;
out:
    px_app_free(app);
    return rc;
}

void px_app_free(struct px_app *app)
{
    if (!app)
        return;
    /* Audit first: it waits for records in flight, whose requests may still
     * be reading prices. */
    px_audit_close(app->audit);
    app->audit = NULL;
    px_price_close(app->prices);
    app->prices = NULL;
    px_product_close(app->products);
    app->products = NULL;
    pthread_mutex_destroy(&app->products_mu);
    px_config_cache_free(app->config_cache);
    app->config_cache = NULL;
    for (size_t i = 0; i < atomic_load(&app->ntenant_caches); i++)
        px_config_cache_free(app->tenant_caches[i]);
    atomic_store(&app->ntenant_caches, 0);
    pthread_mutex_destroy(&app->tenant_cache_mu);
    px_config_store_close(app->config);
    app->config = NULL;
    pthread_mutex_destroy(&app->config_mu);
    px_auth_free(app->auth);
    app->auth = NULL;
    px_ratelimit_free(app->ratelimit);
    app->ratelimit = NULL;
    free(app);
}

const struct px_config *px_app_config(const struct px_app *app)
{
    return app ? &app->cfg : &px_config_defaults;
}

const struct px_auth *px_app_auth(const struct px_app *app)
{
    return app ? app->auth : NULL;
}

struct px_ratelimit *px_app_ratelimit(struct px_app *app)
{
    return app ? app->ratelimit : NULL;
}

struct px_price_store *px_app_prices(struct px_app *app)
{
    return app ? app->prices : NULL;
}

struct px_product_store *px_app_products(struct px_app *app)
{
    if (!app)
        return NULL;
    struct px_product_store *s = app->products;
    if (s)
        return s;
    pthread_mutex_lock(&app->products_mu);
    if (!app->products) {
        char err[512] = "";
        const struct px_product_opts o = {
            .timeout_ms = 10000,
            .create = false,
            .region = or_null(app->cfg.aws_region),
            .endpoint = or_null(app->cfg.dynamodb_endpoint),
            .access_key_id = or_null(app->cfg.aws_access_key_id),
            .secret_access_key = or_null(app->cfg.aws_secret_access_key),
            .session_token = or_null(app->cfg.aws_session_token),
        };
        if (px_product_open(app->cfg.product_store, &o, &s, err, sizeof(err)) == PX_OK)
            app->products = s;
        else
            PX_ERROR(NULL, "%s", err);
    }
    s = app->products;
    pthread_mutex_unlock(&app->products_mu);
    return s;
}

struct px_config_store *px_app_config_store(struct px_app *app)
{
    if (!app)
        return NULL;
    struct px_config_store *s = app->config;
    if (s)
        return s;
    pthread_mutex_lock(&app->config_mu);
    if (!app->config) {
        char err[512] = "";
        const struct px_config_store_opts o = {
            /* SQLite: the wait for the write lock (writers queue behind each other's
             * audit fsync); DynamoDB: one call, bounded like an audit write, since
             * the config cache's refresh runs on a request's thread. */
            .timeout_ms = strncmp(app->cfg.config_store, "dynamodb:", 9) == 0
                              ? app->cfg.audit_timeout_ms
                              : 10000,
            .create = false,
            .region = or_null(app->cfg.aws_region),
            .endpoint = or_null(app->cfg.dynamodb_endpoint),
            .access_key_id = or_null(app->cfg.aws_access_key_id),
            .secret_access_key = or_null(app->cfg.aws_secret_access_key),
            .session_token = or_null(app->cfg.aws_session_token),
        };
        if (px_config_store_open(app->cfg.config_store, &o, &s, err, sizeof(err)) == PX_OK) {
            app->config = s;
            app->config_open_failed = false;
        } else if (!app->config_open_failed) {
            /* The cache retries every CONFIG_CACHE_TTL_S: one line, not one per retry. */
            PX_ERROR(NULL, "%s", err);
            app->config_open_failed = true;
        }
    }
    s = app->config;
    pthread_mutex_unlock(&app->config_mu);
    return s;
}

struct px_config_cache *px_app_config_cache(struct px_app *app)
{
    return app ? app->config_cache : NULL;
}

static struct px_config_cache *tenant_cache_find(struct px_app *app, const char *tenant, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(px_config_cache_tenant(app->tenant_caches[i]), tenant) == 0)
            return app->tenant_caches[i];
    return NULL;
}

struct px_config_cache *px_app_config_cache_for(struct px_app *app, const char *tenant)
{
    if (!app || !tenant || strcmp(tenant, "default") == 0)
        return px_app_config_cache(app);
    size_t n = atomic_load_explicit(&app->ntenant_caches, memory_order_acquire);
    struct px_config_cache *c = tenant_cache_find(app, tenant, n);
    if (c)
        return c;
    pthread_mutex_lock(&app->tenant_cache_mu);
    n = atomic_load_explicit(&app->ntenant_caches, memory_order_relaxed);
    c = tenant_cache_find(app, tenant, n);
    if (!c && n < PX_APP_TENANT_CACHES && px_config_cache_new_for(app, tenant, &c) == PX_OK) {
        app->tenant_caches[n] = c;
        atomic_store_explicit(&app->ntenant_caches, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&app->tenant_cache_mu);
    if (!c && !atomic_exchange(&app->tenant_caches_full_logged, true))
        PX_WARN(NULL,
                "config cache: %d tenants have one already; the flags of further tenants "
                "are their defaults in this process",
                PX_APP_TENANT_CACHES);
    return c;
}

struct px_audit_store *px_app_audit(struct px_app *app)
{
    return app ? app->audit : NULL;
}

px_rc px_app_prepare(struct px_app *app, struct px_request *req)
{
    PX_UNUSED(app);
    px_log_set_tenant(NULL);
    if (!req->request_id) {
        char *id = px_arena_alloc(req->arena, 37);
        if (!id)
            return PX_ERR_NOMEM;
        px_new_request_id(id);
        req->request_id = id;
    }
    const char *corr = px_request_header(req, "x-correlation-id");
    req->correlation_id = px_valid_request_id(corr) ? corr : req->request_id;
    return PX_OK;
}

/* TENANCY=on: a browser may send X-Tenant-ID cross-origin too. Off, the
 * preflight answer stays what it was. */
static bool preflight(struct px_app *app, const struct px_function *const *fns, size_t n,
                      struct px_request *req, struct px_response *resp)
{
    if (!px_cors_preflight(app ? app->cfg.cors_origins : NULL, fns, n, req, resp))
        return false;
    for (size_t i = 0; app && app->cfg.tenancy && i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].key, "Access-Control-Allow-Headers") == 0)
            resp->headers[i].value = PX_CORS_ALLOW_HEADERS ", X-Tenant-ID";
    return true;
}

void px_app_dispatch(struct px_app *app, const char *function, struct px_request *req,
                     struct px_response *resp)
{
    if (!function) {
        size_t n = 0;
        const struct px_function *const *fns = px_functions(&n);
        if (!preflight(app, fns, n, req, resp))
            px_router_dispatch(app, fns, n, req, resp);
        px_log_set_tenant(NULL);
        return;
    }
    const struct px_function *fn = px_function_find(function);
    if (!fn) {
        /* A deployment error (_HANDLER names no function), not the client's. */
        memset(resp, 0, sizeof(*resp));
        PX_ERROR(req->request_id, "no function named %s in this binary", function);
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
        return;
    }
    const struct px_function *one[1] = {fn};
    if (!preflight(app, one, 1, req, resp))
        px_router_dispatch(app, one, 1, req, resp);
    px_log_set_tenant(NULL);
}

void px_app_complete(struct px_app *app, struct px_request *req, struct px_response *resp,
                     double latency_ms)
{
    PX_UNUSED(app);
    px_response_header_default(resp, "X-Request-Id", req->request_id);
    px_response_header_default(resp, "X-Correlation-Id",
                               req->correlation_id ? req->correlation_id : req->request_id);
    px_response_header_default(resp, "Cache-Control", "no-store");
    px_response_header_default(resp, "X-Content-Type-Options", "nosniff");
    px_security_headers(req, resp);
    px_cors_headers(app ? app->cfg.cors_origins : NULL, req, resp);
    /* The gate has settled by now: a record still attached was made durable. */
    if (resp->audit)
        px_metrics_audit(true);
    else if (resp->audit_failed)
        px_metrics_audit(false);
    px_log_request(req, resp, latency_ms);
    px_metrics_request(req->function, req->route, resp->status, latency_ms);
    px_metrics_tenant(req->tenant, resp->status);
}
