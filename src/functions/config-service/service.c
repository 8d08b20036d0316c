#include "service.h"
#include "repository.h"
#include "kernel/config_cache.h"
#include "kernel/log.h"
#include "kernel/tenant.h"
#include "store/outbox.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *px_cs_principal(const struct px_request *req)
{
    return req->identity.subject && req->identity.subject[0] ? req->identity.subject : "local";
}

struct ctx {
    struct px_app *app;
    const struct px_request *req;
    struct px_cs_write *w;
    struct px_audit_record rec;
    bool recorded;
    bool failure_recorded;
};

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* {"value":<value or "[REDACTED]">,"version":N} in the arena. */
static const char *change_of(struct px_arena *a, const char *key, const char *value, long version)
{
    bool secret = px_cs_key_secret(key);
    struct px_buf b;
    px_buf_init(&b, PX_AUDIT_CHANGE_MAX);
    px_rc rc = px_buf_adds(&b, "{\"value\":");
    if (!rc)
        rc = secret ? px_buf_json_strz(&b, PX_CS_REDACTED) : px_buf_adds(&b, value);
    if (!rc)
        rc = px_buf_printf(&b, ",\"version\":%ld}", version);
    const char *out = rc ? NULL : px_arena_strdup(a, b.data);
    px_buf_free(&b);
    return out;
}

/* The change's pricing.config.changed.v1 event (CONTRACT §10): data
 * {"key","value","version","previous":{"value","version"}|null,"changedBy"};
 * a secret key's values are redacted as in its audit record, since the event
 * leaves the service. */
static px_rc build_event(struct ctx *c, const struct px_config_item *next, const char *before,
                         struct px_event **out)
{
    struct px_arena *a = c->req->arena;
    struct px_event *ev = px_arena_calloc(a, sizeof(*ev));
    struct px_buf b;
    px_buf_init(&b, PX_EVENT_MAX_JSON);
    px_rc rc = ev ? px_buf_adds(&b, "{\"key\":") : PX_ERR_NOMEM;
    if (!rc)
        rc = px_buf_json_strz(&b, next->key);
    if (!rc)
        rc = px_buf_adds(&b, ",\"value\":");
    if (!rc)
        rc = px_cs_key_secret(next->key) ? px_buf_json_strz(&b, PX_CS_REDACTED)
                                         : px_buf_adds(&b, next->value);
    if (!rc)
        rc = px_buf_printf(&b, ",\"version\":%ld,\"previous\":", next->version);
    if (!rc)
        rc = px_buf_adds(&b, before ? before : "null");
    if (!rc)
        rc = px_buf_adds(&b, ",\"changedBy\":");
    if (!rc)
        rc = px_buf_json_strz(&b, c->rec.principal);
    if (!rc)
        rc = px_buf_adds(&b, "}");
    if (!rc)
        /* TENANCY=on: the event is the tenant's (req->tenant NULL when off) */
        rc = px_event_build(ev, a, PX_EVENT_CONFIG_CHANGED, "config-service", next->key,
                            c->req->tenant, px_event_ord(next->version, 0), b.data);
    px_buf_free(&b);
    *out = rc ? NULL : ev;
    return rc;
}

/* The record saying a change whose record is durable did not happen: same
 * request id, a later ts, so its key differs. */
static void record_failure(struct ctx *c)
{
    struct px_audit_record r = c->rec;
    char ts[25];
    int64_t ms = px_now_rfc3339(ts);
    for (int i = 0; i < 50 && strcmp(ts, c->rec.ts) <= 0; i++) {
        const struct timespec ms1 = {0, 1000000L};
        nanosleep(&ms1, NULL);
        ms = px_now_rfc3339(ts);
    }
    memcpy(r.ts, ts, sizeof(ts));
    copy(r.status, sizeof(r.status), "FAILED");
    c->failure_recorded = true;
    r.expires_at = ms / 1000 + px_app_config(c->app)->audit_retention_days * 86400L;
    px_rc rc = px_cs_repo_audit(c->app, &r, 0);
    if (rc)
        PX_ERROR(c->req->request_id,
                 "the failure of a recorded CONFIG_CHANGE could not be "
                 "recorded: %s",
                 px_strerror(rc));
}

static px_rc on_apply(void *arg, const struct px_config_item *cur, struct px_config_item *next)
{
    struct ctx *c = arg;
    struct px_cs_write *w = c->w;
    struct px_arena *a = c->req->arena;
    next->value = w->value;
    next->updated_by = c->rec.principal;
    memcpy(next->updated_at, c->rec.ts, sizeof(next->updated_at));
    c->rec.before = cur ? change_of(a, w->key, cur->value, cur->version) : NULL;
    c->rec.after = change_of(a, w->key, next->value, next->version);
    if ((cur && !c->rec.before) || !c->rec.after)
        return PX_ERR_NOMEM;
    struct px_event *ev = NULL;
    px_rc rc = build_event(c, next, c->rec.before, &ev);
    if (rc)
        return rc;
    /* 1. the record, durably; 2. the change. Never the other way round. */
    rc = px_cs_repo_audit(c->app, &c->rec, c->req->deadline_ms);
    if (rc) {
        w->audit_failed = true;
        return rc;
    }
    c->recorded = true;
    w->result = *next;
    next->event = ev; /* written by the store with the item */
    return PX_OK;
}

px_rc px_cs_write(struct px_app *app, const struct px_request *req, struct px_cs_write *w)
{
    struct px_config_store *s = px_cs_repo_store(app);
    if (!s)
        return PX_ERR_UNAVAILABLE;
    struct ctx *c = px_arena_calloc(req->arena, sizeof(*c));
    if (!c)
        return PX_ERR_NOMEM;
    c->app = app;
    c->req = req;
    c->w = w;
    struct px_audit_record *r = &c->rec;
    copy(r->config_key, sizeof(r->config_key), w->key);
    copy(r->request_id, sizeof(r->request_id), req->request_id);
    copy(r->correlation_id, sizeof(r->correlation_id), req->correlation_id);
    copy(r->principal, sizeof(r->principal), px_cs_principal(req));
    if (req->tenant) /* TENANCY=on only: off leaves the record as it was */
        copy(r->tenant, sizeof(r->tenant), req->tenant);
    if (req->api_request_id && strlen(req->api_request_id) < sizeof(r->api_request_id))
        copy(r->api_request_id, sizeof(r->api_request_id), req->api_request_id);
    int64_t now_ms = px_now_rfc3339(r->ts);
    r->expires_at = now_ms / 1000 + px_app_config(app)->audit_retention_days * 86400L;
    copy(r->action, sizeof(r->action), "CONFIG_CHANGE");
    copy(r->status, sizeof(r->status), "SUCCESS");
    px_rc rc = px_config_store_apply(s, px_tenant_of(req), w->key,
                                     w->create ? PX_CONFIG_MUST_NOT_EXIST : PX_CONFIG_AT_VERSION,
                                     w->if_match, on_apply, c, req->arena);
    if (rc && c->recorded && !c->failure_recorded)
        record_failure(c); /* the record is durable and the change is not: say so */
    if (!rc)               /* this process sees its own change at once */
        px_config_cache_invalidate(px_app_config_cache_for(app, req->tenant));
    return rc;
}
