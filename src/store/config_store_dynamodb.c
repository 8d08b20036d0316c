/* config_store_dynamodb.c: the configuration store on DynamoDB (spec
 * "dynamodb:TABLE"), through the client of dynamodb.h.
 *
 * One item per key: pk = TENANT#<tenant>, sk = CONFIG#<key>, attributes
 * value (JSON text), version (N), updatedAt, updatedBy. Reads are consistent.
 * A write reads the item, checks the caller's expectation, calls back (the
 * audit record is made durable there), then puts the item with a condition
 * that holds only if nobody wrote in between: attribute_not_exists(pk) for a
 * create, version = <the version read> for a replace. Of two writers holding
 * the same version one put succeeds and the other meets
 * ConditionalCheckFailed (PX_ERR_STALE / PX_ERR_CONFLICT): never both win.
 * The loser's audit record is durable already; the service adds the record of
 * its failure, as after any store failure behind a durable record.
 *
 * A change with an event (next->event) is one TransactWriteItems: the put of
 * the item under its condition and the put of the event into this table's
 * outbox (outbox_dynamodb.c), ClientRequestToken = the event id so that a
 * retried call is applied once. A refused condition cancels both. */
#include "config_store.h"
#include "dynamodb.h"
#include "outbox.h"
#include "../kernel/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONTROL_MS     10000  /* one control-plane call */
#define CREATE_WAIT_MS 120000 /* table creation until ACTIVE */
#define CREATE_POLL_MS 250
#define MAX_TABLE_NAME 255
#define PK_MAX         (sizeof("TENANT#") + PX_CONFIG_TENANT_MAX)
#define SK_MAX         (sizeof("CONFIG#") + PX_CONFIG_KEY_MAX)

struct ddb_config {
    struct px_ddb *c;
    char table[MAX_TABLE_NAME + 1];
    long timeout_ms;
};

static int64_t deadline(const struct ddb_config *s)
{
    return px_ddb_now_ms() + s->timeout_ms;
}

static px_rc call_json(struct ddb_config *s, const char *op, json_t *req, int64_t until,
                       json_t **resp, struct px_ddb_error *err)
{
    *resp = NULL;
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!body)
        return PX_ERR_NOMEM;
    px_rc rc = px_ddb_call(s->c, op, body, strlen(body), until, resp, err);
    free(body);
    return rc;
}

static void keys(const char *tenant, const char *key, char pk[PK_MAX], char sk[SK_MAX])
{
    snprintf(pk, PK_MAX, "TENANT#%s", tenant);
    snprintf(sk, SK_MAX, "CONFIG#%s", key);
}

static const char *attr(const json_t *item, const char *name, const char *type)
{
    return json_string_value(json_object_get(json_object_get(item, name), type));
}

static px_rc item_parse(const json_t *item, struct px_arena *a, struct px_config_item *it)
{
    memset(it, 0, sizeof(*it));
    const char *sk = attr(item, "sk", "S");
    const char *value = attr(item, "value", "S");
    const char *version = attr(item, "version", "N");
    const char *at = attr(item, "updatedAt", "S");
    const char *by = attr(item, "updatedBy", "S");
    if (!sk || strncmp(sk, "CONFIG#", 7) != 0 || strlen(sk + 7) > PX_CONFIG_KEY_MAX || !value ||
        !version || !at || strlen(at) >= sizeof(it->updated_at) || !by)
        return PX_ERR_PROTOCOL;
    char *end = NULL;
    errno = 0;
    long v = strtol(version, &end, 10);
    if (errno || !end || *end || v < 1)
        return PX_ERR_PROTOCOL;
    snprintf(it->key, sizeof(it->key), "%s", sk + 7);
    snprintf(it->updated_at, sizeof(it->updated_at), "%s", at);
    it->version = v;
    it->value = px_arena_strdup(a, value);
    it->updated_by = px_arena_strdup(a, by);
    return it->value && it->updated_by ? PX_OK : PX_ERR_NOMEM;
}

static px_rc config_get(void *impl, const char *tenant, const char *key, struct px_arena *a,
                        struct px_config_item *out)
{
    struct ddb_config *s = impl;
    char pk[PK_MAX], sk[SK_MAX];
    keys(tenant, key, pk, sk);
    json_t *req = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:b}", "TableName", s->table, "Key", "pk",
                            "S", pk, "sk", "S", sk, "ConsistentRead", 1);
    json_t *resp = NULL;
    struct px_ddb_error e;
    px_rc rc = call_json(s, "GetItem", req, deadline(s), &resp, &e);
    json_decref(req);
    if (!rc) {
        const json_t *item = json_object_get(resp, "Item");
        rc = item ? item_parse(item, a, out) : PX_ERR_NOT_FOUND;
    } else if (rc == PX_ERR_NOT_FOUND) {
        rc = PX_ERR_UNAVAILABLE; /* the table itself is missing */
    }
    json_decref(resp);
    return rc;
}

static px_rc config_list(void *impl, const char *tenant, const char *prefix, struct px_arena *a,
                         struct px_config_item **items, size_t *n)
{
    struct ddb_config *s = impl;
    char pk[PK_MAX], sk[SK_MAX];
    keys(tenant, prefix, pk, sk);
    size_t cap = 0, k = 0;
    struct px_config_item *out = NULL;
    json_t *start = NULL;
    px_rc rc = PX_OK;
    int64_t until = deadline(s);
    do {
        json_t *req = json_pack("{s:s, s:s, s:{s:{s:s}, s:{s:s}}, s:b}", "TableName", s->table,
                                "KeyConditionExpression", "pk = :p AND begins_with(sk, :s)",
                                "ExpressionAttributeValues", ":p", "S", pk, ":s", "S", sk,
                                "ConsistentRead", 1);
        if (req && start)
            json_object_set(req, "ExclusiveStartKey", start);
        json_decref(start);
        start = NULL;
        json_t *resp = NULL;
        struct px_ddb_error e;
        rc = call_json(s, "Query", req, until, &resp, &e);
        json_decref(req);
        if (rc == PX_ERR_NOT_FOUND)
            rc = PX_ERR_UNAVAILABLE;
        size_t i;
        json_t *item;
        json_array_foreach(rc ? NULL : json_object_get(resp, "Items"), i, item)
        {
            if (k == PX_CONFIG_ITEMS_MAX) {
                rc = PX_ERR_TOO_LARGE;
                break;
            }
            if (k == cap) {
                size_t ncap = cap ? cap * 2 : 32;
                struct px_config_item *bigger = px_arena_alloc(a, ncap * sizeof(*bigger));
                if (!bigger) {
                    rc = PX_ERR_NOMEM;
                    break;
                }
                if (k)
                    memcpy(bigger, out, k * sizeof(*out));
                out = bigger;
                cap = ncap;
            }
            rc = item_parse(item, a, &out[k++]);
            if (rc)
                break;
        }
        if (!rc)
            start = json_incref(json_object_get(resp, "LastEvaluatedKey"));
        json_decref(resp);
    } while (!rc && start);
    json_decref(start);
    *items = out;
    *n = k;
    return rc;
}

static json_t *item_json(const char *pk, const char *sk, const struct px_config_item *it)
{
    char version[24];
    snprintf(version, sizeof(version), "%ld", it->version);
    return json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "pk", "S", pk, "sk",
                     "S", sk, "value", "S", it->value ? it->value : "null", "version", "N", version,
                     "updatedAt", "S", it->updated_at, "updatedBy", "S",
                     it->updated_by ? it->updated_by : "");
}

/* After a retried put met ConditionalCheckFailed, the first try may have
 * landed: it did iff the stored item is ours. */
static bool ours_stored(struct ddb_config *s, const char *tenant, const struct px_config_item *it,
                        struct px_arena *a)
{
    struct px_config_item got;
    return config_get(s, tenant, it->key, a, &got) == PX_OK && got.version == it->version &&
           strcmp(got.updated_at, it->updated_at) == 0 &&
           strcmp(got.value, it->value ? it->value : "null") == 0;
}

static px_rc config_apply(void *impl, const char *tenant, const char *key,
                          enum px_config_expect expect, long version, px_config_apply_fn fn,
                          void *arg, struct px_arena *a)
{
    struct ddb_config *s = impl;
    struct px_config_item cur, next;
    px_rc rc = config_get(s, tenant, key, a, &cur);
    bool exists = rc == PX_OK;
    if (rc && rc != PX_ERR_NOT_FOUND)
        return rc;
    if (expect == PX_CONFIG_MUST_NOT_EXIST && exists)
        return PX_ERR_CONFLICT;
    if (expect == PX_CONFIG_AT_VERSION && !exists)
        return PX_ERR_NOT_FOUND;
    if (expect == PX_CONFIG_AT_VERSION && version >= 0 && cur.version != version)
        return PX_ERR_STALE;
    memset(&next, 0, sizeof(next));
    snprintf(next.key, sizeof(next.key), "%s", key);
    next.version = exists ? cur.version + 1 : 1;
    rc = fn(arg, exists ? &cur : NULL, &next);
    if (rc)
        return rc;
    char pk[PK_MAX], sk[SK_MAX], expected[24];
    keys(tenant, key, pk, sk);
    snprintf(expected, sizeof(expected), "%ld", exists ? cur.version : 0);
    json_t *req = exists ? json_pack("{s:s, s:o, s:s, s:{s:s}, s:{s:{s:s}}}", "TableName", s->table,
                                     "Item", item_json(pk, sk, &next), "ConditionExpression",
                                     "#v = :v", "ExpressionAttributeNames", "#v", "version",
                                     "ExpressionAttributeValues", ":v", "N", expected)
                         : json_pack("{s:s, s:o, s:s}", "TableName", s->table, "Item",
                                     item_json(pk, sk, &next), "ConditionExpression",
                                     "attribute_not_exists(pk)");
    const char *op = "PutItem";
    if (req && next.event) {
        /* the item's put (its condition kept) and its event's, or neither */
        json_t *put = json_object();
        if (put)
            json_object_update(put, req);
        json_object_del(put, "TableName");
        json_object_set_new(put, "TableName", json_string(s->table));
        json_decref(req);
        req = json_pack("{s:[{s:o}, o], s:s}", "TransactItems", "Put", put,
                        px_outbox_ddb_put(s->table, next.event), "ClientRequestToken",
                        next.event->id);
        op = "TransactWriteItems";
    }
    json_t *resp = NULL;
    struct px_ddb_error e;
    memset(&e, 0, sizeof(e));
    rc = req ? call_json(s, op, req, deadline(s), &resp, &e) : PX_ERR_NOMEM;
    json_decref(req);
    json_decref(resp);
    /* TransactionCanceled: the first reason is the item's own condition */
    if (rc && strcmp(e.type, "TransactionCanceledException") == 0)
        rc = strstr(e.message, "[ConditionalCheckFailed") ? PX_ERR_CONFLICT : PX_ERR_IO;
    if (rc == PX_ERR_CONFLICT && e.ambiguous && ours_stored(s, tenant, &next, a))
        rc = PX_OK;
    if (rc == PX_ERR_CONFLICT) /* another writer won between our read and our put */
        return exists ? PX_ERR_STALE : PX_ERR_CONFLICT;
    if (rc)
        PX_WARN(NULL, "CONFIG_STORE: %s on %s failed: %s %s", op, s->table,
                e.type[0] ? e.type : px_strerror(rc), e.message);
    return rc ? PX_ERR_IO : PX_OK; /* the callback's effects are durable: the caller records */
}

static px_rc describe(struct ddb_config *s, char status[32], bool *keys_ok, struct px_ddb_error *e)
{
    json_t *req = json_pack("{s:s}", "TableName", s->table), *resp = NULL;
    px_rc rc = call_json(s, "DescribeTable", req, px_ddb_now_ms() + CONTROL_MS, &resp, e);
    json_decref(req);
    status[0] = '\0';
    *keys_ok = false;
    if (!rc) {
        json_t *t = json_object_get(resp, "Table");
        const char *st = json_string_value(json_object_get(t, "TableStatus"));
        snprintf(status, 32, "%s", st ? st : "");
        bool h = false, r = false;
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(t, "KeySchema"), i, k)
        {
            const char *name = json_string_value(json_object_get(k, "AttributeName"));
            const char *type = json_string_value(json_object_get(k, "KeyType"));
            h = h || (name && type && !strcmp(name, "pk") && !strcmp(type, "HASH"));
            r = r || (name && type && !strcmp(name, "sk") && !strcmp(type, "RANGE"));
        }
        *keys_ok = h && r;
    }
    json_decref(resp);
    return rc;
}

static px_rc ensure_table(struct ddb_config *s, char *err, size_t errlen)
{
    char status[32];
    bool keys_ok;
    struct px_ddb_error e;
    memset(&e, 0, sizeof(e));
    px_rc rc = describe(s, status, &keys_ok, &e);
    if (rc == PX_ERR_NOT_FOUND) {
        json_t *req = json_pack(
            "{s:s, s:[{s:s,s:s},{s:s,s:s}], s:[{s:s,s:s},{s:s,s:s}], s:s}", "TableName", s->table,
            "AttributeDefinitions", "AttributeName", "pk", "AttributeType", "S", "AttributeName",
            "sk", "AttributeType", "S", "KeySchema", "AttributeName", "pk", "KeyType", "HASH",
            "AttributeName", "sk", "KeyType", "RANGE", "BillingMode", "PAY_PER_REQUEST");
        json_t *resp = NULL;
        rc = call_json(s, "CreateTable", req, px_ddb_now_ms() + CONTROL_MS, &resp, &e);
        json_decref(req);
        json_decref(resp);
        if (rc == PX_ERR_CONFLICT) /* created meanwhile by someone else */
            rc = PX_OK;
        if (!rc)
            rc = describe(s, status, &keys_ok, &e);
    }
    int64_t until = px_ddb_now_ms() + CREATE_WAIT_MS;
    while (!rc && strcmp(status, "ACTIVE") != 0) {
        if (px_ddb_now_ms() + CREATE_POLL_MS > until) {
            snprintf(err, errlen, "CONFIG_STORE: DynamoDB table %s not ACTIVE after %d s", s->table,
                     CREATE_WAIT_MS / 1000);
            return PX_ERR_TIMEOUT;
        }
        const struct timespec t = {0, CREATE_POLL_MS * 1000000L};
        nanosleep(&t, NULL);
        rc = describe(s, status, &keys_ok, &e);
    }
    if (rc) {
        snprintf(err, errlen, "CONFIG_STORE: DynamoDB table %s: %s%s%s", s->table,
                 e.type[0] ? e.type : px_strerror(rc), e.message[0] ? ": " : "", e.message);
        return rc;
    }
    if (!keys_ok) {
        snprintf(err, errlen,
                 "CONFIG_STORE: DynamoDB table %s exists with another key (want pk/sk)", s->table);
        return PX_ERR_CONFIG;
    }
    /* The outbox's sent events carry expiresAt (outbox_dynamodb.c): without TTL
     * the table would keep every one of them. Config items have no expiresAt. */
    enum px_ddb_ttl st;
    rc = px_ddb_ttl_on(s->c, s->table, "expiresAt", px_ddb_now_ms() + CONTROL_MS, &st, &e);
    if (rc) {
        snprintf(err, errlen, "CONFIG_STORE: enabling TTL on DynamoDB table %s failed: %s%s%s",
                 s->table, e.type[0] ? e.type : px_strerror(rc), e.message[0] ? ": " : "",
                 e.message);
        return rc;
    }
    if (st == PX_DDB_TTL_TURNED_ON)
        PX_INFO(NULL, "DynamoDB table %s: TTL enabled on expiresAt (sent events)", s->table);
    else if (st != PX_DDB_TTL_WAS_ON)
        PX_WARN(NULL, "DynamoDB table %s: TTL %s; sent events stay stored in it", s->table,
                st == PX_DDB_TTL_UNSUPPORTED ? "operations missing at the endpoint"
                : st == PX_DDB_TTL_DISABLING ? "is being disabled"
                                             : "is on for another attribute than expiresAt");
    return PX_OK;
}

static void config_close(void *impl)
{
    struct ddb_config *s = impl;
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

static px_rc config_open(const char *target, const struct px_config_store_opts *opts, void **impl,
                         char *err, size_t errlen)
{
    *impl = NULL;
    if (!valid_table(target)) {
        snprintf(
            err, errlen,
            "CONFIG_STORE: \"%.64s\" is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)",
            target);
        return PX_ERR_CONFIG;
    }
    struct ddb_config *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "CONFIG_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    snprintf(s->table, sizeof(s->table), "%s", target);
    s->timeout_ms = opts->timeout_ms > 0 && opts->timeout_ms <= 60000 ? opts->timeout_ms : 5000;
    const struct px_ddb_config cfg = {
        .region = opts->region,
        .endpoint = opts->endpoint,
        .access_key_id = opts->access_key_id,
        .secret_access_key = opts->secret_access_key,
        .session_token = opts->session_token,
        .connect_timeout_ms = 1000,
    };
    char why[512] = "";
    px_rc rc = px_ddb_new(&cfg, &s->c, why, sizeof(why));
    if (rc)
        snprintf(err, errlen, "CONFIG_STORE: %s", why);
    if (!rc && opts->create)
        rc = ensure_table(s, err, errlen);
    if (rc) {
        config_close(s);
        return rc;
    }
    *impl = s;
    return PX_OK;
}

static px_rc config_ping(void *impl)
{
    struct ddb_config *s = impl;
    char status[32];
    bool keys_ok;
    struct px_ddb_error e;
    px_rc rc = describe(s, status, &keys_ok, &e);
    return rc ? rc : strcmp(status, "ACTIVE") == 0 ? PX_OK : PX_ERR_UNAVAILABLE;
}

const struct px_config_store_ops px_config_store_dynamodb_ops = {
    .open = config_open,
    .close = config_close,
    .get = config_get,
    .list = config_list,
    .apply = config_apply,
    .ping = config_ping,
};
