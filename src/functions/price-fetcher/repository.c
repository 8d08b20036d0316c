#include "repository.h"

px_rc px_pf_repo_price(struct px_app *app, const char *tenant, const char *product_id,
                       struct px_price *out)
{
    return px_price_get_in(px_app_prices(app), tenant, product_id, out);
}

px_rc px_pf_repo_audit_page(struct px_app *app, const struct px_audit_query *q, struct px_arena *a,
                            struct px_audit_page *out)
{
    return px_audit_query(px_app_audit(app), q, a, out);
}
