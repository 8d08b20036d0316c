/* test_s3.c: the S3 request shape `audit export --out s3://` signs. AWS's own
 * worked example of a signed PutObject ("Signature Calculations for the
 * Authorization Header: Transferring Payload in a Single Chunk", the PUT Object
 * example: examplebucket, /test$file.text, "Welcome to Amazon S3.") through the
 * shared signer, the payload digests, and the key rules that keep the signer's
 * canonical path equal to S3's. The uploads themselves are tested against
 * s3rver in tests/integration/test_s3_export.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "store/s3.h"
#include "store/sigv4.h"

static void test_aws_put_object_example(void **state)
{
    (void)state;
    const char *body = "Welcome to Amazon S3.";
    char md5[25], sha[45], hex[65];
    assert_int_equal(px_s3_digests(body, strlen(body), md5, sha, hex), PX_OK);
    assert_string_equal(hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    const struct px_sigv4_header h[] = {
        {"Host", "examplebucket.s3.amazonaws.com"},
        {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
        {"x-amz-date", "20130524T000000Z"},
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"x-amz-content-sha256", hex},
    };
    struct px_sigv4_input in = {
        .method = "PUT",
        .path = "/test$file.text",
        .headers = h,
        .nheaders = PX_COUNTOF(h),
        .payload = body,
        .payload_len = strlen(body),
        .region = "us-east-1",
        .service = "s3",
        .access_key_id = "AKIAIOSFODNN7EXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        .now = 1369353600, /* 2013-05-24T00:00:00Z */
    };
    struct px_sigv4_output *out = malloc(sizeof(*out));
    assert_non_null(out);
    assert_int_equal(px_sigv4_sign(&in, out), PX_OK);
    assert_string_equal(
        out->authorization,
        "AWS4-HMAC-SHA256 "
        "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-"
        "class, "
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    free(out);
}

static void test_digests(void **state)
{
    (void)state;
    char md5[25], sha[45], hex[65];
    assert_int_equal(px_s3_digests("", 0, md5, sha, hex), PX_OK);
    /* MD5("") and SHA-256("") as S3 wants them: base64, and hex for x-amz-content-sha256 */
    assert_string_equal(md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
    assert_string_equal(sha, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_names(void **state)
{
    (void)state;
    assert_true(px_s3_bucket_ok("audit-archive"));
    assert_true(px_s3_bucket_ok("a.b-c"));
    assert_false(px_s3_bucket_ok("ab"));
    assert_false(px_s3_bucket_ok("Audit"));
    assert_false(px_s3_bucket_ok("-ab"));
    assert_false(px_s3_bucket_ok("a_b"));
    assert_false(px_s3_bucket_ok(NULL));
    assert_true(px_s3_key_ok("pricing/trail/digest-000001.txt"));
    assert_true(px_s3_key_ok("a~b/c_d.e-f"));
    /* what the signer would normalise or encode differently from S3 */
    assert_false(px_s3_key_ok("/a"));
    assert_false(px_s3_key_ok("a//b"));
    assert_false(px_s3_key_ok("a/./b"));
    assert_false(px_s3_key_ok("a/../b"));
    assert_false(px_s3_key_ok("a b"));
    assert_false(px_s3_key_ok("a%20b"));
    assert_false(px_s3_key_ok("a+b"));
}

static void test_client_settings(void **state)
{
    (void)state;
    char err[256];
    struct px_s3 *s = NULL;
    struct px_s3_config c = {.region = "us-east-1",
                             .endpoint = "http://127.0.0.1:9/",
                             .access_key_id = "AK",
                             .secret_access_key = "SK"};
    assert_int_equal(px_s3_new(&c, "audit-archive", &s, err, sizeof(err)), PX_OK);
    px_s3_free(s);
    c.endpoint = "http://127.0.0.1:9/base";
    assert_int_equal(px_s3_new(&c, "audit-archive", &s, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "AWS_ENDPOINT_URL_S3"));
    c.endpoint = "ftp://x";
    assert_int_equal(px_s3_new(&c, "audit-archive", &s, err, sizeof(err)), PX_ERR_CONFIG);
    c.endpoint = NULL;
    c.access_key_id = "";
    assert_int_equal(px_s3_new(&c, "audit-archive", &s, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(s);
    px_s3_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_put_object_example),
        cmocka_unit_test(test_digests),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_client_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
