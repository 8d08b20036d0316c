/* fuzz_flag.c: the feature flag parser and evaluator (kernel/flags.h).
 * Whatever the bytes, a definition is either accepted or refused with at
 * least one detail; an accepted flag evaluates, for any context, to a value
 * of its default's JSON type or to an ERROR with an error code. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/flags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int kind(const json_t *j)
{
    int t = json_typeof(j);
    return t == JSON_INTEGER ? JSON_REAL : t == JSON_FALSE ? JSON_TRUE : t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct px_arena *a;
    if (!a)
        a = px_arena_new(16 << 20);
    else
        px_arena_reset(a);
    if (!a)
        return 0;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!doc)
        return 0;
    struct px_validation v = {.ndetails = 0};
    struct px_flag *f = NULL;
    px_rc rc = px_flag_parse(doc, a, &v, &f);
    if (rc == PX_OK) {
        static const char *const keys[] = {NULL, "", "u1", "vip-1"};
        json_t *attrs = json_pack("{s:s,s:i,s:b}", "country", "DE", "tier", 3, "beta", 1);
        for (size_t i = 0; i < 4; i++) {
            const struct px_flag_ctx c = {.targeting_key = keys[i], .attributes = attrs};
            struct px_flag_result r;
            px_flag_eval(f, "flags.fuzz", &c, &r);
            if (r.reason == PX_FLAG_ERROR ? (r.error == PX_FLAG_OK || r.value)
                                          : (!r.value || kind(r.value) != kind(px_flag_default(f))))
                __builtin_trap();
        }
        json_decref(attrs);
        px_flag_free(f);
    } else if (rc != PX_ERR_INVALID || v.ndetails == 0 || f) {
        __builtin_trap();
    }
    json_decref(doc);
    return 0;
}
