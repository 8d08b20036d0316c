/* product.h: the product catalogue store (product-service), one interface
 * over its backends behind a small function table, like price.h and audit.h.
 *
 * Specs "sqlite:PATH" (product_sqlite.c) and "dynamodb:TABLE"
 * (product_dynamodb.c, the key design of docs/internals/products.md). Strings of products read from
 * a store live in the caller's arena. Writes go through px_product_apply(): the store holds the
 * product's write lock (SQLite: the file's write transaction; DynamoDB: a conditional put on
 * `version`) while the caller's callback makes the change's audit record durable and writes the
 * price store, so two writers can never both win and nothing changes without its record. */
#ifndef PX_PRODUCT_H
#define PX_PRODUCT_H

#include "../kernel/px.h"
#include "../kernel/arena.h"

struct px_product_store;
struct px_event;

#define PX_PRODUCT_STATUS_MAX 16

/* One product (CONTRACT §8). Strings are arena-owned or borrowed. */
struct px_product {
    char id[PX_MAX_PRODUCT_ID + 1];
    const char *name;
    const char *description;
    const char *category;
    char status[PX_PRODUCT_STATUS_MAX]; /* ACTIVE | INACTIVE | DISCONTINUED */
    const char *attributes;             /* JSON object text, "{}" when none */
    bool has_price;
    char amount[48]; /* exact decimal text */
    char currency[4];
    char effective_from[25];
    long version; /* 1 on create, +1 on every write */
    char created_at[25];
    char updated_at[25];
    /* Set by a px_product_apply() callback on next: the change's domain event,
     * which the store writes in the same transaction as the product (outbox.h).
     * NULL on products read from a store. */
    const struct px_event *event;
};

struct px_product_opts {
    long timeout_ms; /* bound on waiting for the write lock */
    bool create;     /* create the file and schema, or table and indexes (db seed / migrate) */
    /* DynamoDB settings (ignored by SQLite); borrowed for the call of open */
    const char *region, *endpoint, *access_key_id, *secret_access_key, *session_token;
};

struct px_product_query {
    const char *category; /* NULL: any */
    const char *status;   /* NULL: any */
    const char *after_id; /* exclusive; NULL: from the first */
    long limit;           /* 1..1000 */
    const char *tenant;   /* CONTRACT §12; NULL: "default" */
};

/* What px_product_apply() checks before calling back. */
enum px_product_expect {
    PX_PRODUCT_MUST_NOT_EXIST, /* create: PX_ERR_CONFLICT when it exists */
    PX_PRODUCT_AT_VERSION,     /* PX_ERR_NOT_FOUND when absent, PX_ERR_STALE when stale */
};

/* Computes next from cur (NULL when absent) and makes the change's side
 * effects durable (audit record, price store). Non-OK: nothing is written. */
typedef px_rc (*px_product_apply_fn)(void *arg, const struct px_product *cur,
                                     struct px_product *next);

/* Idempotency record states (CONTRACT §8 Idempotency-Key). */
enum px_idem_state {
    PX_IDEM_NEW,       /* first use: the caller runs the request and finishes the record */
    PX_IDEM_IN_FLIGHT, /* the first request is still running: 409 */
    PX_IDEM_REPLAY,    /* done: answer *saved again */
    PX_IDEM_MISMATCH,  /* same key, another body: 422 */
};

struct px_idem_saved {
    int status;
    const char *body;            /* arena */
    const char *etag, *location; /* arena; NULL when none */
};

/* Idempotency records live 24 h; a first request silent for this long is
 * taken as dead (its process stopped) and the key may run again. */
#define PX_IDEM_TTL_S   86400
#define PX_IDEM_LEASE_S 60

px_rc px_product_open(const char *spec, const struct px_product_opts *opts,
                      struct px_product_store **out, char *err, size_t errlen) PX_WUR;
/* Frees the store. Accepts NULL. */
void px_product_close(struct px_product_store *s);
/* One product; PX_ERR_NOT_FOUND when absent. Thread-safe. */
px_rc px_product_get(struct px_product_store *s, const char *id, struct px_arena *a,
                     struct px_product *out) PX_WUR;
/* px_product_get() within tenant (NULL: "default"); likewise the _in forms
 * below. No tenant ever reads or changes another's products. */
px_rc px_product_get_in(struct px_product_store *s, const char *tenant, const char *id,
                        struct px_arena *a, struct px_product *out) PX_WUR;
/* Up to q->limit products ordered by id after q->after_id; *more tells whether
 * another page follows. Array and strings in a. */
px_rc px_product_list(struct px_product_store *s, const struct px_product_query *q,
                      struct px_arena *a, struct px_product **items, size_t *n, bool *more) PX_WUR;
/* Checks expect against the stored product (version: the If-Match value, -1 = any),
 * calls fn, then stores next, all under the product's write lock. */
px_rc px_product_apply(struct px_product_store *s, const char *id, enum px_product_expect expect,
                       long version, px_product_apply_fn fn, void *arg, struct px_arena *a) PX_WUR;
px_rc px_product_apply_in(struct px_product_store *s, const char *tenant, const char *id,
                          enum px_product_expect expect, long version, px_product_apply_fn fn,
                          void *arg, struct px_arena *a) PX_WUR;
/* Looks up or claims (principal, route, key) for a body with hash body_hash
 * (hex); sweeps expired records. saved is filled for PX_IDEM_REPLAY. */
px_rc px_product_idem_begin(struct px_product_store *s, const char *principal, const char *route,
                            const char *key, const char *body_hash, int64_t now_s,
                            struct px_arena *a, enum px_idem_state *state,
                            struct px_idem_saved *saved) PX_WUR;
/* Stores the answer of a claimed key for replay. */
px_rc px_product_idem_finish(struct px_product_store *s, const char *principal, const char *route,
                             const char *key, const struct px_idem_saved *saved,
                             int64_t now_s) PX_WUR;
/* Releases a claimed key whose request failed (5xx): the client may retry. */
void px_product_idem_abort(struct px_product_store *s, const char *principal, const char *route,
                           const char *key);
/* Inserts the products that do not exist yet (db seed); existing ones are kept. */
px_rc px_product_seed(struct px_product_store *s, const struct px_product *items, size_t n,
                      char *err, size_t errlen) PX_WUR;
px_rc px_product_seed_in(struct px_product_store *s, const char *tenant,
                         const struct px_product *items, size_t n, char *err, size_t errlen) PX_WUR;
/* PX_OK when the store answers now (readiness). */
px_rc px_product_ping(struct px_product_store *s) PX_WUR;

/* Backend function table; one per file (product_sqlite.c, product_dynamodb.c). */
struct px_product_ops {
    const char *scheme;
    px_rc (*open)(const char *target, const struct px_product_opts *opts, void **impl, char *err,
                  size_t errlen);
    void (*close)(void *impl);
    px_rc (*get)(void *impl, const char *tenant, const char *id, struct px_arena *a,
                 struct px_product *out);
    px_rc (*list)(void *impl, const struct px_product_query *q, struct px_arena *a,
                  struct px_product **items, size_t *n, bool *more);
    px_rc (*apply)(void *impl, const char *tenant, const char *id, enum px_product_expect expect,
                   long version, px_product_apply_fn fn, void *arg, struct px_arena *a);
    px_rc (*idem_begin)(void *impl, const char *principal, const char *route, const char *key,
                        const char *body_hash, int64_t now_s, struct px_arena *a,
                        enum px_idem_state *state, struct px_idem_saved *saved);
    px_rc (*idem_finish)(void *impl, const char *principal, const char *route, const char *key,
                         const struct px_idem_saved *saved, int64_t now_s);
    void (*idem_abort)(void *impl, const char *principal, const char *route, const char *key);
    px_rc (*seed)(void *impl, const char *tenant, const struct px_product *items, size_t n,
                  char *err, size_t errlen);
    px_rc (*ping)(void *impl);
};

extern const struct px_product_ops px_product_sqlite_ops;
extern const struct px_product_ops px_product_dynamodb_ops;

#endif
