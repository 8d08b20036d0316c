/* repository.h: price-fetcher's data access: the price store and the audit
 * trail behind the app's store handles. No SQL or wire format here: the
 * stores bind every parameter. */
#ifndef PX_PF_REPOSITORY_H
#define PX_PF_REPOSITORY_H

#include "kernel/app.h"
#include "store/price.h"
#include "store/audit.h"

/* Reads the price of product_id: PX_OK, PX_ERR_NOT_FOUND, or a store failure. */
px_rc px_pf_repo_price(struct px_app *app, const char *tenant, const char *product_id,
                       struct px_price *out) PX_WUR;
/* One page of audit records (strings in a). */
px_rc px_pf_repo_audit_page(struct px_app *app, const struct px_audit_query *q, struct px_arena *a,
                            struct px_audit_page *out) PX_WUR;

#endif
