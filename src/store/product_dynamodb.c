/* product_dynamodb.c: the product catalogue in one DynamoDB table
 * (PRODUCT_STORE=dynamodb:TABLE, TABLE_PRODUCTS), single-table design of
 * docs/internals/products.md:
 *
 *   product      pk T#<tenant>#PRODUCT#<id>  sk META   gsi1 by category, gsi2 by
 *                                                      status, gsi3 all (sharded)
 *   write lock   pk T#<tenant>#PRODUCT#<id>  sk LOCK   owner, expiresAt (lease)
 *   idempotency  pk T#<tenant>#IDEM#<n>:<principal>#<route>#<key>  sk IDEM
 *
 * A write (px_product_apply) cannot hold a transaction open across the
 * callback the way SQLite's BEGIN IMMEDIATE does, and the callback has effects
 * outside this table (the audit record, the price store). So it takes the
 * product's LOCK item first (a conditional put: absent, expired, or already
 * ours), re-reads the product consistently, checks the expectation, runs the
 * callback, stores the product with `version = :expected` (a create with
 * attribute_not_exists(pk)), and deletes the lock. The lock is what keeps a
 * second writer from writing the price store; the version condition is what
 * keeps two product writes from both landing even if a lease ran out.
 * A product change's event (next->event) goes into this table's outbox
 * (outbox_dynamodb.c) in the same TransactWriteItems as the product's put, its
 * condition kept: both land or neither does.
 *
 * Lists query the GSI of the filter with `sk > :after`, ordered by id, so the
 * list cursor of dto.c (the last id, bound to the filters) is all a page
 * needs; the unfiltered list merges the GSI3 shards. Every string attribute
 * that may be empty is left out (DynamoDB emulators refuse empty strings) and
 * reads back as "". */
#include "product_dynamodb.h"
#include "dynamodb.h"
#include "outbox.h"
#include "../kernel/app.h"
#include "../kernel/log.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TENANT          "default"
#define SHARDS          4
#define TTL_ATTR        "expiresAt"
#define MAX_TABLE_NAME  255
#define MAX_QUERY_PAGES 64
#define CONTROL_MS      10000
#define CREATE_WAIT_MS  120000
#define CREATE_POLL_MS  250
#define MAX_RESPONSE    (8 * 1024 * 1024) /* a page of 1000 products with large attributes */
/* A lock outlives the longest callback: an audit append (AUDIT_TIMEOUT_MS
 * <= 60 s) plus a price write (PRICE_TIMEOUT_MS <= 60 s). */
#define LOCK_LEASE_S 130
#define KEY_MAX      (64 + PX_MAX_PRINCIPAL + 64 + 160)

struct store {
    struct px_ddb *c;
    char table[MAX_TABLE_NAME + 1];
    long timeout_ms;
};

/* ----------------------------------------------------------------- keys */

/* The tenant of a key: every key starts T#<tenant># (CONTRACT §12), the
 * implicit tenant "default" included, so no tenant's partitions meet. */
static const char *tn(const char *tenant)
{
    return tenant && tenant[0] ? tenant : TENANT;
}

static void product_pk(const char *tenant, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "T#%s#PRODUCT#%s", tn(tenant), id);
}

PX_STATIC unsigned px_ddb_product_shard(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a: stable across builds and hosts */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % SHARDS;
}

/* The principal is length-prefixed: it may hold '#', the route and key then
 * cannot be confused with a part of it. */
PX_STATIC void px_ddb_idem_pk(const char *principal, const char *route, const char *key, char *out,
                              size_t cap)
{
    snprintf(out, cap, "T#" TENANT "#IDEM#%zu:%s#%s#%s", strlen(principal), principal, route, key);
}

/* ---------------------------------------------------------------- calls */

static px_rc call(struct store *s, const char *op, json_t *req, int64_t deadline, json_t **resp,
                  struct px_ddb_error *err)
{
    return px_ddb_call_json(s->c, op, req, deadline, resp, err);
}

static int64_t deadline_of(const struct store *s)
{
    return px_ddb_now_ms() + s->timeout_ms;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

static json_t *s_attr(const char *v)
{
    return json_pack("{s:s}", "S", v);
}

static json_t *n_attr(long long v)
{
    char n[32];
    snprintf(n, sizeof(n), "%lld", v);
    return json_pack("{s:s}", "N", n);
}

static json_t *key_of(const char *pk, const char *sk)
{
    return json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", pk, "sk", "S", sk);
}

/* Sets name to {"S": v}; an empty or NULL v sets nothing. */
static int put_s(json_t *item, const char *name, const char *v)
{
    if (!v || !v[0])
        return 0;
    return json_object_set_new(item, name, s_attr(v));
}

static const char *attr_s(const json_t *item, const char *name)
{
    const json_t *v = json_object_get(item, name);
    const json_t *s = json_is_object(v) ? json_object_get(v, "S") : NULL;
    return json_is_string(s) ? json_string_value(s) : NULL;
}

static bool attr_n(const json_t *item, const char *name, long long *out)
{
    const json_t *v = json_object_get(item, name);
    const json_t *n = json_is_object(v) ? json_object_get(v, "N") : NULL;
    if (!json_is_string(n))
        return false;
    const char *t = json_string_value(n);
    char *end = NULL;
    errno = 0;
    long long x = strtoll(t, &end, 10);
    if (errno || end == t || *end)
        return false;
    *out = x;
    return true;
}

/* ------------------------------------------------------------- products */

PX_STATIC json_t *px_ddb_product_item(const char *tenant, const struct px_product *p)
{
    char pk[160], g1[600], g2[128], g3[128];
    product_pk(tenant, p->id, pk, sizeof(pk));
    snprintf(g1, sizeof(g1), "T#%s#CATEGORY#%s", tn(tenant), p->category ? p->category : "");
    snprintf(g2, sizeof(g2), "T#%s#STATUS#%s", tn(tenant), p->status);
    snprintf(g3, sizeof(g3), "T#%s#PRODUCTS#%u", tn(tenant), px_ddb_product_shard(p->id));
    json_t *it = json_object();
    if (!it)
        return NULL;
    int bad = json_object_set_new(it, "pk", s_attr(pk));
    bad |= json_object_set_new(it, "sk", s_attr("META"));
    bad |= json_object_set_new(it, "entity", s_attr("PRODUCT"));
    bad |= json_object_set_new(it, "productId", s_attr(p->id));
    bad |= put_s(it, "name", p->name);
    bad |= put_s(it, "description", p->description);
    bad |= put_s(it, "category", p->category);
    bad |= put_s(it, "status", p->status);
    bad |= put_s(it, "attributes",
                 p->attributes && strcmp(p->attributes, "{}") ? p->attributes : NULL);
    if (p->has_price) {
        bad |= put_s(it, "priceAmount", p->amount);
        bad |= put_s(it, "priceCurrency", p->currency);
        bad |= put_s(it, "priceEffectiveFrom", p->effective_from);
    }
    bad |= json_object_set_new(it, "version", n_attr(p->version));
    bad |= put_s(it, "createdAt", p->created_at);
    bad |= put_s(it, "updatedAt", p->updated_at);
    bad |= json_object_set_new(it, "gsi1pk", s_attr(g1));
    bad |= json_object_set_new(it, "gsi1sk", s_attr(p->id));
    bad |= json_object_set_new(it, "gsi2pk", s_attr(g2));
    bad |= json_object_set_new(it, "gsi2sk", s_attr(p->id));
    bad |= json_object_set_new(it, "gsi3pk", s_attr(g3));
    bad |= json_object_set_new(it, "gsi3sk", s_attr(p->id));
    if (bad) {
        json_decref(it);
        return NULL;
    }
    return it;
}

static px_rc copy_into(const json_t *it, const char *name, char *dst, size_t cap)
{
    const char *v = attr_s(it, name);
    size_t n = v ? strlen(v) : 0;
    if (n >= cap)
        return PX_ERR_PROTOCOL;
    memcpy(dst, v ? v : "", n + 1);
    return PX_OK;
}

static const char *dup_attr(const json_t *it, const char *name, const char *dflt,
                            struct px_arena *a)
{
    const char *v = attr_s(it, name);
    return px_arena_strdup(a, v ? v : dflt);
}

PX_STATIC px_rc px_ddb_product_parse(const json_t *it, struct px_arena *a, struct px_product *p)
{
    memset(p, 0, sizeof(*p));
    long long version = 0;
    if (!json_is_object(it) || !attr_s(it, "productId") || !attr_n(it, "version", &version) ||
        version < 1)
        return PX_ERR_PROTOCOL;
    px_rc rc = copy_into(it, "productId", p->id, sizeof(p->id));
    if (!rc)
        rc = copy_into(it, "status", p->status, sizeof(p->status));
    if (!rc)
        rc = copy_into(it, "createdAt", p->created_at, sizeof(p->created_at));
    if (!rc)
        rc = copy_into(it, "updatedAt", p->updated_at, sizeof(p->updated_at));
    p->has_price = attr_s(it, "priceAmount") != NULL;
    if (!rc && p->has_price)
        rc = copy_into(it, "priceAmount", p->amount, sizeof(p->amount));
    if (!rc && p->has_price)
        rc = copy_into(it, "priceCurrency", p->currency, sizeof(p->currency));
    if (!rc && p->has_price)
        rc = copy_into(it, "priceEffectiveFrom", p->effective_from, sizeof(p->effective_from));
    if (rc)
        return rc;
    p->version = (long)version;
    p->name = dup_attr(it, "name", "", a);
    p->description = dup_attr(it, "description", "", a);
    p->category = dup_attr(it, "category", "", a);
    p->attributes = dup_attr(it, "attributes", "{}", a);
    return p->name && p->description && p->category && p->attributes ? PX_OK : PX_ERR_NOMEM;
}

static px_rc get_item(struct store *s, const char *tenant, const char *id, struct px_arena *a,
                      struct px_product *out, int64_t deadline)
{
    char pk[160];
    json_t *resp = NULL;
    product_pk(tenant, id, pk, sizeof(pk));
    px_rc rc = call(s, "GetItem",
                    json_pack("{s:s, s:o, s:b}", "TableName", s->table, "Key", key_of(pk, "META"),
                              "ConsistentRead", 1),
                    deadline, &resp, NULL);
    if (rc)
        return rc;
    const json_t *it = json_object_get(resp, "Item");
    rc = json_is_object(it) ? px_ddb_product_parse(it, a, out) : PX_ERR_NOT_FOUND;
    json_decref(resp);
    return rc;
}

static px_rc ddb_get(void *impl, const char *tenant, const char *id, struct px_arena *a,
                     struct px_product *out)
{
    struct store *s = impl;
    return get_item(s, tenant, id, a, out, deadline_of(s));
}

/* ---------------------------------------------------------------- lists */

/* Appends to acc up to `need` items of one GSI partition whose sort key is
 * above after, in sort-key order, following pages (bounded). */
static px_rc query_partition(struct store *s, const char *index, const char *pkv, const char *after,
                             const char *status_filter, size_t need, json_t *acc, int64_t deadline)
{
    char pkname[8], skname[8];
    snprintf(pkname, sizeof(pkname), "%spk", index);
    snprintf(skname, sizeof(skname), "%ssk", index);
    json_t *start = NULL;
    size_t got = 0;
    px_rc rc = PX_OK;
    for (unsigned page = 0; page < MAX_QUERY_PAGES && got < need; page++) {
        json_t *req =
            json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}}, s:b}", "TableName", s->table,
                      "IndexName", index, "ExpressionAttributeNames", "#p", pkname, "#s", skname,
                      "ExpressionAttributeValues", ":p", "S", pkv, "ScanIndexForward", 1);
        if (!req) {
            rc = PX_ERR_NOMEM;
            break;
        }
        int bad = 0;
        json_t *names = json_object_get(req, "ExpressionAttributeNames");
        json_t *values = json_object_get(req, "ExpressionAttributeValues");
        if (after && after[0]) {
            bad |= json_object_set_new(req, "KeyConditionExpression",
                                       json_string("#p = :p AND #s > :a"));
            bad |= json_object_set_new(values, ":a", s_attr(after));
        } else {
            bad |= json_object_set_new(req, "KeyConditionExpression", json_string("#p = :p"));
            json_object_del(names, "#s");
        }
        if (status_filter) {
            bad |= json_object_set_new(req, "FilterExpression", json_string("#st = :st"));
            bad |= json_object_set_new(names, "#st", json_string("status"));
            bad |= json_object_set_new(values, ":st", s_attr(status_filter));
        } else {
            bad |= json_object_set_new(req, "Limit", json_integer((json_int_t)(need - got)));
        }
        if (start)
            bad |= json_object_set(req, "ExclusiveStartKey", start);
        if (bad) {
            json_decref(req);
            rc = PX_ERR_NOMEM;
            break;
        }
        json_t *resp = NULL;
        struct px_ddb_error err;
        rc = call(s, "Query", req, deadline, &resp, &err);
        if (rc) {
            PX_WARN(NULL, "product list on DynamoDB table %s failed: %s (%s%s%s)", s->table,
                    px_strerror(rc), err.type, err.type[0] ? ": " : "", err.message);
            break;
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(resp, "Items"), i, it)
        {
            if (got == need)
                break;
            if (json_array_append(acc, it)) {
                rc = PX_ERR_NOMEM;
                break;
            }
            got++;
        }
        json_t *lek = json_object_get(resp, "LastEvaluatedKey");
        json_decref(start);
        start = json_is_object(lek) ? json_incref(lek) : NULL;
        json_decref(resp);
        if (rc || !start)
            break;
    }
    if (!rc && start && got < need)
        rc = PX_ERR_TOO_LARGE; /* page bound reached: refuse rather than answer a short page */
    json_decref(start);
    return rc;
}

static int by_id(const void *x, const void *y)
{
    const char *a = attr_s(*(json_t *const *)x, "productId");
    const char *b = attr_s(*(json_t *const *)y, "productId");
    return strcmp(a ? a : "", b ? b : "");
}

static px_rc ddb_list(void *impl, const struct px_product_query *q, struct px_arena *a,
                      struct px_product **items, size_t *n, bool *more)
{
    struct store *s = impl;
    size_t need = (size_t)q->limit + 1; /* one more tells whether a page follows */
    int64_t deadline = px_ddb_now_ms() + 3 * s->timeout_ms;
    json_t *acc = json_array();
    json_t **sorted = NULL;
    char pkv[512];
    px_rc rc = acc ? PX_OK : PX_ERR_NOMEM;
    if (!rc && q->category) {
        snprintf(pkv, sizeof(pkv), "T#%s#CATEGORY#%s", tn(q->tenant), q->category);
        rc = query_partition(s, "gsi1", pkv, q->after_id, q->status, need, acc, deadline);
    } else if (!rc && q->status) {
        snprintf(pkv, sizeof(pkv), "T#%s#STATUS#%s", tn(q->tenant), q->status);
        rc = query_partition(s, "gsi2", pkv, q->after_id, NULL, need, acc, deadline);
    } else {
        for (unsigned sh = 0; !rc && sh < SHARDS; sh++) {
            snprintf(pkv, sizeof(pkv), "T#%s#PRODUCTS#%u", tn(q->tenant), sh);
            rc = query_partition(s, "gsi3", pkv, q->after_id, NULL, need, acc, deadline);
        }
    }
    if (rc)
        goto out;
    size_t total = json_array_size(acc);
    sorted = total ? calloc(total, sizeof(*sorted)) : NULL;
    if (total && !sorted) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < total; i++)
        sorted[i] = json_array_get(acc, i);
    qsort(sorted, total, sizeof(*sorted), by_id);
    size_t keep = total > (size_t)q->limit ? (size_t)q->limit : total;
    struct px_product *out = px_arena_calloc(a, (keep ? keep : 1) * sizeof(*out));
    if (!out) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; !rc && i < keep; i++)
        rc = px_ddb_product_parse(sorted[i], a, &out[i]);
    if (!rc) {
        *items = out;
        *n = keep;
        *more = total > keep;
    }
out:
    free(sorted);
    json_decref(acc);
    return rc;
}

/* ---------------------------------------------------------------- writes */

static px_rc check_expect(px_rc got, const struct px_product *cur, enum px_product_expect expect,
                          long version)
{
    if (got && got != PX_ERR_NOT_FOUND)
        return got;
    bool exists = got == PX_OK;
    if (expect == PX_PRODUCT_MUST_NOT_EXIST && exists)
        return PX_ERR_CONFLICT;
    if (expect == PX_PRODUCT_AT_VERSION && !exists)
        return PX_ERR_NOT_FOUND;
    if (expect == PX_PRODUCT_AT_VERSION && version >= 0 && cur->version != version)
        return PX_ERR_STALE;
    return PX_OK;
}

/* Takes the product's write lock: absent, expired, or ours already (a retried
 * put whose first attempt landed). While another writer holds it, the product
 * is read again between attempts: once that writer has moved the version on,
 * this one's expectation can never hold again, and its answer (412, 409) need
 * not wait for the lock. PX_ERR_TIMEOUT when the lock stays taken until the
 * store's bound. */
static px_rc lock_take(struct store *s, const char *tenant, const char *pk, const char *owner,
                       const char *id, enum px_product_expect expect, long version)
{
    int64_t deadline = deadline_of(s);
    unsigned delay = 5;
    struct px_arena *scratch = NULL;
    px_rc rc;
    for (;;) {
        int64_t now = (int64_t)time(NULL);
        char exp[32], nows[32];
        snprintf(exp, sizeof(exp), "%lld", (long long)(now + LOCK_LEASE_S));
        snprintf(nows, sizeof(nows), "%lld", (long long)now);
        struct px_ddb_error err;
        rc = call(s, "PutItem",
                  json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:{s:s, s:s},"
                            " s:{s:{s:s}, s:{s:s}}}",
                            "TableName", s->table, "Item", "pk", "S", pk, "sk", "S", "LOCK",
                            "owner", "S", owner, TTL_ATTR, "N", exp, "ConditionExpression",
                            "attribute_not_exists(pk) OR #e < :now OR #o = :me",
                            "ExpressionAttributeNames", "#e", TTL_ATTR, "#o", "owner",
                            "ExpressionAttributeValues", ":now", "N", nows, ":me", "S", owner),
                  deadline, NULL, &err);
        if (rc != PX_ERR_CONFLICT)
            break;
        if (px_ddb_now_ms() + delay >= deadline) {
            rc = PX_ERR_TIMEOUT;
            break;
        }
        /* jittered, growing to 50 ms: 50 writers of one product take turns quickly */
        sleep_ms((long)(delay / 2 + (unsigned)rand() % (delay / 2 + 1)));
        if (delay < 50)
            delay *= 2;
        if (!scratch && !(scratch = px_arena_new(1024 * 1024))) {
            rc = PX_ERR_NOMEM;
            break;
        }
        px_arena_reset(scratch);
        struct px_product cur;
        rc = check_expect(get_item(s, tenant, id, scratch, &cur, deadline), &cur, expect, version);
        if (rc)
            break; /* stale, or exists: final whoever holds the lock */
    }
    px_arena_free(scratch);
    return rc;
}

static void lock_release(struct store *s, const char *pk, const char *owner)
{
    struct px_ddb_error err;
    px_rc rc = call(s, "DeleteItem",
                    json_pack("{s:s, s:o, s:s, s:{s:s}, s:{s:{s:s}}}", "TableName", s->table, "Key",
                              key_of(pk, "LOCK"), "ConditionExpression", "#o = :me",
                              "ExpressionAttributeNames", "#o", "owner",
                              "ExpressionAttributeValues", ":me", "S", owner),
                    deadline_of(s), NULL, &err);
    /* CONFLICT: not ours any more (lease ran out) or a retried delete landed */
    if (rc && rc != PX_ERR_CONFLICT)
        PX_WARN(NULL,
                "product write lock %s not released (%s%s%s): writes of this product wait "
                "until its lease ends (%d s)",
                pk, px_strerror(rc), err.type[0] ? ": " : "", err.type, LOCK_LEASE_S);
}

/* Stores next: a create only when absent, an update only at cur's version. */
static px_rc put_product(struct store *s, const char *tenant, const struct px_product *cur,
                         const struct px_product *next)
{
    json_t *item = px_ddb_product_item(tenant, next);
    json_t *req = item ? json_pack("{s:s, s:o}", "TableName", s->table, "Item", item) : NULL;
    if (!req)
        return PX_ERR_NOMEM;
    int bad = 0;
    if (cur) {
        bad |= json_object_set_new(req, "ConditionExpression", json_string("#v = :v"));
        bad |= json_object_set_new(req, "ExpressionAttributeNames",
                                   json_pack("{s:s}", "#v", "version"));
        bad |= json_object_set_new(req, "ExpressionAttributeValues",
                                   json_pack("{s:o}", ":v", n_attr(cur->version)));
    } else {
        bad |= json_object_set_new(req, "ConditionExpression",
                                   json_string("attribute_not_exists(pk)"));
    }
    const char *op = "PutItem";
    if (!bad && next->event) {
        /* ClientRequestToken: a retried transaction is applied once */
        req = json_pack("{s:[{s:o}, o], s:s}", "TransactItems", "Put", req,
                        px_outbox_ddb_put(s->table, next->event), "ClientRequestToken",
                        next->event->id);
        op = "TransactWriteItems";
        bad = !req;
    }
    if (bad) {
        json_decref(req);
        return PX_ERR_NOMEM;
    }
    struct px_ddb_error err;
    px_rc rc = call(s, op, req, deadline_of(s), NULL, &err);
    /* TransactionCanceled: the first reason is the product's own condition */
    if (rc && strcmp(err.type, "TransactionCanceledException") == 0)
        rc = strstr(err.message, "[ConditionalCheckFailed") ? PX_ERR_CONFLICT : PX_ERR_IO;
    if (rc == PX_ERR_CONFLICT && err.ambiguous) {
        /* a retried put whose first attempt landed: the stored item is ours */
        struct px_arena *a = px_arena_new(1024 * 1024);
        struct px_product now;
        if (a && get_item(s, tenant, next->id, a, &now, deadline_of(s)) == PX_OK &&
            now.version == next->version && !strcmp(now.updated_at, next->updated_at))
            rc = PX_OK;
        px_arena_free(a);
    }
    if (rc)
        PX_ERROR(NULL, "product %s not stored in DynamoDB table %s: %s (%s%s%s)", next->id,
                 s->table, px_strerror(rc), err.type, err.type[0] ? ": " : "", err.message);
    return rc;
}

static px_rc ddb_apply(void *impl, const char *tenant, const char *id,
                       enum px_product_expect expect, long version, px_product_apply_fn fn,
                       void *arg, struct px_arena *a)
{
    struct store *s = impl;
    struct px_product cur, next;
    char pk[160], owner[37];
    product_pk(tenant, id, pk, sizeof(pk));
    /* A stale If-Match stays stale (versions only grow) and a product is never
     * removed: refuse those before queueing for the lock. */
    px_rc rc =
        check_expect(get_item(s, tenant, id, a, &cur, deadline_of(s)), &cur, expect, version);
    if (rc)
        return rc;
    px_new_request_id(owner);
    rc = lock_take(s, tenant, pk, owner, id, expect, version);
    if (rc)
        return rc;
    px_rc got = get_item(s, tenant, id, a, &cur, deadline_of(s));
    rc = check_expect(got, &cur, expect, version);
    if (rc)
        goto out;
    memset(&next, 0, sizeof(next));
    rc = fn(arg, got == PX_OK ? &cur : NULL, &next);
    if (rc)
        goto out;
    if (put_product(s, tenant, got == PX_OK ? &cur : NULL, &next) != PX_OK)
        rc = PX_ERR_IO; /* the callback's effects are durable: the caller records the failure */
out:
    lock_release(s, pk, owner);
    return rc;
}

/* ----------------------------------------------------------- idempotency */

static px_rc claim(struct store *s, const char *pk, const char *hash, const char *owner,
                   int64_t now_s, const char *cond, json_t *values)
{
    char exp[32], created[32];
    snprintf(exp, sizeof(exp), "%lld", (long long)(now_s + PX_IDEM_TTL_S));
    snprintf(created, sizeof(created), "%lld", (long long)now_s);
    json_t *req =
        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:b}, s:{s:s},"
                  " s:{s:s}}, s:s, s:{s:s, s:s}, s:o}",
                  "TableName", s->table, "Item", "pk", "S", pk, "sk", "S", "IDEM", "bodyHash", "S",
                  hash, "owner", "S", owner, "done", "BOOL", 0, "createdAt", "N", created, TTL_ATTR,
                  "N", exp, "ConditionExpression", cond, "ExpressionAttributeNames", "#e", TTL_ATTR,
                  "#o", "owner", "ExpressionAttributeValues", values);
    return call(s, "PutItem", req, deadline_of(s), NULL, NULL);
}

static px_rc ddb_idem_begin(void *impl, const char *principal, const char *route, const char *key,
                            const char *body_hash, int64_t now_s, struct px_arena *a,
                            enum px_idem_state *state, struct px_idem_saved *saved)
{
    struct store *s = impl;
    char pk[KEY_MAX], owner[37], nows[32];
    px_ddb_idem_pk(principal, route, key, pk, sizeof(pk));
    px_new_request_id(owner);
    snprintf(nows, sizeof(nows), "%lld", (long long)now_s);
    for (int attempt = 0; attempt < 4; attempt++) {
        json_t *resp = NULL;
        px_rc rc = call(s, "GetItem",
                        json_pack("{s:s, s:o, s:b}", "TableName", s->table, "Key",
                                  key_of(pk, "IDEM"), "ConsistentRead", 1),
                        deadline_of(s), &resp, NULL);
        if (rc)
            return rc;
        const json_t *it = json_object_get(resp, "Item");
        long long exp = 0, created = 0, status = 0;
        const char *h = attr_s(it, "bodyHash"), *who = attr_s(it, "owner");
        if (!json_is_object(it) || !attr_n(it, TTL_ATTR, &exp) || exp <= now_s) {
            /* none, or expired (TTL deletes late: as good as none) */
            rc = claim(s, pk, body_hash, owner, now_s,
                       "attribute_not_exists(pk) OR #e < :now OR #o = :me",
                       json_pack("{s:{s:s}, s:{s:s}}", ":now", "N", nows, ":me", "S", owner));
        } else if (who && !strcmp(who, owner)) {
            rc = PX_OK; /* our claim, landed by an attempt that seemed to fail */
        } else if (!h || strcmp(h, body_hash) != 0) {
            *state = PX_IDEM_MISMATCH;
            json_decref(resp);
            return PX_OK;
        } else if (json_is_true(json_object_get(json_object_get(it, "done"), "BOOL"))) {
            *state = PX_IDEM_REPLAY;
            saved->status = attr_n(it, "answerStatus", &status) ? (int)status : 0;
            saved->body = dup_attr(it, "answerBody", "", a);
            saved->etag = attr_s(it, "etag") ? dup_attr(it, "etag", "", a) : NULL;
            saved->location = attr_s(it, "location") ? dup_attr(it, "location", "", a) : NULL;
            rc = !saved->body                                 ? PX_ERR_NOMEM
                 : saved->status < 200 || saved->status > 299 ? PX_ERR_PROTOCOL
                                                              : PX_OK;
            json_decref(resp);
            return rc;
        } else if (who && attr_n(it, "createdAt", &created) && now_s - created > PX_IDEM_LEASE_S) {
            /* its first request died without an answer: take the key over */
            rc = claim(s, pk, body_hash, owner, now_s, "#o = :old AND #e > :now",
                       json_pack("{s:{s:s}, s:{s:s}}", ":old", "S", who, ":now", "N", nows));
        } else {
            *state = PX_IDEM_IN_FLIGHT;
            json_decref(resp);
            return PX_OK;
        }
        json_decref(resp);
        if (rc == PX_OK) {
            *state = PX_IDEM_NEW;
            return PX_OK;
        }
        if (rc != PX_ERR_CONFLICT)
            return rc;
        /* another request claimed it meanwhile: read again */
    }
    *state = PX_IDEM_IN_FLIGHT;
    return PX_OK;
}

static px_rc ddb_idem_finish(void *impl, const char *principal, const char *route, const char *key,
                             const struct px_idem_saved *saved, int64_t now_s)
{
    struct store *s = impl;
    char pk[KEY_MAX], exp[32], st[16];
    px_ddb_idem_pk(principal, route, key, pk, sizeof(pk));
    snprintf(exp, sizeof(exp), "%lld", (long long)(now_s + PX_IDEM_TTL_S));
    snprintf(st, sizeof(st), "%d", saved->status);
    json_t *req = json_pack("{s:s, s:o, s:s, s:{s:s, s:s, s:s}, s:{s:{s:b}, s:{s:s}, s:{s:s}}}",
                            "TableName", s->table, "Key", key_of(pk, "IDEM"), "ConditionExpression",
                            "attribute_exists(pk)", "ExpressionAttributeNames", "#d", "done", "#s",
                            "answerStatus", "#e", TTL_ATTR, "ExpressionAttributeValues", ":d",
                            "BOOL", 1, ":s", "N", st, ":e", "N", exp);
    if (!req)
        return PX_ERR_NOMEM;
    char expr[160];
    snprintf(expr, sizeof(expr), "SET #d = :d, #s = :s, #e = :e%s%s%s",
             saved->body && saved->body[0] ? ", #b = :b" : "", saved->etag ? ", #t = :t" : "",
             saved->location ? ", #l = :l" : "");
    json_t *names = json_object_get(req, "ExpressionAttributeNames");
    json_t *values = json_object_get(req, "ExpressionAttributeValues");
    int bad = json_object_set_new(req, "UpdateExpression", json_string(expr));
    if (saved->body && saved->body[0]) {
        bad |= json_object_set_new(names, "#b", json_string("answerBody"));
        bad |= json_object_set_new(values, ":b", s_attr(saved->body));
    }
    if (saved->etag) {
        bad |= json_object_set_new(names, "#t", json_string("etag"));
        bad |= json_object_set_new(values, ":t", s_attr(saved->etag));
    }
    if (saved->location) {
        bad |= json_object_set_new(names, "#l", json_string("location"));
        bad |= json_object_set_new(values, ":l", s_attr(saved->location));
    }
    if (bad) {
        json_decref(req);
        return PX_ERR_NOMEM;
    }
    return call(s, "UpdateItem", req, deadline_of(s), NULL, NULL);
}

static void ddb_idem_abort(void *impl, const char *principal, const char *route, const char *key)
{
    struct store *s = impl;
    char pk[KEY_MAX];
    px_ddb_idem_pk(principal, route, key, pk, sizeof(pk));
    px_rc rc = call(s, "DeleteItem",
                    json_pack("{s:s, s:o, s:s, s:{s:s}, s:{s:{s:b}}}", "TableName", s->table, "Key",
                              key_of(pk, "IDEM"), "ConditionExpression", "#d = :f",
                              "ExpressionAttributeNames", "#d", "done", "ExpressionAttributeValues",
                              ":f", "BOOL", 0),
                    deadline_of(s), NULL, NULL);
    if (rc && rc != PX_ERR_CONFLICT)
        PX_WARN(NULL, "idempotency key not released (%s): it is held until its lease ends",
                px_strerror(rc));
}

/* ------------------------------------------------------ table management */

static bool key_schema_is(const json_t *ks, const char *hash, const char *range)
{
    if (!json_is_array(ks) || json_array_size(ks) != 2)
        return false;
    bool h = false, r = false;
    size_t i;
    json_t *e;
    json_array_foreach(ks, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "AttributeName"));
        const char *type = json_string_value(json_object_get(e, "KeyType"));
        if (!name || !type)
            return false;
        h |= !strcmp(type, "HASH") && !strcmp(name, hash);
        r |= !strcmp(type, "RANGE") && !strcmp(name, range);
    }
    return h && r;
}

struct table_state {
    char status[32];
    bool layout_ok, indexes_active;
};

static px_rc describe(struct store *s, struct table_state *ts, struct px_ddb_error *err)
{
    json_t *resp = NULL;
    memset(ts, 0, sizeof(*ts));
    px_rc rc = call(s, "DescribeTable", json_pack("{s:s}", "TableName", s->table),
                    px_ddb_now_ms() + CONTROL_MS, &resp, err);
    if (rc)
        return rc;
    json_t *t = json_object_get(resp, "Table");
    const char *st = json_string_value(json_object_get(t, "TableStatus"));
    snprintf(ts->status, sizeof(ts->status), "%s", st ? st : "");
    unsigned found = 0;
    ts->indexes_active = true;
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(t, "GlobalSecondaryIndexes"), i, g)
    {
        const char *name = json_string_value(json_object_get(g, "IndexName"));
        char pkn[8], skn[8];
        if (!name || strlen(name) != 4 || strncmp(name, "gsi", 3) || name[3] < '1' || name[3] > '3')
            continue;
        snprintf(pkn, sizeof(pkn), "%spk", name);
        snprintf(skn, sizeof(skn), "%ssk", name);
        if (key_schema_is(json_object_get(g, "KeySchema"), pkn, skn))
            found |= 1u << (name[3] - '1');
        const char *ist = json_string_value(json_object_get(g, "IndexStatus"));
        ts->indexes_active &= !ist || !strcmp(ist, "ACTIVE");
    }
    ts->layout_ok = key_schema_is(json_object_get(t, "KeySchema"), "pk", "sk") && found == 7;
    json_decref(resp);
    return PX_OK;
}

static json_t *gsi(const char *name)
{
    char pkn[8], skn[8];
    snprintf(pkn, sizeof(pkn), "%spk", name);
    snprintf(skn, sizeof(skn), "%ssk", name);
    return json_pack("{s:s, s:[{s:s,s:s},{s:s,s:s}], s:{s:s}}", "IndexName", name, "KeySchema",
                     "AttributeName", pkn, "KeyType", "HASH", "AttributeName", skn, "KeyType",
                     "RANGE", "Projection", "ProjectionType", "ALL");
}

static px_rc create_table(struct store *s, struct px_ddb_error *err)
{
    json_t *defs = json_array();
    static const char *const names[] = {"pk",     "sk",     "gsi1pk", "gsi1sk",
                                        "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk"};
    for (size_t i = 0; defs && i < PX_COUNTOF(names); i++)
        json_array_append_new(
            defs, json_pack("{s:s, s:s}", "AttributeName", names[i], "AttributeType", "S"));
    json_t *req = defs ? json_pack("{s:s, s:o, s:[{s:s,s:s},{s:s,s:s}], s:[o,o,o], s:s}",
                                   "TableName", s->table, "AttributeDefinitions", defs, "KeySchema",
                                   "AttributeName", "pk", "KeyType", "HASH", "AttributeName", "sk",
                                   "KeyType", "RANGE", "GlobalSecondaryIndexes", gsi("gsi1"),
                                   gsi("gsi2"), gsi("gsi3"), "BillingMode", "PAY_PER_REQUEST")
                       : NULL;
    px_rc rc = call(s, "CreateTable", req, px_ddb_now_ms() + CONTROL_MS, NULL, err);
    return rc == PX_ERR_CONFLICT ? PX_OK : rc; /* ResourceInUse: created meanwhile */
}

static px_rc fail_msg(px_rc rc, const struct px_ddb_error *e, char *err, size_t errlen,
                      const char *what, const char *table)
{
    snprintf(err, errlen, "PRODUCT_STORE: %s DynamoDB table %s failed: %s%s%s", what, table,
             e->type[0] ? e->type : px_strerror(rc), e->message[0] ? ": " : "", e->message);
    return rc;
}

/* Idempotency records, stale locks and sent outbox items expire by TTL on expiresAt. */
static px_rc enable_ttl(struct store *s, char *err, size_t errlen)
{
    struct px_ddb_error e;
    enum px_ddb_ttl st;
    px_rc rc = px_ddb_ttl_on(s->c, s->table, TTL_ATTR, px_ddb_now_ms() + CONTROL_MS, &st, &e);
    if (rc)
        return fail_msg(rc, &e, err, errlen, "enabling TTL on", s->table);
    if (st == PX_DDB_TTL_UNSUPPORTED)
        PX_WARN(NULL,
                "DynamoDB endpoint %s does not implement the TimeToLive operations: TTL could NOT "
                "be enabled on table %s; expired idempotency records stay stored (reads "
                "ignore them)",
                px_ddb_endpoint(s->c), s->table);
    else if (st == PX_DDB_TTL_OTHER_ATTR || st == PX_DDB_TTL_DISABLING)
        PX_WARN(NULL,
                "DynamoDB table %s: TTL is %s; expired idempotency records and sent events "
                "stay stored until it is on for %s",
                s->table,
                st == PX_DDB_TTL_DISABLING ? "being disabled" : "on for another attribute",
                TTL_ATTR);
    return PX_OK;
}

static px_rc ensure_table(struct store *s, char *err, size_t errlen)
{
    struct table_state ts;
    struct px_ddb_error e;
    px_rc rc = describe(s, &ts, &e);
    if (rc == PX_ERR_NOT_FOUND) {
        rc = create_table(s, &e);
        if (rc)
            return fail_msg(rc, &e, err, errlen, "creating", s->table);
        PX_INFO(NULL, "DynamoDB table %s created; waiting until it is ACTIVE", s->table);
        rc = describe(s, &ts, &e);
    }
    int64_t deadline = px_ddb_now_ms() + CREATE_WAIT_MS;
    while (rc == PX_OK && (strcmp(ts.status, "ACTIVE") != 0 || !ts.indexes_active)) {
        if (px_ddb_now_ms() + CREATE_POLL_MS > deadline) {
            snprintf(err, errlen,
                     "PRODUCT_STORE: DynamoDB table %s not ACTIVE after %d s (status %s)", s->table,
                     CREATE_WAIT_MS / 1000, ts.status);
            return PX_ERR_TIMEOUT;
        }
        sleep_ms(CREATE_POLL_MS);
        rc = describe(s, &ts, &e);
    }
    if (rc)
        return fail_msg(rc, &e, err, errlen, "describing", s->table);
    if (!ts.layout_ok) {
        snprintf(err, errlen,
                 "PRODUCT_STORE: DynamoDB table %s exists with another layout (want key pk/sk "
                 "and GSIs gsi1, gsi2, gsi3 on gsiNpk/gsiNsk)",
                 s->table);
        return PX_ERR_CONFIG;
    }
    return enable_ttl(s, err, errlen);
}

/* One seeding thread's share: items[i] for i = first, first + step, ... */
struct seed_part {
    struct store *s;
    const char *tenant;
    const struct px_product *items;
    size_t n, first, step;
    px_rc rc;
    struct px_ddb_error e;
};

static void *seed_part_run(void *arg)
{
    struct seed_part *sp = arg;
    for (size_t i = sp->first; i < sp->n && !sp->rc; i += sp->step) {
        json_t *item = px_ddb_product_item(sp->tenant, &sp->items[i]);
        px_rc rc = item ? call(sp->s, "PutItem",
                               json_pack("{s:s, s:o, s:s}", "TableName", sp->s->table, "Item", item,
                                         "ConditionExpression", "attribute_not_exists(pk)"),
                               px_ddb_now_ms() + CONTROL_MS, NULL, &sp->e)
                        : PX_ERR_NOMEM;
        if (rc != PX_ERR_CONFLICT) /* CONFLICT: exists, kept */
            sp->rc = rc;
    }
    return NULL;
}

/* Conditional puts, one item each (BatchWriteItem takes no condition and would
 * overwrite), from SEED_THREADS threads: the round trips overlap. */
static px_rc ddb_seed(void *impl, const char *tenant, const struct px_product *items, size_t n,
                      char *err, size_t errlen)
{
    enum { SEED_THREADS = 4 };
    struct seed_part parts[SEED_THREADS];
    pthread_t th[SEED_THREADS];
    bool started[SEED_THREADS] = {false};
    for (size_t t = 0; t < SEED_THREADS; t++) {
        parts[t] = (struct seed_part){
            .s = impl, .tenant = tenant, .items = items, .n = n, .first = t, .step = SEED_THREADS};
        started[t] = pthread_create(&th[t], NULL, seed_part_run, &parts[t]) == 0;
        if (!started[t])
            seed_part_run(&parts[t]); /* no thread: this one's share here */
    }
    for (size_t t = 0; t < SEED_THREADS; t++)
        if (started[t])
            pthread_join(th[t], NULL);
    for (size_t t = 0; t < SEED_THREADS; t++) {
        if (parts[t].rc == PX_ERR_NOMEM) {
            snprintf(err, errlen, "PRODUCT_STORE: out of memory");
            return PX_ERR_NOMEM;
        }
        if (parts[t].rc)
            return fail_msg(parts[t].rc, &parts[t].e, err, errlen, "loading the catalogue into",
                            ((struct store *)impl)->table);
    }
    return PX_OK;
}

static px_rc ddb_ping(void *impl)
{
    struct store *s = impl;
    json_t *resp = NULL;
    px_rc rc = call(s, "DescribeTable", json_pack("{s:s}", "TableName", s->table),
                    px_ddb_now_ms() + (s->timeout_ms < 2000 ? s->timeout_ms : 2000), &resp, NULL);
    if (!rc) {
        const char *st =
            json_string_value(json_object_get(json_object_get(resp, "Table"), "TableStatus"));
        if (!st || (strcmp(st, "ACTIVE") != 0 && strcmp(st, "UPDATING") != 0))
            rc = PX_ERR_UNAVAILABLE;
    }
    json_decref(resp);
    return rc;
}

/* -------------------------------------------------------------- lifecycle */

static void ddb_close(void *impl)
{
    struct store *s = impl;
    if (!s)
        return;
    px_ddb_free(s->c);
    free(s);
}

static bool valid_table(const char *t)
{
    size_t n = strlen(t);
    if (n < 3 || n > MAX_TABLE_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.')
            return false;
    }
    return true;
}

static px_rc ddb_open(const char *target, const struct px_product_opts *opts, void **impl,
                      char *err, size_t errlen)
{
    *impl = NULL;
    if (!valid_table(target)) {
        snprintf(err, errlen,
                 "PRODUCT_STORE: \"%.64s\" is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ "
                 "- .)",
                 target);
        return PX_ERR_CONFIG;
    }
    struct store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "PRODUCT_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    snprintf(s->table, sizeof(s->table), "%s", target);
    s->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    const struct px_ddb_config cfg = {
        .region = opts->region,
        .endpoint = opts->endpoint,
        .access_key_id = opts->access_key_id,
        .secret_access_key = opts->secret_access_key,
        .session_token = opts->session_token,
        .connect_timeout_ms = 1000,
        .max_response = MAX_RESPONSE,
    };
    px_rc rc = px_ddb_new(&cfg, &s->c, err, errlen);
    if (!rc && opts->create)
        rc = ensure_table(s, err, errlen);
    if (rc) {
        ddb_close(s);
        return rc;
    }
    *impl = s;
    return PX_OK;
}

const struct px_product_ops px_product_dynamodb_ops = {
    .scheme = "dynamodb",
    .open = ddb_open,
    .close = ddb_close,
    .get = ddb_get,
    .list = ddb_list,
    .apply = ddb_apply,
    .idem_begin = ddb_idem_begin,
    .idem_finish = ddb_idem_finish,
    .idem_abort = ddb_idem_abort,
    .seed = ddb_seed,
    .ping = ddb_ping,
};
