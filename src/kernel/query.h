/* query.h: strict application/x-www-form-urlencoded query-string decoding.
 *
 * Used on the raw query of the HTTP server and of API Gateway 2.0's
 * rawQueryString, so every way in decodes the same way. Rejects what a
 * strict schema would: bad %-escapes, %00 and control characters, invalid
 * UTF-8 (overlong forms included), more than PX_MAX_QUERY_PARAMS pairs. */
#ifndef PX_QUERY_H
#define PX_QUERY_H

#include "request.h"

/* Decodes raw[0..len) ('+' is a space) into an arena array of pairs in order,
 * duplicates kept. Empty pieces between '&' are skipped; "k" alone gives "".
 * PX_ERR_INVALID on malformed input, PX_ERR_TOO_LARGE past the pair cap. */
px_rc px_query_parse(struct px_arena *a, const char *raw, size_t len, struct px_kv **out,
                     size_t *n) PX_WUR;

/* Percent-decodes s[0..len) into the arena (no '+' rule: for paths). */
px_rc px_url_decode_path(struct px_arena *a, const char *s, size_t len, char **out) PX_WUR;

#endif
