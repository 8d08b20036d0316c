#include "service.h"
#include "repository.h"
#include "kernel/log.h"
#include "store/outbox.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define CHANGE_MAX PX_AUDIT_CHANGE_MAX

const char *px_ps_principal(const struct px_request *req)
{
    return req->identity.subject && req->identity.subject[0] ? req->identity.subject : "local";
}

struct ctx {
    struct px_app *app;
    const struct px_request *req;
    struct px_ps_write *w;
    struct px_audit_record rec;
    char now[25];
    bool recorded;               /* rec is durable */
    bool failure_recorded;       /* and so is the record of its failure */
    struct px_event *product_ev; /* the product store's event of this write */
};

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static px_rc field(struct px_buf *b, bool *first, const char *name, const char *value, bool raw)
{
    px_rc rc = px_buf_printf(b, "%s\"%s\":", *first ? "" : ",", name);
    *first = false;
    if (!rc)
        rc = raw ? px_buf_adds(b, value) : px_buf_json_strz(b, value);
    return rc;
}

static px_rc price_field(struct px_buf *b, bool *first, const struct px_product *p)
{
    if (!p || !p->has_price)
        return field(b, first, "price", "null", true);
    px_rc rc = field(b, first, "price", "{\"amount\":", true);
    if (!rc)
        rc = px_buf_json_strz(b, p->amount);
    if (!rc)
        rc = px_buf_adds(b, ",\"currency\":");
    if (!rc)
        rc = px_buf_json_strz(b, p->currency);
    if (!rc)
        rc = px_buf_adds(b, "}");
    return rc;
}

static bool differ(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

/* before / after: the fields the change touches (CONTRACT §8). */
static px_rc changes(const struct px_product *cur, const struct px_product *next, enum px_ps_op op,
                     struct px_buf *before, struct px_buf *after)
{
    bool fb = true, fa = true;
    px_rc rc = px_buf_adds(before, "{");
    if (!rc)
        rc = px_buf_adds(after, "{");
    const struct {
        const char *name;
        const char *cur, *next;
        bool raw;
    } f[] = {
        {"name", cur ? cur->name : NULL, next->name, false},
        {"description", cur ? cur->description : NULL, next->description, false},
        {"category", cur ? cur->category : NULL, next->category, false},
        {"status", cur ? cur->status : NULL, next->status, false},
        {"attributes", cur ? cur->attributes : NULL, next->attributes, true},
    };
    if (op != PX_PS_PRICE) {
        for (size_t i = 0; !rc && i < PX_COUNTOF(f); i++) {
            if (cur && !differ(f[i].cur, f[i].next))
                continue;
            if (cur)
                rc = field(before, &fb, f[i].name, f[i].cur, f[i].raw);
            if (!rc)
                rc = field(after, &fa, f[i].name, f[i].next, f[i].raw);
        }
    }
    bool price_changed =
        (cur && cur->has_price) != next->has_price ||
        (next->has_price && cur &&
         (differ(cur->amount, next->amount) || differ(cur->currency, next->currency)));
    if (!rc && (op == PX_PS_PRICE || (cur && price_changed))) {
        rc = price_field(before, &fb, cur);
        if (!rc)
            rc = price_field(after, &fa, next);
    }
    if (!rc)
        rc = px_buf_adds(before, "}");
    if (!rc)
        rc = px_buf_adds(after, "}");
    return rc;
}

static const char *action_of(enum px_ps_op op)
{
    switch (op) {
    case PX_PS_CREATE:
        return "PRODUCT_CREATE";
    case PX_PS_REPLACE:
        return "PRODUCT_UPDATE";
    case PX_PS_DELETE:
        return "PRODUCT_DELETE";
    case PX_PS_PRICE:
        return "PRICE_CHANGE";
    }
    return "PRODUCT_UPDATE";
}

/* The record saying a change whose record is durable did not happen. Its
 * key must differ from the first one's: same request id, a later ts. */
static void record_failure(struct ctx *c)
{
    struct px_audit_record r = c->rec;
    char ts[25];
    int64_t ms = px_now_rfc3339(ts);
    /* A later millisecond, so its key differs from the first record's; bounded,
     * in case the clock was stepped back. */
    for (int i = 0; i < 50 && strcmp(ts, c->rec.ts) <= 0; i++) {
        const struct timespec ms1 = {0, 1000000L};
        nanosleep(&ms1, NULL);
        ms = px_now_rfc3339(ts);
    }
    memcpy(r.ts, ts, sizeof(ts));
    copy(r.status, sizeof(r.status), "FAILED");
    c->failure_recorded = true;
    r.expires_at = ms / 1000 + px_app_config(c->app)->audit_retention_days * 86400L;
    px_rc rc = px_ps_repo_audit(c->app, &r, 0);
    if (rc)
        PX_ERROR(c->req->request_id, "the failure of a recorded %s could not be recorded: %s",
                 r.action, px_strerror(rc));
}

#define EVENT_SOURCE "product-service"

static const char *event_type(enum px_ps_op op)
{
    switch (op) {
    case PX_PS_CREATE:
        return PX_EVENT_PRODUCT_CREATED;
    case PX_PS_DELETE:
        return PX_EVENT_PRODUCT_DELETED;
    case PX_PS_REPLACE:
    case PX_PS_PRICE:
        break;
    }
    return PX_EVENT_PRODUCT_UPDATED;
}

/* {"amount":<number>,"currency":..,"effectiveFrom":..} or null. */
static px_rc price_json(struct px_buf *b, const struct px_product *p)
{
    char num[64];
    if (!p || !p->has_price)
        return px_buf_adds(b, "null");
    px_rc rc = px_decimal_to_json(p->amount, num, sizeof(num));
    if (!rc)
        rc = px_buf_printf(b, "{\"amount\":%s,\"currency\":", num);
    if (!rc)
        rc = px_buf_json_strz(b, p->currency);
    if (!rc && p->effective_from[0]) {
        rc = px_buf_adds(b, ",\"effectiveFrom\":");
        if (!rc)
            rc = px_buf_json_strz(b, p->effective_from);
    }
    if (!rc)
        rc = px_buf_adds(b, "}");
    return rc;
}

/* The events of one write (CONTRACT §10): the product's own into the product
 * store's outbox (with the product row), a price change's into the price
 * store's (with the price row). A delete that withdraws a price has both;
 * the price's sorts first, as its transaction commits first. */
static px_rc build_events(struct ctx *c, const struct px_product *cur,
                          const struct px_product *next, bool price_write,
                          struct px_event **price_ev)
{
    struct px_arena *a = c->req->arena;
    struct px_buf b;
    px_rc rc = PX_OK;
    *price_ev = NULL;
    px_buf_init(&b, PX_EVENT_MAX_JSON);
    if (price_write) {
        struct px_event *ev = px_arena_calloc(a, sizeof(*ev));
        rc = ev ? px_buf_adds(&b, "{\"productId\":") : PX_ERR_NOMEM;
        if (!rc)
            rc = px_buf_json_strz(&b, next->id);
        if (!rc)
            rc = px_buf_adds(&b, ",\"price\":");
        if (!rc)
            rc = price_json(&b, next);
        if (!rc)
            rc = px_buf_adds(&b, ",\"previous\":");
        if (!rc)
            rc = price_json(&b, cur);
        if (!rc)
            rc = px_buf_printf(&b, ",\"version\":%ld,\"changedBy\":", next->version);
        if (!rc)
            rc = px_buf_json_strz(&b, c->rec.principal);
        if (!rc)
            rc = px_buf_adds(&b, "}");
        if (!rc)
            /* the outbox row's tenant and the event's tenantid (CONTRACT §12) */
            rc = px_event_build(ev, a, PX_EVENT_PRICE_CHANGED, EVENT_SOURCE, next->id,
                                c->req->tenant, px_event_ord(next->version, 0), b.data);
        if (!rc)
            *price_ev = ev;
    }
    if (!rc && c->w->op != PX_PS_PRICE) {
        struct px_event *ev = px_arena_calloc(a, sizeof(*ev));
        px_buf_clear(&b);
        rc = ev ? px_ps_product_json(next, &b) : PX_ERR_NOMEM;
        if (!rc)
            rc = px_event_build(ev, a, event_type(c->w->op), EVENT_SOURCE, next->id, c->req->tenant,
                                px_event_ord(next->version, 1), b.data);
        if (!rc)
            c->product_ev = ev;
    }
    px_buf_free(&b);
    return rc;
}

static px_rc on_apply(void *arg, const struct px_product *cur, struct px_product *next)
{
    struct ctx *c = arg;
    struct px_ps_write *w = c->w;
    struct px_arena *a = c->req->arena;
    if (w->op == PX_PS_PRICE && cur && strcmp(cur->status, "DISCONTINUED") == 0)
        return PX_ERR_CONFLICT;
    if (cur)
        *next = *cur;
    copy(next->id, sizeof(next->id), w->id);
    if (w->op == PX_PS_CREATE || w->op == PX_PS_REPLACE) {
        next->name = w->body->name;
        next->description = w->body->description;
        next->category = w->body->category;
        copy(next->status, sizeof(next->status), w->body->status);
        next->attributes = w->body->attributes;
    }
    if (w->op == PX_PS_CREATE)
        memcpy(next->created_at, c->now, sizeof(c->now));
    if (w->op == PX_PS_DELETE) {
        copy(next->status, sizeof(next->status), "DISCONTINUED");
        next->has_price = false;
        next->amount[0] = next->currency[0] = next->effective_from[0] = '\0';
    }
    if (w->op == PX_PS_PRICE) {
        next->has_price = true;
        copy(next->amount, sizeof(next->amount), w->price->amount);
        copy(next->currency, sizeof(next->currency), w->price->currency);
        memcpy(next->effective_from, c->now, sizeof(c->now));
    }
    next->version = cur ? cur->version + 1 : 1;
    memcpy(next->updated_at, c->now, sizeof(c->now));

    struct px_buf before, after;
    px_buf_init(&before, CHANGE_MAX);
    px_buf_init(&after, CHANGE_MAX);
    px_rc rc = changes(cur, next, w->op, &before, &after);
    if (!rc) {
        c->rec.before = cur ? px_arena_strdup(a, before.data) : NULL;
        c->rec.after = px_arena_strdup(a, after.data);
        if ((cur && !c->rec.before) || !c->rec.after)
            rc = PX_ERR_NOMEM;
    }
    px_buf_free(&before);
    px_buf_free(&after);
    if (rc)
        return rc;
    bool price_write = w->op == PX_PS_PRICE || (w->op == PX_PS_DELETE && cur && cur->has_price);
    struct px_event *price_ev = NULL;
    rc = build_events(c, cur, next, price_write, &price_ev);
    if (rc)
        return rc;

    /* 1. the record, durably; 2. the change. Never the other way round. */
    rc = px_ps_repo_audit(c->app, &c->rec, c->req->deadline_ms);
    if (rc) {
        w->audit_failed = true;
        return rc;
    }
    c->recorded = true;
    if (price_write) {
        const struct px_price_change pc = {
            .tenant = c->req->tenant,
            .product_id = w->id,
            .amount = w->op == PX_PS_PRICE ? next->amount : NULL,
            .currency = w->op == PX_PS_PRICE ? next->currency : NULL,
            .effective_from = c->now,
            .changed_by = c->rec.principal,
            .request_id = c->req->request_id,
            .event = price_ev,
        };
        rc = px_ps_repo_price_set(c->app, &pc);
        if (rc) {
            PX_WARN(c->req->request_id, "price store refused a recorded change: %s",
                    px_strerror(rc));
            return rc == PX_ERR_INVALID ? PX_ERR_INTERNAL : rc;
        }
    }
    next->event = c->product_ev; /* written by the store with the product */
    w->result = *next;
    w->result.event = NULL;
    return PX_OK;
}

px_rc px_ps_write(struct px_app *app, const struct px_request *req, struct px_ps_write *w)
{
    struct px_product_store *s = px_ps_repo_products(app);
    if (!s)
        return PX_ERR_UNAVAILABLE;
    struct ctx *c = px_arena_calloc(req->arena, sizeof(*c));
    if (!c)
        return PX_ERR_NOMEM;
    c->app = app;
    c->req = req;
    c->w = w;
    struct px_audit_record *r = &c->rec;
    copy(r->product_id, sizeof(r->product_id), w->id);
    copy(r->request_id, sizeof(r->request_id), req->request_id);
    copy(r->correlation_id, sizeof(r->correlation_id), req->correlation_id);
    copy(r->principal, sizeof(r->principal), px_ps_principal(req));
    if (req->tenant) /* TENANCY=on only: off leaves the record as it was */
        copy(r->tenant, sizeof(r->tenant), req->tenant);
    if (req->api_request_id && strlen(req->api_request_id) < sizeof(r->api_request_id))
        copy(r->api_request_id, sizeof(r->api_request_id), req->api_request_id);
    int64_t now_ms = px_now_rfc3339(r->ts);
    memcpy(c->now, r->ts, sizeof(c->now));
    r->expires_at = now_ms / 1000 + px_app_config(app)->audit_retention_days * 86400L;
    copy(r->action, sizeof(r->action), action_of(w->op));
    copy(r->status, sizeof(r->status), "SUCCESS");
    px_rc rc = px_product_apply_in(s, req->tenant, w->id,
                                   w->op == PX_PS_CREATE ? PX_PRODUCT_MUST_NOT_EXIST
                                                         : PX_PRODUCT_AT_VERSION,
                                   w->if_match, on_apply, c, req->arena);
    if (rc && c->recorded && !c->failure_recorded)
        record_failure(c); /* the record is durable and the change is not: say so */
    return rc;
}
