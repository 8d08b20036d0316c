/* sink_aws.c: SQS and SNS over libcurl, signed with SigV4 (store/sigv4.h).
 *
 * sqs:QUEUE_URL -> SendMessage, AWS JSON protocol (awsJson1_0,
 * X-Amz-Target: AmazonSQS.SendMessage). A FIFO queue (URL ending ".fifo")
 * gets MessageGroupId = subject (order per subject) and
 * MessageDeduplicationId = event id (a re-send within five minutes is
 * dropped by the queue). sns:TOPIC_ARN -> Publish, the query protocol SNS
 * speaks (form body, XML answer); the message attribute `type` carries the
 * event type for subscription filter policies; FIFO topics get the same two
 * ids. Endpoints: AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL_SNS, else
 * AWS_ENDPOINT_URL, else the regional AWS endpoint. One easy handle, one
 * call at a time (the relay is one loop); answers are capped at MAX_ANSWER. */
#include "sink.h"
#include "kernel/buf.h"
#include "store/sigv4.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ANSWER (64 * 1024)
#define TIMEOUT_MS 5000L

enum kind { SQS, SNS };

struct aws_sink {
    enum kind kind;
    char *target; /* queue URL or topic ARN */
    char *url;    /* endpoint */
    char *host;   /* Host header value */
    char *path;
    bool fifo;
    char region[64];
    char akid[128], secret[256];
    char *token; /* NULL: none */
    CURL *h;
};

struct answer {
    struct px_buf body;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    return px_buf_add(&a->body, p, size * n) == PX_OK ? size * n : 0;
}

static void aws_close(void *impl)
{
    struct aws_sink *s = impl;
    if (!s)
        return;
    if (s->h)
        curl_easy_cleanup(s->h);
    free(s->target);
    free(s->url);
    free(s->host);
    free(s->path);
    free(s->token);
    free(s);
}

/* Host (with a non-default port) and path of s->url. */
static px_rc parse_url(struct aws_sink *s, const char *var, char *err, size_t errlen)
{
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    px_rc rc = PX_ERR_CONFIG;
    CURLU *u = curl_url();
    if (!u)
        return PX_ERR_NOMEM;
    if (curl_url_set(u, CURLUPART_URL, s->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "%s: \"%.200s\" is not an http(s) URL", var, s->url);
        goto out;
    }
    bool https = strcmp(scheme, "https") == 0;
    size_t hn = strlen(host) + 8;
    s->host = malloc(hn);
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port &&
        strcmp(port, https ? "443" : "80") != 0) {
        if (s->host)
            snprintf(s->host, hn, "%s:%s", host, port);
    } else if (s->host) {
        snprintf(s->host, hn, "%s", host);
    }
    s->path = curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && path && path[0] == '/'
                  ? strdup(path)
                  : strdup("/");
    rc = s->host && s->path ? PX_OK : PX_ERR_NOMEM;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

static px_rc aws_open(enum kind kind, const char *target, const struct px_config *cfg, void **impl,
                      char *err, size_t errlen)
{
    *impl = NULL;
    const char *what = kind == SQS ? "sqs" : "sns";
    if (!target[0]) {
        snprintf(err, errlen, "EVENT_SINK: %s: needs a %s", what,
                 kind == SQS ? "queue URL" : "topic ARN");
        return PX_ERR_CONFIG;
    }
    if (kind == SNS && strncmp(target, "arn:", 4) != 0) {
        snprintf(err, errlen, "EVENT_SINK: sns:%.100s is not a topic ARN", target);
        return PX_ERR_CONFIG;
    }
    if (!cfg->aws_region[0] || !cfg->aws_access_key_id[0] || !cfg->aws_secret_access_key[0]) {
        snprintf(err, errlen,
                 "EVENT_SINK: %s needs AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                 what);
        return PX_ERR_CONFIG;
    }
    struct aws_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return PX_ERR_NOMEM;
    s->kind = kind;
    snprintf(s->region, sizeof(s->region), "%s", cfg->aws_region);
    snprintf(s->akid, sizeof(s->akid), "%s", cfg->aws_access_key_id);
    snprintf(s->secret, sizeof(s->secret), "%s", cfg->aws_secret_access_key);
    s->token = cfg->aws_session_token[0] ? strdup(cfg->aws_session_token) : NULL;
    s->target = strdup(target);
    const char *ep = kind == SQS ? cfg->sqs_endpoint : cfg->sns_endpoint;
    char def[128];
    snprintf(def, sizeof(def), "https://%s.%s.amazonaws.com", what, cfg->aws_region);
    s->url = strdup(ep[0] ? ep : def);
    size_t tl = strlen(target);
    s->fifo = tl > 5 && strcmp(target + tl - 5, ".fifo") == 0;
    px_rc rc =
        s->target && s->url && (s->token || !cfg->aws_session_token[0]) ? PX_OK : PX_ERR_NOMEM;
    if (!rc)
        rc = parse_url(s, kind == SQS ? "AWS_ENDPOINT_URL_SQS" : "AWS_ENDPOINT_URL_SNS", err,
                       errlen);
    if (!rc && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        rc = PX_ERR_INTERNAL;
    if (!rc && !(s->h = curl_easy_init()))
        rc = PX_ERR_NOMEM;
    if (rc) {
        aws_close(s);
        return rc;
    }
    *impl = s;
    return PX_OK;
}

static px_rc sqs_open(const char *t, const struct px_config *c, void **i, char *e, size_t el)
{
    return aws_open(SQS, t, c, i, e, el);
}

static px_rc sns_open(const char *t, const struct px_config *c, void **i, char *e, size_t el)
{
    return aws_open(SNS, t, c, i, e, el);
}

/* Appends "&name=" and the form encoding of value. */
static px_rc form(struct px_buf *b, const char *name, const char *value)
{
    px_rc rc = px_buf_printf(b, "%s%s=", b->len ? "&" : "", name);
    for (const unsigned char *p = (const unsigned char *)value; !rc && *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~')
            rc = px_buf_add(b, p, 1);
        else
            rc = px_buf_printf(b, "%%%02X", *p);
    }
    return rc;
}

static px_rc sqs_body(struct aws_sink *s, const struct px_outbox_row *ev, struct px_buf *b)
{
    json_t *o =
        json_pack("{s:s, s:s, s:{s:{s:s, s:s}}}", "QueueUrl", s->target, "MessageBody", ev->event,
                  "MessageAttributes", "type", "DataType", "String", "StringValue", ev->type);
    if (o && s->fifo) {
        json_object_set_new(o, "MessageGroupId", json_string(ev->subject));
        json_object_set_new(o, "MessageDeduplicationId", json_string(ev->id));
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    px_rc rc = text ? px_buf_adds(b, text) : PX_ERR_NOMEM;
    free(text);
    json_decref(o);
    return rc;
}

static px_rc sns_body(struct aws_sink *s, const struct px_outbox_row *ev, struct px_buf *b)
{
    px_rc rc = form(b, "Action", "Publish");
    if (!rc)
        rc = form(b, "Version", "2010-03-31");
    if (!rc)
        rc = form(b, "TopicArn", s->target);
    if (!rc)
        rc = form(b, "Message", ev->event);
    if (!rc)
        rc = form(b, "MessageAttributes.entry.1.Name", "type");
    if (!rc)
        rc = form(b, "MessageAttributes.entry.1.Value.DataType", "String");
    if (!rc)
        rc = form(b, "MessageAttributes.entry.1.Value.StringValue", ev->type);
    if (!rc && s->fifo) {
        rc = form(b, "MessageGroupId", ev->subject);
        if (!rc)
            rc = form(b, "MessageDeduplicationId", ev->id);
    }
    return rc;
}

/* One signed POST of body; *status gets the HTTP status (0: none). */
static px_rc post(struct aws_sink *s, const char *ctype, const char *amz_target,
                  const struct px_buf *body, struct answer *a, long *status, char *err,
                  size_t errlen)
{
    struct px_sigv4_output *sig = malloc(sizeof(*sig));
    struct curl_slist *hl = NULL;
    char line[4352];
    px_rc rc = sig ? PX_OK : PX_ERR_NOMEM;
    *status = 0;
    const struct px_sigv4_header sh[] = {
        {"Content-Type", ctype},
        {"Host", s->host},
        {"X-Amz-Target", amz_target},
    };
    const struct px_sigv4_input in = {
        .method = "POST",
        .path = s->path,
        .query = "",
        .headers = sh,
        .nheaders = amz_target ? 3 : 2,
        .payload = body->data,
        .payload_len = body->len,
        .region = s->region,
        .service = s->kind == SQS ? "sqs" : "sns",
        .access_key_id = s->akid,
        .secret_access_key = s->secret,
        .session_token = s->token,
        .now = time(NULL),
    };
    if (!rc)
        rc = px_sigv4_sign(&in, sig);
    const char *fmt[][2] = {
        {"Content-Type: %s", ctype},
        {"Host: %s", s->host},
        {"X-Amz-Target: %s", amz_target},
        {"X-Amz-Date: %s", sig ? sig->amz_date : NULL},
        {"Authorization: %s", sig ? sig->authorization : NULL},
        {"X-Amz-Security-Token: %s", s->token},
        {"Expect:%s", ""},
    };
    for (size_t i = 0; !rc && i < PX_COUNTOF(fmt); i++) {
        if (!fmt[i][1])
            continue;
        snprintf(line, sizeof(line), fmt[i][0], fmt[i][1]);
        struct curl_slist *t = curl_slist_append(hl, line);
        if (!t)
            rc = PX_ERR_NOMEM;
        else
            hl = t;
    }
    if (!rc) {
        CURL *h = s->h;
        curl_easy_reset(h);
        CURLcode cc = CURLE_OK;
        if (curl_easy_setopt(h, CURLOPT_URL, s->url) ||
            curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") ||
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data) ||
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len) ||
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl) ||
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TIMEOUT_MS) ||
            curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L) ||
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) ||
            curl_easy_setopt(h, CURLOPT_WRITEDATA, a)) {
            rc = PX_ERR_INTERNAL;
        } else if ((cc = curl_easy_perform(h)) != CURLE_OK) {
            snprintf(err, errlen, "%s endpoint %.200s: %s", s->kind == SQS ? "SQS" : "SNS", s->url,
                     curl_easy_strerror(cc));
            rc = cc == CURLE_OPERATION_TIMEDOUT ? PX_ERR_TIMEOUT : PX_ERR_UNAVAILABLE;
        } else {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    }
    curl_slist_free_all(hl);
    free(sig);
    return rc;
}

/* Maps a refused call: 4xx other than throttling will not get better. */
static px_rc refused(const struct aws_sink *s, long status, const struct answer *a, char *err,
                     size_t errlen)
{
    snprintf(err, errlen, "%s answered %ld: %.300s", s->kind == SQS ? "SQS" : "SNS", status,
             a->body.data ? a->body.data : "");
    if (status >= 500 || status == 429 || (a->body.data && strstr(a->body.data, "Throttl") != NULL))
        return PX_ERR_UNAVAILABLE;
    if (status == 403 || (a->body.data && strstr(a->body.data, "AccessDenied") != NULL))
        return PX_ERR_DENIED;
    return PX_ERR_INVALID;
}

static px_rc aws_publish(void *impl, const struct px_outbox_row *ev, char *err, size_t errlen)
{
    struct aws_sink *s = impl;
    struct px_buf body;
    struct answer a;
    long status = 0;
    px_buf_init(&body, PX_EVENT_MAX_JSON * 4);
    px_buf_init(&a.body, MAX_ANSWER);
    px_rc rc = s->kind == SQS ? sqs_body(s, ev, &body) : sns_body(s, ev, &body);
    if (!rc)
        rc = s->kind == SQS ? post(s, "application/x-amz-json-1.0", "AmazonSQS.SendMessage", &body,
                                   &a, &status, err, errlen)
                            : post(s, "application/x-www-form-urlencoded; charset=utf-8", NULL,
                                   &body, &a, &status, err, errlen);
    if (!rc && status != 200)
        rc = refused(s, status, &a, err, errlen);
    px_buf_free(&body);
    px_buf_free(&a.body);
    return rc;
}

/* Readiness: a signed call that reads only (GetQueueAttributes /
 * GetTopicAttributes); any HTTP answer but 5xx means the service is there. */
static px_rc aws_ping(void *impl, char *err, size_t errlen)
{
    struct aws_sink *s = impl;
    struct px_buf body;
    struct answer a;
    long status = 0;
    px_rc rc;
    px_buf_init(&body, 4096);
    px_buf_init(&a.body, MAX_ANSWER);
    if (s->kind == SQS) {
        json_t *o = json_pack("{s:s, s:[s]}", "QueueUrl", s->target, "AttributeNames", "QueueArn");
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        rc = t ? px_buf_adds(&body, t) : PX_ERR_NOMEM;
        free(t);
        json_decref(o);
        if (!rc)
            rc = post(s, "application/x-amz-json-1.0", "AmazonSQS.GetQueueAttributes", &body, &a,
                      &status, err, errlen);
    } else {
        rc = form(&body, "Action", "GetTopicAttributes");
        if (!rc)
            rc = form(&body, "Version", "2010-03-31");
        if (!rc)
            rc = form(&body, "TopicArn", s->target);
        if (!rc)
            rc = post(s, "application/x-www-form-urlencoded; charset=utf-8", NULL, &body, &a,
                      &status, err, errlen);
    }
    if (!rc && status != 200)
        rc = refused(s, status, &a, err, errlen);
    px_buf_free(&body);
    px_buf_free(&a.body);
    return rc;
}

const struct px_sink_ops px_sink_sqs_ops = {
    .kind = "sqs",
    .open = sqs_open,
    .close = aws_close,
    .publish = aws_publish,
    .ping = aws_ping,
};

const struct px_sink_ops px_sink_sns_ops = {
    .kind = "sns",
    .open = sns_open,
    .close = aws_close,
    .publish = aws_publish,
    .ping = aws_ping,
};
