#include "query.h"
#include "buf.h"

#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a NUL-terminated arena string. Raw spaces
 * and control characters are refused before decoding (a client must escape
 * them), decoded ones after, so "%0A" and a raw newline fail alike. */
static px_rc pct_decode(struct px_arena *a, const char *s, size_t len, bool plus_is_space,
                        char **out)
{
    if (len == SIZE_MAX)
        return PX_ERR_TOO_LARGE;
    char *d = px_arena_alloc(a, len + 1);
    if (!d)
        return PX_ERR_NOMEM;
    const unsigned char *u = (const unsigned char *)s;
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = u[i];
        if (c <= 0x20 || c == 0x7F)
            return PX_ERR_INVALID;
        if (c == '%') {
            if (len - i < 3)
                return PX_ERR_INVALID;
            int hi = hexval(u[i + 1]), lo = hexval(u[i + 2]);
            if (hi < 0 || lo < 0)
                return PX_ERR_INVALID;
            c = (unsigned char)(hi * 16 + lo);
            if (c < 0x20 || c == 0x7F)
                return PX_ERR_INVALID;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        d[j++] = (char)c;
    }
    d[j] = '\0';
    if (!px_utf8_valid((const unsigned char *)d, j))
        return PX_ERR_INVALID;
    *out = d;
    return PX_OK;
}

px_rc px_query_parse(struct px_arena *a, const char *raw, size_t len, struct px_kv **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!raw || len == 0)
        return PX_OK;

    /* Count the non-empty pieces first: the cap is checked before any work. */
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(raw + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - raw) : len;
        if (end > i)
            count++;
        i = end + 1;
    }
    if (count == 0)
        return PX_OK;
    if (count > PX_MAX_QUERY_PARAMS)
        return PX_ERR_TOO_LARGE;

    struct px_kv *kv = px_arena_alloc(a, count * sizeof(*kv));
    if (!kv)
        return PX_ERR_NOMEM;
    size_t k = 0;
    px_rc rc = PX_OK;
    for (size_t i = 0; i < len && k < count;) {
        const char *amp = memchr(raw + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - raw) : len;
        if (end > i) {
            const char *piece = raw + i;
            size_t plen = end - i;
            const char *eq = memchr(piece, '=', plen);
            size_t klen = eq ? (size_t)(eq - piece) : plen;
            if (eq && klen == 0)
                return PX_ERR_INVALID;
            char *key = NULL, *val = NULL;
            rc = pct_decode(a, piece, klen, true, &key);
            if (rc)
                return rc;
            if (eq)
                rc = pct_decode(a, eq + 1, plen - klen - 1, true, &val);
            else
                rc = pct_decode(a, "", 0, true, &val);
            if (rc)
                return rc;
            kv[k].key = key;
            kv[k].value = val;
            k++;
        }
        i = end + 1;
    }
    *out = kv;
    *n = k;
    return PX_OK;
}

px_rc px_url_decode_path(struct px_arena *a, const char *s, size_t len, char **out)
{
    *out = NULL;
    if (!s || len == 0 || s[0] != '/')
        return PX_ERR_INVALID;
    return pct_decode(a, s, len, false, out);
}
