/* audit_queue.h: group commit for embedded audit stores, and the record,
 * bound and cursor rules every embedded store shares.
 *
 * A queue owns one writer thread. px_aq_submit() copies the record into a heap
 * item and appends it to a FIFO; the writer takes everything waiting (up to
 * max_batch), fails the items whose caller has given up already (older than
 * timeout_ms: PX_ERR_TIMEOUT, not written), hands the rest to the backend's
 * write function in one call, and only after it returned calls each done().
 * While one batch syncs the next gathers, so batches grow with load without a
 * timer. The backend's write function is the only place that touches storage;
 * it runs on the writer thread only. */
#ifndef PX_AUDIT_QUEUE_H
#define PX_AUDIT_QUEUE_H

#include "audit.h"

#include <stdint.h>

struct px_aq;

/* One queued record. The backend sets rc for each item it is given. */
struct px_aq_item {
    struct px_aq_item *next;
    struct px_audit_record rec;
    px_audit_done_fn done;
    void *arg;
    int64_t enq_ms; /* monotonic */
    int64_t enq_us; /* the same instant in microseconds, for the commit-time histogram */
    px_rc rc;
};

/* Writes items[0..n) (all with rc == PX_OK on entry) durably, or not at all,
 * and sets each item's rc: PX_OK only once the record is on stable storage.
 * oldest_enq_ms bounds how long the backend may wait for a lock. */
typedef void (*px_aq_write_fn)(void *ctx, struct px_aq_item **items, size_t n,
                               int64_t oldest_enq_ms);
/* Called on the writer thread when readiness asked for a reconnect (px_aq_probe),
 * and after each batch's done() calls (housekeeping off the answer path). May be NULL. */
typedef void (*px_aq_hook_fn)(void *ctx);

struct px_aq_opts {
    long timeout_ms;    /* > 0 */
    unsigned max_batch; /* > 0 */
    size_t queue_cap;   /* > 0 */
    px_aq_write_fn write;
    px_aq_hook_fn probe, after; /* optional */
    /* Called on the writer thread after idle_ms without a record (0: never),
     * so a store can notice faults while no traffic comes. */
    px_aq_hook_fn idle;
    long idle_ms;
    void *ctx;
};

/* Starts the writer thread. *out owned by the caller: px_aq_stop() frees it. */
px_rc px_aq_start(const struct px_aq_opts *opts, struct px_aq **out) PX_WUR;
/* Stops accepting, lets the writer finish every queued record (each done()
 * called), joins it and frees q. Accepts NULL. */
void px_aq_stop(struct px_aq *q);
/* Queues a copy of r. PX_ERR_INVALID (px_audit_record_ok fails), PX_ERR_BUSY
 * (queue full), PX_ERR_UNAVAILABLE (stopping): done is then NOT called. */
px_rc px_aq_submit(struct px_aq *q, const struct px_audit_record *r, px_audit_done_fn done,
                   void *arg) PX_WUR;
/* Asks the writer to run the probe hook soon (readiness reconnect). */
void px_aq_probe(struct px_aq *q);
/* Figures since start over batches with at least one record written: batches,
 * records, largest batch. */
void px_aq_stats(struct px_aq *q, uint64_t *batches, uint64_t *records, uint64_t *largest);

/* true when every field is NUL-terminated, the required ones are non-empty and
 * ts is exactly the stored form YYYY-MM-DDTHH:MM:SS.mmmZ (sort keys order by it). */
bool px_audit_record_ok(const struct px_audit_record *r);

#define PX_AUDIT_CURSOR_MAX 160 /* decoded bytes */

/* Sort-key bounds of a query, both exclusive: lower is the larger of
 * "AUDIT#<from>" and the cursor's key ("" when neither), upper "AUDIT#<to>$"
 * or "AUDIT$". PX_ERR_INVALID for a bad from, to or cursor. */
px_rc px_audit_bounds(const struct px_audit_query *q, char lower[PX_AUDIT_CURSOR_MAX + 1],
                      char upper[40]) PX_WUR;
/* The cursor naming sort key sk: base64url without padding, into the arena.
 * NULL when out of memory or sk is too long. */
const char *px_audit_cursor_encode(struct px_arena *a, const char *sk);

#endif
