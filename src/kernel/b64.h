/* b64.h: base64 (RFC 4648 section 4) and base64url (section 5), encode and
 * strict decode, into caller-provided memory (nothing is allocated here).
 *
 * The callers differ in what they accept, so the rules are parameters:
 * PX_B64_PAD asks for '=' padding (to a multiple of 4 characters) both ways;
 * without it '=' is not part of the alphabet and a length of 4k+1 is refused.
 * Decoding always refuses characters outside the alphabet (whitespace
 * included) and misplaced '='; it also refuses non-zero unused bits in the
 * last character, so that every byte string has exactly one spelling, unless
 * PX_B64_ANY_TAIL_BITS is given. */
#ifndef PX_B64_H
#define PX_B64_H

#include "buf.h"
#include "px.h"

enum px_b64_alphabet {
    PX_B64_STD, /* A-Z a-z 0-9 + / */
    PX_B64_URL, /* A-Z a-z 0-9 - _ */
};

enum px_b64_flags {
    PX_B64_PAD = 1u << 0,           /* encode: append '='; decode: require it */
    PX_B64_ANY_TAIL_BITS = 1u << 1, /* decode: ignore non-zero unused bits */
};

/* Characters px_b64_encode writes for n bytes (without the NUL). */
size_t px_b64_encoded_len(size_t n, unsigned flags);
/* Upper bound of the bytes px_b64_decode writes for n characters. */
size_t px_b64_decoded_max(size_t n);

/* Encodes in[0..n) into out as a NUL-terminated string of *outlen characters;
 * PX_ERR_TOO_LARGE (out untouched) when outcap < px_b64_encoded_len() + 1. */
px_rc px_b64_encode(const void *in, size_t n, enum px_b64_alphabet alpha, unsigned flags, char *out,
                    size_t outcap, size_t *outlen) PX_WUR;
/* Appends the encoding of in[0..n) to out (no NUL counted); out unchanged on error. */
px_rc px_b64_append(struct px_buf *out, const void *in, size_t n, enum px_b64_alphabet alpha,
                    unsigned flags) PX_WUR;
/* Decodes s[0..n) into out (not NUL-terminated), *outlen bytes. PX_ERR_INVALID
 * for input the rules above refuse, PX_ERR_TOO_LARGE when outcap is below what
 * the input decodes to (px_b64_decoded_max(n) is always enough). */
px_rc px_b64_decode(const char *s, size_t n, enum px_b64_alphabet alpha, unsigned flags, void *out,
                    size_t outcap, size_t *outlen) PX_WUR;

#endif
