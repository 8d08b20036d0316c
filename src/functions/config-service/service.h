/* service.h: config-service's decisions, free of HTTP: what a write stores,
 * what its audit record says (secret values never in clear), and the
 * fail-closed order of product-service (record durable first, then the
 * change; a second record when the change then fails). */
#ifndef PX_CS_SERVICE_H
#define PX_CS_SERVICE_H

#include "dto.h"
#include "kernel/app.h"

struct px_cs_write {
    const char *key;
    const char *value;            /* compact JSON text */
    bool create;                  /* If-None-Match: * (else If-Match: if_match) */
    long if_match;                /* expected version, -1 = any */
    struct px_config_item result; /* the item after the write, on PX_OK */
    bool audit_failed;            /* the record could not be made durable */
};

/* Runs one write under the item's lock. PX_ERR_CONFLICT (create: exists),
 * PX_ERR_NOT_FOUND, PX_ERR_STALE, PX_ERR_UNAVAILABLE / PX_ERR_TIMEOUT (a
 * store; w->audit_failed when it was the audit trail), PX_ERR_IO (the change
 * failed after its record: a second record says so). */
px_rc px_cs_write(struct px_app *app, const struct px_request *req, struct px_cs_write *w) PX_WUR;

/* The principal a write is recorded under: the authenticated subject, or
 * "local" when nobody authenticates (AUTH_MODE=none). */
const char *px_cs_principal(const struct px_request *req);

#endif
