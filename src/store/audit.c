/* audit.c: picks the audit backend from the spec's scheme, and the pieces
 * every backend shares: derived keys, the blocking append, the JSON form. */
#include "audit.h"
#include "../kernel/buf.h"
#include "../kernel/request.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef PX_HAVE_LSM
#define PX_LSM_HINT "lsm:DIR "
#else
#define PX_LSM_HINT "" /* this build has no lsm store (-DPX_LSM=OFF) */
#endif

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
#ifdef PX_HAVE_LSM
    if (strncmp(spec, "lsm:", 4) == 0) {
        *target = spec + 4;
        return &px_audit_lsm_ops;
    }
#endif
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
                 "AUDIT_STORE: unsupported store \"%.64s\" (use sqlite:PATH, %sor "
                 "dynamodb:TABLE)",
                 spec ? spec : "", PX_LSM_HINT);
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
 * (invoke, Lambda) have no event loop to resume. The waiter lives on the heap
 * with two references, the caller's and the store's done(): a caller that
 * stops waiting at its deadline leaves, and whichever of the two lets go last
 * frees it, so a late done() never touches freed memory. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* guarded by mu */
    bool finished;
    px_rc rc;
};

static void waiter_unref(struct waiter *w)
{
    pthread_mutex_lock(&w->mu);
    bool last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (!last)
        return;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void wake(void *arg, px_rc rc)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->finished = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    waiter_unref(w);
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

px_rc px_audit_append_until(struct px_audit_store *s, const struct px_audit_record *r,
                            int64_t deadline_ms)
{
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return PX_ERR_NOMEM;
    pthread_condattr_t ca;
    if (pthread_mutex_init(&w->mu, NULL)) {
        free(w);
        return PX_ERR_NOMEM;
    }
    /* Monotonic, so a clock step cannot stretch or cut the wait. */
    if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
        pthread_cond_init(&w->cv, &ca)) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return PX_ERR_NOMEM;
    }
    pthread_condattr_destroy(&ca);
    w->refs = 2;
    w->rc = PX_OK;

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (deadline_ms > 0) {
        int64_t left = deadline_ms - PX_AUDIT_DEADLINE_MARGIN_MS - wall_ms();
        if (left < 0)
            left = 0;
        until.tv_sec += (time_t)(left / 1000);
        until.tv_nsec += (long)(left % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }

    px_rc rc = px_audit_submit(s, r, wake, w);
    if (rc) {
        w->refs = 1; /* done() will never come */
    } else {
        pthread_mutex_lock(&w->mu);
        /* Without a deadline the store's promise of done() within its own
         * bound ends the wait; with one, the deadline may end it first. */
        while (!w->finished) {
            if (deadline_ms <= 0) {
                pthread_cond_wait(&w->cv, &w->mu);
            } else if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT) {
                if (!w->finished)
                    break;
            }
        }
        rc = w->finished ? w->rc : PX_ERR_TIMEOUT;
        pthread_mutex_unlock(&w->mu);
    }
    waiter_unref(w);
    return rc;
}

px_rc px_audit_append(struct px_audit_store *s, const struct px_audit_record *r)
{
    return px_audit_append_until(s, r, 0);
}

px_rc px_audit_query(struct px_audit_store *s, const struct px_audit_query *q, struct px_arena *a,
                     struct px_audit_page *out)
{
    if (!s || !q || !a || !out)
        return PX_ERR_INVALID;
    if ((q->user_id != NULL) + (q->product_id != NULL) + (q->config_key != NULL) != 1 ||
        q->limit < 1 || q->limit > 1000)
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

px_rc px_audit_verify(struct px_audit_store *s, struct px_chain_verifier *v, char *err,
                      size_t errlen)
{
    if (!s || !v || !s->ops->verify)
        return PX_ERR_INVALID;
    return s->ops->verify(s->impl, v, err, errlen);
}

px_rc px_audit_scan(struct px_audit_store *s, const char *from, const char *to, px_audit_scan_fn fn,
                    void *arg, char *err, size_t errlen)
{
    if (!s || !fn || !s->ops->scan)
        return PX_ERR_INVALID;
    return s->ops->scan(s->impl, from, to, fn, arg, err, errlen);
}

px_rc px_audit_purge(struct px_audit_store *s, int64_t now, uint64_t *removed, char *err,
                     size_t errlen)
{
    *removed = 0;
    if (!s || !s->ops->purge)
        return PX_ERR_INVALID;
    return s->ops->purge(s->impl, now, removed, err, errlen);
}

px_rc px_audit_count(struct px_audit_store *s, uint64_t *count)
{
    if (!s || !count || !s->ops->count)
        return PX_ERR_INVALID;
    return s->ops->count(s->impl, count);
}

void px_audit_tenant_prefix(const char *tenant, char out[PX_AUDIT_TENANT_PREFIX_MAX])
{
    out[0] = '\0';
    if (tenant && tenant[0] && strcmp(tenant, "default") != 0)
        snprintf(out, PX_AUDIT_TENANT_PREFIX_MAX, "T#%.64s#", tenant);
}

const char *px_audit_tenant_from_key(struct px_audit_record *r, const char *key,
                                     const char *q_tenant)
{
    r->tenant[0] = '\0';
    if (key && strncmp(key, "T#", 2) == 0) {
        const char *end = strchr(key + 2, '#');
        size_t n = end ? (size_t)(end - key - 2) : 0;
        if (n && n < sizeof(r->tenant)) {
            memcpy(r->tenant, key + 2, n);
            r->tenant[n] = '\0';
            return end + 1;
        }
    }
    if (q_tenant)
        snprintf(r->tenant, sizeof(r->tenant), "default");
    return key;
}

void px_audit_keys(const struct px_audit_record *r, char pk[PX_AUDIT_PK_MAX], char sk[128],
                   char gsi1pk[PX_AUDIT_GSI1PK_MAX])
{
    char t[PX_AUDIT_TENANT_PREFIX_MAX];
    px_audit_tenant_prefix(r->tenant, t);
    if (r->user_id[0])
        snprintf(pk, PX_AUDIT_PK_MAX, "%sUSER#%s", t, r->user_id);
    else
        snprintf(pk, PX_AUDIT_PK_MAX, "%sACTOR#%s", t, r->principal);
    snprintf(sk, 128, "AUDIT#%s#%s", r->ts, r->request_id);
    if (r->config_key[0])
        snprintf(gsi1pk, PX_AUDIT_GSI1PK_MAX, "%sCONFIG#%s", t, r->config_key);
    else
        snprintf(gsi1pk, PX_AUDIT_GSI1PK_MAX, "%sPRODUCT#%s", t, r->product_id);
}

px_rc px_audit_record_json(const struct px_audit_record *r, void *buf)
{
    struct px_buf *b = buf;
    char pk[PX_AUDIT_PK_MAX], sk[128], gsi1pk[PX_AUDIT_GSI1PK_MAX];
    px_audit_keys(r, pk, sk, gsi1pk);
    const struct px_kv fields[] = {
        {"pk", pk},
        {"sk", sk},
        {"gsi1pk", gsi1pk},
        {"gsi1sk", sk},
        {"action", r->action},
        {"status", r->status},
        {"userId", r->user_id[0] ? r->user_id : NULL},
        {"productId", r->config_key[0] && !r->product_id[0] ? NULL : r->product_id},
        {"configKey", r->config_key[0] ? r->config_key : NULL},
        {"requestId", r->request_id},
        {"correlationId", r->correlation_id},
        {"ts", r->ts},
        {"principal", r->principal[0] ? r->principal : NULL},
        {"apiRequestId", r->api_request_id[0] ? r->api_request_id : NULL},
        {"tenantId", r->tenant[0] ? r->tenant : NULL},
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
    /* before/after are JSON the service rendered itself: embedded as they are. */
    if (!rc && r->before)
        rc = px_buf_printf(b, ",\"before\":%s", r->before);
    if (!rc && r->after)
        rc = px_buf_printf(b, ",\"after\":%s", r->after);
    if (!rc)
        rc = px_buf_printf(b, ",\"expiresAt\":%lld}", (long long)r->expires_at);
    if (rc)
        b->len = start;
    return rc;
}

size_t px_audit_record_extra(const struct px_audit_record *r)
{
    return (r->before ? strlen(r->before) + 1 : 0) + (r->after ? strlen(r->after) + 1 : 0);
}

void px_audit_record_copy(struct px_audit_record *dst, const struct px_audit_record *src,
                          char *space)
{
    *dst = *src;
    if (src->before) {
        size_t n = strlen(src->before) + 1;
        memcpy(space, src->before, n);
        dst->before = space;
        space += n;
    }
    if (src->after) {
        size_t n = strlen(src->after) + 1;
        memcpy(space, src->after, n);
        dst->after = space;
    }
}

bool px_audit_record_subject_ok(const struct px_audit_record *r)
{
    if (r->before && strnlen(r->before, PX_AUDIT_CHANGE_MAX + 1) > PX_AUDIT_CHANGE_MAX)
        return false;
    if (r->after && strnlen(r->after, PX_AUDIT_CHANGE_MAX + 1) > PX_AUDIT_CHANGE_MAX)
        return false;
    if (strnlen(r->user_id, sizeof(r->user_id)) >= sizeof(r->user_id) ||
        strnlen(r->principal, sizeof(r->principal)) >= sizeof(r->principal))
        return false;
    return r->user_id[0] || r->principal[0];
}
