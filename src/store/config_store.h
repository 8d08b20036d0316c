/* config_store.h: the configuration store (config-service, CONTRACT §9), one
 * interface over its backends behind a small function table, like product.h.
 *
 * Spec "sqlite:PATH" (config_store_sqlite.c) or "dynamodb:TABLE"
 * (config_store_dynamodb.c, key design in docs/internals/config.md). Items are versioned: version 1
 * on create, +1 on every write. Writes go through px_config_store_apply(): the
 * store holds the item's write lock (SQLite: the file's write transaction)
 * while the caller's callback makes the change's audit record durable
 * (DynamoDB: a put conditional on the version read), so two writers holding
 * the same version can never both win and nothing changes without its record. Every item belongs to
 * a tenant ("default" while TENANCY is off, CONTRACT §12); the key of an item is (tenant, key).
 * Strings of items read from a store live in the caller's arena. */
#ifndef PX_CONFIG_STORE_H
#define PX_CONFIG_STORE_H

#include "../kernel/arena.h"
#include "../kernel/px.h"

struct px_config_store;
struct px_event;

#define PX_CONFIG_KEY_MAX        128 /* CONTRACT §9: 1-128 of a-z 0-9 . _ - */
#define PX_CONFIG_TENANT_MAX     64
#define PX_CONFIG_ITEMS_MAX      10000 /* bound on one listing */
#define PX_CONFIG_TENANT_DEFAULT "default"

/* One item. value is compact JSON text; strings arena-owned or borrowed. */
struct px_config_item {
    char key[PX_CONFIG_KEY_MAX + 1];
    const char *value;
    long version;
    char updated_at[25];
    const char *updated_by;
    /* Set by a px_config_store_apply() callback on next: the change's domain
     * event (outbox.h), which the store writes in the change's own
     * transaction (SQLite: the same file; DynamoDB: TransactWriteItems).
     * Borrowed; NULL = no event. */
    const struct px_event *event;
};

struct px_config_store_opts {
    long timeout_ms; /* bound on waiting for the write lock (SQLite), on one call (DynamoDB) */
    bool create;     /* create the file and schema, or the table (db seed / db migrate) */
    /* DynamoDB settings (ignored by SQLite); borrowed for the open call only */
    const char *region, *endpoint, *access_key_id, *secret_access_key, *session_token;
};

enum px_config_expect {
    PX_CONFIG_MUST_NOT_EXIST, /* If-None-Match: * -> PX_ERR_CONFLICT when it exists */
    PX_CONFIG_AT_VERSION, /* If-Match -> PX_ERR_NOT_FOUND when absent, PX_ERR_STALE when stale */
};

/* Computes next from cur (NULL when absent): value and updated_by; the store
 * sets key, version and updated_at before calling (next->version, updated_at
 * are what will be written). Non-OK: nothing is written. */
typedef px_rc (*px_config_apply_fn)(void *arg, const struct px_config_item *cur,
                                    struct px_config_item *next);

/* true when key is 1-128 of a-z 0-9 . _ - (CONTRACT §9). */
bool px_config_key_valid(const char *key);

px_rc px_config_store_open(const char *spec, const struct px_config_store_opts *opts,
                           struct px_config_store **out, char *err, size_t errlen) PX_WUR;
/* Frees the store. Accepts NULL. */
void px_config_store_close(struct px_config_store *s);
/* One item of tenant; PX_ERR_NOT_FOUND when absent. Thread-safe. */
px_rc px_config_store_get(struct px_config_store *s, const char *tenant, const char *key,
                          struct px_arena *a, struct px_config_item *out) PX_WUR;
/* Every item of tenant whose key starts with prefix ("" = all), ordered by
 * key, at most PX_CONFIG_ITEMS_MAX (PX_ERR_TOO_LARGE past it). Array and
 * strings in a. */
px_rc px_config_store_list(struct px_config_store *s, const char *tenant, const char *prefix,
                           struct px_arena *a, struct px_config_item **items, size_t *n) PX_WUR;
/* Checks expect against the stored item (version: the If-Match value, -1 =
 * any), calls fn, then stores next, all under the item's write lock.
 * PX_ERR_IO when the store failed after fn succeeded (fn's effects stay). */
px_rc px_config_store_apply(struct px_config_store *s, const char *tenant, const char *key,
                            enum px_config_expect expect, long version, px_config_apply_fn fn,
                            void *arg, struct px_arena *a) PX_WUR;
/* PX_OK when the store answers now (readiness). */
px_rc px_config_store_ping(struct px_config_store *s) PX_WUR;

/* Backend function table; one per file. */
struct px_config_store_ops {
    px_rc (*open)(const char *target, const struct px_config_store_opts *opts, void **impl,
                  char *err, size_t errlen);
    void (*close)(void *impl);
    px_rc (*get)(void *impl, const char *tenant, const char *key, struct px_arena *a,
                 struct px_config_item *out);
    px_rc (*list)(void *impl, const char *tenant, const char *prefix, struct px_arena *a,
                  struct px_config_item **items, size_t *n);
    px_rc (*apply)(void *impl, const char *tenant, const char *key, enum px_config_expect expect,
                   long version, px_config_apply_fn fn, void *arg, struct px_arena *a);
    px_rc (*ping)(void *impl);
};

extern const struct px_config_store_ops px_config_store_sqlite_ops;
extern const struct px_config_store_ops px_config_store_dynamodb_ops;

#endif
