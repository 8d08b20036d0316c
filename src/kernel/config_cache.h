/* config_cache.h: every function's read side of config-service (CONTRACT §9).
 *
 * One cache per process (per px_app; in Lambda it lives across invocations,
 * like Powertools Parameters' max_age). It holds a snapshot of every item of
 * the config store with the flags already parsed, at most CONFIG_CACHE_TTL_S
 * old: the first reader after that age reads the store again while the others
 * keep answering from the snapshot they have. When the store fails, the last
 * known values are served until CONFIG_STALE_MAX_S after the last good read,
 * then the defaults the caller passes; each failed refresh logs one WARN line
 * and counts pricing_config_refreshes_total{result="stale"|"defaults"}.
 * Thread-safe. */
#ifndef PX_CONFIG_CACHE_H
#define PX_CONFIG_CACHE_H

#include "flags.h"
#include "px.h"

#include <jansson.h>

struct px_app;
struct px_config_cache;

/* A cache reading app's config store (px_app_config_store) with app's TTLs. */
px_rc px_config_cache_new(struct px_app *app, struct px_config_cache **out) PX_WUR;
/* The same for one tenant's items (CONTRACT §12): PX_ERR_INVALID for a name
 * longer than a tenant's. */
px_rc px_config_cache_new_for(struct px_app *app, const char *tenant,
                              struct px_config_cache **out) PX_WUR;
/* The tenant whose items c holds ("default" for NULL). */
const char *px_config_cache_tenant(const struct px_config_cache *c);
/* Frees the cache. Accepts NULL. */
void px_config_cache_free(struct px_config_cache *c);
/* Evaluates flag `key` (e.g. "flags.maintenance") for ctx. The flag's value
 * when it is a boolean; def when the flag is absent, not boolean, errs, or the
 * store has been out for longer than the hard bound. NULL c: def. */
bool px_config_flag_bool(struct px_config_cache *c, const char *key, const struct px_flag_ctx *ctx,
                         bool def);
/* px_config_flag_bool() for n flags under one look at the cache (a hot path's
 * several flags): out[i] for keys[i], defs[i] its default. */
void px_config_flags_bool(struct px_config_cache *c, const char *const *keys, size_t n,
                          const struct px_flag_ctx *ctx, const bool *defs, bool *out);
/* A new reference to the value of `key`, or NULL when absent (or unknown
 * because of an outage past the bound). The caller decrefs. */
json_t *px_config_value(struct px_config_cache *c, const char *key);
/* Forgets the snapshot's age: the next read refreshes (config-service after
 * its own write, so the process that changed a value sees it at once). */
void px_config_cache_invalidate(struct px_config_cache *c);

#endif
