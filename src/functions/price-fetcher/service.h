/* service.h: price-fetcher's decisions, free of HTTP and storage details:
 * what a look-up answers and what its audit record says. */
#ifndef PX_PF_SERVICE_H
#define PX_PF_SERVICE_H

#include "dto.h"
#include "kernel/app.h"

enum px_pf_outcome {
    PX_PF_FOUND,
    PX_PF_NOT_FOUND,
    PX_PF_STORE_FAILED,
};

struct px_pf_lookup {
    enum px_pf_outcome outcome;
    px_rc store_rc;                /* the price store's answer when it failed */
    struct px_price price;         /* valid when FOUND */
    struct px_audit_record record; /* always filled: every validated look-up is audited */
};

/* Looks the price up and prepares the audit record that must be durable
 * before anything is answered. Never fails: a store failure is an outcome. */
void px_pf_lookup(struct px_app *app, const struct px_request *req, const struct px_pf_price_in *in,
                  struct px_pf_lookup *out);

/* Fills the identity part of an audit record (ids, principal, time, expiry). */
void px_pf_audit_record_init(struct px_audit_record *r, const struct px_request *req,
                             const char *user_id, const char *product_id, long retention_days);

#endif
