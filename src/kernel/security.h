/* security.h: the security headers every response carries.
 *
 *   Content-Security-Policy: default-src 'none'; frame-ancestors 'none'
 *       every answer is JSON or plain text: nothing in it may load, run or
 *       be framed, even if a browser were tricked into rendering it
 *   Referrer-Policy: no-referrer
 *   Strict-Transport-Security: max-age=31536000; includeSubDomains
 *       only when the request reached us over TLS: X-Forwarded-Proto (or
 *       Forwarded proto=) says https, as API Gateway and load balancers set
 *       it, or the request came in an API Gateway event (HTTPS only). A
 *       client forging the header gains nothing: browsers ignore the header
 *       on plain HTTP (RFC 6797 section 8.1).
 * X-Content-Type-Options: nosniff is added by px_app_complete(). */
#ifndef PX_SECURITY_H
#define PX_SECURITY_H

#include "request.h"

#define PX_CSP        "default-src 'none'; frame-ancestors 'none'"
#define PX_HSTS       "max-age=31536000; includeSubDomains"
#define PX_REF_POLICY "no-referrer"

/* Whether req reached the service over TLS (see above). */
bool px_security_behind_tls(const struct px_request *req);

/* Adds the headers above that resp does not carry yet (a full header table
 * keeps what the handler set). */
void px_security_headers(const struct px_request *req, struct px_response *resp);

#endif
