/* dto.c: config-service bodies in and out. Bodies are parsed with jansson;
 * output is written with px_buf so that stored JSON values are embedded as
 * they were stored. */
#include "dto.h"

#include <stdlib.h>
#include <string.h>

bool px_cs_key_secret(const char *key)
{
    for (const char *seg = key; seg && *seg;) {
        if (strncmp(seg, "secret", 6) == 0)
            return true;
        seg = strchr(seg, '.');
        if (seg)
            seg++;
    }
    return false;
}

px_rc px_cs_value_parse(const char *key, const char *body, size_t len, struct px_arena *a,
                        const char **compact, struct px_validation *v)
{
    *compact = NULL;
    json_error_t jerr;
    /* NUL bytes inside strings would be cut by the store's text columns. */
    json_t *doc =
        json_loadb(body ? body : "", len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        px_validation_add(v, "body", "must be one JSON value");
        return PX_ERR_INVALID;
    }
    px_rc rc = PX_OK;
    if (strncmp(key, "flags.", 6) == 0) {
        struct px_flag *f = NULL;
        rc = px_flag_parse(doc, a, v, &f);
        px_flag_free(f);
    }
    if (!rc) {
        char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        *compact = text ? px_arena_strdup(a, text) : NULL;
        free(text);
        if (!*compact)
            rc = PX_ERR_NOMEM;
    }
    json_decref(doc);
    return rc;
}

static px_rc item_fields(const struct px_config_item *it, struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "{\"key\":");
    if (!rc)
        rc = px_buf_json_strz(out, it->key);
    if (!rc)
        rc = px_buf_adds(out, ",\"value\":");
    if (!rc)
        rc = px_buf_adds(out, it->value ? it->value : "null");
    if (!rc)
        rc = px_buf_printf(out, ",\"version\":%ld,\"updatedAt\":", it->version);
    if (!rc)
        rc = px_buf_json_strz(out, it->updated_at);
    if (!rc)
        rc = px_buf_adds(out, ",\"updatedBy\":");
    if (!rc)
        rc = px_buf_json_strz(out, it->updated_by ? it->updated_by : "");
    if (!rc)
        rc = px_buf_adds(out, "}");
    return rc;
}

px_rc px_cs_item_json(const struct px_config_item *it, struct px_buf *out)
{
    return item_fields(it, out);
}

px_rc px_cs_list_json(const struct px_config_item *items, size_t n, struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "{\"items\":[");
    for (size_t i = 0; !rc && i < n; i++) {
        if (i)
            rc = px_buf_adds(out, ",");
        if (!rc)
            rc = item_fields(&items[i], out);
    }
    if (!rc)
        rc = px_buf_adds(out, "]}");
    return rc;
}

px_rc px_cs_ofrep_in_parse(const char *body, size_t len, struct px_cs_ofrep_in *in,
                           const char **code, const char **why)
{
    memset(in, 0, sizeof(*in));
    json_error_t jerr;
    json_t *doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        *code = "PARSE_ERROR";
        *why = "the request body must be a JSON object";
        return PX_ERR_INVALID;
    }
    json_t *ctx = json_object_get(doc, "context");
    if (!json_is_object(ctx)) {
        json_decref(doc);
        *code = "INVALID_CONTEXT";
        *why = "context must be an object";
        return PX_ERR_INVALID;
    }
    const json_t *tk = json_object_get(ctx, "targetingKey");
    if (tk && !json_is_string(tk)) {
        json_decref(doc);
        *code = "INVALID_CONTEXT";
        *why = "context.targetingKey must be a string";
        return PX_ERR_INVALID;
    }
    in->context = json_incref(ctx);
    in->targeting_key = tk ? json_string_value(tk) : NULL;
    json_decref(doc);
    return PX_OK;
}

px_rc px_cs_ofrep_error_json(const char *key, const char *code, const char *details,
                             struct px_buf *out)
{
    px_rc rc = px_buf_adds(out, "{");
    if (!rc && key) {
        rc = px_buf_adds(out, "\"key\":");
        if (!rc)
            rc = px_buf_json_strz(out, key);
        if (!rc)
            rc = px_buf_adds(out, ",");
    }
    if (!rc)
        rc = px_buf_adds(out, "\"errorCode\":");
    if (!rc)
        rc = px_buf_json_strz(out, code);
    if (!rc)
        rc = px_buf_adds(out, ",\"errorDetails\":");
    if (!rc)
        rc = px_buf_json_strz(out, details);
    if (!rc)
        rc = px_buf_adds(out, "}");
    return rc;
}

px_rc px_cs_ofrep_result_json(const char *key, const struct px_flag_result *r, struct px_buf *out)
{
    if (r->reason == PX_FLAG_ERROR)
        return px_cs_ofrep_error_json(key, px_flag_error_name(r->error),
                                      r->error == PX_FLAG_TARGETING_KEY_MISSING
                                          ? "this flag needs context.targetingKey"
                                          : "context is not valid for this flag",
                                      out);
    char *value = json_dumps(r->value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (!value)
        return PX_ERR_NOMEM;
    px_rc rc = px_buf_adds(out, "{\"key\":");
    if (!rc)
        rc = px_buf_json_strz(out, key);
    if (!rc)
        rc = px_buf_adds(out, ",\"value\":");
    if (!rc)
        rc = px_buf_adds(out, value);
    if (!rc)
        rc = px_buf_printf(out, ",\"reason\":\"%s\",\"variant\":\"%s\"}",
                           px_flag_reason_name(r->reason), r->variant);
    free(value);
    return rc;
}
