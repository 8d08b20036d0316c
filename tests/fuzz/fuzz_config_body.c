/* fuzz_config_body.c: config-service's body parsers. Whatever the bytes, a PUT
 * value is accepted as compact JSON that parses back to the same value (and,
 * under flags., a flag that evaluates), or refused with at least one detail;
 * an OFREP body gives a context object with a string (or no) targeting key,
 * or an OFREP error code. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "functions/config-service/dto.h"

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
    static const char *const keys[] = {"app.x", "flags.x"};
    for (size_t k = 0; k < 2; k++) {
        struct px_validation v = {.ndetails = 0};
        const char *compact = NULL;
        px_rc rc = px_cs_value_parse(keys[k], body, size, a, &compact, &v);
        if (rc == PX_OK) {
            json_t *orig = json_loadb(body, size, JSON_DECODE_ANY, NULL);
            json_t *back = compact ? json_loads(compact, JSON_DECODE_ANY, NULL) : NULL;
            if (!orig || !back || !json_equal(orig, back))
                __builtin_trap();
            json_decref(orig);
            json_decref(back);
        } else if (rc != PX_ERR_INVALID || v.ndetails == 0) {
            __builtin_trap();
        }
    }
    struct px_cs_ofrep_in in;
    const char *code = NULL, *why = NULL;
    px_rc rc = px_cs_ofrep_in_parse(body, size, &in, &code, &why);
    if (rc == PX_OK) {
        if (!json_is_object(in.context))
            __builtin_trap();
        const json_t *tk = json_object_get(in.context, "targetingKey");
        if (tk ? !json_is_string(tk) || in.targeting_key != json_string_value(tk)
               : in.targeting_key != NULL)
            __builtin_trap();
        json_decref(in.context);
    } else if (rc != PX_ERR_INVALID || !code || !why ||
               (strcmp(code, "PARSE_ERROR") && strcmp(code, "INVALID_CONTEXT"))) {
        __builtin_trap();
    }
    return 0;
}
