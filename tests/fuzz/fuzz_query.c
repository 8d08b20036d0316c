/* fuzz_query.c: the query decoder, then the handler's own /price and /audit
 * input parsing (functions/price-fetcher/dto.h), on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "functions/price-fetcher/dto.h"
#include "kernel/query.h"
#include "kernel/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool clean(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct px_arena *a;
    if (!a)
        a = px_arena_new(1 << 20);
    else
        px_arena_reset(a);
    if (!a)
        return 0;

    struct px_request req;
    memset(&req, 0, sizeof(req));
    req.arena = a;
    px_rc rc = px_query_parse(a, (const char *)data, size, &req.query, &req.nquery);
    if (rc == PX_OK) {
        if (req.nquery > PX_MAX_QUERY_PARAMS)
            __builtin_trap();
        for (size_t i = 0; i < req.nquery; i++)
            if (!req.query[i].key[0] || !clean(req.query[i].key) || !clean(req.query[i].value))
                __builtin_trap();
    } else {
        if (rc != PX_ERR_INVALID && rc != PX_ERR_TOO_LARGE && rc != PX_ERR_NOMEM)
            __builtin_trap();
        req.query_invalid = true;
    }

    struct px_pf_price_in in;
    struct px_validation v;
    memset(&v, 0, sizeof(v));
    rc = px_pf_price_in_parse(&req, &in, &v);
    if (rc == PX_OK) {
        /* what the handler receives is exactly what the contract allows */
        if (req.query_invalid || !px_valid_product_id(in.id) || !px_valid_uuid(in.user_id) ||
            req.nquery != 2)
            __builtin_trap();
    } else if (v.ndetails == 0 || v.ndetails > PX_MAX_DETAILS) {
        __builtin_trap();
    }

    struct px_pf_audit_in ain;
    memset(&v, 0, sizeof(v));
    rc = px_pf_audit_in_parse(&req, &ain, &v);
    if (rc == PX_OK) {
        if (req.query_invalid || !ain.user_id == !ain.product_id || ain.limit < 1 ||
            ain.limit > 1000 || (ain.user_id && !px_valid_uuid(ain.user_id)) ||
            (ain.product_id && !px_valid_product_id(ain.product_id)) ||
            (ain.from && !px_valid_timestamp(ain.from)) || (ain.to && !px_valid_timestamp(ain.to)))
            __builtin_trap();
    } else if (v.ndetails == 0 || v.ndetails > PX_MAX_DETAILS) {
        __builtin_trap();
    }
    return 0;
}
