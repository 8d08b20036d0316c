#include "dto.h"

#include <stddef.h>
#include <string.h>

#define PARAM(n, t, req, st, m, lo, hi)                                                            \
    {                                                                                              \
        .name = n, .type = t, .required = req, .offset = offsetof(struct st, m), .min = lo,        \
        .max = hi                                                                                  \
    }

static const struct px_param_spec price_params[] = {
    PARAM("id", PX_P_PRODUCT_ID, true, px_pf_price_in, id, 0, 0),
    PARAM("userId", PX_P_UUID, true, px_pf_price_in, user_id, 0, 0),
};

static const struct px_param_spec audit_params[] = {
    PARAM("userId", PX_P_UUID, false, px_pf_audit_in, user_id, 0, 0),
    PARAM("productId", PX_P_PRODUCT_ID, false, px_pf_audit_in, product_id, 0, 0),
    PARAM("from", PX_P_TIMESTAMP, false, px_pf_audit_in, from, 0, 0),
    PARAM("to", PX_P_TIMESTAMP, false, px_pf_audit_in, to, 0, 0),
    PARAM("limit", PX_P_INT, false, px_pf_audit_in, limit, 1, 1000),
    PARAM("cursor", PX_P_TOKEN, false, px_pf_audit_in, cursor, 1, 1024),
};

const struct px_schema px_pf_price_schema = {price_params, PX_COUNTOF(price_params)};
const struct px_schema px_pf_audit_schema = {audit_params, PX_COUNTOF(audit_params)};

px_rc px_pf_price_in_parse(struct px_request *req, struct px_pf_price_in *in,
                           struct px_validation *v)
{
    memset(in, 0, sizeof(*in));
    return px_validate_query(&px_pf_price_schema, req, in, v);
}

px_rc px_pf_audit_in_parse(struct px_request *req, struct px_pf_audit_in *in,
                           struct px_validation *v)
{
    memset(in, 0, sizeof(*in));
    in->limit = 100;
    px_rc rc = px_validate_query(&px_pf_audit_schema, req, in, v);
    if (rc != PX_OK && rc != PX_ERR_INVALID)
        return rc;
    /* Cross-field rules come after the per-field ones so every failure is listed. */
    if (!in->user_id == !in->product_id && !req->query_invalid) {
        px_validation_add(v, in->user_id ? "productId" : "userId",
                          "exactly one of userId or productId is required");
        rc = PX_ERR_INVALID;
    }
    /* The stores convert the bounds with px_audit_ts_ms(): a bound passes here
     * only if it converts there, so a store never refuses one (and the error
     * names the bound, not the cursor). RFC 3339 allows second 60; no record
     * is ever stamped with it, and the stores refuse it. */
    char a[25], b[25];
    bool from_ok = in->from && px_audit_ts_ms(in->from, a) == PX_OK;
    bool to_ok = in->to && px_audit_ts_ms(in->to, b) == PX_OK;
    if (in->from && !from_ok) {
        px_validation_add(v, "from", "must be an RFC 3339 UTC timestamp (seconds 00-59)");
        rc = PX_ERR_INVALID;
    }
    if (in->to && !to_ok) {
        px_validation_add(v, "to", "must be an RFC 3339 UTC timestamp (seconds 00-59)");
        rc = PX_ERR_INVALID;
    }
    /* Both bounds share one format, so text order is time order once the
     * fraction is the same length; compare the instants, not the strings. */
    if (from_ok && to_ok && strcmp(a, b) > 0) {
        px_validation_add(v, "from", "must not be later than to");
        rc = PX_ERR_INVALID;
    }
    return rc;
}

px_rc px_pf_price_json(const struct px_price *p, struct px_buf *out)
{
    char num[64];
    px_rc rc = px_decimal_to_json(p->price, num, sizeof(num));
    if (!rc)
        rc = px_buf_adds(out, "{\"productId\":");
    if (!rc)
        rc = px_buf_json_strz(out, p->product_id);
    if (!rc)
        rc = px_buf_printf(out, ",\"price\":%s,\"currency\":", num);
    if (!rc)
        rc = px_buf_json_strz(out, p->currency);
    if (!rc)
        rc = px_buf_adds(out, "}");
    return rc;
}

px_rc px_pf_audit_page_json(const struct px_audit_page *page, struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "{\"items\":[");
    for (size_t i = 0; !rc && i < page->nitems; i++) {
        if (i)
            rc = px_buf_adds(out, ",");
        if (!rc)
            rc = px_audit_record_json(&page->items[i], out);
    }
    if (!rc)
        rc = px_buf_adds(out, "],\"nextCursor\":");
    if (!rc)
        rc = px_buf_json_strz(out, page->next_cursor);
    if (!rc)
        rc = px_buf_adds(out, "}");
    return rc;
}
