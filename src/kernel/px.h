/* px.h: the one error enum and the few macros every module shares.
 *
 * Every fallible function returns px_rc; results travel through out-parameters.
 * Callers write `rc = f(); if (rc) goto out;` and clean up at a single exit. */
#ifndef PX_H
#define PX_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum px_rc {
    PX_OK = 0,
    PX_ERR_NOMEM,       /* allocation failed or a cap was reached */
    PX_ERR_INVALID,     /* caller's input is malformed */
    PX_ERR_TOO_LARGE,   /* input exceeds a configured cap */
    PX_ERR_NOT_FOUND,   /* no such item */
    PX_ERR_CONFLICT,    /* item exists already (append-only stores) */
    PX_ERR_IO,          /* local I/O failed (file, disk full, fsync) */
    PX_ERR_UNAVAILABLE, /* a dependency (database, endpoint) cannot be reached */
    PX_ERR_TIMEOUT,     /* a bounded wait ran out */
    PX_ERR_BUSY,        /* a queue or pool is full; try later */
    PX_ERR_CONFIG,      /* bad configuration value */
    PX_ERR_PROTOCOL,    /* a peer answered something we cannot understand */
    PX_ERR_DENIED,      /* a peer refused us (credentials, permissions) */
    PX_ERR_INTERNAL,    /* a bug or an impossible state */
    PX_ERR_STALE,       /* the item changed since the caller read it (version) */
    PX_ERR__COUNT
} px_rc;

/* Static, never NULL, short English description of rc. */
const char *px_strerror(px_rc rc);

#define PX_WUR               __attribute__((warn_unused_result))
#define PX_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define PX_UNUSED(x)         ((void)(x))
#define PX_COUNTOF(a)        (sizeof(a) / sizeof((a)[0]))

/* Internals are `static` except in unit-test builds, where tests reach them. */
#ifdef PX_UNIT_TEST
#define PX_STATIC
#else
#define PX_STATIC static
#endif

/* Hard caps shared by every way in (CONTRACT §3, STYLE "a cap on every growing buffer"). */
#define PX_MAX_PRODUCT_ID   64
#define PX_UUID_LEN         36
#define PX_MAX_REQUEST_ID   64
#define PX_MAX_PRINCIPAL    128
#define PX_MAX_BODY         (256 * 1024)      /* request body cap for the server */
#define PX_MAX_EVENT        (6 * 1024 * 1024) /* Lambda's buffered payload limit */
#define PX_MAX_QUERY_PARAMS 32
#define PX_MAX_HEADERS      100

#endif
