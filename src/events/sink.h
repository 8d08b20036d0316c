/* sink.h: where the relay publishes events (EVENT_SINK, CONTRACT §10).
 *
 * "none" (events stay in the outbox), "amqp://user:pass@host:port/vhost?exchange=NAME"
 * (RabbitMQ: persistent messages on a topic exchange, routing key = event
 * type, each publish confirmed by the broker), "sqs:QUEUE_URL" (SendMessage,
 * AWS JSON protocol; FIFO queues get MessageGroupId = subject and
 * MessageDeduplicationId = event id), "sns:TOPIC_ARN" (Publish with the
 * message attribute `type`). A backend is a file (sink_amqp.c, sink_aws.c)
 * behind the table below.
 *
 * px_sink_publish() returns PX_OK only once the broker has taken the event
 * (AMQP confirm, HTTP 200): the relay marks an event sent only then. */
#ifndef PX_SINK_H
#define PX_SINK_H

#include "kernel/config.h"
#include "store/outbox.h"

struct px_sink;

/* Opens the sink named by spec; AWS sinks take region, credentials and
 * endpoints from cfg. Connections are made lazily, so a broker that is down
 * does not stop start-up. err: one line naming EVENT_SINK. */
px_rc px_sink_open(const char *spec, const struct px_config *cfg, struct px_sink **out, char *err,
                   size_t errlen) PX_WUR;
/* Closes (and disconnects). Accepts NULL. */
void px_sink_close(struct px_sink *s);
/* "none", "amqp", "sqs", "sns". */
const char *px_sink_kind(const struct px_sink *s);
/* Publishes one event; PX_OK once the broker acknowledged it. err: why not.
 * PX_ERR_INVALID / PX_ERR_TOO_LARGE / PX_ERR_DENIED: retrying the same event
 * will not help (the relay still retries up to its limit, then parks it). */
px_rc px_sink_publish(struct px_sink *s, const struct px_outbox_row *ev, char *err,
                      size_t errlen) PX_WUR;
/* PX_OK when the broker can be reached now (readiness). */
px_rc px_sink_ping(struct px_sink *s, char *err, size_t errlen) PX_WUR;

struct px_sink_ops {
    const char *kind;
    px_rc (*open)(const char *target, const struct px_config *cfg, void **impl, char *err,
                  size_t errlen);
    void (*close)(void *impl);
    px_rc (*publish)(void *impl, const struct px_outbox_row *ev, char *err, size_t errlen);
    px_rc (*ping)(void *impl, char *err, size_t errlen);
};

#ifdef PX_HAVE_AMQP
extern const struct px_sink_ops px_sink_amqp_ops;
#endif
extern const struct px_sink_ops px_sink_sqs_ops;
extern const struct px_sink_ops px_sink_sns_ops;

#endif
