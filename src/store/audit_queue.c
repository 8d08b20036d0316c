/* audit_queue.c: the group-commit queue and writer thread of the embedded
 * audit stores, and their shared record, bound and cursor rules. */
#include "audit_queue.h"
#include "../kernel/b64.h"
#include "../kernel/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CURSOR_ENC_MAX ((PX_AUDIT_CURSOR_MAX * 4 + 2) / 3)

struct px_aq {
    struct px_aq_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct px_aq_item *head, *tail; /* guarded by mu */
    size_t qlen;
    bool stopping, probe;
    bool asleep; /* the writer waits on cv: only then does a submit need to wake it */
    pthread_t writer;
    struct px_aq_item **batch; /* writer thread only */
    atomic_uint_fast64_t batches, records, largest;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    return mono_us() / 1000;
}

static void run_batch(struct px_aq *q, size_t n)
{
    int64_t now = mono_ms(), oldest = now;
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        struct px_aq_item *it = q->batch[i];
        /* Past its bound already: its caller has answered 503, and writing it
         * now would make the trail claim a look-up that was refused. */
        if (now - it->enq_ms > q->o.timeout_ms) {
            it->rc = PX_ERR_TIMEOUT;
            continue;
        }
        it->rc = PX_OK;
        if (it->enq_ms < oldest)
            oldest = it->enq_ms;
        q->batch[live++] = it;
    }
    /* batch[0..live) now holds only the records to write; the timed-out
     * ones are still linked in the taken list and answered by the caller. */
    int64_t t0 = mono_us();
    if (live)
        q->o.write(q->o.ctx, q->batch, live, oldest);
    int64_t t1 = mono_us();
    size_t written = 0;
    for (size_t i = 0; i < live; i++) {
        if (q->batch[i]->rc != PX_OK)
            continue;
        written++;
        px_metrics_audit_wait((double)(t1 - q->batch[i]->enq_us) / 1000.0);
    }
    if (live)
        px_metrics_audit_write((double)(t1 - t0) / 1000.0);
    if (written) {
        atomic_fetch_add_explicit(&q->batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&q->records, written, memory_order_relaxed);
        px_metrics_audit_batch(written);
        if (written > atomic_load_explicit(&q->largest, memory_order_relaxed))
            atomic_store_explicit(&q->largest, written, memory_order_relaxed);
    }
}

static void *writer_main(void *arg)
{
    struct px_aq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping && !q->probe) {
            q->asleep = true;
            int w = 0;
            if (q->o.idle && q->o.idle_ms > 0) {
                struct timespec until;
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_sec += q->o.idle_ms / 1000;
                until.tv_nsec += (q->o.idle_ms % 1000) * 1000000;
                if (until.tv_nsec >= 1000000000) {
                    until.tv_sec++;
                    until.tv_nsec -= 1000000000;
                }
                w = pthread_cond_timedwait(&q->cv, &q->mu, &until);
            } else {
                pthread_cond_wait(&q->cv, &q->mu);
            }
            q->asleep = false;
            if (w == ETIMEDOUT && !q->head && !q->stopping) {
                pthread_mutex_unlock(&q->mu);
                q->o.idle(q->o.ctx);
                pthread_mutex_lock(&q->mu);
            }
        }
        if (!q->head && q->stopping)
            break;
        if (!q->head) {
            q->probe = false;
            pthread_mutex_unlock(&q->mu);
            if (q->o.probe)
                q->o.probe(q->o.ctx);
            pthread_mutex_lock(&q->mu);
            continue;
        }
        /* Taken in FIFO order into all[], so timed-out items can be answered
         * even though run_batch moves the live ones to the front. */
        size_t n = 0;
        struct px_aq_item *taken = q->head;
        while (q->head && n < q->o.max_batch) {
            struct px_aq_item *it = q->head;
            q->head = it->next;
            q->batch[n++] = it;
        }
        if (!q->head)
            q->tail = NULL;
        q->qlen -= n;
        pthread_mutex_unlock(&q->mu);
        run_batch(q, n);
        /* Only now, after the write returned, may anyone hear "durable". The
         * list links still hold all n items in arrival order. */
        struct px_aq_item *it = taken;
        for (size_t i = 0; i < n; i++) {
            struct px_aq_item *next = it->next;
            it->done(it->arg, it->rc);
            free(it);
            it = next;
        }
        if (q->o.after)
            q->o.after(q->o.ctx);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

px_rc px_aq_start(const struct px_aq_opts *opts, struct px_aq **out)
{
    *out = NULL;
    if (!opts || !opts->write || opts->timeout_ms <= 0 || !opts->max_batch || !opts->queue_cap)
        return PX_ERR_INVALID;
    struct px_aq *q = calloc(1, sizeof(*q));
    if (!q)
        return PX_ERR_NOMEM;
    q->o = *opts;
    q->batch = calloc(opts->max_batch, sizeof(*q->batch));
    if (!q->batch || pthread_mutex_init(&q->mu, NULL)) {
        free(q->batch);
        free(q);
        return PX_ERR_NOMEM;
    }
    /* The idle wait runs on the monotonic clock: a clock step cannot stretch it. */
    pthread_condattr_t ca;
    bool cv_ok = pthread_condattr_init(&ca) == 0;
    if (cv_ok) {
        cv_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                pthread_cond_init(&q->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cv_ok) {
        pthread_mutex_destroy(&q->mu);
        free(q->batch);
        free(q);
        return PX_ERR_NOMEM;
    }
    atomic_init(&q->batches, 0);
    atomic_init(&q->records, 0);
    atomic_init(&q->largest, 0);
    if (pthread_create(&q->writer, NULL, writer_main, q) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        free(q->batch);
        free(q);
        return PX_ERR_NOMEM;
    }
    *out = q;
    return PX_OK;
}

void px_aq_stop(struct px_aq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    /* The writer leaves only once the queue is empty: every done() called. */
    pthread_join(q->writer, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->batch);
    free(q);
}

px_rc px_aq_submit(struct px_aq *q, const struct px_audit_record *r, px_audit_done_fn done,
                   void *arg)
{
    if (!q || !r || !done || !px_audit_record_ok(r))
        return PX_ERR_INVALID;
    /* before/after travel in the same allocation, freed with the item. */
    struct px_aq_item *it = malloc(sizeof(*it) + px_audit_record_extra(r));
    if (!it)
        return PX_ERR_NOMEM;
    it->next = NULL;
    px_audit_record_copy(&it->rec, r, (char *)(it + 1));
    it->done = done;
    it->arg = arg;
    it->rc = PX_OK;
    it->enq_us = mono_us();
    it->enq_ms = it->enq_us / 1000;
    px_rc rc = PX_OK;
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        rc = PX_ERR_UNAVAILABLE;
    } else if (q->qlen >= q->o.queue_cap) {
        rc = PX_ERR_BUSY;
    } else {
        if (q->tail)
            q->tail->next = it;
        else
            q->head = it;
        q->tail = it;
        q->qlen++;
        /* A busy writer takes this record with its next batch: no wake-up needed. */
        if (q->asleep)
            pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (rc)
        free(it);
    return rc;
}

void px_aq_probe(struct px_aq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->probe = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void px_aq_stats(struct px_aq *q, uint64_t *batches, uint64_t *records, uint64_t *largest)
{
    *batches = atomic_load(&q->batches);
    *records = atomic_load(&q->records);
    *largest = atomic_load(&q->largest);
}

/* ---- records, bounds, cursors ---------------------------------------------------------- */

#define FIELD_OK(f, required) (strnlen((f), sizeof(f)) < sizeof(f) && (!(required) || (f)[0]))

bool px_audit_record_ok(const struct px_audit_record *r)
{
    char ts[25];
    /* A record names a product, or (a config change) a config key. */
    if (!px_audit_record_subject_ok(r) || !FIELD_OK(r->config_key, false) ||
        !FIELD_OK(r->product_id, !r->config_key[0]) || !FIELD_OK(r->request_id, true) ||
        !FIELD_OK(r->correlation_id, false) || !FIELD_OK(r->principal, false) ||
        !FIELD_OK(r->api_request_id, false) || !FIELD_OK(r->ts, true) ||
        !FIELD_OK(r->action, true) || !FIELD_OK(r->status, true))
        return false;
    return px_audit_ts_ms(r->ts, ts) == PX_OK && strcmp(ts, r->ts) == 0;
}

/* Decodes a cursor into the sort key it names; PX_ERR_INVALID for anything a
 * previous page could not have produced (strict: no padding, spare bits zero,
 * printable ASCII starting with AUDIT#). */
static px_rc cursor_decode(const char *cur, char out[PX_AUDIT_CURSOR_MAX + 1])
{
    size_t n = strnlen(cur, CURSOR_ENC_MAX + 1);
    if (n == 0 || n > CURSOR_ENC_MAX || n % 4 == 1)
        return PX_ERR_INVALID;
    size_t o = 0;
    if (px_b64_decode(cur, n, PX_B64_URL, 0, out, PX_AUDIT_CURSOR_MAX, &o) != PX_OK)
        return PX_ERR_INVALID;
    out[o] = '\0';
    if (o < 6 || o > PX_AUDIT_CURSOR_MAX || memcmp(out, "AUDIT#", 6) != 0)
        return PX_ERR_INVALID;
    for (size_t i = 0; i < o; i++)
        if ((unsigned char)out[i] < 0x21 || (unsigned char)out[i] > 0x7e)
            return PX_ERR_INVALID;
    return PX_OK;
}

px_rc px_audit_bounds(const struct px_audit_query *q, char lower[PX_AUDIT_CURSOR_MAX + 1],
                      char upper[40])
{
    char ts[25];
    lower[0] = '\0';
    /* '$' follows '#': every "AUDIT#..." key sorts below "AUDIT$", and every
     * key stamped exactly `to` below "AUDIT#<to>$". No key equals "AUDIT#<ts>"
     * (keys go on with "#<requestId>"), so an exclusive lower bound is `>= from`. */
    snprintf(upper, 40, "AUDIT$");
    if (q->from) {
        if (px_audit_ts_ms(q->from, ts))
            return PX_ERR_INVALID;
        snprintf(lower, PX_AUDIT_CURSOR_MAX + 1, "AUDIT#%s", ts);
    }
    if (q->to) {
        if (px_audit_ts_ms(q->to, ts))
            return PX_ERR_INVALID;
        snprintf(upper, 40, "AUDIT#%s$", ts);
    }
    if (q->cursor) {
        char after[PX_AUDIT_CURSOR_MAX + 1];
        if (cursor_decode(q->cursor, after))
            return PX_ERR_INVALID;
        if (strcmp(after, lower) > 0)
            memcpy(lower, after, strlen(after) + 1);
    }
    return PX_OK;
}

const char *px_audit_cursor_encode(struct px_arena *a, const char *sk)
{
    char enc[CURSOR_ENC_MAX + 1];
    size_t len = 0, n = strlen(sk);
    if (n > PX_AUDIT_CURSOR_MAX ||
        px_b64_encode((const unsigned char *)sk, n, PX_B64_URL, 0, enc, sizeof(enc), &len) != PX_OK)
        return NULL;
    return px_arena_strdup(a, enc);
}
