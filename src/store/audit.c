/* audit.c: picks the audit backend from the spec's scheme, and the pieces
 * every backend shares: derived keys, the blocking append, the JSON form. */
#include "audit.h"
#include "../kernel/buf.h"
#include "../kernel/request.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct px_audit_store {
    const struct px_audit_ops *ops;
    void *impl;
};

static const struct px_audit_ops *pick(const char *spec, const char **target)
{
    if (strncmp(spec, "sqlite:", 7) == 0) {
        *target = spec + 7;
        return &px_audit_sqlite_ops;
    }
    if (strncmp(spec, "dynamodb:", 9) == 0) {
        *target = spec + 9;
        return &px_audit_dynamodb_ops;
    }
    return NULL;
}

px_rc px_audit_open(const char *spec, const struct px_audit_opts *opts, struct px_audit_store **out,
                    char *err, size_t errlen)
{
    static const struct px_audit_opts defaults = {.timeout_ms = 2000};
    const char *target = NULL;
    const struct px_audit_ops *ops = spec ? pick(spec, &target) : NULL;
    *out = NULL;
    if (!ops || !*target) {
        snprintf(err, errlen,
                 "AUDIT_STORE: unsupported store \"%.64s\" (use sqlite:PATH or "
                 "dynamodb:TABLE)",
                 spec ? spec : "");
        return PX_ERR_CONFIG;
    }
    struct px_audit_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "AUDIT_STORE: out of memory");
        return PX_ERR_NOMEM;
    }
    s->ops = ops;
    px_rc rc = ops->open(target, opts ? opts : &defaults, &s->impl, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return PX_OK;
}

void px_audit_close(struct px_audit_store *s)
{
    if (!s)
        return;
    if (s->impl && s->ops->close)
        s->ops->close(s->impl);
    free(s);
}

px_rc px_audit_submit(struct px_audit_store *s, const struct px_audit_record *r,
                      px_audit_done_fn done, void *arg)
{
    if (!s || !r || !done)
        return PX_ERR_INVALID;
    return s->ops->submit(s->impl, r, done, arg);
}

/* The blocking append waits on its own condition variable: one-shot callers
 * (invoke, Lambda) have no event loop to resume. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    px_rc rc;
};

static void wake(void *arg, px_rc rc)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->finished = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

px_rc px_audit_append(struct px_audit_store *s, const struct px_audit_record *r)
{
    struct waiter w = {.finished = false, .rc = PX_OK};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    px_rc rc = px_audit_submit(s, r, wake, &w);
    if (!rc) {
        /* The store promises done() within its own bound, so this wait ends. */
        pthread_mutex_lock(&w.mu);
        while (!w.finished)
            pthread_cond_wait(&w.cv, &w.mu);
        rc = w.rc;
        pthread_mutex_unlock(&w.mu);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

px_rc px_audit_query(struct px_audit_store *s, const struct px_audit_query *q, struct px_arena *a,
                     struct px_audit_page *out)
{
    if (!s || !q || !a || !out)
        return PX_ERR_INVALID;
    if (!q->user_id == !q->product_id || q->limit < 1 || q->limit > 1000)
        return PX_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    return s->ops->query(s->impl, q, a, out);
}

px_rc px_audit_ping(struct px_audit_store *s)
{
    if (!s)
        return PX_ERR_INVALID;
    return s->ops->ping(s->impl);
}

void px_audit_keys(const struct px_audit_record *r, char pk[64], char sk[128], char gsi1pk[96])
{
    snprintf(pk, 64, "USER#%s", r->user_id);
    snprintf(sk, 128, "AUDIT#%s#%s", r->ts, r->request_id);
    snprintf(gsi1pk, 96, "PRODUCT#%s", r->product_id);
}

px_rc px_audit_record_json(const struct px_audit_record *r, void *buf)
{
    struct px_buf *b = buf;
    char pk[64], sk[128], gsi1pk[96];
    px_audit_keys(r, pk, sk, gsi1pk);
    const struct px_kv fields[] = {
        {"pk", pk},
        {"sk", sk},
        {"gsi1pk", gsi1pk},
        {"gsi1sk", sk},
        {"action", r->action},
        {"status", r->status},
        {"userId", r->user_id},
        {"productId", r->product_id},
        {"requestId", r->request_id},
        {"correlationId", r->correlation_id},
        {"ts", r->ts},
        {"principal", r->principal[0] ? r->principal : NULL},
    };
    size_t start = b->len;
    px_rc rc = px_buf_add(b, "{", 1);
    for (size_t i = 0; !rc && i < PX_COUNTOF(fields); i++) {
        if (!fields[i].value)
            continue;
        rc = px_buf_printf(b, "%s\"%s\":", i ? "," : "", fields[i].key);
        if (!rc)
            rc = px_buf_json_strz(b, fields[i].value);
    }
    if (!rc)
        rc = px_buf_printf(b, ",\"expiresAt\":%lld}", (long long)r->expires_at);
    if (rc)
        b->len = start;
    return rc;
}
