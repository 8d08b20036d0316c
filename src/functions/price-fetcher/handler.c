/* handler.c: HTTP shape of price-fetcher: validation errors, status codes,
 * and the audit gate (the response carries its record; the transport sends
 * it only once the record is durable). */
#include "handler.h"
#include "dto.h"
#include "repository.h"
#include "service.h"
#include "kernel/config_cache.h"
#include "kernel/errors.h"
#include "kernel/log.h"

#include <string.h>
#include <time.h>

#define BODY_CAP (4 * 1024 * 1024)

static px_rc send_buf(struct px_request *req, struct px_response *resp, int status,
                      struct px_buf *b)
{
    return px_response_json(req, resp, status, b->data ? b->data : "", b->len);
}

static void validation_failed(struct px_request *req, struct px_response *resp,
                              const struct px_validation *v)
{
    px_error_response(req, resp, PX_E_VALIDATION_FAILED, "the request is not valid", v->details,
                      v->ndetails);
}

/* Seconds a client is told to wait while flags.maintenance is on; the config
 * value maintenance.retry_after_s (an integer 1-86400) overrides it. */
#define MAINTENANCE_RETRY_AFTER_S 60

/* Answers 503 MAINTENANCE with Retry-After: flags.maintenance is on for this
 * look-up. Nothing is looked up, so nothing is audited (CONTRACT §9). */
static void maintenance(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    long after = MAINTENANCE_RETRY_AFTER_S;
    json_t *v =
        px_config_value(px_app_config_cache_for(app, req->tenant), "maintenance.retry_after_s");
    if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 86400)
        after = (long)json_integer_value(v);
    json_decref(v);
    px_error_response(req, resp, PX_E_MAINTENANCE, NULL, NULL, 0);
    const char *ra = px_arena_printf(req->arena, "%ld", after);
    if (!ra || px_response_header(resp, "Retry-After", ra))
        PX_WARN(req->request_id, "Retry-After could not be added");
}

static px_rc get_price(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    struct px_pf_price_in in;
    struct px_validation v = {.ndetails = 0};
    px_rc rc = px_pf_price_in_parse(req, &in, &v);
    if (rc == PX_ERR_INVALID) {
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (rc)
        return rc;

    /* Flags are evaluated for the user (targeting key) and the product, in one
     * look at the cache. flags.price-rollout-header is the rollout flag of
     * docs/internals/config.md: observable per user, changes nothing else. */
    static const char *const flag_keys[] = {"flags.maintenance", "flags.price-rollout-header"};
    static const bool flag_defs[] = {false, false};
    bool flag_on[2];
    const struct px_flag_attr attrs[] = {{"productId", in.id}};
    const struct px_flag_ctx fctx = {.targeting_key = in.user_id, .attrs = attrs, .nattrs = 1};
    px_config_flags_bool(px_app_config_cache_for(app, req->tenant), flag_keys, 2, &fctx, flag_defs,
                         flag_on);
    if (flag_on[0]) {
        maintenance(app, req, resp);
        return PX_OK;
    }
    bool rollout = flag_on[1];

    /* In the arena: the record must outlive this call until the transport has it durable. */
    struct px_pf_lookup *l = px_arena_alloc(req->arena, sizeof(*l));
    if (!l)
        return PX_ERR_NOMEM;
    px_pf_lookup(app, req, &in, l);

    struct px_buf b;
    px_buf_init(&b, BODY_CAP);
    switch (l->outcome) {
    case PX_PF_FOUND:
        rc = px_pf_price_json(&l->price, &b);
        if (!rc)
            rc = send_buf(req, resp, 200, &b);
        if (!rc && rollout)
            rc = px_response_header(resp, "X-Pricing-Rollout", "on");
        if (rc) {
            /* A stored value we cannot render is our fault, and still a look-up. */
            PX_ERROR(req->request_id, "price of a product cannot be rendered: %s", px_strerror(rc));
            memcpy(l->record.status, "ERROR", sizeof("ERROR"));
            px_error_response(req, resp, PX_E_INTERNAL, "internal error", NULL, 0);
        }
        break;
    case PX_PF_NOT_FOUND:
        px_error_response(req, resp, PX_E_NOT_FOUND, "no price for this product", NULL, 0);
        break;
    case PX_PF_STORE_FAILED:
        PX_WARN(req->request_id, "price store failed: %s", px_strerror(l->store_rc));
        px_error_response(req, resp, PX_E_DEPENDENCY_UNAVAILABLE,
                          "the price database is unavailable", NULL, 0);
        break;
    }
    px_buf_free(&b);
    resp->audit = &l->record;
    return PX_OK;
}

static px_rc get_audit(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    struct px_pf_audit_in in;
    struct px_validation v = {.ndetails = 0};
    px_rc rc = px_pf_audit_in_parse(req, &in, &v);
    if (rc == PX_ERR_INVALID) {
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (rc)
        return rc;

    struct px_audit_query q = {
        .user_id = in.user_id,
        .product_id = in.product_id,
        .from = in.from,
        .to = in.to,
        .limit = in.limit,
        .cursor = in.cursor,
        .now = (int64_t)time(NULL),
        .tenant = req->tenant,
    };
    struct px_audit_page page;
    rc = px_pf_repo_audit_page(app, &q, req->arena, &page);
    if (rc == PX_ERR_INVALID) {
        v.ndetails = 0;
        px_validation_add(&v, "cursor", "is not a cursor of this query");
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (rc) {
        PX_WARN(req->request_id, "audit query failed: %s", px_strerror(rc));
        px_error_response(req, resp, PX_E_DEPENDENCY_UNAVAILABLE, "the audit store is unavailable",
                          NULL, 0);
        return PX_OK;
    }
    struct px_buf b;
    px_buf_init(&b, BODY_CAP);
    rc = px_pf_audit_page_json(&page, &b);
    if (!rc)
        rc = send_buf(req, resp, 200, &b);
    px_buf_free(&b);
    return rc;
}

static const struct px_route routes[] = {
    {"GET", "/price", get_price, "price:read"},
    {"GET", "/audit", get_audit, "audit:read"},
};

const struct px_function px_fn_price_fetcher = {"price-fetcher", routes, PX_COUNTOF(routes)};
