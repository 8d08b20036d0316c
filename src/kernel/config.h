/* config.h: configuration as data (CONTRACT §6).
 *
 * A static const defaults struct plus one table of settings
 * {name, env var, flag, type, bounds}. Environment first, then flags, which win.
 * Every error names the setting. The struct is plain data owned by the caller. */
#ifndef PX_CONFIG_H
#define PX_CONFIG_H

#include "px.h"

enum px_log_level { PX_LOG_DEBUG, PX_LOG_INFO, PX_LOG_WARN, PX_LOG_ERROR };

/* Who authenticates callers (AUTH_MODE, see auth.h). */
enum px_auth_mode {
    PX_AUTH_NONE,  /* nobody: serve only on loopback unless --insecure-no-auth */
    PX_AUTH_JWT,   /* the service verifies `Authorization: Bearer <JWT>` */
    PX_AUTH_APIGW, /* API Gateway's JWT authorizer did; its claims are trusted */
};

struct px_config {
    char price_db[1024];      /* PRICE_DB, --price-db */
    char audit_store[1024];   /* AUDIT_STORE, --audit-store (TABLE_AUDIT -> dynamodb:TABLE) */
    char product_store[1024]; /* PRODUCT_STORE, --product-store, TABLE_PRODUCTS */
    char config_store[1024];  /* CONFIG_STORE, --config-store (sqlite:PATH) */
    long config_cache_ttl_s;  /* CONFIG_CACHE_TTL_S: age bound of cached config/flags, 0..3600 */
    long config_stale_max_s;  /* CONFIG_STALE_MAX_S: how long an outage serves last known values */
    char aws_region[64];      /* AWS_REGION */
    char aws_access_key_id[128];
    char aws_secret_access_key[256];
    char aws_session_token[4096];
    char dynamodb_endpoint[1024]; /* AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL */
    long audit_retention_days;    /* AUDIT_RETENTION_DAYS, 1..3650 */
    enum px_log_level log_level;  /* LOG_LEVEL */
    char host[256];               /* serve --host */
    long port;                    /* serve --port, 1..65535 (0 = any free port) */
    long audit_timeout_ms;        /* AUDIT_TIMEOUT_MS: bound on making one record durable */
    long audit_max_batch;         /* AUDIT_MAX_BATCH: records per group commit; 0 = store's own */
    long audit_create;            /* AUDIT_CREATE, --audit-create: 1 = may start a new trail */
    char signing_key[1024];       /* AUDIT_SIGNING_KEY_FILE: Ed25519 PEM, "" = default */
    long price_timeout_ms;        /* PRICE_TIMEOUT_MS: bound on one price read */
    long max_connections;         /* MAX_CONNECTIONS for serve */
    long conn_timeout_s;          /* CONNECTION_TIMEOUT for serve (idle / slow clients) */
    long threads;                 /* SERVER_THREADS for serve, 1..64 */
    char metrics_namespace[256];  /* METRICS_NAMESPACE: EMF namespace (Lambda) */
    char metrics_service[256];    /* METRICS_SERVICE: EMF `service` dimension */
    enum px_auth_mode auth_mode;  /* AUTH_MODE, --auth */
    bool auth_mode_set;           /* AUTH_MODE or --auth was given (else a default applies) */
    char jwt_secret_file[1024];   /* AUTH_JWT_SECRET_FILE, --jwt-secret-file (HS256) */
    char jwks_file[1024];         /* AUTH_JWKS_FILE, --jwks-file (RS256 / ES256) */
    char jwt_issuer[512];         /* AUTH_ISSUER, --jwt-issuer ("" = iss not checked) */
    char jwt_audience[512];       /* AUTH_AUDIENCE, --jwt-audience ("" = no aud accepted) */
    long jwt_clock_skew_s;        /* AUTH_CLOCK_SKEW_S, --jwt-clock-skew, 0..600 */
    long rate_limit_rps;          /* RATE_LIMIT_RPS, --rate-limit: tokens per second, 0 = off */
    long rate_limit_burst;        /* RATE_LIMIT_BURST, --rate-burst: bucket size, 0 = the rate */
    long max_conns_per_ip;        /* MAX_CONNECTIONS_PER_IP for serve, 0 = no per-address cap */
    char cors_origins[2048];      /* CORS_ALLOW_ORIGINS, --cors-origins: exact origins, "" = none */
    char event_sink[2048];    /* EVENT_SINK, --event-sink: none | amqp://.. | sqs:URL | sns:ARN */
    char sqs_endpoint[1024];  /* AWS_ENDPOINT_URL_SQS or AWS_ENDPOINT_URL */
    char sns_endpoint[1024];  /* AWS_ENDPOINT_URL_SNS or AWS_ENDPOINT_URL */
    long event_max_attempts;  /* EVENT_MAX_ATTEMPTS: failures before an event is parked */
    long event_retry_base_ms; /* EVENT_RETRY_BASE_MS: first backoff step */
    long event_retry_cap_ms;  /* EVENT_RETRY_CAP_MS: largest backoff */
    long event_lease_ms;      /* EVENT_LEASE_MS: how long a relay owns a claimed event */
    long event_batch;         /* EVENT_BATCH: events claimed per outbox per round */
    long event_poll_ms;       /* EVENT_POLL_MS: idle wait between empty rounds */
    bool tenancy;             /* TENANCY, --tenancy: on = every request names its tenant (§12) */
};

/* Built-in defaults (CONTRACT §6). */
extern const struct px_config px_config_defaults;

/* Starts from defaults, applies the environment. PX_ERR_CONFIG with one line
 * naming the variable in err. When AUTH_MODE is unset and AWS_LAMBDA_RUNTIME_API
 * is set (inside AWS Lambda), auth_mode becomes PX_AUTH_APIGW, auth_mode_set
 * staying false: a Lambda deployment is never open by omission. */
px_rc px_config_from_env(struct px_config *cfg, char *err, size_t errlen) PX_WUR;

/* Applies one command-line flag ("--price-db") with its value. PX_ERR_NOT_FOUND
 * when the flag is not a configuration flag; PX_ERR_CONFIG on a bad value. */
px_rc px_config_set_flag(struct px_config *cfg, const char *flag, const char *value, char *err,
                         size_t errlen) PX_WUR;

/* Sets the mode a command uses when neither AUTH_MODE nor --auth chose one
 * (`pricing lambda`: PX_AUTH_APIGW). Call after px_cli_parse(). */
void px_config_default_auth_mode(struct px_config *cfg, enum px_auth_mode mode);

/* Name of a mode: "none", "jwt", "apigw". */
const char *px_auth_mode_name(enum px_auth_mode mode);

/* Checks cross-setting rules after env and flags (e.g. store spec syntax). */
px_rc px_config_check(const struct px_config *cfg, char *err, size_t errlen) PX_WUR;

/* Where `db seed` puts a signing key for the embedded default store. */
#define PX_DEFAULT_SIGNING_KEY "./var/audit-signing.key"
/* The audit signing key file to use: AUDIT_SIGNING_KEY_FILE when set, else
 * PX_DEFAULT_SIGNING_KEY when the audit store is the default one and that
 * file exists, else NULL (records chained, no checkpoints). Points into cfg
 * or static storage. */
const char *px_config_signing_key(const struct px_config *cfg);

/* Writes the flag/env table as help text lines to f (FILE *). */
void px_config_usage(void *f);

#endif
