/* request.c: accessors of the transport-neutral request and response. */
#include "request.h"

#include <string.h>
#include <strings.h>

const char *px_request_header(const struct px_request *req, const char *name)
{
    if (!req || !name)
        return NULL;
    /* Transports lower-case names; strcasecmp also forgives a caller that did not. */
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].key && strcasecmp(req->headers[i].key, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

const char *px_request_path_param(const struct px_request *req, const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->npath_params; i++) {
        if (req->path_params[i].key && strcmp(req->path_params[i].key, name) == 0)
            return req->path_params[i].value;
    }
    return NULL;
}

px_rc px_response_header(struct px_response *resp, const char *name, const char *value)
{
    if (!resp || !name || !value)
        return PX_ERR_INVALID;
    if (resp->nheaders >= PX_MAX_RESP_HEADERS)
        return PX_ERR_TOO_LARGE;
    resp->headers[resp->nheaders].key = name;
    resp->headers[resp->nheaders].value = value;
    resp->nheaders++;
    return PX_OK;
}

bool px_response_has_header(const struct px_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (resp->headers[i].key && strcasecmp(resp->headers[i].key, name) == 0)
            return true;
    return false;
}

void px_response_header_default(struct px_response *resp, const char *name, const char *value)
{
    if (!value || px_response_has_header(resp, name))
        return;
    if (px_response_header(resp, name, value) != PX_OK)
        return;
}

px_rc px_response_json(struct px_request *req, struct px_response *resp, int status,
                       const char *json, size_t len)
{
    if (!req || !resp || (!json && len))
        return PX_ERR_INVALID;
    char *body = px_arena_strndup(req->arena, json ? json : "", len);
    if (!body)
        return PX_ERR_NOMEM;
    resp->status = status;
    resp->content_type = NULL;
    resp->body = body;
    resp->body_len = len;
    return PX_OK;
}
