/* dto.h: the typed inputs and the JSON outputs of product-service.
 *
 * Bodies are validated strictly (CONTRACT §8): JSON objects only, unknown
 * fields refused, every failure listed. Inputs point into the request arena
 * (or into the caller's json_t for product bodies, see below). */
#ifndef PX_PS_DTO_H
#define PX_PS_DTO_H

#include "kernel/validate.h"
#include "kernel/buf.h"
#include "store/product.h"
#include "store/price.h"

/* Bound on a product-service request body (CONTRACT §8). */
#define PX_PS_BODY_MAX (64 * 1024)

struct px_ps_product_in {
    const char *product_id; /* required on POST; on PUT optional, must equal the path's */
    const char *name;
    const char *description; /* "" when absent */
    const char *category;
    const char *status;     /* ACTIVE when absent */
    const char *attributes; /* compact JSON object text, "{}" when absent */
};

struct px_ps_price_in {
    const char *amount; /* exact decimal text as sent, e.g. "12.50" */
    char currency[4];
};

struct px_ps_list_in {
    const char *category;
    const char *status;
    const char *cursor;
    long limit;
};

/* Parses and checks a product body (POST when creating). Strings in a.
 * PX_ERR_INVALID with every failure in v. */
px_rc px_ps_product_in_parse(const char *body, size_t len, bool creating, struct px_arena *a,
                             struct px_ps_product_in *in, struct px_validation *v) PX_WUR;
/* Parses and checks {"amount": "12.50" | 12.50, "currency": "EUR"}, keeping the
 * amount's text exactly. PX_ERR_INVALID with every failure in v. */
px_rc px_ps_price_in_parse(const char *body, size_t len, struct px_arena *a,
                           struct px_ps_price_in *in, struct px_validation *v) PX_WUR;
/* Validates GET /products' query (limit 1-1000, default 100). */
px_rc px_ps_list_in_parse(struct px_request *req, struct px_ps_list_in *in,
                          struct px_validation *v) PX_WUR;

/* NULL when amount is a plain non-negative decimal within currency's minor
 * units (ISO 4217) and 20 integer digits; else the reason. */
const char *px_ps_amount_problem(const char *amount, const char *currency);
/* true when code is an active ISO 4217 currency code. */
bool px_ps_currency_known(const char *code);
/* true for ACTIVE, INACTIVE, DISCONTINUED. */
bool px_ps_status_valid(const char *s);

/* The product as every route renders it (CONTRACT §8). */
px_rc px_ps_product_json(const struct px_product *p, struct px_buf *out) PX_WUR;
/* {"items":[..],"nextCursor":..|null} */
px_rc px_ps_list_json(const struct px_product *items, size_t n, const char *next_cursor,
                      struct px_buf *out) PX_WUR;
/* {"productId":..,"items":[{amount,currency,effectiveFrom,changedBy,requestId}..]} */
px_rc px_ps_history_json(const char *id, const struct px_price_history_row *rows, size_t n,
                         struct px_buf *out) PX_WUR;

/* Opaque list cursor bound to the query's filters; NULL when out of memory. */
const char *px_ps_cursor_encode(struct px_arena *a, const struct px_ps_list_in *in,
                                const char *last_id);
/* The last id a cursor names, when it was made for these filters; else PX_ERR_INVALID. */
px_rc px_ps_cursor_decode(const struct px_ps_list_in *in, struct px_arena *a,
                          const char **last_id) PX_WUR;

#endif
