/* buf.h: a growing byte buffer with a hard cap, and a JSON writer on top of it.
 *
 * The caller owns the struct (usually on the stack) and must px_buf_free() it;
 * px_buf_take() hands the heap string over to the caller instead. Every append
 * either fits under `max` or fails with PX_ERR_TOO_LARGE leaving the buffer as
 * it was, so a failed write never leaves half a JSON token behind. */
#ifndef PX_BUF_H
#define PX_BUF_H

#include "px.h"

struct px_buf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max; /* hard cap on len */
};

/* Empty buffer that will never hold more than max bytes. Allocates nothing yet. */
void px_buf_init(struct px_buf *b, size_t max);
/* Frees the storage. Accepts NULL; safe twice. */
void px_buf_free(struct px_buf *b);
/* Hands the heap string (possibly NULL when empty) to the caller, who frees it. */
char *px_buf_take(struct px_buf *b);
/* Empties the buffer, keeps its storage. */
void px_buf_clear(struct px_buf *b);
/* Appends n bytes (may reallocate). */
px_rc px_buf_add(struct px_buf *b, const void *s, size_t n) PX_WUR;
/* Appends a NUL-terminated string. */
px_rc px_buf_adds(struct px_buf *b, const char *s) PX_WUR;
/* Appends formatted text. */
px_rc px_buf_printf(struct px_buf *b, const char *fmt, ...) PX_PRINTF(2, 3) PX_WUR;
/* Length (1-4) of the well-formed UTF-8 sequence at s[0..n), or 0 when there
 * is none (n == 0, a stray or truncated byte, overlong forms, surrogates,
 * code points past U+10FFFF: RFC 3629 table 3). */
size_t px_utf8_len(const unsigned char *s, size_t n);
/* true when all of s[0..n) is well-formed UTF-8 (see px_utf8_len). */
bool px_utf8_valid(const unsigned char *s, size_t n);
/* Appends s[0..n) as a quoted, escaped JSON string (invalid UTF-8 bytes become U+FFFD). */
px_rc px_buf_json_str(struct px_buf *b, const char *s, size_t n) PX_WUR;
/* Same for a NUL-terminated string; NULL is written as JSON null. */
px_rc px_buf_json_strz(struct px_buf *b, const char *s) PX_WUR;

#endif
