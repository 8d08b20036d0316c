/* product.c: picks the product backend from the spec's scheme and forwards to it. */
#include "product.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct px_product_store {
    const struct px_product_ops *ops;
    void *impl;
};

px_rc px_product_open(const char *spec, const struct px_product_opts *opts,
                      struct px_product_store **out, char *err, size_t errlen)
{
    static const struct px_product_opts defaults = {.timeout_ms = 5000};
    static const struct px_product_ops *const backends[] = {&px_product_sqlite_ops,
                                                            &px_product_dynamodb_ops};
    const struct px_product_ops *ops = NULL;
    size_t skip = 0;
    *out = NULL;
    for (size_t i = 0; spec && !ops && i < PX_COUNTOF(backends); i++) {
        size_t n = strlen(backends[i]->scheme);
        if (strncmp(spec, backends[i]->scheme, n) == 0 && spec[n] == ':' && spec[n + 1]) {
            ops = backends[i];
            skip = n + 1;
        }
    }
    if (!ops) {
        snprintf(err, errlen,
                 "PRODUCT_STORE: unsupported store \"%.64s\" (use sqlite:PATH or dynamodb:TABLE)",
                 spec ? spec : "");
        return PX_ERR_CONFIG;
    }
    struct px_product_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "PRODUCT_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    s->ops = ops;
    px_rc rc = s->ops->open(spec + skip, opts ? opts : &defaults, &s->impl, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return PX_OK;
}

void px_product_close(struct px_product_store *s)
{
    if (!s)
        return;
    if (s->impl)
        s->ops->close(s->impl);
    free(s);
}

px_rc px_product_get(struct px_product_store *s, const char *id, struct px_arena *a,
                     struct px_product *out)
{
    return px_product_get_in(s, NULL, id, a, out);
}

px_rc px_product_get_in(struct px_product_store *s, const char *tenant, const char *id,
                        struct px_arena *a, struct px_product *out)
{
    if (!s || !id || !a || !out)
        return PX_ERR_INVALID;
    return s->ops->get(s->impl, tenant, id, a, out);
}

px_rc px_product_list(struct px_product_store *s, const struct px_product_query *q,
                      struct px_arena *a, struct px_product **items, size_t *n, bool *more)
{
    if (!s || !q || !a || !items || !n || !more || q->limit < 1 || q->limit > 1000)
        return PX_ERR_INVALID;
    *items = NULL;
    *n = 0;
    *more = false;
    return s->ops->list(s->impl, q, a, items, n, more);
}

px_rc px_product_apply(struct px_product_store *s, const char *id, enum px_product_expect expect,
                       long version, px_product_apply_fn fn, void *arg, struct px_arena *a)
{
    return px_product_apply_in(s, NULL, id, expect, version, fn, arg, a);
}

px_rc px_product_apply_in(struct px_product_store *s, const char *tenant, const char *id,
                          enum px_product_expect expect, long version, px_product_apply_fn fn,
                          void *arg, struct px_arena *a)
{
    if (!s || !id || !fn || !a)
        return PX_ERR_INVALID;
    return s->ops->apply(s->impl, tenant, id, expect, version, fn, arg, a);
}

px_rc px_product_idem_begin(struct px_product_store *s, const char *principal, const char *route,
                            const char *key, const char *body_hash, int64_t now_s,
                            struct px_arena *a, enum px_idem_state *state,
                            struct px_idem_saved *saved)
{
    if (!s || !principal || !route || !key || !body_hash || !a || !state || !saved)
        return PX_ERR_INVALID;
    memset(saved, 0, sizeof(*saved));
    return s->ops->idem_begin(s->impl, principal, route, key, body_hash, now_s, a, state, saved);
}

px_rc px_product_idem_finish(struct px_product_store *s, const char *principal, const char *route,
                             const char *key, const struct px_idem_saved *saved, int64_t now_s)
{
    if (!s || !principal || !route || !key || !saved)
        return PX_ERR_INVALID;
    return s->ops->idem_finish(s->impl, principal, route, key, saved, now_s);
}

void px_product_idem_abort(struct px_product_store *s, const char *principal, const char *route,
                           const char *key)
{
    if (s && principal && route && key)
        s->ops->idem_abort(s->impl, principal, route, key);
}

px_rc px_product_seed(struct px_product_store *s, const struct px_product *items, size_t n,
                      char *err, size_t errlen)
{
    return px_product_seed_in(s, NULL, items, n, err, errlen);
}

px_rc px_product_seed_in(struct px_product_store *s, const char *tenant,
                         const struct px_product *items, size_t n, char *err, size_t errlen)
{
    if (!s || (n && !items))
        return PX_ERR_INVALID;
    return s->ops->seed(s->impl, tenant, items, n, err, errlen);
}

px_rc px_product_ping(struct px_product_store *s)
{
    return s ? s->ops->ping(s->impl) : PX_ERR_INVALID;
}
