/* outbox_dynamodb.c: the outbox inside a DynamoDB store's own table
 * (PRODUCT_STORE=dynamodb:TABLE, CONFIG_STORE=dynamodb:TABLE).
 *
 * One item per event in the partition OUTBOX#<tenant> of the table whose item
 * changed, sk = <subject>#<ord, 19 digits>: the events of one subject are one
 * key range in ord order, so the table itself keeps the order per subject that
 * SQLite and PostgreSQL get from seq. Writers add the item to the change's
 * TransactWriteItems (px_outbox_ddb_put(): attribute_not_exists(pk)), so the
 * event exists exactly when the item committed.
 *
 * The relay's side: a claim queries the waiting events from a cursor (the first
 * key of the subject where the last claim stopped, then wrapping), so every
 * subject gets its turn, and leases each one with an UpdateItem conditional on
 * `status = waiting AND (lease_until <= now OR lease_owner = me)`: of two
 * relays only one wins an event's lease. Rows handed out carry a seq local to
 * this handle, mapped back to the item's key for the mark. */
#include "outbox.h"
#include "dynamodb.h"
#include "../kernel/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SK_MAX       (PX_EVENT_SUBJ_MAX + 24)
#define PK_MAX       (sizeof("OUTBOX#") + 64)
#define MAX_PAGES    200   /* bound on one listing or count: 200 pages of <= 1 MB */
#define SEQ_MAP      4096  /* claimed rows remembered for their mark */
#define SENT_TTL_S   86400 /* a sent event's item expires (where the table has TTL) */
#define TABLE_MAX    255
#define CALL_MS_DFLT 5000

void px_outbox_ddb_pk(const char *tenant, char *out, size_t cap)
{
    snprintf(out, cap, "OUTBOX#%s", tenant && tenant[0] ? tenant : PX_EVENT_TENANT);
}

void px_outbox_ddb_sk(const char *subject, int64_t ord, char *out, size_t cap)
{
    snprintf(out, cap, "%s#%019lld", subject, (long long)(ord < 0 ? 0 : ord));
}

static json_t *s_attr(const char *v)
{
    return json_pack("{s:s}", "S", v ? v : "");
}

static json_t *n_attr(long long v)
{
    char n[32];
    snprintf(n, sizeof(n), "%lld", v);
    return json_pack("{s:s}", "N", n);
}

json_t *px_outbox_ddb_put(const char *table, const struct px_event *ev)
{
    char pk[PK_MAX], sk[SK_MAX];
    px_outbox_ddb_pk(ev->tenant, pk, sizeof(pk));
    px_outbox_ddb_sk(ev->subject, ev->ord, sk, sizeof(sk));
    json_t *item =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "pk",
                  s_attr(pk), "sk", s_attr(sk), "id", s_attr(ev->id), "tenant",
                  s_attr(ev->tenant ? ev->tenant : PX_EVENT_TENANT), "subject", s_attr(ev->subject),
                  "type", s_attr(ev->type), "ord", n_attr(ev->ord), "event", s_attr(ev->json),
                  "status", s_attr("waiting"), "attempts", n_attr(0), "created_ms",
                  n_attr(ev->time_ms), "next_ms", n_attr(0), "lease_until", n_attr(0));
    if (!item)
        return NULL;
    return json_pack("{s:{s:s, s:o, s:s}}", "Put", "TableName", table, "Item", item,
                     "ConditionExpression", "attribute_not_exists(pk)");
}

/* ------------------------------------------------------------ relay side */

struct seq_key {
    int64_t seq;
    char pk[PK_MAX];
    char sk[SK_MAX];
};

struct ddb_outbox {
    struct px_ddb *c;
    char table[TABLE_MAX + 1];
    long timeout_ms;
    char cursor[SK_MAX]; /* where the next claim starts ("" = the beginning) */
    int64_t next_seq;
    struct seq_key map[SEQ_MAP]; /* ring: seq % SEQ_MAP */
};

static px_rc call(struct ddb_outbox *o, const char *op, json_t *req, json_t **resp,
                  struct px_ddb_error *err)
{
    return px_ddb_call_json(o->c, op, req, px_ddb_now_ms() + o->timeout_ms, resp, err);
}

static const char *get_s(const json_t *item, const char *name)
{
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

static long long get_n(const json_t *item, const char *name)
{
    const char *t = json_string_value(json_object_get(json_object_get(item, name), "N"));
    if (!t)
        return 0;
    errno = 0;
    long long v = strtoll(t, NULL, 10);
    return errno ? 0 : v;
}

static void ddb_close(void *impl)
{
    struct ddb_outbox *o = impl;
    if (!o)
        return;
    px_ddb_free(o->c);
    free(o);
}

static const char *or_null(const char *s)
{
    return s && s[0] ? s : NULL;
}

static px_rc ddb_open(const char *table, const struct px_config *cfg, long timeout_ms, void **impl,
                      char *err, size_t errlen)
{
    *impl = NULL;
    if (!cfg || !table[0] || strlen(table) > TABLE_MAX) {
        snprintf(err, errlen, "outbox: no DynamoDB table in \"%.64s\"", table);
        return PX_ERR_CONFIG;
    }
    struct ddb_outbox *o = calloc(1, sizeof(*o));
    if (!o)
        return PX_ERR_NOMEM;
    snprintf(o->table, sizeof(o->table), "%s", table);
    o->timeout_ms = timeout_ms > 0 && timeout_ms <= 60000 ? timeout_ms : CALL_MS_DFLT;
    o->next_seq = 1;
    const struct px_ddb_config dc = {
        .region = or_null(cfg->aws_region),
        .endpoint = or_null(cfg->dynamodb_endpoint),
        .access_key_id = or_null(cfg->aws_access_key_id),
        .secret_access_key = or_null(cfg->aws_secret_access_key),
        .session_token = or_null(cfg->aws_session_token),
        .connect_timeout_ms = 1000,
    };
    char why[512] = "";
    px_rc rc = px_ddb_new(&dc, &o->c, why, sizeof(why));
    if (rc) {
        snprintf(err, errlen, "outbox: %s", why);
        ddb_close(o);
        return rc;
    }
    /* The table must answer now, as a SQLite outbox's file must open. */
    struct px_ddb_error e;
    rc = call(o, "DescribeTable", json_pack("{s:s}", "TableName", o->table), NULL, &e);
    if (rc) {
        snprintf(err, errlen, "outbox: DynamoDB table %s: %s%s%s (run: pricing db migrate)",
                 o->table, e.type[0] ? e.type : px_strerror(rc), e.message[0] ? ": " : "",
                 e.message);
        ddb_close(o);
        return rc;
    }
    *impl = o;
    return PX_OK;
}

/* Fills r from an outbox item; r->seq is the caller's. */
static px_rc read_item(const json_t *it, struct px_outbox_row *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", get_s(it, "id") ? get_s(it, "id") : "");
    snprintf(r->tenant, sizeof(r->tenant), "%s", get_s(it, "tenant") ? get_s(it, "tenant") : "");
    snprintf(r->subject, sizeof(r->subject), "%s",
             get_s(it, "subject") ? get_s(it, "subject") : "");
    snprintf(r->type, sizeof(r->type), "%s", get_s(it, "type") ? get_s(it, "type") : "");
    r->ord = get_n(it, "ord");
    const char *s = get_s(it, "status");
    r->status = s && strcmp(s, "sent") == 0     ? PX_OUTBOX_SENT
                : s && strcmp(s, "failed") == 0 ? PX_OUTBOX_FAILED
                                                : PX_OUTBOX_WAITING;
    r->attempts = (long)get_n(it, "attempts");
    r->created_ms = get_n(it, "created_ms");
    r->next_ms = get_n(it, "next_ms");
    snprintf(r->error, sizeof(r->error), "%s",
             get_s(it, "last_error") ? get_s(it, "last_error") : "");
    r->event = strdup(get_s(it, "event") ? get_s(it, "event") : "null");
    return r->event ? PX_OK : PX_ERR_NOMEM;
}

/* Remembers where row seq lives, for its mark. */
static int64_t remember(struct ddb_outbox *o, const json_t *it)
{
    int64_t seq = o->next_seq++;
    struct seq_key *k = &o->map[seq % SEQ_MAP];
    k->seq = seq;
    snprintf(k->pk, sizeof(k->pk), "%s", get_s(it, "pk") ? get_s(it, "pk") : "");
    snprintf(k->sk, sizeof(k->sk), "%s", get_s(it, "sk") ? get_s(it, "sk") : "");
    return seq;
}

static const struct seq_key *recall(const struct ddb_outbox *o, int64_t seq)
{
    const struct seq_key *k = &o->map[seq % SEQ_MAP];
    return seq > 0 && k->seq == seq ? k : NULL;
}

typedef px_rc (*item_fn)(void *arg, const json_t *item, bool *more);

/* Queries the outbox partition of the default tenant from sk >= from (""
 * = all), consistent, optionally only status = filter, page by page, calling
 * fn per item until it clears *more. Bounded by MAX_PAGES. */
static px_rc query(struct ddb_outbox *o, const char *from, const char *to, const char *filter,
                   item_fn fn, void *arg)
{
    char pk[PK_MAX];
    px_outbox_ddb_pk(PX_EVENT_TENANT, pk, sizeof(pk));
    json_t *start = NULL;
    px_rc rc = PX_OK;
    bool more = true;
    for (int page = 0; !rc && more && page < MAX_PAGES; page++) {
        json_t *vals = json_pack("{s:{s:s}}", ":p", "S", pk);
        json_t *names = json_object();
        char kc[96] = "pk = :p";
        if (from && from[0] && to && to[0]) {
            snprintf(kc, sizeof(kc), "pk = :p AND sk BETWEEN :f AND :t");
            json_object_set_new(vals, ":f", s_attr(from));
            json_object_set_new(vals, ":t", s_attr(to));
        } else if (from && from[0]) {
            snprintf(kc, sizeof(kc), "pk = :p AND sk >= :f");
            json_object_set_new(vals, ":f", s_attr(from));
        }
        json_t *req = json_pack("{s:s, s:s, s:b}", "TableName", o->table, "KeyConditionExpression",
                                kc, "ConsistentRead", 1);
        if (filter) {
            json_object_set_new(vals, ":st", s_attr(filter));
            json_object_set_new(names, "#st", json_string("status"));
            json_object_set_new(req, "FilterExpression", json_string("#st = :st"));
            json_object_set_new(req, "ExpressionAttributeNames", names);
        } else {
            json_decref(names);
        }
        json_object_set_new(req, "ExpressionAttributeValues", vals);
        if (start)
            json_object_set_new(req, "ExclusiveStartKey", start);
        start = NULL;
        json_t *resp = NULL;
        rc = call(o, "Query", req, &resp, NULL);
        size_t i;
        json_t *it;
        json_array_foreach(rc ? NULL : json_object_get(resp, "Items"), i, it)
        {
            rc = fn(arg, it, &more);
            if (rc || !more)
                break;
        }
        if (!rc && more) {
            start = json_incref(json_object_get(resp, "LastEvaluatedKey"));
            more = start != NULL;
        }
        json_decref(resp);
    }
    json_decref(start);
    return rc;
}

struct collect {
    struct ddb_outbox *o;
    struct px_outbox_row *rows;
    json_t **items; /* the items themselves (claim), or NULL */
    size_t n, cap, max;
};

static px_rc collect_one(void *arg, const json_t *it, bool *more)
{
    struct collect *c = arg;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        struct px_outbox_row *t = realloc(c->rows, nc * sizeof(*t));
        if (!t)
            return PX_ERR_NOMEM;
        c->rows = t;
        if (c->items) {
            json_t **ti = realloc(c->items, nc * sizeof(*ti));
            if (!ti)
                return PX_ERR_NOMEM;
            c->items = ti;
        }
        c->cap = nc;
    }
    px_rc rc = read_item(it, &c->rows[c->n]);
    if (rc)
        return rc;
    c->rows[c->n].seq = (int64_t)c->n + 1;
    if (c->items)
        c->items[c->n] = json_incref((json_t *)it);
    c->n++;
    *more = c->n < c->max;
    return PX_OK;
}

static px_rc ddb_list(void *impl, bool failed_only, size_t max, struct px_outbox_row **rows,
                      size_t *n)
{
    struct collect c = {.o = impl, .max = max};
    px_rc rc = max ? query(impl, NULL, NULL, failed_only ? "failed" : NULL, collect_one, &c) : 0;
    if (rc) {
        px_outbox_rows_free(c.rows, c.n);
        return rc;
    }
    *rows = c.rows;
    *n = c.n;
    return PX_OK;
}

struct find_id {
    const char *id;
    char pk[PK_MAX], sk[SK_MAX];
    bool found, sent;
};

static px_rc find_one(void *arg, const json_t *it, bool *more)
{
    struct find_id *f = arg;
    const char *id = get_s(it, "id");
    if (id && strcmp(id, f->id) == 0) {
        f->found = true;
        f->sent = get_s(it, "status") && strcmp(get_s(it, "status"), "sent") == 0;
        snprintf(f->pk, sizeof(f->pk), "%s", get_s(it, "pk") ? get_s(it, "pk") : "");
        snprintf(f->sk, sizeof(f->sk), "%s", get_s(it, "sk") ? get_s(it, "sk") : "");
        *more = false;
    }
    return PX_OK;
}

static json_t *key_of(const char *pk, const char *sk)
{
    return json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", pk, "sk", "S", sk);
}

static px_rc ddb_retry(void *impl, const char *id)
{
    struct ddb_outbox *o = impl;
    struct find_id f = {.id = id};
    px_rc rc = query(o, NULL, NULL, NULL, find_one, &f);
    if (rc)
        return rc;
    if (!f.found)
        return PX_ERR_NOT_FOUND;
    if (f.sent)
        return PX_ERR_CONFLICT;
    rc = call(o, "UpdateItem",
              json_pack("{s:s, s:o, s:s, s:s, s:{s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}}}", "TableName",
                        o->table, "Key", key_of(f.pk, f.sk), "UpdateExpression",
                        "SET #st = :w, attempts = :z, next_ms = :z, lease_until = :z"
                        " REMOVE lease_owner",
                        "ConditionExpression", "#st <> :s", "ExpressionAttributeNames", "#st",
                        "status", "ExpressionAttributeValues", ":w", "S", "waiting", ":z", "N", "0",
                        ":s", "S", "sent"),
              NULL, NULL);
    return rc;
}

/* Leases one item to owner: only a waiting item whose lease is over or ours. */
static px_rc lease(struct ddb_outbox *o, const json_t *it, const char *owner, int64_t now_ms,
                   long lease_ms)
{
    char now[32], until[32];
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(until, sizeof(until), "%lld", (long long)(now_ms + lease_ms));
    return call(
        o, "UpdateItem",
        json_pack(
            "{s:s, s:o, s:s, s:s, s:{s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}", "TableName",
            o->table, "Key",
            key_of(get_s(it, "pk") ? get_s(it, "pk") : "", get_s(it, "sk") ? get_s(it, "sk") : ""),
            "UpdateExpression", "SET lease_owner = :me, lease_until = :u", "ConditionExpression",
            "#st = :w AND (lease_until <= :now OR lease_owner = :me)", "ExpressionAttributeNames",
            "#st", "status", "ExpressionAttributeValues", ":me", "S", owner, ":u", "N", until,
            ":now", "N", now, ":w", "S", "waiting"),
        NULL, NULL);
}

static px_rc ddb_claim(void *impl, const char *owner, int64_t now_ms, long lease_ms, size_t max,
                       struct px_outbox_row **rows, size_t *n)
{
    struct ddb_outbox *o = impl;
    size_t want = max * 4;
    struct collect c = {.o = o, .max = want ? want : 1};
    c.items = calloc(1, sizeof(json_t *));
    bool *taken = NULL;
    px_rc rc = c.items ? query(o, o->cursor, NULL, "waiting", collect_one, &c) : PX_ERR_NOMEM;
    /* The next claim starts at the first key of the last subject seen when the
     * window was full (its events stay together), else from the beginning. A
     * window that held one subject only is stepped over ('$' follows '#'), so
     * that a subject with a long queue that cannot move (leased elsewhere, in
     * backoff) does not keep the others waiting. */
    if (!rc && c.n == c.max && c.n > 0)
        snprintf(o->cursor, sizeof(o->cursor), "%s%s", c.rows[c.n - 1].subject,
                 strcmp(c.rows[0].subject, c.rows[c.n - 1].subject) == 0 ? "$" : "#");
    else if (!rc)
        o->cursor[0] = '\0';
    if (!rc && !(taken = calloc(c.n ? c.n : 1, sizeof(*taken))))
        rc = PX_ERR_NOMEM;
    size_t got = 0;
    for (size_t i = 0; !rc && i < c.n; i++) {
        const char *lo = get_s(c.items[i], "lease_owner");
        bool elsewhere = get_n(c.items[i], "lease_until") > now_ms && lo && strcmp(lo, owner) != 0;
        taken[i] = got < max && !elsewhere && c.rows[i].next_ms <= now_ms &&
                   !px_outbox_blocked(c.rows, taken, i);
        if (!taken[i])
            continue;
        px_rc lr = lease(o, c.items[i], owner, now_ms, lease_ms);
        if (lr == PX_ERR_CONFLICT) { /* another relay took it first: its subject waits */
            taken[i] = false;
            continue;
        }
        if (lr) {
            rc = lr;
            break;
        }
        c.rows[i].seq = remember(o, c.items[i]);
        got++;
    }
    size_t m = 0;
    for (size_t i = 0; i < c.n; i++) {
        json_decref(c.items[i]);
        if (!rc && taken[i])
            c.rows[m++] = c.rows[i];
        else
            free(c.rows[i].event);
    }
    free(c.items);
    free(taken);
    if (rc) {
        /* leases taken so far run out on their own */
        free(c.rows);
        return rc;
    }
    *rows = c.rows;
    *n = m;
    return PX_OK;
}

static px_rc found_one(void *arg, const json_t *it, bool *more)
{
    (void)it;
    *(bool *)arg = true;
    *more = false;
    return PX_OK;
}

static px_rc ddb_waiting_before(void *impl, const char *tenant, const char *subject, int64_t ord,
                                bool *before)
{
    char from[SK_MAX], to[SK_MAX];
    if (strcmp(tenant, PX_EVENT_TENANT) != 0 || ord <= 0)
        return PX_OK;
    snprintf(from, sizeof(from), "%s#", subject);
    px_outbox_ddb_sk(subject, ord - 1, to, sizeof(to));
    return query(impl, from, to, "waiting", found_one, before);
}

static px_rc ddb_mark(void *impl, int64_t seq, enum px_outbox_status s, const char *error,
                      int64_t next_ms, int64_t now_ms, bool count_attempt)
{
    struct ddb_outbox *o = impl;
    const struct seq_key *k = recall(o, seq);
    if (!k)
        return PX_ERR_NOT_FOUND;
    json_t *req = NULL;
    if (s == PX_OUTBOX_SENT) {
        char ts[32], exp[32];
        snprintf(ts, sizeof(ts), "%lld", (long long)now_ms);
        snprintf(exp, sizeof(exp), "%lld", (long long)(now_ms / 1000 + SENT_TTL_S));
        req = json_pack("{s:s, s:o, s:s, s:{s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}}",
                        "TableName", o->table, "Key", key_of(k->pk, k->sk), "UpdateExpression",
                        "SET #st = :s, sent_ms = :t, lease_until = :z, expiresAt = :e"
                        " REMOVE lease_owner, last_error",
                        "ExpressionAttributeNames", "#st", "status", "ExpressionAttributeValues",
                        ":s", "S", "sent", ":t", "N", ts, ":z", "N", "0", ":e", "N", exp);
    } else if (count_attempt) {
        char nx[32];
        char msg[PX_EVENT_ERROR_MAX];
        snprintf(nx, sizeof(nx), "%lld", (long long)next_ms);
        snprintf(msg, sizeof(msg), "%.500s", error && error[0] ? error : "-");
        req = json_pack("{s:s, s:o, s:s, s:s, s:{s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, "
                        "s:{s:s}, s:{s:s}}}",
                        "TableName", o->table, "Key", key_of(k->pk, k->sk), "UpdateExpression",
                        "SET attempts = attempts + :one, last_error = :e, next_ms = :n,"
                        " lease_until = :z, #st = :st REMOVE lease_owner",
                        "ConditionExpression", "#st = :w", "ExpressionAttributeNames", "#st",
                        "status", "ExpressionAttributeValues", ":one", "N", "1", ":e", "S", msg,
                        ":n", "N", nx, ":z", "N", "0", ":st", "S",
                        s == PX_OUTBOX_FAILED ? "failed" : "waiting", ":w", "S", "waiting");
    } else {
        req = json_pack("{s:s, s:o, s:s, s:{s:{s:s}}}", "TableName", o->table, "Key",
                        key_of(k->pk, k->sk), "UpdateExpression",
                        "SET lease_until = :z REMOVE lease_owner", "ExpressionAttributeValues",
                        ":z", "N", "0");
    }
    px_rc rc = call(o, "UpdateItem", req, NULL, NULL);
    return rc == PX_ERR_CONFLICT ? PX_OK : rc; /* no longer waiting: nothing to count */
}

struct counts {
    int64_t waiting, failed, oldest;
};

static px_rc count_one(void *arg, const json_t *it, bool *more)
{
    struct counts *c = arg;
    const char *s = get_s(it, "status");
    (void)more;
    if (s && strcmp(s, "waiting") == 0) {
        c->waiting++;
        int64_t cr = get_n(it, "created_ms");
        if (cr && (!c->oldest || cr < c->oldest))
            c->oldest = cr;
    } else if (s && strcmp(s, "failed") == 0) {
        c->failed++;
    }
    return PX_OK;
}

static px_rc ddb_stats(void *impl, int64_t *waiting, int64_t *failed, int64_t *oldest_ms)
{
    struct counts c = {0, 0, 0};
    px_rc rc = query(impl, NULL, NULL, NULL, count_one, &c);
    if (!rc) {
        *waiting = c.waiting;
        *failed = c.failed;
        *oldest_ms = c.oldest;
    }
    return rc;
}

const struct px_outbox_ops px_outbox_dynamodb_ops = {
    .open = ddb_open,
    .close = ddb_close,
    .list = ddb_list,
    .retry = ddb_retry,
    .claim = ddb_claim,
    .waiting_before = ddb_waiting_before,
    .mark = ddb_mark,
    .stats = ddb_stats,
};
