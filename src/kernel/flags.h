/* flags.h: feature flags (CONTRACT §9): the definition stored under a
 * `flags.` key, its validation, and its evaluation for one context.
 *
 *   {"default":false,
 *    "rules":[{"when":{"attribute":"country","in":["DE","AT"]},"value":true},
 *             {"percentage":10,"value":true}]}
 *
 * Rules are tried first to last; the first that matches gives the value. A
 * rule with `when` matches when the context's attribute (`targetingKey` names
 * the targeting key) equals one of `in`; a rule with `percentage` matches when
 * the context's bucket is below it; a rule with both needs both. The bucket of
 * a (flag key, targeting key) pair is fixed (px_flag_bucket), the same for
 * every rule of the flag, so percentages act as thresholds: a later
 * {"percentage":30} after a {"percentage":10} serves the buckets 10-30%.
 *
 * A parsed flag owns a reference to the JSON it came from; results borrow
 * values from the flag and live as long as it does. */
#ifndef PX_FLAGS_H
#define PX_FLAGS_H

#include "arena.h"
#include "px.h"
#include "validate.h"

#include <jansson.h>

#define PX_FLAG_RULES_MAX 64     /* rules of one flag */
#define PX_FLAG_IN_MAX    256    /* values of one `in` list */
#define PX_FLAG_BUCKETS   10000u /* percentages have two decimals: one bucket = 0.01% */

/* OpenFeature's evaluation reasons (the spec's names, as OFREP sends them). */
enum px_flag_reason {
    PX_FLAG_STATIC,          /* the flag has no rules: one value for everybody */
    PX_FLAG_TARGETING_MATCH, /* a `when` rule matched */
    PX_FLAG_SPLIT,           /* a `percentage` rule matched */
    PX_FLAG_DEFAULT,         /* rules exist, none matched */
    PX_FLAG_ERROR,           /* see error */
};

/* OpenFeature's error codes that evaluation itself can produce. */
enum px_flag_error {
    PX_FLAG_OK,
    PX_FLAG_TARGETING_KEY_MISSING, /* a percentage rule was reached without a targeting key */
    PX_FLAG_INVALID_CONTEXT,       /* attributes is not an object */
};

struct px_flag;

/* The context of one evaluation: both borrowed. */
struct px_flag_attr {
    const char *name;
    const char *value;
};

struct px_flag_ctx {
    const char *targeting_key; /* NULL or "" when the caller has none */
    const json_t *attributes;  /* JSON object of attributes, NULL when none */
    /* String attributes without a JSON object (a hot path's, on the stack),
     * looked up when `attributes` has no such member; NULL when none. */
    const struct px_flag_attr *attrs;
    size_t nattrs;
};

struct px_flag_result {
    const json_t *value; /* borrowed from the flag; NULL on ERROR */
    char variant[16];    /* "default", or "rule-N" (N counts from 1); "" on ERROR */
    enum px_flag_reason reason;
    enum px_flag_error error;
};

/* Checks doc against the definition above and builds the flag. Refuses (with
 * every failure in v, field names like "rules[2].when.in" allocated in a) a
 * definition that cannot be evaluated: unknown fields, a rule with neither
 * `when` nor `percentage`, a percentage outside 0-100 or with more than two
 * decimals, an empty or non-scalar `in`, a rule value of another JSON type
 * than the default. PX_ERR_INVALID then; PX_ERR_NOMEM. Caller frees *out. */
px_rc px_flag_parse(const json_t *doc, struct px_arena *a, struct px_validation *v,
                    struct px_flag **out) PX_WUR;
/* Frees a flag. Accepts NULL. */
void px_flag_free(struct px_flag *f);
/* The default value (borrowed). */
const json_t *px_flag_default(const struct px_flag *f);
/* Evaluates f for c; never fails (errors are results, reason ERROR). */
void px_flag_eval(const struct px_flag *f, const char *flag_key, const struct px_flag_ctx *c,
                  struct px_flag_result *r);
/* The bucket 0..PX_FLAG_BUCKETS-1 of a targeting key for a flag: the first
 * eight bytes of SHA-256(flag_key "\n" targeting_key) as a big-endian
 * integer, modulo 10000. Stable across processes, hosts and versions. */
unsigned px_flag_bucket(const char *flag_key, const char *targeting_key);
/* "STATIC", "TARGETING_MATCH", "SPLIT", "DEFAULT", "ERROR". */
const char *px_flag_reason_name(enum px_flag_reason r);
/* "TARGETING_KEY_MISSING", "INVALID_CONTEXT"; "" for PX_FLAG_OK. */
const char *px_flag_error_name(enum px_flag_error e);

#endif
