/* audit.h: the append-only audit trail, one interface over SQLite and DynamoDB.
 *
 * px_audit_submit() copies the record and returns at once; `done` is called
 * exactly once, from a store thread, when the record is durable (PX_OK) or
 * cannot be made so within the store's bound (any other rc). The transport
 * holds the response until then: no price leaves without its record.
 * px_audit_append() is the blocking form for one-shot callers (invoke, Lambda).
 * Backend chosen by spec: "sqlite:PATH", "lsm:DIR" (builds with PX_LSM) or
 * "dynamodb:TABLE". */
#ifndef PX_AUDIT_H
#define PX_AUDIT_H

#include "../kernel/px.h"
#include "../kernel/arena.h"

struct px_audit_store;
struct px_chain_verifier;

/* One record (CONTRACT §5). Fixed-size fields so it copies without an arena. */
struct px_audit_record {
    char user_id[PX_UUID_LEN + 1]; /* lower case */
    char product_id[PX_MAX_PRODUCT_ID + 1];
    char request_id[PX_MAX_REQUEST_ID + 1];
    char correlation_id[PX_MAX_REQUEST_ID + 1];
    char principal[PX_MAX_PRINCIPAL + 1]; /* "" when unauthenticated */
    /* API Gateway's requestContext.requestId, "" when none */
    char api_request_id[PX_MAX_REQUEST_ID + 1];
    char ts[25];        /* 2026-01-23T12:00:00.123Z */
    int64_t expires_at; /* epoch seconds */
    char action[16];    /* "PRICE_FETCH", "PRODUCT_CREATE", ..., "PRICE_CHANGE" */
    char status[16];    /* SUCCESS | NOT_FOUND | ERROR (look-ups); SUCCESS | FAILED (writes) */
    /* Writes only (CONTRACT §8): JSON objects of the changed fields before and
     * after the change, NULL when absent (every look-up). Borrowed: submit
     * copies them with the record, queries return arena copies. */
    const char *before;
    const char *after;
    /* A config change (CONTRACT §9): the key changed; "" otherwise. Its
     * gsi1pk is CONFIG#<key> instead of PRODUCT#<product>. */
    char config_key[128 + 1];
    /* TENANCY=on (CONTRACT §12): the tenant the record belongs to, written as
     * tenantId; "" with TENANCY=off, where the record is what it always was.
     * A tenant other than "default" prefixes pk and gsi1pk with T#<tenant>#. */
    char tenant[64 + 1];
};

/* Bound on each of before / after (a product body is at most 64 KiB). */
#define PX_AUDIT_CHANGE_MAX (160 * 1024)
/* Size of the gsi1pk buffer px_audit_keys() needs ("CONFIG#" + a config key). */
#define PX_AUDIT_GSI1PK_MAX 240
/* Size of the pk buffer px_audit_keys() needs ("ACTOR#" + a principal). */
#define PX_AUDIT_PK_MAX 240

/* Derived keys: pk = USER#<user> (look-ups) or ACTOR#<principal> (writes, which
 * carry no user id), sk = gsi1sk = AUDIT#<ts>#<request>, gsi1pk = PRODUCT#<product>
 * or, for a config change, CONFIG#<key>; pk and gsi1pk of a tenant other than
 * "default" start with T#<tenant>#, so the default tenant keeps today's keys. */
void px_audit_keys(const struct px_audit_record *r, char pk[PX_AUDIT_PK_MAX], char sk[128],
                   char gsi1pk[PX_AUDIT_GSI1PK_MAX]);

/* Bytes px_audit_record_copy() needs beyond the struct for r's before/after. */
size_t px_audit_record_extra(const struct px_audit_record *r);
/* *dst = *src, with before/after copied into space (px_audit_record_extra()
 * bytes, owned by the caller, e.g. the tail of the queue item holding dst). */
void px_audit_record_copy(struct px_audit_record *dst, const struct px_audit_record *src,
                          char *space);
/* true when before/after are absent or NUL-terminated within PX_AUDIT_CHANGE_MAX,
 * and the record names its subject: a user id (look-ups) or a principal (writes). */
bool px_audit_record_subject_ok(const struct px_audit_record *r);

struct px_audit_opts {
    long timeout_ms;    /* bound on making one record durable */
    unsigned max_batch; /* group commit size cap; 0 = backend default */
    unsigned queue_cap; /* waiting records cap; past it submit answers PX_ERR_BUSY */
    bool create;        /* create tables/indexes when missing (db seed) */
    /* SQLite: refuse a file that does not exist or holds no trail yet, instead
     * of starting a new, empty one (serve, invoke, Lambda, audit query). */
    bool must_exist;
    /* Ed25519 private key (PEM) signing checkpoints; NULL: records are
     * chained but not checkpointed (docs/internals/audit-integrity.md). */
    const char *signing_key_file;
    /* DynamoDB settings (ignored by SQLite) */
    const char *region, *endpoint, *access_key_id, *secret_access_key, *session_token;
};

typedef void (*px_audit_done_fn)(void *arg, px_rc rc);

struct px_audit_query {
    const char *user_id; /* exactly one of user_id / product_id / config_key */
    const char *product_id;
    const char *config_key; /* config changes of one key (SQLite store only) */
    const char *from, *to;  /* RFC 3339 bounds, inclusive; NULL = open */
    long limit;             /* 1..1000 */
    const char *cursor;     /* opaque, from a previous page; NULL = first page */
    int64_t now;            /* epoch seconds; records with expires_at <= now are hidden */
    /* The tenant whose records are read (TENANCY=on); NULL: "default" with
     * records left as written (TENANCY=off). Only its partition is read. */
    const char *tenant;
};

struct px_audit_page {
    struct px_audit_record *items; /* arena-owned, oldest first */
    size_t nitems;
    const char *next_cursor; /* arena-owned, NULL when no more */
};

px_rc px_audit_open(const char *spec, const struct px_audit_opts *opts, struct px_audit_store **out,
                    char *err, size_t errlen) PX_WUR;
/* Waits for every submitted record to finish, stops the store's threads, frees it. Accepts NULL. */
void px_audit_close(struct px_audit_store *s);
/* Queues a copy of r; done(arg, rc) follows exactly once (see top). On a non-OK
 * return done is NOT called. */
px_rc px_audit_submit(struct px_audit_store *s, const struct px_audit_record *r,
                      px_audit_done_fn done, void *arg) PX_WUR;
/* Blocks until r is durable or has failed. */
px_rc px_audit_append(struct px_audit_store *s, const struct px_audit_record *r) PX_WUR;
/* Safety margin px_audit_append_until keeps before the deadline: time to
 * render and send the answer after giving up on the store. */
#define PX_AUDIT_DEADLINE_MARGIN_MS 200
/* Like px_audit_append, but gives up at deadline_ms (epoch ms) minus
 * PX_AUDIT_DEADLINE_MARGIN_MS, or at the store's own bound if that comes
 * first, and then returns PX_ERR_TIMEOUT; deadline_ms <= 0 waits like
 * px_audit_append. After a time-out the record may still become durable
 * later (never the other way round); the store's late done() is harmless. */
px_rc px_audit_append_until(struct px_audit_store *s, const struct px_audit_record *r,
                            int64_t deadline_ms) PX_WUR;
/* One page of records. PX_ERR_INVALID for a bad cursor. */
px_rc px_audit_query(struct px_audit_store *s, const struct px_audit_query *q, struct px_arena *a,
                     struct px_audit_page *out) PX_WUR;
/* PX_OK when the store can take a write now (readiness): SQLite checks that
 * its file is still the one at its path and takes and releases the write
 * lock (waiting at most 100 ms); DynamoDB describes the table. */
px_rc px_audit_ping(struct px_audit_store *s) PX_WUR;
/* Number of records in the store, expired ones included; PX_ERR_INVALID when
 * the backend cannot count (only the embedded lsm store can). */
px_rc px_audit_count(struct px_audit_store *s, uint64_t *count) PX_WUR;

/* Called for each record of px_audit_scan (r and its before/after valid
 * only during the call). */
typedef px_rc (*px_audit_scan_fn)(void *arg, const struct px_audit_record *r);
/* Every record with from <= ts <= to (normalised millisecond form, NULL =
 * open) to fn, in the store's order (SQLite: insertion; lsm: by product).
 * PX_ERR_INVALID when the backend cannot (DynamoDB for now). */
px_rc px_audit_scan(struct px_audit_store *s, const char *from, const char *to, px_audit_scan_fn fn,
                    void *arg, char *err, size_t errlen) PX_WUR;

/* Retention: removes records with expires_at <= now, only those, and only
 * a prefix of each writer's chain (an expired record after a live one of its
 * writer stays until the ones before it expire), recording a signed purge
 * checkpoint per writer in the same transaction so that verify still passes.
 * Needs the store's signing key. The caller verifies the trail first: a
 * purge must never cut away the evidence of a tamper. PX_ERR_INVALID when
 * the backend cannot purge. */
px_rc px_audit_purge(struct px_audit_store *s, int64_t now, uint64_t *removed, char *err,
                     size_t errlen) PX_WUR;

/* Runs verifier v over the whole store (audit_chain.h). PX_ERR_INVALID when
 * the backend has no chain yet; other errors (with err) when the store
 * could not be read; PX_OK says only that v saw everything. */
px_rc px_audit_verify(struct px_audit_store *s, struct px_chain_verifier *v, char *err,
                      size_t errlen) PX_WUR;

/* Backend function table; one per file (audit_sqlite.c, audit_dynamodb.c). */
struct px_audit_ops {
    const char *scheme;
    px_rc (*open)(const char *target, const struct px_audit_opts *opts, void **impl, char *err,
                  size_t errlen);
    void (*close)(void *impl);
    px_rc (*submit)(void *impl, const struct px_audit_record *r, px_audit_done_fn done, void *arg);
    px_rc (*query)(void *impl, const struct px_audit_query *q, struct px_arena *a,
                   struct px_audit_page *out);
    px_rc (*ping)(void *impl);
    /* Optional (NULL when the backend cannot): every record, expired ones included. */
    px_rc (*count)(void *impl, uint64_t *count);
    /* Optional: feeds every checkpoint and record to v (audit_chain.h);
     * PX_OK when everything could be read, whatever v concludes. */
    px_rc (*verify)(void *impl, struct px_chain_verifier *v, char *err, size_t errlen);
    /* Optional: every record with from <= ts <= to (normalised; NULL open),
     * expired ones included, to fn; a non-OK rc from fn stops and is returned. */
    px_rc (*scan)(void *impl, const char *from, const char *to, px_audit_scan_fn fn, void *arg,
                  char *err, size_t errlen);
    /* Optional: removes records past expiresAt (see px_audit_purge). */
    px_rc (*purge)(void *impl, int64_t now, uint64_t *removed, char *err, size_t errlen);
};

extern const struct px_audit_ops px_audit_sqlite_ops;
extern const struct px_audit_ops px_audit_dynamodb_ops;
extern const struct px_audit_ops px_audit_lsm_ops; /* only with PX_HAVE_LSM */

/* Normalises an RFC 3339 UTC timestamp (with or without a fraction) to the
 * millisecond form the sort keys use, "2026-01-23T12:00:00.000Z", into out.
 * Extra fraction digits are truncated. PX_ERR_INVALID when in is not one. */
px_rc px_audit_ts_ms(const char *in, char out[25]) PX_WUR;

/* Normalises an RFC 3339 timestamp ("2026-01-23T12:00:00Z", "2026-01-23T13:00:00.5+01:00")
 * to the UTC millisecond form records carry ("2026-01-23T12:00:00.000Z"), so that
 * sort-key bounds compare as text. Digits past the millisecond are truncated.
 * PX_ERR_INVALID when in is not such a timestamp. out receives 24 characters + NUL. */
px_rc px_audit_ts_ms(const char *in, char out[25]) PX_WUR;

/* The key prefix of a tenant into out[PX_AUDIT_TENANT_PREFIX_MAX]: "" for
 * NULL, "" and "default", else T#<tenant>#. */
#define PX_AUDIT_TENANT_PREFIX_MAX (64 + 4)
void px_audit_tenant_prefix(const char *tenant, char out[PX_AUDIT_TENANT_PREFIX_MAX]);
/* Fills r->tenant after a store read r back from key (its pk or gsi1pk): the
 * T#<tenant># prefix, else "default" when the query named a tenant (q_tenant
 * non-NULL), else "". Returns key past the prefix. */
const char *px_audit_tenant_from_key(struct px_audit_record *r, const char *key,
                                     const char *q_tenant);

/* Writes r as one JSON object (CONTRACT §5 attribute names) into buf (a struct px_buf *). */
px_rc px_audit_record_json(const struct px_audit_record *r, void *buf) PX_WUR;

#endif
