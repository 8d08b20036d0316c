/* flags.c: feature flag validation and evaluation (flags.h). */
#include "flags.h"
#include "ossl.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rule {
    const char *attribute; /* NULL: no `when` */
    const json_t *in;      /* array of scalars */
    long bp;               /* percentage in basis points (0..10000); -1: none */
    const json_t *value;
};

struct px_flag {
    json_t *doc; /* owned reference: every pointer below borrows from it */
    const json_t *def;
    struct rule *rules;
    size_t nrules;
};

const char *px_flag_reason_name(enum px_flag_reason r)
{
    switch (r) {
    case PX_FLAG_STATIC:
        return "STATIC";
    case PX_FLAG_TARGETING_MATCH:
        return "TARGETING_MATCH";
    case PX_FLAG_SPLIT:
        return "SPLIT";
    case PX_FLAG_DEFAULT:
        return "DEFAULT";
    case PX_FLAG_ERROR:
        break;
    }
    return "ERROR";
}

const char *px_flag_error_name(enum px_flag_error e)
{
    switch (e) {
    case PX_FLAG_TARGETING_KEY_MISSING:
        return "TARGETING_KEY_MISSING";
    case PX_FLAG_INVALID_CONTEXT:
        return "INVALID_CONTEXT";
    case PX_FLAG_OK:
        break;
    }
    return "";
}

/* A detail whose field name is built in the arena; a static fallback when the
 * arena is full, so a refusal always says why. */
static void add(struct px_validation *v, struct px_arena *a, size_t rule, const char *sub,
                const char *reason)
{
    const char *field = sub;
    if (rule != (size_t)-1) {
        field = px_arena_printf(a, "rules[%zu]%s%s", rule, sub[0] ? "." : "", sub);
        if (!field)
            field = "rules";
    }
    px_validation_add(v, field, reason);
}

/* JSON types a value may have; integer and real are one type (a number). */
static int kind(const json_t *j)
{
    int t = json_typeof(j);
    if (t == JSON_INTEGER || t == JSON_REAL)
        return JSON_REAL;
    if (t == JSON_TRUE || t == JSON_FALSE)
        return JSON_TRUE;
    return t;
}

static bool scalar(const json_t *j)
{
    return json_is_string(j) || json_is_number(j) || json_is_boolean(j);
}

/* Percentage in basis points, or -1 when p is not 0..100 with at most two decimals. */
static long basis_points(const json_t *p)
{
    if (json_is_integer(p)) {
        json_int_t n = json_integer_value(p);
        return n >= 0 && n <= 100 ? (long)n * 100 : -1;
    }
    if (!json_is_real(p))
        return -1;
    double d = json_real_value(p);
    if (!(d >= 0.0 && d <= 100.0))
        return -1;
    double scaled = d * 100.0;
    double r = round(scaled);
    return fabs(scaled - r) < 1e-6 ? (long)r : -1;
}

static void parse_rule(const json_t *jr, size_t i, const json_t *def, struct rule *out,
                       struct px_arena *a, struct px_validation *v)
{
    memset(out, 0, sizeof(*out));
    out->bp = -1;
    if (!json_is_object(jr)) {
        add(v, a, i, "", "must be an object");
        return;
    }
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)jr, k, val)
    {
        if (strcmp(k, "when") && strcmp(k, "percentage") && strcmp(k, "value")) {
            const char *f = px_arena_printf(a, "rules[%zu].%.64s", i, k);
            px_validation_add(v, f ? f : "rules", "is not a field of a rule");
        }
    }
    const json_t *when = json_object_get(jr, "when");
    const json_t *pct = json_object_get(jr, "percentage");
    out->value = json_object_get(jr, "value");
    if (!when && !pct)
        add(v, a, i, "", "needs when, percentage or both");
    if (pct && (out->bp = basis_points(pct)) < 0)
        add(v, a, i, "percentage", "must be a number from 0 to 100 with at most two decimals");
    if (!out->value)
        add(v, a, i, "value", "is required");
    else if (def && kind(out->value) != kind(def))
        add(v, a, i, "value", "must have the JSON type of default");
    if (!when)
        return;
    if (!json_is_object(when)) {
        add(v, a, i, "when", "must be an object");
        return;
    }
    json_object_foreach((json_t *)when, k, val)
    {
        if (strcmp(k, "attribute") && strcmp(k, "in")) {
            const char *f = px_arena_printf(a, "rules[%zu].when.%.64s", i, k);
            px_validation_add(v, f ? f : "rules", "is not a field of when");
        }
    }
    const json_t *attr = json_object_get(when, "attribute");
    size_t alen = json_is_string(attr) ? json_string_length(attr) : 0;
    if (alen < 1 || alen > 128 || strlen(json_string_value(attr)) != alen)
        add(v, a, i, "when.attribute", "must be a string of 1-128 characters");
    else
        out->attribute = json_string_value(attr);
    out->in = json_object_get(when, "in");
    size_t n = json_is_array(out->in) ? json_array_size(out->in) : 0;
    bool ok = n >= 1 && n <= PX_FLAG_IN_MAX;
    for (size_t j = 0; ok && j < n; j++)
        ok = scalar(json_array_get(out->in, j));
    if (!ok)
        add(v, a, i, "when.in", "must be an array of 1-256 strings, numbers or booleans");
}

px_rc px_flag_parse(const json_t *doc, struct px_arena *a, struct px_validation *v,
                    struct px_flag **out)
{
    *out = NULL;
    size_t before = v->ndetails;
    if (!json_is_object(doc)) {
        px_validation_add(v, "value", "a flag must be an object with default and rules");
        return PX_ERR_INVALID;
    }
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)doc, k, val)
    {
        if (strcmp(k, "default") && strcmp(k, "rules")) {
            const char *f = px_arena_printf(a, "%.64s", k);
            px_validation_add(v, f ? f : "value", "is not a field of a flag");
        }
    }
    const json_t *def = json_object_get(doc, "default");
    if (!def || json_is_null(def))
        px_validation_add(v, "default", "is required and must not be null");
    const json_t *rules = json_object_get(doc, "rules");
    size_t n = 0;
    if (rules && !json_is_array(rules))
        px_validation_add(v, "rules", "must be an array");
    else if (rules && (n = json_array_size(rules)) > PX_FLAG_RULES_MAX)
        px_validation_add(v, "rules", "must hold at most 64 rules");
    struct px_flag *f = calloc(1, sizeof(*f));
    struct rule *rs = n ? calloc(n, sizeof(*rs)) : NULL;
    if (!f || (n && !rs) || n > PX_FLAG_RULES_MAX) {
        free(f);
        free(rs);
        return n > PX_FLAG_RULES_MAX ? PX_ERR_INVALID : PX_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        parse_rule(json_array_get(rules, i), i, def && !json_is_null(def) ? def : NULL, &rs[i], a,
                   v);
    if (v->ndetails != before) {
        free(rs);
        free(f);
        return PX_ERR_INVALID;
    }
    f->doc = json_incref((json_t *)doc);
    f->def = def;
    f->rules = rs;
    f->nrules = n;
    *out = f;
    return PX_OK;
}

void px_flag_free(struct px_flag *f)
{
    if (!f)
        return;
    json_decref(f->doc);
    free(f->rules);
    free(f);
}

const json_t *px_flag_default(const struct px_flag *f)
{
    return f ? f->def : NULL;
}

unsigned px_flag_bucket(const char *flag_key, const char *targeting_key)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, px_ossl_sha256(), NULL) &&
              EVP_DigestUpdate(ctx, flag_key, strlen(flag_key)) && EVP_DigestUpdate(ctx, "\n", 1) &&
              EVP_DigestUpdate(ctx, targeting_key, strlen(targeting_key)) &&
              EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 8;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return 0;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | md[i];
    return (unsigned)(x % PX_FLAG_BUCKETS);
}

/* A string value of the context's attribute name (the targeting key, or one of
 * attrs), or NULL. */
static const char *string_attribute(const struct px_flag_ctx *c, const char *name)
{
    if (strcmp(name, "targetingKey") == 0)
        return c->targeting_key && c->targeting_key[0] ? c->targeting_key : NULL;
    for (size_t i = 0; i < c->nattrs; i++)
        if (c->attrs[i].name && strcmp(c->attrs[i].name, name) == 0)
            return c->attrs[i].value;
    return NULL;
}

static bool in_strings(const char *x, const json_t *list)
{
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        const json_t *y = json_array_get(list, i);
        if (json_is_string(y) && strcmp(json_string_value(y), x) == 0)
            return true;
    }
    return false;
}

static bool in_list(const json_t *x, const json_t *list)
{
    if (!x || !scalar(x))
        return false;
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        const json_t *y = json_array_get(list, i);
        if (json_is_number(x) && json_is_number(y)) {
            if (json_number_value(x) == json_number_value(y))
                return true;
        } else if (json_equal((json_t *)x, (json_t *)y)) {
            return true;
        }
    }
    return false;
}

/* Whether the context's attribute name equals one of list (no allocation). */
static bool attribute_in(const struct px_flag_ctx *c, const char *name, const json_t *list)
{
    const json_t *j = c->attributes && strcmp(name, "targetingKey") != 0
                          ? json_object_get(c->attributes, name)
                          : NULL;
    if (j)
        return in_list(j, list);
    const char *s = string_attribute(c, name);
    return s && in_strings(s, list);
}

void px_flag_eval(const struct px_flag *f, const char *flag_key, const struct px_flag_ctx *c,
                  struct px_flag_result *r)
{
    memset(r, 0, sizeof(*r));
    if (c->attributes && !json_is_object(c->attributes)) {
        r->reason = PX_FLAG_ERROR;
        r->error = PX_FLAG_INVALID_CONTEXT;
        return;
    }
    if (f->nrules == 0) {
        r->value = f->def;
        r->reason = PX_FLAG_STATIC;
        memcpy(r->variant, "default", sizeof("default"));
        return;
    }
    bool have_key = c->targeting_key && c->targeting_key[0];
    long bucket = -1; /* computed on first need */
    for (size_t i = 0; i < f->nrules; i++) {
        const struct rule *ru = &f->rules[i];
        if (ru->attribute && !attribute_in(c, ru->attribute, ru->in))
            continue;
        if (ru->bp >= 0) {
            if (!have_key) {
                r->reason = PX_FLAG_ERROR;
                r->error = PX_FLAG_TARGETING_KEY_MISSING;
                return;
            }
            if (bucket < 0)
                bucket = (long)px_flag_bucket(flag_key, c->targeting_key);
            if (bucket >= ru->bp)
                continue;
        }
        r->value = ru->value;
        r->reason = ru->bp >= 0 ? PX_FLAG_SPLIT : PX_FLAG_TARGETING_MATCH;
        snprintf(r->variant, sizeof(r->variant), "rule-%u", (unsigned)(i + 1) % 1000u);
        return;
    }
    r->value = f->def;
    r->reason = PX_FLAG_DEFAULT;
    memcpy(r->variant, "default", sizeof("default"));
}
