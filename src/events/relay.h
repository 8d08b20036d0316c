/* relay.h: publishes what the outboxes hold (CONTRACT §10).
 *
 * One round: claim (lease) up to `batch` due events from every outbox, in
 * order per subject; publish each through the sink; mark it sent only after
 * the broker acknowledged it. A failed publish counts an attempt and waits
 * min(cap, base * 2^attempts) scaled by a random factor in [0.5, 1) (jitter)
 * before the next; after max_attempts it is parked (status failed) until
 * `pricing events retry`. Later events of a subject wait behind an earlier one
 * that is still waiting; a parked event no longer holds them back.
 *
 * At least once: an event is marked sent after its publish, so a relay that
 * dies in between leaves it waiting and leased; the lease expires and the
 * event is published again with the same id. Several relays may run: the
 * lease in the outbox row keeps one event with one relay at a time.
 *
 * Ownership: the relay borrows the sink and owns the outboxes it opens. */
#ifndef PX_RELAY_H
#define PX_RELAY_H

#include "sink.h"

#define PX_RELAY_MAX_OUTBOXES 8
/* _HANDLER of the scheduled Lambda function that runs relay rounds. */
#define PX_EVENT_RELAY_HANDLER "event-relay"

struct px_relay;

struct px_relay_opts {
    long max_attempts, base_ms, cap_ms, lease_ms, batch;
};

/* Totals since start (counters) and the outboxes' state at the last round. */
struct px_relay_stats {
    int64_t published, failed, parked; /* publishes that succeeded, failed, events parked */
    int64_t waiting, parked_now;       /* events waiting / parked now, all outboxes */
    int64_t lag_ms;                    /* age of the oldest waiting event, 0 when none */
};

/* The outboxes a configuration names, as specs: the product store's, the
 * price store's, the config store's. A new store with an outbox adds its spec here. Returns how
 * many were written to specs (at most cap); strings point into cfg. */
size_t px_events_outbox_specs(const struct px_config *cfg, const char **specs, size_t cap);

/* Opens the outboxes of cfg (px_events_outbox_specs) for sink. */
px_rc px_relay_new(const struct px_config *cfg, const struct px_relay_opts *opts,
                   struct px_sink *sink, struct px_relay **out, char *err, size_t errlen) PX_WUR;
/* Frees the relay (not the sink). Accepts NULL. */
void px_relay_free(struct px_relay *r);
/* One round; *published: events published in it. PX_ERR_UNAVAILABLE when
 * an outbox could not be read (the others were still served). */
px_rc px_relay_round(struct px_relay *r, size_t *published) PX_WUR;
/* Refreshes the outbox gauges of the stats (counts, lag). */
px_rc px_relay_refresh(struct px_relay *r) PX_WUR;
/* A copy of the stats. */
void px_relay_stats(const struct px_relay *r, struct px_relay_stats *out);

#endif
