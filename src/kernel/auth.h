/* auth.h: who the caller is and what they may do (AUTH_MODE).
 *
 * One px_auth per process, built by px_app_new() from the configuration (keys
 * are loaded then, once) and read-only afterwards, so every request thread
 * shares it. The router calls px_auth_check() after routing and before the
 * handler and its validation: an unauthenticated caller learns nothing but
 * 401/403.
 *
 *   none   nobody is authenticated; every route is open (serve refuses to
 *          bind a non-loopback address in this mode without --insecure-no-auth)
 *   jwt    `Authorization: Bearer <JWT>` verified here (jwt.h)
 *   apigw  API Gateway's JWT authorizer verified the token; the claims it put
 *          in the event (already in req->identity) are trusted; none -> 403
 *
 * Permissions come from the token's `scope` (space-separated) and `roles`
 * (array) claims; a route names the one it needs (struct px_route.permission). */
#ifndef PX_AUTH_H
#define PX_AUTH_H

#include "config.h"
#include "jwt.h"
#include "request.h"

struct px_auth;

/* Builds the access control of cfg->auth_mode; for jwt reads the secret file
 * and/or the JWKS file. PX_ERR_CONFIG (or PX_ERR_IO) with one line naming the
 * setting in err. Free with px_auth_free(). */
px_rc px_auth_new(const struct px_config *cfg, struct px_auth **out, char *err,
                  size_t errlen) PX_WUR;
/* Frees auth and its keys. Accepts NULL. */
void px_auth_free(struct px_auth *auth);
/* The mode; a NULL auth is PX_AUTH_NONE. */
enum px_auth_mode px_auth_mode(const struct px_auth *auth);
/* The jwt verifier (NULL unless mode jwt). */
const struct px_jwt_verifier *px_auth_verifier(const struct px_auth *auth);

/* Establishes req->identity according to the mode, at time now (epoch s).
 * PX_OK: the caller may go on (identity set, or mode none). PX_ERR_DENIED:
 * resp holds 401 UNAUTHORIZED (with WWW-Authenticate: Bearer) or 403
 * FORBIDDEN. Other codes: resp holds 500. */
px_rc px_auth_authenticate(const struct px_auth *auth, struct px_request *req, int64_t now,
                           struct px_response *resp) PX_WUR;

/* Whether identity grants permission (exact match among its scopes). A NULL
 * permission asks for an authenticated caller only. */
bool px_auth_permits(const struct px_identity *identity, const char *permission);

/* The router's gate: authenticate, then require permission. Same results as
 * px_auth_authenticate(); a caller without the permission gets 403 (with
 * WWW-Authenticate: Bearer error="insufficient_scope" in jwt mode). Mode none
 * lets everything through. */
px_rc px_auth_check(const struct px_auth *auth, struct px_request *req, const char *permission,
                    struct px_response *resp) PX_WUR;

/* Whether serve's --host is a loopback address: 127.0.0.0/8, ::1 (also in
 * brackets or as ::ffff:127.x.y.z) or "localhost". */
bool px_auth_host_is_loopback(const char *host);

#endif
