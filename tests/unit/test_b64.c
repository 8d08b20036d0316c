/* test_b64.c: base64 and base64url (RFC 4648 sections 4, 5 and the vectors of section 10). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "kernel/b64.h"

/* RFC 4648 section 10. */
static const struct {
    const char *raw, *padded, *bare;
} rfc[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void expect_encode(const void *in, size_t n, enum px_b64_alphabet alpha, unsigned flags,
                          const char *want)
{
    char out[256];
    size_t len = 99;
    assert_int_equal(px_b64_encoded_len(n, flags), strlen(want));
    assert_int_equal(px_b64_encode(in, n, alpha, flags, out, sizeof(out), &len), PX_OK);
    assert_int_equal(len, strlen(want));
    assert_string_equal(out, want);
}

static void expect_decode(const char *in, enum px_b64_alphabet alpha, unsigned flags,
                          const void *want, size_t wantlen)
{
    unsigned char out[256];
    size_t len = 99;
    assert_true(px_b64_decoded_max(strlen(in)) >= wantlen);
    assert_int_equal(px_b64_decode(in, strlen(in), alpha, flags, out, sizeof(out), &len), PX_OK);
    assert_int_equal(len, wantlen);
    assert_memory_equal(out, want, wantlen);
}

static void expect_invalid(const char *in, enum px_b64_alphabet alpha, unsigned flags)
{
    unsigned char out[256];
    size_t len = 0;
    if (px_b64_decode(in, strlen(in), alpha, flags, out, sizeof(out), &len) != PX_ERR_INVALID)
        fail_msg("\"%s\" (alphabet %d, flags %u) decoded", in, (int)alpha, flags);
}

static void test_rfc_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
        size_t n = strlen(rfc[i].raw);
        for (int a = PX_B64_STD; a <= PX_B64_URL; a++) {
            expect_encode(rfc[i].raw, n, (enum px_b64_alphabet)a, PX_B64_PAD, rfc[i].padded);
            expect_encode(rfc[i].raw, n, (enum px_b64_alphabet)a, 0, rfc[i].bare);
            expect_decode(rfc[i].padded, (enum px_b64_alphabet)a, PX_B64_PAD, rfc[i].raw, n);
            expect_decode(rfc[i].bare, (enum px_b64_alphabet)a, 0, rfc[i].raw, n);
        }
    }
}

/* The two characters where the alphabets differ: 0xFB 0xFF = "+/8" / "-_8". */
static void test_alphabets_differ(void **state)
{
    (void)state;
    static const unsigned char raw[] = {0xFB, 0xFF, 0xBF};
    expect_encode(raw, 3, PX_B64_STD, PX_B64_PAD, "+/+/");
    expect_encode(raw, 3, PX_B64_URL, 0, "-_-_");
    expect_encode(raw, 2, PX_B64_STD, PX_B64_PAD, "+/8=");
    expect_encode(raw, 2, PX_B64_URL, 0, "-_8");
    expect_decode("+/+/", PX_B64_STD, PX_B64_PAD, raw, 3);
    expect_decode("-_-_", PX_B64_URL, 0, raw, 3);
    expect_invalid("-_-_", PX_B64_STD, PX_B64_PAD);
    expect_invalid("+/+/", PX_B64_URL, 0);

    unsigned char all[256];
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (unsigned char)i;
    for (int a = PX_B64_STD; a <= PX_B64_URL; a++) {
        for (unsigned flags = 0; flags <= PX_B64_PAD; flags++) {
            char enc[400];
            unsigned char dec[300];
            size_t el = 0, dl = 0;
            assert_int_equal(px_b64_encode(all, sizeof(all), (enum px_b64_alphabet)a, flags, enc,
                                           sizeof(enc), &el),
                             PX_OK);
            assert_int_equal(
                px_b64_decode(enc, el, (enum px_b64_alphabet)a, flags, dec, sizeof(dec), &dl),
                PX_OK);
            assert_int_equal(dl, sizeof(all));
            assert_memory_equal(dec, all, sizeof(all));
        }
    }
}

static void test_rejects(void **state)
{
    (void)state;
    /* Padded: length, misplaced or excess '=', foreign characters, unused bits. */
    static const char *const padded_bad[] = {"Zg",   "Zg=",      "Zg=a",  "Z===",   "====", "Zh==",
                                             "Zm9=", "Zg==Zg==", "Zm 9v", "Zm9v\n", "=Zm9", "Zm=v"};
    for (size_t i = 0; i < sizeof(padded_bad) / sizeof(padded_bad[0]); i++)
        expect_invalid(padded_bad[i], PX_B64_STD, PX_B64_PAD);
    /* Unpadded: any '=', a length of 4k+1, foreign characters, unused bits. */
    static const char *const bare_bad[] = {"Zg==", "Zm8=", "Z",    "Zm9vY", "Zh",
                                           "Zm9",  "Zm.v", "Zm+v", "Zm/v",  " Zm9v"};
    for (size_t i = 0; i < sizeof(bare_bad) / sizeof(bare_bad[0]); i++)
        expect_invalid(bare_bad[i], PX_B64_URL, 0);
    /* Only the bits rule bends, and only when asked. */
    static const unsigned char f[] = {'f'}, fo[] = {'f', 'o'};
    expect_decode("Zh==", PX_B64_STD, PX_B64_PAD | PX_B64_ANY_TAIL_BITS, f, 1);
    expect_decode("Zm9=", PX_B64_STD, PX_B64_PAD | PX_B64_ANY_TAIL_BITS, fo, 2);
    expect_invalid("Zg=a", PX_B64_STD, PX_B64_PAD | PX_B64_ANY_TAIL_BITS);
    expect_invalid("Z", PX_B64_URL, PX_B64_ANY_TAIL_BITS);
}

static void test_capacity(void **state)
{
    (void)state;
    char enc[9];
    size_t len = 0;
    /* "foobar" needs 8 characters and the NUL. */
    assert_int_equal(px_b64_encode("foobar", 6, PX_B64_STD, 0, enc, 8, &len), PX_ERR_TOO_LARGE);
    assert_int_equal(px_b64_encode("foobar", 6, PX_B64_STD, 0, enc, 9, &len), PX_OK);
    assert_int_equal(len, 8);
    unsigned char dec[6];
    assert_int_equal(px_b64_decode("Zm9vYmFy", 8, PX_B64_STD, 0, dec, 5, &len), PX_ERR_TOO_LARGE);
    assert_int_equal(px_b64_decode("Zm9vYmFy", 8, PX_B64_STD, 0, dec, 6, &len), PX_OK);
    assert_int_equal(px_b64_decoded_max(8), 6);
    assert_int_equal(px_b64_decoded_max(7), 5);
    assert_int_equal(px_b64_decoded_max(6), 4);

    struct px_buf b;
    px_buf_init(&b, 10);
    assert_int_equal(px_b64_append(&b, "foo", 3, PX_B64_URL, 0), PX_OK);
    assert_int_equal(px_b64_append(&b, "foobar", 6, PX_B64_URL, 0), PX_ERR_TOO_LARGE);
    assert_string_equal(b.data, "Zm9v"); /* unchanged by the failed append */
    assert_int_equal(b.len, 4);
    px_buf_free(&b);

    /* Long input crosses the append's internal chunks. */
    unsigned char big[2000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(i * 7);
    px_buf_init(&b, 4096);
    assert_int_equal(px_b64_append(&b, big, sizeof(big), PX_B64_STD, PX_B64_PAD), PX_OK);
    char one[2700];
    assert_int_equal(
        px_b64_encode(big, sizeof(big), PX_B64_STD, PX_B64_PAD, one, sizeof(one), &len), PX_OK);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, one, len);
    px_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_vectors),
        cmocka_unit_test(test_alphabets_differ),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
