/* sink.c: EVENT_SINK parsing and the backend dispatch. */
#include "sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct px_sink {
    const struct px_sink_ops *ops; /* NULL: none */
    void *impl;
};

px_rc px_sink_open(const char *spec, const struct px_config *cfg, struct px_sink **out, char *err,
                   size_t errlen)
{
    const struct px_sink_ops *ops = NULL;
    const char *target = spec;
    *out = NULL;
    if (!spec || !spec[0] || strcmp(spec, "none") == 0) {
        ops = NULL;
    } else if (strncmp(spec, "amqp://", 7) == 0) {
#ifdef PX_HAVE_AMQP
        ops = &px_sink_amqp_ops;
#else
        snprintf(err, errlen,
                 "EVENT_SINK: this build has no AMQP sink (built with PX_AMQP=OFF, the Lambda "
                 "package); use sqs: or sns:");
        return PX_ERR_CONFIG;
#endif
    } else if (strncmp(spec, "sqs:", 4) == 0) {
        ops = &px_sink_sqs_ops;
        target = spec + 4;
    } else if (strncmp(spec, "sns:", 4) == 0) {
        ops = &px_sink_sns_ops;
        target = spec + 4;
    } else {
        snprintf(err, errlen,
                 "EVENT_SINK: \"%.100s\" is not none, amqp://..., sqs:QUEUE_URL or sns:TOPIC_ARN",
                 spec);
        return PX_ERR_CONFIG;
    }
    struct px_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return PX_ERR_NOMEM;
    s->ops = ops;
    if (ops) {
        px_rc rc = ops->open(target, cfg, &s->impl, err, errlen);
        if (rc) {
            free(s);
            return rc;
        }
    }
    *out = s;
    return PX_OK;
}

void px_sink_close(struct px_sink *s)
{
    if (!s)
        return;
    if (s->ops)
        s->ops->close(s->impl);
    free(s);
}

const char *px_sink_kind(const struct px_sink *s)
{
    return s && s->ops ? s->ops->kind : "none";
}

px_rc px_sink_publish(struct px_sink *s, const struct px_outbox_row *ev, char *err, size_t errlen)
{
    if (!s->ops) {
        snprintf(err, errlen, "EVENT_SINK is none: events stay in the outbox");
        return PX_ERR_CONFIG;
    }
    err[0] = '\0';
    return s->ops->publish(s->impl, ev, err, errlen);
}

px_rc px_sink_ping(struct px_sink *s, char *err, size_t errlen)
{
    err[0] = '\0';
    return s->ops ? s->ops->ping(s->impl, err, errlen) : PX_OK;
}
