/* dynamodb.h: a small DynamoDB client (JSON protocol awsJson1_0) over libcurl,
 * also used for other services of the AWS JSON protocol (Secrets Manager).
 *
 * POST / with X-Amz-Target: DynamoDB_20120810.<Operation>, signed with SigV4
 * (sigv4.h). One client is shared by threads: it keeps a small pool of curl
 * easy handles (each with its own keep-alive connection) behind a mutex.
 * Every call has an absolute deadline; throttling, 5xx and connection
 * failures are retried with capped exponential backoff and full jitter until
 * that deadline, never past it. Responses are capped (max_response).
 *
 * Ownership: the client copies every configuration string. Parsed responses
 * (json_t) belong to the caller, who json_decref()s them. */
#ifndef PX_DYNAMODB_H
#define PX_DYNAMODB_H

#include "../kernel/px.h"

#include <jansson.h>

#define PX_DDB_MAX_RESPONSE (1024 * 1024) /* default response cap */
#define PX_DDB_MAX_ATTEMPTS 10            /* as botocore's DynamoDB policy */
#define PX_DDB_BACKOFF_BASE 25            /* ms, first retry delay cap */
#define PX_DDB_BACKOFF_CAP  1000          /* ms, largest delay between attempts */

struct px_ddb;

struct px_ddb_config {
    const char *region;   /* required, e.g. "us-east-1" */
    const char *endpoint; /* NULL/"" = https://dynamodb.<region>.amazonaws.com */
    const char *access_key_id, *secret_access_key; /* required */
    const char *session_token;                     /* NULL/"" = none */
    long connect_timeout_ms;                       /* per attempt; 0 = 1000 */
    size_t max_response;                           /* 0 = PX_DDB_MAX_RESPONSE */
    unsigned max_attempts;                         /* 0 = PX_DDB_MAX_ATTEMPTS */
    /* Another service of the same JSON protocol (Secrets Manager): all NULL =
     * DynamoDB. endpoint must then be given (no default host is built). */
    const char *service;       /* SigV4 signing name: "secretsmanager" */
    const char *target_prefix; /* X-Amz-Target before the operation: "secretsmanager." */
    const char *json_version;  /* "1.0" (DynamoDB) or "1.1" */
    const char *label;         /* in messages: "Secrets Manager" */
    const char *endpoint_var;  /* in messages: "AWS_ENDPOINT_URL_SECRETS_MANAGER" */
};

/* What went wrong in a call, for messages and decisions. */
struct px_ddb_error {
    long http_status;  /* last HTTP status, 0 when none arrived */
    char type[96];     /* exception name without namespace, "" when none */
    char message[384]; /* service message, or a transport description */
    unsigned attempts; /* attempts made */
    bool retryable;    /* the last failure was of a retryable kind */
    bool ambiguous;    /* an earlier attempt may have been applied (5xx, lost answer) */
};

/* New client; err gets one line naming the missing or bad setting
 * (AWS_REGION, AWS_ACCESS_KEY_ID, ...). */
px_rc px_ddb_new(const struct px_ddb_config *cfg, struct px_ddb **out, char *err,
                 size_t errlen) PX_WUR;
/* Frees the client and its pooled handles. No call may be running. Accepts NULL. */
void px_ddb_free(struct px_ddb *c);

/* Monotonic clock in milliseconds (deadlines are on this clock). */
int64_t px_ddb_now_ms(void);

/* Performs operation `op` ("PutItem") with JSON body body[0..len) until it
 * succeeds or deadline_ms (px_ddb_now_ms() clock) passes. On PX_OK *resp is the
 * parsed response object (caller decrefs). Otherwise *resp is NULL and err
 * (may be NULL) says why; the rc follows px_ddb_error_rc() for service errors,
 * PX_ERR_TIMEOUT / PX_ERR_UNAVAILABLE for transport failures. */
px_rc px_ddb_call(struct px_ddb *c, const char *op, const char *body, size_t len,
                  int64_t deadline_ms, json_t **resp, struct px_ddb_error *err) PX_WUR;

/* One request of px_ddb_call_many: body in, outcome out (as px_ddb_call's). */
struct px_ddb_req {
    const char *body; /* the caller's, kept until the call returns */
    size_t len;
    px_rc rc;
    json_t *resp; /* on PX_OK: the parsed response (caller decrefs) */
    struct px_ddb_error err;
};

#define PX_DDB_MANY_MAX 32 /* requests of one px_ddb_call_many */

/* Performs op once for each of reqs[0..n), all in flight together: each is
 * sent on its own connection before any answer is awaited, so n requests
 * cost one wait rather than n. Each then follows px_ddb_call's rules on its
 * own (retries, deadline_ms, ambiguity) and ends with its rc, resp and err.
 * More than PX_DDB_MANY_MAX requests are refused (PX_ERR_NOMEM each). */
void px_ddb_call_many(struct px_ddb *c, const char *op, struct px_ddb_req *reqs, size_t n,
                      int64_t deadline_ms);

/* px_ddb_call with req as the body: req is always consumed (decref'd), NULL
 * is PX_ERR_NOMEM; resp and err may be NULL when the caller wants neither. */
px_rc px_ddb_call_json(struct px_ddb *c, const char *op, json_t *req, int64_t deadline_ms,
                       json_t **resp, struct px_ddb_error *err);

/* Where a table's TTL stands after px_ddb_ttl_on(). */
enum px_ddb_ttl {
    PX_DDB_TTL_WAS_ON,      /* already on (or being turned on) for the attribute */
    PX_DDB_TTL_TURNED_ON,   /* turned on now */
    PX_DDB_TTL_OTHER_ATTR,  /* on for another attribute: left as it is */
    PX_DDB_TTL_DISABLING,   /* being turned off: cannot be turned on before that ends */
    PX_DDB_TTL_UNSUPPORTED, /* the endpoint has no TimeToLive operations (dynalite) */
};

/* Turns TTL on for attribute attr of table (DescribeTimeToLive, then
 * UpdateTimeToLive when it is off), before deadline_ms. PX_OK with *state
 * saying which case it was (each caller words its own warning); otherwise err
 * says why. */
px_rc px_ddb_ttl_on(struct px_ddb *c, const char *table, const char *attr, int64_t deadline_ms,
                    enum px_ddb_ttl *state, struct px_ddb_error *err) PX_WUR;

/* The endpoint URL in use (owned by the client). */
const char *px_ddb_endpoint(const struct px_ddb *c);

/* Maps an exception name (namespace stripped) and HTTP status to px_rc and
 * whether the failure is worth retrying. */
px_rc px_ddb_error_rc(const char *type, long http_status, bool *retryable);

/* Parses one HTTP answer: status, raw body, the X-Amzn-Errortype header (or
 * NULL). 2xx with a JSON object body -> PX_OK and *resp (caller decrefs);
 * otherwise err->type/message/retryable are filled and the mapped rc returned.
 * Never reads past body[len). */
px_rc px_ddb_parse_response(long http_status, const char *body, size_t len,
                            const char *errtype_header, json_t **resp,
                            struct px_ddb_error *err) PX_WUR;

/* Exception name from an __type / code / X-Amzn-Errortype value: the text after
 * the last '#', cut at the first ':'. Writes "" when nothing is left. */
void px_ddb_error_name(const char *raw, char *out, size_t outlen);

/* CRC32 (IEEE) as in the x-amz-crc32 response header. */
uint32_t px_ddb_crc32(const void *data, size_t len);

#endif
