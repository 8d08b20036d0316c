/* handler.c: HTTP shape of product-service: media type and size of bodies,
 * If-Match, Idempotency-Key, status codes and headers. Writes are audited in
 * service.c before they happen, so no response here waits on the audit gate. */
#include "handler.h"
#include "dto.h"
#include "repository.h"
#include "service.h"
#include "kernel/errors.h"
#include "kernel/log.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define OUT_CAP (4 * 1024 * 1024)

static void validation_failed(struct px_request *req, struct px_response *resp,
                              const struct px_validation *v)
{
    px_error_response(req, resp, PX_E_VALIDATION_FAILED, "the request is not valid", v->details,
                      v->ndetails);
}

static px_rc send_buf(struct px_request *req, struct px_response *resp, int status,
                      struct px_buf *b)
{
    return px_response_json(req, resp, status, b->data ? b->data : "", b->len);
}

long px_ps_if_match(const char *value)
{
    if (!value)
        return 0;
    while (*value == ' ')
        value++;
    if (strcmp(value, "*") == 0)
        return -1;
    if (strncmp(value, "W/", 2) == 0)
        value += 2;
    size_t n = strlen(value);
    while (n && value[n - 1] == ' ')
        n--;
    if (n < 3 || n > 20 || value[0] != '"' || value[n - 1] != '"' || value[1] == '0')
        return 0;
    long v = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (value[i] < '0' || value[i] > '9')
            return 0;
        v = v * 10 + (value[i] - '0');
    }
    return v;
}

/* The id of /products/{id}..., checked like /price's id. */
static const char *path_id(struct px_request *req, struct px_response *resp)
{
    const char *id = px_request_path_param(req, "id");
    if (px_valid_product_id(id))
        return id;
    struct px_validation v = {.ndetails = 0};
    px_validation_add(&v, "id", "must be 1-64 of A-Z a-z 0-9 -, not starting with -");
    validation_failed(req, resp, &v);
    return NULL;
}

/* 415 / 413 for a body this service does not take; true when it may be parsed. */
static bool body_acceptable(struct px_request *req, struct px_response *resp)
{
    const char *ct = px_request_header(req, "content-type");
    size_t n = ct ? strcspn(ct, ";") : 0;
    while (n && ct[n - 1] == ' ')
        n--;
    if (!ct || n != 16 || strncasecmp(ct, "application/json", 16) != 0) {
        px_error_response(req, resp, PX_E_UNSUPPORTED_MEDIA_TYPE,
                          "the request body must be application/json", NULL, 0);
        return false;
    }
    if (req->body_len > PX_PS_BODY_MAX) {
        px_error_response(req, resp, PX_E_PAYLOAD_TOO_LARGE,
                          "the request body is larger than 64 KiB", NULL, 0);
        return false;
    }
    return true;
}

/* The version If-Match names, or 0 after answering 428 / 412. */
static long require_if_match(struct px_request *req, struct px_response *resp)
{
    const char *h = px_request_header(req, "if-match");
    if (!h) {
        px_error_response(req, resp, PX_E_PRECONDITION_REQUIRED, NULL, NULL, 0);
        return 0;
    }
    long v = px_ps_if_match(h);
    if (v == 0)
        px_error_response(req, resp, PX_E_PRECONDITION_FAILED, NULL, NULL, 0);
    return v;
}

static px_rc set_etag(struct px_request *req, struct px_response *resp, long version)
{
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "\"%ld\"", version);
    const char *etag = px_arena_strdup(req->arena, tmp);
    return etag ? px_response_header(resp, "ETag", etag) : PX_ERR_NOMEM;
}

static px_rc send_product(struct px_request *req, struct px_response *resp, int status,
                          const struct px_product *p, bool location)
{
    struct px_buf b;
    px_buf_init(&b, OUT_CAP);
    px_rc rc = px_ps_product_json(p, &b);
    if (!rc)
        rc = send_buf(req, resp, status, &b);
    px_buf_free(&b);
    if (!rc)
        rc = set_etag(req, resp, p->version);
    if (!rc && location) {
        size_t n = strlen(p->id) + sizeof("/products/");
        char *loc = px_arena_alloc(req->arena, n);
        if (!loc)
            return PX_ERR_NOMEM;
        snprintf(loc, n, "/products/%s", p->id);
        rc = px_response_header(resp, "Location", loc);
    }
    return rc;
}

/* Maps a failed write to its answer. */
static void write_failed(struct px_request *req, struct px_response *resp, px_rc rc,
                         const struct px_ps_write *w)
{
    switch (rc) {
    case PX_ERR_CONFLICT:
        px_error_response(req, resp, PX_E_CONFLICT,
                          w->op == PX_PS_CREATE ? "a product with this id exists"
                                                : "a discontinued product has no price",
                          NULL, 0);
        return;
    case PX_ERR_NOT_FOUND:
        px_error_response(req, resp, PX_E_NOT_FOUND, "no such product", NULL, 0);
        return;
    case PX_ERR_STALE:
        px_error_response(req, resp, PX_E_PRECONDITION_FAILED, NULL, NULL, 0);
        return;
    default:
        break;
    }
    PX_WARN(req->request_id, "product write failed: %s", px_strerror(rc));
    if (w->audit_failed)
        px_error_response(req, resp, PX_E_AUDIT_UNAVAILABLE,
                          "the audit record could not be made durable; nothing was changed", NULL,
                          0);
    else if (rc == PX_ERR_UNAVAILABLE || rc == PX_ERR_TIMEOUT || rc == PX_ERR_BUSY)
        px_error_response(req, resp, PX_E_DEPENDENCY_UNAVAILABLE, "a store is unavailable", NULL,
                          0);
    else
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
}

/* ---- Idempotency-Key ---------------------------------------------------------------- */

struct idem {
    const char *key; /* NULL: the request has none */
    const char *route;
    const char *principal;
};

static bool idem_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n < 1 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e)
            return false;
    return true;
}

/* true when the request should run; false when resp holds the answer already
 * (400 bad key, 409 in flight, 422 reuse, the replay, or a store failure). */
static bool idem_start(struct px_app *app, struct px_request *req, struct px_response *resp,
                       struct idem *im)
{
    memset(im, 0, sizeof(*im));
    const char *key = px_request_header(req, "idempotency-key");
    if (!key)
        return true;
    if (!idem_key_ok(key)) {
        struct px_validation v = {.ndetails = 0};
        px_validation_add(&v, "Idempotency-Key", "must be 1-128 printable ASCII characters");
        validation_failed(req, resp, &v);
        return false;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (!EVP_Digest(req->body ? req->body : "", req->body_len, md, &mdlen, EVP_sha256(), NULL)) {
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
        return false;
    }
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char route[160];
    snprintf(route, sizeof(route), "%s %s", req->method, req->path ? req->path : "");
    im->route = px_arena_strdup(req->arena, route);
    im->principal = px_ps_principal(req);
    /* An Idempotency-Key belongs to its tenant too (CONTRACT §12): a tenant
     * other than "default" scopes the principal the record is kept under as
     * <tenant> US <principal>. No subject holds a control character (jwt.c,
     * apigw.c), so no principal of the default tenant, whose keys stay as
     * they were, can spell another tenant's. */
    if (req->tenant && strcmp(req->tenant, "default") != 0)
        im->principal = px_arena_printf(req->arena, "%s\x1f%s", req->tenant, im->principal);
    struct px_product_store *s = px_ps_repo_products(app);
    enum px_idem_state st = PX_IDEM_NEW;
    struct px_idem_saved saved;
    px_rc rc = !im->route ? PX_ERR_NOMEM
               : !s       ? PX_ERR_UNAVAILABLE
                          : px_product_idem_begin(s, im->principal, im->route, key, hex,
                                                  (int64_t)time(NULL), req->arena, &st, &saved);
    if (rc) {
        PX_WARN(req->request_id, "idempotency store failed: %s", px_strerror(rc));
        px_error_response(req, resp, PX_E_DEPENDENCY_UNAVAILABLE,
                          "the product store is unavailable", NULL, 0);
        return false;
    }
    switch (st) {
    case PX_IDEM_NEW:
        im->key = key;
        return true;
    case PX_IDEM_IN_FLIGHT:
        px_error_response(req, resp, PX_E_CONFLICT,
                          "a request with this Idempotency-Key is still running", NULL, 0);
        return false;
    case PX_IDEM_MISMATCH:
        px_error_response(req, resp, PX_E_IDEMPOTENCY_KEY_REUSED, NULL, NULL, 0);
        return false;
    case PX_IDEM_REPLAY:
        if (px_response_json(req, resp, saved.status, saved.body, strlen(saved.body)) ||
            (saved.etag && px_response_header(resp, "ETag", saved.etag)) ||
            (saved.location && px_response_header(resp, "Location", saved.location)))
            px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
        else
            px_response_header_default(resp, "Idempotent-Replayed", "true");
        return false;
    }
    return false;
}

static const char *header_of(const struct px_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].key, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

/* Keeps a success for replay. Any other answer changed nothing and frees the
 * key: a retry runs again (its error body names its own request id, which a
 * replay could not). */
static void idem_end(struct px_app *app, struct px_request *req, struct px_response *resp,
                     const struct idem *im)
{
    if (!im->key)
        return;
    struct px_product_store *s = px_ps_repo_products(app);
    if (resp->status < 200 || resp->status >= 300) {
        px_product_idem_abort(s, im->principal, im->route, im->key);
        return;
    }
    char *body = px_arena_strndup(req->arena, resp->body ? resp->body : "", resp->body_len);
    const struct px_idem_saved saved = {
        .status = resp->status,
        .body = body ? body : "",
        .etag = header_of(resp, "ETag"),
        .location = header_of(resp, "Location"),
    };
    if (px_product_idem_finish(s, im->principal, im->route, im->key, &saved, (int64_t)time(NULL)) !=
        PX_OK)
        PX_WARN(req->request_id, "an idempotent answer could not be kept for replay");
}

/* ---- routes --------------------------------------------------------------------------- */

static px_rc list_products(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    struct px_ps_list_in in;
    struct px_validation v = {.ndetails = 0};
    px_rc rc = px_ps_list_in_parse(req, &in, &v);
    const char *after = NULL;
    if (rc == PX_OK && in.cursor && px_ps_cursor_decode(&in, req->arena, &after) != PX_OK) {
        px_validation_add(&v, "cursor", "is not a cursor of this query");
        rc = PX_ERR_INVALID;
    }
    if (rc == PX_ERR_INVALID) {
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (rc)
        return rc;
    struct px_product_store *s = px_ps_repo_products(app);
    if (!s)
        return PX_ERR_UNAVAILABLE;
    const struct px_product_query q = {.category = in.category,
                                       .status = in.status,
                                       .after_id = after,
                                       .limit = in.limit,
                                       .tenant = req->tenant};
    struct px_product *items = NULL;
    size_t n = 0;
    bool more = false;
    rc = px_product_list(s, &q, req->arena, &items, &n, &more);
    if (rc)
        return rc;
    const char *next = more && n ? px_ps_cursor_encode(req->arena, &in, items[n - 1].id) : NULL;
    if (more && n && !next)
        return PX_ERR_NOMEM;
    struct px_buf b;
    px_buf_init(&b, OUT_CAP * 8);
    rc = px_ps_list_json(items, n, next, &b);
    if (!rc)
        rc = send_buf(req, resp, 200, &b);
    px_buf_free(&b);
    return rc;
}

/* The product the path names into *p. *answered when resp already holds the
 * answer (a bad id: 400, no such product: 404); otherwise the store's rc. */
static px_rc path_product(struct px_app *app, struct px_request *req, struct px_response *resp,
                          struct px_product *p, bool *answered)
{
    *answered = true;
    const char *id = path_id(req, resp);
    if (!id)
        return PX_OK;
    struct px_product_store *s = px_ps_repo_products(app);
    if (!s)
        return PX_ERR_UNAVAILABLE;
    px_rc rc = px_product_get_in(s, req->tenant, id, req->arena, p);
    if (rc == PX_ERR_NOT_FOUND) {
        px_error_response(req, resp, PX_E_NOT_FOUND, "no such product", NULL, 0);
        return PX_OK;
    }
    *answered = false;
    return rc;
}

static px_rc get_product(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    struct px_product p;
    bool answered;
    px_rc rc = path_product(app, req, resp, &p, &answered);
    if (rc || answered)
        return rc;
    return send_product(req, resp, 200, &p, false);
}

static px_rc create_product(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    if (!body_acceptable(req, resp))
        return PX_OK;
    struct px_ps_product_in in;
    struct px_validation v = {.ndetails = 0};
    px_rc rc = px_ps_product_in_parse(req->body, req->body_len, true, req->arena, &in, &v);
    if (rc == PX_ERR_INVALID) {
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (rc)
        return rc;
    struct idem im;
    if (!idem_start(app, req, resp, &im))
        return PX_OK;
    struct px_ps_write w = {.op = PX_PS_CREATE, .id = in.product_id, .body = &in};
    rc = px_ps_write(app, req, &w);
    if (rc)
        write_failed(req, resp, rc, &w);
    else if (send_product(req, resp, 201, &w.result, true))
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
    idem_end(app, req, resp, &im);
    return PX_OK;
}

static px_rc replace_product(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    const char *id = path_id(req, resp);
    if (!id || !body_acceptable(req, resp))
        return PX_OK;
    struct px_ps_product_in in;
    struct px_validation v = {.ndetails = 0};
    px_rc rc = px_ps_product_in_parse(req->body, req->body_len, false, req->arena, &in, &v);
    if (rc == PX_OK && in.product_id && strcmp(in.product_id, id) != 0) {
        px_validation_add(&v, "productId", "must be the id of the path");
        rc = PX_ERR_INVALID;
    }
    if (rc == PX_ERR_INVALID) {
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (rc)
        return rc;
    long version = require_if_match(req, resp);
    if (!version)
        return PX_OK;
    struct px_ps_write w = {.op = PX_PS_REPLACE, .id = id, .if_match = version, .body = &in};
    rc = px_ps_write(app, req, &w);
    if (rc)
        write_failed(req, resp, rc, &w);
    else if (send_product(req, resp, 200, &w.result, false))
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
    return PX_OK;
}

static px_rc delete_product(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    const char *id = path_id(req, resp);
    if (!id)
        return PX_OK;
    long version = require_if_match(req, resp);
    if (!version)
        return PX_OK;
    struct px_ps_write w = {.op = PX_PS_DELETE, .id = id, .if_match = version};
    px_rc rc = px_ps_write(app, req, &w);
    if (rc) {
        write_failed(req, resp, rc, &w);
        return PX_OK;
    }
    rc = px_response_json(req, resp, 204, "", 0);
    if (!rc)
        rc = set_etag(req, resp, w.result.version);
    return rc;
}

static px_rc put_price(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    const char *id = path_id(req, resp);
    if (!id || !body_acceptable(req, resp))
        return PX_OK;
    struct px_ps_price_in in;
    struct px_validation v = {.ndetails = 0};
    px_rc rc = px_ps_price_in_parse(req->body, req->body_len, req->arena, &in, &v);
    if (rc == PX_ERR_INVALID) {
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (rc)
        return rc;
    long version = require_if_match(req, resp);
    if (!version)
        return PX_OK;
    struct idem im;
    if (!idem_start(app, req, resp, &im))
        return PX_OK;
    struct px_ps_write w = {.op = PX_PS_PRICE, .id = id, .if_match = version, .price = &in};
    rc = px_ps_write(app, req, &w);
    if (rc)
        write_failed(req, resp, rc, &w);
    else if (send_product(req, resp, 200, &w.result, false))
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
    idem_end(app, req, resp, &im);
    return PX_OK;
}

static px_rc price_history(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    struct px_product p;
    bool answered;
    px_rc rc = path_product(app, req, resp, &p, &answered);
    if (rc || answered)
        return rc;
    const char *id = p.id;
    struct px_price_history_row *rows = NULL;
    size_t n = 0;
    rc = px_ps_repo_history(app, req->tenant, id, req->arena, &rows, &n);
    if (rc)
        return rc;
    struct px_buf b;
    px_buf_init(&b, OUT_CAP);
    rc = px_ps_history_json(id, rows, n, &b);
    if (!rc)
        rc = send_buf(req, resp, 200, &b);
    px_buf_free(&b);
    return rc;
}

static const struct px_route routes[] = {
    {"GET", "/products", list_products, "product:read"},
    {"POST", "/products", create_product, "product:write"},
    {"GET", "/products/{id}", get_product, "product:read"},
    {"PUT", "/products/{id}", replace_product, "product:write"},
    {"DELETE", "/products/{id}", delete_product, "product:write"},
    {"PUT", "/products/{id}/price", put_price, "price:write"},
    {"GET", "/products/{id}/price-history", price_history, "price:read"},
};

const struct px_function px_fn_product_service = {"product-service", routes, PX_COUNTOF(routes)};
