/* repository.h: product-service's data access: the product store, the price
 * store and the audit trail behind the app's store handles. */
#ifndef PX_PS_REPOSITORY_H
#define PX_PS_REPOSITORY_H

#include "kernel/app.h"
#include "store/audit.h"
#include "store/price.h"
#include "store/product.h"

/* The product store, or NULL when PRODUCT_STORE cannot be opened now. */
struct px_product_store *px_ps_repo_products(struct px_app *app);
/* Writes the price change (and its history row) in one price store transaction. */
px_rc px_ps_repo_price_set(struct px_app *app, const struct px_price_change *c) PX_WUR;
/* The price history of id, oldest first (at most 1000 rows). */
px_rc px_ps_repo_history(struct px_app *app, const char *tenant, const char *id, struct px_arena *a,
                         struct px_price_history_row **rows, size_t *n) PX_WUR;
/* Makes r durable before deadline_ms (epoch ms, 0 = the store's bound). */
px_rc px_ps_repo_audit(struct px_app *app, const struct px_audit_record *r,
                       int64_t deadline_ms) PX_WUR;

#endif
