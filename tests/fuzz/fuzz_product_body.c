/* fuzz_product_body.c: product-service's body validators. Whatever the bytes,
 * the validators answer OK or INVALID; an accepted price keeps an amount that
 * passes the amount rules and renders as a JSON number, and an accepted
 * product's attributes are a JSON object. Refusals always say why. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "functions/product-service/dto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct px_arena *a;
    if (!a)
        a = px_arena_new(64 << 20);
    else
        px_arena_reset(a);
    if (!a)
        return 0;
    const char *body = (const char *)data;

    struct px_validation v = {.ndetails = 0};
    struct px_ps_price_in pin;
    px_rc rc = px_ps_price_in_parse(body, size, a, &pin, &v);
    if (rc == PX_OK) {
        char num[64];
        if (!pin.amount || px_ps_amount_problem(pin.amount, pin.currency) ||
            !px_ps_currency_known(pin.currency) ||
            px_decimal_to_json(pin.amount, num, sizeof(num)) != PX_OK)
            __builtin_trap();
    } else if (rc != PX_ERR_INVALID || v.ndetails == 0) {
        __builtin_trap();
    }

    for (int creating = 0; creating < 2; creating++) {
        struct px_ps_product_in in;
        v.ndetails = 0;
        rc = px_ps_product_in_parse(body, size, creating, a, &in, &v);
        if (rc == PX_OK) {
            json_t *attrs = json_loads(in.attributes, 0, NULL);
            if (!json_is_object(attrs) || !in.name || !in.category || !in.status ||
                !px_ps_status_valid(in.status) || (creating && !px_valid_product_id(in.product_id)))
                __builtin_trap();
            json_decref(attrs);
        } else if (rc != PX_ERR_INVALID || v.ndetails == 0) {
            __builtin_trap();
        }
    }
    return 0;
}
