/* validate.h: declarative allow-list validation of query parameters.
 *
 * A route declares a schema: the parameters it accepts, their types and
 * bounds, and where each lands in a typed struct (offsetof). Validation
 * rejects unknown and repeated parameters and lists every failure, so the
 * handler only ever sees a filled, checked struct. */
#ifndef PX_VALIDATE_H
#define PX_VALIDATE_H

#include "errors.h"

enum px_ptype {
    PX_P_PRODUCT_ID, /* 1-64 of [A-Za-z0-9-], first not '-'; lands as const char * */
    PX_P_UUID,       /* canonical 8-4-4-4-12 hex; lands lower-cased as const char * */
    PX_P_INT,        /* decimal integer within [min,max]; lands as long */
    PX_P_TIMESTAMP, /* RFC 3339 UTC, e.g. 2026-01-23T12:00:00.123Z or ...:00Z; lands as const char *
                     */
    PX_P_TOKEN,     /* opaque printable ASCII, 1..max characters (cursors); lands as const char * */
};

struct px_param_spec {
    const char *name;
    enum px_ptype type;
    bool required;
    size_t offset; /* where the value lands in the caller's struct */
    long min, max; /* PX_P_INT bounds; PX_P_TOKEN max length */
};

struct px_schema {
    const struct px_param_spec *params;
    size_t nparams;
};

#define PX_MAX_DETAILS 32

struct px_validation {
    struct px_err_detail details[PX_MAX_DETAILS];
    size_t ndetails;
};

/* Checks req's query against schema and fills out (present-flags are the
 * non-NULL pointers; absent ints keep their prior value). PX_ERR_INVALID with
 * every failure in v->details (strings are static or arena-owned). */
px_rc px_validate_query(const struct px_schema *schema, struct px_request *req, void *out,
                        struct px_validation *v) PX_WUR;

/* Adds a failure to v (drops it silently past PX_MAX_DETAILS). */
void px_validation_add(struct px_validation *v, const char *field, const char *reason);

/* true when s is a valid product id (CONTRACT §3). */
bool px_valid_product_id(const char *s);
/* true when s is a canonical UUID, either case. */
bool px_valid_uuid(const char *s);
/* true when s is an RFC 3339 UTC timestamp ending in Z, with optional fraction. */
bool px_valid_timestamp(const char *s);
/* true when s is an acceptable request or correlation id: 1-64 of [A-Za-z0-9._:-]. */
bool px_valid_request_id(const char *s);

#endif
