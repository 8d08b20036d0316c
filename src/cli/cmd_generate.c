/* cmd_generate.c: `pricing generate-event apigateway aws-proxy|http-api`. */
#include "cli.h"
#include "kernel/apigw.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* A header value the event may carry: 1-256 printable ASCII characters. */
static bool header_value_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
            return false;
    return true;
}

/* Adds name: value to the event's headers (and multiValueHeaders of 1.0),
 * rewriting the event in out. Product-service writes need If-Match and may
 * carry Idempotency-Key. */
static px_rc add_header(struct px_buf *out, bool v1, const char *name, const char *value)
{
    json_t *ev = json_loadb(out->data, out->len, 0, NULL);
    json_t *h = ev ? json_object_get(ev, "headers") : NULL;
    json_t *mh = ev && v1 ? json_object_get(ev, "multiValueHeaders") : NULL;
    px_rc rc = PX_ERR_INTERNAL;
    if (json_is_object(h) && (!v1 || json_is_object(mh)) &&
        json_object_set_new(h, name, json_string(value)) == 0 &&
        (!v1 || json_object_set_new(mh, name, json_pack("[s]", value)) == 0)) {
        char *text = json_dumps(ev, JSON_COMPACT);
        if (text) {
            px_buf_clear(out);
            rc = px_buf_adds(out, text);
            free(text);
        }
    }
    json_decref(ev);
    return rc;
}

int px_cmd_generate_event(int argc, char **argv)
{
    const char *path = "/price", *query = "", *method = "GET", *body = NULL;
    const char *if_match = NULL, *idem_key = NULL, *if_none_match = NULL;
    const struct px_cli_flag flags[] = {
        {"--path", true, &path, NULL, "request path (default /price)"},
        {"--query", true, &query, NULL, "raw query string, e.g. 'id=PROD-101&userId=...'"},
        {"--method", true, &method, NULL, "HTTP method (default GET)"},
        {"--body", true, &body, NULL, "request body (sent as application/json)"},
        {"--if-match", true, &if_match, NULL, "If-Match header, e.g. '\"1\"' (product writes)"},
        {"--idempotency-key", true, &idem_key, NULL, "Idempotency-Key header"},
        {"--if-none-match", true, &if_none_match, NULL,
         "If-None-Match header: '*' creates a config key"},
    };
    const struct px_cli_cmd cmd = {
        .name = "generate-event",
        .synopsis = "generate-event apigateway aws-proxy|http-api [--path P] [--query Q] "
                    "[--method M] [--body B] [--if-match V] [--idempotency-key K] "
                    "[--if-none-match V]",
        .summary = "print an API Gateway proxy event (REST 1.0 or HTTP API 2.0) for invoke",
        .flags = flags,
        .nflags = PX_COUNTOF(flags),
        .min_args = 2,
        .max_args = 2,
    };
    const char *args[2];
    size_t nargs;
    int st = px_cli_parse(&cmd, argc, argv, NULL, args, &nargs);
    if (st >= 0)
        return st;
    enum px_apigw_format fmt;
    if (strcmp(args[0], "apigateway") != 0) {
        fprintf(stderr, "pricing generate-event: unknown service \"%.64s\" (apigateway)\n",
                args[0]);
        return PX_EXIT_USAGE;
    }
    if (strcmp(args[1], "aws-proxy") == 0)
        fmt = PX_APIGW_V1;
    else if (strcmp(args[1], "http-api") == 0)
        fmt = PX_APIGW_V2;
    else {
        fprintf(stderr, "pricing generate-event: unknown event \"%.64s\" (aws-proxy, http-api)\n",
                args[1]);
        return PX_EXIT_USAGE;
    }
    if (path[0] != '/') {
        fprintf(stderr, "pricing generate-event: --path must start with /\n");
        return PX_EXIT_USAGE;
    }
    if ((if_match && !header_value_ok(if_match)) || (idem_key && !header_value_ok(idem_key)) ||
        (if_none_match && !header_value_ok(if_none_match))) {
        fprintf(stderr, "pricing generate-event: header values are 1-256 printable ASCII\n");
        return PX_EXIT_USAGE;
    }
    struct px_buf out;
    px_buf_init(&out, PX_MAX_EVENT);
    px_rc rc = px_apigw_generate(fmt, method, path, query, body, &out);
    bool v1 = fmt == PX_APIGW_V1;
    if (!rc && if_match)
        rc = add_header(&out, v1, v1 ? "If-Match" : "if-match", if_match);
    if (!rc && idem_key)
        rc = add_header(&out, v1, v1 ? "Idempotency-Key" : "idempotency-key", idem_key);
    if (!rc && if_none_match)
        rc = add_header(&out, v1, v1 ? "If-None-Match" : "if-none-match", if_none_match);
    if (rc) {
        fprintf(stderr, "pricing generate-event: %s (check --query encoding)\n", px_strerror(rc));
        px_buf_free(&out);
        return PX_EXIT_USAGE;
    }
    fwrite(out.data, 1, out.len, stdout);
    fputc('\n', stdout);
    px_buf_free(&out);
    return PX_EXIT_OK;
}
