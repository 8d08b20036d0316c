/* decimal.c: a stored decimal's text rendered as a JSON number, scale kept.
 *
 * Prices travel as text from the database to the response so that "100.00"
 * is never rounded through a double. JSON's number grammar is stricter than
 * what databases print (no leading '+', no redundant leading zeros, no bare
 * ".5" or "5."), so the text is normalised, never re-computed.
 *
 * Negative zero ("-0", "-0.00") is written without its sign ("0", "0.00"):
 * the value is zero either way and some JSON readers keep the sign of -0 as
 * a float, which is not what a price means. */
#include "price.h"

#include <string.h>

/* Longest input accepted: more than NUMERIC(38, x) needs, less than a line. */
#define DECIMAL_MAX_IN 40

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

px_rc px_decimal_to_json(const char *s, char *out, size_t outlen)
{
    if (!s || !out || outlen == 0)
        return PX_ERR_INVALID;
    out[0] = '\0';
    size_t n = strnlen(s, DECIMAL_MAX_IN + 1);
    if (n == 0 || n > DECIMAL_MAX_IN)
        return PX_ERR_INVALID;

    size_t i = 0;
    bool negative = false;
    if (s[0] == '+' || s[0] == '-') {
        negative = s[0] == '-';
        i = 1;
    }
    size_t int_start = i;
    while (i < n && is_digit(s[i]))
        i++;
    size_t int_end = i;
    size_t frac_start = i, frac_end = i;
    if (i < n && s[i] == '.') {
        frac_start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        frac_end = i;
    }
    /* Anything left (exponent, space, second dot, "NaN", "Inf") is refused. */
    if (i != n || (int_end == int_start && frac_end == frac_start))
        return PX_ERR_INVALID;

    while (int_start < int_end && s[int_start] == '0')
        int_start++;
    bool zero = int_start == int_end;
    for (size_t k = frac_start; zero && k < frac_end; k++)
        zero = s[k] == '0';

    size_t int_len = int_end - int_start, frac_len = frac_end - frac_start;
    size_t need = (negative && !zero) + (int_len ? int_len : 1) + (frac_len ? 1 + frac_len : 0);
    if (need + 1 > outlen)
        return PX_ERR_TOO_LARGE;

    size_t o = 0;
    if (negative && !zero)
        out[o++] = '-';
    if (int_len) {
        memcpy(out + o, s + int_start, int_len);
        o += int_len;
    } else {
        out[o++] = '0';
    }
    if (frac_len) {
        out[o++] = '.';
        memcpy(out + o, s + frac_start, frac_len);
        o += frac_len;
    }
    out[o] = '\0';
    return PX_OK;
}
