#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void px_buf_init(struct px_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void px_buf_free(struct px_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *px_buf_take(struct px_buf *b)
{
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void px_buf_clear(struct px_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes plus the terminator. */
static px_rc reserve(struct px_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return PX_ERR_TOO_LARGE;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return PX_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return PX_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return PX_OK;
}

px_rc px_buf_add(struct px_buf *b, const void *s, size_t n)
{
    px_rc rc = reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PX_OK;
}

px_rc px_buf_adds(struct px_buf *b, const char *s)
{
    return px_buf_add(b, s, strlen(s));
}

px_rc px_buf_printf(struct px_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PX_ERR_INVALID;
    px_rc rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PX_OK;
}

size_t px_utf8_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

bool px_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t l = px_utf8_len(s + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

px_rc px_buf_json_str(struct px_buf *b, const char *s, size_t n)
{
    size_t start = b->len;
    px_rc rc = px_buf_add(b, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (!rc && i < n) {
        size_t run = i;
        /* Copy runs of plain bytes at once: the common case is short ASCII. */
        while (run < n && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' && u[run] != '\\')
            run++;
        if (run > i) {
            rc = px_buf_add(b, s + i, run - i);
            i = run;
            continue;
        }
        unsigned c = u[i];
        if (c == '"')
            rc = px_buf_add(b, "\\\"", 2);
        else if (c == '\\')
            rc = px_buf_add(b, "\\\\", 2);
        else if (c == '\n')
            rc = px_buf_add(b, "\\n", 2);
        else if (c == '\r')
            rc = px_buf_add(b, "\\r", 2);
        else if (c == '\t')
            rc = px_buf_add(b, "\\t", 2);
        else if (c < 0x20)
            rc = px_buf_printf(b, "\\u%04x", c);
        else {
            size_t l = px_utf8_len(u + i, n - i);
            if (l == 0) {
                rc = px_buf_add(b, "\xEF\xBF\xBD", 3);
                i++;
                continue;
            }
            rc = px_buf_add(b, s + i, l);
            i += l;
            continue;
        }
        i++;
    }
    if (!rc)
        rc = px_buf_add(b, "\"", 1);
    if (rc) {
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
    return rc;
}

px_rc px_buf_json_strz(struct px_buf *b, const char *s)
{
    if (!s)
        return px_buf_adds(b, "null");
    return px_buf_json_str(b, s, strlen(s));
}
