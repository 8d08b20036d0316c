/* test_decimal.c: stored decimal text -> JSON number, scale kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "store/price.h"

struct dcase {
    const char *in;
    px_rc rc;
    const char *out; /* expected output when rc == PX_OK */
};

static const struct dcase cases[] = {
    /* kept as written */
    {"99.99", PX_OK, "99.99"},
    {"100.00", PX_OK, "100.00"},
    {"0.5", PX_OK, "0.5"},
    {"1999", PX_OK, "1999"},
    {"12.345", PX_OK, "12.345"},
    {"0", PX_OK, "0"},
    {"0.00", PX_OK, "0.00"},
    {"0.0001", PX_OK, "0.0001"},
    {"-12.50", PX_OK, "-12.50"},
    /* normalised to JSON's grammar */
    {"007.50", PX_OK, "7.50"},
    {"+007.50", PX_OK, "7.50"},
    {".5", PX_OK, "0.5"},
    {"-.5", PX_OK, "-0.5"},
    {"+.25", PX_OK, "0.25"},
    {"5.", PX_OK, "5"},
    {"000", PX_OK, "0"},
    {"00.10", PX_OK, "0.10"},
    {"+1", PX_OK, "1"},
    /* negative zero loses its sign */
    {"-0", PX_OK, "0"},
    {"-0.00", PX_OK, "0.00"},
    {"-.0", PX_OK, "0.0"},
    {"-000.000", PX_OK, "0.000"},
    /* longest accepted: 40 characters */
    {"1234567890123456789012345678901234567890", PX_OK, "1234567890123456789012345678901234567890"},
    {"0000000000000000000000000000000000000001", PX_OK, "1"},
    /* refused */
    {"", PX_ERR_INVALID, NULL},
    {"+", PX_ERR_INVALID, NULL},
    {"-", PX_ERR_INVALID, NULL},
    {".", PX_ERR_INVALID, NULL},
    {"-.", PX_ERR_INVALID, NULL},
    {"1e5", PX_ERR_INVALID, NULL},
    {"1E5", PX_ERR_INVALID, NULL},
    {"1.5e-3", PX_ERR_INVALID, NULL},
    {"NaN", PX_ERR_INVALID, NULL},
    {"nan", PX_ERR_INVALID, NULL},
    {"Infinity", PX_ERR_INVALID, NULL},
    {"-Inf", PX_ERR_INVALID, NULL},
    {" 1", PX_ERR_INVALID, NULL},
    {"1 ", PX_ERR_INVALID, NULL},
    {"1 000", PX_ERR_INVALID, NULL},
    {"1,5", PX_ERR_INVALID, NULL},
    {"1.2.3", PX_ERR_INVALID, NULL},
    {"--1", PX_ERR_INVALID, NULL},
    {"+-1", PX_ERR_INVALID, NULL},
    {"0x10", PX_ERR_INVALID, NULL},
    {"1_000", PX_ERR_INVALID, NULL},
    {"12345678901234567890123456789012345678901", PX_ERR_INVALID, NULL},
    {"\xef\xbc\x91", PX_ERR_INVALID, NULL}, /* fullwidth digit one */
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        memset(out, 'X', sizeof(out));
        px_rc rc = px_decimal_to_json(cases[i].in, out, sizeof(out));
        if (rc != cases[i].rc)
            fail_msg("case %zu \"%s\": rc %d, want %d", i, cases[i].in, rc, cases[i].rc);
        if (cases[i].rc == PX_OK)
            assert_string_equal(out, cases[i].out);
        else
            assert_string_equal(out, ""); /* never half an answer */
    }
}

static void test_output_space(void **state)
{
    (void)state;
    char out[7];
    assert_int_equal(px_decimal_to_json("100.00", out, sizeof(out)), PX_OK); /* exactly fits */
    assert_string_equal(out, "100.00");
    char small[6];
    assert_int_equal(px_decimal_to_json("100.00", small, sizeof(small)), PX_ERR_TOO_LARGE);
    assert_string_equal(small, "");
    /* The size is computed after normalising: "+007.5" needs only 4 bytes. */
    char four[4];
    assert_int_equal(px_decimal_to_json("+007.5", four, sizeof(four)), PX_OK);
    assert_string_equal(four, "7.5");
    assert_int_equal(px_decimal_to_json("1", out, 0), PX_ERR_INVALID);
    assert_int_equal(px_decimal_to_json(NULL, out, sizeof(out)), PX_ERR_INVALID);
}

/* Whatever the input, an accepted output is a JSON number of the same
 * digits: check against the grammar for every 1..4 character string over a
 * small alphabet. */
static bool json_number(const char *s)
{
    size_t i = 0;
    if (s[i] == '-')
        i++;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (s[i] == '.') {
        i++;
        if (!(s[i] >= '0' && s[i] <= '9'))
            return false;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return s[i] == '\0';
}

static void test_exhaustive_short(void **state)
{
    (void)state;
    static const char alpha[] = "01.+-e ";
    const size_t k = sizeof(alpha) - 1;
    size_t accepted = 0;
    for (size_t len = 1; len <= 4; len++) {
        size_t total = 1;
        for (size_t j = 0; j < len; j++)
            total *= k;
        for (size_t v = 0; v < total; v++) {
            char in[8], out[16];
            size_t x = v;
            for (size_t j = 0; j < len; j++, x /= k)
                in[j] = alpha[x % k];
            in[len] = '\0';
            if (px_decimal_to_json(in, out, sizeof(out)) == PX_OK) {
                accepted++;
                if (!json_number(out))
                    fail_msg("\"%s\" -> \"%s\" is not a JSON number", in, out);
                if (strchr(in, 'e') || strchr(in, ' '))
                    fail_msg("\"%s\" accepted", in);
            }
        }
    }
    assert_true(accepted > 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_output_space),
        cmocka_unit_test(test_exhaustive_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
