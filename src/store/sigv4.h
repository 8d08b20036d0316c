/* sigv4.h: AWS Signature Version 4 (header form, AWS4-HMAC-SHA256) on OpenSSL.
 *
 * Pure function of its inputs: the clock and the credentials are arguments, so
 * AWS's own test vectors match byte for byte. Nothing is allocated; every
 * output lives in the caller's struct and is bounded by the caps below. The
 * caller keeps ownership of every input string. */
#ifndef PX_SIGV4_H
#define PX_SIGV4_H

#include "../kernel/px.h"

#include <time.h>

#define PX_SIGV4_MAX_HEADERS 32
#define PX_SIGV4_MAX_CREQ    16384 /* canonical request (headers with a session token fit) */
#define PX_SIGV4_MAX_STS     512
#define PX_SIGV4_MAX_AUTHZ   1024

struct px_sigv4_header {
    const char *name;  /* any case; repeated names are joined with ',' in order */
    const char *value; /* raw value; folded lines and runs of blanks collapse to one space */
};

struct px_sigv4_input {
    const char *method; /* "GET", "POST" */
    const char *path;   /* raw request path as sent, e.g. "/" (normalised, then encoded) */
    const char *query;  /* raw query string without '?', or NULL/"" */
    const struct px_sigv4_header *headers; /* every header to sign (Host included) */
    size_t nheaders;                       /* <= PX_SIGV4_MAX_HEADERS - 2 */
    const void *payload;                   /* body, may be NULL when payload_len is 0 */
    size_t payload_len;
    const char *region;  /* "us-east-1" */
    const char *service; /* "dynamodb" */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" = none; otherwise signed as x-amz-security-token */
    time_t now;                /* request time, epoch seconds (UTC) */
};

struct px_sigv4_output {
    char amz_date[17];     /* 20150830T123600Z: send as X-Amz-Date */
    char payload_hash[65]; /* hex SHA-256 of the payload */
    char canonical_request[PX_SIGV4_MAX_CREQ];
    char string_to_sign[PX_SIGV4_MAX_STS];
    char authorization[PX_SIGV4_MAX_AUTHZ]; /* value of the Authorization header */
};

/* Signs one request. When the headers carry no X-Amz-Date, one with
 * out->amz_date is signed and the caller must send it (one they carry must equal
 * `now` in that form, else PX_ERR_INVALID); likewise the session
 * token is signed as X-Amz-Security-Token unless the headers already carry it.
 * PX_ERR_INVALID for missing inputs or a bad header, PX_ERR_TOO_LARGE when an
 * output would pass its cap, PX_ERR_INTERNAL when OpenSSL fails. */
px_rc px_sigv4_sign(const struct px_sigv4_input *in, struct px_sigv4_output *out) PX_WUR;

/* Appends the SigV4 URI encoding of s[0..n) to out (unreserved A-Z a-z 0-9 - . _ ~
 * kept; '/' kept when keep_slash). Returns the new length, or (size_t)-1 past cap. */
size_t px_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, char *out, size_t len,
                           size_t cap);

#endif
