/* log_limit.c: one line per cause per interval (see log_limit.h). */
#include "log_limit.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

px_rc px_log_limit_init(struct px_log_limit *l, long interval_ms)
{
    memset(l, 0, sizeof(*l));
    l->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    return pthread_mutex_init(&l->mu, NULL) ? PX_ERR_NOMEM : PX_OK;
}

void px_log_limit_destroy(struct px_log_limit *l)
{
    if (l)
        pthread_mutex_destroy(&l->mu);
}

bool px_log_limited(struct px_log_limit *l, enum px_log_level level, const char *cause,
                    const char *fmt, ...)
{
    if (!l || !px_log_enabled(level))
        return false;
    char key[PX_LOG_LIMIT_CAUSE];
    snprintf(key, sizeof(key), "%s", cause && cause[0] ? cause : "unknown");
    int64_t now = mono_ms();
    uint64_t held = 0;
    bool write = false;
    pthread_mutex_lock(&l->mu);
    size_t use = 0;
    bool found = false;
    for (size_t i = 0; i < PX_LOG_LIMIT_CAUSES; i++) {
        if (strcmp(l->slot[i].cause, key) == 0) {
            use = i;
            found = true;
            break;
        }
        /* Otherwise the free slot, else the one written longest ago. */
        if (!l->slot[use].cause[0])
            continue;
        if (!l->slot[i].cause[0] || l->slot[i].last_ms < l->slot[use].last_ms)
            use = i;
    }
    if (!found) {
        memcpy(l->slot[use].cause, key, sizeof(key));
        l->slot[use].suppressed = 0;
        write = true;
    } else if (now - l->slot[use].last_ms >= l->interval_ms) {
        write = true;
    }
    if (write) {
        held = l->slot[use].suppressed;
        l->slot[use].suppressed = 0;
        l->slot[use].last_ms = now;
    } else {
        l->slot[use].suppressed++;
    }
    pthread_mutex_unlock(&l->mu);
    if (!write)
        return false;

    char msg[1024], count[24];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    snprintf(count, sizeof(count), "%llu", (unsigned long long)held);
    const struct px_kv fields[] = {{"cause", key}, {"suppressed", count}};
    px_log_fields(level, NULL, msg, fields, held ? 2 : 1);
    return true;
}
