/* handler.c: HTTP shape of config-service: media type and size of bodies,
 * If-Match / If-None-Match, ETag, status codes, and OFREP's own answers.
 * Writes are audited in service.c before they happen. Values are never
 * logged: a log line names the key at most. */
#include "handler.h"
#include "dto.h"
#include "repository.h"
#include "service.h"
#include "functions/product-service/handler.h"
#include "kernel/errors.h"
#include "kernel/log.h"
#include "kernel/tenant.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OUT_CAP (8 * 1024 * 1024)
/* The OFREP flag key of config key flags.X is X (flags.X is accepted too). */
#define FLAG_PREFIX "flags."

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
    if (req->body_len > PX_CS_BODY_MAX) {
        px_error_response(req, resp, PX_E_PAYLOAD_TOO_LARGE,
                          "the request body is larger than 64 KiB", NULL, 0);
        return false;
    }
    return true;
}

static const char *path_key(struct px_request *req, struct px_response *resp)
{
    const char *key = px_request_path_param(req, "key");
    if (px_config_key_valid(key))
        return key;
    struct px_validation v = {.ndetails = 0};
    px_validation_add(&v, "key", "must be 1-128 of a-z 0-9 . _ -");
    validation_failed(req, resp, &v);
    return NULL;
}

static px_rc set_etag(struct px_request *req, struct px_response *resp, long version)
{
    const char *etag = px_arena_printf(req->arena, "\"%ld\"", version);
    return etag ? px_response_header(resp, "ETag", etag) : PX_ERR_NOMEM;
}

static px_rc send_item(struct px_request *req, struct px_response *resp, int status,
                       const struct px_config_item *it, bool location)
{
    struct px_buf b;
    px_buf_init(&b, OUT_CAP);
    px_rc rc = px_cs_item_json(it, &b);
    if (!rc)
        rc = send_buf(req, resp, status, &b);
    px_buf_free(&b);
    if (!rc)
        rc = set_etag(req, resp, it->version);
    if (!rc && location) {
        const char *loc = px_arena_printf(req->arena, "/config/%s", it->key);
        rc = loc ? px_response_header(resp, "Location", loc) : PX_ERR_NOMEM;
    }
    return rc;
}

static void store_failed(struct px_request *req, struct px_response *resp, px_rc rc)
{
    PX_WARN(req->request_id, "config store failed: %s", px_strerror(rc));
    if (rc == PX_ERR_UNAVAILABLE || rc == PX_ERR_TIMEOUT || rc == PX_ERR_BUSY)
        px_error_response(req, resp, PX_E_DEPENDENCY_UNAVAILABLE, "the config store is unavailable",
                          NULL, 0);
    else
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
}

/* ---- configuration -------------------------------------------------------------------- */

static px_rc list_config(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    if (req->nquery || req->query_invalid) {
        struct px_validation v = {.ndetails = 0};
        px_validation_add(&v, "query", "GET /config takes no query parameters");
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    struct px_config_store *s = px_cs_repo_store(app);
    struct px_config_item *items = NULL;
    size_t n = 0;
    px_rc rc = s ? px_config_store_list(s, px_tenant_of(req), "", req->arena, &items, &n)
                 : PX_ERR_UNAVAILABLE;
    if (rc) {
        store_failed(req, resp, rc);
        return PX_OK;
    }
    struct px_buf b;
    px_buf_init(&b, OUT_CAP * 8);
    rc = px_cs_list_json(items, n, &b);
    if (!rc)
        rc = send_buf(req, resp, 200, &b);
    px_buf_free(&b);
    return rc;
}

static px_rc get_config(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    const char *key = path_key(req, resp);
    if (!key)
        return PX_OK;
    struct px_config_store *s = px_cs_repo_store(app);
    struct px_config_item it;
    px_rc rc =
        s ? px_config_store_get(s, px_tenant_of(req), key, req->arena, &it) : PX_ERR_UNAVAILABLE;
    if (rc == PX_ERR_NOT_FOUND) {
        px_error_response(req, resp, PX_E_NOT_FOUND, "no such config key", NULL, 0);
        return PX_OK;
    }
    if (rc) {
        store_failed(req, resp, rc);
        return PX_OK;
    }
    return send_item(req, resp, 200, &it, false);
}

static px_rc put_config(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    const char *key = path_key(req, resp);
    if (!key || !body_acceptable(req, resp))
        return PX_OK;
    struct px_validation v = {.ndetails = 0};
    struct px_cs_write w = {.key = key};
    px_rc rc = px_cs_value_parse(key, req->body, req->body_len, req->arena, &w.value, &v);
    if (rc == PX_ERR_INVALID) {
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (rc)
        return rc;
    const char *inm = px_request_header(req, "if-none-match");
    const char *im = px_request_header(req, "if-match");
    if (inm && (im || strcmp(inm, "*") != 0)) {
        px_validation_add(&v, "If-None-Match",
                          "only \"*\" (create), and not together with If-Match");
        validation_failed(req, resp, &v);
        return PX_OK;
    }
    if (!inm && !im) {
        px_error_response(req, resp, PX_E_PRECONDITION_REQUIRED,
                          "a write needs If-Match, or If-None-Match: * to create", NULL, 0);
        return PX_OK;
    }
    w.create = inm != NULL;
    if (!w.create && (w.if_match = px_ps_if_match(im)) == 0) {
        px_error_response(req, resp, PX_E_PRECONDITION_FAILED, NULL, NULL, 0);
        return PX_OK;
    }
    rc = px_cs_write(app, req, &w);
    switch (rc) {
    case PX_OK:
        if (send_item(req, resp, w.create ? 201 : 200, &w.result, w.create))
            px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
        return PX_OK;
    case PX_ERR_CONFLICT:
        px_error_response(req, resp, PX_E_PRECONDITION_FAILED, "the key exists (If-None-Match: *)",
                          NULL, 0);
        return PX_OK;
    case PX_ERR_NOT_FOUND:
        px_error_response(req, resp, PX_E_NOT_FOUND,
                          "no such config key (create it with If-None-Match: *)", NULL, 0);
        return PX_OK;
    case PX_ERR_STALE:
        px_error_response(req, resp, PX_E_PRECONDITION_FAILED, NULL, NULL, 0);
        return PX_OK;
    default:
        break;
    }
    PX_WARN(req->request_id, "config write of %s failed: %s", key, px_strerror(rc));
    if (w.audit_failed)
        px_error_response(req, resp, PX_E_AUDIT_UNAVAILABLE,
                          "the audit record could not be made durable; nothing was changed", NULL,
                          0);
    else
        store_failed(req, resp, rc);
    return PX_OK;
}

/* ---- OFREP ------------------------------------------------------------------------------ */

static px_rc ofrep_send(struct px_request *req, struct px_response *resp, int status,
                        const char *key, const char *code, const char *details)
{
    struct px_buf b;
    px_buf_init(&b, 64 * 1024);
    px_rc rc = px_cs_ofrep_error_json(key, code, details, &b);
    if (!rc)
        rc = send_buf(req, resp, status, &b);
    px_buf_free(&b);
    return rc;
}

/* The body of an OFREP request; false when resp holds the answer already. */
static bool ofrep_body(struct px_request *req, struct px_response *resp, const char *key,
                       struct px_cs_ofrep_in *in)
{
    if (!body_acceptable(req, resp))
        return false;
    const char *code = NULL, *why = NULL;
    if (px_cs_ofrep_in_parse(req->body, req->body_len, in, &code, &why) == PX_OK)
        return true;
    if (ofrep_send(req, resp, 400, key, code, why))
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
    return false;
}

static px_rc ofrep_one(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    const char *key = px_request_path_param(req, "key");
    const char *name = key && strncmp(key, FLAG_PREFIX, 6) == 0 ? key + 6 : key;
    const char *cfg_key = px_arena_printf(req->arena, FLAG_PREFIX "%s", name ? name : "");
    if (!cfg_key)
        return PX_ERR_NOMEM;
    struct px_cs_ofrep_in in;
    if (!ofrep_body(req, resp, key, &in))
        return PX_OK;
    px_rc rc = PX_OK;
    struct px_config_store *s = px_cs_repo_store(app);
    struct px_config_item it;
    if (!name || !name[0] || !px_config_key_valid(cfg_key)) {
        rc = ofrep_send(req, resp, 404, key, "FLAG_NOT_FOUND", "no flag has this key");
        goto out;
    }
    rc = s ? px_config_store_get(s, px_tenant_of(req), cfg_key, req->arena, &it)
           : PX_ERR_UNAVAILABLE;
    if (rc == PX_ERR_NOT_FOUND) {
        rc = ofrep_send(req, resp, 404, key, "FLAG_NOT_FOUND", "no flag has this key");
        goto out;
    }
    if (rc) {
        PX_WARN(req->request_id, "config store failed: %s", px_strerror(rc));
        static const char body[] = "{\"errorDetails\":\"the config store is unavailable\"}";
        rc = px_response_json(req, resp, 500, body, sizeof(body) - 1); /* OFREP's 500 shape */
        goto out;
    }
    json_t *doc = json_loads(it.value, JSON_DECODE_ANY, NULL);
    struct px_validation v = {.ndetails = 0};
    struct px_flag *f = NULL;
    if (!doc || px_flag_parse(doc, req->arena, &v, &f) != PX_OK) {
        json_decref(doc);
        rc = ofrep_send(req, resp, 400, key, "PARSE_ERROR", "the stored flag cannot be evaluated");
        goto out;
    }
    json_decref(doc);
    const struct px_flag_ctx ctx = {.targeting_key = in.targeting_key, .attributes = in.context};
    struct px_flag_result r;
    /* bucketed by the config key, so OFREP and the functions agree on every user */
    px_flag_eval(f, cfg_key, &ctx, &r);
    struct px_buf b;
    px_buf_init(&b, OUT_CAP);
    rc = px_cs_ofrep_result_json(key, &r, &b);
    if (!rc)
        rc = send_buf(req, resp, r.reason == PX_FLAG_ERROR ? 400 : 200, &b);
    px_buf_free(&b);
    px_flag_free(f);
out:
    json_decref(in.context);
    return rc;
}

/* ETag of a bulk answer: the flags' keys and versions and the context, so a
 * client's If-None-Match matches only an answer that would be the same. */
static const char *bulk_etag(struct px_request *req, const struct px_config_item *items, size_t n)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < n; i++) {
        char ver[32];
        int vl = snprintf(ver, sizeof(ver), "\n%ld\n", items[i].version);
        ok = EVP_DigestUpdate(md, items[i].key, strlen(items[i].key)) &&
             EVP_DigestUpdate(md, ver, (size_t)vl);
    }
    ok = ok && EVP_DigestUpdate(md, req->body ? req->body : "", req->body_len) &&
         EVP_DigestFinal_ex(md, d, &dl) && dl >= 12;
    EVP_MD_CTX_free(md);
    if (!ok)
        return NULL;
    char hex[27];
    hex[0] = '"';
    for (int i = 0; i < 12; i++)
        snprintf(hex + 1 + 2 * i, 3, "%02x", d[i]);
    hex[25] = '"';
    hex[26] = '\0';
    return px_arena_strdup(req->arena, hex);
}

static px_rc ofrep_bulk(struct px_app *app, struct px_request *req, struct px_response *resp)
{
    struct px_cs_ofrep_in in;
    if (!ofrep_body(req, resp, NULL, &in))
        return PX_OK;
    struct px_config_store *s = px_cs_repo_store(app);
    struct px_config_item *items = NULL;
    size_t n = 0;
    px_rc rc = s ? px_config_store_list(s, px_tenant_of(req), FLAG_PREFIX, req->arena, &items, &n)
                 : PX_ERR_UNAVAILABLE;
    if (rc) {
        PX_WARN(req->request_id, "config store failed: %s", px_strerror(rc));
        json_decref(in.context);
        static const char body[] = "{\"errorDetails\":\"the config store is unavailable\"}";
        return px_response_json(req, resp, 500, body, sizeof(body) - 1);
    }
    const char *etag = bulk_etag(req, items, n);
    const char *inm = px_request_header(req, "if-none-match");
    if (etag && inm && strcmp(inm, etag) == 0) {
        json_decref(in.context);
        rc = px_response_json(req, resp, 304, "", 0);
        return rc ? rc : px_response_header(resp, "ETag", etag);
    }
    const struct px_flag_ctx ctx = {.targeting_key = in.targeting_key, .attributes = in.context};
    struct px_buf b;
    px_buf_init(&b, OUT_CAP * 8);
    rc = px_buf_adds(&b, "{\"flags\":[");
    for (size_t i = 0; !rc && i < n; i++) {
        const char *name = items[i].key + 6;
        if (i)
            rc = px_buf_adds(&b, ",");
        json_t *doc = rc ? NULL : json_loads(items[i].value, JSON_DECODE_ANY, NULL);
        struct px_validation v = {.ndetails = 0};
        struct px_flag *f = NULL;
        if (rc) {
            /* fall through to the exit */
        } else if (!doc || px_flag_parse(doc, req->arena, &v, &f) != PX_OK) {
            rc = px_cs_ofrep_error_json(name, "PARSE_ERROR", "the stored flag cannot be evaluated",
                                        &b);
        } else {
            struct px_flag_result r;
            px_flag_eval(f, items[i].key, &ctx, &r);
            rc = px_cs_ofrep_result_json(name, &r, &b);
        }
        px_flag_free(f);
        json_decref(doc);
    }
    if (!rc)
        rc = px_buf_adds(&b, "]}");
    if (!rc)
        rc = send_buf(req, resp, 200, &b);
    px_buf_free(&b);
    if (!rc && etag)
        rc = px_response_header(resp, "ETag", etag);
    json_decref(in.context);
    return rc;
}

static const struct px_route routes[] = {
    {"GET", "/config", list_config, "config:read"},
    {"GET", "/config/{key}", get_config, "config:read"},
    {"PUT", "/config/{key}", put_config, "config:write"},
    {"POST", "/ofrep/v1/evaluate/flags/{key}", ofrep_one, "config:read"},
    {"POST", "/ofrep/v1/evaluate/flags", ofrep_bulk, "config:read"},
};

const struct px_function px_fn_config_service = {"config-service", routes, PX_COUNTOF(routes)};
