/* secrets.c: GetSecretValue (see secrets.h). */
#include "secrets.h"
#include "dynamodb.h"
#include "../kernel/b64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_MAX (64 * 1024) /* Secrets Manager's own cap on a value */

bool px_secret_arn_region(const char *id, char *out, size_t cap)
{
    /* arn : partition : service : region : account : secret : name */
    const char *f[7] = {0};
    size_t n = 0;
    const char *p = id;
    if (!id || strncmp(id, "arn:", 4) != 0)
        return false;
    f[n++] = p;
    while (n < 7 && (p = strchr(p, ':'))) {
        p++;
        f[n++] = p;
    }
    if (n < 7 || strncmp(f[2], "secretsmanager:", 15) != 0 || strncmp(f[5], "secret:", 7) != 0)
        return false;
    size_t rl = (size_t)(f[4] - f[3] - 1);
    if (!rl || rl >= cap)
        return false;
    for (size_t i = 0; i < rl; i++) {
        char c = f[3][i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    memcpy(out, f[3], rl);
    out[rl] = '\0';
    return true;
}

char *px_secret_request_body(const char *id)
{
    json_t *o = json_pack("{s:s}", "SecretId", id);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return body;
}

px_rc px_secret_parse(const json_t *resp, char **value, size_t *len, char *err, size_t errlen)
{
    *value = NULL;
    *len = 0;
    const json_t *s = json_object_get(resp, "SecretString");
    const json_t *b = json_object_get(resp, "SecretBinary");
    if (json_is_string(s)) {
        size_t n = json_string_length(s);
        if (n == 0 || n > SECRET_MAX) {
            snprintf(err, errlen, "the secret's SecretString is empty or too large");
            return PX_ERR_PROTOCOL;
        }
        *value = malloc(n + 1);
        if (!*value)
            return PX_ERR_NOMEM;
        memcpy(*value, json_string_value(s), n);
        (*value)[n] = '\0';
        *len = n;
        return PX_OK;
    }
    if (json_is_string(b)) {
        size_t n = json_string_length(b);
        size_t cap = px_b64_decoded_max(n) + 1;
        if (n == 0 || n > 2 * SECRET_MAX || !(*value = malloc(cap))) {
            snprintf(err, errlen, "the secret's SecretBinary is empty or too large");
            return n && n <= 2 * SECRET_MAX ? PX_ERR_NOMEM : PX_ERR_PROTOCOL;
        }
        px_rc rc =
            px_b64_decode(json_string_value(b), n, PX_B64_STD, PX_B64_PAD, *value, cap - 1, len);
        if (rc) {
            px_secret_free(*value, cap);
            *value = NULL;
            *len = 0;
            snprintf(err, errlen, "the secret's SecretBinary is not base64");
            return PX_ERR_PROTOCOL;
        }
        (*value)[*len] = '\0';
        return PX_OK;
    }
    snprintf(err, errlen, "the answer has neither SecretString nor SecretBinary");
    return PX_ERR_PROTOCOL;
}

px_rc px_secret_get(const struct px_secret_config *cfg, const char *id, char **value, size_t *len,
                    char *err, size_t errlen)
{
    *value = NULL;
    *len = 0;
    if (!id || !*id || strlen(id) > 2048) {
        snprintf(err, errlen, "no secret id");
        return PX_ERR_CONFIG;
    }
    char region[64] = "";
    if (cfg->region && *cfg->region)
        snprintf(region, sizeof(region), "%s", cfg->region);
    if (!px_secret_arn_region(id, region, sizeof(region)) && !region[0]) {
        snprintf(err, errlen, "%.300s: not a Secrets Manager ARN, and AWS_REGION is not set", id);
        return PX_ERR_CONFIG;
    }
    if (!cfg->access_key_id || !*cfg->access_key_id || !cfg->secret_access_key ||
        !*cfg->secret_access_key) {
        snprintf(err, errlen,
                 "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: not set (needed to read "
                 "the secret)");
        return PX_ERR_CONFIG;
    }
    char url[256];
    const char *ep = cfg->endpoint;
    if (!ep || !*ep) {
        snprintf(url, sizeof(url), "https://secretsmanager.%s.amazonaws.com%s/", region,
                 strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
        ep = url;
    }
    const struct px_ddb_config dc = {
        .region = region,
        .endpoint = ep,
        .access_key_id = cfg->access_key_id,
        .secret_access_key = cfg->secret_access_key,
        .session_token = cfg->session_token,
        .max_response = 256 * 1024,
        .service = "secretsmanager",
        .target_prefix = "secretsmanager.",
        .json_version = "1.1",
        .label = "Secrets Manager",
        .endpoint_var = "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    };
    struct px_ddb *c = NULL;
    char cerr[512] = "";
    px_rc rc = px_ddb_new(&dc, &c, cerr, sizeof(cerr));
    if (rc) {
        snprintf(err, errlen, "%s", cerr);
        return rc;
    }
    char *body = px_secret_request_body(id);
    json_t *resp = NULL;
    struct px_ddb_error e;
    memset(&e, 0, sizeof(e));
    long t = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
    rc = body ? px_ddb_call(c, "GetSecretValue", body, strlen(body), px_ddb_now_ms() + t, &resp, &e)
              : PX_ERR_NOMEM;
    if (rc && e.type[0])
        snprintf(err, errlen, "GetSecretValue %.300s: %s: %s", id, e.type, e.message);
    else if (rc && e.http_status)
        snprintf(err, errlen, "GetSecretValue %.300s: Secrets Manager answered HTTP %ld", id,
                 e.http_status);
    else if (rc)
        snprintf(err, errlen, "GetSecretValue %.300s: %s", id,
                 e.message[0] ? e.message : px_strerror(rc));
    else
        rc = px_secret_parse(resp, value, len, err, errlen);
    json_decref(resp); /* jansson does not clear: the value also lived here */
    free(body);
    px_ddb_free(c);
    return rc;
}

void px_secret_free(char *value, size_t len)
{
    if (!value)
        return;
    volatile char *p = value;
    for (size_t i = 0; i < len; i++)
        p[i] = 0;
    free(value);
}
