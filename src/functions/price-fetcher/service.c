#include "service.h"
#include "repository.h"
#include "kernel/metrics.h"

#include <stdio.h>
#include <string.h>

/* Bounded copy that never splits the terminator off: record fields are
 * validated before they get here, so truncation would be a bug, not data. */
static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

void px_pf_audit_record_init(struct px_audit_record *r, const struct px_request *req,
                             const char *user_id, const char *product_id, long retention_days)
{
    memset(r, 0, sizeof(*r));
    copy(r->user_id, sizeof(r->user_id), user_id);
    copy(r->product_id, sizeof(r->product_id), product_id);
    copy(r->request_id, sizeof(r->request_id), req->request_id);
    copy(r->correlation_id, sizeof(r->correlation_id), req->correlation_id);
    copy(r->principal, sizeof(r->principal), req->identity.subject);
    if (req->tenant) /* TENANCY=on only: off leaves the record as it was */
        copy(r->tenant, sizeof(r->tenant), req->tenant);
    /* The gateway's id comes from the event: an oversized one is left out, not cut. */
    if (req->api_request_id && strlen(req->api_request_id) < sizeof(r->api_request_id))
        copy(r->api_request_id, sizeof(r->api_request_id), req->api_request_id);
    int64_t now_ms = px_now_rfc3339(r->ts);
    r->expires_at = now_ms / 1000 + (int64_t)retention_days * 86400;
    copy(r->action, sizeof(r->action), "PRICE_FETCH");
}

void px_pf_lookup(struct px_app *app, const struct px_request *req, const struct px_pf_price_in *in,
                  struct px_pf_lookup *out)
{
    memset(out, 0, sizeof(*out));
    px_rc rc = px_pf_repo_price(app, req->tenant, in->id, &out->price);
    const char *status;
    if (rc == PX_OK) {
        out->outcome = PX_PF_FOUND;
        status = "SUCCESS";
    } else if (rc == PX_ERR_NOT_FOUND) {
        out->outcome = PX_PF_NOT_FOUND;
        status = "NOT_FOUND";
    } else {
        out->outcome = PX_PF_STORE_FAILED;
        out->store_rc = rc;
        status = "ERROR";
    }
    if (out->outcome != PX_PF_STORE_FAILED)
        px_metrics_price(out->outcome == PX_PF_FOUND);
    px_pf_audit_record_init(&out->record, req, in->user_id, in->id,
                            px_app_config(app)->audit_retention_days);
    copy(out->record.status, sizeof(out->record.status), status);
}
