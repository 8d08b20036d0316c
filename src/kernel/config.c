/* config.c: configuration as data (CONTRACT §6).
 *
 * One static const defaults struct and one table of settings; the same table
 * drives the environment, the flags, the error messages and the usage text. */
#include "config.h"
#include "cors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const struct px_config px_config_defaults = {
    .price_db = "sqlite:./var/prices.db",
    .audit_store = "sqlite:./var/audit.db",
    .product_store = "sqlite:./var/products.db",
    .config_store = "sqlite:./var/config.db",
    .config_cache_ttl_s = 5,
    .config_stale_max_s = 300,
    .aws_region = "",
    .aws_access_key_id = "",
    .aws_secret_access_key = "",
    .aws_session_token = "",
    .dynamodb_endpoint = "",
    .audit_retention_days = 90,
    .log_level = PX_LOG_INFO,
    .host = "127.0.0.1",
    .port = 3000,
    .audit_timeout_ms = 2000,
    .audit_create = 0,
    .price_timeout_ms = 2000,
    .max_connections = 1024,
    .conn_timeout_s = 15,
    .threads = 2,
    .metrics_namespace = "Pricing",
    .metrics_service = "pricing",
    .auth_mode = PX_AUTH_NONE,
    .auth_mode_set = false,
    .jwt_secret_file = "",
    .jwks_file = "",
    .jwt_issuer = "",
    .jwt_audience = "",
    .jwt_clock_skew_s = 60,
    .rate_limit_rps = 0,
    .rate_limit_burst = 0,
    .max_conns_per_ip = 0,
    .cors_origins = "",
    .event_sink = "none",
    .sqs_endpoint = "",
    .sns_endpoint = "",
    .event_max_attempts = 8,
    .event_retry_base_ms = 500,
    .event_retry_cap_ms = 60000,
    .event_lease_ms = 30000,
    .event_batch = 64,
    .event_poll_ms = 500,
    .tenancy = false,
};

enum stype { S_STRING, S_INT, S_LOGLEVEL, S_AUTHMODE, S_ONOFF };

struct setting {
    const char *env;          /* NULL: flag only */
    const char *env_fallback; /* read when env is unset */
    const char *unless_env;   /* ignore env when this one is set (TABLE_AUDIT vs AUDIT_STORE) */
    const char *prefix;       /* prepended to the value (TABLE_AUDIT -> "dynamodb:") */
    const char *flag;         /* NULL: environment only */
    enum stype type;
    size_t offset;
    size_t size; /* S_STRING: bytes of the field, NUL included */
    long min, max;
    bool secret; /* never echo the value */
    const char *help;
};

#define STR(field)                                                                                 \
    S_STRING, offsetof(struct px_config, field), sizeof(((struct px_config *)0)->field)
#define INT(field) S_INT, offsetof(struct px_config, field), sizeof(long)

static const struct setting settings[] = {
    {"PRICE_DB", NULL, NULL, NULL, "--price-db", STR(price_db), 0, 0, false,
     "price store: sqlite:PATH or postgresql://user:pass@host:port/db"},
    {"AUDIT_STORE", NULL, NULL, NULL, "--audit-store", STR(audit_store), 0, 0, false,
     "audit store: sqlite:PATH or dynamodb:TABLE"},
    {"TABLE_AUDIT", NULL, "AUDIT_STORE", "dynamodb:", NULL, STR(audit_store), 0, 0, false,
     "DynamoDB audit table (same as AUDIT_STORE=dynamodb:TABLE)"},
    {"PRODUCT_STORE", NULL, NULL, NULL, "--product-store", STR(product_store), 0, 0, false,
     "product catalogue store: sqlite:PATH or dynamodb:TABLE"},
    {"TABLE_PRODUCTS", NULL, "PRODUCT_STORE", "dynamodb:", NULL, STR(product_store), 0, 0, false,
     "DynamoDB product table (same as PRODUCT_STORE=dynamodb:TABLE)"},
    {"CONFIG_STORE", NULL, NULL, NULL, "--config-store", STR(config_store), 0, 0, false,
     "configuration and feature flag store: sqlite:PATH or dynamodb:TABLE"},
    {"CONFIG_CACHE_TTL_S", NULL, NULL, NULL, "--config-cache-ttl", INT(config_cache_ttl_s), 0, 3600,
     false, "seconds a function may serve cached config and flags before reading them again"},
    {"CONFIG_STALE_MAX_S", NULL, NULL, NULL, "--config-stale-max", INT(config_stale_max_s), 0,
     86400, false,
     "seconds a config store outage serves the last known values before the defaults"},
    {"AUDIT_RETENTION_DAYS", NULL, NULL, NULL, "--audit-retention-days", INT(audit_retention_days),
     1, 3650, false, "days until an audit record expires"},
    {"LOG_LEVEL", NULL, NULL, NULL, "--log-level", S_LOGLEVEL,
     offsetof(struct px_config, log_level), sizeof(enum px_log_level), 0, 0, false,
     "debug, info, warn or error"},
    {"AWS_REGION", "AWS_DEFAULT_REGION", NULL, NULL, "--region", STR(aws_region), 0, 0, false,
     "AWS region of the DynamoDB table"},
    {"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL", NULL, NULL, "--dynamodb-endpoint",
     STR(dynamodb_endpoint), 0, 0, false, "DynamoDB endpoint URL (local or compatible stores)"},
    {"AWS_ACCESS_KEY_ID", NULL, NULL, NULL, NULL, STR(aws_access_key_id), 0, 0, true,
     "AWS credentials"},
    {"AWS_SECRET_ACCESS_KEY", NULL, NULL, NULL, NULL, STR(aws_secret_access_key), 0, 0, true,
     "AWS credentials"},
    {"AWS_SESSION_TOKEN", NULL, NULL, NULL, NULL, STR(aws_session_token), 0, 0, true,
     "AWS credentials"},
    {"AUDIT_MAX_BATCH", NULL, NULL, NULL, "--audit-max-batch", INT(audit_max_batch), 0, 1000, false,
     "records per group commit; 0 = the store's own (DynamoDB: 25 per TransactWriteItems, "
     "1 = one PutItem per record)"},
    {"AUDIT_TIMEOUT_MS", NULL, NULL, NULL, "--audit-timeout-ms", INT(audit_timeout_ms), 50, 60000,
     false, "bound on making one audit record durable"},
    {"AUDIT_CREATE", NULL, NULL, NULL, "--audit-create", INT(audit_create), 0, 1, false,
     "1: a missing SQLite audit file may be created (a new, empty trail); 0: only db seed does"},
    {"AUDIT_SIGNING_KEY_FILE", NULL, NULL, NULL, "--audit-signing-key-file", STR(signing_key), 0, 0,
     false, "Ed25519 private key (PEM) signing audit checkpoints (pricing audit keygen)"},
    {"PRICE_TIMEOUT_MS", NULL, NULL, NULL, "--price-timeout-ms", INT(price_timeout_ms), 50, 60000,
     false, "bound on one price read"},
    {NULL, NULL, NULL, NULL, "--host", STR(host), 0, 0, false, "address serve listens on"},
    {NULL, NULL, NULL, NULL, "--port", INT(port), 0, 65535, false,
     "port serve listens on (0 = any free port)"},
    {"MAX_CONNECTIONS", NULL, NULL, NULL, "--max-connections", INT(max_connections), 1, 100000,
     false, "connections serve accepts at once"},
    {"CONNECTION_TIMEOUT", NULL, NULL, NULL, "--connection-timeout", INT(conn_timeout_s), 1, 3600,
     false, "seconds before an idle or slow connection is closed"},
    {"SERVER_THREADS", NULL, NULL, NULL, "--threads", INT(threads), 1, 64, false,
     "worker threads of serve"},
    {"METRICS_NAMESPACE", NULL, NULL, NULL, "--metrics-namespace", STR(metrics_namespace), 0, 0,
     false, "CloudWatch namespace of the Embedded Metric Format lines (Lambda)"},
    {"METRICS_SERVICE", NULL, NULL, NULL, "--metrics-service", STR(metrics_service), 0, 0, false,
     "value of the `service` dimension of the metric lines (Lambda)"},
    {"AUTH_MODE", NULL, NULL, NULL, "--auth", S_AUTHMODE, offsetof(struct px_config, auth_mode),
     sizeof(enum px_auth_mode), 0, 0, false,
     "none, jwt or apigw (default none; apigw inside AWS Lambda)"},
    {"AUTH_JWT_SECRET_FILE", NULL, NULL, NULL, "--jwt-secret-file", STR(jwt_secret_file), 0, 0,
     false, "file holding the HS256 secret (at least 32 bytes) for AUTH_MODE=jwt"},
    {"AUTH_JWKS_FILE", NULL, NULL, NULL, "--jwks-file", STR(jwks_file), 0, 0, false,
     "JWKS file with the RS256 / ES256 public keys for AUTH_MODE=jwt"},
    {"AUTH_ISSUER", NULL, NULL, NULL, "--jwt-issuer", STR(jwt_issuer), 0, 0, false,
     "required iss claim (unset: not checked)"},
    {"AUTH_AUDIENCE", NULL, NULL, NULL, "--jwt-audience", STR(jwt_audience), 0, 0, false,
     "required aud claim (unset: tokens carrying aud are refused)"},
    {"AUTH_CLOCK_SKEW_S", NULL, NULL, NULL, "--jwt-clock-skew", INT(jwt_clock_skew_s), 0, 600,
     false, "seconds of clock skew allowed on exp, nbf, iat"},
    {"RATE_LIMIT_RPS", NULL, NULL, NULL, "--rate-limit", INT(rate_limit_rps), 0, 1000000, false,
     "requests per second per caller (subject, else client address); 0 = no throttling"},
    {"RATE_LIMIT_BURST", NULL, NULL, NULL, "--rate-burst", INT(rate_limit_burst), 0, 1000000, false,
     "requests a caller may make at once before the rate applies; 0 = the rate"},
    {"MAX_CONNECTIONS_PER_IP", NULL, NULL, NULL, "--max-connections-per-ip", INT(max_conns_per_ip),
     0, 100000, false, "connections serve accepts from one client address; 0 = no per-address cap"},
    {"CORS_ALLOW_ORIGINS", NULL, NULL, NULL, "--cors-origins", STR(cors_origins), 0, 0, false,
     "comma-separated browser origins allowed cross-origin (unset: none)"},
    {"EVENT_SINK", NULL, NULL, NULL, "--event-sink", STR(event_sink), 0, 0, false,
     "where the event relay publishes: none, amqp://user:pass@host:port/vhost?exchange=NAME,"
     " sqs:QUEUE_URL or sns:TOPIC_ARN"},
    {"AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL", NULL, NULL, "--sqs-endpoint", STR(sqs_endpoint), 0,
     0, false, "SQS endpoint URL (local or compatible services)"},
    {"AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL", NULL, NULL, "--sns-endpoint", STR(sns_endpoint), 0,
     0, false, "SNS endpoint URL (local or compatible services)"},
    {"EVENT_MAX_ATTEMPTS", NULL, NULL, NULL, "--event-max-attempts", INT(event_max_attempts), 1,
     1000, false, "failed publishes before an event is parked (events list --failed)"},
    {"EVENT_RETRY_BASE_MS", NULL, NULL, NULL, "--event-retry-base-ms", INT(event_retry_base_ms), 1,
     3600000, false, "first retry delay of a failed publish (doubles each time, with jitter)"},
    {"EVENT_RETRY_CAP_MS", NULL, NULL, NULL, "--event-retry-cap-ms", INT(event_retry_cap_ms), 1,
     86400000, false, "largest retry delay of a failed publish"},
    {"EVENT_LEASE_MS", NULL, NULL, NULL, "--event-lease-ms", INT(event_lease_ms), 100, 3600000,
     false, "how long a relay owns the events it claimed (another relay may take them after)"},
    {"EVENT_BATCH", NULL, NULL, NULL, "--event-batch", INT(event_batch), 1, 10000, false,
     "events a relay claims per outbox per round"},
    {"EVENT_POLL_MS", NULL, NULL, NULL, "--event-poll-ms", INT(event_poll_ms), 10, 600000, false,
     "relay's wait between rounds that found nothing to publish"},
    {"TENANCY", NULL, NULL, NULL, "--tenancy", S_ONOFF, offsetof(struct px_config, tenancy),
     sizeof(bool), 0, 0, false,
     "off or on: on scopes every request to one tenant (token claim or X-Tenant-ID)"},
};

static const char *const auth_mode_names[] = {
    [PX_AUTH_NONE] = "none",
    [PX_AUTH_JWT] = "jwt",
    [PX_AUTH_APIGW] = "apigw",
};

const char *px_auth_mode_name(enum px_auth_mode mode)
{
    return (size_t)mode < PX_COUNTOF(auth_mode_names) ? auth_mode_names[mode] : "none";
}

void px_config_default_auth_mode(struct px_config *cfg, enum px_auth_mode mode)
{
    if (cfg && !cfg->auth_mode_set)
        cfg->auth_mode = mode;
}

static const char *const level_names[] = {
    [PX_LOG_DEBUG] = "debug",
    [PX_LOG_INFO] = "info",
    [PX_LOG_WARN] = "warn",
    [PX_LOG_ERROR] = "error",
};

/* A bounded, printable echo of a bad value for an error line. */
static void echo(const char *value, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; value[i] && o + 4 < outlen; i++) {
        if (i >= 64) {
            out[o++] = '.';
            out[o++] = '.';
            out[o++] = '.';
            break;
        }
        unsigned char c = (unsigned char)value[i];
        out[o++] = (c < 0x20 || c == 0x7F || c == '"') ? '?' : (char)c;
    }
    out[o] = '\0';
}

static px_rc fail_value(const struct setting *s, const char *name, const char *value,
                        const char *problem, char *err, size_t errlen)
{
    char shown[80];
    if (s->secret) {
        snprintf(err, errlen, "%s: %s", name, problem);
    } else {
        echo(value, shown, sizeof(shown));
        snprintf(err, errlen, "%s: %s (got \"%s\")", name, problem, shown);
    }
    return PX_ERR_CONFIG;
}

static bool parse_long(const char *s, long *out)
{
    if (!s || !*s || !((*s >= '0' && *s <= '9') || *s == '-' || *s == '+'))
        return false;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || !end || end == s || *end)
        return false;
    *out = v;
    return true;
}

/* Applies value to the setting; `name` is what the user wrote (variable or flag). */
static px_rc apply(struct px_config *cfg, const struct setting *s, const char *name,
                   const char *value, char *err, size_t errlen)
{
    char *field = (char *)cfg + s->offset;
    switch (s->type) {
    case S_STRING: {
        size_t plen = s->prefix ? strlen(s->prefix) : 0;
        size_t vlen = strlen(value);
        if (plen + vlen >= s->size) {
            snprintf(err, errlen, "%s: too long (%zu bytes, at most %zu)", name, vlen,
                     s->size - 1 - plen);
            return PX_ERR_CONFIG;
        }
        if (plen)
            memcpy(field, s->prefix, plen);
        memcpy(field + plen, value, vlen + 1);
        return PX_OK;
    }
    case S_INT: {
        long v = 0;
        if (!parse_long(value, &v) || v < s->min || v > s->max) {
            char problem[96];
            snprintf(problem, sizeof(problem), "must be an integer between %ld and %ld", s->min,
                     s->max);
            return fail_value(s, name, value, problem, err, errlen);
        }
        memcpy(field, &v, sizeof(v));
        return PX_OK;
    }
    case S_LOGLEVEL:
        for (size_t i = 0; i < PX_COUNTOF(level_names); i++) {
            if (strcasecmp(value, level_names[i]) == 0) {
                enum px_log_level l = (enum px_log_level)i;
                memcpy(field, &l, sizeof(l));
                return PX_OK;
            }
        }
        return fail_value(s, name, value, "must be one of debug, info, warn, error", err, errlen);
    case S_AUTHMODE:
        for (size_t i = 0; i < PX_COUNTOF(auth_mode_names); i++) {
            if (strcasecmp(value, auth_mode_names[i]) == 0) {
                enum px_auth_mode m = (enum px_auth_mode)i;
                memcpy(field, &m, sizeof(m));
                cfg->auth_mode_set = true;
                return PX_OK;
            }
        }
        return fail_value(s, name, value, "must be one of none, jwt, apigw", err, errlen);
    case S_ONOFF: {
        bool on = strcasecmp(value, "on") == 0;
        if (!on && strcasecmp(value, "off") != 0)
            return fail_value(s, name, value, "must be off or on", err, errlen);
        memcpy(field, &on, sizeof(on));
        return PX_OK;
    }
    }
    snprintf(err, errlen, "%s: unsupported setting type", name);
    return PX_ERR_INTERNAL;
}

/* An empty variable counts as unset, as `${VAR:-}` in a compose file means. */
static const char *env_value(const char *name)
{
    if (!name)
        return NULL;
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

px_rc px_config_from_env(struct px_config *cfg, char *err, size_t errlen)
{
    px_rc rc = PX_OK;
    *cfg = px_config_defaults;
    for (size_t i = 0; i < PX_COUNTOF(settings) && !rc; i++) {
        const struct setting *s = &settings[i];
        if (!s->env || env_value(s->unless_env))
            continue;
        const char *name = s->env;
        const char *value = env_value(name);
        if (!value && s->env_fallback) {
            name = s->env_fallback;
            value = env_value(name);
        }
        if (value)
            rc = apply(cfg, s, name, value, err, errlen);
    }
    /* Inside Lambda the default is to trust API Gateway's authorizer, never to be open. */
    if (!rc && env_value("AWS_LAMBDA_RUNTIME_API"))
        px_config_default_auth_mode(cfg, PX_AUTH_APIGW);
    return rc;
}

px_rc px_config_set_flag(struct px_config *cfg, const char *flag, const char *value, char *err,
                         size_t errlen)
{
    if (!flag)
        return PX_ERR_NOT_FOUND;
    for (size_t i = 0; i < PX_COUNTOF(settings); i++) {
        const struct setting *s = &settings[i];
        if (!s->flag || strcmp(s->flag, flag) != 0)
            continue;
        if (!value) {
            snprintf(err, errlen, "%s: needs a value", flag);
            return PX_ERR_CONFIG;
        }
        return apply(cfg, s, flag, value, err, errlen);
    }
    return PX_ERR_NOT_FOUND;
}

static bool valid_table_name(const char *t)
{
    size_t n = strlen(t);
    if (n < 3 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The scheme of a spec, for error lines: a URI may carry a password, so the
 * rest is never echoed. */
static void scheme_of(const char *spec, char *out, size_t outlen)
{
    size_t n = strcspn(spec, ":");
    if (n > 32)
        n = 32;
    char tmp[40];
    memcpy(tmp, spec, n);
    tmp[n] = '\0';
    echo(tmp, out, outlen);
}

const char *px_config_signing_key(const struct px_config *cfg)
{
    if (cfg->signing_key[0])
        return cfg->signing_key;
    /* The key db seed made beside the default trail signs that trail only. */
    if (strcmp(cfg->audit_store, px_config_defaults.audit_store) == 0 &&
        access(PX_DEFAULT_SIGNING_KEY, F_OK) == 0)
        return PX_DEFAULT_SIGNING_KEY;
    return NULL;
}

px_rc px_config_check(const struct px_config *cfg, char *err, size_t errlen)
{
    const char *p = cfg->price_db;
    char scheme[48];
    if (!((starts_with(p, "sqlite:") && p[7]) || (starts_with(p, "postgresql://") && p[13]) ||
          (starts_with(p, "postgres://") && p[11]))) {
        scheme_of(p, scheme, sizeof(scheme));
        snprintf(err, errlen,
                 "PRICE_DB (--price-db): must be sqlite:PATH or postgresql://... (got scheme "
                 "\"%s\")",
                 scheme);
        return PX_ERR_CONFIG;
    }
    const char *a = cfg->audit_store;
    if (starts_with(a, "sqlite:")) {
        if (!a[7]) {
            snprintf(err, errlen, "AUDIT_STORE (--audit-store): sqlite: needs a path");
            return PX_ERR_CONFIG;
        }
    } else if (starts_with(a, "lsm:")) {
        if (!a[4]) {
            snprintf(err, errlen, "AUDIT_STORE (--audit-store): lsm: needs a directory");
            return PX_ERR_CONFIG;
        }
    } else if (starts_with(a, "dynamodb:")) {
        if (!valid_table_name(a + 9)) {
            char shown[80];
            echo(a + 9, shown, sizeof(shown));
            snprintf(err, errlen,
                     "AUDIT_STORE (--audit-store, TABLE_AUDIT): the DynamoDB table name must be "
                     "3-255 characters of A-Z a-z 0-9 _ . - (got \"%s\")",
                     shown);
            return PX_ERR_CONFIG;
        }
    } else {
        scheme_of(a, scheme, sizeof(scheme));
        snprintf(err, errlen,
                 "AUDIT_STORE (--audit-store): must be sqlite:PATH, lsm:DIR or dynamodb:TABLE "
                 "(got scheme "
                 "\"%s\")",
                 scheme);
        return PX_ERR_CONFIG;
    }
    const char *ps = cfg->product_store;
    if (starts_with(ps, "dynamodb:")) {
        if (!valid_table_name(ps + 9)) {
            char shown[80];
            echo(ps + 9, shown, sizeof(shown));
            snprintf(err, errlen,
                     "PRODUCT_STORE (--product-store, TABLE_PRODUCTS): the DynamoDB table name "
                     "must be 3-255 characters of A-Z a-z 0-9 _ . - (got \"%s\")",
                     shown);
            return PX_ERR_CONFIG;
        }
    } else if (!starts_with(ps, "sqlite:") || !ps[7]) {
        scheme_of(ps, scheme, sizeof(scheme));
        snprintf(err, errlen,
                 "PRODUCT_STORE (--product-store): must be sqlite:PATH or dynamodb:TABLE (got "
                 "scheme \"%s\")",
                 scheme);
        return PX_ERR_CONFIG;
    }
    if (!(starts_with(cfg->config_store, "sqlite:") && cfg->config_store[7]) &&
        !(starts_with(cfg->config_store, "dynamodb:") && cfg->config_store[9])) {
        scheme_of(cfg->config_store, scheme, sizeof(scheme));
        snprintf(err, errlen,
                 "CONFIG_STORE (--config-store): must be sqlite:PATH or dynamodb:TABLE (got "
                 "scheme \"%s\")",
                 scheme);
        return PX_ERR_CONFIG;
    }
    if (cfg->auth_mode == PX_AUTH_JWT && !cfg->jwt_secret_file[0] && !cfg->jwks_file[0]) {
        snprintf(err, errlen,
                 "AUTH_MODE (--auth): jwt needs AUTH_JWT_SECRET_FILE (--jwt-secret-file) or "
                 "AUTH_JWKS_FILE (--jwks-file)");
        return PX_ERR_CONFIG;
    }
    char why[256];
    if (px_cors_check_origins(cfg->cors_origins, why, sizeof(why)) != PX_OK) {
        snprintf(err, errlen, "CORS_ALLOW_ORIGINS (--cors-origins): %s", why);
        return PX_ERR_CONFIG;
    }
    return PX_OK;
}

static void default_text(const struct setting *s, char *out, size_t outlen)
{
    const char *field = (const char *)&px_config_defaults + s->offset;
    switch (s->type) {
    case S_STRING:
        if (s->prefix || !field[0])
            snprintf(out, outlen, "-");
        else
            snprintf(out, outlen, "%s", s->secret ? "(set)" : field);
        return;
    case S_INT: {
        long v;
        memcpy(&v, field, sizeof(v));
        snprintf(out, outlen, "%ld", v);
        return;
    }
    case S_LOGLEVEL:
        snprintf(out, outlen, "%s", level_names[px_config_defaults.log_level]);
        return;
    case S_AUTHMODE:
        snprintf(out, outlen, "%s", px_auth_mode_name(px_config_defaults.auth_mode));
        return;
    case S_ONOFF: {
        bool on;
        memcpy(&on, field, sizeof(on));
        snprintf(out, outlen, "%s", on ? "on" : "off");
        return;
    }
    }
    out[0] = '\0';
}

void px_config_usage(void *f)
{
    FILE *out = f;
    if (!out)
        return;
    fprintf(out, "  %-24s %-44s %s\n", "flag", "environment", "default");
    for (size_t i = 0; i < PX_COUNTOF(settings); i++) {
        const struct setting *s = &settings[i];
        char env[96], def[64];
        if (s->env && s->env_fallback)
            snprintf(env, sizeof(env), "%s, %s", s->env, s->env_fallback);
        else
            snprintf(env, sizeof(env), "%s", s->env ? s->env : "-");
        default_text(s, def, sizeof(def));
        char bounds[48] = "";
        if (s->type == S_INT)
            snprintf(bounds, sizeof(bounds), " [%ld..%ld]", s->min, s->max);
        fprintf(out, "  %-24s %-44s %s\n      %s%s\n", s->flag ? s->flag : "-", env, def, s->help,
                bounds);
    }
}
