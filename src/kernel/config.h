/* config.h: configuration as data (CONTRACT §6).
 *
 * A static const defaults struct plus one table of settings
 * {name, env var, flag, type, bounds}. Environment first, then flags, which win.
 * Every error names the setting. The struct is plain data owned by the caller. */
#ifndef PX_CONFIG_H
#define PX_CONFIG_H

#include "px.h"

enum px_log_level { PX_LOG_DEBUG, PX_LOG_INFO, PX_LOG_WARN, PX_LOG_ERROR };

struct px_config {
    char price_db[1024];    /* PRICE_DB, --price-db */
    char audit_store[1024]; /* AUDIT_STORE, --audit-store (TABLE_AUDIT -> dynamodb:TABLE) */
    char aws_region[64];    /* AWS_REGION */
    char aws_access_key_id[128];
    char aws_secret_access_key[256];
    char aws_session_token[4096];
    char dynamodb_endpoint[1024]; /* AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL */
    long audit_retention_days;    /* AUDIT_RETENTION_DAYS, 1..3650 */
    enum px_log_level log_level;  /* LOG_LEVEL */
    char host[256];               /* serve --host */
    long port;                    /* serve --port, 1..65535 (0 = any free port) */
    long audit_timeout_ms;        /* AUDIT_TIMEOUT_MS: bound on making one record durable */
    long price_timeout_ms;        /* PRICE_TIMEOUT_MS: bound on one price read */
    long max_connections;         /* MAX_CONNECTIONS for serve */
    long conn_timeout_s;          /* CONNECTION_TIMEOUT for serve (idle / slow clients) */
    long threads;                 /* SERVER_THREADS for serve, 1..64 */
};

/* Built-in defaults (CONTRACT §6). */
extern const struct px_config px_config_defaults;

/* Starts from defaults, applies the environment. PX_ERR_CONFIG with one line
 * naming the variable in err. */
px_rc px_config_from_env(struct px_config *cfg, char *err, size_t errlen) PX_WUR;

/* Applies one command-line flag ("--price-db") with its value. PX_ERR_NOT_FOUND
 * when the flag is not a configuration flag; PX_ERR_CONFIG on a bad value. */
px_rc px_config_set_flag(struct px_config *cfg, const char *flag, const char *value, char *err,
                         size_t errlen) PX_WUR;

/* Checks cross-setting rules after env and flags (e.g. store spec syntax). */
px_rc px_config_check(const struct px_config *cfg, char *err, size_t errlen) PX_WUR;

/* Writes the flag/env table as help text lines to f (FILE *). */
void px_config_usage(void *f);

#endif
