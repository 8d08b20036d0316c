#include "repository.h"

struct px_config_store *px_cs_repo_store(struct px_app *app)
{
    return px_app_config_store(app);
}

px_rc px_cs_repo_audit(struct px_app *app, const struct px_audit_record *r, int64_t deadline_ms)
{
    return px_audit_append_until(px_app_audit(app), r, deadline_ms);
}
