/* log_limit.h: rate-limited log lines for failures that repeat (a store
 * failing every batch), so a fault is reported without flooding the log.
 *
 * At most one line per cause per interval; the lines held back are counted
 * and the next line of that cause carries the count ("suppressed": "N").
 * A limiter tracks PX_LOG_LIMIT_CAUSES causes; a new cause past that takes
 * the slot used longest ago. The limiter is plain memory owned by its
 * caller (embedded in a store); px_log_limit_init/destroy bracket its use. */
#ifndef PX_LOG_LIMIT_H
#define PX_LOG_LIMIT_H

#include "log.h"

#include <pthread.h>
#include <stdint.h>

#define PX_LOG_LIMIT_CAUSES 8
#define PX_LOG_LIMIT_CAUSE  64 /* bytes of a cause, NUL included (longer ones are cut) */

struct px_log_limit {
    pthread_mutex_t mu;
    long interval_ms;
    struct {
        char cause[PX_LOG_LIMIT_CAUSE]; /* "" = free */
        int64_t last_ms;                /* monotonic time of the last line written */
        uint64_t suppressed;            /* lines held back since then */
    } slot[PX_LOG_LIMIT_CAUSES];
};

/* Prepares l for at most one line per cause per interval_ms (<= 0: 1000). */
px_rc px_log_limit_init(struct px_log_limit *l, long interval_ms) PX_WUR;
/* Releases l's mutex. Only after a successful init. */
void px_log_limit_destroy(struct px_log_limit *l);
/* Writes one line at level with msg and the fields "cause" and, when lines
 * were held back, "suppressed"; or, within the interval of the last line of
 * the same cause, only counts it. Returns true when a line was written.
 * Thread-safe; the message is formatted only when a line goes out. */
bool px_log_limited(struct px_log_limit *l, enum px_log_level level, const char *cause,
                    const char *fmt, ...) PX_PRINTF(4, 5);

#endif
