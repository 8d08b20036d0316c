/* fuzz_apigw.c: API Gateway event parsing, then rendering a response built
 * from whatever the event carried; the rendering must always be valid JSON. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel/apigw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rendered(const struct px_buf *b, const struct px_response *resp)
{
    json_t *j = json_loadb(b->data, b->len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(j) || json_object_size(j) != 4)
        __builtin_trap();
    if (json_integer_value(json_object_get(j, "statusCode")) != resp->status ||
        !json_is_object(json_object_get(j, "headers")) ||
        !json_is_string(json_object_get(j, "body")) ||
        !json_is_false(json_object_get(j, "isBase64Encoded")))
        __builtin_trap();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct px_arena *a;
    if (!a)
        a = px_arena_new(64 << 20);
    else
        px_arena_reset(a);
    if (!a)
        return 0;

    struct px_request req;
    enum px_apigw_format fmt;
    memset(&req, 0, sizeof(req));
    px_rc rc = px_apigw_parse(a, (const char *)data, size, &req, &fmt);
    if (rc)
        return 0;
    if (!req.method || (fmt != PX_APIGW_V1 && fmt != PX_APIGW_V2) ||
        req.nheaders > PX_MAX_HEADERS || (req.body_len && !req.body))
        __builtin_trap();

    struct px_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200 + (int)(size % 400);
    resp.body = req.body;
    resp.body_len = req.body_len;
    resp.content_type = px_request_header(&req, "content-type");
    for (size_t i = 0; i < req.nheaders && resp.nheaders < PX_MAX_RESP_HEADERS / 2; i++)
        if (px_response_header(&resp, req.headers[i].key, req.headers[i].value))
            __builtin_trap();
    for (size_t i = 0; i < req.nquery && resp.nheaders < PX_MAX_RESP_HEADERS; i++)
        if (px_response_header(&resp, req.query[i].key, req.query[i].value))
            __builtin_trap();
    if (req.path && resp.nheaders < PX_MAX_RESP_HEADERS &&
        px_response_header(&resp, "X-Path", req.path))
        __builtin_trap();

    struct px_buf b;
    px_buf_init(&b, 64 << 20);
    rc = px_apigw_render(&resp, fmt, &b);
    if (rc)
        __builtin_trap();
    check_rendered(&b, &resp);
    px_buf_free(&b);
    return 0;
}
