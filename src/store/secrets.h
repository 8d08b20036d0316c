/* secrets.h: one AWS Secrets Manager call, GetSecretValue, on the AWS JSON
 * protocol client of dynamodb.h (awsJson1_1, X-Amz-Target
 * secretsmanager.GetSecretValue, SigV4 signing name "secretsmanager").
 *
 * For the Lambda runtime's audit signing key (AUDIT_SIGNING_KEY_SECRET_ARN),
 * resolved once at init. A secret's value is never put in a message or a log
 * line. Ownership: the caller owns every input string; *value is the caller's
 * to clear and free (px_secret_free). */
#ifndef PX_SECRETS_H
#define PX_SECRETS_H

#include "../kernel/px.h"

#include <jansson.h>

struct px_secret_config {
    const char *region;   /* NULL/"": the region named by an ARN secret id */
    const char *endpoint; /* NULL/"" = https://secretsmanager.REGION.amazonaws.com/ */
    const char *access_key_id, *secret_access_key; /* required */
    const char *session_token;                     /* NULL/"" = none */
    long timeout_ms;                               /* whole call; 0 = 5000 */
};

/* The region of an ARN "arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME"
 * into out; false when id is not such an ARN. */
bool px_secret_arn_region(const char *id, char *out, size_t cap);

/* The request body GetSecretValue sends for id (JSON, NUL-terminated, the
 * caller frees). NULL when out of memory. */
char *px_secret_request_body(const char *id);

/* The secret's value from a GetSecretValue answer: SecretString, or
 * SecretBinary decoded from base64. *value is NUL-terminated, *len bytes.
 * PX_ERR_PROTOCOL when the answer holds neither. */
px_rc px_secret_parse(const json_t *resp, char **value, size_t *len, char *err,
                      size_t errlen) PX_WUR;

/* GetSecretValue of id (an ARN or a name). err names the id and what failed,
 * never the value. */
px_rc px_secret_get(const struct px_secret_config *cfg, const char *id, char **value, size_t *len,
                    char *err, size_t errlen) PX_WUR;

/* Clears and frees a value from px_secret_get / px_secret_parse. Accepts NULL. */
void px_secret_free(char *value, size_t len);

#endif
