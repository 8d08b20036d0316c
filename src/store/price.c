/* price.c: picks the price backend from the spec's scheme and forwards to it;
 * reads seed files for both backends. */
#include "price.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bound on a seed file read whole into memory. */
#define SEED_FILE_MAX (64L * 1024 * 1024)

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
    return px_price_get_in(s, NULL, product_id, out);
}

px_rc px_price_get_in(struct px_price_store *s, const char *tenant, const char *product_id,
                      struct px_price *out)
{
    if (!s || !product_id || !out)
        return PX_ERR_INVALID;
    return s->ops->get(s->impl, tenant, product_id, out);
}

px_rc px_price_ping(struct px_price_store *s)
{
    if (!s)
        return PX_ERR_INVALID;
    return s->ops->ping(s->impl);
}

px_rc px_price_migrate(struct px_price_store *s, char *err, size_t errlen)
{
    if (!s)
        return PX_ERR_INVALID;
    return s->ops->seed(s->impl, NULL, NULL, err, errlen);
}

px_rc px_price_seed_sql(struct px_price_store *s, const char *name, const char *sql, char *err,
                        size_t errlen)
{
    if (!s || !name || !sql)
        return PX_ERR_INVALID;
    return s->ops->seed(s->impl, name, sql, err, errlen);
}

/* Reads the whole SQL file at path into a NUL-terminated heap string the
 * caller frees; capped, and refused when it holds a NUL byte (the text would
 * end early without a word). */
static px_rc read_sql(const char *path, char **out, char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return PX_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a readable file", path);
        rc = PX_ERR_IO;
        goto out;
    }
    if (st.st_size > SEED_FILE_MAX) {
        snprintf(err, errlen, "%s is larger than %ld MiB", path, SEED_FILE_MAX / (1024 * 1024));
        rc = PX_ERR_TOO_LARGE;
        goto out;
    }
    size_t len = (size_t)st.st_size;
    buf = malloc(len + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory reading %s", path);
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (fread(buf, 1, len, f) != len) {
        snprintf(err, errlen, "short read on %s", path);
        rc = PX_ERR_IO;
        goto out;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        snprintf(err, errlen, "%s contains a NUL byte", path);
        rc = PX_ERR_INVALID;
        goto out;
    }
    *out = buf;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

px_rc px_price_seed(struct px_price_store *s, const char *sql_path, char *err, size_t errlen)
{
    return px_price_seed_in(s, NULL, sql_path, err, errlen);
}

px_rc px_price_seed_sql_in(struct px_price_store *s, const char *tenant, const char *name,
                           const char *sql, char *err, size_t errlen)
{
    if (!tenant || strcmp(tenant, "default") == 0)
        return px_price_seed_sql(s, name, sql, err, errlen);
    if (!s || !name || !sql)
        return PX_ERR_INVALID;
    if (!s->ops->seed_tenant) {
        snprintf(err, errlen, "PRICE_DB: this store keeps the default tenant only");
        return PX_ERR_CONFIG;
    }
    return s->ops->seed_tenant(s->impl, tenant, name, sql, err, errlen);
}

px_rc px_price_seed_in(struct px_price_store *s, const char *tenant, const char *sql_path,
                       char *err, size_t errlen)
{
    char *sql = NULL;
    if (!s || !sql_path)
        return PX_ERR_INVALID;
    px_rc rc = read_sql(sql_path, &sql, err, errlen);
    if (!rc)
        rc = px_price_seed_sql_in(s, tenant, sql_path, sql, err, errlen);
    free(sql);
    return rc;
}

px_rc px_price_set(struct px_price_store *s, const struct px_price_change *c)
{
    if (!s || !c || !c->product_id || (c->amount && !c->currency))
        return PX_ERR_INVALID;
    return s->ops->set ? s->ops->set(s->impl, c) : PX_ERR_UNAVAILABLE;
}

px_rc px_price_history(struct px_price_store *s, const char *product_id, size_t max,
                       struct px_arena *a, struct px_price_history_row **rows, size_t *n)
{
    return px_price_history_in(s, NULL, product_id, max, a, rows, n);
}

px_rc px_price_history_in(struct px_price_store *s, const char *tenant, const char *product_id,
                          size_t max, struct px_arena *a, struct px_price_history_row **rows,
                          size_t *n)
{
    if (!s || !product_id || !a || !rows || !n || max == 0)
        return PX_ERR_INVALID;
    *rows = NULL;
    *n = 0;
    return s->ops->history ? s->ops->history(s->impl, tenant, product_id, max, a, rows, n)
                           : PX_ERR_UNAVAILABLE;
}
