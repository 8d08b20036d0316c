/* log.c: JSON line logs with redaction (CONTRACT §7).
 *
 * Every value goes through px_log_scrub() before it is escaped, and fields
 * whose key is on the deny list are replaced whole, so no caller can log a
 * user id, a credential or a query string by accident. A line is built in a
 * capped buffer and leaves in one write(2), so lines of concurrent threads
 * never interleave. */
#include "log.h"

#include "app.h"
#include "buf.h"
#include "validate.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES  8192 /* whole line, newline included */
#define REST_MAX_BYTES  6144 /* everything after msg */
#define VALUE_MAX_BYTES 2048 /* one scrubbed field value */
#define TRUNC_RESERVE   24   /* room for ,"truncated":true */
#define WRITE_TRIES     32

static const char REDACTED[] = "[REDACTED]";

static atomic_int log_level = PX_LOG_INFO;
static atomic_int log_fd = STDOUT_FILENO;
static atomic_int cold_start = -1; /* -1: not reported */
static char log_function[64];
/* The tenant of the request this thread is running (TENANCY=on), for every
 * line written meanwhile; NULL otherwise. It points into the request arena,
 * so it is cleared before the request ends (px_app_dispatch). */
static _Thread_local const char *log_tenant;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void px_log_init(enum px_log_level level, const char *function)
{
    atomic_store(&log_level, (int)level);
    log_function[0] = '\0';
    if (function)
        snprintf(log_function, sizeof(log_function), "%s", function);
}

void px_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

void px_log_set_cold_start(bool cold)
{
    atomic_store(&cold_start, cold ? 1 : 0);
}

bool px_log_enabled(enum px_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

/* ---- scrubbing ---------------------------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}
static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}
static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}
static bool is_alnum(char c)
{
    return is_digit(c) || is_upper(c) || is_lower(c);
}
static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static bool is_b64(char c)
{
    return is_alnum(c) || c == '+' || c == '/' || c == '=';
}
static bool is_b64url(char c)
{
    return is_alnum(c) || c == '-' || c == '_';
}
static bool is_local(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
static bool is_domain(char c)
{
    return is_alnum(c) || c == '.' || c == '-';
}
/* Where a token, a bearer credential or a query string ends. */
static bool is_stop(char c)
{
    return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' ||
           c == '<' || c == '>' || c == '\f' || c == '\v';
}

/* Each matcher looks at s[i..n) and returns how many bytes to redact (0: no
 * match) and in *keep how many leading ones stay visible. `resume` is true at
 * the start of input and right after an earlier redaction. Run-based matchers
 * only fire where their run begins, so every run is scanned once and the
 * scrubber stays linear whatever the input. */

/* true where a run of bytes of class `in` begins at i. */
static bool run_start(const char *s, size_t i, bool resume, bool (*in)(char))
{
    return resume || !in(s[i - 1]);
}

static size_t m_email(const char *s, size_t n, size_t i, bool resume)
{
    if (!is_local(s[i]) || !run_start(s, i, resume, is_local))
        return 0;
    size_t j = i;
    while (j < n && is_local(s[j]))
        j++;
    if (j >= n || s[j] != '@')
        return 0;
    size_t k = j + 1, dot = 0;
    while (k < n && is_domain(s[k])) {
        if (s[k] == '.' && k > j + 1)
            dot = k;
        k++;
    }
    while (k > j + 1 && (s[k - 1] == '.' || s[k - 1] == '-'))
        k--;
    if (!dot || dot + 1 >= k)
        return 0;
    return k - i;
}

static size_t m_uuid(const char *s, size_t n, size_t i)
{
    if (n - i < PX_UUID_LEN)
        return 0;
    for (size_t k = 0; k < PX_UUID_LEN; k++) {
        bool dash = k == 8 || k == 13 || k == 18 || k == 23;
        if (dash ? s[i + k] != '-' : !is_hex(s[i + k]))
            return 0;
    }
    return PX_UUID_LEN;
}

static size_t m_hex_run(const char *s, size_t n, size_t i, bool resume)
{
    if (!is_hex(s[i]) || !run_start(s, i, resume, is_hex))
        return 0;
    size_t j = i;
    while (j < n && is_hex(s[j]))
        j++;
    return j - i >= 32 ? j - i : 0;
}

static size_t m_jwt(const char *s, size_t n, size_t i, bool resume)
{
    if (n - i < 8 || memcmp(s + i, "eyJ", 3) != 0 || !run_start(s, i, resume, is_b64url))
        return 0;
    size_t j = i + 3;
    while (j < n && is_b64url(s[j]))
        j++;
    if (j + 4 > n || s[j] != '.' || memcmp(s + j + 1, "eyJ", 3) != 0)
        return 0;
    j += 4;
    while (j < n && is_b64url(s[j]))
        j++;
    if (j < n && s[j] == '.') {
        j++;
        while (j < n && is_b64url(s[j]))
            j++;
    }
    return j - i;
}

static size_t m_aws_key_id(const char *s, size_t n, size_t i)
{
    if (n - i < 20 || (memcmp(s + i, "AKIA", 4) != 0 && memcmp(s + i, "ASIA", 4) != 0))
        return 0;
    for (size_t k = 4; k < 20; k++) {
        if (!is_upper(s[i + k]) && !is_digit(s[i + k]))
            return 0;
    }
    return 20;
}

/* Secret access keys (40 base64 characters) and session tokens (hundreds):
 * long base64 runs mixing upper case, lower case and digits. */
static size_t m_b64_secret(const char *s, size_t n, size_t i, bool resume)
{
    if (!is_b64(s[i]) || !run_start(s, i, resume, is_b64))
        return 0;
    size_t j = i;
    bool up = false, low = false, dig = false;
    while (j < n && is_b64(s[j])) {
        up |= is_upper(s[j]);
        low |= is_lower(s[j]);
        dig |= is_digit(s[j]);
        j++;
    }
    return j - i >= 40 && up && low && dig ? j - i : 0;
}

static size_t m_bearer(const char *s, size_t n, size_t i, bool resume, size_t *keep)
{
    static const char word[] = "bearer";
    if (n - i < 8 || !run_start(s, i, resume, is_alnum))
        return 0;
    for (size_t k = 0; k < 6; k++) {
        char c = s[i + k];
        if (is_upper(c))
            c = (char)(c - 'A' + 'a');
        if (c != word[k])
            return 0;
    }
    size_t j = i + 6;
    while (j < n && (s[j] == ' ' || s[j] == '\t'))
        j++;
    if (j == i + 6 || j >= n || is_stop(s[j]))
        return 0;
    *keep = j - i;
    while (j < n && !is_stop(s[j]))
        j++;
    return j - i;
}

static size_t m_query(const char *s, size_t n, size_t i, size_t *keep)
{
    if (s[i] != '?' || i == 0 || is_stop(s[i - 1]) || i + 1 >= n || is_stop(s[i + 1]))
        return 0;
    size_t j = i + 1;
    while (j < n && !is_stop(s[j]))
        j++;
    *keep = 1;
    return j - i;
}

static size_t match_secret(const char *s, size_t n, size_t i, bool resume, size_t *keep)
{
    size_t m;
    *keep = 0;
    if ((m = m_email(s, n, i, resume)) || (m = m_uuid(s, n, i)) || (m = m_jwt(s, n, i, resume)) ||
        (m = m_aws_key_id(s, n, i)) || (m = m_hex_run(s, n, i, resume)) ||
        (m = m_b64_secret(s, n, i, resume)))
        return m;
    if ((m = m_bearer(s, n, i, resume, keep)) || (m = m_query(s, n, i, keep)))
        return m;
    return 0;
}

/* Scrubs s[0..n) into out; returns the bytes written (out NUL-terminated).
 * *cut tells whether input was left over for lack of room. */
static size_t scrub_n(const char *s, size_t n, char *out, size_t outlen, bool *cut)
{
    if (!out || outlen == 0)
        return 0;
    size_t o = 0, cap = outlen - 1, last_end = 0, i = 0;
    while (i < n && o < cap) {
        size_t keep = 0;
        size_t m = match_secret(s, n, i, i == 0 || i == last_end, &keep);
        if (!m) {
            out[o++] = s[i++];
            continue;
        }
        size_t k = keep < cap - o ? keep : cap - o;
        memcpy(out + o, s + i, k);
        o += k;
        size_t r = sizeof(REDACTED) - 1 < cap - o ? sizeof(REDACTED) - 1 : cap - o;
        memcpy(out + o, REDACTED, r);
        o += r;
        i += m;
        last_end = i;
    }
    out[o] = '\0';
    if (cut)
        *cut = i < n;
    return o;
}

/* Most values of a line repeat from line to line (method, route, function, the
 * message "request"), and scrubbing is a pure function of the text: a short
 * value seen before gets the output it got then, without another pass of the
 * matchers. Per thread, so no lock; an exact byte compare, so a value that
 * differs in one byte is scrubbed afresh. Caller-supplied text is treated the
 * same way: a hit returns exactly what scrubbing it would return. */
#define MEMO_SLOTS 8
#define MEMO_IN    48
#define MEMO_OUT   96
static _Thread_local struct memo {
    size_t in_len, out_len;
    char in[MEMO_IN];
    char out[MEMO_OUT];
} memo[MEMO_SLOTS];
static _Thread_local unsigned memo_next;

static size_t scrub_memo(const char *s, size_t n, char *out, size_t outlen, bool *cut)
{
    if (n == 0 || n > MEMO_IN || !out || outlen == 0)
        return scrub_n(s, n, out, outlen, cut);
    for (unsigned i = 0; i < MEMO_SLOTS; i++) {
        const struct memo *m = &memo[i];
        if (m->in_len == n && m->out_len < outlen && memcmp(m->in, s, n) == 0) {
            memcpy(out, m->out, m->out_len);
            out[m->out_len] = '\0';
            if (cut)
                *cut = false;
            return m->out_len;
        }
    }
    bool c = false;
    size_t o = scrub_n(s, n, out, outlen, &c);
    if (cut)
        *cut = c;
    if (!c && o <= MEMO_OUT) {
        struct memo *m = &memo[memo_next++ % MEMO_SLOTS];
        m->in_len = n;
        memcpy(m->in, s, n);
        m->out_len = o;
        memcpy(m->out, out, o);
    }
    return o;
}

void px_log_scrub(const char *s, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    if (!s) {
        out[0] = '\0';
        return;
    }
    scrub_n(s, strlen(s), out, outlen, NULL);
}

/* Keys compared lower-cased with '-', '_' and '.' dropped, by containment:
 * "X-Api-Key", "aws_session_token" and "refreshToken" are all caught. */
static bool key_denied(const char *key)
{
    static const char *const deny[] = {
        "userid", "authorization", "cookie", "query",  "body",    "password",
        "passwd", "secret",        "token",  "apikey", "xapikey", "credential",
    };
    char norm[64];
    size_t o = 0;
    for (size_t i = 0; key[i] && o < sizeof(norm) - 1; i++) {
        char c = key[i];
        if (c == '-' || c == '_' || c == '.' || c == ' ')
            continue;
        norm[o++] = is_upper(c) ? (char)(c - 'A' + 'a') : c;
    }
    norm[o] = '\0';
    for (size_t i = 0; i < PX_COUNTOF(deny); i++) {
        if (strstr(norm, deny[i]))
            return true;
    }
    return false;
}

/* ---- line assembly ------------------------------------------------------ */

struct req_part {
    const char *method;
    const char *route;
    int status;
    double latency_ms;
};

static bool reserved_key(const char *k)
{
    static const char *const names[] = {"ts",        "level",     "msg",       "function",
                                        "requestId", "method",    "route",     "status",
                                        "latencyMs", "coldStart", "truncated", "tenantId"};
    for (size_t i = 0; i < PX_COUNTOF(names); i++) {
        if (strcmp(k, names[i]) == 0)
            return true;
    }
    return false;
}

static px_rc add_scrubbed(struct px_buf *b, const char *v)
{
    if (!v)
        return px_buf_adds(b, "null");
    char tmp[VALUE_MAX_BYTES];
    size_t n = scrub_memo(v, strlen(v), tmp, sizeof(tmp), NULL);
    return px_buf_json_str(b, tmp, n);
}

static px_rc add_field(struct px_buf *b, const char *key, const char *value)
{
    size_t start = b->len;
    px_rc rc = px_buf_adds(b, ",");
    /* A field named like a built-in one must not shadow it. */
    if (!rc && reserved_key(key))
        rc = px_buf_printf(b, "\"field_%s\":", key);
    else if (!rc) {
        rc = px_buf_json_strz(b, key);
        if (!rc)
            rc = px_buf_adds(b, ":");
    }
    if (!rc)
        rc = key_denied(key) ? px_buf_json_strz(b, REDACTED) : add_scrubbed(b, value);
    if (rc) {
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
    return rc;
}

static void format_latency(double ms, char *out, size_t outlen)
{
    if (!isfinite(ms) || ms < 0)
        ms = 0;
    if (ms > 1e9)
        ms = 1e9;
    snprintf(out, outlen, "%.3f", ms);
    char *dot = strchr(out, '.');
    if (!dot)
        return;
    char *end = out + strlen(out);
    while (end > dot + 1 && end[-1] == '0')
        *--end = '\0';
    if (end == dot + 1)
        *dot = '\0';
}

static void write_line(const char *p, size_t n)
{
    int saved = errno;
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    for (int tries = 0; n > 0 && tries < WRITE_TRIES; tries++) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EINTR) {
            break; /* a log line is never worth blocking or failing a request */
        }
    }
    errno = saved;
}

static px_rc build_rest(struct px_buf *rest, const char *function, const char *request_id,
                        const char *tenant, const struct req_part *rq, const struct px_kv *fields,
                        size_t nfields, bool *truncated)
{
    px_rc rc = px_buf_adds(rest, ",\"function\":");
    if (!rc)
        rc = function && function[0] ? add_scrubbed(rest, function) : px_buf_adds(rest, "null");
    if (!rc)
        rc = px_buf_adds(rest, ",\"requestId\":");
    if (!rc) {
        /* Our own ids are UUIDs by design; only those of the shape we accept
         * pass unscrubbed, anything else is treated as untrusted text. */
        if (px_valid_request_id(request_id))
            rc = px_buf_json_strz(rest, request_id);
        else
            rc = add_scrubbed(rest, request_id);
    }
    if (!rc && tenant) {
        rc = px_buf_adds(rest, ",\"tenantId\":");
        if (!rc)
            rc = add_scrubbed(rest, tenant);
    }
    if (!rc && rq) {
        char lat[48];
        format_latency(rq->latency_ms, lat, sizeof(lat));
        rc = px_buf_adds(rest, ",\"method\":");
        if (!rc)
            rc = add_scrubbed(rest, rq->method);
        if (!rc)
            rc = px_buf_adds(rest, ",\"route\":");
        if (!rc)
            rc = add_scrubbed(rest, rq->route);
        if (!rc)
            rc = px_buf_printf(rest, ",\"status\":%d,\"latencyMs\":%s", rq->status, lat);
        int cold = atomic_load_explicit(&cold_start, memory_order_relaxed);
        if (!rc && cold >= 0)
            rc = px_buf_adds(rest, cold ? ",\"coldStart\":true" : ",\"coldStart\":false");
    }
    for (size_t i = 0; !rc && i < nfields; i++) {
        if (!fields[i].key)
            continue;
        if (add_field(rest, fields[i].key, fields[i].value)) {
            *truncated = true;
            break;
        }
    }
    return rc;
}

static void emit(enum px_log_level level, const char *function, const char *request_id,
                 const char *tenant, const char *msg, const struct px_kv *fields, size_t nfields,
                 const struct req_part *rq)
{
    if ((unsigned)level > PX_LOG_ERROR)
        level = PX_LOG_ERROR;
    char ts[25];
    px_now_rfc3339(ts);

    bool truncated = false;
    char smsg[LINE_MAX_BYTES];
    size_t mlen = msg ? scrub_memo(msg, strlen(msg), smsg, sizeof(smsg), &truncated) : 0;
    if (!msg)
        smsg[0] = '\0';

    struct px_buf rest, line;
    px_buf_init(&rest, REST_MAX_BYTES);
    px_buf_init(&line, LINE_MAX_BYTES);
    if (build_rest(&rest, function, request_id, tenant, rq, fields, nfields, &truncated))
        goto out;

    px_rc rc =
        px_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
    if (rc)
        goto out;
    /* The message gets what the rest leaves; escaping can grow it, so shrink
     * the cut until the escaped form fits (a bounded number of tries). */
    line.max = LINE_MAX_BYTES - 2 - rest.len - TRUNC_RESERVE;
    size_t n = mlen;
    for (int tries = 0; tries < 64; tries++) {
        rc = px_buf_json_str(&line, smsg, n);
        if (rc != PX_ERR_TOO_LARGE || n == 0)
            break;
        n = n > 16 ? n - n / 4 : n - 1;
        truncated = true;
    }
    line.max = LINE_MAX_BYTES;
    if (rc)
        goto out;
    if (truncated)
        rc = px_buf_adds(&line, ",\"truncated\":true");
    if (!rc)
        rc = px_buf_add(&line, rest.data, rest.len);
    if (!rc)
        rc = px_buf_adds(&line, "}\n");
    if (!rc)
        write_line(line.data, line.len);
out:
    px_buf_free(&rest);
    px_buf_free(&line);
}

void px_log_fields(enum px_log_level level, const char *request_id, const char *msg,
                   const struct px_kv *fields, size_t nfields)
{
    if (!px_log_enabled(level))
        return;
    emit(level, log_function, request_id, log_tenant, msg, fields, nfields, NULL);
}

void px_log_msg(enum px_log_level level, const char *request_id, const char *fmt, ...)
{
    if (!px_log_enabled(level))
        return;
    char msg[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    emit(level, log_function, request_id, log_tenant, msg, NULL, 0, NULL);
}

void px_log_request(const struct px_request *req, const struct px_response *resp, double latency_ms)
{
    int status = resp ? resp->status : 0;
    enum px_log_level level = status >= 500 ? PX_LOG_ERROR : PX_LOG_INFO;
    if (!req || !px_log_enabled(level))
        return;
    /* The route is the pattern the router matched, never the raw path. */
    struct req_part rq = {
        .method = req->method,
        .route = req->route,
        .status = status,
        .latency_ms = latency_ms,
    };
    const char *function = req->function ? req->function : log_function;
    emit(level, function, req->request_id, req->tenant, "request", NULL, 0, &rq);
}

void px_log_set_tenant(const char *tenant)
{
    log_tenant = tenant;
}
