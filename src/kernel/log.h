/* log.h: JSON line logs (CONTRACT §7) with redaction that cannot be bypassed.
 *
 * One object per line on stdout: ts, level, msg, function, requestId, and for
 * requests method, route, status, latencyMs. The writer scrubs every value it
 * emits (message included): UUIDs, bearer tokens, AWS key ids and secrets,
 * query strings and e-mail addresses become "[REDACTED]", and fields whose
 * name is on the deny list (userId, authorization, query, body, cookie,
 * password, secret, token, ...) are written as "[REDACTED]" whatever they hold.
 * One write(2) per line, so lines from threads never interleave. */
#ifndef PX_LOG_H
#define PX_LOG_H

#include "config.h"
#include "request.h"

/* Sets the threshold and the `function` field. Not thread-safe: call at start-up. */
void px_log_init(enum px_log_level level, const char *function);
/* Sends lines to fd instead of stdout (tests). */
void px_log_set_fd(int fd);
/* Adds "coldStart": true/false to request lines (Lambda). */
void px_log_set_cold_start(bool cold);
/* true when a line of this level would be written. */
bool px_log_enabled(enum px_log_level level);

/* One line: msg is scrubbed; fields are extra key/value pairs (values scrubbed,
 * denied keys redacted). request_id may be NULL. */
void px_log_fields(enum px_log_level level, const char *request_id, const char *msg,
                   const struct px_kv *fields, size_t nfields);
/* printf-style message without extra fields. */
void px_log_msg(enum px_log_level level, const char *request_id, const char *fmt, ...)
    PX_PRINTF(3, 4);
/* Names the tenant of the request this thread runs (NULL: none): every line
 * the thread writes until it is cleared carries it as `tenantId`. The string
 * must outlive that; clear it before the request's arena goes. */
void px_log_set_tenant(const char *tenant);
/* The access line of one request (with req->tenant when set). */
void px_log_request(const struct px_request *req, const struct px_response *resp,
                    double latency_ms);

/* Scrubs s into out (always NUL-terminated, truncated to outlen). Exposed for tests. */
void px_log_scrub(const char *s, char *out, size_t outlen);

#define PX_LOG(level, rid, ...)                                                                    \
    do {                                                                                           \
        if (px_log_enabled(level))                                                                 \
            px_log_msg(level, rid, __VA_ARGS__);                                                   \
    } while (0)
#define PX_DEBUG(rid, ...) PX_LOG(PX_LOG_DEBUG, rid, __VA_ARGS__)
#define PX_INFO(rid, ...)  PX_LOG(PX_LOG_INFO, rid, __VA_ARGS__)
#define PX_WARN(rid, ...)  PX_LOG(PX_LOG_WARN, rid, __VA_ARGS__)
#define PX_ERROR(rid, ...) PX_LOG(PX_LOG_ERROR, rid, __VA_ARGS__)

#endif
