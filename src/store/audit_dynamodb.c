/* audit_dynamodb.c: the audit trail in one DynamoDB table (AUDIT_STORE=dynamodb:TABLE).
 *
 * Writes: submit() queues a copy of the record (bounded ring; full -> BUSY);
 * a fixed pool of writer threads takes what is queued. One record alone goes
 * out as a PutItem with attribute_not_exists(pk); several look-up records
 * waiting together go out as one TransactWriteItems of up to 25 Puts, each
 * with the same condition (group commit: one signed request and one round
 * trip instead of one per record; all or nothing, so a hash chain never has a
 * gap; governed by the PutItem permission, so the IAM role stays unable to
 * delete). Where there are no transactions (dynalite) or AUDIT_MAX_BATCH=1
 * asks for one record per write, the records a writer takes go as that many
 * PutItems in flight together, each on its own hash chain (SLOTS per thread).
 * Each is retried by the client within the records' deadline (queued
 * time + timeout_ms), then done() is called per record. No BatchWriteItem: it
 * takes no condition, and its IAM action also allows deletes.
 *
 * Reads: Query on the table (by user) or on GSI gsi1 (by product), a BETWEEN
 * on the sort key for the time range, FilterExpression expiresAt > :now
 * because DynamoDB deletes expired items up to days late. A filtered page may
 * be short or empty and still carry a LastEvaluatedKey, so pages are followed
 * (bounded) until `limit` items or the end. Asking for limit+1 tells whether
 * anything follows, so the last page says so (nextCursor null), as SQLite does. */
#include "audit_dynamodb.h"
#include "dynamodb.h"
#include "audit_chain.h"
#include "../kernel/arena.h"
#include "../kernel/b64.h"
#include "../kernel/log.h"
#include "../kernel/log_limit.h"
#include "../kernel/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WRITERS         8
#define DEFAULT_QUEUE   1024
#define MAX_QUEUE       65536
#define MAX_QUERY_PAGES 32
#define MIN_QUERY_MS    3000
#define CONTROL_MS      10000  /* one control-plane call (DescribeTable, ...) */
#define CREATE_WAIT_MS  120000 /* table creation until ACTIVE */
#define CREATE_POLL_MS  250
#define MAX_TABLE_NAME  255
#define BATCH_MAX       25            /* records per TransactWriteItems (DynamoDB allows 100) */
#define BATCH_BODY_MAX  (1024 * 1024) /* 25 look-up records are ~30 KiB */
#define STALL_MS        20            /* a queued record waits this long for the writer in flight */
/* Chains per writer thread: where DynamoDB has no transactions (dynalite),
 * a thread's group goes as this many PutItems in flight together, each on its
 * own chain, since one chain has one record in flight at a time. */
#define SLOTS 16
_Static_assert(SLOTS <= BATCH_MAX && SLOTS <= PX_DDB_MANY_MAX, "a round fits a writer's take");

struct job {
    struct px_audit_record r; /* before/after point into extra */
    char *extra;              /* heap copy of a write's before/after; NULL for look-ups */
    px_audit_done_fn done;
    void *arg;
    int64_t deadline; /* px_ddb_now_ms() clock */
};

struct store;

/* One record of a group write: its item, its chain link. */
struct bitem {
    struct job *j;
    struct px_buf item;
    unsigned char hash[PX_CHAIN_HASH_LEN];
};

/* One hash chain of a writer thread (docs/internals/audit-integrity.md): a
 * put whose outcome is unknown ends the chain. A thread has SLOTS of them:
 * the first carries its groups and the records that go alone; all of them
 * carry the PutItems it sends together. */
struct wstate {
    struct store *s;
    struct px_chain chain;
    uint64_t cp_seq;
    bool cp_any;
    int64_t cp_ms;
    /* A group write whose outcome was unknown at its records' deadline (its
     * look-ups answered 503): sent again with the same ClientRequestToken once
     * the writer has let go of the group commit (settle_group). */
    struct px_buf unsettled;     /* the request body; len 0: none */
    struct px_buf unsettled_one; /* its first item, to recognise it */
    struct px_chain unsettled_chain;
    /* The chain must end (a write whose outcome is unknown): done once the
     * records in hand were answered (chains_settle), since ending it first
     * signs its tail, a call that may take timeout_ms. */
    bool ended;
};

struct store {
    struct px_ddb *c;
    struct px_chain_key *key; /* NULL: records chained, no checkpoints */
    struct wstate ws[WRITERS][SLOTS];
    char table[MAX_TABLE_NAME + 1];
    long timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct job *ring;
    size_t cap, head, count;
    bool stopping;
    unsigned busy;           /* writer threads with records in hand */
    unsigned max_batch;      /* records per group write, 1..BATCH_MAX (1: a PutItem each) */
    atomic_bool no_transact; /* the endpoint answered UnknownOperation */
    pthread_t th[WRITERS];
    unsigned nth;
    struct px_log_limit loglim; /* failed writes: one line per cause per second */
};

/* ------------------------------------------------------------ item encoding */

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static px_rc put_s(struct px_buf *b, bool first, const char *name, const char *value)
{
    /* Plain appends: this runs six times per record, and printf's %s copies
     * byte by byte. */
    px_rc rc = px_buf_adds(b, first ? "\"" : ",\"");
    if (!rc)
        rc = px_buf_adds(b, name);
    if (!rc)
        rc = px_buf_adds(b, "\":{\"S\":");
    if (!rc)
        rc = px_buf_json_strz(b, value);
    if (!rc)
        rc = px_buf_add(b, "}", 1);
    return rc;
}

px_rc px_ddb_audit_item_json(const struct px_audit_record *r, struct px_buf *b)
{
    char pk[PX_AUDIT_PK_MAX], sk[128], gsi1pk[PX_AUDIT_GSI1PK_MAX];
    if (!terminated(r->user_id, sizeof(r->user_id)) ||
        !terminated(r->product_id, sizeof(r->product_id)) ||
        !terminated(r->request_id, sizeof(r->request_id)) ||
        !terminated(r->correlation_id, sizeof(r->correlation_id)) ||
        !terminated(r->principal, sizeof(r->principal)) ||
        !terminated(r->api_request_id, sizeof(r->api_request_id)) ||
        !terminated(r->ts, sizeof(r->ts)) || !terminated(r->action, sizeof(r->action)) ||
        !terminated(r->status, sizeof(r->status)))
        return PX_ERR_INVALID;
    if (!px_audit_record_subject_ok(r) || (!r->product_id[0] && !r->config_key[0]) ||
        !terminated(r->config_key, sizeof(r->config_key)) || !r->request_id[0] || !r->ts[0] ||
        !r->action[0] || !r->status[0])
        return PX_ERR_INVALID;
    px_audit_keys(r, pk, sk, gsi1pk);
    size_t start = b->len;
    px_rc rc = px_buf_add(b, "{", 1);
    if (!rc)
        rc = put_s(b, true, "pk", pk);
    if (!rc)
        rc = put_s(b, false, "sk", sk);
    if (!rc)
        rc = put_s(b, false, "gsi1pk", gsi1pk);
    if (!rc)
        rc = put_s(b, false, "gsi1sk", sk);
    if (!rc)
        rc = put_s(b, false, "action", r->action);
    if (!rc)
        rc = put_s(b, false, "status", r->status);
    /* A write has no user id (its pk is the actor): no empty attribute for it. */
    if (!rc && r->user_id[0])
        rc = put_s(b, false, "userId", r->user_id);
    if (!rc && r->product_id[0])
        rc = put_s(b, false, "productId", r->product_id);
    if (!rc && r->config_key[0])
        rc = put_s(b, false, "configKey", r->config_key);
    if (!rc)
        rc = put_s(b, false, "requestId", r->request_id);
    /* DynamoDB takes empty strings, older emulators do not: an absent
     * correlationId reads back as "" all the same. */
    if (!rc && r->correlation_id[0])
        rc = put_s(b, false, "correlationId", r->correlation_id);
    if (!rc)
        rc = put_s(b, false, "ts", r->ts);
    if (!rc)
        rc = px_buf_printf(b, ",\"expiresAt\":{\"N\":\"%lld\"}", (long long)r->expires_at);
    if (!rc && r->principal[0])
        rc = put_s(b, false, "principal", r->principal);
    if (!rc && r->api_request_id[0])
        rc = put_s(b, false, "apiRequestId", r->api_request_id);
    if (!rc && r->tenant[0])
        rc = put_s(b, false, "tenantId", r->tenant);
    if (!rc && r->before)
        rc = put_s(b, false, "before", r->before);
    if (!rc && r->after)
        rc = put_s(b, false, "after", r->after);
    if (!rc)
        rc = px_buf_add(b, "}", 1);
    if (rc)
        b->len = start;
    if (b->data)
        b->data[b->len] = '\0';
    return rc;
}

/* The string of attribute `name` ({"S": "..."}), or NULL. */
static const char *attr_s(const json_t *item, const char *name)
{
    const json_t *v = json_object_get(item, name);
    if (!json_is_object(v) || json_object_size(v) != 1)
        return NULL;
    const json_t *s = json_object_get(v, "S");
    return json_is_string(s) ? json_string_value(s) : NULL;
}

static px_rc copy_field(const json_t *item, const char *name, char *out, size_t cap, bool required)
{
    const char *s = attr_s(item, name);
    if (!s) {
        out[0] = '\0';
        /* present with another type is always wrong; absent only when required */
        return (required || json_object_get(item, name)) ? PX_ERR_PROTOCOL : PX_OK;
    }
    size_t n = strlen(s);
    if (n >= cap)
        return PX_ERR_PROTOCOL;
    memcpy(out, s, n + 1);
    return PX_OK;
}

px_rc px_ddb_audit_item_parse(const json_t *item, struct px_audit_record *r)
{
    memset(r, 0, sizeof(*r));
    if (!json_is_object(item))
        return PX_ERR_PROTOCOL;
    /* Writes carry no userId; px_audit_record_subject_ok() wants one of userId / principal. */
    px_rc rc = copy_field(item, "userId", r->user_id, sizeof(r->user_id), false);
    if (!rc)
        rc = copy_field(item, "configKey", r->config_key, sizeof(r->config_key), false);
    if (!rc)
        rc = copy_field(item, "productId", r->product_id, sizeof(r->product_id), !r->config_key[0]);
    if (!rc)
        rc = copy_field(item, "requestId", r->request_id, sizeof(r->request_id), true);
    if (!rc)
        rc = copy_field(item, "correlationId", r->correlation_id, sizeof(r->correlation_id), false);
    if (!rc)
        rc = copy_field(item, "principal", r->principal, sizeof(r->principal), false);
    if (!rc)
        rc = copy_field(item, "apiRequestId", r->api_request_id, sizeof(r->api_request_id), false);
    if (!rc)
        rc = copy_field(item, "tenantId", r->tenant, sizeof(r->tenant), false);
    if (!rc)
        rc = copy_field(item, "ts", r->ts, sizeof(r->ts), true);
    if (!rc)
        rc = copy_field(item, "action", r->action, sizeof(r->action), true);
    if (!rc)
        rc = copy_field(item, "status", r->status, sizeof(r->status), true);
    if (rc)
        return rc;
    const json_t *e = json_object_get(item, PX_DDB_TTL_ATTR);
    const json_t *n = json_is_object(e) ? json_object_get(e, "N") : NULL;
    if (!json_is_string(n))
        return PX_ERR_PROTOCOL;
    const char *s = json_string_value(n);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return PX_ERR_PROTOCOL;
    r->expires_at = (int64_t)v;
    return PX_OK;
}

/* A write's before/after (JSON object text in S attributes) into arena copies;
 * a look-up has neither. Refused unless each is a JSON object, since the
 * record's JSON form embeds them as they are. */
static px_rc changes_parse(const json_t *item, struct px_arena *a, struct px_audit_record *r)
{
    const char *names[2] = {"before", "after"};
    const char **dst[2] = {&r->before, &r->after};
    for (int i = 0; i < 2; i++) {
        *dst[i] = NULL;
        if (!json_object_get(item, names[i]))
            continue;
        const char *s = attr_s(item, names[i]);
        json_t *j = s && strlen(s) <= PX_AUDIT_CHANGE_MAX ? json_loads(s, 0, NULL) : NULL;
        bool ok = json_is_object(j);
        json_decref(j);
        if (!ok)
            return PX_ERR_PROTOCOL;
        if (!(*dst[i] = px_arena_strdup(a, s)))
            return PX_ERR_NOMEM;
    }
    return PX_OK;
}

/* ------------------------------------------------------------------ cursors */

px_rc px_ddb_cursor_encode(const json_t *key, struct px_arena *a, const char **out)
{
    *out = NULL;
    char *js = json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS);
    if (!js)
        return PX_ERR_NOMEM;
    size_t n = strlen(js);
    size_t olen = px_b64_encoded_len(n, 0) + 1;
    char *o = px_arena_alloc(a, olen);
    size_t j = 0;
    px_rc rc = o ? px_b64_encode(js, n, PX_B64_URL, 0, o, olen, &j) : PX_ERR_NOMEM;
    free(js);
    if (rc)
        return rc;
    *out = o;
    return PX_OK;
}

static bool string_attr_ok(const json_t *v)
{
    if (!json_is_object(v) || json_object_size(v) != 1)
        return false;
    const json_t *s = json_object_get(v, "S");
    return json_is_string(s) && json_string_length(s) > 0 && json_string_length(s) <= 1024;
}

/* Partition keys of a query: T#<tenant># first for a tenant other than
 * "default" (px_audit_keys()), so a query never reaches another tenant. */
static void user_pk(const char *tenant, const char *user, char *out, size_t cap)
{
    char t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(tenant, t);
    size_t j = (size_t)snprintf(out, cap, "%sUSER#", t);
    for (size_t i = 0; user[i] && j + 1 < cap; i++)
        out[j++] = (char)tolower((unsigned char)user[i]);
    out[j < cap ? j : cap - 1] = '\0';
}

px_rc px_ddb_cursor_decode(const char *cursor, const struct px_audit_query *q, json_t **key)
{
    *key = NULL;
    size_t n = cursor ? strnlen(cursor, PX_DDB_MAX_CURSOR + 1) : 0;
    if (n == 0 || n > PX_DDB_MAX_CURSOR || n % 4 == 1)
        return PX_ERR_INVALID;
    unsigned char raw[PX_DDB_MAX_CURSOR];
    size_t m = 0;
    if (px_b64_decode(cursor, n, PX_B64_URL, 0, raw, sizeof(raw), &m) != PX_OK)
        return PX_ERR_INVALID;
    json_error_t jerr;
    json_t *k = json_loadb((const char *)raw, m, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(k))
        goto bad;
    bool by_user = q->user_id != NULL;
    static const char *const user_keys[] = {"pk", "sk"};
    static const char *const product_keys[] = {"gsi1pk", "gsi1sk", "pk", "sk"};
    const char *const *want = by_user ? user_keys : product_keys;
    size_t nwant = by_user ? 2 : 4;
    if (json_object_size(k) != nwant)
        goto bad;
    for (size_t i = 0; i < nwant; i++)
        if (!string_attr_ok(json_object_get(k, want[i])))
            goto bad;
    /* A product's trail holds look-ups (USER#) and writes (ACTOR#), of the
     * query's tenant only: a cursor from another tenant is refused. */
    char t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(q->tenant, t);
    size_t tl = strlen(t);
    const char *kpk = attr_s(k, "pk");
    if (strncmp(attr_s(k, "sk"), "AUDIT#", 6) != 0 || strncmp(kpk, t, tl) != 0 ||
        (strncmp(kpk + tl, "USER#", 5) != 0 && (by_user || strncmp(kpk + tl, "ACTOR#", 6) != 0)))
        goto bad;
    if (by_user) {
        char pk[PX_AUDIT_PK_MAX];
        user_pk(q->tenant, q->user_id, pk, sizeof(pk));
        if (strcmp(attr_s(k, "pk"), pk) != 0)
            goto bad;
    } else {
        char gpk[PX_AUDIT_GSI1PK_MAX];
        if (q->config_key)
            snprintf(gpk, sizeof(gpk), "%sCONFIG#%s", t, q->config_key);
        else
            snprintf(gpk, sizeof(gpk), "%sPRODUCT#%s", t, q->product_id);
        if (strcmp(attr_s(k, "gsi1pk"), gpk) != 0 || strcmp(attr_s(k, "gsi1sk"), attr_s(k, "sk")))
            goto bad;
    }
    *key = k;
    return PX_OK;
bad:
    json_decref(k);
    return PX_ERR_INVALID;
}

/* ------------------------------------------------------------------ writes */

static px_rc call_json(struct store *s, const char *op, json_t *req, int64_t deadline,
                       json_t **resp, struct px_ddb_error *err)
{
    char *body = json_dumps(req, JSON_COMPACT);
    if (!body) {
        *resp = NULL;
        return PX_ERR_NOMEM;
    }
    px_rc rc = px_ddb_call(s->c, op, body, strlen(body), deadline, resp, err);
    free(body);
    return rc;
}

/* After a retried PutItem met ConditionalCheckFailed, the first try may have
 * landed: the record is durable iff the stored item is ours, field for field. */
static px_rc same_item_stored(struct store *s, const char *item_json, int64_t deadline)
{
    json_error_t jerr;
    json_t *mine = json_loads(item_json, 0, &jerr), *resp = NULL;
    if (!mine)
        return PX_ERR_INTERNAL;
    json_t *req = json_pack("{s:s, s:{s:O, s:O}, s:b}", "TableName", s->table, "Key", "pk",
                            json_object_get(mine, "pk"), "sk", json_object_get(mine, "sk"),
                            "ConsistentRead", 1);
    px_rc rc = req ? call_json(s, "GetItem", req, deadline, &resp, NULL) : PX_ERR_NOMEM;
    if (!rc)
        rc = json_equal(json_object_get(resp, "Item"), mine) ? PX_OK : PX_ERR_CONFLICT;
    json_decref(resp);
    json_decref(req);
    json_decref(mine);
    return rc;
}

/* Appends the chain attributes of record wseq (hash over r and prev) to an
 * item's JSON object text in b (which ends with its closing brace). */
static px_rc add_link(struct px_buf *b, const struct px_chain *c, const struct px_audit_record *r,
                      unsigned char hash[PX_CHAIN_HASH_LEN])
{
    char prev_hex[PX_CHAIN_HEX_LEN + 1], hash_hex[PX_CHAIN_HEX_LEN + 1];
    px_chain_hash(c->writer, c->seq + 1, r, c->head, hash);
    px_chain_hex(c->head, prev_hex);
    px_chain_hex(hash, hash_hex);
    if (!b->len || b->data[b->len - 1] != '}')
        return PX_ERR_INTERNAL;
    b->len--;
    return px_buf_printf(b,
                         ",\"writer\":{\"S\":\"%s\"},\"wseq\":{\"N\":\"%llu\"},\"prevHash\":"
                         "{\"S\":\"%s\"},\"hash\":{\"S\":\"%s\"}}",
                         c->writer, (unsigned long long)(c->seq + 1), prev_hex, hash_hex);
}

/* One PutItem of a signed checkpoint of w's chain, its own item
 * (pk CHECKPOINT#<writer>, sk SEQ#<seq, 20 digits>), after the records'
 * done(): never on a look-up's answer path. */
static void put_checkpoint(struct wstate *w)
{
    struct store *s = w->s;
    struct px_checkpoint cp;
    memset(&cp, 0, sizeof(cp));
    memcpy(cp.writer, w->chain.writer, sizeof(cp.writer));
    cp.seq = w->chain.seq;
    cp.expires_min = w->chain.seg_min == INT64_MAX ? 0 : w->chain.seg_min;
    memcpy(cp.head, w->chain.head, sizeof(cp.head));
    px_chain_now_ts(cp.time);
    char note[PX_CHAIN_NOTE_MAX], pk[64], sk[32];
    size_t len = 0;
    if (px_checkpoint_sign(s->key, &cp, note, sizeof(note), &len))
        return;
    snprintf(pk, sizeof(pk), "CHECKPOINT#%s", cp.writer);
    snprintf(sk, sizeof(sk), "SEQ#%020llu", (unsigned long long)cp.seq);
    json_t *req = json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s}", "TableName", s->table,
                            "Item", "pk", "S", pk, "sk", "S", sk, "note", "S", note,
                            "ConditionExpression", "attribute_not_exists(pk)");
    json_t *resp = NULL;
    struct px_ddb_error err;
    px_rc rc = req ? call_json(s, "PutItem", req, px_ddb_now_ms() + s->timeout_ms, &resp, &err)
                   : PX_ERR_NOMEM;
    json_decref(req);
    json_decref(resp);
    if (rc) {
        px_log_limited(&s->loglim, PX_LOG_ERROR, "checkpoint",
                       "audit checkpoint not written to DynamoDB table %s: %s", s->table,
                       px_strerror(rc));
        return;
    }
    w->cp_seq = cp.seq;
    w->chain.seg_min = INT64_MAX;
    w->cp_any = true;
    w->cp_ms = px_ddb_now_ms();
}

static bool checkpoint_due(const struct wstate *w)
{
    if (!w->s->key || w->chain.seq == w->cp_seq)
        return false;
    return !w->cp_any || w->chain.seq - w->cp_seq >= PX_CHAIN_CHECKPOINT_RECORDS ||
           px_ddb_now_ms() - w->cp_ms >= PX_CHAIN_CHECKPOINT_MS;
}

/* Ends w's chain and starts a new one (new writer id). The chain's durable
 * records after its last checkpoint are signed first: a chain that ended
 * before its first checkpoint would otherwise stay a writer with no signed
 * checkpoint, which verify must refuse. */
static void chain_restart(struct wstate *w)
{
    if (w->s->key && w->chain.seq != w->cp_seq)
        put_checkpoint(w);
    struct px_chain fresh;
    if (px_chain_init(&fresh) == PX_OK) {
        w->chain = fresh;
        w->cp_seq = 0;
        w->cp_any = false;
    }
}

/* The conditional PutItem of r as the next record of w's chain: the item
 * (with its link) into item, the request into body, the link into hash. */
static px_rc put_prepare(const struct store *s, const struct wstate *w,
                         const struct px_audit_record *r, struct px_buf *item, struct px_buf *body,
                         unsigned char hash[PX_CHAIN_HASH_LEN])
{
    px_rc rc = px_ddb_audit_item_json(r, item);
    if (!rc)
        rc = add_link(item, &w->chain, r, hash);
    if (!rc)
        rc = px_buf_adds(body, "{\"TableName\":\"");
    if (!rc)
        rc = px_buf_adds(body, s->table);
    if (!rc)
        rc = px_buf_adds(body, "\",\"Item\":");
    if (!rc)
        rc = px_buf_add(body, item->data, item->len);
    if (!rc)
        rc = px_buf_adds(body, ",\"ConditionExpression\":\"attribute_not_exists(pk)\"}");
    return rc;
}

/* What the PutItem of put_prepare came to (rc, err): a retry that met its
 * own earlier write is a success; the chain moves past a durable record, and
 * ends where the item may or may not be there. */
static px_rc put_conclude(struct store *s, struct wstate *w, const struct px_audit_record *r,
                          px_rc rc, const struct px_ddb_error *err, const struct px_buf *item,
                          const unsigned char hash[PX_CHAIN_HASH_LEN], int64_t deadline)
{
    if (rc == PX_ERR_CONFLICT && err->ambiguous)
        rc = same_item_stored(s, item->data, deadline);
    if (!rc) {
        w->chain.seq++;
        if (r->expires_at < w->chain.seg_min)
            w->chain.seg_min = r->expires_at;
        memcpy(w->chain.head, hash, PX_CHAIN_HASH_LEN);
    } else if (rc != PX_ERR_CONFLICT && rc != PX_ERR_INVALID) {
        /* The item may or may not be there: this chain cannot go on past it
         * without a gap or a fork, so it ends (chains_settle) and the thread
         * starts a new one. */
        w->ended = true;
    }
    if (rc) {
        /* The exception name when DynamoDB gave one, else what the client saw. */
        px_log_limited(&s->loglim, PX_LOG_ERROR, err->type[0] ? err->type : px_strerror(rc),
                       "audit record not written to DynamoDB table %s: %s (%s%s%s) after %u "
                       "attempt(s)",
                       s->table, px_strerror(rc), err->type, err->type[0] ? ": " : "", err->message,
                       err->attempts);
    }
    return rc;
}

#define ITEM_CAP (2 * PX_AUDIT_CHANGE_MAX + 64 * 1024)
#define BODY_CAP (4 * PX_AUDIT_CHANGE_MAX + 64 * 1024)

static px_rc put_record(struct store *s, struct wstate *w, const struct px_audit_record *r,
                        int64_t deadline)
{
    struct px_buf item, body;
    struct px_ddb_error err;
    json_t *resp = NULL;
    unsigned char hash[PX_CHAIN_HASH_LEN];
    px_buf_init(&item, ITEM_CAP);
    px_buf_init(&body, BODY_CAP);
    px_rc rc = put_prepare(s, w, r, &item, &body, hash);
    if (!rc) {
        rc = px_ddb_call(s->c, "PutItem", body.data, body.len, deadline, &resp, &err);
        rc = put_conclude(s, w, r, rc, &err, &item, hash, deadline);
    }
    json_decref(resp);
    px_buf_free(&item);
    px_buf_free(&body);
    return rc;
}

/* An idle writer still signs its tail: when its last record is not yet
 * checkpointed, it waits only until PX_CHAIN_CHECKPOINT_MS after its last
 * checkpoint (or its last try), then puts one. So a process that later dies
 * without closing (SIGKILL, a crash) leaves at most that much unsigned, even
 * with no traffic after its last record. A Lambda instance frozen between
 * invocations runs no thread: there the window stays (docs). */
/* Waits on s->work (s->mu held) until signalled or `at` (px_ddb_now_ms
 * clock); true when `at` came. */
static bool wait_until(struct store *s, int64_t at)
{
    int64_t now = px_ddb_now_ms();
    if (now >= at)
        return true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (at - now) % 1000 * 1000000;
    ts.tv_sec += (time_t)((at - now) / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return pthread_cond_timedwait(&s->work, &s->mu, &ts) == ETIMEDOUT;
}

/* The thread's chains with records after their last checkpoint; *oldest:
 * the earliest of their last checkpoints. */
static unsigned unsigned_tails(const struct wstate *w, int64_t *oldest)
{
    unsigned n = 0;
    *oldest = INT64_MAX;
    for (unsigned k = 0; k < SLOTS; k++) {
        if (w[k].chain.seq == w[k].cp_seq)
            continue;
        n++;
        if (w[k].cp_ms < *oldest)
            *oldest = w[k].cp_ms;
    }
    return n;
}

/* Checkpoints every chain of the thread that has records after its last one. */
static void checkpoint_tails(struct wstate *w)
{
    for (unsigned k = 0; k < SLOTS; k++)
        if (w[k].s->key && w[k].chain.seq != w[k].cp_seq)
            put_checkpoint(&w[k]);
}

static bool idle_wait(struct store *s, struct wstate *w, int64_t *next_try)
{
    int64_t oldest;
    if (!s->key || !unsigned_tails(w, &oldest)) {
        pthread_cond_wait(&s->work, &s->mu);
        return false;
    }
    int64_t at = oldest + PX_CHAIN_CHECKPOINT_MS;
    if (at < *next_try)
        at = *next_try;
    return wait_until(s, at) && !s->count && !s->stopping;
}

/* Records go one PutItem each: the endpoint has no transactions, or the
 * deployment asked for one record per write (AUDIT_MAX_BATCH=1). */
static bool puts_only(struct store *s)
{
    return s->max_batch == 1 || atomic_load_explicit(&s->no_transact, memory_order_relaxed);
}

/* Records one writer takes at once: a group, or as many PutItems as it has chains. */
static unsigned group_max(struct store *s)
{
    return puts_only(s) ? SLOTS : s->max_batch;
}

/* Group commit (s->mu held): queued records wait for the writer in flight,
 * which takes them all when it is back, unless none is in flight, a whole
 * batch waits, or the oldest has waited STALL_MS (a slow or retried call
 * must not hold the others up: another writer goes). Returns true when this
 * writer should take them now, else waits until it may. */
static bool take_now(struct store *s)
{
    if (!s->busy || s->count >= group_max(s) || s->stopping)
        return true;
    int64_t due = s->ring[s->head].deadline - s->timeout_ms + STALL_MS;
    return wait_until(s, due) && s->count;
}

/* ------------------------------------------------------------ group writes */

/* {"TransactItems":[{"Put":{...,"ConditionExpression":...}}, ...],
 *  "ClientRequestToken":...}: the token is the last record's chain hash, so
 * the client's retry of a call whose answer was lost is applied once, and no
 * other group can have it. */
static px_rc group_body(const struct store *s, const struct bitem *it, size_t n, struct px_buf *b)
{
    char token[PX_CHAIN_HEX_LEN + 1];
    px_chain_hex(it[n - 1].hash, token);
    token[32] = '\0'; /* ClientRequestToken: at most 36 characters */
    px_rc rc = px_buf_adds(b, "{\"TransactItems\":[");
    for (size_t i = 0; !rc && i < n; i++) {
        rc = px_buf_printf(b, "%s{\"Put\":{\"TableName\":\"%s\",\"Item\":", i ? "," : "", s->table);
        if (!rc)
            rc = px_buf_add(b, it[i].item.data, it[i].item.len);
        if (!rc)
            rc = px_buf_adds(b, ",\"ConditionExpression\":\"attribute_not_exists(pk)\"}}");
    }
    if (!rc)
        rc = px_buf_printf(b, "],\"ClientRequestToken\":\"%s\"}", token);
    return rc;
}

/* One conditional PutItem for the record of j, then its done(). */
static void write_one(struct store *s, struct wstate *w, struct job *j)
{
    int64_t t0 = px_ddb_now_ms();
    px_rc rc = put_record(s, w, &j->r, j->deadline);
    px_metrics_audit_write((double)(px_ddb_now_ms() - t0));
    if (!rc)
        px_metrics_audit_batch(1);
    j->done(j->arg, rc);
}

/* n records (1..SLOTS) as n conditional PutItems in flight together, record
 * i on chain w[i], then done() for each. The one-record rules hold per chain
 * (put_conclude); what one record meets leaves the others' chains alone. */
static void put_round(struct store *s, struct wstate *w, struct job **jobs, size_t n)
{
    struct px_ddb_req req[SLOTS];
    struct px_buf item[SLOTS], body[SLOTS];
    unsigned char hash[SLOTS][PX_CHAIN_HASH_LEN];
    struct job *live[SLOTS];
    struct wstate *chain[SLOTS];
    int64_t until = INT64_MAX;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        px_buf_init(&item[m], ITEM_CAP);
        px_buf_init(&body[m], BODY_CAP);
        px_rc rc = put_prepare(s, &w[i], &jobs[i]->r, &item[m], &body[m], hash[m]);
        if (rc) {
            px_buf_free(&item[m]);
            px_buf_free(&body[m]);
            jobs[i]->done(jobs[i]->arg, rc);
            continue;
        }
        req[m] = (struct px_ddb_req){.body = body[m].data, .len = body[m].len};
        live[m] = jobs[i];
        chain[m] = &w[i];
        if (jobs[i]->deadline < until)
            until = jobs[i]->deadline;
        m++;
    }
    int64_t t0 = px_ddb_now_ms();
    px_ddb_call_many(s->c, "PutItem", req, m, until);
    double ms = (double)(px_ddb_now_ms() - t0);
    for (size_t i = 0; i < m; i++) {
        px_rc rc = put_conclude(s, chain[i], &live[i]->r, req[i].rc, &req[i].err, &item[i], hash[i],
                                live[i]->deadline);
        json_decref(req[i].resp);
        px_buf_free(&item[i]);
        px_buf_free(&body[i]);
        px_metrics_audit_write(ms);
        if (!rc)
            px_metrics_audit_batch(1);
        live[i]->done(live[i]->arg, rc);
    }
}

/* Ends the thread's chains that must end, after their records were answered. */
static void chains_settle(struct wstate *w)
{
    for (unsigned k = 0; k < SLOTS; k++) {
        if (w[k].ended) {
            w[k].ended = false;
            chain_restart(&w[k]);
        }
    }
}

/* n records as one conditional PutItem each, SLOTS of them in flight at a time. */
static void write_many(struct store *s, struct wstate *w, struct job **jobs, size_t n)
{
    for (size_t i = 0; i < n; i += SLOTS) {
        put_round(s, w, jobs + i, n - i < SLOTS ? n - i : SLOTS);
        chains_settle(w); /* a chain is used again in the next round */
    }
}

/* Writes n queued records and calls done() for each: one alone; all when the
 * endpoint has no transactions, as one PutItem each, in flight together;
 * else as one chained group. Chain rules as for one record (docs/internals/audit-integrity.md):
 * all written, the chain moves past them; outcome unknown, the group is
 * settled later (settle_group). A group refused whole (a record's key taken,
 * DynamoDB without TransactWriteItems, a validation error) wrote nothing: its
 * records then go one PutItem each, so that only the one refused fails. */
static void write_group(struct store *s, struct wstate *w, struct job **jobs, size_t n)
{
    if (n == 1) {
        write_one(s, w, jobs[0]);
        return;
    }
    if (puts_only(s)) {
        write_many(s, w, jobs, n);
        return;
    }
    struct bitem it[BATCH_MAX];
    struct px_ddb_error err;
    memset(&err, 0, sizeof(err));
    struct px_chain c = w->chain;
    int64_t until = INT64_MAX;
    size_t m = 0;
    px_rc rc = PX_OK;
    for (size_t i = 0; i < n; i++) {
        struct bitem *b = &it[m];
        b->j = jobs[i];
        px_buf_init(&b->item, 64 * 1024);
        rc = px_ddb_audit_item_json(&b->j->r, &b->item);
        if (!rc)
            rc = add_link(&b->item, &c, &b->j->r, b->hash);
        if (rc) {
            b->j->done(b->j->arg, rc);
            px_buf_free(&b->item);
            continue;
        }
        c.seq++;
        memcpy(c.head, b->hash, sizeof(c.head));
        if (b->j->r.expires_at < c.seg_min)
            c.seg_min = b->j->r.expires_at;
        if (b->j->deadline < until)
            until = b->j->deadline;
        m++;
    }
    if (!m)
        return;
    bool alone = m == 1;
    if (!alone) {
        struct px_buf body;
        json_t *resp = NULL;
        px_buf_init(&body, BATCH_BODY_MAX);
        int64_t t0 = px_ddb_now_ms();
        rc = group_body(s, it, m, &body);
        if (!rc)
            rc = px_ddb_call(s->c, "TransactWriteItems", body.data, body.len, until, &resp, &err);
        json_decref(resp);
        px_buf_free(&body);
        bool canceled = rc && !strcmp(err.type, "TransactionCanceledException");
        bool unknown = rc && err.ambiguous;
        if (canceled && err.ambiguous) {
            /* a retry of a call whose answer was lost: had the group landed? */
            px_rc mine = same_item_stored(s, it[0].item.data, until);
            if (!mine)
                rc = PX_OK; /* yes: all of it is ours */
            unknown = mine && mine != PX_ERR_CONFLICT;
        }
        if (!rc) {
            px_metrics_audit_write((double)(px_ddb_now_ms() - t0));
            px_metrics_audit_batch(m);
            w->chain = c;
        } else if (!strcmp(err.type, "UnknownOperationException")) {
            /* an endpoint without transactions (dynalite): one PutItem each from now on */
            /* said once, by the writer that found out (others may have had
             * a group in flight at the same time) */
            if (!atomic_exchange_explicit(&s->no_transact, true, memory_order_relaxed))
                PX_WARN(NULL,
                        "DynamoDB endpoint of table %s has no TransactWriteItems: audit records "
                        "go one PutItem each",
                        s->table);
            alone = true;
        } else if (!unknown && (canceled || rc == PX_ERR_INVALID)) {
            alone = true; /* refused whole, nothing written: each record on its own */
        } else {
            px_log_limited(&s->loglim, PX_LOG_ERROR, err.type[0] ? err.type : px_strerror(rc),
                           "%zu audit records not written to DynamoDB table %s: %s (%s%s%s) "
                           "after %u attempt(s)",
                           m, s->table, px_strerror(rc), err.type, err.type[0] ? ": " : "",
                           err.message, err.attempts);
            /* Outcome unknown (time-out, 5xx after retries): all or none of the
             * group is there. Its look-ups are answered now; the writer then
             * settles it (settle_group) before its chain goes on. A refusal
             * (4xx at the first attempt) wrote nothing: the chain stays. */
            w->unsettled.len = w->unsettled_one.len = 0;
            if (!unknown) {
                /* nothing to settle */
            } else if (group_body(s, it, m, &w->unsettled) ||
                       px_buf_add(&w->unsettled_one, it[0].item.data, it[0].item.len)) {
                w->unsettled.len = 0;
                w->ended = true;
            } else {
                w->unsettled_chain = c;
            }
        }
    }
    /* refused whole: each record on its own, as in write_many */
    struct job *each[BATCH_MAX];
    for (size_t i = 0; i < m; i++) {
        each[i] = it[i].j;
        if (!alone)
            it[i].j->done(it[i].j->arg, rc);
        px_buf_free(&it[i].item);
    }
    if (alone)
        write_many(s, w, each, m);
}

/* The group write_group could not settle: the same request again (same
 * ClientRequestToken: applied at most once) for one more timeout_ms. Then it is known to
 * be there (the chain moves past it) or not (the chain stays); failing both,
 * the chain ends, as for a single record whose outcome is unknown. */
static void settle_group(struct store *s, struct wstate *w)
{
    struct px_ddb_error err;
    json_t *resp = NULL;
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    if (stopping) {
        /* close() stays bounded: the chain ends before the group instead */
        chain_restart(w);
        w->unsettled.len = w->unsettled_one.len = 0;
        return;
    }
    int64_t until = px_ddb_now_ms() + s->timeout_ms;
    px_rc rc = px_ddb_call(s->c, "TransactWriteItems", w->unsettled.data, w->unsettled.len, until,
                           &resp, &err);
    json_decref(resp);
    if (!rc) {
        w->chain = w->unsettled_chain;
    } else if (!strcmp(err.type, "TransactionCanceledException")) {
        rc = same_item_stored(s, w->unsettled_one.data, until);
        if (!rc)
            w->chain = w->unsettled_chain; /* it had landed */
        else if (rc != PX_ERR_CONFLICT)
            chain_restart(w);
        /* PX_ERR_CONFLICT: not ours there, so the group never landed */
    } else {
        PX_LOG(PX_LOG_ERROR, NULL,
               "audit records of chain %s in DynamoDB table %s: outcome still unknown after "
               "%ld ms more (%s); the chain ends before them",
               w->chain.writer, s->table, s->timeout_ms, px_strerror(rc));
        chain_restart(w);
    }
    w->unsettled.len = w->unsettled_one.len = 0;
}

/* A record with before/after (a product or config change) goes alone: it may
 * be hundreds of KiB, and its PutItem keeps the condition. */
static bool batchable(const struct job *j)
{
    return !j->extra;
}

static void *writer(void *arg)
{
    struct wstate *w = arg; /* the thread's SLOTS chains */
    struct store *s = w->s;
    int64_t next_try = 0;
    struct job jobs[BATCH_MAX];
    struct job *live[BATCH_MAX];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&s->mu);
        bool idle = false;
        for (;;) {
            if (s->count) {
                if (take_now(s))
                    break;
            } else if (s->stopping || (idle = idle_wait(s, w, &next_try))) {
                break;
            }
        }
        if (idle) {
            pthread_mutex_unlock(&s->mu);
            /* a failed put is tried again one interval later, not at once */
            next_try = px_ddb_now_ms() + PX_CHAIN_CHECKPOINT_MS;
            checkpoint_tails(w);
            continue;
        }
        if (!s->count) { /* stopping and drained */
            pthread_mutex_unlock(&s->mu);
            /* A clean close leaves no tail after the last checkpoint. */
            checkpoint_tails(w);
            break;
        }
        /* Everything queued, up to a batch; a change record only alone. */
        do {
            jobs[n++] = s->ring[s->head];
            s->head = (s->head + 1) % s->cap;
            s->count--;
        } while (s->count && n < group_max(s) && batchable(&jobs[0]) &&
                 batchable(&s->ring[s->head]));
        s->busy++;
        /* more than a batch waits: another writer takes the rest at once */
        if (s->count >= group_max(s))
            pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->mu);

        size_t m = 0;
        int64_t now = px_ddb_now_ms();
        for (size_t i = 0; i < n; i++) {
            if (now < jobs[i].deadline)
                live[m++] = &jobs[i];
            else
                jobs[i].done(jobs[i].arg, PX_ERR_TIMEOUT);
        }
        if (m)
            write_group(s, w, live, m);
        chains_settle(w);
        for (size_t i = 0; i < n; i++)
            free(jobs[i].extra);
        bool due = false;
        for (unsigned k = 0; k < SLOTS; k++)
            due = due || checkpoint_due(&w[k]);
        bool more = w->unsettled.len || due;
        pthread_mutex_lock(&s->mu);
        s->busy--;
        /* records that came in meanwhile need not wait for this writer */
        if (more && s->count)
            pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->mu);
        if (w->unsettled.len)
            settle_group(s, w);
        for (unsigned k = 0; due && k < SLOTS; k++)
            if (checkpoint_due(&w[k]))
                put_checkpoint(&w[k]);
    }
    return NULL;
}

static px_rc ddb_submit(void *impl, const struct px_audit_record *r, px_audit_done_fn done,
                        void *arg)
{
    struct store *s = impl;
    px_rc rc = PX_OK;
    int64_t deadline = px_ddb_now_ms() + s->timeout_ms;
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        rc = PX_ERR_UNAVAILABLE;
    } else if (s->count == s->cap) {
        rc = PX_ERR_BUSY;
    } else {
        struct job *j = &s->ring[(s->head + s->count) % s->cap];
        size_t extra = px_audit_record_extra(r);
        j->extra = extra ? malloc(extra) : NULL;
        if (extra && !j->extra) {
            pthread_mutex_unlock(&s->mu);
            return PX_ERR_NOMEM;
        }
        px_audit_record_copy(&j->r, r, j->extra);
        j->done = done;
        j->arg = arg;
        j->deadline = deadline;
        s->count++;
        /* Group commit: while one write is in flight, what arrives waits for
         * the next one, unless a whole batch is already waiting. */
        if (!s->busy || s->count >= group_max(s))
            pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ------------------------------------------------------------------ reads */

static px_rc query_page(struct store *s, const struct px_audit_query *q, const char *lo,
                        const char *hi, long want, json_t *start, int64_t deadline, json_t **resp)
{
    bool by_user = q->user_id != NULL;
    char part[PX_AUDIT_GSI1PK_MAX], now[32], t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(q->tenant, t);
    if (by_user)
        user_pk(q->tenant, q->user_id, part, sizeof(part));
    else if (q->config_key)
        snprintf(part, sizeof(part), "%sCONFIG#%s", t, q->config_key);
    else
        snprintf(part, sizeof(part), "%sPRODUCT#%s", t, q->product_id);
    snprintf(now, sizeof(now), "%lld", (long long)q->now);
    json_t *req = json_pack(
        "{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}, s:I, s:b}",
        "TableName", s->table, "KeyConditionExpression", "#p = :p AND #s BETWEEN :lo AND :hi",
        "FilterExpression", "#e > :now", "ExpressionAttributeNames", "#p",
        by_user ? "pk" : "gsi1pk", "#s", by_user ? "sk" : "gsi1sk", "#e", PX_DDB_TTL_ATTR,
        "ExpressionAttributeValues", ":p", "S", part, ":lo", "S", lo, ":hi", "S", hi, ":now", "N",
        now, "Limit", (json_int_t)want, "ScanIndexForward", 1);
    if (!req)
        return PX_ERR_NOMEM;
    int bad = 0;
    if (by_user)
        bad |= json_object_set_new(req, "ConsistentRead", json_true());
    else
        bad |= json_object_set_new(req, "IndexName", json_string(PX_DDB_GSI));
    if (start)
        bad |= json_object_set(req, "ExclusiveStartKey", start);
    struct px_ddb_error err;
    px_rc rc = bad ? PX_ERR_NOMEM : call_json(s, "Query", req, deadline, resp, &err);
    if (rc && rc != PX_ERR_NOMEM)
        PX_WARN(NULL, "audit query on DynamoDB table %s failed: %s (%s%s%s)", s->table,
                px_strerror(rc), err.type, err.type[0] ? ": " : "", err.message);
    json_decref(req);
    return rc;
}

/* The key a query would resume after record r (the same shape as LastEvaluatedKey). */
static json_t *key_of(const struct px_audit_record *r, bool by_user)
{
    char pk[PX_AUDIT_PK_MAX], sk[128], gsi1pk[PX_AUDIT_GSI1PK_MAX];
    px_audit_keys(r, pk, sk, gsi1pk);
    if (by_user)
        return json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", pk, "sk", "S", sk);
    return json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "pk", "S", pk, "sk", "S", sk, "gsi1pk",
                     "S", gsi1pk, "gsi1sk", "S", sk);
}

static px_rc ddb_query(void *impl, const struct px_audit_query *q, struct px_arena *a,
                       struct px_audit_page *out)
{
    struct store *s = impl;
    char from[25], to[25], lo[64], hi[64];
    json_t *start = NULL, *resp = NULL;
    px_rc rc = PX_OK;
    bool by_user = q->user_id != NULL;
    size_t need = (size_t)q->limit;

    memset(out, 0, sizeof(*out));
    if (q->limit < 1 || q->limit > 1000 ||
        (q->user_id != NULL) + (q->product_id != NULL) + (q->config_key != NULL) != 1)
        return PX_ERR_INVALID;
    if ((by_user && strlen(q->user_id) > PX_UUID_LEN) ||
        (q->product_id && strlen(q->product_id) > PX_MAX_PRODUCT_ID) ||
        (q->config_key &&
         strlen(q->config_key) >= sizeof(((struct px_audit_record *)0)->config_key)))
        return PX_ERR_INVALID;
    if ((q->from && px_audit_ts_ms(q->from, from)) || (q->to && px_audit_ts_ms(q->to, to)))
        return PX_ERR_INVALID;
    snprintf(lo, sizeof(lo), "AUDIT#%s", q->from ? from : "");
    /* '$' sorts right after '#': every "AUDIT#<to>#<requestId>" is below it. */
    if (q->to)
        snprintf(hi, sizeof(hi), "AUDIT#%s$", to);
    else
        snprintf(hi, sizeof(hi), "AUDIT$");
    if (q->cursor) {
        rc = px_ddb_cursor_decode(q->cursor, q, &start);
        if (rc)
            return rc;
    }
    out->items = px_arena_calloc(a, need * sizeof(*out->items));
    if (!out->items) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    if (strcmp(lo, hi) > 0) /* an empty range: SQLite answers nothing too */
        goto out;

    long bound = s->timeout_ms * 2 > MIN_QUERY_MS ? s->timeout_ms * 2 : MIN_QUERY_MS;
    int64_t deadline = px_ddb_now_ms() + bound;
    for (unsigned page = 0; page < MAX_QUERY_PAGES; page++) {
        rc = query_page(s, q, lo, hi, (long)(need - out->nitems + 1), start, deadline, &resp);
        if (rc)
            goto out;
        json_t *items = json_object_get(resp, "Items");
        if (items && !json_is_array(items)) {
            rc = PX_ERR_PROTOCOL;
            goto out;
        }
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            if (out->nitems == need) {
                /* one more than asked: resume after the last one kept */
                json_t *k = key_of(&out->items[need - 1], by_user);
                rc = k ? px_ddb_cursor_encode(k, a, &out->next_cursor) : PX_ERR_NOMEM;
                json_decref(k);
                goto out;
            }
            rc = px_ddb_audit_item_parse(it, &out->items[out->nitems]);
            if (!rc)
                rc = changes_parse(it, a, &out->items[out->nitems]);
            if (rc)
                goto out;
            out->nitems++;
        }
        json_t *lek = json_object_get(resp, "LastEvaluatedKey");
        if (!json_is_object(lek))
            goto out; /* the end */
        json_decref(start);
        start = json_incref(lek);
        json_decref(resp);
        resp = NULL;
    }
    /* page bound reached with more to read: hand back where to go on */
    if (start)
        rc = px_ddb_cursor_encode(start, a, &out->next_cursor);
out:
    json_decref(resp);
    json_decref(start);
    if (rc) {
        out->nitems = 0;
        out->next_cursor = NULL;
    }
    return rc;
}

/* --------------------------------------------------------- table management */

struct table_state {
    char status[32];
    bool keys_ok, gsi_ok, gsi_active;
};

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
        if (!strcmp(type, "HASH") && !strcmp(name, hash))
            h = true;
        if (!strcmp(type, "RANGE") && !strcmp(name, range))
            r = true;
    }
    return h && r;
}

static px_rc describe(struct store *s, struct table_state *ts, struct px_ddb_error *err)
{
    json_t *req = json_pack("{s:s}", "TableName", s->table), *resp = NULL;
    memset(ts, 0, sizeof(*ts));
    px_rc rc = req ? call_json(s, "DescribeTable", req, px_ddb_now_ms() + CONTROL_MS, &resp, err)
                   : PX_ERR_NOMEM;
    json_decref(req);
    if (rc)
        return rc;
    json_t *t = json_object_get(resp, "Table");
    const char *st = json_string_value(json_object_get(t, "TableStatus"));
    snprintf(ts->status, sizeof(ts->status), "%s", st ? st : "");
    ts->keys_ok = key_schema_is(json_object_get(t, "KeySchema"), "pk", "sk");
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(t, "GlobalSecondaryIndexes"), i, g)
    {
        const char *name = json_string_value(json_object_get(g, "IndexName"));
        if (!name || strcmp(name, PX_DDB_GSI) != 0)
            continue;
        ts->gsi_ok = key_schema_is(json_object_get(g, "KeySchema"), "gsi1pk", "gsi1sk");
        const char *ist = json_string_value(json_object_get(g, "IndexStatus"));
        ts->gsi_active = !ist || strcmp(ist, "ACTIVE") == 0;
    }
    json_decref(resp);
    return PX_OK;
}

static px_rc create_table(struct store *s, struct px_ddb_error *err)
{
    json_t *resp = NULL;
    json_t *req = json_pack(
        "{s:s, s:[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}], s:[{s:s,s:s},{s:s,s:s}],"
        " s:[{s:s, s:[{s:s,s:s},{s:s,s:s}], s:{s:s}}], s:s}",
        "TableName", s->table, "AttributeDefinitions", "AttributeName", "pk", "AttributeType", "S",
        "AttributeName", "sk", "AttributeType", "S", "AttributeName", "gsi1pk", "AttributeType",
        "S", "AttributeName", "gsi1sk", "AttributeType", "S", "KeySchema", "AttributeName", "pk",
        "KeyType", "HASH", "AttributeName", "sk", "KeyType", "RANGE", "GlobalSecondaryIndexes",
        "IndexName", PX_DDB_GSI, "KeySchema", "AttributeName", "gsi1pk", "KeyType", "HASH",
        "AttributeName", "gsi1sk", "KeyType", "RANGE", "Projection", "ProjectionType", "ALL",
        "BillingMode", "PAY_PER_REQUEST");
    px_rc rc = req ? call_json(s, "CreateTable", req, px_ddb_now_ms() + CONTROL_MS, &resp, err)
                   : PX_ERR_NOMEM;
    json_decref(req);
    json_decref(resp);
    if (rc == PX_ERR_CONFLICT) /* ResourceInUse: created meanwhile by someone else */
        rc = PX_OK;
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

static px_rc fail_msg(px_rc rc, const struct px_ddb_error *e, char *err, size_t errlen,
                      const char *what, const char *table)
{
    snprintf(err, errlen, "AUDIT_STORE: %s DynamoDB table %s failed: %s%s%s", what, table,
             e->type[0] ? e->type : px_strerror(rc), e->message[0] ? ": " : "", e->message);
    return rc;
}

static px_rc enable_ttl(struct store *s, char *err, size_t errlen)
{
    struct px_ddb_error e;
    enum px_ddb_ttl st;
    px_rc rc =
        px_ddb_ttl_on(s->c, s->table, PX_DDB_TTL_ATTR, px_ddb_now_ms() + CONTROL_MS, &st, &e);
    if (rc)
        return fail_msg(rc, &e, err, errlen, "enabling TTL on", s->table);
    switch (st) {
    case PX_DDB_TTL_TURNED_ON:
        PX_INFO(NULL, "DynamoDB table %s: TTL enabled on %s", s->table, PX_DDB_TTL_ATTR);
        break;
    case PX_DDB_TTL_OTHER_ATTR:
        PX_WARN(NULL,
                "DynamoDB table %s has TTL on another attribute than %s: audit records "
                "will not expire",
                s->table, PX_DDB_TTL_ATTR);
        break;
    case PX_DDB_TTL_DISABLING:
        PX_WARN(NULL, "DynamoDB table %s: TTL is being disabled; run db seed again later",
                s->table);
        break;
    case PX_DDB_TTL_UNSUPPORTED:
        PX_WARN(NULL,
                "DynamoDB endpoint %s does not implement the TimeToLive operations "
                "(dynalite does not): TTL could NOT be enabled on table %s; expired audit "
                "records stay stored (reads still hide them)",
                px_ddb_endpoint(s->c), s->table);
        break;
    case PX_DDB_TTL_WAS_ON:
        break;
    }
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
    while (rc == PX_OK && (strcmp(ts.status, "ACTIVE") != 0 || !ts.gsi_active)) {
        if (px_ddb_now_ms() + CREATE_POLL_MS > deadline) {
            snprintf(err, errlen,
                     "AUDIT_STORE: DynamoDB table %s not ACTIVE after %d s (status %s)", s->table,
                     CREATE_WAIT_MS / 1000, ts.status);
            return PX_ERR_TIMEOUT;
        }
        sleep_ms(CREATE_POLL_MS);
        rc = describe(s, &ts, &e);
    }
    if (rc)
        return fail_msg(rc, &e, err, errlen, "describing", s->table);
    if (!ts.keys_ok || !ts.gsi_ok) {
        snprintf(err, errlen,
                 "AUDIT_STORE: DynamoDB table %s exists with another layout (want key pk/sk "
                 "and GSI %s on gsi1pk/gsi1sk)",
                 s->table, PX_DDB_GSI);
        return PX_ERR_CONFIG;
    }
    return enable_ttl(s, err, errlen);
}

static px_rc ddb_ping(void *impl)
{
    struct store *s = impl;
    struct px_ddb_error e;
    json_t *req = json_pack("{s:s}", "TableName", s->table), *resp = NULL;
    long bound = s->timeout_ms > 0 ? s->timeout_ms : 1000;
    px_rc rc =
        req ? call_json(s, "DescribeTable", req, px_ddb_now_ms() + bound, &resp, &e) : PX_ERR_NOMEM;
    json_decref(req);
    if (!rc) {
        const char *st =
            json_string_value(json_object_get(json_object_get(resp, "Table"), "TableStatus"));
        if (!st || (strcmp(st, "ACTIVE") != 0 && strcmp(st, "UPDATING") != 0))
            rc = PX_ERR_UNAVAILABLE;
    }
    json_decref(resp);
    return rc;
}

/* ------------------------------------------------------------------ verify */

#define VERIFY_PAGE_ITEMS    1000
#define VERIFY_PAGES_DEFAULT 10000
#define VERIFY_ENTRIES_MAX   (4u << 20)

/* One record item's link, its hash already checked against its fields. */
struct ventry {
    char writer[PX_CHAIN_WRITER_LEN + 1]; /* "" when written before the chain */
    uint64_t wseq;
    char prev[PX_CHAIN_HEX_LEN + 1], hash[PX_CHAIN_HEX_LEN + 1];
    bool ok;
    char ts[25];
    char where[200];
    bool has_tenant; /* the item could be read: tenant is its tenant ("" default) */
    char tenant[64 + 1];
};

static int cmp_ventry(const void *x, const void *y)
{
    const struct ventry *a = x, *b = y;
    int c = strcmp(a->writer, b->writer);
    if (c)
        return c;
    return a->wseq < b->wseq ? -1 : a->wseq > b->wseq;
}

/* Reads one record item into e; false (with what) when it cannot be a record. */
static bool item_entry(const json_t *item, struct px_arena *ar, struct ventry *e, const char **what)
{
    struct px_audit_record r;
    *what = "unreadable record item";
    if (px_ddb_audit_item_parse(item, &r) || changes_parse(item, ar, &r))
        return false;
    e->has_tenant = true;
    snprintf(e->tenant, sizeof(e->tenant), "%s", r.tenant);
    char pk[PX_AUDIT_PK_MAX], sk[128], gsi1pk[PX_AUDIT_GSI1PK_MAX];
    px_audit_keys(&r, pk, sk, gsi1pk);
    const char *ipk = attr_s(item, "pk"), *isk = attr_s(item, "sk");
    const char *ig = attr_s(item, "gsi1pk"), *igs = attr_s(item, "gsi1sk");
    snprintf(e->where, sizeof(e->where), "item pk %.80s sk %.100s", ipk ? ipk : "?",
             isk ? isk : "?");
    memcpy(e->ts, r.ts, sizeof(e->ts));
    if (!ipk || !isk || !ig || !igs || strcmp(ipk, pk) || strcmp(isk, sk) || strcmp(ig, gsi1pk) ||
        strcmp(igs, sk)) {
        *what = "changed: its keys do not match its fields";
        return false;
    }
    const char *w = attr_s(item, "writer");
    e->writer[0] = '\0';
    e->ok = true;
    if (!w && !json_object_get(item, "wseq") && !json_object_get(item, "hash"))
        return true; /* written before the chain */
    const json_t *n = json_object_get(json_object_get(item, "wseq"), "N");
    const char *prev = attr_s(item, "prevHash"), *hash = attr_s(item, "hash");
    char *end = NULL;
    unsigned long long seq = json_is_string(n) ? strtoull(json_string_value(n), &end, 10) : 0;
    unsigned char p[PX_CHAIN_HASH_LEN], h[PX_CHAIN_HASH_LEN], want[PX_CHAIN_HASH_LEN];
    if (!w || strlen(w) != PX_CHAIN_WRITER_LEN || !end || *end || seq == 0 ||
        !px_chain_unhex(prev, p) || !px_chain_unhex(hash, h)) {
        *what = "malformed chain attributes";
        return false;
    }
    memcpy(e->writer, w, PX_CHAIN_WRITER_LEN + 1);
    e->wseq = seq;
    memcpy(e->prev, prev, sizeof(e->prev));
    memcpy(e->hash, hash, sizeof(e->hash));
    px_chain_hash(w, seq, &r, p, want);
    e->ok = memcmp(want, h, sizeof(h)) == 0;
    return true;
}

/* A consistent Scan of the whole table, page by page within the verifier's
 * read budget: checkpoint items to v at once, record items collected and
 * then fed per writer in wseq order. */
static px_rc ddb_verify(void *impl, struct px_chain_verifier *v, char *err, size_t errlen)
{
    struct store *s = impl;
    /* TTL deletes expired items (days late, in no order): segments whose
     * records may have expired may have lost some. */
    px_chain_verifier_set_ttl(v, (int64_t)time(NULL));
    long budget = px_chain_verifier_read_budget(v);
    if (budget <= 0)
        budget = VERIFY_PAGES_DEFAULT;
    struct ventry *es = NULL;
    size_t n = 0, cap = 0;
    json_t *start = NULL;
    struct px_arena *ar = px_arena_new(4 * PX_AUDIT_CHANGE_MAX);
    px_rc rc = ar ? PX_OK : PX_ERR_NOMEM;
    long pages = 0;
    for (; !rc; pages++) {
        if (pages == budget) {
            snprintf(err, errlen,
                     "read budget of %ld Scan pages spent before the end of table %s: nothing "
                     "verified (raise --max-pages)",
                     budget, s->table);
            rc = PX_ERR_TOO_LARGE;
            break;
        }
        json_t *req = json_pack("{s:s, s:I, s:b}", "TableName", s->table, "Limit",
                                (json_int_t)VERIFY_PAGE_ITEMS, "ConsistentRead", 1);
        if (req && start)
            json_object_set(req, "ExclusiveStartKey", start);
        json_t *resp = NULL;
        struct px_ddb_error derr;
        rc = req ? call_json(s, "Scan", req, px_ddb_now_ms() + 10 * s->timeout_ms, &resp, &derr)
                 : PX_ERR_NOMEM;
        json_decref(req);
        if (rc) {
            snprintf(err, errlen, "Scan of table %s failed: %s (%s%s%s)", s->table, px_strerror(rc),
                     derr.type, derr.type[0] ? ": " : "", derr.message);
            json_decref(resp);
            break;
        }
        const json_t *items = json_object_get(resp, "Items");
        size_t i;
        const json_t *item;
        json_array_foreach(items, i, item)
        {
            const char *pk = attr_s(item, "pk");
            if (pk && strncmp(pk, "CHECKPOINT#", 11) == 0) {
                const char *note = attr_s(item, "note"), *sk = attr_s(item, "sk");
                char where[200];
                snprintf(where, sizeof(where), "checkpoint item pk %.80s sk %.40s", pk,
                         sk ? sk : "?");
                px_chain_verifier_checkpoint(v, note ? note : "", note ? strlen(note) : 0, where);
                continue;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 1024;
                struct ventry *g =
                    ncap <= VERIFY_ENTRIES_MAX ? realloc(es, ncap * sizeof(*g)) : NULL;
                if (!g) {
                    snprintf(err, errlen, "more records than verify holds in memory (%u)",
                             VERIFY_ENTRIES_MAX);
                    rc = PX_ERR_NOMEM;
                    break;
                }
                es = g;
                cap = ncap;
            }
            const char *what = NULL;
            px_arena_reset(ar);
            memset(&es[n], 0, sizeof(es[n]));
            if (!item_entry(item, ar, &es[n], &what)) {
                const json_t *wn = json_object_get(json_object_get(item, "wseq"), "N");
                px_chain_verifier_next(
                    v, es[n].has_tenant ? es[n].tenant : NULL, attr_s(item, "writer"),
                    json_is_string(wn) ? strtoll(json_string_value(wn), NULL, 10) : 0);
                px_chain_verifier_fail(v, es[n].where[0] ? es[n].where : "an item", what);
                continue;
            }
            n++;
        }
        json_decref(start);
        start = json_incref(json_object_get(resp, "LastEvaluatedKey"));
        json_decref(resp);
        if (!start)
            break;
    }
    json_decref(start);
    px_arena_free(ar);
    if (!rc && n) {
        qsort(es, n, sizeof(*es), cmp_ventry);
        /* Items have no insertion order here: an unchained item dated after the
         * chain began is one inserted later, not one from before the upgrade. */
        char first[25] = "";
        for (size_t i = 0; i < n; i++)
            if (es[i].writer[0] && (!first[0] || strcmp(es[i].ts, first) < 0))
                memcpy(first, es[i].ts, sizeof(first));
        for (size_t i = 0; i < n; i++) {
            const struct ventry *e = &es[i];
            px_chain_verifier_next(v, e->tenant, e->writer, (int64_t)e->wseq);
            if (!e->writer[0] && first[0] && strcmp(e->ts, first) > 0) {
                px_chain_verifier_fail(v, e->where,
                                       "an item without chain attributes dated after the chain "
                                       "began (inserted, or its chain attributes removed)");
                continue;
            }
            if (i && e->writer[0] && strcmp(e->writer, es[i - 1].writer) == 0 &&
                e->wseq == es[i - 1].wseq) {
                char msg[160];
                snprintf(msg, sizeof(msg), "duplicate: writer %s wseq %llu appears twice",
                         e->writer, (unsigned long long)e->wseq);
                px_chain_verifier_fail(v, e->where, msg);
                continue;
            }
            px_chain_verifier_link(v, e->ts, e->writer[0] ? e->writer : NULL, (int64_t)e->wseq,
                                   e->prev, e->hash, e->ok, e->where);
        }
    }
    free(es);
    return rc;
}

/* ---------------------------------------------------------------- lifecycle */

static void ddb_close(void *impl)
{
    struct store *s = impl;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nth; i++)
        pthread_join(s->th[i], NULL);
    s->nth = 0;
    for (unsigned i = 0; i < WRITERS; i++) {
        for (unsigned k = 0; k < SLOTS; k++) {
            px_buf_free(&s->ws[i][k].unsettled);
            px_buf_free(&s->ws[i][k].unsettled_one);
        }
    }
    px_ddb_free(s->c);
    s->c = NULL;
    px_chain_key_free(s->key);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
    px_log_limit_destroy(&s->loglim);
    free(s->ring);
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

static px_rc ddb_open(const char *target, const struct px_audit_opts *opts, void **impl, char *err,
                      size_t errlen)
{
    px_rc rc;
    struct store *s = NULL;
    *impl = NULL;
    if (!valid_table(target)) {
        snprintf(err, errlen,
                 "AUDIT_STORE: \"%.64s\" is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ "
                 "- .)",
                 target);
        return PX_ERR_CONFIG;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "AUDIT_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    snprintf(s->table, sizeof(s->table), "%s", target);
    s->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    s->cap = opts->queue_cap ? opts->queue_cap : DEFAULT_QUEUE;
    s->max_batch = opts->max_batch && opts->max_batch < BATCH_MAX ? opts->max_batch : BATCH_MAX;
    if (s->cap > MAX_QUEUE)
        s->cap = MAX_QUEUE;
    pthread_mutex_init(&s->mu, NULL);
    /* Waits with a deadline (idle checkpoints) on the clock px_ddb_now_ms reads. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->work, &ca);
    pthread_condattr_destroy(&ca);
    s->ring = calloc(s->cap, sizeof(*s->ring));
    if (px_log_limit_init(&s->loglim, 1000) != PX_OK || !s->ring) {
        snprintf(err, errlen, "AUDIT_STORE: out of memory");
        rc = PX_ERR_NOMEM;
        goto fail;
    }
    const struct px_ddb_config cfg = {
        .region = opts->region,
        .endpoint = opts->endpoint,
        .access_key_id = opts->access_key_id,
        .secret_access_key = opts->secret_access_key,
        .session_token = opts->session_token,
        .connect_timeout_ms = s->timeout_ms < 1000 ? s->timeout_ms : 1000,
    };
    rc = px_ddb_new(&cfg, &s->c, err, errlen);
    if (rc)
        goto fail;
    if (opts->create) {
        rc = ensure_table(s, err, errlen);
        if (rc)
            goto fail;
    }
    if (opts->signing_key_file) {
        char kerr[512];
        rc = px_chain_key_load(opts->signing_key_file, true, &s->key, kerr, sizeof(kerr));
        if (rc) {
            snprintf(err, errlen, "AUDIT_SIGNING_KEY_FILE: %s", kerr);
            goto fail;
        }
    }
    for (unsigned i = 0; i < WRITERS; i++) {
        for (unsigned k = 0; k < SLOTS; k++) {
            struct wstate *w = &s->ws[i][k];
            w->s = s;
            px_buf_init(&w->unsettled, BATCH_BODY_MAX);
            px_buf_init(&w->unsettled_one, BATCH_BODY_MAX);
            if (px_chain_init(&w->chain) != PX_OK) {
                snprintf(err, errlen, "AUDIT_STORE: no random bytes for the writer ids");
                rc = PX_ERR_INTERNAL;
                goto fail;
            }
        }
    }
    for (unsigned i = 0; i < WRITERS; i++) {
        if (pthread_create(&s->th[i], NULL, writer, s->ws[i]) != 0) {
            snprintf(err, errlen, "AUDIT_STORE: cannot start DynamoDB writer threads");
            rc = PX_ERR_INTERNAL;
            goto fail;
        }
        s->nth++;
    }
    *impl = s;
    return PX_OK;
fail:
    ddb_close(s);
    return rc;
}

const struct px_audit_ops px_audit_dynamodb_ops = {
    .scheme = "dynamodb",
    .open = ddb_open,
    .close = ddb_close,
    .submit = ddb_submit,
    .query = ddb_query,
    .ping = ddb_ping,
    .verify = ddb_verify,
};
