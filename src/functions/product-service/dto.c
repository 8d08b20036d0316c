#include "dto.h"
#include "kernel/b64.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN     200
#define DESC_MAX_LEN     2000
#define CATEGORY_MAX_LEN 64
#define ATTR_MAX         50
#define ATTR_KEY_MAX     64
#define ATTR_VALUE_MAX   1024
#define INT_DIGITS_MAX   20
#define CURSOR_RAW_MAX   256

/* ISO 4217 active codes with their minor units (digits after the point). */
static const char *const minor0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF "
                                  "XOF XPF ";
static const char *const minor3 = "BHD IQD JOD KWD LYD OMR TND ";
static const char *const minor4 = "CLF UYW ";
static const char *const minor2 =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD YER ZAR ZMW ZWG ";

static bool in_list(const char *list, const char *code)
{
    char probe[5];
    if (strlen(code) != 3)
        return false;
    snprintf(probe, sizeof(probe), "%s ", code);
    for (const char *p = list; (p = strstr(p, probe)) != NULL; p++)
        if ((p - list) % 4 == 0)
            return true;
    return false;
}

/* Minor units of code, -1 when unknown. */
static int minor_units(const char *code)
{
    for (const char *c = code; *c; c++)
        if (*c < 'A' || *c > 'Z')
            return -1;
    if (in_list(minor2, code))
        return 2;
    if (in_list(minor0, code))
        return 0;
    if (in_list(minor3, code))
        return 3;
    if (in_list(minor4, code))
        return 4;
    return -1;
}

bool px_ps_currency_known(const char *code)
{
    return code && minor_units(code) >= 0;
}

bool px_ps_status_valid(const char *s)
{
    return s && (strcmp(s, "ACTIVE") == 0 || strcmp(s, "INACTIVE") == 0 ||
                 strcmp(s, "DISCONTINUED") == 0);
}

const char *px_ps_amount_problem(const char *amount, const char *currency)
{
    if (!amount || !*amount)
        return "must be a decimal amount";
    if (amount[0] == '-')
        return "must not be negative";
    size_t i = 0, int_digits = 0, frac_digits = 0;
    while (amount[i] >= '0' && amount[i] <= '9') {
        i++;
        int_digits++;
    }
    if (amount[i] == '.') {
        i++;
        while (amount[i] >= '0' && amount[i] <= '9') {
            i++;
            frac_digits++;
        }
        if (frac_digits == 0)
            return "must be a plain decimal, e.g. 12.50";
    }
    /* One spelling per value: "01.50" would be stored as sent by SQLite and as
     * 1.50 by PostgreSQL. */
    if (amount[i] || int_digits == 0 || (int_digits > 1 && amount[0] == '0'))
        return "must be a plain decimal, e.g. 12.50 (no sign, exponent, spaces or leading "
               "zeros)";
    if (int_digits > INT_DIGITS_MAX)
        return "is too large (at most 20 digits before the point)";
    int mu = currency ? minor_units(currency) : -1;
    if (mu >= 0 && frac_digits > (size_t)mu)
        return "has more decimals than the currency allows";
    return NULL;
}

static bool printable_utf8(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* A required or optional string member: its value, or NULL with a failure listed. */
static const char *str_member(json_t *root, const char *name, bool required, size_t min, size_t max,
                              struct px_validation *v, bool *bad)
{
    json_t *x = json_object_get(root, name);
    if (!x) {
        if (required) {
            px_validation_add(v, name, "is required");
            *bad = true;
        }
        return NULL;
    }
    if (!json_is_string(x)) {
        px_validation_add(v, name, "must be a string");
        *bad = true;
        return NULL;
    }
    const char *s = json_string_value(x);
    size_t n = json_string_length(x);
    if (n < min || n > max || strlen(s) != n || !printable_utf8(s)) {
        px_validation_add(v, name,
                          max <= 64 ? "must be 1-64 printable characters"
                                    : "has a bad length or control characters");
        *bad = true;
        return NULL;
    }
    return s;
}

/* Parses body as one JSON object; a failure is listed under "body". */
static json_t *load_object(const char *body, size_t len, struct px_validation *v)
{
    json_error_t e;
    /* Integers as reals: a 30-digit amount then parses, and its exact text is
     * judged by px_ps_amount_problem() ("too large") instead of the parser. */
    json_t *root =
        body ? json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &e) : NULL;
    if (!root) {
        px_validation_add(v, "body", "must be a JSON object (valid JSON, no duplicate fields)");
        return NULL;
    }
    if (!json_is_object(root)) {
        px_validation_add(v, "body", "must be a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

static void unknown_fields(json_t *root, const char *const *known, size_t nknown,
                           struct px_arena *a, struct px_validation *v, bool *bad)
{
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < nknown && !ok; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok) {
            /* The field name is the client's: bounded, and copied where the error lives. */
            char shown[65];
            snprintf(shown, sizeof(shown), "%s", key);
            const char *f = px_arena_strdup(a, shown);
            px_validation_add(v, f ? f : "body", "is not a known field");
            *bad = true;
        }
    }
}

static const char *dup(struct px_arena *a, const char *s, bool *bad)
{
    if (!s)
        return NULL;
    const char *d = px_arena_strdup(a, s);
    if (!d)
        *bad = true;
    return d;
}

px_rc px_ps_product_in_parse(const char *body, size_t len, bool creating, struct px_arena *a,
                             struct px_ps_product_in *in, struct px_validation *v)
{
    static const char *const known[] = {"productId", "name",   "description",
                                        "category",  "status", "attributes"};
    memset(in, 0, sizeof(*in));
    json_t *root = load_object(body, len, v);
    if (!root)
        return PX_ERR_INVALID;
    bool bad = false;
    unknown_fields(root, known, PX_COUNTOF(known), a, v, &bad);
    const char *id = str_member(root, "productId", creating, 1, 64, v, &bad);
    if (id && !px_valid_product_id(id)) {
        px_validation_add(v, "productId", "must be 1-64 of A-Z a-z 0-9 -, not starting with -");
        bad = true;
        id = NULL;
    }
    const char *name = str_member(root, "name", true, 1, NAME_MAX_LEN, v, &bad);
    const char *desc = str_member(root, "description", false, 0, DESC_MAX_LEN, v, &bad);
    const char *cat = str_member(root, "category", true, 1, CATEGORY_MAX_LEN, v, &bad);
    const char *status = str_member(root, "status", false, 1, 64, v, &bad);
    if (status && !px_ps_status_valid(status)) {
        px_validation_add(v, "status", "must be ACTIVE, INACTIVE or DISCONTINUED");
        bad = true;
    }
    json_t *attrs = json_object_get(root, "attributes");
    char *attrs_text = NULL;
    if (attrs) {
        const char *k;
        json_t *x;
        bool ok = json_is_object(attrs) && json_object_size(attrs) <= ATTR_MAX;
        if (ok) {
            json_object_foreach(attrs, k, x)
            {
                size_t kl = strlen(k);
                if (kl == 0 || kl > ATTR_KEY_MAX || !printable_utf8(k) || !json_is_string(x) ||
                    json_string_length(x) > ATTR_VALUE_MAX ||
                    strlen(json_string_value(x)) != json_string_length(x))
                    ok = false;
            }
        }
        if (!ok) {
            px_validation_add(v, "attributes",
                              "must be an object of at most 50 string values (keys 1-64, "
                              "values up to 1024 characters)");
            bad = true;
        } else {
            attrs_text = json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
            if (!attrs_text)
                bad = true;
        }
    }
    if (!bad) {
        in->product_id = dup(a, id, &bad);
        in->name = dup(a, name, &bad);
        in->description = dup(a, desc ? desc : "", &bad);
        in->category = dup(a, cat, &bad);
        in->status = dup(a, status ? status : "ACTIVE", &bad);
        in->attributes = dup(a, attrs_text ? attrs_text : "{}", &bad);
    }
    free(attrs_text);
    json_decref(root);
    return bad ? PX_ERR_INVALID : PX_OK;
}

/* The raw text of the top-level member "amount" when it is a JSON number, found
 * by walking the (already valid) object; NULL when not found plainly. */
static const char *raw_number(const char *body, size_t len, struct px_arena *a)
{
    size_t i = 0;
#define WS()                                                                                       \
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r'))   \
    i++
    WS();
    if (i >= len || body[i] != '{')
        return NULL;
    i++;
    for (int guard = 0; guard < 64; guard++) {
        WS();
        if (i >= len || body[i] != '"')
            return NULL;
        size_t ks = ++i;
        while (i < len && body[i] != '"')
            i += body[i] == '\\' ? 2 : 1;
        if (i >= len)
            return NULL;
        bool is_amount = i - ks == 6 && memcmp(body + ks, "amount", 6) == 0;
        i++;
        WS();
        if (i >= len || body[i] != ':')
            return NULL;
        i++;
        WS();
        size_t vs = i;
        if (i < len && body[i] == '"') {
            i++;
            while (i < len && body[i] != '"')
                i += body[i] == '\\' ? 2 : 1;
            i++;
        } else {
            while (i < len && strchr("+-0123456789.eE", body[i]))
                i++;
            if (is_amount)
                return i > vs ? px_arena_strndup(a, body + vs, i - vs) : NULL;
            /* any other value type: let the caller's checks speak */
            while (i < len && body[i] != ',' && body[i] != '}')
                i++;
        }
        WS();
        if (i >= len || body[i] != ',')
            return NULL;
        i++;
    }
#undef WS
    return NULL;
}

px_rc px_ps_price_in_parse(const char *body, size_t len, struct px_arena *a,
                           struct px_ps_price_in *in, struct px_validation *v)
{
    static const char *const known[] = {"amount", "currency"};
    memset(in, 0, sizeof(*in));
    json_t *root = load_object(body, len, v);
    if (!root)
        return PX_ERR_INVALID;
    bool bad = false;
    unknown_fields(root, known, PX_COUNTOF(known), a, v, &bad);
    const char *cur = str_member(root, "currency", true, 3, 3, v, &bad);
    if (cur && !px_ps_currency_known(cur)) {
        px_validation_add(v, "currency", "must be an ISO 4217 currency code, e.g. EUR");
        bad = true;
        cur = NULL;
    }
    json_t *am = json_object_get(root, "amount");
    const char *amount = NULL;
    if (!am) {
        px_validation_add(v, "amount", "is required");
        bad = true;
    } else if (json_is_string(am)) {
        amount = px_arena_strdup(a, json_string_value(am));
    } else if (json_is_number(am)) {
        amount = raw_number(body, len, a);
        if (!amount) {
            px_validation_add(v, "amount", "must be a decimal string or a plain number");
            bad = true;
        }
    } else {
        px_validation_add(v, "amount", "must be a decimal string or a number");
        bad = true;
    }
    if (amount) {
        const char *why = px_ps_amount_problem(amount, cur);
        if (why) {
            px_validation_add(v, "amount", why);
            bad = true;
        }
    }
    if (!bad) {
        in->amount = amount;
        memcpy(in->currency, cur, 4);
    }
    json_decref(root);
    return bad ? PX_ERR_INVALID : PX_OK;
}

#define PARAM(n, t, st, m, lo, hi)                                                                 \
    {                                                                                              \
        .name = n, .type = t, .required = false, .offset = offsetof(struct st, m), .min = lo,      \
        .max = hi                                                                                  \
    }

static const struct px_param_spec list_params[] = {
    PARAM("category", PX_P_TOKEN, px_ps_list_in, category, 1, CATEGORY_MAX_LEN),
    PARAM("status", PX_P_TOKEN, px_ps_list_in, status, 1, 16),
    PARAM("limit", PX_P_INT, px_ps_list_in, limit, 1, 1000),
    PARAM("cursor", PX_P_TOKEN, px_ps_list_in, cursor, 1, 1024),
};
static const struct px_schema list_schema = {list_params, PX_COUNTOF(list_params)};

px_rc px_ps_list_in_parse(struct px_request *req, struct px_ps_list_in *in, struct px_validation *v)
{
    memset(in, 0, sizeof(*in));
    in->limit = 100;
    px_rc rc = px_validate_query(&list_schema, req, in, v);
    if (rc != PX_OK && rc != PX_ERR_INVALID)
        return rc;
    if (in->status && !px_ps_status_valid(in->status)) {
        px_validation_add(v, "status", "must be ACTIVE, INACTIVE or DISCONTINUED");
        rc = PX_ERR_INVALID;
    }
    return rc;
}

static px_rc decimal(struct px_buf *out, const char *s)
{
    char num[64];
    px_rc rc = px_decimal_to_json(s, num, sizeof(num));
    return rc ? rc : px_buf_adds(out, num);
}

px_rc px_ps_product_json(const struct px_product *p, struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "{\"productId\":");
    if (!rc)
        rc = px_buf_json_strz(out, p->id);
    if (!rc)
        rc = px_buf_adds(out, ",\"name\":");
    if (!rc)
        rc = px_buf_json_strz(out, p->name ? p->name : "");
    if (!rc)
        rc = px_buf_adds(out, ",\"description\":");
    if (!rc)
        rc = px_buf_json_strz(out, p->description ? p->description : "");
    if (!rc)
        rc = px_buf_adds(out, ",\"category\":");
    if (!rc)
        rc = px_buf_json_strz(out, p->category ? p->category : "");
    if (!rc)
        rc = px_buf_adds(out, ",\"status\":");
    if (!rc)
        rc = px_buf_json_strz(out, p->status);
    /* Stored as compact JSON written by this service: embedded as it is. */
    if (!rc)
        rc = px_buf_printf(out, ",\"attributes\":%s,\"price\":",
                           p->attributes && p->attributes[0] ? p->attributes : "{}");
    if (!rc && !p->has_price)
        rc = px_buf_adds(out, "null");
    if (!rc && p->has_price) {
        rc = px_buf_adds(out, "{\"amount\":");
        if (!rc)
            rc = decimal(out, p->amount);
        if (!rc)
            rc = px_buf_adds(out, ",\"currency\":");
        if (!rc)
            rc = px_buf_json_strz(out, p->currency);
        if (!rc)
            rc = px_buf_adds(out, ",\"effectiveFrom\":");
        if (!rc)
            rc = px_buf_json_strz(out, p->effective_from);
        if (!rc)
            rc = px_buf_adds(out, "}");
    }
    if (!rc)
        rc = px_buf_printf(out, ",\"version\":%ld,\"createdAt\":", p->version);
    if (!rc)
        rc = px_buf_json_strz(out, p->created_at);
    if (!rc)
        rc = px_buf_adds(out, ",\"updatedAt\":");
    if (!rc)
        rc = px_buf_json_strz(out, p->updated_at);
    if (!rc)
        rc = px_buf_adds(out, "}");
    return rc;
}

px_rc px_ps_list_json(const struct px_product *items, size_t n, const char *next_cursor,
                      struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "{\"items\":[");
    for (size_t i = 0; !rc && i < n; i++) {
        if (i)
            rc = px_buf_adds(out, ",");
        if (!rc)
            rc = px_ps_product_json(&items[i], out);
    }
    if (!rc)
        rc = px_buf_adds(out, "],\"nextCursor\":");
    if (!rc)
        rc = px_buf_json_strz(out, next_cursor);
    if (!rc)
        rc = px_buf_adds(out, "}");
    return rc;
}

px_rc px_ps_history_json(const char *id, const struct px_price_history_row *rows, size_t n,
                         struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "{\"productId\":");
    if (!rc)
        rc = px_buf_json_strz(out, id);
    if (!rc)
        rc = px_buf_adds(out, ",\"items\":[");
    for (size_t i = 0; !rc && i < n; i++) {
        rc = px_buf_adds(out, i ? ",{\"amount\":" : "{\"amount\":");
        if (!rc)
            rc = decimal(out, rows[i].amount);
        if (!rc)
            rc = px_buf_adds(out, ",\"currency\":");
        if (!rc)
            rc = px_buf_json_strz(out, rows[i].currency);
        if (!rc)
            rc = px_buf_adds(out, ",\"effectiveFrom\":");
        if (!rc)
            rc = px_buf_json_strz(out, rows[i].effective_from);
        if (!rc)
            rc = px_buf_adds(out, ",\"changedBy\":");
        if (!rc)
            rc = px_buf_json_strz(out, rows[i].changed_by);
        if (!rc)
            rc = px_buf_adds(out, ",\"requestId\":");
        if (!rc)
            rc = px_buf_json_strz(out, rows[i].request_id);
        if (!rc)
            rc = px_buf_adds(out, "}");
    }
    if (!rc)
        rc = px_buf_adds(out, "]}");
    return rc;
}

/* Cursor text: "P1\n<category>\n<status>\n<last id>", base64url without padding. */
const char *px_ps_cursor_encode(struct px_arena *a, const struct px_ps_list_in *in,
                                const char *last_id)
{
    char raw[CURSOR_RAW_MAX];
    int n = snprintf(raw, sizeof(raw), "P1\n%s\n%s\n%s", in->category ? in->category : "",
                     in->status ? in->status : "", last_id);
    if (n <= 0 || (size_t)n >= sizeof(raw))
        return NULL;
    size_t cap = px_b64_encoded_len((size_t)n, 0) + 1;
    char *o = px_arena_alloc(a, cap);
    size_t olen = 0;
    if (!o || px_b64_encode(raw, (size_t)n, PX_B64_URL, 0, o, cap, &olen) != PX_OK)
        return NULL;
    return o;
}

px_rc px_ps_cursor_decode(const struct px_ps_list_in *in, struct px_arena *a, const char **last_id)
{
    char raw[CURSOR_RAW_MAX + 1], want[CURSOR_RAW_MAX];
    size_t n = strlen(in->cursor), o = 0;
    if (n % 4 == 1 || px_b64_decoded_max(n) > CURSOR_RAW_MAX ||
        px_b64_decode(in->cursor, n, PX_B64_URL, 0, raw, CURSOR_RAW_MAX, &o) != PX_OK)
        return PX_ERR_INVALID;
    raw[o] = '\0';
    int w = snprintf(want, sizeof(want), "P1\n%s\n%s\n", in->category ? in->category : "",
                     in->status ? in->status : "");
    if (w <= 0 || strlen(raw) != o || strncmp(raw, want, (size_t)w) != 0 ||
        !px_valid_product_id(raw + w))
        return PX_ERR_INVALID;
    *last_id = px_arena_strdup(a, raw + w);
    return *last_id ? PX_OK : PX_ERR_NOMEM;
}
