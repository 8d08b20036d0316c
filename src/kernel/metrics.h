/* metrics.h: process-wide counters, rendered for GET /metrics.
 *
 * Every counter is a C11 atomic: recording takes no lock and never fails, so
 * it is safe on the hot path of any thread. Names start with `pricing_`; the
 * output is Prometheus text exposition format 0.0.4. Counters live as long as
 * the process and are never reset (Prometheus handles restarts). */
#ifndef PX_METRICS_H
#define PX_METRICS_H

#include "buf.h"

/* Counts one answered request and its latency. function and route must be
 * static strings (the route table's own name and pattern) or NULL for a
 * request that matched no route. */
void px_metrics_request(const char *function, const char *route, int status, double latency_ms);
/* TENANCY=on: counts one answered request of tenant (copied; NULL: none) in
 * pricing_tenant_requests_total; past 32 tenants they count as "other". */
void px_metrics_tenant(const char *tenant, int status);
/* Counts one audit record made durable (ok) or failed. */
void px_metrics_audit(bool ok);
/* Records the size of one group commit of audit records. */
void px_metrics_audit_batch(size_t n);
/* Records how long one group commit took to write and sync. */
void px_metrics_audit_write(double write_ms);
/* Records how long one audit record waited from queued to durable. */
void px_metrics_audit_wait(double wait_ms);
/* Counts one price look-up that found a price or did not. */
void px_metrics_price(bool found);

/* Counts the event relay's publishes (relay.h); from the first call on,
 * the pricing_events_* series are rendered. */
void px_metrics_events(unsigned published, unsigned failed, unsigned parked);
/* Sets the relay's outbox gauges: waiting and parked events, lag (ms). */
void px_metrics_events_gauges(int64_t waiting, int64_t parked, int64_t lag_ms);
/* What a config cache refresh did (config_cache.h). */
enum px_metrics_config {
    PX_METRICS_CONFIG_REFRESHED, /* read the store */
    PX_METRICS_CONFIG_STALE,     /* the store failed: last known values kept */
    PX_METRICS_CONFIG_DEFAULTS,  /* the store failed past the hard bound: defaults */
};
/* Counts one config cache refresh by its outcome. */
void px_metrics_config(enum px_metrics_config what);
/* Refreshes of that outcome so far (Lambda's metric line reports the change). */
unsigned long px_metrics_config_total(enum px_metrics_config what);

/* Appends every metric, with HELP and TYPE lines, to out. */
px_rc px_metrics_render(struct px_buf *out) PX_WUR;

#endif
