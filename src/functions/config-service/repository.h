/* repository.h: config-service's data access: the config store and the audit
 * trail behind the app's store handles. */
#ifndef PX_CS_REPOSITORY_H
#define PX_CS_REPOSITORY_H

#include "kernel/app.h"
#include "store/audit.h"
#include "store/config_store.h"

/* The config store, or NULL when CONFIG_STORE cannot be opened now. */
struct px_config_store *px_cs_repo_store(struct px_app *app);
/* Makes r durable before deadline_ms (epoch ms, 0 = the store's bound). */
px_rc px_cs_repo_audit(struct px_app *app, const struct px_audit_record *r,
                       int64_t deadline_ms) PX_WUR;

#endif
