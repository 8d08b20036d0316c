/* request.h: the transport-neutral request and response.
 *
 * Every way in (HTTP server, `invoke`, Lambda) builds a px_request, the router
 * runs one handler on it, and the transport renders the px_response. All
 * strings in both structs live in the request's arena and die with it; the
 * transport that created the arena frees it after the response is sent. */
#ifndef PX_REQUEST_H
#define PX_REQUEST_H

#include "px.h"
#include "arena.h"

struct px_audit_record;

struct px_kv {
    const char *key;
    const char *value;
};

/* Who the caller is, once authenticated (by the service or by API Gateway). */
struct px_identity {
    const char *subject;  /* NULL when unauthenticated */
    const char **scopes;  /* permissions, NULL-terminated; NULL when none */
    const char *tenant;   /* the `tenant` claim as given; NULL when none (checked by tenant.c) */
    const char **tenants; /* the `tenants` claim, NULL-terminated; NULL when none */
};

struct px_request {
    struct px_arena *arena;
    const char *method;  /* upper case, e.g. "GET" */
    const char *path;    /* decoded path without query, e.g. "/price" */
    struct px_kv *query; /* decoded query parameters in arrival order, duplicates kept */
    size_t nquery;
    bool query_invalid; /* the raw query string was malformed (bad %-escape, NUL, control char) */
    struct px_kv *headers; /* header names lower-cased; duplicates kept */
    size_t nheaders;
    const char *body; /* NULL when none; may contain NUL bytes */
    size_t body_len;
    const char *request_id;     /* ours: unique per request (or Lambda's request id) */
    const char *correlation_id; /* X-Correlation-Id when valid, else request_id */
    const char *api_request_id; /* requestContext.requestId of an API Gateway event, else NULL */
    const char *source_ip;      /* NULL when unknown */
    const char *function;       /* function name the request was routed to (set by the router) */
    const char *route;          /* route pattern, e.g. "/products/{id}" (set by the router) */
    struct px_kv *path_params;  /* e.g. {id} of /products/{id} (set by the router) */
    size_t npath_params;
    struct px_identity identity;
    int64_t deadline_ms; /* epoch ms by which the answer is due; 0 = none */
    /* The request's tenant (TENANCY=on, set once by the router, tenant.h);
     * NULL with TENANCY=off, where every store uses the implicit "default". */
    const char *tenant;
};

#define PX_MAX_RESP_HEADERS 16

struct px_response {
    int status;
    struct px_kv headers[PX_MAX_RESP_HEADERS]; /* extra headers; Content-Type is separate */
    size_t nheaders;
    const char *content_type; /* NULL: application/json */
    const char *body;         /* arena-owned */
    size_t body_len;
    /* When non-NULL the response must not leave before this record is durable:
     * the transport appends it, then sends the response on success or the
     * answer of px_response_audit_failed() on failure. Arena-owned. */
    struct px_audit_record *audit;
    bool audit_failed; /* set by px_response_audit_failed(): the gate refused to send */
};

/* Value of the first header named `name` (lower case), or NULL. */
const char *px_request_header(const struct px_request *req, const char *name);
/* Value of path parameter `name`, or NULL. */
const char *px_request_path_param(const struct px_request *req, const char *name);
/* Adds a response header; both strings must outlive the response (arena or static). */
px_rc px_response_header(struct px_response *resp, const char *name, const char *value) PX_WUR;
/* true when resp holds a header named `name` (any case). */
bool px_response_has_header(const struct px_response *resp, const char *name);
/* Adds a header unless one of that name is there (or value is NULL). A full
 * table keeps what the handler chose: these headers are extras, so no error. */
void px_response_header_default(struct px_response *resp, const char *name, const char *value);
/* Sets status and a JSON body copied into the request arena. */
px_rc px_response_json(struct px_request *req, struct px_response *resp, int status,
                       const char *json, size_t len) PX_WUR;

#endif
