/* apigw.h: API Gateway Lambda proxy events (REST 1.0 and HTTP API 2.0).
 *
 * Parsing fills a px_request whose strings live in the given arena; rendering
 * writes the proxy response JSON of the same format into a px_buf. */
#ifndef PX_APIGW_H
#define PX_APIGW_H

#include "request.h"
#include "buf.h"

enum px_apigw_format { PX_APIGW_V1 = 1, PX_APIGW_V2 = 2 };

/* Parses an event. PX_ERR_INVALID when json is not an API Gateway proxy event
 * (a repeated query key is not an error here: it stays visible in req->query,
 * taken from multiValueQueryStringParameters (1.0) or rawQueryString (2.0)).
 * A malformed query only sets req->query_invalid. Sets req->arena = a and the
 * fields an event carries (method .. identity); leaves the others alone, and
 * all of req alone on failure. Every string is copied into a. */
px_rc px_apigw_parse(struct px_arena *a, const char *json, size_t len, struct px_request *req,
                     enum px_apigw_format *fmt) PX_WUR;

/* Appends {"statusCode":..,"headers":{..},"body":"..","isBase64Encoded":false}
 * to out, in that key order and the same shape for both formats; headers hold
 * Content-Type and every resp header (repeated names joined with ", "). On
 * failure out is left as it was; PX_ERR_INVALID for a status outside 100-599. */
px_rc px_apigw_render(const struct px_response *resp, enum px_apigw_format fmt,
                      struct px_buf *out) PX_WUR;

/* Appends an event for `generate-event` to out, shaped like the AWS samples
 * (fresh requestId, current time). NULL method/path/query/body mean GET, "/",
 * none, none. PX_ERR_INVALID for a malformed raw query or path. */
px_rc px_apigw_generate(enum px_apigw_format fmt, const char *method, const char *path,
                        const char *raw_query, const char *body, struct px_buf *out) PX_WUR;

#endif
