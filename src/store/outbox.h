/* outbox.h: domain events (CONTRACT §10) and the transactional outbox.
 *
 * A writer builds its change's CloudEvent with px_event_build() and hands it
 * to the store that makes the change, which inserts it into that store's
 * `outbox` table inside the transaction of the change: the event exists
 * exactly when the change committed. SQLite stores call
 * px_outbox_sqlite_insert() on their own connection; PostgreSQL writers add
 * the INSERT of infra/sql/003_outbox.sql's table to their transaction.
 *
 * The relay side (events.h) opens every outbox by spec ("sqlite:PATH" or a
 * PostgreSQL URI) and claims, publishes and marks events. Rows are keyed by
 * (tenant, subject, ord): ord orders the events of one subject across
 * outboxes (product-service: the product's version, see px_event_ord()).
 *
 * Ownership: px_event strings live in the arena given to px_event_build();
 * rows returned by px_outbox_claim()/px_outbox_list() are heap-owned by the
 * caller and freed with px_outbox_rows_free(). */
#ifndef PX_OUTBOX_H
#define PX_OUTBOX_H

#include "../kernel/px.h"
#include "../kernel/arena.h"

#include <jansson.h>
#include <stdint.h>

struct px_config;

#define PX_EVENT_MAX_JSON  (256 * 1024) /* one CloudEvent, data included */
#define PX_EVENT_TENANT    "default"    /* the implicit tenant (CONTRACT §12, TENANCY=off) */
#define PX_EVENT_SUBJ_MAX  128
#define PX_EVENT_ERROR_MAX 512

#define PX_EVENT_PRODUCT_CREATED "pricing.product.created.v1"
#define PX_EVENT_PRODUCT_UPDATED "pricing.product.updated.v1"
#define PX_EVENT_PRODUCT_DELETED "pricing.product.deleted.v1"
#define PX_EVENT_PRICE_CHANGED   "pricing.price.changed.v1"
#define PX_EVENT_CONFIG_CHANGED  "pricing.config.changed.v1"

/* One event as written into an outbox. Strings: arena or borrowed. */
struct px_event {
    char id[37]; /* UUID v4 */
    char time[25];
    int64_t time_ms;     /* time, epoch ms */
    const char *type;    /* PX_EVENT_* */
    const char *subject; /* product id, config key */
    const char *tenant;  /* PX_EVENT_TENANT unless tenancy is on */
    int64_t ord;         /* order within (tenant, subject), see px_event_ord() */
    const char *json;    /* the whole CloudEvent */
};

/* Ordering key of the step-th event (0..7) of the write that takes a subject
 * to version `version`: the events of one write keep their order, and every
 * event of a later write sorts after them. */
int64_t px_event_ord(long version, unsigned step);

/* Builds the CloudEvent of type for subject, emitted by function (source
 * "pricing/<function>"), with data_json (a JSON value, copied) and time now.
 * tenant (TENANCY=on, copied) becomes ev->tenant and the extension attribute
 * "tenantid"; NULL (TENANCY=off): no attribute, ev->tenant PX_EVENT_TENANT.
 * Fresh id. ev->json in a. PX_ERR_TOO_LARGE past PX_EVENT_MAX_JSON,
 * PX_ERR_INVALID when data_json is not JSON. */
px_rc px_event_build(struct px_event *ev, struct px_arena *a, const char *type,
                     const char *function, const char *subject, const char *tenant, int64_t ord,
                     const char *data_json) PX_WUR;

/* ---- writers on SQLite: same file, same transaction ---- */

/* The outbox schema for a SQLite store's migrations (idempotent DDL). */
extern const char px_outbox_sqlite_schema[];
struct sqlite3;
/* Inserts ev on db, which the caller holds in a write transaction. Returns
 * the SQLite result code (SQLITE_OK on success), so that the caller's error
 * mapping stays its own. */
int px_outbox_sqlite_insert(struct sqlite3 *db, const struct px_event *ev);

/* ---- writers on DynamoDB: TransactWriteItems with the change ---- */

/* The TransactItems entry putting ev into `table`'s outbox (outbox_dynamodb.c:
 * pk OUTBOX#<tenant>, sk <subject>#<ord>), conditional on its absence. New
 * reference (caller decrefs or hands it to an array); NULL when out of memory. */
json_t *px_outbox_ddb_put(const char *table, const struct px_event *ev);
/* The outbox partition key of tenant, and the sort key of (subject, ord). */
void px_outbox_ddb_pk(const char *tenant, char *out, size_t cap);
void px_outbox_ddb_sk(const char *subject, int64_t ord, char *out, size_t cap);

/* ---- the relay's side ---- */

struct px_outbox;

enum px_outbox_status { PX_OUTBOX_WAITING, PX_OUTBOX_SENT, PX_OUTBOX_FAILED };

/* One outbox row; heap. */
struct px_outbox_row {
    int64_t seq; /* insertion order within its outbox */
    char id[37];
    char tenant[65];
    char subject[PX_EVENT_SUBJ_MAX + 1];
    char type[64];
    int64_t ord;
    enum px_outbox_status status;
    long attempts;
    int64_t created_ms, next_ms;
    char error[PX_EVENT_ERROR_MAX]; /* the last failure, "" when none */
    char *event;                    /* the CloudEvent JSON (heap, owned by the row array) */
};

/* Opens the outbox living in the store named by spec ("sqlite:PATH",
 * "postgresql://..." or "dynamodb:TABLE", which takes its AWS settings from
 * cfg); the table must exist (db migrate). cfg is borrowed for the call. */
px_rc px_outbox_open(const char *spec, const struct px_config *cfg, long timeout_ms,
                     struct px_outbox **out, char *err, size_t errlen) PX_WUR;
/* Closes. Accepts NULL. */
void px_outbox_close(struct px_outbox *o);
/* The spec, with any password hidden (messages). */
const char *px_outbox_name(const struct px_outbox *o);
/* Every row in seq order (failed_only: only parked ones), at most max. */
px_rc px_outbox_list(struct px_outbox *o, bool failed_only, size_t max, struct px_outbox_row **rows,
                     size_t *n) PX_WUR;
/* Frees an array from list or claim. Accepts NULL. */
void px_outbox_rows_free(struct px_outbox_row *rows, size_t n);
/* Puts a failed (or waiting) event back in line with its attempts reset.
 * PX_ERR_NOT_FOUND when no such id, PX_ERR_CONFLICT when it was sent. */
px_rc px_outbox_retry(struct px_outbox *o, const char *id) PX_WUR;
/* Leases up to max due events for owner until now_ms + lease_ms, in seq
 * order and only events whose earlier waiting events of the same subject
 * are also taken (a subject stops at its first event that is not due or
 * leased by another relay). Atomic per event: two relays never hold one
 * event's lease at once. */
px_rc px_outbox_claim(struct px_outbox *o, const char *owner, int64_t now_ms, long lease_ms,
                      size_t max, struct px_outbox_row **rows, size_t *n) PX_WUR;
/* True in *before when a waiting event of (tenant, subject) with a smaller
 * ord exists here (the order across outboxes). */
px_rc px_outbox_waiting_before(struct px_outbox *o, const char *tenant, const char *subject,
                               int64_t ord, bool *before) PX_WUR;
/* Marks an event published and ends its lease. */
px_rc px_outbox_mark_sent(struct px_outbox *o, int64_t seq, int64_t now_ms) PX_WUR;
/* Records a failed attempt: attempts + 1, the error, retry not before
 * next_ms; park: status failed (dead letter) instead. Ends the lease. */
px_rc px_outbox_mark_failed(struct px_outbox *o, int64_t seq, const char *error, int64_t next_ms,
                            bool park) PX_WUR;
/* Gives up a lease without counting an attempt (shutdown, order wait). */
px_rc px_outbox_release(struct px_outbox *o, int64_t seq) PX_WUR;
/* Waiting and failed counts and the creation time of the oldest waiting
 * event (0 when none). */
px_rc px_outbox_stats(struct px_outbox *o, int64_t *waiting, int64_t *failed,
                      int64_t *oldest_ms) PX_WUR;

/* Name of a status: "waiting", "sent", "failed". */
const char *px_outbox_status_name(enum px_outbox_status s);

/* Backend function table; one per file (outbox_sqlite.c, outbox_pg.c, outbox_dynamodb.c). */
struct px_outbox_ops {
    px_rc (*open)(const char *spec, const struct px_config *cfg, long timeout_ms, void **impl,
                  char *err, size_t errlen);
    void (*close)(void *impl);
    px_rc (*list)(void *impl, bool failed_only, size_t max, struct px_outbox_row **rows, size_t *n);
    px_rc (*retry)(void *impl, const char *id);
    px_rc (*claim)(void *impl, const char *owner, int64_t now_ms, long lease_ms, size_t max,
                   struct px_outbox_row **rows, size_t *n);
    px_rc (*waiting_before)(void *impl, const char *tenant, const char *subject, int64_t ord,
                            bool *before);
    px_rc (*mark)(void *impl, int64_t seq, enum px_outbox_status st, const char *error,
                  int64_t next_ms, int64_t now_ms, bool count_attempt);
    px_rc (*stats)(void *impl, int64_t *waiting, int64_t *failed, int64_t *oldest_ms);
};

extern const struct px_outbox_ops px_outbox_sqlite_ops;
extern const struct px_outbox_ops px_outbox_pg_ops;
extern const struct px_outbox_ops px_outbox_dynamodb_ops;

/* For backends' claim: true when an earlier row of rows[i]'s (tenant,
 * subject) among rows[0..i) was not taken, so rows[i] must wait too. */
bool px_outbox_blocked(const struct px_outbox_row *rows, const bool *taken, size_t i);

#endif
