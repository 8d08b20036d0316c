/* test_errors.c: the error shape of CONTRACT §4. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "kernel/errors.h"

static void test_codes_table(void **state)
{
    (void)state;
    static const struct {
        enum px_ecode code;
        int status;
        const char *name;
    } cases[] = {
        {PX_E_VALIDATION_FAILED, 400, "VALIDATION_FAILED"},
        {PX_E_UNAUTHORIZED, 401, "UNAUTHORIZED"},
        {PX_E_FORBIDDEN, 403, "FORBIDDEN"},
        {PX_E_NOT_FOUND, 404, "NOT_FOUND"},
        {PX_E_ROUTE_NOT_FOUND, 404, "ROUTE_NOT_FOUND"},
        {PX_E_METHOD_NOT_ALLOWED, 405, "METHOD_NOT_ALLOWED"},
        {PX_E_CONFLICT, 409, "CONFLICT"},
        {PX_E_PAYLOAD_TOO_LARGE, 413, "PAYLOAD_TOO_LARGE"},
        {PX_E_UNSUPPORTED_MEDIA_TYPE, 415, "UNSUPPORTED_MEDIA_TYPE"},
        {PX_E_HEADERS_TOO_LARGE, 431, "HEADERS_TOO_LARGE"},
        {PX_E_TOO_MANY_REQUESTS, 429, "TOO_MANY_REQUESTS"},
        {PX_E_AUDIT_UNAVAILABLE, 503, "AUDIT_UNAVAILABLE"},
        {PX_E_DEPENDENCY_UNAVAILABLE, 503, "DEPENDENCY_UNAVAILABLE"},
        {PX_E_INTERNAL, 500, "INTERNAL"},
        {PX_E_PRECONDITION_FAILED, 412, "PRECONDITION_FAILED"},
        {PX_E_PRECONDITION_REQUIRED, 428, "PRECONDITION_REQUIRED"},
        {PX_E_IDEMPOTENCY_KEY_REUSED, 422, "IDEMPOTENCY_KEY_REUSED"},
        {PX_E_MAINTENANCE, 503, "MAINTENANCE"},
    };
    assert_int_equal(PX_COUNTOF(cases), PX_E__COUNT);
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        assert_int_equal(px_ecode_status(cases[i].code), cases[i].status);
        assert_string_equal(px_ecode_name(cases[i].code), cases[i].name);
    }
    assert_int_equal(px_ecode_status(PX_E__COUNT), 500);
    assert_string_equal(px_ecode_name((enum px_ecode)99), "INTERNAL");
}

static void test_body_with_details(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_request req = {.arena = a, .request_id = "req-1"};
    struct px_response resp = {0};
    struct px_err_detail d[] = {
        {"userId", "must be a UUID"},
        {"id", "say \"hi\"\n"},
    };
    px_error_response(&req, &resp, PX_E_VALIDATION_FAILED, "the request is not valid", d, 2);
    assert_int_equal(resp.status, 400);
    assert_null(resp.content_type);
    const char *want = "{\"error\":{\"code\":\"VALIDATION_FAILED\",\"message\":\"the request is "
                       "not valid\",\"requestId\":\"req-1\",\"details\":[{\"field\":\"userId\","
                       "\"reason\":\"must be a UUID\"},{\"field\":\"id\",\"reason\":\"say "
                       "\\\"hi\\\"\\n\"}]}}";
    assert_string_equal(resp.body, want);
    assert_int_equal(resp.body_len, strlen(want));
    json_error_t jerr;
    json_t *j = json_loadb(resp.body, resp.body_len, 0, &jerr);
    assert_non_null(j);
    json_t *det = json_object_get(json_object_get(j, "error"), "details");
    assert_int_equal(json_array_size(det), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(det, 1), "reason")),
                        "say \"hi\"\n");
    json_decref(j);
    px_arena_free(a);
}

static void test_body_without_details_and_id(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_request req = {.arena = a};
    struct px_response resp = {0};
    px_error_response(&req, &resp, PX_E_NOT_FOUND, "no price for that product", NULL, 0);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.body, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no price for "
                                   "that product\",\"requestId\":null}}");
    /* default message when none is given */
    px_error_response(&req, &resp, PX_E_INTERNAL, NULL, NULL, 0);
    assert_int_equal(resp.status, 500);
    assert_non_null(strstr(resp.body, "\"message\":\"internal error\""));
    px_arena_free(a);
}

static void test_keeps_audit_and_headers(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_request req = {.arena = a, .request_id = "r"};
    struct px_response resp = {0};
    int marker;
    resp.audit = (struct px_audit_record *)&marker;
    assert_int_equal(px_response_header(&resp, "Allow", "GET"), PX_OK);
    px_error_response(&req, &resp, PX_E_NOT_FOUND, NULL, NULL, 0);
    /* a not-found look-up is still audited */
    assert_ptr_equal(resp.audit, &marker);
    assert_int_equal(resp.nheaders, 1);
    px_arena_free(a);
}

static void test_audit_failed_clears_everything(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_request req = {.arena = a, .request_id = "abc"};
    struct px_response resp = {0};
    int marker;
    const char *price = "{\"productId\":\"PROD-101\",\"price\":99.99,\"currency\":\"USD\"}";
    assert_int_equal(px_response_json(&req, &resp, 200, price, strlen(price)), PX_OK);
    assert_int_equal(px_response_header(&resp, "X-Price", "99.99"), PX_OK);
    resp.content_type = "text/plain";
    resp.audit = (struct px_audit_record *)&marker;

    px_response_audit_failed(&req, &resp);
    assert_int_equal(resp.status, 503);
    assert_null(resp.audit);
    assert_int_equal(resp.nheaders, 0);
    assert_null(resp.content_type);
    assert_null(strstr(resp.body, "99.99"));
    assert_string_equal(resp.body, "{\"error\":{\"code\":\"AUDIT_UNAVAILABLE\",\"message\":\"the "
                                   "audit record could not be made durable; no price was "
                                   "returned\",\"requestId\":\"abc\"}}");
    px_arena_free(a);
}

static void test_arena_exhausted(void **state)
{
    (void)state;
    /* the first block is 8 KiB and the cap allows nothing more */
    struct px_arena *a = px_arena_new(8192);
    assert_non_null(px_arena_alloc(a, 8192));
    assert_null(px_arena_alloc(a, 1));
    struct px_request req = {.arena = a, .request_id = "x"};
    struct px_response resp = {0};
    px_error_response(&req, &resp, PX_E_VALIDATION_FAILED, "bad", NULL, 0);
    assert_int_equal(resp.status, 500);
    assert_non_null(strstr(resp.body, "\"INTERNAL\""));
    assert_int_equal(resp.body_len, strlen(resp.body));

    resp.body = "{\"price\":1}";
    px_response_audit_failed(&req, &resp);
    assert_int_equal(resp.status, 503);
    assert_non_null(strstr(resp.body, "\"AUDIT_UNAVAILABLE\""));
    json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
    assert_non_null(j);
    json_decref(j);

    /* NULL request: no arena at all */
    px_error_response(NULL, &resp, PX_E_FORBIDDEN, NULL, NULL, 0);
    assert_int_equal(resp.status, 500);
    px_arena_free(a);
}

static void test_response_helpers(void **state)
{
    (void)state;
    struct px_arena *a = px_arena_new(1 << 20);
    struct px_kv hdrs[] = {{"x-correlation-id", "c1"}, {"accept", "*/*"}};
    struct px_kv params[] = {{"id", "PROD-1"}};
    struct px_request req = {
        .arena = a, .headers = hdrs, .nheaders = 2, .path_params = params, .npath_params = 1};
    assert_string_equal(px_request_header(&req, "accept"), "*/*");
    assert_string_equal(px_request_header(&req, "X-Correlation-Id"), "c1");
    assert_null(px_request_header(&req, "authorization"));
    assert_string_equal(px_request_path_param(&req, "id"), "PROD-1");
    assert_null(px_request_path_param(&req, "key"));

    struct px_response resp = {0};
    for (int i = 0; i < PX_MAX_RESP_HEADERS; i++)
        assert_int_equal(px_response_header(&resp, "X-A", "b"), PX_OK);
    assert_int_equal(px_response_header(&resp, "X-A", "b"), PX_ERR_TOO_LARGE);
    assert_int_equal(resp.nheaders, PX_MAX_RESP_HEADERS);

    char json[] = "{\"a\":1}";
    assert_int_equal(px_response_json(&req, &resp, 201, json, strlen(json)), PX_OK);
    json[2] = 'b'; /* the body is a copy */
    assert_string_equal(resp.body, "{\"a\":1}");
    assert_int_equal(resp.status, 201);
    px_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_table),
        cmocka_unit_test(test_body_with_details),
        cmocka_unit_test(test_body_without_details_and_id),
        cmocka_unit_test(test_keeps_audit_and_headers),
        cmocka_unit_test(test_audit_failed_clears_everything),
        cmocka_unit_test(test_arena_exhausted),
        cmocka_unit_test(test_response_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
