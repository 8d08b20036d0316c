#include "b64.h"

#include <stdint.h>

static const char *const alphabets[] = {
    [PX_B64_STD] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    [PX_B64_URL] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

static int sextet(unsigned char c, enum px_b64_alphabet alpha)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (alpha == PX_B64_URL ? '-' : '+'))
        return 62;
    if (c == (alpha == PX_B64_URL ? '_' : '/'))
        return 63;
    return -1;
}

size_t px_b64_encoded_len(size_t n, unsigned flags)
{
    if (n > (SIZE_MAX - 4) / 4 * 3)
        return SIZE_MAX;
    if (flags & PX_B64_PAD)
        return (n + 2) / 3 * 4;
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t px_b64_decoded_max(size_t n)
{
    return n / 4 * 3 + (n % 4 > 1 ? n % 4 - 1 : 0);
}

px_rc px_b64_encode(const void *in, size_t n, enum px_b64_alphabet alpha, unsigned flags, char *out,
                    size_t outcap, size_t *outlen)
{
    size_t need = px_b64_encoded_len(n, flags);
    if (need >= outcap)
        return PX_ERR_TOO_LARGE;
    const char *tab = alphabets[alpha == PX_B64_URL ? PX_B64_URL : PX_B64_STD];
    const unsigned char *p = in;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        size_t left = n - i;
        uint32_t w = (uint32_t)p[i] << 16;
        if (left > 1)
            w |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            w |= p[i + 2];
        out[j++] = tab[w >> 18 & 63];
        out[j++] = tab[w >> 12 & 63];
        if (left > 1)
            out[j++] = tab[w >> 6 & 63];
        else if (flags & PX_B64_PAD)
            out[j++] = '=';
        if (left > 2)
            out[j++] = tab[w & 63];
        else if (flags & PX_B64_PAD)
            out[j++] = '=';
    }
    out[j] = '\0';
    *outlen = j;
    return PX_OK;
}

px_rc px_b64_append(struct px_buf *out, const void *in, size_t n, enum px_b64_alphabet alpha,
                    unsigned flags)
{
    /* Whole groups of 3 bytes per chunk: only the last chunk can end short. */
    enum { CHUNK_IN = 3 * 256 };
    char enc[CHUNK_IN / 3 * 4 + 1];
    const unsigned char *p = in;
    size_t start = out->len;
    px_rc rc = PX_OK;
    for (size_t i = 0; i < n && !rc; i += CHUNK_IN) {
        size_t len = 0;
        rc = px_b64_encode(p + i, n - i < CHUNK_IN ? n - i : CHUNK_IN, alpha, flags, enc,
                           sizeof(enc), &len);
        if (!rc)
            rc = px_buf_add(out, enc, len);
    }
    if (rc && out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}

px_rc px_b64_decode(const char *s, size_t n, enum px_b64_alphabet alpha, unsigned flags, void *out,
                    size_t outcap, size_t *outlen)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t m = n; /* characters that carry data */
    if (flags & PX_B64_PAD) {
        if (n % 4)
            return PX_ERR_INVALID;
        /* At most two '=', and only at the very end; any other '=' fails below. */
        for (size_t k = 0; k < 2 && m > 0 && u[m - 1] == '='; k++)
            m--;
    } else if (n % 4 == 1) {
        return PX_ERR_INVALID;
    }
    if (px_b64_decoded_max(m) > outcap)
        return PX_ERR_TOO_LARGE;
    unsigned char *o = out;
    uint32_t acc = 0;
    int bits = 0;
    size_t j = 0;
    for (size_t i = 0; i < m; i++) {
        int v = sextet(u[i], alpha);
        if (v < 0)
            return PX_ERR_INVALID;
        acc = (acc << 6 | (uint32_t)v) & 0xFFFu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (unsigned char)(acc >> bits & 0xFFu);
        }
    }
    if (!(flags & PX_B64_ANY_TAIL_BITS) && bits && (acc & ((1u << bits) - 1)))
        return PX_ERR_INVALID;
    *outlen = j;
    return PX_OK;
}
