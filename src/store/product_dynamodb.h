/* product_dynamodb.h: the pieces of the DynamoDB product store that unit tests
 * reach directly (PX_STATIC: static outside unit-test builds). Callers use
 * product.h; the key design is docs/internals/products.md's. */
#ifndef PX_PRODUCT_DYNAMODB_H
#define PX_PRODUCT_DYNAMODB_H

#include "product.h"

#include <jansson.h>

#ifdef PX_UNIT_TEST
/* p of tenant (NULL: "default") as a DynamoDB item (keys and GSI keys under
 * T#<tenant>#, attributes; empty strings left out); a new reference (caller
 * decrefs), NULL when out of memory. */
json_t *px_ddb_product_item(const char *tenant, const struct px_product *p);
/* Fills p from an item; strings in a. PX_ERR_PROTOCOL when productId, version or
 * a fixed-size field is missing, mistyped or too long. */
px_rc px_ddb_product_parse(const json_t *it, struct px_arena *a, struct px_product *p);
/* The idempotency record's partition key (principal length-prefixed) into out. */
void px_ddb_idem_pk(const char *principal, const char *route, const char *key, char *out,
                    size_t cap);
/* The GSI3 shard of a product id (stable: FNV-1a modulo the shard count). */
unsigned px_ddb_product_shard(const char *id);
#endif

#endif
