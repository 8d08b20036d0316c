/* auth.c: AUTH_MODE none | jwt | apigw, and the permission check (see auth.h). */
#include "auth.h"

#include "errors.h"
#include "log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SECRET_SETTING "AUTH_JWT_SECRET_FILE (--jwt-secret-file)"
#define JWKS_SETTING   "AUTH_JWKS_FILE (--jwks-file)"

/* RFC 6750 3: a missing credential gets the bare challenge; a bad one says so. */
#define CHALLENGE         "Bearer realm=\"pricing\""
#define CHALLENGE_INVALID CHALLENGE ", error=\"invalid_token\""
#define CHALLENGE_EXPIRED CHALLENGE_INVALID ", error_description=\"the token expired\""

struct px_auth {
    enum px_auth_mode mode;
    struct px_jwt_verifier *jwt;
};

px_rc px_auth_new(const struct px_config *cfg, struct px_auth **out, char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    unsigned char *secret = NULL;
    size_t secret_len = 0;
    char *jwks = NULL;
    size_t jwks_len = 0;
    char why[512] = "";
    *out = NULL;
    struct px_auth *auth = calloc(1, sizeof(*auth));
    if (!auth) {
        snprintf(err, errlen, "out of memory");
        return PX_ERR_NOMEM;
    }
    auth->mode = cfg->auth_mode;
    if (auth->mode != PX_AUTH_JWT)
        goto done;

    if (!cfg->jwt_secret_file[0] && !cfg->jwks_file[0]) {
        snprintf(err, errlen, "AUTH_MODE (--auth): jwt needs " SECRET_SETTING " or " JWKS_SETTING);
        rc = PX_ERR_CONFIG;
        goto out;
    }
    if (cfg->jwt_secret_file[0]) {
        rc = px_jwt_read_secret(cfg->jwt_secret_file, &secret, &secret_len, why, sizeof(why));
        if (rc) {
            snprintf(err, errlen, SECRET_SETTING ": %s", why);
            rc = PX_ERR_CONFIG;
            goto out;
        }
    }
    if (cfg->jwks_file[0]) {
        rc = px_jwt_read_file(cfg->jwks_file, PX_JWT_MAX_JWKS, &jwks, &jwks_len, why, sizeof(why));
        if (rc) {
            snprintf(err, errlen, JWKS_SETTING ": %s", why);
            rc = PX_ERR_CONFIG;
            goto out;
        }
    }
    const struct px_jwt_settings s = {
        .hs256_secret = secret,
        .hs256_secret_len = secret_len,
        .jwks = jwks,
        .jwks_len = jwks_len,
        .issuer = cfg->jwt_issuer,
        .audience = cfg->jwt_audience,
        .clock_skew_s = cfg->jwt_clock_skew_s,
    };
    rc = px_jwt_verifier_new(&s, &auth->jwt, why, sizeof(why));
    if (rc) {
        /* The secret was checked on reading, so what remains is about the JWKS. */
        snprintf(err, errlen, "%s: %s", jwks ? JWKS_SETTING : SECRET_SETTING, why);
        if (rc != PX_ERR_NOMEM)
            rc = PX_ERR_CONFIG;
        goto out;
    }
done:
    *out = auth;
    auth = NULL;
out:
    px_jwt_secret_free(secret, secret_len);
    free(jwks);
    px_auth_free(auth);
    return rc;
}

void px_auth_free(struct px_auth *auth)
{
    if (!auth)
        return;
    px_jwt_verifier_free(auth->jwt);
    free(auth);
}

enum px_auth_mode px_auth_mode(const struct px_auth *auth)
{
    return auth ? auth->mode : PX_AUTH_NONE;
}

const struct px_jwt_verifier *px_auth_verifier(const struct px_auth *auth)
{
    return auth ? auth->jwt : NULL;
}

bool px_auth_permits(const struct px_identity *identity, const char *permission)
{
    if (!identity || !identity->subject)
        return false;
    if (!permission)
        return true;
    for (size_t i = 0; identity->scopes && identity->scopes[i] && i < PX_JWT_MAX_SCOPES + 1; i++)
        if (strcmp(identity->scopes[i], permission) == 0)
            return true;
    return false;
}

/* 401 with its challenge; PX_ERR_DENIED. */
static px_rc unauthorized(struct px_request *req, struct px_response *resp, const char *message,
                          const char *challenge)
{
    px_error_response(req, resp, PX_E_UNAUTHORIZED, message, NULL, 0);
    if (resp->status == 401 && px_response_header(resp, "WWW-Authenticate", challenge))
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
    return resp->status == 401 ? PX_ERR_DENIED : PX_ERR_INTERNAL;
}

/* The bearer token of the request. *count is the number of Authorization
 * headers; *tok is NULL when the one header is not a Bearer credential. */
static void bearer_token(const struct px_request *req, size_t *count, const char **tok, size_t *len)
{
    const char *value = NULL;
    *count = 0;
    *tok = NULL;
    *len = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].key && strcasecmp(req->headers[i].key, "authorization") == 0) {
            value = req->headers[i].value;
            (*count)++;
        }
    }
    if (*count != 1 || !value)
        return;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
        return;
    const char *t = value + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    *tok = t;
    *len = n;
}

static px_rc authenticate_jwt(const struct px_auth *auth, struct px_request *req, int64_t now,
                              struct px_response *resp)
{
    size_t count, len;
    const char *tok;
    bearer_token(req, &count, &tok, &len);
    if (count == 0 || (count == 1 && !tok))
        return unauthorized(req, resp, "a bearer token is required", CHALLENGE);
    if (count > 1 || len == 0) {
        PX_INFO(req->request_id, "access refused: %s",
                count > 1 ? "more than one Authorization header" : "empty bearer token");
        return unauthorized(req, resp, "the bearer token is not valid", CHALLENGE_INVALID);
    }
    struct px_jwt_claims claims;
    enum px_jwt_why why = PX_JWT_OK;
    px_rc rc = px_jwt_verify(auth->jwt, tok, len, now, req->arena, &claims, &why);
    if (rc == PX_ERR_DENIED) {
        PX_INFO(req->request_id, "access refused: %s", px_jwt_why_text(why));
        return unauthorized(req, resp, "the bearer token is not valid",
                            why == PX_JWT_EXPIRED ? CHALLENGE_EXPIRED : CHALLENGE_INVALID);
    }
    if (rc) {
        px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
        return rc;
    }
    req->identity.subject = claims.subject;
    req->identity.scopes = claims.scopes;
    req->identity.tenant = claims.tenant;
    req->identity.tenants = claims.tenants;
    return PX_OK;
}

px_rc px_auth_authenticate(const struct px_auth *auth, struct px_request *req, int64_t now,
                           struct px_response *resp)
{
    switch (px_auth_mode(auth)) {
    case PX_AUTH_NONE:
        return PX_OK;
    case PX_AUTH_JWT:
        /* Only what this service verified may name the caller. */
        req->identity.subject = NULL;
        req->identity.scopes = NULL;
        req->identity.tenant = NULL;
        req->identity.tenants = NULL;
        return authenticate_jwt(auth, req, now, resp);
    case PX_AUTH_APIGW:
        if (req->identity.subject)
            return PX_OK;
        PX_INFO(req->request_id, "access refused: no authorizer claims in the event");
        px_error_response(req, resp, PX_E_FORBIDDEN,
                          "no authenticated caller: the request carries no authorizer claims", NULL,
                          0);
        return resp->status == 403 ? PX_ERR_DENIED : PX_ERR_INTERNAL;
    }
    px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
    return PX_ERR_INTERNAL;
}

px_rc px_auth_check(const struct px_auth *auth, struct px_request *req, const char *permission,
                    struct px_response *resp)
{
    enum px_auth_mode mode = px_auth_mode(auth);
    if (mode == PX_AUTH_NONE)
        return PX_OK;
    px_rc rc = px_auth_authenticate(auth, req, (int64_t)time(NULL), resp);
    if (rc)
        return rc;
    if (px_auth_permits(&req->identity, permission))
        return PX_OK;
    PX_INFO(req->request_id, "access refused: the caller lacks %s",
            permission ? permission : "authentication");
    char *message =
        permission ? px_arena_printf(req->arena, "this route needs the permission %s", permission)
                   : NULL;
    px_error_response(req, resp, PX_E_FORBIDDEN, message, NULL, 0);
    if (resp->status != 403)
        return PX_ERR_INTERNAL;
    if (mode == PX_AUTH_JWT && permission) {
        char *challenge = px_arena_printf(
            req->arena, CHALLENGE ", error=\"insufficient_scope\", scope=\"%s\"", permission);
        if (!challenge || px_response_header(resp, "WWW-Authenticate", challenge)) {
            px_error_response(req, resp, PX_E_INTERNAL, NULL, NULL, 0);
            return PX_ERR_INTERNAL;
        }
    }
    return PX_ERR_DENIED;
}

bool px_auth_host_is_loopback(const char *host)
{
    unsigned char addr[16];
    char buf[64];
    if (!host || !host[0])
        return false;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    size_t n = strlen(host);
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
        if (n - 2 >= sizeof(buf))
            return false;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    if (inet_pton(AF_INET, host, addr) == 1)
        return addr[0] == 127;
    if (inet_pton(AF_INET6, host, addr) != 1)
        return false;
    static const unsigned char loop6[16] = {[15] = 1};
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (memcmp(addr, loop6, 16) == 0)
        return true;
    return memcmp(addr, mapped, 12) == 0 && addr[12] == 127;
}
