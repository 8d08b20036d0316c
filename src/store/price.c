/* price.c: picks the price backend from the spec's scheme and forwards to it. */
#include "price.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct px_price_store {
    const struct px_price_ops *ops;
    void *impl;
};

/* Backend for spec, and the part of spec the backend is given: a path for
 * "sqlite:PATH", the whole URI for PostgreSQL (libpq parses it). */
static const struct px_price_ops *pick(const char *spec, const char **target)
{
    if (strncmp(spec, "sqlite:", 7) == 0) {
        *target = spec + 7;
        return &px_price_sqlite_ops;
    }
    if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0) {
        *target = spec;
        return &px_price_pg_ops;
    }
    return NULL;
}

px_rc px_price_open(const char *spec, const struct px_price_opts *opts, struct px_price_store **out,
                    char *err, size_t errlen)
{
    static const struct px_price_opts defaults = {.pool_size = 4, .timeout_ms = 2000};
    const char *target = NULL;
    const struct px_price_ops *ops = spec ? pick(spec, &target) : NULL;
    *out = NULL;
    if (!ops) {
        snprintf(err, errlen,
                 "PRICE_DB: unsupported store \"%.64s\" (use sqlite:PATH or "
                 "postgresql://user:pass@host:port/db)",
                 spec ? spec : "");
        return PX_ERR_CONFIG;
    }
    struct px_price_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "PRICE_DB: out of memory");
        return PX_ERR_NOMEM;
    }
    s->ops = ops;
    px_rc rc = ops->open(target, opts ? opts : &defaults, &s->impl, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return PX_OK;
}

void px_price_close(struct px_price_store *s)
{
    if (!s)
        return;
    if (s->impl && s->ops->close)
        s->ops->close(s->impl);
    free(s);
}

px_rc px_price_get(struct px_price_store *s, const char *product_id, struct px_price *out)
{
    if (!s || !product_id || !out)
        return PX_ERR_INVALID;
    return s->ops->get(s->impl, product_id, out);
}

px_rc px_price_ping(struct px_price_store *s)
{
    if (!s)
        return PX_ERR_INVALID;
    return s->ops->ping(s->impl);
}

px_rc px_price_seed(struct px_price_store *s, const char *sql_path, char *err, size_t errlen)
{
    if (!s || !sql_path)
        return PX_ERR_INVALID;
    return s->ops->seed(s->impl, sql_path, err, errlen);
}
