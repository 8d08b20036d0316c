/* dto.h: the typed inputs and JSON outputs of config-service (CONTRACT §9)
 * and of its OpenFeature Remote Evaluation Protocol endpoints (OFREP 0.3). */
#ifndef PX_CS_DTO_H
#define PX_CS_DTO_H

#include "kernel/buf.h"
#include "kernel/flags.h"
#include "kernel/validate.h"
#include "store/config_store.h"

#include <jansson.h>

/* Bound on a config-service request body (CONTRACT §9: a value up to 64 KiB). */
#define PX_CS_BODY_MAX (64 * 1024)
/* What audit records and logs show instead of a secret key's value. */
#define PX_CS_REDACTED "[REDACTED]"

/* A key is secret when one of its dot-separated segments starts with
 * "secret" (secrets.db-password, payments.secret_key, x.secret): its value
 * never reaches a log line or an audit record. */
bool px_cs_key_secret(const char *key);

/* Parses a PUT body: any JSON value. For a key under `flags.` the value must
 * also be a flag that can be evaluated (flags.h). Compact JSON text of the
 * value into *compact (arena). PX_ERR_INVALID with every failure in v. */
px_rc px_cs_value_parse(const char *key, const char *body, size_t len, struct px_arena *a,
                        const char **compact, struct px_validation *v) PX_WUR;

/* {"key","value","version","updatedAt","updatedBy"} */
px_rc px_cs_item_json(const struct px_config_item *it, struct px_buf *out) PX_WUR;
/* {"items":[...]} */
px_rc px_cs_list_json(const struct px_config_item *items, size_t n, struct px_buf *out) PX_WUR;

/* An OFREP request body {"context":{"targetingKey":..,...}}. On failure
 * *code is the OFREP error code (PARSE_ERROR, INVALID_CONTEXT) and *why the
 * details; returns PX_ERR_INVALID. The context json is owned by the caller. */
struct px_cs_ofrep_in {
    json_t *context;           /* the object; caller decrefs */
    const char *targeting_key; /* borrowed from context; NULL when absent */
};
px_rc px_cs_ofrep_in_parse(const char *body, size_t len, struct px_cs_ofrep_in *in,
                           const char **code, const char **why) PX_WUR;

/* One evaluation as OFREP renders it: success {"key","value","reason",
 * "variant"} or failure {"key","errorCode","errorDetails"}. */
px_rc px_cs_ofrep_result_json(const char *key, const struct px_flag_result *r,
                              struct px_buf *out) PX_WUR;
/* An OFREP error object {"key"?,"errorCode","errorDetails"} (key NULL: none). */
px_rc px_cs_ofrep_error_json(const char *key, const char *code, const char *details,
                             struct px_buf *out) PX_WUR;

#endif
