/* audit_ts.c: RFC 3339 timestamps brought to the one form audit sort keys use.
 *
 * Sort keys are "AUDIT#<ts>#<requestId>" with ts always
 * "YYYY-MM-DDTHH:MM:SS.mmmZ", so a time range is a text range once both
 * bounds have that exact shape. Every backend (SQLite, DynamoDB) normalises
 * `from` and `to` here so both answer the same question the same way. */
#include "audit.h"

#include <stdio.h>
#include <string.h>

#define TS_MAX_IN 40

/* Parses exactly n digits at s; -1 when any is not a digit. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

px_rc px_audit_ts_ms(const char *in, char out[25])
{
    if (!in || !out)
        return PX_ERR_INVALID;
    out[0] = '\0';
    size_t n = strnlen(in, TS_MAX_IN + 1);
    /* "YYYY-MM-DDTHH:MM:SS" is 19 characters, the zone at least one more. */
    if (n < 20 || n > TS_MAX_IN)
        return PX_ERR_INVALID;
    if (in[4] != '-' || in[7] != '-' || (in[10] != 'T' && in[10] != 't') || in[13] != ':' ||
        in[16] != ':')
        return PX_ERR_INVALID;
    int year = digits(in, 4), mon = digits(in + 5, 2), day = digits(in + 8, 2);
    int hour = digits(in + 11, 2), min = digits(in + 14, 2), sec = digits(in + 17, 2);
    if (year < 0 || mon < 1 || mon > 12 || day < 1 || day > month_days(year, mon) || hour < 0 ||
        hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 59)
        return PX_ERR_INVALID;

    size_t i = 19;
    int ms = 0;
    if (in[i] == '.') {
        size_t start = ++i;
        while (i < n && in[i] >= '0' && in[i] <= '9')
            i++;
        size_t nd = i - start;
        if (nd == 0 || nd > 9)
            return PX_ERR_INVALID;
        for (size_t k = 0; k < 3; k++)
            ms = ms * 10 + (k < nd ? in[start + k] - '0' : 0);
    }

    int offset_min = 0;
    if (i < n && (in[i] == 'Z' || in[i] == 'z')) {
        i++;
    } else if (i < n && (in[i] == '+' || in[i] == '-')) {
        if (n - i != 6 || in[i + 3] != ':')
            return PX_ERR_INVALID;
        int oh = digits(in + i + 1, 2), om = digits(in + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return PX_ERR_INVALID;
        offset_min = (in[i] == '+' ? 1 : -1) * (oh * 60 + om);
        i += 6;
    } else {
        return PX_ERR_INVALID;
    }
    if (i != n)
        return PX_ERR_INVALID;

    /* Local time minus its offset is UTC. */
    int64_t t = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec -
                (int64_t)offset_min * 60;
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t rem = t - days * 86400;
    int64_t uy;
    int um, ud;
    civil_from_days(days, &uy, &um, &ud);
    if (uy < 0 || uy > 9999)
        return PX_ERR_INVALID;
    int len = snprintf(out, 25, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)uy, um, ud,
                       (int)(rem / 3600), (int)(rem % 3600 / 60), (int)(rem % 60), ms);
    if (len != 24) {
        out[0] = '\0';
        return PX_ERR_INTERNAL;
    }
    return PX_OK;
}
