/* audit_dynamodb.h: the pieces of the DynamoDB audit store that tests and the
 * fuzzer reach directly. Callers use audit.h; this header is for tests.
 *
 * Item layout (CONTRACT §5): pk, sk, gsi1pk, gsi1sk, action, status, userId,
 * productId, requestId, correlationId, ts as S; expiresAt as N; principal and
 * apiRequestId as S only when non-empty. Cursors are base64url (no padding) of the compact JSON
 * of DynamoDB's LastEvaluatedKey. */
#ifndef PX_AUDIT_DYNAMODB_H
#define PX_AUDIT_DYNAMODB_H

#include "audit.h"
#include "../kernel/buf.h"

#include <jansson.h>

#define PX_DDB_GSI        "gsi1"
#define PX_DDB_MAX_CURSOR 2048 /* characters of an incoming cursor */
#define PX_DDB_TTL_ATTR   "expiresAt"

/* Appends r as a DynamoDB attribute map {"pk":{"S":..},...,"expiresAt":{"N":".."}} to b.
 * PX_ERR_INVALID when a field is unterminated or a key field is empty. */
px_rc px_ddb_audit_item_json(const struct px_audit_record *r, struct px_buf *b) PX_WUR;

/* Fills r from a DynamoDB item (attribute map). PX_ERR_PROTOCOL when a field is
 * missing, of the wrong type or too long for the record. */
px_rc px_ddb_audit_item_parse(const json_t *item, struct px_audit_record *r) PX_WUR;

/* Encodes a LastEvaluatedKey object as an opaque cursor, allocated in a. */
px_rc px_ddb_cursor_encode(const json_t *key, struct px_arena *a, const char **out) PX_WUR;

/* Decodes and checks a cursor against the query q: an object of string
 * attributes, exactly pk/sk (by user) or gsi1pk/gsi1sk/pk/sk (by product),
 * whose partition is the query's. *key is a new reference (caller decrefs).
 * PX_ERR_INVALID otherwise. */
px_rc px_ddb_cursor_decode(const char *cursor, const struct px_audit_query *q, json_t **key) PX_WUR;

#endif
