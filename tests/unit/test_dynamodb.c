/* test_dynamodb.c: the DynamoDB client and audit item/cursor encoding.
 *
 * Table-driven against $PX_TESTDATA/dynamodb (error bodies, protocol tests,
 * request/response vectors), then the client over HTTP against a scripted
 * libmicrohttpd server on a free loopback port: signing as received, retries
 * with backoff inside the deadline, no retry of client errors, the response
 * cap, CRC32 checks, keep-alive reuse, time-outs and refused connections. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kernel/arena.h"
#include "kernel/buf.h"
#include "store/audit_dynamodb.h"
#include "store/dynamodb.h"
#include "store/sigv4.h"
#include "px_test.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *testdata(void)
{
    return px_test_data();
}

static json_t *load_json(const char *rel)
{
    char path[1024];
    json_error_t e;
    snprintf(path, sizeof(path), "%s/%s", testdata(), rel);
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("cannot load %s: %s", path, e.text);
    return j;
}

static void sample_record(struct px_audit_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->user_id, sizeof(r->user_id), "3fa85f64-5717-4562-b3fc-2c963f66afa6");
    snprintf(r->product_id, sizeof(r->product_id), "PROD-101");
    snprintf(r->request_id, sizeof(r->request_id), "req-0001");
    snprintf(r->correlation_id, sizeof(r->correlation_id), "corr-\"x\"");
    snprintf(r->ts, sizeof(r->ts), "2026-01-23T12:00:00.123Z");
    r->expires_at = 1776945600;
    snprintf(r->action, sizeof(r->action), "PRICE_FETCH");
    snprintf(r->status, sizeof(r->status), "SUCCESS");
}

/* ----------------------------------------------------------- item encoding */

static void test_item_json(void **state)
{
    (void)state;
    struct px_audit_record r, back;
    struct px_buf b;
    json_error_t e;
    sample_record(&r);
    px_buf_init(&b, 4096);
    assert_int_equal(px_ddb_audit_item_json(&r, &b), PX_OK);
    json_t *got = json_loads(b.data, 0, &e);
    assert_non_null(got);
    json_t *want = json_pack(
        "{s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},"
        "s:{s:s},s:{s:s}}",
        "pk", "S", "USER#3fa85f64-5717-4562-b3fc-2c963f66afa6", "sk", "S",
        "AUDIT#2026-01-23T12:00:00.123Z#req-0001", "gsi1pk", "S", "PRODUCT#PROD-101", "gsi1sk", "S",
        "AUDIT#2026-01-23T12:00:00.123Z#req-0001", "action", "S", "PRICE_FETCH", "status", "S",
        "SUCCESS", "userId", "S", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "productId", "S",
        "PROD-101", "requestId", "S", "req-0001", "correlationId", "S", "corr-\"x\"", "ts", "S",
        "2026-01-23T12:00:00.123Z", "expiresAt", "N", "1776945600");
    assert_non_null(want);
    if (!json_equal(got, want))
        fail_msg("item differs: %s", b.data);
    /* principal and apiRequestId only when there is one */
    assert_null(json_object_get(got, "principal"));
    assert_null(json_object_get(got, "apiRequestId"));
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_OK);
    assert_memory_equal(&back, &r, sizeof(r));
    json_decref(got);

    snprintf(r.principal, sizeof(r.principal), "alice@example.com");
    snprintf(r.api_request_id, sizeof(r.api_request_id), "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    px_buf_clear(&b);
    assert_int_equal(px_ddb_audit_item_json(&r, &b), PX_OK);
    got = json_loads(b.data, 0, &e);
    assert_string_equal(json_string_value(json_object_get(json_object_get(got, "principal"), "S")),
                        "alice@example.com");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(got, "apiRequestId"), "S")),
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    assert_int_equal(json_object_size(got), 14);
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_OK);
    assert_memory_equal(&back, &r, sizeof(r));
    assert_string_equal(back.api_request_id, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");

    /* wrong types and over-long fields are protocol errors, never truncations */
    json_object_set_new(got, "expiresAt", json_pack("{s:s}", "S", "1776945600"));
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_ERR_PROTOCOL);
    json_object_set_new(got, "expiresAt", json_pack("{s:s}", "N", "12x"));
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_ERR_PROTOCOL);
    json_object_set_new(got, "expiresAt", json_pack("{s:s}", "N", "5"));
    json_object_set_new(got, "principal", json_pack("{s:i}", "N", 1));
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_ERR_PROTOCOL);
    json_object_del(got, "principal");
    json_object_set_new(got, "apiRequestId", json_pack("{s:i}", "N", 1));
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_ERR_PROTOCOL);
    char longid[200];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    json_object_set_new(got, "apiRequestId", json_pack("{s:s}", "S", longid));
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_ERR_PROTOCOL);
    json_object_del(got, "apiRequestId");
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_OK);
    assert_string_equal(back.api_request_id, "");
    json_object_set_new(got, "productId", json_pack("{s:s}", "S", longid));
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_ERR_PROTOCOL);
    json_object_del(got, "productId");
    assert_int_equal(px_ddb_audit_item_parse(got, &back), PX_ERR_PROTOCOL);
    json_decref(got);
    json_decref(want);

    /* an unterminated field or an empty key field is refused */
    sample_record(&r);
    r.request_id[0] = '\0';
    px_buf_clear(&b);
    assert_int_equal(px_ddb_audit_item_json(&r, &b), PX_ERR_INVALID);
    sample_record(&r);
    memset(r.status, 'X', sizeof(r.status));
    assert_int_equal(px_ddb_audit_item_json(&r, &b), PX_ERR_INVALID);
    sample_record(&r);
    memset(r.api_request_id, 'a', sizeof(r.api_request_id));
    assert_int_equal(px_ddb_audit_item_json(&r, &b), PX_ERR_INVALID);
    assert_int_equal(b.len, 0);
    px_buf_free(&b);
}

/* ------------------------------------------------------------ error bodies */

struct expect_err {
    const char *type;
    px_rc rc;
    bool retry;
};

static const struct expect_err expected[] = {
    {"ConditionalCheckFailedException", PX_ERR_CONFLICT, false},
    {"ValidationException", PX_ERR_INVALID, false},
    {"ThrottlingException", PX_ERR_UNAVAILABLE, true},
    {"ProvisionedThroughputExceededException", PX_ERR_UNAVAILABLE, true},
    {"ResourceNotFoundException", PX_ERR_NOT_FOUND, false},
    {"LimitExceededException", PX_ERR_UNAVAILABLE, false},
    {"SerializationException", PX_ERR_INVALID, false},
    {"UnknownOperationException", PX_ERR_PROTOCOL, false},
    {"MissingAuthenticationTokenException", PX_ERR_DENIED, false},
    {"InvalidSignatureException", PX_ERR_DENIED, false},
    {"IncompleteSignatureException", PX_ERR_DENIED, false},
};

static void test_error_bodies(void **state)
{
    (void)state;
    json_t *doc = load_json("dynamodb/error-bodies.json");
    json_t *errors = json_object_get(doc, "errors");
    size_t i, seen = 0;
    json_t *e;
    assert_true(json_array_size(errors) >= PX_COUNTOF(expected));
    json_array_foreach(errors, i, e)
    {
        const char *exc = json_string_value(json_object_get(e, "exception"));
        long status = (long)json_integer_value(json_object_get(e, "http_status"));
        json_t *body = json_object_get(e, "body");
        char *raw = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        const struct expect_err *x = NULL;
        for (size_t k = 0; k < PX_COUNTOF(expected); k++)
            if (strcmp(expected[k].type, exc) == 0)
                x = &expected[k];
        if (!x)
            fail_msg("no expectation for %s", exc);
        json_t *resp = NULL;
        struct px_ddb_error err;
        px_rc rc = px_ddb_parse_response(status, raw, strlen(raw), NULL, &resp, &err);
        assert_null(resp);
        assert_string_equal(err.type, exc);
        if (rc != x->rc || err.retryable != x->retry)
            fail_msg("%s: rc %d retry %d", exc, rc, err.retryable);
        const char *msg = json_string_value(json_object_get(body, "message"));
        if (!msg)
            msg = json_string_value(json_object_get(body, "Message"));
        assert_string_equal(err.message, msg ? msg : exc);
        /* the same through the header alone, namespace and URI included */
        char hdr[256];
        snprintf(hdr, sizeof(hdr), "%s:http://internal.amazon.com/coral/",
                 json_string_value(json_object_get(body, "__type")));
        assert_int_equal(px_ddb_parse_response(status, "", 0, hdr, &resp, &err), x->rc);
        assert_string_equal(err.type, exc);
        /* x-amz-crc32 of the compact body, as the source asserts */
        json_t *crc = json_object_get(e, "x_amz_crc32");
        if (crc) {
            char mine[16];
            snprintf(mine, sizeof(mine), "%u", px_ddb_crc32(raw, strlen(raw)));
            assert_string_equal(mine, json_string_value(crc));
        }
        free(raw);
        seen++;
    }
    assert_int_equal(seen, PX_COUNTOF(expected));
    json_decref(doc);
}

static void test_error_mapping_extra(void **state)
{
    (void)state;
    static const struct {
        const char *type;
        long status;
        px_rc rc;
        bool retry;
    } t[] = {
        {"AccessDeniedException", 400, PX_ERR_DENIED, false},
        {"UnrecognizedClientException", 400, PX_ERR_DENIED, false},
        {"ExpiredTokenException", 400, PX_ERR_DENIED, false},
        {"RequestLimitExceeded", 400, PX_ERR_UNAVAILABLE, true},
        {"InternalServerError", 500, PX_ERR_UNAVAILABLE, true},
        {"ServiceUnavailable", 503, PX_ERR_UNAVAILABLE, true},
        {"SomethingNew", 400, PX_ERR_PROTOCOL, false},
        {"SomethingNew", 502, PX_ERR_UNAVAILABLE, true},
        {"", 504, PX_ERR_UNAVAILABLE, true},
        {"", 429, PX_ERR_UNAVAILABLE, true},
        {"", 403, PX_ERR_DENIED, false},
        {"ValidationException", 500, PX_ERR_INVALID, true},
    };
    for (size_t i = 0; i < PX_COUNTOF(t); i++) {
        bool retry = !t[i].retry;
        assert_int_equal(px_ddb_error_rc(t[i].type, t[i].status, &retry), t[i].rc);
        assert_int_equal(retry, t[i].retry);
    }
    json_t *resp = NULL;
    struct px_ddb_error err;
    /* a proxy's HTML 502 */
    const char *html = "<html>Bad Gateway</html>";
    assert_int_equal(px_ddb_parse_response(502, html, strlen(html), NULL, &resp, &err),
                     PX_ERR_UNAVAILABLE);
    assert_true(err.retryable);
    assert_string_equal(err.message, "DynamoDB answered HTTP 502");
    /* success bodies must be JSON objects */
    assert_int_equal(px_ddb_parse_response(200, "[1]", 3, NULL, &resp, &err), PX_ERR_PROTOCOL);
    assert_int_equal(px_ddb_parse_response(200, "{\"a\":1", 6, NULL, &resp, &err), PX_ERR_PROTOCOL);
    assert_int_equal(px_ddb_parse_response(200, "{}", 2, NULL, &resp, &err), PX_OK);
    assert_non_null(resp);
    json_decref(resp);
    /* the header wins over the body */
    const char *b = "{\"__type\":\"x#ValidationException\",\"message\":\"m\"}";
    assert_int_equal(px_ddb_parse_response(400, b, strlen(b), "ThrottlingException", &resp, &err),
                     PX_ERR_UNAVAILABLE);
    assert_string_equal(err.type, "ThrottlingException");
    assert_string_equal(err.message, "m");
    char name[8];
    px_ddb_error_name("a#b#LongName:uri#x", name, sizeof(name));
    assert_string_equal(name, "LongNam");
    px_ddb_error_name(NULL, name, sizeof(name));
    assert_string_equal(name, "");
}

/* awsJson1_0 output protocol tests: every error case's code is recovered. */
static void test_protocol_error_cases(void **state)
{
    (void)state;
    json_t *doc = load_json("dynamodb/awsjson1_0-protocol-tests/output-json_1_0.json");
    size_t i, k, n = 0;
    json_t *suite, *c;
    json_array_foreach(doc, i, suite)
    {
        json_array_foreach(json_object_get(suite, "cases"), k, c)
        {
            const char *code = json_string_value(json_object_get(c, "errorCode"));
            if (!code)
                continue;
            json_t *r = json_object_get(c, "response");
            json_t *h = json_object_get(r, "headers");
            const char *hdr = json_string_value(json_object_get(h, "X-Amzn-Errortype"));
            const char *body = json_string_value(json_object_get(r, "body"));
            long status = (long)json_integer_value(json_object_get(r, "status_code"));
            json_t *resp = NULL;
            struct px_ddb_error err;
            px_rc rc = px_ddb_parse_response(status ? status : 400, body ? body : "",
                                             body ? strlen(body) : 0, hdr, &resp, &err);
            assert_int_not_equal(rc, PX_OK);
            assert_string_equal(err.type, code);
            const char *msg = json_string_value(json_object_get(c, "errorMessage"));
            if (msg)
                assert_string_equal(err.message, msg);
            n++;
        }
    }
    assert_true(n >= 10);
    json_decref(doc);
}

/* ----------------------------------------------------------------- vectors */

static void test_vectors(void **state)
{
    (void)state;
    static const char *const files[] = {
        "putitem-botocore-doc-example.json",
        "putitem-condition-attribute_not_exists-failed.json",
        "putitem-condition-attribute_not_exists-ok.json",
        "putitem-condition-equals-value-failed.json",
        "putitem-resource-not-found.json",
        "putitem-returnvalues-all_old.json",
        "putitem-validation-empty-condition-expression.json",
        "putitem-validation-missing-key.json",
        "query-botocore-doc-example.json",
        "query-keycondition-hash-and-range-eq.json",
        "query-keycondition-hash-empty.json",
        "query-keycondition-hash-only-on-range-table.json",
        "query-keycondition-hash.json",
        "query-validation-between-types.json",
    };
    for (size_t i = 0; i < PX_COUNTOF(files); i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "dynamodb/vectors/%s", files[i]);
        json_t *v = load_json(rel);
        json_t *r = json_object_get(v, "response");
        long status = (long)json_integer_value(json_object_get(r, "status"));
        json_t *body = json_object_get(r, "body");
        char *raw = json_dumps(body, JSON_COMPACT);
        json_t *resp = NULL;
        struct px_ddb_error err;
        px_rc rc = px_ddb_parse_response(status, raw, strlen(raw), NULL, &resp, &err);
        if (status == 200) {
            assert_int_equal(rc, PX_OK);
            assert_true(json_equal(resp, body));
            json_t *items = json_object_get(resp, "Items");
            /* the documentation examples are abbreviated: their counts do not add up */
            if (items && !strstr(files[i], "botocore"))
                assert_int_equal(json_array_size(items),
                                 json_integer_value(json_object_get(resp, "Count")));
            json_decref(resp);
        } else {
            const char *type = json_string_value(json_object_get(body, "__type"));
            px_rc want = strstr(type, "ConditionalCheckFailed") ? PX_ERR_CONFLICT
                         : strstr(type, "ResourceNotFound")     ? PX_ERR_NOT_FOUND
                                                                : PX_ERR_INVALID;
            if (rc != want)
                fail_msg("%s: rc %d", files[i], rc);
            assert_false(err.retryable);
            assert_string_equal(err.message, json_string_value(json_object_get(body, "message")));
        }
        free(raw);
        json_decref(v);
    }
}

/* ----------------------------------------------------------------- cursors */

/* base64url of raw text, as a cursor would be: lets a test forge any cursor. */
static const char *encode(struct px_arena *a, const char *json)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(json), j = 0;
    char *o = px_arena_alloc(a, n / 3 * 4 + 5);
    assert_non_null(o);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)json[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)json[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)json[i + 2];
        o[j++] = tbl[(v >> 18) & 63];
        o[j++] = tbl[(v >> 12) & 63];
        if (i + 1 < n)
            o[j++] = tbl[(v >> 6) & 63];
        if (i + 2 < n)
            o[j++] = tbl[v & 63];
    }
    o[j] = '\0';
    return o;
}

static void test_cursor(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_query qu = {.user_id = "3FA85F64-5717-4562-B3FC-2C963F66AFA6", .limit = 10};
    struct px_audit_query qp = {.product_id = "PROD-101", .limit = 10};
    json_t *k = NULL;
    const char *uk = "{\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},"
                     "\"sk\":{\"S\":\"AUDIT#2026-01-23T12:00:00.123Z#r1\"}}";
    json_error_t e;
    json_t *uj = json_loads(uk, 0, &e);
    const char *c = NULL;
    assert_int_equal(px_ddb_cursor_encode(uj, a, &c), PX_OK);
    json_decref(uj);
    /* base64url, no padding */
    assert_null(strpbrk(c, "+/="));
    assert_int_equal(px_ddb_cursor_decode(c, &qu, &k), PX_OK);
    json_t *want = json_loads(uk, 0, &e);
    assert_true(json_equal(k, want));
    json_decref(want);
    json_decref(k);
    /* a user cursor is not a product cursor, nor another user's */
    assert_int_equal(px_ddb_cursor_decode(c, &qp, &k), PX_ERR_INVALID);
    assert_null(k);
    struct px_audit_query other = {.user_id = "00000000-0000-4000-8000-000000000000", .limit = 1};
    assert_int_equal(px_ddb_cursor_decode(c, &other, &k), PX_ERR_INVALID);

    const char *pk = "{\"gsi1pk\":{\"S\":\"PRODUCT#PROD-101\"},"
                     "\"gsi1sk\":{\"S\":\"AUDIT#2026-01-23T12:00:00.123Z#r1\"},"
                     "\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},"
                     "\"sk\":{\"S\":\"AUDIT#2026-01-23T12:00:00.123Z#r1\"}}";
    c = encode(a, pk);
    assert_int_equal(px_ddb_cursor_decode(c, &qp, &k), PX_OK);
    json_decref(k);
    struct px_audit_query qp2 = {.product_id = "PROD-102", .limit = 10};
    assert_int_equal(px_ddb_cursor_decode(c, &qp2, &k), PX_ERR_INVALID);
    assert_int_equal(px_ddb_cursor_decode(c, &qu, &k), PX_ERR_INVALID);

    static const char *const bad_json[] = {
        "[1]",
        "{}",
        "\"x\"",
        /* extra attribute */
        "{\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},\"sk\":{\"S\":"
        "\"AUDIT#x\"},\"zz\":{\"S\":\"a\"}}",
        /* number attribute */
        "{\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},\"sk\":{\"N\":\"1\"}}",
        /* two type keys */
        "{\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\",\"N\":\"1\"},\"sk\":{\"S\":"
        "\"AUDIT#x\"}}",
        /* not an audit sort key */
        "{\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},\"sk\":{\"S\":\"X\"}}",
        /* string not an object */
        "{\"pk\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\",\"sk\":{\"S\":\"AUDIT#x\"}}",
    };
    for (size_t i = 0; i < PX_COUNTOF(bad_json); i++) {
        c = encode(a, bad_json[i]);
        if (px_ddb_cursor_decode(c, &qu, &k) != PX_ERR_INVALID)
            fail_msg("accepted %s", bad_json[i]);
        assert_null(k);
    }
    /* GSI cursor whose gsi1sk and sk disagree */
    c = encode(a, "{\"gsi1pk\":{\"S\":\"PRODUCT#PROD-101\"},\"gsi1sk\":{\"S\":\"AUDIT#a\"},"
                  "\"pk\":{\"S\":\"USER#x\"},\"sk\":{\"S\":\"AUDIT#b\"}}");
    assert_int_equal(px_ddb_cursor_decode(c, &qp, &k), PX_ERR_INVALID);
    /* not base64url, bad length, duplicate keys, too long, empty */
    static const char *const bad_text[] = {"abc$", "a", "eyJwayI6e30=", "", "e30+"};
    for (size_t i = 0; i < PX_COUNTOF(bad_text); i++)
        assert_int_equal(px_ddb_cursor_decode(bad_text[i], &qu, &k), PX_ERR_INVALID);
    c = encode(a, "{\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},"
                  "\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},"
                  "\"sk\":{\"S\":\"AUDIT#x\"}}");
    assert_int_equal(px_ddb_cursor_decode(c, &qu, &k), PX_ERR_INVALID);
    /* the forged form of a good key is accepted: the encoder adds nothing hidden */
    c = encode(a, uk);
    assert_int_equal(px_ddb_cursor_decode(c, &qu, &k), PX_OK);
    json_decref(k);
    char *huge = malloc(PX_DDB_MAX_CURSOR + 8);
    memset(huge, 'A', PX_DDB_MAX_CURSOR + 4);
    huge[PX_DDB_MAX_CURSOR + 4] = '\0';
    assert_int_equal(px_ddb_cursor_decode(huge, &qu, &k), PX_ERR_INVALID);
    free(huge);
    assert_int_equal(px_ddb_cursor_decode(NULL, &qu, &k), PX_ERR_INVALID);
    px_arena_free(a);
}

/* --------------------------------------------------- scripted HTTP server */

struct step {
    int status;
    const char *body; /* NULL = a body of `big` bytes */
    size_t big;
    const char *errtype;
    bool bad_crc;
};

/* A step body that answers a GetItem with the Item of the first request
 * (a PutItem), exactly as the client sent it: chain attributes included. */
static const char ECHO_FIRST_ITEM[] = "(echo)";

struct server {
    struct MHD_Daemon *d;
    unsigned port;
    pthread_mutex_t mu;
    const struct step *steps;
    size_t nsteps, next;
    unsigned requests, connections;
    char target[128], authz[1024], date[32], host[128], token[256], ctype[128];
    char body[8192];
    size_t body_len;
    bool sig_ok;
    char *seen[16]; /* every request: "<target> <body>", heap */
    size_t nseen;
    /* When set, the answer follows the body (requests in flight together
     * arrive in any order): pick gets it and how often it came before. */
    const struct step *(*pick)(const char *body, size_t len, unsigned before);
    unsigned times[128]; /* requests seen per first byte of the body */
    unsigned sig_bad;    /* requests whose signature did not verify */
    /* hold: no answer goes before this many requests are in the handler at
     * once (or 5 s passed): proves they were all in flight together. */
    unsigned hold, inside, max_inside;
    bool released;
    pthread_cond_t cv;
};

struct upload {
    char buf[8192];
    size_t len;
};

static void on_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode code)
{
    (void)c;
    (void)socket_context;
    struct server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&s->mu);
        s->connections++;
        pthread_mutex_unlock(&s->mu);
    }
}

static void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, cap, "%s", v ? v : "");
}

/* Recomputes the signature from what arrived: proves Host, date and body as
 * sent are the ones that were signed. */
static bool verify_signature(struct server *s)
{
    const struct px_sigv4_header h[] = {
        {"Content-Type", s->ctype},         {"Host", s->host},
        {"X-Amz-Target", s->target},        {"X-Amz-Date", s->date},
        {"X-Amz-Security-Token", s->token},
    };
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!strptime(s->date, "%Y%m%dT%H%M%SZ", &tm))
        return false;
    struct px_sigv4_input in = {
        .method = "POST",
        .path = "/",
        .headers = h,
        .nheaders = s->token[0] ? 5 : 4,
        .payload = s->body,
        .payload_len = s->body_len,
        .region = "us-east-1",
        .service = "dynamodb",
        .access_key_id = "AKIDTEST",
        .secret_access_key = "secret/key",
        .now = timegm(&tm),
    };
    struct px_sigv4_output *out = malloc(sizeof(*out));
    bool ok = out && px_sigv4_sign(&in, out) == PX_OK && strcmp(out->authorization, s->authz) == 0;
    free(out);
    return ok;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls)
{
    (void)url;
    (void)version;
    struct server *s = cls;
    struct upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof(*u));
        *con_cls = u;
        return u ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        if (n > sizeof(u->buf) - u->len)
            n = sizeof(u->buf) - u->len;
        memcpy(u->buf + u->len, upload_data, n);
        u->len += n;
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&s->mu);
    struct step st = {500, "{\"__type\":\"InternalServerError\"}", 0, NULL, false};
    if (s->pick) {
        unsigned char k = u->len ? (unsigned char)u->buf[0] & 127 : 0;
        st = *s->pick(u->buf, u->len, s->times[k]++);
    } else if (s->next < s->nsteps)
        st = s->steps[s->next++];
    else if (s->nsteps)
        st = s->steps[s->nsteps - 1];
    s->requests++;
    copy_hdr(c, "X-Amz-Target", s->target, sizeof(s->target));
    copy_hdr(c, "Authorization", s->authz, sizeof(s->authz));
    copy_hdr(c, "X-Amz-Date", s->date, sizeof(s->date));
    copy_hdr(c, "Host", s->host, sizeof(s->host));
    copy_hdr(c, "X-Amz-Security-Token", s->token, sizeof(s->token));
    copy_hdr(c, "Content-Type", s->ctype, sizeof(s->ctype));
    memcpy(s->body, u->buf, u->len);
    s->body_len = u->len;
    if (s->nseen < PX_COUNTOF(s->seen)) {
        size_t tl = strlen(s->target);
        char *rec = malloc(tl + u->len + 2);
        if (rec) {
            memcpy(rec, s->target, tl);
            rec[tl] = ' ';
            memcpy(rec + tl + 1, u->buf, u->len);
            rec[tl + 1 + u->len] = '\0';
            s->seen[s->nseen++] = rec;
        }
    }
    s->sig_ok = strcmp(method, "POST") == 0 && verify_signature(s);
    s->sig_bad += !s->sig_ok;
    if (s->hold && !s->released) {
        s->inside++;
        if (s->inside > s->max_inside)
            s->max_inside = s->inside;
        pthread_cond_broadcast(&s->cv);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        while (s->inside < s->hold && !s->released &&
               pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0)
            ;
        s->released = true;
        pthread_cond_broadcast(&s->cv);
    }
    char *echo = NULL;
    if (st.body == ECHO_FIRST_ITEM && s->nseen) {
        const char *b = strchr(s->seen[0], ' ');
        json_t *req = b ? json_loads(b + 1, 0, NULL) : NULL;
        json_t *resp = req ? json_pack("{s:O}", "Item", json_object_get(req, "Item")) : NULL;
        echo = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
        json_decref(resp);
        json_decref(req);
    }
    pthread_mutex_unlock(&s->mu);

    char *payload;
    size_t plen;
    if (echo) {
        plen = strlen(echo);
        payload = echo;
    } else if (st.body) {
        plen = strlen(st.body);
        payload = strdup(st.body);
    } else {
        plen = st.big;
        payload = malloc(plen);
        if (payload)
            memset(payload, ' ', plen);
    }
    if (!payload)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(plen, payload, MHD_RESPMEM_MUST_FREE);
    char crc[16];
    snprintf(crc, sizeof(crc), "%u", px_ddb_crc32(payload, plen) ^ (st.bad_crc ? 1u : 0u));
    MHD_add_response_header(r, "Content-Type", "application/x-amz-json-1.0");
    MHD_add_response_header(r, "x-amz-crc32", crc);
    if (st.errtype)
        MHD_add_response_header(r, "X-Amzn-Errortype", st.errtype);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)st.status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static void server_start(struct server *s, const struct step *steps, size_t n)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->steps = steps;
    s->nsteps = n;
    s->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handler, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_conn, s, MHD_OPTION_NOTIFY_COMPLETED, on_done, s,
        MHD_OPTION_SOCK_ADDR,
        &(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
        MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
}

static void server_stop(struct server *s)
{
    MHD_stop_daemon(s->d);
    for (size_t i = 0; i < s->nseen; i++)
        free(s->seen[i]);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

/* A loopback listener that never accepts: the kernel completes the
 * handshake, nobody answers. Returns its socket (the caller closes it). */
static int silent_listener(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static struct px_ddb *client_for(unsigned port, const char *token)
{
    char url[64], err[256];
    struct px_ddb *c = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    const struct px_ddb_config cfg = {
        .region = "us-east-1",
        .endpoint = url,
        .access_key_id = "AKIDTEST",
        .secret_access_key = "secret/key",
        .session_token = token,
        .connect_timeout_ms = 500,
    };
    if (px_ddb_new(&cfg, &c, err, sizeof(err)) != PX_OK)
        fail_msg("px_ddb_new: %s", err);
    return c;
}

static const char put_body[] = "{\"TableName\":\"t\",\"Item\":{\"pk\":{\"S\":\"USER#x\"}}}";

static void test_http_signed_and_keepalive(void **state)
{
    (void)state;
    static const struct step ok[] = {{200, "{}", 0, NULL, false}};
    struct server s;
    server_start(&s, ok, 1);
    struct px_ddb *c = client_for(s.port, "tok/en+=");
    for (int i = 0; i < 5; i++) {
        json_t *resp = NULL;
        struct px_ddb_error err;
        px_rc rc = px_ddb_call(c, "PutItem", put_body, strlen(put_body), px_ddb_now_ms() + 2000,
                               &resp, &err);
        assert_int_equal(rc, PX_OK);
        assert_true(json_is_object(resp));
        assert_int_equal(err.attempts, 1);
        json_decref(resp);
    }
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.requests, 5);
    assert_int_equal(s.connections, 1); /* keep-alive: one connection for all */
    assert_string_equal(s.target, "DynamoDB_20120810.PutItem");
    assert_string_equal(s.ctype, "application/x-amz-json-1.0");
    assert_string_equal(s.token, "tok/en+=");
    char host[32];
    snprintf(host, sizeof(host), "127.0.0.1:%u", s.port);
    assert_string_equal(s.host, host);
    assert_int_equal(s.body_len, strlen(put_body));
    assert_memory_equal(s.body, put_body, s.body_len);
    assert_non_null(strstr(s.authz, "Credential=AKIDTEST/"));
    assert_non_null(strstr(s.authz, "/us-east-1/dynamodb/aws4_request, SignedHeaders="
                                    "content-type;host;x-amz-date;x-amz-security-token;"
                                    "x-amz-target, Signature="));
    assert_true(s.sig_ok);
    pthread_mutex_unlock(&s.mu);
    px_ddb_free(c);
    server_stop(&s);
}

static void test_http_retries(void **state)
{
    (void)state;
    static const struct step throttled[] = {
        {400, "{\"__type\":\"com.amazon.coral.availability#ThrottlingException\"}", 0, NULL, false},
        {500, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\"}", 0, NULL,
         false},
        {200, "{\"x\":1}", 0, NULL, true}, /* damaged: CRC32 mismatch, retried */
        {200, "{\"x\":2}", 0, NULL, false},
    };
    struct server s;
    server_start(&s, throttled, PX_COUNTOF(throttled));
    struct px_ddb *c = client_for(s.port, NULL);
    json_t *resp = NULL;
    struct px_ddb_error err;
    px_rc rc =
        px_ddb_call(c, "PutItem", put_body, strlen(put_body), px_ddb_now_ms() + 5000, &resp, &err);
    assert_int_equal(rc, PX_OK);
    assert_int_equal(err.attempts, 4);
    assert_true(err.ambiguous); /* the 500 and the damaged 200 may have been applied */
    assert_int_equal(json_integer_value(json_object_get(resp, "x")), 2);
    json_decref(resp);
    assert_string_equal(s.token, "");
    px_ddb_free(c);
    server_stop(&s);

    /* never retried: conditional failures and validation errors */
    static const struct step ccf[] = {
        {400,
         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\","
         "\"message\":\"The conditional request failed\"}",
         0, NULL, false},
        {200, "{}", 0, NULL, false},
    };
    server_start(&s, ccf, PX_COUNTOF(ccf));
    c = client_for(s.port, NULL);
    rc = px_ddb_call(c, "PutItem", put_body, strlen(put_body), px_ddb_now_ms() + 5000, &resp, &err);
    assert_int_equal(rc, PX_ERR_CONFLICT);
    assert_null(resp);
    assert_int_equal(err.attempts, 1);
    assert_false(err.ambiguous);
    assert_string_equal(err.type, "ConditionalCheckFailedException");
    assert_string_equal(err.message, "The conditional request failed");
    assert_int_equal(err.http_status, 400);
    px_ddb_free(c);
    server_stop(&s);

    /* a service that keeps failing: bounded by the deadline, retryable error reported */
    static const struct step down[] = {{503, "", 0, NULL, false}};
    server_start(&s, down, 1);
    c = client_for(s.port, NULL);
    int64_t t0 = px_ddb_now_ms();
    rc = px_ddb_call(c, "PutItem", put_body, strlen(put_body), t0 + 400, &resp, &err);
    int64_t took = px_ddb_now_ms() - t0;
    assert_int_equal(rc, PX_ERR_UNAVAILABLE);
    assert_true(err.attempts >= 3);
    assert_true(err.attempts <= PX_DDB_MAX_ATTEMPTS);
    assert_true(took <= 450);
    px_ddb_free(c);
    server_stop(&s);
}

/* px_ddb_call_many: answers by body. A: answered. B: 500 once (it may have
 * been applied), then answered. C: a conditional failure, never retried.
 * D: a damaged answer once, then answered. E: throttled once. */
static const struct step *many_pick(const char *body, size_t len, unsigned before)
{
    static const struct step ok = {200, "{\"ok\":1}", 0, NULL, false};
    static const struct step s500 = {
        500, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\"}", 0, NULL,
        false};
    static const struct step ccf = {
        400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\"}", 0,
        NULL, false};
    static const struct step damaged = {200, "{\"ok\":0}", 0, NULL, true};
    static const struct step throttled = {
        400, "{\"__type\":\"com.amazon.coral.availability#ThrottlingException\"}", 0, NULL, false};
    char k = len ? body[0] : 0;
    if (k == 'B' && !before)
        return &s500;
    if (k == 'C')
        return &ccf;
    if (k == 'D' && !before)
        return &damaged;
    if (k == 'E' && !before)
        return &throttled;
    return &ok;
}

static void test_http_many(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL, 0);
    s.pick = many_pick;
    s.hold = 5;
    struct px_ddb *c = client_for(s.port, "tok");
    static const char *const bodies[] = {"A{}", "B{}", "C{}", "D{}", "E{}"};
    struct px_ddb_req req[5];
    for (size_t i = 0; i < 5; i++)
        req[i] = (struct px_ddb_req){.body = bodies[i], .len = strlen(bodies[i])};
    px_ddb_call_many(c, "PutItem", req, 5, px_ddb_now_ms() + 10000);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.max_inside, 5); /* all five in flight before any answer */
    assert_int_equal(s.sig_bad, 0);
    assert_int_equal(s.requests, 8); /* B, D and E twice */
    assert_int_equal(s.connections, 5);
    pthread_mutex_unlock(&s.mu);

    static const struct {
        px_rc rc;
        unsigned attempts;
        bool ambiguous;
    } want[] = {
        {PX_OK, 1, false},           {PX_OK, 2, true}, /* the 500 may have been applied */
        {PX_ERR_CONFLICT, 1, false}, {PX_OK, 2, true}, /* so may the damaged answer's request */
        {PX_OK, 2, false},                             /* a throttled request was not applied */
    };
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(req[i].rc, want[i].rc);
        assert_int_equal(req[i].err.attempts, want[i].attempts);
        assert_int_equal(req[i].err.ambiguous, want[i].ambiguous);
        if (want[i].rc == PX_OK)
            assert_int_equal(json_integer_value(json_object_get(req[i].resp, "ok")), 1);
        else
            assert_null(req[i].resp);
        json_decref(req[i].resp);
    }
    assert_string_equal(req[2].err.type, "ConditionalCheckFailedException");

    /* the connections were kept: five more go out on them */
    for (size_t i = 0; i < 5; i++)
        req[i] = (struct px_ddb_req){.body = "A{}", .len = 3};
    pthread_mutex_lock(&s.mu);
    s.hold = 0;
    pthread_mutex_unlock(&s.mu);
    px_ddb_call_many(c, "PutItem", req, 5, px_ddb_now_ms() + 10000);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(req[i].rc, PX_OK);
        json_decref(req[i].resp);
    }
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.connections, 5);
    pthread_mutex_unlock(&s.mu);

    /* more than PX_DDB_MANY_MAX: refused whole, nothing sent */
    struct px_ddb_req *many = calloc(PX_DDB_MANY_MAX + 1, sizeof(*many));
    assert_non_null(many);
    for (size_t i = 0; i <= PX_DDB_MANY_MAX; i++)
        many[i] = (struct px_ddb_req){.body = "A{}", .len = 3};
    px_ddb_call_many(c, "PutItem", many, PX_DDB_MANY_MAX + 1, px_ddb_now_ms() + 1000);
    for (size_t i = 0; i <= PX_DDB_MANY_MAX; i++)
        assert_int_equal(many[i].rc, PX_ERR_NOMEM);
    free(many);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.requests, 13);
    pthread_mutex_unlock(&s.mu);
    px_ddb_free(c);
    server_stop(&s);

    /* a listener that never answers: every request bounded by the deadline */
    unsigned port;
    int fd = silent_listener(&port);
    c = client_for(port, NULL);
    for (size_t i = 0; i < 3; i++)
        req[i] = (struct px_ddb_req){.body = "A{}", .len = 3};
    int64_t t0 = px_ddb_now_ms();
    px_ddb_call_many(c, "PutItem", req, 3, t0 + 300);
    assert_true(px_ddb_now_ms() - t0 < 5000);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(req[i].rc, PX_ERR_TIMEOUT);
        assert_true(req[i].err.ambiguous); /* sent, never answered */
    }
    px_ddb_free(c);
    close(fd);
}

static void test_http_response_cap(void **state)
{
    (void)state;
    static const struct step big[] = {{200, NULL, PX_DDB_MAX_RESPONSE + 1, NULL, false}};
    struct server s;
    server_start(&s, big, 1);
    struct px_ddb *c = client_for(s.port, NULL);
    json_t *resp = NULL;
    struct px_ddb_error err;
    px_rc rc = px_ddb_call(c, "Query", "{}", 2, px_ddb_now_ms() + 3000, &resp, &err);
    assert_int_equal(rc, PX_ERR_TOO_LARGE);
    assert_null(resp);
    assert_int_equal(err.attempts, 1);
    px_ddb_free(c);
    server_stop(&s);
}

/* A hung endpoint, then a refused port: both bounded by the deadline. */
static void test_timeout_and_refused(void **state)
{
    (void)state;
    unsigned port;
    int fd = silent_listener(&port);
    struct px_ddb *c = client_for(port, NULL);
    json_t *resp = NULL;
    struct px_ddb_error err;
    int64_t t0 = px_ddb_now_ms();
    px_rc rc = px_ddb_call(c, "PutItem", put_body, strlen(put_body), t0 + 300, &resp, &err);
    int64_t took = px_ddb_now_ms() - t0;
    assert_int_equal(rc, PX_ERR_TIMEOUT);
    assert_true(took >= 250 && took <= 600);
    px_ddb_free(c);
    close(fd);

    /* the port is free now: refused, retried until the deadline, then UNAVAILABLE */
    c = client_for(port, NULL);
    t0 = px_ddb_now_ms();
    rc = px_ddb_call(c, "PutItem", put_body, strlen(put_body), t0 + 300, &resp, &err);
    took = px_ddb_now_ms() - t0;
    assert_int_equal(rc, PX_ERR_UNAVAILABLE);
    assert_true(err.attempts >= 2);
    assert_true(took <= 400);
    assert_non_null(strstr(err.message, "127.0.0.1"));
    /* a deadline already past: nothing is sent */
    rc = px_ddb_call(c, "PutItem", put_body, strlen(put_body), px_ddb_now_ms() - 1, &resp, &err);
    assert_int_equal(rc, PX_ERR_TIMEOUT);
    assert_int_equal(err.attempts, 0);
    px_ddb_free(c);
}

/* ------------------------------------------------ the store over scripted HTTP */

static struct px_audit_store *store_for(unsigned port, long timeout_ms, unsigned queue_cap)
{
    char url[64], err[256];
    struct px_audit_store *st = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    const struct px_audit_opts o = {
        .timeout_ms = timeout_ms,
        .queue_cap = queue_cap,
        .region = "us-east-1",
        .endpoint = url,
        .access_key_id = "AKIDTEST",
        .secret_access_key = "secret/key",
    };
    if (px_audit_open("dynamodb:audit_unit", &o, &st, err, sizeof(err)) != PX_OK)
        fail_msg("px_audit_open: %s", err);
    return st;
}

static char *item_body(const struct px_audit_record *r, const char *wrap_key)
{
    struct px_buf b;
    px_buf_init(&b, 8192);
    assert_int_equal(px_buf_printf(&b, "{\"%s\":", wrap_key), PX_OK);
    assert_int_equal(px_ddb_audit_item_json(r, &b), PX_OK);
    assert_int_equal(px_buf_adds(&b, "}"), PX_OK);
    return px_buf_take(&b);
}

/* A retried PutItem that meets its own first write is a success; someone else's is not. */
static void test_store_ambiguous_retry(void **state)
{
    (void)state;
    struct px_audit_record r, other;
    sample_record(&r);
    other = r;
    snprintf(other.status, sizeof(other.status), "ERROR");
    char *diff = item_body(&other, "Item");
    const char *ccf = "{\"__type\":\"com.amazonaws.dynamodb.v20120810#"
                      "ConditionalCheckFailedException\",\"message\":\"The conditional request "
                      "failed\"}";
    const struct step mine[] = {
        {500, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\"}", 0, NULL,
         false},
        {400, ccf, 0, NULL, false},
        {200, ECHO_FIRST_ITEM, 0, NULL, false},
    };
    struct server s;
    server_start(&s, mine, PX_COUNTOF(mine));
    struct px_audit_store *st = store_for(s.port, 3000, 8);
    assert_int_equal(px_audit_append(st, &r), PX_OK);
    px_audit_close(st);
    assert_int_equal(s.nseen, 3);
    assert_non_null(strstr(s.seen[0], "DynamoDB_20120810.PutItem {\"TableName\":\"audit_unit\""));
    assert_non_null(strstr(s.seen[0], "\"ConditionExpression\":\"attribute_not_exists(pk)\""));
    assert_non_null(strstr(s.seen[1], "DynamoDB_20120810.PutItem "));
    assert_non_null(strstr(s.seen[2], "DynamoDB_20120810.GetItem "));
    assert_non_null(strstr(s.seen[2], "\"ConsistentRead\":true"));
    server_stop(&s);

    const struct step theirs[] = {
        {500, "", 0, NULL, false},
        {400, ccf, 0, NULL, false},
        {200, diff, 0, NULL, false},
    };
    server_start(&s, theirs, PX_COUNTOF(theirs));
    st = store_for(s.port, 3000, 8);
    assert_int_equal(px_audit_append(st, &r), PX_ERR_CONFLICT);
    px_audit_close(st);
    server_stop(&s);

    /* a first-attempt conditional failure is a conflict without a read-back */
    const struct step first[] = {{400, ccf, 0, NULL, false}};
    server_start(&s, first, 1);
    st = store_for(s.port, 3000, 8);
    assert_int_equal(px_audit_append(st, &r), PX_ERR_CONFLICT);
    px_audit_close(st);
    assert_int_equal(s.nseen, 1);
    server_stop(&s);
    free(diff);
}

struct counter {
    pthread_mutex_t mu;
    int done;
    px_rc rc[64];
};

static void count_done(void *arg, px_rc rc)
{
    struct counter *c = arg;
    pthread_mutex_lock(&c->mu);
    c->rc[c->done++] = rc;
    pthread_mutex_unlock(&c->mu);
}

/* A full queue answers BUSY at once; every accepted record gets exactly one done(). */
static void test_store_busy_and_bounded(void **state)
{
    (void)state;
    unsigned port;
    int fd = silent_listener(&port);
    struct px_audit_store *st = store_for(port, 300, 4);
    struct counter c = {.done = 0};
    pthread_mutex_init(&c.mu, NULL);
    struct px_audit_record r;
    sample_record(&r);
    int accepted = 0, busy = 0;
    int64_t t0 = px_ddb_now_ms();
    for (int i = 0; i < 40; i++) {
        px_rc rc = px_audit_submit(st, &r, count_done, &c);
        if (rc == PX_OK)
            accepted++;
        else if (rc == PX_ERR_BUSY)
            busy++;
    }
    assert_true(busy > 0);
    assert_true(accepted >= 4 && accepted <= 12); /* 8 writers + 4 queued */
    px_audit_close(st);                           /* waits for every done() */
    int64_t took = px_ddb_now_ms() - t0;
    assert_int_equal(c.done, accepted);
    for (int i = 0; i < c.done; i++)
        assert_int_equal(c.rc[i], PX_ERR_TIMEOUT);
    assert_true(took < 1000);
    pthread_mutex_destroy(&c.mu);
    close(fd);
}

static char *page_body(const struct px_audit_record *items, size_t n, const char *lek)
{
    struct px_buf b;
    px_buf_init(&b, 65536);
    assert_int_equal(px_buf_printf(&b, "{\"Count\":%zu,\"ScannedCount\":9,\"Items\":[", n), PX_OK);
    for (size_t i = 0; i < n; i++) {
        if (i)
            assert_int_equal(px_buf_adds(&b, ","), PX_OK);
        assert_int_equal(px_ddb_audit_item_json(&items[i], &b), PX_OK);
    }
    assert_int_equal(px_buf_adds(&b, "]"), PX_OK);
    if (lek)
        assert_int_equal(px_buf_printf(&b, ",\"LastEvaluatedKey\":%s", lek), PX_OK);
    assert_int_equal(px_buf_adds(&b, "}"), PX_OK);
    return px_buf_take(&b);
}

/* Filtered pages come back short or empty with a LastEvaluatedKey: the store follows
 * them, asks for what is missing + 1, and resumes after the last item it returns. */
static void test_store_query_pages(void **state)
{
    (void)state;
    struct px_audit_record r[3];
    for (int i = 0; i < 3; i++) {
        sample_record(&r[i]);
        memset(r[i].request_id, 0, sizeof(r[i].request_id));
        snprintf(r[i].request_id, sizeof(r[i].request_id), "req-%d", i);
        snprintf(r[i].ts, sizeof(r[i].ts), "2026-01-23T12:00:0%d.000Z", i);
    }
    const char *k0 = "{\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},"
                     "\"sk\":{\"S\":\"AUDIT#2026-01-23T11:00:00.000Z#x\"}}";
    const char *k1 = "{\"pk\":{\"S\":\"USER#3fa85f64-5717-4562-b3fc-2c963f66afa6\"},"
                     "\"sk\":{\"S\":\"AUDIT#2026-01-23T12:00:00.000Z#req-0\"}}";
    char *p0 = page_body(NULL, 0, k0), *p1 = page_body(&r[0], 1, k1),
         *p2 = page_body(&r[1], 2, NULL);
    const struct step pages[] = {
        {200, p0, 0, NULL, false}, {200, p1, 0, NULL, false}, {200, p2, 0, NULL, false}};
    struct server s;
    server_start(&s, pages, PX_COUNTOF(pages));
    struct px_audit_store *st = store_for(s.port, 2000, 8);
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_audit_query q = {.user_id = "3FA85F64-5717-4562-B3FC-2C963F66AFA6",
                               .from = "2026-01-23T11:00:00Z",
                               .to = "2026-01-23T13:00:00.5Z",
                               .limit = 2,
                               .now = 1700000000};
    struct px_audit_page page;
    assert_int_equal(px_audit_query(st, &q, a, &page), PX_OK);
    assert_int_equal(page.nitems, 2);
    assert_memory_equal(&page.items[0], &r[0], sizeof(r[0]));
    assert_memory_equal(&page.items[1], &r[1], sizeof(r[1]));
    assert_non_null(page.next_cursor);
    json_t *k = NULL;
    assert_int_equal(px_ddb_cursor_decode(page.next_cursor, &q, &k), PX_OK);
    assert_string_equal(json_string_value(json_object_get(json_object_get(k, "sk"), "S")),
                        "AUDIT#2026-01-23T12:00:01.000Z#req-1");
    json_decref(k);
    assert_int_equal(s.nseen, 3);
    json_error_t e;
    long want_limit[] = {3, 3, 2};
    const char *want_start[] = {NULL, k0, k1};
    for (size_t i = 0; i < 3; i++) {
        const char *js = strchr(s.seen[i], ' ') + 1;
        assert_non_null(strstr(s.seen[i], "DynamoDB_20120810.Query "));
        json_t *req = json_loads(js, 0, &e);
        assert_non_null(req);
        assert_int_equal(json_integer_value(json_object_get(req, "Limit")), want_limit[i]);
        assert_true(json_is_true(json_object_get(req, "ConsistentRead")));
        assert_true(json_is_true(json_object_get(req, "ScanIndexForward")));
        assert_string_equal(json_string_value(json_object_get(req, "FilterExpression")),
                            "#e > :now");
        json_t *v = json_object_get(req, "ExpressionAttributeValues");
        assert_string_equal(json_string_value(json_object_get(json_object_get(v, ":p"), "S")),
                            "USER#3fa85f64-5717-4562-b3fc-2c963f66afa6");
        assert_string_equal(json_string_value(json_object_get(json_object_get(v, ":lo"), "S")),
                            "AUDIT#2026-01-23T11:00:00.000Z");
        assert_string_equal(json_string_value(json_object_get(json_object_get(v, ":hi"), "S")),
                            "AUDIT#2026-01-23T13:00:00.500Z$");
        assert_string_equal(json_string_value(json_object_get(json_object_get(v, ":now"), "N")),
                            "1700000000");
        json_t *start = json_object_get(req, "ExclusiveStartKey");
        if (!want_start[i]) {
            assert_null(start);
        } else {
            json_t *w = json_loads(want_start[i], 0, &e);
            assert_true(json_equal(start, w));
            json_decref(w);
        }
        json_decref(req);
    }
    /* the last page: fewer than asked and no LastEvaluatedKey -> no cursor */
    server_stop(&s);
    px_audit_close(st);
    const struct step last[] = {{200, p2, 0, NULL, false}};
    server_start(&s, last, 1);
    st = store_for(s.port, 2000, 8);
    q.limit = 5;
    q.from = q.to = NULL;
    px_arena_reset(a);
    assert_int_equal(px_audit_query(st, &q, a, &page), PX_OK);
    assert_int_equal(page.nitems, 2);
    assert_null(page.next_cursor);
    /* by product: the GSI, no consistent read */
    q.user_id = NULL;
    q.product_id = "PROD-101";
    assert_int_equal(px_audit_query(st, &q, a, &page), PX_OK);
    json_t *req = json_loads(strchr(s.seen[1], ' ') + 1, 0, &e);
    assert_string_equal(json_string_value(json_object_get(req, "IndexName")), "gsi1");
    assert_null(json_object_get(req, "ConsistentRead"));
    json_decref(req);
    /* a bad cursor or bound never reaches the service */
    q.cursor = "e30";
    assert_int_equal(px_audit_query(st, &q, a, &page), PX_ERR_INVALID);
    q.cursor = NULL;
    q.from = "yesterday";
    assert_int_equal(px_audit_query(st, &q, a, &page), PX_ERR_INVALID);
    assert_int_equal(s.nseen, 2);
    px_audit_close(st);
    server_stop(&s);
    px_arena_free(a);
    free(p0);
    free(p1);
    free(p2);
}

static void test_config_errors(void **state)
{
    (void)state;
    char err[256];
    struct px_ddb *c = NULL;
    struct px_ddb_config cfg = {.access_key_id = "a", .secret_access_key = "s"};
    assert_int_equal(px_ddb_new(&cfg, &c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AWS_REGION"));
    cfg.region = "us-east-1";
    cfg.access_key_id = "";
    assert_int_equal(px_ddb_new(&cfg, &c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AWS_ACCESS_KEY_ID"));
    cfg.access_key_id = "a";
    cfg.secret_access_key = NULL;
    assert_int_equal(px_ddb_new(&cfg, &c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    cfg.secret_access_key = "s";
    cfg.endpoint = "ftp://x";
    assert_int_equal(px_ddb_new(&cfg, &c, err, sizeof(err)), PX_ERR_CONFIG);
    cfg.endpoint = "http://u:p@127.0.0.1:1/";
    assert_int_equal(px_ddb_new(&cfg, &c, err, sizeof(err)), PX_ERR_CONFIG);
    cfg.endpoint = NULL;
    assert_int_equal(px_ddb_new(&cfg, &c, err, sizeof(err)), PX_OK);
    assert_string_equal(px_ddb_endpoint(c), "https://dynamodb.us-east-1.amazonaws.com/");
    px_ddb_free(c);
    px_ddb_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_item_json),
        cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_error_mapping_extra),
        cmocka_unit_test(test_protocol_error_cases),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_http_signed_and_keepalive),
        cmocka_unit_test(test_http_retries),
        cmocka_unit_test(test_http_many),
        cmocka_unit_test(test_http_response_cap),
        cmocka_unit_test(test_timeout_and_refused),
        cmocka_unit_test(test_store_ambiguous_retry),
        cmocka_unit_test(test_store_busy_and_bounded),
        cmocka_unit_test(test_store_query_pages),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
