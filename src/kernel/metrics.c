/* metrics.c: lock-free counters and their Prometheus rendering.
 *
 * Requests are counted in a small fixed table of (function, route) slots,
 * each with one counter per status of interest; a slot is claimed once with
 * a compare-and-swap and never released, so the hot path is a short scan and
 * one atomic add. */
#include "metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#define ROUTE_SLOTS 64
#define CLAIM_SPINS 100000
/* TENANCY=on: tenants with series of their own; later ones count as "other",
 * so a flood of tenant names cannot grow /metrics without bound. */
#define TENANT_SLOTS 32

/* Statuses counted exactly; others fall into their class (2xx, 4xx, ...). */
static const int exact_status[] = {200, 201, 204, 400, 401, 403, 404, 405,
                                   409, 413, 415, 429, 431, 500, 503};
#define NEXACT  PX_COUNTOF(exact_status)
#define NSTATUS (NEXACT + 6) /* + 1xx..5xx + anything else */

enum { SLOT_FREE, SLOT_CLAIMING, SLOT_READY };

struct route_slot {
    atomic_int state;
    const char *function; /* published by state = SLOT_READY (release) */
    const char *route;
    atomic_ulong count[NSTATUS];
};

/* Request latency in seconds; the low buckets matter: most answers take < 1 ms. */
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NLAT PX_COUNTOF(latency_bounds)

static const unsigned long batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
#define NBATCH PX_COUNTOF(batch_bounds)

/* A histogram of durations over latency_bounds. */
struct seconds_hist {
    atomic_ulong bucket[NLAT + 1]; /* per bucket, not cumulative; last = +Inf */
    atomic_ullong sum_us;
};

/* Requests of one tenant by status; the name is copied in (request strings
 * die with their arena) before state = SLOT_READY publishes it. */
struct tenant_slot {
    atomic_int state;
    char name[64 + 1];
    atomic_ulong count[NSTATUS];
};

static struct {
    struct tenant_slot tenants[TENANT_SLOTS];
    struct tenant_slot tenant_overflow;
    struct route_slot slots[ROUTE_SLOTS];
    struct route_slot overflow; /* when every slot is taken */
    struct seconds_hist latency, audit_wait, audit_write;
    atomic_ulong batch_bucket[NBATCH + 1];
    atomic_ullong batch_sum;
    atomic_ulong audit_ok, audit_failed;
    atomic_ulong price_found, price_not_found;
    atomic_ulong ev_published, ev_failed, ev_parked;
    atomic_llong ev_waiting, ev_parked_now, ev_lag_ms;
    atomic_int ev_relay; /* a relay runs in this process: render its series */
    atomic_ulong config_refresh[3];
} m;

static size_t status_index(int status)
{
    for (size_t i = 0; i < NEXACT; i++) {
        if (exact_status[i] == status)
            return i;
    }
    if (status >= 100 && status < 600)
        return NEXACT + (size_t)(status / 100 - 1);
    return NEXACT + 5;
}

static void status_label(size_t idx, char out[8])
{
    if (idx < NEXACT) {
        int s = exact_status[idx];
        out[0] = (char)('0' + s / 100);
        out[1] = (char)('0' + s / 10 % 10);
        out[2] = (char)('0' + s % 10);
        out[3] = '\0';
    } else if (idx < NEXACT + 5) {
        out[0] = (char)('1' + (idx - NEXACT));
        memcpy(out + 1, "xx", 3);
    } else {
        memcpy(out, "other", 6);
    }
}

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static struct route_slot *find_slot(const char *function, const char *route)
{
    for (size_t i = 0; i < ROUTE_SLOTS; i++) {
        struct route_slot *s = &m.slots[i];
        int st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == SLOT_FREE) {
            int expect = SLOT_FREE;
            if (atomic_compare_exchange_strong_explicit(&s->state, &expect, SLOT_CLAIMING,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                s->function = function;
                s->route = route;
                atomic_store_explicit(&s->state, SLOT_READY, memory_order_release);
                return s;
            }
            st = expect;
        }
        /* Another thread is filling this slot in: a few stores, so wait. */
        for (int spin = 0; st == SLOT_CLAIMING && spin < CLAIM_SPINS; spin++)
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st != SLOT_READY)
            return &m.overflow;
        if (same(s->function, function) && same(s->route, route))
            return s;
    }
    return &m.overflow;
}

static void hist_add(struct seconds_hist *h, double ms)
{
    if (!isfinite(ms) || ms < 0)
        ms = 0;
    double secs = ms / 1000.0;
    size_t b = 0;
    while (b < NLAT && secs > latency_bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    double us = ms * 1000.0;
    if (us > 1e15)
        us = 1e15;
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)llround(us), memory_order_relaxed);
}

static struct tenant_slot *find_tenant(const char *tenant)
{
    size_t n = strnlen(tenant, sizeof(m.tenant_overflow.name));
    if (n >= sizeof(m.tenant_overflow.name))
        return &m.tenant_overflow;
    for (size_t i = 0; i < TENANT_SLOTS; i++) {
        struct tenant_slot *s = &m.tenants[i];
        int st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == SLOT_FREE) {
            int expect = SLOT_FREE;
            if (atomic_compare_exchange_strong_explicit(&s->state, &expect, SLOT_CLAIMING,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire)) {
                memcpy(s->name, tenant, n + 1);
                atomic_store_explicit(&s->state, SLOT_READY, memory_order_release);
                return s;
            }
            st = expect;
        }
        for (int spin = 0; st == SLOT_CLAIMING && spin < CLAIM_SPINS; spin++)
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st != SLOT_READY)
            return &m.tenant_overflow;
        if (strcmp(s->name, tenant) == 0)
            return s;
    }
    return &m.tenant_overflow;
}

void px_metrics_tenant(const char *tenant, int status)
{
    if (!tenant)
        return;
    struct tenant_slot *s = find_tenant(tenant);
    atomic_fetch_add_explicit(&s->count[status_index(status)], 1, memory_order_relaxed);
}

void px_metrics_request(const char *function, const char *route, int status, double latency_ms)
{
    struct route_slot *s = find_slot(function, route);
    atomic_fetch_add_explicit(&s->count[status_index(status)], 1, memory_order_relaxed);

    hist_add(&m.latency, latency_ms);
}

void px_metrics_audit(bool ok)
{
    atomic_fetch_add_explicit(ok ? &m.audit_ok : &m.audit_failed, 1, memory_order_relaxed);
}

void px_metrics_audit_batch(size_t n)
{
    size_t b = 0;
    while (b < NBATCH && n > batch_bounds[b])
        b++;
    atomic_fetch_add_explicit(&m.batch_bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m.batch_sum, (unsigned long long)n, memory_order_relaxed);
}

void px_metrics_audit_write(double write_ms)
{
    hist_add(&m.audit_write, write_ms);
}

void px_metrics_audit_wait(double wait_ms)
{
    hist_add(&m.audit_wait, wait_ms);
}

void px_metrics_config(enum px_metrics_config what)
{
    if ((unsigned)what < PX_COUNTOF(m.config_refresh))
        atomic_fetch_add_explicit(&m.config_refresh[what], 1, memory_order_relaxed);
}

unsigned long px_metrics_config_total(enum px_metrics_config what)
{
    return (unsigned)what < PX_COUNTOF(m.config_refresh)
               ? atomic_load_explicit(&m.config_refresh[what], memory_order_relaxed)
               : 0;
}

void px_metrics_price(bool found)
{
    atomic_fetch_add_explicit(found ? &m.price_found : &m.price_not_found, 1, memory_order_relaxed);
}

/* Label value escaping of the text format: backslash, quote, newline. */
static px_rc add_label(struct px_buf *out, const char *v)
{
    px_rc rc = px_buf_adds(out, "\"");
    for (const char *p = v ? v : ""; !rc && *p; p++) {
        if (*p == '\\')
            rc = px_buf_adds(out, "\\\\");
        else if (*p == '"')
            rc = px_buf_adds(out, "\\\"");
        else if (*p == '\n')
            rc = px_buf_adds(out, "\\n");
        else
            rc = px_buf_add(out, p, 1);
    }
    if (!rc)
        rc = px_buf_adds(out, "\"");
    return rc;
}

static px_rc render_slot(struct px_buf *out, struct route_slot *s, const char *function,
                         const char *route)
{
    px_rc rc = PX_OK;
    for (size_t i = 0; !rc && i < NSTATUS; i++) {
        unsigned long v = atomic_load_explicit(&s->count[i], memory_order_relaxed);
        if (!v)
            continue;
        char code[8];
        status_label(i, code);
        rc = px_buf_adds(out, "pricing_http_requests_total{function=");
        if (!rc)
            rc = add_label(out, function);
        if (!rc)
            rc = px_buf_adds(out, ",route=");
        if (!rc)
            rc = add_label(out, route);
        if (!rc)
            rc = px_buf_printf(out, ",code=\"%s\"} %lu\n", code, v);
    }
    return rc;
}

static px_rc render_tenant(struct px_buf *out, struct tenant_slot *s, const char *name)
{
    px_rc rc = PX_OK;
    for (size_t i = 0; !rc && i < NSTATUS; i++) {
        unsigned long v = atomic_load_explicit(&s->count[i], memory_order_relaxed);
        if (!v)
            continue;
        char code[8];
        status_label(i, code);
        rc = px_buf_adds(out, "pricing_tenant_requests_total{tenant=");
        if (!rc)
            rc = add_label(out, name);
        if (!rc)
            rc = px_buf_printf(out, ",code=\"%s\"} %lu\n", code, v);
    }
    return rc;
}

/* Only once a tenant was counted (TENANCY=on): off, /metrics is as it was. */
static px_rc render_tenants(struct px_buf *out)
{
    if (atomic_load_explicit(&m.tenants[0].state, memory_order_acquire) == SLOT_FREE)
        return PX_OK;
    px_rc rc = px_buf_adds(out, "# HELP pricing_tenant_requests_total Requests answered, by "
                                "tenant (the first 32 seen; the rest as other) and status.\n"
                                "# TYPE pricing_tenant_requests_total counter\n");
    for (size_t i = 0; !rc && i < TENANT_SLOTS; i++) {
        struct tenant_slot *s = &m.tenants[i];
        if (atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_READY)
            continue;
        rc = render_tenant(out, s, s->name);
    }
    if (!rc)
        rc = render_tenant(out, &m.tenant_overflow, "other");
    return rc;
}

static px_rc render_requests(struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "# HELP pricing_http_requests_total Requests answered, by "
                                "function, route pattern and status.\n"
                                "# TYPE pricing_http_requests_total counter\n");
    for (size_t i = 0; !rc && i < ROUTE_SLOTS; i++) {
        struct route_slot *s = &m.slots[i];
        if (atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_READY)
            continue;
        rc = render_slot(out, s, s->function, s->route);
    }
    if (!rc)
        rc = render_slot(out, &m.overflow, "other", "other");
    return rc;
}

/* name and help are static text; name has no label. */
static px_rc render_hist(struct px_buf *out, const struct seconds_hist *h, const char *name,
                         const char *help)
{
    px_rc rc = px_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long cum = 0;
    for (size_t b = 0; !rc && b <= NLAT; b++) {
        cum += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
        if (b < NLAT)
            rc = px_buf_printf(out, "%s_bucket{le=\"%g\"} %lu\n", name, latency_bounds[b], cum);
        else
            rc = px_buf_printf(out, "%s_bucket{le=\"+Inf\"} %lu\n", name, cum);
    }
    unsigned long long us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
    if (!rc)
        rc = px_buf_printf(out, "%s_sum %llu.%06llu\n%s_count %lu\n", name, us / 1000000,
                           us % 1000000, name, cum);
    return rc;
}

static px_rc render_batches(struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "# HELP pricing_audit_batch_size Audit records per group "
                                "commit.\n"
                                "# TYPE pricing_audit_batch_size histogram\n");
    unsigned long cum = 0;
    for (size_t b = 0; !rc && b <= NBATCH; b++) {
        cum += atomic_load_explicit(&m.batch_bucket[b], memory_order_relaxed);
        if (b < NBATCH)
            rc = px_buf_printf(out, "pricing_audit_batch_size_bucket{le=\"%lu\"} %lu\n",
                               batch_bounds[b], cum);
        else
            rc = px_buf_printf(out, "pricing_audit_batch_size_bucket{le=\"+Inf\"} %lu\n", cum);
    }
    if (!rc)
        rc = px_buf_printf(out,
                           "pricing_audit_batch_size_sum %llu\n"
                           "pricing_audit_batch_size_count %lu\n",
                           atomic_load_explicit(&m.batch_sum, memory_order_relaxed), cum);
    return rc;
}

px_rc px_metrics_render(struct px_buf *out)
{
    px_rc rc = render_requests(out);
    if (!rc)
        rc = render_tenants(out);
    if (!rc)
        rc = render_hist(out, &m.latency, "pricing_http_request_duration_seconds",
                         "Time from request to answer.");
    if (!rc)
        rc = px_buf_printf(
            out,
            "# HELP pricing_audit_records_total Audit records made durable or failed.\n"
            "# TYPE pricing_audit_records_total counter\n"
            "pricing_audit_records_total{result=\"ok\"} %lu\n"
            "pricing_audit_records_total{result=\"failed\"} %lu\n",
            atomic_load_explicit(&m.audit_ok, memory_order_relaxed),
            atomic_load_explicit(&m.audit_failed, memory_order_relaxed));
    if (!rc)
        rc = render_batches(out);
    if (!rc)
        rc = render_hist(out, &m.audit_wait, "pricing_audit_commit_seconds",
                         "Time from an audit record queued to durable (embedded stores).");
    if (!rc)
        rc = render_hist(out, &m.audit_write, "pricing_audit_write_seconds",
                         "Time to write and sync one group commit (embedded stores).");
    if (!rc)
        rc = px_buf_printf(
            out,
            "# HELP pricing_price_lookups_total Price look-ups, by whether a price was found.\n"
            "# TYPE pricing_price_lookups_total counter\n"
            "pricing_price_lookups_total{result=\"found\"} %lu\n"
            "pricing_price_lookups_total{result=\"not_found\"} %lu\n",
            atomic_load_explicit(&m.price_found, memory_order_relaxed),
            atomic_load_explicit(&m.price_not_found, memory_order_relaxed));
    if (!rc && atomic_load_explicit(&m.ev_relay, memory_order_relaxed))
        rc = px_buf_printf(
            out,
            "# HELP pricing_events_published_total Events the relay published (broker ack).\n"
            "# TYPE pricing_events_published_total counter\n"
            "pricing_events_published_total %lu\n"
            "# HELP pricing_events_failed_total Publish attempts that failed.\n"
            "# TYPE pricing_events_failed_total counter\n"
            "pricing_events_failed_total %lu\n"
            "# HELP pricing_events_parked_total Events parked after their last attempt.\n"
            "# TYPE pricing_events_parked_total counter\n"
            "pricing_events_parked_total %lu\n"
            "# HELP pricing_events_waiting Events waiting in the outboxes.\n"
            "# TYPE pricing_events_waiting gauge\n"
            "pricing_events_waiting %lld\n"
            "# HELP pricing_events_parked Events parked (status failed) in the outboxes.\n"
            "# TYPE pricing_events_parked gauge\n"
            "pricing_events_parked %lld\n"
            "# HELP pricing_events_lag_seconds Age of the oldest waiting event.\n"
            "# TYPE pricing_events_lag_seconds gauge\n"
            "pricing_events_lag_seconds %.3f\n",
            atomic_load_explicit(&m.ev_published, memory_order_relaxed),
            atomic_load_explicit(&m.ev_failed, memory_order_relaxed),
            atomic_load_explicit(&m.ev_parked, memory_order_relaxed),
            (long long)atomic_load_explicit(&m.ev_waiting, memory_order_relaxed),
            (long long)atomic_load_explicit(&m.ev_parked_now, memory_order_relaxed),
            (double)atomic_load_explicit(&m.ev_lag_ms, memory_order_relaxed) / 1000.0);
    if (!rc)
        rc = px_buf_printf(
            out,
            "# HELP pricing_config_refreshes_total Config cache refreshes: read, or the store "
            "failed and the last known values (stale) or the defaults were served.\n"
            "# TYPE pricing_config_refreshes_total counter\n"
            "pricing_config_refreshes_total{result=\"ok\"} %lu\n"
            "pricing_config_refreshes_total{result=\"stale\"} %lu\n"
            "pricing_config_refreshes_total{result=\"defaults\"} %lu\n",
            atomic_load_explicit(&m.config_refresh[0], memory_order_relaxed),
            atomic_load_explicit(&m.config_refresh[1], memory_order_relaxed),
            atomic_load_explicit(&m.config_refresh[2], memory_order_relaxed));
    return rc;
}

void px_metrics_events(unsigned published, unsigned failed, unsigned parked)
{
    atomic_store_explicit(&m.ev_relay, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m.ev_published, published, memory_order_relaxed);
    atomic_fetch_add_explicit(&m.ev_failed, failed, memory_order_relaxed);
    atomic_fetch_add_explicit(&m.ev_parked, parked, memory_order_relaxed);
}

void px_metrics_events_gauges(int64_t waiting, int64_t parked, int64_t lag_ms)
{
    atomic_store_explicit(&m.ev_relay, 1, memory_order_relaxed);
    atomic_store_explicit(&m.ev_waiting, waiting, memory_order_relaxed);
    atomic_store_explicit(&m.ev_parked_now, parked, memory_order_relaxed);
    atomic_store_explicit(&m.ev_lag_ms, lag_ms, memory_order_relaxed);
}
