/* validate.c: declarative allow-list validation of query parameters.
 *
 * A parameter reaches the handler only if the route's schema declares it and
 * its value passes the type check; everything else becomes a detail of one
 * 400 VALIDATION_FAILED answer, so a client sees every problem at once. */
#include "validate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Longest echo of an unknown parameter name: names are client-chosen. */
#define UNKNOWN_FIELD_MAX 64
/* Schemas are small; the seen[] bookkeeping lives on the stack. */
#define MAX_SCHEMA_PARAMS 64
#define TOKEN_DEFAULT_MAX 1024

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool px_valid_product_id(const char *s)
{
    if (!s || !is_alnum(s[0]))
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= PX_MAX_PRODUCT_ID || !(is_alnum(s[n]) || s[n] == '-'))
            return false;
    }
    return n >= 1;
}

bool px_valid_uuid(const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < PX_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return false; /* also stops at an early NUL */
    }
    return s[PX_UUID_LEN] == '\0';
}

/* n digits at s as a number, or -1 when any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

bool px_valid_timestamp(const char *s)
{
    if (!s)
        return false;
    /* YYYY-MM-DDTHH:MM:SS: check separators before reading past any of them */
    static const char sep[] = "....-..-..T..:..:..";
    for (size_t i = 0; i < sizeof(sep) - 1; i++) {
        if (sep[i] == '.' ? !is_digit(s[i]) : s[i] != sep[i])
            return false;
    }
    int year = digits(s, 4), month = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), min = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        min > 59 || sec > 60)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int n = 0;
        while (is_digit(p[n]) && n < 10)
            n++;
        if (n < 1 || n > 9)
            return false;
        p += n;
    }
    return p[0] == 'Z' && p[1] == '\0';
}

bool px_valid_request_id(const char *s)
{
    if (!s || !s[0])
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (i >= PX_MAX_REQUEST_ID ||
            !(is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

void px_validation_add(struct px_validation *v, const char *field, const char *reason)
{
    if (!v || v->ndetails >= PX_MAX_DETAILS)
        return;
    v->details[v->ndetails].field = field;
    v->details[v->ndetails].reason = reason;
    v->ndetails++;
}

/* A printable, bounded copy of a client-chosen name for the error body:
 * control bytes become '?', and a cut never leaves half a UTF-8 sequence. */
static const char *safe_field(struct px_arena *a, const char *name)
{
    size_t n = strnlen(name, UNKNOWN_FIELD_MAX + 1);
    if (n > UNKNOWN_FIELD_MAX) {
        n = UNKNOWN_FIELD_MAX;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--;
    }
    char *copy = px_arena_strndup(a, name, n);
    if (!copy)
        return "(unknown)";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)copy[i];
        if (c < 0x20 || c == 0x7F)
            copy[i] = '?';
    }
    return copy;
}

static bool parse_long(const char *s, long *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!is_digit(*p))
        return false;
    for (const char *q = p; *q; q++) {
        if (!is_digit(*q))
            return false;
    }
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end)
        return false;
    *out = v;
    return true;
}

static bool valid_token(const char *s, long max)
{
    size_t cap = max > 0 ? (size_t)max : TOKEN_DEFAULT_MAX;
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= cap || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7F)
            return false;
    }
    return n >= 1;
}

/* Checks one value and lands it in out; returns the failure reason or NULL. */
static const char *check_value(const struct px_param_spec *spec, struct px_arena *a,
                               const char *value, void *out)
{
    char *dst = (char *)out + spec->offset;
    switch (spec->type) {
    case PX_P_PRODUCT_ID:
        if (!px_valid_product_id(value))
            return "must be 1-64 characters of A-Z a-z 0-9 - and start with a letter or digit";
        memcpy(dst, &value, sizeof(value));
        return NULL;
    case PX_P_UUID: {
        if (!px_valid_uuid(value))
            return "must be a UUID";
        char *lower = px_arena_strndup(a, value, PX_UUID_LEN);
        if (!lower)
            return "could not be stored";
        for (size_t i = 0; i < PX_UUID_LEN; i++) {
            if (lower[i] >= 'A' && lower[i] <= 'F')
                lower[i] = (char)(lower[i] - 'A' + 'a');
        }
        const char *l = lower;
        memcpy(dst, &l, sizeof(l));
        return NULL;
    }
    case PX_P_INT: {
        long v = 0;
        if (!parse_long(value, &v) || v < spec->min || v > spec->max) {
            const char *r =
                px_arena_printf(a, "must be an integer between %ld and %ld", spec->min, spec->max);
            return r ? r : "must be an integer in range";
        }
        memcpy(dst, &v, sizeof(v));
        return NULL;
    }
    case PX_P_TIMESTAMP:
        if (!px_valid_timestamp(value))
            return "must be an RFC 3339 UTC timestamp";
        memcpy(dst, &value, sizeof(value));
        return NULL;
    case PX_P_TOKEN:
        if (!valid_token(value, spec->max)) {
            const char *r = px_arena_printf(a, "must be 1-%ld printable characters",
                                            spec->max > 0 ? spec->max : TOKEN_DEFAULT_MAX);
            return r ? r : "must be printable characters";
        }
        memcpy(dst, &value, sizeof(value));
        return NULL;
    }
    return "has an unsupported type";
}

static const struct px_param_spec *find_spec(const struct px_schema *schema, const char *name,
                                             size_t *idx)
{
    for (size_t i = 0; i < schema->nparams; i++) {
        if (strcmp(schema->params[i].name, name) == 0) {
            *idx = i;
            return &schema->params[i];
        }
    }
    return NULL;
}

/* true when an earlier pair carried the same unknown name (reported once). */
static bool unknown_seen_before(const struct px_request *req, size_t upto)
{
    const char *name = req->query[upto].key ? req->query[upto].key : "";
    for (size_t j = 0; j < upto; j++) {
        if (strcmp(req->query[j].key ? req->query[j].key : "", name) == 0)
            return true;
    }
    return false;
}

px_rc px_validate_query(const struct px_schema *schema, struct px_request *req, void *out,
                        struct px_validation *v)
{
    if (!schema || !req || !out || !v || schema->nparams > MAX_SCHEMA_PARAMS)
        return PX_ERR_INTERNAL;
    v->ndetails = 0;
    if (req->query_invalid) {
        px_validation_add(v, "query", "malformed query string");
        return PX_ERR_INVALID;
    }

    unsigned char seen[MAX_SCHEMA_PARAMS] = {0};
    for (size_t i = 0; i < req->nquery; i++) {
        const char *name = req->query[i].key ? req->query[i].key : "";
        const char *value = req->query[i].value ? req->query[i].value : "";
        size_t idx = 0;
        const struct px_param_spec *spec = find_spec(schema, name, &idx);
        if (!spec) {
            if (!unknown_seen_before(req, i))
                px_validation_add(v, safe_field(req->arena, name), "unknown parameter");
            continue;
        }
        if (seen[idx]) {
            if (seen[idx] == 1)
                px_validation_add(v, spec->name, "must not be repeated");
            seen[idx] = 2;
            continue;
        }
        seen[idx] = 1;
        const char *reason = check_value(spec, req->arena, value, out);
        if (reason)
            px_validation_add(v, spec->name, reason);
    }
    for (size_t i = 0; i < schema->nparams; i++) {
        if (schema->params[i].required && !seen[i])
            px_validation_add(v, schema->params[i].name, "is required");
    }
    return v->ndetails ? PX_ERR_INVALID : PX_OK;
}
