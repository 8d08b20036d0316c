/* price.h: the price store, one interface over SQLite and PostgreSQL.
 *
 * A store is opened once per process and shared by all threads: it keeps a
 * fixed pool of connections, each with its prepared statement, and every read
 * binds the product id as a parameter (never string-built SQL). The backend
 * is chosen by the spec's scheme: "sqlite:PATH" or "postgresql://...". */
#ifndef PX_PRICE_H
#define PX_PRICE_H

#include "../kernel/px.h"
#include "../kernel/arena.h"

struct px_price_store;
struct px_event;

struct px_price {
    char product_id[PX_MAX_PRODUCT_ID + 1];
    char price[48];   /* exact decimal text as stored, e.g. "99.99", "100.00", "0.5" */
    char currency[4]; /* ISO 4217 */
};

struct px_price_opts {
    unsigned pool_size; /* connections kept; 0 = backend default */
    long timeout_ms;    /* bound on connect and on one statement */
    bool create;        /* create the schema when missing (db seed) */
};

/* Opens the store named by spec. On failure err holds one human line. */
px_rc px_price_open(const char *spec, const struct px_price_opts *opts, struct px_price_store **out,
                    char *err, size_t errlen) PX_WUR;
/* Closes all connections and frees the store. Accepts NULL. */
void px_price_close(struct px_price_store *s);
/* Reads one price. PX_ERR_NOT_FOUND when absent; PX_ERR_UNAVAILABLE or
 * PX_ERR_TIMEOUT when the database cannot answer in time. Thread-safe. */
px_rc px_price_get(struct px_price_store *s, const char *product_id, struct px_price *out) PX_WUR;
/* Longest tenant name (tenant.h). */
#define PX_TENANT_NAME_MAX 64
/* px_price_get() within tenant (NULL or "default": the default tenant, whose
 * prices keep their keys). No tenant ever reads another's price. */
px_rc px_price_get_in(struct px_price_store *s, const char *tenant, const char *product_id,
                      struct px_price *out) PX_WUR;
/* PX_OK when the database answers a trivial query now (readiness). */
px_rc px_price_ping(struct px_price_store *s) PX_WUR;
/* Brings the schema up to date with the migrations built into the binary
 * (idempotent; loads no rows). err holds one human line on failure. */
px_rc px_price_migrate(struct px_price_store *s, char *err, size_t errlen) PX_WUR;
/* Migrates, then runs sql (NUL-terminated statements; name labels it in
 * messages) in the same transaction: all of it or nothing. sql is borrowed. */
px_rc px_price_seed_sql(struct px_price_store *s, const char *name, const char *sql, char *err,
                        size_t errlen) PX_WUR;
/* px_price_seed_sql() into tenant's prices (NULL or "default": the same);
 * the SQL is written as for the default tenant (INSERT INTO product_prices). */
px_rc px_price_seed_sql_in(struct px_price_store *s, const char *tenant, const char *name,
                           const char *sql, char *err, size_t errlen) PX_WUR;
/* px_price_seed_sql_in() with the file at sql_path. */
px_rc px_price_seed_in(struct px_price_store *s, const char *tenant, const char *sql_path,
                       char *err, size_t errlen) PX_WUR;
/* px_price_seed_sql() with the file at sql_path (at most 64 MiB, no NUL bytes). */
px_rc px_price_seed(struct px_price_store *s, const char *sql_path, char *err,
                    size_t errlen) PX_WUR;

/* One price change (product-service): the new price of product_id, or its
 * withdrawal when amount is NULL. All strings borrowed for the call. */
struct px_price_change {
    const char *tenant; /* CONTRACT §12; NULL: "default" */
    const char *product_id;
    const char *amount;         /* plain decimal text, kept as given ("12.50"); NULL: withdraw */
    const char *currency;       /* ISO 4217, with amount */
    const char *effective_from; /* RFC 3339 UTC with milliseconds */
    const char *changed_by;     /* principal */
    const char *request_id;
    /* Written into the store's outbox in the same transaction (outbox.h);
     * NULL: no event. */
    const struct px_event *event;
};

/* One row of a product's price history (CONTRACT §8). */
struct px_price_history_row {
    char amount[48];
    char currency[4];
    char effective_from[25];
    char changed_by[PX_MAX_PRINCIPAL + 1];
    char request_id[PX_MAX_REQUEST_ID + 1];
};

/* Sets (upsert) or withdraws (delete) the price of c->product_id and, for a
 * set, appends its immutable history row, both in one transaction: readers
 * see both or neither. PX_ERR_UNAVAILABLE / PX_ERR_TIMEOUT when the database
 * cannot take the write in time. Thread-safe. */
px_rc px_price_set(struct px_price_store *s, const struct px_price_change *c) PX_WUR;
/* The history of product_id, oldest first, at most max rows, into an array in
 * a (*rows, *n). Thread-safe. */
px_rc px_price_history(struct px_price_store *s, const char *product_id, size_t max,
                       struct px_arena *a, struct px_price_history_row **rows, size_t *n) PX_WUR;
/* px_price_history() within tenant (NULL: "default"). */
px_rc px_price_history_in(struct px_price_store *s, const char *tenant, const char *product_id,
                          size_t max, struct px_arena *a, struct px_price_history_row **rows,
                          size_t *n) PX_WUR;

/* Backend function table; one per file (price_sqlite.c, price_pg.c). */
struct px_price_ops {
    const char *scheme; /* matched against the spec prefix */
    px_rc (*open)(const char *spec, const struct px_price_opts *opts, void **impl, char *err,
                  size_t errlen);
    void (*close)(void *impl);
    px_rc (*get)(void *impl, const char *tenant, const char *product_id, struct px_price *out);
    px_rc (*ping)(void *impl);
    /* Migrations, then sql unless it is NULL, in one transaction. */
    px_rc (*seed)(void *impl, const char *name, const char *sql, char *err, size_t errlen);
    /* Optional: seed's sql loaded into tenant's prices instead (NULL: the
     * backend keeps the default tenant only). */
    px_rc (*seed_tenant)(void *impl, const char *tenant, const char *name, const char *sql,
                         char *err, size_t errlen);
    /* Writes (product-service); NULL when the backend has none yet. */
    px_rc (*set)(void *impl, const struct px_price_change *c);
    px_rc (*history)(void *impl, const char *tenant, const char *product_id, size_t max,
                     struct px_arena *a, struct px_price_history_row **rows, size_t *n);
};

extern const struct px_price_ops px_price_sqlite_ops;
extern const struct px_price_ops px_price_pg_ops;

/* Renders a stored decimal as a JSON number, keeping its scale: "99.99" ->
 * "99.99", ".5" -> "0.5", "+007.50" -> "7.50". PX_ERR_INVALID when s is not a
 * plain decimal (no exponent, no NaN). out must hold outlen bytes. */
px_rc px_decimal_to_json(const char *s, char *out, size_t outlen) PX_WUR;

#endif
