/* sink_amqp.c: RabbitMQ through librabbitmq (EVENT_SINK=amqp://...).
 *
 * One connection and one channel in confirm mode; the topic exchange is
 * declared durable on connect. Each event is one persistent message
 * (delivery_mode 2) routed by its type, with message_id = event id, and
 * px_sink_publish() waits for the broker's basic.ack of that message (a
 * nack or a closed channel is a failure). Any failure drops the connection;
 * the next publish reconnects. Every wait is bounded by TIMEOUT_MS. */
#include "sink.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define TIMEOUT_MS 5000

struct amqp_sink {
    char *url;      /* without the query, for amqp_parse_url (which edits a copy) */
    char *exchange; /* from ?exchange= */
    char shown[256];
    amqp_connection_state_t conn; /* NULL when disconnected */
    uint64_t tag;                 /* delivery tag of the last publish on conn */
};

static void disconnect(struct amqp_sink *s)
{
    if (!s->conn)
        return;
    amqp_connection_close(s->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(s->conn);
    s->conn = NULL;
    s->tag = 0;
}

static bool reply_ok(amqp_rpc_reply_t r)
{
    return r.reply_type == AMQP_RESPONSE_NORMAL;
}

static px_rc connect_sink(struct amqp_sink *s, char *err, size_t errlen)
{
    if (s->conn)
        return PX_OK;
    struct amqp_connection_info ci;
    char *copy = strdup(s->url);
    px_rc rc = PX_ERR_UNAVAILABLE;
    if (!copy)
        return PX_ERR_NOMEM;
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
        free(copy);
        snprintf(err, errlen, "EVENT_SINK: cannot parse %s", s->shown);
        return PX_ERR_CONFIG;
    }
    struct timeval tv = {TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000};
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = c ? amqp_tcp_socket_new(c) : NULL;
    if (!sock) {
        rc = PX_ERR_NOMEM;
        goto fail;
    }
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    int st = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
    if (st != AMQP_STATUS_OK) {
        snprintf(err, errlen, "amqp %s: cannot connect: %s", s->shown, amqp_error_string2(st));
        goto fail;
    }
    if (!reply_ok(amqp_login(c, ci.vhost, 1, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN,
                             ci.user, ci.password))) {
        snprintf(err, errlen, "amqp %s: login refused", s->shown);
        rc = PX_ERR_DENIED;
        goto fail;
    }
    amqp_channel_open(c, 1);
    if (!reply_ok(amqp_get_rpc_reply(c))) {
        snprintf(err, errlen, "amqp %s: cannot open a channel", s->shown);
        goto fail;
    }
    amqp_confirm_select(c, 1);
    if (!reply_ok(amqp_get_rpc_reply(c))) {
        snprintf(err, errlen, "amqp %s: publisher confirms refused", s->shown);
        goto fail;
    }
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(s->exchange), amqp_cstring_bytes("topic"), 0, 1,
                          0, 0, amqp_empty_table);
    if (!reply_ok(amqp_get_rpc_reply(c))) {
        snprintf(err, errlen, "amqp %s: cannot declare topic exchange %.100s", s->shown,
                 s->exchange);
        goto fail;
    }
    free(copy);
    s->conn = c;
    s->tag = 0;
    return PX_OK;
fail:
    if (c) {
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(c);
    }
    free(copy);
    return rc;
}

static void amqp_close_sink(void *impl)
{
    struct amqp_sink *s = impl;
    if (!s)
        return;
    disconnect(s);
    free(s->url);
    free(s->exchange);
    free(s);
}

/* amqp://user:***@host:port/vhost?exchange=NAME, for messages. */
static void shown_url(const char *spec, char *out, size_t cap)
{
    const char *at = strchr(spec + 7, '@');
    const char *colon = strchr(spec + 7, ':');
    if (at && colon && colon < at)
        snprintf(out, cap, "%.*s:***%s", (int)(colon - spec), spec, at);
    else
        snprintf(out, cap, "%s", spec);
}

static px_rc amqp_open_sink(const char *spec, const struct px_config *cfg, void **impl, char *err,
                            size_t errlen)
{
    PX_UNUSED(cfg);
    *impl = NULL;
    const char *q = strchr(spec, '?');
    if (!q || strncmp(q + 1, "exchange=", 9) != 0 || !q[10] || strchr(q + 10, '&')) {
        snprintf(err, errlen, "EVENT_SINK: an amqp:// sink needs exactly ?exchange=NAME");
        return PX_ERR_CONFIG;
    }
    struct amqp_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return PX_ERR_NOMEM;
    s->url = strndup(spec, (size_t)(q - spec));
    s->exchange = strdup(q + 10);
    if (!s->url || !s->exchange) {
        amqp_close_sink(s);
        return PX_ERR_NOMEM;
    }
    shown_url(spec, s->shown, sizeof(s->shown));
    struct amqp_connection_info ci;
    char *copy = strdup(s->url);
    int st = copy ? amqp_parse_url(copy, &ci) : AMQP_STATUS_NO_MEMORY;
    free(copy);
    if (st != AMQP_STATUS_OK) {
        snprintf(err, errlen, "EVENT_SINK: \"%s\" is not an amqp://user:pass@host:port/vhost URL",
                 s->shown);
        amqp_close_sink(s);
        return PX_ERR_CONFIG;
    }
    *impl = s;
    return PX_OK;
}

/* Waits for the broker's verdict on delivery tag `tag`. */
static px_rc wait_confirm(struct amqp_sink *s, uint64_t tag, char *err, size_t errlen)
{
    struct timeval tv = {TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000};
    for (int i = 0; i < 64; i++) {
        amqp_frame_t f;
        amqp_maybe_release_buffers(s->conn);
        int st = amqp_simple_wait_frame_noblock(s->conn, &f, &tv);
        if (st != AMQP_STATUS_OK) {
            snprintf(err, errlen, "amqp %s: no confirm: %s", s->shown, amqp_error_string2(st));
            return st == AMQP_STATUS_TIMEOUT ? PX_ERR_TIMEOUT : PX_ERR_UNAVAILABLE;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue; /* a basic.return's header and body */
        amqp_method_number_t id = f.payload.method.id;
        if (id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->delivery_tag == tag || (a->multiple && a->delivery_tag >= tag))
                return PX_OK;
        } else if (id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *n = f.payload.method.decoded;
            if (n->delivery_tag == tag || (n->multiple && n->delivery_tag >= tag)) {
                snprintf(err, errlen, "amqp %s: the broker refused the message (nack)", s->shown);
                return PX_ERR_UNAVAILABLE;
            }
        } else if (id == AMQP_CHANNEL_CLOSE_METHOD || id == AMQP_CONNECTION_CLOSE_METHOD) {
            snprintf(err, errlen, "amqp %s: the broker closed the channel", s->shown);
            return PX_ERR_UNAVAILABLE;
        }
    }
    snprintf(err, errlen, "amqp %s: no confirm among the broker's frames", s->shown);
    return PX_ERR_PROTOCOL;
}

static px_rc amqp_publish_sink(void *impl, const struct px_outbox_row *ev, char *err, size_t errlen)
{
    struct amqp_sink *s = impl;
    px_rc rc = connect_sink(s, err, errlen);
    if (rc)
        return rc;
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    p.content_type = amqp_cstring_bytes("application/cloudevents+json");
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p.message_id = amqp_cstring_bytes(ev->id);
    p.type = amqp_cstring_bytes(ev->type);
    p.timestamp = (uint64_t)(ev->created_ms / 1000);
    int st =
        amqp_basic_publish(s->conn, 1, amqp_cstring_bytes(s->exchange),
                           amqp_cstring_bytes(ev->type), 0, 0, &p, amqp_cstring_bytes(ev->event));
    if (st != AMQP_STATUS_OK) {
        snprintf(err, errlen, "amqp %s: publish failed: %s", s->shown, amqp_error_string2(st));
        rc = PX_ERR_UNAVAILABLE;
    } else {
        rc = wait_confirm(s, ++s->tag, err, errlen);
    }
    if (rc)
        disconnect(s);
    return rc;
}

static px_rc amqp_ping_sink(void *impl, char *err, size_t errlen)
{
    return connect_sink(impl, err, errlen);
}

const struct px_sink_ops px_sink_amqp_ops = {
    .kind = "amqp",
    .open = amqp_open_sink,
    .close = amqp_close_sink,
    .publish = amqp_publish_sink,
    .ping = amqp_ping_sink,
};
