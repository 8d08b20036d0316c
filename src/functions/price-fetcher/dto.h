/* dto.h: the typed inputs and the JSON outputs of price-fetcher.
 *
 * The schemas are the single source of truth for what /price and /audit
 * accept; handlers only ever see the structs below, filled and checked.
 * All strings point into the request arena. */
#ifndef PX_PF_DTO_H
#define PX_PF_DTO_H

#include "kernel/validate.h"
#include "kernel/buf.h"
#include "store/price.h"
#include "store/audit.h"

struct px_pf_price_in {
    const char *id;
    const char *user_id; /* lower case */
};

struct px_pf_audit_in {
    const char *user_id;
    const char *product_id;
    const char *from, *to;
    const char *cursor;
    long limit;
};

extern const struct px_schema px_pf_price_schema;
extern const struct px_schema px_pf_audit_schema;

/* Validates /price's query into in; failures listed in v. */
px_rc px_pf_price_in_parse(struct px_request *req, struct px_pf_price_in *in,
                           struct px_validation *v) PX_WUR;
/* Validates /audit's query (incl. exactly one of userId/productId, from <= to). */
px_rc px_pf_audit_in_parse(struct px_request *req, struct px_pf_audit_in *in,
                           struct px_validation *v) PX_WUR;

/* {"productId":..,"price":<number as stored>,"currency":..} into out. */
px_rc px_pf_price_json(const struct px_price *p, struct px_buf *out) PX_WUR;
/* {"items":[..],"nextCursor":..|null} into out. */
px_rc px_pf_audit_page_json(const struct px_audit_page *page, struct px_buf *out) PX_WUR;

#endif
