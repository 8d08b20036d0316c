/* test_config.c: defaults, environment, flags and their error lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/config.h"

static const char *const all_vars[] = {
    "PRICE_DB",
    "AUDIT_STORE",
    "TABLE_AUDIT",
    "PRODUCT_STORE",
    "TABLE_PRODUCTS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL",
    "AUDIT_RETENTION_DAYS",
    "LOG_LEVEL",
    "AUDIT_TIMEOUT_MS",
    "PRICE_TIMEOUT_MS",
    "MAX_CONNECTIONS",
    "CONNECTION_TIMEOUT",
    "SERVER_THREADS",
};

static int clean_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < PX_COUNTOF(all_vars); i++)
        unsetenv(all_vars[i]);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    struct px_config c;
    char err[256] = "";
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_string_equal(c.price_db, "sqlite:./var/prices.db");
    assert_string_equal(c.audit_store, "sqlite:./var/audit.db");
    assert_int_equal(c.audit_retention_days, 90);
    assert_int_equal(c.log_level, PX_LOG_INFO);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 3000);
    assert_int_equal(c.audit_timeout_ms, 2000);
    assert_int_equal(c.price_timeout_ms, 2000);
    assert_int_equal(c.max_connections, 1024);
    assert_int_equal(c.conn_timeout_s, 15);
    assert_int_equal(c.threads, 2);
    assert_string_equal(c.aws_region, "");
    assert_string_equal(c.dynamodb_endpoint, "");
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_OK);
}

static void test_env(void **state)
{
    (void)state;
    struct px_config c;
    char err[256] = "";
    setenv("PRICE_DB", "postgresql://u:p@127.0.0.1:5432/prices", 1);
    setenv("TABLE_AUDIT", "pricing-audit", 1);
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8000", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 1);
    setenv("AWS_SESSION_TOKEN", "tok", 1);
    setenv("AUDIT_RETENTION_DAYS", "3650", 1);
    setenv("LOG_LEVEL", "DEBUG", 1);
    setenv("AUDIT_TIMEOUT_MS", "50", 1);
    setenv("PRICE_TIMEOUT_MS", "60000", 1);
    setenv("MAX_CONNECTIONS", "100000", 1);
    setenv("CONNECTION_TIMEOUT", "1", 1);
    setenv("SERVER_THREADS", "64", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_string_equal(c.price_db, "postgresql://u:p@127.0.0.1:5432/prices");
    assert_string_equal(c.audit_store, "dynamodb:pricing-audit");
    assert_string_equal(c.aws_region, "eu-west-1");
    assert_string_equal(c.dynamodb_endpoint, "http://127.0.0.1:8000");
    assert_string_equal(c.aws_access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_string_equal(c.aws_secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    assert_string_equal(c.aws_session_token, "tok");
    assert_int_equal(c.audit_retention_days, 3650);
    assert_int_equal(c.log_level, PX_LOG_DEBUG);
    assert_int_equal(c.audit_timeout_ms, 50);
    assert_int_equal(c.price_timeout_ms, 60000);
    assert_int_equal(c.max_connections, 100000);
    assert_int_equal(c.conn_timeout_s, 1);
    assert_int_equal(c.threads, 64);
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_OK);

    /* the specific variables win over their fallbacks; AUDIT_STORE over TABLE_AUDIT */
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9000", 1);
    setenv("AUDIT_STORE", "sqlite:/tmp/a.db", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_string_equal(c.aws_region, "us-east-1");
    assert_string_equal(c.dynamodb_endpoint, "http://127.0.0.1:9000");
    assert_string_equal(c.audit_store, "sqlite:/tmp/a.db");

    /* an empty variable counts as unset */
    setenv("AUDIT_STORE", "", 1);
    setenv("LOG_LEVEL", "", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_string_equal(c.audit_store, "dynamodb:pricing-audit");
    assert_int_equal(c.log_level, PX_LOG_INFO);
}

static void test_product_store(void **state)
{
    (void)state;
    struct px_config c;
    char err[256] = "";
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_string_equal(c.product_store, "sqlite:./var/products.db");
    setenv("TABLE_PRODUCTS", "products-dev", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_string_equal(c.product_store, "dynamodb:products-dev");
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_OK);
    /* PRODUCT_STORE wins over TABLE_PRODUCTS */
    setenv("PRODUCT_STORE", "sqlite:/tmp/p.db", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_string_equal(c.product_store, "sqlite:/tmp/p.db");
    setenv("PRODUCT_STORE", "dynamodb:products-prod", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_OK);
    /* a bad table name or scheme names the setting */
    setenv("PRODUCT_STORE", "dynamodb:a b", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "TABLE_PRODUCTS"));
    setenv("PRODUCT_STORE", "lsm:/tmp/x", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_non_null(strstr(err, "sqlite:PATH or dynamodb:TABLE"));
}

static void test_env_errors(void **state)
{
    (void)state;
    static const struct {
        const char *var, *value, *err;
    } cases[] = {
        {"AUDIT_RETENTION_DAYS", "abc",
         "AUDIT_RETENTION_DAYS: must be an integer between 1 and 3650 (got \"abc\")"},
        {"AUDIT_RETENTION_DAYS", "0",
         "AUDIT_RETENTION_DAYS: must be an integer between 1 and 3650 (got \"0\")"},
        {"AUDIT_RETENTION_DAYS", "3651",
         "AUDIT_RETENTION_DAYS: must be an integer between 1 and 3650 (got \"3651\")"},
        {"AUDIT_RETENTION_DAYS", "12 ",
         "AUDIT_RETENTION_DAYS: must be an integer between 1 and 3650 (got \"12 \")"},
        {"AUDIT_RETENTION_DAYS", "99999999999999999999999",
         "AUDIT_RETENTION_DAYS: must be an integer between 1 and 3650 (got "
         "\"99999999999999999999999\")"},
        {"LOG_LEVEL", "verbose",
         "LOG_LEVEL: must be one of debug, info, warn, error (got \"verbose\")"},
        {"AUDIT_TIMEOUT_MS", "49",
         "AUDIT_TIMEOUT_MS: must be an integer between 50 and 60000 (got \"49\")"},
        {"PRICE_TIMEOUT_MS", "60001",
         "PRICE_TIMEOUT_MS: must be an integer between 50 and 60000 (got \"60001\")"},
        {"MAX_CONNECTIONS", "0",
         "MAX_CONNECTIONS: must be an integer between 1 and 100000 (got \"0\")"},
        {"CONNECTION_TIMEOUT", "3601",
         "CONNECTION_TIMEOUT: must be an integer between 1 and 3600 (got \"3601\")"},
        {"SERVER_THREADS", "65",
         "SERVER_THREADS: must be an integer between 1 and 64 (got \"65\")"},
        {"SERVER_THREADS", "2\"x\n",
         "SERVER_THREADS: must be an integer between 1 and 64 (got \"2?x?\")"},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        clean_env(NULL);
        setenv(cases[i].var, cases[i].value, 1);
        struct px_config c;
        char err[256] = "";
        assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_ERR_CONFIG);
        assert_string_equal(err, cases[i].err);
    }
}

static void test_overlong_and_secrets(void **state)
{
    (void)state;
    static char big[8000];
    memset(big, 'A', sizeof(big) - 1);
    static const struct {
        const char *var;
        size_t len;
    } cases[] = {
        {"PRICE_DB", 1024},          {"AUDIT_STORE", 1024},      {"TABLE_AUDIT", 1015},
        {"AWS_REGION", 64},          {"AWS_ACCESS_KEY_ID", 128}, {"AWS_SECRET_ACCESS_KEY", 256},
        {"AWS_SESSION_TOKEN", 4096}, {"AWS_ENDPOINT_URL", 1024},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        struct px_config c;
        char err[512] = "";
        /* the longest that fits is accepted whole ... */
        clean_env(NULL);
        big[cases[i].len - 1] = '\0';
        setenv(cases[i].var, big, 1);
        assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
        big[cases[i].len - 1] = 'A';
        /* ... one more byte is an error, never a truncation */
        big[cases[i].len] = '\0';
        setenv(cases[i].var, big, 1);
        assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_ERR_CONFIG);
        big[cases[i].len] = 'A';
        assert_memory_equal(err, cases[i].var, strlen(cases[i].var));
        assert_non_null(strstr(err, "too long"));
        assert_null(strstr(err, "AAAAAAAA"));
    }
    /* secret values never appear in an error line */
    clean_env(NULL);
    struct px_config c;
    char err[512] = "";
    big[5000] = '\0';
    setenv("AWS_SESSION_TOKEN", big, 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_ERR_CONFIG);
    assert_null(strstr(err, "AAAA"));
    assert_non_null(strstr(err, "AWS_SESSION_TOKEN"));
}

static void test_flags(void **state)
{
    (void)state;
    struct px_config c;
    char err[256] = "";
    setenv("AUDIT_RETENTION_DAYS", "10", 1);
    setenv("PRICE_DB", "sqlite:/env.db", 1);
    assert_int_equal(px_config_from_env(&c, err, sizeof(err)), PX_OK);
    static const struct {
        const char *flag, *value;
    } set[] = {
        {"--price-db", "sqlite:/flag.db"},
        {"--audit-store", "dynamodb:tbl"},
        {"--audit-retention-days", "30"},
        {"--log-level", "warn"},
        {"--region", "ap-south-1"},
        {"--dynamodb-endpoint", "http://127.0.0.1:1"},
        {"--audit-timeout-ms", "100"},
        {"--price-timeout-ms", "200"},
        {"--host", "0.0.0.0"},
        {"--port", "0"},
        {"--max-connections", "10"},
        {"--connection-timeout", "5"},
        {"--threads", "4"},
    };
    for (size_t i = 0; i < PX_COUNTOF(set); i++)
        assert_int_equal(px_config_set_flag(&c, set[i].flag, set[i].value, err, sizeof(err)),
                         PX_OK);
    assert_string_equal(c.price_db, "sqlite:/flag.db");
    assert_string_equal(c.audit_store, "dynamodb:tbl");
    assert_int_equal(c.audit_retention_days, 30);
    assert_int_equal(c.log_level, PX_LOG_WARN);
    assert_string_equal(c.aws_region, "ap-south-1");
    assert_string_equal(c.dynamodb_endpoint, "http://127.0.0.1:1");
    assert_int_equal(c.audit_timeout_ms, 100);
    assert_int_equal(c.price_timeout_ms, 200);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.port, 0);
    assert_int_equal(c.max_connections, 10);
    assert_int_equal(c.conn_timeout_s, 5);
    assert_int_equal(c.threads, 4);
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_OK);

    assert_int_equal(px_config_set_flag(&c, "--nope", "1", err, sizeof(err)), PX_ERR_NOT_FOUND);
    assert_int_equal(px_config_set_flag(&c, "PRICE_DB", "x", err, sizeof(err)), PX_ERR_NOT_FOUND);
    /* secrets have no flag: they would show in `ps` */
    assert_int_equal(px_config_set_flag(&c, "--aws-secret-access-key", "x", err, sizeof(err)),
                     PX_ERR_NOT_FOUND);

    static const struct {
        const char *flag, *value, *err;
    } bad[] = {
        {"--port", "65536", "--port: must be an integer between 0 and 65535 (got \"65536\")"},
        {"--port", "-1", "--port: must be an integer between 0 and 65535 (got \"-1\")"},
        {"--threads", "", "--threads: must be an integer between 1 and 64 (got \"\")"},
        {"--log-level", "trace",
         "--log-level: must be one of debug, info, warn, error (got \"trace\")"},
        {"--audit-retention-days", "1.5",
         "--audit-retention-days: must be an integer between 1 and 3650 (got \"1.5\")"},
        {"--connection-timeout", NULL, "--connection-timeout: needs a value"},
    };
    for (size_t i = 0; i < PX_COUNTOF(bad); i++) {
        assert_int_equal(px_config_set_flag(&c, bad[i].flag, bad[i].value, err, sizeof(err)),
                         PX_ERR_CONFIG);
        assert_string_equal(err, bad[i].err);
    }
    char big[1100];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(px_config_set_flag(&c, "--host", big, err, sizeof(err)), PX_ERR_CONFIG);
    assert_string_equal(err, "--host: too long (1099 bytes, at most 255)");
}

static void test_check(void **state)
{
    (void)state;
    static const struct {
        const char *price, *audit;
        const char *err; /* NULL: valid; else a prefix of the error */
    } cases[] = {
        {"sqlite:./p.db", "sqlite:./a.db", NULL},
        {"postgresql://u:p@h:5432/db", "dynamodb:abc", NULL},
        {"postgres://h/db", "dynamodb:a.b_c-D", NULL},
        {"sqlite:", "sqlite:a", "PRICE_DB"},
        {"mysql://u:hunter2@h/db", "sqlite:a", "PRICE_DB"},
        {"postgresql://", "sqlite:a", "PRICE_DB"},
        {"", "sqlite:a", "PRICE_DB"},
        {"sqlite:p", "sqlite:", "AUDIT_STORE"},
        {"sqlite:p", "dynamodb:ab", "AUDIT_STORE"},
        {"sqlite:p", "dynamodb:a b c", "AUDIT_STORE"},
        {"sqlite:p", "dynamodb:", "AUDIT_STORE"},
        {"sqlite:p", "s3:bucket", "AUDIT_STORE"},
    };
    for (size_t i = 0; i < PX_COUNTOF(cases); i++) {
        struct px_config c = px_config_defaults;
        char err[512] = "";
        snprintf(c.price_db, sizeof(c.price_db), "%s", cases[i].price);
        snprintf(c.audit_store, sizeof(c.audit_store), "%s", cases[i].audit);
        px_rc rc = px_config_check(&c, err, sizeof(err));
        if (!cases[i].err) {
            assert_int_equal(rc, PX_OK);
            continue;
        }
        assert_int_equal(rc, PX_ERR_CONFIG);
        assert_memory_equal(err, cases[i].err, strlen(cases[i].err));
        /* a database password never reaches an error line */
        assert_null(strstr(err, "hunter2"));
    }
    /* 255 is the longest table name */
    struct px_config c = px_config_defaults;
    char err[512];
    memcpy(c.audit_store, "dynamodb:", 9);
    memset(c.audit_store + 9, 't', 255);
    c.audit_store[9 + 255] = '\0';
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_OK);
    c.audit_store[9 + 255] = 't';
    c.audit_store[9 + 256] = '\0';
    assert_int_equal(px_config_check(&c, err, sizeof(err)), PX_ERR_CONFIG);
}

static void test_usage(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    px_config_usage(f);
    fclose(f);
    static const char *const want[] = {
        "--price-db", "PRICE_DB",       "sqlite:./var/prices.db",    "TABLE_AUDIT",
        "--threads",  "SERVER_THREADS", "AWS_ENDPOINT_URL_DYNAMODB", "3000",
        "info"};
    for (size_t i = 0; i < PX_COUNTOF(want); i++) {
        if (!strstr(text, want[i]))
            fail_msg("usage lacks %s", want[i]);
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clean_env),
        cmocka_unit_test_setup(test_env, clean_env),
        cmocka_unit_test_setup(test_product_store, clean_env),
        cmocka_unit_test_setup(test_env_errors, clean_env),
        cmocka_unit_test_setup(test_overlong_and_secrets, clean_env),
        cmocka_unit_test_setup(test_flags, clean_env),
        cmocka_unit_test_setup(test_check, clean_env),
        cmocka_unit_test_setup(test_usage, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
