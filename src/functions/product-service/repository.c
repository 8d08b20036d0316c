#include "repository.h"

struct px_product_store *px_ps_repo_products(struct px_app *app)
{
    return px_app_products(app);
}

px_rc px_ps_repo_price_set(struct px_app *app, const struct px_price_change *c)
{
    return px_price_set(px_app_prices(app), c);
}

px_rc px_ps_repo_history(struct px_app *app, const char *tenant, const char *id, struct px_arena *a,
                         struct px_price_history_row **rows, size_t *n)
{
    return px_price_history_in(px_app_prices(app), tenant, id, 1000, a, rows, n);
}

px_rc px_ps_repo_audit(struct px_app *app, const struct px_audit_record *r, int64_t deadline_ms)
{
    return px_audit_append_until(px_app_audit(app), r, deadline_ms);
}
