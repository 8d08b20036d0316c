/* http_request.h: the HTTP server's checks on a raw request, as pure functions.
 *
 * libmicrohttpd 0.9.75 parses the request line and headers; these decide
 * what of it we accept, before any route or handler sees the request:
 *   - the request target as received (not MHD's decoding): no raw space or
 *     control character; the path strictly percent-decoded (px_url_decode_path),
 *     the query by the strict decoder every way in shares (px_query_parse);
 *   - the method a token; header names tokens; header values free of control
 *     characters other than HTAB (a bare CR or LF is a smuggling vector);
 *   - exactly one Host in HTTP/1.1, at most one otherwise;
 *   - message framing rules MHD does not enforce itself (see
 *     px_http_check_message).
 * Kept apart from http_server.c so that unit tests and the fuzz harness
 * (tests/fuzz/fuzz_http.c) drive them without sockets. Strings stored in the
 * request live in the arena given. */
#ifndef PX_HTTP_REQUEST_H
#define PX_HTTP_REQUEST_H

#include "kernel/request.h"

enum px_http_verdict {
    PX_HTTP_OK,
    PX_HTTP_NOMEM,       /* the request arena is exhausted: 500 */
    PX_HTTP_BAD_TARGET,  /* 400: raw space / control character, bad %-escape or %00 in the path */
    PX_HTTP_BAD_METHOD,  /* 400: the method is not a token */
    PX_HTTP_BAD_HEADER,  /* 400: a header name that is not a token, a value with a control char */
    PX_HTTP_BAD_HOST,    /* 400: HTTP/1.1 without Host, or more than one Host */
    PX_HTTP_BAD_FRAMING, /* 400: conflicting or unsupported Content-Length / Transfer-Encoding */
    PX_HTTP_TOO_LARGE,   /* 413: Content-Length above the body cap */
};

/* Splits raw (the request target as received) into req->path and
 * req->query. An absolute-form target (http://host/path) is reduced to its
 * path. A malformed query is not an error here: req->query_invalid is set and
 * route validation answers 400 as for every other way in. */
enum px_http_verdict px_http_parse_target(struct px_arena *a, const char *raw,
                                          struct px_request *req);

/* Method, version, headers (names lower-case, as the server stores them) and
 * framing: Transfer-Encoding other than exactly "chunked", both
 * Transfer-Encoding and Content-Length, two of either, a Content-Length that
 * is not all digits, or Transfer-Encoding in an HTTP/1.0 request (RFC 9112
 * section 6.1) are BAD_FRAMING; a Content-Length above max_body is TOO_LARGE. */
enum px_http_verdict px_http_check_message(const char *method, const char *version,
                                           const struct px_kv *headers, size_t nheaders,
                                           size_t max_body);

/* Short name of a verdict, for logs and tests ("bad-header", ...). */
const char *px_http_verdict_name(enum px_http_verdict v);

#endif
