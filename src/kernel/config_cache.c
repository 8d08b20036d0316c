/* config_cache.c: the cached read side of the config store (config_cache.h).
 *
 * A snapshot is immutable once published and reference counted: a reader
 * takes a reference under the mutex and evaluates without it, so a refresh
 * never waits for readers, nor readers for the store (only the one reader
 * that does the refresh waits). */
#include "config_cache.h"
#include "app.h"
#include "arena.h"
#include "log.h"
#include "metrics.h"
#include "../store/config_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct flag_entry {
    char *key;
    struct px_flag *flag;
};

struct snapshot {
    atomic_int refs;
    json_t *values; /* object: key -> value */
    struct flag_entry *flags;
    size_t nflags;
};

struct px_config_cache {
    struct px_app *app;
    char tenant[64 + 1]; /* whose items it holds (CONTRACT §12) */
    long ttl_ms, stale_max_ms;
    pthread_mutex_t mu;
    struct snapshot *snap; /* NULL: nothing known (defaults) */
    int64_t checked_ms;    /* last refresh attempt */
    int64_t good_ms;       /* last successful read; 0: never */
    bool refreshing;
    int state;      /* STATE_*: a WARN line marks each change, not each failed refresh */
    unsigned fails; /* refreshes failed in a row: the next waits longer (see due_ms) */
};

enum { STATE_OK, STATE_STALE, STATE_DEFAULTS };

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void snap_release(struct snapshot *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->nflags; i++) {
        free(s->flags[i].key);
        px_flag_free(s->flags[i].flag);
    }
    free(s->flags);
    json_decref(s->values);
    free(s);
}

px_rc px_config_cache_new(struct px_app *app, struct px_config_cache **out)
{
    return px_config_cache_new_for(app, PX_CONFIG_TENANT_DEFAULT, out);
}

const char *px_config_cache_tenant(const struct px_config_cache *c)
{
    return c ? c->tenant : PX_CONFIG_TENANT_DEFAULT;
}

px_rc px_config_cache_new_for(struct px_app *app, const char *tenant, struct px_config_cache **out)
{
    *out = NULL;
    if (!tenant || strlen(tenant) > PX_CONFIG_TENANT_MAX)
        return PX_ERR_INVALID;
    struct px_config_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return PX_ERR_NOMEM;
    memcpy(c->tenant, tenant, strlen(tenant) + 1);
    const struct px_config *cfg = px_app_config(app);
    c->app = app;
    c->ttl_ms = cfg->config_cache_ttl_s * 1000;
    c->stale_max_ms = cfg->config_stale_max_s * 1000;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return PX_OK;
}

void px_config_cache_free(struct px_config_cache *c)
{
    if (!c)
        return;
    snap_release(c->snap);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Reads every item of the cache's tenant into a new snapshot. */
static px_rc load(struct px_config_cache *c, struct snapshot **out)
{
    *out = NULL;
    struct px_config_store *s = px_app_config_store(c->app);
    if (!s)
        return PX_ERR_UNAVAILABLE;
    struct px_arena *a = px_arena_new(16u << 20);
    struct snapshot *sn = calloc(1, sizeof(*sn));
    struct px_config_item *items = NULL;
    size_t n = 0;
    px_rc rc = a && sn ? PX_OK : PX_ERR_NOMEM;
    if (!rc)
        rc = px_config_store_list(s, c->tenant, "", a, &items, &n);
    if (!rc && !(sn->values = json_object()))
        rc = PX_ERR_NOMEM;
    if (!rc && n && !(sn->flags = calloc(n, sizeof(*sn->flags))))
        rc = PX_ERR_NOMEM;
    if (sn)
        atomic_init(&sn->refs, 1);
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *v = json_loads(items[i].value, JSON_DECODE_ANY, NULL);
        if (!v) {
            PX_WARN(NULL, "config: the stored value of %s is not JSON; ignored", items[i].key);
            continue;
        }
        json_object_set_new(sn->values, items[i].key, v);
        if (strncmp(items[i].key, "flags.", 6) != 0)
            continue;
        struct px_validation vd = {.ndetails = 0};
        struct px_flag *f = NULL;
        if (px_flag_parse(v, a, &vd, &f) != PX_OK) {
            PX_WARN(NULL, "config: flag %s cannot be evaluated; its callers get their default",
                    items[i].key);
            continue;
        }
        char *k = strdup(items[i].key);
        if (!k) {
            px_flag_free(f);
            rc = PX_ERR_NOMEM;
            break;
        }
        sn->flags[sn->nflags].key = k;
        sn->flags[sn->nflags++].flag = f;
    }
    px_arena_free(a);
    if (rc) {
        snap_release(sn);
        return rc;
    }
    *out = sn;
    return PX_OK;
}

/* How long after the last attempt the next refresh is due: the TTL while the
 * store answers; while it does not, the TTL doubled per failure up to
 * RETRY_MAX_MS, because the request that refreshes waits for the store's bound
 * (AUDIT_TIMEOUT_MS on DynamoDB) and an outage should delay few requests. */
#define RETRY_MAX_MS 30000
static int64_t due_ms(const struct px_config_cache *c)
{
    int64_t d = c->ttl_ms;
    for (unsigned i = 0; i < c->fails && d < RETRY_MAX_MS; i++)
        d = d ? d * 2 : 1000;
    return c->fails && d > RETRY_MAX_MS ? RETRY_MAX_MS : d;
}

/* The store failed past CONFIG_STALE_MAX_S: the defaults from now on. Caller holds mu. */
static void to_defaults(struct px_config_cache *c, px_rc why)
{
    if (c->state != STATE_DEFAULTS)
        PX_WARN(NULL, "config store unavailable (%s): serving the defaults", px_strerror(why));
    c->state = STATE_DEFAULTS;
    snap_release(c->snap);
    c->snap = NULL;
}

/* A reference to the current snapshot (NULL: defaults), refreshed first when
 * it is due (due_ms) and no other thread is refreshing it. */
static struct snapshot *acquire(struct px_config_cache *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t t = now_ms();
    /* The hard bound holds between refresh attempts too (they back off). */
    if (c->fails && c->snap && t - c->good_ms > c->stale_max_ms) {
        to_defaults(c, PX_ERR_UNAVAILABLE);
        px_metrics_config(PX_METRICS_CONFIG_DEFAULTS);
    }
    bool due = !c->refreshing && (c->checked_ms == 0 || t - c->checked_ms >= due_ms(c));
    if (due) {
        c->refreshing = true;
        pthread_mutex_unlock(&c->mu);
        struct snapshot *fresh = NULL;
        px_rc rc = load(c, &fresh);
        pthread_mutex_lock(&c->mu);
        t = now_ms();
        c->refreshing = false;
        c->checked_ms = t;
        if (!rc) {
            snap_release(c->snap);
            c->snap = fresh;
            c->good_ms = t;
            c->fails = 0;
            if (c->state != STATE_OK)
                PX_WARN(NULL, "config store available again: serving its values");
            c->state = STATE_OK;
            px_metrics_config(PX_METRICS_CONFIG_REFRESHED);
        } else {
            c->fails++;
            if (c->snap && t - c->good_ms <= c->stale_max_ms) {
                if (c->state != STATE_STALE)
                    PX_WARN(NULL,
                            "config store unavailable (%s): serving the last known values for "
                            "up to CONFIG_STALE_MAX_S=%ld s",
                            px_strerror(rc), c->stale_max_ms / 1000);
                c->state = STATE_STALE;
                px_metrics_config(PX_METRICS_CONFIG_STALE);
            } else {
                to_defaults(c, rc);
                px_metrics_config(PX_METRICS_CONFIG_DEFAULTS);
            }
        }
    }
    struct snapshot *s = c->snap;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&c->mu);
    return s;
}

void px_config_flags_bool(struct px_config_cache *c, const char *const *keys, size_t n,
                          const struct px_flag_ctx *ctx, const bool *defs, bool *out)
{
    for (size_t k = 0; k < n; k++)
        out[k] = defs[k];
    struct snapshot *s = c ? acquire(c) : NULL;
    for (size_t k = 0; s && k < n; k++) {
        for (size_t i = 0; keys[k] && i < s->nflags; i++) {
            if (strcmp(s->flags[i].key, keys[k]) != 0)
                continue;
            struct px_flag_result r;
            px_flag_eval(s->flags[i].flag, keys[k], ctx, &r);
            if (r.value && json_is_boolean(r.value))
                out[k] = json_is_true(r.value);
            break;
        }
    }
    snap_release(s);
}

bool px_config_flag_bool(struct px_config_cache *c, const char *key, const struct px_flag_ctx *ctx,
                         bool def)
{
    bool out = def;
    px_config_flags_bool(c, &key, 1, ctx, &def, &out);
    return out;
}

json_t *px_config_value(struct px_config_cache *c, const char *key)
{
    if (!c || !key)
        return NULL;
    struct snapshot *s = acquire(c);
    json_t *v = s ? json_incref(json_object_get(s->values, key)) : NULL;
    snap_release(s);
    return v;
}

void px_config_cache_invalidate(struct px_config_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->checked_ms = 0;
    pthread_mutex_unlock(&c->mu);
}
