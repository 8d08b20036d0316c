/* outbox.c: CloudEvents for the outbox, and the backend dispatch of the
 * relay's side (outbox_sqlite.c, outbox_pg.c). */
#include "outbox.h"
#include "../kernel/app.h"
#include "../kernel/buf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t px_event_ord(long version, unsigned step)
{
    return (int64_t)version * 8 + (int64_t)(step & 7u);
}

px_rc px_event_build(struct px_event *ev, struct px_arena *a, const char *type,
                     const char *function, const char *subject, const char *tenant, int64_t ord,
                     const char *data_json)
{
    struct px_buf b;
    px_rc rc = PX_OK;
    memset(ev, 0, sizeof(*ev));
    if (!type || !function || !subject || !subject[0] || strlen(subject) > PX_EVENT_SUBJ_MAX ||
        (tenant && !tenant[0]))
        return PX_ERR_INVALID;
    /* data is embedded raw: it must be one JSON value, or the event is not JSON. */
    json_error_t je;
    json_t *chk = json_loads(data_json ? data_json : "null", JSON_DECODE_ANY, &je);
    if (!chk)
        return PX_ERR_INVALID;
    json_decref(chk);
    px_new_request_id(ev->id);
    ev->time_ms = px_now_rfc3339(ev->time);
    ev->type = type;
    ev->tenant = tenant ? tenant : PX_EVENT_TENANT;
    ev->ord = ord;
    px_buf_init(&b, PX_EVENT_MAX_JSON);
    rc = px_buf_adds(&b, "{\"specversion\":\"1.0\",\"id\":");
    if (!rc)
        rc = px_buf_json_strz(&b, ev->id);
    if (!rc)
        rc = px_buf_adds(&b, ",\"source\":\"pricing/");
    if (!rc)
        rc = px_buf_add(&b, function, strcspn(function, "\"\\"));
    if (!rc)
        rc = px_buf_adds(&b, "\",\"type\":");
    if (!rc)
        rc = px_buf_json_strz(&b, type);
    if (!rc)
        rc = px_buf_adds(&b, ",\"time\":");
    if (!rc)
        rc = px_buf_json_strz(&b, ev->time);
    if (!rc)
        rc = px_buf_adds(&b, ",\"subject\":");
    if (!rc)
        rc = px_buf_json_strz(&b, subject);
    /* TENANCY=on: a CloudEvents extension attribute (lower-case a-z0-9 names
     * only, per the spec); TENANCY=off events stay as they always were. */
    if (!rc && tenant)
        rc = px_buf_adds(&b, ",\"tenantid\":");
    if (!rc && tenant)
        rc = px_buf_json_strz(&b, tenant);
    if (!rc)
        rc = px_buf_adds(&b, ",\"datacontenttype\":\"application/json\",\"data\":");
    if (!rc)
        rc = px_buf_adds(&b, data_json ? data_json : "null");
    if (!rc)
        rc = px_buf_adds(&b, "}");
    if (!rc) {
        ev->json = px_arena_strndup(a, b.data, b.len);
        ev->subject = px_arena_strdup(a, subject);
        if (tenant)
            ev->tenant = px_arena_strdup(a, tenant);
        if (!ev->json || !ev->subject || !ev->tenant)
            rc = PX_ERR_NOMEM;
    }
    px_buf_free(&b);
    return rc;
}

bool px_outbox_blocked(const struct px_outbox_row *rows, const bool *taken, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (!taken[j] && strcmp(rows[j].subject, rows[i].subject) == 0 &&
            strcmp(rows[j].tenant, rows[i].tenant) == 0)
            return true;
    return false;
}

const char *px_outbox_status_name(enum px_outbox_status s)
{
    switch (s) {
    case PX_OUTBOX_WAITING:
        return "waiting";
    case PX_OUTBOX_SENT:
        return "sent";
    case PX_OUTBOX_FAILED:
        return "failed";
    }
    return "waiting";
}

struct px_outbox {
    const struct px_outbox_ops *ops;
    void *impl;
    char name[256];
};

/* The spec without the password of a URI ("postgresql://u:***@h/db"). */
static void shown_name(const char *spec, char *out, size_t cap)
{
    const char *scheme = strstr(spec, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (at && colon && colon < at)
        snprintf(out, cap, "%.*s:***%s", (int)(colon - spec), spec, at);
    else
        snprintf(out, cap, "%s", spec);
}

px_rc px_outbox_open(const char *spec, const struct px_config *cfg, long timeout_ms,
                     struct px_outbox **out, char *err, size_t errlen)
{
    const struct px_outbox_ops *ops = NULL;
    const char *target = spec;
    *out = NULL;
    if (strncmp(spec, "sqlite:", 7) == 0) {
        ops = &px_outbox_sqlite_ops;
        target = spec + 7;
    } else if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0) {
        ops = &px_outbox_pg_ops;
    } else if (strncmp(spec, "dynamodb:", 9) == 0) {
        ops = &px_outbox_dynamodb_ops;
        target = spec + 9;
    } else {
        snprintf(err, errlen,
                 "outbox: no outbox in \"%.200s\" (sqlite:PATH, postgresql://... or "
                 "dynamodb:TABLE)",
                 spec);
        return PX_ERR_CONFIG;
    }
    struct px_outbox *o = calloc(1, sizeof(*o));
    if (!o)
        return PX_ERR_NOMEM;
    o->ops = ops;
    shown_name(spec, o->name, sizeof(o->name));
    px_rc rc = ops->open(target, cfg, timeout_ms, &o->impl, err, errlen);
    if (rc) {
        free(o);
        return rc;
    }
    *out = o;
    return PX_OK;
}

void px_outbox_close(struct px_outbox *o)
{
    if (!o)
        return;
    o->ops->close(o->impl);
    free(o);
}

const char *px_outbox_name(const struct px_outbox *o)
{
    return o ? o->name : "";
}

px_rc px_outbox_list(struct px_outbox *o, bool failed_only, size_t max, struct px_outbox_row **rows,
                     size_t *n)
{
    *rows = NULL;
    *n = 0;
    return o->ops->list(o->impl, failed_only, max, rows, n);
}

void px_outbox_rows_free(struct px_outbox_row *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++)
        free(rows[i].event);
    free(rows);
}

px_rc px_outbox_retry(struct px_outbox *o, const char *id)
{
    return o->ops->retry(o->impl, id);
}

px_rc px_outbox_claim(struct px_outbox *o, const char *owner, int64_t now_ms, long lease_ms,
                      size_t max, struct px_outbox_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    return o->ops->claim(o->impl, owner, now_ms, lease_ms, max, rows, n);
}

px_rc px_outbox_waiting_before(struct px_outbox *o, const char *tenant, const char *subject,
                               int64_t ord, bool *before)
{
    *before = false;
    return o->ops->waiting_before(o->impl, tenant, subject, ord, before);
}

px_rc px_outbox_mark_sent(struct px_outbox *o, int64_t seq, int64_t now_ms)
{
    return o->ops->mark(o->impl, seq, PX_OUTBOX_SENT, NULL, 0, now_ms, false);
}

px_rc px_outbox_mark_failed(struct px_outbox *o, int64_t seq, const char *error, int64_t next_ms,
                            bool park)
{
    return o->ops->mark(o->impl, seq, park ? PX_OUTBOX_FAILED : PX_OUTBOX_WAITING, error, next_ms,
                        0, true);
}

px_rc px_outbox_release(struct px_outbox *o, int64_t seq)
{
    return o->ops->mark(o->impl, seq, PX_OUTBOX_WAITING, NULL, 0, 0, false);
}

px_rc px_outbox_stats(struct px_outbox *o, int64_t *waiting, int64_t *failed, int64_t *oldest_ms)
{
    *waiting = *failed = *oldest_ms = 0;
    return o->ops->stats(o->impl, waiting, failed, oldest_ms);
}
