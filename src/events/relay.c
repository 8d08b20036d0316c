/* relay.c: the outbox relay's rounds (relay.h). */
#include "relay.h"
#include "kernel/app.h"
#include "kernel/log.h"
#include "kernel/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct px_relay {
    struct px_relay_opts opts;
    struct px_sink *sink;
    struct px_outbox *ob[PX_RELAY_MAX_OUTBOXES];
    size_t nob;
    char owner[128];
    uint64_t rng;
    struct px_relay_stats st;
};

size_t px_events_outbox_specs(const struct px_config *cfg, const char **specs, size_t cap)
{
    size_t n = 0;
    /* The stores whose writes put events in their outbox. */
    const char *all[] = {cfg->product_store, cfg->price_db, cfg->config_store};
    for (size_t i = 0; i < PX_COUNTOF(all) && n < cap; i++) {
        bool ours = strncmp(all[i], "sqlite:", 7) == 0 || strncmp(all[i], "dynamodb:", 9) == 0 ||
                    strncmp(all[i], "postgresql://", 13) == 0 ||
                    strncmp(all[i], "postgres://", 11) == 0;
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || strcmp(specs[j], all[i]) == 0;
        /* A store left at its built-in default whose file was never made (a
         * Lambda with prices in PostgreSQL and no catalogue file) holds no
         * events; one configured explicitly must open, or the relay says so. */
        bool defaulted = strcmp(all[i], px_config_defaults.product_store) == 0 ||
                         strcmp(all[i], px_config_defaults.price_db) == 0 ||
                         strcmp(all[i], px_config_defaults.config_store) == 0;
        if (defaulted && access(all[i] + 7, F_OK) != 0)
            continue;
        if (ours && !dup)
            specs[n++] = all[i];
    }
    return n;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_rand(struct px_relay *r)
{
    /* xorshift64*: jitter only, not security. */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 2685821657736338717ULL;
}

/* Delay before attempt `attempts` + 1: exponential, capped, jittered to [d/2, d). */
static long backoff_ms(struct px_relay *r, long attempts)
{
    long d = r->opts.base_ms;
    for (long i = 1; i < attempts && d < r->opts.cap_ms; i++)
        d *= 2;
    if (d > r->opts.cap_ms)
        d = r->opts.cap_ms;
    long half = d / 2;
    return half + (half > 0 ? (long)(next_rand(r) % (uint64_t)half) : 0);
}

px_rc px_relay_new(const struct px_config *cfg, const struct px_relay_opts *opts,
                   struct px_sink *sink, struct px_relay **out, char *err, size_t errlen)
{
    const char *specs[PX_RELAY_MAX_OUTBOXES];
    size_t n = px_events_outbox_specs(cfg, specs, PX_COUNTOF(specs));
    *out = NULL;
    if (!n) {
        snprintf(err, errlen, "events: no store with an outbox is configured");
        return PX_ERR_CONFIG;
    }
    struct px_relay *r = calloc(1, sizeof(*r));
    if (!r)
        return PX_ERR_NOMEM;
    r->opts = *opts;
    r->sink = sink;
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    char id[37];
    px_new_request_id(id);
    snprintf(r->owner, sizeof(r->owner), "%.63s:%ld:%.8s", host, (long)getpid(), id);
    r->rng = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    px_rc rc = PX_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        rc = px_outbox_open(specs[i], cfg, 5000, &r->ob[i], err, errlen);
        if (!rc)
            r->nob++;
    }
    if (rc) {
        px_relay_free(r);
        return rc;
    }
    *out = r;
    return PX_OK;
}

void px_relay_free(struct px_relay *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nob; i++)
        px_outbox_close(r->ob[i]);
    free(r);
}

/* True when another outbox holds an earlier waiting event of ev's subject. */
static bool behind_elsewhere(struct px_relay *r, size_t self, const struct px_outbox_row *ev)
{
    for (size_t i = 0; i < r->nob; i++) {
        bool before = false;
        if (i == self)
            continue;
        /* Unknown (outbox unreachable): wait rather than risk the order. */
        if (px_outbox_waiting_before(r->ob[i], ev->tenant, ev->subject, ev->ord, &before) || before)
            return true;
    }
    return false;
}

static void round_one(struct px_relay *r, size_t k, size_t *published, px_rc *worst)
{
    struct px_outbox *ob = r->ob[k];
    struct px_outbox_row *rows = NULL;
    size_t n = 0;
    int64_t now = wall_ms();
    px_rc rc =
        px_outbox_claim(ob, r->owner, now, r->opts.lease_ms, (size_t)r->opts.batch, &rows, &n);
    if (rc) {
        PX_WARN(NULL, "events: cannot claim from %s: %s", px_outbox_name(ob), px_strerror(rc));
        *worst = rc;
        return;
    }
    bool *held = calloc(n ? n : 1, sizeof(*held)); /* held[i]: rows[i] was published */
    for (size_t i = 0; held && i < n; i++) {
        struct px_outbox_row *ev = &rows[i];
        /* In order per subject: not past an earlier event of this round that
         * did not go out, nor past an earlier one waiting in another outbox. */
        if (px_outbox_blocked(rows, held, i) || (r->nob > 1 && behind_elsewhere(r, k, ev))) {
            if (px_outbox_release(ob, ev->seq))
                PX_WARN(NULL, "events: cannot release %s", ev->id);
            continue;
        }
        char why[512];
        rc = px_sink_publish(r->sink, ev, why, sizeof(why));
        if (!rc) {
            rc = px_outbox_mark_sent(ob, ev->seq, wall_ms());
            r->st.published++;
            px_metrics_events(1, 0, 0);
            (*published)++;
            held[i] = true;
            if (rc) /* published; the lease runs out and it goes again (at least once) */
                PX_WARN(NULL, "events: %s published but not marked: %s", ev->id, px_strerror(rc));
            continue;
        }
        bool park = ev->attempts + 1 >= r->opts.max_attempts;
        long delay = backoff_ms(r, ev->attempts + 1);
        r->st.failed++;
        if (park)
            r->st.parked++;
        px_metrics_events(0, 1, park ? 1 : 0);
        PX_WARN(NULL, "events: publishing %s (%s, attempt %ld) failed: %s%s", ev->id, ev->type,
                ev->attempts + 1, why, park ? "; parked" : "");
        if (px_outbox_mark_failed(ob, ev->seq, why, wall_ms() + delay, park))
            PX_WARN(NULL, "events: cannot record the failure of %s", ev->id);
    }
    free(held);
    px_outbox_rows_free(rows, n);
}

px_rc px_relay_round(struct px_relay *r, size_t *published)
{
    px_rc worst = PX_OK;
    *published = 0;
    for (size_t k = 0; k < r->nob; k++)
        round_one(r, k, published, &worst);
    return worst;
}

px_rc px_relay_refresh(struct px_relay *r)
{
    int64_t waiting = 0, failed = 0, oldest = 0;
    px_rc worst = PX_OK;
    for (size_t k = 0; k < r->nob; k++) {
        int64_t w, f, o;
        px_rc rc = px_outbox_stats(r->ob[k], &w, &f, &o);
        if (rc) {
            worst = rc;
            continue;
        }
        waiting += w;
        failed += f;
        if (o && (!oldest || o < oldest))
            oldest = o;
    }
    r->st.waiting = waiting;
    r->st.parked_now = failed;
    r->st.lag_ms = oldest ? wall_ms() - oldest : 0;
    if (r->st.lag_ms < 0)
        r->st.lag_ms = 0;
    px_metrics_events_gauges(waiting, failed, r->st.lag_ms);
    return worst;
}

void px_relay_stats(const struct px_relay *r, struct px_relay_stats *out)
{
    *out = r->st;
}
