/* config_store.c: picks the config backend from the spec's scheme and forwards to it. */
#include "config_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct px_config_store {
    const struct px_config_store_ops *ops;
    void *impl;
};

bool px_config_key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > PX_CONFIG_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool tenant_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    return n >= 1 && n <= PX_CONFIG_TENANT_MAX;
}

px_rc px_config_store_open(const char *spec, const struct px_config_store_opts *opts,
                           struct px_config_store **out, char *err, size_t errlen)
{
    static const struct px_config_store_opts defaults = {.timeout_ms = 5000};
    *out = NULL;
    const struct px_config_store_ops *ops = NULL;
    const char *target = NULL;
    if (spec && strncmp(spec, "sqlite:", 7) == 0 && spec[7]) {
        ops = &px_config_store_sqlite_ops;
        target = spec + 7;
    } else if (spec && strncmp(spec, "dynamodb:", 9) == 0 && spec[9]) {
        ops = &px_config_store_dynamodb_ops;
        target = spec + 9;
    } else {
        snprintf(err, errlen,
                 "CONFIG_STORE: unsupported store \"%.64s\" (use sqlite:PATH or dynamodb:TABLE)",
                 spec ? spec : "");
        return PX_ERR_CONFIG;
    }
    struct px_config_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "CONFIG_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    s->ops = ops;
    px_rc rc = s->ops->open(target, opts ? opts : &defaults, &s->impl, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return PX_OK;
}

void px_config_store_close(struct px_config_store *s)
{
    if (!s)
        return;
    if (s->impl)
        s->ops->close(s->impl);
    free(s);
}

px_rc px_config_store_get(struct px_config_store *s, const char *tenant, const char *key,
                          struct px_arena *a, struct px_config_item *out)
{
    if (!s || !tenant_valid(tenant) || !px_config_key_valid(key) || !a || !out)
        return PX_ERR_INVALID;
    return s->ops->get(s->impl, tenant, key, a, out);
}

px_rc px_config_store_list(struct px_config_store *s, const char *tenant, const char *prefix,
                           struct px_arena *a, struct px_config_item **items, size_t *n)
{
    if (!s || !tenant_valid(tenant) || !prefix || strlen(prefix) > PX_CONFIG_KEY_MAX || !a ||
        !items || !n)
        return PX_ERR_INVALID;
    *items = NULL;
    *n = 0;
    return s->ops->list(s->impl, tenant, prefix, a, items, n);
}

px_rc px_config_store_apply(struct px_config_store *s, const char *tenant, const char *key,
                            enum px_config_expect expect, long version, px_config_apply_fn fn,
                            void *arg, struct px_arena *a)
{
    if (!s || !tenant_valid(tenant) || !px_config_key_valid(key) || !fn || !a)
        return PX_ERR_INVALID;
    return s->ops->apply(s->impl, tenant, key, expect, version, fn, arg, a);
}

px_rc px_config_store_ping(struct px_config_store *s)
{
    return s ? s->ops->ping(s->impl) : PX_ERR_INVALID;
}
