/* test_secrets.c: GetSecretValue for the Lambda signing key (secrets.h): the
 * ARN's region, the request body, its SigV4 signature (the headers the JSON
 * client sends, cross-checked with botocore 1.43 SigV4Auth at the AWS suite's
 * clock), and reading SecretString / SecretBinary out of an answer. The call
 * itself runs against moto's Secrets Manager in
 * tests/integration/test_lambda_secret.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "store/secrets.h"
#include "store/sigv4.h"

#define ARN "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pricing/audit-signing-key-AbCdEf"

static void test_arn_region(void **state)
{
    (void)state;
    char r[64];
    assert_true(px_secret_arn_region(ARN, r, sizeof(r)));
    assert_string_equal(r, "eu-west-1");
    assert_true(
        px_secret_arn_region("arn:aws-cn:secretsmanager:cn-north-1:1:secret:x", r, sizeof(r)));
    assert_string_equal(r, "cn-north-1");
    assert_false(px_secret_arn_region("pricing/audit-signing-key", r, sizeof(r)));
    assert_false(px_secret_arn_region("arn:aws:s3:eu-west-1:1:secret:x", r, sizeof(r)));
    assert_false(px_secret_arn_region("arn:aws:secretsmanager::1:secret:x", r, sizeof(r)));
    assert_false(px_secret_arn_region("arn:aws:secretsmanager:EU_1:1:secret:x", r, sizeof(r)));
    assert_false(px_secret_arn_region("arn:aws:secretsmanager:eu-west-1", r, sizeof(r)));
    assert_false(px_secret_arn_region(NULL, r, sizeof(r)));
}

static void test_signed_request(void **state)
{
    (void)state;
    char *body = px_secret_request_body(ARN);
    assert_non_null(body);
    assert_string_equal(body, "{\"SecretId\":\"" ARN "\"}");
    const struct px_sigv4_header h[] = {
        {"Content-Type", "application/x-amz-json-1.1"},
        {"Host", "secretsmanager.eu-west-1.amazonaws.com"},
        {"X-Amz-Target", "secretsmanager.GetSecretValue"},
    };
    struct px_sigv4_input in = {
        .method = "POST",
        .path = "/",
        .headers = h,
        .nheaders = 3,
        .payload = body,
        .payload_len = strlen(body),
        .region = "eu-west-1",
        .service = "secretsmanager",
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .now = 1440938160, /* 2015-08-30T12:36:00Z */
    };
    struct px_sigv4_output *out = malloc(sizeof(*out));
    assert_non_null(out);
    assert_int_equal(px_sigv4_sign(&in, out), PX_OK);
    assert_string_equal(
        out->authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/secretsmanager/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
        "Signature=2b767d57a521ed4ecb32ff61797f3d14d9ed74cfc3b7f86f9d8fbb8dcc6375c7");
    free(out);
    free(body);
}

static void parse(const char *json, px_rc want, const char *value, size_t vlen)
{
    json_t *j = json_loads(json, 0, NULL);
    assert_non_null(j);
    char *v = NULL, err[256] = "";
    size_t n = 0;
    assert_int_equal(px_secret_parse(j, &v, &n, err, sizeof(err)), want);
    if (want == PX_OK) {
        assert_int_equal(n, vlen);
        assert_memory_equal(v, value, vlen);
        assert_int_equal(v[n], '\0');
    } else {
        assert_null(v);
        assert_true(err[0] != '\0');
    }
    px_secret_free(v, n);
    json_decref(j);
}

static void test_parse(void **state)
{
    (void)state;
    parse("{\"ARN\":\"" ARN "\",\"SecretString\":\"-----BEGIN PRIVATE KEY-----\\nMC4=\\n\"}", PX_OK,
          "-----BEGIN PRIVATE KEY-----\nMC4=\n", 33);
    parse("{\"SecretBinary\":\"aGVsbG8=\"}", PX_OK, "hello", 5);
    parse("{\"SecretBinary\":\"aGVsbG8\"}", PX_ERR_PROTOCOL, NULL, 0);
    parse("{\"SecretString\":\"\"}", PX_ERR_PROTOCOL, NULL, 0);
    parse("{\"Name\":\"x\"}", PX_ERR_PROTOCOL, NULL, 0);
    parse("{\"SecretString\":5}", PX_ERR_PROTOCOL, NULL, 0);
    px_secret_free(NULL, 0);
}

static void test_settings(void **state)
{
    (void)state;
    char *v = NULL, err[256];
    size_t n = 0;
    struct px_secret_config c = {.access_key_id = "AK", .secret_access_key = "SK"};
    /* a bare name needs AWS_REGION */
    assert_int_equal(px_secret_get(&c, "pricing/key", &v, &n, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AWS_REGION"));
    c.access_key_id = NULL;
    assert_int_equal(px_secret_get(&c, ARN, &v, &n, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AWS_ACCESS_KEY_ID"));
    assert_int_equal(px_secret_get(&c, "", &v, &n, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arn_region),
        cmocka_unit_test(test_signed_request),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
