/* tenant.h: which tenant a request belongs to (TENANCY, CONTRACT §12).
 *
 * TENANCY=off: req->tenant stays NULL and every store works on the implicit
 * tenant "default" with the keys and records it always had. TENANCY=on: the
 * router calls px_tenant_resolve() once per request, after authentication and
 * before throttling and the handler, for every way in (serve, invoke, Lambda):
 *
 *   AUTH_MODE=none       X-Tenant-ID as given (local use only)
 *   a `tenant` claim     that tenant; an X-Tenant-ID naming another is 403
 *   a `tenants` claim    the one X-Tenant-ID names; 403 when not listed
 *   no tenant claim      403: the caller belongs to no tenant
 *
 * A missing, repeated or malformed X-Tenant-ID where one is needed is 400
 * VALIDATION_FAILED. A name is 1..64 of a-z 0-9 -. The resolved name lives in
 * the request arena (or is static). */
#ifndef PX_TENANT_H
#define PX_TENANT_H

#include "config.h"
#include "request.h"

#define PX_TENANT_DEFAULT "default"
#define PX_TENANT_MAX     64

/* Whether s is a tenant name: 1..PX_TENANT_MAX of a-z 0-9 -. */
bool px_tenant_valid(const char *s);

/* The tenant a store must use for req: req->tenant, or "default" (NULL req too). */
const char *px_tenant_of(const struct px_request *req);

/* Sets req->tenant per the rules above (tenancy off: leaves it NULL, PX_OK).
 * PX_ERR_INVALID: resp holds 400; PX_ERR_DENIED: resp holds 403; other codes:
 * resp holds 500. mode is the AUTH_MODE the request was authenticated with. */
px_rc px_tenant_resolve(bool tenancy, enum px_auth_mode mode, struct px_request *req,
                        struct px_response *resp) PX_WUR;

#endif
