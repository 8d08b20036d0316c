/* tenant.c: tenant resolution per CONTRACT §12 (see tenant.h). */
#include "tenant.h"

#include "errors.h"
#include "log.h"

#include <string.h>
#include <strings.h>

bool px_tenant_valid(const char *s)
{
    if (!s || !s[0])
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= PX_TENANT_MAX || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

const char *px_tenant_of(const struct px_request *req)
{
    return req && req->tenant ? req->tenant : PX_TENANT_DEFAULT;
}

/* The X-Tenant-ID header: *count of them, *value the first. */
static void tenant_header(const struct px_request *req, size_t *count, const char **value)
{
    *count = 0;
    *value = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].key && strcasecmp(req->headers[i].key, "x-tenant-id") == 0) {
            if (!*value)
                *value = req->headers[i].value;
            (*count)++;
        }
    }
}

static px_rc bad_header(struct px_request *req, struct px_response *resp, const char *reason)
{
    const struct px_err_detail d = {"X-Tenant-ID", reason};
    px_error_response(req, resp, PX_E_VALIDATION_FAILED, "the request names no usable tenant", &d,
                      1);
    return resp->status == 400 ? PX_ERR_INVALID : PX_ERR_INTERNAL;
}

static px_rc forbidden(struct px_request *req, struct px_response *resp, const char *why)
{
    /* Why goes to the log only: the client learns no tenant names. */
    PX_INFO(req->request_id, "access refused: %s", why);
    px_error_response(req, resp, PX_E_FORBIDDEN, "the caller may not act for this tenant", NULL, 0);
    return resp->status == 403 ? PX_ERR_DENIED : PX_ERR_INTERNAL;
}

/* The header where one is required: exactly one, well formed. */
static px_rc required_header(struct px_request *req, struct px_response *resp, const char **out)
{
    size_t count;
    const char *value;
    tenant_header(req, &count, &value);
    if (count == 0)
        return bad_header(req, resp, "required: the caller may act for several tenants");
    if (count > 1)
        return bad_header(req, resp, "must be given once");
    if (!px_tenant_valid(value))
        return bad_header(req, resp, "must be 1-64 of a-z 0-9 -");
    *out = value;
    return PX_OK;
}

px_rc px_tenant_resolve(bool tenancy, enum px_auth_mode mode, struct px_request *req,
                        struct px_response *resp)
{
    req->tenant = NULL;
    if (!tenancy)
        return PX_OK;
    const char *name = NULL;
    px_rc rc;
    if (mode == PX_AUTH_NONE) {
        rc = required_header(req, resp, &name);
        if (rc)
            return rc;
        req->tenant = name;
        return PX_OK;
    }
    const struct px_identity *id = &req->identity;
    if (id->tenant) {
        if (!px_tenant_valid(id->tenant))
            return forbidden(req, resp, "the token's tenant claim is not a tenant name");
        size_t count;
        const char *value;
        tenant_header(req, &count, &value);
        /* A header may repeat the claim, never override it. */
        if (count > 1 || (count == 1 && strcmp(value, id->tenant) != 0))
            return forbidden(req, resp, "X-Tenant-ID differs from the token's tenant claim");
        req->tenant = id->tenant;
        return PX_OK;
    }
    if (!id->tenants)
        return forbidden(req, resp, "the token names no tenant");
    rc = required_header(req, resp, &name);
    if (rc)
        return rc;
    for (size_t i = 0; id->tenants[i]; i++) {
        if (strcmp(id->tenants[i], name) == 0) {
            req->tenant = id->tenants[i];
            return PX_OK;
        }
    }
    return forbidden(req, resp, "X-Tenant-ID is not among the token's tenants");
}
