#include "apigw.h"
#include "b64.h"
#include "query.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef PX_VERSION
#define PX_VERSION "0"
#endif

#define MAX_METHOD 16
#define MAX_SCOPES 64

/* ---------------------------------------------------------------------------
 * Reading the event. JSON null anywhere means "absent" (the console's test
 * event sends headers: null); any other wrong type makes the event invalid. */

static json_t *get(json_t *obj, const char *key)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    return json_is_null(v) ? NULL : v;
}

static px_rc opt_obj(json_t *obj, const char *key, json_t **out)
{
    json_t *v = get(obj, key);
    *out = NULL;
    if (v && !json_is_object(v))
        return PX_ERR_INVALID;
    *out = v;
    return PX_OK;
}

static px_rc opt_arr(json_t *obj, const char *key, json_t **out)
{
    json_t *v = get(obj, key);
    *out = NULL;
    if (v && !json_is_array(v))
        return PX_ERR_INVALID;
    *out = v;
    return PX_OK;
}

/* A text value: a JSON string without embedded NUL (the parser allows NUL
 * only so that bodies may carry it). */
static px_rc text_of(json_t *v, const char **s, size_t *n)
{
    if (!json_is_string(v))
        return PX_ERR_INVALID;
    const char *p = json_string_value(v);
    size_t len = json_string_length(v);
    if (memchr(p, '\0', len))
        return PX_ERR_INVALID;
    *s = p;
    if (n)
        *n = len;
    return PX_OK;
}

static px_rc opt_text(json_t *obj, const char *key, const char **s, size_t *n)
{
    json_t *v = get(obj, key);
    *s = NULL;
    if (n)
        *n = 0;
    if (!v)
        return PX_OK;
    return text_of(v, s, n);
}

static px_rc opt_text_copy(struct px_arena *a, json_t *obj, const char *key, const char **out)
{
    const char *s;
    size_t n;
    *out = NULL;
    px_rc rc = opt_text(obj, key, &s, &n);
    if (rc || !s)
        return rc;
    *out = px_arena_strndup(a, s, n);
    return *out ? PX_OK : PX_ERR_NOMEM;
}

static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return true;
    }
    return false;
}

/* A capped list of pairs being filled. */
struct kvlist {
    struct px_kv *kv;
    size_t n, cap;
    bool overflow;
};

static px_rc kv_init(struct px_arena *a, struct kvlist *l, size_t cap)
{
    l->kv = px_arena_alloc(a, cap * sizeof(*l->kv));
    l->n = 0;
    l->cap = cap;
    l->overflow = false;
    return l->kv ? PX_OK : PX_ERR_NOMEM;
}

static px_rc kv_add(struct px_arena *a, struct kvlist *l, const char *k, size_t kn, const char *v,
                    size_t vn, bool lower)
{
    if (l->n == l->cap) {
        l->overflow = true;
        return PX_OK;
    }
    char *key = px_arena_strndup(a, k, kn);
    char *val = px_arena_strndup(a, v, vn);
    if (!key || !val)
        return PX_ERR_NOMEM;
    if (lower)
        for (char *p = key; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    l->kv[l->n].key = key;
    l->kv[l->n].value = val;
    l->n++;
    return PX_OK;
}

/* Adds every key of a {name: string} map, or of a {name: [string, ...]} map
 * when multi is set, in the event's order. */
static px_rc add_map(struct px_arena *a, struct kvlist *l, json_t *map, bool multi, bool lower)
{
    const char *key;
    json_t *v;
    px_rc rc = PX_OK;
    json_object_foreach(map, key, v)
    {
        size_t kn = strlen(key);
        const char *s;
        size_t sn;
        if (json_is_null(v))
            continue;
        if (!multi) {
            rc = text_of(v, &s, &sn);
            if (!rc)
                rc = kv_add(a, l, key, kn, s, sn, lower);
            if (rc)
                return rc;
            continue;
        }
        if (!json_is_array(v))
            return PX_ERR_INVALID;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (json_is_null(e))
                continue;
            rc = text_of(e, &s, &sn);
            if (!rc)
                rc = kv_add(a, l, key, kn, s, sn, lower);
            if (rc)
                return rc;
        }
    }
    return PX_OK;
}

/* Picks the multi-value map when it holds anything, else the single one. */
static px_rc pick_maps(json_t *root, const char *multi_key, const char *single_key, json_t **map,
                       bool *multi)
{
    json_t *m, *s;
    px_rc rc = opt_obj(root, multi_key, &m);
    if (!rc)
        rc = opt_obj(root, single_key, &s);
    if (rc)
        return rc;
    *multi = m && json_object_size(m) > 0;
    *map = *multi ? m : s;
    return PX_OK;
}

/* Query pairs that came already decoded (1.0 maps, 2.0 queryStringParameters)
 * pass the same checks as a raw query would after decoding. */
static void check_decoded_query(struct px_request *r, const struct kvlist *l)
{
    if (l->overflow)
        r->query_invalid = true;
    for (size_t i = 0; i < l->n; i++) {
        const char *k = l->kv[i].key, *v = l->kv[i].value;
        if (!*k || has_control(k, strlen(k)) || has_control(v, strlen(v)))
            r->query_invalid = true;
    }
}

static px_rc query_from_map(struct px_arena *a, struct px_request *r, json_t *map, bool multi)
{
    struct kvlist l;
    px_rc rc = kv_init(a, &l, PX_MAX_QUERY_PARAMS);
    if (!rc)
        rc = add_map(a, &l, map, multi, false);
    if (rc)
        return rc;
    check_decoded_query(r, &l);
    r->query = l.kv;
    r->nquery = l.n;
    return PX_OK;
}

static px_rc parse_method(struct px_arena *a, json_t *v, const char **out)
{
    const char *s;
    size_t n;
    if (!v || text_of(v, &s, &n) || n == 0 || n > MAX_METHOD)
        return PX_ERR_INVALID;
    char *m = px_arena_strndup(a, s, n);
    if (!m)
        return PX_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        char c = m[i];
        if (c >= 'a' && c <= 'z')
            m[i] = (char)(c - 'a' + 'A');
        else if (c < 'A' || c > 'Z')
            return PX_ERR_INVALID;
    }
    *out = m;
    return PX_OK;
}

/* Strict RFC 4648 base64: padded, no whitespace, zero trailing bits. */
PX_STATIC px_rc px_apigw_b64_decode(struct px_arena *a, const char *s, size_t n, char **out,
                                    size_t *outlen);
PX_STATIC px_rc px_apigw_b64_decode(struct px_arena *a, const char *s, size_t n, char **out,
                                    size_t *outlen)
{
    if (n % 4) /* refused before spending arena memory on it */
        return PX_ERR_INVALID;
    size_t cap = px_b64_decoded_max(n);
    char *d = px_arena_alloc(a, cap + 1);
    if (!d)
        return PX_ERR_NOMEM;
    size_t j = 0;
    px_rc rc = px_b64_decode(s, n, PX_B64_STD, PX_B64_PAD, d, cap, &j);
    if (rc)
        return rc;
    d[j] = '\0';
    *out = d;
    *outlen = j;
    return PX_OK;
}

static px_rc parse_body(struct px_arena *a, json_t *root, struct px_request *r)
{
    json_t *b = get(root, "body");
    json_t *b64 = get(root, "isBase64Encoded");
    if (b64 && !json_is_boolean(b64))
        return PX_ERR_INVALID;
    if (!b)
        return PX_OK;
    if (!json_is_string(b))
        return PX_ERR_INVALID;
    const char *s = json_string_value(b);
    size_t n = json_string_length(b);
    if (n > PX_MAX_EVENT)
        return PX_ERR_TOO_LARGE;
    if (json_is_true(b64)) {
        char *d;
        size_t dn;
        px_rc rc = px_apigw_b64_decode(a, s, n, &d, &dn);
        if (rc)
            return rc;
        r->body = d;
        r->body_len = dn;
        return PX_OK;
    }
    char *d = px_arena_strndup(a, s, n);
    if (!d)
        return PX_ERR_NOMEM;
    r->body = d;
    r->body_len = n;
    return PX_OK;
}

static px_rc parse_cookies(struct px_arena *a, json_t *root, struct kvlist *h)
{
    json_t *cookies;
    px_rc rc = opt_arr(root, "cookies", &cookies);
    if (rc || !cookies || json_array_size(cookies) == 0)
        return rc;
    struct px_buf b;
    px_buf_init(&b, PX_MAX_EVENT);
    size_t i;
    json_t *e;
    json_array_foreach(cookies, i, e)
    {
        const char *s;
        size_t n;
        if (json_is_null(e))
            continue;
        rc = text_of(e, &s, &n);
        if (!rc && b.len)
            rc = px_buf_add(&b, "; ", 2);
        if (!rc)
            rc = px_buf_add(&b, s, n);
        if (rc)
            goto out;
    }
    if (b.len)
        rc = kv_add(a, h, "cookie", 6, b.data, b.len, false);
out:
    px_buf_free(&b);
    return rc;
}

static px_rc set_subject(struct px_arena *a, struct px_request *r, const char *s, size_t n)
{
    if (!s || n == 0)
        return PX_OK;
    if (n > PX_MAX_PRINCIPAL || has_control(s, n))
        return PX_ERR_INVALID;
    r->identity.subject = px_arena_strndup(a, s, n);
    return r->identity.subject ? PX_OK : PX_ERR_NOMEM;
}

/* Permissions collected from the claims, at most MAX_SCOPES (the rest are
 * dropped: a caller cannot grow the arena without bound). */
struct perms {
    const char **sc; /* NULL-terminated, MAX_SCOPES + 1 slots */
    size_t n;
};

static px_rc perm_add(struct px_arena *a, struct perms *p, const char *s, size_t n)
{
    if (n == 0 || p->n == MAX_SCOPES)
        return PX_OK;
    p->sc[p->n] = px_arena_strndup(a, s, n);
    return p->sc[p->n++] ? PX_OK : PX_ERR_NOMEM;
}

/* Words of str separated by any of seps. */
static px_rc perm_add_words(struct px_arena *a, struct perms *p, const char *str, size_t n,
                            const char *seps)
{
    px_rc rc = PX_OK;
    for (size_t i = 0; !rc && i < n;) {
        while (i < n && strchr(seps, str[i]))
            i++;
        size_t start = i;
        while (i < n && !strchr(seps, str[i]))
            i++;
        rc = perm_add(a, p, str + start, i - start);
    }
    return rc;
}

/* A JSON array of strings; nulls are skipped, anything else is invalid. */
static px_rc perm_add_array(struct px_arena *a, struct perms *p, json_t *arr)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *s;
        size_t sn;
        if (json_is_null(e))
            continue;
        if (text_of(e, &s, &sn))
            return PX_ERR_INVALID;
        px_rc rc = perm_add(a, p, s, sn);
        if (rc)
            return rc;
    }
    return PX_OK;
}

/* The `roles` claim. REST 1.0 passes a JSON array as it is; HTTP API 2.0
 * turns every claim into a string and writes an array as "[a b]". A string
 * holding a JSON array ("[\"a\",\"b\"]") is taken as that array; any other
 * string loses one pair of surrounding brackets and is split at blanks and
 * commas ("[a b]", "[a, b]", "a b" and "a" all work). */
static px_rc perm_add_roles(struct px_arena *a, struct perms *p, json_t *roles)
{
    const char *s;
    size_t n;
    if (json_is_array(roles))
        return perm_add_array(a, p, roles);
    if (text_of(roles, &s, &n))
        return PX_ERR_INVALID;
    while (n && s[0] == ' ') {
        s++;
        n--;
    }
    while (n && s[n - 1] == ' ')
        n--;
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        json_error_t err;
        json_t *arr = json_loadb(s, n, 0, &err);
        if (json_is_array(arr)) {
            px_rc rc = perm_add_array(a, p, arr);
            json_decref(arr);
            /* not an array of strings after all: read it as words */
            if (rc != PX_ERR_INVALID)
                return rc;
        } else {
            json_decref(arr);
        }
        s++;
        n -= 2;
    }
    return perm_add_words(a, p, s, n, " ,");
}

/* Permissions: the scopes (2.0 jwt.scopes array, else the space-separated
 * `scope` claim), then the `roles` claim (absent or null: none). */
static px_rc set_scopes(struct px_arena *a, struct px_request *r, json_t *arr, const char *str,
                        size_t strn, json_t *roles)
{
    struct perms p = {px_arena_calloc(a, (MAX_SCOPES + 1) * sizeof(*p.sc)), 0};
    if (!p.sc)
        return PX_ERR_NOMEM;
    px_rc rc = PX_OK;
    if (arr)
        rc = perm_add_array(a, &p, arr);
    else if (str)
        rc = perm_add_words(a, &p, str, strn, " ");
    if (!rc && roles)
        rc = perm_add_roles(a, &p, roles);
    if (rc)
        return rc;
    r->identity.scopes = p.n ? p.sc : NULL;
    return PX_OK;
}

/* The tenancy claims: `tenant` as text, `tenants` read like `roles` (a JSON
 * array in 1.0, the flattened "[a b]" string in 2.0). Values are judged by
 * the tenant resolution (tenant.c). */
static px_rc set_tenants(struct px_arena *a, struct px_request *r, json_t *claims)
{
    const char *t = NULL;
    size_t tn = 0;
    px_rc rc = opt_text(claims, "tenant", &t, &tn);
    if (!rc && t) {
        r->identity.tenant = px_arena_strndup(a, t, tn);
        if (!r->identity.tenant)
            rc = PX_ERR_NOMEM;
    }
    json_t *list = get(claims, "tenants");
    if (rc || !list || json_is_null(list))
        return rc;
    struct perms p = {px_arena_calloc(a, (MAX_SCOPES + 1) * sizeof(*p.sc)), 0};
    if (!p.sc)
        return PX_ERR_NOMEM;
    rc = perm_add_roles(a, &p, list);
    if (!rc)
        r->identity.tenants = p.sc;
    return rc;
}

static px_rc parse_identity(struct px_arena *a, json_t *ctx, enum px_apigw_format fmt,
                            struct px_request *r)
{
    json_t *auth, *jwt = NULL, *claims, *scopes = NULL;
    const char *sub = NULL, *scope = NULL;
    size_t subn = 0, scopen = 0;
    px_rc rc = opt_obj(ctx, "authorizer", &auth);
    if (rc || !auth)
        return rc;
    if (fmt == PX_APIGW_V2) {
        rc = opt_obj(auth, "jwt", &jwt);
        if (rc || !jwt)
            return rc;
        rc = opt_obj(jwt, "claims", &claims);
        if (!rc)
            rc = opt_arr(jwt, "scopes", &scopes);
    } else {
        rc = opt_obj(auth, "claims", &claims);
    }
    if (!rc)
        rc = opt_text(claims, "sub", &sub, &subn);
    if (!rc)
        rc = opt_text(claims, "scope", &scope, &scopen);
    if (!rc && !sub && fmt == PX_APIGW_V1)
        rc = opt_text(auth, "principalId", &sub, &subn);
    if (!rc)
        rc = set_subject(a, r, sub, subn);
    if (!rc)
        rc = set_scopes(a, r, scopes, scope, scopen, get(claims, "roles"));
    if (!rc)
        rc = set_tenants(a, r, claims);
    return rc;
}

static px_rc parse_v1(struct px_arena *a, json_t *root, struct px_request *r)
{
    json_t *ctx, *ident, *map;
    bool multi;
    struct kvlist h;
    px_rc rc = parse_method(a, get(root, "httpMethod"), &r->method);
    if (!rc)
        rc = opt_text_copy(a, root, "path", &r->path);
    if (!rc)
        rc = pick_maps(root, "multiValueQueryStringParameters", "queryStringParameters", &map,
                       &multi);
    if (!rc && map)
        rc = query_from_map(a, r, map, multi);
    if (!rc)
        rc = pick_maps(root, "multiValueHeaders", "headers", &map, &multi);
    if (!rc)
        rc = kv_init(a, &h, PX_MAX_HEADERS);
    if (!rc && map)
        rc = add_map(a, &h, map, multi, true);
    if (rc)
        return rc;
    r->headers = h.kv;
    r->nheaders = h.n;
    rc = opt_obj(root, "requestContext", &ctx);
    if (!rc)
        rc = opt_text_copy(a, ctx, "requestId", &r->api_request_id);
    if (!rc)
        rc = opt_obj(ctx, "identity", &ident);
    if (!rc)
        rc = opt_text_copy(a, ident, "sourceIp", &r->source_ip);
    if (!rc)
        rc = parse_identity(a, ctx, PX_APIGW_V1, r);
    return rc;
}

static px_rc parse_v2(struct px_arena *a, json_t *root, json_t *ctx, json_t *http,
                      struct px_request *r)
{
    const char *raw;
    size_t rawn;
    json_t *qsp, *hdrs;
    struct kvlist h;
    px_rc rc = parse_method(a, get(http, "method"), &r->method);
    if (!rc)
        rc = opt_text(root, "rawPath", &raw, &rawn);
    if (rc)
        return rc;
    if (raw && rawn) {
        char *p;
        /* A path that does not decode is kept as sent: it matches no route. */
        if (px_url_decode_path(a, raw, rawn, &p) == PX_OK)
            r->path = p;
        else if (!(r->path = px_arena_strndup(a, raw, rawn)))
            return PX_ERR_NOMEM;
    } else {
        rc = opt_text_copy(a, http, "path", &r->path);
        if (rc)
            return rc;
    }

    rc = opt_text(root, "rawQueryString", &raw, &rawn);
    if (!rc)
        rc = opt_obj(root, "queryStringParameters", &qsp);
    if (rc)
        return rc;
    if (raw && rawn) {
        rc = px_query_parse(a, raw, rawn, &r->query, &r->nquery);
        if (rc == PX_ERR_INVALID || rc == PX_ERR_TOO_LARGE) {
            r->query_invalid = true;
            rc = PX_OK;
        }
    } else if (qsp && json_object_size(qsp) > 0) {
        rc = query_from_map(a, r, qsp, false);
    }
    if (!rc)
        rc = opt_obj(root, "headers", &hdrs);
    if (!rc)
        rc = kv_init(a, &h, PX_MAX_HEADERS);
    if (!rc && hdrs)
        rc = add_map(a, &h, hdrs, false, true);
    if (!rc)
        rc = parse_cookies(a, root, &h);
    if (rc)
        return rc;
    r->headers = h.kv;
    r->nheaders = h.n;
    rc = opt_text_copy(a, ctx, "requestId", &r->api_request_id);
    if (!rc)
        rc = opt_text_copy(a, http, "sourceIp", &r->source_ip);
    if (!rc)
        rc = parse_identity(a, ctx, PX_APIGW_V2, r);
    return rc;
}

px_rc px_apigw_parse(struct px_arena *a, const char *json, size_t len, struct px_request *req,
                     enum px_apigw_format *fmt)
{
    px_rc rc = PX_OK;
    json_t *root = NULL;
    struct px_request r = *req;
    const char *version;

    r.arena = a;
    r.method = r.path = r.body = r.api_request_id = r.source_ip = NULL;
    r.query = r.headers = NULL;
    r.nquery = r.nheaders = r.body_len = 0;
    r.query_invalid = false;
    r.identity.subject = NULL;
    r.identity.scopes = NULL;
    r.identity.tenant = NULL;
    r.identity.tenants = NULL;

    if (!json || !a)
        return PX_ERR_INVALID;
    if (len > PX_MAX_EVENT)
        return PX_ERR_TOO_LARGE;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (!json_is_object(root)) {
        rc = PX_ERR_INVALID;
        goto out;
    }
    rc = opt_text(root, "version", &version, NULL);
    if (rc)
        goto out;
    if (version && strcmp(version, "2.0") == 0) {
        json_t *ctx, *http;
        rc = opt_obj(root, "requestContext", &ctx);
        if (!rc)
            rc = opt_obj(ctx, "http", &http);
        if (!rc && !http)
            rc = PX_ERR_INVALID;
        if (!rc)
            rc = parse_v2(a, root, ctx, http, &r);
        if (!rc)
            *fmt = PX_APIGW_V2;
    } else {
        rc = parse_v1(a, root, &r);
        if (!rc)
            *fmt = PX_APIGW_V1;
    }
    if (!rc)
        rc = parse_body(a, root, &r);
    if (!rc)
        *req = r;
out:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Rendering the proxy response. */

static px_rc render_headers(const struct px_response *resp, struct px_buf *out)
{
    const char *ct = resp->content_type ? resp->content_type : "application/json";
    size_t nh = resp->nheaders < PX_MAX_RESP_HEADERS ? resp->nheaders : PX_MAX_RESP_HEADERS;
    const struct px_kv *h = resp->headers;
    struct px_buf joined;
    px_rc rc;

    /* Content-Type has its own field; an explicit header of that name wins. */
    for (size_t i = 0; i < nh; i++)
        if (h[i].key && h[i].value && strcasecmp(h[i].key, "Content-Type") == 0) {
            ct = h[i].value;
            break;
        }
    rc = px_buf_adds(out, "{\"Content-Type\":");
    if (!rc)
        rc = px_buf_json_strz(out, ct);
    px_buf_init(&joined, out->max);
    for (size_t i = 0; i < nh && !rc; i++) {
        if (!h[i].key || strcasecmp(h[i].key, "Content-Type") == 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = h[j].key && strcasecmp(h[j].key, h[i].key) == 0;
        if (seen)
            continue;
        /* Duplicate names are folded into one value, as HTTP allows. */
        px_buf_clear(&joined);
        rc = px_buf_adds(&joined, h[i].value ? h[i].value : "");
        for (size_t k = i + 1; k < nh && !rc; k++)
            if (h[k].key && strcasecmp(h[k].key, h[i].key) == 0) {
                rc = px_buf_add(&joined, ", ", 2);
                if (!rc)
                    rc = px_buf_adds(&joined, h[k].value ? h[k].value : "");
            }
        if (!rc)
            rc = px_buf_add(out, ",", 1);
        if (!rc)
            rc = px_buf_json_strz(out, h[i].key);
        if (!rc)
            rc = px_buf_add(out, ":", 1);
        if (!rc)
            rc = px_buf_json_str(out, joined.data ? joined.data : "", joined.len);
    }
    px_buf_free(&joined);
    if (!rc)
        rc = px_buf_add(out, "}", 1);
    return rc;
}

px_rc px_apigw_render(const struct px_response *resp, enum px_apigw_format fmt, struct px_buf *out)
{
    size_t start = out->len;
    px_rc rc;
    if (fmt != PX_APIGW_V1 && fmt != PX_APIGW_V2)
        return PX_ERR_INVALID;
    if (resp->status < 100 || resp->status > 599)
        return PX_ERR_INVALID;
    rc = px_buf_printf(out, "{\"statusCode\":%d,\"headers\":", resp->status);
    if (!rc)
        rc = render_headers(resp, out);
    if (!rc)
        rc = px_buf_adds(out, ",\"body\":");
    if (!rc)
        rc = px_buf_json_str(out, resp->body ? resp->body : "", resp->body ? resp->body_len : 0);
    if (!rc)
        rc = px_buf_adds(out, ",\"isBase64Encoded\":false}");
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

/* ---------------------------------------------------------------------------
 * Generating an event, shaped like the AWS samples. */

static void new_uuid(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        /* Only uniqueness matters for a generated event; time is enough. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (unsigned char)(x >> (8 * (i % 8)) ^ i * 131u);
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* "dd/Mon/yyyy:HH:MM:SS +0000" as API Gateway writes requestTime; epoch ms. */
static int64_t request_time(char out[32])
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 32, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, mon[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sets obj[key] = v (stolen); records any failure in *bad. */
static void put(json_t *obj, const char *key, json_t *v, bool *bad)
{
    if (json_object_set_new(obj, key, v))
        *bad = true;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

struct dump_ctx {
    struct px_buf *out;
    px_rc rc;
};

static int dump_cb(const char *s, size_t n, void *data)
{
    struct dump_ctx *d = data;
    d->rc = px_buf_add(d->out, s, n);
    return d->rc ? -1 : 0;
}

static px_rc build_v1(json_t *root, const char *method, const char *path, const struct px_kv *q,
                      size_t nq, const char *body, const char *ua)
{
    bool bad = false;
    char when[32], id[37];
    int64_t ms = request_time(when);
    new_uuid(id);

    json_t *hdr = json_object(), *mhdr = json_object(), *ctx = json_object(),
           *ident = json_object();
    json_t *qs = nq ? json_object() : json_null(), *mqs = nq ? json_object() : json_null();
    put(hdr, "Accept", json_string("*/*"), &bad);
    put(hdr, "Host", json_string("localhost"), &bad);
    put(hdr, "User-Agent", json_string(ua), &bad);
    if (body)
        put(hdr, "Content-Type", json_string("application/json"), &bad);
    const char *hk;
    json_t *hv;
    json_object_foreach(hdr, hk, hv)
    {
        json_t *arr = json_array();
        if (json_array_append(arr, hv))
            bad = true;
        put(mhdr, hk, arr, &bad);
    }
    for (size_t i = 0; i < nq && !bad; i++) {
        json_t *arr = json_object_get(mqs, q[i].key);
        if (!arr) {
            arr = json_array();
            put(mqs, q[i].key, arr, &bad);
        }
        /* The single-value map holds the last value, as API Gateway does. */
        if (json_array_append_new(arr, json_string(q[i].value)))
            bad = true;
        put(qs, q[i].key, json_string(q[i].value), &bad);
    }
    put(root, "resource", json_string(path), &bad);
    put(root, "path", json_string(path), &bad);
    put(root, "httpMethod", json_string(method), &bad);
    put(root, "headers", hdr, &bad);
    put(root, "multiValueHeaders", mhdr, &bad);
    put(root, "queryStringParameters", qs, &bad);
    put(root, "multiValueQueryStringParameters", mqs, &bad);
    put(root, "pathParameters", json_null(), &bad);
    put(root, "stageVariables", json_null(), &bad);
    put(ctx, "accountId", json_string("123456789012"), &bad);
    put(ctx, "apiId", json_string("local"), &bad);
    put(ctx, "resourceId", json_string("local"), &bad);
    put(ctx, "resourcePath", json_string(path), &bad);
    put(ctx, "httpMethod", json_string(method), &bad);
    put(ctx, "path", json_string(path), &bad);
    put(ctx, "protocol", json_string("HTTP/1.1"), &bad);
    put(ctx, "stage", json_string("local"), &bad);
    put(ctx, "domainName", json_string("localhost"), &bad);
    put(ctx, "requestId", json_string(id), &bad);
    put(ctx, "requestTime", json_string(when), &bad);
    put(ctx, "requestTimeEpoch", json_integer(ms), &bad);
    put(ident, "sourceIp", json_string("127.0.0.1"), &bad);
    put(ident, "userAgent", json_string(ua), &bad);
    put(ctx, "identity", ident, &bad);
    put(root, "requestContext", ctx, &bad);
    put(root, "body", str_or_null(body), &bad);
    put(root, "isBase64Encoded", json_false(), &bad);
    return bad ? PX_ERR_INVALID : PX_OK;
}

static px_rc build_v2(struct px_arena *a, json_t *root, const char *method, const char *raw_path,
                      const char *path, const char *raw_query, const struct px_kv *q, size_t nq,
                      const char *body, const char *ua)
{
    bool bad = false;
    char when[32], id[37];
    int64_t ms = request_time(when);
    new_uuid(id);

    json_t *hdr = json_object(), *ctx = json_object(), *http = json_object();
    put(hdr, "accept", json_string("*/*"), &bad);
    put(hdr, "host", json_string("localhost"), &bad);
    put(hdr, "user-agent", json_string(ua), &bad);
    if (body)
        put(hdr, "content-type", json_string("application/json"), &bad);
    put(root, "version", json_string("2.0"), &bad);
    put(root, "routeKey", json_string("$default"), &bad);
    put(root, "rawPath", json_string(raw_path), &bad);
    put(root, "rawQueryString", json_string(raw_query), &bad);
    put(root, "headers", hdr, &bad);
    if (nq) {
        /* Format 2.0 joins repeated values with commas. */
        json_t *qs = json_object();
        for (size_t i = 0; i < nq && !bad; i++) {
            json_t *old = json_object_get(qs, q[i].key);
            const char *v = q[i].value;
            if (old && !(v = px_arena_printf(a, "%s,%s", json_string_value(old), v)))
                bad = true;
            else
                put(qs, q[i].key, json_string(v), &bad);
        }
        put(root, "queryStringParameters", qs, &bad);
    }
    put(ctx, "accountId", json_string("123456789012"), &bad);
    put(ctx, "apiId", json_string("local"), &bad);
    put(ctx, "domainName", json_string("localhost"), &bad);
    put(ctx, "domainPrefix", json_string("localhost"), &bad);
    put(http, "method", json_string(method), &bad);
    put(http, "path", json_string(path), &bad);
    put(http, "protocol", json_string("HTTP/1.1"), &bad);
    put(http, "sourceIp", json_string("127.0.0.1"), &bad);
    put(http, "userAgent", json_string(ua), &bad);
    put(ctx, "http", http, &bad);
    put(ctx, "requestId", json_string(id), &bad);
    put(ctx, "routeKey", json_string("$default"), &bad);
    put(ctx, "stage", json_string("$default"), &bad);
    put(ctx, "time", json_string(when), &bad);
    put(ctx, "timeEpoch", json_integer(ms), &bad);
    put(root, "requestContext", ctx, &bad);
    if (body)
        put(root, "body", json_string(body), &bad);
    put(root, "isBase64Encoded", json_false(), &bad);
    return bad ? PX_ERR_INVALID : PX_OK;
}

px_rc px_apigw_generate(enum px_apigw_format fmt, const char *method, const char *path,
                        const char *raw_query, const char *body, struct px_buf *out)
{
    static const char ua[] = "pricing/" PX_VERSION;
    struct px_arena *a = NULL;
    json_t *root = NULL, *mj = NULL;
    struct px_kv *q = NULL;
    size_t nq = 0, start = out->len, plen, qlen, blen;
    const char *m = NULL;
    char *dpath = NULL;
    struct dump_ctx d = {out, PX_OK};
    px_rc rc;

    if (fmt != PX_APIGW_V1 && fmt != PX_APIGW_V2)
        return PX_ERR_INVALID;
    if (!method)
        method = "GET";
    if (!path)
        path = "/";
    if (!raw_query)
        raw_query = "";
    if (raw_query[0] == '?')
        raw_query++;
    plen = strlen(path);
    qlen = strlen(raw_query);
    blen = body ? strlen(body) : 0;
    if (plen > PX_MAX_EVENT || qlen > PX_MAX_EVENT || blen > PX_MAX_EVENT)
        return PX_ERR_TOO_LARGE;

    a = px_arena_new(4 * (plen + qlen) + 65536);
    root = json_object();
    mj = json_string(method);
    if (!a || !root) {
        rc = PX_ERR_NOMEM;
        goto out;
    }
    rc = parse_method(a, mj, &m);
    if (!rc)
        rc = px_url_decode_path(a, path, plen, &dpath);
    if (!rc)
        rc = px_query_parse(a, raw_query, qlen, &q, &nq);
    if (rc)
        goto out;
    if (fmt == PX_APIGW_V1)
        rc = build_v1(root, m, dpath, q, nq, body, ua);
    else
        rc = build_v2(a, root, m, path, dpath, raw_query, q, nq, body, ua);
    if (!rc && json_dump_callback(root, dump_cb, &d, JSON_COMPACT))
        rc = d.rc ? d.rc : PX_ERR_NOMEM;
out:
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    json_decref(mj);
    json_decref(root);
    px_arena_free(a);
    return rc;
}
