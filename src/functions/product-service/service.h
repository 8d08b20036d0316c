/* service.h: product-service's decisions, free of HTTP: what a write changes,
 * what its audit record says, and the fail-closed order (record durable
 * first, then the change; a second record when the change then fails). */
#ifndef PX_PS_SERVICE_H
#define PX_PS_SERVICE_H

#include "dto.h"
#include "kernel/app.h"

enum px_ps_op { PX_PS_CREATE, PX_PS_REPLACE, PX_PS_DELETE, PX_PS_PRICE };

struct px_ps_write {
    enum px_ps_op op;
    const char *id;
    long if_match;                       /* expected version (not for CREATE) */
    const struct px_ps_product_in *body; /* CREATE, REPLACE */
    const struct px_ps_price_in *price;  /* PRICE */
    struct px_product result;            /* the product after the write, on PX_OK */
    bool audit_failed;                   /* the record could not be made durable */
};

/* Runs one write under the product's lock. PX_ERR_CONFLICT (create: exists;
 * price: discontinued), PX_ERR_NOT_FOUND, PX_ERR_STALE (stale version),
 * PX_ERR_UNAVAILABLE / PX_ERR_TIMEOUT (a store; w->audit_failed when it was
 * the audit trail), PX_ERR_IO (the change failed after its record: a second
 * record says so). */
px_rc px_ps_write(struct px_app *app, const struct px_request *req, struct px_ps_write *w) PX_WUR;

/* The principal a write is recorded under: the authenticated subject, or
 * "local" when nobody authenticates (AUTH_MODE=none). */
const char *px_ps_principal(const struct px_request *req);

#endif
